/* watchdog_ha.c: the watchdog's side of ownership on etcd (ha.h).
 *
 * With ha.etcd several instances share the clusters: every instance polls
 * and evaluates everything, but the restart, notify and flush hooks pass on
 * only what this instance owns right now (kcw_wd_ha_may_act), every restart
 * waits for the etcd txn that checks ownership (ha_permit), and a cluster
 * given up leaves the notifier silently (on_ha_change). */
#include "watchdog_int.h"

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
bool kcw_wd_ha_may_act(const kcw_watchdog_t *wd, const kcw_labels_t *labels)
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

bool kcw_wd_ha_not_mine(const kcw_alert_t *a, void *arg)
{
    return !kcw_wd_ha_may_act(arg, &a->labels);
}

/* Clusters plus, with several, the PromQL pseudo-cluster. */
int kcw_wd_ha_keys_set(kcw_watchdog_t *wd)
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

/* What this instance may act for changed: notifications of clusters it
 * gave up must not leave from here, not even as "resolved". */
static void on_ha_change(void *arg)
{
    kcw_watchdog_t *wd = arg;
    if (wd->notifier)
        kcw_notifier_forget(wd->notifier, kcw_wd_ha_not_mine, wd);
    /* Taken over: act on what is failing now rather than at the next round
     * (same inputs, so the same transitions; restarts go out at once). */
    if (wd->gen && wd->gen->cn && !wd->stopping) {
        size_t n;
        const kcw_cluster_status_t **clusters = kcw_wd_cluster_views(wd->gen, &n);
        if (clusters)
            kcw_engine_connect_changed(wd->gen->engine, clusters, n, wall_now_ms());
        free(clusters);
    }
}

/* The remediator's gate: the etcd txn comparing the ownership key's lease,
 * recording the restart with it. */
static int ha_permit(void *arg, const char *cluster, const char *connector, int task,
                     const char *request, const kcw_restart_track_t *track,
                     kcw_remediation_permit_done done, void *token)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->ha)
        return -ENODEV;
    char *what = kcw_ha_restart_record(kcw_ha_instance(wd->ha), cluster, connector, task,
                                       request, track, wall_now_ms());
    if (!what)
        return -ENOMEM;
    char target[1024];
    snprintf(target, sizeof(target), "%s\n%d", connector, task);
    int rc = kcw_ha_permit(wd->ha, cluster, what, target, done, token);
    free(what);
    return rc;
}

/* Clusters just taken over: the restarts their previous owner made count
 * against the budget and back-off here too. */
static void on_ha_restarts(void *arg, const char *const *records, size_t n)
{
    kcw_watchdog_t *wd = arg;
    if (!wd->rem || !wd->ha)
        return;
    size_t merged = kcw_ha_restarts_adopt(wd->rem, kcw_ha_instance(wd->ha), records, n,
                                          wall_now_ms());
    kcw_log(KCW_LOG_INFO, "ha: restart records taken over", KCW_LOG_INT("targets", merged), NULL);
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
    kcw_log(KCW_LOG_INFO, "ha: notification logs taken over", KCW_LOG_INT("groups", adopted),
            NULL);
}

/* KcwatchEtcdUnavailable: this instance has held no valid lease for a TTL
 * (since it joined, or since it lost it), so it acts for nothing. */
int kcw_wd_ha_alert_instance(kcw_watchdog_t *wd, kcw_instance_t *in)
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

/* Joins the instances on etcd when ha.etcd is configured: ownership keys,
 * the remediator's permit gate, notification logs for whoever takes over. */
int kcw_wd_ha_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    if (cfg->ha.n_endpoints == 0)
        return 0;
    wd->ha_enabled = true;
    wd->ha = kcw_ha_new(wd->loop, wd->http, &cfg->ha, on_ha_change, wd);
    if (!wd->ha || kcw_wd_ha_keys_set(wd) < 0)
        return -ENOMEM;
    kcw_remediator_set_permit(wd->rem, ha_permit, wd);
    kcw_ha_set_handover(wd->ha, on_ha_handover, wd);
    kcw_ha_set_restarts_handover(wd->ha, on_ha_restarts, wd);
    kcw_notifier_set_log_hook(wd->notifier, on_notify_log, wd);
    wd->ha_bad_since_ms = wall_now_ms();
    return kcw_ha_start(wd->ha) < 0 ? -ENOMEM : 0;
}
