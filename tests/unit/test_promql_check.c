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
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_position),  cmocka_unit_test(test_positions_in_file),
        cmocka_unit_test(test_map_clamps),      cmocka_unit_test(test_format_response),
        cmocka_unit_test(test_unverified_count), cmocka_unit_test(test_carry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
