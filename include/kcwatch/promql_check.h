/* promql_check.h: every PromQL expression of a rule set checked by
 * Prometheus' own parser before it runs.
 *
 * Each rule's expr goes to GET /api/v1/format_query on the configured
 * Prometheus (2.38 and later) through kcw_prom_format, a few at a time, on
 * the loop. The verdict is written into the rule: expr_formatted (the
 * normalised text Prometheus returns, which /api/v1/rules shows as `query`)
 * or expr_error (Prometheus' parse error at FILE:LINE:COL of the rule file:
 * its line:col within the expression mapped through the rule's expr_map).
 * A rule stays unverified when Prometheus cannot be asked (refused, timeout,
 * a non-API answer, a server without format_query): after the first such
 * answer no further expression is sent in that round.
 *
 * kcw_promql_check_* is one round (kcwatch check, a reload);
 * kcw_promql_verifier_* repeats rounds for the rules still unverified with a
 * back-off, for the daemon, logging every rejection once. */
#ifndef KCWATCH_PROMQL_CHECK_H
#define KCWATCH_PROMQL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "kcwatch/config.h"
#include "kcwatch/errors.h"
#include "kcwatch/http_client.h"
#include "kcwatch/rules.h"

#define KCW_PROMQL_CHECK_PARALLEL 8 /* format_query requests in flight per round */
#define KCW_PROMQL_RETRY_MIN_MS 5000
#define KCW_PROMQL_RETRY_MAX_MS 300000

/* Prometheus' parse error text ("invalid parameter \"query\": 2:12: parse
 * error: unclosed left parenthesis", any prefix) -> *line, *col and *rest
 * (pointing into msg at "parse error: ..."). false when msg has no
 * LINE:COL: position. */
bool kcw_promql_error_position(const char *msg, int *line, int *col, const char **rest);

/* Appends Prometheus' rejection msg of r's expr to errs at the rule file's
 * FILE:LINE:COL ("PromQL rejected by Prometheus: parse error: ..."), at
 * the expr scalar when msg has no position. */
void kcw_promql_reject(const kcw_rule_t *r, const char *msg, kcw_errors_t *errs);

/* The rules with an expr still to verify (neither expr_formatted nor
 * expr_error set). */
size_t kcw_promql_unverified(const kcw_ruleset_t *rs);

/* Gives each unverified rule of to whose expr, byte for byte, Prometheus
 * already accepted in from (the running rules) that verdict: a reload asks
 * Prometheus only about what changed. Returns the rules carried over;
 * (size_t)-1 when out of memory (nothing is lost: those stay unverified). */
size_t kcw_promql_carry(kcw_ruleset_t *to, const kcw_ruleset_t *from);

typedef struct kcw_promql_check kcw_promql_check_t;
typedef void (*kcw_promql_check_cb)(kcw_promql_check_t *chk, void *arg);

/* Starts a round over rs's unverified rules (rs must outlive the check).
 * cb(chk, arg) runs on the loop once every answer is in (never from inside
 * this call; it may free chk). When nothing went out (nothing to check, or
 * the first request could not be sent) the round is over on return and cb
 * never runs: test kcw_promql_check_done. NULL when conf has no URL or on
 * ENOMEM. */
kcw_promql_check_t *kcw_promql_check_start(kcw_http_t *http, const kcw_prometheus_conf_t *conf,
                                           kcw_ruleset_t *rs, kcw_promql_check_cb cb, void *arg);
bool kcw_promql_check_done(const kcw_promql_check_t *chk);
/* After cb: rules Prometheus rejected in this round (positioned in errs),
 * rules left unverified and why (Prometheus' or the transport's words). */
size_t kcw_promql_check_rejected(const kcw_promql_check_t *chk);
const kcw_errors_t *kcw_promql_check_errors(const kcw_promql_check_t *chk);
size_t kcw_promql_check_unverified(const kcw_promql_check_t *chk);
const char *kcw_promql_check_reason(const kcw_promql_check_t *chk);
/* Cancels what is in flight (cb does not run) and frees. NULL is a no-op. */
void kcw_promql_check_free(kcw_promql_check_t *chk);

/* Runs one round to completion on a private loop (kcwatch check). The
 * round ends within about the configured Prometheus timeout. 0, -ENOMEM, or
 * -EINVAL when conf has no URL. *out (free it) holds the results. */
int kcw_promql_check_run(const kcw_prometheus_conf_t *conf, kcw_ruleset_t *rs,
                         kcw_promql_check_t **out);

typedef struct kcw_promql_verifier kcw_promql_verifier_t;

/* Verifies rs's unverified rules now and again after a back-off
 * (KCW_PROMQL_RETRY_MIN_MS doubling to _MAX_MS) until none is left,
 * logging each rejection (ERROR) and each unverified round (WARN). rs must
 * outlive it. NULL when there is nothing to verify or no URL. */
kcw_promql_verifier_t *kcw_promql_verifier_new(uv_loop_t *loop, kcw_http_t *http,
                                               const kcw_prometheus_conf_t *conf,
                                               kcw_ruleset_t *rs);
/* Stops asking (what is in flight is dropped; verdicts already in stay in
 * the rules) until resume, which carries on with the rules still
 * unverified: at once, or after the back-off it was waiting out. While a
 * reload's own check runs, the running rules' verifier is paused so the two
 * do not ask Prometheus the same things side by side. NULL is a no-op. */
void kcw_promql_verifier_pause(kcw_promql_verifier_t *v);
void kcw_promql_verifier_resume(kcw_promql_verifier_t *v);
/* Cancels, closes its timer and frees; on_closed(arg) runs once closed
 * (NULL is allowed). A NULL verifier is a no-op that does not call it. */
void kcw_promql_verifier_close(kcw_promql_verifier_t *v, void (*on_closed)(void *arg), void *arg);

#endif
