/* test_notify.c: grouping and dedup on a clock the test owns (a sink captures
 * the notifications), the log receiver, back-off arithmetic, and delivery on
 * a real loop against an in-process libmicrohttpd server: retry on 500,
 * Retry-After on 429, drop on 400, the bounded queue, a failing group that
 * does not hold back the others, the max age; and with a state store: the
 * outbox written before the first send and kept over a close, the
 * notification log restored after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/http_client.h"
#include "kcwatch/log.h"
#include "kcwatch/notify.h"
#include "kcwatch/store.h"


#define WAIT_MS 10000
#define INTERVAL_MS 60000
#define REPEAT_MS 300000
#define MAX_SENT 64
#define MAX_ALERTS 80

typedef struct sent {
    char receiver[32];
    char key[256];
    size_t n, firing, resolved;
    uint64_t fp[MAX_ALERTS];
    int64_t resolved_at[MAX_ALERTS];
} sent_t;

typedef struct fx {
    uv_loop_t loop;
    kcw_config_t cfg;
    kcw_receiver_conf_t rcv;
    char *group_by[4];
    kcw_notifier_t *n;
    kcw_alert_t al[MAX_ALERTS];
    sent_t sent[MAX_SENT];
    size_t n_sent;
    int events_ok, events_fail;
    long last_status;
    char last_detail[256];
    bool closed;
} fx_t;

static char name_ops[] = "ops";
static char name_alertname[] = "alertname";
static char name_connector[] = "connector";
static char name_cluster[] = "cluster";
static char name_all[] = "...";
static char root_id[] = "0";
static char root_key[] = "{}";

/* What kcw_route_finish fills in for a config's root route (the fixture's
 * strings are static, so the route is set up by hand). */
static void route_ready(kcw_route_t *r)
{
    r->id = root_id;
    r->key = root_key;
    r->group_by_all = false;
    for (size_t i = 0; i < r->n_group_by; i++)
        r->group_by_all = r->group_by_all || strcmp(r->group_by[i], "...") == 0;
}

static void sink(const char *receiver, const char *group_key, const kcw_alert_t *const *alerts,
                 size_t n_alerts, void *arg)
{
    fx_t *f = arg;
    assert_true(f->n_sent < MAX_SENT);
    assert_true(n_alerts <= MAX_ALERTS);
    sent_t *s = &f->sent[f->n_sent++];
    memset(s, 0, sizeof(*s));
    snprintf(s->receiver, sizeof(s->receiver), "%s", receiver);
    snprintf(s->key, sizeof(s->key), "%s", group_key);
    s->n = n_alerts;
    for (size_t i = 0; i < n_alerts; i++) {
        s->fp[i] = alerts[i]->fingerprint;
        s->resolved_at[i] = alerts[i]->resolved_at_ms;
        if (alerts[i]->state == KCW_ALERT_FIRING)
            s->firing++;
        else
            s->resolved++;
    }
}

static void on_event(const char *receiver, const char *group_key, bool ok, long status,
                     const char *detail, void *arg)
{
    fx_t *f = arg;
    (void)receiver;
    (void)group_key;
    if (ok)
        f->events_ok++;
    else
        f->events_fail++;
    f->last_status = status;
    snprintf(f->last_detail, sizeof(f->last_detail), "%s", detail ? detail : "");
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->rcv.name = name_ops;
    f->rcv.kind = KCW_RECEIVER_WEBHOOK;
    f->rcv.send_resolved = true;
    f->rcv.timeout_ms = 5000;
    f->cfg.receivers = &f->rcv;
    f->cfg.n_receivers = 1;
    f->cfg.route.receiver = name_ops;
    f->group_by[0] = name_alertname;
    f->cfg.route.group_by = f->group_by;
    f->cfg.route.n_group_by = 1;
    f->cfg.route.group_wait_ms = WAIT_MS;
    f->cfg.route.group_interval_ms = INTERVAL_MS;
    f->cfg.route.repeat_interval_ms = REPEAT_MS;
    *state = f;
    return 0;
}

/* Creates the notifier with the sink (pure tests). */
static kcw_notifier_t *start(fx_t *f)
{
    route_ready(&f->cfg.route);
    f->n = kcw_notifier_new(&f->loop, NULL, &f->cfg, on_event, f);
    assert_non_null(f->n);
    kcw_notifier_set_sink(f->n, sink, f);
    return f->n;
}

static void on_closed(void *arg)
{
    ((fx_t *)arg)->closed = true;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->n) {
        kcw_notifier_close(f->n, on_closed, f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->closed);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < MAX_ALERTS; i++) {
        kcw_labels_clear(&f->al[i].labels);
        kcw_labels_clear(&f->al[i].annotations);
    }
    free(f);
    kcw_log_reset();
    return 0;
}

/* al[i] := an alert alertname/connector, firing since t. */
static kcw_alert_t *fire(fx_t *f, size_t i, const char *alertname, const char *connector, int64_t t)
{
    kcw_alert_t *a = &f->al[i];
    kcw_labels_clear(&a->labels);
    kcw_labels_clear(&a->annotations);
    memset(a, 0, sizeof(*a));
    assert_int_equal(kcw_labels_set(&a->labels, "alertname", alertname), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "cluster", "c1"), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "connector", connector), 0);
    assert_int_equal(kcw_labels_set(&a->annotations, "summary", "it broke"), 0);
    a->fingerprint = kcw_labels_fingerprint(&a->labels);
    a->state = KCW_ALERT_FIRING;
    a->active_at_ms = t;
    a->fired_at_ms = t;
    a->last_eval_ms = t;
    return a;
}

static void resolve(fx_t *f, size_t i, int64_t t)
{
    f->al[i].state = KCW_ALERT_INACTIVE;
    f->al[i].resolved_at_ms = t;
}

/* update() with the alerts at the given indexes (-1 ends the list). */
static void update(fx_t *f, int64_t now, ...)
{
    const kcw_alert_t *list[MAX_ALERTS];
    size_t n = 0;
    va_list ap;
    va_start(ap, now);
    for (int i; (i = va_arg(ap, int)) >= 0;)
        list[n++] = &f->al[i];
    va_end(ap);
    kcw_notifier_update(f->n, list, n, now);
}

static bool sent_has(const sent_t *s, uint64_t fp)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->fp[i] == fp)
            return true;
    return false;
}

