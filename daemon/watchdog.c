/* watchdog.c: the daemon's wiring on one libuv loop (see watchdog.h).
 *
 * Poll results enter through on_poll(): the remediator sees every poll (to
 * verify restarts and time stable periods), and a changed status triggers an
 * evaluation of every group that has connect rules, so a FAILED task is
 * noticed within one poll. Group timers evaluate on the group interval too, so
 * `for` and keep_firing_for advance without new polls. An evaluation updates
 * each rule's alert set, hands firing alerts with `restart:` to the
 * remediator, and gives the notifier every alert annotated with the
 * remediation note. Reload swaps config and rules; alert states of rules that
 * keep their group, name, for and keep_firing_for carry over. */
#include "kcwatch/watchdog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/admin.h"
#include "kcwatch/alerts.h"
#include "kcwatch/api.h"
#include "kcwatch/connect.h"
#include "kcwatch/eval.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/notify.h"
#include "kcwatch/prom.h"
#include "kcwatch/remediate.h"

#define BUDGET_ALERT "KcwatchRestartBudgetExhausted"
#define NOTE_ANNOTATION "remediation"

typedef struct rule_state {
    const kcw_rule_t *rule;
    const kcw_rule_group_t *group;
    kcw_alert_set_t *set;
    kcw_rule_health_t health;
    char *last_error;
    int64_t last_eval_ms;
    double eval_seconds;
} rule_state_t;

struct group_state;

/* One PromQL query of a group evaluation in flight. */
typedef struct query_slot {
    struct group_state *gs;
    size_t rule; /* index into the generation's rule states */
    kcw_prom_result_t *result;
    kcw_prom_error_t error;
    bool failed;
} query_slot_t;

typedef struct group_state {
    kcw_watchdog_t *wd;
    struct generation *gen;
    const kcw_rule_group_t *group;
    size_t first_rule, n_rules;
    bool has_connect, has_expr;
    uv_timer_t timer;
    /* The PromQL half of an evaluation: queries out, results in. A group
     * never overlaps itself: a tick while queries are out is skipped. */
    query_slot_t *slots;
    size_t n_slots, pending;
    bool in_flight;
    int64_t eval_ts_ms;
    uint64_t started_ns;
    int64_t last_eval_ms;
    double eval_seconds;
    uint64_t missed;
} group_state_t;

/* One configuration generation: config, rules, the state built on them and the
 * Connect client polling with them. Retired generations live until their
 * handles are closed. */
typedef struct generation {
    kcw_watchdog_t *wd;
    kcw_config_t *cfg;
    kcw_ruleset_t *rules;
    kcw_connect_t *cn;
    kcw_prom_t *prom;
    bool running; /* timers initialised, client started */
    bool retired;
    rule_state_t *rs;
    size_t n_rs;
    group_state_t **gs;
    size_t n_gs;
    int closing; /* handles still to close */
} generation_t;

/* (cluster, connector, task) of a refused restart whose group must be
 * notified at once. */
typedef struct flush_req {
    char *cluster, *connector;
    int task;
} flush_req_t;

struct kcw_watchdog {
    uv_loop_t *loop;
    generation_t *gen;
    kcw_http_t *http;
    kcw_remediator_t *rem;
    kcw_notifier_t *notifier;
    kcw_alert_set_t *budget_set;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t notify_soon; /* delivers remediation news without waiting for an evaluation */
    kcw_admin_t *admin;
    bool started, stopping, ready;
    int retiring; /* generations still closing */
    flush_req_t *flush;
    size_t n_flush, cap_flush;
};

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- evaluation ---------------------------------------------------------- */

/* One log line per alert that started firing or resolved at this evaluation:
 * the moment of detection, visible without a receiver. */
