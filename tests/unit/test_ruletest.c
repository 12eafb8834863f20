/* test_ruletest.c: `kcwatch test` (kcw_ruletest_run) on test files written to
 * a temp directory: passing and failing tests and the report of a failure,
 * positioned load errors, snapshots holding over time, stale unreachable
 * clusters, pending vs firing, canned PromQL results (vectors, scalars,
 * errors, query_offset) and the exit codes over several files; and the
 * shipped rules.d/tests files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcwatch/log.h"
#include "kcwatch/ruletest.h"

typedef struct fixture {
    char dir[64];
    char *paths[8];
    size_t n_paths;
    char *output;
    size_t output_len;
    FILE *log;
    char *logbuf;
    size_t loglen;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/kcw-ruletest-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    /* The rule loader logs skipped recording rules; keep stderr quiet. */
    f->log = open_memstream(&f->logbuf, &f->loglen);
    if (!f->log) {
        free(f);
        return -1;
    }
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_WARN, f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    /* Only the files this test wrote, inside its own mkdtemp directory. */
    for (size_t i = 0; i < f->n_paths; i++) {
        unlink(f->paths[i]);
        free(f->paths[i]);
    }
    rmdir(f->dir);
    free(f->output);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, stderr);
    fclose(f->log);
    free(f->logbuf);
    free(f);
    return 0;
}

/* Writes text to dir/name and returns the path (owned by the fixture). */
static const char *write_file(fixture_t *f, const char *name, const char *text)
{
    assert_true(f->n_paths < sizeof(f->paths) / sizeof(f->paths[0]));
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    f->paths[f->n_paths++] = path;
    return path;
}

/* Runs the named files (paths in f->dir); the report lands in f->output. */
static int run_files(fixture_t *f, const char *const *names, size_t n)
{
    const char *paths[8];
    char *owned[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        assert_true(asprintf(&owned[i], "%s/%s", f->dir, names[i]) > 0);
        paths[i] = owned[i];
    }
    free(f->output);
    f->output = NULL;
    FILE *out = open_memstream(&f->output, &f->output_len);
    assert_non_null(out);
    int rc = kcw_ruletest_run(paths, n, out);
    fclose(out);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    return rc;
}

static int run_one(fixture_t *f, const char *name)
{
    return run_files(f, &name, 1);
}

static void assert_output_has(const fixture_t *f, const char *needle)
{
    if (!strstr(f->output, needle)) {
        print_error("output lacks \"%s\":\n%s\n", needle, f->output);
        fail();
    }
}

static void assert_output_lacks(const fixture_t *f, const char *needle)
{
    if (strstr(f->output, needle)) {
        print_error("output has \"%s\":\n%s\n", needle, f->output);
        fail();
    }
}

/* --- rules used by the tests ----------------------------------------------- */

static const char connect_rules[] =
    "groups:\n"
    "  - name: connect\n"
    "    rules:\n"
    "      - alert: TaskFailed\n"
    "        connect: {target: task, state: FAILED}\n"
    "        labels: {severity: warning}\n"
    "        annotations:\n"
    "          summary: 'Task {{ $labels.task }} of {{ $labels.connector }} failed'\n"
    "          env: '{{ $externalLabels.env }}'\n"
    "      - alert: TaskUnassigned\n"
    "        connect: {target: task, state: UNASSIGNED}\n"
    "        for: 2m\n"
    "      - alert: Unreachable\n"
    "        connect: {target: cluster, state: UNREACHABLE}\n"
    "        for: 1m\n";

static const char prom_rules[] =
    "groups:\n"
    "  - name: jmx\n"
    "    rules:\n"
    "      - alert: RecordErrors\n"
    "        expr: >-\n"
    "          sum by (connector)\n"
    "            (kafka_connect_task_error_metrics_total_record_failures_total) > 0\n"
    "        for: 1m\n"
    "        labels:\n"
    "          severity: '{{ if eq $labels.connector \"orders\" }}critical{{ else }}warning{{ end "
    "}}'\n"
    "        annotations:\n"
    "          summary: '{{ $labels.connector }}: {{ $value }} failures'\n"
    "      - alert: NoWorkers\n"
    "        expr: count(kafka_connect_app_info) < 1\n"
    "  - name: offset\n"
    "    query_offset: 1m\n"
    "    rules:\n"
    "      - alert: Lagging\n"
    "        expr: max(lag) > 100\n"
    "  - name: limited\n"
    "    limit: 1\n"
    "    rules:\n"
    "      - alert: Many\n"
    "        expr: many > 0\n";

