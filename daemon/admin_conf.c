/* admin_conf.c: the admin server as the config sets it up (see admin_conf.h). */
#include "kcwatch/admin_conf.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kcwatch/log.h"

void kcw_admin_conf_opts(const kcw_config_t *cfg, kcw_admin_opts_t *opts)
{
    *opts = (kcw_admin_opts_t){
        .listen = cfg->listen,
        .token = cfg->admin.token,
        .basic_user = cfg->admin.basic_auth.username,
        .basic_password = cfg->admin.basic_auth.password,
        .tls_cert_file = cfg->admin.tls_cert_file,
        .tls_key_file = cfg->admin.tls_key_file,
    };
}

static bool same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int kcw_admin_conf_apply(kcw_admin_t *a, const kcw_config_t *old, const kcw_config_t *cfg)
{
    if (!same(old->listen, cfg->listen))
        kcw_log(KCW_LOG_WARN, "admin.listen changed: restart kcwatch for it to take effect",
                "listening", old->listen, "configured", cfg->listen, NULL);
    if (!same(old->admin.tls_cert_file, cfg->admin.tls_cert_file) ||
        !same(old->admin.tls_key_file, cfg->admin.tls_key_file))
        kcw_log(KCW_LOG_WARN, "admin.tls changed: restart kcwatch for it to take effect", NULL);
    if (kcw_admin_set_token(a, cfg->admin.token) < 0 ||
        kcw_admin_set_basic_auth(a, cfg->admin.basic_auth.username,
                                 cfg->admin.basic_auth.password) < 0) {
        kcw_log(KCW_LOG_ERROR, "admin credentials not updated: out of memory", NULL);
        return -ENOMEM;
    }
    return 0;
}

/* A JSON string of the redacted s; NULL on allocation failure. */
static json_t *redacted(const char *s)
{
    char *red = kcw_log_redact(s);
    if (!red)
        return NULL;
    json_t *j = json_string(red);
    if (!j) { /* invalid UTF-8 quoted from a file: keep the rest */
        for (char *p = red; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        j = json_string(red);
    }
    free(red);
    return j;
}

static json_t *error_json(const kcw_error_t *e)
{
    char text[2048];
    kcw_error_format(e, text, sizeof text);
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "message", redacted(e->msg ? e->msg : "")) < 0 ||
        json_object_set_new(o, "text", redacted(text)) < 0)
        goto fail;
    if (e->file && json_object_set_new(o, "file", redacted(e->file)) < 0)
        goto fail;
    if (e->line > 0 && json_object_set_new(o, "line", json_integer(e->line)) < 0)
        goto fail;
    if (e->col > 0 && json_object_set_new(o, "column", json_integer(e->col)) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

int kcw_admin_reload_failed(kcw_admin_response_t *resp, const char *summary,
                            const kcw_errors_t *errs)
{
    json_t *doc = kcw_admin_envelope_error("bad_data", summary);
    json_t *list = json_array();
    if (!doc || !list || json_object_set_new(doc, "errors", list) < 0) {
        json_decref(doc);
        return -ENOMEM;
    }
    size_t stored = errs ? (errs->n < errs->cap ? errs->n : errs->cap) : 0;
    for (size_t i = 0; i < stored; i++) {
        if (json_array_append_new(list, error_json(&errs->items[i])) < 0) {
            json_decref(doc);
            return -ENOMEM;
        }
    }
    return kcw_admin_response_json(resp, 400, doc);
}
