/* statuspage.h: the status page at `/` of the admin server.
 *
 * One server-rendered HTML page that answers what an on-call engineer asks
 * first: what is broken (clusters, connectors and tasks not RUNNING, firing
 * and pending alerts), what kcwatch already did (remediation state and note,
 * the last restarts and notifications from the audit log), what it holds
 * back and why (held restarts, spent budgets, silences, storms), and whether
 * kcwatch itself is healthy (reload, rule groups, outbox, HA ownership).
 *
 * Two halves:
 *   - kcw_statuspage_render() is pure: a kcw_statuspage_t the caller filled
 *     (plain strings and numbers, the current page of each long list, `now`)
 *     becomes one HTML document. Every string is HTML-escaped (and invalid
 *     UTF-8 replaced), so names, traces, labels and annotations from Connect
 *     workers or rule files render as text. No script, no inline style: the
 *     page reads the same-origin stylesheet KCW_STATUSPAGE_CSS_PATH, so it
 *     works under `Content-Security-Policy: default-src 'self'`. Unit tests
 *     render it from a fixed state.
 *   - kcw_statuspage_collect() (statuspage_state.c) fills that state from
 *     the daemon's modules through their public accessors (engine, Connect
 *     client, remediator, notifier, store, silences, HA), and
 *     kcw_statuspage_api_register() serves both routes on the admin server.
 *
 * Long lists are paginated: KCW_STATUSPAGE_PAGE_ROWS rows per page of the
 * not-RUNNING list (`?page=N`, from 1) and of the alert list (`?alerts=N`);
 * the short lists (audit, holds, budgets, silences, storms) show their first
 * KCW_STATUSPAGE_SHORT_ROWS and say how many more there are. Traces are cut
 * at KCW_STATUSPAGE_TRACE_MAX bytes. Collecting is one pass over the status
 * model plus work per row shown, so 10,000 connectors render in
 * milliseconds (bench/statuspage). */
#ifndef KCWATCH_STATUSPAGE_H
#define KCWATCH_STATUSPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/admin.h"
#include "kcwatch/labels.h"

#define KCW_STATUSPAGE_PAGE_ROWS 200
#define KCW_STATUSPAGE_SHORT_ROWS 20
#define KCW_STATUSPAGE_TRACE_MAX 8192
#define KCW_STATUSPAGE_CSS_PATH "/static/kcwatch.css"
#define KCW_STATUSPAGE_CT_HTML "text/html; charset=utf-8"
#define KCW_STATUSPAGE_CT_CSS "text/css; charset=utf-8"

/* --- the state the page shows (plain data; nothing here is owned by the
 * renderer) ----------------------------------------------------------------- */

typedef struct kcw_statuspage_cluster {
    const char *name;
    const char *state;      /* RUNNING, UNREACHABLE, UNREADABLE, UNKNOWN (no poll yet) */
    const char *version;    /* worker version, NULL unknown */
    const char *worker_url; /* worker that answered last, may be NULL */
    const char *last_error; /* NULL when the last poll succeeded */
    int64_t last_poll_ms;   /* 0: never polled */
    size_t n_connectors, n_tasks;
    size_t n_not_running; /* connectors + tasks not RUNNING */
    const char *ha_owner; /* NULL: no HA */
    bool ha_acting;       /* this instance acts for the cluster */
} kcw_statuspage_cluster_t;

/* A connector (task -1) or a task that is not RUNNING. */
typedef struct kcw_statuspage_problem {
    const char *cluster, *connector;
    int task;
    const char *state;
    const char *type; /* "source", "sink", "unknown" */
    const char *worker_id;
    const char *trace; /* may be NULL */
} kcw_statuspage_problem_t;

typedef struct kcw_statuspage_alert {
    const char *alertname;
    const char *state; /* "firing" or "pending" */
    int64_t active_at_ms;
    const kcw_labels_t *labels;
    const kcw_labels_t *annotations;
    const char *remediation; /* healing, healed, failed, unfixable, held, dry run; NULL none */
    const char *note;        /* the remediator's last decision, NULL none */
} kcw_statuspage_alert_t;

