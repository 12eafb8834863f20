/* duration.c: Prometheus-style durations (see duration.h).
 *
 * A duration is one or more <digits><unit> terms, units from largest to
 * smallest and each at most once ("1h30m", "250ms"); "0" alone means zero.
 * Values are kept in milliseconds; anything that does not fit an int64 is
 * -ERANGE rather than a silently wrapped number. */
#include "kcwatch/duration.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct unit {
    const char *name;
    int64_t ms;
    bool only_exact; /* formatted only when it divides the value exactly */
} unit_t;

#define MS_PER_DAY (24LL * 60 * 60 * 1000)

/* Largest first: parsing enforces this order, formatting walks it.
 * Years and weeks are printed only when exact, as Prometheus does, because
 * "90d" reads better than "12w6d". */
static const unit_t units[] = {
    {"y", 365 * MS_PER_DAY, true},
    {"w", 7 * MS_PER_DAY, true},
    {"d", MS_PER_DAY, false},
    {"h", 60LL * 60 * 1000, false},
    {"m", 60LL * 1000, false},
    {"s", 1000, false},
    {"ms", 1, false},
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

/* Index of the unit that s starts with ("ms" wins over "m"), or -1. */
static int unit_at(const char *s, size_t *len)
{
    int best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < N_UNITS; i++) {
        size_t l = strlen(units[i].name);
        if (l > best_len && strncmp(s, units[i].name, l) == 0) {
            best = (int)i;
            best_len = l;
        }
    }
    *len = best_len;
    return best;
}

int kcw_duration_parse(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    int64_t total = 0;
    int last_unit = -1;
    bool overflow = false;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            int d = *p - '0';
            if (v > (INT64_MAX - d) / 10)
                overflow = true; /* keep scanning: a syntax error still wins */
            else
                v = v * 10 + d;
            p++;
        }
        size_t ul;
        int u = unit_at(p, &ul);
        if (u < 0 || u <= last_unit)
            return -EINVAL;
        last_unit = u;
        p += ul;
        if (overflow)
            continue;
        if (v > INT64_MAX / units[u].ms) {
            overflow = true;
            continue;
        }
        int64_t term = v * units[u].ms;
        if (total > INT64_MAX - term) {
            overflow = true;
            continue;
        }
        total += term;
    }
    if (overflow)
        return -ERANGE;
    *out_ms = total;
    return 0;
}

char *kcw_duration_format(int64_t ms, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    size_t len = 0;
    buf[0] = '\0';
    /* Work on the magnitude as unsigned so INT64_MIN needs no special case. */
    uint64_t rest = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (rest == 0) {
        snprintf(buf, n, "0s");
        return buf;
    }
    if (ms < 0)
        len += (size_t)snprintf(buf, n, "-");
    for (size_t i = 0; i < N_UNITS && rest > 0; i++) {
        uint64_t um = (uint64_t)units[i].ms;
        if (units[i].only_exact && rest % um != 0)
            continue;
        uint64_t v = rest / um;
        if (v == 0)
            continue;
        rest -= v * um;
        if (len < n)
            len += (size_t)snprintf(buf + len, n - len, "%llu%s", (unsigned long long)v,
                                    units[i].name);
    }
    return buf;
}
