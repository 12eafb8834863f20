/* notify.c: alert grouping, dedup and delivery (see notify.h).
 *
 * Alerts enter through kcw_notifier_update(): every current firing and
 * recently resolved alert, after each evaluation. Each one lands in the group
 * of its route's group_by labels; a group remembers its members and what its
 * last notification said (which fingerprints were firing, which resolved).
 * A group is due group_wait after it appeared, then every group_interval; when
 * due, it is notified if the set of firing alerts grew, if alerts resolved
 * (send_resolved), if everything resolved, or if repeat_interval passed; these
 * are Alertmanager's dispatcher and dedup rules. Resolved members leave the
 * group at each flush and are remembered (fingerprint + resolved time) so the
 * alert set's 15 minute retention does not bring them back; an empty group is
 * deleted. All of that is pure and runs on the caller's clock; one uv_timer
 * only decides when to call it.
 *
 * Healing (remediation.heal_wait): a group's first notification waits while
 * one of its firing alerts carries remediation="healing" (kcwatch's restart
 * is under way or being verified), at most heal_wait + verify_timeout past its
 * due time. A
 * restart that works then resolves the alert as remediation="healed": a group
 * never notified tells that once, as a resolved notification, and nothing
 * fired before it, so a fixed task pages nobody.
 *
 * Failure storms (storm.h): while KcwatchFailureStorm fires for a cluster,
 * the notifications of that cluster's task alerts are muted by a built-in
 * inhibit rule (remediation.storm.inhibit_notifications), and a muted alert's
 * remediation news forces no notification of its group.
 *
 * Notifications leave as webhook payloads on a bounded FIFO, split into one
 * line per (receiver, group): a line sends one notification at a time in
 * order (so a group's notifications arrive in the order they were made) and
 * backs off on its own, with jitter and Retry-After, so a group a receiver
 * keeps rejecting never holds back the others; a receiver has at most
 * RECEIVER_PARALLEL sends in flight. A notification older than the max age is
 * dropped with an ERROR and counted. The log receiver writes its lines at
 * flush time and never queues.
 *
 * With a store (kcw_notifier_set_store) delivery is at-least-once across
 * restarts: each notification is in the outbox, committed with its flush,
 * before its first send, and leaves it only when a receiver answered 2xx or
 * it was dropped; each group's notification log (what was sent, when) is kept
 * so a restart neither pages again what was sent nor forgets to send the
 * resolution. Once its row is committed a notification's payload lives in
 * the outbox alone and each attempt reads it from there, so memory holds the
 * queue's bookkeeping, not its bodies (up to QUEUE_MAX of them, each up to
 * KCW_WEBHOOK_MAX_BYTES). Every attempt goes to the audit log. */
#include "kcwatch/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/inhibit.h"
#include "kcwatch/log.h"
#include "kcwatch/payload.h"
#include "kcwatch/receiver.h"
#include "kcwatch/route.h"
#include "kcwatch/silence.h"
#include "kcwatch/storm.h"
#include "kcwatch/store.h"
#include "kcwatch/url.h"

#define QUEUE_MAX 10000
#define RECEIVER_PARALLEL 4 /* sends in flight per receiver */
#define SPILL_BATCH 64      /* rows committed at a time by a large flush */
#define RESTORED_KEEP_MS (10 * 60 * 1000) /* unclaimed group logs from the store */
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define RETRY_AFTER_MAX_MS (60 * 60 * 1000)
#define GROUP_INTERVAL_MIN_MS 1000 /* 0 would spin the loop */
#define RESPONSE_MAX (64 * 1024)
#define BODY_LOG_MAX 200
#define LOG_LABELS_MAX 16 /* labels per "alert" log line; the rest are counted */
#define LOG_PAIRS 20      /* key/value pairs log_pairs() passes to kcw_log */
#define ROUTES_PER_ALERT 16 /* routes one alert may land on (continue: true) */
#define TRACE_KEPT_LINES 20 /* of an alert's trace, for Slack and PagerDuty */
#define TRACE_KEPT_BYTES 4000
#define HEAL_RECHECK_MS 1000 /* a held group looks again this often */
#define STATE_LABEL "remediation" /* engine.h's KCW_ENGINE_STATE_LABEL */

typedef struct member {
    uint64_t fp;
    uint64_t seen_gen; /* update generation that last listed it */
    kcw_alert_t alert; /* own copy of labels, annotations, the trace's first lines */
} member_t;

typedef struct group {
    uint64_t hash; /* of the route and the group labels: groups are sorted by it */
    const kcw_route_t *route; /* in the current config; re-pointed on reload */
    char *route_id;
    uint64_t id;   /* unique per notifier; deliveries refer to groups by it */
    char *key;     /* Alertmanager groupKey */
    kcw_labels_t labels;
    member_t *members; /* sorted by fingerprint */
    size_t n_members, cap_members;
    /* What the last notification said (Alertmanager's notification log). */
    uint64_t *sent_firing, *sent_resolved; /* sorted */
    size_t n_sent_firing, n_sent_resolved;
    bool notified;
    int64_t last_notified_ms;
    int64_t due_ms;
    size_t outstanding; /* its deliveries queued or in flight */
    bool forced;        /* kcw_notifier_flush_for: send even if unchanged */
    int64_t heal_until_ms; /* first notification held for healing until; 0: not */
} group_t;

/* A resolved alert already dealt with: ignored while updates still list it. */
typedef struct done {
    uint64_t fp;
    int64_t resolved_at_ms;
    uint64_t seen_gen;
} done_t;

struct line;

typedef struct delivery {
    struct delivery *prev, *next; /* the whole queue, oldest first */
    struct delivery *line_next;   /* its line */
    struct line *line;
    kcw_notifier_t *owner; /* NULL when the notifier closed while it was in flight */
    char *receiver;
    char *group_key;
    uint64_t group_hash, group_id;
    char *payload;
    int target; /* which URL of the receiver (receiver.h) */
    size_t n_alerts;
    bool firing;
    bool in_flight;
    int64_t created_ms; /* wall clock: the max age survives a restart */
    int attempts;
    int64_t store_id; /* outbox row, 0 if none */
    bool fresh;       /* its row added in the open round */
    bool stored;      /* its row committed: the payload is read from it */
} delivery_t;

/* The notifications of one group to one receiver: sent in order, one at a
 * time, backing off on their own. */
typedef struct line {
    struct line *prev, *next; /* every line, oldest first */
    struct line *chain;       /* hash bucket */
    uint64_t hash;
    char *receiver, *group_key;
    int target;
    delivery_t *head, *tail;
    bool in_flight;
    int failures; /* consecutive */
    uint64_t next_attempt_mono;
} line_t;

typedef struct receiver_state {
    char *name;
    size_t in_flight;
    size_t queued; /* deliveries in the queue, those in flight included */
    /* Targets (bit target % 64) in a failure or rejection episode: its
     * first failed or rejected delivery, of any group, is logged loud, the
     * others DEBUG until one is accepted. */
    uint64_t failing, rejecting;
} receiver_state_t;

/* A group's notification log read from the store, until its group is made
 * again (or RESTORED_KEEP_MS passed). */
typedef struct restored {
    char *receiver, *key;
    int64_t last_notified_ms;
    uint64_t *firing, *resolved;
    size_t n_firing, n_resolved;
} restored_t;

typedef enum { SEND_NO = 0, SEND_CHANGED, SEND_REPEAT } send_reason_t;

struct kcw_notifier {
    uv_loop_t *loop;
    kcw_http_t *http;
    const kcw_config_t *cfg;
    kcw_notify_event_cb event_cb;
    void *event_arg;
    kcw_notify_sink_cb sink;
    void *sink_arg;

    /* What mutes notifications: silences (the caller's set) and inhibition
     * (the config's rules, indexed at each update). */
    const kcw_silences_t *silences;
    kcw_inhibitor_t *inhibitor;
    kcw_inhibit_rule_t storm_rule; /* the storm alert mutes its cluster's task alerts */
    kcw_inhibitor_t *storm_inhibitor;

    group_t **groups; /* sorted by hash */
    size_t n_groups, cap_groups;
    done_t *done; /* sorted by (fp, resolved_at_ms) */
    size_t n_done, cap_done;
    uint64_t gen;
    uint64_t next_group_id;

    delivery_t *head, *tail;
    size_t n_queue;
    size_t n_fresh; /* deliveries whose rows are not committed yet (the queue's tail) */
    size_t dropped_total, dropped_pending_log;
    receiver_state_t *receivers;
    size_t n_receivers;
    line_t *lines, *lines_tail;
    line_t **line_buckets;
    size_t n_lines, n_line_buckets;
    int64_t max_age_ms;
    uint64_t expired_total;

    kcw_store_t *store; /* not owned; NULL: nothing survives a restart */
    kcw_notify_log_cb log_cb; /* what reached a receiver, for other instances */
    void *log_arg;
    restored_t *restored;
    size_t n_restored;
    int64_t restored_until_ms;

    /* update()'s clock at a loop time, so timers can tell "now" in it. */
    int64_t clock_wall_ms;
    uint64_t clock_mono_ms;
    uint64_t rng;

