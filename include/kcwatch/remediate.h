/* remediate.h: safe self-healing restarts of failed connectors and tasks.
 *
 * Two layers. The policy (kcw_restart_track_t and the kcw_restart_policy_*
 * functions) is pure arithmetic on a clock the caller owns: exponential
 * back-off with jitter, a budget of max_restarts per window, the stable period
 * after which the counter resets, and verification of each attempt. The
 * remediator (kcw_remediator_t) drives it on the loop: for each firing alert
 * whose rule has `restart:` it re-reads the status, refuses PAUSED/STOPPED/
 * excluded connectors and unrecoverable traces, picks the restart form from the
 * worker version (KIP-745 on >= 3.0, per-task/plain connector before), limits
 * restarts in flight per cluster, handles 202/204/409/404/500, and reports each
 * decision through the event callback (log, audit, metrics, notifications). */
#ifndef KCWATCH_REMEDIATE_H
#define KCWATCH_REMEDIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/alerts.h"
#include "kcwatch/config.h"
#include "kcwatch/connect.h"
#include "kcwatch/rules.h"

typedef enum {
    KCW_REMEDIATION_SENT = 0,        /* restart request accepted (202/204) */
    KCW_REMEDIATION_DRY_RUN,         /* would have sent `request` */
    KCW_REMEDIATION_SKIPPED,         /* not acted on; reason in detail */
    KCW_REMEDIATION_UNRECOVERABLE,   /* trace matched an unless_trace pattern */
    KCW_REMEDIATION_RETRY,           /* 409 / transport error: retried later, not counted */
    KCW_REMEDIATION_RECOVERED,       /* verified RUNNING after a restart */
    KCW_REMEDIATION_FAILED,          /* FAILED again / no recovery in time / 500 */
    KCW_REMEDIATION_BUDGET_EXHAUSTED,/* budget used up: restarts stop */
    KCW_REMEDIATION_STABLE,          /* stayed RUNNING for the stable period: counter reset */
} kcw_remediation_event_kind_t;

const char *kcw_remediation_event_name(kcw_remediation_event_kind_t k);

typedef struct kcw_remediation_event {
    kcw_remediation_event_kind_t kind;
    const char *cluster;
    const char *connector;
    int task;              /* -1: connector-level */
    const char *request;   /* "POST http://...", NULL if none */
    long http_status;      /* 0 if none */
    const char *detail;    /* human-readable reason / outcome */
    const char *trace;     /* trace that caused it, may be NULL */
    int attempt;           /* restarts counted in the current window */
} kcw_remediation_event_t;

typedef void (*kcw_remediation_event_cb)(const kcw_remediation_event_t *ev, void *arg);

/* --- pure policy ------------------------------------------------------- */

#define KCW_RESTART_MAX_HISTORY 64

typedef struct kcw_restart_track {
    int64_t attempts_ms[KCW_RESTART_MAX_HISTORY]; /* counted restarts (ring, oldest first) */
    int n_attempts;
    int consecutive;        /* restarts since the last stable period: back-off exponent */
    int64_t next_allowed_ms;
    int64_t last_restart_ms;
    int64_t running_since_ms; /* 0 unless RUNNING was observed after the last restart */
    bool verifying;           /* a restart awaits its verdict */
    bool saw_transition;      /* left FAILED (RESTARTING/UNASSIGNED/RUNNING) since it */
    bool exhausted;
    bool recovered;           /* RECOVERED was reported; not stable yet */
} kcw_restart_track_t;

/* Clock values handed to the policy are wall-clock ms and must be > 0 (0 in
 * running_since_ms means "not RUNNING"). budget_max_restarts <= 0 means no
 * budget; above KCW_RESTART_MAX_HISTORY the history caps it. */

/* Delay before restart number consecutive+1 with rand01 in [0,1):
 * min(initial * multiplier^consecutive, max) * (1 + jitter * rand01). */
int64_t kcw_restart_policy_delay(const kcw_remediation_conf_t *conf, int consecutive,
                                 double rand01);
/* Attempts counted inside (now - window, now]. Drops older ones. */
int kcw_restart_policy_budget_used(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                                   int64_t now_ms);
/* 0 if a restart may be sent now; else -EAGAIN (back-off), -EDQUOT (budget). */
int kcw_restart_policy_check(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                             int64_t now_ms);
/* Records a counted restart at now (sets verifying, schedules back-off). */
void kcw_restart_policy_record(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                               int64_t now_ms, double rand01);
/* Feeds an observed state; returns the event it settles, or -1 for none:
 * RECOVERED (first RUNNING after a restart), FAILED (FAILED after a
 * transition, or still FAILED past verify_timeout), STABLE (RUNNING for
 * stable_period: consecutive and attempts reset). */
