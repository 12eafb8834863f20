/* admin.h: the admin HTTP server (/metrics, /healthz, /api/v1/..., /-/reload).
 *
 * A libmicrohttpd daemon driven by the libuv loop, with no thread of its own:
 * MHD runs in epoll mode, a uv_poll watches its epoll fd and one uv_timer
 * follows MHD's own timeout. Requests enter through routes the daemon
 * registers (method + exact path or path prefix); each handler runs on the
 * loop, fills a kcw_admin_response_t and returns. The server itself answers what needs no
 * data of the daemon's:
 *   - unknown path               -> 404 {"status":"error","errorType":"not_found",...}
 *   - known path, other method   -> 405 with an Allow header
 *   - Host not allowed           -> 421 (see kcw_admin_opts_t.allowed_hosts)
 *   - cross-site browser write   -> 403 (see "Access" below)
 *   - missing or bad credentials -> 401 with WWW-Authenticate (Bearer or Basic)
 *   - body over max_body         -> 413 (the connection is then closed)
 *   - handler failure            -> 500 {"status":"error","errorType":"internal",...}
 * HEAD is served by the GET route (MHD drops the body). Every answer carries
 * `Content-Security-Policy: default-src 'self'` and `X-Content-Type-Options:
 * nosniff`. Every request is logged at DEBUG ("admin request": method, path,
 * status, remote, ms).
 *
 * Access. Write routes (every method but GET and HEAD):
 *   - a browser's cross-site request is refused 403 whatever it carries:
 *     Sec-Fetch-Site other than "same-origin" or "none", or an Origin whose
 *     host[:port] is not the Host header ("null" included). Browsers attach
 *     cached basic-auth credentials to cross-site form posts, so credentials
 *     alone cannot tell the operator from a page they visited. Clients that
 *     are not browsers (curl, amtool) send neither header and pass on.
 *   - with a token: "Authorization: Bearer TOKEN" is required;
 *   - else with basic auth: the basic-auth credentials are required.
 * Read routes: open, unless basic auth is set: then the basic-auth
 * credentials or the bearer token are required. Tokens and passwords are
 * compared in constant time and never logged.
 *
 * The JSON envelope helpers build the Prometheus HTTP API shapes
 *   {"status":"success","data":...}
 *   {"status":"error","errorType":"...","error":"..."}
 * and are pure: handlers use them, tests call them directly. */
#ifndef KCWATCH_ADMIN_H
#define KCWATCH_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#define KCW_ADMIN_DEFAULT_LISTEN "127.0.0.1:9464"

#define KCW_ADMIN_CT_JSON "application/json"
#define KCW_ADMIN_CT_TEXT "text/plain; charset=utf-8"
/* Prometheus text exposition format 0.0.4 */
#define KCW_ADMIN_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

typedef struct kcw_admin kcw_admin_t;

typedef struct kcw_admin_opts {
    const char *listen;       /* "HOST:PORT"; NULL = KCW_ADMIN_DEFAULT_LISTEN */
    const char *token;        /* bearer token for non-GET routes; NULL or "" = none */
    /* Basic auth for every request; NULL or "" user = none. See "Access". */
    const char *basic_user;
    const char *basic_password;
    /* PEM files: both set = HTTPS only (libmicrohttpd with GnuTLS); read
     * once by kcw_admin_new. NULL = plain HTTP. */
    const char *tls_cert_file;
    const char *tls_key_file;
    unsigned max_connections; /* 0 = 64 */
    size_t max_body;          /* request body bytes; 0 = 64 KiB */
    size_t conn_memory;       /* MHD per-connection pool (headers, buffers); 0 = 32 KiB */
    unsigned conn_timeout_s;  /* idle connection timeout; 0 = 30 s */
    /* A whole request (headers and body, from the accept or the previous
     * answer) must arrive within this; 0 = 10 s. Near the connection limit
     * it shrinks to 2 s so trickling clients cannot keep every slot. */
    unsigned request_deadline_ms;
    unsigned per_ip_limit;    /* connections from one address; 0 = max_connections / 4 */
    /* Host header names accepted besides the defaults, NULL-terminated; may
     * be NULL. By default: loopback literals, "localhost" and the listen
     * address (any IP literal when it listens on every interface). Names
     * are what DNS rebinding uses, so only configured ones pass. */
    const char *const *allowed_hosts;
} kcw_admin_opts_t;

