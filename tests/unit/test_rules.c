/* test_rules.c: rule files -> rule groups: the Prometheus format, kcwatch's
 * connect:/restart: keys, positioned errors (all of them in one pass), glob
 * loading, and the shipped rules.d/connect-status.yaml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcwatch/connect.h"
#include "kcwatch/log.h"
#include "kcwatch/rules.h"

static const kcw_rule_t *find_rule(const kcw_ruleset_t *rs, const char *alert)
{
    for (size_t g = 0; g < rs->n_groups; g++)
        for (size_t i = 0; i < rs->groups[g].n_rules; i++)
            if (strcmp(rs->groups[g].rules[i].alert, alert) == 0)
                return &rs->groups[g].rules[i];
    return NULL;
}

static const kcw_rule_template_t *find_tmpl(const kcw_rule_template_t *t, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static const char valid_yaml[] =
    "groups:\n"
    "  - name: connect\n"
    "    interval: 30s\n"
    "    limit: 100\n"
    "    query_offset: 1m\n"
    "    rules:\n"
    "      - record: job:up:sum\n"
    "        expr: sum(up) by (job)\n"
    "      - alert: TaskFailed\n"
    "        connect:\n"
    "          cluster: prod-.*\n"
    "          connector: orders-.*\n"
    "          type: sink\n"
    "          state: FAILED\n"
    "        for: 0s\n"
    "        keep_firing_for: 2m\n"
    "        restart: true\n"
    "        labels:\n"
    "          severity: warning\n"
    "          team: '{{ $labels.connector }}-owners'\n"
    "        annotations:\n"
    "          summary: Task {{ $labels.task }} failed\n"
    "          description: |\n"
    "            Worker {{ $labels.worker_id }}\n"
    "            {{ $trace }}\n"
    "      - alert: Paused\n"
    "        connect:\n"
    "          target: connector\n"
    "          state: [PAUSED, STOPPED]\n"
    "          type: [source, sink]\n"
    "        restart: false\n"
    "      - alert: Degraded\n"
    "        connect: {target: connector, tasks_below_configs: true}\n"
    "        for: 10m\n"
    "        restart:\n"
    "          scope: connector\n"
    "          unless_trace: 'ConfigException|AuthorizationException'\n"
    "      - alert: Unreachable\n"
    "        connect: {target: cluster, state: UNREACHABLE}\n"
    "  - name: prometheus\n"
    "    rules:\n"
    "      - alert: HighLag\n"
    "        expr: kafka_consumer_lag > 1000\n"
    "        for: 5m\n"
    "        restart: {scope: task}\n"
    "        annotations:\n"
    "          value: \"{{ $value | humanize }}\"\n"
    "      - record: another:recording\n"
    "        expr: vector(1)\n";

static void test_valid_file(void **state)
{
    (void)state;
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logf = open_memstream(&logbuf, &loglen);
    assert_non_null(logf);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, logf);

    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    int rc = kcw_rules_load_string(valid_yaml, "valid.yaml", &rs, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.n, 0);
    assert_non_null(rs);
    assert_int_equal(rs->n_groups, 2);

    const kcw_rule_group_t *g = &rs->groups[0];
    assert_string_equal(g->name, "connect");
    assert_string_equal(g->file, "valid.yaml");
    assert_int_equal(g->interval_ms, 30000);
    assert_int_equal(g->limit, 100);
    assert_int_equal(g->query_offset_ms, 60000);
    assert_int_equal(g->n_rules, 4); /* the recording rule is skipped */

    const kcw_rule_t *r = find_rule(rs, "TaskFailed");
    assert_non_null(r);
    assert_null(r->expr);
    assert_non_null(r->connect);
    assert_int_equal(r->line, 9);
    assert_int_equal(r->col, 9);
    assert_string_equal(r->file, "valid.yaml");
    assert_int_equal(r->connect->target, KCW_TARGET_TASK);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_FAILED);
    assert_int_equal(r->connect->type_mask, 1u << KCW_CTYPE_SINK);
    assert_true(kcw_regex_match(r->connect->cluster, "prod-eu"));
    assert_false(kcw_regex_match(r->connect->cluster, "xprod-eu")); /* anchored */
    assert_true(kcw_regex_match(r->connect->connector, "orders-sink"));
    assert_false(kcw_regex_match(r->connect->connector, "my-orders-sink"));
    assert_int_equal(r->for_ms, 0);
    assert_int_equal(r->keep_firing_for_ms, 120000);
    assert_true(r->restart.enabled);
    assert_int_equal(r->restart.scope, KCW_SCOPE_FAILED);
    assert_null(r->restart.unless_trace);
    assert_int_equal(r->n_labels, 2);
    const kcw_rule_template_t *t = find_tmpl(r->labels, r->n_labels, "team");
    assert_non_null(t);
    assert_string_equal(t->source, "{{ $labels.connector }}-owners");
    assert_non_null(t->tmpl);
    t = find_tmpl(r->annotations, r->n_annotations, "description");
    assert_non_null(t);
    assert_string_equal(t->source, "Worker {{ $labels.worker_id }}\n{{ $trace }}\n");

    r = find_rule(rs, "Paused");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CONNECTOR);
    assert_int_equal(r->connect->state_mask, (1u << KCW_STATE_PAUSED) | (1u << KCW_STATE_STOPPED));
    assert_int_equal(r->connect->type_mask, (1u << KCW_CTYPE_SOURCE) | (1u << KCW_CTYPE_SINK));
    assert_null(r->connect->cluster);
    assert_false(r->restart.enabled);

    r = find_rule(rs, "Degraded");
    assert_non_null(r);
    assert_true(r->connect->tasks_below_configs);
    assert_int_equal(r->connect->state_mask, 0);
    assert_int_equal(r->for_ms, 600000);
    assert_true(r->restart.enabled);
    assert_int_equal(r->restart.scope, KCW_SCOPE_CONNECTOR);
    assert_non_null(r->restart.unless_trace);
    /* unanchored: a match anywhere in the trace counts */
    assert_true(kcw_regex_match(r->restart.unless_trace,
                                "org.apache.kafka.common.config.ConfigException: bad"));

    r = find_rule(rs, "Unreachable");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CLUSTER);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_UNREACHABLE);

    g = &rs->groups[1];
    assert_string_equal(g->name, "prometheus");
    assert_int_equal(g->interval_ms, 0);
    assert_int_equal(g->n_rules, 1);
    r = find_rule(rs, "HighLag");
    assert_non_null(r);
    assert_string_equal(r->expr, "kafka_consumer_lag > 1000");
    assert_null(r->connect);
    assert_int_equal(r->for_ms, 300000);
    assert_true(r->restart.enabled);
    assert_int_equal(r->restart.scope, KCW_SCOPE_TASK);

    /* each recording rule is a positioned warning, not a log line */
    fflush(logf);
    assert_null(strstr(logbuf, "recording"));
    assert_int_equal(rs->warnings.n, 2);
    const int at[2][2] = {{7, 9}, {48, 9}};
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(rs->warnings.items[i].file, "valid.yaml");
        assert_int_equal(rs->warnings.items[i].line, at[i][0]);
        assert_int_equal(rs->warnings.items[i].col, at[i][1]);
        assert_string_equal(rs->warnings.items[i].msg,
                            "recording rule skipped: kcwatch evaluates alerting rules only");
    }
    kcw_log_reset();
    fclose(logf);
    free(logbuf);

    /* a second file appends */
    assert_int_equal(
        kcw_rules_load_string("groups:\n  - name: more\n    rules: []\n", "more.yaml", &rs, &errs),
        0);
    assert_int_equal(rs->n_groups, 3);
    assert_string_equal(rs->groups[2].name, "more");
    kcw_ruleset_free(rs);
    kcw_errors_clear(&errs);
}

