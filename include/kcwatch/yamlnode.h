/* yamlnode.h: positioned YAML nodes for the file loaders (rules, rule tests).
 *
 * A document is loaded whole with libyaml's document loader, which keeps the
 * start mark of every node; the helpers here read scalars, durations and
 * mappings off it and append every problem to a kcw_errors_t with the
 * FILE:LINE:COL of the offending node. Messages are the callers' own: each
 * getter takes the name the user wrote ("for", "groups[0].interval", ...). */
#ifndef KCWATCH_YAMLNODE_H
#define KCWATCH_YAMLNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "kcwatch/errors.h"
#include "kcwatch/template.h"

#define KCW_YDOC_DEFAULT_MAX_NODES 100000
#define KCW_YDOC_DEFAULT_MAX_DEPTH 64
#define KCW_YDOC_MAX_DEPTH_CAP 256

typedef struct kcw_ydoc {
    yaml_document_t doc;
    const char *file;   /* for messages */
    kcw_errors_t *errs; /* where problems go */
    /* Load bounds: nodes (alias copies included; 0: the default) and
     * nesting depth (0: the default). */
    size_t max_nodes;
    int max_depth;
    /* A second document is an error at its start and fails the load (config
     * files), rather than one reported at its first node (rule files). */
    bool single_document;
    size_t max_visits;  /* kcw_ydoc_node bound (aliases can make a walk huge); 0: none */
    size_t visits;
    bool too_big; /* max_visits was hit (reported once) */
    /* Set by kcw_ydoc_load: where each line of the text starts, so a
     * node's mark finds its byte offset without a walk from the start
     * (NULL when out of memory: then it walks). */
    size_t *line_starts;
    size_t n_lines;
} kcw_ydoc_t;

/* Loads the first YAML document of text into d->doc (d->file, d->errs and the
 * bounds set by the caller), from libyaml's events: nesting deeper than
 * max_depth, more than max_nodes nodes (alias copies count), an unknown
 * alias, a NUL in a string and syntax errors fail the load with one
 * positioned error. An alias is a copy of its anchor's value positioned at
 * the alias. 0: d->doc is loaded, release it with kcw_ydoc_free. Negative
 * errno with the error added: nothing to release. When extra_doc_msg is not
 * NULL, a second document with content is reported at its first node with
 * that text (the first one is still loaded), or at its start with a failed
 * load when d->single_document is set. */
int kcw_ydoc_load(kcw_ydoc_t *d, const char *text, size_t len, const char *extra_doc_msg);
void kcw_ydoc_free(kcw_ydoc_t *d);

/* Appends a libyaml parser error ("YAML syntax error: PROBLEM (CONTEXT started
 * at line L, column C)"), at its mark, or for reader errors (invalid UTF-8)
 * at the line:col of the offending byte of text. */
void kcw_ydoc_parser_error(kcw_ydoc_t *d, const yaml_parser_t *p, const char *text, size_t len);

/* Appends fmt at n's position (0:0 when n is NULL). */
void kcw_ydoc_error(kcw_ydoc_t *d, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Node idx of the document; NULL for a bad index or once more than
 * d->max_visits nodes were asked for (reported once). */
yaml_node_t *kcw_ydoc_node(kcw_ydoc_t *d, int idx);

/* The text of a scalar node, NULL for anything else (and NULL). */
const char *kcw_ynode_scalar(const yaml_node_t *n);
bool kcw_ynode_is_plain(const yaml_node_t *n);
/* The YAML spellings of null: "", ~, null, Null, NULL. */
bool kcw_yaml_null_word(const char *s);
/* `key:` with nothing after it, or a plain null word. false for NULL. */
bool kcw_ynode_is_null(const yaml_node_t *n);
/* "a mapping", "a list" or "a scalar", for "expected X, got Y" messages. */
const char *kcw_ynode_kind(const yaml_node_t *n);
static inline size_t kcw_ynode_map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}
static inline size_t kcw_ynode_seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* A scalar, copied. null_empty: a null scalar gives "" rather than its text.
 * -EINVAL ("WHAT: expected a string, got ...") or -ENOMEM, reported. */
int kcw_ydoc_get_string(kcw_ydoc_t *d, const yaml_node_t *n, const char *what, bool null_empty,
                        char **out);

/* A non-negative duration (duration.h syntax). null_zero: a null scalar is 0.
 * -EINVAL or -ERANGE, reported. */
int kcw_ydoc_get_duration(kcw_ydoc_t *d, const yaml_node_t *n, const char *what, bool null_zero,
                          int64_t *out);

/* Reports "WHAT: unknown key \"KEY\" (known: KNOWN)" at k. */
void kcw_ydoc_unknown_key(kcw_ydoc_t *d, const yaml_node_t *k, const char *what, const char *key,
                          const char *known);

/* A mapping of at most max_entries entries whose keys are unique strings,
 * and, when allowed (NULL-terminated) is given, from allowed; each problem is
 * reported at its key. false when n is not a usable mapping. */
bool kcw_ydoc_check_map(kcw_ydoc_t *d, const yaml_node_t *n, const char *what,
                        const char *const *allowed, size_t max_entries);

/* Which step of kcw_file_read_bounded failed. */
typedef enum { KCW_READ_OPEN, KCW_READ_STAT, KCW_READ_READ } kcw_read_step_t;

/* Reads a regular file whole into a NUL-terminated buffer (*text, free it)
 * of *len bytes, never blocking on open (FIFOs, devices and sockets are
 * refused with -ENOTSUP: /dev/zero is not an empty file). 0, or: -EISDIR for
 * a directory, -EFBIG when larger than
 * max bytes, -ENOMEM, -EIO for a read error, another negative errno from
 * open/fstat; *step says where it failed, so callers word their messages. */
int kcw_file_read_bounded(const char *path, size_t max, char **text, size_t *len,
                          kcw_read_step_t *step);

/* Compiles src, the text of scalar n of the document loaded from text/len,
 * with errors positioned in the file: quoted scalars start one column after
 * the quote; block scalars (| and >) start on the line after the indicator,
 * at the indentation of their first line. As kcw_template_compile. */
int kcw_ydoc_compile_template(kcw_ydoc_t *d, const char *text, size_t len, const yaml_node_t *n,
                              const char *src, kcw_template_t **out);

/* Where the text of a scalar's value lies in its file: from byte off of
 * the value on, it is at line:col (1-based), until the next segment. */
typedef struct kcw_src_seg {
    size_t off;
    int line, col;
} kcw_src_seg_t;

/* Maps scalar n (value src) of the document loaded from text/len onto the
 * file: one segment per source line of the scalar whose text appears, in
 * order, in src (plain, quoted and block styles; folding and indentation
 * undone). Stops at the first line it cannot find (an escape sequence in a
 * double-quoted scalar). *segs (free it) may be NULL with *n == 0; -ENOMEM. */
int kcw_ydoc_scalar_map(const kcw_ydoc_t *d, const char *text, size_t len, const yaml_node_t *n,
                        const char *src, kcw_src_seg_t **segs, size_t *n_segs);

/* The file position of line:col (1-based, bytes, as Prometheus' parser
 * counts them) of src, through its segments; line:col of the first segment
 * when the position lies before it; *fline = 0 when there are none. */
void kcw_src_map_pos(const kcw_src_seg_t *segs, size_t n_segs, const char *src, int line, int col,
                     int *fline, int *fcol);

#endif
