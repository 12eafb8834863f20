/* test_eval.c: connect: rules against a hand-built Connect status model:
 * which instances match, their labels, values, traces and annotations; and
 * PromQL rules against hand-built query results (vectors, scalars). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/eval.h"
#include "kcwatch/prom.h"

#define TRACE_1                                                                                    \
    "org.apache.kafka.connect.errors.ConnectException: sink write failed\n"                        \
    "\tat com.acme.OrdersSinkTask.put(OrdersSinkTask.java:88)"

/* A long trace whose root cause sits at the bottom, as Java prints it. */
#define TRACE_LONG                                                                                 \
    "org.apache.kafka.connect.errors.ConnectException: outer\n"                                    \
    "\tat a.A.a(A.java:1)\n\tat a.A.b(A.java:2)\n\tat a.A.c(A.java:3)\n"                           \
    "\tat a.A.d(A.java:4)\n\tat a.A.e(A.java:5)\n\tat a.A.f(A.java:6)\n"                           \
    "\tat a.A.g(A.java:7)\n\tat a.A.h(A.java:8)\n\tat a.A.i(A.java:9)\n"                           \
    "Caused by: java.sql.SQLException: middle\n\tat b.B.a(B.java:1)\n"                             \
    "Caused by: java.net.ConnectException: Connection refused\n\tat c.C.a(C.java:1)\n"

static kcw_task_status_t orders_tasks[] = {
    {.id = 0, .state = KCW_STATE_RUNNING, .worker_id = "w1:8083"},
    {.id = 1, .state = KCW_STATE_FAILED, .worker_id = "w3:8083", .trace = TRACE_1},
    {.id = 2, .state = KCW_STATE_PAUSED, .worker_id = "w2:8083"},
};
static kcw_task_status_t users_tasks[] = {
    {.id = 0, .state = KCW_STATE_PAUSED, .worker_id = "w2:8083"},
};
static kcw_task_status_t legacy_tasks[] = {
    {.id = 0, .state = KCW_STATE_FAILED, .worker_id = NULL, .trace = TRACE_LONG},
};
static kcw_task_status_t stale_tasks[] = {
    {.id = 0, .state = KCW_STATE_FAILED, .worker_id = "s1:8083", .trace = "boom"},
};

/* sorted by name, as connect.c keeps them */
static kcw_connector_status_t prod_connectors[] = {
    {.name = "billing-sink",
     .type = KCW_CTYPE_SINK,
     .state = KCW_STATE_FAILED,
     .worker_id = "w2:8083",
     .trace = "java.lang.IllegalStateException: no db",
     .has_info = true,
     .n_task_configs = 0,
     .tasks_max = 1},
    {.name = "legacy",
     .type = KCW_CTYPE_UNKNOWN,
     .state = KCW_STATE_RUNNING,
     .worker_id = "w1:8083",
     .tasks = legacy_tasks,
     .n_tasks = 1,
     .has_info = false,
     .n_task_configs = -1,
     .tasks_max = -1,
     .missing_polls = 2},
    {.name = "orders-sink",
     .type = KCW_CTYPE_SINK,
     .state = KCW_STATE_RUNNING,
     .worker_id = "w1:8083",
     .tasks = orders_tasks,
     .n_tasks = 3,
     .has_info = true,
     .n_task_configs = 3,
     .tasks_max = 3},
    {.name = "users-source",
     .type = KCW_CTYPE_SOURCE,
     .state = KCW_STATE_PAUSED,
     .worker_id = "w2:8083",
     .tasks = users_tasks,
     .n_tasks = 1,
     .has_info = true,
     .n_task_configs = 1,
     .tasks_max = 1},
};
static kcw_connector_status_t stale_connectors[] = {
    {.name = "orders-sink",
     .type = KCW_CTYPE_SINK,
     .state = KCW_STATE_RUNNING,
     .worker_id = "s1:8083",
     .tasks = stale_tasks,
     .n_tasks = 1,
     .has_info = true,
     .n_task_configs = 1,
     .tasks_max = 1},
};

