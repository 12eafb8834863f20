/* test_webhook.c: the Alertmanager webhook payload (version 4), parsed back
 * with jansson and checked field by field. */
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

#include "kcwatch/webhook.h"
#include "payload_check.h"

/* 2024-01-02T03:04:05.678Z */
#define T0 1704164645678LL

static void alert_init(kcw_alert_t *a, const char *alertname, const char *connector,
                       kcw_alert_state_t state, int64_t fired_at, int64_t resolved_at)
{
    memset(a, 0, sizeof(*a));
    assert_int_equal(kcw_labels_set(&a->labels, "alertname", alertname), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "cluster", "c1"), 0);
    if (connector)
        assert_int_equal(kcw_labels_set(&a->labels, "connector", connector), 0);
    assert_int_equal(kcw_labels_set(&a->annotations, "summary", "something broke"), 0);
    a->fingerprint = kcw_labels_fingerprint(&a->labels);
    a->state = state;
    a->active_at_ms = fired_at - 60000;
    a->fired_at_ms = fired_at;
    a->resolved_at_ms = resolved_at;
}

static void assert_keys(const json_t *o, const char *const *keys)
{
    size_t n = 0;
    for (; keys[n]; n++)
        if (!json_object_get(o, keys[n]))
            fail_msg("missing key %s", keys[n]);
    assert_int_equal(json_object_size(o), n);
    /* Alertmanager's order, for consumers that compare text. */
    size_t i = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        (void)v;
        assert_string_equal(k, keys[i]);
        i++;
    }
}

static void test_fields_firing(void **state)
{
    (void)state;
    kcw_alert_t a, b;
    alert_init(&a, "ConnectorFailed", "orders", KCW_ALERT_FIRING, T0, 0);
    alert_init(&b, "ConnectorFailed", "billing", KCW_ALERT_INACTIVE, T0 - 1000, T0 + 5000);
    const kcw_alert_t *alerts[] = {&b, &a};
    kcw_labels_t group = {0};
    assert_int_equal(kcw_labels_set(&group, "alertname", "ConnectorFailed"), 0);

    json_t *j = parse(kcw_webhook_payload("ops", "{}:{alertname=\"ConnectorFailed\"}", &group,
                                          alerts, 2, "http://kcw:9464", NULL, 0));
    static const char *const top[] = {"receiver",
                                      "status",
                                      "alerts",
                                      "groupLabels",
                                      "commonLabels",
                                      "commonAnnotations",
                                      "externalURL",
                                      "version",
                                      "groupKey",
                                      "truncatedAlerts",
                                      NULL};
    assert_keys(j, top);
    assert_string_equal(str(j, "receiver"), "ops");
    assert_string_equal(str(j, "status"), "firing");
    assert_string_equal(str(j, "version"), "4");
    assert_string_equal(str(j, "externalURL"), "http://kcw:9464");
    assert_string_equal(str(j, "groupKey"), "{}:{alertname=\"ConnectorFailed\"}");
    assert_true(json_is_integer(json_object_get(j, "truncatedAlerts")));
    assert_int_equal(json_integer_value(json_object_get(j, "truncatedAlerts")), 0);
    json_t *gl = json_object_get(j, "groupLabels");
    assert_int_equal(json_object_size(gl), 1);
    assert_string_equal(str(gl, "alertname"), "ConnectorFailed");

    json_t *list = json_object_get(j, "alerts");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 2);
    static const char *const fields[] = {"status", "labels",       "annotations", "startsAt",
                                         "endsAt", "generatorURL", "fingerprint", NULL};
    /* Firing first, whatever the input order. */
    json_t *f = json_array_get(list, 0), *r = json_array_get(list, 1);
    assert_keys(f, fields);
    assert_keys(r, fields);
    assert_string_equal(str(f, "status"), "firing");
    assert_string_equal(str(json_object_get(f, "labels"), "connector"), "orders");
    assert_int_equal(json_object_size(json_object_get(f, "labels")), 3);
    assert_string_equal(str(json_object_get(f, "annotations"), "summary"), "something broke");
    assert_string_equal(str(f, "startsAt"), "2024-01-02T03:04:05.678Z");
    assert_string_equal(str(f, "endsAt"), "0001-01-01T00:00:00Z");
    assert_string_equal(str(f, "generatorURL"), "http://kcw:9464/api/v1/alerts");
    char fp[17];
    snprintf(fp, sizeof(fp), "%016" PRIx64, kcw_labels_fingerprint(&a.labels));
    assert_string_equal(str(f, "fingerprint"), fp);

    assert_string_equal(str(r, "status"), "resolved");
    assert_string_equal(str(json_object_get(r, "labels"), "connector"), "billing");
    assert_string_equal(str(r, "startsAt"), "2024-01-02T03:04:04.678Z");
    assert_string_equal(str(r, "endsAt"), "2024-01-02T03:04:10.678Z");

    json_decref(j);
    kcw_labels_clear(&group);
    alert_clear(&a);
    alert_clear(&b);
}

