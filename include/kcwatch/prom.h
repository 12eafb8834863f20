/* prom.h: PromQL instant queries against the Prometheus HTTP API.
 *
 * Two layers. kcw_prom_parse_response() is pure: the body of
 * GET /api/v1/query in, a kcw_prom_result_t (an instant vector or a scalar)
 * or a precise error out; no I/O, no clock. kcw_prom_t is the client: it
 * sends the query through the shared kcw_http_t on the libuv loop (a
 * form-encoded POST to /api/v1/query), with the evaluation time and
 * the configured timeout, basic auth / bearer token and TLS, and hands the
 * parsed result or a classified error to a callback on the loop.
 *
 * Alerting rules need instant vectors or scalars: matrix and string results
 * are errors. Results are bounded (KCW_PROM_MAX_SERIES series, KCW_PROM_MAX_LABELS
 * labels per series, KCW_PROM_MAX_BODY response bytes). */
#ifndef KCWATCH_PROM_H
#define KCWATCH_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/config.h"
#include "kcwatch/http_client.h"
#include "kcwatch/labels.h"

#define KCW_PROM_MAX_SERIES 1000000
#define KCW_PROM_MAX_LABELS 256
/* A minimal series ({"metric":{},"value":[t,"1"]}) is ~45 bytes, so the body
 * limit still lets the series limit be the one that bites. */
#define KCW_PROM_MAX_BODY (64u * 1024 * 1024)
#define KCW_PROM_MAX_WARNINGS 32 /* warnings (and infos) kept per result */
/* Queries a client has in flight at most; more wait in its queue, oldest
 * first, and their timeout runs from kcw_prom_query. Prometheus itself runs
 * 20 queries at a time by default (--query.max-concurrency), so more
 * connections would only queue there, each holding a socket and libcurl's
 * buffers here. */
#define KCW_PROM_MAX_INFLIGHT 16

typedef enum {
    KCW_PROM_VECTOR = 0,
    KCW_PROM_SCALAR,
} kcw_prom_result_type_t;

typedef struct kcw_prom_sample {
    kcw_labels_t metric; /* as returned, __name__ included (callers drop it) */
    double value;        /* NaN and +-Inf as Prometheus sent them */
    int64_t ts_ms;       /* sample (evaluation) time, unix milliseconds */
} kcw_prom_sample_t;

typedef struct kcw_prom_result {
    kcw_prom_result_type_t type;
    kcw_prom_sample_t *samples; /* VECTOR: n series, in Prometheus' order */
    size_t n;
    double scalar; /* SCALAR: the value */
    int64_t scalar_ts_ms;
    char **warnings; /* Prometheus' "warnings", verbatim (first KCW_PROM_MAX_WARNINGS) */
    size_t n_warnings;
    char **infos; /* Prometheus' "infos" (newer servers), likewise */
    size_t n_infos;
    size_t body_bytes; /* the answer's size (kcw_prom_query): a size hint for the next */
} kcw_prom_result_t;

typedef enum {
    KCW_PROM_ERR_NONE = 0,
    KCW_PROM_ERR_TRANSPORT, /* no usable HTTP response: refused, reset, DNS, TLS */
    KCW_PROM_ERR_TIMEOUT,   /* the configured timeout elapsed */
    KCW_PROM_ERR_HTTP,      /* non-2xx status without a Prometheus error body */
    KCW_PROM_ERR_QUERY,     /* Prometheus answered status "error" (see type) */
    KCW_PROM_ERR_RESPONSE,  /* body is not a usable API response (malformed, too big,
                               matrix/string result, too many series or labels) */
    KCW_PROM_ERR_CANCELLED, /* kcw_prom_free or the HTTP client's close */
} kcw_prom_err_kind_t;

typedef struct kcw_prom_error {
    kcw_prom_err_kind_t kind;
    long http_status; /* 0 when no response arrived */
    char type[32];    /* Prometheus' errorType ("bad_data", "execution", "timeout",
                         "unavailable", "internal", ...), "" when none */
    /* One line for logs and rule health, e.g.
     * "HTTP 400: bad_data: invalid parameter \"query\": 1:5: parse error: ...";
     * Prometheus' "error" text appears verbatim (truncated to fit). */
    char msg[1024];
} kcw_prom_error_t;