    uv_timer_t group_timer, retry_timer;
    int handles_open;
    bool closing;
    bool http_gone; /* the client is closing: nothing more can be sent */
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* --- small helpers ------------------------------------------------------- */

static int64_t clock_now(const kcw_notifier_t *n)
{
    return n->clock_wall_ms + (int64_t)(uv_now(n->loop) - n->clock_mono_ms);
}

/* xorshift64*: jitter only, so quality hardly matters; per notifier so there
 * is no process-wide state. */
static double random01(kcw_notifier_t *n)
{
    n->rng ^= n->rng >> 12;
    n->rng ^= n->rng << 25;
    n->rng ^= n->rng >> 27;
    return (double)((n->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* One attempt's outcome (result: sent, logged, failed, dropped) to the
 * callback and the audit log. */
static void event(kcw_notifier_t *n, const char *receiver, const char *group_key,
                  const char *result, long status, const char *detail)
{
    bool ok = strcmp(result, "sent") == 0 || strcmp(result, "logged") == 0;
    if (n->store) {
        kcw_audit_t a = {.time_ms = clock_now(n),
                         .kind = KCW_AUDIT_NOTIFY,
                         .task = -1,
                         .receiver = receiver,
                         .group_key = group_key,
                         .status = result,
                         .http_status = status,
                         .outcome = detail};
        kcw_store_audit_add(n->store, &a);
    }
    if (n->event_cb)
        n->event_cb(receiver, group_key, ok, status, detail, n->event_arg);
}

static bool alert_firing(const kcw_alert_t *a)
{
    return a->state == KCW_ALERT_FIRING;
}

static bool alert_resolved(const kcw_alert_t *a)
{
    return a->state == KCW_ALERT_INACTIVE && a->resolved_at_ms != 0;
}

static uint64_t alert_fp(const kcw_alert_t *a)
{
    return a->fingerprint != 0 ? a->fingerprint : kcw_labels_fingerprint(&a->labels);
}

static const char *group_receiver_name(const group_t *g)
{
    return g->route->receiver ? g->route->receiver : "";
}

static const kcw_receiver_conf_t *group_receiver(const kcw_notifier_t *n, const group_t *g)
{
    return kcw_config_receiver(n->cfg, g->route->receiver);
}

static int64_t group_interval_ms(const kcw_notifier_t *n, const group_t *g)
{
    int64_t v = kcw_receiver_interval_ms(group_receiver(n, g), g->route->group_interval_ms);
    return v < GROUP_INTERVAL_MIN_MS ? GROUP_INTERVAL_MIN_MS : v;
}

/* Sorted uint64 set helpers. */
static bool fp_contains(const uint64_t *set, size_t n, uint64_t fp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] == fp)
            return true;
        if (set[mid] < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool fp_subset(const uint64_t *sub, size_t n_sub, const uint64_t *set, size_t n_set)
{
    for (size_t i = 0; i < n_sub; i++)
        if (!fp_contains(set, n_set, sub[i]))
            return false;
    return true;
}

/* --- grouping ------------------------------------------------------------ */

static bool grouped_on(const kcw_route_t *rt, const char *name)
{
    if (rt->group_by_all)
        return true;
    for (size_t i = 0; i < rt->n_group_by; i++)
        if (strcmp(rt->group_by[i], name) == 0)
            return true;
    return false;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The labels an alert is grouped by on rt: its own plus the external labels
 * it lacks that rt groups by, as Alertmanager sees the alert. l itself when
 * none is added (the usual case: no copy), else *view, which the caller
 * zeroes once and clears when done; NULL when out of memory. */
static const kcw_labels_t *group_view(const kcw_notifier_t *n, const kcw_route_t *rt,
                                      const kcw_labels_t *l, kcw_labels_t *view)
{
    const kcw_labels_t *ext = &n->cfg->external_labels;
    bool copied = false;
    kcw_labels_clear(view);
    for (size_t i = 0; i < ext->n; i++) {
        const kcw_label_t *e = &ext->items[i];
        if (!grouped_on(rt, e->name) || kcw_labels_get(l, e->name))
            continue;
        if ((!copied && kcw_labels_copy(view, l) < 0) ||
            kcw_labels_set(view, e->name, e->value) < 0) {
            kcw_labels_clear(view);
            return NULL;
        }
        copied = true;
    }
    return copied ? view : l;
}

/* Hash of the route and the alert's group labels, computed without building
 * them. */
static uint64_t group_hash(const kcw_route_t *rt, const kcw_labels_t *l)
{
    uint64_t h = fnv1a(14695981039346656037ULL, rt->id, strlen(rt->id) + 1);
    for (size_t i = 0; i < l->n; i++) {
        if (!grouped_on(rt, l->items[i].name))
            continue;
        h = fnv1a(h, l->items[i].name, strlen(l->items[i].name) + 1);
        h = fnv1a(h, l->items[i].value, strlen(l->items[i].value) + 1);
    }
    return h;
}

static bool group_matches(const group_t *g, const kcw_route_t *rt, const kcw_labels_t *l)
{
    if (g->route != rt)
        return false;
    size_t matched = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!grouped_on(rt, l->items[i].name))
            continue;
        const char *v = kcw_labels_get(&g->labels, l->items[i].name);
        if (!v || strcmp(v, l->items[i].value) != 0)
            return false;
        matched++;
    }
    return matched == g->labels.n;
}

/* First index whose hash is >= h. */
static size_t group_lower_bound(const kcw_notifier_t *n, uint64_t h)
{
    size_t lo = 0, hi = n->n_groups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (n->groups[mid]->hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static group_t *group_find(const kcw_notifier_t *n, const kcw_route_t *rt, uint64_t h,
                           const kcw_labels_t *alert_labels)
{
    for (size_t i = group_lower_bound(n, h); i < n->n_groups && n->groups[i]->hash == h; i++)
        if (group_matches(n->groups[i], rt, alert_labels))
            return n->groups[i];
    return NULL;
}

static group_t *group_find_id(const kcw_notifier_t *n, uint64_t h, uint64_t id)
{
    for (size_t i = group_lower_bound(n, h); i < n->n_groups && n->groups[i]->hash == h; i++)
        if (n->groups[i]->id == id)
            return n->groups[i];
    return NULL;
}

/* Appends s to buf, growing it; false on OOM. */
static bool buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t sl)
{
    if (*len + sl + 1 > *cap) {
        size_t ncap = (*cap ? *cap : 64);
        while (ncap < *len + sl + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return false;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, sl);
    *len += sl;
    (*buf)[*len] = '\0';
    return true;
}

/* Alertmanager's groupKey: the route's key ("{}" for the root,
 * "{}/{severity=\"critical\"}" below it), ":", then the group labels as
 * {name="value", ...}, values quoted the way Go's %q does for the characters
 * that need it. */
static char *group_key_new(const kcw_route_t *rt, const kcw_labels_t *labels)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bool ok = buf_add(&buf, &len, &cap, rt->key, strlen(rt->key)) &&
              buf_add(&buf, &len, &cap, ":{", 2);
    for (size_t i = 0; ok && i < labels->n; i++) {
        const char *name = labels->items[i].name;
        if (i > 0)
            ok = ok && buf_add(&buf, &len, &cap, ", ", 2);
        ok = ok && buf_add(&buf, &len, &cap, name, strlen(name)) &&
             buf_add(&buf, &len, &cap, "=\"", 2);
        for (const unsigned char *p = (const unsigned char *)labels->items[i].value; ok && *p;
             p++) {
            char esc[8];
            if (*p == '"' || *p == '\\')
                snprintf(esc, sizeof(esc), "\\%c", *p);
            else if (*p == '\n')
                snprintf(esc, sizeof(esc), "\\n");
            else if (*p == '\t')
                snprintf(esc, sizeof(esc), "\\t");
            else if (*p < 0x20 || *p == 0x7f)
                snprintf(esc, sizeof(esc), "\\x%02x", *p);
            else
                esc[0] = (char)*p, esc[1] = '\0';
            ok = buf_add(&buf, &len, &cap, esc, strlen(esc));
        }
        ok = ok && buf_add(&buf, &len, &cap, "\"", 1);
    }
    ok = ok && buf_add(&buf, &len, &cap, "}", 1);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void member_clear(member_t *m)
{
    kcw_labels_clear(&m->alert.labels);
    kcw_labels_clear(&m->alert.annotations);
    free(m->alert.trace);
    m->alert.trace = NULL;
    kcw_shared_str_unref(m->alert.generator_url);
    m->alert.generator_url = NULL;
}

static void group_free(group_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_members; i++)
        member_clear(&g->members[i]);
    free(g->members);
    free(g->sent_firing);
    free(g->sent_resolved);
    kcw_labels_clear(&g->labels);
    free(g->key);
    free(g->route_id);
    free(g);
}

/* The group labels of an alert and their groupKey. 0 or -ENOMEM. */
static int group_identity(const kcw_route_t *rt, const kcw_labels_t *alert_labels,
                          kcw_labels_t *labels, char **key)
{
    memset(labels, 0, sizeof(*labels));
    *key = NULL;
    if (kcw_route_group_labels(rt, alert_labels, labels) < 0)
        return -ENOMEM;
    if (!(*key = group_key_new(rt, labels))) {
        kcw_labels_clear(labels);
        return -ENOMEM;
    }
    return 0;
}

static void restored_clear(restored_t *r)
{
    free(r->receiver);
    free(r->key);
    free(r->firing);
    free(r->resolved);
}

static long restored_find(const kcw_notifier_t *n, const char *receiver, const char *key)
{
    for (size_t i = 0; i < n->n_restored; i++)
        if (strcmp(n->restored[i].key, key) == 0 && strcmp(n->restored[i].receiver, receiver) == 0)
            return (long)i;
    return -1;
}

/* A new group takes over what the store remembered of it. */
static void restored_claim(kcw_notifier_t *n, group_t *g)
{
    long at = restored_find(n, group_receiver_name(g), g->key);
    if (at < 0)
        return;
    restored_t *r = &n->restored[at];
    g->notified = true;
    g->last_notified_ms = r->last_notified_ms;
    g->sent_firing = r->firing;
    g->n_sent_firing = r->n_firing;
    g->sent_resolved = r->resolved;
    g->n_sent_resolved = r->n_resolved;
    r->firing = r->resolved = NULL;
    restored_clear(r);
    n->restored[at] = n->restored[--n->n_restored];
}

/* Whether the store remembers telling a receiver that this alert fired:
 * then its resolution is owed even though no group holds it yet. */
static bool restored_sent_firing(const kcw_notifier_t *n, const kcw_route_t *rt,
                                 const kcw_labels_t *alert_labels, uint64_t fp)
{
    kcw_labels_t labels;
    char *key = NULL;
    if (n->n_restored == 0 || group_identity(rt, alert_labels, &labels, &key) < 0)
        return false;
    long at = restored_find(n, rt->receiver ? rt->receiver : "", key);
    bool sent = at >= 0 && fp_contains(n->restored[at].firing, n->restored[at].n_firing, fp);
    kcw_labels_clear(&labels);
    free(key);
    return sent;
}

/* Forgets remembered groups nobody claimed (their alerts did not return). */
static void restored_expire(kcw_notifier_t *n, int64_t now)
{
    if (n->n_restored == 0 || now < n->restored_until_ms)
        return;
    kcw_store_begin(n->store);
    for (size_t i = 0; i < n->n_restored; i++) {
        if (n->store)
            kcw_store_group_delete(n->store, n->restored[i].receiver, n->restored[i].key);
        restored_clear(&n->restored[i]);
    }
    kcw_store_commit(n->store);
    free(n->restored);
    n->restored = NULL;
    n->n_restored = 0;
}

/* The group's notification log as a store row (pointers into g). */
static kcw_store_group_t group_row(const kcw_notifier_t *n, const group_t *g)
{
    (void)n;
    return (kcw_store_group_t){.receiver = group_receiver_name(g),
                               .group_key = g->key,
                               .last_notified_ms = g->last_notified_ms,
                               .sent_firing = g->sent_firing,
                               .n_sent_firing = g->n_sent_firing,
                               .sent_resolved = g->sent_resolved,
                               .n_sent_resolved = g->n_sent_resolved};
}

/* Saves what the group's last notification said (the notification log). */
static void group_save(kcw_notifier_t *n, const group_t *g)
{
    if (!n->store || !g->notified)
        return;
    kcw_store_group_t row = group_row(n, g);
    kcw_store_group_put(n->store, &row);
}

/* Hands the group's notification log to the log hook (ha: other instances
 * adopt it when they take the group's alerts over). */
static void group_publish(kcw_notifier_t *n, const group_t *g)
{
    kcw_store_group_t row = group_row(n, g);
    n->log_cb(&row, n->log_arg);
}

static group_t *group_new(kcw_notifier_t *n, const kcw_route_t *rt, uint64_t h,
                          const kcw_labels_t *alert_labels, int64_t now)
{
    if (n->n_groups == n->cap_groups) {
        size_t ncap = n->cap_groups ? n->cap_groups * 2 : 16;
        group_t **ng = realloc(n->groups, ncap * sizeof(*ng));
        if (!ng)
            return NULL;
        n->groups = ng;
        n->cap_groups = ncap;
    }
    group_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    if (group_identity(rt, alert_labels, &g->labels, &g->key) < 0 ||
        !(g->route_id = strdup(rt->id))) {
        group_free(g);
        return NULL;
    }
    (void)kcw_labels_freeze(&g->labels); /* one block instead of 1 + n */
    g->route = rt;
    g->hash = h;
    g->id = ++n->next_group_id;
    g->due_ms = now + (rt->group_wait_ms > 0 ? rt->group_wait_ms : 0);
    restored_claim(n, g);
    size_t at = group_lower_bound(n, h);
    memmove(&n->groups[at + 1], &n->groups[at], (n->n_groups - at) * sizeof(*n->groups));
    n->groups[at] = g;
    n->n_groups++;
    return g;
}

static void group_delete(kcw_notifier_t *n, size_t at)
{
    group_free(n->groups[at]);
    memmove(&n->groups[at], &n->groups[at + 1], (n->n_groups - at - 1) * sizeof(*n->groups));
    n->n_groups--;
}

static void groups_clear(kcw_notifier_t *n)
{
    for (size_t i = 0; i < n->n_groups; i++)
        group_free(n->groups[i]);
    n->n_groups = 0;
}

static member_t *member_find(group_t *g, uint64_t fp, size_t *insert_at)
{
    size_t lo = 0, hi = g->n_members;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->members[mid].fp == fp)
            return &g->members[mid];
        if (g->members[mid].fp < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    *insert_at = lo;
    return NULL;
}

/* Takes a's state, times and annotations into m (labels are the same but
 * for the remediation state). Labels and annotations are references to the
 * engine's frozen ones where they are (labels.h), not copies. */
static int member_assign(member_t *m, const kcw_alert_t *a)
{
    if (kcw_labels_assign(&m->alert.labels, &a->labels) < 0 ||
        kcw_labels_assign(&m->alert.annotations, &a->annotations) < 0)
        return -ENOMEM;
    /* Only the first lines: what Slack and PagerDuty show. Copied again only
     * when they changed. */
    char *trace = kcw_payload_first_lines(a->trace, TRACE_KEPT_LINES, TRACE_KEPT_BYTES);
    if (a->trace && !trace)
        return -ENOMEM;
    if (!trace || !m->alert.trace || strcmp(trace, m->alert.trace) != 0) {
        free(m->alert.trace);
        m->alert.trace = trace;
    } else {
        free(trace);
    }
    if (a->generator_url && a->generator_url != m->alert.generator_url) {
        kcw_shared_str_unref(m->alert.generator_url);
        m->alert.generator_url = kcw_shared_str_ref(a->generator_url);
    }
    m->alert.value = a->value;
    m->alert.state = a->state;
    m->alert.active_at_ms = a->active_at_ms;
    m->alert.fired_at_ms = a->fired_at_ms;
    m->alert.resolved_at_ms = a->resolved_at_ms;
    m->alert.last_eval_ms = a->last_eval_ms;
    m->alert.keep_firing_since_ms = a->keep_firing_since_ms;
    return 0;
}

static int member_upsert(group_t *g, const kcw_alert_t *a, uint64_t fp, uint64_t gen)
{
    size_t at = 0;
    member_t *m = member_find(g, fp, &at);
    if (m) {
        if (m->seen_gen == gen) {
            /* Listed twice in one update: an instance that came back after
             * resolving sits next to its resolved predecessor. The current
             * one wins: firing over resolved, else the later resolution. */
            bool newer = (alert_firing(a) && !alert_firing(&m->alert)) ||
                         (alert_resolved(a) && alert_resolved(&m->alert) &&
                          a->resolved_at_ms > m->alert.resolved_at_ms);
            if (!newer)
                return 0;
        }
        m->seen_gen = gen;
        return member_assign(m, a);
    }
    if (g->n_members == g->cap_members) {
        /* From 1: most groups of a storm hold one or two alerts. */
        size_t ncap = g->cap_members ? g->cap_members * 2 : 1;
        member_t *nm = realloc(g->members, ncap * sizeof(*nm));
        if (!nm)
            return -ENOMEM;
        g->members = nm;
        g->cap_members = ncap;
    }
    member_t fresh;
    memset(&fresh, 0, sizeof(fresh));
    fresh.fp = fp;
    fresh.seen_gen = gen;
    fresh.alert.fingerprint = fp;
    if (member_assign(&fresh, a) < 0) {
        member_clear(&fresh);
        return -ENOMEM;
    }
    memmove(&g->members[at + 1], &g->members[at], (g->n_members - at) * sizeof(*g->members));
    g->members[at] = fresh;
    g->n_members++;
    return 0;
}

static long done_search(const kcw_notifier_t *n, uint64_t fp, int64_t resolved_at)
{
    size_t lo = 0, hi = n->n_done;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const done_t *d = &n->done[mid];
        if (d->fp == fp && d->resolved_at_ms == resolved_at)
            return (long)mid;
        if (d->fp < fp || (d->fp == fp && d->resolved_at_ms < resolved_at))
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static void done_add(kcw_notifier_t *n, uint64_t fp, int64_t resolved_at)
{
    long at = done_search(n, fp, resolved_at);
    if (at >= 0)
        return;
    if (n->n_done == n->cap_done) {
        size_t ncap = n->cap_done ? n->cap_done * 2 : 16;
        done_t *nd = realloc(n->done, ncap * sizeof(*nd));
        /* Without the entry the alert is only skipped again on the next
         * update (it has no group to join), so OOM costs time, not a resend. */
        if (!nd)
            return;
        n->done = nd;
        n->cap_done = ncap;
    }
    size_t pos = (size_t)(-at - 1);
    memmove(&n->done[pos + 1], &n->done[pos], (n->n_done - pos) * sizeof(*n->done));
    n->done[pos] = (done_t){fp, resolved_at, n->gen};
    n->n_done++;
}

/* Forgets resolved alerts the last update no longer listed. */
static void done_prune(kcw_notifier_t *n)
{
    size_t w = 0;
    for (size_t i = 0; i < n->n_done; i++)
        if (n->done[i].seen_gen == n->gen)
            n->done[w++] = n->done[i];
    n->n_done = w;
}

/* --- delivery queue ------------------------------------------------------ */

static void delivery_free(delivery_t *d)
{
    if (!d)
        return;
    free(d->receiver);
    free(d->group_key);
    free(d->payload);
    free(d);
}

static receiver_state_t *receiver_state(kcw_notifier_t *n, const char *name, bool create)
{
    for (size_t i = 0; i < n->n_receivers; i++)
        if (strcmp(n->receivers[i].name, name) == 0)
            return &n->receivers[i];
    if (!create)
        return NULL;
    receiver_state_t *nr = realloc(n->receivers, (n->n_receivers + 1) * sizeof(*nr));
    if (!nr)
        return NULL;
    n->receivers = nr;
    receiver_state_t *r = &n->receivers[n->n_receivers];
    memset(r, 0, sizeof(*r));
    if (!(r->name = strdup(name)))
        return NULL;
    n->n_receivers++;
    return r;
}

static uint64_t line_hash(const char *receiver, const char *group_key, int target)
{
    uint64_t h = fnv1a(14695981039346656037ULL, receiver, strlen(receiver) + 1);
    h = fnv1a(h, group_key, strlen(group_key) + 1);
    return fnv1a(h, (const char *)&target, sizeof(target));
}

static void lines_grow(kcw_notifier_t *n)
{
    size_t nb = n->n_line_buckets ? n->n_line_buckets * 2 : 64;
    line_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (line_t *l = n->lines; l; l = l->next) {
        size_t at = (size_t)(l->hash & (nb - 1));
        l->chain = b[at];
        b[at] = l;
    }
    free(n->line_buckets);
    n->line_buckets = b;
    n->n_line_buckets = nb;
}

/* The line of (receiver, group_key, target), made when create; NULL on OOM.
 * Each URL of a receiver (the members of an Alertmanager pair) has its own
 * line: one member down never holds back the other. */
static line_t *line_get(kcw_notifier_t *n, const char *receiver, const char *group_key,
                        int target, bool create)
{
    uint64_t h = line_hash(receiver, group_key, target);
    if (n->n_line_buckets > 0)
        for (line_t *l = n->line_buckets[h & (n->n_line_buckets - 1)]; l; l = l->chain)
            if (l->hash == h && l->target == target && strcmp(l->group_key, group_key) == 0 &&
                strcmp(l->receiver, receiver) == 0)
                return l;
    if (!create)
        return NULL;
    if (n->n_lines >= n->n_line_buckets * 2)
        lines_grow(n);
    if (n->n_line_buckets == 0)
        return NULL;
    line_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->receiver = strdup(receiver)) || !(l->group_key = strdup(group_key))) {
        if (l)
            free(l->receiver);
        free(l);
        return NULL;
    }
    l->hash = h;
    l->target = target;
    size_t at = (size_t)(h & (n->n_line_buckets - 1));
    l->chain = n->line_buckets[at];
    n->line_buckets[at] = l;
    l->prev = n->lines_tail;
    if (n->lines_tail)
        n->lines_tail->next = l;
    else
        n->lines = l;
    n->lines_tail = l;
    n->n_lines++;
    return l;
}

static void line_free(line_t *l)
{
    free(l->receiver);
    free(l->group_key);
    free(l);
}

/* Forgets a line with nothing queued or in flight. */
static void line_release(kcw_notifier_t *n, line_t *l)
{
    if (!l || l->head || l->in_flight)
        return;
    line_t **link = &n->line_buckets[l->hash & (n->n_line_buckets - 1)];
    while (*link && *link != l)
        link = &(*link)->chain;
    if (*link)
        *link = l->chain;
    if (l->prev)
        l->prev->next = l->next;
    else
        n->lines = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        n->lines_tail = l->prev;
    n->n_lines--;
    line_free(l);
}

static void lines_clear(kcw_notifier_t *n)
{
    line_t *next;
    for (line_t *l = n->lines; l; l = next) {
        next = l->next;
        line_free(l);
    }
    n->lines = n->lines_tail = NULL;
    n->n_lines = 0;
    free(n->line_buckets);
    n->line_buckets = NULL;
    n->n_line_buckets = 0;
}

static void queue_unlink(kcw_notifier_t *n, delivery_t *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        n->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        n->tail = d->prev;
    d->prev = d->next = NULL;
    n->n_queue--;
    if (d->fresh) {
        d->fresh = false;
        n->n_fresh--;
    }
    line_t *l = d->line;
    if (l) {
        /* Usually d is the head; a queue-full drop may take a later one. */
        delivery_t **link = &l->head, *before = NULL;
        while (*link && *link != d) {
            before = *link;
            link = &(*link)->line_next;
        }
        if (*link)
            *link = d->line_next;
        if (l->tail == d)
            l->tail = before;
        d->line = NULL;
        d->line_next = NULL;
        line_release(n, l);
    }
    receiver_state_t *r = receiver_state(n, d->receiver, false);
    if (r)
        r->queued--;
}

/* Takes d out of the queue (and the outbox) for good: its group may notify
 * again. */
static void delivery_finish(kcw_notifier_t *n, delivery_t *d, bool delivered)
{
    queue_unlink(n, d);
    if (n->store && d->store_id > 0)
        kcw_store_outbox_delete(n->store, d->store_id);
    group_t *g = group_find_id(n, d->group_hash, d->group_id);
    if (g) {
        if (g->outstanding > 0)
            g->outstanding--;
        /* repeat_interval counts from the send that reached the receiver. */
        if (delivered) {
            g->last_notified_ms = clock_now(n);
            group_save(n, g);
            /* Only once nothing of the group is still on its way: then the
             * log says exactly what reached the receiver. */
            if (n->log_cb && g->outstanding == 0)
                group_publish(n, g);
        }
    }
    delivery_free(d);
}

/* Queues d behind its group's earlier notifications. false on OOM (d is
 * not queued then). */
static bool queue_push(kcw_notifier_t *n, delivery_t *d)
{
    if (n->n_queue >= QUEUE_MAX) {
        /* Bounded: the oldest waiting notification is the one most likely
         * superseded by a later one of the same group. */
        delivery_t *old = n->head;
        while (old && old->in_flight)
            old = old->next;
        if (old) {
            event(n, old->receiver, old->group_key, "dropped", 0, "dropped: queue full");
            delivery_finish(n, old, false);
            n->dropped_total++;
            n->dropped_pending_log++;
        }
    }
    line_t *l = line_get(n, d->receiver, d->group_key, d->target, true);
    receiver_state_t *r = l ? receiver_state(n, d->receiver, true) : NULL;
    if (!r) {
        line_release(n, l);
        return false;
    }
    d->prev = n->tail;
    if (n->tail)
        n->tail->next = d;
    else
        n->head = d;
    n->tail = d;
    n->n_queue++;
    d->line = l;
    if (l->tail)
        l->tail->line_next = d;
    else
        l->head = d;
    l->tail = d;
    r->queued++;
    return true;
}

static void log_dropped(kcw_notifier_t *n)
{
    if (n->dropped_pending_log == 0)
        return;
    kcw_log(KCW_LOG_ERROR, "notification queue full, oldest notifications dropped",
            KCW_LOG_INT("dropped", n->dropped_pending_log),
            KCW_LOG_INT("dropped_total", n->dropped_total), KCW_LOG_INT("queue_max", QUEUE_MAX),
            NULL);
    n->dropped_pending_log = 0;
}

/* kcw_log takes a fixed argument list; kv holds up to LOG_PAIRS pairs ended
 * by NULL, and every slot after that NULL is ignored by kcw_log. */
static void log_pairs(kcw_log_level_t level, const char *msg, const char *const *kv)
{
    kcw_log(level, msg, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6], kv[7], kv[8], kv[9],
            kv[10], kv[11], kv[12], kv[13], kv[14], kv[15], kv[16], kv[17], kv[18], kv[19], kv[20],
            kv[21], kv[22], kv[23], kv[24], kv[25], kv[26], kv[27], kv[28], kv[29], kv[30], kv[31],
            kv[32], kv[33], kv[34], kv[35], kv[36], kv[37], kv[38], kv[39], NULL);
}

static void log_alert(const kcw_alert_t *a)
{
    const char *kv[2 * LOG_PAIRS + 1] = {0};
    size_t k = 0, shown = 0, omitted = 0;
    char omitted_s[24];
    kv[k++] = "status";
    kv[k++] = alert_firing(a) ? "firing" : "resolved";
    const char *alertname = kcw_labels_get(&a->labels, "alertname");
    kv[k++] = "alertname";
    kv[k++] = alertname ? alertname : "";
    for (size_t i = 0; i < a->labels.n; i++) {
        if (strcmp(a->labels.items[i].name, "alertname") == 0)
            continue;
        if (shown == LOG_LABELS_MAX) {
            omitted++;
            continue;
        }
        kv[k++] = a->labels.items[i].name;
        kv[k++] = a->labels.items[i].value;
        shown++;
    }
    const char *summary = kcw_labels_get(&a->annotations, "summary");
    if (summary) {
        kv[k++] = "summary";
        kv[k++] = summary;
    }
    if (omitted > 0) {
        snprintf(omitted_s, sizeof(omitted_s), "%zu", omitted);
        kv[k++] = KCW_LOG_TYPE_INT "labels_omitted";
        kv[k++] = omitted_s;
    }
    kv[k] = NULL;
    log_pairs(KCW_LOG_INFO, "alert", kv);
}

static void log_sent(const char *receiver, const char *group_key, bool firing, size_t n_alerts)
{
    kcw_log(KCW_LOG_INFO, "notification sent", "receiver", receiver, "group", group_key, "status",
            firing ? "firing" : "resolved", KCW_LOG_INT("alerts", n_alerts), NULL);
}

static void dispatch(kcw_notifier_t *n);
static void arm_retry_timer(kcw_notifier_t *n);

/* Drops d when it has waited longer than the max age: an ERROR and a count,
 * never silently. true when dropped. */
static bool delivery_expire(kcw_notifier_t *n, delivery_t *d)
{
    int64_t age = clock_now(n) - d->created_ms;
    if (d->in_flight || age < n->max_age_ms)
        return false;
    char age_s[32], max_s[32];
    snprintf(age_s, sizeof(age_s), "%llds", (long long)(age / 1000));
    snprintf(max_s, sizeof(max_s), "%llds", (long long)(n->max_age_ms / 1000));
    kcw_log(KCW_LOG_ERROR, "notification dropped: older than the max age", "receiver",
            d->receiver, "group", d->group_key, "age", age_s, "max_age", max_s,
            KCW_LOG_INT("attempts", d->attempts), NULL);
    n->expired_total++;
    event(n, d->receiver, d->group_key, "dropped", 0, "dropped: older than the max age");
    delivery_finish(n, d, false);
    return true;
}

/* true for the first failure (or rejection) of d's target since it last
 * accepted a notification: the one line an episode logs loud. */
static bool episode_first(kcw_notifier_t *n, const delivery_t *d, bool rejection)
{
    receiver_state_t *r = receiver_state(n, d->receiver, false);
    if (!r)
        return true;
    uint64_t bit = 1ull << ((unsigned)d->target & 63u);
    uint64_t *set = rejection ? &r->rejecting : &r->failing;
    bool first = !(*set & bit);
    *set |= bit;
    return first;
}

static void episode_end(kcw_notifier_t *n, const delivery_t *d)
{
    receiver_state_t *r = receiver_state(n, d->receiver, false);
    uint64_t bit = 1ull << ((unsigned)d->target & 63u);
    if (r) {
        r->failing &= ~bit;
        r->rejecting &= ~bit;
    }
}

/* A retryable failure: d's group backs off and d stays first in its line;
 * other groups, even of the same receiver, go on. */
static void delivery_failed(kcw_notifier_t *n, delivery_t *d, long status, int64_t retry_after,
                            const char *detail)
{
    line_t *l = d->line;
    bool first = episode_first(n, d, false);
    int64_t delay = 0;
    if (l) {
        if (l->failures < 1000)
            l->failures++;
        delay = kcw_notify_backoff_ms(l->failures, retry_after, random01(n));
        l->next_attempt_mono = uv_now(n->loop) + (uint64_t)delay;
    }
    if (d->attempts < 1000000)
        d->attempts++;
    if (n->store && d->store_id > 0)
        kcw_store_outbox_retry(n->store, d->store_id, d->attempts, clock_now(n) + delay);
    char delay_s[24];
    snprintf(delay_s, sizeof(delay_s), "%lldms", (long long)delay);
    /* Loud once per episode: the retries of a group whose receiver stays
     * down, and the failures of its other groups, are DEBUG until a
     * delivery to that URL succeeds again. */
    kcw_log(!first || (l && l->failures > 1) ? KCW_LOG_DEBUG : KCW_LOG_WARN,
            "notification failed, will retry",
            "receiver", d->receiver, "group", d->group_key, KCW_LOG_INT("http_status", status),
            "error", detail, "retry_in", delay_s, NULL);
    event(n, d->receiver, d->group_key, "failed", status, detail);
    delivery_expire(n, d);
}

/* A response from which the receiver will never take this notification.
 * config_error: Slack or PagerDuty said the URL, key or payload is wrong (its
 * answer, e.g. PagerDuty's error list, is in the log line). */
static void delivery_rejected(kcw_notifier_t *n, delivery_t *d, long status, const char *body,
                              bool config_error)
{
    char snippet[BODY_LOG_MAX + 1];
    size_t cut = kcw_payload_utf8_cut(body ? body : "", body ? strlen(body) : 0, BODY_LOG_MAX);
    snprintf(snippet, sizeof(snippet), "%.*s", (int)cut, body ? body : "");
    /* Loud once per episode: a receiver that keeps refusing (every
     * re-send to an Alertmanager, every group) logs DEBUG after the first. */
    kcw_log(episode_first(n, d, true) ? KCW_LOG_ERROR : KCW_LOG_DEBUG,
            config_error ? "notification rejected: configuration error, not retried"
                         : "notification rejected, dropped",
            "receiver", d->receiver, "group", d->group_key, KCW_LOG_INT("http_status", status),
            "body", snippet, NULL);
    event(n, d->receiver, d->group_key, "dropped", status, snippet);
    if (d->line)
        d->line->failures = 0;
    delivery_finish(n, d, false);
}

static void on_response(const kcw_http_resp_t *resp, void *arg)
{
    delivery_t *d = arg;
    kcw_notifier_t *n = d->owner;
    if (!n) {
        delivery_free(d);
        return;
    }
    receiver_state_t *r = receiver_state(n, d->receiver, false);
    if (r && d->in_flight && r->in_flight > 0)
        r->in_flight--;
    if (d->line)
        d->line->in_flight = false;
    d->in_flight = false;
    if (resp->status == 0 && strcmp(resp->error, "cancelled") == 0) {
        /* kcw_http_close ran first (shutdown): keep it queued (and in the
         * outbox); close accounts for it. Sending anything more would reach
         * a closing client. */
        n->http_gone = true;
        return;
    }
    kcw_store_begin(n->store);
    /* A transfer that failed after the status line (reset mid-body, cut
     * short) proves nothing was taken: retry it like no answer. */
    bool broken = resp->status == 0 || resp->curl_code != 0;
    kcw_receiver_verdict_t res =
        broken ? KCW_RECEIVER_RETRY
               : kcw_receiver_verdict(kcw_config_receiver(n->cfg, d->receiver), resp->status);
    if (res == KCW_RECEIVER_ACCEPTED) {
        episode_end(n, d);
        log_sent(d->receiver, d->group_key, d->firing, d->n_alerts);
        char detail[48];
        snprintf(detail, sizeof(detail), "HTTP %ld", resp->status);
        event(n, d->receiver, d->group_key, "sent", resp->status, detail);
        if (d->line) {
            d->line->failures = 0;
            d->line->next_attempt_mono = 0;
        }
        delivery_finish(n, d, true);
    } else if (res == KCW_RECEIVER_CONFIG_ERROR || res == KCW_RECEIVER_REJECTED) {
        delivery_rejected(n, d, resp->status, resp->body, res == KCW_RECEIVER_CONFIG_ERROR);
    } else {
        char detail[300];
        if (!broken)
            snprintf(detail, sizeof(detail), "HTTP %ld", resp->status);
        else
            snprintf(detail, sizeof(detail), "%s", resp->error[0] ? resp->error : "no response");
        delivery_failed(n, d, resp->status, resp->retry_after_ms, detail);
    }
    kcw_store_commit(n->store);
    dispatch(n);
}

/* Starts d. false when it ended at once (dropped or failed): the queue changed. */
static bool delivery_start(kcw_notifier_t *n, receiver_state_t *r, delivery_t *d)
{
    const kcw_receiver_conf_t *rc = kcw_config_receiver(n->cfg, d->receiver);
    char *url = rc ? kcw_receiver_target_url(rc, d->target) : NULL;
    if (!url || !n->http) {
        const char *why = !rc    ? "receiver no longer configured"
                          : !url ? "receiver URL no longer configured"
                                 : "no HTTP client";
        kcw_log(KCW_LOG_ERROR, "notification dropped", "receiver", d->receiver, "group",
                d->group_key, "error", why, NULL);
        event(n, d->receiver, d->group_key, "dropped", 0, why);
        free(url);
        delivery_finish(n, d, false);
        return false;
    }
    if (!d->payload) {
        int lrc = kcw_store_outbox_payload(n->store, d->store_id, &d->payload);
        if (lrc < 0) {
            char why[96];
            snprintf(why, sizeof(why), "cannot read the payload from the outbox: %s",
                     strerror(-lrc));
            free(url);
            delivery_failed(n, d, 0, -1, why);
            return false;
        }
    }
    kcw_http_req_t req = {
        .method = "POST",
        .url = url,
        .body = d->payload,
        .body_len = strlen(d->payload),
        .timeout_ms = rc->timeout_ms,
        .max_body = RESPONSE_MAX,
        .basic_auth = rc->basic_auth.username ? &rc->basic_auth : NULL,
        .bearer_token = rc->bearer_token,
        .tls = &rc->tls,
    };
    d->in_flight = true;
    d->line->in_flight = true;
    r->in_flight++;
    int rc_req = kcw_http_request(n->http, &req, on_response, d);
    free(url);
    if (d->stored) {
        /* libcurl sends its own copy; the next attempt reads the row again. */
        free(d->payload);
        d->payload = NULL;
    }
    if (rc_req < 0) {
        d->in_flight = false;
        d->line->in_flight = false;
        r->in_flight--;
        if (rc_req == -ESHUTDOWN)
            n->http_gone = true; /* shutting down: close accounts for it */
        else
            delivery_failed(n, d, 0, -1, strerror(-rc_req));
        return false;
    }
    return true;
}

/* Starts the first notification of every group line that may send now:
 * not in flight, not backing off, its receiver below RECEIVER_PARALLEL.
 * Linear in the lines (groups with something queued). */
static void dispatch(kcw_notifier_t *n)
{
restart:
    if (n->closing || n->http_gone)
        return;
    uint64_t now = uv_now(n->loop);
    for (line_t *l = n->lines; l; l = l->next) {
        if (l->in_flight || !l->head || l->next_attempt_mono > now)
            continue;
        receiver_state_t *r = receiver_state(n, l->receiver, false);
        if (!r || r->in_flight >= RECEIVER_PARALLEL)
            continue;
        /* Each restart removes a notification or puts a line in back-off. */
        if (delivery_expire(n, l->head) || !delivery_start(n, r, l->head))
            goto restart;
    }
    log_dropped(n);
    arm_retry_timer(n);
}

static void on_retry_timer(uv_timer_t *t)
{
    dispatch(t->data);
}

static void arm_retry_timer(kcw_notifier_t *n)
{
    if (n->closing)
        return;
    uint64_t now = uv_now(n->loop), next = UINT64_MAX;
    /* Lines ready now but waiting for a receiver slot start on a response. */
    for (const line_t *l = n->lines; l; l = l->next)
        if (!l->in_flight && l->head && l->next_attempt_mono > now && l->next_attempt_mono < next)
            next = l->next_attempt_mono;
    if (next == UINT64_MAX || n->http_gone) {
        uv_timer_stop(&n->retry_timer);
        return;
    }
    uv_timer_start(&n->retry_timer, on_retry_timer, next - now, 0);
}

/* --- notifications ------------------------------------------------------- */

/* Silenced (a silence active at now matches it) or inhibited (by the alerts
 * of the last update). */
static bool notification_muted(const kcw_notifier_t *n, const kcw_alert_t *a, int64_t now)
{
    if (n->silences && kcw_silences_muting(n->silences, &a->labels, now))
        return true;
    if (n->cfg && n->cfg->remediation.storm_inhibit &&
        kcw_inhibitor_mutes(n->storm_inhibitor, &a->labels, a->fingerprint))
        return true;
    return kcw_inhibitor_mutes(n->inhibitor, &a->labels, a->fingerprint);
}

/* Alertmanager's dedup decision for a due group. */
static send_reason_t needs_send(const group_t *g, const uint64_t *firing, size_t n_firing,
                                const uint64_t *resolved, size_t n_resolved, bool send_resolved,
                                int64_t repeat_ms, int64_t now)
{
    if (!g->notified)
        return n_firing > 0 ? SEND_CHANGED : SEND_NO;
    if (!fp_subset(firing, n_firing, g->sent_firing, g->n_sent_firing))
        return SEND_CHANGED;
    /* Everything resolved: tell the receiver, unless it never heard of any
     * of them (they fired and resolved between two flushes). */
    if (n_firing == 0)
        return g->n_sent_firing > 0 ? SEND_CHANGED : SEND_NO;
    if (send_resolved && !fp_subset(resolved, n_resolved, g->sent_resolved, g->n_sent_resolved))
        return SEND_CHANGED;
    if (now - g->last_notified_ms >= repeat_ms)
        return SEND_REPEAT;
    return SEND_NO;
}

/* The round holding the fresh deliveries' rows ended: committed (their
 * payloads now live in the outbox alone) or not (they keep them). The fresh
 * ones are the queue's tail: nothing else is queued during a flush. */
static void fresh_rows_done(kcw_notifier_t *n, bool committed)
{
    for (delivery_t *d = n->tail; d && d->fresh; d = d->prev) {
        d->fresh = false;
        if (committed) {
            d->stored = true;
            free(d->payload);
            d->payload = NULL;
        }
    }
    n->n_fresh = 0;
}

/* Queues one request of a notification (its body taken over). false when it
 * was lost (out of memory: logged). */
static bool delivery_queue(kcw_notifier_t *n, const kcw_receiver_conf_t *rc, group_t *g,
                           kcw_outgoing_t *o)
{
    delivery_t *d = calloc(1, sizeof(*d));
    if (d) {
        d->receiver = strdup(rc->name);
        d->group_key = strdup(g->key);
        d->payload = o->body;
        o->body = NULL;
    }
    if (!d || !d->receiver || !d->group_key || !d->payload) {
        delivery_free(d);
        kcw_log(KCW_LOG_ERROR, "notification lost: out of memory", "receiver", rc->name, "group",
                g->key, NULL);
        event(n, rc->name, g->key, "dropped", 0, "out of memory");
        return false;
    }
    d->owner = n;
    d->group_hash = g->hash;
    d->group_id = g->id;
    d->target = o->target;
    d->n_alerts = o->n_alerts;
    d->firing = o->firing;
    d->created_ms = clock_now(n);
    if (!queue_push(n, d)) {
        kcw_log(KCW_LOG_ERROR, "notification lost: out of memory", "receiver", rc->name, "group",
                g->key, NULL);
        event(n, rc->name, g->key, "dropped", 0, "out of memory");
        delivery_free(d);
        return false;
    }
    /* In the outbox before it can be sent: the flush's round commits it
     * before dispatch() starts anything. */
    if (n->store) {
        kcw_store_outbox_t row = {.receiver = d->receiver,
                                  .group_key = d->group_key,
                                  .payload = d->payload,
                                  .n_alerts = d->n_alerts,
                                  .firing = d->firing,
                                  .created_ms = d->created_ms,
                                  .target = d->target};
        if (kcw_store_outbox_add(n->store, &row, &d->store_id) < 0) {
            d->store_id = 0;
        } else {
            d->fresh = true;
            n->n_fresh++;
        }
    }
    g->outstanding++;
    return true;
}

/* Hands one notification to the sink, the log, or the queue (as the
 * receiver's requests, receiver.h); true when a notification was produced. */
static bool notification_emit(kcw_notifier_t *n, const kcw_receiver_conf_t *rc, group_t *g,
                              const kcw_alert_t *const *alerts, size_t count, bool firing,
                              int64_t now)
{
    if (n->sink) {
        n->sink(rc->name, g->key, alerts, count, n->sink_arg);
        return true;
    }
    if (rc->kind == KCW_RECEIVER_LOG) {
        for (size_t i = 0; i < count; i++)
            log_alert(alerts[i]);
        log_sent(rc->name, g->key, firing, count);
        event(n, rc->name, g->key, "logged", 0, "logged");
        return true;
    }
    kcw_notification_t nt = {.receiver = rc->name,
                             .group_key = g->key,
                             .group_labels = &g->labels,
                             .alerts = alerts,
                             .n_alerts = count,
                             .now_ms = now,
                             .cfg = n->cfg};
    kcw_outgoing_t *out = NULL;
    size_t n_out = 0;
    if (kcw_receiver_build(rc, &nt, &out, &n_out) < 0) {
        kcw_log(KCW_LOG_ERROR, "notification lost: out of memory", "receiver", rc->name, "group",
                g->key, NULL);
        event(n, rc->name, g->key, "dropped", 0, "out of memory");
        return false;
    }
    bool produced = false;
    for (size_t i = 0; i < n_out; i++)
        produced = delivery_queue(n, rc, g, &out[i]) || produced;
    kcw_outgoing_free(out, n_out);
    return produced;
}

static int fp_set_assign(uint64_t **set, size_t *n_set, const uint64_t *src, size_t n)
{
    uint64_t *copy = NULL;
    if (n > 0) {
        if (!(copy = malloc(n * sizeof(*copy))))
            return -ENOMEM;
        memcpy(copy, src, n * sizeof(*copy));
    }
    free(*set);
    *set = copy;
    *n_set = n;
    return 0;
}

static bool heal_state_is(const kcw_alert_t *a, const char *state)
{
    const char *s = kcw_labels_get(&a->labels, STATE_LABEL);
    return s && strcmp(s, state) == 0;
}

/* heal_wait: true while group g's first notification waits for a restart's
 * verdict (its due time moved to the next look). */
static bool heal_hold(kcw_notifier_t *n, group_t *g, int64_t now)
{
    int64_t wait = n->cfg ? n->cfg->remediation.heal_wait_ms : 0;
    if (g->notified || wait <= 0)
        return false;
    bool healing = false;
    for (size_t i = 0; i < g->n_members && !healing; i++) {
        const kcw_alert_t *a = &g->members[i].alert;
        healing = alert_firing(a) && heal_state_is(a, "healing") && !notification_muted(n, a, now);
    }
    if (!healing)
        return false;
    /* A restart that works is known verify_timeout after the target runs
     * again (the engine holds the alert firing until then): wait that long
     * on top, so heal_wait is the time allowed for the restart itself. */
    if (g->heal_until_ms == 0)
        g->heal_until_ms = now + wait + n->cfg->remediation.verify_timeout_ms;
    if (now >= g->heal_until_ms)
        return false;
    g->due_ms = now + HEAL_RECHECK_MS < g->heal_until_ms ? now + HEAL_RECHECK_MS : g->heal_until_ms;
    return true;
}

/* Flushes group `at`; true when it produced a notification. The group is
 * deleted when nothing is left in it. */
static bool group_flush(kcw_notifier_t *n, size_t at, int64_t now)
{
    group_t *g = n->groups[at];
    if (heal_hold(n, g, now))
        return false;
    const kcw_receiver_conf_t *rc = group_receiver(n, g);
    bool produced = false;
    size_t nm = g->n_members;
    uint64_t *firing = malloc((nm ? nm : 1) * sizeof(*firing));
    uint64_t *resolved = malloc((nm ? nm : 1) * sizeof(*resolved));
    const kcw_alert_t **list = malloc((nm ? nm : 1) * sizeof(*list));
    if (!firing || !resolved || !list) {
        /* Try again on the next interval rather than lose the group. */
        kcw_log(KCW_LOG_ERROR, "notification delayed: out of memory", "group", g->key, NULL);
        g->due_ms = now + group_interval_ms(n, g);
        free(firing);
        free(resolved);
        free(list);
        return false;
    }
    size_t n_firing = 0, n_resolved = 0, count = 0, n_healed = 0;
    bool send_resolved = false;
    for (size_t i = 0; i < nm; i++) {
        const member_t *m = &g->members[i];
        /* Silenced or inhibited: as in Alertmanager, the receiver does not
         * hear of it, and the notification log does not count it as told. */
        if (notification_muted(n, &m->alert, now))
            continue;
        if (alert_firing(&m->alert)) {
            firing[n_firing++] = m->fp; /* members are sorted: so are these */
            list[count++] = &m->alert;
        } else {
            resolved[n_resolved++] = m->fp;
            /* A restart that worked before anyone was told: its one message. */
            bool healed = !g->notified && heal_state_is(&m->alert, "healed");
            if (rc && (kcw_receiver_wants(rc, &m->alert) || healed)) {
                list[count++] = &m->alert;
                send_resolved = true;
                n_healed += healed;
            }
        }
    }
    if (rc && rc->kind == KCW_RECEIVER_ALERTMANAGER)
        send_resolved = true;
    else if (rc)
        send_resolved = rc->send_resolved;
    int64_t repeat_ms = kcw_receiver_repeat_ms(rc, g->route->repeat_interval_ms);
    send_reason_t why =
        needs_send(g, firing, n_firing, resolved, n_resolved, send_resolved, repeat_ms, now);
    /* An unchanged group still on its way needs no reminder on top. */
    if (why == SEND_REPEAT && g->outstanding > 0)
        why = SEND_NO;
    if (why == SEND_NO && !g->notified && n_firing == 0 && n_healed > 0)
        why = SEND_CHANGED;
    /* What remediation did is news even when the alert set is not. */
    if (why == SEND_NO && g->forced && n_firing > 0)
        why = SEND_CHANGED;
    g->forced = false;
    if (why != SEND_NO) {
        if (!rc) {
            kcw_log(KCW_LOG_ERROR, "notification dropped: route receiver not configured", "group",
                    g->key, "receiver", group_receiver_name(g), NULL);
        } else if (count > 0) {
            produced = notification_emit(n, rc, g, list, count, n_firing > 0, now);
        }
        if (fp_set_assign(&g->sent_firing, &g->n_sent_firing, firing, n_firing) == 0 &&
            fp_set_assign(&g->sent_resolved, &g->n_sent_resolved, resolved, n_resolved) == 0) {
            g->notified = true;
            g->last_notified_ms = now;
            group_save(n, g);
        }
    }
    free(firing);
    free(resolved);
    free(list);

    /* Resolved members have had their say (Alertmanager deletes them after
     * each flush too); remember them so later updates do not re-add them. */
    size_t w = 0;
    for (size_t i = 0; i < g->n_members; i++) {
        member_t *m = &g->members[i];
        if (alert_firing(&m->alert)) {
            g->members[w++] = *m;
            continue;
        }
        done_add(n, m->fp, m->alert.resolved_at_ms);
        member_clear(m);
    }
    g->n_members = w;
    if (g->n_members == 0) {
        if (n->store)
            kcw_store_group_delete(n->store, group_receiver_name(g), g->key);
        group_delete(n, at);
    }
    else
        g->due_ms = now + group_interval_ms(n, g);
    return produced;
}

static void on_group_timer(uv_timer_t *t);
static void on_handle_closed(uv_handle_t *h);

static void arm_group_timer(kcw_notifier_t *n)
{
    if (n->closing)
        return;
    int64_t due = kcw_notifier_next_due(n);
    if (due == INT64_MAX) {
        uv_timer_stop(&n->group_timer);
        return;
    }
    int64_t now = clock_now(n);
    uv_timer_start(&n->group_timer, on_group_timer, due > now ? (uint64_t)(due - now) : 0, 0);
}

static void on_group_timer(uv_timer_t *t)
{
    kcw_notifier_t *n = t->data;
    kcw_notifier_flush_due(n, clock_now(n));
}

/* --- public -------------------------------------------------------------- */

/* The route with this id ("0/2/1": child indices from the root) in cfg,
 * NULL when the tree no longer has it. */
static const kcw_route_t *route_by_id(const kcw_config_t *cfg, const char *id)
{
    const kcw_route_t *r = &cfg->route;
    if (strncmp(id, "0", 1) != 0)
        return NULL;
    for (const char *p = id + 1; *p;) {
        if (*p != '/')
            return NULL;
        char *end;
        unsigned long i = strtoul(p + 1, &end, 10);
        if (end == p + 1 || i >= r->n_routes)
            return NULL;
        r = &r->routes[i];
        p = end;
    }
    return r;
}

static bool strv_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* After a reload, a group lives on when its route is still there with the
 * same key (matchers), receiver and grouping; otherwise it starts afresh:
 * its alerts are notified again after group_wait, as Alertmanager does. */
static bool group_repoint(const kcw_config_t *cfg, group_t *g)
{
    const kcw_route_t *old = g->route, *r = route_by_id(cfg, g->route_id);
    if (!r || strcmp(r->key, old->key) != 0 || strcmp(r->receiver, old->receiver) != 0 ||
        r->group_by_all != old->group_by_all ||
        !strv_equal(r->group_by, r->n_group_by, old->group_by, old->n_group_by))
        return false;
    g->route = r;
    return true;
}

/* Receiver URLs may carry tokens (?token=, userinfo): mask them in logs. */
static void register_url_secrets(const kcw_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_receivers; i++) {
        kcw_url_register_secrets(cfg->receivers[i].url);
        for (size_t u = 0; u < cfg->receivers[i].n_urls; u++)
            kcw_url_register_secrets(cfg->receivers[i].urls[u]);
    }
}

static void storm_inhibitor_free(kcw_notifier_t *n)
{
    kcw_inhibitor_free(n->storm_inhibitor);
    n->storm_inhibitor = NULL;
    kcw_matchers_clear(&n->storm_rule.source);
    kcw_matchers_clear(&n->storm_rule.target);
}

/* The built-in rule: KcwatchFailureStorm{cluster=X} mutes task alerts of X. */
static int storm_inhibitor_new(kcw_notifier_t *n)
{
    static char *equal[] = {"cluster"};
    char err[128];
    n->storm_rule.equal = equal;
    n->storm_rule.n_equal = 1;
    if (kcw_matchers_parse(&n->storm_rule.source, "alertname=\"" KCW_STORM_ALERT "\"", err,
                           sizeof(err)) < 0 ||
        kcw_matchers_parse(&n->storm_rule.target, "task=~\".+\"", err, sizeof(err)) < 0 ||
        !(n->storm_inhibitor = kcw_inhibitor_new(&n->storm_rule, 1))) {
        storm_inhibitor_free(n);
        return -ENOMEM;
    }
    return 0;
}

kcw_notifier_t *kcw_notifier_new(uv_loop_t *loop, kcw_http_t *http, const kcw_config_t *cfg,
                                 kcw_notify_event_cb cb, void *arg)
{
    if (!loop || !cfg)
        return NULL;
    register_url_secrets(cfg);
    kcw_notifier_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->loop = loop;
    n->http = http;
    n->cfg = cfg;
    n->event_cb = cb;
    n->event_arg = arg;
    n->clock_mono_ms = uv_now(loop);
    n->max_age_ms = KCW_NOTIFY_MAX_AGE_DEFAULT_MS;
    n->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)n;
    if (n->rng == 0)
        n->rng = 0x9e3779b97f4a7c15ULL;
    if (!(n->inhibitor = kcw_inhibitor_new(cfg->inhibit_rules, cfg->n_inhibit_rules))) {
        free(n);
        return NULL;
    }
    if (storm_inhibitor_new(n) < 0) {
        kcw_inhibitor_free(n->inhibitor);
        free(n);
        return NULL;
    }
    if (uv_timer_init(loop, &n->group_timer) < 0) {
        kcw_inhibitor_free(n->inhibitor);
        storm_inhibitor_free(n);
        free(n);
        return NULL;
    }
    if (uv_timer_init(loop, &n->retry_timer) < 0) {
        /* The group timer is initialised: n is freed once the loop closed it. */
        n->closing = true;
        n->handles_open = 1;
        n->group_timer.data = n;
        kcw_inhibitor_free(n->inhibitor);
        n->inhibitor = NULL;
        storm_inhibitor_free(n);
        uv_close((uv_handle_t *)&n->group_timer, on_handle_closed);
        return NULL;
    }
    n->group_timer.data = n;
    n->retry_timer.data = n;
    n->handles_open = 2;
    return n;
}

