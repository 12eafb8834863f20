/* test_remediate.c: the restart policy (back-off, budget, verification,
 * stable period) on a clock the test owns, and the remediator's decisions
 * that need no Connect call (disabled, excluded, unrecoverable, dedupe). The
 * loop parts (re-read, restart forms, 202/204/409) are covered by the
 * integration tests against the fake Connect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/config.h"
#include "kcwatch/ha_restarts.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/remediate.h"
#include "kcwatch/store.h"

#define SEC 1000LL
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define T0 1700000000000LL /* wall-clock ms; the policy needs clocks > 0 */

static kcw_remediation_conf_t default_conf(void)
{
    kcw_remediation_conf_t c = {
        .enabled = true,
        .dry_run = false,
        .max_concurrent = 2,
        .backoff_initial_ms = 30 * SEC,
        .backoff_max_ms = 30 * MINUTE,
        .backoff_multiplier = 2.0,
        .backoff_jitter = 0.0,
        .budget_max_restarts = 5,
        .budget_window_ms = HOUR,
        .stable_period_ms = 10 * MINUTE,
        .verify_timeout_ms = 2 * MINUTE,
    };
    return c;
}

/* --- back-off ------------------------------------------------------------ */

static void test_delay_sequence_no_jitter(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    const int64_t want[] = {30 * SEC,  60 * SEC,   120 * SEC,  240 * SEC, 480 * SEC,
                            960 * SEC, 1800 * SEC, 1800 * SEC, 1800 * SEC};
    for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++)
        assert_int_equal(kcw_restart_policy_delay(&c, i, 0.0), want[i]);
    /* jitter 0 ignores rand01 entirely */
    assert_int_equal(kcw_restart_policy_delay(&c, 1, 0.9), 60 * SEC);
}

static void test_delay_jitter_bounds(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    c.backoff_jitter = 0.2;
    for (int i = 0; i < 10; i++) {
        int64_t base = kcw_restart_policy_delay(
            &(kcw_remediation_conf_t){.backoff_initial_ms = c.backoff_initial_ms,
                                      .backoff_max_ms = c.backoff_max_ms,
                                      .backoff_multiplier = 2.0},
            i, 0.0);
        assert_int_equal(kcw_restart_policy_delay(&c, i, 0.0), base);
        for (double r = 0.0; r < 1.0; r += 0.125) {
            int64_t d = kcw_restart_policy_delay(&c, i, r);
            assert_true(d >= base);
            assert_true(d < base + base / 5 + 1);
        }
        int64_t hi = kcw_restart_policy_delay(&c, i, 0.999999);
        assert_true(hi <= base + base / 5);
        assert_true(hi >= base + base / 5 - base / 1000);
    }
    /* half way: +10% */
    assert_int_equal(kcw_restart_policy_delay(&c, 0, 0.5), 33 * SEC);
    /* the cap applies before the jitter */
    assert_int_equal(kcw_restart_policy_delay(&c, 20, 0.5), 1800 * SEC * 11 / 10);
    /* out-of-range rand01 is clamped, never beyond +jitter */
    assert_true(kcw_restart_policy_delay(&c, 0, 7.0) <= 36 * SEC);
    assert_int_equal(kcw_restart_policy_delay(&c, 0, -3.0), 30 * SEC);
}

static void test_delay_edge_cases(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    /* huge exponents saturate at the cap instead of overflowing */
    assert_int_equal(kcw_restart_policy_delay(&c, 100000, 0.0), 30 * MINUTE);
    assert_int_equal(kcw_restart_policy_delay(&c, -4, 0.0), 30 * SEC);
    c.backoff_multiplier = 0.5; /* below 1 would shrink: treated as constant */
    assert_int_equal(kcw_restart_policy_delay(&c, 5, 0.0), 30 * SEC);
    c.backoff_multiplier = 3.0;
    c.backoff_max_ms = 10 * MINUTE;
    assert_int_equal(kcw_restart_policy_delay(&c, 2, 0.0), 270 * SEC);
    assert_int_equal(kcw_restart_policy_delay(&c, 3, 0.0), 10 * MINUTE);
    c.backoff_jitter = 5.0; /* jitter is a fraction: at most +100% */
    assert_true(kcw_restart_policy_delay(&c, 0, 0.5) == 45 * SEC);
}

/* --- budget -------------------------------------------------------------- */

static void test_budget_sliding_window(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    kcw_restart_policy_record(&t, &c, T0 + 10 * MINUTE, 0.0);
    kcw_restart_policy_record(&t, &c, T0 + 20 * MINUTE, 0.0);
    assert_int_equal(kcw_restart_policy_budget_used(&t, &c, T0 + 20 * MINUTE), 3);
    assert_int_equal(kcw_restart_policy_budget_used(&t, &c, T0 + 59 * MINUTE), 3);
    /* (now - window, now]: the attempt exactly one window old is out */
    assert_int_equal(kcw_restart_policy_budget_used(&t, &c, T0 + HOUR), 2);
    assert_int_equal(t.attempts_ms[0], T0 + 10 * MINUTE);
    assert_int_equal(kcw_restart_policy_budget_used(&t, &c, T0 + HOUR + 15 * MINUTE), 1);
    assert_int_equal(kcw_restart_policy_budget_used(&t, &c, T0 + 2 * HOUR), 0);
    assert_int_equal(t.n_attempts, 0);
}

static void test_budget_history_cap(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    c.budget_max_restarts = 1000; /* capped by the history */
    kcw_restart_track_t t = {0};
    for (int i = 0; i < KCW_RESTART_MAX_HISTORY + 3; i++)
        kcw_restart_policy_record(&t, &c, T0 + i * SEC, 0.0);
    assert_int_equal(t.n_attempts, KCW_RESTART_MAX_HISTORY);
    assert_int_equal(t.attempts_ms[0], T0 + 3 * SEC); /* oldest dropped, order kept */
    assert_int_equal(t.attempts_ms[KCW_RESTART_MAX_HISTORY - 1],
                     T0 + (KCW_RESTART_MAX_HISTORY + 2) * SEC);
    t.verifying = false;
    t.next_allowed_ms = 0;
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 100 * SEC), -EDQUOT);
}

static void test_budget_unlimited(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    c.budget_max_restarts = 0;
    kcw_restart_track_t t = {0};
    for (int i = 0; i < 20; i++) {
        assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + i * HOUR), 0);
        kcw_restart_policy_record(&t, &c, T0 + i * HOUR, 0.0);
        t.verifying = false;
    }
    assert_false(t.exhausted);
}

/* --- check / record ------------------------------------------------------ */