int kcw_restart_policy_observe(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                               kcw_state_t state, int64_t now_ms);
/* A decision that sent nothing but should not repeat at once (dry run):
 * schedules the back-off and raises consecutive, counts nothing. */
void kcw_restart_policy_defer(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                              int64_t now_ms, double rand01);
/* 409 / 429 / transport error: try again after min(backoff initial, 5s), or
 * after the answer's Retry-After when that is later (retry_after_ms < 0: none);
 * not counted. */
void kcw_restart_policy_retry(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                              int64_t now_ms, int64_t retry_after_ms);

/* --- the remediator on the loop ----------------------------------------- */

typedef struct kcw_remediator kcw_remediator_t;
typedef struct kcw_store kcw_store_t; /* store.h */

/* kcwatch's restart of the alert's target (task target, else connector
 * target) is in flight, awaiting its verdict, or judged recovered less than
 * verify_timeout ago and not yet stable: the alert must not resolve yet
 * (engine healing hook). */
bool kcw_remediator_healing(kcw_remediator_t *r, const kcw_labels_t *alert_labels, int64_t now_ms);

/* cn may be NULL (until kcw_remediator_set_connect, or in tests): then the
 * cluster is the alert's cluster label and only the decisions that need no
 * Connect call are made. conf must outlive r (or be replaced with
 * kcw_remediator_set_conf first). Targets are keyed by cluster name, so they
 * survive a reload that reorders clusters. */
kcw_remediator_t *kcw_remediator_new(uv_loop_t *loop, kcw_connect_t *cn,
                                     const kcw_remediation_conf_t *conf,
                                     kcw_remediation_event_cb cb, void *arg);
/* Points the remediator at another Connect client (reload builds a new one;
 * cn may be NULL before the first is up). Requests in flight on the old client
 * end with an error and are retried on the new one. */
void kcw_remediator_set_connect(kcw_remediator_t *r, kcw_connect_t *cn);
/* A gate asked before every restart request goes out (not in dry run), e.g.
 * an ownership check with etcd (ha.h). It returns 0 and later calls
 * done(token, ok, why) exactly once on the loop, or returns a negative errno
 * (-EPERM: not allowed now) and never calls done. Refused restarts are
 * deferred like a transport error: retried later, not counted. request is
 * the first request's "POST url" line. Without a gate restarts go out at
 * once. */
typedef void (*kcw_remediation_permit_done)(void *token, bool ok, const char *why);
typedef int (*kcw_remediation_permit_cb)(void *arg, const char *cluster, const char *connector,
                                         int task, const char *request,
                                         const kcw_restart_track_t *track,
                                         kcw_remediation_permit_done done, void *token);
void kcw_remediator_set_permit(kcw_remediator_t *r, kcw_remediation_permit_cb cb, void *arg);
/* Swaps the configuration (reload); tracks are kept. */
void kcw_remediator_set_conf(kcw_remediator_t *r, const kcw_remediation_conf_t *conf);
/* A firing alert of a rule with restart enabled. Labels must carry connector
 * (and task for task scope; cluster when several clusters exist, else the
 * only cluster). Cheap and idempotent: call it every evaluation. */
void kcw_remediator_consider(kcw_remediator_t *r, const kcw_rule_t *rule,
                             const kcw_alert_t *alert, int64_t now_ms);
/* After every poll: verification and stable-period tracking. */
void kcw_remediator_observe(kcw_remediator_t *r, size_t cluster_idx,
                            const kcw_cluster_status_t *status, int64_t now_ms);
/* Instances for the synthetic KcwatchRestartBudgetExhausted alert (one per
 * exhausted target: labels alertname, cluster, connector, task if any,
 * severity=critical; annotations summary, description), then one
 * KcwatchFailureStorm per cluster in a failure storm (storm.h). Caller frees.
 *
 * Failure storms: each poll feeds the remediator's storm tracker; a restart
 * that passed every other check is then held (state "held", a note saying
 * why) unless the storm lets it go as the canary or within
 * remediation.rate. */