static void test_resolved_status_and_common(void **state)
{
    (void)state;
    kcw_alert_t a, b;
    alert_init(&a, "TaskFailed", "orders", KCW_ALERT_INACTIVE, T0, T0 + 1);
    alert_init(&b, "TaskFailed", "billing", KCW_ALERT_INACTIVE, T0, T0 + 2);
    assert_int_equal(kcw_labels_set(&a.annotations, "description", "orders down"), 0);
    assert_int_equal(kcw_labels_set(&b.annotations, "description", "billing down"), 0);
    const kcw_alert_t *alerts[] = {&a, &b};
    json_t *j = parse(kcw_webhook_payload("ops", "{}:{}", NULL, alerts, 2, NULL, NULL, 0));
    assert_string_equal(str(j, "status"), "resolved");
    assert_string_equal(str(j, "externalURL"), "");
    assert_int_equal(json_object_size(json_object_get(j, "groupLabels")), 0);

    json_t *cl = json_object_get(j, "commonLabels");
    assert_int_equal(json_object_size(cl), 2);
    assert_string_equal(str(cl, "alertname"), "TaskFailed");
    assert_string_equal(str(cl, "cluster"), "c1");
    assert_null(json_object_get(cl, "connector"));
    json_t *ca = json_object_get(j, "commonAnnotations");
    assert_int_equal(json_object_size(ca), 1);
    assert_string_equal(str(ca, "summary"), "something broke");
    json_decref(j);
    alert_clear(&a);
    alert_clear(&b);
}

static void test_order_and_truncation(void **state)
{
    (void)state;
    kcw_alert_t al[5];
    alert_init(&al[0], "X", "r1", KCW_ALERT_INACTIVE, T0 - 9000, T0); /* resolved: last */
    alert_init(&al[1], "X", "f3", KCW_ALERT_FIRING, T0 + 3000, 0);
    alert_init(&al[2], "X", "f1", KCW_ALERT_FIRING, T0 + 1000, 0);
    alert_init(&al[3], "X", "f2b", KCW_ALERT_FIRING, T0 + 2000, 0);
    alert_init(&al[4], "X", "f2a", KCW_ALERT_FIRING, T0 + 2000, 0);
    /* Same startsAt: fingerprint decides. */
    al[3].fingerprint = 0x20;
    al[4].fingerprint = 0x10;
    const kcw_alert_t *alerts[] = {&al[0], &al[1], &al[2], &al[3], &al[4]};

    json_t *j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 5, "http://x/", NULL, 0));
    json_t *list = json_object_get(j, "alerts");
    static const char *const order[] = {"f1", "f2a", "f2b", "f3", "r1"};
    assert_int_equal(json_array_size(list), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(str(json_object_get(json_array_get(list, i), "labels"), "connector"),
                            order[i]);
    /* Fingerprints are 16 hex digits, zero padded. */
    assert_string_equal(str(json_array_get(list, 1), "fingerprint"), "0000000000000010");
    assert_string_equal(str(json_array_get(list, 0), "generatorURL"), "http://x/api/v1/alerts");
    json_decref(j);

    j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 5, "http://x", NULL, 2));
    list = json_object_get(j, "alerts");
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "truncatedAlerts")), 3);
    assert_string_equal(str(json_object_get(json_array_get(list, 0), "labels"), "connector"), "f1");
    assert_string_equal(str(json_object_get(json_array_get(list, 1), "labels"), "connector"),
                        "f2a");
    json_decref(j);

    /* Truncating away every firing alert is impossible: firing sorts first. */
    j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 5, "http://x", NULL, 1));
    assert_string_equal(str(j, "status"), "firing");
    assert_int_equal(json_integer_value(json_object_get(j, "truncatedAlerts")), 4);
    json_decref(j);

    /* More room than alerts: nothing truncated. */
    j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 5, "http://x", NULL, 10));
    assert_int_equal(json_array_size(json_object_get(j, "alerts")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "truncatedAlerts")), 0);
    json_decref(j);
    for (size_t i = 0; i < 5; i++)
        alert_clear(&al[i]);
}

static void test_starts_at_falls_back_to_active_at(void **state)
{
    (void)state;
    kcw_alert_t a;
    alert_init(&a, "X", "c", KCW_ALERT_FIRING, T0, 0);
    a.fired_at_ms = 0;
    a.active_at_ms = T0;
    a.fingerprint = 0; /* computed from the labels then */
    const kcw_alert_t *alerts[] = {&a};
    json_t *j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 1, "", NULL, 0));
    json_t *f = json_array_get(json_object_get(j, "alerts"), 0);
    assert_string_equal(str(f, "startsAt"), "2024-01-02T03:04:05.678Z");
    char fp[17];
    snprintf(fp, sizeof(fp), "%016" PRIx64, kcw_labels_fingerprint(&a.labels));
    assert_string_equal(str(f, "fingerprint"), fp);
    /* A single alert's labels are all common. */
    assert_int_equal(json_object_size(json_object_get(j, "commonLabels")), 3);
    json_decref(j);
    alert_clear(&a);
}