static void test_record_schedules_backoff(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0), 0); /* first restart: at once */
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    assert_true(t.verifying);
    assert_false(t.saw_transition);
    assert_int_equal(t.consecutive, 1);
    assert_int_equal(t.last_restart_ms, T0);
    assert_int_equal(t.next_allowed_ms, T0 + 30 * SEC);
    assert_int_equal(t.n_attempts, 1);

    /* a restart awaiting its verdict blocks the next one */
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 31 * SEC), -EAGAIN);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RESTARTING, T0 + 5 * SEC), -1);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 10 * SEC),
                     KCW_REMEDIATION_FAILED);
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 29 * SEC), -EAGAIN);
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 30 * SEC), 0);

    kcw_restart_policy_record(&t, &c, T0 + 30 * SEC, 0.0);
    assert_int_equal(t.next_allowed_ms, T0 + 30 * SEC + 60 * SEC);
    assert_int_equal(t.consecutive, 2);

    /* with jitter the schedule lands inside [delay, delay * 1.2] */
    kcw_remediation_conf_t j = c;
    j.backoff_jitter = 0.2;
    kcw_restart_track_t u = {.consecutive = 3};
    kcw_restart_policy_record(&u, &j, T0, 0.75);
    assert_int_equal(u.next_allowed_ms, T0 + 240 * SEC * 115 / 100);
}

static void test_check_budget_exhausts(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    c.budget_max_restarts = 3;
    kcw_restart_track_t t = {0};
    int64_t now = T0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kcw_restart_policy_check(&t, &c, now), 0);
        kcw_restart_policy_record(&t, &c, now, 0.0);
        /* the last attempt's verification is pending: no verdict, no exhaustion */
        assert_int_equal(kcw_restart_policy_check(&t, &c, now + 1), -EAGAIN);
        assert_false(t.exhausted);
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, now + 3 * MINUTE),
                         KCW_REMEDIATION_FAILED);
        now = t.next_allowed_ms;
    }
    assert_int_equal(kcw_restart_policy_check(&t, &c, now), -EDQUOT);
    assert_true(t.exhausted);
    /* still failing: the window sliding alone does not resume restarts */
    now = T0 + 3 * HOUR;
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, now), -1);
    assert_int_equal(kcw_restart_policy_check(&t, &c, now), -EDQUOT);
    /* not failing and the window has room: exhausted clears */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, now + MINUTE), -1);
    assert_false(t.exhausted);
    assert_int_equal(kcw_restart_policy_check(&t, &c, now + MINUTE), 0);
}

static void test_exhausted_needs_window_room(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    c.budget_max_restarts = 2;
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    t.verifying = false;
    kcw_restart_policy_record(&t, &c, T0 + MINUTE, 0.0);
    t.verifying = false;
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 10 * MINUTE), -EDQUOT);
    /* RUNNING but the window is still full: stays exhausted ... */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, T0 + 11 * MINUTE), -1);
    assert_true(t.exhausted);
    /* ... until the stable period resets everything */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, T0 + 21 * MINUTE),
                     KCW_REMEDIATION_STABLE);
    assert_false(t.exhausted);
    assert_int_equal(t.n_attempts, 0);
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 21 * MINUTE), 0);
}

static void test_defer_and_retry_not_counted(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_defer(&t, &c, T0, 0.0);
    assert_int_equal(t.n_attempts, 0);
    assert_false(t.verifying);
    assert_int_equal(t.consecutive, 1);
    assert_int_equal(t.next_allowed_ms, T0 + 30 * SEC);
    assert_int_equal(kcw_restart_policy_check(&t, &c, T0 + 29 * SEC), -EAGAIN);
    kcw_restart_policy_defer(&t, &c, T0 + 30 * SEC, 0.0);
    assert_int_equal(t.next_allowed_ms, T0 + 90 * SEC);

    kcw_restart_track_t u = {0};
    kcw_restart_policy_retry(&u, &c, T0, -1);
    assert_int_equal(u.next_allowed_ms, T0 + 5 * SEC);
    assert_int_equal(u.consecutive, 0);
    assert_int_equal(u.n_attempts, 0);
    assert_int_equal(kcw_restart_policy_check(&u, &c, T0 + 4 * SEC), -EAGAIN);
    assert_int_equal(kcw_restart_policy_check(&u, &c, T0 + 5 * SEC), 0);
    c.backoff_initial_ms = 2 * SEC;
    kcw_restart_policy_retry(&u, &c, T0, -1);
    assert_int_equal(u.next_allowed_ms, T0 + 2 * SEC);
    /* A 429's Retry-After: later than the default wins, earlier does not. */
    kcw_restart_policy_retry(&u, &c, T0, 30 * SEC);
    assert_int_equal(u.next_allowed_ms, T0 + 30 * SEC);
    assert_int_equal(u.n_attempts, 0);
    kcw_restart_policy_retry(&u, &c, T0, 1 * SEC);
    assert_int_equal(u.next_allowed_ms, T0 + 2 * SEC);
}

/* --- verification -------------------------------------------------------- */

static void test_observe_stale_failed_is_not_failure(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    /* the FAILED records right after the reply are the old ones (§5.4) */
    for (int i = 1; i <= 5; i++)
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + i * 5 * SEC),
                         -1);
    assert_true(t.verifying);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, T0 + 30 * SEC),
                     KCW_REMEDIATION_RECOVERED);
    assert_false(t.verifying);
    assert_int_equal(t.running_since_ms, T0 + 30 * SEC);
}

static void test_observe_failed_after_transition(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    const kcw_state_t transitions[] = {KCW_STATE_RESTARTING, KCW_STATE_UNASSIGNED};
    for (size_t i = 0; i < 2; i++) {
        kcw_restart_track_t t = {0};
        kcw_restart_policy_record(&t, &c, T0, 0.0);
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + SEC), -1);
        assert_int_equal(kcw_restart_policy_observe(&t, &c, transitions[i], T0 + 2 * SEC), -1);
        assert_true(t.saw_transition);
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 3 * SEC),
                         KCW_REMEDIATION_FAILED);
        assert_false(t.verifying);
        /* reported once */
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 4 * SEC), -1);
    }
    /* the caller flags a changed trace as a transition */
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    t.saw_transition = true;
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + SEC),
                     KCW_REMEDIATION_FAILED);
}

static void test_observe_failed_after_running(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, T0 + 10 * SEC),
                     KCW_REMEDIATION_RECOVERED);
    /* the restart did not hold */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 40 * SEC),
                     KCW_REMEDIATION_FAILED);
    assert_int_equal(t.running_since_ms, 0);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 45 * SEC), -1);
    /* counters untouched: the back-off keeps growing */
    assert_int_equal(t.consecutive, 1);
    assert_int_equal(t.n_attempts, 1);
}

