/* labels.c: sorted label sets and their fingerprints (see labels.h).
 *
 * A frozen set is one block: a reference count, the item array, then each
 * pair's "name\0value\0". Freezing an alert's labels takes its 1 + n
 * allocations (about 30 bytes of allocator overhead each) down to one, and
 * every later copy is a reference. */
#include "kcwatch/labels.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct frozen {
    size_t refs;
    kcw_label_t items[];
} frozen_t;

static frozen_t *block_of(const kcw_labels_t *l)
{
    return (frozen_t *)(void *)((char *)l->items - offsetof(frozen_t, items));
}

bool kcw_labels_frozen(const kcw_labels_t *l)
{
    return l->cap == KCW_LABELS_FROZEN;
}

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

static int copy_deep(kcw_labels_t *dst, const kcw_labels_t *src);

/* A private, changeable copy of a frozen set in place of its reference. */
static int thaw(kcw_labels_t *l)
{
    kcw_labels_t own;
    if (copy_deep(&own, l) < 0)
        return -ENOMEM;
    kcw_labels_clear(l);
    *l = own;
    return 0;
}

int kcw_labels_set(kcw_labels_t *l, const char *name, const char *value)
{
    long at = find(l, name);
    if ((!value || !*value) && at < 0)
        return 0;
    if (kcw_labels_frozen(l)) {
        if (thaw(l) < 0)
            return -ENOMEM;
    }
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

static int copy_deep(kcw_labels_t *dst, const kcw_labels_t *src)
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

int kcw_labels_copy(kcw_labels_t *dst, const kcw_labels_t *src)
{
    if (!kcw_labels_frozen(src))
        return copy_deep(dst, src);
    block_of(src)->refs++;
    *dst = *src;
    return 0;
}

int kcw_labels_assign(kcw_labels_t *dst, const kcw_labels_t *src)
{
    if (dst->items == src->items && dst->n == src->n)
        return 0; /* the same block, or both empty */
    if (!kcw_labels_frozen(src) && kcw_labels_equal(dst, src))
        return 0;
    kcw_labels_t copy;
    if (kcw_labels_copy(&copy, src) < 0)
        return -ENOMEM;
    kcw_labels_clear(dst);
    *dst = copy;
    return 0;
}

int kcw_labels_freeze(kcw_labels_t *l)
{
    if (kcw_labels_frozen(l))
        return 0;
    if (l->n == 0) {
        kcw_labels_clear(l); /* drops a spare item array */
        return 0;
    }
    size_t bytes = sizeof(frozen_t) + l->n * sizeof(kcw_label_t);
    for (size_t i = 0; i < l->n; i++)
        bytes += (size_t)(l->items[i].value - l->items[i].name) + strlen(l->items[i].value) + 1;
    frozen_t *b = malloc(bytes);
    if (!b)
        return -ENOMEM;
    b->refs = 1;
    char *p = (char *)&b->items[l->n];
    for (size_t i = 0; i < l->n; i++) {
        /* "name\0value\0", as pair_make laid it out */
        size_t len = (size_t)(l->items[i].value - l->items[i].name) + strlen(l->items[i].value) + 1;
        memcpy(p, l->items[i].name, len);
        b->items[i].name = p;
        b->items[i].value = p + (l->items[i].value - l->items[i].name);
        p += len;
    }
    size_t n = l->n;
    kcw_labels_clear(l);
    l->items = b->items;
    l->n = n;
    l->cap = KCW_LABELS_FROZEN;
    return 0;
}

bool kcw_labels_equal(const kcw_labels_t *a, const kcw_labels_t *b)
{
    if (a->n != b->n)
        return false;
    if (a->items == b->items)
        return true;
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
    if (kcw_labels_frozen(l)) {
        frozen_t *b = block_of(l);
        if (--b->refs == 0)
            free(b);
    } else {
        for (size_t i = 0; i < l->n; i++)
            free(l->items[i].name);
        free(l->items);
    }
    memset(l, 0, sizeof(*l));
}

typedef struct shared_str {
    size_t refs;
    char s[];
} shared_str_t;

static shared_str_t *str_block(char *s)
{
    return (shared_str_t *)(void *)(s - offsetof(shared_str_t, s));
}

char *kcw_shared_str_new(const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s);
    shared_str_t *b = malloc(sizeof(*b) + len + 1);
    if (!b)
        return NULL;
    b->refs = 1;
    memcpy(b->s, s, len + 1);
    return b->s;
}

char *kcw_shared_str_ref(char *s)
{
    if (s)
        str_block(s)->refs++;
    return s;
}

void kcw_shared_str_unref(char *s)
{
    if (s && --str_block(s)->refs == 0)
        free(str_block(s));
}
