/* receiver.c: notifications -> requests per receiver kind (see receiver.h). */
#include "kcwatch/receiver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/alertmanager.h"
#include "kcwatch/pagerduty.h"
#include "kcwatch/payload.h"
#include "kcwatch/slack.h"
#include "kcwatch/webhook.h"

bool kcw_receiver_wants(const kcw_receiver_conf_t *rc, const kcw_alert_t *a)
{
    if (!kcw_payload_alert_resolved(a))
        return true;
    return rc->kind == KCW_RECEIVER_ALERTMANAGER || rc->send_resolved;
}

int64_t kcw_receiver_repeat_ms(const kcw_receiver_conf_t *rc, int64_t route_repeat_ms)
{
    if (rc && rc->kind == KCW_RECEIVER_ALERTMANAGER && rc->resend_interval_ms > 0 &&
        rc->resend_interval_ms < route_repeat_ms)
        return rc->resend_interval_ms;
    return route_repeat_ms;
}

int64_t kcw_receiver_interval_ms(const kcw_receiver_conf_t *rc, int64_t route_interval_ms)
{
    return kcw_receiver_repeat_ms(rc, route_interval_ms);
}

static bool any_firing(const kcw_alert_t *const *alerts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!kcw_payload_alert_resolved(alerts[i]))
            return true;
    return false;
}

/* Appends body (taken over) as a request for target; -ENOMEM frees it. */
static int add(kcw_outgoing_t **out, size_t *n, int target, char *body, bool firing,
               size_t n_alerts)
{
    if (!body)
        return -ENOMEM;
    kcw_outgoing_t *grown = realloc(*out, (*n + 1) * sizeof(**out));
    if (!grown) {
        free(body);
        return -ENOMEM;
    }
    *out = grown;
    (*out)[(*n)++] = (kcw_outgoing_t){target, body, firing, n_alerts};
    return 0;
}

int kcw_receiver_build(const kcw_receiver_conf_t *rc, const kcw_notification_t *nt,
                       kcw_outgoing_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (nt->n_alerts == 0 || rc->kind == KCW_RECEIVER_LOG)
        return 0;
    const kcw_config_t *cfg = nt->cfg;
    bool firing = any_firing(nt->alerts, nt->n_alerts);
    /* Every receiver gets the alerts with the external labels, as
     * Prometheus sends them (Slack and PagerDuty show them too). */
    const kcw_alert_t **labeled = NULL;
    if (cfg->external_labels.n > 0 &&
        kcw_payload_labeled(nt->alerts, nt->n_alerts, &cfg->external_labels, &labeled) < 0)
        return -ENOMEM;
    const kcw_alert_t *const *alerts = labeled ? labeled : nt->alerts;
    int rc_add = 0;
    switch (rc->kind) {
    case KCW_RECEIVER_LOG:
        break;
    case KCW_RECEIVER_WEBHOOK:
        rc_add = add(out, n_out, 0,
                     kcw_webhook_payload(nt->receiver, nt->group_key, nt->group_labels,
                                         alerts, nt->n_alerts, cfg->external_url, NULL,
                                         rc->max_alerts),
                     firing, nt->n_alerts);
        break;
    case KCW_RECEIVER_SLACK: {
        kcw_slack_opts_t o = {.channel = rc->channel,
                              .username = rc->username,
                              .icon_emoji = rc->icon_emoji,
                              .icon_url = rc->icon_url,
                              .text = rc->text,
                              .external_labels = &cfg->external_labels};
        rc_add = add(out, n_out, 0,
                     kcw_slack_payload(&o, nt->group_labels, alerts, nt->n_alerts), firing,
                     nt->n_alerts);
        break;
    }
    case KCW_RECEIVER_PAGERDUTY: {
        kcw_pagerduty_opts_t o = {.routing_key = rc->routing_key,
                                  .per_group = rc->per_group,
                                  .group_key = nt->group_key,
                                  .group_labels = nt->group_labels,
                                  .external_url = cfg->external_url,
                                  .external_labels = &cfg->external_labels,
                                  .summary = rc->summary};
        char **events = NULL;
        size_t n_events = 0;
        if (kcw_pagerduty_events(&o, alerts, nt->n_alerts, &events, &n_events) < 0) {
            rc_add = -ENOMEM;
            break;
        }
        for (size_t i = 0; i < n_events; i++) {
            bool trigger = strstr(events[i], "\"event_action\":\"trigger\"") != NULL;
            if (rc_add == 0)
                rc_add = add(out, n_out, 0, events[i], trigger, rc->per_group ? nt->n_alerts : 1);
            else
                free(events[i]);
        }
        free(events);
        break;
    }
    case KCW_RECEIVER_ALERTMANAGER: {
        int64_t valid_for = kcw_alertmanager_valid_for_ms(
            rc->resend_interval_ms > cfg->evaluation_interval_ms ? rc->resend_interval_ms
                                                                 : cfg->evaluation_interval_ms);
        for (size_t t = 0; t < rc->n_urls && rc_add == 0; t++)
            rc_add = add(out, n_out, (int)t,
                         kcw_alertmanager_payload(alerts, nt->n_alerts, nt->now_ms, valid_for,
                                                  &cfg->external_labels, cfg->external_url),
                         firing, nt->n_alerts);
        break;
    }
    }
    kcw_payload_labeled_free(labeled, nt->n_alerts);
    if (rc_add < 0) {
        kcw_outgoing_free(*out, *n_out);
        *out = NULL;
        *n_out = 0;
    }
    return rc_add;
}

void kcw_outgoing_free(kcw_outgoing_t *out, size_t n)
{
    for (size_t i = 0; out && i < n; i++)
        free(out[i].body);
    free(out);
}

int kcw_receiver_targets(const kcw_receiver_conf_t *rc)
{
    switch (rc->kind) {
    case KCW_RECEIVER_LOG: return 0;
    case KCW_RECEIVER_ALERTMANAGER: return (int)rc->n_urls;
    default: return 1;
    }
}

char *kcw_receiver_target_url(const kcw_receiver_conf_t *rc, int target)
{
    if (target < 0 || target >= kcw_receiver_targets(rc))
        return NULL;
    if (rc->kind != KCW_RECEIVER_ALERTMANAGER)
        return rc->url ? strdup(rc->url) : NULL;
    char *url = NULL;
    if (asprintf(&url, "%s%s", rc->urls[target], KCW_ALERTMANAGER_PATH) < 0)
        return NULL;
    return url;
}

kcw_receiver_verdict_t kcw_receiver_verdict(const kcw_receiver_conf_t *rc, long http_status)
{
    if (http_status >= 200 && http_status < 300)
        return KCW_RECEIVER_ACCEPTED;
    if (http_status == 0 || http_status == 408 || http_status == 429 || http_status >= 500)
        return KCW_RECEIVER_RETRY;
    if (rc && (rc->kind == KCW_RECEIVER_SLACK || rc->kind == KCW_RECEIVER_PAGERDUTY) &&
        http_status >= 400 && http_status < 500)
        return KCW_RECEIVER_CONFIG_ERROR;
    return KCW_RECEIVER_REJECTED;
}
