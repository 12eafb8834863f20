/* engine.c: rule-group state and evaluation (see engine.h).
 *
 * Data enters as Connect snapshots (kcw_engine_connect_changed, and the
 * connect half of a group tick) and PromQL answers (kcw_engine_group_result);
 * it leaves through the hooks: restart decisions, the budget alert,
 * notifications, transitions and rule health for the log. Everything is keyed
 * to the `now` the caller passes; the only clock read is the optional
 * hrtime hook used to time evaluations. */
#include "kcwatch/url.h"
#include "kcwatch/engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/eval.h"
#include "kcwatch/rootcause.h"

#define DEFAULT_INTERVAL_MS 60000
#define DUPLICATE_LABELSET                                                                         \
    "vector contains metrics with the same labelset after applying alert labels"
#define MAX_NEWS 1024 /* remediation news between two notifications */
#define SLOT_SLACK_MS 50

typedef struct rule_state {
    const kcw_rule_t *rule;
    const kcw_rule_group_t *group;
    kcw_alert_set_t *set;
    kcw_rule_health_t health;
    char *last_error;
    int64_t last_eval_ms;
    double eval_seconds;
} rule_state_t;

/* One PromQL query of a group round: its answer, evaluated into instances as
 * it arrives and applied when the round finishes. */
typedef struct query_slot {
    size_t rule; /* index into e->rs */
    bool answered;
    int rc; /* 0, or why the rule fails this round */
    char *error;
    kcw_instance_t *inst;
    size_t n_inst;
} query_slot_t;

typedef struct group_state {
    const kcw_rule_group_t *group;
    size_t first_rule, n_rules;
    bool has_connect, has_expr;
    int64_t interval_ms, offset_ms;
    query_slot_t *slots;
    size_t n_slots;
    bool in_flight;
    int64_t round_ms; /* evaluation time of the open round */
    uint64_t started_ns;
    int64_t last_eval_ms;
    double eval_seconds;
    uint64_t missed;
} group_state_t;

typedef struct news {
    char *cluster, *connector;
    int task;
    bool urgent; /* for a human now (flush), else with the group's next notification */
} news_t;

struct kcw_engine {
    const kcw_ruleset_t *rules;
    kcw_engine_opts_t opts;
    kcw_engine_hooks_t hooks;
    int64_t start_ms;
    int64_t last_round_ms; /* evaluation times never go backwards */
    rule_state_t *rs;
    size_t n_rs;
    group_state_t *gs;
    size_t n_gs;
    kcw_alert_set_t *budget_set;
    kcw_rootcause_t *rootcause; /* root_cause labels of connect: alerts */
    news_t *news;
    size_t n_news, cap_news;
    uint64_t rounds;
};

static uint64_t hrtime(const kcw_engine_t *e)
{
    return e->hooks.hrtime ? e->hooks.hrtime() : 0;
}

static double seconds_since(const kcw_engine_t *e, uint64_t t0)
{
    uint64_t t = hrtime(e);
    return t > t0 ? (double)(t - t0) / 1e9 : 0.0;
}

static void free_instances(kcw_instance_t *inst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
    free(inst);
}

static void slot_clear(query_slot_t *q)
{
    free_instances(q->inst, q->n_inst);
    free(q->error);
    q->inst = NULL;
    q->n_inst = 0;
    q->error = NULL;
    q->answered = false;
    q->rc = 0;
}

/* --- construction -------------------------------------------------------- */

static bool same_identity(const rule_state_t *a, const rule_state_t *b)
{
    return strcmp(a->group->name, b->group->name) == 0 &&
           strcmp(a->rule->alert, b->rule->alert) == 0 && a->rule->for_ms == b->rule->for_ms &&
           a->rule->keep_firing_for_ms == b->rule->keep_firing_for_ms &&
           (a->rule->connect != NULL) == (b->rule->connect != NULL);
}

