/* url.h: URLs as kcwatch uses and prints them, through libcurl's URL API.
 *
 * A configured URL may carry a path prefix, a query (an access token a proxy
 * wants) and userinfo (credentials). Request paths are joined onto its path
 * and its query is kept (kcw_url_join); userinfo is taken out and becomes
 * HTTP basic auth (kcw_url_credentials); and nothing prints a URL without
 * kcw_url_redact, which hides userinfo and every query value. */
#ifndef KCWATCH_URL_H
#define KCWATCH_URL_H

#include <stdbool.h>
#include <stddef.h>

/* What replaces a hidden userinfo or query value. */
#define KCW_URL_REDACTED "xxxxx"

/* base with path appended to its path (one '/' between them) and path's
 * "?query", if any, after base's own query ('&' between). The fragment is
 * dropped; userinfo stays. NULL when base is not an absolute URL or on
 * allocation failure. Free with free(). */
char *kcw_url_join(const char *base, const char *path);

/* s percent-encoded for a query value: RFC 3986 unreserved characters stay,
 * every other byte (UTF-8 included) becomes %XX; with plus_space a space is
 * '+' (Go's url.QueryEscape), else %20. NULL on allocation failure. */
char *kcw_url_escape(const char *s, bool plus_space);

/* The generatorURL of a PromQL rule's alerts, as Prometheus makes it: base
 * (Prometheus' external URL) + "/graph?g0.expr=" + QueryEscape(expr) +
 * "&g0.tab=1", the expression trimmed of surrounding blanks. A connect:
 * rule's (expr NULL): base (kcwatch's external URL) +
 * "/api/v1/rules?rule_group[]=GROUP&rule_name[]=ALERT", its entry in
 * kcwatch's API. A trailing '/' of base does not double. NULL when base is
 * NULL or empty, or on allocation failure. */
char *kcw_url_generator(const char *base, const char *expr, const char *group, const char *alert);

/* Splits userinfo out of url: *bare is url without it; *user and *password
 * are percent-decoded (NULL when absent). 0, -EINVAL (not a URL) or
 * -ENOMEM. Free the outputs with free(). */
int kcw_url_credentials(const char *url, char **bare, char **user, char **password);

/* A copy of url safe to print: userinfo becomes KCW_URL_REDACTED, so does
 * every query value (names stay) except those of the parameters kcwatch's own
 * Connect requests carry (includeTasks, onlyFailed, expand); the fragment is
 * dropped. A string libcurl
 * cannot parse keeps only what precedes any '@', '?' or '#'. NULL on
 * allocation failure. */
char *kcw_url_redact(const char *url);

/* Registers the secrets a configured URL carries with the log's redaction
 * (kcw_log_add_secret): its userinfo (user and password, decoded and as
 * written) and every query value of KCW_URL_SECRET_MIN or more characters,
 * so a peer that echoes them back into an error body is masked too. Call it
 * for each URL of a config when a client is built from it. */
#define KCW_URL_SECRET_MIN 4
void kcw_url_register_secrets(const char *url);

/* kcw_url_redact into buf (truncated, always terminated). Returns buf. */
const char *kcw_url_redact_buf(const char *url, char *buf, size_t n);

/* A copy of free text (an error message, a log value) with every
 * "scheme://..." in it redacted as by kcw_url_redact; a URL runs to the next
 * space, quote, '<', '>' or control byte. NULL on allocation failure. */
char *kcw_url_redact_text(const char *text);

#endif