static kcw_cluster_status_t prod = {
    .name = "prod-eu",
    .reachable = true,
    .ever_reachable = true,
    .last_poll_ms = 1000,
    .last_ok_ms = 1000,
    .connectors = prod_connectors,
    .n_connectors = 4,
};
static kcw_cluster_status_t staging = {
    .name = "staging",
    .reachable = false,
    .ever_reachable = true,
    .last_poll_ms = 1000,
    .last_ok_ms = 500,
    .last_error = "no worker reachable",
    .connectors = stale_connectors,
    .n_connectors = 1,
};
static kcw_cluster_status_t fresh = {
    .name = "new", .reachable = false, .last_poll_ms = 0, /* not polled yet */
};

typedef struct result {
    kcw_ruleset_t *rs;
    kcw_instance_t *inst;
    size_t n;
} result_t;

/* Loads one rule from YAML ("alert: X" and the rest, indented for a rule
 * item) and evaluates it against the given clusters. */
static result_t run(const char *rule_yaml, const kcw_cluster_status_t *const *clusters,
                    size_t n_clusters, const kcw_labels_t *external)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml), "groups:\n  - name: g\n    rules:\n      - %s\n", rule_yaml);
    result_t r = {0};
    kcw_errors_t errs = {0};
    if (kcw_rules_load_string(yaml, "eval.yaml", &r.rs, &errs) != 0) {
        kcw_errors_print(&errs, stderr);
        fail_msg("rule did not load");
    }
    kcw_errors_clear(&errs);
    assert_int_equal(r.rs->n_groups, 1);
    assert_int_equal(r.rs->groups[0].n_rules, 1);
    kcw_rootcause_t *rootcause = kcw_rootcause_new();
    assert_non_null(rootcause);
    assert_int_equal(kcw_eval_connect_rule(&r.rs->groups[0].rules[0], clusters, n_clusters,
                                           external, rootcause, &r.inst, &r.n),
                     0);
    kcw_rootcause_free(rootcause);
    return r;
}

static void result_free(result_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        kcw_instance_clear(&r->inst[i]);
    free(r->inst);
    kcw_ruleset_free(r->rs);
}

static const kcw_cluster_status_t *const prod_only[] = {&prod};
static const kcw_cluster_status_t *const all[] = {&prod, &staging, &fresh, NULL};

static const char *label(const kcw_instance_t *in, const char *name)
{
    return kcw_labels_get(&in->labels, name);
}

