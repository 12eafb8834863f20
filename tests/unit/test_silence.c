/* test_silence.c: silences (API and config, weekly windows) and inhibition
 * rules, on a clock the test owns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/inhibit.h"
#include "kcwatch/rfc3339.h"
#include "kcwatch/silence.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)
/* Monday 2026-11-30 00:00:00 UTC */
#define MONDAY 1795996800000LL

static kcw_labels_t labels_of(const char *const *kv)
{
    kcw_labels_t l = {0};
    for (; kv[0]; kv += 2)
        assert_int_equal(kcw_labels_set(&l, kv[0], kv[1]), 0);
    return l;
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(kcw_rfc3339_parse("2026-11-30T00:00:00Z", &ms), 0);
    assert_int_equal(ms, MONDAY);
    assert_int_equal(kcw_rfc3339_parse("2026-11-30T02:00:00.25+02:00", &ms), 0);
    assert_int_equal(ms, MONDAY + 250);
    char buf[KCW_RFC3339_LEN];
    kcw_rfc3339_format(MONDAY + 1234, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-30T00:00:01.234Z");
    assert_int_equal(kcw_rfc3339_parse("2026-02-31T00:00:00Z", &ms), -EINVAL);
    assert_int_equal(kcw_rfc3339_parse("2026-11-30 00:00:00Z", &ms), -EINVAL);
    assert_int_equal(kcw_rfc3339_parse("2026-11-30T00:00:00", &ms), -EINVAL);
}

static json_t *postable(const char *starts, const char *ends, const char *matchers_json)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"matchers\": %s, \"startsAt\": \"%s\", \"endsAt\": \"%s\", "
             "\"createdBy\": \"ops\", \"comment\": \"deploy\"}",
             matchers_json, starts, ends);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("%s", e.text);
    return j;
}

static void count_dropped(const kcw_silence_t *s, void *arg)
{
    assert_true(s->id[0] != 0);
    (*(size_t *)arg)++;
}

