/* test_template.c: the template subset: output of every feature as
 * Prometheus prints it, compile errors with their file positions, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/template.h"

typedef struct fixture {
    kcw_labels_t labels;
    kcw_labels_t external;
    kcw_template_ctx_t ctx;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(kcw_labels_set(&f->labels, "connector", "orders-sink"), 0);
    assert_int_equal(kcw_labels_set(&f->labels, "task", "1"), 0);
    assert_int_equal(kcw_labels_set(&f->labels, "state", "FAILED"), 0);
    assert_int_equal(kcw_labels_set(&f->labels, "worker_id", "connect-3:8083"), 0);
    assert_int_equal(kcw_labels_set(&f->external, "env", "prod"), 0);
    f->ctx.labels = &f->labels;
    f->ctx.external_labels = &f->external;
    f->ctx.value = 1;
    f->ctx.trace = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat X.put(X.java:1)";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kcw_labels_clear(&f->labels);
    kcw_labels_clear(&f->external);
    free(f);
    return 0;
}

/* Compiles and renders src; fails the test on a compile error. */
static char *render(fixture_t *f, const char *src)
{
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    int rc = kcw_template_compile(src, "t.yaml", 1, 1, &t, &errs);
    if (rc != 0) {
        kcw_errors_print(&errs, stderr);
        fail_msg("compile failed for: %s", src);
    }
    assert_int_equal(errs.n, 0);
    char *out = NULL;
    assert_int_equal(kcw_template_render(t, &f->ctx, &out), 0);
    assert_non_null(out);
    kcw_template_free(t);
    kcw_errors_clear(&errs);
    return out;
}

static void expect(fixture_t *f, const char *src, const char *want)
{
    char *got = render(f, src);
    if (strcmp(got, want) != 0)
        fail_msg("template %s: got \"%s\", want \"%s\"", src, got, want);
    free(got);
}

static void expect_at(fixture_t *f, const char *src, double v, const char *want)
{
    f->ctx.value = v;
    expect(f, src, want);
}

static void test_text_and_labels(void **state)
{
    fixture_t *f = *state;
    expect(f, "", "");
    expect(f, "plain text only", "plain text only");
    expect(f, "Task {{ $labels.task }} of {{ $labels.connector }} on {{ $labels.worker_id }}",
           "Task 1 of orders-sink on connect-3:8083");
    expect(f, "{{.Labels.connector}}/{{ .Labels.state }}", "orders-sink/FAILED");
    /* missingkey=zero: absent labels print nothing */
    expect(f, "[{{ $labels.nope }}]", "[]");
    expect(f, "{{ $externalLabels.env }} {{ .ExternalLabels.env }}", "prod prod");
    expect(f, "{{ \"a\\tb\\\"c\\x41\" }}|{{ `raw {{ \"x\" }}` }}", "a\tb\"cA|raw {{ \"x\" }}");
    expect(f, "{{ 42 }} {{ -7 }} {{ 1.5 }} {{ true }} {{ .5 }}", "42 -7 1.5 true 0.5");
    f->ctx.external_labels = NULL;
    expect(f, "[{{ $externalLabels.env }}]", "[]");
}

static void test_trace(void **state)
{
    fixture_t *f = *state;
    expect(f, "{{ $trace }}",
           "org.apache.kafka.connect.errors.ConnectException: boom\n\tat X.put(X.java:1)");
    f->ctx.trace = NULL;
    expect(f, "[{{ $trace }}]", "[]");
}

