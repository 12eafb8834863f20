/* prom.c: PromQL instant queries against the Prometheus HTTP API (see prom.h).
 *
 * A query leaves as POST {url}/api/v1/query with query=..&time=..&timeout=..
 * form-encoded in the body, through the shared HTTP client, so it never
 * blocks the loop. POST rather than GET because libcurl's cost per request
 * grows with the URL's length (it formats the URL and the request line byte
 * by byte, several times), which made it most of kcwatch's CPU per rule
 * evaluation; a form body is copied once. Prometheus reads both the same. The answer
 * comes back in on_http_done, is classified (transport failure, timeout,
 * HTTP status, Prometheus' own error body) and, when it is a success body,
 * parsed by kcw_prom_parse_response into an instant vector or a scalar that
 * the callback then owns.
 *
 * The parser is pure: jansson builds the tree, every field Prometheus
 * documents for /api/v1/query is checked for its type, and any deviation is
 * reported with the JSON path where it happened, so an operator reading the
 * rule's health can tell a broken proxy from a broken query. */
#include "kcwatch/prom.h"
#include "kcwatch/json_scan.h" /* KCW_JSON_MAX_DEPTH, kcw_json_blank */
#include "kcwatch/url.h"

#include <curl/curl.h> /* CURLcode values in kcw_http_resp_t only; no libcurl calls here */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define DEFAULT_TIMEOUT_MS 10000
#define QUERY_PATH "/api/v1/query"
#define FORMAT_PATH "/api/v1/format_query"
/* How much of a non-API error body (a proxy's HTML, "Service Unavailable")
 * goes into the error message. */
#define HTTP_SNIPPET_MAX 200
/* Answers at least this large are read series by series (parse_sliced). */
#define SLICE_MIN (64u * 1024)

/* libcurl's receive buffer for a query expected to answer small (or not
 * known yet) and for one expected to answer KCW_PROM_LARGE_ANSWER or more;
 * libcurl's 16 KiB between. */
#define SMALL_RECV_BUFFER 4096
#define LARGE_RECV_BUFFER (64 * 1024)

typedef struct query {
    struct query *prev, *next; /* in flight (doubly linked) or waiting (FIFO, next only) */
    kcw_prom_t *prom;
    kcw_prom_cb cb;               /* an instant query, or */
    kcw_prom_format_cb format_cb; /* a format_query */
    void *arg;
    char *form; /* until sent: the form body */
    size_t form_len;
    uint64_t queued_ns; /* when kcw_prom_query took it (uv_hrtime) */
    size_t recv_buffer; /* libcurl's receive buffer for it, 0: libcurl's default */
    int send_error;     /* errno the HTTP client refused it with (queue_pump) */
} query_t;

struct kcw_prom {
    kcw_http_t *http;
    char *query_url;
    char *format_url;
    /* Built once per client (that is, per configuration): the trailing
     * timeout parameter of every query. */
    char timeout_param[48]; /* "&timeout=10s" */
    size_t timeout_param_len;
    int64_t timeout_ms;
    kcw_basic_auth_conf_t basic_auth;
    char *bearer_token;
    kcw_tls_conf_t tls;
    query_t *queries; /* in flight, doubly linked */
    size_t n_queries;
    query_t *waiting, *waiting_tail; /* not yet sent, oldest first */
    size_t n_waiting;
    bool closing;
};

/* --- errors ---------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int
fail(kcw_prom_error_t *err, kcw_prom_err_kind_t kind, int rc, const char *fmt, ...)
{
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return rc;
}

/* Puts "HTTP <status>: " in front of err->msg, keeping what fits. */
static void prefix_status(kcw_prom_error_t *err, long status)
{
    char prefix[32];
    int pl = snprintf(prefix, sizeof(prefix), "HTTP %ld: ", status);
    if (pl < 0 || (size_t)pl >= sizeof(prefix))
        return;
    size_t ml = strnlen(err->msg, sizeof(err->msg) - 1);
    if ((size_t)pl + ml > sizeof(err->msg) - 1)
        ml = sizeof(err->msg) - 1 - (size_t)pl;
    memmove(err->msg + pl, err->msg, ml);
    memcpy(err->msg, prefix, (size_t)pl);
    err->msg[(size_t)pl + ml] = '\0';
}

/* --- parser ---------------------------------------------------------------- */

static void samples_free(kcw_prom_sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_labels_clear(&s[i].metric);
    free(s);
}

static void strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Frees what res holds and leaves it empty. */
static void result_clear(kcw_prom_result_t *res)
{
    samples_free(res->samples, res->n);
    strings_free(res->warnings, res->n_warnings);
    strings_free(res->infos, res->n_infos);
    memset(res, 0, sizeof(*res));
}

void kcw_prom_result_free(kcw_prom_result_t *res)
{
    if (!res)
        return;
    result_clear(res);
    free(res);
}

