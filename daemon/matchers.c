/* matchers.c: Alertmanager label matchers (see matchers.h).
 *
 * Text comes in as the string form ('a="1"' or '{a="1", b=~"x"}') or as
 * name/op/value from a structured source; each matcher keeps its compiled
 * PCRE2 regex (regex.c, anchored ^(?:...)$) so matching is one call per label.
 * The string parser is a small scanner over Alertmanager's matcher grammar:
 * NAME OP VALUE, VALUE double-quoted with backslash escapes or bare up to the
 * next ',' / '}'. */
#include "kcwatch/matchers.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/rules.h"

#define VALUE_MAX 4096 /* one matcher's value; regexes included */

const char *kcw_match_op_text(kcw_match_op_t op)
{
    switch (op) {
    case KCW_MATCH_EQ: return "=";
    case KCW_MATCH_NE: return "!=";
    case KCW_MATCH_RE: return "=~";
    case KCW_MATCH_NRE: return "!~";
    }
    return "?";
}

static bool label_name_valid(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static void matcher_clear(kcw_matcher_t *m)
{
    free(m->name);
    free(m->value);
    kcw_regex_free(m->re);
    memset(m, 0, sizeof(*m));
}

int kcw_matchers_add(kcw_matchers_t *ms, const char *name, kcw_match_op_t op, const char *value,
                     char *err, size_t errlen)
{
    if (!label_name_valid(name)) {
        if (err)
            snprintf(err, errlen, "invalid label name \"%s\" in matcher", name ? name : "");
        return -EINVAL;
    }
    if (!value)
        value = "";
    if (strlen(value) > VALUE_MAX) {
        if (err)
            snprintf(err, errlen, "matcher value for %s is longer than %d bytes", name,
                     VALUE_MAX);
        return -EINVAL;
    }
    if (ms->n >= KCW_MATCHERS_MAX) {
        if (err)
            snprintf(err, errlen, "more than %d matchers", KCW_MATCHERS_MAX);
        return -E2BIG;
    }
    kcw_matcher_t m = {.op = op};
    if (op == KCW_MATCH_RE || op == KCW_MATCH_NRE) {
        int rc = kcw_regex_compile(value, true, &m.re, err, errlen);
        if (rc < 0)
            return rc;
    }
    m.name = strdup(name);
    m.value = strdup(value);
    if (!m.name || !m.value)
        goto oom;
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 4;
        kcw_matcher_t *items = realloc(ms->items, cap * sizeof(*items));
        if (!items)
            goto oom;
        ms->items = items;
        ms->cap = cap;
    }
    ms->items[ms->n++] = m;
    return 0;
oom:
    matcher_clear(&m);
    if (err)
        snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* ------------------------------------------------------------ string form */

typedef struct scanner {
    const char *text, *p;
    char *err;
    size_t errlen;
} scanner_t;

static int scan_fail(scanner_t *s, const char *what)
{
    if (s->err)
        snprintf(s->err, s->errlen, "bad matcher \"%s\": %s at character %zu", s->text, what,
                 (size_t)(s->p - s->text) + 1);
    return -EINVAL;
}

static void skip_space(scanner_t *s)
{
    while (*s->p && isspace((unsigned char)*s->p))
        s->p++;
}

/* Reads a quoted or bare value into buf (VALUE_MAX + 1 bytes). */
static int scan_value(scanner_t *s, bool braced, char *buf)
{
    size_t len = 0;
    if (*s->p == '"') {
        s->p++;
        for (;;) {
            char c = *s->p;
            if (c == '\0')
                return scan_fail(s, "unterminated quoted value");
            s->p++;
            if (c == '"')
                break;
            if (c == '\\') {
                char e = *s->p;
                if (e == '\0')
                    return scan_fail(s, "unterminated escape");
                s->p++;
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                /* Keep regex escapes such as \. or \d: only \" \\ \n \t are
                 * string escapes. */
                if (e != 'n' && e != 't' && e != '"' && e != '\\') {
                    if (len >= VALUE_MAX)
                        return scan_fail(s, "value too long");
                    buf[len++] = '\\';
                }
            }
            if (len >= VALUE_MAX)
                return scan_fail(s, "value too long");
            buf[len++] = c;
        }
    } else {
        const char *start = s->p;
        while (*s->p && *s->p != ',' && !(braced && *s->p == '}')) {
            if (*s->p == '"')
                return scan_fail(s, "unexpected '\"' in an unquoted value");
            s->p++;
        }
        const char *end = s->p;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        len = (size_t)(end - start);
        if (len > VALUE_MAX)
            return scan_fail(s, "value too long");
        memcpy(buf, start, len);
    }
    buf[len] = '\0';
    return 0;
}

static int scan_one(scanner_t *s, bool braced, kcw_matchers_t *out)
{
    char name[256];
    size_t nlen = 0;
    skip_space(s);
    if (!(isalpha((unsigned char)*s->p) || *s->p == '_'))
        return scan_fail(s, "expected a label name");
    while (isalnum((unsigned char)*s->p) || *s->p == '_') {
        if (nlen + 1 >= sizeof(name))
            return scan_fail(s, "label name too long");
        name[nlen++] = *s->p++;
    }
    name[nlen] = '\0';
    skip_space(s);
    kcw_match_op_t op;
    if (strncmp(s->p, "=~", 2) == 0)
        op = KCW_MATCH_RE, s->p += 2;
    else if (strncmp(s->p, "!~", 2) == 0)
        op = KCW_MATCH_NRE, s->p += 2;
    else if (strncmp(s->p, "!=", 2) == 0)
        op = KCW_MATCH_NE, s->p += 2;
    else if (*s->p == '=')
        op = KCW_MATCH_EQ, s->p += 1;
    else
        return scan_fail(s, "expected one of = != =~ !~");
    skip_space(s);
    char *value = malloc(VALUE_MAX + 1);
    if (!value)
        return -ENOMEM;
    int rc = scan_value(s, braced, value);
    if (rc == 0) {
        char msg[300];
        rc = kcw_matchers_add(out, name, op, value, msg, sizeof(msg));
        if (rc < 0 && s->err)
            snprintf(s->err, s->errlen, "bad matcher \"%s\": %s", s->text, msg);
    }
    free(value);
    return rc;
}

int kcw_matchers_parse(kcw_matchers_t *ms, const char *text, char *err, size_t errlen)
{
    scanner_t s = {.text = text ? text : "", .p = text ? text : "", .err = err, .errlen = errlen};
    kcw_matchers_t got = {0};
    int rc = 0;
    skip_space(&s);
    bool braced = *s.p == '{';
    if (braced)
        s.p++;
    for (;;) {
        skip_space(&s);
        if (braced && *s.p == '}')
            break;
        if (!*s.p) {
            if (braced)
                rc = scan_fail(&s, "missing '}'");
            else if (got.n == 0)
                rc = scan_fail(&s, "expected a matcher");
            break;
        }
        if ((rc = scan_one(&s, braced, &got)) < 0)
            break;
        skip_space(&s);
        if (*s.p == ',')
            s.p++;
        else if (!(*s.p == '\0' || (braced && *s.p == '}'))) {
            rc = scan_fail(&s, "expected ',' after a matcher");
            break;
        }
    }
    if (rc == 0 && braced) {
        s.p++; /* the '}' */
        skip_space(&s);
        if (*s.p)
            rc = scan_fail(&s, "text after '}'");
    }
    if (rc == 0 && got.n == 0 && !braced)
        rc = scan_fail(&s, "expected a matcher");
    if (rc == 0 && ms->n + got.n > KCW_MATCHERS_MAX) {
        if (err)
            snprintf(err, errlen, "more than %d matchers", KCW_MATCHERS_MAX);
        rc = -E2BIG;
    }
    if (rc == 0) {
        for (size_t i = 0; i < got.n && rc == 0; i++) {
            kcw_matcher_t *m = &got.items[i];
            rc = kcw_matchers_add(ms, m->name, m->op, m->value, err, errlen);
        }
    }
    kcw_matchers_clear(&got);
    return rc;
}

/* ------------------------------------------------------------ matching */

bool kcw_matcher_matches(const kcw_matcher_t *m, const kcw_labels_t *labels)
{
    const char *v = labels ? kcw_labels_get(labels, m->name) : NULL;
    if (!v)
        v = "";
    switch (m->op) {
    case KCW_MATCH_EQ: return strcmp(v, m->value) == 0;
    case KCW_MATCH_NE: return strcmp(v, m->value) != 0;
    case KCW_MATCH_RE: return kcw_regex_match(m->re, v);
    case KCW_MATCH_NRE: return !kcw_regex_match(m->re, v);
    }
    return false;
}

bool kcw_matchers_match(const kcw_matchers_t *ms, const kcw_labels_t *labels)
{
    for (size_t i = 0; i < ms->n; i++)
        if (!kcw_matcher_matches(&ms->items[i], labels))
            return false;
    return true;
}

bool kcw_matchers_match_empty(const kcw_matchers_t *ms)
{
    kcw_labels_t none = {0};
    return kcw_matchers_match(ms, &none);
}

/* ------------------------------------------------------------ text */

char *kcw_matcher_format(const kcw_matcher_t *m)
{
    size_t vlen = strlen(m->value);
    char *out = malloc(strlen(m->name) + 2 * vlen + 8);
    if (!out)
        return NULL;
    char *p = out;
    p += sprintf(p, "%s%s\"", m->name, kcw_match_op_text(m->op));
    for (const char *v = m->value; *v; v++) {
        if (*v == '"' || *v == '\\') {
            *p++ = '\\';
            *p++ = *v;
        } else if (*v == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else {
            *p++ = *v;
        }
    }
    *p++ = '"';
    *p = '\0';
    return out;
}

char *kcw_matchers_format(const kcw_matchers_t *ms)
{
    char **parts = calloc(ms->n ? ms->n : 1, sizeof(*parts));
    if (!parts)
        return NULL;
    size_t total = 3;
    char *out = NULL;
    for (size_t i = 0; i < ms->n; i++) {
        if (!(parts[i] = kcw_matcher_format(&ms->items[i])))
            goto done;
        total += strlen(parts[i]) + 2;
    }
    if (!(out = malloc(total)))
        goto done;
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < ms->n; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", parts[i]);
    *p++ = '}';
    *p = '\0';
done:
    for (size_t i = 0; i < ms->n; i++)
        free(parts[i]);
    free(parts);
    return out;
}

int kcw_matchers_copy(kcw_matchers_t *dst, const kcw_matchers_t *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const kcw_matcher_t *m = &src->items[i];
        int rc = kcw_matchers_add(dst, m->name, m->op, m->value, NULL, 0);
        if (rc < 0) {
            kcw_matchers_clear(dst);
            return rc;
        }
    }
    return 0;
}

void kcw_matchers_clear(kcw_matchers_t *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        matcher_clear(&ms->items[i]);
    free(ms->items);
    memset(ms, 0, sizeof(*ms));
}
