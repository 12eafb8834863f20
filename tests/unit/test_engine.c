/* test_engine.c: the evaluation engine on a clock the tests own: the group
 * schedule and its spread, skipped ticks, PromQL rounds (failures, limit,
 * duplicate label sets), connect: rules on a changed poll, state carry-over on
 * reload, the budget alert, the remediation note and news, what reaches
 * the restart and notify hooks, and the state store's hooks and restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/engine.h"

#define T0 INT64_C(1700000000000)

static const char *rules_yaml =
    "groups:\n"
    "- name: status\n"
    "  interval: 30s\n"
    "  rules:\n"
    "  - alert: TaskFailed\n"
    "    connect: {target: task, state: FAILED}\n"
    "    restart: true\n"
    "  - alert: TaskFailedLong\n"
    "    connect: {target: task, state: FAILED}\n"
    "    for: 1m\n"
    "- name: prom\n"
    "  interval: 30s\n"
    "  limit: 2\n"
    "  rules:\n"
    "  - alert: Errors\n"
    "    expr: errors > 0\n"
    "  - alert: Lag\n"
    "    expr: lag > 100\n"
    "    for: 1m\n"
    "- name: third\n"
    "  interval: 30s\n"
    "  rules:\n"
    "  - alert: Other\n"
    "    expr: other > 0\n";

/* What the hooks saw. */
typedef struct seen {
    int restarts;
    char restart_target[64];
    int notifies;
    size_t last_notified;
    char last_note[128];
    int flushes;
    int transitions;
    char last_transition[32];
    int health_changes;
    int health_episodes; /* changes that began a failure episode */
    char last_error[256];
    bool budget_on;
    int states, gones;
    char last_state_rule[64];
    kcw_alert_state_t last_state;
    char last_gone[64];
    bool healing; /* the healing hook's answer */
    int healing_asked;
} seen_t;

static void on_restart(void *arg, const kcw_rule_t *rule, const kcw_alert_t *a, int64_t now)
{
    (void)now;
    seen_t *s = arg;
    assert_true(rule->restart.enabled);
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    s->restarts++;
    snprintf(s->restart_target, sizeof(s->restart_target), "%s/%s",
             kcw_labels_get(&a->labels, "connector"), kcw_labels_get(&a->labels, "task"));
}

static int on_budget(void *arg, kcw_instance_t **out, size_t *n)
{
    seen_t *s = arg;
    *out = NULL;
    *n = 0;
    if (!s->budget_on)
        return 0;
    kcw_instance_t *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    kcw_labels_set(&in->labels, "alertname", KCW_ENGINE_BUDGET_ALERT);
    kcw_labels_set(&in->labels, "connector", "orders");
    *out = in;
    *n = 1;
    return 0;
}

static const char *on_note(void *arg, const kcw_labels_t *labels)
{
    (void)arg;
    const char *c = kcw_labels_get(labels, "connector");
    return c && strcmp(c, "orders") == 0 ? "restart sent (attempt 1 of 5 in 1h)" : NULL;
}

static bool on_healing(void *arg, const kcw_labels_t *labels, int64_t now)
{
    seen_t *s = arg;
    (void)now;
    s->healing_asked++;
    const char *c = kcw_labels_get(labels, "connector");
    return s->healing && c && strcmp(c, "orders") == 0;
}

static void on_notify(void *arg, const kcw_alert_t *const *alerts, size_t n, int64_t now)
{
    (void)now;
    seen_t *s = arg;
    s->notifies++;
    s->last_notified = n;
    s->last_note[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(alerts[i]->state, KCW_ALERT_PENDING);
        const char *note = kcw_labels_get(&alerts[i]->annotations, KCW_ENGINE_NOTE_ANNOTATION);
        if (note)
            snprintf(s->last_note, sizeof(s->last_note), "%s", note);
    }
}

static void on_flush(void *arg, const kcw_labels_t *labels)
{
    seen_t *s = arg;
    assert_string_equal(kcw_labels_get(labels, "connector"), "orders");
    s->flushes++;
}

