/* promql_check.c: rule expressions checked by Prometheus' parser (see
 * promql_check.h). */
#include "kcwatch/promql_check.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/log.h"
#include "kcwatch/prom.h"

bool kcw_promql_error_position(const char *msg, int *line, int *col, const char **rest)
{
    /* The position is the first "DIGITS:DIGITS: " in the text; what comes
     * before it is Prometheus' wrapping ("invalid parameter \"query\": "). */
    for (const char *p = msg; p && *p; p++) {
        if (*p < '0' || *p > '9' || (p > msg && p[-1] >= '0' && p[-1] <= '9'))
            continue;
        char *end;
        long l = strtol(p, &end, 10);
        if (*end != ':' || end[1] < '0' || end[1] > '9')
            continue;
        char *end2;
        long c = strtol(end + 1, &end2, 10);
        if (end2[0] != ':' || end2[1] != ' ' || l < 1 || c < 1 || l > 1000000 || c > 1000000)
            continue;
        *line = (int)l;
        *col = (int)c;
        *rest = end2 + 2;
        return true;
    }
    return false;
}

void kcw_promql_reject(const kcw_rule_t *r, const char *msg, kcw_errors_t *errs)
{
    int line, col, fline = 0, fcol = 0;
    const char *rest;
    if (kcw_promql_error_position(msg, &line, &col, &rest))
        kcw_src_map_pos(r->expr_map, r->n_expr_map, r->expr, line, col, &fline, &fcol);
    else
        rest = msg;
    if (fline == 0) {
        fline = r->expr_line;
        fcol = r->expr_col;
    }
    kcw_errors_add(errs, r->file, fline, fcol, "alert %s: PromQL rejected by Prometheus: %s",
                   r->alert ? r->alert : "?", rest);
}

static bool needs_check(const kcw_rule_t *r)
{
    return r->expr && !r->expr_formatted && !r->expr_error;
}

size_t kcw_promql_unverified(const kcw_ruleset_t *rs)
{
    size_t n = 0;
    for (size_t g = 0; rs && g < rs->n_groups; g++)
        for (size_t i = 0; i < rs->groups[g].n_rules; i++)
            n += needs_check(&rs->groups[g].rules[i]);
    return n;
}

