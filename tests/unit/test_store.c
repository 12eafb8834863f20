/* test_store.c: the SQLite state store on a temporary state_dir: round trips
 * of alert states, notification groups, the outbox, restart tracks and the
 * audit log; batching in rounds; migration from every earlier schema version;
 * a corrupt database renamed aside; the state_dir lock; a full database
 * degrading to memory; audit retention; reading the audit log read-only
 * while a writer holds the database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kcwatch/log.h"
#include "kcwatch/store.h"

typedef struct fx {
    char dir[256];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kcw-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    FILE *devnull = fopen("/dev/null", "w");
    kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, devnull ? devnull : stderr);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    kcw_log_reset();
    free(f);
    return 0;
}

static kcw_store_t *open_ok(const fx_t *f)
{
    kcw_store_t *s = NULL;
    char err[256] = "";
    assert_int_equal(kcw_store_open(f->dir, &s, err, sizeof(err)), 0);
    assert_non_null(s);
    return s;
}

static void make_alert(kcw_alert_t *a, const char *connector, kcw_alert_state_t st, int64_t at)
{
    memset(a, 0, sizeof(*a));
    assert_int_equal(kcw_labels_set(&a->labels, "alertname", "ConnectTaskFailed"), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "connector", connector), 0);
    assert_int_equal(kcw_labels_set(&a->labels, "task", "0"), 0);
    a->state = st;
    a->active_at_ms = at;
    a->fired_at_ms = st == KCW_ALERT_FIRING ? at + 60000 : 0;
    a->last_eval_ms = at + 70000;
    a->keep_firing_since_ms = st == KCW_ALERT_FIRING ? at + 65000 : 0;
    a->value = 1.5;
}

typedef struct seen_alerts {
    int n;
    char rule[8][64];
    kcw_alert_t a[8];
} seen_alerts_t;

static int on_alert(const char *rule, const kcw_alert_t *a, void *arg)
{
    seen_alerts_t *s = arg;
    if (s->n >= 8)
        return 1;
    snprintf(s->rule[s->n], sizeof(s->rule[0]), "%s", rule);
    s->a[s->n] = *a;
    memset(&s->a[s->n].labels, 0, sizeof(kcw_labels_t));
    assert_int_equal(kcw_labels_copy(&s->a[s->n].labels, &a->labels), 0);
    s->n++;
    return 0;
}

static void seen_clear(seen_alerts_t *s)
{
    for (int i = 0; i < s->n; i++)
        kcw_labels_clear(&s->a[i].labels);
    s->n = 0;
}

static void test_fresh_store_is_wal_and_current(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    assert_true(kcw_store_durable(s));
    assert_int_equal(kcw_store_schema_version(s), KCW_STORE_SCHEMA_VERSION);
    kcw_store_close(s);
    /* WAL mode is a property of the file: a -wal file appears once written. */
    char path[512];
    snprintf(path, sizeof(path), "%s/kcwatch.db", f->dir);
    FILE *db = fopen(path, "rb");
    assert_non_null(db);
    unsigned char hdr[20];
    assert_int_equal(fread(hdr, 1, sizeof(hdr), db), sizeof(hdr));
    fclose(db);
    /* Header bytes 18/19 are the file format write/read versions: 2 = WAL. */
    assert_int_equal(hdr[18], 2);
    assert_int_equal(hdr[19], 2);
}