static void test_api_silence_lifecycle(void **state)
{
    (void)state;
    kcw_silences_t *set = kcw_silences_new();
    json_t *j = postable("2026-11-30T01:00:00Z", "2026-11-30T03:00:00Z",
                         "[{\"name\":\"cluster\",\"value\":\"c1\",\"isRegex\":false},"
                         "{\"name\":\"connector\",\"value\":\"ord.*\",\"isRegex\":true,"
                         "\"isEqual\":true}]");
    kcw_silence_t s;
    char err[256];
    assert_int_equal(kcw_silence_from_json(j, MONDAY, &s, err, sizeof(err)), 0);
    json_decref(j);
    char id[KCW_SILENCE_ID_LEN + 1];
    kcw_silence_id_make(0x0123456789abcdefULL, 0xfedcba9876543210ULL, id);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4');
    char got[KCW_SILENCE_ID_LEN + 1];
    assert_int_equal(kcw_silences_put(set, &s, id, MONDAY, got), 0);
    assert_string_equal(got, id);

    kcw_labels_t orders = labels_of((const char *[]){"cluster", "c1", "connector", "orders", NULL});
    kcw_labels_t other = labels_of((const char *[]){"cluster", "c2", "connector", "orders", NULL});
    /* Pending before startsAt, active inside, expired after. */
    assert_null(kcw_silences_muting(set, &orders, MONDAY + 30 * MIN));
    assert_non_null(kcw_silences_muting(set, &orders, MONDAY + 2 * HOUR));
    assert_null(kcw_silences_muting(set, &other, MONDAY + 2 * HOUR));
    assert_null(kcw_silences_muting(set, &orders, MONDAY + 3 * HOUR));

    const kcw_silence_t *found = kcw_silences_find(set, id);
    json_t *out = kcw_silence_to_json(found, MONDAY + 2 * HOUR);
    assert_string_equal(json_string_value(json_object_get(out, "id")), id);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "status"), "state")), "active");
    assert_string_equal(json_string_value(json_object_get(out, "startsAt")),
                        "2026-11-30T01:00:00.000Z");
    json_t *m1 = json_array_get(json_object_get(out, "matchers"), 1);
    assert_string_equal(json_string_value(json_object_get(m1, "value")), "ord.*");
    assert_true(json_is_true(json_object_get(m1, "isRegex")));
    assert_true(json_is_true(json_object_get(m1, "isEqual")));
    assert_string_equal(json_string_value(json_object_get(out, "createdBy")), "ops");
    json_decref(out);

    /* The stored form reads back as it was, expired or not. */
    json_t *saved = kcw_silence_to_json(found, MONDAY);
    kcw_silence_t back;
    assert_int_equal(kcw_silence_restore_json(saved, &back, err, sizeof(err)), 0);
    assert_string_equal(back.id, id);
    assert_int_equal(back.starts_at_ms, found->starts_at_ms);
    assert_int_equal(back.ends_at_ms, found->ends_at_ms);
    assert_int_equal(back.updated_at_ms, found->updated_at_ms);
    assert_int_equal(back.matchers.n, 2);
    assert_int_equal(back.matchers.items[1].op, KCW_MATCH_RE);
    assert_string_equal(back.comment, "deploy");
    kcw_silence_clear(&back);
    json_object_del(saved, "id");
    assert_int_equal(kcw_silence_restore_json(saved, &back, err, sizeof(err)), -EINVAL);
    json_decref(saved);

    /* Expire (DELETE): ends now; a second expiry is refused. */
    assert_int_equal(kcw_silences_expire(set, id, MONDAY + 2 * HOUR), 0);
    assert_null(kcw_silences_muting(set, &orders, MONDAY + 2 * HOUR));
    assert_int_equal(kcw_silences_expire(set, id, MONDAY + 2 * HOUR), -EALREADY);
    assert_int_equal(kcw_silences_expire(set, "nope", MONDAY), -ENOENT);
    /* Kept for the retention, then collected. */
    assert_int_equal(kcw_silences_gc(set, MONDAY + 3 * HOUR, NULL, NULL), 0);
    assert_int_equal(kcw_silences_count(set), 1);
    /* A saved copy comes back under its id, once. */
    kcw_silence_t copy;
    assert_int_equal(kcw_silence_copy(&copy, kcw_silences_find(set, id)), 0);
    kcw_silences_t *restored = kcw_silences_new();
    assert_int_equal(kcw_silences_restore(restored, &copy), 0);
    assert_int_equal(kcw_silences_restore(restored, &copy), -EEXIST);
    assert_false(kcw_silences_at(restored, 0)->from_config);
    assert_int_equal(kcw_silences_expire(restored, id, MONDAY + 3 * HOUR), -EALREADY);
    kcw_silence_clear(&copy);
    kcw_silences_free(restored);
    size_t seen = 0;
    assert_int_equal(kcw_silences_gc(set, MONDAY + 2 * HOUR + KCW_SILENCE_RETENTION_MS + 1,
                                     count_dropped, &seen),
                     1);
    assert_int_equal(seen, 1);
    assert_int_equal(kcw_silences_count(set), 0);

    kcw_labels_clear(&orders);
    kcw_labels_clear(&other);
    kcw_silences_free(set);
}

static void expect_invalid(const char *starts, const char *ends, const char *matchers,
                           const char *needle)
{
    json_t *j = postable(starts, ends, matchers);
    kcw_silence_t s;
    char err[256] = "";
    assert_int_equal(kcw_silence_from_json(j, MONDAY, &s, err, sizeof(err)), -EINVAL);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    json_decref(j);
}