static void log_transitions(kcw_alert_set_t *set, int64_t now)
{
    size_t n = kcw_alert_set_count(set);
    for (size_t i = 0; i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        const char *what = NULL;
        if (a->state == KCW_ALERT_FIRING && a->fired_at_ms == now)
            what = "alert firing";
        else if (a->state == KCW_ALERT_INACTIVE && a->resolved_at_ms == now)
            what = "alert resolved";
        else if (a->state == KCW_ALERT_PENDING && a->active_at_ms == now)
            what = "alert pending";
        if (!what)
            continue;
        const char *task = kcw_labels_get(&a->labels, "task");
        kcw_log(a->state == KCW_ALERT_FIRING ? KCW_LOG_WARN : KCW_LOG_INFO, what, "alertname",
                kcw_labels_get(&a->labels, "alertname"), "cluster",
                kcw_labels_get(&a->labels, "cluster"), "connector",
                kcw_labels_get(&a->labels, "connector"), "task", task ? task : "", "state",
                kcw_labels_get(&a->labels, "state"), "worker_id",
                kcw_labels_get(&a->labels, "worker_id"), NULL);
    }
}

static void set_health(rule_state_t *r, kcw_rule_health_t health, const char *error)
{
    r->health = health;
    free(r->last_error);
    r->last_error = error ? strdup(error) : NULL;
}

static void free_instances(kcw_instance_t *inst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
}

/* Applies one evaluation's instances (or its failure rc) to the rule's alert
 * set at time now, the way Prometheus does: a failure leaves the alerts as
 * they were; more alerts than the group's limit drops them all and fails. */
static void apply_instances(rule_state_t *r, int rc, kcw_instance_t *inst, size_t n_inst,
                            int64_t now, const char *error)
{
    char msg[256];
    r->last_eval_ms = now;
    if (rc == 0 && r->group->limit > 0 && n_inst > (size_t)r->group->limit) {
        snprintf(msg, sizeof(msg), "exceeded limit of %d with %zu alerts", r->group->limit,
                 n_inst);
        kcw_alert_set_t *fresh =
            kcw_alert_set_new(r->rule->alert, r->rule->for_ms, r->rule->keep_firing_for_ms);
        if (fresh) {
            kcw_alert_set_free(r->set);
            r->set = fresh;
        }
        rc = -E2BIG;
        error = msg;
    } else if (rc == 0) {
        rc = kcw_alert_set_update(r->set, inst, n_inst, now);
        if (rc == -EEXIST)
            error = "vector contains metrics with the same labelset after applying alert labels";
    } else if (!error) {
        snprintf(msg, sizeof(msg), "%s", strerror(-rc));
        error = msg;
    }
    free_instances(inst, n_inst);
    if (rc < 0) {
        if (r->health != KCW_RULE_HEALTH_ERR || !r->last_error || strcmp(r->last_error, error) != 0)
            kcw_log(KCW_LOG_WARN, "rule evaluation failed", "rule", r->rule->alert, "group",
                    r->group->name, "error", error, NULL);
        set_health(r, KCW_RULE_HEALTH_ERR, error);
        return;
    }
    if (r->health == KCW_RULE_HEALTH_ERR)
        kcw_log(KCW_LOG_INFO, "rule evaluation recovered", "rule", r->rule->alert, "group",
                r->group->name, NULL);
    set_health(r, KCW_RULE_HEALTH_OK, NULL);
    log_transitions(r->set, now);
}

static void eval_connect_rule(kcw_watchdog_t *wd, rule_state_t *r, int64_t now)
{
    generation_t *g = wd->gen;
    uint64_t t0 = uv_hrtime();
    size_t n_clusters = kcw_connect_cluster_count(g->cn);
    const kcw_cluster_status_t **clusters = calloc(n_clusters ? n_clusters : 1, sizeof(*clusters));
    if (!clusters)
        return;
    for (size_t i = 0; i < n_clusters; i++)
        clusters[i] = kcw_connect_cluster(g->cn, i);
    kcw_instance_t *inst = NULL;
    size_t n_inst = 0;
    int rc = kcw_eval_connect_rule(r->rule, clusters, n_clusters, &g->cfg->external_labels, &inst,
                                   &n_inst);
    free(clusters);
    apply_instances(r, rc, inst, n_inst, now, NULL);
    r->eval_seconds = (double)(uv_hrtime() - t0) / 1e9;
}

