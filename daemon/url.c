/* url.c: joining, credentials and redaction of URLs with libcurl's URL API
 * (curl_url). See url.h. */
#include "kcwatch/url.h"

#include "kcwatch/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libcurl strings are freed with curl_free: hand out malloc copies. */
static char *curl_str_dup(char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    curl_free(s);
    return copy;
}

static CURLU *url_parse(const char *url)
{
    if (!url)
        return NULL;
    CURLU *u = curl_url();
    if (!u)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

char *kcw_url_join(const char *base, const char *path)
{
    CURLU *u = url_parse(base);
    if (!u)
        return NULL;
    if (!path)
        path = "";
    char *out = NULL, *old_path = NULL, *old_query = NULL, *ref = NULL, *s = NULL;
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    if (curl_url_get(u, CURLUPART_PATH, &old_path, 0) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_QUERY, &old_query, 0) != CURLUE_OK)
        old_query = NULL;
    size_t blen = strlen(old_path);
    while (plen > 0 && *path == '/') {
        path++;
        plen--;
    }
    if (plen > 0)
        while (blen > 0 && old_path[blen - 1] == '/')
            blen--;
    const char *add_q = q && q[1] ? q + 1 : "";
    bool both = old_query && *old_query && *add_q;
    bool any_q = (old_query && *old_query) || *add_q;
    /* An absolute-path reference resolved against base: scheme, userinfo,
     * host and port stay, and libcurl keeps the caller's percent-encoding
     * as it is (setting CURLUPART_PATH would rewrite it). */
    if (asprintf(&ref, "%.*s%s%.*s%s%s%s%s", (int)blen, old_path, plen > 0 ? "/" : "", (int)plen,
                 path, any_q ? "?" : "", old_query ? old_query : "", both ? "&" : "",
                 add_q) < 0) {
        ref = NULL;
        goto done;
    }
    if (curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
        out = curl_str_dup(s);
done:
    curl_free(old_path);
    curl_free(old_query);
    free(ref);
    curl_url_cleanup(u);
    return out;
}

int kcw_url_credentials(const char *url, char **bare, char **user, char **password)
{
    *bare = *user = *password = NULL;
    CURLU *u = url_parse(url);
    if (!u)
        return -EINVAL;
    int rc = -ENOMEM;
    char *uu = NULL, *pp = NULL, *s = NULL;
    CURLUcode uc = curl_url_get(u, CURLUPART_USER, &uu, CURLU_URLDECODE);
    if (uc == CURLUE_OK && !(*user = curl_str_dup(uu)))
        goto fail;
    uc = curl_url_get(u, CURLUPART_PASSWORD, &pp, CURLU_URLDECODE);
    if (uc == CURLUE_OK && !(*password = curl_str_dup(pp)))
        goto fail;
    if (curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK || !(*bare = curl_str_dup(s)))
        goto fail;
    curl_url_cleanup(u);
    return 0;
fail:
    free(*user);
    free(*password);
    *user = *password = NULL;
    curl_url_cleanup(u);
    return rc;
}

/* Parameters kcwatch itself adds to Connect requests: their values are
 * known and harmless, and a restart line reads better with them. */
static bool query_name_shown(const char *name, size_t len)
{
    static const char *const shown[] = {"includeTasks", "onlyFailed", "expand"};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
        if (strlen(shown[i]) == len && memcmp(shown[i], name, len) == 0)
            return true;
    return false;
}

/* "a=1&b&c=3" -> "a=xxxxx&b=xxxxx&c=xxxxx" (names stay, values go, except
 * those of query_name_shown()). */
static char *query_redact(const char *q)
{
    size_t n = strlen(q);
    /* Each part grows by at most "=" KCW_URL_REDACTED. */
    size_t parts = 1;
    for (const char *p = q; *p; p++)
        parts += *p == '&';
    size_t cap = n + parts * (sizeof(KCW_URL_REDACTED) + 1) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    const char *p = q;
    while (true) {
        size_t len = strcspn(p, "&");
        size_t name = strcspn(p, "=&");
        if (len > 0 && query_name_shown(p, name)) {
            memcpy(out + o, p, len);
            o += len;
        } else if (len > 0) {
            memcpy(out + o, p, name);
            o += name;
            o += (size_t)snprintf(out + o, cap - o, "=%s", KCW_URL_REDACTED);
        }
        p += len;
        if (!*p)
            break;
        out[o++] = '&';
        p++;
    }
    out[o] = '\0';
    return out;
}

/* The part of an unparseable string before any '@', '?' or '#': what is
 * left names the host well enough for an error and cannot hold a secret
 * written in userinfo or a query. */
static char *fallback_redact(const char *url)
{
    size_t cut = strcspn(url, "@?#");
    if (!url[cut])
        return strdup(url);
    const char *scheme_end = strstr(url, "://");
    if (url[cut] == '@' && scheme_end && scheme_end < url + cut) {
        /* scheme://userinfo@rest: keep scheme:// and what follows '@' up to
         * any '?' or '#'. */
        const char *at = strrchr(url, '@');
        const char *rest = at + 1;
        size_t rl = strcspn(rest, "?#");
        char *out = NULL;
        if (asprintf(&out, "%.*s%s@%.*s%s", (int)(scheme_end + 3 - url), url, KCW_URL_REDACTED,
                     (int)rl, rest, rest[rl] ? "?" KCW_URL_REDACTED : "") < 0)
            return NULL;
        return out;
    }
    char *out = NULL;
    if (asprintf(&out, "%.*s?%s", (int)cut, url, KCW_URL_REDACTED) < 0)
        return NULL;
    return out;
}

char *kcw_url_redact(const char *url)
{
    if (!url)
        return strdup("");
    if (!strpbrk(url, "@?#;"))
        return strdup(url); /* nothing to hide: printed as configured */
    CURLU *u = url_parse(url);
    if (!u)
        return fallback_redact(url);
    char *out = NULL, *q = NULL, *rq = NULL, *s = NULL, *tmp = NULL;
    bool ok = true;
    if (curl_url_get(u, CURLUPART_USER, &tmp, 0) == CURLUE_OK) {
        curl_free(tmp);
        ok = curl_url_set(u, CURLUPART_USER, KCW_URL_REDACTED, 0) == CURLUE_OK &&
             curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK;
    } else if (curl_url_get(u, CURLUPART_PASSWORD, &tmp, 0) == CURLUE_OK) {
        curl_free(tmp);
        ok = curl_url_set(u, CURLUPART_PASSWORD, KCW_URL_REDACTED, 0) == CURLUE_OK;
    }
    ok = ok && curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK &&
         curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK;
    if (ok && curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK) {
        rq = query_redact(q);
        ok = rq && curl_url_set(u, CURLUPART_QUERY, rq, 0) == CURLUE_OK;
    }
    if (ok && curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
        out = curl_str_dup(s);
    curl_free(q);
    free(rq);
    curl_url_cleanup(u);
    return out ? out : (ok ? NULL : fallback_redact(url));
}

const char *kcw_url_redact_buf(const char *url, char *buf, size_t n)
{
    if (!n)
        return buf;
    char *r = kcw_url_redact(url);
    snprintf(buf, n, "%s", r ? r : KCW_URL_REDACTED);
    free(r);
    return buf;
}

static void register_part(CURLU *u, CURLUPart part, unsigned flags)
{
    char *v = NULL;
    if (curl_url_get(u, part, &v, flags) == CURLUE_OK && v && *v)
        kcw_log_add_secret(v);
    curl_free(v);
}

void kcw_url_register_secrets(const char *url)
{
    if (!url || !strpbrk(url, "@?"))
        return;
    CURLU *u = url_parse(url);
    if (!u)
        return;
    register_part(u, CURLUPART_USER, 0);
    register_part(u, CURLUPART_USER, CURLU_URLDECODE);
    register_part(u, CURLUPART_PASSWORD, 0);
    register_part(u, CURLUPART_PASSWORD, CURLU_URLDECODE);
    char *q = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK && q) {
        for (char *save = NULL, *part = strtok_r(q, "&", &save); part;
             part = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(part, '=');
            const char *val = eq ? eq + 1 : part;
            if (strlen(val) < KCW_URL_SECRET_MIN)
                continue;
            kcw_log_add_secret(val);
            char *dec = curl_easy_unescape(NULL, val, 0, NULL);
            if (dec && strlen(dec) >= KCW_URL_SECRET_MIN)
                kcw_log_add_secret(dec);
            curl_free(dec);
        }
    }
    curl_free(q);
    curl_url_cleanup(u);
}

static bool scheme_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '-' || c == '.';
}

