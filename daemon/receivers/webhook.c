/* webhook.c: the Alertmanager webhook payload, version "4" (see webhook.h).
 *
 * Alerts come in as the notifier's group members; the JSON text that goes out
 * has exactly the field set Alertmanager's webhook receiver sends, in its
 * order, so any consumer written for Alertmanager reads it unchanged. Alerts
 * are ordered firing first, then by startsAt, then by fingerprint, before
 * max_alerts and size truncation: the alerts a receiver loses to truncation
 * are the resolved and the newest ones. Pure: no I/O, no clock. */
#include "kcwatch/webhook.h"

#include <inttypes.h>
#include <stdint.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/payload.h"
#include "kcwatch/rfc3339.h"

/* Alertmanager's zero time for "not ended yet" (Go's time.Time{}). */
#define ZERO_TIME "0001-01-01T00:00:00Z"

typedef struct ordered {
    const kcw_alert_t *alert;
    size_t index; /* input position: the last tie-break keeps the sort stable */
} ordered_t;

static bool is_resolved(const kcw_alert_t *a)
{
    return kcw_payload_alert_resolved(a);
}

static int64_t starts_at_ms(const kcw_alert_t *a)
{
    return kcw_payload_alert_starts_ms(a);
}

static uint64_t fingerprint_of(const kcw_alert_t *a)
{
    return kcw_payload_alert_fp(a);
}

static void format_time(int64_t ms, char *buf, size_t n)
{
    kcw_rfc3339_format(ms, buf, n);
}

static int compare_alerts(const void *pa, const void *pb)
{
    const ordered_t *a = pa, *b = pb;
    bool ra = is_resolved(a->alert), rb = is_resolved(b->alert);
    if (ra != rb)
        return ra ? 1 : -1;
    int64_t sa = starts_at_ms(a->alert), sb = starts_at_ms(b->alert);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    uint64_t fa = fingerprint_of(a->alert), fb = fingerprint_of(b->alert);
    if (fa != fb)
        return fa < fb ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}

static int put(json_t *obj, const char *key, json_t *value)
{
    return kcw_payload_put(obj, key, value);
}

/* Pairs of the first alert's labels (or annotations) that every other alert
 * has with the same value. */
