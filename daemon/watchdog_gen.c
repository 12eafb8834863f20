/* watchdog_gen.c: generations. A generation is one configuration: config,
 * rules, the engine evaluating them (taking the alert states of the previous
 * generation over), the Connect client polling with them, the PromQL
 * verifier and template-query cache, and one timer per rule group. It is
 * built whole or not at all, started, and retired on reload or stop; a
 * retired one is freed once its handles and clients are closed. */
#include "watchdog_int.h"

void kcw_wd_generation_free(generation_t *g)
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
    kcw_wd_generation_free(g);
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
int kcw_wd_generation_build(kcw_watchdog_t *wd, generation_t *g, generation_t *prev)
{
    kcw_engine_opts_t opts = {.default_interval_ms = g->cfg->evaluation_interval_ms,
                              .spread = true,
                              .external_labels = &g->cfg->external_labels,
                              .prometheus_url = g->cfg->prometheus.external_url
                                                    ? g->cfg->prometheus.external_url
                                                    : g->cfg->prometheus.url,
                              .external_url = g->cfg->external_url};
    kcw_engine_hooks_t hooks = kcw_wd_engine_hooks(wd);
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

int kcw_wd_generation_start(kcw_watchdog_t *wd, generation_t *g)
{
    g->cn = kcw_connect_new(wd->loop, wd->http, g->cfg, kcw_wd_on_poll, wd);
    if (!g->cn)
        return -ENOMEM;
    g->running = true;
    if (kcw_engine_has_expr(g->engine)) {
        g->prom = kcw_prom_new(wd->http, &g->cfg->prometheus);
        if (!g->prom)
            kcw_log(KCW_LOG_ERROR, "PromQL rules cannot run: no usable Prometheus client", "url",
                    g->cfg->prometheus.url ? g->cfg->prometheus.url : "", NULL);
        g->pq = kcw_promql_verifier_new(wd->loop, wd->http, &g->cfg->prometheus, g->rules);
    }
    g->tq = kcw_tquery_new(wd->http, &g->cfg->prometheus, g->cfg->evaluation_interval_ms,
                           wall_now_ms);
    g->tenv = (kcw_template_env_t){.external_url = g->cfg->external_url,
                                   .query = g->tq ? kcw_tquery_query : NULL,
                                   .query_arg = g->tq};
    kcw_rules_set_template_env(g->rules, &g->tenv);
    /* The schedule starts now, on both clocks. */
    uv_update_time(wd->loop);
    int64_t start = wall_now_ms();
    kcw_engine_set_start(g->engine, start);
    kcw_log(KCW_LOG_DEBUG, "rule group schedule starts", KCW_LOG_INT("start_ms", start), NULL);
    for (size_t i = 0; i < g->n_timers; i++) {
        group_timer_t *gt = &g->timers[i];
        uv_timer_init(wd->loop, &gt->timer);
        gt->timer.data = gt;
        g->closing++;
        int64_t interval = kcw_engine_group_interval_ms(g->engine, i);
        uv_timer_start(&gt->timer, kcw_wd_on_group_timer,
                       (uint64_t)kcw_engine_group_first_tick_ms(g->engine, i), (uint64_t)interval);
    }
    g->closing++; /* the Connect client */
    return kcw_connect_start(g->cn);
}

void kcw_wd_generation_retire(kcw_watchdog_t *wd, generation_t *g)
{
    if (!g)
        return;
    wd->retiring++;
    g->retired = true;
    /* Queries in flight come back cancelled, from inside this call. */
    kcw_prom_free(g->prom);
    g->prom = NULL;
    kcw_rules_set_template_env(g->rules, NULL);
    kcw_tquery_free(g->tq);
    g->tq = NULL;
    if (g->pq) {
        g->closing++;
        kcw_promql_verifier_close(g->pq, on_cn_closed, g);
        g->pq = NULL;
    }
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