static void test_observe_verify_timeout(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 2 * MINUTE - 1), -1);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, T0 + 2 * MINUTE),
                     KCW_REMEDIATION_FAILED);
    assert_false(t.verifying);

    /* stuck in UNASSIGNED is no recovery either */
    kcw_restart_track_t u = {0};
    kcw_restart_policy_record(&u, &c, T0, 0.0);
    assert_int_equal(kcw_restart_policy_observe(&u, &c, KCW_STATE_UNASSIGNED, T0 + MINUTE), -1);
    assert_int_equal(kcw_restart_policy_observe(&u, &c, KCW_STATE_UNASSIGNED, T0 + 3 * MINUTE),
                     KCW_REMEDIATION_FAILED);

    /* an unknown state (cluster unreachable) judges nothing, even late */
    kcw_restart_track_t w = {0};
    kcw_restart_policy_record(&w, &c, T0, 0.0);
    assert_int_equal(kcw_restart_policy_observe(&w, &c, KCW_STATE_UNKNOWN, T0 + 10 * MINUTE), -1);
    assert_int_equal(kcw_restart_policy_observe(&w, &c, KCW_STATE_UNREACHABLE, T0 + 10 * MINUTE),
                     -1);
    assert_true(w.verifying);

    /* paused meanwhile: the operator took over, no verdict */
    kcw_restart_track_t p = {0};
    kcw_restart_policy_record(&p, &c, T0, 0.0);
    assert_int_equal(kcw_restart_policy_observe(&p, &c, KCW_STATE_PAUSED, T0 + 10 * SEC), -1);
    assert_false(p.verifying);
}

static void test_observe_recovered_once(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    int recovered = 0;
    for (int i = 1; i <= 20; i++)
        if (kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, T0 + i * 5 * SEC) ==
            KCW_REMEDIATION_RECOVERED)
            recovered++;
    assert_int_equal(recovered, 1);
    /* one healthy poll resets nothing */
    assert_int_equal(t.consecutive, 1);
    assert_int_equal(t.n_attempts, 1);
}

static void test_observe_stable_after_whole_period(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    int64_t t1 = T0 + 20 * SEC;
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1),
                     KCW_REMEDIATION_RECOVERED);
    for (int64_t now = t1 + 5 * SEC; now < t1 + 10 * MINUTE; now += 5 * SEC)
        assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, now), -1);
    assert_int_equal(t.consecutive, 1);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1 + 10 * MINUTE),
                     KCW_REMEDIATION_STABLE);
    /* counters reset: the next failure restarts at once with the initial delay */
    assert_int_equal(t.consecutive, 0);
    assert_int_equal(t.n_attempts, 0);
    assert_int_equal(t.next_allowed_ms, 0);
    assert_int_equal(kcw_restart_policy_check(&t, &c, t1 + 10 * MINUTE), 0);
    kcw_restart_policy_record(&t, &c, t1 + 11 * MINUTE, 0.0);
    assert_int_equal(t.next_allowed_ms, t1 + 11 * MINUTE + 30 * SEC);
    /* STABLE once: nothing left to reset */
    kcw_restart_track_t u = {0};
    assert_int_equal(kcw_restart_policy_observe(&u, &c, KCW_STATE_RUNNING, T0), -1);
    assert_int_equal(kcw_restart_policy_observe(&u, &c, KCW_STATE_RUNNING, T0 + HOUR), -1);
}

static void test_observe_failed_restarts_stable_clock(void **state)
{
    (void)state;
    kcw_remediation_conf_t c = default_conf();
    kcw_restart_track_t t = {0};
    kcw_restart_policy_record(&t, &c, T0, 0.0);
    int64_t t1 = T0 + 20 * SEC;
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1),
                     KCW_REMEDIATION_RECOVERED);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_FAILED, t1 + 5 * MINUTE),
                     KCW_REMEDIATION_FAILED);
    /* RUNNING again (e.g. someone restarted it): the clock starts over */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1 + 6 * MINUTE), -1);
    assert_int_equal(t.running_since_ms, t1 + 6 * MINUTE);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1 + 10 * MINUTE), -1);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1 + 16 * MINUTE - 1),
                     -1);
    /* a rebalance's UNASSIGNED in between is neither failure nor reset */
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_UNASSIGNED, t1 + 16 * MINUTE - 1),
                     -1);
    assert_int_equal(kcw_restart_policy_observe(&t, &c, KCW_STATE_RUNNING, t1 + 16 * MINUTE),
                     KCW_REMEDIATION_STABLE);
    assert_int_equal(t.consecutive, 0);
}

/* --- the remediator without Connect -------------------------------------- */

typedef struct recorder {
    int n;
    kcw_remediation_event_kind_t kind[16];
    char detail[16][512];
    char request[16][256];
    long http[16];
    int attempt[16];
    int task[16];
    char cluster[16][64];
} recorder_t;

static void record_event(const kcw_remediation_event_t *ev, void *arg)
{
    recorder_t *rec = arg;
    assert_non_null(ev->detail);
    assert_non_null(ev->connector);
    if (rec->n >= 16)
        return;
    rec->kind[rec->n] = ev->kind;
    snprintf(rec->detail[rec->n], sizeof(rec->detail[0]), "%s", ev->detail);
    snprintf(rec->request[rec->n], sizeof(rec->request[0]), "%s", ev->request ? ev->request : "");
    snprintf(rec->cluster[rec->n], sizeof(rec->cluster[0]), "%s", ev->cluster);
    rec->http[rec->n] = ev->http_status;
    rec->attempt[rec->n] = ev->attempt;
    rec->task[rec->n] = ev->task;
    rec->n++;
}

typedef struct fixture {
    kcw_rule_t rule;
    kcw_alert_t alert;
    kcw_remediation_conf_t conf;
    recorder_t rec;
    FILE *log;
    char *logbuf;
    size_t loglen;
} fixture_t;

static int fixture_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rule.alert = "KafkaConnectTaskFailed";
    f->rule.restart.enabled = true;
    f->rule.restart.scope = KCW_SCOPE_FAILED;
    f->alert.state = KCW_ALERT_FIRING;
    assert_int_equal(kcw_labels_set(&f->alert.labels, "alertname", "KafkaConnectTaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&f->alert.labels, "cluster", "prod"), 0);
    assert_int_equal(kcw_labels_set(&f->alert.labels, "connector", "orders-sink"), 0);
    assert_int_equal(kcw_labels_set(&f->alert.labels, "task", "1"), 0);
    f->conf = default_conf();
    f->log = open_memstream(&f->logbuf, &f->loglen);
    assert_non_null(f->log);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, f->log);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture_t *f = *state;
    kcw_labels_clear(&f->alert.labels);
    kcw_log_reset();
    fclose(f->log);
    free(f->logbuf);
    kcw_regex_free(f->rule.restart.unless_trace);
    free(f);
    return 0;
}

static const char *fixture_log(fixture_t *f)
{
    fflush(f->log);
    return f->logbuf ? f->logbuf : "";
}

static void test_event_names(void **state)
{
    (void)state;
    assert_string_equal(kcw_remediation_event_name(KCW_REMEDIATION_SENT), "sent");
    assert_string_equal(kcw_remediation_event_name(KCW_REMEDIATION_DRY_RUN), "dry_run");
    assert_string_equal(kcw_remediation_event_name(KCW_REMEDIATION_BUDGET_EXHAUSTED),
                        "budget_exhausted");
    assert_string_equal(kcw_remediation_event_name(KCW_REMEDIATION_STABLE), "stable");
    assert_string_equal(kcw_remediation_event_name((kcw_remediation_event_kind_t)99), "unknown");
}

