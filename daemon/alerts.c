/* alerts.c: the alert state machine of one rule (see alerts.h).
 *
 * Every evaluation of a rule hands its instances to kcw_alert_set_update()
 * with the evaluation time. The set keeps its alerts in an array sorted by
 * label fingerprint, so matching k instances against n alerts costs
 * O(k log k + k log n + n) rather than O(n * k); equal fingerprints are told
 * apart by comparing the label sets. The transitions are those of Prometheus'
 * rules/alerting.go (Eval):
 *
 *   present, new or resolved      -> a new pending alert, activeAt = now
 *   present, pending for >= `for` -> firing, firedAt = now (for 0: at once)
 *   absent, pending               -> dropped
 *   absent, firing                -> resolved (inactive, resolvedAt = now),
 *                                    unless keep_firing_for still holds it,
 *                                    counted from the first absent evaluation
 *   resolved for > 15 min         -> deleted
 *
 * An update is all or nothing: memory is reserved before the set is touched
 * and duplicate label sets are refused up front. Pure: no I/O, no clock. */
#include "kcwatch/alerts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    kcw_alert_t alert;
    bool seen; /* present in the evaluation being applied */
} entry_t;

struct kcw_alert_set {
    char *rule_name;
    int64_t for_ms;
    int64_t keep_firing_for_ms;
    entry_t **items; /* sorted by alert.fingerprint */
    size_t n;
};

const char *kcw_alert_state_name(kcw_alert_state_t s)
{
    switch (s) {
    case KCW_ALERT_INACTIVE:
        return "inactive";
    case KCW_ALERT_PENDING:
        return "pending";
    case KCW_ALERT_FIRING:
        return "firing";
    }
    return "unknown";
}

void kcw_instance_clear(kcw_instance_t *in)
{
    if (!in)
        return;
    kcw_labels_clear(&in->labels);
    kcw_labels_clear(&in->annotations);
    free(in->trace);
    kcw_shared_str_unref(in->generator_url);
    memset(in, 0, sizeof(*in));
}

static void entry_free(entry_t *e)
{
    if (!e)
        return;
    kcw_labels_clear(&e->alert.labels);
    kcw_labels_clear(&e->alert.annotations);
    free(e->alert.trace);
    kcw_shared_str_unref(e->alert.generator_url);
    free(e);
}

/* Process-wide: a test hook shortens it (kcw_alert_set_resolved_retention). */
static int64_t resolved_retention_ms = KCW_ALERT_RESOLVED_RETENTION_MS;

void kcw_alert_set_resolved_retention(int64_t ms)
{
    resolved_retention_ms = ms > 0 ? ms : KCW_ALERT_RESOLVED_RETENTION_MS;
}

kcw_alert_set_t *kcw_alert_set_new(const char *rule_name, int64_t for_ms,
                                   int64_t keep_firing_for_ms)
{
    kcw_alert_set_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->rule_name = strdup(rule_name ? rule_name : "");
    if (!s->rule_name) {
        free(s);
        return NULL;
    }
    s->for_ms = for_ms > 0 ? for_ms : 0;
    s->keep_firing_for_ms = keep_firing_for_ms > 0 ? keep_firing_for_ms : 0;
    return s;
}

void kcw_alert_set_free(kcw_alert_set_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        entry_free(s->items[i]);
    free(s->items);
    free(s->rule_name);
    free(s);
}

size_t kcw_alert_set_count(const kcw_alert_set_t *s)
{
    return s->n;
}

const kcw_alert_t *kcw_alert_set_at(const kcw_alert_set_t *s, size_t i)
{
    return i < s->n ? &s->items[i]->alert : NULL;
}

size_t kcw_alert_set_count_state(const kcw_alert_set_t *s, kcw_alert_state_t st)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i]->alert.state == st)
            n++;
    return n;
}

/* First index whose fingerprint is >= fp. */
static size_t lower_bound(const kcw_alert_set_t *s, uint64_t fp)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->items[mid]->alert.fingerprint < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static entry_t *find_entry(const kcw_alert_set_t *s, const kcw_labels_t *labels, uint64_t fp)
{
    for (size_t i = lower_bound(s, fp); i < s->n && s->items[i]->alert.fingerprint == fp; i++)
        if (kcw_labels_equal(&s->items[i]->alert.labels, labels))
            return s->items[i];
    return NULL;
}

