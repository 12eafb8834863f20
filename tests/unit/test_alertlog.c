/* test_alertlog.c: alert transition lines, and one summary line for a storm
 * instead of a line per alert. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kcwatch/alertlog.h"
#include "kcwatch/labels.h"
#include "kcwatch/log.h"

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture_t;

static void capture_start(capture_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    kcw_log_setup(KCW_LOG_JSON, KCW_LOG_DEBUG, c->f);
}

/* The captured lines as JSON objects (array; caller decrefs). */
static json_t *capture_end(capture_t *c)
{
    fclose(c->f);
    kcw_log_reset();
    json_t *lines = json_array();
    char *save = NULL;
    for (char *line = strtok_r(c->buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o)
            fail_msg("not JSON: %s", line);
        json_array_append_new(lines, o);
    }
    free(c->buf);
    return lines;
}

static void alert_make(kcw_alert_t *a, const char *alertname, const char *connector, int task,
                       kcw_alert_state_t state)
{
    memset(a, 0, sizeof(*a));
    char t[16];
    snprintf(t, sizeof t, "%d", task);
    assert_int_equal(kcw_labels_set(&a->labels, "alertname", alertname), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "cluster", "c1"), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "connector", connector), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "task", t), 0);
    a->state = state;
}

static const char *str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* 1,000 alerts firing in one evaluation: 10 lines one by one, one summary. */
static void test_storm_is_summarised(void **state)
{
    (void)state;
    kcw_alertlog_t *l = kcw_alertlog_new(0);
    assert_non_null(l);
    capture_t c;
    capture_start(&c);
    for (int i = 0; i < 1000; i++) {
        kcw_alert_t a;
        char conn[32];
        snprintf(conn, sizeof conn, "conn-%d", i);
        alert_make(&a, i < 990 ? "ConnectTaskFailed" : "ConnectConnectorFailed", conn, 0,
                   KCW_ALERT_FIRING);
        kcw_alertlog_note(l, &a, "alert firing", 5000);
        kcw_labels_clear(&a.labels);
    }
    kcw_alertlog_flush(l);
    kcw_alertlog_flush(l); /* nothing more to say */
    json_t *lines = capture_end(&c);
    assert_int_equal(json_array_size(lines), KCW_ALERTLOG_DETAIL_MAX + 1);
    for (size_t i = 0; i < KCW_ALERTLOG_DETAIL_MAX; i++) {
        json_t *o = json_array_get(lines, i);
        assert_string_equal(str(o, "msg"), "alert firing");
        assert_string_equal(str(o, "level"), "warn");
        assert_int_equal(json_integer_value(json_object_get(o, "eval_ms")), 5000);
    }
    assert_string_equal(str(json_array_get(lines, 0), "connector"), "conn-0");
    json_t *sum = json_array_get(lines, KCW_ALERTLOG_DETAIL_MAX);
    assert_string_equal(str(sum, "msg"), "alert storm: transitions summarised");
    assert_string_equal(str(sum, "level"), "warn");
    assert_int_equal(json_integer_value(json_object_get(sum, "transitions")), 1000);
    assert_int_equal(json_integer_value(json_object_get(sum, "logged")), 10);
    assert_int_equal(json_integer_value(json_object_get(sum, "summarised")), 990);
    assert_string_equal(str(sum, "by_alertname"),
                        "ConnectTaskFailed: 980 firing; ConnectConnectorFailed: 10 firing");
    assert_string_equal(str(sum, "examples"),
                        "c1/conn-10/0, c1/conn-11/0, c1/conn-12/0, c1/conn-13/0, c1/conn-14/0, "
                        "...");
    json_decref(lines);
    kcw_alertlog_free(l);
}

/* Few transitions: every one logged, no summary; a new evaluation (another
 * now) starts counting again and flushes the previous one. */
static void test_quiet_and_batches(void **state)
{
    (void)state;
    kcw_alertlog_t *l = kcw_alertlog_new(2);
    capture_t c;
    capture_start(&c);
    kcw_alert_t a;
    alert_make(&a, "A", "x", 1, KCW_ALERT_INACTIVE);
    kcw_alertlog_note(l, &a, "alert resolved", 1);
    kcw_alertlog_note(l, &a, "alert resolved", 1);
    kcw_alertlog_note(l, &a, "alert pending", 1); /* third: summarised */
    kcw_alertlog_note(l, &a, "alert resolved", 2); /* flushes 1, logged */
    kcw_alertlog_flush(l);
    kcw_labels_clear(&a.labels);
    json_t *lines = capture_end(&c);
    assert_int_equal(json_array_size(lines), 4);
    assert_string_equal(str(json_array_get(lines, 0), "level"), "info");
    json_t *sum = json_array_get(lines, 2);
    assert_string_equal(str(sum, "msg"), "alert storm: transitions summarised");
    assert_string_equal(str(sum, "level"), "info"); /* nothing summarised was firing */
    assert_string_equal(str(sum, "by_alertname"), "A: 1 pending");
    assert_string_equal(str(sum, "examples"), "c1/x/1");
    assert_int_equal(json_integer_value(json_object_get(sum, "eval_ms")), 1);
    assert_string_equal(str(json_array_get(lines, 3), "msg"), "alert resolved");
    json_decref(lines);
    kcw_alertlog_free(l);
}