static void test_failed_task(void **state)
{
    (void)state;
    result_t r = run("alert: ConnectTaskFailed\n"
                     "        connect: {target: task, state: FAILED}\n"
                     "        labels:\n"
                     "          severity: warning\n"
                     "          team: '{{ $labels.connector }}-team'\n"
                     "          state: 'was-{{ $labels.state }}'\n"
                     "          alertname: Renamed\n"
                     "        annotations:\n"
                     "          summary: 'Task {{ $labels.task }} of {{ $labels.connector }} on "
                     "{{ $labels.worker_id }} ({{ $value }})'\n"
                     "          trace: '{{ $trace }}'\n",
                     prod_only, 1, NULL);
    /* orders-sink/1 and legacy/0; the PAUSED and RUNNING tasks do not match */
    assert_int_equal(r.n, 2);
    const kcw_instance_t *in = &r.inst[1];
    assert_string_equal(label(in, "connector"), "orders-sink");
    assert_string_equal(label(in, "alertname"), "ConnectTaskFailed");
    assert_string_equal(label(in, "cluster"), "prod-eu");
    assert_string_equal(label(in, "task"), "1");
    assert_string_equal(label(in, "worker_id"), "w3:8083");
    assert_string_equal(label(in, "type"), "sink");
    assert_string_equal(label(in, "severity"), "warning");
    assert_string_equal(label(in, "team"), "orders-sink-team");
    /* rule labels win, templated with the match's own labels */
    assert_string_equal(label(in, "state"), "was-FAILED");
    /* the trace's root-cause key (rootcause.h) */
    assert_string_equal(label(in, "root_cause"),
                        "org.apache.kafka.connect.errors.ConnectException: sink write failed @ "
                        "com.acme.OrdersSinkTask.put");
    assert_int_equal(in->labels.n, 10);
    assert_true(in->value == 1);
    assert_string_equal(in->trace, TRACE_1);
    assert_string_equal(kcw_labels_get(&in->annotations, "summary"),
                        "Task 1 of orders-sink on w3:8083 (1)");
    assert_string_equal(kcw_labels_get(&in->annotations, "trace"), TRACE_1);

    in = &r.inst[0];
    assert_string_equal(label(in, "connector"), "legacy");
    assert_null(label(in, "type"));      /* unknown type: no label */
    assert_null(label(in, "worker_id")); /* none known */
    assert_string_equal(in->trace, TRACE_LONG);
    /* the deepest cause, with the frames of its own section */
    assert_string_equal(label(in, "root_cause"), "java.net.ConnectException: Connection refused @ c.C.a");
    /* $trace is the head plus the root cause */
    assert_string_equal(kcw_labels_get(&in->annotations, "trace"),
                        "org.apache.kafka.connect.errors.ConnectException: outer\n"
                        "\tat a.A.a(A.java:1)\n\tat a.A.b(A.java:2)\n\tat a.A.c(A.java:3)\n"
                        "\tat a.A.d(A.java:4)\n\tat a.A.e(A.java:5)\n\tat a.A.f(A.java:6)\n"
                        "\tat a.A.g(A.java:7)\n"
                        "\t...\n"
                        "Caused by: java.net.ConnectException: Connection refused");
    result_free(&r);
}

static void test_paused_not_failed(void **state)
{
    (void)state;
    result_t r = run("alert: Paused\n        connect: {state: PAUSED}\n", prod_only, 1, NULL);
    assert_int_equal(r.n, 2);
    assert_string_equal(label(&r.inst[0], "connector"), "orders-sink");
    assert_string_equal(label(&r.inst[0], "task"), "2");
    assert_string_equal(label(&r.inst[0], "state"), "PAUSED");
    assert_null(r.inst[0].trace);
    assert_string_equal(label(&r.inst[1], "connector"), "users-source");
    result_free(&r);
}

static void test_regex_filters(void **state)
{
    (void)state;
    result_t r =
        run("alert: A\n        connect: {cluster: 'prod-.*', state: FAILED}\n", all, 4, NULL);
    assert_int_equal(r.n, 2); /* staging's stale failure excluded by the cluster regex */
    for (size_t i = 0; i < r.n; i++)
        assert_string_equal(label(&r.inst[i], "cluster"), "prod-eu");
    result_free(&r);

    r = run("alert: A\n        connect: {connector: 'orders-.*', state: FAILED}\n", all, 4, NULL);
    assert_int_equal(r.n, 2); /* prod-eu and staging, both orders-sink */
    assert_string_equal(label(&r.inst[0], "cluster"), "prod-eu");
    assert_string_equal(label(&r.inst[1], "cluster"), "staging");
    result_free(&r);

    /* anchored like a Prometheus matcher: "sink" is not "orders-sink" */
    r = run("alert: A\n        connect: {connector: sink}\n", all, 4, NULL);
    assert_int_equal(r.n, 0);
    assert_null(r.inst);
    result_free(&r);
}

