/* yamlnode.c: positioned YAML node helpers shared by the rule loader
 * (rules.c) and the rule-test loader (ruletest.c), see yamlnode.h.
 *
 * Both read a file whole, load it with libyaml's document loader and walk
 * the nodes, reporting every problem at the node's start mark; what they
 * say stays theirs (the callers pass the names and choose the variants), so
 * only the mechanics live here. */
#include "kcwatch/yamlnode.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kcwatch/duration.h"

void kcw_ydoc_parser_error(kcw_ydoc_t *d, const yaml_parser_t *p)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
    kcw_errors_add(d->errs, d->file, (int)m->line + 1, (int)m->column + 1, "yaml: %s%s%s",
                   p->problem ? p->problem : "syntax error", p->context ? " " : "",
                   p->context ? p->context : "");
}

int kcw_ydoc_load(kcw_ydoc_t *d, const char *text, size_t len, const char *extra_doc_msg)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        kcw_errors_add(d->errs, d->file, 0, 0, "out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &d->doc)) {
        kcw_ydoc_parser_error(d, &parser);
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    if (extra_doc_msg && yaml_document_get_root_node(&d->doc)) {
        yaml_document_t extra;
        if (!yaml_parser_load(&parser, &extra)) {
            kcw_ydoc_parser_error(d, &parser);
        } else {
            yaml_node_t *xroot = yaml_document_get_root_node(&extra);
            if (xroot)
                kcw_ydoc_error(d, xroot, "%s", extra_doc_msg);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&parser);
    return 0;
}

void kcw_ydoc_free(kcw_ydoc_t *d)
{
    yaml_document_delete(&d->doc);
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
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno ? -errno : -EIO;
    *step = KCW_READ_STAT;
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) < 0)
        rc = errno ? -errno : -EIO;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    else if (st.st_size < 0 || (uintmax_t)st.st_size > max)
        rc = -EFBIG;
    if (rc < 0) {
        fclose(f);
        return rc;
    }
    *step = KCW_READ_READ;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return -EIO;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return 0;
}
