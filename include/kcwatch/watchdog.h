/* watchdog.h: the running daemon, wired on one libuv loop.
 *
 * Data flows one way: the Connect client polls every cluster; each poll feeds
 * the remediator's verification and, when the status changed, evaluates the
 * connect rules at once (detection within one poll); groups are also evaluated
 * on their own interval so `for` and keep_firing_for advance. Alert sets turn
 * instances into alerts; firing alerts of rules with `restart:` go to the
 * remediator; every alert, annotated with what remediation did, goes to the
 * notifier. The watchdog owns the config and rules it runs on and swaps them
 * atomically on reload. */
#ifndef KCWATCH_WATCHDOG_H
#define KCWATCH_WATCHDOG_H

#include <uv.h>

#include "kcwatch/config.h"
#include "kcwatch/errors.h"
#include "kcwatch/rules.h"

typedef struct kcw_watchdog kcw_watchdog_t;

/* Takes ownership of cfg and rules (also on failure). NULL on failure. */
kcw_watchdog_t *kcw_watchdog_new(uv_loop_t *loop, kcw_config_t *cfg, kcw_ruleset_t *rules);
/* Starts polling, evaluation timers and signal handling (SIGTERM/SIGINT stop,
 * SIGHUP reloads from the config's path). 0 or negative errno. */
int kcw_watchdog_start(kcw_watchdog_t *wd);
/* Loads the config file again (and its rules); on success swaps them in, on
 * failure logs every error and keeps running on the old ones. 0 or -EINVAL. */
int kcw_watchdog_reload(kcw_watchdog_t *wd);
/* The same; on -EINVAL every positioned error (config, rules, templates) is
 * also left in *report (may be NULL; the caller clears it). */
int kcw_watchdog_reload_report(kcw_watchdog_t *wd, kcw_errors_t *report);
/* Stops everything; the loop ends once all handles are closed. */
void kcw_watchdog_stop(kcw_watchdog_t *wd);
/* Frees after the loop has ended. */
void kcw_watchdog_free(kcw_watchdog_t *wd);

#endif
