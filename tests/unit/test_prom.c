/* test_prom.c: the Prometheus query client.
 *
 * The parser is fed canned /api/v1/query bodies (vectors, scalars, special
 * floats, warnings, error bodies, rejected result types, malformed JSON). The
 * client runs on a real libuv loop against an in-process libmicrohttpd server
 * on 127.0.0.1 that records what arrived (query string, form body, headers)
 * and answers canned bodies; refused connections and timeouts use plain
 * sockets that are closed or never accepted. Every wait is a loop run bounded
 * by a deadline timer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "kcwatch/http_client.h"
#include "kcwatch/prom.h"
#include "kcwatch/tquery.h"

/* 2024-11-25T10:00:00.123Z */
#define EVAL_MS 1732528800123LL
#define DEADLINE_MS 10000

/* --- parser helpers ------------------------------------------------------------ */

static kcw_prom_result_t *parse_ok(const char *body)
{
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    int rc = kcw_prom_parse_response(body, strlen(body), &res, &err);
    if (rc != 0)
        fail_msg("parse failed (%d): %s", rc, err.msg);
    assert_non_null(res);
    assert_int_equal(err.kind, KCW_PROM_ERR_NONE);
    return res;
}

/* Expects failure rc with a message containing want. */
static void parse_fails(const char *body, int want_rc, const char *want)
{
    kcw_prom_result_t *res = (kcw_prom_result_t *)1;
    kcw_prom_error_t err;
    int rc = kcw_prom_parse_response(body, strlen(body), &res, &err);
    if (rc != want_rc)
        fail_msg("body %s: rc %d, want %d (%s)", body, rc, want_rc, err.msg);
    assert_null(res);
    if (!strstr(err.msg, want))
        fail_msg("body %s: message \"%s\" lacks \"%s\"", body, err.msg, want);
    assert_int_equal(err.kind, want_rc == -EREMOTEIO ? KCW_PROM_ERR_QUERY : KCW_PROM_ERR_RESPONSE);
}

/* --- parser tests ------------------------------------------------------------- */

static void test_parse_vector(void **state)
{
    (void)state;
    kcw_prom_result_t *res = parse_ok(
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
        "{\"metric\":{\"__name__\":\"kafka_connect_task_status\",\"connector\":\"pg-sink\","
        "\"task\":\"0\",\"instance\":\"w1:5556\"},\"value\":[1732528800.123,\"1\"]},"
        "{\"metric\":{\"connector\":\"s3-sink\",\"__name__\":\"kafka_connect_task_status\","
        "\"task\":\"2\"},\"value\":[1732528800.123,\"0.25\"]},"
        "{\"metric\":{},\"value\":[1732528800,\"-12.5e3\"]}"
        "]}}");
    assert_int_equal(res->type, KCW_PROM_VECTOR);
    assert_int_equal(res->n, 3);
    assert_int_equal(res->n_warnings, 0);
    assert_null(res->warnings);

    const kcw_prom_sample_t *s = &res->samples[0];
    assert_int_equal(s->metric.n, 4);
    assert_string_equal(kcw_labels_get(&s->metric, "__name__"), "kafka_connect_task_status");
    assert_string_equal(kcw_labels_get(&s->metric, "connector"), "pg-sink");
    assert_string_equal(kcw_labels_get(&s->metric, "task"), "0");
    assert_string_equal(kcw_labels_get(&s->metric, "instance"), "w1:5556");
    assert_true(s->value == 1.0);
    assert_int_equal(s->ts_ms, 1732528800123LL);

    /* Order within the object does not matter: label sets are kept sorted. */
    s = &res->samples[1];
    assert_int_equal(s->metric.n, 3);
    assert_string_equal(s->metric.items[0].name, "__name__");
    assert_string_equal(s->metric.items[1].name, "connector");
    assert_string_equal(s->metric.items[1].value, "s3-sink");
    assert_string_equal(s->metric.items[2].name, "task");
    assert_true(s->value == 0.25);

    s = &res->samples[2];
    assert_int_equal(s->metric.n, 0);
    assert_true(s->value == -12500.0);
    assert_int_equal(s->ts_ms, 1732528800000LL);
    kcw_prom_result_free(res);
}

static void test_parse_scalar(void **state)
{
    (void)state;
    kcw_prom_result_t *res = parse_ok("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                                      "\"result\":[1732528800.5,\"42.25\"]}}");
    assert_int_equal(res->type, KCW_PROM_SCALAR);
    assert_int_equal(res->n, 0);
    assert_null(res->samples);
    assert_true(res->scalar == 42.25);
    assert_int_equal(res->scalar_ts_ms, 1732528800500LL);
    kcw_prom_result_free(res);

    res = parse_ok("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                   "\"result\":[1732528800.001,\"NaN\"]}}");
    assert_true(isnan(res->scalar));
    assert_int_equal(res->scalar_ts_ms, 1732528800001LL);
    kcw_prom_result_free(res);
}

static void test_parse_special_floats(void **state)
{
    (void)state;
    kcw_prom_result_t *res =
        parse_ok("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                 "{\"metric\":{\"v\":\"nan\"},\"value\":[1,\"NaN\"]},"
                 "{\"metric\":{\"v\":\"pinf\"},\"value\":[1,\"+Inf\"]},"
                 "{\"metric\":{\"v\":\"minf\"},\"value\":[1,\"-Inf\"]},"
                 "{\"metric\":{\"v\":\"small\"},\"value\":[1,\"1e-300\"]},"
                 "{\"metric\":{\"v\":\"negzero\"},\"value\":[1,\"-0\"]},"
                 "{\"metric\":{\"v\":\"big\"},\"value\":[1,\"1.7976931348623157e+308\"]}"
                 "]}}");
    assert_int_equal(res->n, 6);
    assert_true(isnan(res->samples[0].value));
    assert_true(isinf(res->samples[1].value) && res->samples[1].value > 0);
    assert_true(isinf(res->samples[2].value) && res->samples[2].value < 0);
    assert_true(res->samples[3].value == 1e-300);
    assert_true(res->samples[4].value == 0.0 && signbit(res->samples[4].value));
    assert_true(res->samples[5].value == 1.7976931348623157e+308);
    assert_int_equal(res->samples[0].ts_ms, 1000);
    kcw_prom_result_free(res);
}

static void test_parse_warnings(void **state)
{
    (void)state;
    kcw_prom_result_t *res = parse_ok(
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]},"
        "\"warnings\":[\"PromQL info: metric might not be a counter\",\"w2 \\\"quoted\\\"\"],"
        "\"infos\":[\"PromQL info: ignored\"]}");
    assert_int_equal(res->n_warnings, 2);
    assert_string_equal(res->warnings[0], "PromQL info: metric might not be a counter");
    assert_string_equal(res->warnings[1], "w2 \"quoted\"");
    assert_int_equal(res->n_infos, 1);
    assert_string_equal(res->infos[0], "PromQL info: ignored");
    kcw_prom_result_free(res);

    /* null warnings is the same as none */
    res = parse_ok("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]},"
                   "\"warnings\":null}");
    assert_int_equal(res->n_warnings, 0);
    kcw_prom_result_free(res);

    /* Bounded: only the first KCW_PROM_MAX_WARNINGS are kept. */
    char body[4096];
    int len = snprintf(body, sizeof(body),
                       "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                       "\"result\":[1,\"1\"]},\"warnings\":[");
    for (int i = 0; i < KCW_PROM_MAX_WARNINGS + 10; i++)
        len += snprintf(body + len, sizeof(body) - (size_t)len, "%s\"w%d\"", i ? "," : "", i);
    snprintf(body + len, sizeof(body) - (size_t)len, "]}");
    res = parse_ok(body);
    assert_int_equal(res->n_warnings, KCW_PROM_MAX_WARNINGS);
    assert_string_equal(res->warnings[KCW_PROM_MAX_WARNINGS - 1], "w31");
    kcw_prom_result_free(res);
}