static int build(kcw_engine_t *e)
{
    const kcw_ruleset_t *rules = e->rules;
    size_t n_rules = 0;
    for (size_t i = 0; i < rules->n_groups; i++)
        n_rules += rules->groups[i].n_rules;
    e->rs = calloc(n_rules ? n_rules : 1, sizeof(*e->rs));
    e->gs = calloc(rules->n_groups ? rules->n_groups : 1, sizeof(*e->gs));
    if (!e->rs || !e->gs)
        return -ENOMEM;
    int64_t fallback = e->opts.default_interval_ms > 0 ? e->opts.default_interval_ms
                                                       : DEFAULT_INTERVAL_MS;
    e->n_gs = rules->n_groups;
    for (size_t gi = 0; gi < rules->n_groups; gi++) {
        const kcw_rule_group_t *grp = &rules->groups[gi];
        group_state_t *gs = &e->gs[gi];
        gs->group = grp;
        gs->first_rule = e->n_rs;
        gs->n_rules = grp->n_rules;
        gs->interval_ms = e->opts.interval_override_ms > 0 ? e->opts.interval_override_ms
                          : grp->interval_ms > 0           ? grp->interval_ms
                                                           : fallback;
        /* Spread groups over the interval instead of querying all at once. */
        gs->offset_ms = e->opts.spread && rules->n_groups > 1
                            ? (int64_t)((uint64_t)gs->interval_ms * gi / rules->n_groups)
                            : 0;
        for (size_t ri = 0; ri < grp->n_rules; ri++) {
            rule_state_t *r = &e->rs[e->n_rs++];
            r->rule = &grp->rules[ri];
            r->group = grp;
            if (r->rule->connect)
                gs->has_connect = true;
            else
                gs->n_slots++;
        }
        gs->has_expr = gs->n_slots > 0;
        if (!gs->has_expr)
            continue;
        gs->slots = calloc(gs->n_slots, sizeof(*gs->slots));
        if (!gs->slots)
            return -ENOMEM;
        size_t k = 0;
        for (size_t ri = 0; ri < gs->n_rules; ri++)
            if (!e->rs[gs->first_rule + ri].rule->connect)
                gs->slots[k++].rule = gs->first_rule + ri;
    }
    return 0;
}

/* Moves alert sets (and the budget alert) over from prev, or makes fresh
 * ones. All allocations happen before anything moves, so a failure leaves
 * prev whole. */
static int adopt(kcw_engine_t *e, kcw_engine_t *prev)
{
    size_t *from = calloc(e->n_rs ? e->n_rs : 1, sizeof(*from));
    if (!from)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_rs; i++) {
        from[i] = SIZE_MAX;
        for (size_t j = 0; prev && j < prev->n_rs; j++) {
            if (!prev->rs[j].set || !same_identity(&prev->rs[j], &e->rs[i]))
                continue;
            bool taken = false;
            for (size_t k = 0; k < i && !taken; k++)
                taken = from[k] == j;
            if (!taken) {
                from[i] = j;
                break;
            }
        }
        if (from[i] == SIZE_MAX) {
            const kcw_rule_t *rule = e->rs[i].rule;
            e->rs[i].set = kcw_alert_set_new(rule->alert, rule->for_ms, rule->keep_firing_for_ms);
            if (!e->rs[i].set) {
                free(from);
                return -ENOMEM;
            }
        }
    }
    if (!prev || !prev->budget_set) {
        e->budget_set = kcw_alert_set_new(KCW_ENGINE_BUDGET_ALERT, 0, 0);
        if (!e->budget_set) {
            free(from);
            return -ENOMEM;
        }
    }
    /* Nothing can fail from here on. */
    for (size_t i = 0; i < e->n_rs; i++) {
        if (from[i] == SIZE_MAX)
            continue;
        rule_state_t *p = &prev->rs[from[i]];
        e->rs[i].set = p->set;
        e->rs[i].health = p->health;
        e->rs[i].last_error = p->last_error;
        e->rs[i].last_eval_ms = p->last_eval_ms;
        e->rs[i].eval_seconds = p->eval_seconds;
        p->set = NULL;
        p->last_error = NULL;
    }
    if (prev && prev->budget_set) {
        e->budget_set = prev->budget_set;
        prev->budget_set = NULL;
    }
    if (prev) {
        e->last_round_ms = prev->last_round_ms;
        e->news = prev->news;
        e->n_news = prev->n_news;
        e->cap_news = prev->cap_news;
        prev->news = NULL;
        prev->n_news = prev->cap_news = 0;
    }
    free(from);
    return 0;
}

kcw_engine_t *kcw_engine_new(const kcw_ruleset_t *rules, const kcw_engine_opts_t *opts,
                             const kcw_engine_hooks_t *hooks, kcw_engine_t *prev,
                             int64_t start_ms)
{
    kcw_engine_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->rules = rules;
    if (opts)
        e->opts = *opts;
    if (hooks)
        e->hooks = *hooks;
    e->start_ms = start_ms;
    if (!(e->rootcause = kcw_rootcause_new()) || build(e) < 0 || adopt(e, prev) < 0) {
        kcw_engine_free(e);
        return NULL;
    }
    return e;
}

void kcw_engine_free(kcw_engine_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_rs; i++) {
        kcw_alert_set_free(e->rs[i].set);
        free(e->rs[i].last_error);
    }
    free(e->rs);
    for (size_t gi = 0; gi < e->n_gs; gi++) {
        for (size_t q = 0; q < e->gs[gi].n_slots; q++)
            slot_clear(&e->gs[gi].slots[q]);
        free(e->gs[gi].slots);
    }
    free(e->gs);
    kcw_alert_set_free(e->budget_set);
    kcw_rootcause_free(e->rootcause);
    for (size_t i = 0; i < e->n_news; i++) {
        free(e->news[i].cluster);
        free(e->news[i].connector);
    }
    free(e->news);
    free(e);
}

