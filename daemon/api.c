/* api.c: the `data` objects of the admin API's /api/v1/alerts and
 * /api/v1/rules, in the shape Prometheus 2.42 gives them (see api.h).
 *
 * The daemon passes views of its rule groups in; a new jansson tree comes
 * out, its object keys inserted in Prometheus' field order so a dump reads
 * like Prometheus' own. Field by field:
 *
 *   alert  {labels, annotations, state, activeAt, keepFiringSince (only while
 *          keep_firing_for holds the alert), value}
 *   rule   {state, name, query, duration, keepFiringFor, labels, annotations,
 *          alerts, health, lastError (only when there is one), evaluationTime,
 *          lastEvaluation, type: "alerting"}
 *   group  {name, file, rules, interval, limit, evaluationTime, lastEvaluation}
 *
 * Formats: label sets are objects sorted by name (Go marshals them as maps);
 * an alert's value is Go's strconv.FormatFloat(v, 'e', -1, 64) ("1e+00",
 * "2.5e-01", "NaN", "+Inf"); times are Go's RFC3339Nano in UTC, the zero time
 * "0001-01-01T00:00:00Z" for "never"; durations are seconds as JSON numbers
 * (integers when whole, as Go prints 300 and not 300.0). A rule's `state` is
 * the highest state among its alerts (firing > pending > inactive); only
 * active (pending or firing, not resolved) alerts are listed, in both
 * endpoints. A rule's labels and annotations are its templates as written.
 *
 * connect: rules have no PromQL, so their `query` is the condition written as
 * a selector on a pseudo-metric `connect`, fields in a fixed order and
 * omitted when the rule leaves them open (any):
 *
 *   connect{target="task", cluster=~"prod-.*", connector=~"orders-.*",
 *           type=~"source|sink", state=~"FAILED|PAUSED", tasks_below_configs="true"}
 *
 * Regex sources appear as written (they match fully anchored), quoted like Go
 * quotes label values. Pure: no I/O, no clock. */
#include "kcwatch/api.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kcwatch/connect.h"
#include "kcwatch/labels_json.h"
#include "kcwatch/log.h"

/* Longest Go 'e' text of a double ("-2.2250738585072014e-308") plus NUL. */
#define VALUE_TEXT_MAX 32
/* "-292277026-12-31T23:59:59.999Z" and then some. */
#define TIME_TEXT_MAX 48

/* --- scalar formats ------------------------------------------------------- */

char *kcw_api_time(int64_t ms, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    if (ms == 0) {
        /* Go's zero time.Time: what Prometheus shows for "never evaluated". */
        snprintf(buf, n, "0001-01-01T00:00:00Z");
        return buf;
    }
    int64_t secs = ms / 1000;
    int64_t frac = ms % 1000;
    if (frac < 0) { /* before 1970: floor, so the fraction counts forward */
        frac += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, n, "0001-01-01T00:00:00Z");
        return buf;
    }
    /* RFC3339Nano drops trailing zeros of the fraction, and the dot with them. */
    char fraction[8] = "";
    if (frac != 0) {
        int digits = 3;
        int f = (int)frac;
        while (f % 10 == 0) {
            f /= 10;
            digits--;
        }
        snprintf(fraction, sizeof(fraction), ".%0*d", digits, f);
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fraction);
    return buf;
}

/* Go's strconv.FormatFloat(v, 'e', -1, 64): the fewest digits that read back
 * as v. The correctly rounded p-digit text is the nearest p-digit decimal, so
 * the first precision that round-trips gives Go's shortest digits; C's %e
 * already writes the exponent as Go does (sign, at least two digits). */
static void format_value(double v, char *buf, size_t n)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, n, "%.*e", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
    snprintf(buf, n, "%.16e", v); /* 17 significant digits always round-trip */
}

/* Seconds as Go marshals a float64: whole values without a fraction. JSON has
 * no NaN or infinity; they cannot come from durations, but stay valid JSON. */
static json_t *json_seconds(double s)
{
    if (!isfinite(s))
        s = 0;
    if (s == floor(s) && fabs(s) < 9007199254740992.0) /* 2^53: exact as an integer */
        return json_integer((json_int_t)s);
    return json_real(s);
}

static json_t *json_ms_seconds(int64_t ms)
{
    if (ms % 1000 == 0)
        return json_integer((json_int_t)(ms / 1000));
    return json_real((double)ms / 1000.0);
}

