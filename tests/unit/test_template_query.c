/* test_template_query.c: with, range, {{ . }}, and Prometheus' query-side
 * template functions (query, first, label, value, sortByLabel,
 * reReplaceAll, safeHtml, externalURL, pathPrefix) against a fixed query
 * provider. The expected texts are what Debian's Prometheus 2.42 renders for
 * the same templates over the same samples (tests/integration/
 * test_template_parity.py compares with it live); plus the bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/template.h"

static kcw_template_sample_t two[2], one_y, n42, big[KCW_TEMPLATE_MAX_SAMPLES], mill;
static int queries_seen;

/* "two": {job=b} 2 and {job=a} 1, in that order (as Prometheus returned
 * them for `... vector(2) or ... vector(1)`); "y": {job=y} 3; "42": {} 42;
 * "big": KCW_TEMPLATE_MAX_SAMPLES samples; "toomany": one more than that;
 * "mill": {} 1234567; "fail": an error; anything else: empty. */
static int provider(void *arg, const char *expr, const kcw_template_sample_t **out, size_t *n,
                    char *err, size_t errlen)
{
    (void)arg;
    queries_seen++;
    *out = NULL;
    *n = 0;
    if (strcmp(expr, "two") == 0) {
        *out = two;
        *n = 2;
    } else if (strcmp(expr, "y") == 0) {
        *out = &one_y;
        *n = 1;
    } else if (strcmp(expr, "42") == 0) {
        *out = &n42;
        *n = 1;
    } else if (strcmp(expr, "mill") == 0) {
        *out = &mill;
        *n = 1;
    } else if (strcmp(expr, "big") == 0) {
        *out = big;
        *n = KCW_TEMPLATE_MAX_SAMPLES;
    } else if (strcmp(expr, "toomany") == 0) {
        *out = big;
        *n = KCW_TEMPLATE_MAX_SAMPLES + 1; /* never read past: refused first */
    } else if (strcmp(expr, "fail") == 0) {
        snprintf(err, errlen, "bad_data: 1:1: parse error: x");
        return -EIO;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(kcw_labels_set(&two[0].labels, "job", "b"), 0);
    two[0].value = 2;
    assert_int_equal(kcw_labels_set(&two[1].labels, "job", "a"), 0);
    two[1].value = 1;
    assert_int_equal(kcw_labels_set(&one_y.labels, "job", "y"), 0);
    one_y.value = 3;
    n42.value = 42;
    mill.value = 1234567;
    for (size_t i = 0; i < KCW_TEMPLATE_MAX_SAMPLES; i++)
        big[i].value = (double)i;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kcw_labels_clear(&two[0].labels);
    kcw_labels_clear(&two[1].labels);
    kcw_labels_clear(&one_y.labels);
    return 0;
}

static char *render_env(const char *src, const kcw_template_env_t *env)
{
    kcw_labels_t labels = {0};
    assert_int_equal(kcw_labels_set(&labels, "instance", "connect-7"), 0);
    kcw_template_ctx_t ctx = {.labels = &labels, .value = 1};
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    if (kcw_template_compile(src, "t.yaml", 1, 1, &t, &errs) != 0) {
        kcw_errors_print(&errs, stderr);
        fail_msg("compile failed for: %s", src);
    }
    kcw_template_set_env(t, env);
    char *out = NULL;
    assert_int_equal(kcw_template_render(t, &ctx, &out), 0);
    kcw_template_free(t);
    kcw_labels_clear(&labels);
    return out;
}

static const kcw_template_env_t env = {.external_url = "http://vm:60305", .query = provider};

static void expect(const char *src, const char *want)
{
    char *got = render_env(src, &env);
    if (strcmp(got, want) != 0)
        fail_msg("template %s: got \"%s\", want \"%s\"", src, got, want);
    free(got);
}

static void expect_error(const char *src, const char *needle)
{
    char *got = render_env(src, &env);
    if (strncmp(got, "<error expanding template: t.yaml:1:", 36) != 0 || !strstr(got, needle))
        fail_msg("template %s: got \"%s\", want an error with \"%s\"", src, got, needle);
    free(got);
}

static void test_as_prometheus(void **state)
{
    (void)state;
    expect("{{ with query \"42\" }}{{ . | first | value }}{{ end }}", "42");
    expect("{{ with query \"none\" }}some{{ else }}none{{ end }}", "none");
    expect("{{ range query \"two\" }}{{ .Labels.job }}={{ .Value }};{{ end }}", "b=2;a=1;");
    expect("{{ range query \"none\" }}x{{ else }}empty{{ end }}", "empty");
    expect("{{ range sortByLabel \"job\" (query \"two\") }}{{ .Labels.job }} {{ end }}", "a b ");
    expect("{{ query \"y\" | first | label \"job\" }}", "y");
    expect("{{ with query \"y\" }}{{ range . }}{{ . }}{{ end }}{{ end }}", "{map[job:y] 3}");
    expect("{{ query \"mill\" | first | value | humanize }}", "1.235M");
    expect("{{ reReplaceAll \"(a+)b\" \"X$1\" \"aab cab\" }}|"
           "{{ reReplaceAll \"^connect-(.*)$\" \"${1}\" $labels.instance }}",
           "Xaa cXa|7");
    expect("{{ \"<b>bold</b>\" | safeHtml }}", "<b>bold</b>");
    expect("{{ externalURL }}", "http://vm:60305");
    expect("[{{ pathPrefix }}]", "[]");
    /* $labels and $value stay the alert's inside a range; .Labels follow the dot */
    expect("{{ range query \"two\" }}{{ $labels.instance }}/{{ .Labels.job }} {{ end }}",
           "connect-7/b connect-7/a ");
    expect_error("{{ query \"none\" | first | value }}",
                 "error calling first: first() called on vector with no elements>");
}

static void test_path_prefix_and_unset_env(void **state)
{
    (void)state;
    kcw_template_env_t sub = {.external_url = "https://h.example:9/kcw/sub?x=1"};
    char *got = render_env("{{ pathPrefix }} {{ externalURL }}", &sub);
    assert_string_equal(got, "/kcw/sub https://h.example:9/kcw/sub?x=1");
    free(got);
    got = render_env("[{{ externalURL }}]", NULL);
    assert_string_equal(got, "[]");
    free(got);
    got = render_env("{{ query \"two\" }}", &sub); /* no query function */
    assert_non_null(strstr(got, "error calling query: no Prometheus to query here"));
    free(got);
}

static void test_errors_and_bounds(void **state)
{
    (void)state;
    expect_error("{{ query \"fail\" }}", "error calling query: bad_data: 1:1: parse error: x");
    expect_error("{{ query \"toomany\" }}", "samples, more than 1000");
    expect_error("{{ range $labels.instance }}{{ end }}", "range can't iterate over string");
    expect_error("{{ with \"x\" }}{{ .Labels.a }}{{ end }}",
                 "can't evaluate field Labels in type string");
    expect_error("{{ label \"job\" \"notasample\" }}",
                 "wrong type for value; expected *template.sample; got string");
    expect_error("{{ first \"x\" }}",
                 "wrong type for value; expected template.queryResult; got string");
    expect_error("{{ reReplaceAll \"(\" \"x\" \"y\" }}", "error calling reReplaceAll: invalid regex");
    /* at most KCW_TEMPLATE_MAX_QUERIES queries per render */
    char src[1024] = "";
    for (int i = 0; i <= KCW_TEMPLATE_MAX_QUERIES; i++)
        strcat(src, "{{ query \"none\" }}");
    queries_seen = 0;
    expect_error(src, "more than 16 queries in one template");
    assert_int_equal(queries_seen, KCW_TEMPLATE_MAX_QUERIES);
    /* a query inside a range runs per sample: the same bound stops it */
    queries_seen = 0;
    expect_error("{{ range query \"big\" }}{{ range query \"big\" }}{{ end }}{{ end }}",
                 "more than 16 queries in one template");
    assert_int_equal(queries_seen, KCW_TEMPLATE_MAX_QUERIES);
    /* and the actions a render runs are bounded: 11 ranges x 1000 samples x 11 */
    char many[2048] = "";
    for (int i = 0; i < 11; i++) {
        strcat(many, "{{ range query \"big\" }}");
        for (int j = 0; j < 10; j++)
            strcat(many, "{{ \"\" }}");
        strcat(many, "{{ end }}");
    }
    expect_error(many, "more than 100000 steps");
}

static void test_compile(void **state)
{
    (void)state;
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    /* {{ . }} is fine inside with / range, also nested in if */
    assert_int_equal(kcw_template_compile("{{ with $value }}{{ if . }}{{ . }}{{ end }}{{ end }}",
                                          "t.yaml", 1, 1, &t, &errs),
                     0);
    kcw_template_free(t);
    t = NULL;
    /* ... but not in with's else branch, where the dot is the alert */
    assert_int_equal(kcw_template_compile("{{ with $value }}{{ else }}{{ . }}{{ end }}", "t.yaml",
                                          1, 1, &t, &errs),
                     -EINVAL);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].col, 31);
    kcw_errors_clear(&errs);
    assert_int_equal(kcw_template_compile("{{ externalURL 1 }}", "t.yaml", 1, 1, &t, &errs),
                     -EINVAL);
    assert_non_null(strstr(errs.items[0].msg, "wrong number of args for externalURL"));
    kcw_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_prometheus),
        cmocka_unit_test(test_path_prefix_and_unset_env),
        cmocka_unit_test(test_errors_and_bounds),
        cmocka_unit_test(test_compile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
