/* api.h: the Prometheus-compatible JSON of kcwatch's admin API.
 *
 * Pure builders: the daemon hands in views of its rule groups (rules, their
 * alert sets, health) and gets back the `data` objects that Prometheus'
 * /api/v1/alerts and /api/v1/rules return, field for field, so tools that read
 * Prometheus' alert API read kcwatch's. The envelope ({"status":"success",
 * "data": ...}) is added by the admin server helpers. */
#ifndef KCWATCH_API_H
#define KCWATCH_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/rules.h"

typedef enum {
    KCW_RULE_HEALTH_UNKNOWN = 0, /* not evaluated yet */
    KCW_RULE_HEALTH_OK,
    KCW_RULE_HEALTH_ERR,
} kcw_rule_health_t;

typedef struct kcw_api_rule_view {
    const kcw_rule_t *rule;
    const kcw_alert_set_t *alerts;
    kcw_rule_health_t health;
    const char *last_error;     /* NULL when none */
    int64_t last_eval_ms;       /* 0 = never */
    double eval_seconds;        /* duration of the last evaluation */
} kcw_api_rule_view_t;

typedef struct kcw_api_group_view {
    const kcw_rule_group_t *group;
    int64_t interval_ms;        /* effective interval */
    const kcw_api_rule_view_t *rules;
    size_t n_rules;
    int64_t last_eval_ms;
    double eval_seconds;
} kcw_api_group_view_t;

/* data of GET /api/v1/alerts: {"alerts": [...]} with every pending and firing
 * alert (not resolved ones), as Prometheus lists them: labels, annotations,
 * state, activeAt (RFC3339 with ns), value (Go's 'e' format, "1e+00"), and
 * keepFiringSince when held. extra: more alert sets (kcwatch's own
 * KcwatchRestartBudgetExhausted), may be NULL. New reference. */
json_t *kcw_api_alerts(const kcw_api_group_view_t *groups, size_t n_groups,
                       const kcw_alert_set_t *const *extra, size_t n_extra);
/* data of GET /api/v1/rules: {"groups": [...]} in Prometheus' shape (name,
 * file, rules[{state, name, query, duration, keepFiringFor, labels,
 * annotations, alerts, health, lastError, evaluationTime, lastEvaluation,
 * type: "alerting"}], interval, limit, evaluationTime, lastEvaluation).
 * connect: rules show their condition as `query` in kcwatch's notation.
 * type_filter: NULL, "alert" or "record" (?type= of Prometheus). New reference. */
json_t *kcw_api_rules(const kcw_api_group_view_t *groups, size_t n_groups,
                      const char *type_filter);
/* The filters of GET /api/v1/rules, as Prometheus': type, and the repeated
 * rule_name[], rule_group[] and file[] (each matches exactly; an empty list
 * does not filter). With any of the lists set, a group left with no rule is
 * not listed. */
typedef struct kcw_api_rules_filter {
    const char *type;
    const char *const *rule_names;
    size_t n_rule_names;
    const char *const *groups;
    size_t n_groups;
    const char *const *files;
    size_t n_files;
} kcw_api_rules_filter_t;
json_t *kcw_api_rules_filtered(const kcw_api_group_view_t *groups, size_t n_groups,
                               const kcw_api_rules_filter_t *f);
/* Go's time.Time RFC3339Nano text of a ms timestamp, e.g.
 * "2026-11-25T10:00:00.123Z" ("0001-01-01T00:00:00Z" for 0). Returns buf. */
char *kcw_api_time(int64_t ms, char *buf, size_t n);

#endif
