/* sdnotify.h: telling systemd what the daemon is doing (Type=notify).
 *
 * Through libsystemd's sd_notify: READY=1 once the daemon is up, RELOADING=1
 * and READY=1 around a reload, STOPPING=1 at shutdown, STATUS= lines an
 * operator sees in `systemctl status`, and WATCHDOG=1 pings every half of
 * WatchdogSec from a timer on the loop, so a frozen loop stops pinging and
 * systemd restarts the service. Without NOTIFY_SOCKET (not under systemd)
 * every call is a cheap no-op. */
#ifndef KCWATCH_SDNOTIFY_H
#define KCWATCH_SDNOTIFY_H

#include <uv.h>

typedef struct kcw_sdnotify kcw_sdnotify_t;

/* Starts the watchdog ping timer when systemd asked for one (WATCHDOG_USEC).
 * NULL when out of memory. */
kcw_sdnotify_t *kcw_sdnotify_new(uv_loop_t *loop);
void kcw_sdnotify_ready(kcw_sdnotify_t *n);
void kcw_sdnotify_reloading(kcw_sdnotify_t *n);
void kcw_sdnotify_stopping(kcw_sdnotify_t *n);
/* STATUS=text, sent only when it changed. */
void kcw_sdnotify_status(kcw_sdnotify_t *n, const char *text);
/* Stops the timer; the object is freed once its handle is closed. NULL ok. */
void kcw_sdnotify_close(kcw_sdnotify_t *n);

#endif
