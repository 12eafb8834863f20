/* statuspage_state.c: the status page's state from the daemon's modules, and
 * its routes (see statuspage.h).
 *
 * Everything is read through the modules' public accessors, the ones the
 * JSON API uses: the Connect client's cluster models (as `kcwatch status`
 * and /api/v1/connect read them), the engine's alert sets and API views
 * (/api/v1/alerts, /api/v1/rules), the remediator's notes and target views,
 * the store's audit log (`kcwatch history`), the notifier's queue length,
 * the silence set (/api/v2/silences) and HA ownership (/api/v1/ha). The
 * request runs on the loop, so strings are borrowed from those modules for
 * the length of one render; only what a callback hands out briefly (audit
 * rows) or what is formatted here is copied, into memory the state holds.
 *
 * Cost: one pass over every connector and task to count and page the ones
 * not RUNNING, one over the alert sets (and a sort of the active alerts),
 * one over the remediator's targets; per row shown, a lookup. The audit log
 * is read newest first with a LIMIT. */
#include "kcwatch/statuspage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/config.h"
#include "kcwatch/connect.h"
#include "kcwatch/engine.h"
#include "kcwatch/ha.h"
#include "kcwatch/log.h"
#include "kcwatch/matchers.h"
#include "kcwatch/notify.h"
#include "kcwatch/remediate.h"
#include "kcwatch/silence.h"
#include "kcwatch/store.h"

#define MAX_PAGE 1000000 /* ?page= beyond this is read as this */

/* --- memory the state holds ------------------------------------------------ */

typedef struct chunk {
    struct chunk *next;
    char data[];
} chunk_t;

typedef struct held {
    chunk_t *chunks;
} held_t;

static void *hold_alloc(held_t *h, size_t n)
{
    chunk_t *c = calloc(1, sizeof(*c) + (n ? n : 1));
    if (!c)
        return NULL;
    c->next = h->chunks;
    h->chunks = c;
    return c->data;
}

static const char *hold_str(held_t *h, const char *s, bool *oom)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *p = hold_alloc(h, n + 1);
    if (!p) {
        *oom = true;
        return NULL;
    }
    memcpy(p, s, n + 1);
    return p;
}

/* --- small lookups --------------------------------------------------------- */

static const kcw_task_status_t *task_find(const kcw_connector_status_t *cs, int id)
{
    for (size_t i = 0; i < cs->n_tasks; i++)
        if (cs->tasks[i].id == id)
            return &cs->tasks[i];
    return NULL;
}

/* Whether the connector (task -1: it or any of its tasks) or the task is
 * not RUNNING in the latest model; false when the model does not know it. */
static bool still_broken(const kcw_connect_t *cn, const char *cluster, const char *connector,
                         int task)
{
    int ci = cn && cluster ? kcw_connect_cluster_index(cn, cluster) : -1;
    if (ci < 0)
        return cn == NULL; /* no model to ask (tests): keep it */
    const kcw_connector_status_t *cs =
        kcw_cluster_status_find(kcw_connect_cluster(cn, (size_t)ci), connector);
    if (!cs)
        return false;
    if (task >= 0) {
        const kcw_task_status_t *ts = task_find(cs, task);
        return ts && ts->state != KCW_STATE_RUNNING;
    }
    if (cs->state != KCW_STATE_RUNNING)
        return true;
    for (size_t i = 0; i < cs->n_tasks; i++)
        if (cs->tasks[i].state != KCW_STATE_RUNNING)
            return true;
    return false;
}

/* The remediation state the design names (healing, healed, failed,
 * unfixable, held) from the remediator's view of a target. */
