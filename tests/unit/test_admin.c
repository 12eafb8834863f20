/* test_admin.c: the admin HTTP server on a real libuv loop, and its pure
 * helpers (listen addresses, Prometheus API envelopes).
 *
 * Each server test starts the server on 127.0.0.1 port 0 and runs a client
 * in a second thread with libcurl's easy interface (blocking, which is fine
 * off the loop). The loop runs in the test's thread until the client says it
 * is done through a uv_async, or a deadline timer fires. The client only
 * records what it saw; every assertion runs in the test's thread after the
 * client thread has been joined. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kcwatch/admin.h"
#include "kcwatch/log.h"

#define DEADLINE_MS 20000
#define CLIENT_TIMEOUT_MS 5000
#define TOKEN "s3cret-token"

/* --- what the client saw ------------------------------------------------------ */

typedef struct http_result {
    int curl_code;
    long status;
    char body[8192];
    size_t body_len;
    bool body_truncated;
    char content_type[128];
    char allow[128];
    char www_auth[128];
    long num_connects;
} http_result_t;

typedef struct client_req {
    const char *method;
    const char *path;
    const char *body;  /* NULL: none */
    size_t body_len;   /* 0 = strlen(body) */
    const char *auth;  /* full Authorization header value, NULL: none */
    size_t big_header; /* add an X-Big header of this many bytes */
    bool chunked;      /* send body_len bytes of 'x' with chunked encoding */
    bool expect;       /* ask for 100-continue before sending the body */
    long timeout_ms;   /* 0 = CLIENT_TIMEOUT_MS */
} client_req_t;

/* --- fixture ------------------------------------------------------------------ */

typedef struct fixture {
    uv_loop_t loop;
    kcw_admin_t *admin;
    unsigned port;
    const char *host; /* for URLs: "127.0.0.1" or "[::1]" */

    /* loop-side handles of one client run */
    uv_async_t async;
    uv_timer_t deadline;
    uv_timer_t wait_conns;
    bool torn_down, timed_out, admin_closed;
    int run_handles_open;

    /* shared with the client thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool async_open;
    int client_stage; /* close test: 1 = connected, 2 = finished */
    bool client_done;
    bool server_closed;

    /* client script and results (client thread writes, test reads after join) */
    const client_req_t *reqs;
    size_t n_reqs;
    http_result_t *results;
    int raw_recv; /* close test: recv() result on the half-sent request */
    int raw_errno;

    /* handler records (loop thread only) */
    int calls;
    int reloads;
    char last_method[16];
    char last_body[128 * 1024];
    size_t last_body_len;
    size_t echo_lens[16]; /* body length of each /echo call */
    int n_echo;
    char last_arg[64];
    bool last_arg_present;
    char last_header[64];
} fixture_t;

static void on_admin_closed(void *arg)
{
    fixture_t *f = arg;
    f->admin = NULL;
    f->admin_closed = true;
    pthread_mutex_lock(&f->mu);
    f->server_closed = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* --- handlers ----------------------------------------------------------------- */

static int h_hello(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    fixture_t *f = arg;
    f->calls++;
    snprintf(f->last_method, sizeof f->last_method, "%s", req->method);
    return kcw_admin_response_text(resp, 200, NULL, "hello world\n");
}

static int h_things(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    fixture_t *f = arg;
    f->calls++;
    const char *q = kcw_admin_request_arg(req, "q");
    f->last_arg_present = q != NULL;
    snprintf(f->last_arg, sizeof f->last_arg, "%s", q ? q : "");
    const char *ua = kcw_admin_request_header(req, "x-test-header");
    snprintf(f->last_header, sizeof f->last_header, "%s", ua ? ua : "");
    return kcw_admin_response_success(resp, json_pack("{s:i}", "n", 1));
}

static int h_echo(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    fixture_t *f = arg;
    f->calls++;
    snprintf(f->last_method, sizeof f->last_method, "%s", req->method);
    f->last_body_len = req->body_len;
    if (f->n_echo < 16)
        f->echo_lens[f->n_echo++] = req->body_len;
    if (req->body_len < sizeof f->last_body)
        memcpy(f->last_body, req->body, req->body_len + 1); /* with the NUL */
    char *copy = malloc(req->body_len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, req->body, req->body_len);
    copy[req->body_len] = '\0';
    resp->status = 201;
    resp->body = copy;
    resp->body_len = req->body_len;
    resp->content_type = "application/octet-stream";
    return 0;
}

static int h_reload(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    fixture_t *f = arg;
    f->reloads++;
    return kcw_admin_response_success(resp, NULL);
}

static int h_fail(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    fixture_t *f = arg;
    f->calls++;
    /* a half-built answer must be freed by the server */
    resp->body = strdup("partial");
    return -EIO;
}

/* A prefix route: records what followed the prefix. */
static int h_item(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    fixture_t *f = arg;
    f->calls++;
    snprintf(f->last_method, sizeof f->last_method, "%s", req->method);
    snprintf(f->last_arg, sizeof f->last_arg, "%s", req->rest);
    return kcw_admin_response_text(resp, 200, NULL, req->rest);
}

static int h_no_content(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    (void)arg;
    resp->status = 204;
    return 0;
}

/* --- client thread ------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    http_result_t *r = userp;
    size_t n = size * nmemb;
    size_t room = sizeof r->body - 1 - r->body_len;
    size_t take = n < room ? n : room;
    if (take < n)
        r->body_truncated = true;
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    http_result_t *r = userp;
    size_t n = size * nmemb;
    header_value(data, n, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(data, n, "Allow", r->allow, sizeof r->allow);
    header_value(data, n, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    return n;
}

typedef struct chunk_src {
    size_t left;
} chunk_src_t;

static size_t on_read(char *buf, size_t size, size_t nmemb, void *userp)
{
    chunk_src_t *src = userp;
    size_t n = size * nmemb;
    if (n > src->left)
        n = src->left;
    memset(buf, 'x', n);
    src->left -= n;
    return n;
}

/* One request on handle c; the handle keeps its connection between calls. */
static void do_request(CURL *c, const fixture_t *f, const client_req_t *rq, http_result_t *res)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s:%u%s", f->host, f->port, rq->path);
    memset(res, 0, sizeof *res);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms ? rq->timeout_ms : CLIENT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, res);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, res);

    struct curl_slist *hdrs = NULL;
    char auth[256];
    if (rq->expect)
        hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
    if (rq->auth) {
        snprintf(auth, sizeof auth, "Authorization: %s", rq->auth);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "X-Test-Header: from-client");
    char *big = NULL;
    if (rq->big_header) {
        big = malloc(rq->big_header + 8);
        if (big) {
            memcpy(big, "X-Big: ", 7);
            memset(big + 7, 'h', rq->big_header);
            big[7 + rq->big_header] = '\0';
            hdrs = curl_slist_append(hdrs, big);
        }
    }

    chunk_src_t src = {rq->body_len};
    const char *m = rq->method ? rq->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (rq->chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    } else if (rq->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
                         (long)(rq->body_len ? rq->body_len : strlen(rq->body)));
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
    } else if (strcmp(m, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    res->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &res->num_connects);
    curl_slist_free_all(hdrs);
    free(big);
}