static void test_api_validation(void **state)
{
    (void)state;
    const char *ok = "[{\"name\":\"a\",\"value\":\"b\",\"isRegex\":false}]";
    expect_invalid("2026-11-30T01:00:00Z", "2026-11-30T00:30:00Z", ok, "endsAt must be after");
    expect_invalid("2026-11-29T01:00:00Z", "2026-11-29T02:00:00Z", ok, "in the past");
    expect_invalid("yesterday", "2026-11-30T02:00:00Z", ok, "startsAt is not an RFC 3339 time");
    expect_invalid("2026-11-30T01:00:00Z", "2026-11-30T02:00:00Z", "[]", "non-empty");
    expect_invalid("2026-11-30T01:00:00Z", "2026-11-30T02:00:00Z",
                   "[{\"name\":\"a\",\"value\":\".*\",\"isRegex\":true}]", "empty label set");
    expect_invalid("2026-11-30T01:00:00Z", "2026-11-30T02:00:00Z",
                   "[{\"name\":\"a\",\"value\":\"(\",\"isRegex\":true}]", "matchers[0]");
    expect_invalid("2026-11-30T01:00:00Z", "2026-11-30T02:00:00Z",
                   "[{\"name\":\"a\",\"value\":1,\"isRegex\":false}]", "name and value");

    /* A start in the past becomes now; an update replaces in place. */
    kcw_silences_t *set = kcw_silences_new();
    json_t *j = postable("2026-11-29T01:00:00Z", "2026-11-30T02:00:00Z", ok);
    kcw_silence_t s;
    char err[256];
    assert_int_equal(kcw_silence_from_json(j, MONDAY, &s, err, sizeof(err)), 0);
    assert_int_equal(s.starts_at_ms, MONDAY);
    json_decref(j);
    char id[KCW_SILENCE_ID_LEN + 1];
    assert_int_equal(kcw_silences_put(set, &s, "11111111-1111-4111-8111-111111111111", MONDAY, id), 0);
    j = postable("2026-11-30T00:00:00Z", "2026-11-30T05:00:00Z", ok);
    json_object_set_new(j, "id", json_string(id));
    assert_int_equal(kcw_silence_from_json(j, MONDAY, &s, err, sizeof(err)), 0);
    assert_int_equal(kcw_silences_put(set, &s, "unused", MONDAY + MIN, NULL), 0);
    assert_int_equal(kcw_silences_count(set), 1);
    assert_int_equal(kcw_silences_find(set, id)->ends_at_ms, MONDAY + 5 * HOUR);
    json_object_set_new(j, "id", json_string("22222222-2222-4222-8222-222222222222"));
    assert_int_equal(kcw_silence_from_json(j, MONDAY, &s, err, sizeof(err)), 0);
    assert_int_equal(kcw_silences_put(set, &s, "unused", MONDAY, NULL), -ENOENT);
    kcw_silence_clear(&s);
    json_decref(j);
    kcw_silences_free(set);
}

