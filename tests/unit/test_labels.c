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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_sorted), cmocka_unit_test(test_replace_and_empty_removes),
        cmocka_unit_test(test_grows),          cmocka_unit_test(test_copy_equal),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
