/* The incremental status parse gives exactly what a full jansson parse
 * gives: on thousands of randomised expand=status bodies and mutations of
 * them (one task changes, connectors come and go, keys move, escapes,
 * duplicates, whitespace, broken bytes), kcw_status_index_apply and
 * kcw_connect_parse_expand accept and reject the same bodies and build the
 * same connectors field by field. Seeded: a failure names its seed. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kcwatch/connect.h"
#include "kcwatch/status_index.h"

/* --- a seeded generator -------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r)
{
    /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

static unsigned below(rng_t *r, unsigned n)
{
    return n ? (unsigned)(rnd(r) % n) : 0;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[4096];
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof(tmp));
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = (b->n + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, tmp, (size_t)k + 1);
    b->n += (size_t)k;
}

/* A JSON string literal for s, escaped by jansson, sometimes as ASCII only. */
static void put_str(buf_t *b, rng_t *r, const char *s)
{
    json_t *v = json_string(s);
    assert_non_null(v);
    char *enc = json_dumps(v, JSON_ENCODE_ANY | (below(r, 2) ? JSON_ENSURE_ASCII : 0));
    json_decref(v);
    assert_non_null(enc);
    put(b, "%s", enc);
    free(enc);
}

static void ws(buf_t *b, rng_t *r)
{
    static const char *const spaces[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    put(b, "%s", spaces[below(r, 7)]);
}

/* --- the cluster being generated ------------------------------------------- */

#define MAX_CONN 40

typedef struct gtask {
    int id;
    int state;
    int worker;
    int trace; /* 0 none */
} gtask_t;

typedef struct gconn {
    char name[64];
    int kind; /* 0 status, 1 no status member, 2 status null, 3 with info */
    int type; /* 0 absent, 1 sink, 2 source, 3 unknown */
    int state, worker;
    gtask_t tasks[4];
    int n_tasks;
    int trace;
    int dup; /* emitted twice (the first one a decoy) */
} gconn_t;

typedef struct gcluster {
    gconn_t c[MAX_CONN];
    int n;
} gcluster_t;

static const char *const states[] = {"RUNNING", "FAILED",  "PAUSED",
                                     "UNASSIGNED", "RESTARTING", "STOPPED", "WEIRD"};
static const char *const workers[] = {"10.0.0.1:8083", "10.0.0.2:8083", "w\"3\":8083"};
static const char *const traces[] = {
    NULL, "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x.y(Z.java:1)",
    "java.lang.IllegalStateException: {\"not\": [json]} \\ \u00e9\u2603",
};
static const char *const name_bits[] = {"orders", "users-src", "caf\u00e9", "a\"b", "s p",
                                        "x\\y", "\u2603", "z"};

static void gen_name(rng_t *r, char *out, size_t n, int i)
{
    snprintf(out, n, "%s-%d", name_bits[below(r, 8)], i);
}

static void gen_conn(rng_t *r, gconn_t *c, int i)
{
    memset(c, 0, sizeof(*c));
    gen_name(r, c->name, sizeof(c->name), i);
    unsigned k = below(r, 20);
    c->kind = k < 15 ? 0 : k < 17 ? 3 : k < 19 ? 1 : 2;
    c->type = (int)below(r, 4);
    c->state = below(r, 5) ? 0 : (int)below(r, 7);
    c->worker = (int)below(r, 3);
    c->n_tasks = (int)below(r, 5);
    for (int t = 0; t < c->n_tasks; t++) {
        c->tasks[t].id = t;
        c->tasks[t].state = below(r, 4) ? 0 : (int)below(r, 6);
        c->tasks[t].worker = (int)below(r, 3);
        c->tasks[t].trace = c->tasks[t].state == 1 ? 1 + (int)below(r, 2) : 0;
    }
    c->trace = c->state == 1 ? 1 : 0;
    c->dup = below(r, 30) == 0;
}

static void put_instance(buf_t *b, rng_t *r, int state, int worker, int trace)
{
    put(b, "{");
    ws(b, r);
    put(b, "\"state\":");
    ws(b, r);
    put(b, "\"%s\",", states[state]);
    ws(b, r);
    put(b, "\"worker_id\":");
    put_str(b, r, workers[worker]);
    if (trace) {
        put(b, ",\"trace\":");
        put_str(b, r, traces[trace]);
    }
    ws(b, r);
    put(b, "}");
}

static void put_conn_value(buf_t *b, rng_t *r, const gconn_t *c)
{
    if (c->kind == 1) {
        put(b, "{}");
        return;
    }
    if (c->kind == 2) {
        put(b, "{\"status\":null}");
        return;
    }
    put(b, "{");
    ws(b, r);
    put(b, "\"status\":");
    ws(b, r);
    put(b, "{\"name\":");
    put_str(b, r, c->name);
    put(b, ",");
    ws(b, r);
    put(b, "\"connector\":");
    put_instance(b, r, c->state, c->worker, c->trace);
    put(b, ",\"tasks\":[");
    /* Tasks in any order: the model sorts them. */
    int order[4] = {0, 1, 2, 3};
    for (int t = c->n_tasks - 1; t > 0; t--) {
        int j = (int)below(r, (unsigned)t + 1), x = order[t];
        order[t] = order[j];
        order[j] = x;
    }
    for (int t = 0; t < c->n_tasks; t++) {
        const gtask_t *tk = &c->tasks[order[t]];
        if (t)
            put(b, ",");
        ws(b, r);
        put(b, "{\"id\":%d,", tk->id);
        put(b, "\"state\":\"%s\",\"worker_id\":", states[tk->state]);
        put_str(b, r, workers[tk->worker]);
        if (tk->trace) {
            put(b, ",\"trace\":");
            put_str(b, r, traces[tk->trace]);
        }
        put(b, "}");
    }
    put(b, "]");
    static const char *const types[] = {NULL, "sink", "source", "unknown"};
    if (types[c->type])
        put(b, ",\"type\":\"%s\"", types[c->type]);
    put(b, "}");
    if (c->kind == 3)
        put(b, ",\"info\":{\"name\":\"x\",\"config\":{\"tasks.max\":\"%d\"},\"tasks\":[]}",
            c->n_tasks);
    ws(b, r);
    put(b, "}");
}

/* The body for the cluster, members in a random order. */
static void render(buf_t *b, rng_t *r, const gcluster_t *g)
{
    b->n = 0;
    int order[MAX_CONN];
    for (int i = 0; i < g->n; i++)
        order[i] = i;
    /* Mostly a stable order, as Connect's HashMap gives; sometimes shuffled. */
    if (below(r, 4) == 0)
        for (int i = g->n - 1; i > 0; i--) {
            int j = (int)below(r, (unsigned)i + 1), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
    ws(b, r);
    put(b, "{");
    bool first = true;
    for (int i = 0; i < g->n; i++) {
        const gconn_t *c = &g->c[order[i]];
        for (int d = c->dup ? 0 : 1; d < 2; d++) {
            if (!first)
                put(b, ",");
            first = false;
            ws(b, r);
            put_str(b, r, c->name);
            ws(b, r);
            put(b, ":");
            ws(b, r);
            if (d == 0)
                put(b, "{\"status\":{\"name\":\"decoy\"}}"); /* invalid, but overwritten */
            else
                put_conn_value(b, r, c);
        }
    }
    ws(b, r);
    put(b, "}");
    ws(b, r);
}

/* --- comparing the two parses --------------------------------------------------- */

static void same_str(const char *a, const char *b, const char *what, uint64_t seed)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        fail_msg("seed %llu: %s differs: \"%s\" vs \"%s\"", (unsigned long long)seed, what,
                 a ? a : "(null)", b ? b : "(null)");
}

static void same_model(const kcw_connector_status_t *x, size_t nx, const kcw_connector_status_t *y,
                       size_t ny, uint64_t seed)
{
    if (nx != ny)
        fail_msg("seed %llu: %zu connectors vs %zu", (unsigned long long)seed, nx, ny);
    for (size_t i = 0; i < nx; i++) {
        const kcw_connector_status_t *a = &x[i], *b = &y[i];
        same_str(a->name, b->name, "name", seed);
        same_str(a->worker_id, b->worker_id, "worker_id", seed);
        same_str(a->trace, b->trace, "trace", seed);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->state, b->state);
        assert_int_equal(a->has_info, b->has_info);
        assert_int_equal(a->n_task_configs, b->n_task_configs);
        assert_int_equal(a->tasks_max, b->tasks_max);
        assert_int_equal(a->missing_polls, b->missing_polls);
        assert_int_equal(a->n_tasks, b->n_tasks);
        for (size_t t = 0; t < a->n_tasks; t++) {
            assert_int_equal(a->tasks[t].id, b->tasks[t].id);
            assert_int_equal(a->tasks[t].state, b->tasks[t].state);
            same_str(a->tasks[t].worker_id, b->tasks[t].worker_id, "task worker_id", seed);
            same_str(a->tasks[t].trace, b->tasks[t].trace, "task trace", seed);
        }
    }
}