static void test_weekly_windows(void **state)
{
    (void)state;
    unsigned days;
    assert_int_equal(kcw_weekdays_parse("saturday:sunday", &days), 0);
    assert_int_equal(days, (1u << 6) | 1u);
    assert_int_equal(kcw_weekdays_parse("mon:fri", &days), 0);
    assert_int_equal(days, 0x3eu);
    assert_int_equal(kcw_weekdays_parse("friday:monday", &days), 0);
    assert_int_equal(days, (1u << 5) | (1u << 6) | 1u | (1u << 1));
    assert_int_equal(kcw_weekdays_parse("funday", &days), -EINVAL);
    int m;
    assert_int_equal(kcw_time_of_day_parse("02:30", &m), 0);
    assert_int_equal(m, 150);
    assert_int_equal(kcw_time_of_day_parse("24:00", &m), 0);
    assert_int_equal(m, 1440);
    assert_int_equal(kcw_time_of_day_parse("24:01", &m), -EINVAL);
    assert_int_equal(kcw_time_of_day_parse("2:30", &m), -EINVAL);

    /* Config: mute cluster c1 on Tuesdays 02:00-04:00 and every night
     * 23:00-01:00 from Saturday (wrapping into Sunday). */
    kcw_silence_t cfg = {0};
    char err[256];
    assert_int_equal(kcw_matchers_parse(&cfg.matchers, "cluster=\"c1\"", err, sizeof(err)), 0);
    kcw_weekly_window_t w[2] = {{.weekdays = 1u << 2, .start_min = 120, .end_min = 240},
                                {.weekdays = 1u << 6, .start_min = 23 * 60, .end_min = 60}};
    cfg.windows = w;
    cfg.n_windows = 2;
    kcw_silences_t *set = kcw_silences_new();
    assert_int_equal(kcw_silences_set_config(set, &cfg, 1), 0);
    cfg.windows = NULL;
    cfg.n_windows = 0;
    kcw_silence_clear(&cfg);

    kcw_labels_t c1 = labels_of((const char *[]){"cluster", "c1", NULL});
    int64_t tuesday = MONDAY + 24 * HOUR;
    assert_null(kcw_silences_muting(set, &c1, tuesday + 1 * HOUR + 59 * MIN));
    assert_non_null(kcw_silences_muting(set, &c1, tuesday + 2 * HOUR));
    assert_non_null(kcw_silences_muting(set, &c1, tuesday + 3 * HOUR + 59 * MIN));
    assert_null(kcw_silences_muting(set, &c1, tuesday + 4 * HOUR));
    assert_null(kcw_silences_muting(set, &c1, MONDAY + 3 * HOUR)); /* Monday */
    int64_t saturday = MONDAY + 5 * 24 * HOUR;
    assert_null(kcw_silences_muting(set, &c1, saturday + 22 * HOUR + 59 * MIN));
    assert_non_null(kcw_silences_muting(set, &c1, saturday + 23 * HOUR + 30 * MIN));
    assert_non_null(kcw_silences_muting(set, &c1, saturday + 24 * HOUR + 30 * MIN)); /* Sun 00:30 */
    assert_null(kcw_silences_muting(set, &c1, saturday + 25 * HOUR));
    const kcw_silence_t *s = kcw_silences_at(set, 0);
    assert_true(s->from_config);
    assert_int_equal(kcw_silence_state(s, tuesday), KCW_SILENCE_PENDING);
    /* The API cannot expire what the config says. */
    assert_int_equal(kcw_silences_expire(set, s->id, tuesday), -EPERM);
    json_t *j = kcw_silence_to_json(s, tuesday + 2 * HOUR);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "config");
    json_t *w0 = json_array_get(json_object_get(j, "weekly"), 0);
    assert_string_equal(json_string_value(json_object_get(w0, "start_time")), "02:00");
    assert_string_equal(json_string_value(json_array_get(json_object_get(w0, "weekdays"), 0)),
                        "tuesday");
    json_decref(j);
    /* A reload replaces config silences. */
    assert_int_equal(kcw_silences_set_config(set, NULL, 0), 0);
    assert_int_equal(kcw_silences_count(set), 0);
    kcw_labels_clear(&c1);
    kcw_silences_free(set);
}

static kcw_alert_t alert(const char *const *kv, kcw_alert_state_t st)
{
    kcw_alert_t a;
    memset(&a, 0, sizeof(a));
    a.labels = labels_of(kv);
    a.fingerprint = kcw_labels_fingerprint(&a.labels);
    a.state = st;
    return a;
}