static void test_empty_files(void **state)
{
    (void)state;
    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    assert_int_equal(kcw_rules_load_string("", "empty.yaml", &rs, &errs), 0);
    assert_non_null(rs);
    assert_int_equal(rs->n_groups, 0);
    assert_int_equal(kcw_rules_load_string("# only a comment\n", "c.yaml", &rs, &errs), 0);
    assert_int_equal(kcw_rules_load_string("groups:\n", "g.yaml", &rs, &errs), 0);
    assert_int_equal(rs->n_groups, 0);
    assert_int_equal(errs.n, 0);
    kcw_ruleset_free(rs);
    kcw_ruleset_free(NULL);
}

/* Asserts that errs holds an error at line:col whose message contains needle. */
static void expect_error_at(const kcw_errors_t *errs, int line, int col, const char *needle)
{
    for (size_t i = 0; i < errs->n; i++) {
        const kcw_error_t *e = &errs->items[i];
        if (e->line == line && e->col == col && e->msg && strstr(e->msg, needle))
            return;
    }
    kcw_errors_print(errs, stderr);
    fail_msg("no error at %d:%d containing \"%s\"", line, col, needle);
}

/* Loads yaml expecting failure; returns the errors (caller clears). */
static kcw_errors_t load_bad(const char *yaml)
{
    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    assert_int_equal(kcw_rules_load_string(yaml, "bad.yaml", &rs, &errs), -EINVAL);
    assert_null(rs); /* a file with errors adds nothing */
    assert_true(errs.n > 0);
    for (size_t i = 0; i < errs.n; i++)
        assert_string_equal(errs.items[i].file, "bad.yaml");
    return errs;
}

