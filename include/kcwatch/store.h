/* store.h: kcwatch's durable state in SQLite (the only user of SQLite).
 *
 * One database, <state_dir>/kcwatch.db, in WAL mode, holds what must survive
 * a restart or a kill -9: alert states, the notifier's per-group memory and
 * outbox, the silences made through the API, the remediator's restart
 * tracks, and the audit log of every restart decision and notification
 * attempt. Its schema carries a version
 * (PRAGMA user_version) and is migrated forward step by step on open.
 *
 * Writes are batched: callers open a round with kcw_store_begin() (one per
 * evaluation or poll), stage any number of writes, and kcw_store_commit()
 * makes them durable in one transaction. Rounds nest (only the outermost
 * commit commits); a write outside any round is its own transaction.
 *
 * The store never stops kcwatch from running. A database that cannot be read
 * (corrupt, not a database) is renamed aside with an ERROR and a fresh one
 * made; a state_dir that cannot be written (read-only, full, missing and not
 * creatable) turns the store into an in-memory copy of what it held, with an
 * ERROR, so kcwatch keeps watching and healing without durability. The one
 * refusal is a second kcwatch on the same state_dir: an exclusive flock on
 * <state_dir>/kcwatch.lock makes kcw_store_open() fail with -EBUSY.
 *
 * `kcwatch history` reads the audit log with kcw_store_audit_read(), which
 * opens the database read-only and so works while the daemon runs. */
#ifndef KCWATCH_STORE_H
#define KCWATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kcwatch/alerts.h"
#include "kcwatch/remediate.h"
#include "kcwatch/silence.h"

#define KCW_STORE_SCHEMA_VERSION 3
#define KCW_STORE_DB_NAME "kcwatch.db"
#define KCW_STORE_LOCK_NAME "kcwatch.lock"
#define KCW_STORE_AUDIT_RETENTION_DEFAULT_MS (30LL * 24 * 60 * 60 * 1000)
/* Bounds on what one row keeps (longer values are cut). */
#define KCW_STORE_TRACE_MAX 4096
#define KCW_STORE_TEXT_MAX 2048
#define KCW_STORE_PAYLOAD_MAX (4 * 1024 * 1024)

typedef struct kcw_store kcw_store_t;

/* Opens (creating state_dir and the database when needed) and migrates to
 * KCW_STORE_SCHEMA_VERSION. 0 and *out on success, including the degraded
 * in-memory cases described above; -EBUSY when another process holds the
 * state_dir's lock; -ENOMEM. err receives a one-line reason on failure. */
int kcw_store_open(const char *state_dir, kcw_store_t **out, char *err, size_t errlen);
/* An in-memory store (tests, and no state_dir). NULL on OOM. */
kcw_store_t *kcw_store_open_memory(void);
/* Commits an open round, stops the prune timer and frees. With a prune timer
 * running the memory is released once the loop has closed the timer. */
void kcw_store_close(kcw_store_t *s);
/* false when the store holds its state in memory only. */
bool kcw_store_durable(const kcw_store_t *s);
/* The database's schema version (KCW_STORE_SCHEMA_VERSION once open). */
int kcw_store_schema_version(const kcw_store_t *s);
/* Audit rows older than this are pruned (<= 0: the 30 day default). */
void kcw_store_set_audit_retention(kcw_store_t *s, int64_t retention_ms);
/* Gives back the page cache's memory (SQLite reads the pages again when it
 * needs them): after loading at start and after a snapshot, so a quiet
 * daemon does not keep the cache of its last busy moment. */
void kcw_store_release_memory(kcw_store_t *s);
/* Prunes the audit log at once and then every `every_ms` on loop (an unref'd
 * timer: it never keeps the loop alive). 0 or negative errno. */
int kcw_store_prune_start(kcw_store_t *s, uv_loop_t *loop, uint64_t every_ms);
/* Closes the prune timer (before the loop ends; the store stays usable and
 * kcw_store_close then frees at once once the loop has run the close). */
