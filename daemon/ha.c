/* ha.c: per-cluster ownership on etcd leases (see ha.h).
 *
 * The pure parts come first: the assignment (rendezvous hashing with a load
 * cap) and the fence arithmetic. Then the client on the loop. One step runs
 * at a time, started by a timer every TTL/8:
 *
 *   no lease:  POST /v3/lease/grant -> POST /v3/kv/put <prefix>/members/<me>
 *   lease:     POST /v3/lease/keepalive
 *   then sync: one txn of two ranges (members, owners: one consistent read),
 *              kcw_ha_assign() over the live members (clusters, and the
 *              PromQL key apart), then one txn per key
 *              to claim (create if absent, with our lease) or release (delete
 *              while it carries our lease).
 *
 * Besides the timer, a watch on <prefix>/owners/ (a streaming POST
 * /v3/watch, one JSON answer per line) starts a step the moment an ownership
 * key is deleted: a dead owner's clusters are claimed as soon as etcd revokes
 * its lease, not up to TTL/8 later. The watch only speeds things up; the
 * reads every TTL/8 are what ownership relies on.
 *
 * A request that fails moves to the next endpoint and ends the step; the
 * fence is not renewed, so after TTL - margin this instance stops acting, and
 * a timer set at the fence's end reports that at once. Keys and values travel
 * base64-encoded in etcd's JSON; lease IDs as decimal strings (int64). */
#include "kcwatch/ha.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kcwatch/episode.h"
#include "kcwatch/log.h"

#define NAME_MAX_LEN 128
#define KEY_MAX_LEN 512
#define BODY_MAX (4u * 1024 * 1024)
#define ACTION_MAX 8192 /* a restart record: 65 times, the request line */
#define TICK_MIN_MS 100
#define WATCH_LINE_MAX (64u * 1024) /* one watch answer kept at most; longer: read anyway */
#define WATCH_TIMEOUT_MS (5 * 60 * 1000) /* then opened again (a silent partition) */
#define ETCD_SWEEP_MS 500 /* etcd revokes expired leases every 500 ms */

/* --- pure: assignment ------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Rendezvous weight of (key, member): a 64-bit mix of both names. */
static uint64_t weight(const char *key, const char *member)
{
    uint64_t h = fnv1a(14695981039346656037ULL, key);
    h = fnv1a(h ^ 0xff, member);
    /* splitmix64 finaliser: FNV alone clusters on similar names. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static int cmp_index_by_name(const void *a, const void *b, void *names)
{
    const char *const *n = names;
    return strcmp(n[*(const size_t *)a], n[*(const size_t *)b]);
}

/* Indexes of names in name order (stable for equal names: lower index first). */
static size_t *sorted_indexes(const char *const *names, size_t n)
{
    size_t *ix = malloc((n ? n : 1) * sizeof(*ix));
    if (!ix)
        return NULL;
    for (size_t i = 0; i < n; i++)
        ix[i] = i;
    /* qsort is not stable; equal names are ordered by index afterwards. */
    qsort_r(ix, n, sizeof(*ix), cmp_index_by_name, (void *)names);
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        while (j > 0 && strcmp(names[ix[j - 1]], names[ix[j]]) == 0 && ix[j - 1] > ix[j]) {
            size_t t = ix[j];
            ix[j] = ix[j - 1];
            ix[j - 1] = t;
            j--;
        }
    }
    return ix;
}

/* The best-weighted member (in uniq) with room for key, SIZE_MAX if none. */
static size_t best_member(const char *key, const char *const *members, const size_t *uniq,
                          size_t nu, const size_t *load, size_t cap)
{
    size_t best = SIZE_MAX;
    uint64_t best_w = 0;
    for (size_t u = 0; u < nu; u++) {
        if (load[u] >= cap)
            continue;
        uint64_t w = weight(key, members[uniq[u]]);
        if (best == SIZE_MAX || w > best_w) { /* ties: the smaller name, first in uniq */
            best = u;
            best_w = w;
        }
    }
    return best;
}

int kcw_ha_assign(const char *const *keys, size_t n_keys, const char *const *members,
                  size_t n_members, const size_t *current, size_t *owner)
{
    if (n_members == 0)
        return -EINVAL;
    size_t *mo = sorted_indexes(members, n_members);
    size_t *ko = sorted_indexes(keys, n_keys);
    size_t *uniq = malloc(n_members * sizeof(*uniq));
    size_t *slot = malloc(n_members * sizeof(*slot)); /* member index -> uniq index */
    size_t *load = calloc(n_members, sizeof(*load));
    bool *placed = calloc(n_keys ? n_keys : 1, sizeof(*placed));
    int rc = mo && ko && uniq && slot && load && placed ? 0 : -ENOMEM;
    if (rc < 0)
        goto out;
    size_t nu = 0;
    for (size_t i = 0; i < n_members; i++) {
        if (nu == 0 || strcmp(members[uniq[nu - 1]], members[mo[i]]) != 0)
            uniq[nu++] = mo[i];
        slot[mo[i]] = nu - 1;
    }
    /* Exactly n_keys % nu members end with one key more than the others. */
    size_t base = n_keys / nu, extra = n_keys % nu, full = 0;
#define CAP() (base + (full < extra ? 1 : 0))
    /* A key stays with its live owner while that one has room: ownership
     * moves only when an owner dies or the loads would differ by more than
     * one (a move is a handover, and a handover is where a duplicate can
     * happen). */
    for (size_t k = 0; current && k < n_keys; k++) {
        size_t cur = current[ko[k]];
        if (cur >= n_members)
            continue;
        size_t u = slot[cur];
        if (load[u] >= CAP())
            continue;
        if (++load[u] == base + 1)
            full++;
        owner[ko[k]] = uniq[u];
        placed[ko[k]] = true;
    }
    for (size_t k = 0; k < n_keys; k++) {
        if (placed[ko[k]])
            continue;
        /* One member always has room: the caps add up to n_keys. */
        size_t u = best_member(keys[ko[k]], members, uniq, nu, load, CAP());
        if (++load[u] == base + 1)
            full++;
        owner[ko[k]] = uniq[u];
    }
#undef CAP
out:
    free(mo);
    free(ko);
    free(uniq);
    free(slot);
    free(load);
    free(placed);
    return rc;
}

/* --- pure: fence ------------------------------------------------------------ */

int64_t kcw_ha_fence_margin(int64_t ttl_ms)
{
    int64_t m = ttl_ms / 4;
    if (m < 500)
        m = 500;
    if (m > ttl_ms / 2)
        m = ttl_ms / 2;
    return m;
}

int64_t kcw_ha_lease_ttl_s(int64_t ttl_ms)
{
    int64_t s = (ttl_ms - ETCD_SWEEP_MS) / 1000;
    return s < 1 ? 1 : s;
}

