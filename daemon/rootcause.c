/* rootcause.c: a Java stack trace -> a short root-cause key (see rootcause.h).
 *
 * One pass over the (capped) trace splits it into sections: the first line
 * opens the top section, every "Caused by:" at column 0 opens the next one
 * (Throwable.printStackTrace prints the cause chain that way; the causes of
 * suppressed exceptions are indented and belong to no section of ours). The
 * last section's header is the root cause; the application frames come from
 * the deepest section that has any. Only the header's first line goes through
 * the placeholder patterns, so the regex work is bounded by
 * KCW_ROOTCAUSE_MAX_MESSAGE whatever the trace's size. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kcwatch/rootcause.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASS_MAX 200u
#define FRAME_MAX 160u
#define HEADER_MAX (CLASS_MAX + KCW_ROOTCAUSE_MAX_MESSAGE + 2u)

/* Placeholders, applied in this order: a later pattern never sees digits a
 * former one replaced. Byte mode (no PCRE2_UTF): the patterns are ASCII and a
 * cut message may end inside a UTF-8 sequence. */
static const struct {
    const char *pattern;
    const char *replacement;
} placeholders[] = {
    /* ISO-8601 / log4j timestamps, with optional seconds, fraction, zone */
    {"\\b\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(?::\\d{2}(?:[.,]\\d+)?)?(?:Z|[+-]\\d{2}:?\\d{2})?",
     "<ts>"},
    /* scheme://[user@]host[:port] (HTTP, JDBC, schema registry ...) */
    {"\\b([A-Za-z][A-Za-z0-9+.-]*://)(?:[^\\s/@]+@)?[^\\s/:?#,;'\")\\]]+(?::\\d+)?", "$1<host>"},
    /* host:port, host/1.2.3.4:port (Java's InetSocketAddress), /1.2.3.4:port, [v6]:port */
    {"(?<![\\w.-])(?:[A-Za-z0-9][A-Za-z0-9.-]*(?:/\\d{1,3}(?:\\.\\d{1,3}){3})?|/\\d{1,3}(?:\\.\\d{1,3}){3}"
     "|\\[[0-9A-Fa-f:.]+\\]):\\d{1,5}\\b",
     "<host>:<port>"},
    /* Java's "host/1.2.3.4" without a port */
    {"(?<![\\w.-])[A-Za-z0-9][A-Za-z0-9.-]*/\\d{1,3}(?:\\.\\d{1,3}){3}\\b", "<host>"},
    {"\\b\\d{1,3}(?:\\.\\d{1,3}){3}\\b", "<ip>"},
    {"\\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\\b", "<id>"},
    {"\\b0[xX][0-9A-Fa-f]+\\b|\\b(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{6,}\\b",
     "<hex>"},
    /* numbers not glued to a word before them: offsets, partitions
     * ("orders-3"), counts, durations ("60000ms"); "log4j" or "v2" stay */
    {"(?<![A-Za-z_$])\\d+(?:\\.\\d+)*", "N"},
};
#define N_PLACEHOLDERS (sizeof(placeholders) / sizeof(placeholders[0]))

/* "qualified.Class" then optionally ": message" */
#define HEADER_PATTERN "^([A-Za-z_$][\\w$]*(?:\\.[A-Za-z_$][\\w$]*)+)(?::\\s*(.*))?$"
/* "\tat [module/][loader//]pkg.Class.method(File.java:12)": the method name */
#define FRAME_PATTERN "^\\s+at\\s+(?:[^\\s/(]*/)*([^\\s/(]+)\\("
#define QUALIFIED_PATTERN "^[A-Za-z_$][\\w$]*(?:\\.[\\w$<>]+)+$"
#define UNKNOWN_HOST_PATTERN "^[^\\s:]+"

struct kcw_rootcause {
    pcre2_code *placeholder[N_PLACEHOLDERS];
    pcre2_code *header, *frame, *qualified, *unknown_host;
};

static pcre2_code *compile(const char *pattern)
{
    int code = 0;
    PCRE2_SIZE offset = 0;
    return pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
}

kcw_rootcause_t *kcw_rootcause_new(void)
{
    kcw_rootcause_t *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    bool ok = true;
    for (size_t i = 0; i < N_PLACEHOLDERS; i++)
        ok = ok && (rc->placeholder[i] = compile(placeholders[i].pattern)) != NULL;
    ok = ok && (rc->header = compile(HEADER_PATTERN)) && (rc->frame = compile(FRAME_PATTERN)) &&
         (rc->qualified = compile(QUALIFIED_PATTERN)) &&
         (rc->unknown_host = compile(UNKNOWN_HOST_PATTERN));
    if (!ok) {
        /* The patterns are constants: only memory can run out here. */
        kcw_rootcause_free(rc);
        return NULL;
    }
    return rc;
}

