/* fuzz_prom_response.c: the Prometheus /api/v1/query response parser.
 *
 * Answers of 64 KiB and more are read series by series (prom.c); libFuzzer's
 * inputs are smaller, so two large answers are also built from each input:
 * the input followed by blanks, and the input as one element repeated in a
 * vector's result array. For those the series-by-series reading must give
 * exactly what the whole-tree reading gives: the same result or the same
 * error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kcwatch/prom.h"

#define LARGE (64u * 1024 + 64)
#define PRE "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
#define POST "]}}"

static void differ(const char *what)
{
    fprintf(stderr, "the two readings differ: %s\n", what);
    abort();
}

static void readings_agree(const char *body, size_t len)
{
    kcw_prom_result_t *a = NULL, *w = NULL;
    kcw_prom_error_t ea, ew;
    int ra = kcw_prom_parse_response(body, len, &a, &ea);
    int rw = kcw_prom_parse_whole(body, len, &w, &ew);
    if (ra != rw)
        differ("return code");
    if (rw < 0) {
        if (ea.kind != ew.kind || strcmp(ea.msg, ew.msg) != 0)
            differ("error");
        return;
    }
    if (a->type != w->type || a->n != w->n || a->n_warnings != w->n_warnings ||
        a->n_infos != w->n_infos)
        differ("shape");
    for (size_t i = 0; i < w->n; i++)
        if (!kcw_labels_equal(&a->samples[i].metric, &w->samples[i].metric) ||
            memcmp(&a->samples[i].value, &w->samples[i].value, sizeof(double)) != 0 ||
            a->samples[i].ts_ms != w->samples[i].ts_ms)
            differ("series");
    for (size_t i = 0; i < w->n_warnings; i++)
        if (strcmp(a->warnings[i], w->warnings[i]) != 0)
            differ("warnings");
    for (size_t i = 0; i < w->n_infos; i++)
        if (strcmp(a->infos[i], w->infos[i]) != 0)
            differ("infos");
    kcw_prom_result_free(a);
    kcw_prom_result_free(w);
}

static void one_input(const uint8_t *data, size_t size)
{
    kcw_prom_result_t *res = NULL;
    kcw_prom_error_t err;
    if (kcw_prom_parse_response((const char *)data, size, &res, &err) == 0)
        kcw_prom_result_free(res);

    size_t cap = size + LARGE + sizeof(PRE) + sizeof(POST);
    char *big = malloc(cap);
    if (!big)
        return;
    /* The input, then blanks. */
    memcpy(big, data, size);
    memset(big + size, ' ', LARGE);
    readings_agree(big, size + LARGE);
    /* The input as each element of a result array. */
    if (size > 0) {
        size_t len = strlen(PRE);
        memcpy(big, PRE, len);
        for (size_t i = 0; len + size + 1 + strlen(POST) <= cap && len < LARGE; i++) {
            if (i)
                big[len++] = ',';
            memcpy(big + len, data, size);
            len += size;
        }
        if (len + strlen(POST) <= cap) {
            memcpy(big + len, POST, strlen(POST));
            readings_agree(big, len + strlen(POST));
        }
    }
    free(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
