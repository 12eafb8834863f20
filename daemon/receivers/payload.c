/* payload.c: alert facts shared by the payload builders (see payload.h). */
#include "kcwatch/payload.h"

#include <stdlib.h>
#include <string.h>

bool kcw_payload_alert_resolved(const kcw_alert_t *a)
{
    return a->resolved_at_ms != 0 || a->state == KCW_ALERT_INACTIVE;
}

int64_t kcw_payload_alert_starts_ms(const kcw_alert_t *a)
{
    return a->fired_at_ms != 0 ? a->fired_at_ms : a->active_at_ms;
}

uint64_t kcw_payload_alert_fp(const kcw_alert_t *a)
{
    return a->fingerprint != 0 ? a->fingerprint : kcw_labels_fingerprint(&a->labels);
}

char *kcw_payload_generator_url(const char *external_url)
{
    if (!external_url || !*external_url)
        return strdup("");
    size_t len = strlen(external_url);
    while (len > 0 && external_url[len - 1] == '/')
        len--;
    char *s = malloc(len + sizeof(KCW_PAYLOAD_GENERATOR_PATH));
    if (!s)
        return NULL;
    memcpy(s, external_url, len);
    memcpy(s + len, KCW_PAYLOAD_GENERATOR_PATH, sizeof(KCW_PAYLOAD_GENERATOR_PATH));
    return s;
}

int kcw_payload_put(json_t *obj, const char *key, json_t *value)
{
    if (!value)
        return -1;
    return json_object_set_new(obj, key, value);
}

size_t kcw_payload_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    /* Back up over continuation bytes to the start of a character. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

char *kcw_payload_first_lines(const char *text, int max_lines, size_t max_bytes)
{
    if (!text)
        return NULL;
    size_t len = 0;
    int lines = 0;
    while (text[len]) {
        if (text[len] == '\n' && ++lines >= max_lines)
            break;
        len++;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    len = kcw_payload_utf8_cut(text, len, max_bytes);
    return strndup(text, len);
}
