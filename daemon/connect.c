/* connect.c: the Kafka Connect REST client and its status model.
 *
 * Data enters as HTTP bodies from the workers and leaves as one
 * kcw_cluster_status_t per cluster, handed to the poll callback after every
 * poll round. The parsers at the top are pure (jansson only) and unit-tested.
 *
 * A poll round is one request chain per cluster, never two at once:
 *   [GET / when this worker's version is not known yet]
 *   -> GET /connectors?expand=status (about 240 bytes per connector)
 *   -> (array reply, worker < 2.3) GET /connectors/{c}/status and
 *      GET /connectors/{c} for each name, one after the other.
 * Configs are not polled. Beside the rounds, one GET /connectors/{c} at a
 * time reads the task config count and tasks.max of a connector that
 * appeared or whose status changed so that its tasks no longer match them
 * (the only use of the config, by tasks_below_configs); the config itself is
 * dropped at once, never logged or kept.
 * The status body goes through kcw_status_index_t: only connectors whose
 * bytes changed are parsed again.
 * A connection-level failure moves the chain to the next worker URL of the
 * cluster (connect-rest.md §7.4); when every URL failed the cluster is marked
 * unreachable and the previous connectors stay (stale). HTTP errors, bodies
 * over connect[].max_body_bytes, cut short or unparsable keep the previous
 * model too but mark the cluster not readable (state UNREADABLE): the worker
 * answered, it just had nothing usable to say, and kcwatch is blind there. Connectors that disappear are kept for a few
 * polls, because absence is not deletion (§3.5, §7.5). A body byte-identical to
 * the last parsed one is not parsed again. */
#include "kcwatch/connect.h"
#include "kcwatch/duration.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/log.h"
#include "kcwatch/url.h"
#include "kcwatch/status_index.h"

/* A connector absent from this many consecutive polls is dropped (§3.5). */
#define MISSING_POLLS_DROP 3
#define DEFAULT_POLL_MS 5000
#define DEFAULT_TIMEOUT_MS 10000
#define POLL_PATH "/connectors?expand=status"
/* Bodies of the calls that carry one connector are small; the poll has its own limit. */
#define MAX_SMALL_BODY (4u * 1024 * 1024)

/* --- states and names ------------------------------------------------------ */

static const char *const state_names[KCW_STATE__COUNT] = {
    [KCW_STATE_UNKNOWN] = "UNKNOWN",       [KCW_STATE_RUNNING] = "RUNNING",
    [KCW_STATE_FAILED] = "FAILED",         [KCW_STATE_PAUSED] = "PAUSED",
    [KCW_STATE_UNASSIGNED] = "UNASSIGNED", [KCW_STATE_RESTARTING] = "RESTARTING",
    [KCW_STATE_STOPPED] = "STOPPED",       [KCW_STATE_UNREACHABLE] = "UNREACHABLE",
    [KCW_STATE_UNREADABLE] = "UNREADABLE",
};

kcw_state_t kcw_state_parse(const char *s)
{
    if (!s)
        return KCW_STATE_UNKNOWN;
    for (int i = KCW_STATE_RUNNING; i < KCW_STATE__COUNT; i++)
        if (strcmp(s, state_names[i]) == 0)
            return (kcw_state_t)i;
    return KCW_STATE_UNKNOWN;
}

const char *kcw_state_name(kcw_state_t s)
{
    if ((int)s < 0 || s >= KCW_STATE__COUNT)
        return state_names[KCW_STATE_UNKNOWN];
    return state_names[s];
}

const char *kcw_connector_type_name(kcw_connector_type_t t)
{
    switch (t) {
    case KCW_CTYPE_SOURCE:
        return "source";
    case KCW_CTYPE_SINK:
        return "sink";
    default:
        return "unknown";
    }
}

/* --- model memory ------------------------------------------------------------- */

void kcw_connector_status_clear(kcw_connector_status_t *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->worker_id);
    free(c->trace);
    for (size_t i = 0; i < c->n_tasks; i++) {
        free(c->tasks[i].worker_id);
        free(c->tasks[i].trace);
    }
    free(c->tasks);
    memset(c, 0, sizeof(*c));
    c->n_task_configs = -1;
    c->tasks_max = -1;
}

static void connectors_free(kcw_connector_status_t *arr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_connector_status_clear(&arr[i]);
    free(arr);
}

void kcw_cluster_status_clear(kcw_cluster_status_t *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->last_error);
    free(s->worker_url);
    free(s->version);
    connectors_free(s->connectors, s->n_connectors);
    memset(s, 0, sizeof(*s));
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

int kcw_connector_status_copy(kcw_connector_status_t *dst, const kcw_connector_status_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->type = src->type;
    dst->state = src->state;
    dst->has_info = src->has_info;
    dst->n_task_configs = src->n_task_configs;
    dst->tasks_max = src->tasks_max;
    dst->missing_polls = src->missing_polls;
    if (dup_opt(&dst->name, src->name) < 0 || dup_opt(&dst->worker_id, src->worker_id) < 0 ||
        dup_opt(&dst->trace, src->trace) < 0)
        goto oom;
    if (src->n_tasks > 0) {
        dst->tasks = calloc(src->n_tasks, sizeof(*dst->tasks));
        if (!dst->tasks)
            goto oom;
        for (size_t i = 0; i < src->n_tasks; i++) {
            dst->n_tasks = i + 1;
            dst->tasks[i].id = src->tasks[i].id;
            dst->tasks[i].state = src->tasks[i].state;
            if (dup_opt(&dst->tasks[i].worker_id, src->tasks[i].worker_id) < 0 ||
                dup_opt(&dst->tasks[i].trace, src->tasks[i].trace) < 0)
                goto oom;
        }
    }
    return 0;
oom:
    kcw_connector_status_clear(dst);
    return -ENOMEM;
}

const kcw_connector_status_t *kcw_cluster_status_find(const kcw_cluster_status_t *s,
                                                      const char *connector)
{
    if (!s || !connector)
        return NULL;
    size_t lo = 0, hi = s->n_connectors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->connectors[mid].name, connector);
        if (c == 0)
            return &s->connectors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int kcw_connector_status_tasks_short(const kcw_connector_status_t *c)
{
    if (!c->has_info || c->n_task_configs < 0)
        return -1;
    int running = 0;
    for (size_t i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].state == KCW_STATE_RUNNING && c->tasks[i].id >= 0 &&
            c->tasks[i].id < c->n_task_configs)
            running++;
    return c->n_task_configs - running;
}

kcw_state_t kcw_cluster_status_state(const kcw_cluster_status_t *s)
{
    if (!s || s->last_poll_ms == 0)
        return KCW_STATE_UNKNOWN;
    if (!s->reachable)
        return KCW_STATE_UNREACHABLE;
    return s->readable ? KCW_STATE_RUNNING : KCW_STATE_UNREADABLE;
}

/* --- pure parsing ----------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Optional string: absent or null -> NULL. where names the field's parent. */
static int get_string(json_t *obj, const char *key, bool required, const char *where, char **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fail(err, errlen, "field \"%s%s\" is missing", where, key);
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, errlen, "field \"%s%s\" must be a string", where, key);
    *out = strdup(json_string_value(v));
    return *out ? 0 : -ENOMEM;
}

