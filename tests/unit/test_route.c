/* test_route.c: the routing tree: Alertmanager's matching order, `continue`,
 * inheritance of receiver, group_by and the three timings, and group labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/route.h"

static void route_init(kcw_route_t *r, const char *receiver, const char *matchers)
{
    memset(r, 0, sizeof(*r));
    r->receiver = receiver ? strdup(receiver) : NULL;
    r->group_wait_ms = r->group_interval_ms = r->repeat_interval_ms = KCW_ROUTE_UNSET;
    char err[256];
    if (matchers && kcw_matchers_parse(&r->matchers, matchers, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static void route_children(kcw_route_t *r, size_t n)
{
    r->routes = calloc(n, sizeof(*r->routes));
    r->n_routes = n;
}

static void group_by(kcw_route_t *r, const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    r->group_by = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        r->group_by[i] = strdup(names[i]);
    r->n_group_by = n;
    r->group_by_set = true;
}

static kcw_labels_t labels_of(const char *const *kv)
{
    kcw_labels_t l = {0};
    for (; kv[0]; kv += 2)
        assert_int_equal(kcw_labels_set(&l, kv[0], kv[1]), 0);
    return l;
}

/* The example tree:
 *   route: {receiver: am, group_by: [alertname, cluster, connector],
 *           routes: [{matchers: ['severity="critical"'], receiver: pd, continue: true},
 *                    {receiver: slack}]} */
static void example_tree(kcw_route_t *root)
{
    route_init(root, "am", NULL);
    group_by(root, (const char *[]){"alertname", "cluster", "connector", NULL});
    route_children(root, 2);
    route_init(&root->routes[0], "pd", "severity=\"critical\"");
    root->routes[0].cont = true;
    route_init(&root->routes[1], "slack", NULL);
    char err[256];
    assert_int_equal(kcw_route_finish(root, err, sizeof(err)), 0);
}

static void test_example_tree(void **state)
{
    (void)state;
    kcw_route_t root;
    example_tree(&root);
    const kcw_route_t *hit[8];

    kcw_labels_t crit = labels_of((const char *[]){"alertname", "ConnectTaskFailed", "severity",
                                                   "critical", "cluster", "c1", NULL});
    /* pd matches and continues, so slack takes it too; am (the root) does
     * not, since a child took it. */
    assert_int_equal(kcw_route_match(&root, &crit, hit, 8), 2);
    assert_string_equal(hit[0]->receiver, "pd");
    assert_string_equal(hit[1]->receiver, "slack");
    assert_string_equal(hit[0]->id, "0/0");
    assert_string_equal(hit[1]->id, "0/1");
    assert_string_equal(root.key, "{}");
    assert_string_equal(hit[0]->key, "{}/{severity=\"critical\"}");
    assert_string_equal(hit[1]->key, "{}/{}");

    kcw_labels_t warn = labels_of((const char *[]){"alertname", "ConnectConnectorPaused",
                                                   "severity", "warning", NULL});
    assert_int_equal(kcw_route_match(&root, &warn, hit, 8), 1);
    assert_string_equal(hit[0]->receiver, "slack");

    /* Children inherited the root's grouping and timings. */
    assert_int_equal(hit[0]->n_group_by, 3);
    assert_string_equal(hit[0]->group_by[2], "connector");
    assert_int_equal(hit[0]->group_wait_ms, KCW_ROUTE_GROUP_WAIT_MS);
    assert_int_equal(hit[0]->group_interval_ms, KCW_ROUTE_GROUP_INTERVAL_MS);
    assert_int_equal(hit[0]->repeat_interval_ms, KCW_ROUTE_REPEAT_INTERVAL_MS);

    kcw_labels_t group = {0};
    assert_int_equal(kcw_route_group_labels(hit[0], &crit, &group), 0);
    assert_int_equal(group.n, 2); /* connector absent: left out */
    assert_string_equal(kcw_labels_get(&group, "cluster"), "c1");
    kcw_labels_clear(&group);

    kcw_labels_clear(&crit);
    kcw_labels_clear(&warn);
    kcw_route_clear(&root);
}

