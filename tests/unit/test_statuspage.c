/* test_statuspage.c: the status page rendered from a fixed state, its
 * escaping and paging, and the state collected from real module instances
 * (silences, an in-memory store's audit log, a remediator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/log.h"
#include "kcwatch/matchers.h"
#include "kcwatch/remediate.h"
#include "kcwatch/silence.h"
#include "kcwatch/statuspage.h"
#include "kcwatch/store.h"

#define SEC 1000LL
#define NOW 1796040000000LL /* 2026-11-30 12:00:00 UTC */

static const char *const SCRIPT_TRACE =
    "org.apache.kafka.connect.errors.ConnectException: <img src=x onerror=alert(1)>\n"
    "\tat org.example.Sink.put(Sink.java:42)\n"
    "Caused by: </pre></details><script>alert(2)</script>\n";

/* Every occurrence of needle in hay. */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* The text of <section id="id">...</section>. Caller frees. */
static char *section(const char *html, const char *id)
{
    char open[64];
    snprintf(open, sizeof(open), "<section id=\"%s\">", id);
    const char *s = strstr(html, open);
    assert_non_null(s);
    const char *e = strstr(s, "</section>");
    assert_non_null(e);
    return strndup(s, (size_t)(e - s));
}

typedef struct fixed {
    kcw_statuspage_t st;
    kcw_statuspage_cluster_t clusters[2];
    kcw_statuspage_problem_t problems[3];
    kcw_statuspage_alert_t alerts[1];
    kcw_labels_t labels, annotations;
    kcw_statuspage_event_t restarts[1], notifications[1];
    kcw_statuspage_hold_t holds[1];
    kcw_statuspage_budget_t budgets[1];
    kcw_statuspage_silence_t silences[1];
    kcw_statuspage_group_t groups[1];
} fixed_t;