static int task_cmp(const void *a, const void *b)
{
    const kcw_task_status_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int connector_cmp(const void *a, const void *b)
{
    const kcw_connector_status_t *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static kcw_connector_type_t type_parse(const char *s)
{
    if (s && strcmp(s, "source") == 0)
        return KCW_CTYPE_SOURCE;
    if (s && strcmp(s, "sink") == 0)
        return KCW_CTYPE_SINK;
    return KCW_CTYPE_UNKNOWN;
}

/* One instance object: {"state", "worker_id", optional "trace"} (§3.2). */
static int parse_instance(json_t *o, const char *where, kcw_state_t *state, char **worker_id,
                          char **trace, char *err, size_t errlen)
{
    char *s = NULL;
    int rc = get_string(o, "state", true, where, &s, err, errlen);
    if (rc < 0)
        return rc;
    *state = kcw_state_parse(s);
    free(s);
    rc = get_string(o, "worker_id", false, where, worker_id, err, errlen);
    if (rc == 0)
        rc = get_string(o, "trace", false, where, trace, err, errlen);
    return rc;
}

/* ConnectorStateInfo (§3.2) from a parsed object; prefix names it in errors. */
static int parse_status_obj(json_t *root, const char *prefix, kcw_connector_status_t *out,
                            char *err, size_t errlen)
{
    char where[512];
    int rc;
    kcw_connector_status_clear(out);
    if (!json_is_object(root))
        return fail(err, errlen, "%sstatus must be a JSON object", prefix);

    snprintf(where, sizeof(where), "%s", prefix);
    if ((rc = get_string(root, "name", true, where, &out->name, err, errlen)) < 0)
        goto bad;
    char *type = NULL;
    if ((rc = get_string(root, "type", false, where, &type, err, errlen)) < 0)
        goto bad;
    out->type = type_parse(type); /* absent before 1.0, "unknown" when unloadable */
    free(type);

    json_t *conn = json_object_get(root, "connector");
    if (!conn) {
        rc = fail(err, errlen, "field \"%sconnector\" is missing", prefix);
        goto bad;
    }
    if (!json_is_object(conn)) {
        rc = fail(err, errlen, "field \"%sconnector\" must be an object", prefix);
        goto bad;
    }
    snprintf(where, sizeof(where), "%sconnector.", prefix);
    if ((rc = parse_instance(conn, where, &out->state, &out->worker_id, &out->trace, err, errlen)) <
        0)
        goto bad;

    /* STOPPED connectors have "tasks": [] (§4); treat a missing list the same. */
    json_t *tasks = json_object_get(root, "tasks");
    if (tasks && !json_is_null(tasks)) {
        if (!json_is_array(tasks)) {
            rc = fail(err, errlen, "field \"%stasks\" must be an array", prefix);
            goto bad;
        }
        size_t n = json_array_size(tasks);
        if (n > 0) {
            out->tasks = calloc(n, sizeof(*out->tasks));
            if (!out->tasks) {
                rc = -ENOMEM;
                goto bad;
            }
        }
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(tasks, i);
            kcw_task_status_t *ts = &out->tasks[i];
            out->n_tasks = i + 1;
            snprintf(where, sizeof(where), "%stasks[%zu]", prefix, i);
            if (!json_is_object(t)) {
                rc = fail(err, errlen, "field \"%s\" must be an object", where);
                goto bad;
            }
            json_t *id = json_object_get(t, "id");
            if (!id) {
                rc = fail(err, errlen, "field \"%s.id\" is missing", where);
                goto bad;
            }
            if (!json_is_integer(id) || json_integer_value(id) < 0 ||
                json_integer_value(id) > INT_MAX) {
                rc = fail(err, errlen, "field \"%s.id\" must be a non-negative integer", where);
                goto bad;
            }
            ts->id = (int)json_integer_value(id);
            snprintf(where, sizeof(where), "%stasks[%zu].", prefix, i);
            if ((rc = parse_instance(t, where, &ts->state, &ts->worker_id, &ts->trace, err,
                                     errlen)) < 0)
                goto bad;
        }
        /* Sorted in /status, not in a 202 restart body (§3.2, §5.3). */
        if (out->n_tasks > 1)
            qsort(out->tasks, out->n_tasks, sizeof(*out->tasks), task_cmp);
    }
    return 0;
bad:
    kcw_connector_status_clear(out);
    return rc;
}

static int load_json(const char *json, size_t len, json_t **root, char *err, size_t errlen)
{
    json_error_t jerr;
    *root = json ? json_loadb(json, len, 0, &jerr) : NULL;
    if (!*root) {
        if (!json)
            return fail(err, errlen, "no body");
        return fail(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    }
    return 0;
}

int kcw_connect_parse_status(const char *json, size_t len, kcw_connector_status_t *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->n_task_configs = -1;
    out->tasks_max = -1;
    json_t *root;
    int rc = load_json(json, len, &root, err, errlen);
    if (rc < 0)
        return rc;
    rc = parse_status_obj(root, "", out, err, errlen);
    json_decref(root);
    return rc;
}

/* ConnectorInfo (§3.3): only what the rules need, task config count and tasks.max. */
static int parse_info_obj(json_t *info, const char *prefix, kcw_connector_status_t *c, char *err,
                          size_t errlen)
{
    if (!json_is_object(info))
        return fail(err, errlen, "field \"%sinfo\" must be an object", prefix);
    c->has_info = true;
    c->n_task_configs = -1;
    c->tasks_max = -1;
    json_t *tasks = json_object_get(info, "tasks");
    if (tasks && !json_is_null(tasks)) {
        if (!json_is_array(tasks))
            return fail(err, errlen, "field \"%sinfo.tasks\" must be an array", prefix);
        size_t n = json_array_size(tasks);
        c->n_task_configs = n > INT_MAX ? INT_MAX : (int)n;
    }
    json_t *config = json_object_get(info, "config");
    if (config && !json_is_null(config)) {
        if (!json_is_object(config))
            return fail(err, errlen, "field \"%sinfo.config\" must be an object", prefix);
        json_t *tm = json_object_get(config, "tasks.max");
        /* Config values are strings (§3.3); a bad value just stays unknown. */
        if (json_is_string(tm)) {
            const char *s = json_string_value(tm);
            char *end = NULL;
            errno = 0;
            long v = strtol(s, &end, 10);
            if (errno == 0 && end != s && *end == '\0' && v >= 0 && v <= INT_MAX)
                c->tasks_max = (int)v;
        } else if (json_is_integer(tm) && json_integer_value(tm) >= 0 &&
                   json_integer_value(tm) <= INT_MAX) {
            c->tasks_max = (int)json_integer_value(tm);
        }
    }
    return 0;
}

static int parse_names(json_t *root, char ***names, size_t *n_names, char *err, size_t errlen)
{
    size_t n = json_array_size(root);
    char **arr = calloc(n ? n : 1, sizeof(*arr));
    if (!arr)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(root, i);
        if (!json_is_string(v)) {
            for (size_t j = 0; j < i; j++)
                free(arr[j]);
            free(arr);
            return fail(err, errlen, "connector list entry %zu must be a string", i);
        }
        arr[i] = strdup(json_string_value(v));
        if (!arr[i]) {
            for (size_t j = 0; j < i; j++)
                free(arr[j]);
            free(arr);
            return -ENOMEM;
        }
    }
    if (n > 1)
        qsort(arr, n, sizeof(*arr), name_cmp); /* order is unspecified (§3.5) */
    *names = arr;
    *n_names = n;
    return 1;
}

/* One member of an expand body: {"status": ..., "info": ...} under key. */
static int parse_member(const char *key, json_t *val, kcw_connector_status_t *c, bool *present,
                        char *err, size_t errlen)
{
    char prefix[320];
    int rc;
    *present = false;
    if (!json_is_object(val))
        return fail(err, errlen, "field \"%.256s\" must be an object", key);
    json_t *status = json_object_get(val, "status");
    /* No status record yet: Connect leaves it out, so do we (§3.5). */
    if (!status || json_is_null(status))
        return 0;
    snprintf(prefix, sizeof(prefix), "%.256s.status.", key);
    if ((rc = parse_status_obj(status, prefix, c, err, errlen)) < 0)
        return rc;
    c->n_task_configs = -1;
    c->tasks_max = -1;
    /* The map key is the name the API addresses the connector by. */
    if (strcmp(c->name, key) != 0) {
        char *k = strdup(key);
        if (!k) {
            kcw_connector_status_clear(c);
            return -ENOMEM;
        }
        free(c->name);
        c->name = k;
    }
    json_t *info = json_object_get(val, "info");
    if (info && !json_is_null(info)) {
        snprintf(prefix, sizeof(prefix), "%.256s.", key);
        if ((rc = parse_info_obj(info, prefix, c, err, errlen)) < 0) {
            kcw_connector_status_clear(c);
            return rc;
        }
    }
    *present = true;
    return 0;
}

int kcw_connect_parse_member(const char *key, const char *json, size_t len,
                             kcw_connector_status_t *out, bool *present, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    *present = false;
    json_error_t jerr;
    /* Any value: a member that is not an object gets parse_member's message. */
    json_t *root = json ? json_loadb(json, len, JSON_DECODE_ANY, &jerr) : NULL;
    if (!root)
        return json ? fail(err, errlen, "field \"%.256s\": invalid JSON: %s", key, jerr.text)
                    : fail(err, errlen, "no body");
    int rc = parse_member(key, root, out, present, err, errlen);
    json_decref(root);
    return rc;
}

int kcw_connect_parse_expand(const char *json, size_t len, kcw_cluster_status_t *out, char ***names,
                             size_t *n_names, char *err, size_t errlen)
{
    if (names)
        *names = NULL;
    if (n_names)
        *n_names = 0;
    json_t *root;
    int rc = load_json(json, len, &root, err, errlen);
    if (rc < 0)
        return rc;

    if (json_is_array(root)) {
        /* Worker < 2.3 ignores expand (§3.5): detect it by the JSON type. */
        if (!names || !n_names)
            rc = fail(err, errlen, "worker answered with a plain connector list");
        else
            rc = parse_names(root, names, n_names, err, errlen);
        json_decref(root);
        return rc;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, errlen, "expected a JSON object or array");
    }

    size_t cap = json_object_size(root), n = 0;
    kcw_connector_status_t *arr = calloc(cap ? cap : 1, sizeof(*arr));
    if (!arr) {
        json_decref(root);
        return -ENOMEM;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        bool present;
        if ((rc = parse_member(key, val, &arr[n], &present, err, errlen)) < 0)
            goto bad;
        if (present)
            n++;
    }
    json_decref(root);
    if (n > 1)
        qsort(arr, n, sizeof(*arr), connector_cmp);
    connectors_free(out->connectors, out->n_connectors);
    out->connectors = arr;
    out->n_connectors = n;
    return 0;
bad:
    json_decref(root);
    connectors_free(arr, n);
    return rc;
}

