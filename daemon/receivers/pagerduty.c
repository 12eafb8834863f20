/* pagerduty.c: PagerDuty Events API v2 events (see pagerduty.h).
 *
 * Limits from PagerDuty's documentation: summary at most 1024 characters,
 * the whole event under 512 KB. Summaries are cut at a UTF-8 boundary with
 * an ellipsis; an event over the size bound is rebuilt with smaller details
 * (no traces, then no annotations or per-alert detail) rather than
 * rejected. */
#include "kcwatch/pagerduty.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/payload.h"
#include "kcwatch/rfc3339.h"

#define TRACE_LINES 20
#define TRACE_BYTES 4000

typedef enum { DETAIL_FULL = 0, DETAIL_NO_TRACE, DETAIL_MINIMAL } detail_t;

const char *kcw_pagerduty_severity(const char *label)
{
    static const struct {
        const char *label, *severity;
    } map[] = {
        {"critical", "critical"}, {"fatal", "critical"},  {"page", "critical"},
        {"error", "error"},       {"warning", "warning"}, {"warn", "warning"},
        {"info", "info"},         {"informational", "info"}, {"none", "info"},
    };
    for (size_t i = 0; label && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(label, map[i].label) == 0)
            return map[i].severity;
    return "error";
}

static json_t *summary_json(const char *s)
{
    size_t len = strlen(s);
    if (len <= KCW_PAGERDUTY_SUMMARY_MAX)
        return kcw_json_text(s);
    /* Leave room for the 3-byte ellipsis. */
    size_t cut = kcw_payload_utf8_cut(s, len, KCW_PAGERDUTY_SUMMARY_MAX - 3);
    char *t = malloc(cut + 4);
    if (!t)
        return NULL;
    memcpy(t, s, cut);
    memcpy(t + cut, "…", 4);
    json_t *j = kcw_json_text(t);
    free(t);
    return j;
}

static char *default_summary(const kcw_alert_t *a)
{
    const char *name = kcw_labels_get(&a->labels, "alertname");
    const char *summary = kcw_labels_get(&a->annotations, "summary");
    const char *cluster = kcw_labels_get(&a->labels, "cluster");
    const char *connector = kcw_labels_get(&a->labels, "connector");
    const char *task = kcw_labels_get(&a->labels, "task");
    char *out = NULL;
    int rc;
    if (summary)
        rc = asprintf(&out, "%s: %s", name ? name : "alert", summary);
    else
        rc = asprintf(&out, "%s%s%s%s%s%s%s", name ? name : "alert", connector ? " " : "",
                      connector ? connector : "", task ? " task " : "", task ? task : "",
                      cluster ? " on " : "", cluster ? cluster : "");
    return rc < 0 ? NULL : out;
}

static char *alert_summary(const kcw_pagerduty_opts_t *o, const kcw_alert_t *a)
{
    if (!o->summary)
        return default_summary(a);
    kcw_template_ctx_t ctx = {.labels = &a->labels,
                              .value = a->value,
                              .trace = a->trace,
                              .external_labels = o->external_labels,
                              .annotations = &a->annotations};
    char *out = NULL;
    if (kcw_template_render(o->summary, &ctx, &out) == -ENOMEM) {
        free(out);
        return NULL;
    }
    return out;
}

static const char *label_or(const kcw_labels_t *l, const char *name, const char *fallback)
{
    const char *v = l ? kcw_labels_get(l, name) : NULL;
    return v && *v ? v : fallback;
}

static char *component_of(const kcw_labels_t *l)
{
    const char *connector = kcw_labels_get(l, "connector");
    const char *task = kcw_labels_get(l, "task");
    char *out = NULL;
    if (!connector)
        return strdup(label_or(l, "job", "kafka-connect"));
    if (asprintf(&out, "%s%s%s", connector, task ? " task " : "", task ? task : "") < 0)
        return NULL;
    return out;
}

