/* template.c: the annotation/label template subset (see template.h).
 *
 * Source text enters through kcw_template_compile(): a lexer splits it into
 * literal text and {{ actions }}, a recursive-descent parser turns the
 * actions into a small tree (text, print-pipeline, if/else) and rejects
 * everything outside the subset with the exact FILE:LINE:COL of the offending
 * token. kcw_template_render() walks the tree against a kcw_template_ctx_t and
 * produces a bounded string. Output formats follow Go's text/template and fmt
 * as Prometheus uses them (missingkey=zero, %v of float64, the humanize*
 * helpers), so rules copied from Prometheus print the same text. */
#include "kcwatch/template.h"
#include "kcwatch/rules.h" /* kcw_regex_* */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32             /* nested if / parentheses */
#define MAX_SOURCE (1024 * 1024) /* a template is annotation text, not a document */
#define MAX_FMT_WIDTH 1000       /* printf width / precision */
#define MAX_ERROR 512

/* --- tree ------------------------------------------------------------- */

typedef enum {
    FN_NONE = 0,
    FN_HUMANIZE,
    FN_HUMANIZE1024,
    FN_HUMANIZE_DURATION,
    FN_HUMANIZE_PERCENTAGE,
    FN_PRINTF,
    FN_TITLE,
    FN_TO_UPPER,
    FN_TO_LOWER,
    FN_EQ,
    FN_NE,
    FN_QUERY,
    FN_FIRST,
    FN_LABEL,
    FN_VALUE,
    FN_SORT_BY_LABEL,
    FN_RE_REPLACE_ALL,
    FN_SAFE_HTML,
    FN_EXTERNAL_URL,
    FN_PATH_PREFIX,
} fn_t;

static const struct {
    const char *name;
    fn_t fn;
    int min_args;
    int max_args; /* -1: unbounded */
} functions[] = {
    {"humanize", FN_HUMANIZE, 1, 1},
    {"humanize1024", FN_HUMANIZE1024, 1, 1},
    {"humanizeDuration", FN_HUMANIZE_DURATION, 1, 1},
    {"humanizePercentage", FN_HUMANIZE_PERCENTAGE, 1, 1},
    {"printf", FN_PRINTF, 1, -1},
    {"title", FN_TITLE, 1, 1},
    {"toUpper", FN_TO_UPPER, 1, 1},
    {"toLower", FN_TO_LOWER, 1, 1},
    {"eq", FN_EQ, 2, -1},
    {"ne", FN_NE, 2, 2},
    {"query", FN_QUERY, 1, 1},
    {"first", FN_FIRST, 1, 1},
    {"label", FN_LABEL, 2, 2},
    {"value", FN_VALUE, 1, 1},
    {"sortByLabel", FN_SORT_BY_LABEL, 2, 2},
    {"reReplaceAll", FN_RE_REPLACE_ALL, 3, 3},
    {"safeHtml", FN_SAFE_HTML, 1, 1},
    {"externalURL", FN_EXTERNAL_URL, 0, 0},
    {"pathPrefix", FN_PATH_PREFIX, 0, 0},
};
#define N_FUNCTIONS (sizeof(functions) / sizeof(functions[0]))

typedef enum {
    ARG_LABEL,     /* $labels.NAME, .Labels.NAME */
    ARG_EXT_LABEL, /* $externalLabels.NAME, .ExternalLabels.NAME */
    ARG_ANNOTATION, /* $annotations.NAME, .Annotations.NAME (notification templates) */
    ARG_VALUE,     /* $value, .Value */
    ARG_TRACE,     /* $trace */
    ARG_STRING,
    ARG_INT,
    ARG_FLOAT,
    ARG_BOOL,
    ARG_PIPE, /* ( pipeline ) */
    ARG_DOT,  /* {{ . }}: the value of the enclosing with / range */
} arg_kind_t;

typedef struct pipeline pipeline_t;

typedef struct arg {
    arg_kind_t kind;
    char *str; /* label name or string literal */
    size_t len;
    double num;
    long long inum;
    bool b;
    bool field; /* .Labels / .Value (follow the dot), not $labels / $value */
    pipeline_t *pipe;
} arg_t;

typedef struct command {
    fn_t fn; /* FN_NONE: a single operand */
    arg_t *args;
    size_t n_args;
    int line, col;
} command_t;

struct pipeline {
    command_t *cmds;
    size_t n;
};

typedef enum { NODE_TEXT, NODE_PRINT, NODE_IF, NODE_WITH, NODE_RANGE } node_kind_t;

typedef struct node node_t;
typedef struct node_list {
    node_t *items;
    size_t n, cap;
} node_list_t;

struct node {
    node_kind_t kind;
    char *text; /* NODE_TEXT */
    size_t len;
    pipeline_t *pipe; /* NODE_PRINT, NODE_IF condition */
    node_list_t then_nodes, else_nodes;
};

struct kcw_template {
    char *file;
    node_list_t root;
    const kcw_template_env_t *env;
};

static void pipeline_free(pipeline_t *p);

static void arg_clear(arg_t *a)
{
    free(a->str);
    pipeline_free(a->pipe);
}

static void pipeline_free(pipeline_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < p->cmds[i].n_args; j++)
            arg_clear(&p->cmds[i].args[j]);
        free(p->cmds[i].args);
    }
    free(p->cmds);
    free(p);
}

