/* fuzz_restart_records.c: restart records other kcwatch instances left in
 * etcd (ha_restarts.h), as the instance taking a cluster over merges them
 * into its restart tracks: one record per input line. Whatever they hold,
 * merging must neither crash nor take more than linear time, and the
 * remediator must still answer for its budgets afterwards. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "kcwatch/config.h"
#include "kcwatch/ha_restarts.h"
#include "kcwatch/remediate.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *text = kcw_fuzz_string(data, size);
    size_t n = 0;
    const char **recs = kcw_fuzz_lines(text, &n);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    kcw_config_load_string("remediation: {budget: {max_restarts: 3, window: 1h},\n"
                           "              backoff: {initial: 1s, max: 1m, multiplier: 2}}\n",
                           "fuzz.yaml", &cfg, &errs);
    kcw_errors_clear(&errs);
    if (!cfg)
        abort(); /* the harness itself is broken: say so, do not pass */
    kcw_remediator_t *r = kcw_remediator_new(&loop, NULL, &cfg->remediation, NULL, NULL);
    if (r) {
        kcw_ha_restarts_adopt(r, "me", recs, n, 1800000000000LL);
        kcw_instance_t *out = NULL;
        size_t n_out = 0;
        kcw_remediator_exhausted(r, &out, &n_out);
        for (size_t i = 0; i < n_out; i++)
            kcw_instance_clear(&out[i]);
        free(out);
    }
    kcw_remediator_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kcw_config_free(cfg);
    free(recs);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
