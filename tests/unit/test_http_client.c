/* test_http_client.c: the HTTP client and the Connect client on a real loop.
 *
 * Peers run in this process: a libmicrohttpd server on 127.0.0.1 (its own
 * polling thread) that answers a few test paths and acts as a minimal Connect
 * worker (connect-rest.md shapes), a listening socket that never accepts (a
 * worker that hangs), and a closed port (a dead worker). Every wait runs the
 * loop until a condition holds or a uv_timer deadline passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "kcwatch/connect.h"
#include "kcwatch/http_client.h"
#include "kcwatch/log.h"

#define DEADLINE_MS 5000

/* --- the in-process server ------------------------------------------------- */

typedef struct server {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    int connections;
    int requests;
    char method[16];
    char path[256];
    char query[256];
    char auth[128];
    char ctype[128];
    char xtest[64];
    char ua[64];
    char body[4096];
    size_t body_len;
    /* fake Connect */
    int n_root;
    int n_list;
    int list_status;
    const char *list_ctype;
    char list_body[8192];
    char restarts[8][320];
    int n_restarts;
} server_t;

typedef struct upload {
    char data[4096];
    size_t len;
} upload_t;

static const char version_body[] =
    "{\"version\": \"3.8.0\", \"commit\": \"4a1d9c37e2b0f615\", \"kafka_cluster_id\": \"q3L9\"}";

static const char status_orders[] =
    "{\"name\": \"orders sink\", \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
    " \"tasks\": [{\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"w1\"}], \"type\": \"sink\"}";

/* 202 restart body: computed before anything stopped, tasks unsorted (§5.3). */
static const char restart_202[] =
    "{\"name\": \"orders sink\", \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
    " \"tasks\": [{\"id\": 1, \"state\": \"RESTARTING\", \"worker_id\": \"w3\", \"trace\": \"x\"},"
    "             {\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"w1\"}], \"type\": \"sink\"}";

static const char status_a[] =
    "{\"name\": \"a conn\", \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
    " \"tasks\": [{\"id\": 0, \"state\": \"FAILED\", \"worker_id\": \"w1\", \"trace\": \"boom\"}],"
    " \"type\": \"source\"}";
static const char status_b[] =
    "{\"name\": \"b-conn\", \"connector\": {\"state\": \"PAUSED\", \"worker_id\": \"w2\"},"
    " \"tasks\": [], \"type\": \"sink\"}";
static const char info_a[] = "{\"name\": \"a conn\", \"config\": {\"tasks.max\": \"4\"},"
                             " \"tasks\": [{\"connector\": \"a conn\", \"task\": 0}, "
                             "{\"connector\": \"a conn\", \"task\": 1}],"
                             " \"type\": \"source\"}";
static const char error_404[] = "{\"error_code\": 404, \"message\": \"No status found\"}";
static const char error_500[] =
    "{\"error_code\": 500, \"message\": \"Request timed out. The worker is currently ensuring "
    "membership in the cluster\"}";

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *ctype, const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    char *q = cls;
    size_t l = strlen(q);
    snprintf(q + l, 256 - l, "%s%s=%s", l ? "&" : "", key, value ? value : "");
    return MHD_YES;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A minimal Connect worker (connect-rest.md §2, §3, §5). Called with mu held. */
static enum MHD_Result fake_connect(server_t *s, struct MHD_Connection *c, const char *url,
                                    const char *method)
{
    if (strcmp(url, "/") == 0) {
        s->n_root++;
        return reply(c, 200, version_body, "application/json", NULL);
    }
    if (strcmp(url, "/connectors") == 0) {
        s->n_list++;
        return reply(c, (unsigned)s->list_status, s->list_body, s->list_ctype, NULL);
    }
    const char *rest = url + strlen("/connectors/");
    if (strcmp(method, "POST") == 0 && ends_with(url, "/restart")) {
        if (s->n_restarts < 8)
            snprintf(s->restarts[s->n_restarts++], sizeof(s->restarts[0]), "POST %s%s%s", url,
                     s->query[0] ? "?" : "", s->query);
        if (strstr(url, "/tasks/"))
            return reply(c, 204, "", NULL, NULL);
        if (strstr(s->query, "includeTasks=true"))
            return reply(c, 202, restart_202, "application/json", NULL);
        return reply(c, 204, "", NULL, NULL);
    }
    if (ends_with(rest, "/status")) {
        if (strcmp(rest, "orders sink/status") == 0)
            return reply(c, 200, status_orders, "application/json", NULL);
        if (strcmp(rest, "a conn/status") == 0)
            return reply(c, 200, status_a, "application/json", NULL);
        if (strcmp(rest, "b-conn/status") == 0)
            return reply(c, 200, status_b, "application/json", NULL);
        return reply(c, 404, error_404, "application/json", NULL);
    }
    if (strcmp(rest, "a conn") == 0)
        return reply(c, 200, info_a, "application/json", NULL);
    /* Queued read during a rebalance (§7.2). */
    return reply(c, 500, error_500, "application/json", NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    server_t *s = cls;
    upload_t *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof(*up));
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (n > sizeof(up->data) - up->len)
            n = sizeof(up->data) - up->len;
        memcpy(up->data + up->len, upload_data, n);
        up->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&s->mu);
    s->requests++;
    snprintf(s->method, sizeof(s->method), "%s", method);
    snprintf(s->path, sizeof(s->path), "%s", url);
    s->query[0] = '\0';
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, s->query);
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(s->auth, sizeof(s->auth), "%s", v ? v : "");
    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    snprintf(s->ctype, sizeof(s->ctype), "%s", v ? v : "");
    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Test");
    snprintf(s->xtest, sizeof(s->xtest), "%s", v ? v : "");
    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
    snprintf(s->ua, sizeof(s->ua), "%s", v ? v : "");
    memcpy(s->body, up->data, up->len);
    s->body_len = up->len;

    enum MHD_Result ret;
    if (strcmp(url, "/hello") == 0) {
        ret = reply(c, 200, "hello world", "text/plain", NULL);
    } else if (strcmp(url, "/echo") == 0) {
        char copy[4096 + 1];
        memcpy(copy, up->data, up->len);
        copy[up->len] = '\0';
        ret = reply(c, 201, copy, "application/json", NULL);
    } else if (strcmp(url, "/retry") == 0) {
        ret = reply(c, 503, "busy", "text/plain", "7");
    } else if (strcmp(url, "/retrydate") == 0) {
        char date[64];
        time_t when = time(NULL) + 120;
        struct tm tm;
        gmtime_r(&when, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ret = reply(c, 429, "slow down", "text/plain", date);
    } else if (strcmp(url, "/stagger") == 0) {
        /* One server thread: answers leave one by one, 5 ms apart. */
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->mu);
        ret = reply(c, 200, "hello world", "text/plain", NULL);
    } else if (strcmp(url, "/big") == 0) {
        static char big[100001];
        memset(big, 'x', sizeof(big) - 1);
        ret = reply(c, 200, big, "text/plain", NULL);
    } else {
        ret = fake_connect(s, c, url, method);
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void connection_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    (void)c;
    (void)socket_context;
    server_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&s->mu);
        s->connections++;
        pthread_mutex_unlock(&s->mu);
    }
}

