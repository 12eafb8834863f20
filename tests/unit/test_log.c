/* test_log.c: log lines stay one line and keep secrets out, whatever the
 * values hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "kcwatch/log.h"

/* Runs one kcw_log call into a memory stream; returns the text (free it). */
#define CAPTURE(fmt, ...)                                                                          \
    ({                                                                                             \
        char *buf_ = NULL;                                                                         \
        size_t len_ = 0;                                                                           \
        FILE *f_ = open_memstream(&buf_, &len_);                                                   \
        assert_non_null(f_);                                                                       \
        kcw_log_setup((fmt), KCW_LOG_DEBUG, f_);                                                   \
        kcw_log(KCW_LOG_WARN, __VA_ARGS__);                                                        \
        fclose(f_);                                                                                \
        buf_;                                                                                      \
    })

static int teardown(void **state)
{
    (void)state;
    kcw_log_reset();
    return 0;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_logfmt_escapes_every_control(void **state)
{
    (void)state;
    char *out = CAPTURE(KCW_LOG_LOGFMT, "m", "connector", "evil\r\033[2Jts=forged level=error",
                        "plain", "ok", NULL);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\033'));
    assert_non_null(strstr(out, "connector=\"evil\\r\\x1b[2Jts=forged level=error\""));
    assert_non_null(strstr(out, " plain=ok"));
    free(out);
    out = CAPTURE(KCW_LOG_LOGFMT, "m", "bytes", "\xff\x01", NULL);
    assert_non_null(strstr(out, "bytes=\"\\xff\\x01\""));
    free(out);
}

static void test_json_keeps_invalid_utf8_field(void **state)
{
    (void)state;
    char *out = CAPTURE(KCW_LOG_JSON, "m", "name", "bad\xff" "byte", "next", "x", NULL);
    json_error_t err;
    json_t *o = json_loads(out, 0, &err);
    assert_non_null(o);
    const char *name = json_string_value(json_object_get(o, "name"));
    assert_non_null(name);
    assert_string_equal(name, "bad\xef\xbf\xbd" "byte");
    assert_string_equal(json_string_value(json_object_get(o, "next")), "x");
    json_decref(o);
    free(out);
}

/* Numbers and booleans keep their JSON type; logfmt shows them bare. */
static void test_typed_fields(void **state)
{
    (void)state;
    long long big = 9007199254740993LL;
    char *out = CAPTURE(KCW_LOG_JSON, "m", KCW_LOG_INT("count", 42), KCW_LOG_INT("neg", -7),
                        KCW_LOG_INT("big", big), KCW_LOG_BOOL("dry_run", 0),
                        KCW_LOG_BOOL("ok", 5 > 1), KCW_LOG_NUM("seconds", 1.5),
                        KCW_LOG_NUM("nan", NAN), "text", "42", NULL);
    json_error_t err;
    json_t *o = json_loads(out, 0, &err);
    if (!o)
        fail_msg("not JSON: %s", out);
    assert_true(json_is_integer(json_object_get(o, "count")));
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "neg")), -7);
    assert_true(json_integer_value(json_object_get(o, "big")) == big);
    assert_true(json_is_false(json_object_get(o, "dry_run")));
    assert_true(json_is_true(json_object_get(o, "ok")));
    assert_true(json_is_real(json_object_get(o, "seconds")));
    assert_true(json_real_value(json_object_get(o, "seconds")) == 1.5);
    /* JSON has no NaN: the text form stays */
    assert_string_equal(json_string_value(json_object_get(o, "nan")), "nan");
    assert_string_equal(json_string_value(json_object_get(o, "text")), "42");
    json_decref(o);
    free(out);

    out = CAPTURE(KCW_LOG_LOGFMT, "m", KCW_LOG_INT("count", 42), KCW_LOG_BOOL("dry_run", 1),
                  KCW_LOG_NUM("seconds", 0.25), NULL);
    assert_non_null(strstr(out, " count=42 dry_run=true seconds=0.25\n"));
    assert_null(strchr(out, '\x01'));
    free(out);
}

static void test_urls_redacted(void **state)
{
    (void)state;
    char *out = CAPTURE(KCW_LOG_LOGFMT, "poll failed", "url",
                        "http://admin:hunter2@w:8083/?access_token=t0k", "error",
                        "GET https://hooks.example/x?token=abc failed", NULL);
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "t0k"));
    assert_null(strstr(out, "abc"));
    assert_non_null(strstr(out, "url=\"http://xxxxx@w:8083/?access_token=xxxxx\""));
    free(out);
}

static void test_secrets_rotate_without_limit(void **state)
{
    (void)state;
    /* Far more rotations than the list holds: the newest is always masked
     * (it used to be logged in clear once 64 had been registered). */
    char secret[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(secret, sizeof(secret), "rotated-secret-%05d", i);
        kcw_log_add_secret(secret);
        kcw_log_add_secret("the-stable-one"); /* every load registers it again */
    }
    assert_true(kcw_log_secret_count() <= 1024);
    char *out = CAPTURE(KCW_LOG_LOGFMT, "m", "v", "rotated-secret-04999 the-stable-one", NULL);
    assert_null(strstr(out, "rotated-secret-04999"));
    assert_null(strstr(out, "the-stable-one"));
    free(out);
}

/* A reload's global.log applies, except what the command line pinned. */
static void test_configure_keeps_pins(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, f);
    assert_false(kcw_log_enabled(KCW_LOG_DEBUG));
    kcw_log_configure(KCW_LOG_LOGFMT, KCW_LOG_DEBUG); /* a reload to debug */
    assert_true(kcw_log_enabled(KCW_LOG_DEBUG));
    kcw_log(KCW_LOG_DEBUG, "after reload", NULL); /* same output, still open */
    kcw_log_pin(KCW_LOG_JSON, -1); /* --log-format json only */
    kcw_log_configure(KCW_LOG_LOGFMT, KCW_LOG_WARN);
    assert_false(kcw_log_enabled(KCW_LOG_INFO));
    kcw_log(KCW_LOG_WARN, "pinned json", NULL);
    kcw_log_pin(-1, KCW_LOG_ERROR); /* --log-level error only */
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_DEBUG, f);
    assert_false(kcw_log_enabled(KCW_LOG_WARN));
    kcw_log(KCW_LOG_ERROR, "pinned error", NULL);
    fclose(f);
    assert_non_null(strstr(buf, "level=debug msg=\"after reload\""));
    assert_non_null(strstr(buf, "\"msg\":\"pinned json\""));
    assert_non_null(strstr(buf, "level=error msg=\"pinned error\""));
    free(buf);
    kcw_log_reset(); /* pins go too */
    kcw_log_configure(KCW_LOG_LOGFMT, KCW_LOG_DEBUG);
    assert_true(kcw_log_enabled(KCW_LOG_DEBUG));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_logfmt_escapes_every_control, teardown),
        cmocka_unit_test_teardown(test_json_keeps_invalid_utf8_field, teardown),
        cmocka_unit_test_teardown(test_typed_fields, teardown),
        cmocka_unit_test_teardown(test_urls_redacted, teardown),
        cmocka_unit_test_teardown(test_secrets_rotate_without_limit, teardown),
        cmocka_unit_test_teardown(test_configure_keeps_pins, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