static void test_remediator_ignores_non_candidates(void **state)
{
    fixture_t *f = *state;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    f->alert.state = KCW_ALERT_PENDING;
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    f->alert.state = KCW_ALERT_FIRING;
    f->rule.restart.enabled = false;
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    f->rule.restart.enabled = true;
    kcw_labels_set(&f->alert.labels, "connector", "");
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    assert_int_equal(f->rec.n, 0);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    assert_null(kcw_remediator_note(r, &f->alert.labels));
    /* not acted on: no remediation label */
    assert_int_equal(kcw_remediator_state(r, &f->alert.labels, T0), KCW_HEAL_NONE);
    assert_null(kcw_heal_state_name(KCW_HEAL_NONE));
    kcw_remediator_free(r);
    kcw_remediator_free(NULL);
}

static void test_remediator_disabled_reports_once(void **state)
{
    fixture_t *f = *state;
    f->conf.enabled = false;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    for (int i = 0; i < 3; i++)
        kcw_remediator_consider(r, &f->rule, &f->alert, T0 + i * 10 * SEC);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.kind[0], KCW_REMEDIATION_SKIPPED);
    assert_string_equal(f->rec.cluster[0], "prod");
    /* scope failed: the connector is the target */
    assert_int_equal(f->rec.task[0], -1);
    assert_string_equal(kcw_remediator_note(r, &f->alert.labels),
                        "not restarted: remediation is disabled");
    assert_int_equal(kcw_remediator_state(r, &f->alert.labels, T0), KCW_HEAL_NONE);
    assert_non_null(strstr(fixture_log(f), "msg=\"restart skipped\""));
    assert_non_null(strstr(fixture_log(f), "connector=orders-sink"));
    kcw_remediator_free(r);
}

/* A cluster taken over from another instance: the restarts it made, read
 * from etcd, count against the budget here (ha_restarts.h). */
static void test_remediator_adopts_restarts(void **state)
{
    fixture_t *f = *state;
    f->conf.budget_max_restarts = 2;
    f->conf.budget_window_ms = HOUR;
    kcw_restart_track_t before = {.n_attempts = 1, .attempts_ms = {T0 - 20 * SEC},
                                  .consecutive = 1};
    char *mine = kcw_ha_restart_record("kcw-b", "prod", "orders-sink", -1, "POST x", &before,
                                       T0 - 10 * SEC);
    char *old = kcw_ha_restart_record("kcw-a", "prod", "orders-sink", -1, "POST x", &before,
                                      T0 - 2 * HOUR);
    char *theirs = kcw_ha_restart_record("kcw-a", "prod", "orders-sink", -1, "POST x", &before,
                                         T0 - 10 * SEC);
    assert_non_null(mine);
    assert_non_null(old);
    assert_non_null(theirs);

    /* Its own record (its store has it) and one past the window count nothing. */
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    const char *skip[] = {mine, "{\"not\": \"a record\"}"};
    assert_int_equal(kcw_ha_restarts_adopt(r, "kcw-b", skip, 2, T0), 0);
    const char *stale[] = {old};
    assert_int_equal(kcw_ha_restarts_adopt(r, "kcw-b", stale, 1, T0 + HOUR), 1);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + HOUR);
    assert_int_equal(f->rec.n, 0);
    kcw_remediator_free(r);

    /* The other instance's two restarts in the window: the budget is used up. */
    r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    const char *recs[] = {theirs};
    assert_int_equal(kcw_ha_restarts_adopt(r, "kcw-b", recs, 1, T0), 1);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.kind[0], KCW_REMEDIATION_BUDGET_EXHAUSTED);
    assert_non_null(strstr(fixture_log(f), "unreadable restart records"));
    kcw_remediator_free(r);
    free(mine);
    free(old);
    free(theirs);
}

static void test_remediator_excluded(void **state)
{
    fixture_t *f = *state;
    f->conf.exclude_connector = "legacy-.*";
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    kcw_labels_set(&f->alert.labels, "connector", "legacy-jdbc");
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 10 * SEC);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.kind[0], KCW_REMEDIATION_SKIPPED);
    assert_non_null(strstr(f->rec.detail[0], "excluded"));
    /* the exclude regex is anchored like a label matcher */
    kcw_labels_set(&f->alert.labels, "connector", "my-legacy-jdbc");
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 20 * SEC);
    assert_int_equal(f->rec.n, 1);
    kcw_remediator_free(r);
}

static void test_remediator_unrecoverable(void **state)
{
    fixture_t *f = *state;
    char *patterns[] = {"SaslAuthenticationException", "ConfigException"};
    f->conf.unrecoverable_traces = patterns;
    f->conf.n_unrecoverable_traces = 2;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    f->alert.trace = "org.apache.kafka.common.errors.SaslAuthenticationException: bad login\n"
                     "\tat org.apache.kafka.Foo.bar(Foo.java:1)";
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 10 * SEC);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.kind[0], KCW_REMEDIATION_UNRECOVERABLE);
    assert_int_equal(kcw_remediator_state(r, &f->alert.labels, T0 + 10 * SEC),
                     KCW_HEAL_UNFIXABLE);
    assert_string_equal(kcw_heal_state_name(KCW_HEAL_UNFIXABLE), "unfixable");
    assert_non_null(strstr(f->rec.detail[0], "'SaslAuthenticationException'"));
    assert_non_null(strstr(f->rec.detail[0], "restarting cannot fix this failure"));
    const char *note = kcw_remediator_note(r, &f->alert.labels);
    assert_non_null(note);
    assert_true(strncmp(note,
                        "not restarted: trace matches unrecoverable pattern "
                        "'SaslAuthenticationException'",
                        strlen("not restarted: trace matches unrecoverable pattern "
                               "'SaslAuthenticationException'")) == 0);
    assert_non_null(strstr(fixture_log(f), "level=warn"));
    /* the log carries only the trace's first line */
    assert_non_null(strstr(fixture_log(f), "trace=\"org.apache.kafka.common.errors."
                                           "SaslAuthenticationException: bad login\""));

    /* a different failure of the same target is reported again */
    f->alert.trace = "org.apache.kafka.common.config.ConfigException: Missing required "
                     "configuration \"topics\"";
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 20 * SEC);
    assert_int_equal(f->rec.n, 2);
    assert_non_null(strstr(f->rec.detail[1], "'ConfigException'"));

    /* a recoverable trace passes (and, without Connect, stops there) */
    f->alert.trace = "org.apache.kafka.connect.errors.RetriableException: timeout";
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 30 * SEC);
    assert_int_equal(f->rec.n, 2);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    kcw_remediator_free(r);
}

static void test_remediator_rule_unless_trace(void **state)
{
    fixture_t *f = *state;
    char err[128];
    assert_int_equal(kcw_regex_compile("SerializationException|DataException", false,
                                       &f->rule.restart.unless_trace, err, sizeof(err)),
                     0);
    f->rule.restart.scope = KCW_SCOPE_TASK;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    f->alert.trace = "org.apache.kafka.connect.errors.DataException: bad record";
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.kind[0], KCW_REMEDIATION_UNRECOVERABLE);
    assert_int_equal(f->rec.task[0], 1); /* scope task: the alert's task is the target */
    assert_non_null(strstr(f->rec.detail[0], "unless_trace"));
    /* the note is found by the alert's labels (task target) */
    assert_non_null(strstr(kcw_remediator_note(r, &f->alert.labels), "DataException"));
    kcw_remediator_free(r);
}

