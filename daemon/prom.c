/* prom.c: PromQL instant queries against the Prometheus HTTP API (see prom.h).
 *
 * A query leaves as GET {url}/api/v1/query?query=..&time=..&timeout=.. (or the
 * same parameters form-encoded in a POST body when the expression is long)
 * through the shared HTTP client, so it never blocks the loop. The answer
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
#include "kcwatch/url.h"

#include <curl/curl.h> /* CURLcode values in kcw_http_resp_t only; no libcurl calls here */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
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

typedef struct query {
    struct query *prev, *next;
    kcw_prom_t *prom;
    kcw_prom_cb cb;               /* an instant query, or */
    kcw_prom_format_cb format_cb; /* a format_query */
    void *arg;
} query_t;

struct kcw_prom {
    kcw_http_t *http;
    char *query_url;
    char *format_url;
    int64_t timeout_ms;
    kcw_basic_auth_conf_t basic_auth;
    char *bearer_token;
    kcw_tls_conf_t tls;
    query_t *queries; /* in flight, doubly linked */
    size_t n_queries;
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

void kcw_prom_result_free(kcw_prom_result_t *res)
{
    if (!res)
        return;
    samples_free(res->samples, res->n);
    strings_free(res->warnings, res->n_warnings);
    strings_free(res->infos, res->n_infos);
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

static int parse_vector(const json_t *result, kcw_prom_result_t *res, kcw_prom_error_t *err)
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
        const json_t *s = json_array_get(result, i);
        kcw_prom_sample_t *smp = &res->samples[i];
        /* Counted before filling so a failure half-way frees what was built. */
        res->n = i + 1;
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
        rc = parse_point(value, where, &smp->value, &smp->ts_ms, err);
        if (rc < 0)
            return rc;
    }
    return 0;
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
    const json_t *result = json_object_get(data, "result");
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

int kcw_prom_parse_response(const char *body, size_t len, kcw_prom_result_t **out,
                            kcw_prom_error_t *err)
{
    kcw_prom_error_t scratch;
    if (!err)
        err = &scratch;
    if (out)
        *out = NULL;
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
        if (rc == 0)
            return res;
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
        free(q);
        fcb(formatted, formatted ? NULL : &err, fcb_arg);
        free(formatted);
        return;
    }
    kcw_prom_result_t *res = classify(prom, resp, &err, NULL);
    kcw_prom_cb cb = q->cb;
    void *cb_arg = q->arg;
    free(q);
    /* The callback may free prom: nothing touches it after this. */
    if (res)
        cb(res, NULL, cb_arg);
    else
        cb(NULL, &err, cb_arg);
}

/* Sends params (URL-encoded, n bytes) to base as a GET, or as a form POST
 * when the query is long, with q as the transfer's argument; q is linked
 * into the in-flight list on success. */
static int send_params(kcw_prom_t *prom, const char *base, char *params, int n, bool post,
                       query_t *q)
{
    static const char *const form_headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                               NULL};
    kcw_http_req_t req = {
        .method = post ? "POST" : "GET",
        .timeout_ms = prom->timeout_ms,
        .max_body = KCW_PROM_MAX_BODY,
        .basic_auth = &prom->basic_auth,
        .bearer_token = prom->bearer_token,
        .tls = &prom->tls,
    };
    char *url = NULL;
    if (post) {
        req.url = base;
        req.body = params;
        req.body_len = (size_t)n;
        req.headers = form_headers;
    } else {
        /* base came out of kcw_url_join: it has a '?' only when the
         * configured URL has a query of its own, which stays first. */
        if (asprintf(&url, "%s%c%s", base, strchr(base, '?') ? '&' : '?', params) < 0)
            return -ENOMEM;
        req.url = url;
    }
    int rc = kcw_http_request(prom->http, &req, on_http_done, q);
    free(url);
    if (rc < 0)
        return rc;
    q->next = prom->queries;
    if (prom->queries)
        prom->queries->prev = q;
    prom->queries = q;
    prom->n_queries++;
    return 0;
}

/* Sends query=EXPR plus extra ("&name=value...") to base; the answer goes
 * to cb (an instant query) or fcb (a format_query). */
static int start_query(kcw_prom_t *prom, const char *base, const char *expr, const char *extra,
                       kcw_prom_cb cb, kcw_prom_format_cb fcb, void *arg)
{
    char *enc = kcw_url_escape(expr, false); /* '+' must not arrive as a space */
    if (!enc)
        return -ENOMEM;
    char *params = NULL;
    int n = asprintf(&params, "query=%s%s", enc, extra);
    bool post = strlen(enc) > KCW_PROM_MAX_GET_QUERY;
    free(enc);
    if (n < 0)
        return -ENOMEM;
    query_t *q = calloc(1, sizeof(*q));
    if (!q) {
        free(params);
        return -ENOMEM;
    }
    q->prom = prom;
    q->cb = cb;
    q->format_cb = fcb;
    q->arg = arg;
    int rc = send_params(prom, base, params, n, post, q);
    free(params);
    if (rc < 0)
        free(q);
    return rc;
}

int kcw_prom_query(kcw_prom_t *prom, const char *expr, int64_t eval_time_ms, kcw_prom_cb cb,
                   void *arg)
{
    if (!prom || !expr || !*expr || !cb)
        return -EINVAL;
    if (prom->closing)
        return -ESHUTDOWN;

    char when[32], timeout[32], extra[96];
    format_time(eval_time_ms, when, sizeof(when));
    format_timeout(prom->timeout_ms, timeout, sizeof(timeout));
    /* The server-side timeout stops Prometheus working on a query nobody
     * waits for any more once our transfer has given up. */
    snprintf(extra, sizeof(extra), "&time=%s&timeout=%s", when, timeout);
    return start_query(prom, prom->query_url, expr, extra, cb, NULL, arg);
}

int kcw_prom_format(kcw_prom_t *prom, const char *expr, kcw_prom_format_cb cb, void *arg)
{
    if (!prom || !expr || !*expr || !cb)
        return -EINVAL;
    if (prom->closing)
        return -ESHUTDOWN;
    return start_query(prom, prom->format_url, expr, "", NULL, cb, arg);
}

size_t kcw_prom_pending(const kcw_prom_t *prom)
{
    return prom ? prom->n_queries : 0;
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
        kcw_prom_error_t err;
        memset(&err, 0, sizeof(err));
        fail(&err, KCW_PROM_ERR_CANCELLED, 0, "cancelled");
        kcw_prom_cb cb = q->cb;
        kcw_prom_format_cb fcb = q->format_cb;
        void *cb_arg = q->arg;
        free(q);
        if (fcb)
            fcb(NULL, &err, cb_arg);
        else
            cb(NULL, &err, cb_arg);
    }
    prom_release(prom);
}