static uint64_t expr_hash(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

size_t kcw_promql_carry(kcw_ruleset_t *to, const kcw_ruleset_t *from)
{
    /* from's accepted exprs in an open-addressed table at most half full */
    size_t n = 0;
    for (size_t g = 0; from && g < from->n_groups; g++)
        n += from->groups[g].n_rules;
    if (n == 0 || kcw_promql_unverified(to) == 0)
        return 0;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    const kcw_rule_t **slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return (size_t)-1;
    for (size_t g = 0; g < from->n_groups; g++)
        for (size_t i = 0; i < from->groups[g].n_rules; i++) {
            const kcw_rule_t *r = &from->groups[g].rules[i];
            if (!r->expr || !r->expr_formatted)
                continue;
            size_t k = (size_t)expr_hash(r->expr) & (cap - 1);
            while (slot[k] && strcmp(slot[k]->expr, r->expr) != 0)
                k = (k + 1) & (cap - 1);
            slot[k] = r;
        }
    size_t carried = 0;
    bool nomem = false;
    for (size_t g = 0; g < to->n_groups; g++)
        for (size_t i = 0; i < to->groups[g].n_rules; i++) {
            kcw_rule_t *r = &to->groups[g].rules[i];
            if (!needs_check(r))
                continue;
            size_t k = (size_t)expr_hash(r->expr) & (cap - 1);
            while (slot[k] && strcmp(slot[k]->expr, r->expr) != 0)
                k = (k + 1) & (cap - 1);
            if (!slot[k])
                continue;
            if (!(r->expr_formatted = strdup(slot[k]->expr_formatted)))
                nomem = true;
            else
                carried++;
        }
    free(slot);
    return nomem ? (size_t)-1 : carried;
}

/* --- one round -------------------------------------------------------------- */

typedef struct pq_req {
    kcw_promql_check_t *chk;
    kcw_rule_t *rule;
    char *rejection; /* Prometheus' words when it refused the expr this round */
} pq_req_t;

struct kcw_promql_check {
    kcw_prom_t *prom;
    pq_req_t *reqs; /* one per rule to check, in rule order */
    size_t n_reqs, next, in_flight, answered;
    bool stop;      /* Prometheus cannot be asked: send nothing more */
    bool freeing;
    bool done;
    kcw_errors_t errs;
    size_t rejected;
    char reason[1200];
    kcw_promql_check_cb cb;
    void *arg;
};

static void send_more(kcw_promql_check_t *chk);

static void finish_if_done(kcw_promql_check_t *chk)
{
    if (chk->in_flight > 0 || (!chk->stop && chk->next < chk->n_reqs) || chk->done)
        return;
    chk->done = true;
    /* Rejections in rule order, whatever order the answers came in. */
    for (size_t i = 0; i < chk->n_reqs; i++)
        if (chk->reqs[i].rejection)
            kcw_promql_reject(chk->reqs[i].rule, chk->reqs[i].rejection, &chk->errs);
    chk->cb(chk, chk->arg); /* may free chk */
}

static void on_format(const char *formatted, const kcw_prom_error_t *error, void *arg)
{
    pq_req_t *rq = arg;
    kcw_promql_check_t *chk = rq->chk;
    chk->in_flight--;
    if (chk->freeing)
        return;
    chk->answered++;
    if (formatted) {
        rq->rule->expr_formatted = strdup(formatted);
    } else if (error->kind == KCW_PROM_ERR_QUERY && strcmp(error->type, "bad_data") == 0) {
        kcw_errors_t one = {0};
        kcw_promql_reject(rq->rule, error->msg, &one);
        if (one.n > 0 && one.n <= one.cap) {
            char line[1200];
            kcw_error_format(&one.items[0], line, sizeof(line));
            rq->rule->expr_error = strdup(line);
        }
        kcw_errors_clear(&one);
        rq->rejection = strdup(error->msg);
        chk->rejected++;
    } else if (error->kind != KCW_PROM_ERR_CANCELLED) {
        if (!chk->stop) {
            if (error->http_status == 404)
                snprintf(chk->reason, sizeof(chk->reason),
                         "Prometheus has no /api/v1/format_query (it needs 2.38 or later): %s",
                         error->msg);
            else
                snprintf(chk->reason, sizeof(chk->reason), "%s", error->msg);
        }
        chk->stop = true;
    }
    send_more(chk);
    finish_if_done(chk);
}

static void send_more(kcw_promql_check_t *chk)
{
    while (!chk->stop && chk->next < chk->n_reqs && chk->in_flight < KCW_PROMQL_CHECK_PARALLEL) {
        pq_req_t *rq = &chk->reqs[chk->next++];
        int rc = kcw_prom_format(chk->prom, rq->rule->expr, on_format, rq);
        if (rc < 0) {
            snprintf(chk->reason, sizeof(chk->reason), "cannot send the request: %s",
                     strerror(-rc));
            chk->stop = true;
            break;
        }
        chk->in_flight++;
    }
}

kcw_promql_check_t *kcw_promql_check_start(kcw_http_t *http, const kcw_prometheus_conf_t *conf,
                                           kcw_ruleset_t *rs, kcw_promql_check_cb cb, void *arg)
{
    if (!http || !conf || !cb)
        return NULL;
    kcw_promql_check_t *chk = calloc(1, sizeof(*chk));
    if (!chk)
        return NULL;
    chk->cb = cb;
    chk->arg = arg;
    chk->prom = kcw_prom_new(http, conf);
    size_t n = kcw_promql_unverified(rs);
    chk->reqs = calloc(n ? n : 1, sizeof(*chk->reqs));
    if (!chk->prom || !chk->reqs) {
        kcw_prom_free(chk->prom);
        free(chk->reqs);
        free(chk);
        return NULL;
    }
    for (size_t g = 0; g < rs->n_groups; g++)
        for (size_t i = 0; i < rs->groups[g].n_rules; i++)
            if (needs_check(&rs->groups[g].rules[i]))
                chk->reqs[chk->n_reqs++] = (pq_req_t){.chk = chk, .rule = &rs->groups[g].rules[i]};
    send_more(chk);
    if (chk->in_flight == 0) {
        /* Nothing went out: the round is over already (cb will not run). */
        if (!chk->reason[0] && chk->n_reqs > 0)
            snprintf(chk->reason, sizeof(chk->reason), "no request could be sent");
        chk->stop = true;
    }
    return chk;
}

bool kcw_promql_check_done(const kcw_promql_check_t *chk)
{
    return chk->done || (chk->in_flight == 0 && (chk->stop || chk->next >= chk->n_reqs));
}

size_t kcw_promql_check_rejected(const kcw_promql_check_t *chk)
{
    return chk ? chk->rejected : 0;
}

const kcw_errors_t *kcw_promql_check_errors(const kcw_promql_check_t *chk)
{
    return &chk->errs;
}

size_t kcw_promql_check_unverified(const kcw_promql_check_t *chk)
{
    size_t n = 0;
    for (size_t i = 0; chk && i < chk->n_reqs; i++)
        n += needs_check(chk->reqs[i].rule);
    return n;
}

const char *kcw_promql_check_reason(const kcw_promql_check_t *chk)
{
    return chk && chk->reason[0] ? chk->reason : "not asked";
}

void kcw_promql_check_free(kcw_promql_check_t *chk)
{
    if (!chk || chk->freeing)
        return;
    chk->freeing = true;
    kcw_prom_free(chk->prom); /* in-flight answers come back cancelled, ignored */
    kcw_errors_clear(&chk->errs);
    for (size_t i = 0; i < chk->n_reqs; i++)
        free(chk->reqs[i].rejection);
    free(chk->reqs);
    free(chk);
}


/* --- a blocking round for kcwatch check ---------------------------------------- */

static void on_run_done(kcw_promql_check_t *chk, void *arg)
{
    (void)chk;
    *(bool *)arg = true;
}

int kcw_promql_check_run(const kcw_prometheus_conf_t *conf, kcw_ruleset_t *rs,
                         kcw_promql_check_t **out)
{
    *out = NULL;
    if (!conf || !conf->url || !*conf->url)
        return -EINVAL;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return -ENOMEM;
    kcw_http_t *http = kcw_http_new(&loop);
    bool finished = false;
    kcw_promql_check_t *chk = http ? kcw_promql_check_start(http, conf, rs, on_run_done, &finished)
                                   : NULL;
    /* Each request carries the client's timeout, so the loop ends. */
    while (chk && !finished && !kcw_promql_check_done(chk))
        if (uv_run(&loop, UV_RUN_ONCE) == 0 && !kcw_promql_check_done(chk))
            break;
    if (chk) {
        kcw_prom_free(chk->prom); /* nothing in flight any more */
        chk->prom = NULL;
    }
    if (http)
        kcw_http_close(http, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (!chk)
        return -ENOMEM;
    *out = chk;
    return 0;
}

/* --- the daemon's verifier ------------------------------------------------------- */

struct kcw_promql_verifier {
    uv_timer_t timer;
    kcw_http_t *http;
    kcw_prometheus_conf_t conf; /* shallow: points into the generation's config */
    kcw_ruleset_t *rs;
    kcw_promql_check_t *chk;
    uint64_t backoff_ms;
    bool paused, paused_waiting; /* paused waiting out a back-off (not asking) */
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void verifier_round(uv_timer_t *t);

static void on_verifier_done(kcw_promql_check_t *chk, void *arg)
{
    kcw_promql_verifier_t *v = arg;
    const kcw_errors_t *errs = kcw_promql_check_errors(chk);
    char line[1200];
    for (size_t i = 0; i < errs->n && i < errs->cap; i++) {
        kcw_error_format(&errs->items[i], line, sizeof(line));
        kcw_log(KCW_LOG_ERROR, "rule expression rejected by Prometheus", "error", line, NULL);
    }
    size_t left = kcw_promql_check_unverified(chk);
    char count[32];
    snprintf(count, sizeof(count), "%zu", left);
    if (left > 0) {
        char retry[32];
        snprintf(retry, sizeof(retry), "%llu", (unsigned long long)(v->backoff_ms / 1000));
        kcw_log(KCW_LOG_WARN, "PromQL not verified: Prometheus cannot be asked; retrying", "rules",
                count, "reason", kcw_promql_check_reason(chk), "retry_in_s", retry, NULL);
    }
    kcw_promql_check_free(chk);
    v->chk = NULL;
    if (left > 0) {
        uv_timer_start(&v->timer, verifier_round, v->backoff_ms, 0);
        v->backoff_ms *= 2;
        if (v->backoff_ms > KCW_PROMQL_RETRY_MAX_MS)
            v->backoff_ms = KCW_PROMQL_RETRY_MAX_MS;
    } else {
        kcw_log(KCW_LOG_INFO, "PromQL of every rule checked by Prometheus", NULL);
    }
}

static void verifier_round(uv_timer_t *t)
{
    kcw_promql_verifier_t *v = t->data;
    v->chk = kcw_promql_check_start(v->http, &v->conf, v->rs, on_verifier_done, v);
    if (!v->chk) {
        uv_timer_start(&v->timer, verifier_round, v->backoff_ms, 0);
        return;
    }
    if (kcw_promql_check_done(v->chk) && !v->chk->done) {
        /* Nothing went out: finish the round now (we are on the loop). */
        v->chk->done = true;
        on_verifier_done(v->chk, v);
    }
}

kcw_promql_verifier_t *kcw_promql_verifier_new(uv_loop_t *loop, kcw_http_t *http,
                                               const kcw_prometheus_conf_t *conf,
                                               kcw_ruleset_t *rs)
{
    if (!loop || !http || !conf || !conf->url || !*conf->url || kcw_promql_unverified(rs) == 0)
        return NULL;
    kcw_promql_verifier_t *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->http = http;
    v->conf = *conf;
    v->rs = rs;
    v->backoff_ms = KCW_PROMQL_RETRY_MIN_MS;
    uv_timer_init(loop, &v->timer);
    v->timer.data = v;
    uv_timer_start(&v->timer, verifier_round, 0, 0);
    return v;
}

void kcw_promql_verifier_pause(kcw_promql_verifier_t *v)
{
    if (!v || v->paused)
        return;
    v->paused = true;
    v->paused_waiting = !v->chk && uv_is_active((uv_handle_t *)&v->timer);
    /* Answers already in are kept in the rules; what is in flight is
     * dropped and asked again on resume. */
    kcw_promql_check_free(v->chk);
    v->chk = NULL;
    uv_timer_stop(&v->timer);
}

void kcw_promql_verifier_resume(kcw_promql_verifier_t *v)
{
    if (!v || !v->paused)
        return;
    v->paused = false;
    if (kcw_promql_unverified(v->rs) > 0)
        uv_timer_start(&v->timer, verifier_round, v->paused_waiting ? v->backoff_ms : 0, 0);
}

static void on_verifier_timer_closed(uv_handle_t *h)
{
    kcw_promql_verifier_t *v = h->data;
    void (*cb)(void *) = v->on_closed;
    void *arg = v->closed_arg;
    free(v);
    if (cb)
        cb(arg);
}

void kcw_promql_verifier_close(kcw_promql_verifier_t *v, void (*on_closed)(void *arg), void *arg)
{
    if (!v)
        return;
    kcw_promql_check_free(v->chk);
    v->chk = NULL;
    v->on_closed = on_closed;
    v->closed_arg = arg;
    uv_timer_stop(&v->timer);
    uv_close((uv_handle_t *)&v->timer, on_verifier_timer_closed);
}
