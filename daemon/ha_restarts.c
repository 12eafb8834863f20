/* ha_restarts.c: restart tracks recorded with the permit, adopted on
 * takeover (see ha_restarts.h). */
#include "kcwatch/ha_restarts.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/log.h"

char *kcw_ha_restart_record(const char *instance, const char *cluster, const char *connector,
                            int task, const char *request, const kcw_restart_track_t *track,
                            int64_t now_ms)
{
    json_t *attempts = json_array();
    int consecutive = 1;
    /* What kcw_restart_policy_record() makes of the track once this restart
     * is counted: its history plus now, one more back-off step. */
    for (int i = 0; track && attempts && i < track->n_attempts; i++)
        json_array_append_new(attempts, json_integer((json_int_t)track->attempts_ms[i]));
    if (attempts)
        json_array_append_new(attempts, json_integer((json_int_t)now_ms));
    if (track)
        consecutive = track->consecutive + 1;
    json_t *rec = attempts ? json_pack("{s:s,s:s,s:s,s:i,s:s,s:I,s:o,s:i}", "instance",
                                       instance ? instance : "", "cluster", cluster, "connector",
                                       connector, "task", task, "request",
                                       request ? request : "", "at_ms", (json_int_t)now_ms,
                                       "attempts_ms", attempts, "consecutive", consecutive)
                           : NULL;
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return text;
}

/* One record's fields into r; -EINVAL when it is not one. */
static int adopt_one(kcw_remediator_t *r, const char *self, const char *text, int64_t now_ms,
                     bool *merged)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    const char *instance = json_string_value(json_object_get(root, "instance"));
    const char *cluster = json_string_value(json_object_get(root, "cluster"));
    const char *connector = json_string_value(json_object_get(root, "connector"));
    json_t *task = json_object_get(root, "task"), *cons = json_object_get(root, "consecutive");
    json_t *attempts = json_object_get(root, "attempts_ms");
    int rc = -EINVAL;
    if (!instance || !cluster || !connector || !json_is_integer(task) ||
        !json_is_integer(cons) || !json_is_array(attempts) ||
        json_array_size(attempts) > KCW_RESTART_MAX_HISTORY + 1)
        goto out;
    rc = 0;
    if (self && strcmp(instance, self) == 0)
        goto out;
    int64_t at[KCW_RESTART_MAX_HISTORY + 1];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(attempts); i++) {
        json_t *v = json_array_get(attempts, i);
        if (json_is_integer(v))
            at[n++] = (int64_t)json_integer_value(v);
    }
    json_int_t t = json_integer_value(task), c = json_integer_value(cons);
    if (t < -1 || t > INT32_MAX || c < 0 || c > INT32_MAX) {
        rc = -EINVAL;
        goto out;
    }
    rc = kcw_remediator_adopt_restarts(r, cluster, connector, (int)t, at, n, (int)c, now_ms);
    *merged = rc == 0;
out:
    json_decref(root);
    return rc;
}

size_t kcw_ha_restarts_adopt(kcw_remediator_t *r, const char *self, const char *const *records,
                             size_t n, int64_t now_ms)
{
    size_t merged = 0, bad = 0;
    for (size_t i = 0; r && i < n; i++) {
        bool ok = false;
        if (adopt_one(r, self, records[i], now_ms, &ok) == -EINVAL)
            bad++;
        merged += ok;
    }
    if (bad > 0) {
        kcw_log(KCW_LOG_WARN, "ha: unreadable restart records in etcd ignored",
                KCW_LOG_INT("count", bad), NULL);
    }
    return merged;
}
