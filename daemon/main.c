/* main.c: kcwatch's command line. Parses arguments, loads config and rules,
 * and hands over to the modules: `run` to the watchdog, `status` to one poll
 * of the Connect client, `check` to the loaders. No logic of its own. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kcwatch/admin.h"
#include "kcwatch/config.h"
#include "kcwatch/connect.h"
#include "kcwatch/duration.h"
#include "kcwatch/ha.h"
#include "kcwatch/http_client.h"
#include "kcwatch/labels_json.h"
#include "kcwatch/log.h"
#include "kcwatch/promql_check.h"
#include "kcwatch/rules.h"
#include "kcwatch/ruletest.h"
#include "kcwatch/store.h"
#include "kcwatch/text.h"
#include "kcwatch/url.h"
#include "kcwatch/watchdog.h"

static const char usage_text[] =
    "usage: kcwatch <command> [options]\n"
    "\n"
    "commands:\n"
    "  run     [-c FILE] [--strict]      run the watchdog in the foreground\n"
    "  check   [-c FILE] [--strict] [RULE_FILE...]\n"
    "                                    validate config, rules and templates; exit 1 on errors\n"
    "  status  [-c FILE] [--json]        poll every Connect cluster once and print its state\n"
    "  history [-c FILE] [--since 24h] [--connector RE] [--json]\n"
    "                                    restarts and notifications from the audit log\n"
    "  test    TEST_FILE...              run rule unit tests (see rules.d/tests/README.md);\n"
    "                                    exit 1 when a test fails, 2 when a file is invalid\n"
    "  version                           print the version\n"
    "\n"
    "Without -c the config is " KCW_DEFAULT_CONFIG_PATH " when it exists, else the\n"
    "built-in defaults (Connect at http://localhost:8083, the shipped rules, log-only\n"
    "notifications). Signals: SIGHUP reloads, SIGTERM/SIGINT stop.\n"
    "--strict turns warnings about an exposed setup (admin API on a non-loopback\n"
    "address without a token) into errors.\n";

static void usage(FILE *out)
{
    fputs(usage_text, out);
}

/* The config path to use: -c FILE, else the default path when present, else
 * NULL (built-in defaults). */
static const char *config_path(const char *given)
{
    if (given)
        return given;
    if (access(KCW_DEFAULT_CONFIG_PATH, F_OK) == 0)
        return KCW_DEFAULT_CONFIG_PATH;
    return NULL;
}

/* Prints every error as FILE:LINE:COL: message with the credentials and
 * query values of any URL in it hidden and control bytes escaped: a message
 * quotes config values and peer answers. */
static void errors_print(const kcw_errors_t *errs, FILE *out)
{
    size_t stored = errs->n < errs->cap ? errs->n : errs->cap;
    char buf[2048];
    for (size_t i = 0; i < stored; i++) {
        kcw_error_format(&errs->items[i], buf, sizeof(buf));
        char *red = kcw_log_redact(buf);
        char *shown = red ? kcw_text_escape(red, 0) : NULL;
        fprintf(out, "%s\n", shown ? shown : "(out of memory)");
        free(shown);
        free(red);
    }
    if (errs->n > stored)
        fprintf(out, "(%zu more errors lost: out of memory)\n", errs->n - stored);
}

/* The exposure warning for cfg; true when --strict must refuse it. */
static bool exposure_refused(const kcw_config_t *cfg, bool strict, FILE *out)
{
    char msg[512];
    /* The config has no admin token yet: every non-loopback listen is open. */
    if (!kcw_admin_listen_exposed(cfg->listen, NULL, msg, sizeof(msg)))
        return false;
    if (strict) {
        fprintf(out, "%s: global.listen: %s; refused by --strict\n",
                cfg->path ? cfg->path : "(built-in defaults)", msg);
        return true;
    }
    kcw_log(KCW_LOG_WARN, "admin API exposed", "detail", msg, NULL);
    return false;
}

