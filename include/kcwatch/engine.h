/* engine.h: rule-group state and evaluation, shared by the daemon and
 * `kcwatch test`.
 *
 * The engine owns, for one loaded rule set, every rule's alert set, health
 * and last error, each group's schedule and in-flight PromQL round, and
 * kcwatch's own KcwatchRestartBudgetExhausted alert. It does no I/O and knows
 * no loop: the caller owns the clock and hands in every input, and the engine
 * answers through hooks. Two callers drive it the same way:
 *
 *   - the daemon (watchdog.c) calls kcw_engine_connect_changed() after a poll
 *     whose status changed, and kcw_engine_group_begin()/_result()/_finish()
 *     when a group's timer fires, running the queries it names against
 *     Prometheus in between;
 *   - `kcwatch test` (ruletest.c) calls the very same functions on a simulated
 *     clock, with canned Connect snapshots and canned query results.
 *
 * One evaluation round, as Prometheus' rule group does it:
 *   1. connect: rules are evaluated against the clusters given, at once;
 *   2. PromQL rules: the engine names one query per rule at the round's
 *      evaluation time (minus the group's query_offset); results come back in
 *      any order and are applied together, at the round's time, in rule order;
 *      a failed query leaves that rule's alerts as they were; more alerts than
 *      the group's `limit` drops them all; a group never overlaps itself (a
 *      tick while its round is out is skipped and counted as missed);
 *   3. after every round: firing alerts of rules with `restart:` go to the
 *      restart hook, the budget hook's instances update the budget alert, and
 *      every non-pending alert, with its remediation note as the
 *      `remediation` annotation, goes to the notify hook.
 *
 * Schedule: group i of n runs every interval (its own, else the default) at
 * start + offset_i + k * interval, offset_i = interval * i / n when spread is
 * on (groups do not all query at once), 0 otherwise. A round started by a
 * tick evaluates at its slot time (never before the engine's last evaluation
 * time), as Prometheus evaluates at the slot, so two runs that see the same
 * inputs at the same slots make the same transitions.
 *
 * Reload: a new engine built with `prev` takes over the alert sets of rules
 * that keep their group, name, for, keep_firing_for and kind, and the budget
 * alert. */
#ifndef KCWATCH_ENGINE_H
#define KCWATCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/api.h"
#include "kcwatch/connect.h"
#include "kcwatch/prom.h"
#include "kcwatch/rules.h"

#define KCW_ENGINE_BUDGET_ALERT "KcwatchRestartBudgetExhausted"
#define KCW_ENGINE_NOTE_ANNOTATION "remediation"
#define KCW_ENGINE_STATE_LABEL "remediation"

/* What the engine hands out. Every hook may be NULL. */
typedef struct kcw_engine_hooks {
    void *arg;
    /* Every firing alert (the built-in ones of the last round included),
     * once per round before the restart hook sees any: what
     * remediation.inhibit's sources are. Pointers live for the call only. */
    void (*sources)(void *arg, const kcw_alert_t *const *alerts, size_t n, int64_t now_ms);
    /* A firing alert of a rule with restart: enabled (every round). */
    void (*restart)(void *arg, const kcw_rule_t *rule, const kcw_alert_t *alert, int64_t now_ms);
    /* Instances of the budget alert, caller-allocated (kcw_instance_t array
     * the engine frees). 0 or a negative errno (the alert is left alone). */
    int (*budget)(void *arg, kcw_instance_t **out, size_t *n_out);
    /* The remediation note of the alert's target, or NULL. */
    const char *(*note)(void *arg, const kcw_labels_t *alert_labels);
    /* Where kcwatch's healing of the alert's target stands at now
     * ("healing", "healed", "failed", "unfixable", "held"; remediate.h), or
     * NULL: notified alerts carry it as the KCW_ENGINE_STATE_LABEL label.
     * The alert keeps its fingerprint: the label says how it is going, it
     * does not make another alert. */
    const char *(*heal_state)(void *arg, const kcw_labels_t *alert_labels, int64_t now_ms);
    /* kcwatch's own restart of the alert's target is under way or being
     * verified at now: a firing alert of a connect: rule with restart:
     * whose instance went away (RESTARTING, or RUNNING for less than the
     * verify period) stays firing, with its activeAt, instead of resolving.
     * A restart must not fake a recovery. */
    bool (*healing)(void *arg, const kcw_labels_t *alert_labels, int64_t now_ms);
    /* Every firing and resolved alert after a round; pointers live for the
     * call only. */
    void (*notify)(void *arg, const kcw_alert_t *const *alerts, size_t n, int64_t now_ms);
    /* The group of this firing alert must go out now (remediation news). */
    void (*flush)(void *arg, const kcw_labels_t *alert_labels);
    /* The group of this firing alert has a new note (remediation update):
     * out now if it was notified before, else with its first notification
     * after group_wait. */
    void (*refresh)(void *arg, const kcw_labels_t *alert_labels);
    /* An alert became pending, firing or resolved ("alert pending", "alert
     * firing", "alert resolved") at now_ms. */
    void (*transition)(void *arg, const kcw_alert_t *alert, const char *what, int64_t now_ms);
    /* An alert's durable state changed at now: it became pending, firing or
     * resolved, or keep_firing_for started holding it. group and rule are
     * NULL for the budget alert. For the state store: what a restart of
     * kcwatch must not forget (see kcw_engine_restore_alert). */
    void (*state)(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                  const kcw_alert_t *alert, int64_t now_ms);
    /* A pending alert left its rule's set (its instance went away before
     * `for` passed): its saved state is void. */
    void (*gone)(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                 const kcw_labels_t *labels);
    /* A rule's health changed: error is the new last error, NULL when it
     * recovered. Called once per change, not per round; episode is true when
     * the rule was not failing before (a new error text within one failure
     * episode has it false). */
    void (*health)(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                   const char *error, bool episode, int64_t now_ms);
    /* A group was evaluated (a tick's round, or its connect: rules on a
     * changed poll): how many of its rules failed, and how long it took. */
    void (*evaluated)(void *arg, const kcw_rule_group_t *group, size_t failed_rules,
                      double seconds, int64_t now_ms);
    /* Monotonic nanoseconds, for evaluation durations only; NULL: 0 s. */
    uint64_t (*hrtime)(void);
} kcw_engine_hooks_t;