static json_t *alert_details(const kcw_alert_t *a, detail_t level)
{
    json_t *o = json_object();
    char starts[KCW_RFC3339_LEN];
    if (!o)
        return NULL;
    kcw_rfc3339_format(kcw_payload_alert_starts_ms(a), starts, sizeof(starts));
    if (kcw_payload_put(o, "status",
                        json_string(kcw_payload_alert_resolved(a) ? "resolved" : "firing")) < 0 ||
        kcw_payload_put(o, "labels", kcw_labels_to_json(&a->labels)) < 0 ||
        kcw_payload_put(o, "startsAt", json_string(starts)) < 0)
        goto fail;
    /* Annotations can be large (a trace pasted into a description): the
     * smallest form leaves them out. */
    if (level != DETAIL_MINIMAL &&
        kcw_payload_put(o, "annotations", kcw_labels_to_json(&a->annotations)) < 0)
        goto fail;
    if (level == DETAIL_FULL && a->trace) {
        char *trace = kcw_payload_first_lines(a->trace, TRACE_LINES, TRACE_BYTES);
        int rc = trace ? kcw_payload_put(o, "trace", kcw_json_text(trace)) : -1;
        free(trace);
        if (rc < 0)
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *group_details(const kcw_pagerduty_opts_t *o, const kcw_alert_t *const *alerts,
                             size_t n, detail_t level)
{
    json_t *d = json_object(), *firing = json_array(), *resolved = json_array();
    size_t n_firing = 0, n_resolved = 0;
    if (!d || !firing || !resolved)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        bool res = kcw_payload_alert_resolved(alerts[i]);
        res ? n_resolved++ : n_firing++;
        json_t *list = res ? resolved : firing;
        if (level == DETAIL_MINIMAL || json_array_size(list) >= KCW_PAGERDUTY_DETAIL_ALERTS)
            continue;
        if (json_array_append_new(list, alert_details(alerts[i], level)) < 0)
            goto fail;
    }
    json_t *f = firing, *r = resolved;
    firing = resolved = NULL;
    if (kcw_payload_put(d, "num_firing", json_integer((json_int_t)n_firing)) < 0 ||
        kcw_payload_put(d, "num_resolved", json_integer((json_int_t)n_resolved)) < 0 ||
        kcw_payload_put(d, "group_labels", kcw_labels_to_json(o->group_labels)) < 0 ||
        kcw_payload_put(d, "firing", f) < 0 || kcw_payload_put(d, "resolved", r) < 0)
        goto fail;
    return d;
fail:
    json_decref(firing);
    json_decref(resolved);
    json_decref(d);
    return NULL;
}

static char *client_url(const kcw_pagerduty_opts_t *o)
{
    return kcw_payload_generator_url(o->external_url);
}

static json_t *event_json(const kcw_pagerduty_opts_t *o, const char *dedup_key, bool trigger,
                          const kcw_alert_t *lead, const kcw_alert_t *const *alerts, size_t n,
                          detail_t level)
{
    json_t *ev = json_object();
    if (!ev)
        return NULL;
    if (kcw_payload_put(ev, "routing_key", kcw_json_text(o->routing_key)) < 0 ||
        kcw_payload_put(ev, "event_action", json_string(trigger ? "trigger" : "resolve")) < 0 ||
        kcw_payload_put(ev, "dedup_key", json_string(dedup_key)) < 0)
        goto fail;
    if (!trigger)
        return ev;

    const kcw_labels_t *l = &lead->labels;
    char *summary = NULL, *component = component_of(l), *url = client_url(o);
    if (o->per_group) {
        char *first = alert_summary(o, lead);
        size_t n_firing = 0;
        for (size_t i = 0; i < n; i++)
            n_firing += !kcw_payload_alert_resolved(alerts[i]);
        if (first && asprintf(&summary, "[FIRING:%zu] %s", n_firing, first) < 0)
            summary = NULL;
        free(first);
    } else {
        summary = alert_summary(o, lead);
    }
    char ts[KCW_RFC3339_LEN];
    kcw_rfc3339_format(kcw_payload_alert_starts_ms(lead), ts, sizeof(ts));
    json_t *p = json_object();
    json_t *details = o->per_group ? group_details(o, alerts, n, level)
                                   : alert_details(lead, level);
    if (details && level != DETAIL_MINIMAL && !o->per_group) {
        /* The remediation note up front: what kcwatch did is what a pager
         * reader asks first. */
        const char *did = kcw_labels_get(&lead->annotations, "remediation");
        if (did && kcw_payload_put(details, "remediation", kcw_json_text(did)) < 0) {
            json_decref(details);
            details = NULL;
        }
    }
    int rc = -1;
    if (p && summary && component && url && details) {
        json_t *d = details;
        details = NULL;
        rc = kcw_payload_put(p, "summary", summary_json(summary)) < 0 ||
                     kcw_payload_put(p, "source",
                                     kcw_json_text(label_or(
                                         l, "worker_id", label_or(l, "cluster", "kcwatch")))) < 0 ||
                     kcw_payload_put(p, "severity",
                                     json_string(kcw_pagerduty_severity(
                                         kcw_labels_get(l, "severity")))) < 0 ||
                     kcw_payload_put(p, "timestamp", json_string(ts)) < 0 ||
                     kcw_payload_put(p, "component", kcw_json_text(component)) < 0 ||
                     kcw_payload_put(p, "group",
                                     kcw_json_text(label_or(l, "cluster", "kafka-connect"))) < 0 ||
                     kcw_payload_put(p, "class",
                                     kcw_json_text(label_or(l, "alertname", "alert"))) < 0 ||
                     kcw_payload_put(p, "custom_details", d) < 0
                 ? -1
                 : 0;
    }
    json_decref(details);
    if (rc == 0) {
        rc = kcw_payload_put(ev, "payload", p) < 0 ||
                     kcw_payload_put(ev, "client", json_string("kcwatch")) < 0 ||
                     kcw_payload_put(ev, "client_url", kcw_json_text(url)) < 0
                 ? -1
                 : 0;
        p = NULL;
    }
    json_decref(p);
    free(summary);
    free(component);
    free(url);
    if (rc < 0)
        goto fail;
    return ev;
fail:
    json_decref(ev);
    return NULL;
}

/* Dumps the event, shrinking its details until it fits the size bound. */
static char *event_text(const kcw_pagerduty_opts_t *o, const char *dedup_key, bool trigger,
                        const kcw_alert_t *lead, const kcw_alert_t *const *alerts, size_t n)
{
    for (detail_t level = DETAIL_FULL; level <= DETAIL_MINIMAL; level++) {
        json_t *ev = event_json(o, dedup_key, trigger, lead, alerts, n, level);
        if (!ev)
            return NULL;
        char *text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(ev);
        if (!text)
            return NULL;
        if (strlen(text) < KCW_PAGERDUTY_EVENT_MAX || level == DETAIL_MINIMAL)
            return text;
        free(text);
    }
    return NULL;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int kcw_pagerduty_events(const kcw_pagerduty_opts_t *opts, const kcw_alert_t *const *alerts,
                         size_t n_alerts, char ***events_out, size_t *n_out)
{
    *events_out = NULL;
    *n_out = 0;
    size_t want = opts->per_group ? (n_alerts ? 1 : 0) : n_alerts;
    char **events = calloc(want ? want : 1, sizeof(*events));
    if (!events)
        return -ENOMEM;
    size_t k = 0;
    char key[64];
    if (opts->per_group && n_alerts) {
        /* The lead is the first firing alert: its labels describe the page. */
        const kcw_alert_t *lead = alerts[0];
        bool any_firing = false;
        for (size_t i = 0; i < n_alerts; i++) {
            if (!kcw_payload_alert_resolved(alerts[i])) {
                if (!any_firing)
                    lead = alerts[i];
                any_firing = true;
            }
        }
        snprintf(key, sizeof(key), "kcwatch-group-%016" PRIx64, fnv1a(opts->group_key));
        if (!(events[k++] = event_text(opts, key, any_firing, lead, alerts, n_alerts)))
            goto oom;
    } else {
        for (size_t i = 0; i < n_alerts; i++) {
            snprintf(key, sizeof(key), "kcwatch-%016" PRIx64, kcw_payload_alert_fp(alerts[i]));
            bool trigger = !kcw_payload_alert_resolved(alerts[i]);
            if (!(events[k++] = event_text(opts, key, trigger, alerts[i], &alerts[i], 1)))
                goto oom;
        }
    }
    *events_out = events;
    *n_out = k;
    return 0;
oom:
    for (size_t i = 0; i < k; i++)
        free(events[i]);
    free(events);
    return -ENOMEM;
}