/* Confluent Platform builds report their own version with a -ccs/-ce suffix
 * (e.g. 6.2.0-ccs ships Apache Kafka 2.8); map it so that feature checks such
 * as KIP-745 (Apache 3.0, §9) see the Apache Kafka version. */
static void confluent_to_apache(int *major, int *minor)
{
    /* 5.x -> 2.x, 6.0..6.2 -> 2.6..2.8, 7.x -> 3.x, 8.x -> 4.x */
    switch (*major) {
    case 5:
        *major = 2;
        break;
    case 6:
        *major = 2;
        *minor += 6;
        break;
    case 7:
        *major = 3;
        break;
    case 8:
        *major = 4;
        break;
    default:
        break;
    }
}

int kcw_connect_version_parse(const char *version, int *major, int *minor)
{
    if (!version)
        return -EINVAL;
    const char *p = version;
    long v[2];
    for (int i = 0; i < 2; i++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        long x = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            x = x * 10 + (*p - '0');
            if (x > 100000)
                return -EINVAL;
        }
        v[i] = x;
        if (i == 0) {
            if (*p != '.')
                return -EINVAL;
            p++;
        }
    }
    /* After major.minor only a patch level or a qualifier may follow. */
    if (*p != '\0' && *p != '.' && *p != '-')
        return -EINVAL;
    int ma = (int)v[0], mi = (int)v[1];
    const char *dash = strchr(p, '-');
    if (dash && (strncmp(dash, "-ccs", 4) == 0 || strncmp(dash, "-ce", 3) == 0))
        confluent_to_apache(&ma, &mi);
    if (major)
        *major = ma;
    if (minor)
        *minor = mi;
    return 0;
}

/* --- the client on the loop ---------------------------------------------------- */

typedef enum {
    REQ_POLL_VERSION,
    REQ_POLL_EXPAND,
    REQ_POLL_STATUS, /* array fallback */
    REQ_POLL_INFO,   /* array fallback */
    REQ_INFO,        /* task configs of one connector, beside the rounds */
    REQ_FETCH_STATUS,
    REQ_FETCH_VERSION,
    REQ_RESTART,
} req_kind_t;

typedef struct cluster cluster_t;

typedef struct req {
    struct req *prev, *next;
    cluster_t *cl;
    req_kind_t kind;
    const char *method;
    char *path; /* path and query, names already encoded */
    size_t url_idx;
    size_t tries; /* URLs that failed with a connection error */
    union {
        kcw_connect_status_cb status;
        kcw_connect_version_cb version;
        kcw_connect_restart_cb restart;
    } cb;
    void *arg;
} req_t;

/* One worker's current failure episode: logged when it starts and when the
 * worker answers again, with the count, never once per poll. */
typedef struct worker_episode {
    bool down;
    uint64_t failures; /* requests to it that failed in this episode */
    int64_t since_ms;  /* wall clock of the first failure */
} worker_episode_t;

typedef struct deferred {
    struct deferred *next;
    kcw_connect_version_cb cb;
    void *arg;
    char *version;
} deferred_t;

struct cluster {
    kcw_connect_t *cn;
    size_t idx;
    const kcw_cluster_conf_t *conf;
    kcw_cluster_status_t status;
    uv_timer_t timer;
    size_t cur_url;     /* worker the next call goes to */
    size_t version_url; /* worker status.version was read from; SIZE_MAX: none */
    kcw_status_index_t *index; /* last expand body that parsed, by connector */
    char **info_queue;         /* connectors whose task configs are to be read */
    size_t info_n, info_cap;
    bool info_busy;  /* a REQ_INFO is in flight */
    bool info_dirty; /* task configs changed since the last poll callback */
    long err_status; /* class of the last failure (see round_fail_code) */
    int err_curl;
    uint64_t failed_polls;     /* polls failed since the last good one */
    worker_episode_t *workers; /* one per conf->urls */

    /* the poll round in flight */
    bool polling;
    size_t round_url;
    size_t round_tries;
    bool round_answered;
    char **fb_names; /* array fallback: names still to read */
    size_t fb_n, fb_i;
    kcw_connector_status_t *fb_conns;
    size_t fb_nconns;
};

struct kcw_connect {
    uv_loop_t *loop;
    kcw_http_t *http;
    const kcw_config_t *cfg;
    kcw_connect_poll_cb cb;
    void *arg;
    cluster_t *clusters;
    size_t n_clusters;
    req_t *reqs; /* in flight */
    uv_idle_t idle;
    deferred_t *deferred, *deferred_tail;
    size_t open_handles;
    bool closing;
    void (*on_closed)(void *arg);
    void *on_closed_arg;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *url_of(const cluster_t *cl, size_t i)
{
    return cl->conf->urls[i];
}

/* Path segment encoding (§1); unreserved characters stay as they are. */
static char *encode_segment(const char *s)
{
    char *e = curl_easy_escape(NULL, s, (int)strlen(s));
    if (!e)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}

static char *connector_path(const char *connector, const char *fmt_tail, int task)
{
    char *enc = encode_segment(connector);
    if (!enc)
        return NULL;
    char *path = NULL;
    int rc;
    if (task >= 0)
        rc = asprintf(&path, "/connectors/%s/tasks/%d%s", enc, task, fmt_tail);
    else
        rc = asprintf(&path, "/connectors/%s%s", enc, fmt_tail);
    free(enc);
    return rc < 0 ? NULL : path;
}

/* "HTTP 409: message" from a JSON error body (§7.1) or a plain one (§7.6). */
static void describe_http_error(const kcw_http_resp_t *resp, char *buf, size_t n)
{
    char msg[200] = "";
    json_t *root = resp->body_len ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    json_t *m = json_is_object(root) ? json_object_get(root, "message") : NULL;
    if (json_is_string(m)) {
        snprintf(msg, sizeof(msg), "%s", json_string_value(m));
    } else {
        size_t j = 0;
        for (size_t i = 0; i < resp->body_len && j + 1 < sizeof(msg); i++) {
            char ch = resp->body[i];
            msg[j++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
        }
        msg[j] = '\0';
        while (j > 0 && msg[j - 1] == ' ')
            msg[--j] = '\0';
    }
    json_decref(root);
    if (msg[0])
        snprintf(buf, n, "HTTP %ld: %s", resp->status, msg);
    else
        snprintf(buf, n, "HTTP %ld", resp->status);
}

/* GET / body (§3.1) -> version string. */
static char *parse_server_version(const kcw_http_resp_t *resp)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *v = json_is_object(root) ? json_object_get(root, "version") : NULL;
    char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(root);
    return out;
}

/* --- requests ------------------------------------------------------------------ */

static void on_http(const kcw_http_resp_t *resp, void *arg);

static req_t *req_new(cluster_t *cl, req_kind_t kind, const char *method, char *path)
{
    if (!path)
        return NULL;
    req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        free(path);
        return NULL;
    }
    r->cl = cl;
    r->kind = kind;
    r->method = method;
    r->path = path;
    return r;
}