/* 64 KiB annotations on any number of alerts: the payload stays within
 * KCW_WEBHOOK_MAX_BYTES, and truncatedAlerts counts what was left out, as
 * Alertmanager reports max_alerts truncation. */
static void test_payload_size_bounded(void **state)
{
    (void)state;
    enum { N = 100 };
    static kcw_alert_t storage[N];
    const kcw_alert_t *alerts[N];
    char *big = malloc(64 * 1024 + 1);
    assert_non_null(big);
    memset(big, 'x', 64 * 1024);
    big[64 * 1024] = '\0';
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "c%03d", i);
        alert_init(&storage[i], "Big", name, KCW_ALERT_FIRING, T0 + i, 0);
        assert_int_equal(kcw_labels_set(&storage[i].annotations, "description", big), 0);
        alerts[i] = &storage[i];
    }
    char *text = kcw_webhook_payload("ops", "k", NULL, alerts, N, "http://x", NULL, 0);
    assert_non_null(text);
    size_t len = strlen(text);
    assert_true(len <= KCW_WEBHOOK_MAX_BYTES);
    json_t *j = parse(text);
    size_t sent = json_array_size(json_object_get(j, "alerts"));
    assert_true(sent >= 1 && sent < N);
    assert_int_equal(json_integer_value(json_object_get(j, "truncatedAlerts")), N - sent);
    /* The earliest alerts are kept (the order max_alerts truncation keeps). */
    assert_string_equal(
        str(json_object_get(json_array_get(json_object_get(j, "alerts"), 0), "labels"),
            "connector"),
        "c000");
    json_decref(j);
    for (int i = 0; i < N; i++)
        alert_clear(&storage[i]);
    free(big);
}

static void test_empty_and_bad_utf8(void **state)
{
    (void)state;
    json_t *j = parse(kcw_webhook_payload("ops", "k", NULL, NULL, 0, "http://x", NULL, 0));
    assert_string_equal(str(j, "status"), "resolved");
    assert_int_equal(json_array_size(json_object_get(j, "alerts")), 0);
    assert_int_equal(json_object_size(json_object_get(j, "commonLabels")), 0);
    json_decref(j);

    /* A trace of unknown encoding must not cost the whole notification. */
    kcw_alert_t a;
    alert_init(&a, "X", "c", KCW_ALERT_FIRING, T0, 0);
    assert_int_equal(kcw_labels_set(&a.annotations, "trace", "caf\xe9 \"q\"\n"), 0);
    const kcw_alert_t *alerts[] = {&a};
    j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 1, "http://x", NULL, 0));
    json_t *ann = json_object_get(json_array_get(json_object_get(j, "alerts"), 0), "annotations");
    assert_string_equal(str(ann, "trace"), "caf\xef\xbf\xbd \"q\"\n");
    json_decref(j);
    alert_clear(&a);
}

/* External labels join each alert's labels (and so commonLabels) unless the
 * alert has that label already, as Prometheus adds them to what it sends. */
static void test_external_labels(void **state)
{
    (void)state;
    kcw_alert_t a, b;
    alert_init(&a, "X", "orders", KCW_ALERT_FIRING, T0, 0);
    alert_init(&b, "X", "billing", KCW_ALERT_FIRING, T0, 0);
    assert_int_equal(kcw_labels_set(&b.labels, "region", "own"), 0);
    kcw_labels_t ext = {0};
    assert_int_equal(kcw_labels_set(&ext, "region", "eu1"), 0);
    assert_int_equal(kcw_labels_set(&ext, "replica", "a"), 0);
    const kcw_alert_t *alerts[] = {&a, &b};
    json_t *j = parse(kcw_webhook_payload("ops", "k", NULL, alerts, 2, "http://x", &ext, 0));
    json_t *list = json_object_get(j, "alerts");
    for (size_t i = 0; i < 2; i++) {
        json_t *labels = json_object_get(json_array_get(list, i), "labels");
        const char *conn = str(labels, "connector");
        assert_string_equal(str(labels, "replica"), "a");
        assert_string_equal(str(labels, "region"), strcmp(conn, "billing") == 0 ? "own" : "eu1");
    }
    json_t *common = json_object_get(j, "commonLabels");
    assert_string_equal(str(common, "replica"), "a");
    assert_null(json_object_get(common, "region")); /* differs between the two */
    json_decref(j);
    /* The alerts themselves are not changed. */
    assert_null(kcw_labels_get(&a.labels, "replica"));
    kcw_labels_clear(&ext);
    alert_clear(&a);
    alert_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_firing),
        cmocka_unit_test(test_resolved_status_and_common),
        cmocka_unit_test(test_order_and_truncation),
        cmocka_unit_test(test_starts_at_falls_back_to_active_at),
        cmocka_unit_test(test_empty_and_bad_utf8),
        cmocka_unit_test(test_payload_size_bounded),
        cmocka_unit_test(test_external_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