/* Prometheus formats sample values with Go's strconv.FormatFloat(v, 'f', -1,
 * 64): plain decimals, "NaN", "+Inf", "-Inf"; strtod reads all of them. The
 * whole string must be the number. */
static bool parse_float(const char *s, double *out)
{
    if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' ||
        *s == '\v')
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return false;
    /* ERANGE: out of double's range; strtod already gives +-HUGE_VAL or a
     * denormal/0, which is what the value means. */
    *out = v;
    return true;
}

/* [unix seconds as a JSON number, "value"] -> value and milliseconds. */
static int parse_point(const json_t *pt, const char *where, double *value, int64_t *ts_ms,
                       kcw_prom_error_t *err)
{
    if (!json_is_array(pt) || json_array_size(pt) != 2)
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s: not a [timestamp, \"value\"] pair",
                    where);
    const json_t *ts = json_array_get(pt, 0), *v = json_array_get(pt, 1);
    if (!json_is_number(ts))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s[0]: timestamp is not a number", where);
    double secs = json_number_value(ts);
    /* jansson rejects overflowing literals, so secs is finite; keep ms in int64. */
    if (!(fabs(secs) < 9.0e15))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s[0]: timestamp out of range", where);
    if (!json_is_string(v))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s[1]: value is not a string", where);
    if (!parse_float(json_string_value(v), value))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s[1]: \"%.64s\" is not a number", where,
                    json_string_value(v));
    *ts_ms = llround(secs * 1000.0);
    return 0;
}

static int parse_metric(const json_t *m, size_t idx, kcw_labels_t *out, kcw_prom_error_t *err)
{
    if (!json_is_object(m))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.result[%zu].metric: not an object",
                    idx);
    if (json_object_size(m) > KCW_PROM_MAX_LABELS)
        return fail(err, KCW_PROM_ERR_RESPONSE, -E2BIG,
                    "data.result[%zu].metric: %zu labels, more than the limit of %d", idx,
                    json_object_size(m), KCW_PROM_MAX_LABELS);
    const char *name;
    json_t *val;
    json_object_foreach((json_t *)m, name, val)
    {
        if (!json_is_string(val))
            return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                        "data.result[%zu].metric.%.64s: label value is not a string", idx, name);
        if (*name == '\0')
            return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                        "data.result[%zu].metric: empty label name", idx);
        /* Prometheus never sends empty values (empty means absent); kcw_labels_set
         * drops them likewise. Sorting is done there too. */
        if (kcw_labels_set(out, name, json_string_value(val)) < 0)
            return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_series(const json_t *s, size_t i, kcw_prom_sample_t *smp, kcw_prom_error_t *err);

static int parse_vector(json_t *result, kcw_prom_result_t *res, kcw_prom_error_t *err)
{
    if (!json_is_array(result))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                    "data.result: not an array for resultType \"vector\"");
    size_t n = json_array_size(result);
    if (n > KCW_PROM_MAX_SERIES)
        return fail(err, KCW_PROM_ERR_RESPONSE, -E2BIG,
                    "data.result: %zu series, more than the limit of %d", n, KCW_PROM_MAX_SERIES);
    if (n == 0)
        return 0;
    res->samples = calloc(n, sizeof(*res->samples));
    if (!res->samples)
        return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        /* Counted before filling so a failure half-way frees what was built. */
        res->n = i + 1;
        int rc = parse_series(json_array_get(result, i), i, &res->samples[i], err);
        if (rc < 0)
            return rc;
        /* Done with this series: its part of the tree goes now, so the tree
         * and the samples built from it are not both whole at once (a
         * 1,200-series answer's tree is about 1.4 MB). */
        json_array_set_new(result, i, json_null());
    }
    return 0;
}

/* Series i of a vector answer into *smp. */
static int parse_series(const json_t *s, size_t i, kcw_prom_sample_t *smp, kcw_prom_error_t *err)
{
    if (!json_is_object(s))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.result[%zu]: not an object", i);
    const json_t *metric = json_object_get(s, "metric");
    if (!metric)
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.result[%zu]: \"metric\" missing",
                    i);
    int rc = parse_metric(metric, i, &smp->metric, err);
    if (rc < 0)
        return rc;
    const json_t *value = json_object_get(s, "value");
    if (!value) {
        if (json_object_get(s, "histogram"))
            return fail(err, KCW_PROM_ERR_RESPONSE, -ENOTSUP,
                        "data.result[%zu]: native histogram sample; alerting rules need "
                        "float samples",
                        i);
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.result[%zu]: \"value\" missing",
                    i);
    }
    char where[48];
    snprintf(where, sizeof(where), "data.result[%zu].value", i);
    return parse_point(value, where, &smp->value, &smp->ts_ms, err);
}