static void on_transition(void *arg, const kcw_alert_t *a, const char *what, int64_t now)
{
    (void)a;
    (void)now;
    seen_t *s = arg;
    s->transitions++;
    snprintf(s->last_transition, sizeof(s->last_transition), "%s", what);
}

static void on_health(void *arg, const kcw_rule_group_t *g, const kcw_rule_t *r,
                      const char *error, bool episode, int64_t now)
{
    (void)g;
    (void)r;
    (void)now;
    seen_t *s = arg;
    s->health_changes++;
    if (episode && error)
        s->health_episodes++;
    snprintf(s->last_error, sizeof(s->last_error), "%s", error ? error : "");
}

typedef struct fixture {
    kcw_ruleset_t *rs;
    seen_t seen;
    kcw_engine_hooks_t hooks;
    kcw_engine_opts_t opts;
    kcw_engine_t *e;
    /* one cluster, connector orders with task 0 RUNNING and task 1 as set */
    kcw_task_status_t tasks[2];
    kcw_connector_status_t conn;
    kcw_cluster_status_t cluster;
    const kcw_cluster_status_t *view[1];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    kcw_errors_t errs = {0};
    if (kcw_rules_load_string(rules_yaml, "engine.yaml", &f->rs, &errs) != 0) {
        kcw_errors_print(&errs, stderr);
        fail();
    }
    kcw_errors_clear(&errs);
    f->hooks = (kcw_engine_hooks_t){.arg = &f->seen,
                                    .restart = on_restart,
                                    .budget = on_budget,
                                    .note = on_note,
                                    .healing = on_healing,
                                    .notify = on_notify,
                                    .flush = on_flush,
                                    .transition = on_transition,
                                    .health = on_health};
    f->opts = (kcw_engine_opts_t){.default_interval_ms = 60000, .spread = true};
    f->e = kcw_engine_new(f->rs, &f->opts, &f->hooks, NULL, T0);
    assert_non_null(f->e);
    f->tasks[0] = (kcw_task_status_t){.id = 0, .state = KCW_STATE_RUNNING, .worker_id = "w1"};
    f->tasks[1] = (kcw_task_status_t){.id = 1, .state = KCW_STATE_RUNNING, .worker_id = "w1"};
    f->conn = (kcw_connector_status_t){.name = "orders",
                                       .type = KCW_CTYPE_SINK,
                                       .state = KCW_STATE_RUNNING,
                                       .worker_id = "w1",
                                       .tasks = f->tasks,
                                       .n_tasks = 2,
                                       .n_task_configs = 2,
                                       .tasks_max = 2};
    f->cluster = (kcw_cluster_status_t){.name = "c1",
                                        .reachable = true,
                                        .ever_reachable = true,
                                        .connectors = &f->conn,
                                        .n_connectors = 1};
    f->view[0] = &f->cluster;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kcw_engine_free(f->e);
    kcw_ruleset_free(f->rs);
    free(f);
    return 0;
}

static size_t rule_index(const kcw_engine_t *e, const char *alert)
{
    for (size_t i = 0; i < kcw_engine_rule_count(e); i++)
        if (strcmp(kcw_engine_rule(e, i)->alert, alert) == 0)
            return i;
    fail_msg("no rule %s", alert);
    return 0;
}

static size_t count_state(const kcw_engine_t *e, const char *alert, kcw_alert_state_t st)
{
    return kcw_alert_set_count_state(kcw_engine_rule_alerts(e, rule_index(e, alert)), st);
}

static kcw_prom_sample_t sample(const char *connector, double v)
{
    kcw_prom_sample_t s = {.value = v};
    kcw_labels_set(&s.metric, "connector", connector);
    return s;
}

/* Runs one round of group gi at now with vector answers (n_s samples each;
 * NULL samples: that query fails with "boom"). */
