/* test_group_labels.c: group-level `labels:` are added to every rule of the
 * group, the rule's own labels of the same name win, values are templates
 * positioned in the file, and bad group labels are errors at their key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/rules.h"

static const char *label(const kcw_rule_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i].name, name) == 0)
            return r->labels[i].source;
    return NULL;
}

static void test_group_labels_merge(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    const char *yaml = "groups:\n"
                       "- name: g\n"
                       "  rules:\n"
                       "  - alert: A\n"
                       "    expr: up == 0\n"
                       "    labels: {severity: critical}\n"
                       "  - alert: B\n"
                       "    connect: {state: FAILED}\n"
                       "  labels:\n"
                       "    team: data\n"
                       "    severity: warning\n"
                       "    owner: '{{ $labels.job }}'\n";
    assert_int_equal(kcw_rules_load_string(yaml, "g.yaml", &rs, &errs), 0);
    assert_int_equal(errs.n, 0);
    const kcw_rule_t *a = &rs->groups[0].rules[0], *b = &rs->groups[0].rules[1];
    assert_int_equal(a->n_labels, 3);
    assert_string_equal(label(a, "severity"), "critical"); /* the rule's own wins */
    assert_string_equal(label(a, "team"), "data");
    assert_string_equal(label(a, "owner"), "{{ $labels.job }}");
    assert_non_null(a->labels[2].tmpl);
    assert_int_equal(b->n_labels, 3);
    assert_string_equal(label(b, "severity"), "warning");
    assert_string_equal(label(b, "team"), "data");
    kcw_ruleset_free(rs);
}

static void test_group_labels_errors(void **state)
{
    (void)state;
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    const char *yaml = "groups:\n"
                       "- name: g\n"
                       "  labels:\n"
                       "    bad-name: x\n"
                       "    ok: '{{ .Nope'\n"
                       "  rules:\n"
                       "  - alert: A\n"
                       "    expr: up == 0\n";
    assert_int_equal(kcw_rules_load_string(yaml, "g.yaml", &rs, &errs), -EINVAL);
    assert_null(rs);
    assert_int_equal(errs.n, 2); /* once each, not once per rule */
    assert_string_equal(errs.items[0].file, "g.yaml");
    assert_int_equal(errs.items[0].line, 4);
    assert_int_equal(errs.items[0].col, 5);
    assert_int_equal(errs.items[1].line, 5);
    kcw_errors_clear(&errs);
    /* labels: must be a mapping */
    assert_int_equal(kcw_rules_load_string("groups:\n- name: g\n  labels: [a]\n  rules: []\n",
                                           "g.yaml", &rs, &errs),
                     -EINVAL);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].line, 3);
    kcw_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_labels_merge),
        cmocka_unit_test(test_group_labels_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
