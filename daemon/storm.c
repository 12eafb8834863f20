/* storm.c: failure storms, canary restarts and paced releases (see storm.h).
 *
 * Per cluster we keep the tasks that are FAILED now with the time each was
 * first seen FAILED (sorted by connector, task; rebuilt when the cluster's
 * status generation changes, carrying the times over), which is all the
 * detection needs: how many of them failed within the window. A storm keeps
 * its members (every task FAILED while it lasts) with the time each has been
 * RUNNING since, the canary target and the release clock. */
#include "kcwatch/storm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/rootcause.h"

#define CONNECTORS_LISTED 10 /* in the alert's description; the rest are counted */
#define WORKERS_MAX 256      /* tallied per cluster; tasks on others are not */
#define NOTE_MAX 256

typedef struct task_ref {
    char *connector;
    int task;
    int64_t since; /* failed: first seen FAILED; member: RUNNING since (0: not) */
} task_ref_t;

typedef struct task_list {
    task_ref_t *items;
    size_t n, cap;
} task_list_t;

typedef struct cluster {
    char *name;
    uint64_t generation;
    size_t n_tasks;     /* in the last poll */
    task_list_t failed; /* FAILED now */
    bool active;
    kcw_storm_phase_t phase;
    int64_t started_ms;
    task_list_t members;
    char *root_cause; /* most frequent key at the start, or NULL */
    char *canary;     /* connector of the canary target, NULL: none yet */
    int canary_task;
    int canary_restarts;
    int64_t canary_asked_ms, canary_running_ms;
    int64_t next_release_ms;
    int64_t last_hold_ms; /* last restart the storm held back */
    int64_t seen_ms;      /* last poll */
    int64_t next_paced_ms; /* kcw_storm_pace */
    size_t released;
    /* sick worker: the one holding most FAILED tasks, if it is suspect */
    char *suspect;
    size_t suspect_failed, suspect_tasks, n_failed_known, n_workers;
} cluster_t;

struct kcw_storm {
    cluster_t *clusters;
    size_t n_clusters;
    kcw_rootcause_t *rootcause;
};

static int ref_cmp(const char *ca, int ta, const char *cb, int tb)
{
    int c = strcmp(ca, cb);
    return c ? c : (ta > tb) - (ta < tb);
}

/* Index of (connector, task) in l, or where it goes (*found false). */
static size_t list_find(const task_list_t *l, const char *connector, int task, bool *found)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = ref_cmp(l->items[mid].connector, l->items[mid].task, connector, task);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int list_insert(task_list_t *l, size_t at, const char *connector, int task, int64_t since)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        task_ref_t *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    char *name = strdup(connector);
    if (!name)
        return -ENOMEM;
    memmove(&l->items[at + 1], &l->items[at], (l->n - at) * sizeof(*l->items));
    l->items[at] = (task_ref_t){name, task, since};
    l->n++;
    return 0;
}

static void list_clear(task_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].connector);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

kcw_storm_t *kcw_storm_new(void)
{
    kcw_storm_t *s = calloc(1, sizeof(*s));
    if (s && !(s->rootcause = kcw_rootcause_new())) {
        free(s);
        return NULL;
    }
    return s;
}

static void storm_end(cluster_t *c)
{
    list_clear(&c->members);
    free(c->root_cause);
    free(c->canary);
    c->root_cause = c->canary = NULL;
    c->active = false;
    c->phase = KCW_STORM_NONE;
    c->canary_restarts = 0;
    c->canary_asked_ms = c->canary_running_ms = c->next_release_ms = c->last_hold_ms = 0;
    c->released = 0;
}

void kcw_storm_free(kcw_storm_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_clusters; i++) {
        storm_end(&s->clusters[i]);
        free(s->clusters[i].suspect);
        list_clear(&s->clusters[i].failed);
        free(s->clusters[i].name);
    }
    free(s->clusters);
    kcw_rootcause_free(s->rootcause);
    free(s);
}

