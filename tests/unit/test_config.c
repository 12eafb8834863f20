/* test_config.c: kcwatch.yaml loading: defaults, a full config, every kind of
 * positioned error (exact LINE:COL), ${ENV} expansion, secrets and redaction. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kcwatch/config.h"
#include "kcwatch/log.h"
#include "kcwatch/rules.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* ---- helpers ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/kcw-config-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    /* Depth-first, only inside our own mkdtemp directory. */
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    kcw_log_reset();
    return 0;
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

/* Loads yaml as "kcwatch.yaml"; returns rc. */
static int load(const char *yaml, kcw_config_t **cfg, kcw_errors_t *errs)
{
    return kcw_config_load_string(yaml, "kcwatch.yaml", cfg, errs);
}

static void dump_errors(const kcw_errors_t *errs)
{
    kcw_errors_print(errs, stderr);
}

/* Asserts that an error at exactly line:col whose text contains want exists. */
static void expect_error_at(const kcw_errors_t *errs, int line, int col, const char *want)
{
    for (size_t i = 0; i < errs->n; i++) {
        const kcw_error_t *e = &errs->items[i];
        if (e->line == line && e->col == col && e->msg && strstr(e->msg, want))
            return;
    }
    dump_errors(errs);
    fail_msg("no error at %d:%d containing \"%s\"", line, col, want);
}

/* Loads yaml expecting failure with exactly one error at line:col. */
static void expect_single_error(const char *yaml, int line, int col, const char *want)
{
    kcw_config_t *cfg = (kcw_config_t *)1;
    kcw_errors_t errs = {0};
    assert_int_equal(load(yaml, &cfg, &errs), -EINVAL);
    assert_null(cfg);
    if (errs.n != 1) {
        dump_errors(&errs);
        fail_msg("expected exactly one error, got %zu", errs.n);
    }
    expect_error_at(&errs, line, col, want);
    assert_string_equal(errs.items[0].file, "kcwatch.yaml");
    kcw_errors_clear(&errs);
}

static kcw_config_t *load_ok(const char *yaml)
{
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = load(yaml, &cfg, &errs);
    if (rc != 0) {
        dump_errors(&errs);
        fail_msg("load failed: %d", rc);
    }
    assert_int_equal(errs.n, 0);
    kcw_errors_clear(&errs);
    assert_non_null(cfg);
    return cfg;
}

static size_t count_default_traces(void)
{
    size_t n = 0;
    for (const char *const *t = kcw_config_default_unrecoverable_traces(); *t; t++)
        n++;
    return n;
}

/* ---- defaults ----------------------------------------------------------- */

static void check_defaults_rules(const kcw_config_t *cfg, const char *rules_glob)
{
    assert_int_equal(cfg->evaluation_interval_ms, 10 * SEC);
    assert_int_equal(cfg->external_labels.n, 0);
    assert_string_equal(cfg->state_dir, "./kcwatch-state");
    assert_int_equal(cfg->audit_retention_ms, 30 * 24 * 3600 * SEC);
    assert_int_equal(cfg->notification_max_age_ms, 24 * 3600 * SEC);
    assert_string_equal(cfg->listen, "127.0.0.1:9464");
    assert_string_equal(cfg->external_url, "http://127.0.0.1:9464");
    assert_int_equal(cfg->log_format, KCW_LOG_LOGFMT);
    assert_int_equal(cfg->log_level, KCW_LOG_INFO);

    assert_string_equal(cfg->prometheus.url, "http://localhost:9090");
    assert_int_equal(cfg->prometheus.timeout_ms, 10 * SEC);
    assert_null(cfg->prometheus.basic_auth.username);
    assert_null(cfg->prometheus.bearer_token);
    assert_null(cfg->prometheus.tls.ca_file);
    assert_false(cfg->prometheus.tls.insecure);

    assert_int_equal(cfg->n_clusters, 1);
    assert_string_equal(cfg->clusters[0].name, "default");
    assert_int_equal(cfg->clusters[0].n_urls, 1);
    assert_string_equal(cfg->clusters[0].urls[0], "http://localhost:8083");
    assert_int_equal(cfg->clusters[0].poll_interval_ms, 5 * SEC);
    assert_int_equal(cfg->clusters[0].timeout_ms, 10 * SEC);

    const kcw_remediation_conf_t *r = &cfg->remediation;
    assert_true(r->enabled);
    assert_false(r->dry_run);
    assert_int_equal(r->max_concurrent, 2);
    assert_int_equal(r->backoff_initial_ms, 30 * SEC);
    assert_int_equal(r->backoff_max_ms, 30 * MIN);
    assert_true(r->backoff_multiplier == 2.0);
    assert_true(r->backoff_jitter == 0.2);
    assert_int_equal(r->budget_max_restarts, 5);
    assert_int_equal(r->budget_window_ms, HOUR);
    assert_int_equal(r->stable_period_ms, 10 * MIN);
    assert_int_equal(r->verify_timeout_ms, 2 * MIN);
    assert_int_equal(r->heal_wait_ms, 2 * MIN); /* the verify period */
    assert_true(r->storm_enabled);
    assert_int_equal(r->storm_min_tasks, 10);
    assert_true(r->storm_min_fraction == 0.2);
    assert_int_equal(r->storm_window_ms, MIN);
    assert_true(r->storm_inhibit);
    assert_true(r->rate_per_min == 30.0);
    assert_null(r->exclude_connector);
    assert_int_equal(r->n_unrecoverable_traces, count_default_traces());
    for (size_t i = 0; i < r->n_unrecoverable_traces; i++)
        assert_string_equal(r->unrecoverable_traces[i],
                            kcw_config_default_unrecoverable_traces()[i]);

    assert_int_equal(cfg->n_rule_files, 1);
    assert_string_equal(cfg->rule_files[0], rules_glob);

    assert_int_equal(cfg->n_receivers, 1);
    assert_string_equal(cfg->receivers[0].name, "log");
    assert_int_equal(cfg->receivers[0].kind, KCW_RECEIVER_LOG);
    assert_ptr_equal(kcw_config_receiver(cfg, "log"), &cfg->receivers[0]);
    assert_null(kcw_config_receiver(cfg, "nope"));

    assert_string_equal(cfg->route.receiver, "log");
    assert_int_equal(cfg->route.n_group_by, 0);
    assert_int_equal(cfg->route.group_wait_ms, 30 * SEC);
    assert_int_equal(cfg->route.group_interval_ms, 5 * MIN);
    assert_int_equal(cfg->route.repeat_interval_ms, 4 * HOUR);
    assert_int_equal(cfg->route.n_routes, 0);
    assert_string_equal(cfg->route.key, "{}");
    assert_int_equal(cfg->n_silences, 0);
    assert_int_equal(cfg->n_inhibit_rules, 0);

    assert_int_equal(cfg->ha.n_endpoints, 0);
    assert_string_equal(cfg->ha.prefix, "/kcwatch");
    assert_int_equal(cfg->ha.ttl_ms, 10 * SEC);
    assert_null(cfg->ha.instance);
}

static void check_defaults(const kcw_config_t *cfg)
{
    check_defaults_rules(cfg, KCW_DEFAULT_RULES_DIR "/*.yaml");
}

