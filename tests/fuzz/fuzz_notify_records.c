/* fuzz_notify_records.c: notification logs other kcwatch instances recorded
 * in etcd (ha.h), as the instance taking a cluster over adopts them: one
 * record per input line. Whatever they hold, adoption must neither crash nor
 * take more than linear time, and an alert then updated into the notifier
 * must still group and flush. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "kcwatch/notify.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *text = kcw_fuzz_string(data, size);
    size_t n = 0, cap = 16;
    const char **recs = malloc(cap * sizeof(*recs));
    for (char *line = text, *next; recs && line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (n == cap) {
            const char **more = realloc(recs, 2 * cap * sizeof(*recs));
            if (!more)
                break;
            recs = more;
            cap *= 2;
        }
        recs[n++] = line;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    static char ops[] = "ops", alertname[] = "alertname";
    char *group_by[] = {alertname};
    kcw_receiver_conf_t rcv = {.name = ops, .kind = KCW_RECEIVER_LOG, .send_resolved = true};
    kcw_config_t cfg = {.receivers = &rcv,
                        .n_receivers = 1,
                        .route = {.receiver = ops,
                                  .group_by = group_by,
                                  .n_group_by = 1,
                                  .group_wait_ms = 1000,
                                  .group_interval_ms = 60000,
                                  .repeat_interval_ms = 3600000}};
    kcw_notifier_t *nt = kcw_notifier_new(&loop, NULL, &cfg, NULL, NULL);
    if (nt && recs) {
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
    free(recs);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
