/* text.c: escaping of untrusted text for terminals and log lines (text.h). */
#include "kcwatch/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t kcw_text_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Bytes to write for s[0..n) at s: *esc true when they must be escaped
 * (each byte as \xHH, or a short escape). */
static size_t next_unit(const unsigned char *s, size_t n, bool *esc)
{
    size_t len = kcw_text_utf8_len(s, n);
    if (len == 0) {
        *esc = true;
        return 1;
    }
    if (len == 1)
        *esc = s[0] < 0x20 || s[0] == 0x7f;
    else /* C1 controls U+0080..U+009F are 0xC2 0x80..0x9F */
        *esc = len == 2 && s[0] == 0xc2 && s[1] < 0xa0;
    return len;
}

bool kcw_text_needs_escape(const char *s)
{
    if (!s)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        bool esc;
        i += next_unit(p + i, n - i, &esc);
        if (esc)
            return true;
    }
    return false;
}

char *kcw_text_escape(const char *s, unsigned flags)
{
    if (!s)
        s = "";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    /* Worst case: every byte becomes \xHH. */
    char *out = malloc(n * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        bool esc;
        size_t len = next_unit(p + i, n - i, &esc);
        if (!esc) {
            if ((flags & KCW_TEXT_QUOTED) && (p[i] == '"' || p[i] == '\\'))
                out[o++] = '\\';
            memcpy(out + o, p + i, len);
            o += len;
        } else if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
            out[o++] = '\\';
            out[o++] = p[i] == '\n' ? 'n' : p[i] == '\r' ? 'r' : 't';
        } else {
            for (size_t k = 0; k < len; k++) {
                snprintf(out + o, 5, "\\x%02x", p[i + k]);
                o += 4;
            }
        }
        i += len;
    }
    out[o] = '\0';
    return out;
}

#define NEAREST_MAX_LEN 64

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Optimal string alignment distance, stopping early past limit. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb, size_t limit)
{
    size_t rows[3][NEAREST_MAX_LEN + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        size_t best = cur[0];
        unsigned char ai = lower((unsigned char)a[i - 1]);
        unsigned char ap = i > 1 ? lower((unsigned char)a[i - 2]) : 0;
        for (size_t j = 1; j <= lb; j++) {
            unsigned char bj = lower((unsigned char)b[j - 1]);
            size_t d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (prev[j - 1] + (ai != bj) < d)
                d = prev[j - 1] + (ai != bj);
            /* two neighbours swapped: one edit */
            if (i > 1 && j > 1 && ai == lower((unsigned char)b[j - 2]) && ap == bj &&
                prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
            if (d < best)
                best = d;
        }
        if (best > limit)
            return limit + 1;
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *kcw_text_nearest(const char *word, const char *const *candidates)
{
    size_t lw = word ? strlen(word) : 0;
    if (lw == 0 || lw > NEAREST_MAX_LEN || !candidates)
        return NULL;
    size_t limit = lw <= 4 ? 1 : lw <= 8 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; candidates[i]; i++) {
        size_t lc = strlen(candidates[i]);
        if (lc > NEAREST_MAX_LEN || (lc > lw ? lc - lw : lw - lc) > limit)
            continue;
        size_t d = edit_distance(word, lw, candidates[i], lc, limit);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}