static void remediate_rule(kcw_watchdog_t *wd, rule_state_t *r, int64_t now)
{
    if (!r->rule->restart.enabled)
        return;
    size_t n = kcw_alert_set_count(r->set);
    for (size_t i = 0; i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(r->set, i);
        if (a->state == KCW_ALERT_FIRING)
            kcw_remediator_consider(wd->rem, r->rule, a, now);
    }
}

static void eval_budget_alerts(kcw_watchdog_t *wd, int64_t now)
{
    kcw_instance_t *inst = NULL;
    size_t n = 0;
    if (kcw_remediator_exhausted(wd->rem, &inst, &n) < 0)
        return;
    if (kcw_alert_set_update(wd->budget_set, inst, n, now) == 0)
        log_transitions(wd->budget_set, now);
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
}

/* Shallow view of an alert with the remediation note added to its
 * annotations; the note copy is owned by the view. */
typedef struct alert_view {
    kcw_alert_t alert;
    kcw_labels_t annotations;
} alert_view_t;

static void collect_alerts(kcw_watchdog_t *wd, kcw_alert_set_t *set, alert_view_t **views,
                           size_t *n, size_t *cap)
{
    size_t count = kcw_alert_set_count(set);
    for (size_t i = 0; i < count; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a->state == KCW_ALERT_PENDING)
            continue;
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            alert_view_t *nv = realloc(*views, ncap * sizeof(*nv));
            if (!nv)
                return;
            *views = nv;
            *cap = ncap;
        }
        alert_view_t *v = &(*views)[*n];
        v->alert = *a;
        memset(&v->annotations, 0, sizeof(v->annotations));
        const char *note = kcw_remediator_note(wd->rem, &a->labels);
        if (note && kcw_labels_copy(&v->annotations, &a->annotations) == 0 &&
            kcw_labels_set(&v->annotations, NOTE_ANNOTATION, note) == 0)
            v->alert.annotations = v->annotations;
        (*n)++;
    }
}

static bool labels_match_flush(const kcw_labels_t *l, const flush_req_t *f)
{
    const char *cl = kcw_labels_get(l, "cluster");
    const char *co = kcw_labels_get(l, "connector");
    if (!co || strcmp(co, f->connector) != 0)
        return false;
    if (cl && f->cluster && strcmp(cl, f->cluster) != 0)
        return false;
    if (f->task >= 0) {
        const char *t = kcw_labels_get(l, "task");
        if (t && atoi(t) != f->task)
            return false;
    }
    return true;
}

static void notify_all(kcw_watchdog_t *wd, int64_t now)
{
    generation_t *g = wd->gen;
    alert_view_t *views = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < g->n_rs; i++)
        collect_alerts(wd, g->rs[i].set, &views, &n, &cap);
    collect_alerts(wd, wd->budget_set, &views, &n, &cap);
    const kcw_alert_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (ptrs) {
        for (size_t i = 0; i < n; i++)
            ptrs[i] = &views[i].alert;
        kcw_notifier_update(wd->notifier, ptrs, n, now);
        /* A refused restart is news for a human now, not after group_wait. */
        for (size_t f = 0; f < wd->n_flush; f++)
            for (size_t i = 0; i < n; i++)
                if (views[i].alert.state == KCW_ALERT_FIRING &&
                    labels_match_flush(&views[i].alert.labels, &wd->flush[f]))
                    kcw_notifier_flush_for(wd->notifier, &views[i].alert.labels);
        free(ptrs);
    }
    for (size_t f = 0; f < wd->n_flush; f++) {
        free(wd->flush[f].cluster);
        free(wd->flush[f].connector);
    }
    wd->n_flush = 0;
    for (size_t i = 0; i < n; i++)
        kcw_labels_clear(&views[i].annotations);
    free(views);
}

/* What follows every evaluation: remediation of firing alerts, kcwatch's own
 * budget alert, and notification of everything. */
