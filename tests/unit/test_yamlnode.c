/* test_yamlnode.c: the shared positioned-YAML helpers: loading (syntax errors,
 * extra documents), positions of reported problems, the getters and their
 * null variants, the key check, the visit bound and the bounded file read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcwatch/yamlnode.h"

typedef struct fixture {
    kcw_errors_t errs;
    kcw_ydoc_t d;
    bool loaded;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->d.file = "t.yaml";
    f->d.errs = &f->errs;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->loaded)
        kcw_ydoc_free(&f->d);
    kcw_errors_clear(&f->errs);
    free(f);
    return 0;
}

static yaml_node_t *load(fixture_t *f, const char *text)
{
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), NULL), 0);
    f->loaded = true;
    yaml_node_t *root = yaml_document_get_root_node(&f->d.doc);
    assert_non_null(root);
    return root;
}

/* The value of key in a mapping root. */
static yaml_node_t *value_of(fixture_t *f, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++)
        if (strcmp(kcw_ynode_scalar(kcw_ydoc_node(&f->d, p->key)), key) == 0)
            return kcw_ydoc_node(&f->d, p->value);
    fail_msg("no key %s", key);
    return NULL;
}

static void assert_error(const kcw_errors_t *errs, size_t i, int line, int col, const char *msg)
{
    assert_true(i < errs->n);
    assert_string_equal(errs->items[i].file, "t.yaml");
    assert_int_equal(errs->items[i].line, line);
    assert_int_equal(errs->items[i].col, col);
    assert_string_equal(errs->items[i].msg, msg);
}

static void test_syntax_error_is_positioned(void **state)
{
    fixture_t *f = *state;
    const char *text = "a: 1\nb: [1, 2\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), NULL), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    assert_int_equal(strncmp(f->errs.items[0].msg, "YAML syntax error: ", 19), 0);
    assert_true(f->errs.items[0].line >= 2);
}

static void test_extra_document(void **state)
{
    fixture_t *f = *state;
    const char *text = "a: 1\n---\nb: 2\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), "one document only"), 0);
    f->loaded = true;
    assert_int_equal(f->errs.n, 1);
    assert_error(&f->errs, 0, 3, 1, "one document only");
    yaml_node_t *root = yaml_document_get_root_node(&f->d.doc);
    assert_string_equal(kcw_ynode_scalar(value_of(f, root, "a")), "1");
}

static void test_extra_document_allowed(void **state)
{
    fixture_t *f = *state;
    const char *text = "a: 1\n---\nb: 2\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), NULL), 0);
    f->loaded = true;
    assert_int_equal(f->errs.n, 0);
}

static void test_kinds_and_nulls(void **state)
{
    fixture_t *f = *state;
    yaml_node_t *root = load(f, "a: ~\nb: 'null'\nc: [1]\nd: {x: 1}\ne:\nf: NULL\ng: nil\n");
    assert_true(kcw_ynode_is_null(value_of(f, root, "a")));
    assert_false(kcw_ynode_is_null(value_of(f, root, "b"))); /* quoted: a string */
    assert_true(kcw_ynode_is_null(value_of(f, root, "e")));
    assert_true(kcw_ynode_is_null(value_of(f, root, "f")));
    assert_false(kcw_ynode_is_null(value_of(f, root, "g")));
    assert_false(kcw_ynode_is_null(NULL));
    assert_string_equal(kcw_ynode_kind(value_of(f, root, "c")), "a list");
    assert_string_equal(kcw_ynode_kind(value_of(f, root, "d")), "a mapping");
    assert_string_equal(kcw_ynode_kind(value_of(f, root, "b")), "a scalar");
    assert_int_equal(kcw_ynode_seq_len(value_of(f, root, "c")), 1);
    assert_int_equal(kcw_ynode_map_len(root), 7);
    assert_null(kcw_ynode_scalar(value_of(f, root, "c")));
    assert_true(kcw_yaml_null_word(""));
    assert_false(kcw_yaml_null_word("nul"));
}

