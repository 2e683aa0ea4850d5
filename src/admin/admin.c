/* SPDX-License-Identifier: BSD-3-Clause */
/* admin.c - the HTTP admin endpoint, on libevent's evhttp in the daemon's
 * own loop. Every answer but /daemons (daemons.c: other daemons' figures are
 * in Redis only) is built from figures already in memory, so a
 * scrape costs one pass over the counters and never waits on Redis: it
 * cannot delay the client path by more than that pass. How many connections
 * it holds, and accepting when out of descriptors: adminconn.c. */
#include "core.h"
#include "admin.h"
#include "adminconn.h"
#include "config.h"
#include "daemons.h"
#include "demo.h"
#include "health.h"
#include "log.h"
#include "report.h"
#include "stats.h"

#include "dashboard.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ADMIN_MAX_BODY 4096
#define ADMIN_TIMEOUT_S 10

static struct evhttp *admin_http;
static char *admin_unix_path;

enum admin_access { AA_OPEN, AA_AUTH, AA_DEMO };

struct admin_route {
    const char *path;
    enum evhttp_cmd_type method;
    const char *allow;          /* the Allow header of a 405 */
    enum admin_access access;
    void (*handler)(struct evhttp_request *req, const char *arg);
    const char *arg;
};

static void admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                        struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void admin_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "%s\n", text);
    admin_reply(req, code, reason, "text/plain; charset=utf-8", b);
    evbuffer_free(b);
}

static void admin_metrics(struct evhttp_request *req, const char *arg)
{
    struct evbuffer *b = evbuffer_new();

    CS_UNUSED(arg);
    report_prometheus(b);
    admin_reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

static void admin_stats(struct evhttp_request *req, const char *arg)
{
    struct evbuffer *b = evbuffer_new();

    CS_UNUSED(arg);
    report_json(b);
    admin_reply(req, HTTP_OK, "OK", "application/json", b);
    evbuffer_free(b);
}

static void admin_stats_reset(struct evhttp_request *req, const char *arg)
{
    CS_UNUSED(arg);
    stats_reset();
    admin_text(req, HTTP_OK, "OK", "ok");
}

/* The probes (health.c): /livez for a restart, /readyz (and /healthz, its
 * older name) for rotation. */
static void admin_livez(struct evhttp_request *req, const char *arg)
{
    char why[160];

    CS_UNUSED(arg);
    if (health_live(why, sizeof(why)))
        admin_text(req, HTTP_OK, "OK", "ok");
    else
        admin_text(req, 503, "Service Unavailable", why);
}

static void admin_readyz(struct evhttp_request *req, const char *arg)
{
    char msg[512];

    CS_UNUSED(arg);
    if (health_ready(msg, sizeof(msg)))
        admin_text(req, HTTP_OK, "OK", msg);
    else
        admin_text(req, 503, "Service Unavailable", msg);
}

static void admin_dashboard(struct evhttp_request *req, const char *arg)
{
    struct evbuffer *b = evbuffer_new();

    CS_UNUSED(arg);
    evbuffer_add_reference(b, dashboard_html, sizeof(dashboard_html) - 1, NULL, NULL);
    admin_reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", b);
    evbuffer_free(b);
}

static void admin_demo(struct evhttp_request *req, const char *action)
{
    demo_handle(req, action);
}

static const struct admin_route admin_routes[] = {
    { "/", EVHTTP_REQ_GET, "GET", AA_AUTH, admin_dashboard, NULL },
    { "/metrics", EVHTTP_REQ_GET, "GET", AA_OPEN, admin_metrics, NULL },
    { "/livez", EVHTTP_REQ_GET, "GET", AA_OPEN, admin_livez, NULL },
    { "/readyz", EVHTTP_REQ_GET, "GET", AA_OPEN, admin_readyz, NULL },
    { "/healthz", EVHTTP_REQ_GET, "GET", AA_OPEN, admin_readyz, NULL },
    { "/stats", EVHTTP_REQ_GET, "GET", AA_AUTH, admin_stats, NULL },
    { "/stats/reset", EVHTTP_REQ_POST, "POST", AA_AUTH, admin_stats_reset, NULL },
    { "/daemons", EVHTTP_REQ_GET, "GET", AA_AUTH, daemons_handle, NULL },
    { "/demo/read", EVHTTP_REQ_POST, "POST", AA_DEMO, admin_demo, "read" },
    { "/demo/update", EVHTTP_REQ_POST, "POST", AA_DEMO, admin_demo, "update" },
    { "/demo/invalidate", EVHTTP_REQ_POST, "POST", AA_DEMO, admin_demo, "invalidate" },
    { "/demo/stampede", EVHTTP_REQ_POST, "POST", AA_DEMO, admin_demo, "stampede" },
};

/* GIVEN (GLEN bytes) is requirepass: compared without an early exit. */
static bool admin_pass_equal(const char *given, size_t glen)
{
    const char *pass = cs_conf->requirepass;
    size_t plen = strlen(pass);
    unsigned char diff = glen != plen;

    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)(given[i] ^ pass[plen ? i % plen : 0]);
    return diff == 0;
}

/* With requirepass set: HTTP Basic (any user name) or a bearer token,
 * either carrying the password. */
