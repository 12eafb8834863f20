/* test_episode.c: one loud report per failure episode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kcwatch/episode.h"

/* Only the first failure of a run of them starts an episode; a success ends
 * it (once) and the next failure starts another, counted afresh. */
static void test_loud_once_per_episode(void **state)
{
    (void)state;
    kcw_episode_t e = {0};
    assert_false(kcw_episode_ok(&e)); /* nothing to end */
    assert_true(kcw_episode_fail(&e));
    assert_false(kcw_episode_fail(&e));
    assert_false(kcw_episode_fail(&e));
    assert_true(e.failing);
    assert_int_equal(e.failures, 3);
    assert_true(kcw_episode_ok(&e));
    assert_false(e.failing);
    assert_int_equal(e.failures, 3); /* what the "back" line reports */
    assert_false(kcw_episode_ok(&e));
    assert_true(kcw_episode_fail(&e));
    assert_int_equal(e.failures, 1);
    assert_false(kcw_episode_fail(&e));
    assert_int_equal(e.failures, 2);
}

/* The count saturates instead of wrapping back to "first". */
static void test_count_saturates(void **state)
{
    (void)state;
    kcw_episode_t e = {.failing = true, .failures = UINT64_MAX - 1};
    assert_false(kcw_episode_fail(&e));
    assert_false(kcw_episode_fail(&e));
    assert_int_equal(e.failures, UINT64_MAX);
    assert_true(e.failing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loud_once_per_episode),
        cmocka_unit_test(test_count_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
