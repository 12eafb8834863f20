/* test_promql_check.c: the pure parts of the PromQL check: Prometheus' error
 * positions, their mapping onto the rule file through the expr's segments
 * (plain, quoted, literal and folded scalars), the positioned rejection and
 * the format_query response parser. The error texts are verbatim answers of
 * Debian's Prometheus 2.42 (tests/integration/test_promql_check.py asks it
 * live). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kcwatch/prom.h"
#include "kcwatch/promql_check.h"
#include "kcwatch/rules.h"

static void test_error_position(void **state)
{
    (void)state;
    int line = 0, col = 0;
    const char *rest = NULL;
    assert_true(kcw_promql_error_position(
        "HTTP 400: bad_data: invalid parameter \"query\": 1:16: parse error: unclosed left "
        "parenthesis",
        &line, &col, &rest));
    assert_int_equal(line, 1);
    assert_int_equal(col, 16);
    assert_string_equal(rest, "parse error: unclosed left parenthesis");
    assert_true(kcw_promql_error_position("2:12: parse error: x", &line, &col, &rest));
    assert_int_equal(line, 2);
    assert_int_equal(col, 12);
    assert_false(kcw_promql_error_position("HTTP 400: bad_data: no position", &line, &col, &rest));
    assert_false(kcw_promql_error_position("0:3: parse error", &line, &col, &rest));
    assert_false(kcw_promql_error_position("", &line, &col, &rest));
}

/* The rejection of the only rule of yaml, for Prometheus' message msg. */
static void rejection(const char *yaml, const char *msg, char *out, size_t n)
{
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_rules_load_string(yaml, "r.yaml", &rs, &errs), 0);
    assert_int_equal(rs->n_groups, 1);
    assert_int_equal(kcw_promql_unverified(rs), 1);
    kcw_promql_reject(&rs->groups[0].rules[0], msg, &errs);
    assert_int_equal(errs.n, 1);
    kcw_error_format(&errs.items[0], out, n);
    kcw_errors_clear(&errs);
    kcw_ruleset_free(rs);
}

static void test_positions_in_file(void **state)
{
    (void)state;
    char got[512];
    /* Plain scalar: column 15 + 16 - 1. */
    rejection("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n",
              "bad_data: invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis",
              got, sizeof(got));
    assert_string_equal(got, "r.yaml:5:26: alert A: PromQL rejected by Prometheus: parse error: "
                             "unclosed left parenthesis");
    /* Literal block: line 2 of the expression is line 8 of the file. */
    rejection("groups:\n- name: g\n  rules:\n  - alert: B\n    expr: |\n      sum by (job) (\n"
              "        rate(x[5m]) +\n      )\n",
              "3:1: parse error: unexpected \")\" in aggregation", got, sizeof(got));
    assert_string_equal(got, "r.yaml:8:7: alert B: PromQL rejected by Prometheus: parse error: "
                             "unexpected \")\" in aggregation");
    /* Folded plain scalar over two lines: Prometheus sees one line. */
    rejection("groups:\n- name: g\n  rules:\n  - alert: C\n    expr: up ==\n      and (\n",
              "1:12: parse error: x", got, sizeof(got));
    /* "up == and (": offset 11 is just past "(" ("up ==" at 5:11, "and (" at 6:7). */
    assert_string_equal(got, "r.yaml:6:12: alert C: PromQL rejected by Prometheus: parse error: x");
    /* Single-quoted: "foo" starts at 5:12, one column after the quote. */
    rejection("groups:\n- name: g\n  rules:\n  - alert: D\n    expr: 'foo +'\n",
              "1:6: parse error: unexpected end of input", got, sizeof(got));
    assert_string_equal(got, "r.yaml:5:17: alert D: PromQL rejected by Prometheus: parse error: "
                             "unexpected end of input");
    /* No position in the message: the expr scalar. */
    rejection("groups:\n- name: g\n  rules:\n  - alert: E\n    expr: foo\n", "bad_data: odd", got,
              sizeof(got));
    assert_string_equal(got, "r.yaml:5:11: alert E: PromQL rejected by Prometheus: bad_data: odd");
}

static void test_map_clamps(void **state)
{
    (void)state;
    kcw_src_seg_t segs[2] = {{.off = 0, .line = 3, .col = 5}, {.off = 4, .line = 4, .col = 2}};
    int l, c;
    kcw_src_map_pos(segs, 2, "abc def", 1, 2, &l, &c);
    assert_int_equal(l, 3);
    assert_int_equal(c, 6);
    kcw_src_map_pos(segs, 2, "abc def", 1, 6, &l, &c);
    assert_int_equal(l, 4);
    assert_int_equal(c, 3);
    kcw_src_map_pos(segs, 2, "abc def", 9, 99, &l, &c); /* past the end: its end */
    assert_int_equal(l, 4);
    assert_int_equal(c, 5);
    kcw_src_map_pos(NULL, 0, "abc", 1, 1, &l, &c);
    assert_int_equal(l, 0);
}