static void prom_round(fixture_t *f, size_t gi, int64_t now, kcw_prom_sample_t *samples,
                       size_t n_s)
{
    size_t nq = 0;
    assert_int_equal(kcw_engine_group_begin(f->e, gi, f->view, 1, now, &nq), 0);
    assert_int_equal(nq, kcw_engine_group_query_count(f->e, gi));
    for (size_t q = 0; q < nq; q++) {
        kcw_prom_result_t res = {.type = KCW_PROM_VECTOR, .samples = samples, .n = n_s};
        kcw_engine_group_result(f->e, gi, q, samples ? &res : NULL, samples ? NULL : "boom");
    }
    kcw_engine_group_finish(f->e, gi, now);
}

/* kcwatch's own restart is being verified: the task's RESTARTING (its
 * instance gone) is no recovery. The alert stays firing with its activeAt
 * and resolves once the healing hook lets go; rules without restart: are
 * not held. */
static void test_healing_holds_firing_alert(void **state)
{
    fixture_t *f = *state;
    size_t ri = rule_index(f->e, "TaskFailed");
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 1);
    int64_t active = kcw_alert_set_at(kcw_engine_rule_alerts(f->e, ri), 0)->active_at_ms;
    assert_int_equal(active, T0);

    f->seen.healing = true;
    f->tasks[1].state = KCW_STATE_RESTARTING;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1000);
    assert_true(f->seen.healing_asked > 0);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 1);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_INACTIVE), 0);
    assert_int_equal(count_state(f->e, "TaskFailedLong", KCW_ALERT_PENDING), 0);

    /* FAILED again after the restart: the same alert, same activeAt. */
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 2000);
    assert_int_equal(kcw_alert_set_count(kcw_engine_rule_alerts(f->e, ri)), 1);
    assert_int_equal(kcw_alert_set_at(kcw_engine_rule_alerts(f->e, ri), 0)->active_at_ms, active);

    f->tasks[1].state = KCW_STATE_RUNNING;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 3000);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 1);
    f->seen.healing = false; /* RUNNING past the verify period */
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 9000);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 0);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_INACTIVE), 1);
    assert_int_equal(kcw_alert_set_at(kcw_engine_rule_alerts(f->e, ri), 0)->resolved_at_ms,
                     T0 + 9000);
}

static void test_schedule_spread(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(kcw_engine_group_count(f->e), 3);
    /* Three groups at 30s: offsets 0, 10s, 20s; first ticks one interval on. */
    assert_int_equal(kcw_engine_group_first_tick_ms(f->e, 0), 30000);
    assert_int_equal(kcw_engine_group_first_tick_ms(f->e, 1), 40000);
    assert_int_equal(kcw_engine_group_first_tick_ms(f->e, 2), 50000);
    assert_int_equal(kcw_engine_group_interval_ms(f->e, 1), 30000);
    /* A tick evaluates at its slot: late by 7 s, early by a few ms. */
    assert_int_equal(kcw_engine_group_slot_ms(f->e, 1, T0 + 40000 + 7000), T0 + 40000);
    assert_int_equal(kcw_engine_group_slot_ms(f->e, 1, T0 + 70000 - 3), T0 + 70000);
    assert_int_equal(kcw_engine_group_slot_ms(f->e, 1, T0 + 5000), T0);
    kcw_engine_set_start(f->e, T0 + 1000);
    assert_int_equal(kcw_engine_group_slot_ms(f->e, 2, T0 + 1000 + 50000), T0 + 51000);
    assert_true(kcw_engine_group_has_connect(f->e, 0));
    assert_false(kcw_engine_group_has_expr(f->e, 0));
    assert_true(kcw_engine_group_has_expr(f->e, 1));
    assert_int_equal(kcw_engine_group_query_count(f->e, 1), 2);
    assert_string_equal(kcw_engine_query_expr(f->e, 1, 1), "lag > 100");
}

