/* watchdog_rounds.c: what drives the engine.
 *
 * One uv_timer per rule group ticks the engine on the group's schedule; the
 * queries a tick asks for go to Prometheus and their answers back to the
 * engine, and the round ends when the last answer is in. Poll results enter
 * through kcw_wd_on_poll(): the remediator sees every poll (to verify
 * restarts and time stable periods), and a changed status goes to the
 * engine at once, so a FAILED task is noticed within one poll. Each round
 * and each poll is one store transaction. */
#include "watchdog_int.h"

/* The clusters as the engine takes them; free() the array. */
const kcw_cluster_status_t **kcw_wd_cluster_views(generation_t *g, size_t *n)
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
        q->last_bytes = result->body_bytes;
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

void kcw_wd_on_group_timer(uv_timer_t *t)
{
    group_timer_t *gt = t->data;
    generation_t *g = gt->gen;
    kcw_watchdog_t *wd = g->wd;
    if (wd->stopping || wd->gen != g)
        return;
    size_t n_clusters, n_queries;
    const kcw_cluster_status_t **clusters = kcw_wd_cluster_views(g, &n_clusters);
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
        rc = g->prom ? kcw_prom_query_sized(g->prom, expr, at, gt->queries[qi].last_bytes,
                                            on_query_done, &gt->queries[qi])
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

void kcw_wd_on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
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
    kcw_log(KCW_LOG_DEBUG, "connect status changed", "cluster", status->name,
            KCW_LOG_INT("eval_ms", now), NULL);
    size_t n;
    const kcw_cluster_status_t **clusters = kcw_wd_cluster_views(wd->gen, &n);
    kcw_engine_connect_changed(wd->gen->engine, clusters, n, now);
    kcw_store_commit(wd->store);
    free(clusters);
    wd->ready = true;
}