/* A row of the audit log (store.h kcw_audit_t, the fields shown). */
typedef struct kcw_statuspage_event {
    int64_t time_ms;
    const char *cluster, *connector;
    int task;
    const char *what;    /* restart: the event (sent, failed...); notify: the status */
    const char *detail;  /* restart: outcome; notify: the group key */
    const char *request; /* restart: the request line; notify: the receiver */
    long http_status;
} kcw_statuspage_event_t;

/* A restart kcwatch holds back: unfixable trace, budget spent, or skipped. */
typedef struct kcw_statuspage_hold {
    const char *cluster, *connector;
    int task;
    const char *kind;   /* "unfixable", "budget spent", "skipped", "dry run" */
    const char *reason; /* the remediator's note */
} kcw_statuspage_hold_t;

typedef struct kcw_statuspage_budget {
    const char *cluster, *connector;
    int task;
    int used, max;
    int64_t window_ms;
    int64_t room_at_ms; /* when the oldest counted restart leaves the window; 0 unknown */
} kcw_statuspage_budget_t;

typedef struct kcw_statuspage_silence {
    const char *id;
    const char *matchers; /* {a="b",...} */
    const char *state;    /* pending, active, expired */
    int64_t starts_at_ms, ends_at_ms; /* 0: open */
    const char *created_by, *comment;
    bool from_config;
} kcw_statuspage_silence_t;

/* A failure storm in progress: many tasks failing together, healed as one.
 * Filled by the storm detector's hook (kcw_statuspage_sources_t.storms). */
typedef struct kcw_statuspage_storm {
    const char *cluster;
    const char *key;    /* root-cause key or connector pattern */
    size_t n_failed;
    int64_t since_ms;
    const char *action; /* what kcwatch does about it (canary, rate...) */
} kcw_statuspage_storm_t;

typedef struct kcw_statuspage_group {
    const char *name, *file;
    size_t n_rules, n_ok, n_err, n_unknown;
    const char *first_error; /* a failing rule's last error, NULL none */
    int64_t last_eval_ms;
    double eval_seconds;
} kcw_statuspage_group_t;

typedef struct kcw_statuspage_ha_key {
    const char *key, *owner;
    bool acting;
} kcw_statuspage_ha_key_t;

/* One list of the page: its rows (the current page) and where they sit. */
#define KCW_STATUSPAGE_LIST(T) \
    struct {                   \
        const T *rows;         \
        size_t n;              \
        size_t offset;         \
        size_t total;          \
    }

typedef struct kcw_statuspage {
    int64_t now_ms;
    const char *version;
    const char *config_path; /* NULL: built-in defaults */
    bool dry_run, remediation_enabled;
    bool ready;
    unsigned refresh_s; /* > 0: reload every refresh_s (meta refresh) */
    /* the page numbers the list offsets came from (1-based), for the links */
    size_t page, alerts_page;

    KCW_STATUSPAGE_LIST(kcw_statuspage_cluster_t) clusters;
    KCW_STATUSPAGE_LIST(kcw_statuspage_problem_t) problems;
    KCW_STATUSPAGE_LIST(kcw_statuspage_alert_t) alerts;
    size_t n_firing, n_pending;
    KCW_STATUSPAGE_LIST(kcw_statuspage_event_t) restarts;
    KCW_STATUSPAGE_LIST(kcw_statuspage_event_t) notifications;
    bool audit_available;      /* false: no store; with audit_error: it failed */
    const char *audit_error;
    KCW_STATUSPAGE_LIST(kcw_statuspage_hold_t) holds;
    KCW_STATUSPAGE_LIST(kcw_statuspage_budget_t) budgets;
    KCW_STATUSPAGE_LIST(kcw_statuspage_silence_t) silences;
    bool storms_available; /* false: no storm detector feeds the page */
    KCW_STATUSPAGE_LIST(kcw_statuspage_storm_t) storms;

    /* kcwatch's own health */
    bool reload_ok;       /* the last reload (or the start) succeeded */
    int64_t reload_ok_ms; /* the running configuration was loaded */
    int64_t reload_at_ms; /* last reload attempt, 0: none since start */
    KCW_STATUSPAGE_LIST(kcw_statuspage_group_t) groups;
    size_t outbox_length;
    bool store_durable, store_open;
    bool ha_enabled;
    const char *ha_instance;
    bool ha_lease_ok;
    const char *ha_error;
    KCW_STATUSPAGE_LIST(kcw_statuspage_ha_key_t) ha_keys;

    void *priv; /* memory kcw_statuspage_collect holds; NULL for a hand-made state */
} kcw_statuspage_t;