static void test_no_spread_and_override(void **state)
{
    fixture_t *f = *state;
    kcw_engine_opts_t o = {.interval_override_ms = 10000, .spread = false};
    kcw_engine_t *e = kcw_engine_new(f->rs, &o, NULL, NULL, T0);
    assert_non_null(e);
    for (size_t gi = 0; gi < 3; gi++) {
        assert_int_equal(kcw_engine_group_first_tick_ms(e, gi), 10000);
        assert_int_equal(kcw_engine_group_slot_ms(e, gi, T0 + 25000), T0 + 20000);
    }
    kcw_engine_free(e);
}

static void test_skipped_tick(void **state)
{
    fixture_t *f = *state;
    size_t nq = 0;
    assert_int_equal(kcw_engine_group_begin(f->e, 1, f->view, 1, T0 + 40000, &nq), 0);
    assert_int_equal(nq, 2);
    /* The next tick comes while the queries are still out. */
    assert_int_equal(kcw_engine_group_begin(f->e, 1, f->view, 1, T0 + 70000, &nq), -EBUSY);
    assert_int_equal(nq, 0);
    assert_int_equal(kcw_engine_group_missed(f->e, 1), 1);
    assert_int_equal(kcw_engine_rounds(f->e), 0);
    kcw_prom_sample_t s = sample("orders", 3);
    kcw_prom_result_t res = {.type = KCW_PROM_VECTOR, .samples = &s, .n = 1};
    kcw_engine_group_result(f->e, 1, 0, &res, NULL);
    kcw_engine_group_result(f->e, 1, 1, &res, NULL);
    kcw_engine_group_finish(f->e, 1, T0 + 75000);
    kcw_labels_clear(&s.metric);
    /* Applied at the round's slot, not at the time the answers arrived. */
    const kcw_alert_t *a = kcw_alert_set_at(kcw_engine_rule_alerts(f->e, rule_index(f->e, "Errors")), 0);
    assert_int_equal(a->active_at_ms, T0 + 40000);
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(kcw_engine_rounds(f->e), 1);
    /* The group runs again afterwards. */
    assert_int_equal(kcw_engine_group_begin(f->e, 1, f->view, 1, T0 + 100000, &nq), 0);
    kcw_engine_group_cancel(f->e, 1);
    assert_int_equal(kcw_engine_rounds(f->e), 1);
}

/* One failure episode whose error text changes from round to round (a peer
 * resetting connections fails with changing words) is reported as changes,
 * but begins one episode; a new failure after a recovery begins another. */
static void test_health_episodes(void **state)
{
    fixture_t *f = *state;
    size_t lag = rule_index(f->e, "Lag");
    const char *errors[] = {"Recv failure: Connection reset by peer",
                            "select/poll returned error",
                            "Recv failure: Connection reset by peer"};
    for (int i = 0; i < 3; i++) {
        size_t nq = 0;
        assert_int_equal(kcw_engine_group_begin(f->e, 1, f->view, 1, T0 + 40000 + i * 30000, &nq),
                         0);
        for (size_t q = 0; q < nq; q++)
            kcw_engine_group_result(f->e, 1, q, NULL, errors[i]);
        kcw_engine_group_finish(f->e, 1, T0 + 40000 + i * 30000);
        assert_string_equal(kcw_engine_rule_last_error(f->e, lag), errors[i]);
    }
    /* Every rule of the group failed the same way: three changes each, one
     * episode each. */
    int rules = f->seen.health_episodes;
    assert_true(rules >= 1);
    assert_int_equal(f->seen.health_changes, 3 * rules);
    kcw_prom_sample_t s = sample("orders", 1);
    prom_round(f, 1, T0 + 130000, &s, 1);
    assert_int_equal(kcw_engine_rule_health(f->e, lag), KCW_RULE_HEALTH_OK);
    prom_round(f, 1, T0 + 160000, NULL, 0);
    assert_int_equal(f->seen.health_episodes, 2 * rules);
    kcw_labels_clear(&s.metric);
}