static void test_parse_error_body(void **state)
{
    (void)state;
    const char *body = "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":"
                       "\"invalid parameter \\\"query\\\": 1:7: parse error: unexpected "
                       "\\\"}\\\" in label matching, expected string\"}";
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    assert_int_equal(kcw_prom_parse_response(body, strlen(body), &res, &err), -EREMOTEIO);
    assert_null(res);
    assert_int_equal(err.kind, KCW_PROM_ERR_QUERY);
    assert_string_equal(err.type, "bad_data");
    assert_string_equal(err.msg, "bad_data: invalid parameter \"query\": 1:7: parse error: "
                                 "unexpected \"}\" in label matching, expected string");
    assert_int_equal(err.http_status, 0);

    body = "{\"status\":\"error\",\"error\":\"something broke\",\"warnings\":[\"w\"]}";
    assert_int_equal(kcw_prom_parse_response(body, strlen(body), &res, &err), -EREMOTEIO);
    assert_string_equal(err.type, "");
    assert_string_equal(err.msg, "something broke");

    parse_fails("{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"query processing "
                "would load too many samples into memory in query execution\"}",
                -EREMOTEIO, "execution: query processing would load too many samples");
    parse_fails("{\"status\":\"error\",\"errorType\":7,\"error\":\"x\"}", -EINVAL,
                "errorType: not a string");
    parse_fails("{\"status\":\"error\",\"errorType\":\"x\",\"error\":[]}", -EINVAL,
                "error: not a string");
}

static void test_parse_rejects_matrix_and_string(void **state)
{
    (void)state;
    parse_fails("{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
                "{\"metric\":{\"a\":\"b\"},\"values\":[[1,\"1\"],[2,\"2\"]]}]}}",
                -ENOTSUP, "query returned a matrix; alerting rules need an instant vector");
    parse_fails("{\"status\":\"success\",\"data\":{\"resultType\":\"string\","
                "\"result\":[1,\"hello\"]}}",
                -ENOTSUP, "query returned a string");
    parse_fails("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                "{\"metric\":{},\"histogram\":[1,{\"count\":\"2\",\"sum\":\"3\"}]}]}}",
                -ENOTSUP, "data.result[0]: native histogram sample");
}

static void test_parse_malformed(void **state)
{
    (void)state;
    parse_fails("not json", -EINVAL, "response is not JSON");
    parse_fails("<html><body>502 Bad Gateway</body></html>", -EINVAL, "response is not JSON");
    parse_fails("", -EINVAL, "empty response body");
    /* truncated mid-stream */
    parse_fails("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
                "{\"metric\":{\"a\":\"b\"},\"value\":[1,\"1",
                -EINVAL, "response is not JSON");
    parse_fails("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[", -EINVAL,
                "response is not JSON");
    parse_fails("[]", -EINVAL, "not a JSON object");
    parse_fails("{}", -EINVAL, "status: missing");

    /* Only len bytes count: the buffer need not be NUL-terminated. */
    const char *buf = "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                      "\"result\":[1,\"7\"]}}GARBAGE";
    kcw_prom_result_t *res = NULL;
    assert_int_equal(kcw_prom_parse_response(buf, strlen(buf) - strlen("GARBAGE"), &res, NULL), 0);
    assert_true(res->scalar == 7.0);
    kcw_prom_result_free(res);
    /* ...and a body cut short by len is truncated JSON. */
    assert_int_equal(kcw_prom_parse_response(buf, 20, &res, NULL), -EINVAL);
    assert_null(res);
    assert_int_equal(kcw_prom_parse_response(buf, strlen(buf), NULL, NULL), -EINVAL);
    kcw_prom_result_free(NULL);
}

#define VEC_PRE "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
#define VEC_POST "}}"

static void test_parse_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"{\"status\":1}", "status: not a string"},
        {"{\"status\":\"weird\"}", "status: \"weird\", expected"},
        {"{\"status\":\"success\"}", "data: missing"},
        {"{\"status\":\"success\",\"data\":\"x\"}", "data: not an object"},
        {"{\"status\":\"success\",\"data\":{\"result\":[]}}", "data.resultType: missing"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":3,\"result\":[]}}",
         "data.resultType: not a string"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"vectorz\",\"result\":[]}}",
         "data.resultType: unknown \"vectorz\""},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"}}", "data.result: missing"},
        {VEC_PRE "{}" VEC_POST, "data.result: not an array"},
        {VEC_PRE "[3]" VEC_POST, "data.result[0]: not an object"},
        {VEC_PRE "[{\"value\":[1,\"1\"]}]" VEC_POST, "data.result[0]: \"metric\" missing"},
        {VEC_PRE "[{\"metric\":[],\"value\":[1,\"1\"]}]" VEC_POST,
         "data.result[0].metric: not an object"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\"1\"]},{\"metric\":{\"job\":5},\"value\":[1,\"1\"]}"
                 "]" VEC_POST,
         "data.result[1].metric.job: label value is not a string"},
        {VEC_PRE "[{\"metric\":{\"\":\"x\"},\"value\":[1,\"1\"]}]" VEC_POST, "empty label name"},
        {VEC_PRE "[{\"metric\":{}}]" VEC_POST, "data.result[0]: \"value\" missing"},
        {VEC_PRE "[{\"metric\":{},\"value\":\"1\"}]" VEC_POST,
         "data.result[0].value: not a [timestamp, \"value\"] pair"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\"1\",2]}]" VEC_POST,
         "data.result[0].value: not a [timestamp"},
        {VEC_PRE "[{\"metric\":{},\"value\":[\"1\",\"1\"]}]" VEC_POST,
         "data.result[0].value[0]: timestamp is not a number"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,1]}]" VEC_POST,
         "data.result[0].value[1]: value is not a string"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\"abc\"]}]" VEC_POST,
         "data.result[0].value[1]: \"abc\" is not a number"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\"1x\"]}]" VEC_POST, "\"1x\" is not a number"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\" 1\"]}]" VEC_POST, "\" 1\" is not a number"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1,\"\"]}]" VEC_POST, "\"\" is not a number"},
        {VEC_PRE "[{\"metric\":{},\"value\":[1e300,\"1\"]}]" VEC_POST, "timestamp out of range"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[]}}",
         "data.result: not a [timestamp, \"value\"] pair"},
        {"{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,true]}}",
         "data.result[1]: value is not a string"},
        {VEC_PRE "[]},\"warnings\":\"w\"}", "warnings: not an array"},
        {VEC_PRE "[]},\"warnings\":[\"a\",1]}", "warnings[1]: not a string"},
        {VEC_PRE "[]},\"infos\":{}}", "infos: not an array"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        parse_fails(cases[i].body, -EINVAL, cases[i].want);
}

static void assert_empty_vector(const kcw_prom_result_t *res)
{
    assert_int_equal(res->type, KCW_PROM_VECTOR);
    assert_int_equal(res->n, 0);
    assert_null(res->samples);
    assert_true(res->scalar == 0.0);
    assert_int_equal(res->scalar_ts_ms, 0);
    assert_null(res->warnings);
    assert_int_equal(res->n_warnings, 0);
    assert_null(res->infos);
    assert_int_equal(res->n_infos, 0);
}