void kcw_ha_fence_renewed(kcw_ha_fence_t *f, int64_t sent_ms, int64_t granted_ttl_ms)
{
    if (granted_ttl_ms <= 0) {
        kcw_ha_fence_drop(f);
        return;
    }
    int64_t until = sent_ms + granted_ttl_ms - kcw_ha_fence_margin(granted_ttl_ms);
    if (until > f->valid_until_ms)
        f->valid_until_ms = until;
}

void kcw_ha_fence_drop(kcw_ha_fence_t *f)
{
    f->valid_until_ms = 0;
}

bool kcw_ha_fence_valid(const kcw_ha_fence_t *f, int64_t now_ms)
{
    return f->valid_until_ms > 0 && now_ms < f->valid_until_ms;
}

/* --- base64 (etcd's JSON carries keys and values as bytes) ------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* malloc'd, NUL-terminated; NULL on OOM. */
static char *b64_encode(const char *s, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = b64_alphabet[(v >> 18) & 63];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *at = c ? strchr(b64_alphabet, c) : NULL;
    return at ? (int)(at - b64_alphabet) : -1;
}

/* Decodes into buf (NUL-terminated); -EINVAL on bad input or when it does
 * not fit, or contains a NUL. */
static int b64_decode(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s), o = 0;
    if (n % 4 != 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64_value(s[i + j])) < 0) {
                return -EINVAL;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char bytes[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                                  (unsigned char)w};
        for (int j = 0; j < 3 - pad; j++) {
            if (o + 1 >= cap || bytes[j] == 0)
                return -EINVAL;
            buf[o++] = (char)bytes[j];
        }
    }
    buf[o] = '\0';
    return 0;
}

/* --- the client on the loop -------------------------------------------------- */

typedef enum {
    CALL_GRANT,
    CALL_MEMBER,
    CALL_KEEPALIVE,
    CALL_READ,
    CALL_CLAIM,
    CALL_RELEASE,
    CALL_PERMIT,
    CALL_REVOKE,
    CALL_HANDOVER,
    CALL_RECORD,
    CALL_WATCH,
} call_kind_t;

typedef struct call {
    struct call *prev, *next;
    kcw_ha_t *ha;
    call_kind_t kind;
    size_t key;      /* CLAIM / RELEASE / PERMIT */
    int64_t sent_ms; /* fence clock */
    int64_t lease;   /* the lease it was sent under */
    kcw_ha_permit_cb permit_cb;
    void *permit_arg;
} call_t;

typedef struct key_state {
    char *name;
    char owner[NAME_MAX_LEN]; /* at the last read; "" unowned */
    int64_t owner_lease;
    bool reported; /* what the change callback last saw */
    bool handover; /* claimed; not acted for until the handover read is in */
} key_state_t;

struct kcw_ha {
    uv_loop_t *loop;
    kcw_http_t *http;
    const kcw_ha_conf_t *conf;
    kcw_ha_change_cb cb;
    void *arg;
    kcw_ha_handover_cb handover_cb;
    void *handover_arg;
    kcw_ha_handover_cb restarts_cb;
    void *restarts_arg;
    bool handover_wanted; /* a claim succeeded in this step */
    char instance[NAME_MAX_LEN];
    key_state_t *keys;
    size_t n_keys;
    int64_t lease;       /* 0: none */
    int64_t lease_ttl_ms;
    kcw_ha_fence_t fence;
    bool lease_reported;
    size_t endpoint;
    bool step_busy;
    bool step_again; /* the watch saw a key go while a step ran */
    bool kicked;     /* this step was started by the watch */
    bool watch_open;
    bool watch_skip; /* discarding the rest of an answer too long to keep */
    char *watch_buf; /* one answer line, at most WATCH_LINE_MAX */
    size_t watch_len;
    size_t step_pending; /* claims/releases of the current sync */
    uint64_t renewals;
    char error[256];
    kcw_episode_t failing; /* failed requests: logged loud once, until a keepalive succeeds */
    call_t *calls; /* in flight */
    uv_timer_t tick, fence_timer;
    bool started, closing;
    int open_handles;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static int64_t fence_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keepalive and read every TTL/8: a standby sees a dead owner's keys gone
 * soon after etcd expires them, and a keepalive can fail a few times before
 * the fence (TTL minus a quarter) runs out. */
static int64_t tick_ms(const kcw_ha_t *ha)
{
    int64_t t = ha->conf->ttl_ms / 8;
    return t < TICK_MIN_MS ? TICK_MIN_MS : t;
}

static void set_error(kcw_ha_t *ha, const char *fmt, const char *detail)
{
    char buf[sizeof(ha->error)];
    snprintf(buf, sizeof(buf), fmt, detail ? detail : "");
    bool first = kcw_episode_fail(&ha->failing);
    if (strcmp(buf, ha->error) != 0) {
        /* Loud once per episode: a fault whose wording varies from request
         * to request (a reset seen before or after the status line) logs
         * its later wordings DEBUG, until a keepalive succeeds again. */
        kcw_log(first ? KCW_LOG_WARN : KCW_LOG_DEBUG, "ha: etcd request failed", "error", buf,
                "endpoint", ha->conf->endpoints[ha->endpoint % ha->conf->n_endpoints], NULL);
        snprintf(ha->error, sizeof(ha->error), "%s", buf);
    }
}

static key_state_t *key_find(const kcw_ha_t *ha, const char *name, size_t *at)
{
    for (size_t i = 0; i < ha->n_keys; i++)
        if (strcmp(ha->keys[i].name, name) == 0) {
            if (at)
                *at = i;
            return &ha->keys[i];
        }
    return NULL;
}

/* The key carries our lease (at the last read or txn). */
static bool key_held(const kcw_ha_t *ha, const key_state_t *k)
{
    return ha->lease != 0 && k->owner_lease == ha->lease;
}

/* Held, and what its previous owner recorded is taken over. */
static bool key_mine(const kcw_ha_t *ha, const key_state_t *k)
{
    return key_held(ha, k) && !k->handover;
}

bool kcw_ha_lease_ok(const kcw_ha_t *ha)
{
    return ha && ha->lease != 0 && kcw_ha_fence_valid(&ha->fence, fence_now_ms());
}

bool kcw_ha_owns(const kcw_ha_t *ha, const char *key)
{
    if (!ha || !key)
        return false;
    const key_state_t *k = key_find(ha, key, NULL);
    return k && key_mine(ha, k) && kcw_ha_lease_ok(ha);
}

/* Tells the owner of ha what changed since the last report, and logs it:
 * an instance that stops acting says so. */
static void report(kcw_ha_t *ha)
{
    if (ha->closing)
        return;
    bool changed = false;
    bool ok = kcw_ha_lease_ok(ha);
    if (ok != ha->lease_reported) {
        changed = true;
        ha->lease_reported = ok;
        if (ok)
            kcw_log(KCW_LOG_INFO, "ha: lease held; acting for the clusters this instance owns",
                    "instance", ha->instance, NULL);
        else
            kcw_log(KCW_LOG_ERROR,
                    "ha: lease not renewed in time: stopped acting for every cluster", "instance",
                    ha->instance, "error", ha->error[0] ? ha->error : "lease lost", NULL);
    }
    for (size_t i = 0; i < ha->n_keys; i++) {
        key_state_t *k = &ha->keys[i];
        bool owns = ok && key_mine(ha, k);
        if (owns == k->reported)
            continue;
        changed = true;
        k->reported = owns;
        kcw_log(owns ? KCW_LOG_INFO : KCW_LOG_WARN,
                owns ? "ha: acting for cluster" : "ha: stopped acting for cluster", "cluster",
                k->name, "instance", ha->instance, "owner", k->owner, NULL);
    }
    if (changed && ha->cb)
        ha->cb(ha->arg);
}

static void on_fence_timer(uv_timer_t *t)
{
    report(t->data);
}

static void fence_timer_arm(kcw_ha_t *ha)
{
    if (ha->closing || !ha->started)
        return;
    int64_t left = ha->fence.valid_until_ms - fence_now_ms();
    uv_timer_start(&ha->fence_timer, on_fence_timer, (uint64_t)(left > 0 ? left + 1 : 0), 0);
}

static void lease_lost(kcw_ha_t *ha, const char *why)
{
    if (ha->lease)
        kcw_log(KCW_LOG_ERROR, "ha: lease lost", "instance", ha->instance, "reason", why, NULL);
    snprintf(ha->error, sizeof(ha->error), "%s", why);
    ha->lease = 0;
    kcw_ha_fence_drop(&ha->fence);
    report(ha);
}

static void call_unlink(kcw_ha_t *ha, call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        ha->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void on_response(const kcw_http_resp_t *resp, void *arg);
static int on_watch_data(long status, const char *data, size_t len, void *arg);

/* Sends body (a JSON object, taken) to path on the current endpoint. */
static int call_send(kcw_ha_t *ha, call_t *c, const char *path, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        free(c);
        return -ENOMEM;
    }
    const char *base = ha->conf->endpoints[ha->endpoint % ha->conf->n_endpoints];
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", base, path);
    /* A step must end before the next tick; a permit before the fence. */
    int64_t timeout = c->kind == CALL_PERMIT ? ha->lease_ttl_ms / 4 : tick_ms(ha);
    if (c->kind == CALL_WATCH)
        timeout = WATCH_TIMEOUT_MS;
    kcw_http_req_t req = {.method = "POST",
                          .url = url,
                          .body = text,
                          .body_len = strlen(text),
                          .timeout_ms = timeout < 200 ? 200 : timeout,
                          .max_body = BODY_MAX,
                          .on_data = c->kind == CALL_WATCH ? on_watch_data : NULL};
    c->ha = ha;
    c->sent_ms = fence_now_ms();
    c->lease = ha->lease;
    c->next = ha->calls;
    c->prev = NULL;
    if (ha->calls)
        ha->calls->prev = c;
    ha->calls = c;
    int rc = kcw_http_request(ha->http, &req, on_response, c);
    free(text);
    if (rc < 0) {
        call_unlink(ha, c);
        free(c);
    }
    return rc;
}

/* A new call of kind about key with body b (taken, may be NULL on OOM). */
static int call_start(kcw_ha_t *ha, call_kind_t kind, size_t key, const char *path, json_t *b,
                      kcw_ha_permit_cb cb, void *arg)
{
    call_t *c = calloc(1, sizeof(*c));
    if (!c || !b) {
        free(c);
        json_decref(b);
        return -ENOMEM;
    }
    c->kind = kind;
    c->key = key;
    c->permit_cb = cb;
    c->permit_arg = arg;
    return call_send(ha, c, path, b);
}

static json_t *json_b64(const char *s)
{
    char *e = b64_encode(s, strlen(s));
    json_t *j = e ? json_string(e) : NULL;
    free(e);
    return j;
}

static json_t *json_id(int64_t id)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, id);
    return json_string(buf);
}

