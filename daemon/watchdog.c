/* watchdog.c: the daemon's wiring on one libuv loop (see watchdog.h).
 *
 * What to evaluate, when, and what follows from it is the engine's
 * (engine.h); the watchdog connects it to the world, in the files that
 * watchdog_int.h lists. This one holds the lifecycle. Start opens the store,
 * joins the other instances (ha), starts the admin server and the first
 * generation (watchdog_gen.c: one configuration's engine, clients and
 * timers). Reload loads the new configuration, has its PromQL checked
 * (reload_gate.h) and builds a new generation whose engine takes the alert
 * states over; the old one is retired. Stop hands ownership over (ha), saves
 * the alert states, and closes the notifier, the generation and the HTTP
 * client in an order where no callback reaches freed memory. */
#include "watchdog_int.h"

/* --- public -------------------------------------------------------------- */

static int reload_apply(void *arg, kcw_config_t *cfg, kcw_ruleset_t *rules);
static void reload_refused(void *arg);

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
    wd->alertlog = kcw_alertlog_new(0);
    wd->reload_ok = true;
    wd->reload_ok_ms = (int64_t)time(NULL) * 1000;
    wd->reload_gate = (kcw_reload_gate_t){.apply = reload_apply, .refused = reload_refused,
                                          .arg = wd};
    if (!wd->http || !wd->metrics || kcw_metrics_declare_self(wd->metrics, KCW_VERSION) < 0 ||
        kcw_wd_generation_build(wd, g, NULL) < 0) {
        /* The client's handles close when the caller runs the loop. */
        if (wd->http)
            kcw_http_close(wd->http, NULL, NULL);
        wd->http = NULL;
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
    kcw_log(KCW_LOG_INFO, "shutting down", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT",
            NULL);
    kcw_watchdog_stop(wd);
}

int kcw_watchdog_start(kcw_watchdog_t *wd)
{
    generation_t *g = wd->gen;
    wd->rem =
        kcw_remediator_new(wd->loop, NULL, &g->cfg->remediation, kcw_wd_on_remediation, wd);
    wd->notifier = kcw_notifier_new(wd->loop, wd->http, g->cfg, kcw_wd_on_notify_event, wd);
    if (!wd->rem || !wd->notifier)
        return -ENOMEM;
    int rc = kcw_wd_ha_start(wd);
    if (rc < 0)
        return rc;
    rc = kcw_wd_store_start(wd);
    if (rc < 0)
        return rc;
    if ((rc = kcw_wd_silences_start(wd)) < 0)
        return rc;
    rc = kcw_wd_admin_start(wd);
    if (rc < 0)
        return rc;
    rc = kcw_wd_generation_start(wd, g);
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
    kcw_log(KCW_LOG_INFO, "kcwatch started", "version", KCW_VERSION,
            KCW_LOG_INT("clusters", kcw_connect_cluster_count(g->cn)),
            KCW_LOG_INT("rules", n_rules),
            "config", g->cfg->path ? g->cfg->path : "(built-in defaults)",
            KCW_LOG_BOOL("dry_run", g->cfg->remediation.dry_run), NULL);
    kcw_sdnotify_ready(wd->sd);
    return 0;
}

int kcw_watchdog_reload(kcw_watchdog_t *wd)
{
    return kcw_watchdog_reload_report(wd, NULL);
}