static void test_alert_state_round_trip(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_alert_t firing, pending;
    make_alert(&firing, "orders", KCW_ALERT_FIRING, 1000000);
    make_alert(&pending, "billing", KCW_ALERT_PENDING, 2000000);
    assert_int_equal(kcw_store_begin(s), 0);
    assert_int_equal(kcw_store_alert_put(s, "connect/ConnectTaskFailed", &firing), 0);
    assert_int_equal(kcw_store_alert_put(s, "connect/ConnectTaskFailed", &pending), 0);
    assert_int_equal(kcw_store_commit(s), 0);
    kcw_store_close(s);

    s = open_ok(f);
    seen_alerts_t seen = {0};
    assert_int_equal(kcw_store_alert_load(s, on_alert, &seen), 2);
    int fi = strcmp(kcw_labels_get(&seen.a[0].labels, "connector"), "orders") == 0 ? 0 : 1;
    const kcw_alert_t *got = &seen.a[fi];
    assert_string_equal(seen.rule[fi], "connect/ConnectTaskFailed");
    assert_true(kcw_labels_equal(&got->labels, &firing.labels));
    assert_int_equal(got->state, KCW_ALERT_FIRING);
    assert_int_equal(got->active_at_ms, 1000000);
    assert_int_equal(got->fired_at_ms, 1060000);
    assert_int_equal(got->keep_firing_since_ms, 1065000);
    assert_int_equal(got->last_eval_ms, 1070000);
    assert_true(got->value == 1.5);
    assert_int_equal(got->fingerprint, kcw_labels_fingerprint(&firing.labels));
    assert_int_equal(seen.a[1 - fi].state, KCW_ALERT_PENDING);
    seen_clear(&seen);

    /* A state change replaces the row; a delete removes it. */
    firing.state = KCW_ALERT_INACTIVE;
    firing.resolved_at_ms = 1200000;
    assert_int_equal(kcw_store_alert_put(s, "connect/ConnectTaskFailed", &firing), 0);
    assert_int_equal(kcw_store_alert_delete(s, "connect/ConnectTaskFailed", &pending.labels), 0);
    assert_int_equal(kcw_store_alert_load(s, on_alert, &seen), 1);
    assert_int_equal(seen.a[0].state, KCW_ALERT_INACTIVE);
    assert_int_equal(seen.a[0].resolved_at_ms, 1200000);
    seen_clear(&seen);
    kcw_labels_clear(&firing.labels);
    kcw_labels_clear(&pending.labels);
    kcw_store_close(s);
}

/* A round is one transaction: a second reader sees nothing of it until the
 * commit. */
