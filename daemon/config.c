/* config.c: kcwatch.yaml -> validated kcw_config_t (see config.h).
 *
 * The file is loaded with yamlnode.c (the loader rule files and rule tests
 * use too): libyaml events build a positioned document, bounded in nodes
 * (alias copies included: a "billion laughs" document stops there) and in
 * nesting depth, with aliases positioned where they are used. A YAML syntax
 * error ends loading and is the only error reported: a half-built document
 * would only produce misleading follow-ups. Then one walker per config block
 * checks keys and types, fills the structs and appends every problem to the
 * caller's error list with the position of the offending key or value, so
 * `kcwatch check` shows them all at once.
 *
 * Scalars in value position go through ${VAR} expansion before they are
 * interpreted. Secrets (passwords, bearer tokens) are read from their *_file
 * keys here and registered with the log redactor as soon as they are known.
 * Relative file paths are resolved against the config file's directory. */
#include "kcwatch/config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kcwatch/admin.h"
#include "kcwatch/duration.h"
#include "kcwatch/log.h"
#include "kcwatch/text.h"
#include "kcwatch/rfc3339.h"
#include "kcwatch/rules.h"
#include "kcwatch/url.h"
#include "kcwatch/yamlnode.h"

#define MAX_CONFIG_BYTES (4 * 1024 * 1024)
#define MAX_SECRET_BYTES (64 * 1024)
#define MAX_EXPANDED_BYTES (1024 * 1024)
/* Bounds the tree, including what aliases copy (a "billion laughs" document
 * stops here instead of eating memory). */
#define MAX_NODES 100000
#define MAX_DEPTH 64
#define PATH_LEN 256
#define SEC 1000LL
#undef MIN /* sys/param.h's MIN(a, b), through admin.h and uv.h: not used here */
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* ------------------------------------------------------------------------ */
/* Built-in unrecoverable traces                                             */

/* Failures a restart cannot fix: restarting only burns the restart budget and
 * floods the worker log, so remediation leaves such tasks to a human. Kept
 * conservative on purpose: a missing pattern costs a few futile restarts
 * (bounded by the budget), a wrong one leaves a healable task down. */
static const char *const default_unrecoverable_traces[] = {
    /* The connector's configuration is invalid; it fails the same way until
     * someone changes it. */
    "org\\.apache\\.kafka\\.common\\.config\\.ConfigException",
    /* Wrong credentials towards the brokers (SASL, SSL, plain). Covers
     * AuthenticationException, SaslAuthenticationException and
     * SslAuthenticationException. */
    "org\\.apache\\.kafka\\.common\\.errors\\.[A-Za-z]*AuthenticationException",
    /* Missing ACLs (topic, group, cluster, transactional id). */
    "org\\.apache\\.kafka\\.common\\.errors\\.[A-Za-z]*AuthorizationException",
    /* The plugin or one of its dependencies is not on the worker's plugin
     * path; only a deployment fixes that. */
    "java\\.lang\\.ClassNotFoundException",
    "java\\.lang\\.NoClassDefFoundError",
    /* A record the converter cannot handle (poison record): the task resumes
     * from the same offset after a restart and fails on it again. */
    "org\\.apache\\.kafka\\.connect\\.errors\\.DataException",
    "org\\.apache\\.kafka\\.common\\.errors\\.SerializationException",
    /* errors.tolerance=none and a record failed conversion or a transform:
     * the same record comes back after a restart. */
    "Tolerance exceeded in error handler",
    NULL,
};

const char *const *kcw_config_default_unrecoverable_traces(void)
{
    return default_unrecoverable_traces;
}

/* ------------------------------------------------------------------------ */
/* Load context and errors                                                   */

typedef struct ctx {
    kcw_ydoc_t y;     /* the document and its bounds */
    const char *file; /* name used in errors */
    char *base_dir;   /* relative paths resolve here; NULL: current directory */
    kcw_errors_t *errs;
    const char *text; /* the file's text: templates locate their lines in it */
    size_t len;
    bool oom;
} ctx_t;

/* The document's nodes, read through the accessors below. */
typedef yaml_node_t node_t;