/* The owners/members key of name, or the prefix itself with name "". */
static void make_key(const kcw_ha_t *ha, char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s/%s", ha->conf->prefix, dir, name);
}

static json_t *range_op(const kcw_ha_t *ha, const char *dir)
{
    char from[KEY_MAX_LEN], to[KEY_MAX_LEN];
    make_key(ha, from, sizeof(from), dir, "");
    snprintf(to, sizeof(to), "%s", from);
    to[strlen(to) - 1] = '/' + 1; /* every key under from/ */
    return json_pack("{s:{s:o,s:o}}", "request_range", "key", json_b64(from), "range_end",
                     json_b64(to));
}

static int64_t json_int64(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static void on_tick(uv_timer_t *t);

/* A step now rather than at the next tick (the timer keeps its period). */
static void step_soon(kcw_ha_t *ha)
{
    if (ha->closing || !ha->started)
        return;
    if (ha->step_busy) {
        ha->step_again = true;
        return;
    }
    ha->kicked = true;
    uv_timer_start(&ha->tick, on_tick, 0, (uint64_t)tick_ms(ha));
}

static void step_end(kcw_ha_t *ha)
{
    ha->step_busy = false;
    report(ha);
    if (ha->step_again) {
        ha->step_again = false;
        step_soon(ha);
    }
}

static void step_fail(kcw_ha_t *ha, const char *what, const char *detail)
{
    set_error(ha, what, detail);
    ha->endpoint++;
    step_end(ha);
}

/* The handover read's answer (NULL: it failed): the records go to the
 * callback, then the keys just claimed count as ours. Without the records
 * this instance acts anyway; what it pages again is at-least-once. */
/* The restart records of keys just claimed: <prefix>/actions/<key>/restarts/. */
static bool restart_record_wanted(const kcw_ha_t *ha, const char *key)
{
    char dir[KEY_MAX_LEN];
    make_key(ha, dir, sizeof(dir), "actions", "");
    if (strncmp(key, dir, strlen(dir)) != 0)
        return false;
    const char *name = key + strlen(dir), *slash = strstr(name, "/restarts/");
    for (size_t i = 0; slash && i < ha->n_keys; i++)
        if (ha->keys[i].handover && strlen(ha->keys[i].name) == (size_t)(slash - name) &&
            strncmp(ha->keys[i].name, name, (size_t)(slash - name)) == 0)
            return true;
    return false;
}

/* The values of kvs (at most KCW_HA_MAX_RECORDS, decoded, malloc'd each),
 * those of restart records only when restarts is set; NULL on OOM. */
static char **handover_values(const kcw_ha_t *ha, json_t *kvs, bool restarts, size_t *got)
{
    size_t n = json_array_size(kvs);
    if (n > KCW_HA_MAX_RECORDS)
        n = KCW_HA_MAX_RECORDS;
    char **values = calloc(n ? n : 1, sizeof(*values));
    *got = 0;
    for (size_t i = 0; values && i < n; i++) {
        json_t *kv = json_array_get(kvs, i);
        const char *v = json_string_value(json_object_get(kv, "value"));
        const char *k = json_string_value(json_object_get(kv, "key"));
        char key[KEY_MAX_LEN + 32];
        if (restarts && (!k || b64_decode(k, key, sizeof(key)) < 0 ||
                         !restart_record_wanted(ha, key)))
            continue;
        size_t len = v ? strlen(v) : 0;
        if (!v || len > KCW_HA_RECORD_MAX * 4 / 3 + 4 || !(values[*got] = malloc(len + 1)))
            continue;
        if (b64_decode(v, values[*got], len + 1) < 0) {
            free(values[*got]);
            continue;
        }
        (*got)++;
    }
    return values;
}

static void values_free(char **values, size_t n)
{
    for (size_t i = 0; values && i < n; i++)
        free(values[i]);
    free(values);
}

static void handover_done(kcw_ha_t *ha, json_t *root)
{
    json_t *responses = root ? json_object_get(root, "responses") : NULL;
    json_t *notified = json_object_get(
        json_object_get(json_array_get(responses, 0), "response_range"), "kvs");
    json_t *actions = json_object_get(
        json_object_get(json_array_get(responses, 1), "response_range"), "kvs");
    size_t got = 0, got_r = 0;
    char **values = handover_values(ha, notified, false, &got);
    char **restarts = handover_values(ha, actions, true, &got_r);
    if (!root)
        kcw_log(KCW_LOG_WARN, "ha: handover read failed; acting without the notification logs "
                "and restart records of the instances before", "instance", ha->instance, NULL);
    if (ha->handover_cb && values)
        ha->handover_cb(ha->handover_arg, (const char *const *)values, got);
    if (ha->restarts_cb && restarts)
        ha->restarts_cb(ha->restarts_arg, (const char *const *)restarts, got_r);
    values_free(values, got);
    values_free(restarts, got_r);
    for (size_t i = 0; i < ha->n_keys; i++)
        ha->keys[i].handover = false;
    ha->handover_wanted = false;
    step_end(ha);
}

static int send_member(kcw_ha_t *ha)
{
    char key[KEY_MAX_LEN];
    make_key(ha, key, sizeof(key), "members", ha->instance);
    json_t *b = json_pack("{s:o,s:o,s:o}", "key", json_b64(key), "value", json_b64(ha->instance),
                          "lease", json_id(ha->lease));
    return call_start(ha, CALL_MEMBER, 0, "/v3/kv/put", b, NULL, NULL);
}

static void send_read(kcw_ha_t *ha)
{
    json_t *b = json_pack("{s:[o,o]}", "success", range_op(ha, "members"), range_op(ha, "owners"));
    if (call_start(ha, CALL_READ, 0, "/v3/kv/txn", b, NULL, NULL) < 0)
        step_fail(ha, "%s", "cannot send the ownership read");
}

/* One answer line of the watch: a deleted ownership key starts a step. */
static void watch_line(kcw_ha_t *ha, const char *line, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(line, len, 0, &je);
    json_t *events = json_object_get(json_object_get(root, "result"), "events");
    for (size_t i = 0; i < json_array_size(events); i++) {
        const char *type = json_string_value(json_object_get(json_array_get(events, i), "type"));
        if (type && strcmp(type, "DELETE") == 0) {
            step_soon(ha);
            break;
        }
    }
    json_decref(root);
}

/* Runs inside the transfer (http_client.h): parses whole lines, keeps at
 * most WATCH_LINE_MAX of one; a longer one is read as "something went". */
static int on_watch_data(long status, const char *data, size_t len, void *arg)
{
    kcw_ha_t *ha = ((call_t *)arg)->ha;
    if (status != 200 || ha->closing)
        return -1;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (!ha->watch_skip && n > WATCH_LINE_MAX - ha->watch_len) {
            ha->watch_skip = true;
            step_soon(ha);
        }
        if (!ha->watch_skip) {
            memcpy(ha->watch_buf + ha->watch_len, data, n);
            ha->watch_len += n;
        }
        if (!nl)
            break;
        if (!ha->watch_skip && ha->watch_len > 0)
            watch_line(ha, ha->watch_buf, ha->watch_len);
        ha->watch_len = 0;
        ha->watch_skip = false;
        data = nl + 1;
        len -= n + 1;
    }
    return 0;
}

