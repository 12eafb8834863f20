/* rules.c: rule files -> kcw_ruleset_t (see rules.h).
 *
 * Each file is read whole, handed to libyaml's document loader (which keeps
 * the start mark of every node) and walked against the Prometheus rule-file
 * schema plus kcwatch's `connect:` and `restart:` keys. Every problem (YAML
 * syntax, unknown or duplicate keys, bad durations, regexes, templates,
 * contradictory connect conditions) is appended to the caller's error list
 * with FILE:LINE:COL and the walk goes on, so `kcwatch check` prints them all
 * at once. A file with any error contributes no groups. Templates in labels
 * and annotations are compiled here, at the position of their scalar, so a
 * broken annotation is a load error rather than a surprise at 3 a.m. */
#include "kcwatch/rules.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kcwatch/connect.h"
#include "kcwatch/duration.h"
#include "kcwatch/log.h"
#include "kcwatch/yamlnode.h"

#define MAX_FILE_BYTES (8 * 1024 * 1024)
#define MAX_GROUPS_PER_FILE 1000
#define MAX_RULES_PER_FILE 10000
#define MAX_TEMPLATES_PER_RULE 64 /* labels, and separately annotations */

typedef struct loader {
    kcw_ydoc_t y; /* doc, file name, error list */
    const char *text;
    size_t len;
    size_t n_rules; /* alerting rules so far, for the bound */
    size_t n_recording;
    kcw_errors_t warnings;
} loader_t;

/* --- freeing ---------------------------------------------------------- */

static void templates_free(kcw_rule_template_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].name);
        free(t[i].source);
        kcw_template_free(t[i].tmpl);
    }
    free(t);
}

static void connect_cond_free(kcw_connect_cond_t *c)
{
    if (!c)
        return;
    kcw_regex_free(c->cluster);
    kcw_regex_free(c->connector);
    free(c);
}

static void rule_clear(kcw_rule_t *r)
{
    free(r->alert);
    free(r->expr);
    connect_cond_free(r->connect);
    templates_free(r->labels, r->n_labels);
    templates_free(r->annotations, r->n_annotations);
    kcw_regex_free(r->restart.unless_trace);
    free(r->file);
    free(r->expr_map);
    free(r->expr_formatted);
    free(r->expr_error);
    memset(r, 0, sizeof(*r));
}

static void group_clear(kcw_rule_group_t *g)
{
    for (size_t i = 0; i < g->n_rules; i++)
        rule_clear(&g->rules[i]);
    free(g->rules);
    free(g->name);
    free(g->file);
    memset(g, 0, sizeof(*g));
}

void kcw_ruleset_free(kcw_ruleset_t *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n_groups; i++)
        group_clear(&rs->groups[i]);
    free(rs->groups);
    kcw_errors_clear(&rs->warnings);
    free(rs);
}

/* --- node helpers ----------------------------------------------------- */

static int get_bool(loader_t *l, const yaml_node_t *n, const char *key, bool *out)
{
    const char *s = kcw_ynode_scalar(n);
    if (s && kcw_ynode_is_plain(n)) {
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
            *out = false;
            return 0;
        }
    }
    kcw_ydoc_error(&l->y, n, "%s: expected true or false", key);
    return -EINVAL;
}

static int get_int(loader_t *l, const yaml_node_t *n, const char *key, int *out)
{
    const char *s = kcw_ynode_scalar(n);
    if (s && kcw_ynode_is_plain(n) && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (*end == '\0' && errno == 0 && v >= 0 && v <= 1000000000L) {
            *out = (int)v;
            return 0;
        }
    }
    kcw_ydoc_error(&l->y, n, "%s: expected a non-negative integer", key);
    return -EINVAL;
}

static int get_regex(loader_t *l, const yaml_node_t *n, const char *key, bool anchored,
                     kcw_regex_t **out)
{
    const char *s = kcw_ynode_scalar(n);
    if (!s) {
        kcw_ydoc_error(&l->y, n, "%s: expected a regular expression, got %s", key,
                       kcw_ynode_kind(n));
        return -EINVAL;
    }
    char err[512];
    int rc = kcw_regex_compile(s, anchored, out, err, sizeof(err));
    if (rc == -ENOMEM)
        kcw_ydoc_error(&l->y, n, "%s: out of memory", key);
    else if (rc < 0)
        kcw_ydoc_error(&l->y, n, "%s: %s", key, err);
    return rc;
}

