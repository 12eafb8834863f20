/* test_admin_pending.c: deferred answers of the admin server (admin.h).
 *
 * The server runs on 127.0.0.1 port 0 on a libuv loop in the test's thread;
 * a client thread sends real requests (libcurl, or a raw socket where the
 * client must vanish mid-request). The loop side plays the owner of the
 * deferred requests: a 1 ms timer looks at the state each tick and acts
 * (finishes the request, closes the server) once its condition holds, and
 * ends the run when the client is done. A 20 s deadline fails the test
 * instead of hanging. Assertions run after the client thread is joined. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kcwatch/admin.h"
#include "kcwatch/log.h"

#define DEADLINE_MS 20000
#define N_RAW 5 /* one more than KCW_ADMIN_MAX_PENDING */

typedef enum {
    MODE_DEFER,            /* defer; the loop side decides */
    MODE_DEFER_AND_FINISH, /* defer and finish before returning */
    MODE_DEFER_THEN_FAIL,  /* defer, then fail: the handle is abandoned */
} handler_mode_t;

typedef struct result {
    int curl_code;
    long status;
    long num_connects;
    char body[4096];
    size_t body_len;
} result_t;

typedef struct fx fx_t;
typedef void (*step_fn)(fx_t *f);

struct fx {
    uv_loop_t loop;
    kcw_admin_t *admin;
    unsigned port;
    uv_timer_t tick, deadline;
    bool stop, timed_out, admin_closed;

    /* the handler and the owner (loop thread) */
    handler_mode_t mode;
    unsigned timeout_ms;
    kcw_admin_pending_t *held[N_RAW];
    int n_held;
    int gone;
    int busy; /* requests that could not be deferred */
    step_fn step;
    int stage;

    /* shared with the client thread */
    atomic_int deferred;
    atomic_bool client_done;

    /* client results (read after the join) */
    result_t res[2];
    int raw_recv[N_RAW];
    char raw_head[N_RAW][16];
};

static void on_gone(void *arg)
{
    kcw_admin_pending_t **slot = arg;
    *slot = NULL;
}

/* on_gone's arg is the slot holding the handle; the fixture counts. */
static fx_t *current;

static void on_gone_counted(void *arg)
{
    on_gone(arg);
    current->gone++;
}

static int h_wait(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    fx_t *f = arg;
    if (f->n_held == N_RAW)
        return kcw_admin_response_text(resp, 503, NULL, "too many\n");
    kcw_admin_pending_t **slot = &f->held[f->n_held];
    *slot = kcw_admin_defer(req, f->timeout_ms, "no verdict in time", on_gone_counted, slot);
    if (!*slot) {
        f->busy++;
        return kcw_admin_response_text(resp, 503, NULL, "busy\n");
    }
    f->n_held++;
    atomic_fetch_add(&f->deferred, 1);
    if (f->mode == MODE_DEFER_AND_FINISH) {
        kcw_admin_response_t r = {0};
        assert_int_equal(kcw_admin_response_text(&r, 201, NULL, "at once\n"), 0);
        kcw_admin_pending_finish(*slot, &r);
        *slot = NULL;
    } else if (f->mode == MODE_DEFER_THEN_FAIL) {
        return -EIO;
    }
    return KCW_ADMIN_DEFERRED;
}

static int h_hello(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    (void)arg;
    return kcw_admin_response_text(resp, 200, NULL, "hello\n");
}

/* --- client side ---------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    result_t *r = userp;
    size_t n = size * nmemb, room = sizeof r->body - 1 - r->body_len;
    size_t take = n < room ? n : room;
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return n;
}

static void curl_request(CURL *c, unsigned port, const char *method, const char *path,
                         result_t *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    memset(r, 0, sizeof *r);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    r->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->num_connects);
}

/* POST /wait, then GET /hello on the same connection. */
static void *client_wait_then_hello(void *arg)
{
    fx_t *f = arg;
    CURL *c = curl_easy_init();
    if (c) {
        curl_request(c, f->port, "POST", "/wait", &f->res[0]);
        curl_request(c, f->port, "GET", "/hello", &f->res[1]);
        curl_easy_cleanup(c);
    }
    atomic_store(&f->client_done, true);
    return NULL;
}

