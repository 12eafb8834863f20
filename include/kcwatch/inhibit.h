/* inhibit.h: inhibition rules, as Alertmanager's inhibit_rules.
 *
 * While an alert matching a rule's source matchers fires, alerts matching its
 * target matchers that have the same values for every `equal` label (a label
 * both lack counts as equal) are not notified. An alert never inhibits itself,
 * and when the target also matches the source matchers, only sources that do
 * not match the target matchers count (Alertmanager's rule for two-sided
 * matches). Example: source alertname="ConnectClusterUnreachable", target
 * alertname=~"ConnectTask.*", equal [cluster].
 *
 * kcw_inhibitor_update() indexes the firing alerts per rule by their equal
 * values (hashed, sorted), so each query costs a binary search per rule
 * instead of a scan of every source. Pure: no I/O. */
#ifndef KCWATCH_INHIBIT_H
#define KCWATCH_INHIBIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/alerts.h"
#include "kcwatch/labels.h"
#include "kcwatch/matchers.h"

#define KCW_INHIBIT_RULES_MAX 256

typedef struct kcw_inhibit_rule {
    kcw_matchers_t source;
    kcw_matchers_t target;
    char **equal; /* label names */
    size_t n_equal;
} kcw_inhibit_rule_t;

void kcw_inhibit_rule_clear(kcw_inhibit_rule_t *r);
int kcw_inhibit_rule_copy(kcw_inhibit_rule_t *dst, const kcw_inhibit_rule_t *src);

typedef struct kcw_inhibitor kcw_inhibitor_t;

/* The rules are borrowed: they must outlive the inhibitor (or the next
 * kcw_inhibitor_set_rules). NULL on OOM. */
kcw_inhibitor_t *kcw_inhibitor_new(const kcw_inhibit_rule_t *rules, size_t n_rules);
void kcw_inhibitor_set_rules(kcw_inhibitor_t *inh, const kcw_inhibit_rule_t *rules,
                             size_t n_rules);
/* Indexes the sources: every alert that is firing now among alerts[] (what
 * the index needs is copied: the alerts need only live during the call).
 * 0 or -ENOMEM (then nothing is inhibited until an update succeeds). */
int kcw_inhibitor_update(kcw_inhibitor_t *inh, const kcw_alert_t *const *alerts, size_t n);
/* Whether the alert with these labels and fingerprint is inhibited. */
bool kcw_inhibitor_mutes(const kcw_inhibitor_t *inh, const kcw_labels_t *labels, uint64_t fp);
void kcw_inhibitor_free(kcw_inhibitor_t *inh);

#endif