static void req_unlink(kcw_connect_t *cn, req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (cn->reqs == r)
        cn->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(kcw_connect_t *cn, req_t *r)
{
    req_unlink(cn, r);
    if (r->kind == REQ_INFO)
        free(r->arg); /* the connector's name */
    free(r->path);
    free(r);
}

/* Sends r to its url_idx; links it into the in-flight list on success. */
static int req_send(req_t *r)
{
    cluster_t *cl = r->cl;
    kcw_connect_t *cn = cl->cn;
    if (cn->closing)
        return -ESHUTDOWN; /* a callback closed us; nothing new may start */
    /* Joined with libcurl's URL API: a base URL's own path prefix and query
     * (an access token for a proxy) stay, the API path goes onto the path. */
    char *url = kcw_url_join(url_of(cl, r->url_idx), r->path);
    if (!url)
        return -ENOMEM;
    kcw_http_req_t hr = {
        .method = r->method,
        .url = url,
        .timeout_ms = cl->conf->timeout_ms > 0 ? cl->conf->timeout_ms : DEFAULT_TIMEOUT_MS,
        .max_body = r->kind == REQ_POLL_EXPAND ? cl->conf->max_body_bytes : MAX_SMALL_BODY,
        .basic_auth = cl->conf->basic_auth.username ? &cl->conf->basic_auth : NULL,
        .tls = &cl->conf->tls,
    };
    int rc = kcw_http_request(cn->http, &hr, on_http, r);
    free(url);
    if (rc < 0)
        return rc;
    if (!r->prev && cn->reqs != r) {
        r->next = cn->reqs;
        if (cn->reqs)
            cn->reqs->prev = r;
        cn->reqs = r;
    }
    return 0;
}

/* A connection-level failure on r's worker: the next call goes elsewhere. */
/* A request to worker i failed: WARN when it starts an episode (INFO for a
 * cluster's only worker: the cluster's own line says it), DEBUG while the
 * episode lasts. */
static void worker_failed(cluster_t *cl, size_t i, const char *error)
{
    worker_episode_t *w = &cl->workers[i];
    w->failures++;
    if (w->down) {
        kcw_log(KCW_LOG_DEBUG, "connect worker still down", "cluster", cl->status.name, "url",
                url_of(cl, i), KCW_LOG_INT("failures", w->failures), "error", error, NULL);
        return;
    }
    w->down = true;
    w->failures = 1;
    w->since_ms = wall_ms();
    kcw_log(cl->conf->n_urls > 1 ? KCW_LOG_WARN : KCW_LOG_INFO, "connect worker down", "cluster",
            cl->status.name, "url", url_of(cl, i), "error", error, NULL);
}

/* Worker i answered: ends its episode, if any, with one INFO line. */
static void worker_answered(cluster_t *cl, size_t i)
{
    worker_episode_t *w = &cl->workers[i];
    if (!w->down)
        return;
    char dur[64];
    kcw_duration_format(wall_ms() - w->since_ms, dur, sizeof dur);
    kcw_log(KCW_LOG_INFO, "connect worker back", "cluster", cl->status.name, "url", url_of(cl, i),
            KCW_LOG_INT("failed_requests", w->failures), "down_for", dur, NULL);
    *w = (worker_episode_t){0};
}

static void note_worker_down(cluster_t *cl, size_t failed)
{
    if (cl->cur_url == failed)
        cl->cur_url = (failed + 1) % cl->conf->n_urls;
}

/* --- poll rounds ---------------------------------------------------------------- */

static void fallback_reset(cluster_t *cl)
{
    for (size_t i = 0; i < cl->fb_n; i++)
        free(cl->fb_names[i]);
    free(cl->fb_names);
    cl->fb_names = NULL;
    cl->fb_n = cl->fb_i = 0;
    connectors_free(cl->fb_conns, cl->fb_nconns);
    cl->fb_conns = NULL;
    cl->fb_nconns = 0;
}

static void poll_notify(cluster_t *cl, bool changed)
{
    kcw_connect_t *cn = cl->cn;
    if (cn->cb && !cn->closing)
        cn->cb(cn, cl->idx, changed, cn->arg);
}

/* curl_code and http_status classify the failure: the message itself carries
 * timings ("after 3 ms") and would make every poll look new. */
static void round_fail_code(cluster_t *cl, const char *url, long http_status, int curl_code,
                            const char *msg, bool reachable)
{
    kcw_cluster_status_t *st = &cl->status;
    fallback_reset(cl);
    cl->polling = false;
    bool changed = st->reachable != reachable || st->readable || !st->last_error ||
                   cl->err_status != http_status || cl->err_curl != curl_code;
    cl->err_status = http_status;
    cl->err_curl = curl_code;
    cl->failed_polls++;
    char *e = strdup(msg);
    if (e) {
        free(st->last_error);
        st->last_error = e;
    }
    st->reachable = reachable;
    /* Whatever failed, the connectors are not current: nothing may act on them. */
    st->readable = false;
    if (reachable)
        st->ever_reachable = true;
    st->last_poll_ms = wall_ms();
    /* Loud once per distinct problem, quiet while it persists. */
    kcw_log(changed ? KCW_LOG_WARN : KCW_LOG_DEBUG,
            reachable ? "connect poll failed" : "connect cluster unreachable", "cluster", st->name,
            "url", url ? url : "", KCW_LOG_INT("status", http_status), "error", msg,
            KCW_LOG_INT("failed_polls", cl->failed_polls), NULL);
    poll_notify(cl, changed);
}

static void round_fail(cluster_t *cl, const char *url, long http_status, const char *msg,
                       bool reachable)
{
    round_fail_code(cl, url, http_status, 0, msg, reachable);
}

static void round_ok(cluster_t *cl, bool changed)
{
    kcw_cluster_status_t *st = &cl->status;
    fallback_reset(cl);
    cl->polling = false;
    cl->cur_url = cl->round_url;
    const char *url = url_of(cl, cl->round_url);
    if (cl->info_dirty)
        changed = true;
    cl->info_dirty = false;
    worker_answered(cl, cl->round_url);
    if (st->last_error || !st->reachable || !st->readable) {
        changed = true;
        if (st->last_error)
            kcw_log(KCW_LOG_INFO, "connect poll recovered", "cluster", st->name, "url", url,
                    KCW_LOG_INT("failed_polls", cl->failed_polls), NULL);
    }
    cl->failed_polls = 0;
    free(st->last_error);
    st->last_error = NULL;
    st->reachable = true;
    st->readable = true;
    st->ever_reachable = true;
    st->last_poll_ms = st->last_ok_ms = wall_ms();
    char *u = kcw_url_redact(url); /* printed by status and the API */
    if (u && (!st->worker_url || strcmp(st->worker_url, u) != 0)) {
        free(st->worker_url);
        st->worker_url = u;
    } else {
        free(u);
    }
    poll_notify(cl, changed);
}

static int round_send(cluster_t *cl, req_kind_t kind, char *path)
{
    req_t *r = req_new(cl, kind, "GET", path);
    if (!r)
        return -ENOMEM;
    r->url_idx = cl->round_url;
    int rc = req_send(r);
    if (rc < 0)
        req_free(cl->cn, r);
    return rc;
}

/* Next step of the chain on round_url: version first if this worker's is unknown. */
static int round_step(cluster_t *cl)
{
    if (cl->version_url != cl->round_url)
        return round_send(cl, REQ_POLL_VERSION, strdup("/"));
    return round_send(cl, REQ_POLL_EXPAND, strdup(POLL_PATH));
}

static void round_step_or_fail(cluster_t *cl)
{
    int rc = round_step(cl);
    if (rc < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot send request: %s", strerror(-rc));
        round_fail(cl, url_of(cl, cl->round_url), 0, msg, cl->round_answered);
    }
}

static int round_start(cluster_t *cl)
{
    if (cl->polling)
        return 1;
    cl->polling = true;
    cl->status.poll_started_ms = wall_ms();
    cl->round_url = cl->cur_url;
    cl->round_tries = 0;
    cl->round_answered = false;
    int rc = round_step(cl);
    if (rc < 0)
        cl->polling = false;
    return rc;
}

static void round_failover(cluster_t *cl, const req_t *r, const kcw_http_resp_t *resp)
{
    const char *url = url_of(cl, r->url_idx);
    fallback_reset(cl);
    cl->round_tries++;
    worker_failed(cl, r->url_idx, resp->error);
    note_worker_down(cl, r->url_idx);
    cl->round_url = (r->url_idx + 1) % cl->conf->n_urls;
    if (cl->round_tries >= cl->conf->n_urls) {
        char msg[400];
        snprintf(msg, sizeof(msg), "no worker reachable (last: %s: %s)", url, resp->error);
        round_fail(cl, url, 0, msg, false);
        return;
    }
    kcw_log(KCW_LOG_DEBUG, "connect worker failed, trying the next one", "cluster",
            cl->status.name, "url", url, "next", url_of(cl, cl->round_url), NULL);
    round_step_or_fail(cl); /* version is read again from the new worker */
}

/* Stamps for kcw_cluster_status_t.generation; the loop is single-threaded. */
static uint64_t next_generation(void)
{
    static uint64_t last;
    return ++last;
}

/* Replaces the model's connectors with fresh (sorted, consumed), keeping the
 * ones that went missing for up to MISSING_POLLS_DROP polls (§3.5, §7.5).
 * Model entries without a name were moved into fresh by the status index. */
static int merge_connectors(cluster_t *cl, kcw_connector_status_t *fresh, size_t n_fresh)
{
    kcw_cluster_status_t *st = &cl->status;
    size_t cap = n_fresh + st->n_connectors;
    kcw_connector_status_t *out = calloc(cap ? cap : 1, sizeof(*out));
    if (!out) {
        connectors_free(fresh, n_fresh);
        return -ENOMEM;
    }
    size_t i = 0, j = 0, n = 0;
    while (i < n_fresh || j < st->n_connectors) {
        if (j < st->n_connectors && !st->connectors[j].name) {
            j++;
            continue;
        }
        int c;
        if (i == n_fresh)
            c = 1;
        else if (j == st->n_connectors)
            c = -1;
        else
            c = strcmp(fresh[i].name, st->connectors[j].name);
        if (c <= 0) {
            kcw_connector_status_t *f = &fresh[i++];
            if (c == 0) {
                kcw_connector_status_t *old = &st->connectors[j++];
                /* Info could not be read this time (fallback 500/409): keep the last. */
                if (!f->has_info && old->has_info) {
                    f->has_info = true;
                    f->n_task_configs = old->n_task_configs;
                    f->tasks_max = old->tasks_max;
                }
                kcw_connector_status_clear(old);
            }
            f->missing_polls = 0;
            out[n++] = *f;
            memset(f, 0, sizeof(*f));
        } else {
            kcw_connector_status_t *old = &st->connectors[j++];
            if (old->missing_polls + 1 < MISSING_POLLS_DROP) {
                old->missing_polls++;
                out[n++] = *old;
                memset(old, 0, sizeof(*old));
            } else {
                kcw_log(KCW_LOG_INFO, "connector gone", "cluster", st->name, "connector", old->name,
                        NULL);
                kcw_connector_status_clear(old);
            }
        }
    }
    connectors_free(fresh, n_fresh);
    connectors_free(st->connectors, st->n_connectors);
    st->connectors = out;
    st->n_connectors = n;
    st->generation = next_generation();
    return 0;
}

/* Same body as last time: only the missing counters move. */
static bool age_missing(cluster_t *cl)
{
    kcw_cluster_status_t *st = &cl->status;
    bool any = false;
    size_t n = 0;
    for (size_t i = 0; i < st->n_connectors; i++) {
        kcw_connector_status_t *c = &st->connectors[i];
        if (c->missing_polls > 0) {
            any = true;
            if (++c->missing_polls >= MISSING_POLLS_DROP) {
                kcw_log(KCW_LOG_INFO, "connector gone", "cluster", st->name, "connector", c->name,
                        NULL);
                kcw_connector_status_clear(c);
                continue;
            }
        }
        if (n != i) {
            st->connectors[n] = *c;
            memset(c, 0, sizeof(*c));
        }
        n++;
    }
    st->n_connectors = n;
    if (any)
        st->generation = next_generation();
    return any;
}

static void fallback_next(cluster_t *cl);

/* Task configs are read for a connector that has none yet or whose tasks no
 * longer match them (a task appeared, or fewer than the configs report). */
static bool info_stale(const kcw_connector_status_t *c)
{
    if (!c->has_info || c->n_task_configs < 0)
        return true;
    if (c->n_tasks != (size_t)c->n_task_configs)
        return true;
    for (size_t i = 0; i < c->n_tasks; i++)
        if (c->tasks[i].id < 0 || c->tasks[i].id >= c->n_task_configs)
            return true;
    return false;
}

static void info_queue_clear(cluster_t *cl)
{
    for (size_t i = 0; i < cl->info_n; i++)
        free(cl->info_queue[i]);
    free(cl->info_queue);
    cl->info_queue = NULL;
    cl->info_n = cl->info_cap = 0;
}

/* Takes name. The queue never holds more names than twice the connectors. */
static void info_queue_push(cluster_t *cl, char *name)
{
    size_t bound = 2 * cl->status.n_connectors + 16;
    if (cl->info_n >= bound) {
        free(name);
        return;
    }
    if (cl->info_n == cl->info_cap) {
        size_t cap = cl->info_cap ? 2 * cl->info_cap : 16;
        char **q = realloc(cl->info_queue, cap * sizeof(*q));
        if (!q) {
            free(name);
            return;
        }
        cl->info_queue = q;
        cl->info_cap = cap;
    }
    cl->info_queue[cl->info_n++] = name;
}

static void info_next(cluster_t *cl);

/* Applies a new expand body through the status index: only connectors whose
 * bytes changed are parsed; those whose tasks no longer match their task
 * configs are queued for a config read. */
static void on_expand(cluster_t *cl, const req_t *r, const kcw_http_resp_t *resp)
{
    const char *url = url_of(cl, r->url_idx);
    char msg[400];
    kcw_cluster_status_t *st = &cl->status;
    if (cl->index && kcw_status_index_same(cl->index, resp->body, resp->body_len)) {
        round_ok(cl, age_missing(cl));
        return;
    }
    if (!cl->index && !(cl->index = kcw_status_index_new())) {
        round_fail(cl, url, resp->status, "out of memory", true);
        return;
    }
    kcw_status_delta_t d;
    char err[300] = "";
    int rc = kcw_status_index_apply(cl->index, resp->body, resp->body_len, st->connectors,
                                    st->n_connectors, &d, err, sizeof(err));
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "unreadable connector list: %s",
                 rc == -ENOMEM ? "out of memory" : err);
        round_fail(cl, url, resp->status, msg, true);
        return;
    }
    if (rc == 1) {
        /* Worker < 2.3 (§3.5): read each connector on its own. */
        kcw_cluster_status_t fresh = {0};
        char **names = NULL;
        size_t n_names = 0;
        rc = kcw_connect_parse_expand(resp->body, resp->body_len, &fresh, &names, &n_names, err,
                                      sizeof(err));
        if (rc != 1) {
            connectors_free(fresh.connectors, fresh.n_connectors);
            snprintf(msg, sizeof(msg), "unreadable connector list: %s",
                     rc == -ENOMEM ? "out of memory" : err);
            round_fail(cl, url, resp->status, msg, true);
            return;
        }
        cl->fb_names = names;
        cl->fb_n = n_names;
        cl->fb_i = 0;
        cl->fb_conns = calloc(n_names ? n_names : 1, sizeof(*cl->fb_conns));
        if (!cl->fb_conns) {
            round_fail(cl, url, resp->status, "out of memory", true);
            return;
        }
        fallback_next(cl);
        return;
    }
    char **parsed = d.parsed_names;
    size_t n_parsed = d.n_parsed;
    d.parsed_names = NULL;
    d.n_parsed = 0;
    if (merge_connectors(cl, d.connectors, d.n_connectors) < 0) {
        for (size_t i = 0; i < n_parsed; i++)
            free(parsed[i]);
        free(parsed);
        kcw_status_index_reset(cl->index); /* the model lost reused connectors */
        round_fail(cl, url, resp->status, "out of memory", true);
        return;
    }
    for (size_t i = 0; i < n_parsed; i++) {
        const kcw_connector_status_t *c = kcw_cluster_status_find(st, parsed[i]);
        if (c && info_stale(c))
            info_queue_push(cl, parsed[i]);
        else
            free(parsed[i]);
    }
    free(parsed);
    round_ok(cl, true);
    info_next(cl);
}

