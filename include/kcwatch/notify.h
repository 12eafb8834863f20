/* notify.h: grouping and delivery of alert notifications.
 *
 * After every evaluation the watchdog hands the notifier every current alert
 * (firing, and resolved within retention). The notifier groups them by the
 * route's group_by as Alertmanager does: a new group waits group_wait, then a
 * changed group is sent at most every group_interval, an unchanged firing one
 * again after repeat_interval; resolved alerts are sent once (send_resolved)
 * and then dropped. Each notification is built by the receiver's payload
 * builder (receivers/webhook.c) and queued; failed sends are retried with
 * exponential back-off, honouring Retry-After on 429/503. */
#ifndef KCWATCH_NOTIFY_H
#define KCWATCH_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/alerts.h"
#include "kcwatch/config.h"
#include "kcwatch/http_client.h"

typedef struct kcw_notifier kcw_notifier_t;

/* Outcome of one delivery attempt (metrics, audit). */
typedef void (*kcw_notify_event_cb)(const char *receiver, const char *group_key, bool ok,
                                    long http_status, const char *detail, void *arg);

kcw_notifier_t *kcw_notifier_new(uv_loop_t *loop, kcw_http_t *http, const kcw_config_t *cfg,
                                 kcw_notify_event_cb cb, void *arg);
/* Replaces route/receivers on reload (pending deliveries kept). */
void kcw_notifier_set_config(kcw_notifier_t *n, const kcw_config_t *cfg);
/* All current alerts; pointers need only live during the call. */
void kcw_notifier_update(kcw_notifier_t *n, const kcw_alert_t *const *alerts, size_t n_alerts,
                         int64_t now_ms);
/* Sends the group holding an alert with these labels at once, skipping
 * group_wait (used when a restart was refused: tell someone now). */
void kcw_notifier_flush_for(kcw_notifier_t *n, const kcw_labels_t *labels);
size_t kcw_notifier_queue_length(const kcw_notifier_t *n);
/* Stops timers; undelivered notifications are given up to grace_ms to go. */
void kcw_notifier_close(kcw_notifier_t *n, void (*on_closed)(void *arg), void *arg);

#endif