static void server_start(server_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->list_status = 200;
    s->list_ctype = "application/json";
    snprintf(s->list_body, sizeof(s->list_body), "{}");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                            MHD_OPTION_NOTIFY_CONNECTION, connection_notify, s, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port > 0);
}

static void server_stop(server_t *s)
{
    if (s->d)
        MHD_stop_daemon(s->d);
    s->d = NULL;
}

static void server_set_list(server_t *s, int status, const char *ctype, const char *body)
{
    pthread_mutex_lock(&s->mu);
    s->list_status = status;
    s->list_ctype = ctype;
    snprintf(s->list_body, sizeof(s->list_body), "%s", body);
    pthread_mutex_unlock(&s->mu);
}

static int server_get(server_t *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* --- fixture: loop, client, peers ------------------------------------------------- */

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    uv_prepare_t check; /* stops the loop once the awaited condition holds */
    bool (*cond)(const void *);
    const void *cond_arg;
    bool expired;
    kcw_http_t *http;
    bool http_closed;
    server_t srv;
    int hang_fd; /* listens, never accepts */
    uint16_t hang_port;
    uint16_t dead_port; /* nothing listens */
    char live_url[64], hang_url[64], dead_url[64];
    FILE *logs;
} fx_t;

static uint16_t bound_socket(int *fd_out, bool do_listen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (do_listen)
        assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

static void on_deadline(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->expired = true;
    uv_stop(t->loop);
}

/* Runs before the loop would block: a condition met by a timer callback must
 * not wait for the next I/O event. */
static void on_prepare(uv_prepare_t *p)
{
    fx_t *fx = p->data;
    if (fx->cond(fx->cond_arg))
        uv_stop(p->loop);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    /* Log at debug into /dev/null so every log call runs under the sanitizers. */
    fx->logs = fopen("/dev/null", "w");
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, fx->logs);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
    uv_prepare_init(&fx->loop, &fx->check);
    fx->check.data = fx;
    fx->http = kcw_http_new(&fx->loop);
    assert_non_null(fx->http);
    server_start(&fx->srv);
    fx->hang_port = bound_socket(&fx->hang_fd, true);
    int dead_fd;
    fx->dead_port = bound_socket(&dead_fd, false);
    close(dead_fd);
    snprintf(fx->live_url, sizeof(fx->live_url), "http://127.0.0.1:%u", fx->srv.port);
    snprintf(fx->hang_url, sizeof(fx->hang_url), "http://127.0.0.1:%u", fx->hang_port);
    snprintf(fx->dead_url, sizeof(fx->dead_url), "http://127.0.0.1:%u", fx->dead_port);
    *state = fx;
    return 0;
}

static bool run_until(fx_t *fx, bool (*cond)(const void *), const void *arg, uint64_t ms)
{
    fx->expired = false;
    fx->cond = cond;
    fx->cond_arg = arg;
    uv_update_time(&fx->loop);
    uv_timer_start(&fx->deadline, on_deadline, ms, 0);
    uv_prepare_start(&fx->check, on_prepare);
    while (!cond(arg) && !fx->expired)
        uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_prepare_stop(&fx->check);
    uv_timer_stop(&fx->deadline);
    return cond(arg);
}

static bool flag_set(const void *arg)
{
    return *(const bool *)arg;
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx->http_closed) {
        kcw_http_close(fx->http, set_flag, &fx->http_closed);
        assert_true(run_until(fx, flag_set, &fx->http_closed, DEADLINE_MS));
    }
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_close((uv_handle_t *)&fx->check, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    /* Every handle of the client was closed: the loop closes cleanly. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    server_stop(&fx->srv);
    pthread_mutex_destroy(&fx->srv.mu);
    close(fx->hang_fd);
    kcw_log_reset();
    fclose(fx->logs);
    free(fx);
    return 0;
}

/* --- HTTP client ------------------------------------------------------------------- */

typedef struct result {
    int calls;
    long status;
    char body[2048];
    size_t body_len;
    int64_t retry_after_ms;
    int curl_code;
    bool conn_error;
    char error[256];
} result_t;

static void on_resp(const kcw_http_resp_t *resp, void *arg)
{
    result_t *r = arg;
    r->calls++;
    r->status = resp->status;
    assert_non_null(resp->body);
    assert_int_equal(resp->body[resp->body_len], '\0');
    snprintf(r->body, sizeof(r->body), "%s", resp->body);
    r->body_len = resp->body_len;
    r->retry_after_ms = resp->retry_after_ms;
    r->curl_code = resp->curl_code;
    r->conn_error = resp->conn_error;
    snprintf(r->error, sizeof(r->error), "%s", resp->error);
}

static bool result_done(const void *arg)
{
    return ((const result_t *)arg)->calls > 0;
}

static void get(fx_t *fx, const char *path, result_t *r, const kcw_http_req_t *tmpl)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", fx->live_url, path);
    kcw_http_req_t req = tmpl ? *tmpl : (kcw_http_req_t){0};
    req.method = req.method ? req.method : "GET";
    req.url = url;
    memset(r, 0, sizeof(*r));
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, r), 0);
    /* Never completes inside the call. */
    assert_int_equal(r->calls, 0);
    assert_true(run_until(fx, result_done, r, DEADLINE_MS));
    assert_int_equal(r->calls, 1);
}

