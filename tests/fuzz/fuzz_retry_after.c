/* fuzz_retry_after.c: Retry-After header values (a webhook or Connect 429/
 * 503 answer): delta-seconds or an HTTP-date, never negative, capped. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/http_client.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *v = kcw_fuzz_string(data, size);
    int64_t ms = kcw_http_retry_after_parse(v);
    if (ms < -1 || ms > 24LL * 3600 * 1000) {
        fprintf(stderr, "Retry-After %lld ms out of range\n", (long long)ms);
        abort();
    }
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