/* --- schedule ------------------------------------------------------------ */

size_t kcw_engine_group_count(const kcw_engine_t *e)
{
    return e->n_gs;
}

const kcw_rule_group_t *kcw_engine_group(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs ? e->gs[gi].group : NULL;
}

int64_t kcw_engine_group_interval_ms(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs ? e->gs[gi].interval_ms : 0;
}

int64_t kcw_engine_group_first_tick_ms(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs ? e->gs[gi].offset_ms + e->gs[gi].interval_ms : 0;
}

int64_t kcw_engine_group_slot_ms(const kcw_engine_t *e, size_t gi, int64_t now_ms)
{
    if (gi >= e->n_gs)
        return now_ms;
    const group_state_t *gs = &e->gs[gi];
    int64_t first = e->start_ms + gs->offset_ms;
    /* A timer runs on the monotonic clock and now is wall time: a tick may
     * read a few ms before its slot. It still belongs to that slot. */
    int64_t slack = gs->interval_ms / 4 < SLOT_SLACK_MS ? gs->interval_ms / 4 : SLOT_SLACK_MS;
    if (now_ms + slack < first)
        return e->start_ms;
    return first + (now_ms + slack - first) / gs->interval_ms * gs->interval_ms;
}

void kcw_engine_set_start(kcw_engine_t *e, int64_t start_ms)
{
    e->start_ms = start_ms;
}

size_t kcw_engine_group_query_count(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs ? e->gs[gi].n_slots : 0;
}

bool kcw_engine_group_has_connect(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs && e->gs[gi].has_connect;
}

bool kcw_engine_group_has_expr(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs && e->gs[gi].has_expr;
}

bool kcw_engine_has_expr(const kcw_engine_t *e)
{
    for (size_t gi = 0; gi < e->n_gs; gi++)
        if (e->gs[gi].has_expr)
            return true;
    return false;
}

uint64_t kcw_engine_group_missed(const kcw_engine_t *e, size_t gi)
{
    return gi < e->n_gs ? e->gs[gi].missed : 0;
}

/* --- applying evaluations -------------------------------------------------- */

static void set_health(kcw_engine_t *e, rule_state_t *r, const char *error, int64_t now)
{
    bool episode = error ? r->health != KCW_RULE_HEALTH_ERR : r->health == KCW_RULE_HEALTH_ERR;
    bool changed = episode || (error && (!r->last_error || strcmp(r->last_error, error) != 0));
    char *copy = error ? strdup(error) : NULL;
    if (error && !copy)
        return; /* keep the old text rather than lose the state */
    free(r->last_error);
    r->last_error = copy;
    r->health = error ? KCW_RULE_HEALTH_ERR : KCW_RULE_HEALTH_OK;
    if (changed && e->hooks.health)
        e->hooks.health(e->hooks.arg, r->group, r->rule, error, episode, now);
}

/* One hook call per alert that became pending, firing or resolved at now,
 * and one state hook call per alert whose saved state changed. r is NULL for
 * the budget alert. */
static void report_transitions(kcw_engine_t *e, const rule_state_t *r, const kcw_alert_set_t *set,
                               int64_t now)
{
    if (!e->hooks.transition && !e->hooks.state)
        return;
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
        if (what && e->hooks.transition)
            e->hooks.transition(e->hooks.arg, a, what, now);
        if ((what || a->keep_firing_since_ms == now) && e->hooks.state)
            e->hooks.state(e->hooks.arg, r ? r->group : NULL, r ? r->rule : NULL, a, now);
    }
}

/* Copies of the labels of the set's pending alerts (for the gone hook);
 * returns how many (0 when out of memory: nothing is reported then). */
static size_t pending_labels(const kcw_alert_set_t *set, kcw_labels_t **out)
{
    size_t n = kcw_alert_set_count_state(set, KCW_ALERT_PENDING), k = 0;
    *out = n ? calloc(n, sizeof(**out)) : NULL;
    if (!*out)
        return 0;
    for (size_t i = 0; i < kcw_alert_set_count(set) && k < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a->state == KCW_ALERT_PENDING && kcw_labels_copy(&(*out)[k], &a->labels) == 0)
            k++;
    }
    return k;
}

/* Each instance links to where its rule lives, as Prometheus' generatorURL:
 * the Prometheus graph of the (normalised) expression, or the connect:
 * rule's entry in kcwatch's API. Best effort: none on allocation failure. */