static void test_group_wait(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 0), 0);
    assert_int_equal(kcw_notifier_next_due(f->n), WAIT_MS);
    update(f, 5000, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS - 1), 0);
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    assert_int_equal(f->n_sent, 1);
    assert_string_equal(f->sent[0].receiver, "ops");
    assert_string_equal(f->sent[0].key, "{}:{alertname=\"ConnectorFailed\"}");
    assert_int_equal(f->sent[0].n, 1);
    assert_int_equal(f->sent[0].firing, 1);
    assert_int_equal(kcw_notifier_next_due(f->n), WAIT_MS + INTERVAL_MS);
}

static void test_group_wait_zero_is_immediate(void **state)
{
    fx_t *f = *state;
    f->cfg.route.group_wait_ms = 0;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    assert_int_equal(kcw_notifier_next_due(f->n), 1000);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), 1);
}

static void test_group_interval_batches(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);

    /* Two more of the same group arrive: they wait for the interval. */
    fire(f, 1, "ConnectorFailed", "billing", 20000);
    fire(f, 2, "ConnectorFailed", "audit", 25000);
    update(f, 20000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 20000), 0);
    update(f, 25000, 0, 1, 2, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS - 1), 0);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS), 1);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(f->sent[1].n, 3);
    assert_int_equal(f->sent[1].firing, 3);

    /* Another alertname is another group with its own group_wait. */
    fire(f, 3, "TaskFailed", "orders", 80000);
    update(f, 80000, 0, 1, 2, 3, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 2);
    assert_int_equal(kcw_notifier_next_due(f->n), 80000 + WAIT_MS);
    assert_int_equal(kcw_notifier_flush_due(f->n, 80000 + WAIT_MS), 1);
    assert_string_equal(f->sent[2].key, "{}:{alertname=\"TaskFailed\"}");
    assert_int_equal(f->sent[2].n, 1);
}

static void test_repeat_interval(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    /* Unchanged: every interval passes silently until repeat_interval. */
    int64_t t = WAIT_MS + INTERVAL_MS;
    for (; t - WAIT_MS < REPEAT_MS; t += INTERVAL_MS) {
        update(f, t, 0, -1);
        assert_int_equal(kcw_notifier_flush_due(f->n, t), 0);
    }
    assert_int_equal(t, WAIT_MS + REPEAT_MS);
    update(f, t, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, t), 1);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(f->sent[1].n, 1);
    assert_int_equal(f->sent[1].firing, 1);
    /* And counts again from there. */
    update(f, t + INTERVAL_MS, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, t + INTERVAL_MS), 0);
}

static void test_resolved_sent_once_then_dropped(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    resolve(f, 0, 30000);
    update(f, 30000, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 30000), 0); /* waits for the interval */
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS), 1);
    assert_int_equal(f->sent[1].n, 1);
    assert_int_equal(f->sent[1].resolved, 1);
    assert_int_equal(f->sent[1].resolved_at[0], 30000);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);

    /* The alert set keeps listing it for a while: nothing comes back. */
    for (int64_t t = 80000; t < 80000 + 10 * INTERVAL_MS; t += INTERVAL_MS) {
        update(f, t, 0, -1);
        assert_int_equal(kcw_notifier_group_count(f->n), 0);
        assert_int_equal(kcw_notifier_flush_due(f->n, t), 0);
    }
    assert_int_equal(f->n_sent, 2);

    /* The same labels firing again are a new alert, next to the old one. */
    int64_t t = 800000;
    fire(f, 1, "ConnectorFailed", "orders", t);
    update(f, t, 0, 1, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 1);
    assert_int_equal(kcw_notifier_flush_due(f->n, t + WAIT_MS), 1);
    assert_int_equal(f->sent[2].n, 1);
    assert_int_equal(f->sent[2].firing, 1);
}

static void test_resolved_without_send_resolved(void **state)
{
    fx_t *f = *state;
    f->rcv.send_resolved = false;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    assert_int_equal(f->sent[0].n, 2);

    /* One resolves: nothing to say without send_resolved. */
    resolve(f, 0, 20000);
    update(f, 20000, 0, 1, -1);
    int64_t t = WAIT_MS + INTERVAL_MS;
    assert_int_equal(kcw_notifier_flush_due(f->n, t), 0);
    /* Both resolved: the group goes without a word. */
    resolve(f, 1, t + 1000);
    update(f, t + 1000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, t + INTERVAL_MS), 0);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);
    assert_int_equal(f->n_sent, 1);
}

static void test_resolved_with_others_firing(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    resolve(f, 0, 20000);
    update(f, 20000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS), 1);
    assert_int_equal(f->sent[1].n, 2);
    assert_int_equal(f->sent[1].firing, 1);
    assert_int_equal(f->sent[1].resolved, 1);
    /* The resolved one was said once; the firing one is unchanged. */
    update(f, 80000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + 2 * INTERVAL_MS), 0);
    assert_int_equal(kcw_notifier_group_count(f->n), 1);
}

static void test_pending_not_sent(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0)->state = KCW_ALERT_PENDING;
    f->al[0].fired_at_ms = 0;
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);
    assert_int_equal(kcw_notifier_next_due(f->n), INT64_MAX);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000000), 0);

    /* Next to a firing one of its group, it is still left out. */
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 1000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000 + WAIT_MS), 1);
    assert_int_equal(f->sent[0].n, 1);
    assert_true(sent_has(&f->sent[0], f->al[1].fingerprint));
}

static void test_fired_and_resolved_within_group_wait(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    resolve(f, 0, 5000);
    update(f, 5000, 0, -1);
    /* Nobody heard of it firing: a lone "resolved" would only confuse. */
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 0);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);
    assert_int_equal(f->n_sent, 0);
}

static void test_vanished_alert_resolves(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    /* Its rule was removed on reload: it is not listed any more. */
    update(f, 30000, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS), 1);
    assert_int_equal(f->sent[1].firing, 1);
    assert_int_equal(f->sent[1].resolved, 1);
    for (size_t i = 0; i < f->sent[1].n; i++)
        if (f->sent[1].fp[i] == f->al[1].fingerprint)
            assert_int_equal(f->sent[1].resolved_at[i], 30000);
}

static bool connector_is_orders(const kcw_alert_t *a, void *arg)
{
    (void)arg;
    return strcmp(kcw_labels_get(&a->labels, "connector"), "orders") == 0;
}