/* Opens the watch on the owners' keys unless it is open. */
static void watch_open(kcw_ha_t *ha)
{
    if (ha->watch_open || ha->closing || !ha->lease)
        return;
    if (!ha->watch_buf && !(ha->watch_buf = malloc(WATCH_LINE_MAX)))
        return;
    char from[KEY_MAX_LEN], to[KEY_MAX_LEN];
    make_key(ha, from, sizeof(from), "owners", "");
    snprintf(to, sizeof(to), "%s", from);
    to[strlen(to) - 1] = '/' + 1;
    json_t *b = json_pack("{s:{s:o,s:o}}", "create_request", "key", json_b64(from), "range_end",
                          json_b64(to));
    ha->watch_len = 0;
    ha->watch_skip = false;
    if (call_start(ha, CALL_WATCH, 0, "/v3/watch", b, NULL, NULL) == 0)
        ha->watch_open = true;
}

static void on_tick(uv_timer_t *t)
{
    kcw_ha_t *ha = t->data;
    if (ha->closing || ha->step_busy)
        return;
    bool kicked = ha->kicked;
    ha->kicked = false;
    watch_open(ha);
    ha->step_busy = true;
    /* Started by the watch while the lease is fresh: straight to the read. */
    if (kicked && ha->lease && kcw_ha_fence_valid(&ha->fence, fence_now_ms())) {
        send_read(ha);
        return;
    }
    int rc;
    if (!ha->lease)
        rc = call_start(ha, CALL_GRANT, 0, "/v3/lease/grant",
                        json_pack("{s:I}", "TTL", (json_int_t)kcw_ha_lease_ttl_s(ha->conf->ttl_ms)),
                        NULL, NULL);
    else
        rc = call_start(ha, CALL_KEEPALIVE, 0, "/v3/lease/keepalive",
                        json_pack("{s:o}", "ID", json_id(ha->lease)), NULL, NULL);
    if (rc < 0)
        step_fail(ha, "%s", "cannot send a lease request");
}

/* One txn that creates the owners key with our lease if absent (claim) or
 * deletes it while it carries our lease (release). */
static int send_ownership_txn(kcw_ha_t *ha, size_t ki, bool claim)
{
    char key[KEY_MAX_LEN];
    make_key(ha, key, sizeof(key), "owners", ha->keys[ki].name);
    json_t *b;
    if (claim)
        b = json_pack("{s:[{s:s,s:o,s:s}],s:[{s:{s:o,s:o,s:o}}]}", "compare", "target", "CREATE",
                      "key", json_b64(key), "create_revision", "0", "success", "request_put",
                      "key", json_b64(key), "value", json_b64(ha->instance), "lease",
                      json_id(ha->lease));
    else
        b = json_pack("{s:[{s:s,s:o,s:o}],s:[{s:{s:o}}]}", "compare", "target", "LEASE", "key",
                      json_b64(key), "lease", json_id(ha->lease), "success",
                      "request_delete_range", "key", json_b64(key));
    return call_start(ha, claim ? CALL_CLAIM : CALL_RELEASE, ki, "/v3/kv/txn", b, NULL, NULL);
}

