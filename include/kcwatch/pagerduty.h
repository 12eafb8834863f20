/* pagerduty.h: PagerDuty Events API v2 event builder.
 *
 * Pure: a group's alerts in, event bodies for POST /v2/enqueue out
 * (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
 * Per alert (the default) every alert is its own incident: a firing alert
 * gives a trigger, a resolved one a resolve, with dedup_key
 * "kcwatch-<fingerprint>" (stable for the label set, so the resolve closes
 * what the trigger opened, across restarts too). Per group, the group is one
 * incident: a trigger while any alert fires, a resolve when all resolved,
 * dedup_key "kcwatch-group-<hash of the group key>".
 *
 * A trigger carries payload {summary (<= 1024 characters), source, severity,
 * timestamp, component, group, class, custom_details}, plus client and
 * client_url. severity comes from the `severity` label: critical, error,
 * warning and info map to themselves (also fatal/page -> critical, warn ->
 * warning, informational/none -> info); anything else is "error". source is
 * the worker (worker_id), else the cluster, else "kcwatch"; component the
 * connector (task N appended), group the cluster, class the alertname.
 * Every event stays under KCW_PAGERDUTY_EVENT_MAX: custom_details shrink
 * (trace, then per-alert details) until it fits. */
#ifndef KCWATCH_PAGERDUTY_H
#define KCWATCH_PAGERDUTY_H

#include <stdbool.h>
#include <stddef.h>

#include "kcwatch/alerts.h"
#include "kcwatch/labels.h"
#include "kcwatch/template.h"

#define KCW_PAGERDUTY_SUMMARY_MAX 1024
#define KCW_PAGERDUTY_EVENT_MAX (512 * 1024)
#define KCW_PAGERDUTY_DETAIL_ALERTS 50 /* alerts listed in a group's details */

typedef struct kcw_pagerduty_opts {
    const char *routing_key;
    bool per_group;              /* one incident per group, not per alert */
    const char *group_key;       /* per_group: the dedup_key's source */
    const kcw_labels_t *group_labels;
    const char *external_url;    /* client_url; may be NULL */
    const kcw_labels_t *external_labels; /* may be NULL */
    const kcw_template_t *summary; /* per alert; NULL: the default summary */
} kcw_pagerduty_opts_t;

/* "critical" "error" "warning" "info" for a severity label value (NULL ok). */
const char *kcw_pagerduty_severity(const char *label);

/* Builds the events: *n_out bodies (malloc'd JSON strings, in *events_out,
 * free each and the array). 0 or -ENOMEM. */
int kcw_pagerduty_events(const kcw_pagerduty_opts_t *opts, const kcw_alert_t *const *alerts,
                         size_t n_alerts, char ***events_out, size_t *n_out);

#endif
