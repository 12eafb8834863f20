/* test_text.c: escaping of peer-supplied text for terminals and logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/text.h"

static void check(const char *in, unsigned flags, const char *want)
{
    char *got = kcw_text_escape(in, flags);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_escape_controls(void **state)
{
    (void)state;
    check("orders", 0, "orders");
    check("\033[2Jcleared", 0, "\\x1b[2Jcleared");
    check("a\r\nb\tc", 0, "a\\r\\nb\\tc");
    check("del\x7f", 0, "del\\x7f");
    check("c1 \xc2\x9b" "31m", 0, "c1 \\xc2\\x9b31m");  /* U+009B CSI */
    check("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80", 0, "Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80");
    check("bad \xff\xc3(", 0, "bad \\xff\\xc3(");
    check("\xed\xa0\x80", 0, "\\xed\\xa0\\x80");  /* surrogate */
    check("\xc0\xaf", 0, "\\xc0\\xaf");            /* overlong '/' */
    check("say \"hi\" \\", KCW_TEXT_QUOTED, "say \\\"hi\\\" \\\\");
    check("say \"hi\" \\", 0, "say \"hi\" \\");
    check(NULL, 0, "");
}

static void test_needs_escape(void **state)
{
    (void)state;
    assert_false(kcw_text_needs_escape("plain text \xc3\xab"));
    assert_false(kcw_text_needs_escape(NULL));
    assert_true(kcw_text_needs_escape("x\033"));
    assert_true(kcw_text_needs_escape("x\r"));
    assert_true(kcw_text_needs_escape("x\xff"));
}

/* "did you mean": the nearest key within a few edits, or none. */
static void test_nearest(void **state)
{
    (void)state;
    static const char *const keys[] = {"poll_interval", "timeout", "urls", "url",
                                       "max_body_bytes", "name", NULL};
    assert_string_equal(kcw_text_nearest("poll_intervall", keys), "poll_interval");
    assert_string_equal(kcw_text_nearest("pol_interval", keys), "poll_interval");
    assert_string_equal(kcw_text_nearest("Timeout", keys), "timeout");    /* case */
    assert_string_equal(kcw_text_nearest("timeuot", keys), "timeout");    /* swap */
    assert_string_equal(kcw_text_nearest("nmae", keys), "name");
    assert_string_equal(kcw_text_nearest("uls", keys), "urls");           /* first of ties */
    assert_null(kcw_text_nearest("zzzz", keys));
    assert_null(kcw_text_nearest("interval", keys));                      /* too far */
    assert_null(kcw_text_nearest("", keys));
    assert_null(kcw_text_nearest("x", NULL));
    char huge[200];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_null(kcw_text_nearest(huge, keys)); /* bounded work */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_needs_escape),
        cmocka_unit_test(test_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