/* Every claim and release of the step answered. Keys just claimed wait for
 * the records of the instances before (kcw_ha_record), read in one range,
 * so the handover callback has them before this instance acts. */
static void sync_finish(kcw_ha_t *ha)
{
    if (!ha->handover_wanted) {
        step_end(ha);
        return;
    }
    /* One consistent read of both: notification logs, restart records. */
    json_t *b = json_pack("{s:[o,o]}", "success", range_op(ha, "notified"),
                          range_op(ha, "actions"));
    if (call_start(ha, CALL_HANDOVER, 0, "/v3/kv/txn", b, NULL, NULL) < 0)
        handover_done(ha, NULL);
}

/* kcw_ha_assign() over the clusters, and separately over the PromQL key, so
 * clusters spread evenly whatever else is shared. owner[i] indexes members. */
static int assign_all(const kcw_ha_t *ha, const char *const *members, size_t n_members,
                      size_t *owner)
{
    size_t n = ha->n_keys;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    size_t *idx = calloc(n ? n : 1, sizeof(*idx));
    size_t *cur = calloc(n ? n : 1, sizeof(*cur));
    size_t *out = calloc(n ? n : 1, sizeof(*out));
    int rc = keys && idx && cur && out ? 0 : -ENOMEM;
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if ((strcmp(ha->keys[i].name, KCW_HA_PROMQL_KEY) == 0) != (pass == 1))
                continue;
            keys[m] = ha->keys[i].name;
            idx[m] = i;
            cur[m] = SIZE_MAX;
            for (size_t j = 0; ha->keys[i].owner[0] && j < n_members; j++)
                if (strcmp(members[j], ha->keys[i].owner) == 0)
                    cur[m] = j;
            m++;
        }
        if (m == 0)
            continue;
        rc = kcw_ha_assign(keys, m, members, n_members, cur, out);
        for (size_t j = 0; rc == 0 && j < m; j++)
            owner[idx[j]] = out[j];
    }
    free(keys);
    free(idx);
    free(cur);
    free(out);
    return rc;
}

/* The read's answer: who is alive, who owns what; then claims and releases
 * so that ownership follows the assignment. */
static void apply_read(kcw_ha_t *ha, json_t *root)
{
    json_t *responses = json_object_get(root, "responses");
    json_t *mem = json_object_get(json_object_get(json_array_get(responses, 0), "response_range"),
                                  "kvs");
    json_t *own = json_object_get(json_object_get(json_array_get(responses, 1), "response_range"),
                                  "kvs");
    char members_dir[KEY_MAX_LEN], owners_dir[KEY_MAX_LEN];
    make_key(ha, members_dir, sizeof(members_dir), "members", "");
    make_key(ha, owners_dir, sizeof(owners_dir), "owners", "");
    size_t n_kv = json_array_size(mem);
    if (n_kv > KCW_HA_MAX_MEMBERS)
        n_kv = KCW_HA_MAX_MEMBERS;
    char(*names)[NAME_MAX_LEN] = calloc(n_kv + 1, sizeof(*names));
    const char **members = calloc(n_kv + 1, sizeof(*members));
    size_t *owner = calloc(ha->n_keys ? ha->n_keys : 1, sizeof(*owner));
    if (!names || !members || !owner) {
        free(names);
        free(members);
        free(owner);
        step_fail(ha, "%s", "out of memory");
        return;
    }
    size_t n_members = 0;
    bool me_listed = false;
    for (size_t i = 0; i < n_kv; i++) {
        char key[KEY_MAX_LEN];
        const char *k = json_string_value(json_object_get(json_array_get(mem, i), "key"));
        if (!k || b64_decode(k, key, sizeof(key)) < 0 ||
            strncmp(key, members_dir, strlen(members_dir)) != 0)
            continue;
        snprintf(names[n_members], NAME_MAX_LEN, "%s", key + strlen(members_dir));
        members[n_members] = names[n_members];
        me_listed |= strcmp(names[n_members], ha->instance) == 0;
        n_members++;
    }
    for (size_t i = 0; i < ha->n_keys; i++) {
        ha->keys[i].owner[0] = '\0';
        ha->keys[i].owner_lease = 0;
    }
    for (size_t i = 0; i < json_array_size(own); i++) {
        json_t *kv = json_array_get(own, i);
        char key[KEY_MAX_LEN], value[NAME_MAX_LEN];
        const char *k = json_string_value(json_object_get(kv, "key"));
        const char *v = json_string_value(json_object_get(kv, "value"));
        if (!k || !v || b64_decode(k, key, sizeof(key)) < 0 ||
            b64_decode(v, value, sizeof(value)) < 0 ||
            strncmp(key, owners_dir, strlen(owners_dir)) != 0)
            continue;
        key_state_t *ks = key_find(ha, key + strlen(owners_dir), NULL);
        if (!ks)
            continue; /* a cluster this instance is not configured for */
        snprintf(ks->owner, sizeof(ks->owner), "%s", value);
        ks->owner_lease = json_int64(json_object_get(kv, "lease"));
    }
    if (!me_listed) {
        /* The member key went (deleted by hand, lost in a restore): nothing is
         * assigned to an instance the others cannot see. Register again. */
        members[n_members++] = ha->instance;
        ha->step_pending++;
        if (send_member(ha) < 0)
            ha->step_pending--;
    }
    if (assign_all(ha, members, n_members, owner) == 0) {
        for (size_t i = 0; i < ha->n_keys; i++) {
            key_state_t *ks = &ha->keys[i];
            bool assigned_me = strcmp(members[owner[i]], ha->instance) == 0;
            bool claim = assigned_me && ks->owner_lease == 0;
            bool release = !assigned_me && key_held(ha, ks);
            if (!claim && !release)
                continue;
            ha->step_pending++;
            if (send_ownership_txn(ha, i, claim) < 0)
                ha->step_pending--;
        }
    }
    free(names);
    free(members);
    free(owner);
    if (ha->step_pending == 0)
        sync_finish(ha);
}

static void sync_done_one(kcw_ha_t *ha)
{
    if (ha->step_pending > 0 && --ha->step_pending == 0)
        sync_finish(ha);
}

static void finish_permit(call_t *c, bool ok, const char *why)
{
    if (c->permit_cb)
        c->permit_cb(c->permit_arg, ok, why);
}

static void ha_free(kcw_ha_t *ha);

