/* payload.c: alert facts shared by the payload builders (see payload.h). */
#include "kcwatch/payload.h"

#include <errno.h>
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

void kcw_payload_labeled_free(const kcw_alert_t **labeled, size_t n)
{
    if (!labeled)
        return;
    kcw_alert_t *copies = n ? (kcw_alert_t *)labeled[0] : NULL;
    for (size_t i = 0; copies && i < n; i++)
        kcw_labels_clear(&copies[i].labels);
    free(copies);
    free(labeled);
}

int kcw_payload_labeled(const kcw_alert_t *const *alerts, size_t n, const kcw_labels_t *external,
                        const kcw_alert_t ***out)
{
    *out = NULL;
    kcw_alert_t *copies = calloc(n ? n : 1, sizeof(*copies));
    const kcw_alert_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!copies || !ptrs) {
        free(copies);
        free(ptrs);
        return -ENOMEM;
    }
    int rc = 0;
    size_t done = 0;
    for (; rc == 0 && done < n; done++) {
        kcw_alert_t *c = &copies[done];
        *c = *alerts[done]; /* annotations, trace, links: shared, not owned */
        c->fingerprint = kcw_payload_alert_fp(alerts[done]);
        memset(&c->labels, 0, sizeof(c->labels));
        rc = kcw_labels_copy(&c->labels, &alerts[done]->labels);
        for (size_t e = 0; rc == 0 && external && e < external->n; e++)
            if (!kcw_labels_get(&alerts[done]->labels, external->items[e].name))
                rc = kcw_labels_set(&c->labels, external->items[e].name,
                                    external->items[e].value);
        ptrs[done] = c;
    }
    if (rc < 0) {
        kcw_payload_labeled_free(ptrs, done); /* ptrs[0] is copies */
        return -ENOMEM;
    }
    if (n == 0)
        free(copies); /* nothing points at it */
    *out = ptrs;
    return 0;
}