/* One request as a handler sees it. Valid only during the handler call. */
typedef struct kcw_admin_request {
    const char *method; /* as sent: "GET", "HEAD", "POST", ... */
    const char *path;   /* decoded path, without the query string */
    const char *rest;   /* prefix route: what follows the prefix ("ID" of
                           /api/v2/silence/ID); "" for exact routes */
    const char *body;   /* NUL-terminated copy of the body; "" when none */
    size_t body_len;
    void *priv; /* the server's; use the accessors below */
} kcw_admin_request_t;

/* What a handler answers. The server pre-fills status 200, no body. */
typedef struct kcw_admin_response {
    int status;
    char *body;               /* malloc'd; the server takes it over (also on error) */
    size_t body_len;          /* 0 = strlen(body) */
    const char *content_type; /* static string; NULL = KCW_ADMIN_CT_JSON */
} kcw_admin_response_t;

/* Returns 0 when resp is filled, KCW_ADMIN_DEFERRED after kcw_admin_defer()
 * (resp is then ignored), or a negative errno: the server then answers 500
 * with a JSON error (and frees any body set). Runs on the loop: must not
 * block. */
typedef int (*kcw_admin_handler)(const kcw_admin_request_t *req, kcw_admin_response_t *resp,
                                 void *arg);

/* --- deferred answers --------------------------------------------------------
 *
 * A handler whose answer depends on work that finishes later on the loop
 * (a reload waiting for Prometheus) defers it: it calls kcw_admin_defer()
 * and returns KCW_ADMIN_DEFERRED. The connection is then suspended (libmicro-
 * httpd's suspend/resume) until the owner of the returned handle completes
 * it with kcw_admin_pending_finish(), which may happen at any later time on
 * the loop, also from inside another handler. At most KCW_ADMIN_MAX_PENDING
 * requests wait at once. The server disposes of a waiting request itself,
 * and then calls on_gone(arg) once, after which the handle is invalid:
 *   - its deadline passes: 504 {"errorType":"timeout","error":timeout_msg};
 *   - the client closes its connection (seen within about half a second;
 *     a client that half-closes its side counts as gone): no answer;
 *   - kcw_admin_close(): 503 {"errorType":"unavailable"}, written if the
 *     socket takes it at once, else dropped with the connection.
 * A handler returning anything but KCW_ADMIN_DEFERRED after deferring
 * abandons the handle the same way (on_gone runs, before the answer goes
 * out). Deferred answers are access-logged with their final status. */
#define KCW_ADMIN_DEFERRED 1
#define KCW_ADMIN_MAX_PENDING 4

typedef struct kcw_admin_pending kcw_admin_pending_t;

/* Defers the answer to req (see above); call from a handler only. timeout_ms
 * 0 = 30 s; timeout_msg is copied (NULL: a generic sentence). on_gone may be
 * NULL. NULL when KCW_ADMIN_MAX_PENDING requests already wait, the server is
 * closing, or out of memory: the handler answers itself then. */
kcw_admin_pending_t *kcw_admin_defer(const kcw_admin_request_t *req, unsigned timeout_ms,
                                     const char *timeout_msg, void (*on_gone)(void *arg),
                                     void *arg);
/* Answers a deferred request with resp (its body taken over, as from a
 * handler; status outside 100..999 becomes a 500). p is invalid afterwards;
 * on_gone does not run. NULL p frees resp's body only. */
void kcw_admin_pending_finish(kcw_admin_pending_t *p, kcw_admin_response_t *resp);
/* Requests waiting for a deferred answer (tests, metrics). */
unsigned kcw_admin_pending_count(const kcw_admin_t *a);

/* --- listen addresses (pure) ------------------------------------------------ */

/* "HOST:PORT" -> socket address. HOST is an IPv4 address, a bracketed IPv6
 * address ("[::1]"), "localhost" (127.0.0.1) or empty (0.0.0.0, every IPv4
 * interface); names are refused because resolving them would block. PORT is
 * 0..65535 (0: the kernel picks one). 0 or -EINVAL with a message in err. */
int kcw_admin_listen_parse(const char *listen, struct sockaddr_storage *addr, char *err,
                           size_t errlen);

/* Whether serving listen without a bearer token exposes the API beyond this
 * host: true (with a sentence in msg) when listen is not a loopback address
 * and token is NULL or "". false for loopback or with a token. */
bool kcw_admin_listen_exposed(const char *listen, const char *token, char *msg, size_t n);

/* --- the server ---------------------------------------------------------- */

/* Validates opts (the listen address is parsed here, not bound). opts may be
 * NULL for every default. NULL on failure with a message in err. */