static void after_evaluation(kcw_watchdog_t *wd, int64_t now)
{
    generation_t *g = wd->gen;
    for (size_t i = 0; i < g->n_rs; i++)
        remediate_rule(wd, &g->rs[i], now);
    eval_budget_alerts(wd, now);
    notify_all(wd, now);
    wd->ready = true;
}

/* Evaluates the connect rules of the given group (NULL: of every group). */
static void evaluate_connect(kcw_watchdog_t *wd, group_state_t *only, int64_t now)
{
    generation_t *g = wd->gen;
    for (size_t gi = 0; gi < g->n_gs; gi++) {
        group_state_t *gs = g->gs[gi];
        if ((only && gs != only) || !gs->has_connect)
            continue;
        uint64_t t0 = uv_hrtime();
        for (size_t i = 0; i < gs->n_rules; i++) {
            rule_state_t *r = &g->rs[gs->first_rule + i];
            if (r->rule->connect)
                eval_connect_rule(wd, r, now);
        }
        if (!gs->has_expr) {
            gs->last_eval_ms = now;
            gs->eval_seconds = (double)(uv_hrtime() - t0) / 1e9;
        }
    }
}

/* All queries of a group evaluation are back: apply them at the evaluation's
 * timestamp, as Prometheus applies a group's results. */
static void group_queries_done(group_state_t *gs)
{
    kcw_watchdog_t *wd = gs->wd;
    generation_t *g = gs->gen;
    gs->in_flight = false;
    bool current = !wd->stopping && wd->gen == g && !g->retired;
    for (size_t i = 0; i < gs->n_slots; i++) {
        query_slot_t *q = &gs->slots[i];
        rule_state_t *r = &g->rs[q->rule];
        if (!current || (q->failed && q->error.kind == KCW_PROM_ERR_CANCELLED)) {
            kcw_prom_result_free(q->result);
            q->result = NULL;
            continue;
        }
        if (q->failed) {
            /* A failed query leaves the alerts as they were: Prometheus being
             * briefly down must not flap every alert to resolved. */
            apply_instances(r, -EIO, NULL, 0, gs->eval_ts_ms, q->error.msg);
        } else {
            for (size_t w = 0; w < q->result->n_warnings; w++)
                kcw_log(KCW_LOG_DEBUG, "query warning", "rule", r->rule->alert, "warning",
                        q->result->warnings[w], NULL);
            kcw_instance_t *inst = NULL;
            size_t n_inst = 0;
            int rc = kcw_eval_prom_rule(r->rule, q->result, &g->cfg->external_labels, &inst,
                                        &n_inst);
            apply_instances(r, rc, inst, n_inst, gs->eval_ts_ms,
                            rc == -EINVAL ? "query result is not a vector or scalar" : NULL);
        }
        r->eval_seconds = (double)(uv_hrtime() - gs->started_ns) / 1e9;
        kcw_prom_result_free(q->result);
        q->result = NULL;
    }
    if (!current)
        return;
    gs->last_eval_ms = gs->eval_ts_ms;
    gs->eval_seconds = (double)(uv_hrtime() - gs->started_ns) / 1e9;
    after_evaluation(wd, wall_now_ms());
}

static void on_query_done(kcw_prom_result_t *result, const kcw_prom_error_t *error, void *arg)
{
    query_slot_t *q = arg;
    q->result = result;
    q->failed = error != NULL;
    if (error)
        q->error = *error;
    if (--q->gs->pending == 0)
        group_queries_done(q->gs);
}

