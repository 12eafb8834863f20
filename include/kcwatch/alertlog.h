/* alertlog.h: the log lines of alert transitions, summarised in a storm.
 *
 * Each alert that turns pending, firing or resolved is logged (WARN when
 * firing, INFO otherwise) with its alertname, cluster, connector, task,
 * state and worker. One evaluation (every transition with the same now_ms)
 * logs at most detail_max of them one by one; the rest are counted per
 * alertname and, at the next flush (the evaluation's end) or the next
 * evaluation, summarised in one line:
 *
 *   level=warn msg="alert storm: transitions summarised" transitions=1000
 *     logged=10 summarised=990 by_alertname="ConnectTaskFailed: 990 firing"
 *     examples="c1/conn-10/0, c1/conn-11/0, ..."
 *
 * Only the log is summarised: every alert is still evaluated, in the API and
 * notified. Memory is bounded (MAX_NAMES alertnames tracked, a few examples
 * kept); work is constant per transition. Pure: time comes from the caller. */
#ifndef KCWATCH_ALERTLOG_H
#define KCWATCH_ALERTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"

#define KCW_ALERTLOG_DETAIL_MAX 10

typedef struct kcw_alertlog kcw_alertlog_t;

/* detail_max: transitions per evaluation logged one by one (0 = default).
 * NULL when out of memory. */
kcw_alertlog_t *kcw_alertlog_new(size_t detail_max);
void kcw_alertlog_free(kcw_alertlog_t *l);
/* One transition; what is "alert firing", "alert resolved" or "alert
 * pending". A new now_ms flushes the previous evaluation first. */
void kcw_alertlog_note(kcw_alertlog_t *l, const kcw_alert_t *a, const char *what, int64_t now_ms);
/* Ends the evaluation: logs the summary line when some were summarised. */
void kcw_alertlog_flush(kcw_alertlog_t *l);

#endif