static bool valid_label_name(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* Mapping walk: calls fn for each key/value; reports non-scalar and
 * duplicate keys. */
typedef int (*pair_fn)(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg);

static int walk_mapping(loader_t *l, yaml_node_t *map, const char *what, pair_fn fn, void *arg)
{
    if (map->type != YAML_MAPPING_NODE) {
        kcw_ydoc_error(&l->y, map, "%s: expected a mapping, got %s", what, kcw_ynode_kind(map));
        return -EINVAL;
    }
    int rc = 0;
    yaml_node_pair_t *start = map->data.mapping.pairs.start;
    yaml_node_pair_t *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = kcw_ydoc_node(&l->y, p->key);
        yaml_node_t *v = kcw_ydoc_node(&l->y, p->value);
        const char *key = kcw_ynode_scalar(k);
        if (!k || !v || !key) {
            kcw_ydoc_error(&l->y, k, "%s: keys must be strings", what);
            rc = -EINVAL;
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = start; q < p && !dup; q++) {
            const char *other = kcw_ynode_scalar(kcw_ydoc_node(&l->y, q->key));
            dup = other && strcmp(other, key) == 0;
        }
        if (dup) {
            kcw_ydoc_error(&l->y, k, "%s: duplicate key \"%s\"", what, key);
            rc = -EINVAL;
            continue;
        }
        if (fn(l, key, k, v, arg) < 0)
            rc = -EINVAL;
    }
    return rc;
}

/* --- templates -------------------------------------------------------- */

/* Compiles a template scalar at its position in the file (yamlnode.h). */
static int compile_scalar_template(loader_t *l, const yaml_node_t *n, const char *src,
                                   kcw_template_t **out)
{
    return kcw_ydoc_compile_template(&l->y, l->text, l->len, n, src, out);
}

typedef struct tmpl_list {
    kcw_rule_template_t *items;
    size_t n;
    const char *what; /* "labels" / "annotations" */
} tmpl_list_t;

static int on_template_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    tmpl_list_t *tl = arg;
    if (!valid_label_name(key) || strcmp(key, "__name__") == 0) {
        kcw_ydoc_error(&l->y, k, "%s: invalid name \"%s\" (must match [a-zA-Z_][a-zA-Z0-9_]*)",
                       tl->what, key);
        return -EINVAL;
    }
    if (tl->n >= MAX_TEMPLATES_PER_RULE) {
        kcw_ydoc_error(&l->y, k, "%s: more than %d entries", tl->what, MAX_TEMPLATES_PER_RULE);
        return -EINVAL;
    }
    char what[160];
    snprintf(what, sizeof(what), "%s.%s", tl->what, key);
    char *src = NULL;
    if (kcw_ydoc_get_string(&l->y, v, what, true, &src) < 0)
        return -EINVAL;
    kcw_template_t *t = NULL;
    if (compile_scalar_template(l, v, src, &t) < 0) {
        free(src);
        return -EINVAL;
    }
    kcw_rule_template_t *items = realloc(tl->items, (tl->n + 1) * sizeof(*items));
    char *name = strdup(key);
    if (!items || !name) {
        if (items)
            tl->items = items;
        free(name);
        free(src);
        kcw_template_free(t);
        kcw_ydoc_error(&l->y, k, "out of memory");
        return -ENOMEM;
    }
    tl->items = items;
    tl->items[tl->n++] = (kcw_rule_template_t){.name = name, .source = src, .tmpl = t};
    return 0;
}

static int get_templates(loader_t *l, yaml_node_t *v, const char *what, kcw_rule_template_t **out,
                         size_t *n_out)
{
    if (kcw_ynode_is_null(v))
        return 0;
    tmpl_list_t tl = {.what = what};
    int rc = walk_mapping(l, v, what, on_template_pair, &tl);
    *out = tl.items;
    *n_out = tl.n;
    return rc;
}

/* --- connect: and restart: ------------------------------------------ */

typedef struct connect_parse {
    kcw_connect_cond_t *c;
    const yaml_node_t *target_node, *state_node, *connector_key, *type_key, *tbc_key, *cluster_key;
    bool has_unreachable, has_stopped;
} connect_parse_t;

/* Parses a scalar-or-list of names into a bit mask via lookup. */
static int get_name_mask(loader_t *l, yaml_node_t *v, const char *key, int (*lookup)(const char *),
                         const char *allowed, unsigned *mask)
{
    yaml_node_t *one = v;
    yaml_node_item_t *it = NULL, *top = NULL;
    if (v->type == YAML_SEQUENCE_NODE) {
        it = v->data.sequence.items.start;
        top = v->data.sequence.items.top;
        if (it == top) {
            kcw_ydoc_error(&l->y, v, "%s: empty list", key);
            return -EINVAL;
        }
    }
    int rc = 0;
    for (;;) {
        if (it) {
            if (it >= top)
                break;
            one = kcw_ydoc_node(&l->y, *it++);
        }
        const char *s = kcw_ynode_scalar(one);
        int bit = s ? lookup(s) : -1;
        if (bit < 0) {
            if (s)
                kcw_ydoc_error(&l->y, one, "%s: unknown value \"%s\" (one of %s)", key, s, allowed);
            else
                kcw_ydoc_error(&l->y, one, "%s: expected a name or a list of names", key);
            rc = -EINVAL;
        } else {
            *mask |= 1u << bit;
        }
        if (!it)
            break;
    }
    return rc;
}