static void test_failed_query_keeps_alerts(void **state)
{
    fixture_t *f = *state;
    kcw_prom_sample_t s = sample("orders", 500);
    prom_round(f, 1, T0 + 40000, &s, 1);
    assert_int_equal(count_state(f->e, "Lag", KCW_ALERT_PENDING), 1);
    /* Prometheus down for a round: nothing resolves, the rule is unhealthy. */
    prom_round(f, 1, T0 + 70000, NULL, 0);
    assert_int_equal(count_state(f->e, "Lag", KCW_ALERT_PENDING), 1);
    size_t lag = rule_index(f->e, "Lag");
    assert_int_equal(kcw_engine_rule_health(f->e, lag), KCW_RULE_HEALTH_ERR);
    assert_string_equal(kcw_engine_rule_last_error(f->e, lag), "boom");
    /* for: 1m holds from the first evaluation. */
    prom_round(f, 1, T0 + 100000, &s, 1);
    assert_int_equal(count_state(f->e, "Lag", KCW_ALERT_FIRING), 1);
    assert_int_equal(kcw_engine_rule_health(f->e, lag), KCW_RULE_HEALTH_OK);
    assert_null(kcw_engine_rule_last_error(f->e, lag));
    kcw_labels_clear(&s.metric);
}

static void test_limit_drops_alerts(void **state)
{
    fixture_t *f = *state;
    kcw_prom_sample_t two[2] = {sample("orders", 1), sample("users", 1)};
    prom_round(f, 1, T0 + 40000, two, 2);
    assert_int_equal(count_state(f->e, "Errors", KCW_ALERT_FIRING), 2);
    kcw_prom_sample_t three[3] = {sample("orders", 1), sample("users", 1), sample("billing", 1)};
    prom_round(f, 1, T0 + 70000, three, 3);
    size_t r = rule_index(f->e, "Errors");
    assert_int_equal(kcw_alert_set_count(kcw_engine_rule_alerts(f->e, r)), 0);
    assert_int_equal(kcw_engine_rule_health(f->e, r), KCW_RULE_HEALTH_ERR);
    assert_string_equal(kcw_engine_rule_last_error(f->e, r), "exceeded limit of 2 with 3 alerts");
    for (int i = 0; i < 2; i++)
        kcw_labels_clear(&two[i].metric);
    for (int i = 0; i < 3; i++)
        kcw_labels_clear(&three[i].metric);
}

static void test_duplicate_labelset_message(void **state)
{
    fixture_t *f = *state;
    kcw_prom_sample_t dup[2] = {sample("orders", 1), sample("orders", 2)};
    prom_round(f, 1, T0 + 40000, dup, 2);
    assert_string_equal(kcw_engine_rule_last_error(f->e, rule_index(f->e, "Errors")),
                        "vector contains metrics with the same labelset after applying alert "
                        "labels");
    /* One health hook call per change, not per round. */
    int before = f->seen.health_changes;
    prom_round(f, 1, T0 + 70000, dup, 2);
    assert_int_equal(f->seen.health_changes, before);
    for (int i = 0; i < 2; i++)
        kcw_labels_clear(&dup[i].metric);
}

