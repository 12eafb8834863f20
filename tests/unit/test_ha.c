/* test_ha.c: ownership assignment and fencing by time, on a clock the test
 * owns. The etcd side runs against the real etcd in
 * tests/integration/test_ha_*.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/ha.h"

static void loads(const size_t *owner, size_t n_keys, size_t n_members, size_t *load)
{
    memset(load, 0, n_members * sizeof(*load));
    for (size_t i = 0; i < n_keys; i++) {
        assert_true(owner[i] < n_members);
        load[owner[i]]++;
    }
}

static void test_assign_balanced(void **state)
{
    (void)state;
    char names[64][16], members[8][16];
    const char *keys[64], *mem[8];
    for (size_t i = 0; i < 64; i++) {
        snprintf(names[i], sizeof(names[i]), "connect-%zu", i);
        keys[i] = names[i];
    }
    for (size_t i = 0; i < 8; i++) {
        snprintf(members[i], sizeof(members[i]), "kcw-%zu", i);
        mem[i] = members[i];
    }
    /* Every size: loads differ by at most one. */
    for (size_t nk = 0; nk <= 64; nk++) {
        for (size_t nm = 1; nm <= 8; nm++) {
            size_t owner[64], load[8];
            assert_int_equal(kcw_ha_assign(keys, nk, mem, nm, NULL, owner), 0);
            loads(owner, nk, nm, load);
            size_t lo = SIZE_MAX, hi = 0;
            for (size_t m = 0; m < nm; m++) {
                lo = load[m] < lo ? load[m] : lo;
                hi = load[m] > hi ? load[m] : hi;
            }
            assert_true(hi - lo <= 1);
            assert_true(hi <= (nk + nm - 1) / nm);
        }
    }
}