/* warnings/infos: absent, null or an array of strings. */
static int parse_notes(const json_t *root, const char *key, char ***out, size_t *n_out,
                       kcw_prom_error_t *err)
{
    const json_t *arr = json_object_get(root, key);
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s: not an array", key);
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(arr, i)))
            return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "%s[%zu]: not a string", key, i);
    if (n > KCW_PROM_MAX_WARNINGS)
        n = KCW_PROM_MAX_WARNINGS;
    if (n == 0)
        return 0;
    *out = calloc(n, sizeof(**out));
    if (!*out)
        return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = strdup(json_string_value(json_array_get(arr, i)));
        if (!(*out)[i])
            return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
        *n_out = i + 1;
    }
    return 0;
}

/* {"status":"error","errorType":"bad_data","error":"..."}: Prometheus' words. */
static int parse_error_body(const json_t *root, kcw_prom_error_t *err)
{
    const json_t *type = json_object_get(root, "errorType");
    const json_t *msg = json_object_get(root, "error");
    if (type && !json_is_string(type))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "errorType: not a string");
    if (msg && !json_is_string(msg))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "error: not a string");
    const char *t = type ? json_string_value(type) : "";
    const char *m = msg ? json_string_value(msg) : "(no error message)";
    snprintf(err->type, sizeof(err->type), "%s", t);
    if (*t)
        return fail(err, KCW_PROM_ERR_QUERY, -EREMOTEIO, "%s: %s", t, m);
    return fail(err, KCW_PROM_ERR_QUERY, -EREMOTEIO, "%s", m);
}

static int parse_root(const json_t *root, kcw_prom_result_t *res, kcw_prom_error_t *err)
{
    if (!json_is_object(root))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "response is not a JSON object");
    const json_t *status = json_object_get(root, "status");
    if (!status)
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "status: missing");
    if (!json_is_string(status))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "status: not a string");
    const char *st = json_string_value(status);
    if (strcmp(st, "error") == 0)
        return parse_error_body(root, err);
    if (strcmp(st, "success") != 0)
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                    "status: \"%.32s\", expected \"success\" or \"error\"", st);

    const json_t *data = json_object_get(root, "data");
    if (!json_is_object(data))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data: %s",
                    data ? "not an object" : "missing");
    const json_t *rtype = json_object_get(data, "resultType");
    if (!json_is_string(rtype))
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.resultType: %s",
                    rtype ? "not a string" : "missing");
    json_t *result = json_object_get(data, "result");
    if (!result)
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.result: missing");

    const char *rt = json_string_value(rtype);
    int rc;
    if (strcmp(rt, "vector") == 0) {
        res->type = KCW_PROM_VECTOR;
        rc = parse_vector(result, res, err);
    } else if (strcmp(rt, "scalar") == 0) {
        res->type = KCW_PROM_SCALAR;
        rc = parse_point(result, "data.result", &res->scalar, &res->scalar_ts_ms, err);
    } else if (strcmp(rt, "matrix") == 0 || strcmp(rt, "string") == 0) {
        return fail(err, KCW_PROM_ERR_RESPONSE, -ENOTSUP,
                    "query returned a %s; alerting rules need an instant vector or a scalar", rt);
    } else {
        return fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data.resultType: unknown \"%.32s\"", rt);
    }
    if (rc < 0)
        return rc;
    rc = parse_notes(root, "warnings", &res->warnings, &res->n_warnings, err);
    if (rc < 0)
        return rc;
    return parse_notes(root, "infos", &res->infos, &res->n_infos, err);
}

/* A response body as JSON; NULL with err filled and *rc set when there is
 * no output to fill (has_out false), no body, or no JSON. */
static json_t *load_body(const char *body, size_t len, bool has_out, kcw_prom_error_t *err,
                         int *rc)
{
    memset(err, 0, sizeof(*err));
    if (!has_out || (!body && len > 0)) {
        *rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "no response buffer");
        return NULL;
    }
    if (!body || len == 0) {
        *rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "empty response body");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        *rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                   "response is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                   jerr.column);
    return root;
}

/* Prometheus' whole answer to an instant query with an empty result: what
 * an alerting rule gets nearly always (nothing firing). It is recognised by
 * its bytes and read without building a JSON tree, which costs more than
 * the rest of the evaluation; every other body (with warnings or infos,
 * spaced differently, anything else) goes to jansson. test_prom.c holds the
 * two readings equal. */
static const char EMPTY_VECTOR[] =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";

/* --- a large vector answer, series by series --------------------------------
 *
 * jansson's tree of a 1,200-series answer is about 1.9 MB with the
 * allocator's overhead, held whole at the end of json_loadb, beside the
 * body: the peak of kcwatch's memory. Prometheus (like the servers that
 * answer in its place) writes a vector answer as VECTOR_PREFIX, the series,
 * "]" and the rest of the document (warnings, infos, closing braces). So
 * jansson reads the series one at a time where the prefix ends
 * (JSON_DISABLE_EOF_CHECK: it stops after the value and says how many bytes
 * it took), this code checks that only blanks and one ',' lie between them,
 * and jansson then reads the prefix, "]" and the rest as one document, with
 * duplicated keys refused, through the same parse_root as a whole answer.
 * Every byte passes jansson but those separators; one series' tree is held
 * at a time and nothing else is allocated for the body. Anything else (an
 * answer spaced or ordered otherwise, any error, a series that might nest
 * deeper than jansson allows in the whole document) goes to the whole-tree
 * reading, which gives the exact result or error; test_prom.c and the fuzz
 * target hold both readings equal. */
