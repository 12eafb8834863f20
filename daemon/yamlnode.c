/* yamlnode.c: positioned YAML node helpers shared by the rule loader
 * (rules.c) and the rule-test loader (ruletest.c), see yamlnode.h.
 *
 * Both read a file whole, load it with libyaml's document loader and walk
 * the nodes, reporting every problem at the node's start mark; what they
 * say stays theirs (the callers pass the names and choose the variants), so
 * only the mechanics live here. */
#include "kcwatch/yamlnode.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kcwatch/duration.h"
#include "kcwatch/text.h"

/* libyaml's reader errors carry a byte offset only; turn it into line:col
 * (columns count UTF-8 characters, as the scanner's marks do). */
static void offset_to_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

void kcw_ydoc_parser_error(kcw_ydoc_t *d, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR) {
        kcw_errors_add(d->errs, d->file, 0, 0, "out of memory");
        return;
    }
    const char *problem = p->problem ? p->problem : "unknown error";
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_to_pos(text, len, p->problem_offset, &line, &col);
        kcw_errors_add(d->errs, d->file, line, col, "YAML syntax error: %s", problem);
        return;
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->problem_mark.index < len && text[p->problem_mark.index] == '\t')
        kcw_errors_add(d->errs, d->file, line, col,
                       "YAML syntax error: %s (tabs cannot indent YAML; use spaces)", problem);
    else if (p->context)
        kcw_errors_add(d->errs, d->file, line, col,
                       "YAML syntax error: %s (%s started at line %d, column %d)", problem,
                       p->context, (int)p->context_mark.line + 1,
                       (int)p->context_mark.column + 1);
    else
        kcw_errors_add(d->errs, d->file, line, col, "YAML syntax error: %s", problem);
}

/* --- building the document from events --------------------------------------
 *
 * libyaml's own document loader has no bound on nesting (deeply nested flow
 * collections cost it quadratic time) nor on what aliases expand to, so the
 * document is built here from parser events with both bounds, through
 * libyaml's document API. An alias becomes a copy of its anchor's subtree
 * whose root carries the alias's position: an error about the aliased value
 * points at the alias. Copies count against the node bound ("billion
 * laughs" stops there). */

typedef struct anchor {
    char *name;
    int node;
} anchor_t;

typedef struct builder {
    kcw_ydoc_t *d;
    size_t max_nodes;
    int max_depth;
    int open[KCW_YDOC_MAX_DEPTH_CAP];
    int open_key[KCW_YDOC_MAX_DEPTH_CAP]; /* mapping: key waiting for its value, 0: none */
    char *open_anchor[KCW_YDOC_MAX_DEPTH_CAP];
    int depth;
    anchor_t *anchors;
    size_t n_anchors, cap_anchors;
    size_t n_nodes;
} builder_t;

static void err_at(builder_t *b, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(builder_t *b, yaml_mark_t m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kcw_errors_add(b->d->errs, b->d->file, (int)m.line + 1, (int)m.column + 1, "%s", msg);
}

static yaml_node_t *doc_node(builder_t *b, int idx)
{
    return yaml_document_get_node(&b->d->doc, idx);
}

/* Builder steps return 0, -EINVAL (reported) or -ENOMEM. */

static int attach(builder_t *b, int idx)
{
    if (b->depth == 0)
        return 0; /* the root: the document's first node */
    int parent = b->open[b->depth - 1];
    yaml_node_t *p = doc_node(b, parent);
    int ok;
    if (p->type == YAML_SEQUENCE_NODE) {
        ok = yaml_document_append_sequence_item(&b->d->doc, parent, idx);
    } else if (!b->open_key[b->depth - 1]) {
        b->open_key[b->depth - 1] = idx;
        return 0;
    } else {
        ok = yaml_document_append_mapping_pair(&b->d->doc, parent, b->open_key[b->depth - 1],
                                               idx);
        b->open_key[b->depth - 1] = 0;
    }
    return ok ? 0 : -ENOMEM;
}

static int count_nodes(builder_t *b, yaml_mark_t m, size_t n)
{
    if (b->n_nodes + n > b->max_nodes) {
        err_at(b, m, "document too large: more than %zu YAML nodes", b->max_nodes);
        return -EINVAL;
    }
    b->n_nodes += n;
    return 0;
}

static int anchor_add(builder_t *b, char *name, int node)
{
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
        anchor_t *a = realloc(b->anchors, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        b->anchors = a;
        b->cap_anchors = cap;
    }
    b->anchors[b->n_anchors++] = (anchor_t){.name = name, .node = node};
    return 0;
}

static int anchor_take(builder_t *b, const yaml_char_t *anchor, int node)
{
    if (!anchor)
        return 0;
    char *name = strdup((const char *)anchor);
    if (!name || anchor_add(b, name, node) < 0) {
        free(name);
        return -ENOMEM;
    }
    return 0;
}

/* Nodes in the subtree of idx, counting stops just past limit. */
static size_t subtree_size(builder_t *b, int idx, size_t limit)
{
    const yaml_node_t *n = doc_node(b, idx);
    size_t total = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        for (const yaml_node_item_t *i = n->data.sequence.items.start;
             i < n->data.sequence.items.top && total <= limit; i++)
            total += subtree_size(b, *i, limit - total);
    } else if (n->type == YAML_MAPPING_NODE) {
        for (const yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top && total <= limit; p++) {
            total += subtree_size(b, p->key, limit - total);
            if (total <= limit)
                total += subtree_size(b, p->value, limit - total);
        }
    }
    return total;
}

