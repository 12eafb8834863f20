/* fuzz_rules.c: the rule loader (Prometheus rule files plus connect: and
 * restart:, templates compiled) on arbitrary YAML. */
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/errors.h"
#include "kcwatch/promql_check.h"
#include "kcwatch/rules.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *yaml = kcw_fuzz_string(data, size);
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    kcw_rules_load_string(yaml, "fuzz-rules.yaml", &rs, &errs);
    /* Prometheus' parse errors mapped onto each expr's scalar, at positions
     * inside, at the end of and past the expression. */
    static const char *const msgs[] = {"1:1: parse error: x", "2:3: parse error: x",
                                       "1:100000: parse error: x", "9:9: parse error: x",
                                       "no position"};
    for (size_t g = 0; rs && g < rs->n_groups; g++)
        for (size_t i = 0; i < rs->groups[g].n_rules; i++)
            for (size_t m = 0; rs->groups[g].rules[i].expr && m < 5; m++)
                kcw_promql_reject(&rs->groups[g].rules[i], msgs[m], &errs);
    kcw_ruleset_free(rs);
    kcw_errors_clear(&errs);
    free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
