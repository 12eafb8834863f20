/* slack.c: Slack incoming-webhook messages (see slack.h).
 *
 * The message is mrkdwn text; Slack wants &, < and > escaped in it
 * (https://api.slack.com/reference/surfaces/formatting#escaping), which the
 * default block does for every value it prints. A user template's output is
 * used as rendered, so it may carry its own links (<url|text>). */
#include "kcwatch/slack.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/payload.h"

typedef struct buf {
    char *s;
    size_t len, cap;
    bool oom;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Slack's three control characters, escaped. */
static void buf_escaped(buf_t *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '&')
            buf_str(b, "&amp;");
        else if (*s == '<')
            buf_str(b, "&lt;");
        else if (*s == '>')
            buf_str(b, "&gt;");
        else
            buf_add(b, s, 1);
    }
}

static int order_firing_first(const void *pa, const void *pb)
{
    const kcw_alert_t *a = *(const kcw_alert_t *const *)pa, *b = *(const kcw_alert_t *const *)pb;
    bool ra = kcw_payload_alert_resolved(a), rb = kcw_payload_alert_resolved(b);
    if (ra != rb)
        return ra ? 1 : -1;
    int64_t sa = kcw_payload_alert_starts_ms(a), sb = kcw_payload_alert_starts_ms(b);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    uint64_t fa = kcw_payload_alert_fp(a), fb = kcw_payload_alert_fp(b);
    return fa < fb ? -1 : fa > fb;
}

static void header(buf_t *b, const kcw_labels_t *group_labels, const kcw_alert_t *const *alerts,
                   size_t n)
{
    size_t firing = 0;
    for (size_t i = 0; i < n; i++)
        firing += !kcw_payload_alert_resolved(alerts[i]);
    char head[64];
    if (firing)
        snprintf(head, sizeof(head), "[FIRING:%zu]", firing);
    else
        snprintf(head, sizeof(head), "[RESOLVED]");
    buf_str(b, head);
    const char *alertname = group_labels ? kcw_labels_get(group_labels, "alertname") : NULL;
    if (!alertname && n > 0)
        alertname = kcw_labels_get(&alerts[0]->labels, "alertname");
    if (alertname) {
        buf_str(b, " ");
        buf_escaped(b, alertname);
    }
    for (size_t i = 0; group_labels && i < group_labels->n; i++) {
        if (strcmp(group_labels->items[i].name, "alertname") == 0)
            continue;
        buf_str(b, " ");
        buf_escaped(b, group_labels->items[i].name);
        buf_str(b, "=");
        buf_escaped(b, group_labels->items[i].value);
    }
    buf_str(b, "\n");
}

static void field(buf_t *b, bool *first, const char *title, const char *value)
{
    if (!value || !*value)
        return;
    buf_str(b, *first ? "" : " · ");
    *first = false;
    buf_str(b, title);
    buf_str(b, " `");
    buf_escaped(b, value);
    buf_str(b, "`");
}

static void default_block(buf_t *b, const kcw_alert_t *a)
{
    const kcw_labels_t *l = &a->labels;
    bool resolved = kcw_payload_alert_resolved(a);
    buf_str(b, resolved ? ":white_check_mark: *" : ":red_circle: *");
    buf_escaped(b, kcw_labels_get(l, "alertname") ? kcw_labels_get(l, "alertname") : "alert");
    buf_str(b, resolved ? "* resolved\n" : "* firing\n");
    bool first = true;
    field(b, &first, "cluster", kcw_labels_get(l, "cluster"));
    field(b, &first, "connector", kcw_labels_get(l, "connector"));
    field(b, &first, "task", kcw_labels_get(l, "task"));
    field(b, &first, "worker", kcw_labels_get(l, "worker_id"));
    field(b, &first, "state", kcw_labels_get(l, "state"));
    field(b, &first, "severity", kcw_labels_get(l, "severity"));
    if (!first)
        buf_str(b, "\n");
    const char *summary = kcw_labels_get(&a->annotations, "summary");
    if (!summary)
        summary = kcw_labels_get(&a->annotations, "description");
    if (summary) {
        buf_escaped(b, summary);
        buf_str(b, "\n");
    }
    char *trace = kcw_payload_first_lines(a->trace, KCW_SLACK_TRACE_LINES, KCW_SLACK_TRACE_BYTES);
    if (trace && *trace) {
        buf_str(b, "```");
        /* ``` inside the trace would close the block early. */
        for (char *p = strstr(trace, "```"); p; p = strstr(p, "```"))
            p[1] = '\'';
        buf_escaped(b, trace);
        buf_str(b, "```\n");
    }
    free(trace);
    const char *did = kcw_labels_get(&a->annotations, "remediation");
    if (did) {
        buf_str(b, "kcwatch: ");
        buf_escaped(b, did);
        buf_str(b, "\n");
    }
}