/* Rule files that load but look like a mistake (rules.h): printed to out
 * (check) or logged (out NULL: run). true when --strict refuses them, each
 * then printed as an error. */
static bool rules_warned(const kcw_config_t *cfg, const kcw_ruleset_t *const *sets, size_t n_sets,
                         bool strict, FILE *out)
{
    const char *where = cfg->path ? cfg->path : "(built-in defaults)";
    const char *const *globs = (const char *const *)cfg->rule_files;
    if (!out && !strict) {
        kcw_rules_warn(globs, cfg->n_rule_files, sets, n_sets, where);
        return false;
    }
    kcw_errors_t warns = {0};
    size_t n = kcw_rules_warnings(globs, cfg->n_rule_files, sets, n_sets, where, &warns);
    for (size_t i = 0; i < n && i < warns.cap; i++)
        fprintf(out ? out : stderr, strict ? "%s: %s; refused by --strict\n" : "%s: warning: %s\n",
                where, warns.items[i].msg);
    kcw_errors_clear(&warns);
    return strict && n > 0;
}

/* Loads the config and its rule files, collecting every error. */
static int load_all(const char *path, kcw_config_t **cfg, kcw_ruleset_t **rules,
                    kcw_errors_t *errs)
{
    int rc = kcw_config_load(path, cfg, errs);
    if (rc == 0) {
        rc = kcw_rules_load((const char *const *)(*cfg)->rule_files, (*cfg)->n_rule_files, rules,
                            errs);
    }
    return rc;
}

static void apply_log_settings(const kcw_config_t *cfg)
{
    kcw_log_setup((kcw_log_format_t)cfg->log_format, (kcw_log_level_t)cfg->log_level, stderr);
}

/* --- run ---------------------------------------------------------------- */

static int cmd_run(const char *given, bool strict)
{
    const char *path = config_path(given);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    kcw_ruleset_t *rules = NULL;
    if (load_all(path, &cfg, &rules, &errs) < 0) {
        errors_print(&errs, stderr);
        kcw_errors_clear(&errs);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return 1;
    }
    kcw_errors_clear(&errs);
    apply_log_settings(cfg);
    if (exposure_refused(cfg, strict, stderr) ||
        rules_warned(cfg, (const kcw_ruleset_t *const[]){rules}, 1, strict, NULL)) {
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        kcw_log_reset();
        return 1;
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "kcwatch: cannot initialise the event loop\n");
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        return 1;
    }
    kcw_watchdog_t *wd = kcw_watchdog_new(&loop, cfg, rules);
    int status = 0;
    if (!wd) {
        fprintf(stderr, "kcwatch: out of memory\n");
        status = 1;
    } else if (kcw_watchdog_start(wd) < 0) {
        fprintf(stderr, "kcwatch: failed to start\n");
        kcw_watchdog_stop(wd);
        status = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    kcw_watchdog_free(wd);
    if (uv_loop_close(&loop) != 0)
        kcw_log(KCW_LOG_WARN, "event loop closed with handles still open", NULL);
    kcw_log(KCW_LOG_INFO, "kcwatch stopped", NULL);
    kcw_log_reset();
    return status;
}

/* --- check -------------------------------------------------------------- */

static void count_rules(const kcw_ruleset_t *rs, size_t *groups, size_t *rules)
{
    for (size_t i = 0; rs && i < rs->n_groups; i++) {
        (*groups)++;
        *rules += rs->groups[i].n_rules;
    }
}

/* kcwatch check's exit status when the config and rules are valid but
 * Prometheus could not be asked about their PromQL. */
#define EXIT_PROMQL_UNVERIFIED 3

/* Every expr of sets checked by the configured Prometheus' parser (a
 * blocking round on a private loop, bounded by prometheus.timeout per
 * request). 0: all verified or none to verify; 1: rejected (printed at
 * FILE:LINE:COL); EXIT_PROMQL_UNVERIFIED: Prometheus could not be asked. */