static void test_http_get_ok_and_keepalive(void **state)
{
    fx_t *fx = *state;
    result_t r;
    for (int i = 0; i < 3; i++) {
        get(fx, "/hello", &r, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello world");
        assert_int_equal(r.body_len, 11);
        assert_int_equal(r.retry_after_ms, -1);
        assert_int_equal(r.curl_code, 0);
        assert_false(r.conn_error);
        assert_string_equal(r.error, "");
    }
    assert_int_equal(kcw_http_pending(fx->http), 0);
    /* Three requests, one connection: the connection was reused. */
    assert_int_equal(server_get(&fx->srv, &fx->srv.connections), 1);
    /* No body for an empty GET. */
    assert_int_equal(fx->srv.body_len, 0);
    assert_string_equal(fx->srv.auth, "");
}

static void test_http_post_body_and_basic_auth(void **state)
{
    fx_t *fx = *state;
    kcw_basic_auth_conf_t auth = {.username = "alice", .password = "s3cret"};
    const char *extra[] = {"X-Test: yes", NULL};
    static const char body[] = "{\"a\": 1, \"b\": \"two\"}";
    kcw_http_req_t req = {.method = "POST",
                          .body = body,
                          .body_len = sizeof(body) - 1,
                          .headers = extra,
                          .basic_auth = &auth};
    result_t r;
    get(fx, "/echo", &r, &req);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, body);
    pthread_mutex_lock(&fx->srv.mu);
    assert_string_equal(fx->srv.method, "POST");
    assert_int_equal(fx->srv.body_len, sizeof(body) - 1);
    assert_memory_equal(fx->srv.body, body, sizeof(body) - 1);
    /* Sent on the first request: no 401 challenge was needed (§8). */
    assert_string_equal(fx->srv.auth, "Basic YWxpY2U6czNjcmV0");
    assert_string_equal(fx->srv.ctype, "application/json");
    assert_string_equal(fx->srv.xtest, "yes");
    assert_int_equal(fx->srv.requests, 1);
    pthread_mutex_unlock(&fx->srv.mu);

    /* A body-less POST (restart) does not claim a form body. */
    kcw_http_req_t empty = {.method = "POST", .bearer_token = "tok-123"};
    get(fx, "/echo", &r, &empty);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 0);
    pthread_mutex_lock(&fx->srv.mu);
    assert_string_equal(fx->srv.ctype, "");
    assert_string_equal(fx->srv.auth, "Bearer tok-123");
    assert_string_equal(fx->srv.ua, "kcwatch/" KCW_VERSION);
    pthread_mutex_unlock(&fx->srv.mu);

    /* A form body is labelled as one, with or without a header list of its
     * own. Plain form POSTs to a kept URL reuse a handle still set up for
     * them; one with credentials in between takes a reset handle, and the
     * next plain one carries none of them. */
    static const char form[] = "query=up&time=1";
    static const char form2[] = "query=sum(up)&time=22";
    static const char json[] = "{\"x\":1}";
    for (int i = 0; i < 6; i++) {
        bool token = i == 2, with_auth = i == 3;
        const char *b = i % 2 ? form2 : form;
        kcw_http_req_t freq = {.method = "POST",
                               .body = with_auth ? json : b,
                               .body_len = strlen(with_auth ? json : b),
                               .form = !with_auth,
                               .url_reused = true,
                               .basic_auth = with_auth ? &auth : NULL,
                               .bearer_token = token ? "tok-9" : NULL};
        get(fx, "/echo", &r, &freq);
        assert_int_equal(r.status, 201);
        assert_string_equal(r.body, with_auth ? json : b);
        pthread_mutex_lock(&fx->srv.mu);
        assert_string_equal(fx->srv.ctype,
                            with_auth ? "application/json" : "application/x-www-form-urlencoded");
        assert_string_equal(fx->srv.auth, token       ? "Bearer tok-9"
                                          : with_auth ? "Basic YWxpY2U6czNjcmV0"
                                                      : "");
        assert_string_equal(fx->srv.ua, "kcwatch/" KCW_VERSION);
        pthread_mutex_unlock(&fx->srv.mu);
    }
}

static void test_http_retry_after(void **state)
{
    fx_t *fx = *state;
    result_t r;
    get(fx, "/retry", &r, NULL);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after_ms, 7000);
    assert_int_equal(r.curl_code, 0);

    get(fx, "/retrydate", &r, NULL);
    assert_int_equal(r.status, 429);
    /* 120 s ahead, minus whole-second rounding and test time. */
    assert_in_range(r.retry_after_ms, 100000, 121000);
}

static void test_http_max_body(void **state)
{
    fx_t *fx = *state;
    kcw_http_req_t req = {.max_body = 1000};
    result_t r;
    get(fx, "/big", &r, &req);
    assert_int_not_equal(r.curl_code, 0);
    assert_false(r.conn_error);
    assert_non_null(strstr(r.error, "larger than 1000 bytes"));
    assert_true(r.body_len <= 1000);

    req.max_body = 200000;
    get(fx, "/big", &r, &req);
    assert_int_equal(r.curl_code, 0);
    assert_int_equal(r.body_len, 100000);
}

/* Streaming (etcd's watch): bytes reach on_data as they come, with the
 * status, and nothing is buffered; a negative return aborts the transfer. */
typedef struct stream {
    size_t bytes;
    int chunks;
    long status;
    size_t stop_after; /* 0: never */
    size_t largest;    /* the largest chunk */
} stream_t;

static int on_chunk(long status, const char *data, size_t len, void *arg)
{
    (void)data;
    result_t *r = arg;
    stream_t *st = (stream_t *)(r + 1);
    st->status = status;
    st->bytes += len;
    st->chunks++;
    if (len > st->largest)
        st->largest = len;
    return st->stop_after && st->bytes >= st->stop_after ? -1 : 0;
}

static void test_http_streaming(void **state)
{
    fx_t *fx = *state;
    struct {
        result_t r;
        stream_t st;
    } s = {0};
    /* max_body does not apply: the callee keeps what it wants. */
    kcw_http_req_t req = {.max_body = 1000, .on_data = on_chunk};
    char url[128];
    snprintf(url, sizeof(url), "%s/big", fx->live_url);
    req.method = "GET";
    req.url = url;
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &s.r), 0);
    assert_true(run_until(fx, result_done, &s.r, DEADLINE_MS));
    assert_int_equal(s.r.curl_code, 0);
    assert_int_equal(s.r.status, 200);
    assert_int_equal(s.r.body_len, 0);
    assert_int_equal(s.st.bytes, 100000);
    assert_int_equal(s.st.status, 200);
    assert_true(s.st.chunks >= 1);
    size_t default_largest = s.st.largest;
    assert_true(default_largest > 1024);
    assert_true(default_largest <= CURL_MAX_WRITE_SIZE);

    /* A receive buffer of its own: no chunk larger than it, the same bytes. */
    memset(&s, 0, sizeof(s));
    req.recv_buffer = 1024;
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &s.r), 0);
    assert_true(run_until(fx, result_done, &s.r, DEADLINE_MS));
    assert_int_equal(s.r.curl_code, 0);
    assert_int_equal(s.st.bytes, 100000);
    assert_true(s.st.largest <= 1024);
    assert_true((size_t)s.st.chunks >= 100000 / 1024);
    req.recv_buffer = 0;

    memset(&s, 0, sizeof(s));
    s.st.stop_after = 1;
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &s.r), 0);
    assert_true(run_until(fx, result_done, &s.r, DEADLINE_MS));
    assert_int_not_equal(s.r.curl_code, 0);
    assert_true(s.st.bytes < 100000);
    assert_int_equal(s.st.chunks, 1);
}

static void test_http_connection_refused(void **state)
{
    fx_t *fx = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/x", fx->dead_url);
    kcw_http_req_t req = {.method = "GET", .url = url};
    result_t r = {0};
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(kcw_http_pending(fx->http), 1);
    assert_true(run_until(fx, result_done, &r, DEADLINE_MS));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_true(r.conn_error);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    assert_true(r.error[0] != '\0');
    assert_int_equal(kcw_http_pending(fx->http), 0);
}

static void test_http_timeout(void **state)
{
    fx_t *fx = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/x", fx->hang_url);
    kcw_http_req_t req = {.method = "GET", .url = url, .timeout_ms = 200};
    result_t r = {0};
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), 0);
    assert_true(run_until(fx, result_done, &r, DEADLINE_MS));
    assert_int_equal(r.status, 0);
    assert_true(r.conn_error);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
}

static void test_http_bad_requests(void **state)
{
    fx_t *fx = *state;
    result_t r = {0};
    kcw_http_req_t req = {.method = "get", .url = fx->live_url};
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), -EINVAL);
    req.method = "GET";
    const char *evil[] = {"X-A: 1\r\nX-B: 2", NULL};
    req.headers = evil;
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), -EINVAL);
    req.headers = NULL;
    req.url = NULL;
    assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), -EINVAL);
    assert_int_equal(kcw_http_pending(fx->http), 0);
    assert_int_equal(r.calls, 0);
}

