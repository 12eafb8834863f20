/* http_client.c: every outgoing HTTP request, as libcurl multi transfers on the libuv loop.
 *
 * The multi_socket pattern: curl tells us through socket_cb which sockets it
 * wants watched (one uv_poll per socket, its context attached with
 * curl_multi_assign, stopped but kept while the connection idles, closed when
 * libcurl closes the socket) and through timer_cb when it wants to be woken (one
 * uv_timer). Both wake-ups call curl_multi_socket_action and then collect the
 * finished transfers with curl_multi_info_read, which is where completion
 * callbacks run. Adding a transfer only arms the timer, so a callback never
 * runs from inside kcw_http_request. Connections stay in the multi's cache and
 * are reused by later transfers to the same host.
 *
 * Shutdown: kcw_http_close removes every easy handle (callbacks get
 * "cancelled"), closes the poll handles and the timer, cleans up the multi, and
 * frees the client from the last uv_close callback. */
#include "kcwatch/http_client.h"
#include "kcwatch/url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kcwatch/log.h"

#ifndef KCW_VERSION
#define KCW_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define MAX_EXTRA_HEADERS 64
/* Finished easy handles kept for the next requests (curl_easy_reset between
 * uses): creating one costs more than a small request itself. */
#define EASY_POOL_MAX 16
/* Connections libcurl keeps open between transfers, over all hosts. Its
 * default is four per transfer added at the time: as the last queries of an
 * evaluation round finish that falls below the 16 Prometheus connections
 * the round used, so every round closed a few and the next opened them again
 * (three or four TCP connections a second at 100 rules). Above this bound
 * the connection idle longest is closed. */
#define MAX_IDLE_CONNECTIONS 64
/* After a response this large its owner's processing (a parsed tree, a
 * result, instances) has freed as much in scattered heap chunks: malloc_trim
 * hands their pages back, or they stay resident until reused. At most every
 * TRIM_INTERVAL_MS: the chunks freed by a steady flow of such responses are
 * reused by the next ones, and every trim makes those pages fault in again. */
#define TRIM_AFTER_BODY (256u * 1024)
#define TRIM_INTERVAL_MS 10000
/* Retry-After values beyond a day are treated as a day: nobody should wait longer. */
#define MAX_RETRY_AFTER_MS (24LL * 3600 * 1000)

/* One per socket libcurl has open and has asked to watch. A connection's
 * (opened through open_socket_cb) is closed when libcurl closes the socket
 * (close_socket_cb); while the connection idles in libcurl's cache its poll
 * stays armed for reading when that is what the last transfer waited for,
 * so its next transfer changes nothing in the loop. Every uv_poll_start or
 * uv_poll_stop costs epoll_ctl calls (a start is a delete and an add), three
 * per request when the poll was stopped between transfers. An idle
 * connection that turns readable (the server closed it) has its poll
 * stopped; libcurl finds it dead when it looks for a connection. Any other
 * socket (the threaded resolver's socket pair, which libcurl closes without
 * the callback) is forgotten as soon as libcurl stops asking: the kernel
 * drops a closed descriptor from epoll, and a poll still armed on its number
 * would never see the next socket given that number. */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    bool watched; /* libcurl wants it polled (assigned to it) */
    bool conn;    /* a connection's: libcurl closes it through close_socket_cb */
    int events;   /* what the poll watches now (UV_READABLE...), 0: stopped */
    kcw_http_t *http;
    struct sock_ctx *prev, *next;
} sock_ctx_t;

struct kept_url;

typedef struct transfer {
    struct transfer *prev, *next;
    kcw_http_t *http;
    CURL *easy;
    struct curl_slist *headers; /* own list, or one of the client's defaults */
    bool own_headers;
    kcw_http_cb cb;
    void *arg;
    char *buf;
    size_t len, cap, max_body;
    int (*on_data)(long status, const char *data, size_t len, void *arg);
    bool overflow;
    bool doomed; /* the multi handle failed while it was in flight */
    /* A plain form POST to this kept URL (plain_kept): its handle may go
     * back to the pool still set up for the next such request. */
    const struct kept_url *plain;
    int64_t retry_after_ms;
    uint64_t start_ns;
    char errbuf[CURL_ERROR_SIZE];
} transfer_t;

