/* labels.c: sorted label sets and their fingerprints (see labels.h). */
#include "kcwatch/labels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Index of name, or -(insertion point) - 1. */
static long find(const kcw_labels_t *l, const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->items[mid].name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* name and value in one allocation: "name\0value\0". */
static int pair_make(kcw_label_t *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *p = malloc(nl + vl + 2);
    if (!p)
        return -ENOMEM;
    memcpy(p, name, nl + 1);
    memcpy(p + nl + 1, value, vl + 1);
    out->name = p;
    out->value = p + nl + 1;
    return 0;
}

int kcw_labels_set(kcw_labels_t *l, const char *name, const char *value)
{
    long at = find(l, name);
    if (!value || !*value) {
        /* Prometheus: an empty label value is the same as no label. */
        if (at >= 0) {
            free(l->items[at].name);
            memmove(&l->items[at], &l->items[at + 1], (l->n - (size_t)at - 1) * sizeof(*l->items));
            l->n--;
        }
        return 0;
    }
    kcw_label_t pair;
    if (pair_make(&pair, name, value) < 0)
        return -ENOMEM;
    if (at >= 0) {
        free(l->items[at].name);
        l->items[at] = pair;
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        kcw_label_t *items = realloc(l->items, cap * sizeof(*items));
        if (!items) {
            free(pair.name);
            return -ENOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    size_t pos = (size_t)(-at - 1);
    memmove(&l->items[pos + 1], &l->items[pos], (l->n - pos) * sizeof(*l->items));
    l->items[pos] = pair;
    l->n++;
    return 0;
}

const char *kcw_labels_get(const kcw_labels_t *l, const char *name)
{
    long at = find(l, name);
    return at >= 0 ? l->items[at].value : NULL;
}

int kcw_labels_copy(kcw_labels_t *dst, const kcw_labels_t *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->n == 0)
        return 0;
    dst->items = calloc(src->n, sizeof(*dst->items));
    if (!dst->items)
        return -ENOMEM;
    dst->cap = src->n;
    for (size_t i = 0; i < src->n; i++) {
        if (pair_make(&dst->items[i], src->items[i].name, src->items[i].value) < 0) {
            kcw_labels_clear(dst);
            return -ENOMEM;
        }
        dst->n = i + 1;
    }
    return 0;
}

bool kcw_labels_equal(const kcw_labels_t *a, const kcw_labels_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->items[i].name, b->items[i].name) != 0 ||
            strcmp(a->items[i].value, b->items[i].value) != 0)
            return false;
    }
    return true;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t kcw_labels_fingerprint(const kcw_labels_t *l)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < l->n; i++) {
        /* 0xff cannot occur in UTF-8, so it separates names and values unambiguously. */
        h = fnv1a(h, l->items[i].name);
        h = fnv1a(h, "\xff");
        h = fnv1a(h, l->items[i].value);
        h = fnv1a(h, "\xff");
    }
    return h;
}

void kcw_labels_clear(kcw_labels_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
    memset(l, 0, sizeof(*l));
}