/* Deep copy of node src as a new node (*out). Adding nodes can move the node
 * array, so nodes are looked up again after every addition. */
static int copy_node(builder_t *b, int src, yaml_mark_t mark, int *out)
{
    yaml_document_t *doc = &b->d->doc;
    yaml_node_t *n = doc_node(b, src);
    int idx = 0;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        idx = yaml_document_add_scalar(doc, n->tag, n->data.scalar.value,
                                       (int)n->data.scalar.length, n->data.scalar.style);
        break;
    case YAML_SEQUENCE_NODE:
        idx = yaml_document_add_sequence(doc, n->tag, n->data.sequence.style);
        break;
    default:
        idx = yaml_document_add_mapping(doc, n->tag, n->data.mapping.style);
        break;
    }
    if (!idx)
        return -ENOMEM;
    doc_node(b, idx)->start_mark = mark;
    doc_node(b, idx)->end_mark = mark; /* a copy has no text of its own */
    n = doc_node(b, src);
    if (n->type == YAML_SEQUENCE_NODE) {
        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        for (size_t i = 0; i < count; i++) {
            int item = doc_node(b, src)->data.sequence.items.start[i], copy;
            int rc = copy_node(b, item, doc_node(b, item)->start_mark, &copy);
            if (rc < 0)
                return rc;
            if (!yaml_document_append_sequence_item(doc, idx, copy))
                return -ENOMEM;
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
        for (size_t i = 0; i < count; i++) {
            yaml_node_pair_t pair = doc_node(b, src)->data.mapping.pairs.start[i];
            int k, v, rc = copy_node(b, pair.key, doc_node(b, pair.key)->start_mark, &k);
            if (rc == 0)
                rc = copy_node(b, pair.value, doc_node(b, pair.value)->start_mark, &v);
            if (rc < 0)
                return rc;
            if (!yaml_document_append_mapping_pair(doc, idx, k, v))
                return -ENOMEM;
        }
    }
    *out = idx;
    return 0;
}

/* The height of the subtree of idx (1 for a scalar), stopping past limit. */
static int subtree_height(builder_t *b, int idx, int limit)
{
    const yaml_node_t *n = doc_node(b, idx);
    int h = 0;
    if (limit <= 0)
        return 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        for (const yaml_node_item_t *i = n->data.sequence.items.start;
             i < n->data.sequence.items.top && h < limit; i++) {
            int k = subtree_height(b, *i, limit - 1);
            h = k > h ? k : h;
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        for (const yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top && h < limit; p++) {
            int k = subtree_height(b, p->value, limit - 1);
            h = k > h ? k : h;
        }
    }
    return h + 1;
}