void kcw_notifier_set_config(kcw_notifier_t *n, const kcw_config_t *cfg)
{
    if (!n || !cfg || n->closing)
        return;
    register_url_secrets(cfg);
    /* Groups whose route changed start afresh rather than resolve
     * everything; the others keep their notification log. */
    kcw_store_begin(n->store);
    for (size_t i = 0; i < n->n_groups;) {
        group_t *g = n->groups[i];
        if (group_repoint(cfg, g)) {
            i++;
            continue;
        }
        if (n->store)
            kcw_store_group_delete(n->store, group_receiver_name(g), g->key);
        group_delete(n, i);
    }
    kcw_store_commit(n->store);
    n->cfg = cfg;
    /* The index pointed at the old rules: empty until the next update. */
    kcw_inhibitor_set_rules(n->inhibitor, cfg->inhibit_rules, cfg->n_inhibit_rules);
    /* Forget idle receivers the reload may have removed. */
    size_t w = 0;
    for (size_t i = 0; i < n->n_receivers; i++) {
        receiver_state_t *r = &n->receivers[i];
        if (r->queued == 0 && r->in_flight == 0 && !kcw_config_receiver(cfg, r->name)) {
            free(r->name);
            continue;
        }
        n->receivers[w++] = *r;
    }
    n->n_receivers = w;
    arm_group_timer(n);
    dispatch(n);
}

