/* test_api.c: the /api/v1/alerts and /api/v1/rules data objects against the
 * shape Prometheus 2.42 gives them, parsed back with jansson: field names and
 * order, value and time formats, which alerts are listed, rule state, health
 * and lastError, and the connect: query notation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/api.h"

#define SEC 1000LL
#define MIN (60 * SEC)
/* 2025-11-25T10:00:00.123Z */
#define T0 1764064800123LL

/* --- helpers --------------------------------------------------------------- */

/* An instance from "name", "value" label pairs (NULL-terminated); the
 * annotation summary when summary is not NULL. */
static void inst_make(kcw_instance_t *in, double value, const char *summary, ...)
{
    memset(in, 0, sizeof(*in));
    in->value = value;
    if (summary)
        assert_int_equal(kcw_labels_set(&in->annotations, "summary", summary), 0);
    va_list ap;
    va_start(ap, summary);
    for (const char *name = va_arg(ap, const char *); name; name = va_arg(ap, const char *))
        assert_int_equal(kcw_labels_set(&in->labels, name, va_arg(ap, const char *)), 0);
    va_end(ap);
}

/* Re-parses j from its text, so the checks see what a client would. */
static json_t *roundtrip(json_t *j)
{
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    json_error_t err;
    json_t *back = json_loads(text, JSON_DECODE_ANY, &err);
    if (!back)
        fail_msg("produced JSON does not parse: %s: %s", err.text, text);
    free(text);
    json_decref(j);
    return back;
}

/* Asserts obj's keys are exactly the NULL-terminated list, in that order. */
static void assert_keys(const json_t *obj, ...)
{
    assert_true(json_is_object(obj));
    va_list ap;
    va_start(ap, obj);
    void *it = json_object_iter((json_t *)obj);
    for (const char *want = va_arg(ap, const char *); want; want = va_arg(ap, const char *)) {
        if (!it)
            fail_msg("key %s missing", want);
        assert_string_equal(json_object_iter_key(it), want);
        it = json_object_iter_next((json_t *)obj, it);
    }
    va_end(ap);
    if (it)
        fail_msg("unexpected key %s", json_object_iter_key(it));
}

static const char *str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

/* A JSON number of exactly this value; whole seconds must be integers, as Go
 * prints them ("300", not "300.0"). */
static void assert_number(const json_t *obj, const char *key, double want)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("%s is not a number", key);
    assert_true(json_number_value(v) == want);
    if (want == floor(want))
        assert_true(json_is_integer(v));
}

/* The alert in arr whose label `name` is value. */
static const json_t *find_alert(const json_t *arr, const char *name, const char *value)
{
    size_t i;
    const json_t *a;
    json_array_foreach(arr, i, a)
    {
        const char *v = json_string_value(json_object_get(json_object_get(a, "labels"), name));
        if (v && strcmp(v, value) == 0)
            return a;
    }
    fail_msg("no alert with %s=%s", name, value);
    return NULL;
}

/* --- fixture --------------------------------------------------------------- */

static const char *const rules_yaml =
    "groups:\n"
    "  - name: connect-status\n"
    "    interval: 30s\n"
    "    rules:\n"
    "      - alert: ConnectTaskFailed\n"
    "        connect: {target: task, state: FAILED, cluster: 'prod-.*'}\n"
    "        for: 5m\n"
    "        keep_firing_for: 10m\n"
    "        labels:\n"
    "          team: data\n"
    "          severity: warning\n"
    "        annotations:\n"
    "          summary: 'Task {{ $labels.task }} failed'\n"
    "          description: 'on {{ $labels.worker_id }}'\n"
    "      - alert: ConnectorDegraded\n"
    "        connect:\n"
    "          target: connector\n"
    "          connector: 'a\"b\\.*'\n"
    "          type: [sink, source]\n"
    "          state: [PAUSED, RUNNING]\n"
    "          tasks_below_configs: true\n"
    "        for: 10m\n"
    "      - alert: WorkerDown\n"
    "        connect: {target: cluster, state: UNREACHABLE}\n"
    "  - name: lag\n"
    "    limit: 10\n"
    "    rules:\n"
    "      - alert: ConnectLag\n"
    "        expr: |\n"
    "          sum by (connector) (kafka_connect_lag) > 100\n"
    "        for: 1500ms\n";