static void set_generator_urls(const kcw_engine_t *e, const rule_state_t *r,
                               kcw_instance_t *inst, size_t n_inst)
{
    if (n_inst == 0)
        return; /* the common case: nothing to link */
    const kcw_rule_t *rule = r->rule;
    char *url = rule->expr ? kcw_url_generator(e->opts.prometheus_url,
                                               rule->expr_formatted ? rule->expr_formatted
                                                                    : rule->expr,
                                               NULL, NULL)
                           : kcw_url_generator(e->opts.external_url, NULL, r->group->name,
                                               rule->alert);
    /* One string for all of them: a storm's thousands of alerts share it. */
    char *shared = kcw_shared_str_new(url);
    free(url);
    for (size_t i = 0; shared && i < n_inst; i++) {
        kcw_shared_str_unref(inst[i].generator_url);
        inst[i].generator_url = kcw_shared_str_ref(shared);
    }
    kcw_shared_str_unref(shared);
}

/* Applies one evaluation's instances (taken) or its failure rc to the rule's
 * alert set at now, as Prometheus does: a failure leaves the alerts as they
 * were; more alerts than the group's limit drops them all and fails. */
static void apply(kcw_engine_t *e, rule_state_t *r, int rc, kcw_instance_t *inst, size_t n_inst,
                  const char *error, int64_t now)
{
    char msg[256];
    if (!r->set) { /* moved to a newer engine on reload */
        free_instances(inst, n_inst);
        return;
    }
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
        set_generator_urls(e, r, inst, n_inst);
        kcw_labels_t *pending = NULL;
        size_t n_pending = e->hooks.gone ? pending_labels(r->set, &pending) : 0;
        rc = kcw_alert_set_update(r->set, inst, n_inst, now);
        if (rc == -EEXIST)
            error = DUPLICATE_LABELSET;
        for (size_t i = 0; i < n_pending; i++) {
            if (rc == 0 && !kcw_alert_set_find(r->set, &pending[i]))
                e->hooks.gone(e->hooks.arg, r->group, r->rule, &pending[i]);
            kcw_labels_clear(&pending[i]);
        }
        free(pending);
    }
    if (rc < 0 && !error) {
        snprintf(msg, sizeof(msg), "%s", rc == -EEXIST ? DUPLICATE_LABELSET : strerror(-rc));
        error = msg;
    }
    free_instances(inst, n_inst);
    if (rc < 0) {
        set_health(e, r, error, now);
        return;
    }
    set_health(e, r, NULL, now);
    report_transitions(e, r, r->set, now);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Firing alerts of a restart: rule whose instance went away while the
 * healing hook says kcwatch's restart of the target is being verified: their
 * instance is put back as it was, so the alert stays firing (a restart's
 * RESTARTING is not a recovery). Linear-logarithmic in the rule's alerts.
 * Out of memory: the alerts resolve as before. */
static void hold_healing(kcw_engine_t *e, rule_state_t *r, kcw_instance_t **inst, size_t *n_inst,
                         int64_t now)
{
    if (!e->hooks.healing || !r->rule->restart.enabled || !r->set)
        return;
    size_t n_set = kcw_alert_set_count(r->set);
    size_t n_firing = kcw_alert_set_count_state(r->set, KCW_ALERT_FIRING);
    if (n_firing == 0)
        return;
    uint64_t *fps = *n_inst ? malloc(*n_inst * sizeof(*fps)) : NULL;
    if (*n_inst && !fps)
        return;
    for (size_t i = 0; i < *n_inst; i++)
        fps[i] = kcw_labels_fingerprint(&(*inst)[i].labels);
    if (*n_inst)
        qsort(fps, *n_inst, sizeof(*fps), cmp_u64);
    kcw_instance_t *grown = NULL;
    size_t n = *n_inst;
    for (size_t i = 0; i < n_set; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(r->set, i);
        if (a->state != KCW_ALERT_FIRING)
            continue;
        uint64_t fp = kcw_labels_fingerprint(&a->labels);
        if (*n_inst && bsearch(&fp, fps, *n_inst, sizeof(*fps), cmp_u64))
            continue;
        if (!e->hooks.healing(e->hooks.arg, &a->labels, now))
            continue;
        if (!grown) {
            grown = realloc(*inst, (*n_inst + n_firing) * sizeof(*grown));
            if (!grown)
                break;
            *inst = grown;
        }
        kcw_instance_t *in = &grown[n];
        memset(in, 0, sizeof(*in));
        in->value = a->value;
        if (kcw_labels_copy(&in->labels, &a->labels) < 0 ||
            kcw_labels_copy(&in->annotations, &a->annotations) < 0 ||
            (a->trace && !(in->trace = strdup(a->trace)))) {
            kcw_instance_clear(in);
            break;
        }
        n++;
    }
    *n_inst = n;
    free(fps);
}