/* GET /connectors/{c} (§3.3): keeps the task config count and tasks.max,
 * drops the config. */
static void on_info(cluster_t *cl, const req_t *r, const kcw_http_resp_t *resp)
{
    cl->info_busy = false;
    const char *name = r->arg;
    if (resp->curl_code == 0 && resp->status == 200) {
        kcw_connector_status_t *c =
            (kcw_connector_status_t *)kcw_cluster_status_find(&cl->status, name);
        json_t *root = c ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
        kcw_connector_status_t got = {.n_task_configs = -1, .tasks_max = -1};
        if (root && parse_info_obj(root, "", &got, NULL, 0) == 0) {
            int before = kcw_connector_status_tasks_short(c);
            c->has_info = got.has_info;
            c->n_task_configs = got.n_task_configs;
            c->tasks_max = got.tasks_max;
            int after = kcw_connector_status_tasks_short(c);
            /* Re-evaluate only when a rule could see it (no shortfall is 0 or -1). */
            if ((before > 0 ? before : 0) != (after > 0 ? after : 0))
                cl->info_dirty = true;
        }
        json_decref(root);
    } else if (resp->curl_code == 0) {
        /* 404: deleted meanwhile; 409/500 during a rebalance (§7.2): the
         * connector's next status change asks again. */
        kcw_log(KCW_LOG_DEBUG, "connector task configs not read", "cluster", cl->status.name,
                "connector", name, NULL);
    }
    info_next(cl);
}