static int check_promql(const kcw_config_t *cfg, kcw_ruleset_t *const *sets, size_t n_sets)
{
    size_t rejected = 0, unverified = 0;
    const char *reason = NULL;
    char why[1200] = "";
    for (size_t i = 0; i < n_sets; i++) {
        if (!sets[i] || kcw_promql_unverified(sets[i]) == 0)
            continue;
        if (reason) { /* Prometheus already failed to answer: do not wait again */
            unverified += kcw_promql_unverified(sets[i]);
            continue;
        }
        kcw_promql_check_t *chk = NULL;
        if (kcw_promql_check_run(&cfg->prometheus, sets[i], &chk) < 0) {
            unverified += kcw_promql_unverified(sets[i]);
            reason = "no usable Prometheus URL";
            continue;
        }
        errors_print(kcw_promql_check_errors(chk), stderr);
        rejected += kcw_promql_check_rejected(chk);
        size_t left = kcw_promql_check_unverified(chk);
        if (left > 0) {
            unverified += left;
            snprintf(why, sizeof(why), "%s", kcw_promql_check_reason(chk));
            reason = why;
        }
        kcw_promql_check_free(chk);
    }
    if (rejected > 0) {
        fprintf(stderr, "%zu error%s\n", rejected, rejected == 1 ? "" : "s");
        return 1;
    }
    if (unverified > 0) {
        char url[512];
        kcw_url_redact_buf(cfg->prometheus.url ? cfg->prometheus.url : "", url, sizeof(url));
        /* The reason may quote a peer's answer, which may echo credentials. */
        char *red = kcw_log_redact(reason ? reason : "");
        char *shown = red ? kcw_text_escape(red, 0) : NULL;
        free(red);
        fprintf(stderr,
                "warning: PromQL not verified: %zu expression%s not checked, Prometheus at %s "
                "cannot be asked (%s); exit status %d\n",
                unverified, unverified == 1 ? "" : "s", url, shown ? shown : "?",
                EXIT_PROMQL_UNVERIFIED);
        free(shown);
        return EXIT_PROMQL_UNVERIFIED;
    }
    return 0;
}

/* Validates the config, its rule files and the rule files named on the
 * command line; every error of all of them in one pass. */
static int cmd_check(const char *given, char **extra, size_t n_extra, bool strict)
{
    const char *path = config_path(given);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    kcw_ruleset_t *rules = NULL, *extra_rules = NULL;
    int rc = load_all(path, &cfg, &rules, &errs);
    if (n_extra > 0 &&
        kcw_rules_load((const char *const *)extra, n_extra, &extra_rules, &errs) < 0)
        rc = -EINVAL;
    if (rc < 0 || errs.n > 0) {
        errors_print(&errs, stderr);
        fprintf(stderr, "%zu error%s\n", errs.n, errs.n == 1 ? "" : "s");
        rc = 1;
    } else if (exposure_refused(cfg, strict, stderr)) {
        fprintf(stderr, "1 error\n");
        rc = 1;
    } else if (rules_warned(cfg, (const kcw_ruleset_t *const[]){rules, extra_rules}, 2, strict,
                            stderr)) {
        rc = 1;
    } else if ((rc = check_promql(cfg, (kcw_ruleset_t *const[]){rules, extra_rules}, 2)) == 1) {
        /* printed */
    } else {
        int promql_rc = rc;
        size_t n_groups = 0, n_rules = 0;
        count_rules(rules, &n_groups, &n_rules);
        count_rules(extra_rules, &n_groups, &n_rules);
        char *shown_path = kcw_text_escape(path ? path : "(built-in defaults)", 0);
        printf("OK: %s: %zu cluster%s, %zu rule group%s, %zu rule%s\n",
               shown_path ? shown_path : "?", cfg->n_clusters,
               cfg->n_clusters == 1 ? "" : "s", n_groups, n_groups == 1 ? "" : "s", n_rules,
               n_rules == 1 ? "" : "s");
        free(shown_path);
        rc = promql_rc;
    }
    kcw_errors_clear(&errs);
    kcw_config_free(cfg);
    kcw_ruleset_free(rules);
    kcw_ruleset_free(extra_rules);
    return rc;
}

