/* labels.h: label sets, as Prometheus has them.
 *
 * A kcw_labels_t is a small array of name/value pairs kept sorted by name with
 * unique names, so two sets are equal exactly when their fingerprints and
 * contents are equal. Used for alert instances, routing and payloads. */
#ifndef KCWATCH_LABELS_H
#define KCWATCH_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read-only outside labels.c. A set is either being built (each pair is one
 * allocation: name owns it, value points into it) or frozen
 * (kcw_labels_freeze): the item array and every string in one reference-
 * counted block, shared by kcw_labels_copy instead of copied. An alert's
 * labels and annotations are frozen once, and the notifier's and others'
 * copies of them cost a reference. Changing a frozen set (kcw_labels_set)
 * gives it a private copy first. Not thread-safe: kcwatch runs one loop. */
typedef struct kcw_label {
    char *name;  /* owned, or within the frozen block */
    char *value; /* within name's allocation or the frozen block */
} kcw_label_t;

typedef struct kcw_labels {
    kcw_label_t *items;
    size_t n, cap; /* cap KCW_LABELS_FROZEN: items is in a shared block */
} kcw_labels_t;

#define KCW_LABELS_FROZEN SIZE_MAX

/* Sets name=value (replacing an existing value, keeping the set sorted).
 * An empty value removes the label, as in Prometheus. 0 or -ENOMEM. */
int kcw_labels_set(kcw_labels_t *l, const char *name, const char *value);
/* Value of name or NULL. */
const char *kcw_labels_get(const kcw_labels_t *l, const char *name);
/* Copy into dst (dst must be empty/zeroed): another reference when src is
 * frozen, else a deep copy. 0 or -ENOMEM. */
int kcw_labels_copy(kcw_labels_t *dst, const kcw_labels_t *src);
/* Makes dst hold what src holds: shares src's block when src is frozen;
 * keeps dst when equal to a src that is not; else a deep copy. dst is left
 * as it was on -ENOMEM. */
int kcw_labels_assign(kcw_labels_t *dst, const kcw_labels_t *src);
/* Packs l into one shared block (nothing to do when empty or frozen). On
 * -ENOMEM l stays as it was, still valid. */
int kcw_labels_freeze(kcw_labels_t *l);
bool kcw_labels_frozen(const kcw_labels_t *l);
bool kcw_labels_equal(const kcw_labels_t *a, const kcw_labels_t *b);
/* Stable 64-bit FNV-1a fingerprint over the sorted pairs. */
uint64_t kcw_labels_fingerprint(const kcw_labels_t *l);
/* Frees the pairs (a frozen set: drops its reference); the struct is zeroed
 * and reusable. */
void kcw_labels_clear(kcw_labels_t *l);

/* Shared immutable strings (one per rule shared by all its alerts, e.g. the
 * generator URL): reference-counted, NULL-safe. */
char *kcw_shared_str_new(const char *s); /* NULL on NULL or out of memory */
char *kcw_shared_str_ref(char *s);       /* s, one more reference */
void kcw_shared_str_unref(char *s);

#endif
