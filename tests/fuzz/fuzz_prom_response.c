/* fuzz_prom_response.c: the Prometheus /api/v1/query response parser. */
#include "fuzz.h"
#include "kcwatch/prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kcw_fuzz_begin();
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    if (kcw_prom_parse_response((const char *)data, size, &res, &err) == 0)
        kcw_prom_result_free(res);
    kcw_fuzz_end(size);
    return 0;
}