static int lookup_type(const char *s)
{
    if (strcmp(s, "source") == 0)
        return KCW_CTYPE_SOURCE;
    if (strcmp(s, "sink") == 0)
        return KCW_CTYPE_SINK;
    return -1;
}

/* The states a rule may name (connect-rest.md §4; UNREACHABLE is kcwatch's
 * own cluster-level state). UNKNOWN is not selectable. */
static int lookup_state(const char *s)
{
    for (int st = KCW_STATE_UNKNOWN + 1; st < KCW_STATE__COUNT; st++)
        if (strcmp(s, kcw_state_name((kcw_state_t)st)) == 0)
            return st;
    return -1;
}

static const char *const connect_keys =
    "cluster, connector, type, target, state, tasks_below_configs";

static int on_connect_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    connect_parse_t *cp = arg;
    kcw_connect_cond_t *c = cp->c;
    if (strcmp(key, "cluster") == 0) {
        cp->cluster_key = k;
        return get_regex(l, v, "connect.cluster", true, &c->cluster);
    }
    if (strcmp(key, "connector") == 0) {
        cp->connector_key = k;
        return get_regex(l, v, "connect.connector", true, &c->connector);
    }
    if (strcmp(key, "type") == 0) {
        cp->type_key = k;
        return get_name_mask(l, v, "connect.type", lookup_type, "source, sink", &c->type_mask);
    }
    if (strcmp(key, "target") == 0) {
        cp->target_node = v;
        const char *s = kcw_ynode_scalar(v);
        if (s && strcmp(s, "task") == 0)
            c->target = KCW_TARGET_TASK;
        else if (s && strcmp(s, "connector") == 0)
            c->target = KCW_TARGET_CONNECTOR;
        else if (s && strcmp(s, "cluster") == 0)
            c->target = KCW_TARGET_CLUSTER;
        else {
            kcw_ydoc_error(&l->y, v, "connect.target: expected task, connector or cluster");
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "state") == 0) {
        cp->state_node = v;
        return get_name_mask(l, v, "connect.state", lookup_state,
                             "FAILED, PAUSED, UNASSIGNED, RESTARTING, STOPPED, UNREACHABLE, "
                             "UNREADABLE, RUNNING",
                             &c->state_mask);
    }
    if (strcmp(key, "tasks_below_configs") == 0) {
        cp->tbc_key = k;
        return get_bool(l, v, "connect.tasks_below_configs", &c->tasks_below_configs);
    }
    kcw_ydoc_unknown_key(&l->y, k, "connect", key, connect_keys);
    return -EINVAL;
}

/* Cross-key checks once the whole connect: mapping is known (keys come in
 * any order). */
static int check_connect(loader_t *l, const yaml_node_t *map, connect_parse_t *cp)
{
    kcw_connect_cond_t *c = cp->c;
    int rc = 0;
    unsigned cluster_states = (1u << KCW_STATE_UNREACHABLE) | (1u << KCW_STATE_UNREADABLE);
    if (c->target == KCW_TARGET_CLUSTER) {
        if (!c->state_mask || (c->state_mask & ~cluster_states)) {
            kcw_ydoc_error(&l->y, cp->state_node ? cp->state_node : map,
                       "connect: target cluster needs state: UNREACHABLE and/or UNREADABLE "
                       "(the cluster states)");
            rc = -EINVAL;
        }
        const yaml_node_t *bad[] = {cp->connector_key, cp->type_key, cp->tbc_key};
        const char *names[] = {"connector", "type", "tasks_below_configs"};
        for (size_t i = 0; i < 3; i++) {
            if (bad[i]) {
                kcw_ydoc_error(&l->y, bad[i], "connect.%s does not apply to target cluster",
                               names[i]);
                rc = -EINVAL;
            }
        }
        return rc;
    }
    if (c->state_mask & cluster_states) {
        kcw_ydoc_error(&l->y, cp->state_node,
                   "connect.state: UNREACHABLE and UNREADABLE are only valid with target: "
                   "cluster");
        rc = -EINVAL;
    }
    if (c->target == KCW_TARGET_TASK && (c->state_mask & (1u << KCW_STATE_STOPPED))) {
        /* connect-rest.md §4: STOPPED is a connector state; a stopped connector has no tasks. */
        kcw_ydoc_error(&l->y, cp->state_node,
                   "connect.state: tasks are never STOPPED (use target: "
                   "connector)");
        rc = -EINVAL;
    }
    if (cp->tbc_key && c->target != KCW_TARGET_CONNECTOR) {
        kcw_ydoc_error(&l->y, cp->tbc_key, "connect.tasks_below_configs needs target: connector");
        rc = -EINVAL;
    }
    return rc;
}