typedef struct kcw_engine_opts {
    int64_t default_interval_ms;         /* groups without interval; <= 0: 1m */
    bool spread;                         /* spread group offsets over the interval */
    int64_t interval_override_ms;        /* > 0: every group at this interval */
    const kcw_labels_t *external_labels; /* must outlive the engine; may be NULL */
    /* generatorURL bases (kcw_url_generator), must outlive the engine, may be
     * NULL: Prometheus' for PromQL rules, kcwatch's for connect: rules. */
    const char *prometheus_url;
    const char *external_url;
} kcw_engine_opts_t;

typedef struct kcw_engine kcw_engine_t;

/* Builds the state for rules (which must outlive the engine) with its
 * schedule starting at start_ms. With prev, alert sets whose rule keeps its
 * identity and the budget alert move over from prev (prev keeps everything on
 * failure). NULL on failure (out of memory). */
kcw_engine_t *kcw_engine_new(const kcw_ruleset_t *rules, const kcw_engine_opts_t *opts,
                             const kcw_engine_hooks_t *hooks, kcw_engine_t *prev,
                             int64_t start_ms);
void kcw_engine_free(kcw_engine_t *e);

/* --- schedule ---------------------------------------------------------- */

/* Moves the schedule's start (the daemon builds the engine before its
 * timers start). */
void kcw_engine_set_start(kcw_engine_t *e, int64_t start_ms);
size_t kcw_engine_group_count(const kcw_engine_t *e);
const kcw_rule_group_t *kcw_engine_group(const kcw_engine_t *e, size_t gi);
int64_t kcw_engine_group_interval_ms(const kcw_engine_t *e, size_t gi);
/* Delay from start_ms to the group's first tick: offset + interval. */
int64_t kcw_engine_group_first_tick_ms(const kcw_engine_t *e, size_t gi);
/* The slot a tick at now belongs to: the latest start + offset + k*interval
 * at or before now (k >= 0), start_ms when now is earlier. A tick that reads
 * the wall clock up to min(interval/4, 50 ms) before a slot (timers run on
 * the monotonic clock) belongs to that slot. */
int64_t kcw_engine_group_slot_ms(const kcw_engine_t *e, size_t gi, int64_t now_ms);
bool kcw_engine_group_has_connect(const kcw_engine_t *e, size_t gi);
bool kcw_engine_group_has_expr(const kcw_engine_t *e, size_t gi);
/* PromQL rules of the group: the queries of each of its rounds. */
size_t kcw_engine_group_query_count(const kcw_engine_t *e, size_t gi);
bool kcw_engine_has_expr(const kcw_engine_t *e);
/* Ticks skipped because the group's previous round was still out. */
uint64_t kcw_engine_group_missed(const kcw_engine_t *e, size_t gi);