struct kcw_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    transfer_t *transfers; /* in flight, doubly linked */
    size_t n_transfers;
    sock_ctx_t *socks;   /* polls not yet closed, watched or idle */
    size_t open_handles; /* uv handles whose close callback has not run */
    bool closing;
    CURLMcode last_multi_error; /* last failure of curl_multi_socket_action, logged once */
    uint64_t last_trim_ms;      /* loop time of the last malloc_trim */
    CURL *idle[EASY_POOL_MAX];  /* easy handles ready for reuse */
    /* NULL: idle[i] is reset; else it is still set up for a plain form POST
     * to this kept URL (plain_kept) and takes the next one as it is. */
    const struct kept_url *idle_for[EASY_POOL_MAX];
    size_t n_idle;
    /* The header lists of requests without extra headers or a token, built
     * once: with a JSON body, with a form body, and without a body. */
    struct curl_slist *hdr_json, *hdr_form, *hdr_plain;
    /* No proxy variable in the environment (looked up once): libcurl is told
     * so instead of reading the environment again for every request. */
    bool no_proxy_env;
    /* URLs of requests marked url_reused, parsed once (first come, kept
     * until close: a transfer may still refer to one). */
    struct kept_url {
        char *url;
        CURLU *parsed;
    } kept[KCW_HTTP_MAX_KEPT_URLS];
    size_t n_kept;
    void (*on_closed)(void *arg);
    void *on_closed_arg;
};

static void check_multi_info(kcw_http_t *http);
static void transfers_fail(kcw_http_t *http, CURLMcode mc);
static int base_headers(struct curl_slist **list, const char *content_type, bool form);

/* --- handle lifetime ------------------------------------------------------ */

static void http_free_if_done(kcw_http_t *http)
{
    if (!http->closing || http->open_handles > 0)
        return;
    void (*on_closed)(void *) = http->on_closed;
    void *arg = http->on_closed_arg;
    free(http);
    curl_global_cleanup();
    if (on_closed)
        on_closed(arg);
}

static void timer_closed(uv_handle_t *h)
{
    kcw_http_t *http = h->data;
    http->open_handles--;
    http_free_if_done(http);
}

static void sock_closed(uv_handle_t *h)
{
    sock_ctx_t *ctx = h->data;
    kcw_http_t *http = ctx->http;
    free(ctx);
    http->open_handles--;
    http_free_if_done(http);
}

static sock_ctx_t *sock_find(const kcw_http_t *http, curl_socket_t fd)
{
    sock_ctx_t *ctx = http->socks;
    while (ctx && ctx->fd != fd)
        ctx = ctx->next;
    return ctx;
}

static void sock_close(kcw_http_t *http, sock_ctx_t *ctx)
{
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        http->socks = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    /* uv_close stops the watcher at once, before curl closes the descriptor. */
    uv_close((uv_handle_t *)&ctx->poll, sock_closed);
}

/* A poll for fd, in the client's list; NULL when libuv refuses it. */
static sock_ctx_t *sock_new(kcw_http_t *http, curl_socket_t fd)
{
    sock_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    if (uv_poll_init_socket(http->loop, &ctx->poll, fd) != 0) {
        free(ctx);
        return NULL;
    }
    ctx->fd = fd;
    ctx->http = http;
    ctx->poll.data = ctx;
    ctx->next = http->socks;
    if (http->socks)
        http->socks->prev = ctx;
    http->socks = ctx;
    http->open_handles++;
    return ctx;
}

/* libcurl opens a connection's socket: it will close it through
 * close_socket_cb, so its poll may idle armed (sock_ctx_t). A poll still
 * kept under this number belonged to a socket closed without a word: it goes
 * first. Without a poll of its own (out of memory) the socket is watched
 * like any other. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr)
{
    kcw_http_t *http = clientp;
    (void)purpose;
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd == CURL_SOCKET_BAD || http->closing)
        return fd;
    sock_ctx_t *stale = sock_find(http, fd);
    if (stale)
        sock_close(http, stale);
    sock_ctx_t *ctx = sock_new(http, fd);
    if (ctx)
        ctx->conn = true;
    return fd;
}

/* --- curl -> libuv ------------------------------------------------------- */

