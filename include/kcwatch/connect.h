/* connect.h: the Kafka Connect REST client and its status model.
 *
 * Data model: a kcw_cluster_status_t per configured cluster, rebuilt from each
 * poll of `GET /connectors?expand=status` (or, on workers before 2.3 that
 * answer with a plain array, from per-connector /status and info calls).
 * Connector configs are not polled: `GET /connectors/{c}` is read only for a
 * connector that appeared or whose task list changed, and only its task
 * config count and tasks.max are kept (never the config itself).
 * Parsing is pure (kcw_connect_parse_expand; status_index.h re-parses only the
 * connectors whose bytes changed) so it is unit-tested.
 *
 * Client: a kcw_connect_t owns one poller per cluster on the libuv loop. It
 * fails over between a cluster's worker URLs on connection-level errors only
 * (connect-rest.md §7.4), marks the cluster UNREACHABLE when every worker
 * failed, learns the worker version from `GET /`, and offers the calls the
 * remediation needs (status re-read, restarts). Bodies byte-identical to the
 * previous poll are not parsed again. A worker that answers with a body that
 * is over connect[].max_body_bytes, cut short or not readable leaves the
 * cluster reachable but not readable (cluster state UNREADABLE). */
#ifndef KCWATCH_CONNECT_H
#define KCWATCH_CONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/config.h"
#include "kcwatch/http_client.h"

typedef enum {
    KCW_STATE_UNKNOWN = 0,
    KCW_STATE_RUNNING,
    KCW_STATE_FAILED,
    KCW_STATE_PAUSED,
    KCW_STATE_UNASSIGNED,
    KCW_STATE_RESTARTING,
    KCW_STATE_STOPPED,
    KCW_STATE_UNREACHABLE, /* cluster level only: no worker answered */
    KCW_STATE_UNREADABLE,  /* cluster level only: a worker answered, the status poll gave no
                              usable model (body over the limit, cut short, not JSON, HTTP error) */
    KCW_STATE__COUNT
} kcw_state_t;

/* "RUNNING" etc.; UNKNOWN for anything else. */
kcw_state_t kcw_state_parse(const char *s);
const char *kcw_state_name(kcw_state_t s);

typedef enum {
    KCW_CTYPE_UNKNOWN = 0,
    KCW_CTYPE_SOURCE,
    KCW_CTYPE_SINK,
} kcw_connector_type_t;
const char *kcw_connector_type_name(kcw_connector_type_t t); /* "source" "sink" "unknown" */

typedef struct kcw_task_status {
    int id;
    kcw_state_t state;
    char *worker_id; /* may be NULL */
    char *trace;     /* NULL unless present */
} kcw_task_status_t;

typedef struct kcw_connector_status {
    char *name;
    kcw_connector_type_t type;
    kcw_state_t state;
    char *worker_id;
    char *trace;
    kcw_task_status_t *tasks; /* sorted by id */
    size_t n_tasks;
    bool has_info;       /* info part was present */
    int n_task_configs;  /* length of info.tasks (-1 unknown) */
    int tasks_max;       /* config "tasks.max" (-1 unknown) */
    int missing_polls;   /* >0: absent from the last polls, kept from an older one */
} kcw_connector_status_t;

typedef struct kcw_cluster_status {
    char *name;
    bool reachable;        /* false: every worker failed at the last poll */
    bool readable;         /* true: the last poll gave a complete, current model. False
                              with reachable: the connectors are stale (state UNREADABLE);
                              nothing is restarted from them and /readyz is not ready */
    bool ever_reachable;
    int64_t last_poll_ms;  /* wall clock ms of the last completed poll */
    int64_t last_ok_ms;
    int64_t poll_started_ms; /* wall clock ms the last poll round began */
    char *last_error;      /* NULL when the last poll succeeded */
    char *worker_url;      /* URL that answered last */
    char *version;         /* worker version from GET / (NULL unknown) */
    kcw_connector_status_t *connectors; /* sorted by name */
    size_t n_connectors;
    /* Process-unique stamp, new whenever connectors[] changes: a pointer into
     * it together with this value names one model (callers cache on it). */
    uint64_t generation;
} kcw_cluster_status_t;

/* --- pure parsing (no I/O) --------------------------------------------- */

/* Parses one status object (connect-rest.md §3.2) into out (zeroed first).
 * 0, or -EINVAL with a message in err. */
int kcw_connect_parse_status(const char *json, size_t len, kcw_connector_status_t *out,
                             char *err, size_t errlen);
/* Parses an expand=status&expand=info body (§3.5) into out->connectors
 * (on success the previous out->connectors are freed and replaced).
 * If the body is a JSON array (worker < 2.3), returns 1 and fills *names /
 * *n_names (free each and the array) instead. 0 ok, -EINVAL on bad input. */
int kcw_connect_parse_expand(const char *json, size_t len, kcw_cluster_status_t *out,
                             char ***names, size_t *n_names, char *err, size_t errlen);
/* Major and minor from a version string ("3.8.0", "2.8.1-ccs"); -EINVAL.
 * Confluent Platform versions (5.x-8.x with -ccs/-ce) are mapped to the Apache
 * Kafka release they ship ("7.4.0-ccs" -> 3.4, "6.2.0-ccs" -> 2.8). */
