/* ha_restarts.h: restart budgets and back-off handed over with a cluster.
 *
 * Each instance keeps its restart tracks in its own store. So that a new
 * owner does not start the budget and back-off of a target afresh, the
 * permit txn of every restart (kcw_ha_permit) also records the target's
 * track under <prefix>/actions/<cluster>/restarts/<hash of the target>,
 * without a lease (it must outlive the instance): the counted restart times
 * inside the budget window, this one included, and the back-off exponent
 * after it. The instance that claims the cluster reads those records before
 * it acts for it (kcw_ha_set_restarts_handover) and merges them into its own
 * tracks (kcw_remediator_adopt_restarts).
 *
 * A restart is recorded when it is permitted, just before it is sent: one
 * that then fails to send (connection refused, 409) counts at the new owner
 * although it did not at the old one, which errs on the side of fewer
 * restarts. */
#ifndef KCWATCH_HA_RESTARTS_H
#define KCWATCH_HA_RESTARTS_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/remediate.h"

/* The record (JSON text, malloc'd; NULL on OOM) of a restart about to be
 * sent at now_ms for cluster/connector/task, whose track before it is
 * track (may be NULL: none). Carries instance, cluster, connector, task,
 * request, at_ms, attempts_ms and consecutive. */
char *kcw_ha_restart_record(const char *instance, const char *cluster, const char *connector,
                            int task, const char *request, const kcw_restart_track_t *track,
                            int64_t now_ms);
/* Merges the records (texts as kcw_ha_restart_record made them) into r's
 * tracks, skipping those made by self (its own store has them) and any
 * that do not parse (logged once per call). Returns how many were merged. */
size_t kcw_ha_restarts_adopt(kcw_remediator_t *r, const char *self, const char *const *records,
                             size_t n, int64_t now_ms);

#endif