static json_t *json_time(int64_t ms)
{
    char buf[TIME_TEXT_MAX];
    return json_string(kcw_api_time(ms, buf, sizeof(buf)));
}

/* Adds key: value, taking value (NULL = a failed constructor). 0 or -ENOMEM. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value) == 0 ? 0 : -ENOMEM;
}

static int append(json_t *arr, json_t *value)
{
    return json_array_append_new(arr, value) == 0 ? 0 : -ENOMEM;
}

static int cmp_template_name(const void *a, const void *b)
{
    const kcw_rule_template_t *x = *(const kcw_rule_template_t *const *)a;
    const kcw_rule_template_t *y = *(const kcw_rule_template_t *const *)b;
    return strcmp(x->name, y->name);
}

/* A rule's label or annotation templates, unexpanded, sorted by name as
 * Prometheus keeps them (the file's order is not kept). */
static json_t *json_templates(const kcw_rule_template_t *t, size_t n)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (n == 0)
        return o;
    const kcw_rule_template_t **sorted = malloc(n * sizeof(*sorted));
    if (!sorted) {
        json_decref(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &t[i];
    qsort(sorted, n, sizeof(*sorted), cmp_template_name);
    for (size_t i = 0; i < n; i++) {
        if (put(o, sorted[i]->name, kcw_json_text(sorted[i]->source)) < 0) {
            json_decref(o);
            o = NULL;
            break;
        }
    }
    free(sorted);
    return o;
}

/* --- alerts --------------------------------------------------------------- */

/* Prometheus' ActiveAlerts(): everything not resolved. */
static bool alert_is_active(const kcw_alert_t *a)
{
    return a->resolved_at_ms == 0 && a->state != KCW_ALERT_INACTIVE;
}

static json_t *json_alert(const kcw_alert_t *a)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char value[VALUE_TEXT_MAX];
    format_value(a->value, value, sizeof(value));
    int rc = put(o, "labels", kcw_labels_to_json(&a->labels));
    if (rc == 0)
        rc = put(o, "annotations", kcw_labels_to_json(&a->annotations));
    if (rc == 0)
        rc = put(o, "state", json_string(kcw_alert_state_name(a->state)));
    if (rc == 0)
        rc = put(o, "activeAt", json_time(a->active_at_ms));
    if (rc == 0 && a->keep_firing_since_ms != 0)
        rc = put(o, "keepFiringSince", json_time(a->keep_firing_since_ms));
    if (rc == 0)
        rc = put(o, "value", json_string(value));
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Appends the set's active alerts to arr. */
static int append_active(json_t *arr, const kcw_alert_set_t *set)
{
    if (!set)
        return 0;
    size_t n = kcw_alert_set_count(set);
    for (size_t i = 0; i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (!a || !alert_is_active(a))
            continue;
        if (append(arr, json_alert(a)) < 0)
            return -ENOMEM;
    }
    return 0;
}

json_t *kcw_api_alerts(const kcw_api_group_view_t *groups, size_t n_groups,
                       const kcw_alert_set_t *const *extra, size_t n_extra)
{
    json_t *data = json_object();
    json_t *arr = json_array();
    if (!data || !arr || put(data, "alerts", json_incref(arr)) < 0)
        goto fail;
    for (size_t g = 0; groups && g < n_groups; g++)
        for (size_t r = 0; groups[g].rules && r < groups[g].n_rules; r++)
            if (append_active(arr, groups[g].rules[r].alerts) < 0)
                goto fail;
    for (size_t i = 0; extra && i < n_extra; i++)
        if (append_active(arr, extra[i]) < 0)
            goto fail;
    json_decref(arr);
    return data;
fail:
    json_decref(arr);
    json_decref(data);
    return NULL;
}

/* --- rules ---------------------------------------------------------------- */

/* Writes s as Go's strconv.Quote would for printable text. */
static void quote(FILE *f, const char *s)
{
    /* Characters with a one-letter escape, and that letter. */
    static const char special[] = "\"\\\n\t\r", letter[] = "\"\\ntr";
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *hit = strchr(special, *p); /* never NUL here: strchr would match it */
        if (hit)
            fprintf(f, "\\%c", letter[hit - special]);
        else if (*p < 0x20 || *p == 0x7F)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static const char *target_name(kcw_target_t t)
{
    switch (t) {
    case KCW_TARGET_TASK:
        return "task";
    case KCW_TARGET_CONNECTOR:
        return "connector";
    case KCW_TARGET_CLUSTER:
        return "cluster";
    }
    return "task";
}

/* The connect: condition in the notation of the file comment. NULL on
 * allocation failure. */
static char *connect_query(const kcw_connect_cond_t *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "connect{target=\"%s\"", target_name(c->target));
    if (c->cluster) {
        fputs(", cluster=~", f);
        quote(f, kcw_regex_source(c->cluster));
    }
    if (c->connector) {
        fputs(", connector=~", f);
        quote(f, kcw_regex_source(c->connector));
    }
    if (c->type_mask) {
        const char *sep = "";
        fputs(", type=~\"", f);
        for (int t = KCW_CTYPE_SOURCE; t <= KCW_CTYPE_SINK; t++) {
            if (c->type_mask & (1u << t)) {
                fprintf(f, "%s%s", sep, kcw_connector_type_name((kcw_connector_type_t)t));
                sep = "|";
            }
        }
        fputc('"', f);
    }
    if (c->state_mask) {
        const char *sep = "";
        fputs(", state=~\"", f);
        for (int st = KCW_STATE_UNKNOWN + 1; st < KCW_STATE__COUNT; st++) {
            if (c->state_mask & (1u << st)) {
                fprintf(f, "%s%s", sep, kcw_state_name((kcw_state_t)st));
                sep = "|";
            }
        }
        fputc('"', f);
    }
    if (c->tasks_below_configs)
        fputs(", tasks_below_configs=\"true\"", f);
    fputc('}', f);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(text);
        return NULL;
    }
    return text;
}

