/* test_labels.c: sorted label sets, copies, equality and fingerprints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/labels.h"

static void assert_sorted_unique(const kcw_labels_t *l)
{
    for (size_t i = 1; i < l->n; i++)
        assert_true(strcmp(l->items[i - 1].name, l->items[i].name) < 0);
}

static void test_set_get_sorted(void **state)
{
    (void)state;
    kcw_labels_t l = {0};
    const char *names[] = {"task", "alertname", "connector", "cluster", "zeta", "a", "state"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_int_equal(kcw_labels_set(&l, names[i], names[i]), 0);
    assert_int_equal(l.n, 7);
    assert_sorted_unique(&l);
    assert_string_equal(l.items[0].name, "a");
    assert_string_equal(l.items[6].name, "zeta");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(kcw_labels_get(&l, names[i]), names[i]);
    assert_null(kcw_labels_get(&l, "missing"));
    assert_null(kcw_labels_get(&l, ""));
    kcw_labels_clear(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.items);
    /* Cleared set is reusable; lookup on an empty set works. */
    assert_null(kcw_labels_get(&l, "a"));
    assert_int_equal(kcw_labels_set(&l, "x", "1"), 0);
    kcw_labels_clear(&l);
}

static void test_replace_and_empty_removes(void **state)
{
    (void)state;
    kcw_labels_t l = {0};
    assert_int_equal(kcw_labels_set(&l, "state", "RUNNING"), 0);
    assert_int_equal(kcw_labels_set(&l, "cluster", "prod"), 0);
    assert_int_equal(kcw_labels_set(&l, "state", "FAILED"), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(kcw_labels_get(&l, "state"), "FAILED");

    /* Prometheus: an empty value is the same as no label. */
    assert_int_equal(kcw_labels_set(&l, "cluster", ""), 0);
    assert_int_equal(l.n, 1);
    assert_null(kcw_labels_get(&l, "cluster"));
    assert_int_equal(kcw_labels_set(&l, "never_set", ""), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(kcw_labels_set(&l, "state", NULL), 0);
    assert_int_equal(l.n, 0);
    kcw_labels_clear(&l);
}

static void test_grows(void **state)
{
    (void)state;
    kcw_labels_t l = {0};
    char name[16];
    /* In reverse order so every insert lands at the front. */
    for (int i = 99; i >= 0; i--) {
        snprintf(name, sizeof(name), "l%03d", i);
        assert_int_equal(kcw_labels_set(&l, name, name), 0);
    }
    assert_int_equal(l.n, 100);
    assert_sorted_unique(&l);
    assert_string_equal(kcw_labels_get(&l, "l042"), "l042");
    /* Remove from the middle keeps order. */
    assert_int_equal(kcw_labels_set(&l, "l050", ""), 0);
    assert_int_equal(l.n, 99);
    assert_sorted_unique(&l);
    assert_null(kcw_labels_get(&l, "l050"));
    assert_string_equal(kcw_labels_get(&l, "l051"), "l051");
    kcw_labels_clear(&l);
}

static void test_copy_equal(void **state)
{
    (void)state;
    kcw_labels_t a = {0}, b = {0}, empty = {0}, empty_copy = {0};
    kcw_labels_set(&a, "connector", "orders-sink");
    kcw_labels_set(&a, "task", "0");
    assert_int_equal(kcw_labels_copy(&b, &a), 0);
    assert_true(kcw_labels_equal(&a, &b));
    /* Deep copy: changing one leaves the other alone. */
    assert_ptr_not_equal(a.items[0].value, b.items[0].value);
    kcw_labels_set(&b, "task", "1");
    assert_false(kcw_labels_equal(&a, &b));
    assert_string_equal(kcw_labels_get(&a, "task"), "0");
    kcw_labels_set(&b, "task", "0");
    assert_true(kcw_labels_equal(&a, &b));
    kcw_labels_set(&b, "extra", "x");
    assert_false(kcw_labels_equal(&a, &b));

    assert_int_equal(kcw_labels_copy(&empty_copy, &empty), 0);
    assert_int_equal(empty_copy.n, 0);
    assert_true(kcw_labels_equal(&empty, &empty_copy));
    assert_false(kcw_labels_equal(&empty, &a));

    /* Same name, different value; same value, different name. */
    kcw_labels_t c = {0}, d = {0};
    kcw_labels_set(&c, "x", "1");
    kcw_labels_set(&d, "y", "1");
    assert_false(kcw_labels_equal(&c, &d));
    kcw_labels_clear(&a);
    kcw_labels_clear(&b);
    kcw_labels_clear(&c);
    kcw_labels_clear(&d);
    kcw_labels_clear(&empty_copy);
}

static void test_fingerprint(void **state)
{
    (void)state;
    kcw_labels_t a = {0}, b = {0};
    /* Same set built in different orders: same fingerprint. */
    kcw_labels_set(&a, "alertname", "ConnectorFailed");
    kcw_labels_set(&a, "cluster", "prod");
    kcw_labels_set(&a, "connector", "orders");
    kcw_labels_set(&b, "connector", "orders");
    kcw_labels_set(&b, "alertname", "ConnectorFailed");
    kcw_labels_set(&b, "cluster", "prod");
    uint64_t fa = kcw_labels_fingerprint(&a);
    assert_int_equal(fa, kcw_labels_fingerprint(&b));
    assert_int_equal(fa, kcw_labels_fingerprint(&a)); /* stable across calls */

    /* Any change in a value or a name changes it. */
    kcw_labels_set(&b, "cluster", "staging");
    assert_int_not_equal(fa, kcw_labels_fingerprint(&b));
    kcw_labels_set(&b, "cluster", "prod");
    assert_int_equal(fa, kcw_labels_fingerprint(&b));
    kcw_labels_set(&b, "task", "0");
    assert_int_not_equal(fa, kcw_labels_fingerprint(&b));

    /* The boundary between name and value matters: {ab="c"} vs {a="bc"}. */
    kcw_labels_t x = {0}, y = {0};
    kcw_labels_set(&x, "ab", "c");
    kcw_labels_set(&y, "a", "bc");
    assert_int_not_equal(kcw_labels_fingerprint(&x), kcw_labels_fingerprint(&y));

    /* Fixed value of the empty set: FNV-1a offset basis, so it never drifts. */
    kcw_labels_t empty = {0};
    assert_true(kcw_labels_fingerprint(&empty) == 14695981039346656037ULL);

    kcw_labels_clear(&a);
    kcw_labels_clear(&b);
    kcw_labels_clear(&x);
    kcw_labels_clear(&y);
}

/* A frozen set keeps its contents, order and fingerprint; copies of it are
 * references to the same block, and changing one copy leaves the others. */
static void test_frozen_shared_copy_on_write(void **state)
{
    (void)state;
    kcw_labels_t a = {0};
    assert_int_equal(kcw_labels_set(&a, "connector", "orders-sink"), 0);
    assert_int_equal(kcw_labels_set(&a, "alertname", "TaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&a, "task", "3"), 0);
    kcw_labels_t before = {0};
    assert_int_equal(kcw_labels_copy(&before, &a), 0);
    assert_false(kcw_labels_frozen(&before)); /* a copy of a set being built is its own */
    uint64_t fp = kcw_labels_fingerprint(&a);

    assert_int_equal(kcw_labels_freeze(&a), 0);
    assert_true(kcw_labels_frozen(&a));
    assert_int_equal(kcw_labels_freeze(&a), 0); /* again: nothing to do */
    assert_int_equal(a.n, 3);
    assert_sorted_unique(&a);
    assert_true(kcw_labels_equal(&a, &before));
    assert_true(kcw_labels_fingerprint(&a) == fp);
    assert_string_equal(kcw_labels_get(&a, "task"), "3");
    assert_string_equal(a.items[0].name, "alertname");
    assert_string_equal(a.items[0].value, "TaskFailed");

    kcw_labels_t b = {0}, c = {0};
    assert_int_equal(kcw_labels_copy(&b, &a), 0);
    assert_int_equal(kcw_labels_copy(&c, &b), 0);
    assert_ptr_equal(b.items, a.items);
    assert_ptr_equal(c.items, a.items);

    /* Copy on write: b gets its own set, a and c keep the block. */
    assert_int_equal(kcw_labels_set(&b, "remediation", "healing"), 0);
    assert_false(kcw_labels_frozen(&b));
    assert_ptr_not_equal(b.items, a.items);
    assert_int_equal(b.n, 4);
    assert_sorted_unique(&b);
    assert_string_equal(kcw_labels_get(&b, "connector"), "orders-sink");
    assert_int_equal(a.n, 3);
    assert_null(kcw_labels_get(&a, "remediation"));
    /* Removing a label that is not there changes nothing, shares on. */
    assert_int_equal(kcw_labels_set(&c, "worker_id", ""), 0);
    assert_ptr_equal(c.items, a.items);
    assert_int_equal(kcw_labels_set(&c, "task", ""), 0);
    assert_int_equal(c.n, 2);
    assert_null(kcw_labels_get(&c, "task"));
    assert_string_equal(kcw_labels_get(&a, "task"), "3");

    /* The block lives as long as one reference does. */
    kcw_labels_clear(&a);
    assert_int_equal(kcw_labels_copy(&a, &c), 0);
    kcw_labels_t d = {0};
    assert_int_equal(kcw_labels_set(&d, "x", "1"), 0);
    assert_int_equal(kcw_labels_freeze(&d), 0);
    kcw_labels_t e = {0};
    assert_int_equal(kcw_labels_copy(&e, &d), 0);
    kcw_labels_clear(&d);
    assert_string_equal(kcw_labels_get(&e, "x"), "1");

    /* The empty set stays the plain empty set. */
    kcw_labels_t empty = {0};
    assert_int_equal(kcw_labels_freeze(&empty), 0);
    assert_false(kcw_labels_frozen(&empty));
    assert_int_equal(empty.n, 0);

    kcw_labels_clear(&a);
    kcw_labels_clear(&b);
    kcw_labels_clear(&c);
    kcw_labels_clear(&e);
    kcw_labels_clear(&before);
}

static void test_assign(void **state)
{
    (void)state;
    kcw_labels_t src = {0}, dst = {0};
    assert_int_equal(kcw_labels_set(&src, "summary", "down"), 0);
    assert_int_equal(kcw_labels_set(&dst, "summary", "down"), 0);
    kcw_label_t *own = dst.items;
    /* Equal and src being built: dst keeps its own. */
    assert_int_equal(kcw_labels_assign(&dst, &src), 0);
    assert_ptr_equal(dst.items, own);
    /* Frozen src: dst shares it, even when equal. */
    assert_int_equal(kcw_labels_freeze(&src), 0);
    assert_int_equal(kcw_labels_assign(&dst, &src), 0);
    assert_ptr_equal(dst.items, src.items);
    assert_int_equal(kcw_labels_assign(&dst, &src), 0);
    assert_ptr_equal(dst.items, src.items);
    /* Different and not frozen: a copy of its own. */
    kcw_labels_t other = {0};
    assert_int_equal(kcw_labels_set(&other, "summary", "up"), 0);
    assert_int_equal(kcw_labels_assign(&dst, &other), 0);
    assert_ptr_not_equal(dst.items, other.items);
    assert_string_equal(kcw_labels_get(&dst, "summary"), "up");
    assert_string_equal(kcw_labels_get(&src, "summary"), "down");
    kcw_labels_clear(&src);
    kcw_labels_clear(&dst);
    kcw_labels_clear(&other);
}

static void test_shared_str(void **state)
{
    (void)state;
    assert_null(kcw_shared_str_new(NULL));
    assert_null(kcw_shared_str_ref(NULL));
    kcw_shared_str_unref(NULL);
    char *s = kcw_shared_str_new("http://prometheus:9090/graph?g0.expr=up");
    assert_non_null(s);
    char *t = kcw_shared_str_ref(s);
    assert_ptr_equal(t, s);
    kcw_shared_str_unref(s);
    assert_string_equal(t, "http://prometheus:9090/graph?g0.expr=up"); /* still referenced */
    kcw_shared_str_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_sorted), cmocka_unit_test(test_replace_and_empty_removes),
        cmocka_unit_test(test_grows),          cmocka_unit_test(test_copy_equal),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_frozen_shared_copy_on_write),
        cmocka_unit_test(test_assign),
        cmocka_unit_test(test_shared_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
