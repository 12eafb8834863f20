/* rfc3339.h: RFC 3339 timestamps, the text form of times in Alertmanager's
 * and PagerDuty's JSON. Milliseconds since the Unix epoch in and out. */
#ifndef KCWATCH_RFC3339_H
#define KCWATCH_RFC3339_H

#include <stddef.h>
#include <stdint.h>

#define KCW_RFC3339_LEN 32 /* buffer size that always suffices */

/* "2024-01-02T03:04:05.678Z" (UTC, milliseconds). */
void kcw_rfc3339_format(int64_t ms, char *buf, size_t n);
/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (t and z accepted in
 * lower case). 0 and *ms, or -EINVAL. */
int kcw_rfc3339_parse(const char *text, int64_t *ms);

#endif
