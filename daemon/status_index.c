/* status_index.c: re-parse only the connectors whose bytes changed.
 *
 * Data enters as the body of each expand=status poll and leaves as the sorted
 * connector array kcw_connect_parse_expand would build from it. jsmn
 * tokenizes the body (it checks brackets, strings and escapes, and says
 * where each value starts and ends); this file checks the few bytes jsmn
 * leaves between tokens at the top level (whitespace, ':' and ','), decodes
 * keys with jansson when they hold escapes or non-ASCII bytes, and hands
 * every member whose bytes differ from the last body to jansson through
 * kcw_connect_parse_member. A member with identical bytes under the same key
 * was parsed from those very bytes before, so its connector is reused.
 *
 * Whenever the tokenizer or the top-level check objects, the body goes to
 * the full jansson parse instead: that gives the precise error, and the
 * exact result should jansson accept what jsmn did not. */
#include "kcwatch/status_index.h"
#include "kcwatch/json_scan.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *name; /* decoded key */
    size_t name_len;
    size_t off, len; /* the member's value in body */
    bool present;    /* the member carried a status (a connector came out of it) */
} entry_t;

struct kcw_status_index {
    char *body; /* the last applied body */
    size_t len;
    entry_t *entries; /* sorted by name, one per distinct key */
    size_t n_entries;
};

/* A member of the new body while it is being applied. */
typedef struct member {
    const char *key; /* into the body, or key_owned */
    size_t key_len;
    char *key_owned; /* decoded by jansson (escapes, non-ASCII) */
    size_t off, len;
    size_t pos;       /* order in the body: the last of equal keys wins, as in jansson */
    const entry_t *old;
    kcw_connector_status_t parsed; /* changed members */
    bool changed, present;
    size_t prev_idx; /* unchanged and present: where in prev */
} member_t;

kcw_status_index_t *kcw_status_index_new(void)
{
    return calloc(1, sizeof(kcw_status_index_t));
}

static void entries_free(entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

void kcw_status_index_reset(kcw_status_index_t *ix)
{
    if (!ix)
        return;
    free(ix->body);
    entries_free(ix->entries, ix->n_entries);
    memset(ix, 0, sizeof(*ix));
}

void kcw_status_index_free(kcw_status_index_t *ix)
{
    kcw_status_index_reset(ix);
    free(ix);
}

bool kcw_status_index_same(const kcw_status_index_t *ix, const char *body, size_t len)
{
    return ix && ix->body && len == ix->len && memcmp(ix->body, body, len) == 0;
}

void kcw_status_delta_clear(kcw_status_delta_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_connectors; i++)
        kcw_connector_status_clear(&d->connectors[i]);
    free(d->connectors);
    for (size_t i = 0; i < d->n_parsed; i++)
        free(d->parsed_names[i]);
    free(d->parsed_names);
    memset(d, 0, sizeof(*d));
}

/* Lexicographic on bytes like strcmp (names hold no NUL: jansson refuses it). */
static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return (an > bn) - (an < bn);
}

static int member_cmp(const void *x, const void *y)
{
    const member_t *a = x, *b = y;
    int c = name_cmp(a->key, a->key_len, b->key, b->key_len);
    if (c)
        return c;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static void members_free(member_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].key_owned);
        kcw_connector_status_clear(&m[i].parsed);
    }
    free(m);
}

/* Keys that are plain printable ASCII without escapes are their own bytes;
 * any other key is decoded by jansson. false: not a valid JSON string. */
static bool key_decode(const char *body, const jsmntok_t *t, member_t *m)
{
    const char *s = body + t->start;
    size_t n = (size_t)(t->end - t->start);
    bool plain = true;
    for (size_t i = 0; i < n && plain; i++) {
        unsigned char c = (unsigned char)s[i];
        plain = c >= 0x20 && c < 0x80 && c != '\\';
    }
    if (plain) {
        m->key = s;
        m->key_len = n;
        return true;
    }
    json_t *v = json_loadb(s - 1, n + 2, JSON_DECODE_ANY, NULL);
    if (!json_is_string(v)) {
        json_decref(v);
        return false;
    }
    m->key_owned = strdup(json_string_value(v));
    json_decref(v);
    if (!m->key_owned)
        return false;
    m->key = m->key_owned;
    m->key_len = strlen(m->key_owned);
    return true;
}

/* Splits body into members. 0, 1 (not an object we can split: use the full
 * parse), -ENOMEM. */