static cluster_t *cluster_find(const kcw_storm_t *s, const char *name)
{
    for (size_t i = 0; name && i < s->n_clusters; i++)
        if (strcmp(s->clusters[i].name, name) == 0)
            return &s->clusters[i];
    return NULL;
}

static cluster_t *cluster_get(kcw_storm_t *s, const char *name)
{
    cluster_t *c = cluster_find(s, name);
    if (c)
        return c;
    cluster_t *more = realloc(s->clusters, (s->n_clusters + 1) * sizeof(*more));
    if (!more)
        return NULL;
    s->clusters = more;
    c = &more[s->n_clusters];
    memset(c, 0, sizeof(*c));
    if (!(c->name = strdup(name)))
        return NULL;
    s->n_clusters++;
    return c;
}

/* The FAILED tasks of cl, first-seen times carried over from the last scan. */
typedef struct worker_tally {
    const char *id; /* borrowed from the status model */
    size_t tasks, failed;
} worker_tally_t;

static void tally(worker_tally_t *w, size_t *n, const kcw_task_status_t *ts)
{
    if (!ts->worker_id)
        return;
    size_t i = 0;
    while (i < *n && strcmp(w[i].id, ts->worker_id) != 0)
        i++;
    if (i == *n) {
        if (*n == WORKERS_MAX)
            return;
        w[(*n)++] = (worker_tally_t){ts->worker_id, 0, 0};
    }
    w[i].tasks++;
    w[i].failed += ts->state == KCW_STATE_FAILED;
}

/* The sick-worker verdict: at least KCW_STORM_SUSPECT_MIN_FAILED FAILED
 * tasks, most of them on one worker, and at least twice that worker's share
 * of the tasks (with two workers: all of them), so that chance alone does not
 * name one. */
static int judge_workers(cluster_t *c, const worker_tally_t *w, size_t n)
{
    size_t failed = 0, best = 0;
    for (size_t i = 0; i < n; i++) {
        failed += w[i].failed;
        if (w[i].failed > w[best].failed)
            best = i;
    }
    /* A storm being released keeps its members FAILED and restarts them in
     * its own order: where the last of them sit says nothing about a
     * worker. A verdict from before the release is judged on; none is made
     * during it. */
    bool may_name = c->suspect || !c->active || c->phase != KCW_STORM_PHASE_RELEASE;
    free(c->suspect);
    c->suspect = NULL;
    c->n_failed_known = failed;
    c->n_workers = n;
    if (!may_name || n < 2 || failed < KCW_STORM_SUSPECT_MIN_FAILED ||
        2 * w[best].failed <= failed)
        return 0;
    /* failed on it / failed >= min(1, 2 * its tasks / all tasks) */
    double share = (double)w[best].failed / (double)failed;
    double load = 2.0 * (double)w[best].tasks / (double)(c->n_tasks ? c->n_tasks : 1);
    if (share < (load < 1.0 ? load : 1.0))
        return 0;
    if (!(c->suspect = strdup(w[best].id)))
        return -ENOMEM;
    c->suspect_failed = w[best].failed;
    c->suspect_tasks = w[best].tasks;
    return 0;
}

static int rescan(cluster_t *c, const kcw_cluster_status_t *cl, int64_t now)
{
    task_list_t fresh = {0};
    size_t total = 0, n_workers = 0;
    worker_tally_t *workers = calloc(WORKERS_MAX, sizeof(*workers));
    if (!workers)
        return -ENOMEM;
    for (size_t i = 0; i < cl->n_connectors; i++) {
        const kcw_connector_status_t *cs = &cl->connectors[i];
        total += cs->n_tasks;
        for (size_t t = 0; t < cs->n_tasks; t++) {
            tally(workers, &n_workers, &cs->tasks[t]);
            if (cs->tasks[t].state != KCW_STATE_FAILED)
                continue;
            bool found;
            size_t at = list_find(&c->failed, cs->name, cs->tasks[t].id, &found);
            int64_t since = found ? c->failed.items[at].since : now;
            /* connectors are sorted by name and tasks by id: append in order */
            if (list_insert(&fresh, fresh.n, cs->name, cs->tasks[t].id, since) < 0) {
                list_clear(&fresh);
                free(workers);
                return -ENOMEM;
            }
        }
    }
    list_clear(&c->failed);
    c->failed = fresh;
    c->n_tasks = total;
    c->generation = cl->generation;
    int rc = judge_workers(c, workers, n_workers);
    free(workers);
    return rc;
}

