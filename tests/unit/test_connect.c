/* test_connect.c: the Connect status model's pure parsers (no I/O).
 * Bodies follow connect-rest.md §3; the client on the loop is exercised
 * against an in-process fake in test_http_client.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/connect.h"

#define S(lit) lit, sizeof(lit) - 1

static const char status_failed[] =
    "{\"name\": \"orders-sink\","
    " \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"connect-1:8083\"},"
    " \"tasks\": ["
    "  {\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"connect-1:8083\"},"
    "  {\"id\": 1, \"state\": \"FAILED\", \"worker_id\": \"connect-3:8083\","
    "   \"trace\": \"org.apache.kafka.connect.errors.ConnectException: sink write failed\\n\\tat "
    "com.acme.OrdersSinkTask.put(OrdersSinkTask.java:88)\"}"
    " ],"
    " \"type\": \"sink\"}";

static void test_status_running_and_failed(void **state)
{
    (void)state;
    kcw_connector_status_t c;
    char err[256] = "";
    assert_int_equal(kcw_connect_parse_status(S(status_failed), &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "orders-sink");
    assert_int_equal(c.type, KCW_CTYPE_SINK);
    assert_int_equal(c.state, KCW_STATE_RUNNING);
    assert_string_equal(c.worker_id, "connect-1:8083");
    assert_null(c.trace);
    assert_int_equal(c.n_tasks, 2);
    assert_int_equal(c.tasks[0].id, 0);
    assert_int_equal(c.tasks[0].state, KCW_STATE_RUNNING);
    assert_null(c.tasks[0].trace);
    assert_int_equal(c.tasks[1].id, 1);
    assert_int_equal(c.tasks[1].state, KCW_STATE_FAILED);
    assert_string_equal(c.tasks[1].worker_id, "connect-3:8083");
    assert_non_null(c.tasks[1].trace);
    assert_non_null(strstr(c.tasks[1].trace, "sink write failed\n\tat com.acme"));
    assert_false(c.has_info);
    assert_int_equal(c.n_task_configs, -1);
    assert_int_equal(c.tasks_max, -1);
    assert_int_equal(c.missing_polls, 0);
    kcw_connector_status_clear(&c);
    assert_null(c.name);
}

/* A 202 restart body: tasks unsorted, RESTARTING with the old trace (§5.3). */
static void test_status_unsorted_tasks(void **state)
{
    (void)state;
    static const char body[] =
        "{\"name\": \"orders-sink\","
        " \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"connect-1:8083\"},"
        " \"tasks\": [{\"id\": 7, \"state\": \"RESTARTING\", \"worker_id\": \"w3\","
        "              \"trace\": \"boom\"},"
        "             {\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
        "             {\"id\": 2, \"state\": \"UNASSIGNED\", \"worker_id\": null}],"
        " \"type\": \"source\"}";
    kcw_connector_status_t c;
    char err[256];
    assert_int_equal(kcw_connect_parse_status(S(body), &c, err, sizeof(err)), 0);
    assert_int_equal(c.type, KCW_CTYPE_SOURCE);
    assert_int_equal(c.n_tasks, 3);
    assert_int_equal(c.tasks[0].id, 0);
    assert_int_equal(c.tasks[1].id, 2);
    assert_null(c.tasks[1].worker_id);
    assert_int_equal(c.tasks[1].state, KCW_STATE_UNASSIGNED);
    assert_int_equal(c.tasks[2].id, 7);
    assert_int_equal(c.tasks[2].state, KCW_STATE_RESTARTING);
    assert_string_equal(c.tasks[2].trace, "boom");
    kcw_connector_status_clear(&c);
}

static void test_status_missing_type_and_unknown_state(void **state)
{
    (void)state;
    static const char body[] = "{\"name\": \"old\", \"connector\": {\"state\": \"DESTROYED\"},"
                               " \"tasks\": []}";
    kcw_connector_status_t c;
    char err[256];
    assert_int_equal(kcw_connect_parse_status(S(body), &c, err, sizeof(err)), 0);
    assert_int_equal(c.type, KCW_CTYPE_UNKNOWN);
    assert_int_equal(c.state, KCW_STATE_UNKNOWN);
    assert_null(c.worker_id);
    assert_int_equal(c.n_tasks, 0);
    kcw_connector_status_clear(&c);

    /* STOPPED connector without a task list at all (§4). */
    static const char stopped[] = "{\"name\": \"s\", \"type\": \"unknown\","
                                  " \"connector\": {\"state\": \"STOPPED\", \"worker_id\": \"w\"}}";
    assert_int_equal(kcw_connect_parse_status(S(stopped), &c, err, sizeof(err)), 0);
    assert_int_equal(c.state, KCW_STATE_STOPPED);
    assert_int_equal(c.type, KCW_CTYPE_UNKNOWN);
    assert_int_equal(c.n_tasks, 0);
    kcw_connector_status_clear(&c);
}

