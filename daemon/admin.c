/* admin.c: the admin HTTP server on the libuv loop (see admin.h).
 *
 * libmicrohttpd runs in "external epoll" mode: it owns an epoll fd holding
 * the listen socket and every client connection, and does its work only when
 * MHD_run() is called. The loop watches that epoll fd with one uv_poll and
 * calls MHD_run() when it turns readable; after every run MHD_get_timeout()
 * says when MHD must run again even without I/O (idle connection timeouts,
 * buffered data it could not finish), and one uv_timer is armed for that.
 * No thread is created.
 *
 * A request enters through on_request(), which MHD calls at least twice: once
 * when the headers are in (the body limit is checked against Content-Length
 * there), then with body chunks, which are copied into the request's buffer,
 * then once more with nothing left to read, when the route is looked up and
 * the answer queued. Answering only then keeps the connection alive: MHD
 * closes any connection whose answer was queued before its body was read.
 *
 * Slow clients cannot hold the server: MHD's idle timeout restarts with
 * every byte, so each connection also has a deadline for a whole request
 * (headers and body, counted from the accept or the last answer): a reaper
 * timer shuts overdue sockets down. When the server runs near its connection
 * limit the deadline shrinks, so a flood of trickling connections turns over
 * fast and /healthz still gets a slot; one address may hold only a share of
 * the slots. Requests must name an allowed Host (DNS rebinding).
 *
 * A handler may defer its answer (admin.h): its connection is suspended
 * (MHD's suspend/resume) and resumed when the owner finishes it; the access
 * handler then runs again and queues the stored answer. MHD neither times
 * out nor watches suspended sockets, so the reaper's tick keeps each
 * deferred answer's deadline and polls its socket for a hang-up. MHD must
 * not be stopped with a connection suspended: close answers every waiting
 * request 503 first and gives MHD a few runs to write those answers. */
#include "kcwatch/admin.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "kcwatch/log.h"
#include "kcwatch/yamlnode.h"

#define MAX_ROUTES 32
#define MAX_METHOD_LEN 15
#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_MAX_BODY (64 * 1024)
#define DEFAULT_CONN_MEMORY (32 * 1024)
#define DEFAULT_CONN_TIMEOUT_S 30
#define DEFAULT_REQUEST_DEADLINE_MS 10000
#define PRESSURE_DEADLINE_MS 2000 /* near the connection limit */
#define REAPER_INTERVAL_MS 500
#define PER_IP_SHARE 4 /* one address holds at most 1/4 of the slots */
#define MAX_ALLOWED_HOSTS 16
#define LISTEN_BACKLOG 64
#define MAX_LISTEN_LEN 256
#define MAX_PEM_BYTES (1024 * 1024)
#define DEFAULT_PENDING_TIMEOUT_MS 30000
#define FLUSH_RUNS 3 /* MHD runs on close for deferred answers to go out */
#define SHUTDOWN_MSG "the server is shutting down; the outcome is in the log"

/* One client connection (MHD's socket context), for the request deadline. */
typedef struct conn_rec {
    struct conn_rec *prev, *next;
    struct MHD_Connection *conn;
    uint64_t phase_ns; /* accept, or the last answer queued: a request is due by then + deadline */
    bool cut;          /* already shut down */
    bool suspended;    /* waiting for a deferred answer: its own deadline applies */
} conn_rec_t;

typedef struct route {
    char *method;
    char *path; /* a prefix route keeps its trailing '/' ("/api/v2/silence/") */
    size_t path_len;
    bool prefix; /* registered with a trailing '*': any non-empty rest matches */
    kcw_admin_handler handler;
    void *arg;
} route_t;

struct kcw_admin {
    uv_loop_t *loop;
    char *listen;
    struct sockaddr_storage addr;
    char *token; /* NULL = no check */
    char *basic_user, *basic_password; /* NULL = no basic auth */
    char *tls_cert, *tls_key;          /* PEM text; NULL = plain HTTP */
    unsigned max_connections;
    size_t max_body;
    size_t conn_memory;
    unsigned conn_timeout_s;
    uint64_t deadline_ms;
    unsigned per_ip_limit;
    char *allowed_hosts[MAX_ALLOWED_HOSTS];
    size_t n_allowed_hosts;

    conn_rec_t *conns; /* open connections, newest first */
    uv_timer_t reaper; /* cuts connections past the request deadline */
    uint64_t cut_total;

    route_t routes[MAX_ROUTES];
    size_t n_routes;

    struct MHD_Daemon *mhd;
    unsigned port;
    uv_poll_t poll;   /* on MHD's epoll fd, initialized by start */
    uv_timer_t timer; /* MHD's timeout, initialized by new */
    bool started, closing;
    bool in_run;          /* inside MHD_run(): handlers are running */
    bool resumed;         /* a connection was resumed since MHD_run() last started */
    kcw_admin_pending_t *pending; /* deferred answers, newest first */
    unsigned n_pending;
    unsigned connections; /* as of the last MHD_run() */
    int open_handles;
    void (*on_closed)(void *arg);
    void *on_closed_arg;

    /* MHD reports start-up failures only through its logger */
    bool starting;
    char start_error[256];
    int start_errno;
};

/* Per-request state, MHD's con_cls; freed by on_completed(). */
typedef struct request {
    kcw_admin_t *a;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    uint64_t started_ns;
    kcw_admin_pending_t *pending; /* the handler deferred the answer */
    kcw_admin_response_t answer;  /* the deferred answer, queued on resume */
    bool answered;                /* answer is set */
    bool gone;                    /* the client left while suspended: drop it */
} request_t;

/* A deferred answer (admin.h), in kcw_admin.pending while it waits. */
struct kcw_admin_pending {
    kcw_admin_pending_t *prev, *next;
    kcw_admin_t *a;
    request_t *rq;
    uint64_t deadline_ns;
    char *timeout_msg;
    void (*on_gone)(void *arg);
    void *arg;
    bool suspended; /* the handler returned KCW_ADMIN_DEFERRED */
};