static const char *remediation_state(const kcw_remediation_view_t *v)
{
    if (v->healing && !(v->has_event && v->last_event == KCW_REMEDIATION_RECOVERED))
        return "healing";
    if (v->exhausted)
        return "held";
    if (!v->has_event)
        return NULL;
    switch (v->last_event) {
    case KCW_REMEDIATION_SENT:
    case KCW_REMEDIATION_RETRY:
        return "healing";
    case KCW_REMEDIATION_RECOVERED:
    case KCW_REMEDIATION_STABLE:
        return "healed";
    case KCW_REMEDIATION_FAILED:
        return "failed";
    case KCW_REMEDIATION_UNRECOVERABLE:
        return "unfixable";
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
    case KCW_REMEDIATION_SKIPPED:
        return "held";
    case KCW_REMEDIATION_DRY_RUN:
        return "dry run";
    }
    return NULL;
}

/* Why a target is held back, or NULL when it is not. */
static const char *hold_kind(const kcw_remediation_view_t *v)
{
    if (v->exhausted)
        return "budget spent";
    if (!v->has_event)
        return NULL;
    switch (v->last_event) {
    case KCW_REMEDIATION_UNRECOVERABLE:
        return "unfixable";
    case KCW_REMEDIATION_SKIPPED:
        return "skipped";
    case KCW_REMEDIATION_BUDGET_EXHAUSTED:
        return "budget spent";
    case KCW_REMEDIATION_DRY_RUN:
        return "dry run";
    default:
        return NULL;
    }
}

static int cmp_target(const char *c1, const char *n1, int t1, const char *c2, const char *n2,
                      int t2)
{
    int c = strcmp(c1 ? c1 : "", c2 ? c2 : "");
    if (c == 0)
        c = strcmp(n1 ? n1 : "", n2 ? n2 : "");
    return c ? c : (t1 > t2) - (t1 < t2);
}

/* --- sections -------------------------------------------------------------- */

typedef struct collect {
    const kcw_statuspage_sources_t *src;
    kcw_statuspage_t *st;
    held_t *held;
    bool oom;
} collect_t;

static int clusters_and_problems(collect_t *c, size_t page)
{
    kcw_statuspage_t *st = c->st;
    const kcw_connect_t *cn = c->src->cn;
    size_t n = cn ? kcw_connect_cluster_count(cn) : 0;
    kcw_statuspage_cluster_t *rows = hold_alloc(c->held, n * sizeof(*rows));
    kcw_statuspage_problem_t *probs =
        hold_alloc(c->held, KCW_STATUSPAGE_PAGE_ROWS * sizeof(*probs));
    if (!rows || !probs)
        return -ENOMEM;
    size_t offset = (page - 1) * KCW_STATUSPAGE_PAGE_ROWS, total = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        const kcw_cluster_status_t *cs = kcw_connect_cluster(cn, i);
        kcw_statuspage_cluster_t *r = &rows[i];
        *r = (kcw_statuspage_cluster_t){
            .name = cs->name,
            .state = kcw_state_name(kcw_cluster_status_state(cs)),
            .version = cs->version,
            .worker_url = cs->worker_url,
            .last_error = cs->last_error,
            .last_poll_ms = cs->last_poll_ms,
            .n_connectors = cs->n_connectors,
        };
        if (c->src->ha) {
            r->ha_owner = kcw_ha_owner(c->src->ha, cs->name);
            r->ha_acting = kcw_ha_owns(c->src->ha, cs->name);
        }
        for (size_t k = 0; k < cs->n_connectors; k++) {
            const kcw_connector_status_t *con = &cs->connectors[k];
            r->n_tasks += con->n_tasks;
            for (size_t t = 0; t <= con->n_tasks; t++) {
                /* t == 0 is the connector itself, then its tasks */
                const kcw_task_status_t *ts = t ? &con->tasks[t - 1] : NULL;
                kcw_state_t state = ts ? ts->state : con->state;
                if (state == KCW_STATE_RUNNING)
                    continue;
                r->n_not_running++;
                if (total++ < offset || shown >= KCW_STATUSPAGE_PAGE_ROWS)
                    continue;
                probs[shown++] = (kcw_statuspage_problem_t){
                    .cluster = cs->name,
                    .connector = con->name,
                    .task = ts ? ts->id : -1,
                    .state = kcw_state_name(state),
                    .type = kcw_connector_type_name(con->type),
                    .worker_id = ts ? ts->worker_id : con->worker_id,
                    .trace = ts ? ts->trace : con->trace,
                };
            }
        }
    }
    st->clusters.rows = rows;
    st->clusters.n = st->clusters.total = n;
    st->problems.rows = probs;
    st->problems.n = shown;
    st->problems.offset = offset;
    st->problems.total = total;
    return 0;
}