static int raw_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* N_RAW connections each POST /wait; once the server holds as many as it
 * may (the last one answered "busy" meanwhile), every client hangs up. */
static void *client_raw_hang_up(void *arg)
{
    fx_t *f = arg;
    static const char req[] = "POST /wait HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    int fds[N_RAW];
    for (int i = 0; i < N_RAW; i++) {
        fds[i] = raw_connect(f->port);
        f->raw_recv[i] = -2;
        if (fds[i] >= 0 && send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
        /* one at a time, so which one is refused is known */
        while (fds[i] >= 0 && i < KCW_ADMIN_MAX_PENDING && atomic_load(&f->deferred) < i + 1 &&
               !atomic_load(&f->client_done))
            sched_yield();
    }
    /* the one over the bound is answered at once */
    int last = N_RAW - 1;
    if (fds[last] >= 0) {
        f->raw_recv[last] =
            (int)recv(fds[last], f->raw_head[last], sizeof f->raw_head[last] - 1, 0);
        if (f->raw_recv[last] > 0)
            f->raw_head[last][f->raw_recv[last]] = '\0';
    }
    for (int i = 0; i < N_RAW; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    atomic_store(&f->client_done, true);
    return NULL;
}

/* --- loop side ------------------------------------------------------------------- */

static void on_closed(void *arg)
{
    fx_t *f = arg;
    f->admin = NULL;
    f->admin_closed = true;
}

static void on_tick(uv_timer_t *t)
{
    fx_t *f = t->data;
    if (f->step)
        f->step(f);
}

static void on_deadline(uv_timer_t *t)
{
    fx_t *f = t->data;
    f->timed_out = true;
    f->stop = true;
}

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    current = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    kcw_admin_opts_t opts = {.listen = "127.0.0.1:0"};
    char err[256] = "";
    f->admin = kcw_admin_new(&f->loop, &opts, err, sizeof err);
    if (!f->admin)
        fail_msg("kcw_admin_new: %s", err);
    assert_int_equal(kcw_admin_route(f->admin, "POST", "/wait", h_wait, f), 0);
    assert_int_equal(kcw_admin_route(f->admin, "GET", "/hello", h_hello, f), 0);
    if (kcw_admin_start(f->admin, err, sizeof err) != 0)
        fail_msg("kcw_admin_start: %s", err);
    f->port = kcw_admin_port(f->admin);
    f->timeout_ms = 10000;
    return f;
}

/* Runs the loop with client() in a thread until step sets stop. */
static void fx_run(fx_t *f, void *(*client)(void *), step_fn step)
{
    f->step = step;
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->deadline), 0);
    f->tick.data = f->deadline.data = f;
    assert_int_equal(uv_timer_start(&f->tick, on_tick, 1, 1), 0);
    assert_int_equal(uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client, f), 0);
    while (!f->stop)
        uv_run(&f->loop, UV_RUN_ONCE);
    /* a client still waiting gives up once the server is gone */
    if (f->admin)
        kcw_admin_close(f->admin, on_closed, f);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_true(f->admin_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_false(f->timed_out);
}

/* Ends the run once the client is done. */
static void step_until_done(fx_t *f)
{
    if (atomic_load(&f->client_done))
        f->stop = true;
}

/* --- tests ----------------------------------------------------------------------- */

/* The owner answers from the loop, later: the client gets exactly that, and
 * its keep-alive connection serves the next request. */
static void step_finish_later(fx_t *f)
{
    if (f->stage == 0 && f->held[0] && kcw_admin_pending_count(f->admin) == 1) {
        kcw_admin_response_t r = {0};
        assert_int_equal(kcw_admin_response_text(&r, 400, NULL, "decided later\n"), 0);
        kcw_admin_pending_finish(f->held[0], &r);
        f->held[0] = NULL;
        f->stage = 1;
    }
    step_until_done(f);
}