static void on_response(const kcw_http_resp_t *resp, void *arg)
{
    call_t *c = arg;
    kcw_ha_t *ha = c->ha;
    call_unlink(ha, c);
    json_t *root = NULL;
    char err[256] = "";
    if (resp->status != 0 && resp->curl_code != 0) {
        /* Cut after the status line (reset, short body, timeout): what
         * arrived is not the answer, whatever it parses to. */
        snprintf(err, sizeof(err), "%s", resp->error[0] ? resp->error : "answer cut short");
    } else if (resp->status == 200) {
        json_error_t je;
        root = json_loadb(resp->body, resp->body_len, 0, &je);
        if (!json_is_object(root))
            snprintf(err, sizeof(err), "unparsable answer: %s", je.text);
    } else if (resp->status) {
        /* The gateway's error body names the cause ("etcdserver: ..."). */
        json_error_t je;
        json_t *e = json_loadb(resp->body, resp->body_len, 0, &je);
        const char *msg = json_string_value(json_object_get(e, "error"));
        snprintf(err, sizeof(err), "HTTP %ld: %.200s", resp->status, msg ? msg : resp->body);
        json_decref(e);
    } else {
        snprintf(err, sizeof(err), "%s", resp->error[0] ? resp->error : "no answer");
    }
    if (err[0]) {
        json_decref(root);
        root = NULL;
    }
    if (ha->closing) {
        if (c->kind == CALL_PERMIT)
            finish_permit(c, false, "cancelled");
        bool revoked = c->kind == CALL_REVOKE;
        if (revoked)
            kcw_log(root ? KCW_LOG_INFO : KCW_LOG_WARN,
                    root ? "ha: lease revoked; the other instances take over now"
                         : "ha: lease not revoked; the other instances take over after the TTL",
                    "instance", ha->instance, "error", err, NULL);
        json_decref(root);
        free(c);
        if (revoked && --ha->open_handles == 0)
            ha_free(ha);
        return;
    }
    switch (c->kind) {
    case CALL_GRANT: {
        int64_t id = root ? json_int64(json_object_get(root, "ID")) : 0;
        int64_t ttl = root ? json_int64(json_object_get(root, "TTL")) : 0;
        if (id == 0 || ttl <= 0) {
            step_fail(ha, "lease grant failed: %s", err[0] ? err : "no lease in the answer");
            break;
        }
        ha->lease = id;
        ha->lease_ttl_ms = ttl * 1000;
        kcw_ha_fence_renewed(&ha->fence, c->sent_ms, ha->lease_ttl_ms);
        fence_timer_arm(ha);
        char ids[32];
        snprintf(ids, sizeof(ids), "%" PRId64, id);
        kcw_log(KCW_LOG_INFO, "ha: lease granted", "instance", ha->instance, "lease", ids, NULL);
        if (send_member(ha) < 0)
            step_fail(ha, "%s", "cannot register the member key");
        break;
    }
    case CALL_MEMBER:
        if (!root) {
            if (ha->step_pending > 0) {
                sync_done_one(ha);
                break;
            }
            step_fail(ha, "member registration failed: %s", err);
            break;
        }
        if (ha->step_pending > 0)
            sync_done_one(ha);
        else
            send_read(ha);
        break;
    case CALL_KEEPALIVE: {
        if (!root) {
            step_fail(ha, "keepalive failed: %s", err);
            break;
        }
        json_t *result = json_object_get(root, "result");
        int64_t ttl = json_int64(json_object_get(result, "TTL"));
        if (c->lease != ha->lease) {
            step_end(ha);
            break;
        }
        if (ttl <= 0) {
            /* etcd no longer knows the lease: it expired while we could not
             * renew it (pause, partition). Every key it carried is gone. */
            lease_lost(ha, "lease expired at etcd");
            step_end(ha);
            break;
        }
        ha->renewals++;
        ha->lease_ttl_ms = ttl * 1000;
        kcw_ha_fence_renewed(&ha->fence, c->sent_ms, ha->lease_ttl_ms);
        fence_timer_arm(ha);
        ha->error[0] = '\0';
        kcw_episode_ok(&ha->failing);
        send_read(ha);
        break;
    }
    case CALL_READ:
        if (!root) {
            step_fail(ha, "ownership read failed: %s", err);
            break;
        }
        apply_read(ha, root);
        break;
    case CALL_CLAIM:
    case CALL_RELEASE: {
        bool ok = root && json_is_true(json_object_get(root, "succeeded"));
        if (ok && c->key < ha->n_keys && c->lease == ha->lease) {
            key_state_t *ks = &ha->keys[c->key];
            if (c->kind == CALL_CLAIM) {
                snprintf(ks->owner, sizeof(ks->owner), "%s", ha->instance);
                ks->owner_lease = ha->lease;
                if (ha->handover_cb || ha->restarts_cb) {
                    ks->handover = true;
                    ha->handover_wanted = true;
                }
            } else {
                ks->owner[0] = '\0';
                ks->owner_lease = 0;
            }
        } else if (!root) {
            set_error(ha, "ownership txn failed: %s", err);
        }
        sync_done_one(ha);
        break;
    }
    case CALL_REVOKE: /* only sent while closing */
        break;
    case CALL_HANDOVER:
        handover_done(ha, root);
        break;
    case CALL_WATCH:
        /* Ended (etcd went, or the timeout): the next tick opens it again. */
        ha->watch_open = false;
        break;
    case CALL_RECORD:
        if (!root)
            kcw_log(KCW_LOG_WARN, "ha: notification log not recorded in etcd", "error", err,
                    NULL);
        break;
    case CALL_PERMIT: {
        bool ok = root && json_is_true(json_object_get(root, "succeeded"));
        if (ok && c->lease == ha->lease && kcw_ha_fence_valid(&ha->fence, fence_now_ms())) {
            finish_permit(c, true, NULL);
            break;
        }
        char why[320];
        if (!root)
            snprintf(why, sizeof(why), "ownership check failed: %s", err);
        else if (!ok)
            snprintf(why, sizeof(why), "this instance no longer owns the cluster (etcd txn)");
        else
            snprintf(why, sizeof(why), "lease not renewed in time");
        if (root && !ok && c->key < ha->n_keys && c->lease == ha->keys[c->key].owner_lease) {
            /* etcd says the key is not ours any more: stop acting now. */
            ha->keys[c->key].owner_lease = 0;
            ha->keys[c->key].owner[0] = '\0';
            report(ha);
        }
        finish_permit(c, false, why);
        break;
    }
    }
    json_decref(root);
    free(c);
}

/* --- public ------------------------------------------------------------------ */