/* --- status ------------------------------------------------------------- */

typedef struct status_run {
    kcw_connect_t *cn;
    kcw_http_t *http;
    const kcw_config_t *cfg;
    size_t done, want;
    bool json;
    int exit_code;
} status_run_t;

static void first_line(const char *s, char *buf, size_t n)
{
    size_t len = strcspn(s ? s : "", "\r\n");
    if (len >= n)
        len = n - 1;
    memcpy(buf, s ? s : "", len);
    buf[len] = '\0';
}

/* One table row; every field from a peer is escaped (an ESC sequence in a
 * connector name must not reach the terminal). */
static void print_line(const char *const cols[7])
{
    static const int widths[7] = {-12, -28, -7, -10, -11, -22, 0};
    for (int i = 0; i < 7; i++) {
        char *red = kcw_log_redact(cols[i] ? cols[i] : "");
        char *e = red ? kcw_text_escape(red, 0) : NULL;
        free(red);
        if (i < 6)
            printf("%*s ", widths[i], e ? e : "?");
        else
            printf("%s\n", e ? e : "?");
        free(e);
    }
}

static void print_row(const char *cluster, const char *connector, const char *type,
                      const char *target, kcw_state_t state, const char *worker, const char *trace)
{
    char detail[120];
    first_line(trace, detail, sizeof(detail));
    const char *cols[7] = {cluster, connector, type, target, kcw_state_name(state),
                           worker ? worker : "-", detail};
    print_line(cols);
}

static void print_table(const kcw_connect_t *cn)
{
    const char *head[7] = {"CLUSTER", "CONNECTOR", "TYPE", "TARGET", "STATE", "WORKER", "DETAIL"};
    print_line(head);
    for (size_t i = 0; i < kcw_connect_cluster_count(cn); i++) {
        const kcw_cluster_status_t *s = kcw_connect_cluster(cn, i);
        if (!s->reachable) {
            const char *cols[7] = {s->name, "-", "-", "cluster", "UNREACHABLE", "-",
                                   s->last_error ? s->last_error : ""};
            print_line(cols);
            continue;
        }
        if (s->last_error) {
            const char *cols[7] = {s->name, "-", "-", "cluster", "ERROR",
                                   s->worker_url ? s->worker_url : "-", s->last_error};
            print_line(cols);
        }
        for (size_t c = 0; c < s->n_connectors; c++) {
            const kcw_connector_status_t *cs = &s->connectors[c];
            const char *type = kcw_connector_type_name(cs->type);
            print_row(s->name, cs->name, type, "connector", cs->state, cs->worker_id, cs->trace);
            for (size_t t = 0; t < cs->n_tasks; t++) {
                char target[24];
                snprintf(target, sizeof(target), "task %d", cs->tasks[t].id);
                print_row(s->name, cs->name, type, target, cs->tasks[t].state,
                          cs->tasks[t].worker_id, cs->tasks[t].trace);
            }
        }
    }
}

/* Invalid UTF-8 from a peer becomes U+FFFD instead of a missing field. */
static json_t *json_str_or_null(const char *s)
{
    return s ? kcw_json_text(s) : json_null();
}