kcw_admin_t *kcw_admin_new(uv_loop_t *loop, const kcw_admin_opts_t *opts, char *err, size_t errlen);
/* Adds a route: method is "GET", "POST", ... (a GET route also serves HEAD),
 * path an exact path ("/api/v1/alerts") or a prefix: a path ending in '/'
 * followed by '*' ("/api/v2/silence/" + "*") serves every path under it with
 * a non-empty rest, handed to the handler as req->rest; exact routes for a
 * path win. Both are copied. Routes may be added
 * before or after start. 0, -EEXIST for a duplicate, -ENOSPC past 32 routes,
 * -EINVAL, -ENOMEM. */
int kcw_admin_route(kcw_admin_t *a, const char *method, const char *path, kcw_admin_handler h,
                    void *arg);
/* Replaces the bearer token (reload); NULL or "" turns the check off.
 * 0 or -ENOMEM (the old token stays then). */
int kcw_admin_set_token(kcw_admin_t *a, const char *token);
/* Replaces the basic-auth credentials (reload); NULL or "" user turns them
 * off. 0, -EINVAL (a user without a password) or -ENOMEM (the old ones stay). */
int kcw_admin_set_basic_auth(kcw_admin_t *a, const char *user, const char *password);
/* Whether the server speaks HTTPS. */
bool kcw_admin_tls(const kcw_admin_t *a);
/* Binds the listen address and starts serving on the loop. 0 or a negative
 * errno (-EADDRINUSE, -EACCES, ... best effort; -EIO when MHD does not say)
 * with MHD's reason in err. */
int kcw_admin_start(kcw_admin_t *a, char *err, size_t errlen);
/* The bound port (the real one when the address asked for port 0); 0 before
 * start. */
unsigned kcw_admin_port(const kcw_admin_t *a);
/* Open client connections (tests, metrics). */
unsigned kcw_admin_connections(const kcw_admin_t *a);
/* Connections cut for missing their request deadline since start (metrics). */
unsigned long long kcw_admin_connections_cut(const kcw_admin_t *a);
/* Whether a request with this Host header value may be served (pure
 * policy, for tests): host[:port], [v6][:port]; NULL (HTTP/1.0) passes. */
bool kcw_admin_host_allowed(const kcw_admin_t *a, const char *host);
/* Stops serving: open connections are dropped, in-flight requests are
 * abandoned, deferred ones answered 503 (see "deferred answers").
 * on_closed(arg) runs later on the loop once every handle is closed and
 * everything freed; it may be NULL. Safe to call from a handler.
 * Also the only way to dispose of a server that was never started. */
void kcw_admin_close(kcw_admin_t *a, void (*on_closed)(void *arg), void *arg);

/* --- request accessors ------------------------------------------------------ */

/* Query-string argument (decoded), NULL when absent. For "?a" the value is "". */
const char *kcw_admin_request_arg(const kcw_admin_request_t *req, const char *name);
/* Every value of a query-string argument that may repeat ("?f[]=a&f[]=b"),
 * decoded, in order: at most max of them into out (valid during the
 * handler). Returns how many there are (more than max: not all stored). */
size_t kcw_admin_request_args(const kcw_admin_request_t *req, const char *name, const char **out,
                              size_t max);
/* Request header (case-insensitive name), NULL when absent. */
const char *kcw_admin_request_header(const kcw_admin_request_t *req, const char *name);

/* --- Prometheus API envelopes (pure) ---------------------------------------- */

/* {"status":"success","data":data}. Steals the reference to data (also on
 * failure); NULL data becomes JSON null. NULL on allocation failure. */
json_t *kcw_admin_envelope_success(json_t *data);
/* {"status":"error","errorType":error_type,"error":error}. NULL on allocation
 * failure. Prometheus' errorType values: bad_data, not_found, internal,
 * unavailable, timeout, canceled, execution. */
json_t *kcw_admin_envelope_error(const char *error_type, const char *error);

/* Serializes doc (reference stolen) compactly into resp->body, replacing and
 * freeing any body already there, with the JSON content type. 0, -EINVAL for
 * NULL doc, or -ENOMEM. */
int kcw_admin_response_json(kcw_admin_response_t *resp, int status, json_t *doc);
/* 200 with the success envelope around data (reference stolen). 0 or -ENOMEM. */
int kcw_admin_response_success(kcw_admin_response_t *resp, json_t *data);
/* status with the error envelope. 0 or -ENOMEM. */
int kcw_admin_response_error(kcw_admin_response_t *resp, int status, const char *error_type,
                             const char *error);
/* status with a copy of text and the given content type (NULL = text/plain).
 * 0 or -ENOMEM. */
int kcw_admin_response_text(kcw_admin_response_t *resp, int status, const char *content_type,
                            const char *text);

#endif
