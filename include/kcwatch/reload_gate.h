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
 * logged on the way in.
 *
 * A reload requested over HTTP waits with its request (admin.h, deferred
 * answers), which then gets the outcome:
 *   200 "configuration reloaded" (text; plus a line saying PromQL was not
 *       verified, and why, when Prometheus could not be asked);
 *   400 the positioned errors, as kcw_admin_reload_failed() writes them;
 *   409 superseded by a newer reload (HTTP or SIGHUP) before the verdict;
 *   500 applying failed (see the log);
 *   503 the daemon stopped first; 504 no verdict within the deadline
 *       (twice prometheus.timeout plus 10 s; the reload goes on). */
#ifndef KCWATCH_RELOAD_GATE_H
#define KCWATCH_RELOAD_GATE_H

#include "kcwatch/admin.h"
#include "kcwatch/config.h"
#include "kcwatch/errors.h"
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
    kcw_admin_pending_t *pending; /* its HTTP request, when it came over HTTP */
    /* The last reload applied without its PromQL verified: why ("" when
     * verified), for the answer. */
    char unverified[256];
} kcw_reload_gate_t;

/* Takes cfg and rules. apply()'s result when applied now, -EINVAL when
 * refused now (the positioned rejections appended to report, which may be
 * NULL), -EINPROGRESS while Prometheus is being asked (the outcome is
 * logged, and apply or refused runs later on the loop). A reload still
 * waiting is superseded: its HTTP request is answered 409. */
int kcw_reload_gate_submit(kcw_reload_gate_t *g, kcw_http_t *http, kcw_config_t *cfg,
                           kcw_ruleset_t *rules, kcw_errors_t *report);
/* After submit returned -EINPROGRESS, from the admin handler of req: the
 * request waits for the outcome. KCW_ADMIN_DEFERRED (the handler returns
 * it), or -EAGAIN when it cannot wait (too many deferred requests, nothing
 * waiting): the handler answers itself. */
int kcw_reload_gate_defer(kcw_reload_gate_t *g, const kcw_admin_request_t *req);
/* The 200 answer of an applied reload: "configuration reloaded", and why
 * its PromQL is not verified yet when it is not. 0 or -ENOMEM. */
int kcw_reload_gate_applied_text(const kcw_reload_gate_t *g, kcw_admin_response_t *resp);
/* Drops a waiting reload (stop); its HTTP request is answered 503. */
void kcw_reload_gate_drop(kcw_reload_gate_t *g);

#endif
