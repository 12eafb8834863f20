/* test_duration.c: Prometheus-style duration parsing and formatting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/duration.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void test_parse_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } cases[] = {
        {"0", 0},
        {"0s", 0},
        {"0ms", 0},
        {"250ms", 250},
        {"1s", SEC},
        {"10s", 10 * SEC},
        {"5m", 5 * MIN},
        {"1h30m", HOUR + 30 * MIN},
        {"1h30m15s", HOUR + 30 * MIN + 15 * SEC},
        {"1d", DAY},
        {"1w", 7 * DAY},
        {"1y", 365 * DAY},
        {"2y3w4d5h6m7s8ms",
         2 * 365 * DAY + 3 * 7 * DAY + 4 * DAY + 5 * HOUR + 6 * MIN + 7 * SEC + 8},
        {"90m", 90 * MIN},
        {"007s", 7 * SEC},
        {"1m500ms", MIN + 500},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        int rc = kcw_duration_parse(cases[i].in, &ms);
        if (rc != 0 || ms != cases[i].ms)
            fail_msg("%s: rc=%d ms=%lld want %lld", cases[i].in, rc, (long long)ms,
                     (long long)cases[i].ms);
    }
}

static void test_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {"",       "5",    "-1s",  "1.5m",   "1m1h", "1s1s",
                                      "1h 30m", " 1s",  "1s ",  "s",      "1x",   "ms",
                                      "00",     "1S",   "1sec", "1h-30m", "+1s",  "1ms1s",
                                      "1m1m",   "1d1w", "1e3s", "1hh",    "0x10s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 12345;
        int rc = kcw_duration_parse(bad[i], &ms);
        if (rc != -EINVAL)
            fail_msg("\"%s\": rc=%d, want -EINVAL", bad[i], rc);
        assert_int_equal(ms, 12345); /* untouched on failure */
    }
    int64_t ms;
    assert_int_equal(kcw_duration_parse(NULL, &ms), -EINVAL);
}

static void test_parse_overflow(void **state)
{
    (void)state;
    int64_t ms;
    /* INT64_MAX ms is about 292 million years. */
    assert_int_equal(kcw_duration_parse("300000000y", &ms), -ERANGE);
    assert_int_equal(kcw_duration_parse("99999999999999999999ms", &ms), -ERANGE);
    assert_int_equal(kcw_duration_parse("9223372036854775807ms", &ms), 0);
    assert_int_equal(ms, INT64_MAX);
    assert_int_equal(kcw_duration_parse("9223372036854775807s", &ms), -ERANGE);
    /* Sum overflows although each term fits. */
    assert_int_equal(kcw_duration_parse("292000000y20000000000000000ms", &ms), -ERANGE);
    /* A syntax error wins over an overflow. */
    assert_int_equal(kcw_duration_parse("99999999999999999999x", &ms), -EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "0s"},           {250, "250ms"},    {10 * SEC, "10s"},
        {90 * MIN, "1h30m"}, {DAY, "1d"},       {7 * DAY, "1w"},
        {365 * DAY, "1y"},   {90 * DAY, "90d"}, /* weeks only when exact */
        {8 * DAY, "8d"},     {14 * DAY, "2w"},  {HOUR + 500, "1h500ms"},
        {-5 * SEC, "-5s"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = kcw_duration_format(cases[i].ms, buf, sizeof(buf));
        assert_ptr_equal(r, buf);
        assert_string_equal(buf, cases[i].out);
    }
    /* Truncated, still terminated. */
    char small[4];
    kcw_duration_format(90 * MIN + 15 * SEC, small, sizeof(small));
    assert_int_equal(strlen(small), 3);
    assert_string_equal(small, "1h3");
    kcw_duration_format(INT64_MIN, buf, sizeof(buf)); /* must not trap under UBSan */
    assert_int_equal(buf[0], '-');
}

static void test_round_trip(void **state)
{
    (void)state;
    static const char *const canon[] = {"0s",  "1ms",  "999ms", "1s",    "59s", "1m",
                                        "1h",  "1h1m", "1d1h",  "2w",    "3y",  "1d23h59m59s999ms",
                                        "10s", "5m",   "1h30m", "250ms", "6d",  "400d"};
    char buf[64];
    for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
        int64_t ms;
        assert_int_equal(kcw_duration_parse(canon[i], &ms), 0);
        assert_string_equal(kcw_duration_format(ms, buf, sizeof(buf)), canon[i]);
    }
    /* Non-canonical input formats to the canonical spelling and back. */
    int64_t ms, again;
    assert_int_equal(kcw_duration_parse("90m", &ms), 0);
    assert_string_equal(kcw_duration_format(ms, buf, sizeof(buf)), "1h30m");
    assert_int_equal(kcw_duration_parse(buf, &again), 0);
    assert_int_equal(ms, again);
    for (int64_t v = 1; v < INT64_MAX / 7; v = v * 7 + 3) {
        kcw_duration_format(v, buf, sizeof(buf));
        assert_int_equal(kcw_duration_parse(buf, &again), 0);
        assert_int_equal(again, v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),    cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_overflow), cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