static bool admin_authorized(struct evhttp_request *req)
{
    const char *pass = cs_conf->requirepass, *h, *given = NULL;
    char decoded[600];
    size_t glen = 0;

    if (!pass[0])
        return true;
    h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h)
        return false;
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        given = h + 7;
        glen = strlen(given);
    } else if (strncasecmp(h, "Basic ", 6) == 0) {
        /* libevent has no base64 decoder: a small one here. */
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned acc = 0;
        int bits = 0;
        size_t n = 0;
        for (const char *p = h + 6; *p && *p != '=' && n < sizeof(decoded) - 1; p++) {
            const char *c = strchr(tab, *p);
            if (!c) {
                n = 0;
                break;
            }
            acc = (acc << 6) | (unsigned)(c - tab);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                decoded[n++] = (char)((acc >> bits) & 0xff);
            }
        }
        decoded[n] = '\0';
        given = memchr(decoded, ':', n);
        if (!given)
            return false;
        given++;
        glen = n - (size_t)(given - decoded);
    } else {
        return false;
    }
    return admin_pass_equal(given, glen);
}

/* Whether a state-changing request may go ahead: not when another site's
 * page sent it (CSRF: any page the operator opens can post to a loopback
 * port). Browsers say where a request comes from, in headers a page cannot
 * set: Sec-Fetch-Site, or in older ones only Origin, which must then be this
 * endpoint's own (http:// or, behind a TLS proxy, https://, and the Host
 * header). A request with neither is not from a browser (curl, a script)
 * and may post; so may one with the password as a bearer token, which no
 * browser adds by itself. Basic credentials do not count: a browser that
 * has them sends them on a cross-site post too. */
static bool admin_same_origin(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    const char *origin = evhttp_find_header(in, "Origin");
    const char *host = evhttp_find_header(in, "Host");
    const char *auth = evhttp_find_header(in, "Authorization");
    size_t scheme;

    if (cs_conf->requirepass[0] && auth && strncasecmp(auth, "Bearer ", 7) == 0 &&
        admin_pass_equal(auth + 7, strlen(auth + 7)))
        return true;
    if (site)
        return strcasecmp(site, "same-origin") == 0 || strcasecmp(site, "none") == 0;
    if (!origin)
        return true;
    if (strncasecmp(origin, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        scheme = 8;
    else
        return false;           /* "null": a sandboxed frame, a file, a redirect */
    return host && strcasecmp(origin + scheme, host) == 0;
}

static void admin_cb(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct admin_route *hit = NULL;

    CS_UNUSED(arg);
    if (!path || !*path)
        path = "/";
    for (size_t i = 0; i < CS_ARRAY_LEN(admin_routes); i++) {
        const struct admin_route *r = &admin_routes[i];
        if (strcmp(r->path, path) != 0)
            continue;
        if (r->access == AA_DEMO && !cs_conf->admin_demo)
            break;              /* off: as if it did not exist */
        hit = r;
        break;
    }
    if (!hit) {
        admin_text(req, HTTP_NOTFOUND, "Not Found", "not found");
        return;
    }
    if (m != hit->method && !(m == EVHTTP_REQ_HEAD && hit->method == EVHTTP_REQ_GET)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", hit->allow);
        admin_text(req, 405, "Method Not Allowed", "method not allowed");
        return;
    }
    if (hit->method == EVHTTP_REQ_POST && !admin_same_origin(req)) {
        const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
        log_limited(LOG_WARNING, "admin: refused a cross-origin POST %s (Origin %.100s)", hit->path,
                    origin ? origin : "not sent");
        admin_text(req, 403, "Forbidden",
                   "cross-origin request refused: a POST must come from the dashboard's own page (docs/admin.md)");
        return;
    }
    if (hit->access != AA_OPEN && !admin_authorized(req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"cachasided\", charset=\"UTF-8\"");
        admin_text(req, 401, "Unauthorized", "requirepass is set: send it as HTTP Basic or a Bearer token");
        return;
    }
    hit->handler(req, hit->arg);
}

static int admin_listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error("admin_listen %s: path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        log_error("admin_listen %s: another process is listening on it", path);
        close(fd);
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
        log_error("admin_listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int admin_start(void)
{
    const char *addr = cs_conf->admin_listen;
    struct evhttp_bound_socket *bound;

    if (!addr[0])
        return CS_OK;
    admin_http = evhttp_new(cs_base);
    evhttp_set_gencb(admin_http, admin_cb, NULL);
    evhttp_set_max_body_size(admin_http, ADMIN_MAX_BODY);
    evhttp_set_max_headers_size(admin_http, 16384);
    evhttp_set_timeout(admin_http, ADMIN_TIMEOUT_S);
    evhttp_set_allowed_methods(admin_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    if (addr[0] == '/') {
        int fd = admin_listen_unix(addr);
        bound = fd < 0 ? NULL : evhttp_accept_socket_with_handle(admin_http, fd);
        if (!bound) {
            if (fd >= 0)
                close(fd);
            return CS_ERR;
        }
        admin_unix_path = cs_strndup(addr, strlen(addr));
    } else {
        char host[256];
        int port;
        bound = config_parse_addr(addr, host, sizeof(host), &port) != CS_OK ? NULL
                : evhttp_bind_socket_with_handle(admin_http, host, (ev_uint16_t)port);
        if (!bound) {
            log_error("admin_listen %s: cannot listen: %s", addr, strerror(errno));
            return CS_ERR;
        }
    }
    if (adminconn_attach(admin_http, bound) != CS_OK)
        return CS_ERR;
    log_info("admin endpoint on %s%s", addr, cs_conf->admin_demo ? " (dashboard demo actions on)" : "");
    return CS_OK;
}

void admin_free(void)
{
    adminconn_free();
    if (admin_http)
        evhttp_free(admin_http);
    admin_http = NULL;
    if (admin_unix_path) {
        unlink(admin_unix_path);
        free(admin_unix_path);
        admin_unix_path = NULL;
    }
}
