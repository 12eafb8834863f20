/* test_storm.c: failure storms on a clock the test owns.
 *
 * A cluster of 20 connectors with 2 tasks each (40 tasks) is polled by hand:
 * task 0 of 10 connectors (25 %) fails in one poll. The storm starts, one
 * canary restart goes out while the others are held, the canary failing again
 * keeps everyone else held, the canary RUNNING for the verify period releases
 * the rest at the configured rate, and the storm ends when they all stayed
 * RUNNING for the verify period. Below the thresholds nothing is held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/storm.h"

#define SEC 1000
#define T0 1700000000000LL
#define N_CONNECTORS 20
#define TRACE_A                                                                                     \
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send " \
    "callback\n"                                                                                    \
    "Caused by: org.apache.kafka.common.errors.TimeoutException: Expiring %d record(s) for "        \
    "orders-%d:120005 ms has passed since batch creation\n"

typedef struct fixture {
    kcw_remediation_conf_t conf;
    kcw_cluster_status_t cl;
    kcw_connector_status_t cs[N_CONNECTORS];
    kcw_task_status_t tasks[N_CONNECTORS][2];
    char names[N_CONNECTORS][16];
    char traces[N_CONNECTORS][256];
    uint64_t generation;
    kcw_storm_t *storm;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->conf.enabled = true;
    f->conf.storm_enabled = true;
    f->conf.storm_min_tasks = 10;
    f->conf.storm_min_fraction = 0.2;
    f->conf.storm_window_ms = 60 * SEC;
    f->conf.storm_inhibit = true;
    f->conf.rate_per_min = 30; /* one every 2 s */
    f->conf.verify_timeout_ms = 3 * SEC;
    f->conf.backoff_max_ms = 10 * SEC;
    f->cl.name = "c1";
    f->cl.reachable = true;
    f->cl.connectors = f->cs;
    f->cl.n_connectors = N_CONNECTORS;
    for (int i = 0; i < N_CONNECTORS; i++) {
        snprintf(f->names[i], sizeof(f->names[i]), "conn-%02d", i); /* sorted by name */
        f->cs[i] = (kcw_connector_status_t){.name = f->names[i],
                                            .state = KCW_STATE_RUNNING,
                                            .tasks = f->tasks[i],
                                            .n_tasks = 2};
        for (int t = 0; t < 2; t++)
            f->tasks[i][t] = (kcw_task_status_t){.id = t, .state = KCW_STATE_RUNNING};
        /* one cause, other counts and partitions on every task */
        snprintf(f->traces[i], sizeof(f->traces[i]), TRACE_A, i + 1, i);
    }
    f->storm = kcw_storm_new();
    assert_non_null(f->storm);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kcw_storm_free(f->storm);
    free(f);
    return 0;
}

static void set_task(fixture_t *f, int connector, kcw_state_t st)
{
    f->tasks[connector][0].state = st;
    f->tasks[connector][0].trace = st == KCW_STATE_FAILED ? f->traces[connector] : NULL;
}

static void poll_at(fixture_t *f, int64_t now)
{
    f->cl.generation = ++f->generation;
    assert_int_equal(kcw_storm_observe(f->storm, &f->conf, &f->cl, now), 0);
}

static kcw_storm_admit_t admit(fixture_t *f, int connector, int64_t now)
{
    return kcw_storm_admit(f->storm, &f->conf, "c1", f->names[connector], -1, now);
}

static void test_below_threshold_passes(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 7; i++) /* 7 of 40: under both 10 and 20 % */
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    for (int i = 0; i < 7; i++)
        assert_int_equal(admit(f, i, T0), KCW_STORM_PASS);
    /* 10 failed, but spread over more than the window: no storm either */
    for (int i = 7; i < 10; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0 + 61 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    kcw_instance_t *inst = NULL;
    size_t n = 0;
    assert_int_equal(kcw_storm_alerts(f->storm, &f->conf, &inst, &n), 0);
    assert_int_equal(n, 0);
    free(inst);
    /* a cluster never polled has no storm */
    assert_int_equal(kcw_storm_admit(f->storm, &f->conf, "other", "x", 0, T0), KCW_STORM_PASS);
}

