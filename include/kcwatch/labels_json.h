/* labels_json.h: label sets and text as JSON values, for the admin API and
 * the webhook payload (both speak the Prometheus/Alertmanager JSON shapes). */
#ifndef KCWATCH_LABELS_JSON_H
#define KCWATCH_LABELS_JSON_H

#include <jansson.h>

#include "kcwatch/labels.h"

/* A JSON string of s (NULL: ""). Each byte that is not part of valid UTF-8
 * (RFC 3629) becomes U+FFFD rather than failing. NULL on allocation failure. */
json_t *kcw_json_text(const char *s);

/* A label set (NULL: none) as a JSON object of name: value, in the set's
 * order. NULL on allocation failure. */
json_t *kcw_labels_to_json(const kcw_labels_t *l);

#endif