static void test_http_close_in_flight(void **state)
{
    fx_t *fx = *state;
    char url[128];
    snprintf(url, sizeof(url), "%s/x", fx->hang_url);
    kcw_http_req_t req = {.method = "GET", .url = url, .timeout_ms = 30000};
    result_t r[3];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++)
        assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r[i]), 0);
    /* One live transfer too, so a cached connection exists at close. */
    result_t ok;
    get(fx, "/hello", &ok, NULL);
    assert_int_equal(ok.status, 200);

    /* Cancel one by its arg first. */
    assert_int_equal(kcw_http_cancel(fx->http, &r[2]), 1);
    assert_int_equal(r[2].calls, 1);
    assert_string_equal(r[2].error, "cancelled");
    assert_int_equal(kcw_http_pending(fx->http), 2);

    kcw_http_close(fx->http, set_flag, &fx->http_closed);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_string_equal(r[i].error, "cancelled");
        assert_false(r[i].conn_error);
    }
    assert_false(fx->http_closed); /* only once the handles are closed */
    assert_true(run_until(fx, flag_set, &fx->http_closed, DEADLINE_MS));
}

/* URLs marked url_reused are kept parsed: each request still goes to its
 * own URL, the same easy handles serve plain and kept URLs in turn, and
 * URLs beyond the kept ones are sent as text. */
static void test_http_kept_urls(void **state)
{
    fx_t *fx = *state;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < KCW_HTTP_MAX_KEPT_URLS + 3; i++) {
            char path[64], url[128];
            snprintf(path, sizeof(path), "/kept/%d?round=%d", i, round);
            snprintf(url, sizeof(url), "%s%s", fx->live_url, path);
            kcw_http_req_t req = {.method = "GET", .url = url, .url_reused = (i % 2 == 0)};
            result_t r = {0};
            assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), 0);
            assert_true(run_until(fx, result_done, &r, DEADLINE_MS));
            assert_int_equal(r.curl_code, 0);
            char want[64];
            snprintf(want, sizeof(want), "/kept/%d", i);
            pthread_mutex_lock(&fx->srv.mu);
            assert_string_equal(fx->srv.path, want);
            char query[32];
            snprintf(query, sizeof(query), "round=%d", round);
            assert_non_null(strstr(fx->srv.query, query));
            pthread_mutex_unlock(&fx->srv.mu);
        }
    }
    result_t ok;
    get(fx, "/hello", &ok, NULL);
    assert_int_equal(ok.status, 200);
    assert_string_equal(ok.body, "hello world");
}

/* --- connections kept between rounds ------------------------------------------ */

#define ROUND_SIZE 16

static bool round_done(const void *arg)
{
    const result_t *r = arg;
    for (int i = 0; i < ROUND_SIZE; i++)
        if (r[i].calls == 0)
            return false;
    return true;
}

/* Rounds of 16 requests at once (as a rule group's queries leave), answered
 * one after the other: the second round and the third find the first round's
 * 16 connections idle and take them. libcurl's default bound on idle connections is four per transfer
 * added at the time, which closed some of them as the first round's last
 * answers came in: every round then opened TCP connections again. */
static void test_http_connections_kept_between_rounds(void **state)
{
    fx_t *fx = *state;
    static result_t r[ROUND_SIZE];
    char url[128];
    snprintf(url, sizeof(url), "%s/stagger", fx->live_url);
    for (int round = 0; round < 3; round++) {
        memset(r, 0, sizeof(r));
        for (int i = 0; i < ROUND_SIZE; i++) {
            kcw_http_req_t req = {.method = "GET", .url = url};
            assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r[i]), 0);
        }
        assert_true(run_until(fx, round_done, r, DEADLINE_MS));
        for (int i = 0; i < ROUND_SIZE; i++)
            assert_int_equal(r[i].status, 200);
        if (round == 0)
            assert_true(server_get(&fx->srv, &fx->srv.connections) <= ROUND_SIZE);
    }
    int opened = server_get(&fx->srv, &fx->srv.connections);
    assert_true(opened >= 2); /* the first round did run side by side */
    assert_true(opened <= ROUND_SIZE);
    assert_int_equal(server_get(&fx->srv, &fx->srv.requests), 3 * ROUND_SIZE);
}

/* --- an idle connection the server closes ------------------------------------------ */

/* Accepts `n` connections one after the other; answers one request on each
 * with a keep-alive response, then closes it after `hold` is released. */
typedef struct closer {
    int fd;
    uint16_t port;
    int n;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int served;   /* requests answered */
    bool release; /* close the connection that was answered */
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *c = arg;
    for (int k = 0; k < c->n; k++) {
        int cfd = accept(c->fd, NULL, NULL);
        if (cfd < 0)
            break;
        char buf[2048];
        size_t len = 0;
        while (len < sizeof(buf) - 1) {
            ssize_t got = recv(cfd, buf + len, sizeof(buf) - 1 - len, 0);
            if (got <= 0)
                break;
            len += (size_t)got;
            buf[len] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                 "Content-Type: text/plain\r\n\r\nok";
        ssize_t sent = send(cfd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
        (void)sent;
        pthread_mutex_lock(&c->mu);
        c->served++;
        pthread_cond_broadcast(&c->cv);
        while (!c->release)
            pthread_cond_wait(&c->cv, &c->mu);
        c->release = false;
        pthread_mutex_unlock(&c->mu);
        close(cfd);
    }
    return NULL;
}

typedef struct loop_count {
    int iterations;
} loop_count_t;

static void count_iteration(uv_check_t *h)
{
    ((loop_count_t *)h->data)->iterations++;
}

static void window_over(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* After its answer the connection idles in libcurl's cache with its poll
 * still armed for reading; the server then closes it. The client must not
 * spin on the readable descriptor (the loop turns a handful of times in
 * 200 ms, not thousands), and the next request must find the connection
 * dead and open another. */
static void test_http_idle_connection_closed_by_server(void **state)
{
    fx_t *fx = *state;
    closer_t c = {.n = 2};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.port = bound_socket(&c.fd, true);
    assert_int_equal(pthread_create(&c.thread, NULL, closer_main, &c), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", c.port);

    for (int k = 0; k < 2; k++) {
        result_t r = {0};
        kcw_http_req_t req = {.method = "GET", .url = url};
        assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), 0);
        assert_true(run_until(fx, result_done, &r, DEADLINE_MS));
        assert_int_equal(r.curl_code, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "ok");

        /* The server closes the idle connection. */
        pthread_mutex_lock(&c.mu);
        c.release = true;
        pthread_cond_broadcast(&c.cv);
        pthread_mutex_unlock(&c.mu);

        loop_count_t count = {0};
        uv_check_t check;
        uv_check_init(&fx->loop, &check);
        check.data = &count;
        uv_check_start(&check, count_iteration);
        bool over = false;
        uv_timer_t window;
        uv_timer_init(&fx->loop, &window);
        window.data = &over;
        uv_timer_start(&window, window_over, 200, 0);
        while (!over)
            uv_run(&fx->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&check, NULL);
        uv_close((uv_handle_t *)&window, NULL);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        assert_true(count.iterations < 50);
    }
    pthread_join(c.thread, NULL);
    assert_int_equal(c.served, 2);
    close(c.fd);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
}

static void count_active_polls(uv_handle_t *h, void *arg)
{
    if (h->type == UV_POLL && uv_is_active(h))
        (*(int *)arg)++;
}

/* Names resolve through libcurl's threaded resolver, whose socket pair
 * libcurl closes without the close callback. When a resolution waits on the
 * network (a name not in /etc/hosts), libcurl watches the pair; the next
 * such resolution's pair gets the same number and must be watched anew: a
 * poll still armed under the number would wait for nothing (the kernel
 * dropped the closed descriptor from epoll; libcurl then notices the answer
 * only by its own timer). So once libcurl stops asking about a socket that
 * is not a connection's, no poll of the client stays armed: here, where no
 * connection was ever opened, none at all. Needs a resolver that answers
 * "no such name" for .invalid; skipped where it does not. */
static void test_http_resolver_sockets(void **state)
{
    fx_t *fx = *state;
    const char *names[] = {"http://kcw-one.invalid:1/", "http://kcw-two.invalid:1/",
                           "http://kcw-three.invalid:1/"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        result_t r;
        memset(&r, 0, sizeof(r));
        kcw_http_req_t req = {.method = "GET", .url = names[i], .timeout_ms = 4000};
        uint64_t t0 = uv_hrtime();
        assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r), 0);
        assert_true(run_until(fx, result_done, &r, 8000));
        uint64_t took_ms = (uv_hrtime() - t0) / 1000000u;
        if (i == 0 && r.curl_code != CURLE_COULDNT_RESOLVE_HOST) {
            fprintf(stderr, "no answer for .invalid from the resolver (%s): skipped\n", r.error);
            skip();
        }
        if (r.curl_code != CURLE_COULDNT_RESOLVE_HOST)
            fail_msg("resolution %zu: %s after %llu ms", i, r.error, (unsigned long long)took_ms);
        int armed = 0;
        uv_walk(&fx->loop, count_active_polls, &armed);
        assert_int_equal(armed, 0);
    }
}

