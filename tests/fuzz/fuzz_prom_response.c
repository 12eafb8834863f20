/* fuzz_prom_response.c: the Prometheus /api/v1/query response parser. */
#include "fuzz.h"
#include "kcwatch/prom.h"

static void one_input(const uint8_t *data, size_t size)
{
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    if (kcw_prom_parse_response((const char *)data, size, &res, &err) == 0)
        kcw_prom_result_free(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