static void test_get_string(void **state)
{
    fixture_t *f = *state;
    yaml_node_t *root = load(f, "s: hello\nn: ~\nl:\n  - 1\n");
    char *s = NULL;
    assert_int_equal(kcw_ydoc_get_string(&f->d, value_of(f, root, "s"), "s", false, &s), 0);
    assert_string_equal(s, "hello");
    free(s);
    assert_int_equal(kcw_ydoc_get_string(&f->d, value_of(f, root, "n"), "n", false, &s), 0);
    assert_string_equal(s, "~");
    free(s);
    assert_int_equal(kcw_ydoc_get_string(&f->d, value_of(f, root, "n"), "n", true, &s), 0);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(f->errs.n, 0);
    assert_int_equal(kcw_ydoc_get_string(&f->d, value_of(f, root, "l"), "l", true, &s), -EINVAL);
    assert_error(&f->errs, 0, 4, 3, "l: expected a string, got a list");
}

static void test_get_duration(void **state)
{
    fixture_t *f = *state;
    yaml_node_t *root =
        load(f, "ok: 1m30s\nnul: ~\nbad: soon\nhuge: 99999999999999999h\nmap: {a: 1}\n");
    int64_t ms = -1;
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "ok"), "ok", false, &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "nul"), "nul", true, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(f->errs.n, 0);
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "nul"), "nul", false, &ms),
                     -EINVAL);
    assert_error(&f->errs, 0, 2, 6, "nul: invalid duration \"~\" (use e.g. 30s, 5m, 1h30m)");
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "bad"), "bad", true, &ms),
                     -EINVAL);
    assert_error(&f->errs, 1, 3, 6, "bad: invalid duration \"soon\" (use e.g. 30s, 5m, 1h30m)");
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "huge"), "huge", true, &ms),
                     -ERANGE);
    assert_error(&f->errs, 2, 4, 7, "huge: duration \"99999999999999999h\" out of range");
    assert_int_equal(kcw_ydoc_get_duration(&f->d, value_of(f, root, "map"), "map", true, &ms),
                     -EINVAL);
    assert_error(&f->errs, 3, 5, 6, "map: expected a duration, got a mapping");
}

static void test_check_map(void **state)
{
    fixture_t *f = *state;
    yaml_node_t *root = load(f, "name: x\nname: y\nnmae: z\n[1]: 2\n");
    static const char *const keys[] = {"name", "value", NULL};
    assert_true(kcw_ydoc_check_map(&f->d, root, "thing", keys, 100));
    assert_int_equal(f->errs.n, 3);
    assert_error(&f->errs, 0, 2, 1, "thing: duplicate key \"name\"");
    assert_error(&f->errs, 1, 3, 1,
                 "thing: unknown key \"nmae\"; did you mean \"name\"? (known: name, value)");
    assert_error(&f->errs, 2, 4, 1, "thing: keys must be strings");

    assert_false(kcw_ydoc_check_map(&f->d, root, "small", NULL, 3));
    assert_error(&f->errs, 3, 1, 1, "small: more than 3 entries");
    assert_false(kcw_ydoc_check_map(&f->d, value_of(f, root, "nmae"), "v", NULL, 100));
    assert_error(&f->errs, 4, 3, 7, "v: expected a mapping, got a scalar");
}

static void test_visit_bound(void **state)
{
    fixture_t *f = *state;
    yaml_node_t *root = load(f, "a: 1\nb: 2\n");
    f->d.max_visits = 3;
    int found = 0;
    for (int i = 0; i < 10; i++)
        if (kcw_ydoc_node(&f->d, root->data.mapping.pairs.start[0].key))
            found++;
    assert_int_equal(found, 3);
    assert_true(f->d.too_big);
    assert_int_equal(f->errs.n, 1); /* reported once */
    assert_string_equal(f->errs.items[0].msg, "document too large to walk (aliases?)");
}

static void test_error_without_node(void **state)
{
    fixture_t *f = *state;
    kcw_ydoc_error(&f->d, NULL, "%s %d", "whole file", 7);
    assert_error(&f->errs, 0, 0, 0, "whole file 7");
}

static void test_read_bounded(void **state)
{
    (void)state;
    char dir[] = "/tmp/kcw-yamlnode-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/f.yaml", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("a: 1\n", fp);
    fclose(fp);

    char *text = NULL;
    size_t len = 0;
    kcw_read_step_t step;
    assert_int_equal(kcw_file_read_bounded(path, 5, &text, &len, &step), 0);
    assert_int_equal(len, 5);
    assert_string_equal(text, "a: 1\n");
    free(text);

    assert_int_equal(kcw_file_read_bounded(path, 4, &text, &len, &step), -EFBIG);
    assert_int_equal(step, KCW_READ_STAT);
    assert_null(text);
    assert_int_equal(kcw_file_read_bounded(dir, 100, &text, &len, &step), -EISDIR);
    assert_int_equal(step, KCW_READ_STAT);
    unlink(path);
    assert_int_equal(kcw_file_read_bounded(path, 100, &text, &len, &step), -ENOENT);
    assert_int_equal(step, KCW_READ_OPEN);
    assert_null(text);
    rmdir(dir);
}

