/* alertmanager.h: the body of a POST to Alertmanager's /api/v2/alerts.
 *
 * Pure: alerts in, the JSON array Prometheus sends (postableAlerts) out:
 * [{labels, annotations, startsAt, endsAt, generatorURL}]. As Prometheus
 * does, a firing alert's endsAt lies valid_for ahead of now, so Alertmanager
 * resolves it by itself if kcwatch stops re-sending it (the notifier re-sends
 * firing alerts every KCW_ALERTMANAGER_RESEND_MS, well within valid_for); a
 * resolved alert is sent with endsAt set to when it resolved. External labels
 * are added to the alerts' labels where they do not set the label already. */
#ifndef KCWATCH_ALERTMANAGER_H
#define KCWATCH_ALERTMANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/labels.h"

#define KCW_ALERTMANAGER_RESEND_MS (60 * 1000LL) /* Prometheus' --rules.alert.resend-delay */
#define KCW_ALERTMANAGER_PATH "/api/v2/alerts"

/* How long a firing alert stays valid: 4 x max(resend delay, evaluation
 * interval), Prometheus' rule. */
int64_t kcw_alertmanager_valid_for_ms(int64_t evaluation_interval_ms);

/* malloc'd JSON text, NULL on OOM. */
char *kcw_alertmanager_payload(const kcw_alert_t *const *alerts, size_t n_alerts, int64_t now_ms,
                               int64_t valid_for_ms, const kcw_labels_t *external_labels,
                               const char *external_url);

#endif