static int on_alias(builder_t *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    /* Latest definition wins: YAML lets an anchor name be reused. */
    for (size_t i = b->n_anchors; i-- > 0;) {
        if (strcmp(b->anchors[i].name, name) != 0)
            continue;
        int src = b->anchors[i].node;
        size_t left = b->max_nodes - b->n_nodes;
        if (subtree_size(b, src, left) > left) {
            err_at(b, ev->start_mark, "document too large: alias \"*%s\" expands past %zu YAML nodes",
                   name, b->max_nodes);
            return -EINVAL;
        }
        if (b->depth + subtree_height(b, src, b->max_depth) > b->max_depth + 1) {
            err_at(b, ev->start_mark, "nesting deeper than %d levels (alias \"*%s\")",
                   b->max_depth, name);
            return -EINVAL;
        }
        b->n_nodes += subtree_size(b, src, left);
        int idx;
        int rc = copy_node(b, src, ev->start_mark, &idx);
        return rc < 0 ? rc : attach(b, idx);
    }
    err_at(b, ev->start_mark, "unknown alias \"*%s\"", name);
    return -EINVAL;
}

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    if (count_nodes(b, ev->start_mark, 1) < 0)
        return -EINVAL;
    if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length)) {
        err_at(b, ev->start_mark, "NUL character in a string");
        return -EINVAL;
    }
    if (ev->data.scalar.length > INT_MAX)
        return -ENOMEM;
    int idx = yaml_document_add_scalar(&b->d->doc, ev->data.scalar.tag, ev->data.scalar.value,
                                       (int)ev->data.scalar.length, ev->data.scalar.style);
    if (!idx)
        return -ENOMEM;
    doc_node(b, idx)->start_mark = ev->start_mark;
    doc_node(b, idx)->end_mark = ev->end_mark; /* kcw_ydoc_scalar_map */
    int rc = attach(b, idx);
    return rc < 0 ? rc : anchor_take(b, ev->data.scalar.anchor, idx);
}

static int on_start(builder_t *b, const yaml_event_t *ev, bool mapping)
{
    if (count_nodes(b, ev->start_mark, 1) < 0)
        return -EINVAL;
    if (b->depth >= b->max_depth) {
        err_at(b, ev->start_mark, "nesting deeper than %d levels", b->max_depth);
        return -EINVAL;
    }
    int idx = mapping ? yaml_document_add_mapping(&b->d->doc, ev->data.mapping_start.tag,
                                                  ev->data.mapping_start.style)
                      : yaml_document_add_sequence(&b->d->doc, ev->data.sequence_start.tag,
                                                   ev->data.sequence_start.style);
    if (!idx)
        return -ENOMEM;
    doc_node(b, idx)->start_mark = ev->start_mark;
    int rc = attach(b, idx);
    if (rc < 0)
        return rc;
    const yaml_char_t *anchor =
        mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    char *name = NULL;
    if (anchor && !(name = strdup((const char *)anchor)))
        return -ENOMEM;
    b->open[b->depth] = idx;
    b->open_key[b->depth] = 0;
    b->open_anchor[b->depth] = name;
    b->depth++;
    return 0;
}

static int on_end(builder_t *b)
{
    if (b->depth == 0)
        return -EINVAL;
    b->depth--;
    /* Registered when closed: a collection cannot contain an alias to itself. */
    char *name = b->open_anchor[b->depth];
    b->open_anchor[b->depth] = NULL;
    if (name && anchor_add(b, name, b->open[b->depth]) < 0) {
        free(name);
        return -ENOMEM;
    }
    return 0;
}

/* d->line_starts of text (left NULL when out of memory). */
static void index_lines(kcw_ydoc_t *d, const char *text, size_t len)
{
    size_t n = 1;
    for (const char *p = text, *end = text + len; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!(d->line_starts = malloc(n * sizeof(*d->line_starts))))
        return;
    d->line_starts[0] = 0;
    d->n_lines = 1;
    for (size_t off = 0; d->n_lines < n;) {
        const char *nl = memchr(text + off, '\n', len - off);
        off = (size_t)(nl - text) + 1;
        d->line_starts[d->n_lines++] = off;
    }
}