static void model_free(kcw_connector_status_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_connector_status_clear(&m[i]);
    free(m);
}

typedef struct run {
    kcw_status_index_t *ix;
    kcw_connector_status_t *model; /* from the last successful apply */
    size_t n_model;
    size_t accepted, rejected, parsed_total;
} run_t;

/* Applies body both ways and compares; returns the members parsed. */
static size_t check_body(run_t *run, const char *body, size_t len, uint64_t seed)
{
    kcw_cluster_status_t full = {0};
    char **names = NULL;
    size_t n_names = 0;
    char err1[300] = "", err2[300] = "";
    int rc_full = kcw_connect_parse_expand(body, len, &full, &names, &n_names, err1, sizeof(err1));
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    kcw_status_delta_t d;
    int rc_inc = kcw_status_index_apply(run->ix, body, len, run->model, run->n_model, &d, err2,
                                        sizeof(err2));
    if ((rc_full < 0) != (rc_inc < 0) || (rc_full == 1) != (rc_inc == 1))
        fail_msg("seed %llu: full parse %d (%s), incremental %d (%s) on body:\n%.*s",
                 (unsigned long long)seed, rc_full, err1, rc_inc, err2, (int)(len > 600 ? 600 : len),
                 body);
    size_t parsed = 0;
    if (rc_inc == 0) {
        same_model(d.connectors, d.n_connectors, full.connectors, full.n_connectors, seed);
        parsed = d.n_parsed;
        for (size_t i = 0; i < d.n_parsed; i++)
            assert_non_null(kcw_cluster_status_find(
                &(kcw_cluster_status_t){.connectors = d.connectors, .n_connectors = d.n_connectors},
                d.parsed_names[i]));
        model_free(run->model, run->n_model); /* what is left: connectors gone or changed */
        run->model = d.connectors;
        run->n_model = d.n_connectors;
        d.connectors = NULL;
        d.n_connectors = 0;
        kcw_status_delta_clear(&d);
        run->accepted++;
    } else {
        assert_null(d.connectors);
        if (rc_inc < 0)
            assert_true(err2[0] != '\0');
        run->rejected++;
    }
    kcw_cluster_status_clear(&full);
    run->parsed_total += parsed;
    return parsed;
}

