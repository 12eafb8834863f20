/* json_scan.h: where the values of a large JSON body lie, without a tree.
 *
 * A module that reads a large body piece by piece (status_index.c: a Connect
 * poll connector by connector) lets jsmn (Debian libjsmn-dev) tokenize the
 * body: it checks brackets, strings and escapes and says where each value
 * starts and ends. The pieces then go to jansson. jsmn checks less than jansson between tokens,
 * so the few bytes there (whitespace, ',' and ':') are checked with
 * kcw_json_gap_ok. Whatever jsmn or these checks refuse goes to jansson's
 * whole-body reading, which gives the exact error. prom.c, which lets jansson
 * itself stop after each series, takes only KCW_JSON_MAX_DEPTH and
 * kcw_json_blank from here.
 *
 * Tokens of strings span their text without the quotes. */
#ifndef KCWATCH_JSON_SCAN_H
#define KCWATCH_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* Parent links keep jsmn linear: without them it walks back over every
 * earlier token to find the enclosing container at each ',' and closing
 * bracket, which is quadratic in the number of elements (84% of kcwatch's
 * CPU at 3,000 connectors under callgrind). */
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#ifndef KCW_JSON_SCAN_IMPL
#define JSMN_HEADER
#endif
#include <jsmn.h>

/* jansson's JSON_PARSER_MAX_DEPTH (not in its public header). */
#define KCW_JSON_MAX_DEPTH 2048

/* Tokenizes body[0, len): 0 with *tok (malloc'd, the caller frees) and *n
 * set; 1 when the body is not for scanning (jsmn refuses it, it is larger
 * than INT_MAX, or nests deeper than jansson accepts: a piece read alone
 * would be shallower than the whole); -ENOMEM. */
int kcw_json_scan(const char *body, size_t len, jsmntok_t **tok, int *n);

/* The index of the first token after token t and everything inside it. */
int kcw_json_tok_skip(const jsmntok_t *tok, int n, int t);

/* JSON's whitespace: ' ', '\t', '\n', '\r'. */
bool kcw_json_blank(char c);

/* body[from, to) holds only whitespace around exactly one sep (around none
 * when sep is 0). */
bool kcw_json_gap_ok(const char *body, size_t from, size_t to, char sep);

#endif
