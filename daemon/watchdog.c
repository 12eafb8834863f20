/* watchdog.c: the daemon's wiring on one libuv loop (see watchdog.h).
 *
 * What to evaluate, when, and what follows from it is the engine's
 * (engine.h); this file connects it to the world. Poll results enter through
 * on_poll(): the remediator sees every poll (to verify restarts and time
 * stable periods), and a changed status goes to the engine at once, so a
 * FAILED task is noticed within one poll. One uv_timer per rule group ticks
 * the engine on the group's schedule; the queries a tick asks for go to
 * Prometheus and their answers back to the engine. The engine's hooks land
 * here: restarts to the remediator, alerts to the notifier, transitions and
 * rule health to the log. Reload builds a new generation (config, rules,
 * engine, Connect client, timers) whose engine takes the alert states over;
 * the old one is retired once its handles are closed.
 *
 * The state store (store.h, in global.state_dir) makes all of it survive a
 * restart: at start the engine gets its saved alert states back and the
 * remediator and notifier load theirs; every poll and every group round is
 * one store transaction, holding the alert states that changed in it
 * (engine state hook), the remediator's decisions and the notifier's
 * outbox. A snapshot of every alert state every ALERT_SNAPSHOT_MS also
 * forgets alerts that left their sets.
 *
 * With ha.etcd (ha.h) several instances share the clusters: every instance
 * polls and evaluates everything, but the restart, notify and flush hooks
 * pass on only what this instance owns right now (ha_may_act), every
 * restart waits for the etcd txn that checks ownership (ha_permit), and a
 * cluster given up leaves the notifier silently (on_ha_change). */
#include "kcwatch/watchdog.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/admin.h"
#include "kcwatch/api.h"
#include "kcwatch/connect.h"
#include "kcwatch/engine.h"
#include "kcwatch/ha.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/metrics.h"
#include "kcwatch/notify.h"
#include "kcwatch/prom.h"
#include "kcwatch/remediate.h"
#include "kcwatch/sdnotify.h"
#include "kcwatch/silence.h"
#include "kcwatch/silence_api.h"
#include "kcwatch/store.h"

#define STORE_PRUNE_MS (60 * 60 * 1000)     /* audit retention pruning */
#define ALERT_SNAPSHOT_MS (10 * 60 * 1000) /* full alert-state snapshot */
#define RULE_KEY_SEP '\x1f'                 /* group SEP alertname in the store */

struct generation;

typedef struct group_timer group_timer_t;

/* One query of a group round in flight: where its answer goes. */
typedef struct query_ctx {
    group_timer_t *gt;
    size_t qi;
    uint64_t sent_ns;
} query_ctx_t;

struct group_timer {
    uv_timer_t timer;
    struct generation *gen;
    size_t gi;
    query_ctx_t *queries; /* allocated once: callbacks point at them */
    size_t n_queries;
    size_t pending; /* answers still out, +1 while queries are being sent */
    bool cancelled; /* a query came back cancelled: drop the round */
};

/* One configuration generation: config, rules, the engine evaluating them and
 * the Connect client polling with them. Retired generations live until their
 * handles are closed. */
typedef struct generation {
    kcw_watchdog_t *wd;
    kcw_config_t *cfg;
    kcw_ruleset_t *rules;
    kcw_engine_t *engine;
    kcw_connect_t *cn;
    kcw_prom_t *prom;
    bool running; /* timers initialised, client started */
    bool retired;
    group_timer_t *timers;
    size_t n_timers;
    int closing; /* handles still to close */
} generation_t;

struct kcw_watchdog {
    uv_loop_t *loop;
    generation_t *gen;
    kcw_http_t *http;
    kcw_remediator_t *rem;
    kcw_notifier_t *notifier;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t notify_soon; /* delivers remediation news without waiting for a round */
    kcw_admin_t *admin;
    kcw_store_t *store;
    kcw_silences_t *silences;      /* the config's and the API's */
    kcw_silence_api_t silence_api; /* /api/v2/silences */
    uv_timer_t snapshot;
    bool snapshot_on;
    kcw_metrics_t *metrics;
    kcw_sdnotify_t *sd;
    kcw_ha_t *ha;          /* NULL: no ha.etcd, or stopping */
    bool ha_enabled;       /* ha.etcd configured: without ha, act for nothing */
    int64_t ha_bad_since_ms; /* no valid lease since (0: it is valid); the alert waits a TTL */
    bool started, stopping, ready;
    bool reload_ok;
    int64_t reload_ok_ms;
    int retiring; /* generations still closing */
};

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- ownership (ha.h) ----------------------------------------------------- */

/* The ownership key an alert's actions fall under: its cluster label when
 * that names a configured cluster; else the only cluster, as the remediator
 * reads a missing label; else the PromQL pseudo-cluster. */
static const char *ha_key_of(const kcw_watchdog_t *wd, const kcw_labels_t *labels)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    const char *cluster = kcw_labels_get(labels, "cluster");
    for (size_t i = 0; cluster && i < cfg->n_clusters; i++)
        if (strcmp(cfg->clusters[i].name, cluster) == 0)
            return cfg->clusters[i].name;
    if (!cluster && cfg->n_clusters == 1)
        return cfg->clusters[0].name;
    return KCW_HA_PROMQL_KEY;
}

/* Whether this instance restarts and notifies for an alert with these
 * labels. Everyone reports its own lost lease. */
static bool ha_may_act(const kcw_watchdog_t *wd, const kcw_labels_t *labels)
{
    if (!wd->ha_enabled)
        return true;
    if (!wd->ha || !wd->gen)
        return false;
    const char *name = kcw_labels_get(labels, "alertname");
    if (name && strcmp(name, KCW_HA_ALERT) == 0)
        return true;
    return kcw_ha_owns(wd->ha, ha_key_of(wd, labels));
}

static bool ha_not_mine(const kcw_alert_t *a, void *arg)
{
    return !ha_may_act(arg, &a->labels);
}

/* Clusters plus, with several, the PromQL pseudo-cluster. */
static int ha_keys_set(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    const char **keys = calloc(cfg->n_clusters + 1, sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_clusters; i++)
        keys[n++] = cfg->clusters[i].name;
    if (cfg->n_clusters > 1)
        keys[n++] = KCW_HA_PROMQL_KEY;
    int rc = kcw_ha_set_keys(wd->ha, keys, n);
    free(keys);
    return rc;
}

static const kcw_cluster_status_t **cluster_views(generation_t *g, size_t *n);

/* What this instance may act for changed: notifications of clusters it
 * gave up must not leave from here, not even as "resolved". */
static void on_ha_change(void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier)
        kcw_notifier_forget(wd->notifier, ha_not_mine, wd);
    /* Taken over: act on what is failing now rather than at the next round
     * (same inputs, so the same transitions; restarts go out at once). */
    if (wd->gen && wd->gen->cn && !wd->stopping) {
        size_t n;
        const kcw_cluster_status_t **clusters = cluster_views(wd->gen, &n);
        if (clusters)
            kcw_engine_connect_changed(wd->gen->engine, clusters, n, wall_now_ms());
        free(clusters);
    }
}

/* The remediator's gate: the etcd txn comparing the ownership key's lease,
 * recording the restart with it. */