static void verrf(ctx_t *c, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void verrf(ctx_t *c, int line, int col, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    kcw_errors_add(c->errs, c->file, line, col, "%s", msg);
}

static void err_node(ctx_t *c, const node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_node(ctx_t *c, const node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrf(c, n ? (int)n->start_mark.line + 1 : 0, n ? (int)n->start_mark.column + 1 : 0, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Pass 2 helpers: keys, kinds, scalars                                      */

static int node_line(const node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static int node_col(const node_t *n)
{
    return (int)n->start_mark.column + 1;
}

static const char *sval(const node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* Children: a sequence's items; a mapping's keys and values interleaved
 * (key i/2 at even i, its value at i + 1). */
static size_t nkids(const node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return kcw_ynode_seq_len(n);
    if (n->type == YAML_MAPPING_NODE)
        return 2 * kcw_ynode_map_len(n);
    return 0;
}

static const node_t *kid(ctx_t *c, const node_t *n, size_t i)
{
    int idx = n->type == YAML_SEQUENCE_NODE ? n->data.sequence.items.start[i]
              : i % 2 == 0                  ? n->data.mapping.pairs.start[i / 2].key
                                            : n->data.mapping.pairs.start[i / 2].value;
    return yaml_document_get_node(&c->y.doc, idx);
}

static bool is_null(const node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || !kcw_ynode_is_plain(n))
        return false;
    const char *v = sval(n);
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *kind_name(const node_t *n)
{
    if (is_null(n))
        return "null";
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "sequence";
    case YAML_MAPPING_NODE:
        return "mapping";
    default:
        return "scalar";
    }
}

/* Paths only appear in messages, so a cut-off one is acceptable; the "..."
 * marks it rather than letting it pass for a real key. */
static const char *mark_cut(char *buf, int written)
{
    if (written >= PATH_LEN)
        memcpy(buf + PATH_LEN - 4, "...", 4);
    return buf;
}

static const char *join(char *buf, const char *parent, const char *key)
{
    if (!parent || !*parent)
        return mark_cut(buf, snprintf(buf, PATH_LEN, "%s", key));
    return mark_cut(buf, snprintf(buf, PATH_LEN, "%s.%s", parent, key));
}

static const char *join_index(char *buf, const char *parent, size_t i)
{
    return mark_cut(buf, snprintf(buf, PATH_LEN, "%s[%zu]", parent, i));
}

static const node_t *map_key(ctx_t *c, const node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (size_t i = 0; i + 1 < nkids(map); i += 2)
        if (kid(c, map, i)->type == YAML_SCALAR_NODE && strcmp(sval(kid(c, map, i)), key) == 0)
            return kid(c, map, i);
    return NULL;
}

static const node_t *map_get(ctx_t *c, const node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (size_t i = 0; i + 1 < nkids(map); i += 2)
        if (kid(c, map, i)->type == YAML_SCALAR_NODE && strcmp(sval(kid(c, map, i)), key) == 0)
            return kid(c, map, i + 1);
    return NULL;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static kcw_config_key_observer key_observer;
static void *key_observer_arg;

void kcw_config_observe_keys(kcw_config_key_observer fn, void *arg)
{
    key_observer = fn;
    key_observer_arg = arg;
}

/* Reports non-string, duplicate, not-yet-supported and unknown keys. */
static void check_keys(ctx_t *c, const node_t *map, const char *path, const char *const *allowed,
                       const char *const *later)
{
    if (key_observer)
        key_observer(path, allowed, key_observer_arg);
    char where[PATH_LEN + 8];
    if (*path)
        snprintf(where, sizeof(where), "in %s", path);
    else
        snprintf(where, sizeof(where), "at top level");
    for (size_t i = 0; i + 1 < nkids(map); i += 2) {
        const node_t *k = kid(c, map, i);
        if (k->type != YAML_SCALAR_NODE) {
            err_node(c, k, "keys must be strings, got %s %s", kind_name(k), where);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j += 2) {
            const node_t *prev = kid(c, map, j);
            if (prev->type == YAML_SCALAR_NODE && strcmp(sval(prev), sval(k)) == 0) {
                err_node(c, k, "duplicate key \"%s\" %s (first at line %d)", sval(k), where,
                         node_line(prev));
                dup = true;
            }
        }
        if (dup)
            continue;
        if (in_list(sval(k), later))
            err_node(c, k, "\"%s\" %s is not supported yet", sval(k), where);
        else if (!in_list(sval(k), allowed)) {
            const char *near = kcw_text_nearest(sval(k), allowed);
            if (near)
                err_node(c, k, "unknown key \"%s\" %s; did you mean \"%s\"?", sval(k), where,
                         near);
            else
                err_node(c, k, "unknown key \"%s\" %s", sval(k), where);
        }
    }
}

/* The node when it is of kind (what names it), or NULL: absent/null
 * silently, other kinds reported. */
static const node_t *as_kind(ctx_t *c, const node_t *n, const char *path, yaml_node_type_t kind,
                             const char *what)
{
    if (is_null(n))
        return NULL;
    if (n->type != kind) {
        err_node(c, n, "%s: expected %s, got %s", path, what, kind_name(n));
        return NULL;
    }
    return n;
}

static const node_t *as_map(ctx_t *c, const node_t *n, const char *path)
{
    return as_kind(c, n, path, YAML_MAPPING_NODE, "a mapping");
}

static const node_t *as_seq(ctx_t *c, const node_t *n, const char *path)
{
    return as_kind(c, n, path, YAML_SEQUENCE_NODE, "a list");
}

static bool env_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf_t;

static int sb_add(strbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return -ENOMEM;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

/* ${VAR} -> its value, $$ -> $; any other $ stays (regexes use it). Returns a
 * new string, or NULL after reporting every problem in the scalar. */
static char *expand_env(ctx_t *c, const node_t *n, const char *path)
{
    strbuf_t b = {0};
    bool bad = false;
    if (sb_add(&b, "", 0) < 0)
        goto oom;
    for (const char *p = sval(n); *p;) {
        if (p[0] == '$' && p[1] == '$') {
            if (sb_add(&b, "$", 1) < 0)
                goto oom;
            p += 2;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            if (sb_add(&b, p, 1) < 0)
                goto oom;
            p++;
            continue;
        }
        const char *name = p + 2;
        const char *end = strchr(name, '}');
        if (!end) {
            err_node(c, n, "%s: unterminated \"${\" (write $$ for a literal $)", path);
            bad = true;
            break;
        }
        size_t nl = (size_t)(end - name);
        p = end + 1;
        if (!env_name_ok(name, nl)) {
            err_node(c, n, "%s: invalid environment variable name \"%.*s\"", path, (int)nl, name);
            bad = true;
            continue;
        }
        char var[256];
        if (nl >= sizeof(var)) {
            err_node(c, n, "%s: environment variable name too long", path);
            bad = true;
            continue;
        }
        memcpy(var, name, nl);
        var[nl] = '\0';
        const char *val = getenv(var);
        if (!val) {
            err_node(c, n, "%s: environment variable \"%s\" is not set", path, var);
            bad = true;
            continue;
        }
        if (sb_add(&b, val, strlen(val)) < 0)
            goto oom;
        if (b.len > MAX_EXPANDED_BYTES) {
            err_node(c, n, "%s: value longer than %d bytes after expansion", path,
                     MAX_EXPANDED_BYTES);
            bad = true;
            break;
        }
    }
    if (bad) {
        free(b.s);
        return NULL;
    }
    return b.s;
oom:
    free(b.s);
    c->oom = true;
    return NULL;
}

/* 1: absent or null (nothing set), 0: *out is the expanded text (caller
 * frees), -1: error reported. */
static int scalar_value(ctx_t *c, const node_t *n, const char *path, const char *what, char **out)
{
    *out = NULL;
    if (is_null(n))
        return 1;
    if (n->type != YAML_SCALAR_NODE) {
        err_node(c, n, "%s: expected %s, got %s", path, what, kind_name(n));
        return -1;
    }
    *out = expand_env(c, n, path);
    return *out ? 0 : -1;
}

static void replace(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

static char *xstrdup(ctx_t *c, const char *s)
{
    char *d = strdup(s);
    if (!d)
        c->oom = true;
    return d;
}

/* Relative paths resolve against the config file's directory. */
static char *resolve_path(ctx_t *c, const char *p)
{
    char *out;
    if (p[0] == '/' || !c->base_dir)
        return xstrdup(c, p);
    const char *sep = c->base_dir[strlen(c->base_dir) - 1] == '/' ? "" : "/";
    if (asprintf(&out, "%s%s%s", c->base_dir, sep, p) < 0) {
        c->oom = true;
        return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* Typed fields. Each looks key up in map, leaves *dst alone when absent or
 * null (so defaults stand), and reports problems at the value. They return
 * 0 when *dst was set, 1 when absent, -1 on error. */

/* The scalar under key: its node *v, its path in path (PATH_LEN) and its
 * expanded text *s (caller frees); returns as scalar_value does. */
static int field(ctx_t *c, const node_t *map, const char *parent, const char *key, const char *what,
                 char *path, const node_t **v, char **s)
{
    *v = map_get(c, map, key);
    return scalar_value(c, *v, join(path, parent, key), what, s);
}

/* field() that also rejects the empty string. */
static int nonempty_field(ctx_t *c, const node_t *map, const char *parent, const char *key,
                          const char *what, char *path, const node_t **v, char **s)
{
    int rc = field(c, map, parent, key, what, path, v, s);
    if (rc == 0 && !**s) {
        err_node(c, *v, "%s: must not be empty", path);
        free(*s);
        *s = NULL;
        return -1;
    }
    return rc;
}

/* Passes rc through, reporting "missing required key" at map when it says absent. */
static int required(ctx_t *c, int rc, const node_t *map, const char *path, const char *key)
{
    if (rc == 1)
        err_node(c, map, "%s: missing required key \"%s\"", path, key);
    return rc;
}

static int get_string(ctx_t *c, const node_t *map, const char *parent, const char *key, char **dst)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = nonempty_field(c, map, parent, key, "a string", path, &v, &s);
    if (rc != 0)
        return rc;
    replace(dst, s);
    return 0;
}

static int get_duration(ctx_t *c, const node_t *map, const char *parent, const char *key,
                        int64_t *dst, bool positive)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = field(c, map, parent, key, "a duration", path, &v, &s);
    if (rc != 0)
        return rc;
    int64_t ms = 0;
    int pr = kcw_duration_parse(s, &ms);
    rc = -1;
    if (pr == -ERANGE)
        err_node(c, v, "%s: duration \"%s\" is too large", path, s);
    else if (pr < 0)
        err_node(c, v, "%s: invalid duration \"%s\" (expected e.g. 30s, 5m, 1h30m)", path, s);
    else if (positive && ms <= 0)
        err_node(c, v, "%s: must be greater than 0", path);
    else {
        *dst = ms;
        rc = 0;
    }
    free(s);
    return rc;
}

static int get_bool(ctx_t *c, const node_t *map, const char *parent, const char *key, bool *dst)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = field(c, map, parent, key, "true or false", path, &v, &s);
    if (rc != 0)
        return rc;
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        *dst = true;
    } else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        *dst = false;
    } else {
        err_node(c, v, "%s: expected true or false, got \"%s\"", path, s);
        rc = -1;
    }
    free(s);
    return rc;
}

/* get_duration() with a lower bound (a positive duration). */
static int get_duration_min(ctx_t *c, const node_t *map, const char *parent, const char *key,
                            int64_t *dst, int64_t min_ms)
{
    int64_t ms = *dst;
    int rc = get_duration(c, map, parent, key, &ms, true);
    if (rc != 0)
        return rc;
    if (ms < min_ms) {
        char got[64], min[64], path[PATH_LEN];
        err_node(c, map_get(c, map, key), "%s: %s is below the minimum of %s",
                 join(path, parent, key), kcw_duration_format(ms, got, sizeof(got)),
                 kcw_duration_format(min_ms, min, sizeof(min)));
        return -1;
    }
    *dst = ms;
    return 0;
}

static int get_int(ctx_t *c, const node_t *map, const char *parent, const char *key, int *dst,
                   long long lo, long long hi)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = field(c, map, parent, key, "an integer", path, &v, &s);
    if (rc != 0)
        return rc;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    rc = -1;
    if (end == s || *end || errno == ERANGE)
        err_node(c, v, "%s: expected an integer, got \"%s\"", path, s);
    else if (x < lo || x > hi)
        err_node(c, v, "%s: must be between %lld and %lld", path, lo, hi);
    else {
        *dst = (int)x;
        rc = 0;
    }
    free(s);
    return rc;
}

static int get_double(ctx_t *c, const node_t *map, const char *parent, const char *key, double *dst,
                      double lo, double hi)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = field(c, map, parent, key, "a number", path, &v, &s);
    if (rc != 0)
        return rc;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    rc = -1;
    if (end == s || *end || errno == ERANGE || !isfinite(x))
        err_node(c, v, "%s: expected a number, got \"%s\"", path, s);
    else if (x < lo || x > hi)
        err_node(c, v, "%s: must be between %g and %g", path, lo, hi);
    else {
        *dst = x;
        rc = 0;
    }
    free(s);
    return rc;
}

/* http(s) URL with a host, checked by libcurl's URL parser. */
static bool url_ok(ctx_t *c, const char *s, char *why, size_t n)
{
    CURLU *u = curl_url();
    if (!u) {
        c->oom = true;
        snprintf(why, n, "out of memory");
        return false;
    }
    bool ok = false;
    char *scheme = NULL, *host = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, s, 0);
    if (uc != CURLUE_OK)
        snprintf(why, n, "%s", curl_url_strerror(uc));
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        snprintf(why, n, "scheme must be http or https");
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        snprintf(why, n, "no host");
    else
        ok = true;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static void strip_trailing_slashes(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '/')
        s[--len] = '\0';
}

/* Validates one URL scalar; 0 with *out, 1 null, -1 error. */
static int url_value(ctx_t *c, const node_t *v, const char *path, bool strip, char **out)
{
    char *s;
    int rc = scalar_value(c, v, path, "a URL", &s);
    *out = NULL;
    if (rc != 0)
        return rc;
    char why[128];
    /* Userinfo and query values may be credentials: masked in logs from
     * now on, even when this config is rejected, and never in an error. */
    kcw_url_register_secrets(s);
    if (!url_ok(c, s, why, sizeof(why))) {
        char *shown = kcw_url_redact_text(s);
        err_node(c, v, "%s: invalid URL \"%s\": %s", path, shown ? shown : "<redacted>", why);
        free(shown);
        free(s);
        return -1;
    }
    if (strip)
        strip_trailing_slashes(s);
    *out = s;
    return 0;
}

static int get_url(ctx_t *c, const node_t *map, const char *parent, const char *key, char **dst,
                   bool strip)
{
    char path[PATH_LEN];
    char *s;
    int rc = url_value(c, map_get(c, map, key), join(path, parent, key), strip, &s);
    if (rc == 0)
        replace(dst, s);
    return rc;
}

/* nonempty_field() for a file path: *full is it resolved (caller frees). */
static int path_field(ctx_t *c, const node_t *map, const char *parent, const char *key, char *path,
                      const node_t **v, char **full)
{
    char *s;
    *full = NULL;
    int rc = nonempty_field(c, map, parent, key, "a file path", path, v, &s);
    if (rc != 0)
        return rc;
    *full = resolve_path(c, s);
    free(s);
    return *full ? 0 : -1;
}

/* A file the daemon will open later (TLS material): resolved, and checked
 * now so `kcwatch check` catches a typo instead of the first request. */
static int get_file_path(ctx_t *c, const node_t *map, const char *parent, const char *key,
                         char **dst)
{
    char path[PATH_LEN], *full;
    const node_t *v;
    int rc = path_field(c, map, parent, key, path, &v, &full);
    if (rc != 0)
        return rc;
    if (access(full, R_OK) != 0) {
        err_node(c, v, "%s: cannot read \"%s\": %s", path, full, strerror(errno));
        free(full);
        return -1;
    }
    replace(dst, full);
    return 0;
}

/* Reads a secret file: whole content, trailing newlines cut, bounded. */
static int read_secret(const char *file, char **out, char *why, size_t n)
{
    *out = NULL;
    char *buf;
    size_t len;
    kcw_read_step_t step;
    /* Never blocks: a FIFO or a device is refused, not waited on. */
    int rc = kcw_file_read_bounded(file, MAX_SECRET_BYTES, &buf, &len, &step);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        snprintf(why, n, "%s",
                 rc == -ENOTSUP || rc == -EISDIR ? "not a regular file"
                 : rc == -EFBIG                  ? "larger than 64 KiB"
                                                 : strerror(-rc));
        return -1;
    }
    if (memchr(buf, '\0', len)) {
        snprintf(why, n, "contains a NUL byte");
        free(buf);
        return -1;
    }
    /* Files written by `echo` or editors end in a newline that is not part
     * of the secret. */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int get_secret_file(ctx_t *c, const node_t *map, const char *parent, const char *key,
                           char **dst)
{
    char path[PATH_LEN], *full;
    const node_t *v;
    int rc = path_field(c, map, parent, key, path, &v, &full);
    if (rc != 0)
        return rc;
    char why[128], *secret;
    rc = read_secret(full, &secret, why, sizeof(why));
    if (rc == -ENOMEM) {
        c->oom = true;
    } else if (rc < 0) {
        err_node(c, v, "%s: cannot read \"%s\": %s", path, full, why);
    } else {
        kcw_log_add_secret(secret);
        replace(dst, secret);
    }
    free(full);
    return rc < 0 ? -1 : 0;
}

/* An inline secret (password: ${PW}); registered for redaction at once. */
static int get_secret(ctx_t *c, const node_t *map, const char *parent, const char *key, char **dst)
{
    char path[PATH_LEN], *s;
    const node_t *v;
    int rc = field(c, map, parent, key, "a string", path, &v, &s);
    if (rc != 0)
        return rc;
    kcw_log_add_secret(s);
    replace(dst, s);
    return 0;
}

static void check_regex(ctx_t *c, const node_t *v, const char *path, const char *src, bool anchored)
{
    kcw_regex_t *re = NULL;
    char why[512];
    why[0] = '\0';
    int rc = kcw_regex_compile(src, anchored, &re, why, sizeof(why));
    if (rc == -ENOMEM)
        c->oom = true;
    else if (rc < 0)
        err_node(c, v, "%s: %s", path, why);
    kcw_regex_free(re);
}

static bool label_name_ok(const char *s)
{
    return env_name_ok(s, strlen(s)); /* same grammar: [a-zA-Z_][a-zA-Z0-9_]* */
}

/* Two keys that exclude each other: reports at the second when both appear. */
static bool exclusive(ctx_t *c, const node_t *map, const char *path, const char *a, const char *b)
{
    const node_t *ka = map_key(c, map, a), *kb = map_key(c, map, b);
    if (!ka || !kb)
        return true;
    const node_t *later =
        node_line(ka) > node_line(kb) || (node_line(ka) == node_line(kb) && node_col(ka) > node_col(kb)) ? ka : kb;
    err_node(c, later, "%s: \"%s\" and \"%s\" are mutually exclusive", *path ? path : "top level",
             a, b);
    return false;
}

/* The mapping under key with its keys checked, its path left in path
 * (PATH_LEN); NULL when absent or null (silently) or not a mapping (reported). */
static const node_t *sub_map(ctx_t *c, const node_t *parent_map, const char *parent,
                             const char *key, const char *const *keys, const char *const *later,
                             char *path)
{
    const node_t *m = as_map(c, map_get(c, parent_map, key), join(path, parent, key));
    if (m)
        check_keys(c, m, path, keys, later);
    return m;
}

/* ------------------------------------------------------------------------ */
/* Blocks shared by several sections                                         */

static void basic_auth_free(kcw_basic_auth_conf_t *ba)
{
    free(ba->username);
    free(ba->password);
    memset(ba, 0, sizeof(*ba));
}

static void tls_free(kcw_tls_conf_t *t)
{
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    memset(t, 0, sizeof(*t));
}

static void parse_basic_auth(ctx_t *c, const node_t *parent_map, const char *parent,
                             kcw_basic_auth_conf_t *ba)
{
    static const char *const keys[] = {"username", "password", "password_file", NULL};
    char path[PATH_LEN];
    const node_t *m = sub_map(c, parent_map, parent, "basic_auth", keys, NULL, path);
    if (!m)
        return;
    required(c, get_string(c, m, path, "username", &ba->username), m, path, "username");
    if (exclusive(c, m, path, "password", "password_file")) {
        get_secret(c, m, path, "password", &ba->password);
        get_secret_file(c, m, path, "password_file", &ba->password);
    }
}

static void parse_tls(ctx_t *c, const node_t *parent_map, const char *parent, kcw_tls_conf_t *t)
{
    static const char *const keys[] = {"ca_file", "cert_file", "key_file", "insecure", NULL};
    char path[PATH_LEN];
    const node_t *m = sub_map(c, parent_map, parent, "tls", keys, NULL, path);
    if (!m)
        return;
    get_file_path(c, m, path, "ca_file", &t->ca_file);
    int cert = get_file_path(c, m, path, "cert_file", &t->cert_file);
    int key = get_file_path(c, m, path, "key_file", &t->key_file);
    get_bool(c, m, path, "insecure", &t->insecure);
    if (cert == 1 && key != 1)
        err_node(c, map_key(c, m, "key_file"), "%s: key_file needs cert_file", path);
    else if (key == 1 && cert != 1)
        err_node(c, map_key(c, m, "cert_file"), "%s: cert_file needs key_file", path);
}

/* bearer_token_file or inline bearer_token, excluding basic_auth. */
static void parse_bearer(ctx_t *c, const node_t *m, const char *path, char **token)
{
    if (!exclusive(c, m, path, "bearer_token", "bearer_token_file"))
        return;
    if (!exclusive(c, m, path, "basic_auth", "bearer_token") ||
        !exclusive(c, m, path, "basic_auth", "bearer_token_file"))
        return;
    get_secret(c, m, path, "bearer_token", token);
    get_secret_file(c, m, path, "bearer_token_file", token);
}

/* ------------------------------------------------------------------------ */
/* Lists                                                                     */

/* Passes rc through, reporting a null list item when it says absent. */
static int item_null(ctx_t *c, int rc, const node_t *v, const char *path, const char *what)
{
    if (rc == 1)
        err_node(c, v, "%s: expected %s, got null", path, what);
    return rc;
}

/* Reads one list item into *out: 0 to keep it, otherwise reported and skipped. */
typedef int (*read_item_fn)(ctx_t *c, const node_t *v, const char *path, char **out);

/* Fills a new array *out / *n from the items of seq that read_item keeps. */
static void string_list(ctx_t *c, const node_t *seq, const char *path, read_item_fn read_item,
                        char ***out, size_t *n)
{
    if (nkids(seq) == 0)
        return;
    if (!(*out = calloc(nkids(seq), sizeof(char *)))) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < nkids(seq); i++) {
        char ip[PATH_LEN], *s;
        if (read_item(c, kid(c, seq, i), join_index(ip, path, i), &s) == 0)
            (*out)[(*n)++] = s;
    }
}

/* A required, non-empty list of mappings under key: the sequence, with
 * *items a zeroed array of nkids(seq) elements of item_size; NULL when absent or
 * null (silently), or not a list, empty or out of memory (reported). */
static const node_t *map_list(ctx_t *c, const node_t *root, const char *key, const char *noun,
                              size_t item_size, void **items)
{
    const node_t *seq = as_seq(c, map_get(c, root, key), key);
    if (!seq)
        return NULL;
    if (nkids(seq) == 0) {
        err_node(c, seq, "%s: at least one %s is required", key, noun);
        return NULL;
    }
    if (!(*items = calloc(nkids(seq), item_size))) {
        c->oom = true;
        return NULL;
    }
    return seq;
}

/* Item i of a map_list() with its keys checked and its path left in path
 * (PATH_LEN); NULL when it is not a mapping (reported, null included). */
static const node_t *map_list_item(ctx_t *c, const node_t *seq, size_t i, const char *key,
                                   const char *const *keys, const char *const *later, char *path)
{
    const node_t *m = as_map(c, kid(c, seq, i), join_index(path, key, i));
    if (!m) {
        if (is_null(kid(c, seq, i)))
            err_node(c, kid(c, seq, i), "%s: expected a mapping, got null", path);
        return NULL;
    }
    check_keys(c, m, path, keys, later);
    return m;
}

/* Reports name when an earlier item j < i of a map_list() already carries
 * it; name_at(items, j) reads item j's name as stored (after expansion). */
static void check_unique_name(ctx_t *c, const node_t *seq, size_t i, const char *path,
                              const char *noun, const char *name, const void *items,
                              const char *(*name_at)(const void *items, size_t j))
{
    for (size_t j = 0; j < i; j++) {
        const char *prev = name_at(items, j);
        if (prev && strcmp(prev, name) == 0) {
            const node_t *first = map_get(c, kid(c, seq, j), "name");
            err_node(c, map_get(c, kid(c, seq, i), "name"),
                     "%s.name: duplicate %s name \"%s\" (first at line %d)", path, noun, name,
                     first ? node_line(first) : 0);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

/* host:port, host may be empty, a name, IPv4 or [IPv6]. */
static bool listen_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || strpbrk(s, " \t/"))
        return false;
    if (s[0] == '[' && (colon == s || colon[-1] != ']'))
        return false;
    if (s[0] != '[' && memchr(s, ':', (size_t)(colon - s)))
        return false; /* bare IPv6 without brackets */
    const char *port = colon + 1;
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return false;
    long p = strtol(port, NULL, 10);
    return p >= 1 && p <= 65535;
}

/* admin: listen (global.listen is the older spelling), the write token,
 * basic auth and the server's TLS certificate. */
static void parse_admin(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    static const char *const keys[] = {"listen", "token",      "token_file",
                                       "basic_auth", "tls",    NULL};
    static const char *const tls_keys[] = {"cert_file", "key_file", NULL};
    char ap[PATH_LEN], tp[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "admin", keys, NULL, ap);
    if (!m)
        return;
    const node_t *g = map_get(c, root, "global");
    const node_t *gl = g && g->type == YAML_MAPPING_NODE ? map_key(c, g, "listen") : NULL;
    if (gl && map_key(c, m, "listen"))
        err_node(c, map_key(c, m, "listen"),
                 "admin.listen: global.listen (line %d) says the same; keep one of them",
                 node_line(gl));
    else if (get_string(c, m, ap, "listen", &cfg->listen) == 0 && !listen_ok(cfg->listen))
        err_node(c, map_get(c, m, "listen"),
                 "admin.listen: expected host:port (e.g. 127.0.0.1:9464), got \"%s\"",
                 cfg->listen);
    if (exclusive(c, m, ap, "token", "token_file")) {
        get_secret(c, m, ap, "token", &cfg->admin.token);
        get_secret_file(c, m, ap, "token_file", &cfg->admin.token);
        if (cfg->admin.token && !*cfg->admin.token)
            err_node(c, map_get(c, m, map_key(c, m, "token") ? "token" : "token_file"),
                     "admin: the token is empty");
    }
    parse_basic_auth(c, m, ap, &cfg->admin.basic_auth);
    if (cfg->admin.basic_auth.username && !cfg->admin.basic_auth.password)
        err_node(c, map_get(c, m, "basic_auth"), "admin.basic_auth: password or password_file is "
                                                 "required");
    const node_t *t = sub_map(c, m, ap, "tls", tls_keys, NULL, tp);
    if (t) {
        int cert = get_file_path(c, t, tp, "cert_file", &cfg->admin.tls_cert_file);
        int key = get_file_path(c, t, tp, "key_file", &cfg->admin.tls_key_file);
        if (cert == 1 || key == 1)
            err_node(c, t, "admin.tls: cert_file and key_file are both required");
    }
}

/* A warning at the listen key when the admin API serves beyond this host with
 * no credential on its write routes. */
static void warn_exposed(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    const char *cred = cfg->admin.token ? cfg->admin.token : cfg->admin.basic_auth.password;
    char msg[512];
    if (!cfg->listen || !kcw_admin_listen_exposed(cfg->listen, cred, msg, sizeof(msg)))
        return;
    const node_t *n = NULL;
    for (int i = 0; i < 2 && !n; i++) {
        const node_t *sec = map_get(c, root, i == 0 ? "admin" : "global");
        n = sec && sec->type == YAML_MAPPING_NODE ? map_get(c, sec, "listen") : NULL;
    }
    kcw_errors_add(&cfg->warnings, c->file, n ? node_line(n) : 0, n ? node_col(n) : 0,
                   "admin.listen: %s; set admin.token_file or admin.basic_auth", msg);
}

static void parse_global(ctx_t *c, const node_t *root, kcw_config_t *cfg, bool *external_url_set)
{
    static const char *const keys[] = {"evaluation_interval",
                                       "external_labels",
                                       "state_dir",
                                       "audit_retention",
                                       "notification_max_age",
                                       "listen",
                                       "external_url",
                                       "log",
                                       NULL};
    static const char *const log_keys[] = {"format", "level", NULL};
    char gp[PATH_LEN], lp[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "global", keys, NULL, gp);
    if (!m)
        return;
    get_duration_min(c, m, "global", "evaluation_interval", &cfg->evaluation_interval_ms,
                     KCW_MIN_INTERVAL_MS);
    get_string(c, m, "global", "state_dir", &cfg->state_dir);
    get_duration(c, m, "global", "audit_retention", &cfg->audit_retention_ms, true);
    get_duration(c, m, "global", "notification_max_age", &cfg->notification_max_age_ms, true);
    if (get_string(c, m, "global", "listen", &cfg->listen) == 0 && !listen_ok(cfg->listen))
        err_node(c, map_get(c, m, "listen"),
                 "global.listen: expected host:port (e.g. 127.0.0.1:9464), got \"%s\"",
                 cfg->listen);
    *external_url_set = get_url(c, m, "global", "external_url", &cfg->external_url, true) == 0;

    const node_t *labels = as_map(c, map_get(c, m, "external_labels"), "global.external_labels");
    for (size_t i = 0; labels && i + 1 < nkids(labels); i += 2) {
        const node_t *k = kid(c, labels, i);
        if (k->type != YAML_SCALAR_NODE) {
            err_node(c, k, "global.external_labels: label names must be strings");
            continue;
        }
        if (!label_name_ok(sval(k))) {
            err_node(c, k, "global.external_labels: invalid label name \"%s\"", sval(k));
            continue;
        }
        if (kcw_labels_get(&cfg->external_labels, sval(k))) {
            err_node(c, k, "global.external_labels: duplicate label \"%s\"", sval(k));
            continue;
        }
        char path[PATH_LEN], *val;
        if (scalar_value(c, kid(c, labels, i + 1), join(path, "global.external_labels", sval(k)),
                         "a string", &val) != 0)
            continue;
        if (kcw_labels_set(&cfg->external_labels, sval(k), val) < 0)
            c->oom = true;
        free(val);
    }

    const node_t *log = sub_map(c, m, gp, "log", log_keys, NULL, lp);
    if (log) {
        char *s = NULL;
        if (get_string(c, log, lp, "format", &s) == 0) {
            if (strcmp(s, "logfmt") == 0)
                cfg->log_format = KCW_LOG_LOGFMT;
            else if (strcmp(s, "json") == 0)
                cfg->log_format = KCW_LOG_JSON;
            else
                err_node(c, map_get(c, log, "format"),
                         "global.log.format: expected logfmt or json, got \"%s\"", s);
        }
        free(s);
        s = NULL;
        if (get_string(c, log, lp, "level", &s) == 0) {
            int lvl = kcw_log_level_parse(s);
            if (lvl < 0)
                err_node(c, map_get(c, log, "level"),
                         "global.log.level: expected debug, info, warn or error, got \"%s\"", s);
            else
                cfg->log_level = lvl;
        }
        free(s);
    }
}

static void parse_prometheus(ctx_t *c, const node_t *root, kcw_prometheus_conf_t *p)
{
    static const char *const keys[] = {
        "url", "external_url", "timeout", "basic_auth", "bearer_token", "bearer_token_file",
        "tls", NULL};
    char pp[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "prometheus", keys, NULL, pp);
    if (!m)
        return;
    get_url(c, m, pp, "url", &p->url, true);
    get_url(c, m, pp, "external_url", &p->external_url, true);
    get_duration(c, m, pp, "timeout", &p->timeout_ms, true);
    parse_basic_auth(c, m, pp, &p->basic_auth);
    parse_bearer(c, m, pp, &p->bearer_token);
    parse_tls(c, m, pp, &p->tls);
}

static bool cluster_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static int url_item(ctx_t *c, const node_t *v, const char *path, char **out)
{
    return item_null(c, url_value(c, v, path, true, out), v, path, "a URL");
}

static void parse_cluster_urls(ctx_t *c, const node_t *m, const char *path, kcw_cluster_conf_t *cl)
{
    if (!exclusive(c, m, path, "url", "urls"))
        return;
    char p[PATH_LEN];
    if (map_key(c, m, "url")) {
        char *u;
        int rc = url_value(c, map_get(c, m, "url"), join(p, path, "url"), true, &u);
        if (rc == 1)
            err_node(c, map_get(c, m, "url"), "%s: must not be empty", p);
        if (rc != 0)
            return;
        if (!(cl->urls = calloc(1, sizeof(char *)))) {
            free(u);
            c->oom = true;
            return;
        }
        cl->urls[0] = u;
        cl->n_urls = 1;
        return;
    }
    const node_t *v = map_get(c, m, "urls");
    if (!v) {
        err_node(c, m, "%s: missing required key \"urls\"", path);
        return;
    }
    const node_t *seq = as_seq(c, v, join(p, path, "urls"));
    if (!seq || nkids(seq) == 0) {
        if (seq || is_null(v)) /* seq is v when set */
            err_node(c, v, "%s: at least one URL is required", p);
        return;
    }
    string_list(c, seq, p, url_item, &cl->urls, &cl->n_urls);
}

static void cluster_defaults(kcw_cluster_conf_t *cl)
{
    cl->poll_interval_ms = 5 * SEC;
    cl->timeout_ms = 10 * SEC;
    cl->max_body_bytes = KCW_DEFAULT_MAX_BODY_BYTES;
}

static const char *cluster_name_at(const void *items, size_t j)
{
    return ((const kcw_cluster_conf_t *)items)[j].name;
}

static void parse_connect(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    static const char *const keys[] = {"name",       "urls", "url", "poll_interval",
                                       "timeout",    "max_body_bytes", "basic_auth",
                                       "tls",        NULL};
    /* `connect: []` says it outright: no Connect cluster, kcwatch evaluates
     * PromQL rules only. */
    const node_t *given = map_get(c, root, "connect");
    if (given && given->type == YAML_SEQUENCE_NODE && nkids(given) == 0)
        return;
    void *items;
    const node_t *seq = map_list(c, root, "connect", "cluster", sizeof(*cfg->clusters), &items);
    if (!seq)
        return;
    cfg->clusters = items;
    for (size_t i = 0; i < nkids(seq); i++) {
        kcw_cluster_conf_t *cl = &cfg->clusters[cfg->n_clusters++];
        cluster_defaults(cl);
        char path[PATH_LEN];
        const node_t *m = map_list_item(c, seq, i, "connect", keys, NULL, path);
        if (!m)
            continue;
        int rc = required(c, get_string(c, m, path, "name", &cl->name), m, path, "name");
        if (rc == 0 && !cluster_name_ok(cl->name))
            err_node(c, map_get(c, m, "name"),
                     "%s.name: \"%s\" may only contain letters, digits, '_', '.', '-'", path,
                     cl->name);
        else if (rc == 0)
            check_unique_name(c, seq, i, path, "cluster", cl->name, cfg->clusters, cluster_name_at);
        parse_cluster_urls(c, m, path, cl);
        get_duration_min(c, m, path, "poll_interval", &cl->poll_interval_ms, KCW_MIN_INTERVAL_MS);
        get_duration(c, m, path, "timeout", &cl->timeout_ms, true);
        int max_body;
        /* 1 KiB .. 1 GiB: a status poll needs about 240 bytes per connector. */
        if (get_int(c, m, path, "max_body_bytes", &max_body, 1024, 1024LL * 1024 * 1024) == 0)
            cl->max_body_bytes = (size_t)max_body;
        parse_basic_auth(c, m, path, &cl->basic_auth);
        parse_tls(c, m, path, &cl->tls);
    }
}

/* A name for ownership records: the same characters as a cluster name. */
static int get_instance_name(ctx_t *c, const node_t *m, const char *path, char **dst)
{
    int rc = get_string(c, m, path, "instance", dst);
    if (rc == 0 && !cluster_name_ok(*dst))
        err_node(c, map_get(c, m, "instance"),
                 "%s.instance: \"%s\" may only contain letters, digits, '_', '.', '-'", path, *dst);
    return rc;
}

static void parse_ha(ctx_t *c, const node_t *root, kcw_ha_conf_t *ha)
{
    static const char *const keys[] = {"etcd", "instance", NULL};
    static const char *const etcd_keys[] = {"endpoints", "prefix", "ttl", NULL};
    char p[PATH_LEN], ep[PATH_LEN], lp[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "ha", keys, NULL, p);
    if (!m)
        return;
    get_instance_name(c, m, p, &ha->instance);
    const node_t *e = sub_map(c, m, p, "etcd", etcd_keys, NULL, ep);
    if (!e)
        return;
    const node_t *seq = as_seq(c, map_get(c, e, "endpoints"), join(lp, ep, "endpoints"));
    if (seq)
        string_list(c, seq, lp, url_item, &ha->endpoints, &ha->n_endpoints);
    if (get_string(c, e, ep, "prefix", &ha->prefix) == 0) {
        size_t n = strlen(ha->prefix);
        while (n > 1 && ha->prefix[n - 1] == '/')
            ha->prefix[--n] = '\0';
        if (ha->prefix[0] != '/' || n < 2)
            err_node(c, map_get(c, e, "prefix"),
                     "%s.prefix: \"%s\" must start with '/' and name something", ep, ha->prefix);
    }
    if (get_duration(c, e, ep, "ttl", &ha->ttl_ms, true) == 0 &&
        (ha->ttl_ms < 2 * SEC || ha->ttl_ms % SEC != 0 || ha->ttl_ms > HOUR))
        err_node(c, map_get(c, e, "ttl"),
                 "%s.ttl: must be whole seconds between 2s and 1h (etcd leases count seconds)", ep);
}

/* A regex is kept even when it does not compile: the error fails the load. */
static int trace_item(ctx_t *c, const node_t *v, const char *path, char **out)
{
    int rc = item_null(c, scalar_value(c, v, path, "a regex", out), v, path, "a regex");
    if (rc == 0)
        check_regex(c, v, path, *out, false);
    return rc;
}

/* Reads the list of regex strings (validated). */
static void parse_traces(ctx_t *c, const node_t *v, kcw_remediation_conf_t *r)
{
    const char *path = "remediation.unrecoverable_traces";
    const node_t *seq = as_seq(c, v, path);
    /* An explicit empty list disables the built-in patterns: string_list
     * leaves an empty array. */
    if (seq)
        string_list(c, seq, path, trace_item, &r->unrecoverable_traces, &r->n_unrecoverable_traces);
}

static void parse_inhibit_list(ctx_t *c, const node_t *parent, const char *key, const char *where,
                               kcw_inhibit_rule_t **rules, size_t *n_rules);

static void parse_remediation(ctx_t *c, const node_t *root, kcw_remediation_conf_t *r,
                              bool *traces_set)
{
    static const char *const keys[] = {
        "enabled",        "dry_run", "max_concurrent",       "backoff", "budget", "stable_period",
        "verify_timeout", "exclude", "unrecoverable_traces", "heal_wait", "storm", "rate",
        "inhibit", NULL};
    static const char *const storm_keys[] = {"enabled", "min_tasks", "min_fraction", "window",
                                             "inhibit_notifications", NULL};
    static const char *const backoff_keys[] = {"initial", "max", "multiplier", "jitter", NULL};
    static const char *const budget_keys[] = {"max_restarts", "window", NULL};
    static const char *const exclude_keys[] = {"connector", NULL};
    char p[PATH_LEN], bp[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "remediation", keys, NULL, p);
    if (!m)
        return;
    get_bool(c, m, p, "enabled", &r->enabled);
    get_bool(c, m, p, "dry_run", &r->dry_run);
    get_int(c, m, p, "max_concurrent", &r->max_concurrent, 1, 1000);
    get_duration(c, m, p, "stable_period", &r->stable_period_ms, true);
    get_duration(c, m, p, "verify_timeout", &r->verify_timeout_ms, true);
    if (get_duration(c, m, p, "heal_wait", &r->heal_wait_ms, false) == 0 &&
        r->heal_wait_ms > HOUR) {
        char hp[PATH_LEN];
        err_node(c, map_get(c, m, "heal_wait"), "%s: must be at most 1h (0 sends at once)",
                 join(hp, p, "heal_wait"));
    }

    const node_t *b = sub_map(c, m, p, "backoff", backoff_keys, NULL, bp);
    if (b) {
        int ri = get_duration(c, b, bp, "initial", &r->backoff_initial_ms, true);
        int rm = get_duration(c, b, bp, "max", &r->backoff_max_ms, true);
        get_double(c, b, bp, "multiplier", &r->backoff_multiplier, 1.0, 100.0);
        get_double(c, b, bp, "jitter", &r->backoff_jitter, 0.0, 1.0);
        if (ri >= 0 && rm >= 0 && r->backoff_max_ms < r->backoff_initial_ms) {
            char a[64], z[64];
            const node_t *at = rm == 0 ? map_get(c, b, "max") : map_get(c, b, "initial");
            err_node(c, at, "%s: initial (%s) is larger than max (%s)", bp,
                     kcw_duration_format(r->backoff_initial_ms, a, sizeof(a)),
                     kcw_duration_format(r->backoff_max_ms, z, sizeof(z)));
        }
    }
    get_double(c, m, p, "rate", &r->rate_per_min, 0.1, 100000.0);
    parse_inhibit_list(c, m, "inhibit", "remediation.inhibit", &r->inhibit, &r->n_inhibit);
    const node_t *st = sub_map(c, m, p, "storm", storm_keys, NULL, bp);
    if (st) {
        get_bool(c, st, bp, "enabled", &r->storm_enabled);
        get_int(c, st, bp, "min_tasks", &r->storm_min_tasks, 1, 1000000);
        get_double(c, st, bp, "min_fraction", &r->storm_min_fraction, 0.0, 1.0);
        if (get_duration(c, st, bp, "window", &r->storm_window_ms, true) == 0 &&
            r->storm_window_ms > HOUR) {
            char wp[PATH_LEN];
            err_node(c, map_get(c, st, "window"), "%s: must be at most 1h",
                     join(wp, bp, "window"));
        }
        get_bool(c, st, bp, "inhibit_notifications", &r->storm_inhibit);
    }
    const node_t *bu = sub_map(c, m, p, "budget", budget_keys, NULL, bp);
    if (bu) {
        get_int(c, bu, bp, "max_restarts", &r->budget_max_restarts, 1, KCW_MAX_BUDGET_RESTARTS);
        get_duration_min(c, bu, bp, "window", &r->budget_window_ms, KCW_MIN_BUDGET_WINDOW_MS);
    }
    const node_t *ex = sub_map(c, m, p, "exclude", exclude_keys, NULL, bp);
    if (ex) {
        if (get_string(c, ex, bp, "connector", &r->exclude_connector) == 0)
            check_regex(c, map_get(c, ex, "connector"), "remediation.exclude.connector",
                        r->exclude_connector, true);
    }
    const node_t *tr = map_get(c, m, "unrecoverable_traces");
    if (!is_null(tr)) {
        *traces_set = true;
        parse_traces(c, tr, r);
    }
}

/* A glob, resolved against the config's directory; null counts as empty. */
static int rule_file_item(ctx_t *c, const node_t *v, const char *path, char **out)
{
    char *s;
    int rc = scalar_value(c, v, path, "a glob", &s);
    if (rc == 0 && !*s) {
        free(s);
        rc = 1;
    }
    if (rc == 1)
        err_node(c, v, "%s: must not be empty", path);
    if (rc != 0)
        return rc;
    *out = resolve_path(c, s);
    free(s);
    return *out ? 0 : -1;
}

static void parse_rule_files(ctx_t *c, const node_t *root, kcw_config_t *cfg, bool *set)
{
    const node_t *seq = as_seq(c, map_get(c, root, "rule_files"), "rule_files");
    if (!seq)
        return;
    *set = true;
    string_list(c, seq, "rule_files", rule_file_item, &cfg->rule_files, &cfg->n_rule_files);
}

static void receiver_defaults(kcw_receiver_conf_t *r)
{
    r->kind = KCW_RECEIVER_LOG;
    r->timeout_ms = 10 * SEC;
    r->send_resolved = true;
    r->resend_interval_ms = MIN; /* Prometheus' --rules.alert.resend-delay */
}

const char *kcw_receiver_kind_name(kcw_receiver_kind_t kind)
{
    switch (kind) {
    case KCW_RECEIVER_LOG: return "log";
    case KCW_RECEIVER_WEBHOOK: return "webhook";
    case KCW_RECEIVER_SLACK: return "slack";
    case KCW_RECEIVER_PAGERDUTY: return "pagerduty";
    case KCW_RECEIVER_ALERTMANAGER: return "alertmanager";
    }
    return "unknown";
}

/* A URL that carries a token (Slack's incoming webhooks): from key or
 * key_file, checked without ever echoing it, and registered with the log
 * redactor whole and by its path (a log line may show only the path). */
static void get_secret_url(ctx_t *c, const node_t *m, const char *path, const char *key,
                           char **dst)
{
    char file_key[64], p[PATH_LEN];
    snprintf(file_key, sizeof(file_key), "%s_file", key);
    if (!exclusive(c, m, path, key, file_key))
        return;
    char *s = NULL;
    const node_t *v = map_get(c, m, map_key(c, m, key) ? key : file_key);
    if (map_key(c, m, key)) {
        if (get_secret(c, m, path, key, &s) != 0)
            return;
    } else if (map_key(c, m, file_key)) {
        if (get_secret_file(c, m, path, file_key, &s) != 0)
            return;
    } else {
        err_node(c, m, "%s: missing required key \"%s\" (or %s)", path, key, file_key);
        return;
    }
    join(p, path, map_key(c, m, key) ? key : file_key);
    char why[128];
    if (!url_ok(c, s, why, sizeof(why))) {
        err_node(c, v, "%s: invalid URL (not shown: it is a secret): %s", p, why);
        free(s);
        return;
    }
    const char *after_scheme = strstr(s, "://");
    const char *slash = after_scheme ? strchr(after_scheme + 3, '/') : NULL;
    if (slash && strlen(slash) > 1)
        kcw_log_add_secret(slash);
    replace(dst, s);
}

/* A notification template (slack text, pagerduty summary), compiled where it
 * stands in the file so errors point at the template's own characters. */
static void get_template(ctx_t *c, const node_t *m, const char *path, const char *key,
                         kcw_template_t **dst)
{
    char p[PATH_LEN], *s;
    const node_t *v;
    if (nonempty_field(c, m, path, key, "a template", p, &v, &s) != 0)
        return;
    kcw_template_t *t = NULL;
    int rc = kcw_ydoc_compile_template(&c->y, c->text, c->len, v, s, &t);
    if (rc == -ENOMEM)
        c->oom = true;
    free(s);
    if (rc == 0) {
        kcw_template_free(*dst);
        *dst = t;
    }
}

/* The kind's mapping under key, NULL (reported) when it is null or not a map. */
static const node_t *kind_map(ctx_t *c, const node_t *v, const char *path, const char *required_key,
                              const char *const *keys)
{
    if (is_null(v)) {
        err_node(c, v, "%s: missing required key \"%s\"", path, required_key);
        return NULL;
    }
    const node_t *m = as_map(c, v, path);
    if (m)
        check_keys(c, m, path, keys, NULL);
    return m;
}

static void parse_webhook(ctx_t *c, const node_t *v, const char *path, kcw_receiver_conf_t *r)
{
    static const char *const keys[] = {
        "url",          "timeout",           "send_resolved", "max_alerts", "basic_auth",
        "bearer_token", "bearer_token_file", "tls",           NULL};
    r->kind = KCW_RECEIVER_WEBHOOK;
    const node_t *m = kind_map(c, v, path, "url", keys);
    if (!m)
        return;
    required(c, get_url(c, m, path, "url", &r->url, false), m, path, "url");
    get_duration(c, m, path, "timeout", &r->timeout_ms, true);
    get_bool(c, m, path, "send_resolved", &r->send_resolved);
    get_int(c, m, path, "max_alerts", &r->max_alerts, 0, INT_MAX);
    parse_basic_auth(c, m, path, &r->basic_auth);
    parse_bearer(c, m, path, &r->bearer_token);
    parse_tls(c, m, path, &r->tls);
}

static void parse_slack(ctx_t *c, const node_t *v, const char *path, kcw_receiver_conf_t *r)
{
    static const char *const keys[] = {"url",      "url_file",   "channel",  "username",
                                       "icon_emoji", "icon_url", "text",     "send_resolved",
                                       "timeout",  "tls",        NULL};
    r->kind = KCW_RECEIVER_SLACK;
    const node_t *m = kind_map(c, v, path, "url", keys);
    if (!m)
        return;
    get_secret_url(c, m, path, "url", &r->url);
    get_string(c, m, path, "channel", &r->channel);
    get_string(c, m, path, "username", &r->username);
    get_string(c, m, path, "icon_emoji", &r->icon_emoji);
    get_url(c, m, path, "icon_url", &r->icon_url, false);
    get_template(c, m, path, "text", &r->text);
    get_bool(c, m, path, "send_resolved", &r->send_resolved);
    get_duration(c, m, path, "timeout", &r->timeout_ms, true);
    parse_tls(c, m, path, &r->tls);
}

static void parse_pagerduty(ctx_t *c, const node_t *v, const char *path, kcw_receiver_conf_t *r)
{
    static const char *const keys[] = {"routing_key", "routing_key_file", "url",
                                       "dedup",       "summary",          "send_resolved",
                                       "timeout",     "tls",              NULL};
    r->kind = KCW_RECEIVER_PAGERDUTY;
    const node_t *m = kind_map(c, v, path, "routing_key", keys);
    if (!m)
        return;
    if (exclusive(c, m, path, "routing_key", "routing_key_file")) {
        int rc = map_key(c, m, "routing_key")
                     ? get_secret(c, m, path, "routing_key", &r->routing_key)
                     : get_secret_file(c, m, path, "routing_key_file", &r->routing_key);
        if (rc == 1)
            err_node(c, m, "%s: missing required key \"routing_key\" (or routing_key_file)",
                     path);
        else if (rc == 0 && !*r->routing_key)
            err_node(c, map_get(c, m, "routing_key") ? map_get(c, m, "routing_key")
                                                     : map_get(c, m, "routing_key_file"),
                     "%s.routing_key: must not be empty", path);
    }
    if (get_url(c, m, path, "url", &r->url, false) == 1 &&
        !(r->url = strdup(KCW_PAGERDUTY_DEFAULT_URL)))
        c->oom = true;
    char p[PATH_LEN], *dedup;
    const node_t *dv;
    if (field(c, m, path, "dedup", "alert or group", p, &dv, &dedup) == 0) {
        if (strcmp(dedup, "group") == 0)
            r->per_group = true;
        else if (strcmp(dedup, "alert") != 0)
            err_node(c, dv, "%s: expected alert or group, got \"%s\"", p, dedup);
        free(dedup);
    }
    get_template(c, m, path, "summary", &r->summary);
    get_bool(c, m, path, "send_resolved", &r->send_resolved);
    get_duration(c, m, path, "timeout", &r->timeout_ms, true);
    parse_tls(c, m, path, &r->tls);
}

static void parse_alertmanager(ctx_t *c, const node_t *v, const char *path,
                               kcw_receiver_conf_t *r)
{
    static const char *const keys[] = {"urls",         "resend_interval",   "timeout",
                                       "basic_auth",   "bearer_token",      "bearer_token_file",
                                       "tls",          NULL};
    r->kind = KCW_RECEIVER_ALERTMANAGER;
    const node_t *m = kind_map(c, v, path, "urls", keys);
    if (!m)
        return;
    char p[PATH_LEN];
    const node_t *uv = map_get(c, m, "urls");
    if (!uv) {
        err_node(c, m, "%s: missing required key \"urls\"", path);
    } else {
        const node_t *seq = as_seq(c, uv, join(p, path, "urls"));
        if (seq && nkids(seq) > 0)
            string_list(c, seq, p, url_item, &r->urls, &r->n_urls);
        else if (seq || is_null(uv))
            err_node(c, uv, "%s: at least one URL is required", p);
    }
    get_duration(c, m, path, "resend_interval", &r->resend_interval_ms, true);
    get_duration(c, m, path, "timeout", &r->timeout_ms, true);
    parse_basic_auth(c, m, path, &r->basic_auth);
    parse_bearer(c, m, path, &r->bearer_token);
    parse_tls(c, m, path, &r->tls);
}

static const char *receiver_name_at(const void *items, size_t j)
{
    return ((const kcw_receiver_conf_t *)items)[j].name;
}

static void parse_receivers(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    static const char *const kinds[] = {"webhook", "slack", "pagerduty", "alertmanager", "log"};
    static const char *const keys[] = {"name",  "webhook", "slack", "pagerduty",
                                       "alertmanager", "log", NULL};
    void *items;
    const node_t *seq = map_list(c, root, "receivers", "receiver", sizeof(*cfg->receivers), &items);
    if (!seq)
        return;
    cfg->receivers = items;
    for (size_t i = 0; i < nkids(seq); i++) {
        kcw_receiver_conf_t *r = &cfg->receivers[cfg->n_receivers++];
        receiver_defaults(r);
        char path[PATH_LEN];
        const node_t *m = map_list_item(c, seq, i, "receivers", keys, NULL, path);
        if (!m)
            continue;
        if (required(c, get_string(c, m, path, "name", &r->name), m, path, "name") == 0)
            check_unique_name(c, seq, i, path, "receiver", r->name, cfg->receivers,
                              receiver_name_at);
        /* Exactly one kind: the first one in the file is parsed, later ones
         * are reported where they stand. */
        const node_t *first = NULL;
        size_t first_kind = 0;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            const node_t *key = map_key(c, m, kinds[k]);
            if (!key)
                continue;
            if (!first || node_line(key) < node_line(first) ||
                (node_line(key) == node_line(first) && node_col(key) < node_col(first))) {
                if (first)
                    err_node(c, first, "%s: a receiver has exactly one kind (webhook, slack, "
                                       "pagerduty, alertmanager or log)", path);
                first = key;
                first_kind = k;
            } else {
                err_node(c, key, "%s: a receiver has exactly one kind (webhook, slack, "
                                 "pagerduty, alertmanager or log)", path);
            }
        }
        if (!first) {
            err_node(c, m, "%s: needs a kind: webhook, slack, pagerduty, alertmanager or log",
                     path);
            continue;
        }
        char kp[PATH_LEN];
        const node_t *kv = map_get(c, m, kinds[first_kind]);
        join(kp, path, kinds[first_kind]);
        switch (first_kind) {
        case 0: parse_webhook(c, kv, kp, r); break;
        case 1: parse_slack(c, kv, kp, r); break;
        case 2: parse_pagerduty(c, kv, kp, r); break;
        case 3: parse_alertmanager(c, kv, kp, r); break;
        default:
            if (!is_null(kv) && !(kv->type == YAML_MAPPING_NODE && nkids(kv) == 0))
                err_node(c, kv, "%s.log: takes no settings (write log: {})", path);
        }
    }
}

/* A label name, or "..." for every label when all is allowed. */
static int label_item(ctx_t *c, const node_t *v, const char *path, char **out, bool all)
{
    int rc = item_null(c, scalar_value(c, v, path, "a label name", out), v, path, "a label name");
    if (rc == 0 && !(all && strcmp(*out, "...") == 0) && !label_name_ok(*out)) {
        err_node(c, v, "%s: invalid label name \"%s\"", path, *out);
        free(*out);
        *out = NULL;
        return -1;
    }
    return rc;
}

static int group_by_item(ctx_t *c, const node_t *v, const char *path, char **out)
{
    return label_item(c, v, path, out, true);
}

static int equal_item(ctx_t *c, const node_t *v, const char *path, char **out)
{
    return label_item(c, v, path, out, false);
}

/* `matchers:` a list of Alertmanager matcher strings, each of which may hold
 * several ('{a="1", b=~"x"}'); every bad one reported at its item. */
static void parse_matchers(ctx_t *c, const node_t *m, const char *parent, const char *key,
                           kcw_matchers_t *ms)
{
    char p[PATH_LEN];
    const node_t *seq = as_seq(c, map_get(c, m, key), join(p, parent, key));
    for (size_t i = 0; seq && i < nkids(seq); i++) {
        char ip[PATH_LEN], *text, why[512];
        const node_t *v = kid(c, seq, i);
        join_index(ip, p, i);
        if (item_null(c, scalar_value(c, v, ip, "a matcher string", &text), v, ip,
                      "a matcher string") != 0)
            continue;
        int rc = kcw_matchers_parse(ms, text, why, sizeof(why));
        if (rc == -ENOMEM)
            c->oom = true;
        else if (rc < 0)
            err_node(c, v, "%s: %s", ip, why);
        free(text);
    }
}

static void check_receiver_name(ctx_t *c, const node_t *m, const char *path, const char *name,
                                const kcw_config_t *cfg, bool receivers_set)
{
    /* Without a receivers list the built-in "log" receiver is the only one. */
    if (receivers_set ? !kcw_config_receiver(cfg, name) : strcmp(name, "log") != 0)
        err_node(c, map_get(c, m, "receiver"), "%s.receiver: unknown receiver \"%s\"", path,
                 name);
}

static void route_unset(kcw_route_conf_t *rt)
{
    rt->group_wait_ms = rt->group_interval_ms = rt->repeat_interval_ms = KCW_ROUTE_UNSET;
}

static void parse_route_node(ctx_t *c, const node_t *m, const char *p, kcw_route_conf_t *rt,
                             const kcw_config_t *cfg, bool receivers_set, int depth)
{
    bool root = depth == 0;
    if (get_string(c, m, p, "receiver", &rt->receiver) == 0)
        check_receiver_name(c, m, p, rt->receiver, cfg, receivers_set);
    get_duration(c, m, p, "group_wait", &rt->group_wait_ms, false);
    get_duration(c, m, p, "group_interval", &rt->group_interval_ms, true);
    get_duration(c, m, p, "repeat_interval", &rt->repeat_interval_ms, true);
    char gp[PATH_LEN];
    const node_t *seq = as_seq(c, map_get(c, m, "group_by"), join(gp, p, "group_by"));
    if (seq) {
        string_list(c, seq, gp, group_by_item, &rt->group_by, &rt->n_group_by);
        rt->group_by_set = true;
    }
    if (root) {
        /* Alertmanager's rule: the root takes every alert. */
        if (map_key(c, m, "matchers"))
            err_node(c, map_key(c, m, "matchers"),
                     "route.matchers: the root route matches every alert; put matchers on "
                     "its routes");
        if (map_key(c, m, "continue"))
            err_node(c, map_key(c, m, "continue"),
                     "route.continue: the root route cannot continue");
    } else {
        parse_matchers(c, m, p, "matchers", &rt->matchers);
        get_bool(c, m, p, "continue", &rt->cont);
    }
    char rp[PATH_LEN];
    const node_t *routes = as_seq(c, map_get(c, m, "routes"), join(rp, p, "routes"));
    if (!routes || nkids(routes) == 0)
        return;
    if (depth >= KCW_ROUTE_DEPTH_MAX) {
        err_node(c, routes, "%s: routes nest deeper than %d levels", rp, KCW_ROUTE_DEPTH_MAX);
        return;
    }
    if (!(rt->routes = calloc(nkids(routes), sizeof(*rt->routes)))) {
        c->oom = true;
        return;
    }
    static const char *const keys[] = {"receiver",        "group_by", "group_wait",
                                       "group_interval",  "repeat_interval", "matchers",
                                       "continue",        "routes",   NULL};
    for (size_t i = 0; i < nkids(routes); i++) {
        kcw_route_conf_t *child = &rt->routes[rt->n_routes++];
        route_unset(child);
        char cp[PATH_LEN];
        const node_t *cm = map_list_item(c, routes, i, rp, keys, NULL, cp);
        if (cm)
            parse_route_node(c, cm, cp, child, cfg, receivers_set, depth + 1);
    }
}

static void parse_route(ctx_t *c, const node_t *root, kcw_config_t *cfg, bool receivers_set)
{
    static const char *const keys[] = {"receiver",       "group_by",        "group_wait",
                                       "group_interval", "repeat_interval", "routes",
                                       "matchers",       "continue",        NULL};
    char p[PATH_LEN];
    const node_t *m = sub_map(c, root, "", "route", keys, NULL, p);
    if (m)
        parse_route_node(c, m, p, &cfg->route, cfg, receivers_set, 0);
}

/* A weekday name or range, as a list item. */
static void parse_weekly(ctx_t *c, const node_t *seq, const char *path, kcw_silence_t *s)
{
    static const char *const keys[] = {"weekdays", "start_time", "end_time", NULL};
    if (nkids(seq) > KCW_SILENCE_WINDOWS_MAX) {
        err_node(c, seq, "%s: at most %d windows", path, KCW_SILENCE_WINDOWS_MAX);
        return;
    }
    if (!(s->windows = calloc(nkids(seq), sizeof(*s->windows)))) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < nkids(seq); i++) {
        char wp[PATH_LEN], fp[PATH_LEN], *text;
        const node_t *w = map_list_item(c, seq, i, path, keys, NULL, wp), *v;
        if (!w)
            continue;
        kcw_weekly_window_t win = {.weekdays = 0x7f, .start_min = 0, .end_min = 1440};
        bool ok = true;
        const node_t *days = as_seq(c, map_get(c, w, "weekdays"), join(fp, wp, "weekdays"));
        if (days) {
            win.weekdays = 0;
            for (size_t d = 0; d < nkids(days); d++) {
                char dp[PATH_LEN];
                unsigned bits;
                const node_t *dv = kid(c, days, d);
                join_index(dp, fp, d);
                if (item_null(c, scalar_value(c, dv, dp, "a weekday", &text), dv, dp,
                              "a weekday") != 0) {
                    ok = false;
                    continue;
                }
                if (kcw_weekdays_parse(text, &bits) < 0) {
                    err_node(c, dv, "%s: expected a weekday or a range (monday, sat, "
                                    "monday:friday), got \"%s\"", dp, text);
                    ok = false;
                } else {
                    win.weekdays |= bits;
                }
                free(text);
            }
        }
        const char *times[2] = {"start_time", "end_time"};
        int *mins[2] = {&win.start_min, &win.end_min};
        for (int t = 0; t < 2; t++) {
            int rc = required(c, field(c, w, wp, times[t], "a time (HH:MM)", fp, &v, &text), w,
                              wp, times[t]);
            if (rc != 0) {
                ok = false;
                continue;
            }
            if (kcw_time_of_day_parse(text, mins[t]) < 0) {
                err_node(c, v, "%s: expected HH:MM (00:00 to 24:00), got \"%s\"", fp, text);
                ok = false;
            }
            free(text);
        }
        if (ok && win.start_min == win.end_min) {
            err_node(c, w, "%s: start_time and end_time are equal (an empty window)", wp);
            ok = false;
        }
        if (ok)
            s->windows[s->n_windows++] = win;
    }
}

