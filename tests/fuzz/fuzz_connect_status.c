/* fuzz_connect_status.c: the Connect REST status parsers: one connector's
 * status (§3.2) and the expand=status&expand=info map (§3.5) or the old
 * workers' name list. */
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/connect.h"

static void one_input(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    char err[256];
    kcw_connector_status_t one = {0};
    if (kcw_connect_parse_status(json, size, &one, err, sizeof err) == 0)
        kcw_connector_status_clear(&one);
    kcw_cluster_status_t cl = {0};
    char **names = NULL;
    size_t n_names = 0;
    int rc = kcw_connect_parse_expand(json, size, &cl, &names, &n_names, err, sizeof err);
    if (rc == 1) {
        for (size_t i = 0; i < n_names; i++)
            free(names[i]);
        free(names);
    }
    kcw_cluster_status_clear(&cl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