static void test_value_formatting(void **state)
{
    fixture_t *f = *state;
    /* Go's %v of float64: shortest round-trip digits, exponent at >= 1e6 */
    expect_at(f, "{{ $value }}", 1, "1");
    expect_at(f, "{{ $value }}", 0.5, "0.5");
    expect_at(f, "{{ .Value }}", 1e6, "1e+06");
    expect_at(f, "{{ $value }}", 123456, "123456");
    expect_at(f, "{{ $value }}", 1234567, "1.234567e+06");
    expect_at(f, "{{ $value }}", 0.0001, "0.0001");
    expect_at(f, "{{ $value }}", 0.00001, "1e-05");
    expect_at(f, "{{ $value }}", 0.1 + 0.2, "0.30000000000000004");
    expect_at(f, "{{ $value }}", -2.5e-7, "-2.5e-07");
    expect_at(f, "{{ $value }}", 1e21, "1e+21");
    expect_at(f, "{{ $value }}", 0, "0");
    expect_at(f, "{{ $value }}", NAN, "NaN");
    expect_at(f, "{{ $value }}", INFINITY, "+Inf");
    expect_at(f, "{{ $value }}", -INFINITY, "-Inf");
}

static void test_humanize(void **state)
{
    fixture_t *f = *state;
    expect_at(f, "{{ $value | humanize }}", 1234567, "1.235M");
    expect_at(f, "{{ humanize $value }}", 0.001234, "1.234m");
    expect_at(f, "{{ $value | humanize }}", 0, "0");
    expect_at(f, "{{ $value | humanize }}", 999, "999");
    expect_at(f, "{{ $value | humanize }}", 1000, "1k");
    expect_at(f, "{{ $value | humanize }}", -2.5e9, "-2.5G");
    expect_at(f, "{{ $value | humanize }}", 12e-9, "12n");
    expect_at(f, "{{ $value | humanize }}", NAN, "NaN");
    expect_at(f, "{{ $value | humanize }}", INFINITY, "+Inf");
    expect(f, "{{ \"2048\" | humanize }}", "2.048k");
    expect(f, "{{ humanize 1500 }}", "1.5k");
    expect_at(f, "{{ $value | humanize1024 }}", 1024, "1ki");
    expect_at(f, "{{ $value | humanize1024 }}", 1536 * 1024, "1.5Mi");
    expect_at(f, "{{ $value | humanize1024 }}", 1, "1");
    expect_at(f, "{{ $value | humanize1024 }}", 0.5, "0.5");
    expect_at(f, "{{ $value | humanizeDuration }}", 3723, "1h 2m 3s");
    expect_at(f, "{{ $value | humanizeDuration }}", 90061, "1d 1h 1m 1s");
    expect_at(f, "{{ $value | humanizeDuration }}", 61, "1m 1s");
    expect_at(f, "{{ $value | humanizeDuration }}", -61, "-1m 1s");
    expect_at(f, "{{ $value | humanizeDuration }}", 1.5, "1.5s");
    expect_at(f, "{{ $value | humanizeDuration }}", 0.123, "123ms");
    expect_at(f, "{{ $value | humanizeDuration }}", 0.000002, "2us");
    expect_at(f, "{{ $value | humanizeDuration }}", 0, "0s");
    expect_at(f, "{{ $value | humanizePercentage }}", 0.1234, "12.34%");
    expect_at(f, "{{ $value | humanizePercentage }}", 0.5, "50%");
    expect_at(f, "{{ $value | humanizePercentage }}", 1.23456, "123.5%");
}