void kcw_notifier_update(kcw_notifier_t *n, const kcw_alert_t *const *alerts, size_t n_alerts,
                         int64_t now_ms)
{
    if (!n || n->closing)
        return;
    n->gen++;
    n->clock_wall_ms = now_ms;
    n->clock_mono_ms = uv_now(n->loop);
    bool oom = kcw_inhibitor_update(n->inhibitor, alerts, n_alerts) < 0;
    oom = kcw_inhibitor_update(n->storm_inhibitor, alerts, n_alerts) < 0 || oom;
    for (size_t i = 0; i < n_alerts; i++) {
        const kcw_alert_t *a = alerts[i];
        bool resolved = alert_resolved(a);
        if (!resolved && !alert_firing(a))
            continue; /* pending: Alertmanager never hears of those */
        uint64_t fp = alert_fp(a);
        if (resolved) {
            long at = done_search(n, fp, a->resolved_at_ms);
            if (at >= 0) {
                n->done[at].seen_gen = n->gen;
                continue;
            }
        }
        const kcw_route_t *routes[ROUTES_PER_ALERT];
        size_t n_routes = kcw_route_match(&n->cfg->route, &a->labels, routes, ROUTES_PER_ALERT);
        if (n_routes > ROUTES_PER_ALERT)
            n_routes = ROUTES_PER_ALERT; /* bounded fan-out; the first ones in tree order */
        bool grouped = false;
        kcw_labels_t view = {0};
        for (size_t r = 0; r < n_routes; r++) {
            const kcw_route_t *rt = routes[r];
            const kcw_labels_t *gl = group_view(n, rt, &a->labels, &view);
            if (!gl) {
                oom = true;
                continue;
            }
            uint64_t h = group_hash(rt, gl);
            group_t *g = group_find(n, rt, h, gl);
            /* No group: its firing was never notified or its group already
             * said goodbye; either way there is no one to tell. */
            if (!g && resolved && !restored_sent_firing(n, rt, gl, fp))
                continue;
            if (!g && !(g = group_new(n, rt, h, gl, now_ms))) {
                oom = true;
                continue;
            }
            if (member_upsert(g, a, fp, n->gen) < 0)
                oom = true;
            grouped = true;
        }
        kcw_labels_clear(&view);
        if (!grouped && resolved)
            done_add(n, fp, a->resolved_at_ms);
    }
    /* A firing member no longer listed lost its rule (reload): it resolves
     * now rather than stay firing at the receiver forever. */
    for (size_t gi = 0; gi < n->n_groups; gi++) {
        group_t *g = n->groups[gi];
        for (size_t i = 0; i < g->n_members; i++) {
            member_t *m = &g->members[i];
            if (m->seen_gen != n->gen && alert_firing(&m->alert)) {
                m->alert.state = KCW_ALERT_INACTIVE;
                m->alert.resolved_at_ms = now_ms;
            }
        }
    }
    done_prune(n);
    restored_expire(n, now_ms);
    if (oom)
        kcw_log(KCW_LOG_ERROR, "notifier: out of memory, some alerts not grouped", NULL);
    arm_group_timer(n);
}