static void stale_poll_cb(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)status;
    (void)events;
}

static size_t count_lines_with(FILE *f, const char *needle)
{
    char line[1024];
    size_t n = 0;
    fflush(f);
    rewind(f);
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            n++;
    return n;
}

static bool results_done(const void *arg)
{
    const result_t *r = arg;
    return r[0].calls > 0 && r[1].calls > 0;
}

/* curl_multi_socket_action failing, provoked for real: libuv refuses a
 * second poll handle on a descriptor its loop still watches (UV_EEXIST). The
 * test watches a socket and closes it, so libcurl's next socket gets that
 * number and the client's socket callback fails; libcurl then marks its
 * multi handle dead and curl_multi_socket_action returns
 * CURLM_ABORTED_BY_CALLBACK. Every transfer in flight must come back at once
 * with the reason (not hang until a timeout nobody arms), the failure is
 * logged once, and the next request works. */
static void test_http_multi_failure(void **state)
{
    fx_t *fx = *state;
    FILE *logs = tmpfile();
    assert_non_null(logs);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, logs);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    uv_poll_t stale;
    assert_int_equal(uv_poll_init_socket(&fx->loop, &stale, fd), 0);
    assert_int_equal(uv_poll_start(&stale, UV_READABLE, stale_poll_cb), 0);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* libuv registers it with epoll now */
    close(fd); /* free again for socket(), still watched as far as libuv knows */

    char url[128];
    snprintf(url, sizeof(url), "%s/hello", fx->live_url);
    /* A long timeout: only the failure handling can end these in time. */
    kcw_http_req_t req = {.method = "GET", .url = url, .timeout_ms = 60000};
    result_t r[2];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 2; i++)
        assert_int_equal(kcw_http_request(fx->http, &req, on_resp, &r[i]), 0);
    assert_true(run_until(fx, results_done, r, DEADLINE_MS));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].curl_code, CURLE_ABORTED_BY_CALLBACK);
        assert_false(r[i].conn_error);
        assert_non_null(strstr(r[i].error, "HTTP client failure: "));
        assert_string_not_equal(r[i].error, "cancelled");
    }
    assert_int_equal(kcw_http_pending(fx->http), 0);
    assert_int_equal(count_lines_with(logs, "curl multi failed"), 1);

    uv_close((uv_handle_t *)&stale, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    /* The multi handle holds no transfer any more: libcurl takes new ones. */
    result_t ok;
    get(fx, "/hello", &ok, NULL);
    assert_int_equal(ok.status, 200);
    assert_string_equal(ok.body, "hello world");
    assert_int_equal(count_lines_with(logs, "curl multi failed"), 1);

    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, fx->logs);
    fclose(logs);
}

/* --- Connect client against the fake ------------------------------------------------ */

typedef struct cfgx {
    kcw_config_t cfg;
    kcw_cluster_conf_t cl;
    char *urls[3];
    char buf[3][64];
} cfgx_t;

static void make_cfg(cfgx_t *c, const char *u0, const char *u1, int64_t timeout_ms)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->buf[0], sizeof(c->buf[0]), "%s", u0);
    c->urls[0] = c->buf[0];
    c->cl.n_urls = 1;
    if (u1) {
        snprintf(c->buf[1], sizeof(c->buf[1]), "%s", u1);
        c->urls[1] = c->buf[1];
        c->cl.n_urls = 2;
    }
    c->cl.name = "prod";
    c->cl.urls = c->urls;
    c->cl.poll_interval_ms = 60000;
    c->cl.timeout_ms = timeout_ms;
    c->cfg.clusters = &c->cl;
    c->cfg.n_clusters = 1;
}

typedef struct polls {
    int calls;
    bool last_changed;
    kcw_http_t *http;
    size_t max_pending;
} polls_t;

static void on_poll(kcw_connect_t *cn, size_t idx, bool changed, void *arg)
{
    polls_t *p = arg;
    assert_int_equal(idx, 0);
    assert_non_null(kcw_connect_cluster(cn, idx));
    p->calls++;
    p->last_changed = changed;
}

typedef struct wait_polls {
    const polls_t *p;
    int want;
} wait_polls_t;

static bool polls_reached(const void *arg)
{
    const wait_polls_t *w = arg;
    return w->p->calls >= w->want;
}

/* One poll round; returns the poll callback's changed flag. */
static bool poll_round(fx_t *fx, kcw_connect_t *cn, polls_t *p)
{
    wait_polls_t w = {p, p->calls + 1};
    assert_int_equal(kcw_connect_poll_once(cn), 0);
    assert_int_equal(p->calls, w.want - 1);
    assert_true(run_until(fx, polls_reached, &w, DEADLINE_MS));
    assert_int_equal(p->calls, w.want);
    return p->last_changed;
}