static const kcw_task_status_t *task_find(const kcw_connector_status_t *cs, int id)
{
    size_t lo = 0, hi = cs->n_tasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cs->tasks[mid].id == id)
            return &cs->tasks[mid];
        if (cs->tasks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* What the last poll says of a target: RUNNING (connector target: the
 * connector and all its tasks), FAILED (any of it), else in between;
 * UNKNOWN when it is gone. */
static kcw_state_t target_state(const kcw_cluster_status_t *cl, const char *connector, int task)
{
    const kcw_connector_status_t *cs = kcw_cluster_status_find(cl, connector);
    if (!cs)
        return KCW_STATE_UNKNOWN;
    if (task >= 0) {
        const kcw_task_status_t *ts = task_find(cs, task);
        return ts ? ts->state : KCW_STATE_UNKNOWN;
    }
    kcw_state_t worst = cs->state;
    for (size_t i = 0; i < cs->n_tasks && worst != KCW_STATE_FAILED; i++)
        if (cs->tasks[i].state != KCW_STATE_RUNNING)
            worst = cs->tasks[i].state;
    return worst;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The most frequent root-cause key among (a sample of) the FAILED tasks. */
static char *common_root_cause(const kcw_storm_t *s, const cluster_t *c,
                               const kcw_cluster_status_t *cl)
{
    size_t n = c->failed.n < KCW_STORM_ROOTCAUSE_SAMPLE ? c->failed.n : KCW_STORM_ROOTCAUSE_SAMPLE;
    char **keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const kcw_connector_status_t *cs = kcw_cluster_status_find(cl, c->failed.items[i].connector);
        const kcw_task_status_t *ts = cs ? task_find(cs, c->failed.items[i].task) : NULL;
        if (ts && ts->trace && kcw_rootcause_key(s->rootcause, ts->trace, &keys[k]) == 0 && keys[k])
            k++;
    }
    qsort(keys, k, sizeof(*keys), cmp_str);
    char *best = NULL;
    size_t best_run = 0;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && strcmp(keys[j], keys[i]) == 0)
            j++;
        if (j - i > best_run) {
            best_run = j - i;
            best = keys[i];
        }
        i = j;
    }
    char *out = best ? strdup(best) : NULL;
    for (size_t i = 0; i < k; i++)
        free(keys[i]);
    free(keys);
    return out;
}

static bool storm_starts(const kcw_remediation_conf_t *conf, const cluster_t *c, int64_t now)
{
    if (c->n_tasks == 0)
        return false;
    size_t recent = 0;
    for (size_t i = 0; i < c->failed.n; i++)
        if (now - c->failed.items[i].since <= conf->storm_window_ms)
            recent++;
    return recent >= (size_t)conf->storm_min_tasks &&
           (double)recent >= conf->storm_min_fraction * (double)c->n_tasks;
}

/* Every FAILED task is a member (those that fail during the storm join). */
static int join_failed(cluster_t *c)
{
    for (size_t i = 0; i < c->failed.n; i++) {
        bool found;
        task_ref_t *f = &c->failed.items[i];
        size_t at = list_find(&c->members, f->connector, f->task, &found);
        if (!found && list_insert(&c->members, at, f->connector, f->task, 0) < 0)
            return -ENOMEM;
    }
    return 0;
}