static int get_time(ctx_t *c, const node_t *m, const char *parent, const char *key, int64_t *dst)
{
    char p[PATH_LEN], *text;
    const node_t *v;
    int rc = field(c, m, parent, key, "an RFC 3339 time", p, &v, &text);
    if (rc != 0)
        return rc;
    if (kcw_rfc3339_parse(text, dst) < 0) {
        err_node(c, v, "%s: expected an RFC 3339 time (2026-12-01T02:00:00Z), got \"%s\"", p,
                 text);
        rc = -1;
    }
    free(text);
    return rc;
}

static void parse_silences(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    static const char *const keys[] = {"matchers", "starts_at", "ends_at",
                                       "weekly",   "comment",   "created_by", NULL};
    void *items;
    const node_t *seq = map_list(c, root, "silences", "silence", sizeof(*cfg->silences), &items);
    if (!seq)
        return;
    cfg->silences = items;
    if (nkids(seq) > KCW_SILENCES_MAX / 2)
        err_node(c, seq, "silences: at most %d in the config", KCW_SILENCES_MAX / 2);
    for (size_t i = 0; i < nkids(seq) && i < KCW_SILENCES_MAX / 2; i++) {
        kcw_silence_t *s = &cfg->silences[cfg->n_silences++];
        s->from_config = true;
        snprintf(s->id, sizeof(s->id), "config-%zu", i + 1);
        char path[PATH_LEN];
        const node_t *m = map_list_item(c, seq, i, "silences", keys, NULL, path);
        if (!m)
            continue;
        if (!map_key(c, m, "matchers"))
            err_node(c, m, "%s: missing required key \"matchers\"", path);
        size_t before = c->errs->n;
        parse_matchers(c, m, path, "matchers", &s->matchers);
        if (c->errs->n == before && map_key(c, m, "matchers") &&
            kcw_matchers_match_empty(&s->matchers))
            err_node(c, map_get(c, m, "matchers"),
                     "%s.matchers: would match every alert (at least one matcher must not "
                     "match an empty label set)", path);
        get_time(c, m, path, "starts_at", &s->starts_at_ms);
        if (get_time(c, m, path, "ends_at", &s->ends_at_ms) == 0 && s->starts_at_ms &&
            s->ends_at_ms <= s->starts_at_ms)
            err_node(c, map_get(c, m, "ends_at"), "%s.ends_at: must be after starts_at", path);
        char wp[PATH_LEN];
        const node_t *weekly = as_seq(c, map_get(c, m, "weekly"), join(wp, path, "weekly"));
        if (weekly && nkids(weekly) > 0)
            parse_weekly(c, weekly, wp, s);
        get_string(c, m, path, "comment", &s->comment);
        get_string(c, m, path, "created_by", &s->created_by);
    }
}

