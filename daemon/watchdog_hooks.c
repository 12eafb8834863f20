/* watchdog_hooks.c: what the engine, the remediator and the notifier hand
 * back to the watchdog.
 *
 * The engine's hooks: restarts go to the remediator, alerts to the notifier
 * (only those this instance may act for, see watchdog_ha.c), alert states
 * that changed to the store inside the current round's transaction,
 * transitions and rule health to the log and the metrics. Remediation
 * events change what a notification says; they reach the engine here and
 * are notified from a fresh stack (notify_soon). */
#include "watchdog_int.h"

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
    if (wd->rem && kcw_wd_ha_may_act(wd, &alert->labels))
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
    if (kcw_wd_ha_alert_instance(wd, &more[*n_out]) < 0) {
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
    kcw_alertlog_flush(wd->alertlog); /* the evaluation is over */
    if (wd->notifier && !wd->ha) {
        kcw_notifier_update(wd->notifier, alerts, n, now_ms);
    } else if (wd->notifier) {
        /* Only what this instance owns; what it gave up leaves the notifier
         * silently first, so it is not taken for resolved. */
        kcw_notifier_forget(wd->notifier, kcw_wd_ha_not_mine, wd);
        const kcw_alert_t **mine = calloc(n ? n : 1, sizeof(*mine));
        size_t m = 0;
        for (size_t i = 0; mine && i < n; i++)
            if (kcw_wd_ha_may_act(wd, &alerts[i]->labels))
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
    if (wd->notifier && kcw_wd_ha_may_act(wd, labels))
        kcw_notifier_flush_for(wd->notifier, labels);
}

static void hook_refresh(void *arg, const kcw_labels_t *labels)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier && kcw_wd_ha_may_act(wd, labels))
        kcw_notifier_refresh_for(wd->notifier, labels);
}

/* The moment of detection, visible without a receiver (summarised in a
 * storm: alertlog.h). */
static void hook_transition(void *arg, const kcw_alert_t *a, const char *what, int64_t now_ms)
{
    kcw_watchdog_t *wd = arg;
    kcw_alertlog_note(wd->alertlog, a, what, now_ms);
}

/* "group<SEP>alertname" (budget alert: "<SEP>alertname") into buf. */
const char *kcw_wd_rule_key(const kcw_rule_group_t *group, const char *alertname, char *buf,
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
                        kcw_wd_rule_key(group, rule ? rule->alert : KCW_ENGINE_BUDGET_ALERT, key,
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
    kcw_store_alert_delete(wd->store, kcw_wd_rule_key(group, rule->alert, key, sizeof(key)),
                           labels);
}

/* Loud once per failure episode: a peer that fails with changing words
 * ("Connection reset", "select/poll returned error") is one episode. */
static void hook_health(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                        const char *error, bool episode, int64_t now_ms)
{
    (void)arg;
    (void)now_ms;
    if (error)
        kcw_log(episode ? KCW_LOG_WARN : KCW_LOG_DEBUG, "rule evaluation failed", "rule",
                rule->alert, "group", group->name, "error", error, NULL);
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

static void on_notify_soon(uv_timer_t *t)
{
    kcw_watchdog_t *wd = t->data;
    if (!wd->stopping && wd->gen && kcw_engine_news_pending(wd->gen->engine))
        kcw_engine_notify(wd->gen->engine, wall_now_ms());
}

void kcw_wd_on_remediation(const kcw_remediation_event_t *ev, void *arg)
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

void kcw_wd_on_notify_event(const char *receiver, const char *group_key, bool ok,
                            long http_status, const char *detail, void *arg)
{
    (void)group_key;
    (void)http_status;
    (void)detail;
    kcw_watchdog_t *wd = arg;
    const char *l[] = {"receiver", receiver, "result", ok ? "success" : "failure", NULL};
    kcw_metrics_add(wd->metrics, "kcwatch_notifications_total", l, 1);
}

kcw_engine_hooks_t kcw_wd_engine_hooks(kcw_watchdog_t *wd)
{
    return (kcw_engine_hooks_t){.arg = wd,
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
}
