/* test_receivers.c: the Slack, PagerDuty and Alertmanager payload builders,
 * parsed back with jansson and checked field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/alertmanager.h"
#include "kcwatch/config.h"
#include "kcwatch/receiver.h"
#include "kcwatch/pagerduty.h"
#include "kcwatch/slack.h"
#include "payload_check.h"

/* 2024-01-02T03:04:05.678Z */
#define T0 1704164645678LL

static const char *TRACE = "org.apache.kafka.connect.errors.ConnectException: boom <init>\n"
                           "\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n\tat a.B.e(B.java:3)\n"
                           "\tat a.B.f(B.java:4)\n\tat a.B.g(B.java:5)\n\tat a.B.h(B.java:6)\n";

static void alert_init(kcw_alert_t *a, const char *alertname, const char *severity,
                       const char *task, bool resolved)
{
    memset(a, 0, sizeof(*a));
    kcw_labels_set(&a->labels, "alertname", alertname);
    kcw_labels_set(&a->labels, "cluster", "c1");
    kcw_labels_set(&a->labels, "connector", "orders-sink");
    if (task)
        kcw_labels_set(&a->labels, "task", task);
    kcw_labels_set(&a->labels, "worker_id", "10.0.0.7:8083");
    kcw_labels_set(&a->labels, "state", "FAILED");
    if (severity)
        kcw_labels_set(&a->labels, "severity", severity);
    kcw_labels_set(&a->annotations, "summary", "orders-sink task failed");
    kcw_labels_set(&a->annotations, "remediation", "restart sent, attempt 2 of 5 in 1h");
    a->trace = (char *)TRACE;
    a->fingerprint = kcw_labels_fingerprint(&a->labels);
    a->state = resolved ? KCW_ALERT_INACTIVE : KCW_ALERT_FIRING;
    a->active_at_ms = T0 - 60000;
    a->fired_at_ms = T0;
    a->resolved_at_ms = resolved ? T0 + 120000 : 0;
}

static void has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" not in:\n%s", needle, hay);
}

/* ------------------------------------------------------------ Slack */

static void test_slack_default_message(void **state)
{
    (void)state;
    kcw_alert_t firing, resolved;
    alert_init(&firing, "ConnectTaskFailed", "critical", "0", false);
    alert_init(&resolved, "ConnectTaskFailed", "critical", "1", true);
    kcw_labels_set(&resolved.annotations, "remediation",
                   "not restarted: unrecoverable (ConfigException)");
    kcw_labels_t group = {0};
    kcw_labels_set(&group, "alertname", "ConnectTaskFailed");
    kcw_labels_set(&group, "cluster", "c1");
    const kcw_alert_t *alerts[] = {&resolved, &firing};
    kcw_slack_opts_t o = {.channel = "#connect", .username = "kcwatch"};
    json_t *j = parse(kcw_slack_payload(&o, &group, alerts, 2));
    assert_string_equal(str(j, "channel"), "#connect");
    assert_string_equal(str(j, "username"), "kcwatch");
    assert_null(json_object_get(j, "icon_emoji"));
    const char *text = str(j, "text");
    has(text, "[FIRING:1] ConnectTaskFailed cluster=c1\n");
    has(text, "*ConnectTaskFailed* firing");
    has(text, "cluster `c1` · connector `orders-sink` · task `0` · worker `10.0.0.7:8083` · "
              "state `FAILED`");
    has(text, "orders-sink task failed");
    /* The first trace lines, escaped for Slack, and no more than five. */
    has(text, "```org.apache.kafka.connect.errors.ConnectException: boom &lt;init&gt;");
    has(text, "B.java:4)```");
    assert_null(strstr(text, "B.java:5"));
    has(text, "kcwatch: restart sent, attempt 2 of 5 in 1h");
    has(text, "kcwatch: not restarted: unrecoverable (ConfigException)");
    /* Firing first, then resolved. */
    assert_true(strstr(text, "* firing") < strstr(text, "* resolved"));
    json_decref(j);

    /* All resolved. */
    const kcw_alert_t *only[] = {&resolved};
    j = parse(kcw_slack_payload(&o, &group, only, 1));
    has(str(j, "text"), "[RESOLVED] ConnectTaskFailed");
    json_decref(j);
    alert_clear(&firing);
    alert_clear(&resolved);
    kcw_labels_clear(&group);
}