static void eval_connect_rule(kcw_engine_t *e, rule_state_t *r,
                              const kcw_cluster_status_t *const *clusters, size_t n_clusters,
                              int64_t now)
{
    uint64_t t0 = hrtime(e);
    kcw_instance_t *inst = NULL;
    size_t n_inst = 0;
    int rc = kcw_eval_connect_rule(r->rule, clusters, n_clusters, e->opts.external_labels,
                                   e->rootcause, &inst, &n_inst);
    if (rc == 0)
        hold_healing(e, r, &inst, &n_inst, now);
    apply(e, r, rc, inst, n_inst, NULL, now);
    r->eval_seconds = seconds_since(e, t0);
}

/* Evaluates the connect rules of group gs (NULL: of every group) at now. */
static void eval_connect(kcw_engine_t *e, group_state_t *only,
                         const kcw_cluster_status_t *const *clusters, size_t n_clusters,
                         int64_t now)
{
    for (size_t gi = 0; gi < e->n_gs; gi++) {
        group_state_t *gs = &e->gs[gi];
        if ((only && gs != only) || !gs->has_connect)
            continue;
        uint64_t t0 = hrtime(e);
        size_t failed = 0;
        for (size_t i = 0; i < gs->n_rules; i++) {
            rule_state_t *r = &e->rs[gs->first_rule + i];
            if (!r->rule->connect)
                continue;
            eval_connect_rule(e, r, clusters, n_clusters, now);
            failed += r->health == KCW_RULE_HEALTH_ERR;
        }
        if (!gs->has_expr) {
            gs->last_eval_ms = now;
            gs->eval_seconds = seconds_since(e, t0);
        }
        /* A tick reports its group once its whole round is done. */
        if (!only && e->hooks.evaluated)
            e->hooks.evaluated(e->hooks.arg, gs->group, failed, seconds_since(e, t0), now);
    }
}

/* --- after a round: remediation, budget alert, notification --------------- */

static void update_budget_alert(kcw_engine_t *e, int64_t now)
{
    if (!e->hooks.budget || !e->budget_set)
        return;
    kcw_instance_t *inst = NULL;
    size_t n = 0;
    if (e->hooks.budget(e->hooks.arg, &inst, &n) < 0)
        return;
    if (kcw_alert_set_update(e->budget_set, inst, n, now) == 0)
        report_transitions(e, NULL, e->budget_set, now);
    /* kcw_alert_set_update cleared what it took; clear the rest either way */
    free_instances(inst, n);
}

/* Hands every firing alert to the sources hook. */
static void report_sources(kcw_engine_t *e, int64_t now)
{
    size_t n = e->budget_set ? kcw_alert_set_count(e->budget_set) : 0;
    for (size_t i = 0; i < e->n_rs; i++)
        n += e->rs[i].set ? kcw_alert_set_count(e->rs[i].set) : 0;
    const kcw_alert_t **firing = malloc((n ? n : 1) * sizeof(*firing));
    if (!firing)
        return; /* out of memory: the sources of the last round stay */
    size_t k = 0;
    for (size_t i = 0; i <= e->n_rs; i++) {
        const kcw_alert_set_t *set = i < e->n_rs ? e->rs[i].set : e->budget_set;
        size_t count = set ? kcw_alert_set_count(set) : 0;
        for (size_t j = 0; j < count; j++) {
            const kcw_alert_t *a = kcw_alert_set_at(set, j);
            if (a->state == KCW_ALERT_FIRING)
                firing[k++] = a;
        }
    }
    e->hooks.sources(e->hooks.arg, firing, k, now);
    free(firing);
}

static void after_round(kcw_engine_t *e, int64_t now)
{
    if (now > e->last_round_ms)
        e->last_round_ms = now;
    if (e->hooks.sources)
        report_sources(e, now);
    if (e->hooks.restart) {
        for (size_t i = 0; i < e->n_rs; i++) {
            rule_state_t *r = &e->rs[i];
            if (!r->rule->restart.enabled || !r->set)
                continue;
            size_t n = kcw_alert_set_count(r->set);
            for (size_t j = 0; j < n; j++) {
                const kcw_alert_t *a = kcw_alert_set_at(r->set, j);
                if (a->state == KCW_ALERT_FIRING)
                    e->hooks.restart(e->hooks.arg, r->rule, a, now);
            }
        }
    }
    update_budget_alert(e, now);
    kcw_engine_notify(e, now);
    e->rounds++;
}

/* Shallow view of an alert with the remediation note added to its
 * annotations and the remediation state to its labels; the copies are owned
 * by the view. */
typedef struct alert_view {
    kcw_alert_t alert;
    kcw_labels_t annotations;
    kcw_labels_t labels;
} alert_view_t;

typedef struct view_list {
    alert_view_t *items;
    size_t n, cap;
} view_list_t;

