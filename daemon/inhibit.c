/* inhibit.c: inhibition rules (see inhibit.h).
 *
 * update() walks the firing alerts once and, per rule, records each source
 * (an alert matching the rule's source matchers) under the hash of its
 * `equal` values; the entries are sorted by hash. mutes() hashes the target's
 * equal values per rule whose target matchers it matches and checks only the
 * sources under that hash (comparing the values, since hashes collide).
 * Sources keep their own copy of their equal values, so the index outlives
 * the alerts it was built from. */
#include "kcwatch/inhibit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct source {
    uint64_t hash;
    uint64_t fp;
    kcw_labels_t equal; /* owned: the source's values of the rule's equal labels */
    bool matches_target; /* also matches the rule's target matchers */
} source_t;

typedef struct rule_index {
    source_t *items;
    size_t n, cap;
} rule_index_t;

struct kcw_inhibitor {
    const kcw_inhibit_rule_t *rules;
    size_t n_rules;
    rule_index_t *index; /* one per rule */
    bool valid;
};

void kcw_inhibit_rule_clear(kcw_inhibit_rule_t *r)
{
    kcw_matchers_clear(&r->source);
    kcw_matchers_clear(&r->target);
    for (size_t i = 0; i < r->n_equal; i++)
        free(r->equal[i]);
    free(r->equal);
    memset(r, 0, sizeof(*r));
}

int kcw_inhibit_rule_copy(kcw_inhibit_rule_t *dst, const kcw_inhibit_rule_t *src)
{
    memset(dst, 0, sizeof(*dst));
    if (kcw_matchers_copy(&dst->source, &src->source) < 0 ||
        kcw_matchers_copy(&dst->target, &src->target) < 0)
        goto oom;
    if (src->n_equal) {
        if (!(dst->equal = calloc(src->n_equal, sizeof(*dst->equal))))
            goto oom;
        for (size_t i = 0; i < src->n_equal; i++, dst->n_equal++)
            if (!(dst->equal[i] = strdup(src->equal[i])))
                goto oom;
    }
    return 0;
oom:
    kcw_inhibit_rule_clear(dst);
    return -ENOMEM;
}

static uint64_t equal_hash(const kcw_inhibit_rule_t *r, const kcw_labels_t *l)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < r->n_equal; i++) {
        const char *v = kcw_labels_get(l, r->equal[i]);
        for (const char *p = v ? v : ""; *p; p++) {
            h ^= (unsigned char)*p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff; /* separator: ("ab","") differs from ("a","b") */
        h *= 1099511628211ULL;
    }
    return h;
}

static bool equal_values(const kcw_inhibit_rule_t *r, const kcw_labels_t *a,
                         const kcw_labels_t *b)
{
    for (size_t i = 0; i < r->n_equal; i++) {
        const char *va = kcw_labels_get(a, r->equal[i]), *vb = kcw_labels_get(b, r->equal[i]);
        if (strcmp(va ? va : "", vb ? vb : "") != 0)
            return false;
    }
    return true;
}

static void index_free(kcw_inhibitor_t *inh)
{
    if (inh->index)
        for (size_t i = 0; i < inh->n_rules; i++) {
            for (size_t j = 0; j < inh->index[i].n; j++)
                kcw_labels_clear(&inh->index[i].items[j].equal);
            free(inh->index[i].items);
        }
    free(inh->index);
    inh->index = NULL;
    inh->valid = false;
}

kcw_inhibitor_t *kcw_inhibitor_new(const kcw_inhibit_rule_t *rules, size_t n_rules)
{
    kcw_inhibitor_t *inh = calloc(1, sizeof(*inh));
    if (inh)
        kcw_inhibitor_set_rules(inh, rules, n_rules);
    return inh;
}

void kcw_inhibitor_set_rules(kcw_inhibitor_t *inh, const kcw_inhibit_rule_t *rules,
                             size_t n_rules)
{
    index_free(inh);
    inh->rules = rules;
    inh->n_rules = n_rules;
}

static int by_hash(const void *pa, const void *pb)
{
    const source_t *a = pa, *b = pb;
    return a->hash < b->hash ? -1 : a->hash > b->hash;
}

int kcw_inhibitor_update(kcw_inhibitor_t *inh, const kcw_alert_t *const *alerts, size_t n)
{
    index_free(inh);
    if (inh->n_rules == 0)
        return 0;
    if (!(inh->index = calloc(inh->n_rules, sizeof(*inh->index))))
        return -ENOMEM;
    for (size_t a = 0; a < n; a++) {
        const kcw_alert_t *al = alerts[a];
        if (al->state != KCW_ALERT_FIRING || al->resolved_at_ms != 0)
            continue;
        for (size_t r = 0; r < inh->n_rules; r++) {
            const kcw_inhibit_rule_t *rule = &inh->rules[r];
            if (!kcw_matchers_match(&rule->source, &al->labels))
                continue;
            rule_index_t *ix = &inh->index[r];
            if (ix->n == ix->cap) {
                size_t cap = ix->cap ? ix->cap * 2 : 8;
                source_t *items = realloc(ix->items, cap * sizeof(*items));
                if (!items) {
                    index_free(inh);
                    return -ENOMEM;
                }
                ix->items = items;
                ix->cap = cap;
            }
            source_t *src = &ix->items[ix->n++];
            *src = (source_t){
                .hash = equal_hash(rule, &al->labels),
                .fp = al->fingerprint ? al->fingerprint : kcw_labels_fingerprint(&al->labels),
                .matches_target = kcw_matchers_match(&rule->target, &al->labels),
            };
            for (size_t e = 0; e < rule->n_equal; e++) {
                const char *v = kcw_labels_get(&al->labels, rule->equal[e]);
                if (v && kcw_labels_set(&src->equal, rule->equal[e], v) < 0) {
                    index_free(inh);
                    return -ENOMEM;
                }
            }
        }
    }
    for (size_t r = 0; r < inh->n_rules; r++)
        if (inh->index[r].n > 1)
            qsort(inh->index[r].items, inh->index[r].n, sizeof(source_t), by_hash);
    inh->valid = true;
    return 0;
}

bool kcw_inhibitor_mutes(const kcw_inhibitor_t *inh, const kcw_labels_t *labels, uint64_t fp)
{
    if (!inh || !inh->valid)
        return false;
    for (size_t r = 0; r < inh->n_rules; r++) {
        const kcw_inhibit_rule_t *rule = &inh->rules[r];
        const rule_index_t *ix = &inh->index[r];
        if (ix->n == 0 || !kcw_matchers_match(&rule->target, labels))
            continue;
        bool two_sided = kcw_matchers_match(&rule->source, labels);
        uint64_t h = equal_hash(rule, labels);
        size_t lo = 0, hi = ix->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ix->items[mid].hash < h)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo; i < ix->n && ix->items[i].hash == h; i++) {
            const source_t *s = &ix->items[i];
            if (s->fp == fp || (two_sided && s->matches_target))
                continue;
            if (equal_values(rule, &s->equal, labels))
                return true;
        }
    }
    return false;
}

void kcw_inhibitor_free(kcw_inhibitor_t *inh)
{
    if (!inh)
        return;
    index_free(inh);
    free(inh);
}
