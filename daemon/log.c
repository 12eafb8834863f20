/* log.c: structured log lines (logfmt or JSON) with secret redaction.
 *
 * One line per call: time, level, msg, then the caller's key/value pairs.
 * The settings below are the one piece of process-wide state the daemon keeps:
 * every module logs, and threading a logger through each call would only add
 * noise. Secrets registered at config load are masked in every value, and
 * so are the userinfo and query values of every URL in a message or value.
 *
 * The secret list is bounded: it keeps the MAX_SECRETS most recently
 * registered. Each config load registers all of its secrets again, which
 * makes them the newest, so rotating secrets forever drops the oldest ones
 * (no longer in any config) rather than refusing new ones. */
#include "kcwatch/log.h"

#include "kcwatch/labels_json.h"
#include "kcwatch/text.h"
#include "kcwatch/url.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SECRETS 1024
#define MAX_LINE (64 * 1024)

static struct {
    kcw_log_format_t format;
    kcw_log_level_t level;
    FILE *out;
    char *secrets[MAX_SECRETS];
    size_t n_secrets;
    int pin_format; /* the command line's, or -1 */
    int pin_level;
} logger = {KCW_LOG_LOGFMT, KCW_LOG_INFO, NULL, {0}, 0, -1, -1};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void kcw_log_setup(kcw_log_format_t format, kcw_log_level_t level, FILE *out)
{
    logger.out = out;
    kcw_log_configure(format, level);
}

void kcw_log_configure(kcw_log_format_t format, kcw_log_level_t level)
{
    logger.format = logger.pin_format >= 0 ? (kcw_log_format_t)logger.pin_format : format;
    logger.level = logger.pin_level >= 0 ? (kcw_log_level_t)logger.pin_level : level;
}

void kcw_log_pin(int format, int level)
{
    logger.pin_format = format;
    logger.pin_level = level;
    kcw_log_configure(logger.format, logger.level);
}

int kcw_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return KCW_LOG_WARN;
    return -1;
}

void kcw_log_add_secret(const char *secret)
{
    if (!secret || !*secret)
        return;
    /* Known already: move it to the newest end. */
    for (size_t i = 0; i < logger.n_secrets; i++) {
        if (strcmp(logger.secrets[i], secret) == 0) {
            char *keep = logger.secrets[i];
            memmove(&logger.secrets[i], &logger.secrets[i + 1],
                    (logger.n_secrets - i - 1) * sizeof(logger.secrets[0]));
            logger.secrets[logger.n_secrets - 1] = keep;
            return;
        }
    }
    char *copy = strdup(secret);
    if (!copy)
        return;
    if (logger.n_secrets == MAX_SECRETS) {
        free(logger.secrets[0]); /* the least recently registered */
        memmove(&logger.secrets[0], &logger.secrets[1],
                (MAX_SECRETS - 1) * sizeof(logger.secrets[0]));
        logger.n_secrets--;
    }
    logger.secrets[logger.n_secrets++] = copy;
}

size_t kcw_log_secret_count(void)
{
    return logger.n_secrets;
}

void kcw_log_reset(void)
{
    for (size_t i = 0; i < logger.n_secrets; i++)
        free(logger.secrets[i]);
    logger.n_secrets = 0;
    logger.format = KCW_LOG_LOGFMT;
    logger.level = KCW_LOG_INFO;
    logger.out = NULL;
    logger.pin_format = -1;
    logger.pin_level = -1;
}

int kcw_log_enabled(kcw_log_level_t level)
{
    return level >= logger.level;
}

/* Copy of v with every registered secret replaced and every URL's
 * credentials and query values hidden; caller frees. */
static char *redact(const char *v)
{
    char *s = v && strstr(v, "://") ? kcw_url_redact_text(v) : strdup(v ? v : "");
    if (!s)
        return NULL;
    for (size_t i = 0; i < logger.n_secrets; i++) {
        const char *sec = logger.secrets[i];
        size_t sl = strlen(sec);
        char *hit;
        while ((hit = strstr(s, sec)) != NULL) {
            const char *mask = "<redacted>";
            size_t ml = strlen(mask), len = strlen(s);
            char *n = malloc(len - sl + ml + 1);
            if (!n)
                return s;
            size_t pre = (size_t)(hit - s);
            memcpy(n, s, pre);
            memcpy(n + pre, mask, ml);
            strcpy(n + pre + ml, hit + sl);
            free(s);
            s = n;
        }
    }
    return s;
}