static int get_connect(loader_t *l, yaml_node_t *v, kcw_connect_cond_t **out)
{
    kcw_connect_cond_t *c = calloc(1, sizeof(*c));
    if (!c) {
        kcw_ydoc_error(&l->y, v, "out of memory");
        return -ENOMEM;
    }
    *out = c;
    if (kcw_ynode_is_null(v))
        return check_connect(l, v, &(connect_parse_t){.c = c});
    connect_parse_t cp = {.c = c};
    int rc = walk_mapping(l, v, "connect", on_connect_pair, &cp);
    if (rc < 0)
        return rc;
    return check_connect(l, v, &cp);
}

typedef struct restart_parse {
    kcw_restart_spec_t *spec;
    const yaml_node_t *scope_node;
} restart_parse_t;

static int on_restart_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    restart_parse_t *rp = arg;
    if (strcmp(key, "scope") == 0) {
        rp->scope_node = v;
        const char *s = kcw_ynode_scalar(v);
        if (s && strcmp(s, "failed") == 0)
            rp->spec->scope = KCW_SCOPE_FAILED;
        else if (s && strcmp(s, "task") == 0)
            rp->spec->scope = KCW_SCOPE_TASK;
        else if (s && strcmp(s, "connector") == 0)
            rp->spec->scope = KCW_SCOPE_CONNECTOR;
        else {
            kcw_ydoc_error(&l->y, v, "restart.scope: expected failed, task or connector");
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "unless_trace") == 0)
        return get_regex(l, v, "restart.unless_trace", false, &rp->spec->unless_trace);
    kcw_ydoc_unknown_key(&l->y, k, "restart", key, "scope, unless_trace");
    return -EINVAL;
}

static int get_restart(loader_t *l, yaml_node_t *v, kcw_restart_spec_t *spec,
                       const yaml_node_t **scope_node)
{
    memset(spec, 0, sizeof(*spec));
    if (kcw_ynode_is_null(v))
        return 0;
    if (v->type == YAML_SCALAR_NODE)
        return get_bool(l, v, "restart", &spec->enabled);
    if (v->type != YAML_MAPPING_NODE) {
        kcw_ydoc_error(&l->y, v, "restart: expected true, false or {scope, unless_trace}");
        return -EINVAL;
    }
    spec->enabled = true;
    restart_parse_t rp = {.spec = spec};
    int rc = walk_mapping(l, v, "restart", on_restart_pair, &rp);
    *scope_node = rp.scope_node;
    return rc;
}

/* --- rules and groups ------------------------------------------------- */

typedef struct rule_parse {
    kcw_rule_t *r;
    const yaml_node_t *alert_key, *expr_key, *connect_key, *restart_node, *scope_node;
    bool recording;
} rule_parse_t;

static const char *const rule_keys =
    "alert, expr, connect, for, keep_firing_for, labels, annotations, restart";

static int on_rule_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    rule_parse_t *rp = arg;
    kcw_rule_t *r = rp->r;
    if (strcmp(key, "alert") == 0) {
        rp->alert_key = k;
        return kcw_ydoc_get_string(&l->y, v, key, true, &r->alert);
    }
    if (strcmp(key, "expr") == 0) {
        rp->expr_key = k;
        int rc = kcw_ydoc_get_string(&l->y, v, key, true, &r->expr);
        if (rc == 0 && !*r->expr) {
            kcw_ydoc_error(&l->y, v, "expr: empty expression");
            rc = -EINVAL;
        }
        r->expr_line = (int)v->start_mark.line + 1;
        r->expr_col = (int)v->start_mark.column + 1;
        if (rc == 0 && kcw_ydoc_scalar_map(&l->y, l->text, l->len, v, r->expr, &r->expr_map,
                                           &r->n_expr_map) < 0) {
            kcw_ydoc_error(&l->y, v, "out of memory");
            rc = -ENOMEM;
        }
        return rc;
    }
    if (strcmp(key, "connect") == 0) {
        rp->connect_key = k;
        return get_connect(l, v, &r->connect);
    }
    if (strcmp(key, "for") == 0)
        return kcw_ydoc_get_duration(&l->y, v, key, true, &r->for_ms);
    if (strcmp(key, "keep_firing_for") == 0)
        return kcw_ydoc_get_duration(&l->y, v, key, true, &r->keep_firing_for_ms);
    if (strcmp(key, "labels") == 0)
        return get_templates(l, v, key, &r->labels, &r->n_labels);
    if (strcmp(key, "annotations") == 0)
        return get_templates(l, v, key, &r->annotations, &r->n_annotations);
    if (strcmp(key, "restart") == 0) {
        rp->restart_node = v;
        return get_restart(l, v, &r->restart, &rp->scope_node);
    }
    kcw_ydoc_unknown_key(&l->y, k, "rule", key, rule_keys);
    return -EINVAL;
}

