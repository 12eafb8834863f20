/* ha.h: several kcwatch instances share the work through etcd leases.
 *
 * Every instance holds one etcd lease (TTL ha.etcd.ttl) and registers itself
 * under <prefix>/members/<instance> with it. Each ownership key (one per
 * Connect cluster, plus "_promql" for alerts that name no cluster) is
 * assigned to one live member by kcw_ha_assign(), a stable hash with bounded
 * imbalance that every instance computes alike from the same member list.
 * The assigned member claims <prefix>/owners/<key> with its lease (a txn
 * that only creates the key when absent); a member that holds a key assigned
 * elsewhere releases it (a txn that deletes it only while it holds its
 * lease). A dead member's keys disappear with its lease, at most TTL later:
 * the lease is granted shorter than ha.etcd.ttl (kcw_ha_lease_ttl_s), because
 * etcd counts TTLs in whole seconds and revokes expired leases in a sweep
 * every 500 ms. The others watch <prefix>/owners/ (/v3/watch, a streaming
 * answer) and read again the moment a key is deleted, besides every TTL/8.
 *
 * Fencing by time: an instance acts for a key only while it held the key at
 * its last read and its lease cannot have expired yet: until the send time of
 * its last successful keepalive plus the granted TTL minus a safety margin,
 * on CLOCK_BOOTTIME (monotonic, and it keeps counting while the host
 * sleeps). etcd measures the lease from when it received that keepalive,
 * which is later, so the instance stops acting before etcd could give the key
 * to anyone else. On top of that, every restart asks kcw_ha_permit() first:
 * a txn that compares the ownership key's lease with ours and records the
 * action under <prefix>/actions/<key>/ in the same transaction.
 *
 * Handover: the notifier's logs are recorded (kcw_ha_record) under
 * <prefix>/notified/<instance>/, without a lease; when this instance claims
 * a key it reads them all (the handover callback) before it counts the key
 * as its own, so it does not page again what the previous owner paged.
 *
 * The pure parts (assignment, fence arithmetic) take their inputs and clock
 * from the caller; the rest runs on the loop through http_client.h against
 * etcd's v3 JSON gateway (/v3/lease/grant, /v3/lease/keepalive, /v3/kv/range,
 * /v3/kv/put, /v3/kv/txn, /v3/lease/revoke, /v3/watch; keys and values
 * base64). */
#ifndef KCWATCH_HA_H
#define KCWATCH_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <uv.h>

#include "kcwatch/config.h"
#include "kcwatch/http_client.h"

/* The ownership key of alerts that name no Connect cluster (PromQL groups
 * without a cluster label, with several clusters configured). */
#define KCW_HA_PROMQL_KEY "_promql"
/* The built-in alert of an instance that cannot renew its lease. */
#define KCW_HA_ALERT "KcwatchEtcdUnavailable"
#define KCW_HA_MAX_KEYS 4096
#define KCW_HA_MAX_MEMBERS 256
#define KCW_HA_MAX_RECORDS 10000 /* records handed over at most */
#define KCW_HA_RECORD_MAX (256 * 1024) /* bytes of one record */

/* --- pure: assignment ---------------------------------------------------- */

/* Assigns each of keys[0..n_keys) to one of members[0..n_members) and
 * writes the member's index to owner[i]. current (may be NULL) gives each
 * key's owner now (an index into members, or SIZE_MAX for none / not live).
 * Loads end balanced: n_keys / n_members each, one more for n_keys %
 * n_members of them, so they differ by at most one. Within that bound a key
 * stays with its current owner (in key-name order), so ownership only moves
 * when an owner dies or a member joins an unbalanced set; every other key
 * goes, in name order, to the member with room that ranks highest for it by
 * a rendezvous hash of (key, member). The result depends on the sets, not on
 * their order, so every instance computes the same one from the same read.
 * Duplicate members count once (the first). 0, or -EINVAL without members,
 * -ENOMEM. */
int kcw_ha_assign(const char *const *keys, size_t n_keys, const char *const *members,
                  size_t n_members, const size_t *current, size_t *owner);

/* --- pure: fencing by time ----------------------------------------------- */

typedef struct kcw_ha_fence {
    int64_t valid_until_ms; /* caller's monotonic clock; 0: no lease */
} kcw_ha_fence_t;

/* The safety margin kept before a lease of ttl_ms can expire: a quarter of
 * it, at least 500 ms, at most ttl_ms / 2. */
int64_t kcw_ha_fence_margin(int64_t ttl_ms);
/* The TTL (whole seconds) to ask etcd for, so that a lease last renewed at t
 * is revoked before t + ttl_ms: etcd expires it TTL after the renewal and
 * revokes it at its next 500 ms sweep, so the configured TTL less 500 ms,
 * rounded down (3 s -> 2 s, 10 s -> 9 s); at least 1 s (below 1.5 s the
 * configured TTL cannot be met). The fence then runs on the granted TTL. */
int64_t kcw_ha_lease_ttl_s(int64_t ttl_ms);
/* A keepalive (or grant) sent at sent_ms got granted_ttl_ms: acting is safe
 * until sent_ms + granted_ttl_ms - margin. Never moves the fence backwards
 * (a late answer to an older keepalive). granted_ttl_ms <= 0 (the lease is
 * gone) drops the fence. */
void kcw_ha_fence_renewed(kcw_ha_fence_t *f, int64_t sent_ms, int64_t granted_ttl_ms);
void kcw_ha_fence_drop(kcw_ha_fence_t *f);
bool kcw_ha_fence_valid(const kcw_ha_fence_t *f, int64_t now_ms);

/* --- on the loop ---------------------------------------------------------- */