/* curl_multi_socket_action, with its failure logged: once per distinct code
 * while it repeats. After a failure libcurl may not drive the transfers any
 * more (a socket callback that failed leaves the multi handle dead until it
 * holds no transfer, and the timer is not re-armed), so every transfer in
 * flight then fails at once with the reason: none waits for a wake-up that
 * may never come, and the next request starts on a multi handle that works. */
static void socket_action(kcw_http_t *http, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, fd, flags, &running);
    if (mc == CURLM_OK || mc == CURLM_BAD_SOCKET) {
        /* BAD_SOCKET: the socket went away between the wake-up and now */
        http->last_multi_error = CURLM_OK;
        return;
    }
    if (mc != http->last_multi_error)
        kcw_log(KCW_LOG_ERROR, "http: curl multi failed", "error", curl_multi_strerror(mc), NULL);
    http->last_multi_error = mc;
    transfers_fail(http, mc);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    sock_ctx_t *ctx = p->data;
    kcw_http_t *http = ctx->http;
    if (!ctx->watched) {
        /* Idle in libcurl's cache and readable: the server closed it (or
         * sent what nobody asked for). Level-triggered, it would wake the
         * loop again at once; libcurl discards it when it next looks. */
        uv_poll_stop(&ctx->poll);
        ctx->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* ctx may be closed by socket_cb during this call; don't touch it after. */
    socket_action(http, ctx->fd, flags);
    check_multi_info(http);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    kcw_http_t *http = userp;
    sock_ctx_t *ctx = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (ctx) {
            curl_multi_assign(http->multi, fd, NULL);
            ctx->watched = false;
            if (!ctx->conn) {
                sock_close(http, ctx); /* libcurl may close it without telling */
            } else if (ctx->events != UV_READABLE) { /* only a read watch idles armed */
                uv_poll_stop(&ctx->poll);
                ctx->events = 0;
            }
        }
        return 0;
    }
    if (http->closing)
        return 0;
    if (!ctx)
        ctx = sock_find(http, fd);
    if (!ctx)
        ctx = sock_new(http, fd);
    if (!ctx || curl_multi_assign(http->multi, fd, ctx) != CURLM_OK)
        return -1;
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events != ctx->events) {
        if (uv_poll_start(&ctx->poll, events, poll_cb) != 0)
            return -1;
        ctx->events = events;
    }
    ctx->watched = true;
    return 0;
}

/* libcurl closes one of its sockets: its poll goes first (libuv must not
 * watch a descriptor number the system may hand out again). */
static int close_socket_cb(void *clientp, curl_socket_t fd)
{
    kcw_http_t *http = clientp;
    sock_ctx_t *ctx = sock_find(http, fd);
    if (ctx)
        sock_close(http, ctx);
    return close(fd) == 0 ? 0 : 1;
}

static void on_timeout(uv_timer_t *t)
{
    kcw_http_t *http = t->data;
    socket_action(http, CURL_SOCKET_TIMEOUT, 0);
    check_multi_info(http);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    kcw_http_t *http = userp;
    if (http->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&http->timer);
        return 0;
    }
    /* Even a 0 timeout goes through the loop: socket_action must not be
     * called from inside a curl callback. */
    return uv_timer_start(&http->timer, on_timeout, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* --- transfer callbacks -------------------------------------------------- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    transfer_t *t = userp;
    size_t n = size * nmemb;
    if (t->on_data) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        return t->on_data(status, data, n, t->arg) < 0 ? 0 : n;
    }
    if (n > t->max_body - t->len) {
        t->overflow = true;
        return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        if (cap > t->max_body + 1)
            cap = t->max_body + 1;
        char *b = realloc(t->buf, cap);
        if (!b)
            return 0;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return n;
}

