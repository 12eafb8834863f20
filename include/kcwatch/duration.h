/* duration.h: Prometheus-style durations ("10s", "5m", "1h30m", "250ms").
 * Units: ms s m h d w y; units must appear from largest to smallest, each at
 * most once; "0" alone is allowed. Values are milliseconds. */
#ifndef KCWATCH_DURATION_H
#define KCWATCH_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* 0 and *out_ms on success; -EINVAL on syntax, -ERANGE on overflow. */
int kcw_duration_parse(const char *s, int64_t *out_ms);
/* Formats like Prometheus does (1h30m, 10s, 0s). Returns buf. */
char *kcw_duration_format(int64_t ms, char *buf, size_t n);

/* The shortest interval anything runs at: poll_interval, evaluation_interval
 * and a rule group's interval below it are refused. */
#define KCW_MIN_INTERVAL_MS 100LL

#endif