const kcw_alert_t *kcw_alert_set_find(const kcw_alert_set_t *s, const kcw_labels_t *labels)
{
    entry_t *e = find_entry(s, labels, kcw_labels_fingerprint(labels));
    return e ? &e->alert : NULL;
}

typedef struct keyed {
    uint64_t fp;
    size_t idx;
} keyed_t;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    if (x->fp != y->fp)
        return x->fp < y->fp ? -1 : 1;
    /* by position, so the order (and thus the result) is deterministic */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void clear_all(kcw_instance_t *inst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_instance_clear(&inst[i]);
}

/* Moves an instance's contents into an alert (labels only when take_labels).
 * Annotations equal to the alert's keep the alert's frozen block, so the
 * copies others hold stay shared; new ones are frozen (if that fails they
 * stay a set being built, which works the same, only unshared). */
static void take_instance(kcw_alert_t *a, kcw_instance_t *in, bool take_labels)
{
    if (!kcw_labels_frozen(&a->annotations) || !kcw_labels_equal(&a->annotations, &in->annotations)) {
        kcw_labels_clear(&a->annotations);
        a->annotations = in->annotations;
        memset(&in->annotations, 0, sizeof(in->annotations));
        (void)kcw_labels_freeze(&a->annotations);
    }
    free(a->trace);
    a->trace = in->trace;
    in->trace = NULL;
    if (in->generator_url) {
        kcw_shared_str_unref(a->generator_url);
        a->generator_url = in->generator_url;
        in->generator_url = NULL;
    }
    a->value = in->value;
    if (take_labels) {
        a->labels = in->labels;
        memset(&in->labels, 0, sizeof(in->labels));
        (void)kcw_labels_freeze(&a->labels);
    }
    kcw_instance_clear(in);
}

/* A fresh pending alert, as Prometheus creates for a new (or returning) label set. */
static void start_pending(kcw_alert_t *a, int64_t now_ms)
{
    a->state = KCW_ALERT_PENDING;
    a->active_at_ms = now_ms;
    a->fired_at_ms = 0;
    a->resolved_at_ms = 0;
    a->keep_firing_since_ms = 0;
    a->last_eval_ms = now_ms;
}