/* Retry-After is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
int64_t kcw_http_retry_after_parse(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '\0')
        return -1;
    if (isdigit((unsigned char)*v)) {
        int64_t secs = 0;
        const char *p = v;
        for (; isdigit((unsigned char)*p); p++) {
            secs = secs * 10 + (*p - '0');
            if (secs * 1000 > MAX_RETRY_AFTER_MS)
                return MAX_RETRY_AFTER_MS;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        return *p == '\0' ? secs * 1000 : -1;
    }
    time_t when = curl_getdate(v, NULL);
    if (when == -1)
        return -1;
    /* Compared in seconds first: a date in the year 620000000 is a valid
     * answer to curl_getdate, and its milliseconds overflow. */
    int64_t now = (int64_t)time(NULL);
    if ((int64_t)when <= now)
        return 0;
    if ((int64_t)when - now > MAX_RETRY_AFTER_MS / 1000)
        return MAX_RETRY_AFTER_MS;
    return ((int64_t)when - now) * 1000;
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *userp)
{
    transfer_t *t = userp;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        t->retry_after_ms = -1; /* a new response (after 1xx) starts over */
    } else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char value[128];
        size_t vl = n - (sizeof(name) - 1);
        if (vl >= sizeof(value))
            vl = sizeof(value) - 1;
        memcpy(value, data + sizeof(name) - 1, vl);
        value[vl] = '\0';
        while (vl > 0 && (value[vl - 1] == '\r' || value[vl - 1] == '\n' || value[vl - 1] == ' ' ||
                          value[vl - 1] == '\t'))
            value[--vl] = '\0';
        t->retry_after_ms = kcw_http_retry_after_parse(value);
    }
    return n;
}

/* Failures where another worker could well answer (connect-rest.md §7.4). */
static bool is_conn_error(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static void transfer_unlink(kcw_http_t *http, transfer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        http->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    http->n_transfers--;
}

/* Returns an easy handle to the pool or frees it when the pool is full or
 * closed. Reset (no option or body of the last request stays) unless it is
 * kept set up for more plain form POSTs to kept (which carry no credential). */
static void easy_release(kcw_http_t *http, CURL *easy, const struct kept_url *kept)
{
    if (!easy)
        return;
    if (http->closing || http->n_idle == EASY_POOL_MAX) {
        curl_easy_cleanup(easy);
        return;
    }
    if (!kept)
        curl_easy_reset(easy);
    else
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL); /* the transfer's, freed next */
    http->idle_for[http->n_idle] = kept;
    http->idle[http->n_idle++] = easy;
}

/* An idle handle for req: one still set up for the same plain form POST
 * (*ready), else a reset one, else a new one. */
static CURL *easy_take(kcw_http_t *http, const struct kept_url *plain, bool *ready)
{
    *ready = false;
    for (size_t i = http->n_idle; plain && i-- > 0;)
        if (http->idle_for[i] == plain) {
            CURL *e = http->idle[i];
            http->idle[i] = http->idle[--http->n_idle];
            http->idle_for[i] = http->idle_for[http->n_idle];
            *ready = true;
            return e;
        }
    if (http->n_idle == 0)
        return curl_easy_init();
    CURL *e = http->idle[--http->n_idle];
    if (http->idle_for[http->n_idle])
        curl_easy_reset(e);
    return e;
}

/* t finished (reusable: with a response) or failed; its handle goes back. */
static void transfer_free_as(transfer_t *t, bool reusable)
{
    easy_release(t->http, t->easy, reusable ? t->plain : NULL);
    if (t->own_headers)
        curl_slist_free_all(t->headers);
    free(t->buf);
    free(t);
}

static void transfer_free(transfer_t *t)
{
    transfer_free_as(t, false);
}

/* Removes t from the multi, runs its callback, frees it. cancelled: the
 * transfer did not finish on its own. multi_error: it did not finish because
 * the multi handle failed with this code. */
