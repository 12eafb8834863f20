/* json_scan.c: jsmn's tokens of a body and the checks between them
 * (json_scan.h). This file holds jsmn's one definition. */
#define KCW_JSON_SCAN_IMPL
#include "kcwatch/json_scan.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* Deeper than jansson accepts: containers nested around a token, counted
 * with a stack of their ends (tokens come in document order). */
static bool too_deep(const jsmntok_t *tok, int n)
{
    int ends[KCW_JSON_MAX_DEPTH + 1];
    int depth = 0;
    for (int t = 0; t < n; t++) {
        while (depth > 0 && ends[depth - 1] <= tok[t].start)
            depth--;
        if (tok[t].type == JSMN_OBJECT || tok[t].type == JSMN_ARRAY) {
            if (depth == KCW_JSON_MAX_DEPTH)
                return true;
            ends[depth++] = tok[t].end;
        }
    }
    return false;
}

int kcw_json_scan(const char *body, size_t len, jsmntok_t **tok, int *n)
{
    *tok = NULL;
    *n = 0;
    if (len >= INT_MAX)
        return 1;
    jsmn_parser p;
    jsmn_init(&p);
    int count = jsmn_parse(&p, body, len, NULL, 0);
    if (count < 1)
        return 1;
    jsmntok_t *t = malloc((size_t)count * sizeof(*t));
    if (!t)
        return -ENOMEM;
    jsmn_init(&p);
    if (jsmn_parse(&p, body, len, t, (unsigned)count) != count || too_deep(t, count)) {
        free(t);
        return 1;
    }
    *tok = t;
    *n = count;
    return 0;
}

int kcw_json_tok_skip(const jsmntok_t *tok, int n, int t)
{
    int j = t + 1;
    while (j < n && tok[j].start < tok[t].end)
        j++;
    return j;
}

bool kcw_json_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool kcw_json_gap_ok(const char *body, size_t from, size_t to, char sep)
{
    bool seen = sep == 0;
    for (size_t i = from; i < to; i++) {
        if (kcw_json_blank(body[i]))
            continue;
        if (body[i] != sep || seen)
            return false;
        seen = true;
    }
    return seen;
}
