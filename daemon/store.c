/* store.c: durable state in SQLite (see store.h).
 *
 * Everything that must outlive the process goes through here and nothing
 * else in kcwatch talks to SQLite. Opening takes the state_dir's lock, opens
 * <state_dir>/kcwatch.db, checks it (quick_check), switches it to WAL and
 * migrates its schema forward one version at a time in one transaction per
 * step. Each public write is one prepared statement; the caller groups them
 * into rounds (kcw_store_begin/commit), so a poll or an evaluation costs one
 * fsync-free WAL commit (synchronous=NORMAL: a kill -9 loses nothing that
 * was committed; only a power cut may lose the last commits).
 *
 * When the database cannot be written the store moves to an in-memory
 * database holding a copy of what the file held (the SQLite backup API), logs
 * an ERROR and carries on: callers never see the difference except through
 * kcw_store_durable() and the returned error of the commit that failed. */
#include "kcwatch/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/log.h"

#define BUSY_TIMEOUT_MS 1000
#define LABELS_JSON_MAX (256 * 1024)

/* Schema, one entry per version: migrations[v - 1] takes a database from
 * version v - 1 to v. Never edit a shipped step; add a new one. */
static const char *const migrations[KCW_STORE_SCHEMA_VERSION] = {
    /* 1: the first durable state. */
    "CREATE TABLE alert_state ("
    "  rule TEXT NOT NULL, fp INTEGER NOT NULL, labels TEXT NOT NULL,"
    "  state INTEGER NOT NULL, value REAL NOT NULL DEFAULT 0,"
    "  active_at INTEGER NOT NULL DEFAULT 0, fired_at INTEGER NOT NULL DEFAULT 0,"
    "  resolved_at INTEGER NOT NULL DEFAULT 0, last_eval INTEGER NOT NULL DEFAULT 0,"
    "  keep_firing_since INTEGER NOT NULL DEFAULT 0, annotations TEXT,"
    "  PRIMARY KEY (rule, fp));"
    "CREATE TABLE notify_group ("
    "  receiver TEXT NOT NULL, group_key TEXT NOT NULL, last_notified INTEGER NOT NULL,"
    "  sent_firing BLOB, sent_resolved BLOB, PRIMARY KEY (receiver, group_key));"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, group_key TEXT NOT NULL,"
    "  payload TEXT NOT NULL, n_alerts INTEGER NOT NULL, firing INTEGER NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE restart_track ("
    "  cluster TEXT NOT NULL, connector TEXT NOT NULL, task INTEGER NOT NULL,"
    "  scope INTEGER NOT NULL, rule TEXT, trace TEXT, policy TEXT NOT NULL, marks TEXT,"
    "  PRIMARY KEY (cluster, connector, task));"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  cluster TEXT, connector TEXT, task INTEGER, rule TEXT, reason TEXT, trace TEXT,"
    "  request TEXT, response TEXT, outcome TEXT, receiver TEXT, group_key TEXT,"
    "  status TEXT, http_status INTEGER);",
    /* 2: retry schedule kept with each queued notification; indices for
     * retention pruning and `kcwatch history --since/--connector`. */
    "ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN next_attempt INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX audit_time ON audit (time);"
    "CREATE INDEX audit_connector ON audit (connector, time);",
    /* 3: which URL of a receiver a queued notification goes to (every
     * member of an Alertmanager HA pair has its own); silences made through
     * the API, as Alertmanager's JSON. */
    ("ALTER TABLE outbox ADD COLUMN target INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE silence (id TEXT PRIMARY KEY, body TEXT NOT NULL);"),
};

typedef enum {
    ST_ALERT_PUT = 0,
    ST_ALERT_DEL,
    ST_ALERT_LOAD,
    ST_GROUP_PUT,
    ST_GROUP_DEL,
    ST_GROUP_LOAD,
    ST_OUTBOX_ADD,
    ST_OUTBOX_RETRY,
    ST_OUTBOX_DEL,
    ST_OUTBOX_LOAD,
    ST_OUTBOX_PAYLOAD,
    ST_OUTBOX_MAX_ID,
    ST_SILENCE_PUT,
    ST_SILENCE_DEL,
    ST_SILENCE_LOAD,
    ST_TRACK_PUT,
    ST_TRACK_DEL,
    ST_TRACK_LOAD,
    ST_AUDIT_ADD,
    ST_AUDIT_PRUNE,
    ST_AUDIT_QUERY,
    ST_AUDIT_LATEST,
    ST_COUNT
} stmt_id_t;

static const char *const stmt_sql[ST_COUNT] = {
    [ST_ALERT_PUT] = "INSERT OR REPLACE INTO alert_state (rule, fp, labels, state, value, "
                     "active_at, fired_at, resolved_at, last_eval, keep_firing_since, "
                     "annotations) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    [ST_ALERT_DEL] = "DELETE FROM alert_state WHERE rule = ? AND fp = ?",
    [ST_ALERT_LOAD] = "SELECT rule, labels, state, value, active_at, fired_at, resolved_at, "
                      "last_eval, keep_firing_since, annotations FROM alert_state",
    [ST_GROUP_PUT] = "INSERT OR REPLACE INTO notify_group (receiver, group_key, last_notified, "
                     "sent_firing, sent_resolved) VALUES (?,?,?,?,?)",
    [ST_GROUP_DEL] = "DELETE FROM notify_group WHERE receiver = ? AND group_key = ?",
    [ST_GROUP_LOAD] = "SELECT receiver, group_key, last_notified, sent_firing, sent_resolved "
                      "FROM notify_group",
    [ST_OUTBOX_ADD] = "INSERT INTO outbox (receiver, group_key, payload, n_alerts, firing, "
                      "created, attempts, next_attempt, target, id) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?)",
    [ST_OUTBOX_MAX_ID] = "SELECT coalesce(max(id), 0) FROM outbox",
    [ST_OUTBOX_RETRY] = "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE id = ?",
    [ST_OUTBOX_DEL] = "DELETE FROM outbox WHERE id = ?",
    [ST_OUTBOX_PAYLOAD] = "SELECT payload FROM outbox WHERE id = ?",
    [ST_OUTBOX_LOAD] = "SELECT id, receiver, group_key, payload, n_alerts, firing, created, "
                       "attempts, next_attempt, target FROM outbox ORDER BY id",
    [ST_SILENCE_PUT] = "INSERT OR REPLACE INTO silence (id, body) VALUES (?,?)",
    [ST_SILENCE_DEL] = "DELETE FROM silence WHERE id = ?",
    [ST_SILENCE_LOAD] = "SELECT id, body FROM silence",
    [ST_TRACK_PUT] = "INSERT OR REPLACE INTO restart_track (cluster, connector, task, scope, "
                     "rule, trace, policy, marks) VALUES (?,?,?,?,?,?,?,?)",
    [ST_TRACK_DEL] = "DELETE FROM restart_track WHERE cluster = ? AND connector = ? AND task = ?",
    [ST_TRACK_LOAD] = "SELECT cluster, connector, task, scope, rule, trace, policy, marks "
                      "FROM restart_track",
    [ST_AUDIT_ADD] = "INSERT INTO audit (time, kind, cluster, connector, task, rule, reason, "
                     "trace, request, response, outcome, receiver, group_key, status, "
                     "http_status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [ST_AUDIT_PRUNE] = "DELETE FROM audit WHERE time < ?",
    [ST_AUDIT_QUERY] = "SELECT id, time, kind, cluster, connector, task, rule, reason, trace, "
                       "request, response, outcome, receiver, group_key, status, http_status "
                       "FROM audit WHERE time >= ? ORDER BY time, id",
    /* newest first by rowid: stops after limit rows without a sort */
    [ST_AUDIT_LATEST] = "SELECT id, time, kind, cluster, connector, task, rule, reason, trace, "
                        "request, response, outcome, receiver, group_key, status, http_status "
                        "FROM audit WHERE kind = ? ORDER BY id DESC LIMIT ?",
};