static void test_type_filter(void **state)
{
    (void)state;
    result_t r = run("alert: A\n        connect: {type: source}\n", prod_only, 1, NULL);
    assert_int_equal(r.n, 1);
    assert_string_equal(label(&r.inst[0], "connector"), "users-source");
    assert_string_equal(label(&r.inst[0], "type"), "source");
    result_free(&r);

    r = run("alert: A\n        connect: {type: sink, state: FAILED}\n", prod_only, 1, NULL);
    assert_int_equal(r.n, 1); /* legacy (type unknown) is not a sink */
    assert_string_equal(label(&r.inst[0], "connector"), "orders-sink");
    result_free(&r);

    r = run("alert: A\n        connect: {type: [source, sink]}\n", prod_only, 1, NULL);
    assert_int_equal(r.n, 4); /* every task of typed connectors */
    result_free(&r);
}

static void test_connector_target(void **state)
{
    (void)state;
    result_t r = run("alert: ConnectorFailed\n        connect: {target: connector, state: FAILED}\n"
                     "        annotations: {d: '{{ $trace }}'}\n",
                     prod_only, 1, NULL);
    assert_int_equal(r.n, 1);
    const kcw_instance_t *in = &r.inst[0];
    assert_string_equal(label(in, "connector"), "billing-sink");
    assert_string_equal(label(in, "worker_id"), "w2:8083");
    assert_string_equal(label(in, "state"), "FAILED");
    assert_null(label(in, "task"));
    assert_string_equal(in->trace, "java.lang.IllegalStateException: no db");
    assert_string_equal(kcw_labels_get(&in->annotations, "d"),
                        "java.lang.IllegalStateException: no db");
    result_free(&r);
}

static void test_tasks_below_configs(void **state)
{
    (void)state;
    result_t r = run("alert: Degraded\n"
                     "        connect: {target: connector, state: RUNNING, "
                     "tasks_below_configs: true}\n"
                     "        annotations: {s: '{{ $value }} short'}\n",
                     prod_only, 1, NULL);
    /* orders-sink: 3 task configs, 1 RUNNING; legacy has no known configs */
    assert_int_equal(r.n, 1);
    assert_string_equal(label(&r.inst[0], "connector"), "orders-sink");
    assert_true(r.inst[0].value == 2);
    assert_string_equal(kcw_labels_get(&r.inst[0].annotations, "s"), "2 short");
    result_free(&r);

    /* without a state filter the PAUSED connector counts too; billing has 0 configs */
    r = run("alert: Degraded\n        connect: {target: connector, tasks_below_configs: true}\n",
            prod_only, 1, NULL);
    assert_int_equal(r.n, 2);
    assert_string_equal(label(&r.inst[0], "connector"), "orders-sink");
    assert_string_equal(label(&r.inst[1], "connector"), "users-source");
    assert_true(r.inst[1].value == 1);
    result_free(&r);
}

static void test_unreachable_cluster(void **state)
{
    (void)state;
    kcw_labels_t ext = {0};
    assert_int_equal(kcw_labels_set(&ext, "env", "prod"), 0);
    result_t r = run("alert: ConnectClusterUnreachable\n"
                     "        connect: {target: cluster, state: UNREACHABLE}\n"
                     "        annotations: {s: '{{ $labels.cluster }} down in "
                     "{{ $externalLabels.env }}'}\n",
                     all, 4, &ext);
    /* prod-eu answers; "new" was never polled */
    assert_int_equal(r.n, 1);
    const kcw_instance_t *in = &r.inst[0];
    assert_string_equal(label(in, "cluster"), "staging");
    assert_string_equal(label(in, "state"), "UNREACHABLE");
    assert_string_equal(label(in, "alertname"), "ConnectClusterUnreachable");
    assert_int_equal(in->labels.n, 3);
    assert_null(in->trace);
    assert_string_equal(kcw_labels_get(&in->annotations, "s"), "staging down in prod");
    result_free(&r);
    kcw_labels_clear(&ext);

    /* the stale model of an unreachable cluster still holds its failed task */
    const kcw_cluster_status_t *const only_staging[] = {&staging};
    r = run("alert: A\n        connect: {state: FAILED}\n", only_staging, 1, NULL);
    assert_int_equal(r.n, 1);
    assert_string_equal(label(&r.inst[0], "worker_id"), "s1:8083");
    result_free(&r);
}