/* Another instance took over: the forgotten alert leaves without a word (no
 * "resolved"), the others keep their group and its history. */
static void test_forget_drops_silently(void **state)
{
    fx_t *f = *state;
    f->group_by[1] = name_connector;
    f->cfg.route.n_group_by = 2;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 2);
    assert_int_equal(kcw_notifier_group_count(f->n), 2);
    assert_int_equal(kcw_notifier_forget(f->n, connector_is_orders, NULL), 1);
    assert_int_equal(kcw_notifier_group_count(f->n), 1); /* orders' group went with it */
    update(f, 30000, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + INTERVAL_MS), 0);
    assert_int_equal(kcw_notifier_flush_due(f->n, REPEAT_MS + WAIT_MS), 1);
    assert_int_equal(f->n_sent, 3);
    assert_int_equal(f->sent[2].firing, 1);
    assert_int_equal(f->sent[2].resolved, 0);
    assert_true(sent_has(&f->sent[2], f->al[1].fingerprint));
    assert_int_equal(kcw_notifier_forget(f->n, connector_is_orders, NULL), 0);
}

static void test_group_by_variants(void **state)
{
    fx_t *f = *state;
    /* "..." groups by every label: one group per alert. */
    f->group_by[0] = name_all;
    start(f);
    fire(f, 0, "X", "a", 0);
    fire(f, 1, "X", "b", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 2);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 2);
    const char *ka = "{}:{alertname=\"X\", cluster=\"c1\", connector=\"a\"}";
    const char *kb = "{}:{alertname=\"X\", cluster=\"c1\", connector=\"b\"}";
    assert_true((strcmp(f->sent[0].key, ka) == 0 && strcmp(f->sent[1].key, kb) == 0) ||
                (strcmp(f->sent[0].key, kb) == 0 && strcmp(f->sent[1].key, ka) == 0));

    /* No group_by: everything in one group; the reload regroups. */
    kcw_config_t cfg2 = f->cfg;
    cfg2.route.n_group_by = 0;
    route_ready(&cfg2.route);
    kcw_notifier_set_config(f->n, &cfg2);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);
    update(f, 20000, 0, 1, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 20000 + WAIT_MS), 1);
    assert_string_equal(f->sent[2].key, "{}:{}");
    assert_int_equal(f->sent[2].n, 2);

    /* Labels missing from an alert are left out; values are quoted. */
    char *by[2] = {name_cluster, name_connector};
    kcw_config_t cfg3 = f->cfg;
    cfg3.route.group_by = by;
    cfg3.route.n_group_by = 2;
    route_ready(&cfg3.route);
    kcw_notifier_set_config(f->n, &cfg3);
    fire(f, 2, "Y", "we\"ird\\", 0);
    assert_int_equal(kcw_labels_set(&f->al[3].labels, "alertname", "Z"), 0);
    assert_int_equal(kcw_labels_set(&f->al[3].labels, "cluster", "c2"), 0);
    f->al[3].state = KCW_ALERT_FIRING;
    f->al[3].fingerprint = kcw_labels_fingerprint(&f->al[3].labels);
    update(f, 40000, 2, 3, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 40000 + WAIT_MS), 2);
    const char *k2 = "{}:{cluster=\"c1\", connector=\"we\\\"ird\\\\\"}";
    const char *k3 = "{}:{cluster=\"c2\"}";
    assert_true((strcmp(f->sent[3].key, k2) == 0 && strcmp(f->sent[4].key, k3) == 0) ||
                (strcmp(f->sent[3].key, k3) == 0 && strcmp(f->sent[4].key, k2) == 0));
    /* The notifier must not keep pointers into a replaced config. */
    kcw_notifier_set_config(f->n, &f->cfg);
}

/* A route grouping by an external label groups as Alertmanager does, which
 * sees the external labels on every alert: an alert without the label is in
 * the external value's group (with an alert carrying that value itself), an
 * alert with its own value in its own group; the groups stay found on
 * resolve and by flush_for. */
static char name_region[] = "region";

static size_t sent_with_key(const fx_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_sent; i++)
        if (strcmp(f->sent[i].key, key) == 0)
            return i;
    fail_msg("no notification with group key %s", key);
    return 0;
}

static void test_group_by_external_label(void **state)
{
    fx_t *f = *state;
    f->group_by[1] = name_region;
    f->cfg.route.n_group_by = 2;
    assert_int_equal(kcw_labels_set(&f->cfg.external_labels, "region", "eu"), 0);
    start(f);
    fire(f, 0, "X", "a", 0);
    fire(f, 1, "X", "b", 0);
    fire(f, 2, "X", "c", 0);
    assert_int_equal(kcw_labels_set(&f->al[2].labels, "region", "us"), 0);
    f->al[2].fingerprint = kcw_labels_fingerprint(&f->al[2].labels);
    fire(f, 3, "X", "d", 0);
    assert_int_equal(kcw_labels_set(&f->al[3].labels, "region", "eu"), 0);
    f->al[3].fingerprint = kcw_labels_fingerprint(&f->al[3].labels);
    update(f, 0, 0, 1, 2, 3, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 2);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 2);
    const sent_t *eu = &f->sent[sent_with_key(f, "{}:{alertname=\"X\", region=\"eu\"}")];
    assert_int_equal(eu->n, 3);
    assert_true(sent_has(eu, f->al[0].fingerprint) && sent_has(eu, f->al[1].fingerprint) &&
                sent_has(eu, f->al[3].fingerprint));
    const sent_t *us = &f->sent[sent_with_key(f, "{}:{alertname=\"X\", region=\"us\"}")];
    assert_int_equal(us->n, 1);
    assert_true(sent_has(us, f->al[2].fingerprint));

    /* Resolving an alert without the label reaches the same group. */
    resolve(f, 0, 1000);
    update(f, 1000, 0, 1, 2, 3, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 2);
    kcw_notifier_flush_for(f->n, &f->al[1].labels);
    assert_true(kcw_notifier_next_due(f->n) <= 1001);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1001), 1);
    assert_int_equal(f->n_sent, 3);
    assert_string_equal(f->sent[2].key, "{}:{alertname=\"X\", region=\"eu\"}");
    assert_int_equal(f->sent[2].resolved, 1);

    kcw_notifier_close(f->n, on_closed, f);
    f->n = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    kcw_labels_clear(&f->cfg.external_labels);
}

