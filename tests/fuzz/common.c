/* common.c: the timing check and helpers of fuzz.h. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/log.h"

static struct timespec started;

static int64_t elapsed_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - started.tv_sec) * 1000000000 + (now.tv_nsec - started.tv_nsec);
}

void kcw_fuzz_begin(void)
{
    static int quiet;
    if (!quiet) {
        /* Parsers log what they reject; a fuzzer would drown in it. */
        static FILE *null_out;
        null_out = fopen("/dev/null", "w");
        if (null_out)
            kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, null_out);
        quiet = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &started);
}

void kcw_fuzz_end(size_t size)
{
    int64_t ns = elapsed_ns();
    int64_t per_byte = ns / (int64_t)(size ? size : 1);
    if (ns > (int64_t)KCW_FUZZ_SLOW_MS * 1000000 && per_byte > KCW_FUZZ_NS_PER_BYTE) {
        fprintf(stderr,
                "kcwatch fuzz: superlinear input: %zu bytes took %.1f ms (%lld ns/byte, "
                "limit %d)\n",
                size, (double)ns / 1e6, (long long)per_byte, KCW_FUZZ_NS_PER_BYTE);
        abort();
    }
}

char *kcw_fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