static void test_render_error_is_not_fatal(void **state)
{
    (void)state;
    result_t r = run("alert: A\n        connect: {state: FAILED, connector: orders-sink}\n"
                     "        annotations: {s: '{{ $labels.connector | humanize }}'}\n",
                     prod_only, 1, NULL);
    assert_int_equal(r.n, 1);
    assert_non_null(strstr(kcw_labels_get(&r.inst[0].annotations, "s"),
                           "<error expanding template: eval.yaml:"));
    result_free(&r);
}

static void test_shipped_rules_render(void **state)
{
    (void)state;
    const char *globs[] = {KCW_SOURCE_DIR "/rules.d/connect-status.yaml"};
    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    assert_int_equal(kcw_rules_load(globs, 1, &rs, &errs), 0);
    const kcw_rule_t *rule = NULL;
    for (size_t i = 0; i < rs->groups[0].n_rules; i++)
        if (strcmp(rs->groups[0].rules[i].alert, "ConnectTaskFailed") == 0)
            rule = &rs->groups[0].rules[i];
    assert_non_null(rule);
    kcw_instance_t *inst = NULL;
    size_t n = 0;
    assert_int_equal(kcw_eval_connect_rule(rule, prod_only, 1, NULL, NULL, &inst, &n), 0);
    assert_int_equal(n, 2);
    const char *summary = kcw_labels_get(&inst[1].annotations, "summary");
    assert_string_equal(summary, "Task 1 of connector orders-sink failed in cluster prod-eu");
    const char *desc = kcw_labels_get(&inst[1].annotations, "description");
    assert_non_null(strstr(desc, "Task 1 of sink connector orders-sink (cluster prod-eu) is "
                                 "FAILED on worker w3:8083."));
    assert_non_null(strstr(desc, "Trace (first lines):\n" TRACE_1));
    assert_null(strstr(desc, "<error"));
    assert_string_equal(kcw_labels_get(&inst[1].labels, "severity"), "warning");
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
    kcw_ruleset_free(rs);
}

static void test_expr_rule_rejected(void **state)
{
    (void)state;
    kcw_rule_t rule = {.alert = "X", .expr = "up == 0"};
    kcw_instance_t *inst = (kcw_instance_t *)1;
    size_t n = 7;
    assert_int_equal(kcw_eval_connect_rule(&rule, prod_only, 1, NULL, NULL, &inst, &n), -EINVAL);
    assert_null(inst);
    assert_int_equal(n, 0);
}

/* --- PromQL rules ---------------------------------------------------------- */

/* Loads one rule as run() does, without evaluating it. */
static kcw_ruleset_t *load_rule(const char *rule_yaml)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml), "groups:\n  - name: g\n    rules:\n      - %s\n", rule_yaml);
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    if (kcw_rules_load_string(yaml, "prom.yaml", &rs, &errs) != 0) {
        kcw_errors_print(&errs, stderr);
        fail_msg("rule did not load");
    }
    kcw_errors_clear(&errs);
    assert_int_equal(rs->groups[0].n_rules, 1);
    return rs;
}

/* A sample from "name=value" pairs, NULL-terminated. */
static void sample_set(kcw_prom_sample_t *s, double value, ...)
{
    memset(s, 0, sizeof(*s));
    s->value = value;
    s->ts_ms = 1000;
    va_list ap;
    va_start(ap, value);
    for (const char *name = va_arg(ap, const char *); name; name = va_arg(ap, const char *))
        assert_int_equal(kcw_labels_set(&s->metric, name, va_arg(ap, const char *)), 0);
    va_end(ap);
}

static void samples_clear(kcw_prom_sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_labels_clear(&s[i].metric);
}

static void instances_free(kcw_instance_t *inst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
}