static void test_remediator_set_conf_keeps_tracks(void **state)
{
    fixture_t *f = *state;
    f->conf.enabled = false;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0);
    assert_int_equal(f->rec.n, 1);
    kcw_remediation_conf_t c2 = f->conf;
    c2.enabled = true;
    c2.exclude_connector = "orders-.*";
    kcw_remediator_set_conf(r, &c2);
    kcw_remediator_consider(r, &f->rule, &f->alert, T0 + 10 * SEC);
    assert_int_equal(f->rec.n, 2);
    assert_non_null(strstr(f->rec.detail[1], "excluded by remediation.exclude 'orders-.*'"));
    kcw_instance_t *inst = NULL;
    size_t n = 99;
    assert_int_equal(kcw_remediator_exhausted(r, &inst, &n), 0);
    assert_int_equal(n, 0);
    assert_null(inst);
    kcw_remediator_free(r);
}

static void test_remediator_observe_untracked(void **state)
{
    fixture_t *f = *state;
    kcw_remediator_t *r = kcw_remediator_new(NULL, NULL, &f->conf, record_event, &f->rec);
    assert_non_null(r);
    kcw_task_status_t tasks[] = {{.id = 0, .state = KCW_STATE_RUNNING}};
    kcw_connector_status_t conns[] = {
        {.name = "orders-sink", .state = KCW_STATE_RUNNING, .tasks = tasks, .n_tasks = 1}};
    kcw_cluster_status_t st = {
        .name = "prod", .reachable = true, .connectors = conns, .n_connectors = 1};
    kcw_remediator_observe(r, 0, &st, T0);
    kcw_remediator_observe(r, 0, NULL, T0);
    assert_int_equal(f->rec.n, 0);
    kcw_remediator_free(r);
}

/* --- the remediator on a loop, against an in-process fake Connect -------- */

/* A fake worker for one connector, orders-sink, with two tasks; it follows
 * connect-rest.md for the calls the remediator makes and records every POST. */
typedef struct fake_worker {
    struct MHD_Daemon *daemon;
    unsigned short port;
    pthread_mutex_t mu;
    char version[32];
    kcw_state_t conn, task0, task1;
    int kip745_code; /* answer to ?includeTasks=true&onlyFailed=true: 202, 204 (old), 409 */
    int plain_code;  /* plain connector restart */
    int task_code;   /* per-task restart */
    char posts[16][160];
    int n_posts;
} fake_worker_t;

static void state_json(const fake_worker_t *w, char *buf, size_t n, bool restarting)
{
    const char *tr = "org.acme.SinkException: write failed\\n\\tat org.acme.Sink.put(Sink.java:1)";
    kcw_state_t t[2] = {w->task0, w->task1};
    char tasks[2][256];
    for (int i = 0; i < 2; i++) {
        bool failed = t[i] == KCW_STATE_FAILED;
        snprintf(tasks[i], sizeof(tasks[i]),
                 "{\"id\": %d, \"state\": \"%s\", \"worker_id\": \"w1:8083\"%s%s%s}", i,
                 failed && restarting ? "RESTARTING" : kcw_state_name(t[i]),
                 failed ? ", \"trace\": \"" : "", failed ? tr : "", failed ? "\"" : "");
    }
    snprintf(buf, n,
             "{\"name\": \"orders-sink\", \"connector\": {\"state\": \"%s\", \"worker_id\": "
             "\"w1:8083\"}, \"tasks\": [%s, %s], \"type\": \"sink\"}",
             kcw_state_name(w->conn), tasks[0], tasks[1]);
}

static enum MHD_Result fake_reply(struct MHD_Connection *c, unsigned code, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (*body)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    static int first_call;
    fake_worker_t *w = cls;
    if (*con_cls == NULL) {
        *con_cls = &first_call;
        return MHD_YES;
    }
    *upload_size = 0;
    char body[2048], status[1024];
    unsigned code = 200;
    pthread_mutex_lock(&w->mu);
    state_json(w, status, sizeof(status), false);
    const char *inc = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "includeTasks");
    const char *only = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "onlyFailed");
    int task = -1;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/") == 0) {
        snprintf(body, sizeof(body),
                 "{\"version\": \"%s\", \"commit\": \"abc\", \"kafka_cluster_id\": \"k1\"}",
                 w->version);
    } else if (strcmp(method, "GET") == 0 && strcmp(url, "/connectors") == 0) {
        snprintf(body, sizeof(body),
                 "{\"orders-sink\": {\"status\": %s, \"info\": {\"name\": \"orders-sink\", "
                 "\"config\": {\"tasks.max\": \"2\"}, \"tasks\": [{\"connector\": "
                 "\"orders-sink\", \"task\": 0}, {\"connector\": \"orders-sink\", \"task\": 1}], "
                 "\"type\": \"sink\"}}}",
                 status);
    } else if (strcmp(method, "GET") == 0 && strcmp(url, "/connectors/orders-sink/status") == 0) {
        snprintf(body, sizeof(body), "%s", status);
    } else if (strcmp(method, "POST") == 0 &&
               (strcmp(url, "/connectors/orders-sink/restart") == 0 ||
                sscanf(url, "/connectors/orders-sink/tasks/%d/restart", &task) == 1)) {
        if (w->n_posts < 16)
            snprintf(w->posts[w->n_posts++], sizeof(w->posts[0]), "POST %s%s%s%s%s", url,
                     inc ? "?includeTasks=" : "", inc ? inc : "", only ? "&onlyFailed=" : "",
                     only ? only : "");
        if (task >= 0) {
            code = (unsigned)w->task_code;
        } else if (inc && strcmp(inc, "true") == 0 && only && strcmp(only, "true") == 0) {
            code = (unsigned)w->kip745_code;
        } else {
            code = (unsigned)w->plain_code;
        }
        body[0] = '\0';
        if (code == 202)
            state_json(w, body, sizeof(body), true);
        else if (code >= 400)
            snprintf(body, sizeof(body), "{\"error_code\": %u, \"message\": \"fake\"}", code);
    } else {
        code = 404;
        snprintf(body, sizeof(body), "{\"error_code\": 404, \"message\": \"HTTP 404 Not Found\"}");
    }
    pthread_mutex_unlock(&w->mu);
    return fake_reply(c, code, body);
}

typedef struct loop_fixture {
    fake_worker_t w;
    uv_loop_t loop;
    uv_timer_t tick;
    kcw_http_t *http;
    kcw_config_t *cfg;
    kcw_connect_t *cn;
    int polls;
    int closed;
    kcw_remediation_conf_t conf;
    kcw_rule_t rule;
    kcw_alert_t alert;
    recorder_t rec;
} loop_fixture_t;

static void on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
{
    (void)cn;
    (void)idx;
    (void)changed;
    ((loop_fixture_t *)arg)->polls++;
}

static void on_tick(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run so deadlines are checked */
}