static void test_slack_template_and_bound(void **state)
{
    (void)state;
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    assert_int_equal(kcw_template_compile("{{ $labels.connector }}/{{ $labels.task }}: "
                                          "{{ $annotations.remediation }}",
                                          "kcwatch.yaml", 3, 5, &t, &errs),
                     0);
    kcw_alert_t a;
    alert_init(&a, "ConnectTaskFailed", NULL, "3", false);
    const kcw_alert_t *alerts[] = {&a};
    kcw_slack_opts_t o = {.text = t, .icon_emoji = ":rotating_light:"};
    json_t *j = parse(kcw_slack_payload(&o, NULL, alerts, 1));
    assert_string_equal(str(j, "text"), "[FIRING:1] ConnectTaskFailed\n\n"
                                        "orders-sink/3: restart sent, attempt 2 of 5 in 1h");
    assert_string_equal(str(j, "icon_emoji"), ":rotating_light:");
    assert_null(json_object_get(j, "channel"));
    json_decref(j);
    kcw_template_free(t);

    /* 2000 alerts: the text stays under the bound and counts the rest. */
    enum { N = 2000 };
    kcw_alert_t *many = calloc(N, sizeof(*many));
    const kcw_alert_t **ptrs = calloc(N, sizeof(*ptrs));
    for (int i = 0; i < N; i++) {
        char task[16];
        snprintf(task, sizeof(task), "%d", i);
        alert_init(&many[i], "ConnectTaskFailed", NULL, task, false);
        ptrs[i] = &many[i];
    }
    kcw_slack_opts_t plain = {0};
    j = parse(kcw_slack_payload(&plain, NULL, ptrs, N));
    const char *text = str(j, "text");
    assert_true(strlen(text) <= KCW_SLACK_TEXT_MAX + 64);
    has(text, "[FIRING:2000]");
    has(text, "more alerts");
    json_decref(j);
    for (int i = 0; i < N; i++)
        alert_clear(&many[i]);
    free(many);
    free(ptrs);
    alert_clear(&a);
}

/* ------------------------------------------------------------ PagerDuty */

static void test_pagerduty_severity(void **state)
{
    (void)state;
    assert_string_equal(kcw_pagerduty_severity("critical"), "critical");
    assert_string_equal(kcw_pagerduty_severity("CRITICAL"), "critical");
    assert_string_equal(kcw_pagerduty_severity("page"), "critical");
    assert_string_equal(kcw_pagerduty_severity("error"), "error");
    assert_string_equal(kcw_pagerduty_severity("warning"), "warning");
    assert_string_equal(kcw_pagerduty_severity("warn"), "warning");
    assert_string_equal(kcw_pagerduty_severity("info"), "info");
    assert_string_equal(kcw_pagerduty_severity("whatever"), "error");
    assert_string_equal(kcw_pagerduty_severity(NULL), "error");
}

static void test_pagerduty_per_alert(void **state)
{
    (void)state;
    kcw_alert_t firing, resolved;
    alert_init(&firing, "ConnectTaskFailed", "warning", "0", false);
    alert_init(&resolved, "ConnectTaskFailed", "warning", "0", true);
    const kcw_alert_t *alerts[] = {&firing};
    kcw_pagerduty_opts_t o = {.routing_key = "R0UT1NGKEY00000000000000000000000",
                              .external_url = "http://kcw:9464"};
    char **events;
    size_t n;
    assert_int_equal(kcw_pagerduty_events(&o, alerts, 1, &events, &n), 0);
    assert_int_equal(n, 1);
    json_t *ev = parse(events[0]);
    free(events);
    char want_key[64];
    snprintf(want_key, sizeof(want_key), "kcwatch-%016" PRIx64, firing.fingerprint);
    assert_string_equal(str(ev, "routing_key"), o.routing_key);
    assert_string_equal(str(ev, "event_action"), "trigger");
    assert_string_equal(str(ev, "dedup_key"), want_key);
    assert_string_equal(str(ev, "client"), "kcwatch");
    assert_string_equal(str(ev, "client_url"), "http://kcw:9464/api/v1/alerts");
    json_t *p = json_object_get(ev, "payload");
    assert_string_equal(str(p, "summary"), "ConnectTaskFailed: orders-sink task failed");
    assert_string_equal(str(p, "source"), "10.0.0.7:8083");
    assert_string_equal(str(p, "severity"), "warning");
    assert_string_equal(str(p, "timestamp"), "2024-01-02T03:04:05.678Z");
    assert_string_equal(str(p, "component"), "orders-sink task 0");
    assert_string_equal(str(p, "group"), "c1");
    assert_string_equal(str(p, "class"), "ConnectTaskFailed");
    json_t *d = json_object_get(p, "custom_details");
    assert_string_equal(str(d, "remediation"), "restart sent, attempt 2 of 5 in 1h");
    assert_string_equal(str(json_object_get(d, "labels"), "connector"), "orders-sink");
    has(str(d, "trace"), "ConnectException: boom");
    json_decref(ev);

    /* The resolve reuses the trigger's dedup_key and carries no payload. */
    const kcw_alert_t *res[] = {&resolved};
    assert_int_equal(kcw_pagerduty_events(&o, res, 1, &events, &n), 0);
    ev = parse(events[0]);
    free(events);
    assert_string_equal(str(ev, "event_action"), "resolve");
    assert_string_equal(str(ev, "dedup_key"), want_key);
    assert_null(json_object_get(ev, "payload"));
    assert_int_equal(json_object_size(ev), 3);
    json_decref(ev);
    alert_clear(&firing);
    alert_clear(&resolved);
}