static int ha_permit(void *arg, const char *cluster, const char *connector, int task,
                     const char *request, kcw_remediation_permit_done done, void *token)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->ha)
        return -ENODEV;
    json_t *rec = json_pack("{s:s,s:s,s:s,s:i,s:s,s:I}", "instance", kcw_ha_instance(wd->ha),
                            "cluster", cluster, "connector", connector, "task", task, "request",
                            request ? request : "", "at_ms", (json_int_t)wall_now_ms());
    char *what = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!what)
        return -ENOMEM;
    int rc = kcw_ha_permit(wd->ha, cluster, what, done, token);
    free(what);
    return rc;
}

/* What reached a receiver, recorded in etcd for whoever takes over next. */
static void on_notify_log(const kcw_store_group_t *row, void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->ha)
        return;
    char *text = kcw_notify_log_encode(row);
    char name[1024];
    snprintf(name, sizeof(name), "%s\n%s", row->receiver, row->group_key);
    int rc = text ? kcw_ha_record(wd->ha, name, text) : -ENOMEM;
    if (rc < 0 && rc != -EAGAIN)
        kcw_log(KCW_LOG_WARN, "ha: notification log not recorded", "group", row->group_key,
                "error", strerror(-rc), NULL);
    free(text);
}

/* Clusters just taken over: what the instances before sent is not sent
 * again. A log older than the repeat interval (and an hour) is stale: had
 * its alerts still fired, they would have been notified since. */
static void on_ha_handover(void *arg, const char *const *records, size_t n)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->notifier || !wd->gen)
        return;
    int64_t max_age = wd->gen->cfg->route.repeat_interval_ms + 60 * 60 * 1000;
    size_t adopted = kcw_notifier_adopt_records(wd->notifier, records, n, max_age, wall_now_ms());
    char count[24];
    snprintf(count, sizeof(count), "%zu", adopted);
    kcw_log(KCW_LOG_INFO, "ha: notification logs taken over", "groups", count, NULL);
}

/* KcwatchEtcdUnavailable: this instance has held no valid lease for a TTL
 * (since it joined, or since it lost it), so it acts for nothing. */
static int ha_alert_instance(kcw_watchdog_t *wd, kcw_instance_t *in)
{
    memset(in, 0, sizeof(*in));
    const kcw_ha_conf_t *hc = &wd->gen->cfg->ha;
    char buf[768];
    int rc = 0;
    rc |= kcw_labels_set(&in->labels, "alertname", KCW_HA_ALERT);
    rc |= kcw_labels_set(&in->labels, "kcwatch_instance", kcw_ha_instance(wd->ha));
    rc |= kcw_labels_set(&in->labels, "severity", "critical");
    snprintf(buf, sizeof(buf), "kcwatch instance %s cannot renew its etcd lease",
             kcw_ha_instance(wd->ha));
    rc |= kcw_labels_set(&in->annotations, "summary", buf);
    snprintf(buf, sizeof(buf),
             "kcwatch instance %s has no valid lease on etcd (%s, prefix %s): it stopped "
             "restarting and notifying for every cluster; instances that reach etcd take its "
             "clusters over within the lease TTL. Last error: %s",
             kcw_ha_instance(wd->ha), hc->endpoints[0], hc->prefix, kcw_ha_error(wd->ha));
    rc |= kcw_labels_set(&in->annotations, "description", buf);
    in->value = 1;
    return rc ? -ENOMEM : 0;
}

/* --- engine hooks -------------------------------------------------------- */

static void hook_restart(void *arg, const kcw_rule_t *rule, const kcw_alert_t *alert,
                         int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    /* Nothing is restarted from a model the last poll could not refresh. */
    const char *cluster = kcw_labels_get(&alert->labels, "cluster");
    int ci = cluster && wd->gen ? kcw_connect_cluster_index(wd->gen->cn, cluster) : -1;
    const kcw_cluster_status_t *cs = ci >= 0 ? kcw_connect_cluster(wd->gen->cn, (size_t)ci) : NULL;
    if (cs && cs->reachable && !cs->readable)
        return;
    if (wd->rem && ha_may_act(wd, &alert->labels))
        kcw_remediator_consider(wd->rem, rule, alert, now_ms);
}

/* The budget alert's instances, and the lost-lease alert's. */
static int hook_budget(void *arg, kcw_instance_t **out, size_t *n_out)
{
    kcw_watchdog_t *wd = arg;
    int rc = wd->rem ? kcw_remediator_exhausted(wd->rem, out, n_out) : -ENODEV;
    if (!wd->ha || kcw_ha_lease_ok(wd->ha)) {
        wd->ha_bad_since_ms = 0;
        return rc;
    }
    /* A lease regained within a TTL (joining, a short pause) pages nobody. */
    int64_t now = wall_now_ms();
    if (wd->ha_bad_since_ms == 0)
        wd->ha_bad_since_ms = now;
    if (rc < 0 || now - wd->ha_bad_since_ms < wd->gen->cfg->ha.ttl_ms)
        return rc;
    kcw_instance_t *more = realloc(*out, (*n_out + 1) * sizeof(*more));
    if (!more)
        return rc; /* the budget instances still count */
    *out = more;
    if (ha_alert_instance(wd, &more[*n_out]) < 0) {
        kcw_instance_clear(&more[*n_out]);
        return rc;
    }
    (*n_out)++;
    return rc;
}

static const char *hook_note(void *arg, const kcw_labels_t *labels)
{
    kcw_watchdog_t *wd = arg;
    return wd->rem ? kcw_remediator_note(wd->rem, labels) : NULL;
}

static void hook_sources(void *arg, const kcw_alert_t *const *alerts, size_t n, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    (void)now_ms;
    kcw_remediator_sources(wd->rem, alerts, n);
}

static const char *hook_heal_state(void *arg, const kcw_labels_t *labels, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    return wd->rem ? kcw_heal_state_name(kcw_remediator_state(wd->rem, labels, now_ms)) : NULL;
}

static bool hook_healing(void *arg, const kcw_labels_t *labels, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    return wd->rem && kcw_remediator_healing(wd->rem, labels, now_ms);
}

static void hook_notify(void *arg, const kcw_alert_t *const *alerts, size_t n, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier && !wd->ha) {
        kcw_notifier_update(wd->notifier, alerts, n, now_ms);
    } else if (wd->notifier) {
        /* Only what this instance owns; what it gave up leaves the notifier
         * silently first, so it is not taken for resolved. */
        kcw_notifier_forget(wd->notifier, ha_not_mine, wd);
        const kcw_alert_t **mine = calloc(n ? n : 1, sizeof(*mine));
        size_t m = 0;
        for (size_t i = 0; mine && i < n; i++)
            if (ha_may_act(wd, &alerts[i]->labels))
                mine[m++] = alerts[i];
        if (mine)
            kcw_notifier_update(wd->notifier, mine, m, now_ms);
        else
            kcw_log(KCW_LOG_ERROR, "notification update skipped: out of memory", NULL);
        free(mine);
    }
    /* What `systemctl status` shows; sent only when it changes. */
    size_t firing = 0;
    for (size_t i = 0; i < n; i++)
        firing += alerts[i]->state == KCW_ALERT_FIRING;
    char status[160];
    int len = snprintf(status, sizeof(status), "watching %zu cluster(s); %zu alert(s) firing",
                       wd->gen && wd->gen->cn ? kcw_connect_cluster_count(wd->gen->cn) : 0,
                       firing);
    if (wd->ha && len > 0 && (size_t)len < sizeof(status)) {
        size_t owned = 0;
        for (size_t i = 0; i < kcw_ha_key_count(wd->ha); i++)
            owned += kcw_ha_owns(wd->ha, kcw_ha_key(wd->ha, i));
        snprintf(status + len, sizeof(status) - (size_t)len, "; acting for %zu (%s)", owned,
                 kcw_ha_lease_ok(wd->ha) ? "etcd lease held" : "no etcd lease");
    }
    kcw_sdnotify_status(wd->sd, status);
}