/* --- listen addresses ---------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5)
        return -EINVAL;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

int kcw_admin_listen_parse(const char *listen, struct sockaddr_storage *addr, char *err,
                           size_t errlen)
{
    if (!listen || !addr) {
        set_err(err, errlen, "listen address missing");
        return -EINVAL;
    }
    size_t len = strlen(listen);
    if (len >= MAX_LISTEN_LEN) {
        set_err(err, errlen, "listen address too long");
        return -EINVAL;
    }
    char host[MAX_LISTEN_LEN];
    const char *port_str;
    bool v6 = false;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            set_err(err, errlen, "listen address \"%s\": expected [IPV6]:PORT", listen);
            return -EINVAL;
        }
        memcpy(host, listen + 1, (size_t)(close - listen - 1));
        host[close - listen - 1] = '\0';
        port_str = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon) {
            set_err(err, errlen, "listen address \"%s\": expected HOST:PORT", listen);
            return -EINVAL;
        }
        if (strchr(listen, ':') != colon) {
            set_err(err, errlen, "listen address \"%s\": IPv6 hosts go in brackets, [::1]:9464",
                    listen);
            return -EINVAL;
        }
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port_str = colon + 1;
    }
    int port;
    if (parse_port(port_str, &port) < 0) {
        set_err(err, errlen, "listen address \"%s\": port must be 0..65535", listen);
        return -EINVAL;
    }

    memset(addr, 0, sizeof *addr);
    if (v6) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)addr) != 0) {
            set_err(err, errlen, "listen address \"%s\": \"%s\" is not an IPv6 address", listen,
                    host);
            return -EINVAL;
        }
        return 0;
    }
    /* Only literal addresses: resolving a name could block the loop, and a
     * name with several addresses would not say which one to bind. */
    const char *ip = host;
    if (host[0] == '\0')
        ip = "0.0.0.0";
    else if (strcasecmp(host, "localhost") == 0)
        ip = "127.0.0.1";
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)addr) != 0) {
        set_err(err, errlen,
                "listen address \"%s\": \"%s\" is not an IPv4 address (names are not "
                "resolved; use an IP, [IPv6] or localhost)",
                listen, host);
        return -EINVAL;
    }
    return 0;
}

/* --- JSON envelopes -------------------------------------------------------- */

