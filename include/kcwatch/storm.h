/* storm.h: failure storms: many tasks of one cluster failing at once.
 *
 * When at least remediation.storm.min_tasks tasks, and at least min_fraction
 * of the cluster's tasks, entered FAILED within remediation.storm.window, the
 * cause is systemic (a broker, a schema registry, the network), not one per
 * task. Restarting every task on its own schedule then only adds a rebalance
 * storm, and each restart fails again while the cause persists. So during a
 * storm:
 *
 *   1. canary: one restart target (the first that asks) may restart, at its
 *      own back-off (remediate.c's policy) while it fails again; every other
 *      target is held;
 *   2. release: once the canary stayed RUNNING for verify_timeout, the others
 *      restart at remediation.rate restarts per minute for the cluster
 *      (max_concurrent still applies in remediate.c);
 *   3. the storm ends when every member task stayed RUNNING for
 *      verify_timeout (or went away).
 *
 * Nothing of this happens while remediation or remediation.storm is turned
 * off (turning either off ends a storm). Tasks that fail during a storm join
 * it. The storm is the built-in alert
 * KcwatchFailureStorm{cluster, root_cause, severity="critical"} whose
 * annotations give the count, the affected connectors, the canary's state and
 * the common root cause (the most frequent rootcause.h key at the start).
 *
 * Pure: the caller feeds each poll (kcw_storm_observe) and asks before each
 * restart (kcw_storm_admit), both with `now`; nothing here does I/O. Work per
 * poll: a rescan of the FAILED tasks when the cluster's status changed
 * (generation), else a lookup per member. */
#ifndef KCWATCH_STORM_H
#define KCWATCH_STORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/config.h"
#include "kcwatch/connect.h"

#define KCW_STORM_ALERT "KcwatchFailureStorm"
#define KCW_WORKER_SUSPECT_ALERT "KcwatchWorkerSuspect"
#define KCW_STORM_SUSPECT_MIN_FAILED 3 /* FAILED tasks before a worker is suspect */
#define KCW_STORM_ROOTCAUSE_SAMPLE 1000 /* traces keyed at a storm's start, at most */

typedef struct kcw_storm kcw_storm_t;

typedef enum {
    KCW_STORM_PASS = 0, /* no storm on this cluster: the usual policy decides */
    KCW_STORM_CANARY,   /* go: this target is the canary */
    KCW_STORM_RELEASE,  /* go: within the release rate */
    KCW_STORM_HOLD,     /* not now: the storm holds it */
} kcw_storm_admit_t;

typedef enum {
    KCW_STORM_NONE = 0,
    KCW_STORM_PHASE_CANARY,
    KCW_STORM_PHASE_RELEASE,
} kcw_storm_phase_t;

/* NULL on allocation failure. */
kcw_storm_t *kcw_storm_new(void);
void kcw_storm_free(kcw_storm_t *s);

/* One poll of cluster cl at now (conf: remediation.storm, rate,
 * verify_timeout, backoff.max). 0 or -ENOMEM (the storm state is then left
 * as it was). */
int kcw_storm_observe(kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                      const kcw_cluster_status_t *cl, int64_t now_ms);

/* A restart of target (task -1: the connector target) would go out now. On
 * CANARY and RELEASE the restart is counted as sent. A canary that has not
 * asked for backoff.max + verify_timeout (its budget ran out, it was
 * excluded...) hands the role to the next target that asks. */
kcw_storm_admit_t kcw_storm_admit(kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                                  const char *cluster, const char *connector, int task,
                                  int64_t now_ms);

/* Paced restarts outside a storm (targets remediation.inhibit held): true
 * when one may go now at rate_per_min for the cluster (and it is counted). */
bool kcw_storm_pace(kcw_storm_t *s, const kcw_remediation_conf_t *conf, const char *cluster,
                    int64_t now_ms);

kcw_storm_phase_t kcw_storm_phase(const kcw_storm_t *s, const char *cluster);
/* Tasks in the cluster's storm (0: none). */
size_t kcw_storm_members(const kcw_storm_t *s, const char *cluster);

/* Appends the tracker's built-in alerts to *out (realloc'd; *n_out grows):
 *   - KcwatchWorkerSuspect{cluster, worker_id, severity="warning"} for a
 *     cluster most of whose FAILED tasks (at least
 *     KCW_STORM_SUSPECT_MIN_FAILED) failed on one worker, at least twice that
 *     worker's share of the tasks (with two workers: all of them); its
 *     description says that restarts can bring the tasks back onto the same
 *     worker. Judged whenever a cluster's status changes, storms or not;
 *   - one KcwatchFailureStorm per cluster in a storm.
 * 0 or -ENOMEM. */
int kcw_storm_alerts(const kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                     kcw_instance_t **out, size_t *n_out);

#endif