/* The routing tree, silences and inhibition together, on the test's clock:
 * one alert fans out to two routes (continue), a silence mutes one connector
 * until it ends, an inhibition rule mutes task alerts of a failed connector
 * until the connector alert resolves. */
static size_t sent_to(const fx_t *f, size_t from, const char *receiver, uint64_t fp)
{
    size_t hits = 0;
    for (size_t i = from; i < f->n_sent; i++)
        if (strcmp(f->sent[i].receiver, receiver) == 0 && sent_has(&f->sent[i], fp))
            hits++;
    return hits;
}

static void test_routes_silences_inhibition(void **state)
{
    fx_t *f = *state;
    kcw_config_t *cfg = NULL;
    kcw_errors_t errs = {0};
    int rc = kcw_config_load_string(
        "receivers:\n"
        "  - {name: slack, log: {}}\n"
        "  - {name: pd, log: {}}\n"
        "route:\n"
        "  receiver: slack\n"
        "  group_by: [alertname, connector]\n"
        "  group_wait: 1s\n"
        "  group_interval: 10s\n"
        "  repeat_interval: 1h\n"
        "  routes:\n"
        "    - {matchers: ['alertname=~\"Connector.*\"'], receiver: pd, continue: true}\n"
        "    - {receiver: slack}\n"
        "inhibit_rules:\n"
        "  - source_matchers: ['alertname=\"ConnectorFailed\"']\n"
        "    target_matchers: ['alertname=\"TaskFailed\"']\n"
        "    equal: [connector]\n",
        "kcwatch.yaml", &cfg, &errs);
    if (rc != 0)
        kcw_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    f->n = kcw_notifier_new(&f->loop, NULL, cfg, on_event, f);
    assert_non_null(f->n);
    kcw_notifier_set_sink(f->n, sink, f);
    kcw_silences_t *silences = kcw_silences_new();
    kcw_silence_t quiet = {0};
    snprintf(quiet.id, sizeof(quiet.id), "%s", "s1");
    char err[128];
    assert_int_equal(kcw_matchers_parse(&quiet.matchers, "connector=\"quiet\"", err, sizeof(err)),
                     0);
    quiet.ends_at_ms = 30000;
    assert_int_equal(kcw_silences_restore(silences, &quiet), 0);
    kcw_silence_clear(&quiet);
    kcw_notifier_set_silences(f->n, silences);

    fire(f, 0, "ConnectorFailed", "orders", 0); /* pd and slack */
    fire(f, 1, "TaskFailed", "orders", 0);      /* inhibited by al[0] */
    fire(f, 2, "TaskFailed", "clicks", 0);      /* slack */
    fire(f, 3, "TaskFailed", "quiet", 0);       /* silenced until 30 s */
    update(f, 0, 0, 1, 2, 3, -1);
    assert_int_equal(kcw_notifier_group_count(f->n), 5); /* orders twice: two routes */
    kcw_notifier_flush_due(f->n, 1000);
    assert_int_equal(sent_to(f, 0, "pd", f->al[0].fingerprint), 1);
    assert_int_equal(sent_to(f, 0, "slack", f->al[0].fingerprint), 1);
    assert_int_equal(sent_to(f, 0, "slack", f->al[2].fingerprint), 1);
    assert_int_equal(sent_to(f, 0, "pd", f->al[2].fingerprint), 0);
    assert_int_equal(sent_to(f, 0, "slack", f->al[1].fingerprint), 0);
    assert_int_equal(sent_to(f, 0, "slack", f->al[3].fingerprint), 0);
    bool pd_key = false;
    for (size_t i = 0; i < f->n_sent; i++)
        pd_key = pd_key || strcmp(f->sent[i].key, "{}/{alertname=~\"Connector.*\"}:"
                                                  "{alertname=\"ConnectorFailed\", "
                                                  "connector=\"orders\"}") == 0;
    assert_true(pd_key);

    /* The silence ends at 30 s: the next group interval after it sends. */
    size_t mark = f->n_sent;
    update(f, 20000, 0, 1, 2, 3, -1);
    kcw_notifier_flush_due(f->n, 21000);
    assert_int_equal(sent_to(f, mark, "slack", f->al[3].fingerprint), 0);
    update(f, 31000, 0, 1, 2, 3, -1);
    kcw_notifier_flush_due(f->n, 31000);
    assert_int_equal(sent_to(f, mark, "slack", f->al[3].fingerprint), 1);

    /* The connector alert resolves: its task alert is no longer inhibited. */
    mark = f->n_sent;
    resolve(f, 0, 40000);
    update(f, 40000, 0, 1, 2, 3, -1);
    kcw_notifier_flush_due(f->n, 41000);
    assert_int_equal(sent_to(f, mark, "slack", f->al[1].fingerprint), 1);
    assert_int_equal(sent_to(f, mark, "pd", f->al[0].fingerprint), 1); /* the resolution */

    kcw_notifier_close(f->n, on_closed, f);
    f->n = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    kcw_silences_free(silences);
    kcw_config_free(cfg);
}

static void test_flush_for(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    kcw_labels_t other = {0};
    assert_int_equal(kcw_labels_set(&other, "alertname", "Unknown"), 0);
    kcw_notifier_flush_for(f->n, &other);
    kcw_labels_clear(&other);
    assert_int_equal(kcw_notifier_next_due(f->n), WAIT_MS);
    kcw_notifier_flush_for(f->n, &f->al[0].labels);
    assert_true(kcw_notifier_next_due(f->n) <= 1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1), 1);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(kcw_notifier_next_due(f->n), 1 + INTERVAL_MS);
}

/* Routine news (a restart sent) keeps a new group's group_wait, and goes
 * out at once only for a group notified before. */
static void test_refresh_for(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    kcw_notifier_refresh_for(f->n, &f->al[0].labels);
    assert_int_equal(kcw_notifier_next_due(f->n), WAIT_MS);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1), 0);
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(kcw_notifier_next_due(f->n), WAIT_MS + INTERVAL_MS);
    kcw_notifier_refresh_for(f->n, &f->al[0].labels);
    assert_true(kcw_notifier_next_due(f->n) <= WAIT_MS + 1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS + 1), 1);
    assert_int_equal(f->n_sent, 2);
}