/* --- passing and failing ----------------------------------------------------- */

static const char passing_test[] =
    "rule_files: [rules.yaml]\n"
    "evaluation_interval: 30s\n"
    "external_labels: {env: test}\n"
    "tests:\n"
    "  - name: failed task fires at once\n"
    "    connect:\n"
    "      - at: 0s\n"
    "        clusters:\n"
    "          c1:\n"
    "            orders: {type: sink, worker_id: 'w1:8083',\n"
    "                     tasks: [{state: RUNNING}, {state: FAILED, trace: boom}]}\n"
    "    alert_rule_test:\n"
    "      - eval_time: 0s\n"
    "        alertname: TaskFailed\n"
    "        exp_alerts:\n"
    "          - exp_labels: {cluster: c1, connector: orders, task: '1', state: FAILED,\n"
    "                         type: sink, worker_id: 'w1:8083', severity: warning,\n"
    "                         root_cause: boom}\n"
    "            exp_annotations: {summary: Task 1 of orders failed, env: test}\n"
    "      - eval_time: 1m\n"
    "        alertname: NoSuchAlert\n";

static void test_passing(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "pass.test.yaml", passing_test);
    int rc = run_one(f, "pass.test.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
    assert_output_has(f, "pass.test.yaml: 1 tests passed\n");
    assert_output_has(f, "rule tests: 1 passed, 0 failed\n");
    assert_output_lacks(f, "FAIL");
}

static const char failing_test[] =
    "rule_files: [rules.yaml]\n"
    "tests:\n"
    "  - name: wrong expectations\n"
    "    connect:\n"
    "      - at: 0s\n"
    "        clusters:\n"
    "          c1:\n"
    "            orders: {worker_id: w1, tasks: [{state: FAILED}]}\n"
    "    alert_rule_test:\n"
    "      - eval_time: 1m\n"
    "        alertname: TaskFailed\n"
    "        exp_alerts:\n"
    "          - exp_labels: {cluster: c1, connector: orders, task: '1', state: FAILED,\n"
    "                         worker_id: w1, severity: warning}\n"
    "      - eval_time: 1m30s\n"
    "        alertname: TaskFailed\n"
    "        exp_alerts:\n"
    "          - exp_labels: {cluster: c1, connector: orders, task: '0', state: FAILED,\n"
    "                         worker_id: w1, severity: warning}\n"
    "            exp_annotations: {summary: \"Task 0 of orders \\\"failed\\\"\"}\n"
    "  - name: right expectations\n"
    "    connect:\n"
    "      - {at: 0s, clusters: {c1: {orders: {worker_id: w1, tasks: [{state: FAILED}]}}}}\n"
    "    alert_rule_test:\n"
    "      - eval_time: 0s\n"
    "        alertname: TaskFailed\n"
    "        exp_alerts:\n"
    "          - exp_labels: {cluster: c1, connector: orders, task: '0', state: FAILED,\n"
    "                         worker_id: w1, severity: warning}\n"
    "      - eval_time: 0s\n"
    "        alertname: TaskUnassigned\n";

static void test_failing_shows_diff(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    const char *path = write_file(f, "fail.test.yaml", failing_test);
    assert_int_equal(run_one(f, "fail.test.yaml"), 1);
    char line[512];
    snprintf(line, sizeof(line), "FAIL %s: test \"wrong expectations\"\n", path);
    assert_output_has(f, line);
    /* The first check: wrong task label; expected vs got with labels. */
    assert_output_has(f, "  alertname: TaskFailed, eval_time: 1m\n"
                         "    expected:\n"
                         "      firing {alertname=\"TaskFailed\", cluster=\"c1\", "
                         "connector=\"orders\", severity=\"warning\", state=\"FAILED\", "
                         "task=\"1\", worker_id=\"w1\"}\n"
                         "    got:\n"
                         "      firing {alertname=\"TaskFailed\", cluster=\"c1\", "
                         "connector=\"orders\", severity=\"warning\", state=\"FAILED\", "
                         "task=\"0\", worker_id=\"w1\"}\n"
                         "        annotations: {summary=\"Task 0 of orders failed\"}\n");
    /* The second: labels right, annotations wrong (quotes escaped). */
    assert_output_has(f, "  alertname: TaskFailed, eval_time: 1m30s\n");
    assert_output_has(f, "        annotations: {summary=\"Task 0 of orders \\\"failed\\\"\"}\n");
    assert_output_lacks(f, "right expectations");
    snprintf(line, sizeof(line), "FAIL %s: 1 of 2 tests failed\n", path);
    assert_output_has(f, line);
    assert_output_has(f, "rule tests: 1 passed, 1 failed\n");
}