/* Starts the PromQL half of a group evaluation at now. */
static void evaluate_promql(kcw_watchdog_t *wd, group_state_t *gs, int64_t now)
{
    generation_t *g = wd->gen;
    if (gs->in_flight) {
        /* Prometheus calls these missed iterations: a slow Prometheus delays
         * the group, it does not pile up queries. */
        gs->missed++;
        kcw_log(KCW_LOG_WARN, "group evaluation skipped: the previous one is still running",
                "group", gs->group->name, NULL);
        return;
    }
    gs->in_flight = true;
    gs->eval_ts_ms = now;
    gs->started_ns = uv_hrtime();
    gs->pending = gs->n_slots + 1; /* +1: no callback completes the round early */
    for (size_t i = 0; i < gs->n_slots; i++) {
        query_slot_t *q = &gs->slots[i];
        q->result = NULL;
        q->failed = false;
        const kcw_rule_t *rule = g->rs[q->rule].rule;
        int rc = g->prom ? kcw_prom_query(g->prom, rule->expr, now - gs->group->query_offset_ms,
                                          on_query_done, q)
                         : -ENOTCONN;
        if (rc < 0) {
            q->failed = true;
            q->error.kind = KCW_PROM_ERR_TRANSPORT;
            snprintf(q->error.msg, sizeof(q->error.msg), "query not sent: %s", strerror(-rc));
            gs->pending--;
        }
    }
    if (--gs->pending == 0)
        group_queries_done(gs);
}

static void on_group_timer(uv_timer_t *t)
{
    group_state_t *gs = t->data;
    kcw_watchdog_t *wd = gs->wd;
    if (wd->stopping || wd->gen != gs->gen)
        return;
    int64_t now = wall_now_ms();
    evaluate_connect(wd, gs, now);
    if (gs->has_expr)
        evaluate_promql(wd, gs, now);
    else
        after_evaluation(wd, now);
}

static void on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (wd->stopping || !wd->gen || cn != wd->gen->cn)
        return;
    int64_t now = wall_now_ms();
    kcw_remediator_observe(wd->rem, idx, kcw_connect_cluster(cn, idx), now);
    /* An unchanged body still matters when reachability flipped; the client
     * reports that as changed too. Unchanged: the group timers keep time. */
    if (changed) {
        int64_t now_ms = wall_now_ms();
        evaluate_connect(wd, NULL, now_ms);
        after_evaluation(wd, now_ms);
    }
}

static void on_notify_soon(uv_timer_t *t)
{
    kcw_watchdog_t *wd = t->data;
    if (!wd->stopping && wd->gen && wd->n_flush > 0)
        notify_all(wd, wall_now_ms());
}

static void on_remediation(const kcw_remediation_event_t *ev, void *arg)
{
    kcw_watchdog_t *wd = arg;
    /* Each of these changes what the alert's notification should say. */
    if (ev->kind != KCW_REMEDIATION_UNRECOVERABLE &&
        ev->kind != KCW_REMEDIATION_BUDGET_EXHAUSTED && ev->kind != KCW_REMEDIATION_SENT &&
        ev->kind != KCW_REMEDIATION_SKIPPED && ev->kind != KCW_REMEDIATION_DRY_RUN)
        return;
    if (wd->n_flush == wd->cap_flush) {
        size_t ncap = wd->cap_flush ? wd->cap_flush * 2 : 8;
        flush_req_t *nf = realloc(wd->flush, ncap * sizeof(*nf));
        if (!nf)
            return;
        wd->flush = nf;
        wd->cap_flush = ncap;
    }
    flush_req_t *f = &wd->flush[wd->n_flush];
    f->cluster = ev->cluster ? strdup(ev->cluster) : NULL;
    f->connector = ev->connector ? strdup(ev->connector) : NULL;
    f->task = ev->task;
    if (!f->connector) {
        free(f->cluster);
        return;
    }
    wd->n_flush++;
    /* Events can arrive from inside an evaluation; notify from a fresh stack. */
    if (wd->started && !wd->stopping)
        uv_timer_start(&wd->notify_soon, on_notify_soon, 0, 0);
}

static void on_notify(const char *receiver, const char *group_key, bool ok, long http_status,
                      const char *detail, void *arg)
{
    (void)receiver;
    (void)group_key;
    (void)ok;
    (void)http_status;
    (void)detail;
    (void)arg;
}

/* --- generations --------------------------------------------------------- */

static void generation_free(generation_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_rs; i++) {
        kcw_alert_set_free(g->rs[i].set);
        free(g->rs[i].last_error);
    }
    free(g->rs);
    for (size_t i = 0; i < g->n_gs; i++) {
        if (g->gs[i])
            free(g->gs[i]->slots);
        free(g->gs[i]);
    }
    free(g->gs);
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

