/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz_upstream.c - the upstream client (src/http/upstream.c upstream_fetch)
 * against an upstream that answers with the fuzz input as its raw HTTP
 * response, then a 200 body through record_from_json as a fill does.
 *
 * One event loop and one loopback listener live for the whole run; each
 * input is one fetch: the listener accepts the daemon's connection, reads
 * its request, writes the input and closes. The pool is freed after each
 * fetch (upstream_free) so every input starts from a new connection and
 * runs the same way alone or after others.
 *
 * Invariants: no crash, leak or hang; the callback runs exactly once, from
 * the loop; the outcome agrees with the status (200 ok, 404/410 not found,
 * any other status an error) and a 200 body is at most max_body_bytes. */
#define _GNU_SOURCE
#include "core.h"
#include "config.h"
#include "record.h"
#include "upstream.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_MAX_BODY 4096
#define FZ_REQ_MAX 8192

static struct cs_ns fz_ns;
static bool fz_show;            /* FUZZ_SHOW=1: print each input's outcome */
static int fz_lfd = -1;
static struct event *fz_accept_ev;

/* The one connection the fake upstream serves for the current input. */
static struct {
    int fd;
    struct event *ev;
    char req[FZ_REQ_MAX];
    size_t reqlen;
    const uint8_t *resp;
    size_t resplen, sent;
    bool writing;
} fz_srv = { .fd = -1 };

static struct {
    int calls;
    bool in_fetch;
    enum up_kind kind;
    int status;
} fz_res;

static void fz_srv_close(void)
{
    if (fz_srv.ev)
        event_free(fz_srv.ev);
    fz_srv.ev = NULL;
    if (fz_srv.fd >= 0)
        close(fz_srv.fd);
    fz_srv.fd = -1;
}

static void fz_srv_io(evutil_socket_t fd, short what, void *arg)
{
    ssize_t n;

    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (!fz_srv.writing) {
        n = read(fd, fz_srv.req + fz_srv.reqlen, sizeof(fz_srv.req) - fz_srv.reqlen);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return;
            fz_srv_close();     /* the client gave up first */
            return;
        }
        fz_srv.reqlen += (size_t)n;
        /* A GET has no body: the head ends the request. */
        if (!memmem(fz_srv.req, fz_srv.reqlen, "\r\n\r\n", 4)) {
            FUZZ_CHECK(fz_srv.reqlen < sizeof(fz_srv.req), "request head over %d bytes", FZ_REQ_MAX);
            return;
        }
        FUZZ_CHECK(fz_srv.reqlen > 4 && memcmp(fz_srv.req, "GET /", 5) == 0, "not a GET: '%.*s'",
                   (int)fz_srv.reqlen, fz_srv.req);
        fz_srv.writing = true;
        event_del(fz_srv.ev);
        event_assign(fz_srv.ev, cs_base, fd, EV_WRITE | EV_PERSIST, fz_srv_io, NULL);
        event_add(fz_srv.ev, NULL);
        return;
    }
    while (fz_srv.sent < fz_srv.resplen) {
        n = write(fd, fz_srv.resp + fz_srv.sent, fz_srv.resplen - fz_srv.sent);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0)
            break;              /* the client closed early (say, body too big) */
        fz_srv.sent += (size_t)n;
    }
    fz_srv_close();             /* end of response for bodies without a length */
}

static void fz_accept(evutil_socket_t fd, short what, void *arg)
{
    int s = accept(fd, NULL, NULL);

    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (s < 0)
        return;
    FUZZ_CHECK(fz_srv.fd < 0, "a second upstream connection for one fetch");
    evutil_make_socket_nonblocking(s);
    fz_srv.fd = s;
    fz_srv.ev = event_new(cs_base, s, EV_READ | EV_PERSIST, fz_srv_io, NULL);
    event_add(fz_srv.ev, NULL);
}