static void hook_flush(void *arg, const kcw_labels_t *labels)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier && ha_may_act(wd, labels))
        kcw_notifier_flush_for(wd->notifier, labels);
}

static void hook_refresh(void *arg, const kcw_labels_t *labels)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier && ha_may_act(wd, labels))
        kcw_notifier_refresh_for(wd->notifier, labels);
}

/* The moment of detection, visible without a receiver. */
static void hook_transition(void *arg, const kcw_alert_t *a, const char *what, int64_t now_ms)
{
    (void)arg;
    const char *task = kcw_labels_get(&a->labels, "task");
    const char *state = kcw_labels_get(&a->labels, "state");
    const char *worker = kcw_labels_get(&a->labels, "worker_id");
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)now_ms);
    kcw_log(a->state == KCW_ALERT_FIRING ? KCW_LOG_WARN : KCW_LOG_INFO, what, "alertname",
            kcw_labels_get(&a->labels, "alertname"), "cluster",
            kcw_labels_get(&a->labels, "cluster"), "connector",
            kcw_labels_get(&a->labels, "connector"), "task", task ? task : "", "state",
            state ? state : "", "worker_id", worker ? worker : "", "eval_ms", at, NULL);
}

/* "group<SEP>alertname" (budget alert: "<SEP>alertname") into buf. */
static const char *rule_key(const kcw_rule_group_t *group, const char *alertname, char *buf,
                            size_t n)
{
    snprintf(buf, n, "%s%c%s", group ? group->name : "", RULE_KEY_SEP,
             alertname ? alertname : "");
    return buf;
}

/* An alert's state changed in this round: saved in the round's transaction. */
static void hook_state(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                       const kcw_alert_t *alert, int64_t now_ms)
{
    (void)now_ms;
    kcw_watchdog_t *wd = arg;
    if (!wd->store)
        return;
    char key[512];
    kcw_store_alert_put(wd->store,
                        rule_key(group, rule ? rule->alert : KCW_ENGINE_BUDGET_ALERT, key,
                                 sizeof(key)),
                        alert);
}

/* A pending alert went away: its saved activeAt must not come back. */
static void hook_gone(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                      const kcw_labels_t *labels)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->store)
        return;
    char key[512];
    kcw_store_alert_delete(wd->store, rule_key(group, rule->alert, key, sizeof(key)), labels);
}

static void hook_health(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                        const char *error, int64_t now_ms)
{
    (void)arg;
    (void)now_ms;
    if (error)
        kcw_log(KCW_LOG_WARN, "rule evaluation failed", "rule", rule->alert, "group", group->name,
                "error", error, NULL);
    else
        kcw_log(KCW_LOG_INFO, "rule evaluation recovered", "rule", rule->alert, "group",
                group->name, NULL);
}

static void hook_evaluated(void *arg, const kcw_rule_group_t *group, size_t failed,
                           double seconds, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    const char *l[] = {"group", group->name, NULL};
    kcw_metrics_add(wd->metrics, "kcwatch_rule_evaluations_total", l, 1);
    kcw_metrics_add(wd->metrics, "kcwatch_rule_evaluation_failures_total", l, (double)failed);
    kcw_metrics_observe(wd->metrics, "kcwatch_rule_evaluation_duration_seconds", l, seconds);
    kcw_metrics_set(wd->metrics, "kcwatch_rule_group_last_evaluation_timestamp_seconds", l,
                    (double)now_ms / 1000.0);
}

/* --- rounds -------------------------------------------------------------- */

/* The clusters as the engine takes them; free() the array. */
static const kcw_cluster_status_t **cluster_views(generation_t *g, size_t *n)
{
    *n = g->cn ? kcw_connect_cluster_count(g->cn) : 0;
    const kcw_cluster_status_t **v = calloc(*n ? *n : 1, sizeof(*v));
    if (!v) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        v[i] = kcw_connect_cluster(g->cn, i);
    return v;
}

static void round_done(group_timer_t *gt)
{
    generation_t *g = gt->gen;
    kcw_watchdog_t *wd = g->wd;
    bool current = !wd->stopping && wd->gen == g && !g->retired && !gt->cancelled;
    gt->cancelled = false;
    if (!current) {
        kcw_engine_group_cancel(g->engine, gt->gi);
        return;
    }
    kcw_store_begin(wd->store); /* the round: one transaction */
    kcw_engine_group_finish(g->engine, gt->gi, wall_now_ms());
    kcw_store_commit(wd->store);
    wd->ready = true;
}

static void on_query_done(kcw_prom_result_t *result, const kcw_prom_error_t *error, void *arg)
{
    query_ctx_t *q = arg;
    group_timer_t *gt = q->gt;
    generation_t *g = gt->gen;
    kcw_metrics_t *m = g->wd->metrics;
    if (!error || error->kind != KCW_PROM_ERR_CANCELLED) {
        const char *l[] = {"result", result ? "success" : "error", NULL};
        kcw_metrics_add(m, "kcwatch_prometheus_queries_total", l, 1);
        kcw_metrics_observe(m, "kcwatch_prometheus_query_duration_seconds", NULL,
                            (double)(uv_hrtime() - q->sent_ns) / 1e9);
        /* A query Prometheus rejected still means it answered. */
        kcw_metrics_set(m, "kcwatch_prometheus_up", NULL,
                        result || error->kind == KCW_PROM_ERR_QUERY ? 1 : 0);
    }
    if (result) {
        for (size_t w = 0; w < result->n_warnings; w++)
            kcw_log(KCW_LOG_DEBUG, "query warning", "expr",
                    kcw_engine_query_expr(g->engine, gt->gi, q->qi), "warning",
                    result->warnings[w], NULL);
        kcw_engine_group_result(g->engine, gt->gi, q->qi, result, NULL);
        kcw_prom_result_free(result);
    } else {
        if (error->kind == KCW_PROM_ERR_CANCELLED)
            gt->cancelled = true;
        kcw_engine_group_result(g->engine, gt->gi, q->qi, NULL, error->msg);
    }
    if (--gt->pending == 0)
        round_done(gt);
}

static void on_group_timer(uv_timer_t *t)
{
    group_timer_t *gt = t->data;
    generation_t *g = gt->gen;
    kcw_watchdog_t *wd = g->wd;
    if (wd->stopping || wd->gen != g)
        return;
    size_t n_clusters, n_queries;
    const kcw_cluster_status_t **clusters = cluster_views(g, &n_clusters);
    int rc = kcw_engine_group_begin(g->engine, gt->gi, clusters, n_clusters, wall_now_ms(),
                                    &n_queries);
    free(clusters);
    if (rc == -EBUSY) {
        kcw_log(KCW_LOG_WARN, "group evaluation skipped: the previous one is still running",
                "group", kcw_engine_group(g->engine, gt->gi)->name, NULL);
        return;
    }
    if (rc < 0)
        return;
    gt->pending = n_queries + 1; /* +1: no callback completes the round early */
    int64_t at = kcw_engine_query_time_ms(g->engine, gt->gi);
    for (size_t qi = 0; qi < n_queries && qi < gt->n_queries; qi++) {
        const char *expr = kcw_engine_query_expr(g->engine, gt->gi, qi);
        gt->queries[qi].sent_ns = uv_hrtime();
        rc = g->prom ? kcw_prom_query(g->prom, expr, at, on_query_done, &gt->queries[qi])
                     : -ENOTCONN;
        if (rc < 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "query not sent: %s", strerror(-rc));
            kcw_engine_group_result(g->engine, gt->gi, qi, NULL, msg);
            gt->pending--;
        }
    }
    if (--gt->pending == 0)
        round_done(gt);
}

