/* fuzz_config.c: the config loader on arbitrary YAML. */
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/config.h"
#include "kcwatch/errors.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *yaml = kcw_fuzz_string(data, size);
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    kcw_config_load_string(yaml, "fuzz.yaml", &cfg, &errs);
    kcw_config_free(cfg);
    kcw_errors_clear(&errs);
    free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
