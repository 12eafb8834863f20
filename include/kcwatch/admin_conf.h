/* admin_conf.h: the admin server as the config sets it up.
 *
 * The config's admin: block (listen, token, basic_auth, tls) becomes
 * kcw_admin_opts_t at start; on reload the credentials are swapped in place
 * while listen and tls, bound to the socket, need a restart (logged). A
 * reload refused over HTTP answers 400 with every positioned error. */
#ifndef KCWATCH_ADMIN_CONF_H
#define KCWATCH_ADMIN_CONF_H

#include "kcwatch/admin.h"
#include "kcwatch/config.h"
#include "kcwatch/errors.h"

/* Fills opts from cfg (pointers into cfg: it must outlive kcw_admin_new). */
void kcw_admin_conf_opts(const kcw_config_t *cfg, kcw_admin_opts_t *opts);

/* Reload: applies cfg's token and basic auth to the running server and logs
 * a WARN for each of listen and tls that changed from old (a restart applies
 * them). 0 or -ENOMEM (the previous credentials stay, logged). */
int kcw_admin_conf_apply(kcw_admin_t *a, const kcw_config_t *old, const kcw_config_t *cfg);

/* The answer to a refused reload: 400 with
 *   {"status":"error","errorType":"bad_data","error":"reload failed: ...",
 *    "errors":[{"file":F,"line":L,"column":C,"message":M,"text":"F:L:C: M"}]}
 * (file/line/column left out when unknown). Secrets and URL credentials in
 * the messages are redacted as in the log. 0 or -ENOMEM. */
int kcw_admin_reload_failed(kcw_admin_response_t *resp, const char *summary,
                            const kcw_errors_t *errs);

#endif