/* Firing first, then the most recent. */
static int cmp_alert(const void *x, const void *y)
{
    const kcw_alert_t *a = *(const kcw_alert_t *const *)x, *b = *(const kcw_alert_t *const *)y;
    int fa = a->state == KCW_ALERT_FIRING, fb = b->state == KCW_ALERT_FIRING;
    if (fa != fb)
        return fb - fa;
    if (a->active_at_ms != b->active_at_ms)
        return a->active_at_ms < b->active_at_ms ? 1 : -1;
    return (a->fingerprint > b->fingerprint) - (a->fingerprint < b->fingerprint);
}

static size_t add_active(const kcw_alert_set_t *set, const kcw_alert_t **out, size_t n,
                         kcw_statuspage_t *st)
{
    for (size_t i = 0; set && i < kcw_alert_set_count(set); i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        if (a->state == KCW_ALERT_FIRING)
            st->n_firing++;
        else if (a->state == KCW_ALERT_PENDING)
            st->n_pending++;
        else
            continue;
        if (out)
            out[n] = a;
        n++;
    }
    return n;
}

static int alerts(collect_t *c, size_t page)
{
    kcw_statuspage_t *st = c->st;
    const kcw_engine_t *e = c->src->engine;
    if (!e)
        return 0;
    size_t nr = kcw_engine_rule_count(e);
    /* count, then gather: no array grows per alert */
    size_t total = 0;
    for (size_t ri = 0; ri < nr; ri++)
        total = add_active(kcw_engine_rule_alerts(e, ri), NULL, total, st);
    total = add_active(kcw_engine_budget_alerts(e), NULL, total, st);
    st->n_firing = st->n_pending = 0;
    const kcw_alert_t **all = malloc((total ? total : 1) * sizeof(*all));
    if (!all)
        return -ENOMEM;
    size_t n = 0;
    for (size_t ri = 0; ri < nr; ri++)
        n = add_active(kcw_engine_rule_alerts(e, ri), all, n, st);
    n = add_active(kcw_engine_budget_alerts(e), all, n, st);
    qsort(all, n, sizeof(*all), cmp_alert);
    size_t offset = (page - 1) * KCW_STATUSPAGE_PAGE_ROWS;
    size_t shown = offset < n ? n - offset : 0;
    if (shown > KCW_STATUSPAGE_PAGE_ROWS)
        shown = KCW_STATUSPAGE_PAGE_ROWS;
    kcw_statuspage_alert_t *rows = hold_alloc(c->held, shown * sizeof(*rows));
    if (!rows) {
        free(all);
        return -ENOMEM;
    }
    for (size_t i = 0; i < shown; i++) {
        const kcw_alert_t *a = all[offset + i];
        kcw_statuspage_alert_t *r = &rows[i];
        *r = (kcw_statuspage_alert_t){
            .alertname = kcw_labels_get(&a->labels, "alertname"),
            .state = kcw_alert_state_name(a->state),
            .active_at_ms = a->active_at_ms,
            .labels = &a->labels,
            .annotations = &a->annotations,
        };
        kcw_remediation_view_t v;
        if (c->src->rem && kcw_remediator_view(c->src->rem, &a->labels, st->now_ms, &v)) {
            r->remediation = remediation_state(&v);
            r->note = v.note && *v.note ? v.note : NULL;
        }
    }
    free(all);
    st->alerts.rows = rows;
    st->alerts.n = shown;
    st->alerts.offset = offset;
    st->alerts.total = n;
    return 0;
}

