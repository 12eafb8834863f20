/* test_metrics.c: the self-metric registry: declaration, counters, gauges,
 * histograms (cumulative buckets, _sum, _count), label escaping, the series
 * bound, the exact exposition text, and the process figures from /proc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/metrics.h"

static void test_exposition_text(void **state)
{
    (void)state;
    kcw_metrics_t *m = kcw_metrics_new();
    assert_non_null(m);
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_COUNTER, "x_total", "Things.\nDone \\ here",
                                         NULL, 0),
                     0);
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_COUNTER, "x_total", "again", NULL, 0), 0);
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_GAUGE, "x_total", "", NULL, 0), -EINVAL);
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_GAUGE, "0bad", "", NULL, 0), -EINVAL);
    double b[] = {0.1, 1};
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_HISTOGRAM, "d_seconds", "Durations.", b, 2),
                     0);
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_GAUGE, "g", "A gauge.", NULL, 0), 0);

    const char *a[] = {"cluster", "c\"1\\\n", NULL};
    assert_int_equal(kcw_metrics_add(m, "x_total", a, 2), 0);
    assert_int_equal(kcw_metrics_add(m, "x_total", a, 0.5), 0);
    assert_int_equal(kcw_metrics_add(m, "x_total", a, -1), -EINVAL); /* counters only go up */
    assert_int_equal(kcw_metrics_add(m, "g", NULL, 1), -EINVAL);     /* wrong type */
    assert_int_equal(kcw_metrics_add(m, "nope", NULL, 1), -EINVAL);
    const char *bad[] = {"__reserved", "v", NULL};
    assert_int_equal(kcw_metrics_add(m, "x_total", bad, 1), -EINVAL);
    assert_int_equal(kcw_metrics_set(m, "g", NULL, 7), 0);
    assert_int_equal(kcw_metrics_set(m, "g", NULL, -3), 0);
    assert_int_equal(kcw_metrics_observe(m, "d_seconds", NULL, 0.05), 0);
    assert_int_equal(kcw_metrics_observe(m, "d_seconds", NULL, 0.5), 0);
    assert_int_equal(kcw_metrics_observe(m, "d_seconds", NULL, 5), 0);
    assert_true(kcw_metrics_value(m, "x_total", a) == 2.5);
    assert_true(isnan(kcw_metrics_value(m, "x_total", NULL)));

    size_t len = 0;
    char *text = kcw_metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_string_equal(text, "# HELP x_total Things.\\nDone \\\\ here\n"
                              "# TYPE x_total counter\n"
                              "x_total{cluster=\"c\\\"1\\\\\\n\"} 2.5\n"
                              "# HELP d_seconds Durations.\n"
                              "# TYPE d_seconds histogram\n"
                              "d_seconds_bucket{le=\"0.1\"} 1\n"
                              "d_seconds_bucket{le=\"1\"} 2\n"
                              "d_seconds_bucket{le=\"+Inf\"} 3\n"
                              "d_seconds_sum 5.55\n"
                              "d_seconds_count 3\n"
                              "# HELP g A gauge.\n"
                              "# TYPE g gauge\n"
                              "g -3\n"
                              "# HELP kcwatch_metrics_series_dropped_total Label sets not recorded "
                              "because a family held too many series.\n"
                              "# TYPE kcwatch_metrics_series_dropped_total counter\n"
                              "kcwatch_metrics_series_dropped_total 0\n");
    free(text);

    kcw_metrics_clear(m, "x_total");
    assert_true(isnan(kcw_metrics_value(m, "x_total", a)));
    kcw_metrics_free(m);
    kcw_metrics_free(NULL);
}

static void test_series_bound(void **state)
{
    (void)state;
    kcw_metrics_t *m = kcw_metrics_new();
    assert_int_equal(kcw_metrics_declare(m, KCW_METRIC_GAUGE, "g", "g", NULL, 0), 0);
    char v[32];
    for (int i = 0; i < KCW_METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "%d", i);
        const char *l[] = {"i", v, NULL};
        assert_int_equal(kcw_metrics_set(m, "g", l, i), 0);
    }
    const char *over[] = {"i", "one too many", NULL};
    assert_int_equal(kcw_metrics_set(m, "g", over, 1), -ENOMEM);
    size_t len;
    char *text = kcw_metrics_render(m, &len);
    assert_non_null(strstr(text, "kcwatch_metrics_series_dropped_total 1\n"));
    free(text);
    kcw_metrics_free(m);
}

static void test_self_families(void **state)
{
    (void)state;
    kcw_metrics_t *m = kcw_metrics_new();
    assert_int_equal(kcw_metrics_declare_self(m, "1.2.3"), 0);
    assert_int_equal(kcw_metrics_declare_self(m, "1.2.3"), 0); /* idempotent */
    const char *c[] = {"cluster", "c1", "result", "sent", NULL};
    assert_int_equal(kcw_metrics_add(m, "kcwatch_restarts_total", c, 1), 0);
    assert_int_equal(kcw_metrics_observe(m, "kcwatch_connect_poll_duration_seconds", c, 0.2), 0);
    size_t len;
    char *text = kcw_metrics_render(m, &len);
    assert_non_null(strstr(text, "kcwatch_build_info{version=\"1.2.3\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE kcwatch_restarts_total counter\n"));
    assert_non_null(strstr(text, "# TYPE kcwatch_notification_queue_length gauge\n"));
    assert_non_null(strstr(text, "kcwatch_connect_poll_duration_seconds_bucket{cluster=\"c1\","
                                 "result=\"sent\",le=\"0.25\"} 1\n"));
    free(text);
    kcw_metrics_free(m);
}

static void test_process_read(void **state)
{
    (void)state;
    kcw_process_stats_t ps;
    assert_int_equal(kcw_metrics_process_read(&ps), 0);
    assert_true(ps.cpu_seconds >= 0);
    assert_true(ps.resident_bytes > 0);
    assert_true(ps.virtual_bytes >= ps.resident_bytes);
    assert_true(ps.open_fds >= 3); /* stdin, stdout, stderr at least */
    assert_true(ps.max_fds >= ps.open_fds);
    assert_true(ps.start_time_seconds > 1.5e9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_text),
        cmocka_unit_test(test_series_bound),
        cmocka_unit_test(test_self_families),
        cmocka_unit_test(test_process_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