static void test_expected_none_got_some(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "t.yaml",
               "rule_files: [rules.yaml]\n"
               "tests:\n"
               "  - connect: [{at: 0s, clusters: {c1: {x: {tasks: [{state: FAILED}]}}}}]\n"
               "    alert_rule_test:\n"
               "      - {eval_time: 0s, alertname: TaskFailed}\n");
    assert_int_equal(run_one(f, "t.yaml"), 1);
    assert_output_has(f, "test \"#1\"\n");
    assert_output_has(f, "    expected: none\n    got:\n      firing {alertname=\"TaskFailed\"");
}

/* --- positioned load errors ----------------------------------------------------- */

static void test_bad_file_positions(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    const char *path = write_file(f, "bad.yaml",
                                  "rule_files: [rules.yaml]\n"                  /* 1 */
                                  "evaluation_interval: 30x\n"                  /* 2 */
                                  "tests:\n"                                    /* 3 */
                                  "  - name: t\n"                               /* 4 */
                                  "    colour: blue\n"                          /* 5 */
                                  "    connect:\n"                              /* 6 */
                                  "      - at: 1m\n"                            /* 7 */
                                  "      - at: 30s\n"                           /* 8 */
                                  "        clusters: {c1: {o: {state: SAD}}}\n" /* 9 */
                                  "    alert_rule_test:\n"                      /* 10 */
                                  "      - eval_time: soon\n"                   /* 11 */
                                  "        alertname: TaskFailed\n"             /* 12 */
                                  "        exp_alerts:\n"                       /* 13 */
                                  "          - exp_state: resolved\n"           /* 14 */
                                  "            exp_labels: {alertname: X}\n");  /* 15 */
    assert_int_equal(run_one(f, "bad.yaml"), 2);
    const char *want[] = {
        ":2:22: evaluation_interval: invalid duration \"30x\"",
        ":5:5: test: unknown key \"colour\" (known: name, connect, promql, alert_rule_test)",
        ":8:13: at: snapshots must be in increasing time order",
        ":9:36: state: expected RUNNING, FAILED",
        ":11:20: eval_time: invalid duration \"soon\"",
        ":14:24: exp_state: expected firing or pending",
        ":15:25: exp_labels: alertname \"X\" differs from the test's \"TaskFailed\"",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char line[512];
        snprintf(line, sizeof(line), "%s%s", path, want[i]);
        assert_output_has(f, line);
    }
    assert_output_has(f, "rule tests: 0 passed, 0 failed\n");
}

static void test_bad_structure(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "prom.yaml", prom_rules);
    const char *path =
        write_file(f, "bad.yaml",
                   "rule_files: [rules.yaml, prom.yaml, 'missing-*.yaml']\n"   /* 1 */
                   "tests:\n"                                                  /* 2 */
                   "  - connect:\n"                                            /* 3 */
                   "      - {clusters: {}}\n"                                  /* 4 */
                   "      - {at: 1m, clusters: {c1: {}}, unreachable: [c1]}\n" /* 5 */
                   "    promql:\n"                                             /* 6 */
                   "      - expr: typo_metric > 0\n"                           /* 7 */
                   "      - expr: many > 0\n"                                  /* 8 */
                   "        results:\n"                                        /* 9 */
                   "          - {at: 0s}\n"                                    /* 10 */
                   "          - {at: 1m, vector: [{labels: {0bad: x}}]}\n"     /* 11 */
                   "      - expr: '  many   >  0'\n"                           /* 12 */
                   "    alert_rule_test: {eval_time: 1m}\n");                  /* 13 */
    assert_int_equal(run_one(f, "bad.yaml"), 2);
    const char *want[] = {
        ":1:37: rule_files: \"",
        ":4:9: connect snapshot: missing \"at\"",
        ":5:52: unreachable: cluster \"c1\" is listed twice in this snapshot",
        ":10:13: result: needs exactly one of vector, scalar or error",
        ":11:41: labels: invalid label name \"0bad\"",
        ":11:31: sample: missing \"value\"",
        ":12:15: promql: expr already has results in this test (line 8)",
        ":13:22: alert_rule_test: expected a list, got a mapping",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char line[512];
        snprintf(line, sizeof(line), "%s%s", path, want[i]);
        assert_output_has(f, line);
    }
    assert_output_has(f, "missing-*.yaml\" matches no file");
}