static void connect_close(fx_t *fx, kcw_connect_t *cn)
{
    bool closed = false;
    kcw_connect_close(cn, set_flag, &closed);
    assert_true(run_until(fx, flag_set, &closed, DEADLINE_MS));
}

static const char list_two[] =
    "{\"b-source\": {\"status\": {\"name\": \"b-source\","
    "   \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
    "   \"tasks\": [{\"id\": 1, \"state\": \"FAILED\", \"worker_id\": \"w2\", \"trace\": \"oops\"},"
    "              {\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"w1\"}],"
    "   \"type\": \"source\"},"
    "  \"info\": {\"name\": \"b-source\", \"config\": {\"tasks.max\": \"2\"},"
    "   \"tasks\": [{\"connector\": \"b-source\", \"task\": 0},"
    "             {\"connector\": \"b-source\", \"task\": 1}], \"type\": \"source\"}},"
    " \"a-sink\": {\"status\": {\"name\": \"a-sink\","
    "   \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"}, \"tasks\": [],"
    "   \"type\": \"sink\"},"
    "  \"info\": {\"name\": \"a-sink\", \"config\": {}, \"tasks\": [], \"type\": \"sink\"}}}";

static const char list_one[] =
    "{\"a-sink\": {\"status\": {\"name\": \"a-sink\","
    "   \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"}, \"tasks\": [],"
    "   \"type\": \"sink\"}}}";

typedef struct version_ctx {
    bool done; /* first: flag_set reads it */
    char got[32];
} version_ctx_t;

static void on_version(const char *v, const char *err, void *arg)
{
    version_ctx_t *vc = arg;
    assert_null(err);
    snprintf(vc->got, sizeof(vc->got), "%s", v);
    vc->done = true;
}

static void test_connect_failover_and_version(void **state)
{
    fx_t *fx = *state;
    server_set_list(&fx->srv, 200, "application/json", list_two);
    cfgx_t c;
    make_cfg(&c, fx->dead_url, fx->live_url, 2000);
    polls_t p = {0};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_non_null(cn);
    assert_int_equal(kcw_connect_cluster_count(cn), 1);
    assert_int_equal(kcw_connect_cluster_index(cn, "prod"), 0);
    assert_int_equal(kcw_connect_cluster_index(cn, "nope"), -1);

    assert_true(poll_round(fx, cn, &p));
    const kcw_cluster_status_t *st = kcw_connect_cluster(cn, 0);
    assert_true(st->reachable);
    assert_true(st->ever_reachable);
    assert_null(st->last_error);
    assert_string_equal(st->worker_url, fx->live_url);
    assert_string_equal(st->version, "3.8.0");
    assert_true(st->last_ok_ms > 0);
    assert_int_equal(st->n_connectors, 2);
    assert_string_equal(st->connectors[0].name, "a-sink");
    const kcw_connector_status_t *b = kcw_cluster_status_find(st, "b-source");
    assert_non_null(b);
    assert_int_equal(b->n_tasks, 2);
    assert_int_equal(b->tasks[1].state, KCW_STATE_FAILED);
    assert_int_equal(b->tasks_max, 2);
    assert_int_equal(b->n_task_configs, 2);

    /* The live worker stays current: no second GET / and no new failover. */
    assert_false(poll_round(fx, cn, &p)); /* identical body */
    assert_int_equal(server_get(&fx->srv, &fx->srv.n_root), 1);
    assert_int_equal(server_get(&fx->srv, &fx->srv.n_list), 2);

    /* The cached version comes back on the loop, not inside the call. */
    version_ctx_t vc = {0};
    assert_int_equal(kcw_connect_fetch_version(cn, 0, on_version, &vc), 0);
    assert_false(vc.done);
    assert_true(run_until(fx, flag_set, &vc.done, DEADLINE_MS));
    assert_string_equal(vc.got, "3.8.0");
    assert_int_equal(server_get(&fx->srv, &fx->srv.n_root), 1);
    connect_close(fx, cn);
}

static void test_connect_unreachable_keeps_model(void **state)
{
    fx_t *fx = *state;
    cfgx_t c;
    /* Never reached at all. */
    make_cfg(&c, fx->dead_url, fx->hang_url, 300);
    polls_t p = {0};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_non_null(cn);
    assert_true(poll_round(fx, cn, &p));
    const kcw_cluster_status_t *st = kcw_connect_cluster(cn, 0);
    assert_false(st->reachable);
    assert_false(st->ever_reachable);
    assert_non_null(st->last_error);
    assert_non_null(strstr(st->last_error, "no worker reachable"));
    assert_int_equal(st->n_connectors, 0);
    connect_close(fx, cn);

    /* Reached once, then its only worker dies: connectors stay, stale. */
    server_set_list(&fx->srv, 200, "application/json", list_two);
    make_cfg(&c, fx->live_url, NULL, 1000);
    p = (polls_t){0};
    cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_true(poll_round(fx, cn, &p));
    st = kcw_connect_cluster(cn, 0);
    assert_true(st->reachable);
    assert_int_equal(st->n_connectors, 2);
    server_stop(&fx->srv);
    assert_true(poll_round(fx, cn, &p));
    assert_false(st->reachable);
    assert_true(st->ever_reachable);
    assert_non_null(st->last_error);
    assert_int_equal(st->n_connectors, 2);
    assert_int_equal(st->connectors[0].missing_polls, 0);
    assert_int_equal(st->connectors[1].missing_polls, 0);
    /* Still down: same error, nothing new to evaluate. */
    assert_false(poll_round(fx, cn, &p));
    connect_close(fx, cn);
}

static void test_connect_array_fallback(void **state)
{
    fx_t *fx = *state;
    /* Worker < 2.3 ignores expand (§3.5); "gone" has no status record yet. */
    server_set_list(&fx->srv, 200, "application/json", "[\"gone\", \"b-conn\", \"a conn\"]");
    cfgx_t c;
    make_cfg(&c, fx->live_url, NULL, 2000);
    polls_t p = {0};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_true(poll_round(fx, cn, &p));
    const kcw_cluster_status_t *st = kcw_connect_cluster(cn, 0);
    assert_true(st->reachable);
    assert_null(st->last_error);
    assert_int_equal(st->n_connectors, 2);
    /* The name with a space travelled percent-encoded and came back. */
    const kcw_connector_status_t *a = kcw_cluster_status_find(st, "a conn");
    assert_non_null(a);
    assert_int_equal(a->type, KCW_CTYPE_SOURCE);
    assert_int_equal(a->tasks[0].state, KCW_STATE_FAILED);
    assert_string_equal(a->tasks[0].trace, "boom");
    assert_true(a->has_info);
    assert_int_equal(a->n_task_configs, 2);
    assert_int_equal(a->tasks_max, 4);
    /* Info answered 500 (rebalance): unknown, not fatal. */
    const kcw_connector_status_t *b = kcw_cluster_status_find(st, "b-conn");
    assert_non_null(b);
    assert_int_equal(b->state, KCW_STATE_PAUSED);
    assert_false(b->has_info);
    assert_int_equal(b->tasks_max, -1);
    assert_null(kcw_cluster_status_find(st, "gone"));
    /* Array replies are always re-read: the statuses live elsewhere. */
    assert_true(poll_round(fx, cn, &p));
    assert_int_equal(st->n_connectors, 2);
    connect_close(fx, cn);
}