static void client_signal(fixture_t *f, int stage)
{
    pthread_mutex_lock(&f->mu);
    f->client_stage = stage;
    if (stage == 2)
        f->client_done = true;
    if (f->async_open)
        uv_async_send(&f->async);
    pthread_mutex_unlock(&f->mu);
}

/* Runs the script on one easy handle (one keep-alive connection). */
static void *client_script(void *arg)
{
    fixture_t *f = arg;
    CURL *c = curl_easy_init();
    if (c) {
        for (size_t i = 0; i < f->n_reqs; i++)
            do_request(c, f, &f->reqs[i], &f->results[i]);
        curl_easy_cleanup(c);
    }
    client_signal(f, 2);
    return NULL;
}

/* --- loop side ----------------------------------------------------------------- */

static void on_run_handle_closed(uv_handle_t *h)
{
    fixture_t *f = h->data;
    f->run_handles_open--;
}

static void tear_down_run(fixture_t *f)
{
    if (f->torn_down)
        return;
    f->torn_down = true;
    pthread_mutex_lock(&f->mu);
    f->async_open = false;
    pthread_mutex_unlock(&f->mu);
    uv_close((uv_handle_t *)&f->async, on_run_handle_closed);
    uv_close((uv_handle_t *)&f->deadline, on_run_handle_closed);
    uv_close((uv_handle_t *)&f->wait_conns, on_run_handle_closed);
}

static void on_wait_conns(uv_timer_t *t)
{
    fixture_t *f = t->data;
    /* the keep-alive connection and the half-sent request are both accepted */
    if (f->admin && kcw_admin_connections(f->admin) >= 2) {
        uv_timer_stop(t);
        kcw_admin_close(f->admin, on_admin_closed, f);
    }
}

static void on_async(uv_async_t *h)
{
    fixture_t *f = h->data;
    pthread_mutex_lock(&f->mu);
    int stage = f->client_stage;
    bool done = f->client_done;
    pthread_mutex_unlock(&f->mu);
    if (done)
        tear_down_run(f);
    else if (stage == 1)
        uv_timer_start(&f->wait_conns, on_wait_conns, 0, 1);
}

static void on_deadline(uv_timer_t *t)
{
    fixture_t *f = t->data;
    f->timed_out = true;
    if (f->admin)
        kcw_admin_close(f->admin, on_admin_closed, f);
    tear_down_run(f);
}

/* Runs the loop with client() in a thread until it is done. The server stays
 * up afterwards (its handles keep the loop alive), so the loop runs one
 * iteration at a time until this run's own handles are closed. */
