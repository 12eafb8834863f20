/* matchers.h: Alertmanager label matchers.
 *
 * A matcher is NAME OP VALUE with OP one of = != =~ !~; regexes are PCRE2 and
 * fully anchored, as in Prometheus and Alertmanager (`=~"a|b"` matches "a" or
 * "b", never "xa"). A label the set lacks has the value "" for matching, so
 * `team!="x"` matches an alert without a team label and `team=""` matches only
 * one without it.
 *
 * Two ways in, both yielding the same kcw_matcher_t:
 * - the string form of Alertmanager's config and amtool: 'severity="critical"',
 *   'cluster=~"prod-.*"', or several at once: '{a="1", b!~"x|y"}'; values may
 *   be double-quoted (with \" \\ \n escapes) or bare;
 * - the structured form of Alertmanager's API: name, value, isRegex, isEqual.
 * Pure: no I/O. Used by routes, silences, inhibition rules and remediation. */
#ifndef KCWATCH_MATCHERS_H
#define KCWATCH_MATCHERS_H

#include <stdbool.h>
#include <stddef.h>

#include "kcwatch/labels.h"

#define KCW_MATCHERS_MAX 64 /* per list: a bound on work per alert */

typedef enum {
    KCW_MATCH_EQ = 0, /* =  */
    KCW_MATCH_NE,     /* != */
    KCW_MATCH_RE,     /* =~ */
    KCW_MATCH_NRE,    /* !~ */
} kcw_match_op_t;

typedef struct kcw_matcher {
    char *name;  /* owned */
    char *value; /* owned: the text, or the regex source as written */
    kcw_match_op_t op;
    struct kcw_regex *re; /* compiled for =~ and !~, else NULL */
} kcw_matcher_t;

typedef struct kcw_matchers {
    kcw_matcher_t *items;
    size_t n, cap;
} kcw_matchers_t;

/* "=" "!=" "=~" "!~". */
const char *kcw_match_op_text(kcw_match_op_t op);

/* Appends one matcher. name must be a label name ([a-zA-Z_][a-zA-Z0-9_]*);
 * regexes must compile. 0, -EINVAL with a message in err, -E2BIG past
 * KCW_MATCHERS_MAX, -ENOMEM. */
int kcw_matchers_add(kcw_matchers_t *ms, const char *name, kcw_match_op_t op, const char *value,
                     char *err, size_t errlen);
/* Parses the string form (one matcher or a {...} list of them, comma
 * separated) and appends what it holds. On error nothing is appended and err
 * says what is wrong and at which character (1-based) of text. */
int kcw_matchers_parse(kcw_matchers_t *ms, const char *text, char *err, size_t errlen);

bool kcw_matcher_matches(const kcw_matcher_t *m, const kcw_labels_t *labels);
/* True when every matcher matches (an empty list matches everything). */
bool kcw_matchers_match(const kcw_matchers_t *ms, const kcw_labels_t *labels);
/* True when the list would match an alert with no labels at all (Alertmanager
 * refuses such silences: they would mute everything). */
bool kcw_matchers_match_empty(const kcw_matchers_t *ms);

/* The string form of one matcher, value double-quoted and escaped:
 * severity="critical". Returns a malloc'd string or NULL. */
char *kcw_matcher_format(const kcw_matcher_t *m);
/* {a="1", b=~"x"}; malloc'd or NULL. */
char *kcw_matchers_format(const kcw_matchers_t *ms);

/* Deep copy into dst (empty/zeroed). 0 or -ENOMEM. */
int kcw_matchers_copy(kcw_matchers_t *dst, const kcw_matchers_t *src);
/* Frees the items; the struct is zeroed and reusable. */
void kcw_matchers_clear(kcw_matchers_t *ms);

#endif
