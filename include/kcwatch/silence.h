/* silence.h: silences, as Alertmanager's, plus weekly maintenance windows.
 *
 * A silence mutes the notifications of every alert its matchers match while
 * it is active (startsAt <= now < endsAt); evaluation, remediation and the
 * alerts list are untouched. A silence with weekly windows (from the config)
 * is active only inside one of them, between its startsAt and endsAt (either
 * may be 0: open-ended). Windows are in UTC.
 *
 * The set holds the config's silences (replaced on every reload, never
 * expired by the API) and the API's (created, updated and expired through
 * POST/DELETE /api/v2/silences; the caller persists them). Expired API
 * silences stay listed for KCW_SILENCE_RETENTION_MS, as Alertmanager keeps
 * them. The JSON functions speak Alertmanager's API v2 shapes
 * (postableSilence in, gettableSilence out). Pure: `now` passed in. */
#ifndef KCWATCH_SILENCE_H
#define KCWATCH_SILENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/labels.h"
#include "kcwatch/matchers.h"

#define KCW_SILENCES_MAX 1000
#define KCW_SILENCE_WINDOWS_MAX 32
#define KCW_SILENCE_TEXT_MAX 4096 /* comment, createdBy */
#define KCW_SILENCE_RETENTION_MS (120LL * 60 * 60 * 1000) /* Alertmanager's 120h */
#define KCW_SILENCE_ID_LEN 36

typedef enum {
    KCW_SILENCE_PENDING = 0,
    KCW_SILENCE_ACTIVE,
    KCW_SILENCE_EXPIRED,
} kcw_silence_state_t;

const char *kcw_silence_state_name(kcw_silence_state_t st); /* "pending" "active" "expired" */

typedef struct kcw_weekly_window {
    unsigned weekdays; /* bit d set: weekday d (0 = Sunday ... 6 = Saturday) */
    int start_min;     /* minutes after 00:00 UTC, [start, end) */
    int end_min;       /* <= 1440; end < start wraps past midnight */
} kcw_weekly_window_t;

typedef struct kcw_silence {
    char id[KCW_SILENCE_ID_LEN + 1];
    kcw_matchers_t matchers;
    int64_t starts_at_ms; /* 0: since ever (config only) */
    int64_t ends_at_ms;   /* 0: never ends (config only) */
    int64_t updated_at_ms;
    char *created_by; /* owned, may be NULL */
    char *comment;    /* owned, may be NULL */
    kcw_weekly_window_t *windows; /* owned */
    size_t n_windows;
    bool from_config;
} kcw_silence_t;

void kcw_silence_clear(kcw_silence_t *s);
int kcw_silence_copy(kcw_silence_t *dst, const kcw_silence_t *src);
kcw_silence_state_t kcw_silence_state(const kcw_silence_t *s, int64_t now_ms);
/* Active at now and every matcher matches. */
bool kcw_silence_mutes(const kcw_silence_t *s, const kcw_labels_t *labels, int64_t now_ms);

/* "monday", "mon", or a range "monday:friday" -> weekday bits; 0 or -EINVAL. */
int kcw_weekdays_parse(const char *text, unsigned *bits);
/* "HH:MM" (00:00 .. 24:00) -> minutes; 0 or -EINVAL. */
int kcw_time_of_day_parse(const char *text, int *minutes);
/* A UUID v4 text made from two random numbers the caller draws. */
void kcw_silence_id_make(uint64_t r1, uint64_t r2, char out[KCW_SILENCE_ID_LEN + 1]);

/* Alertmanager postableSilence -> *out (zeroed first). Checks what
 * Alertmanager checks: at least one matcher, not every matcher matching the
 * empty label set, endsAt after startsAt, endsAt not in the past, valid
 * regexes. An "id" member is kept (an update). 0 or -EINVAL with err. */
int kcw_silence_from_json(const json_t *j, int64_t now_ms, kcw_silence_t *out, char *err,
                          size_t errlen);
/* A silence as kcw_silence_to_json wrote it (the store's copy): id required,
 * no checks on its times, expired ones accepted. 0 or -EINVAL with err. */
int kcw_silence_restore_json(const json_t *j, kcw_silence_t *out, char *err, size_t errlen);
/* gettableSilence: id, status{state}, updatedAt, matchers[{name, value,
 * isRegex, isEqual}], startsAt, endsAt, createdBy, comment (config silences
 * also say "source":"config" and list their weekly windows). NULL on OOM. */
json_t *kcw_silence_to_json(const kcw_silence_t *s, int64_t now_ms);

typedef struct kcw_silences kcw_silences_t;

kcw_silences_t *kcw_silences_new(void);
void kcw_silences_free(kcw_silences_t *set);
/* Replaces the config silences with copies of cfg[0..n). 0 or -ENOMEM (then
 * the old ones stay). */
int kcw_silences_set_config(kcw_silences_t *set, const kcw_silence_t *cfg, size_t n);
/* Adds an API silence, taking over *s (zeroed on success). s->id empty: a new
 * silence with id new_id. s->id naming an API silence: it is replaced, as
 * Alertmanager updates (an expired one cannot be). 0, -ENOENT (unknown id),
 * -EPERM (a config silence), -E2BIG (KCW_SILENCES_MAX), -ENOMEM. The id used
 * is copied into id_out. */
int kcw_silences_put(kcw_silences_t *set, kcw_silence_t *s, const char *new_id, int64_t now_ms,
                     char id_out[KCW_SILENCE_ID_LEN + 1]);
/* Expires an API silence: an active one ends now, a pending one ends before
 * it starts. 0, -ENOENT, -EPERM (config), -EALREADY (already expired). */
int kcw_silences_expire(kcw_silences_t *set, const char *id, int64_t now_ms);
/* Puts back an API silence saved before a restart (copied, id kept). 0,
 * -EEXIST (id taken), -E2BIG, -EINVAL (no id), -ENOMEM. */
int kcw_silences_restore(kcw_silences_t *set, const kcw_silence_t *s);
/* Drops API silences expired longer than the retention ago, telling
 * dropped_cb (may be NULL) about each first; returns how many. */
size_t kcw_silences_gc(kcw_silences_t *set, int64_t now_ms,
                       void (*dropped_cb)(const kcw_silence_t *s, void *arg), void *arg);
size_t kcw_silences_count(const kcw_silences_t *set);
const kcw_silence_t *kcw_silences_at(const kcw_silences_t *set, size_t i);
const kcw_silence_t *kcw_silences_find(const kcw_silences_t *set, const char *id);
/* The first active silence muting these labels, or NULL. */
const kcw_silence_t *kcw_silences_muting(const kcw_silences_t *set, const kcw_labels_t *labels,
                                         int64_t now_ms);

#endif