void kcw_rootcause_free(kcw_rootcause_t *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < N_PLACEHOLDERS; i++)
        pcre2_code_free(rc->placeholder[i]);
    pcre2_code_free(rc->header);
    pcre2_code_free(rc->frame);
    pcre2_code_free(rc->qualified);
    pcre2_code_free(rc->unknown_host);
    free(rc);
}

typedef struct span {
    const char *p;
    size_t n;
} span_t;

/* n cut to at most max bytes, not inside a UTF-8 sequence. */
static size_t utf8_cut(const char *p, size_t n, size_t max)
{
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Matches re against s[0..n); on a match, capture group g (0 when unset). */
static bool match(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, int g,
                  span_t *cap)
{
    if (pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL) < 0)
        return false;
    if (cap) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (g >= (int)pcre2_get_ovector_count(md) || ov[2 * g] == PCRE2_UNSET) {
            *cap = (span_t){s + n, 0};
        } else {
            *cap = (span_t){s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]};
        }
    }
    return true;
}

static bool app_frame(const kcw_rootcause_t *rc, pcre2_match_data *md, span_t f)
{
    static const char *const platform[] = {
        "java.", "javax.", "jdk.", "sun.", "com.sun.", "org.apache.kafka.connect.runtime.",
    };
    for (size_t i = 0; i < sizeof(platform) / sizeof(platform[0]); i++) {
        size_t len = strlen(platform[i]);
        if (f.n >= len && memcmp(f.p, platform[i], len) == 0)
            return false;
    }
    /* generated frames (lambdas' hidden classes) name no method of ours */
    return match(rc->qualified, md, f.p, f.n, 0, NULL);
}

/* *s (malloc'd, *n bytes) with every match of re replaced; -ENOMEM. */
static int substitute(const pcre2_code *re, const char *replacement, char **s, size_t *n)
{
    PCRE2_SIZE cap = *n * 2 + 64;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *out = malloc(cap + 1);
        if (!out)
            return -ENOMEM;
        PCRE2_SIZE len = cap + 1;
        int r = pcre2_substitute(re, (PCRE2_SPTR)*s, *n, 0,
                                 PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, NULL,
                                 NULL, (PCRE2_SPTR)replacement, PCRE2_ZERO_TERMINATED,
                                 (PCRE2_UCHAR *)out, &len);
        if (r >= 0) {
            free(*s);
            *s = out;
            *n = len;
            return 0;
        }
        free(out);
        if (r != PCRE2_ERROR_NOMEMORY)
            return 0; /* a match limit on odd input: keep the text as it is */
        cap = len;    /* the length it needs, terminator included */
    }
    return 0;
}

/* Whitespace runs become one space, none at either end. */
static void squeeze(char *s, size_t *n)
{
    size_t w = 0;
    bool space = false;
    for (size_t r = 0; r < *n; r++) {
        char c = s[r];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            space = w > 0;
            continue;
        }
        if (space)
            s[w++] = ' ';
        space = false;
        s[w++] = c;
    }
    s[w] = '\0';
    *n = w;
}

static int normalize_message(const kcw_rootcause_t *rc, span_t cls, span_t msg, char **out,
                             size_t *out_n)
{
    size_t n = utf8_cut(msg.p, msg.n, KCW_ROOTCAUSE_MAX_MESSAGE);
    char *s = malloc(n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, msg.p, n);
    s[n] = '\0';
    static const char unknown_host[] = "UnknownHostException";
    size_t uh = sizeof(unknown_host) - 1;
    int r = 0;
    if (cls.n >= uh && memcmp(cls.p + cls.n - uh, unknown_host, uh) == 0)
        r = substitute(rc->unknown_host, "<host>", &s, &n);
    for (size_t i = 0; r == 0 && i < N_PLACEHOLDERS; i++)
        r = substitute(rc->placeholder[i], placeholders[i].replacement, &s, &n);
    if (r < 0) {
        free(s);
        return r;
    }
    squeeze(s, &n);
    *out = s;
    *out_n = n;
    return 0;
}

typedef struct section {
    span_t header;
    span_t frames[KCW_ROOTCAUSE_FRAMES];
    size_t n_frames;
} section_t;