static const char VECTOR_PREFIX[] =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[";

/* The root object, data and the result array hold each series. */
#define SERIES_MAX_DEPTH (KCW_JSON_MAX_DEPTH - 3)

/* An upper bound of how deep body[0, len) nests. */
static size_t brackets(const char *body, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += body[i] == '[' || body[i] == '{';
    return n;
}

static unsigned long sliced_reads; /* answers read series by series */

unsigned long kcw_prom_sliced_reads(void)
{
    return sliced_reads;
}

/* One series at body[*pos]: 0 with *pos past it and the separator after it
 * (*last set when that was the array's ']'), or 1. */
static int next_series(const char *body, size_t len, size_t *pos, kcw_prom_result_t *res,
                       size_t *cap, bool *last)
{
    json_error_t jerr;
    json_t *one = json_loadb(body + *pos, len - *pos, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!one)
        return 1;
    size_t end = *pos + (size_t)jerr.position;
    if (jerr.position <= 0 || end > len || brackets(body + *pos, end - *pos) > SERIES_MAX_DEPTH ||
        res->n == KCW_PROM_MAX_SERIES) {
        json_decref(one);
        return 1;
    }
    if (res->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        kcw_prom_sample_t *more = realloc(res->samples, c * sizeof(*more));
        if (!more) {
            json_decref(one);
            return 1;
        }
        memset(more + *cap, 0, (c - *cap) * sizeof(*more));
        res->samples = more;
        *cap = c;
    }
    kcw_prom_error_t scratch;
    int r = parse_series(one, res->n, &res->samples[res->n], &scratch);
    json_decref(one);
    res->n++; /* what parse_series left is freed with the rest */
    if (r < 0)
        return 1;
    while (end < len && kcw_json_blank(body[end]))
        end++;
    if (end == len || (body[end] != ',' && body[end] != ']'))
        return 1;
    *last = body[end] == ']';
    end++;
    while (!*last && end < len && kcw_json_blank(body[end]))
        end++;
    *pos = end;
    return 0;
}

/* 0 with res filled, or 1: read it whole. Errors of any kind are left to the
 * whole-tree reading: it reports a byte that is not JSON before a series
 * that is wrong, wherever the two lie. */
static int parse_sliced(const char *body, size_t len, kcw_prom_result_t *res)
{
    const size_t plen = sizeof(VECTOR_PREFIX) - 1;
    if (len < SLICE_MIN || memcmp(body, VECTOR_PREFIX, plen) != 0)
        return 1;
    size_t pos = plen, cap = 0;
    bool last = false;
    while (pos < len && kcw_json_blank(body[pos]))
        pos++;
    if (pos < len && body[pos] == ']') {
        last = true;
        pos++;
    }
    while (!last)
        if (next_series(body, len, &pos, res, &cap, &last) != 0)
            goto whole;
    /* The prefix, "]" and the rest. */
    size_t skel_len = plen + 1 + (len - pos);
    char *skel = malloc(skel_len);
    if (!skel)
        goto whole;
    memcpy(skel, VECTOR_PREFIX, plen);
    skel[plen] = ']';
    memcpy(skel + plen + 1, body + pos, len - pos);
    json_error_t jerr;
    json_t *root = json_loadb(skel, skel_len, JSON_REJECT_DUPLICATES, &jerr);
    free(skel);
    if (!root)
        goto whole;
    kcw_prom_result_t frame = {0};
    kcw_prom_error_t scratch;
    int r = parse_root(root, &frame, &scratch);
    json_decref(root);
    if (r < 0 || frame.type != KCW_PROM_VECTOR) {
        result_clear(&frame);
        goto whole;
    }
    frame.samples = res->samples;
    frame.n = res->n;
    *res = frame;
    sliced_reads++;
    return 0;
whole:
    result_clear(res);
    return 1;
}

/* The whole-tree reading of an answer. */
static int parse_whole(const char *body, size_t len, kcw_prom_result_t **out, kcw_prom_error_t *err)
{
    int rc = 0;
    json_t *root = load_body(body, len, out != NULL, err, &rc);
    if (!root)
        return rc;
    kcw_prom_result_t *res = calloc(1, sizeof(*res));
    if (!res) {
        json_decref(root);
        return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    }
    rc = parse_root(root, res, err);
    json_decref(root);
    if (rc < 0) {
        kcw_prom_result_free(res);
        return rc;
    }
    *out = res;
    return 0;
}

/* The whole-tree reading alone (whole), or with its shortcuts. */
static int parse_answer(const char *body, size_t len, kcw_prom_result_t **out,
                        kcw_prom_error_t *err, bool whole)
{
    kcw_prom_error_t scratch;
    if (!err)
        err = &scratch;
    if (out)
        *out = NULL;
    if (whole || !out || !body)
        return parse_whole(body, len, out, err);
    if (len == sizeof(EMPTY_VECTOR) - 1 && memcmp(body, EMPTY_VECTOR, len) == 0) {
        memset(err, 0, sizeof(*err));
        kcw_prom_result_t *res = calloc(1, sizeof(*res));
        if (!res)
            return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
        res->type = KCW_PROM_VECTOR;
        *out = res;
        return 0;
    }
    if (len < SLICE_MIN)
        return parse_whole(body, len, out, err);
    kcw_prom_result_t *res = calloc(1, sizeof(*res));
    if (!res)
        return fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    if (parse_sliced(body, len, res) == 0) {
        memset(err, 0, sizeof(*err));
        *out = res;
        return 0;
    }
    free(res);
    return parse_whole(body, len, out, err);
}

int kcw_prom_parse_whole(const char *body, size_t len, kcw_prom_result_t **out,
                         kcw_prom_error_t *err)
{
    return parse_answer(body, len, out, err, true);
}

int kcw_prom_parse_response(const char *body, size_t len, kcw_prom_result_t **out,
                            kcw_prom_error_t *err)
{
    return parse_answer(body, len, out, err, false);
}

int kcw_prom_parse_format_response(const char *body, size_t len, char **formatted,
                                   kcw_prom_error_t *err)
{
    kcw_prom_error_t scratch;
    if (!err)
        err = &scratch;
    if (formatted)
        *formatted = NULL;
    int rc = 0;
    json_t *root = load_body(body, len, formatted != NULL, err, &rc);
    if (!root)
        return rc;
    const json_t *status = json_is_object(root) ? json_object_get(root, "status") : NULL;
    const json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    if (!json_is_object(root))
        rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "response is not a JSON object");
    else if (!json_is_string(status))
        rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "status: %s",
                  status ? "not a string" : "missing");
    else if (strcmp(json_string_value(status), "error") == 0)
        rc = parse_error_body(root, err);
    else if (strcmp(json_string_value(status), "success") != 0)
        rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL,
                  "status: \"%.32s\", expected \"success\" or \"error\"",
                  json_string_value(status));
    else if (!json_is_string(data))
        rc = fail(err, KCW_PROM_ERR_RESPONSE, -EINVAL, "data: %s",
                  data ? "not a string" : "missing");
    else if (!(*formatted = strdup(json_string_value(data))))
        rc = fail(err, KCW_PROM_ERR_RESPONSE, -ENOMEM, "out of memory");
    else
        rc = 0;
    json_decref(root);
    return rc;
}

