/* common.c: the timing check and helpers of fuzz.h. */
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/log.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void quiet_logs(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    /* Parsers log what they reject; a fuzzer would drown in it. */
    FILE *null_out = fopen("/dev/null", "w");
    if (null_out)
        kcw_log_setup(KCW_LOG_LOGFMT, KCW_LOG_ERROR, null_out);
}

static int too_slow(int64_t ns, size_t size)
{
    int64_t per_byte = ns / (int64_t)(size ? size : 1);
    return ns > (int64_t)KCW_FUZZ_SLOW_MS * 1000000 && per_byte > KCW_FUZZ_NS_PER_BYTE;
}

int kcw_fuzz_timed(void (*fn)(const uint8_t *data, size_t size), const uint8_t *data,
                   size_t size)
{
    quiet_logs();
    int64_t best = INT64_MAX;
    for (int run = 0; run < 3; run++) {
        int64_t t0 = now_ns();
        fn(data, size);
        int64_t ns = now_ns() - t0;
        if (ns < best)
            best = ns;
        if (!too_slow(best, size))
            return 0;
    }
    fprintf(stderr,
            "kcwatch fuzz: superlinear input: %zu bytes took %.1f ms at best of 3 (%lld ns/byte, "
            "limit %d)\n",
            size, (double)best / 1e6, (long long)(best / (int64_t)(size ? size : 1)),
            KCW_FUZZ_NS_PER_BYTE);
    abort();
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

const char **kcw_fuzz_lines(char *text, size_t *n_out)
{
    size_t n = 0, cap = 16;
    const char **lines = malloc(cap * sizeof(*lines));
    if (!lines)
        abort();
    for (char *line = text, *next; line && n < KCW_FUZZ_MAX_LINES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (n == cap) {
            const char **more = realloc(lines, 2 * cap * sizeof(*lines));
            if (!more)
                abort();
            lines = more;
            cap *= 2;
        }
        lines[n++] = line;
    }
    *n_out = n;
    return lines;
}
