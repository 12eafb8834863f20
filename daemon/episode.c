/* episode.c: loud once per failure episode (see episode.h). */
#include "kcwatch/episode.h"

bool kcw_episode_fail(kcw_episode_t *e)
{
    bool first = !e->failing;
    if (first)
        e->failures = 0;
    e->failing = true;
    if (e->failures < UINT64_MAX)
        e->failures++;
    return first;
}

bool kcw_episode_ok(kcw_episode_t *e)
{
    bool ended = e->failing;
    e->failing = false;
    return ended;
}
