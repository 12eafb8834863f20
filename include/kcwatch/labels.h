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

/* Read-only outside labels.c: name and value share one allocation (name
 * owns it, value points into it), half the allocations of an alert's or a
 * query result's labels. */
typedef struct kcw_label {
    char *name;  /* owned */
    char *value; /* within name's allocation */
} kcw_label_t;

typedef struct kcw_labels {
    kcw_label_t *items;
    size_t n, cap;
} kcw_labels_t;

/* Sets name=value (replacing an existing value, keeping the set sorted).
 * An empty value removes the label, as in Prometheus. 0 or -ENOMEM. */
int kcw_labels_set(kcw_labels_t *l, const char *name, const char *value);
/* Value of name or NULL. */
const char *kcw_labels_get(const kcw_labels_t *l, const char *name);
/* Deep copy into dst (dst must be empty/zeroed). 0 or -ENOMEM. */
int kcw_labels_copy(kcw_labels_t *dst, const kcw_labels_t *src);
bool kcw_labels_equal(const kcw_labels_t *a, const kcw_labels_t *b);
/* Stable 64-bit FNV-1a fingerprint over the sorted pairs. */
uint64_t kcw_labels_fingerprint(const kcw_labels_t *l);
/* Frees the pairs; the struct is zeroed and reusable. */
void kcw_labels_clear(kcw_labels_t *l);

#endif