static void on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (wd->stopping || !wd->gen || cn != wd->gen->cn)
        return;
    int64_t now = wall_now_ms();
    const kcw_cluster_status_t *status = kcw_connect_cluster(cn, idx);
    kcw_store_begin(wd->store); /* the poll: one transaction */
    /* A stale model of a cluster that answered must not verify or judge restarts. */
    if (status->readable || !status->reachable)
        kcw_remediator_observe(wd->rem, idx, status, now);
    const char *l[] = {"cluster", status->name, NULL};
    if (status->poll_started_ms > 0 && status->last_poll_ms >= status->poll_started_ms)
        kcw_metrics_observe(wd->metrics, "kcwatch_connect_poll_duration_seconds", l,
                            (double)(status->last_poll_ms - status->poll_started_ms) / 1000.0);
    const char *lr[] = {"cluster", status->name, "result",
                        status->reachable && status->readable ? "success" : "error", NULL};
    kcw_metrics_add(wd->metrics, "kcwatch_connect_polls_total", lr, 1);
    /* An unchanged body still matters when reachability flipped; the client
     * reports that as changed too. Unchanged: the group timers keep time. */
    if (!changed) {
        kcw_store_commit(wd->store);
        return;
    }
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)now);
    kcw_log(KCW_LOG_DEBUG, "connect status changed", "cluster", status->name, "eval_ms", at, NULL);
    size_t n;
    const kcw_cluster_status_t **clusters = cluster_views(wd->gen, &n);
    kcw_engine_connect_changed(wd->gen->engine, clusters, n, now);
    kcw_store_commit(wd->store);
    free(clusters);
    wd->ready = true;
}

static void on_notify_soon(uv_timer_t *t)
{
    kcw_watchdog_t *wd = t->data;
    if (!wd->stopping && wd->gen && kcw_engine_news_pending(wd->gen->engine))
        kcw_engine_notify(wd->gen->engine, wall_now_ms());
}

static void on_remediation(const kcw_remediation_event_t *ev, void *arg)
{
    kcw_watchdog_t *wd = arg;
    const char *cluster = ev->cluster ? ev->cluster : "";
    const char *le[] = {"cluster", cluster, "event", kcw_remediation_event_name(ev->kind), NULL};
    kcw_metrics_add(wd->metrics, "kcwatch_remediation_events_total", le, 1);
    const char *result = ev->kind == KCW_REMEDIATION_SENT        ? "sent"
                         : ev->kind == KCW_REMEDIATION_DRY_RUN   ? "dry_run"
                         : ev->kind == KCW_REMEDIATION_RECOVERED ? "recovered"
                         : ev->kind == KCW_REMEDIATION_FAILED    ? "failed"
                                                                 : NULL;
    if (result) {
        const char *lr[] = {"cluster", cluster, "result", result, NULL};
        kcw_metrics_add(wd->metrics, "kcwatch_restarts_total", lr, 1);
    }
    /* Each of these changes what the alert's notification should say. A
     * refusal needs a human now: its group goes out without waiting for
     * group_wait. A restart sent does not: a group not yet notified keeps
     * its group_wait, so a blip that a restart fixes pages nobody early. */
    bool urgent = ev->kind == KCW_REMEDIATION_UNRECOVERABLE ||
                  ev->kind == KCW_REMEDIATION_BUDGET_EXHAUSTED ||
                  ev->kind == KCW_REMEDIATION_SKIPPED || ev->kind == KCW_REMEDIATION_DRY_RUN;
    if (!urgent && ev->kind != KCW_REMEDIATION_SENT)
        return;
    if (!wd->gen)
        return;
    int rc = urgent ? kcw_engine_remediation_news(wd->gen->engine, ev->cluster, ev->connector,
                                                  ev->task)
                    : kcw_engine_remediation_update(wd->gen->engine, ev->cluster,
                                                    ev->connector, ev->task);
    if (rc < 0)
        return;
    /* Events can arrive from inside a round; notify from a fresh stack. */
    if (wd->started && !wd->stopping)
        uv_timer_start(&wd->notify_soon, on_notify_soon, 0, 0);
}

static void on_notify_event(const char *receiver, const char *group_key, bool ok,
                            long http_status, const char *detail, void *arg)
{
    (void)group_key;
    (void)http_status;
    (void)detail;
    kcw_watchdog_t *wd = arg;
    const char *l[] = {"receiver", receiver, "result", ok ? "success" : "failure", NULL};
    kcw_metrics_add(wd->metrics, "kcwatch_notifications_total", l, 1);
}

/* --- self-metrics -------------------------------------------------------- */

static void count_alerts(kcw_metrics_t *m, const kcw_alert_set_t *set)
{
    size_t n = set ? kcw_alert_set_count(set) : 0;
    for (size_t i = 0; i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a->state == KCW_ALERT_INACTIVE)
            continue;
        const char *l[] = {"alertname", kcw_labels_get(&a->labels, "alertname"), "state",
                           kcw_alert_state_name(a->state), NULL};
        double v = kcw_metrics_value(m, "kcwatch_alerts", l);
        kcw_metrics_set(m, "kcwatch_alerts", l, isnan(v) ? 1 : v + 1);
    }
}

/* The figures read at scrape time rather than counted as they happen. */
static void metrics_refresh(kcw_watchdog_t *wd)
{
    kcw_metrics_t *m = wd->metrics;
    generation_t *g = wd->gen;
    kcw_metrics_clear(m, "kcwatch_alerts");
    for (size_t i = 0; g && i < kcw_engine_rule_count(g->engine); i++)
        count_alerts(m, kcw_engine_rule_alerts(g->engine, i));
    if (g)
        count_alerts(m, kcw_engine_budget_alerts(g->engine));
    kcw_metrics_clear(m, "kcwatch_connect_up");
    kcw_metrics_clear(m, "kcwatch_connect_last_poll_timestamp_seconds");
    for (size_t i = 0; g && g->cn && i < kcw_connect_cluster_count(g->cn); i++) {
        const kcw_cluster_status_t *st = kcw_connect_cluster(g->cn, i);
        const char *l[] = {"cluster", st->name, NULL};
        kcw_metrics_set(m, "kcwatch_connect_up", l,
                        st->last_poll_ms && st->reachable && st->readable ? 1 : 0);
        if (st->last_poll_ms)
            kcw_metrics_set(m, "kcwatch_connect_last_poll_timestamp_seconds", l,
                            (double)st->last_poll_ms / 1000.0);
    }
    if (wd->notifier) {
        kcw_metrics_set(m, "kcwatch_notification_queue_length", NULL,
                        (double)kcw_notifier_queue_length(wd->notifier));
        kcw_metrics_set(m, "kcwatch_notifications_expired_total", NULL,
                        (double)kcw_notifier_expired_total(wd->notifier));
    }
    kcw_metrics_set(m, "kcwatch_state_store_durable", NULL,
                    kcw_store_durable(wd->store) ? 1 : 0);
    kcw_metrics_set(m, "kcwatch_config_last_reload_successful", NULL, wd->reload_ok ? 1 : 0);
    kcw_metrics_set(m, "kcwatch_config_last_reload_success_timestamp_seconds", NULL,
                    (double)wd->reload_ok_ms / 1000.0);
    kcw_metrics_set(m, "kcwatch_ready", NULL, wd->ready ? 1 : 0);
    kcw_metrics_clear(m, "kcwatch_ha_owner");
    for (size_t i = 0; i < kcw_ha_key_count(wd->ha); i++) {
        const char *l[] = {"cluster", kcw_ha_key(wd->ha, i), NULL};
        kcw_metrics_set(m, "kcwatch_ha_owner", l,
                        kcw_ha_owns(wd->ha, kcw_ha_key(wd->ha, i)) ? 1 : 0);
    }
    if (wd->ha)
        kcw_metrics_set(m, "kcwatch_ha_lease_renewals_total", NULL,
                        (double)kcw_ha_renewals(wd->ha));
    kcw_process_stats_t ps;
    if (kcw_metrics_process_read(&ps) == 0) {
        kcw_metrics_set(m, "process_cpu_seconds_total", NULL, ps.cpu_seconds);
        kcw_metrics_set(m, "process_resident_memory_bytes", NULL, ps.resident_bytes);
        kcw_metrics_set(m, "process_virtual_memory_bytes", NULL, ps.virtual_bytes);
        kcw_metrics_set(m, "process_open_fds", NULL, ps.open_fds);
        kcw_metrics_set(m, "process_max_fds", NULL, ps.max_fds);
        kcw_metrics_set(m, "process_start_time_seconds", NULL, ps.start_time_seconds);
    }
}