static void test_defaults_null_path(void **state)
{
    (void)state;
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_config_load(NULL, &cfg, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_null(cfg->path);
    check_defaults(cfg);
    kcw_config_free(cfg);
    kcw_config_free(NULL); /* no-op */
}

static void test_defaults_empty_documents(void **state)
{
    (void)state;
    const char *docs[] = {"", "# nothing but a comment\n", "---\n", "global:\nconnect:\n"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        kcw_config_t *cfg = load_ok(docs[i]);
        assert_string_equal(cfg->path, "kcwatch.yaml");
        check_defaults(cfg);
        kcw_config_free(cfg);
    }
}

/* The shipped example documents every default: it must load cleanly and
 * mean exactly the built-in defaults (rule_files spelled for the package). */
static void test_example_config(void **state)
{
    (void)state;
    const char *path = KCW_SOURCE_DIR "/packaging/kcwatch.example.yaml";
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = kcw_config_load(path, &cfg, &errs);
    if (rc != 0)
        dump_errors(&errs);
    assert_int_equal(rc, 0);
    check_defaults_rules(cfg, "/usr/share/kcwatch/rules.d/*.yaml");
    kcw_config_free(cfg);
}

/* ---- ha ------------------------------------------------------------------ */

static void test_ha_config(void **state)
{
    (void)state;
    kcw_config_t *cfg = load_ok("ha:\n"
                                "  instance: kcw-a.1\n"
                                "  etcd:\n"
                                "    endpoints: [http://127.0.0.1:2379/, http://etcd-b:2379]\n"
                                "    prefix: /team/kcwatch/\n"
                                "    ttl: 3s\n");
    assert_int_equal(cfg->ha.n_endpoints, 2);
    assert_string_equal(cfg->ha.endpoints[0], "http://127.0.0.1:2379");
    assert_string_equal(cfg->ha.endpoints[1], "http://etcd-b:2379");
    assert_string_equal(cfg->ha.prefix, "/team/kcwatch"); /* trailing '/' dropped */
    assert_int_equal(cfg->ha.ttl_ms, 3 * SEC);
    assert_string_equal(cfg->ha.instance, "kcw-a.1");
    kcw_config_free(cfg);

    expect_single_error("ha:\n  etcd:\n    ttl: 1500ms\n", 3, 10,
                        "ha.etcd.ttl: must be whole seconds between 2s and 1h");
    expect_single_error("ha:\n  etcd:\n    ttl: 1s\n", 3, 10, "between 2s and 1h");
    expect_single_error("ha:\n  etcd:\n    prefix: kcwatch\n", 3, 13,
                        "ha.etcd.prefix: \"kcwatch\" must start with '/'");
    expect_single_error("ha:\n  etcd:\n    prefix: /\n", 3, 13, "must start with '/' and name");
    expect_single_error("ha:\n  instance: a/b\n", 2, 13,
                        "ha.instance: \"a/b\" may only contain letters");
    expect_single_error("ha:\n  etcd:\n    endpoints: [ftp://x]\n", 3, 17, "ha.etcd.endpoints[0]");
    expect_single_error("ha:\n  etcd:\n    lease: 3s\n", 3, 5, "lease");
}

/* ---- a full valid config ------------------------------------------------ */

static void test_full_config(void **state)
{
    fixture_t *f = *state;
    write_file(f->dir, "prom-pw", "prom-password\n");
    write_file(f->dir, "prom-token", "prom-token-value\r\n");
    write_file(f->dir, "connect-pw", "connect-password");
    write_file(f->dir, "hook-token", "hook-token-value\n\n");
    write_file(f->dir, "ca.pem", "ca");
    write_file(f->dir, "cert.pem", "cert");
    write_file(f->dir, "key.pem", "key");
    setenv("KCW_TEST_HOST", "connect-a.example", 1);
    setenv("KCW_TEST_INLINE_PW", "inline-pw", 1);

    char *yaml;
    const char *d = f->dir;
    assert_true(asprintf(&yaml,
                         "global:\n"
                         "  evaluation_interval: 15s\n"
                         "  external_labels: {env: prod, region: eu-1}\n"
                         "  state_dir: /var/lib/kcwatch\n"
                         "  audit_retention: 7d\n"
                         "  notification_max_age: 2h\n"
                         "  listen: 0.0.0.0:9500\n"
                         "  log: {format: json, level: debug}\n"
                         "prometheus:\n"
                         "  url: https://prom.example:9090/\n"
                         "  timeout: 20s\n"
                         "  basic_auth: {username: prom, password_file: %s/prom-pw}\n"
                         "  tls: {ca_file: %s/ca.pem, cert_file: cert.pem, key_file: key.pem, "
                         "insecure: true}\n"
                         "connect:\n"
                         "  - name: prod-a\n"
                         "    urls: [\"http://${KCW_TEST_HOST}:8083/\", https://connect-b:8443]\n"
                         "    poll_interval: 2s\n"
                         "    timeout: 3s\n"
                         "    basic_auth:\n"
                         "      username: admin\n"
                         "      password_file: connect-pw\n"
                         "  - name: staging.1\n"
                         "    url: http://staging:8083\n"
                         "    basic_auth: {username: u, password: \"${KCW_TEST_INLINE_PW}\"}\n"
                         "remediation:\n"
                         "  enabled: false\n"
                         "  dry_run: true\n"
                         "  max_concurrent: 4\n"
                         "  backoff: {initial: 10s, max: 1h, multiplier: 1.5, jitter: 0}\n"
                         "  budget: {max_restarts: 3, window: 2h}\n"
                         "  stable_period: 15m\n"
                         "  verify_timeout: 90s\n"
                         "  exclude: {connector: \"test-.*|tmp\"}\n"
                         "  unrecoverable_traces: [\"MyFatalError\", 'Bad\\d+']\n"
                         "rule_files: [\"rules/*.yaml\", /etc/kcwatch/extra/*.yml]\n"
                         "receivers:\n"
                         "  - name: ops\n"
                         "    webhook:\n"
                         "      url: http://hooks.example/alert/\n"
                         "      timeout: 5s\n"
                         "      send_resolved: false\n"
                         "      max_alerts: 20\n"
                         "      bearer_token_file: hook-token\n"
                         "  - name: quiet\n"
                         "    log: {}\n"
                         "route:\n"
                         "  receiver: quiet\n"
                         "  group_by: [alertname, cluster, connector]\n"
                         "  group_wait: 0s\n"
                         "  group_interval: 1m\n"
                         "  repeat_interval: 12h\n",
                         d, d) > 0);
    char name[128];
    snprintf(name, sizeof(name), "%s/kcwatch.yaml", d);
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = kcw_config_load_string(yaml, name, &cfg, &errs);
    free(yaml);
    if (rc != 0)
        dump_errors(&errs);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.n, 0);
    char buf[256];

    assert_string_equal(cfg->path, name);
    assert_int_equal(cfg->evaluation_interval_ms, 15 * SEC);
    assert_int_equal(cfg->external_labels.n, 2);
    assert_string_equal(kcw_labels_get(&cfg->external_labels, "env"), "prod");
    assert_string_equal(kcw_labels_get(&cfg->external_labels, "region"), "eu-1");
    assert_string_equal(cfg->state_dir, "/var/lib/kcwatch");
    assert_int_equal(cfg->audit_retention_ms, 7 * 24 * 3600 * SEC);
    assert_int_equal(cfg->notification_max_age_ms, 2 * 3600 * SEC);
    assert_string_equal(cfg->listen, "0.0.0.0:9500");
    assert_string_equal(cfg->external_url, "http://0.0.0.0:9500");
    assert_int_equal(cfg->log_format, KCW_LOG_JSON);
    assert_int_equal(cfg->log_level, KCW_LOG_DEBUG);

    assert_string_equal(cfg->prometheus.url, "https://prom.example:9090");
    assert_int_equal(cfg->prometheus.timeout_ms, 20 * SEC);
    assert_string_equal(cfg->prometheus.basic_auth.username, "prom");
    assert_string_equal(cfg->prometheus.basic_auth.password, "prom-password");
    snprintf(buf, sizeof(buf), "%s/ca.pem", d);
    assert_string_equal(cfg->prometheus.tls.ca_file, buf);
    snprintf(buf, sizeof(buf), "%s/cert.pem", d); /* relative: against the config's dir */
    assert_string_equal(cfg->prometheus.tls.cert_file, buf);
    snprintf(buf, sizeof(buf), "%s/key.pem", d);
    assert_string_equal(cfg->prometheus.tls.key_file, buf);
    assert_true(cfg->prometheus.tls.insecure);

    assert_int_equal(cfg->n_clusters, 2);
    const kcw_cluster_conf_t *a = &cfg->clusters[0], *b = &cfg->clusters[1];
    assert_string_equal(a->name, "prod-a");
    assert_int_equal(a->n_urls, 2);
    assert_string_equal(a->urls[0], "http://connect-a.example:8083");
    assert_string_equal(a->urls[1], "https://connect-b:8443");
    assert_int_equal(a->poll_interval_ms, 2 * SEC);
    assert_int_equal(a->timeout_ms, 3 * SEC);
    assert_string_equal(a->basic_auth.username, "admin");
    assert_string_equal(a->basic_auth.password, "connect-password");
    assert_string_equal(b->name, "staging.1");
    assert_int_equal(b->n_urls, 1);
    assert_string_equal(b->urls[0], "http://staging:8083");
    assert_int_equal(b->poll_interval_ms, 5 * SEC);
    assert_string_equal(b->basic_auth.password, "inline-pw");

    const kcw_remediation_conf_t *r = &cfg->remediation;
    assert_false(r->enabled);
    assert_true(r->dry_run);
    assert_int_equal(r->max_concurrent, 4);
    assert_int_equal(r->backoff_initial_ms, 10 * SEC);
    assert_int_equal(r->backoff_max_ms, HOUR);
    assert_true(r->backoff_multiplier == 1.5);
    assert_true(r->backoff_jitter == 0.0);
    assert_int_equal(r->budget_max_restarts, 3);
    assert_int_equal(r->budget_window_ms, 2 * HOUR);
    assert_int_equal(r->stable_period_ms, 15 * MIN);
    assert_int_equal(r->verify_timeout_ms, 90 * SEC);
    assert_int_equal(r->heal_wait_ms, 90 * SEC); /* follows verify_timeout */
    assert_string_equal(r->exclude_connector, "test-.*|tmp");
    assert_int_equal(r->n_unrecoverable_traces, 2); /* replaces the built-in list */
    assert_string_equal(r->unrecoverable_traces[0], "MyFatalError");
    assert_string_equal(r->unrecoverable_traces[1], "Bad\\d+");

    assert_int_equal(cfg->n_rule_files, 2);
    snprintf(buf, sizeof(buf), "%s/rules/*.yaml", d);
    assert_string_equal(cfg->rule_files[0], buf);
    assert_string_equal(cfg->rule_files[1], "/etc/kcwatch/extra/*.yml");

    assert_int_equal(cfg->n_receivers, 2);
    const kcw_receiver_conf_t *ops = kcw_config_receiver(cfg, "ops");
    assert_non_null(ops);
    assert_int_equal(ops->kind, KCW_RECEIVER_WEBHOOK);
    assert_string_equal(ops->url, "http://hooks.example/alert/"); /* posted as written */
    assert_int_equal(ops->timeout_ms, 5 * SEC);
    assert_false(ops->send_resolved);
    assert_int_equal(ops->max_alerts, 20);
    assert_string_equal(ops->bearer_token, "hook-token-value");
    const kcw_receiver_conf_t *quiet = kcw_config_receiver(cfg, "quiet");
    assert_non_null(quiet);
    assert_int_equal(quiet->kind, KCW_RECEIVER_LOG);

    assert_string_equal(cfg->route.receiver, "quiet");
    assert_int_equal(cfg->route.n_group_by, 3);
    assert_string_equal(cfg->route.group_by[2], "connector");
    assert_int_equal(cfg->route.group_wait_ms, 0);
    assert_int_equal(cfg->route.group_interval_ms, MIN);
    assert_int_equal(cfg->route.repeat_interval_ms, 12 * HOUR);

    kcw_config_free(cfg);
    unsetenv("KCW_TEST_HOST");
    unsetenv("KCW_TEST_INLINE_PW");
}