static void test_parse_empty_vector(void **state)
{
    (void)state;
    /* Prometheus' exact bytes (read without a JSON tree) and the same
     * document spaced otherwise (read by jansson) give the same result. */
    static const char *const same[] = {
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}\n",
        "{\"data\": {\"result\": [], \"resultType\": \"vector\"}, \"status\": \"success\"}",
        VEC_PRE "[]" VEC_POST,
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        kcw_prom_result_t *res = parse_ok(same[i]);
        assert_empty_vector(res);
        kcw_prom_result_free(res);
    }
    /* The exact bytes cut short, or followed by warnings, are not taken for it. */
    static const char cut[] = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}";
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    assert_int_equal(kcw_prom_parse_response(cut, sizeof(cut) - 1, &res, &err), -EINVAL);
    assert_null(res);
    res = parse_ok("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]},"
                   "\"warnings\":[\"w\"]}");
    assert_int_equal(res->n_warnings, 1);
    assert_string_equal(res->warnings[0], "w");
    kcw_prom_result_free(res);
}

/* --- large answers: series by series equals the whole tree ------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint32_t rnd(rng_t *r, uint32_t n)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s % n);
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s)
{
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

static void ws(buf_t *b, rng_t *r)
{
    static const char *const w[] = {"", "", "", " ", "\n", " \t", "\r\n  "};
    put(b, w[rnd(r, 7)]);
}

static void jstr(buf_t *b, rng_t *r, bool plain)
{
    static const char *const parts[] = {"a", "conn", "-", "_", "0", "9", "Zo\xc3\xab", "x y",
                                        "\\\"", "\\\\", "\\n", "\\u00e9", "\\/", "\xe2\x82\xac"};
    put(b, "\"");
    int n = 1 + (int)rnd(r, 4);
    for (int i = 0; i < n; i++)
        put(b, parts[plain ? rnd(r, 6) : rnd(r, 14)]);
    put(b, "\"");
}

/* A vector answer of about 100 KB, spaced and ordered at random; it begins
 * as Prometheus writes it when prom_form is set. */
static void big_answer(buf_t *b, rng_t *r, bool prom_form)
{
    static const char *const values[] = {"1", "0.5", "-3e-7", "NaN", "+Inf", "-Inf", "42"};
    b->n = 0;
    put(b, "");
    char num[64];
    size_t series = 900 + rnd(r, 300);
    bool warn = rnd(r, 3) == 0, status_first = prom_form || rnd(r, 2) == 0;
    if (prom_form) {
        put(b, VEC_PRE "[");
    } else {
        put(b, "{");
        ws(b, r);
        if (status_first) {
            put(b, "\"status\":");
            ws(b, r);
            put(b, "\"success\",");
            ws(b, r);
        }
        put(b, "\"data\":");
        ws(b, r);
        put(b, "{\"resultType\":\"vector\",");
        ws(b, r);
        put(b, "\"result\":[");
    }
    for (size_t i = 0; i < series; i++) {
        ws(b, r);
        if (i)
            put(b, ",");
        ws(b, r);
        bool value_first = rnd(r, 4) == 0;
        snprintf(num, sizeof(num), "[%u.%03u,\"%s\"]", 1700000000u + rnd(r, 1000), rnd(r, 1000),
                 values[rnd(r, 7)]);
        put(b, "{");
        if (value_first) {
            put(b, "\"value\":");
            put(b, num);
            put(b, ",");
        }
        put(b, "\"metric\":{");
        int labels = 1 + (int)rnd(r, 12);
        for (int l = 0; l < labels; l++) {
            if (l)
                put(b, ",");
            ws(b, r);
            snprintf(num + 40, 24, "\"l%d\":", l);
            put(b, num + 40);
            jstr(b, r, false);
        }
        put(b, "}");
        if (!value_first) {
            put(b, ",");
            ws(b, r);
            put(b, "\"value\":");
            put(b, num);
        }
        put(b, "}");
    }
    ws(b, r);
    put(b, "]}");
    if (!status_first) {
        put(b, ",");
        ws(b, r);
        put(b, "\"status\":\"success\"");
    }
    if (warn) {
        put(b, ",\"warnings\":[");
        jstr(b, r, false);
        put(b, "]");
    }
    ws(b, r);
    put(b, "}");
}

static void assert_same(const char *body, size_t len)
{
    kcw_prom_result_t *a = NULL, *w = NULL;
    kcw_prom_error_t ea, ew;
    int ra = kcw_prom_parse_response(body, len, &a, &ea);
    int rw = kcw_prom_parse_whole(body, len, &w, &ew);
    assert_int_equal(ra, rw);
    if (rw < 0) {
        assert_int_equal(ea.kind, ew.kind);
        assert_string_equal(ea.msg, ew.msg);
        assert_null(a);
        return;
    }
    assert_int_equal(a->type, w->type);
    assert_int_equal(a->n, w->n);
    for (size_t i = 0; i < w->n; i++) {
        assert_true(kcw_labels_equal(&a->samples[i].metric, &w->samples[i].metric));
        assert_memory_equal(&a->samples[i].value, &w->samples[i].value, sizeof(double));
        assert_int_equal(a->samples[i].ts_ms, w->samples[i].ts_ms);
    }
    assert_int_equal(a->n_warnings, w->n_warnings);
    for (size_t i = 0; i < w->n_warnings; i++)
        assert_string_equal(a->warnings[i], w->warnings[i]);
    assert_int_equal(a->n_infos, w->n_infos);
    kcw_prom_result_free(a);
    kcw_prom_result_free(w);
}

static void test_parse_large_answers(void **state)
{
    (void)state;
    rng_t r = {.s = 0x9E3779B97F4A7C15u};
    buf_t b = {0};
    static const char junk[] = "{}[],:\" a1\\\x01";
    for (int round = 0; round < 40; round++) {
        bool prom_form = round % 3 != 2;
        big_answer(&b, &r, prom_form);
        assert_true(b.n >= 64 * 1024);
        unsigned long before = kcw_prom_sliced_reads();
        assert_same(b.p, b.n);
        /* An answer as Prometheus writes it is read series by series. */
        assert_int_equal(kcw_prom_sliced_reads(), before + (prom_form ? 1 : 0));
        /* One byte changed or dropped: the same result or the same error. */
        for (int m = 0; m < 3; m++) {
            char *copy = malloc(b.n);
            assert_non_null(copy);
            memcpy(copy, b.p, b.n);
            size_t at = rnd(&r, (uint32_t)b.n), len = b.n;
            if (rnd(&r, 2)) {
                copy[at] = junk[rnd(&r, sizeof(junk) - 1)];
            } else {
                memmove(copy + at, copy + at + 1, b.n - at - 1);
                len--;
            }
            assert_same(copy, len);
            free(copy);
        }
    }
    free(b.p);
}

/* A series nesting deeper than jansson accepts in the whole answer but not
 * when read alone: the series-by-series reading must refuse it the same. */
static void test_parse_large_too_deep(void **state)
{
    (void)state;
    for (int extra = -1; extra <= 0; extra++) {
        buf_t b = {0};
        put(&b, VEC_PRE "[");
        for (int i = 0; i < 1000; i++)
            put(&b, "{\"metric\":{\"job\":\"kafka-connect-worker\",\"instance\":\"connect-1:9404\"},\"value\":[1,\"0\"]},");
        /* root, data, result, the series: 4 levels above the arrays. */
        int arrays = 2048 - 4 + 1 + extra;
        put(&b, "{\"metric\":{},\"value\":[1,\"1\"],\"x\":");
        for (int i = 0; i < arrays; i++)
            put(&b, "[");
        for (int i = 0; i < arrays; i++)
            put(&b, "]");
        put(&b, "}]" VEC_POST);
        assert_true(b.n >= 64 * 1024);
        assert_same(b.p, b.n);
        kcw_prom_result_t *res = NULL;
        int rc = kcw_prom_parse_response(b.p, b.n, &res, NULL);
        if (extra == 0) {
            assert_true(rc < 0); /* 2049 levels: jansson refuses */
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(res->n, 1001);
        }
        kcw_prom_result_free(res);
        free(b.p);
    }
}