/* Runs the loop until *counter reaches want or 5 s pass. */
static bool run_until(loop_fixture_t *lf, const int *counter, int want)
{
    uint64_t start = uv_now(&lf->loop);
    while (*counter < want) {
        if (uv_now(&lf->loop) - start > 5000)
            return false;
        uv_run(&lf->loop, UV_RUN_ONCE);
    }
    return true;
}

static void poll_now(loop_fixture_t *lf)
{
    int want = lf->polls + 1;
    assert_int_equal(kcw_connect_poll_once(lf->cn), 0);
    assert_true(run_until(lf, &lf->polls, want));
}

static void fake_set(fake_worker_t *w, kcw_state_t conn, kcw_state_t t0, kcw_state_t t1)
{
    pthread_mutex_lock(&w->mu);
    w->conn = conn;
    w->task0 = t0;
    w->task1 = t1;
    pthread_mutex_unlock(&w->mu);
}

static int fake_posts(fake_worker_t *w, char out[16][160])
{
    pthread_mutex_lock(&w->mu);
    int n = w->n_posts;
    memcpy(out, w->posts, sizeof(w->posts));
    pthread_mutex_unlock(&w->mu);
    return n;
}

static int loop_setup(void **state)
{
    loop_fixture_t *lf = calloc(1, sizeof(*lf));
    assert_non_null(lf);
    fake_worker_t *w = &lf->w;
    pthread_mutex_init(&w->mu, NULL);
    snprintf(w->version, sizeof(w->version), "3.8.0");
    w->conn = KCW_STATE_RUNNING;
    w->task0 = KCW_STATE_RUNNING;
    w->task1 = KCW_STATE_FAILED;
    w->kip745_code = 202;
    w->plain_code = 204;
    w->task_code = 204;
    w->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 fake_handler, w, MHD_OPTION_END);
    assert_non_null(w->daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    w->port = info->port;

    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "connect:\n  - name: prod\n    urls: [\"http://127.0.0.1:%u\"]\n"
             "    poll_interval: 1h\n",
             (unsigned)w->port);
    kcw_errors_t errs = {0};
    int rc = kcw_config_load_string(yaml, "test.yaml", &lf->cfg, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    kcw_errors_clear(&errs);
    assert_int_equal(rc, 0);

    assert_int_equal(uv_loop_init(&lf->loop), 0);
    assert_int_equal(uv_timer_init(&lf->loop, &lf->tick), 0);
    assert_int_equal(uv_timer_start(&lf->tick, on_tick, 10, 10), 0);
    lf->http = kcw_http_new(&lf->loop);
    assert_non_null(lf->http);
    lf->cn = kcw_connect_new(&lf->loop, lf->http, lf->cfg, on_poll, lf);
    assert_non_null(lf->cn);

    lf->conf = default_conf();
    lf->rule.alert = "KafkaConnectTaskFailed";
    lf->rule.restart.enabled = true;
    lf->rule.restart.scope = KCW_SCOPE_FAILED;
    lf->alert.state = KCW_ALERT_FIRING;
    assert_int_equal(kcw_labels_set(&lf->alert.labels, "cluster", "prod"), 0);
    assert_int_equal(kcw_labels_set(&lf->alert.labels, "connector", "orders-sink"), 0);
    assert_int_equal(kcw_labels_set(&lf->alert.labels, "task", "1"), 0);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, NULL);
    *state = lf;
    return 0;
}

static void on_closed(void *arg)
{
    ((loop_fixture_t *)arg)->closed++;
}

static int loop_teardown(void **state)
{
    loop_fixture_t *lf = *state;
    kcw_connect_close(lf->cn, on_closed, lf);
    assert_true(run_until(lf, &lf->closed, 1));
    kcw_http_close(lf->http, on_closed, lf);
    assert_true(run_until(lf, &lf->closed, 2));
    uv_close((uv_handle_t *)&lf->tick, NULL);
    uv_run(&lf->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&lf->loop), 0);
    kcw_config_free(lf->cfg);
    MHD_stop_daemon(lf->w.daemon);
    pthread_mutex_destroy(&lf->w.mu);
    kcw_labels_clear(&lf->alert.labels);
    kcw_log_reset();
    free(lf);
    return 0;
}

static kcw_remediator_t *loop_remediator(loop_fixture_t *lf)
{
    kcw_remediator_t *r = kcw_remediator_new(&lf->loop, lf->cn, &lf->conf, record_event, &lf->rec);
    assert_non_null(r);
    kcw_remediator_seed(r, 42);
    return r;
}

/* consider() and run the loop until want events arrived */
static void consider_until(loop_fixture_t *lf, kcw_remediator_t *r, int64_t now, int want)
{
    kcw_remediator_consider(r, &lf->rule, &lf->alert, now);
    assert_true(run_until(lf, &lf->rec.n, want));
    assert_int_equal(kcw_remediator_in_flight(r), 0);
}

static void test_loop_kip745_then_recovered(void **state)
{
    loop_fixture_t *lf = *state;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_SENT);
    assert_int_equal(lf->rec.http[0], 202);
    assert_int_equal(lf->rec.attempt[0], 1);
    char want[128];
    snprintf(want, sizeof(want),
             "POST http://127.0.0.1:%u/connectors/orders-sink/restart?includeTasks=true&"
             "onlyFailed=true",
             (unsigned)lf->w.port);
    assert_string_equal(lf->rec.request[0], want);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 1);
    assert_string_equal(posts[0],
                        "POST /connectors/orders-sink/restart?includeTasks=true&onlyFailed=true");
    assert_string_equal(kcw_remediator_note(r, &lf->alert.labels),
                        "restart sent (attempt 1 of 5 in 1h)");
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + SEC), KCW_HEAL_HEALING);

    /* the old FAILED record right after the 202 is no verdict (§5.4) */
    poll_now(lf);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 5 * SEC);
    assert_int_equal(lf->rec.n, 1);
    /* and the same alert still firing sends nothing more */
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 40 * SEC);
    assert_int_equal(kcw_remediator_in_flight(r), 0);

    fake_set(&lf->w, KCW_STATE_RUNNING, KCW_STATE_RUNNING, KCW_STATE_RUNNING);
    poll_now(lf);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 50 * SEC);
    assert_int_equal(lf->rec.n, 2);
    assert_int_equal(lf->rec.kind[1], KCW_REMEDIATION_RECOVERED);
    /* RUNNING, but for less than the verify period: still healing */
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + 51 * SEC),
                     KCW_HEAL_HEALING);
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + 50 * SEC + 3 * MINUTE),
                     KCW_HEAL_HEALED);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 50 * SEC + 10 * MINUTE);
    assert_int_equal(lf->rec.n, 3);
    assert_int_equal(lf->rec.kind[2], KCW_REMEDIATION_STABLE);
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + 50 * SEC + 10 * MINUTE),
                     KCW_HEAL_HEALED);
    assert_int_equal(fake_posts(&lf->w, posts), 1);
    kcw_remediator_free(r);
}