typedef struct fixture {
    kcw_ruleset_t *rs;
    kcw_alert_set_t *failed;   /* two firing alerts, one held by keep_firing_for */
    kcw_alert_set_t *degraded; /* one pending alert */
    kcw_alert_set_t *lag;      /* one resolved alert only */
    kcw_alert_set_t *budget;   /* the "extra" set: one firing alert */
    kcw_api_rule_view_t status_rules[3];
    kcw_api_rule_view_t lag_rules[1];
    kcw_api_group_view_t groups[2];
} fixture_t;

static int fixture_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    kcw_errors_t errs = {0};
    if (kcw_rules_load_string(rules_yaml, "rules.d/api.yaml", &f->rs, &errs) != 0) {
        kcw_errors_print(&errs, stderr);
        fail_msg("rules did not load");
    }
    kcw_errors_clear(&errs);
    assert_int_equal(f->rs->n_groups, 2);
    kcw_rule_group_t *status = &f->rs->groups[0], *lag = &f->rs->groups[1];

    /* task 1 and task 2 pending at T0, firing at T0+5m; task 2 is gone at
     * T0+6m but keep_firing_for holds it */
    f->failed = kcw_alert_set_new("ConnectTaskFailed", 5 * MIN, 10 * MIN);
    assert_non_null(f->failed);
    kcw_instance_t in[2];
    for (int64_t t = T0; t <= T0 + 5 * MIN; t += 5 * MIN) {
        inst_make(&in[0], 1, "Task 1 failed", "alertname", "ConnectTaskFailed", "task", "1",
                  "connector", "orders-sink", "severity", "warning", NULL);
        inst_make(&in[1], 0.25, "Task 2 failed", "alertname", "ConnectTaskFailed", "task", "2",
                  "connector", "orders-sink", "severity", "warning", NULL);
        assert_int_equal(kcw_alert_set_update(f->failed, in, 2, t), 0);
    }
    inst_make(&in[0], 1, "Task 1 failed", "alertname", "ConnectTaskFailed", "task", "1",
              "connector", "orders-sink", "severity", "warning", NULL);
    assert_int_equal(kcw_alert_set_update(f->failed, in, 1, T0 + 6 * MIN), 0);

    f->degraded = kcw_alert_set_new("ConnectorDegraded", 10 * MIN, 0);
    assert_non_null(f->degraded);
    inst_make(&in[0], 2, NULL, "alertname", "ConnectorDegraded", "connector", "users", NULL);
    /* a cut template output can end inside a UTF-8 character */
    assert_int_equal(kcw_labels_set(&in[0].annotations, "summary", "caf\xC3"), 0);
    assert_int_equal(kcw_alert_set_update(f->degraded, in, 1, T0 + 100), 0);

    /* fired (for 1.5s) and resolved: listed nowhere, the rule is inactive */
    f->lag = kcw_alert_set_new("ConnectLag", 1500, 0);
    assert_non_null(f->lag);
    inst_make(&in[0], 500, NULL, "alertname", "ConnectLag", "connector", "orders-sink", NULL);
    assert_int_equal(kcw_alert_set_update(f->lag, in, 1, T0), 0);
    inst_make(&in[0], 500, NULL, "alertname", "ConnectLag", "connector", "orders-sink", NULL);
    assert_int_equal(kcw_alert_set_update(f->lag, in, 1, T0 + 2 * SEC), 0);
    assert_int_equal(kcw_alert_set_count_state(f->lag, KCW_ALERT_FIRING), 1);
    assert_int_equal(kcw_alert_set_update(f->lag, NULL, 0, T0 + 4 * SEC), 0);
    assert_int_equal(kcw_alert_set_count(f->lag), 1); /* kept, resolved */

    f->budget = kcw_alert_set_new("KcwatchRestartBudgetExhausted", 0, 0);
    assert_non_null(f->budget);
    inst_make(&in[0], NAN, NULL, "alertname", "KcwatchRestartBudgetExhausted", "connector",
              "orders-sink", NULL);
    assert_int_equal(kcw_alert_set_update(f->budget, in, 1, T0 + 7 * MIN), 0);

    f->status_rules[0] = (kcw_api_rule_view_t){.rule = &status->rules[0],
                                               .alerts = f->failed,
                                               .health = KCW_RULE_HEALTH_OK,
                                               .last_eval_ms = T0 + 6 * MIN,
                                               .eval_seconds = 0.0025};
    f->status_rules[1] = (kcw_api_rule_view_t){.rule = &status->rules[1],
                                               .alerts = f->degraded,
                                               .health = KCW_RULE_HEALTH_ERR,
                                               .last_error = "cluster prod-eu: no worker reachable",
                                               .last_eval_ms = T0 + 6 * MIN + 120,
                                               .eval_seconds = 2};
    /* never evaluated: no alert set yet */
    f->status_rules[2] = (kcw_api_rule_view_t){.rule = &status->rules[2]};
    f->lag_rules[0] = (kcw_api_rule_view_t){.rule = &lag->rules[0],
                                            .alerts = f->lag,
                                            .health = KCW_RULE_HEALTH_OK,
                                            .last_error = "", /* empty: omitted too */
                                            .last_eval_ms = T0 + 4 * SEC,
                                            .eval_seconds = 0.5};
    f->groups[0] = (kcw_api_group_view_t){.group = status,
                                          .interval_ms = 30 * SEC,
                                          .rules = f->status_rules,
                                          .n_rules = 3,
                                          .last_eval_ms = T0 + 6 * MIN,
                                          .eval_seconds = 0.003};
    f->groups[1] = (kcw_api_group_view_t){
        .group = lag, .interval_ms = 1500, .rules = f->lag_rules, .n_rules = 1};
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture_t *f = *state;
    kcw_alert_set_free(f->failed);
    kcw_alert_set_free(f->degraded);
    kcw_alert_set_free(f->lag);
    kcw_alert_set_free(f->budget);
    kcw_ruleset_free(f->rs);
    free(f);
    return 0;
}