/* Breaks the body in one of the ways a worker or proxy could. */
static size_t corrupt(rng_t *r, char *body, size_t len)
{
    if (len < 2)
        return len;
    size_t at = below(r, (unsigned)len);
    switch (below(r, 5)) {
    case 0: /* cut short */
        return at;
    case 1:
        body[at] = "{}[]\",:x\\"[below(r, 9)];
        return len;
    case 2: /* invalid UTF-8 */
        body[at] = (char)0xC3;
        return len;
    case 3: /* a NUL byte */
        body[at] = '\0';
        return len;
    default: /* trailing junk */
        body[len - 1] = ']';
        return len;
    }
}

static void mutate(rng_t *r, gcluster_t *g, int *next_id)
{
    unsigned what = below(r, 10);
    if (what < 6 && g->n > 0) { /* one task changes state */
        gconn_t *c = &g->c[below(r, (unsigned)g->n)];
        if (c->n_tasks > 0) {
            gtask_t *t = &c->tasks[below(r, (unsigned)c->n_tasks)];
            t->state = t->state == 1 ? 0 : 1;
            t->trace = t->state == 1 ? 1 + (int)below(r, 2) : 0;
        } else {
            c->state = (int)below(r, 6);
        }
    } else if (what < 8 && g->n < MAX_CONN) {
        gen_conn(r, &g->c[g->n++], (*next_id)++);
    } else if (g->n > 0) {
        unsigned gone = below(r, (unsigned)g->n);
        g->n--;
        g->c[gone] = g->c[g->n];
    }
}

