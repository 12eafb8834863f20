/* eval.h: a rule + the Connect status model -> alert instances.
 *
 * For `connect:` rules every match is one instance labelled alertname,
 * cluster, connector, task, worker_id, state, type (those that apply to the
 * target), root_cause for a connector or task with a trace (its
 * kcw_rootcause_key, so that group_by: [cluster, root_cause] makes one
 * notification per cause) plus the rule's labels (templated; rule labels win); annotations are
 * rendered with $labels, $value, $trace and $externalLabels. Target cluster
 * with state UNREACHABLE matches clusters whose last poll reached no worker.
 * Connectors absent from the last polls (missing_polls > 0) still match: a
 * missing entry is "unknown yet", not "recovered" (connect-rest.md §12). */
#ifndef KCWATCH_EVAL_H
#define KCWATCH_EVAL_H

#include <stddef.h>

#include "kcwatch/alerts.h"
#include "kcwatch/connect.h"
#include "kcwatch/rootcause.h"
#include "kcwatch/rules.h"

/* rootcause may be NULL (no root_cause labels). Fills *out (malloc'd array, *n_out entries; free each with
 * kcw_instance_clear then free the array). 0 or negative errno; template
 * render failures are not fatal (the text holds the error, as Prometheus). */
int kcw_eval_connect_rule(const kcw_rule_t *rule, const kcw_cluster_status_t *const *clusters,
                          size_t n_clusters, const kcw_labels_t *external_labels,
                          const kcw_rootcause_t *rootcause, kcw_instance_t **out, size_t *n_out);

/* For PromQL rules: a query result -> instances, exactly as Prometheus'
 * alerting rules do it: each sample's labels minus __name__, plus the rule's
 * labels templated with $labels/$value (rule labels win), alertname last;
 * annotations templated; value = the sample value. A scalar result is one
 * sample with no labels. Two samples with the same resulting label set are an
 * error (-EEXIST), as "vector contains metrics with the same labelset after
 * applying alert labels". Same ownership as kcw_eval_connect_rule. */
struct kcw_prom_result;
int kcw_eval_prom_rule(const kcw_rule_t *rule, const struct kcw_prom_result *result,
                       const kcw_labels_t *external_labels, kcw_instance_t **out,
                       size_t *n_out);

#endif