/* A wrong series before bytes that are not JSON (which jsmn takes): the
 * whole reading reports the bytes, and so must the series-by-series one. */
static void test_parse_large_error_order(void **state)
{
    (void)state;
    buf_t b = {0};
    put(&b, VEC_PRE "[{\"metric\":{\"job\":\"connect\"},\"vlue\":[1,\"1\"]}");
    for (int i = 0; i < 1000; i++)
        put(&b, ",{\"metric\":{\"job\":\"kafka-connect-worker\",\"instance\":\"connect-1:9404\"},"
                "\"value\":[1,\"0\"]}");
    put(&b, ",{\"metric\":{},\"value\":[17\"3,\"1\"]}]" VEC_POST);
    assert_true(b.n >= 64 * 1024);
    assert_same(b.p, b.n);
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    assert_int_equal(kcw_prom_parse_response(b.p, b.n, &res, &err), -EINVAL);
    assert_null(res);
    assert_non_null(strstr(err.msg, "response is not JSON"));
    free(b.p);
}

/* Keys given twice after the series: jansson keeps the last, so the whole
 * reading sees another data or result; the series-by-series one must too. */
static void test_parse_large_duplicate_keys(void **state)
{
    (void)state;
    static const char *const tails[] = {
        "]},\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
        "],\"result\":[]}}",
        "],\"resultType\":\"scalar\"}}",
        "]},\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"x\"}",
        "]}}",
    };
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
        buf_t b = {0};
        put(&b, VEC_PRE "[");
        for (int i = 0; i < 1000; i++)
            put(&b, i ? ",{\"metric\":{\"job\":\"kafka-connect-worker\",\"instance\":\"c:9404\"},"
                        "\"value\":[1,\"0\"]}"
                      : "{\"metric\":{\"job\":\"kafka-connect-worker\",\"instance\":\"c:9404\"},"
                        "\"value\":[1,\"0\"]}");
        put(&b, tails[t]);
        assert_true(b.n >= 64 * 1024);
        unsigned long before = kcw_prom_sliced_reads();
        assert_same(b.p, b.n);
        /* Only the plain answer is read series by series. */
        assert_int_equal(kcw_prom_sliced_reads(), before + (t == 4 ? 1 : 0));
        free(b.p);
    }
}

static void test_parse_bounds(void **state)
{
    (void)state;
    /* One series with a label more than allowed. */
    size_t cap = 256 + (KCW_PROM_MAX_LABELS + 1) * 24;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t len = (size_t)snprintf(body, cap, VEC_PRE "[{\"metric\":{");
    for (int i = 0; i <= KCW_PROM_MAX_LABELS; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s\"l%d\":\"v\"", i ? "," : "", i);
    snprintf(body + len, cap - len, "},\"value\":[1,\"1\"]}]" VEC_POST);
    parse_fails(body, -E2BIG, "257 labels, more than the limit of 256");
    free(body);

    /* Series count: checked before any element is looked at, so a cheap
     * array of numbers shows it. */
    size_t n = (size_t)KCW_PROM_MAX_SERIES + 1;
    cap = 256 + n * 2;
    body = malloc(cap);
    assert_non_null(body);
    len = (size_t)snprintf(body, cap, VEC_PRE "[");
    for (size_t i = 0; i < n; i++) {
        body[len++] = i ? ',' : '0';
        if (i)
            body[len++] = '0';
    }
    snprintf(body + len, cap - len, "]" VEC_POST);
    parse_fails(body, -E2BIG, "1000001 series, more than the limit of 1000000");
    free(body);
}

/* --- test server ----------------------------------------------------------------- */

typedef struct request {
    char *raw_uri; /* as sent, query string included */
    char *raw_body; /* as sent */
    char *method;
    char *query, *time, *timeout; /* from the URL or the form body, decoded */
    char *auth;
    char *content_type;
    int n_content_type;
    struct MHD_PostProcessor *pp;
} request_t;

typedef struct server {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    /* canned answer */
    unsigned status;
    char body[2048];
    /* what the last request carried; owned */
    int n_requests;
    request_t last;
} server_t;

static void request_clear(request_t *r)
{
    free(r->raw_uri);
    free(r->raw_body);
    free(r->method);
    free(r->query);
    free(r->time);
    free(r->timeout);
    free(r->auth);
    free(r->content_type);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    memset(r, 0, sizeof(*r));
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Appends a chunk of a form field to *dst. */
static int append(char **dst, const char *data, size_t size)
{
    size_t have = *dst ? strlen(*dst) : 0;
    char *p = realloc(*dst, have + size + 1);
    if (!p)
        return -1;
    memcpy(p + have, data, size);
    p[have + size] = '\0';
    *dst = p;
    return 0;
}

static enum MHD_Result post_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding, (void)off;
    request_t *r = cls;
    char **dst = strcmp(key, "query") == 0     ? &r->query
                 : strcmp(key, "time") == 0    ? &r->time
                 : strcmp(key, "timeout") == 0 ? &r->timeout
                                               : NULL;
    if (dst && append(dst, data ? data : "", size) < 0)
        return MHD_NO;
    return MHD_YES;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind, (void)value;
    request_t *r = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0)
        r->n_content_type++;
    return MHD_YES;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls, (void)conn;
    request_t *r = calloc(1, sizeof(*r));
    if (r)
        r->raw_uri = strdup(uri);
    return r;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    request_t *r = *req_cls;
    if (r) {
        request_clear(r);
        free(r);
    }
    *req_cls = NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    (void)url, (void)version;
    server_t *srv = cls;
    request_t *r = *req_cls;
    if (!r)
        return MHD_NO;
    if (!r->method) {
        /* First call: headers are in. */
        r->method = strdup(method);
        r->auth = dup_or_null(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
        r->content_type = dup_or_null(
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, r);
        if (strcmp(method, "POST") == 0)
            r->pp = MHD_create_post_processor(conn, 4096, post_field, r);
        else {
            r->query =
                dup_or_null(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "query"));
            r->time = dup_or_null(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "time"));
            r->timeout =
                dup_or_null(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "timeout"));
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (append(&r->raw_body, upload_data, *upload_data_size) < 0)
            return MHD_NO;
        if (r->pp)
            MHD_post_process(r->pp, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&srv->mu);
    srv->n_requests++;
    request_clear(&srv->last);
    srv->last = *r;
    srv->last.pp = NULL;
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    memset(r, 0, sizeof(*r));
    r->method = strdup("done"); /* keeps this request from starting over */
    unsigned status = srv->status;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(srv->body), srv->body, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_unlock(&srv->mu);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void server_start(server_t *srv)
{
    memset(srv, 0, sizeof(*srv));
    pthread_mutex_init(&srv->mu, NULL);
    srv->status = 200;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    srv->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, srv,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                   MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL,
                                   MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    assert_non_null(srv->daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    srv->port = info->port;
    assert_true(srv->port != 0);
}

static void server_stop(server_t *srv)
{
    MHD_stop_daemon(srv->daemon);
    request_clear(&srv->last);
    pthread_mutex_destroy(&srv->mu);
}

static void server_answer(server_t *srv, unsigned status, const char *body)
{
    pthread_mutex_lock(&srv->mu);
    srv->status = status;
    snprintf(srv->body, sizeof(srv->body), "%s", body);
    pthread_mutex_unlock(&srv->mu);
}

/* Copies what the last request carried, so assertions run without the lock. */
static int server_last(server_t *srv, request_t *out)
{
    request_clear(out);
    pthread_mutex_lock(&srv->mu);
    const request_t *l = &srv->last;
    out->raw_uri = dup_or_null(l->raw_uri);
    out->raw_body = dup_or_null(l->raw_body);
    out->method = dup_or_null(l->method);
    out->query = dup_or_null(l->query);
    out->time = dup_or_null(l->time);
    out->timeout = dup_or_null(l->timeout);
    out->auth = dup_or_null(l->auth);
    out->content_type = dup_or_null(l->content_type);
    out->n_content_type = l->n_content_type;
    int n = srv->n_requests;
    pthread_mutex_unlock(&srv->mu);
    assert_non_null(out->raw_uri);
    assert_non_null(out->method);
    return n;
}

/* --- loop fixture --------------------------------------------------------------- */

typedef struct outcome {
    int calls;
    kcw_prom_result_t *res;
    kcw_prom_error_t err;
    bool failed;
    uint64_t at_ms; /* uv_now when the callback ran */
    struct fixture *fx;
    bool free_prom; /* the callback frees the client */
} outcome_t;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool expired;
    kcw_http_t *http;
    kcw_prom_t *prom;
    server_t srv;
    request_t seen;   /* server_last's copy, freed by teardown */
    int blackhole_fd; /* listening, never accepting: requests hang */
    uint16_t blackhole_port;
    char url[128];
} fixture_t;