static void test_classify_and_backoff(void **state)
{
    (void)state;
    assert_int_equal(kcw_notify_classify(200), KCW_DELIVERY_OK);
    assert_int_equal(kcw_notify_classify(204), KCW_DELIVERY_OK);
    assert_int_equal(kcw_notify_classify(0), KCW_DELIVERY_RETRY);
    assert_int_equal(kcw_notify_classify(500), KCW_DELIVERY_RETRY);
    assert_int_equal(kcw_notify_classify(503), KCW_DELIVERY_RETRY);
    assert_int_equal(kcw_notify_classify(408), KCW_DELIVERY_RETRY);
    assert_int_equal(kcw_notify_classify(429), KCW_DELIVERY_RETRY);
    assert_int_equal(kcw_notify_classify(400), KCW_DELIVERY_DROP);
    assert_int_equal(kcw_notify_classify(401), KCW_DELIVERY_DROP);
    assert_int_equal(kcw_notify_classify(404), KCW_DELIVERY_DROP);

    assert_int_equal(kcw_notify_backoff_ms(1, -1, 0.5), 1000);
    assert_int_equal(kcw_notify_backoff_ms(2, -1, 0.5), 2000);
    assert_int_equal(kcw_notify_backoff_ms(3, -1, 0.5), 4000);
    assert_int_equal(kcw_notify_backoff_ms(9, -1, 0.5), 256000);
    assert_int_equal(kcw_notify_backoff_ms(10, -1, 0.5), 300000);
    assert_int_equal(kcw_notify_backoff_ms(1000, -1, 0.5), 300000);
    assert_int_equal(kcw_notify_backoff_ms(1, -1, 0.0), 900);
    assert_int_equal(kcw_notify_backoff_ms(1, -1, 1.0), 1100);
    assert_int_equal(kcw_notify_backoff_ms(10, -1, 1.0), 330000);
    assert_int_equal(kcw_notify_backoff_ms(3, 7000, 0.0), 7000);
    assert_int_equal(kcw_notify_backoff_ms(3, 0, 0.0), 0);
    assert_int_equal(kcw_notify_backoff_ms(3, 86400000, 0.0), 3600000);
}

static void test_log_receiver(void **state)
{
    fx_t *f = *state;
    FILE *out = tmpfile();
    assert_non_null(out);
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_INFO, out);
    f->rcv.kind = KCW_RECEIVER_LOG;
    f->cfg.route.group_wait_ms = 0;
    route_ready(&f->cfg.route);
    f->n = kcw_notifier_new(&f->loop, NULL, &f->cfg, on_event, f);
    assert_non_null(f->n);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    /* group_wait 0: the loop flushes at once. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->events_ok, 1);
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    resolve(f, 0, 1000);
    update(f, 1000, 0, -1);
    /* The loop's clock moved on a little: the interval counts from the flush. */
    int64_t due = kcw_notifier_next_due(f->n);
    assert_true(due >= INTERVAL_MS && due < INTERVAL_MS + 1000);
    assert_int_equal(kcw_notifier_flush_due(f->n, due), 1);
    assert_int_equal(f->events_ok, 2);

    char text[4096];
    size_t len = 0;
    rewind(out);
    len = fread(text, 1, sizeof(text) - 1, out);
    text[len] = '\0';
    fclose(out);
    kcw_log_reset();
    assert_non_null(strstr(text, "msg=alert status=firing alertname=ConnectorFailed cluster=c1 "
                                 "connector=orders summary=\"it broke\"\n"));
    assert_non_null(strstr(text, "msg=alert status=resolved alertname=ConnectorFailed"));
    assert_non_null(strstr(text, "msg=\"notification sent\" receiver=ops "
                                 "group=\"{}:{alertname=\\\"ConnectorFailed\\\"}\" "
                                 "status=firing alerts=1"));
}

/* --- delivery against a real HTTP server --------------------------------- */

#define SCRIPT_MAX 128

typedef struct server {
    struct MHD_Daemon *d;
    unsigned short port;
    pthread_mutex_t mu;
    /* Responses in order; the last one repeats. */
    int status[SCRIPT_MAX];
    const char *retry_after[SCRIPT_MAX];
    size_t n_script;
    /* When set, the script is ignored: 500 for bodies containing it, else 200. */
    const char *fail_if_body_has;
    /* What arrived. */
    size_t requests;
    int64_t at_ms[SCRIPT_MAX];
    char content_type[64];
    char *bodies[SCRIPT_MAX];
} server_t;

typedef struct upload {
    char *buf;
    size_t len;
} upload_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_size, void **con_cls)
{
    server_t *s = cls;
    (void)url;
    (void)method;
    (void)version;
    upload_t *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_size > 0) {
        char *nb = realloc(u->buf, u->len + *data_size + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + u->len, data, *data_size);
        u->buf = nb;
        u->len += *data_size;
        u->buf[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    size_t i = s->requests < s->n_script ? s->requests : s->n_script - 1;
    int status = s->status[i];
    const char *retry_after = s->retry_after[i];
    if (s->fail_if_body_has) {
        status = u->buf && strstr(u->buf, s->fail_if_body_has) ? 500 : 200;
        retry_after = NULL;
    }
    if (s->requests < SCRIPT_MAX) {
        s->at_ms[s->requests] = mono_ms();
        s->bodies[s->requests] = u->buf ? u->buf : strdup("");
        u->buf = NULL;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    snprintf(s->content_type, sizeof(s->content_type), "%s", ct ? ct : "");
    s->requests++;
    pthread_mutex_unlock(&s->mu);

    static const char body[] = "{\"error\":\"scripted\"}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u) {
        free(u->buf);
        free(u);
        *con_cls = NULL;
    }
}

static void server_start(server_t *s)
{
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, s, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port != 0);
}