/* One config read at a time per cluster, newest request last. */
static void info_next(cluster_t *cl)
{
    while (!cl->info_busy && cl->info_n > 0 && !cl->cn->closing) {
        char *name = cl->info_queue[--cl->info_n];
        const kcw_connector_status_t *c = kcw_cluster_status_find(&cl->status, name);
        if (!c || !info_stale(c)) {
            free(name);
            continue;
        }
        req_t *r = req_new(cl, REQ_INFO, "GET", connector_path(name, "", -1));
        if (!r) {
            free(name);
            return;
        }
        r->arg = name;
        r->url_idx = cl->cur_url;
        if (req_send(r) < 0) {
            free(name);
            req_free(cl->cn, r);
            return;
        }
        cl->info_busy = true;
    }
}

static void fallback_next(cluster_t *cl)
{
    if (cl->fb_i >= cl->fb_n) {
        kcw_connector_status_t *conns = cl->fb_conns;
        size_t n = cl->fb_nconns;
        cl->fb_conns = NULL;
        cl->fb_nconns = 0;
        if (merge_connectors(cl, conns, n) < 0) {
            round_fail(cl, url_of(cl, cl->round_url), 200, "out of memory", true);
            return;
        }
        round_ok(cl, true);
        return;
    }
    int rc = round_send(cl, REQ_POLL_STATUS, connector_path(cl->fb_names[cl->fb_i], "/status", -1));
    if (rc < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot send request: %s", strerror(-rc));
        round_fail(cl, url_of(cl, cl->round_url), 0, msg, true);
    }
}

static void on_fallback_status(cluster_t *cl, const req_t *r, const kcw_http_resp_t *resp)
{
    const char *url = url_of(cl, r->url_idx);
    char msg[400];
    if (resp->status == 200) {
        kcw_connector_status_t *c = &cl->fb_conns[cl->fb_nconns];
        char err[300];
        int rc = kcw_connect_parse_status(resp->body, resp->body_len, c, err, sizeof(err));
        if (rc < 0) {
            snprintf(msg, sizeof(msg), "unreadable status of %s: %s", cl->fb_names[cl->fb_i],
                     rc == -ENOMEM ? "out of memory" : err);
            round_fail(cl, url, resp->status, msg, true);
            return;
        }
        cl->fb_nconns++;
        if (strcmp(c->name, cl->fb_names[cl->fb_i]) != 0) {
            char *k = strdup(cl->fb_names[cl->fb_i]);
            if (k) {
                free(c->name);
                c->name = k;
            }
        }
        int src = round_send(cl, REQ_POLL_INFO, connector_path(c->name, "", -1));
        if (src < 0) {
            snprintf(msg, sizeof(msg), "cannot send request: %s", strerror(-src));
            round_fail(cl, url, 0, msg, true);
        }
        return;
    }
    if (resp->status == 404 || resp->status == 409 || resp->status == 500) {
        /* No status record yet, or a rebalance: unknown yet, not gone (§7.5, §12). */
        cl->fb_i++;
        fallback_next(cl);
        return;
    }
    describe_http_error(resp, msg, sizeof(msg));
    round_fail(cl, url, resp->status, msg, true);
}

static void on_fallback_info(cluster_t *cl, const kcw_http_resp_t *resp)
{
    kcw_connector_status_t *c = &cl->fb_conns[cl->fb_nconns - 1];
    if (resp->status == 200) {
        json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (!root || parse_info_obj(root, "", c, NULL, 0) < 0) {
            c->has_info = false;
            c->n_task_configs = -1;
            c->tasks_max = -1;
        }
        json_decref(root);
    }
    /* Anything else (500/409 while rebalancing, §7.2): info unknown for now. */
    cl->fb_i++;
    fallback_next(cl);
}

static void on_poll_resp(cluster_t *cl, const req_t *r, const kcw_http_resp_t *resp)
{
    const char *url = url_of(cl, r->url_idx);
    if (resp->conn_error) {
        round_failover(cl, r, resp);
        return;
    }
    if (resp->status == 0) {
        /* No HTTP answer, yet not a connection failure (TLS verification,
         * bad URL...): another worker would not help. */
        round_fail_code(cl, url, 0, resp->curl_code, resp->error, cl->round_answered);
        return;
    }
    cl->round_answered = true;
    if (resp->curl_code != 0) {
        round_fail_code(cl, url, resp->status, resp->curl_code, resp->error, true);
        return;
    }
    char msg[400];
    switch (r->kind) {
    case REQ_POLL_VERSION:
        if (resp->status == 200) {
            char *v = parse_server_version(resp);
            if (v) {
                free(cl->status.version);
                cl->status.version = v;
                cl->version_url = r->url_idx;
            }
        } else {
            /* Starting worker (§7.5) or auth trouble: the list call will tell. */
            kcw_log(KCW_LOG_DEBUG, "connect version unknown", "cluster", cl->status.name, "url",
                    url, NULL);
        }
        if (round_send(cl, REQ_POLL_EXPAND, strdup(POLL_PATH)) < 0)
            round_fail(cl, url, 0, "cannot send request", true);
        return;
    case REQ_POLL_EXPAND:
        if (resp->status != 200) {
            describe_http_error(resp, msg, sizeof(msg));
            round_fail(cl, url, resp->status, msg, true);
            return;
        }
        on_expand(cl, r, resp);
        return;
    case REQ_POLL_STATUS:
        on_fallback_status(cl, r, resp);
        return;
    case REQ_POLL_INFO:
        on_fallback_info(cl, resp);
        return;
    default:
        return;
    }
}