typedef struct kcw_ha kcw_ha_t;

/* Called on the loop whenever what this instance may act for changed (a key
 * gained or lost, the lease lost or regained, etcd lost or back). */
typedef void (*kcw_ha_change_cb)(void *arg);

/* conf must outlive ha (or be replaced by kcw_ha_set_conf). Returns NULL on
 * failure or when conf has no endpoints (HA off). */
kcw_ha_t *kcw_ha_new(uv_loop_t *loop, kcw_http_t *http, const kcw_ha_conf_t *conf,
                     kcw_ha_change_cb cb, void *arg);
/* The ownership keys to share (copied; at most KCW_HA_MAX_KEYS). */
int kcw_ha_set_keys(kcw_ha_t *ha, const char *const *keys, size_t n);
/* Swaps the configuration (reload): new endpoints take effect on the next
 * request; a new TTL or prefix on the next lease. */
void kcw_ha_set_conf(kcw_ha_t *ha, const kcw_ha_conf_t *conf);
int kcw_ha_start(kcw_ha_t *ha);
/* This instance's name. */
const char *kcw_ha_instance(const kcw_ha_t *ha);
/* True when this instance may act for key now: it held the key at its last
 * read and its fence is valid on the clock right now. */
bool kcw_ha_owns(const kcw_ha_t *ha, const char *key);
/* True while the lease is held and renewed in time (the fence is valid). */
bool kcw_ha_lease_ok(const kcw_ha_t *ha);
/* The owner of key at the last read ("" when unowned), NULL for an unknown
 * key. Valid until the next loop iteration. */
const char *kcw_ha_owner(const kcw_ha_t *ha, const char *key);
size_t kcw_ha_key_count(const kcw_ha_t *ha);
const char *kcw_ha_key(const kcw_ha_t *ha, size_t i);
/* Successful keepalives since start. */
uint64_t kcw_ha_renewals(const kcw_ha_t *ha);
/* Why the lease is not held ("" when it is). */
const char *kcw_ha_error(const kcw_ha_t *ha);

/* Asks etcd, in one txn, whether key's ownership key still carries this
 * instance's lease, and if so records `what` (a short JSON or text, copied)
 * under <prefix>/actions/<key>/last and, when target is not NULL, under
 * <prefix>/actions/<key>/restarts/<hash of target>, without a lease (read by
 * the next owner: kcw_ha_set_restarts_handover). cb runs later on the loop exactly once:
 * ok true only when the txn succeeded and the fence is still valid; why
 * says what failed otherwise. 0 or negative errno (then cb never runs). */
typedef void (*kcw_ha_permit_cb)(void *arg, bool ok, const char *why);
int kcw_ha_permit(kcw_ha_t *ha, const char *key, const char *what, const char *target,
                  kcw_ha_permit_cb cb, void *arg);

/* Records (no lease, they outlive this instance) value under
 * <prefix>/notified/<instance>/<hash of name>, replacing the last value
 * recorded for that name: what this instance's notifications
 * said, for the instance that takes its clusters over. Fire and forget; 0,
 * -EAGAIN without a valid lease, -E2BIG over KCW_HA_RECORD_MAX, -ENOMEM. */
int kcw_ha_record(kcw_ha_t *ha, const char *name, const char *value);
/* Called once per step that claimed keys, with every record under
 * <prefix>/notified/ (all instances', this one's included; at most
 * KCW_HA_MAX_RECORDS), before the keys just claimed count as owned: the
 * new owner learns what was already sent before it notifies anything. If
 * the read fails, cb gets none and the keys count as owned anyway. */
typedef void (*kcw_ha_handover_cb)(void *arg, const char *const *records, size_t n);
void kcw_ha_set_handover(kcw_ha_t *ha, kcw_ha_handover_cb cb, void *arg);
/* Called in the same step, from the same read, with the restart records
 * (kcw_ha_permit's target records) of the keys just claimed only. */
void kcw_ha_set_restarts_handover(kcw_ha_t *ha, kcw_ha_handover_cb cb, void *arg);

/* One-shot read of who owns what, for `kcwatch status`: cb gets the
 * ownership keys present under the prefix with their owners (n may be 0),
 * or err. 0 or negative errno (then cb never runs). */
typedef struct kcw_ha_owner_entry {
    const char *key;
    const char *owner;
} kcw_ha_owner_entry_t;
typedef void (*kcw_ha_owners_cb)(void *arg, const kcw_ha_owner_entry_t *owners, size_t n,
                                 const char *err);
int kcw_ha_owners_fetch(kcw_http_t *http, const kcw_ha_conf_t *conf, kcw_ha_owners_cb cb,
                        void *arg);

/* The ownership of cfg's clusters (and, with several, the PromQL key) as
 * {"owners": {cluster: owner or null}, "error": text or null}; NULL on OOM.
 * Caller decrefs. */
json_t *kcw_ha_owners_json(const kcw_config_t *cfg, const kcw_ha_owner_entry_t *owners, size_t n,
                           const char *err);
/* Prints that as lines "CLUSTER owned by OWNER" under a heading; nothing
 * for NULL. */
void kcw_ha_owners_print(const json_t *ha, FILE *out);

/* Stops acting: stops the timers, cancels requests (permits answer
 * "cancelled") and revokes the lease, so its keys go at once and another
 * instance takes over without waiting for the TTL (if the revoke fails, the
 * TTL does it). on_closed runs once the handles are closed and the revoke
 * answered (at most one tick's timeout). The shared client must stay open
 * until then. */
void kcw_ha_close(kcw_ha_t *ha, void (*on_closed)(void *arg), void *arg);

#endif
