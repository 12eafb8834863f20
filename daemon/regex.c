/* regex.c: PCRE2 regexes for label matchers and trace patterns (see rules.h).
 * Anchored regexes behave like Prometheus label matchers: the whole value must
 * match, so the source is wrapped as ^(?:src)$. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kcwatch/rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kcw_regex {
    char *source;
    pcre2_code *code;
};

int kcw_regex_compile(const char *src, bool anchored, kcw_regex_t **out, char *err, size_t errlen)
{
    *out = NULL;
    char *pattern = NULL;
    if (anchored) {
        if (asprintf(&pattern, "^(?:%s)$", src) < 0)
            return -ENOMEM;
    } else {
        pattern = strdup(src);
        if (!pattern)
            return -ENOMEM;
    }
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
                                   &offset, NULL);
    free(pattern);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        /* Report the offset into what the user wrote, not into the wrapper. */
        size_t user_off = anchored && offset >= 4 ? offset - 4 : offset;
        if (user_off > strlen(src))
            user_off = strlen(src); /* errors found at the wrapper's closing ")$" */
        if (err)
            snprintf(err, errlen, "invalid regex %s: %s at offset %zu", src, (char *)msg, user_off);
        return -EINVAL;
    }
    kcw_regex_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->source = strdup(src))) {
        free(r);
        pcre2_code_free(re);
        return -ENOMEM;
    }
    r->code = re;
    *out = r;
    return 0;
}

bool kcw_regex_match(const kcw_regex_t *re, const char *subject)
{
    if (!subject)
        subject = "";
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        return false;
    int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

const char *kcw_regex_source(const kcw_regex_t *re)
{
    return re->source;
}

void kcw_regex_free(kcw_regex_t *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re->source);
    free(re);
}

int kcw_regex_replace_all(const kcw_regex_t *re, const char *subject, const char *repl,
                          size_t max, char **out, char *err, size_t errlen)
{
    *out = NULL;
    uint32_t opts = PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                    PCRE2_SUBSTITUTE_UNKNOWN_UNSET | PCRE2_SUBSTITUTE_UNSET_EMPTY;
    PCRE2_SIZE cap = strlen(subject) + 64;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (cap > max + 1)
            cap = max + 1;
        PCRE2_UCHAR *buf = malloc(cap);
        if (!buf)
            return -ENOMEM;
        PCRE2_SIZE len = cap;
        int rc = pcre2_substitute(re->code, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0, opts,
                                  NULL, NULL, (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED, buf, &len);
        if (rc >= 0) {
            *out = (char *)buf;
            return 0;
        }
        free(buf);
        if (rc == PCRE2_ERROR_NOMEMORY) { /* len is the length needed */
            if (len > max)
                return -E2BIG;
            cap = len + 1;
            continue;
        }
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        if (err)
            snprintf(err, errlen, "%s", (char *)msg);
        return -EINVAL;
    }
    return -E2BIG;
}
