/* watchdog_int.h: what the files of the watchdog share; not an interface.
 *
 * The watchdog (kcwatch/watchdog.h is its whole interface) is one module in
 * several files, one concern each:
 *   watchdog.c         start, reload and stop: the lifecycle
 *   watchdog_gen.c     generations: one configuration's engine, clients, timers
 *   watchdog_rounds.c  group timers to Prometheus to the engine; polls to the engine
 *   watchdog_hooks.c   what the engine and the remediator hand back: restarts,
 *                      notifications, alert state for the store, transitions
 *   watchdog_ha.c      ownership on etcd: what this instance may act for
 *   watchdog_api.c     the admin server's routes, silences, /metrics
 *   watchdog_store.c   the state store: what is restored at start, snapshots
 * Only those files include this header. */
#ifndef KCWATCH_WATCHDOG_INT_H
#define KCWATCH_WATCHDOG_INT_H

#include "kcwatch/watchdog.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/admin.h"
#include "kcwatch/admin_conf.h"
#include "kcwatch/alertlog.h"
#include "kcwatch/api.h"
#include "kcwatch/connect.h"
#include "kcwatch/engine.h"
#include "kcwatch/ha.h"
#include "kcwatch/ha_restarts.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/metrics.h"
#include "kcwatch/notify.h"
#include "kcwatch/prom.h"
#include "kcwatch/promql_check.h"
#include "kcwatch/reload_gate.h"
#include "kcwatch/tquery.h"
#include "kcwatch/remediate.h"
#include "kcwatch/sdnotify.h"
#include "kcwatch/silence.h"
#include "kcwatch/silence_api.h"
#include "kcwatch/statuspage.h"
#include "kcwatch/storm.h"
#include "kcwatch/store.h"

#define STORE_PRUNE_MS (60 * 60 * 1000)     /* audit retention pruning */
#define ALERT_SNAPSHOT_MS (10 * 60 * 1000) /* full alert-state snapshot */
#define RULE_KEY_SEP '\x1f'                 /* group SEP alertname in the store */

struct generation;

typedef struct group_timer group_timer_t;

/* One query of a group round in flight: where its answer goes. */
typedef struct query_ctx {
    group_timer_t *gt;
    size_t qi;
    uint64_t sent_ns;
    size_t last_bytes; /* the size of the last answer: the next one's receive buffer */
} query_ctx_t;

struct group_timer {
    uv_timer_t timer;
    struct generation *gen;
    size_t gi;
    query_ctx_t *queries; /* allocated once: callbacks point at them */
    size_t n_queries;
    size_t pending; /* answers still out, +1 while queries are being sent */
    bool cancelled; /* a query came back cancelled: drop the round */
};

/* One configuration generation: config, rules, the engine evaluating them and
 * the Connect client polling with them. Retired generations live until their
 * handles are closed. */
typedef struct generation {
    kcw_watchdog_t *wd;
    kcw_config_t *cfg;
    kcw_ruleset_t *rules;
    kcw_engine_t *engine;
    kcw_connect_t *cn;
    kcw_prom_t *prom;
    kcw_promql_verifier_t *pq; /* rules whose PromQL Prometheus has not checked yet */
    kcw_tquery_t *tq;          /* {{ query }} of the rules' templates */
    kcw_template_env_t tenv;   /* what the rules' templates reach: tq, external_url */
    bool running; /* timers initialised, client started */
    bool retired;
    group_timer_t *timers;
    size_t n_timers;
    int closing; /* handles still to close */
} generation_t;

struct kcw_watchdog {
    uv_loop_t *loop;
    generation_t *gen;
    kcw_http_t *http;
    kcw_remediator_t *rem;
    kcw_notifier_t *notifier;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t notify_soon; /* delivers remediation news without waiting for a round */
    kcw_admin_t *admin;
    kcw_store_t *store;
    kcw_silences_t *silences;      /* the config's and the API's */
    kcw_silence_api_t silence_api; /* /api/v2/silences */
    kcw_statuspage_api_t statuspage; /* the status page at / */
    kcw_alertlog_t *alertlog;      /* transition lines; NULL: unsummarised */
    uv_timer_t snapshot;
    bool snapshot_on;
    kcw_metrics_t *metrics;
    kcw_sdnotify_t *sd;
    kcw_ha_t *ha;          /* NULL: no ha.etcd, or stopping */
    bool ha_enabled;       /* ha.etcd configured: without ha, act for nothing */
    int64_t ha_bad_since_ms; /* no valid lease since (0: it is valid); the alert waits a TTL */
    bool started, stopping, ready;
    bool reload_ok;
    int64_t reload_ok_ms;
    int64_t reload_at_ms; /* last reload attempt (0: none since start) */
    int retiring; /* generations still closing */
    kcw_reload_gate_t reload_gate; /* a reload waiting for Prometheus' PromQL check */
};

static inline int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* watchdog_gen.c */
/* Builds g's engine (taking alert states over from prev, may be NULL) and
 * its group timers' query contexts; nothing runs yet. 0 or -ENOMEM. */
int kcw_wd_generation_build(kcw_watchdog_t *wd, generation_t *g, generation_t *prev);
/* Starts g's Connect client, Prometheus client, verifier and timers. */
int kcw_wd_generation_start(kcw_watchdog_t *wd, generation_t *g);
/* Stops g; it is freed once its handles are closed (wd->retiring counts). */
void kcw_wd_generation_retire(kcw_watchdog_t *wd, generation_t *g);
/* Frees a generation that never started (or whose handles are closed). */
void kcw_wd_generation_free(generation_t *g);

/* watchdog_ha.c */
int kcw_wd_ha_start(kcw_watchdog_t *wd); /* with ha.etcd configured; 0 without */
int kcw_wd_ha_keys_set(kcw_watchdog_t *wd);
bool kcw_wd_ha_may_act(const kcw_watchdog_t *wd, const kcw_labels_t *labels);
bool kcw_wd_ha_not_mine(const kcw_alert_t *a, void *arg);
int kcw_wd_ha_alert_instance(kcw_watchdog_t *wd, kcw_instance_t *in);

/* watchdog_hooks.c */
kcw_engine_hooks_t kcw_wd_engine_hooks(kcw_watchdog_t *wd);
const char *kcw_wd_rule_key(const kcw_rule_group_t *group, const char *alertname, char *buf,
                            size_t size);
void kcw_wd_on_remediation(const kcw_remediation_event_t *ev, void *arg);
void kcw_wd_on_notify_event(const char *receiver, const char *group_key, bool ok,
                            long http_status, const char *detail, void *arg);

/* watchdog_rounds.c */
const kcw_cluster_status_t **kcw_wd_cluster_views(generation_t *g, size_t *n); /* free() it */
void kcw_wd_on_group_timer(uv_timer_t *t);
void kcw_wd_on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg);

/* watchdog_api.c */
int kcw_wd_silences_start(kcw_watchdog_t *wd);
void kcw_wd_silence_dropped(const kcw_silence_t *s, void *arg);
int kcw_wd_admin_start(kcw_watchdog_t *wd);

/* watchdog_store.c */
int kcw_wd_store_start(kcw_watchdog_t *wd);
void kcw_wd_snapshot_alerts(kcw_watchdog_t *wd);

#endif