static void test_pagerduty_limits_and_groups(void **state)
{
    (void)state;
    /* A 3000-character summary is cut to 1024 characters; a 900 KB trace is
     * dropped so the event stays under 512 KB. */
    kcw_alert_t a, b;
    alert_init(&a, "ConnectTaskFailed", "critical", "0", false);
    char *long_summary = malloc(3001);
    memset(long_summary, 'x', 3000);
    long_summary[3000] = '\0';
    kcw_labels_set(&a.annotations, "summary", long_summary);
    size_t big = 900 * 1024;
    char *trace = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        trace[i] = i % 80 == 79 ? '\n' : 'y';
    trace[big] = '\0';
    a.trace = trace;
    kcw_labels_set(&a.annotations, "description", trace); /* big annotation too */
    const kcw_alert_t *one[] = {&a};
    kcw_pagerduty_opts_t o = {.routing_key = "k"};
    char **events;
    size_t n;
    assert_int_equal(kcw_pagerduty_events(&o, one, 1, &events, &n), 0);
    assert_true(strlen(events[0]) < KCW_PAGERDUTY_EVENT_MAX);
    json_t *ev = parse(events[0]);
    free(events);
    const char *summary = str(json_object_get(ev, "payload"), "summary");
    /* 1024 characters: 1021 x's and one 3-byte ellipsis. */
    assert_int_equal(strlen(summary), 1024);
    has(summary, "xxx…");
    json_decref(ev);

    /* Per group: one event; trigger while anything fires, stable key. */
    alert_init(&b, "ConnectTaskFailed", "critical", "1", true);
    const kcw_alert_t *two[] = {&b, &a};
    kcw_labels_t group = {0};
    kcw_labels_set(&group, "cluster", "c1");
    kcw_pagerduty_opts_t g = {.routing_key = "k", .per_group = true,
                              .group_key = "{}/0:{cluster=\"c1\"}", .group_labels = &group};
    assert_int_equal(kcw_pagerduty_events(&g, two, 2, &events, &n), 0);
    assert_int_equal(n, 1);
    ev = parse(events[0]);
    free(events);
    assert_string_equal(str(ev, "event_action"), "trigger");
    char key[64];
    snprintf(key, sizeof(key), "%s", str(ev, "dedup_key"));
    has(key, "kcwatch-group-");
    json_t *d = json_object_get(json_object_get(ev, "payload"), "custom_details");
    assert_int_equal(json_integer_value(json_object_get(d, "num_firing")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "num_resolved")), 1);
    has(str(json_object_get(ev, "payload"), "summary"), "[FIRING:1] ConnectTaskFailed");
    json_decref(ev);
    a.state = KCW_ALERT_INACTIVE;
    a.resolved_at_ms = T0 + 1;
    assert_int_equal(kcw_pagerduty_events(&g, two, 2, &events, &n), 0);
    ev = parse(events[0]);
    free(events);
    assert_string_equal(str(ev, "event_action"), "resolve");
    assert_string_equal(str(ev, "dedup_key"), key);
    json_decref(ev);

    kcw_labels_clear(&group);
    free(long_summary);
    free(trace);
    alert_clear(&a);
    alert_clear(&b);
}

/* ------------------------------------------------------------ Alertmanager */