/* Builds the rule/alert state of a new generation; alert sets whose rule keeps
 * its identity move over from prev. */
static int generation_build(kcw_watchdog_t *wd, generation_t *g, generation_t *prev)
{
    size_t n_rules = 0;
    for (size_t i = 0; i < g->rules->n_groups; i++)
        n_rules += g->rules->groups[i].n_rules;
    g->rs = calloc(n_rules ? n_rules : 1, sizeof(*g->rs));
    g->gs = calloc(g->rules->n_groups ? g->rules->n_groups : 1, sizeof(*g->gs));
    if (!g->rs || !g->gs)
        return -ENOMEM;
    size_t at = 0;
    for (size_t gi = 0; gi < g->rules->n_groups; gi++) {
        const kcw_rule_group_t *grp = &g->rules->groups[gi];
        group_state_t *gs = calloc(1, sizeof(*gs));
        if (!gs)
            return -ENOMEM;
        g->gs[g->n_gs++] = gs;
        gs->wd = wd;
        gs->gen = g;
        gs->group = grp;
        gs->first_rule = at;
        gs->n_rules = grp->n_rules;
        for (size_t ri = 0; ri < grp->n_rules; ri++, at++) {
            const kcw_rule_t *rule = &grp->rules[ri];
            rule_state_t *r = &g->rs[at];
            r->rule = rule;
            r->group = grp;
            if (rule->connect)
                gs->has_connect = true;
            else
                gs->has_expr = true;
            for (size_t pi = 0; prev && pi < prev->n_rs; pi++) {
                rule_state_t *p = &prev->rs[pi];
                if (p->set && strcmp(p->group->name, grp->name) == 0 &&
                    strcmp(p->rule->alert, rule->alert) == 0 && p->rule->for_ms == rule->for_ms &&
                    p->rule->keep_firing_for_ms == rule->keep_firing_for_ms &&
                    (p->rule->connect != NULL) == (rule->connect != NULL)) {
                    r->set = p->set;
                    p->set = NULL;
                    break;
                }
            }
            if (!r->set)
                r->set = kcw_alert_set_new(rule->alert, rule->for_ms, rule->keep_firing_for_ms);
            if (!r->set)
                return -ENOMEM;
        }
    }
    g->n_rs = at;
    /* One query slot per PromQL rule, allocated once: callbacks point at them. */
    for (size_t gi = 0; gi < g->n_gs; gi++) {
        group_state_t *gs = g->gs[gi];
        for (size_t i = 0; i < gs->n_rules; i++)
            if (!g->rs[gs->first_rule + i].rule->connect)
                gs->n_slots++;
        if (gs->n_slots == 0)
            continue;
        gs->slots = calloc(gs->n_slots, sizeof(*gs->slots));
        if (!gs->slots)
            return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < gs->n_rules; i++)
            if (!g->rs[gs->first_rule + i].rule->connect) {
                gs->slots[k].gs = gs;
                gs->slots[k++].rule = gs->first_rule + i;
            }
    }
    return 0;
}