static void test_inhibition(void **state)
{
    (void)state;
    kcw_inhibit_rule_t rule = {0};
    char err[256];
    assert_int_equal(kcw_matchers_parse(&rule.source, "alertname=\"ConnectClusterUnreachable\"",
                                        err, sizeof(err)),
                     0);
    assert_int_equal(kcw_matchers_parse(&rule.target, "alertname=~\"ConnectTask.*\"", err,
                                        sizeof(err)),
                     0);
    rule.equal = calloc(1, sizeof(char *));
    rule.equal[0] = strdup("cluster");
    rule.n_equal = 1;
    kcw_inhibitor_t *inh = kcw_inhibitor_new(&rule, 1);

    kcw_alert_t down_c1 = alert((const char *[]){"alertname", "ConnectClusterUnreachable",
                                                 "cluster", "c1", NULL},
                                KCW_ALERT_FIRING);
    kcw_alert_t task_c1 = alert((const char *[]){"alertname", "ConnectTaskFailed", "cluster",
                                                 "c1", "connector", "orders", NULL},
                                KCW_ALERT_FIRING);
    kcw_alert_t task_c2 = alert((const char *[]){"alertname", "ConnectTaskFailed", "cluster",
                                                 "c2", "connector", "orders", NULL},
                                KCW_ALERT_FIRING);
    const kcw_alert_t *all[] = {&down_c1, &task_c1, &task_c2};
    assert_int_equal(kcw_inhibitor_update(inh, all, 3), 0);
    assert_true(kcw_inhibitor_mutes(inh, &task_c1.labels, task_c1.fingerprint));
    assert_false(kcw_inhibitor_mutes(inh, &task_c2.labels, task_c2.fingerprint));
    assert_false(kcw_inhibitor_mutes(inh, &down_c1.labels, down_c1.fingerprint));

    /* Once the source resolves, the target goes out again. */
    down_c1.state = KCW_ALERT_INACTIVE;
    down_c1.resolved_at_ms = MONDAY;
    assert_int_equal(kcw_inhibitor_update(inh, all, 3), 0);
    assert_false(kcw_inhibitor_mutes(inh, &task_c1.labels, task_c1.fingerprint));
    /* A pending source does not inhibit either. */
    down_c1.state = KCW_ALERT_PENDING;
    down_c1.resolved_at_ms = 0;
    assert_int_equal(kcw_inhibitor_update(inh, all, 3), 0);
    assert_false(kcw_inhibitor_mutes(inh, &task_c1.labels, task_c1.fingerprint));

    /* Two-sided rule (Alertmanager's example: critical inhibits warning of the
     * same alertname); a label both lack counts as equal. */
    kcw_inhibit_rule_t sev = {0};
    assert_int_equal(kcw_matchers_parse(&sev.source, "severity=\"critical\"", err, sizeof(err)), 0);
    assert_int_equal(kcw_matchers_parse(&sev.target, "severity=~\"warning|critical\"", err,
                                        sizeof(err)),
                     0);
    sev.equal = calloc(2, sizeof(char *));
    sev.equal[0] = strdup("alertname");
    sev.equal[1] = strdup("zone"); /* nobody has it */
    sev.n_equal = 2;
    kcw_inhibitor_set_rules(inh, &sev, 1);
    kcw_alert_t crit = alert((const char *[]){"alertname", "Lag", "severity", "critical", NULL},
                             KCW_ALERT_FIRING);
    kcw_alert_t crit2 = alert((const char *[]){"alertname", "Lag", "severity", "critical",
                                               "connector", "b", NULL},
                              KCW_ALERT_FIRING);
    kcw_alert_t warn = alert((const char *[]){"alertname", "Lag", "severity", "warning", NULL},
                             KCW_ALERT_FIRING);
    const kcw_alert_t *sevs[] = {&crit, &crit2, &warn};
    assert_int_equal(kcw_inhibitor_update(inh, sevs, 3), 0);
    assert_true(kcw_inhibitor_mutes(inh, &warn.labels, warn.fingerprint));
    /* Critical ones match both sides: they do not inhibit each other. */
    assert_false(kcw_inhibitor_mutes(inh, &crit.labels, crit.fingerprint));
    assert_false(kcw_inhibitor_mutes(inh, &crit2.labels, crit2.fingerprint));

    /* The index keeps what it needs: the alerts may go away after update. */
    kcw_alert_t gone = alert((const char *[]){"alertname", "Lag", "severity", "critical",
                                              "connector", "z", NULL},
                             KCW_ALERT_FIRING);
    const kcw_alert_t *transient[] = {&gone};
    assert_int_equal(kcw_inhibitor_update(inh, transient, 1), 0);
    kcw_labels_clear(&gone.labels);
    assert_true(kcw_inhibitor_mutes(inh, &warn.labels, warn.fingerprint));

    kcw_alert_t *owned[] = {&down_c1, &task_c1, &task_c2, &crit, &crit2, &warn};
    for (size_t i = 0; i < 6; i++)
        kcw_labels_clear(&owned[i]->labels);
    kcw_inhibitor_free(inh);
    kcw_inhibit_rule_t copy;
    assert_int_equal(kcw_inhibit_rule_copy(&copy, &sev), 0);
    assert_int_equal(copy.n_equal, 2);
    assert_string_equal(copy.equal[1], "zone");
    kcw_inhibit_rule_clear(&copy);
    kcw_inhibit_rule_clear(&sev);
    kcw_inhibit_rule_clear(&rule);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_api_silence_lifecycle),
        cmocka_unit_test(test_api_validation),
        cmocka_unit_test(test_weekly_windows),
        cmocka_unit_test(test_inhibition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