static void fz_fetched(void *arg, const struct up_reply *r)
{
    struct record rec;
    char err[256];

    CS_UNUSED(arg);
    FUZZ_CHECK(!fz_res.in_fetch, "callback inside upstream_fetch");
    fz_res.calls++;
    fz_res.kind = r->kind;
    fz_res.status = r->status;
    switch (r->kind) {
    case UP_OK:
        FUZZ_CHECK(r->status == 200, "ok with status %d", r->status);
        FUZZ_CHECK(r->body != NULL && r->len <= FZ_MAX_BODY, "body of %zu bytes over the limit", r->len);
        /* The body is only valid here: flatten it now, as fill.c does. */
        if (record_from_json(&rec, r->body, r->len, err, sizeof(err)) == CS_OK)
            record_free(&rec);
        else
            FUZZ_CHECK(err[0], "bad body refused without a message");
        break;
    case UP_NOTFOUND:
        FUZZ_CHECK(r->status == 404 || r->status == 410, "not found with status %d", r->status);
        break;
    case UP_STATUS:
        /* libevent 2.1 takes any number as the status ("HTTP/1.1 4 x"):
         * the daemon then says "UPSTREAM status 4" and stores nothing. */
        FUZZ_CHECK(r->status != 0 && r->status != 200 && r->status != 404 && r->status != 410,
                   "an error with status %d", r->status);
        break;
    default:
        break;
    }
}

static struct cs_ns *fz_nss[1] = { &fz_ns };
static struct cs_config fz_conf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    static char *parts[] = { (char *)"/items/", (char *)"" };
    int one = 1;

    CS_UNUSED(argc);
    CS_UNUSED(argv);
    signal(SIGPIPE, SIG_IGN);   /* as the daemon does: a closed peer is an error, not death */
    cs_base = event_base_new();
    fz_lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fz_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (!cs_base || fz_lfd < 0 || bind(fz_lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fz_lfd, 64) != 0 ||
        getsockname(fz_lfd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("fuzz_upstream: loopback listener");
        abort();
    }
    evutil_make_socket_nonblocking(fz_lfd);
    fz_accept_ev = event_new(cs_base, fz_lfd, EV_READ | EV_PERSIST, fz_accept, NULL);
    event_add(fz_accept_ev, NULL);

    /* A namespace as config.c builds one from
     * upstream = http://127.0.0.1:PORT/items/{id}; adapt here when the
     * namespace or [cache] keys change. */
    fz_ns.name = (char *)"fz";
    fz_ns.namelen = 2;
    fz_ns.upstream = (char *)"http://127.0.0.1/items/{id}";
    fz_ns.host = (char *)"127.0.0.1";
    fz_ns.port = ntohs(sa.sin_port);
    fz_ns.parts = parts;
    fz_ns.nparts = 2;
    fz_ns.format = NS_HASH;
    fz_ns.c.v[CK_TTL] = 300;
    fz_ns.c.v[CK_NEG_TTL] = 30;
    fz_ns.c.v[CK_LOCK_TTL] = 5000;
    fz_ns.c.v[CK_LOCK_POLL] = 50;
    fz_ns.c.v[CK_UP_TIMEOUT] = 3000;    /* never reached: every response ends with a close */
    fz_ns.c.v[CK_UP_CONNS] = 1;
    fz_ns.c.v[CK_MAX_BODY] = FZ_MAX_BODY;
    fz_ns.c.v[CK_MAX_FETCHES] = 64;
    fz_conf.ns = fz_nss;
    fz_conf.nns = 1;
    upstream_reconfigure(&fz_conf);
    fz_show = getenv("FUZZ_SHOW") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&fz_res, 0, sizeof(fz_res));
    fz_srv.resp = data;
    fz_srv.resplen = size;
    fz_srv.sent = fz_srv.reqlen = 0;
    fz_srv.writing = false;

    fuzz_quiet(1);
    fz_res.in_fetch = true;
    upstream_fetch(&fz_ns, "p-1", 3, fz_fetched, NULL);
    fz_res.in_fetch = false;
    while (fz_res.calls == 0)
        event_base_loop(cs_base, EVLOOP_ONCE);
    /* Free the pool and finish our side, so the next input starts clean. */
    upstream_free();
    fz_srv_close();
    fuzz_quiet(0);
    FUZZ_CHECK(fz_res.calls == 1, "callback ran %d times", fz_res.calls);
    if (fz_show)
        fprintf(fuzz_stderr(), "fuzz_upstream: %zu bytes: kind %d status %d\n", size, (int)fz_res.kind, fz_res.status);
    return 0;
}