static void test_fraction_needed_too(void **state)
{
    fixture_t *f = *state;
    f->conf.storm_min_fraction = 0.5; /* 10 of 40 is 25 % */
    for (int i = 0; i < 10; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    f->conf.storm_min_fraction = 0.2;
    f->conf.storm_enabled = false;
    poll_at(f, T0 + SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    /* no restarts to pace, no storm; turning them off ends one */
    f->conf.storm_enabled = true;
    f->conf.enabled = false;
    poll_at(f, T0 + 2 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    f->conf.enabled = true;
    poll_at(f, T0 + 3 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_CANARY);
    f->conf.storm_enabled = false;
    poll_at(f, T0 + 4 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
}

static void test_canary_then_paced_release(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 10; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_CANARY);
    assert_int_equal(kcw_storm_members(f->storm, "c1"), 10);

    /* the first to ask is the canary; everyone else waits */
    assert_int_equal(admit(f, 3, T0), KCW_STORM_CANARY);
    for (int i = 0; i < 10; i++)
        if (i != 3)
            assert_int_equal(admit(f, i, T0 + SEC), KCW_STORM_HOLD);

    /* the cause persists: the canary fails again, asks again, still alone */
    poll_at(f, T0 + 2 * SEC);
    assert_int_equal(admit(f, 3, T0 + 5 * SEC), KCW_STORM_CANARY);
    assert_int_equal(admit(f, 4, T0 + 5 * SEC), KCW_STORM_HOLD);

    /* a task failing meanwhile joins the storm */
    set_task(f, 15, KCW_STATE_FAILED);
    poll_at(f, T0 + 6 * SEC);
    assert_int_equal(kcw_storm_members(f->storm, "c1"), 11);

    kcw_instance_t *inst = NULL;
    size_t n = 0;
    assert_int_equal(kcw_storm_alerts(f->storm, &f->conf, &inst, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(kcw_labels_get(&inst[0].labels, "alertname"), KCW_STORM_ALERT);
    assert_string_equal(kcw_labels_get(&inst[0].labels, "cluster"), "c1");
    /* the common cause: numbers and partitions differ, the key does not */
    assert_string_equal(kcw_labels_get(&inst[0].labels, "root_cause"),
                        "org.apache.kafka.common.errors.TimeoutException: Expiring N record(s) "
                        "for orders-N:N ms has passed since batch creation");
    assert_string_equal(kcw_labels_get(&inst[0].annotations, "tasks"), "11");
    assert_string_equal(kcw_labels_get(&inst[0].annotations, "connectors"),
                        "conn-00, conn-01, conn-02, conn-03, conn-04, conn-05, conn-06, "
                        "conn-07, conn-08, conn-09 and 1 more");
    assert_non_null(strstr(kcw_labels_get(&inst[0].annotations, "canary"),
                           "canary conn-03 not RUNNING after restart 2"));
    assert_true(inst[0].value == 11);
    kcw_instance_clear(&inst[0]);
    free(inst);

    /* the cause clears: the canary comes back, but one verify period first */
    set_task(f, 3, KCW_STATE_RUNNING);
    poll_at(f, T0 + 10 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_CANARY);
    assert_int_equal(admit(f, 4, T0 + 11 * SEC), KCW_STORM_HOLD);
    poll_at(f, T0 + 13 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);

    /* the rest at 30/min: one now, the next 2 s later, never two at once */
    assert_int_equal(admit(f, 4, T0 + 13 * SEC), KCW_STORM_RELEASE);
    assert_int_equal(admit(f, 5, T0 + 13 * SEC), KCW_STORM_HOLD);
    assert_int_equal(admit(f, 5, T0 + 14 * SEC), KCW_STORM_HOLD);
    assert_int_equal(admit(f, 5, T0 + 15 * SEC), KCW_STORM_RELEASE);
    assert_int_equal(admit(f, 6, T0 + 16 * SEC), KCW_STORM_HOLD);
    int64_t t = T0 + 17 * SEC;
    int left[] = {0, 1, 2, 6, 7, 8, 9, 15};
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++, t += 2 * SEC)
        assert_int_equal(admit(f, left[i], t), KCW_STORM_RELEASE);

    /* all RUNNING; the storm ends once they stayed so for the verify period */
    for (int i = 0; i < N_CONNECTORS; i++)
        set_task(f, i, KCW_STATE_RUNNING);
    poll_at(f, t);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);
    poll_at(f, t + 3 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
    assert_int_equal(admit(f, 0, t + 4 * SEC), KCW_STORM_PASS);
    inst = NULL;
    n = 0;
    assert_int_equal(kcw_storm_alerts(f->storm, &f->conf, &inst, &n), 0);
    assert_int_equal(n, 0);
    free(inst);
}

/* A canary that stops asking (its budget ran out) hands the role over. */
static void test_silent_canary_is_replaced(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 12; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(admit(f, 0, T0), KCW_STORM_CANARY);
    assert_int_equal(admit(f, 1, T0 + 12 * SEC), KCW_STORM_HOLD);
    /* backoff max 10 s + verify 3 s without a word from conn-00 */
    assert_int_equal(admit(f, 1, T0 + 14 * SEC), KCW_STORM_CANARY);
    assert_int_equal(admit(f, 0, T0 + 15 * SEC), KCW_STORM_HOLD);
}

/* Released members that fail again do not keep the storm (and the
 * notifications it holds back) open for ever; a lost cluster keeps it. */
static void test_end_with_members_failed_again(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 10; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(admit(f, 0, T0), KCW_STORM_CANARY);
    set_task(f, 0, KCW_STATE_RUNNING);
    poll_at(f, T0 + SEC);
    f->cl.reachable = false; /* no news is not recovery */
    poll_at(f, T0 + 5 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_CANARY);
    f->cl.reachable = true;
    poll_at(f, T0 + 6 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);
    int64_t t = T0 + 6 * SEC;
    for (int i = 1; i < 10; i++, t += 2 * SEC)
        assert_int_equal(admit(f, i, t), KCW_STORM_RELEASE);
    /* 1..4 came back, 5..9 failed again: nothing is held any more */
    for (int i = 1; i < 5; i++)
        set_task(f, i, KCW_STATE_RUNNING);
    poll_at(f, t);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);
    poll_at(f, t + 3 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_NONE);
}

static size_t count_alerts(fixture_t *f, const char *alertname, kcw_instance_t **first)
{
    kcw_instance_t *inst = NULL;
    size_t n = 0, hits = 0;
    assert_int_equal(kcw_storm_alerts(f->storm, &f->conf, &inst, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kcw_labels_get(&inst[i].labels, "alertname"), alertname) == 0 && hits++ == 0 &&
            first) {
            *first = calloc(1, sizeof(**first));
            assert_non_null(*first);
            **first = inst[i];
            continue; /* handed over */
        }
        kcw_instance_clear(&inst[i]);
    }
    free(inst);
    return hits;
}

/* Most failures on one worker, beyond its share of the tasks: it is named,
 * and the text says restarts may land there again. Spread: nobody is. */
static void test_sick_worker(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < N_CONNECTORS; i++) {
        f->tasks[i][0].worker_id = "w1:8083";
        f->tasks[i][1].worker_id = "w2:8083";
    }
    for (int i = 0; i < 2; i++) {
        f->tasks[i][1].state = KCW_STATE_FAILED;
        f->tasks[i][1].trace = f->traces[i];
    }
    poll_at(f, T0);
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, NULL), 0); /* 2: too few */
    for (int i = 2; i < 4; i++)
        f->tasks[i][1].state = KCW_STATE_FAILED;
    poll_at(f, T0 + SEC);
    kcw_instance_t *a = NULL;
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, &a), 1);
    assert_string_equal(kcw_labels_get(&a->labels, "worker_id"), "w2:8083");
    assert_string_equal(kcw_labels_get(&a->labels, "cluster"), "c1");
    assert_string_equal(kcw_labels_get(&a->annotations, "summary"),
                        "Worker w2:8083 holds 4 of the 4 failed tasks of c1");
    assert_non_null(strstr(kcw_labels_get(&a->annotations, "description"),
                           "Restarting these tasks can bring them back onto the same worker"));
    assert_true(a->value == 4);
    kcw_instance_clear(a);
    free(a);
    /* no storm: 4 of 40 */
    assert_int_equal(count_alerts(f, KCW_STORM_ALERT, NULL), 0);

    /* one failure elsewhere: 4 of 5 is most, but not beyond w2's half of the
     * tasks by chance alone */
    set_task(f, 7, KCW_STATE_FAILED);
    poll_at(f, T0 + 2 * SEC);
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, NULL), 0);
    /* an unchanged status keeps the verdict without a rescan */
    assert_int_equal(kcw_storm_observe(f->storm, &f->conf, &f->cl, T0 + 3 * SEC), 0);
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, NULL), 0);
}