int kcw_ydoc_load(kcw_ydoc_t *d, const char *text, size_t len, const char *extra_doc_msg)
{
    memset(&d->doc, 0, sizeof(d->doc));
    d->line_starts = NULL;
    d->n_lines = 0;
    if (!yaml_document_initialize(&d->doc, NULL, NULL, NULL, 1, 1)) {
        kcw_errors_add(d->errs, d->file, 0, 0, "out of memory");
        return -ENOMEM;
    }
    builder_t b = {.d = d,
                   .max_nodes = d->max_nodes ? d->max_nodes : KCW_YDOC_DEFAULT_MAX_NODES,
                   .max_depth = d->max_depth > 0 && d->max_depth < KCW_YDOC_MAX_DEPTH_CAP
                                    ? d->max_depth
                                    : KCW_YDOC_DEFAULT_MAX_DEPTH};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        yaml_document_delete(&d->doc);
        kcw_errors_add(d->errs, d->file, 0, 0, "out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0, docs = 0;
    bool done = false, in_extra = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            kcw_ydoc_parser_error(d, &parser, text, len);
            rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        if (in_extra) {
            /* A second document: named at its first node, the rest ignored. */
            if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
                ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
                bool empty = ev.type == YAML_SCALAR_EVENT && ev.data.scalar.length == 0 &&
                             ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                if (!empty)
                    err_at(&b, ev.start_mark, "%s", extra_doc_msg);
                done = true;
            } else if (ev.type == YAML_STREAM_END_EVENT) {
                done = true;
            }
            yaml_event_delete(&ev);
            continue;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                if (d->single_document) {
                    err_at(&b, ev.start_mark, "%s",
                           extra_doc_msg ? extra_doc_msg : "only one YAML document is allowed");
                    rc = -EINVAL;
                } else if (extra_doc_msg) {
                    in_extra = true;
                } else {
                    done = true;
                }
            }
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&b, &ev, ev.type == YAML_MAPPING_START_EVENT);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_end(&b);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    for (int i = 0; i < b.depth; i++)
        free(b.open_anchor[i]);
    for (size_t i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    if (rc < 0) {
        if (rc == -ENOMEM)
            kcw_errors_add(d->errs, d->file, 0, 0, "out of memory");
        yaml_document_delete(&d->doc);
        memset(&d->doc, 0, sizeof(d->doc));
        return rc;
    }
    index_lines(d, text, len); /* for the walk that follows */
    return 0;
}

void kcw_ydoc_free(kcw_ydoc_t *d)
{
    yaml_document_delete(&d->doc);
    free(d->line_starts);
    d->line_starts = NULL;
    d->n_lines = 0;
}

void kcw_ydoc_error(kcw_ydoc_t *d, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = n ? (int)n->start_mark.line + 1 : 0;
    int col = n ? (int)n->start_mark.column + 1 : 0;
    kcw_errors_add(d->errs, d->file, line, col, "%s", msg);
}

yaml_node_t *kcw_ydoc_node(kcw_ydoc_t *d, int idx)
{
    if (d->max_visits && ++d->visits > d->max_visits) {
        if (!d->too_big)
            kcw_errors_add(d->errs, d->file, 0, 0, "document too large to walk (aliases?)");
        d->too_big = true;
        return NULL;
    }
    return yaml_document_get_node(&d->doc, idx);
}

const char *kcw_ynode_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool kcw_ynode_is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