static size_t server_requests(server_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void server_stop(server_t *s)
{
    MHD_stop_daemon(s->d);
    for (size_t i = 0; i < SCRIPT_MAX; i++)
        free(s->bodies[i]);
    pthread_mutex_destroy(&s->mu);
}

typedef struct live {
    fx_t *f;
    kcw_http_t *http;
    char url[64];
    uv_timer_t deadline;
    bool timed_out;
    bool http_closed;
} live_t;

static void on_deadline(uv_timer_t *t)
{
    ((live_t *)t->data)->timed_out = true;
}

static void live_start(live_t *lv, fx_t *f, server_t *s)
{
    memset(lv, 0, sizeof(*lv));
    lv->f = f;
    snprintf(lv->url, sizeof(lv->url), "http://127.0.0.1:%u/hook", s->port);
    f->rcv.url = lv->url;
    f->cfg.route.group_wait_ms = 0;
    lv->http = kcw_http_new(&f->loop);
    assert_non_null(lv->http);
    route_ready(&f->cfg.route);
    f->n = kcw_notifier_new(&f->loop, lv->http, &f->cfg, on_event, f);
    assert_non_null(f->n);
    assert_int_equal(uv_timer_init(&f->loop, &lv->deadline), 0);
    lv->deadline.data = lv;
    assert_int_equal(uv_timer_start(&lv->deadline, on_deadline, 20000, 0), 0);
}

/* Runs the loop until enough delivery outcomes arrived (or the deadline). */
static void live_wait(live_t *lv, int outcomes)
{
    fx_t *f = lv->f;
    while (f->events_ok + f->events_fail < outcomes && !lv->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(lv->timed_out);
}

static void on_http_closed(void *arg)
{
    ((live_t *)arg)->http_closed = true;
}

/* http_first: the daemon's shutdown order, where the client's close cancels
 * the notifier's transfers while the notifier still lives. */
static void live_stop(live_t *lv, bool http_first)
{
    fx_t *f = lv->f;
    if (http_first) {
        kcw_http_close(lv->http, on_http_closed, lv);
        kcw_notifier_close(f->n, on_closed, f);
    } else {
        kcw_notifier_close(f->n, on_closed, f);
        kcw_http_close(lv->http, on_http_closed, lv);
    }
    f->n = NULL;
    uv_close((uv_handle_t *)&lv->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_true(lv->http_closed);
}

static void test_delivery_retried_then_delivered(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {500, 200}, .n_script = 2};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    live_wait(&lv, 2);
    assert_int_equal(f->events_fail, 1);
    assert_int_equal(f->events_ok, 1);
    assert_int_equal(f->last_status, 200);
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    assert_int_equal(server_requests(&s), 2);
    /* The same notification both times, sent as JSON. */
    assert_string_equal(s.bodies[0], s.bodies[1]);
    assert_non_null(strstr(s.bodies[0], "\"version\":\"4\""));
    assert_non_null(strstr(s.bodies[0], "\"receiver\":\"ops\""));
    assert_string_equal(s.content_type, "application/json");
    /* First retry after 1 s +-10%. */
    assert_true(s.at_ms[1] - s.at_ms[0] >= 890);
    live_stop(&lv, false);
    assert_int_equal(server_requests(&s), 2);
    server_stop(&s);
}

static void test_delivery_honours_retry_after(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {429, 200}, .retry_after = {"2", NULL}, .n_script = 2};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    live_wait(&lv, 2);
    assert_int_equal(f->events_fail, 1);
    assert_int_equal(f->events_ok, 1);
    assert_int_equal(server_requests(&s), 2);
    /* Not the 1 s the back-off alone would wait. */
    assert_true(s.at_ms[1] - s.at_ms[0] >= 1950);
    live_stop(&lv, false);
    server_stop(&s);
}

static void test_delivery_400_dropped(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {400, 200}, .n_script = 2};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    live_wait(&lv, 1);
    assert_int_equal(f->events_fail, 1);
    assert_int_equal(f->events_ok, 0);
    assert_int_equal(f->last_status, 400);
    assert_string_equal(f->last_detail, "{\"error\":\"scripted\"}");
    /* Nothing left to retry. */
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    live_stop(&lv, false);
    assert_int_equal(server_requests(&s), 1);
    server_stop(&s);
}

static void test_queue_bounded(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {503}, .n_script = 1};
    server_start(&s);
    f->group_by[0] = name_all;
    live_t lv;
    live_start(&lv, f, &s);
    /* 10,001 groups flushed at once: one in flight, the rest wait behind it. */
    enum { N = 10001 };
    kcw_alert_t *many = calloc(N, sizeof(*many));
    const kcw_alert_t **list = calloc(N, sizeof(*list));
    assert_non_null(many);
    assert_non_null(list);
    for (size_t i = 0; i < N; i++) {
        char conn[32];
        snprintf(conn, sizeof(conn), "c%zu", i);
        assert_int_equal(kcw_labels_set(&many[i].labels, "alertname", "X"), 0);
        assert_int_equal(kcw_labels_set(&many[i].labels, "connector", conn), 0);
        many[i].fingerprint = kcw_labels_fingerprint(&many[i].labels);
        many[i].state = KCW_ALERT_FIRING;
        many[i].fired_at_ms = 1000;
        list[i] = &many[i];
    }
    kcw_notifier_update(f->n, list, N, 1000);
    assert_int_equal(kcw_notifier_group_count(f->n), N);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), N);
    assert_int_equal(kcw_notifier_queue_length(f->n), 10000);
    assert_int_equal(f->events_fail, 1);
    assert_string_equal(f->last_detail, "dropped: queue full");
    for (size_t i = 0; i < N; i++)
        kcw_labels_clear(&many[i].labels);
    free(many);
    free(list);
    live_stop(&lv, true);
    server_stop(&s);
}

/* A fresh notifier in place of the fixture's (another instance). */
static void notifier_again(fx_t *f)
{
    kcw_notifier_close(f->n, on_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    f->closed = false;
    f->n_sent = 0;
    start(f);
}

static char *log_record(const char *key, int64_t last, const uint64_t *firing, size_t n_firing)
{
    kcw_store_group_t row = {.receiver = "ops",
                             .group_key = key,
                             .last_notified_ms = last,
                             .sent_firing = firing,
                             .n_sent_firing = n_firing};
    char *text = kcw_notify_log_encode(&row);
    assert_non_null(text);
    return text;
}

/* What another instance paged is not paged again; its resolution is sent;
 * only the newest log of a group counts, stale and unreadable ones none. */
static void test_adopt_records(void **state)
{
    fx_t *f = *state;
    start(f);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    update(f, 0, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 1);
    char key[256];
    snprintf(key, sizeof(key), "%s", f->sent[0].key);
    uint64_t fp = f->al[0].fingerprint;

    /* The instance that takes over. */
    notifier_again(f);
    int64_t now = WAIT_MS + 1000;
    char *rec = log_record(key, WAIT_MS, &fp, 1);
    char *older = log_record(key, 5, NULL, 0);
    const char *recs[] = {older, rec, "{not json", "{\"receiver\": \"ops\"}"};
    assert_int_equal(kcw_notifier_adopt_records(f->n, recs, 4, REPEAT_MS, now), 1);
    update(f, now, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, now + WAIT_MS), 0);
    assert_int_equal(kcw_notifier_flush_due(f->n, now + WAIT_MS + INTERVAL_MS), 0);
    resolve(f, 0, now + 2 * INTERVAL_MS);
    update(f, now + 2 * INTERVAL_MS, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, now + 3 * INTERVAL_MS), 1);
    assert_int_equal(f->sent[0].resolved, 1);
    assert_int_equal(f->sent[0].firing, 0);

    /* A newer log that no longer lists it wins over an older one that does. */
    notifier_again(f);
    fire(f, 0, "ConnectorFailed", "orders", now);
    char *newer = log_record(key, WAIT_MS + 500, NULL, 0);
    const char *recs2[] = {rec, newer};
    assert_int_equal(kcw_notifier_adopt_records(f->n, recs2, 2, REPEAT_MS, now), 1);
    update(f, now, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, now + WAIT_MS), 1);
    assert_int_equal(f->sent[0].firing, 1);

    /* Too old to say anything about what fires now. */
    notifier_again(f);
    const char *recs3[] = {rec};
    assert_int_equal(kcw_notifier_adopt_records(f->n, recs3, 1, REPEAT_MS, WAIT_MS + REPEAT_MS + 1),
                     0);
    free(rec);
    free(older);
    free(newer);
}