/* A list of Alertmanager inhibit rules at parent's key, named where in its
 * errors (inhibit_rules, remediation.inhibit). */
static void parse_inhibit_list(ctx_t *c, const node_t *parent, const char *key, const char *where,
                               kcw_inhibit_rule_t **rules, size_t *n_rules)
{
    static const char *const keys[] = {"source_matchers", "target_matchers", "equal", NULL};
    const node_t *seq = as_seq(c, map_get(c, parent, key), where);
    if (!seq)
        return;
    if (nkids(seq) == 0) {
        err_node(c, seq, "%s: at least one rule is required", where);
        return;
    }
    if (!(*rules = calloc(nkids(seq), sizeof(**rules)))) {
        c->oom = true;
        return;
    }
    if (nkids(seq) > KCW_INHIBIT_RULES_MAX)
        err_node(c, seq, "%s: at most %d rules", where, KCW_INHIBIT_RULES_MAX);
    for (size_t i = 0; i < nkids(seq) && i < KCW_INHIBIT_RULES_MAX; i++) {
        kcw_inhibit_rule_t *r = &(*rules)[(*n_rules)++];
        char path[PATH_LEN];
        const node_t *m = map_list_item(c, seq, i, where, keys, NULL, path);
        if (!m)
            continue;
        const char *sides[2] = {"source_matchers", "target_matchers"};
        kcw_matchers_t *lists[2] = {&r->source, &r->target};
        for (int k = 0; k < 2; k++) {
            if (!map_key(c, m, sides[k]))
                err_node(c, m, "%s: missing required key \"%s\"", path, sides[k]);
            parse_matchers(c, m, path, sides[k], lists[k]);
        }
        char ep[PATH_LEN];
        const node_t *eq = as_seq(c, map_get(c, m, "equal"), join(ep, path, "equal"));
        if (eq)
            string_list(c, eq, ep, equal_item, &r->equal, &r->n_equal);
    }
}

