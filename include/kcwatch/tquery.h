/* tquery.h: the query function of rule templates in the daemon.
 *
 * Prometheus runs a template's {{ query "..." }} synchronously while it
 * renders the annotation. kcwatch's loop must not wait for Prometheus, so
 * the daemon answers from a cache: a result younger than the TTL (the
 * evaluation interval) is returned as is; a missing or older one starts an
 * instant query on the loop (through kcw_prom, with prometheus.timeout) and
 * the render gets the older result if there is one, else the error "query
 * pending". The next evaluation, one interval later, renders with the
 * answer, so an annotation shows Prometheus' data at most one interval old
 * and, for a brand-new expression, from the second evaluation on. Bounded:
 * KCW_TQUERY_MAX_ENTRIES distinct expressions, KCW_TEMPLATE_MAX_SAMPLES
 * samples each; entries unused for ten TTLs are dropped. */
#ifndef KCWATCH_TQUERY_H
#define KCWATCH_TQUERY_H

#include <stddef.h>
#include <stdint.h>

#include "kcwatch/config.h"
#include "kcwatch/http_client.h"
#include "kcwatch/template.h"

#define KCW_TQUERY_MAX_ENTRIES 256

typedef struct kcw_tquery kcw_tquery_t;

/* now_ms: the wall clock (unix ms) the cache ages by. NULL when conf has no
 * URL or on ENOMEM. */
kcw_tquery_t *kcw_tquery_new(kcw_http_t *http, const kcw_prometheus_conf_t *conf, int64_t ttl_ms,
                             int64_t (*now_ms)(void));
/* kcw_template_env_t.query with arg = the kcw_tquery_t. -EAGAIN ("query
 * pending") while the first answer is out; -EIO with Prometheus' error. */
int kcw_tquery_query(void *arg, const char *expr, const kcw_template_sample_t **samples, size_t *n,
                     char *err, size_t errlen);
/* Queries in flight (tests). */
size_t kcw_tquery_pending(const kcw_tquery_t *q);
/* Cancels what is in flight and frees. NULL is a no-op. */
void kcw_tquery_free(kcw_tquery_t *q);

#endif