/* PromQL as written, without the surrounding whitespace a YAML block scalar
 * leaves (Prometheus prints its parsed form, which has none). */
static json_t *json_expr(const char *expr)
{
    while (*expr == ' ' || *expr == '\t' || *expr == '\n' || *expr == '\r')
        expr++;
    size_t len = strlen(expr);
    while (len > 0 && (expr[len - 1] == ' ' || expr[len - 1] == '\t' || expr[len - 1] == '\n' ||
                       expr[len - 1] == '\r'))
        len--;
    char *copy = strndup(expr, len);
    if (!copy)
        return NULL;
    json_t *j = kcw_json_text(copy);
    free(copy);
    return j;
}

static json_t *json_query(const kcw_rule_t *rule)
{
    if (rule->expr_formatted) /* as Prometheus shows it: its own parser's text */
        return kcw_json_text(rule->expr_formatted);
    if (rule->expr)
        return json_expr(rule->expr);
    if (!rule->connect)
        return json_string("");
    char *text = connect_query(rule->connect);
    if (!text)
        return NULL;
    json_t *j = kcw_json_text(text);
    free(text);
    return j;
}

static const char *health_name(kcw_rule_health_t h)
{
    switch (h) {
    case KCW_RULE_HEALTH_OK:
        return "ok";
    case KCW_RULE_HEALTH_ERR:
        return "err";
    case KCW_RULE_HEALTH_UNKNOWN:
        break;
    }
    return "unknown";
}

/* Prometheus' AlertingRule.State(): the highest state of any alert it holds,
 * resolved ones included (they are inactive). */
static kcw_alert_state_t rule_state(const kcw_alert_set_t *set)
{
    kcw_alert_state_t max = KCW_ALERT_INACTIVE;
    size_t n = set ? kcw_alert_set_count(set) : 0;
    for (size_t i = 0; i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a && a->state > max)
            max = a->state;
    }
    return max;
}

