/* http_client.h: every outgoing HTTP request, on the libuv loop.
 *
 * One libcurl multi handle driven by the loop (curl's socket callback puts a
 * uv_poll on each socket, its timer callback drives one uv_timer; finished
 * transfers are collected after every action). Connections are kept alive and
 * reused. Nothing here blocks. A request is described by kcw_http_req_t; its
 * completion callback runs on the loop exactly once with the response, after
 * which the response memory is freed. */
#ifndef KCWATCH_HTTP_CLIENT_H
#define KCWATCH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/config.h"

typedef struct kcw_http kcw_http_t;

typedef struct kcw_http_req {
    const char *method;   /* "GET", "POST", "PUT" */
    const char *url;
    const char *body;     /* NULL: none; sent as application/json unless headers names a Content-Type */
    size_t body_len;
    bool form;            /* the body is application/x-www-form-urlencoded */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, may be NULL */
    int64_t timeout_ms;   /* whole transfer; 0 = 10 s */
    size_t max_body;      /* response bytes kept at most; 0 = 16 MiB; more -> error */
    const kcw_basic_auth_conf_t *basic_auth; /* preemptive Basic when username set */
    const char *bearer_token;                /* Authorization: Bearer, may be NULL */
    const kcw_tls_conf_t *tls;               /* may be NULL */
    /* Streaming (a watch): when set, response bytes go to on_data as they
     * arrive, with the status line's code, instead of into the body (the
     * completion callback then sees an empty body); the callee bounds what it
     * keeps. It runs inside the transfer: it must not start or cancel
     * requests (defer with a timer). A negative return aborts the transfer. */
    int (*on_data)(long status, const char *data, size_t len, void *arg);
    /* The same URL is requested again and again (a Prometheus query URL):
     * the client keeps it parsed (libcurl's CURLU) for its whole life instead
     * of parsing it per request. At most KCW_HTTP_MAX_KEPT_URLS are kept. */
    bool url_reused;
    /* libcurl's receive buffer for this transfer, 1 KiB .. 512 KiB; 0: 16 KiB.
     * It is allocated for every transfer in flight: a caller that expects
     * a small answer (a Prometheus query that answered a few hundred bytes
     * last time) asks for less, one that expects megabytes for more. */
    size_t recv_buffer;
} kcw_http_req_t;

#define KCW_HTTP_MAX_KEPT_URLS 8

typedef struct kcw_http_resp {
    long status;          /* HTTP status, 0 when no response arrived */
    char *body;           /* NUL-terminated, may be empty, never NULL */
    size_t body_len;
    int64_t retry_after_ms; /* parsed Retry-After (seconds or HTTP date), -1 if absent */
    int curl_code;        /* CURLcode, 0 = ok */
    bool conn_error;      /* connection-level failure: worth failing over to another URL */
    char error[256];      /* human-readable failure, "" on success */
    int64_t elapsed_ms;
} kcw_http_resp_t;

typedef void (*kcw_http_cb)(const kcw_http_resp_t *resp, void *arg);

/* A Retry-After header value (delta-seconds or an HTTP-date, surrounding
 * blanks allowed) as milliseconds from now, capped at a day; a date in the
 * past is 0; -1 when it is neither. */
int64_t kcw_http_retry_after_parse(const char *value);

/* Creates the client on loop. NULL on failure. */
kcw_http_t *kcw_http_new(uv_loop_t *loop);
/* Starts a request. Everything in req is copied; cb(arg) runs later on the
 * loop, never from inside this call. 0 or negative errno. */
int kcw_http_request(kcw_http_t *http, const kcw_http_req_t *req, kcw_http_cb cb, void *arg);
/* Number of transfers in flight. */
size_t kcw_http_pending(const kcw_http_t *http);
/* Aborts every transfer started with this callback arg; their callbacks run
 * with error "cancelled" before this returns (lets an owner that shares the
 * client drop its own requests). Returns how many were cancelled. */
size_t kcw_http_cancel(kcw_http_t *http, void *arg);
/* Aborts every transfer (their callbacks run with error "cancelled"), closes
 * handles; on_closed runs once all libuv handles are closed. */
void kcw_http_close(kcw_http_t *http, void (*on_closed)(void *arg), void *arg);

#endif
