/* silence.c: silences and maintenance windows (see silence.h).
 *
 * The set is a small array (bounded by KCW_SILENCES_MAX) of config silences
 * followed by API silences; muting checks each active one, which is cheap at
 * that bound next to the notification it saves. Validation and the JSON
 * shapes follow Alertmanager's API v2 (api/v2/openapi.yaml: postableSilence,
 * gettableSilence, matcher{name, value, isRegex, isEqual}). */
#include "kcwatch/silence.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kcwatch/labels_json.h"
#include "kcwatch/rfc3339.h"

#define DAY_MS (24LL * 60 * 60 * 1000)

struct kcw_silences {
    kcw_silence_t *items;
    size_t n, cap;
};

const char *kcw_silence_state_name(kcw_silence_state_t st)
{
    switch (st) {
    case KCW_SILENCE_PENDING: return "pending";
    case KCW_SILENCE_ACTIVE: return "active";
    case KCW_SILENCE_EXPIRED: return "expired";
    }
    return "unknown";
}

void kcw_silence_clear(kcw_silence_t *s)
{
    if (!s)
        return;
    kcw_matchers_clear(&s->matchers);
    free(s->created_by);
    free(s->comment);
    free(s->windows);
    memset(s, 0, sizeof(*s));
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = strdup(src)))
        return -ENOMEM;
    return 0;
}

int kcw_silence_copy(kcw_silence_t *dst, const kcw_silence_t *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->id, src->id, sizeof(dst->id));
    dst->starts_at_ms = src->starts_at_ms;
    dst->ends_at_ms = src->ends_at_ms;
    dst->updated_at_ms = src->updated_at_ms;
    dst->from_config = src->from_config;
    if (kcw_matchers_copy(&dst->matchers, &src->matchers) < 0 ||
        dup_opt(&dst->created_by, src->created_by) < 0 ||
        dup_opt(&dst->comment, src->comment) < 0)
        goto oom;
    if (src->n_windows) {
        dst->windows = malloc(src->n_windows * sizeof(*dst->windows));
        if (!dst->windows)
            goto oom;
        memcpy(dst->windows, src->windows, src->n_windows * sizeof(*dst->windows));
        dst->n_windows = src->n_windows;
    }
    return 0;
oom:
    kcw_silence_clear(dst);
    return -ENOMEM;
}

static bool in_window(const kcw_weekly_window_t *w, int64_t now_ms)
{
    int64_t days = now_ms / DAY_MS, rem = now_ms % DAY_MS;
    if (rem < 0) {
        rem += DAY_MS;
        days--;
    }
    /* 1970-01-01 was a Thursday (4). */
    int wd = (int)(((days % 7) + 7 + 4) % 7);
    int prev = (wd + 6) % 7;
    int minute = (int)(rem / 60000);
    if (w->start_min < w->end_min)
        return (w->weekdays >> wd & 1u) && minute >= w->start_min && minute < w->end_min;
    /* Wraps past midnight: from start on a listed day until end the next. */
    return ((w->weekdays >> wd & 1u) && minute >= w->start_min) ||
           ((w->weekdays >> prev & 1u) && minute < w->end_min);
}

kcw_silence_state_t kcw_silence_state(const kcw_silence_t *s, int64_t now_ms)
{
    if (s->ends_at_ms != 0 && now_ms >= s->ends_at_ms)
        return KCW_SILENCE_EXPIRED;
    if (s->starts_at_ms != 0 && now_ms < s->starts_at_ms)
        return KCW_SILENCE_PENDING;
    if (s->n_windows == 0)
        return KCW_SILENCE_ACTIVE;
    for (size_t i = 0; i < s->n_windows; i++)
        if (in_window(&s->windows[i], now_ms))
            return KCW_SILENCE_ACTIVE;
    return KCW_SILENCE_PENDING; /* between windows: waiting for the next */
}

bool kcw_silence_mutes(const kcw_silence_t *s, const kcw_labels_t *labels, int64_t now_ms)
{
    return kcw_silence_state(s, now_ms) == KCW_SILENCE_ACTIVE &&
           kcw_matchers_match(&s->matchers, labels);
}

/* ------------------------------------------------------------ parsing */