static void test_alertmanager_payload(void **state)
{
    (void)state;
    assert_int_equal(kcw_alertmanager_valid_for_ms(10000), 4 * KCW_ALERTMANAGER_RESEND_MS);
    assert_int_equal(kcw_alertmanager_valid_for_ms(120000), 480000);
    kcw_alert_t firing, resolved;
    alert_init(&firing, "ConnectTaskFailed", "critical", "0", false);
    alert_init(&resolved, "ConnectTaskFailed", "critical", "1", true);
    kcw_labels_t ext = {0};
    kcw_labels_set(&ext, "site", "eu1");
    kcw_labels_set(&ext, "cluster", "ignored"); /* the alert's own value wins */
    const kcw_alert_t *alerts[] = {&firing, &resolved};
    int64_t now = T0 + 30000;
    json_t *j = parse(kcw_alertmanager_payload(alerts, 2, now, 240000, &ext, "http://kcw:9464/"));
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    json_t *f = json_array_get(j, 0), *r = json_array_get(j, 1);
    assert_int_equal(json_object_size(f), 5);
    json_t *labels = json_object_get(f, "labels");
    assert_string_equal(str(labels, "site"), "eu1");
    assert_string_equal(str(labels, "cluster"), "c1");
    assert_string_equal(str(labels, "alertname"), "ConnectTaskFailed");
    assert_string_equal(str(json_object_get(f, "annotations"), "summary"),
                        "orders-sink task failed");
    assert_string_equal(str(f, "startsAt"), "2024-01-02T03:04:05.678Z");
    /* Firing: endsAt ahead of now by valid_for. */
    assert_string_equal(str(f, "endsAt"), "2024-01-02T03:08:35.678Z");
    assert_string_equal(str(f, "generatorURL"), "http://kcw:9464/api/v1/alerts");
    /* Resolved: endsAt is when it resolved. */
    assert_string_equal(str(r, "endsAt"), "2024-01-02T03:06:05.678Z");
    json_decref(j);
    kcw_labels_clear(&ext);
    alert_clear(&firing);
    alert_clear(&resolved);
}

/* ------------------------------------------------------------ per kind */

