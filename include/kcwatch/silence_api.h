/* silence_api.h: Alertmanager's silence API on the admin server.
 *
 *   GET    /api/v2/silences          every silence (config and API), as
 *                                    Alertmanager's gettableSilences array
 *   POST   /api/v2/silences          a postableSilence: creates one (or
 *                                    updates the one its "id" names);
 *                                    answers {"silenceID": "..."}
 *   GET    /api/v2/silence/ID        that one silence (gettableSilence)
 *   DELETE /api/v2/silence/ID        expires it (what amtool silence expire
 *                                    sends)
 *   DELETE /api/v2/silences?id=ID    the same, as a query argument
 * Bad input is answered 400 with Alertmanager's error shape (a JSON
 * string), an unknown id 404, a config silence 403 (edit the file). POST and
 * DELETE are write routes: the admin token applies. Every change is handed
 * to the save hook (the store) before it is answered, so API silences
 * survive a restart; the set itself lives with the caller. */
#ifndef KCWATCH_SILENCE_API_H
#define KCWATCH_SILENCE_API_H

#include <stdint.h>

#include "kcwatch/admin.h"
#include "kcwatch/silence.h"

typedef struct kcw_silence_api {
    kcw_silences_t *set;
    /* Wall clock, ms since the epoch. */
    int64_t (*now_ms)(void *arg);
    /* The silence as it is after a change (NULL: no persistence). 0 or a
     * negative errno: the change is kept in memory and the failure logged. */
    int (*save)(void *arg, const kcw_silence_t *s);
    /* After every change (the notifier re-checks its groups). May be NULL. */
    void (*changed)(void *arg);
    void *arg;
} kcw_silence_api_t;

/* Registers the five routes; api must outlive the admin server. 0 or a
 * negative errno from kcw_admin_route. */
int kcw_silence_api_register(kcw_admin_t *admin, kcw_silence_api_t *api);

#endif
