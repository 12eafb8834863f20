/* text.h: text from peers made safe to print on a terminal or in a log line.
 *
 * Connector names, traces and error messages come from Connect workers and
 * config files; printed raw, an ESC sequence in one rewrites the operator's
 * terminal and a CR forges a log line. kcw_text_escape writes every control
 * byte (C0, DEL, C1) and every byte that is not part of valid UTF-8 as an
 * escape, so what reaches the output is printable UTF-8. */
#ifndef KCWATCH_TEXT_H
#define KCWATCH_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Also escape '"' and '\\' (for a double-quoted value, as logfmt writes). */
#define KCW_TEXT_QUOTED 1u

/* A copy of s (NULL: "") with \n \r \t as those two-character escapes and
 * every other control byte, C1 character or invalid UTF-8 byte as \xHH.
 * NULL on allocation failure. */
char *kcw_text_escape(const char *s, unsigned flags);

/* true when kcw_text_escape(s, 0) would change s. */
bool kcw_text_needs_escape(const char *s);

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates or
 * code points past U+10FFFF) at s[0..n), or 0 when it is not one. */
size_t kcw_text_utf8_len(const unsigned char *s, size_t n);

/* The candidate closest to word by edit distance (insertions, deletions,
 * substitutions and swaps of neighbours, case-insensitive), for "did you
 * mean" hints: NULL when none is close enough (at most 1 edit for words of
 * up to 4 characters, 2 up to 8, 3 beyond) or word is longer than 64
 * bytes. candidates is NULL-terminated; the first of equally close wins. */
const char *kcw_text_nearest(const char *word, const char *const *candidates);

#endif
