/* slack.h: Slack incoming-webhook message builder.
 *
 * Pure: a group's alerts in, the JSON body of a POST to an incoming webhook
 * out: {"text": ..., "channel"?, "username"?, "icon_emoji"?, "icon_url"?}
 * (https://api.slack.com/messaging/webhooks). The text starts with a header
 * line ("[FIRING:2] ConnectTaskFailed cluster=c1 connector=orders") and has
 * one block per alert, firing ones first. The default block is readable on a
 * phone: the alert name and state, then cluster, connector, task, worker and
 * Connect state, the summary, the first lines of the trace, and what kcwatch
 * did (the `remediation` annotation: "restart sent, attempt 2 of 5 in 1h",
 * "not restarted: unrecoverable (ConfigException)"). A `text` template
 * replaces the block (rendered per alert with $labels, $annotations, $value,
 * $trace, $externalLabels). The text is bounded (KCW_SLACK_TEXT_MAX): alerts
 * past it are counted, not listed. */
#ifndef KCWATCH_SLACK_H
#define KCWATCH_SLACK_H

#include <stddef.h>

#include "kcwatch/alerts.h"
#include "kcwatch/labels.h"
#include "kcwatch/template.h"

#define KCW_SLACK_TEXT_MAX 35000 /* Slack cuts message text at 40,000 characters */
#define KCW_SLACK_TRACE_LINES 5
#define KCW_SLACK_TRACE_BYTES 1000

typedef struct kcw_slack_opts {
    const char *channel;    /* NULL: the webhook's own channel */
    const char *username;   /* NULL: the webhook's own */
    const char *icon_emoji; /* NULL: none */
    const char *icon_url;   /* NULL: none */
    const kcw_template_t *text; /* per alert; NULL: the default block */
    const kcw_labels_t *external_labels; /* may be NULL */
} kcw_slack_opts_t;

/* Returns the malloc'd JSON body, or NULL on OOM. Alerts are not modified. */
char *kcw_slack_payload(const kcw_slack_opts_t *opts, const kcw_labels_t *group_labels,
                        const kcw_alert_t *const *alerts, size_t n_alerts);

#endif