/* ---- one error of each kind, with its exact position -------------------- */

static void test_unknown_key(void **state)
{
    (void)state;
    expect_single_error("connect:\n"
                        "  - name: a\n"
                        "    urls: [http://a:8083]\n"
                        "    foo: 1\n",
                        4, 5, "unknown key \"foo\" in connect[0]");
    expect_single_error("global:\n  evaluation_interval: 10s\nglobel: {}\n", 3, 1,
                        "unknown key \"globel\" at top level");
    expect_single_error("remediation:\n  backoff: {initial: 1s, maximum: 2s}\n", 2, 26,
                        "unknown key \"maximum\" in remediation.backoff");
    expect_single_error("global:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", 3, 3,
                        "duplicate key \"listen\" in global (first at line 2)");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_single_error("global:\n  evaluation_interval: {a: 1}\n", 2, 24,
                        "global.evaluation_interval: expected a duration, got mapping");
    expect_single_error("global: [1, 2]\n", 1, 9, "global: expected a mapping, got sequence");
    expect_single_error("connect:\n  name: a\n", 2, 3, "connect: expected a list, got mapping");
    expect_single_error("remediation:\n  max_concurrent: lots\n", 2, 19,
                        "remediation.max_concurrent: expected an integer, got \"lots\"");
    expect_single_error("remediation:\n  enabled: yes\n", 2, 12,
                        "remediation.enabled: expected true or false, got \"yes\"");
    expect_single_error("route:\n  group_by: alertname\n", 2, 13,
                        "route.group_by: expected a list, got scalar");
    expect_single_error("- a\n- b\n", 1, 1, "top level: expected a mapping, got sequence");
    {
        kcw_config_t *cfg = load_ok("remediation:\n  rate: 120\n  storm:\n    min_tasks: 3\n"
                                    "    min_fraction: 0.5\n    window: 30s\n"
                                    "    enabled: false\n    inhibit_notifications: false\n");
        const kcw_remediation_conf_t *rc = &cfg->remediation;
        assert_true(rc->rate_per_min == 120.0);
        assert_int_equal(rc->storm_min_tasks, 3);
        assert_true(rc->storm_min_fraction == 0.5);
        assert_int_equal(rc->storm_window_ms, 30 * SEC);
        assert_false(rc->storm_enabled);
        assert_false(rc->storm_inhibit);
        kcw_config_free(cfg);
    }
    {
        kcw_config_t *cfg = load_ok(
            "remediation:\n  inhibit:\n"
            "    - source_matchers: ['alertname=\"ConnectClusterUnreachable\"']\n"
            "      target_matchers: ['alertname=~\"ConnectTask.*\"']\n"
            "      equal: [cluster]\n");
        assert_int_equal(cfg->remediation.n_inhibit, 1);
        assert_int_equal(cfg->remediation.inhibit[0].source.n, 1);
        assert_string_equal(cfg->remediation.inhibit[0].target.items[0].value, "ConnectTask.*");
        assert_string_equal(cfg->remediation.inhibit[0].equal[0], "cluster");
        assert_int_equal(cfg->n_inhibit_rules, 0); /* notifications are not held */
        kcw_config_free(cfg);
    }
    expect_single_error("remediation:\n  inhibit:\n    - target_matchers: ['a=\"b\"']\n", 3, 7,
                        "remediation.inhibit[0]: missing required key \"source_matchers\"");
    expect_single_error("remediation:\n  inhibit: []\n", 2, 12,
                        "remediation.inhibit: at least one rule is required");
    expect_single_error("remediation:\n  inhibit:\n    - source_matchers: ['a=~\"(\"']\n"
                        "      target_matchers: ['b=\"c\"']\n",
                        3, 25, "remediation.inhibit[0].source_matchers[0]: bad matcher");
    expect_single_error("remediation:\n  storm:\n    min_fraction: 1.5\n", 3, 19,
                        "remediation.storm.min_fraction: must be between 0 and 1");
    expect_single_error("remediation:\n  storm:\n    window: 2h\n", 3, 13,
                        "remediation.storm.window: must be at most 1h");
    expect_single_error("remediation:\n  storm:\n    min_tasks: 0\n", 3, 16,
                        "remediation.storm.min_tasks: must be between 1");
    expect_single_error("remediation:\n  storm:\n    canary: yes\n", 3, 5, "canary");
    expect_single_error("remediation:\n  rate: 0\n", 2, 9,
                        "remediation.rate: must be between 0.1");
    expect_single_error("remediation:\n  heal_wait: 2h\n", 2, 14,
                        "remediation.heal_wait: must be at most 1h (0 sends at once)");
    expect_single_error("remediation:\n  heal_wait: soon\n", 2, 14,
                        "remediation.heal_wait: invalid duration \"soon\"");
    {
        kcw_config_t *cfg = load_ok("remediation:\n  heal_wait: 0s\n  verify_timeout: 1m\n");
        assert_int_equal(cfg->remediation.heal_wait_ms, 0);
        kcw_config_free(cfg);
        cfg = load_ok("remediation:\n  heal_wait: 45s\n");
        assert_int_equal(cfg->remediation.heal_wait_ms, 45 * SEC);
        kcw_config_free(cfg);
    }
    expect_single_error("remediation:\n  max_concurrent: 0\n", 2, 19,
                        "remediation.max_concurrent: must be between 1");
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_single_error("global:\n  evaluation_interval: 5\n", 2, 24,
                        "global.evaluation_interval: invalid duration \"5\"");
    expect_single_error("route:\n  group_interval: 1m1h\n", 2, 19,
                        "route.group_interval: invalid duration \"1m1h\"");
    expect_single_error("prometheus:\n  timeout: 0s\n", 2, 12,
                        "prometheus.timeout: must be greater than 0");
    expect_single_error("prometheus:\n  timeout: 999999999999y\n", 2, 12, "too large");
    expect_single_error("global:\n  audit_retention: 0s\n", 2, 20,
                        "global.audit_retention: must be greater than 0");
    expect_single_error("remediation:\n  backoff:\n    initial: 10m\n    max: 1m\n", 4, 10,
                        "initial (10m) is larger than max (1m)");
}

