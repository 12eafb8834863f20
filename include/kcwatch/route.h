/* route.h: the notification routing tree, as Alertmanager's.
 *
 * A route has matchers, a receiver, grouping (group_by, group_wait,
 * group_interval, repeat_interval), `continue`, and child routes. An alert
 * enters at the root (which matches everything); at each route it tries the
 * children in order: each matching child takes it (recursively), and the
 * first matching child without `continue` ends the search at that level. A
 * route none of whose children took the alert takes it itself. So one alert
 * can land on several routes, each with its own receiver and grouping.
 *
 * Children inherit what they do not set from their parent: receiver,
 * group_by (`...` means every label: one group per alert), group_wait,
 * group_interval and repeat_interval. kcw_route_finish() resolves that once
 * after loading; afterwards every route carries its effective values. Pure:
 * no I/O, no clock. */
#ifndef KCWATCH_ROUTE_H
#define KCWATCH_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kcwatch/labels.h"
#include "kcwatch/matchers.h"

#define KCW_ROUTE_DEPTH_MAX 16
#define KCW_ROUTES_MAX 1000 /* in a whole tree */
#define KCW_ROUTE_UNSET (-1) /* a timing the route inherits */

typedef struct kcw_route {
    char *receiver;   /* NULL in a child: inherited */
    kcw_matchers_t matchers;
    bool cont;        /* `continue` */
    char **group_by;  /* label names, "..." = all */
    size_t n_group_by;
    bool group_by_set; /* false: inherited */
    int64_t group_wait_ms;      /* KCW_ROUTE_UNSET: inherited */
    int64_t group_interval_ms;
    int64_t repeat_interval_ms;
    struct kcw_route *routes; /* children, owned */
    size_t n_routes;

    /* Filled by kcw_route_finish(). */
    bool group_by_all;
    char *id;  /* "0", "0/2", ...: position in the tree (unique) */
    char *key; /* Alertmanager's route key: "{}" for the root, then the
                * parent's key + "/" + the matchers ({}/{severity="critical"});
                * the first part of a groupKey */
} kcw_route_t;

/* Alertmanager's defaults for the root. */
#define KCW_ROUTE_GROUP_WAIT_MS (30 * 1000LL)
#define KCW_ROUTE_GROUP_INTERVAL_MS (5 * 60 * 1000LL)
#define KCW_ROUTE_REPEAT_INTERVAL_MS (4 * 60 * 60 * 1000LL)

/* Resolves inheritance down the tree (the root's unset timings take the
 * defaults above; its receiver must be set) and assigns ids. 0, or -EINVAL
 * with err naming the route (id) when the tree is deeper than
 * KCW_ROUTE_DEPTH_MAX, larger than KCW_ROUTES_MAX or the root has no
 * receiver; -ENOMEM. */
int kcw_route_finish(kcw_route_t *root, char *err, size_t errlen);

/* The routes that take an alert with these labels, in tree order; at most max
 * are stored in out, the count found is returned (>= 1 for a finished tree:
 * the root takes what no child does). */
size_t kcw_route_match(const kcw_route_t *root, const kcw_labels_t *labels,
                       const kcw_route_t **out, size_t max);

/* The group labels of an alert on route r: its values of r's group_by labels
 * (labels it lacks are left out), or all of them for `...`. dst must be
 * empty. 0 or -ENOMEM. */
int kcw_route_group_labels(const kcw_route_t *r, const kcw_labels_t *alert, kcw_labels_t *dst);

/* Every route of the tree, depth first, root first (for checks and lists). */
typedef void (*kcw_route_visit_cb)(const kcw_route_t *r, int depth, void *arg);
void kcw_route_walk(const kcw_route_t *root, kcw_route_visit_cb cb, void *arg);

/* Frees what the route owns (children included); the struct is zeroed. */
void kcw_route_clear(kcw_route_t *r);

#endif
