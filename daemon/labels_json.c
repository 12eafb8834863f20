/* labels_json.c: label sets and text as JSON values (see labels_json.h).
 *
 * Label and annotation values are normally UTF-8, but a template output cut
 * at its bound can end inside a character and annotations may carry text
 * from a Java stack trace of unknown encoding: like Go's encoder, each
 * invalid byte becomes U+FFFD instead of losing the whole response or
 * notification. */
#include "kcwatch/labels_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 when it is not one. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

json_t *kcw_json_text(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *fixed = malloc(len * 3 + 1);
    if (!fixed)
        return NULL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq_len(p);
        if (n == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        } else {
            memcpy(fixed + o, p, n);
            o += n;
            p += n;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

json_t *kcw_labels_to_json(const kcw_labels_t *l)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; l && i < l->n; i++) {
        /* json_object_set_new takes the value even when it fails */
        json_t *v = kcw_json_text(l->items[i].value);
        if (!v || json_object_set_new(o, l->items[i].name, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