void kcw_notifier_set_log_hook(kcw_notifier_t *n, kcw_notify_log_cb cb, void *arg)
{
    if (!n)
        return;
    n->log_cb = cb;
    n->log_arg = arg;
}

/* *set := *set ∪ src, both sorted; 0 or -ENOMEM (set unchanged). */
static int fp_set_union(uint64_t **set, size_t *n_set, const uint64_t *src, size_t n_src)
{
    if (n_src == 0)
        return 0;
    uint64_t *out = malloc((*n_set + n_src) * sizeof(*out));
    if (!out)
        return -ENOMEM;
    size_t i = 0, j = 0, k = 0;
    while (i < *n_set || j < n_src) {
        uint64_t v;
        if (j >= n_src || (i < *n_set && (*set)[i] <= src[j]))
            v = (*set)[i++];
        else
            v = src[j++];
        if (k == 0 || out[k - 1] != v)
            out[k++] = v;
    }
    free(*set);
    *set = out;
    *n_set = k;
    return 0;
}

static int on_stored_group(const kcw_store_group_t *row, void *arg);

/* Takes over another instance's log of a group: an existing group of that
 * key adds the row's alerts to what it has said; otherwise the row waits,
 * like the store's logs after a restart, for a group of that key. */
static int adopt_row(kcw_notifier_t *n, const kcw_store_group_t *row)
{
    if (!n || n->closing || !row || !row->receiver || !row->group_key)
        return 0;
    uint64_t **firing = NULL, **resolved = NULL;
    size_t *n_firing = NULL, *n_resolved = NULL;
    for (size_t gi = 0; gi < n->n_groups && !firing; gi++) {
        group_t *g = n->groups[gi];
        if (strcmp(g->key, row->group_key) != 0 ||
            strcmp(group_receiver_name(g), row->receiver) != 0)
            continue;
        g->notified = true;
        if (row->last_notified_ms > g->last_notified_ms)
            g->last_notified_ms = row->last_notified_ms;
        firing = &g->sent_firing, n_firing = &g->n_sent_firing;
        resolved = &g->sent_resolved, n_resolved = &g->n_sent_resolved;
    }
    long at = firing ? -1 : restored_find(n, row->receiver, row->group_key);
    if (at >= 0) {
        restored_t *r = &n->restored[at];
        if (row->last_notified_ms > r->last_notified_ms)
            r->last_notified_ms = row->last_notified_ms;
        firing = &r->firing, n_firing = &r->n_firing;
        resolved = &r->resolved, n_resolved = &r->n_resolved;
    }
    if (!firing) {
        /* For a group yet to come: its alerts are claimed like the store's. */
        if (on_stored_group(row, n) != 0)
            return -ENOMEM;
        int64_t until = clock_now(n) + RESTORED_KEEP_MS;
        if (until > n->restored_until_ms)
            n->restored_until_ms = until;
        return 1;
    }
    if (fp_set_union(firing, n_firing, row->sent_firing, row->n_sent_firing) < 0 ||
        fp_set_union(resolved, n_resolved, row->sent_resolved, row->n_sent_resolved) < 0)
        return -ENOMEM;
    return 1;
}