static void test_unknown_expr_and_rule_errors(void **state)
{
    fixture_t *f = *state;
    write_file(f, "prom.yaml", prom_rules);
    write_file(f, "broken-rules.yaml",
               "groups:\n"
               "  - name: g\n"
               "    rules:\n"
               "      - alert: X\n"
               "        expr: up == 0\n"
               "        for: forever\n");
    const char *path = write_file(f, "expr.yaml",
                                  "rule_files: [prom.yaml]\n"
                                  "tests:\n"
                                  "  - promql:\n"
                                  "      - expr: typo_metric > 0\n");
    write_file(f, "rules-bad.yaml",
               "rule_files: [broken-rules.yaml, nothere.yaml]\n"
               "tests: []\n");
    assert_int_equal(run_one(f, "expr.yaml"), 2);
    char line[512];
    snprintf(line, sizeof(line),
             "%s:4:15: promql: no rule in rule_files has the expr \"typo_metric > 0\"", path);
    assert_output_has(f, line);

    /* Rule file errors are the rule loader's, positioned in the rule file. */
    assert_int_equal(run_one(f, "rules-bad.yaml"), 2);
    snprintf(line, sizeof(line), "%s/broken-rules.yaml:6:14: for: invalid duration", f->dir);
    assert_output_has(f, line);
    snprintf(line, sizeof(line), "%s/nothere.yaml: cannot open rule file", f->dir);
    assert_output_has(f, line);
}

static void test_yaml_syntax_and_missing_file(void **state)
{
    fixture_t *f = *state;
    const char *path = write_file(f, "syntax.yaml", "rule_files: [a.yaml\ntests: []\n");
    assert_int_equal(run_one(f, "syntax.yaml"), 2);
    char line[512];
    snprintf(line, sizeof(line), "%s:2:6: YAML syntax error: ", path);
    assert_output_has(f, line);

    assert_int_equal(run_one(f, "does-not-exist.yaml"), 2);
    assert_output_has(f, "does-not-exist.yaml: cannot open test file: No such file or directory");

    write_file(f, "empty.yaml", "# nothing\n");
    assert_int_equal(run_one(f, "empty.yaml"), 2);
    assert_output_has(f, "empty.yaml: empty test file");
}

/* Bad files do not stop the good ones; 2 wins over 1. */
static void test_several_files(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "pass.yaml", passing_test);
    write_file(f, "fail.yaml", failing_test);
    write_file(f, "bad.yaml", "rule_files: [rules.yaml]\nbogus: 1\ntests: []\n");
    const char *names[] = {"pass.yaml", "fail.yaml"};
    assert_int_equal(run_files(f, names, 2), 1);
    assert_output_has(f, "rule tests: 2 passed, 1 failed\n");
    const char *names3[] = {"pass.yaml", "bad.yaml", "fail.yaml"};
    assert_int_equal(run_files(f, names3, 3), 2);
    assert_output_has(f, "bad.yaml:2:1: test file: unknown key \"bogus\"");
    assert_output_has(f, "rule tests: 2 passed, 1 failed\n");
    const char *names2[] = {"pass.yaml", "pass.yaml"};
    assert_int_equal(run_files(f, names2, 2), 0);
    assert_output_has(f, "rule tests: 2 passed, 0 failed\n");
}

/* --- the timeline ------------------------------------------------------------------ */

