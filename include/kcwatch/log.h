/* log.h: structured logging (logfmt or JSON lines) with secret redaction.
 *
 *   kcw_log(KCW_LOG_INFO, "restart sent", "cluster", c, "connector", name, NULL);
 *
 * Arguments after the message are key, value pairs ended by NULL. Numbers and
 * booleans go through the typed pair macros, so JSON lines keep their type:
 *
 *   kcw_log(KCW_LOG_WARN, "worker down", "url", u, KCW_LOG_INT("failed_polls", n),
 *           KCW_LOG_BOOL("dry_run", dry), KCW_LOG_NUM("seconds", 1.5), NULL);
 *
 * (JSON: "failed_polls":3,"dry_run":false,"seconds":1.5; logfmt prints the
 * same values bare). The key must be a string literal. Every value
 * registered with kcw_log_add_secret() is replaced by "<redacted>" wherever it
 * appears, and every URL's userinfo and query values by "xxxxx". Values are
 * escaped (control bytes, invalid UTF-8) so a peer cannot forge lines. Output goes to stderr unless kcw_log_setup() names another FILE. */
#ifndef KCWATCH_LOG_H
#define KCWATCH_LOG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    KCW_LOG_DEBUG = 0,
    KCW_LOG_INFO,
    KCW_LOG_WARN,
    KCW_LOG_ERROR,
} kcw_log_level_t;

typedef enum {
    KCW_LOG_LOGFMT = 0,
    KCW_LOG_JSON,
} kcw_log_format_t;

/* Format, level and output (NULL: stderr); a pinned format or level wins. */
void kcw_log_setup(kcw_log_format_t format, kcw_log_level_t level, FILE *out);
/* The same, keeping the output: a configuration's global.log, at start and
 * on every reload. */
void kcw_log_configure(kcw_log_format_t format, kcw_log_level_t level);
/* Pins the format and/or level (a kcw_log_format_t / kcw_log_level_t, or -1:
 * not pinned) against every later setup or configure: the command line's
 * --log-format / --log-level over the config's. Applies them now. */
void kcw_log_pin(int format, int level);
/* "debug" "info" "warn" "error" -> level; -1 when unknown. */
int kcw_log_level_parse(const char *s);
/* Remember a secret to redact (copied). Empty strings are ignored. The list
 * keeps the 1024 most recently added (adding a known one refreshes it):
 * register every secret of a config each time it is loaded. */
void kcw_log_add_secret(const char *secret);
/* A copy of text as a log value would show it: registered secrets and URL
 * credentials hidden (not escaped). For text that leaves other than through
 * the log (API answers, status output). NULL on allocation failure. */
char *kcw_log_redact(const char *text);
/* How many secrets are remembered (tests). */
size_t kcw_log_secret_count(void);
/* Forget all secrets and pins and restore defaults (tests, shutdown). */
void kcw_log_reset(void);
void kcw_log(kcw_log_level_t level, const char *msg, ...) __attribute__((sentinel));

/* Typed key/value pairs for kcw_log (two arguments each). A key starting
 * with one of these bytes carries a value of that type as text; the buffers
 * are compound literals that live until the end of the enclosing block. */
#define KCW_LOG_TYPE_INT "\x01"
#define KCW_LOG_TYPE_BOOL "\x02"
#define KCW_LOG_TYPE_NUM "\x03"
#define KCW_LOG_INT(key, v) \
    KCW_LOG_TYPE_INT key, kcw_log_fmt_int((char[24]){0}, 24, (long long)(v))
#define KCW_LOG_BOOL(key, v) KCW_LOG_TYPE_BOOL key, ((v) ? "true" : "false")
#define KCW_LOG_NUM(key, v) \
    KCW_LOG_TYPE_NUM key, kcw_log_fmt_num((char[32]){0}, 32, (double)(v))
/* The macros' formatters: v into buf (n bytes), returned. */
const char *kcw_log_fmt_int(char *buf, size_t n, long long v);
const char *kcw_log_fmt_num(char *buf, size_t n, double v);
int kcw_log_enabled(kcw_log_level_t level);

#endif