static void run_client(fixture_t *f, void *(*client)(void *))
{
    f->torn_down = false;
    f->timed_out = false;
    f->client_done = false;
    f->client_stage = 0;
    assert_int_equal(uv_async_init(&f->loop, &f->async, on_async), 0);
    f->async.data = f;
    assert_int_equal(uv_timer_init(&f->loop, &f->deadline), 0);
    f->deadline.data = f;
    assert_int_equal(uv_timer_init(&f->loop, &f->wait_conns), 0);
    f->wait_conns.data = f;
    assert_int_equal(uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0), 0);
    f->async_open = true;
    f->run_handles_open = 3;

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client, f), 0);
    while (f->run_handles_open > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    assert_false(f->timed_out);
}

static void run_script(fixture_t *f, const client_req_t *reqs, size_t n, http_result_t *results)
{
    f->reqs = reqs;
    f->n_reqs = n;
    f->results = results;
    run_client(f, client_script);
}

/* --- setup ---------------------------------------------------------------------- */

static fixture_t *fixture_new(const kcw_admin_opts_t *opts)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->host = "127.0.0.1";
    char err[256] = "";
    f->admin = kcw_admin_new(&f->loop, opts, err, sizeof err);
    if (!f->admin)
        fail_msg("kcw_admin_new: %s", err);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/hello", h_hello, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/api/v1/things", h_things, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "POST", "/echo", h_echo, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "PUT", "/echo", h_echo, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "POST", "/-/reload", h_reload, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/fail", h_fail, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/empty", h_no_content, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/item/*", h_item, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "DELETE", "/item/*", h_item, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/item/special", h_hello, f), 0);
    int rc = kcw_admin_start(f->admin, err, sizeof err);
    if (rc != 0)
        fail_msg("kcw_admin_start: %d %s", rc, err);
    f->port = kcw_admin_port(f->admin);
    assert_true(f->port > 0);
    return f;
}

static void fixture_free(fixture_t *f)
{
    if (f->admin)
        kcw_admin_close(f->admin, on_admin_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->admin_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

static int setup(void **state)
{
    kcw_admin_opts_t opts = {.listen = "127.0.0.1:0", .max_body = 64 * 1024};
    *state = fixture_new(&opts);
    return 0;
}

static int setup_small_body(void **state)
{
    kcw_admin_opts_t opts = {.listen = "127.0.0.1:0", .max_body = 1024};
    *state = fixture_new(&opts);
    return 0;
}

static int setup_one_connection(void **state)
{
    kcw_admin_opts_t opts = {.listen = "127.0.0.1:0", .max_connections = 1};
    *state = fixture_new(&opts);
    return 0;
}

static int teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

/* Parses body as a JSON object and checks the Prometheus error shape. */
static void assert_error_json(const http_result_t *r, const char *error_type, const char *needle)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!doc)
        fail_msg("not JSON (%s): %s", jerr.text, r->body);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(doc, "errorType")), error_type);
    const char *msg = json_string_value(json_object_get(doc, "error"));
    assert_non_null(msg);
    if (needle && !strstr(msg, needle))
        fail_msg("error \"%s\" lacks \"%s\"", msg, needle);
    assert_int_equal(json_object_size(doc), 3);
    json_decref(doc);
    assert_string_equal(r->content_type, "application/json");
}

/* --- pure helpers ------------------------------------------------------------------ */

static void test_listen_parse(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    char err[256];
    char ip[64];

    assert_int_equal(kcw_admin_listen_parse("127.0.0.1:9464", &ss, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    assert_int_equal(ntohs(s4->sin_port), 9464);
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");

    assert_int_equal(kcw_admin_listen_parse("[::1]:0", &ss, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    assert_int_equal(ntohs(s6->sin6_port), 0);
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    assert_string_equal(ip, "::1");

    assert_int_equal(kcw_admin_listen_parse("localhost:65535", &ss, err, sizeof err), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 65535);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "127.0.0.1");

    assert_int_equal(kcw_admin_listen_parse(":9464", &ss, err, sizeof err), 0);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "0.0.0.0");

    assert_int_equal(kcw_admin_listen_parse("[::]:80", &ss, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);

    static const char *const bad[] = {
        "",
        "9464",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "1.2.3.4:-1",
        "1.2.3.4:12a",
        "1.2.3.4:99999",
        "example.com:80",
        "::1:9464",
        "[::1",
        "[::1]9464",
        "[::1]:",
        "[127.0.0.1]:80",
        "256.1.1.1:80",
        "1.2.3.4:+80",
        "[nope]:80",
        "1.2.3.4: 80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (kcw_admin_listen_parse(bad[i], &ss, err, sizeof err) != -EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
        if (!err[0])
            fail_msg("\"%s\": no message", bad[i]);
    }
    kcw_admin_listen_parse("example.com:80", &ss, err, sizeof err);
    assert_non_null(strstr(err, "example.com"));
    assert_int_equal(kcw_admin_listen_parse(NULL, &ss, err, sizeof err), -EINVAL);
}

static void test_envelopes(void **state)
{
    (void)state;
    json_t *doc = kcw_admin_envelope_success(json_pack("[i,i]", 1, 2));
    assert_non_null(doc);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"data\":[1,2],\"status\":\"success\"}");
    free(s);
    json_decref(doc);

    doc = kcw_admin_envelope_success(NULL);
    s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"data\":null,\"status\":\"success\"}");
    free(s);
    json_decref(doc);

    doc = kcw_admin_envelope_error("bad_data", "invalid \"expr\"");
    s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"error\":\"invalid \\\"expr\\\"\",\"errorType\":\"bad_data\",\"status\":\"error\"}");
    free(s);
    json_decref(doc);

    /* invalid UTF-8 (a client's path) still yields a message */
    doc = kcw_admin_envelope_error("not_found", "no such endpoint: /\xff\xfe");
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "no such endpoint: /??");
    json_decref(doc);

    kcw_admin_response_t resp = {.status = 200};
    resp.body = strdup("old"); /* replaced and freed */
    assert_int_equal(kcw_admin_response_error(&resp, 503, "unavailable", "not ready"), 0);
    assert_int_equal(resp.status, 503);
    assert_string_equal(resp.content_type, KCW_ADMIN_CT_JSON);
    assert_string_equal(
        resp.body, "{\"status\":\"error\",\"errorType\":\"unavailable\",\"error\":\"not ready\"}");
    assert_int_equal(resp.body_len, strlen(resp.body));

    assert_int_equal(kcw_admin_response_success(&resp, json_string("x")), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "{\"status\":\"success\",\"data\":\"x\"}");

    assert_int_equal(kcw_admin_response_json(&resp, 200, json_integer(7)), 0);
    assert_string_equal(resp.body, "7");
    assert_int_equal(kcw_admin_response_json(&resp, 200, NULL), -EINVAL);

    assert_int_equal(kcw_admin_response_text(&resp, 200, KCW_ADMIN_CT_METRICS, "up 1\n"), 0);
    assert_string_equal(resp.body, "up 1\n");
    assert_string_equal(resp.content_type, KCW_ADMIN_CT_METRICS);
    free(resp.body);
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