void kcw_store_prune_stop(kcw_store_t *s);
/* Deletes audit rows older than now - retention; returns how many. */
long kcw_store_audit_prune(kcw_store_t *s, int64_t now_ms);

/* --- rounds ---------------------------------------------------------------- */

int kcw_store_begin(kcw_store_t *s);
/* Commits when the outermost round ends. A failed commit (disk full, read-only)
 * switches the store to memory (see above) and returns its negative errno;
 * the store stays usable. */
int kcw_store_commit(kcw_store_t *s);
/* Whether a round is open (a begin not yet committed). */
bool kcw_store_in_round(const kcw_store_t *s);

/* --- alert state ------------------------------------------------------------ */

/* rule_key names the rule the alert belongs to (e.g. "group/alertname");
 * the alert is keyed by rule_key + its label fingerprint. The trace is not
 * kept (the next evaluation reads it again). */
int kcw_store_alert_put(kcw_store_t *s, const char *rule_key, const kcw_alert_t *a);
int kcw_store_alert_delete(kcw_store_t *s, const char *rule_key, const kcw_labels_t *labels);
/* Deletes every saved alert: with puts of all current alerts in the same
 * round, a snapshot that also forgets alerts that left their sets. */
int kcw_store_alert_clear(kcw_store_t *s);
/* Every saved alert, in no particular order; a row that cannot be decoded is
 * skipped with an ERROR. The alert passed to cb lives only during the call.
 * cb returning non-zero stops the walk. Returns the rows handed out or a
 * negative errno. */
typedef int (*kcw_store_alert_cb)(const char *rule_key, const kcw_alert_t *a, void *arg);
long kcw_store_alert_load(kcw_store_t *s, kcw_store_alert_cb cb, void *arg);

/* --- notification groups: Alertmanager's notification log ------------------- */

typedef struct kcw_store_group {
    const char *receiver;
    const char *group_key;
    int64_t last_notified_ms;
    const uint64_t *sent_firing; /* fingerprints, sorted */
    size_t n_sent_firing;
    const uint64_t *sent_resolved;
    size_t n_sent_resolved;
} kcw_store_group_t;

int kcw_store_group_put(kcw_store_t *s, const kcw_store_group_t *g);
int kcw_store_group_delete(kcw_store_t *s, const char *receiver, const char *group_key);
typedef int (*kcw_store_group_cb)(const kcw_store_group_t *g, void *arg);
long kcw_store_group_load(kcw_store_t *s, kcw_store_group_cb cb, void *arg);

/* --- outbox ------------------------------------------------------------------ */

typedef struct kcw_store_outbox {
    int64_t id; /* assigned by kcw_store_outbox_add */
    const char *receiver;
    const char *group_key;
    const char *payload;
    size_t n_alerts;
    bool firing;
    int64_t created_ms;
    int attempts;
    int64_t next_attempt_ms;
    int target; /* which URL of the receiver (receiver.h); 0 for most kinds */
} kcw_store_outbox_t;

/* Adds a notification; *id receives its row id. Commit before sending it. */
int kcw_store_outbox_add(kcw_store_t *s, const kcw_store_outbox_t *o, int64_t *id);
/* Records a failed attempt (the retry schedule survives a restart). */
int kcw_store_outbox_retry(kcw_store_t *s, int64_t id, int attempts, int64_t next_attempt_ms);
int kcw_store_outbox_delete(kcw_store_t *s, int64_t id);
/* The payload of row id (malloc'd; the caller frees): 0, -ENOENT when there
 * is no such row, or a negative errno. */
int kcw_store_outbox_payload(kcw_store_t *s, int64_t id, char **payload);
/* Queued notifications oldest first (by id). */
typedef int (*kcw_store_outbox_cb)(const kcw_store_outbox_t *o, void *arg);
long kcw_store_outbox_load(kcw_store_t *s, kcw_store_outbox_cb cb, void *arg);

/* --- silences ---------------------------------------------------------------------- */

/* Saves an API silence (as Alertmanager's JSON), replacing one with its id. */
int kcw_store_silence_put(kcw_store_t *s, const kcw_silence_t *sil);
int kcw_store_silence_delete(kcw_store_t *s, const char *id);
/* Every saved silence; one that cannot be decoded is skipped with an ERROR.
 * The silence passed to cb lives only during the call. */
