/* receiver.h: what one notification becomes for each receiver kind.
 *
 * The notifier decides when a group is notified; this module turns that
 * notification into HTTP requests, and tells what an answer means, per kind:
 *   webhook       one POST of the Alertmanager webhook payload (webhook.h)
 *   slack         one POST of an incoming-webhook message (slack.h)
 *   pagerduty     one event per alert, or one per group (pagerduty.h)
 *   alertmanager  one POST of /api/v2/alerts per URL: every member of an HA
 *                 pair gets every alert (alertmanager.h)
 * Each request names its target (the URL index for alertmanager, else 0) so
 * the notifier can keep one ordered line per target and store it in the
 * outbox. Pure: no I/O; `now` comes in with the notification. */
#ifndef KCWATCH_RECEIVER_H
#define KCWATCH_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/config.h"
#include "kcwatch/labels.h"

typedef struct kcw_notification {
    const char *receiver;  /* receiver name */
    const char *group_key; /* Alertmanager groupKey */
    const kcw_labels_t *group_labels;
    const kcw_alert_t *const *alerts; /* what this receiver gets (kcw_receiver_wants) */
    size_t n_alerts;
    int64_t now_ms;
    const kcw_config_t *cfg; /* external_url, external_labels, evaluation_interval */
} kcw_notification_t;

/* One HTTP request a notification becomes. */
typedef struct kcw_outgoing {
    int target;     /* alertmanager: index into urls; 0 for the other kinds */
    char *body;     /* malloc'd JSON */
    bool firing;    /* it says something fires (trigger, firing payload) */
    size_t n_alerts;
} kcw_outgoing_t;

/* Whether rc gets this alert at all: resolved alerts only with send_resolved
 * (alertmanager always: it must learn that an alert ended). */
bool kcw_receiver_wants(const kcw_receiver_conf_t *rc, const kcw_alert_t *a);

/* The repeat and group intervals a group notified to rc really uses: an
 * alertmanager receiver re-sends its firing alerts every resend_interval,
 * whatever the route says (its group is looked at that often too), so they
 * never expire there while they fire. Others: the route's. */
int64_t kcw_receiver_repeat_ms(const kcw_receiver_conf_t *rc, int64_t route_repeat_ms);
int64_t kcw_receiver_interval_ms(const kcw_receiver_conf_t *rc, int64_t route_interval_ms);

/* Builds the requests (*out, *n_out: free with kcw_outgoing_free). The log
 * receiver has none. 0 or -ENOMEM. */
int kcw_receiver_build(const kcw_receiver_conf_t *rc, const kcw_notification_t *nt,
                       kcw_outgoing_t **out, size_t *n_out);
void kcw_outgoing_free(kcw_outgoing_t *out, size_t n);

/* How many targets rc has (alertmanager: its URLs; others 1; log 0). */
int kcw_receiver_targets(const kcw_receiver_conf_t *rc);
/* The URL to POST target to (malloc'd), NULL when target is out of range
 * (the config changed since the notification was stored) or on OOM. */
char *kcw_receiver_target_url(const kcw_receiver_conf_t *rc, int target);

typedef enum {
    KCW_RECEIVER_ACCEPTED = 0, /* 2xx (PagerDuty answers 202) */
    KCW_RECEIVER_RETRY,        /* transport error, 408, 429, 5xx */
    KCW_RECEIVER_CONFIG_ERROR, /* slack/pagerduty 4xx: the URL, key or payload is wrong */
    KCW_RECEIVER_REJECTED,     /* any other answer: it will never be taken */
} kcw_receiver_verdict_t;
kcw_receiver_verdict_t kcw_receiver_verdict(const kcw_receiver_conf_t *rc, long http_status);

#endif