/* --- generations --------------------------------------------------------- */

static void generation_free(generation_t *g)
{
    if (!g)
        return;
    kcw_engine_free(g->engine);
    for (size_t i = 0; i < g->n_timers; i++)
        free(g->timers[i].queries);
    free(g->timers);
    kcw_ruleset_free(g->rules);
    kcw_config_free(g->cfg);
    free(g);
}

static void generation_closed_one(generation_t *g)
{
    if (--g->closing > 0)
        return;
    kcw_watchdog_t *wd = g->wd;
    generation_free(g);
    wd->retiring--;
}

static void on_cn_closed(void *arg)
{
    generation_closed_one(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    generation_closed_one(h->data);
}

/* Builds a generation's engine (taking alert states over from prev) and its
 * group timers' query contexts; nothing runs yet. */
static int generation_build(kcw_watchdog_t *wd, generation_t *g, generation_t *prev)
{
    kcw_engine_opts_t opts = {.default_interval_ms = g->cfg->evaluation_interval_ms,
                              .spread = true,
                              .external_labels = &g->cfg->external_labels};
    kcw_engine_hooks_t hooks = {.arg = wd,
                                .restart = hook_restart,
                                .budget = hook_budget,
                                .note = hook_note,
                                .healing = hook_healing,
                                .heal_state = hook_heal_state,
                                .sources = hook_sources,
                                .notify = hook_notify,
                                .flush = hook_flush,
                                .refresh = hook_refresh,
                                .transition = hook_transition,
                                .state = hook_state,
                                .gone = hook_gone,
                                .health = hook_health,
                                .evaluated = hook_evaluated,
                                .hrtime = uv_hrtime};
    size_t n = g->rules->n_groups;
    g->timers = calloc(n ? n : 1, sizeof(*g->timers));
    if (!g->timers)
        return -ENOMEM;
    g->n_timers = n;
    for (size_t gi = 0; gi < n; gi++) {
        group_timer_t *gt = &g->timers[gi];
        gt->gen = g;
        gt->gi = gi;
        size_t nq = 0;
        for (size_t r = 0; r < g->rules->groups[gi].n_rules; r++)
            nq += g->rules->groups[gi].rules[r].connect == NULL;
        gt->queries = calloc(nq ? nq : 1, sizeof(*gt->queries));
        if (!gt->queries)
            return -ENOMEM;
        gt->n_queries = nq;
        for (size_t qi = 0; qi < nq; qi++)
            gt->queries[qi] = (query_ctx_t){.gt = gt, .qi = qi};
    }
    /* Last: on success the engine has taken prev's alert states. */
    g->engine = kcw_engine_new(g->rules, &opts, &hooks, prev ? prev->engine : NULL, wall_now_ms());
    return g->engine ? 0 : -ENOMEM;
}

static int generation_start(kcw_watchdog_t *wd, generation_t *g)
{
    g->cn = kcw_connect_new(wd->loop, wd->http, g->cfg, on_poll, wd);
    if (!g->cn)
        return -ENOMEM;
    g->running = true;
    if (kcw_engine_has_expr(g->engine)) {
        g->prom = kcw_prom_new(wd->http, &g->cfg->prometheus);
        if (!g->prom)
            kcw_log(KCW_LOG_ERROR, "PromQL rules cannot run: no usable Prometheus client", "url",
                    g->cfg->prometheus.url ? g->cfg->prometheus.url : "", NULL);
    }
    /* The schedule starts now, on both clocks. */
    uv_update_time(wd->loop);
    int64_t start = wall_now_ms();
    kcw_engine_set_start(g->engine, start);
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)start);
    kcw_log(KCW_LOG_DEBUG, "rule group schedule starts", "start_ms", at, NULL);
    for (size_t i = 0; i < g->n_timers; i++) {
        group_timer_t *gt = &g->timers[i];
        uv_timer_init(wd->loop, &gt->timer);
        gt->timer.data = gt;
        g->closing++;
        int64_t interval = kcw_engine_group_interval_ms(g->engine, i);
        uv_timer_start(&gt->timer, on_group_timer,
                       (uint64_t)kcw_engine_group_first_tick_ms(g->engine, i), (uint64_t)interval);
    }
    g->closing++; /* the Connect client */
    return kcw_connect_start(g->cn);
}

static void generation_retire(kcw_watchdog_t *wd, generation_t *g)
{
    if (!g)
        return;
    wd->retiring++;
    g->retired = true;
    /* Queries in flight come back cancelled, from inside this call. */
    kcw_prom_free(g->prom);
    g->prom = NULL;
    for (size_t i = 0; g->running && i < g->n_timers; i++) {
        g->timers[i].timer.data = g;
        uv_close((uv_handle_t *)&g->timers[i].timer, on_timer_closed);
    }
    if (g->cn)
        kcw_connect_close(g->cn, on_cn_closed, g);
    else if (g->closing == 0) {
        g->closing = 1;
        generation_closed_one(g);
    }
}

/* --- public -------------------------------------------------------------- */

kcw_watchdog_t *kcw_watchdog_new(uv_loop_t *loop, kcw_config_t *cfg, kcw_ruleset_t *rules)
{
    /* Status bodies are MBs and come every second. glibc raises its mmap
     * threshold to the largest block freed so far, after which such buffers
     * come from the heap and their pages stay resident; a fixed threshold
     * keeps them mapped and returned on free (bench/README.md: RssAnon 24 ->
     * 8 MiB at 10,000 connectors). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    kcw_watchdog_t *wd = calloc(1, sizeof(*wd));
    generation_t *g = calloc(1, sizeof(*g));
    if (!wd || !g) {
        free(wd);
        free(g);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return NULL;
    }
    wd->loop = loop;
    g->wd = wd;
    g->cfg = cfg;
    g->rules = rules;
    wd->gen = g;
    wd->http = kcw_http_new(loop);
    wd->metrics = kcw_metrics_new();
    wd->reload_ok = true;
    wd->reload_ok_ms = (int64_t)time(NULL) * 1000;
    if (!wd->http || !wd->metrics || kcw_metrics_declare_self(wd->metrics, KCW_VERSION) < 0 ||
        generation_build(wd, g, NULL) < 0) {
        /* The client's handles close when the caller runs the loop. */
        if (wd->http)
            kcw_http_close(wd->http, NULL, NULL);
        wd->http = NULL;
        kcw_watchdog_free(wd);
        return NULL;
    }
    return wd;
}