/* --- tests ----------------------------------------------------------------- */

static void test_time_format(void **state)
{
    (void)state;
    char buf[48];
    assert_string_equal(kcw_api_time(0, buf, sizeof(buf)), "0001-01-01T00:00:00Z");
    assert_string_equal(kcw_api_time(T0, buf, sizeof(buf)), "2025-11-25T10:00:00.123Z");
    /* RFC3339Nano trims the fraction's trailing zeros, and the dot with them */
    assert_string_equal(kcw_api_time(T0 - 3, buf, sizeof(buf)), "2025-11-25T10:00:00.12Z");
    assert_string_equal(kcw_api_time(T0 - 23, buf, sizeof(buf)), "2025-11-25T10:00:00.1Z");
    assert_string_equal(kcw_api_time(T0 - 123, buf, sizeof(buf)), "2025-11-25T10:00:00Z");
    assert_string_equal(kcw_api_time(T0 - 122, buf, sizeof(buf)), "2025-11-25T10:00:00.001Z");
    assert_string_equal(kcw_api_time(1, buf, sizeof(buf)), "1970-01-01T00:00:00.001Z");
    assert_string_equal(kcw_api_time(-1, buf, sizeof(buf)), "1969-12-31T23:59:59.999Z");
    /* bounded: a short buffer is truncated, still terminated */
    char small[8];
    assert_string_equal(kcw_api_time(T0, small, sizeof(small)), "2025-11");
    assert_null(kcw_api_time(T0, NULL, 0));
}