static int print_json(const kcw_connect_t *cn, json_t *ha)
{
    json_t *root = json_object();
    json_t *clusters = json_array();
    if (!root || !clusters) {
        json_decref(root);
        json_decref(clusters);
        return -ENOMEM;
    }
    json_object_set_new(root, "clusters", clusters);
    for (size_t i = 0; i < kcw_connect_cluster_count(cn); i++) {
        const kcw_cluster_status_t *s = kcw_connect_cluster(cn, i);
        json_t *cl = json_object();
        json_t *conns = json_array();
        json_object_set_new(cl, "name", kcw_json_text(s->name));
        json_object_set_new(cl, "state", json_string(s->reachable ? "REACHABLE" : "UNREACHABLE"));
        json_object_set_new(cl, "worker_url", json_str_or_null(s->worker_url));
        json_object_set_new(cl, "version", json_str_or_null(s->version));
        char *error = s->last_error ? kcw_log_redact(s->last_error) : NULL;
        json_object_set_new(cl, "error", json_str_or_null(error));
        free(error);
        for (size_t c = 0; c < s->n_connectors; c++) {
            const kcw_connector_status_t *cs = &s->connectors[c];
            json_t *co = json_object();
            json_t *tasks = json_array();
            json_object_set_new(co, "name", kcw_json_text(cs->name));
            json_object_set_new(co, "type", json_string(kcw_connector_type_name(cs->type)));
            json_object_set_new(co, "state", json_string(kcw_state_name(cs->state)));
            json_object_set_new(co, "worker_id", json_str_or_null(cs->worker_id));
            if (cs->trace)
                json_object_set_new(co, "trace", kcw_json_text(cs->trace));
            if (cs->tasks_max >= 0)
                json_object_set_new(co, "tasks_max", json_integer(cs->tasks_max));
            if (cs->n_task_configs >= 0)
                json_object_set_new(co, "task_configs", json_integer(cs->n_task_configs));
            for (size_t t = 0; t < cs->n_tasks; t++) {
                const kcw_task_status_t *ts = &cs->tasks[t];
                json_t *to = json_object();
                json_object_set_new(to, "id", json_integer(ts->id));
                json_object_set_new(to, "state", json_string(kcw_state_name(ts->state)));
                json_object_set_new(to, "worker_id", json_str_or_null(ts->worker_id));
                if (ts->trace)
                    json_object_set_new(to, "trace", kcw_json_text(ts->trace));
                json_array_append_new(tasks, to);
            }
            json_object_set_new(co, "tasks", tasks);
            json_array_append_new(conns, co);
        }
        json_object_set_new(cl, "connectors", conns);
        json_array_append_new(clusters, cl);
    }
    if (ha)
        json_object_set(root, "ha", ha);
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? 0 : -EIO;
    putchar('\n');
    json_decref(root);
    return rc;
}

static void on_status_closed(void *arg)
{
    status_run_t *st = arg;
    kcw_http_close(st->http, NULL, NULL);
}

/* Prints everything once the polls (and, with ha.etcd, the ownership read)
 * are in; ha is NULL without ha.etcd. */
static void status_print(status_run_t *st, json_t *ha)
{
    if (st->json) {
        if (print_json(st->cn, ha) < 0)
            st->exit_code = 1;
    } else {
        print_table(st->cn);
        kcw_ha_owners_print(ha, stdout);
    }
    fflush(stdout);
    kcw_connect_close(st->cn, on_status_closed, st);
}

static void on_status_owners(void *arg, const kcw_ha_owner_entry_t *owners, size_t n,
                             const char *err)
{
    status_run_t *st = arg;
    json_t *ha = kcw_ha_owners_json(st->cfg, owners, n, err);
    if (err)
        st->exit_code = 1;
    status_print(st, ha);
    json_decref(ha);
}

static void on_status_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
{
    (void)changed;
    status_run_t *st = arg;
    if (!kcw_connect_cluster(cn, idx)->reachable)
        st->exit_code = 1;
    if (++st->done < st->want)
        return;
    if (st->cfg->ha.n_endpoints > 0 &&
        kcw_ha_owners_fetch(st->http, &st->cfg->ha, on_status_owners, st) == 0)
        return;
    status_print(st, NULL);
}