static void on_result(kcw_prom_result_t *res, const kcw_prom_error_t *err, void *arg)
{
    outcome_t *o = arg;
    o->calls++;
    o->at_ms = uv_now(&o->fx->loop);
    /* A callback run from the timer phase would otherwise leave this
     * iteration blocking in the poll phase until the next timer. */
    uv_stop(&o->fx->loop);
    /* exactly one of them */
    assert_true((res == NULL) != (err == NULL));
    if (res) {
        o->res = res;
    } else {
        o->failed = true;
        o->err = *err;
    }
    if (o->free_prom) {
        kcw_prom_free(o->fx->prom);
        o->fx->prom = NULL;
    }
}

static void outcome_clear(outcome_t *o)
{
    kcw_prom_result_free(o->res);
    o->res = NULL;
}

static void on_deadline(uv_timer_t *t)
{
    fixture_t *fx = t->data;
    fx->expired = true;
}

/* Runs the loop until *calls reaches want or the deadline passes. */
static void run_until(fixture_t *fx, const int *calls, int want)
{
    fx->expired = false;
    assert_int_equal(uv_timer_start(&fx->deadline, on_deadline, DEADLINE_MS, 0), 0);
    while (*calls < want && !fx->expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    if (*calls < want)
        fail_msg("deadline passed: %d of %d callbacks ran", *calls, want);
}

static uint16_t socket_port(int fd)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    return ntohs(a.sin_port);
}

static int loopback_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->deadline), 0);
    fx->deadline.data = fx;
    fx->http = kcw_http_new(&fx->loop);
    assert_non_null(fx->http);
    server_start(&fx->srv);
    snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%u", (unsigned)fx->srv.port);
    fx->blackhole_fd = loopback_socket();
    assert_int_equal(listen(fx->blackhole_fd, 16), 0);
    fx->blackhole_port = socket_port(fx->blackhole_fd);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    kcw_prom_free(fx->prom);
    kcw_http_close(fx->http, NULL, NULL);
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    /* on_result's uv_stop may end a run early; run until nothing is left. */
    for (int i = 0; i < 100 && uv_run(&fx->loop, UV_RUN_DEFAULT) != 0; i++)
        ;
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    server_stop(&fx->srv);
    request_clear(&fx->seen);
    close(fx->blackhole_fd);
    free(fx);
    return 0;
}

static kcw_prometheus_conf_t conf_for(const char *url, int64_t timeout_ms)
{
    kcw_prometheus_conf_t c;
    memset(&c, 0, sizeof(c));
    c.url = (char *)url;
    c.timeout_ms = timeout_ms;
    return c;
}

static const char *VECTOR_BODY =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
    "{\"metric\":{\"__name__\":\"up\",\"job\":\"connect\",\"instance\":\"w1:5556\"},"
    "\"value\":[1732528800.123,\"1\"]},"
    "{\"metric\":{\"__name__\":\"up\",\"job\":\"connect\",\"instance\":\"w2:5556\"},"
    "\"value\":[1732528800.123,\"0\"]}]},\"warnings\":[\"careful\"]}";

/* --- client tests --------------------------------------------------------------- */

static void test_client_get_vector(void **state)
{
    fixture_t *fx = *state;
    /* Characters that would break or change meaning in a URL if sent raw:
     * '+' (a space once decoded), '&', '=', '#', '%', spaces, quotes, UTF-8. */
    const char *expr = "sum by (connector) (rate(kafka_connect_task_errors_total{connector=~"
                       "\"a.+b\", note!=\"x & y = 100% #1\", who=\"Zoë\"}[5m])) + 1 > 0";
    char url[160];
    snprintf(url, sizeof(url), "%s/", fx->url); /* trailing slash must not double */
    kcw_prometheus_conf_t conf = conf_for(url, 5000);
    char token[] = "s3cr3t-token";
    conf.bearer_token = token;
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    server_answer(&fx->srv, 200, VECTOR_BODY);

    outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, expr, EVAL_MS, on_result, &o), 0);
    /* never from inside the call */
    assert_int_equal(o.calls, 0);
    assert_int_equal(kcw_prom_pending(fx->prom), 1);
    run_until(fx, &o.calls, 1);
    assert_int_equal(o.calls, 1);
    assert_int_equal(kcw_prom_pending(fx->prom), 0);
    if (o.failed)
        fail_msg("query failed: %s", o.err.msg);

    request_t *r = &fx->seen;
    assert_int_equal(server_last(&fx->srv, r), 1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->raw_uri, "/api/v1/query");
    assert_string_equal(r->content_type, "application/x-www-form-urlencoded");
    assert_non_null(r->query);
    assert_string_equal(r->query, expr);
    assert_string_equal(r->time, "1732528800.123");
    assert_string_equal(r->timeout, "5s");
    assert_string_equal(r->auth, "Bearer s3cr3t-token");
    /* Percent-encoded on the wire: no raw space, '+', '"', '#', UTF-8. */
    const char *qs = r->raw_body;
    assert_non_null(qs);
    assert_true(strncmp(qs, "query=", 6) == 0);
    assert_null(strpbrk(qs, " +\"#{}"));
    for (const char *p = qs; *p; p++)
        assert_true((unsigned char)*p < 0x80);
    assert_non_null(strstr(qs, "a.%2Bb"));
    assert_non_null(strstr(qs, "Zo%C3%AB"));

    kcw_prom_result_t *res = o.res;
    assert_non_null(res);
    assert_int_equal(res->type, KCW_PROM_VECTOR);
    assert_int_equal(res->n, 2);
    assert_string_equal(kcw_labels_get(&res->samples[0].metric, "instance"), "w1:5556");
    assert_string_equal(kcw_labels_get(&res->samples[0].metric, "__name__"), "up");
    assert_true(res->samples[0].value == 1.0);
    assert_true(res->samples[1].value == 0.0);
    assert_int_equal(res->samples[1].ts_ms, EVAL_MS);
    assert_int_equal(res->n_warnings, 1);
    assert_string_equal(res->warnings[0], "careful");
    assert_int_equal(res->body_bytes, strlen(VECTOR_BODY));
    outcome_clear(&o);

    /* The size hint sizes the transfer's receive buffer (4 KiB, 16 KiB,
     * 64 KiB): the answer is the same whichever it is, even a hint far
     * smaller than the answer. */
    const size_t hints[] = {1, KCW_PROM_SMALL_ANSWER, KCW_PROM_SMALL_ANSWER + 1,
                            KCW_PROM_LARGE_ANSWER};
    for (size_t h = 0; h < sizeof(hints) / sizeof(hints[0]); h++) {
        outcome_t oh = {.fx = fx};
        assert_int_equal(kcw_prom_query_sized(fx->prom, expr, EVAL_MS, hints[h], on_result, &oh),
                         0);
        run_until(fx, &oh.calls, 1);
        assert_false(oh.failed);
        assert_int_equal(oh.res->n, 2);
        assert_string_equal(kcw_labels_get(&oh.res->samples[0].metric, "instance"), "w1:5556");
        assert_int_equal(oh.res->body_bytes, strlen(VECTOR_BODY));
        outcome_clear(&oh);
    }

    /* A second query reuses the client (and, through it, the connection). */
    server_answer(&fx->srv, 200,
                  "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}");
    outcome_t o2 = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, "up == 0", -1500, on_result, &o2), 0);
    run_until(fx, &o2.calls, 1);
    assert_false(o2.failed);
    assert_int_equal(o2.res->n, 0);
    assert_int_equal(server_last(&fx->srv, r), 6); /* 1 + 4 sized + this one */
    assert_string_equal(r->query, "up == 0");
    assert_string_equal(r->time, "-1.500");
    outcome_clear(&o2);
}