static int split(const char *body, size_t len, member_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    jsmntok_t *tok;
    int n_tok;
    int rc = kcw_json_scan(body, len, &tok, &n_tok);
    if (rc != 0)
        return rc;
    rc = 1;
    member_t *m = NULL;
    size_t n_m = 0;
    if (tok[0].type != JSMN_OBJECT)
        goto done;
    size_t obj_end = (size_t)tok[0].end; /* one past '}' */
    if (!kcw_json_gap_ok(body, 0, (size_t)tok[0].start, 0) || !kcw_json_gap_ok(body, obj_end, len, 0))
        goto done;
    size_t want = (size_t)tok[0].size;
    m = calloc(want ? want : 1, sizeof(*m));
    if (!m) {
        rc = -ENOMEM;
        goto done;
    }
    size_t at = (size_t)tok[0].start + 1; /* after '{' */
    int i = 1;
    for (size_t k = 0; k < want; k++) {
        if (i + 1 >= n_tok || tok[i].type != JSMN_STRING || tok[i].size != 1)
            goto done;
        const jsmntok_t *key = &tok[i], *val = &tok[i + 1];
        size_t kstart = (size_t)key->start - 1; /* jsmn spans strings without quotes */
        if (!kcw_json_gap_ok(body, at, kstart, k ? ',' : 0))
            goto done;
        size_t vstart = (size_t)val->start, vend = (size_t)val->end;
        if (val->type == JSMN_STRING) {
            vstart--;
            vend++;
        }
        if (!kcw_json_gap_ok(body, (size_t)key->end + 1, vstart, ':'))
            goto done;
        member_t *mm = &m[n_m++];
        mm->pos = k;
        mm->off = vstart;
        mm->len = vend - vstart;
        if (!key_decode(body, key, mm))
            goto done;
        at = vend;
        i = kcw_json_tok_skip(tok, n_tok, i + 1);
    }
    if (i != n_tok || !kcw_json_gap_ok(body, at, obj_end - 1, 0))
        goto done;
    rc = 0;
done:
    free(tok);
    if (rc != 0) {
        members_free(m, n_m);
        return rc;
    }
    *out = m;
    *n_out = n_m;
    return 0;
}

