/* watchdog_store.c: the state store (store.h, in global.state_dir) seen
 * from the watchdog. At start the engine gets its saved alert states back
 * and the remediator and notifier load theirs; every ALERT_SNAPSHOT_MS a
 * snapshot of every alert state replaces what the store held, so alerts
 * that left their sets leave the store too. */
#include "watchdog_int.h"
#include <malloc.h>

static int on_stored_alert(const char *key, const kcw_alert_t *alert, void *arg)
{
    kcw_watchdog_t *wd = arg;
    const char *sep = strchr(key, RULE_KEY_SEP);
    if (!sep)
        return 0;
    char group[256];
    size_t len = (size_t)(sep - key);
    if (len >= sizeof(group))
        return 0;
    memcpy(group, key, len);
    group[len] = '\0';
    int rc = kcw_engine_restore_alert(wd->gen->engine, len ? group : NULL, sep + 1, alert);
    if (rc < 0 && rc != -ENOENT)
        kcw_log(KCW_LOG_WARN, "alert state not restored", "alertname", sep + 1, "group", group,
                "error", strerror(-rc), NULL);
    return 0;
}

/* Every current alert state, replacing what the store held: alerts that left
 * their sets (pending ones that went away, resolved ones past retention)
 * leave the store too. */
void kcw_wd_snapshot_alerts(kcw_watchdog_t *wd)
{
    kcw_engine_t *e = wd->gen->engine;
    char key[512];
    kcw_store_begin(wd->store);
    kcw_store_alert_clear(wd->store);
    for (size_t ri = 0; ri < kcw_engine_rule_count(e); ri++) {
        const kcw_alert_set_t *set = kcw_engine_rule_alerts(e, ri);
        kcw_wd_rule_key(kcw_engine_rule_group(e, ri), kcw_engine_rule(e, ri)->alert, key,
                        sizeof(key));
        for (size_t i = 0; set && i < kcw_alert_set_count(set); i++)
            kcw_store_alert_put(wd->store, key, kcw_alert_set_at(set, i));
    }
    const kcw_alert_set_t *budget = kcw_engine_budget_alerts(e);
    kcw_wd_rule_key(NULL, KCW_ENGINE_BUDGET_ALERT, key, sizeof(key));
    for (size_t i = 0; budget && i < kcw_alert_set_count(budget); i++)
        kcw_store_alert_put(wd->store, key, kcw_alert_set_at(budget, i));
    kcw_store_commit(wd->store);
}

/* The store's page cache and the heap pages it leaves free go back to the
 * system: loading at start and a snapshot are the store's busy moments. */
static void release_memory(kcw_watchdog_t *wd)
{
    kcw_store_release_memory(wd->store);
    malloc_trim(0);
}

static void on_snapshot(uv_timer_t *t)
{
    kcw_watchdog_t *wd = t->data;
    if (!wd->stopping && wd->gen)
        kcw_wd_snapshot_alerts(wd);
    if (!wd->stopping && wd->silences) {
        kcw_store_begin(wd->store);
        kcw_silences_gc(wd->silences, wall_now_ms(), kcw_wd_silence_dropped, wd);
        kcw_store_commit(wd->store);
    }
    release_memory(wd);
}

/* Opens the state store and hands what it holds to the engine, the
 * remediator and the notifier. Fails only when another kcwatch holds the
 * state_dir (a store that cannot be written runs in memory). */
int kcw_wd_store_start(kcw_watchdog_t *wd)
{
    const kcw_config_t *cfg = wd->gen->cfg;
    char err[1024] = "";
    int rc = kcw_store_open(cfg->state_dir, &wd->store, err, sizeof(err));
    if (rc == -EBUSY) {
        kcw_log(KCW_LOG_ERROR, "refusing to start: another kcwatch uses this state directory",
                "state_dir", cfg->state_dir, "error", err, NULL);
        return rc;
    }
    if (rc < 0) {
        kcw_log(KCW_LOG_ERROR, "cannot open the state store", "state_dir", cfg->state_dir,
                "error", err, NULL);
        return rc;
    }
    kcw_store_set_audit_retention(wd->store, cfg->audit_retention_ms);
    /* Pruned every tenth of the retention (hourly at most): the audit log
     * holds at most 110 % of it, however short it is. */
    uint64_t prune_ms = STORE_PRUNE_MS;
    if (cfg->audit_retention_ms > 0 && (uint64_t)cfg->audit_retention_ms / 10 < prune_ms)
        prune_ms = cfg->audit_retention_ms / 10 > 1000 ? (uint64_t)cfg->audit_retention_ms / 10
                                                       : 1000;
    kcw_store_prune_start(wd->store, wd->loop, prune_ms);
    int64_t now = wall_now_ms();
    long n = kcw_store_alert_load(wd->store, on_stored_alert, wd);
    if (n > 0) {
        kcw_log(KCW_LOG_INFO, "alert state restored", KCW_LOG_INT("alerts", n), "state_dir",
                cfg->state_dir, NULL);
    }
    kcw_remediator_set_store(wd->rem, wd->store, now);
    kcw_notifier_set_max_age(wd->notifier, cfg->notification_max_age_ms);
    kcw_notifier_set_store(wd->notifier, wd->store, now);
    uv_timer_init(wd->loop, &wd->snapshot);
    wd->snapshot.data = wd;
    wd->snapshot_on = true;
    uv_timer_start(&wd->snapshot, on_snapshot, ALERT_SNAPSHOT_MS, ALERT_SNAPSHOT_MS);
    release_memory(wd);
    return 0;
}