/* --- client ---------------------------------------------------------------- */

/* RFC 3986 unreserved characters stay, everything else (UTF-8 bytes
 * included) becomes %XX, which Go's url.ParseQuery decodes (form bodies
 * too). Notably '+' must
 * be escaped or it would arrive as a space. Kept here rather than calling
 * libcurl's escaper because http_client.c is the only libcurl user. */
static inline bool url_unreserved(unsigned char c)
{
    /* bit c: '-' '.' '0'-'9' in the first word; 'A'-'Z' '_' 'a'-'z' '~' in the second */
    static const uint64_t set[2] = {
        (UINT64_C(1) << '-') | (UINT64_C(1) << '.') | (UINT64_C(0x3FF) << '0'),
        (UINT64_C(0x3FFFFFF) << ('A' - 64)) | (UINT64_C(1) << ('_' - 64)) |
            (UINT64_C(0x3FFFFFF) << ('a' - 64)) | (UINT64_C(1) << ('~' - 64)),
    };
    return c < 128 && ((set[c >> 6] >> (c & 63)) & 1);
}

/* Length of s once encoded, SIZE_MAX when that does not fit a size_t. */
static size_t url_encoded_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += url_unreserved((unsigned char)*s) ? 1 : 3;
        if (n > SIZE_MAX / 2)
            return SIZE_MAX;
    }
    return n;
}

/* Writes s encoded at out (url_encoded_len(s) bytes, no NUL); returns the end. */
static char *url_encode_to(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (url_unreserved(c)) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0x0f];
        }
    }
    return out;
}

/* Unix seconds with milliseconds, "1732528800.123"; the sign is printed
 * separately so -1500 ms reads "-1.500", not "-2.500". */
static void format_time(int64_t ms, char *buf, size_t n)
{
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    snprintf(buf, n, "%s%" PRIu64 ".%03" PRIu64, ms < 0 ? "-" : "", a / 1000, a % 1000);
}

/* Prometheus reads timeout as float seconds or a Prometheus duration; "2.5s"
 * is neither, so fractions go out in milliseconds. */
static void format_timeout(int64_t ms, char *buf, size_t n)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, n, "%" PRId64 "ms", ms);
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

