/* eval.c: a `connect:` rule + the Connect status model -> alert instances
 * (see eval.h).
 *
 * The rule's condition is matched against every cluster's last polled status
 * (kcw_cluster_status_t, owned by connect.c): cluster and connector name
 * regexes, type and state masks, and for the connector target optionally
 * "fewer RUNNING tasks than task configs". Each match becomes one
 * kcw_instance_t: its labels (cluster, connector, task, worker_id, state,
 * type, and root_cause when the record has a trace), then the rule's labels rendered against those, then alertname; its
 * annotations rendered the same way. The instances go on to
 * kcw_alert_set_update(). Nothing here does I/O or keeps state.
 *
 * Stale status on purpose: when a cluster is unreachable its last model is
 * still evaluated for task and connector targets. Resolving every FAILED-task
 * alert (and firing them all again later) because kcwatch lost sight of the
 * cluster would be noise; the cluster target's UNREACHABLE alert reports the
 * outage itself. Likewise connectors missing from the last polls still match
 * (connect-rest.md §3.5, §12: absence is "unknown yet", not recovery).
 *
 * PromQL rules (kcw_eval_prom_rule) take the query result instead, the way
 * Prometheus' alerting rules turn a vector into alerts: one instance per
 * sample, its metric minus __name__ as the base labels, the same rule-label,
 * alertname and annotation steps as above, and the sample value. */
#include "kcwatch/eval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/prom.h"
#include "kcwatch/template.h"

/* $trace in templates is the head of the Java trace: enough to recognise the
 * failure in a notification without pasting kilobytes into it. */
#define TRACE_HEAD_LINES 8
#define TRACE_HEAD_BYTES 2048

typedef struct out_list {
    kcw_instance_t *items;
    size_t n, cap;
    const kcw_rootcause_t *rootcause; /* NULL: no root_cause labels */
} out_list_t;

static void out_list_free(out_list_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        kcw_instance_clear(&o->items[i]);
    free(o->items);
    memset(o, 0, sizeof(*o));
}

/* First lines of a trace plus its last "Caused by:" line (the root cause,
 * which Java prints at the bottom). NULL in, NULL out; -ENOMEM via *err. */
static char *trace_head(const char *trace, int *err)
{
    if (!trace)
        return NULL;
    size_t len = 0;
    const char *p = trace;
    for (int line = 0; line < TRACE_HEAD_LINES && *p; line++) {
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    len = (size_t)(p - trace);
    while (len > 0 && (trace[len - 1] == '\n' || trace[len - 1] == '\r'))
        len--;
    if (len > TRACE_HEAD_BYTES)
        len = TRACE_HEAD_BYTES;
    const char *cause = NULL;
    for (const char *c = strstr(p, "Caused by:"); c; c = strstr(c + 1, "Caused by:"))
        if (c == trace || c[-1] == '\n')
            cause = c;
    size_t cause_len = 0;
    if (cause) {
        const char *nl = strchr(cause, '\n');
        cause_len = nl ? (size_t)(nl - cause) : strlen(cause);
        if (cause_len > TRACE_HEAD_BYTES)
            cause_len = TRACE_HEAD_BYTES;
    }
    char *out = NULL;
    int rc = cause ? asprintf(&out, "%.*s\n\t...\n%.*s", (int)len, trace, (int)cause_len, cause)
                   : asprintf(&out, "%.*s", (int)len, trace);
    if (rc < 0) {
        *err = -ENOMEM;
        return NULL;
    }
    return out;
}

/* Renders a template; render failures are already text, only -ENOMEM fails. */
static int render(const kcw_template_t *t, const kcw_template_ctx_t *ctx, char **out)
{
    int rc = kcw_template_render(t, ctx, out);
    if (rc == -E2BIG)
        rc = 0; /* keep the truncated text, like any other long annotation */
    return rc;
}

/* Builds one instance from the match's own labels (base). tmpl_labels is what
 * templates see as $labels: base itself for connect: rules; for PromQL rules
 * the sample's full metric, __name__ included, as Prometheus passes it. */
static int emit(out_list_t *o, const kcw_rule_t *rule, const kcw_labels_t *base,
                const kcw_labels_t *tmpl_labels, double value, const char *trace,
                const kcw_labels_t *external_labels)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        kcw_instance_t *items = realloc(o->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        o->items = items;
        o->cap = cap;
    }
    kcw_instance_t *in = &o->items[o->n];
    memset(in, 0, sizeof(*in));
    int rc = 0;
    char *head = trace_head(trace, &rc);
    if (rc < 0)
        return rc;
    /* Like Prometheus, templates see the match's labels (not the rule's labels
     * or alertname) in $labels. */
    kcw_template_ctx_t ctx = {
        .labels = tmpl_labels,
        .value = value,
        .trace = head,
        .external_labels = external_labels,
    };
    rc = kcw_labels_copy(&in->labels, base);
    for (size_t i = 0; rc == 0 && i < rule->n_labels; i++) {
        char *text = NULL;
        if ((rc = render(rule->labels[i].tmpl, &ctx, &text)) == 0)
            rc = kcw_labels_set(&in->labels, rule->labels[i].name, text);
        free(text);
    }
    /* Set last: a rule label cannot rename the alert (Prometheus does the same). */
    if (rc == 0)
        rc = kcw_labels_set(&in->labels, "alertname", rule->alert);
    for (size_t i = 0; rc == 0 && i < rule->n_annotations; i++) {
        char *text = NULL;
        if ((rc = render(rule->annotations[i].tmpl, &ctx, &text)) == 0)
            rc = kcw_labels_set(&in->annotations, rule->annotations[i].name, text);
        free(text);
    }
    if (rc == 0 && trace && !(in->trace = strdup(trace)))
        rc = -ENOMEM;
    /* One block instead of a piece per label: what a new alert keeps as it
     * is, and what a storm's instances of a round take while they wait. */
    if (rc == 0)
        rc = kcw_labels_freeze(&in->labels);
    free(head);
    if (rc < 0) {
        kcw_instance_clear(in);
        return rc;
    }
    in->value = value;
    o->n++;
    return 0;
}