int kcw_storm_observe(kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                      const kcw_cluster_status_t *cl, int64_t now_ms)
{
    if (!s || !conf || !cl || !cl->name)
        return 0;
    cluster_t *c = cluster_get(s, cl->name);
    if (!c)
        return -ENOMEM;
    /* A cluster out of sight keeps its storm as it is: no news is not
     * recovery (connect-rest.md §12). */
    if (!cl->reachable)
        return 0;
    c->seen_ms = now_ms;
    if (cl->generation != c->generation || cl->generation == 0) {
        if (rescan(c, cl, now_ms) < 0)
            return -ENOMEM;
    }
    /* Storms pace restarts: with none to pace (remediation or storms turned
     * off, a reload may do it mid-storm) there is nothing to hold back. */
    if (!conf->enabled || !conf->storm_enabled) {
        if (c->active)
            storm_end(c);
        return 0;
    }
    if (!c->active) {
        if (!storm_starts(conf, c, now_ms))
            return 0;
        c->active = true;
        c->phase = KCW_STORM_PHASE_CANARY;
        c->started_ms = now_ms;
        c->root_cause = common_root_cause(s, c, cl);
    }
    if (join_failed(c) < 0)
        return -ENOMEM;

    /* the canary: RUNNING for the verify period opens the release */
    if (c->canary) {
        kcw_state_t st = target_state(cl, c->canary, c->canary_task);
        if (st != KCW_STATE_RUNNING)
            c->canary_running_ms = 0;
        else if (c->canary_running_ms == 0)
            c->canary_running_ms = now_ms;
        if (c->phase == KCW_STORM_PHASE_CANARY && c->canary_running_ms != 0 &&
            now_ms - c->canary_running_ms >= conf->verify_timeout_ms) {
            c->phase = KCW_STORM_PHASE_RELEASE;
            c->next_release_ms = now_ms;
            c->last_hold_ms = now_ms; /* the release has only begun */
        }
    }

    /* The end: every member RUNNING for the verify period (or gone). Once
     * the release held nobody back for a verify period, a member that is
     * FAILED (again, or never restartable) or PAUSED/STOPPED by an operator
     * is settled too: its own alert tells the rest, and a storm must not
     * mute a cluster's task alerts for ever. */
    bool released = c->phase == KCW_STORM_PHASE_RELEASE;
    bool over = !released || now_ms - c->last_hold_ms >= conf->verify_timeout_ms;
    size_t w = 0;
    for (size_t i = 0; i < c->members.n; i++) {
        task_ref_t *m = &c->members.items[i];
        kcw_state_t st = target_state(cl, m->connector, m->task);
        if (st == KCW_STATE_UNKNOWN) {
            free(m->connector); /* deleted: not ours to wait for */
            continue;
        }
        if (st != KCW_STATE_RUNNING)
            m->since = 0;
        else if (m->since == 0)
            m->since = now_ms;
        bool settled = (m->since != 0 && now_ms - m->since >= conf->verify_timeout_ms) ||
                       (released && (st == KCW_STATE_FAILED || st == KCW_STATE_PAUSED ||
                                     st == KCW_STATE_STOPPED));
        if (!settled)
            over = false;
        c->members.items[w++] = *m;
    }
    c->members.n = w;
    if (over)
        storm_end(c);
    return 0;
}

kcw_storm_admit_t kcw_storm_admit(kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                                  const char *cluster, const char *connector, int task,
                                  int64_t now_ms)
{
    cluster_t *c = s ? cluster_find(s, cluster) : NULL;
    if (!c || !c->active || !connector)
        return KCW_STORM_PASS;
    if (c->phase == KCW_STORM_PHASE_RELEASE) {
        if (now_ms < c->next_release_ms) {
            c->last_hold_ms = now_ms;
            return KCW_STORM_HOLD;
        }
        double rate = conf->rate_per_min > 0 ? conf->rate_per_min : 30.0;
        c->next_release_ms = now_ms + (int64_t)(60000.0 / rate);
        c->released++;
        return KCW_STORM_RELEASE;
    }
    bool is_canary = c->canary && c->canary_task == task && strcmp(c->canary, connector) == 0;
    int64_t patience = conf->backoff_max_ms + conf->verify_timeout_ms;
    if (!is_canary && c->canary && now_ms - c->canary_asked_ms <= patience) {
        c->last_hold_ms = now_ms;
        return KCW_STORM_HOLD;
    }
    if (!is_canary) {
        char *name = strdup(connector);
        if (!name)
            return KCW_STORM_HOLD;
        free(c->canary);
        c->canary = name;
        c->canary_task = task;
        c->canary_restarts = 0;
        c->canary_running_ms = 0;
    }
    c->canary_asked_ms = now_ms;
    c->canary_restarts++;
    return KCW_STORM_CANARY;
}

