/* tquery.c: cached instant queries for rule templates (see tquery.h). */
#include "kcwatch/tquery.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/prom.h"

typedef struct entry {
    char *expr;
    kcw_template_sample_t *samples;
    size_t n;
    char *error;        /* the last answer was this error */
    bool answered;      /* samples or error hold an answer */
    bool in_flight;
    int64_t fetched_ms; /* when the answer arrived */
    int64_t used_ms;    /* last asked for */
    struct kcw_tquery *owner;
} entry_t;

struct kcw_tquery {
    kcw_prom_t *prom;
    int64_t ttl_ms;
    int64_t (*now_ms)(void);
    entry_t *entries[KCW_TQUERY_MAX_ENTRIES];
    size_t n;
    size_t in_flight;
};

static void samples_free(kcw_template_sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kcw_labels_clear(&s[i].labels);
    free(s);
}

static void entry_free(entry_t *e)
{
    free(e->expr);
    samples_free(e->samples, e->n);
    free(e->error);
    free(e);
}

kcw_tquery_t *kcw_tquery_new(kcw_http_t *http, const kcw_prometheus_conf_t *conf, int64_t ttl_ms,
                             int64_t (*now_ms)(void))
{
    if (!now_ms)
        return NULL;
    kcw_tquery_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->prom = kcw_prom_new(http, conf);
    if (!q->prom) {
        free(q);
        return NULL;
    }
    q->ttl_ms = ttl_ms > 1000 ? ttl_ms : 1000;
    q->now_ms = now_ms;
    return q;
}

/* A query's answer: the entry keeps it (samples moved out of result). An
 * entry whose owner is being freed only counts down. */
static void on_answer(kcw_prom_result_t *result, const kcw_prom_error_t *error, void *arg)
{
    entry_t *e = arg;
    kcw_tquery_t *q = e->owner;
    e->in_flight = false;
    q->in_flight--;
    if (error && error->kind == KCW_PROM_ERR_CANCELLED) {
        kcw_prom_result_free(result);
        return;
    }
    free(e->error);
    e->error = NULL;
    if (result && result->type == KCW_PROM_SCALAR) {
        /* Prometheus' template query of a scalar: one sample without labels. */
        kcw_template_sample_t *s = calloc(1, sizeof(*s));
        if (s) {
            s->value = result->scalar;
            samples_free(e->samples, e->n);
            e->samples = s;
            e->n = 1;
        }
    } else if (result && result->n > KCW_TEMPLATE_MAX_SAMPLES) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%zu samples, more than %d", result->n,
                 KCW_TEMPLATE_MAX_SAMPLES);
        e->error = strdup(msg);
    } else if (result) {
        kcw_template_sample_t *s = calloc(result->n ? result->n : 1, sizeof(*s));
        if (s) {
            for (size_t i = 0; i < result->n; i++) {
                s[i].labels = result->samples[i].metric; /* moved */
                memset(&result->samples[i].metric, 0, sizeof(result->samples[i].metric));
                s[i].value = result->samples[i].value;
            }
            samples_free(e->samples, e->n);
            e->samples = s;
            e->n = result->n;
        }
    } else {
        e->error = strdup(error->msg);
    }
    e->answered = true;
    e->fetched_ms = q->now_ms();
    kcw_prom_result_free(result);
}

static void drop_unused(kcw_tquery_t *q, int64_t now)
{
    for (size_t i = 0; i < q->n;) {
        entry_t *e = q->entries[i];
        if (!e->in_flight && now - e->used_ms > 10 * q->ttl_ms) {
            entry_free(e);
            q->entries[i] = q->entries[--q->n];
        } else {
            i++;
        }
    }
}

int kcw_tquery_query(void *arg, const char *expr, const kcw_template_sample_t **samples, size_t *n,
                     char *err, size_t errlen)
{
    kcw_tquery_t *q = arg;
    *samples = NULL;
    *n = 0;
    int64_t now = q->now_ms();
    entry_t *e = NULL;
    for (size_t i = 0; i < q->n && !e; i++)
        if (strcmp(q->entries[i]->expr, expr) == 0)
            e = q->entries[i];
    if (!e) {
        drop_unused(q, now);
        if (q->n >= KCW_TQUERY_MAX_ENTRIES) {
            snprintf(err, errlen, "more than %d distinct template queries",
                     KCW_TQUERY_MAX_ENTRIES);
            return -E2BIG;
        }
        e = calloc(1, sizeof(*e));
        if (!e || !(e->expr = strdup(expr))) {
            free(e);
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        e->owner = q;
        q->entries[q->n++] = e;
    }
    e->used_ms = now;
    bool fresh = e->answered && now - e->fetched_ms < q->ttl_ms;
    if (!fresh && !e->in_flight) {
        int rc = kcw_prom_query(q->prom, expr, now, on_answer, e);
        if (rc == 0) {
            e->in_flight = true;
            q->in_flight++;
        }
    }
    if (!e->answered) {
        snprintf(err, errlen, "query pending: Prometheus' answer is used from the next "
                              "evaluation on");
        return -EAGAIN;
    }
    if (e->error) {
        snprintf(err, errlen, "%s", e->error);
        return -EIO;
    }
    *samples = e->samples;
    *n = e->n;
    return 0;
}

size_t kcw_tquery_pending(const kcw_tquery_t *q)
{
    return q ? q->in_flight : 0;
}

void kcw_tquery_free(kcw_tquery_t *q)
{
    if (!q)
        return;
    kcw_prom_free(q->prom); /* answers in flight come back cancelled */
    for (size_t i = 0; i < q->n; i++)
        entry_free(q->entries[i]);
    free(q);
}