static const char many_errors_yaml[] =
    "groups:\n"                                                         /* 1 */
    "  - name: dup\n"                                                   /* 2 */
    "    rules:\n"                                                      /* 3 */
    "      - alert: A\n"                                                /* 4 */
    "        expr: up == 0\n"                                           /* 5 */
    "        for: 5x\n"                                                 /* 6 */
    "        severity: high\n"                                          /* 7 */
    "      - expr: up\n"                                                /* 8 */
    "      - alert: B\n"                                                /* 9 */
    "        connect:\n"                                                /* 10 */
    "          connector: '(orders'\n"                                  /* 11 */
    "          state: [FAILED, BROKEN]\n"                               /* 12 */
    "          colour: red\n"                                           /* 13 */
    "  - name: dup\n"                                                   /* 14 */
    "    interval: soon\n"                                              /* 15 */
    "    limit: -1\n"                                                   /* 16 */
    "    rules:\n"                                                      /* 17 */
    "      - alert: C\n"                                                /* 18 */
    "        expr: up\n"                                                /* 19 */
    "        connect: {state: FAILED}\n"                                /* 20 */
    "        keep_firing_for: forever\n"                                /* 21 */
    "      - alert: D\n"                                                /* 22 */
    "        connect: {target: task, state: UNREACHABLE}\n"             /* 23 */
    "      - alert: E\n"                                                /* 24 */
    "        connect: {target: cluster, state: UNREACHABLE}\n"          /* 25 */
    "        restart: true\n"                                           /* 26 */
    "      - alert: F\n"                                                /* 27 */
    "        connect: {target: task, tasks_below_configs: true}\n"      /* 28 */
    "        labels:\n"                                                 /* 29 */
    "          1bad: x\n"                                               /* 30 */
    "        annotations:\n"                                            /* 31 */
    "          summary: ok {{ $nope }}\n"                               /* 32 */
    "          quoted: \"a {{ block }}\"\n"                             /* 33 */
    "          block: |\n"                                              /* 34 */
    "            fine line\n"                                           /* 35 */
    "              {{ nosuch 1 }}\n"                                    /* 36 */
    "        restart: {scope: sometimes, when: now}\n"                  /* 37 */
    "      - alert: G\n"                                                /* 38 */
    "        alert: G2\n"                                               /* 39 */
    "        expr: up\n"                                                /* 40 */
    "      - record: r\n"                                               /* 41 */
    "        alert: H\n"                                                /* 42 */
    "        expr: up\n"                                                /* 43 */
    "      - alert: I\n"                                                /* 44 */
    "        connect: {target: task, state: STOPPED}\n"                 /* 45 */
    "      - alert: J\n"                                                /* 46 */
    "        connect: {target: cluster, connector: x, state: FAILED}\n" /* 47 */
    "      - alert: K\n"                                                /* 48 */
    "        connect: {target: connector}\n"                            /* 49 */
    "        restart: {scope: task}\n"                                  /* 50 */
    "      - alert: L\n"                                                /* 51 */
    "        connect: {target: node, type: both}\n"                     /* 52 */
    "        restart: maybe\n"                                          /* 53 */
    "extra: 1\n";                                                       /* 54 */