static void test_round_is_one_transaction(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    assert_int_equal(kcw_store_begin(s), 0);
    assert_int_equal(kcw_store_begin(s), 0); /* nested: same round */
    kcw_audit_t a = {.time_ms = 5000, .kind = KCW_AUDIT_NOTIFY, .receiver = "ops",
                     .group_key = "{}:{}", .status = "sent", .http_status = 200};
    for (int i = 0; i < 3; i++)
        assert_int_equal(kcw_store_audit_add(s, &a), 0);
    assert_int_equal(kcw_store_commit(s), 0); /* inner: nothing committed yet */
    char err[256];
    assert_int_equal(kcw_store_audit_read(f->dir, 0, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(kcw_store_commit(s), 0);
    assert_int_equal(kcw_store_audit_read(f->dir, 0, NULL, NULL, err, sizeof(err)), 3);
    assert_int_equal(kcw_store_commit(s), -EINVAL); /* no round open */
    kcw_store_close(s);
}

typedef struct seen_groups {
    int n;
    int64_t last;
    size_t n_firing, n_resolved;
    uint64_t firing[4];
} seen_groups_t;

static int on_group(const kcw_store_group_t *g, void *arg)
{
    seen_groups_t *s = arg;
    s->n++;
    assert_string_equal(g->receiver, "ops");
    assert_string_equal(g->group_key, "{}:{alertname=\"X\"}");
    s->last = g->last_notified_ms;
    s->n_firing = g->n_sent_firing;
    s->n_resolved = g->n_sent_resolved;
    for (size_t i = 0; i < g->n_sent_firing && i < 4; i++)
        s->firing[i] = g->sent_firing[i];
    return 0;
}

static void test_group_round_trip(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    uint64_t firing[] = {3, 0xfedcba9876543210ULL};
    kcw_store_group_t g = {.receiver = "ops",
                           .group_key = "{}:{alertname=\"X\"}",
                           .last_notified_ms = 777,
                           .sent_firing = firing,
                           .n_sent_firing = 2};
    assert_int_equal(kcw_store_group_put(s, &g), 0);
    kcw_store_close(s);
    s = open_ok(f);
    seen_groups_t seen = {0};
    assert_int_equal(kcw_store_group_load(s, on_group, &seen), 1);
    assert_int_equal(seen.last, 777);
    assert_int_equal(seen.n_firing, 2);
    assert_int_equal(seen.n_resolved, 0);
    assert_true(seen.firing[1] == 0xfedcba9876543210ULL);
    assert_int_equal(kcw_store_group_delete(s, "ops", g.group_key), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_group_load(s, on_group, &seen), 0);
    kcw_store_close(s);
}

typedef struct seen_outbox {
    int n;
    int64_t ids[8];
    int attempts[8];
    int target[8];
    char payload[8][32];
} seen_outbox_t;

static int on_outbox(const kcw_store_outbox_t *o, void *arg)
{
    seen_outbox_t *s = arg;
    s->ids[s->n] = o->id;
    s->attempts[s->n] = o->attempts;
    s->target[s->n] = o->target;
    snprintf(s->payload[s->n], sizeof(s->payload[0]), "%s", o->payload);
    s->n++;
    return 0;
}

typedef struct seen_silences {
    int n;
    char id[2][KCW_SILENCE_ID_LEN + 1];
    int64_t ends[2];
    size_t n_matchers[2];
} seen_silences_t;

static int on_silence(const kcw_silence_t *sil, void *arg)
{
    seen_silences_t *s = arg;
    if (s->n < 2) {
        snprintf(s->id[s->n], sizeof(s->id[0]), "%s", sil->id);
        s->ends[s->n] = sil->ends_at_ms;
        s->n_matchers[s->n] = sil->matchers.n;
    }
    s->n++;
    return 0;
}

static void test_silence_round_trip(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_silence_t sil = {0};
    snprintf(sil.id, sizeof(sil.id), "%s", "11111111-2222-4333-8444-555555555555");
    char err[128];
    assert_int_equal(kcw_matchers_parse(&sil.matchers, "{connector=~\"db-.*\", cluster=\"c1\"}",
                                        err, sizeof(err)),
                     0);
    sil.starts_at_ms = 1000;
    sil.ends_at_ms = 5000;
    sil.updated_at_ms = 1000;
    sil.comment = strdup("deploy");
    assert_int_equal(kcw_store_silence_put(s, &sil), 0);
    sil.ends_at_ms = 2000; /* expired later: the row is replaced */
    assert_int_equal(kcw_store_silence_put(s, &sil), 0);
    kcw_store_close(s);

    s = open_ok(f);
    seen_silences_t seen = {0};
    assert_int_equal(kcw_store_silence_load(s, on_silence, &seen), 1);
    assert_string_equal(seen.id[0], sil.id);
    assert_int_equal(seen.ends[0], 2000);
    assert_int_equal(seen.n_matchers[0], 2);
    assert_int_equal(kcw_store_silence_delete(s, sil.id), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_silence_load(s, on_silence, &seen), 0);
    kcw_store_close(s);
    kcw_silence_clear(&sil);
}

static void test_outbox_round_trip(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    int64_t id1 = 0, id2 = 0;
    kcw_store_outbox_t o = {.receiver = "ops", .group_key = "k1", .payload = "{\"a\":1}",
                            .n_alerts = 1, .firing = true, .created_ms = 100};
    assert_int_equal(kcw_store_outbox_add(s, &o, &id1), 0);
    o.group_key = "k2";
    o.payload = "{\"b\":2}";
    o.target = 1; /* the second URL of the receiver */
    assert_int_equal(kcw_store_outbox_add(s, &o, &id2), 0);
    assert_true(id2 > id1 && id1 > 0);
    assert_int_equal(kcw_store_outbox_retry(s, id1, 3, 999), 0);
    kcw_store_close(s);

    s = open_ok(f);
    seen_outbox_t seen = {0};
    assert_int_equal(kcw_store_outbox_load(s, on_outbox, &seen), 2);
    assert_int_equal(seen.ids[0], id1); /* oldest first */
    assert_int_equal(seen.attempts[0], 3);
    assert_string_equal(seen.payload[1], "{\"b\":2}");
    assert_int_equal(seen.target[0], 0);
    assert_int_equal(seen.target[1], 1);
    assert_int_equal(kcw_store_outbox_delete(s, id1), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_outbox_load(s, on_outbox, &seen), 1);
    assert_int_equal(seen.ids[0], id2);
    kcw_store_close(s);
}

typedef struct seen_tracks {
    int n;
    kcw_restart_track_t policy;
    char rule[64];
    int task, scope;
    size_t n_marks;
    int mark_id;
    uint64_t mark_hash;
    bool mark_left;
    bool mark_held;
    uint64_t said;
    bool reported;
} seen_tracks_t;

static int on_track(const kcw_store_track_t *t, void *arg)
{
    seen_tracks_t *s = arg;
    s->n++;
    s->policy = *t->policy;
    snprintf(s->rule, sizeof(s->rule), "%s", t->rule ? t->rule : "");
    s->task = t->task;
    s->scope = t->scope;
    s->n_marks = t->n_marks;
    s->said = t->said;
    s->reported = t->exhausted_reported;
    if (t->n_marks > 0) {
        s->mark_id = t->mark_ids[0];
        s->mark_hash = t->mark_hashes[0];
        s->mark_left = t->mark_left[0];
        s->mark_held = t->mark_held && t->mark_held[0];
    }
    return 0;
}

static void test_track_round_trip(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_restart_track_t p;
    memset(&p, 0, sizeof(p));
    p.attempts_ms[0] = 1000;
    p.attempts_ms[1] = 2000;
    p.n_attempts = 2;
    p.consecutive = 2;
    p.next_allowed_ms = 9000;
    p.last_restart_ms = 2000;
    p.verifying = true;
    p.exhausted = true;
    int ids[] = {0};
    uint64_t hashes[] = {0x8000000000000001ULL};
    bool left[] = {true};
    bool held[] = {true};
    kcw_store_track_t t = {.cluster = "c1", .connector = "orders", .task = 0, .scope = 1,
                           .rule = "ConnectTaskFailed", .trace = "java.lang.Boom",
                           .policy = &p, .said = 0xfedcba9876543210ULL,
                           .exhausted_reported = true, .mark_ids = ids, .mark_hashes = hashes,
                           .mark_left = left, .mark_held = held, .n_marks = 1};
    assert_int_equal(kcw_store_track_put(s, &t), 0);
    kcw_store_close(s);
    s = open_ok(f);
    seen_tracks_t seen = {0};
    assert_int_equal(kcw_store_track_load(s, on_track, &seen), 1);
    assert_int_equal(seen.policy.n_attempts, 2);
    assert_int_equal(seen.policy.attempts_ms[1], 2000);
    assert_int_equal(seen.policy.consecutive, 2);
    assert_int_equal(seen.policy.next_allowed_ms, 9000);
    assert_true(seen.policy.verifying);
    assert_true(seen.policy.exhausted);
    assert_false(seen.policy.recovered);
    assert_string_equal(seen.rule, "ConnectTaskFailed");
    assert_int_equal(seen.scope, 1);
    assert_int_equal(seen.n_marks, 1);
    assert_true(seen.mark_hash == 0x8000000000000001ULL);
    assert_true(seen.mark_left);
    assert_true(seen.mark_held); /* an unfixable task left out stays left out */
    assert_true(seen.said == 0xfedcba9876543210ULL);
    assert_true(seen.reported);
    kcw_store_close(s);

    /* a row written before held marks existed: [id, hash, left] loads as not held */
    char path[512];
    snprintf(path, sizeof(path), "%s/kcwatch.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE restart_track SET marks = "
                                      "'[[0,\"8000000000000001\",true]]'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(f);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_track_load(s, on_track, &seen), 1);
    assert_int_equal(seen.n_marks, 1);
    assert_true(seen.mark_left);
    assert_false(seen.mark_held);
    assert_int_equal(kcw_store_track_delete(s, "c1", "orders", 0), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_track_load(s, on_track, &seen), 0);
    kcw_store_close(s);
}

typedef struct seen_audit {
    int n;
    char connector[4][32];
    char request[4][128];
    int64_t time[4];
    long http[4];
    int task[4];
} seen_audit_t;

static int on_audit(const kcw_audit_t *a, void *arg)
{
    seen_audit_t *s = arg;
    if (s->n < 4) {
        snprintf(s->connector[s->n], 32, "%s", a->connector ? a->connector : "");
        snprintf(s->request[s->n], 128, "%s", a->request ? a->request : "");
        s->time[s->n] = a->time_ms;
        s->http[s->n] = a->http_status;
        s->task[s->n] = a->task;
    }
    s->n++;
    return 0;
}

static void test_audit_retention(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    int64_t day = 24LL * 3600 * 1000, now = 100 * day;
    kcw_audit_t a = {.kind = KCW_AUDIT_RESTART, .cluster = "c1", .connector = "old",
                     .task = 2, .rule = "R", .reason = "sent",
                     .request = "POST http://w1/connectors/old/restart?includeTasks=true",
                     .http_status = 202};
    a.time_ms = now - 31 * day;
    assert_int_equal(kcw_store_audit_add(s, &a), 0);
    a.connector = "recent";
    a.time_ms = now - 29 * day;
    assert_int_equal(kcw_store_audit_add(s, &a), 0);
    /* Default retention: 30 days. */
    assert_int_equal(kcw_store_audit_prune(s, now), 1);
    seen_audit_t seen = {0};
    assert_int_equal(kcw_store_audit_query(s, 0, on_audit, &seen), 1);
    assert_string_equal(seen.connector[0], "recent");
    assert_int_equal(seen.task[0], 2);
    assert_int_equal(seen.http[0], 202);
    assert_string_equal(seen.request[0], a.request);
    /* A configured retention wins. */
    kcw_store_set_audit_retention(s, 7 * day);
    assert_int_equal(kcw_store_audit_prune(s, now), 1);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_audit_query(s, 0, on_audit, &seen), 0);
    kcw_store_close(s);
}

static void on_hold(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

/* The prune timer runs on the loop and never keeps it alive. */
static void test_prune_timer(void **state)
{
    fx_t *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kcw_store_t *s = open_ok(f);
    kcw_audit_t a = {.kind = KCW_AUDIT_NOTIFY, .time_ms = 1000, .receiver = "ops",
                     .status = "sent"};
    assert_int_equal(kcw_store_audit_add(s, &a), 0);
    assert_int_equal(kcw_store_prune_start(s, &loop, 3600 * 1000), 0);
    /* The prune timer is unref'd: a timer of the test's keeps the loop up
     * until the first prune (due at once) has run. */
    uv_timer_t hold;
    assert_int_equal(uv_timer_init(&loop, &hold), 0);
    assert_int_equal(uv_timer_start(&hold, on_hold, 1, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    seen_audit_t seen = {0};
    assert_int_equal(kcw_store_audit_query(s, 0, on_audit, &seen), 0);
    kcw_store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Every earlier schema version, with data written by it, migrates to the
 * current one without losing that data. */
static void test_migrations_from_every_version(void **state)
{
    fx_t *f = *state;
    for (int v = 1; v < KCW_STORE_SCHEMA_VERSION; v++) {
        char dir[300];
        snprintf(dir, sizeof(dir), "%s/v%d", f->dir, v);
        kcw_store_t *s = NULL;
        char err[256] = "";
        assert_int_equal(kcw_store_open_version(dir, v, &s, err, sizeof(err)), 0);
        assert_int_equal(kcw_store_schema_version(s), v);
        kcw_alert_t al;
        make_alert(&al, "orders", KCW_ALERT_FIRING, 5000);
        assert_int_equal(kcw_store_alert_put(s, "g/R", &al), 0);
        kcw_audit_t a = {.kind = KCW_AUDIT_RESTART, .time_ms = 42, .cluster = "c1",
                         .connector = "orders", .task = 0, .reason = "sent"};
        assert_int_equal(kcw_store_audit_add(s, &a), 0);
        kcw_store_close(s);

        assert_int_equal(kcw_store_open(dir, &s, err, sizeof(err)), 0);
        assert_int_equal(kcw_store_schema_version(s), KCW_STORE_SCHEMA_VERSION);
        assert_true(kcw_store_durable(s));
        seen_alerts_t seen = {0};
        assert_int_equal(kcw_store_alert_load(s, on_alert, &seen), 1);
        assert_true(kcw_labels_equal(&seen.a[0].labels, &al.labels));
        seen_clear(&seen);
        seen_audit_t sa = {0};
        assert_int_equal(kcw_store_audit_query(s, 0, on_audit, &sa), 1);
        /* What the newer version added works on the migrated database. */
        int64_t id = 0;
        kcw_store_outbox_t o = {.receiver = "ops", .group_key = "k", .payload = "{}",
                                .n_alerts = 1, .firing = true, .created_ms = 1, .attempts = 2,
                                .next_attempt_ms = 3};
        assert_int_equal(kcw_store_outbox_add(s, &o, &id), 0);
        seen_outbox_t so = {0};
        assert_int_equal(kcw_store_outbox_load(s, on_outbox, &so), 1);
        assert_int_equal(so.attempts[0], 2);
        kcw_labels_clear(&al.labels);
        kcw_store_close(s);
        char p[400];
        const char *files[] = {"kcwatch.db", "kcwatch.db-wal", "kcwatch.db-shm", "kcwatch.lock"};
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    }
}

static bool dir_has_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            found = true;
    if (d)
        closedir(d);
    return found;
}

static void test_corrupt_database_renamed_aside(void **state)
{
    fx_t *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/kcwatch.db", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", fp);
    fclose(fp);
    kcw_store_t *s = open_ok(f);
    assert_true(kcw_store_durable(s));
    assert_int_equal(kcw_store_schema_version(s), KCW_STORE_SCHEMA_VERSION);
    assert_true(dir_has_prefix(f->dir, "kcwatch.db.corrupt-"));
    kcw_alert_t al;
    make_alert(&al, "orders", KCW_ALERT_FIRING, 5000);
    assert_int_equal(kcw_store_alert_put(s, "g/R", &al), 0);
    kcw_labels_clear(&al.labels);
    kcw_store_close(s);
}

static void test_second_open_refused(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    /* flock locks belong to an open file description, so a second open in
     * this process conflicts exactly as a second kcwatch would. */
    kcw_store_t *s2 = NULL;
    char err[256] = "";
    assert_int_equal(kcw_store_open(f->dir, &s2, err, sizeof(err)), -EBUSY);
    assert_null(s2);
    char want[400];
    snprintf(want, sizeof(want), "%s is in use by another kcwatch (pid %ld)", f->dir,
             (long)getpid());
    assert_string_equal(err, want);
    kcw_store_close(s);
    /* Released on close: the next one gets it. */
    s = open_ok(f);
    kcw_store_close(s);
}

/* A full disk turns the store into memory: writes keep working, the error
 * is returned once, and what the file held before stays readable there. */
static void test_full_database_degrades_to_memory(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_alert_t al;
    make_alert(&al, "orders", KCW_ALERT_FIRING, 5000);
    assert_int_equal(kcw_store_alert_put(s, "g/R", &al), 0);
    assert_int_equal(kcw_store_limit_pages(s, 1), 0);
    static char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    kcw_audit_t a = {.kind = KCW_AUDIT_RESTART, .time_ms = 1, .connector = "c", .trace = big};
    assert_int_equal(kcw_store_begin(s), 0);
    for (int i = 0; i < 50; i++)
        kcw_store_audit_add(s, &a);
    assert_int_equal(kcw_store_commit(s), -ENOSPC);
    assert_false(kcw_store_durable(s));
    /* Still usable. */
    assert_int_equal(kcw_store_begin(s), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(kcw_store_audit_add(s, &a), 0);
    assert_int_equal(kcw_store_commit(s), 0);
    seen_audit_t sa = {0};
    /* The failed round went on in memory after the failure. */
    assert_true(kcw_store_audit_query(s, 0, on_audit, &sa) >= 50);
    seen_alerts_t seen = {0};
    assert_int_equal(kcw_store_alert_load(s, on_alert, &seen), 1);
    seen_clear(&seen);
    kcw_labels_clear(&al.labels);
    kcw_store_close(s);
}

/* A row added in a round that is then rolled back (here: the disk fills
 * mid-round and the store moves to memory with what was committed) leaves
 * its id unused: a later row gets another, so the delivery that still holds
 * the old id deletes nothing of the later one's when it ends. */
static void test_outbox_ids_not_reused_after_rollback(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_store_outbox_t o = {.receiver = "ops", .group_key = "k1", .payload = "{\"a\":1}",
                            .n_alerts = 1, .firing = true, .created_ms = 100};
    int64_t kept = 0, rolled = 0, later = 0;
    assert_int_equal(kcw_store_outbox_add(s, &o, &kept), 0);
    assert_int_equal(kcw_store_limit_pages(s, 1), 0);
    static char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    kcw_audit_t a = {.kind = KCW_AUDIT_RESTART, .time_ms = 1, .connector = "c", .trace = big};
    assert_int_equal(kcw_store_begin(s), 0);
    o.group_key = "k2";
    assert_int_equal(kcw_store_outbox_add(s, &o, &rolled), 0);
    for (int i = 0; i < 50 && kcw_store_durable(s); i++)
        kcw_store_audit_add(s, &a);
    assert_false(kcw_store_durable(s)); /* moved to memory: the round's rows are gone */
    assert_int_equal(kcw_store_commit(s), -ENOSPC);
    seen_outbox_t seen = {0};
    assert_int_equal(kcw_store_outbox_load(s, on_outbox, &seen), 1);
    assert_int_equal(seen.ids[0], kept);

    o.group_key = "k3";
    o.payload = "{\"c\":3}";
    assert_int_equal(kcw_store_outbox_add(s, &o, &later), 0);
    assert_true(later != rolled && later != kept);
    /* The rolled-back row's delivery ends: the later row stays. */
    assert_int_equal(kcw_store_outbox_delete(s, rolled), 0);
    char *payload = NULL;
    assert_int_equal(kcw_store_outbox_payload(s, later, &payload), 0);
    assert_string_equal(payload, "{\"c\":3}");
    free(payload);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kcw_store_outbox_load(s, on_outbox, &seen), 2);
    kcw_store_close(s);
}

static void test_state_dir_not_creatable(void **state)
{
    fx_t *f = *state;
    char file[512], dir[600];
    snprintf(file, sizeof(file), "%s/plainfile", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(dir, sizeof(dir), "%s/state", file); /* parent is a file: ENOTDIR */
    kcw_store_t *s = NULL;
    char err[256];
    assert_int_equal(kcw_store_open(dir, &s, err, sizeof(err)), 0);
    assert_false(kcw_store_durable(s));
    kcw_alert_t al;
    make_alert(&al, "orders", KCW_ALERT_FIRING, 5000);
    assert_int_equal(kcw_store_alert_put(s, "g/R", &al), 0);
    kcw_labels_clear(&al.labels);
    kcw_store_close(s);
}

/* The history command reads while the daemon holds the lock and writes. */
static void test_audit_read_while_writer_open(void **state)
{
    fx_t *f = *state;
    kcw_store_t *s = open_ok(f);
    kcw_audit_t a = {.kind = KCW_AUDIT_RESTART, .cluster = "c1", .connector = "orders",
                     .task = -1, .reason = "skipped", .outcome = "not restarted: PAUSED"};
    for (int i = 0; i < 3; i++) {
        a.time_ms = 1000 * (i + 1);
        assert_int_equal(kcw_store_audit_add(s, &a), 0);
    }
    assert_int_equal(kcw_store_begin(s), 0); /* a round in progress */
    a.time_ms = 4000;
    assert_int_equal(kcw_store_audit_add(s, &a), 0);
    seen_audit_t seen = {0};
    char err[256] = "";
    assert_int_equal(kcw_store_audit_read(f->dir, 2000, on_audit, &seen, err, sizeof(err)), 2);
    assert_int_equal(seen.time[0], 2000);
    assert_int_equal(seen.task[0], -1);
    assert_int_equal(kcw_store_commit(s), 0);
    kcw_store_close(s);
    assert_int_equal(kcw_store_audit_read("/nonexistent-kcw", 0, on_audit, &seen, err,
                                          sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent-kcw/kcwatch.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_store_is_wal_and_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_is_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silence_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_track_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_from_every_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_database_renamed_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_database_degrades_to_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_ids_not_reused_after_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_dir_not_creatable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_read_while_writer_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