int kcw_alert_set_update(kcw_alert_set_t *s, kcw_instance_t *inst, size_t n, int64_t now_ms)
{
    keyed_t *order = NULL;
    entry_t **match = NULL, **fresh = NULL, **merged = NULL;
    size_t n_fresh = 0;
    int rc = 0;

    if (n > 0) {
        order = malloc(n * sizeof(*order));
        match = calloc(n, sizeof(*match));
        if (!order || !match) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (keyed_t){kcw_labels_fingerprint(&inst[i].labels), i};
    if (n > 1)
        qsort(order, n, sizeof(*order), cmp_keyed);

    /* Same label set twice: Prometheus fails the evaluation ("vector contains
     * metrics with the same labelset after applying alert labels"). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n && order[j].fp == order[i].fp; j++)
            if (kcw_labels_equal(&inst[order[i].idx].labels, &inst[order[j].idx].labels)) {
                rc = -EEXIST;
                goto out;
            }

    for (size_t k = 0; k < n; k++) {
        match[k] = find_entry(s, &inst[order[k].idx].labels, order[k].fp);
        if (!match[k])
            n_fresh++;
    }
    /* Reserve everything before changing anything. */
    if (n_fresh > 0) {
        fresh = calloc(n_fresh, sizeof(*fresh));
        if (!fresh) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n_fresh; i++)
            if (!(fresh[i] = calloc(1, sizeof(**fresh)))) {
                rc = -ENOMEM;
                goto out;
            }
    }
    if (s->n + n_fresh > 0) {
        merged = malloc((s->n + n_fresh) * sizeof(*merged));
        if (!merged) {
            rc = -ENOMEM;
            goto out;
        }
    }

    for (size_t i = 0; i < s->n; i++)
        s->items[i]->seen = false;
    size_t used = 0;
    for (size_t k = 0; k < n; k++) {
        kcw_instance_t *in = &inst[order[k].idx];
        entry_t *e = match[k];
        if (e && e->alert.state != KCW_ALERT_INACTIVE) {
            take_instance(&e->alert, in, false);
            e->alert.last_eval_ms = now_ms;
            e->alert.keep_firing_since_ms = 0; /* present again: no longer held */
        } else if (e) {
            /* Resolved and back: a new alert that replaces the resolved one. */
            take_instance(&e->alert, in, false);
            start_pending(&e->alert, now_ms);
        } else {
            e = fresh[used++];
            e->alert.fingerprint = order[k].fp;
            take_instance(&e->alert, in, true);
            start_pending(&e->alert, now_ms);
        }
        e->seen = true;
    }

    /* Absent alerts, then pending -> firing for everything still active. */
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        entry_t *e = s->items[i];
        kcw_alert_t *a = &e->alert;
        if (!e->seen) {
            bool keep_firing = false;
            if (a->state == KCW_ALERT_FIRING && s->keep_firing_for_ms > 0) {
                if (a->keep_firing_since_ms == 0)
                    a->keep_firing_since_ms = now_ms;
                keep_firing = now_ms - a->keep_firing_since_ms < s->keep_firing_for_ms;
            }
            bool drop = a->state == KCW_ALERT_PENDING ||
                        (a->resolved_at_ms != 0 &&
                         now_ms - a->resolved_at_ms > resolved_retention_ms);
            if (drop) {
                entry_free(e);
                continue;
            }
            if (!keep_firing && a->state != KCW_ALERT_INACTIVE) {
                a->state = KCW_ALERT_INACTIVE;
                a->resolved_at_ms = now_ms;
            }
        }
        if (a->state == KCW_ALERT_PENDING && now_ms - a->active_at_ms >= s->for_ms) {
            a->state = KCW_ALERT_FIRING;
            a->fired_at_ms = now_ms;
        }
        s->items[kept++] = e;
    }
    for (size_t i = 0; i < n_fresh; i++) {
        kcw_alert_t *a = &fresh[i]->alert;
        if (now_ms - a->active_at_ms >= s->for_ms) {
            a->state = KCW_ALERT_FIRING;
            a->fired_at_ms = now_ms;
        }
    }

    /* Merge the survivors and the new alerts, both sorted by fingerprint. */
    size_t i = 0, j = 0, m = 0;
    while (i < kept || j < n_fresh) {
        if (j >= n_fresh ||
            (i < kept && s->items[i]->alert.fingerprint <= fresh[j]->alert.fingerprint))
            merged[m++] = s->items[i++];
        else
            merged[m++] = fresh[j++];
    }
    free(s->items);
    s->items = merged;
    s->n = m;
    merged = NULL;
    free(fresh);
    fresh = NULL;
    n_fresh = 0;

out:
    for (size_t k = 0; k < n_fresh; k++)
        free(fresh ? fresh[k] : NULL);
    free(fresh);
    free(merged);
    free(order);
    free(match);
    clear_all(inst, n);
    return rc;
}

int kcw_alert_set_restore(kcw_alert_set_t *s, const kcw_alert_t *a)
{
    uint64_t fp = kcw_labels_fingerprint(&a->labels);
    if (find_entry(s, &a->labels, fp))
        return -EEXIST;
    entry_t *e = calloc(1, sizeof(*e));
    entry_t **items = realloc(s->items, (s->n + 1) * sizeof(*items));
    if (items)
        s->items = items;
    if (!e || !items) {
        free(e);
        return -ENOMEM;
    }
    e->alert = *a;
    e->alert.fingerprint = fp;
    memset(&e->alert.labels, 0, sizeof(e->alert.labels));
    memset(&e->alert.annotations, 0, sizeof(e->alert.annotations));
    e->alert.trace = NULL;
    e->alert.generator_url = NULL;
    if (kcw_labels_copy(&e->alert.labels, &a->labels) < 0 ||
        kcw_labels_copy(&e->alert.annotations, &a->annotations) < 0 ||
        (a->trace && !(e->alert.trace = strdup(a->trace))) ||
        (a->generator_url && !(e->alert.generator_url = kcw_shared_str_new(a->generator_url)))) {
        entry_free(e);
        return -ENOMEM;
    }
    (void)kcw_labels_freeze(&e->alert.labels);
    (void)kcw_labels_freeze(&e->alert.annotations);
    size_t at = lower_bound(s, fp);
    memmove(&s->items[at + 1], &s->items[at], (s->n - at) * sizeof(*s->items));
    s->items[at] = e;
    s->n++;
    return 0;
}