static void expect_einval(const char *body, const char *field)
{
    kcw_connector_status_t c;
    char err[256] = "";
    int rc = kcw_connect_parse_status(body, strlen(body), &c, err, sizeof(err));
    if (rc != -EINVAL)
        fail_msg("expected -EINVAL for %s, got %d", body, rc);
    if (!strstr(err, field))
        fail_msg("error \"%s\" does not name \"%s\"", err, field);
    /* Nothing half-built leaks out. */
    assert_null(c.name);
    assert_null(c.tasks);
    assert_int_equal(c.n_tasks, 0);
}

static void test_status_bad_types(void **state)
{
    (void)state;
    expect_einval("{\"name\": 5, \"connector\": {\"state\": \"RUNNING\"}}", "\"name\"");
    expect_einval("{\"connector\": {\"state\": \"RUNNING\"}}", "\"name\"");
    expect_einval("{\"name\": \"a\"}", "\"connector\"");
    expect_einval("{\"name\": \"a\", \"connector\": \"RUNNING\"}", "\"connector\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": 1}}", "\"connector.state\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\", \"worker_id\": 3}}",
                  "\"connector.worker_id\"");
    expect_einval("{\"name\": \"a\", \"type\": 1, \"connector\": {\"state\": \"RUNNING\"}}",
                  "\"type\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"}, \"tasks\": {}}",
                  "\"tasks\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"},"
                  " \"tasks\": [{\"id\": 0, \"state\": \"RUNNING\"}, {\"id\": \"1\","
                  " \"state\": \"RUNNING\"}]}",
                  "\"tasks[1].id\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"},"
                  " \"tasks\": [{\"id\": -1, \"state\": \"RUNNING\"}]}",
                  "\"tasks[0].id\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"},"
                  " \"tasks\": [{\"id\": 0}]}",
                  "\"tasks[0].state\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"},"
                  " \"tasks\": [{\"id\": 0, \"state\": \"FAILED\", \"trace\": []}]}",
                  "\"tasks[0].trace\"");
    expect_einval("{\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"}, \"tasks\": [3]}",
                  "\"tasks[0]\"");
}

static void test_status_truncated_and_non_object(void **state)
{
    (void)state;
    kcw_connector_status_t c;
    char err[256] = "";
    /* Cut in the middle of the trace. */
    assert_int_equal(kcw_connect_parse_status(status_failed, 200, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "invalid JSON"));
    assert_null(c.name);
    assert_int_equal(kcw_connect_parse_status(S(""), &c, err, sizeof(err)), -EINVAL);
    assert_int_equal(kcw_connect_parse_status(S("[1,2]"), &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "object"));
    assert_int_equal(kcw_connect_parse_status(S("\"RUNNING\""), &c, err, sizeof(err)), -EINVAL);
    assert_int_equal(kcw_connect_parse_status(S("null"), &c, err, sizeof(err)), -EINVAL);
    /* Plain-text 401 of the basic-auth extension (§8). */
    assert_int_equal(
        kcw_connect_parse_status(S("User cannot access the resource."), &c, err, sizeof(err)),
        -EINVAL);
}

static const char expand_body[] =
    "{\"users-source\": {"
    "   \"status\": {\"name\": \"users-source\","
    "     \"connector\": {\"state\": \"PAUSED\", \"worker_id\": \"w2\"},"
    "     \"tasks\": [{\"id\": 0, \"state\": \"PAUSED\", \"worker_id\": \"w2\"}],"
    "     \"type\": \"source\"},"
    "   \"info\": {\"name\": \"users-source\","
    "     \"config\": {\"connector.class\": \"X\", \"tasks.max\": \"1\"},"
    "     \"tasks\": [{\"connector\": \"users-source\", \"task\": 0}], \"type\": \"source\"}},"
    " \"just-created\": {"
    "   \"info\": {\"name\": \"just-created\", \"config\": {\"tasks.max\": \"3\"}, \"tasks\": []}},"
    " \"orders-sink\": {"
    "   \"status\": {\"name\": \"orders-sink\","
    "     \"connector\": {\"state\": \"RUNNING\", \"worker_id\": \"w1\"},"
    "     \"tasks\": [{\"id\": 1, \"state\": \"FAILED\", \"worker_id\": \"w3\", \"trace\": \"t\"},"
    "                {\"id\": 0, \"state\": \"RUNNING\", \"worker_id\": \"w1\"}],"
    "     \"type\": \"sink\"},"
    "   \"info\": {\"name\": \"orders-sink\","
    "     \"config\": {\"tasks.max\": \"4\", \"topics\": \"orders\"},"
    "     \"tasks\": [{\"connector\": \"orders-sink\", \"task\": 0},"
    "               {\"connector\": \"orders-sink\", \"task\": 1}], \"type\": \"sink\"}},"
    " \"status-only\": {"
    "   \"status\": {\"name\": \"status-only\", \"connector\": {\"state\": \"UNASSIGNED\"},"
    "     \"tasks\": [], \"type\": \"sink\"}}}";

