/* silence_api.c: /api/v2/silences on the admin server (see silence_api.h).
 *
 * Requests arrive as admin handlers on the loop; the silence set (silence.c)
 * does the validation and bookkeeping, this file only maps HTTP to it and
 * back. Ids are UUIDs from getrandom(2) (non-blocking: a pool not yet
 * initialised falls back to the clock and address bits, since an id only
 * has to be unique, not secret). */
#include "kcwatch/silence_api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kcwatch/log.h"

#define API_PATH "/api/v2/silences"
#define ONE_PATH "/api/v2/silence/*" /* Alertmanager's /api/v2/silence/{silenceID} */

static int answer_error(kcw_admin_response_t *resp, int status, const char *msg)
{
    /* Alertmanager answers errors as a bare JSON string. */
    return kcw_admin_response_json(resp, status, json_string(msg));
}

static int handle_get(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    (void)req;
    kcw_silence_api_t *api = arg;
    int64_t now = api->now_ms(api->arg);
    json_t *list = json_array();
    if (!list)
        return -ENOMEM;
    for (size_t i = 0; i < kcw_silences_count(api->set); i++) {
        if (json_array_append_new(list, kcw_silence_to_json(kcw_silences_at(api->set, i), now)) <
            0) {
            json_decref(list);
            return -ENOMEM;
        }
    }
    return kcw_admin_response_json(resp, 200, list);
}

static void new_id(kcw_silence_api_t *api, char out[KCW_SILENCE_ID_LEN + 1])
{
    uint64_t r[2];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        r[0] = (uint64_t)api->now_ms(api->arg) * 6364136223846793005ULL;
        r[1] = (uint64_t)(uintptr_t)api ^ (uint64_t)kcw_silences_count(api->set) << 32;
    }
    kcw_silence_id_make(r[0], r[1], out);
}

static void saved(kcw_silence_api_t *api, const char *id)
{
    const kcw_silence_t *s = kcw_silences_find(api->set, id);
    if (s && api->save) {
        int rc = api->save(api->arg, s);
        if (rc < 0)
            kcw_log(KCW_LOG_ERROR, "silence not saved: it lasts until kcwatch stops", "id", id,
                    "error", strerror(-rc), NULL);
    }
    if (api->changed)
        api->changed(api->arg);
}

static int handle_post(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    kcw_silence_api_t *api = arg;
    int64_t now = api->now_ms(api->arg);
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof(msg), "body is not JSON: %s at line %d, column %d", jerr.text,
                 jerr.line, jerr.column);
        return answer_error(resp, 400, msg);
    }
    kcw_silence_t s;
    char err[512];
    int rc = kcw_silence_from_json(body, now, &s, err, sizeof(err));
    json_decref(body);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return answer_error(resp, 400, err);
    char id[KCW_SILENCE_ID_LEN + 1], fresh[KCW_SILENCE_ID_LEN + 1];
    new_id(api, fresh);
    char asked[KCW_SILENCE_ID_LEN + 1];
    snprintf(asked, sizeof(asked), "%s", s.id);
    rc = kcw_silences_put(api->set, &s, fresh, now, id);
    if (rc < 0) {
        kcw_silence_clear(&s);
        switch (rc) {
        case -ENOENT: return answer_error(resp, 404, "silence not found");
        case -EPERM:
            return answer_error(resp, 403, "silence comes from the config file; edit it there");
        case -EALREADY: return answer_error(resp, 400, "silence is expired and cannot be updated");
        case -E2BIG: return answer_error(resp, 400, "too many silences");
        default: return rc;
        }
    }
    kcw_log(KCW_LOG_INFO, asked[0] ? "silence updated" : "silence created", "id", id, NULL);
    saved(api, id);
    json_t *out = json_pack("{s:s}", "silenceID", id);
    return out ? kcw_admin_response_json(resp, 200, out) : -ENOMEM;
}

static int handle_get_one(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    kcw_silence_api_t *api = arg;
    const kcw_silence_t *s = kcw_silences_find(api->set, req->rest);
    if (!s)
        return answer_error(resp, 404, "silence not found");
    json_t *out = kcw_silence_to_json(s, api->now_ms(api->arg));
    return out ? kcw_admin_response_json(resp, 200, out) : -ENOMEM;
}

static int expire(kcw_silence_api_t *api, const char *id, kcw_admin_response_t *resp)
{
    int rc = kcw_silences_expire(api->set, id, api->now_ms(api->arg));
    switch (rc) {
    case 0: break;
    case -ENOENT: return answer_error(resp, 404, "silence not found");
    case -EPERM:
        return answer_error(resp, 403, "silence comes from the config file; edit it there");
    case -EALREADY: return answer_error(resp, 400, "silence is already expired");
    default: return rc;
    }
    kcw_log(KCW_LOG_INFO, "silence expired", "id", id, NULL);
    saved(api, id);
    return kcw_admin_response_json(resp, 200, json_object());
}

static int handle_delete(const kcw_admin_request_t *req, kcw_admin_response_t *resp, void *arg)
{
    const char *id = kcw_admin_request_arg(req, "id");
    if (!id || !*id)
        return answer_error(resp, 400, "missing ?id=SILENCE_ID");
    return expire(arg, id, resp);
}

static int handle_delete_one(const kcw_admin_request_t *req, kcw_admin_response_t *resp,
                             void *arg)
{
    return expire(arg, req->rest, resp);
}

int kcw_silence_api_register(kcw_admin_t *admin, kcw_silence_api_t *api)
{
    int rc;
    if ((rc = kcw_admin_route(admin, "GET", API_PATH, handle_get, api)) < 0 ||
        (rc = kcw_admin_route(admin, "POST", API_PATH, handle_post, api)) < 0 ||
        (rc = kcw_admin_route(admin, "DELETE", API_PATH, handle_delete, api)) < 0 ||
        (rc = kcw_admin_route(admin, "GET", ONE_PATH, handle_get_one, api)) < 0 ||
        (rc = kcw_admin_route(admin, "DELETE", ONE_PATH, handle_delete_one, api)) < 0)
        return rc;
    return 0;
}