bool kcw_storm_pace(kcw_storm_t *s, const kcw_remediation_conf_t *conf, const char *cluster,
                    int64_t now_ms)
{
    cluster_t *c = s && cluster ? cluster_get(s, cluster) : NULL;
    if (!c)
        return true; /* out of memory: the usual policy still bounds it */
    if (now_ms < c->next_paced_ms)
        return false;
    double rate = conf->rate_per_min > 0 ? conf->rate_per_min : 30.0;
    c->next_paced_ms = now_ms + (int64_t)(60000.0 / rate);
    return true;
}

kcw_storm_phase_t kcw_storm_phase(const kcw_storm_t *s, const char *cluster)
{
    const cluster_t *c = s ? cluster_find(s, cluster) : NULL;
    return c && c->active ? c->phase : KCW_STORM_NONE;
}

size_t kcw_storm_members(const kcw_storm_t *s, const char *cluster)
{
    const cluster_t *c = s ? cluster_find(s, cluster) : NULL;
    return c && c->active ? c->members.n : 0;
}

/* "orders, billing and 3 more" from the members (sorted by connector). */
static int connectors_text(const cluster_t *c, char *buf, size_t len, size_t *n_connectors)
{
    size_t n = 0, listed = 0, used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->members.n; i++) {
        if (i > 0 && strcmp(c->members.items[i].connector, c->members.items[i - 1].connector) == 0)
            continue;
        n++;
        if (listed < CONNECTORS_LISTED) {
            int w = snprintf(buf + used, len - used, "%s%s", listed ? ", " : "",
                             c->members.items[i].connector);
            if (w < 0 || (size_t)w >= len - used)
                break;
            used += (size_t)w;
            listed++;
        }
    }
    if (n > listed && used < len)
        snprintf(buf + used, len - used, " and %zu more", n - listed);
    *n_connectors = n;
    return 0;
}

static void canary_text(const cluster_t *c, const kcw_remediation_conf_t *conf, int64_t now,
                        char *buf, size_t len)
{
    if (!c->canary) {
        snprintf(buf, len, "no canary yet: the first task due for a restart becomes it");
        return;
    }
    char target[NOTE_MAX];
    if (c->canary_task >= 0)
        snprintf(target, sizeof(target), "%s task %d", c->canary, c->canary_task);
    else
        snprintf(target, sizeof(target), "%s", c->canary);
    if (c->phase == KCW_STORM_PHASE_RELEASE)
        snprintf(buf, len, "canary %s held RUNNING: releasing the rest at %.4g/min (%zu sent)",
                 target, conf->rate_per_min, c->released);
    else if (c->canary_running_ms)
        snprintf(buf, len, "canary %s RUNNING for %llds of %llds after restart %d", target,
                 (long long)((now - c->canary_running_ms) / 1000),
                 (long long)(conf->verify_timeout_ms / 1000), c->canary_restarts);
    else
        snprintf(buf, len, "canary %s not RUNNING after restart %d: retried with back-off, "
                 "the others are held", target, c->canary_restarts);
}

