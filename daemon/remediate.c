/* remediate.c: self-healing restarts of failed connectors and tasks.
 *
 * Two layers (see remediate.h). The policy functions at the top are pure
 * arithmetic on a clock the caller passes in: back-off, budget, verification
 * and the stable period. The remediator below drives them on the loop.
 *
 * Data enters through kcw_remediator_consider() (a firing alert of a rule with
 * `restart:`, once per evaluation) and kcw_remediator_observe() (each poll of
 * a cluster). A consider that passes every cheap check (enabled, not excluded,
 * not PAUSED/STOPPED in the last poll, trace not unrecoverable, back-off and
 * budget, max_concurrent) starts an action: re-read the connector status,
 * learn the worker version, send the restart request(s) and fold the replies
 * into one counted attempt. Decisions leave through the event callback and a
 * log line; kcw_remediator_exhausted() turns exhausted budgets into alert
 * instances. A target is cluster/connector (scope failed or connector) or
 * cluster/connector/task (scope task); one action per target at a time.
 *
 * Actions are ref-counted: kcw_remediator_free() only marks the ones in flight
 * cancelled, and the connect client's late callbacks free them. */
#include "kcwatch/remediate.h"

#include "kcwatch/duration.h"
#include "kcwatch/inhibit.h"
#include "kcwatch/log.h"
#include "kcwatch/storm.h"
#include "kcwatch/store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RETRY_DELAY_MAX_MS 5000
#define NOTE_MAX 512
#define TRACE_MAX (16 * 1024) /* trace kept per target for events and alerts */
#define TRACE_LINE_MAX 400    /* first line of a trace in logs and annotations */
#define REQUEST_MAX 2048
#define TARGET_IDLE_MS (15 * 60 * 1000) /* idle targets not considered this long are dropped */
#define MAX_TARGETS 65536
#define MAX_CONSECUTIVE 10000 /* the exponent saturates long before; keeps int sane */
#define DELAY_CAP_MS (365LL * 24 * 60 * 60 * 1000) /* when backoff max is unset */

/* --- pure policy ------------------------------------------------------- */

int64_t kcw_restart_policy_delay(const kcw_remediation_conf_t *conf, int consecutive, double rand01)
{
    double initial = conf->backoff_initial_ms > 0 ? (double)conf->backoff_initial_ms : 0.0;
    double cap = conf->backoff_max_ms > 0 ? (double)conf->backoff_max_ms : (double)DELAY_CAP_MS;
    double mult = conf->backoff_multiplier >= 1.0 ? conf->backoff_multiplier : 1.0;
    double jitter = conf->backoff_jitter > 0.0 ? conf->backoff_jitter : 0.0;
    if (jitter > 1.0)
        jitter = 1.0;
    if (!(rand01 >= 0.0))
        rand01 = 0.0;
    if (rand01 >= 1.0)
        rand01 = nextafter(1.0, 0.0);
    if (consecutive < 0)
        consecutive = 0;
    double d = initial * pow(mult, (double)consecutive);
    if (!isfinite(d) || d > cap)
        d = cap;
    d *= 1.0 + jitter * rand01;
    return (int64_t)d;
}

int kcw_restart_policy_budget_used(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                                   int64_t now_ms)
{
    if (conf->budget_window_ms <= 0)
        return t->n_attempts; /* no window: attempts never expire */
    int drop = 0;
    while (drop < t->n_attempts && t->attempts_ms[drop] <= now_ms - conf->budget_window_ms)
        drop++;
    if (drop > 0) {
        memmove(t->attempts_ms, t->attempts_ms + drop,
                (size_t)(t->n_attempts - drop) * sizeof(t->attempts_ms[0]));
        t->n_attempts -= drop;
    }
    return t->n_attempts;
}

static int budget_limit(const kcw_remediation_conf_t *conf)
{
    if (conf->budget_max_restarts <= 0)
        return 0;
    return conf->budget_max_restarts < KCW_RESTART_MAX_HISTORY ? conf->budget_max_restarts
                                                               : KCW_RESTART_MAX_HISTORY;
}

int kcw_restart_policy_check(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                             int64_t now_ms)
{
    if (t->exhausted)
        return -EDQUOT;
    /* The last restart has no verdict yet: sending another one now would
     * judge neither (and the 5th restart could still succeed). */
    if (t->verifying)
        return -EAGAIN;
    int limit = budget_limit(conf);
    if (limit > 0 && kcw_restart_policy_budget_used(t, conf, now_ms) >= limit) {
        t->exhausted = true;
        return -EDQUOT;
    }
    if (now_ms < t->next_allowed_ms)
        return -EAGAIN;
    return 0;
}

static void schedule_backoff(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                             int64_t now_ms, double rand01)
{
    t->next_allowed_ms = now_ms + kcw_restart_policy_delay(conf, t->consecutive, rand01);
    if (t->consecutive < MAX_CONSECUTIVE)
        t->consecutive++;
}

void kcw_restart_policy_record(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                               int64_t now_ms, double rand01)
{
    kcw_restart_policy_budget_used(t, conf, now_ms);
    if (t->n_attempts == KCW_RESTART_MAX_HISTORY) {
        memmove(t->attempts_ms, t->attempts_ms + 1,
                (KCW_RESTART_MAX_HISTORY - 1) * sizeof(t->attempts_ms[0]));
        t->n_attempts--;
    }
    t->attempts_ms[t->n_attempts++] = now_ms;
    schedule_backoff(t, conf, now_ms, rand01);
    t->last_restart_ms = now_ms;
    t->verifying = true;
    t->saw_transition = false;
    t->running_since_ms = 0;
    t->recovered = false;
}

void kcw_restart_policy_defer(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                              int64_t now_ms, double rand01)
{
    schedule_backoff(t, conf, now_ms, rand01);
}

void kcw_restart_policy_retry(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                              int64_t now_ms, int64_t retry_after_ms)
{
    int64_t d = conf->backoff_initial_ms < RETRY_DELAY_MAX_MS ? conf->backoff_initial_ms
                                                              : RETRY_DELAY_MAX_MS;
    if (retry_after_ms > d)
        d = retry_after_ms; /* the server said when; http_client caps it at a day */
    t->next_allowed_ms = now_ms + (d > 0 ? d : 0);
}

/* Something a stable period would reset. */
static bool track_has_history(const kcw_restart_track_t *t)
{
    return t->consecutive > 0 || t->n_attempts > 0 || t->exhausted;
}

int kcw_restart_policy_observe(kcw_restart_track_t *t, const kcw_remediation_conf_t *conf,
                               kcw_state_t state, int64_t now_ms)
{
    bool known = state != KCW_STATE_UNKNOWN && state != KCW_STATE_UNREACHABLE;
    /* The budget stops being exhausted once its window has room again and the
     * target is not failing (an operator fixed it); a still-FAILED target
     * stays stopped so the window sliding alone cannot restart a loop. */
    if (t->exhausted && known && state != KCW_STATE_FAILED) {
        int limit = budget_limit(conf);
        if (limit == 0 || kcw_restart_policy_budget_used(t, conf, now_ms) < limit)
            t->exhausted = false;
    }

    if (t->verifying) {
        bool overdue = now_ms - t->last_restart_ms >= conf->verify_timeout_ms;
        switch (state) {
        case KCW_STATE_RUNNING:
            t->verifying = false;
            t->saw_transition = false;
            t->running_since_ms = now_ms;
            t->recovered = true;
            return KCW_REMEDIATION_RECOVERED;
        case KCW_STATE_FAILED:
            /* connect-rest.md §5.4: a FAILED read right after the reply is
             * the old record; only one after a transition, or one that
             * outlived verify_timeout, is the restart's verdict. */
            if (t->saw_transition || overdue) {
                t->verifying = false;
                t->saw_transition = false;
                return KCW_REMEDIATION_FAILED;
            }
            return -1;
        case KCW_STATE_RESTARTING:
        case KCW_STATE_UNASSIGNED:
            t->saw_transition = true;
            if (overdue) {
                t->verifying = false;
                t->saw_transition = false;
                return KCW_REMEDIATION_FAILED;
            }
            return -1;
        case KCW_STATE_PAUSED:
        case KCW_STATE_STOPPED:
            /* The operator paused or stopped it meanwhile: no verdict. */
            t->verifying = false;
            t->saw_transition = false;
            return -1;
        default:
            return -1; /* unknown / unreachable: cannot judge yet */
        }
    }

    switch (state) {
    case KCW_STATE_RUNNING:
        if (!track_has_history(t)) {
            t->running_since_ms = 0;
            return -1;
        }
        if (t->running_since_ms == 0)
            t->running_since_ms = now_ms;
        if (now_ms - t->running_since_ms >= conf->stable_period_ms) {
            t->consecutive = 0;
            t->n_attempts = 0;
            t->exhausted = false;
            t->next_allowed_ms = 0;
            t->running_since_ms = 0;
            t->recovered = false;
            t->saw_transition = false;
            return KCW_REMEDIATION_STABLE;
        }
        return -1;
    case KCW_STATE_FAILED: {
        /* Failing again before the stable period: the restart did not hold,
         * the stable clock starts over with the next RUNNING. */
        bool held = t->recovered && t->running_since_ms != 0;
        t->running_since_ms = 0;
        t->recovered = false;
        return held ? KCW_REMEDIATION_FAILED : -1;
    }
    default:
        /* A rebalance's UNASSIGNED, or PAUSED: neither failure nor health. */
        return -1;
    }
}

/* --- the remediator ------------------------------------------------------ */

const char *kcw_remediation_event_name(kcw_remediation_event_kind_t k)
{
    switch (k) {
    case KCW_REMEDIATION_SENT:
        return "sent";
    case KCW_REMEDIATION_DRY_RUN:
        return "dry_run";
    case KCW_REMEDIATION_SKIPPED:
        return "skipped";
    case KCW_REMEDIATION_UNRECOVERABLE:
        return "unrecoverable";
    case KCW_REMEDIATION_RETRY:
        return "retry";
    case KCW_REMEDIATION_RECOVERED:
        return "recovered";
    case KCW_REMEDIATION_FAILED:
        return "failed";
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
        return "budget_exhausted";
    case KCW_REMEDIATION_STABLE:
        return "stable";
    }
    return "unknown";
}

/* An instance restarted by the last attempt, to tell its stale FAILED record
 * from a new failure (connect-rest.md §5.4). id -1 is the connector. */
typedef struct mark {
    int id;
    uint64_t trace_hash;
    bool left_failed; /* seen in another state since the restart */
    bool held;        /* FAILED with an unrecoverable trace: left out of the restart */
} mark_t;

typedef struct target {
    struct target *next; /* hash chain */
    size_t cluster;      /* index in the current Connect client */
    char *cluster_name;  /* key: indexes change when a reload rebuilds the client */
    char *connector;
    int task; /* -1: connector key (scope failed or connector) */
    kcw_restart_scope_t scope;
    kcw_restart_track_t policy;
    mark_t *marks;
    size_t n_marks;
    char *trace; /* trace behind the last decision (bounded copy) */
    char *rule;  /* alertname of the rule that asked for it (audit) */
    char note[NOTE_MAX];
    kcw_remediation_event_kind_t last_event; /* of the note; valid with has_event */
    bool has_event;
    uint64_t said; /* last repeated decision already reported (0: none) */
    bool in_flight;
    bool restart_running; /* a PromQL rule asks: its alert is the evidence */
    bool partial; /* scope failed: fixable instances restart one by one, the
                   * unrecoverable ones are left (check_unrecoverable) */
    bool exhausted_reported;
    bool held;      /* would restart now but waits (max_concurrent, a storm, an inhibit rule) */
    bool inhibited; /* held by remediation.inhibit: released at the storm rate */
    int64_t last_seen_ms; /* last consider */
    /* What the last poll says about this target, worked out once per model
     * (thousands of alerts on one connector each ask the same questions;
     * answering each from scratch was quadratic). See scope_verdict(). */
    struct {
        bool valid;
        const kcw_connector_status_t *cs;
        uint64_t generation, rules; /* model stamp; unrecoverable_key() */
        kcw_restart_scope_t scope;
        bool failed;    /* an instance in scope is FAILED */
        bool fixable;   /* a FAILED instance in scope is not unrecoverable */
        bool unrec_connector; /* the connector instance itself is unrecoverable */
        size_t unrec;   /* instance index of the first unrecoverable one, or SIZE_MAX */
        long pattern;   /* -1 rule_re, else index in r->unrecoverable */
    } verdict;
} target_t;

