/* route.c: the routing tree (see route.h).
 *
 * Config builds the tree with unset fields where a route inherits; finish()
 * copies the parent's effective values down once, so matching and grouping
 * at notification time read plain fields. Matching follows Alertmanager's
 * dispatch/route.go semantics (children in order, `continue`, the parent
 * takes what no child took); the recursion depth is bounded by finish(). */
#include "kcwatch/route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int strv_copy(char ***dst, size_t *n_dst, char *const *src, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = strdup(src[i]))) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -ENOMEM;
        }
    }
    *dst = v;
    *n_dst = n;
    return 0;
}

static bool has_all(char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "...") == 0)
            return true;
    return false;
}

static int finish(kcw_route_t *r, const kcw_route_t *parent, const char *id, int depth,
                  size_t *count, char *err, size_t errlen)
{
    if (depth > KCW_ROUTE_DEPTH_MAX) {
        snprintf(err, errlen, "route %s: routes nest deeper than %d levels", id,
                 KCW_ROUTE_DEPTH_MAX);
        return -EINVAL;
    }
    if (++*count > KCW_ROUTES_MAX) {
        snprintf(err, errlen, "more than %d routes", KCW_ROUTES_MAX);
        return -EINVAL;
    }
    free(r->id);
    free(r->key);
    r->key = NULL;
    if (!(r->id = strdup(id)))
        return -ENOMEM;
    char *matchers = kcw_matchers_format(&r->matchers);
    int krc = !matchers ? -1
              : parent  ? asprintf(&r->key, "%s/%s", parent->key, matchers)
                        : asprintf(&r->key, "{}");
    free(matchers);
    if (krc < 0) {
        r->key = NULL;
        return -ENOMEM;
    }
    if (parent) {
        if (!r->receiver && !(r->receiver = strdup(parent->receiver)))
            return -ENOMEM;
        if (!r->group_by_set) {
            for (size_t i = 0; i < r->n_group_by; i++)
                free(r->group_by[i]);
            free(r->group_by);
            r->group_by = NULL;
            r->n_group_by = 0;
            if (strv_copy(&r->group_by, &r->n_group_by, parent->group_by, parent->n_group_by) < 0)
                return -ENOMEM;
        }
        if (r->group_wait_ms == KCW_ROUTE_UNSET)
            r->group_wait_ms = parent->group_wait_ms;
        if (r->group_interval_ms == KCW_ROUTE_UNSET)
            r->group_interval_ms = parent->group_interval_ms;
        if (r->repeat_interval_ms == KCW_ROUTE_UNSET)
            r->repeat_interval_ms = parent->repeat_interval_ms;
    } else {
        if (!r->receiver) {
            snprintf(err, errlen, "the root route needs a receiver");
            return -EINVAL;
        }
        if (r->group_wait_ms == KCW_ROUTE_UNSET)
            r->group_wait_ms = KCW_ROUTE_GROUP_WAIT_MS;
        if (r->group_interval_ms == KCW_ROUTE_UNSET)
            r->group_interval_ms = KCW_ROUTE_GROUP_INTERVAL_MS;
        if (r->repeat_interval_ms == KCW_ROUTE_UNSET)
            r->repeat_interval_ms = KCW_ROUTE_REPEAT_INTERVAL_MS;
    }
    r->group_by_all = has_all(r->group_by, r->n_group_by);
    for (size_t i = 0; i < r->n_routes; i++) {
        char child[256];
        snprintf(child, sizeof(child), "%.200s/%zu", id, i);
        int rc = finish(&r->routes[i], r, child, depth + 1, count, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kcw_route_finish(kcw_route_t *root, char *err, size_t errlen)
{
    char scratch[8];
    if (!err) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    size_t count = 0;
    return finish(root, NULL, "0", 0, &count, err, errlen);
}

static size_t match(const kcw_route_t *r, const kcw_labels_t *labels, const kcw_route_t **out,
                    size_t max, size_t found)
{
    if (!kcw_matchers_match(&r->matchers, labels))
        return found;
    size_t before = found;
    for (size_t i = 0; i < r->n_routes; i++) {
        size_t was = found;
        found = match(&r->routes[i], labels, out, max, found);
        if (found > was && !r->routes[i].cont)
            break;
    }
    if (found == before) {
        if (found < max)
            out[found] = r;
        found++;
    }
    return found;
}

size_t kcw_route_match(const kcw_route_t *root, const kcw_labels_t *labels,
                       const kcw_route_t **out, size_t max)
{
    return match(root, labels, out, max, 0);
}

int kcw_route_group_labels(const kcw_route_t *r, const kcw_labels_t *alert, kcw_labels_t *dst)
{
    if (r->group_by_all)
        return kcw_labels_copy(dst, alert);
    for (size_t i = 0; i < r->n_group_by; i++) {
        const char *v = kcw_labels_get(alert, r->group_by[i]);
        if (v && kcw_labels_set(dst, r->group_by[i], v) < 0) {
            kcw_labels_clear(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

static void walk(const kcw_route_t *r, int depth, kcw_route_visit_cb cb, void *arg)
{
    cb(r, depth, arg);
    for (size_t i = 0; i < r->n_routes; i++)
        walk(&r->routes[i], depth + 1, cb, arg);
}

void kcw_route_walk(const kcw_route_t *root, kcw_route_visit_cb cb, void *arg)
{
    walk(root, 0, cb, arg);
}

void kcw_route_clear(kcw_route_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_routes; i++)
        kcw_route_clear(&r->routes[i]);
    free(r->routes);
    for (size_t i = 0; i < r->n_group_by; i++)
        free(r->group_by[i]);
    free(r->group_by);
    free(r->receiver);
    free(r->id);
    free(r->key);
    kcw_matchers_clear(&r->matchers);
    memset(r, 0, sizeof(*r));
}