static void test_new_and_route_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    kcw_admin_opts_t bad = {.listen = "nohost"};
    assert_null(kcw_admin_new(&loop, &bad, err, sizeof err));
    assert_non_null(strstr(err, "nohost"));

    /* defaults: 127.0.0.1:9464, not bound until start */
    kcw_admin_t *a = kcw_admin_new(&loop, NULL, err, sizeof err);
    assert_non_null(a);
    assert_int_equal(kcw_admin_port(a), 0);
    assert_int_equal(kcw_admin_route(a, "GET", "/x", h_hello, NULL), 0);
    assert_int_equal(kcw_admin_route(a, "GET", "/x", h_hello, NULL), -EEXIST);
    assert_int_equal(kcw_admin_route(a, "get", "/y", h_hello, NULL), -EINVAL);
    assert_int_equal(kcw_admin_route(a, "GET", "y", h_hello, NULL), -EINVAL);
    assert_int_equal(kcw_admin_route(a, "GET", "/y", NULL, NULL), -EINVAL);
    assert_int_equal(kcw_admin_route(a, "GET", "/a*b", h_hello, NULL), -EINVAL);
    assert_int_equal(kcw_admin_route(a, "GET", "/*", h_hello, NULL), -EINVAL);
    assert_int_equal(kcw_admin_route(a, "GET", "/x/*", h_hello, NULL), 0);
    assert_int_equal(kcw_admin_route(a, "GET", "/x/*", h_hello, NULL), -EEXIST);
    assert_int_equal(kcw_admin_route(a, "GET", "/x/", h_hello, NULL), 0); /* exact, distinct */
    int rc = 0;
    char path[32];
    for (int i = 0; i < 40 && rc == 0; i++) {
        snprintf(path, sizeof path, "/r%d", i);
        rc = kcw_admin_route(a, "GET", path, h_hello, NULL);
    }
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(kcw_admin_set_token(a, "t"), 0);
    assert_int_equal(kcw_admin_set_token(a, ""), 0);

    bool closed = false;
    kcw_admin_close(a, set_flag, &closed);
    assert_false(closed); /* on_closed runs from the loop, never inline */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* DNS rebinding: a browser sends the attacker's name as Host. Only
 * loopback literals, localhost, our own address and configured names pass. */