static void test_snapshot_timeline(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "t.yaml",
               "rule_files: [rules.yaml]\n"
               "evaluation_interval: 30s\n"
               "tests:\n"
               "  - name: holds\n"
               "    connect:\n"
               "      - {at: 0s, clusters: {c1: {o: {tasks: [{state: FAILED}]}}}}\n"
               "      - {at: 1m, clusters: {c1: {o: {tasks: [{state: RUNNING}]}}}}\n"
               "      - {at: 2m, clusters: {c1: {o: {tasks: [{state: FAILED}]}}, c2: {}}}\n"
               "      - {at: 3m, unreachable: [c1, c2]}\n"
               "      - {at: 5m, clusters: {c2: {}}}\n"
               "    alert_rule_test:\n"
               "      - eval_time: 59s\n" /* the 0s snapshot still holds */
               "        alertname: TaskFailed\n"
               "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
               "                                   state: FAILED, severity: warning}}]\n"
               "      - {eval_time: 1m, alertname: TaskFailed}\n"
               "      - eval_time: 2m\n"
               "        alertname: TaskFailed\n"
               "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
               "                                   state: FAILED, severity: warning}}]\n"
               /* c1 unreachable: its last connectors stay, stale; the alert stays */
               "      - eval_time: 4m59s\n"
               "        alertname: TaskFailed\n"
               "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
               "                                   state: FAILED, severity: warning}}]\n"
               "      - eval_time: 4m\n"
               "        alertname: Unreachable\n"
               "        exp_alerts:\n"
               "          - exp_labels: {cluster: c1, state: UNREACHABLE}\n"
               "          - exp_labels: {cluster: c2, state: UNREACHABLE}\n"
               /* c1 not in the snapshot at all any more: gone, resolved */
               "      - {eval_time: 5m, alertname: TaskFailed}\n"
               "      - {eval_time: 5m, alertname: Unreachable}\n");
    int rc = run_one(f, "t.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
}