static void parse_inhibit_rules(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    parse_inhibit_list(c, root, "inhibit_rules", "inhibit_rules", &cfg->inhibit_rules,
                       &cfg->n_inhibit_rules);
}

/* ------------------------------------------------------------------------ */
/* Defaults, walk, public API                                                */

static int set_scalar_defaults(kcw_config_t *cfg)
{
    cfg->evaluation_interval_ms = 10 * SEC;
    cfg->log_format = KCW_LOG_LOGFMT;
    cfg->log_level = KCW_LOG_INFO;
    cfg->state_dir = strdup("./kcwatch-state");
    cfg->audit_retention_ms = 30 * 24 * 3600 * SEC;
    cfg->notification_max_age_ms = 24 * 3600 * SEC;
    cfg->listen = strdup("127.0.0.1:9464");
    cfg->prometheus.url = strdup("http://localhost:9090");
    cfg->prometheus.timeout_ms = 10 * SEC;

    kcw_remediation_conf_t *r = &cfg->remediation;
    r->enabled = true;
    r->dry_run = false;
    r->max_concurrent = 2;
    r->backoff_initial_ms = 30 * SEC;
    r->backoff_max_ms = 30 * MIN;
    r->backoff_multiplier = 2.0;
    r->backoff_jitter = 0.2;
    r->budget_max_restarts = 5;
    r->budget_window_ms = HOUR;
    r->stable_period_ms = 10 * MIN;
    r->verify_timeout_ms = 2 * MIN;
    r->heal_wait_ms = -1; /* verify_timeout, once that is known */
    r->storm_enabled = true;
    r->storm_min_tasks = 10;
    r->storm_min_fraction = 0.2;
    r->storm_window_ms = MIN;
    r->storm_inhibit = true;
    r->rate_per_min = 30.0;

    cfg->route.group_wait_ms = 30 * SEC;
    cfg->route.group_interval_ms = 5 * MIN;
    cfg->route.repeat_interval_ms = 4 * HOUR;

    cfg->ha.prefix = strdup("/kcwatch");
    cfg->ha.ttl_ms = 10 * SEC;
    return cfg->state_dir && cfg->listen && cfg->prometheus.url && cfg->ha.prefix ? 0 : -ENOMEM;
}