static void test_loop_old_worker_per_task(void **state)
{
    loop_fixture_t *lf = *state;
    snprintf(lf->w.version, sizeof(lf->w.version), "2.8.1");
    fake_set(&lf->w, KCW_STATE_RUNNING, KCW_STATE_FAILED, KCW_STATE_FAILED);
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 2);
    char posts[16][160];
    /* never the KIP-745 form, and no bounce of the RUNNING connector (§5.5) */
    assert_int_equal(fake_posts(&lf->w, posts), 2);
    bool t0 = false, t1 = false;
    for (int i = 0; i < 2; i++) {
        t0 |= strcmp(posts[i], "POST /connectors/orders-sink/tasks/0/restart") == 0;
        t1 |= strcmp(posts[i], "POST /connectors/orders-sink/tasks/1/restart") == 0;
    }
    assert_true(t0 && t1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(lf->rec.kind[i], KCW_REMEDIATION_SENT);
        assert_int_equal(lf->rec.attempt[i], 1); /* one counted attempt for the target */
    }
    kcw_remediator_free(r);
}

static void test_loop_unexpected_204_falls_back(void **state)
{
    loop_fixture_t *lf = *state;
    lf->w.kip745_code = 204; /* says 3.x but ignores the parameters */
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 2);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 2);
    assert_string_equal(posts[0],
                        "POST /connectors/orders-sink/restart?includeTasks=true&onlyFailed=true");
    assert_string_equal(posts[1], "POST /connectors/orders-sink/tasks/1/restart");
    assert_int_equal(lf->rec.kind[1], KCW_REMEDIATION_SENT);
    assert_int_equal(lf->rec.task[1], 1);
    kcw_remediator_free(r);
}

static void test_loop_paused_is_left_alone(void **state)
{
    loop_fixture_t *lf = *state;
    poll_now(lf);
    /* paused between the poll and the re-read */
    fake_set(&lf->w, KCW_STATE_PAUSED, KCW_STATE_PAUSED, KCW_STATE_FAILED);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_SKIPPED);
    assert_string_equal(lf->rec.detail[0], "not restarted: connector is PAUSED");
    /* now the poll knows too: no re-read, no second report */
    poll_now(lf);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 10 * SEC);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    assert_int_equal(lf->rec.n, 1);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 0);
    kcw_remediator_free(r);
}

static void test_loop_dry_run_sends_nothing(void **state)
{
    loop_fixture_t *lf = *state;
    lf->conf.dry_run = true;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_DRY_RUN);
    assert_non_null(strstr(lf->rec.request[0],
                           "/connectors/orders-sink/restart?includeTasks=true&onlyFailed=true"));
    assert_int_equal(lf->rec.attempt[0], 0);
    /* back-off holds the next dry run */
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 10 * SEC);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 0);
    kcw_remediator_free(r);
}

static void test_loop_409_retried_not_counted(void **state)
{
    loop_fixture_t *lf = *state;
    lf->w.kip745_code = 409;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_RETRY);
    assert_int_equal(lf->rec.http[0], 409);
    assert_int_equal(lf->rec.attempt[0], 0);
    pthread_mutex_lock(&lf->w.mu);
    lf->w.kip745_code = 202;
    pthread_mutex_unlock(&lf->w.mu);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 1 * SEC);
    assert_int_equal(kcw_remediator_in_flight(r), 0); /* short retry delay */
    /* callbacks advance the caller's clock by loop time: allow for it */
    consider_until(lf, r, T0 + 6 * SEC, 2);
    assert_int_equal(lf->rec.kind[1], KCW_REMEDIATION_SENT);
    assert_int_equal(lf->rec.attempt[1], 1);
    kcw_remediator_free(r);
}

/* A worker (or a proxy before it) answering 503: the detail names the
 * status once ("HTTP 503: HTTP 503: fake" repeated itself). */
static void test_loop_error_status_said_once(void **state)
{
    loop_fixture_t *lf = *state;
    lf->w.kip745_code = 503;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_FAILED);
    assert_int_equal(lf->rec.http[0], 503);
    assert_non_null(strstr(lf->rec.detail[0], "restart failed: HTTP 503: fake"));
    assert_null(strstr(lf->rec.detail[0], "HTTP 503: HTTP 503"));
    kcw_remediator_free(r);
}

/* 429 (rate limited): deferred and retried like a 409, never counted. */
static void test_loop_429_retried_not_counted(void **state)
{
    loop_fixture_t *lf = *state;
    lf->w.kip745_code = 429;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_RETRY);
    assert_int_equal(lf->rec.http[0], 429);
    assert_int_equal(lf->rec.attempt[0], 0);
    assert_non_null(strstr(lf->rec.detail[0], "HTTP 429 (rate limited)"));
    kcw_remediator_free(r);
}

static void test_loop_free_with_request_in_flight(void **state)
{
    loop_fixture_t *lf = *state;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0);
    assert_int_equal(kcw_remediator_in_flight(r), 1);
    kcw_remediator_free(r);
    /* the late reply lands on a cancelled action: no event, no crash, no leak */
    uint64_t start = uv_now(&lf->loop);
    while (kcw_http_pending(lf->http) > 0 && uv_now(&lf->loop) - start < 5000)
        uv_run(&lf->loop, UV_RUN_ONCE);
    assert_int_equal(kcw_http_pending(lf->http), 0);
    assert_int_equal(lf->rec.n, 0);
}

static void test_loop_reload_swaps_client(void **state)
{
    loop_fixture_t *lf = *state;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0);
    assert_int_equal(kcw_remediator_in_flight(r), 1);

    /* a reload: a new client where prod is the second cluster */
    char yaml[320];
    snprintf(yaml, sizeof(yaml),
             "connect:\n  - name: other\n    urls: [\"http://127.0.0.1:1\"]\n"
             "    poll_interval: 1h\n  - name: prod\n    urls: [\"http://127.0.0.1:%u\"]\n"
             "    poll_interval: 1h\n",
             (unsigned)lf->w.port);
    kcw_config_t *cfg2 = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_config_load_string(yaml, "reload.yaml", &cfg2, &errs), 0);
    kcw_connect_t *cn2 = kcw_connect_new(&lf->loop, lf->http, cfg2, on_poll, lf);
    assert_non_null(cn2);
    kcw_remediator_set_connect(r, cn2);

    /* the re-read started on the old client stops before acting */
    assert_true(run_until(lf, &lf->rec.n, 1));
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_RETRY);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 0);
    int want = lf->polls + 2;
    assert_int_equal(kcw_connect_poll_once(cn2), 0);
    assert_true(run_until(lf, &lf->polls, want));

    /* the next evaluation restarts through the new client, same target */
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 6 * SEC);
    assert_true(run_until(lf, &lf->rec.n, 2));
    assert_int_equal(lf->rec.kind[1], KCW_REMEDIATION_SENT);
    assert_int_equal(lf->rec.attempt[1], 1);
    assert_int_equal(fake_posts(&lf->w, posts), 1);
    kcw_remediator_observe(r, 1, kcw_connect_cluster(cn2, 1), T0 + 7 * SEC);
    assert_int_equal(lf->rec.n, 2); /* stale FAILED: no verdict */
    kcw_remediator_free(r);

    int closed = lf->closed + 1;
    kcw_connect_close(cn2, on_closed, lf);
    assert_true(run_until(lf, &lf->closed, closed));
    lf->closed = 0;
    kcw_config_free(cfg2);
}