json_t *kcw_admin_envelope_success(json_t *data)
{
    if (!data)
        data = json_null();
    json_t *doc = json_object();
    if (!doc) {
        json_decref(data);
        return NULL;
    }
    /* json_object_set_new releases the value on failure too */
    if (json_object_set_new(doc, "status", json_string("success")) < 0 ||
        json_object_set_new(doc, "data", data) < 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* A JSON string of s; bytes of invalid UTF-8 (a client's path, say) become
 * '?' rather than losing the whole message. */
static json_t *string_lossy(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *kcw_admin_envelope_error(const char *error_type, const char *error)
{
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    if (json_object_set_new(doc, "status", json_string("error")) < 0 ||
        json_object_set_new(doc, "errorType", string_lossy(error_type ? error_type : "internal")) <
            0 ||
        json_object_set_new(doc, "error", string_lossy(error ? error : "")) < 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void response_replace_body(kcw_admin_response_t *resp, char *body, size_t len)
{
    free(resp->body);
    resp->body = body;
    resp->body_len = len;
}

int kcw_admin_response_json(kcw_admin_response_t *resp, int status, json_t *doc)
{
    if (!doc)
        return -EINVAL;
    /* json_dumps allocates with malloc (the project installs no jansson
     * allocator), so the server may free() the body like any other. */
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    response_replace_body(resp, text, strlen(text));
    resp->status = status;
    resp->content_type = KCW_ADMIN_CT_JSON;
    return 0;
}

int kcw_admin_response_success(kcw_admin_response_t *resp, json_t *data)
{
    json_t *doc = kcw_admin_envelope_success(data);
    if (!doc)
        return -ENOMEM;
    return kcw_admin_response_json(resp, 200, doc);
}

int kcw_admin_response_error(kcw_admin_response_t *resp, int status, const char *error_type,
                             const char *error)
{
    json_t *doc = kcw_admin_envelope_error(error_type, error);
    if (!doc)
        return -ENOMEM;
    return kcw_admin_response_json(resp, status, doc);
}

int kcw_admin_response_text(kcw_admin_response_t *resp, int status, const char *content_type,
                            const char *text)
{
    char *copy = strdup(text ? text : "");
    if (!copy)
        return -ENOMEM;
    response_replace_body(resp, copy, strlen(copy));
    resp->status = status;
    resp->content_type = content_type ? content_type : KCW_ADMIN_CT_TEXT;
    return 0;
}

/* --- request accessors ----------------------------------------------------- */

const char *kcw_admin_request_arg(const kcw_admin_request_t *req, const char *name)
{
    if (!req || !req->priv || !name)
        return NULL;
    const char *value = NULL;
    size_t value_len = 0;
    /* the _n variant tells "?a" (present, no value) from absent */
    const request_t *rq = req->priv;
    if (MHD_lookup_connection_value_n(rq->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &value,
                                      &value_len) != MHD_YES)
        return NULL;
    return value ? value : "";
}

typedef struct args_walk {
    const char *name;
    const char **out;
    size_t max, n;
} args_walk_t;

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    args_walk_t *w = cls;
    if (key && strcmp(key, w->name) == 0) {
        if (w->n < w->max)
            w->out[w->n] = value ? value : "";
        w->n++;
    }
    return MHD_YES;
}

size_t kcw_admin_request_args(const kcw_admin_request_t *req, const char *name, const char **out,
                              size_t max)
{
    if (!req || !req->priv || !name || !out || max == 0)
        return 0;
    args_walk_t w = {.name = name, .out = out, .max = max};
    const request_t *rq = req->priv;
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, on_arg, &w);
    return w.n;
}

const char *kcw_admin_request_header(const kcw_admin_request_t *req, const char *name)
{
    if (!req || !req->priv || !name)
        return NULL;
    const request_t *rq = req->priv;
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* --- the server: set-up ------------------------------------------------------ */

static void free_token(char *token)
{
    if (!token)
        return;
    explicit_bzero(token, strlen(token));
    free(token);
}

int kcw_admin_set_basic_auth(kcw_admin_t *a, const char *user, const char *password)
{
    if (!a)
        return -EINVAL;
    char *u = NULL, *p = NULL;
    if (user && *user) {
        if (!password)
            return -EINVAL;
        u = strdup(user);
        p = strdup(password);
        if (!u || !p) {
            free(u);
            free_token(p);
            return -ENOMEM;
        }
    }
    free(a->basic_user);
    free_token(a->basic_password);
    a->basic_user = u;
    a->basic_password = p;
    return 0;
}

bool kcw_admin_tls(const kcw_admin_t *a)
{
    return a && a->tls_cert;
}

/* Reads a PEM file for the server; -1 with the reason in err. */
static int read_pem(const char *file, const char *what, char **out, char *err, size_t errlen)
{
    size_t len;
    kcw_read_step_t step;
    int rc = kcw_file_read_bounded(file, MAX_PEM_BYTES, out, &len, &step);
    if (rc < 0) {
        set_err(err, errlen, "admin.tls.%s \"%s\": %s", what, file,
                rc == -ENOTSUP || rc == -EISDIR ? "not a regular file"
                : rc == -EFBIG                  ? "larger than 1 MiB"
                                                : strerror(-rc));
        return -1;
    }
    return 0;
}

int kcw_admin_set_token(kcw_admin_t *a, const char *token)
{
    if (!a)
        return -EINVAL;
    char *copy = NULL;
    if (token && *token) {
        copy = strdup(token);
        if (!copy)
            return -ENOMEM;
    }
    free_token(a->token);
    a->token = copy;
    return 0;
}

static void admin_free(kcw_admin_t *a)
{
    for (size_t i = 0; i < a->n_routes; i++) {
        free(a->routes[i].method);
        free(a->routes[i].path);
    }
    free_token(a->token);
    free(a->basic_user);
    free_token(a->basic_password);
    free(a->tls_cert);
    free_token(a->tls_key);
    for (size_t i = 0; i < a->n_allowed_hosts; i++)
        free(a->allowed_hosts[i]);
    free(a->listen);
    free(a);
}

static void free_after_close(uv_handle_t *h)
{
    admin_free(h->data);
}

kcw_admin_t *kcw_admin_new(uv_loop_t *loop, const kcw_admin_opts_t *opts, char *err, size_t errlen)
{
    static const kcw_admin_opts_t defaults = {0};
    if (!loop) {
        set_err(err, errlen, "no loop");
        return NULL;
    }
    if (!opts)
        opts = &defaults;
    kcw_admin_t *a = calloc(1, sizeof *a);
    if (!a) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    a->loop = loop;
    a->listen = strdup(opts->listen ? opts->listen : KCW_ADMIN_DEFAULT_LISTEN);
    if (!a->listen || kcw_admin_set_token(a, opts->token) < 0) {
        set_err(err, errlen, "out of memory");
        admin_free(a);
        return NULL;
    }
    int brc = kcw_admin_set_basic_auth(a, opts->basic_user, opts->basic_password);
    if (brc < 0) {
        set_err(err, errlen, brc == -EINVAL ? "basic auth user without a password"
                                            : "out of memory");
        admin_free(a);
        return NULL;
    }
    if (opts->tls_cert_file || opts->tls_key_file) {
        if (!opts->tls_cert_file || !opts->tls_key_file) {
            set_err(err, errlen, "admin.tls: cert_file and key_file are both required");
            admin_free(a);
            return NULL;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            set_err(err, errlen, "admin.tls: this libmicrohttpd is built without TLS");
            admin_free(a);
            return NULL;
        }
        if (read_pem(opts->tls_cert_file, "cert_file", &a->tls_cert, err, errlen) < 0 ||
            read_pem(opts->tls_key_file, "key_file", &a->tls_key, err, errlen) < 0) {
            admin_free(a);
            return NULL;
        }
    }
    if (kcw_admin_listen_parse(a->listen, &a->addr, err, errlen) < 0) {
        admin_free(a);
        return NULL;
    }
    a->max_connections = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
    a->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    a->conn_memory = opts->conn_memory ? opts->conn_memory : DEFAULT_CONN_MEMORY;
    a->conn_timeout_s = opts->conn_timeout_s ? opts->conn_timeout_s : DEFAULT_CONN_TIMEOUT_S;
    a->deadline_ms =
        opts->request_deadline_ms ? opts->request_deadline_ms : DEFAULT_REQUEST_DEADLINE_MS;
    a->per_ip_limit = opts->per_ip_limit ? opts->per_ip_limit : a->max_connections / PER_IP_SHARE;
    if (a->per_ip_limit == 0)
        a->per_ip_limit = 1;
    for (size_t i = 0; opts->allowed_hosts && opts->allowed_hosts[i]; i++) {
        if (a->n_allowed_hosts == MAX_ALLOWED_HOSTS) {
            set_err(err, errlen, "more than %d allowed hosts", MAX_ALLOWED_HOSTS);
            admin_free(a);
            return NULL;
        }
        if (!(a->allowed_hosts[a->n_allowed_hosts] = strdup(opts->allowed_hosts[i]))) {
            set_err(err, errlen, "out of memory");
            admin_free(a);
            return NULL;
        }
        a->n_allowed_hosts++;
    }
    int rc = uv_timer_init(loop, &a->timer);
    if (rc < 0) {
        set_err(err, errlen, "timer: %s", uv_strerror(rc));
        admin_free(a);
        return NULL;
    }
    a->timer.data = a;
    rc = uv_timer_init(loop, &a->reaper);
    if (rc < 0) {
        /* the first timer is initialized: it must be closed, not just freed */
        set_err(err, errlen, "timer: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&a->timer, free_after_close);
        return NULL;
    }
    a->reaper.data = a;
    return a;
}

static bool method_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > MAX_METHOD_LEN)
        return false;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return false;
    return true;
}

int kcw_admin_route(kcw_admin_t *a, const char *method, const char *path, kcw_admin_handler h,
                    void *arg)
{
    if (!a || a->closing || !method || !path || !h || !method_valid(method) || path[0] != '/')
        return -EINVAL;
    size_t len = strlen(path);
    bool prefix = len >= 3 && strcmp(path + len - 2, "/*") == 0;
    if (prefix)
        len--; /* keep the '/' */
    if (memchr(path, '*', len))
        return -EINVAL;
    for (size_t i = 0; i < a->n_routes; i++)
        if (strcmp(a->routes[i].method, method) == 0 && a->routes[i].prefix == prefix &&
            a->routes[i].path_len == len && memcmp(a->routes[i].path, path, len) == 0)
            return -EEXIST;
    if (a->n_routes == MAX_ROUTES)
        return -ENOSPC;
    route_t r = {strdup(method), strndup(path, len), len, prefix, h, arg};
    if (!r.method || !r.path) {
        free(r.method);
        free(r.path);
        return -ENOMEM;
    }
    a->routes[a->n_routes++] = r;
    return 0;
}

unsigned kcw_admin_port(const kcw_admin_t *a)
{
    return a ? a->port : 0;
}

unsigned kcw_admin_connections(const kcw_admin_t *a)
{
    if (!a || !a->mhd)
        return 0;
    /* the query also reaps closed connections: not while MHD_run() is busy */
    if (a->in_run)
        return a->connections;
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

bool kcw_admin_listen_exposed(const char *listen, const char *token, char *msg, size_t n)
{
    struct sockaddr_storage addr;
    if (token && *token)
        return false;
    if (kcw_admin_listen_parse(listen, &addr, NULL, 0) < 0)
        return false; /* refused elsewhere with its own message */
    bool loopback;
    if (addr.ss_family == AF_INET6)
        loopback = IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&addr)->sin6_addr);
    else
        loopback = (ntohl(((const struct sockaddr_in *)&addr)->sin_addr.s_addr) >> 24) == 127;
    if (loopback)
        return false;
    set_err(msg, n,
            "listen %s serves the admin API beyond this host and no bearer token protects its "
            "write routes (reload)",
            listen);
    return true;
}

/* --- Host header policy ------------------------------------------------------ */

unsigned long long kcw_admin_connections_cut(const kcw_admin_t *a)
{
    return a ? a->cut_total : 0;
}

static bool ip_is_loopback(const char *ip)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, ip, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, ip, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

static bool ip_literal(const char *ip)
{
    struct in6_addr buf;
    return inet_pton(AF_INET, ip, &buf) == 1 || inet_pton(AF_INET6, ip, &buf) == 1;
}

static bool listen_is_wildcard(const kcw_admin_t *a)
{
    if (a->addr.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr);
    return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
}

bool kcw_admin_host_allowed(const kcw_admin_t *a, const char *host)
{
    if (!host)
        return true; /* HTTP/1.0 without Host: no browser sends that */
    char name[MAX_LISTEN_LEN];
    size_t len = strlen(host);
    if (len == 0 || len >= sizeof name)
        return false;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close || (close[1] && close[1] != ':'))
            return false;
        len = (size_t)(close - host - 1);
        memcpy(name, host + 1, len);
    } else {
        const char *colon = strchr(host, ':');
        if (colon && strchr(colon + 1, ':'))
            return false; /* a bare IPv6 address must be bracketed */
        len = colon ? (size_t)(colon - host) : len;
        memcpy(name, host, len);
    }
    name[len] = '\0';
    while (len > 0 && name[len - 1] == '.')
        name[--len] = '\0'; /* "localhost." is localhost */
    if (strcasecmp(name, "localhost") == 0 || ip_is_loopback(name))
        return true;
    for (size_t i = 0; a && i < a->n_allowed_hosts; i++)
        if (strcasecmp(name, a->allowed_hosts[i]) == 0)
            return true;
    if (!a || !ip_literal(name))
        return false;
    if (listen_is_wildcard(a))
        return true; /* an address of ours; a rebinding attack needs a name */
    char bound[80];
    return uv_ip_name((const struct sockaddr *)&a->addr, bound, sizeof bound) == 0 &&
           strcasecmp(bound, name) == 0;
}

/* --- answering ------------------------------------------------------------- */

static bool method_is_safe(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* Compares a client's token with ours in time that depends only on the
 * client's length, so timing reveals nothing about where they differ. */
static bool token_equal(const char *got, const char *want)
{
    size_t got_len = strlen(got), want_len = strlen(want);
    volatile unsigned char diff = got_len != want_len;
    for (size_t i = 0; i < got_len; i++)
        diff |= (unsigned char)got[i] ^ (unsigned char)want[i % want_len];
    return diff == 0;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The credentials of an "Authorization: SCHEME CREDENTIALS" header when its
 * scheme is scheme (RFC 7235: case-insensitive, then spaces), else NULL. */
static const char *auth_param(struct MHD_Connection *conn, const char *scheme)
{
    const char *h = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t n = strlen(scheme);
    if (!h || strncasecmp(h, scheme, n) != 0 || (h[n] != ' ' && h[n] != '\t'))
        return NULL;
    h += n;
    while (*h == ' ' || *h == '\t')
        h++;
    return *h ? h : NULL;
}

static bool bearer_ok(const kcw_admin_t *a, struct MHD_Connection *conn)
{
    const char *got = auth_param(conn, "Bearer");
    return a->token && got && token_equal(got, a->token);
}

static bool basic_ok(const kcw_admin_t *a, struct MHD_Connection *conn)
{
    if (!a->basic_user || !auth_param(conn, "Basic"))
        return false;
    /* libmicrohttpd decodes the header; both parts are compared whole */
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &pass);
    bool ok = user && pass;
    if (ok) {
        bool u = token_equal(user, a->basic_user);
        bool p = token_equal(pass, a->basic_password);
        ok = u && p;
    }
    if (pass) {
        explicit_bzero(pass, strlen(pass));
        MHD_free(pass);
    }
    if (user)
        MHD_free(user);
    return ok;
}

/* host[:port] of an Origin ("scheme://host[:port]"), compared with Host. */
static bool origin_matches_host(const char *origin, const char *host)
{
    const char *sep = strstr(origin, "://");
    if (!sep || !host)
        return false;
    return strcasecmp(sep + 3, host) == 0;
}

/* A browser's cross-site write (see admin.h "Access"): true with the reason. */
static bool cross_site(struct MHD_Connection *conn, const char **why)
{
    const char *site = header(conn, "Sec-Fetch-Site");
    if (site && strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0) {
        *why = "cross-site request refused (Sec-Fetch-Site)";
        return true;
    }
    const char *origin = header(conn, "Origin");
    if (origin && !origin_matches_host(origin, header(conn, MHD_HTTP_HEADER_HOST))) {
        *why = "cross-site request refused (Origin does not match Host)";
        return true;
    }
    return false;
}

typedef enum { ACCESS_OK, ACCESS_FORBIDDEN, ACCESS_BEARER, ACCESS_BASIC } access_t;

/* Who may do what (admin.h "Access"). */
static access_t access_check(const kcw_admin_t *a, struct MHD_Connection *conn,
                             const char *method, const char **why)
{
    if (!method_is_safe(method)) {
        if (cross_site(conn, why))
            return ACCESS_FORBIDDEN;
        if (a->token)
            return bearer_ok(a, conn) ? ACCESS_OK : ACCESS_BEARER;
        return !a->basic_user || basic_ok(a, conn) ? ACCESS_OK : ACCESS_BASIC;
    }
    if (!a->basic_user || basic_ok(a, conn) || bearer_ok(a, conn))
        return ACCESS_OK;
    return ACCESS_BASIC;
}

static void access_log(struct MHD_Connection *conn, const request_t *rq, const char *method,
                       const char *path, int status)
{
    if (!kcw_log_enabled(KCW_LOG_DEBUG))
        return;
    char remote[64] = "-";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && uv_ip_name(ci->client_addr, remote, sizeof remote) != 0)
        snprintf(remote, sizeof remote, "-");
    /* whole microseconds: the duration prints as 0.123, not 0.12300000000000001 */
    double ms = (double)((uv_hrtime() - rq->started_ns) / 1000) / 1e3;
    kcw_log(KCW_LOG_DEBUG, "admin request", "method", method, "path", path,
            KCW_LOG_INT("status", status), "remote", remote, KCW_LOG_NUM("duration_ms", ms), NULL);
}

/* Queues resp (taking its body) with the extra header name: value when name is
 * set. MHD_NO drops the connection, which is all that is left to do when not
 * even the answer can be allocated. */
static enum MHD_Result send_response(struct MHD_Connection *conn, const request_t *rq,
                                     const char *method, const char *path,
                                     kcw_admin_response_t *resp, const char *hdr_name,
                                     const char *hdr_value)
{
    struct MHD_Response *r;
    size_t len = 0;
    if (resp->body) {
        len = resp->body_len ? resp->body_len : strlen(resp->body);
        r = MHD_create_response_from_buffer(len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(resp->body);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    resp->body = NULL;
    if (!r) {
        kcw_log(KCW_LOG_WARN, "admin: cannot allocate a response", "path", path, NULL);
        return MHD_NO;
    }
    enum MHD_Result ok = MHD_YES;
    if (resp->content_type || len > 0)
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                     resp->content_type ? resp->content_type : KCW_ADMIN_CT_JSON);
    if (ok == MHD_YES && hdr_name)
        ok = MHD_add_response_header(r, hdr_name, hdr_value);
    /* Nothing served here loads anything from elsewhere (the status page
     * included), and no answer is to be read as another type than it says. */
    if (ok == MHD_YES)
        ok = MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'");
    if (ok == MHD_YES)
        ok = MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    access_log(conn, rq, method, path, resp->status);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, const request_t *rq,
                                  const char *method, const char *path, int status,
                                  const char *type, const char *msg, const char *hdr_name,
                                  const char *hdr_value)
{
    kcw_admin_response_t resp = {0};
    if (kcw_admin_response_error(&resp, status, type, msg) < 0)
        return MHD_NO;
    return send_response(conn, rq, method, path, &resp, hdr_name, hdr_value);
}

/* Whether r serves path: the same path, or for a prefix route the prefix
 * followed by at least one byte. */
static bool route_matches(const route_t *r, const char *path)
{
    if (!r->prefix)
        return strcmp(r->path, path) == 0;
    return strncmp(r->path, path, r->path_len) == 0 && path[r->path_len] != '\0';
}

/* Whether any exact route serves path: exact routes hide prefix ones. */
static bool path_exact(const kcw_admin_t *a, const char *path)
{
    for (size_t i = 0; i < a->n_routes; i++)
        if (!a->routes[i].prefix && strcmp(a->routes[i].path, path) == 0)
            return true;
    return false;
}

static bool route_serves(const route_t *r, const char *path, bool exact)
{
    return route_matches(r, path) && !(r->prefix && exact);
}

/* "GET, HEAD, POST": the methods routed for path (HEAD implied by GET). */
static void allow_list(const kcw_admin_t *a, const char *path, char *buf, size_t n)
{
    size_t used = 0;
    bool has_get = false, has_head = false;
    bool exact = path_exact(a, path);
    buf[0] = '\0';
    for (size_t i = 0; i < a->n_routes; i++) {
        if (!route_serves(&a->routes[i], path, exact))
            continue;
        has_get |= strcmp(a->routes[i].method, "GET") == 0;
        has_head |= strcmp(a->routes[i].method, "HEAD") == 0;
    }
    for (size_t i = 0; i <= a->n_routes; i++) {
        const char *m;
        if (i < a->n_routes) {
            if (!route_serves(&a->routes[i], path, exact))
                continue;
            m = a->routes[i].method;
        } else if (has_get && !has_head) {
            m = "HEAD";
        } else {
            break;
        }
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", m);
        if (w < 0 || (size_t)w >= n - used)
            break; /* cannot happen with MAX_ROUTES short methods; keep what fits */
        used += (size_t)w;
    }
}

/* The route for (method, path); *path_known says whether any method is. An
 * explicit HEAD route wins over the GET one. */
static const route_t *route_find(const kcw_admin_t *a, const char *method, const char *path,
                                 bool *path_known)
{
    const route_t *fallback = NULL;
    bool is_head = strcmp(method, "HEAD") == 0;
    bool exact = path_exact(a, path);
    *path_known = false;
    for (size_t i = 0; i < a->n_routes; i++) {
        const route_t *r = &a->routes[i];
        if (!route_serves(r, path, exact))
            continue;
        *path_known = true;
        if (strcmp(r->method, method) == 0)
            return r;
        if (is_head && strcmp(r->method, "GET") == 0)
            fallback = r;
    }
    return fallback;
}

/* --- deferred answers ------------------------------------------------------ */

static conn_rec_t *conn_rec_of(struct MHD_Connection *conn);
static void on_timer(uv_timer_t *t);
static void on_reaper(uv_timer_t *t);
static void timer_start_checked(uv_timer_t *t, uv_timer_cb cb, uint64_t ms, uint64_t repeat);

unsigned kcw_admin_pending_count(const kcw_admin_t *a)
{
    return a ? a->n_pending : 0;
}

kcw_admin_pending_t *kcw_admin_defer(const kcw_admin_request_t *req, unsigned timeout_ms,
                                     const char *timeout_msg, void (*on_gone)(void *arg),
                                     void *arg)
{
    request_t *rq = req ? req->priv : NULL;
    if (!rq)
        return NULL;
    kcw_admin_t *a = rq->a;
    if (a->closing || rq->pending || rq->answered || a->n_pending >= KCW_ADMIN_MAX_PENDING)
        return NULL;
    kcw_admin_pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->timeout_msg = strdup(timeout_msg ? timeout_msg : "no answer within the deadline");
    if (!p->timeout_msg) {
        free(p);
        return NULL;
    }
    p->a = a;
    p->rq = rq;
    p->deadline_ns =
        uv_hrtime() + (uint64_t)(timeout_ms ? timeout_ms : DEFAULT_PENDING_TIMEOUT_MS) * 1000000ULL;
    p->on_gone = on_gone;
    p->arg = arg;
    p->next = a->pending;
    if (a->pending)
        a->pending->prev = p;
    a->pending = p;
    a->n_pending++;
    rq->pending = p;
    return p;
}

static void pending_unlink(kcw_admin_pending_t *p)
{
    kcw_admin_t *a = p->a;
    if (p->prev)
        p->prev->next = p->next;
    else
        a->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    a->n_pending--;
    p->rq->pending = NULL;
    free(p->timeout_msg);
    free(p);
}

/* Frees p and lets MHD go on with its connection: the access handler runs
 * again and queues rq->answer, or drops the connection (rq->gone). Still
 * inside the deferring handler, dispatch() does that itself. */
static void pending_release(kcw_admin_pending_t *p)
{
    kcw_admin_t *a = p->a;
    request_t *rq = p->rq;
    bool suspended = p->suspended;
    pending_unlink(p);
    if (!suspended)
        return;
    conn_rec_t *cr = conn_rec_of(rq->conn);
    if (cr) {
        cr->suspended = false;
        cr->phase_ns = uv_hrtime(); /* the answer is due from now on */
    }
    MHD_resume_connection(rq->conn);
    a->resumed = true;
    /* MHD's ITC wakes its epoll fd as well; the timer makes sure */
    if (!a->in_run && !a->closing)
        timer_start_checked(&a->timer, on_timer, 0, 0);
}

/* The server disposes of p itself: status with an error envelope, or the
 * connection dropped when status is 0; the owner hears of it last. */
static void pending_abandon(kcw_admin_pending_t *p, int status, const char *type, const char *msg)
{
    request_t *rq = p->rq;
    void (*cb)(void *) = p->on_gone;
    void *arg = p->arg;
    if (status && kcw_admin_response_error(&rq->answer, status, type, msg) == 0)
        rq->answered = true;
    else
        rq->gone = true;
    pending_release(p);
    if (cb)
        cb(arg);
}

void kcw_admin_pending_finish(kcw_admin_pending_t *p, kcw_admin_response_t *resp)
{
    if (!p) {
        if (resp) {
            free(resp->body);
            resp->body = NULL;
        }
        return;
    }
    request_t *rq = p->rq;
    if (!resp || resp->status < 100 || resp->status > 999) {
        if (resp) {
            free(resp->body);
            resp->body = NULL;
        }
        kcw_log(KCW_LOG_ERROR, "admin: deferred answer with an invalid status", NULL);
        if (kcw_admin_response_error(&rq->answer, 500, "internal",
                                     "deferred answer with an invalid status") < 0) {
            rq->gone = true;
            pending_release(p);
            return;
        }
    } else {
        rq->answer = *resp;
        resp->body = NULL;
    }
    rq->answered = true;
    pending_release(p);
}

/* Whether the client closed (or reset) a suspended connection: MHD does not
 * watch suspended sockets. */
static bool client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd pfd = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Deferred answers past their deadline, or whose client left (the reaper's
 * tick). An owner's on_gone may change the list: start over after each. */
static void pending_sweep(kcw_admin_t *a, uint64_t now)
{
    for (;;) {
        kcw_admin_pending_t *p = a->pending;
        while (p && (!p->suspended || (!client_gone(p->rq->conn) && now < p->deadline_ns)))
            p = p->next;
        if (!p)
            return;
        if (now >= p->deadline_ns) {
            pending_abandon(p, 504, "timeout", p->timeout_msg);
        } else {
            kcw_log(KCW_LOG_DEBUG, "admin: the client left before its deferred answer", NULL);
            pending_abandon(p, 0, NULL, NULL);
        }
    }
}

/* The handler returned: answer now, or suspend until the deferred answer. */
static enum MHD_Result dispatch_deferred(kcw_admin_t *a, struct MHD_Connection *conn,
                                         request_t *rq, const char *method, const char *path)
{
    kcw_admin_pending_t *p = rq->pending;
    if (p && a->closing)
        pending_abandon(p, 503, "unavailable", SHUTDOWN_MSG); /* the handler closed the server */
    else if (p) {
        p->suspended = true;
        conn_rec_t *cr = conn_rec_of(conn);
        if (cr)
            cr->suspended = true;
        MHD_suspend_connection(conn);
        /* the reaper keeps p's deadline and watches for the client leaving */
        if (!uv_is_active((uv_handle_t *)&a->reaper))
            timer_start_checked(&a->reaper, on_reaper, REAPER_INTERVAL_MS, REAPER_INTERVAL_MS);
        return MHD_YES;
    }
    if (rq->answered) { /* finished before the handler returned */
        rq->answered = false;
        return send_response(conn, rq, method, path, &rq->answer, NULL, NULL);
    }
    kcw_log(KCW_LOG_ERROR, "admin: handler deferred without kcw_admin_defer", "method", method,
            "path", path, NULL);
    return send_error(conn, rq, method, path, 500, "internal", "handler deferred without a handle",
                      NULL, NULL);
}

/* A handler deferred, then answered itself after all: the handle goes. */
static void deferred_undo(request_t *rq)
{
    if (rq->pending) {
        kcw_admin_pending_t *p = rq->pending;
        void (*cb)(void *) = p->on_gone;
        void *arg = p->arg;
        pending_unlink(p);
        if (cb)
            cb(arg);
    }
    free(rq->answer.body);
    rq->answer.body = NULL;
    rq->answered = false;
}

static enum MHD_Result dispatch(kcw_admin_t *a, struct MHD_Connection *conn, request_t *rq,
                                const char *method, const char *path)
{
    bool path_known;
    const route_t *r = route_find(a, method, path, &path_known);
    if (!path_known) {
        char msg[512];
        snprintf(msg, sizeof msg, "no such endpoint: %s", path);
        return send_error(conn, rq, method, path, 404, "not_found", msg, NULL, NULL);
    }
    if (!r) {
        char allow[MAX_ROUTES * (MAX_METHOD_LEN + 2) + 8], msg[sizeof allow + 96];
        allow_list(a, path, allow, sizeof allow);
        snprintf(msg, sizeof msg, "method %.32s not allowed; allowed: %s", method, allow);
        return send_error(conn, rq, method, path, 405, "bad_data", msg, MHD_HTTP_HEADER_ALLOW,
                          allow);
    }
    const char *why = NULL;
    switch (access_check(a, conn, method, &why)) {
    case ACCESS_OK: break;
    case ACCESS_FORBIDDEN:
        /* INFO, not WARN: anyone who can connect could fill the log */
        kcw_log(KCW_LOG_INFO, "admin: cross-site request refused", "method", method, "path", path,
                NULL);
        return send_error(conn, rq, method, path, 403, "forbidden", why, NULL, NULL);
    case ACCESS_BEARER:
        kcw_log(KCW_LOG_INFO, "admin: unauthorized request", "method", method, "path", path, NULL);
        return send_error(conn, rq, method, path, 401, "unauthorized",
                          "missing or wrong bearer token", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                          "Bearer realm=\"kcwatch\"");
    case ACCESS_BASIC:
        kcw_log(KCW_LOG_INFO, "admin: unauthorized request", "method", method, "path", path, NULL);
        return send_error(conn, rq, method, path, 401, "unauthorized",
                          "missing or wrong credentials", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                          "Basic realm=\"kcwatch\", charset=\"UTF-8\"");
    }

    kcw_admin_request_t req = {
        .method = method,
        .path = path,
        .rest = r->prefix ? path + r->path_len : "",
        .body = rq->body ? rq->body : "",
        .body_len = rq->len,
        .priv = rq,
    };
    kcw_admin_response_t resp = {.status = 200};
    int rc = r->handler(&req, &resp, r->arg);
    if (rc == KCW_ADMIN_DEFERRED) {
        free(resp.body);
        return dispatch_deferred(a, conn, rq, method, path);
    }
    deferred_undo(rq);
    if (rc < 0 || resp.status < 100 || resp.status > 999) {
        free(resp.body);
        char msg[128];
        if (rc < 0)
            snprintf(msg, sizeof msg, "handler failed: %s", strerror(-rc));
        else
            snprintf(msg, sizeof msg, "handler returned status %d", resp.status);
        kcw_log(KCW_LOG_ERROR, "admin: handler failed", "method", method, "path", path, "error",
                msg, NULL);
        return send_error(conn, rq, method, path, 500, "internal", msg, NULL, NULL);
    }
    return send_response(conn, rq, method, path, &resp, NULL, NULL);
}

/* Appends a body chunk, keeping the buffer NUL-terminated. -EFBIG past max. */
static int body_append(request_t *rq, const char *data, size_t n, size_t max)
{
    if (n > max || rq->len > max - n)
        return -EFBIG;
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 1024;
        while (cap < rq->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *p = realloc(rq->body, cap);
        if (!p)
            return -ENOMEM;
        rq->body = p;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
    return 0;
}

static bool declared_too_large(struct MHD_Connection *conn, size_t max)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    /* MHD itself rejects a malformed Content-Length; only the size matters */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    return end != cl && (errno == ERANGE || v > max);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    kcw_admin_t *a = cls;
    request_t *rq = *con_cls;
    (void)version;

    /* the server is closing: only deferred answers still go out */
    if (a->closing) {
        if (rq && rq->answered) {
            rq->answered = false;
            return send_response(conn, rq, method, url, &rq->answer, NULL, NULL);
        }
        return MHD_NO;
    }

    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->a = a;
        rq->conn = conn;
        rq->started_ns = uv_hrtime();
        *con_cls = rq;
        const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
        if (!kcw_admin_host_allowed(a, host)) {
            /* DEBUG: anyone who can connect could fill the log */
            kcw_log(KCW_LOG_DEBUG, "admin: Host not allowed", "host", host, "path", url, NULL);
            return send_error(conn, rq, method, url, 421, "bad_data",
                              "Host header names no address this server answers for", NULL,
                              NULL);
        }
        if (declared_too_large(conn, a->max_body)) {
            char msg[96];
            snprintf(msg, sizeof msg, "request body larger than %zu bytes", a->max_body);
            return send_error(conn, rq, method, url, 413, "bad_data", msg, NULL, NULL);
        }
        return MHD_YES;
    }
    /* resumed after a deferred answer */
    if (rq->gone)
        return MHD_NO;
    if (rq->answered) {
        rq->answered = false;
        return send_response(conn, rq, method, url, &rq->answer, NULL, NULL);
    }
    if (*upload_data_size > 0) {
        int rc = body_append(rq, upload_data, *upload_data_size, a->max_body);
        if (rc < 0) {
            /* a chunked body over the limit: MHD cannot answer in the middle of
             * a body, so the connection is dropped */
            kcw_log(KCW_LOG_INFO, "admin: request body dropped", "method", method, "path", url,
                    "error", rc == -EFBIG ? "too large" : "out of memory", NULL);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(a, conn, rq, method, url);
}

static conn_rec_t *conn_rec_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    conn_rec_t *cr = conn_rec_of(conn);
    if (cr)
        cr->phase_ns = uv_hrtime(); /* the next request's deadline starts now */
    request_t *rq = *con_cls;
    if (!rq)
        return;
    deferred_undo(rq); /* not expected: a suspended connection completes only once resumed */
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    kcw_admin_t *a = cls;
    int saved_errno = errno;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (a->starting) {
        /* keep the first message: later ones are MHD's clean-up chatter */
        if (!a->start_error[0]) {
            snprintf(a->start_error, sizeof a->start_error, "%s", msg);
            a->start_errno = saved_errno;
        }
        return;
    }
    /* Runtime messages are about misbehaving clients or the connection limit;
     * a client must not be able to flood the log above DEBUG. */
    kcw_log(KCW_LOG_DEBUG, "admin http", "detail", msg, NULL);
}

/* --- the server on the loop -------------------------------------------------- */

static void on_timer(uv_timer_t *t);
static void on_reaper(uv_timer_t *t);

static void timer_start_checked(uv_timer_t *t, uv_timer_cb cb, uint64_t ms, uint64_t repeat)
{
    int rc = uv_timer_start(t, cb, ms, repeat);
    if (rc < 0)
        kcw_log(KCW_LOG_ERROR, "admin: cannot arm a timer", "error", uv_strerror(rc), NULL);
}

static void arm_timer(kcw_admin_t *a)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(a->mhd, &ms) == MHD_YES)
        timer_start_checked(&a->timer, on_timer, (uint64_t)ms, 0);
    else
        uv_timer_stop(&a->timer);
}

