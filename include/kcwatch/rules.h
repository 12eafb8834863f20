/* rules.h: rule files -> rule groups.
 *
 * Prometheus rule files load unchanged (groups: name, interval, limit,
 * query_offset; rules: alert, expr, for, keep_firing_for, labels,
 * annotations). Recording rules are skipped, each a positioned warning
 * (kcw_ruleset_t.warnings).
 * kcwatch adds per rule `connect:` (a condition on the Connect status, instead
 * of expr) and `restart:` (remediation). Templates are compiled at load time;
 * every error is positioned (FILE:LINE:COL) and all are reported at once. */
#ifndef KCWATCH_RULES_H
#define KCWATCH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/errors.h"
#include "kcwatch/labels.h"
#include "kcwatch/template.h"
#include "kcwatch/yamlnode.h"

typedef enum {
    KCW_TARGET_TASK = 0, /* default */
    KCW_TARGET_CONNECTOR,
    KCW_TARGET_CLUSTER,
} kcw_target_t;

typedef struct kcw_regex kcw_regex_t; /* compiled PCRE2 */

/* Compiles a regex; anchored=true wraps it as ^(?:re)$ like Prometheus label
 * matchers. 0, or -EINVAL with the PCRE2 message and offset in err. */
int kcw_regex_compile(const char *src, bool anchored, kcw_regex_t **out, char *err,
                      size_t errlen);
bool kcw_regex_match(const kcw_regex_t *re, const char *subject);
/* Go's Regexp.ReplaceAllString: every match of re in subject replaced by
 * repl, where $1, ${1}, $name and ${name} expand to groups (unknown or unset
 * ones to "") and $$ is a '$'. *out (free it) is at most max bytes, else
 * -E2BIG. 0, -E2BIG, -EINVAL (a bad replacement, message in err), -ENOMEM. */
int kcw_regex_replace_all(const kcw_regex_t *re, const char *subject, const char *repl,
                          size_t max, char **out, char *err, size_t errlen);
const char *kcw_regex_source(const kcw_regex_t *re);
void kcw_regex_free(kcw_regex_t *re);

typedef struct kcw_connect_cond {
    kcw_regex_t *cluster;   /* NULL = any */
    kcw_regex_t *connector; /* NULL = any */
    unsigned type_mask;     /* bit (1u << kcw_connector_type_t); 0 = any */
    kcw_target_t target;
    unsigned state_mask;    /* bit (1u << kcw_state_t); 0 = any state */
    /* connector target only: fewer RUNNING tasks than task configs */
    bool tasks_below_configs;
} kcw_connect_cond_t;

typedef enum {
    KCW_SCOPE_FAILED = 0, /* connector if FAILED + only the FAILED tasks (default) */
    KCW_SCOPE_TASK,       /* the alert's task */
    KCW_SCOPE_CONNECTOR,  /* the connector instance */
} kcw_restart_scope_t;

typedef struct kcw_restart_spec {
    bool enabled;
    kcw_restart_scope_t scope;
    kcw_regex_t *unless_trace; /* unanchored; NULL = only the global defaults */
} kcw_restart_spec_t;

typedef struct kcw_rule_annotation {
    char *name;
    char *source;
    kcw_template_t *tmpl;
} kcw_rule_template_t;

typedef struct kcw_rule {
    char *alert;
    char *expr;                /* PromQL, NULL for connect: rules */
    kcw_connect_cond_t *connect; /* NULL for expr rules */
    int64_t for_ms;
    int64_t keep_firing_for_ms;
    kcw_rule_template_t *labels; /* label values are templates too */
    size_t n_labels;
    kcw_rule_template_t *annotations;
    size_t n_annotations;
    kcw_restart_spec_t restart;
    char *file;
    int line, col;
    /* Where expr's text lies in the file, to position Prometheus' parse
     * errors (kcw_src_map_pos); expr_line:expr_col is the expr scalar. */
    kcw_src_seg_t *expr_map;
    size_t n_expr_map;
    int expr_line, expr_col;
    /* Set by the PromQL check (promql_check.h): Prometheus' normalised text
     * of expr, and its rejection (FILE:LINE:COL: ...) when it refused it. */
    char *expr_formatted;
    char *expr_error;
} kcw_rule_t;

typedef struct kcw_rule_group {
    char *name;
    char *file;
    int64_t interval_ms; /* 0 = global evaluation_interval */
    int limit;           /* 0 = none */
    int64_t query_offset_ms;
    kcw_rule_t *rules;
    size_t n_rules;
} kcw_rule_group_t;

typedef struct kcw_ruleset {
    kcw_rule_group_t *groups;
    size_t n_groups;
    /* What loaded but was left out (recording rules), positioned like errors. */
    kcw_errors_t warnings;
} kcw_ruleset_t;

/* Expands each glob (glob(3)), loads every matching file in order. A glob
 * matching nothing is not an error; a named file (no wildcard) that does not
 * exist is. 0 and *out, or -EINVAL with every error in errs. */
int kcw_rules_load(const char *const *globs, size_t n_globs, kcw_ruleset_t **out,
                   kcw_errors_t *errs);
/* One file's text (tests); name is the FILE in errors. Appends to *rs
 * (allocated when *rs == NULL). */
int kcw_rules_load_string(const char *yaml, const char *name, kcw_ruleset_t **rs,
                          kcw_errors_t *errs);
void kcw_ruleset_free(kcw_ruleset_t *rs);
/* Gives every label and annotation template of rs the environment env
 * (query, externalURL; kcw_template_set_env). */
void kcw_rules_set_template_env(kcw_ruleset_t *rs, const kcw_template_env_t *env);

/* What loads but is likely a mistake, appended to warns at where (the
 * config file, no position): each pattern of globs that matches no file
 * ("rule_files: \"P\" matches no file"), and "no alerting rule loaded" when
 * the n_sets sets hold none. kcwatch check prints them (errors with
 * --strict), the daemon logs them. Returns how many were added. */
size_t kcw_rules_warnings(const char *const *globs, size_t n_globs, const kcw_ruleset_t *const *sets,
                          size_t n_sets, const char *where, kcw_errors_t *warns);
/* The same, logged at WARN ("configuration warning", warning=FILE: message). */
size_t kcw_rules_warn(const char *const *globs, size_t n_globs, const kcw_ruleset_t *const *sets,
                      size_t n_sets, const char *where);

#endif