static void transfer_complete(kcw_http_t *http, transfer_t *t, CURLcode code, bool cancelled,
                              CURLMcode multi_error)
{
    kcw_http_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    char empty[1] = "";

    transfer_unlink(http, t);
    if (!cancelled)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_multi_remove_handle(http->multi, t->easy);

    resp.body = t->buf ? t->buf : empty;
    resp.body_len = t->len;
    resp.retry_after_ms = t->retry_after_ms;
    resp.elapsed_ms = (int64_t)((uv_hrtime() - t->start_ns) / 1000000u);
    if (cancelled) {
        resp.curl_code = CURLE_ABORTED_BY_CALLBACK;
        snprintf(resp.error, sizeof(resp.error), "cancelled");
    } else if (multi_error != CURLM_OK) {
        /* What libcurl itself reports for the transfers of a dead multi
         * handle; not a connection failure: the request may have been sent. */
        resp.curl_code = CURLE_ABORTED_BY_CALLBACK;
        snprintf(resp.error, sizeof(resp.error), "HTTP client failure: %s",
                 curl_multi_strerror(multi_error));
    } else if (code != CURLE_OK) {
        resp.curl_code = (int)code;
        resp.conn_error = is_conn_error(code);
        if (t->overflow)
            snprintf(resp.error, sizeof(resp.error), "response body larger than %zu bytes",
                     t->max_body);
        else if (t->errbuf[0])
            snprintf(resp.error, sizeof(resp.error), "%s", t->errbuf);
        else
            snprintf(resp.error, sizeof(resp.error), "%s", curl_easy_strerror(code));
    }
    if (t->cb)
        t->cb(&resp, t->arg);
    bool trim = t->len >= TRIM_AFTER_BODY;
    transfer_free_as(t, !cancelled && multi_error == CURLM_OK && code == CURLE_OK);
    if (trim && (http->last_trim_ms == 0 ||
                 uv_now(http->loop) - http->last_trim_ms >= TRIM_INTERVAL_MS)) {
        malloc_trim(0);
        http->last_trim_ms = uv_now(http->loop);
    }
}

static void check_multi_info(kcw_http_t *http)
{
    CURLMsg *msg;
    int left = 0;
    /* A callback may close the client; the remaining messages then belong
     * to transfers that close already cancelled. */
    while (!http->closing && (msg = curl_multi_info_read(http->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer_t *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t)
            transfer_complete(http, t, msg->data.result, false, CURLM_OK);
    }
}

/* Fails every transfer in flight after the multi handle failed with mc.
 * All leave the multi handle before any callback runs, so that a dead one is
 * usable again for the requests those callbacks start; those new transfers
 * are not failed here. */
static void transfers_fail(kcw_http_t *http, CURLMcode mc)
{
    for (transfer_t *t = http->transfers; t; t = t->next) {
        t->doomed = true;
        curl_multi_remove_handle(http->multi, t->easy);
    }
    for (;;) {
        transfer_t *t = http->transfers;
        while (t && !t->doomed)
            t = t->next;
        if (!t || http->closing)
            break;
        transfer_complete(http, t, CURLE_OK, false, mc);
    }
}

/* --- public API ------------------------------------------------------------- */

/* Whether none of the variables libcurl takes a proxy from is set (it reads
 * the lower-case and upper-case forms of each). */
static bool proxy_env_unset(void)
{
    static const char *const names[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                        "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return false;
    }
    return true;
}

kcw_http_t *kcw_http_new(uv_loop_t *loop)
{
    if (!loop)
        return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    kcw_http_t *http = calloc(1, sizeof(*http));
    if (!http) {
        curl_global_cleanup();
        return NULL;
    }
    http->loop = loop;
    http->no_proxy_env = proxy_env_unset();
    http->multi = curl_multi_init();
    if (!http->multi ||
        curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, (long)MAX_IDLE_CONNECTIONS) !=
            CURLM_OK ||
        base_headers(&http->hdr_json, "Content-Type: application/json", false) < 0 ||
        base_headers(&http->hdr_form, NULL, true) < 0 ||
        base_headers(&http->hdr_plain, "Content-Type:", false) < 0) {
        if (http->multi)
            curl_multi_cleanup(http->multi);
        curl_slist_free_all(http->hdr_json);
        curl_slist_free_all(http->hdr_form);
        curl_slist_free_all(http->hdr_plain);
        free(http);
        curl_global_cleanup();
        return NULL;
    }
    /* Everything that can fail is done: the loop only learns about the timer now. */
    uv_timer_init(loop, &http->timer);
    http->timer.data = http;
    http->open_handles = 1;

    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (vi && !(vi->features & CURL_VERSION_ASYNCHDNS))
        kcw_log(KCW_LOG_WARN, "libcurl resolves names synchronously; use IP addresses in URLs",
                NULL);
    return http;
}

static bool method_valid(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return false;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return false;
    return true;
}

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        return -ENOMEM;
    *list = n;
    return 0;
}