static bool state_matches(unsigned mask, kcw_state_t st)
{
    return mask == 0 || (mask & (1u << st)) != 0;
}

/* Labels shared by the connector and task targets. */
static int connector_labels(kcw_labels_t *l, const kcw_cluster_status_t *cl,
                            const kcw_connector_status_t *cs, const char *worker_id, kcw_state_t st)
{
    int rc = kcw_labels_set(l, "cluster", cl->name);
    if (rc == 0)
        rc = kcw_labels_set(l, "connector", cs->name);
    if (rc == 0 && worker_id)
        rc = kcw_labels_set(l, "worker_id", worker_id);
    if (rc == 0)
        rc = kcw_labels_set(l, "state", kcw_state_name(st));
    if (rc == 0 && cs->type != KCW_CTYPE_UNKNOWN)
        rc = kcw_labels_set(l, "type", kcw_connector_type_name(cs->type));
    return rc;
}

/* root_cause: the trace's key (rootcause.h), so that alerts of one cause
 * group together whatever their offsets, hosts and ports. */
static int cause_label(const out_list_t *o, kcw_labels_t *l, const char *trace)
{
    if (!o->rootcause || !trace)
        return 0;
    char *key = NULL;
    int rc = kcw_rootcause_key(o->rootcause, trace, &key);
    if (rc == 0 && key)
        rc = kcw_labels_set(l, "root_cause", key);
    free(key);
    return rc;
}

static int eval_connector(out_list_t *o, const kcw_rule_t *rule, const kcw_cluster_status_t *cl,
                          const kcw_connector_status_t *cs, const kcw_labels_t *external_labels)
{
    const kcw_connect_cond_t *cond = rule->connect;
    int rc = 0;
    if (cond->target == KCW_TARGET_CONNECTOR) {
        if (!state_matches(cond->state_mask, cs->state))
            return 0;
        double value = 1;
        if (cond->tasks_below_configs) {
            int missing = kcw_connector_status_tasks_short(cs);
            if (missing <= 0)
                return 0;
            value = missing;
        }
        kcw_labels_t base = {0};
        rc = connector_labels(&base, cl, cs, cs->worker_id, cs->state);
        if (rc == 0)
            rc = cause_label(o, &base, cs->trace);
        if (rc == 0)
            rc = emit(o, rule, &base, &base, value, cs->trace, external_labels);
        kcw_labels_clear(&base);
        return rc;
    }
    for (size_t t = 0; t < cs->n_tasks && rc == 0; t++) {
        const kcw_task_status_t *ts = &cs->tasks[t];
        if (!state_matches(cond->state_mask, ts->state))
            continue;
        kcw_labels_t base = {0};
        char id[16];
        snprintf(id, sizeof(id), "%d", ts->id);
        rc = connector_labels(&base, cl, cs, ts->worker_id, ts->state);
        if (rc == 0)
            rc = kcw_labels_set(&base, "task", id);
        if (rc == 0)
            rc = cause_label(o, &base, ts->trace);
        if (rc == 0)
            rc = emit(o, rule, &base, &base, 1, ts->trace, external_labels);
        kcw_labels_clear(&base);
    }
    return rc;
}

