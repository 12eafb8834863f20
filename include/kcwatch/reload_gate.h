/* reload_gate.h: a reload passes Prometheus' PromQL check before it applies.
 *
 * The daemon loads the new config and rules (synchronously, as before) and
 * hands them to the gate. Without PromQL to check they are applied at once.
 * Otherwise every expr goes to Prometheus' parser (promql_check.h) on the
 * loop and the reload waits: one rejected expression refuses it (each
 * rejection logged as "reload rejected" at FILE:LINE:COL, then refused()
 * runs) and the running configuration stays; if Prometheus cannot be asked
 * the reload applies and the new generation's verifier keeps asking. A newer
 * reload supersedes one still waiting. Rule-file warnings (rules.h) are
 * logged on the way in. */
#ifndef KCWATCH_RELOAD_GATE_H
#define KCWATCH_RELOAD_GATE_H

#include "kcwatch/config.h"
#include "kcwatch/http_client.h"
#include "kcwatch/promql_check.h"
#include "kcwatch/rules.h"

typedef struct kcw_reload_gate {
    /* set by the owner */
    int (*apply)(void *arg, kcw_config_t *cfg, kcw_ruleset_t *rules); /* takes both */
    void (*refused)(void *arg);
    void *arg;
    /* a reload waiting for Prometheus */
    kcw_promql_check_t *chk;
    kcw_config_t *cfg;
    kcw_ruleset_t *rules;
} kcw_reload_gate_t;

/* Takes cfg and rules. apply()'s result when applied now, -EINVAL when
 * refused now, -EINPROGRESS while Prometheus is being asked (the outcome is
 * logged, and apply or refused runs later on the loop). */
int kcw_reload_gate_submit(kcw_reload_gate_t *g, kcw_http_t *http, kcw_config_t *cfg,
                           kcw_ruleset_t *rules);
/* Drops a waiting reload (stop). */
void kcw_reload_gate_drop(kcw_reload_gate_t *g);

#endif