/* The fixed part of every request's headers; content_type NULL: the
 * caller's extra headers name one, or the body is a form (libcurl's own
 * Content-Type for a POST body). A body-less POST must not claim a form
 * body: Connect's resources only consume JSON (connect-rest.md §1), hence a
 * blank "Content-Type:" then. "Expect:" avoids a 100-continue wait. The
 * User-Agent is one of these lines rather than CURLOPT_USERAGENT, which
 * libcurl would format anew for every request. */
static int base_headers(struct curl_slist **list, const char *content_type, bool form)
{
    /* A form goes to Prometheus' API, which answers JSON whatever is asked:
     * libcurl's own "Accept: * / *" costs less than a line of ours. */
    if ((!form && add_header(list, "Accept: application/json") < 0) ||
        add_header(list, "User-Agent: kcwatch/" KCW_VERSION) < 0 ||
        (content_type && add_header(list, content_type) < 0) || add_header(list, "Expect:") < 0)
        return -ENOMEM;
    return 0;
}

static const char *default_content_type(const kcw_http_req_t *req)
{
    if (req->form)
        return NULL;
    return req->body ? "Content-Type: application/json" : "Content-Type:";
}

static int build_headers(transfer_t *t, const kcw_http_req_t *req)
{
    if (!req->headers && !(req->bearer_token && *req->bearer_token)) {
        t->headers = !req->body ? t->http->hdr_plain
                     : req->form ? t->http->hdr_form
                                 : t->http->hdr_json;
        return 0;
    }
    t->own_headers = true;
    bool own_type = false;
    for (size_t i = 0; req->headers && req->headers[i] && i < MAX_EXTRA_HEADERS; i++)
        if (strncasecmp(req->headers[i], "Content-Type:", 13) == 0)
            own_type = true;
    if (base_headers(&t->headers, own_type ? NULL : default_content_type(req), req->form) < 0)
        return -ENOMEM;
    if (req->headers) {
        for (size_t i = 0; req->headers[i]; i++) {
            if (i == MAX_EXTRA_HEADERS)
                return -E2BIG;
            if (strpbrk(req->headers[i], "\r\n"))
                return -EINVAL;
            if (add_header(&t->headers, req->headers[i]) < 0)
                return -ENOMEM;
        }
    }
    if (req->bearer_token && *req->bearer_token) {
        if (strpbrk(req->bearer_token, "\r\n"))
            return -EINVAL;
        char *line = NULL;
        if (asprintf(&line, "Authorization: Bearer %s", req->bearer_token) < 0)
            return -ENOMEM;
        int rc = add_header(&t->headers, line);
        free(line);
        if (rc < 0)
            return rc;
    }
    return 0;
}

#define SETOPT(easy, opt, val)                                                                     \
    do {                                                                                           \
        if (curl_easy_setopt((easy), (opt), (val)) != CURLE_OK)                                    \
            return -EINVAL;                                                                        \
    } while (0)

/* url as the client keeps it parsed (or starts to); NULL otherwise, the
 * URL then goes to libcurl as text. */