static void test_format_response(void **state)
{
    (void)state;
    char *f = NULL;
    kcw_prom_error_t err;
    const char *ok = "{\"status\":\"success\",\"data\":\"up{a=\\\"b\\\"} == 1\"}";
    assert_int_equal(kcw_prom_parse_format_response(ok, strlen(ok), &f, &err), 0);
    assert_string_equal(f, "up{a=\"b\"} == 1");
    free(f);
    const char *bad = "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid "
                      "parameter \\\"query\\\": 1:6: parse error: unexpected end of input\"}";
    assert_int_equal(kcw_prom_parse_format_response(bad, strlen(bad), &f, &err), -EREMOTEIO);
    assert_null(f);
    assert_string_equal(err.type, "bad_data");
    assert_non_null(strstr(err.msg, "1:6: parse error"));
    const char *odd[] = {"{\"status\":\"success\",\"data\":{}}", "[]", "nope",
                         "{\"status\":\"maybe\"}", "{\"data\":\"x\"}"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        assert_int_equal(kcw_prom_parse_format_response(odd[i], strlen(odd[i]), &f, &err),
                         -EINVAL);
        assert_null(f);
        assert_int_equal(err.kind, KCW_PROM_ERR_RESPONSE);
    }
}

static void test_unverified_count(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_rules_load_string("groups:\n- name: g\n  rules:\n  - alert: A\n    "
                                           "expr: up\n  - alert: B\n    connect: {}\n",
                                           "r.yaml", &rs, &errs),
                     0);
    assert_int_equal(kcw_promql_unverified(rs), 1);
    rs->groups[0].rules[0].expr_formatted = strdup("up");
    assert_int_equal(kcw_promql_unverified(rs), 0);
    kcw_ruleset_free(rs);
    assert_int_equal(kcw_promql_unverified(NULL), 0);
}

static void test_carry(void **state)
{
    (void)state;
    static const char *const old_yaml =
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n"
        "  - alert: B\n    expr: rate(x[5m]) > 1\n  - alert: C\n    expr: down\n";
    static const char *const new_yaml =
        "groups:\n- name: h\n  rules:\n  - alert: B2\n    expr: rate(x[5m]) > 1\n"
        "  - alert: A\n    expr: up == 0\n  - alert: D\n    expr: up == 1\n"
        "  - alert: E\n    expr: down\n  - alert: F\n    connect: {}\n";
    kcw_ruleset_t *from = NULL, *to = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_rules_load_string(old_yaml, "old.yaml", &from, &errs), 0);
    assert_int_equal(kcw_rules_load_string(new_yaml, "new.yaml", &to, &errs), 0);
    /* Nothing verified yet in from: nothing to carry. */
    assert_int_equal(kcw_promql_carry(to, from), 0);
    from->groups[0].rules[0].expr_formatted = strdup("up == 0");
    from->groups[0].rules[1].expr_formatted = strdup("rate(x[5m]) > 1");
    /* C was not verified (Prometheus could not be asked): E is asked again. */
    assert_int_equal(kcw_promql_unverified(to), 4);
    assert_int_equal(kcw_promql_carry(to, from), 2);
    const kcw_rule_group_t *g = &to->groups[0];
    assert_string_equal(g->rules[0].expr_formatted, "rate(x[5m]) > 1");
    assert_string_equal(g->rules[1].expr_formatted, "up == 0");
    assert_null(g->rules[2].expr_formatted);
    assert_null(g->rules[3].expr_formatted);
    assert_int_equal(kcw_promql_unverified(to), 2);
    /* A second pass finds nothing more; no rules on either side is nothing. */
    assert_int_equal(kcw_promql_carry(to, from), 0);
    assert_int_equal(kcw_promql_carry(to, NULL), 0);
    kcw_ruleset_free(from);
    kcw_ruleset_free(to);
}

/* --- the verifier against a stand-in format_query ------------------------ */

/* Answers every request as Prometheus' format_query does for a valid expr
 * (the formatted text is not looked at here) and counts them; past
 * gate_after requests each waits (its own thread) until the gate opens. */