static void test_client_basic_auth_scalar(void **state)
{
    fixture_t *fx = *state;
    /* Prometheus behind a path prefix. */
    char url[160];
    snprintf(url, sizeof(url), "%s/prometheus", fx->url);
    kcw_prometheus_conf_t conf = conf_for(url, 2500);
    char user[] = "kcwatch", pass[] = "pa:ss";
    conf.basic_auth.username = user;
    conf.basic_auth.password = pass;
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    /* The client copied the config: changing it afterwards changes nothing. */
    user[0] = 'X';
    server_answer(&fx->srv, 200,
                  "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                  "\"result\":[1732528800,\"3.5\"]}}");
    outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, "scalar(count(up))", 1732528800000LL, on_result, &o),
                     0);
    run_until(fx, &o.calls, 1);
    if (o.failed)
        fail_msg("query failed: %s", o.err.msg);
    assert_int_equal(o.res->type, KCW_PROM_SCALAR);
    assert_true(o.res->scalar == 3.5);
    assert_int_equal(o.res->scalar_ts_ms, 1732528800000LL);
    request_t *r = &fx->seen;
    server_last(&fx->srv, r);
    assert_string_equal(r->raw_uri, "/prometheus/api/v1/query");
    /* base64("kcwatch:pa:ss") */
    assert_string_equal(r->auth, "Basic a2N3YXRjaDpwYTpzcw==");
    assert_string_equal(r->time, "1732528800.000");
    /* "2.5s" is no Prometheus duration; milliseconds are. */
    assert_string_equal(r->timeout, "2500ms");
    outcome_clear(&o);
}

static void test_client_long_expr_posts_form(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t conf = conf_for(fx->url, 10000);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    server_answer(&fx->srv, 200, VECTOR_BODY);

    /* Longer than a URL should be: the form body has no such limit. */
    static char expr[4096];
    size_t cap = sizeof(expr), len = 0;
    for (int i = 0; len < 2100; i++)
        len +=
            (size_t)snprintf(expr + len, cap - len, "%sup{connector=\"c-%d\"}", i ? " or " : "", i);
    outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, expr, EVAL_MS, on_result, &o), 0);
    run_until(fx, &o.calls, 1);
    request_t *r = &fx->seen;
    server_last(&fx->srv, r);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->raw_uri, "/api/v1/query");
    /* Prometheus (Go) reads the first Content-Type only: it must be the form one. */
    assert_non_null(r->content_type);
    assert_string_equal(r->content_type, "application/x-www-form-urlencoded");
    assert_int_equal(r->n_content_type, 1);
    assert_non_null(r->query);
    assert_string_equal(r->query, expr);
    assert_string_equal(r->time, "1732528800.123");
    assert_string_equal(r->timeout, "10s");
    if (o.failed)
        fail_msg("query failed: %s", o.err.msg);
    assert_int_equal(o.res->n, 2);
    outcome_clear(&o);
}

static void test_client_error_statuses(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t conf = conf_for(fx->url, 5000);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    static const struct {
        unsigned status;
        const char *body;
        kcw_prom_err_kind_t kind;
        const char *type;
        const char *msg;
    } cases[] = {
        {400,
         "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter "
         "\\\"query\\\": 1:4: parse error: unexpected end of input\"}",
         KCW_PROM_ERR_QUERY, "bad_data",
         "HTTP 400: bad_data: invalid parameter \"query\": 1:4: parse error: unexpected end of "
         "input"},
        {422,
         "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"found duplicate series "
         "for the match group\"}",
         KCW_PROM_ERR_QUERY, "execution",
         "HTTP 422: execution: found duplicate series for the match group"},
        {503,
         "{\"status\":\"error\",\"errorType\":\"timeout\",\"error\":\"query timed out in "
         "expression evaluation\"}",
         KCW_PROM_ERR_QUERY, "timeout",
         "HTTP 503: timeout: query timed out in expression evaluation"},
        /* Not ready yet: plain text, no API body. */
        {503, "Service Unavailable\n", KCW_PROM_ERR_HTTP, "", "HTTP 503: Service Unavailable"},
        {500, "", KCW_PROM_ERR_HTTP, "", "HTTP 500"},
        {502, "<html>\r\n<body>bad gateway</body></html>", KCW_PROM_ERR_HTTP, "",
         "HTTP 502: <html>  <body>bad gateway</body></html>"},
        /* 200 but not an API response */
        {200, "{\"status\":\"success\"}", KCW_PROM_ERR_RESPONSE, "", "data: missing"},
        {200, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
         KCW_PROM_ERR_RESPONSE, "",
         "query returned a matrix; alerting rules need an instant "
         "vector or a scalar"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        server_answer(&fx->srv, cases[i].status, cases[i].body);
        outcome_t o = {.fx = fx};
        assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &o), 0);
        run_until(fx, &o.calls, 1);
        assert_true(o.failed);
        assert_null(o.res);
        if (o.err.kind != cases[i].kind)
            fail_msg("case %zu: kind %d, want %d (%s)", i, o.err.kind, cases[i].kind, o.err.msg);
        assert_int_equal(o.err.http_status, cases[i].status);
        assert_string_equal(o.err.type, cases[i].type);
        assert_string_equal(o.err.msg, cases[i].msg);
    }
}

static void test_client_connection_refused(void **state)
{
    fixture_t *fx = *state;
    /* A port that was bound and released: nobody listens there. */
    int fd = loopback_socket();
    uint16_t port = socket_port(fd);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
    kcw_prometheus_conf_t conf = conf_for(url, 5000);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &o), 0);
    run_until(fx, &o.calls, 1);
    assert_true(o.failed);
    assert_int_equal(o.err.kind, KCW_PROM_ERR_TRANSPORT);
    assert_int_equal(o.err.http_status, 0);
    assert_true(strlen(o.err.msg) > 0);
    assert_non_null(strcasestr(o.err.msg, "connect"));
}

static void test_client_timeout(void **state)
{
    fixture_t *fx = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)fx->blackhole_port);
    kcw_prometheus_conf_t conf = conf_for(url, 300);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    outcome_t o = {.fx = fx};
    uv_update_time(&fx->loop);
    uint64_t start = uv_now(&fx->loop);
    assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &o), 0);
    run_until(fx, &o.calls, 1);
    assert_true(o.failed);
    assert_int_equal(o.err.kind, KCW_PROM_ERR_TIMEOUT);
    assert_int_equal(o.err.http_status, 0);
    assert_true(strncmp(o.err.msg, "timeout after 300 ms", 20) == 0);
    /* Not before the timeout, and not long after it. */
    assert_true(o.at_ms - start >= 290);
    assert_true(o.at_ms - start < 5000);
}