static void test_changed_poll_and_hand_offs(void **state)
{
    fixture_t *f = *state;
    f->tasks[1].state = KCW_STATE_FAILED;
    f->tasks[1].trace = "java.lang.RuntimeException: boom";
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1234);
    /* for: 0 fires on the poll itself; for: 1m waits. */
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 1);
    assert_int_equal(count_state(f->e, "TaskFailedLong", KCW_ALERT_PENDING), 1);
    assert_int_equal(f->seen.restarts, 1);
    assert_string_equal(f->seen.restart_target, "orders/1");
    assert_int_equal(f->seen.notifies, 1);
    assert_int_equal(f->seen.last_notified, 1); /* pending ones are not notified */
    assert_string_equal(f->seen.last_note, "restart sent (attempt 1 of 5 in 1h)");
    assert_int_equal(f->seen.transitions, 2);
    /* The group tick keeps `for` running: 1m after the poll it fires. */
    size_t nq;
    assert_int_equal(kcw_engine_group_begin(f->e, 0, f->view, 1, T0 + 60000, &nq), 0);
    assert_int_equal(nq, 0);
    kcw_engine_group_finish(f->e, 0, T0 + 60000);
    assert_int_equal(count_state(f->e, "TaskFailedLong", KCW_ALERT_PENDING), 1);
    assert_int_equal(kcw_engine_group_begin(f->e, 0, f->view, 1, T0 + 90000, &nq), 0);
    kcw_engine_group_finish(f->e, 0, T0 + 90000);
    assert_int_equal(count_state(f->e, "TaskFailedLong", KCW_ALERT_FIRING), 1);
    assert_string_equal(f->seen.last_transition, "alert firing");
    /* Recovery on the next changed poll resolves both at once. */
    f->tasks[1].state = KCW_STATE_RUNNING;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 95000);
    assert_int_equal(count_state(f->e, "TaskFailed", KCW_ALERT_FIRING), 0);
    assert_int_equal(count_state(f->e, "TaskFailedLong", KCW_ALERT_FIRING), 0);
    assert_string_equal(f->seen.last_transition, "alert resolved");
    assert_int_equal(f->seen.last_notified, 2); /* resolved ones are notified */
}

static void test_evaluation_time_never_goes_back(void **state)
{
    fixture_t *f = *state;
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 30005);
    /* A late tick of the 30 s slot evaluates no earlier than the poll. */
    size_t nq;
    assert_int_equal(kcw_engine_group_begin(f->e, 0, f->view, 1, T0 + 30010, &nq), 0);
    kcw_engine_group_finish(f->e, 0, T0 + 30010);
    const kcw_alert_t *a =
        kcw_alert_set_at(kcw_engine_rule_alerts(f->e, rule_index(f->e, "TaskFailedLong")), 0);
    assert_int_equal(a->active_at_ms, T0 + 30005);
    assert_int_equal(a->last_eval_ms, T0 + 30005);
}

static void test_budget_alert(void **state)
{
    fixture_t *f = *state;
    f->seen.budget_on = true;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1000);
    const kcw_alert_set_t *b = kcw_engine_budget_alerts(f->e);
    assert_int_equal(kcw_alert_set_count_state(b, KCW_ALERT_FIRING), 1);
    assert_string_equal(kcw_labels_get(&kcw_alert_set_at(b, 0)->labels, "alertname"),
                        KCW_ENGINE_BUDGET_ALERT);
    assert_int_equal(f->seen.last_notified, 1);
    f->seen.budget_on = false;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 2000);
    assert_int_equal(kcw_alert_set_count_state(b, KCW_ALERT_FIRING), 0);
    assert_string_equal(f->seen.last_transition, "alert resolved");
}

static void test_remediation_news_flushes(void **state)
{
    fixture_t *f = *state;
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1000);
    assert_int_equal(f->seen.flushes, 0);
    assert_int_equal(kcw_engine_remediation_news(f->e, "c1", "orders", 1), 0);
    assert_int_equal(kcw_engine_remediation_news(f->e, "c1", "orders", 1), 0); /* once */
    assert_int_equal(kcw_engine_remediation_news(f->e, "c1", "users", -1), 0);
    assert_int_equal(kcw_engine_remediation_news(f->e, NULL, NULL, 0), -EINVAL);
    assert_true(kcw_engine_news_pending(f->e));
    kcw_engine_notify(f->e, T0 + 1100);
    /* Only the firing alert of orders/1 matches (users has none). */
    assert_int_equal(f->seen.flushes, 1);
    assert_false(kcw_engine_news_pending(f->e));
}