static int eval_cluster(out_list_t *o, const kcw_rule_t *rule, const kcw_cluster_status_t *cl,
                        const kcw_labels_t *external_labels)
{
    const kcw_connect_cond_t *cond = rule->connect;
    if (cond->target == KCW_TARGET_CLUSTER) {
        /* UNKNOWN (not polled yet) is neither reachable nor not. */
        kcw_state_t st = kcw_cluster_status_state(cl);
        if (st == KCW_STATE_UNKNOWN || st == KCW_STATE_RUNNING || !state_matches(cond->state_mask, st))
            return 0;
        kcw_labels_t base = {0};
        int rc = kcw_labels_set(&base, "cluster", cl->name);
        if (rc == 0)
            rc = kcw_labels_set(&base, "state", kcw_state_name(st));
        if (rc == 0)
            rc = emit(o, rule, &base, &base, 1,
                      st == KCW_STATE_UNREADABLE ? cl->last_error : NULL, external_labels);
        kcw_labels_clear(&base);
        return rc;
    }
    for (size_t i = 0; i < cl->n_connectors; i++) {
        const kcw_connector_status_t *cs = &cl->connectors[i];
        if (cond->connector && !kcw_regex_match(cond->connector, cs->name))
            continue;
        if (cond->type_mask && !(cond->type_mask & (1u << cs->type)))
            continue;
        int rc = eval_connector(o, rule, cl, cs, external_labels);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kcw_eval_connect_rule(const kcw_rule_t *rule, const kcw_cluster_status_t *const *clusters,
                          size_t n_clusters, const kcw_labels_t *external_labels,
                          const kcw_rootcause_t *rootcause, kcw_instance_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!rule || !rule->connect)
        return -EINVAL;
    out_list_t o = {.rootcause = rootcause};
    for (size_t c = 0; c < n_clusters; c++) {
        const kcw_cluster_status_t *cl = clusters[c];
        if (!cl || !cl->name)
            continue;
        if (rule->connect->cluster && !kcw_regex_match(rule->connect->cluster, cl->name))
            continue;
        int rc = eval_cluster(&o, rule, cl, external_labels);
        if (rc < 0) {
            out_list_free(&o);
            return rc;
        }
    }
    *out = o.items;
    *n_out = o.n;
    return 0;
}

/* --- PromQL rules ---------------------------------------------------------- */

typedef struct fp_index {
    uint64_t fp;
    size_t i;
} fp_index_t;

static int cmp_fp(const void *a, const void *b)
{
    const fp_index_t *x = a, *y = b;
    return x->fp < y->fp ? -1 : x->fp > y->fp;
}

/* Whether two instances share a label set: sorting by fingerprint keeps this
 * O(n log n) for the large vectors an alert storm brings. 0, -EEXIST, -ENOMEM. */
static int check_unique(const kcw_instance_t *items, size_t n)
{
    if (n < 2)
        return 0;
    fp_index_t *idx = malloc(n * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = (fp_index_t){kcw_labels_fingerprint(&items[i].labels), i};
    qsort(idx, n, sizeof(*idx), cmp_fp);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        /* compare against every earlier entry with the same fingerprint */
        for (size_t j = i; j-- > 0 && idx[j].fp == idx[i].fp;) {
            if (kcw_labels_equal(&items[idx[j].i].labels, &items[idx[i].i].labels)) {
                rc = -EEXIST;
                break;
            }
        }
    }
    free(idx);
    return rc;
}

static int eval_sample(out_list_t *o, const kcw_rule_t *rule, const kcw_labels_t *metric,
                       double value, const kcw_labels_t *external_labels)
{
    kcw_labels_t base = {0};
    int rc = kcw_labels_copy(&base, metric);
    if (rc == 0)
        rc = kcw_labels_set(&base, "__name__", NULL); /* removes it */
    if (rc == 0)
        rc = emit(o, rule, &base, metric, value, NULL, external_labels);
    kcw_labels_clear(&base);
    return rc;
}

int kcw_eval_prom_rule(const kcw_rule_t *rule, const struct kcw_prom_result *result,
                       const kcw_labels_t *external_labels, kcw_instance_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!rule || !rule->expr || !result)
        return -EINVAL;
    out_list_t o = {0};
    int rc = 0;
    switch (result->type) {
    case KCW_PROM_VECTOR:
        for (size_t i = 0; rc == 0 && i < result->n; i++)
            rc = eval_sample(&o, rule, &result->samples[i].metric, result->samples[i].value,
                             external_labels);
        break;
    case KCW_PROM_SCALAR: {
        /* Prometheus' rule query turns a scalar into one sample without labels. */
        kcw_labels_t none = {0};
        rc = eval_sample(&o, rule, &none, result->scalar, external_labels);
        break;
    }
    default:
        /* matrix and string results: "rule result is not a vector or scalar" */
        rc = -EINVAL;
        break;
    }
    /* "vector contains metrics with the same labelset after applying alert
     * labels": the whole evaluation fails, nothing is returned. */
    if (rc == 0)
        rc = check_unique(o.items, o.n);
    if (rc < 0) {
        out_list_free(&o);
        return rc;
    }
    *out = o.items;
    *n_out = o.n;
    return 0;
}