static void test_alerts(void **state)
{
    fixture_t *f = *state;
    const kcw_alert_set_t *extra[] = {f->budget};
    json_t *data = roundtrip(kcw_api_alerts(f->groups, 2, extra, 1));
    assert_keys(data, "alerts", NULL);
    const json_t *alerts = json_object_get(data, "alerts");
    assert_true(json_is_array(alerts));
    /* 2 firing + 1 pending + the extra set's one; the resolved ConnectLag is not listed */
    assert_int_equal(json_array_size(alerts), 4);

    const json_t *a = find_alert(alerts, "task", "1");
    assert_keys(a, "labels", "annotations", "state", "activeAt", "value", NULL);
    assert_keys(json_object_get(a, "labels"), "alertname", "connector", "severity", "task", NULL);
    assert_string_equal(str(json_object_get(a, "labels"), "task"), "1");
    assert_string_equal(str(json_object_get(a, "annotations"), "summary"), "Task 1 failed");
    assert_string_equal(str(a, "state"), "firing");
    assert_string_equal(str(a, "activeAt"), "2025-11-25T10:00:00.123Z");
    assert_string_equal(str(a, "value"), "1e+00");

    /* held by keep_firing_for since the first evaluation it was absent */
    a = find_alert(alerts, "task", "2");
    assert_keys(a, "labels", "annotations", "state", "activeAt", "keepFiringSince", "value", NULL);
    assert_string_equal(str(a, "state"), "firing");
    assert_string_equal(str(a, "keepFiringSince"), "2025-11-25T10:06:00.123Z");
    assert_string_equal(str(a, "value"), "2.5e-01");
    char *text = json_dumps(a, JSON_COMPACT);
    assert_string_equal(text, "{\"labels\":{\"alertname\":\"ConnectTaskFailed\",\"connector\":"
                              "\"orders-sink\",\"severity\":\"warning\",\"task\":\"2\"},"
                              "\"annotations\":{\"summary\":\"Task 2 failed\"},\"state\":"
                              "\"firing\",\"activeAt\":\"2025-11-25T10:00:00.123Z\","
                              "\"keepFiringSince\":\"2025-11-25T10:06:00.123Z\",\"value\":"
                              "\"2.5e-01\"}");
    free(text);

    a = find_alert(alerts, "alertname", "ConnectorDegraded");
    assert_string_equal(str(a, "state"), "pending");
    assert_string_equal(str(a, "activeAt"), "2025-11-25T10:00:00.223Z");
    assert_string_equal(str(a, "value"), "2e+00");
    /* the invalid byte became U+FFFD, as Go's encoder does */
    assert_string_equal(str(json_object_get(a, "annotations"), "summary"), "caf\xEF\xBF\xBD");

    a = find_alert(alerts, "alertname", "KcwatchRestartBudgetExhausted");
    assert_string_equal(str(a, "state"), "firing");
    assert_string_equal(str(a, "value"), "NaN");
    assert_keys(json_object_get(a, "annotations"), NULL); /* {} rather than null */
    json_decref(data);

    /* nothing at all: an empty list, not null */
    data = roundtrip(kcw_api_alerts(NULL, 0, NULL, 0));
    assert_true(json_is_array(json_object_get(data, "alerts")));
    assert_int_equal(json_array_size(json_object_get(data, "alerts")), 0);
    json_decref(data);
}

/* strconv.FormatFloat(v, 'e', -1, 64): the shortest digits that read back. */
static void test_value_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {1, "1e+00"},
        {0.25, "2.5e-01"},
        {0, "0e+00"},
        {-3, "-3e+00"},
        {1234.5, "1.2345e+03"},
        {0.1, "1e-01"},
        {100, "1e+02"},
        {1e100, "1e+100"},
        {123456789, "1.23456789e+08"},
        {1.0 / 3, "3.333333333333333e-01"},
        {2.0 / 3, "6.666666666666666e-01"},
        {0.000123, "1.23e-04"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    kcw_alert_set_t *set = kcw_alert_set_new("V", 0, 0);
    assert_non_null(set);
    kcw_instance_t in[32];
    for (size_t i = 0; i < n; i++) {
        char id[8];
        snprintf(id, sizeof(id), "%zu", i);
        inst_make(&in[i], cases[i].v, NULL, "alertname", "V", "case", id, NULL);
    }
    assert_int_equal(kcw_alert_set_update(set, in, n, T0), 0);
    const kcw_alert_set_t *extra[] = {set};
    json_t *data = roundtrip(kcw_api_alerts(NULL, 0, extra, 1));
    const json_t *alerts = json_object_get(data, "alerts");
    assert_int_equal(json_array_size(alerts), n);
    for (size_t i = 0; i < n; i++) {
        char id[8];
        snprintf(id, sizeof(id), "%zu", i);
        const json_t *a = find_alert(alerts, "case", id);
        if (strcmp(str(a, "value"), cases[i].want) != 0)
            fail_msg("case %zu: got %s, want %s", i, str(a, "value"), cases[i].want);
    }
    json_decref(data);
    kcw_alert_set_free(set);
}