static void test_reload_carries_state_over(void **state)
{
    fixture_t *f = *state;
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1000);
    kcw_prom_sample_t s = sample("orders", 1);
    prom_round(f, 1, T0 + 40000, &s, 1);
    f->seen.budget_on = true;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 41000);
    kcw_engine_remediation_news(f->e, "c1", "orders", 1);

    /* The new rules keep TaskFailed and Errors as they were, change the
     * `for` of TaskFailedLong and drop everything else. */
    const char *yaml2 = "groups:\n"
                        "- name: status\n"
                        "  rules:\n"
                        "  - alert: TaskFailed\n"
                        "    connect: {target: task, state: FAILED}\n"
                        "  - alert: TaskFailedLong\n"
                        "    connect: {target: task, state: FAILED}\n"
                        "    for: 2m\n"
                        "- name: prom\n"
                        "  rules:\n"
                        "  - alert: Errors\n"
                        "    expr: errors > 1\n";
    kcw_ruleset_t *rs2 = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_rules_load_string(yaml2, "engine2.yaml", &rs2, &errs), 0);
    kcw_errors_clear(&errs);
    kcw_engine_t *e2 = kcw_engine_new(rs2, &f->opts, &f->hooks, f->e, T0 + 50000);
    assert_non_null(e2);
    size_t tf = rule_index(e2, "TaskFailed");
    const kcw_alert_t *a = kcw_alert_set_at(kcw_engine_rule_alerts(e2, tf), 0);
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->active_at_ms, T0 + 1000);
    assert_int_equal(count_state(e2, "Errors", KCW_ALERT_FIRING), 1);
    assert_int_equal(kcw_alert_set_count(kcw_engine_rule_alerts(e2, rule_index(e2, "TaskFailedLong"))), 0);
    assert_int_equal(kcw_alert_set_count_state(kcw_engine_budget_alerts(e2), KCW_ALERT_FIRING), 1);
    assert_true(kcw_engine_news_pending(e2));
    /* The old engine gave its state away and stays harmless. */
    assert_null(kcw_engine_budget_alerts(f->e));
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 51000);
    /* The new one goes on from there. */
    f->tasks[1].state = KCW_STATE_RUNNING;
    kcw_engine_connect_changed(e2, f->view, 1, T0 + 52000);
    assert_int_equal(count_state(e2, "TaskFailed", KCW_ALERT_FIRING), 0);
    kcw_engine_free(e2);
    kcw_ruleset_free(rs2);
    kcw_labels_clear(&s.metric);
}

static void test_api_views(void **state)
{
    fixture_t *f = *state;
    kcw_prom_sample_t s = sample("orders", 1);
    prom_round(f, 1, T0 + 40000, &s, 1);
    size_t n = 0;
    kcw_api_group_view_t *v = kcw_engine_api_views(f->e, &n);
    assert_non_null(v);
    assert_int_equal(n, 3);
    assert_string_equal(v[1].group->name, "prom");
    assert_int_equal(v[1].interval_ms, 30000);
    assert_int_equal(v[1].last_eval_ms, T0 + 40000);
    assert_int_equal(v[1].n_rules, 2);
    assert_int_equal(v[1].rules[0].health, KCW_RULE_HEALTH_OK);
    assert_int_equal(v[0].rules[0].health, KCW_RULE_HEALTH_UNKNOWN);
    kcw_engine_api_views_free(v, n);
    kcw_labels_clear(&s.metric);
}

static void on_state(void *arg, const kcw_rule_group_t *g, const kcw_rule_t *r,
                     const kcw_alert_t *a, int64_t now)
{
    (void)now;
    seen_t *s = arg;
    s->states++;
    snprintf(s->last_state_rule, sizeof(s->last_state_rule), "%s/%s", g ? g->name : "",
             r ? r->alert : KCW_ENGINE_BUDGET_ALERT);
    s->last_state = a->state;
}

static void on_gone(void *arg, const kcw_rule_group_t *g, const kcw_rule_t *r,
                    const kcw_labels_t *labels)
{
    seen_t *s = arg;
    s->gones++;
    snprintf(s->last_gone, sizeof(s->last_gone), "%s/%s %s/%s", g->name, r->alert,
             kcw_labels_get(labels, "connector"), kcw_labels_get(labels, "task"));
}

/* The store hears of every state change and of pending alerts that went
 * away; a restored pending alert keeps its activeAt, so `for` continues. */