static bool url_end(unsigned char c)
{
    return c <= ' ' || c == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

char *kcw_url_redact_text(const char *text)
{
    if (!text)
        return strdup("");
    const char *mark = strstr(text, "://");
    if (!mark)
        return strdup(text);
    size_t cap = strlen(text) + 1, o = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    const char *p = text;
    while (mark) {
        const char *start = mark;
        while (start > p && scheme_char(start[-1]))
            start--;
        const char *end = mark + 3;
        while (*end && !url_end((unsigned char)*end))
            end++;
        char *token = strndup(start, (size_t)(end - start));
        char *red = token ? (start < mark ? kcw_url_redact(token) : fallback_redact(token)) : NULL;
        free(token);
        if (!red) {
            free(out);
            return NULL;
        }
        size_t need = o + (size_t)(start - p) + strlen(red) + strlen(end) + 1;
        if (need > cap) {
            char *g = realloc(out, need);
            if (!g) {
                free(red);
                free(out);
                return NULL;
            }
            out = g;
            cap = need;
        }
        memcpy(out + o, p, (size_t)(start - p));
        o += (size_t)(start - p);
        memcpy(out + o, red, strlen(red));
        o += strlen(red);
        free(red);
        p = end;
        mark = strstr(p, "://");
    }
    memcpy(out + o, p, strlen(p) + 1);
    return out;
}

char *kcw_url_escape(const char *s, bool plus_space)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else if (c == ' ' && plus_space) {
            *p++ = '+';
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0x0f];
        }
    }
    *p = '\0';
    return out;
}

char *kcw_url_generator(const char *base, const char *expr, const char *group, const char *alert)
{
    if (!base || !*base)
        return NULL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char *out = NULL;
    int n;
    if (expr) {
        while (*expr == ' ' || *expr == '\t' || *expr == '\n' || *expr == '\r')
            expr++;
        size_t len = strlen(expr);
        while (len > 0 && (expr[len - 1] == ' ' || expr[len - 1] == '\t' ||
                           expr[len - 1] == '\n' || expr[len - 1] == '\r'))
            len--;
        char *trimmed = strndup(expr, len);
        char *enc = trimmed ? kcw_url_escape(trimmed, true) : NULL;
        free(trimmed);
        if (!enc)
            return NULL;
        n = asprintf(&out, "%.*s/graph?g0.expr=%s&g0.tab=1", (int)blen, base, enc);
        free(enc);
    } else {
        char *g = kcw_url_escape(group ? group : "", true);
        char *a = kcw_url_escape(alert ? alert : "", true);
        n = g && a ? asprintf(&out, "%.*s/api/v1/rules?rule_group%%5B%%5D=%s&rule_name%%5B%%5D=%s",
                              (int)blen, base, g, a)
                   : -1;
        free(g);
        free(a);
    }
    return n < 0 ? NULL : out;
}