static int cmd_status(const char *given, bool json)
{
    const char *path = config_path(given);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    if (kcw_config_load(path, &cfg, &errs) < 0) {
        errors_print(&errs, stderr);
        kcw_errors_clear(&errs);
        return 1;
    }
    kcw_errors_clear(&errs);
    /* The table goes to stdout; keep the log to warnings so it stays readable. */
    kcw_log_setup((kcw_log_format_t)cfg->log_format, KCW_LOG_WARN, stderr);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        kcw_config_free(cfg);
        return 1;
    }
    status_run_t st = {.json = json, .want = cfg->n_clusters, .cfg = cfg};
    st.http = kcw_http_new(&loop);
    st.cn = st.http ? kcw_connect_new(&loop, st.http, cfg, on_status_poll, &st) : NULL;
    int rc = 1;
    if (st.cn && kcw_connect_poll_once(st.cn) == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = st.exit_code;
    } else {
        fprintf(stderr, "kcwatch: cannot start polling\n");
        if (st.cn)
            kcw_connect_close(st.cn, on_status_closed, &st);
        else if (st.http)
            kcw_http_close(st.http, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    kcw_config_free(cfg);
    kcw_log_reset();
    return rc;
}

/* --- history ------------------------------------------------------------ */

typedef struct history_run {
    kcw_regex_t *connector;
    json_t *rows; /* --json */
    size_t shown;
} history_run_t;

/* The connector a notification's group key names (connector="..."), copied
 * into buf; false when it names none. */
static bool group_key_connector(const char *key, char *buf, size_t n)
{
    const char *p = key ? strstr(key, "connector=\"") : NULL;
    if (!p || n == 0)
        return false;
    p += strlen("connector=\"");
    size_t len = 0;
    for (; *p && *p != '"' && len + 1 < n; p++) {
        if (*p == '\\' && p[1])
            p++;
        buf[len++] = *p;
    }
    buf[len] = '\0';
    return true;
}

static void format_time(int64_t ms, char *buf, size_t n)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_opt(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int on_history_row(const kcw_audit_t *a, void *arg)
{
    history_run_t *h = arg;
    bool restart = a->kind == KCW_AUDIT_RESTART;
    char conn_buf[256];
    const char *connector = a->connector;
    if (!restart && group_key_connector(a->group_key, conn_buf, sizeof(conn_buf)))
        connector = conn_buf;
    if (h->connector && (!connector || !kcw_regex_match(h->connector, connector)))
        return 0;
    char when[32], task[16] = "-", http[16] = "-", detail[160];
    format_time(a->time_ms, when, sizeof(when));
    if (restart && a->task >= 0)
        snprintf(task, sizeof(task), "%d", a->task);
    if (a->http_status)
        snprintf(http, sizeof(http), "%ld", a->http_status);
    h->shown++;
    if (h->rows) {
        json_t *o = json_object();
        json_object_set_new(o, "time", json_string(when));
        json_object_set_new(o, "time_ms", json_integer(a->time_ms));
        json_object_set_new(o, "kind", json_string(restart ? "restart" : "notification"));
        if (restart) {
            json_object_set_new(o, "cluster", json_opt(a->cluster));
            json_object_set_new(o, "connector", json_opt(a->connector));
            json_object_set_new(o, "task", a->task >= 0 ? json_integer(a->task) : json_null());
            json_object_set_new(o, "rule", json_opt(a->rule));
            json_object_set_new(o, "reason", json_opt(a->reason));
            json_object_set_new(o, "request", json_opt(a->request));
            json_object_set_new(o, "response", json_opt(a->response));
            json_object_set_new(o, "outcome", json_opt(a->outcome));
            json_object_set_new(o, "trace", json_opt(a->trace));
        } else {
            json_object_set_new(o, "receiver", json_opt(a->receiver));
            json_object_set_new(o, "group", json_opt(a->group_key));
            json_object_set_new(o, "status", json_opt(a->status));
            json_object_set_new(o, "detail", json_opt(a->outcome));
        }
        json_object_set_new(o, "http_status",
                            a->http_status ? json_integer(a->http_status) : json_null());
        return json_array_append_new(h->rows, o) == 0 ? 0 : 1;
    }
    first_line(restart ? a->outcome : (a->outcome ? a->outcome : a->group_key), detail,
               sizeof(detail));
    if (restart)
        printf("%-20s %-12s %-12s %-24s %-5s %-24s %-16s %-5s %s\n", when, "restart",
               a->cluster ? a->cluster : "-", a->connector ? a->connector : "-", task,
               a->rule ? a->rule : "-", a->reason ? a->reason : "-", http, detail);
    else
        printf("%-20s %-12s %-12s %-24s %-5s %-24s %-16s %-5s %s\n", when, "notification", "-",
               connector ? connector : "-", task, a->receiver ? a->receiver : "-",
               a->status ? a->status : "-", http, a->group_key ? a->group_key : "");
    return 0;
}

static int cmd_history(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"since", required_argument, NULL, 's'},
        {"connector", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *given = NULL, *since = "24h", *connector = NULL;
    bool json = false;
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': given = optarg; break;
        case 's': since = optarg; break;
        case 'C': connector = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    int64_t since_ms = 0;
    if (kcw_duration_parse(since, &since_ms) < 0) {
        fprintf(stderr, "kcwatch history: --since %s: not a duration (e.g. 30m, 24h, 7d)\n", since);
        return 2;
    }
    history_run_t h = {0};
    char err[512] = "";
    if (connector && kcw_regex_compile(connector, true, &h.connector, err, sizeof(err)) < 0) {
        fprintf(stderr, "kcwatch history: --connector %s: %s\n", connector, err);
        return 2;
    }
    const char *path = config_path(given);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    if (kcw_config_load(path, &cfg, &errs) < 0) {
        kcw_errors_print(&errs, stderr);
        kcw_errors_clear(&errs);
        kcw_regex_free(h.connector);
        return 1;
    }
    kcw_errors_clear(&errs);
    kcw_log_setup((kcw_log_format_t)cfg->log_format, KCW_LOG_WARN, stderr);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (json)
        h.rows = json_array();
    else
        printf("%-20s %-12s %-12s %-24s %-5s %-24s %-16s %-5s %s\n", "TIME", "KIND", "CLUSTER",
               "CONNECTOR", "TASK", "RULE/RECEIVER", "RESULT", "HTTP", "DETAIL");
    long n = kcw_store_audit_read(cfg->state_dir, since_ms > 0 ? now - since_ms : 0,
                                  on_history_row, &h, err, sizeof(err));
    int rc = 0;
    if (n < 0) {
        fprintf(stderr, "kcwatch history: %s\n", err);
        rc = 1;
    } else if (h.rows) {
        rc = json_dumpf(h.rows, stdout, JSON_INDENT(2)) == 0 ? 0 : 1;
        putchar('\n');
    }
    json_decref(h.rows);
    kcw_regex_free(h.connector);
    kcw_config_free(cfg);
    kcw_log_reset();
    return rc;
}

/* --- dispatch ----------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("kcwatch %s\n", KCW_VERSION);
        return 0;
    }
    if (strcmp(cmd, "history") == 0)
        return cmd_history(argc, argv);
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"strict", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool json = false, strict = false;
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'j': json = true; break;
        case 's': strict = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(cmd, "run") == 0 && optind == argc && !json)
        return cmd_run(config, strict);
    if (strcmp(cmd, "check") == 0 && !json)
        return cmd_check(config, argv + optind, (size_t)(argc - optind), strict);
    if (strcmp(cmd, "status") == 0 && optind == argc && !strict)
        return cmd_status(config, json);
    if (strcmp(cmd, "test") == 0 && optind < argc && !json && !config && !strict)
        return kcw_ruletest_run((const char *const *)argv + optind, (size_t)(argc - optind),
                                stdout);
    fprintf(stderr, "kcwatch: unknown command or arguments: %s\n", cmd);
    usage(stderr);
    return 2;
}
