/* fuzz_notify_records.c: notification logs other kcwatch instances recorded
 * in etcd (ha.h), as the instance taking a cluster over adopts them: one
 * record per input line. Whatever they hold, adoption must neither crash nor
 * take more than linear time, and an alert then updated into the notifier
 * must still group (by an external label too) and flush. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "kcwatch/config.h"
#include "kcwatch/notify.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *text = kcw_fuzz_string(data, size);
    size_t n = 0;
    const char **recs = kcw_fuzz_lines(text, &n);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A real config, so the routing tree is built as the daemon builds it. */
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    kcw_config_load_string("global: {external_labels: {site: t1}}\n"
                           "receivers: [{name: ops, log: {}}]\n"
                           "route: {receiver: ops, group_by: [alertname, site], group_wait: 1s,\n"
                           "        group_interval: 1m, repeat_interval: 1h}\n",
                           "fuzz.yaml", &cfg, &errs);
    kcw_errors_clear(&errs);
    if (!cfg)
        abort(); /* the harness itself is broken: say so, do not pass */
    kcw_notifier_t *nt = cfg ? kcw_notifier_new(&loop, NULL, cfg, NULL, NULL) : NULL;
    if (nt) {
        kcw_notifier_adopt_records(nt, recs, n, 3600000, 1000);
        kcw_alert_t a;
        memset(&a, 0, sizeof(a));
        kcw_labels_set(&a.labels, "alertname", "ConnectTaskFailed");
        a.fingerprint = kcw_labels_fingerprint(&a.labels);
        a.state = KCW_ALERT_FIRING;
        const kcw_alert_t *list[] = {&a};
        kcw_notifier_update(nt, list, 1, 2000);
        kcw_notifier_flush_due(nt, 10000);
        kcw_labels_clear(&a.labels);
    }
    if (nt)
        kcw_notifier_close(nt, NULL, NULL);
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