int kcw_watchdog_reload_report(kcw_watchdog_t *wd, kcw_errors_t *report)
{
    if (wd->stopping)
        return -ECANCELED;
    const char *path = wd->gen->cfg->path;
    wd->reload_at_ms = wall_now_ms();
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
        if (report) {
            *report = errs; /* handed over whole */
            errs = (kcw_errors_t){0};
        }
        kcw_errors_clear(&errs);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -EINVAL;
    }
    kcw_errors_clear(&errs);
    kcw_errors_log_warnings(&cfg->warnings, "configuration warning");
    kcw_errors_log_warnings(&rules->warnings, "configuration warning");
    const kcw_ha_conf_t *was = &wd->gen->cfg->ha, *now = &cfg->ha;
    if ((was->n_endpoints > 0) != (now->n_endpoints > 0) || strcmp(was->prefix, now->prefix) != 0 ||
        strcmp(was->instance ? was->instance : "", now->instance ? now->instance : "") != 0) {
        /* Ownership records live under the prefix and the instance's name:
         * changing them under a held lease would leave both behind. */
        kcw_log(KCW_LOG_ERROR,
                "reload failed: ha on/off, ha.etcd.prefix and ha.instance change only with a "
                "restart; keeping the running configuration",
                NULL);
        if (report)
            kcw_errors_add(report, path, 0, 0,
                           "ha on/off, ha.etcd.prefix and ha.instance change only with a restart");
        wd->reload_ok = false;
        kcw_sdnotify_ready(wd->sd);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return -EINVAL;
    }
    /* Prometheus is asked only about the exprs it has not accepted yet. */
    kcw_promql_carry(rules, wd->gen ? wd->gen->rules : NULL);
    /* The running rules' verifier (e.g. the start-up's check) waits while
     * the reload's own check asks, rather than ask the same beside it. */
    generation_t *running = wd->gen;
    kcw_promql_verifier_pause(running ? running->pq : NULL);
    int grc = kcw_reload_gate_submit(&wd->reload_gate, wd->http, cfg, rules, report);
    if (grc != -EINPROGRESS && running && wd->gen == running)
        kcw_promql_verifier_resume(running->pq); /* not applied */
    return grc;
}

/* Prometheus rejected the new rules' PromQL (reload_gate.h). */
static void reload_refused(void *arg)
{
    kcw_watchdog_t *wd = arg;
    wd->reload_ok = false;
    kcw_promql_verifier_resume(wd->gen ? wd->gen->pq : NULL);
    kcw_sdnotify_ready(wd->sd);
    kcw_sdnotify_status(wd->sd, "reload failed: running on the previous configuration");
}

/* The new configuration, checked: a generation built from it takes over. */
static int reload_apply(void *arg, kcw_config_t *cfg, kcw_ruleset_t *rules)
{
    kcw_watchdog_t *wd = arg;
    const char *path = cfg->path;
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
    if (kcw_wd_generation_build(wd, g, old) < 0) {
        /* The engine takes nothing over unless it was built whole. */
        kcw_wd_generation_free(g);
        kcw_log(KCW_LOG_ERROR, "reload failed: out of memory; keeping the running configuration",
                NULL);
        wd->reload_ok = false;
        kcw_promql_verifier_resume(old ? old->pq : NULL);
        kcw_sdnotify_ready(wd->sd);
        return -ENOMEM;
    }
    /* global.log first, so what the switch logs follows it (pinned flags win). */
    kcw_log_configure((kcw_log_format_t)cfg->log_format, (kcw_log_level_t)cfg->log_level);
    if (wd->admin)
        kcw_admin_conf_apply(wd->admin, old->cfg, cfg);
    wd->gen = g;
    if (wd->ha) {
        kcw_ha_set_conf(wd->ha, &cfg->ha);
        if (kcw_wd_ha_keys_set(wd) < 0)
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
    int rc = kcw_wd_generation_start(wd, g);
    kcw_remediator_set_connect(wd->rem, g->cn);
    kcw_wd_generation_retire(wd, old);
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
    kcw_reload_gate_drop(&wd->reload_gate);
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
            kcw_wd_snapshot_alerts(wd);
        kcw_store_prune_stop(wd->store);
        if (wd->snapshot_on)
            uv_close((uv_handle_t *)&wd->snapshot, on_handle_closed_noop);
        wd->snapshot_on = false;
    }
    /* The notifier reads the generation's config (receivers, routes) in its
     * transfer callbacks: close it now, cancelling its deliveries while the
     * config is alive, not after ha's revoke answers. */
    if (wd->notifier)
        kcw_notifier_close(wd->notifier, on_notifier_closed, wd);
    wd->notifier = NULL;
    generation_t *g = wd->gen;
    wd->gen = NULL;
    if (wd->admin)
        kcw_admin_close(wd->admin, NULL, NULL);
    wd->admin = NULL;
    kcw_wd_generation_retire(wd, g);
    if (wd->http && !ha)
        kcw_http_close(wd->http, on_http_closed, wd);
}

void kcw_watchdog_free(kcw_watchdog_t *wd)
{
    if (!wd)
        return;
    if (wd->gen && !wd->started)
        kcw_wd_generation_free(wd->gen);
    kcw_remediator_free(wd->rem);
    kcw_store_close(wd->store); /* after the notifier: its queue stays in the outbox */
    kcw_silences_free(wd->silences);
    kcw_metrics_free(wd->metrics);
    kcw_alertlog_free(wd->alertlog);
    free(wd);
}
