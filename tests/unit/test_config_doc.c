/* test_config_doc.c: docs/config.md lists exactly the keys the config loader
 * accepts. The loader reports, through kcw_config_observe_keys, the keys it
 * allows at every mapping it checks; a config that opens every section
 * (below) makes it visit all of them. Every allowed key must be documented,
 * every documented key allowed, and every documented mapping visited (so a
 * new section cannot hide from the test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kcwatch/config.h"
#include "kcwatch/log.h"

#define MAX_KEYS 512
#define KEY_LEN 160

typedef struct keyset {
    char keys[MAX_KEYS][KEY_LEN];
    char types[MAX_KEYS][64];
    size_t n;
} keyset_t;

static bool has(const keyset_t *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], k) == 0)
            return true;
    return false;
}

static void add(keyset_t *s, const char *k, const char *type)
{
    if (has(s, k))
        return;
    assert_true(s->n < MAX_KEYS);
    assert_true(strlen(k) < KEY_LEN);
    snprintf(s->keys[s->n], KEY_LEN, "%s", k);
    snprintf(s->types[s->n], sizeof s->types[0], "%s", type ? type : "");
    s->n++;
}

/* "connect[0].tls" -> "connect[].tls" */
static void normalize(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < n; p++) {
        out[o++] = *p;
        if (*p == '[')
            while (p[1] >= '0' && p[1] <= '9')
                p++;
    }
    out[o] = '\0';
    /* routes nest to any depth with the same keys: one level stands for all */
    char *twice;
    while ((twice = strstr(out, ".routes[].routes[]")) != NULL)
        memmove(twice, twice + strlen(".routes[]"), strlen(twice + strlen(".routes[]")) + 1);
}

typedef struct seen {
    keyset_t allowed; /* path.key for every key allowed */
    keyset_t maps;    /* every mapping checked */
} seen_t;

static void observe(const char *path, const char *const *keys, void *arg)
{
    seen_t *s = arg;
    char norm[KEY_LEN], full[KEY_LEN * 2];
    normalize(path, norm, sizeof norm);
    add(&s->maps, norm, NULL);
    for (; *keys; keys++) {
        snprintf(full, sizeof full, "%s%s%s", norm, *norm ? "." : "", *keys);
        add(&s->allowed, full, NULL);
    }
}

/* Rows "| `key` | type | ..." of the doc. */
static void read_doc(keyset_t *doc)
{
    FILE *f = fopen(KCW_SOURCE_DIR "/docs/config.md", "r");
    assert_non_null(f);
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *k = line + 3, *end = strchr(k, '`');
        assert_non_null(end);
        *end = '\0';
        char *type = strchr(end + 1, '|');
        assert_non_null(type);
        type++;
        while (*type == ' ')
            type++;
        char *tend = strchr(type, '|');
        assert_non_null(tend);
        while (tend > type && tend[-1] == ' ')
            tend--;
        *tend = '\0';
        if (has(doc, k))
            fail_msg("docs/config.md lists %s twice", k);
        add(doc, k, type);
    }
    fclose(f);
    assert_true(doc->n > 100);
}

/* Opens every mapping the loader knows (values need not be valid: the keys
 * are checked either way). */
static const char every_section[] =
    "global: {external_labels: {a: b}, log: {format: json}}\n"
    "admin: {basic_auth: {username: u}, tls: {}}\n"
    "prometheus: {basic_auth: {username: u}, tls: {}}\n"
    "connect:\n  - {name: a, url: 'http://x:1', basic_auth: {username: u}, tls: {}}\n"
    "remediation: {backoff: {}, budget: {}, exclude: {}, storm: {}, inhibit: [{}]}\n"
    "receivers:\n"
    "  - {name: w, webhook: {basic_auth: {username: u}, tls: {}}}\n"
    "  - {name: s, slack: {tls: {}}}\n"
    "  - {name: p, pagerduty: {tls: {}}}\n"
    "  - {name: m, alertmanager: {basic_auth: {username: u}, tls: {}}}\n"
    "  - {name: l, log: {}}\n"
    "route: {receiver: w, routes: [{routes: [{}]}]}\n"
    "silences: [{weekly: [{}]}]\n"
    "inhibit_rules: [{}]\n"
    "ha: {etcd: {}}\n";

/* Loads the config (text, or path when text is NULL) recording what the
 * loader checks into seen; returns the load's result. */
static int load_observed(const char *text, const char *path, seen_t *seen)
{
    kcw_config_observe_keys(observe, seen);
    kcw_errors_t errs = {0};
    kcw_config_t *cfg = NULL;
    int rc = text ? kcw_config_load_string(text, "every.yaml", &cfg, &errs)
                  : kcw_config_load(path, &cfg, &errs);
    kcw_config_observe_keys(NULL, NULL);
    if (rc != 0 && !text)
        kcw_errors_print(&errs, stderr);
    kcw_config_free(cfg);
    kcw_errors_clear(&errs);
    kcw_log_reset();
    return rc;
}

static void test_doc_matches_parser(void **state)
{
    (void)state;
    static keyset_t doc;
    static seen_t seen;
    memset(&doc, 0, sizeof doc);
    memset(&seen, 0, sizeof seen);
    read_doc(&doc);
    load_observed(every_section, NULL, &seen); /* its values are not valid: only keys count */

    int bad = 0;
    for (size_t i = 0; i < seen.allowed.n; i++) {
        if (!has(&doc, seen.allowed.keys[i])) {
            fprintf(stderr, "accepted but not in docs/config.md: %s\n", seen.allowed.keys[i]);
            bad++;
        }
    }
    for (size_t i = 0; i < doc.n; i++) {
        const char *k = doc.keys[i], *t = doc.types[i];
        if (!has(&seen.allowed, k)) {
            fprintf(stderr, "in docs/config.md but not accepted: %s\n", k);
            bad++;
        }
        /* a documented mapping must have been opened, so its keys were seen */
        char want[KEY_LEN + 4] = "";
        if (strcmp(t, "mapping") == 0)
            snprintf(want, sizeof want, "%s", k);
        else if (strcmp(t, "list of mappings") == 0)
            snprintf(want, sizeof want, "%s[]", k);
        if (*want && !has(&seen.maps, want)) {
            fprintf(stderr, "%s is a mapping the test config does not open: extend it\n", k);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* The example config uses only documented keys (it loads, and the loader
 * refuses unknown ones), and documents every top-level section. */
static void test_example_sections_documented(void **state)
{
    (void)state;
    static keyset_t doc;
    static seen_t seen;
    memset(&doc, 0, sizeof doc);
    memset(&seen, 0, sizeof seen);
    read_doc(&doc);
    assert_int_equal(load_observed(NULL, KCW_SOURCE_DIR "/packaging/kcwatch.example.yaml", &seen),
                     0);
    for (size_t i = 0; i < seen.maps.n; i++) {
        if (*seen.maps.keys[i] && !has(&doc, seen.maps.keys[i]) &&
            !strstr(seen.maps.keys[i], "[]"))
            fail_msg("the example opens %s, not in docs/config.md", seen.maps.keys[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_matches_parser),
        cmocka_unit_test(test_example_sections_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
