/* reload_gate.c: a reload waits for Prometheus' PromQL check (see
 * reload_gate.h). */
#include "kcwatch/reload_gate.h"

#include <errno.h>

#include "kcwatch/log.h"

void kcw_reload_gate_drop(kcw_reload_gate_t *g)
{
    kcw_promql_check_free(g->chk);
    kcw_config_free(g->cfg);
    kcw_ruleset_free(g->rules);
    g->chk = NULL;
    g->cfg = NULL;
    g->rules = NULL;
}

/* Prometheus answered (or could not be asked): refuse or apply. */
static int decide(kcw_reload_gate_t *g, kcw_promql_check_t *chk, kcw_config_t *cfg,
                  kcw_ruleset_t *rules)
{
    if (kcw_promql_check_rejected(chk) == 0) {
        kcw_promql_check_free(chk);
        return g->apply(g->arg, cfg, rules);
    }
    const kcw_errors_t *errs = kcw_promql_check_errors(chk);
    char line[1200];
    for (size_t i = 0; i < errs->n && i < errs->cap; i++) {
        kcw_error_format(&errs->items[i], line, sizeof(line));
        kcw_log(KCW_LOG_ERROR, "reload rejected", "error", line, NULL);
    }
    kcw_log(KCW_LOG_ERROR,
            "reload failed: Prometheus rejected PromQL; keeping the running configuration", NULL);
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
    decide(g, chk, cfg, rules);
}

int kcw_reload_gate_submit(kcw_reload_gate_t *g, kcw_http_t *http, kcw_config_t *cfg,
                           kcw_ruleset_t *rules)
{
    kcw_reload_gate_drop(g); /* a newer reload supersedes one still being checked */
    kcw_rules_warn((const char *const *)cfg->rule_files, cfg->n_rule_files,
                   (const kcw_ruleset_t *const[]){rules}, 1,
                   cfg->path ? cfg->path : "(built-in defaults)");
    if (kcw_promql_unverified(rules) == 0)
        return g->apply(g->arg, cfg, rules);
    kcw_promql_check_t *chk = kcw_promql_check_start(http, &cfg->prometheus, rules, on_checked, g);
    if (!chk)
        return g->apply(g->arg, cfg, rules); /* unverified: the verifier asks later */
    if (kcw_promql_check_done(chk))
        return decide(g, chk, cfg, rules);
    g->chk = chk;
    g->cfg = cfg;
    g->rules = rules;
    kcw_log(KCW_LOG_INFO, "reload: Prometheus is checking the rules' PromQL", NULL);
    return -EINPROGRESS;
}
