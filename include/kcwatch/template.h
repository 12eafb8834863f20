/* template.h: the annotation/label template subset of Prometheus.
 *
 * Supported: literal text; {{ $labels.NAME }}, {{ $value }}, {{ $trace }},
 * {{ $externalLabels.NAME }}, {{ .Labels.NAME }}, {{ .Value }},
 * {{ $annotations.NAME }} / {{ .Annotations.NAME }} (notification templates:
 * an alert's rendered annotations; empty where none are given); pipes to
 * humanize, humanize1024, humanizeDuration, humanizePercentage, printf "fmt",
 * title, toUpper, toLower; {{ if $labels.X }} / {{ if eq $labels.X "v" }} /
 * {{ else }} / {{ end }}; {{ with PIPELINE }} and {{ range PIPELINE }} (with
 * {{ else }}; the dot becomes the value, a query sample's .Labels.NAME and
 * .Value, {{ . }}); Prometheus' query, first, label, value, sortByLabel,
 * reReplaceAll, safeHtml, externalURL and pathPrefix; {{- and -}} whitespace
 * trimming. Anything else is a compile-time error naming the position.
 * Compiling happens once at load; rendering is bounded (64 KiB of output,
 * KCW_TEMPLATE_MAX_QUERIES queries of KCW_TEMPLATE_MAX_SAMPLES samples,
 * KCW_TEMPLATE_MAX_STEPS actions) and pure but for the query function of the
 * template's environment. */
#ifndef KCWATCH_TEMPLATE_H
#define KCWATCH_TEMPLATE_H

#include <stddef.h>

#include "kcwatch/errors.h"
#include "kcwatch/labels.h"

#define KCW_TEMPLATE_MAX_OUTPUT (64 * 1024)
#define KCW_TEMPLATE_MAX_QUERIES 16   /* query calls per render */
#define KCW_TEMPLATE_MAX_SAMPLES 1000 /* samples per query result */
#define KCW_TEMPLATE_MAX_STEPS 100000 /* actions and range iterations per render */

typedef struct kcw_template kcw_template_t;

/* One sample of a query result, as Prometheus' templates see it. */
typedef struct kcw_template_sample {
    kcw_labels_t labels;
    double value;
} kcw_template_sample_t;

/* What a template reaches beyond its alert. query: 0 with the samples of
 * expr's instant vector (*samples stays the provider's, valid until the
 * next call), or a negative errno with a message in err; NULL: query is an
 * error at render time. */
typedef struct kcw_template_env {
    const char *external_url; /* externalURL, and its path for pathPrefix; NULL: "" */
    int (*query)(void *arg, const char *expr, const kcw_template_sample_t **samples, size_t *n,
                 char *err, size_t errlen);
    void *query_arg;
} kcw_template_env_t;

typedef struct kcw_template_ctx {
    const kcw_labels_t *labels;
    double value;
    const char *trace;                 /* may be NULL: renders empty */
    const kcw_labels_t *external_labels; /* may be NULL */
    const kcw_labels_t *annotations;     /* may be NULL: renders empty */
} kcw_template_ctx_t;

/* Compiles src. line/col locate the first character of src in file, so errors
 * point into the YAML file. 0 and *out, or -EINVAL with errors appended. */
int kcw_template_compile(const char *src, const char *file, int line, int col,
                         kcw_template_t **out, kcw_errors_t *errs);
/* Like kcw_template_compile for the text of a YAML block scalar: lines after
 * the first start at column indent + 1 of the file (the block's indentation
 * is not part of src), so positions on every line point into the file. */
int kcw_template_compile_block(const char *src, const char *file, int line, int col, int indent,
                               kcw_template_t **out, kcw_errors_t *errs);
/* Renders into a new string (*out, free()). 0, -ENOMEM, or -E2BIG when the
 * output would pass the bound (then *out holds the truncated text). A failing
 * call at render time (humanize of a non-number, eq on mixed types) is not an
 * error: as in Prometheus, *out is "<error expanding template: FILE:LINE:COL:
 * ...>" and 0 is returned. */
int kcw_template_render(const kcw_template_t *t, const kcw_template_ctx_t *ctx, char **out);
void kcw_template_free(kcw_template_t *t);
/* The environment t renders with (must outlive its renders); NULL: none. */
void kcw_template_set_env(kcw_template_t *t, const kcw_template_env_t *env);

#endif