int kcw_connect_version_parse(const char *version, int *major, int *minor);
/* The cluster-level state: UNREACHABLE, UNREADABLE, RUNNING when the last
 * poll was good, UNKNOWN before the first poll. */
kcw_state_t kcw_cluster_status_state(const kcw_cluster_status_t *s);

/* One member of an expand body: key is the (decoded) map key, json / len the
 * bytes of its value ({"status": ...}). *present is false when the member
 * carries no status (Connect leaves those out, §3.5); otherwise out holds
 * the connector, named key. Exactly what kcw_connect_parse_expand does for
 * each member. 0, -EINVAL with err, -ENOMEM. */
int kcw_connect_parse_member(const char *key, const char *json, size_t len,
                             kcw_connector_status_t *out, bool *present, char *err, size_t errlen);
/* Task configs (info.tasks) that are not RUNNING; -1 when the task configs
 * are unknown. */
int kcw_connector_status_tasks_short(const kcw_connector_status_t *c);
void kcw_connector_status_clear(kcw_connector_status_t *c);
void kcw_cluster_status_clear(kcw_cluster_status_t *s);
/* Deep copy (dst zeroed). 0 or -ENOMEM. */
int kcw_connector_status_copy(kcw_connector_status_t *dst, const kcw_connector_status_t *src);
const kcw_connector_status_t *kcw_cluster_status_find(const kcw_cluster_status_t *s,
                                                      const char *connector);

/* --- client on the loop ------------------------------------------------ */

typedef struct kcw_connect kcw_connect_t;

/* Called after every poll of a cluster, success or not. changed is false when
 * the body was byte-identical to the previous one (nothing to re-evaluate). */
typedef void (*kcw_connect_poll_cb)(kcw_connect_t *cn, size_t cluster_idx, bool changed,
                                    void *arg);

/* cfg's cluster confs are used, not copied: cfg must outlive cn. */
kcw_connect_t *kcw_connect_new(uv_loop_t *loop, kcw_http_t *http, const kcw_config_t *cfg,
                               kcw_connect_poll_cb cb, void *arg);
/* Starts polling every cluster now and then every poll_interval. */
int kcw_connect_start(kcw_connect_t *cn);
/* Polls every cluster once; cb runs per cluster (used by `kcwatch status`). */
int kcw_connect_poll_once(kcw_connect_t *cn);
size_t kcw_connect_cluster_count(const kcw_connect_t *cn);
/* Latest model of cluster i (owned by cn; valid until the next poll cb). */
const kcw_cluster_status_t *kcw_connect_cluster(const kcw_connect_t *cn, size_t i);
/* Index of the cluster named name, or -1. */
int kcw_connect_cluster_index(const kcw_connect_t *cn, const char *name);
/* Stops timers, cancels requests (their callbacks get "cancelled" before this
 * returns; no poll callback runs any more); on_closed runs when all handles
 * closed, after which cn is freed. Close cn before the kcw_http_t it uses. */
void kcw_connect_close(kcw_connect_t *cn, void (*on_closed)(void *arg), void *arg);

/* Re-read one connector's status (GET /connectors/{c}/status).
 * http_status is 0 with err set on transport failure; status is NULL unless
 * a 200 with a valid body arrived. */
typedef void (*kcw_connect_status_cb)(long http_status, const kcw_connector_status_t *status,
                                      const char *err, void *arg);
int kcw_connect_fetch_status(kcw_connect_t *cn, size_t cluster_idx, const char *connector,
                             kcw_connect_status_cb cb, void *arg);

/* Worker version (GET /, cached per worker URL until failover). */
typedef void (*kcw_connect_version_cb)(const char *version, const char *err, void *arg);
int kcw_connect_fetch_version(kcw_connect_t *cn, size_t cluster_idx, kcw_connect_version_cb cb,
                              void *arg);

typedef enum {
    KCW_RESTART_FAILED_KIP745, /* POST /connectors/{c}/restart?includeTasks=true&onlyFailed=true */
    KCW_RESTART_CONNECTOR,     /* POST /connectors/{c}/restart (legacy, connector only) */
    KCW_RESTART_TASK,          /* POST /connectors/{c}/tasks/{t}/restart */
} kcw_restart_kind_t;

/* The exact request line that a restart sends, e.g.
 * "POST http://w1:8083/connectors/orders%20sink/restart?includeTasks=true&onlyFailed=true"
 * (names percent-encoded; RFC 3986 unreserved characters such as '-' stay).
 * Used by dry_run logging. Returns buf. */
char *kcw_connect_restart_describe(const kcw_connect_t *cn, size_t cluster_idx,
                                   const char *connector, int task, kcw_restart_kind_t kind,
                                   char *buf, size_t n);

/* Result of a restart call: http_status 202/204/404/409/500..., or 0 with err
 * on transport failure. status is the parsed 202 body (tasks sorted) or NULL. */
typedef void (*kcw_connect_restart_cb)(long http_status, const kcw_connector_status_t *status,
                                       const char *err, void *arg);
int kcw_connect_restart(kcw_connect_t *cn, size_t cluster_idx, const char *connector, int task,
                        kcw_restart_kind_t kind, kcw_connect_restart_cb cb, void *arg);

#endif