static void test_host_policy(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256] = "";
    const char *const names[] = {"kcwatch.internal", NULL};
    kcw_admin_opts_t lo = {.listen = "127.0.0.1:9464", .allowed_hosts = names};
    kcw_admin_t *a = kcw_admin_new(&loop, &lo, err, sizeof err);
    assert_non_null(a);
    assert_true(kcw_admin_host_allowed(a, "127.0.0.1:9464"));
    assert_true(kcw_admin_host_allowed(a, "127.0.0.2"));
    assert_true(kcw_admin_host_allowed(a, "localhost:9464"));
    assert_true(kcw_admin_host_allowed(a, "LOCALHOST."));
    assert_true(kcw_admin_host_allowed(a, "[::1]:9464"));
    assert_true(kcw_admin_host_allowed(a, "KCWatch.Internal:80"));
    assert_true(kcw_admin_host_allowed(a, NULL));
    assert_false(kcw_admin_host_allowed(a, "evil.example.com"));
    assert_false(kcw_admin_host_allowed(a, "evil.example.com:9464"));
    assert_false(kcw_admin_host_allowed(a, "localhost.evil.example.com"));
    assert_false(kcw_admin_host_allowed(a, "10.0.0.5:9464")); /* not our address */
    assert_false(kcw_admin_host_allowed(a, "::1"));            /* unbracketed */
    assert_false(kcw_admin_host_allowed(a, "[::1"));
    assert_false(kcw_admin_host_allowed(a, ""));
    kcw_admin_close(a, NULL, NULL);

    kcw_admin_opts_t any = {.listen = "0.0.0.0:9464"};
    a = kcw_admin_new(&loop, &any, err, sizeof err);
    assert_non_null(a);
    assert_true(kcw_admin_host_allowed(a, "10.0.0.5:9464")); /* some address of ours */
    assert_false(kcw_admin_host_allowed(a, "kcwatch.internal"));
    assert_false(kcw_admin_host_allowed(a, "evil.example.com"));
    kcw_admin_close(a, NULL, NULL);

    kcw_admin_opts_t one = {.listen = "10.0.0.5:9464"};
    a = kcw_admin_new(&loop, &one, err, sizeof err);
    assert_non_null(a);
    assert_true(kcw_admin_host_allowed(a, "10.0.0.5:9464"));
    assert_false(kcw_admin_host_allowed(a, "10.0.0.6:9464"));
    kcw_admin_close(a, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- the server ------------------------------------------------------------------- */

static void test_get_route(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {
        {.path = "/hello"},
        {.path = "/api/v1/things?q=a%20b&other=1"},
        {.path = "/api/v1/things"},
        {.path = "/empty"},
    };
    http_result_t res[4];
    run_script(f, reqs, 4, res);

    assert_int_equal(res[0].curl_code, CURLE_OK);
    assert_int_equal(res[0].status, 200);
    assert_string_equal(res[0].body, "hello world\n");
    assert_string_equal(res[0].content_type, "text/plain; charset=utf-8");
    assert_string_equal(f->last_method, "GET");

    assert_int_equal(res[1].status, 200);
    assert_string_equal(res[1].body, "{\"status\":\"success\",\"data\":{\"n\":1}}");
    assert_string_equal(res[1].content_type, "application/json");

    /* the last /api/v1/things had no q */
    assert_int_equal(res[2].status, 200);
    assert_false(f->last_arg_present);
    assert_string_equal(f->last_header, "from-client");

    assert_int_equal(res[3].status, 204);
    assert_int_equal(res[3].body_len, 0);
    assert_int_equal(f->calls, 3);
}

static void test_query_args(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {{.path = "/api/v1/things?q=a%20b&other=1"}};
    http_result_t res[1];
    run_script(f, reqs, 1, res);
    assert_int_equal(res[0].status, 200);
    assert_true(f->last_arg_present);
    assert_string_equal(f->last_arg, "a b");

    const client_req_t flag[] = {{.path = "/api/v1/things?q"}};
    run_script(f, flag, 1, res);
    assert_int_equal(res[0].status, 200);
    assert_true(f->last_arg_present);
    assert_string_equal(f->last_arg, "");
}

static void test_not_found(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {
        {.path = "/nope"},
        {.path = "/hello/"},
        {.method = "POST", .path = "/nope", .body = "{}"},
    };
    http_result_t res[3];
    run_script(f, reqs, 3, res);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].curl_code, CURLE_OK);
        assert_int_equal(res[i].status, 404);
    }
    assert_error_json(&res[0], "not_found", "/nope");
    assert_error_json(&res[1], "not_found", "/hello/");
    assert_error_json(&res[2], "not_found", "/nope");
    assert_int_equal(f->calls, 0);
}

/* The prefix route "/item/" + "*" serves every path below it with a
 * non-empty rest; the exact "/item/special" wins over it. */
static void test_prefix_route(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {
        {.path = "/item/abc"},
        {.method = "DELETE", .path = "/item/x%20y"},
        {.path = "/item/special"},
        {.path = "/item/"},
        {.path = "/item"},
        {.path = "/itemabc"},
        {.method = "PUT", .path = "/item/abc", .body = "x"},
    };
    enum { N = sizeof reqs / sizeof reqs[0] };
    http_result_t res[N];
    run_script(f, reqs, 3, res);
    assert_int_equal(res[0].status, 200);
    assert_string_equal(res[0].body, "abc");
    assert_int_equal(res[1].status, 200);
    assert_string_equal(res[1].body, "x y");
    assert_string_equal(f->last_arg, "x y"); /* decoded */
    assert_int_equal(res[2].status, 200);
    assert_string_equal(res[2].body, "hello world\n");
    assert_int_equal(f->calls, 3);
    run_script(f, reqs + 3, N - 3, res + 3);
    for (int i = 3; i < 6; i++) {
        if (res[i].status != 404)
            fail_msg("%s: status %ld", reqs[i].path, res[i].status);
    }
    assert_int_equal(res[6].status, 405);
    assert_string_equal(res[6].allow, "GET, DELETE, HEAD");
    assert_int_equal(f->calls, 3);
}