static const char *const prom_rule_yaml =
    "alert: ConnectorTaskLag\n"
    "        expr: kafka_connect_lag > 100\n"
    "        labels:\n"
    "          severity: '{{ if eq $labels.env \"prod\" }}page{{ else }}ticket{{ end }}'\n"
    "          env: override\n"
    "          level: 'v{{ $value }}'\n"
    "          instance: ''\n"
    "          alertname: Renamed\n"
    "          job: '{{ $labels.nope }}'\n"
    "        annotations:\n"
    "          summary: '{{ $labels.connector }}/{{ $labels.task }} lag {{ $value }} "
    "({{ $labels.__name__ }}, {{ $externalLabels.dc }})'\n";

static void test_prom_vector(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = load_rule(prom_rule_yaml);
    kcw_prom_sample_t samples[2];
    sample_set(&samples[0], 250, "__name__", "kafka_connect_lag", "connector", "orders-sink",
               "task", "1", "env", "prod", "instance", "w1:9404", "job", "connect", NULL);
    sample_set(&samples[1], 0.5, "__name__", "kafka_connect_lag", "connector", "users-source",
               "task", "0", "env", "dev", NULL);
    kcw_prom_result_t res = {.type = KCW_PROM_VECTOR, .samples = samples, .n = 2};
    kcw_labels_t ext = {0};
    assert_int_equal(kcw_labels_set(&ext, "dc", "eu-1"), 0);

    kcw_instance_t *inst = NULL;
    size_t n = 0;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, &ext, &inst, &n), 0);
    assert_int_equal(n, 2);

    const kcw_instance_t *in = &inst[0];
    assert_null(label(in, "__name__")); /* dropped from the labels... */
    assert_string_equal(label(in, "alertname"), "ConnectorTaskLag"); /* set last */
    assert_string_equal(label(in, "connector"), "orders-sink");
    assert_string_equal(label(in, "task"), "1");
    /* rule labels are templated against the sample's own labels, then win */
    assert_string_equal(label(in, "severity"), "page");
    assert_string_equal(label(in, "env"), "override");
    assert_string_equal(label(in, "level"), "v250");
    assert_null(label(in, "instance")); /* empty rule label removes the sample's */
    assert_null(label(in, "job"));      /* so does a template that expands empty */
    assert_int_equal(in->labels.n, 6);
    assert_true(in->value == 250);
    assert_null(in->trace);
    /* ...but templates see it in $labels, as in Prometheus */
    assert_string_equal(kcw_labels_get(&in->annotations, "summary"),
                        "orders-sink/1 lag 250 (kafka_connect_lag, eu-1)");

    in = &inst[1];
    assert_string_equal(label(in, "connector"), "users-source");
    assert_string_equal(label(in, "severity"), "ticket");
    assert_string_equal(label(in, "env"), "override");
    assert_string_equal(label(in, "level"), "v0.5");
    assert_true(in->value == 0.5);
    assert_string_equal(kcw_labels_get(&in->annotations, "summary"),
                        "users-source/0 lag 0.5 (kafka_connect_lag, eu-1)");

    instances_free(inst, n);
    kcw_labels_clear(&ext);
    samples_clear(samples, 2);

    /* an empty vector: nothing to alert on */
    res = (kcw_prom_result_t){.type = KCW_PROM_VECTOR};
    inst = (kcw_instance_t *)1;
    n = 7;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), 0);
    assert_int_equal(n, 0);
    assert_null(inst);
    kcw_ruleset_free(rs);
}