static void template_block(buf_t *b, const kcw_slack_opts_t *o, const kcw_alert_t *a)
{
    kcw_template_ctx_t ctx = {
        .labels = &a->labels,
        .value = a->value,
        .trace = a->trace,
        .external_labels = o->external_labels,
        .annotations = &a->annotations,
    };
    char *out = NULL;
    if (kcw_template_render(o->text, &ctx, &out) == -ENOMEM || !out) {
        free(out);
        b->oom = true;
        return;
    }
    buf_str(b, out);
    if (b->len > 0 && b->s[b->len - 1] != '\n')
        buf_str(b, "\n");
    free(out);
}

static json_t *opt_text(const char *s)
{
    return s ? kcw_json_text(s) : NULL;
}

char *kcw_slack_payload(const kcw_slack_opts_t *opts, const kcw_labels_t *group_labels,
                        const kcw_alert_t *const *alerts, size_t n_alerts)
{
    const kcw_alert_t **sorted = calloc(n_alerts ? n_alerts : 1, sizeof(*sorted));
    if (!sorted)
        return NULL;
    if (n_alerts)
        memcpy(sorted, alerts, n_alerts * sizeof(*sorted));
    qsort(sorted, n_alerts, sizeof(*sorted), order_firing_first);

    buf_t b = {0};
    header(&b, group_labels, sorted, n_alerts);
    size_t listed = 0;
    for (; listed < n_alerts && !b.oom; listed++) {
        size_t before = b.len;
        buf_str(&b, "\n");
        if (opts->text)
            template_block(&b, opts, sorted[listed]);
        else
            default_block(&b, sorted[listed]);
        if (b.len > KCW_SLACK_TEXT_MAX && listed > 0) {
            b.len = before; /* this one does not fit: count it instead */
            b.s[b.len] = '\0';
            break;
        }
    }
    if (b.len > KCW_SLACK_TEXT_MAX && !b.oom) {
        /* A single block past the bound: cut it. */
        b.len = kcw_payload_utf8_cut(b.s, b.len, KCW_SLACK_TEXT_MAX);
        b.s[b.len] = '\0';
        buf_str(&b, "…\n");
    }
    if (listed < n_alerts && !b.oom) {
        char more[64];
        snprintf(more, sizeof(more), "\n…and %zu more alerts\n", n_alerts - listed);
        buf_str(&b, more);
    }
    free(sorted);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    while (b.len > 0 && b.s[b.len - 1] == '\n')
        b.s[--b.len] = '\0';

    json_t *root = json_object();
    char *text = NULL;
    if (root && kcw_payload_put(root, "text", kcw_json_text(b.s)) == 0 &&
        (!opts->channel || kcw_payload_put(root, "channel", opt_text(opts->channel)) == 0) &&
        (!opts->username || kcw_payload_put(root, "username", opt_text(opts->username)) == 0) &&
        (!opts->icon_emoji ||
         kcw_payload_put(root, "icon_emoji", opt_text(opts->icon_emoji)) == 0) &&
        (!opts->icon_url || kcw_payload_put(root, "icon_url", opt_text(opts->icon_url)) == 0))
        text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    free(b.s);
    return text;
}
