/* fuzz_admin_request.c: what the admin server does with request text before
 * a handler runs, and what it prints of it: the Host policy, listen
 * addresses, URL redaction and terminal/log escaping. The first byte picks
 * the listen address the policy is checked against. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "kcwatch/admin.h"
#include "kcwatch/text.h"
#include "kcwatch/url.h"

static kcw_admin_t *servers[3];
static uv_loop_t loop;

static void setup(void)
{
    static const char *const listens[3] = {"127.0.0.1:9464", "0.0.0.0:9464", "[::1]:9464"};
    static const char *const names[] = {"kcwatch.internal", NULL};
    uv_loop_init(&loop);
    for (int i = 0; i < 3; i++) {
        kcw_admin_opts_t o = {.listen = listens[i], .allowed_hosts = names};
        servers[i] = kcw_admin_new(&loop, &o, NULL, 0);
        if (!servers[i])
            abort();
    }
}

static void one_input(const uint8_t *data, size_t size)
{
    if (!servers[0])
        setup();
    if (size == 0)
        return;
    char *s = kcw_fuzz_string(data + 1, size - 1);
    kcw_admin_host_allowed(servers[data[0] % 3], s);
    struct sockaddr_storage addr;
    char err[256], msg[512];
    kcw_admin_listen_parse(s, &addr, err, sizeof err);
    kcw_admin_listen_exposed(s, NULL, msg, sizeof msg);
    free(kcw_url_redact(s));
    char *red = kcw_url_redact_text(s);
    char *esc = kcw_text_escape(red ? red : "", KCW_TEXT_QUOTED);
    if (esc && kcw_text_needs_escape(esc))
        abort(); /* escaped text must be printable */
    free(esc);
    free(red);
    free(kcw_url_join("http://w:8083/p?q=1", s));
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