static void test_rules(void **state)
{
    fixture_t *f = *state;
    json_t *data = roundtrip(kcw_api_rules(f->groups, 2, NULL));
    assert_keys(data, "groups", NULL);
    const json_t *groups = json_object_get(data, "groups");
    assert_int_equal(json_array_size(groups), 2);

    const json_t *g = json_array_get(groups, 0);
    assert_keys(g, "name", "file", "rules", "interval", "limit", "evaluationTime", "lastEvaluation",
                NULL);
    assert_string_equal(str(g, "name"), "connect-status");
    assert_string_equal(str(g, "file"), "rules.d/api.yaml");
    assert_number(g, "interval", 30);
    assert_number(g, "limit", 0);
    assert_number(g, "evaluationTime", 0.003);
    assert_string_equal(str(g, "lastEvaluation"), "2025-11-25T10:06:00.123Z");
    const json_t *rules = json_object_get(g, "rules");
    assert_int_equal(json_array_size(rules), 3);

    /* firing, with lastError omitted (no error) */
    const json_t *r = json_array_get(rules, 0);
    assert_keys(r, "state", "name", "query", "duration", "keepFiringFor", "labels", "annotations",
                "alerts", "health", "evaluationTime", "lastEvaluation", "type", NULL);
    assert_string_equal(str(r, "state"), "firing");
    assert_string_equal(str(r, "name"), "ConnectTaskFailed");
    assert_string_equal(str(r, "query"), "connect{target=\"task\", cluster=~\"prod-.*\", "
                                         "state=~\"FAILED\"}");
    assert_number(r, "duration", 300);
    assert_number(r, "keepFiringFor", 600);
    /* the templates as written, sorted by name */
    assert_keys(json_object_get(r, "labels"), "severity", "team", NULL);
    assert_string_equal(str(json_object_get(r, "labels"), "team"), "data");
    assert_keys(json_object_get(r, "annotations"), "description", "summary", NULL);
    assert_string_equal(str(json_object_get(r, "annotations"), "summary"),
                        "Task {{ $labels.task }} failed");
    const json_t *alerts = json_object_get(r, "alerts");
    assert_int_equal(json_array_size(alerts), 2);
    const json_t *a = find_alert(alerts, "task", "2");
    assert_keys(a, "labels", "annotations", "state", "activeAt", "keepFiringSince", "value", NULL);
    assert_string_equal(str(a, "value"), "2.5e-01");
    assert_string_equal(str(r, "health"), "ok");
    assert_number(r, "evaluationTime", 0.0025);
    assert_string_equal(str(r, "lastEvaluation"), "2025-11-25T10:06:00.123Z");
    assert_string_equal(str(r, "type"), "alerting");

    /* pending, failing health with its error */
    r = json_array_get(rules, 1);
    assert_keys(r, "state", "name", "query", "duration", "keepFiringFor", "labels", "annotations",
                "alerts", "health", "lastError", "evaluationTime", "lastEvaluation", "type", NULL);
    assert_string_equal(str(r, "state"), "pending");
    assert_string_equal(str(r, "query"),
                        "connect{target=\"connector\", connector=~\"a\\\"b\\\\.*\", "
                        "type=~\"source|sink\", state=~\"RUNNING|PAUSED\", "
                        "tasks_below_configs=\"true\"}");
    assert_number(r, "duration", 600);
    assert_number(r, "keepFiringFor", 0);
    assert_keys(json_object_get(r, "labels"), NULL);
    assert_keys(json_object_get(r, "annotations"), NULL);
    assert_int_equal(json_array_size(json_object_get(r, "alerts")), 1);
    assert_string_equal(str(r, "health"), "err");
    assert_string_equal(str(r, "lastError"), "cluster prod-eu: no worker reachable");
    assert_number(r, "evaluationTime", 2);
    assert_string_equal(str(r, "lastEvaluation"), "2025-11-25T10:06:00.243Z");

    /* never evaluated */
    r = json_array_get(rules, 2);
    assert_string_equal(str(r, "state"), "inactive");
    assert_string_equal(str(r, "query"), "connect{target=\"cluster\", state=~\"UNREACHABLE\"}");
    assert_number(r, "duration", 0);
    assert_true(json_is_array(json_object_get(r, "alerts")));
    assert_int_equal(json_array_size(json_object_get(r, "alerts")), 0);
    assert_string_equal(str(r, "health"), "unknown");
    assert_null(json_object_get(r, "lastError"));
    assert_number(r, "evaluationTime", 0);
    assert_string_equal(str(r, "lastEvaluation"), "0001-01-01T00:00:00Z");

    g = json_array_get(groups, 1);
    assert_string_equal(str(g, "name"), "lag");
    assert_number(g, "interval", 1.5);
    assert_number(g, "limit", 10);
    assert_number(g, "evaluationTime", 0);
    assert_string_equal(str(g, "lastEvaluation"), "0001-01-01T00:00:00Z");
    r = json_array_get(json_object_get(g, "rules"), 0);
    /* its only alert is resolved: inactive, and not listed */
    assert_string_equal(str(r, "state"), "inactive");
    assert_int_equal(json_array_size(json_object_get(r, "alerts")), 0);
    assert_string_equal(str(r, "query"), "sum by (connector) (kafka_connect_lag) > 100");
    assert_number(r, "duration", 1.5);
    assert_null(json_object_get(r, "lastError")); /* "" is omitted like none */
    assert_number(r, "evaluationTime", 0.5);
    assert_string_equal(str(r, "lastEvaluation"), "2025-11-25T10:00:04.123Z");
    json_decref(data);
}