struct action;

typedef struct req {
    struct action *a;
    kcw_restart_kind_t kind;
    int task;
    char *line;
    long http;
    int64_t retry_after_ms; /* the answer's Retry-After, -1 if none */
    char *err;
} req_t;

typedef struct action {
    struct action *prev, *next; /* the remediator's live list */
    int refs;
    bool cancelled;
    kcw_remediator_t *r; /* NULL once cancelled */
    target_t *t;         /* NULL once cancelled */
    kcw_connect_t *cn;   /* the client it started on; a reload may swap r->cn */
    size_t cluster;      /* index in cn */
    size_t slot;         /* index in r->clusters */
    char *connector;
    kcw_restart_scope_t scope;
    int task;
    bool restart_running; /* the target may be RUNNING (PromQL rule) */
    bool partial;         /* restarts only the fixable FAILED instances, task by task */
    bool was_running;     /* it was: the events say why it was restarted */
    char *unless_src; /* the rule's unless_trace, compiled again after the re-read */
    kcw_connector_status_t fresh;
    bool have_fresh;
    char *version;
    req_t **reqs;
    size_t n_reqs, cap_reqs;
    int pending; /* replies owed + 1 while dispatching */
} action_t;

typedef struct cluster_slot {
    char *name;
    int in_flight;
    char *legacy_version; /* answered a KIP-745 restart with 204 (§5.5) */
} cluster_slot_t;

struct kcw_remediator {
    uv_loop_t *loop;
    kcw_connect_t *cn;
    const kcw_remediation_conf_t *conf;
    kcw_remediation_event_cb cb;
    void *arg;
    kcw_regex_t *exclude;
    kcw_regex_t **unrecoverable;
    size_t n_unrecoverable;
    target_t **buckets;
    size_t n_buckets;
    size_t n_targets;
    cluster_slot_t *clusters; /* by name, append-only so indexes stay valid */
    size_t n_clusters;
    action_t *actions;
    size_t in_flight;
    uint64_t rng;
    uint64_t patterns_epoch; /* bumped when unrecoverable[] is rebuilt */
    kcw_remediation_permit_cb permit; /* may be NULL */
    void *permit_arg;
    int64_t clock_ms;     /* caller's clock at the last call */
    uint64_t clock_uv_ms; /* uv_now() then, to advance it inside callbacks */
    kcw_store_t *store;   /* not owned; NULL: tracks die with the process */
    kcw_storm_t *storm;   /* failure storms: canary first, paced release */
    kcw_inhibitor_t *hold; /* remediation.inhibit, fed with every firing alert */
};

static uint64_t fnv1a(uint64_t h, const char *s)
{
    if (!s)
        return h;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV_BASIS 14695981039346656037ULL

static uint64_t trace_hash(const char *trace)
{
    return fnv1a(FNV_BASIS, trace ? trace : "");
}

static double rand01(kcw_remediator_t *r)
{
    /* xorshift64*: statistical quality is plenty for jitter. */
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * 0x1.0p-53;
}

void kcw_remediator_seed(kcw_remediator_t *r, uint64_t seed)
{
    r->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

static void clock_set(kcw_remediator_t *r, int64_t now_ms)
{
    r->clock_ms = now_ms;
    r->clock_uv_ms = r->loop ? uv_now(r->loop) : 0;
}

/* The caller's clock, advanced by the loop's time since the last call. */
static int64_t clock_now(const kcw_remediator_t *r)
{
    if (!r->loop)
        return r->clock_ms;
    return r->clock_ms + (int64_t)(uv_now(r->loop) - r->clock_uv_ms);
}

static char *dup_bounded(const char *s, size_t max)
{
    return s ? strndup(s, max) : NULL;
}

static void trace_first_line(const char *trace, char *buf, size_t n)
{
    buf[0] = '\0';
    if (!trace)
        return;
    size_t len = strcspn(trace, "\r\n");
    if (len >= n)
        len = n - 1;
    memcpy(buf, trace, len);
    buf[len] = '\0';
}

static const char *fmt_duration(int64_t ms, char *buf, size_t n)
{
    return kcw_duration_format(ms, buf, n);
}

/* "attempt 2 of 5 in 1h" or "attempt 2" when there is no budget. */
static void attempt_text(const kcw_remediation_conf_t *conf, int attempt, char *buf, size_t n)
{
    int limit = budget_limit(conf);
    if (limit > 0) {
        char w[32];
        snprintf(buf, n, "attempt %d of %d in %s", attempt, limit,
                 fmt_duration(conf->budget_window_ms, w, sizeof(w)));
    } else {
        snprintf(buf, n, "attempt %d", attempt);
    }
}

static void set_trace(target_t *t, const char *trace)
{
    if (!trace)
        return;
    if (t->trace && strncmp(t->trace, trace, TRACE_MAX) == 0)
        return;
    char *copy = dup_bounded(trace, TRACE_MAX);
    if (!copy)
        return; /* keep the older trace rather than none */
    free(t->trace);
    t->trace = copy;
}

/* --- targets ------------------------------------------------------------- */

static size_t target_bucket(const kcw_remediator_t *r, const char *cluster, const char *connector,
                            int task)
{
    uint64_t h = fnv1a(fnv1a(FNV_BASIS, cluster), connector);
    h ^= (uint64_t)(int64_t)task * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h & (r->n_buckets - 1));
}

static target_t *target_find(const kcw_remediator_t *r, const char *cluster, const char *connector,
                             int task)
{
    for (target_t *t = r->buckets[target_bucket(r, cluster, connector, task)]; t; t = t->next)
        if (t->task == task && strcmp(t->connector, connector) == 0 &&
            strcmp(t->cluster_name, cluster) == 0)
            return t;
    return NULL;
}

static void target_free(target_t *t)
{
    if (!t)
        return;
    free(t->cluster_name);
    free(t->connector);
    free(t->marks);
    free(t->trace);
    free(t->rule);
    free(t);
}

static void targets_grow(kcw_remediator_t *r)
{
    size_t nb = r->n_buckets * 2;
    target_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    target_t **old = r->buckets;
    size_t old_n = r->n_buckets;
    r->buckets = b;
    r->n_buckets = nb;
    for (size_t i = 0; i < old_n; i++) {
        target_t *t = old[i];
        while (t) {
            target_t *next = t->next;
            size_t at = target_bucket(r, t->cluster_name, t->connector, t->task);
            t->next = b[at];
            b[at] = t;
            t = next;
        }
    }
    free(old);
}

static target_t *target_get(kcw_remediator_t *r, size_t cluster, const char *cluster_name,
                            const char *connector, int task)
{
    if (!cluster_name)
        cluster_name = "";
    target_t *t = target_find(r, cluster_name, connector, task);
    if (t) {
        t->cluster = cluster;
        return t;
    }
    if (r->n_targets >= MAX_TARGETS)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cluster = cluster;
    t->task = task;
    t->cluster_name = strdup(cluster_name);
    t->connector = strdup(connector);
    if (!t->cluster_name || !t->connector) {
        target_free(t);
        return NULL;
    }
    if (r->n_targets >= r->n_buckets * 2)
        targets_grow(r);
    size_t at = target_bucket(r, cluster_name, connector, task);
    t->next = r->buckets[at];
    r->buckets[at] = t;
    r->n_targets++;
    return t;
}

/* Index of the per-cluster slot for name (added when new), or -1 (OOM). */
static long cluster_slot_index(kcw_remediator_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_clusters; i++)
        if (strcmp(r->clusters[i].name, name) == 0)
            return (long)i;
    cluster_slot_t *c = realloc(r->clusters, (r->n_clusters + 1) * sizeof(*c));
    if (!c)
        return -1;
    r->clusters = c;
    memset(&c[r->n_clusters], 0, sizeof(*c));
    if (!(c[r->n_clusters].name = strdup(name)))
        return -1;
    return (long)r->n_clusters++;
}

static cluster_slot_t *cluster_slot(kcw_remediator_t *r, const char *name)
{
    long i = cluster_slot_index(r, name);
    return i < 0 ? NULL : &r->clusters[i];
}

/* --- events -------------------------------------------------------------- */

static const char *event_msg(kcw_remediation_event_kind_t k)
{
    switch (k) {
    case KCW_REMEDIATION_SENT:
        return "restart sent";
    case KCW_REMEDIATION_DRY_RUN:
        return "dry run: restart not sent";
    case KCW_REMEDIATION_SKIPPED:
        return "restart skipped";
    case KCW_REMEDIATION_UNRECOVERABLE:
        return "restart skipped: unrecoverable failure";
    case KCW_REMEDIATION_RETRY:
        return "restart deferred";
    case KCW_REMEDIATION_RECOVERED:
        return "restart recovered";
    case KCW_REMEDIATION_FAILED:
        return "restart failed";
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
        return "restart budget exhausted";
    case KCW_REMEDIATION_STABLE:
        return "restart counter reset";
    }
    return "restart";
}

static kcw_log_level_t event_level(kcw_remediation_event_kind_t k)
{
    switch (k) {
    case KCW_REMEDIATION_FAILED:
    case KCW_REMEDIATION_UNRECOVERABLE:
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
        return KCW_LOG_WARN;
    default:
        return KCW_LOG_INFO;
    }
}

static void log_event(const kcw_remediation_event_t *ev)
{
    enum { MAXKV = 9 };
    const char *k[MAXKV] = {0}, *v[MAXKV] = {0};
    char task[16], http[16], attempt[16], line[TRACE_LINE_MAX];
    int n = 0;
#define KV(key, val)                                                                               \
    do {                                                                                           \
        k[n] = (key);                                                                              \
        v[n] = (val);                                                                              \
        n++;                                                                                       \
    } while (0)
    KV("cluster", ev->cluster ? ev->cluster : "");
    KV("connector", ev->connector ? ev->connector : "");
    if (ev->task >= 0) {
        snprintf(task, sizeof(task), "%d", ev->task);
        KV(KCW_LOG_TYPE_INT "task", task);
    }
    if (ev->request)
        KV("request", ev->request);
    if (ev->http_status) {
        snprintf(http, sizeof(http), "%ld", ev->http_status);
        KV(KCW_LOG_TYPE_INT "http_status", http);
    }
    if (ev->attempt > 0) {
        snprintf(attempt, sizeof(attempt), "%d", ev->attempt);
        KV(KCW_LOG_TYPE_INT "attempt", attempt);
    }
    KV("detail", ev->detail ? ev->detail : "");
    if (ev->trace) {
        trace_first_line(ev->trace, line, sizeof(line));
        KV("trace", line);
    }
#undef KV
    /* Unused pairs stay NULL: the first NULL key ends the list. */
    kcw_log(event_level(ev->kind), event_msg(ev->kind), k[0], v[0], k[1], v[1], k[2], v[2], k[3],
            v[3], k[4], v[4], k[5], v[5], k[6], v[6], k[7], v[7], k[8], v[8], NULL);
}

/* Saves what a restart of kcwatch must not forget about t: back-off,
 * budget, verification and stable-period state, and its restart marks. */