static void test_method_not_allowed(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {
        {.method = "DELETE", .path = "/hello"},
        {.method = "POST", .path = "/hello", .body = "x"},
        {.method = "GET", .path = "/echo"},
        {.method = "HEAD", .path = "/echo"},
    };
    http_result_t res[4];
    run_script(f, reqs, 4, res);
    assert_int_equal(res[0].status, 405);
    assert_string_equal(res[0].allow, "GET, HEAD");
    assert_error_json(&res[0], "bad_data", "DELETE");
    assert_int_equal(res[1].status, 405);
    assert_string_equal(res[1].allow, "GET, HEAD");
    assert_int_equal(res[2].status, 405);
    assert_string_equal(res[2].allow, "POST, PUT");
    assert_error_json(&res[2], "bad_data", "POST, PUT");
    assert_int_equal(res[3].status, 405);
    assert_string_equal(res[3].allow, "POST, PUT");
    assert_int_equal(f->calls, 0);
}

static void test_post_body(void **state)
{
    fixture_t *f = *state;
    char *big = malloc(40000);
    assert_non_null(big);
    memset(big, 'b', 39999);
    big[39999] = '\0';
    const client_req_t reqs[] = {
        {.method = "POST", .path = "/echo", .body = "{\"x\":1}"},
        {.method = "PUT", .path = "/echo", .body = "a\0b", .body_len = 3},
        {.method = "POST", .path = "/echo", .body = big},
        {.method = "POST", .path = "/echo", .chunked = true, .body_len = 1000},
    };
    http_result_t res[4];
    run_script(f, reqs, 4, res);
    free(big);

    assert_int_equal(f->n_echo, 4);
    assert_int_equal(f->echo_lens[0], 7);
    assert_int_equal(f->echo_lens[1], 3);
    assert_int_equal(f->echo_lens[2], 39999);
    assert_int_equal(res[0].status, 201);
    assert_string_equal(res[0].body, "{\"x\":1}");
    assert_string_equal(res[0].content_type, "application/octet-stream");

    assert_int_equal(res[1].status, 201);
    assert_int_equal(res[1].body_len, 3);
    assert_memory_equal(res[1].body, "a\0b", 3);

    /* a 40 kB body arrived whole (above); the echo outgrows the client's buffer */
    assert_int_equal(res[2].status, 201);
    assert_true(res[2].body_truncated);

    /* chunked, the last request */
    assert_int_equal(res[3].status, 201);
    assert_int_equal(res[3].body_len, 1000);
    assert_string_equal(f->last_method, "POST");
    assert_int_equal(f->last_body_len, 1000);
    assert_int_equal(strspn(f->last_body, "x"), 1000);
    assert_int_equal(f->calls, 4);
}

static void test_body_limit(void **state)
{
    fixture_t *f = *state; /* max_body 1024 */
    static char over[2048];
    memset(over, 'o', sizeof over - 1);
    over[sizeof over - 1] = '\0';
    const client_req_t reqs[] = {
        {.method = "POST", .path = "/echo", .body = over, .expect = true},
        {.method = "POST", .path = "/echo", .chunked = true, .body_len = 4096},
        {.method = "POST", .path = "/echo", .body = "fits"},
    };
    http_result_t res[3];
    run_script(f, reqs, 3, res);

    /* declared too large: 413 before the body is read */
    assert_int_equal(res[0].curl_code, CURLE_OK);
    assert_int_equal(res[0].status, 413);
    assert_error_json(&res[0], "bad_data", "1024");
    /* chunked past the limit: the connection is dropped, no answer */
    assert_int_not_equal(res[1].curl_code, CURLE_OK);
    assert_true(res[1].status < 200); /* at most the 100 Continue */
    /* and the server still serves */
    assert_int_equal(res[2].status, 201);
    assert_string_equal(res[2].body, "fits");
    assert_int_equal(f->calls, 1);
}