static int suspect_alert(const cluster_t *c, kcw_instance_t **out, size_t *n_out)
{
    kcw_instance_t *more = realloc(*out, (*n_out + 1) * sizeof(*more));
    if (!more)
        return -ENOMEM;
    *out = more;
    kcw_instance_t *in = &more[*n_out];
    memset(in, 0, sizeof(*in));
    char summary[512], text[1024];
    snprintf(summary, sizeof(summary), "Worker %s holds %zu of the %zu failed tasks of %s",
             c->suspect, c->suspect_failed, c->n_failed_known, c->name);
    snprintf(text, sizeof(text),
             "%zu of the cluster's %zu FAILED tasks failed on worker %s, which runs %zu of its "
             "%zu tasks (%zu workers). The worker itself may be sick (disk, memory, network, a "
             "plugin). Restarting these tasks can bring them back onto the same worker: Connect "
             "keeps tasks where they were, so check, drain or restart that worker.",
             c->suspect_failed, c->n_failed_known, c->suspect, c->suspect_tasks, c->n_tasks,
             c->n_workers);
    int rc = kcw_labels_set(&in->labels, "alertname", KCW_WORKER_SUSPECT_ALERT);
    if (rc == 0)
        rc = kcw_labels_set(&in->labels, "cluster", c->name);
    if (rc == 0)
        rc = kcw_labels_set(&in->labels, "worker_id", c->suspect);
    if (rc == 0)
        rc = kcw_labels_set(&in->labels, "severity", "warning");
    if (rc == 0)
        rc = kcw_labels_set(&in->annotations, "summary", summary);
    if (rc == 0)
        rc = kcw_labels_set(&in->annotations, "description", text);
    if (rc < 0) {
        kcw_instance_clear(in);
        return rc;
    }
    in->value = (double)c->suspect_failed;
    (*n_out)++;
    return 0;
}

int kcw_storm_alerts(const kcw_storm_t *s, const kcw_remediation_conf_t *conf,
                     kcw_instance_t **out, size_t *n_out)
{
    for (size_t i = 0; s && i < s->n_clusters; i++)
        if (s->clusters[i].suspect && suspect_alert(&s->clusters[i], out, n_out) < 0)
            return -ENOMEM;
    for (size_t i = 0; s && i < s->n_clusters; i++) {
        const cluster_t *c = &s->clusters[i];
        if (!c->active)
            continue;
        kcw_instance_t *more = realloc(*out, (*n_out + 1) * sizeof(*more));
        if (!more)
            return -ENOMEM;
        *out = more;
        kcw_instance_t *in = &more[*n_out];
        memset(in, 0, sizeof(*in));
        char connectors[1024], canary[2 * NOTE_MAX], summary[512], text[4096];
        size_t n_connectors = 0;
        connectors_text(c, connectors, sizeof(connectors), &n_connectors);
        canary_text(c, conf, c->seen_ms, canary, sizeof(canary));
        snprintf(summary, sizeof(summary), "Failure storm on %s: %zu tasks of %zu connectors failed",
                 c->name, c->members.n, n_connectors);
        snprintf(text, sizeof(text),
                 "%zu of the cluster's %zu tasks failed together (%s). Root cause: %s.\n"
                 "kcwatch treats this as one systemic failure: %s. Their own alerts stay in "
                 "the API; their notifications wait for this one.",
                 c->members.n, c->n_tasks, connectors, c->root_cause ? c->root_cause : "unknown",
                 canary);
        char count[32];
        snprintf(count, sizeof(count), "%zu", c->members.n);
        int rc = kcw_labels_set(&in->labels, "alertname", KCW_STORM_ALERT);
        if (rc == 0)
            rc = kcw_labels_set(&in->labels, "cluster", c->name);
        if (rc == 0)
            rc = kcw_labels_set(&in->labels, "severity", "critical");
        if (rc == 0 && c->root_cause)
            rc = kcw_labels_set(&in->labels, "root_cause", c->root_cause);
        if (rc == 0)
            rc = kcw_labels_set(&in->annotations, "summary", summary);
        if (rc == 0)
            rc = kcw_labels_set(&in->annotations, "description", text);
        if (rc == 0)
            rc = kcw_labels_set(&in->annotations, "tasks", count);
        if (rc == 0)
            rc = kcw_labels_set(&in->annotations, "connectors", connectors);
        if (rc == 0)
            rc = kcw_labels_set(&in->annotations, "canary", canary);
        if (rc < 0) {
            kcw_instance_clear(in);
            return rc;
        }
        in->value = (double)c->members.n;
        (*n_out)++;
    }
    return 0;
}
