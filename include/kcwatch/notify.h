/* notify.h: grouping and delivery of alert notifications.
 *
 * After every evaluation the watchdog hands the notifier every current alert
 * (firing, and resolved within retention). Each alert goes down the routing
 * tree (route.h) to one or more routes, and joins the group of its route's
 * group_by labels there, as Alertmanager does: a new group waits group_wait,
 * then a changed group is sent at most every group_interval, an unchanged
 * firing one again after repeat_interval (an alertmanager receiver's
 * resend_interval when shorter); resolved alerts are sent once
 * (send_resolved) and then dropped. Alerts a silence or an inhibition rule
 * mutes are left out of notifications (never out of evaluation). Each
 * notification becomes its receiver's requests (receiver.h: webhook, Slack,
 * PagerDuty events, one per Alertmanager URL) and is queued; failed sends are
 * retried with exponential back-off and jitter, honouring Retry-After on
 * 429/503, per group and URL: a group its receiver keeps rejecting never
 * holds back the others.
 * With a store, delivery is at-least-once across restarts (outbox) and each
 * group's notification log survives them (see kcw_notifier_set_store). */
#ifndef KCWATCH_NOTIFY_H
#define KCWATCH_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/alerts.h"
#include "kcwatch/config.h"
#include "kcwatch/http_client.h"
#include "kcwatch/silence.h"
#include "kcwatch/store.h"

#define KCW_NOTIFY_MAX_AGE_DEFAULT_MS (24LL * 60 * 60 * 1000)

typedef struct kcw_notifier kcw_notifier_t;

/* Outcome of one delivery attempt (metrics, audit). */
typedef void (*kcw_notify_event_cb)(const char *receiver, const char *group_key, bool ok,
                                    long http_status, const char *detail, void *arg);

/* cfg must stay valid until the next kcw_notifier_set_config or close; http
 * may be NULL when no webhook receiver is used. */
kcw_notifier_t *kcw_notifier_new(uv_loop_t *loop, kcw_http_t *http, const kcw_config_t *cfg,
                                 kcw_notify_event_cb cb, void *arg);
/* Replaces route/receivers on reload (pending deliveries kept). When the
 * route's receiver or group_by changed, the groups start afresh (their alerts
 * are notified again after group_wait, as Alertmanager does on reload). */
void kcw_notifier_set_config(kcw_notifier_t *n, const kcw_config_t *cfg);
/* All current alerts; pointers need only live during the call. */
void kcw_notifier_update(kcw_notifier_t *n, const kcw_alert_t *const *alerts, size_t n_alerts,
                         int64_t now_ms);
/* Sends the group holding an alert with these labels at once, skipping
 * group_wait, even when its alerts are unchanged since the last notification
 * (used when remediation acted or refused to: that is news for a human now). */
void kcw_notifier_flush_for(kcw_notifier_t *n, const kcw_labels_t *labels);
/* As kcw_notifier_flush_for for a group already notified; a group not yet
 * notified keeps its group_wait (routine news such as a restart sent). */
void kcw_notifier_refresh_for(kcw_notifier_t *n, const kcw_labels_t *labels);
/* Called with a group's notification log (receiver, group key, the alerts
 * its notifications said were firing and resolved) each time all of the
 * group's notifications so far reached the receiver. With ha.etcd the
 * daemon records it in etcd for the instance that takes the group over. */
typedef void (*kcw_notify_log_cb)(const kcw_store_group_t *row, void *arg);
void kcw_notifier_set_log_hook(kcw_notifier_t *n, kcw_notify_log_cb cb, void *arg);
/* The row as a record another instance reads back (JSON text: receiver,
 * group key, last notification time, the firing and resolved fingerprints
 * as hex). malloc'd; NULL on OOM. */
char *kcw_notify_log_encode(const kcw_store_group_t *row);
/* Takes over notification logs other instances recorded (encoded rows):
 * per receiver and group only the newest counts, and none older than
 * max_age_ms at now_ms (a group still firing would have been notified again
 * since: pass the repeat interval plus a margin). Logs of the route's
 * receiver are adopted: an existing group of that key adds their alerts to
 * what it has said, so they are not paged again; otherwise the log waits,
 * like the store's after a restart, for a group of that key to appear.
 * Unreadable records are skipped and counted in one WARN. Returns how many
 * logs were adopted. */