/* Lists that default to something when their key was absent. */
static int set_list_defaults(kcw_config_t *cfg, bool connect_set, bool rules_set,
                             bool receivers_set, bool traces_set, bool external_url_set)
{
    if (!connect_set && cfg->n_clusters == 0) {
        cfg->clusters = calloc(1, sizeof(*cfg->clusters));
        if (!cfg->clusters)
            return -ENOMEM;
        kcw_cluster_conf_t *cl = &cfg->clusters[0];
        cfg->n_clusters = 1;
        cluster_defaults(cl);
        cl->name = strdup("default");
        cl->urls = calloc(1, sizeof(char *));
        if (!cl->name || !cl->urls || !(cl->urls[0] = strdup("http://localhost:8083")))
            return -ENOMEM;
        cl->n_urls = 1;
    }
    if (!rules_set && cfg->n_rule_files == 0) {
        cfg->rule_files = calloc(1, sizeof(char *));
        if (!cfg->rule_files || !(cfg->rule_files[0] = strdup(KCW_DEFAULT_RULES_DIR "/*.yaml")))
            return -ENOMEM;
        cfg->n_rule_files = 1;
    }
    if (!receivers_set && cfg->n_receivers == 0) {
        cfg->receivers = calloc(1, sizeof(*cfg->receivers));
        if (!cfg->receivers)
            return -ENOMEM;
        cfg->n_receivers = 1;
        receiver_defaults(&cfg->receivers[0]);
        if (!(cfg->receivers[0].name = strdup("log")))
            return -ENOMEM;
    }
    if (!cfg->route.receiver && cfg->n_receivers > 0 && cfg->receivers[0].name &&
        !(cfg->route.receiver = strdup(cfg->receivers[0].name)))
        return -ENOMEM;
    if (!traces_set) {
        size_t n = 0;
        while (default_unrecoverable_traces[n])
            n++;
        kcw_remediation_conf_t *r = &cfg->remediation;
        if (!(r->unrecoverable_traces = calloc(n, sizeof(char *))))
            return -ENOMEM;
        for (; r->n_unrecoverable_traces < n; r->n_unrecoverable_traces++) {
            size_t i = r->n_unrecoverable_traces;
            if (!(r->unrecoverable_traces[i] = strdup(default_unrecoverable_traces[i])))
                return -ENOMEM;
        }
    }
    if (!external_url_set) {
        /* A bare ":port" listens everywhere; payload links need a host. */
        const char *host = cfg->listen[0] == ':' ? "localhost" : "";
        free(cfg->external_url);
        if (asprintf(&cfg->external_url, "http://%s%s", host, cfg->listen) < 0) {
            cfg->external_url = NULL;
            return -ENOMEM;
        }
    }
    return 0;
}