struct kcw_store {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    char *dir;
    char *path; /* NULL when in memory from the start */
    int lock_fd;
    bool durable;
    int depth;       /* rounds open */
    int round_error; /* negative errno of a write of the open round that failed */
    int64_t retention_ms;
    /* The next outbox row's id, 0 until the first row: ids only grow while
     * the process runs. SQLite's own choice (the largest id + 1) would give
     * a row rolled back with its round (a failed commit, the move to memory)
     * the id of a later row, and the delivery still holding the old id would
     * delete that row when it ends: a notification lost at its next attempt,
     * whose payload is read from the row. */
    int64_t outbox_next_id;
    uv_timer_t prune_timer;
    bool prune_running;
};

/* --- small helpers ---------------------------------------------------------- */

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen > 0)
        snprintf(err, errlen, fmt, a ? a : "", b ? b : "");
}

/* Errors that mean "this file cannot be written any more". */
static bool disk_error(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        return true;
    default:
        return false;
    }
}

static bool corrupt_error(int rc)
{
    return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

static int errno_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return -EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

static void finalize_all(kcw_store_t *s)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->stmts[i]);
        s->stmts[i] = NULL;
    }
}

static sqlite3_stmt *stmt(kcw_store_t *s, stmt_id_t id)
{
    if (!s->stmts[id] &&
        sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id],
                           NULL) != SQLITE_OK) {
        kcw_log(KCW_LOG_ERROR, "state store: cannot prepare a statement", "error",
                sqlite3_errmsg(s->db), NULL);
        s->stmts[id] = NULL;
        return NULL;
    }
    sqlite3_reset(s->stmts[id]);
    sqlite3_clear_bindings(s->stmts[id]);
    return s->stmts[id];
}

/* Binds text cut to max bytes (NULL binds NULL). Cutting may split a UTF-8
 * sequence; readers treat the columns as bytes. */
static int bind_text(sqlite3_stmt *st, int at, const char *v, size_t max)
{
    if (!v)
        return sqlite3_bind_null(st, at);
    size_t len = strnlen(v, max);
    return sqlite3_bind_text(st, at, v, (int)len, SQLITE_TRANSIENT);
}

static const char *col_text(sqlite3_stmt *st, int at)
{
    return (const char *)sqlite3_column_text(st, at);
}

static int exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int read_user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Migrates db from its version up to target, one transaction per step. */
static int migrate(sqlite3 *db, int target)
{
    int version = 0;
    int rc = read_user_version(db, &version);
    if (rc != SQLITE_OK)
        return rc;
    if (version > KCW_STORE_SCHEMA_VERSION)
        return SQLITE_MISMATCH;
    for (int v = version + 1; v <= target; v++) {
        char set[64];
        snprintf(set, sizeof(set), "PRAGMA user_version = %d", v);
        rc = exec_sql(db, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK)
            rc = exec_sql(db, migrations[v - 1]);
        if (rc == SQLITE_OK)
            rc = exec_sql(db, set);
        if (rc == SQLITE_OK)
            rc = exec_sql(db, "COMMIT");
        if (rc != SQLITE_OK) {
            exec_sql(db, "ROLLBACK");
            return rc;
        }
        if (v > 1) {
            kcw_log(KCW_LOG_INFO, "state store: schema migrated", KCW_LOG_INT("from", v - 1),
                    KCW_LOG_INT("to", v), NULL);
        }
    }
    return SQLITE_OK;
}

/* Copies src's main database into dst (the SQLite backup API). */
static int copy_into(sqlite3 *dst, sqlite3 *src)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b)
        return sqlite3_errcode(dst);
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Moves the state into an in-memory database (a copy of the file's committed
 * state when it can still be read). Never fails short of OOM. */
static int go_memory(kcw_store_t *s, const char *why, int max_version)
{
    sqlite3 *mem = NULL;
    if (sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        sqlite3_close(mem);
        return -ENOMEM;
    }
    finalize_all(s);
    int copied = SQLITE_ERROR;
    if (s->db) {
        if (!sqlite3_get_autocommit(s->db))
            exec_sql(s->db, "ROLLBACK");
        copied = copy_into(mem, s->db);
        sqlite3_close(s->db);
        s->db = NULL;
    }
    if (copied != SQLITE_OK && s->path && access(s->path, R_OK) == 0) {
        /* A WAL database on a read-only filesystem cannot be opened the
         * usual way (no -shm can be made); as immutable it can be read. */
        char *uri = sqlite3_mprintf("file:%s?immutable=1", s->path);
        sqlite3 *ro = NULL;
        if (uri && sqlite3_open_v2(uri, &ro, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) ==
                       SQLITE_OK)
            copy_into(mem, ro);
        sqlite3_close(ro);
        sqlite3_free(uri);
    }
    s->db = mem;
    int rc = migrate(mem, max_version);
    if (rc != SQLITE_OK) {
        /* The copy is unusable (e.g. a newer schema): start empty. */
        sqlite3_close(mem);
        if (sqlite3_open_v2(":memory:", &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            NULL) != SQLITE_OK ||
            migrate(s->db, max_version) != SQLITE_OK)
            return -ENOMEM;
    }
    if (s->depth > 0)
        exec_sql(s->db, "BEGIN");
    if (s->durable || !s->path)
        kcw_log(KCW_LOG_ERROR,
                "state store: cannot write the state database; keeping state in memory only "
                "(alerts, budgets and queued notifications will not survive a restart)",
                "path", s->path ? s->path : ":memory:", "error", why, NULL);
    s->durable = false;
    return 0;
}