typedef struct audit_ctx {
    collect_t *c;
    kcw_statuspage_event_t *rows;
    size_t n;
} audit_ctx_t;

static int on_audit(const kcw_audit_t *a, void *arg)
{
    audit_ctx_t *x = arg;
    if (x->n >= KCW_STATUSPAGE_SHORT_ROWS) {
        x->n++; /* one more than shown: there are older ones */
        return 1;
    }
    held_t *h = x->c->held;
    bool *oom = &x->c->oom;
    bool restart = a->kind == KCW_AUDIT_RESTART;
    x->rows[x->n++] = (kcw_statuspage_event_t){
        .time_ms = a->time_ms,
        .cluster = hold_str(h, a->cluster, oom),
        .connector = hold_str(h, a->connector, oom),
        .task = a->task,
        .what = hold_str(h, restart ? a->reason : a->status, oom),
        .detail = hold_str(h, restart ? a->outcome : a->group_key, oom),
        .request = hold_str(h, restart ? a->request : a->receiver, oom),
        .http_status = a->http_status,
    };
    return 0;
}

static int audit(collect_t *c)
{
    kcw_statuspage_t *st = c->st;
    if (!c->src->store)
        return 0;
    st->audit_available = true;
    for (int k = 0; k < 2; k++) {
        audit_ctx_t x = {c, hold_alloc(c->held, KCW_STATUSPAGE_SHORT_ROWS * sizeof(*x.rows)), 0};
        if (!x.rows)
            return -ENOMEM;
        long rc = kcw_store_audit_latest(c->src->store, k ? KCW_AUDIT_NOTIFY : KCW_AUDIT_RESTART,
                                         KCW_STATUSPAGE_SHORT_ROWS + 1, on_audit, &x);
        if (rc < 0) {
            st->audit_available = false;
            st->audit_error = "the state store could not be read (see the log)";
            return 0;
        }
        size_t shown = x.n < KCW_STATUSPAGE_SHORT_ROWS ? x.n : KCW_STATUSPAGE_SHORT_ROWS;
        if (k) {
            st->notifications.rows = x.rows;
            st->notifications.n = shown;
            st->notifications.total = x.n;
        } else {
            st->restarts.rows = x.rows;
            st->restarts.n = shown;
            st->restarts.total = x.n;
        }
    }
    return c->oom ? -ENOMEM : 0;
}

typedef struct targets_ctx {
    collect_t *c;
    kcw_statuspage_hold_t *holds;
    size_t n_holds, cap_holds;
    kcw_statuspage_budget_t *budgets;
    size_t n_budgets, cap_budgets;
} targets_ctx_t;

static int on_target(const kcw_remediation_view_t *v, void *arg)
{
    targets_ctx_t *x = arg;
    if (v->exhausted) {
        if (x->n_budgets == x->cap_budgets) {
            size_t cap = x->cap_budgets ? x->cap_budgets * 2 : 16;
            kcw_statuspage_budget_t *p = realloc(x->budgets, cap * sizeof(*p));
            if (!p) {
                x->c->oom = true;
                return 1;
            }
            x->budgets = p;
            x->cap_budgets = cap;
        }
        x->budgets[x->n_budgets++] = (kcw_statuspage_budget_t){
            .cluster = v->cluster,
            .connector = v->connector,
            .task = v->task,
            .used = v->budget_used,
            .max = v->budget_max,
            .window_ms = v->budget_window_ms,
            .room_at_ms = v->budget_room_ms,
        };
    }
    const char *kind = hold_kind(v);
    /* A hold of something that runs again (fixed by hand) holds nothing. */
    if (!kind || !still_broken(x->c->src->cn, v->cluster, v->connector, v->task))
        return 0;
    if (x->n_holds == x->cap_holds) {
        size_t cap = x->cap_holds ? x->cap_holds * 2 : 16;
        kcw_statuspage_hold_t *p = realloc(x->holds, cap * sizeof(*p));
        if (!p) {
            x->c->oom = true;
            return 1;
        }
        x->holds = p;
        x->cap_holds = cap;
    }
    x->holds[x->n_holds++] = (kcw_statuspage_hold_t){.cluster = v->cluster,
                                                     .connector = v->connector,
                                                     .task = v->task,
                                                     .kind = kind,
                                                     .reason = v->note};
    return 0;
}