bool kcw_yaml_null_word(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

bool kcw_ynode_is_null(const yaml_node_t *n)
{
    return n && kcw_ynode_is_plain(n) && kcw_yaml_null_word(kcw_ynode_scalar(n));
}

const char *kcw_ynode_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

int kcw_ydoc_get_string(kcw_ydoc_t *d, const yaml_node_t *n, const char *what, bool null_empty,
                        char **out)
{
    const char *s = kcw_ynode_scalar(n);
    if (!s) {
        kcw_ydoc_error(d, n, "%s: expected a string, got %s", what, kcw_ynode_kind(n));
        return -EINVAL;
    }
    if (!(*out = strdup(null_empty && kcw_ynode_is_null(n) ? "" : s))) {
        kcw_ydoc_error(d, n, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int kcw_ydoc_get_duration(kcw_ydoc_t *d, const yaml_node_t *n, const char *what, bool null_zero,
                          int64_t *out)
{
    if (null_zero && kcw_ynode_is_null(n)) {
        *out = 0;
        return 0;
    }
    const char *s = kcw_ynode_scalar(n);
    if (!s) {
        kcw_ydoc_error(d, n, "%s: expected a duration, got %s", what, kcw_ynode_kind(n));
        return -EINVAL;
    }
    int rc = kcw_duration_parse(s, out);
    if (rc == -ERANGE) {
        kcw_ydoc_error(d, n, "%s: duration \"%s\" out of range", what, s);
        return rc;
    }
    if (rc < 0 || *out < 0) {
        kcw_ydoc_error(d, n, "%s: invalid duration \"%s\" (use e.g. 30s, 5m, 1h30m)", what, s);
        return -EINVAL;
    }
    return 0;
}

void kcw_ydoc_unknown_key(kcw_ydoc_t *d, const yaml_node_t *k, const char *what, const char *key,
                          const char *known)
{
    /* known is "a, b, c": split into words for the suggestion */
    char buf[512];
    const char *words[65];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", known);
    char *save = NULL;
    for (char *w = strtok_r(buf, ", ", &save); w && n < 64; w = strtok_r(NULL, ", ", &save))
        words[n++] = w;
    words[n] = NULL;
    const char *near = kcw_text_nearest(key, words);
    if (near)
        kcw_ydoc_error(d, k, "%s: unknown key \"%s\"; did you mean \"%s\"? (known: %s)", what,
                       key, near, known);
    else
        kcw_ydoc_error(d, k, "%s: unknown key \"%s\" (known: %s)", what, key, known);
}

bool kcw_ydoc_check_map(kcw_ydoc_t *d, const yaml_node_t *n, const char *what,
                        const char *const *allowed, size_t max_entries)
{
    if (n->type != YAML_MAPPING_NODE) {
        kcw_ydoc_error(d, n, "%s: expected a mapping, got %s", what, kcw_ynode_kind(n));
        return false;
    }
    if (kcw_ynode_map_len(n) > max_entries) {
        kcw_ydoc_error(d, n, "%s: more than %zu entries", what, max_entries);
        return false;
    }
    const yaml_node_pair_t *start = n->data.mapping.pairs.start;
    for (const yaml_node_pair_t *p = start; p < n->data.mapping.pairs.top && !d->too_big; p++) {
        const yaml_node_t *k = kcw_ydoc_node(d, p->key);
        const char *key = kcw_ynode_scalar(k);
        if (!key) {
            if (k)
                kcw_ydoc_error(d, k, "%s: keys must be strings", what);
            continue;
        }
        bool dup = false;
        for (const yaml_node_pair_t *q = start; q < p && !dup; q++) {
            const char *other = kcw_ynode_scalar(kcw_ydoc_node(d, q->key));
            dup = other && strcmp(other, key) == 0;
        }
        if (dup) {
            kcw_ydoc_error(d, k, "%s: duplicate key \"%s\"", what, key);
            continue;
        }
        if (!allowed)
            continue;
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            char list[512] = "";
            size_t len = 0;
            for (size_t i = 0; allowed[i] && len < sizeof(list); i++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                        allowed[i]);
            kcw_ydoc_unknown_key(d, k, what, key, list);
        }
    }
    return true;
}

int kcw_file_read_bounded(const char *path, size_t max, char **text, size_t *len,
                          kcw_read_step_t *step)
{
    *text = NULL;
    *len = 0;
    *step = KCW_READ_OPEN;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
     * below like any other file that is not a regular one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno ? -errno : -EIO;
    *step = KCW_READ_STAT;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = errno ? -errno : -EIO;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    else if (!S_ISREG(st.st_mode))
        rc = -ENOTSUP;
    else if (st.st_size < 0 || (uintmax_t)st.st_size > max)
        rc = -EFBIG;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *step = KCW_READ_READ;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    /* Never more than the size seen: a file growing while read is cut there. */
    size_t got = 0, want = (size_t)st.st_size;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -EIO;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return 0;
}

/* Byte offset in text of the start of line (0-based); len past the end. */
static size_t line_offset(const kcw_ydoc_t *d, const char *text, size_t len, size_t line)
{
    if (d->line_starts)
        return line < d->n_lines ? d->line_starts[line] : len;
    size_t off = 0;
    for (size_t l = 0; l < line && off < len; l++) {
        const char *nl = memchr(text + off, '\n', len - off);
        off = nl ? (size_t)(nl - text) + 1 : len;
    }
    return off;
}

/* Compiles a template scalar at its position in the file. Quoted scalars
 * start one column after the quote; block scalars (| and >) start on the
 * line after the indicator, at the indentation of their first line. */
int kcw_ydoc_compile_template(kcw_ydoc_t *d, const char *text, size_t len, const yaml_node_t *n,
                              const char *src, kcw_template_t **out)
{
    int line = (int)n->start_mark.line + 1;
    int col = (int)n->start_mark.column + 1;
    yaml_scalar_style_t style = n->data.scalar.style;
    if (style == YAML_SINGLE_QUOTED_SCALAR_STYLE || style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        return kcw_template_compile(src, d->file, line, col + 1, out, d->errs);
    if (style != YAML_LITERAL_SCALAR_STYLE && style != YAML_FOLDED_SCALAR_STYLE)
        return kcw_template_compile(src, d->file, line, col, out, d->errs);
    /* Find the indentation of the first non-blank line after the indicator. */
    const char *p = text + line_offset(d, text, len, n->start_mark.line + 1);
    const char *end = text + len;
    int indent = 0;
    while (p < end) {
        const char *q = p;
        while (q < end && *q == ' ')
            q++;
        if (q < end && *q != '\n' && *q != '\r') {
            indent = (int)(q - p);
            break;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return kcw_template_compile_block(src, d->file, line + 1, indent + 1, indent, out, d->errs);
}

/* Byte offset in text of a libyaml mark (whose column counts characters). */
static size_t mark_offset(const kcw_ydoc_t *d, const char *text, size_t len, const yaml_mark_t *m)
{
    size_t off = line_offset(d, text, len, m->line);
    for (size_t c = 0; c < m->column && off < len && text[off] != '\n'; c++) {
        off++;
        while (off < len && ((unsigned char)text[off] & 0xC0) == 0x80)
            off++;
    }
    return off;
}

/* Characters between line_start and p, plus one. */
static int char_col(const char *line_start, const char *p)
{
    int col = 1;
    for (const char *q = line_start; q < p; q++)
        col += ((unsigned char)*q & 0xC0) != 0x80;
    return col;
}

int kcw_ydoc_scalar_map(const kcw_ydoc_t *d, const char *text, size_t len, const yaml_node_t *n,
                        const char *src, kcw_src_seg_t **segs, size_t *n_segs)
{
    *segs = NULL;
    *n_segs = 0;
    if (!n || n->type != YAML_SCALAR_NODE || !src)
        return 0;
    size_t a = mark_offset(d, text, len, &n->start_mark);
    size_t b = mark_offset(d, text, len, &n->end_mark);
    int line = (int)n->start_mark.line + 1;
    yaml_scalar_style_t style = n->data.scalar.style;
    if (style == YAML_SINGLE_QUOTED_SCALAR_STYLE || style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) {
        a++;
        if (b > a)
            b--;
    } else if (style == YAML_LITERAL_SCALAR_STYLE || style == YAML_FOLDED_SCALAR_STYLE) {
        const char *nl = memchr(text + a, '\n', b > a ? b - a : 0);
        a = nl ? (size_t)(nl - text) + 1 : b;
        line++;
    }
    if (b > len)
        b = len;
    size_t vlen = strlen(src), cur = 0;
    size_t cap = 0;
    size_t line_start = a;
    while (line_start > 0 && text[line_start - 1] != '\n')
        line_start--;
    for (size_t p = a; p < b; line++) {
        const char *nl = memchr(text + p, '\n', b - p);
        size_t eol = nl ? (size_t)(nl - text) : b;
        size_t s = p, e = eol;
        while (s < e && (text[s] == ' ' || text[s] == '\t'))
            s++;
        while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r'))
            e--;
        if (e > s) {
            const char *hit = cur <= vlen ? memmem(src + cur, vlen - cur, text + s, e - s) : NULL;
            if (!hit)
                break;
            if (*n_segs == cap) {
                size_t nc = cap ? cap * 2 : 4;
                kcw_src_seg_t *g = realloc(*segs, nc * sizeof(*g));
                if (!g) {
                    free(*segs);
                    *segs = NULL;
                    *n_segs = 0;
                    return -ENOMEM;
                }
                *segs = g;
                cap = nc;
            }
            (*segs)[(*n_segs)++] = (kcw_src_seg_t){
                .off = (size_t)(hit - src), .line = line, .col = char_col(text + line_start, text + s)};
            cur = (size_t)(hit - src) + (e - s);
        }
        p = eol + 1;
        line_start = p;
    }
    return 0;
}

void kcw_src_map_pos(const kcw_src_seg_t *segs, size_t n_segs, const char *src, int line, int col,
                     int *fline, int *fcol)
{
    *fline = *fcol = 0;
    if (!n_segs)
        return;
    size_t len = strlen(src), off = 0;
    for (int l = 1; l < line && off < len; l++) {
        const char *nl = memchr(src + off, '\n', len - off);
        off = nl ? (size_t)(nl - src) + 1 : len;
    }
    if (col > 1)
        off += (size_t)(col - 1);
    if (off > len)
        off = len;
    size_t i = 0;
    while (i + 1 < n_segs && segs[i + 1].off <= off)
        i++;
    *fline = segs[i].line;
    *fcol = segs[i].col + (off > segs[i].off ? (int)(off - segs[i].off) : 0);
}