static void walk(ctx_t *c, const node_t *root, kcw_config_t *cfg)
{
    static const char *const keys[] = {"global",    "prometheus", "connect",  "remediation",
                                       "rule_files", "receivers", "route",    "silences",
                                       "inhibit_rules", "ha", "admin", NULL};
    bool external_url_set = false, rules_set = false, traces_set = false;
    const node_t *m = NULL;
    if (!is_null(root)) {
        if (root->type != YAML_MAPPING_NODE)
            err_node(c, root, "top level: expected a mapping, got %s", kind_name(root));
        else
            m = root;
    }
    /* A present-but-invalid list must not be papered over by its default. */
    bool connect_set = !is_null(map_get(c, m, "connect"));
    bool receivers_set = !is_null(map_get(c, m, "receivers"));
    if (m) {
        check_keys(c, m, "", keys, NULL);
        parse_global(c, m, cfg, &external_url_set);
        parse_admin(c, m, cfg);
        warn_exposed(c, m, cfg);
        parse_prometheus(c, m, &cfg->prometheus);
        parse_connect(c, m, cfg);
        parse_remediation(c, m, &cfg->remediation, &traces_set);
        parse_rule_files(c, m, cfg, &rules_set);
        parse_receivers(c, m, cfg);
        parse_route(c, m, cfg, receivers_set);
        parse_silences(c, m, cfg);
        parse_inhibit_rules(c, m, cfg);
        parse_ha(c, m, &cfg->ha);
    }
    if (cfg->remediation.heal_wait_ms < 0)
        cfg->remediation.heal_wait_ms = cfg->remediation.verify_timeout_ms;
    if (set_list_defaults(cfg, connect_set, rules_set, receivers_set, traces_set,
                          external_url_set) < 0)
        c->oom = true;
    /* Children take what they do not set from their parents, once, here. */
    char why[256];
    /* No root receiver: the receivers list is broken, and reported. */
    int frc = c->oom || !cfg->route.receiver ? 0 : kcw_route_finish(&cfg->route, why, sizeof(why));
    if (frc == -ENOMEM)
        c->oom = true;
    else if (frc < 0)
        err_node(c, map_get(c, m, "route"), "route: %s", why);
}