int kcw_remediator_exhausted(kcw_remediator_t *r, kcw_instance_t **out, size_t *n_out);
/* Where kcwatch's healing of an alert's target stands, the alert's
 * `remediation` label (KCW_HEAL_NONE: no label, kcwatch has not acted):
 *   healing   a restart is in flight, being verified, or RUNNING for less
 *             than verify_timeout after it; or a 409/429/transport error is
 *             being retried;
 *   healed    the last restart was verified (RUNNING, then stable);
 *   failed    the last restart did not bring it back (FAILED again, or no
 *             RUNNING within verify_timeout), or the budget is used up;
 *   unfixable the trace matches an unrecoverable pattern: never restarted;
 *   held      a restart is due but waits (max_concurrent reached).
 * Task target first, else the connector target. */
typedef enum {
    KCW_HEAL_NONE = 0,
    KCW_HEAL_HEALING,
    KCW_HEAL_HEALED,
    KCW_HEAL_FAILED,
    KCW_HEAL_UNFIXABLE,
    KCW_HEAL_HELD,
} kcw_heal_state_t;

/* The label value; NULL for KCW_HEAL_NONE. */
const char *kcw_heal_state_name(kcw_heal_state_t s);
kcw_heal_state_t kcw_remediator_state(kcw_remediator_t *r, const kcw_labels_t *alert_labels,
                                      int64_t now_ms);
/* Last decision for the target of these labels ("restarted (attempt 2/5)",
 * "not restarted: ..."), or NULL. Valid until the next call into r. */
const char *kcw_remediator_note(kcw_remediator_t *r, const kcw_labels_t *alert_labels);
/* remediation.inhibit: every firing alert of a round, before its restarts
 * are considered. While a rule's source fires, a target alert (target
 * matchers, equal labels) is not restarted ("held"); once the source
 * resolved, held targets restart at remediation.rate per cluster, not all at
 * once (storm.h's pace). Pointers live for the call only. */
void kcw_remediator_sources(kcw_remediator_t *r, const kcw_alert_t *const *alerts, size_t n);
size_t kcw_remediator_in_flight(const kcw_remediator_t *r);
/* What the remediator holds about one target, for the status page. Strings
 * are the remediator's: valid until the next call into r. */
typedef struct kcw_remediation_view {
    const char *cluster, *connector;
    int task;                                /* -1: connector-level target */
    const char *note;                        /* last decision, "" none */
    bool has_event;                          /* false: nothing decided since kcwatch started */
    kcw_remediation_event_kind_t last_event; /* the decision the note tells */
    bool healing;                            /* as kcw_remediator_healing */
    bool exhausted;                          /* budget spent: restarts stopped */
    int budget_used, budget_max;             /* restarts counted in the window; max 0: none */
    int64_t budget_window_ms;
    int64_t budget_room_ms; /* when the oldest counted restart leaves the window; 0 none */
} kcw_remediation_view_t;
/* The target the alert labels name (task target first, as for the note).
 * false when there is none. */
bool kcw_remediator_view(const kcw_remediator_t *r, const kcw_labels_t *alert_labels,
                         int64_t now_ms, kcw_remediation_view_t *out);
/* cb for every target, in no order, until it returns non-zero. Returns how
 * many were visited. */
size_t kcw_remediator_each(const kcw_remediator_t *r, int64_t now_ms,
                           int (*cb)(const kcw_remediation_view_t *v, void *arg), void *arg);
/* Makes the restart state durable (store.h): every target's back-off,
 * budget window, verification and stable-period state is saved when it
 * changes and loaded now, so a spent budget stays spent across a kill -9;
 * every decision (sent, skipped with its reason, failed, budget exhausted...)
 * is recorded in the audit log with the rule, trace excerpt, exact request
 * and response. store must outlive r. */
void kcw_remediator_set_store(kcw_remediator_t *r, kcw_store_t *store, int64_t now_ms);
/* Restarts another instance made of a target before this one took its
 * cluster over (ha_restarts.h): the counted restart times (those inside the
 * budget window are merged into the target's history) and the back-off
 * exponent after the last of them. The next restart waits at least the
 * un-jittered back-off after that last one. Saved like any track. 0 or
 * -EINVAL / -ENOMEM. */
int kcw_remediator_adopt_restarts(kcw_remediator_t *r, const char *cluster, const char *connector,
                                  int task, const int64_t *attempts_ms, size_t n,
                                  int consecutive, int64_t now_ms);
/* Reseeds the jitter PRNG (tests; the default seed comes from time and pid). */
void kcw_remediator_seed(kcw_remediator_t *r, uint64_t seed);
void kcw_remediator_free(kcw_remediator_t *r);

#endif