size_t kcw_notifier_adopt_records(kcw_notifier_t *n, const char *const *records, size_t n_records,
                                  int64_t max_age_ms, int64_t now_ms);
/* Drops, without notifying anything, every alert drop() says yes to and the
 * groups left empty, with their queued notifications (not those already in
 * flight): another instance took over their notifications (ha.h), so neither
 * a repeat nor a "resolved" may leave from here. Returns how many alerts
 * were dropped. */
size_t kcw_notifier_forget(kcw_notifier_t *n, bool (*drop)(const kcw_alert_t *a, void *arg),
                           void *arg);
size_t kcw_notifier_queue_length(const kcw_notifier_t *n);
/* Queued notifications whose payload is in memory: with a store, only those
 * whose outbox rows are not committed yet (a walk of the queue: for tests). */
size_t kcw_notifier_payloads_held(const kcw_notifier_t *n);
/* Makes delivery durable. Every webhook notification is written to the
 * store's outbox (committed with the flush that made it) before its first
 * send, and removed when the receiver answered 2xx or it was dropped; each
 * group's notification log (what its last notification said, when) is saved,
 * so after a restart a still-firing alert is not sent again before
 * repeat_interval and an alert that resolved meanwhile is still sent as
 * resolved. Loads the store's queued notifications and group logs now (call
 * before the first update; now_ms in update()'s clock). Every attempt is
 * recorded in the audit log. store must outlive n. */
void kcw_notifier_set_store(kcw_notifier_t *n, kcw_store_t *store, int64_t now_ms);
/* Silences to apply (the caller's set, read at each flush; NULL: none).
 * Must outlive n or be replaced first. */
void kcw_notifier_set_silences(kcw_notifier_t *n, const kcw_silences_t *silences);
/* Notifications older than this are dropped with an ERROR and counted
 * (<= 0: KCW_NOTIFY_MAX_AGE_DEFAULT_MS). */
void kcw_notifier_set_max_age(kcw_notifier_t *n, int64_t max_age_ms);
/* Notifications dropped for their age since start. */
uint64_t kcw_notifier_expired_total(const kcw_notifier_t *n);
/* Stops timers and frees everything. Queued notifications stay in a durable
 * store's outbox for the next start (logged with how many); without one they
 * are dropped (with an ERROR naming how many). Transfers in flight are
 * cancelled (kcw_http_cancel). May run before or after kcw_http_close. on_closed runs
 * once the notifier's libuv handles are closed. */
void kcw_notifier_close(kcw_notifier_t *n, void (*on_closed)(void *arg), void *arg);

/* --- testing: the grouping logic with a clock the caller owns ------------
 * kcw_notifier_update() never sends anything itself; groups become due and a
 * uv_timer flushes them. Tests call kcw_notifier_flush_due() with their own
 * now instead of running the loop, and may capture notifications with a sink
 * instead of delivering them (a captured notification counts as delivered). */
typedef void (*kcw_notify_sink_cb)(const char *receiver, const char *group_key,
                                   const kcw_alert_t *const *alerts, size_t n_alerts, void *arg);
void kcw_notifier_set_sink(kcw_notifier_t *n, kcw_notify_sink_cb sink, void *arg);
/* Flushes every group due at now_ms; returns the notifications produced. */
size_t kcw_notifier_flush_due(kcw_notifier_t *n, int64_t now_ms);
/* When the next group is due (in update()'s clock), INT64_MAX if none. */
int64_t kcw_notifier_next_due(const kcw_notifier_t *n);
size_t kcw_notifier_group_count(const kcw_notifier_t *n);

typedef enum {
    KCW_DELIVERY_OK = 0, /* 2xx */
    KCW_DELIVERY_RETRY,  /* transport error, 5xx, 408, 429 */
    KCW_DELIVERY_DROP,   /* any other status: the receiver will never take it */
} kcw_delivery_result_t;
kcw_delivery_result_t kcw_notify_classify(long http_status);
/* Delay before retry `failures` (1 = after the first failure): 1 s doubling
 * to 5 min, scaled by (0.9 + 0.2 * jitter01); a Retry-After (>= 0) replaces
 * it, capped at 1 h. */
int64_t kcw_notify_backoff_ms(int failures, int64_t retry_after_ms, double jitter01);

#endif
