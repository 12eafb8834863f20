/* alertlog.c: alert transition log lines, summarised in a storm (see
 * alertlog.h). */
#include "kcwatch/alertlog.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/labels.h"
#include "kcwatch/log.h"

#define MAX_NAMES 16   /* alertnames counted one by one; the rest as "other" */
#define MAX_EXAMPLES 5 /* summarised alerts named in the summary */
#define NAME_LEN 128
#define EXAMPLE_LEN 160

enum { W_FIRING, W_RESOLVED, W_PENDING, N_WHAT };

static const char *const what_word[N_WHAT] = {"firing", "resolved", "pending"};

typedef struct name_count {
    char name[NAME_LEN];
    size_t n[N_WHAT];
} name_count_t;

struct kcw_alertlog {
    size_t detail_max;
    int64_t batch_ms; /* now_ms of the evaluation being counted */
    bool open;
    size_t total, logged;
    name_count_t names[MAX_NAMES];
    size_t n_names;
    size_t other[N_WHAT]; /* past MAX_NAMES */
    bool any_firing;
    char examples[MAX_EXAMPLES][EXAMPLE_LEN];
    size_t n_examples;
};

kcw_alertlog_t *kcw_alertlog_new(size_t detail_max)
{
    kcw_alertlog_t *l = calloc(1, sizeof(*l));
    if (l)
        l->detail_max = detail_max ? detail_max : KCW_ALERTLOG_DETAIL_MAX;
    return l;
}

void kcw_alertlog_free(kcw_alertlog_t *l)
{
    free(l);
}

static const char *label(const kcw_alert_t *a, const char *name)
{
    const char *v = kcw_labels_get(&a->labels, name);
    return v ? v : "";
}

static int what_index(const char *what)
{
    if (strcmp(what, "alert firing") == 0)
        return W_FIRING;
    if (strcmp(what, "alert resolved") == 0)
        return W_RESOLVED;
    return W_PENDING;
}

/* One line per transition. A label the alert lacks (no connect fields on a
 * PromQL-only alert) is left out rather than printed empty: the present
 * pairs are packed first and the first NULL key ends the list. */
static void log_one(const kcw_alert_t *a, const char *what, int64_t now_ms)
{
    static const char *const names[] = {"alertname", "cluster",   "connector",
                                        "task",      "state",     "worker_id"};
    enum { N_NAMES = sizeof(names) / sizeof(names[0]) };
    const char *kv[2 * (N_NAMES + 1)] = {0};
    size_t n = 0;
    for (size_t i = 0; i < N_NAMES; i++) {
        const char *v = label(a, names[i]);
        if (*v) {
            kv[n++] = names[i];
            kv[n++] = v;
        }
    }
    char ms[24];
    kv[n++] = KCW_LOG_TYPE_INT "eval_ms";
    kv[n++] = kcw_log_fmt_int(ms, sizeof ms, now_ms);
    kcw_log(a->state == KCW_ALERT_FIRING ? KCW_LOG_WARN : KCW_LOG_INFO, what, kv[0], kv[1], kv[2],
            kv[3], kv[4], kv[5], kv[6], kv[7], kv[8], kv[9], kv[10], kv[11], kv[12], kv[13],
            NULL);
}

/* "cluster/connector/task" of a connect alert, else its alertname. */
static void example_of(const kcw_alert_t *a, char *buf, size_t n)
{
    const char *cluster = label(a, "cluster"), *connector = label(a, "connector"),
               *task = label(a, "task");
    if (!*connector)
        snprintf(buf, n, "%s%s%s", label(a, "alertname"), *cluster ? "/" : "", cluster);
    else
        snprintf(buf, n, "%s/%s%s%s", cluster, connector, *task ? "/" : "", task);
}

static void count(kcw_alertlog_t *l, const kcw_alert_t *a, int w)
{
    const char *name = label(a, "alertname");
    size_t i = 0;
    while (i < l->n_names && strncmp(l->names[i].name, name, NAME_LEN - 1) != 0)
        i++;
    if (i == l->n_names && l->n_names < MAX_NAMES)
        snprintf(l->names[l->n_names++].name, NAME_LEN, "%s", name);
    if (i < l->n_names)
        l->names[i].n[w]++;
    else
        l->other[w]++;
    l->any_firing |= w == W_FIRING;
    if (l->n_examples < MAX_EXAMPLES)
        example_of(a, l->examples[l->n_examples++], EXAMPLE_LEN);
}

/* "firing 990, resolved 2" of counts n into buf at *len. */
static void append_counts(char *buf, size_t cap, size_t *len, const size_t n[N_WHAT])
{
    bool first = true;
    for (int w = 0; w < N_WHAT; w++) {
        if (!n[w] || *len >= cap)
            continue;
        int k = snprintf(buf + *len, cap - *len, "%s%zu %s", first ? "" : ", ", n[w],
                         what_word[w]);
        if (k > 0)
            *len += (size_t)k;
        first = false;
    }
}

static void reset(kcw_alertlog_t *l)
{
    size_t detail_max = l->detail_max;
    memset(l, 0, sizeof(*l));
    l->detail_max = detail_max;
}

void kcw_alertlog_flush(kcw_alertlog_t *l)
{
    if (!l || !l->open)
        return;
    size_t summarised = l->total - l->logged;
    if (summarised > 0) {
        char by[MAX_NAMES * (NAME_LEN + 48) + 64], ex[MAX_EXAMPLES * (EXAMPLE_LEN + 2) + 8];
        size_t len = 0;
        by[0] = ex[0] = '\0';
        for (size_t i = 0; i <= l->n_names && len < sizeof(by); i++) {
            const size_t *n = i < l->n_names ? l->names[i].n : l->other;
            if (i == l->n_names && !n[W_FIRING] && !n[W_RESOLVED] && !n[W_PENDING])
                break;
            int k = snprintf(by + len, sizeof(by) - len, "%s%s: ", len ? "; " : "",
                             i < l->n_names ? l->names[i].name : "(other alertnames)");
            if (k > 0)
                len += (size_t)k;
            append_counts(by, sizeof(by), &len, n);
        }
        len = 0;
        for (size_t i = 0; i < l->n_examples && len < sizeof(ex); i++) {
            int k = snprintf(ex + len, sizeof(ex) - len, "%s%s", i ? ", " : "", l->examples[i]);
            if (k > 0)
                len += (size_t)k;
        }
        if (summarised > l->n_examples && len + 5 < sizeof(ex))
            memcpy(ex + len, ", ...", 6);
        kcw_log(l->any_firing ? KCW_LOG_WARN : KCW_LOG_INFO, "alert storm: transitions summarised",
                KCW_LOG_INT("transitions", l->total), KCW_LOG_INT("logged", l->logged),
                KCW_LOG_INT("summarised", summarised), "by_alertname", by, "examples", ex,
                KCW_LOG_INT("eval_ms", l->batch_ms), NULL);
    }
    reset(l);
}

void kcw_alertlog_note(kcw_alertlog_t *l, const kcw_alert_t *a, const char *what, int64_t now_ms)
{
    if (!a || !what)
        return;
    if (!l) { /* no summariser (out of memory): every line, as before */
        log_one(a, what, now_ms);
        return;
    }
    if (l->open && l->batch_ms != now_ms)
        kcw_alertlog_flush(l);
    l->open = true;
    l->batch_ms = now_ms;
    l->total++;
    if (l->logged < l->detail_max) {
        l->logged++;
        log_one(a, what, now_ms);
        return;
    }
    count(l, a, what_index(what));
}