static json_t *json_rule(const kcw_api_rule_view_t *v)
{
    const kcw_rule_t *rule = v->rule;
    json_t *o = json_object();
    json_t *alerts = json_array();
    if (!o || !alerts) {
        json_decref(alerts);
        json_decref(o);
        return NULL;
    }
    int rc = put(o, "state", json_string(kcw_alert_state_name(rule_state(v->alerts))));
    if (rc == 0)
        rc = put(o, "name", kcw_json_text(rule->alert));
    if (rc == 0)
        rc = put(o, "query", json_query(rule));
    if (rc == 0)
        rc = put(o, "duration", json_ms_seconds(rule->for_ms));
    if (rc == 0)
        rc = put(o, "keepFiringFor", json_ms_seconds(rule->keep_firing_for_ms));
    if (rc == 0)
        rc = put(o, "labels", json_templates(rule->labels, rule->n_labels));
    if (rc == 0)
        rc = put(o, "annotations", json_templates(rule->annotations, rule->n_annotations));
    if (rc == 0)
        rc = append_active(alerts, v->alerts);
    if (rc == 0)
        rc = put(o, "alerts", json_incref(alerts));
    /* An expression Prometheus' parser refused is an error before any
     * evaluation, positioned in the rule file. */
    const char *last_error = rule->expr_error ? rule->expr_error : v->last_error;
    if (rc == 0)
        rc = put(o, "health",
                 json_string(health_name(rule->expr_error ? KCW_RULE_HEALTH_ERR : v->health)));
    if (rc == 0 && last_error && *last_error) { /* omitempty */
        /* A peer's error body may echo credentials back: mask them. */
        char *shown = kcw_log_redact(last_error);
        rc = put(o, "lastError", kcw_json_text(shown ? shown : "(out of memory)"));
        free(shown);
    }
    if (rc == 0)
        rc = put(o, "evaluationTime", json_seconds(v->eval_seconds));
    if (rc == 0)
        rc = put(o, "lastEvaluation", json_time(v->last_eval_ms));
    if (rc == 0)
        rc = put(o, "type", json_string("alerting"));
    json_decref(alerts);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s && set[i] && strcmp(s, set[i]) == 0)
            return true;
    return false;
}

/* NULL when the group is filtered out whole. */
static json_t *json_group(const kcw_api_group_view_t *g, bool with_alerting,
                          const kcw_api_rules_filter_t *f, bool *skip)
{
    const kcw_rule_group_t *grp = g->group;
    json_t *o = json_object();
    json_t *rules = json_array();
    if (!o || !rules) {
        json_decref(rules);
        json_decref(o);
        return NULL;
    }
    int rc = put(o, "name", kcw_json_text(grp->name));
    if (rc == 0)
        rc = put(o, "file", kcw_json_text(grp->file));
    for (size_t i = 0; rc == 0 && with_alerting && g->rules && i < g->n_rules; i++)
        if (g->rules[i].rule &&
            (!f->n_rule_names || in_set(g->rules[i].rule->alert, f->rule_names, f->n_rule_names)))
            rc = append(rules, json_rule(&g->rules[i]));
    /* With filters, a group none of whose rules is left is not listed
     * (Prometheus: "we filtered all the rules of this group"). */
    bool filtering = f->n_rule_names || f->n_groups || f->n_files;
    *skip = rc == 0 && filtering && json_array_size(rules) == 0;
    if (rc == 0)
        rc = put(o, "rules", json_incref(rules));
    if (rc == 0)
        rc = put(o, "interval", json_ms_seconds(g->interval_ms));
    if (rc == 0)
        rc = put(o, "limit", json_integer(grp->limit));
    if (rc == 0)
        rc = put(o, "evaluationTime", json_seconds(g->eval_seconds));
    if (rc == 0)
        rc = put(o, "lastEvaluation", json_time(g->last_eval_ms));
    json_decref(rules);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *kcw_api_rules(const kcw_api_group_view_t *groups, size_t n_groups, const char *type_filter)
{
    kcw_api_rules_filter_t f = {.type = type_filter};
    return kcw_api_rules_filtered(groups, n_groups, &f);
}

json_t *kcw_api_rules_filtered(const kcw_api_group_view_t *groups, size_t n_groups,
                               const kcw_api_rules_filter_t *f)
{
    /* kcwatch has alerting rules only (recording rules are skipped at load):
     * ?type=record lists every group with no rules, as Prometheus would for a
     * server without recording rules. Prometheus lower-cases the parameter. */
    const char *type_filter = f->type;
    bool with_alerting = !type_filter || !*type_filter || strcasecmp(type_filter, "alert") == 0;
    json_t *data = json_object();
    json_t *arr = json_array();
    if (!data || !arr || put(data, "groups", json_incref(arr)) < 0)
        goto fail;
    for (size_t g = 0; groups && g < n_groups; g++) {
        const kcw_rule_group_t *grp = groups[g].group;
        if (!grp || (f->n_groups && !in_set(grp->name, f->groups, f->n_groups)) ||
            (f->n_files && !in_set(grp->file, f->files, f->n_files)))
            continue;
        bool skip = false;
        json_t *o = json_group(&groups[g], with_alerting, f, &skip);
        if (skip) {
            json_decref(o);
            continue;
        }
        if (append(arr, o) < 0)
            goto fail;
    }
    json_decref(arr);
    return data;
fail:
    json_decref(arr);
    json_decref(data);
    return NULL;
}