static void collect(kcw_engine_t *e, const kcw_alert_set_t *set, view_list_t *v, int64_t now)
{
    size_t count = set ? kcw_alert_set_count(set) : 0;
    for (size_t i = 0; i < count; i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a->state == KCW_ALERT_PENDING)
            continue;
        if (v->n == v->cap) {
            size_t ncap = v->cap ? v->cap * 2 : 64;
            alert_view_t *nv = realloc(v->items, ncap * sizeof(*nv));
            if (!nv)
                return;
            v->items = nv;
            v->cap = ncap;
        }
        alert_view_t *av = &v->items[v->n++];
        av->alert = *a;
        memset(&av->annotations, 0, sizeof(av->annotations));
        memset(&av->labels, 0, sizeof(av->labels));
        const char *state =
            e->hooks.heal_state ? e->hooks.heal_state(e->hooks.arg, &a->labels, now) : NULL;
        if (state && kcw_labels_copy(&av->labels, &a->labels) == 0 &&
            kcw_labels_set(&av->labels, KCW_ENGINE_STATE_LABEL, state) == 0)
            av->alert.labels = av->labels;
        const char *note = e->hooks.note ? e->hooks.note(e->hooks.arg, &a->labels) : NULL;
        if (note && kcw_labels_copy(&av->annotations, &a->annotations) == 0 &&
            kcw_labels_set(&av->annotations, KCW_ENGINE_NOTE_ANNOTATION, note) == 0)
            av->alert.annotations = av->annotations;
    }
}

static bool news_matches(const kcw_labels_t *l, const news_t *f)
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

static void news_clear(kcw_engine_t *e)
{
    for (size_t i = 0; i < e->n_news; i++) {
        free(e->news[i].cluster);
        free(e->news[i].connector);
    }
    e->n_news = 0;
}

void kcw_engine_notify(kcw_engine_t *e, int64_t now_ms)
{
    view_list_t v = {0};
    for (size_t i = 0; i < e->n_rs; i++)
        collect(e, e->rs[i].set, &v, now_ms);
    collect(e, e->budget_set, &v, now_ms);
    const kcw_alert_t **ptrs = calloc(v.n ? v.n : 1, sizeof(*ptrs));
    if (ptrs) {
        for (size_t i = 0; i < v.n; i++)
            ptrs[i] = &v.items[i].alert;
        if (e->hooks.notify)
            e->hooks.notify(e->hooks.arg, ptrs, v.n, now_ms);
        /* Urgent remediation news is for a human now, not after group_wait;
         * the rest goes out at once only to groups already notified. */
        for (size_t f = 0; f < e->n_news; f++) {
            void (*hook)(void *, const kcw_labels_t *) =
                e->news[f].urgent ? e->hooks.flush : e->hooks.refresh;
            for (size_t i = 0; hook && i < v.n; i++)
                if (v.items[i].alert.state == KCW_ALERT_FIRING &&
                    news_matches(&v.items[i].alert.labels, &e->news[f]))
                    hook(e->hooks.arg, &v.items[i].alert.labels);
        }
        free(ptrs);
    }
    news_clear(e);
    for (size_t i = 0; i < v.n; i++) {
        kcw_labels_clear(&v.items[i].annotations);
        kcw_labels_clear(&v.items[i].labels);
    }
    free(v.items);
}

static int news_add(kcw_engine_t *e, const char *cluster, const char *connector, int task,
                    bool urgent)
{
    if (!connector)
        return -EINVAL;
    for (size_t i = 0; i < e->n_news; i++) {
        news_t *f = &e->news[i];
        if (f->task == task && strcmp(f->connector, connector) == 0 &&
            ((!f->cluster && !cluster) || (f->cluster && cluster && !strcmp(f->cluster, cluster)))) {
            f->urgent = f->urgent || urgent;
            return 0; /* already queued */
        }
    }
    if (e->n_news >= MAX_NEWS)
        return -ENOBUFS;
    if (e->n_news == e->cap_news) {
        size_t ncap = e->cap_news ? e->cap_news * 2 : 8;
        news_t *nf = realloc(e->news, ncap * sizeof(*nf));
        if (!nf)
            return -ENOMEM;
        e->news = nf;
        e->cap_news = ncap;
    }
    news_t *f = &e->news[e->n_news];
    f->cluster = cluster ? strdup(cluster) : NULL;
    f->connector = strdup(connector);
    f->task = task;
    f->urgent = urgent;
    if (!f->connector || (cluster && !f->cluster)) {
        free(f->cluster);
        free(f->connector);
        return -ENOMEM;
    }
    e->n_news++;
    return 0;
}

int kcw_engine_remediation_news(kcw_engine_t *e, const char *cluster, const char *connector,
                                int task)
{
    return news_add(e, cluster, connector, task, true);
}

int kcw_engine_remediation_update(kcw_engine_t *e, const char *cluster, const char *connector,
                                  int task)
{
    return news_add(e, cluster, connector, task, false);
}

bool kcw_engine_news_pending(const kcw_engine_t *e)
{
    return e->n_news > 0;
}

/* --- rounds -------------------------------------------------------------- */