static void test_finish_later(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    FILE *log = tmpfile();
    assert_non_null(log);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, log);
    fx_run(f, client_wait_then_hello, step_finish_later);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, stderr);

    assert_int_equal(f->res[0].curl_code, CURLE_OK);
    assert_int_equal(f->res[0].status, 400);
    assert_string_equal(f->res[0].body, "decided later\n");
    assert_int_equal(f->res[1].status, 200);
    assert_string_equal(f->res[1].body, "hello\n");
    assert_int_equal(f->res[1].num_connects, 0); /* the same connection */
    assert_int_equal(f->gone, 0);

    char text[8192];
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    /* logged once, with the status that went out */
    assert_non_null(strstr(text, "msg=\"admin request\" method=POST path=/wait status=400"));
    assert_null(strstr(text, "path=/wait status=200"));
    free(f);
}

/* Finished before the handler returned: answered at once. */
static void test_finish_in_handler(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    f->mode = MODE_DEFER_AND_FINISH;
    fx_run(f, client_wait_then_hello, step_until_done);
    assert_int_equal(f->res[0].status, 201);
    assert_string_equal(f->res[0].body, "at once\n");
    assert_int_equal(f->res[1].status, 200);
    assert_int_equal(f->gone, 0);
    free(f);
}

/* Nobody answers: the deadline does, 504 with the owner's sentence; the
 * owner hears of it and its handle is cleared. */
static void test_deadline(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    f->timeout_ms = 100;
    fx_run(f, client_wait_then_hello, step_until_done);
    if (f->res[0].status != 504)
        fail_msg("status %ld curl %d body %s", f->res[0].status, f->res[0].curl_code,
                 f->res[0].body);
    json_t *doc = json_loads(f->res[0].body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "errorType")), "timeout");
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "no verdict in time");
    json_decref(doc);
    assert_int_equal(f->gone, 1);
    assert_null(f->held[0]);
    assert_int_equal(f->res[1].status, 200); /* the connection still serves */
    free(f);
}

/* Deferring and then failing: 500, and the handle is abandoned. */
static void test_defer_then_fail(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    f->mode = MODE_DEFER_THEN_FAIL;
    fx_run(f, client_wait_then_hello, step_until_done);
    assert_int_equal(f->res[0].status, 500);
    assert_int_equal(f->gone, 1);
    assert_null(f->held[0]);
    free(f);
}

/* Closing the server answers what waits 503 (SIGTERM during a check). */
static void step_close_when_held(fx_t *f)
{
    if (f->stage == 0 && f->admin && kcw_admin_pending_count(f->admin) == 1) {
        kcw_admin_close(f->admin, on_closed, f);
        f->stage = 1;
    }
    step_until_done(f);
}

static void test_close_with_pending(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_run(f, client_wait_then_hello, step_close_when_held);
    assert_int_equal(f->gone, 1);
    assert_null(f->held[0]);
    assert_int_equal(f->res[0].status, 503);
    assert_non_null(strstr(f->res[0].body, "shutting down"));
    assert_int_not_equal(f->res[1].curl_code, CURLE_OK); /* nobody listens any more */
    free(f);
}

/* At most KCW_ADMIN_MAX_PENDING wait; clients that hang up are noticed, their
 * owners told, and the server runs on without them. */
static void step_hang_ups(fx_t *f)
{
    if (atomic_load(&f->client_done) && f->gone == KCW_ADMIN_MAX_PENDING &&
        kcw_admin_connections(f->admin) == 0)
        f->stop = true;
}

static void test_bound_and_hang_up(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    fx_run(f, client_raw_hang_up, step_hang_ups);
    assert_int_equal(f->busy, 1);
    assert_true(f->raw_recv[N_RAW - 1] > 0);
    assert_memory_equal(f->raw_head[N_RAW - 1], "HTTP/1.1 503", 12);
    assert_int_equal(f->gone, KCW_ADMIN_MAX_PENDING);
    for (int i = 0; i < KCW_ADMIN_MAX_PENDING; i++)
        assert_null(f->held[i]);
    free(f);
}

int main(void)
{
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, stderr);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish_later),       cmocka_unit_test(test_finish_in_handler),
        cmocka_unit_test(test_deadline),           cmocka_unit_test(test_defer_then_fail),
        cmocka_unit_test(test_close_with_pending), cmocka_unit_test(test_bound_and_hang_up),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
