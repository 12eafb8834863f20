/* status_index.h: incremental parsing of `GET /connectors?expand=status`.
 *
 * At 10,000 connectors the body is a few MB and usually only one connector
 * changed since the last poll. The index remembers the last body and where
 * each member (one connector) was in it. kcw_status_index_apply splits the
 * next body into its top-level members with jsmn (a tokenizer: it finds
 * where values start and end and checks the structure), compares each
 * member's bytes with the same connector's bytes in the last body, and hands
 * only new or changed members to jansson (kcw_connect_parse_member). The
 * connectors that come out are exactly those kcw_connect_parse_expand gives
 * for the same body, and the same bodies are rejected (tests/unit/
 * test_status_index.c proves it on randomised bodies).
 *
 * Pure: no I/O, no loop. */
#ifndef KCWATCH_STATUS_INDEX_H
#define KCWATCH_STATUS_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "kcwatch/connect.h"

typedef struct kcw_status_index kcw_status_index_t;

/* NULL on -ENOMEM. */
kcw_status_index_t *kcw_status_index_new(void);
void kcw_status_index_free(kcw_status_index_t *ix); /* NULL: no-op */
/* Forgets the last body: the next apply parses every member. */
void kcw_status_index_reset(kcw_status_index_t *ix);
/* Whether body is byte-identical to the last applied one. */
bool kcw_status_index_same(const kcw_status_index_t *ix, const char *body, size_t len);

typedef struct kcw_status_delta {
    kcw_connector_status_t *connectors; /* sorted by name; caller frees (each, then array) */
    size_t n_connectors;
    size_t n_parsed;     /* members handed to jansson (new or changed) */
    char **parsed_names; /* their names (caller frees each and the array) */
} kcw_status_delta_t;

/* Parses body against the last applied one. prev / n_prev is the caller's
 * model from the last apply, sorted by name: a connector whose member bytes
 * did not change is moved out of prev into the result (its prev slot is
 * left zeroed, name NULL) with every field as it was, so data the caller
 * added (info, missing_polls) comes along. Returns 0 and fills out (zeroed
 * first; the index then remembers body), 1 for a plain JSON array (worker
 * < 2.3; nothing done, the index is reset), -EINVAL with err on a body
 * kcw_connect_parse_expand rejects (the index is reset, prev untouched),
 * -ENOMEM. */
int kcw_status_index_apply(kcw_status_index_t *ix, const char *body, size_t len,
                           kcw_connector_status_t *prev, size_t n_prev, kcw_status_delta_t *out,
                           char *err, size_t errlen);
void kcw_status_delta_clear(kcw_status_delta_t *d);

#endif