static int cmp_hold(const void *x, const void *y)
{
    const kcw_statuspage_hold_t *a = x, *b = y;
    return cmp_target(a->cluster, a->connector, a->task, b->cluster, b->connector, b->task);
}

static int cmp_budget(const void *x, const void *y)
{
    const kcw_statuspage_budget_t *a = x, *b = y;
    return cmp_target(a->cluster, a->connector, a->task, b->cluster, b->connector, b->task);
}

/* Sorted, the first KCW_STATUSPAGE_SHORT_ROWS kept in held memory. */
static int holds_and_budgets(collect_t *c)
{
    kcw_statuspage_t *st = c->st;
    if (!c->src->rem)
        return 0;
    targets_ctx_t x = {.c = c};
    kcw_remediator_each(c->src->rem, st->now_ms, on_target, &x);
    int rc = c->oom ? -ENOMEM : 0;
    if (rc == 0 && x.n_holds)
        qsort(x.holds, x.n_holds, sizeof(*x.holds), cmp_hold);
    if (rc == 0 && x.n_budgets)
        qsort(x.budgets, x.n_budgets, sizeof(*x.budgets), cmp_budget);
    size_t nh = x.n_holds < KCW_STATUSPAGE_SHORT_ROWS ? x.n_holds : KCW_STATUSPAGE_SHORT_ROWS;
    size_t nb = x.n_budgets < KCW_STATUSPAGE_SHORT_ROWS ? x.n_budgets : KCW_STATUSPAGE_SHORT_ROWS;
    kcw_statuspage_hold_t *h = rc == 0 ? hold_alloc(c->held, nh * sizeof(*h)) : NULL;
    kcw_statuspage_budget_t *b = rc == 0 ? hold_alloc(c->held, nb * sizeof(*b)) : NULL;
    if (h && b) {
        if (nh)
            memcpy(h, x.holds, nh * sizeof(*h));
        if (nb)
            memcpy(b, x.budgets, nb * sizeof(*b));
        st->holds.rows = h;
        st->holds.n = nh;
        st->holds.total = x.n_holds;
        st->budgets.rows = b;
        st->budgets.n = nb;
        st->budgets.total = x.n_budgets;
    } else {
        rc = -ENOMEM;
    }
    free(x.holds);
    free(x.budgets);
    return rc;
}

static int silences(collect_t *c)
{
    kcw_statuspage_t *st = c->st;
    const kcw_silences_t *set = c->src->silences;
    size_t n = set ? kcw_silences_count(set) : 0;
    kcw_statuspage_silence_t *rows =
        hold_alloc(c->held, KCW_STATUSPAGE_SHORT_ROWS * sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    size_t shown = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const kcw_silence_t *s = kcw_silences_at(set, i);
        kcw_silence_state_t state = kcw_silence_state(s, st->now_ms);
        if (state == KCW_SILENCE_EXPIRED)
            continue; /* what no longer mutes anything is not a hold */
        if (total++ >= KCW_STATUSPAGE_SHORT_ROWS)
            continue;
        char *m = kcw_matchers_format(&s->matchers);
        rows[shown++] = (kcw_statuspage_silence_t){
            .id = s->id,
            .matchers = m ? hold_str(c->held, m, &c->oom) : NULL,
            .state = kcw_silence_state_name(state),
            .starts_at_ms = s->starts_at_ms,
            .ends_at_ms = s->ends_at_ms,
            .created_by = s->created_by,
            .comment = s->comment,
            .from_config = s->from_config,
        };
        free(m);
        if (!m)
            c->oom = true;
    }
    st->silences.rows = rows;
    st->silences.n = shown;
    st->silences.total = total;
    return c->oom ? -ENOMEM : 0;
}

