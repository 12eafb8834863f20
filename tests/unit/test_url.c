/* test_url.c: joining request paths onto configured URLs (path prefix and
 * query kept), userinfo taken out as credentials, and redaction. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/url.h"

static void check_join(const char *base, const char *path, const char *want)
{
    char *got = kcw_url_join(base, path);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_join_keeps_query_and_prefix(void **state)
{
    (void)state;
    check_join("http://w:8083", "/connectors?expand=status&expand=info",
               "http://w:8083/connectors?expand=status&expand=info");
    check_join("http://w:8083/", "/connectors", "http://w:8083/connectors");
    /* The repro: the API path went after the query string. */
    check_join("http://w:8083/?access_token=abc", "/connectors?expand=status",
               "http://w:8083/connectors?access_token=abc&expand=status");
    check_join("https://proxy/connect/prod//?t=1#frag", "/connectors/a%2Fb/restart",
               "https://proxy/connect/prod/connectors/a%2Fb/restart?t=1");
    check_join("http://u:p%40ss@w:8083", "/", "http://u:p%40ss@w:8083/");
    check_join("http://[::1]:8083/x", "/api/v1/query", "http://[::1]:8083/x/api/v1/query");
    check_join("http://w:9090/api/v1/query", "", "http://w:9090/api/v1/query");
    assert_null(kcw_url_join("not a url", "/x"));
    assert_null(kcw_url_join(NULL, "/x"));
}

static void test_credentials(void **state)
{
    (void)state;
    char *bare, *user, *pass;
    assert_int_equal(kcw_url_credentials("http://admin:p%40ss%3Aw@w:8083/x?q=1", &bare, &user,
                                         &pass),
                     0);
    assert_string_equal(bare, "http://w:8083/x?q=1");
    assert_string_equal(user, "admin");
    assert_string_equal(pass, "p@ss:w");
    free(bare);
    free(user);
    free(pass);
    assert_int_equal(kcw_url_credentials("http://w:8083", &bare, &user, &pass), 0);
    assert_null(user);
    assert_null(pass);
    free(bare);
    assert_int_equal(kcw_url_credentials("http://tok@w", &bare, &user, &pass), 0);
    assert_string_equal(user, "tok");
    assert_null(pass);
    free(bare);
    free(user);
    assert_int_equal(kcw_url_credentials("::", &bare, &user, &pass), -EINVAL);
    assert_null(bare);
}

static void check_redact(const char *url, const char *want)
{
    char *got = kcw_url_redact(url);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_redact(void **state)
{
    (void)state;
    check_redact("http://w:8083", "http://w:8083");
    check_redact("http://user:pass@w:8083/x", "http://xxxxx@w:8083/x");
    check_redact("http://:pass@w:8083/", "http://xxxxx@w:8083/");
    check_redact("https://hooks.example/h?token=s3cr3t&x&y=2#frag",
                 "https://hooks.example/h?token=xxxxx&x=xxxxx&y=xxxxx");
    check_redact("http://w/connectors/a/restart?includeTasks=true&onlyFailed=true&k=v",
                 "http://w/connectors/a/restart?includeTasks=true&onlyFailed=true&k=xxxxx");
    /* Not parseable (a ${ENV} expanded into garbage): nothing after '@'/'?'. */
    check_redact("http://us er:pa ss@ho st/p?token=abc", "http://xxxxx@ho st/p?xxxxx");
    check_redact("ht tp://x?token=abc", "ht tp://x?xxxxx");
    char buf[16];
    assert_string_equal(kcw_url_redact_buf("http://u:p@longhostname:1/", buf, sizeof(buf)),
                        "http://xxxxx@lo");
}

static void test_redact_text(void **state)
{
    (void)state;
    char *s = kcw_url_redact_text(
        "connect[0].urls[1]: \"http://u:secret@w:8083/?access_token=tok\" failed; also "
        "https://h/x?k=v, and ftp://a:b@c");
    assert_non_null(s);
    assert_null(strstr(s, "secret"));
    assert_null(strstr(s, "tok\""));
    assert_null(strstr(s, "k=v"));
    assert_null(strstr(s, "a:b"));
    assert_non_null(strstr(s, "connect[0].urls[1]: \"http://xxxxx@w:8083/?access_token=xxxxx\""));
    free(s);
    s = kcw_url_redact_text("no url here: a://");
    assert_string_equal(s, "no url here: a://");
    free(s);
    s = kcw_url_redact_text("://u:p@h?x=1");
    assert_null(strstr(s, "u:p"));
    free(s);
}

static void test_escape_and_generator(void **state)
{
    (void)state;
    char *s = kcw_url_escape("a b+c/\xc3\xa9~", true);
    assert_string_equal(s, "a+b%2Bc%2F%C3%A9~");
    free(s);
    s = kcw_url_escape("a b", false);
    assert_string_equal(s, "a%20b");
    free(s);
    /* As Prometheus' generatorURL for the same rule (test_promql_only.py
     * compares with a live one). */
    s = kcw_url_generator("http://prom:9090/", "\n  sum by (job) (up) > 0\n", NULL, NULL);
    assert_string_equal(s, "http://prom:9090/graph?g0.expr=sum+by+%28job%29+%28up%29+%3E+0&g0.tab=1");
    free(s);
    s = kcw_url_generator("http://kcw:9464", NULL, "connect status", "TaskFailed");
    assert_string_equal(s, "http://kcw:9464/api/v1/rules?rule_group%5B%5D=connect+status"
                           "&rule_name%5B%5D=TaskFailed");
    free(s);
    assert_null(kcw_url_generator(NULL, "up", NULL, NULL));
    assert_null(kcw_url_generator("", NULL, "g", "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_and_generator),
        cmocka_unit_test(test_join_keeps_query_and_prefix),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_redact_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