static void track_save(kcw_remediator_t *r, const target_t *t)
{
    if (!r->store)
        return;
    size_t n = t->n_marks;
    int *ids = calloc(n ? n : 1, sizeof(*ids));
    uint64_t *hashes = calloc(n ? n : 1, sizeof(*hashes));
    bool *left = calloc(n ? n : 1, sizeof(*left));
    bool *held = calloc(n ? n : 1, sizeof(*held));
    if (ids && hashes && left && held) {
        for (size_t i = 0; i < n; i++) {
            ids[i] = t->marks[i].id;
            hashes[i] = t->marks[i].trace_hash;
            left[i] = t->marks[i].left_failed;
            held[i] = t->marks[i].held;
        }
        kcw_store_track_t row = {.cluster = t->cluster_name,
                                 .connector = t->connector,
                                 .task = t->task,
                                 .scope = (int)t->scope,
                                 .rule = t->rule,
                                 .trace = t->trace,
                                 .policy = &t->policy,
                                 .said = t->said,
                                 .exhausted_reported = t->exhausted_reported,
                                 .mark_ids = ids,
                                 .mark_hashes = hashes,
                                 .mark_left = left,
                                 .mark_held = held,
                                 .n_marks = n};
        kcw_store_track_put(r->store, &row);
    } else {
        kcw_log(KCW_LOG_ERROR, "restart state not saved: out of memory", "connector",
                t->connector, NULL);
    }
    free(ids);
    free(hashes);
    free(left);
    free(held);
}

static void emit(kcw_remediator_t *r, target_t *t, kcw_remediation_event_kind_t kind, int task,
                 const char *request, long http, const char *detail, const char *trace, int attempt)
{
    kcw_remediation_event_t ev = {
        .kind = kind,
        .cluster = t->cluster_name,
        .connector = t->connector,
        .task = task,
        .request = request,
        .http_status = http,
        .detail = detail,
        .trace = trace,
        .attempt = attempt,
    };
    snprintf(t->note, sizeof(t->note), "%s", detail ? detail : "");
    t->last_event = kind;
    t->has_event = true;
    log_event(&ev);
    if (r->store) {
        char response[32];
        if (http)
            snprintf(response, sizeof(response), "HTTP %ld", http);
        kcw_audit_t a = {.time_ms = clock_now(r),
                         .kind = KCW_AUDIT_RESTART,
                         .cluster = t->cluster_name,
                         .connector = t->connector,
                         .task = task,
                         .rule = t->rule,
                         .reason = kcw_remediation_event_name(kind),
                         .trace = trace,
                         .request = request,
                         .response = http ? response : NULL,
                         .outcome = detail,
                         .http_status = http};
        kcw_store_audit_add(r->store, &a);
        track_save(r, t);
    }
    if (r->cb)
        r->cb(&ev, r->arg);
}

/* A decision that repeats each evaluation while nothing changes (skip,
 * unrecoverable, deferred re-read) is reported once, until the target is
 * healthy again or something is sent. */
static void say_once(kcw_remediator_t *r, target_t *t, kcw_remediation_event_kind_t kind,
                     const char *detail, const char *trace)
{
    uint64_t h = fnv1a(FNV_BASIS ^ (uint64_t)(kind + 1), detail);
    h = fnv1a(h, trace);
    if (h == 0)
        h = 1;
    if (t->said == h)
        return;
    t->said = h;
    emit(r, t, kind, t->task, NULL, 0, detail, trace, t->policy.n_attempts);
}

/* --- status helpers ------------------------------------------------------ */

static bool in_scope(kcw_restart_scope_t scope, int task, int id)
{
    switch (scope) {
    case KCW_SCOPE_TASK:
        return id == task;
    case KCW_SCOPE_CONNECTOR:
        return id == -1;
    case KCW_SCOPE_FAILED:
        return true;
    }
    return false;
}

/* Instance i of a connector status: i == 0 is the connector (id -1), then
 * the tasks. Returns false past the end. */
static bool instance_at(const kcw_connector_status_t *cs, size_t i, int *id, kcw_state_t *state,
                        const char **trace)
{
    if (i == 0) {
        *id = -1;
        *state = cs->state;
        *trace = cs->trace;
        return true;
    }
    if (i - 1 >= cs->n_tasks)
        return false;
    *id = cs->tasks[i - 1].id;
    *state = cs->tasks[i - 1].state;
    *trace = cs->tasks[i - 1].trace;
    return true;
}

/* First index of arr[0..n) (elements of size stride, sorted by the int at
 * offset off) whose id is >= id; n when none. */
static size_t lower_bound_id(const void *arr, size_t n, size_t stride, size_t off, int id)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        int v;
        memcpy(&v, (const char *)arr + m * stride + off, sizeof(v));
        if (v < id)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* The instance indexes [*lo, *hi) that scope covers: one task is found by
 * binary search (tasks are sorted by id), so a per-task target costs
 * O(log tasks), not a walk over the whole connector. */
static void scope_range(const kcw_connector_status_t *cs, kcw_restart_scope_t scope, int task,
                        size_t *lo, size_t *hi)
{
    *lo = 0;
    *hi = cs->n_tasks + 1;
    if (scope == KCW_SCOPE_CONNECTOR) {
        *hi = 1;
    } else if (scope == KCW_SCOPE_TASK) {
        size_t a = lower_bound_id(cs->tasks, cs->n_tasks, sizeof(*cs->tasks),
                                  offsetof(kcw_task_status_t, id), task);
        bool found = a < cs->n_tasks && cs->tasks[a].id == task;
        *lo = found ? a + 1 : 0;
        *hi = found ? a + 2 : 0;
    }
}

/* First instance index in scope (only FAILED ones if failed_only), or
 * SIZE_MAX. */
static size_t first_in_scope(const kcw_connector_status_t *cs, kcw_restart_scope_t scope, int task,
                             bool failed_only)
{
    size_t lo, hi;
    int id;
    kcw_state_t st;
    const char *tr;
    scope_range(cs, scope, task, &lo, &hi);
    for (size_t i = lo; i < hi && instance_at(cs, i, &id, &st, &tr); i++)
        if (in_scope(scope, task, id) && (!failed_only || st == KCW_STATE_FAILED))
            return i;
    return SIZE_MAX;
}

static size_t first_failed(const kcw_connector_status_t *cs, kcw_restart_scope_t scope, int task)
{
    return first_in_scope(cs, scope, task, true);
}

/* First FAILED instance in scope (its trace via *trace), or false. */
static bool scope_failed(const kcw_connector_status_t *cs, kcw_restart_scope_t scope, int task,
                         const char **trace)
{
    size_t i = first_failed(cs, scope, task);
    if (i == SIZE_MAX)
        return false;
    if (trace) {
        int id;
        kcw_state_t st;
        instance_at(cs, i, &id, &st, trace);
    }
    return true;
}

/* A PromQL alert (expr rule) under scope task or connector names one
 * instance and is itself the evidence that it needs a restart, whatever
 * Connect says: a RUNNING task stuck on record errors, for example. Scope
 * failed restarts only FAILED instances by definition. */
static bool restarts_running(const kcw_rule_t *rule, kcw_restart_scope_t scope)
{
    return rule->expr && (scope == KCW_SCOPE_TASK || scope == KCW_SCOPE_CONNECTOR);
}

/* The instance in scope is RUNNING (scope task or connector only). */
static bool scope_running(const kcw_connector_status_t *cs, kcw_restart_scope_t scope, int task)
{
    int id;
    kcw_state_t st = KCW_STATE_UNKNOWN;
    const char *tr;
    size_t i = first_in_scope(cs, scope, task, false);
    return i != SIZE_MAX && instance_at(cs, i, &id, &st, &tr) && st == KCW_STATE_RUNNING;
}

static bool operator_stopped(const kcw_connector_status_t *cs)
{
    return cs->state == KCW_STATE_PAUSED || cs->state == KCW_STATE_STOPPED;
}

/* Index of the pattern that classifies trace as unrecoverable: -1 the rule's
 * rule_re, i >= 0 r->unrecoverable[i]; -2 none. */
static long unrecoverable_index(const kcw_remediator_t *r, const kcw_regex_t *rule_re,
                                const char *trace)
{
    if (!trace || !*trace)
        return -2;
    if (rule_re && kcw_regex_match(rule_re, trace))
        return -1;
    for (size_t i = 0; i < r->n_unrecoverable; i++)
        if (kcw_regex_match(r->unrecoverable[i], trace))
            return (long)i;
    return -2;
}

static const char *pattern_source(const kcw_remediator_t *r, const kcw_regex_t *rule_re,
                                  long idx, const char **origin)
{
    if (idx == -1) {
        *origin = "rule restart.unless_trace";
        return kcw_regex_source(rule_re);
    }
    *origin = "remediation.unrecoverable_traces";
    return kcw_regex_source(r->unrecoverable[idx]);
}

/* Names the set of patterns a verdict was reached with. */
static uint64_t unrecoverable_key(const kcw_remediator_t *r, const kcw_regex_t *rule_re)
{
    uint64_t h = fnv1a(FNV_BASIS ^ r->patterns_epoch, rule_re ? kcw_regex_source(rule_re) : "");
    return h ^ (uint64_t)(uintptr_t)rule_re;
}

/* The target's verdict on cs, worked out at most once per model, rule
 * pattern set and scope: each FAILED trace in scope is matched once, so the
 * work per poll is linear in the number of tasks however many alerts ask. */
static void scope_verdict(kcw_remediator_t *r, target_t *t, const kcw_regex_t *rule_re,
                          const kcw_connector_status_t *cs, uint64_t generation,
                          kcw_restart_scope_t scope)
{
    uint64_t key = unrecoverable_key(r, rule_re);
    if (t->verdict.valid && t->verdict.cs == cs && t->verdict.generation == generation &&
        t->verdict.rules == key && t->verdict.scope == scope)
        return;
    t->verdict.valid = true;
    t->verdict.cs = cs;
    t->verdict.generation = generation;
    t->verdict.rules = key;
    t->verdict.scope = scope;
    t->verdict.failed = false;
    t->verdict.fixable = false;
    t->verdict.unrec_connector = false;
    t->verdict.unrec = SIZE_MAX;
    t->verdict.pattern = -2;
    size_t lo, hi;
    int id;
    kcw_state_t st;
    const char *tr;
    scope_range(cs, scope, t->task, &lo, &hi);
    for (size_t i = lo; i < hi && instance_at(cs, i, &id, &st, &tr); i++) {
        if (!in_scope(scope, t->task, id) || st != KCW_STATE_FAILED)
            continue;
        t->verdict.failed = true;
        long p = unrecoverable_index(r, rule_re, tr);
        if (p == -2) {
            t->verdict.fixable = true;
            continue;
        }
        if (id < 0)
            t->verdict.unrec_connector = true;
        if (t->verdict.unrec == SIZE_MAX) {
            t->verdict.unrec = i;
            t->verdict.pattern = p;
        }
    }
}

/* The note and event of each unrecoverable FAILED task in scope go to that
 * task's own target, so every alert's note is about its own task. */
static void note_unrecoverable_tasks(kcw_remediator_t *r, target_t *t, const kcw_regex_t *rule_re,
                                     const kcw_connector_status_t *cs)
{
    size_t lo, hi;
    int id;
    kcw_state_t st;
    const char *tr;
    scope_range(cs, t->scope, t->task, &lo, &hi);
    for (size_t i = lo; i < hi && instance_at(cs, i, &id, &st, &tr); i++) {
        if (id < 0 || !in_scope(t->scope, t->task, id) || st != KCW_STATE_FAILED)
            continue;
        long p = unrecoverable_index(r, rule_re, tr);
        if (p == -2)
            continue;
        target_t *own = target_get(r, t->cluster, t->cluster_name, t->connector, id);
        if (!own || own == t)
            continue;
        if (!own->in_flight && !track_has_history(&own->policy))
            own->scope = KCW_SCOPE_TASK;
        own->last_seen_ms = t->last_seen_ms;
        const char *origin = NULL;
        const char *pattern = pattern_source(r, rule_re, p, &origin);
        char detail[NOTE_MAX];
        snprintf(detail, sizeof(detail),
                 "not restarted: trace matches unrecoverable pattern '%s' (%s); restarting "
                 "cannot fix this failure",
                 pattern, origin);
        set_trace(own, tr);
        say_once(r, own, KCW_REMEDIATION_UNRECOVERABLE, detail, tr);
    }
}