/* Parses one rule mapping into r; returns 1 for a recording rule (skipped). */
static int parse_rule(loader_t *l, yaml_node_t *n, kcw_rule_t *r)
{
    memset(r, 0, sizeof(*r));
    if (n->type != YAML_MAPPING_NODE) {
        kcw_ydoc_error(&l->y, n, "rule: expected a mapping, got %s", kcw_ynode_kind(n));
        return -EINVAL;
    }
    /* A recording rule is skipped whole: kcwatch does not write series. */
    bool has_alert = false, has_record = false;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = kcw_ynode_scalar(kcw_ydoc_node(&l->y, p->key));
        has_alert = has_alert || (key && strcmp(key, "alert") == 0);
        has_record = has_record || (key && strcmp(key, "record") == 0);
    }
    if (has_record && has_alert) {
        kcw_ydoc_error(&l->y, n, "rule: only one of 'record' and 'alert' may be set");
        return -EINVAL;
    }
    if (has_record) {
        kcw_errors_add(&l->warnings, l->y.file, (int)n->start_mark.line + 1,
                       (int)n->start_mark.column + 1,
                       "recording rule skipped: kcwatch evaluates alerting rules only");
        return 1;
    }
    r->line = (int)n->start_mark.line + 1;
    r->col = (int)n->start_mark.column + 1;
    r->file = strdup(l->y.file);
    if (!r->file) {
        kcw_ydoc_error(&l->y, n, "out of memory");
        return -ENOMEM;
    }
    rule_parse_t rp = {.r = r};
    int rc = walk_mapping(l, n, "rule", on_rule_pair, &rp);
    if (!r->alert || !*r->alert) {
        kcw_ydoc_error(&l->y, rp.alert_key ? rp.alert_key : n,
                   "rule: alert name is missing (one of 'record' or 'alert' must be set)");
        rc = -EINVAL;
    }
    if (rp.expr_key && rp.connect_key) {
        kcw_ydoc_error(&l->y, rp.connect_key, "rule: expr and connect are mutually exclusive");
        rc = -EINVAL;
    } else if (!rp.expr_key && !rp.connect_key) {
        kcw_ydoc_error(&l->y, n, "rule: one of expr or connect is required");
        rc = -EINVAL;
    }
    if (r->restart.enabled && r->connect) {
        if (r->connect->target == KCW_TARGET_CLUSTER) {
            kcw_ydoc_error(&l->y, rp.restart_node,
                       "restart: a target: cluster rule has no connector to restart");
            rc = -EINVAL;
        } else if (r->connect->target == KCW_TARGET_CONNECTOR &&
                   r->restart.scope == KCW_SCOPE_TASK) {
            kcw_ydoc_error(&l->y, rp.scope_node ? rp.scope_node : rp.restart_node,
                       "restart.scope: task needs task instances (this rule targets "
                       "connectors)");
            rc = -EINVAL;
        }
    }
    return rc;
}

typedef struct group_parse {
    kcw_rule_group_t *g;
    const yaml_node_t *name_node;
    yaml_node_t *rules_node;
    yaml_node_t *labels_node;
} group_parse_t;

static int on_group_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    group_parse_t *gp = arg;
    kcw_rule_group_t *g = gp->g;
    if (strcmp(key, "name") == 0) {
        gp->name_node = v;
        return kcw_ydoc_get_string(&l->y, v, key, true, &g->name);
    }
    if (strcmp(key, "interval") == 0) {
        int rc = kcw_ydoc_get_duration(&l->y, v, key, true, &g->interval_ms);
        if (rc == 0 && g->interval_ms > 0 && g->interval_ms < KCW_MIN_INTERVAL_MS) {
            kcw_ydoc_error(&l->y, v, "interval: %s is below the minimum of 100ms",
                           kcw_ynode_scalar(v));
            return -EINVAL;
        }
        return rc;
    }
    if (strcmp(key, "query_offset") == 0)
        return kcw_ydoc_get_duration(&l->y, v, key, true, &g->query_offset_ms);
    if (strcmp(key, "limit") == 0)
        return get_int(l, v, key, &g->limit);
    if (strcmp(key, "rules") == 0) {
        gp->rules_node = v;
        return 0;
    }
    if (strcmp(key, "labels") == 0) {
        /* Checked here once; added to each rule after its rules are read. */
        kcw_rule_template_t *items = NULL;
        size_t n = 0;
        int rc = get_templates(l, v, "labels", &items, &n);
        templates_free(items, n);
        if (rc == 0 && !kcw_ynode_is_null(v))
            gp->labels_node = v;
        return rc;
    }
    kcw_ydoc_unknown_key(&l->y, k, "group", key,
                         "name, interval, labels, limit, query_offset, rules");
    return -EINVAL;
}