/* --- admin API ------------------------------------------------------------ */

static int handle_alerts(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    size_t n = 0;
    kcw_api_group_view_t *views = kcw_engine_api_views(wd->gen->engine, &n);
    const kcw_alert_set_t *extra[] = {kcw_engine_budget_alerts(wd->gen->engine)};
    json_t *data = kcw_api_alerts(views, n, extra, 1);
    kcw_engine_api_views_free(views, n);
    if (!data)
        return -ENOMEM;
    return kcw_admin_response_success(resp, data);
}

static int handle_rules(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    kcw_watchdog_t *wd = arg;
    const char *type = kcw_admin_request_arg(req, "type");
    if (type && strcmp(type, "alert") != 0 && strcmp(type, "record") != 0)
        return kcw_admin_response_error(resp, 400, "bad_data", "invalid query parameter type");
    size_t n = 0;
    kcw_api_group_view_t *views = kcw_engine_api_views(wd->gen->engine, &n);
    json_t *data = kcw_api_rules(views, n, type);
    kcw_engine_api_views_free(views, n);
    if (!data)
        return -ENOMEM;
    return kcw_admin_response_success(resp, data);
}

/* Who owns what, as this instance last read it from etcd. */
static int handle_ha(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    json_t *data = json_object(), *owners = json_array();
    if (!data || !owners) {
        json_decref(data);
        json_decref(owners);
        return -ENOMEM;
    }
    json_object_set_new(data, "enabled", json_boolean(wd->ha != NULL));
    if (wd->ha) {
        json_object_set_new(data, "instance", json_string(kcw_ha_instance(wd->ha)));
        json_object_set_new(data, "leaseValid", json_boolean(kcw_ha_lease_ok(wd->ha)));
        json_object_set_new(data, "error", json_string(kcw_ha_error(wd->ha)));
        json_object_set_new(data, "leaseRenewals",
                            json_integer((json_int_t)kcw_ha_renewals(wd->ha)));
    }
    for (size_t i = 0; i < kcw_ha_key_count(wd->ha); i++) {
        const char *key = kcw_ha_key(wd->ha, i);
        const char *owner = kcw_ha_owner(wd->ha, key);
        json_array_append_new(owners,
                              json_pack("{s:s,s:s,s:b}", "cluster", key, "owner",
                                        owner ? owner : "", "acting", kcw_ha_owns(wd->ha, key)));
    }
    json_object_set_new(data, "owners", owners);
    return kcw_admin_response_success(resp, data);
}

static int handle_metrics(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    metrics_refresh(wd);
    size_t len = 0;
    char *text = kcw_metrics_render(wd->metrics, &len);
    if (!text)
        return -ENOMEM;
    int rc = kcw_admin_response_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
    return rc;
}

static int handle_healthz(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    (void)arg;
    return kcw_admin_response_text(resp, 200, NULL, "kcwatch is healthy.\n");
}

static int handle_readyz(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    if (!wd->ready)
        return kcw_admin_response_text(resp, 503, NULL,
                                       "kcwatch is not ready: no evaluation has completed yet.\n");
    /* A cluster that answers with a status kcwatch cannot read leaves it blind. */
    kcw_connect_t *cn = wd->gen ? wd->gen->cn : NULL;
    for (size_t i = 0; i < kcw_connect_cluster_count(cn); i++) {
        const kcw_cluster_status_t *cs = kcw_connect_cluster(cn, i);
        if (kcw_cluster_status_state(cs) == KCW_STATE_UNREADABLE) {
            char msg[600];
            snprintf(msg, sizeof(msg),
                     "kcwatch is not ready: the status of Connect cluster %s cannot be read: %s\n",
                     cs->name, cs->last_error ? cs->last_error : "unknown error");
            return kcw_admin_response_text(resp, 503, NULL, msg);
        }
    }
    return kcw_admin_response_text(resp, 200, NULL, "kcwatch is ready.\n");
}

static int handle_reload(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    kcw_log(KCW_LOG_INFO, "reload requested over HTTP", NULL);
    if (kcw_watchdog_reload(wd) < 0)
        return kcw_admin_response_text(resp, 500, NULL,
                                       "failed to reload config: see the log for every error\n");
    return kcw_admin_response_text(resp, 200, NULL, "configuration reloaded\n");
}

/* --- silences -------------------------------------------------------------- */

static int64_t silence_now(void *arg)
{
    (void)arg;
    return wall_now_ms();
}

static int silence_save(void *arg, const kcw_silence_t *s)
{
    kcw_watchdog_t *wd = arg;
    kcw_store_begin(wd->store);
    int rc = kcw_store_silence_put(wd->store, s);
    int crc = kcw_store_commit(wd->store);
    return rc < 0 ? rc : crc;
}

static int on_stored_silence(const kcw_silence_t *s, void *arg)
{
    kcw_watchdog_t *wd = arg;
    int rc = kcw_silences_restore(wd->silences, s);
    if (rc < 0)
        kcw_log(KCW_LOG_WARN, "silence not restored", "id", s->id, "error", strerror(-rc), NULL);
    return 0;
}

static void on_silence_dropped(const kcw_silence_t *s, void *arg)
{
    kcw_watchdog_t *wd = arg;
    kcw_store_silence_delete(wd->store, s->id);
}

/* The config's silences, the API's from the store, and the notifier's view
 * of both. */
static int silences_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    if (!(wd->silences = kcw_silences_new()) ||
        kcw_silences_set_config(wd->silences, cfg->silences, cfg->n_silences) < 0)
        return -ENOMEM;
    long n = kcw_store_silence_load(wd->store, on_stored_silence, wd);
    if (n > 0) {
        char count[24];
        snprintf(count, sizeof(count), "%ld", n);
        kcw_log(KCW_LOG_INFO, "silences restored", "silences", count, NULL);
    }
    kcw_store_begin(wd->store);
    kcw_silences_gc(wd->silences, wall_now_ms(), on_silence_dropped, wd);
    kcw_store_commit(wd->store);
    wd->silence_api = (kcw_silence_api_t){
        .set = wd->silences, .now_ms = silence_now, .save = silence_save, .arg = wd};
    kcw_notifier_set_silences(wd->notifier, wd->silences);
    return 0;
}

