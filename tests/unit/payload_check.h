/* payload_check.h: helpers the payload builders' unit tests share (include
 * after cmocka.h): alerts to build payloads from, and reading JSON back. */
#ifndef KCWATCH_TEST_PAYLOAD_CHECK_H
#define KCWATCH_TEST_PAYLOAD_CHECK_H

#include <jansson.h>
#include <stdlib.h>

#include "kcwatch/alerts.h"

static inline void alert_clear(kcw_alert_t *a)
{
    kcw_labels_clear(&a->labels);
    kcw_labels_clear(&a->annotations);
}

/* The JSON in text (freed), failing the test when it is not JSON. */
static inline json_t *parse(char *text)
{
    assert_non_null(text);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("payload is not JSON: %s: %s", err.text, text);
    free(text);
    return j;
}

/* The string member key of o, failing the test when it is not one. */
static inline const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

#endif