static void test_printf(void **state)
{
    fixture_t *f = *state;
    expect_at(f, "{{ printf \"%.2f\" $value }}", 3.14159, "3.14");
    expect_at(f, "{{ $value | printf \"%.1f%%\" }}", 99.25, "99.2%");
    expect(f, "{{ printf \"%s/%d\" $labels.connector 3 }}", "orders-sink/3");
    expect(f, "{{ printf \"%5s|%-5s|%05d|%+d|%x|%X|%o\" \"ab\" \"cd\" 42 5 255 255 8 }}",
           "   ab|cd   |00042|+5|ff|FF|10");
    expect(f, "{{ printf \"%v %v %v %v\" 1e6 7 \"s\" false }}", "1e+06 7 s false");
    expect(f, "{{ printf \"%g %e %G\" 0.1 1234.5 1e-7 }}", "0.1 1.234500e+03 1E-07");
    expect(f, "{{ printf \"%.3s|%q|%t|%T\" \"abcdef\" \"a\\\"b\" true 1.5 }}",
           "abc|\"a\\\"b\"|true|float64");
    expect(f, "{{ printf \"%x\" \"hi\" }}", "6869");
    /* Go's in-band errors, byte for byte */
    expect_at(f, "{{ printf \"%d\" $value }}", 3, "%!d(float64=3)");
    expect(f, "{{ printf \"%s\" 5 }}", "%!s(int=5)");
    expect(f, "{{ printf \"%s and %s\" \"a\" }}", "a and %!s(MISSING)");
    expect(f, "{{ printf \"x\" 1 \"y\" }}", "x%!(EXTRA int=1, string=y)");
    expect(f, "{{ printf \"100%%\" }}", "100%");
    expect(f, "{{ printf \"%\" }}", "%!(NOVERB)");
    expect(f, "{{ printf \"%2000d\" 1 }}", "%!(BADWIDTH)1");
    expect_at(f, "{{ printf \"%.1f|%5.1f\" $value $value }}", INFINITY, "+Inf| +Inf");
    expect_at(f, "{{ printf \"%f\" $value }}", NAN, "NaN");
    /* nested call as an argument */
    expect_at(f, "{{ printf \"%s!\" (humanize $value) }}", 2000, "2k!");
}

static void test_string_functions(void **state)
{
    fixture_t *f = *state;
    expect(f, "{{ \"hello world-foo_bar it's\" | title }}", "Hello World-Foo_bar It'S");
    expect(f, "{{ $labels.connector | toUpper }}", "ORDERS-SINK");
    expect(f, "{{ toLower \"MiXeD\" }}", "mixed");
    expect(f, "{{ $labels.state | toLower | title }}", "Failed");
}

static void test_if_else(void **state)
{
    fixture_t *f = *state;
    expect(f, "{{ if $labels.task }}task {{ $labels.task }}{{ else }}connector{{ end }}", "task 1");
    expect(f, "{{ if $labels.nope }}yes{{ else }}no{{ end }}", "no");
    expect(f, "{{ if $labels.nope }}yes{{ end }}.", ".");
    const char *chain = "{{ if eq $labels.state \"PAUSED\" }}P{{ else if eq $labels.state "
                        "\"FAILED\" }}F{{ else }}O{{ end }}";
    expect(f, chain, "F");
    expect(f, "{{ if ne $labels.state \"RUNNING\" }}down{{ end }}", "down");
    expect(f, "{{ if eq $labels.state \"A\" \"B\" \"FAILED\" }}any{{ end }}", "any");
    expect(f, "{{ if $labels.task }}{{ if eq $labels.task \"1\" }}one{{ end }}{{ end }}", "one");
    expect_at(f, "{{ if $value }}nonzero{{ else }}zero{{ end }}", 0, "zero");
    expect_at(f, "{{ if eq $value 2.0 }}two{{ end }}", 2, "two");
}

static void test_trim_and_comments(void **state)
{
    fixture_t *f = *state;
    expect(f, "a  \n {{- $labels.task -}} \n  b", "a1b");
    expect(f, "a {{- /* gone */ -}} b", "ab");
    expect(f, "{{/* a comment with }} inside */}}x", "x");
    expect(f, "{{ if $labels.task -}}\n  yes\n{{- end }}", "yes");
    /* "{{-3}}" is not a trim marker: -3 is a number */
    expect(f, "x {{-3}}", "x -3");
}

static void test_render_errors_are_text(void **state)
{
    fixture_t *f = *state;
    char *out = render(f, "{{ $labels.connector | humanize }}");
    assert_non_null(strstr(out, "<error expanding template: t.yaml:1:24: error calling humanize"));
    free(out);
    out = render(f, "ok {{ $value | toUpper }}");
    assert_non_null(strstr(out, "t.yaml:1:16: wrong type for value; expected string; got float64"));
    assert_null(strstr(out, "ok")); /* like Prometheus: the error replaces the text */
    free(out);
    out = render(f, "{{ if eq $value 1 }}x{{ end }}");
    assert_non_null(strstr(out, "incompatible types for comparison"));
    free(out);
    out = render(f, "{{ printf 1 }}");
    assert_non_null(strstr(out, "expected string; got int"));
    free(out);
}

