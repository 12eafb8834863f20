/* config.h: kcwatch.yaml -> validated configuration.
 *
 * The loader walks libyaml events and keeps every node's position, so every
 * problem (unknown key, wrong type, bad duration, bad regex, missing file) is
 * reported as FILE:LINE:COL: message, all of them in one pass. `${ENV}` is
 * expanded in scalar values before they are interpreted; secrets come from
 * *_file keys or the environment and are registered with the log redactor.
 *
 * With path == NULL the built-in defaults are returned (every one of them is
 * shown in packaging/kcwatch.example.yaml):
 * Connect at http://localhost:8083, Prometheus at http://localhost:9090, the
 * shipped rules.d (see KCW_DEFAULT_RULES_DIR), log receiver only, state in
 * ./kcwatch-state. */
#ifndef KCWATCH_CONFIG_H
#define KCWATCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/duration.h"
#include "kcwatch/errors.h"
#include "kcwatch/inhibit.h"
#include "kcwatch/labels.h"
#include "kcwatch/route.h"
#include "kcwatch/silence.h"
#include "kcwatch/template.h"

#ifndef KCW_DEFAULT_CONFIG_PATH
#define KCW_DEFAULT_CONFIG_PATH "/etc/kcwatch/kcwatch.yaml"
#endif
#ifndef KCW_DEFAULT_RULES_DIR
#define KCW_DEFAULT_RULES_DIR "/usr/share/kcwatch/rules.d"
#endif

/* Sanity bounds: values past them are refused with their position. Work
 * per poll or evaluation has a cost; a budget must be able to stop a loop. */
/* KCW_MIN_INTERVAL_MS (duration.h): poll_interval, evaluation_interval */
#define KCW_MAX_BUDGET_RESTARTS 1000        /* remediation.budget.max_restarts */
#define KCW_MIN_BUDGET_WINDOW_MS 60000LL    /* remediation.budget.window */

typedef struct kcw_basic_auth_conf {
    char *username; /* NULL when no basic auth */
    char *password; /* read from password_file (trailing newline cut) or given */
} kcw_basic_auth_conf_t;

typedef struct kcw_tls_conf {
    char *ca_file;   /* NULL: system CAs */
    char *cert_file; /* client certificate (mTLS), NULL if none */
    char *key_file;
    bool insecure; /* skip verification */
} kcw_tls_conf_t;

/* Status poll body limit: about 240 bytes per connector, 50,000 connectors with
 * room for stack traces. */
#define KCW_DEFAULT_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024)

typedef struct kcw_cluster_conf {
    char *name;
    char **urls; /* worker base URLs without trailing slash, >= 1 */
    size_t n_urls;
    int64_t poll_interval_ms; /* default 5s */
    int64_t timeout_ms;       /* default 10s, per request */
    size_t max_body_bytes;    /* status poll body limit; default 64 MiB (50,000 connectors) */
    kcw_basic_auth_conf_t basic_auth;
    kcw_tls_conf_t tls;
} kcw_cluster_conf_t;

typedef struct kcw_prometheus_conf {
    char *url;          /* default http://localhost:9090 */
    char *external_url; /* Prometheus as people reach it (generatorURL links); NULL: url */
    int64_t timeout_ms; /* default 10s */
    kcw_basic_auth_conf_t basic_auth;
    char *bearer_token; /* from bearer_token_file */
    kcw_tls_conf_t tls;
} kcw_prometheus_conf_t;

typedef struct kcw_remediation_conf {
    bool enabled;        /* default true */
    bool dry_run;        /* default false */
    int max_concurrent;  /* restarts in flight per cluster, default 2 */
    int64_t backoff_initial_ms;   /* default 30s */
    int64_t backoff_max_ms;       /* default 30m */
    double backoff_multiplier;    /* default 2.0 */
    double backoff_jitter;        /* 0..1, fraction added at random, default 0.2 */
    int budget_max_restarts;      /* default 5 */
    int64_t budget_window_ms;     /* default 1h */
    int64_t stable_period_ms;     /* RUNNING this long resets the counter, default 10m */
    int64_t verify_timeout_ms;    /* no RUNNING seen within it -> failed, default 2m */
    /* The first notification of a group waits while one of its alerts is
     * being healed (remediation="healing"): at most this long for the restart
     * to bring the target back, plus verify_timeout for the verdict, past its
     * due time; 0: never waits. Default: verify_timeout. */
    int64_t heal_wait_ms;
    /* remediation.storm (storm.h): this many tasks, and this fraction of the
     * cluster's tasks, entering FAILED within the window is one systemic
     * failure: a canary restart first, then the rest at rate_per_min. */
    bool storm_enabled;        /* default true */
    int storm_min_tasks;       /* default 10 */
    double storm_min_fraction; /* 0..1, default 0.2 */
    int64_t storm_window_ms;   /* default 1m */
    bool storm_inhibit;        /* its alert mutes the cluster's task alerts' notifications, default true */
    double rate_per_min;       /* remediation.rate: restarts per minute per cluster when released, default 30 */
    /* remediation.inhibit: Alertmanager inhibit rules that hold restarts
     * (not notifications): while a source fires, matching targets with the
     * equal labels are not restarted; released at rate_per_min after. */
    kcw_inhibit_rule_t *inhibit;
    size_t n_inhibit;
    char *exclude_connector;      /* anchored regex source or NULL */
    char **unrecoverable_traces;  /* unanchored regexes; default: built-in list */
    size_t n_unrecoverable_traces;
} kcw_remediation_conf_t;

typedef enum {
    KCW_RECEIVER_LOG = 0, /* built-in: notifications only go to the log */
    KCW_RECEIVER_WEBHOOK,
    KCW_RECEIVER_SLACK,
    KCW_RECEIVER_PAGERDUTY,
    KCW_RECEIVER_ALERTMANAGER,
} kcw_receiver_kind_t;