static int generation_start(kcw_watchdog_t *wd, generation_t *g)
{
    g->cn = kcw_connect_new(wd->loop, wd->http, g->cfg, on_poll, wd);
    if (!g->cn)
        return -ENOMEM;
    g->running = true;
    bool any_expr = false;
    for (size_t i = 0; i < g->n_gs; i++)
        any_expr = any_expr || g->gs[i]->has_expr;
    if (any_expr) {
        g->prom = kcw_prom_new(wd->http, &g->cfg->prometheus);
        if (!g->prom)
            kcw_log(KCW_LOG_ERROR, "PromQL rules cannot run: no usable Prometheus client", "url",
                    g->cfg->prometheus.url ? g->cfg->prometheus.url : "", NULL);
    }
    for (size_t i = 0; i < g->n_gs; i++) {
        group_state_t *gs = g->gs[i];
        uv_timer_init(wd->loop, &gs->timer);
        gs->timer.data = gs;
        g->closing++;
        int64_t interval =
            gs->group->interval_ms > 0 ? gs->group->interval_ms : g->cfg->evaluation_interval_ms;
        if (interval <= 0)
            interval = 10000;
        /* Spread groups over the interval instead of evaluating all at once. */
        uint64_t offset = g->n_gs > 1 ? (uint64_t)interval * i / g->n_gs : 0;
        uv_timer_start(&gs->timer, on_group_timer, offset + (uint64_t)interval, (uint64_t)interval);
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
    for (size_t i = 0; g->running && i < g->n_gs; i++) {
        g->gs[i]->timer.data = g;
        uv_close((uv_handle_t *)&g->gs[i]->timer, on_timer_closed);
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
    wd->budget_set = kcw_alert_set_new(BUDGET_ALERT, 0, 0);
    if (!wd->http || !wd->budget_set || generation_build(wd, g, NULL) < 0) {
        kcw_watchdog_free(wd);
        return NULL;
    }
    return wd;
}

/* --- admin API ------------------------------------------------------------ */

/* Views of the running rule groups for the API builders; freed by the caller
 * with free_views. */
static kcw_api_group_view_t *build_views(kcw_watchdog_t *wd, size_t *n_out)
{
    generation_t *g = wd->gen;
    *n_out = 0;
    if (!g)
        return NULL;
    kcw_api_group_view_t *views = calloc(g->n_gs ? g->n_gs : 1, sizeof(*views));
    if (!views)
        return NULL;
    for (size_t gi = 0; gi < g->n_gs; gi++) {
        group_state_t *gs = g->gs[gi];
        kcw_api_rule_view_t *rv = calloc(gs->n_rules ? gs->n_rules : 1, sizeof(*rv));
        if (!rv)
            break;
        for (size_t i = 0; i < gs->n_rules; i++) {
            rule_state_t *r = &g->rs[gs->first_rule + i];
            rv[i] = (kcw_api_rule_view_t){.rule = r->rule,
                                          .alerts = r->set,
                                          .health = r->health,
                                          .last_error = r->last_error,
                                          .last_eval_ms = r->last_eval_ms,
                                          .eval_seconds = r->eval_seconds};
        }
        int64_t interval =
            gs->group->interval_ms > 0 ? gs->group->interval_ms : g->cfg->evaluation_interval_ms;
        views[gi] = (kcw_api_group_view_t){.group = gs->group,
                                           .interval_ms = interval,
                                           .rules = rv,
                                           .n_rules = gs->n_rules,
                                           .last_eval_ms = gs->last_eval_ms,
                                           .eval_seconds = gs->eval_seconds};
        *n_out = gi + 1;
    }
    return views;
}

static void free_views(kcw_api_group_view_t *views, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)views[i].rules);
    free(views);
}

static int handle_alerts(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_watchdog_t *wd = arg;
    size_t n = 0;
    kcw_api_group_view_t *views = build_views(wd, &n);
    const kcw_alert_set_t *extra[] = {wd->budget_set};
    json_t *data = kcw_api_alerts(views, n, extra, 1);
    free_views(views, n);
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
    kcw_api_group_view_t *views = build_views(wd, &n);
    json_t *data = kcw_api_rules(views, n, type);
    free_views(views, n);
    if (!data)
        return -ENOMEM;
    return kcw_admin_response_success(resp, data);
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
        kcw_admin_route(wd->admin, "GET", "/api/v1/alerts", handle_alerts, wd) < 0 ||
        kcw_admin_route(wd->admin, "GET", "/api/v1/rules", handle_rules, wd) < 0 ||
        kcw_admin_route(wd->admin, "POST", "/-/reload", handle_reload, wd) < 0)
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