static void test_bad_regex(void **state)
{
    (void)state;
    expect_single_error("remediation:\n  exclude:\n    connector: \"a(b\"\n", 3, 16,
                        "remediation.exclude.connector: invalid regex a(b");
    expect_single_error("remediation:\n  unrecoverable_traces:\n    - ok\n    - \"[x\"\n", 4, 7,
                        "remediation.unrecoverable_traces[1]: invalid regex [x");
}

static void test_missing_password_file(void **state)
{
    fixture_t *f = *state;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "connect:\n"
             "  - name: a\n"
             "    urls: [http://a:8083]\n"
             "    basic_auth:\n"
             "      username: u\n"
             "      password_file: %s/absent\n",
             f->dir);
    char want[256];
    snprintf(want, sizeof(want),
             "connect[0].basic_auth.password_file: cannot read \"%s/absent\": No such file",
             f->dir);
    expect_single_error(yaml, 6, 22, want);

    /* A relative path is resolved and the resolved path is named. */
    char name[128];
    snprintf(name, sizeof(name), "%s/kcwatch.yaml", f->dir);
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_config_load_string("prometheus:\n"
                                            "  bearer_token_file: secrets/token\n",
                                            name, &cfg, &errs),
                     -EINVAL);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "cannot read \"%s/secrets/token\"", f->dir);
    expect_error_at(&errs, 2, 22, want);
    assert_string_equal(errs.items[0].file, name);
    kcw_errors_clear(&errs);

    /* A directory is not a secret. */
    snprintf(yaml, sizeof(yaml), "prometheus:\n  bearer_token_file: %s\n", f->dir);
    expect_single_error(yaml, 2, 22, "not a regular file");
}

static void test_unknown_receiver_in_route(void **state)
{
    (void)state;
    expect_single_error("receivers:\n"
                        "  - name: ops\n"
                        "    webhook: {url: http://h/}\n"
                        "route:\n"
                        "  group_wait: 10s\n"
                        "  receiver: opps\n",
                        6, 13, "route.receiver: unknown receiver \"opps\"");
    /* Without receivers only the built-in "log" exists. */
    expect_single_error("route: {receiver: ops}\n", 1, 19, "unknown receiver \"ops\"");
    kcw_config_t *cfg = load_ok("route: {receiver: log}\n");
    assert_string_equal(cfg->route.receiver, "log");
    kcw_config_free(cfg);
}

static void test_duplicate_names(void **state)
{
    (void)state;
    expect_single_error("connect:\n"
                        "  - name: prod\n"
                        "    urls: [http://a:8083]\n"
                        "  - name: prod\n"
                        "    urls: [http://b:8083]\n",
                        4, 11,
                        "connect[1].name: duplicate cluster name \"prod\" (first at line 2)");
    expect_single_error("receivers:\n"
                        "  - {name: r, log: {}}\n"
                        "  - {name: r, log: {}}\n",
                        3, 12, "duplicate receiver name \"r\"");
    expect_single_error("connect:\n  - name: \"a b\"\n    url: http://a:8083\n", 2, 11,
                        "connect[0].name: \"a b\" may only contain");
    expect_single_error("connect:\n  - url: http://a:8083\n", 2, 5,
                        "connect[0]: missing required key \"name\"");
}

static void test_bad_url(void **state)
{
    (void)state;
    expect_single_error("connect:\n"
                        "  - name: a\n"
                        "    urls: [http://a:8083, \"ftp://b\"]\n",
                        3, 27, "connect[0].urls[1]: invalid URL \"ftp://b\": scheme must be http");
    expect_single_error("connect:\n  - name: a\n    url: localhost:8083\n", 3, 10,
                        "connect[0].url: invalid URL \"localhost:8083\"");
    expect_single_error("prometheus:\n  url: \"http://bad host\"\n", 2, 8,
                        "prometheus.url: invalid URL");
    expect_single_error("receivers:\n  - name: w\n    webhook: {timeout: 5s}\n", 3, 14,
                        "receivers[0].webhook: missing required key \"url\"");
    expect_single_error("connect:\n  - name: a\n    urls: []\n", 3, 11,
                        "connect[0].urls: at least one URL is required");
    expect_single_error("connect:\n  - name: a\n", 2, 5, "missing required key \"urls\"");
    expect_single_error("connect:\n  - name: a\n    url: http://a\n    urls: [http://b]\n", 4, 5,
                        "\"url\" and \"urls\" are mutually exclusive");
    expect_single_error("global:\n  listen: 9464\n", 2, 11, "global.listen: expected host:port");
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    expect_single_error("global:\n  x: 1\n y: 2\n", 3, 2,
                        "YAML syntax error: did not find expected key");
    expect_single_error("global:\n  a: [1, 2\n  b: 3\n", 3, 4,
                        "YAML syntax error: did not find expected ',' or ']'");
    expect_single_error("global:\n\tlisten: x\n", 2, 1, "tabs cannot indent YAML");
    expect_single_error("global: {state_dir: \"\xff\"}\n", 1, 22, "invalid leading UTF-8");
    expect_single_error("a: 1\n---\nb: 2\n", 2, 1, "only one YAML document");
    expect_single_error("global: *nothing\n", 1, 9, "unknown alias \"*nothing\"");
}