static int parse_rules(loader_t *l, yaml_node_t *seq, kcw_rule_group_t *g)
{
    if (kcw_ynode_is_null(seq))
        return 0;
    if (seq->type != YAML_SEQUENCE_NODE) {
        kcw_ydoc_error(&l->y, seq, "rules: expected a list, got %s", kcw_ynode_kind(seq));
        return -EINVAL;
    }
    size_t n = kcw_ynode_seq_len(seq);
    if (n == 0)
        return 0;
    g->rules = calloc(n, sizeof(*g->rules));
    if (!g->rules) {
        kcw_ydoc_error(&l->y, seq, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *rn = kcw_ydoc_node(&l->y, *it);
        if (!rn)
            continue;
        if (l->n_rules >= MAX_RULES_PER_FILE) {
            kcw_ydoc_error(&l->y, rn, "more than %d rules in one file", MAX_RULES_PER_FILE);
            return -EINVAL;
        }
        kcw_rule_t *r = &g->rules[g->n_rules];
        int prc = parse_rule(l, rn, r);
        if (prc == 1) {
            l->n_recording++;
            continue;
        }
        /* Keep failed rules too: freeing stays in one place. */
        g->n_rules++;
        l->n_rules++;
        if (prc < 0)
            rc = -EINVAL;
    }
    return rc;
}

typedef struct group_labels {
    tmpl_list_t tl;
    size_t n_own; /* the rule's own labels, first in tl */
} group_labels_t;

static int on_group_label(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    group_labels_t *gl = arg;
    for (size_t i = 0; i < gl->n_own; i++)
        if (strcmp(gl->tl.items[i].name, key) == 0)
            return 0; /* the rule's own label wins */
    return on_template_pair(l, key, k, v, &gl->tl);
}

/* Group `labels:` (Prometheus' rule group labels): every rule of the group
 * gets them, its own labels of the same name win. Values are templates,
 * compiled per rule like the rule's own. */
static int add_group_labels(loader_t *l, yaml_node_t *labels, kcw_rule_t *r)
{
    group_labels_t gl = {
        .tl = {.items = r->labels, .n = r->n_labels, .what = "labels"}, .n_own = r->n_labels};
    int rc = walk_mapping(l, labels, "labels", on_group_label, &gl);
    r->labels = gl.tl.items;
    r->n_labels = gl.tl.n;
    return rc;
}

static int parse_group(loader_t *l, yaml_node_t *n, kcw_rule_group_t *g, kcw_rule_group_t *prev,
                       size_t n_prev)
{
    memset(g, 0, sizeof(*g));
    g->file = strdup(l->y.file);
    if (!g->file) {
        kcw_ydoc_error(&l->y, n, "out of memory");
        return -ENOMEM;
    }
    group_parse_t gp = {.g = g};
    int rc = walk_mapping(l, n, "group", on_group_pair, &gp);
    if (n->type != YAML_MAPPING_NODE)
        return -EINVAL;
    if (!g->name || !*g->name) {
        kcw_ydoc_error(&l->y, gp.name_node ? gp.name_node : n, "group: name is missing");
        rc = -EINVAL;
    } else {
        for (size_t i = 0; i < n_prev; i++) {
            if (prev[i].name && strcmp(prev[i].name, g->name) == 0) {
                kcw_ydoc_error(&l->y, gp.name_node,
                               "groupname: \"%s\" is repeated in the same file", g->name);
                rc = -EINVAL;
                break;
            }
        }
    }
    if (gp.rules_node && parse_rules(l, gp.rules_node, g) < 0)
        rc = -EINVAL;
    for (size_t i = 0; gp.labels_node && i < g->n_rules; i++)
        if (add_group_labels(l, gp.labels_node, &g->rules[i]) < 0)
            rc = -EINVAL;
    return rc;
}

typedef struct file_parse {
    yaml_node_t *groups;
} file_parse_t;

static int on_top_pair(loader_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    file_parse_t *fp = arg;
    if (strcmp(key, "groups") == 0) {
        fp->groups = v;
        return 0;
    }
    kcw_ydoc_unknown_key(&l->y, k, "rule file", key, "groups");
    return -EINVAL;
}

/* Parses one file's text into groups (*groups / *n). Errors go to l->y.errs. */
static void parse_file(loader_t *l, kcw_rule_group_t **groups, size_t *n)
{
    *groups = NULL;
    *n = 0;
    /* Prometheus reads one document per rule file; a second one would be
     * silently ignored there, which hides rules. */
    if (kcw_ydoc_load(&l->y, l->text, l->len, "only one YAML document per rule file") < 0)
        return;
    yaml_node_t *root = yaml_document_get_root_node(&l->y.doc);
    if (!root || kcw_ynode_is_null(root)) {
        kcw_ydoc_free(&l->y);
        return; /* an empty file has no groups */
    }
    file_parse_t fp = {0};
    walk_mapping(l, root, "rule file", on_top_pair, &fp);
    yaml_node_t *seq = fp.groups;
    if (seq && !kcw_ynode_is_null(seq)) {
        if (seq->type != YAML_SEQUENCE_NODE) {
            kcw_ydoc_error(&l->y, seq, "groups: expected a list, got %s", kcw_ynode_kind(seq));
        } else {
            size_t count = kcw_ynode_seq_len(seq);
            if (count > MAX_GROUPS_PER_FILE) {
                kcw_ydoc_error(&l->y, seq, "more than %d groups in one file", MAX_GROUPS_PER_FILE);
                count = 0;
            }
            *groups = count ? calloc(count, sizeof(**groups)) : NULL;
            if (count && !*groups) {
                kcw_ydoc_error(&l->y, seq, "out of memory");
                count = 0;
            }
            for (size_t i = 0; i < count; i++) {
                yaml_node_t *gn = kcw_ydoc_node(&l->y, seq->data.sequence.items.start[i]);
                if (!gn)
                    continue;
                parse_group(l, gn, &(*groups)[*n], *groups, *n);
                (*n)++;
            }
        }
    }
    kcw_ydoc_free(&l->y);
}

static int load_buffer(const char *text, size_t len, const char *name, kcw_ruleset_t **rs,
                       kcw_errors_t *errs)
{
    loader_t l = {.y = {.file = name, .errs = errs}, .text = text, .len = len};
    size_t before = errs->n;
    kcw_rule_group_t *groups;
    size_t n;
    parse_file(&l, &groups, &n);
    int rc = errs->n > before ? -EINVAL : 0;
    if (rc == 0 && !*rs && !(*rs = calloc(1, sizeof(**rs)))) {
        kcw_errors_add(errs, name, 0, 0, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0)
        kcw_errors_append(&(*rs)->warnings, &l.warnings);
    kcw_errors_clear(&l.warnings);
    if (rc == 0 && n > 0) {
        kcw_ruleset_t *target = *rs;
        kcw_rule_group_t *all =
            realloc(target->groups, (target->n_groups + n) * sizeof(*target->groups));
        if (!all) {
            kcw_errors_add(errs, name, 0, 0, "out of memory");
            rc = -ENOMEM;
        } else {
            memcpy(all + target->n_groups, groups, n * sizeof(*groups));
            target->groups = all;
            target->n_groups += n;
            n = 0; /* moved */
        }
    }
    for (size_t i = 0; i < n; i++)
        group_clear(&groups[i]);
    free(groups);
    return rc;
}

int kcw_rules_load_string(const char *yaml, const char *name, kcw_ruleset_t **rs,
                          kcw_errors_t *errs)
{
    return load_buffer(yaml, strlen(yaml), name, rs, errs);
}

/* Reads path whole (bounded) and loads it. */
static int load_path(const char *path, bool named, kcw_ruleset_t **rs, kcw_errors_t *errs)
{
    char *text;
    size_t got;
    kcw_read_step_t step;
    int rc = kcw_file_read_bounded(path, MAX_FILE_BYTES, &text, &got, &step);
    if (rc == -EISDIR && !named)
        return 0; /* a glob that also matches a directory (rules.d/tests) */
    if (rc < 0) {
        if (step == KCW_READ_OPEN)
            kcw_errors_add(errs, path, 0, 0, "cannot open rule file: %s", strerror(-rc));
        else if (rc == -EFBIG)
            kcw_errors_add(errs, path, 0, 0, "rule file larger than %d bytes", MAX_FILE_BYTES);
        else if (step == KCW_READ_STAT)
            kcw_errors_add(errs, path, 0, 0, "cannot read rule file: %s",
                           rc == -EISDIR    ? "is a directory"
                           : rc == -ENOTSUP ? "not a regular file"
                                            : strerror(-rc));
        else if (rc == -ENOMEM)
            kcw_errors_add(errs, path, 0, 0, "out of memory");
        else
            kcw_errors_add(errs, path, 0, 0, "cannot read rule file");
        return rc == -ENOMEM ? -ENOMEM : -EINVAL;
    }
    rc = load_buffer(text, got, path, rs, errs);
    free(text);
    return rc;
}

static bool has_wildcard(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

int kcw_rules_load(const char *const *globs, size_t n_globs, kcw_ruleset_t **out,
                   kcw_errors_t *errs)
{
    *out = NULL;
    kcw_ruleset_t *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        kcw_errors_add(errs, NULL, 0, 0, "out of memory");
        return -ENOMEM;
    }
    size_t before = errs->n;
    /* A file matched by two globs loads once, or its groups would be evaluated twice. */
    char **seen = NULL;
    size_t n_seen = 0;
    for (size_t i = 0; i < n_globs; i++) {
        glob_t gl;
        memset(&gl, 0, sizeof(gl));
        const char *const *paths = &globs[i];
        size_t n_paths = 1;
        bool named = !has_wildcard(globs[i]);
        if (!named) {
            int grc = glob(globs[i], 0, NULL, &gl);
            if (grc == GLOB_NOMATCH) {
                globfree(&gl);
                continue;
            }
            if (grc != 0) {
                kcw_errors_add(errs, globs[i], 0, 0, "cannot expand rule file pattern");
                globfree(&gl);
                continue;
            }
            paths = (const char *const *)gl.gl_pathv;
            n_paths = gl.gl_pathc;
        }
        for (size_t j = 0; j < n_paths; j++) {
            bool dup = false;
            for (size_t k = 0; k < n_seen && !dup; k++)
                dup = strcmp(seen[k], paths[j]) == 0;
            if (dup)
                continue;
            char **ns = realloc(seen, (n_seen + 1) * sizeof(*seen));
            char *copy = strdup(paths[j]);
            if (!ns || !copy) {
                if (ns)
                    seen = ns;
                free(copy);
                kcw_errors_add(errs, paths[j], 0, 0, "out of memory");
                continue;
            }
            seen = ns;
            seen[n_seen++] = copy;
            load_path(paths[j], named, &rs, errs);
        }
        if (!named)
            globfree(&gl);
    }
    for (size_t k = 0; k < n_seen; k++)
        free(seen[k]);
    free(seen);
    if (errs->n > before) {
        kcw_ruleset_free(rs);
        return -EINVAL;
    }
    *out = rs;
    return 0;
}

size_t kcw_rules_warnings(const char *const *globs, size_t n_globs, const kcw_ruleset_t *const *sets,
                          size_t n_sets, const char *where, kcw_errors_t *warns)
{
    size_t before = warns->n;
    for (size_t i = 0; i < n_globs; i++) {
        if (!has_wildcard(globs[i]))
            continue; /* a named file that is missing is an error already */
        glob_t gl;
        memset(&gl, 0, sizeof(gl));
        if (glob(globs[i], 0, NULL, &gl) == GLOB_NOMATCH)
            kcw_errors_add(warns, where, 0, 0, "rule_files: \"%s\" matches no file", globs[i]);
        globfree(&gl);
    }
    size_t n_rules = 0;
    for (size_t s = 0; s < n_sets; s++)
        for (size_t g = 0; sets[s] && g < sets[s]->n_groups; g++)
            n_rules += sets[s]->groups[g].n_rules;
    if (n_rules == 0)
        kcw_errors_add(warns, where, 0, 0, "no alerting rule loaded: kcwatch will never alert");
    return warns->n - before;
}

size_t kcw_rules_warn(const char *const *globs, size_t n_globs, const kcw_ruleset_t *const *sets,
                      size_t n_sets, const char *where)
{
    kcw_errors_t warns = {0};
    size_t n = kcw_rules_warnings(globs, n_globs, sets, n_sets, where, &warns);
    char line[2048];
    for (size_t i = 0; i < n && i < warns.cap; i++) {
        kcw_error_format(&warns.items[i], line, sizeof(line));
        kcw_log(KCW_LOG_WARN, "configuration warning", "warning", line, NULL);
    }
    kcw_errors_clear(&warns);
    return n;
}

void kcw_rules_set_template_env(kcw_ruleset_t *rs, const kcw_template_env_t *env)
{
    for (size_t g = 0; rs && g < rs->n_groups; g++) {
        for (size_t i = 0; i < rs->groups[g].n_rules; i++) {
            kcw_rule_t *r = &rs->groups[g].rules[i];
            for (size_t k = 0; k < r->n_labels; k++)
                kcw_template_set_env(r->labels[k].tmpl, env);
            for (size_t k = 0; k < r->n_annotations; k++)
                kcw_template_set_env(r->annotations[k].tmpl, env);
        }
    }
}