char *kcw_log_redact(const char *text)
{
    return redact(text);
}

const char *kcw_log_fmt_int(char *buf, size_t n, long long v)
{
    snprintf(buf, n, "%lld", v);
    return buf;
}

const char *kcw_log_fmt_num(char *buf, size_t n, double v)
{
    /* %.17g round-trips; shorter when the value allows */
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, n, "%.17g", v);
    return buf;
}

typedef enum { FIELD_TEXT, FIELD_INT, FIELD_BOOL, FIELD_NUM } field_type_t;

/* The type a key's marker byte gives, with *key moved past the marker. */
static field_type_t field_type(const char **key)
{
    field_type_t t;
    switch ((*key)[0]) {
    case '\x01': t = FIELD_INT; break;
    case '\x02': t = FIELD_BOOL; break;
    case '\x03': t = FIELD_NUM; break;
    default: return FIELD_TEXT;
    }
    (*key)++;
    return t;
}

/* A typed value as JSON; the text form (redacted) when it does not parse,
 * or for a number JSON cannot hold (NaN, infinities). */
static json_t *json_field(field_type_t t, const char *v)
{
    char *end;
    switch (t) {
    case FIELD_INT: {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (end != v && !*end && errno == 0)
            return json_integer(n);
        break;
    }
    case FIELD_NUM: {
        double d = strtod(v, &end);
        if (end != v && !*end && isfinite(d))
            return json_real(d);
        break;
    }
    case FIELD_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
            return json_boolean(v[0] == 't');
        break;
    case FIELD_TEXT: break;
    }
    return NULL;
}

static void append(char *buf, size_t *len, const char *s, size_t n)
{
    if (*len + n >= MAX_LINE - 1)
        n = MAX_LINE - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* key=value, the value quoted when it has to be; control bytes, CR and
 * invalid UTF-8 are escaped so one call is one line whatever a peer sent. */
static void append_logfmt_pair(char *buf, size_t *len, const char *key, const char *val)
{
    append(buf, len, " ", 1);
    append(buf, len, key, strlen(key));
    append(buf, len, "=", 1);
    bool quote = *val == '\0' || strpbrk(val, " =\"\\") != NULL || kcw_text_needs_escape(val);
    if (!quote) {
        append(buf, len, val, strlen(val));
        return;
    }
    char *esc = kcw_text_escape(val, KCW_TEXT_QUOTED);
    append(buf, len, "\"", 1);
    if (esc)
        append(buf, len, esc, strlen(esc));
    append(buf, len, "\"", 1);
    free(esc);
}

void kcw_log(kcw_log_level_t level, const char *msg, ...)
{
    if (level < logger.level)
        return;
    FILE *out = logger.out ? logger.out : stderr;
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", now.tv_nsec / 1000000);
    const char *lvl = level_names[level < 0 || level > KCW_LOG_ERROR ? KCW_LOG_ERROR : level];

    va_list ap;
    va_start(ap, msg);
    if (logger.format == KCW_LOG_JSON) {
        json_t *o = json_object();
        if (!o) {
            va_end(ap);
            return;
        }
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(lvl));
        char *m = redact(msg);
        json_object_set_new(o, "msg", kcw_json_text(m));
        free(m);
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            field_type_t t = field_type(&k);
            json_t *typed = t != FIELD_TEXT && v ? json_field(t, v) : NULL;
            if (typed) {
                json_object_set_new(o, k, typed);
                continue;
            }
            char *rv = redact(v);
            /* Invalid UTF-8 becomes U+FFFD: the field stays. */
            json_object_set_new(o, k, kcw_json_text(rv));
            free(rv);
        }
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line) {
            fprintf(out, "%s\n", line);
            free(line);
        }
        json_decref(o);
    } else {
        char *buf = malloc(MAX_LINE);
        if (!buf) {
            va_end(ap);
            return;
        }
        size_t len = 0;
        buf[0] = '\0';
        append(buf, &len, "ts=", 3);
        append(buf, &len, ts, strlen(ts));
        append(buf, &len, " level=", 7);
        append(buf, &len, lvl, strlen(lvl));
        char *m = redact(msg);
        append_logfmt_pair(buf, &len, "msg", m ? m : "");
        free(m);
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            field_type(&k); /* logfmt has no types: the marker only goes */
            char *rv = redact(v);
            append_logfmt_pair(buf, &len, k, rv ? rv : "");
            free(rv);
        }
        fprintf(out, "%s\n", buf);
        free(buf);
    }
    va_end(ap);
    fflush(out);
}