/* A group interval below 100ms is refused where it is written. */
static void test_group_interval_minimum(void **state)
{
    (void)state;
    kcw_errors_t errs = load_bad("groups:\n  - name: g\n    interval: 10ms\n    rules: []\n");
    expect_error_at(&errs, 3, 15, "interval: 10ms is below the minimum of 100ms");
    kcw_errors_clear(&errs);
    kcw_ruleset_t *rs = NULL;
    assert_int_equal(
        kcw_rules_load_string("groups:\n  - name: g\n    interval: 100ms\n    rules: []\n",
                              "ok.yaml", &rs, &errs),
        0);
    assert_int_equal(rs->groups[0].interval_ms, 100);
    kcw_ruleset_free(rs);
}

static void test_every_error_in_one_pass(void **state)
{
    (void)state;
    kcw_errors_t errs = load_bad(many_errors_yaml);
    expect_error_at(&errs, 6, 14, "for: invalid duration \"5x\"");
    expect_error_at(&errs, 7, 9, "unknown key \"severity\"");
    expect_error_at(&errs, 8, 9, "alert name is missing");
    expect_error_at(&errs, 11, 22, "connect.connector: invalid regex (orders");
    expect_error_at(&errs, 12, 27, "unknown value \"BROKEN\"");
    expect_error_at(&errs, 13, 11, "unknown key \"colour\"");
    expect_error_at(&errs, 14, 11, "groupname: \"dup\" is repeated in the same file");
    expect_error_at(&errs, 15, 15, "interval: invalid duration \"soon\"");
    expect_error_at(&errs, 16, 12, "limit: expected a non-negative integer");
    expect_error_at(&errs, 20, 9, "expr and connect are mutually exclusive");
    expect_error_at(&errs, 21, 26, "keep_firing_for: invalid duration");
    expect_error_at(&errs, 23, 40, "UNREADABLE are only valid with target: cluster");
    expect_error_at(&errs, 26, 18, "restart: a target: cluster rule has no connector");
    expect_error_at(&errs, 28, 33, "tasks_below_configs needs target: connector");
    expect_error_at(&errs, 30, 11, "invalid name \"1bad\"");
    expect_error_at(&errs, 32, 26, "undefined variable \"$nope\"");
    expect_error_at(&errs, 33, 25, "{{ block }} is not supported");
    expect_error_at(&errs, 36, 18, "function \"nosuch\" not defined");
    expect_error_at(&errs, 37, 26, "restart.scope: expected failed, task or connector");
    expect_error_at(&errs, 37, 37, "unknown key \"when\"");
    expect_error_at(&errs, 39, 9, "duplicate key \"alert\"");
    expect_error_at(&errs, 41, 9, "only one of 'record' and 'alert'");
    expect_error_at(&errs, 45, 40, "tasks are never STOPPED");
    expect_error_at(&errs, 47, 36, "connect.connector does not apply to target cluster");
    expect_error_at(&errs, 47, 57, "target cluster needs state: UNREACHABLE");
    expect_error_at(&errs, 50, 26, "restart.scope: task needs task instances");
    expect_error_at(&errs, 52, 27, "connect.target: expected task, connector or cluster");
    expect_error_at(&errs, 52, 39, "connect.type: unknown value \"both\"");
    expect_error_at(&errs, 53, 18, "restart: expected true or false");
    expect_error_at(&errs, 54, 1, "unknown key \"extra\"");
    assert_int_equal(errs.n, 30);
    kcw_errors_clear(&errs);
}