static void test_expand_status_and_info(void **state)
{
    (void)state;
    kcw_cluster_status_t s = {0};
    char **names = (char **)1;
    size_t n_names = 99;
    char err[256] = "";
    assert_int_equal(
        kcw_connect_parse_expand(S(expand_body), &s, &names, &n_names, err, sizeof(err)), 0);
    assert_null(names);
    assert_int_equal(n_names, 0);
    /* just-created has no status record: left out, as Connect does (§3.5). */
    assert_int_equal(s.n_connectors, 3);
    assert_string_equal(s.connectors[0].name, "orders-sink");
    assert_string_equal(s.connectors[1].name, "status-only");
    assert_string_equal(s.connectors[2].name, "users-source");
    assert_null(kcw_cluster_status_find(&s, "just-created"));

    const kcw_connector_status_t *o = kcw_cluster_status_find(&s, "orders-sink");
    assert_ptr_equal(o, &s.connectors[0]);
    assert_true(o->has_info);
    assert_int_equal(o->n_task_configs, 2);
    assert_int_equal(o->tasks_max, 4);
    assert_int_equal(o->n_tasks, 2);
    assert_int_equal(o->tasks[0].id, 0);
    assert_int_equal(o->tasks[1].state, KCW_STATE_FAILED);
    assert_string_equal(o->tasks[1].trace, "t");

    const kcw_connector_status_t *so = kcw_cluster_status_find(&s, "status-only");
    assert_false(so->has_info);
    assert_int_equal(so->n_task_configs, -1);
    assert_int_equal(so->tasks_max, -1);
    assert_int_equal(so->state, KCW_STATE_UNASSIGNED);

    const kcw_connector_status_t *u = kcw_cluster_status_find(&s, "users-source");
    assert_int_equal(u->state, KCW_STATE_PAUSED);
    assert_int_equal(u->type, KCW_CTYPE_SOURCE);
    assert_int_equal(u->n_task_configs, 1);
    assert_int_equal(u->tasks_max, 1);

    /* Deep copy is independent of the source. */
    kcw_connector_status_t copy;
    assert_int_equal(kcw_connector_status_copy(&copy, o), 0);
    assert_ptr_not_equal(copy.name, o->name);
    assert_string_equal(copy.tasks[1].trace, "t");
    assert_int_equal(copy.tasks_max, 4);

    /* A second parse replaces the list; a failed one leaves it alone. */
    assert_int_equal(kcw_connect_parse_expand(S("{}"), &s, &names, &n_names, err, sizeof(err)), 0);
    assert_int_equal(s.n_connectors, 0);
    assert_int_equal(
        kcw_connect_parse_expand(S(expand_body), &s, &names, &n_names, err, sizeof(err)), 0);
    assert_int_equal(
        kcw_connect_parse_expand(S("{\"x\": 1}"), &s, &names, &n_names, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "\"x\""));
    assert_int_equal(s.n_connectors, 3);

    kcw_connector_status_clear(&copy);
    kcw_cluster_status_clear(&s);
    assert_null(s.connectors);
}

static void test_expand_array_fallback(void **state)
{
    (void)state;
    kcw_cluster_status_t s = {0};
    char **names = NULL;
    size_t n = 0;
    char err[256];
    assert_int_equal(kcw_connect_parse_expand(S("[\"users-source\", \"orders-sink\"]"), &s, &names,
                                              &n, err, sizeof(err)),
                     1);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "orders-sink");
    assert_string_equal(names[1], "users-source");
    assert_int_equal(s.n_connectors, 0);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);

    assert_int_equal(kcw_connect_parse_expand(S("[]"), &s, &names, &n, err, sizeof(err)), 1);
    assert_int_equal(n, 0);
    free(names);

    assert_int_equal(kcw_connect_parse_expand(S("[\"a\", 2]"), &s, &names, &n, err, sizeof(err)),
                     -EINVAL);
    assert_null(names);
}

