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

#include "kcw_commit.h" /* generated: KCW_COMMIT (cmake/commit.cmake) */
#include "kcwatch/admin.h"
#include "kcwatch/alerts.h"
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

/* --- commands and their help ---------------------------------------------- */

/* Options a command accepts (bits). */
enum {
    OPT_CONFIG = 1 << 0,
    OPT_STRICT = 1 << 1,
    OPT_JSON = 1 << 2,
    OPT_LOG = 1 << 3, /* --log-level, --log-format */
    OPT_SINCE = 1 << 4,
    OPT_CONNECTOR = 1 << 5,
};

typedef struct command {
    const char *name;
    const char *synopsis; /* after "kcwatch NAME" */
    const char *summary;  /* one line for the global usage */
    const char *help;     /* the rest of `kcwatch NAME --help` */
    unsigned opts;
} command_t;

#define HELP_CONFIG                                                                               \
    "  -c, --config FILE     the configuration (default " KCW_DEFAULT_CONFIG_PATH " when it\n"     \
    "                        exists, else the built-in defaults)\n"
#define HELP_LOG                                                                                  \
    "  --log-level LEVEL     debug, info, warn or error (overrides global.log.level)\n"           \
    "  --log-format FORMAT   logfmt or json (overrides global.log.format)\n"
#define HELP_HELP "  -h, --help            show this help\n"

static const command_t commands[] = {
    {"run", "[-c FILE] [--strict] [--log-level LEVEL] [--log-format FORMAT]",
     "run the watchdog in the foreground",
     "Polls every Connect cluster, evaluates the rules, restarts what failed and\n"
     "notifies, until SIGTERM or SIGINT. SIGHUP (or POST /-/reload) reloads the\n"
     "configuration; a configuration with errors is refused and the running one stays.\n"
     "\noptions:\n" HELP_CONFIG
     "  --strict              refuse to start on any warning (an admin API exposed beyond\n"
     "                        this host without a token or basic auth, ...)\n" HELP_LOG HELP_HELP,
     OPT_CONFIG | OPT_STRICT | OPT_LOG},
    {"check", "[-c FILE] [--strict] [RULE_FILE...]",
     "validate config, rules and templates; exit 1 on errors",
     "Loads the configuration, its rule files and the RULE_FILEs given and prints\n"
     "every problem as FILE:LINE:COL: message, all of them in one pass; warnings\n"
     "(FILE:LINE:COL: warning: message) do not fail the check. Exit 0 when all is\n"
     "valid, 1 otherwise.\n"
     "\noptions:\n" HELP_CONFIG
     "  --strict              treat warnings as errors\n" HELP_LOG
         HELP_HELP,
     OPT_CONFIG | OPT_STRICT | OPT_LOG},
    {"status", "[-c FILE] [--json]", "poll every Connect cluster once and print its state",
     "Polls every configured Connect cluster once and prints each connector and\n"
     "task with its state and worker. Exit 1 when a cluster cannot be read.\n"
     "\noptions:\n" HELP_CONFIG "  --json                print JSON instead of a table\n" HELP_LOG
         HELP_HELP,
     OPT_CONFIG | OPT_JSON | OPT_LOG},
    {"history", "[-c FILE] [--since 24h] [--connector RE] [--json]",
     "restarts and notifications from the audit log",
     "Prints the audit log kept in the state directory: every restart and\n"
     "notification, oldest first.\n"
     "\noptions:\n" HELP_CONFIG
     "  --since DURATION      how far back (default 24h; 0 = everything)\n"
     "  --connector REGEX     only connectors whose whole name matches\n"
     "  --json                print JSON instead of a table\n" HELP_LOG HELP_HELP,
     OPT_CONFIG | OPT_SINCE | OPT_CONNECTOR | OPT_JSON | OPT_LOG},
    {"test", "TEST_FILE...", "run rule unit tests (see rules.d/tests/README.md)",
     "Runs rule unit tests in promtool's test-file layout (docs/rules.md,\n"
     "rules.d/tests/README.md).\n"
     "Exit 0 when every test passes, 1 when a test fails, 2 when a file is invalid.\n"
     "\noptions:\n" HELP_HELP,
     0},
    {"version", "[--json]", "print the version and the git commit",
     "Prints the version and the git commit kcwatch was built from (\"unknown\"\n"
     "when built outside a git checkout).\n"
     "\noptions:\n  --json                print {\"version\": ..., \"commit\": ...}\n" HELP_HELP,
     OPT_JSON},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command_t *command_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fputs("usage: kcwatch <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\n`kcwatch <command> --help` (or `kcwatch help <command>`) shows its options.\n"
          "Without -c the config is " KCW_DEFAULT_CONFIG_PATH " when it exists, else the\n"
          "built-in defaults (Connect at http://localhost:8083, the shipped rules, log-only\n"
          "notifications). Signals: SIGHUP reloads, SIGTERM/SIGINT stop.\n",
          out);
}