static int admin_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    char err[256] = "";
    kcw_admin_opts_t opts = {.listen = cfg->listen};
    wd->admin = kcw_admin_new(wd->loop, &opts, err, sizeof(err));
    if (!wd->admin) {
        kcw_log(KCW_LOG_ERROR, "admin server not started", "listen", cfg->listen, "error", err,
                NULL);
        return -EINVAL;
    }
    if (kcw_admin_route(wd->admin, "GET", "/healthz", handle_healthz, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/readyz", handle_readyz, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/-/healthy", handle_healthz, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/-/ready", handle_readyz, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/metrics", handle_metrics, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/api/v1/alerts", handle_alerts, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/api/v1/rules", handle_rules, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/api/v1/ha", handle_ha, wd) < 0 ||
        kcw_admin_route(wd->admin, "POST", "/-/reload", handle_reload, wd) < 0 ||
        kcw_silence_api_register(wd->admin, &wd->silence_api) < 0)
        return -ENOMEM;
    int rc = kcw_admin_start(wd->admin, err, sizeof(err));
    if (rc < 0) {
        kcw_log(KCW_LOG_ERROR, "admin server cannot listen", "listen", cfg->listen, "error", err,
                NULL);
        return rc;
    }
    char port[16];
    snprintf(port, sizeof(port), "%u", kcw_admin_port(wd->admin));
    kcw_log(KCW_LOG_INFO, "admin API listening", "listen", cfg->listen, "port", port, NULL);
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    kcw_watchdog_t *wd = s->data;
    if (signum == SIGHUP) {
        kcw_log(KCW_LOG_INFO, "SIGHUP: reloading configuration", NULL);
        kcw_watchdog_reload(wd);
        return;
    }
    kcw_log(KCW_LOG_INFO, "shutting down", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    kcw_watchdog_stop(wd);
}

static int on_stored_alert(const char *key, const kcw_alert_t *alert, void *arg)
{
    kcw_watchdog_t *wd = arg;
    const char *sep = strchr(key, RULE_KEY_SEP);
    if (!sep)
        return 0;
    char group[256];
    size_t len = (size_t)(sep - key);
    if (len >= sizeof(group))
        return 0;
    memcpy(group, key, len);
    group[len] = '\0';
    int rc = kcw_engine_restore_alert(wd->gen->engine, len ? group : NULL, sep + 1, alert);
    if (rc < 0 && rc != -ENOENT)
        kcw_log(KCW_LOG_WARN, "alert state not restored", "alertname", sep + 1, "group", group,
                "error", strerror(-rc), NULL);
    return 0;
}

/* Every current alert state, replacing what the store held: alerts that left
 * their sets (pending ones that went away, resolved ones past retention)
 * leave the store too. */
static void snapshot_alerts(kcw_watchdog_t *wd)
{
    kcw_engine_t *e = wd->gen->engine;
    char key[512];
    kcw_store_begin(wd->store);
    kcw_store_alert_clear(wd->store);
    for (size_t ri = 0; ri < kcw_engine_rule_count(e); ri++) {
        const kcw_alert_set_t *set = kcw_engine_rule_alerts(e, ri);
        rule_key(kcw_engine_rule_group(e, ri), kcw_engine_rule(e, ri)->alert, key, sizeof(key));
        for (size_t i = 0; set && i < kcw_alert_set_count(set); i++)
            kcw_store_alert_put(wd->store, key, kcw_alert_set_at(set, i));
    }
    const kcw_alert_set_t *budget = kcw_engine_budget_alerts(e);
    rule_key(NULL, KCW_ENGINE_BUDGET_ALERT, key, sizeof(key));
    for (size_t i = 0; budget && i < kcw_alert_set_count(budget); i++)
        kcw_store_alert_put(wd->store, key, kcw_alert_set_at(budget, i));
    kcw_store_commit(wd->store);
}

static void on_snapshot(uv_timer_t *t)
{
    kcw_watchdog_t *wd = t->data;
    if (!wd->stopping && wd->gen)
        snapshot_alerts(wd);
    if (!wd->stopping && wd->silences) {
        kcw_store_begin(wd->store);
        kcw_silences_gc(wd->silences, wall_now_ms(), on_silence_dropped, wd);
        kcw_store_commit(wd->store);
    }
}

/* Opens the state store and hands what it holds to the engine, the
 * remediator and the notifier. Fails only when another kcwatch holds the
 * state_dir (a store that cannot be written runs in memory). */
static int store_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    char err[1024] = "";
    int rc = kcw_store_open(cfg->state_dir, &wd->store, err, sizeof(err));
    if (rc == -EBUSY) {
        kcw_log(KCW_LOG_ERROR, "refusing to start: another kcwatch uses this state directory",
                "state_dir", cfg->state_dir, "error", err, NULL);
        return rc;
    }
    if (rc < 0) {
        kcw_log(KCW_LOG_ERROR, "cannot open the state store", "state_dir", cfg->state_dir,
                "error", err, NULL);
        return rc;
    }
    kcw_store_set_audit_retention(wd->store, cfg->audit_retention_ms);
    kcw_store_prune_start(wd->store, wd->loop, STORE_PRUNE_MS);
    int64_t now = wall_now_ms();
    long n = kcw_store_alert_load(wd->store, on_stored_alert, wd);
    if (n > 0) {
        char count[24];
        snprintf(count, sizeof(count), "%ld", n);
        kcw_log(KCW_LOG_INFO, "alert state restored", "alerts", count, "state_dir",
                cfg->state_dir, NULL);
    }
    kcw_remediator_set_store(wd->rem, wd->store, now);
    kcw_notifier_set_max_age(wd->notifier, cfg->notification_max_age_ms);
    kcw_notifier_set_store(wd->notifier, wd->store, now);
    uv_timer_init(wd->loop, &wd->snapshot);
    wd->snapshot.data = wd;
    wd->snapshot_on = true;
    uv_timer_start(&wd->snapshot, on_snapshot, ALERT_SNAPSHOT_MS, ALERT_SNAPSHOT_MS);
    return 0;
}