/* Errors come out in walk order; show them in file order. Insertion sort is
 * stable and the lists are short. */
static void sort_errors(kcw_errors_t *errs, size_t from)
{
    size_t n = errs->n < errs->cap ? errs->n : errs->cap;
    for (size_t i = from + 1; i < n; i++) {
        kcw_error_t e = errs->items[i];
        size_t j = i;
        while (j > from &&
               (errs->items[j - 1].line > e.line ||
                (errs->items[j - 1].line == e.line && errs->items[j - 1].col > e.col))) {
            errs->items[j] = errs->items[j - 1];
            j--;
        }
        errs->items[j] = e;
    }
}

static char *dir_of(const char *name)
{
    const char *slash = name ? strrchr(name, '/') : NULL;
    if (!slash)
        return NULL;
    return strndup(name, slash == name ? 1 : (size_t)(slash - name));
}

static int load_text(const char *text, size_t len, const char *name, kcw_config_t **out,
                     kcw_errors_t *errs)
{
    *out = NULL;
    size_t before = errs->n;
    ctx_t c = {.file = name, .errs = errs, .text = text, .len = len};
    if (name && strchr(name, '/') && !(c.base_dir = dir_of(name)))
        return -ENOMEM;
    kcw_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg || set_scalar_defaults(cfg) < 0 || (name && !(cfg->path = strdup(name)))) {
        kcw_config_free(cfg);
        free(c.base_dir);
        return -ENOMEM;
    }
    c.y = (kcw_ydoc_t){.file = name, .errs = errs, .max_nodes = MAX_NODES,
                       .max_depth = MAX_DEPTH, .single_document = true};
    int lrc = kcw_ydoc_load(&c.y, text, len,
                            "only one YAML document is allowed in a config file");
    if (lrc == 0) {
        walk(&c, yaml_document_get_root_node(&c.y.doc), cfg);
        kcw_ydoc_free(&c.y);
    } else if (lrc == -ENOMEM) {
        c.oom = true;
    }
    free(c.base_dir);
    int rc = 0;
    if (c.oom) {
        kcw_errors_add(errs, name, 0, 0, "out of memory while loading the config");
        rc = -ENOMEM;
    } else if (errs->n > before) {
        rc = -EINVAL;
    }
    sort_errors(errs, before);
    if (rc < 0) {
        kcw_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int kcw_config_load_string(const char *yaml, const char *name, kcw_config_t **out,
                           kcw_errors_t *errs)
{
    return load_text(yaml ? yaml : "", yaml ? strlen(yaml) : 0, name, out, errs);
}

int kcw_config_load(const char *path, kcw_config_t **out, kcw_errors_t *errs)
{
    *out = NULL;
    if (!path)
        return load_text("", 0, NULL, out, errs);
    char *text;
    size_t len;
    kcw_read_step_t step;
    int rc = kcw_file_read_bounded(path, MAX_CONFIG_BYTES, &text, &len, &step);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        if (step == KCW_READ_OPEN)
            kcw_errors_add(errs, path, 0, 0, "cannot open config: %s", strerror(-rc));
        else if (step == KCW_READ_STAT)
            kcw_errors_add(errs, path, 0, 0,
                           "config must be a regular file of at most %d bytes",
                           MAX_CONFIG_BYTES);
        else
            kcw_errors_add(errs, path, 0, 0, "cannot read config: %s", strerror(-rc));
        return step == KCW_READ_OPEN ? rc : -EINVAL;
    }
    rc = load_text(text, len, path, out, errs);
    free(text);
    return rc;
}

const kcw_receiver_conf_t *kcw_config_receiver(const kcw_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_receivers; i++)
        if (cfg->receivers[i].name && strcmp(cfg->receivers[i].name, name) == 0)
            return &cfg->receivers[i];
    return NULL;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kcw_config_free(kcw_config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    kcw_labels_clear(&cfg->external_labels);
    free(cfg->state_dir);
    free(cfg->listen);
    free(cfg->external_url);
    free(cfg->admin.token);
    basic_auth_free(&cfg->admin.basic_auth);
    kcw_errors_clear(&cfg->warnings);
    free(cfg->admin.tls_cert_file);
    free(cfg->admin.tls_key_file);

    free(cfg->prometheus.url);
    free(cfg->prometheus.external_url);
    basic_auth_free(&cfg->prometheus.basic_auth);
    free(cfg->prometheus.bearer_token);
    tls_free(&cfg->prometheus.tls);

    for (size_t i = 0; i < cfg->n_clusters; i++) {
        kcw_cluster_conf_t *cl = &cfg->clusters[i];
        free(cl->name);
        strv_free(cl->urls, cl->n_urls);
        basic_auth_free(&cl->basic_auth);
        tls_free(&cl->tls);
    }
    free(cfg->clusters);

    free(cfg->remediation.exclude_connector);
    strv_free(cfg->remediation.unrecoverable_traces, cfg->remediation.n_unrecoverable_traces);
    for (size_t i = 0; i < cfg->remediation.n_inhibit; i++)
        kcw_inhibit_rule_clear(&cfg->remediation.inhibit[i]);
    free(cfg->remediation.inhibit);
    strv_free(cfg->rule_files, cfg->n_rule_files);

    for (size_t i = 0; i < cfg->n_receivers; i++) {
        kcw_receiver_conf_t *r = &cfg->receivers[i];
        free(r->name);
        free(r->url);
        strv_free(r->urls, r->n_urls);
        basic_auth_free(&r->basic_auth);
        free(r->bearer_token);
        tls_free(&r->tls);
        free(r->channel);
        free(r->username);
        free(r->icon_emoji);
        free(r->icon_url);
        kcw_template_free(r->text);
        free(r->routing_key);
        kcw_template_free(r->summary);
    }
    free(cfg->receivers);

    kcw_route_clear(&cfg->route);
    for (size_t i = 0; i < cfg->n_silences; i++)
        kcw_silence_clear(&cfg->silences[i]);
    free(cfg->silences);
    for (size_t i = 0; i < cfg->n_inhibit_rules; i++)
        kcw_inhibit_rule_clear(&cfg->inhibit_rules[i]);
    free(cfg->inhibit_rules);

    strv_free(cfg->ha.endpoints, cfg->ha.n_endpoints);
    free(cfg->ha.prefix);
    free(cfg->ha.instance);
    free(cfg);
}