static json_t *fp_json(const uint64_t *set, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, set[i]);
        if (json_array_append_new(a, json_string(hex)) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *kcw_notify_log_encode(const kcw_store_group_t *row)
{
    json_t *j = json_pack("{s:s,s:s,s:I,s:o*,s:o*}", "receiver", row->receiver, "group_key",
                          row->group_key, "last_notified_ms", (json_int_t)row->last_notified_ms,
                          "firing", fp_json(row->sent_firing, row->n_sent_firing), "resolved",
                          fp_json(row->sent_resolved, row->n_sent_resolved));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static int cmp_fp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A sorted fingerprint set from a JSON array of hex strings; -EINVAL. */
static int fp_parse(const json_t *a, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(a))
        return -EINVAL;
    size_t len = json_array_size(a);
    uint64_t *set = malloc((len ? len : 1) * sizeof(*set));
    if (!set)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        const char *hex = json_string_value(json_array_get(a, i));
        char *end = NULL;
        if (!hex || !*hex || strlen(hex) > 16) {
            free(set);
            return -EINVAL;
        }
        set[i] = strtoull(hex, &end, 16);
        if (*end) {
            free(set);
            return -EINVAL;
        }
    }
    qsort(set, len, sizeof(*set), cmp_fp);
    *out = set;
    *n = len;
    return 0;
}