kcw_ha_t *kcw_ha_new(uv_loop_t *loop, kcw_http_t *http, const kcw_ha_conf_t *conf,
                     kcw_ha_change_cb cb, void *arg)
{
    if (!conf || conf->n_endpoints == 0 || !conf->prefix || conf->ttl_ms < 1000)
        return NULL;
    kcw_ha_t *ha = calloc(1, sizeof(*ha));
    if (!ha)
        return NULL;
    ha->loop = loop;
    ha->http = http;
    ha->conf = conf;
    ha->cb = cb;
    ha->arg = arg;
    if (conf->instance) {
        snprintf(ha->instance, sizeof(ha->instance), "%s", conf->instance);
    } else if (gethostname(ha->instance, sizeof(ha->instance) - 1) < 0 || !ha->instance[0]) {
        snprintf(ha->instance, sizeof(ha->instance), "kcwatch-%ld", (long)getpid());
    }
    ha->lease_ttl_ms = conf->ttl_ms;
    snprintf(ha->error, sizeof(ha->error), "no lease yet");
    return ha;
}

int kcw_ha_set_keys(kcw_ha_t *ha, const char *const *keys, size_t n)
{
    if (n > KCW_HA_MAX_KEYS)
        return -E2BIG;
    key_state_t *nk = calloc(n ? n : 1, sizeof(*nk));
    if (!nk)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(nk[i].name = strdup(keys[i]))) {
            while (i-- > 0)
                free(nk[i].name);
            free(nk);
            return -ENOMEM;
        }
        /* Keys that stay keep what was known about them. */
        const key_state_t *old = key_find(ha, keys[i], NULL);
        if (old) {
            memcpy(nk[i].owner, old->owner, sizeof(nk[i].owner));
            nk[i].owner_lease = old->owner_lease;
            nk[i].reported = old->reported;
        }
    }
    for (size_t i = 0; i < ha->n_keys; i++)
        free(ha->keys[i].name);
    free(ha->keys);
    ha->keys = nk;
    ha->n_keys = n;
    return 0;
}

void kcw_ha_set_conf(kcw_ha_t *ha, const kcw_ha_conf_t *conf)
{
    if (!ha || !conf || conf->n_endpoints == 0)
        return;
    ha->conf = conf;
    if (ha->started)
        uv_timer_set_repeat(&ha->tick, (uint64_t)tick_ms(ha));
}

int kcw_ha_start(kcw_ha_t *ha)
{
    uv_timer_init(ha->loop, &ha->tick);
    uv_timer_init(ha->loop, &ha->fence_timer);
    ha->tick.data = ha;
    ha->fence_timer.data = ha;
    ha->open_handles = 2;
    ha->started = true;
    kcw_log(KCW_LOG_INFO, "ha: joining", "instance", ha->instance, "endpoint",
            ha->conf->endpoints[0], "prefix", ha->conf->prefix, NULL);
    return uv_timer_start(&ha->tick, on_tick, 0, (uint64_t)tick_ms(ha));
}

const char *kcw_ha_instance(const kcw_ha_t *ha)
{
    return ha ? ha->instance : "";
}

const char *kcw_ha_owner(const kcw_ha_t *ha, const char *key)
{
    const key_state_t *k = ha ? key_find(ha, key, NULL) : NULL;
    return k ? k->owner : NULL;
}

size_t kcw_ha_key_count(const kcw_ha_t *ha)
{
    return ha ? ha->n_keys : 0;
}

const char *kcw_ha_key(const kcw_ha_t *ha, size_t i)
{
    return ha && i < ha->n_keys ? ha->keys[i].name : NULL;
}

uint64_t kcw_ha_renewals(const kcw_ha_t *ha)
{
    return ha ? ha->renewals : 0;
}

const char *kcw_ha_error(const kcw_ha_t *ha)
{
    if (!ha)
        return "";
    return kcw_ha_lease_ok(ha) ? "" : (ha->error[0] ? ha->error : "lease not renewed in time");
}

void kcw_ha_set_handover(kcw_ha_t *ha, kcw_ha_handover_cb cb, void *arg)
{
    if (!ha)
        return;
    ha->handover_cb = cb;
    ha->handover_arg = arg;
}

void kcw_ha_set_restarts_handover(kcw_ha_t *ha, kcw_ha_handover_cb cb, void *arg)
{
    if (!ha)
        return;
    ha->restarts_cb = cb;
    ha->restarts_arg = arg;
}

int kcw_ha_record(kcw_ha_t *ha, const char *name, const char *value)
{
    if (!ha || ha->closing || !name || !value)
        return -EINVAL;
    if (strlen(value) > KCW_HA_RECORD_MAX)
        return -E2BIG;
    if (!kcw_ha_lease_ok(ha))
        return -EAGAIN;
    /* Names are hashed: any text (a group key) makes a short, safe key. */
    char dir[KEY_MAX_LEN], key[KEY_MAX_LEN + 32];
    make_key(ha, dir, sizeof(dir), "notified", ha->instance);
    snprintf(key, sizeof(key), "%s/%016" PRIx64, dir, fnv1a(14695981039346656037ULL, name));
    json_t *b = json_pack("{s:o,s:o}", "key", json_b64(key), "value", json_b64(value));
    return call_start(ha, CALL_RECORD, 0, "/v3/kv/put", b, NULL, NULL);
}

int kcw_ha_permit(kcw_ha_t *ha, const char *key, const char *what, const char *target,
                  kcw_ha_permit_cb cb, void *arg)
{
    size_t ki;
    if (!ha || ha->closing || !key_find(ha, key, &ki))
        return -ENOENT;
    if (!kcw_ha_owns(ha, key))
        return -EPERM;
    char owners[KEY_MAX_LEN], record[KEY_MAX_LEN];
    make_key(ha, owners, sizeof(owners), "owners", key);
    snprintf(record, sizeof(record), "%s/actions/%s/last", ha->conf->prefix, key);
    char value[ACTION_MAX];
    snprintf(value, sizeof(value), "%s", what ? what : "");
    json_t *b = json_pack("{s:[{s:s,s:o,s:o}],s:[{s:{s:o,s:o}}]}", "compare", "target", "LEASE",
                          "key", json_b64(owners), "lease", json_id(ha->lease), "success",
                          "request_put", "key", json_b64(record), "value", json_b64(value));
    if (b && target) {
        /* The target's own record, for whoever owns the cluster next. */
        char per[KEY_MAX_LEN + 32];
        snprintf(per, sizeof(per), "%s/actions/%s/restarts/%016" PRIx64, ha->conf->prefix, key,
                 fnv1a(14695981039346656037ULL, target));
        json_array_append_new(json_object_get(b, "success"),
                              json_pack("{s:{s:o,s:o}}", "request_put", "key", json_b64(per),
                                        "value", json_b64(value)));
    }
    return call_start(ha, CALL_PERMIT, ki, "/v3/kv/txn", b, cb, arg);
}