void kcw_engine_connect_changed(kcw_engine_t *e, const kcw_cluster_status_t *const *clusters,
                                size_t n_clusters, int64_t now_ms)
{
    if (now_ms < e->last_round_ms)
        now_ms = e->last_round_ms;
    eval_connect(e, NULL, clusters, n_clusters, now_ms);
    after_round(e, now_ms);
}

int kcw_engine_group_begin(kcw_engine_t *e, size_t gi, const kcw_cluster_status_t *const *clusters,
                           size_t n_clusters, int64_t now_ms, size_t *n_queries)
{
    *n_queries = 0;
    if (gi >= e->n_gs)
        return -EINVAL;
    group_state_t *gs = &e->gs[gi];
    if (gs->in_flight) {
        /* Prometheus calls these missed iterations: a slow Prometheus delays
         * the group, it does not pile up queries. */
        gs->missed++;
        return -EBUSY;
    }
    int64_t t = kcw_engine_group_slot_ms(e, gi, now_ms);
    if (t < e->last_round_ms)
        t = e->last_round_ms;
    gs->in_flight = true;
    gs->round_ms = t;
    gs->started_ns = hrtime(e);
    eval_connect(e, gs, clusters, n_clusters, t);
    for (size_t q = 0; q < gs->n_slots; q++)
        slot_clear(&gs->slots[q]);
    *n_queries = gs->n_slots;
    return 0;
}

const char *kcw_engine_query_expr(const kcw_engine_t *e, size_t gi, size_t qi)
{
    if (gi >= e->n_gs || qi >= e->gs[gi].n_slots)
        return NULL;
    return e->rs[e->gs[gi].slots[qi].rule].rule->expr;
}

int64_t kcw_engine_query_time_ms(const kcw_engine_t *e, size_t gi)
{
    if (gi >= e->n_gs)
        return 0;
    return e->gs[gi].round_ms - e->gs[gi].group->query_offset_ms;
}

/* An answer's instances wait in their slot until the round finishes. Those
 * of alerts the rule already has take references to the alert's frozen
 * labels (and annotations, when equal) instead of holding their own: a
 * storm rule's 1,200 waiting instances held as much again as its alerts,
 * while the next answer's tree was being parsed. */
static void share_known(const kcw_alert_set_t *set, kcw_instance_t *inst, size_t n)
{
    for (size_t i = 0; set && i < n; i++) {
        const kcw_alert_t *a = kcw_alert_set_find(set, &inst[i].labels);
        if (!a)
            continue;
        kcw_labels_t ref;
        if (kcw_labels_frozen(&a->labels) && kcw_labels_copy(&ref, &a->labels) == 0) {
            kcw_labels_clear(&inst[i].labels);
            inst[i].labels = ref;
        }
        if (kcw_labels_frozen(&a->annotations) &&
            kcw_labels_equal(&a->annotations, &inst[i].annotations) &&
            kcw_labels_copy(&ref, &a->annotations) == 0) {
            kcw_labels_clear(&inst[i].annotations);
            inst[i].annotations = ref;
        }
    }
}

void kcw_engine_group_result(kcw_engine_t *e, size_t gi, size_t qi,
                             const kcw_prom_result_t *result, const char *error)
{
    if (gi >= e->n_gs || qi >= e->gs[gi].n_slots || !e->gs[gi].in_flight)
        return;
    query_slot_t *q = &e->gs[gi].slots[qi];
    if (q->answered)
        return;
    q->answered = true;
    if (!result) {
        q->rc = -EIO;
        q->error = strdup(error && *error ? error : "query failed");
        return;
    }
    q->rc = kcw_eval_prom_rule(e->rs[q->rule].rule, result, e->opts.external_labels, &q->inst,
                               &q->n_inst);
    if (q->rc == 0 && q->n_inst > 0) {
        share_known(e->rs[q->rule].set, q->inst, q->n_inst);
        /* The list grew by doubling; it waits at its size. */
        kcw_instance_t *fit = realloc(q->inst, q->n_inst * sizeof(*fit));
        if (fit)
            q->inst = fit;
    }
    if (q->rc == -EINVAL)
        q->error = strdup("query result is not a vector or scalar");
}

