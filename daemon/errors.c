/* errors.c: positioned error lists (see errors.h). */
#include "kcwatch/errors.h"

#include "kcwatch/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void kcw_errors_add(kcw_errors_t *errs, const char *file, int line, int col, const char *fmt, ...)
{
    if (errs->n == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        kcw_error_t *items = realloc(errs->items, cap * sizeof(*items));
        if (!items) {
            /* Keep the count honest even when the text cannot be stored. */
            errs->n++;
            return;
        }
        errs->items = items;
        errs->cap = cap;
    }
    if (errs->n >= errs->cap) { /* count grew past storage after an OOM */
        errs->n++;
        return;
    }
    kcw_error_t *e = &errs->items[errs->n++];
    e->file = file ? strdup(file) : NULL;
    e->line = line;
    e->col = col;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&e->msg, fmt, ap) < 0)
        e->msg = NULL;
    va_end(ap);
}

void kcw_error_format(const kcw_error_t *e, char *buf, size_t n)
{
    const char *file = e->file ? e->file : "<input>";
    const char *msg = e->msg ? e->msg : "(out of memory)";
    if (e->line > 0 && e->col > 0)
        snprintf(buf, n, "%s:%d:%d: %s", file, e->line, e->col, msg);
    else if (e->line > 0)
        snprintf(buf, n, "%s:%d: %s", file, e->line, msg);
    else
        snprintf(buf, n, "%s: %s", file, msg);
}

void kcw_errors_print(const kcw_errors_t *errs, FILE *out)
{
    size_t stored = errs->n < errs->cap ? errs->n : errs->cap;
    char buf[2048];
    for (size_t i = 0; i < stored; i++) {
        kcw_error_format(&errs->items[i], buf, sizeof(buf));
        fprintf(out, "%s\n", buf);
    }
    if (errs->n > stored)
        fprintf(out, "(%zu more errors lost: out of memory)\n", errs->n - stored);
}

void kcw_errors_clear(kcw_errors_t *errs)
{
    size_t stored = errs->n < errs->cap ? errs->n : errs->cap;
    for (size_t i = 0; i < stored; i++) {
        free(errs->items[i].file);
        free(errs->items[i].msg);
    }
    free(errs->items);
    memset(errs, 0, sizeof(*errs));
}

void kcw_errors_append(kcw_errors_t *to, const kcw_errors_t *from)
{
    size_t stored = from->n < from->cap ? from->n : from->cap;
    for (size_t i = 0; i < stored; i++) {
        const kcw_error_t *e = &from->items[i];
        kcw_errors_add(to, e->file, e->line, e->col, "%s", e->msg ? e->msg : "(out of memory)");
    }
}

void kcw_errors_log_warnings(const kcw_errors_t *warnings, const char *msg)
{
    size_t stored = warnings->n < warnings->cap ? warnings->n : warnings->cap;
    char line[2048];
    for (size_t i = 0; i < stored; i++) {
        kcw_error_format(&warnings->items[i], line, sizeof(line));
        kcw_log(KCW_LOG_WARN, msg, "warning", line, NULL);
    }
}