/* --- one-off calls ----------------------------------------------------------------- */

static void deliver_error_after(req_t *r, long status, const char *err, int64_t retry_after_ms)
{
    switch (r->kind) {
    case REQ_FETCH_STATUS:
        r->cb.status(status, NULL, err, r->arg);
        break;
    case REQ_FETCH_VERSION:
        r->cb.version(NULL, err, r->arg);
        break;
    case REQ_RESTART:
        r->cb.restart(status, NULL, err, retry_after_ms, r->arg);
        break;
    default:
        break;
    }
}

static void deliver_error(req_t *r, long status, const char *err)
{
    deliver_error_after(r, status, err, -1);
}

/* Nothing left the machine: safe to send even a POST to another worker. */
static bool nothing_sent(int curl_code)
{
    return curl_code == CURLE_COULDNT_CONNECT || curl_code == CURLE_COULDNT_RESOLVE_HOST ||
           curl_code == CURLE_COULDNT_RESOLVE_PROXY;
}

/* Retries r on the next worker; false when it should not or could not. */
static bool call_failover(req_t *r, const kcw_http_resp_t *resp)
{
    cluster_t *cl = r->cl;
    bool eligible = r->kind == REQ_RESTART ? nothing_sent(resp->curl_code) : resp->conn_error;
    if (!eligible || r->tries + 1 >= cl->conf->n_urls)
        return false;
    worker_failed(cl, r->url_idx, resp->error);
    note_worker_down(cl, r->url_idx);
    kcw_log(KCW_LOG_DEBUG, "connect worker failed, trying the next one", "cluster",
            cl->status.name, "url", url_of(cl, r->url_idx), NULL);
    r->tries++;
    r->url_idx = (r->url_idx + 1) % cl->conf->n_urls;
    return req_send(r) == 0;
}

/* Returns true when r was re-sent and must stay alive. */
static bool on_call_resp(req_t *r, const kcw_http_resp_t *resp)
{
    cluster_t *cl = r->cl;
    char msg[400];
    if (resp->curl_code != 0 || resp->status == 0) {
        if (call_failover(r, resp))
            return true;
        if (r->kind == REQ_RESTART && resp->curl_code == CURLE_OPERATION_TIMEDOUT)
            snprintf(msg, sizeof(msg), "%s (the restart may have been applied)", resp->error);
        else
            snprintf(msg, sizeof(msg), "%s", resp->error[0] ? resp->error : "no response");
        deliver_error(r, 0, msg);
        return false;
    }
    switch (r->kind) {
    case REQ_FETCH_VERSION: {
        if (resp->status != 200) {
            describe_http_error(resp, msg, sizeof(msg));
            r->cb.version(NULL, msg, r->arg);
            return false;
        }
        char *v = parse_server_version(resp);
        if (!v) {
            r->cb.version(NULL, "server info without a version", r->arg);
            return false;
        }
        free(cl->status.version);
        cl->status.version = v;
        cl->version_url = r->url_idx;
        r->cb.version(v, NULL, r->arg);
        return false;
    }
    case REQ_FETCH_STATUS:
    case REQ_RESTART: {
        long want = r->kind == REQ_RESTART ? 202 : 200;
        kcw_connector_status_t st;
        memset(&st, 0, sizeof(st));
        if (resp->status == want) {
            char err[300];
            if (kcw_connect_parse_status(resp->body, resp->body_len, &st, err, sizeof(err)) < 0) {
                snprintf(msg, sizeof(msg), "unreadable status body: %s", err);
                deliver_error(r, resp->status, msg);
                return false;
            }
            if (r->kind == REQ_RESTART)
                r->cb.restart(resp->status, &st, NULL, -1, r->arg);
            else
                r->cb.status(resp->status, &st, NULL, r->arg);
            kcw_connector_status_clear(&st);
            return false;
        }
        if (resp->status >= 200 && resp->status < 300) {
            /* 204 from a restart: legacy path or a pre-3.0 worker (§5.5). */
            deliver_error(r, resp->status, NULL);
            return false;
        }
        describe_http_error(resp, msg, sizeof(msg));
        deliver_error_after(r, resp->status, msg, resp->retry_after_ms);
        return false;
    }
    default:
        return false;
    }
}

static void on_http(const kcw_http_resp_t *resp, void *arg)
{
    req_t *r = arg;
    cluster_t *cl = r->cl;
    kcw_connect_t *cn = cl->cn;
    req_unlink(cn, r);
    if (cn->closing) {
        deliver_error(r, 0, "cancelled");
        req_free(cn, r);
        return;
    }
    switch (r->kind) {
    case REQ_POLL_VERSION:
    case REQ_POLL_EXPAND:
    case REQ_POLL_STATUS:
    case REQ_POLL_INFO:
        on_poll_resp(cl, r, resp);
        req_free(cn, r);
        return;
    case REQ_INFO:
        on_info(cl, r, resp);
        req_free(cn, r);
        return;
    default:
        if (!on_call_resp(r, resp))
            req_free(cn, r);
        return;
    }
}

/* --- public client API ----------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    kcw_connect_t *cn = h->data;
    if (--cn->open_handles > 0)
        return;
    for (size_t i = 0; i < cn->n_clusters; i++) {
        cluster_t *cl = &cn->clusters[i];
        kcw_cluster_status_clear(&cl->status);
        kcw_status_index_free(cl->index);
        info_queue_clear(cl);
        fallback_reset(cl);
        free(cl->workers);
    }
    free(cn->clusters);
    void (*on_closed)(void *) = cn->on_closed;
    void *arg = cn->on_closed_arg;
    free(cn);
    if (on_closed)
        on_closed(arg);
}

static void tick(uv_timer_t *t)
{
    cluster_t *cl = t->data;
    if (cl->cn->closing)
        return;
    int rc = round_start(cl);
    if (rc == 1) {
        /* A slow worker must not stack polls of the same cluster. */
        kcw_log(KCW_LOG_DEBUG, "connect poll still in flight, tick skipped", "cluster",
                cl->status.name, NULL);
    } else if (rc < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot send request: %s", strerror(-rc));
        round_fail(cl, url_of(cl, cl->cur_url), 0, msg, cl->status.reachable);
    }
}

kcw_connect_t *kcw_connect_new(uv_loop_t *loop, kcw_http_t *http, const kcw_config_t *cfg,
                               kcw_connect_poll_cb cb, void *arg)
{
    if (!loop || !http || !cfg)
        return NULL;
    for (size_t i = 0; i < cfg->n_clusters; i++)
        if (!cfg->clusters[i].name || cfg->clusters[i].n_urls == 0 || !cfg->clusters[i].urls)
            return NULL;
    kcw_connect_t *cn = calloc(1, sizeof(*cn));
    if (!cn)
        return NULL;
    cn->loop = loop;
    cn->http = http;
    cn->cfg = cfg;
    cn->cb = cb;
    cn->arg = arg;
    cn->n_clusters = cfg->n_clusters;
    cn->clusters = calloc(cfg->n_clusters ? cfg->n_clusters : 1, sizeof(*cn->clusters));
    if (!cn->clusters) {
        free(cn);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_clusters; i++) {
        cluster_t *cl = &cn->clusters[i];
        cl->cn = cn;
        cl->idx = i;
        cl->conf = &cfg->clusters[i];
        for (size_t u = 0; u < cl->conf->n_urls; u++)
            kcw_url_register_secrets(cl->conf->urls[u]);
        cl->version_url = SIZE_MAX;
        cl->status.name = strdup(cl->conf->name);
        cl->workers = calloc(cl->conf->n_urls ? cl->conf->n_urls : 1, sizeof(*cl->workers));
        if (!cl->status.name || !cl->workers) {
            free(cl->status.name);
            free(cl->workers);
            for (size_t j = 0; j < i; j++) {
                free(cn->clusters[j].status.name);
                free(cn->clusters[j].workers);
            }
            free(cn->clusters);
            free(cn);
            return NULL;
        }
    }
    /* Handles join the loop only once nothing else can fail. */
    for (size_t i = 0; i < cn->n_clusters; i++) {
        uv_timer_init(loop, &cn->clusters[i].timer);
        cn->clusters[i].timer.data = &cn->clusters[i];
    }
    uv_idle_init(loop, &cn->idle);
    cn->idle.data = cn;
    cn->open_handles = cn->n_clusters + 1;
    return cn;
}