static void test_receiver_requests(void **state)
{
    (void)state;
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = kcw_config_load_string(
        "receivers:\n"
        "  - {name: am, alertmanager: {urls: ['http://am1:9093', 'http://am2:9093/'],"
        " resend_interval: 30s}}\n"
        "  - {name: slack, slack: {url: 'https://hooks.example/services/T/B/X'}}\n"
        "  - {name: pd, pagerduty: {routing_key: k, send_resolved: false}}\n"
        "  - {name: hook, webhook: {url: 'http://h/x'}}\n"
        "  - {name: log, log: {}}\n",
        "kcwatch.yaml", &cfg, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    const kcw_receiver_conf_t *am = kcw_config_receiver(cfg, "am");
    const kcw_receiver_conf_t *slack = kcw_config_receiver(cfg, "slack");
    const kcw_receiver_conf_t *pd = kcw_config_receiver(cfg, "pd");
    const kcw_receiver_conf_t *hook = kcw_config_receiver(cfg, "hook");
    const kcw_receiver_conf_t *log = kcw_config_receiver(cfg, "log");

    kcw_alert_t firing, resolved;
    alert_init(&firing, "ConnectTaskFailed", "critical", "0", false);
    alert_init(&resolved, "ConnectTaskFailed", "critical", "1", true);
    assert_true(kcw_receiver_wants(pd, &firing));
    assert_false(kcw_receiver_wants(pd, &resolved));
    assert_true(kcw_receiver_wants(am, &resolved));
    assert_true(kcw_receiver_wants(slack, &resolved));
    assert_int_equal(kcw_receiver_repeat_ms(am, 3600000), 30000);
    assert_int_equal(kcw_receiver_repeat_ms(slack, 3600000), 3600000);
    assert_int_equal(kcw_receiver_interval_ms(am, 300000), 30000);
    assert_int_equal(kcw_receiver_interval_ms(am, 10000), 10000);
    assert_int_equal(kcw_receiver_interval_ms(slack, 300000), 300000);

    const kcw_alert_t *alerts[] = {&firing, &resolved};
    kcw_notification_t nt = {.receiver = "x", .group_key = "{}:{}", .alerts = alerts,
                             .n_alerts = 2, .now_ms = T0, .cfg = cfg};
    kcw_outgoing_t *out;
    size_t n;
    /* Every Alertmanager URL gets the same alerts. */
    assert_int_equal(kcw_receiver_build(am, &nt, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].target, 0);
    assert_int_equal(out[1].target, 1);
    assert_string_equal(out[0].body, out[1].body);
    assert_true(out[0].firing);
    char *url = kcw_receiver_target_url(am, 1);
    assert_string_equal(url, "http://am2:9093/api/v2/alerts");
    free(url);
    assert_null(kcw_receiver_target_url(am, 2));
    assert_int_equal(kcw_receiver_targets(am), 2);
    kcw_outgoing_free(out, n);
    /* PagerDuty: one event per alert. */
    assert_int_equal(kcw_receiver_build(pd, &nt, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_true(out[0].firing);
    assert_false(out[1].firing); /* the resolve */
    kcw_outgoing_free(out, n);
    assert_int_equal(kcw_receiver_build(slack, &nt, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out[0].body, "\"text\""));
    kcw_outgoing_free(out, n);
    assert_int_equal(kcw_receiver_build(hook, &nt, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out[0].body, "\"version\":\"4\""));
    kcw_outgoing_free(out, n);
    assert_int_equal(kcw_receiver_build(log, &nt, &out, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kcw_receiver_targets(log), 0);

    assert_int_equal(kcw_receiver_verdict(pd, 202), KCW_RECEIVER_ACCEPTED);
    assert_int_equal(kcw_receiver_verdict(pd, 429), KCW_RECEIVER_RETRY);
    assert_int_equal(kcw_receiver_verdict(pd, 503), KCW_RECEIVER_RETRY);
    assert_int_equal(kcw_receiver_verdict(pd, 0), KCW_RECEIVER_RETRY);
    assert_int_equal(kcw_receiver_verdict(pd, 400), KCW_RECEIVER_CONFIG_ERROR);
    assert_int_equal(kcw_receiver_verdict(slack, 404), KCW_RECEIVER_CONFIG_ERROR);
    assert_int_equal(kcw_receiver_verdict(hook, 404), KCW_RECEIVER_REJECTED);
    assert_int_equal(kcw_receiver_verdict(am, 400), KCW_RECEIVER_REJECTED);

    alert_clear(&firing);
    alert_clear(&resolved);
    kcw_config_free(cfg);
}

/* global.external_labels reach every receiver's alerts, as Prometheus adds
 * them to what it sends; an alert's own label of that name wins. */
static void test_external_labels_everywhere(void **state)
{
    (void)state;
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = kcw_config_load_string(
        "global: {external_labels: {site: eu1, cluster: ext}}\n"
        "receivers:\n"
        "  - {name: am, alertmanager: {urls: ['http://am1:9093']}}\n"
        "  - {name: slack, slack: {url: 'https://hooks.example/services/T/B/X',"
        " text: 'at {{ $labels.site }}/{{ $labels.cluster }}'}}\n"
        "  - {name: pd, pagerduty: {routing_key: k}}\n"
        "  - {name: hook, webhook: {url: 'http://h/x'}}\n",
        "kcwatch.yaml", &cfg, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    kcw_alert_t firing;
    alert_init(&firing, "ConnectTaskFailed", "critical", "0", false);
    const kcw_alert_t *alerts[] = {&firing};
    kcw_notification_t nt = {.receiver = "x", .group_key = "{}:{}", .alerts = alerts,
                             .n_alerts = 1, .now_ms = T0, .cfg = cfg};
    static const char *const names[] = {"am", "slack", "pd", "hook"};
    static const char *const want[] = {"\"site\":\"eu1\"", "at eu1/c1", "eu1",
                                       "\"site\":\"eu1\""};
    for (size_t i = 0; i < 4; i++) {
        kcw_outgoing_t *out;
        size_t n;
        assert_int_equal(kcw_receiver_build(kcw_config_receiver(cfg, names[i]), &nt, &out, &n), 0);
        assert_true(n >= 1);
        if (!strstr(out[0].body, want[i]))
            fail_msg("%s payload lacks %s: %s", names[i], want[i], out[0].body);
        /* the alert's own cluster=c1 wins over the external cluster=ext */
        assert_null(strstr(out[0].body, "\"cluster\":\"ext\""));
        kcw_outgoing_free(out, n);
    }
    assert_null(kcw_labels_get(&firing.labels, "site")); /* the alert itself is unchanged */
    kcw_labels_clear(&firing.labels);
    kcw_labels_clear(&firing.annotations);
    kcw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slack_default_message),
        cmocka_unit_test(test_slack_template_and_bound),
        cmocka_unit_test(test_pagerduty_severity),
        cmocka_unit_test(test_pagerduty_per_alert),
        cmocka_unit_test(test_pagerduty_limits_and_groups),
        cmocka_unit_test(test_alertmanager_payload),
        cmocka_unit_test(test_receiver_requests),
        cmocka_unit_test(test_external_labels_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