/* A deeply nested rule file stops at 64 levels with one positioned error,
 * instead of freezing a reload in libyaml's quadratic flow parsing. */
static void test_nesting_bound(void **state)
{
    (void)state;
    size_t n = 200000;
    char *yaml = malloc(n + 1);
    assert_non_null(yaml);
    memcpy(yaml, "groups: ", 8);
    memset(yaml + 8, '[', n - 8);
    yaml[n] = '\0';
    kcw_errors_t errs = load_bad(yaml);
    assert_int_equal(errs.n, 1);
    expect_error_at(&errs, 1, 72, "nesting deeper than 64 levels");
    kcw_errors_clear(&errs);
    free(yaml);
}

static void test_single_errors(void **state)
{
    (void)state;
    /* YAML syntax errors are positioned too */
    kcw_errors_t errs = load_bad("groups:\n  - name: x\n    rules: [\n");
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].msg, "YAML syntax error"));
    assert_int_equal(errs.items[0].line, 4);
    kcw_errors_clear(&errs);

    errs = load_bad("groups:\n  - name: x\n    rules:\n      - alert: A\n");
    expect_error_at(&errs, 4, 9, "one of expr or connect is required");
    assert_int_equal(errs.n, 1);
    kcw_errors_clear(&errs);

    errs = load_bad("groups:\n  - interval: 1m\n");
    expect_error_at(&errs, 2, 5, "group: name is missing");
    kcw_errors_clear(&errs);

    errs = load_bad("groups: {name: x}\n");
    expect_error_at(&errs, 1, 9, "groups: expected a list");
    kcw_errors_clear(&errs);

    errs = load_bad("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up\n"
                    "        labels: [a, b]\n");
    expect_error_at(&errs, 6, 17, "labels: expected a mapping");
    kcw_errors_clear(&errs);

    errs = load_bad("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up\n"
                    "        annotations:\n          summary: {nested: map}\n");
    expect_error_at(&errs, 7, 20, "annotations.summary: expected a string");
    kcw_errors_clear(&errs);

    errs = load_bad("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up\n"
                    "---\ngroups: []\n");
    expect_error_at(&errs, 7, 1, "only one YAML document");
    kcw_errors_clear(&errs);

    /* a restart regex error */
    errs = load_bad("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up\n"
                    "        restart: {unless_trace: '[oops'}\n");
    expect_error_at(&errs, 6, 33, "restart.unless_trace: invalid regex");
    kcw_errors_clear(&errs);
}