static void node_list_clear(node_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        node_t *n = &l->items[i];
        free(n->text);
        pipeline_free(n->pipe);
        node_list_clear(&n->then_nodes);
        node_list_clear(&n->else_nodes);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

void kcw_template_set_env(kcw_template_t *t, const kcw_template_env_t *env)
{
    if (t)
        t->env = env;
}

void kcw_template_free(kcw_template_t *t)
{
    if (!t)
        return;
    node_list_clear(&t->root);
    free(t->file);
    free(t);
}

/* items (an array of n elem-sized entries, room for *cap) with room for one
 * more: the same or a moved block, or NULL with items untouched. */
static void *grow(void *items, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return items;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(items, ncap * elem);
    if (p)
        *cap = ncap;
    return p;
}

/* items (n entries) in a block of just that size: every rule keeps its
 * compiled templates for its whole life, and the parser's arrays grow by
 * doubling. The same block when shrinking fails. */
static void *fit(void *items, size_t n, size_t elem)
{
    if (n == 0) {
        free(items);
        return NULL;
    }
    void *p = realloc(items, n * elem);
    return p ? p : items;
}

static void pipeline_fit(pipeline_t *p)
{
    if (!p)
        return;
    p->cmds = fit(p->cmds, p->n, sizeof(*p->cmds));
    for (size_t i = 0; i < p->n; i++) {
        command_t *c = &p->cmds[i];
        c->args = fit(c->args, c->n_args, sizeof(*c->args));
        for (size_t j = 0; j < c->n_args; j++)
            pipeline_fit(c->args[j].pipe);
    }
}

/* The parse tree's arrays fitted to their contents, depth-first (as deep
 * as the parser allows). */
static void node_list_fit(node_list_t *l)
{
    l->items = fit(l->items, l->n, sizeof(*l->items));
    l->cap = l->n;
    for (size_t i = 0; i < l->n; i++) {
        pipeline_fit(l->items[i].pipe);
        node_list_fit(&l->items[i].then_nodes);
        node_list_fit(&l->items[i].else_nodes);
    }
}

/* --- lexer and parser ------------------------------------------------- */

typedef enum {
    T_END,    /* }} or -}} */
    T_VAR,    /* $name */
    T_FIELD,  /* .Name */
    T_IDENT,  /* function or keyword */
    T_STRING, /* decoded into tok.str */
    T_NUMBER,
    T_PIPE,
    T_LPAREN,
    T_RPAREN,
} tok_kind_t;

typedef struct token {
    tok_kind_t kind;
    size_t start, end; /* source span */
    char *str;         /* T_STRING: decoded text (owned) */
    size_t len;
    bool trim_right; /* T_END: -}} */
} token_t;

typedef struct parser {
    const char *src;
    size_t len;
    size_t pos;
    const char *file;
    int line0, col0, indent;
    kcw_errors_t *errs;
    bool failed;
    bool nomem;
    bool trim_next;      /* the previous action ended with -}} */
    int scoped;          /* inside the body of a with / range: the dot is a value */
    size_t action_start; /* offset of the current action's {{ */
    /* position cache: src offset -> line/column, scanned forward */
    size_t cache_pos, cache_bol;
    int cache_line;
} parser_t;

/* Line and column (1-based, counted in characters like libyaml marks) of a
 * source offset. Lines after the first start at column indent + 1. */
static void where(parser_t *p, size_t pos, int *line, int *col)
{
    if (pos < p->cache_pos) {
        p->cache_pos = 0;
        p->cache_bol = 0;
        p->cache_line = 0;
    }
    for (size_t i = p->cache_pos; i < pos && i < p->len; i++) {
        if (p->src[i] == '\n') {
            p->cache_line++;
            p->cache_bol = i + 1;
        }
    }
    p->cache_pos = pos;
    int chars = 0;
    for (size_t i = p->cache_bol; i < pos && i < p->len; i++)
        if (((unsigned char)p->src[i] & 0xC0) != 0x80)
            chars++;
    *line = p->line0 + p->cache_line;
    *col = (p->cache_line == 0 ? p->col0 : p->indent + 1) + chars;
}

static void perror_at(parser_t *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perror_at(parser_t *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return; /* one error per template: later ones are usually fallout */
    p->failed = true;
    char msg[MAX_ERROR];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line, col;
    where(p, pos, &line, &col);
    kcw_errors_add(p->errs, p->file, line, col, "template: %s", msg);
}

static void parser_nomem(parser_t *p)
{
    if (!p->failed)
        kcw_errors_add(p->errs, p->file, p->line0, p->col0, "template: out of memory");
    p->failed = true;
    p->nomem = true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool at(const parser_t *p, size_t pos, const char *s)
{
    size_t n = strlen(s);
    return pos + n <= p->len && memcmp(p->src + pos, s, n) == 0;
}

/* Decodes a "..." literal starting at p->pos; Go's escapes minus the exotic
 * ones. Sets tok->str. */
static int lex_string(parser_t *p, token_t *tok)
{
    size_t start = p->pos++;
    char *buf = malloc(p->len - start + 1);
    if (!buf) {
        parser_nomem(p);
        return -ENOMEM;
    }
    size_t n = 0;
    while (p->pos < p->len && p->src[p->pos] != '"') {
        char c = p->src[p->pos];
        if (c == '\n') {
            free(buf);
            perror_at(p, start, "unterminated quoted string");
            return -EINVAL;
        }
        if (c != '\\') {
            buf[n++] = c;
            p->pos++;
            continue;
        }
        size_t esc = p->pos;
        if (p->pos + 1 >= p->len)
            break;
        char e = p->src[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case 'n':
            buf[n++] = '\n';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case '\\':
            buf[n++] = '\\';
            break;
        case '"':
            buf[n++] = '"';
            break;
        case '\'':
            buf[n++] = '\'';
            break;
        case 'x': {
            int v = 0;
            for (int i = 0; i < 2; i++) {
                char h = p->pos < p->len ? p->src[p->pos] : '\0';
                int d = is_digit(h)              ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (d < 0) {
                    free(buf);
                    perror_at(p, esc, "invalid \\x escape in string");
                    return -EINVAL;
                }
                v = v * 16 + d;
                p->pos++;
            }
            buf[n++] = (char)v;
            break;
        }
        default:
            free(buf);
            perror_at(p, esc, "unknown escape sequence \\%c in string", e);
            return -EINVAL;
        }
    }
    if (p->pos >= p->len) {
        free(buf);
        perror_at(p, start, "unterminated quoted string");
        return -EINVAL;
    }
    p->pos++; /* closing quote */
    buf[n] = '\0';
    tok->kind = T_STRING;
    tok->str = buf;
    tok->len = n;
    return 0;
}

/* A `raw string` (may span lines, no escapes). */
static int lex_raw_string(parser_t *p, token_t *tok)
{
    size_t start = p->pos++;
    const char *end = memchr(p->src + p->pos, '`', p->len - p->pos);
    if (!end) {
        perror_at(p, start, "unterminated raw quoted string");
        return -EINVAL;
    }
    size_t n = (size_t)(end - (p->src + p->pos));
    tok->str = malloc(n + 1);
    if (!tok->str) {
        parser_nomem(p);
        return -ENOMEM;
    }
    memcpy(tok->str, p->src + p->pos, n);
    tok->str[n] = '\0';
    tok->len = n;
    tok->kind = T_STRING;
    p->pos += n + 1;
    return 0;
}

/* Next token inside an action. */
static int lex(parser_t *p, token_t *tok)
{
    memset(tok, 0, sizeof(*tok));
    bool spaced = false;
    while (p->pos < p->len && is_space(p->src[p->pos])) {
        p->pos++;
        spaced = true;
    }
    tok->start = p->pos;
    if (p->pos >= p->len) {
        perror_at(p, p->action_start, "unclosed action: missing }}");
        return -EINVAL;
    }
    if (spaced && at(p, p->pos, "-}}")) {
        tok->kind = T_END;
        tok->trim_right = true;
        p->pos += 3;
        tok->end = p->pos;
        return 0;
    }
    if (at(p, p->pos, "}}")) {
        tok->kind = T_END;
        p->pos += 2;
        tok->end = p->pos;
        return 0;
    }
    char c = p->src[p->pos];
    int rc = 0;
    bool digit_next = p->pos + 1 < p->len && is_digit(p->src[p->pos + 1]);
    if (c == '$' || (c == '.' && !digit_next)) {
        /* $name or .Name, with the .field chain attached ($labels.job) */
        p->pos++;
        while (p->pos < p->len &&
               (is_alpha(p->src[p->pos]) || is_digit(p->src[p->pos]) || p->src[p->pos] == '.'))
            p->pos++;
        tok->kind = c == '$' ? T_VAR : T_FIELD;
    } else if (is_alpha(c)) {
        while (p->pos < p->len && (is_alpha(p->src[p->pos]) || is_digit(p->src[p->pos])))
            p->pos++;
        tok->kind = T_IDENT;
    } else if (is_digit(c) || c == '.' ||
               ((c == '-' || c == '+') && p->pos + 1 < p->len &&
                (is_digit(p->src[p->pos + 1]) || p->src[p->pos + 1] == '.'))) {
        p->pos++;
        while (p->pos < p->len) {
            char d = p->src[p->pos];
            if (is_digit(d) || d == '.' || d == 'x' || d == 'X' || is_alpha(d))
                p->pos++;
            else if ((d == '+' || d == '-') &&
                     (p->src[p->pos - 1] == 'e' || p->src[p->pos - 1] == 'E'))
                p->pos++;
            else
                break;
        }
        tok->kind = T_NUMBER;
    } else if (c == '"') {
        rc = lex_string(p, tok);
    } else if (c == '`') {
        rc = lex_raw_string(p, tok);
    } else if (c == '|') {
        p->pos++;
        tok->kind = T_PIPE;
    } else if (c == '(') {
        p->pos++;
        tok->kind = T_LPAREN;
    } else if (c == ')') {
        p->pos++;
        tok->kind = T_RPAREN;
    } else if (c == ':' || c == '=') {
        perror_at(p, p->pos, "variable declarations and assignments are not supported");
        return -EINVAL;
    } else if (c == '\'') {
        perror_at(p, p->pos, "character constants are not supported");
        return -EINVAL;
    } else if (c == '{' && at(p, p->pos, "{{")) {
        perror_at(p, p->pos, "unexpected {{ inside an action: missing }}");
        return -EINVAL;
    } else {
        perror_at(p, p->pos, "unexpected character '%c' in action", c);
        return -EINVAL;
    }
    tok->end = p->pos;
    return rc;
}

static bool tok_is(const parser_t *p, const token_t *t, tok_kind_t kind, const char *text)
{
    size_t n = strlen(text);
    return t->kind == kind && t->end - t->start == n && memcmp(p->src + t->start, text, n) == 0;
}

static char *tok_dup(const parser_t *p, size_t start, size_t end)
{
    return strndup(p->src + start, end - start);
}

/* Resolves $name.field / .Name.field into an operand. */
static int parse_reference(parser_t *p, const token_t *t, arg_t *a)
{
    const char *s = p->src + t->start;
    size_t n = t->end - t->start;
    const char *dot = memchr(s + 1, '.', n - 1);
    size_t head = dot ? (size_t)(dot - s) : n;
    const char *field = dot ? dot + 1 : NULL;
    size_t field_len = dot ? n - head - 1 : 0;
    bool is_var = s[0] == '$';
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(head > 60 ? 60 : head), s);

    bool labels = is_var ? strcmp(name, "$labels") == 0 : strcmp(name, ".Labels") == 0;
    bool ext = is_var ? strcmp(name, "$externalLabels") == 0 : strcmp(name, ".ExternalLabels") == 0;
    bool ann = is_var ? strcmp(name, "$annotations") == 0 : strcmp(name, ".Annotations") == 0;
    bool value = is_var ? strcmp(name, "$value") == 0 : strcmp(name, ".Value") == 0;
    bool trace = is_var && strcmp(name, "$trace") == 0;
    if (labels || ext || ann) {
        if (!field || field_len == 0) {
            perror_at(p, t->start, "%s needs a label name, e.g. %s.job", name, name);
            return -EINVAL;
        }
        if (memchr(field, '.', field_len)) {
            perror_at(p, t->start, "label values have no fields: %.*s", (int)n, s);
            return -EINVAL;
        }
        if (!is_alpha(field[0])) {
            perror_at(p, t->start, "invalid label name in %.*s", (int)n, s);
            return -EINVAL;
        }
        a->kind = labels ? ARG_LABEL : ext ? ARG_EXT_LABEL : ARG_ANNOTATION;
        a->field = !is_var;
        a->str = strndup(field, field_len);
        if (!a->str) {
            parser_nomem(p);
            return -ENOMEM;
        }
        return 0;
    }
    if (value || trace) {
        if (field) {
            perror_at(p, t->start, "%s has no fields", name);
            return -EINVAL;
        }
        a->kind = value ? ARG_VALUE : ARG_TRACE;
        a->field = !is_var;
        return 0;
    }
    if (!is_var && n == 1) {
        if (p->scoped == 0) {
            perror_at(p, t->start,
                      "{{ . }} outside {{ with }} / {{ range }} is not supported (use "
                      ".Labels.NAME or .Value)");
            return -EINVAL;
        }
        a->kind = ARG_DOT;
        return 0;
    }
    size_t after = t->end;
    while (after < p->len && is_space(p->src[after]))
        after++;
    if (is_var && (at(p, after, ":=") || at(p, after, "="))) {
        perror_at(p, after, "variable declarations and assignments are not supported");
    } else if (is_var) {
        perror_at(p, t->start,
                  "undefined variable \"%s\" (supported: $labels.NAME, $value, "
                  "$trace, $externalLabels.NAME, $annotations.NAME)",
                  name);
    } else {
        perror_at(p, t->start,
                  "unsupported field %s (supported: .Labels.NAME, .Value, "
                  ".ExternalLabels.NAME)",
                  name);
    }
    return -EINVAL;
}

static int parse_number(parser_t *p, const token_t *t, arg_t *a)
{
    char *text = tok_dup(p, t->start, t->end);
    if (!text) {
        parser_nomem(p);
        return -ENOMEM;
    }
    char *end;
    errno = 0;
    bool is_float = strpbrk(text, ".eE") != NULL && strncmp(text, "0x", 2) != 0;
    if (!is_float) {
        long long v = strtoll(text, &end, 0);
        if (*end == '\0' && errno == 0) {
            a->kind = ARG_INT;
            a->inum = v;
            free(text);
            return 0;
        }
    }
    errno = 0;
    double d = strtod(text, &end);
    if (*end != '\0' || errno == ERANGE || end == text) {
        perror_at(p, t->start, "bad number syntax: \"%s\"", text);
        free(text);
        return -EINVAL;
    }
    free(text);
    a->kind = ARG_FLOAT;
    a->num = d;
    return 0;
}

static const char *const unsupported_keywords[] = {
    "define", "template", "block", "break", "continue", "nil",
};

static int parse_pipeline(parser_t *p, token_t *first, tok_kind_t until, int depth,
                          pipeline_t **out, token_t *last);

static int parse_operand_inner(parser_t *p, token_t *t, int depth, arg_t *a);

/* One operand. Consumes t (its string moves into a); on failure a is left
 * empty so the caller has nothing to free. */
static int parse_operand(parser_t *p, token_t *t, int depth, arg_t *a)
{
    memset(a, 0, sizeof(*a));
    int rc = parse_operand_inner(p, t, depth, a);
    if (rc < 0) {
        arg_clear(a);
        memset(a, 0, sizeof(*a));
    }
    return rc;
}

static int parse_operand_inner(parser_t *p, token_t *t, int depth, arg_t *a)
{
    switch (t->kind) {
    case T_VAR:
    case T_FIELD:
        return parse_reference(p, t, a);
    case T_STRING:
        a->kind = ARG_STRING;
        a->str = t->str;
        a->len = t->len;
        t->str = NULL;
        return 0;
    case T_NUMBER:
        return parse_number(p, t, a);
    case T_LPAREN: {
        if (depth >= MAX_DEPTH) {
            perror_at(p, t->start, "nesting deeper than %d", MAX_DEPTH);
            return -EINVAL;
        }
        token_t next, last;
        if (lex(p, &next) < 0)
            return -EINVAL;
        a->kind = ARG_PIPE;
        int rc = parse_pipeline(p, &next, T_RPAREN, depth + 1, &a->pipe, &last);
        free(next.str);
        return rc;
    }
    case T_IDENT:
        if (tok_is(p, t, T_IDENT, "true") || tok_is(p, t, T_IDENT, "false")) {
            a->kind = ARG_BOOL;
            a->b = tok_is(p, t, T_IDENT, "true");
            return 0;
        }
        perror_at(p, t->start, "function \"%.*s\" used as a value: wrap the call in ( )",
                  (int)(t->end - t->start), p->src + t->start);
        return -EINVAL;
    default:
        perror_at(p, t->start, "unexpected \"%.*s\" in operand", (int)(t->end - t->start),
                  p->src + t->start);
        return -EINVAL;
    }
}

static const char *fn_name(fn_t fn)
{
    for (size_t i = 0; i < N_FUNCTIONS; i++)
        if (functions[i].fn == fn)
            return functions[i].name;
    return "?";
}

/* Parses commands separated by | until a token of kind `until` (T_END or
 * T_RPAREN), which is left in *last. first is the already-lexed first token;
 * the caller frees first->str. */
static int parse_pipeline(parser_t *p, token_t *first, tok_kind_t until, int depth,
                          pipeline_t **out, token_t *last)
{
    pipeline_t *pl = calloc(1, sizeof(*pl));
    if (!pl) {
        parser_nomem(p);
        return -ENOMEM;
    }
    *out = pl;
    size_t cap = 0;
    token_t t = *first;
    first->str = NULL; /* ownership moves here */
    int rc = 0;
    for (;;) {
        if (t.kind == T_END || t.kind == T_RPAREN || t.kind == T_PIPE) {
            if (t.kind == T_RPAREN && until != T_RPAREN)
                perror_at(p, t.start, "unexpected \")\"");
            else if (t.kind == T_END && until == T_RPAREN)
                perror_at(p, t.start, "unclosed left paren");
            else
                perror_at(p, t.start, "missing value for command");
            rc = -EINVAL;
            break;
        }
        command_t *cmds = grow(pl->cmds, pl->n, &cap, sizeof(*cmds));
        if (!cmds) {
            parser_nomem(p);
            rc = -ENOMEM;
            break;
        }
        pl->cmds = cmds;
        command_t *cmd = &pl->cmds[pl->n++];
        memset(cmd, 0, sizeof(*cmd));
        where(p, t.start, &cmd->line, &cmd->col);
        size_t cmd_start = t.start;
        size_t arg_cap = 0;
        if (t.kind == T_IDENT && !tok_is(p, &t, T_IDENT, "true") &&
            !tok_is(p, &t, T_IDENT, "false")) {
            size_t n = t.end - t.start;
            for (size_t i = 0; i < N_FUNCTIONS; i++)
                if (strlen(functions[i].name) == n &&
                    memcmp(functions[i].name, p->src + t.start, n) == 0)
                    cmd->fn = functions[i].fn;
            if (cmd->fn == FN_NONE) {
                bool keyword = false;
                for (size_t i = 0; i < sizeof(unsupported_keywords) / sizeof(char *); i++)
                    if (tok_is(p, &t, T_IDENT, unsupported_keywords[i]))
                        keyword = true;
                if (keyword || tok_is(p, &t, T_IDENT, "if") || tok_is(p, &t, T_IDENT, "else") ||
                    tok_is(p, &t, T_IDENT, "end") || tok_is(p, &t, T_IDENT, "with") ||
                    tok_is(p, &t, T_IDENT, "range"))
                    perror_at(p, t.start, "{{ %.*s }} is not supported here", (int)n,
                              p->src + t.start);
                else
                    perror_at(p, t.start, "function \"%.*s\" not defined", (int)n,
                              p->src + t.start);
                rc = -EINVAL;
                break;
            }
        } else {
            if (!(cmd->args = grow(NULL, 0, &arg_cap, sizeof(*cmd->args)))) {
                parser_nomem(p);
                rc = -ENOMEM;
                break;
            }
            rc = parse_operand(p, &t, depth, &cmd->args[0]);
            if (rc < 0)
                break;
            cmd->n_args = 1;
        }
        free(t.str);
        t.str = NULL;
        /* arguments until | or the terminator */
        for (;;) {
            if ((rc = lex(p, &t)) < 0)
                break;
            if (t.kind == T_PIPE || t.kind == T_END || t.kind == T_RPAREN)
                break;
            if (cmd->fn == FN_NONE) {
                perror_at(p, t.start, "can't give argument to non-function %.*s",
                          (int)(p->pos - cmd_start), p->src + cmd_start);
                rc = -EINVAL;
                break;
            }
            arg_t *args = grow(cmd->args, cmd->n_args, &arg_cap, sizeof(*args));
            if (!args) {
                parser_nomem(p);
                rc = -ENOMEM;
                break;
            }
            cmd->args = args;
            rc = parse_operand(p, &t, depth, &cmd->args[cmd->n_args]);
            if (rc < 0)
                break;
            cmd->n_args++;
            free(t.str);
            t.str = NULL;
        }
        if (rc < 0)
            break;
        /* Arity: in a pipeline the previous stage's result is the last argument. */
        size_t piped = pl->n > 1 ? 1 : 0;
        if (cmd->fn == FN_NONE && piped) {
            perror_at(p, cmd_start, "non executable command in pipeline stage %zu", pl->n);
            rc = -EINVAL;
            break;
        }
        if (cmd->fn != FN_NONE) {
            for (size_t i = 0; i < N_FUNCTIONS; i++) {
                if (functions[i].fn != cmd->fn)
                    continue;
                int got = (int)(cmd->n_args + piped);
                if (got < functions[i].min_args ||
                    (functions[i].max_args >= 0 && got > functions[i].max_args)) {
                    if (functions[i].max_args == functions[i].min_args)
                        perror_at(p, cmd_start, "wrong number of args for %s: want %d got %d",
                                  functions[i].name, functions[i].min_args, got);
                    else
                        perror_at(p, cmd_start,
                                  "wrong number of args for %s: want at least %d got %d",
                                  functions[i].name, functions[i].min_args, got);
                    rc = -EINVAL;
                }
            }
            if (rc < 0)
                break;
        }
        if (t.kind == T_PIPE) {
            if ((rc = lex(p, &t)) < 0)
                break;
            continue;
        }
        if (t.kind != until) {
            perror_at(p, t.start, t.kind == T_RPAREN ? "unexpected \")\"" : "unclosed left paren");
            rc = -EINVAL;
            break;
        }
        *last = t;
        return 0;
    }
    free(t.str);
    return rc;
}

typedef enum { STOP_EOF, STOP_ELSE, STOP_END } stop_t;

static int parse_list(parser_t *p, node_list_t *list, int depth, stop_t *stop, size_t *stop_pos);

static node_t *list_push(parser_t *p, node_list_t *list)
{
    node_t *items = grow(list->items, list->n, &list->cap, sizeof(*items));
    if (!items) {
        parser_nomem(p);
        return NULL;
    }
    list->items = items;
    node_t *n = &list->items[list->n++];
    memset(n, 0, sizeof(*n));
    return n;
}

/* Expects the action to end right here; returns its trim flag via p. */
static int expect_end(parser_t *p, const char *what)
{
    token_t t;
    if (lex(p, &t) < 0)
        return -EINVAL;
    if (t.kind != T_END) {
        free(t.str);
        perror_at(p, t.start, "unexpected \"%.*s\" after {{ %s }}", (int)(t.end - t.start),
                  p->src + t.start, what);
        return -EINVAL;
    }
    p->trim_next = t.trim_right;
    return 0;
}

/* {{ if|with|range PIPELINE }} ... [{{ else [if ...] }} ...] {{ end }}; the
 * keyword is consumed. if_pos locates it for "missing end" errors. Only if
 * takes an else if (as Go's text/template of Prometheus 2.42). */
static int parse_control(parser_t *p, node_list_t *list, int depth, size_t if_pos,
                         node_kind_t kind)
{
    static const char *const names[] = {[NODE_IF] = "if", [NODE_WITH] = "with",
                                        [NODE_RANGE] = "range"};
    const char *kw = names[kind];
    if (depth >= MAX_DEPTH) {
        perror_at(p, if_pos, "nesting deeper than %d", MAX_DEPTH);
        return -EINVAL;
    }
    node_t *n = list_push(p, list);
    if (!n)
        return -ENOMEM;
    n->kind = kind;
    token_t t, last;
    if (lex(p, &t) < 0)
        return -EINVAL;
    int rc = parse_pipeline(p, &t, T_END, depth, &n->pipe, &last);
    free(t.str);
    if (rc < 0)
        return rc;
    p->trim_next = last.trim_right;
    stop_t stop;
    size_t stop_pos;
    bool scoped = kind != NODE_IF;
    p->scoped += scoped;
    rc = parse_list(p, &n->then_nodes, depth + 1, &stop, &stop_pos);
    p->scoped -= scoped;
    if (rc < 0)
        return rc;
    if (stop == STOP_EOF) {
        perror_at(p, if_pos, "unexpected EOF: {{ %s }} has no {{ end }}", kw);
        return -EINVAL;
    }
    if (stop == STOP_END)
        return 0;
    /* else or else if */
    token_t e;
    if (lex(p, &e) < 0)
        return -EINVAL;
    if (tok_is(p, &e, T_IDENT, "if")) {
        if (kind != NODE_IF) {
            perror_at(p, e.start, "{{ else if }} is only allowed in {{ if }}");
            return -EINVAL;
        }
        /* else if: a nested if that shares our end */
        return parse_control(p, &n->else_nodes, depth + 1, e.start, NODE_IF);
    }
    if (e.kind != T_END) {
        free(e.str);
        perror_at(p, e.start, "expected }} or \"if\" after {{ else");
        return -EINVAL;
    }
    p->trim_next = e.trim_right;
    if ((rc = parse_list(p, &n->else_nodes, depth + 1, &stop, &stop_pos)) < 0)
        return rc;
    if (stop == STOP_EOF) {
        perror_at(p, if_pos, "unexpected EOF: {{ %s }} has no {{ end }}", kw);
        return -EINVAL;
    }
    if (stop == STOP_ELSE) {
        perror_at(p, stop_pos, "second {{ else }} in one {{ %s }}", kw);
        return -EINVAL;
    }
    return 0;
}

static int add_text(parser_t *p, node_list_t *list, size_t start, size_t end, bool trim_left,
                    bool trim_right)
{
    if (trim_left)
        while (start < end && is_space(p->src[start]))
            start++;
    if (trim_right)
        while (end > start && is_space(p->src[end - 1]))
            end--;
    if (start == end)
        return 0;
    node_t *n = list_push(p, list);
    if (!n)
        return -ENOMEM;
    n->kind = NODE_TEXT;
    n->text = tok_dup(p, start, end);
    n->len = end - start;
    if (!n->text) {
        parser_nomem(p);
        return -ENOMEM;
    }
    return 0;
}

/* Skips a template comment ({{ followed by slash-star ... star-slash }});
 * p->pos is at the slash. */
static int skip_comment(parser_t *p, size_t open_pos)
{
    const char *s = p->src + p->pos + 2;
    const char *end = NULL;
    for (const char *q = s; q + 1 < p->src + p->len; q++)
        if (q[0] == '*' && q[1] == '/') {
            end = q;
            break;
        }
    if (!end) {
        perror_at(p, open_pos, "unclosed comment");
        return -EINVAL;
    }
    p->pos = (size_t)(end - p->src) + 2;
    if (at(p, p->pos, "}}")) {
        p->pos += 2;
        p->trim_next = false;
    } else if (p->pos < p->len && is_space(p->src[p->pos]) && at(p, p->pos + 1, "-}}")) {
        p->pos += 4;
        p->trim_next = true;
    } else {
        perror_at(p, p->pos, "comment ends before closing delimiter");
        return -EINVAL;
    }
    return 0;
}

static int parse_list(parser_t *p, node_list_t *list, int depth, stop_t *stop, size_t *stop_pos)
{
    for (;;) {
        const char *open = NULL;
        if (p->pos < p->len)
            open = strstr(p->src + p->pos, "{{");
        size_t text_end = open ? (size_t)(open - p->src) : p->len;
        /* "{{- " (dash and white space) trims the text before the action */
        bool trim_before = open && text_end + 3 < p->len && p->src[text_end + 2] == '-' &&
                           is_space(p->src[text_end + 3]);
        bool trim_left = p->trim_next;
        p->trim_next = false;
        if (add_text(p, list, p->pos, text_end, trim_left, trim_before) < 0)
            return -EINVAL;
        if (!open) {
            p->pos = p->len;
            *stop = STOP_EOF;
            return 0;
        }
        size_t open_pos = text_end;
        p->action_start = open_pos;
        p->pos = text_end + (trim_before ? 4 : 2);
        if (at(p, p->pos, "/*")) {
            if (skip_comment(p, open_pos) < 0)
                return -EINVAL;
            continue;
        }
        token_t t;
        if (lex(p, &t) < 0)
            return -EINVAL;
        if (t.kind == T_END) {
            perror_at(p, open_pos, "missing value for command");
            return -EINVAL;
        }
        if (tok_is(p, &t, T_IDENT, "end") || tok_is(p, &t, T_IDENT, "else")) {
            bool is_end = tok_is(p, &t, T_IDENT, "end");
            if (depth == 0) {
                perror_at(p, t.start, "unexpected {{ %s }}", is_end ? "end" : "else");
                return -EINVAL;
            }
            *stop = is_end ? STOP_END : STOP_ELSE;
            *stop_pos = t.start;
            /* else leaves the rest of its action to parse_if */
            return is_end ? expect_end(p, "end") : 0;
        }
        if (tok_is(p, &t, T_IDENT, "if") || tok_is(p, &t, T_IDENT, "with") ||
            tok_is(p, &t, T_IDENT, "range")) {
            node_kind_t kind = tok_is(p, &t, T_IDENT, "if")     ? NODE_IF
                               : tok_is(p, &t, T_IDENT, "with") ? NODE_WITH
                                                                 : NODE_RANGE;
            if (parse_control(p, list, depth, t.start, kind) < 0)
                return -EINVAL;
            continue;
        }
        node_t *n = list_push(p, list);
        if (!n) {
            free(t.str);
            return -ENOMEM;
        }
        n->kind = NODE_PRINT;
        token_t last;
        int rc = parse_pipeline(p, &t, T_END, depth, &n->pipe, &last);
        free(t.str);
        if (rc < 0)
            return rc;
        p->trim_next = last.trim_right;
    }
}

static int compile(const char *src, const char *file, int line, int col, int indent,
                   kcw_template_t **out, kcw_errors_t *errs)
{
    *out = NULL;
    size_t len = strlen(src);
    if (len > MAX_SOURCE) {
        kcw_errors_add(errs, file, line, col, "template: longer than %d bytes", MAX_SOURCE);
        return -EINVAL;
    }
    kcw_template_t *t = calloc(1, sizeof(*t));
    if (!t) {
        kcw_errors_add(errs, file, line, col, "template: out of memory");
        return -ENOMEM;
    }
    if (file && !(t->file = strdup(file))) {
        free(t);
        kcw_errors_add(errs, file, line, col, "template: out of memory");
        return -ENOMEM;
    }
    parser_t p = {
        .src = src,
        .len = len,
        .file = file,
        .line0 = line > 0 ? line : 1,
        .col0 = col > 0 ? col : 1,
        .indent = indent > 0 ? indent : 0,
        .errs = errs,
    };
    stop_t stop;
    size_t stop_pos;
    int rc = parse_list(&p, &t->root, 0, &stop, &stop_pos);
    if (rc < 0 || p.failed) {
        kcw_template_free(t);
        return p.nomem ? -ENOMEM : -EINVAL;
    }
    node_list_fit(&t->root);
    *out = t;
    return 0;
}

int kcw_template_compile(const char *src, const char *file, int line, int col, kcw_template_t **out,
                         kcw_errors_t *errs)
{
    return compile(src, file, line, col, 0, out, errs);
}

int kcw_template_compile_block(const char *src, const char *file, int line, int col, int indent,
                               kcw_template_t **out, kcw_errors_t *errs)
{
    return compile(src, file, line, col, indent, out, errs);
}

/* --- values and Go-compatible formatting ------------------------------ */

/* V_NIL: Go's nil (no value); V_SAMPLE: a *sample of a query result;
 * V_SAMPLES: a queryResult. Samples live in the render's arena. */
typedef enum { V_STR, V_FLOAT, V_INT, V_BOOL, V_NIL, V_SAMPLE, V_SAMPLES } vkind_t;

typedef struct value {
    vkind_t kind;
    const char *s; /* V_STR: borrowed or == owned */
    size_t len;
    char *owned;
    double f;
    long long i;
    bool b;
    const kcw_template_sample_t *sample;
    const kcw_template_sample_t **samples;
    size_t n_samples;
} value_t;

static void value_clear(value_t *v)
{
    free(v->owned);
    memset(v, 0, sizeof(*v));
}

static const char *type_name(const value_t *v)
{
    switch (v->kind) {
    case V_STR:
        return "string";
    case V_FLOAT:
        return "float64";
    case V_INT:
        return "int";
    case V_BOOL:
        return "bool";
    case V_NIL:
        return "<nil>";
    case V_SAMPLE:
        return "*template.sample";
    case V_SAMPLES:
        return "template.queryResult";
    }
    return "?";
}

/* A growable string with a hard bound; past it text is dropped and
 * `truncated` is set. */
typedef struct strbuf {
    char *buf;
    size_t len, cap;
    bool truncated;
    bool nomem;
} strbuf_t;

static void sb_add(strbuf_t *sb, const char *s, size_t n)
{
    if (sb->nomem)
        return;
    if (sb->len + n > KCW_TEMPLATE_MAX_OUTPUT) {
        n = KCW_TEMPLATE_MAX_OUTPUT - sb->len;
        sb->truncated = true;
    }
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 128;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *b = realloc(sb->buf, cap);
        if (!b) {
            sb->nomem = true;
            return;
        }
        sb->buf = b;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_puts(strbuf_t *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

static void sb_pad(strbuf_t *sb, char c, int n)
{
    for (int i = 0; i < n; i++)
        sb_add(sb, &c, 1);
}

/* Go's "NaN", "+Inf", "-Inf" for non-finite values; NULL for finite ones. */
static const char *nonfinite(double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    return NULL;
}

/* Go's %.4g (C's, except for NaN and infinities). */
static void fmt_g4(char *buf, size_t n, double v, const char *suffix)
{
    const char *nf = nonfinite(v);
    if (nf)
        snprintf(buf, n, "%s%s", nf, suffix);
    else
        snprintf(buf, n, "%.4g%s", v, suffix);
}

/* Go's %v of a float64 (strconv.FormatFloat(v, 'g', -1, 64)): the shortest
 * digits that read back as v; exponent form when the decimal exponent is
 * < -4 or >= 6 (so 1e+06, 123456, 0.0001, 1e-05). */
static void fmt_shortest(char *buf, size_t n, double v, bool upper)
{
    const char *nf = nonfinite(v);
    if (nf) {
        snprintf(buf, n, "%s", nf);
        return;
    }
    if (v == 0) {
        snprintf(buf, n, "%s", signbit(v) ? "-0" : "0");
        return;
    }
    char tmp[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp is [-]d[.ddd]e[+-]XX */
    char digits[32];
    size_t nd = 0;
    const char *q = tmp;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (is_digit(*q) && nd < sizeof(digits) - 1)
            digits[nd++] = *q;
    int exp = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    size_t len = 0;
    char out[64];
    if (neg)
        out[len++] = '-';
    if (exp < -4 || exp >= 6) {
        out[len++] = digits[0];
        if (nd > 1) {
            out[len++] = '.';
            memcpy(out + len, digits + 1, nd - 1);
            len += nd - 1;
        }
        snprintf(out + len, sizeof(out) - len, "%c%c%02d", upper ? 'E' : 'e', exp < 0 ? '-' : '+',
                 exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -exp - 1; i++)
            out[len++] = '0';
        memcpy(out + len, digits, nd);
        len += nd;
        out[len] = '\0';
    } else {
        size_t int_digits = (size_t)exp + 1;
        for (size_t i = 0; i < int_digits; i++)
            out[len++] = i < nd ? digits[i] : '0';
        if (nd > int_digits) {
            out[len++] = '.';
            memcpy(out + len, digits + int_digits, nd - int_digits);
            len += nd - int_digits;
        }
        out[len] = '\0';
    }
    snprintf(buf, n, "%s", out);
}

/* A sample as Go's %v prints Prometheus' sample struct (through the
 * pointer, as text/template does): {map[k:v ...] VALUE}, keys sorted. */
static void sample_print(strbuf_t *sb, const kcw_template_sample_t *s)
{
    char buf[64];
    sb_puts(sb, "{map[");
    for (size_t i = 0; i < s->labels.n; i++) {
        if (i)
            sb_puts(sb, " ");
        sb_puts(sb, s->labels.items[i].name);
        sb_puts(sb, ":");
        sb_puts(sb, s->labels.items[i].value);
    }
    fmt_shortest(buf, sizeof(buf), s->value, false);
    sb_puts(sb, "] ");
    sb_puts(sb, buf);
    sb_puts(sb, "}");
}

/* Default text of a value, as {{ }} and %v print it. */
static void value_print(strbuf_t *sb, const value_t *v)
{
    char buf[64];
    switch (v->kind) {
    case V_NIL:
        sb_puts(sb, "<no value>");
        return;
    case V_SAMPLE:
        sample_print(sb, v->sample);
        return;
    case V_SAMPLES:
        sb_puts(sb, "[");
        for (size_t i = 0; i < v->n_samples; i++) {
            if (i)
                sb_puts(sb, " ");
            sample_print(sb, v->samples[i]);
        }
        sb_puts(sb, "]");
        return;
    case V_STR:
        sb_add(sb, v->s, v->len);
        return;
    case V_FLOAT:
        fmt_shortest(buf, sizeof(buf), v->f, false);
        break;
    case V_INT:
        snprintf(buf, sizeof(buf), "%lld", v->i);
        break;
    case V_BOOL:
        snprintf(buf, sizeof(buf), "%s", v->b ? "true" : "false");
        break;
    }
    sb_puts(sb, buf);
}

typedef struct verb_spec {
    bool minus, plus, sharp, zero, space;
    int width; /* -1 none */
    int prec;  /* -1 none */
    char verb;
} verb_spec_t;

/* Pads s to the spec's width (left or right) with spaces or zeros. */
static void put_padded(strbuf_t *sb, const verb_spec_t *vs, const char *s, size_t n, bool zero_ok)
{
    int pad = vs->width > (int)n ? vs->width - (int)n : 0;
    if (pad && vs->minus) {
        sb_add(sb, s, n);
        sb_pad(sb, ' ', pad);
        return;
    }
    if (pad && vs->zero && zero_ok) {
        /* zeros go after the sign */
        size_t sign = (n > 0 && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) ? 1 : 0;
        sb_add(sb, s, sign);
        sb_pad(sb, '0', pad);
        sb_add(sb, s + sign, n - sign);
        return;
    }
    sb_pad(sb, ' ', pad);
    sb_add(sb, s, n);
}

static void bad_verb(strbuf_t *sb, char verb, const value_t *v)
{
    char head[8];
    snprintf(head, sizeof(head), "%%!%c(", verb);
    sb_puts(sb, head);
    sb_puts(sb, type_name(v));
    sb_puts(sb, "=");
    value_print(sb, v);
    sb_puts(sb, ")");
}

/* C printf format for the numeric verbs, built from the spec. */
static void c_format(char *fmt, size_t n, const verb_spec_t *vs, const char *conv)
{
    snprintf(fmt, n, "%%%s%s%s%s%s%s%s", vs->minus ? "-" : "", vs->plus ? "+" : "",
             vs->sharp ? "#" : "", vs->zero && !vs->minus ? "0" : "", vs->space ? " " : "",
             vs->width >= 0 ? "*" : "", vs->prec >= 0 ? ".*" : "");
    strncat(fmt, conv, n - strlen(fmt) - 1);
}

static void fmt_c_number(strbuf_t *sb, const verb_spec_t *vs, const char *conv, const value_t *v)
{
    char fmt[32];
    char buf[MAX_FMT_WIDTH * 2 + 400];
    c_format(fmt, sizeof(fmt), vs, conv);
    int w = vs->width, p = vs->prec;
    /* The same call shape for every combination keeps the format checked. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    if (v->kind == V_INT) {
        if (w >= 0 && p >= 0)
            snprintf(buf, sizeof(buf), fmt, w, p, v->i);
        else if (w >= 0)
            snprintf(buf, sizeof(buf), fmt, w, v->i);
        else if (p >= 0)
            snprintf(buf, sizeof(buf), fmt, p, v->i);
        else
            snprintf(buf, sizeof(buf), fmt, v->i);
    } else {
        if (w >= 0 && p >= 0)
            snprintf(buf, sizeof(buf), fmt, w, p, v->f);
        else if (w >= 0)
            snprintf(buf, sizeof(buf), fmt, w, v->f);
        else if (p >= 0)
            snprintf(buf, sizeof(buf), fmt, p, v->f);
        else
            snprintf(buf, sizeof(buf), fmt, v->f);
    }
#pragma GCC diagnostic pop
    sb_puts(sb, buf);
}

static void fmt_float_verb(strbuf_t *sb, const verb_spec_t *vs, const value_t *v)
{
    const char *nf = nonfinite(v->f);
    if (nf) {
        /* Go: +Inf keeps its sign, NaN gets one only with + or space; never
         * zero padded. */
        char s[8];
        if (isnan(v->f))
            snprintf(s, sizeof(s), "%s%s", vs->plus ? "+" : vs->space ? " " : "", nf);
        else if (v->f > 0 && vs->space && !vs->plus)
            snprintf(s, sizeof(s), " Inf");
        else
            snprintf(s, sizeof(s), "%s", nf);
        put_padded(sb, vs, s, strlen(s), false);
        return;
    }
    char verb = vs->verb;
    if ((verb == 'g' || verb == 'G' || verb == 'v') && vs->prec < 0) {
        char buf[64], signed_buf[70];
        fmt_shortest(buf, sizeof(buf), v->f, verb == 'G');
        snprintf(signed_buf, sizeof(signed_buf), "%s%s",
                 buf[0] == '-' ? ""
                 : vs->plus    ? "+"
                 : vs->space   ? " "
                               : "",
                 buf);
        put_padded(sb, vs, signed_buf, strlen(signed_buf), true);
        return;
    }
    char conv[3] = {verb == 'v' ? 'g' : verb, '\0', '\0'};
    fmt_c_number(sb, vs, conv, v);
}

/* Go's strconv.Quote for ASCII control characters; other bytes kept. */
static void fmt_quoted(strbuf_t *sb, const verb_spec_t *vs, const value_t *v)
{
    strbuf_t q = {0};
    sb_add(&q, "\"", 1);
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->s[i];
        char e[8];
        switch (c) {
        case '"':
            sb_puts(&q, "\\\"");
            break;
        case '\\':
            sb_puts(&q, "\\\\");
            break;
        case '\n':
            sb_puts(&q, "\\n");
            break;
        case '\t':
            sb_puts(&q, "\\t");
            break;
        case '\r':
            sb_puts(&q, "\\r");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(e, sizeof(e), "\\x%02x", c);
                sb_puts(&q, e);
            } else {
                sb_add(&q, (const char *)&c, 1);
            }
        }
    }
    sb_add(&q, "\"", 1);
    if (q.nomem)
        sb->nomem = true;
    else
        put_padded(sb, vs, q.buf, q.len, false);
    free(q.buf);
}

static void fmt_one(strbuf_t *sb, const verb_spec_t *vs, const value_t *v)
{
    char verb = vs->verb;
    switch (verb) {
    case 'v':
        if (v->kind == V_FLOAT) {
            fmt_float_verb(sb, vs, v);
        } else if (v->kind == V_INT) {
            fmt_c_number(sb, vs, "lld", v);
        } else {
            strbuf_t tmp = {0};
            value_print(&tmp, v);
            size_t n = tmp.len;
            if (v->kind == V_STR && vs->prec >= 0 && (size_t)vs->prec < n)
                n = (size_t)vs->prec;
            put_padded(sb, vs, tmp.buf ? tmp.buf : "", n, false);
            free(tmp.buf);
        }
        return;
    case 's':
        if (v->kind != V_STR)
            break;
        put_padded(sb, vs, v->s,
                   vs->prec >= 0 && (size_t)vs->prec < v->len ? (size_t)vs->prec : v->len, false);
        return;
    case 'q':
        if (v->kind != V_STR)
            break;
        fmt_quoted(sb, vs, v);
        return;
    case 'd':
    case 'o':
        if (v->kind != V_INT)
            break;
        fmt_c_number(sb, vs, verb == 'd' ? "lld" : "llo", v);
        return;
    case 'x':
    case 'X':
        if (v->kind == V_INT) {
            fmt_c_number(sb, vs, verb == 'x' ? "llx" : "llX", v);
            return;
        }
        if (v->kind == V_STR) {
            strbuf_t hex = {0};
            for (size_t i = 0; i < v->len; i++) {
                char h[4];
                snprintf(h, sizeof(h), verb == 'x' ? "%02x" : "%02X", (unsigned char)v->s[i]);
                sb_add(&hex, h, 2);
            }
            put_padded(sb, vs, hex.buf ? hex.buf : "", hex.len, false);
            free(hex.buf);
            return;
        }
        break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
        if (v->kind != V_FLOAT)
            break;
        fmt_float_verb(sb, vs, v);
        return;
    case 't':
        if (v->kind != V_BOOL)
            break;
        put_padded(sb, vs, v->b ? "true" : "false", v->b ? 4 : 5, false);
        return;
    case 'T':
        put_padded(sb, vs, type_name(v), strlen(type_name(v)), false);
        return;
    default:
        break;
    }
    bad_verb(sb, verb, v);
}

/* fmt.Sprintf for the verbs templates use, with Go's in-band error text
 * (%!d(float64=1.5), %!s(MISSING), %!(EXTRA ...)). */
static void go_sprintf(strbuf_t *sb, const char *fmt, size_t fmt_len, const value_t *args,
                       size_t n_args)
{
    size_t used = 0;
    size_t i = 0;
    while (i < fmt_len) {
        const char *pct = memchr(fmt + i, '%', fmt_len - i);
        size_t stop = pct ? (size_t)(pct - fmt) : fmt_len;
        sb_add(sb, fmt + i, stop - i);
        if (!pct)
            break;
        i = stop + 1;
        verb_spec_t vs = {.width = -1, .prec = -1};
        for (; i < fmt_len; i++) {
            char c = fmt[i];
            if (c == '-')
                vs.minus = true;
            else if (c == '+')
                vs.plus = true;
            else if (c == '#')
                vs.sharp = true;
            else if (c == '0')
                vs.zero = true;
            else if (c == ' ')
                vs.space = true;
            else
                break;
        }
        bool bad_width = false, bad_prec = false;
        if (i < fmt_len && is_digit(fmt[i])) {
            vs.width = 0;
            while (i < fmt_len && is_digit(fmt[i])) {
                if (vs.width <= MAX_FMT_WIDTH)
                    vs.width = vs.width * 10 + (fmt[i] - '0');
                i++;
            }
            bad_width = vs.width > MAX_FMT_WIDTH;
        } else if (i < fmt_len && fmt[i] == '*') {
            i++;
            bad_width = true;
        }
        if (i < fmt_len && fmt[i] == '.') {
            i++;
            vs.prec = 0;
            if (i < fmt_len && fmt[i] == '*') {
                i++;
                bad_prec = true;
            }
            while (i < fmt_len && is_digit(fmt[i])) {
                if (vs.prec <= MAX_FMT_WIDTH)
                    vs.prec = vs.prec * 10 + (fmt[i] - '0');
                i++;
            }
            bad_prec = bad_prec || vs.prec > MAX_FMT_WIDTH;
        }
        if (i >= fmt_len) {
            sb_puts(sb, "%!(NOVERB)");
            break;
        }
        vs.verb = fmt[i++];
        if (bad_width) {
            sb_puts(sb, "%!(BADWIDTH)");
            vs.width = -1;
        }
        if (bad_prec) {
            sb_puts(sb, "%!(BADPREC)");
            vs.prec = -1;
        }
        if (vs.verb == '%') {
            sb_add(sb, "%", 1);
            continue;
        }
        if (used >= n_args) {
            char m[24];
            snprintf(m, sizeof(m), "%%!%c(MISSING)", vs.verb);
            sb_puts(sb, m);
            continue;
        }
        fmt_one(sb, &vs, &args[used++]);
    }
    if (used < n_args) {
        sb_puts(sb, "%!(EXTRA ");
        for (size_t k = used; k < n_args; k++) {
            if (k > used)
                sb_puts(sb, ", ");
            sb_puts(sb, type_name(&args[k]));
            sb_puts(sb, "=");
            value_print(sb, &args[k]);
        }
        sb_puts(sb, ")");
    }
}

/* --- rendering -------------------------------------------------------- */

/* Memory a render hands out to values (query results, sorted copies),
 * released when it ends. */
typedef struct arena_block {
    kcw_template_sample_t *samples; /* deep: labels owned */
    size_t n;
    const kcw_template_sample_t **ptrs;
} arena_block_t;

typedef struct render {
    const kcw_template_t *t;
    const kcw_template_ctx_t *ctx;
    strbuf_t out;
    bool failed;
    char err[MAX_ERROR];
    const value_t *dot; /* inside with / range; NULL at the top */
    const command_t *cur; /* the command being evaluated, for error positions */
    size_t steps, queries;
    arena_block_t *arena;
    size_t n_arena, cap_arena;
} render_t;

static void arena_free(render_t *r)
{
    for (size_t i = 0; i < r->n_arena; i++) {
        for (size_t j = 0; j < r->arena[i].n; j++)
            kcw_labels_clear(&r->arena[i].samples[j].labels);
        free(r->arena[i].samples);
        free(r->arena[i].ptrs);
    }
    free(r->arena);
}

/* Keeps block in the arena; on failure frees it. 0 or -ENOMEM. */
static int arena_keep(render_t *r, arena_block_t block)
{
    arena_block_t *a = grow(r->arena, r->n_arena, &r->cap_arena, sizeof(*a));
    if (!a) {
        for (size_t j = 0; j < block.n; j++)
            kcw_labels_clear(&block.samples[j].labels);
        free(block.samples);
        free(block.ptrs);
        r->out.nomem = true;
        return -ENOMEM;
    }
    r->arena = a;
    r->arena[r->n_arena++] = block;
    return 0;
}

static void rerror(render_t *r, const command_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rerror(render_t *r, const command_t *cmd, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    char msg[MAX_ERROR - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof(r->err), "%s:%d:%d: %s", r->t->file ? r->t->file : "<template>",
             cmd->line, cmd->col, msg);
}

static void set_string(value_t *v, const char *s)
{
    v->kind = V_STR;
    v->s = s ? s : "";
    v->len = strlen(v->s);
}

/* Takes a strbuf's text as an owned string value. */
static int set_owned(render_t *r, value_t *v, strbuf_t *sb)
{
    if (sb->nomem) {
        free(sb->buf);
        r->out.nomem = true;
        return -ENOMEM;
    }
    if (sb->truncated)
        r->out.truncated = true;
    v->kind = V_STR;
    v->owned = sb->buf ? sb->buf : strdup("");
    if (!v->owned) {
        r->out.nomem = true;
        return -ENOMEM;
    }
    v->s = v->owned;
    v->len = sb->len;
    return 0;
}

static int eval_pipeline(render_t *r, const pipeline_t *pl, value_t *out);

/* .Labels / .Value inside with / range: the dot's; false when the dot is
 * the alert (the top level) and the alert's applies. */
static bool dot_field(render_t *r, const arg_t *a, value_t *v, int *rc)
{
    *rc = 0;
    if (!a->field || !r->dot)
        return false;
    if (r->dot->kind != V_SAMPLE) {
        rerror(r, r->cur, "can't evaluate field %s in type %s",
               a->kind == ARG_VALUE ? "Value" : "Labels", type_name(r->dot));
        *rc = -EINVAL;
        return true;
    }
    if (a->kind == ARG_VALUE) {
        v->kind = V_FLOAT;
        v->f = r->dot->sample->value;
    } else {
        set_string(v, kcw_labels_get(&r->dot->sample->labels, a->str));
    }
    return true;
}

static int eval_arg(render_t *r, const arg_t *a, value_t *v)
{
    memset(v, 0, sizeof(*v));
    const kcw_template_ctx_t *ctx = r->ctx;
    int rc;
    if ((a->kind == ARG_LABEL || a->kind == ARG_VALUE) && dot_field(r, a, v, &rc))
        return rc;
    switch (a->kind) {
    case ARG_DOT:
        if (!r->dot) {
            v->kind = V_NIL; /* the alert itself: kcwatch has no value for it */
            return 0;
        }
        *v = *r->dot;
        v->owned = NULL;
        if (v->kind == V_STR && r->dot->owned) {
            v->owned = strndup(r->dot->s, r->dot->len);
            if (!v->owned) {
                r->out.nomem = true;
                return -ENOMEM;
            }
            v->s = v->owned;
        }
        return 0;
    case ARG_LABEL:
        /* missingkey=zero: an absent label prints as "" */
        set_string(v, ctx->labels ? kcw_labels_get(ctx->labels, a->str) : NULL);
        return 0;
    case ARG_EXT_LABEL:
        set_string(v, ctx->external_labels ? kcw_labels_get(ctx->external_labels, a->str) : NULL);
        return 0;
    case ARG_ANNOTATION:
        set_string(v, ctx->annotations ? kcw_labels_get(ctx->annotations, a->str) : NULL);
        return 0;
    case ARG_VALUE:
        v->kind = V_FLOAT;
        v->f = ctx->value;
        return 0;
    case ARG_TRACE:
        set_string(v, ctx->trace);
        return 0;
    case ARG_STRING:
        v->kind = V_STR;
        v->s = a->str;
        v->len = a->len;
        return 0;
    case ARG_INT:
        v->kind = V_INT;
        v->i = a->inum;
        return 0;
    case ARG_FLOAT:
        v->kind = V_FLOAT;
        v->f = a->num;
        return 0;
    case ARG_BOOL:
        v->kind = V_BOOL;
        v->b = a->b;
        return 0;
    case ARG_PIPE:
        return eval_pipeline(r, a->pipe, v);
    }
    return -EINVAL;
}

/* Prometheus' convertToFloat: numbers, and strings that parse as one. */
static int to_float(render_t *r, const command_t *cmd, const value_t *v, double *out)
{
    switch (v->kind) {
    case V_FLOAT:
        *out = v->f;
        return 0;
    case V_INT:
        *out = (double)v->i;
        return 0;
    case V_STR: {
        char *end;
        errno = 0;
        if (v->len > 0 && !is_space(v->s[0])) {
            double d = strtod(v->s, &end);
            if (end == v->s + v->len && end != v->s) {
                *out = d;
                return 0;
            }
        }
        rerror(r, cmd, "error calling %s: strconv.ParseFloat: parsing \"%.*s\": invalid syntax",
               fn_name(cmd->fn), (int)(v->len > 100 ? 100 : v->len), v->s);
        return -EINVAL;
    }
    case V_BOOL:
    case V_NIL:
    case V_SAMPLE:
    case V_SAMPLES:
        break;
    }
    rerror(r, cmd, "error calling %s: can't convert %s to float", fn_name(cmd->fn), type_name(v));
    return -EINVAL;
}

static void humanize(char *buf, size_t n, double v)
{
    static const char *const big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    if (v == 0 || !isfinite(v)) {
        fmt_g4(buf, n, v, "");
        return;
    }
    const char *prefix = "";
    if (fabs(v) >= 1) {
        for (size_t i = 0; i < 8 && fabs(v) >= 1000; i++) {
            prefix = big[i];
            v /= 1000;
        }
    } else {
        for (size_t i = 0; i < 8 && fabs(v) < 1; i++) {
            prefix = small[i];
            v *= 1000;
        }
    }
    fmt_g4(buf, n, v, prefix);
}

static void humanize1024(char *buf, size_t n, double v)
{
    /* Prometheus spells the first step "ki" (lower case), kept for identical output. */
    static const char *const units[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
    if (fabs(v) <= 1 || !isfinite(v)) {
        fmt_g4(buf, n, v, "");
        return;
    }
    const char *prefix = "";
    for (size_t i = 0; i < 8 && fabs(v) >= 1024; i++) {
        prefix = units[i];
        v /= 1024;
    }
    fmt_g4(buf, n, v, prefix);
}

static void humanize_duration(char *buf, size_t n, double v)
{
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    if (!isfinite(v)) {
        fmt_g4(buf, n, v, "");
        return;
    }
    if (v == 0) {
        fmt_g4(buf, n, v, "s");
        return;
    }
    if (fabs(v) >= 1) {
        const char *sign = v < 0 ? "-" : "";
        v = fabs(v);
        /* Go truncates toward zero; clamp so the conversion stays defined. */
        int64_t d = v >= 9.2e18 ? INT64_MAX : (int64_t)v;
        int64_t seconds = d % 60, minutes = (d / 60) % 60, hours = (d / 3600) % 24,
                days = d / 86400;
        if (days != 0)
            snprintf(buf, n, "%s%" PRId64 "d %" PRId64 "h %" PRId64 "m %" PRId64 "s", sign, days,
                     hours, minutes, seconds);
        else if (hours != 0)
            snprintf(buf, n, "%s%" PRId64 "h %" PRId64 "m %" PRId64 "s", sign, hours, minutes,
                     seconds);
        else if (minutes != 0)
            snprintf(buf, n, "%s%" PRId64 "m %" PRId64 "s", sign, minutes, seconds);
        else
            snprintf(buf, n, "%s%.4gs", sign, v);
        return;
    }
    const char *prefix = "";
    for (size_t i = 0; i < 8 && fabs(v) < 1; i++) {
        prefix = small[i];
        v *= 1000;
    }
    char suffix[8];
    snprintf(suffix, sizeof(suffix), "%ss", prefix);
    fmt_g4(buf, n, v, suffix);
}

/* Go's strings.Title word boundaries: ASCII letters, digits and '_' continue
 * a word, other ASCII characters separate; non-ASCII bytes continue it. */
static bool title_separator(unsigned char c)
{
    if (c >= 0x80)
        return false;
    return !(is_alpha((char)c) || is_digit((char)c));
}

static int call_string_fn(render_t *r, const command_t *cmd, const value_t *arg, value_t *out)
{
    if (arg->kind != V_STR) {
        rerror(r, cmd, "wrong type for value; expected string; got %s", type_name(arg));
        return -EINVAL;
    }
    char *s = malloc(arg->len + 1);
    if (!s) {
        r->out.nomem = true;
        return -ENOMEM;
    }
    unsigned char prev = ' ';
    for (size_t i = 0; i < arg->len; i++) {
        unsigned char c = (unsigned char)arg->s[i];
        if (cmd->fn == FN_TO_UPPER || (cmd->fn == FN_TITLE && title_separator(prev)))
            s[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : (char)c;
        else if (cmd->fn == FN_TO_LOWER)
            s[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
        else
            s[i] = (char)c;
        prev = c;
    }
    s[arg->len] = '\0';
    out->kind = V_STR;
    out->owned = s;
    out->s = s;
    out->len = arg->len;
    return 0;
}

/* text/template's eq: same basic kind required. */
static int compare(render_t *r, const command_t *cmd, const value_t *a, const value_t *b,
                   bool *equal)
{
    if (a->kind != b->kind) {
        rerror(r, cmd, "error calling %s: incompatible types for comparison", fn_name(cmd->fn));
        return -EINVAL;
    }
    switch (a->kind) {
    case V_STR:
        *equal = a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
        break;
    case V_FLOAT:
        *equal = a->f == b->f;
        break;
    case V_INT:
        *equal = a->i == b->i;
        break;
    case V_BOOL:
        *equal = a->b == b->b;
        break;
    case V_NIL:
    case V_SAMPLE:
    case V_SAMPLES:
        rerror(r, cmd, "error calling %s: invalid type for comparison", fn_name(cmd->fn));
        return -EINVAL;
    }
    return 0;
}

/* Text/template's argument check for a string parameter. */
static bool want_string(render_t *r, const command_t *cmd, const value_t *v)
{
    if (v->kind == V_STR)
        return true;
    rerror(r, cmd, "wrong type for value; expected string; got %s", type_name(v));
    return false;
}

static bool want_sample(render_t *r, const command_t *cmd, const value_t *v)
{
    if (v->kind == V_SAMPLE)
        return true;
    if (v->kind == V_NIL)
        rerror(r, cmd, "error calling %s: runtime error: invalid memory address or nil pointer "
                       "dereference",
               fn_name(cmd->fn));
    else
        rerror(r, cmd, "wrong type for value; expected *template.sample; got %s", type_name(v));
    return false;
}

static bool want_samples(render_t *r, const command_t *cmd, const value_t *v)
{
    if (v->kind == V_SAMPLES)
        return true;
    rerror(r, cmd, "wrong type for value; expected template.queryResult; got %s", type_name(v));
    return false;
}

/* query "EXPR": the environment's instant query, copied into the arena. */
static int call_query(render_t *r, const command_t *cmd, const value_t *expr, value_t *out)
{
    const kcw_template_env_t *env = r->t->env;
    if (!want_string(r, cmd, expr))
        return -EINVAL;
    if (!env || !env->query) {
        rerror(r, cmd, "error calling query: no Prometheus to query here");
        return -EINVAL;
    }
    if (++r->queries > KCW_TEMPLATE_MAX_QUERIES) {
        rerror(r, cmd, "error calling query: more than %d queries in one template",
               KCW_TEMPLATE_MAX_QUERIES);
        return -EINVAL;
    }
    char *text = strndup(expr->s, expr->len);
    if (!text) {
        r->out.nomem = true;
        return -ENOMEM;
    }
    const kcw_template_sample_t *got = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = env->query(env->query_arg, text, &got, &n, err, sizeof(err));
    free(text);
    if (rc < 0) {
        rerror(r, cmd, "error calling query: %s", err[0] ? err : "query failed");
        return -EINVAL;
    }
    if (n > KCW_TEMPLATE_MAX_SAMPLES) {
        rerror(r, cmd, "error calling query: %zu samples, more than %d", n,
               KCW_TEMPLATE_MAX_SAMPLES);
        return -EINVAL;
    }
    arena_block_t b = {.samples = calloc(n ? n : 1, sizeof(*b.samples)),
                       .ptrs = calloc(n ? n : 1, sizeof(*b.ptrs))};
    int ok = b.samples && b.ptrs ? 0 : -ENOMEM;
    for (size_t i = 0; ok == 0 && i < n; i++) {
        ok = kcw_labels_copy(&b.samples[i].labels, &got[i].labels);
        b.samples[i].value = got[i].value;
        b.ptrs[i] = &b.samples[i];
        b.n = i + 1;
    }
    if (ok < 0 || arena_keep(r, b) < 0) {
        if (ok < 0) {
            for (size_t j = 0; j < b.n; j++)
                kcw_labels_clear(&b.samples[j].labels);
            free(b.samples);
            free(b.ptrs);
        }
        r->out.nomem = true;
        return -ENOMEM;
    }
    out->kind = V_SAMPLES;
    out->samples = r->arena[r->n_arena - 1].ptrs;
    out->n_samples = n;
    return 0;
}

/* sortByLabel NAME RESULT: a stably sorted copy (Go's sort.Stable). */
static int call_sort(render_t *r, const command_t *cmd, const value_t *name, const value_t *v,
                     value_t *out)
{
    if (!want_string(r, cmd, name) || !want_samples(r, cmd, v))
        return -EINVAL;
    arena_block_t b = {.ptrs = calloc(v->n_samples ? v->n_samples : 1, sizeof(*b.ptrs))};
    if (!b.ptrs || arena_keep(r, b) < 0) {
        free(b.ptrs);
        r->out.nomem = true;
        return -ENOMEM;
    }
    char *key = strndup(name->s, name->len);
    if (!key) {
        r->out.nomem = true;
        return -ENOMEM;
    }
    const kcw_template_sample_t **p = r->arena[r->n_arena - 1].ptrs;
    /* insertion sort: stable, and results are small (KCW_TEMPLATE_MAX_SAMPLES) */
    for (size_t i = 0; i < v->n_samples; i++) {
        const kcw_template_sample_t *s = v->samples[i];
        const char *sv = kcw_labels_get(&s->labels, key);
        size_t j = i;
        while (j > 0) {
            const char *pv = kcw_labels_get(&p[j - 1]->labels, key);
            if (strcmp(pv ? pv : "", sv ? sv : "") <= 0)
                break;
            p[j] = p[j - 1];
            j--;
        }
        p[j] = s;
    }
    free(key);
    out->kind = V_SAMPLES;
    out->samples = p;
    out->n_samples = v->n_samples;
    return 0;
}

/* reReplaceAll PATTERN REPL TEXT (Go's regexp.ReplaceAllString). */
static int call_replace(render_t *r, const command_t *cmd, value_t *args, value_t *out)
{
    if (!want_string(r, cmd, &args[0]) || !want_string(r, cmd, &args[1]) ||
        !want_string(r, cmd, &args[2]))
        return -EINVAL;
    char *pattern = strndup(args[0].s, args[0].len);
    char *repl = strndup(args[1].s, args[1].len);
    char *text = strndup(args[2].s, args[2].len);
    kcw_regex_t *re = NULL;
    char err[300] = "";
    int rc = pattern && repl && text ? kcw_regex_compile(pattern, false, &re, err, sizeof(err))
                                     : -ENOMEM;
    char *res = NULL;
    if (rc == 0)
        rc = kcw_regex_replace_all(re, text, repl, KCW_TEMPLATE_MAX_OUTPUT, &res, err,
                                   sizeof(err));
    kcw_regex_free(re);
    free(pattern);
    free(repl);
    free(text);
    if (rc == -ENOMEM) {
        r->out.nomem = true;
        return rc;
    }
    if (rc == -E2BIG) {
        rerror(r, cmd, "error calling reReplaceAll: result longer than %d bytes",
               KCW_TEMPLATE_MAX_OUTPUT);
        return -EINVAL;
    }
    if (rc < 0) {
        rerror(r, cmd, "error calling reReplaceAll: %s", err);
        return -EINVAL;
    }
    out->kind = V_STR;
    out->owned = res;
    out->s = res;
    out->len = strlen(res);
    return 0;
}

/* externalURL, or (path) its path for pathPrefix. */
static int call_external(render_t *r, const command_t *cmd, value_t *out)
{
    const char *url = r->t->env && r->t->env->external_url ? r->t->env->external_url : "";
    const char *s = url;
    size_t len = strlen(url);
    if (cmd->fn == FN_PATH_PREFIX) {
        const char *scheme = strstr(url, "://");
        const char *host = scheme ? scheme + 3 : url;
        const char *path = host + strcspn(host, "/?#");
        s = *path == '/' ? path : "";
        len = strcspn(s, "?#");
    }
    out->kind = V_STR;
    out->owned = strndup(s, len);
    if (!out->owned) {
        r->out.nomem = true;
        return -ENOMEM;
    }
    out->s = out->owned;
    out->len = len;
    return 0;
}

static int call(render_t *r, const command_t *cmd, value_t *args, size_t n, value_t *out)
{
    char buf[128];
    double f;
    memset(out, 0, sizeof(*out));
    switch (cmd->fn) {
    case FN_HUMANIZE:
    case FN_HUMANIZE1024:
    case FN_HUMANIZE_DURATION:
    case FN_HUMANIZE_PERCENTAGE:
        if (to_float(r, cmd, &args[0], &f) < 0)
            return -EINVAL;
        if (cmd->fn == FN_HUMANIZE)
            humanize(buf, sizeof(buf), f);
        else if (cmd->fn == FN_HUMANIZE1024)
            humanize1024(buf, sizeof(buf), f);
        else if (cmd->fn == FN_HUMANIZE_DURATION)
            humanize_duration(buf, sizeof(buf), f);
        else
            fmt_g4(buf, sizeof(buf), f * 100, "%");
        {
            strbuf_t sb = {0};
            sb_puts(&sb, buf);
            return set_owned(r, out, &sb);
        }
    case FN_PRINTF: {
        if (args[0].kind != V_STR) {
            rerror(r, cmd, "wrong type for value; expected string; got %s", type_name(&args[0]));
            return -EINVAL;
        }
        strbuf_t sb = {0};
        go_sprintf(&sb, args[0].s, args[0].len, args + 1, n - 1);
        return set_owned(r, out, &sb);
    }
    case FN_TITLE:
    case FN_TO_UPPER:
    case FN_TO_LOWER:
        return call_string_fn(r, cmd, &args[0], out);
    case FN_EQ:
    case FN_NE: {
        bool any = false;
        for (size_t i = 1; i < n; i++) {
            bool eq = false;
            if (compare(r, cmd, &args[0], &args[i], &eq) < 0)
                return -EINVAL;
            any = any || eq;
        }
        out->kind = V_BOOL;
        out->b = cmd->fn == FN_EQ ? any : !any;
        return 0;
    }
    case FN_QUERY:
        return call_query(r, cmd, &args[0], out);
    case FN_FIRST:
        if (!want_samples(r, cmd, &args[0]))
            return -EINVAL;
        if (args[0].n_samples == 0) {
            rerror(r, cmd, "error calling first: first() called on vector with no elements");
            return -EINVAL;
        }
        out->kind = V_SAMPLE;
        out->sample = args[0].samples[0];
        return 0;
    case FN_LABEL:
        if (!want_string(r, cmd, &args[0]) || !want_sample(r, cmd, &args[1]))
            return -EINVAL;
        {
            char *name = strndup(args[0].s, args[0].len);
            if (!name) {
                r->out.nomem = true;
                return -ENOMEM;
            }
            const char *v = kcw_labels_get(&args[1].sample->labels, name);
            free(name);
            out->kind = V_STR;
            out->owned = strdup(v ? v : "");
            if (!out->owned) {
                r->out.nomem = true;
                return -ENOMEM;
            }
            out->s = out->owned;
            out->len = strlen(out->s);
        }
        return 0;
    case FN_VALUE:
        if (!want_sample(r, cmd, &args[0]))
            return -EINVAL;
        out->kind = V_FLOAT;
        out->f = args[0].sample->value;
        return 0;
    case FN_SORT_BY_LABEL:
        return call_sort(r, cmd, &args[0], &args[1], out);
    case FN_RE_REPLACE_ALL:
        return call_replace(r, cmd, args, out);
    case FN_SAFE_HTML:
        if (!want_string(r, cmd, &args[0]))
            return -EINVAL;
        /* html/template.HTML: in a text template, the same text */
        out->kind = V_STR;
        out->owned = strndup(args[0].s, args[0].len);
        if (!out->owned) {
            r->out.nomem = true;
            return -ENOMEM;
        }
        out->s = out->owned;
        out->len = args[0].len;
        return 0;
    case FN_EXTERNAL_URL:
    case FN_PATH_PREFIX:
        return call_external(r, cmd, out);
    case FN_NONE:
        break;
    }
    return -EINVAL;
}

static int eval_pipeline(render_t *r, const pipeline_t *pl, value_t *out)
{
    value_t prev = {0};
    bool have_prev = false;
    for (size_t c = 0; c < pl->n; c++) {
        const command_t *cmd = &pl->cmds[c];
        r->cur = cmd;
        if (cmd->fn == FN_NONE) {
            /* the parser allows an operand only as the first stage */
            if (eval_arg(r, &cmd->args[0], &prev) < 0)
                return -EINVAL;
            have_prev = true;
            continue;
        }
        size_t n = cmd->n_args + (have_prev ? 1 : 0);
        value_t *args = calloc(n ? n : 1, sizeof(*args));
        if (!args) {
            value_clear(&prev);
            r->out.nomem = true;
            return -ENOMEM;
        }
        int rc = 0;
        size_t done = 0;
        for (; done < cmd->n_args; done++)
            if ((rc = eval_arg(r, &cmd->args[done], &args[done])) < 0)
                break;
        if (rc == 0 && have_prev) {
            args[done++] = prev; /* the piped value goes last, as in Go */
            memset(&prev, 0, sizeof(prev));
        }
        value_t result = {0};
        if (rc == 0)
            rc = call(r, cmd, args, n, &result);
        for (size_t i = 0; i < n; i++)
            value_clear(&args[i]);
        free(args);
        value_clear(&prev);
        if (rc < 0)
            return rc;
        prev = result;
        have_prev = true;
    }
    *out = prev;
    return 0;
}

static bool truth(const value_t *v)
{
    switch (v->kind) {
    case V_STR:
        return v->len > 0;
    case V_FLOAT:
        return v->f != 0;
    case V_INT:
        return v->i != 0;
    case V_BOOL:
        return v->b;
    case V_NIL:
        return false;
    case V_SAMPLE:
        return true;
    case V_SAMPLES:
        return v->n_samples > 0;
    }
    return false;
}

static int render_list(render_t *r, const node_list_t *list);

/* {{ with }} and {{ range }}: the body with the dot set to the value (each
 * sample of a query result for range), else the else branch. */
static int render_scoped(render_t *r, const node_t *n, value_t *v)
{
    const value_t *saved = r->dot;
    int rc = 0;
    if (n->kind == NODE_WITH) {
        if (!truth(v))
            return render_list(r, &n->else_nodes);
        r->dot = v;
        rc = render_list(r, &n->then_nodes);
        r->dot = saved;
        return rc;
    }
    if (v->kind == V_NIL)
        return render_list(r, &n->else_nodes);
    if (v->kind != V_SAMPLES) {
        rerror(r, &n->pipe->cmds[0], "range can't iterate over %s", type_name(v));
        return -EINVAL;
    }
    if (v->n_samples == 0)
        return render_list(r, &n->else_nodes);
    for (size_t i = 0; i < v->n_samples && rc == 0 && !r->out.truncated; i++) {
        if (++r->steps > KCW_TEMPLATE_MAX_STEPS) {
            rerror(r, &n->pipe->cmds[0], "more than %d steps", KCW_TEMPLATE_MAX_STEPS);
            rc = -EINVAL;
            break;
        }
        value_t item = {.kind = V_SAMPLE, .sample = v->samples[i]};
        r->dot = &item;
        rc = render_list(r, &n->then_nodes);
        r->dot = saved;
    }
    return rc;
}

static int render_list(render_t *r, const node_list_t *list)
{
    for (size_t i = 0; i < list->n && !r->failed && !r->out.nomem; i++) {
        const node_t *n = &list->items[i];
        if (r->out.truncated)
            return 0;
        if (n->kind == NODE_TEXT) {
            sb_add(&r->out, n->text, n->len);
            continue;
        }
        if (++r->steps > KCW_TEMPLATE_MAX_STEPS) {
            rerror(r, &n->pipe->cmds[0], "more than %d steps", KCW_TEMPLATE_MAX_STEPS);
            return -EINVAL;
        }
        value_t v;
        if (eval_pipeline(r, n->pipe, &v) < 0)
            return -EINVAL;
        if (n->kind == NODE_PRINT) {
            value_print(&r->out, &v);
            value_clear(&v);
            continue;
        }
        if (n->kind == NODE_WITH || n->kind == NODE_RANGE) {
            int rc = render_scoped(r, n, &v);
            value_clear(&v);
            if (rc < 0)
                return -EINVAL;
            continue;
        }
        bool cond = truth(&v);
        value_clear(&v);
        if (render_list(r, cond ? &n->then_nodes : &n->else_nodes) < 0)
            return -EINVAL;
    }
    return r->failed ? -EINVAL : 0;
}

int kcw_template_render(const kcw_template_t *t, const kcw_template_ctx_t *ctx, char **out)
{
    *out = NULL;
    render_t r = {.t = t, .ctx = ctx};
    render_list(&r, &t->root);
    arena_free(&r);
    if (r.out.nomem) {
        free(r.out.buf);
        return -ENOMEM;
    }
    if (r.failed) {
        /* Like Prometheus: the text becomes the error, the alert still fires. */
        free(r.out.buf);
        if (asprintf(out, "<error expanding template: %s>", r.err) < 0) {
            *out = NULL;
            return -ENOMEM;
        }
        return 0;
    }
    if (!r.out.buf) {
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    *out = r.out.buf;
    return r.out.truncated ? -E2BIG : 0;
}
