/* errors.h: positioned error lists for config, rules and templates.
 *
 * Loaders never stop at the first problem: they append every error they find
 * to a kcw_errors_t and the caller prints them all as FILE:LINE:COL: message.
 * Lines and columns are 1-based; 0 means "not known" and is not printed. */
#ifndef KCWATCH_ERRORS_H
#define KCWATCH_ERRORS_H

#include <stddef.h>
#include <stdio.h>

typedef struct kcw_error {
    char *file; /* owned; may be NULL */
    int line;   /* 1-based, 0 = unknown */
    int col;    /* 1-based, 0 = unknown */
    char *msg;  /* owned */
} kcw_error_t;

typedef struct kcw_errors {
    kcw_error_t *items;
    size_t n, cap;
} kcw_errors_t;

/* Appends one error; printf-style message. Never fails visibly (on OOM the
 * error is counted but its text is lost: n still grows). */
void kcw_errors_add(kcw_errors_t *errs, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Prints "file:line:col: msg\n" for each error (line/col omitted when 0). */
void kcw_errors_print(const kcw_errors_t *errs, FILE *out);

/* One error as a string "file:line:col: msg" into buf (truncated to n). */
void kcw_error_format(const kcw_error_t *e, char *buf, size_t n);

/* Frees the items; the struct itself is reusable afterwards (zeroed). */
void kcw_errors_clear(kcw_errors_t *errs);

/* Appends a copy of every item of from to to. */
void kcw_errors_append(kcw_errors_t *to, const kcw_errors_t *from);

/* Warnings (problems that do not stop a load) as log lines: one WARN line
 * msg with "warning": "FILE:LINE:COL: message" each. */
void kcw_errors_log_warnings(const kcw_errors_t *warnings, const char *msg);

#endif