static void test_error_keeps_existing_set(void **state)
{
    (void)state;
    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    assert_int_equal(kcw_rules_load_string("groups:\n  - name: ok\n", "ok.yaml", &rs, &errs), 0);
    assert_int_equal(kcw_rules_load_string("groups:\n  - nam: x\n", "bad.yaml", &rs, &errs),
                     -EINVAL);
    assert_non_null(rs);
    assert_int_equal(rs->n_groups, 1);
    assert_string_equal(rs->groups[0].name, "ok");
    kcw_ruleset_free(rs);
    kcw_errors_clear(&errs);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_globs(void **state)
{
    (void)state;
    char dir[] = "/tmp/kcw-rules-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "b.yaml", "groups:\n  - name: b\n");
    write_file(dir, "a.yaml", "groups:\n  - name: a\n");
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/sub.yaml", dir);
    assert_int_equal(mkdir(sub, 0700), 0); /* a directory matching the glob is skipped */

    char glob_all[600], glob_none[600], literal_a[600], missing[600];
    snprintf(glob_all, sizeof(glob_all), "%s/*.yaml", dir);
    snprintf(glob_none, sizeof(glob_none), "%s/*.rules", dir);
    snprintf(literal_a, sizeof(literal_a), "%s/a.yaml", dir);
    snprintf(missing, sizeof(missing), "%s/missing.yaml", dir);

    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    const char *globs[] = {glob_none, glob_all, literal_a};
    assert_int_equal(kcw_rules_load(globs, 3, &rs, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_non_null(rs);
    /* sorted, and a.yaml named twice loads once */
    assert_int_equal(rs->n_groups, 2);
    assert_string_equal(rs->groups[0].name, "a");
    assert_string_equal(rs->groups[1].name, "b");
    assert_string_equal(rs->groups[0].file, literal_a);
    kcw_ruleset_free(rs);

    const char *none[] = {glob_none};
    assert_int_equal(kcw_rules_load(none, 1, &rs, &errs), 0);
    assert_int_equal(rs->n_groups, 0);
    kcw_ruleset_free(rs);

    const char *bad[] = {missing, glob_all};
    assert_int_equal(kcw_rules_load(bad, 2, &rs, &errs), -EINVAL);
    assert_null(rs);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0].file, missing);
    assert_non_null(strstr(errs.items[0].msg, "No such file"));
    kcw_errors_clear(&errs);

    char cmd[700];
    snprintf(cmd, sizeof(cmd), "%s/a.yaml", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/b.yaml", dir);
    unlink(cmd);
    rmdir(sub);
    rmdir(dir);
}

static void test_shipped_rules(void **state)
{
    (void)state;
    const char *globs[] = {KCW_SOURCE_DIR "/rules.d/connect-status.yaml"};
    kcw_errors_t errs = {0};
    kcw_ruleset_t *rs = NULL;
    int rc = kcw_rules_load(globs, 1, &rs, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);

    const kcw_rule_t *r = find_rule(rs, "ConnectTaskFailed");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_TASK);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_FAILED);
    assert_int_equal(r->for_ms, 0);
    assert_true(r->restart.enabled);
    assert_int_equal(r->restart.scope, KCW_SCOPE_FAILED);
    assert_string_equal(find_tmpl(r->labels, r->n_labels, "severity")->source, "warning");
    assert_non_null(find_tmpl(r->annotations, r->n_annotations, "summary"));
    assert_non_null(
        strstr(find_tmpl(r->annotations, r->n_annotations, "description")->source, "{{ $trace }}"));

    r = find_rule(rs, "ConnectConnectorFailed");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CONNECTOR);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_FAILED);
    assert_true(r->restart.enabled);
    assert_string_equal(find_tmpl(r->labels, r->n_labels, "severity")->source, "critical");

    r = find_rule(rs, "ConnectTaskUnassigned");
    assert_non_null(r);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_UNASSIGNED);
    assert_int_equal(r->for_ms, 5 * 60 * 1000);
    assert_false(r->restart.enabled);

    r = find_rule(rs, "ConnectConnectorDegraded");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CONNECTOR);
    assert_true(r->connect->tasks_below_configs);
    assert_int_equal(r->for_ms, 10 * 60 * 1000);

    r = find_rule(rs, "ConnectClusterUnreachable");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CLUSTER);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_UNREACHABLE);
    assert_int_equal(r->for_ms, 60 * 1000);
    assert_string_equal(find_tmpl(r->labels, r->n_labels, "severity")->source, "critical");

    r = find_rule(rs, "ConnectStatusUnreadable");
    assert_non_null(r);
    assert_int_equal(r->connect->target, KCW_TARGET_CLUSTER);
    assert_int_equal(r->connect->state_mask, 1u << KCW_STATE_UNREADABLE);
    assert_int_equal(r->for_ms, 60 * 1000);

    size_t total = 0;
    for (size_t g = 0; g < rs->n_groups; g++)
        total += rs->groups[g].n_rules;
    assert_int_equal(total, 6);
    kcw_ruleset_free(rs);
    kcw_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_empty_files),
        cmocka_unit_test(test_group_interval_minimum),
        cmocka_unit_test(test_every_error_in_one_pass),
        cmocka_unit_test(test_single_errors),
        cmocka_unit_test(test_nesting_bound),
        cmocka_unit_test(test_error_keeps_existing_set),
        cmocka_unit_test(test_load_globs),
        cmocka_unit_test(test_shipped_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
