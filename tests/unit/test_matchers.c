/* test_matchers.c: Alertmanager matchers: the string form, the four
 * operators, anchoring, missing labels, errors and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/matchers.h"

static kcw_labels_t labels_of(const char *const *kv)
{
    kcw_labels_t l = {0};
    for (; kv[0]; kv += 2)
        assert_int_equal(kcw_labels_set(&l, kv[0], kv[1]), 0);
    return l;
}

static bool matches(const char *text, const kcw_labels_t *l)
{
    kcw_matchers_t ms = {0};
    char err[256];
    if (kcw_matchers_parse(&ms, text, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
    bool m = kcw_matchers_match(&ms, l);
    kcw_matchers_clear(&ms);
    return m;
}

static void test_operators(void **state)
{
    (void)state;
    kcw_labels_t l = labels_of((const char *[]){"severity", "critical", "cluster", "prod-eu",
                                                "alertname", "ConnectTaskFailed", NULL});
    assert_true(matches("severity=\"critical\"", &l));
    assert_false(matches("severity=\"warning\"", &l));
    assert_true(matches("severity!=\"warning\"", &l));
    assert_false(matches("severity!=\"critical\"", &l));
    assert_true(matches("cluster=~\"prod-.*\"", &l));
    assert_false(matches("cluster!~\"prod-.*\"", &l));
    assert_true(matches("alertname=~\"ConnectTask.*|Other\"", &l));
    /* Fully anchored: a substring is not a match. */
    assert_false(matches("cluster=~\"prod\"", &l));
    assert_false(matches("cluster=~\"eu\"", &l));
    assert_true(matches("cluster!~\"prod\"", &l));
    /* A missing label is the empty string. */
    assert_true(matches("team=\"\"", &l));
    assert_true(matches("team!=\"x\"", &l));
    assert_false(matches("team=~\".+\"", &l));
    assert_true(matches("team=~\".*\"", &l));
    /* Bare values and spacing, as Alertmanager's config accepts them. */
    assert_true(matches("severity = critical", &l));
    assert_true(matches("{severity=\"critical\", cluster=~\"prod-.*\"}", &l));
    assert_false(matches("{severity=\"critical\", cluster=~\"dev-.*\"}", &l));
    assert_true(matches("{severity=critical,cluster=prod-eu,}", &l));
    assert_true(matches("{}", &l)); /* empty list: everything */
    kcw_labels_clear(&l);
}

static void test_escapes_and_format(void **state)
{
    (void)state;
    kcw_labels_t l =
        labels_of((const char *[]){"msg", "say \"hi\"\n", "path", "a.b\\c", "host", "a.b", NULL});
    assert_true(matches("msg=\"say \\\"hi\\\"\\n\"", &l));
    assert_true(matches("host=~\"a\\.b\"", &l));
    assert_false(matches("host=~\"a\\.c\"", &l));
    assert_true(matches("path=\"a.b\\\\c\"", &l));

    kcw_matchers_t ms = {0};
    char err[256];
    assert_int_equal(kcw_matchers_parse(&ms, "{msg=\"say \\\"hi\\\"\\n\", host=~\"a\\.b\"}", err,
                                        sizeof(err)),
                     0);
    char *text = kcw_matchers_format(&ms);
    assert_string_equal(text, "{msg=\"say \\\"hi\\\"\\n\", host=~\"a\\\\.b\"}");
    /* The text form parses back to the same matchers. */
    kcw_matchers_t again = {0};
    assert_int_equal(kcw_matchers_parse(&again, text, err, sizeof(err)), 0);
    assert_int_equal(again.n, 2);
    assert_string_equal(again.items[0].value, "say \"hi\"\n");
    assert_string_equal(again.items[1].value, "a\\.b");
    assert_true(kcw_matchers_match(&again, &l));
    free(text);
    kcw_matchers_clear(&again);

    kcw_matchers_t copy = {0};
    assert_int_equal(kcw_matchers_copy(&copy, &ms), 0);
    assert_true(kcw_matchers_match(&copy, &l));
    assert_int_equal(copy.items[1].op, KCW_MATCH_RE);
    kcw_matchers_clear(&copy);
    kcw_matchers_clear(&ms);
    kcw_labels_clear(&l);
}

static void expect_error(const char *text, const char *needle)
{
    kcw_matchers_t ms = {0};
    char err[256] = "";
    int rc = kcw_matchers_parse(&ms, text, err, sizeof(err));
    if (rc != -EINVAL)
        fail_msg("%s: expected -EINVAL, got %d", text, rc);
    if (!strstr(err, needle))
        fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, needle);
    assert_int_equal(ms.n, 0);
    kcw_matchers_clear(&ms);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("", "expected a matcher");
    expect_error("severity", "expected one of = != =~ !~");
    expect_error("severity==\"x\"", "unexpected '\"'");
    expect_error("9lives=\"x\"", "expected a label name");
    expect_error("a=\"unterminated", "unterminated quoted value");
    expect_error("cluster=~\"(\"", "invalid regex");
    expect_error("{a=\"1\"", "missing '}'");
    expect_error("{a=\"1\"} b", "text after '}'");
    expect_error("a=\"1\" b=\"2\"", "expected ','");
    /* A failing list appends nothing, even after good matchers. */
    kcw_matchers_t ms = {0};
    char err[256];
    assert_int_equal(kcw_matchers_parse(&ms, "x=\"1\"", err, sizeof(err)), 0);
    assert_int_equal(kcw_matchers_parse(&ms, "{a=\"1\", b=~\"(\"}", err, sizeof(err)), -EINVAL);
    assert_int_equal(ms.n, 1);
    /* Structured form validates too. */
    assert_int_equal(kcw_matchers_add(&ms, "bad-name", KCW_MATCH_EQ, "v", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "invalid label name"));
    kcw_matchers_clear(&ms);
    /* The bound. */
    for (int i = 0; i < KCW_MATCHERS_MAX; i++)
        assert_int_equal(kcw_matchers_add(&ms, "a", KCW_MATCH_EQ, "v", err, sizeof(err)), 0);
    assert_int_equal(kcw_matchers_add(&ms, "a", KCW_MATCH_EQ, "v", err, sizeof(err)), -E2BIG);
    kcw_matchers_clear(&ms);
}

static void test_match_empty(void **state)
{
    (void)state;
    kcw_matchers_t ms = {0};
    char err[256];
    assert_int_equal(kcw_matchers_parse(&ms, "{a=~\".*\", b!=\"x\"}", err, sizeof(err)), 0);
    assert_true(kcw_matchers_match_empty(&ms));
    assert_int_equal(kcw_matchers_parse(&ms, "c=\"y\"", err, sizeof(err)), 0);
    assert_false(kcw_matchers_match_empty(&ms));
    kcw_matchers_clear(&ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_escapes_and_format),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_match_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