/* --- state that survives a restart of kcwatch ----------------------------- */

typedef struct audit_rows {
    int sent, exhausted, n;
    char request[4][256];
    char rule[64];
} audit_rows_t;

static int on_audit_row(const kcw_audit_t *a, void *arg)
{
    audit_rows_t *rows = arg;
    assert_int_equal(a->kind, KCW_AUDIT_RESTART);
    assert_string_equal(a->cluster, "prod");
    assert_string_equal(a->connector, "orders-sink");
    rows->n++;
    if (strcmp(a->reason, "sent") == 0 && rows->sent < 4) {
        snprintf(rows->request[rows->sent++], 256, "%s", a->request ? a->request : "");
        snprintf(rows->rule, sizeof(rows->rule), "%s", a->rule ? a->rule : "");
        assert_int_equal(a->http_status, 202);
        assert_non_null(strstr(a->trace, "org.acme.SinkException"));
    }
    if (strcmp(a->reason, "budget_exhausted") == 0)
        rows->exhausted++;
    return 0;
}

/* Budget 2, both restarts spent, kcwatch gone and back: no third restart. */
static void test_loop_spent_budget_survives_restart(void **state)
{
    loop_fixture_t *lf = *state;
    kcw_store_t *st = kcw_store_open_memory();
    assert_non_null(st);
    lf->conf.budget_max_restarts = 2;
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    kcw_remediator_set_store(r, st, T0);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_SENT);
    /* Still FAILED past verify_timeout: that attempt failed. */
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 3 * MINUTE);
    assert_int_equal(lf->rec.kind[1], KCW_REMEDIATION_FAILED);
    /* the restart did not bring it back: time to tell a human */
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + 3 * MINUTE),
                     KCW_HEAL_FAILED);
    consider_until(lf, r, T0 + 4 * MINUTE, 3);
    assert_int_equal(lf->rec.kind[2], KCW_REMEDIATION_SENT);
    assert_int_equal(lf->rec.attempt[2], 2);
    kcw_remediator_free(r); /* no goodbye: state is saved as it changes */

    lf->rec.n = 0;
    r = loop_remediator(lf);
    kcw_remediator_set_store(r, st, T0 + 10 * MINUTE);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 10 * MINUTE);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 20 * MINUTE);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 2);
    assert_int_equal(lf->rec.kind[lf->rec.n - 1], KCW_REMEDIATION_BUDGET_EXHAUSTED);
    assert_int_equal(kcw_remediator_state(r, &lf->alert.labels, T0 + 20 * MINUTE),
                     KCW_HEAL_FAILED);
    kcw_instance_t *inst = NULL;
    size_t n_inst = 0;
    assert_int_equal(kcw_remediator_exhausted(r, &inst, &n_inst), 0);
    assert_int_equal(n_inst, 1);
    kcw_instance_clear(&inst[0]);
    free(inst);
    kcw_remediator_free(r);

    /* The audit log holds both exact requests, the rule and the refusal. */
    audit_rows_t rows = {0};
    assert_true(kcw_store_audit_query(st, 0, on_audit_row, &rows) >= 4);
    assert_int_equal(rows.sent, 2);
    assert_int_equal(rows.exhausted, 1);
    char want[160];
    snprintf(want, sizeof(want),
             "POST http://127.0.0.1:%u/connectors/orders-sink/restart?includeTasks=true&"
             "onlyFailed=true",
             (unsigned)lf->w.port);
    assert_string_equal(rows.request[0], want);
    assert_string_equal(rows.rule, "KafkaConnectTaskFailed");
    kcw_store_close(st);
}

/* Gone between the restart request and its verification: the next run
 * still knows a restart awaits its verdict, reads the old FAILED record as
 * stale (connect-rest.md §5.4), sends nothing more, and reports RECOVERED. */
static void test_loop_verification_survives_restart(void **state)
{
    loop_fixture_t *lf = *state;
    kcw_store_t *st = kcw_store_open_memory();
    assert_non_null(st);
    poll_now(lf);
    kcw_remediator_t *r = loop_remediator(lf);
    kcw_remediator_set_store(r, st, T0);
    consider_until(lf, r, T0, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_SENT);
    kcw_remediator_free(r);

    lf->rec.n = 0;
    r = loop_remediator(lf);
    kcw_remediator_set_store(r, st, T0 + 5 * SEC);
    poll_now(lf);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 5 * SEC);
    kcw_remediator_consider(r, &lf->rule, &lf->alert, T0 + 40 * SEC);
    assert_int_equal(kcw_remediator_in_flight(r), 0);
    assert_int_equal(lf->rec.n, 0);
    fake_set(&lf->w, KCW_STATE_RUNNING, KCW_STATE_RUNNING, KCW_STATE_RUNNING);
    poll_now(lf);
    kcw_remediator_observe(r, 0, kcw_connect_cluster(lf->cn, 0), T0 + 50 * SEC);
    assert_int_equal(lf->rec.n, 1);
    assert_int_equal(lf->rec.kind[0], KCW_REMEDIATION_RECOVERED);
    char posts[16][160];
    assert_int_equal(fake_posts(&lf->w, posts), 1);
    kcw_remediator_free(r);
    kcw_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_sequence_no_jitter),
        cmocka_unit_test(test_delay_jitter_bounds),
        cmocka_unit_test(test_delay_edge_cases),
        cmocka_unit_test(test_budget_sliding_window),
        cmocka_unit_test(test_budget_history_cap),
        cmocka_unit_test(test_budget_unlimited),
        cmocka_unit_test(test_record_schedules_backoff),
        cmocka_unit_test(test_check_budget_exhausts),
        cmocka_unit_test(test_exhausted_needs_window_room),
        cmocka_unit_test(test_defer_and_retry_not_counted),
        cmocka_unit_test(test_observe_stale_failed_is_not_failure),
        cmocka_unit_test(test_observe_failed_after_transition),
        cmocka_unit_test(test_observe_failed_after_running),
        cmocka_unit_test(test_observe_verify_timeout),
        cmocka_unit_test(test_observe_recovered_once),
        cmocka_unit_test(test_observe_stable_after_whole_period),
        cmocka_unit_test(test_observe_failed_restarts_stable_clock),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test_setup_teardown(test_remediator_ignores_non_candidates, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_adopts_restarts, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_disabled_reports_once, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_excluded, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_unrecoverable, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_rule_unless_trace, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_set_conf_keeps_tracks, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remediator_observe_untracked, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_loop_kip745_then_recovered, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_spent_budget_survives_restart, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_verification_survives_restart, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_old_worker_per_task, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_unexpected_204_falls_back, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_paused_is_left_alone, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_dry_run_sends_nothing, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_409_retried_not_counted, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_429_retried_not_counted, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_error_status_said_once, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_free_with_request_in_flight, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_loop_reload_swaps_client, loop_setup, loop_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
