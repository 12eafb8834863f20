/* payload.h: what every receiver's payload builder in receivers/ needs to
 * say about an alert, the same way in every payload. Pure. */
#ifndef KCWATCH_PAYLOAD_H
#define KCWATCH_PAYLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"

#define KCW_PAYLOAD_GENERATOR_PATH "/api/v1/alerts"

/* Resolved (resolved_at set, or inactive). */
bool kcw_payload_alert_resolved(const kcw_alert_t *a);
/* startsAt: when it fired, else when it became active. */
int64_t kcw_payload_alert_starts_ms(const kcw_alert_t *a);
/* The alert's fingerprint (computed from its labels when not set). */
uint64_t kcw_payload_alert_fp(const kcw_alert_t *a);
/* external_url + "/api/v1/alerts" (kcwatch's alerts list), "" without an
 * external URL. malloc'd or NULL. */
char *kcw_payload_generator_url(const char *external_url);
/* The alerts as they leave kcwatch: *out holds n pointers to shallow copies
 * whose labels also carry external (an alert's own label of the same name
 * wins), as Prometheus adds its external labels to the alerts it sends.
 * Release with kcw_payload_labeled_free. 0 or -ENOMEM. */
int kcw_payload_labeled(const kcw_alert_t *const *alerts, size_t n, const kcw_labels_t *external,
                        const kcw_alert_t ***out);
void kcw_payload_labeled_free(const kcw_alert_t **labeled, size_t n);
/* json_object_set_new that fails on a NULL value (an allocation that failed);
 * 0 or -1. The value is stolen either way. */
int kcw_payload_put(json_t *obj, const char *key, json_t *value);
/* At most max_lines lines and max_bytes bytes of text (cut at a UTF-8
 * character boundary), malloc'd; NULL text gives NULL. */
char *kcw_payload_first_lines(const char *text, int max_lines, size_t max_bytes);
/* Length of the longest prefix of s (len bytes) of at most max bytes that
 * does not end inside a UTF-8 sequence. */
size_t kcw_payload_utf8_cut(const char *s, size_t len, size_t max);

#endif