static void test_expand_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "42",
        "\"orders-sink\"",
        "null",
        "{\"a\": {\"status\": {\"name\": \"a\"",                      /* truncated */
        "{\"a\": {\"status\": {\"name\": \"a\", \"connector\": 1}}}", /* bad type */
        "{\"a\": {\"status\": {\"name\": \"a\", \"connector\": {\"state\": \"RUNNING\"}},"
        " \"info\": {\"tasks\": 3}}}",
        "<html><body>HTTP ERROR 404 Not Found</body></html>", /* Jetty before resources (§7.5) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kcw_cluster_status_t s = {0};
        char **names = NULL;
        size_t n = 0;
        char err[256] = "";
        int rc = kcw_connect_parse_expand(bad[i], strlen(bad[i]), &s, &names, &n, err, sizeof(err));
        if (rc != -EINVAL)
            fail_msg("body %zu: expected -EINVAL, got %d", i, rc);
        assert_true(err[0] != '\0');
        assert_null(names);
        assert_int_equal(s.n_connectors, 0);
    }
}

static void test_version_parse(void **state)
{
    (void)state;
    int ma = -1, mi = -1;
    assert_int_equal(kcw_connect_version_parse("3.8.0", &ma, &mi), 0);
    assert_int_equal(ma, 3);
    assert_int_equal(mi, 8);
    assert_int_equal(kcw_connect_version_parse("2.8.1-ccs", &ma, &mi), 0);
    assert_int_equal(ma, 2);
    assert_int_equal(mi, 8);
    assert_int_equal(kcw_connect_version_parse("4.0.0-SNAPSHOT", &ma, &mi), 0);
    assert_int_equal(ma, 4);
    assert_int_equal(mi, 0);
    assert_int_equal(kcw_connect_version_parse("3.10", &ma, &mi), 0);
    assert_int_equal(ma, 3);
    assert_int_equal(mi, 10);
    /* Confluent Platform reports its own numbering. */
    assert_int_equal(kcw_connect_version_parse("7.4.0-ccs", &ma, &mi), 0);
    assert_int_equal(ma, 3);
    assert_int_equal(mi, 4);
    assert_int_equal(kcw_connect_version_parse("6.2.1-ce", &ma, &mi), 0);
    assert_int_equal(ma, 2);
    assert_int_equal(mi, 8);

    ma = mi = 77;
    assert_int_equal(kcw_connect_version_parse("", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse("3", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse("3.", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse("v3.8.0", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse("3.x", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse("3.8a", &ma, &mi), -EINVAL);
    assert_int_equal(kcw_connect_version_parse(NULL, &ma, &mi), -EINVAL);
    assert_int_equal(ma, 77);
    assert_int_equal(mi, 77);
}

static void test_state_names(void **state)
{
    (void)state;
    for (int i = KCW_STATE_RUNNING; i < KCW_STATE__COUNT; i++)
        assert_int_equal(kcw_state_parse(kcw_state_name((kcw_state_t)i)), i);
    assert_int_equal(kcw_state_parse("running"), KCW_STATE_UNKNOWN);
    assert_int_equal(kcw_state_parse(NULL), KCW_STATE_UNKNOWN);
    assert_string_equal(kcw_state_name(KCW_STATE_FAILED), "FAILED");
    assert_string_equal(kcw_state_name((kcw_state_t)99), "UNKNOWN");
    assert_string_equal(kcw_connector_type_name(KCW_CTYPE_SOURCE), "source");
    assert_string_equal(kcw_connector_type_name(KCW_CTYPE_SINK), "sink");
    assert_string_equal(kcw_connector_type_name(KCW_CTYPE_UNKNOWN), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_running_and_failed),
        cmocka_unit_test(test_status_unsorted_tasks),
        cmocka_unit_test(test_status_missing_type_and_unknown_state),
        cmocka_unit_test(test_status_bad_types),
        cmocka_unit_test(test_status_truncated_and_non_object),
        cmocka_unit_test(test_expand_status_and_info),
        cmocka_unit_test(test_expand_array_fallback),
        cmocka_unit_test(test_expand_garbage),
        cmocka_unit_test(test_version_parse),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