static int storms(collect_t *c)
{
    kcw_statuspage_t *st = c->st;
    if (!c->src->storms)
        return 0;
    kcw_statuspage_storm_t *rows = hold_alloc(c->held, KCW_STATUSPAGE_SHORT_ROWS * sizeof(*rows));
    if (!rows)
        return -ENOMEM;
    size_t total = c->src->storms(c->src->storms_arg, rows, KCW_STATUSPAGE_SHORT_ROWS);
    st->storms_available = true;
    st->storms.rows = rows;
    st->storms.n = total < KCW_STATUSPAGE_SHORT_ROWS ? total : KCW_STATUSPAGE_SHORT_ROWS;
    st->storms.total = total;
    return 0;
}

static int self(collect_t *c)
{
    kcw_statuspage_t *st = c->st;
    const kcw_statuspage_sources_t *src = c->src;
    if (src->cfg) {
        st->config_path = src->cfg->path;
        st->dry_run = src->cfg->remediation.dry_run;
        st->remediation_enabled = src->cfg->remediation.enabled;
    }
    st->reload_ok = src->reload_ok;
    st->reload_ok_ms = src->reload_ok_ms;
    st->reload_at_ms = src->reload_at_ms;
    st->ready = src->ready;
    st->outbox_length = src->notifier ? kcw_notifier_queue_length(src->notifier) : 0;
    st->store_open = src->store != NULL;
    st->store_durable = src->store && kcw_store_durable(src->store);
    if (src->engine) {
        size_t n = 0;
        kcw_api_group_view_t *views = kcw_engine_api_views(src->engine, &n);
        if (!views)
            return -ENOMEM;
        kcw_statuspage_group_t *rows = hold_alloc(c->held, n * sizeof(*rows));
        if (!rows) {
            kcw_engine_api_views_free(views, n);
            return -ENOMEM;
        }
        for (size_t gi = 0; gi < n; gi++) {
            const kcw_api_group_view_t *g = &views[gi];
            kcw_statuspage_group_t *r = &rows[gi];
            *r = (kcw_statuspage_group_t){.name = g->group->name,
                                          .file = g->group->file,
                                          .n_rules = g->n_rules,
                                          .last_eval_ms = g->last_eval_ms,
                                          .eval_seconds = g->eval_seconds};
            for (size_t ri = 0; ri < g->n_rules; ri++) {
                const kcw_api_rule_view_t *rv = &g->rules[ri];
                if (rv->health == KCW_RULE_HEALTH_OK)
                    r->n_ok++;
                else if (rv->health == KCW_RULE_HEALTH_ERR)
                    r->n_err++;
                else
                    r->n_unknown++;
                if (rv->health == KCW_RULE_HEALTH_ERR && !r->first_error)
                    r->first_error = rv->last_error;
            }
        }
        kcw_engine_api_views_free(views, n);
        st->groups.rows = rows;
        st->groups.n = st->groups.total = n;
    }
    if (src->ha) {
        st->ha_enabled = true;
        st->ha_instance = kcw_ha_instance(src->ha);
        st->ha_lease_ok = kcw_ha_lease_ok(src->ha);
        st->ha_error = kcw_ha_error(src->ha);
        size_t n = kcw_ha_key_count(src->ha);
        kcw_statuspage_ha_key_t *keys = hold_alloc(c->held, n * sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const char *key = kcw_ha_key(src->ha, i);
            keys[i] = (kcw_statuspage_ha_key_t){
                .key = key, .owner = kcw_ha_owner(src->ha, key), .acting = kcw_ha_owns(src->ha, key)};
        }
        st->ha_keys.rows = keys;
        st->ha_keys.n = st->ha_keys.total = n;
    }
    return 0;
}