/* Parses a /api/v1/query response body (len bytes, need not be
 * NUL-terminated). On success returns 0 and *out (free with
 * kcw_prom_result_free). Otherwise *out is NULL, err (may be NULL) is filled
 * and the result is:
 *   -EINVAL   not JSON, truncated, wrong types or missing fields (msg names
 *             what and where, e.g. "data.result[3].value[1]: not a string")
 *   -EREMOTEIO  Prometheus' own error body (status "error"): err->type and
 *             err->msg hold errorType and error verbatim
 *   -ENOTSUP  a matrix or string result (rules need an instant vector or scalar),
 *             or a native histogram sample
 *   -E2BIG    more than KCW_PROM_MAX_SERIES series or KCW_PROM_MAX_LABELS labels
 *   -ENOMEM
 * err->kind is KCW_PROM_ERR_QUERY for -EREMOTEIO, KCW_PROM_ERR_RESPONSE
 * otherwise; err->http_status is left 0. */
int kcw_prom_parse_response(const char *body, size_t len, kcw_prom_result_t **out,
                            kcw_prom_error_t *err);
/* The same reading through one jansson tree of the whole answer: what
 * kcw_prom_parse_response gives, by a path that holds more memory for a
 * large answer (kept as the reference its tests compare against). */
int kcw_prom_parse_whole(const char *body, size_t len, kcw_prom_result_t **out,
                         kcw_prom_error_t *err);
/* How many answers this process read series by series (large vectors). */
unsigned long kcw_prom_sliced_reads(void);
void kcw_prom_result_free(kcw_prom_result_t *res);

typedef struct kcw_prom kcw_prom_t;

/* Exactly one of result and error is non-NULL. The callback owns result and
 * frees it with kcw_prom_result_free; error is valid during the call only. */
typedef void (*kcw_prom_cb)(kcw_prom_result_t *result, const kcw_prom_error_t *error, void *arg);

/* A client sending through http (shared, not owned; it must stay open while
 * queries are in flight). conf is copied. NULL on failure or when conf->url
 * is not set. */
kcw_prom_t *kcw_prom_new(kcw_http_t *http, const kcw_prometheus_conf_t *conf);
/* Starts the instant query expr at eval_time_ms (unix milliseconds, sent as
 * time=SECONDS.mmm). cb(arg) runs later on the loop, never from inside this
 * call. 0, -EINVAL (bad arguments), -ESHUTDOWN (closing), -ENOMEM, or the
 * HTTP client's error. */
int kcw_prom_query(kcw_prom_t *prom, const char *expr, int64_t eval_time_ms, kcw_prom_cb cb,
                   void *arg);
/* kcw_prom_query with the size of the answer expected, 0 if unknown (the
 * body_bytes of the last answer to the same expr): the receive buffer the
 * transfer holds while in flight is sized to it (4 KiB when unknown or at
 * most KCW_PROM_SMALL_ANSWER bytes, 64 KiB from KCW_PROM_LARGE_ANSWER,
 * libcurl's 16 KiB between). The answer is the same whatever the hint. */
int kcw_prom_query_sized(kcw_prom_t *prom, const char *expr, int64_t eval_time_ms,
                         size_t expect_bytes, kcw_prom_cb cb, void *arg);
#define KCW_PROM_SMALL_ANSWER 2048
#define KCW_PROM_LARGE_ANSWER (256 * 1024)
/* Parses a /api/v1/format_query response body: *formatted (free it) is
 * Prometheus' normalised text of the expression. Errors as
 * kcw_prom_parse_response: -EREMOTEIO with Prometheus' errorType and error
 * verbatim (a rejected expression: "bad_data: invalid parameter \"query\":
 * 1:16: parse error: ..."), -EINVAL for anything else, -ENOMEM. */
int kcw_prom_parse_format_response(const char *body, size_t len, char **formatted,
                                   kcw_prom_error_t *err);

/* Exactly one of formatted and error is non-NULL; both are valid during the
 * call only. */
typedef void (*kcw_prom_format_cb)(const char *formatted, const kcw_prom_error_t *error,
                                   void *arg);
/* Asks Prometheus' own parser about expr (/api/v1/format_query as a form POST,
 * Prometheus 2.38 and later), with the client's timeout and credentials. cb(arg) runs
 * later on the loop; a parse error is KCW_PROM_ERR_QUERY with type
 * "bad_data". Returns as kcw_prom_query. */
int kcw_prom_format(kcw_prom_t *prom, const char *expr, kcw_prom_format_cb cb, void *arg);
/* Queries in flight or waiting to be sent. */
size_t kcw_prom_pending(const kcw_prom_t *prom);
/* Cancels every query in flight (their callbacks run with
 * KCW_PROM_ERR_CANCELLED before this returns) and frees the client. NULL is a
 * no-op. */
void kcw_prom_free(kcw_prom_t *prom);

#endif