/* Compiling src fails with exactly one error whose text contains needle. */
static void expect_error(const char *src, const char *needle)
{
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    int rc = kcw_template_compile(src, "rules.yaml", 1, 1, &t, &errs);
    if (rc != -EINVAL || errs.n != 1) {
        kcw_errors_print(&errs, stderr);
        fail_msg("%s: rc %d, %zu errors", src, rc, errs.n);
    }
    assert_null(t);
    char buf[512];
    kcw_error_format(&errs.items[0], buf, sizeof(buf));
    if (!strstr(buf, needle))
        fail_msg("%s: error \"%s\" lacks \"%s\"", src, buf, needle);
    kcw_errors_clear(&errs);
}

/* Position of the first error of compiling src at line 10, column 5. */
static void error_position(const char *src, int indent, int *line, int *col)
{
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    if (indent > 0)
        kcw_template_compile_block(src, "rules.yaml", 10, 5, indent, &t, &errs);
    else
        kcw_template_compile(src, "rules.yaml", 10, 5, &t, &errs);
    assert_null(t);
    assert_int_equal(errs.n, 1);
    *line = errs.items[0].line;
    *col = errs.items[0].col;
    kcw_errors_clear(&errs);
}

static void test_compile_errors(void **state)
{
    (void)state;
    expect_error("{{ block $x }}{{ end }}", "{{ block }} is not supported");
    expect_error("{{ template \"x\" }}", "{{ template }} is not supported");
    expect_error("{{ with $labels.a }}{{ else if $value }}{{ end }}",
                 "{{ else if }} is only allowed in {{ if }}");
    expect_error("{{ range $labels.a }}", "unexpected EOF: {{ range }} has no {{ end }}");
    expect_error("{{ range $i := query \"up\" }}{{ end }}", "variable declarations");
    expect_error("{{ $foo }}", "undefined variable \"$foo\"");
    expect_error("{{ $x := 1 }}", "variable declarations");
    expect_error("{{ . }}", "{{ . }} outside {{ with }} / {{ range }} is not supported");
    expect_error("{{ .ExternalURL }}", "unsupported field .ExternalURL");
    expect_error("{{ $labels }}", "$labels needs a label name");
    expect_error("{{ $value.x }}", "$value has no fields");
    expect_error("{{ nosuch $value }}", "function \"nosuch\" not defined");
    expect_error("{{ $value | humanize 1 }}", "wrong number of args for humanize: want 1 got 2");
    expect_error("{{ humanize }}", "wrong number of args for humanize: want 1 got 0");
    expect_error("{{ printf }}", "want at least 1 got 0");
    expect_error("{{ $value 1 }}", "can't give argument to non-function");
    expect_error("{{ $value | $value }}", "non executable command in pipeline stage 2");
    expect_error("{{ }}", "missing value for command");
    expect_error("{{ $value | }}", "missing value for command");
    expect_error("abc {{ $value", "unclosed action");
    expect_error("{{ \"abc }}", "unterminated quoted string");
    expect_error("{{ printf \"%s\" (humanize $value }}", "unclosed left paren");
    expect_error("{{ $value ) }}", "unexpected \")\"");
    expect_error("{{ if $value }}x", "{{ if }} has no {{ end }}");
    expect_error("{{ if $value }}x{{ else }}y{{ else }}z{{ end }}", "second {{ else }}");
    expect_error("x{{ end }}", "unexpected {{ end }}");
    expect_error("{{ else }}", "unexpected {{ else }}");
    expect_error("{{ 12abc }}", "bad number syntax");
    expect_error("{{ 'a' }}", "character constants are not supported");
    expect_error("{{ \"\\q\" }}", "unknown escape sequence");
    expect_error("{{/* open ", "unclosed comment");
    expect_error("{{ humanize }}", "template: ");
}