static void test_notification_errors(void **state)
{
    (void)state;
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(load("route:\n"
                          "  receiver: s\n"
                          "  matchers: [a=b]\n"
                          "  continue: true\n"
                          "  routes:\n"
                          "    - {receiver: nope, matchers: ['a=~\"(\"']}\n"
                          "    - {receiver: s, group_wait: soon, continue: maybe}\n"
                          "silences:\n"
                          "  - matchers: ['a=~\".*\"']\n"
                          "    weekly: [{weekdays: [funday], start_time: '25:00', end_time: '01:00'}]\n"
                          "    ends_at: tomorrow\n"
                          "inhibit_rules:\n"
                          "  - {source_matchers: ['x=\"1\"'], equal: [bad-name]}\n"
                          "receivers:\n"
                          "  - name: s\n"
                          "    slack: {}\n"
                          "  - name: p\n"
                          "    pagerduty: {routing_key: k, dedup: sometimes, summary: '{{ $nope }}'}\n"
                          "  - name: a\n"
                          "    alertmanager: {urls: []}\n"
                          "    webhook: {url: http://x/}\n",
                          &cfg, &errs),
                     -EINVAL);
    expect_error_at(&errs, 3, 3, "route.matchers: the root route matches every alert");
    expect_error_at(&errs, 4, 3, "route.continue: the root route cannot continue");
    expect_error_at(&errs, 6, 18, "route.routes[0].receiver: unknown receiver \"nope\"");
    expect_error_at(&errs, 6, 35, "route.routes[0].matchers[0]: bad matcher");
    expect_error_at(&errs, 7, 33, "route.routes[1].group_wait: invalid duration");
    expect_error_at(&errs, 7, 49, "route.routes[1].continue: expected true or false");
    expect_error_at(&errs, 9, 15, "silences[0].matchers: would match every alert");
    expect_error_at(&errs, 10, 26, "silences[0].weekly[0].weekdays[0]: expected a weekday");
    expect_error_at(&errs, 10, 47, "silences[0].weekly[0].start_time: expected HH:MM");
    expect_error_at(&errs, 11, 14, "silences[0].ends_at: expected an RFC 3339 time");
    expect_error_at(&errs, 13, 5, "inhibit_rules[0]: missing required key \"target_matchers\"");
    expect_error_at(&errs, 13, 42, "inhibit_rules[0].equal[0]: invalid label name");
    expect_error_at(&errs, 16, 12, "receivers[0].slack: missing required key \"url\" (or url_file)");
    expect_error_at(&errs, 18, 40, "receivers[1].pagerduty.dedup: expected alert or group");
    expect_error_at(&errs, 18, 64, "undefined variable \"$nope\"");
    expect_error_at(&errs, 20, 26, "receivers[2].alertmanager.urls: at least one URL");
    expect_error_at(&errs, 21, 5, "receivers[2]: a receiver has exactly one kind");
    kcw_errors_clear(&errs);
}

static void test_notification_config(void **state)
{
    (void)state;
    kcw_config_t *cfg = load_ok(
        "receivers:\n"
        "  - name: am\n"
        "    alertmanager: {urls: [http://am1:9093, 'http://am2:9093/']}\n"
        "  - name: slack\n"
        "    slack:\n"
        "      url: https://hooks.slack.com/services/T0/B0/XYZSECRET\n"
        "      channel: '#connect'\n"
        "      text: '{{ $labels.connector }}: {{ $annotations.remediation }}'\n"
        "  - name: pd\n"
        "    pagerduty: {routing_key: R0UT1NGKEY, dedup: group, send_resolved: false}\n"
        "route:\n"
        "  receiver: am\n"
        "  group_by: [alertname, cluster, connector]\n"
        "  group_wait: 10s\n"
        "  routes:\n"
        "    - {matchers: ['severity=\"critical\"'], receiver: pd, continue: true}\n"
        "    - receiver: slack\n"
        "      repeat_interval: 1h\n"
        "      routes: [{matchers: ['{team=\"db\", env=~\"prod|stage\"}'], group_by: ['...']}]\n"
        "silences:\n"
        "  - matchers: ['cluster=\"c1\"']\n"
        "    starts_at: 2026-12-01T00:00:00Z\n"
        "    ends_at: 2026-12-02T00:00:00Z\n"
        "    comment: upgrade\n"
        "  - matchers: ['connector=~\"batch-.*\"']\n"
        "    weekly: [{weekdays: ['saturday:sunday'], start_time: '02:00', end_time: '04:00'}]\n"
        "inhibit_rules:\n"
        "  - source_matchers: ['alertname=\"ConnectClusterUnreachable\"']\n"
        "    target_matchers: ['alertname=~\"ConnectTask.*\"']\n"
        "    equal: [cluster]\n");
    assert_int_equal(cfg->n_receivers, 3);
    const kcw_receiver_conf_t *am = kcw_config_receiver(cfg, "am");
    assert_int_equal(am->kind, KCW_RECEIVER_ALERTMANAGER);
    assert_int_equal(am->n_urls, 2);
    assert_string_equal(am->urls[1], "http://am2:9093");
    const kcw_receiver_conf_t *sl = kcw_config_receiver(cfg, "slack");
    assert_int_equal(sl->kind, KCW_RECEIVER_SLACK);
    assert_string_equal(sl->url, "https://hooks.slack.com/services/T0/B0/XYZSECRET");
    assert_string_equal(sl->channel, "#connect");
    assert_non_null(sl->text);
    const kcw_receiver_conf_t *pd = kcw_config_receiver(cfg, "pd");
    assert_int_equal(pd->kind, KCW_RECEIVER_PAGERDUTY);
    assert_string_equal(pd->routing_key, "R0UT1NGKEY");
    assert_string_equal(pd->url, KCW_PAGERDUTY_DEFAULT_URL);
    assert_true(pd->per_group);
    assert_false(pd->send_resolved);

    const kcw_route_conf_t *rt = &cfg->route;
    assert_int_equal(rt->n_routes, 2);
    assert_int_equal(rt->group_wait_ms, 10000);
    assert_true(rt->routes[0].cont);
    assert_int_equal(rt->routes[0].matchers.n, 1);
    const kcw_route_conf_t *db = &rt->routes[1].routes[0];
    assert_int_equal(db->matchers.n, 2);
    assert_true(db->group_by_all);
    assert_string_equal(db->receiver, "slack");      /* inherited */
    assert_int_equal(db->repeat_interval_ms, 3600000); /* from its parent */
    assert_int_equal(db->group_wait_ms, 10000);        /* from the root */
    assert_int_equal(rt->routes[0].n_group_by, 3);

    assert_int_equal(cfg->n_silences, 2);
    assert_true(cfg->silences[0].from_config);
    assert_string_equal(cfg->silences[0].id, "config-1");
    assert_string_equal(cfg->silences[0].comment, "upgrade");
    assert_int_equal(cfg->silences[0].ends_at_ms - cfg->silences[0].starts_at_ms, 86400000);
    assert_int_equal(cfg->silences[1].n_windows, 1);
    assert_int_equal(cfg->silences[1].windows[0].weekdays, 0x41);
    assert_int_equal(cfg->silences[1].windows[0].start_min, 120);
    assert_int_equal(cfg->n_inhibit_rules, 1);
    assert_int_equal(cfg->inhibit_rules[0].n_equal, 1);
    kcw_config_free(cfg);
}

/* ---- all errors in one pass --------------------------------------------- */