typedef struct parsed_log {
    json_t *j;
    kcw_store_group_t row;
    uint64_t *firing, *resolved;
} parsed_log_t;

static int cmp_parsed(const void *a, const void *b)
{
    const kcw_store_group_t *x = &((const parsed_log_t *)a)->row;
    const kcw_store_group_t *y = &((const parsed_log_t *)b)->row;
    int c = strcmp(x->receiver, y->receiver);
    if (!c)
        c = strcmp(x->group_key, y->group_key);
    if (!c) /* newest first */
        c = x->last_notified_ms > y->last_notified_ms   ? -1
            : x->last_notified_ms < y->last_notified_ms ? 1
                                                        : 0;
    return c;
}

size_t kcw_notifier_adopt_records(kcw_notifier_t *n, const char *const *records, size_t n_records,
                                  int64_t max_age_ms, int64_t now_ms)
{
    if (!n || n->closing || n_records == 0)
        return 0;
    parsed_log_t *p = calloc(n_records, sizeof(*p));
    if (!p)
        return 0;
    size_t np = 0, bad = 0, adopted = 0;
    for (size_t i = 0; i < n_records; i++) {
        parsed_log_t *e = &p[np];
        json_error_t je;
        e->j = json_loads(records[i], 0, &je);
        const char *receiver = json_string_value(json_object_get(e->j, "receiver"));
        const char *key = json_string_value(json_object_get(e->j, "group_key"));
        json_t *last = json_object_get(e->j, "last_notified_ms");
        if (!receiver || !key || !json_is_integer(last) ||
            fp_parse(json_object_get(e->j, "firing"), &e->firing, &e->row.n_sent_firing) < 0 ||
            fp_parse(json_object_get(e->j, "resolved"), &e->resolved, &e->row.n_sent_resolved) <
                0) {
            free(e->firing);
            free(e->resolved);
            json_decref(e->j);
            memset(e, 0, sizeof(*e));
            bad++;
            continue;
        }
        e->row = (kcw_store_group_t){.receiver = receiver,
                                     .group_key = key,
                                     .last_notified_ms = json_integer_value(last),
                                     .sent_firing = e->firing,
                                     .n_sent_firing = e->row.n_sent_firing,
                                     .sent_resolved = e->resolved,
                                     .n_sent_resolved = e->row.n_sent_resolved};
        np++;
    }
    qsort(p, np, sizeof(*p), cmp_parsed);
    for (size_t i = 0; i < np; i++) {
        const kcw_store_group_t *r = &p[i].row;
        bool newest = i == 0 || strcmp(r->receiver, p[i - 1].row.receiver) != 0 ||
                      strcmp(r->group_key, p[i - 1].row.group_key) != 0;
        /* Older logs of a group said what a later one superseded; a log past
         * max_age would have been followed by a repeat had it still fired. */
        if (newest && now_ms - r->last_notified_ms <= max_age_ms && adopt_row(n, r) > 0)
            adopted++;
    }
    for (size_t i = 0; i < np; i++) {
        free(p[i].firing);
        free(p[i].resolved);
        json_decref(p[i].j);
    }
    free(p);
    if (bad > 0) {
        kcw_log(KCW_LOG_WARN, "notification logs of other instances skipped: unreadable",
                KCW_LOG_INT("records", bad), NULL);
    }
    if (adopted > 0)
        arm_group_timer(n);
    return adopted;
}

size_t kcw_notifier_forget(kcw_notifier_t *n, bool (*drop)(const kcw_alert_t *a, void *arg),
                           void *arg)
{
    size_t dropped = 0, unsent = 0;
    if (!n || n->closing || !drop)
        return 0;
    for (size_t gi = n->n_groups; gi-- > 0;) {
        group_t *g = n->groups[gi];
        size_t w = 0;
        for (size_t i = 0; i < g->n_members; i++) {
            member_t *m = &g->members[i];
            if (drop(&m->alert, arg)) {
                member_clear(m);
                dropped++;
                continue;
            }
            g->members[w++] = *m;
        }
        g->n_members = w;
        if (w > 0)
            continue;
        /* What it queued and has not started sending stays here too (a
         * request already in flight cannot be called back). */
        for (delivery_t *d = n->head, *next; d; d = next) {
            next = d->next;
            if (d->in_flight || d->group_id != g->id || d->group_hash != g->hash)
                continue;
            event(n, d->receiver, d->group_key, "dropped", 0,
                  "dropped: another kcwatch instance owns its alerts now");
            delivery_finish(n, d, false);
            unsent++;
        }
        /* Its notification log goes too: after a restart this instance
         * must not owe anyone a resolution for a cluster it gave up. */
        if (n->store)
            kcw_store_group_delete(n->store, group_receiver_name(g), g->key);
        group_delete(n, gi);
    }
    if (unsent > 0) {
        kcw_log(KCW_LOG_WARN, "queued notifications dropped: another instance owns their alerts",
                KCW_LOG_INT("notifications", unsent), NULL);
    }
    if (dropped)
        arm_group_timer(n);
    return dropped;
}

