/* alertmanager.c: postableAlerts for Alertmanager's /api/v2/alerts (see
 * alertmanager.h). Field set and timing follow Prometheus' notifier
 * (notifier/notifier.go, rules/alerting.go: ValidUntil = now + 4 x resend
 * delay or interval). */
#include "kcwatch/alertmanager.h"

#include <jansson.h>
#include <stdlib.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/payload.h"
#include "kcwatch/rfc3339.h"

int64_t kcw_alertmanager_valid_for_ms(int64_t evaluation_interval_ms)
{
    int64_t base = evaluation_interval_ms > KCW_ALERTMANAGER_RESEND_MS
                       ? evaluation_interval_ms
                       : KCW_ALERTMANAGER_RESEND_MS;
    return 4 * base;
}

static json_t *time_json(int64_t ms)
{
    char buf[KCW_RFC3339_LEN];
    kcw_rfc3339_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *labels_json(const kcw_labels_t *labels, const kcw_labels_t *external)
{
    json_t *o = kcw_labels_to_json(labels);
    for (size_t i = 0; o && external && i < external->n; i++) {
        const kcw_label_t *e = &external->items[i];
        if (!kcw_labels_get(labels, e->name) &&
            kcw_payload_put(o, e->name, kcw_json_text(e->value)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

char *kcw_alertmanager_payload(const kcw_alert_t *const *alerts, size_t n_alerts, int64_t now_ms,
                               int64_t valid_for_ms, const kcw_labels_t *external_labels,
                               const char *external_url)
{
    json_t *list = json_array();
    char *generator = kcw_payload_generator_url(external_url);
    char *text = NULL;
    if (!list || !generator)
        goto done;
    for (size_t i = 0; i < n_alerts; i++) {
        const kcw_alert_t *a = alerts[i];
        bool resolved = kcw_payload_alert_resolved(a);
        int64_t ends = resolved ? a->resolved_at_ms : now_ms + valid_for_ms;
        json_t *o = json_object();
        if (!o || kcw_payload_put(o, "labels", labels_json(&a->labels, external_labels)) < 0 ||
            kcw_payload_put(o, "annotations", kcw_labels_to_json(&a->annotations)) < 0 ||
            kcw_payload_put(o, "startsAt", time_json(kcw_payload_alert_starts_ms(a))) < 0 ||
            kcw_payload_put(o, "endsAt", time_json(ends)) < 0 ||
            kcw_payload_put(o, "generatorURL",
                            kcw_json_text(a->generator_url ? a->generator_url : generator)) < 0) {
            json_decref(o);
            goto done;
        }
        if (json_array_append_new(list, o) < 0) /* steals o either way */
            goto done;
    }
    text = json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(list);
    free(generator);
    return text;
}