static const char *const WEEKDAYS[7] = {"sunday", "monday", "tuesday", "wednesday",
                                        "thursday", "friday", "saturday"};

static int weekday_of(const char *s, size_t len)
{
    for (int d = 0; d < 7; d++) {
        size_t full = strlen(WEEKDAYS[d]);
        if ((len == full || len == 3) && strncasecmp(s, WEEKDAYS[d], len) == 0)
            return d;
    }
    return -1;
}

int kcw_weekdays_parse(const char *text, unsigned *bits)
{
    if (!text)
        return -EINVAL;
    const char *colon = strchr(text, ':');
    int from, to;
    if (colon) {
        from = weekday_of(text, (size_t)(colon - text));
        to = weekday_of(colon + 1, strlen(colon + 1));
    } else {
        from = to = weekday_of(text, strlen(text));
    }
    if (from < 0 || to < 0)
        return -EINVAL;
    unsigned b = 0;
    /* "friday:monday" wraps over the weekend, as a reader would expect. */
    for (int d = from;; d = (d + 1) % 7) {
        b |= 1u << d;
        if (d == to)
            break;
    }
    *bits = b;
    return 0;
}

int kcw_time_of_day_parse(const char *text, int *minutes)
{
    if (!text || strlen(text) != 5 || text[2] != ':')
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (i != 2 && !isdigit((unsigned char)text[i]))
            return -EINVAL;
    int h = (text[0] - '0') * 10 + (text[1] - '0');
    int m = (text[3] - '0') * 10 + (text[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return -EINVAL;
    *minutes = h * 60 + m;
    return 0;
}

void kcw_silence_id_make(uint64_t r1, uint64_t r2, char out[KCW_SILENCE_ID_LEN + 1])
{
    /* Version 4, variant 10xx. */
    r1 = (r1 & ~0xf000ULL) | 0x4000ULL;
    r2 = (r2 & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    snprintf(out, KCW_SILENCE_ID_LEN + 1, "%08x-%04x-%04x-%04x-%012llx",
             (unsigned)(r1 >> 32), (unsigned)(r1 >> 16 & 0xffff), (unsigned)(r1 & 0xffff),
             (unsigned)(r2 >> 48), (unsigned long long)(r2 & 0xffffffffffffULL));
}

static int fail(char *err, size_t errlen, const char *fmt, const char *detail)
{
    if (err)
        snprintf(err, errlen, fmt, detail ? detail : "");
    return -EINVAL;
}

static int text_member(const json_t *j, const char *key, bool required, char **out, char *err,
                       size_t errlen)
{
    const json_t *v = json_object_get(j, key);
    if (!v) {
        if (required)
            return fail(err, errlen, "missing %s", key);
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, errlen, "%s must be a string", key);
    if (json_string_length(v) > KCW_SILENCE_TEXT_MAX)
        return fail(err, errlen, "%s is too long", key);
    if (!(*out = strdup(json_string_value(v))))
        return -ENOMEM;
    return 0;
}

static int time_member(const json_t *j, const char *key, int64_t *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        return fail(err, errlen, "%s must be an RFC 3339 time string", key);
    if (kcw_rfc3339_parse(json_string_value(v), out) < 0)
        return fail(err, errlen, "%s is not an RFC 3339 time", key);
    return 0;
}

static int matchers_from_json(const json_t *list, kcw_matchers_t *ms, char *err, size_t errlen)
{
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail(err, errlen, "matchers must be a non-empty array%s", NULL);
    size_t i;
    const json_t *m;
    json_array_foreach(list, i, m)
    {
        const json_t *name = json_object_get(m, "name"), *value = json_object_get(m, "value");
        const json_t *is_re = json_object_get(m, "isRegex"), *is_eq = json_object_get(m, "isEqual");
        if (!json_is_object(m) || !json_is_string(name) || !json_is_string(value) ||
            !json_is_boolean(is_re) || (is_eq && !json_is_boolean(is_eq)))
            return fail(err, errlen,
                        "each matcher needs name and value (strings), isRegex and optional "
                        "isEqual (booleans)%s",
                        NULL);
        bool eq = !is_eq || json_is_true(is_eq);
        kcw_match_op_t op = json_is_true(is_re) ? (eq ? KCW_MATCH_RE : KCW_MATCH_NRE)
                                                : (eq ? KCW_MATCH_EQ : KCW_MATCH_NE);
        char msg[300];
        int rc = kcw_matchers_add(ms, json_string_value(name), op, json_string_value(value), msg,
                                  sizeof(msg));
        if (rc < 0) {
            if (err)
                snprintf(err, errlen, "matchers[%zu]: %s", i, msg);
            return rc == -ENOMEM ? rc : -EINVAL;
        }
    }
    return 0;
}

static int from_json(const json_t *j, int64_t now_ms, bool restore, kcw_silence_t *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return fail(err, errlen, "a silence must be a JSON object%s", NULL);
    int rc;
    char *id = NULL;
    if ((rc = text_member(j, "id", false, &id, err, errlen)) < 0)
        goto bad;
    if (id) {
        if (strlen(id) > KCW_SILENCE_ID_LEN) {
            free(id);
            rc = fail(err, errlen, "id is not a silence id%s", NULL);
            goto bad;
        }
        snprintf(out->id, sizeof(out->id), "%s", id);
        free(id);
    }
    if ((rc = matchers_from_json(json_object_get(j, "matchers"), &out->matchers, err, errlen)) <
            0 ||
        (rc = time_member(j, "startsAt", &out->starts_at_ms, err, errlen)) < 0 ||
        (rc = time_member(j, "endsAt", &out->ends_at_ms, err, errlen)) < 0 ||
        (rc = text_member(j, "createdBy", true, &out->created_by, err, errlen)) < 0 ||
        (rc = text_member(j, "comment", true, &out->comment, err, errlen)) < 0)
        goto bad;
    if (kcw_matchers_match_empty(&out->matchers)) {
        rc = fail(err, errlen, "silence matchers must not all match the empty label set%s",
                  NULL);
        goto bad;
    }
    if (out->ends_at_ms <= out->starts_at_ms) {
        rc = fail(err, errlen, "endsAt must be after startsAt%s", NULL);
        goto bad;
    }
    if (restore) {
        /* As saved: expired ones too, ids and update times kept. */
        if (!out->id[0]) {
            rc = fail(err, errlen, "a saved silence has no id%s", NULL);
            goto bad;
        }
        if (json_object_get(j, "updatedAt") &&
            (rc = time_member(j, "updatedAt", &out->updated_at_ms, err, errlen)) < 0)
            goto bad;
        return 0;
    }
    if (out->ends_at_ms <= now_ms) {
        rc = fail(err, errlen, "endsAt is in the past%s", NULL);
        goto bad;
    }
    /* Alertmanager moves a start in the past to now. */
    if (out->starts_at_ms < now_ms)
        out->starts_at_ms = now_ms;
    out->updated_at_ms = now_ms;
    return 0;
bad:
    kcw_silence_clear(out);
    return rc;
}

int kcw_silence_from_json(const json_t *j, int64_t now_ms, kcw_silence_t *out, char *err,
                          size_t errlen)
{
    return from_json(j, now_ms, false, out, err, errlen);
}

int kcw_silence_restore_json(const json_t *j, kcw_silence_t *out, char *err, size_t errlen)
{
    return from_json(j, 0, true, out, err, errlen);
}

static int put(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *time_json(int64_t ms)
{
    char buf[KCW_RFC3339_LEN];
    kcw_rfc3339_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *window_json(const kcw_weekly_window_t *w)
{
    json_t *o = json_object(), *days = json_array();
    char t[32];
    if (!o || !days)
        goto fail;
    for (int d = 0; d < 7; d++)
        if ((w->weekdays >> d & 1u) && json_array_append_new(days, json_string(WEEKDAYS[d])) < 0)
            goto fail;
    if (put(o, "weekdays", days) < 0)
        goto fail_o;
    snprintf(t, sizeof(t), "%02d:%02d", w->start_min / 60, w->start_min % 60);
    if (put(o, "start_time", json_string(t)) < 0)
        goto fail_o;
    snprintf(t, sizeof(t), "%02d:%02d", w->end_min / 60, w->end_min % 60);
    if (put(o, "end_time", json_string(t)) < 0)
        goto fail_o;
    return o;
fail:
    json_decref(days);
fail_o:
    json_decref(o);
    return NULL;
}

json_t *kcw_silence_to_json(const kcw_silence_t *s, int64_t now_ms)
{
    json_t *o = json_object(), *status = json_object(), *ms = json_array();
    if (!o || !status || !ms)
        goto fail;
    for (size_t i = 0; i < s->matchers.n; i++) {
        const kcw_matcher_t *m = &s->matchers.items[i];
        json_t *mj = json_pack("{s:o, s:o, s:b, s:b}", "name", kcw_json_text(m->name), "value",
                               kcw_json_text(m->value), "isRegex",
                               m->op == KCW_MATCH_RE || m->op == KCW_MATCH_NRE, "isEqual",
                               m->op == KCW_MATCH_EQ || m->op == KCW_MATCH_RE);
        if (json_array_append_new(ms, mj) < 0)
            goto fail;
    }
    if (put(status, "state", json_string(kcw_silence_state_name(kcw_silence_state(s, now_ms)))) <
        0)
        goto fail;
    json_t *st = status, *list = ms;
    status = ms = NULL;
    if (put(o, "id", kcw_json_text(s->id)) < 0 || put(o, "status", st) < 0 ||
        put(o, "updatedAt", time_json(s->updated_at_ms)) < 0 || put(o, "matchers", list) < 0 ||
        put(o, "startsAt", time_json(s->starts_at_ms)) < 0 ||
        put(o, "endsAt", s->ends_at_ms ? time_json(s->ends_at_ms) : json_null()) < 0 ||
        put(o, "createdBy", kcw_json_text(s->created_by ? s->created_by : "kcwatch.yaml")) < 0 ||
        put(o, "comment", kcw_json_text(s->comment)) < 0)
        goto fail;
    if (s->from_config) {
        json_t *wins = json_array();
        if (put(o, "source", json_string("config")) < 0 || !wins)
            goto fail;
        for (size_t i = 0; i < s->n_windows; i++)
            if (json_array_append_new(wins, window_json(&s->windows[i])) < 0) {
                json_decref(wins);
                goto fail;
            }
        if (put(o, "weekly", wins) < 0)
            goto fail;
    }
    return o;
fail:
    json_decref(status);
    json_decref(ms);
    json_decref(o);
    return NULL;
}

/* ------------------------------------------------------------ the set */

kcw_silences_t *kcw_silences_new(void)
{
    return calloc(1, sizeof(kcw_silences_t));
}

void kcw_silences_free(kcw_silences_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        kcw_silence_clear(&set->items[i]);
    free(set->items);
    free(set);
}

static int reserve(kcw_silences_t *set, size_t want)
{
    if (want <= set->cap)
        return 0;
    size_t cap = set->cap ? set->cap : 8;
    while (cap < want)
        cap *= 2;
    kcw_silence_t *items = realloc(set->items, cap * sizeof(*items));
    if (!items)
        return -ENOMEM;
    set->items = items;
    set->cap = cap;
    return 0;
}

int kcw_silences_set_config(kcw_silences_t *set, const kcw_silence_t *cfg, size_t n)
{
    size_t n_api = 0;
    for (size_t i = 0; i < set->n; i++)
        n_api += !set->items[i].from_config;
    if (n + n_api > KCW_SILENCES_MAX)
        return -E2BIG;
    kcw_silence_t *fresh = calloc(n ? n : 1, sizeof(*fresh));
    if (!fresh || reserve(set, n + n_api) < 0) {
        free(fresh);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (kcw_silence_copy(&fresh[i], &cfg[i]) < 0) {
            for (size_t j = 0; j < i; j++)
                kcw_silence_clear(&fresh[j]);
            free(fresh);
            return -ENOMEM;
        }
        fresh[i].from_config = true;
    }
    /* Keep the API silences in order after the new config ones. */
    size_t k = 0;
    kcw_silence_t *api = calloc(n_api ? n_api : 1, sizeof(*api));
    if (!api) {
        for (size_t j = 0; j < n; j++)
            kcw_silence_clear(&fresh[j]);
        free(fresh);
        return -ENOMEM;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (set->items[i].from_config)
            kcw_silence_clear(&set->items[i]);
        else
            api[k++] = set->items[i];
    }
    if (n + n_api > 0) { /* items is still NULL for an empty set */
        memcpy(set->items, fresh, n * sizeof(*fresh));
        memcpy(set->items + n, api, n_api * sizeof(*api));
    }
    set->n = n + n_api;
    free(fresh);
    free(api);
    return 0;
}

static long find_index(const kcw_silences_t *set, const char *id)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->items[i].id, id) == 0)
            return (long)i;
    return -1;
}

int kcw_silences_put(kcw_silences_t *set, kcw_silence_t *s, const char *new_id, int64_t now_ms,
                     char id_out[KCW_SILENCE_ID_LEN + 1])
{
    s->from_config = false;
    s->updated_at_ms = now_ms;
    if (s->id[0]) {
        long at = find_index(set, s->id);
        if (at < 0)
            return -ENOENT;
        kcw_silence_t *old = &set->items[at];
        if (old->from_config)
            return -EPERM;
        if (kcw_silence_state(old, now_ms) == KCW_SILENCE_EXPIRED)
            return -EALREADY;
        kcw_silence_clear(old);
        *old = *s;
    } else {
        if (set->n >= KCW_SILENCES_MAX)
            return -E2BIG;
        if (reserve(set, set->n + 1) < 0)
            return -ENOMEM;
        snprintf(s->id, sizeof(s->id), "%s", new_id);
        set->items[set->n++] = *s;
    }
    if (id_out)
        memcpy(id_out, s->id, KCW_SILENCE_ID_LEN + 1);
    memset(s, 0, sizeof(*s));
    return 0;
}

int kcw_silences_expire(kcw_silences_t *set, const char *id, int64_t now_ms)
{
    long at = id ? find_index(set, id) : -1;
    if (at < 0)
        return -ENOENT;
    kcw_silence_t *s = &set->items[at];
    if (s->from_config)
        return -EPERM;
    kcw_silence_state_t st = kcw_silence_state(s, now_ms);
    if (st == KCW_SILENCE_EXPIRED)
        return -EALREADY;
    if (st == KCW_SILENCE_PENDING)
        s->starts_at_ms = now_ms;
    s->ends_at_ms = now_ms;
    s->updated_at_ms = now_ms;
    return 0;
}

int kcw_silences_restore(kcw_silences_t *set, const kcw_silence_t *s)
{
    if (!s->id[0])
        return -EINVAL;
    if (find_index(set, s->id) >= 0)
        return -EEXIST;
    if (set->n >= KCW_SILENCES_MAX)
        return -E2BIG;
    if (reserve(set, set->n + 1) < 0 || kcw_silence_copy(&set->items[set->n], s) < 0)
        return -ENOMEM;
    set->items[set->n++].from_config = false;
    return 0;
}

size_t kcw_silences_gc(kcw_silences_t *set, int64_t now_ms,
                       void (*dropped_cb)(const kcw_silence_t *s, void *arg), void *arg)
{
    size_t k = 0, dropped = 0;
    for (size_t i = 0; i < set->n; i++) {
        kcw_silence_t *s = &set->items[i];
        if (!s->from_config && s->ends_at_ms != 0 &&
            now_ms - s->ends_at_ms > KCW_SILENCE_RETENTION_MS) {
            if (dropped_cb)
                dropped_cb(s, arg);
            kcw_silence_clear(s);
            dropped++;
            continue;
        }
        set->items[k++] = *s;
    }
    set->n = k;
    return dropped;
}

size_t kcw_silences_count(const kcw_silences_t *set)
{
    return set->n;
}

const kcw_silence_t *kcw_silences_at(const kcw_silences_t *set, size_t i)
{
    return i < set->n ? &set->items[i] : NULL;
}

const kcw_silence_t *kcw_silences_find(const kcw_silences_t *set, const char *id)
{
    long at = id ? find_index(set, id) : -1;
    return at < 0 ? NULL : &set->items[at];
}

const kcw_silence_t *kcw_silences_muting(const kcw_silences_t *set, const kcw_labels_t *labels,
                                         int64_t now_ms)
{
    for (size_t i = 0; i < set->n; i++)
        if (kcw_silence_mutes(&set->items[i], labels, now_ms))
            return &set->items[i];
    return NULL;
}