/* A world with a bit of everything, one connector named <script>. */
static void fixed_init(fixed_t *f)
{
    memset(f, 0, sizeof(*f));
    kcw_statuspage_t *st = &f->st;
    st->now_ms = NOW;
    st->version = "0.1.0";
    st->config_path = "/etc/kcwatch/kcwatch.yaml";
    st->remediation_enabled = true;
    st->ready = true;
    st->reload_ok = true;
    st->reload_ok_ms = NOW - 3600 * SEC;
    st->page = st->alerts_page = 1;
    f->clusters[0] = (kcw_statuspage_cluster_t){.name = "prod",
                                                .state = "RUNNING",
                                                .version = "3.8.0",
                                                .worker_url = "http://w1:8083",
                                                .last_poll_ms = NOW - 2 * SEC,
                                                .n_connectors = 3,
                                                .n_tasks = 6,
                                                .n_not_running = 3};
    f->clusters[1] = (kcw_statuspage_cluster_t){.name = "dr",
                                                .state = "UNREACHABLE",
                                                .last_error = "connect to w9:8083: refused",
                                                .last_poll_ms = NOW - 95 * SEC};
    st->clusters.rows = f->clusters;
    st->clusters.n = st->clusters.total = 2;
    f->problems[0] = (kcw_statuspage_problem_t){.cluster = "prod",
                                                .connector = "<script>",
                                                .task = 0,
                                                .state = "FAILED",
                                                .type = "sink",
                                                .worker_id = "w1:8083",
                                                .trace = SCRIPT_TRACE};
    f->problems[1] = (kcw_statuspage_problem_t){
        .cluster = "prod", .connector = "orders", .task = 1, .state = "FAILED", .type = "sink",
        .trace = "org.apache.kafka.common.config.ConfigException: bad batch.size\n\tat x.y(Z:1)\n"};
    f->problems[2] = (kcw_statuspage_problem_t){
        .cluster = "prod", .connector = "audit", .task = -1, .state = "PAUSED", .type = "source"};
    st->problems.rows = f->problems;
    st->problems.n = st->problems.total = 3;
    assert_int_equal(kcw_labels_set(&f->labels, "alertname", "ConnectTaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&f->labels, "connector", "<script>"), 0);
    assert_int_equal(kcw_labels_set(&f->labels, "task", "0"), 0);
    assert_int_equal(kcw_labels_set(&f->annotations, "summary", "Task <script>/0 failed"), 0);
    assert_int_equal(kcw_labels_set(&f->annotations, "description", "\"quoted\" & 'single'"), 0);
    f->alerts[0] = (kcw_statuspage_alert_t){.alertname = "ConnectTaskFailed",
                                            .state = "firing",
                                            .active_at_ms = NOW - 5 * 60 * SEC,
                                            .labels = &f->labels,
                                            .annotations = &f->annotations,
                                            .remediation = "unfixable",
                                            .note = "not restarted: trace matches <b>"};
    st->alerts.rows = f->alerts;
    st->alerts.n = st->alerts.total = 1;
    st->n_firing = 1;
    st->audit_available = true;
    f->restarts[0] = (kcw_statuspage_event_t){
        .time_ms = NOW - 60 * SEC,
        .cluster = "prod",
        .connector = "payments",
        .task = 0,
        .what = "sent",
        .detail = "restart sent (attempt 1 of 5 in 1h)",
        .request = "POST http://w1:8083/connectors/payments/restart?includeTasks=true",
        .http_status = 202};
    st->restarts.rows = f->restarts;
    st->restarts.n = st->restarts.total = 1;
    f->notifications[0] = (kcw_statuspage_event_t){.time_ms = NOW - 30 * SEC,
                                                   .what = "sent",
                                                   .detail = "{}:{alertname=\"X\"}",
                                                   .request = "slack",
                                                   .http_status = 200};
    st->notifications.rows = f->notifications;
    st->notifications.n = st->notifications.total = 1;
    f->holds[0] = (kcw_statuspage_hold_t){.cluster = "prod",
                                          .connector = "orders",
                                          .task = 1,
                                          .kind = "unfixable",
                                          .reason = "not restarted: ConfigException"};
    st->holds.rows = f->holds;
    st->holds.n = st->holds.total = 1;
    f->budgets[0] = (kcw_statuspage_budget_t){.cluster = "prod",
                                              .connector = "flaky",
                                              .task = -1,
                                              .used = 5,
                                              .max = 5,
                                              .window_ms = 3600 * SEC,
                                              .room_at_ms = NOW + 600 * SEC};
    st->budgets.rows = f->budgets;
    st->budgets.n = st->budgets.total = 1;
    f->silences[0] = (kcw_statuspage_silence_t){.id = "0d5c",
                                                .matchers = "{cluster=\"dr\"}",
                                                .state = "active",
                                                .starts_at_ms = NOW - 60 * SEC,
                                                .ends_at_ms = NOW + 7200 * SEC,
                                                .created_by = "ops",
                                                .comment = "DR drill"};
    st->silences.rows = f->silences;
    st->silences.n = st->silences.total = 1;
    f->groups[0] = (kcw_statuspage_group_t){.name = "connect-status",
                                            .file = "rules.d/connect.yaml",
                                            .n_rules = 3,
                                            .n_ok = 3,
                                            .last_eval_ms = NOW - SEC,
                                            .eval_seconds = 0.002};
    st->groups.rows = f->groups;
    st->groups.n = st->groups.total = 1;
    st->outbox_length = 2;
    st->store_open = st->store_durable = true;
}

static void fixed_clear(fixed_t *f)
{
    kcw_labels_clear(&f->labels);
    kcw_labels_clear(&f->annotations);
}

static void test_render_fixed_state(void **state)
{
    (void)state;
    fixed_t f;
    fixed_init(&f);
    size_t len = 0;
    char *html = kcw_statuspage_render(&f.st, &len);
    assert_non_null(html);
    assert_int_equal(len, strlen(html));
    assert_int_equal(strncmp(html, "<!DOCTYPE html>", 15), 0);
    assert_non_null(strstr(html, "<link rel=\"stylesheet\" href=\"/static/kcwatch.css\">"));
    assert_null(strstr(html, "http-equiv=\"refresh\"")); /* off unless asked */
    assert_non_null(strstr(html, "<title>kcwatch: 1 firing, 3 not running</title>"));

    char *s = section(html, "clusters");
    assert_non_null(strstr(s, ">prod<"));
    assert_non_null(strstr(s, "3.8.0"));
    assert_non_null(strstr(s, "2026-11-30 11:59:58 UTC"));
    assert_non_null(strstr(s, "(2 s ago)"));
    assert_non_null(strstr(s, "b-UNREACHABLE\">UNREACHABLE<"));
    assert_non_null(strstr(s, "connect to w9:8083: refused"));
    assert_non_null(strstr(s, "(95 s ago)"));
    free(s);

    s = section(html, "broken");
    assert_non_null(strstr(s, "(3)"));
    assert_non_null(strstr(s, "orders</span> task 1"));
    assert_non_null(strstr(s, "audit</span></td><td><span class=\"badge b-PAUSED\">PAUSED<"));
    /* first trace line in the summary, the rest only inside the details */
    assert_non_null(strstr(s, "<summary>org.apache.kafka.common.config.ConfigException: bad "
                              "batch.size</summary><pre>"));
    assert_non_null(strstr(s, "\tat x.y(Z:1)\n</pre>"));
    free(s);

    s = section(html, "alerts");
    assert_non_null(strstr(s, "(1 firing, 0 pending)"));
    assert_non_null(strstr(s, "b-unfixable\">unfixable<"));
    assert_non_null(strstr(s, "(5 min ago)"));
    assert_non_null(strstr(s, "&quot;quoted&quot; &amp; &#39;single&#39;"));
    assert_null(strstr(s, ">alertname=")); /* the name is its own column */
    free(s);

    s = section(html, "restarts");
    assert_non_null(strstr(s, "payments</span> task 0"));
    assert_non_null(strstr(s, "restart sent (attempt 1 of 5 in 1h)"));
    assert_non_null(strstr(s, "includeTasks=true</code> \xE2\x86\x92 202"));
    free(s);

    s = section(html, "notifications");
    assert_non_null(strstr(s, ">slack<"));
    assert_non_null(strstr(s, "{}:{alertname=&quot;X&quot;}"));
    free(s);

    s = section(html, "held");
    assert_non_null(strstr(s, "orders</span> task 1"));
    assert_non_null(strstr(s, "b-unfixable\">unfixable<"));
    assert_non_null(strstr(s, "not restarted: ConfigException"));
    free(s);

    s = section(html, "budgets");
    assert_non_null(strstr(s, "5 of 5"));
    assert_non_null(strstr(s, "(in 10 min)"));
    free(s);

    s = section(html, "storms");
    assert_non_null(strstr(s, "<p class=\"none\">none.</p>"));
    free(s);

    s = section(html, "silences");
    assert_non_null(strstr(s, "{cluster=&quot;dr&quot;}"));
    assert_non_null(strstr(s, "DR drill"));
    assert_non_null(strstr(s, "(in 2 h)"));
    free(s);

    s = section(html, "self");
    assert_non_null(strstr(s, "/etc/kcwatch/kcwatch.yaml"));
    assert_non_null(strstr(s, "b-ok\">ok</span> loaded at start"));
    assert_non_null(strstr(s, "2 queued"));
    assert_non_null(strstr(s, ">connect-status<"));
    assert_non_null(strstr(s, "off (this instance acts for every cluster)"));
    free(s);

    /* The same state gives the same bytes. */
    char *again = kcw_statuspage_render(&f.st, NULL);
    assert_string_equal(html, again);
    free(again);
    free(html);

    /* A rejected reload: when, and which configuration runs. */
    f.st.reload_ok = false;
    f.st.reload_at_ms = NOW - 60 * SEC;
    html = kcw_statuspage_render(&f.st, NULL);
    assert_non_null(html);
    s = section(html, "self");
    assert_non_null(strstr(s, "b-failed\">failed</span> the reload of <span class=\"when\">"
                              "2026-11-30 11:59:00 UTC</span> <span class=\"age\">(60 s ago)"));
    assert_non_null(strstr(s, "running on the configuration loaded <span class=\"when\">"
                              "2026-11-30 11:00:00 UTC"));
    free(s);
    assert_non_null(strstr(html, "kcwatch needs attention"));
    free(html);
    fixed_clear(&f);
}

static void test_script_connector_renders_as_text(void **state)
{
    (void)state;
    fixed_t f;
    fixed_init(&f);
    char *html = kcw_statuspage_render(&f.st, NULL);
    assert_non_null(html);
    /* No markup from any string: no script, no img, no closing of the
     * details or pre the trace sits in. */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    assert_null(strstr(html, "<b>"));
    assert_int_equal(count(html, "</details>"), count(html, "<details"));
    assert_int_equal(count(html, "</pre>"), count(html, "<pre>"));
    assert_null(strstr(html, "style="));
    assert_null(strstr(html, "<style"));
    char *s = section(html, "broken");
    assert_non_null(strstr(s, "<span class=\"name\">&lt;script&gt;</span> task 0"));
    assert_non_null(strstr(s, "&lt;img src=x onerror=alert(1)&gt;"));
    assert_non_null(strstr(s, "&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
    free(s);
    s = section(html, "alerts");
    assert_non_null(strstr(s, "connector=&quot;&lt;script&gt;&quot;"));
    assert_non_null(strstr(s, "Task &lt;script&gt;/0 failed"));
    assert_non_null(strstr(s, "not restarted: trace matches &lt;b&gt;"));
    free(s);
    free(html);
    fixed_clear(&f);
}

static void check_escape(const char *in, size_t n, const char *want)
{
    char *got = kcw_statuspage_escape(in, n);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_escape(void **state)
{
    (void)state;
    check_escape("a&b<c>d\"e'f", 11, "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    check_escape("plain", 5, "plain");
    check_escape("", 0, "");
    check_escape(NULL, 0, "");
    /* tabs and newlines stay (traces); other controls and bad UTF-8 do not */
    check_escape("a\tb\nc\r", 6, "a\tb\nc\r");
    check_escape("\x1b[2J\x7f", 5, "\xEF\xBF\xBD[2J\xEF\xBF\xBD");
    check_escape("Zo\xc3\xab \xe2\x82\xac", 8, "Zo\xc3\xab \xe2\x82\xac");
    check_escape("bad \xff\xc3(", 7, "bad \xEF\xBF\xBD\xEF\xBF\xBD(");
    check_escape("\xc0\xaf", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"); /* overlong '/' */
    /* an embedded NUL ends nothing: it is a control byte */
    check_escape("a\0b", 3, "a\xEF\xBF\xBD" "b");
    /* n cuts inside a sequence: the partial one is replaced */
    check_escape("\xe2\x82\xac", 2, "\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void test_long_trace_is_cut(void **state)
{
    (void)state;
    fixed_t f;
    fixed_init(&f);
    size_t n = KCW_STATUSPAGE_TRACE_MAX * 3;
    char *trace = malloc(n + 1);
    assert_non_null(trace);
    memset(trace, 'x', n);
    memcpy(trace, "first line\n", 11);
    /* a 3-byte character straddling the cut: it is not split */
    memcpy(trace + KCW_STATUSPAGE_TRACE_MAX - 1, "\xe2\x82\xac", 3);
    trace[n] = '\0';
    f.problems[0].trace = trace;
    char *html = kcw_statuspage_render(&f.st, NULL);
    assert_non_null(html);
    char *s = section(html, "broken");
    char want[96];
    snprintf(want, sizeof(want), "\n\xE2\x80\xA6 (%zu more bytes not shown)</pre>",
             n - (KCW_STATUSPAGE_TRACE_MAX - 1));
    assert_non_null(strstr(s, want));
    assert_non_null(strstr(s, "<summary>first line</summary>"));
    assert_true(strlen(s) < KCW_STATUSPAGE_TRACE_MAX + 4096);
    free(s);
    free(html);
    free(trace);
    fixed_clear(&f);
}

static void test_paging_links(void **state)
{
    (void)state;
    fixed_t f;
    fixed_init(&f);
    f.st.page = 2;
    f.st.problems.offset = KCW_STATUSPAGE_PAGE_ROWS;
    f.st.problems.total = 1000;
    f.st.refresh_s = 30;
    char *html = kcw_statuspage_render(&f.st, NULL);
    assert_non_null(html);
    assert_non_null(strstr(html, "<meta http-equiv=\"refresh\" content=\"30\">"));
    assert_non_null(strstr(html, ">stop refreshing</a>"));
    char *s = section(html, "broken");
    assert_non_null(strstr(s, "(1000)"));
    assert_non_null(strstr(s, "Showing 201\xE2\x80\x93" "203 of 1000."));
    assert_non_null(strstr(s, "href=\"/?page=1&amp;alerts=1&amp;refresh=30#broken\">previous page"));
    assert_non_null(strstr(s, "href=\"/?page=3&amp;alerts=1&amp;refresh=30#broken\">next page</a> "
                              "(797 more)"));
    free(s);
    free(html);

    /* Past the end: the page says so and links back. */
    f.st.page = 9;
    f.st.problems.n = 0;
    f.st.problems.offset = 8 * KCW_STATUSPAGE_PAGE_ROWS;
    f.st.problems.total = 5;
    html = kcw_statuspage_render(&f.st, NULL);
    assert_non_null(html);
    assert_non_null(strstr(html, "No rows on this page (5 in all)."));
    assert_non_null(strstr(html, "/?page=8&amp;alerts=1&amp;refresh=30#broken\">previous page"));
    free(html);
    fixed_clear(&f);
}

static size_t two_storms(void *arg, kcw_statuspage_storm_t *out, size_t max)
{
    (void)arg;
    assert_true(max >= 2);
    out[0] = (kcw_statuspage_storm_t){.cluster = "prod",
                                      .key = "<sasl>",
                                      .n_failed = 40,
                                      .since_ms = NOW - 120 * SEC,
                                      .action = "canary restarted"};
    out[1] = (kcw_statuspage_storm_t){.cluster = "dr", .key = "timeout", .n_failed = 7};
    return 2;
}

/* --- collected from real modules ------------------------------------------------- */

static void test_collect_empty_sources(void **state)
{
    (void)state;
    kcw_statuspage_sources_t src = {0};
    kcw_statuspage_t st;
    assert_int_equal(kcw_statuspage_collect(&src, NOW, 0, 0, &st), 0);
    assert_int_equal(st.page, 1);
    assert_int_equal(st.clusters.total, 0);
    assert_false(st.audit_available);
    assert_false(st.storms_available);
    char *html = kcw_statuspage_render(&st, NULL);
    assert_non_null(html);
    assert_non_null(strstr(html, "No Connect cluster configured."));
    assert_non_null(strstr(html, "No state store: there is no audit log."));
    char *s = section(html, "storms");
    assert_non_null(strstr(s, "none."));
    free(s);
    free(html);
    kcw_statuspage_release(&st);
    kcw_statuspage_release(NULL);

    /* With a storm source, its rows. */
    src.storms = two_storms;
    assert_int_equal(kcw_statuspage_collect(&src, NOW, 1, 1, &st), 0);
    assert_true(st.storms_available);
    assert_int_equal(st.storms.n, 2);
    html = kcw_statuspage_render(&st, NULL);
    s = section(html, "storms");
    assert_non_null(strstr(s, "&lt;sasl&gt;"));
    assert_non_null(strstr(s, "canary restarted"));
    assert_non_null(strstr(s, ">40<"));
    free(s);
    free(html);
    kcw_statuspage_release(&st);
}

static void test_collect_audit_silences_holds(void **state)
{
    (void)state;
    FILE *log = fopen("/dev/null", "w");
    assert_non_null(log);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, log);
    kcw_store_t *store = kcw_store_open_memory();
    assert_non_null(store);
    /* 30 restarts and 3 notifications: the newest 20 restarts, newest first */
    for (int i = 0; i < 30; i++) {
        char outcome[64];
        snprintf(outcome, sizeof(outcome), "restart number %d", i);
        kcw_audit_t a = {.time_ms = NOW - (30 - i) * SEC,
                         .kind = KCW_AUDIT_RESTART,
                         .cluster = "prod",
                         .connector = "<script>",
                         .task = i % 3,
                         .reason = "sent",
                         .outcome = outcome,
                         .request = "POST http://w1/x"};
        assert_int_equal(kcw_store_audit_add(store, &a), 0);
    }
    for (int i = 0; i < 3; i++) {
        kcw_audit_t a = {.time_ms = NOW - (3 - i) * SEC,
                         .kind = KCW_AUDIT_NOTIFY,
                         .receiver = "pager",
                         .group_key = "{}:{}",
                         .status = i == 2 ? "failed" : "sent",
                         .http_status = i == 2 ? 500 : 202};
        assert_int_equal(kcw_store_audit_add(store, &a), 0);
    }

    kcw_silences_t *set = kcw_silences_new();
    assert_non_null(set);
    kcw_silence_t cfg[2];
    memset(cfg, 0, sizeof(cfg));
    char err[128];
    assert_int_equal(kcw_matchers_parse(&cfg[0].matchers, "cluster=\"dr\"", err, sizeof(err)), 0);
    assert_int_equal(kcw_matchers_parse(&cfg[1].matchers, "connector=~\"old-.*\"", err,
                                        sizeof(err)),
                     0);
    cfg[1].starts_at_ms = NOW - 7200 * SEC;
    cfg[1].ends_at_ms = NOW - 3600 * SEC; /* expired: not shown */
    assert_int_equal(kcw_silences_set_config(set, cfg, 2), 0);
    kcw_silence_clear(&cfg[0]);
    kcw_silence_clear(&cfg[1]);

    /* A remediator that is off: its decision holds the restart back. */
    kcw_remediation_conf_t conf = {.enabled = false,
                                   .backoff_initial_ms = 30 * SEC,
                                   .backoff_max_ms = 600 * SEC,
                                   .backoff_multiplier = 2,
                                   .budget_max_restarts = 5,
                                   .budget_window_ms = 3600 * SEC,
                                   .stable_period_ms = 600 * SEC,
                                   .verify_timeout_ms = 120 * SEC};
    kcw_remediator_t *rem = kcw_remediator_new(NULL, NULL, &conf, NULL, NULL);
    assert_non_null(rem);
    kcw_rule_t rule = {.alert = "ConnectTaskFailed"};
    rule.restart.enabled = true;
    rule.restart.scope = KCW_SCOPE_TASK;
    kcw_alert_t alert = {.state = KCW_ALERT_FIRING};
    assert_int_equal(kcw_labels_set(&alert.labels, "alertname", "ConnectTaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&alert.labels, "cluster", "prod"), 0);
    assert_int_equal(kcw_labels_set(&alert.labels, "connector", "orders"), 0);
    assert_int_equal(kcw_labels_set(&alert.labels, "task", "2"), 0);
    kcw_remediator_consider(rem, &rule, &alert, NOW - 10 * SEC);
    kcw_remediation_view_t v;
    assert_true(kcw_remediator_view(rem, &alert.labels, NOW, &v));
    assert_true(v.has_event);
    assert_int_equal(v.last_event, KCW_REMEDIATION_SKIPPED);
    assert_int_equal(v.task, 2);
    assert_int_equal(v.budget_max, 5);
    assert_int_equal(v.budget_used, 0);
    assert_false(v.exhausted);

    kcw_statuspage_sources_t src = {.store = store, .silences = set, .rem = rem};
    kcw_statuspage_t st;
    assert_int_equal(kcw_statuspage_collect(&src, NOW, 1, 1, &st), 0);
    assert_true(st.audit_available);
    assert_int_equal(st.restarts.n, KCW_STATUSPAGE_SHORT_ROWS);
    assert_true(st.restarts.total > st.restarts.n);
    assert_string_equal(st.restarts.rows[0].detail, "restart number 29");
    assert_string_equal(st.restarts.rows[19].detail, "restart number 10");
    assert_int_equal(st.notifications.n, 3);
    assert_string_equal(st.notifications.rows[0].what, "failed");
    assert_string_equal(st.notifications.rows[0].request, "pager");
    assert_int_equal(st.silences.total, 1);
    assert_string_equal(st.silences.rows[0].matchers, "{cluster=\"dr\"}");
    assert_true(st.silences.rows[0].from_config);
    assert_int_equal(st.holds.total, 1);
    assert_string_equal(st.holds.rows[0].kind, "skipped");
    assert_string_equal(st.holds.rows[0].connector, "orders");
    assert_int_equal(st.holds.rows[0].task, 2);
    assert_string_equal(st.holds.rows[0].reason, "not restarted: remediation is disabled");
    assert_int_equal(st.budgets.total, 0);

    char *html = kcw_statuspage_render(&st, NULL);
    assert_non_null(html);
    kcw_statuspage_release(&st);
    /* the audit strings were copied: the page renders after the store is gone */
    kcw_store_close(store);
    char *s = section(html, "restarts");
    assert_non_null(strstr(s, "restart number 29"));
    assert_null(strstr(s, "restart number 9<"));
    assert_non_null(strstr(s, "&lt;script&gt;"));
    assert_non_null(strstr(s, "Older entries: <code>kcwatch history</code>."));
    free(s);
    s = section(html, "held");
    assert_non_null(strstr(s, "orders</span> task 2"));
    assert_non_null(strstr(s, "remediation is disabled"));
    free(s);
    free(html);

    kcw_labels_clear(&alert.labels);
    kcw_remediator_free(rem);
    kcw_silences_free(set);
    kcw_log_reset();
    fclose(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_fixed_state),
        cmocka_unit_test(test_script_connector_renders_as_text),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_long_trace_is_cut),
        cmocka_unit_test(test_paging_links),
        cmocka_unit_test(test_collect_empty_sources),
        cmocka_unit_test(test_collect_audit_silences_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