static void test_pending_vs_firing(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    const char *checks_ok =
        "rule_files: [rules.yaml]\n"
        "tests:\n"
        "  - connect: [{at: 0s, clusters: {c1: {o: {tasks: [{state: UNASSIGNED}]}}}}]\n"
        "    alert_rule_test:\n"
        "      - eval_time: 1m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts: [{exp_state: pending,\n"
        "                      exp_labels: {cluster: c1, connector: o, task: '0',\n"
        "                                   state: UNASSIGNED}}]\n"
        "      - {eval_time: 1m59s, alertname: TaskUnassigned}\n" /* pending is not listed */
        "      - eval_time: 2m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
        "                                   state: UNASSIGNED}}]\n"
        "      - eval_time: 3m\n" /* firing ones are listed with pending ones */
        "        alertname: TaskUnassigned\n"
        "        exp_alerts: [{exp_state: firing,\n"
        "                      exp_labels: {cluster: c1, connector: o, task: '0',\n"
        "                                   state: UNASSIGNED}}]\n";
    write_file(f, "ok.yaml", checks_ok);
    int rc = run_one(f, "ok.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);

    /* Expecting it firing while it is still pending fails, and shows why. */
    write_file(
        f, "early.yaml",
        "rule_files: [rules.yaml]\n"
        "tests:\n"
        "  - connect: [{at: 0s, clusters: {c1: {o: {tasks: [{state: UNASSIGNED}]}}}}]\n"
        "    alert_rule_test:\n"
        "      - eval_time: 1m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts:\n"
        "          - {exp_labels: {cluster: c1, connector: o, task: '0', state: UNASSIGNED}}\n"
        "      - eval_time: 1m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts:\n"
        "          - exp_labels: {cluster: c1, connector: o, task: '0', state: UNASSIGNED}\n"
        "            exp_state: pending\n"
        "          - exp_labels: {cluster: c1, connector: o, task: '1', state: UNASSIGNED}\n"
        "            exp_state: pending\n");
    assert_int_equal(run_one(f, "early.yaml"), 1);
    assert_output_has(f, "  alertname: TaskUnassigned, eval_time: 1m\n"
                         "    expected:\n"
                         "      firing {alertname=\"TaskUnassigned\"");
    assert_output_has(f, "    got: none\n");
    assert_output_has(f, "    got:\n      pending {alertname=\"TaskUnassigned\", cluster=\"c1\", "
                         "connector=\"o\", state=\"UNASSIGNED\", task=\"0\"}\n");
}

/* A snapshot between two steps is a changed poll, as in the daemon: connect
 * rules are evaluated at its time, so a `for` counts from the poll, not from
 * the next step. An identical snapshot is an unchanged poll. */
static void test_changed_poll_evaluates_at_once(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(
        f, "poll.yaml",
        "rule_files: [rules.yaml]\n"
        "tests:\n"
        "  - connect:\n"
        "      - {at: 0s, clusters: {c1: {o: {tasks: [{state: RUNNING}]}}}}\n"
        "      - {at: 10s, clusters: {c1: {o: {tasks: [{state: FAILED}]}}}}\n"
        "      - {at: 20s, clusters: {c1: {o: {tasks: [{state: UNASSIGNED}]}}}}\n"
        "      - {at: 40s, clusters: {c1: {o: {tasks: [{state: UNASSIGNED}]}}}}\n"
        "    alert_rule_test:\n"
        /* for: 0 fires on the poll at 10s, long before the step at 1m */
        "      - eval_time: 10s\n"
        "        alertname: TaskFailed\n"
        "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
        "                     state: FAILED, severity: warning}}]\n"
        /* and resolves on the poll at 20s */
        "      - {eval_time: 20s, alertname: TaskFailed}\n"
        /* for: 2m from the poll at 20s: still pending at the 2m step ... */
        "      - eval_time: 2m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts: [{exp_state: pending, exp_labels: {cluster: c1, connector: o,\n"
        "                     task: '0', state: UNASSIGNED}}]\n"
        /* ... firing at the 3m step (2m20s after the poll; the unchanged
         * snapshot at 40s is an unchanged poll) */
        "      - eval_time: 3m\n"
        "        alertname: TaskUnassigned\n"
        "        exp_alerts: [{exp_labels: {cluster: c1, connector: o, task: '0',\n"
        "                     state: UNASSIGNED}}]\n");
    int rc = run_one(f, "poll.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
}

/* A test name from the file cannot rewrite the operator's terminal. */
static void test_output_escapes_control_bytes(void **state)
{
    fixture_t *f = *state;
    write_file(f, "rules.yaml", connect_rules);
    write_file(f, "esc.yaml",
               "rule_files: [rules.yaml]\n"
               "tests:\n"
               "  - name: \"clear\\e[2J\\rscreen\"\n"
               "    connect: [{at: 0s, clusters: {c1: {o: {tasks: [{state: FAILED}]}}}}]\n"
               "    alert_rule_test:\n"
               "      - {eval_time: 1m, alertname: TaskFailed}\n");
    assert_int_equal(run_one(f, "esc.yaml"), 1);
    assert_null(strchr(f->output, '\033'));
    assert_null(strchr(f->output, '\r'));
    assert_output_has(f, "test \"clear\\x1b[2J\\rscreen\"");
}

/* --- canned PromQL results ------------------------------------------------------------- */

static void test_promql_results(void **state)
{
    fixture_t *f = *state;
    write_file(f, "prom.yaml", prom_rules);
    write_file(f, "t.yaml",
               "rule_files: [prom.yaml]\n"
               "evaluation_interval: 1m\n"
               "tests:\n"
               "  - name: vectors errors and scalars\n"
               "    promql:\n"
               /* written on one line: whitespace runs do not matter */
               "      - expr: sum by (connector) "
               "(kafka_connect_task_error_metrics_total_record_failures_total) > 0\n"
               "        results:\n"
               "          - at: 0s\n"
               "            vector:\n"
               "              - {labels: {connector: orders}, value: 3}\n"
               "              - {labels: {__name__: x, connector: audit}, value: 1.5}\n"
               "          - {at: 3m, error: query timed out}\n"
               "          - {at: 5m, vector: []}\n"
               "      - expr: count(kafka_connect_app_info) < 1\n"
               "        results: [{at: 2m, scalar: 0}]\n"
               "    alert_rule_test:\n"
               "      - eval_time: 0s\n"
               "        alertname: RecordErrors\n"
               "        exp_alerts:\n"
               "          - exp_labels: {connector: orders, severity: critical}\n"
               "            exp_annotations: {summary: 'orders: 3 failures'}\n"
               "            exp_state: pending\n"
               "          - exp_labels: {connector: audit, severity: warning}\n"
               "            exp_annotations: {summary: 'audit: 1.5 failures'}\n"
               "            exp_state: pending\n"
               "      - eval_time: 1m\n"
               "        alertname: RecordErrors\n"
               "        exp_alerts:\n"
               "          - exp_labels: {connector: orders, severity: critical}\n"
               "          - exp_labels: {connector: audit, severity: warning}\n"
               /* failed query from 3m: the alerts stay as they were */
               "      - eval_time: 4m\n"
               "        alertname: RecordErrors\n"
               "        exp_alerts:\n"
               "          - exp_labels: {connector: orders, severity: critical}\n"
               "          - exp_labels: {connector: audit, severity: warning}\n"
               "      - {eval_time: 5m, alertname: RecordErrors}\n"
               /* no result before 2m is an empty vector; a scalar is one labelless sample */
               "      - {eval_time: 1m, alertname: NoWorkers}\n"
               "      - eval_time: 2m\n"
               "        alertname: NoWorkers\n"
               "        exp_alerts: [{}]\n"
               /* an expr without results: always empty */
               "      - {eval_time: 5m, alertname: Lagging}\n");
    int rc = run_one(f, "t.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
}

static void test_promql_offset_and_limit(void **state)
{
    fixture_t *f = *state;
    write_file(f, "prom.yaml", prom_rules);
    const char *path = write_file(f, "t.yaml",
                                  "rule_files: [prom.yaml]\n"
                                  "evaluation_interval: 30s\n"
                                  "tests:\n"
                                  "  - name: offset\n"
                                  "    promql:\n"
                                  "      - expr: max(lag) > 100\n"
                                  "        results: [{at: 1m, vector: [{value: 500}]}]\n"
                                  "      - expr: many > 0\n"
                                  "        results:\n"
                                  "          - {at: 0s, vector: [{labels: {a: '1'}, value: 1}]}\n"
                                  "          - {at: 1m, vector: [{labels: {a: '1'}, value: 1},\n"
                                  "                              {labels: {a: '2'}, value: 1}]}\n"
                                  "    alert_rule_test:\n"
                                  /* query_offset 1m: the 1m result is seen at 2m */
                                  "      - {eval_time: 1m30s, alertname: Lagging}\n"
                                  "      - {eval_time: 2m, alertname: Lagging, exp_alerts: [{}]}\n"
                                  "      - eval_time: 30s\n"
                                  "        alertname: Many\n"
                                  "        exp_alerts: [{exp_labels: {a: '1'}}]\n"
                                  /* over the group's limit of 1: every alert dropped */
                                  "      - {eval_time: 1m, alertname: Many}\n");
    int rc = run_one(f, "t.yaml");
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
    char line[512];
    snprintf(line, sizeof(line),
             "warning: %s: test \"offset\": at 1m rule Many (group limited): exceeded limit of "
             "1 with 2 alerts\n",
             path);
    assert_output_has(f, line);
}

static void test_promql_duplicate_labelset(void **state)
{
    fixture_t *f = *state;
    write_file(f, "prom.yaml", prom_rules);
    write_file(f, "t.yaml",
               "rule_files: [prom.yaml]\n"
               "tests:\n"
               "  - name: dup\n"
               "    promql:\n"
               "      - expr: many > 0\n"
               "        results:\n"
               "          - {at: 0s, vector: [{labels: {a: '1'}, value: 1}]}\n"
               /* same labels once __name__ is dropped: the evaluation fails */
               "          - {at: 1m, vector: [{labels: {__name__: x, a: '1'}, value: 1},\n"
               "                              {labels: {__name__: y, a: '1'}, value: 2}]}\n"
               "    alert_rule_test:\n"
               "      - {eval_time: 2m, alertname: Many, exp_alerts: [{exp_labels: {a: '1'}}]}\n");
    assert_int_equal(run_one(f, "t.yaml"), 0);
    assert_output_has(f, "at 1m rule Many (group limited): ");
}

/* The shipped rule tests pass: the rules and their tests agree. */
static void test_shipped_rule_tests(void **state)
{
    fixture_t *f = *state;
    const char *files[] = {KCW_SOURCE_DIR "/rules.d/tests/connect-status.test.yaml"};
    free(f->output);
    f->output = NULL;
    FILE *out = open_memstream(&f->output, &f->output_len);
    assert_non_null(out);
    int rc = kcw_ruletest_run(files, 1, out);
    fclose(out);
    if (rc != 0)
        print_error("%s", f->output);
    assert_int_equal(rc, 0);
    assert_output_has(f, ", 0 failed\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_shows_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expected_none_got_some, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_structure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_expr_and_rule_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_syntax_and_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_timeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_vs_firing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_poll_evaluates_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_escapes_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promql_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promql_offset_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promql_duplicate_labelset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_rule_tests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