static void test_incremental_equals_full(void **state)
{
    (void)state;
    size_t bodies = 0, rejected = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        rng_t r = {.s = seed * 0x9E3779B97F4A7C15ull};
        run_t run = {.ix = kcw_status_index_new()};
        assert_non_null(run.ix);
        gcluster_t g = {0};
        int next_id = 0;
        g.n = (int)below(&r, 25);
        for (int i = 0; i < g.n; i++)
            gen_conn(&r, &g.c[i], next_id++);
        buf_t b = {0};
        for (int step = 0; step < 40; step++) {
            render(&b, &r, &g);
            if (below(&r, 8) == 0) {
                char *bad = malloc(b.n + 1);
                assert_non_null(bad);
                memcpy(bad, b.p, b.n + 1);
                size_t n = corrupt(&r, bad, b.n);
                check_body(&run, bad, n, seed);
                free(bad);
            } else {
                check_body(&run, b.p, b.n, seed);
            }
            bodies++;
            mutate(&r, &g, &next_id);
        }
        rejected += run.rejected;
        free(b.p);
        model_free(run.model, run.n_model);
        kcw_status_index_free(run.ix);
    }
    /* Both kinds of body were exercised. */
    assert_true(bodies == 200 * 40);
    assert_true(rejected > 200);
    assert_true(rejected < bodies / 2);
}

/* One task changing in a large, stable body parses one member, not all. */
static void test_one_change_parses_one_member(void **state)
{
    (void)state;
    rng_t r = {.s = 42};
    gcluster_t g = {0};
    g.n = MAX_CONN;
    for (int i = 0; i < g.n; i++) {
        gen_conn(&r, &g.c[i], i);
        g.c[i].kind = 0;
        g.c[i].dup = 0;
        g.c[i].n_tasks = 2;
        g.c[i].tasks[0] = (gtask_t){.id = 0};
        g.c[i].tasks[1] = (gtask_t){.id = 1};
    }
    run_t run = {.ix = kcw_status_index_new()};
    buf_t b = {0};
    /* A fixed layout: no random whitespace or escaping between polls. */
    rng_t fixed = {.s = 0}; /* a zero state always draws 0 */
    render(&b, &fixed, &g);
    assert_int_equal(check_body(&run, b.p, b.n, 42), MAX_CONN);
    g.c[17].tasks[1].state = 1;
    g.c[17].tasks[1].trace = 1;
    fixed.s = 0;
    render(&b, &fixed, &g);
    assert_int_equal(check_body(&run, b.p, b.n, 42), 1);
    fixed.s = 0;
    render(&b, &fixed, &g);
    assert_true(kcw_status_index_same(run.ix, b.p, b.n) || check_body(&run, b.p, b.n, 42) == 0);
    free(b.p);
    model_free(run.model, run.n_model);
    kcw_status_index_free(run.ix);
}

static void test_plain_array_and_non_object(void **state)
{
    (void)state;
    kcw_status_index_t *ix = kcw_status_index_new();
    kcw_status_delta_t d;
    char err[200] = "";
    const char *arr = " [\"a\", \"b\"]";
    assert_int_equal(kcw_status_index_apply(ix, arr, strlen(arr), NULL, 0, &d, err, sizeof(err)),
                     1);
    const char *str = "\"x\"";
    assert_int_equal(kcw_status_index_apply(ix, str, strlen(str), NULL, 0, &d, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "invalid JSON"));
    const char *member = "{\"a\": 5}";
    assert_int_equal(
        kcw_status_index_apply(ix, member, strlen(member), NULL, 0, &d, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "\"a\" must be an object"));
    kcw_status_index_free(ix);
}

/* jansson's depth limit applies to the whole body, not to one member. */
static void test_depth_limit_as_full_parse(void **state)
{
    (void)state;
    for (int levels = 2040; levels <= 2050; levels++) {
        buf_t b = {0};
        put(&b, "{\"deep\":{\"status\":null,\"x\":");
        for (int i = 0; i < levels; i++)
            put(&b, "[");
        for (int i = 0; i < levels; i++)
            put(&b, "]");
        put(&b, "}}");
        run_t run = {.ix = kcw_status_index_new()};
        check_body(&run, b.p, b.n, (uint64_t)levels);
        assert_int_equal(run.accepted + run.rejected, 1);
        /* 2 levels of objects above the arrays: jansson's 2048 is the edge. */
        assert_int_equal(run.accepted, levels + 2 <= 2048 ? 1 : 0);
        model_free(run.model, run.n_model);
        kcw_status_index_free(run.ix);
        free(b.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_equals_full),
        cmocka_unit_test(test_one_change_parses_one_member),
        cmocka_unit_test(test_plain_array_and_non_object),
        cmocka_unit_test(test_depth_limit_as_full_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