static void prom_release(kcw_prom_t *prom)
{
    free(prom->query_url);
    free(prom->format_url);
    free(prom->basic_auth.username);
    free(prom->basic_auth.password);
    free(prom->bearer_token);
    free(prom->tls.ca_file);
    free(prom->tls.cert_file);
    free(prom->tls.key_file);
    free(prom);
}

kcw_prom_t *kcw_prom_new(kcw_http_t *http, const kcw_prometheus_conf_t *conf)
{
    if (!http || !conf || !conf->url || !*conf->url)
        return NULL;
    kcw_prom_t *prom = calloc(1, sizeof(*prom));
    if (!prom)
        return NULL;
    prom->http = http;
    prom->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : DEFAULT_TIMEOUT_MS;

    /* A base URL with a path prefix (behind a proxy) keeps it, and so does
     * its query; a trailing slash must not double. */
    kcw_url_register_secrets(conf->url);
    prom->query_url = kcw_url_join(conf->url, QUERY_PATH);
    prom->format_url = kcw_url_join(conf->url, FORMAT_PATH);
    if (!prom->query_url || !prom->format_url) {
        prom_release(prom);
        return NULL;
    }
    /* The server-side timeout stops Prometheus working on a query nobody
     * waits for any more once our transfer has given up. */
    char timeout[32];
    format_timeout(prom->timeout_ms, timeout, sizeof(timeout));
    snprintf(prom->timeout_param, sizeof(prom->timeout_param), "&timeout=%s", timeout);
    prom->timeout_param_len = strlen(prom->timeout_param);
    prom->tls.insecure = conf->tls.insecure;
    if (dup_opt(&prom->basic_auth.username, conf->basic_auth.username) < 0 ||
        dup_opt(&prom->basic_auth.password, conf->basic_auth.password) < 0 ||
        dup_opt(&prom->bearer_token, conf->bearer_token) < 0 ||
        dup_opt(&prom->tls.ca_file, conf->tls.ca_file) < 0 ||
        dup_opt(&prom->tls.cert_file, conf->tls.cert_file) < 0 ||
        dup_opt(&prom->tls.key_file, conf->tls.key_file) < 0) {
        prom_release(prom);
        return NULL;
    }
    return prom;
}

static void query_unlink(kcw_prom_t *prom, query_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        prom->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    prom->n_queries--;
}

/* Printable excerpt of a body that is not Prometheus JSON (a proxy's page). */
static void body_snippet(const kcw_http_resp_t *resp, char *buf, size_t n)
{
    size_t len = resp->body_len < HTTP_SNIPPET_MAX ? resp->body_len : HTTP_SNIPPET_MAX;
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)resp->body[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    buf[len] = '\0';
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
}

/* Turns the HTTP outcome into a result or a classified error. */
/* formatted: NULL for an instant query; else the body is a format_query
 * answer and its data lands there (the return value is then NULL). */
static kcw_prom_result_t *classify(const kcw_prom_t *prom, const kcw_http_resp_t *resp,
                                   kcw_prom_error_t *err, char **formatted)
{
    memset(err, 0, sizeof(*err));
    err->http_status = resp->status;
    switch (resp->curl_code) {
    case CURLE_OK:
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        /* The HTTP client says "cancelled" when its owner or its close did it;
         * otherwise the client itself failed (its reason is in the error). */
        if (strcmp(resp->error, "cancelled") != 0) {
            fail(err, KCW_PROM_ERR_TRANSPORT, 0, "%s", resp->error);
            return NULL;
        }
        fail(err, KCW_PROM_ERR_CANCELLED, 0, "cancelled");
        return NULL;
    case CURLE_OPERATION_TIMEDOUT:
        fail(err, KCW_PROM_ERR_TIMEOUT, 0, "timeout after %" PRId64 " ms: %s", prom->timeout_ms,
             resp->error);
        return NULL;
    case CURLE_WRITE_ERROR: /* the body went over KCW_PROM_MAX_BODY */
        fail(err, KCW_PROM_ERR_RESPONSE, 0, "%s", resp->error);
        return NULL;
    default:
        fail(err, KCW_PROM_ERR_TRANSPORT, 0, "%s",
             resp->error[0] ? resp->error : "transfer failed");
        return NULL;
    }

    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t perr;
    int rc = formatted
                 ? kcw_prom_parse_format_response(resp->body, resp->body_len, formatted, &perr)
                 : kcw_prom_parse_response(resp->body, resp->body_len, &res, &perr);
    if (resp->status >= 200 && resp->status < 300) {
        if (rc == 0) {
            if (res)
                res->body_bytes = resp->body_len;
            return res;
        }
        *err = perr;
        err->http_status = resp->status;
        return NULL;
    }
    kcw_prom_result_free(res);
    if (formatted) {
        free(*formatted);
        *formatted = NULL;
    }
    if (rc == -EREMOTEIO) {
        /* 400 bad_data, 422 execution, 503 timeout/unavailable, 500 internal... */
        *err = perr;
        err->http_status = resp->status;
        prefix_status(err, resp->status);
        return NULL;
    }
    char snippet[HTTP_SNIPPET_MAX + 1];
    body_snippet(resp, snippet, sizeof(snippet));
    if (snippet[0])
        fail(err, KCW_PROM_ERR_HTTP, 0, "HTTP %ld: %s", resp->status, snippet);
    else
        fail(err, KCW_PROM_ERR_HTTP, 0, "HTTP %ld", resp->status);
    return NULL;
}

