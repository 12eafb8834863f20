/* episode.h: loud once per failure episode.
 *
 * A peer that keeps failing (with the same words or changing ones) until it
 * works again is one episode: its first failure is worth a WARN, the rest
 * DEBUG, and the success that ends it opens the way for the next WARN.
 *
 *   kcw_log(kcw_episode_fail(&peer->ep) ? KCW_LOG_WARN : KCW_LOG_DEBUG,
 *           "peer request failed", "error", err, NULL);
 *   ...
 *   kcw_episode_ok(&peer->ep);
 *
 * Pure: no clock, no allocation; zero-initialised means "not failing". */
#ifndef KCWATCH_EPISODE_H
#define KCWATCH_EPISODE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kcw_episode {
    bool failing;
    uint64_t failures; /* in the current (or last) episode */
} kcw_episode_t;

/* A failure: true when it starts an episode (the one to report loud). */
bool kcw_episode_fail(kcw_episode_t *e);
/* A success: true when it ends an episode (e.g. for a "back" line; the
 * failure count is still in e->failures until the next one starts). */
bool kcw_episode_ok(kcw_episode_t *e);

#endif
