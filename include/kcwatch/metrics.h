/* metrics.h: kcwatch's self-metric registry and its Prometheus text
 * exposition (format 0.0.4).
 *
 * Families are declared once (type, name, help) and keep their declaration
 * order; a series is a family plus a label set, created on first use and kept
 * in insertion order. Counters only go up, gauges are set, histograms observe
 * into fixed buckets. The daemon updates series as events happen (polls,
 * queries, restarts, notifications) and refreshes scrape-time gauges (alert
 * counts, queue length, process figures) right before rendering. Pure: no
 * I/O; the process figures come from kcw_metrics_process_read, which reads
 * /proc. Bounded: a family holds at most KCW_METRICS_MAX_SERIES series;
 * further label sets are dropped and counted in
 * kcwatch_metrics_series_dropped_total. */
#ifndef KCWATCH_METRICS_H
#define KCWATCH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define KCW_METRICS_MAX_SERIES 10000

typedef enum {
    KCW_METRIC_COUNTER = 0,
    KCW_METRIC_GAUGE,
    KCW_METRIC_HISTOGRAM,
} kcw_metric_type_t;

typedef struct kcw_metrics kcw_metrics_t;

kcw_metrics_t *kcw_metrics_new(void);
void kcw_metrics_free(kcw_metrics_t *m);

/* Declares a family; declaring it again with the same type is a no-op.
 * Histograms use buckets (ascending upper bounds, +Inf implied; NULL: the
 * default latency buckets .005 ... 10 s). 0, -EINVAL (bad name, type
 * mismatch), -ENOMEM. */
int kcw_metrics_declare(kcw_metrics_t *m, kcw_metric_type_t type, const char *name,
                        const char *help, const double *buckets, size_t n_buckets);

/* labels: NULL or a NULL-terminated list of name, value, name, value, ...
 * The family must be declared with the matching type (set: a gauge, or a
 * counter taken from a cumulative figure); 0 or negative errno. */
int kcw_metrics_add(kcw_metrics_t *m, const char *name, const char *const *labels, double v);
int kcw_metrics_set(kcw_metrics_t *m, const char *name, const char *const *labels, double v);
int kcw_metrics_observe(kcw_metrics_t *m, const char *name, const char *const *labels, double v);
/* Drops every series of a family (scrape-time gauges whose label sets come
 * and go, such as alerts by name and state). */
void kcw_metrics_clear(kcw_metrics_t *m, const char *name);
/* The value of a counter or gauge series, or NAN when absent (tests). */
double kcw_metrics_value(const kcw_metrics_t *m, const char *name, const char *const *labels);

/* The exposition text, NUL-terminated (*len bytes without the NUL); free()
 * it. NULL when out of memory. */
char *kcw_metrics_render(const kcw_metrics_t *m, size_t *len);

/* Declares every kcwatch_* and process_* family the daemon exposes (their
 * names are part of kcwatch's interface, see docs/metrics.md) and sets
 * kcwatch_build_info{version}. 0 or -ENOMEM. */
int kcw_metrics_declare_self(kcw_metrics_t *m, const char *version);

/* This process as Prometheus' client libraries describe it. */
typedef struct kcw_process_stats {
    double cpu_seconds;       /* user + system */
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
    double max_fds;
    double start_time_seconds; /* unix time */
} kcw_process_stats_t;

/* Reads /proc/self; 0 or negative errno (fields left at 0). */
int kcw_metrics_process_read(kcw_process_stats_t *out);

#endif
