/* fuzz_rules.c: the rule loader (Prometheus rule files plus connect: and
 * restart:, templates compiled) on arbitrary YAML. */
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/errors.h"
#include "kcwatch/rules.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *yaml = kcw_fuzz_string(data, size);
    kcw_ruleset_t *rs = NULL;
    kcw_errors_t errs = {0};
    kcw_rules_load_string(yaml, "fuzz-rules.yaml", &rs, &errs);
    kcw_ruleset_free(rs);
    kcw_errors_clear(&errs);
    free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