/* A write failed with rc: a disk error moves the store to memory at once
 * (SQLite may already have rolled the round back; anything written to the
 * file after that would commit on its own). The round goes on in memory and
 * its commit reports the error. */
static int write_failed(kcw_store_t *s, int rc)
{
    if (disk_error(rc) && s->durable) {
        if (s->depth > 0 && s->round_error == 0)
            s->round_error = errno_of(rc);
        go_memory(s, sqlite3_errstr(rc), KCW_STORE_SCHEMA_VERSION);
    } else if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        kcw_log(KCW_LOG_ERROR, "state store: write failed", "error", sqlite3_errstr(rc), NULL);
    }
    return errno_of(rc);
}

/* Steps a write statement to its end. */
static int step_write(kcw_store_t *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return 0;
    return write_failed(s, rc);
}

/* --- open / close ------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Takes the state_dir's lock: 0, -EBUSY (held by another process), or
 * another negative errno when the lock file cannot be made (read-only dir:
 * then nobody else can write there either). */
static int lock_dir(kcw_store_t *s, char *err, size_t errlen)
{
    char *lp = path_join(s->dir, KCW_STORE_LOCK_NAME);
    if (!lp)
        return -ENOMEM;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EROFS || errno == EACCES))
        fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(lp);
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char holder[32] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\r\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s is in use by another kcwatch (pid %s)", s->dir,
                     holder[0] ? holder : "unknown");
            set_err(err, errlen, "%s%s", msg, NULL);
            free(lp);
            return -EBUSY;
        }
        free(lp);
        return -e;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The pid is only a hint for the refusal message. */
    }
    free(lp);
    s->lock_fd = fd;
    return 0;
}

/* Renames a database that cannot be read aside, with its WAL and shm. */
static void rename_aside(const char *path)
{
    char stamp[32], aside[4096];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof(aside), "%s.corrupt-%s", path, stamp);
    if (rename(path, aside) != 0) {
        kcw_log(KCW_LOG_ERROR, "state store: cannot rename the unreadable database aside",
                "path", path, "error", strerror(errno), NULL);
        unlink(path);
    } else {
        kcw_log(KCW_LOG_ERROR,
                "state store: the state database is unreadable; renamed it aside and starting "
                "with fresh state",
                "path", path, "renamed_to", aside, NULL);
    }
    const char *suffixes[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; i++) {
        char side[4096], side_aside[4200];
        snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        snprintf(side_aside, sizeof(side_aside), "%s%s", aside, suffixes[i]);
        if (rename(side, side_aside) != 0 && errno != ENOENT)
            unlink(side);
    }
}

/* Runs a pragma answering one text row: SQLITE_OK when it is `want`,
 * otherwise `mismatch`, or the error that stopped it. */
static int pragma_expect(sqlite3 *db, const char *sql, const char *want, int mismatch)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *res = (const char *)sqlite3_column_text(st, 0);
            rc = res && strcmp(res, want) == 0 ? SQLITE_OK : mismatch;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Opens path and checks it can be read. SQLITE_OK, a corruption code, or
 * another error. */
static int open_checked(kcw_store_t *s)
{
    /* No bulk page-cache block per connection (SQLite's default: 20 pages
     * allocated up front); pages come one by one, as the cache needs them.
     * Only possible before SQLite's first use; later calls change nothing. */
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    return pragma_expect(s->db, "PRAGMA quick_check", "ok", SQLITE_CORRUPT);
}

static void close_db(kcw_store_t *s)
{
    finalize_all(s);
    sqlite3_close(s->db);
    s->db = NULL;
}

static int open_file(kcw_store_t *s, int max_version)
{
    int rc = open_checked(s);
    if (corrupt_error(rc)) {
        close_db(s);
        rename_aside(s->path);
        rc = open_checked(s);
    }
    if (rc != SQLITE_OK)
        return go_memory(s, sqlite3_errstr(rc), max_version);
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return go_memory(s, "database is read-only", max_version);
    /* A database that cannot switch to WAL cannot be written either. */
    rc = pragma_expect(s->db, "PRAGMA journal_mode = WAL", "wal", SQLITE_READONLY);
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "PRAGMA synchronous = NORMAL");
    /* The page cache is anonymous memory: SQLite's default lets it grow to
     * 2 MiB, most of kcwatch's heap with a few thousand alerts; pages beyond
     * 256 KiB are read back from the file (the OS caches it, not our heap). */
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "PRAGMA cache_size = -256");
    if (rc == SQLITE_OK) {
        rc = migrate(s->db, max_version);
        if (rc == SQLITE_MISMATCH) {
            kcw_log(KCW_LOG_ERROR,
                    "state store: the database was written by a newer kcwatch; it is left "
                    "untouched",
                    "path", s->path, NULL);
            close_db(s);
            s->durable = false;
            return go_memory(s, "schema newer than this kcwatch", max_version);
        }
        if (corrupt_error(rc)) {
            close_db(s);
            rename_aside(s->path);
            return open_file(s, max_version);
        }
    }
    if (rc != SQLITE_OK)
        return go_memory(s, sqlite3_errstr(rc), max_version);
    return 0;
}