static const struct kept_url *kept_url(kcw_http_t *http, const char *url)
{
    for (size_t i = 0; i < http->n_kept; i++)
        if (strcmp(http->kept[i].url, url) == 0)
            return &http->kept[i];
    if (http->n_kept == KCW_HTTP_MAX_KEPT_URLS)
        return NULL;
    struct kept_url k = {.url = strdup(url), .parsed = curl_url()};
    /* The flags libcurl itself parses CURLOPT_URL with. */
    if (!k.url || !k.parsed ||
        curl_url_set(k.parsed, CURLUPART_URL, url,
                     CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
        free(k.url);
        curl_url_cleanup(k.parsed);
        return NULL; /* libcurl reports a bad URL itself */
    }
    http->kept[http->n_kept] = k;
    return &http->kept[http->n_kept++];
}

/* CURLOPT_BUFFERSIZE for the request: its own, within 1 KiB (libcurl's
 * least) and 512 KiB, else libcurl's default (16 KiB). */
static long recv_buffer(const kcw_http_req_t *req)
{
    if (req->recv_buffer == 0)
        return CURL_MAX_WRITE_SIZE;
    if (req->recv_buffer < 1024)
        return 1024;
    if (req->recv_buffer > 512 * 1024)
        return 512 * 1024;
    return (long)req->recv_buffer;
}

/* The URL without userinfo, and credentials: the configured basic auth, or
 * else the URL's userinfo (percent-decoded), sent preemptively as Basic. */
static int setup_url_auth(kcw_http_t *http, CURL *e, const kcw_http_req_t *req)
{
    const kcw_basic_auth_conf_t *ba =
        req->basic_auth && req->basic_auth->username ? req->basic_auth : NULL;
    char *bare = NULL, *user = NULL, *pass = NULL;
    if (strchr(req->url, '@') &&
        kcw_url_credentials(req->url, &bare, &user, &pass) == -ENOMEM)
        return -ENOMEM; /* -EINVAL: libcurl reports the bad URL itself */
    const char *name = ba ? ba->username : user;
    const char *secret = ba ? (ba->password ? ba->password : "") : (pass ? pass : "");
    const struct kept_url *kept = req->url_reused && !bare ? kept_url(http, req->url) : NULL;
    CURLU *parsed = kept ? kept->parsed : NULL;
    bool ok = parsed ? curl_easy_setopt(e, CURLOPT_CURLU, parsed) == CURLE_OK
                     : curl_easy_setopt(e, CURLOPT_URL, bare ? bare : req->url) == CURLE_OK;
    /* Connect's basic-auth 401 has no WWW-Authenticate, so credentials must
     * go out on the first request (connect-rest.md §8). */
    if (ok && name)
        ok = curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_USERNAME, name) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_PASSWORD, secret) == CURLE_OK;
    free(bare);
    free(user);
    free(pass);
    return ok ? 0 : -EINVAL;
}