int kcw_statuspage_collect(const kcw_statuspage_sources_t *src, int64_t now_ms, size_t page,
                           size_t alerts_page, kcw_statuspage_t *st)
{
    memset(st, 0, sizeof(*st));
    held_t *held = calloc(1, sizeof(*held));
    if (!held)
        return -ENOMEM;
    st->priv = held;
    st->now_ms = now_ms;
    st->version = KCW_VERSION;
    st->page = page < 1 ? 1 : page > MAX_PAGE ? MAX_PAGE : page;
    st->alerts_page = alerts_page < 1 ? 1 : alerts_page > MAX_PAGE ? MAX_PAGE : alerts_page;
    collect_t c = {.src = src, .st = st, .held = held};
    int rc = clusters_and_problems(&c, st->page);
    if (rc == 0)
        rc = alerts(&c, st->alerts_page);
    if (rc == 0)
        rc = audit(&c);
    if (rc == 0)
        rc = holds_and_budgets(&c);
    if (rc == 0)
        rc = silences(&c);
    if (rc == 0)
        rc = storms(&c);
    if (rc == 0)
        rc = self(&c);
    if (rc < 0)
        kcw_statuspage_release(st);
    return rc;
}

void kcw_statuspage_release(kcw_statuspage_t *st)
{
    if (!st)
        return;
    held_t *h = st->priv;
    while (h && h->chunks) {
        chunk_t *next = h->chunks->next;
        free(h->chunks);
        h->chunks = next;
    }
    free(h);
    memset(st, 0, sizeof(*st));
}

/* --- routes ---------------------------------------------------------------- */

/* ?name=N as a number from 1, def when absent or not a number. */
static size_t arg_number(const kcw_admin_request_t *req, const char *name, size_t def)
{
    const char *v = kcw_admin_request_arg(req, name);
    if (!v || !*v)
        return def;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || v[0] == '-')
        return def;
    return n > MAX_PAGE ? MAX_PAGE : (size_t)n;
}

static int handle_page(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    kcw_statuspage_api_t *api = arg;
    kcw_statuspage_sources_t src = {0};
    api->sources(api->arg, &src);
    kcw_statuspage_t st;
    int rc = kcw_statuspage_collect(&src, api->now_ms(api->arg), arg_number(req, "page", 1),
                                    arg_number(req, "alerts", 1), &st);
    if (rc < 0)
        return rc;
    size_t refresh = arg_number(req, "refresh", 0);
    st.refresh_s = refresh == 0 ? 0 : refresh < 5 ? 5 : refresh > 3600 ? 3600 : (unsigned)refresh;
    size_t len = 0;
    char *html = kcw_statuspage_render(&st, &len);
    kcw_statuspage_release(&st);
    if (!html)
        return -ENOMEM;
    resp->status = 200;
    resp->body = html;
    resp->body_len = len;
    resp->content_type = KCW_STATUSPAGE_CT_HTML;
    return 0;
}

static int handle_css(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    (void)arg;
    return kcw_admin_response_text(resp, 200, KCW_STATUSPAGE_CT_CSS, kcw_statuspage_css());
}

int kcw_statuspage_api_register(kcw_admin_t *admin, kcw_statuspage_api_t *api)
{
    int rc = kcw_admin_route(admin, "GET", "/", handle_page, api);
    if (rc == 0)
        rc = kcw_admin_route(admin, "GET", KCW_STATUSPAGE_CSS_PATH, handle_css, api);
    return rc;
}