/* MHD_OPTION_NOTIFY_CONNECTION: keeps the list the reaper walks. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    kcw_admin_t *a = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_rec_t *cr = calloc(1, sizeof *cr);
        *socket_context = cr;
        if (!cr)
            return; /* not reaped; the idle timeout still applies */
        cr->conn = conn;
        cr->phase_ns = uv_hrtime();
        cr->next = a->conns;
        if (a->conns)
            a->conns->prev = cr;
        a->conns = cr;
        if (!a->closing && !uv_is_active((uv_handle_t *)&a->reaper))
            timer_start_checked(&a->reaper, on_reaper, REAPER_INTERVAL_MS, REAPER_INTERVAL_MS);
        return;
    }
    conn_rec_t *cr = *socket_context;
    *socket_context = NULL;
    if (!cr)
        return;
    if (cr->prev)
        cr->prev->next = cr->next;
    else
        a->conns = cr->next;
    if (cr->next)
        cr->next->prev = cr->prev;
    free(cr);
    if (!a->conns && !a->pending && !a->closing)
        uv_timer_stop(&a->reaper);
}

/* Shuts down the sockets of connections past their request deadline; MHD
 * then reads EOF and closes them on its next run. */
static void on_reaper(uv_timer_t *t)
{
    kcw_admin_t *a = t->data;
    if (a->closing || !a->mhd)
        return;
    pending_sweep(a, uv_hrtime()); /* first: a resumed connection's phase starts now */
    uint64_t now = uv_hrtime();
    unsigned open = kcw_admin_connections(a);
    uint64_t deadline_ms = a->deadline_ms;
    if (open * 4 >= a->max_connections * 3 && deadline_ms > PRESSURE_DEADLINE_MS)
        deadline_ms = PRESSURE_DEADLINE_MS;
    unsigned cut = 0;
    for (conn_rec_t *cr = a->conns; cr; cr = cr->next) {
        if (cr->cut || cr->suspended || now - cr->phase_ns < deadline_ms * 1000000ULL)
            continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(cr->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            continue;
        shutdown(ci->connect_fd, SHUT_RDWR);
        cr->cut = true;
        cut++;
    }
    if (cut) {
        a->cut_total += cut;
        char d[24];
        snprintf(d, sizeof d, "%llums", (unsigned long long)deadline_ms);
        kcw_log(KCW_LOG_DEBUG, "admin: slow connections cut", KCW_LOG_INT("count", cut), "deadline",
                d, NULL);
        timer_start_checked(&a->timer, on_timer, 0, 0); /* let MHD close them now */
    }
}

static void drive(kcw_admin_t *a)
{
    if (a->closing)
        return;
    unsigned before = kcw_admin_connections(a);
    a->connections = before;
    a->in_run = true;
    a->resumed = false;
    enum MHD_Result ok = MHD_run(a->mhd);
    a->in_run = false;
    if (ok != MHD_YES)
        kcw_log(KCW_LOG_DEBUG, "admin: MHD_run failed", NULL);
    if (a->closing) /* a handler closed the server */
        return;
    /* At the connection limit MHD takes the listen socket out of its epoll
     * set, and puts it back only at the start of a later MHD_run(); its
     * timeout does not ask for that run. So when connections went away, run
     * again at once, or new clients would wait in the backlog forever. */
    a->connections = kcw_admin_connections(a);
    if (a->connections < before || a->resumed) /* resumed: its answer waits for a run */
        timer_start_checked(&a->timer, on_timer, 0, 0);
    else
        arm_timer(a);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)events;
    kcw_admin_t *a = p->data;
    if (status < 0)
        kcw_log(KCW_LOG_WARN, "admin: poll error", "error", uv_strerror(status), NULL);
    drive(a);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data);
}