int kcw_store_open_version(const char *state_dir, int max_version, kcw_store_t **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (max_version < 1 || max_version > KCW_STORE_SCHEMA_VERSION) {
        set_err(err, errlen, "%s%s", "invalid schema version", NULL);
        return -EINVAL;
    }
    kcw_store_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(state_dir ? state_dir : ".")) ||
        !(s->path = path_join(s->dir, KCW_STORE_DB_NAME))) {
        if (s) {
            free(s->dir);
            free(s);
        }
        set_err(err, errlen, "%s%s", "out of memory", NULL);
        return -ENOMEM;
    }
    s->lock_fd = -1;
    s->durable = true;
    if (mkdir(s->dir, 0750) != 0 && errno != EEXIST) {
        int rc = go_memory(s, strerror(errno), max_version);
        if (rc < 0) {
            kcw_store_close(s);
            return rc;
        }
        *out = s;
        return 0;
    }
    int rc = lock_dir(s, err, errlen);
    if (rc == -EBUSY || rc == -ENOMEM) {
        kcw_store_close(s);
        return rc;
    }
    if (rc < 0)
        kcw_log(KCW_LOG_WARN, "state store: cannot lock the state directory", "dir", s->dir,
                "error", strerror(-rc), NULL);
    rc = open_file(s, max_version);
    if (rc < 0) {
        set_err(err, errlen, "%s%s", "out of memory", NULL);
        kcw_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int kcw_store_open(const char *state_dir, kcw_store_t **out, char *err, size_t errlen)
{
    return kcw_store_open_version(state_dir, KCW_STORE_SCHEMA_VERSION, out, err, errlen);
}

kcw_store_t *kcw_store_open_memory(void)
{
    kcw_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->lock_fd = -1;
    if (sqlite3_open_v2(":memory:", &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        migrate(s->db, KCW_STORE_SCHEMA_VERSION) != SQLITE_OK) {
        kcw_store_close(s);
        return NULL;
    }
    return s;
}

static void on_prune_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_prune_stopped(uv_handle_t *h)
{
    (void)h;
}

void kcw_store_prune_stop(kcw_store_t *s)
{
    if (!s || !s->prune_running)
        return;
    s->prune_running = false;
    uv_timer_stop(&s->prune_timer);
    uv_close((uv_handle_t *)&s->prune_timer, on_prune_stopped);
}

void kcw_store_close(kcw_store_t *s)
{
    if (!s)
        return;
    if (s->depth > 0) {
        s->depth = 1;
        kcw_store_commit(s);
    }
    close_db(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->dir);
    free(s->path);
    if (s->prune_running) {
        uv_timer_stop(&s->prune_timer);
        uv_close((uv_handle_t *)&s->prune_timer, on_prune_closed);
        return;
    }
    free(s);
}

bool kcw_store_in_round(const kcw_store_t *s)
{
    return s && s->depth > 0;
}

bool kcw_store_durable(const kcw_store_t *s)
{
    return s && s->durable;
}

int kcw_store_schema_version(const kcw_store_t *s)
{
    int v = -1;
    if (s && s->db)
        read_user_version(s->db, &v);
    return v;
}

int kcw_store_limit_pages(kcw_store_t *s, long max_pages)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %ld", max_pages);
    return errno_of(exec_sql(s->db, sql));
}

/* --- rounds -------------------------------------------------------------------- */

int kcw_store_begin(kcw_store_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->depth++ > 0)
        return 0;
    s->round_error = 0;
    int rc = exec_sql(s->db, "BEGIN");
    if (rc != SQLITE_OK) {
        s->depth = 0;
        return write_failed(s, rc);
    }
    return 0;
}

int kcw_store_commit(kcw_store_t *s)
{
    if (!s || s->depth == 0)
        return -EINVAL;
    if (--s->depth > 0)
        return 0;
    int failed = s->round_error;
    s->round_error = 0;
    int rc = exec_sql(s->db, "COMMIT");
    if (rc != SQLITE_OK) {
        exec_sql(s->db, "ROLLBACK");
        if (disk_error(rc) && s->durable)
            go_memory(s, sqlite3_errstr(rc), KCW_STORE_SCHEMA_VERSION);
        else
            kcw_log(KCW_LOG_ERROR, "state store: commit failed", "error", sqlite3_errstr(rc),
                    NULL);
        return errno_of(rc);
    }
    return failed;
}

/* --- alert state ---------------------------------------------------------------- */

static int labels_from_json(const char *text, kcw_labels_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!text || strlen(text) > LABELS_JSON_MAX)
        return -EINVAL;
    json_t *j = json_loads(text, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return -EINVAL;
    }
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(j, k, v)
    {
        if (!json_is_string(v) || kcw_labels_set(out, k, json_string_value(v)) < 0) {
            rc = -EINVAL;
            break;
        }
    }
    json_decref(j);
    if (rc < 0)
        kcw_labels_clear(out);
    return rc;
}

int kcw_store_alert_put(kcw_store_t *s, const char *rule_key, const kcw_alert_t *a)
{
    sqlite3_stmt *st = stmt(s, ST_ALERT_PUT);
    json_t *lj = kcw_labels_to_json(&a->labels);
    json_t *aj = kcw_labels_to_json(&a->annotations);
    char *labels = lj ? json_dumps(lj, JSON_COMPACT) : NULL;
    char *annotations = aj ? json_dumps(aj, JSON_COMPACT) : NULL;
    json_decref(lj);
    json_decref(aj);
    if (!st || !labels || !annotations) {
        free(labels);
        free(annotations);
        return -ENOMEM;
    }
    sqlite3_bind_text(st, 1, rule_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)kcw_labels_fingerprint(&a->labels));
    sqlite3_bind_text(st, 3, labels, -1, free);
    sqlite3_bind_int(st, 4, (int)a->state);
    sqlite3_bind_double(st, 5, a->value);
    sqlite3_bind_int64(st, 6, a->active_at_ms);
    sqlite3_bind_int64(st, 7, a->fired_at_ms);
    sqlite3_bind_int64(st, 8, a->resolved_at_ms);
    sqlite3_bind_int64(st, 9, a->last_eval_ms);
    sqlite3_bind_int64(st, 10, a->keep_firing_since_ms);
    sqlite3_bind_text(st, 11, annotations, -1, free);
    return step_write(s, st);
}

int kcw_store_alert_clear(kcw_store_t *s)
{
    int rc = exec_sql(s->db, "DELETE FROM alert_state");
    return rc == SQLITE_OK ? 0 : write_failed(s, rc);
}