static void test_prom_scalar(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = load_rule("alert: TooFewWorkers\n"
                                  "        expr: scalar(count(up{job=\"connect\"})) < 3\n"
                                  "        labels: {severity: critical}\n"
                                  "        annotations: {s: 'only {{ $value }} workers'}\n");
    kcw_prom_result_t res = {.type = KCW_PROM_SCALAR, .scalar = 2, .scalar_ts_ms = 1000};
    kcw_instance_t *inst = NULL;
    size_t n = 0;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(inst[0].labels.n, 2); /* no sample labels: alertname + severity */
    assert_string_equal(label(&inst[0], "alertname"), "TooFewWorkers");
    assert_string_equal(label(&inst[0], "severity"), "critical");
    assert_true(inst[0].value == 2);
    assert_string_equal(kcw_labels_get(&inst[0].annotations, "s"), "only 2 workers");
    instances_free(inst, n);
    kcw_ruleset_free(rs);
}

static void test_prom_duplicate_labelset(void **state)
{
    (void)state;
    /* Two series that differ only in __name__, or only in a label the rule
     * overrides, are the same alert: Prometheus fails the evaluation. */
    kcw_ruleset_t *rs = load_rule("alert: A\n        expr: a > 0 or b > 0\n");
    kcw_prom_sample_t samples[3];
    sample_set(&samples[0], 1, "__name__", "a", "job", "connect", NULL);
    sample_set(&samples[1], 2, "__name__", "other", "job", "x", NULL);
    sample_set(&samples[2], 3, "__name__", "b", "job", "connect", NULL);
    kcw_prom_result_t res = {.type = KCW_PROM_VECTOR, .samples = samples, .n = 3};
    kcw_instance_t *inst = (kcw_instance_t *)1;
    size_t n = 7;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), -EEXIST);
    assert_null(inst);
    assert_int_equal(n, 0);
    kcw_ruleset_free(rs);

    rs = load_rule("alert: A\n        expr: a > 0\n        labels: {job: all}\n");
    res.samples = &samples[1]; /* job="x" and job="connect" both become job="all" */
    res.n = 2;
    inst = (kcw_instance_t *)1;
    n = 7;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), -EEXIST);
    assert_null(inst);
    assert_int_equal(n, 0);

    /* distinct label sets are fine, also when the fingerprints are compared */
    res.samples = samples;
    kcw_ruleset_free(rs);
    rs = load_rule("alert: A\n        expr: a > 0\n");
    res.n = 2;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), 0);
    assert_int_equal(n, 2);
    instances_free(inst, n);
    samples_clear(samples, 3);
    kcw_ruleset_free(rs);
}

static void test_prom_bad_input(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = load_rule("alert: A\n        expr: rate(x[5m])[10m:]\n");
    /* a matrix (or string) result is not something an alerting rule takes */
    kcw_prom_result_t res = {.type = (kcw_prom_result_type_t)(KCW_PROM_SCALAR + 1)};
    kcw_instance_t *inst = (kcw_instance_t *)1;
    size_t n = 7;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), -EINVAL);
    assert_null(inst);
    assert_int_equal(n, 0);
    kcw_ruleset_free(rs);

    /* a connect: rule has no query to take a result for */
    rs = load_rule("alert: A\n        connect: {state: FAILED}\n");
    res.type = KCW_PROM_SCALAR;
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], &res, NULL, &inst, &n), -EINVAL);
    assert_null(inst);
    assert_int_equal(kcw_eval_prom_rule(&rs->groups[0].rules[0], NULL, NULL, &inst, &n), -EINVAL);
    kcw_ruleset_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_task),
        cmocka_unit_test(test_paused_not_failed),
        cmocka_unit_test(test_regex_filters),
        cmocka_unit_test(test_type_filter),
        cmocka_unit_test(test_connector_target),
        cmocka_unit_test(test_tasks_below_configs),
        cmocka_unit_test(test_unreachable_cluster),
        cmocka_unit_test(test_render_error_is_not_fatal),
        cmocka_unit_test(test_shipped_rules_render),
        cmocka_unit_test(test_expr_rule_rejected),
        cmocka_unit_test(test_prom_vector),
        cmocka_unit_test(test_prom_scalar),
        cmocka_unit_test(test_prom_duplicate_labelset),
        cmocka_unit_test(test_prom_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