/* "log" "webhook" "slack" "pagerduty" "alertmanager". */
const char *kcw_receiver_kind_name(kcw_receiver_kind_t kind);

#define KCW_PAGERDUTY_DEFAULT_URL "https://events.pagerduty.com/v2/enqueue"

typedef struct kcw_receiver_conf {
    char *name;
    kcw_receiver_kind_t kind;
    /* webhook: the URL; slack: the incoming-webhook URL (a secret: from url
     * or url_file, registered with the log redactor); pagerduty: the Events
     * API v2 endpoint (default KCW_PAGERDUTY_DEFAULT_URL). */
    char *url;
    char **urls;              /* alertmanager: base URLs, each gets every alert */
    size_t n_urls;
    int64_t resend_interval_ms; /* alertmanager: firing alerts re-sent this often, default 1m */
    int64_t timeout_ms;       /* default 10s */
    bool send_resolved;       /* default true */
    int max_alerts;           /* 0 = unlimited (webhook truncation, as Alertmanager) */
    kcw_basic_auth_conf_t basic_auth;
    char *bearer_token;       /* from bearer_token_file */
    kcw_tls_conf_t tls;
    /* slack */
    char *channel, *username, *icon_emoji, *icon_url; /* NULL: the webhook's own */
    kcw_template_t *text;     /* per-alert text; NULL: the default message */
    /* pagerduty */
    char *routing_key;        /* a secret: routing_key or routing_key_file */
    bool per_group;           /* dedup_key per group (dedup: group) rather than per alert */
    kcw_template_t *summary;  /* NULL: the default summary */
} kcw_receiver_conf_t;

/* The routing tree (route.h); the root is config.route. */
typedef kcw_route_t kcw_route_conf_t;

/* ha: several instances share the clusters through etcd leases (ha.h). */
typedef struct kcw_ha_conf {
    char **endpoints; /* etcd client URLs; none: HA off, this instance acts alone */
    size_t n_endpoints;
    char *prefix;     /* key prefix, default /kcwatch (no trailing slash) */
    int64_t ttl_ms;   /* lease TTL, whole seconds, default 10s, at least 2s */
    char *instance;   /* this instance's name; NULL: the host name */
} kcw_ha_conf_t;

/* admin: the admin HTTP server's protection (admin.h). */
typedef struct kcw_admin_conf {
    char *token;                      /* token_file or token: Bearer for write routes; NULL: none */
    kcw_basic_auth_conf_t basic_auth; /* every request; username NULL: none */
    char *tls_cert_file;              /* PEM; with tls_key_file the server speaks HTTPS only */
    char *tls_key_file;
} kcw_admin_conf_t;

typedef struct kcw_config {
    char *path; /* file it came from, NULL for built-in defaults */

    /* global */
    int64_t evaluation_interval_ms; /* default 10s */
    kcw_labels_t external_labels;
    char *state_dir; /* default ./kcwatch-state */
    int64_t audit_retention_ms;      /* audit log kept this long, default 30d */
    int64_t notification_max_age_ms; /* undelivered notifications dropped after, default 24h */
    char *listen;    /* admin.listen (or global.listen), default 127.0.0.1:9464 */
    kcw_admin_conf_t admin;
    int log_format;  /* kcw_log_format_t */
    int log_level;   /* kcw_log_level_t */
    char *external_url; /* for payloads; default http://<listen> */

    kcw_prometheus_conf_t prometheus;

    kcw_cluster_conf_t *clusters;
    size_t n_clusters;

    kcw_remediation_conf_t remediation;

    char **rule_files; /* globs as written, relative ones resolved against the config's dir */
    size_t n_rule_files;

    kcw_receiver_conf_t *receivers;
    size_t n_receivers;

    kcw_route_conf_t route; /* finished (kcw_route_finish): children carry inherited values */

    kcw_silence_t *silences; /* from the config (from_config set, ids "config-N") */
    size_t n_silences;
    kcw_inhibit_rule_t *inhibit_rules;
    size_t n_inhibit_rules;

    kcw_ha_conf_t ha;

    /* What loads but deserves a look (an admin API open beyond this host),
     * positioned like errors; `check` prints them, --strict refuses them. */
    kcw_errors_t warnings;
} kcw_config_t;

/* Loads and validates path (NULL: built-in defaults). On success returns 0 and
 * *out (free with kcw_config_free). On failure returns -EINVAL with every
 * problem appended to errs and *out == NULL. When the file itself cannot be
 * read the result is its -errno (e.g. -ENOENT), with one error appended;
 * -ENOMEM when memory ran out. */
int kcw_config_load(const char *path, kcw_config_t **out, kcw_errors_t *errs);
/* Same, from a string (tests); name is used as FILE in errors and, when it
 * contains a '/', its directory is where relative file paths resolve
 * (otherwise they stay relative to the working directory). */
int kcw_config_load_string(const char *yaml, const char *name, kcw_config_t **out,
                           kcw_errors_t *errs);
void kcw_config_free(kcw_config_t *cfg);
/* Calls fn(path, keys) for every mapping the loader checks, with the keys it
 * accepts there ("" is the top level, list items are "connect[0]"); NULL
 * stops. For the test that holds docs/config.md to the parser. */
typedef void (*kcw_config_key_observer)(const char *path, const char *const *keys, void *arg);
void kcw_config_observe_keys(kcw_config_key_observer fn, void *arg);
/* The built-in unrecoverable-trace regexes (NULL-terminated). */
const char *const *kcw_config_default_unrecoverable_traces(void);
const kcw_receiver_conf_t *kcw_config_receiver(const kcw_config_t *cfg, const char *name);

#endif
