/* sdnotify.c: systemd notifications and watchdog pings (see sdnotify.h). */
#include "kcwatch/sdnotify.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "kcwatch/log.h"

#define MAX_STATUS 256

struct kcw_sdnotify {
    uv_timer_t ping;
    bool timer; /* ping is initialised: close it before freeing */
    char status[MAX_STATUS];
};

static void notify_state(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        kcw_log(KCW_LOG_WARN, "systemd notification failed", "state", state, "error",
                strerror(-rc), NULL);
}

static void on_ping(uv_timer_t *t)
{
    (void)t;
    notify_state("WATCHDOG=1");
}

kcw_sdnotify_t *kcw_sdnotify_new(uv_loop_t *loop)
{
    kcw_sdnotify_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    uint64_t usec = 0;
    /* > 0: systemd set WatchdogSec for this very process. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t every_ms = usec / 2000;
        if (every_ms == 0)
            every_ms = 1;
        n->timer = uv_timer_init(loop, &n->ping) == 0;
        n->ping.data = n;
        if (n->timer && uv_timer_start(&n->ping, on_ping, every_ms, every_ms) == 0) {
            kcw_log(KCW_LOG_INFO, "systemd watchdog enabled",
                    KCW_LOG_INT("ping_every_ms", every_ms), NULL);
        }
    }
    return n;
}

void kcw_sdnotify_ready(kcw_sdnotify_t *n)
{
    if (n)
        notify_state("READY=1");
}

void kcw_sdnotify_reloading(kcw_sdnotify_t *n)
{
    if (!n)
        return;
    /* systemd 253+ wants the monotonic time with RELOADING=1. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify_state(msg);
}

void kcw_sdnotify_stopping(kcw_sdnotify_t *n)
{
    if (n)
        notify_state("STOPPING=1");
}

void kcw_sdnotify_status(kcw_sdnotify_t *n, const char *text)
{
    if (!n || strncmp(n->status, text, sizeof(n->status)) == 0)
        return;
    snprintf(n->status, sizeof(n->status), "%s", text);
    char msg[MAX_STATUS + 8];
    snprintf(msg, sizeof(msg), "STATUS=%s", n->status);
    notify_state(msg);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void kcw_sdnotify_close(kcw_sdnotify_t *n)
{
    if (!n)
        return;
    if (n->timer)
        uv_close((uv_handle_t *)&n->ping, on_closed);
    else
        free(n);
}