/* Four clusters, two instances: two each; one goes: all four on the other. */
static void test_assign_four_over_two(void **state)
{
    (void)state;
    const char *keys[] = {"c1", "c2", "c3", "c4"};
    const char *two[] = {"kcw-a", "kcw-b"};
    size_t owner[4], load[2];
    assert_int_equal(kcw_ha_assign(keys, 4, two, 2, NULL, owner), 0);
    loads(owner, 4, 2, load);
    assert_int_equal(load[0], 2);
    assert_int_equal(load[1], 2);
    const char *one[] = {"kcw-b"};
    assert_int_equal(kcw_ha_assign(keys, 4, one, 1, NULL, owner), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(owner[i], 0);
}

/* Every instance computes the same answer whatever order it lists things
 * in; a duplicate member counts once. */
static void test_assign_order_independent(void **state)
{
    (void)state;
    const char *keys[] = {"orders", "payments", "audit", "search", "billing"};
    const char *keys_rev[] = {"billing", "search", "audit", "payments", "orders"};
    const char *mem[] = {"kcw-a", "kcw-b", "kcw-c"};
    const char *mem_rev[] = {"kcw-c", "kcw-a", "kcw-b", "kcw-a"};
    size_t o1[5], o2[5];
    assert_int_equal(kcw_ha_assign(keys, 5, mem, 3, NULL, o1), 0);
    assert_int_equal(kcw_ha_assign(keys_rev, 5, mem_rev, 4, NULL, o2), 0);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(mem[o1[i]], mem_rev[o2[4 - i]]);
    size_t load[4];
    loads(o2, 5, 4, load);
    assert_int_equal(load[3], 0); /* the duplicate "kcw-a" got nothing */
}

/* Adding a member moves some keys, not all (rendezvous hashing). */
static void test_assign_churn_bounded(void **state)
{
    (void)state;
    char names[120][16];
    const char *keys[120];
    for (size_t i = 0; i < 120; i++) {
        snprintf(names[i], sizeof(names[i]), "cluster-%03zu", i);
        keys[i] = names[i];
    }
    const char *mem[] = {"kcw-a", "kcw-b", "kcw-c", "kcw-d"};
    size_t before[120], after[120];
    assert_int_equal(kcw_ha_assign(keys, 120, mem, 3, NULL, before), 0);
    assert_int_equal(kcw_ha_assign(keys, 120, mem, 4, NULL, after), 0);
    size_t moved = 0, to_new = 0;
    for (size_t i = 0; i < 120; i++) {
        moved += before[i] != after[i];
        to_new += after[i] == 3;
    }
    assert_int_equal(to_new, 30);
    /* Ideal is 30 (only those the newcomer takes); the load cap shifts a few more. */
    assert_true(moved < 60);
}

/* Ownership stays where it is while the loads allow: a member that comes
 * back does not take its keys back, a newcomer takes only what balance asks. */
static void test_assign_sticky(void **state)
{
    (void)state;
    const char *keys[] = {"c1", "c2", "c3", "c4"};
    const char *two[] = {"kcw-a", "kcw-b"};
    size_t owner[4], load[2];
    /* kcw-a came first and holds all four; kcw-b joins: two move, by name. */
    size_t all_a[] = {0, 0, 0, 0};
    assert_int_equal(kcw_ha_assign(keys, 4, two, 2, all_a, owner), 0);
    loads(owner, 4, 2, load);
    assert_int_equal(load[0], 2);
    assert_int_equal(owner[0], 0);
    assert_int_equal(owner[1], 0);
    /* One cluster, two instances: the standby never takes it while the
     * owner lives, whatever the hash prefers. */
    for (size_t cur = 0; cur < 2; cur++) {
        size_t o;
        assert_int_equal(kcw_ha_assign(keys, 1, two, 2, &cur, &o), 0);
        assert_int_equal(o, cur);
    }
    /* An owner not among the members (dead): its key is placed afresh. */
    size_t gone[] = {SIZE_MAX, 1, SIZE_MAX, 1};
    assert_int_equal(kcw_ha_assign(keys, 4, two, 2, gone, owner), 0);
    assert_int_equal(owner[1], 1);
    assert_int_equal(owner[3], 1);
    assert_int_equal(owner[0], 0);
    assert_int_equal(owner[2], 0);
}

static void test_assign_errors(void **state)
{
    (void)state;
    const char *keys[] = {"c1"};
    size_t owner[1];
    assert_int_equal(kcw_ha_assign(keys, 1, NULL, 0, NULL, owner), -EINVAL);
    const char *mem[] = {"kcw-a"};
    assert_int_equal(kcw_ha_assign(NULL, 0, mem, 1, NULL, owner), 0);
}

static void test_fence_margin(void **state)
{
    (void)state;
    assert_int_equal(kcw_ha_fence_margin(10000), 2500);
    assert_int_equal(kcw_ha_fence_margin(2000), 500);
    assert_int_equal(kcw_ha_fence_margin(3000), 750);
    assert_int_equal(kcw_ha_fence_margin(1000), 500); /* never more than half */
}

/* etcd revokes an expired lease at its next 500 ms sweep, so the granted
 * TTL plus 500 ms must fit in the configured one. */
static void test_lease_ttl(void **state)
{
    (void)state;
    assert_int_equal(kcw_ha_lease_ttl_s(3000), 2);
    assert_int_equal(kcw_ha_lease_ttl_s(10000), 9);
    assert_int_equal(kcw_ha_lease_ttl_s(3500), 3);
    assert_int_equal(kcw_ha_lease_ttl_s(3499), 2);
    for (int64_t ttl = 1500; ttl <= 60000; ttl += 100)
        assert_true(kcw_ha_lease_ttl_s(ttl) * 1000 + 500 <= ttl);
    assert_int_equal(kcw_ha_lease_ttl_s(1000), 1); /* etcd's floor */
}

static void test_fence_by_time(void **state)
{
    (void)state;
    kcw_ha_fence_t f = {0};
    assert_false(kcw_ha_fence_valid(&f, 1));
    /* Keepalive sent at 1000, granted 10 s: etcd counts from when it got it,
     * later than 1000, so stopping at 1000 + 10000 - 2500 is safe. */
    kcw_ha_fence_renewed(&f, 1000, 10000);
    assert_true(kcw_ha_fence_valid(&f, 1000));
    assert_true(kcw_ha_fence_valid(&f, 8499));
    assert_false(kcw_ha_fence_valid(&f, 8500));
    /* A late answer to an older keepalive does not move the fence back. */
    kcw_ha_fence_renewed(&f, 500, 10000);
    assert_true(kcw_ha_fence_valid(&f, 8499));
    /* Renewed later: valid longer. */
    kcw_ha_fence_renewed(&f, 4000, 10000);
    assert_true(kcw_ha_fence_valid(&f, 11499));
    assert_false(kcw_ha_fence_valid(&f, 11500));
    /* The lease is gone (TTL <= 0 from etcd): no acting at all. */
    kcw_ha_fence_renewed(&f, 5000, -1);
    assert_false(kcw_ha_fence_valid(&f, 5001));
    kcw_ha_fence_renewed(&f, 6000, 2000);
    assert_true(kcw_ha_fence_valid(&f, 7499));
    assert_false(kcw_ha_fence_valid(&f, 7500));
    kcw_ha_fence_drop(&f);
    assert_false(kcw_ha_fence_valid(&f, 6001));
}

/* A paused process (SIGSTOP, a paused VM) wakes past its fence: nothing it
 * renewed before the pause lets it act. */
static void test_fence_after_pause(void **state)
{
    (void)state;
    kcw_ha_fence_t f = {0};
    int64_t now = 100000;
    for (int i = 0; i < 10; i++, now += 500)
        kcw_ha_fence_renewed(&f, now, 2000);
    assert_true(kcw_ha_fence_valid(&f, now));
    now += 5000; /* stopped for 5 s, more than the 2 s TTL */
    assert_false(kcw_ha_fence_valid(&f, now));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_balanced),
        cmocka_unit_test(test_assign_four_over_two),
        cmocka_unit_test(test_assign_order_independent),
        cmocka_unit_test(test_assign_churn_bounded),
        cmocka_unit_test(test_assign_sticky),
        cmocka_unit_test(test_assign_errors),
        cmocka_unit_test(test_fence_margin),
        cmocka_unit_test(test_lease_ttl),
        cmocka_unit_test(test_fence_by_time),
        cmocka_unit_test(test_fence_after_pause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
