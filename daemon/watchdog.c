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

#include "kcwatch/alerts.h"
#include "kcwatch/connect.h"
#include "kcwatch/eval.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/notify.h"
#include "kcwatch/remediate.h"

#define BUDGET_ALERT "KcwatchRestartBudgetExhausted"
#define NOTE_ANNOTATION "remediation"

typedef struct rule_state {
    const kcw_rule_t *rule;
    const kcw_rule_group_t *group;
    kcw_alert_set_t *set;
    bool warned_expr;
} rule_state_t;

typedef struct group_state {
    kcw_watchdog_t *wd;
    const kcw_rule_group_t *group;
    size_t first_rule, n_rules;
    bool has_connect;
    uv_timer_t timer;
} group_state_t;

/* One configuration generation: config, rules, the state built on them and the
 * Connect client polling with them. Retired generations live until their
 * handles are closed. */
typedef struct generation {
    kcw_watchdog_t *wd;
    kcw_config_t *cfg;
    kcw_ruleset_t *rules;
    kcw_connect_t *cn;
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
    bool started, stopping;
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

static void eval_rule(kcw_watchdog_t *wd, rule_state_t *r, int64_t now)
{
    generation_t *g = wd->gen;
    const kcw_rule_t *rule = r->rule;
    if (!rule->connect) {
        if (!r->warned_expr) {
            kcw_log(KCW_LOG_WARN, "PromQL rule not evaluated: the Prometheus client is not built in yet",
                    "rule", rule->alert, "group", r->group->name, "file", rule->file, NULL);
            r->warned_expr = true;
        }
        return;
    }
    size_t n_clusters = kcw_connect_cluster_count(g->cn);
    const kcw_cluster_status_t **clusters = calloc(n_clusters ? n_clusters : 1, sizeof(*clusters));
    if (!clusters)
        return;
    for (size_t i = 0; i < n_clusters; i++)
        clusters[i] = kcw_connect_cluster(g->cn, i);
    kcw_instance_t *inst = NULL;
    size_t n_inst = 0;
    int rc = kcw_eval_connect_rule(rule, clusters, n_clusters, &g->cfg->external_labels, &inst,
                                   &n_inst);
    free(clusters);
    if (rc < 0) {
        kcw_log(KCW_LOG_ERROR, "rule evaluation failed", "rule", rule->alert, "error",
                strerror(-rc), NULL);
        return;
    }
    if (r->group->limit > 0 && n_inst > (size_t)r->group->limit) {
        /* Prometheus: exceeding the limit fails the rule and leaves its alerts as they were. */
        char buf[64];
        snprintf(buf, sizeof(buf), "%zu > %d", n_inst, r->group->limit);
        kcw_log(KCW_LOG_WARN, "rule evaluation failed: alert limit exceeded", "rule", rule->alert,
                "count", buf, NULL);
        for (size_t i = 0; i < n_inst; i++)
            kcw_instance_clear(&inst[i]);
        free(inst);
        return;
    }
    rc = kcw_alert_set_update(r->set, inst, n_inst, now);
    if (rc == -EEXIST)
        kcw_log(KCW_LOG_WARN, "rule evaluation failed: instances with the same label set",
                "rule", rule->alert, NULL);
    else
        log_transitions(r->set, now);
    for (size_t i = 0; i < n_inst; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
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

/* Evaluates the given groups (NULL: every group with connect rules), then
 * remediation and notification over all alerts. */
static void evaluate(kcw_watchdog_t *wd, group_state_t *only)
{
    if (wd->stopping)
        return;
    generation_t *g = wd->gen;
    int64_t now = wall_now_ms();
    for (size_t gi = 0; gi < g->n_gs; gi++) {
        group_state_t *gs = g->gs[gi];
        if (only ? gs != only : !gs->has_connect)
            continue;
        for (size_t i = 0; i < gs->n_rules; i++)
            eval_rule(wd, &g->rs[gs->first_rule + i], now);
    }
    for (size_t i = 0; i < g->n_rs; i++)
        remediate_rule(wd, &g->rs[i], now);
    eval_budget_alerts(wd, now);
    notify_all(wd, now);
}

static void on_group_timer(uv_timer_t *t)
{
    group_state_t *gs = t->data;
    evaluate(gs->wd, gs);
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
    if (changed)
        evaluate(wd, NULL);
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
    for (size_t i = 0; i < g->n_rs; i++)
        kcw_alert_set_free(g->rs[i].set);
    free(g->rs);
    for (size_t i = 0; i < g->n_gs; i++)
        free(g->gs[i]);
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
    return 0;
}

static int generation_start(kcw_watchdog_t *wd, generation_t *g)
{
    g->cn = kcw_connect_new(wd->loop, wd->http, g->cfg, on_poll, wd);
    if (!g->cn)
        return -ENOMEM;
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
    for (size_t i = 0; i < g->n_gs; i++) {
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
    int rc = generation_start(wd, g);
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