int kcw_connect_start(kcw_connect_t *cn)
{
    if (!cn)
        return -EINVAL;
    if (cn->closing)
        return -ESHUTDOWN;
    for (size_t i = 0; i < cn->n_clusters; i++) {
        cluster_t *cl = &cn->clusters[i];
        int64_t every =
            cl->conf->poll_interval_ms > 0 ? cl->conf->poll_interval_ms : DEFAULT_POLL_MS;
        int rc = uv_timer_start(&cl->timer, tick, 0, (uint64_t)every);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kcw_connect_poll_once(kcw_connect_t *cn)
{
    if (!cn)
        return -EINVAL;
    if (cn->closing)
        return -ESHUTDOWN;
    int first = 0;
    for (size_t i = 0; i < cn->n_clusters; i++) {
        int rc = round_start(&cn->clusters[i]);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}

size_t kcw_connect_cluster_count(const kcw_connect_t *cn)
{
    return cn ? cn->n_clusters : 0;
}

const kcw_cluster_status_t *kcw_connect_cluster(const kcw_connect_t *cn, size_t i)
{
    if (!cn || i >= cn->n_clusters)
        return NULL;
    return &cn->clusters[i].status;
}

int kcw_connect_cluster_index(const kcw_connect_t *cn, const char *name)
{
    if (!cn || !name)
        return -1;
    for (size_t i = 0; i < cn->n_clusters; i++)
        if (strcmp(cn->clusters[i].status.name, name) == 0)
            return (int)i;
    return -1;
}

static void run_deferred(uv_idle_t *idle)
{
    kcw_connect_t *cn = idle->data;
    uv_idle_stop(idle);
    deferred_t *d = cn->deferred;
    cn->deferred = cn->deferred_tail = NULL;
    while (d) {
        deferred_t *next = d->next;
        if (cn->closing)
            d->cb(NULL, "cancelled", d->arg);
        else
            d->cb(d->version, NULL, d->arg);
        free(d->version);
        free(d);
        d = next;
    }
}

void kcw_connect_close(kcw_connect_t *cn, void (*on_closed)(void *arg), void *arg)
{
    if (!cn || cn->closing)
        return;
    cn->closing = true;
    cn->on_closed = on_closed;
    cn->on_closed_arg = arg;
    /* Cancelled calls report "cancelled" to their callers before we return. */
    while (cn->reqs) {
        req_t *r = cn->reqs;
        if (kcw_http_cancel(cn->http, r) == 0) {
            deliver_error(r, 0, "cancelled");
            req_free(cn, r);
        }
    }
    run_deferred(&cn->idle);
    for (size_t i = 0; i < cn->n_clusters; i++) {
        uv_timer_stop(&cn->clusters[i].timer);
        cn->clusters[i].timer.data = cn;
        uv_close((uv_handle_t *)&cn->clusters[i].timer, handle_closed);
    }
    uv_close((uv_handle_t *)&cn->idle, handle_closed);
}

static cluster_t *cluster_for_call(kcw_connect_t *cn, size_t idx, int *rc)
{
    *rc = 0;
    if (!cn || idx >= cn->n_clusters)
        *rc = -EINVAL;
    else if (cn->closing)
        *rc = -ESHUTDOWN;
    return *rc ? NULL : &cn->clusters[idx];
}

static int call_start(cluster_t *cl, req_t *r)
{
    if (!r)
        return -ENOMEM;
    r->url_idx = cl->cur_url;
    int rc = req_send(r);
    if (rc < 0)
        req_free(cl->cn, r);
    return rc;
}

int kcw_connect_fetch_status(kcw_connect_t *cn, size_t cluster_idx, const char *connector,
                             kcw_connect_status_cb cb, void *arg)
{
    int rc;
    cluster_t *cl = cluster_for_call(cn, cluster_idx, &rc);
    if (!cl)
        return rc;
    if (!connector || !*connector || !cb)
        return -EINVAL;
    req_t *r = req_new(cl, REQ_FETCH_STATUS, "GET", connector_path(connector, "/status", -1));
    if (r) {
        r->cb.status = cb;
        r->arg = arg;
    }
    return call_start(cl, r);
}

int kcw_connect_fetch_version(kcw_connect_t *cn, size_t cluster_idx, kcw_connect_version_cb cb,
                              void *arg)
{
    int rc;
    cluster_t *cl = cluster_for_call(cn, cluster_idx, &rc);
    if (!cl)
        return rc;
    if (!cb)
        return -EINVAL;
    if (cl->version_url == cl->cur_url && cl->status.version) {
        deferred_t *d = calloc(1, sizeof(*d));
        if (!d)
            return -ENOMEM;
        d->cb = cb;
        d->arg = arg;
        d->version = strdup(cl->status.version);
        if (!d->version) {
            free(d);
            return -ENOMEM;
        }
        if (cn->deferred_tail)
            cn->deferred_tail->next = d;
        else
            cn->deferred = d;
        cn->deferred_tail = d;
        return uv_idle_start(&cn->idle, run_deferred);
    }
    req_t *r = req_new(cl, REQ_FETCH_VERSION, "GET", strdup("/"));
    if (r) {
        r->cb.version = cb;
        r->arg = arg;
    }
    return call_start(cl, r);
}

static char *restart_path(const char *connector, int task, kcw_restart_kind_t kind)
{
    switch (kind) {
    case KCW_RESTART_FAILED_KIP745:
        return connector_path(connector, "/restart?includeTasks=true&onlyFailed=true", -1);
    case KCW_RESTART_CONNECTOR:
        return connector_path(connector, "/restart", -1);
    case KCW_RESTART_TASK:
        return task >= 0 ? connector_path(connector, "/restart", task) : NULL;
    }
    return NULL;
}

char *kcw_connect_restart_describe(const kcw_connect_t *cn, size_t cluster_idx,
                                   const char *connector, int task, kcw_restart_kind_t kind,
                                   char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    buf[0] = '\0';
    if (!cn || cluster_idx >= cn->n_clusters || !connector)
        return buf;
    const cluster_t *cl = &cn->clusters[cluster_idx];
    char *path = restart_path(connector, task, kind);
    char *full = path ? kcw_url_join(url_of(cl, cl->cur_url), path) : NULL;
    char *shown = full ? kcw_url_redact(full) : NULL;
    if (shown)
        snprintf(buf, n, "POST %s", shown);
    free(shown);
    free(full);
    free(path);
    return buf;
}

int kcw_connect_restart(kcw_connect_t *cn, size_t cluster_idx, const char *connector, int task,
                        kcw_restart_kind_t kind, kcw_connect_restart_cb cb, void *arg)
{
    int rc;
    cluster_t *cl = cluster_for_call(cn, cluster_idx, &rc);
    if (!cl)
        return rc;
    if (!connector || !*connector || !cb || (kind == KCW_RESTART_TASK && task < 0))
        return -EINVAL;
    req_t *r = req_new(cl, REQ_RESTART, "POST", restart_path(connector, task, kind));
    if (r) {
        r->cb.restart = cb;
        r->arg = arg;
    }
    return call_start(cl, r);
}