static const kcw_connector_status_t *prev_find(const kcw_connector_status_t *prev, size_t n,
                                               const char *name, size_t name_len, size_t *idx)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (!prev[mid].name)
            return NULL; /* not a model from the last apply */
        int c = name_cmp(prev[mid].name, strlen(prev[mid].name), name, name_len);
        if (c == 0) {
            *idx = mid;
            return &prev[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The full parse, for bodies the split does not take. */
static int apply_full(kcw_status_index_t *ix, const char *body, size_t len,
                      kcw_status_delta_t *out, char *err, size_t errlen)
{
    kcw_status_index_reset(ix);
    kcw_cluster_status_t st = {0};
    char **names = NULL;
    size_t n_names = 0;
    int rc = kcw_connect_parse_expand(body, len, &st, &names, &n_names, err, errlen);
    if (rc == 1) {
        for (size_t i = 0; i < n_names; i++)
            free(names[i]);
        free(names);
        return 1;
    }
    if (rc < 0)
        return rc;
    out->connectors = st.connectors;
    out->n_connectors = st.n_connectors;
    out->parsed_names = calloc(st.n_connectors ? st.n_connectors : 1, sizeof(char *));
    if (!out->parsed_names) {
        kcw_status_delta_clear(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < st.n_connectors; i++) {
        out->parsed_names[i] = strdup(st.connectors[i].name);
        if (!out->parsed_names[i]) {
            kcw_status_delta_clear(out);
            return -ENOMEM;
        }
        out->n_parsed = i + 1;
    }
    return 0;
}

int kcw_status_index_apply(kcw_status_index_t *ix, const char *body, size_t len,
                           kcw_connector_status_t *prev, size_t n_prev, kcw_status_delta_t *out,
                           char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!ix || !body)
        return -EINVAL;
    member_t *m;
    size_t n_m;
    int rc = split(body, len, &m, &n_m);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return apply_full(ix, body, len, out, err, errlen);
    if (n_m > 1)
        qsort(m, n_m, sizeof(*m), member_cmp);
    /* Equal keys: jansson keeps the last value, so do we; it still reads the
     * others, so a broken one fails the body. */
    size_t n = 0;
    for (size_t i = 0; i < n_m; i++) {
        if (n > 0 && name_cmp(m[n - 1].key, m[n - 1].key_len, m[i].key, m[i].key_len) == 0) {
            json_error_t jerr;
            json_t *v = json_loadb(body + m[n - 1].off, m[n - 1].len, JSON_DECODE_ANY, &jerr);
            json_decref(v);
            free(m[n - 1].key_owned);
            m[n - 1] = m[i];
            if (!v) {
                for (size_t k = i + 1; k < n_m; k++)
                    m[n++] = m[k]; /* keep them owned by m for members_free */
                members_free(m, n);
                return apply_full(ix, body, len, out, err, errlen);
            }
        } else {
            m[n++] = m[i];
        }
    }
    n_m = n;

    /* Find each member's last bytes (both sides sorted), parse what changed. */
    size_t j = 0, n_present = 0, n_parsed = 0;
    for (size_t i = 0; i < n_m; i++) {
        member_t *mm = &m[i];
        while (j < ix->n_entries && name_cmp(ix->entries[j].name, ix->entries[j].name_len,
                                             mm->key, mm->key_len) < 0)
            j++;
        const entry_t *e = j < ix->n_entries && ix->entries[j].name_len == mm->key_len &&
                                   memcmp(ix->entries[j].name, mm->key, mm->key_len) == 0
                               ? &ix->entries[j]
                               : NULL;
        mm->old = e;
        bool same = e && e->len == mm->len && memcmp(ix->body + e->off, body + mm->off, mm->len) == 0;
        if (same && !e->present) {
            mm->present = false;
        } else if (same &&
                   prev_find(prev, n_prev, mm->key, mm->key_len, &mm->prev_idx) != NULL) {
            mm->present = true;
        } else {
            /* The key is copied: a decoded key may not end where the body's does. */
            char *key = strndup(mm->key, mm->key_len);
            if (!key) {
                rc = -ENOMEM;
                goto fail;
            }
            rc = kcw_connect_parse_member(key, body + mm->off, mm->len, &mm->parsed, &mm->present,
                                          err, errlen);
            free(key);
            if (rc < 0)
                goto fail;
            mm->changed = true;
            if (mm->present)
                n_parsed++;
        }
        if (mm->present)
            n_present++;
    }

    /* Nothing can fail below but allocation, which happens before prev moves. */
    entry_t *entries = calloc(n_m ? n_m : 1, sizeof(*entries));
    char *copy = malloc(len ? len : 1);
    out->connectors = calloc(n_present ? n_present : 1, sizeof(*out->connectors));
    out->parsed_names = calloc(n_parsed ? n_parsed : 1, sizeof(char *));
    if (!entries || !copy || !out->connectors || !out->parsed_names) {
        free(entries);
        free(copy);
        free(out->connectors);
        free(out->parsed_names);
        memset(out, 0, sizeof(*out));
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n_m; i++) {
        member_t *mm = &m[i];
        entry_t *e = &entries[i];
        if (mm->old) {
            /* Reuse the old name: it is the same key. */
            entry_t *old = &ix->entries[mm->old - ix->entries];
            e->name = old->name;
            old->name = NULL;
        } else {
            e->name = strndup(mm->key, mm->key_len);
            if (!e->name) {
                /* No name: the entry is dropped and the member parses again next time. */
                e->name = NULL;
            }
        }
        e->name_len = mm->key_len;
        e->off = mm->off;
        e->len = mm->len;
        e->present = mm->present;
        if (!mm->present)
            continue;
        kcw_connector_status_t *c = &out->connectors[out->n_connectors++];
        if (mm->changed) {
            *c = mm->parsed;
            memset(&mm->parsed, 0, sizeof(mm->parsed));
            out->parsed_names[out->n_parsed] = strdup(c->name);
            if (out->parsed_names[out->n_parsed])
                out->n_parsed++;
        } else {
            *c = prev[mm->prev_idx];
            memset(&prev[mm->prev_idx], 0, sizeof(prev[mm->prev_idx]));
        }
    }
    /* Entries without a name (allocation failed) are left out. */
    size_t ne = 0;
    for (size_t i = 0; i < n_m; i++)
        if (entries[i].name)
            entries[ne++] = entries[i];
    memcpy(copy, body, len);
    entries_free(ix->entries, ix->n_entries);
    free(ix->body);
    ix->entries = entries;
    ix->n_entries = ne;
    ix->body = copy;
    ix->len = len;
    members_free(m, n_m);
    return 0;
fail:
    members_free(m, n_m);
    kcw_status_index_reset(ix);
    return rc;
}