/* --- evaluation ---------------------------------------------------------- */

/* A poll changed the Connect status: evaluates every connect: rule at now,
 * then runs the after-round hand-offs. */
void kcw_engine_connect_changed(kcw_engine_t *e, const kcw_cluster_status_t *const *clusters,
                                size_t n_clusters, int64_t now_ms);

/* A tick of group gi at now: evaluates its connect: rules at the slot time,
 * and opens the group's PromQL round: *n_queries queries (0 when the group
 * has none) to run with kcw_engine_query_expr/_time and hand back with
 * kcw_engine_group_result. The caller then calls kcw_engine_group_finish,
 * also when *n_queries is 0. -EBUSY: the previous round is still out; the
 * tick is skipped (counted in kcw_engine_group_missed), nothing to finish. */
int kcw_engine_group_begin(kcw_engine_t *e, size_t gi, const kcw_cluster_status_t *const *clusters,
                           size_t n_clusters, int64_t now_ms, size_t *n_queries);
const char *kcw_engine_query_expr(const kcw_engine_t *e, size_t gi, size_t qi);
/* The evaluation time to query at: the round's time minus query_offset. */
int64_t kcw_engine_query_time_ms(const kcw_engine_t *e, size_t gi);
/* Query qi's answer: result (not kept; NULL on failure) or error text.
 * Answers after kcw_engine_group_cancel, or twice, are ignored. */
void kcw_engine_group_result(kcw_engine_t *e, size_t gi, size_t qi,
                             const kcw_prom_result_t *result, const char *error);
/* Applies the round's answers at its time (unanswered queries count as
 * failed), then runs the after-round hand-offs at now. */
void kcw_engine_group_finish(kcw_engine_t *e, size_t gi, int64_t now_ms);
/* Abandons an open round (reload, shutdown): nothing is applied. */
void kcw_engine_group_cancel(kcw_engine_t *e, size_t gi);

/* Remediation did or refused something for this target (cluster may be
 * NULL; task -1: connector level): its firing alerts' groups go out at the
 * next kcw_engine_notify, without waiting for group_wait. */
int kcw_engine_remediation_news(kcw_engine_t *e, const char *cluster, const char *connector,
                                int task);
/* Remediation did something routine for this target (a restart sent): its
 * firing alerts' groups go out at the next kcw_engine_notify only if they
 * were notified before (refresh hook); a group's first notification still
 * waits for group_wait, so a blip that a restart fixes pages nobody early. */
int kcw_engine_remediation_update(kcw_engine_t *e, const char *cluster, const char *connector,
                                  int task);
bool kcw_engine_news_pending(const kcw_engine_t *e);
/* Hands every alert to the notify hook now and flushes the groups that have
 * remediation news. Also part of every round. */
void kcw_engine_notify(kcw_engine_t *e, int64_t now_ms);

/* --- state --------------------------------------------------------------- */

/* Rounds completed (connect_changed or finish). */
uint64_t kcw_engine_rounds(const kcw_engine_t *e);
size_t kcw_engine_rule_count(const kcw_engine_t *e);
const kcw_rule_t *kcw_engine_rule(const kcw_engine_t *e, size_t ri);
const kcw_alert_set_t *kcw_engine_rule_alerts(const kcw_engine_t *e, size_t ri);
kcw_rule_health_t kcw_engine_rule_health(const kcw_engine_t *e, size_t ri);
const char *kcw_engine_rule_last_error(const kcw_engine_t *e, size_t ri);
const kcw_alert_set_t *kcw_engine_budget_alerts(const kcw_engine_t *e);
const kcw_rule_group_t *kcw_engine_rule_group(const kcw_engine_t *e, size_t ri);
/* Puts back an alert saved before a restart of kcwatch (state, activeAt,
 * keep_firing_for hold... as given) into the rule named group/alertname
 * (group NULL: the budget alert), so `for` clocks continue and a firing
 * alert stays firing. Any `for` is restored, not only >= 10m as Prometheus
 * does. 0, -ENOENT (no such rule any more), -EEXIST, -ENOMEM. */
int kcw_engine_restore_alert(kcw_engine_t *e, const char *group, const char *alertname,
                             const kcw_alert_t *alert);

/* Views for the admin API builders (api.h); free with
 * kcw_engine_api_views_free. NULL with *n_out 0 when out of memory. */
kcw_api_group_view_t *kcw_engine_api_views(const kcw_engine_t *e, size_t *n_out);
void kcw_engine_api_views_free(kcw_api_group_view_t *views, size_t n);

#endif
