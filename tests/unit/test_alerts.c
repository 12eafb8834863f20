/* test_alerts.c: the alert state machine against Prometheus' semantics, with
 * a clock owned by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/alerts.h"

#define T0 1700000000000LL /* an arbitrary wall-clock ms */
#define SEC 1000LL
#define MIN (60 * SEC)

static void make_inst(kcw_instance_t *in, const char *task, double value, const char *summary)
{
    memset(in, 0, sizeof(*in));
    assert_int_equal(kcw_labels_set(&in->labels, "alertname", "ConnectTaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&in->labels, "connector", "orders-sink"), 0);
    assert_int_equal(kcw_labels_set(&in->labels, "task", task), 0);
    if (summary)
        assert_int_equal(kcw_labels_set(&in->annotations, "summary", summary), 0);
    in->value = value;
}

/* One evaluation with the given tasks present (NULL-terminated list). */
static int eval(kcw_alert_set_t *s, int64_t now, ...)
{
    kcw_instance_t inst[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, now);
    const char *task;
    while ((task = va_arg(ap, const char *)) != NULL && n < 16)
        make_inst(&inst[n++], task, 1, "s");
    va_end(ap);
    return kcw_alert_set_update(s, inst, n, now);
}

static const kcw_alert_t *find_task(const kcw_alert_set_t *s, const char *task)
{
    kcw_instance_t key;
    make_inst(&key, task, 0, NULL);
    const kcw_alert_t *a = kcw_alert_set_find(s, &key.labels);
    kcw_instance_clear(&key);
    return a;
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(kcw_alert_state_name(KCW_ALERT_INACTIVE), "inactive");
    assert_string_equal(kcw_alert_state_name(KCW_ALERT_PENDING), "pending");
    assert_string_equal(kcw_alert_state_name(KCW_ALERT_FIRING), "firing");
    kcw_alert_set_free(NULL);
    kcw_instance_clear(NULL);
}

static void test_for_zero_fires_at_once(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("ConnectTaskFailed", 0, 0);
    assert_non_null(s);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 1);
    const kcw_alert_t *a = kcw_alert_set_at(s, 0);
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->active_at_ms, T0);
    assert_int_equal(a->fired_at_ms, T0);
    assert_int_equal(a->resolved_at_ms, 0);
    assert_int_equal(a->last_eval_ms, T0);
    assert_string_equal(kcw_labels_get(&a->labels, "task"), "1");
    assert_int_equal(a->fingerprint, kcw_labels_fingerprint(&a->labels));
    assert_null(kcw_alert_set_at(s, 1));
    kcw_alert_set_free(s);
}

static void test_pending_fires_exactly_at_for(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 1 * MIN, 0);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_PENDING);
    assert_int_equal(find_task(s, "1")->active_at_ms, T0);
    assert_int_equal(kcw_alert_set_count_state(s, KCW_ALERT_PENDING), 1);
    assert_int_equal(eval(s, T0 + 30 * SEC, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_PENDING);
    assert_int_equal(eval(s, T0 + MIN - 1, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_PENDING);
    assert_int_equal(find_task(s, "1")->fired_at_ms, 0);
    assert_int_equal(eval(s, T0 + MIN, "1", NULL), 0);
    const kcw_alert_t *a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->fired_at_ms, T0 + MIN);
    assert_int_equal(a->active_at_ms, T0); /* activeAt is kept */
    assert_int_equal(kcw_alert_set_count_state(s, KCW_ALERT_FIRING), 1);
    kcw_alert_set_free(s);
}

static void test_pending_dropped_when_absent(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 5 * MIN, 10 * MIN);
    assert_int_equal(eval(s, T0, "1", "2", NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 2);
    assert_int_equal(eval(s, T0 + MIN, "2", NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 1);
    assert_null(find_task(s, "1")); /* no resolved entry for a pending alert */
    assert_non_null(find_task(s, "2"));
    /* coming back starts over */
    assert_int_equal(eval(s, T0 + 2 * MIN, "1", "2", NULL), 0);
    assert_int_equal(find_task(s, "1")->active_at_ms, T0 + 2 * MIN);
    assert_int_equal(find_task(s, "2")->active_at_ms, T0);
    kcw_alert_set_free(s);
}

static void test_firing_resolves_when_absent(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 0, 0);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(eval(s, T0 + 10 * SEC, NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 1); /* kept for the notifier */
    const kcw_alert_t *a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_INACTIVE);
    assert_int_equal(a->resolved_at_ms, T0 + 10 * SEC);
    assert_int_equal(a->fired_at_ms, T0);
    assert_int_equal(a->last_eval_ms, T0); /* the last evaluation that saw it */
    assert_int_equal(kcw_alert_set_count_state(s, KCW_ALERT_INACTIVE), 1);
    assert_int_equal(kcw_alert_set_count_state(s, KCW_ALERT_FIRING), 0);
    /* staying absent does not move resolvedAt */
    assert_int_equal(eval(s, T0 + 20 * SEC, NULL), 0);
    assert_int_equal(find_task(s, "1")->resolved_at_ms, T0 + 10 * SEC);
    kcw_alert_set_free(s);
}