static atomic_int format_requests;
static int gate_after;
static bool gate_open;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static enum MHD_Result on_format_request(void *cls, struct MHD_Connection *c, const char *url,
                                         const char *method, const char *version,
                                         const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (*con_cls == NULL) {
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (atomic_fetch_add(&format_requests, 1) >= gate_after) {
        pthread_mutex_lock(&gate_mu);
        while (!gate_open)
            pthread_cond_wait(&gate_cv, &gate_mu);
        pthread_mutex_unlock(&gate_mu);
    }
    static const char body[] = "{\"status\":\"success\",\"data\":\"up\"}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

typedef struct vfx {
    uv_loop_t loop;
    uv_timer_t deadline, tick;
    kcw_ruleset_t *rs;
    size_t want_verified; /* run until this many are verified */
    bool timed_out;
} vfx_t;

static size_t verified(const kcw_ruleset_t *rs)
{
    size_t n = 0;
    for (size_t g = 0; g < rs->n_groups; g++)
        n += rs->groups[g].n_rules;
    return n - kcw_promql_unverified(rs);
}

static void on_vfx_deadline(uv_timer_t *t)
{
    ((vfx_t *)t->data)->timed_out = true;
}

static void on_vfx_tick(uv_timer_t *t)
{
    (void)t; /* keeps the loop turning while answers come */
}

/* Runs the loop until f->want_verified rules are verified (10 s at most). */
static void vfx_run(vfx_t *f, size_t want)
{
    f->timed_out = false;
    uv_timer_start(&f->deadline, on_vfx_deadline, 10000, 0);
    uv_timer_start(&f->tick, on_vfx_tick, 1, 1);
    while (verified(f->rs) < want && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    uv_timer_stop(&f->tick);
    assert_false(f->timed_out);
}

static void on_verifier_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Paused, the verifier asks nothing; resumed, it asks about what is left
 * (verdicts already in are kept, what was in flight is asked again). */
static void test_verifier_pause_resume(void **state)
{
    (void)state;
    enum { RULES = 40 };
    char *yaml = malloc(64 + RULES * 64);
    assert_non_null(yaml);
    size_t len = (size_t)sprintf(yaml, "groups:\n- name: g\n  rules:\n");
    for (int i = 0; i < RULES; i++)
        len += (size_t)sprintf(yaml + len, "  - alert: A%d\n    expr: up > %d\n", i, i);
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    assert_int_equal(kcw_rules_load_string(yaml, "r.yaml", &rs, &errs), 0);
    free(yaml);
    assert_int_equal(kcw_promql_unverified(rs), RULES);

    atomic_store(&format_requests, 0);
    gate_after = 5;
    gate_set(false);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                                                MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                                            0, NULL, NULL, on_format_request, NULL, MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)info->port);
    kcw_prometheus_conf_t conf = {.url = url, .timeout_ms = 5000};

    vfx_t f = {.rs = rs};
    assert_int_equal(uv_loop_init(&f.loop), 0);
    uv_timer_init(&f.loop, &f.deadline);
    uv_timer_init(&f.loop, &f.tick);
    f.deadline.data = f.tick.data = &f;
    kcw_http_t *http = kcw_http_new(&f.loop);
    assert_non_null(http);
    kcw_promql_verifier_t *v = kcw_promql_verifier_new(&f.loop, http, &conf, rs);
    assert_non_null(v);

    /* Paused before its first round: the loop runs dry, nothing is asked. */
    kcw_promql_verifier_pause(v);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(atomic_load(&format_requests), 0);
    assert_int_equal(kcw_promql_unverified(rs), RULES);

    /* Resumed: five answers come, the next requests are held; paused
     * then, mid-round. */
    kcw_promql_verifier_resume(v);
    vfx_run(&f, 5);
    kcw_promql_verifier_pause(v);
    assert_int_equal(verified(rs), 5);
    gate_set(true); /* the held answers reach closed connections */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(verified(rs), 5); /* answers in flight were dropped */

    /* Resumed: the rest, each asked again. */
    int before = atomic_load(&format_requests);
    kcw_promql_verifier_resume(v);
    vfx_run(&f, RULES);
    assert_int_equal(kcw_promql_unverified(rs), 0);
    assert_true(atomic_load(&format_requests) - before >= RULES - 5);

    bool closed = false, http_closed = false;
    kcw_promql_verifier_close(v, on_verifier_closed, &closed);
    kcw_http_close(http, on_verifier_closed, &http_closed);
    uv_close((uv_handle_t *)&f.deadline, NULL);
    uv_close((uv_handle_t *)&f.tick, NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_true(http_closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    MHD_stop_daemon(d);
    kcw_ruleset_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_position),  cmocka_unit_test(test_positions_in_file),
        cmocka_unit_test(test_map_clamps),      cmocka_unit_test(test_format_response),
        cmocka_unit_test(test_unverified_count), cmocka_unit_test(test_carry),
        cmocka_unit_test(test_verifier_pause_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