/* Checks every FAILED trace in scope plus extra (the alert's). Under scope
 * failed, unrecoverable tasks beside fixable FAILED ones do not hold their
 * siblings: t->partial is set, the fixable ones are restarted task by task
 * and false is returned. Otherwise one unrecoverable instance holds the
 * whole target (KIP-745 restarts every FAILED instance). true when reported.
 * generation stamps cs (0: not cached, a one-off model such as a re-read). */
static bool check_unrecoverable(kcw_remediator_t *r, target_t *t, const kcw_regex_t *rule_re,
                                const kcw_connector_status_t *cs, uint64_t generation,
                                kcw_restart_scope_t scope, const char *extra)
{
    const char *origin = NULL, *pattern = NULL, *trace = NULL;
    t->partial = false;
    if (cs) {
        scope_verdict(r, t, rule_re, cs, generation, scope);
        if (t->verdict.unrec != SIZE_MAX && scope == KCW_SCOPE_FAILED &&
            !t->verdict.unrec_connector) {
            /* Only tasks are unrecoverable: each is reported on its own
             * target; the connector target's note stays about its siblings. */
            note_unrecoverable_tasks(r, t, rule_re, cs);
            t->partial = t->verdict.fixable;
            if (!generation)
                t->verdict.valid = false;
            return !t->partial;
        }
        if (t->verdict.unrec != SIZE_MAX) {
            int id;
            kcw_state_t st;
            instance_at(cs, t->verdict.unrec, &id, &st, &trace);
            pattern = pattern_source(r, rule_re, t->verdict.pattern, &origin);
        }
        if (!generation)
            t->verdict.valid = false;
    }
    if (!pattern && extra) {
        long p = unrecoverable_index(r, rule_re, extra);
        if (p != -2) {
            pattern = pattern_source(r, rule_re, p, &origin);
            trace = extra;
        }
    }
    if (!pattern)
        return false;
    char detail[NOTE_MAX];
    snprintf(detail, sizeof(detail),
             "not restarted: trace matches unrecoverable pattern '%s' (%s); restarting cannot "
             "fix this failure",
             pattern, origin);
    set_trace(t, trace);
    say_once(r, t, KCW_REMEDIATION_UNRECOVERABLE, detail, trace);
    return true;
}

/* --- actions ------------------------------------------------------------- */

static void action_unref(action_t *a)
{
    if (--a->refs > 0)
        return;
    for (size_t i = 0; i < a->n_reqs; i++) {
        free(a->reqs[i]->line);
        free(a->reqs[i]->err);
        free(a->reqs[i]);
    }
    free(a->reqs);
    if (a->have_fresh)
        kcw_connector_status_clear(&a->fresh);
    free(a->connector);
    free(a->unless_src);
    free(a->version);
    free(a);
}