static void test_many_errors_one_pass(void **state)
{
    (void)state;
    kcw_config_t *cfg = (kcw_config_t *)1;
    kcw_errors_t errs = {0};
    const char *yaml = "global:\n"                       /* 1 */
                       "  evaluation_interval: ten\n"    /* 2 */
                       "  bogus: 1\n"                    /* 3 */
                       "connect:\n"                      /* 4 */
                       "  - name: a\n"                   /* 5 */
                       "    urls: [\"gopher://x\"]\n"    /* 6 */
                       "    poll_interval: []\n"         /* 7 */
                       "  - name: a\n"                   /* 8 */
                       "    urls: [http://ok:8083]\n"    /* 9 */
                       "remediation:\n"                  /* 10 */
                       "  exclude: {connector: \"(\"}\n" /* 11 */
                       "  backoff: {jitter: 1.5}\n"      /* 12 */
                       "receivers:\n"                    /* 13 */
                       "  - name: r\n"                   /* 14 */
                       "route:\n"                        /* 15 */
                       "  receiver: missing\n";          /* 16 */
    assert_int_equal(load(yaml, &cfg, &errs), -EINVAL);
    assert_null(cfg);
    expect_error_at(&errs, 2, 24, "invalid duration \"ten\"");
    expect_error_at(&errs, 3, 3, "unknown key \"bogus\" in global");
    expect_error_at(&errs, 6, 12, "invalid URL \"gopher://x\"");
    expect_error_at(&errs, 7, 20, "connect[0].poll_interval: expected a duration, got sequence");
    expect_error_at(&errs, 8, 11, "duplicate cluster name \"a\"");
    expect_error_at(&errs, 11, 24, "invalid regex (");
    expect_error_at(&errs, 12, 21, "remediation.backoff.jitter: must be between 0 and 1");
    expect_error_at(&errs, 14, 5, "receivers[0]: needs a kind");
    expect_error_at(&errs, 16, 13, "unknown receiver \"missing\"");
    assert_int_equal(errs.n, 9);
    /* Reported in file order. */
    for (size_t i = 1; i < errs.n; i++)
        assert_true(errs.items[i - 1].line <= errs.items[i].line);
    /* And printed as FILE:LINE:COL: message. */
    char buf[512];
    kcw_error_format(&errs.items[0], buf, sizeof(buf));
    assert_string_equal(buf, "kcwatch.yaml:2:24: global.evaluation_interval: invalid duration "
                             "\"ten\" (expected e.g. 30s, 5m, 1h30m)");
    kcw_errors_clear(&errs);
}

/* ---- ${ENV} ------------------------------------------------------------- */

static void test_env_expansion(void **state)
{
    (void)state;
    setenv("KCW_T_PORT", "8099", 1);
    setenv("KCW_T_EMPTY", "", 1);
    setenv("KCW_T_LEVEL", "warn", 1);
    kcw_config_t *cfg = load_ok("global:\n"
                                "  listen: \"127.0.0.1:${KCW_T_PORT}\"\n"
                                "  state_dir: /costs$$/x${KCW_T_EMPTY}y\n"
                                "  log: {level: \"${KCW_T_LEVEL}\"}\n"
                                "remediation:\n"
                                "  exclude: {connector: \"^tmp-.*$\"}\n");
    assert_string_equal(cfg->listen, "127.0.0.1:8099");
    assert_string_equal(cfg->state_dir, "/costs$/xy");
    assert_int_equal(cfg->log_level, KCW_LOG_WARN);
    /* A lone $ is kept: regexes end in it. */
    assert_string_equal(cfg->remediation.exclude_connector, "^tmp-.*$");
    kcw_config_free(cfg);
    unsetenv("KCW_T_PORT");
    unsetenv("KCW_T_EMPTY");
    unsetenv("KCW_T_LEVEL");

    /* Keys are not expanded: "${X}" stays literal and is no label name. */
    expect_single_error("global:\n  external_labels: {\"${X}\": v}\n", 2, 21,
                        "invalid label name \"${X}\"");

    unsetenv("KCW_T_UNDEFINED");
    expect_single_error("prometheus:\n  url: http://${KCW_T_UNDEFINED}:9090\n", 2, 8,
                        "prometheus.url: environment variable \"KCW_T_UNDEFINED\" is not set");
    expect_single_error("global:\n  state_dir: \"/x/${OOPS\"\n", 2, 14, "unterminated \"${\"");
    expect_single_error("global:\n  state_dir: \"/x/${1BAD}\"\n", 2, 14,
                        "invalid environment variable name \"1BAD\"");

    /* Two undefined variables in two values: both reported. */
    kcw_config_t *bad = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(load("global:\n"
                          "  state_dir: ${KCW_T_UNDEFINED}\n"
                          "  listen: ${KCW_T_UNDEFINED2}\n",
                          &bad, &errs),
                     -EINVAL);
    assert_int_equal(errs.n, 2);
    expect_error_at(&errs, 2, 14, "KCW_T_UNDEFINED");
    expect_error_at(&errs, 3, 11, "KCW_T_UNDEFINED2");
    kcw_errors_clear(&errs);
}

/* ---- secrets ------------------------------------------------------------ */

static void test_secrets_registered_for_redaction(void **state)
{
    fixture_t *f = *state;
    kcw_log_reset();
    write_file(f->dir, "pw", "file-secret-1234\n");
    write_file(f->dir, "token", "token-secret-5678\n");
    setenv("KCW_T_PW", "env-secret-9012", 1);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "connect:\n"
             "  - name: a\n"
             "    url: http://a:8083\n"
             "    basic_auth: {username: u, password_file: %s/pw}\n"
             "  - name: b\n"
             "    url: http://b:8083\n"
             "    basic_auth: {username: u, password: \"${KCW_T_PW}\"}\n"
             "receivers:\n"
             "  - name: w\n"
             "    webhook: {url: http://h/, bearer_token_file: %s/token}\n",
             f->dir, f->dir);
    kcw_config_t *cfg = load_ok(yaml);
    assert_string_equal(cfg->clusters[0].basic_auth.password, "file-secret-1234");
    assert_string_equal(cfg->clusters[1].basic_auth.password, "env-secret-9012");
    assert_string_equal(cfg->receivers[0].bearer_token, "token-secret-5678");

    char logbuf[4096];
    memset(logbuf, 0, sizeof(logbuf));
    FILE *out = fmemopen(logbuf, sizeof(logbuf) - 1, "w");
    assert_non_null(out);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, out);
    kcw_log(KCW_LOG_INFO, "request", "auth", cfg->clusters[0].basic_auth.password, "header",
            "Bearer token-secret-5678", "url", "http://u:env-secret-9012@b:8083/", NULL);
    fclose(out);
    kcw_log_reset();
    assert_null(strstr(logbuf, "file-secret-1234"));
    assert_null(strstr(logbuf, "token-secret-5678"));
    assert_null(strstr(logbuf, "env-secret-9012"));
    assert_non_null(strstr(logbuf, "auth=<redacted>"));
    assert_non_null(strstr(logbuf, "Bearer <redacted>"));
    kcw_config_free(cfg);
    unsetenv("KCW_T_PW");

    /* Mutually exclusive ways of giving a secret. */
    expect_single_error("prometheus:\n"
                        "  basic_auth:\n"
                        "    username: u\n"
                        "    password: a\n"
                        "    password_file: b\n",
                        5, 5, "\"password\" and \"password_file\" are mutually exclusive");
    expect_single_error("prometheus:\n  basic_auth: {password: a}\n", 2, 15,
                        "prometheus.basic_auth: missing required key \"username\"");
    expect_single_error("prometheus:\n"
                        "  basic_auth: {username: u}\n"
                        "  bearer_token: t\n",
                        3, 3, "\"basic_auth\" and \"bearer_token\" are mutually exclusive");
    kcw_log_reset();
}