static json_t *common_json(const ordered_t *alerts, size_t n, bool annotations)
{
    json_t *o = json_object();
    if (!o || n == 0)
        return o;
    const kcw_labels_t *first =
        annotations ? &alerts[0].alert->annotations : &alerts[0].alert->labels;
    for (size_t i = 0; i < first->n; i++) {
        const kcw_label_t *p = &first->items[i];
        bool shared = true;
        for (size_t j = 1; j < n && shared; j++) {
            const kcw_labels_t *other =
                annotations ? &alerts[j].alert->annotations : &alerts[j].alert->labels;
            const char *v = kcw_labels_get(other, p->name);
            shared = v && strcmp(v, p->value) == 0;
        }
        if (shared && put(o, p->name, kcw_json_text(p->value)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *alert_json(const kcw_alert_t *a, const char *generator_url)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    bool resolved = is_resolved(a);
    char starts[40], ends[40], fp[17];
    format_time(starts_at_ms(a), starts, sizeof(starts));
    if (resolved)
        format_time(a->resolved_at_ms, ends, sizeof(ends));
    else
        snprintf(ends, sizeof(ends), "%s", ZERO_TIME);
    snprintf(fp, sizeof(fp), "%016" PRIx64, fingerprint_of(a));
    if (put(o, "status", kcw_json_text(resolved ? "resolved" : "firing")) < 0 ||
        put(o, "labels", kcw_labels_to_json(&a->labels)) < 0 ||
        put(o, "annotations", kcw_labels_to_json(&a->annotations)) < 0 ||
        put(o, "startsAt", kcw_json_text(starts)) < 0 ||
        put(o, "endsAt", kcw_json_text(ends)) < 0 ||
        put(o, "generatorURL",
            kcw_json_text(a->generator_url ? a->generator_url : generator_url)) < 0 ||
        put(o, "fingerprint", kcw_json_text(fp)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *payload_json(const char *receiver, const char *group_key,
                            const kcw_labels_t *group_labels, const ordered_t *alerts,
                            size_t n_sent, size_t n_truncated, const char *external_url,
                            const char *generator_url)
{
    json_t *root = json_object();
    json_t *list = json_array();
    if (!root || !list) {
        json_decref(root);
        json_decref(list);
        return NULL;
    }
    bool firing = false;
    for (size_t i = 0; i < n_sent; i++) {
        firing = firing || !is_resolved(alerts[i].alert);
        if (json_array_append_new(list, alert_json(alerts[i].alert, generator_url)) < 0) {
            json_decref(root);
            json_decref(list);
            return NULL;
        }
    }
    if (put(root, "receiver", kcw_json_text(receiver ? receiver : "")) < 0 ||
        put(root, "status", kcw_json_text(firing ? "firing" : "resolved")) < 0 ||
        put(root, "alerts", list) < 0 ||
        put(root, "groupLabels", kcw_labels_to_json(group_labels)) < 0 ||
        put(root, "commonLabels", common_json(alerts, n_sent, false)) < 0 ||
        put(root, "commonAnnotations", common_json(alerts, n_sent, true)) < 0 ||
        put(root, "externalURL", kcw_json_text(external_url ? external_url : "")) < 0 ||
        put(root, "version", kcw_json_text("4")) < 0 ||
        put(root, "groupKey", kcw_json_text(group_key ? group_key : "")) < 0 ||
        put(root, "truncatedAlerts", json_integer((json_int_t)n_truncated)) < 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* How many of the first n alerts fit in half of KCW_WEBHOOK_MAX_BYTES (the
 * other half is for the envelope, whose common annotations can repeat one
 * alert's); at least one. */
static size_t fitting_alerts(const ordered_t *alerts, size_t n, const char *generator_url)
{
    size_t budget = KCW_WEBHOOK_MAX_BYTES / 2, used = 0, fit = 0;
    for (; fit < n; fit++) {
        json_t *a = alert_json(alerts[fit].alert, generator_url);
        size_t size = a ? json_dumpb(a, NULL, 0, JSON_COMPACT) + 1 : 0;
        json_decref(a);
        if (fit > 0 && used + size > budget)
            break;
        used += size;
    }
    return fit;
}

static char *payload_text(const char *receiver, const char *group_key,
                          const kcw_labels_t *group_labels, const kcw_alert_t *const *alerts,
                          size_t n_alerts, const char *external_url, int max_alerts);

char *kcw_webhook_payload(const char *receiver, const char *group_key,
                          const kcw_labels_t *group_labels, const kcw_alert_t *const *alerts,
                          size_t n_alerts, const char *external_url,
                          const kcw_labels_t *external_labels, int max_alerts)
{
    if (!external_labels || external_labels->n == 0)
        return payload_text(receiver, group_key, group_labels, alerts, n_alerts, external_url,
                            max_alerts);
    const kcw_alert_t **labeled = NULL;
    if (kcw_payload_labeled(alerts, n_alerts, external_labels, &labeled) < 0)
        return NULL;
    char *text = payload_text(receiver, group_key, group_labels, labeled, n_alerts, external_url,
                              max_alerts);
    kcw_payload_labeled_free(labeled, n_alerts);
    return text;
}

static char *payload_text(const char *receiver, const char *group_key,
                          const kcw_labels_t *group_labels, const kcw_alert_t *const *alerts,
                          size_t n_alerts, const char *external_url, int max_alerts)
{
    ordered_t *sorted = calloc(n_alerts ? n_alerts : 1, sizeof(*sorted));
    char *generator_url = kcw_payload_generator_url(external_url);
    if (!sorted || !generator_url) {
        free(sorted);
        free(generator_url);
        return NULL;
    }
    for (size_t i = 0; i < n_alerts; i++) {
        sorted[i].alert = alerts[i];
        sorted[i].index = i;
    }
    qsort(sorted, n_alerts, sizeof(*sorted), compare_alerts);

    /* Alertmanager computes the common sets over the alerts it actually sends. */
    size_t n_sent = n_alerts;
    if (max_alerts > 0 && n_sent > (size_t)max_alerts)
        n_sent = (size_t)max_alerts;
    n_sent = fitting_alerts(sorted, n_sent, generator_url);
    char *text = NULL;
    while (true) {
        json_t *root = payload_json(receiver, group_key, group_labels, sorted, n_sent,
                                    n_alerts - n_sent, external_url, generator_url);
        text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(root);
        /* The envelope (group and common sets) rarely passes the half left
         * for it; if it does, send fewer alerts. */
        if (!text || n_sent <= 1 || strlen(text) <= KCW_WEBHOOK_MAX_BYTES)
            break;
        free(text);
        text = NULL;
        n_sent = n_sent * 3 / 4;
    }
    free(sorted);
    free(generator_url);
    return text;
}