static void test_continue_and_fallback(void **state)
{
    (void)state;
    /* root(am) -> [team=db (db, no continue) -> [sev=critical (db-pager)],
     *              team=~"db|web" (web)] */
    kcw_route_t root;
    route_init(&root, "am", NULL);
    root.group_wait_ms = 1000;
    route_children(&root, 2);
    kcw_route_t *db = &root.routes[0];
    route_init(db, "db", "team=\"db\"");
    db->repeat_interval_ms = 60000;
    group_by(db, (const char *[]){"...", NULL});
    route_children(db, 1);
    route_init(&db->routes[0], "db-pager", "severity=\"critical\"");
    db->routes[0].group_wait_ms = 0;
    route_init(&root.routes[1], "web", "team=~\"db|web\"");
    char err[256];
    assert_int_equal(kcw_route_finish(&root, err, sizeof(err)), 0);

    const kcw_route_t *hit[4];
    kcw_labels_t a = labels_of((const char *[]){"team", "db", "severity", "critical", NULL});
    /* db takes it (through its child) and has no continue: web never sees it. */
    assert_int_equal(kcw_route_match(&root, &a, hit, 4), 1);
    assert_string_equal(hit[0]->receiver, "db-pager");
    /* Inherited from db (group_by ..., repeat) and from the root (wait) unless set. */
    assert_true(hit[0]->group_by_all);
    assert_int_equal(hit[0]->repeat_interval_ms, 60000);
    assert_int_equal(hit[0]->group_wait_ms, 0);
    assert_int_equal(db->group_wait_ms, 1000);
    assert_int_equal(db->group_interval_ms, KCW_ROUTE_GROUP_INTERVAL_MS);

    kcw_labels_t group = {0};
    assert_int_equal(kcw_route_group_labels(hit[0], &a, &group), 0);
    assert_true(kcw_labels_equal(&group, &a)); /* ... groups by every label */
    kcw_labels_clear(&group);

    kcw_labels_t b = labels_of((const char *[]){"team", "db", "severity", "info", NULL});
    /* No child of db matches: db itself takes it. */
    assert_int_equal(kcw_route_match(&root, &b, hit, 4), 1);
    assert_string_equal(hit[0]->receiver, "db");

    kcw_labels_t c = labels_of((const char *[]){"team", "web", NULL});
    assert_int_equal(kcw_route_match(&root, &c, hit, 4), 1);
    assert_string_equal(hit[0]->receiver, "web");

    kcw_labels_t d = labels_of((const char *[]){"team", "ops", NULL});
    assert_int_equal(kcw_route_match(&root, &d, hit, 4), 1);
    assert_string_equal(hit[0]->receiver, "am");
    assert_string_equal(hit[0]->id, "0");

    /* With continue on db, web sees team=db alerts too. */
    db->cont = true;
    assert_int_equal(kcw_route_match(&root, &b, hit, 4), 2);
    assert_string_equal(hit[0]->receiver, "db");
    assert_string_equal(hit[1]->receiver, "web");
    /* max bounds what is stored, not what is counted. */
    assert_int_equal(kcw_route_match(&root, &b, hit, 1), 2);
    assert_string_equal(hit[0]->receiver, "db");

    kcw_labels_clear(&a);
    kcw_labels_clear(&b);
    kcw_labels_clear(&c);
    kcw_labels_clear(&d);
    kcw_route_clear(&root);
}

static void test_finish_errors(void **state)
{
    (void)state;
    char err[256];
    kcw_route_t root;
    route_init(&root, NULL, NULL);
    assert_int_equal(kcw_route_finish(&root, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "root route needs a receiver"));
    kcw_route_clear(&root);

    /* Too deep: a chain of KCW_ROUTE_DEPTH_MAX + 2 routes. */
    route_init(&root, "r", NULL);
    kcw_route_t *at = &root;
    for (int i = 0; i <= KCW_ROUTE_DEPTH_MAX; i++) {
        route_children(at, 1);
        route_init(&at->routes[0], NULL, NULL);
        at = &at->routes[0];
    }
    assert_int_equal(kcw_route_finish(&root, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "deeper than"));
    kcw_route_clear(&root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_tree),
        cmocka_unit_test(test_continue_and_fallback),
        cmocka_unit_test(test_finish_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