int kcw_store_alert_delete(kcw_store_t *s, const char *rule_key, const kcw_labels_t *labels)
{
    sqlite3_stmt *st = stmt(s, ST_ALERT_DEL);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, rule_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)kcw_labels_fingerprint(labels));
    return step_write(s, st);
}

/* Walks a SELECT, calling row() per row; returns rows handed out. */
static long walk(kcw_store_t *s, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *, bool *),
                 void *arg)
{
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool used = false;
        int stop = row(st, arg, &used);
        if (used)
            n++;
        if (stop)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        kcw_log(KCW_LOG_ERROR, "state store: read failed", "error", sqlite3_errmsg(s->db), NULL);
        sqlite3_reset(st);
        return errno_of(rc);
    }
    sqlite3_reset(st);
    return n;
}

typedef struct cb_ctx {
    void *cb;
    void *arg;
} cb_ctx_t;

typedef int (*row_fn)(sqlite3_stmt *, void *, bool *);

/* Hands every row of a loading statement to cb through row(). */
static long load_rows(kcw_store_t *s, stmt_id_t id, row_fn row, void *cb, void *arg)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return -ENOMEM;
    cb_ctx_t c = {cb, arg};
    return walk(s, st, row, &c);
}

static int alert_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    kcw_alert_t a;
    memset(&a, 0, sizeof(a));
    const char *rule = col_text(st, 0);
    int state = sqlite3_column_int(st, 2);
    if (!rule || labels_from_json(col_text(st, 1), &a.labels) < 0 || state < KCW_ALERT_INACTIVE ||
        state > KCW_ALERT_FIRING) {
        kcw_log(KCW_LOG_ERROR, "state store: skipping an alert state that cannot be decoded",
                "rule", rule ? rule : "", NULL);
        return 0;
    }
    a.fingerprint = kcw_labels_fingerprint(&a.labels);
    a.state = (kcw_alert_state_t)state;
    a.value = sqlite3_column_double(st, 3);
    a.active_at_ms = sqlite3_column_int64(st, 4);
    a.fired_at_ms = sqlite3_column_int64(st, 5);
    a.resolved_at_ms = sqlite3_column_int64(st, 6);
    a.last_eval_ms = sqlite3_column_int64(st, 7);
    a.keep_firing_since_ms = sqlite3_column_int64(st, 8);
    /* Annotations are a courtesy (the next evaluation renders them again). */
    if (col_text(st, 9) && labels_from_json(col_text(st, 9), &a.annotations) < 0)
        memset(&a.annotations, 0, sizeof(a.annotations));
    *used = true;
    int stop = ((kcw_store_alert_cb)c->cb)(rule, &a, c->arg);
    kcw_labels_clear(&a.labels);
    kcw_labels_clear(&a.annotations);
    return stop;
}

long kcw_store_alert_load(kcw_store_t *s, kcw_store_alert_cb cb, void *arg)
{
    return load_rows(s, ST_ALERT_LOAD, alert_row, (void *)cb, arg);
}

/* --- notification groups ---------------------------------------------------------- */

static int bind_fps(sqlite3_stmt *st, int at, const uint64_t *fps, size_t n)
{
    if (n == 0)
        return sqlite3_bind_zeroblob(st, at, 0);
    return sqlite3_bind_blob64(st, at, fps, (sqlite3_uint64)(n * sizeof(*fps)), SQLITE_TRANSIENT);
}

int kcw_store_group_put(kcw_store_t *s, const kcw_store_group_t *g)
{
    sqlite3_stmt *st = stmt(s, ST_GROUP_PUT);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, g->receiver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, g->group_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, g->last_notified_ms);
    bind_fps(st, 4, g->sent_firing, g->n_sent_firing);
    bind_fps(st, 5, g->sent_resolved, g->n_sent_resolved);
    return step_write(s, st);
}

int kcw_store_group_delete(kcw_store_t *s, const char *receiver, const char *group_key)
{
    sqlite3_stmt *st = stmt(s, ST_GROUP_DEL);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, receiver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, group_key, -1, SQLITE_TRANSIENT);
    return step_write(s, st);
}

/* A fingerprint set column as a malloc'd array (NULL and 0 when empty). */
static int col_fps(sqlite3_stmt *st, int at, uint64_t **out, size_t *n)
{
    int bytes = sqlite3_column_bytes(st, at);
    const void *blob = sqlite3_column_blob(st, at);
    *out = NULL;
    *n = 0;
    if (bytes <= 0 || !blob)
        return 0;
    if (bytes % (int)sizeof(uint64_t) != 0)
        return -EINVAL;
    if (!(*out = malloc((size_t)bytes)))
        return -ENOMEM;
    memcpy(*out, blob, (size_t)bytes);
    *n = (size_t)bytes / sizeof(uint64_t);
    return 0;
}

static int group_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    uint64_t *firing = NULL, *resolved = NULL;
    kcw_store_group_t g = {
        .receiver = col_text(st, 0),
        .group_key = col_text(st, 1),
        .last_notified_ms = sqlite3_column_int64(st, 2),
    };
    int stop = 0;
    if (!g.receiver || !g.group_key || col_fps(st, 3, &firing, &g.n_sent_firing) < 0 ||
        col_fps(st, 4, &resolved, &g.n_sent_resolved) < 0) {
        kcw_log(KCW_LOG_ERROR, "state store: skipping a notification group that cannot be decoded",
                NULL);
    } else {
        g.sent_firing = firing;
        g.sent_resolved = resolved;
        *used = true;
        stop = ((kcw_store_group_cb)c->cb)(&g, c->arg);
    }
    free(firing);
    free(resolved);
    return stop;
}

long kcw_store_group_load(kcw_store_t *s, kcw_store_group_cb cb, void *arg)
{
    return load_rows(s, ST_GROUP_LOAD, group_row, (void *)cb, arg);
}

/* --- outbox ------------------------------------------------------------------------ */