static bool always(const kcw_alert_t *a, void *arg)
{
    (void)a;
    (void)arg;
    return true;
}

/* Given up while its receiver is down: what waits in the queue is dropped
 * (and said so); the requests already in flight (4 per receiver) cannot be. */
static void test_forget_drops_queued(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {503}, .n_script = 1};
    server_start(&s);
    f->group_by[0] = name_all;
    live_t lv;
    live_start(&lv, f, &s);
    static const char *const names[] = {"c0", "c1", "c2", "c3", "c4", "c5"};
    for (size_t i = 0; i < 6; i++)
        fire(f, i, "ConnectorFailed", names[i], 1000);
    update(f, 1000, 0, 1, 2, 3, 4, 5, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), 6);
    assert_int_equal(kcw_notifier_queue_length(f->n), 6);
    int fails = f->events_fail;
    assert_int_equal(kcw_notifier_forget(f->n, always, NULL), 6);
    assert_int_equal(kcw_notifier_group_count(f->n), 0);
    assert_int_equal(kcw_notifier_queue_length(f->n), 4);
    assert_int_equal(f->events_fail - fails, 2);
    assert_string_equal(f->last_detail, "dropped: another kcwatch instance owns its alerts now");
    live_stop(&lv, true);
    server_stop(&s);
}

static void test_close_cancels_in_flight(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {200}, .n_script = 1};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), 1);
    assert_int_equal(kcw_http_pending(lv.http), 1);
    /* The notifier goes first: its transfer is cancelled, not left behind. */
    kcw_notifier_close(f->n, on_closed, f);
    f->n = NULL;
    assert_int_equal(kcw_http_pending(lv.http), 0);
    kcw_http_close(lv.http, on_http_closed, &lv);
    uv_close((uv_handle_t *)&lv.deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_true(lv.http_closed);
    assert_int_equal(f->events_ok + f->events_fail, 0);
    server_stop(&s);
}


/* The conn-2 case: a receiver that answers 500 only for one group. The
 * other groups' firing and resolved notifications are delivered while that
 * group keeps being retried on its own schedule. */