static void test_keep_firing_for(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 0, 2 * MIN);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);

    /* first absent evaluation starts the hold */
    int64_t t1 = T0 + 10 * SEC;
    assert_int_equal(eval(s, t1, NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);
    assert_int_equal(find_task(s, "1")->keep_firing_since_ms, t1);
    assert_int_equal(eval(s, t1 + MIN, NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);
    assert_int_equal(find_task(s, "1")->keep_firing_since_ms, t1);

    /* present again: the hold is cleared, nothing else changes */
    assert_int_equal(eval(s, t1 + 90 * SEC, "1", NULL), 0);
    const kcw_alert_t *a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->keep_firing_since_ms, 0);
    assert_int_equal(a->fired_at_ms, T0);

    /* a new hold counts from its own first absent evaluation */
    int64_t t2 = t1 + 100 * SEC;
    assert_int_equal(eval(s, t2, NULL), 0);
    assert_int_equal(find_task(s, "1")->keep_firing_since_ms, t2);
    assert_int_equal(eval(s, t2 + 2 * MIN - 1, NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);
    assert_int_equal(eval(s, t2 + 2 * MIN, NULL), 0);
    a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_INACTIVE);
    assert_int_equal(a->resolved_at_ms, t2 + 2 * MIN);
    kcw_alert_set_free(s);
}

static void test_keep_firing_does_not_hold_pending(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 5 * MIN, 10 * MIN);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(eval(s, T0 + SEC, NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 0);
    kcw_alert_set_free(s);
}

static void test_resolved_retention(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 0, 0);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    int64_t tr = T0 + MIN;
    assert_int_equal(eval(s, tr, NULL), 0);
    assert_int_equal(eval(s, tr + KCW_ALERT_RESOLVED_RETENTION_MS, NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 1); /* exactly 15 min: still listed */
    assert_int_equal(eval(s, tr + KCW_ALERT_RESOLVED_RETENTION_MS + 1, NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 0);
    kcw_alert_set_free(s);
}

static void test_reactivation_is_new_alert(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 1 * MIN, 0);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(eval(s, T0 + MIN, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);
    int64_t tr = T0 + 2 * MIN;
    assert_int_equal(eval(s, tr, NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_INACTIVE);

    int64_t back = tr + 30 * SEC;
    assert_int_equal(eval(s, back, "1", NULL), 0);
    assert_int_equal(kcw_alert_set_count(s), 1); /* replaces the resolved one */
    const kcw_alert_t *a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_PENDING);
    assert_int_equal(a->active_at_ms, back);
    assert_int_equal(a->fired_at_ms, 0);
    assert_int_equal(a->resolved_at_ms, 0);
    assert_int_equal(eval(s, back + MIN, "1", NULL), 0);
    a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->fired_at_ms, back + MIN);
    kcw_alert_set_free(s);
}

static void test_value_and_annotations_updated(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 1 * MIN, 0);
    kcw_instance_t in;
    make_inst(&in, "1", 1, "first");
    in.trace = strdup("trace one");
    assert_int_equal(kcw_alert_set_update(s, &in, 1, T0), 0);
    /* ownership moved: the instance is cleared */
    assert_int_equal(in.labels.n, 0);
    assert_null(in.trace);
    make_inst(&in, "1", 7.5, "second");
    in.trace = strdup("trace two");
    assert_int_equal(kcw_alert_set_update(s, &in, 1, T0 + 10 * SEC), 0);
    const kcw_alert_t *a = find_task(s, "1");
    assert_true(a->value == 7.5);
    assert_string_equal(kcw_labels_get(&a->annotations, "summary"), "second");
    assert_string_equal(a->trace, "trace two");
    assert_int_equal(a->last_eval_ms, T0 + 10 * SEC);
    assert_int_equal(a->active_at_ms, T0);
    kcw_alert_set_free(s);
}