int kcw_store_outbox_add(kcw_store_t *s, const kcw_store_outbox_t *o, int64_t *id)
{
    sqlite3_stmt *st = stmt(s, ST_OUTBOX_ADD);
    if (!st)
        return -ENOMEM;
    if (!o->payload || strlen(o->payload) > KCW_STORE_PAYLOAD_MAX)
        return -E2BIG;
    if (s->outbox_next_id == 0) {
        sqlite3_stmt *mx = stmt(s, ST_OUTBOX_MAX_ID);
        if (!mx)
            return -ENOMEM;
        int rc = sqlite3_step(mx);
        int64_t max = rc == SQLITE_ROW ? sqlite3_column_int64(mx, 0) : -1;
        sqlite3_reset(mx);
        if (max < 0)
            return errno_of(rc == SQLITE_ROW ? SQLITE_ERROR : rc);
        s->outbox_next_id = max + 1;
    }
    int64_t row_id = s->outbox_next_id++;
    sqlite3_bind_text(st, 1, o->receiver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, o->group_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, o->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)o->n_alerts);
    sqlite3_bind_int(st, 5, o->firing ? 1 : 0);
    sqlite3_bind_int64(st, 6, o->created_ms);
    sqlite3_bind_int(st, 7, o->attempts);
    sqlite3_bind_int64(st, 8, o->next_attempt_ms);
    sqlite3_bind_int(st, 9, o->target);
    sqlite3_bind_int64(st, 10, row_id);
    int rc = step_write(s, st);
    if (id)
        *id = rc == 0 ? row_id : 0;
    return rc;
}

int kcw_store_outbox_retry(kcw_store_t *s, int64_t id, int attempts, int64_t next_attempt_ms)
{
    sqlite3_stmt *st = stmt(s, ST_OUTBOX_RETRY);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_int(st, 1, attempts);
    sqlite3_bind_int64(st, 2, next_attempt_ms);
    sqlite3_bind_int64(st, 3, id);
    return step_write(s, st);
}

int kcw_store_outbox_delete(kcw_store_t *s, int64_t id)
{
    sqlite3_stmt *st = stmt(s, ST_OUTBOX_DEL);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_int64(st, 1, id);
    return step_write(s, st);
}

int kcw_store_outbox_payload(kcw_store_t *s, int64_t id, char **payload)
{
    *payload = NULL;
    sqlite3_stmt *st = s ? stmt(s, ST_OUTBOX_PAYLOAD) : NULL;
    if (!st)
        return -ENOMEM;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : errno_of(rc);
    if (rc == SQLITE_ROW) {
        const char *text = col_text(st, 0);
        if (!text)
            out = -ENOENT;
        else if (!(*payload = strdup(text)))
            out = -ENOMEM;
    }
    sqlite3_reset(st);
    return out;
}

static int outbox_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    kcw_store_outbox_t o = {
        .id = sqlite3_column_int64(st, 0),
        .receiver = col_text(st, 1),
        .group_key = col_text(st, 2),
        .payload = col_text(st, 3),
        .n_alerts = (size_t)sqlite3_column_int64(st, 4),
        .firing = sqlite3_column_int(st, 5) != 0,
        .created_ms = sqlite3_column_int64(st, 6),
        .attempts = sqlite3_column_int(st, 7),
        .next_attempt_ms = sqlite3_column_int64(st, 8),
        .target = sqlite3_column_int(st, 9),
    };
    if (!o.receiver || !o.group_key || !o.payload)
        return 0;
    *used = true;
    return ((kcw_store_outbox_cb)c->cb)(&o, c->arg);
}

long kcw_store_outbox_load(kcw_store_t *s, kcw_store_outbox_cb cb, void *arg)
{
    return load_rows(s, ST_OUTBOX_LOAD, outbox_row, (void *)cb, arg);
}

/* --- silences ---------------------------------------------------------------------- */

int kcw_store_silence_put(kcw_store_t *s, const kcw_silence_t *sil)
{
    sqlite3_stmt *st = stmt(s, ST_SILENCE_PUT);
    if (!st)
        return -ENOMEM;
    json_t *j = kcw_silence_to_json(sil, wall_now_ms());
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) {
        sqlite3_reset(st);
        return -ENOMEM;
    }
    sqlite3_bind_text(st, 1, sil->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, body, -1, SQLITE_TRANSIENT);
    free(body);
    return step_write(s, st);
}

int kcw_store_silence_delete(kcw_store_t *s, const char *id)
{
    sqlite3_stmt *st = stmt(s, ST_SILENCE_DEL);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return step_write(s, st);
}

static int silence_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    const char *id = col_text(st, 0), *body = col_text(st, 1);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    kcw_silence_t sil = {0};
    char err[256] = "";
    int stop = 0;
    if (!id || !j || kcw_silence_restore_json(j, &sil, err, sizeof(err)) < 0 ||
        strcmp(sil.id, id) != 0) {
        kcw_silence_clear(&sil); /* zeroed or restored: both clear */
        kcw_log(KCW_LOG_ERROR, "state store: skipping a silence that cannot be decoded", "id",
                id ? id : "", "error", err, NULL);
    } else {
        *used = true;
        stop = ((kcw_store_silence_cb)c->cb)(&sil, c->arg);
        kcw_silence_clear(&sil);
    }
    json_decref(j);
    return stop;
}

long kcw_store_silence_load(kcw_store_t *s, kcw_store_silence_cb cb, void *arg)
{
    return load_rows(s, ST_SILENCE_LOAD, silence_row, (void *)cb, arg);
}

/* --- restart tracks ---------------------------------------------------------------- */