static void test_client_free_cancels(void **state)
{
    fixture_t *fx = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)fx->blackhole_port);
    kcw_prometheus_conf_t conf = conf_for(url, 10000);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    outcome_t a = {.fx = fx}, b = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &a), 0);
    assert_int_equal(kcw_prom_query(fx->prom, "down", EVAL_MS, on_result, &b), 0);
    assert_int_equal(kcw_prom_pending(fx->prom), 2);
    /* Let the transfers get under way first. */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    kcw_prom_free(fx->prom);
    fx->prom = NULL;
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.err.kind, KCW_PROM_ERR_CANCELLED);
    assert_int_equal(b.err.kind, KCW_PROM_ERR_CANCELLED);
    assert_string_equal(a.err.msg, "cancelled");
    assert_int_equal(kcw_http_pending(fx->http), 0);
}

/* A callback may free the client; the other query in flight is cancelled. */
static void test_client_free_from_callback(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t conf = conf_for(fx->url, 10000);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    server_answer(&fx->srv, 200, VECTOR_BODY);
    outcome_t a = {.fx = fx, .free_prom = true};
    assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &a), 0);

    /* The second goes to the black hole through a second client. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)fx->blackhole_port);
    kcw_prometheus_conf_t conf2 = conf_for(url, 10000);
    kcw_prom_t *other = kcw_prom_new(fx->http, &conf2);
    assert_non_null(other);
    outcome_t b = {.fx = fx};
    assert_int_equal(kcw_prom_query(other, "up", EVAL_MS, on_result, &b), 0);
    outcome_t c = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, "vector(1)", EVAL_MS, on_result, &c), 0);

    /* Whichever of a and c answers first frees fx->prom, cancelling the other. */
    fx->expired = false;
    assert_int_equal(uv_timer_start(&fx->deadline, on_deadline, DEADLINE_MS, 0), 0);
    while (!fx->expired && a.calls + c.calls < 2)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    assert_int_equal(a.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_null(fx->prom);
    assert_int_equal(b.calls, 0);
    assert_int_equal(kcw_prom_pending(other), 1);
    kcw_prom_free(other);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err.kind, KCW_PROM_ERR_CANCELLED);
    outcome_clear(&a);
    outcome_clear(&c);
}

/* Runs the loop until every one of the n outcomes has had its callback. */
static int run_until_all(fixture_t *fx, outcome_t *o, int n)
{
    fx->expired = false;
    assert_int_equal(uv_timer_start(&fx->deadline, on_deadline, DEADLINE_MS, 0), 0);
    int done = 0;
    while (!fx->expired) {
        done = 0;
        for (int i = 0; i < n; i++)
            done += o[i].calls;
        if (done >= n)
            break;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->deadline);
    return done;
}

#define N_QUEUED (KCW_PROM_MAX_INFLIGHT + 8)

/* A client for url (NULL: the black hole) with N_QUEUED queries started. */
static void start_queued(fixture_t *fx, const char *url, int64_t timeout_ms, outcome_t *o)
{
    char hole[64];
    snprintf(hole, sizeof(hole), "http://127.0.0.1:%u", (unsigned)fx->blackhole_port);
    kcw_prometheus_conf_t conf = conf_for(url ? url : hole, timeout_ms);
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    memset(o, 0, N_QUEUED * sizeof(*o));
    for (int i = 0; i < N_QUEUED; i++) {
        o[i].fx = fx;
        assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, on_result, &o[i]), 0);
    }
}

/* More queries than may be in flight: the rest wait, and all are answered. */
static void test_client_queue_beyond_inflight(void **state)
{
    fixture_t *fx = *state;
    server_answer(&fx->srv, 200, VECTOR_BODY);
    outcome_t o[N_QUEUED];
    start_queued(fx, fx->url, 10000, o);
    assert_int_equal(kcw_prom_pending(fx->prom), N_QUEUED);
    assert_int_equal(kcw_http_pending(fx->http), KCW_PROM_MAX_INFLIGHT);
    assert_int_equal(run_until_all(fx, o, N_QUEUED), N_QUEUED);
    for (int i = 0; i < N_QUEUED; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_false(o[i].failed);
        assert_non_null(o[i].res);
        assert_int_equal(o[i].res->n, 2);
        outcome_clear(&o[i]);
    }
    assert_int_equal(kcw_prom_pending(fx->prom), 0);
    assert_int_equal(server_last(&fx->srv, &fx->seen), N_QUEUED);
    assert_string_equal(fx->seen.query, "up");
    assert_string_equal(fx->seen.time, "1732528800.123");
}

/* A waiting query's timeout runs from kcw_prom_query: against a server that
 * never answers, the queue does not add a second timeout on top of the first. */
static void test_client_queue_timeout(void **state)
{
    fixture_t *fx = *state;
    outcome_t o[N_QUEUED];
    uv_update_time(&fx->loop);
    uint64_t start = uv_now(&fx->loop);
    start_queued(fx, NULL, 1000, o);
    assert_int_equal(run_until_all(fx, o, N_QUEUED), N_QUEUED);
    for (int i = 0; i < N_QUEUED; i++) {
        assert_true(o[i].failed);
        assert_int_equal(o[i].err.kind, KCW_PROM_ERR_TIMEOUT);
        assert_true(o[i].at_ms - start >= 990);
        assert_true(o[i].at_ms - start < 2000);
    }
    assert_int_equal(kcw_prom_pending(fx->prom), 0);
}

/* Freeing the client cancels the waiting queries too, each exactly once. */
static void test_client_free_cancels_waiting(void **state)
{
    fixture_t *fx = *state;
    outcome_t o[N_QUEUED];
    start_queued(fx, NULL, 10000, o);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    kcw_prom_free(fx->prom);
    fx->prom = NULL;
    for (int i = 0; i < N_QUEUED; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].err.kind, KCW_PROM_ERR_CANCELLED);
    }
    assert_int_equal(kcw_http_pending(fx->http), 0);
}

static void test_client_arguments(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t conf = conf_for(NULL, 1000);
    assert_null(kcw_prom_new(fx->http, &conf));
    conf.url = (char *)"";
    assert_null(kcw_prom_new(fx->http, &conf));
    conf.url = fx->url;
    assert_null(kcw_prom_new(NULL, &conf));
    assert_null(kcw_prom_new(fx->http, NULL));
    fx->prom = kcw_prom_new(fx->http, &conf);
    assert_non_null(fx->prom);
    outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_query(fx->prom, NULL, EVAL_MS, on_result, &o), -EINVAL);
    assert_int_equal(kcw_prom_query(fx->prom, "", EVAL_MS, on_result, &o), -EINVAL);
    assert_int_equal(kcw_prom_query(fx->prom, "up", EVAL_MS, NULL, &o), -EINVAL);
    assert_int_equal(kcw_prom_query(NULL, "up", EVAL_MS, on_result, &o), -EINVAL);
    assert_int_equal(kcw_prom_pending(fx->prom), 0);
    assert_int_equal(kcw_prom_pending(NULL), 0);
    kcw_prom_free(NULL);
    assert_int_equal(o.calls, 0);
}

/* --- format_query and the template query cache ------------------------------- */

typedef struct format_outcome {
    int calls;
    char formatted[256];
    kcw_prom_error_t err;
    bool failed;
    fixture_t *fx;
} format_outcome_t;

