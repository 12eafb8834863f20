/* rfc3339.c: RFC 3339 timestamps (see rfc3339.h). gmtime_r/timegm do the
 * calendar arithmetic; this file only checks the layout. */
#define _DEFAULT_SOURCE /* timegm */
#include "kcwatch/rfc3339.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void kcw_rfc3339_format(int64_t ms, char *buf, size_t n)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, n, "0001-01-01T00:00:00Z");
        return;
    }
    size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + len, n - len, ".%03dZ", (int)frac);
}

static int digits(const char *s, int count, int *out)
{
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int kcw_rfc3339_parse(const char *text, int64_t *ms)
{
    if (!text || strlen(text) < 20)
        return -EINVAL;
    const char *s = text;
    int year, mon, day, hour, min, sec;
    if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &hour) ||
        s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -EINVAL;
    s += 19;
    int frac_ms = 0;
    if (*s == '.') {
        s++;
        int nd = 0;
        while (isdigit((unsigned char)*s)) {
            if (nd < 3)
                frac_ms = frac_ms * 10 + (*s - '0');
            nd++;
            s++;
        }
        if (nd == 0)
            return -EINVAL;
        for (; nd < 3; nd++)
            frac_ms *= 10;
    }
    int offset_min = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om;
        if (digits(s + 1, 2, &oh) || s[3] != ':' || digits(s + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        offset_min = (oh * 60 + om) * (*s == '-' ? -1 : 1);
        s += 6;
    } else {
        return -EINVAL;
    }
    if (*s)
        return -EINVAL;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 31 February into March: refuse what it changed. */
    if (tm.tm_mday != day || tm.tm_mon != mon - 1)
        return -EINVAL;
    *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return 0;
}