static void action_unlink(kcw_remediator_t *r, action_t *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        r->actions = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

/* Ends a live action: the target may act again; drops the list's ref. */
static void action_end(action_t *a)
{
    kcw_remediator_t *r = a->r;
    a->t->in_flight = false;
    cluster_slot_t *slot = &r->clusters[a->slot];
    if (slot->in_flight > 0)
        slot->in_flight--;
    if (r->in_flight > 0)
        r->in_flight--;
    action_unlink(r, a);
    a->r = NULL;
    a->t = NULL;
    action_unref(a);
}

/* Nothing was sent and it should be tried again soon (transport error,
 * version unknown); not counted. */
static void action_retry(action_t *a, const char *why)
{
    kcw_remediator_t *r = a->r;
    target_t *t = a->t;
    char detail[NOTE_MAX];
    snprintf(detail, sizeof(detail), "restart deferred: %s; retried later, not counted",
             why ? why : "error");
    kcw_restart_policy_retry(&t->policy, r->conf, clock_now(r), -1);
    say_once(r, t, KCW_REMEDIATION_RETRY, detail, NULL);
}

/* A reload replaced the Connect client since the action started: its
 * cluster index may mean another cluster now, so the action stops before
 * its next request (not counted; the next consider starts afresh). */
static bool action_stale_client(action_t *a)
{
    if (a->cn == a->r->cn)
        return false;
    action_retry(a, "Connect client replaced by a reload");
    action_end(a);
    return true;
}

static req_t *action_add_req(action_t *a, kcw_restart_kind_t kind, int task)
{
    if (a->n_reqs == a->cap_reqs) {
        size_t cap = a->cap_reqs ? a->cap_reqs * 2 : 4;
        req_t **n = realloc(a->reqs, cap * sizeof(*n));
        if (!n)
            return NULL;
        a->reqs = n;
        a->cap_reqs = cap;
    }
    req_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->a = a;
    q->kind = kind;
    q->retry_after_ms = -1;
    q->task = task;
    char line[REQUEST_MAX];
    line[0] = '\0';
    kcw_connect_restart_describe(a->cn, a->cluster, a->connector, task, kind, line, sizeof(line));
    q->line = strdup(line);
    if (!q->line) {
        free(q);
        return NULL;
    }
    a->reqs[a->n_reqs++] = q;
    return q;
}

typedef enum { OUT_OK, OUT_GONE, OUT_RETRY, OUT_FAILED } outcome_t;

static outcome_t classify(long http)
{
    if (http >= 200 && http < 300)
        return OUT_OK;
    if (http == 404)
        return OUT_GONE; /* connector (or task config) gone: nothing to restart */
    if (http == 409 || http == 429 || http == 0)
        return OUT_RETRY; /* §7.2 rebalance, rate limited, or transport: not counted */
    return OUT_FAILED;    /* 500 (§7.3/§7.4) and anything else: a failed attempt */
}

/* A request of a restarts instance id. */
static bool action_restarts(const action_t *a, int id)
{
    for (size_t i = 0; i < a->n_reqs; i++)
        if (a->reqs[i]->task == id)
            return true;
    return false;
}

/* The instances this attempt restarts, for verification. */
static void remember_marks(target_t *t, const action_t *a)
{
    free(t->marks);
    t->marks = NULL;
    t->n_marks = 0;
    if (!a->have_fresh)
        return;
    mark_t *m = calloc(a->fresh.n_tasks + 1, sizeof(*m));
    if (!m)
        return; /* without marks every FAILED reads as stale: verify_timeout judges */
    size_t n = 0;
    int id;
    kcw_state_t st;
    const char *tr;
    size_t lo, hi;
    scope_range(&a->fresh, a->scope, a->task, &lo, &hi);
    for (size_t i = lo; i < hi && instance_at(&a->fresh, i, &id, &st, &tr); i++) {
        if (in_scope(a->scope, a->task, id) && st == KCW_STATE_FAILED) {
            m[n].id = id;
            m[n].trace_hash = trace_hash(tr);
            m[n].left_failed = false;
            m[n].held = a->partial && !action_restarts(a, id);
            n++;
        }
    }
    t->marks = m;
    t->n_marks = n;
}

/* Every reply is in: one counted attempt if anything reached a worker that
 * acted on it (2xx) or failed doing so (5xx); events per request. */
static void action_finish(action_t *a)
{
    kcw_remediator_t *r = a->r;
    target_t *t = a->t;
    const kcw_remediation_conf_t *conf = r->conf;
    int64_t now = clock_now(r);
    bool ok = false, failed = false, retry = false;
    int64_t retry_after = -1;
    for (size_t i = 0; i < a->n_reqs; i++) {
        if (a->reqs[i]->retry_after_ms > retry_after)
            retry_after = a->reqs[i]->retry_after_ms;
        switch (classify(a->reqs[i]->http)) {
        case OUT_OK:
            ok = true;
            break;
        case OUT_FAILED:
            failed = true;
            break;
        case OUT_RETRY:
            retry = true;
            break;
        case OUT_GONE:
            break;
        }
    }
    bool counted = ok || failed;
    kcw_store_begin(r->store); /* the attempt and its events: one commit */
    if (counted) {
        kcw_restart_policy_record(&t->policy, conf, now, rand01(r));
        remember_marks(t, a);
        t->said = 0;
        if (failed)
            t->policy.verifying = false; /* the reply itself is the verdict */
    } else if (retry) {
        kcw_restart_policy_retry(&t->policy, conf, now, retry_after);
    }
    int attempt = t->policy.n_attempts;
    char at[96];
    attempt_text(conf, attempt, at, sizeof(at));
    char detail[NOTE_MAX];
    for (size_t i = 0; i < a->n_reqs; i++) {
        req_t *q = a->reqs[i];
        kcw_remediation_event_kind_t kind;
        switch (classify(q->http)) {
        case OUT_OK:
            kind = KCW_REMEDIATION_SENT;
            if (a->was_running)
                snprintf(detail, sizeof(detail),
                         "restart sent: %s was RUNNING, restarted because %s fires (%s)",
                         q->task >= 0 ? "task" : "connector", t->rule ? t->rule : "its alert",
                         at);
            else
                snprintf(detail, sizeof(detail), "restart sent (%s)", at);
            break;
        case OUT_FAILED:
            kind = KCW_REMEDIATION_FAILED;
            /* The client's error already reads "HTTP 429: message". */
            if (q->err)
                snprintf(detail, sizeof(detail), "restart failed: %s (%s)", q->err, at);
            else
                snprintf(detail, sizeof(detail), "restart failed: HTTP %ld (%s)", q->http, at);
            break;
        case OUT_RETRY:
            kind = KCW_REMEDIATION_RETRY;
            if (q->http == 409)
                snprintf(detail, sizeof(detail),
                         "restart deferred: HTTP 409 (rebalance under way); retried later, not "
                         "counted");
            else if (q->http == 429)
                snprintf(detail, sizeof(detail),
                         "restart deferred: HTTP 429 (rate limited); retried after %lld ms, not "
                         "counted",
                         (long long)(t->policy.next_allowed_ms - now));
            else
                snprintf(detail, sizeof(detail), "restart deferred: %s; retried later, not counted",
                         q->err ? q->err : "request failed");
            break;
        default:
            kind = KCW_REMEDIATION_SKIPPED;
            snprintf(detail, sizeof(detail), "not restarted: %s not found (HTTP 404)",
                     q->task >= 0 ? "task" : "connector");
            break;
        }
        emit(r, t, kind, q->task, q->line, q->http, detail, t->trace, attempt);
    }
    if (counted && !failed) {
        if (a->was_running)
            snprintf(t->note, sizeof(t->note), "restart sent: was RUNNING, the alert asked (%s)",
                     at);
        else
            snprintf(t->note, sizeof(t->note), "restart sent (%s)", at);
    }
    if (retry || counted)
        track_save(r, t);
    kcw_store_commit(r->store);
    action_end(a);
}

static void req_done(action_t *a)
{
    if (--a->pending == 0)
        action_finish(a);
}

static void on_restart(long http_status, const kcw_connector_status_t *status, const char *err,
                       int64_t retry_after_ms, void *arg);

/* Sends q; a reply is owed unless it could not be queued (then it is
 * recorded as a transport failure right away). */
static void req_send(action_t *a, req_t *q)
{
    a->pending++;
    a->refs++;
    int rc = kcw_connect_restart(a->cn, a->cluster, a->connector, q->task, q->kind, on_restart, q);
    if (rc < 0) {
        q->http = 0;
        free(q->err);
        q->err = strdup(strerror(-rc));
        a->refs--;
        a->pending--;
    }
}

static void on_restart(long http_status, const kcw_connector_status_t *status, const char *err,
                       int64_t retry_after_ms, void *arg)
{
    (void)status;
    req_t *q = arg;
    action_t *a = q->a;
    if (a->cancelled) {
        action_unref(a);
        return;
    }
    q->http = http_status;
    q->retry_after_ms = retry_after_ms;
    free(q->err);
    q->err = err ? strdup(err) : NULL;
    if (http_status == 204 && q->kind == KCW_RESTART_FAILED_KIP745 && a->cn == a->r->cn) {
        /* connect-rest.md §5.5: a worker before 3.0 ignored the KIP-745
         * parameters and bounced the connector only. Remember it and restart
         * the FAILED tasks one by one. */
        cluster_slot_t *slot = &a->r->clusters[a->slot];
        if (a->version) {
            free(slot->legacy_version);
            slot->legacy_version = strdup(a->version);
        }
        kcw_log(KCW_LOG_WARN, "worker answered a KIP-745 restart with 204: treating as < 3.0",
                "cluster", a->t->cluster_name, "connector", a->connector, "version",
                a->version ? a->version : "", NULL);
        for (size_t i = 0; a->have_fresh && i < a->fresh.n_tasks; i++) {
            const kcw_task_status_t *ts = &a->fresh.tasks[i];
            if (ts->state != KCW_STATE_FAILED)
                continue;
            req_t *f = action_add_req(a, KCW_RESTART_TASK, ts->id);
            if (f)
                req_send(a, f);
        }
    }
    req_done(a);
    action_unref(a);
}

static void action_send(action_t *a)
{
    /* pending holds one extra while dispatching, so replies delivered from
     * inside kcw_connect_restart cannot finish the action half-sent. */
    a->pending = 1;
    size_t n = a->n_reqs;
    for (size_t i = 0; i < n; i++)
        req_send(a, a->reqs[i]);
    req_done(a);
}

static void on_permit(void *token, bool ok, const char *why)
{
    action_t *a = token;
    if (a->cancelled) {
        action_unref(a);
        return;
    }
    if (!ok) {
        action_retry(a, why ? why : "not permitted");
        action_end(a);
    } else if (!action_stale_client(a)) {
        action_send(a);
    }
    action_unref(a);
}

/* Sends (or, in dry run, describes) the prepared requests, once the permit
 * gate, if any, said yes. */
static void action_dispatch(action_t *a)
{
    kcw_remediator_t *r = a->r;
    target_t *t = a->t;
    if (a->n_reqs == 0) {
        action_end(a);
        return;
    }
    if (r->conf->dry_run) {
        char detail[NOTE_MAX];
        for (size_t i = 0; i < a->n_reqs; i++) {
            snprintf(detail, sizeof(detail), "dry run: would send %s", a->reqs[i]->line);
            emit(r, t, KCW_REMEDIATION_DRY_RUN, a->reqs[i]->task, a->reqs[i]->line, 0, detail,
                 t->trace, t->policy.n_attempts);
        }
        /* Not counted, but backed off so the log is not flooded. */
        kcw_restart_policy_defer(&t->policy, r->conf, clock_now(r), rand01(r));
        action_end(a);
        return;
    }
    if (!r->permit) {
        action_send(a);
        return;
    }
    a->refs++;
    int rc = r->permit(r->permit_arg, t->cluster_name, a->connector, a->task, a->reqs[0]->line,
                       &t->policy, on_permit, a);
    if (rc < 0) {
        a->refs--;
        action_retry(a, rc == -EPERM ? "this instance does not own the cluster"
                                     : strerror(-rc));
        action_end(a);
    }
}

/* Builds the requests from the fresh status; legacy = worker before 3.0. */
static void action_plan(action_t *a, bool legacy)
{
    const kcw_connector_status_t *cs = &a->fresh;
    bool ok = true;
    switch (a->scope) {
    case KCW_SCOPE_TASK:
        ok = action_add_req(a, KCW_RESTART_TASK, a->task) != NULL;
        break;
    case KCW_SCOPE_CONNECTOR:
        ok = action_add_req(a, KCW_RESTART_CONNECTOR, -1) != NULL;
        break;
    case KCW_SCOPE_FAILED:
        if (!legacy) {
            ok = action_add_req(a, KCW_RESTART_FAILED_KIP745, -1) != NULL;
            break;
        }
        /* §5.5: never send KIP-745 parameters to an old worker (it would
         * bounce a healthy connector); restart exactly what is FAILED. */
        for (size_t i = 0; ok && i < cs->n_tasks; i++)
            if (cs->tasks[i].state == KCW_STATE_FAILED)
                ok = action_add_req(a, KCW_RESTART_TASK, cs->tasks[i].id) != NULL;
        if (ok && cs->state == KCW_STATE_FAILED)
            ok = action_add_req(a, KCW_RESTART_CONNECTOR, -1) != NULL;
        break;
    }
    if (!ok) {
        action_retry(a, "out of memory");
        action_end(a);
        return;
    }
    action_dispatch(a);
}

/* Scope failed with unrecoverable tasks beside fixable ones: the fixable
 * FAILED tasks by per-task restarts (every version has them), the rest left.
 * The held ones were reported by check_unrecoverable(). */
static void action_plan_partial(action_t *a)
{
    kcw_remediator_t *r = a->r;
    const kcw_connector_status_t *cs = &a->fresh;
    kcw_regex_t *rule_re = NULL;
    if (a->unless_src) {
        char e[256];
        if (kcw_regex_compile(a->unless_src, false, &rule_re, e, sizeof(e)) < 0)
            rule_re = NULL;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < cs->n_tasks; i++) {
        const kcw_task_status_t *ts = &cs->tasks[i];
        if (ts->state == KCW_STATE_FAILED && unrecoverable_index(r, rule_re, ts->trace) == -2)
            ok = action_add_req(a, KCW_RESTART_TASK, ts->id) != NULL;
    }
    kcw_regex_free(rule_re);
    if (!ok) {
        action_retry(a, "out of memory");
        action_end(a);
        return;
    }
    action_dispatch(a);
}

static void on_version(const char *version, const char *err, void *arg)
{
    action_t *a = arg;
    if (a->cancelled) {
        action_unref(a);
        return;
    }
    if (!version) {
        char why[NOTE_MAX];
        snprintf(why, sizeof(why), "worker version unknown (GET / failed: %s)",
                 err ? err : "no answer");
        action_retry(a, why);
        action_end(a);
        action_unref(a);
        return;
    }
    int major = 0, minor = 0;
    bool legacy;
    if (kcw_connect_version_parse(version, &major, &minor) < 0) {
        /* Per-task restarts work on every version; KIP-745 parameters on an
         * old worker bounce a healthy connector (§5.5). */
        kcw_log(KCW_LOG_WARN, "unparsable worker version: restarting per task", "cluster",
                a->t->cluster_name, "version", version, NULL);
        legacy = true;
    } else {
        legacy = major < 3;
    }
    cluster_slot_t *slot = &a->r->clusters[a->slot];
    if (slot->legacy_version) {
        if (strcmp(slot->legacy_version, version) == 0) {
            legacy = true;
        } else {
            /* Another worker version answers now (upgrade, failover). */
            free(slot->legacy_version);
            slot->legacy_version = NULL;
        }
    }
    a->version = strdup(version); /* NULL only loses the §5.5 memory */
    if (!action_stale_client(a))
        action_plan(a, legacy);
    action_unref(a);
}

static void on_status(long http_status, const kcw_connector_status_t *status, const char *err,
                      void *arg)
{
    action_t *a = arg;
    if (a->cancelled) {
        action_unref(a);
        return;
    }
    kcw_remediator_t *r = a->r;
    target_t *t = a->t;
    if (http_status == 404) {
        say_once(r, t, KCW_REMEDIATION_SKIPPED,
                 "not restarted: connector not found (HTTP 404 on status re-read)", NULL);
        action_end(a);
        action_unref(a);
        return;
    }
    if (http_status != 200 || !status) {
        char why[NOTE_MAX];
        if (http_status)
            snprintf(why, sizeof(why), "status re-read answered HTTP %ld", http_status);
        else
            snprintf(why, sizeof(why), "status re-read failed: %s", err ? err : "no answer");
        action_retry(a, why);
        action_end(a);
        action_unref(a);
        return;
    }
    if (kcw_connector_status_copy(&a->fresh, status) < 0) {
        action_retry(a, "out of memory");
        action_end(a);
        action_unref(a);
        return;
    }
    a->have_fresh = true;
    const kcw_connector_status_t *cs = &a->fresh;
    if (operator_stopped(cs)) {
        /* §4/§6: operator intent, even if a task under it shows FAILED. */
        char detail[NOTE_MAX];
        snprintf(detail, sizeof(detail), "not restarted: connector is %s",
                 kcw_state_name(cs->state));
        say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
        action_end(a);
        action_unref(a);
        return;
    }
    const char *trace = NULL;
    if (!scope_failed(cs, a->scope, a->task, &trace)) {
        if (a->restart_running && scope_running(cs, a->scope, a->task)) {
            a->was_running = true;
        } else {
            snprintf(t->note, sizeof(t->note), "not restarted: no longer FAILED");
            action_end(a);
            action_unref(a);
            return;
        }
    }
    kcw_regex_t *rule_re = NULL;
    if (a->unless_src) {
        char e[256];
        if (kcw_regex_compile(a->unless_src, false, &rule_re, e, sizeof(e)) < 0)
            rule_re = NULL; /* it compiled at rule load; only OOM gets here */
    }
    bool unrecoverable = check_unrecoverable(r, t, rule_re, cs, 0, a->scope, NULL);
    if (unrecoverable) {
        kcw_regex_free(rule_re);
        action_end(a);
        action_unref(a);
        return;
    }
    if (t->partial && a->scope == KCW_SCOPE_FAILED) {
        /* The fixable FAILED tasks on their own; their trace for the events. */
        trace = NULL;
        a->partial = true;
        for (size_t i = 0; i < cs->n_tasks; i++) {
            const kcw_task_status_t *ts = &cs->tasks[i];
            if (ts->state != KCW_STATE_FAILED ||
                unrecoverable_index(r, rule_re, ts->trace) != -2)
                continue;
            if (!trace)
                trace = ts->trace;
        }
    }
    kcw_regex_free(rule_re);
    set_trace(t, trace);
    if (action_stale_client(a)) {
        action_unref(a);
        return;
    }
    if (a->partial) {
        action_plan_partial(a);
        action_unref(a);
        return;
    }
    if (a->scope != KCW_SCOPE_FAILED) {
        /* Per-task and plain connector restarts exist on every version. */
        action_plan(a, true);
        action_unref(a);
        return;
    }
    a->refs++;
    int rc = kcw_connect_fetch_version(a->cn, a->cluster, on_version, a);
    if (rc < 0) {
        a->refs--;
        char why[NOTE_MAX];
        snprintf(why, sizeof(why), "worker version unknown: %s", strerror(-rc));
        action_retry(a, why);
        action_end(a);
    }
    action_unref(a);
}

static void action_start(kcw_remediator_t *r, target_t *t, const kcw_rule_t *rule,
                         kcw_restart_scope_t scope)
{
    long slot = cluster_slot_index(r, t->cluster_name);
    action_t *a = calloc(1, sizeof(*a));
    if (slot < 0 || !a || !(a->connector = strdup(t->connector)) ||
        (rule->restart.unless_trace &&
         !(a->unless_src = strdup(kcw_regex_source(rule->restart.unless_trace))))) {
        if (a) {
            free(a->connector);
            free(a);
        }
        kcw_log(KCW_LOG_ERROR, "out of memory starting a restart", "connector", t->connector, NULL);
        return;
    }
    a->refs = 1; /* the live list's */
    a->r = r;
    a->t = t;
    a->cn = r->cn;
    a->cluster = t->cluster;
    a->slot = (size_t)slot;
    a->scope = scope;
    a->task = t->task;
    a->restart_running = t->restart_running;
    a->next = r->actions;
    if (r->actions)
        r->actions->prev = a;
    r->actions = a;
    t->in_flight = true;
    r->clusters[slot].in_flight++;
    r->in_flight++;

    /* Re-read right before acting: the poll may be seconds old and an
     * operator may have paused the connector since (README: "How restarts
     * are made safe"). */
    a->refs++;
    int rc = kcw_connect_fetch_status(a->cn, a->cluster, a->connector, on_status, a);
    if (rc < 0) {
        a->refs--;
        char why[NOTE_MAX];
        snprintf(why, sizeof(why), "status re-read failed: %s", strerror(-rc));
        action_retry(a, why);
        action_end(a);
    }
}

/* --- public -------------------------------------------------------------- */

void kcw_remediator_set_connect(kcw_remediator_t *r, kcw_connect_t *cn)
{
    if (!r)
        return;
    r->cn = cn;
    if (!cn)
        return;
    /* Cluster indexes follow the new configuration's order; targets of
     * clusters that are gone have nothing left to restart. Actions still on
     * the old client stop at their next step (action_stale_client). */
    for (size_t b = 0; b < r->n_buckets; b++) {
        target_t **link = &r->buckets[b];
        while (*link) {
            target_t *t = *link;
            int i = kcw_connect_cluster_index(cn, t->cluster_name);
            if (i >= 0) {
                t->cluster = (size_t)i;
            } else if (!t->in_flight) {
                *link = t->next;
                r->n_targets--;
                target_free(t);
                continue;
            }
            link = &t->next;
        }
    }
}

static void compiled_clear(kcw_remediator_t *r)
{
    r->patterns_epoch++; /* cached verdicts name patterns by index */
    kcw_regex_free(r->exclude);
    r->exclude = NULL;
    for (size_t i = 0; i < r->n_unrecoverable; i++)
        kcw_regex_free(r->unrecoverable[i]);
    free(r->unrecoverable);
    r->unrecoverable = NULL;
    r->n_unrecoverable = 0;
}

void kcw_remediator_set_permit(kcw_remediator_t *r, kcw_remediation_permit_cb cb, void *arg)
{
    if (!r)
        return;
    r->permit = cb;
    r->permit_arg = arg;
}

void kcw_remediator_set_conf(kcw_remediator_t *r, const kcw_remediation_conf_t *conf)
{
    char err[256];
    if (!r || !conf)
        return;
    compiled_clear(r);
    r->conf = conf;
    if (r->hold)
        kcw_inhibitor_set_rules(r->hold, conf->inhibit, conf->n_inhibit);
    else if (!(r->hold = kcw_inhibitor_new(conf->inhibit, conf->n_inhibit)))
        kcw_log(KCW_LOG_ERROR, "remediation.inhibit holds nothing: out of memory", NULL);
    if (conf->exclude_connector && *conf->exclude_connector) {
        if (kcw_regex_compile(conf->exclude_connector, true, &r->exclude, err, sizeof(err)) < 0) {
            /* Config validation compiled it already; failing here is OOM.
             * Refuse to restart anything rather than restart excluded ones. */
            kcw_log(KCW_LOG_ERROR, "remediation exclude regex unusable: restarts disabled", "error",
                    err, NULL);
            r->exclude = NULL;
            kcw_regex_compile(".*", true, &r->exclude, err, sizeof(err));
        }
    }
    if (conf->n_unrecoverable_traces > 0) {
        r->unrecoverable = calloc(conf->n_unrecoverable_traces, sizeof(*r->unrecoverable));
        if (!r->unrecoverable) {
            kcw_log(KCW_LOG_ERROR, "out of memory compiling unrecoverable_traces", NULL);
            return;
        }
        for (size_t i = 0; i < conf->n_unrecoverable_traces; i++) {
            kcw_regex_t *re = NULL;
            if (kcw_regex_compile(conf->unrecoverable_traces[i], false, &re, err, sizeof(err)) <
                0) {
                kcw_log(KCW_LOG_WARN, "unrecoverable trace pattern ignored", "error", err, NULL);
                continue;
            }
            r->unrecoverable[r->n_unrecoverable++] = re;
        }
    }
}

kcw_remediator_t *kcw_remediator_new(uv_loop_t *loop, kcw_connect_t *cn,
                                     const kcw_remediation_conf_t *conf,
                                     kcw_remediation_event_cb cb, void *arg)
{
    if (!conf)
        return NULL;
    kcw_remediator_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->loop = loop;
    r->cn = cn;
    r->cb = cb;
    r->arg = arg;
    r->n_buckets = 64;
    r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
    r->storm = kcw_storm_new();
    if (!r->buckets || !r->storm) {
        free(r->buckets);
        kcw_storm_free(r->storm);
        free(r);
        return NULL;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kcw_remediator_seed(r, ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
                               ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r);
    kcw_remediator_set_conf(r, conf);
    return r;
}

static int on_stored_track(const kcw_store_track_t *row, void *arg)
{
    kcw_remediator_t *r = arg;
    target_t *t = target_get(r, 0, row->cluster, row->connector, row->task);
    if (!t)
        return 1;
    t->scope = (kcw_restart_scope_t)row->scope;
    t->policy = *row->policy;
    t->said = row->said;
    t->exhausted_reported = row->exhausted_reported;
    t->last_seen_ms = r->clock_ms;
    if (row->rule && !t->rule)
        t->rule = strdup(row->rule);
    set_trace(t, row->trace);
    free(t->marks);
    t->marks = row->n_marks ? calloc(row->n_marks, sizeof(*t->marks)) : NULL;
    t->n_marks = t->marks ? row->n_marks : 0;
    for (size_t i = 0; i < t->n_marks; i++)
        t->marks[i] = (mark_t){row->mark_ids[i], row->mark_hashes[i], row->mark_left[i],
                               row->mark_held && row->mark_held[i]};
    return 0;
}

void kcw_remediator_set_store(kcw_remediator_t *r, kcw_store_t *store, int64_t now_ms)
{
    if (!r || !store || r->store)
        return;
    clock_set(r, now_ms);
    long n = kcw_store_track_load(store, on_stored_track, r);
    r->store = store;
    if (n > 0) {
        kcw_log(KCW_LOG_INFO, "restart state restored", KCW_LOG_INT("targets", n), NULL);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Like the store's seeding at start (on_stored_track), but merged into what
 * this instance knows: an instance taking a cluster over counts the restarts
 * its previous owner made. */
int kcw_remediator_adopt_restarts(kcw_remediator_t *r, const char *cluster, const char *connector,
                                  int task, const int64_t *attempts_ms, size_t n,
                                  int consecutive, int64_t now_ms)
{
    if (!r || !cluster || !connector || (n > 0 && !attempts_ms))
        return -EINVAL;
    target_t *t = target_find(r, cluster, connector, task);
    if (!t && !(t = target_get(r, 0, cluster, connector, task)))
        return -ENOMEM;
    kcw_restart_track_t *p = &t->policy;
    kcw_restart_policy_budget_used(p, r->conf, now_ms);
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t at = attempts_ms[i];
        if (at <= 0 || at > now_ms ||
            (r->conf->budget_window_ms > 0 && at <= now_ms - r->conf->budget_window_ms))
            continue;
        if (at > last)
            last = at;
        bool known = false;
        for (int j = 0; j < p->n_attempts && !known; j++)
            known = p->attempts_ms[j] == at;
        if (known)
            continue;
        if (p->n_attempts == KCW_RESTART_MAX_HISTORY) {
            if (at <= p->attempts_ms[0])
                continue; /* older than all of a full history */
            p->attempts_ms[0] = at;
        } else {
            p->attempts_ms[p->n_attempts++] = at;
        }
        qsort(p->attempts_ms, (size_t)p->n_attempts, sizeof(p->attempts_ms[0]), cmp_i64);
    }
    if (consecutive > MAX_CONSECUTIVE)
        consecutive = MAX_CONSECUTIVE;
    if (consecutive > p->consecutive)
        p->consecutive = consecutive;
    if (last > 0) {
        /* The back-off after the last one, without jitter: its lower bound. */
        int64_t next = last + kcw_restart_policy_delay(r->conf, consecutive > 0 ? consecutive - 1
                                                                                 : 0, 0.0);
        if (next > p->next_allowed_ms)
            p->next_allowed_ms = next;
        if (last > p->last_restart_ms)
            p->last_restart_ms = last;
    }
    t->last_seen_ms = now_ms;
    track_save(r, t);
    return 0;
}

/* Cluster index and name for an alert, or false when it names none we know. */
static bool resolve_cluster(const kcw_remediator_t *r, const kcw_labels_t *labels, size_t *idx,
                            const char **name)
{
    const char *label = kcw_labels_get(labels, "cluster");
    if (!r->cn) {
        *idx = 0;
        *name = label ? label : "";
        return true;
    }
    if (label) {
        int i = kcw_connect_cluster_index(r->cn, label);
        if (i < 0)
            return false;
        *idx = (size_t)i;
        *name = label;
        return true;
    }
    if (kcw_connect_cluster_count(r->cn) != 1)
        return false;
    *idx = 0;
    const kcw_cluster_status_t *cs = kcw_connect_cluster(r->cn, 0);
    *name = cs && cs->name ? cs->name : "";
    return true;
}

/* Task label as a task id, or -1. */
static int parse_task(const kcw_labels_t *labels)
{
    const char *s = kcw_labels_get(labels, "task");
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX)
        return -1;
    return (int)v;
}

/* FAILED verdict reached without a poll (observe not fed for this target):
 * a still-firing alert past verify_timeout means no recovery. */
static void verify_overdue(kcw_remediator_t *r, target_t *t, int64_t now)
{
    if (!t->policy.verifying || now - t->policy.last_restart_ms < r->conf->verify_timeout_ms)
        return;
    if (kcw_restart_policy_observe(&t->policy, r->conf, KCW_STATE_FAILED, now) !=
        KCW_REMEDIATION_FAILED)
        return;
    char at[96], vt[32], detail[NOTE_MAX];
    attempt_text(r->conf, t->policy.n_attempts, at, sizeof(at));
    snprintf(detail, sizeof(detail), "restart failed: not RUNNING within verify_timeout %s (%s)",
             fmt_duration(r->conf->verify_timeout_ms, vt, sizeof(vt)), at);
    emit(r, t, KCW_REMEDIATION_FAILED, t->task, NULL, 0, detail, t->trace, t->policy.n_attempts);
}

void kcw_remediator_consider(kcw_remediator_t *r, const kcw_rule_t *rule, const kcw_alert_t *alert,
                             int64_t now_ms)
{
    if (!r || !rule || !alert || !rule->restart.enabled || alert->state != KCW_ALERT_FIRING)
        return;
    const char *connector = kcw_labels_get(&alert->labels, "connector");
    if (!connector || !*connector)
        return;
    clock_set(r, now_ms);
    const kcw_remediation_conf_t *conf = r->conf;
    size_t cidx;
    const char *cname;
    if (!resolve_cluster(r, &alert->labels, &cidx, &cname)) {
        kcw_log(KCW_LOG_DEBUG, "restart: alert names no known cluster", "alertname",
                rule->alert ? rule->alert : "", "connector", connector, NULL);
        return;
    }
    kcw_restart_scope_t scope = rule->restart.scope;
    int task = -1;
    if (scope == KCW_SCOPE_TASK) {
        task = parse_task(&alert->labels);
        /* A connector-level alert under scope task: restart what is FAILED. */
        if (task < 0)
            scope = KCW_SCOPE_FAILED;
    }
    target_t *t = target_get(r, cidx, cname, connector, task);
    if (!t) {
        kcw_log(KCW_LOG_WARN, "restart: cannot track another target", "connector", connector, NULL);
        return;
    }
    t->scope = scope;
    t->restart_running = restarts_running(rule, scope);
    t->last_seen_ms = now_ms;
    if (rule->alert && (!t->rule || strcmp(t->rule, rule->alert) != 0)) {
        char *name = strdup(rule->alert);
        if (name) {
            free(t->rule);
            t->rule = name;
        }
    }
    if (t->in_flight)
        return;

    char detail[NOTE_MAX];
    if (!conf->enabled) {
        say_once(r, t, KCW_REMEDIATION_SKIPPED, "not restarted: remediation is disabled",
                 alert->trace);
        return;
    }
    if (r->exclude && kcw_regex_match(r->exclude, connector)) {
        snprintf(detail, sizeof(detail),
                 "not restarted: connector is excluded by remediation.exclude '%s'",
                 conf->exclude_connector ? conf->exclude_connector : "");
        say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, alert->trace);
        return;
    }

    /* Cheap pre-checks on the last poll; the re-read decides in the end. */
    const kcw_connector_status_t *cs = NULL;
    uint64_t generation = 0;
    if (r->cn) {
        const kcw_cluster_status_t *cl = kcw_connect_cluster(r->cn, cidx);
        cs = cl ? kcw_cluster_status_find(cl, connector) : NULL;
        generation = cl ? cl->generation : 0;
    }
    if (cs) {
        if (operator_stopped(cs)) {
            snprintf(detail, sizeof(detail), "not restarted: connector is %s",
                     kcw_state_name(cs->state));
            say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
            return;
        }
        scope_verdict(r, t, rule->restart.unless_trace, cs, generation, scope);
        if (!t->verdict.failed) {
            if (!generation)
                t->verdict.valid = false;
            if (!t->restart_running) {
                if (rule->expr) {
                    /* Silence here read as a restart that never came. */
                    snprintf(detail, sizeof(detail),
                             "not restarted: nothing in scope is FAILED (restart scope failed "
                             "restarts FAILED instances only; use scope task or connector to "
                             "restart what this alert names)");
                    say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
                }
                return; /* alert not resolved yet, but nothing is FAILED */
            }
            if (!scope_running(cs, scope, task)) {
                snprintf(detail, sizeof(detail),
                         "not restarted: the %s is neither RUNNING nor FAILED (in transition "
                         "or gone)",
                         task >= 0 ? "task" : "connector");
                say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
                return;
            }
        }
    }
    verify_overdue(r, t, now_ms);
    if (check_unrecoverable(r, t, rule->restart.unless_trace, cs, generation, scope,
                            alert->trace))
        return;

    /* remediation.inhibit: a source alert says a restart cannot help now. */
    if (r->hold && kcw_inhibitor_mutes(r->hold, &alert->labels, alert->fingerprint)) {
        t->held = t->inhibited = true;
        say_once(r, t, KCW_REMEDIATION_SKIPPED,
                 "restart held: a remediation.inhibit source alert fires for this target; "
                 "restarted at remediation.rate once it resolves",
                 NULL);
        return;
    }
    int rc = kcw_restart_policy_check(&t->policy, conf, now_ms);
    if (rc == -EDQUOT) {
        if (!t->exhausted_reported) {
            t->exhausted_reported = true;
            char w[32];
            snprintf(detail, sizeof(detail), "restarts stopped: budget of %d in %s used up",
                     budget_limit(conf), fmt_duration(conf->budget_window_ms, w, sizeof(w)));
            if (alert->trace)
                set_trace(t, alert->trace);
            emit(r, t, KCW_REMEDIATION_BUDGET_EXHAUSTED, t->task, NULL, 0, detail, t->trace,
                 t->policy.n_attempts);
        }
        return;
    }
    if (rc < 0 || !r->cn)
        return; /* back-off or verification pending: a later consider acts */
    cluster_slot_t *slot = cluster_slot(r, t->cluster_name);
    int max = conf->max_concurrent > 0 ? conf->max_concurrent : 1;
    t->held = !slot || slot->in_flight >= max;
    if (t->held)
        return; /* waits for the next evaluation */
    /* In a failure storm one canary goes first, the rest follow at the rate. */
    kcw_storm_admit_t storm = kcw_storm_admit(r->storm, conf, t->cluster_name, t->connector,
                                              t->task, now_ms);
    /* Targets an inhibit rule held come back at the storm rate, not at once. */
    if (storm == KCW_STORM_PASS && t->inhibited) {
        if (!kcw_storm_pace(r->storm, conf, t->cluster_name, now_ms)) {
            t->held = true;
            snprintf(detail, sizeof(detail),
                     "restart held: released by remediation.inhibit, restarting at %.4g per "
                     "minute",
                     conf->rate_per_min);
            say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
            return;
        }
        t->inhibited = false;
    }
    if (storm == KCW_STORM_CANARY || storm == KCW_STORM_RELEASE)
        t->inhibited = false; /* the storm paces it already */
    if (storm == KCW_STORM_HOLD) {
        t->held = true;
        snprintf(detail, sizeof(detail),
                 kcw_storm_phase(r->storm, t->cluster_name) == KCW_STORM_PHASE_RELEASE
                     ? "restart held: failure storm on %s, the canary recovered and the rest "
                       "restart at %.4g per minute"
                     : "restart held: failure storm on %s, one canary restart goes first (the "
                       "rest then restart at %.4g per minute)",
                 t->cluster_name, conf->rate_per_min);
        say_once(r, t, KCW_REMEDIATION_SKIPPED, detail, NULL);
        return;
    }
    action_start(r, t, rule, scope);
}

/* The mark of instance id (marks are in instance order, so sorted by id). */
static mark_t *mark_find(target_t *t, int id)
{
    size_t a = lower_bound_id(t->marks, t->n_marks, sizeof(*t->marks), offsetof(mark_t, id), id);
    return a < t->n_marks && t->marks[a].id == id ? &t->marks[a] : NULL;
}

/* Aggregate state of a target in a poll. *fresh_failed: some FAILED
 * instance is a new failure rather than the record the last restart saw. */
static kcw_state_t target_state(target_t *t, const kcw_connector_status_t *cs, bool *fresh_failed)
{
    *fresh_failed = false;
    if (!cs)
        return KCW_STATE_UNKNOWN;
    bool any = false, any_failed = false, all_running = true;
    kcw_state_t other = KCW_STATE_UNKNOWN;
    int id;
    kcw_state_t st;
    const char *tr;
    size_t lo, hi;
    scope_range(cs, t->scope, t->task, &lo, &hi);
    for (size_t i = lo; i < hi && instance_at(cs, i, &id, &st, &tr); i++) {
        if (!in_scope(t->scope, t->task, id))
            continue;
        mark_t *m = mark_find(t, id);
        if (m && m->held && st == KCW_STATE_FAILED && m->trace_hash == trace_hash(tr))
            continue; /* left out of the restart: not its verdict */
        any = true;
        if (st == KCW_STATE_FAILED) {
            any_failed = true;
            if (!m || m->left_failed || m->trace_hash != trace_hash(tr))
                *fresh_failed = true;
            if (!t->trace || *fresh_failed)
                set_trace(t, tr);
        } else if (m && st != KCW_STATE_UNKNOWN) {
            m->left_failed = true;
        }
        if (st != KCW_STATE_RUNNING) {
            all_running = false;
            if (other == KCW_STATE_UNKNOWN && st != KCW_STATE_FAILED)
                other = st;
        }
    }
    if (!any)
        return KCW_STATE_UNKNOWN; /* the task is gone from the status */
    if (any_failed)
        return KCW_STATE_FAILED;
    if (all_running)
        return KCW_STATE_RUNNING;
    /* The connector's own state first (PAUSED/STOPPED mean operator). */
    if (t->scope != KCW_SCOPE_TASK && cs->state != KCW_STATE_RUNNING)
        return cs->state;
    return other;
}

static bool target_idle(const target_t *t)
{
    return !t->in_flight && !t->policy.verifying && !track_has_history(&t->policy) &&
           t->policy.running_since_ms == 0;
}

static void observe_target(kcw_remediator_t *r, target_t *t, const kcw_cluster_status_t *status,
                           int64_t now)
{
    const kcw_remediation_conf_t *conf = r->conf;
    const kcw_connector_status_t *cs = kcw_cluster_status_find(status, t->connector);
    bool fresh = false;
    kcw_state_t state = target_state(t, cs, &fresh);
    bool was_verifying = t->policy.verifying;
    bool was_exhausted = t->policy.exhausted;
    if (was_verifying && fresh && state == KCW_STATE_FAILED)
        t->policy.saw_transition = true; /* a new trace is a new failure (§5.4) */
    bool transition = t->policy.saw_transition;
    int64_t ran_ms = t->policy.running_since_ms ? now - t->policy.running_since_ms : 0;
    kcw_restart_track_t before = t->policy;
    int ev = kcw_restart_policy_observe(&t->policy, conf, state, now);
    /* Stable-period clock started, verification settled...: kept for a
     * restart of kcwatch. Events save on their own. */
    if (ev < 0 && r->store && memcmp(&before, &t->policy, sizeof(before)) != 0)
        track_save(r, t);
    if (state == KCW_STATE_RUNNING)
        t->said = 0; /* healthy: the next failure's decisions are news */
    if (was_exhausted && !t->policy.exhausted) {
        t->exhausted_reported = false;
        snprintf(t->note, sizeof(t->note), "restarts resumed: budget has room again");
        kcw_log(KCW_LOG_INFO, "restart budget available again", "cluster", t->cluster_name,
                "connector", t->connector, NULL);
    }
    if (ev < 0)
        return;
    char at[96], d1[32], detail[NOTE_MAX];
    attempt_text(conf, t->policy.n_attempts, at, sizeof(at));
    const char *trace = NULL;
    switch (ev) {
    case KCW_REMEDIATION_RECOVERED:
        snprintf(detail, sizeof(detail), "recovered: RUNNING after restart (%s)", at);
        break;
    case KCW_REMEDIATION_FAILED:
        trace = t->trace;
        if (!was_verifying)
            snprintf(detail, sizeof(detail),
                     "restart did not hold: FAILED again after %s RUNNING, before the stable "
                     "period (%s)",
                     fmt_duration(ran_ms, d1, sizeof(d1)), at);
        else if (state == KCW_STATE_FAILED && transition)
            snprintf(detail, sizeof(detail), "restart failed: FAILED again after the restart (%s)",
                     at);
        else
            snprintf(detail, sizeof(detail),
                     "restart failed: not RUNNING within verify_timeout %s (%s)",
                     fmt_duration(conf->verify_timeout_ms, d1, sizeof(d1)), at);
        break;
    case KCW_REMEDIATION_STABLE:
        snprintf(detail, sizeof(detail), "stable: RUNNING for %s, restart counter reset",
                 fmt_duration(conf->stable_period_ms, d1, sizeof(d1)));
        break;
    default:
        return;
    }
    emit(r, t, (kcw_remediation_event_kind_t)ev, t->task, NULL, 0, detail, trace,
         t->policy.n_attempts);
}

void kcw_remediator_observe(kcw_remediator_t *r, size_t cluster_idx,
                            const kcw_cluster_status_t *status, int64_t now_ms)
{
    if (!r || !status)
        return;
    clock_set(r, now_ms);
    if (r->conf && kcw_storm_observe(r->storm, r->conf, status, now_ms) < 0)
        kcw_log(KCW_LOG_ERROR, "failure storm state not updated: out of memory", "cluster",
                status->name, NULL);
    for (size_t b = 0; b < r->n_buckets; b++) {
        target_t **link = &r->buckets[b];
        while (*link) {
            target_t *t = *link;
            bool mine = status->name ? strcmp(t->cluster_name, status->name) == 0
                                     : t->cluster == cluster_idx;
            if (!mine) {
                link = &t->next;
                continue;
            }
            t->cluster = cluster_idx;
            /* An unreachable cluster's model is old: judge nothing. */
            if (status->reachable)
                observe_target(r, t, status, now_ms);
            kcw_restart_policy_budget_used(&t->policy, r->conf, now_ms);
            bool gone = status->reachable && !kcw_cluster_status_find(status, t->connector);
            if (!t->in_flight && now_ms - t->last_seen_ms > TARGET_IDLE_MS &&
                (target_idle(t) || gone)) {
                *link = t->next;
                r->n_targets--;
                if (r->store)
                    kcw_store_track_delete(r->store, t->cluster_name, t->connector, t->task);
                target_free(t);
                continue;
            }
            link = &t->next;
        }
    }
}

static int exhausted_instance(const kcw_remediator_t *r, const target_t *t, kcw_instance_t *in)
{
    const kcw_remediation_conf_t *conf = r->conf;
    char task[16], w[32], line[TRACE_LINE_MAX], buf[2048];
    int rc = 0;
    memset(in, 0, sizeof(*in));
    rc |= kcw_labels_set(&in->labels, "alertname", "KcwatchRestartBudgetExhausted");
    rc |= kcw_labels_set(&in->labels, "cluster", t->cluster_name);
    rc |= kcw_labels_set(&in->labels, "connector", t->connector);
    if (t->task >= 0) {
        snprintf(task, sizeof(task), "%d", t->task);
        rc |= kcw_labels_set(&in->labels, "task", task);
    }
    rc |= kcw_labels_set(&in->labels, "severity", "critical");
    fmt_duration(conf->budget_window_ms, w, sizeof(w));
    if (t->task >= 0)
        snprintf(buf, sizeof(buf), "Restart budget exhausted for task %d of connector %s on %s",
                 t->task, t->connector, t->cluster_name);
    else
        snprintf(buf, sizeof(buf), "Restart budget exhausted for connector %s on %s", t->connector,
                 t->cluster_name);
    rc |= kcw_labels_set(&in->annotations, "summary", buf);
    trace_first_line(t->trace, line, sizeof(line));
    snprintf(buf, sizeof(buf),
             "kcwatch used its restart budget of %d restarts in %s on %s and it is still "
             "FAILED; automatic restarts stay stopped until it runs again.%s%s",
             budget_limit(conf), w, t->connector, line[0] ? " Last trace: " : "", line);
    rc |= kcw_labels_set(&in->annotations, "description", buf);
    in->value = (double)t->policy.n_attempts;
    if (t->trace && !(in->trace = strdup(t->trace)))
        rc = -ENOMEM;
    return rc ? -ENOMEM : 0;
}

static int exhausted_list(kcw_remediator_t *r, kcw_instance_t **out, size_t *n_out)
{
    size_t n = 0;
    for (size_t b = 0; b < r->n_buckets; b++)
        for (target_t *t = r->buckets[b]; t; t = t->next)
            if (t->policy.exhausted)
                n++;
    if (n == 0)
        return 0;
    kcw_instance_t *v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t i = 0;
    for (size_t b = 0; b < r->n_buckets; b++) {
        for (target_t *t = r->buckets[b]; t; t = t->next) {
            if (!t->policy.exhausted)
                continue;
            if (exhausted_instance(r, t, &v[i]) < 0) {
                for (size_t k = 0; k <= i; k++)
                    kcw_instance_clear(&v[k]);
                free(v);
                return -ENOMEM;
            }
            i++;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
}

int kcw_remediator_exhausted(kcw_remediator_t *r, kcw_instance_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!r)
        return 0;
    int rc = exhausted_list(r, out, n_out);
    if (rc == 0 && r->conf)
        rc = kcw_storm_alerts(r->storm, r->conf, out, n_out);
    if (rc < 0) {
        for (size_t i = 0; i < *n_out; i++)
            kcw_instance_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}

static bool target_healing(const kcw_remediator_t *r, const target_t *t, int64_t now_ms)
{
    if (!t)
        return false;
    const kcw_restart_track_t *p = &t->policy;
    if (t->in_flight || p->verifying)
        return true;
    return p->recovered && p->running_since_ms != 0 &&
           now_ms - p->running_since_ms < r->conf->verify_timeout_ms;
}

bool kcw_remediator_healing(kcw_remediator_t *r, const kcw_labels_t *alert_labels, int64_t now_ms)
{
    if (!r || !alert_labels || !r->conf)
        return false;
    const char *connector = kcw_labels_get(alert_labels, "connector");
    size_t cidx;
    const char *cname;
    if (!connector || !resolve_cluster(r, alert_labels, &cidx, &cname))
        return false;
    int task = parse_task(alert_labels);
    if (task >= 0 && target_healing(r, target_find(r, cname, connector, task), now_ms))
        return true;
    return target_healing(r, target_find(r, cname, connector, -1), now_ms);
}

const char *kcw_heal_state_name(kcw_heal_state_t s)
{
    switch (s) {
    case KCW_HEAL_NONE:
        return NULL;
    case KCW_HEAL_HEALING:
        return "healing";
    case KCW_HEAL_HEALED:
        return "healed";
    case KCW_HEAL_FAILED:
        return "failed";
    case KCW_HEAL_UNFIXABLE:
        return "unfixable";
    case KCW_HEAL_HELD:
        return "held";
    }
    return NULL;
}

static kcw_heal_state_t heal_state_of(const kcw_remediator_t *r, const target_t *t, int64_t now_ms)
{
    if (!t)
        return KCW_HEAL_NONE;
    if (t->policy.exhausted || (t->has_event && t->last_event == KCW_REMEDIATION_BUDGET_EXHAUSTED))
        return KCW_HEAL_FAILED;
    if (target_healing(r, t, now_ms))
        return KCW_HEAL_HEALING;
    if (t->held)
        return KCW_HEAL_HELD;
    if (!t->has_event)
        return KCW_HEAL_NONE;
    switch (t->last_event) {
    case KCW_REMEDIATION_UNRECOVERABLE:
        return KCW_HEAL_UNFIXABLE;
    case KCW_REMEDIATION_FAILED:
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
        return KCW_HEAL_FAILED;
    case KCW_REMEDIATION_RECOVERED:
    case KCW_REMEDIATION_STABLE:
        return KCW_HEAL_HEALED;
    case KCW_REMEDIATION_SENT:
    case KCW_REMEDIATION_RETRY:
        return KCW_HEAL_HEALING;
    case KCW_REMEDIATION_SKIPPED:
    case KCW_REMEDIATION_DRY_RUN:
        break;
    }
    return KCW_HEAL_NONE;
}

kcw_heal_state_t kcw_remediator_state(kcw_remediator_t *r, const kcw_labels_t *alert_labels,
                                      int64_t now_ms)
{
    if (!r || !alert_labels || !r->conf)
        return KCW_HEAL_NONE;
    const char *connector = kcw_labels_get(alert_labels, "connector");
    size_t cidx;
    const char *cname;
    if (!connector || !resolve_cluster(r, alert_labels, &cidx, &cname))
        return KCW_HEAL_NONE;
    int task = parse_task(alert_labels);
    kcw_heal_state_t s = KCW_HEAL_NONE;
    if (task >= 0)
        s = heal_state_of(r, target_find(r, cname, connector, task), now_ms);
    if (s == KCW_HEAL_NONE)
        s = heal_state_of(r, target_find(r, cname, connector, -1), now_ms);
    return s;
}

/* The target whose note speaks for an alert: its task's when that has one,
 * else its connector's. NULL when neither exists. */
static target_t *note_target(const kcw_remediator_t *r, const kcw_labels_t *alert_labels)
{
    if (!r || !alert_labels)
        return NULL;
    const char *connector = kcw_labels_get(alert_labels, "connector");
    size_t cidx;
    const char *cname;
    if (!connector || !resolve_cluster(r, alert_labels, &cidx, &cname))
        return NULL;
    int task = parse_task(alert_labels);
    target_t *t = task >= 0 ? target_find(r, cname, connector, task) : NULL;
    if (!t || !t->note[0])
        t = target_find(r, cname, connector, -1);
    return t;
}

const char *kcw_remediator_note(kcw_remediator_t *r, const kcw_labels_t *alert_labels)
{
    const target_t *t = note_target(r, alert_labels);
    return t && t->note[0] ? t->note : NULL;
}

static void target_view(const kcw_remediator_t *r, const target_t *t, int64_t now_ms,
                        kcw_remediation_view_t *v)
{
    const kcw_restart_track_t *p = &t->policy;
    int64_t window = r->conf ? r->conf->budget_window_ms : 0;
    /* Counted like kcw_restart_policy_budget_used, without dropping anything. */
    int first = 0;
    while (window > 0 && first < p->n_attempts && p->attempts_ms[first] <= now_ms - window)
        first++;
    *v = (kcw_remediation_view_t){
        .cluster = t->cluster_name,
        .connector = t->connector,
        .task = t->task,
        .note = t->note,
        .has_event = t->has_event,
        .last_event = t->last_event,
        .healing = target_healing(r, t, now_ms),
        .exhausted = p->exhausted,
        .budget_used = p->n_attempts - first,
        .budget_max = r->conf ? budget_limit(r->conf) : 0,
        .budget_window_ms = window,
        .budget_room_ms = window > 0 && first < p->n_attempts ? p->attempts_ms[first] + window : 0,
    };
}

bool kcw_remediator_view(const kcw_remediator_t *r, const kcw_labels_t *alert_labels,
                         int64_t now_ms, kcw_remediation_view_t *out)
{
    const target_t *t = note_target(r, alert_labels);
    if (!t)
        return false;
    target_view(r, t, now_ms, out);
    return true;
}

size_t kcw_remediator_each(const kcw_remediator_t *r, int64_t now_ms,
                           int (*cb)(const kcw_remediation_view_t *v, void *arg), void *arg)
{
    size_t n = 0;
    for (size_t b = 0; r && b < r->n_buckets; b++)
        for (const target_t *t = r->buckets[b]; t; t = t->next) {
            kcw_remediation_view_t v;
            target_view(r, t, now_ms, &v);
            n++;
            if (cb(&v, arg))
                return n;
        }
    return n;
}

void kcw_remediator_sources(kcw_remediator_t *r, const kcw_alert_t *const *alerts, size_t n)
{
    if (r && r->hold && kcw_inhibitor_update(r->hold, alerts, n) < 0)
        kcw_log(KCW_LOG_ERROR, "remediation.inhibit holds nothing this round: out of memory",
                NULL);
}

size_t kcw_remediator_in_flight(const kcw_remediator_t *r)
{
    return r ? r->in_flight : 0;
}

void kcw_remediator_free(kcw_remediator_t *r)
{
    if (!r)
        return;
    /* Replies still owed by the connect client find their action cancelled
     * and free it; nothing here is touched after this returns. */
    while (r->actions) {
        action_t *a = r->actions;
        action_unlink(r, a);
        a->cancelled = true;
        a->r = NULL;
        a->t = NULL;
        action_unref(a);
    }
    for (size_t b = 0; b < r->n_buckets; b++) {
        target_t *t = r->buckets[b];
        while (t) {
            target_t *next = t->next;
            target_free(t);
            t = next;
        }
    }
    free(r->buckets);
    for (size_t i = 0; i < r->n_clusters; i++) {
        free(r->clusters[i].name);
        free(r->clusters[i].legacy_version);
    }
    free(r->clusters);
    compiled_clear(r);
    kcw_storm_free(r->storm);
    kcw_inhibitor_free(r->hold);
    free(r);
}