static void test_rules_type_filter(void **state)
{
    fixture_t *f = *state;
    /* no recording rules in kcwatch: every group, no rules */
    json_t *data = roundtrip(kcw_api_rules(f->groups, 2, "record"));
    const json_t *groups = json_object_get(data, "groups");
    assert_int_equal(json_array_size(groups), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *rules = json_object_get(json_array_get(groups, i), "rules");
        assert_true(json_is_array(rules));
        assert_int_equal(json_array_size(rules), 0);
    }
    json_decref(data);

    data = roundtrip(kcw_api_rules(f->groups, 2, "alert"));
    groups = json_object_get(data, "groups");
    assert_int_equal(json_array_size(json_object_get(json_array_get(groups, 0), "rules")), 3);
    assert_int_equal(json_array_size(json_object_get(json_array_get(groups, 1), "rules")), 1);
    json_decref(data);

    data = roundtrip(kcw_api_rules(NULL, 0, NULL));
    assert_true(json_is_array(json_object_get(data, "groups")));
    assert_int_equal(json_array_size(json_object_get(data, "groups")), 0);
    json_decref(data);
}

/* The group names of data, joined by ",", and each group's rule names. */
static void names_of(const json_t *data, char *buf, size_t n)
{
    buf[0] = '\0';
    const json_t *groups = json_object_get(data, "groups");
    for (size_t i = 0; i < json_array_size(groups); i++) {
        const json_t *g = json_array_get(groups, i);
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s:", i ? "," : "",
                 json_string_value(json_object_get(g, "name")));
        const json_t *rules = json_object_get(g, "rules");
        for (size_t r = 0; r < json_array_size(rules); r++) {
            len = strlen(buf);
            snprintf(buf + len, n - len, "%s%s", r ? "+" : "",
                     json_string_value(json_object_get(json_array_get(rules, r), "name")));
        }
    }
}

static void test_rules_name_group_file_filters(void **state)
{
    fixture_t *f = *state;
    char got[512];
    const char *names[] = {"ConnectLag", "WorkerDown", "NoSuchRule"};
    kcw_api_rules_filter_t flt = {.rule_names = names, .n_rule_names = 3};
    json_t *data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    names_of(data, got, sizeof(got));
    assert_string_equal(got, "connect-status:WorkerDown,lag:ConnectLag");
    json_decref(data);

    const char *groups[] = {"lag"};
    flt = (kcw_api_rules_filter_t){.groups = groups, .n_groups = 1};
    data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    names_of(data, got, sizeof(got));
    assert_string_equal(got, "lag:ConnectLag");
    json_decref(data);

    /* A rule name outside the chosen group: nothing left, no group listed. */
    const char *only[] = {"WorkerDown"};
    flt = (kcw_api_rules_filter_t){.groups = groups, .n_groups = 1, .rule_names = only,
                                   .n_rule_names = 1};
    data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    assert_int_equal(json_array_size(json_object_get(data, "groups")), 0);
    json_decref(data);

    const char *files[] = {"rules.d/api.yaml"}, *other[] = {"rules.d/other.yaml"};
    flt = (kcw_api_rules_filter_t){.files = files, .n_files = 1};
    data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    assert_int_equal(json_array_size(json_object_get(data, "groups")), 2);
    json_decref(data);
    flt = (kcw_api_rules_filter_t){.files = other, .n_files = 1};
    data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    assert_int_equal(json_array_size(json_object_get(data, "groups")), 0);
    json_decref(data);

    /* type=record with a filter: every group filtered empty is left out. */
    flt = (kcw_api_rules_filter_t){.type = "record", .groups = groups, .n_groups = 1};
    data = roundtrip(kcw_api_rules_filtered(f->groups, 2, &flt));
    assert_int_equal(json_array_size(json_object_get(data, "groups")), 0);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_value_format),
        cmocka_unit_test_setup_teardown(test_alerts, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rules, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rules_type_filter, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rules_name_group_file_filters, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