static void test_duplicate_labelsets(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 0, 0);
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    kcw_instance_t inst[3];
    make_inst(&inst[0], "2", 5, "x");
    make_inst(&inst[1], "3", 5, "x");
    make_inst(&inst[2], "2", 6, "y");
    assert_int_equal(kcw_alert_set_update(s, inst, 3, T0 + MIN), -EEXIST);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(inst[i].labels.n, 0); /* cleared even on failure */
    /* nothing changed: no new alerts, the firing one was not resolved */
    assert_int_equal(kcw_alert_set_count(s), 1);
    const kcw_alert_t *a = find_task(s, "1");
    assert_int_equal(a->state, KCW_ALERT_FIRING);
    assert_int_equal(a->last_eval_ms, T0);
    assert_int_equal(a->resolved_at_ms, 0);
    kcw_alert_set_free(s);
}

/* Many alerts, given in varying orders: every lookup and transition holds. */
static void test_many_alerts(void **state)
{
    (void)state;
    enum { N = 3000 };
    kcw_alert_set_t *s = kcw_alert_set_new("A", 0, 0);
    kcw_instance_t *inst = calloc(N, sizeof(*inst));
    assert_non_null(inst);
    char task[16];
    for (int i = 0; i < N; i++) {
        snprintf(task, sizeof(task), "%d", (i * 7919) % N);
        make_inst(&inst[i], task, i, NULL);
    }
    assert_int_equal(kcw_alert_set_update(s, inst, N, T0), 0);
    assert_int_equal(kcw_alert_set_count(s), N);
    for (size_t i = 1; i < N; i++)
        assert_true(kcw_alert_set_at(s, i - 1)->fingerprint <= kcw_alert_set_at(s, i)->fingerprint);
    /* next evaluation: the even tasks only, plus N new ones */
    size_t n = 0;
    for (int i = 0; i < 2 * N; i++) {
        if (i < N && i % 2)
            continue;
        snprintf(task, sizeof(task), "%d", i);
        make_inst(&inst[n++], task, i, NULL);
        if (n == N)
            break;
    }
    assert_int_equal(kcw_alert_set_update(s, inst, n, T0 + SEC), 0);
    for (int i = 0; i < N; i++) {
        snprintf(task, sizeof(task), "%d", i);
        const kcw_alert_t *a = find_task(s, task);
        assert_non_null(a);
        assert_int_equal(a->state, i % 2 ? KCW_ALERT_INACTIVE : KCW_ALERT_FIRING);
    }
    size_t expected_new = N - (N + 1) / 2;
    assert_int_equal(kcw_alert_set_count(s), N + expected_new);
    for (size_t i = 1; i < kcw_alert_set_count(s); i++)
        assert_true(kcw_alert_set_at(s, i - 1)->fingerprint <= kcw_alert_set_at(s, i)->fingerprint);
    free(inst);
    kcw_alert_set_free(s);
}

static void test_restore(void **state)
{
    (void)state;
    kcw_alert_set_t *s = kcw_alert_set_new("A", 10 * MIN, 0);
    kcw_instance_t in;
    make_inst(&in, "1", 1, "saved");
    kcw_alert_t saved = {
        .labels = in.labels,
        .annotations = in.annotations,
        .value = 1,
        .state = KCW_ALERT_PENDING,
        .active_at_ms = T0 - 9 * MIN,
        .last_eval_ms = T0 - MIN,
    };
    assert_int_equal(kcw_alert_set_restore(s, &saved), 0);
    assert_int_equal(kcw_alert_set_restore(s, &saved), -EEXIST);
    kcw_instance_clear(&in); /* restore copied */
    /* pending since before the restart: fires once `for` has passed since activeAt */
    assert_int_equal(eval(s, T0, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_PENDING);
    assert_int_equal(eval(s, T0 + MIN, "1", NULL), 0);
    assert_int_equal(find_task(s, "1")->state, KCW_ALERT_FIRING);
    assert_int_equal(find_task(s, "1")->active_at_ms, T0 - 9 * MIN);
    kcw_alert_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_for_zero_fires_at_once),
        cmocka_unit_test(test_pending_fires_exactly_at_for),
        cmocka_unit_test(test_pending_dropped_when_absent),
        cmocka_unit_test(test_firing_resolves_when_absent),
        cmocka_unit_test(test_keep_firing_for),
        cmocka_unit_test(test_keep_firing_does_not_hold_pending),
        cmocka_unit_test(test_resolved_retention),
        cmocka_unit_test(test_reactivation_is_new_alert),
        cmocka_unit_test(test_value_and_annotations_updated),
        cmocka_unit_test(test_duplicate_labelsets),
        cmocka_unit_test(test_many_alerts),
        cmocka_unit_test(test_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