int kcw_watchdog_start(kcw_watchdog_t *wd)
{
    generation_t *g = wd->gen;
    wd->rem = kcw_remediator_new(wd->loop, NULL, &g->cfg->remediation, on_remediation, wd);
    wd->notifier = kcw_notifier_new(wd->loop, wd->http, g->cfg, on_notify, wd);
    if (!wd->rem || !wd->notifier)
        return -ENOMEM;
    int rc = admin_start(wd);
    if (rc < 0)
        return rc;
    rc = generation_start(wd, g);
    if (rc < 0)
        return rc;
    kcw_remediator_set_connect(wd->rem, g->cn);
    uv_signal_t *sigs[] = {&wd->sig_term, &wd->sig_int, &wd->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(wd->loop, sigs[i]);
        sigs[i]->data = wd;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_timer_init(wd->loop, &wd->notify_soon);
    wd->notify_soon.data = wd;
    wd->started = true;
    size_t n_rules = g->n_rs;
    char buf_c[32], buf_r[32];
    snprintf(buf_c, sizeof(buf_c), "%zu", kcw_connect_cluster_count(g->cn));
    snprintf(buf_r, sizeof(buf_r), "%zu", n_rules);
    kcw_log(KCW_LOG_INFO, "kcwatch started", "version", KCW_VERSION, "clusters", buf_c, "rules",
            buf_r, "config", g->cfg->path ? g->cfg->path : "(built-in defaults)", "dry_run",
            g->cfg->remediation.dry_run ? "true" : "false", NULL);
    return 0;
}

int kcw_watchdog_reload(kcw_watchdog_t *wd)
{
    if (wd->stopping)
        return -ECANCELED;
    const char *path = wd->gen->cfg->path;
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
        kcw_errors_clear(&errs);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -EINVAL;
    }
    kcw_errors_clear(&errs);
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
        /* Give back what moved so the old generation keeps its alert states. */
        for (size_t i = 0; i < g->n_rs; i++)
            for (size_t j = 0; j < old->n_rs; j++)
                if (!old->rs[j].set && g->rs[i].set &&
                    strcmp(old->rs[j].rule->alert, g->rs[i].rule->alert) == 0) {
                    old->rs[j].set = g->rs[i].set;
                    g->rs[i].set = NULL;
                }
        generation_free(g);
        kcw_log(KCW_LOG_ERROR, "reload failed: out of memory; keeping the running configuration",
                NULL);
        return -ENOMEM;
    }
    if (strcmp(old->cfg->listen, cfg->listen) != 0)
        kcw_log(KCW_LOG_WARN, "global.listen changed: restart kcwatch for it to take effect",
                "listening", old->cfg->listen, "configured", cfg->listen, NULL);
    wd->gen = g;
    kcw_remediator_set_conf(wd->rem, &cfg->remediation);
    kcw_notifier_set_config(wd->notifier, cfg);
    rc = generation_start(wd, g);
    kcw_remediator_set_connect(wd->rem, g->cn);
    generation_retire(wd, old);
    kcw_log(KCW_LOG_INFO, "configuration reloaded", "config", path ? path : "(built-in defaults)",
            NULL);
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

static void on_handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

void kcw_watchdog_stop(kcw_watchdog_t *wd)
{
    if (wd->stopping)
        return;
    wd->stopping = true;
    if (wd->started) {
        uv_close((uv_handle_t *)&wd->sig_term, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->sig_int, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->sig_hup, on_handle_closed_noop);
        uv_close((uv_handle_t *)&wd->notify_soon, on_handle_closed_noop);
    }
    generation_t *g = wd->gen;
    wd->gen = NULL;
    if (wd->admin)
        kcw_admin_close(wd->admin, NULL, NULL);
    wd->admin = NULL;
    generation_retire(wd, g);
    if (wd->http)
        kcw_http_close(wd->http, on_http_closed, wd);
}

void kcw_watchdog_free(kcw_watchdog_t *wd)
{
    if (!wd)
        return;
    if (wd->gen && !wd->started)
        generation_free(wd->gen);
    kcw_remediator_free(wd->rem);
    kcw_alert_set_free(wd->budget_set);
    for (size_t f = 0; f < wd->n_flush; f++) {
        free(wd->flush[f].cluster);
        free(wd->flush[f].connector);
    }
    free(wd->flush);
    free(wd);
}