int kcw_admin_start(kcw_admin_t *a, char *err, size_t errlen)
{
    if (!a || a->started || a->closing) {
        set_err(err, errlen, "admin server already started or closing");
        return -EINVAL;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (a->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (a->tls_cert)
        flags |= MHD_USE_TLS;
    uint16_t port = a->addr.ss_family == AF_INET6
                        ? ntohs(((struct sockaddr_in6 *)&a->addr)->sin6_port)
                        : ntohs(((struct sockaddr_in *)&a->addr)->sin_port);

    a->starting = true;
    a->start_error[0] = '\0';
    a->start_errno = 0;
    errno = 0;
    /* the logger goes first so start-up failures reach it */
    a->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)a->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)a->conn_memory, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)a->conn_timeout_s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)LISTEN_BACKLOG, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, a, MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)a->per_ip_limit,
        /* plain HTTP: MHD ignores these NULLs; with MHD_USE_TLS they are set */
        a->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, a->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, a->tls_key, MHD_OPTION_END);
    int after_errno = errno;
    a->starting = false;
    if (!a->mhd) {
        int e = a->start_errno ? a->start_errno : after_errno;
        set_err(err, errlen, "admin listen %s: %s", a->listen,
                a->start_error[0] ? a->start_error : "the HTTP server could not start");
        return e > 0 ? -e : -EIO;
    }

    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    int rc = info ? uv_poll_init(a->loop, &a->poll, info->epoll_fd) : UV_EINVAL;
    if (rc < 0) {
        set_err(err, errlen, "admin listen %s: watching the server: %s", a->listen,
                uv_strerror(rc));
        MHD_stop_daemon(a->mhd);
        a->mhd = NULL;
        return rc;
    }
    a->poll.data = a;
    a->started = true; /* from here the poll handle must be closed */
    rc = uv_poll_start(&a->poll, UV_READABLE, on_poll);
    if (rc < 0) {
        set_err(err, errlen, "admin listen %s: watching the server: %s", a->listen,
                uv_strerror(rc));
        return rc; /* kcw_admin_close() releases the daemon */
    }
    info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : 0;
    arm_timer(a);

    char addr[80] = "?", bound[96];
    if (uv_ip_name((const struct sockaddr *)&a->addr, addr, sizeof addr) != 0)
        snprintf(addr, sizeof addr, "?");
    snprintf(bound, sizeof bound, a->addr.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
             a->port);
    kcw_log(KCW_LOG_INFO, "admin API listening", "address", bound,
            KCW_LOG_BOOL("tls", a->tls_cert), KCW_LOG_BOOL("token", a->token),
            KCW_LOG_BOOL("basic_auth", a->basic_user), NULL);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    kcw_admin_t *a = h->data;
    if (--a->open_handles > 0)
        return;
    /* Only now, outside any MHD_run() and with the epoll fd no longer
     * watched, may MHD drop its connections and close its sockets. Deferred
     * answers resumed by close get the runs that queue them and write what
     * the sockets take at once (on_request answers nothing else now). */
    for (int i = 0; a->mhd && a->resumed && i < FLUSH_RUNS; i++) {
        a->in_run = true;
        MHD_run(a->mhd);
        a->in_run = false;
    }
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    void (*cb)(void *) = a->on_closed;
    void *arg = a->on_closed_arg;
    admin_free(a);
    if (cb)
        cb(arg);
}

void kcw_admin_close(kcw_admin_t *a, void (*on_closed)(void *arg), void *arg)
{
    if (!a || a->closing)
        return;
    a->closing = true;
    /* MHD must not be stopped with suspended connections: answer them */
    while (a->pending)
        pending_abandon(a->pending, 503, "unavailable", SHUTDOWN_MSG);
    a->on_closed = on_closed;
    a->on_closed_arg = arg;
    a->open_handles = 2;
    uv_close((uv_handle_t *)&a->timer, on_handle_closed);
    uv_close((uv_handle_t *)&a->reaper, on_handle_closed);
    if (a->started) {
        a->open_handles++;
        uv_close((uv_handle_t *)&a->poll, on_handle_closed);
    }
}