static void group_force(kcw_notifier_t *n, const kcw_labels_t *labels, bool before_first)
{
    if (!n || !labels || n->closing)
        return;
    /* News of an alert nobody may hear of now (silenced, inhibited, in a
     * failure storm) is no reason to notify its group. */
    kcw_alert_t probe;
    memset(&probe, 0, sizeof(probe));
    probe.labels = *labels; /* shallow: read only */
    probe.fingerprint = kcw_labels_fingerprint(labels);
    if (notification_muted(n, &probe, clock_now(n)))
        return;
    const kcw_route_t *routes[ROUTES_PER_ALERT];
    size_t n_routes = kcw_route_match(&n->cfg->route, labels, routes, ROUTES_PER_ALERT);
    kcw_labels_t view = {0};
    for (size_t r = 0; r < n_routes && r < ROUTES_PER_ALERT; r++) {
        const kcw_labels_t *gl = group_view(n, routes[r], labels, &view);
        group_t *g = gl ? group_find(n, routes[r], group_hash(routes[r], gl), gl) : NULL;
        if (!g)
            continue; /* not firing yet: its group will be notified in due course */
        if (!before_first && !g->notified)
            continue; /* its first notification, after group_wait, carries the news */
        g->due_ms = INT64_MIN;
        g->forced = true;
    }
    kcw_labels_clear(&view);
    arm_group_timer(n);
}

void kcw_notifier_flush_for(kcw_notifier_t *n, const kcw_labels_t *labels)
{
    group_force(n, labels, true);
}

void kcw_notifier_refresh_for(kcw_notifier_t *n, const kcw_labels_t *labels)
{
    group_force(n, labels, false);
}

size_t kcw_notifier_payloads_held(const kcw_notifier_t *n)
{
    size_t held = 0;
    for (const delivery_t *d = n ? n->head : NULL; d; d = d->next)
        held += d->payload != NULL;
    return held;
}

size_t kcw_notifier_queue_length(const kcw_notifier_t *n)
{
    return n ? n->n_queue : 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    kcw_notifier_t *n = h->data;
    if (--n->handles_open > 0)
        return;
    void (*cb)(void *) = n->on_closed;
    void *arg = n->closed_arg;
    free(n);
    if (cb)
        cb(arg);
}

void kcw_notifier_close(kcw_notifier_t *n, void (*on_closed)(void *arg), void *arg)
{
    if (!n || n->closing)
        return;
    n->closing = true;
    n->on_closed = on_closed;
    n->closed_arg = arg;
    /* A notification in a durable outbox is not lost: the next start sends
     * it (a transfer cancelled here may have reached the receiver: then it
     * arrives twice, which at-least-once allows). */
    bool durable = kcw_store_durable(n->store);
    size_t dropped = 0, kept = 0;
    delivery_t *next;
    for (delivery_t *d = n->head; d; d = next) {
        next = d->next;
        if (durable && d->store_id > 0)
            kept++;
        else if (!d->in_flight)
            dropped++;
        /* An in-flight one means the client is not closed yet (its close
         * completes every transfer at once): cancel it, and on_response, seeing
         * no owner, frees it right here. */
        bool in_flight = d->in_flight;
        d->owner = NULL;
        d->prev = d->next = NULL;
        if (!in_flight || kcw_http_cancel(n->http, d) == 0)
            delivery_free(d);
    }
    n->head = n->tail = NULL;
    n->n_queue = 0;
    if (dropped > 0) {
        kcw_log(KCW_LOG_ERROR, "notifier closed with undelivered notifications",
                KCW_LOG_INT("dropped", dropped), NULL);
    }
    if (kept > 0) {
        kcw_log(KCW_LOG_INFO, "notifier closed; undelivered notifications kept in the outbox for "
                "the next start", KCW_LOG_INT("kept", kept), NULL);
    }
    lines_clear(n);
    for (size_t i = 0; i < n->n_restored; i++)
        restored_clear(&n->restored[i]);
    free(n->restored);
    n->restored = NULL;
    n->n_restored = 0;
    groups_clear(n);
    free(n->groups);
    n->groups = NULL;
    free(n->done);
    n->done = NULL;
    for (size_t i = 0; i < n->n_receivers; i++)
        free(n->receivers[i].name);
    free(n->receivers);
    n->receivers = NULL;
    n->n_receivers = 0;
    kcw_inhibitor_free(n->inhibitor);
    n->inhibitor = NULL;
    storm_inhibitor_free(n);
    uv_timer_stop(&n->group_timer);
    uv_timer_stop(&n->retry_timer);
    uv_close((uv_handle_t *)&n->group_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->retry_timer, on_handle_closed);
}

static int on_stored_group(const kcw_store_group_t *row, void *arg)
{
    kcw_notifier_t *n = arg;
    restored_t *nr = realloc(n->restored, (n->n_restored + 1) * sizeof(*nr));
    if (!nr)
        return 1;
    n->restored = nr;
    restored_t *r = &n->restored[n->n_restored];
    memset(r, 0, sizeof(*r));
    r->receiver = strdup(row->receiver);
    r->key = strdup(row->group_key);
    r->last_notified_ms = row->last_notified_ms;
    if (!r->receiver || !r->key ||
        fp_set_assign(&r->firing, &r->n_firing, row->sent_firing, row->n_sent_firing) < 0 ||
        fp_set_assign(&r->resolved, &r->n_resolved, row->sent_resolved, row->n_sent_resolved) <
            0) {
        restored_clear(r);
        return 1;
    }
    n->n_restored++;
    return 0;
}

static int on_stored_delivery(const kcw_store_outbox_t *o, void *arg)
{
    kcw_notifier_t *n = arg;
    delivery_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->receiver = strdup(o->receiver)) || !(d->group_key = strdup(o->group_key))) {
        delivery_free(d);
        return 1;
    }
    d->stored = true; /* its payload is read from the row when it is sent */
    d->owner = n;
    d->n_alerts = o->n_alerts;
    d->firing = o->firing;
    d->created_ms = o->created_ms;
    d->attempts = o->attempts;
    d->store_id = o->id;
    d->target = o->target;
    if (!queue_push(n, d)) {
        delivery_free(d);
        return 1;
    }
    /* The retry schedule carries on where the last run left it. */
    line_t *l = d->line;
    if (l->head == d) {
        l->failures = o->attempts;
        int64_t wait = o->next_attempt_ms - clock_now(n);
        if (wait > 0)
            l->next_attempt_mono = uv_now(n->loop) + (uint64_t)wait;
    }
    return 0;
}

void kcw_notifier_set_store(kcw_notifier_t *n, kcw_store_t *store, int64_t now_ms)
{
    if (!n || n->closing || n->store || !store)
        return;
    n->clock_wall_ms = now_ms;
    n->clock_mono_ms = uv_now(n->loop);
    n->store = store;
    long groups = kcw_store_group_load(store, on_stored_group, n);
    n->restored_until_ms = now_ms + RESTORED_KEEP_MS;
    long queued = kcw_store_outbox_load(store, on_stored_delivery, n);
    if (groups > 0 || queued > 0) {
        kcw_log(KCW_LOG_INFO, "notifier state restored",
                KCW_LOG_INT("groups", groups > 0 ? groups : 0),
                KCW_LOG_INT("queued", queued > 0 ? queued : 0), NULL);
    }
    dispatch(n);
}

void kcw_notifier_set_silences(kcw_notifier_t *n, const kcw_silences_t *silences)
{
    if (n)
        n->silences = silences;
}

void kcw_notifier_set_max_age(kcw_notifier_t *n, int64_t max_age_ms)
{
    if (n)
        n->max_age_ms = max_age_ms > 0 ? max_age_ms : KCW_NOTIFY_MAX_AGE_DEFAULT_MS;
}

uint64_t kcw_notifier_expired_total(const kcw_notifier_t *n)
{
    return n ? n->expired_total : 0;
}

/* --- testing ------------------------------------------------------------- */

void kcw_notifier_set_sink(kcw_notifier_t *n, kcw_notify_sink_cb sink, void *arg)
{
    n->sink = sink;
    n->sink_arg = arg;
}

size_t kcw_notifier_flush_due(kcw_notifier_t *n, int64_t now_ms)
{
    if (!n || n->closing)
        return 0;
    size_t produced = 0;
    /* Every notification of this flush is in the outbox before dispatch()
     * sends the first. The round is committed every SPILL_BATCH new rows (a
     * group's notification log and its rows go together), so a storm's
     * payloads are never all in memory at once. Inside someone else's round
     * nothing is known committed: the payloads stay in memory. */
    bool own = !kcw_store_in_round(n->store);
    kcw_store_begin(n->store);
    for (size_t i = 0; i < n->n_groups;) {
        group_t *g = n->groups[i];
        if (g->due_ms > now_ms) {
            i++;
            continue;
        }
        size_t before = n->n_groups;
        if (group_flush(n, i, now_ms))
            produced++;
        if (n->n_groups == before)
            i++;
        if (n->n_fresh >= SPILL_BATCH) {
            fresh_rows_done(n, kcw_store_commit(n->store) == 0 && own);
            kcw_store_begin(n->store);
        }
    }
    fresh_rows_done(n, kcw_store_commit(n->store) == 0 && own);
    arm_group_timer(n);
    dispatch(n);
    return produced;
}

int64_t kcw_notifier_next_due(const kcw_notifier_t *n)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; n && i < n->n_groups; i++)
        if (n->groups[i]->due_ms < due)
            due = n->groups[i]->due_ms;
    return due;
}

size_t kcw_notifier_group_count(const kcw_notifier_t *n)
{
    return n ? n->n_groups : 0;
}

kcw_delivery_result_t kcw_notify_classify(long http_status)
{
    if (http_status >= 200 && http_status < 300)
        return KCW_DELIVERY_OK;
    if (http_status == 0 || http_status >= 500 || http_status == 408 || http_status == 429)
        return KCW_DELIVERY_RETRY;
    return KCW_DELIVERY_DROP;
}

int64_t kcw_notify_backoff_ms(int failures, int64_t retry_after_ms, double jitter01)
{
    if (retry_after_ms >= 0)
        return retry_after_ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : retry_after_ms;
    int64_t base = BACKOFF_INITIAL_MS;
    for (int i = 1; i < failures && base < BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    if (jitter01 < 0)
        jitter01 = 0;
    if (jitter01 > 1)
        jitter01 = 1;
    return (int64_t)((double)base * (0.9 + 0.2 * jitter01));
}