static void on_format(const char *formatted, const kcw_prom_error_t *err, void *arg)
{
    format_outcome_t *o = arg;
    o->calls++;
    uv_stop(&o->fx->loop);
    assert_true((formatted == NULL) != (err == NULL));
    if (formatted)
        snprintf(o->formatted, sizeof(o->formatted), "%s", formatted);
    else {
        o->failed = true;
        o->err = *err;
    }
}

static void test_client_format_query(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t c = conf_for(fx->url, 5000);
    fx->prom = kcw_prom_new(fx->http, &c);
    assert_non_null(fx->prom);
    server_answer(&fx->srv, 200, "{\"status\":\"success\",\"data\":\"up{a=\\\"b\\\"} == 1\"}");
    format_outcome_t o = {.fx = fx};
    assert_int_equal(kcw_prom_format(fx->prom, "up{a=\"b\"}   ==   1", on_format, &o), 0);
    run_until(fx, &o.calls, 1);
    assert_false(o.failed);
    assert_string_equal(o.formatted, "up{a=\"b\"} == 1");
    server_last(&fx->srv, &fx->seen);
    assert_string_equal(fx->seen.method, "POST");
    assert_non_null(strstr(fx->seen.raw_uri, "/api/v1/format_query"));
    assert_string_equal(fx->seen.query, "up{a=\"b\"}   ==   1");
    assert_null(fx->seen.time); /* no evaluation time: it is not a query */

    /* Prometheus' parse error, verbatim (Debian's 2.42) */
    server_answer(&fx->srv, 400,
                  "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
                  "parameter \\\"query\\\": 1:16: parse error: unclosed left parenthesis\"}");
    o = (format_outcome_t){.fx = fx};
    assert_int_equal(kcw_prom_format(fx->prom, "sum(rate(x[5m])", on_format, &o), 0);
    run_until(fx, &o.calls, 1);
    assert_true(o.failed);
    assert_int_equal(o.err.kind, KCW_PROM_ERR_QUERY);
    assert_string_equal(o.err.type, "bad_data");
    assert_int_equal(o.err.http_status, 400);
    assert_non_null(strstr(o.err.msg, "1:16: parse error: unclosed left parenthesis"));

    /* an old Prometheus: 404 without an API body */
    server_answer(&fx->srv, 404, "404 page not found");
    o = (format_outcome_t){.fx = fx};
    assert_int_equal(kcw_prom_format(fx->prom, "up", on_format, &o), 0);
    run_until(fx, &o.calls, 1);
    assert_true(o.failed);
    assert_int_equal(o.err.kind, KCW_PROM_ERR_HTTP);
    assert_int_equal(o.err.http_status, 404);

    /* cancelled by free: the callback runs once, with "cancelled" */
    o = (format_outcome_t){.fx = fx};
    assert_int_equal(kcw_prom_format(fx->prom, "up", on_format, &o), 0);
    kcw_prom_free(fx->prom);
    fx->prom = NULL;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err.kind, KCW_PROM_ERR_CANCELLED);
}

static int64_t fake_now_ms;

static int64_t fake_now(void)
{
    return fake_now_ms;
}

/* Runs the loop until the cache has nothing in flight. */
static void tquery_settle(fixture_t *fx, kcw_tquery_t *q)
{
    fx->expired = false;
    assert_int_equal(uv_timer_start(&fx->deadline, on_deadline, DEADLINE_MS, 0), 0);
    while (kcw_tquery_pending(q) > 0 && !fx->expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    assert_int_equal(kcw_tquery_pending(q), 0);
}

static void test_tquery_cache(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t c = conf_for(fx->url, 5000);
    fake_now_ms = 1732528800000;
    kcw_tquery_t *q = kcw_tquery_new(fx->http, &c, 10000, fake_now);
    assert_non_null(q);
    server_answer(&fx->srv, 200, VECTOR_BODY);
    const kcw_template_sample_t *s = NULL;
    size_t n = 0;
    char err[256];
    /* new expression: pending, one query out */
    assert_int_equal(kcw_tquery_query(q, "up", &s, &n, err, sizeof(err)), -EAGAIN);
    assert_non_null(strstr(err, "query pending"));
    assert_int_equal(kcw_tquery_pending(q), 1);
    assert_int_equal(kcw_tquery_query(q, "up", &s, &n, err, sizeof(err)), -EAGAIN);
    assert_int_equal(kcw_tquery_pending(q), 1); /* not asked twice */
    tquery_settle(fx, q);
    int asked = server_last(&fx->srv, &fx->seen);
    assert_string_equal(fx->seen.query, "up");
    assert_string_equal(fx->seen.time, "1732528800.000");
    /* answered: the samples, with their labels; fresh: nothing sent */
    assert_int_equal(kcw_tquery_query(q, "up", &s, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(kcw_labels_get(&s[0].labels, "instance"), "w1:5556");
    assert_true(s[0].value == 1 && s[1].value == 0);
    assert_int_equal(kcw_tquery_pending(q), 0);
    /* stale: the old answer now, a refresh in the background */
    fake_now_ms += 10001;
    server_answer(&fx->srv, 422, "{\"status\":\"error\",\"errorType\":\"execution\","
                                 "\"error\":\"many-to-many matching not allowed\"}");
    assert_int_equal(kcw_tquery_query(q, "up", &s, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kcw_tquery_pending(q), 1);
    tquery_settle(fx, q);
    assert_int_equal(server_last(&fx->srv, &fx->seen), asked + 1);
    /* the refresh failed: Prometheus' error is the answer now */
    assert_int_equal(kcw_tquery_query(q, "up", &s, &n, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "many-to-many matching not allowed"));
    /* a query still out when the cache goes: cancelled, nothing leaks */
    assert_int_equal(kcw_tquery_query(q, "other", &s, &n, err, sizeof(err)), -EAGAIN);
    kcw_tquery_free(q);
}

static void test_tquery_bounds(void **state)
{
    fixture_t *fx = *state;
    kcw_prometheus_conf_t c = conf_for(fx->url, 5000);
    fake_now_ms = 1732528800000;
    kcw_tquery_t *q = kcw_tquery_new(fx->http, &c, 1000, fake_now);
    server_answer(&fx->srv, 200, VECTOR_BODY);
    const kcw_template_sample_t *s;
    size_t n;
    char err[256], expr[32];
    for (int i = 0; i < KCW_TQUERY_MAX_ENTRIES; i++) {
        snprintf(expr, sizeof(expr), "up%d", i);
        assert_int_equal(kcw_tquery_query(q, expr, &s, &n, err, sizeof(err)), -EAGAIN);
    }
    assert_int_equal(kcw_tquery_query(q, "one_more", &s, &n, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than 256 distinct template queries"));
    tquery_settle(fx, q);
    /* entries unused for ten TTLs make room again */
    fake_now_ms += 10 * 1000 + 1;
    assert_int_equal(kcw_tquery_query(q, "one_more", &s, &n, err, sizeof(err)), -EAGAIN);
    tquery_settle(fx, q);
    kcw_tquery_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_vector),
        cmocka_unit_test(test_parse_scalar),
        cmocka_unit_test(test_parse_special_floats),
        cmocka_unit_test(test_parse_warnings),
        cmocka_unit_test(test_parse_error_body),
        cmocka_unit_test(test_parse_rejects_matrix_and_string),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_parse_empty_vector),
        cmocka_unit_test(test_parse_large_answers),
        cmocka_unit_test(test_parse_large_too_deep),
        cmocka_unit_test(test_parse_large_error_order),
        cmocka_unit_test(test_parse_large_duplicate_keys),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test_setup_teardown(test_client_get_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_basic_auth_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_long_expr_posts_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_error_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_queue_beyond_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_queue_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_cancels_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_format_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tquery_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tquery_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