static void ha_free(kcw_ha_t *ha)
{
    void (*done)(void *) = ha->on_closed;
    void *done_arg = ha->closed_arg;
    for (size_t i = 0; i < ha->n_keys; i++)
        free(ha->keys[i].name);
    free(ha->keys);
    free(ha->watch_buf);
    free(ha);
    if (done)
        done(done_arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    kcw_ha_t *ha = h->data;
    if (--ha->open_handles == 0)
        ha_free(ha);
}

void kcw_ha_close(kcw_ha_t *ha, void (*on_closed)(void *arg), void *arg)
{
    if (!ha)
        return;
    ha->closing = true;
    ha->on_closed = on_closed;
    ha->closed_arg = arg;
    /* Each call's callback runs from inside kcw_http_cancel and frees it. */
    while (ha->calls) {
        call_t *c = ha->calls;
        if (kcw_http_cancel(ha->http, c) == 0) {
            call_unlink(ha, c);
            if (c->kind == CALL_PERMIT)
                finish_permit(c, false, "cancelled");
            free(c);
        }
    }
    if (!ha->started) {
        ha_free(ha);
        return;
    }
    /* A clean stop hands the clusters over at once: revoking the lease
     * deletes every key it carries. The revoke counts as one more handle. */
    if (ha->lease &&
        call_start(ha, CALL_REVOKE, 0, "/v3/lease/revoke",
                   json_pack("{s:o}", "ID", json_id(ha->lease)), NULL, NULL) == 0)
        ha->open_handles++;
    uv_close((uv_handle_t *)&ha->tick, on_handle_closed);
    uv_close((uv_handle_t *)&ha->fence_timer, on_handle_closed);
}

/* --- one-shot read for `kcwatch status` --------------------------------------- */

typedef struct owners_fetch {
    kcw_http_t *http;
    const kcw_ha_conf_t *conf;
    size_t endpoint;
    kcw_ha_owners_cb cb;
    void *arg;
} owners_fetch_t;

static int owners_fetch_send(owners_fetch_t *f);

static void on_owners(const kcw_http_resp_t *resp, void *arg)
{
    owners_fetch_t *f = arg;
    json_error_t je;
    json_t *root = resp->status == 200 ? json_loadb(resp->body, resp->body_len, 0, &je) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        char err[320];
        if (resp->status)
            snprintf(err, sizeof(err), "HTTP %ld from etcd", resp->status);
        else
            snprintf(err, sizeof(err), "%s", resp->error[0] ? resp->error : "no answer");
        /* The next endpoint, unless every one failed (or this was a cancel). */
        if (strcmp(resp->error, "cancelled") != 0 && ++f->endpoint < f->conf->n_endpoints &&
            owners_fetch_send(f) == 0)
            return;
        f->cb(f->arg, NULL, 0, err);
        free(f);
        return;
    }
    char dir[KEY_MAX_LEN];
    snprintf(dir, sizeof(dir), "%s/owners/", f->conf->prefix);
    json_t *kvs = json_object_get(root, "kvs");
    size_t n = json_array_size(kvs);
    if (n > KCW_HA_MAX_KEYS)
        n = KCW_HA_MAX_KEYS;
    kcw_ha_owner_entry_t *list = calloc(n ? n : 1, sizeof(*list));
    char(*keys)[KEY_MAX_LEN] = calloc(n ? n : 1, sizeof(*keys));
    char(*owners)[NAME_MAX_LEN] = calloc(n ? n : 1, sizeof(*owners));
    size_t got = 0;
    for (size_t i = 0; list && keys && owners && i < n; i++) {
        json_t *kv = json_array_get(kvs, i);
        const char *k = json_string_value(json_object_get(kv, "key"));
        const char *v = json_string_value(json_object_get(kv, "value"));
        char key[KEY_MAX_LEN];
        if (!k || !v || b64_decode(k, key, sizeof(key)) < 0 ||
            b64_decode(v, owners[got], NAME_MAX_LEN) < 0 || strncmp(key, dir, strlen(dir)) != 0)
            continue;
        snprintf(keys[got], KEY_MAX_LEN, "%s", key + strlen(dir));
        list[got] = (kcw_ha_owner_entry_t){.key = keys[got], .owner = owners[got]};
        got++;
    }
    if (list && keys && owners)
        f->cb(f->arg, list, got, NULL);
    else
        f->cb(f->arg, NULL, 0, "out of memory");
    free(list);
    free(keys);
    free(owners);
    json_decref(root);
    free(f);
}

static int owners_fetch_send(owners_fetch_t *f)
{
    char from[KEY_MAX_LEN], to[KEY_MAX_LEN], url[1024];
    snprintf(from, sizeof(from), "%s/owners/", f->conf->prefix);
    snprintf(to, sizeof(to), "%s/owners0", f->conf->prefix);
    json_t *b = json_pack("{s:o,s:o}", "key", json_b64(from), "range_end", json_b64(to));
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!text)
        return -ENOMEM;
    snprintf(url, sizeof(url), "%s/v3/kv/range", f->conf->endpoints[f->endpoint]);
    kcw_http_req_t req = {.method = "POST",
                          .url = url,
                          .body = text,
                          .body_len = strlen(text),
                          .timeout_ms = 5000,
                          .max_body = BODY_MAX};
    int rc = kcw_http_request(f->http, &req, on_owners, f);
    free(text);
    return rc;
}

int kcw_ha_owners_fetch(kcw_http_t *http, const kcw_ha_conf_t *conf, kcw_ha_owners_cb cb,
                        void *arg)
{
    if (!conf || conf->n_endpoints == 0 || !conf->prefix)
        return -EINVAL;
    owners_fetch_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    *f = (owners_fetch_t){.http = http, .conf = conf, .cb = cb, .arg = arg};
    int rc = owners_fetch_send(f);
    if (rc < 0)
        free(f);
    return rc;
}

json_t *kcw_ha_owners_json(const kcw_config_t *cfg, const kcw_ha_owner_entry_t *owners, size_t n,
                           const char *err)
{
    json_t *ha = json_object(), *map = json_object();
    if (!ha || !map) {
        json_decref(ha);
        json_decref(map);
        return NULL;
    }
    for (size_t i = 0; i <= cfg->n_clusters; i++) {
        const char *key = i < cfg->n_clusters ? cfg->clusters[i].name : KCW_HA_PROMQL_KEY;
        if (i == cfg->n_clusters && cfg->n_clusters < 2)
            break;
        const char *who = NULL;
        for (size_t j = 0; j < n; j++)
            if (strcmp(owners[j].key, key) == 0)
                who = owners[j].owner;
        json_object_set_new(map, key, who ? json_string(who) : json_null());
    }
    json_object_set_new(ha, "owners", map);
    json_object_set_new(ha, "error", err ? json_string(err) : json_null());
    return ha;
}

void kcw_ha_owners_print(const json_t *ha, FILE *out)
{
    if (!ha)
        return;
    const char *err = json_string_value(json_object_get(ha, "error"));
    fprintf(out, "\nOWNERSHIP (etcd)\n");
    if (err) {
        fprintf(out, "unknown: %s\n", err);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(ha, "owners"), key, v)
    {
        if (json_is_string(v))
            fprintf(out, "%s owned by %s\n", key, json_string_value(v));
        else
            fprintf(out, "%s owned by nobody (no live instance holds it)\n", key);
    }
}
