/* ruletest.c: `kcwatch test`, unit tests for alert rules (see ruletest.h).
 *
 * A test file is read whole and loaded with libyaml's document loader, which
 * keeps the start mark of every node, then walked against the test-file
 * schema (rules.d/tests/README.md). Every problem is collected with
 * FILE:LINE:COL, as the rule and config loaders do, and a file with any
 * error runs no test. The rule files it names load through kcw_rules_load(),
 * so they are checked exactly as the daemon would check them.
 *
 * Running a test drives the daemon's own evaluation engine (engine.h) on a
 * simulated clock: the Connect snapshots are turned into the same
 * kcw_cluster_status_t model connect.c builds from a poll (an unreachable
 * cluster keeps its previous connectors, stale, as connect.c keeps them), and
 * canned query results into the kcw_prom_result_t prom.c hands over. A
 * snapshot that differs from the one before is a changed poll and evaluates
 * the connect: rules at once, as the daemon does; every group also ticks at
 * 0, interval, 2*interval, ... up to the last eval_time (as promtool, every
 * group at every step). At each eval_time the alerts of one alertname are
 * compared with the expected ones. The clock is the test's own: nothing here reads the time. */
#include "kcwatch/ruletest.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kcwatch/alerts.h"
#include "kcwatch/connect.h"
#include "kcwatch/duration.h"
#include "kcwatch/errors.h"
#include "kcwatch/engine.h"
#include "kcwatch/labels.h"
#include "kcwatch/prom.h"
#include "kcwatch/rules.h"
#include "kcwatch/text.h"
#include "kcwatch/yamlnode.h"

#define MAX_FILE_BYTES (8 * 1024 * 1024)
#define MAX_LIST_ITEMS 100000    /* entries of any one list or mapping */
#define MAX_NODE_VISITS 10000000 /* aliases can make a small file walk huge */
#define MAX_NODES 2000000        /* a test file's YAML nodes, alias copies included */
#define MAX_EVALUATIONS 1000000  /* evaluation steps of one test */
#define DEFAULT_INTERVAL_MS 60000
/* The alert state machine and the cluster model use 0 for "never" (not
 * resolved, not polled), so test time t runs at TEST_EPOCH_MS + t. Nothing
 * shown to the user depends on it. */
#define TEST_EPOCH_MS INT64_C(1000000000000)

/* Text from the test file or a rule file, safe to print on a terminal. */
typedef struct esc {
    char *s[6];
    size_t n;
} esc_t;

static const char *esc(esc_t *e, const char *s)
{
    if (e->n == sizeof(e->s) / sizeof(e->s[0]))
        return "?";
    char *x = kcw_text_escape(s, 0);
    e->s[e->n++] = x;
    return x ? x : "?";
}

static void esc_free(esc_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->s[i]);
    e->n = 0;
}

/* --- the loaded test file ------------------------------------------------ */

typedef struct snapshot {
    int64_t at_ms;
    kcw_cluster_status_t *clusters;
    size_t n_clusters;
    const kcw_cluster_status_t **view; /* clusters as kcw_eval_connect_rule takes them */
} snapshot_t;

typedef enum {
    CANNED_VECTOR = 0,
    CANNED_SCALAR,
    CANNED_ERROR,
} canned_kind_t;

typedef struct canned {
    int64_t at_ms;
    canned_kind_t kind;
    kcw_prom_sample_t *samples;
    size_t n_samples;
    double scalar;
    char *error;
} canned_t;

typedef struct query {
    char *expr; /* whitespace-normalised */
    int line, col;
    canned_t *results;
    size_t n_results;
} query_t;

typedef struct exp_alert {
    kcw_labels_t labels;
    kcw_labels_t annotations;
    bool has_annotations;
    kcw_alert_state_t state;
} exp_alert_t;

typedef struct check {
    int64_t eval_ms;
    char *alertname;
    exp_alert_t *exp;
    size_t n_exp;
    bool want_pending; /* some expected alert is pending: show pending ones too */
    size_t index;      /* position in the file, to keep the report in file order */
} check_t;

typedef struct test_case {
    char *name;
    snapshot_t *snaps;
    size_t n_snaps;
    query_t *queries;
    size_t n_queries;
    check_t *checks; /* sorted by eval_ms after loading */
    size_t n_checks;
} test_case_t;

typedef struct pattern {
    char *path; /* resolved against the test file's directory */
    int line, col;
} pattern_t;

typedef struct test_file {
    const char *path;
    pattern_t *rule_files;
    size_t n_rule_files;
    int64_t interval_ms;
    kcw_labels_t external_labels;
    test_case_t *tests;
    size_t n_tests;
    kcw_ruleset_t *rules;
} test_file_t;

static void snapshot_clear(snapshot_t *s)
{
    for (size_t i = 0; i < s->n_clusters; i++)
        kcw_cluster_status_clear(&s->clusters[i]);
    free(s->clusters);
    free(s->view);
    memset(s, 0, sizeof(*s));
}