typedef int (*kcw_store_silence_cb)(const kcw_silence_t *sil, void *arg);
long kcw_store_silence_load(kcw_store_t *s, kcw_store_silence_cb cb, void *arg);

/* --- restart tracks (remediation state) ---------------------------------------- */

typedef struct kcw_store_track {
    const char *cluster;
    const char *connector;
    int task; /* -1: connector-level */
    int scope;
    const char *rule; /* may be NULL */
    const char *trace;
    const kcw_restart_track_t *policy;
    /* What was already reported, so a restart of kcwatch does not report
     * (and page) it again: the last repeated decision's hash (0: none) and
     * whether the exhausted budget was. */
    uint64_t said;
    bool exhausted_reported;
    /* Restarted instances whose old FAILED record must not count again. */
    const int *mark_ids;
    const uint64_t *mark_hashes;
    const bool *mark_left;
    /* Instances left out of a partial restart (unrecoverable trace); NULL
     * when none is. Rows written before it existed load as not held. */
    const bool *mark_held;
    size_t n_marks;
} kcw_store_track_t;

int kcw_store_track_put(kcw_store_t *s, const kcw_store_track_t *t);
int kcw_store_track_delete(kcw_store_t *s, const char *cluster, const char *connector, int task);
typedef int (*kcw_store_track_cb)(const kcw_store_track_t *t, void *arg);
long kcw_store_track_load(kcw_store_t *s, kcw_store_track_cb cb, void *arg);

/* --- audit log ---------------------------------------------------------------- */

typedef enum {
    KCW_AUDIT_RESTART = 0, /* a restart decision of the remediator */
    KCW_AUDIT_NOTIFY,      /* a notification attempt */
} kcw_audit_kind_t;

typedef struct kcw_audit {
    int64_t id;
    int64_t time_ms;
    kcw_audit_kind_t kind;
    /* restart */
    const char *cluster, *connector;
    int task;               /* -1: connector or none */
    const char *rule;
    const char *reason;     /* event name: sent, skipped, failed, budget_exhausted... */
    const char *trace;      /* excerpt */
    const char *request;    /* exact request, e.g. "POST http://.../restart?..." */
    const char *response;   /* response summary */
    const char *outcome;    /* human-readable decision / skip reason */
    /* notification */
    const char *receiver, *group_key;
    const char *status;     /* sent, failed, dropped */
    long http_status;       /* 0 if none */
} kcw_audit_t;

/* Appends one record (text fields are cut to the bounds above). */
int kcw_store_audit_add(kcw_store_t *s, const kcw_audit_t *a);

typedef int (*kcw_audit_cb)(const kcw_audit_t *a, void *arg);
/* Records at or after since_ms, oldest first, from an open store. */
long kcw_store_audit_query(kcw_store_t *s, int64_t since_ms, kcw_audit_cb cb, void *arg);
/* The newest `limit` records of one kind, newest first (status page). */
long kcw_store_audit_latest(kcw_store_t *s, kcw_audit_kind_t kind, size_t limit, kcw_audit_cb cb,
                           void *arg);
/* Same from <state_dir>/kcwatch.db opened read-only (works while a daemon
 * holds it). -ENOENT when there is no database; err says why on failure. */
long kcw_store_audit_read(const char *state_dir, int64_t since_ms, kcw_audit_cb cb, void *arg,
                          char *err, size_t errlen);

/* --- testing ------------------------------------------------------------------ */

/* Opens like kcw_store_open but migrates only up to max_version (>= 1), so a
 * test can build a database as an older kcwatch left it. */
int kcw_store_open_version(const char *state_dir, int max_version, kcw_store_t **out, char *err,
                           size_t errlen);
/* Caps the database at max_pages pages (PRAGMA max_page_count), so a test
 * can fill it and see a real SQLITE_FULL. 0 or negative errno. */
int kcw_store_limit_pages(kcw_store_t *s, long max_pages);

#endif