static char *policy_json(const kcw_store_track_t *t)
{
    const kcw_restart_track_t *p = t->policy;
    json_t *att = json_array();
    for (int i = 0; att && i < p->n_attempts && i < KCW_RESTART_MAX_HISTORY; i++)
        json_array_append_new(att, json_integer(p->attempts_ms[i]));
    char said[24];
    snprintf(said, sizeof(said), "%016llx", (unsigned long long)t->said);
    json_t *j = json_pack("{s:o?, s:i, s:I, s:I, s:I, s:b, s:b, s:b, s:b, s:s, s:b}", "attempts",
                          att, "consecutive", p->consecutive, "next_allowed",
                          (json_int_t)p->next_allowed_ms, "last_restart",
                          (json_int_t)p->last_restart_ms, "running_since",
                          (json_int_t)p->running_since_ms, "verifying", p->verifying,
                          "saw_transition", p->saw_transition, "exhausted", p->exhausted,
                          "recovered", p->recovered, "said", said, "exhausted_reported",
                          t->exhausted_reported);
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

static int policy_parse(const char *text, kcw_restart_track_t *p, kcw_store_track_t *t)
{
    memset(p, 0, sizeof(*p));
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    json_t *att = NULL;
    json_int_t next = 0, last = 0, since = 0;
    int consecutive = 0, verifying = 0, saw = 0, exhausted = 0, recovered = 0, reported = 0;
    const char *said = NULL;
    if (!j || json_unpack(j, "{s:o, s:i, s:I, s:I, s:I, s:b, s:b, s:b, s:b, s?s, s?b}",
                          "attempts", &att, "consecutive", &consecutive, "next_allowed", &next,
                          "last_restart", &last, "running_since", &since, "verifying",
                          &verifying, "saw_transition", &saw, "exhausted", &exhausted,
                          "recovered", &recovered, "said", &said, "exhausted_reported",
                          &reported) != 0 ||
        !json_is_array(att)) {
        json_decref(j);
        return -EINVAL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(att, i, v)
    {
        if (i >= KCW_RESTART_MAX_HISTORY || !json_is_integer(v))
            break;
        p->attempts_ms[p->n_attempts++] = json_integer_value(v);
    }
    p->consecutive = consecutive < 0 ? 0 : consecutive;
    p->next_allowed_ms = next;
    p->last_restart_ms = last;
    p->running_since_ms = since;
    p->verifying = verifying;
    p->saw_transition = saw;
    p->exhausted = exhausted;
    p->recovered = recovered;
    t->said = said ? strtoull(said, NULL, 16) : 0;
    t->exhausted_reported = reported;
    json_decref(j);
    return 0;
}

int kcw_store_track_put(kcw_store_t *s, const kcw_store_track_t *t)
{
    sqlite3_stmt *st = stmt(s, ST_TRACK_PUT);
    char *policy = policy_json(t);
    json_t *marks = json_array();
    for (size_t i = 0; marks && i < t->n_marks; i++) {
        char hash[24];
        snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)t->mark_hashes[i]);
        json_array_append_new(marks, json_pack("[i,s,b,b]", t->mark_ids[i], hash, t->mark_left[i],
                                               t->mark_held && t->mark_held[i]));
    }
    char *marks_text = marks ? json_dumps(marks, JSON_COMPACT) : NULL;
    json_decref(marks);
    if (!st || !policy || !marks_text) {
        free(policy);
        free(marks_text);
        return -ENOMEM;
    }
    sqlite3_bind_text(st, 1, t->cluster, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, t->connector, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, t->task);
    sqlite3_bind_int(st, 4, t->scope);
    bind_text(st, 5, t->rule, KCW_STORE_TEXT_MAX);
    bind_text(st, 6, t->trace, KCW_STORE_TRACE_MAX);
    sqlite3_bind_text(st, 7, policy, -1, free);
    sqlite3_bind_text(st, 8, marks_text, -1, free);
    return step_write(s, st);
}

int kcw_store_track_delete(kcw_store_t *s, const char *cluster, const char *connector, int task)
{
    sqlite3_stmt *st = stmt(s, ST_TRACK_DEL);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, cluster, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, connector, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, task);
    return step_write(s, st);
}

#define MARKS_MAX 4096

static int track_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    kcw_restart_track_t policy;
    kcw_store_track_t t = {
        .cluster = col_text(st, 0),
        .connector = col_text(st, 1),
        .task = sqlite3_column_int(st, 2),
        .scope = sqlite3_column_int(st, 3),
        .rule = col_text(st, 4),
        .trace = col_text(st, 5),
        .policy = &policy,
    };
    if (!t.cluster || !t.connector || policy_parse(col_text(st, 6), &policy, &t) < 0) {
        kcw_log(KCW_LOG_ERROR, "state store: skipping a restart track that cannot be decoded",
                "connector", t.connector ? t.connector : "", NULL);
        return 0;
    }
    json_t *marks = col_text(st, 7) ? json_loads(col_text(st, 7), 0, NULL) : NULL;
    size_t n = json_is_array(marks) ? json_array_size(marks) : 0;
    if (n > MARKS_MAX)
        n = MARKS_MAX;
    int *ids = calloc(n ? n : 1, sizeof(*ids));
    uint64_t *hashes = calloc(n ? n : 1, sizeof(*hashes));
    bool *left = calloc(n ? n : 1, sizeof(*left));
    bool *held = calloc(n ? n : 1, sizeof(*held));
    int stop = 0;
    if (ids && hashes && left && held) {
        for (size_t i = 0; i < n; i++) {
            int id = 0, l = 0;
            const char *h = NULL;
            const json_t *mark = json_array_get(marks, i);
            if (json_unpack((json_t *)mark, "[i,s,b]", &id, &h, &l) != 0)
                continue;
            ids[t.n_marks] = id;
            hashes[t.n_marks] = strtoull(h, NULL, 16);
            left[t.n_marks] = l;
            /* the fourth item came later: absent is "not held" */
            held[t.n_marks] = json_is_true(json_array_get(mark, 3));
            t.n_marks++;
        }
        t.mark_ids = ids;
        t.mark_hashes = hashes;
        t.mark_left = left;
        t.mark_held = held;
        *used = true;
        stop = ((kcw_store_track_cb)c->cb)(&t, c->arg);
    }
    json_decref(marks);
    free(ids);
    free(hashes);
    free(left);
    free(held);
    return stop;
}

long kcw_store_track_load(kcw_store_t *s, kcw_store_track_cb cb, void *arg)
{
    return load_rows(s, ST_TRACK_LOAD, track_row, (void *)cb, arg);
}

/* --- audit log ------------------------------------------------------------------------ */

int kcw_store_audit_add(kcw_store_t *s, const kcw_audit_t *a)
{
    sqlite3_stmt *st = stmt(s, ST_AUDIT_ADD);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_int64(st, 1, a->time_ms);
    sqlite3_bind_text(st, 2, a->kind == KCW_AUDIT_RESTART ? "restart" : "notify", -1,
                      SQLITE_STATIC);
    bind_text(st, 3, a->cluster, KCW_STORE_TEXT_MAX);
    bind_text(st, 4, a->connector, KCW_STORE_TEXT_MAX);
    if (a->kind == KCW_AUDIT_RESTART)
        sqlite3_bind_int(st, 5, a->task);
    else
        sqlite3_bind_null(st, 5);
    bind_text(st, 6, a->rule, KCW_STORE_TEXT_MAX);
    bind_text(st, 7, a->reason, KCW_STORE_TEXT_MAX);
    bind_text(st, 8, a->trace, KCW_STORE_TRACE_MAX);
    bind_text(st, 9, a->request, KCW_STORE_TEXT_MAX);
    bind_text(st, 10, a->response, KCW_STORE_TEXT_MAX);
    bind_text(st, 11, a->outcome, KCW_STORE_TEXT_MAX);
    bind_text(st, 12, a->receiver, KCW_STORE_TEXT_MAX);
    bind_text(st, 13, a->group_key, KCW_STORE_TEXT_MAX);
    bind_text(st, 14, a->status, KCW_STORE_TEXT_MAX);
    sqlite3_bind_int64(st, 15, a->http_status);
    return step_write(s, st);
}