/* Deep nesting stops at the depth bound with one error, in linear time: a
 * 200 KB `[[[[...` would cost libyaml's own loader quadratic time. */
static void test_depth_bound(void **state)
{
    fixture_t *f = *state;
    size_t n = 100000;
    char *text = malloc(n + 1);
    assert_non_null(text);
    memcpy(text, "groups: ", 8);
    memset(text + 8, '[', n - 8);
    text[n] = '\0';
    assert_int_equal(kcw_ydoc_load(&f->d, text, n, NULL), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    /* the root mapping is level 1: the 64th "[" is one too many */
    assert_error(&f->errs, 0, 1, 8 + 64, "nesting deeper than 64 levels");
    free(text);
}

static void test_alias_copy_positioned_at_alias(void **state)
{
    fixture_t *f = *state;
    const char *text = "a: &x {k: v}\nb: *x\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), NULL), 0);
    f->loaded = true;
    yaml_node_t *root = yaml_document_get_root_node(&f->d.doc);
    yaml_node_t *b = value_of(f, root, "b");
    assert_int_equal(b->type, YAML_MAPPING_NODE);
    assert_int_equal(b->start_mark.line, 1);
    assert_int_equal(b->start_mark.column, 3);
    assert_string_equal(kcw_ynode_scalar(value_of(f, b, "k")), "v");
    assert_int_equal(f->errs.n, 0);
}

static void test_node_bound_and_bad_aliases(void **state)
{
    fixture_t *f = *state;
    f->d.max_nodes = 50;
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
    assert_int_equal(kcw_ydoc_load(&f->d, bomb, strlen(bomb), NULL), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    assert_non_null(strstr(f->errs.items[0].msg, "document too large: alias \"*a\""));
    kcw_errors_clear(&f->errs);
    const char *unknown = "a: *nope\n";
    assert_int_equal(kcw_ydoc_load(&f->d, unknown, strlen(unknown), NULL), -EINVAL);
    assert_error(&f->errs, 0, 1, 4, "unknown alias \"*nope\"");
    kcw_errors_clear(&f->errs);
    const char nul[] = "a: \"x\\0y\"\n";
    assert_int_equal(kcw_ydoc_load(&f->d, nul, strlen(nul), NULL), -EINVAL);
    assert_error(&f->errs, 0, 1, 4, "NUL character in a string");
}

static void test_invalid_utf8_positioned(void **state)
{
    fixture_t *f = *state;
    const char *text = "a: 1\nbb: \"\xff\"\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), NULL), -EINVAL);
    assert_int_equal(f->errs.n, 1);
    assert_int_equal(f->errs.items[0].line, 2);
    assert_int_equal(f->errs.items[0].col, 6);
    assert_non_null(strstr(f->errs.items[0].msg, "invalid leading UTF-8"));
}

static void test_single_document(void **state)
{
    fixture_t *f = *state;
    f->d.single_document = true;
    const char *text = "a: 1\n---\nb: 2\n";
    assert_int_equal(kcw_ydoc_load(&f->d, text, strlen(text), "only one"), -EINVAL);
    assert_error(&f->errs, 0, 2, 1, "only one");
}

/* A FIFO would block open() forever and /dev/zero never ends: only regular
 * files are read. */
static void test_read_refuses_special_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/kcw-yamlnode-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    char *text = NULL;
    size_t len = 0;
    kcw_read_step_t step;
    assert_int_equal(kcw_file_read_bounded(path, 100, &text, &len, &step), -ENOTSUP);
    assert_int_equal(step, KCW_READ_STAT);
    assert_int_equal(kcw_file_read_bounded("/dev/zero", 100, &text, &len, &step), -ENOTSUP);
    assert_null(text);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_syntax_error_is_positioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_document_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_duration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_visit_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_without_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_copy_positioned_at_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_bound_and_bad_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_positioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_special_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