static int setup_easy(transfer_t *t, const kcw_http_req_t *req)
{
    CURL *e = t->easy;
    int rc = setup_url_auth(t->http, e, req);
    if (rc < 0)
        return rc;
    SETOPT(e, CURLOPT_PRIVATE, (void *)t);
    SETOPT(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    SETOPT(e, CURLOPT_OPENSOCKETDATA, (void *)t->http);
    SETOPT(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    SETOPT(e, CURLOPT_CLOSESOCKETDATA, (void *)t->http);
    SETOPT(e, CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L); /* Connect never redirects (§1) */
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (t->http->no_proxy_env)
        SETOPT(e, CURLOPT_NOPROXY, "*");
    SETOPT(e, CURLOPT_TIMEOUT_MS,
           (long)(req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    /* Only a size: libcurl refusing it (a buffer still allocated) changes nothing else. */
    (void)curl_easy_setopt(e, CURLOPT_BUFFERSIZE, recv_buffer(req));
    SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)t);
    SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)t);
    SETOPT(e, CURLOPT_HTTPHEADER, t->headers);

    const char *m = req->method ? req->method : "GET";
    if (strcmp(m, "GET") == 0) {
        SETOPT(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(m, "POST") != 0)
            SETOPT(e, CURLOPT_CUSTOMREQUEST, m);
        if (strcmp(m, "DELETE") != 0 || req->body) {
            /* Size first so COPYPOSTFIELDS copies exactly body_len bytes. */
            SETOPT(e, CURLOPT_POST, 1L);
            SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
            SETOPT(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        }
    }

    if (req->tls) {
        if (req->tls->ca_file)
            SETOPT(e, CURLOPT_CAINFO, req->tls->ca_file);
        if (req->tls->cert_file)
            SETOPT(e, CURLOPT_SSLCERT, req->tls->cert_file);
        if (req->tls->key_file)
            SETOPT(e, CURLOPT_SSLKEY, req->tls->key_file);
        if (req->tls->insecure) {
            SETOPT(e, CURLOPT_SSL_VERIFYPEER, 0L);
            SETOPT(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
    return 0;
}

/* The kept URL of a plain form POST: no credential, TLS option, extra
 * header or streaming, so that every such request to the URL sets the
 * same options but for its body, timeout and transfer. NULL otherwise. */
static const struct kept_url *plain_kept(kcw_http_t *http, const kcw_http_req_t *req)
{
    if (!req->url_reused || !req->form || !req->body || !req->method ||
        strcmp(req->method, "POST") != 0 || req->headers || req->on_data ||
        (req->bearer_token && *req->bearer_token) || (req->basic_auth && req->basic_auth->username) ||
        (req->tls && (req->tls->ca_file || req->tls->cert_file || req->tls->key_file ||
                      req->tls->insecure)) ||
        strchr(req->url, '@'))
        return NULL;
    return kept_url(http, req->url);
}

/* The options that differ between two plain form POSTs to one URL: the
 * rest stayed on the handle from the last one (setup_easy). */
static int setup_again(transfer_t *t, const kcw_http_req_t *req)
{
    CURL *e = t->easy;
    SETOPT(e, CURLOPT_PRIVATE, (void *)t);
    SETOPT(e, CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(e, CURLOPT_TIMEOUT_MS,
           (long)(req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    /* Only a size: libcurl refusing it (a buffer still allocated) changes nothing else. */
    (void)curl_easy_setopt(e, CURLOPT_BUFFERSIZE, recv_buffer(req));
    SETOPT(e, CURLOPT_WRITEDATA, (void *)t);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)t);
    SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SETOPT(e, CURLOPT_COPYPOSTFIELDS, req->body);
    return 0;
}

int kcw_http_request(kcw_http_t *http, const kcw_http_req_t *req, kcw_http_cb cb, void *arg)
{
    if (!http || !req || !req->url || !cb)
        return -EINVAL;
    if (http->closing)
        return -ESHUTDOWN;
    if (req->method && !method_valid(req->method))
        return -EINVAL;
    if (req->body && req->body_len > (size_t)INT32_MAX)
        return -E2BIG;

    transfer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->http = http;
    t->cb = cb;
    t->arg = arg;
    t->retry_after_ms = -1;
    t->max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
    t->on_data = req->on_data;
    t->plain = plain_kept(http, req);
    bool ready;
    t->easy = easy_take(http, t->plain, &ready);
    if (!t->easy) {
        transfer_free(t);
        return -ENOMEM;
    }
    int rc = build_headers(t, req);
    if (rc == 0)
        rc = ready ? setup_again(t, req) : setup_easy(t, req);
    if (rc < 0) {
        transfer_free(t);
        return rc;
    }
    t->start_ns = uv_hrtime();
    if (curl_multi_add_handle(http->multi, t->easy) != CURLM_OK) {
        transfer_free(t);
        return -ENOMEM;
    }
    t->next = http->transfers;
    if (http->transfers)
        http->transfers->prev = t;
    http->transfers = t;
    http->n_transfers++;
    return 0;
}

size_t kcw_http_pending(const kcw_http_t *http)
{
    return http ? http->n_transfers : 0;
}

size_t kcw_http_cancel(kcw_http_t *http, void *arg)
{
    if (!http)
        return 0;
    size_t n = 0;
    /* Callbacks may add or cancel transfers; restart the walk after each. */
    for (;;) {
        transfer_t *t = http->transfers;
        while (t && t->arg != arg)
            t = t->next;
        if (!t)
            break;
        transfer_complete(http, t, CURLE_OK, true, CURLM_OK);
        n++;
    }
    return n;
}

void kcw_http_close(kcw_http_t *http, void (*on_closed)(void *arg), void *arg)
{
    if (!http || http->closing)
        return;
    http->closing = true;
    http->on_closed = on_closed;
    http->on_closed_arg = arg;

    while (http->transfers)
        transfer_complete(http, http->transfers, CURLE_OK, true, CURLM_OK);

    uv_timer_stop(&http->timer);
    /* Stop watching cached connections before curl closes their sockets. */
    while (http->socks) {
        curl_multi_assign(http->multi, http->socks->fd, NULL);
        sock_close(http, http->socks);
    }
    curl_multi_cleanup(http->multi);
    http->multi = NULL;
    while (http->n_idle > 0)
        curl_easy_cleanup(http->idle[--http->n_idle]);
    curl_slist_free_all(http->hdr_json);
    curl_slist_free_all(http->hdr_form);
    curl_slist_free_all(http->hdr_plain);
    http->hdr_json = http->hdr_form = http->hdr_plain = NULL;
    for (size_t i = 0; i < http->n_kept; i++) {
        free(http->kept[i].url);
        curl_url_cleanup(http->kept[i].parsed);
    }
    http->n_kept = 0;
    uv_close((uv_handle_t *)&http->timer, timer_closed);
}