static void test_failing_group_blocks_no_other(void **state)
{
    fx_t *f = *state;
    server_t s = {.fail_if_body_has = "conn-2", .n_script = 1};
    server_start(&s);
    f->group_by[0] = name_connector;
    live_t lv;
    live_start(&lv, f, &s);
    fire(f, 0, "ConnectorFailed", "conn-2", 1000);
    fire(f, 1, "ConnectorFailed", "conn-3", 1000);
    fire(f, 2, "ConnectorFailed", "conn-4", 1000);
    update(f, 1000, 0, 1, 2, -1);
    while (f->events_ok < 2 && !lv.timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(lv.timed_out);
    resolve(f, 1, 2000);
    resolve(f, 2, 2000);
    update(f, 2000, 0, 1, 2, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 2000 + INTERVAL_MS), 2);
    while (f->events_ok < 4 && !lv.timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(lv.timed_out);
    /* conn-2 failed at least once meanwhile and is still waiting its turn. */
    assert_true(f->events_fail >= 1);
    assert_int_equal(kcw_notifier_queue_length(f->n), 1);
    live_stop(&lv, false);
    server_stop(&s);
}

static void test_max_age_drops_with_count(void **state)
{
    fx_t *f = *state;
    server_t s = {.status = {503}, .n_script = 1};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    kcw_notifier_set_max_age(f->n, 1500);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    while (kcw_notifier_expired_total(f->n) == 0 && !lv.timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(lv.timed_out);
    assert_int_equal(kcw_notifier_expired_total(f->n), 1);
    assert_string_equal(f->last_detail, "dropped: older than the max age");
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    live_stop(&lv, false);
    server_stop(&s);
}

static int count_row(const kcw_store_outbox_t *o, void *arg)
{
    (void)o;
    (*(int *)arg)++;
    return 0;
}

static int outbox_rows(kcw_store_t *st)
{
    int n = 0;
    assert_true(kcw_store_outbox_load(st, count_row, &n) >= 0);
    return n;
}

typedef struct audit_count {
    int sent, failed;
} audit_count_t;

static int count_audit(const kcw_audit_t *a, void *arg)
{
    audit_count_t *c = arg;
    assert_int_equal(a->kind, KCW_AUDIT_NOTIFY);
    assert_string_equal(a->receiver, "ops");
    if (strcmp(a->status, "sent") == 0 && a->http_status == 200)
        c->sent++;
    else if (strcmp(a->status, "failed") == 0 && a->http_status == 503)
        c->failed++;
    return 0;
}

/* Committed to the outbox before the first send, kept while the receiver
 * fails and over a close, sent by the next notifier, then deleted. */
static void test_outbox_survives_close(void **state)
{
    fx_t *f = *state;
    kcw_store_t *st = kcw_store_open_memory();
    assert_non_null(st);
    server_t s = {.status = {503, 503, 503, 200}, .n_script = 4};
    server_start(&s);
    live_t lv;
    live_start(&lv, f, &s);
    kcw_notifier_set_store(f->n, st, 1000);
    fire(f, 0, "ConnectorFailed", "orders", 1000);
    update(f, 1000, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), 1);
    /* Nothing has answered yet: the notification is already stored. */
    assert_int_equal(server_requests(&s), 0);
    assert_int_equal(outbox_rows(st), 1);
    live_wait(&lv, 1);
    assert_int_equal(f->events_fail, 1);
    assert_int_equal(outbox_rows(st), 1);
    live_stop(&lv, false);
    assert_int_equal(outbox_rows(st), 1);

    /* The next start: the stored one goes out (its back-off carried over). */
    f->events_ok = f->events_fail = 0;
    f->closed = false;
    live_start(&lv, f, &s);
    kcw_notifier_set_store(f->n, st, 3000);
    assert_int_equal(kcw_notifier_queue_length(f->n), 1);
    assert_int_equal(kcw_notifier_payloads_held(f->n), 0); /* read when sent */
    while (f->events_ok < 1 && !lv.timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(lv.timed_out);
    assert_int_equal(outbox_rows(st), 0);
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    live_stop(&lv, false);
    /* Every attempt is in the audit log. */
    audit_count_t c = {0};
    assert_true(kcw_store_audit_query(st, 0, count_audit, &c) >= 2);
    assert_int_equal(c.sent, 1);
    assert_true(c.failed >= 1);
    assert_string_equal(s.bodies[0], s.bodies[server_requests(&s) - 1]);
    server_stop(&s);
    kcw_store_close(st);
}

/* A flush of more groups than one batch of rows: once committed, the
 * payloads live in the outbox alone; every attempt (a retry too) reads its
 * bytes from there, and a delivered one leaves it. */
static void test_outbox_holds_payloads(void **state)
{
    fx_t *f = *state;
    enum { GROUPS = 70 };
    kcw_store_t *st = kcw_store_open_memory();
    assert_non_null(st);
    server_t s = {.status = {503, 200}, .n_script = 2};
    server_start(&s);
    f->group_by[0] = name_connector;
    live_t lv;
    live_start(&lv, f, &s);
    kcw_notifier_set_store(f->n, st, 1000);
    const kcw_alert_t *list[GROUPS];
    char name[32];
    for (int i = 0; i < GROUPS; i++) {
        snprintf(name, sizeof(name), "conn-%02d", i);
        list[i] = fire(f, (size_t)i, "ConnectorFailed", name, 1000);
    }
    kcw_notifier_update(f->n, list, GROUPS, 1000);
    assert_int_equal(kcw_notifier_flush_due(f->n, 1000), GROUPS);
    assert_int_equal(kcw_notifier_queue_length(f->n), GROUPS);
    assert_int_equal(outbox_rows(st), GROUPS);
    /* The first sends have started (libcurl holds their bodies); no
     * payload waits in memory. */
    assert_int_equal(kcw_notifier_payloads_held(f->n), 0);
    live_wait(&lv, GROUPS + 1);
    assert_int_equal(f->events_fail, 1);
    assert_int_equal(f->events_ok, GROUPS);
    assert_int_equal(outbox_rows(st), 0);
    assert_int_equal(kcw_notifier_queue_length(f->n), 0);
    /* Each body is the whole notification of its group; the one refused
     * first went again byte for byte. */
    size_t got = server_requests(&s) < SCRIPT_MAX ? server_requests(&s) : SCRIPT_MAX;
    for (size_t i = 0; i < got; i++) {
        json_error_t jerr;
        json_t *body = json_loads(s.bodies[i], 0, &jerr);
        assert_non_null(body);
        const char *conn = json_string_value(
            json_object_get(json_object_get(body, "groupLabels"), "connector"));
        assert_non_null(conn);
        assert_int_equal(strncmp(conn, "conn-", 5), 0);
        assert_int_equal(json_array_size(json_object_get(body, "alerts")), 1);
        json_decref(body);
    }
    bool resent = false;
    for (size_t i = 1; i < got; i++)
        resent = resent || strcmp(s.bodies[0], s.bodies[i]) == 0;
    assert_true(resent);
    live_stop(&lv, false);
    server_stop(&s);
    kcw_store_close(st);
}

/* After a restart a still-firing alert is not sent again before
 * repeat_interval, and one that resolved meanwhile is sent as resolved. */
static void test_notification_log_restored(void **state)
{
    fx_t *f = *state;
    kcw_store_t *st = kcw_store_open_memory();
    assert_non_null(st);
    f->group_by[0] = name_connector;
    start(f);
    kcw_notifier_set_store(f->n, st, 0);
    fire(f, 0, "ConnectorFailed", "orders", 0);
    fire(f, 1, "ConnectorFailed", "billing", 0);
    update(f, 0, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, WAIT_MS), 2);
    kcw_notifier_close(f->n, on_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);

    f->n_sent = 0;
    start(f);
    kcw_notifier_set_store(f->n, st, WAIT_MS + 5000);
    resolve(f, 1, WAIT_MS + 4000);
    update(f, WAIT_MS + 5000, 0, 1, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, 2 * WAIT_MS + 5000), 1);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(f->sent[0].resolved, 1);
    assert_true(sent_has(&f->sent[0], f->al[1].fingerprint));
    /* orders: unchanged, so only repeat_interval after the first send. */
    int64_t t;
    while ((t = kcw_notifier_next_due(f->n)) < REPEAT_MS + WAIT_MS) {
        update(f, t, 0, -1);
        assert_int_equal(kcw_notifier_flush_due(f->n, t), 0);
    }
    update(f, t, 0, -1);
    assert_int_equal(kcw_notifier_flush_due(f->n, t), 1);
    assert_int_equal(f->sent[1].firing, 1);
    kcw_notifier_close(f->n, on_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->n = NULL;
    kcw_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_by_external_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_wait_zero_is_immediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_interval_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeat_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolved_sent_once_then_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolved_without_send_resolved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolved_with_others_firing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fired_and_resolved_within_group_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished_alert_resolves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_drops_silently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_drops_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_by_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_silences_inhibition, setup, teardown),
        cmocka_unit_test(test_classify_and_backoff),
        cmocka_unit_test_setup_teardown(test_log_receiver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_retried_then_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_honours_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_400_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_group_blocks_no_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_age_drops_with_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_survives_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_holds_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notification_log_restored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