static void command_help(const command_t *c, FILE *out)
{
    fprintf(out, "usage: kcwatch %s %s\n\n%s", c->name, c->synopsis, c->help);
}

/* Sets the logger up from cfg's global.log (NULL: the defaults), with
 * level_floor raising the level for the one-shot commands; --log-level and
 * --log-format are pinned (kcw_log_pin) and win here and on every reload. */
static void log_setup(const kcw_config_t *cfg, int level_floor)
{
    int format = cfg ? cfg->log_format : KCW_LOG_LOGFMT;
    int level = cfg ? cfg->log_level : KCW_LOG_INFO;
    if (level < level_floor)
        level = level_floor;
    kcw_log_setup((kcw_log_format_t)format, (kcw_log_level_t)level, stderr);
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

/* Every warning of the config and its rules, in one list (caller clears). */
static void warnings_collect(const kcw_config_t *cfg, const kcw_ruleset_t *rules,
                             const kcw_ruleset_t *extra, kcw_errors_t *out)
{
    if (cfg)
        kcw_errors_append(out, &cfg->warnings);
    if (rules)
        kcw_errors_append(out, &rules->warnings);
    if (extra)
        kcw_errors_append(out, &extra->warnings);
    /* Rule files that load but look like a mistake (rules.h). */
    if (cfg)
        kcw_rules_warnings((const char *const *)cfg->rule_files, cfg->n_rule_files,
                           (const kcw_ruleset_t *const[]){rules, extra}, 2,
                           cfg->path ? cfg->path : "(built-in defaults)", out);
}

/* Prints each warning as FILE:LINE:COL: warning: message, like errors (with
 * --strict as errors: "...: message (refused by --strict)"). */
static void warnings_print(const kcw_errors_t *w, bool strict, FILE *out)
{
    size_t stored = w->n < w->cap ? w->n : w->cap;
    for (size_t i = 0; i < stored; i++) {
        kcw_error_t e = w->items[i];
        char msg[1536];
        snprintf(msg, sizeof(msg), strict ? "%s (refused by --strict)" : "warning: %s",
                 e.msg ? e.msg : "(out of memory)");
        e.msg = msg;
        kcw_errors_t one = {.items = &e, .n = 1, .cap = 1};
        errors_print(&one, out);
    }
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
    log_setup(cfg, KCW_LOG_DEBUG);
    warnings_collect(cfg, rules, NULL, &errs);
    if (strict && errs.n > 0) {
        warnings_print(&errs, true, stderr);
        kcw_errors_clear(&errs);
        kcw_config_free(cfg);
        kcw_ruleset_free(rules);
        kcw_log_reset();
        return 1;
    }
    kcw_errors_log_warnings(&errs, "configuration warning");
    kcw_errors_clear(&errs);

    /* Test hook (bench/soak): resolved alerts kept for less than 15 min. */
    const char *keep = getenv("KCWATCH_TEST_RESOLVED_RETENTION_MS");
    if (keep && *keep)
        kcw_alert_set_resolved_retention(strtoll(keep, NULL, 10));

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
    kcw_errors_t warns = {0};
    if (rc == 0)
        warnings_collect(cfg, rules, extra_rules, &warns);
    if (rc < 0 || errs.n > 0) {
        errors_print(&errs, stderr);
        fprintf(stderr, "%zu error%s\n", errs.n, errs.n == 1 ? "" : "s");
        rc = 1;
    } else if (strict && warns.n > 0) {
        warnings_print(&warns, true, stderr);
        fprintf(stderr, "%zu error%s\n", warns.n, warns.n == 1 ? "" : "s");
        rc = 1;
    } else if ((rc = check_promql(cfg, (kcw_ruleset_t *const[]){rules, extra_rules}, 2)) == 1) {
        /* printed */
    } else {
        int promql_rc = rc;
        warnings_print(&warns, false, stderr);
        size_t n_groups = 0, n_rules = 0;
        count_rules(rules, &n_groups, &n_rules);
        count_rules(extra_rules, &n_groups, &n_rules);
        char *shown_path = kcw_text_escape(path ? path : "(built-in defaults)", 0);
        printf("OK: %s: %zu cluster%s, %zu rule group%s, %zu rule%s\n",
               shown_path ? shown_path : "?", cfg->n_clusters,
               cfg->n_clusters == 1 ? "" : "s", n_groups, n_groups == 1 ? "" : "s", n_rules,
               n_rules == 1 ? "" : "s");
        free(shown_path);
        if (warns.n > 0)
            printf("%zu warning%s\n", warns.n, warns.n == 1 ? "" : "s");
        rc = promql_rc;
    }
    kcw_errors_clear(&warns);
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
    log_setup(cfg, KCW_LOG_WARN);
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

static int cmd_history(const char *given, const char *since, const char *connector, bool json)
{
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
    log_setup(cfg, KCW_LOG_WARN);
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

/* --- version ------------------------------------------------------------- */

static int cmd_version(bool json)
{
    if (!json) {
        printf("kcwatch %s (commit %s)\n", KCW_VERSION, KCW_COMMIT);
        return 0;
    }
    json_t *o = json_pack("{s:s, s:s}", "version", KCW_VERSION, "commit", KCW_COMMIT);
    int rc = o && json_dumpf(o, stdout, JSON_INDENT(2)) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(o);
    return rc;
}

/* --- dispatch ----------------------------------------------------------- */

static const char *option_name(unsigned bit)
{
    switch (bit) {
    case OPT_CONFIG: return "--config";
    case OPT_STRICT: return "--strict";
    case OPT_JSON: return "--json";
    case OPT_LOG: return "--log-level/--log-format";
    case OPT_SINCE: return "--since";
    case OPT_CONNECTOR: return "--connector";
    default: return "?";
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "help") == 0) {
        const command_t *c = argc > 2 ? command_find(argv[2]) : NULL;
        if (argc > 2 && !c) {
            fprintf(stderr, "kcwatch help: no command \"%s\"\n", argv[2]);
            usage(stderr);
            return 2;
        }
        if (c)
            command_help(c, stdout);
        else
            usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    const command_t *cmd = command_find(name);
    if (!cmd) {
        fprintf(stderr, "kcwatch: unknown command: %s\n", name);
        usage(stderr);
        return 2;
    }
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"strict", no_argument, NULL, 's'},
        {"since", required_argument, NULL, 'S'},
        {"connector", required_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'L'},
        {"log-format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *since = "24h", *connector = NULL;
    bool json = false, strict = false;
    int log_level = -1, log_format = -1; /* -1: not given */
    unsigned used = 0;
    optind = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; used |= OPT_CONFIG; break;
        case 'j': json = true; used |= OPT_JSON; break;
        case 's': strict = true; used |= OPT_STRICT; break;
        case 'S': since = optarg; used |= OPT_SINCE; break;
        case 'C': connector = optarg; used |= OPT_CONNECTOR; break;
        case 'L':
            used |= OPT_LOG;
            if ((log_level = kcw_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "kcwatch %s: --log-level %s: expected debug, info, warn or error\n",
                        cmd->name, optarg);
                return 2;
            }
            break;
        case 'F':
            used |= OPT_LOG;
            if (strcmp(optarg, "logfmt") == 0) {
                log_format = KCW_LOG_LOGFMT;
            } else if (strcmp(optarg, "json") == 0) {
                log_format = KCW_LOG_JSON;
            } else {
                fprintf(stderr, "kcwatch %s: --log-format %s: expected logfmt or json\n",
                        cmd->name, optarg);
                return 2;
            }
            break;
        case 'h': command_help(cmd, stdout); return 0;
        default: command_help(cmd, stderr); return 2;
        }
    }
    for (unsigned bit = 1; bit <= OPT_CONNECTOR; bit <<= 1) {
        if ((used & bit) && !(cmd->opts & bit)) {
            fprintf(stderr, "kcwatch %s: %s is not an option of this command\n\n", cmd->name,
                    option_name(bit));
            command_help(cmd, stderr);
            return 2;
        }
    }
    size_t n_args = (size_t)(argc - optind);
    bool args_ok = strcmp(cmd->name, "check") == 0 || (strcmp(cmd->name, "test") == 0
                                                           ? n_args > 0
                                                           : n_args == 0);
    if (!args_ok) {
        fprintf(stderr, "kcwatch %s: %s\n\n", cmd->name,
                n_args ? "unexpected arguments" : "missing arguments");
        command_help(cmd, stderr);
        return 2;
    }
    if (log_level >= 0 || log_format >= 0) {
        kcw_log_pin(log_format, log_level);
        log_setup(NULL, KCW_LOG_DEBUG); /* for what logs before the config is read */
    }
    if (strcmp(cmd->name, "run") == 0)
        return cmd_run(config, strict);
    if (strcmp(cmd->name, "check") == 0)
        return cmd_check(config, argv + optind, n_args, strict);
    if (strcmp(cmd->name, "status") == 0)
        return cmd_status(config, json);
    if (strcmp(cmd->name, "history") == 0)
        return cmd_history(config, since, connector, json);
    if (strcmp(cmd->name, "test") == 0)
        return kcw_ruletest_run((const char *const *)argv + optind, n_args, stdout);
    return cmd_version(json);
}