static void test_connect_errors_keep_model(void **state)
{
    fx_t *fx = *state;
    server_set_list(&fx->srv, 200, "application/json", list_two);
    cfgx_t c;
    make_cfg(&c, fx->live_url, NULL, 2000);
    polls_t p = {0};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_true(poll_round(fx, cn, &p));
    const kcw_cluster_status_t *st = kcw_connect_cluster(cn, 0);
    assert_int_equal(st->n_connectors, 2);

    /* Truncated JSON. */
    char cut[200];
    memcpy(cut, list_two, sizeof(cut) - 1);
    cut[sizeof(cut) - 1] = '\0';
    server_set_list(&fx->srv, 200, "application/json", cut);
    assert_true(poll_round(fx, cn, &p));
    assert_true(st->reachable);
    assert_non_null(st->last_error);
    assert_non_null(strstr(st->last_error, "invalid JSON"));
    assert_int_equal(st->n_connectors, 2);
    assert_int_equal(kcw_cluster_status_find(st, "b-source")->tasks[1].state, KCW_STATE_FAILED);

    /* Jetty's own 404 while the worker starts (§7.5). */
    server_set_list(&fx->srv, 404, "text/html", "<html><body>Not Found</body></html>");
    poll_round(fx, cn, &p);
    assert_true(st->reachable);
    assert_non_null(strstr(st->last_error, "HTTP 404"));
    assert_int_equal(st->n_connectors, 2);

    /* JSON error body of a 500 (§7.1): its message is kept. */
    server_set_list(&fx->srv, 500, "application/json", error_500);
    poll_round(fx, cn, &p);
    assert_non_null(strstr(st->last_error, "HTTP 500: Request timed out"));
    assert_int_equal(st->n_connectors, 2);

    /* Plain-text 401 from the basic-auth extension (§8). */
    server_set_list(&fx->srv, 401, "text/plain", "User cannot access the resource.");
    poll_round(fx, cn, &p);
    assert_non_null(strstr(st->last_error, "HTTP 401: User cannot access the resource."));
    assert_true(st->reachable);
    assert_int_equal(st->n_connectors, 2);

    /* Same good body as before the errors: not re-parsed, but the recovery is news. */
    server_set_list(&fx->srv, 200, "application/json", list_two);
    assert_true(poll_round(fx, cn, &p));
    assert_null(st->last_error);
    assert_false(poll_round(fx, cn, &p));
    connect_close(fx, cn);
}

static void test_connect_missing_connectors(void **state)
{
    fx_t *fx = *state;
    server_set_list(&fx->srv, 200, "application/json", list_two);
    cfgx_t c;
    make_cfg(&c, fx->live_url, NULL, 2000);
    polls_t p = {0};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    assert_true(poll_round(fx, cn, &p));
    const kcw_cluster_status_t *st = kcw_connect_cluster(cn, 0);
    assert_false(poll_round(fx, cn, &p)); /* byte-identical */

    /* b-source absent: kept, counted (absence is not deletion, §3.5). */
    server_set_list(&fx->srv, 200, "application/json", list_one);
    assert_true(poll_round(fx, cn, &p));
    assert_int_equal(st->n_connectors, 2);
    const kcw_connector_status_t *b = kcw_cluster_status_find(st, "b-source");
    assert_non_null(b);
    assert_int_equal(b->missing_polls, 1);
    assert_int_equal(b->tasks[1].state, KCW_STATE_FAILED);
    assert_int_equal(kcw_cluster_status_find(st, "a-sink")->missing_polls, 0);
    /* a-sink lost its info in this body; the last known info is kept. */
    assert_true(kcw_cluster_status_find(st, "a-sink")->has_info);

    /* Same body again: still counted even though it is not re-parsed. */
    assert_true(poll_round(fx, cn, &p));
    assert_int_equal(kcw_cluster_status_find(st, "b-source")->missing_polls, 2);
    assert_true(poll_round(fx, cn, &p));
    assert_null(kcw_cluster_status_find(st, "b-source"));
    assert_int_equal(st->n_connectors, 1);
    assert_false(poll_round(fx, cn, &p));

    /* An empty list from a worker that just started (§7.5) drops nothing at once. */
    server_set_list(&fx->srv, 200, "application/json", "{}");
    assert_true(poll_round(fx, cn, &p));
    assert_int_equal(st->n_connectors, 1);
    assert_int_equal(st->connectors[0].missing_polls, 1);
    server_set_list(&fx->srv, 200, "application/json", list_two);
    assert_true(poll_round(fx, cn, &p));
    assert_int_equal(st->n_connectors, 2);
    assert_int_equal(st->connectors[0].missing_polls, 0);
    connect_close(fx, cn);
}

typedef struct call {
    int calls;
    long status;
    bool has_status;
    int n_tasks;
    int first_task;
    kcw_state_t first_state;
    int64_t retry_after_ms;
    char err[256];
} call_t;

static void on_call(long http_status, const kcw_connector_status_t *status, const char *err,
                    void *arg)
{
    call_t *c = arg;
    c->calls++;
    c->status = http_status;
    c->has_status = status != NULL;
    if (status) {
        c->n_tasks = (int)status->n_tasks;
        c->first_task = status->n_tasks ? status->tasks[0].id : -1;
        c->first_state = status->n_tasks ? status->tasks[0].state : KCW_STATE_UNKNOWN;
    }
    snprintf(c->err, sizeof(c->err), "%s", err ? err : "");
}

static void on_restart_call(long http_status, const kcw_connector_status_t *status,
                            const char *err, int64_t retry_after_ms, void *arg)
{
    call_t *c = arg;
    c->retry_after_ms = retry_after_ms;
    on_call(http_status, status, err, arg);
}

static bool call_done(const void *arg)
{
    return ((const call_t *)arg)->calls > 0;
}

static void run_call(fx_t *fx, int rc, call_t *c)
{
    assert_int_equal(rc, 0);
    assert_int_equal(c->calls, 0);
    assert_true(run_until(fx, call_done, c, DEADLINE_MS));
    assert_int_equal(c->calls, 1);
}