/* More alertnames than tracked one by one: the rest are "other"; memory
 * stays bounded whatever the storm. */
static void test_many_alertnames(void **state)
{
    (void)state;
    kcw_alertlog_t *l = kcw_alertlog_new(1);
    capture_t c;
    capture_start(&c);
    for (int i = 0; i < 41; i++) {
        kcw_alert_t a;
        char name[32];
        snprintf(name, sizeof name, "Rule%02d", i);
        alert_make(&a, name, "", 0, KCW_ALERT_FIRING);
        kcw_labels_set(&a.labels, "connector", "");
        kcw_alertlog_note(l, &a, "alert firing", 7);
        kcw_labels_clear(&a.labels);
    }
    kcw_alertlog_flush(l);
    json_t *lines = capture_end(&c);
    assert_int_equal(json_array_size(lines), 2);
    const char *by = str(json_array_get(lines, 1), "by_alertname");
    assert_non_null(strstr(by, "Rule01: 1 firing; "));
    assert_non_null(strstr(by, "Rule16: 1 firing; (other alertnames): 24 firing"));
    assert_null(strstr(by, "Rule17"));
    assert_string_equal(str(json_array_get(lines, 1), "examples"),
                        "Rule01/c1, Rule02/c1, Rule03/c1, Rule04/c1, Rule05/c1, ...");
    json_decref(lines);
    kcw_alertlog_free(l);
}

/* A PromQL-only alert (connect: []) has no connect labels: its line leaves
 * those fields out instead of printing them empty; a connect alert keeps
 * every one, in order. */
static void test_absent_fields_left_out(void **state)
{
    (void)state;
    kcw_alertlog_t *l = kcw_alertlog_new(0);
    assert_non_null(l);
    capture_t c;
    capture_start(&c);
    kcw_alert_t p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(kcw_labels_set(&p.labels, "alertname", "KafkaConnectWorkerDown"), 0);
    assert_int_equal(kcw_labels_set(&p.labels, "severity", "critical"), 0);
    p.state = KCW_ALERT_FIRING;
    kcw_alertlog_note(l, &p, "alert firing", 42);
    kcw_labels_clear(&p.labels);
    kcw_alert_t a;
    alert_make(&a, "ConnectTaskFailed", "orders", 3, KCW_ALERT_INACTIVE);
    assert_int_equal(kcw_labels_set(&a.labels, "state", "FAILED"), 0);
    assert_int_equal(kcw_labels_set(&a.labels, "worker_id", "w1:8083"), 0);
    kcw_alertlog_note(l, &a, "alert resolved", 42);
    kcw_labels_clear(&a.labels);
    kcw_alertlog_flush(l);
    json_t *lines = capture_end(&c);
    assert_int_equal(json_array_size(lines), 2);
    json_t *o = json_array_get(lines, 0);
    assert_string_equal(str(o, "msg"), "alert firing");
    assert_string_equal(str(o, "alertname"), "KafkaConnectWorkerDown");
    assert_int_equal(json_integer_value(json_object_get(o, "eval_ms")), 42);
    static const char *const absent[] = {"cluster", "connector", "task", "state", "worker_id"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (json_object_get(o, absent[i]))
            fail_msg("empty field %s printed: %s", absent[i], str(o, absent[i]));
    assert_int_equal(json_object_size(o), 5); /* ts, level, msg, alertname, eval_ms */
    o = json_array_get(lines, 1);
    static const char *const keys[] = {"ts",   "level", "msg",       "alertname", "cluster",
                                       "connector", "task", "state", "worker_id", "eval_ms"};
    assert_int_equal(json_object_size(o), sizeof(keys) / sizeof(keys[0]));
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        (void)v;
        assert_string_equal(k, keys[i++]);
    }
    assert_string_equal(str(o, "task"), "3");
    assert_string_equal(str(o, "worker_id"), "w1:8083");
    assert_int_equal(json_integer_value(json_object_get(o, "eval_ms")), 42);
    json_decref(lines);
    kcw_alertlog_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storm_is_summarised),
        cmocka_unit_test(test_quiet_and_batches),
        cmocka_unit_test(test_many_alertnames),
        cmocka_unit_test(test_absent_fields_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