static void on_http_done(const kcw_http_resp_t *resp, void *arg);

static void query_free(query_t *q)
{
    free(q->form);
    free(q);
}

/* Runs the callback of q, which is in no list, with an error and frees it. */
static void query_fail(query_t *q, kcw_prom_err_kind_t kind, const char *msg)
{
    kcw_prom_error_t err;
    memset(&err, 0, sizeof(err));
    fail(&err, kind, 0, "%s", msg);
    kcw_prom_cb cb = q->cb;
    kcw_prom_format_cb fcb = q->format_cb;
    void *cb_arg = q->arg;
    query_free(q);
    if (fcb)
        fcb(NULL, &err, cb_arg);
    else
        cb(NULL, &err, cb_arg);
}

/* Sends q (which is in no list) and links it in flight. The transfer's
 * timeout is what remains of the query's after its wait in the queue; one
 * whose time ran out while waiting still goes out with 1 ms, so that it fails
 * as a timeout through the HTTP client like any other, on the loop. */
static int query_send(kcw_prom_t *prom, query_t *q)
{
    int64_t waited_ms = (int64_t)((uv_hrtime() - q->queued_ns) / 1000000u);
    int64_t timeout_ms = prom->timeout_ms - waited_ms;
    kcw_http_req_t req = {
        .method = "POST",
        .url = q->format_cb ? prom->format_url : prom->query_url,
        .body = q->form,
        .body_len = q->form_len,
        .form = true,
        .timeout_ms = timeout_ms > 0 ? timeout_ms : 1,
        .max_body = KCW_PROM_MAX_BODY,
        .basic_auth = &prom->basic_auth,
        .bearer_token = prom->bearer_token,
        .tls = &prom->tls,
        .url_reused = true,
        .recv_buffer = q->recv_buffer,
    };
    int rc = kcw_http_request(prom->http, &req, on_http_done, q);
    if (rc < 0)
        return rc;
    /* The request copied the body: it is not needed any more. */
    free(q->form);
    q->form = NULL;
    q->next = prom->queries;
    if (prom->queries)
        prom->queries->prev = q;
    prom->queries = q;
    prom->n_queries++;
    return 0;
}

/* Sends waiting queries while fewer than KCW_PROM_MAX_INFLIGHT are in
 * flight. Those the HTTP client refused are returned (unlinked, in order) for
 * the caller to fail once it no longer touches prom. */
static query_t *queue_pump(kcw_prom_t *prom)
{
    query_t *failed = NULL, **failed_tail = &failed;
    while (!prom->closing && prom->waiting && prom->n_queries < KCW_PROM_MAX_INFLIGHT) {
        query_t *q = prom->waiting;
        prom->waiting = q->next;
        if (!prom->waiting)
            prom->waiting_tail = NULL;
        prom->n_waiting--;
        q->next = NULL;
        int rc = query_send(prom, q);
        if (rc < 0) {
            q->send_error = -rc;
            *failed_tail = q;
            failed_tail = &q->next;
        }
    }
    return failed;
}

/* Runs the callbacks of the queries queue_pump could not send. */
static void queue_fail(query_t *failed)
{
    while (failed) {
        query_t *q = failed;
        failed = q->next;
        if (q->send_error == ESHUTDOWN) {
            query_fail(q, KCW_PROM_ERR_CANCELLED, "cancelled");
        } else {
            char msg[128];
            snprintf(msg, sizeof(msg), "query not sent: %s", strerror(q->send_error));
            query_fail(q, KCW_PROM_ERR_TRANSPORT, msg);
        }
    }
}

static void on_http_done(const kcw_http_resp_t *resp, void *arg)
{
    query_t *q = arg;
    kcw_prom_t *prom = q->prom;
    query_unlink(prom, q);
    kcw_prom_error_t err;
    if (q->format_cb) {
        char *formatted = NULL;
        classify(prom, resp, &err, &formatted);
        kcw_prom_format_cb fcb = q->format_cb;
        void *fcb_arg = q->arg;
        query_free(q);
        query_t *failed = queue_pump(prom);
        fcb(formatted, formatted ? NULL : &err, fcb_arg);
        free(formatted);
        queue_fail(failed);
        return;
    }
    kcw_prom_result_t *res = classify(prom, resp, &err, NULL);
    kcw_prom_cb cb = q->cb;
    void *cb_arg = q->arg;
    query_free(q);
    /* The slot is free: the next waiting query goes out before the callback,
     * which may free prom; nothing touches prom after it. */
    query_t *failed = queue_pump(prom);
    if (res)
        cb(res, NULL, cb_arg);
    else
        cb(NULL, &err, cb_arg);
    queue_fail(failed);
}