void kcw_engine_group_finish(kcw_engine_t *e, size_t gi, int64_t now_ms)
{
    if (gi >= e->n_gs || !e->gs[gi].in_flight)
        return;
    group_state_t *gs = &e->gs[gi];
    gs->in_flight = false;
    for (size_t i = 0; i < gs->n_slots; i++) {
        query_slot_t *q = &gs->slots[i];
        rule_state_t *r = &e->rs[q->rule];
        if (!q->answered) {
            q->rc = -EIO;
            free(q->error);
            q->error = strdup("query not answered");
        }
        /* A failed query leaves the alerts as they were: Prometheus being
         * briefly down must not flap every alert to resolved. */
        apply(e, r, q->rc, q->inst, q->n_inst, q->error, gs->round_ms);
        q->inst = NULL;
        q->n_inst = 0;
        r->eval_seconds = seconds_since(e, gs->started_ns);
        slot_clear(q);
    }
    gs->last_eval_ms = gs->round_ms;
    gs->eval_seconds = seconds_since(e, gs->started_ns);
    if (e->hooks.evaluated) {
        size_t failed = 0;
        for (size_t i = 0; i < gs->n_rules; i++)
            failed += e->rs[gs->first_rule + i].health == KCW_RULE_HEALTH_ERR;
        e->hooks.evaluated(e->hooks.arg, gs->group, failed, gs->eval_seconds, gs->round_ms);
    }
    if (now_ms < gs->round_ms)
        now_ms = gs->round_ms;
    after_round(e, now_ms);
}

void kcw_engine_group_cancel(kcw_engine_t *e, size_t gi)
{
    if (gi >= e->n_gs)
        return;
    group_state_t *gs = &e->gs[gi];
    gs->in_flight = false;
    for (size_t q = 0; q < gs->n_slots; q++)
        slot_clear(&gs->slots[q]);
}

/* --- state ----------------------------------------------------------------- */

uint64_t kcw_engine_rounds(const kcw_engine_t *e)
{
    return e->rounds;
}

size_t kcw_engine_rule_count(const kcw_engine_t *e)
{
    return e->n_rs;
}

const kcw_rule_t *kcw_engine_rule(const kcw_engine_t *e, size_t ri)
{
    return ri < e->n_rs ? e->rs[ri].rule : NULL;
}

const kcw_alert_set_t *kcw_engine_rule_alerts(const kcw_engine_t *e, size_t ri)
{
    return ri < e->n_rs ? e->rs[ri].set : NULL;
}

kcw_rule_health_t kcw_engine_rule_health(const kcw_engine_t *e, size_t ri)
{
    return ri < e->n_rs ? e->rs[ri].health : KCW_RULE_HEALTH_UNKNOWN;
}

const char *kcw_engine_rule_last_error(const kcw_engine_t *e, size_t ri)
{
    return ri < e->n_rs ? e->rs[ri].last_error : NULL;
}

const kcw_rule_group_t *kcw_engine_rule_group(const kcw_engine_t *e, size_t ri)
{
    return ri < e->n_rs ? e->rs[ri].group : NULL;
}

int kcw_engine_restore_alert(kcw_engine_t *e, const char *group, const char *alertname,
                             const kcw_alert_t *alert)
{
    if (!group)
        return e->budget_set && strcmp(alertname, KCW_ENGINE_BUDGET_ALERT) == 0
                   ? kcw_alert_set_restore(e->budget_set, alert)
                   : -ENOENT;
    for (size_t i = 0; i < e->n_rs; i++)
        if (e->rs[i].set && strcmp(e->rs[i].group->name, group) == 0 &&
            strcmp(e->rs[i].rule->alert, alertname) == 0)
            return kcw_alert_set_restore(e->rs[i].set, alert);
    return -ENOENT;
}

const kcw_alert_set_t *kcw_engine_budget_alerts(const kcw_engine_t *e)
{
    return e->budget_set;
}

kcw_api_group_view_t *kcw_engine_api_views(const kcw_engine_t *e, size_t *n_out)
{
    *n_out = 0;
    kcw_api_group_view_t *views = calloc(e->n_gs ? e->n_gs : 1, sizeof(*views));
    if (!views)
        return NULL;
    for (size_t gi = 0; gi < e->n_gs; gi++) {
        const group_state_t *gs = &e->gs[gi];
        kcw_api_rule_view_t *rv = calloc(gs->n_rules ? gs->n_rules : 1, sizeof(*rv));
        if (!rv) {
            kcw_engine_api_views_free(views, gi);
            return NULL;
        }
        for (size_t i = 0; i < gs->n_rules; i++) {
            const rule_state_t *r = &e->rs[gs->first_rule + i];
            rv[i] = (kcw_api_rule_view_t){.rule = r->rule,
                                          .alerts = r->set,
                                          .health = r->health,
                                          .last_error = r->last_error,
                                          .last_eval_ms = r->last_eval_ms,
                                          .eval_seconds = r->eval_seconds};
        }
        views[gi] = (kcw_api_group_view_t){.group = gs->group,
                                           .interval_ms = gs->interval_ms,
                                           .rules = rv,
                                           .n_rules = gs->n_rules,
                                           .last_eval_ms = gs->last_eval_ms,
                                           .eval_seconds = gs->eval_seconds};
    }
    *n_out = e->n_gs;
    return views;
}

void kcw_engine_api_views_free(kcw_api_group_view_t *views, size_t n)
{
    for (size_t i = 0; views && i < n; i++)
        free((void *)views[i].rules);
    free(views);
}