void kcw_store_release_memory(kcw_store_t *s)
{
    if (s && s->db)
        sqlite3_db_release_memory(s->db);
}

void kcw_store_set_audit_retention(kcw_store_t *s, int64_t retention_ms)
{
    if (s)
        s->retention_ms = retention_ms;
}

long kcw_store_audit_prune(kcw_store_t *s, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(s, ST_AUDIT_PRUNE);
    if (!st)
        return -ENOMEM;
    int64_t keep = s->retention_ms > 0 ? s->retention_ms : KCW_STORE_AUDIT_RETENTION_DEFAULT_MS;
    sqlite3_bind_int64(st, 1, now_ms - keep);
    int rc = step_write(s, st);
    if (rc < 0)
        return rc;
    long n = (long)sqlite3_changes(s->db);
    if (n > 0) {
        kcw_log(KCW_LOG_INFO, "state store: pruned old audit records", KCW_LOG_INT("deleted", n),
                NULL);
    }
    return n;
}

static void on_prune_timer(uv_timer_t *t)
{
    kcw_store_t *s = t->data;
    kcw_store_audit_prune(s, wall_now_ms());
}

int kcw_store_prune_start(kcw_store_t *s, uv_loop_t *loop, uint64_t every_ms)
{
    if (!s || !loop || every_ms == 0 || s->prune_running)
        return -EINVAL;
    int rc = uv_timer_init(loop, &s->prune_timer);
    if (rc < 0)
        return rc;
    s->prune_timer.data = s;
    s->prune_running = true;
    uv_unref((uv_handle_t *)&s->prune_timer);
    return uv_timer_start(&s->prune_timer, on_prune_timer, 0, every_ms);
}

static int audit_row(sqlite3_stmt *st, void *arg, bool *used)
{
    cb_ctx_t *c = arg;
    const char *kind = col_text(st, 2);
    kcw_audit_t a = {
        .id = sqlite3_column_int64(st, 0),
        .time_ms = sqlite3_column_int64(st, 1),
        .kind = kind && strcmp(kind, "restart") == 0 ? KCW_AUDIT_RESTART : KCW_AUDIT_NOTIFY,
        .cluster = col_text(st, 3),
        .connector = col_text(st, 4),
        .task = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 5),
        .rule = col_text(st, 6),
        .reason = col_text(st, 7),
        .trace = col_text(st, 8),
        .request = col_text(st, 9),
        .response = col_text(st, 10),
        .outcome = col_text(st, 11),
        .receiver = col_text(st, 12),
        .group_key = col_text(st, 13),
        .status = col_text(st, 14),
        .http_status = (long)sqlite3_column_int64(st, 15),
    };
    *used = true;
    return c->cb ? ((kcw_audit_cb)c->cb)(&a, c->arg) : 0;
}

long kcw_store_audit_query(kcw_store_t *s, int64_t since_ms, kcw_audit_cb cb, void *arg)
{
    sqlite3_stmt *st = stmt(s, ST_AUDIT_QUERY);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_int64(st, 1, since_ms);
    cb_ctx_t c = {(void *)cb, arg};
    return walk(s, st, audit_row, &c);
}

long kcw_store_audit_latest(kcw_store_t *s, kcw_audit_kind_t kind, size_t limit, kcw_audit_cb cb,
                           void *arg)
{
    sqlite3_stmt *st = stmt(s, ST_AUDIT_LATEST);
    if (!st)
        return -ENOMEM;
    sqlite3_bind_text(st, 1, kind == KCW_AUDIT_RESTART ? "restart" : "notify", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    cb_ctx_t c = {(void *)cb, arg};
    return walk(s, st, audit_row, &c);
}

long kcw_store_audit_read(const char *state_dir, int64_t since_ms, kcw_audit_cb cb, void *arg,
                          char *err, size_t errlen)
{
    char *path = path_join(state_dir ? state_dir : ".", KCW_STORE_DB_NAME);
    if (!path)
        return -ENOMEM;
    if (access(path, F_OK) != 0) {
        set_err(err, errlen, "%s: %s", path, "no state database (has kcwatch run with it?)");
        free(path);
        return -ENOENT;
    }
    kcw_store_t s;
    memset(&s, 0, sizeof(s));
    s.lock_fd = -1;
    /* Read-only: a WAL reader never blocks the daemon writing next to it. */
    int rc = sqlite3_open_v2(path, &s.db, SQLITE_OPEN_READONLY, NULL);
    int version = 0;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s.db, BUSY_TIMEOUT_MS);
        rc = read_user_version(s.db, &version);
    }
    if (rc != SQLITE_OK && access(path, W_OK) != 0) {
        /* On a read-only filesystem no -shm can be made, so no daemon can be
         * writing there either: read the file as immutable. */
        char *uri = sqlite3_mprintf("file:%s?immutable=1", path);
        sqlite3_close(s.db);
        s.db = NULL;
        rc = uri ? sqlite3_open_v2(uri, &s.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL)
                 : SQLITE_NOMEM;
        sqlite3_free(uri);
        if (rc == SQLITE_OK)
            rc = read_user_version(s.db, &version);
    }
    long n;
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", path, sqlite3_errstr(rc));
        n = errno_of(rc);
    } else if (version < 1 || version > KCW_STORE_SCHEMA_VERSION) {
        set_err(err, errlen, "%s: %s", path, "unknown schema version");
        n = -EPROTO;
    } else {
        n = kcw_store_audit_query(&s, since_ms, cb, arg);
        if (n < 0)
            set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s.db));
    }
    close_db(&s);
    free(path);
    return n;
}