static void test_state_hooks_and_restore(void **state)
{
    fixture_t *f = *state;
    kcw_engine_free(f->e);
    f->hooks.state = on_state;
    f->hooks.gone = on_gone;
    f->e = kcw_engine_new(f->rs, &f->opts, &f->hooks, NULL, T0);
    assert_non_null(f->e);
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 1000);
    assert_int_equal(f->seen.states, 2); /* TaskFailed firing, TaskFailedLong pending */
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 2000);
    assert_int_equal(f->seen.states, 2); /* nothing changed */
    f->tasks[1].state = KCW_STATE_RUNNING;
    kcw_engine_connect_changed(f->e, f->view, 1, T0 + 20000);
    assert_int_equal(f->seen.states, 3);
    assert_string_equal(f->seen.last_state_rule, "status/TaskFailed");
    assert_int_equal(f->seen.last_state, KCW_ALERT_INACTIVE);
    assert_int_equal(f->seen.gones, 1);
    assert_string_equal(f->seen.last_gone, "status/TaskFailedLong orders/1");

    /* A new run: the pending alert comes back with its activeAt. */
    kcw_engine_t *e2 = kcw_engine_new(f->rs, &f->opts, &f->hooks, NULL, T0 + 30000);
    assert_non_null(e2);
    kcw_alert_t saved = {.state = KCW_ALERT_PENDING, .active_at_ms = T0 + 1000,
                         .last_eval_ms = T0 + 2000};
    kcw_labels_set(&saved.labels, "alertname", "TaskFailedLong");
    kcw_labels_set(&saved.labels, "cluster", "c1");
    kcw_labels_set(&saved.labels, "connector", "orders");
    kcw_labels_set(&saved.labels, "task", "1");
    kcw_labels_set(&saved.labels, "state", "FAILED");
    kcw_labels_set(&saved.labels, "type", "sink");
    kcw_labels_set(&saved.labels, "worker_id", "w1");
    assert_int_equal(kcw_engine_restore_alert(e2, "status", "TaskFailedLong", &saved), 0);
    assert_int_equal(kcw_engine_restore_alert(e2, "status", "TaskFailedLong", &saved), -EEXIST);
    assert_int_equal(kcw_engine_restore_alert(e2, "status", "NoSuchRule", &saved), -ENOENT);
    assert_int_equal(kcw_engine_restore_alert(e2, NULL, "NoSuchRule", &saved), -ENOENT);
    f->tasks[1].state = KCW_STATE_FAILED;
    kcw_engine_connect_changed(e2, f->view, 1, T0 + 31000);
    assert_int_equal(count_state(e2, "TaskFailedLong", KCW_ALERT_PENDING), 1);
    kcw_engine_connect_changed(e2, f->view, 1, T0 + 62000); /* for 1m since T0 + 1000 */
    assert_int_equal(count_state(e2, "TaskFailedLong", KCW_ALERT_FIRING), 1);
    const kcw_alert_t *a =
        kcw_alert_set_at(kcw_engine_rule_alerts(e2, rule_index(e2, "TaskFailedLong")), 0);
    assert_int_equal(a->active_at_ms, T0 + 1000);
    /* The budget alert restores under no group. */
    kcw_alert_t b = {.state = KCW_ALERT_FIRING, .active_at_ms = T0, .fired_at_ms = T0};
    kcw_labels_set(&b.labels, "alertname", KCW_ENGINE_BUDGET_ALERT);
    assert_int_equal(kcw_engine_restore_alert(e2, NULL, KCW_ENGINE_BUDGET_ALERT, &b), 0);
    assert_int_equal(kcw_alert_set_count(kcw_engine_budget_alerts(e2)), 1);
    kcw_labels_clear(&b.labels);
    kcw_labels_clear(&saved.labels);
    kcw_engine_free(e2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schedule_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healing_holds_firing_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_spread_and_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_episodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_query_keeps_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_drops_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_labelset_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_poll_and_hand_offs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evaluation_time_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remediation_news_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_carries_state_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_hooks_and_restore, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