/* Splits the capped trace into its top section and the deepest one, and the
 * application frames of the deepest section that has any. */
static void scan(const kcw_rootcause_t *rc, pcre2_match_data *md, const char *trace,
                 section_t *root, section_t *with_frames)
{
    size_t len = strnlen(trace, KCW_ROOTCAUSE_MAX_INPUT);
    const char *p = trace, *end = trace + len;
    section_t cur = {0};
    bool started = false, suppressed = false;
    static const char caused_by[] = "Caused by:";
    for (unsigned line = 0; p < end && line < KCW_ROOTCAUSE_MAX_LINES; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        span_t l = {p, nl ? (size_t)(nl - p) : (size_t)(end - p)};
        p = nl ? nl + 1 : end;
        if (l.n > 0 && l.p[l.n - 1] == '\r')
            l.n--;
        bool cause = l.n >= sizeof(caused_by) - 1 && memcmp(l.p, caused_by, sizeof(caused_by) - 1) == 0;
        if (!started || cause) {
            if (!started && strspn(l.p, " \t") >= l.n)
                continue; /* blank lines before the first exception */
            if (cur.n_frames > 0)
                *with_frames = cur;
            memset(&cur, 0, sizeof(cur));
            span_t h = l;
            if (cause) {
                h.p += sizeof(caused_by) - 1;
                h.n -= sizeof(caused_by) - 1;
                while (h.n > 0 && (*h.p == ' ' || *h.p == '\t'))
                    h.p++, h.n--;
            }
            cur.header = h;
            started = true;
            suppressed = false;
            continue;
        }
        if (l.n > 0 && (*l.p == ' ' || *l.p == '\t')) {
            size_t ws = strspn(l.p, " \t");
            if (l.n - ws >= 11 && memcmp(l.p + ws, "Suppressed:", 11) == 0)
                suppressed = true;
        }
        span_t f;
        if (suppressed || cur.n_frames == KCW_ROOTCAUSE_FRAMES ||
            !match(rc->frame, md, l.p, l.n, 1, &f))
            continue;
        if (app_frame(rc, md, f))
            cur.frames[cur.n_frames++] = f;
    }
    if (cur.n_frames > 0)
        *with_frames = cur;
    *root = cur;
}

int kcw_rootcause_key(const kcw_rootcause_t *rc, const char *trace, char **out)
{
    *out = NULL;
    if (!trace)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md)
        return -ENOMEM;
    section_t root = {0}, with_frames = {0};
    scan(rc, md, trace, &root, &with_frames);
    span_t header = {root.header.p, utf8_cut(root.header.p, root.header.n, HEADER_MAX)};
    span_t cls = {NULL, 0}, msg = header;
    span_t c, m = {NULL, 0};
    if (header.p && match(rc->header, md, header.p, header.n, 1, &c)) {
        match(rc->header, md, header.p, header.n, 2, &m);
        cls = (span_t){c.p, utf8_cut(c.p, c.n, CLASS_MAX)};
        msg = m;
    }
    pcre2_match_data_free(md);
    if (!header.p)
        return 0;
    char *text = NULL;
    size_t text_n = 0;
    int r = normalize_message(rc, cls, msg, &text, &text_n);
    if (r < 0)
        return r;
    if (cls.n == 0 && text_n == 0) {
        free(text);
        return 0;
    }
    /* Pieces go into buf up to its size; the final cut keeps UTF-8 whole. */
    char buf[KCW_ROOTCAUSE_MAX_KEY * 2 + 1];
    int w = snprintf(buf, sizeof(buf), "%.*s%s%.*s", (int)cls.n, cls.p ? cls.p : "",
                     cls.n && text_n ? ": " : "", (int)text_n, text);
    free(text);
    size_t n = w < 0 ? 0 : (size_t)w < sizeof(buf) ? (size_t)w : sizeof(buf) - 1;
    for (size_t i = 0; i < with_frames.n_frames && n < sizeof(buf) - 1; i++) {
        span_t f = with_frames.frames[i];
        w = snprintf(buf + n, sizeof(buf) - n, "%s%.*s", i == 0 ? " @ " : ", ",
                     (int)utf8_cut(f.p, f.n, FRAME_MAX), f.p);
        n += w < 0 ? 0 : (size_t)w < sizeof(buf) - n ? (size_t)w : sizeof(buf) - n - 1;
    }
    n = utf8_cut(buf, n, KCW_ROOTCAUSE_MAX_KEY);
    char *key = strndup(buf, n);
    if (!key)
        return -ENOMEM;
    *out = key;
    return 0;
}