static void test_token(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(kcw_admin_set_token(f->admin, TOKEN), 0);
    const client_req_t reqs[] = {
        {.method = "POST", .path = "/-/reload"},
        {.method = "POST", .path = "/-/reload", .auth = "Bearer wrong"},
        {.method = "POST", .path = "/-/reload", .auth = "Bearer s3cret-toke"},
        {.method = "POST", .path = "/-/reload", .auth = "Bearer s3cret-tokenX"},
        {.method = "POST", .path = "/-/reload", .auth = "Basic " TOKEN},
        {.method = "POST", .path = "/-/reload", .auth = "Bearer"},
        {.method = "POST", .path = "/-/reload", .auth = "Bearer " TOKEN},
        {.method = "POST", .path = "/-/reload", .auth = "bearer   " TOKEN},
        {.path = "/hello"}, /* reads need no token */
        {.method = "POST", .path = "/echo", .body = "x"},
    };
    enum { N = sizeof reqs / sizeof reqs[0] };
    http_result_t res[N];
    run_script(f, reqs, N, res);

    for (int i = 0; i < 6; i++) {
        if (res[i].status != 401)
            fail_msg("request %d: status %ld", i, res[i].status);
        assert_error_json(&res[i], "unauthorized", "token");
        assert_string_equal(res[i].www_auth, "Bearer realm=\"kcwatch\"");
    }
    assert_int_equal(res[6].status, 200);
    assert_string_equal(res[6].body, "{\"status\":\"success\",\"data\":null}");
    assert_int_equal(res[7].status, 200);
    assert_int_equal(f->reloads, 2);
    assert_int_equal(res[8].status, 200);
    assert_int_equal(res[9].status, 401); /* every write route is guarded */

    /* token off again: writes pass */
    assert_int_equal(kcw_admin_set_token(f->admin, NULL), 0);
    const client_req_t open[] = {{.method = "POST", .path = "/-/reload"}};
    run_script(f, open, 1, res);
    assert_int_equal(res[0].status, 200);
    assert_int_equal(f->reloads, 3);
}

static void test_head(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {
        {.method = "HEAD", .path = "/hello"},
        {.method = "HEAD", .path = "/nope"},
        {.path = "/hello"},
    };
    http_result_t res[3];
    run_script(f, reqs, 3, res);
    assert_int_equal(res[0].curl_code, CURLE_OK);
    assert_int_equal(res[0].status, 200);
    assert_int_equal(res[0].body_len, 0);
    assert_string_equal(res[0].content_type, "text/plain; charset=utf-8");
    assert_int_equal(res[1].status, 404);
    assert_int_equal(res[1].body_len, 0);
    /* a GET after HEADs on the same connection still gets its body */
    assert_int_equal(res[2].status, 200);
    assert_string_equal(res[2].body, "hello world\n");
    assert_int_equal(res[2].num_connects, 0);
    assert_int_equal(f->calls, 2);
}

static void test_handler_failure(void **state)
{
    fixture_t *f = *state;
    const client_req_t reqs[] = {{.path = "/fail"}, {.path = "/hello"}};
    http_result_t res[2];
    run_script(f, reqs, 2, res);
    assert_int_equal(res[0].status, 500);
    assert_error_json(&res[0], "internal", "handler failed");
    assert_int_equal(res[1].status, 200);
}

static void test_keepalive(void **state)
{
    fixture_t *f = *state;
    enum { N = 120 };
    client_req_t reqs[N];
    http_result_t *res = calloc(N, sizeof *res);
    assert_non_null(res);
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            reqs[i] = (client_req_t){.path = "/hello"};
            break;
        case 1:
            reqs[i] = (client_req_t){.method = "POST", .path = "/echo", .body = "{}"};
            break;
        case 2:
            reqs[i] = (client_req_t){.path = "/nope"};
            break;
        default:
            reqs[i] = (client_req_t){.method = "DELETE", .path = "/hello"};
            break;
        }
    }
    run_script(f, reqs, N, res);
    static const long want[4] = {200, 201, 404, 405};
    long connects = 0;
    for (int i = 0; i < N; i++) {
        if (res[i].curl_code != CURLE_OK || res[i].status != want[i % 4])
            fail_msg("request %d: curl %d status %ld", i, res[i].curl_code, res[i].status);
        connects += res[i].num_connects;
    }
    /* one connection carried them all */
    free(res);
    assert_int_equal(connects, 1);
    assert_int_equal(f->calls, N / 2);
}

static void test_access_log(void **state)
{
    fixture_t *f = *state;
    FILE *log = tmpfile();
    assert_non_null(log);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, log);
    const client_req_t reqs[] = {{.path = "/hello"}, {.path = "/nope"}};
    http_result_t res[2];
    run_script(f, reqs, 2, res);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, stderr);

    char text[8192];
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    assert_non_null(strstr(text, "msg=\"admin request\" method=GET path=/hello status=200"));
    assert_non_null(strstr(text, "path=/nope status=404 remote=127.0.0.1"));
}

