/* alerts.h: the alert state machine, exactly as Prometheus defines it.
 *
 * One kcw_alert_set_t per rule. Each evaluation hands it the rule's current
 * instances (label set + value + annotations) and the evaluation time; the set
 * keeps alerts keyed by label set: new -> pending (activeAt = now); pending
 * for `for` -> firing (firedAt); absent -> pending ones are dropped, firing
 * ones resolve (resolvedAt) unless keep_firing_for still holds them (from the
 * first evaluation they were absent). Resolved alerts stay listed for 15 min
 * so the notifier can send them; an instance that comes back after resolving
 * is a new alert. Pure: no I/O, time passed in. */
#ifndef KCWATCH_ALERTS_H
#define KCWATCH_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/labels.h"

#define KCW_ALERT_RESOLVED_RETENTION_MS (15 * 60 * 1000)

typedef enum {
    KCW_ALERT_INACTIVE = 0, /* resolved (resolved_at_ms != 0) */
    KCW_ALERT_PENDING,
    KCW_ALERT_FIRING,
} kcw_alert_state_t;

const char *kcw_alert_state_name(kcw_alert_state_t s); /* "inactive" "pending" "firing" */

/* One evaluation result: a would-be alert. */
typedef struct kcw_instance {
    kcw_labels_t labels;      /* full set incl. alertname and rule labels */
    kcw_labels_t annotations; /* rendered */
    double value;
    char *trace;              /* Connect trace, may be NULL */
    char *generator_url;      /* the rule's link (kcw_url_generator) as a shared string
                                 (kcw_shared_str_new, labels.h), may be NULL */
} kcw_instance_t;

void kcw_instance_clear(kcw_instance_t *in);

/* In a set, labels and annotations are frozen (labels.h): copies of them
 * are references. */
typedef struct kcw_alert {
    kcw_labels_t labels;
    kcw_labels_t annotations;
    double value;
    char *trace;
    char *generator_url; /* from its latest instance, a shared string (labels.h);
                            NULL: receivers use their default */
    uint64_t fingerprint;
    kcw_alert_state_t state;
    int64_t active_at_ms;
    int64_t fired_at_ms;        /* 0 until firing */
    int64_t resolved_at_ms;     /* 0 unless resolved */
    int64_t last_eval_ms;       /* last evaluation that saw it */
    int64_t keep_firing_since_ms; /* 0 unless held by keep_firing_for */
} kcw_alert_t;

typedef struct kcw_alert_set kcw_alert_set_t;

kcw_alert_set_t *kcw_alert_set_new(const char *rule_name, int64_t for_ms,
                                   int64_t keep_firing_for_ms);
void kcw_alert_set_free(kcw_alert_set_t *s);
/* How long resolved alerts stay listed, for every set (default
 * KCW_ALERT_RESOLVED_RETENTION_MS; <= 0 restores it). A test hook: the soak
 * shortens it (KCWATCH_TEST_RESOLVED_RETENTION_MS) to see memory level off. */
void kcw_alert_set_resolved_retention(int64_t ms);
/* Applies one evaluation. Takes ownership of the instances' contents (they
 * are cleared). Duplicate label sets among inst are an error (-EEXIST) and the
 * set is left as it was, like Prometheus' "same labelset" failure. */
int kcw_alert_set_update(kcw_alert_set_t *s, kcw_instance_t *inst, size_t n, int64_t now_ms);
/* A failed evaluation: nothing changes (no flapping to resolved). */
size_t kcw_alert_set_count(const kcw_alert_set_t *s);
const kcw_alert_t *kcw_alert_set_at(const kcw_alert_set_t *s, size_t i);
const kcw_alert_t *kcw_alert_set_find(const kcw_alert_set_t *s, const kcw_labels_t *labels);
/* Alerts by state (resolved ones count as inactive). */
size_t kcw_alert_set_count_state(const kcw_alert_set_t *s, kcw_alert_state_t st);
/* Puts back an alert saved before a restart of kcwatch (state, activeAt,
 * firedAt... as given; labels, annotations, trace and generator URL are
 * copied; the URL need not be a shared string). 0, -EEXIST
 * when the label set is already in the set, -ENOMEM. */
int kcw_alert_set_restore(kcw_alert_set_t *s, const kcw_alert_t *a);

#endif