static void canned_clear(canned_t *c)
{
    for (size_t i = 0; i < c->n_samples; i++)
        kcw_labels_clear(&c->samples[i].metric);
    free(c->samples);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

static void query_clear(query_t *q)
{
    for (size_t i = 0; i < q->n_results; i++)
        canned_clear(&q->results[i]);
    free(q->results);
    free(q->expr);
    memset(q, 0, sizeof(*q));
}

static void check_clear(check_t *c)
{
    for (size_t i = 0; i < c->n_exp; i++) {
        kcw_labels_clear(&c->exp[i].labels);
        kcw_labels_clear(&c->exp[i].annotations);
    }
    free(c->exp);
    free(c->alertname);
    memset(c, 0, sizeof(*c));
}

static void test_case_clear(test_case_t *t)
{
    for (size_t i = 0; i < t->n_snaps; i++)
        snapshot_clear(&t->snaps[i]);
    free(t->snaps);
    for (size_t i = 0; i < t->n_queries; i++)
        query_clear(&t->queries[i]);
    free(t->queries);
    for (size_t i = 0; i < t->n_checks; i++)
        check_clear(&t->checks[i]);
    free(t->checks);
    free(t->name);
    memset(t, 0, sizeof(*t));
}

static void test_file_clear(test_file_t *tf)
{
    for (size_t i = 0; i < tf->n_rule_files; i++)
        free(tf->rule_files[i].path);
    free(tf->rule_files);
    kcw_labels_clear(&tf->external_labels);
    for (size_t i = 0; i < tf->n_tests; i++)
        test_case_clear(&tf->tests[i]);
    free(tf->tests);
    kcw_ruleset_free(tf->rules);
    memset(tf, 0, sizeof(*tf));
}

/* --- YAML node helpers ----------------------------------------------------
 * The shared ones are in yamlnode.h; these few are this schema's own. */

typedef kcw_ydoc_t loader_t;

/* The value of key in a mapping checked by check_map; NULL when absent or
 * null, so defaults stand. */
static yaml_node_t *map_get(loader_t *l, const yaml_node_t *map, const char *key)
{
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = kcw_ynode_scalar(kcw_ydoc_node(l, p->key));
        if (k && strcmp(k, key) == 0) {
            yaml_node_t *v = kcw_ydoc_node(l, p->value);
            return kcw_ynode_is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

/* A list of at most MAX_LIST_ITEMS; false (reported) otherwise. */
static bool check_seq(loader_t *l, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        kcw_ydoc_error(l, n, "%s: expected a list, got %s", what, kcw_ynode_kind(n));
        return false;
    }
    if (kcw_ynode_seq_len(n) > MAX_LIST_ITEMS) {
        kcw_ydoc_error(l, n, "%s: more than %d entries", what, MAX_LIST_ITEMS);
        return false;
    }
    return true;
}

static int get_count(loader_t *l, const yaml_node_t *n, const char *what, int *out)
{
    const char *s = kcw_ynode_scalar(n);
    if (s && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (*end == '\0' && errno == 0 && v >= 0 && v <= 100000) {
            *out = (int)v;
            return 0;
        }
    }
    kcw_ydoc_error(l, n, "%s: expected an integer from 0 to 100000", what);
    return -EINVAL;
}

/* A sample value as Prometheus writes them: numbers, NaN, +Inf, -Inf. */
static int get_value(loader_t *l, const yaml_node_t *n, const char *what, double *out)
{
    const char *s = kcw_ynode_scalar(n);
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (*end == '\0') {
            *out = v;
            return 0;
        }
    }
    kcw_ydoc_error(l, n, "%s: expected a number (or NaN, +Inf, -Inf)", what);
    return -EINVAL;
}

static bool label_name_ok(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* A mapping of label (or annotation) names to string values. */
static int get_labels(loader_t *l, const yaml_node_t *n, const char *what, bool check_names,
                      kcw_labels_t *out)
{
    if (!kcw_ydoc_check_map(l, n, what, NULL, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    for (const yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = kcw_ydoc_node(l, p->key);
        const yaml_node_t *v = kcw_ydoc_node(l, p->value);
        const char *name = kcw_ynode_scalar(k);
        if (!name || !v)
            continue; /* reported by check_map */
        if (check_names && !label_name_ok(name)) {
            kcw_ydoc_error(l, k, "%s: invalid label name \"%s\"", what, name);
            rc = -EINVAL;
            continue;
        }
        const char *value = kcw_ynode_is_null(v) ? "" : kcw_ynode_scalar(v);
        if (!value) {
            kcw_ydoc_error(l, v, "%s.%s: expected a string, got %s", what, name, kcw_ynode_kind(v));
            rc = -EINVAL;
            continue;
        }
        if (kcw_labels_set(out, name, value) < 0) {
            kcw_ydoc_error(l, v, "out of memory");
            return -ENOMEM;
        }
    }
    return rc;
}

/* Allocates n zeroed items for a list, reporting failure at node. */
static void *alloc_items(loader_t *l, const yaml_node_t *node, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *p = calloc(n, size);
    if (!p)
        kcw_ydoc_error(l, node, "out of memory");
    return p;
}

/* Runs of whitespace become one space and the ends are trimmed, so an expr
 * written as a block scalar in the rule file matches a one-line copy. */
static char *normalise_expr(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    bool space = false;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
            space = n > 0;
            continue;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

/* --- Connect snapshots ---------------------------------------------------- */

static const char *const task_keys[] = {"id", "state", "worker_id", "trace", NULL};
static const char *const connector_keys[] = {"type",  "state",        "worker_id", "trace",
                                             "tasks", "task_configs", "tasks_max", NULL};
static const char *const snapshot_keys[] = {"at", "clusters", "unreachable", "unreadable",
                                            NULL};

/* A task or connector state; UNREACHABLE belongs to clusters only. */
static int get_state(loader_t *l, const yaml_node_t *n, const char *what, kcw_state_t *out)
{
    const char *s = kcw_ynode_scalar(n);
    kcw_state_t st = s ? kcw_state_parse(s) : KCW_STATE_UNKNOWN;
    if (st == KCW_STATE_UNKNOWN || st == KCW_STATE_UNREACHABLE) {
        kcw_ydoc_error(
            l, n, "%s: expected RUNNING, FAILED, PAUSED, UNASSIGNED, RESTARTING or STOPPED", what);
        return -EINVAL;
    }
    *out = st;
    return 0;
}

static int cmp_task(const void *a, const void *b)
{
    const kcw_task_status_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_connector(const void *a, const void *b)
{
    const kcw_connector_status_t *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int parse_task(loader_t *l, const yaml_node_t *n, const kcw_connector_status_t *c,
                      size_t index, kcw_task_status_t *t)
{
    t->id = (int)index;
    t->state = KCW_STATE_RUNNING;
    if (!kcw_ydoc_check_map(l, n, "task", task_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v;
    if ((v = map_get(l, n, "id")) && get_count(l, v, "id", &t->id) < 0)
        rc = -EINVAL;
    if ((v = map_get(l, n, "state")) && get_state(l, v, "state", &t->state) < 0)
        rc = -EINVAL;
    /* A task runs where its connector does unless the test says otherwise. */
    if ((v = map_get(l, n, "worker_id"))) {
        if (kcw_ydoc_get_string(l, v, "worker_id", false, &t->worker_id) < 0)
            rc = -EINVAL;
    } else if (c->worker_id && !(t->worker_id = strdup(c->worker_id))) {
        kcw_ydoc_error(l, n, "out of memory");
        rc = -ENOMEM;
    }
    if ((v = map_get(l, n, "trace")) && kcw_ydoc_get_string(l, v, "trace", false, &t->trace) < 0)
        rc = -EINVAL;
    return rc;
}

static int parse_connector(loader_t *l, const yaml_node_t *k, const yaml_node_t *n,
                           kcw_connector_status_t *c)
{
    c->state = KCW_STATE_RUNNING;
    c->n_task_configs = -1;
    c->tasks_max = -1;
    if (kcw_ydoc_get_string(l, k, "connector name", false, &c->name) < 0)
        return -EINVAL;
    if (kcw_ynode_is_null(n))
        n = NULL;
    if (n && !kcw_ydoc_check_map(l, n, "connector", connector_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v;
    if (n && (v = map_get(l, n, "type"))) {
        const char *s = kcw_ynode_scalar(v);
        if (s && strcmp(s, "source") == 0) {
            c->type = KCW_CTYPE_SOURCE;
        } else if (s && strcmp(s, "sink") == 0) {
            c->type = KCW_CTYPE_SINK;
        } else {
            kcw_ydoc_error(l, v, "type: expected source or sink");
            rc = -EINVAL;
        }
    }
    if (n && (v = map_get(l, n, "state")) && get_state(l, v, "state", &c->state) < 0)
        rc = -EINVAL;
    if (n && (v = map_get(l, n, "worker_id")) &&
        kcw_ydoc_get_string(l, v, "worker_id", false, &c->worker_id) < 0)
        rc = -EINVAL;
    if (n && (v = map_get(l, n, "trace")) &&
        kcw_ydoc_get_string(l, v, "trace", false, &c->trace) < 0)
        rc = -EINVAL;
    const yaml_node_t *tasks = n ? map_get(l, n, "tasks") : NULL;
    if (tasks && check_seq(l, tasks, "tasks")) {
        size_t count = kcw_ynode_seq_len(tasks);
        c->tasks = alloc_items(l, tasks, count, sizeof(*c->tasks));
        if (count && !c->tasks)
            return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *tn = kcw_ydoc_node(l, tasks->data.sequence.items.start[i]);
            if (!tn)
                continue;
            if (parse_task(l, tn, c, i, &c->tasks[c->n_tasks++]) < 0)
                rc = -EINVAL;
            for (size_t j = 0; j + 1 < c->n_tasks; j++)
                if (c->tasks[j].id == c->tasks[c->n_tasks - 1].id) {
                    kcw_ydoc_error(l, tn, "task %d listed twice", c->tasks[j].id);
                    rc = -EINVAL;
                    break;
                }
        }
        if (c->n_tasks > 1)
            qsort(c->tasks, c->n_tasks, sizeof(*c->tasks), cmp_task);
    } else if (tasks) {
        rc = -EINVAL;
    }
    /* A poll with expand=info has one task config per task (connect-rest.md
     * §3.5); tests say task_configs when the two differ. */
    c->has_info = true;
    c->n_task_configs = (int)c->n_tasks;
    if (n && (v = map_get(l, n, "task_configs")) &&
        get_count(l, v, "task_configs", &c->n_task_configs) < 0)
        rc = -EINVAL;
    if (n && (v = map_get(l, n, "tasks_max")) && get_count(l, v, "tasks_max", &c->tasks_max) < 0)
        rc = -EINVAL;
    return rc;
}

static int parse_cluster(loader_t *l, const yaml_node_t *k, const yaml_node_t *n, int64_t poll_ms,
                         kcw_cluster_status_t *cl)
{
    if (kcw_ydoc_get_string(l, k, "cluster name", false, &cl->name) < 0)
        return -EINVAL;
    cl->reachable = true;
    cl->readable = true;
    cl->ever_reachable = true;
    cl->last_poll_ms = cl->last_ok_ms = poll_ms;
    if (kcw_ynode_is_null(n))
        return 0; /* a reachable cluster without connectors */
    if (!kcw_ydoc_check_map(l, n, "cluster", NULL, MAX_LIST_ITEMS))
        return -EINVAL;
    size_t count = kcw_ynode_map_len(n);
    cl->connectors = alloc_items(l, n, count, sizeof(*cl->connectors));
    if (count && !cl->connectors)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        const yaml_node_t *ck = kcw_ydoc_node(l, p->key);
        const yaml_node_t *cv = kcw_ydoc_node(l, p->value);
        if (!ck || !cv || !kcw_ynode_scalar(ck))
            continue;
        bool dup = false;
        for (size_t j = 0; j < cl->n_connectors && !dup; j++)
            dup = strcmp(cl->connectors[j].name, kcw_ynode_scalar(ck)) == 0;
        if (dup)
            continue; /* reported by check_map */
        if (parse_connector(l, ck, cv, &cl->connectors[cl->n_connectors++]) < 0)
            rc = -EINVAL;
    }
    if (rc == 0 && cl->n_connectors > 1)
        qsort(cl->connectors, cl->n_connectors, sizeof(*cl->connectors), cmp_connector);
    return rc;
}

static const kcw_cluster_status_t *snapshot_find(const snapshot_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_clusters; i++)
        if (s->clusters[i].name && strcmp(s->clusters[i].name, name) == 0)
            return &s->clusters[i];
    return NULL;
}

/* A cluster no worker answered (key "unreachable"), or whose status body
 * could not be read (key "unreadable"): connect.c keeps the connectors of its
 * last good poll (stale), so the task alerts neither resolve nor change. */
static int stale_cluster(loader_t *l, const yaml_node_t *n, const char *key, const snapshot_t *prev,
                         int64_t poll_ms, kcw_cluster_status_t *cl)
{
    if (kcw_ydoc_get_string(l, n, key, false, &cl->name) < 0)
        return -EINVAL;
    bool unreadable = strcmp(key, "unreadable") == 0;
    cl->reachable = unreadable;
    cl->readable = false;
    cl->last_poll_ms = poll_ms;
    if (!(cl->last_error = strdup(unreadable ? "unreadable connector list: response body larger "
                                               "than the limit"
                                             : "no worker reachable"))) {
        kcw_ydoc_error(l, n, "out of memory");
        return -ENOMEM;
    }
    const kcw_cluster_status_t *old = snapshot_find(prev, cl->name);
    if (!old)
        return 0;
    cl->ever_reachable = old->ever_reachable;
    cl->last_ok_ms = old->last_ok_ms;
    if (old->n_connectors == 0)
        return 0;
    cl->connectors = calloc(old->n_connectors, sizeof(*cl->connectors));
    if (!cl->connectors) {
        kcw_ydoc_error(l, n, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < old->n_connectors; i++) {
        if (kcw_connector_status_copy(&cl->connectors[i], &old->connectors[i]) < 0) {
            kcw_ydoc_error(l, n, "out of memory");
            return -ENOMEM;
        }
        cl->n_connectors++;
    }
    return 0;
}

static int parse_snapshot(loader_t *l, const yaml_node_t *n, const snapshot_t *prev, snapshot_t *s)
{
    if (!kcw_ydoc_check_map(l, n, "connect snapshot", snapshot_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *at = map_get(l, n, "at");
    if (!at) {
        kcw_ydoc_error(l, n, "connect snapshot: missing \"at\"");
        rc = -EINVAL;
    } else if (kcw_ydoc_get_duration(l, at, "at", false, &s->at_ms) < 0) {
        rc = -EINVAL;
    } else if (prev && s->at_ms <= prev->at_ms) {
        kcw_ydoc_error(l, at, "at: snapshots must be in increasing time order");
        rc = -EINVAL;
    }
    int64_t poll_ms = TEST_EPOCH_MS + s->at_ms;
    const yaml_node_t *clusters = map_get(l, n, "clusters");
    static const char *const stale_keys[] = {"unreachable", "unreadable"};
    const yaml_node_t *stale[2];
    if (clusters && !kcw_ydoc_check_map(l, clusters, "clusters", NULL, MAX_LIST_ITEMS)) {
        clusters = NULL;
        rc = -EINVAL;
    }
    size_t total = clusters ? kcw_ynode_map_len(clusters) : 0;
    for (size_t k = 0; k < 2; k++) {
        stale[k] = map_get(l, n, stale_keys[k]);
        if (stale[k] && !check_seq(l, stale[k], stale_keys[k])) {
            stale[k] = NULL;
            rc = -EINVAL;
        }
        total += stale[k] ? kcw_ynode_seq_len(stale[k]) : 0;
    }
    s->clusters = alloc_items(l, n, total, sizeof(*s->clusters));
    if (total && !s->clusters)
        return -ENOMEM;
    for (size_t i = 0; clusters && i < kcw_ynode_map_len(clusters); i++) {
        const yaml_node_pair_t *p = &clusters->data.mapping.pairs.start[i];
        const yaml_node_t *k = kcw_ydoc_node(l, p->key);
        const yaml_node_t *v = kcw_ydoc_node(l, p->value);
        if (!k || !v || !kcw_ynode_scalar(k) || snapshot_find(s, kcw_ynode_scalar(k)))
            continue; /* reported by check_map */
        if (parse_cluster(l, k, v, poll_ms, &s->clusters[s->n_clusters++]) < 0)
            rc = -EINVAL;
    }
    for (size_t k = 0; k < 2; k++) {
        const yaml_node_t *down = stale[k];
        for (size_t i = 0; down && i < kcw_ynode_seq_len(down); i++) {
            const yaml_node_t *v = kcw_ydoc_node(l, down->data.sequence.items.start[i]);
            if (!v)
                continue;
            if (kcw_ynode_scalar(v) && snapshot_find(s, kcw_ynode_scalar(v))) {
                kcw_ydoc_error(l, v, "%s: cluster \"%s\" is listed twice in this snapshot",
                               stale_keys[k], kcw_ynode_scalar(v));
                rc = -EINVAL;
                continue;
            }
            if (stale_cluster(l, v, stale_keys[k], prev, poll_ms,
                              &s->clusters[s->n_clusters++]) < 0)
                rc = -EINVAL;
        }
    }
    if (rc == 0) {
        s->view = calloc(s->n_clusters ? s->n_clusters : 1, sizeof(*s->view));
        if (!s->view) {
            kcw_ydoc_error(l, n, "out of memory");
            return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_clusters; i++)
            s->view[i] = &s->clusters[i];
    }
    return rc;
}

/* --- canned query results -------------------------------------------------- */

static const char *const query_keys[] = {"expr", "results", NULL};
static const char *const result_keys[] = {"at", "vector", "scalar", "error", NULL};
static const char *const sample_keys[] = {"labels", "value", NULL};

static int parse_sample(loader_t *l, const yaml_node_t *n, kcw_prom_sample_t *s)
{
    if (!kcw_ydoc_check_map(l, n, "sample", sample_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v = map_get(l, n, "labels");
    if (v && get_labels(l, v, "labels", true, &s->metric) < 0)
        rc = -EINVAL;
    if (!(v = map_get(l, n, "value"))) {
        kcw_ydoc_error(l, n, "sample: missing \"value\"");
        rc = -EINVAL;
    } else if (get_value(l, v, "value", &s->value) < 0) {
        rc = -EINVAL;
    }
    return rc;
}

static int parse_result(loader_t *l, const yaml_node_t *n, const canned_t *prev, canned_t *c)
{
    if (!kcw_ydoc_check_map(l, n, "result", result_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *at = map_get(l, n, "at");
    if (!at) {
        kcw_ydoc_error(l, n, "result: missing \"at\"");
        rc = -EINVAL;
    } else if (kcw_ydoc_get_duration(l, at, "at", false, &c->at_ms) < 0) {
        rc = -EINVAL;
    } else if (prev && c->at_ms <= prev->at_ms) {
        kcw_ydoc_error(l, at, "at: results must be in increasing time order");
        rc = -EINVAL;
    }
    const yaml_node_t *vec = NULL, *sc = NULL, *err = NULL;
    int kinds = 0;
    /* `vector: []` is a real (empty) answer, so presence is what counts. */
    for (const yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++) {
        const char *k = kcw_ynode_scalar(kcw_ydoc_node(l, p->key));
        const yaml_node_t *v = kcw_ydoc_node(l, p->value);
        if (!k || !v)
            continue;
        if (strcmp(k, "vector") == 0)
            vec = v, kinds++;
        else if (strcmp(k, "scalar") == 0)
            sc = v, kinds++;
        else if (strcmp(k, "error") == 0)
            err = v, kinds++;
    }
    if (kinds != 1) {
        kcw_ydoc_error(l, n, "result: needs exactly one of vector, scalar or error");
        return -EINVAL;
    }
    if (err) {
        c->kind = CANNED_ERROR;
        if (kcw_ydoc_get_string(l, err, "error", false, &c->error) < 0)
            rc = -EINVAL;
    } else if (sc) {
        c->kind = CANNED_SCALAR;
        if (get_value(l, sc, "scalar", &c->scalar) < 0)
            rc = -EINVAL;
    } else if (!kcw_ynode_is_null(vec)) {
        c->kind = CANNED_VECTOR;
        if (!check_seq(l, vec, "vector"))
            return -EINVAL;
        size_t count = kcw_ynode_seq_len(vec);
        c->samples = alloc_items(l, vec, count, sizeof(*c->samples));
        if (count && !c->samples)
            return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *sn = kcw_ydoc_node(l, vec->data.sequence.items.start[i]);
            if (!sn)
                continue;
            c->samples[c->n_samples].ts_ms = TEST_EPOCH_MS + c->at_ms;
            if (parse_sample(l, sn, &c->samples[c->n_samples++]) < 0)
                rc = -EINVAL;
        }
    }
    return rc;
}

static int parse_query(loader_t *l, const yaml_node_t *n, query_t *q)
{
    q->line = (int)n->start_mark.line + 1;
    q->col = (int)n->start_mark.column + 1;
    if (!kcw_ydoc_check_map(l, n, "promql", query_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v = map_get(l, n, "expr");
    char *expr = NULL;
    if (!v) {
        kcw_ydoc_error(l, n, "promql: missing \"expr\"");
        rc = -EINVAL;
    } else if (kcw_ydoc_get_string(l, v, "expr", false, &expr) == 0) {
        q->expr = normalise_expr(expr);
        free(expr);
        if (!q->expr) {
            kcw_ydoc_error(l, v, "out of memory");
            return -ENOMEM;
        }
        q->line = (int)v->start_mark.line + 1;
        q->col = (int)v->start_mark.column + 1;
    } else {
        rc = -EINVAL;
    }
    const yaml_node_t *res = map_get(l, n, "results");
    if (!res)
        return rc;
    if (!check_seq(l, res, "results"))
        return -EINVAL;
    size_t count = kcw_ynode_seq_len(res);
    q->results = alloc_items(l, res, count, sizeof(*q->results));
    if (count && !q->results)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *rn = kcw_ydoc_node(l, res->data.sequence.items.start[i]);
        if (!rn)
            continue;
        const canned_t *prev = q->n_results ? &q->results[q->n_results - 1] : NULL;
        if (parse_result(l, rn, prev, &q->results[q->n_results++]) < 0)
            rc = -EINVAL;
    }
    return rc;
}

/* --- expected alerts --------------------------------------------------------- */

static const char *const check_keys[] = {"eval_time", "alertname", "exp_alerts", NULL};
static const char *const exp_keys[] = {"exp_labels", "exp_annotations", "exp_state", NULL};

static int parse_exp_alert(loader_t *l, const yaml_node_t *n, const char *alertname, exp_alert_t *e)
{
    e->state = KCW_ALERT_FIRING;
    if (kcw_ynode_is_null(n))
        n = NULL;
    if (n && !kcw_ydoc_check_map(l, n, "exp_alert", exp_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v = n ? map_get(l, n, "exp_labels") : NULL;
    if (v && get_labels(l, v, "exp_labels", true, &e->labels) < 0)
        rc = -EINVAL;
    /* As in promtool, alertname is implied by the test. */
    const char *given = kcw_labels_get(&e->labels, "alertname");
    if (given && alertname && strcmp(given, alertname) != 0) {
        kcw_ydoc_error(l, v, "exp_labels: alertname \"%s\" differs from the test's \"%s\"", given,
                   alertname);
        rc = -EINVAL;
    }
    if (alertname && kcw_labels_set(&e->labels, "alertname", alertname) < 0) {
        kcw_ydoc_error(l, n, "out of memory");
        return -ENOMEM;
    }
    /* Present, even empty: the annotations are compared. */
    for (const yaml_node_pair_t *p = n ? n->data.mapping.pairs.start : NULL;
         n && p < n->data.mapping.pairs.top; p++) {
        const char *k = kcw_ynode_scalar(kcw_ydoc_node(l, p->key));
        if (k && strcmp(k, "exp_annotations") == 0)
            e->has_annotations = true;
    }
    if (n && (v = map_get(l, n, "exp_annotations")) &&
        get_labels(l, v, "exp_annotations", false, &e->annotations) < 0)
        rc = -EINVAL;
    if (n && (v = map_get(l, n, "exp_state"))) {
        const char *s = kcw_ynode_scalar(v);
        if (s && strcmp(s, "firing") == 0) {
            e->state = KCW_ALERT_FIRING;
        } else if (s && strcmp(s, "pending") == 0) {
            e->state = KCW_ALERT_PENDING;
        } else {
            kcw_ydoc_error(l, v, "exp_state: expected firing or pending");
            rc = -EINVAL;
        }
    }
    return rc;
}

static int parse_check(loader_t *l, const yaml_node_t *n, int64_t interval_ms, check_t *c)
{
    if (!kcw_ydoc_check_map(l, n, "alert_rule_test", check_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v = map_get(l, n, "eval_time");
    if (!v) {
        kcw_ydoc_error(l, n, "alert_rule_test: missing \"eval_time\"");
        rc = -EINVAL;
    } else if (kcw_ydoc_get_duration(l, v, "eval_time", false, &c->eval_ms) < 0) {
        rc = -EINVAL;
    } else if (c->eval_ms / interval_ms >= MAX_EVALUATIONS) {
        kcw_ydoc_error(l, v, "eval_time: more than %d evaluations at this evaluation_interval",
                   MAX_EVALUATIONS);
        rc = -EINVAL;
    }
    if (!(v = map_get(l, n, "alertname"))) {
        kcw_ydoc_error(l, n, "alert_rule_test: missing \"alertname\"");
        rc = -EINVAL;
    } else if (kcw_ydoc_get_string(l, v, "alertname", false, &c->alertname) < 0) {
        rc = -EINVAL;
    }
    const yaml_node_t *exp = map_get(l, n, "exp_alerts");
    if (!exp)
        return rc; /* no alerts expected */
    if (!check_seq(l, exp, "exp_alerts"))
        return -EINVAL;
    size_t count = kcw_ynode_seq_len(exp);
    c->exp = alloc_items(l, exp, count, sizeof(*c->exp));
    if (count && !c->exp)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *en = kcw_ydoc_node(l, exp->data.sequence.items.start[i]);
        if (!en)
            continue;
        exp_alert_t *e = &c->exp[c->n_exp++];
        if (parse_exp_alert(l, en, c->alertname, e) < 0)
            rc = -EINVAL;
        if (e->state == KCW_ALERT_PENDING)
            c->want_pending = true;
    }
    return rc;
}

/* --- tests and the file ------------------------------------------------------ */

static const char *const test_keys[] = {"name", "connect", "promql", "alert_rule_test", NULL};
static const char *const file_keys[] = {"rule_files", "evaluation_interval", "external_labels",
                                        "tests", NULL};

static int cmp_check(const void *a, const void *b)
{
    const check_t *x = a, *y = b;
    if (x->eval_ms != y->eval_ms)
        return x->eval_ms < y->eval_ms ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int parse_test(loader_t *l, const yaml_node_t *n, size_t index, int64_t interval_ms,
                      test_case_t *t)
{
    if (!kcw_ydoc_check_map(l, n, "test", test_keys, MAX_LIST_ITEMS))
        return -EINVAL;
    int rc = 0;
    const yaml_node_t *v = map_get(l, n, "name");
    if (v) {
        if (kcw_ydoc_get_string(l, v, "name", false, &t->name) < 0)
            rc = -EINVAL;
    } else if (asprintf(&t->name, "#%zu", index + 1) < 0) {
        t->name = NULL;
        kcw_ydoc_error(l, n, "out of memory");
        return -ENOMEM;
    }

    const yaml_node_t *snaps = map_get(l, n, "connect");
    if (snaps && check_seq(l, snaps, "connect")) {
        size_t count = kcw_ynode_seq_len(snaps);
        t->snaps = alloc_items(l, snaps, count, sizeof(*t->snaps));
        if (count && !t->snaps)
            return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *sn = kcw_ydoc_node(l, snaps->data.sequence.items.start[i]);
            if (!sn)
                continue;
            const snapshot_t *prev = t->n_snaps ? &t->snaps[t->n_snaps - 1] : NULL;
            if (parse_snapshot(l, sn, prev, &t->snaps[t->n_snaps++]) < 0)
                rc = -EINVAL;
        }
    } else if (snaps) {
        rc = -EINVAL;
    }

    const yaml_node_t *queries = map_get(l, n, "promql");
    if (queries && check_seq(l, queries, "promql")) {
        size_t count = kcw_ynode_seq_len(queries);
        t->queries = alloc_items(l, queries, count, sizeof(*t->queries));
        if (count && !t->queries)
            return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *qn = kcw_ydoc_node(l, queries->data.sequence.items.start[i]);
            if (!qn)
                continue;
            query_t *q = &t->queries[t->n_queries++];
            if (parse_query(l, qn, q) < 0)
                rc = -EINVAL;
            for (size_t j = 0; q->expr && j + 1 < t->n_queries; j++)
                if (t->queries[j].expr && strcmp(t->queries[j].expr, q->expr) == 0) {
                    kcw_errors_add(l->errs, l->file, q->line, q->col,
                                   "promql: expr already has results in this test (line %d)",
                                   t->queries[j].line);
                    rc = -EINVAL;
                    break;
                }
        }
    } else if (queries) {
        rc = -EINVAL;
    }

    const yaml_node_t *checks = map_get(l, n, "alert_rule_test");
    if (checks && check_seq(l, checks, "alert_rule_test")) {
        size_t count = kcw_ynode_seq_len(checks);
        t->checks = alloc_items(l, checks, count, sizeof(*t->checks));
        if (count && !t->checks)
            return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
            const yaml_node_t *cn = kcw_ydoc_node(l, checks->data.sequence.items.start[i]);
            if (!cn)
                continue;
            check_t *c = &t->checks[t->n_checks++];
            c->index = i;
            if (parse_check(l, cn, interval_ms, c) < 0)
                rc = -EINVAL;
        }
        if (t->n_checks > 1)
            qsort(t->checks, t->n_checks, sizeof(*t->checks), cmp_check);
    } else if (checks) {
        rc = -EINVAL;
    }
    return rc;
}

/* The directory part of path with its trailing slash ("" for a bare name). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) + 1 : 0;
    char *dir = malloc(len + 1);
    if (dir) {
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    return dir;
}

static int parse_rule_files(loader_t *l, const yaml_node_t *n, test_file_t *tf)
{
    if (!check_seq(l, n, "rule_files"))
        return -EINVAL;
    size_t count = kcw_ynode_seq_len(n);
    tf->rule_files = alloc_items(l, n, count, sizeof(*tf->rule_files));
    if (count && !tf->rule_files)
        return -ENOMEM;
    char *dir = dir_of(l->file);
    if (!dir) {
        kcw_ydoc_error(l, n, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *v = kcw_ydoc_node(l, n->data.sequence.items.start[i]);
        if (!v)
            continue;
        const char *p = kcw_ynode_scalar(v);
        if (!p || !*p) {
            kcw_ydoc_error(l, v, "rule_files: expected a file name or glob");
            rc = -EINVAL;
            continue;
        }
        pattern_t *pat = &tf->rule_files[tf->n_rule_files];
        if (asprintf(&pat->path, "%s%s", p[0] == '/' ? "" : dir, p) < 0) {
            pat->path = NULL;
            kcw_ydoc_error(l, v, "out of memory");
            rc = -ENOMEM;
            break;
        }
        pat->line = (int)v->start_mark.line + 1;
        pat->col = (int)v->start_mark.column + 1;
        tf->n_rule_files++;
    }
    free(dir);
    return rc;
}

static void parse_root(loader_t *l, const yaml_node_t *root, test_file_t *tf)
{
    tf->interval_ms = DEFAULT_INTERVAL_MS;
    if (!kcw_ydoc_check_map(l, root, "test file", file_keys, MAX_LIST_ITEMS))
        return;
    const yaml_node_t *v = map_get(l, root, "rule_files");
    if (v)
        parse_rule_files(l, v, tf);
    else
        kcw_ydoc_error(l, root, "test file: missing \"rule_files\"");
    if ((v = map_get(l, root, "evaluation_interval")) &&
        kcw_ydoc_get_duration(l, v, "evaluation_interval", false, &tf->interval_ms) == 0 &&
        tf->interval_ms <= 0) {
        kcw_ydoc_error(l, v, "evaluation_interval: must be more than 0");
        tf->interval_ms = DEFAULT_INTERVAL_MS;
    }
    if ((v = map_get(l, root, "external_labels")))
        get_labels(l, v, "external_labels", true, &tf->external_labels);
    const yaml_node_t *tests = map_get(l, root, "tests");
    if (!tests) {
        kcw_ydoc_error(l, root, "test file: missing \"tests\"");
        return;
    }
    if (!check_seq(l, tests, "tests"))
        return;
    size_t count = kcw_ynode_seq_len(tests);
    tf->tests = alloc_items(l, tests, count, sizeof(*tf->tests));
    if (count && !tf->tests)
        return;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *tn = kcw_ydoc_node(l, tests->data.sequence.items.start[i]);
        if (tn)
            parse_test(l, tn, i, tf->interval_ms, &tf->tests[tf->n_tests++]);
    }
}

/* Reads path whole, bounded. NULL with an error added. */
static char *read_file(const char *path, size_t *len, kcw_errors_t *errs)
{
    char *text;
    kcw_read_step_t step;
    int rc = kcw_file_read_bounded(path, MAX_FILE_BYTES, &text, len, &step);
    if (rc == 0)
        return text;
    if (step == KCW_READ_OPEN)
        kcw_errors_add(errs, path, 0, 0, "cannot open test file: %s", strerror(-rc));
    else if (step == KCW_READ_STAT)
        kcw_errors_add(errs, path, 0, 0, "cannot read test file: %s",
                       rc == -EISDIR    ? "is a directory"
                       : rc == -ENOTSUP ? "not a regular file"
                       : rc == -EFBIG   ? "larger than 8 MiB"
                                      : strerror(-rc));
    else if (rc == -ENOMEM)
        kcw_errors_add(errs, path, 0, 0, "out of memory");
    else
        kcw_errors_add(errs, path, 0, 0, "cannot read test file");
    return NULL;
}

/* Parses the test file's YAML into tf. Errors go to errs. */
static void parse_text(const char *path, const char *text, size_t len, test_file_t *tf,
                       kcw_errors_t *errs)
{
    loader_t l = {.file = path, .errs = errs, .max_visits = MAX_NODE_VISITS,
                  .max_nodes = MAX_NODES};
    if (kcw_ydoc_load(&l, text, len, NULL) < 0)
        return;
    const yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (!root || kcw_ynode_is_null(root))
        kcw_errors_add(errs, path, 0, 0, "empty test file");
    else
        parse_root(&l, root, tf);
    kcw_ydoc_free(&l);
}

/* Whether expr (normalised) appears in one of rule's templates, as a
 * {{ query }} argument would. */
static bool template_mentions(const kcw_rule_t *rule, const char *expr, bool *oom)
{
    const kcw_rule_template_t *lists[] = {rule->labels, rule->annotations};
    size_t counts[] = {rule->n_labels, rule->n_annotations};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            char *norm = normalise_expr(lists[l][i].source);
            if (!norm) {
                *oom = true;
                return false;
            }
            bool hit = strstr(norm, expr) != NULL;
            free(norm);
            if (hit)
                return true;
        }
    }
    return false;
}

/* Every promql entry must feed some rule (its expr, or a template's query
 * with the expr written out): a typo in an expr would otherwise just look
 * like an empty result. */
static void check_queries(const test_file_t *tf, kcw_errors_t *errs)
{
    for (size_t t = 0; t < tf->n_tests; t++) {
        for (size_t q = 0; q < tf->tests[t].n_queries; q++) {
            const query_t *qu = &tf->tests[t].queries[q];
            bool used = false;
            for (size_t g = 0; g < tf->rules->n_groups && !used; g++) {
                const kcw_rule_group_t *grp = &tf->rules->groups[g];
                for (size_t r = 0; r < grp->n_rules && !used; r++) {
                    bool oom = false;
                    used = template_mentions(&grp->rules[r], qu->expr, &oom);
                    if (oom) {
                        kcw_errors_add(errs, tf->path, 0, 0, "out of memory");
                        return;
                    }
                    if (used || !grp->rules[r].expr)
                        continue;
                    char *norm = normalise_expr(grp->rules[r].expr);
                    if (!norm) {
                        kcw_errors_add(errs, tf->path, 0, 0, "out of memory");
                        return;
                    }
                    used = strcmp(norm, qu->expr) == 0;
                    free(norm);
                }
            }
            if (!used)
                kcw_errors_add(errs, tf->path, qu->line, qu->col,
                               "promql: no rule in rule_files has the expr \"%s\" (as its expr "
                               "or in a template)",
                               qu->expr);
        }
    }
}

/* Loads a test file and its rules; 0, or -EINVAL with errors in errs. */
static int test_file_load(const char *path, test_file_t *tf, kcw_errors_t *errs)
{
    size_t before = errs->n;
    tf->path = path;
    size_t len = 0;
    char *text = read_file(path, &len, errs);
    if (!text)
        return -EINVAL;
    parse_text(path, text, len, tf, errs);
    free(text);
    /* The rule files are checked even when the test file has errors, so one
     * run shows every problem. */
    bool test_errors = errs->n > before;

    const char **paths = calloc(tf->n_rule_files ? tf->n_rule_files : 1, sizeof(*paths));
    if (!paths) {
        kcw_errors_add(errs, path, 0, 0, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < tf->n_rule_files; i++) {
        const pattern_t *p = &tf->rule_files[i];
        paths[i] = p->path;
        if (!strpbrk(p->path, "*?["))
            continue; /* a missing named file is reported by the rule loader */
        glob_t gl;
        memset(&gl, 0, sizeof(gl));
        if (glob(p->path, 0, NULL, &gl) != 0)
            kcw_errors_add(errs, path, p->line, p->col, "rule_files: \"%s\" matches no file",
                           p->path);
        globfree(&gl);
    }
    kcw_rules_load(paths, tf->n_rule_files, &tf->rules, errs);
    free(paths);
    if (test_errors || errs->n > before)
        return -EINVAL;
    check_queries(tf, errs);
    return errs->n > before ? -EINVAL : 0;
}

/* --- running ------------------------------------------------------------------ */

/* The canned answers of one PromQL query slot of the engine. */
typedef struct query_run {
    const kcw_rule_t *rule;
    const query_t *query; /* NULL: always an empty vector */
    size_t next_result;   /* query->results[next_result] is not in force yet */
    bool scripted_error;  /* the canned answer of this round is an error */
} query_run_t;

typedef struct run {
    const test_file_t *tf;
    const test_case_t *tc;
    FILE *out;
    kcw_engine_t *engine;
    query_run_t **queries; /* per group, per engine query slot */
    const kcw_rule_t **warned;
    size_t n_warned;
    bool header_done; /* the FAIL line of this test was printed */
    bool oom;
    /* {{ query }} in templates: answered from the test's promql: results in
     * force at the test time being evaluated */
    kcw_template_env_t tenv;
    int64_t now_t;
    kcw_template_sample_t *tsamples; /* the last answer, valid until the next */
    size_t n_tsamples;
} run_t;

static void tsamples_clear(run_t *r)
{
    for (size_t i = 0; i < r->n_tsamples; i++)
        kcw_labels_clear(&r->tsamples[i].labels);
    free(r->tsamples);
    r->tsamples = NULL;
    r->n_tsamples = 0;
}

/* kcw_template_env_t.query for tests: the canned result of expr in force at
 * the time being evaluated; an expr the test does not script is empty. */
static int test_query(void *arg, const char *expr, const kcw_template_sample_t **samples,
                      size_t *n, char *err, size_t errlen)
{
    run_t *r = arg;
    *samples = NULL;
    *n = 0;
    tsamples_clear(r);
    char *norm = normalise_expr(expr);
    if (!norm) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const canned_t *c = NULL;
    for (size_t q = 0; q < r->tc->n_queries; q++) {
        const query_t *qu = &r->tc->queries[q];
        if (strcmp(qu->expr, norm) != 0)
            continue;
        for (size_t i = 0; i < qu->n_results && qu->results[i].at_ms <= r->now_t; i++)
            c = &qu->results[i];
    }
    free(norm);
    if (!c)
        return 0;
    if (c->kind == CANNED_ERROR) {
        snprintf(err, errlen, "%s", c->error);
        return -EIO;
    }
    size_t count = c->kind == CANNED_SCALAR ? 1 : c->n_samples;
    r->tsamples = calloc(count ? count : 1, sizeof(*r->tsamples));
    if (!r->tsamples) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->n_tsamples = count;
    if (c->kind == CANNED_SCALAR)
        r->tsamples[0].value = c->scalar;
    for (size_t i = 0; c->kind == CANNED_VECTOR && i < count; i++) {
        r->tsamples[i].value = c->samples[i].value;
        if (kcw_labels_copy(&r->tsamples[i].labels, &c->samples[i].metric) < 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    *samples = r->tsamples;
    *n = count;
    return 0;
}

static void run_free(run_t *r)
{
    for (size_t g = 0; r->queries && g < r->tf->rules->n_groups; g++)
        free(r->queries[g]);
    free(r->queries);
    free(r->warned);
    kcw_engine_free(r->engine);
    tsamples_clear(r);
}

/* An evaluation that failed for a reason the test did not script (a duplicate
 * label set, a group limit): shown once per rule, the test goes on. */
static void on_health(void *arg, const kcw_rule_group_t *group, const kcw_rule_t *rule,
                      const char *error, bool episode, int64_t now_ms)
{
    (void)episode;
    run_t *r = arg;
    if (!error)
        return;
    for (size_t g = 0; g < r->tf->rules->n_groups; g++)
        for (size_t q = 0; q < kcw_engine_group_query_count(r->engine, g); q++)
            if (r->queries[g][q].rule == rule && r->queries[g][q].scripted_error)
                return;
    for (size_t i = 0; i < r->n_warned; i++)
        if (r->warned[i] == rule)
            return;
    const kcw_rule_t **nw = realloc(r->warned, (r->n_warned + 1) * sizeof(*nw));
    if (!nw) {
        r->oom = true;
        return;
    }
    r->warned = nw;
    r->warned[r->n_warned++] = rule;
    char when[32];
    esc_t e = {0};
    fprintf(r->out, "warning: %s: test \"%s\": at %s rule %s (group %s): %s\n",
            esc(&e, r->tf->path), esc(&e, r->tc->name),
            kcw_duration_format(now_ms - TEST_EPOCH_MS, when, sizeof(when)), esc(&e, rule->alert),
            esc(&e, group->name), esc(&e, error));
    esc_free(&e);
}

static int run_init(run_t *r)
{
    const kcw_ruleset_t *rs = r->tf->rules;
    /* promtool's way: every group at every step of the file's interval. */
    kcw_engine_opts_t opts = {.default_interval_ms = r->tf->interval_ms,
                              .interval_override_ms = r->tf->interval_ms,
                              .spread = false,
                              .external_labels = &r->tf->external_labels};
    kcw_engine_hooks_t hooks = {.arg = r, .health = on_health};
    r->tenv = (kcw_template_env_t){.query = test_query, .query_arg = r};
    kcw_rules_set_template_env(r->tf->rules, &r->tenv);
    r->engine = kcw_engine_new(rs, &opts, &hooks, NULL, TEST_EPOCH_MS);
    r->queries = calloc(rs->n_groups ? rs->n_groups : 1, sizeof(*r->queries));
    if (!r->engine || !r->queries)
        return -ENOMEM;
    for (size_t g = 0; g < rs->n_groups; g++) {
        size_t n = kcw_engine_group_query_count(r->engine, g);
        r->queries[g] = calloc(n ? n : 1, sizeof(**r->queries));
        if (!r->queries[g])
            return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < rs->groups[g].n_rules && k < n; i++) {
            const kcw_rule_t *rule = &rs->groups[g].rules[i];
            if (!rule->expr)
                continue;
            query_run_t *qr = &r->queries[g][k++];
            qr->rule = rule;
            char *expr = normalise_expr(rule->expr);
            if (!expr)
                return -ENOMEM;
            for (size_t q = 0; q < r->tc->n_queries; q++)
                if (strcmp(r->tc->queries[q].expr, expr) == 0)
                    qr->query = &r->tc->queries[q];
            free(expr);
        }
    }
    return 0;
}

static void fail_header(run_t *r)
{
    if (r->header_done)
        return;
    esc_t e = {0};
    fprintf(r->out, "FAIL %s: test \"%s\"\n", esc(&e, r->tf->path), esc(&e, r->tc->name));
    esc_free(&e);
    r->header_done = true;
}

/* The canned answer in force at time t: the last one at or before it. Time
 * only moves forward, so the search goes on from where it stopped. */
static const canned_t *canned_at(query_run_t *qr, int64_t t)
{
    const query_t *q = qr->query;
    while (q && qr->next_result < q->n_results && q->results[qr->next_result].at_ms <= t)
        qr->next_result++;
    return qr->next_result > 0 ? &q->results[qr->next_result - 1] : NULL;
}

/* One tick of group g at test time t, answered from the canned results. */
static void tick_group(run_t *r, size_t g, const snapshot_t *snap, int64_t t)
{
    size_t n_queries = 0;
    if (kcw_engine_group_begin(r->engine, g, snap ? snap->view : NULL,
                               snap ? snap->n_clusters : 0, TEST_EPOCH_MS + t, &n_queries) < 0)
        return;
    /* The daemon queries at now - query_offset; so does the test. */
    int64_t at = kcw_engine_query_time_ms(r->engine, g) - TEST_EPOCH_MS;
    r->now_t = at;
    for (size_t q = 0; q < n_queries; q++) {
        query_run_t *qr = &r->queries[g][q];
        const canned_t *c = canned_at(qr, at);
        qr->scripted_error = c && c->kind == CANNED_ERROR;
        kcw_prom_result_t res = {.type = KCW_PROM_VECTOR};
        if (c && c->kind == CANNED_SCALAR) {
            res.type = KCW_PROM_SCALAR;
            res.scalar = c->scalar;
            res.scalar_ts_ms = TEST_EPOCH_MS + at;
        } else if (c && c->kind == CANNED_VECTOR) {
            res.samples = c->samples;
            res.n = c->n_samples;
        }
        kcw_engine_group_result(r->engine, g, q, qr->scripted_error ? NULL : &res,
                                qr->scripted_error ? c->error : NULL);
    }
    kcw_engine_group_finish(r->engine, g, TEST_EPOCH_MS + t);
    for (size_t q = 0; q < n_queries; q++)
        r->queries[g][q].scripted_error = false;
}

static bool str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool connector_equal(const kcw_connector_status_t *a, const kcw_connector_status_t *b)
{
    if (!str_equal(a->name, b->name) || a->type != b->type || a->state != b->state ||
        !str_equal(a->worker_id, b->worker_id) || !str_equal(a->trace, b->trace) ||
        a->n_tasks != b->n_tasks || a->n_task_configs != b->n_task_configs ||
        a->tasks_max != b->tasks_max || a->missing_polls != b->missing_polls)
        return false;
    for (size_t i = 0; i < a->n_tasks; i++) {
        const kcw_task_status_t *x = &a->tasks[i], *y = &b->tasks[i];
        if (x->id != y->id || x->state != y->state || !str_equal(x->worker_id, y->worker_id) ||
            !str_equal(x->trace, y->trace))
            return false;
    }
    return true;
}

/* Would the daemon's poll of snapshot b after a have reported a change? */
static bool snapshot_changed(const snapshot_t *a, const snapshot_t *b)
{
    if (!a || a->n_clusters != b->n_clusters)
        return true;
    for (size_t i = 0; i < a->n_clusters; i++) {
        const kcw_cluster_status_t *x = &a->clusters[i], *y = &b->clusters[i];
        if (!str_equal(x->name, y->name) || x->reachable != y->reachable ||
            x->n_connectors != y->n_connectors)
            return true;
        for (size_t c = 0; c < x->n_connectors; c++)
            if (!connector_equal(&x->connectors[c], &y->connectors[c]))
                return true;
    }
    return false;
}

/* Writes s quoted the way Prometheus prints label values. */
static void put_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void put_labels(FILE *out, const kcw_labels_t *l)
{
    fputc('{', out);
    for (size_t i = 0; i < l->n; i++) {
        fprintf(out, "%s%s=", i ? ", " : "", l->items[i].name);
        put_quoted(out, l->items[i].value);
    }
    fputc('}', out);
}

static int cmp_labels(const kcw_labels_t *a, const kcw_labels_t *b)
{
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        int c = strcmp(a->items[i].name, b->items[i].name);
        if (c == 0)
            c = strcmp(a->items[i].value, b->items[i].value);
        if (c != 0)
            return c;
    }
    return (a->n > b->n) - (a->n < b->n);
}

static int cmp_alert_ptr(const void *a, const void *b)
{
    const kcw_alert_t *x = *(const kcw_alert_t *const *)a, *y = *(const kcw_alert_t *const *)b;
    int c = cmp_labels(&x->labels, &y->labels);
    return c ? c : (int)x->state - (int)y->state;
}

static int cmp_exp_ptr(const void *a, const void *b)
{
    const exp_alert_t *x = *(const exp_alert_t *const *)a, *y = *(const exp_alert_t *const *)b;
    int c = cmp_labels(&x->labels, &y->labels);
    return c ? c : (int)x->state - (int)y->state;
}

static bool exp_matches(const exp_alert_t *e, const kcw_alert_t *a)
{
    return e->state == a->state && kcw_labels_equal(&e->labels, &a->labels) &&
           (!e->has_annotations || kcw_labels_equal(&e->annotations, &a->annotations));
}

static void report_check(run_t *r, const check_t *c, const exp_alert_t **exp,
                         const kcw_alert_t **got, size_t n_got)
{
    char when[32];
    fail_header(r);
    esc_t e = {0};
    fprintf(r->out, "  alertname: %s, eval_time: %s\n", esc(&e, c->alertname),
            kcw_duration_format(c->eval_ms, when, sizeof(when)));
    esc_free(&e);
    fprintf(r->out, "    expected:%s\n", c->n_exp ? "" : " none");
    for (size_t i = 0; i < c->n_exp; i++) {
        fprintf(r->out, "      %s ", kcw_alert_state_name(exp[i]->state));
        put_labels(r->out, &exp[i]->labels);
        fputc('\n', r->out);
        if (exp[i]->has_annotations) {
            fputs("        annotations: ", r->out);
            put_labels(r->out, &exp[i]->annotations);
            fputc('\n', r->out);
        }
    }
    fprintf(r->out, "    got:%s\n", n_got ? "" : " none");
    for (size_t i = 0; i < n_got; i++) {
        fprintf(r->out, "      %s ", kcw_alert_state_name(got[i]->state));
        put_labels(r->out, &got[i]->labels);
        fputs("\n        annotations: ", r->out);
        put_labels(r->out, &got[i]->annotations);
        fputc('\n', r->out);
    }
}

/* Compares the alerts of c->alertname with the expected ones: 1 equal, 0 not
 * (reported), -ENOMEM. */
static int run_check(run_t *r, const check_t *c)
{
    size_t n_got = 0, cap = 0, n_rules = kcw_engine_rule_count(r->engine);
    for (size_t i = 0; i < n_rules; i++)
        if (strcmp(kcw_engine_rule(r->engine, i)->alert, c->alertname) == 0)
            cap += kcw_alert_set_count(kcw_engine_rule_alerts(r->engine, i));
    const kcw_alert_t **got = calloc(cap ? cap : 1, sizeof(*got));
    const exp_alert_t **exp = calloc(c->n_exp ? c->n_exp : 1, sizeof(*exp));
    bool *used = calloc(cap ? cap : 1, sizeof(*used));
    if (!got || !exp || !used) {
        free(got);
        free(exp);
        free(used);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_rules; i++) {
        if (strcmp(kcw_engine_rule(r->engine, i)->alert, c->alertname) != 0)
            continue;
        const kcw_alert_set_t *set = kcw_engine_rule_alerts(r->engine, i);
        for (size_t j = 0; j < kcw_alert_set_count(set); j++) {
            const kcw_alert_t *a = kcw_alert_set_at(set, j);
            if (a->state == KCW_ALERT_FIRING || (c->want_pending && a->state == KCW_ALERT_PENDING))
                got[n_got++] = a;
        }
    }
    for (size_t i = 0; i < c->n_exp; i++)
        exp[i] = &c->exp[i];
    qsort(got, n_got, sizeof(*got), cmp_alert_ptr);
    qsort(exp, c->n_exp, sizeof(*exp), cmp_exp_ptr);

    bool ok = n_got == c->n_exp;
    for (size_t i = 0; ok && i < c->n_exp; i++) {
        bool found = false;
        for (size_t j = 0; j < n_got && !found; j++)
            if (!used[j] && exp_matches(exp[i], got[j]))
                found = used[j] = true;
        ok = found;
    }
    if (!ok)
        report_check(r, c, exp, got, n_got);
    free(got);
    free(exp);
    free(used);
    return ok ? 1 : 0;
}

/* Runs the checks due before time `until` (all of them: INT64_MAX). */
static int run_checks_before(run_t *r, size_t *next, int64_t until, bool *passed)
{
    const test_case_t *tc = r->tc;
    while (*next < tc->n_checks && tc->checks[*next].eval_ms < until) {
        int ok = run_check(r, &tc->checks[(*next)++]);
        if (ok < 0)
            return ok;
        if (!ok)
            *passed = false;
    }
    return 0;
}

/* Runs one test: 1 passed, 0 failed (reported), -ENOMEM.
 *
 * The daemon's two triggers, on the test's clock: a snapshot that differs
 * from the one before is a poll whose status changed, and evaluates the
 * connect: rules at its `at`; every step of the interval is a group tick. At
 * one time the poll comes first. A check sees every evaluation at or before
 * its eval_time. */
static int run_test(const test_file_t *tf, const test_case_t *tc, FILE *out)
{
    run_t r = {.tf = tf, .tc = tc, .out = out};
    int rc = run_init(&r);
    bool passed = true;
    if (rc == 0 && tc->n_checks > 0) {
        const int64_t step = tf->interval_ms;
        const int64_t last = tc->checks[tc->n_checks - 1].eval_ms;
        size_t snap = 0, next_check = 0;
        const snapshot_t *in_force = NULL;
        /* Counted in steps so that a huge interval cannot overflow t. */
        int64_t k = 0;
        while (rc == 0 && !r.oom) {
            bool step_left = k <= last / step;
            bool snap_left = snap < tc->n_snaps && tc->snaps[snap].at_ms <= last;
            if (!step_left && !snap_left)
                break;
            int64_t t = step_left ? k * step : INT64_MAX;
            if (snap_left && tc->snaps[snap].at_ms < t)
                t = tc->snaps[snap].at_ms;
            if ((rc = run_checks_before(&r, &next_check, t, &passed)) < 0)
                break;
            if (snap_left && tc->snaps[snap].at_ms == t) {
                const snapshot_t *prev = in_force;
                in_force = &tc->snaps[snap++];
                r.now_t = t;
                if (snapshot_changed(prev, in_force))
                    kcw_engine_connect_changed(r.engine, in_force->view, in_force->n_clusters,
                                               TEST_EPOCH_MS + t);
            }
            if (step_left && k * step == t) {
                for (size_t g = 0; g < tf->rules->n_groups; g++)
                    tick_group(&r, g, in_force, t);
                k++;
            }
        }
        if (rc == 0)
            rc = run_checks_before(&r, &next_check, INT64_MAX, &passed);
    }
    if (rc == 0 && r.oom)
        rc = -ENOMEM;
    kcw_rules_set_template_env(tf->rules, NULL);
    run_free(&r);
    if (rc < 0) {
        esc_t e = {0};
        fprintf(out, "FAIL %s: test \"%s\": %s\n", esc(&e, tf->path), esc(&e, tc->name),
                strerror(-rc));
        esc_free(&e);
        return rc;
    }
    return passed ? 1 : 0;
}

int kcw_ruletest_run(const char *const *files, size_t n, FILE *out)
{
    size_t passed = 0, failed = 0;
    bool load_failed = false;
    for (size_t f = 0; f < n; f++) {
        test_file_t tf = {0};
        kcw_errors_t errs = {0};
        if (test_file_load(files[f], &tf, &errs) < 0) {
            kcw_errors_print(&errs, out);
            kcw_errors_clear(&errs);
            test_file_clear(&tf);
            load_failed = true;
            continue;
        }
        kcw_errors_clear(&errs);
        size_t file_failed = 0;
        for (size_t t = 0; t < tf.n_tests; t++) {
            if (run_test(&tf, &tf.tests[t], out) == 1)
                passed++;
            else
                file_failed++;
        }
        failed += file_failed;
        esc_t e = {0};
        if (file_failed)
            fprintf(out, "FAIL %s: %zu of %zu tests failed\n", esc(&e, tf.path), file_failed,
                    tf.n_tests);
        else
            fprintf(out, "ok   %s: %zu tests passed\n", esc(&e, tf.path), tf.n_tests);
        esc_free(&e);
        test_file_clear(&tf);
    }
    fprintf(out, "rule tests: %zu passed, %zu failed\n", passed, failed);
    return load_failed ? 2 : failed ? 1 : 0;
}
