/* watchdog_api.c: the admin server's routes (admin.h): health and
 * readiness, the Prometheus-shaped alert and rule APIs, ownership, reload,
 * /metrics (refreshed from every module's counters when scraped), and the
 * silences of the config and of /api/v2/silences (silence.h), which the
 * notifier consults and the store keeps. */
#include "watchdog_int.h"

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
    /* Prometheus' repeated filters, up to 256 values each. */
    const char *names[256], *groups[256], *files[256];
    kcw_api_rules_filter_t f = {
        .type = type,
        .rule_names = names,
        .n_rule_names = kcw_admin_request_args(req, "rule_name[]", names, 256),
        .groups = groups,
        .n_groups = kcw_admin_request_args(req, "rule_group[]", groups, 256),
        .files = files,
        .n_files = kcw_admin_request_args(req, "file[]", files, 256)};
    if (f.n_rule_names > 256 || f.n_groups > 256 || f.n_files > 256)
        return kcw_admin_response_error(resp, 400, "bad_data",
                                        "more than 256 values of one rule filter");
    size_t n = 0;
    kcw_api_group_view_t *views = kcw_engine_api_views(wd->gen->engine, &n);
    json_t *data = kcw_api_rules_filtered(views, n, &f);
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
    kcw_watchdog_t *wd = arg;
    kcw_log(KCW_LOG_INFO, "reload requested over HTTP", NULL);
    kcw_errors_t errs = {0};
    int rc = kcw_watchdog_reload_report(wd, &errs);
    if (rc == -EINPROGRESS) {
        /* the request waits for Prometheus' verdict (reload_gate.h) */
        rc = kcw_reload_gate_defer(&wd->reload_gate, req);
        if (rc != KCW_ADMIN_DEFERRED)
            rc = kcw_admin_response_text(resp, 202, NULL,
                                         "reload accepted: Prometheus is checking the rules' "
                                         "PromQL; the outcome is logged and in "
                                         "kcwatch_config_last_reload_successful\n");
    } else if (rc == -EINVAL) {
        rc = kcw_admin_reload_failed(resp, "reload failed: keeping the running configuration",
                                     &errs);
    } else if (rc < 0) {
        rc = kcw_admin_response_text(resp, 500, NULL, "failed to reload config: see the log\n");
    } else {
        rc = kcw_reload_gate_applied_text(&wd->reload_gate, resp);
    }
    kcw_errors_clear(&errs);
    return rc;
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

void kcw_wd_silence_dropped(const kcw_silence_t *s, void *arg)
{
    kcw_watchdog_t *wd = arg;
    kcw_store_silence_delete(wd->store, s->id);
}

/* The config's silences, the API's from the store, and the notifier's view
 * of both. */
int kcw_wd_silences_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    if (!(wd->silences = kcw_silences_new()) ||
        kcw_silences_set_config(wd->silences, cfg->silences, cfg->n_silences) < 0)
        return -ENOMEM;
    long n = kcw_store_silence_load(wd->store, on_stored_silence, wd);
    if (n > 0) {
        kcw_log(KCW_LOG_INFO, "silences restored", KCW_LOG_INT("silences", n), NULL);
    }
    kcw_store_begin(wd->store);
    kcw_silences_gc(wd->silences, wall_now_ms(), kcw_wd_silence_dropped, wd);
    kcw_store_commit(wd->store);
    wd->silence_api = (kcw_silence_api_t){
        .set = wd->silences, .now_ms = silence_now, .save = silence_save, .arg = wd};
    kcw_notifier_set_silences(wd->notifier, wd->silences);
    return 0;
}

/* Storms in progress for the status page: the KcwatchFailureStorm alerts the
 * remediator raises (storm.h) among the engine's built-in alerts. */
static size_t statuspage_storms(void *arg, kcw_statuspage_storm_t *out, size_t max)
{
    kcw_watchdog_t *wd = arg;
    const kcw_alert_set_t *set = wd->gen ? kcw_engine_budget_alerts(wd->gen->engine) : NULL;
    size_t total = 0;
    for (size_t i = 0; set && i < kcw_alert_set_count(set); i++) {
        const kcw_alert_t *a = kcw_alert_set_at(set, i);
        const char *name = kcw_labels_get(&a->labels, "alertname");
        if (!name || strcmp(name, KCW_STORM_ALERT) != 0 || a->state == KCW_ALERT_INACTIVE)
            continue;
        if (total < max) {
            const char *tasks = kcw_labels_get(&a->annotations, "tasks");
            out[total] = (kcw_statuspage_storm_t){
                .cluster = kcw_labels_get(&a->labels, "cluster"),
                .key = kcw_labels_get(&a->labels, "root_cause"),
                .n_failed = tasks ? strtoul(tasks, NULL, 10) : 0,
                .since_ms = a->active_at_ms,
                .action = kcw_labels_get(&a->annotations, "canary"),
            };
        }
        total++;
    }
    return total;
}

/* The status page reads the current generation's parts (statuspage.h). */
static void statuspage_sources(void *arg, kcw_statuspage_sources_t *src)
{
    kcw_watchdog_t *wd = arg;
    generation_t *g = wd->gen;
    *src = (kcw_statuspage_sources_t){.cfg = g ? g->cfg : NULL,
                                      .engine = g ? g->engine : NULL,
                                      .cn = g ? g->cn : NULL,
                                      .rem = wd->rem,
                                      .notifier = wd->notifier,
                                      .store = wd->store,
                                      .silences = wd->silences,
                                      .ha = wd->ha,
                                      .reload_ok = wd->reload_ok,
                                      .ready = wd->ready,
                                      .reload_ok_ms = wd->reload_ok_ms,
                                      .reload_at_ms = wd->reload_at_ms,
                                      .storms = statuspage_storms,
                                      .storms_arg = wd};
}

int kcw_wd_admin_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    char err[256] = "";
    kcw_admin_opts_t opts;
    kcw_admin_conf_opts(cfg, &opts);
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
    wd->statuspage = (kcw_statuspage_api_t){
        .sources = statuspage_sources, .now_ms = silence_now, .arg = wd};
    if (kcw_statuspage_api_register(wd->admin, &wd->statuspage) < 0)
        return -ENOMEM;
    int rc = kcw_admin_start(wd->admin, err, sizeof(err));
    if (rc < 0) {
        kcw_log(KCW_LOG_ERROR, "admin server cannot listen", "listen", cfg->listen, "error", err,
                NULL);
        return rc;
    }
    return 0; /* the server logs its listening line */
}