/* --- rendering (pure) ------------------------------------------------------ */

/* The page as one HTML document, NUL-terminated; *len (may be NULL) gets its
 * length. Caller frees. NULL when out of memory. */
char *kcw_statuspage_render(const kcw_statuspage_t *st, size_t *len);
/* The page's stylesheet (a static string). */
const char *kcw_statuspage_css(void);
/* Appends the HTML-escaped text of s[0..n) to the page buffer semantics of
 * the renderer, for tests and other HTML: & < > " ' become entities, control
 * bytes other than \t \n \r and invalid UTF-8 become U+FFFD. Returns a
 * malloc'd NUL-terminated copy, NULL when out of memory. */
char *kcw_statuspage_escape(const char *s, size_t n);

/* --- collecting from the daemon (statuspage_state.c) ------------------------ */

typedef struct kcw_engine kcw_engine_t;
typedef struct kcw_connect kcw_connect_t;
typedef struct kcw_remediator kcw_remediator_t;
typedef struct kcw_notifier kcw_notifier_t;
typedef struct kcw_store kcw_store_t;
typedef struct kcw_silences kcw_silences_t;
typedef struct kcw_ha kcw_ha_t;
typedef struct kcw_config kcw_config_t;

/* The daemon's parts, as they are at the request. Any may be NULL. */
typedef struct kcw_statuspage_sources {
    const kcw_config_t *cfg;
    const kcw_engine_t *engine;
    const kcw_connect_t *cn;
    kcw_remediator_t *rem;
    const kcw_notifier_t *notifier;
    kcw_store_t *store;
    const kcw_silences_t *silences;
    const kcw_ha_t *ha;
    bool reload_ok, ready;
    int64_t reload_ok_ms; /* the running configuration was loaded */
    int64_t reload_at_ms; /* last reload attempt, 0: none since start */
    /* The storm detector's view: fills up to max storms in progress into out
     * (strings valid until the page is rendered) and returns how many there
     * are in all. NULL: no detector (the page says "none"). */
    size_t (*storms)(void *arg, kcw_statuspage_storm_t *out, size_t max);
    void *storms_arg;
} kcw_statuspage_sources_t;

/* Fills st from src at now_ms, with the not-RUNNING list at page (1-based)
 * and the alert list at alerts_page. Strings point into the sources (valid
 * until the loop runs on) or into memory st holds; release with
 * kcw_statuspage_release. 0 or -ENOMEM (st is then released). */
int kcw_statuspage_collect(const kcw_statuspage_sources_t *src, int64_t now_ms, size_t page,
                           size_t alerts_page, kcw_statuspage_t *st);
void kcw_statuspage_release(kcw_statuspage_t *st);

/* The routes: GET `/` (the page; HEAD too, other methods 405) and GET
 * KCW_STATUSPAGE_CSS_PATH. Every answer of the admin server carries
 * `Content-Security-Policy: default-src 'self'` and
 * `X-Content-Type-Options: nosniff` (admin.c). api must outlive the server. */
typedef struct kcw_statuspage_api {
    /* Fills the sources as they are now (the generation changes on reload). */
    void (*sources)(void *arg, kcw_statuspage_sources_t *out);
    int64_t (*now_ms)(void *arg);
    void *arg;
} kcw_statuspage_api_t;

/* 0 or a negative errno from kcw_admin_route. */
int kcw_statuspage_api_register(kcw_admin_t *admin, kcw_statuspage_api_t *api);

#endif