/* Two handles: the first holds the only connection slot. */
static void *client_two_handles(void *arg)
{
    fixture_t *f = arg;
    CURL *c1 = curl_easy_init(), *c2 = curl_easy_init();
    const client_req_t hello = {.path = "/hello"};
    /* short: this one is expected to wait unanswered */
    const client_req_t waiting = {.path = "/hello", .timeout_ms = 300};
    if (c1 && c2) {
        do_request(c1, f, &hello, &f->results[0]);
        do_request(c2, f, &waiting, &f->results[1]); /* over the limit */
        do_request(c1, f, &hello, &f->results[2]);   /* the held connection still works */
        curl_easy_cleanup(c1);                       /* frees the slot */
        c1 = NULL;
        do_request(c2, f, &hello, &f->results[3]);
    }
    if (c1)
        curl_easy_cleanup(c1);
    if (c2)
        curl_easy_cleanup(c2);
    client_signal(f, 2);
    return NULL;
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state; /* max_connections 1 */
    http_result_t res[4];
    memset(res, 0, sizeof res);
    f->results = res;
    run_client(f, client_two_handles);
    assert_int_equal(res[0].status, 200);
    /* past the limit MHD stops accepting: the client waits in the backlog */
    assert_int_equal(res[1].curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(res[1].status, 0);
    assert_int_equal(res[2].status, 200);
    assert_int_equal(res[2].num_connects, 0);
    /* once the slot is free, new connections are served again */
    assert_int_equal(res[3].curl_code, CURLE_OK);
    assert_int_equal(res[3].status, 200);
    /* the abandoned request may still be read and answered into the void */
    assert_in_range(f->calls, 3, 4);
}

static void test_header_limit(void **state)
{
    fixture_t *f = *state;
    /* headers beyond the per-connection memory are refused by MHD itself */
    const client_req_t reqs[] = {{.path = "/hello", .big_header = 40 * 1024}, {.path = "/hello"}};
    http_result_t res[2];
    run_script(f, reqs, 2, res);
    if (res[0].status != 413 && res[0].status != 431)
        fail_msg("oversized header: curl %d status %ld", res[0].curl_code, res[0].status);
    assert_int_equal(res[1].status, 200);
    assert_int_equal(f->calls, 1);
}

/* Keep-alive connection plus a half-sent request, then close: both are
 * dropped, the server goes away, later requests are refused. */
static void *client_close(void *arg)
{
    fixture_t *f = arg;
    CURL *c = curl_easy_init();
    int fd = -1;
    if (!c)
        goto done;
    const client_req_t hello = {.path = "/hello"};
    do_request(c, f, &hello, &f->results[0]);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_MS / 1000};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto done;
    const char partial[] = "GET /hello HTTP/1.1\r\nHost: x\r\n";
    if (send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL) < 0)
        goto done;

    client_signal(f, 1);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_MS / 1000;
    pthread_mutex_lock(&f->mu);
    while (!f->server_closed)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&f->mu);

    char buf[64];
    errno = 0;
    f->raw_recv = (int)recv(fd, buf, sizeof buf, 0);
    f->raw_errno = errno;
    do_request(c, f, &hello, &f->results[1]);
done:
    if (fd >= 0)
        close(fd);
    if (c)
        curl_easy_cleanup(c);
    client_signal(f, 2);
    return NULL;
}

static void test_close_with_client(void **state)
{
    fixture_t *f = *state;
    http_result_t res[2];
    memset(res, 0, sizeof res);
    f->results = res;
    f->raw_recv = 99;
    run_client(f, client_close);

    assert_true(f->admin_closed);
    assert_int_equal(res[0].status, 200);
    /* the half-sent request got no answer: EOF or reset */
    if (!(f->raw_recv == 0 || (f->raw_recv < 0 && f->raw_errno == ECONNRESET)))
        fail_msg("recv after close: %d errno %d", f->raw_recv, f->raw_errno);
    /* nobody listens any more */
    assert_int_equal(res[1].curl_code, CURLE_COULDNT_CONNECT);
}

static void test_port_in_use(void **state)
{
    fixture_t *f = *state;
    char listen[64], err[256] = "";
    snprintf(listen, sizeof listen, "127.0.0.1:%u", f->port);
    kcw_admin_opts_t opts = {.listen = listen};
    kcw_admin_t *b = kcw_admin_new(&f->loop, &opts, err, sizeof err);
    assert_non_null(b);
    int rc = kcw_admin_start(b, err, sizeof err);
    assert_int_equal(rc, -EADDRINUSE);
    assert_non_null(strstr(err, listen));
    assert_int_equal(kcw_admin_port(b), 0);
    assert_int_equal(kcw_admin_start(f->admin, err, sizeof err), -EINVAL); /* already */
    kcw_admin_close(b, NULL, NULL); /* freed by the teardown's loop run */
}

static void test_ipv6(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->host = "[::1]";
    char err[256] = "";
    kcw_admin_opts_t opts = {.listen = "[::1]:0"};
    f->admin = kcw_admin_new(&f->loop, &opts, err, sizeof err);
    assert_non_null(f->admin);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/hello", h_hello, f), 0);
    int rc = kcw_admin_start(f->admin, err, sizeof err);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        fixture_free(f);
        skip(); /* no IPv6 loopback here */
    }
    if (rc != 0)
        fail_msg("start on [::1]: %d %s", rc, err);
    f->port = kcw_admin_port(f->admin);
    assert_true(f->port > 0);
    const client_req_t reqs[] = {{.path = "/hello"}};
    http_result_t res[1];
    run_script(f, reqs, 1, res);
    assert_int_equal(res[0].status, 200);
    assert_string_equal(res[0].body, "hello world\n");
    fixture_free(f);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, stderr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_envelopes),
        cmocka_unit_test(test_new_and_route_errors),
        cmocka_unit_test(test_host_policy),
        cmocka_unit_test_setup_teardown(test_get_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup_small_body, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup_one_connection, teardown),
        cmocka_unit_test_setup_teardown(test_header_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
        cmocka_unit_test(test_ipv6),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