static void test_error_positions(void **state)
{
    (void)state;
    int line, col;
    /* single line: column = start column + offset in the string */
    error_position("abc {{ block $x }}", 0, &line, &col);
    assert_int_equal(line, 10);
    assert_int_equal(col, 5 + 7);
    error_position("{{ $labels.a }} {{ $foo }}", 0, &line, &col);
    assert_int_equal(line, 10);
    assert_int_equal(col, 5 + 19);
    /* an unclosed action points at its {{ */
    error_position("ok {{ $value ", 0, &line, &col);
    assert_int_equal(col, 5 + 3);
    /* a missing end points at the if */
    error_position("x\n  {{ if $value }}y", 0, &line, &col);
    assert_int_equal(line, 11);
    assert_int_equal(col, 1 + 5);
    /* later lines of a plain multi-line text start at column 1 */
    error_position("line one\nline two {{ nosuch }}", 0, &line, &col);
    assert_int_equal(line, 11);
    assert_int_equal(col, 1 + 12);
    /* block scalars: later lines start after the block's indentation */
    error_position("first\nsecond {{ $bad }}", 4, &line, &col);
    assert_int_equal(line, 11);
    assert_int_equal(col, 4 + 1 + 10);
    /* columns count characters, as YAML marks do */
    error_position("\xc3\xa9t\xc3\xa9 {{ $bad }}", 0, &line, &col);
    assert_int_equal(col, 5 + 7);
}

static void test_output_bound(void **state)
{
    fixture_t *f = *state;
    size_t big = 40 * 1024;
    char *trace = malloc(big + 1);
    assert_non_null(trace);
    memset(trace, 'x', big);
    trace[big] = '\0';
    f->ctx.trace = trace;
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    assert_int_equal(
        kcw_template_compile("{{ $trace }}{{ $trace }}{{ $trace }}", "t", 1, 1, &t, &errs), 0);
    char *out = NULL;
    assert_int_equal(kcw_template_render(t, &f->ctx, &out), -E2BIG);
    assert_non_null(out);
    assert_int_equal(strlen(out), KCW_TEMPLATE_MAX_OUTPUT);
    free(out);
    kcw_template_free(t);
    /* a function result is bounded too */
    assert_int_equal(
        kcw_template_compile("{{ printf \"%s%s%s\" $trace $trace $trace }}", "t", 1, 1, &t, &errs),
        0);
    assert_int_equal(kcw_template_render(t, &f->ctx, &out), -E2BIG);
    assert_true(strlen(out) <= KCW_TEMPLATE_MAX_OUTPUT);
    free(out);
    kcw_template_free(t);
    /* just under the bound is fine */
    assert_int_equal(kcw_template_compile("{{ $trace }}", "t", 1, 1, &t, &errs), 0);
    assert_int_equal(kcw_template_render(t, &f->ctx, &out), 0);
    assert_int_equal(strlen(out), big);
    free(out);
    kcw_template_free(t);
    free(trace);
    assert_int_equal(errs.n, 0);
    kcw_template_free(NULL);
}

static void test_nesting_bound(void **state)
{
    (void)state;
    char src[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(src, "{{ if true }}");
    for (int i = 0; i < 40; i++)
        strcat(src, "{{ end }}");
    kcw_errors_t errs = {0};
    kcw_template_t *t = NULL;
    assert_int_equal(kcw_template_compile(src, "t", 1, 1, &t, &errs), -EINVAL);
    assert_non_null(strstr(errs.items[0].msg, "nesting deeper than"));
    kcw_errors_clear(&errs);
    strcpy(src, "{{ ");
    for (int i = 0; i < 40; i++)
        strcat(src, "(");
    strcat(src, "1");
    for (int i = 0; i < 40; i++)
        strcat(src, ")");
    strcat(src, " }}");
    assert_int_equal(kcw_template_compile(src, "t", 1, 1, &t, &errs), -EINVAL);
    kcw_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_formatting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_humanize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_printf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_else, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_and_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_errors_are_text, setup, teardown),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_error_positions),
        cmocka_unit_test_setup_teardown(test_output_bound, setup, teardown),
        cmocka_unit_test(test_nesting_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