static void test_connect_restart_lines(void **state)
{
    fx_t *fx = *state;
    cfgx_t c;
    make_cfg(&c, fx->dead_url, fx->live_url, 2000);
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, NULL, NULL);
    assert_non_null(cn);
    char line[512], want[512];

    kcw_connect_restart_describe(cn, 0, "orders sink", -1, KCW_RESTART_FAILED_KIP745, line,
                                 sizeof(line));
    snprintf(want, sizeof(want),
             "POST %s/connectors/orders%%20sink/restart?includeTasks=true&onlyFailed=true",
             fx->dead_url);
    assert_string_equal(line, want);
    kcw_connect_restart_describe(cn, 0, "a/b", 3, KCW_RESTART_TASK, line, sizeof(line));
    snprintf(want, sizeof(want), "POST %s/connectors/a%%2Fb/tasks/3/restart", fx->dead_url);
    assert_string_equal(line, want);

    /* Refused before anything was sent: safe to go to the next worker. */
    call_t r = {0};
    run_call(fx,
             kcw_connect_restart(cn, 0, "orders sink", -1, KCW_RESTART_FAILED_KIP745, on_restart_call, &r),
             &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.err, "");
    assert_true(r.has_status);
    assert_int_equal(r.n_tasks, 2);
    assert_int_equal(r.first_task, 0); /* sorted (§5.3) */
    /* The next call goes to the worker that answered. */
    kcw_connect_restart_describe(cn, 0, "orders-sink", -1, KCW_RESTART_CONNECTOR, line,
                                 sizeof(line));
    snprintf(want, sizeof(want), "POST %s/connectors/orders-sink/restart", fx->live_url);
    assert_string_equal(line, want);

    r = (call_t){0};
    run_call(fx, kcw_connect_restart(cn, 0, "orders sink", -1, KCW_RESTART_CONNECTOR, on_restart_call, &r),
             &r);
    assert_int_equal(r.status, 204);
    assert_false(r.has_status);
    assert_string_equal(r.err, "");

    r = (call_t){0};
    run_call(fx, kcw_connect_restart(cn, 0, "orders sink", 3, KCW_RESTART_TASK, on_restart_call, &r), &r);
    assert_int_equal(r.status, 204);

    pthread_mutex_lock(&fx->srv.mu);
    assert_int_equal(fx->srv.n_restarts, 3);
    assert_string_equal(fx->srv.restarts[0],
                        "POST /connectors/orders sink/restart?includeTasks=true&onlyFailed=true");
    assert_string_equal(fx->srv.restarts[1], "POST /connectors/orders sink/restart");
    assert_string_equal(fx->srv.restarts[2], "POST /connectors/orders sink/tasks/3/restart");
    pthread_mutex_unlock(&fx->srv.mu);

    assert_int_equal(kcw_connect_restart(cn, 0, "x", -1, KCW_RESTART_TASK, on_restart_call, &r), -EINVAL);
    assert_int_equal(kcw_connect_restart(cn, 5, "x", -1, KCW_RESTART_CONNECTOR, on_restart_call, &r),
                     -EINVAL);

    /* fetch_status: 200 with a body, 404 without. */
    call_t s = {0};
    run_call(fx, kcw_connect_fetch_status(cn, 0, "orders sink", on_call, &s), &s);
    assert_int_equal(s.status, 200);
    assert_true(s.has_status);
    assert_int_equal(s.first_state, KCW_STATE_RUNNING);
    s = (call_t){0};
    run_call(fx, kcw_connect_fetch_status(cn, 0, "unknown", on_call, &s), &s);
    assert_int_equal(s.status, 404);
    assert_false(s.has_status);
    assert_non_null(strstr(s.err, "No status found"));
    connect_close(fx, cn);
}

static void test_connect_restart_timeout_not_retried(void **state)
{
    fx_t *fx = *state;
    cfgx_t c;
    make_cfg(&c, fx->hang_url, fx->live_url, 300);
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, NULL, NULL);
    call_t r = {0};
    run_call(fx,
             kcw_connect_restart(cn, 0, "orders sink", -1, KCW_RESTART_FAILED_KIP745, on_restart_call, &r),
             &r);
    /* The worker may have acted on it: no second POST anywhere. */
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "may have been applied"));
    assert_int_equal(server_get(&fx->srv, &fx->srv.n_restarts), 0);

    /* A read, by contrast, fails over on a timeout. */
    call_t s = {0};
    run_call(fx, kcw_connect_fetch_status(cn, 0, "orders sink", on_call, &s), &s);
    assert_int_equal(s.status, 200);
    connect_close(fx, cn);
}

static void sample_pending(uv_timer_t *t)
{
    polls_t *p = t->data;
    size_t n = kcw_http_pending(p->http);
    if (n > p->max_pending)
        p->max_pending = n;
}

static void test_connect_no_overlapping_polls(void **state)
{
    fx_t *fx = *state;
    cfgx_t c;
    /* A worker that hangs for 400 ms while ticks come every 30 ms. */
    make_cfg(&c, fx->hang_url, NULL, 400);
    c.cl.poll_interval_ms = 30;
    polls_t p = {.http = fx->http};
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, on_poll, &p);
    uv_timer_t sampler;
    uv_timer_init(&fx->loop, &sampler);
    sampler.data = &p;
    uv_timer_start(&sampler, sample_pending, 5, 5);
    assert_int_equal(kcw_connect_start(cn), 0);
    wait_polls_t w = {&p, 2};
    assert_true(run_until(fx, polls_reached, &w, DEADLINE_MS));
    assert_int_equal(p.max_pending, 1);
    assert_false(kcw_connect_cluster(cn, 0)->reachable);

    /* Close with a poll in flight: no callback after close, clean shutdown. */
    int calls = p.calls;
    uv_close((uv_handle_t *)&sampler, NULL);
    connect_close(fx, cn);
    assert_int_equal(p.calls, calls);
    assert_int_equal(kcw_http_pending(fx->http), 0);
}

static void test_connect_close_cancels_calls(void **state)
{
    fx_t *fx = *state;
    cfgx_t c;
    make_cfg(&c, fx->hang_url, NULL, 30000);
    kcw_connect_t *cn = kcw_connect_new(&fx->loop, fx->http, &c.cfg, NULL, NULL);
    call_t r = {0};
    assert_int_equal(kcw_connect_restart(cn, 0, "x", -1, KCW_RESTART_FAILED_KIP745, on_restart_call, &r),
                     0);
    assert_int_equal(kcw_http_pending(fx->http), 1);
    bool closed = false;
    kcw_connect_close(cn, set_flag, &closed);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "cancelled");
    assert_int_equal(kcw_http_pending(fx->http), 0);
    assert_true(run_until(fx, flag_set, &closed, DEADLINE_MS));
}

/* Retry-After as a pure function: seconds, dates, and the far-future date
 * the fuzzer found (its milliseconds overflowed int64). */
static void test_retry_after_parse(void **state)
{
    (void)state;
    const int64_t day = 24LL * 3600 * 1000;
    assert_int_equal(kcw_http_retry_after_parse("120"), 120000);
    assert_int_equal(kcw_http_retry_after_parse(" 7 "), 7000);
    assert_int_equal(kcw_http_retry_after_parse("99999999999999999999"), day);
    assert_int_equal(kcw_http_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
    assert_int_equal(kcw_http_retry_after_parse("Nov620000000 2"), day);
    assert_int_equal(kcw_http_retry_after_parse("Fri, 31 Dec 9999 23:59:59 GMT"), day);
    assert_int_equal(kcw_http_retry_after_parse(""), -1);
    assert_int_equal(kcw_http_retry_after_parse("soon"), -1);
    assert_int_equal(kcw_http_retry_after_parse("12x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test_setup_teardown(test_http_get_ok_and_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_post_body_and_basic_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_max_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_multi_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_kept_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_connections_kept_between_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_idle_connection_closed_by_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_resolver_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failover_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_unreachable_keeps_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_array_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_errors_keep_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_missing_connectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_restart_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_restart_timeout_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_no_overlapping_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_close_cancels_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