int kcw_watchdog_start(kcw_watchdog_t *wd)
{
    generation_t *g = wd->gen;
    wd->rem = kcw_remediator_new(wd->loop, NULL, &g->cfg->remediation, on_remediation, wd);
    wd->notifier = kcw_notifier_new(wd->loop, wd->http, g->cfg, on_notify_event, wd);
    if (!wd->rem || !wd->notifier)
        return -ENOMEM;
    if (g->cfg->ha.n_endpoints > 0) {
        wd->ha_enabled = true;
        wd->ha = kcw_ha_new(wd->loop, wd->http, &g->cfg->ha, on_ha_change, wd);
        if (!wd->ha || ha_keys_set(wd) < 0)
            return -ENOMEM;
        kcw_remediator_set_permit(wd->rem, ha_permit, wd);
        kcw_ha_set_handover(wd->ha, on_ha_handover, wd);
        kcw_notifier_set_log_hook(wd->notifier, on_notify_log, wd);
        wd->ha_bad_since_ms = wall_now_ms();
        if (kcw_ha_start(wd->ha) < 0)
            return -ENOMEM;
    }
    int rc = store_start(wd);
    if (rc < 0)
        return rc;
    if ((rc = silences_start(wd)) < 0)
        return rc;
    rc = admin_start(wd);
    if (rc < 0)
        return rc;
    rc = generation_start(wd, g);
    if (rc < 0)
        return rc;
    kcw_remediator_set_connect(wd->rem, g->cn);
    uv_signal_t *sigs[] = {&wd->sig_term, &wd->sig_int, &wd->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    /* Handles are initialised before anything can fail, so stop() can close
     * them all; a daemon that cannot catch SIGTERM or SIGHUP does not start. */
    for (int i = 0; i < 3; i++) {
        uv_signal_init(wd->loop, sigs[i]);
        sigs[i]->data = wd;
    }
    uv_timer_init(wd->loop, &wd->notify_soon);
    wd->notify_soon.data = wd;
    wd->started = true;
    for (int i = 0; i < 3; i++) {
        int src = uv_signal_start(sigs[i], on_signal, nums[i]);
        if (src < 0) {
            kcw_log(KCW_LOG_ERROR, "cannot handle a signal", "signal", strsignal(nums[i]),
                    "error", uv_strerror(src), NULL);
            return src;
        }
    }
    /* A peer closing a connection must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    wd->sd = kcw_sdnotify_new(wd->loop);
    size_t n_rules = kcw_engine_rule_count(g->engine);
    char buf_c[32], buf_r[32];
    snprintf(buf_c, sizeof(buf_c), "%zu", kcw_connect_cluster_count(g->cn));
    snprintf(buf_r, sizeof(buf_r), "%zu", n_rules);
    kcw_log(KCW_LOG_INFO, "kcwatch started", "version", KCW_VERSION, "clusters", buf_c, "rules",
            buf_r, "config", g->cfg->path ? g->cfg->path : "(built-in defaults)", "dry_run",
            g->cfg->remediation.dry_run ? "true" : "false", NULL);
    kcw_sdnotify_ready(wd->sd);
    return 0;
}

int kcw_watchdog_reload(kcw_watchdog_t *wd)
{
    if (wd->stopping)
        return -ECANCELED;
    const char *path = wd->gen->cfg->path;
    kcw_sdnotify_reloading(wd->sd);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    kcw_ruleset_t *rules = NULL;
    int rc = kcw_config_load(path, &cfg, &errs);
    if (rc == 0)
        rc = kcw_rules_load((const char *const *)cfg->rule_files, cfg->n_rule_files, &rules, &errs);
    if (rc < 0) {
        char line[2048];
        for (size_t i = 0; i < errs.n && i < errs.cap; i++) {
            kcw_error_format(&errs.items[i], line, sizeof(line));
            kcw_log(KCW_LOG_ERROR, "reload rejected", "error", line, NULL);
        }
        kcw_log(KCW_LOG_ERROR, "reload failed: keeping the running configuration", NULL);
        wd->reload_ok = false;
        kcw_sdnotify_ready(wd->sd);
        kcw_sdnotify_status(wd->sd, "reload failed: running on the previous configuration");
        kcw_errors_clear(&errs);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -EINVAL;
    }
    kcw_errors_clear(&errs);
    const kcw_ha_conf_t *was = &wd->gen->cfg->ha, *now = &cfg->ha;
    if ((was->n_endpoints > 0) != (now->n_endpoints > 0) || strcmp(was->prefix, now->prefix) != 0 ||
        strcmp(was->instance ? was->instance : "", now->instance ? now->instance : "") != 0) {
        /* Ownership records live under the prefix and the instance's name:
         * changing them under a held lease would leave both behind. */
        kcw_log(KCW_LOG_ERROR,
                "reload failed: ha on/off, ha.etcd.prefix and ha.instance change only with a "
                "restart; keeping the running configuration",
                NULL);
        wd->reload_ok = false;
        kcw_sdnotify_ready(wd->sd);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -EINVAL;
    }
    generation_t *g = calloc(1, sizeof(*g));
    if (!g) {
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -ENOMEM;
    }
    g->wd = wd;
    g->cfg = cfg;
    g->rules = rules;
    generation_t *old = wd->gen;
    if (generation_build(wd, g, old) < 0) {
        /* The engine takes nothing over unless it was built whole. */
        generation_free(g);
        kcw_log(KCW_LOG_ERROR, "reload failed: out of memory; keeping the running configuration",
                NULL);
        wd->reload_ok = false;
        kcw_sdnotify_ready(wd->sd);
        return -ENOMEM;
    }
    if (strcmp(old->cfg->listen, cfg->listen) != 0)
        kcw_log(KCW_LOG_WARN, "global.listen changed: restart kcwatch for it to take effect",
                "listening", old->cfg->listen, "configured", cfg->listen, NULL);
    wd->gen = g;
    if (wd->ha) {
        kcw_ha_set_conf(wd->ha, &cfg->ha);
        if (ha_keys_set(wd) < 0)
            kcw_log(KCW_LOG_ERROR, "ha: ownership keys not updated: out of memory", NULL);
    }
    kcw_remediator_set_conf(wd->rem, &cfg->remediation);
    kcw_notifier_set_config(wd->notifier, cfg);
    if (kcw_silences_set_config(wd->silences, cfg->silences, cfg->n_silences) < 0)
        kcw_log(KCW_LOG_ERROR, "silences of the new configuration not applied: out of memory or "
                "too many; the previous ones stay", NULL);
    kcw_notifier_set_max_age(wd->notifier, cfg->notification_max_age_ms);
    kcw_store_set_audit_retention(wd->store, cfg->audit_retention_ms);
    if (strcmp(old->cfg->state_dir, cfg->state_dir) != 0)
        kcw_log(KCW_LOG_WARN, "global.state_dir changed: restart kcwatch for it to take effect",
                "in_use", old->cfg->state_dir, "configured", cfg->state_dir, NULL);
    rc = generation_start(wd, g);
    kcw_remediator_set_connect(wd->rem, g->cn);
    generation_retire(wd, old);
    kcw_log(KCW_LOG_INFO, "configuration reloaded", "config", path ? path : "(built-in defaults)",
            NULL);
    wd->reload_ok = true;
    wd->reload_ok_ms = wall_now_ms();
    kcw_sdnotify_ready(wd->sd);
    return rc;
}

static void on_notifier_closed(void *arg)
{
    (void)arg;
}

/* Every transfer's callback has run by now (cancelled ones with an error), so
 * the notifier can go without a late callback reaching freed memory. */
static void on_http_closed(void *arg)
{
    kcw_watchdog_t *wd = arg;
    wd->http = NULL;
    if (wd->notifier)
        kcw_notifier_close(wd->notifier, on_notifier_closed, wd);
    wd->notifier = NULL;
}

static void on_ha_closed(void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (wd->http)
        kcw_http_close(wd->http, on_http_closed, wd);
}

static void on_handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

void kcw_watchdog_stop(kcw_watchdog_t *wd)
{
    if (wd->stopping)
        return;
    wd->stopping = true;
    kcw_sdnotify_stopping(wd->sd);
    kcw_sdnotify_close(wd->sd);
    wd->sd = NULL;
    if (wd->started) {
        uv_close((uv_handle_t *)&wd->sig_term, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->sig_int, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->sig_hup, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->notify_soon, on_handle_closed_noop);
    }
    /* The shared HTTP client closes once ha has revoked its lease (see
     * on_ha_closed); permits in flight answer "cancelled" now. */
    kcw_ha_t *ha = wd->ha;
    wd->ha = NULL;
    if (ha)
        kcw_ha_close(ha, on_ha_closed, wd);
    if (wd->store) {
        /* The latest states, keep_firing_for holds included. */
        if (wd->gen && wd->started)
            snapshot_alerts(wd);
        kcw_store_prune_stop(wd->store);
        if (wd->snapshot_on)
            uv_close((uv_handle_t *)&wd->snapshot, on_handle_closed_noop);
        wd->snapshot_on = false;
    }
    generation_t *g = wd->gen;
    wd->gen = NULL;
    if (wd->admin)
        kcw_admin_close(wd->admin, NULL, NULL);
    wd->admin = NULL;
    generation_retire(wd, g);
    if (wd->http && !ha)
        kcw_http_close(wd->http, on_http_closed, wd);
}

void kcw_watchdog_free(kcw_watchdog_t *wd)
{
    if (!wd)
        return;
    if (wd->gen && !wd->started)
        generation_free(wd->gen);
    kcw_remediator_free(wd->rem);
    kcw_store_close(wd->store); /* after the notifier: its queue stays in the outbox */
    kcw_silences_free(wd->silences);
    kcw_metrics_free(wd->metrics);
    free(wd);
}