/* Queues query={expr}{extra} (extra: "&name=value..." already encoded, may
 * be empty) for the instant query or format_query URL, sending it at once
 * while fewer than KCW_PROM_MAX_INFLIGHT are in flight. */
static int query_start(kcw_prom_t *prom, const char *expr, const char *extra, size_t extra_len,
                       size_t recv_buffer, kcw_prom_cb cb, kcw_prom_format_cb fcb, void *arg)
{
    size_t enc_len = url_encoded_len(expr);
    if (enc_len == SIZE_MAX)
        return -E2BIG;
    query_t *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    static const char query_param[] = "query=";
    q->form_len = sizeof(query_param) - 1 + enc_len + extra_len;
    q->form = malloc(q->form_len + 1);
    if (!q->form) {
        free(q);
        return -ENOMEM;
    }
    char *p = q->form;
    memcpy(p, query_param, sizeof(query_param) - 1);
    p = url_encode_to(p + sizeof(query_param) - 1, expr);
    memcpy(p, extra, extra_len);
    p[extra_len] = '\0';
    q->prom = prom;
    q->cb = cb;
    q->format_cb = fcb;
    q->arg = arg;
    q->queued_ns = uv_hrtime();
    q->recv_buffer = recv_buffer;

    if (prom->n_queries < KCW_PROM_MAX_INFLIGHT && !prom->waiting) {
        int rc = query_send(prom, q);
        if (rc < 0)
            query_free(q);
        return rc;
    }
    if (prom->waiting_tail)
        prom->waiting_tail->next = q;
    else
        prom->waiting = q;
    prom->waiting_tail = q;
    prom->n_waiting++;
    return 0;
}

int kcw_prom_query(kcw_prom_t *prom, const char *expr, int64_t eval_time_ms, kcw_prom_cb cb,
                   void *arg)
{
    return kcw_prom_query_sized(prom, expr, eval_time_ms, 0, cb, arg);
}

int kcw_prom_query_sized(kcw_prom_t *prom, const char *expr, int64_t eval_time_ms,
                         size_t expect_bytes, kcw_prom_cb cb, void *arg)
{
    if (!prom || !expr || !*expr || !cb)
        return -EINVAL;
    if (prom->closing)
        return -ESHUTDOWN;
    /* &time={when}&timeout={timeout} */
    char extra[96];
    static const char time_param[] = "&time=";
    memcpy(extra, time_param, sizeof(time_param) - 1);
    format_time(eval_time_ms, extra + sizeof(time_param) - 1,
                sizeof(extra) - (sizeof(time_param) - 1) - sizeof(prom->timeout_param));
    size_t len = strlen(extra);
    memcpy(extra + len, prom->timeout_param, prom->timeout_param_len + 1);
    /* Every transfer in flight holds its receive buffer: 16 of libcurl's
     * 16 KiB for a round of empty answers was a quarter of the heap, and
     * the heap keeps the pages of its largest round. Unknown is taken as
     * small: most rules answer nothing most of the time. */
    size_t recv_buffer = SMALL_RECV_BUFFER;
    if (expect_bytes > KCW_PROM_SMALL_ANSWER)
        recv_buffer = expect_bytes >= KCW_PROM_LARGE_ANSWER ? LARGE_RECV_BUFFER : 0;
    return query_start(prom, expr, extra, len + prom->timeout_param_len, recv_buffer, cb, NULL,
                       arg);
}

int kcw_prom_format(kcw_prom_t *prom, const char *expr, kcw_prom_format_cb cb, void *arg)
{
    if (!prom || !expr || !*expr || !cb)
        return -EINVAL;
    if (prom->closing)
        return -ESHUTDOWN;
    return query_start(prom, expr, "", 0, SMALL_RECV_BUFFER, NULL, cb, arg);
}

size_t kcw_prom_pending(const kcw_prom_t *prom)
{
    return prom ? prom->n_queries + prom->n_waiting : 0;
}

void kcw_prom_free(kcw_prom_t *prom)
{
    /* A callback run by the cancellation below may call this again. */
    if (!prom || prom->closing)
        return;
    prom->closing = true;
    while (prom->queries) {
        query_t *q = prom->queries;
        if (kcw_http_cancel(prom->http, q) > 0)
            continue; /* on_http_done unlinked and finished it */
        /* The HTTP client no longer knows it: finish it here so its
         * callback still runs exactly once. */
        query_unlink(prom, q);
        query_fail(q, KCW_PROM_ERR_CANCELLED, "cancelled");
    }
    /* Queries that never left: closing stopped queue_pump from sending them. */
    while (prom->waiting) {
        query_t *q = prom->waiting;
        prom->waiting = q->next;
        prom->n_waiting--;
        query_fail(q, KCW_PROM_ERR_CANCELLED, "cancelled");
    }
    prom->waiting_tail = NULL;
    prom_release(prom);
}