static void test_receiver_secrets(void **state)
{
    fixture_t *f = *state;
    kcw_log_reset();
    write_file(f->dir, "slack-url", "https://hooks.slack.com/services/T1/B1/FILESECRET\n");
    write_file(f->dir, "pd-key", "PDKEYFROMFILE0001\n");
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "receivers:\n"
             "  - name: s1\n"
             "    slack: {url: 'https://hooks.slack.com/services/T0/B0/INLINESECRET'}\n"
             "  - name: s2\n"
             "    slack: {url_file: %s/slack-url}\n"
             "  - name: p1\n"
             "    pagerduty: {routing_key: PDKEYINLINE0002}\n"
             "  - name: p2\n"
             "    pagerduty: {routing_key_file: %s/pd-key, url: 'http://127.0.0.1:1/v2/enqueue'}\n",
             f->dir, f->dir);
    kcw_config_t *cfg = load_ok(yaml);
    assert_string_equal(cfg->receivers[1].url, "https://hooks.slack.com/services/T1/B1/FILESECRET");
    assert_string_equal(cfg->receivers[3].routing_key, "PDKEYFROMFILE0001");
    char logbuf[4096];
    memset(logbuf, 0, sizeof(logbuf));
    FILE *out = fmemopen(logbuf, sizeof(logbuf) - 1, "w");
    assert_non_null(out);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, out);
    kcw_log(KCW_LOG_INFO, "delivery", "url", cfg->receivers[0].url, "path",
            "POST /services/T1/B1/FILESECRET", "key", "PDKEYINLINE0002", "body",
            "{\"routing_key\":\"PDKEYFROMFILE0001\"}", NULL);
    fclose(out);
    kcw_log_reset();
    assert_null(strstr(logbuf, "INLINESECRET"));
    assert_null(strstr(logbuf, "FILESECRET"));
    assert_null(strstr(logbuf, "PDKEY"));
    kcw_config_free(cfg);

    /* A bad secret URL is reported without its text. */
    kcw_errors_t errs = {0};
    assert_int_equal(load("receivers:\n"
                          "  - name: s\n"
                          "    slack: {url: 'ftp://hooks.example/services/T/B/LEAKME'}\n",
                          &cfg, &errs),
                     -EINVAL);
    expect_error_at(&errs, 3, 18, "receivers[0].slack.url: invalid URL (not shown");
    assert_null(strstr(errs.items[0].msg, "LEAKME"));
    kcw_errors_clear(&errs);
    kcw_log_reset();
}

static void test_tls_files(void **state)
{
    fixture_t *f = *state;
    write_file(f->dir, "cert.pem", "c");
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "prometheus:\n  tls:\n    cert_file: %s/cert.pem\n", f->dir);
    expect_single_error(yaml, 3, 5, "prometheus.tls: cert_file needs key_file");
    expect_single_error("prometheus:\n  tls: {ca_file: /nonexistent/ca.pem}\n", 2, 18,
                        "prometheus.tls.ca_file: cannot read \"/nonexistent/ca.pem\"");
    expect_single_error("prometheus:\n  tls: {insecure: maybe}\n", 2, 19, "expected true or false");
}

/* ---- other behaviour ---------------------------------------------------- */

static void test_lists_and_defaults(void **state)
{
    (void)state;
    kcw_config_t *cfg = load_ok("connect:\n"
                                "  - name: only\n"
                                "    url: http://w:8083///\n"
                                "remediation:\n"
                                "  unrecoverable_traces: []\n"
                                "rule_files: []\n"
                                "receivers:\n"
                                "  - name: first\n"
                                "    webhook: {url: \"https://h:8443/x\"}\n"
                                "  - name: second\n"
                                "    log:\n"
                                "global:\n"
                                "  listen: \":9500\"\n");
    assert_int_equal(cfg->n_clusters, 1);
    assert_string_equal(cfg->clusters[0].urls[0], "http://w:8083");
    assert_int_equal(cfg->remediation.n_unrecoverable_traces, 0); /* [] disables */
    assert_int_equal(cfg->n_rule_files, 0);
    assert_string_equal(cfg->route.receiver, "first"); /* absent: the first receiver */
    assert_true(cfg->receivers[0].send_resolved);
    assert_int_equal(cfg->receivers[0].timeout_ms, 10 * SEC);
    assert_int_equal(cfg->receivers[0].max_alerts, 0);
    assert_int_equal(cfg->receivers[1].kind, KCW_RECEIVER_LOG);
    assert_string_equal(cfg->external_url, "http://localhost:9500");
    kcw_config_free(cfg);

    /* connect: [] is a PromQL-only kcwatch; an absent connect: the default cluster. */
    cfg = load_ok("connect: []\n");
    assert_int_equal(cfg->n_clusters, 0);
    kcw_config_free(cfg);
    expect_single_error("receivers: []\n", 1, 12, "at least one receiver is required");
    expect_single_error("receivers:\n  - name: x\n    log: {}\n    webhook: {url: http://h}\n", 4,
                        5, "exactly one kind");
    expect_single_error("route:\n  group_by: [alertname, \"bad-label\"]\n", 2, 25,
                        "route.group_by[1]: invalid label name \"bad-label\"");
    cfg = load_ok("route:\n  group_by: [\"...\"]\nglobal:\n  external_url: http://kc.example/\n");
    assert_string_equal(cfg->route.group_by[0], "...");
    assert_string_equal(cfg->external_url, "http://kc.example");
    kcw_config_free(cfg);
}

static void test_aliases(void **state)
{
    (void)state;
    kcw_config_t *cfg = load_ok("connect:\n"
                                "  - name: a\n"
                                "    url: http://a:8083\n"
                                "    basic_auth: &auth {username: u, password: p}\n"
                                "    timeout: &t 4s\n"
                                "  - name: b\n"
                                "    url: http://b:8083\n"
                                "    basic_auth: *auth\n"
                                "    timeout: *t\n");
    assert_string_equal(cfg->clusters[1].basic_auth.username, "u");
    assert_string_equal(cfg->clusters[1].basic_auth.password, "p");
    assert_int_equal(cfg->clusters[1].timeout_ms, 4 * SEC);
    kcw_config_free(cfg);
    kcw_log_reset();

    /* An alias used before its anchor. */
    expect_single_error("prometheus:\n  timeout: *t\n  url: &t http://p:9090\n", 2, 12,
                        "unknown alias \"*t\"");
    /* A type error about an aliased mapping points at the alias. */
    expect_single_error("prometheus:\n  basic_auth: &m {username: u}\n  timeout: *m\n", 3, 12,
                        "prometheus.timeout: expected a duration, got mapping");
}

/* Aliases that multiply ("billion laughs") stop at the node limit with one
 * error instead of eating memory. */
static void test_alias_bomb(void **state)
{
    (void)state;
    expect_single_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
                        5, 36, "document too large: alias \"*d\"");
}