/* While a storm is released, its members still FAILED are the ones it has
 * not restarted yet: that they sit on one worker names no worker. */
static void test_release_names_no_worker(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < N_CONNECTORS; i++) {
        f->tasks[i][0].worker_id = i % 2 ? "w2:8083" : "w1:8083";
        f->tasks[i][1].worker_id = i % 2 ? "w1:8083" : "w2:8083";
    }
    for (int i = 0; i < 10; i++)
        set_task(f, i, KCW_STATE_FAILED);
    poll_at(f, T0);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_CANARY);
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, NULL), 0); /* 5 and 5 */
    assert_int_equal(admit(f, 1, T0), KCW_STORM_CANARY);
    set_task(f, 1, KCW_STATE_RUNNING);
    poll_at(f, T0 + SEC);
    poll_at(f, T0 + 5 * SEC);
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);
    /* the odd ones (on w2) released first: the 5 left all sit on w1 */
    int64_t t = T0 + 5 * SEC;
    for (int i = 3; i < 10; i += 2, t += 2 * SEC) {
        assert_int_equal(admit(f, i, t), KCW_STORM_RELEASE);
        set_task(f, i, KCW_STATE_RUNNING);
        poll_at(f, t + SEC);
    }
    assert_int_equal(kcw_storm_phase(f->storm, "c1"), KCW_STORM_PHASE_RELEASE);
    assert_int_equal(count_alerts(f, KCW_WORKER_SUSPECT_ALERT, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_below_threshold_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fraction_needed_too, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary_then_paced_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_canary_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_with_members_failed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sick_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_names_no_worker, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
