/* reload_gate.c: a reload waits for Prometheus' PromQL check (see
 * reload_gate.h). */
#include "kcwatch/reload_gate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "kcwatch/admin_conf.h"
#include "kcwatch/log.h"

#define REFUSED_SUMMARY \
    "reload failed: Prometheus rejected PromQL; keeping the running configuration"

/* Answers the waiting HTTP request, if any, with resp (body taken). */
static void answer(kcw_reload_gate_t *g, kcw_admin_response_t *resp, int rc)
{
    kcw_admin_pending_t *p = g->pending;
    g->pending = NULL;
    if (rc < 0) { /* out of memory building the answer */
        free(resp->body);
        *resp = (kcw_admin_response_t){0};
        rc = kcw_admin_response_text(resp, 500, NULL, "reload: the answer could not be built\n");
        if (rc < 0)
            resp->status = 500;
    }
    kcw_admin_pending_finish(p, resp);
}

static void answer_error(kcw_reload_gate_t *g, int status, const char *type, const char *msg)
{
    if (!g->pending)
        return;
    kcw_admin_response_t resp = {0};
    answer(g, &resp, kcw_admin_response_error(&resp, status, type, msg));
}

/* Drops the waiting reload; its request gets status type msg. */
static void drop(kcw_reload_gate_t *g, int status, const char *type, const char *msg)
{
    answer_error(g, status, type, msg);
    kcw_promql_check_free(g->chk);
    kcw_config_free(g->cfg);
    kcw_ruleset_free(g->rules);
    g->chk = NULL;
    g->cfg = NULL;
    g->rules = NULL;
}

void kcw_reload_gate_drop(kcw_reload_gate_t *g)
{
    drop(g, 503, "unavailable", "kcwatch is stopping; this reload was not applied");
}

/* Prometheus answered (or could not be asked): refuse or apply. */
static int decide(kcw_reload_gate_t *g, kcw_promql_check_t *chk, kcw_config_t *cfg,
                  kcw_ruleset_t *rules, kcw_errors_t *report)
{
    if (kcw_promql_check_rejected(chk) == 0) {
        if (kcw_promql_check_unverified(chk) > 0) {
            const char *why = kcw_promql_check_reason(chk);
            snprintf(g->unverified, sizeof g->unverified, "%s", why && *why ? why : "unknown");
        }
        kcw_promql_check_free(chk);
        int rc = g->apply(g->arg, cfg, rules);
        if (g->pending) {
            kcw_admin_response_t resp = {0};
            int arc = rc < 0 ? kcw_admin_response_text(&resp, 500, NULL,
                                                       "failed to reload config: see the log\n")
                             : kcw_reload_gate_applied_text(g, &resp);
            answer(g, &resp, arc);
        }
        return rc;
    }
    const kcw_errors_t *errs = kcw_promql_check_errors(chk);
    char line[1200];
    for (size_t i = 0; i < errs->n && i < errs->cap; i++) {
        kcw_error_format(&errs->items[i], line, sizeof(line));
        kcw_log(KCW_LOG_ERROR, "reload rejected", "error", line, NULL);
    }
    kcw_log(KCW_LOG_ERROR, REFUSED_SUMMARY, NULL);
    if (report)
        kcw_errors_append(report, errs);
    if (g->pending) {
        kcw_admin_response_t resp = {0};
        answer(g, &resp, kcw_admin_reload_failed(&resp, REFUSED_SUMMARY, errs));
    }
    kcw_promql_check_free(chk);
    kcw_config_free(cfg);
    kcw_ruleset_free(rules);
    g->refused(g->arg);
    return -EINVAL;
}

static void on_checked(kcw_promql_check_t *chk, void *arg)
{
    kcw_reload_gate_t *g = arg;
    kcw_config_t *cfg = g->cfg;
    kcw_ruleset_t *rules = g->rules;
    g->chk = NULL;
    g->cfg = NULL;
    g->rules = NULL;
    decide(g, chk, cfg, rules, NULL);
}

int kcw_reload_gate_submit(kcw_reload_gate_t *g, kcw_http_t *http, kcw_config_t *cfg,
                           kcw_ruleset_t *rules, kcw_errors_t *report)
{
    /* a newer reload supersedes one still being checked */
    drop(g, 409, "canceled",
         "superseded by a newer reload before Prometheus finished checking this one; it was not "
         "applied");
    g->unverified[0] = '\0';
    kcw_rules_warn((const char *const *)cfg->rule_files, cfg->n_rule_files,
                   (const kcw_ruleset_t *const[]){rules}, 1,
                   cfg->path ? cfg->path : "(built-in defaults)");
    if (kcw_promql_unverified(rules) == 0)
        return g->apply(g->arg, cfg, rules);
    kcw_promql_check_t *chk = kcw_promql_check_start(http, &cfg->prometheus, rules, on_checked, g);
    if (!chk)
        return g->apply(g->arg, cfg, rules); /* unverified: the verifier asks later */
    if (kcw_promql_check_done(chk))
        return decide(g, chk, cfg, rules, report);
    g->chk = chk;
    g->cfg = cfg;
    g->rules = rules;
    kcw_log(KCW_LOG_INFO, "reload: Prometheus is checking the rules' PromQL", NULL);
    return -EINPROGRESS;
}

static void on_request_gone(void *arg)
{
    kcw_reload_gate_t *g = arg;
    g->pending = NULL;
}

int kcw_reload_gate_defer(kcw_reload_gate_t *g, const kcw_admin_request_t *req)
{
    if (!g->chk || g->pending)
        return -EAGAIN;
    int64_t t = g->cfg->prometheus.timeout_ms;
    if (t <= 0 || t > 3600000)
        t = 10000;
    g->pending = kcw_admin_defer(req, (unsigned)(2 * t + 10000),
                                 "Prometheus has not finished checking this reload's PromQL; the "
                                 "outcome will be logged and shown in "
                                 "kcwatch_config_last_reload_successful",
                                 on_request_gone, g);
    return g->pending ? KCW_ADMIN_DEFERRED : -EAGAIN;
}

int kcw_reload_gate_applied_text(const kcw_reload_gate_t *g, kcw_admin_response_t *resp)
{
    if (!g->unverified[0])
        return kcw_admin_response_text(resp, 200, NULL, "configuration reloaded\n");
    char text[512];
    snprintf(text, sizeof text,
             "configuration reloaded\nPromQL not verified: Prometheus could not be asked (%s); "
             "it is verified when Prometheus answers\n",
             g->unverified);
    return kcw_admin_response_text(resp, 200, NULL, text);
}