static void test_load_file(void **state)
{
    fixture_t *f = *state;
    write_file(f->dir, "pw", "pw\n");
    write_file(f->dir, "kcwatch.yaml",
               "connect:\n"
               "  - name: a\n"
               "    url: http://a:8083\n"
               "    basic_auth: {username: u, password_file: pw}\n"
               "rule_files: [rules.d/*.yaml]\n");
    char path[128], want[192];
    snprintf(path, sizeof(path), "%s/kcwatch.yaml", f->dir);
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_config_load(path, &cfg, &errs), 0);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->clusters[0].basic_auth.password, "pw");
    snprintf(want, sizeof(want), "%s/rules.d/*.yaml", f->dir);
    assert_string_equal(cfg->rule_files[0], want);
    kcw_config_free(cfg);

    write_file(f->dir, "bad.yaml", "global:\n  nope: 1\n");
    snprintf(path, sizeof(path), "%s/bad.yaml", f->dir);
    assert_int_equal(kcw_config_load(path, &cfg, &errs), -EINVAL);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0].file, path);
    assert_int_equal(errs.items[0].line, 2);
    assert_int_equal(errs.items[0].col, 3);
    kcw_errors_clear(&errs);

    snprintf(path, sizeof(path), "%s/absent.yaml", f->dir);
    assert_int_equal(kcw_config_load(path, &cfg, &errs), -ENOENT);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].msg, "No such file"));
    kcw_errors_clear(&errs);

    /* A FIFO as the config or as a password_file is refused at once: open()
     * must never wait for a writer. */
    char fifo[128];
    snprintf(fifo, sizeof(fifo), "%s/fifo", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(kcw_config_load(fifo, &cfg, &errs), -EINVAL);
    assert_non_null(strstr(errs.items[0].msg, "regular file"));
    kcw_errors_clear(&errs);
    write_file(f->dir, "fifo-secret.yaml",
               "connect:\n"
               "  - name: a\n"
               "    url: http://a:8083\n"
               "    basic_auth: {username: u, password_file: fifo}\n");
    snprintf(path, sizeof(path), "%s/fifo-secret.yaml", f->dir);
    assert_int_equal(kcw_config_load(path, &cfg, &errs), -EINVAL);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.items[0].msg, "not a regular file"));
    kcw_errors_clear(&errs);
    unlink(fifo);
}

static void test_default_traces(void **state)
{
    (void)state;
    const char *const *t = kcw_config_default_unrecoverable_traces();
    const char *fatal[] = {
        "org.apache.kafka.common.config.ConfigException: Missing required configuration "
        "\"connection.url\"",
        "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler\n"
        "\tat org.apache.kafka.connect.runtime.errors.RetryWithToleranceOperator...",
        "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed",
        "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized",
        "java.lang.NoClassDefFoundError: io/confluent/connect/avro/AvroConverter",
        "Caused by: org.apache.kafka.connect.errors.DataException: Converting byte[] failed",
    };
    const char *transient[] = {
        "org.apache.kafka.common.errors.TimeoutException: Timeout expired while fetching",
        "org.apache.kafka.connect.errors.RetriableException: connection reset",
        "java.sql.SQLTransientConnectionException: Connection is not available",
        "org.apache.kafka.common.errors.DisconnectException",
    };
    size_t n = 0;
    kcw_regex_t *re[32];
    for (; t[n]; n++) {
        assert_true(n < 32);
        char err[256];
        assert_int_equal(kcw_regex_compile(t[n], false, &re[n], err, sizeof(err)), 0);
    }
    assert_true(n >= 6);
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
        bool hit = false;
        for (size_t j = 0; j < n; j++)
            hit = hit || kcw_regex_match(re[j], fatal[i]);
        if (!hit)
            fail_msg("not recognised as unrecoverable: %s", fatal[i]);
    }
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        for (size_t j = 0; j < n; j++)
            if (kcw_regex_match(re[j], transient[i]))
                fail_msg("transient trace %s matched %s", transient[i], t[j]);
    for (size_t j = 0; j < n; j++)
        kcw_regex_free(re[j]);
}

/* Insane values are refused at their position (issue: 1ms intervals and a
 * budget of a million restarts per millisecond were accepted). */
static void test_sanity_bounds(void **state)
{
    (void)state;
    expect_single_error("global: {evaluation_interval: 1ms}\n", 1, 31,
                        "global.evaluation_interval: 1ms is below the minimum of 100ms");
    expect_single_error("connect:\n  - name: a\n    url: http://x:1\n    poll_interval: 99ms\n",
                        4, 20, "connect[0].poll_interval: 99ms is below the minimum of 100ms");
    expect_single_error("remediation:\n  budget: {max_restarts: 1001}\n", 2, 26,
                        "remediation.budget.max_restarts: must be between 1 and 1000");
    expect_single_error("remediation:\n  budget: {window: 59s}\n", 2, 20,
                        "remediation.budget.window: 59s is below the minimum of 1m");
    /* the bounds themselves pass */
    kcw_config_t *cfg = load_ok("global: {evaluation_interval: 100ms}\n"
                                "connect:\n  - name: a\n    url: http://x:1\n"
                                "    poll_interval: 100ms\n"
                                "remediation:\n  budget: {max_restarts: 1000, window: 1m}\n");
    assert_int_equal(cfg->evaluation_interval_ms, 100);
    assert_int_equal(cfg->clusters[0].poll_interval_ms, 100);
    assert_int_equal(cfg->remediation.budget_max_restarts, 1000);
    assert_int_equal(cfg->remediation.budget_window_ms, 60000);
    kcw_config_free(cfg);
}

/* admin: listen (global.listen is the older spelling, not both), the token,
 * basic auth and TLS. */
static void test_admin_config(void **state)
{
    (void)state;
    kcw_config_t *cfg = load_ok("admin:\n"
                                "  listen: 0.0.0.0:9500\n"
                                "  token: t0k3n-admin\n"
                                "  basic_auth: {username: ops, password: pw-admin}\n");
    assert_string_equal(cfg->listen, "0.0.0.0:9500");
    assert_string_equal(cfg->admin.token, "t0k3n-admin");
    assert_string_equal(cfg->admin.basic_auth.username, "ops");
    assert_string_equal(cfg->admin.basic_auth.password, "pw-admin");
    assert_null(cfg->admin.tls_cert_file);
    kcw_config_free(cfg);
    cfg = load_ok("global:\n  listen: 127.0.0.1:9600\n");
    assert_string_equal(cfg->listen, "127.0.0.1:9600");
    assert_null(cfg->admin.token);
    kcw_config_free(cfg);

    expect_single_error("global: {listen: '127.0.0.1:1'}\nadmin:\n  listen: 127.0.0.1:2\n", 3,
                        3, "admin.listen: global.listen (line 1) says the same; keep one of them");
    expect_single_error("admin:\n  listen: nope\n", 2, 11,
                        "admin.listen: expected host:port (e.g. 127.0.0.1:9464), got \"nope\"");
    expect_single_error("admin:\n  token: x\n  token_file: y\n", 3, 3,
                        "admin: \"token\" and \"token_file\" are mutually exclusive");
    expect_single_error("admin:\n  token: ''\n", 2, 10, "admin: the token is empty");
    expect_single_error("admin:\n  basic_auth: {username: u}\n", 2, 15,
                        "admin.basic_auth: password or password_file is required");
    expect_single_error("admin:\n  tokn_file: x\n", 2, 3,
                        "unknown key \"tokn_file\" in admin; did you mean \"token_file\"?");
    expect_single_error("admin:\n  xyz: x\n", 2, 3, "unknown key \"xyz\" in admin");
    expect_single_error("admin:\n  tls: {}\n", 2, 8,
                        "admin.tls: cert_file and key_file are both required");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_null_path),
        cmocka_unit_test(test_defaults_empty_documents),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test_setup_teardown(test_full_config, setup, teardown),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_regex),
        cmocka_unit_test_setup_teardown(test_missing_password_file, setup, teardown),
        cmocka_unit_test(test_unknown_receiver_in_route),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_notification_errors),
        cmocka_unit_test(test_notification_config),
        cmocka_unit_test(test_many_errors_one_pass),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test_setup_teardown(test_secrets_registered_for_redaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receiver_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_files, setup, teardown),
        cmocka_unit_test(test_lists_and_defaults),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test(test_default_traces),
        cmocka_unit_test(test_ha_config),
        cmocka_unit_test(test_admin_config),
        cmocka_unit_test(test_sanity_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
