/* webhook.h: Alertmanager webhook payload (version "4") builder.
 *
 * Pure: alerts in, JSON text out. The shape is what Alertmanager's webhook
 * receiver sends, so every existing webhook consumer works:
 * {version, groupKey, truncatedAlerts, status, receiver, groupLabels,
 *  commonLabels, commonAnnotations, externalURL, alerts[{status, labels,
 *  annotations, startsAt, endsAt, generatorURL, fingerprint}]}. */
#ifndef KCWATCH_WEBHOOK_H
#define KCWATCH_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/labels.h"

/* Largest payload built: alerts past max_alerts or past this size are left
 * out (the earliest firing ones stay) and counted in truncatedAlerts. */
#define KCW_WEBHOOK_MAX_BYTES (1024 * 1024)

/* Returns a malloc'd JSON string or NULL on OOM. max_alerts 0 = all; when it
 * truncates (by max_alerts or KCW_WEBHOOK_MAX_BYTES), truncatedAlerts says
 * how many were left out; at least one alert is always sent. status is
 * "firing" when any alert is firing, else "resolved". external_labels (may
 * be NULL) are added to every alert's labels (and so to commonLabels) where
 * the alert has no label of that name, as Prometheus adds them to the alerts
 * it sends. */
char *kcw_webhook_payload(const char *receiver, const char *group_key,
                          const kcw_labels_t *group_labels, const kcw_alert_t *const *alerts,
                          size_t n_alerts, const char *external_url,
                          const kcw_labels_t *external_labels, int max_alerts);

#endif
