/* upstream.c - fetches records over HTTP/1.1 with libevent's client.
 *
 * An evhttp_connection runs one request at a time, so each upstream host
 * gets a pool of connections and a queue of fetches waiting for a free one.
 * evhttp's timeout bounds each read or write phase; the fetch's own timer
 * bounds the whole request, queue time included. */
#include "core.h"
#include "upstream.h"
#include "config.h"
#include "log.h"
#include "stats.h"
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct up_fetch;

struct up_conn {
    struct evhttp_connection *evcon;
    struct up_fetch *cur;           /* NULL when idle */
};

/* Pools outlive reloads: they are keyed by host:port and never removed. */
struct up_pool {
    char *host;
    int port;
    char hosthdr[300];
    struct up_conn *conns;
    int nconns;
    TAILQ_HEAD(, up_fetch) queue;
    struct up_pool *next;
};

struct up_fetch {
    TAILQ_ENTRY(up_fetch) q;
    struct up_pool *pool;
    struct up_conn *conn;
    struct evhttp_request *req;
    struct event *timer;
    char *target;
    upstream_cb cb;
    void *arg;
    long long timeout_ms, max_body;
    int conns_wanted;
    enum evhttp_request_error error;
    bool failed;
    bool queued;
};

static struct up_pool *up_pools;

void upstream_init(void)
{
}

static struct up_pool *upstream_pool(const struct cs_ns *ns)
{
    struct up_pool *p;

    for (p = up_pools; p; p = p->next)
        if (p->port == ns->port && strcmp(p->host, ns->host) == 0)
            return p;
    p = cs_calloc(1, sizeof(*p));
    p->host = strdup(ns->host);
    p->port = ns->port;
    snprintf(p->hosthdr, sizeof(p->hosthdr), strchr(ns->host, ':') ? "[%s]:%d" : "%s:%d", ns->host, ns->port);
    TAILQ_INIT(&p->queue);
    p->next = up_pools;
    up_pools = p;
    return p;
}

void upstream_reconfigure(void)
{
    /* New pools appear on first use; a changed pool size applies as
     * connections are added (shrinking keeps existing connections). */
}

char *upstream_target(const struct cs_ns *ns, const char *id, size_t idlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t enclen = 0, total = 0;
    char *out, *p;

    for (size_t i = 0; i < idlen; i++) {
        unsigned char ch = (unsigned char)id[i];
        bool unreserved = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                          (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        enclen += unreserved ? 1 : 3;
    }
    for (int i = 0; i < ns->nparts; i++)
        total += strlen(ns->parts[i]);
    total += enclen * (size_t)(ns->nparts - 1) + 1;
    out = p = cs_malloc(total);
    for (int i = 0; i < ns->nparts; i++) {
        size_t pl = strlen(ns->parts[i]);
        memcpy(p, ns->parts[i], pl);
        p += pl;
        if (i == ns->nparts - 1)
            break;
        for (size_t j = 0; j < idlen; j++) {
            unsigned char ch = (unsigned char)id[j];
            if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                ch == '-' || ch == '.' || ch == '_' || ch == '~') {
                *p++ = (char)ch;
            } else {
                *p++ = '%';
                *p++ = hex[ch >> 4];
                *p++ = hex[ch & 15];
            }
        }
    }
    *p = '\0';
    return out;
}

static void upstream_start(struct up_fetch *f, struct up_conn *uc);

static void upstream_finish(struct up_fetch *f, const struct up_reply *r)
{
    struct up_pool *p = f->pool;
    struct up_conn *uc = f->conn;

    if (f->queued)
        TAILQ_REMOVE(&p->queue, f, q);
    event_free(f->timer);
    if (r->kind != UP_OK && r->kind != UP_NOTFOUND)
        stats.upstream_errors++;
    f->cb(f->arg, r);
    free(f->target);
    free(f);
    if (uc) {
        struct up_fetch *next = TAILQ_FIRST(&p->queue);
        uc->cur = NULL;
        if (next && !cs_exiting)
            upstream_start(next, uc);
    }
}

static void upstream_error_cb(enum evhttp_request_error err, void *arg)
{
    struct up_fetch *f = arg;

    f->error = err;
    f->failed = true;
}

static void upstream_done_cb(struct evhttp_request *req, void *arg)
{
    struct up_fetch *f = arg;
    struct up_reply r = { 0 };
    struct evbuffer *in;
    int code;

    f->req = NULL;
    if (!req || f->failed || (code = evhttp_request_get_response_code(req)) == 0) {
        if (f->failed && f->error == EVREQ_HTTP_DATA_TOO_LONG)
            r.kind = UP_TOOBIG;
        else if (f->failed && f->error == EVREQ_HTTP_TIMEOUT)
            r.kind = UP_TIMEOUT;
        else
            r.kind = UP_UNREACHABLE;
        log_info("upstream %s%s: %s", f->pool->hosthdr, f->target,
                 r.kind == UP_TOOBIG ? "body over max_body_bytes" :
                 r.kind == UP_TIMEOUT ? "timed out" : "connection failed");
        upstream_finish(f, &r);
        return;
    }
    r.status = code;
    if (code == 200) {
        in = evhttp_request_get_input_buffer(req);
        r.kind = UP_OK;
        r.len = evbuffer_get_length(in);
        r.body = (const char *)evbuffer_pullup(in, -1);
        if (!r.body)
            r.body = "";
    } else if (code == 404 || code == 410) {
        r.kind = UP_NOTFOUND;
    } else {
        r.kind = UP_STATUS;
        log_info("upstream %s%s: status %d", f->pool->hosthdr, f->target, code);
    }
    upstream_finish(f, &r);
}

static void upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_fetch *f = arg;
    struct up_reply r = { .kind = f->failed ? UP_UNREACHABLE : UP_TIMEOUT };

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (!f->failed)
        log_info("upstream %s%s: no answer within %lld ms", f->pool->hosthdr, f->target, f->timeout_ms);
    if (f->req) {
        /* Cancelling resets the connection and frees the request without
         * calling its callback; evhttp reconnects on the next request. */
        evhttp_cancel_request(f->req);
        f->req = NULL;
    }
    upstream_finish(f, &r);
}

static void upstream_start(struct up_fetch *f, struct up_conn *uc)
{
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct timeval tv;

    if (f->queued) {
        TAILQ_REMOVE(&f->pool->queue, f, q);
        f->queued = false;
    }
    f->conn = uc;
    uc->cur = f;
    tv.tv_sec = f->timeout_ms / 1000;
    tv.tv_usec = (f->timeout_ms % 1000) * 1000;
    evhttp_connection_set_timeout_tv(uc->evcon, &tv);
    evhttp_connection_set_max_body_size(uc->evcon, (ev_ssize_t)f->max_body);
    req = evhttp_request_new(upstream_done_cb, f);
    evhttp_request_set_error_cb(req, upstream_error_cb);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", f->pool->hosthdr);
    evhttp_add_header(h, "Accept", "application/json, */*");
    evhttp_add_header(h, "User-Agent", "cachasided/" PACKAGE_VERSION);
    f->req = req;
    stats.upstream_requests++;
    if (evhttp_make_request(uc->evcon, req, EVHTTP_REQ_GET, f->target) != 0) {
        /* libevent 2.1 returns -1 with req still ours when it cannot make
         * a socket (fd exhaustion); it frees req itself only when it runs
         * out of memory, which we treat as fatal anyway. Report from the
         * loop so callers never re-enter. */
        evhttp_request_free(req);
        f->req = NULL;
        f->failed = true;
        f->error = EVREQ_HTTP_EOF;
        event_active(f->timer, EV_TIMEOUT, 1);
    }
}

void upstream_fetch(const struct cs_ns *ns, const char *id, size_t idlen, upstream_cb cb, void *arg)
{
    struct up_pool *p = upstream_pool(ns);
    struct up_fetch *f = cs_calloc(1, sizeof(*f));
    struct timeval tv;
    long long want = ns->c.v[CK_UP_CONNS];

    f->pool = p;
    f->cb = cb;
    f->arg = arg;
    f->timeout_ms = ns->c.v[CK_UP_TIMEOUT];
    f->max_body = ns->c.v[CK_MAX_BODY];
    f->target = upstream_target(ns, id, idlen);
    f->timer = evtimer_new(cs_base, upstream_timer_cb, f);
    tv.tv_sec = f->timeout_ms / 1000;
    tv.tv_usec = (f->timeout_ms % 1000) * 1000;
    evtimer_add(f->timer, &tv);

    for (int i = 0; i < p->nconns; i++) {
        if (!p->conns[i].cur) {
            upstream_start(f, &p->conns[i]);
            return;
        }
    }
    if (p->nconns < want) {
        struct up_conn *uc;
        p->conns = cs_realloc(p->conns, sizeof(*p->conns) * (size_t)(p->nconns + 1));
        /* Fetches point at their connection: re-point after the move. */
        for (int i = 0; i < p->nconns; i++)
            if (p->conns[i].cur)
                p->conns[i].cur->conn = &p->conns[i];
        uc = &p->conns[p->nconns++];
        uc->cur = NULL;
        uc->evcon = evhttp_connection_base_new(cs_base, NULL, p->host, (unsigned short)p->port);
        evhttp_connection_set_retries(uc->evcon, 0);
        upstream_start(f, uc);
        return;
    }
    TAILQ_INSERT_TAIL(&p->queue, f, q);
    f->queued = true;
}

void upstream_free(void)
{
    struct up_reply gone = { .kind = UP_UNREACHABLE };
    struct up_pool *p, *next;

    /* Exiting with fetches under way: their owners hear "unreachable". */
    for (p = up_pools; p; p = p->next) {
        struct up_fetch *f;
        for (int i = 0; i < p->nconns; i++) {
            if ((f = p->conns[i].cur) != NULL) {
                if (f->req)
                    evhttp_cancel_request(f->req);
                f->req = NULL;
                upstream_finish(f, &gone);
            }
        }
        while ((f = TAILQ_FIRST(&p->queue)) != NULL)
            upstream_finish(f, &gone);
    }
    for (p = up_pools; p; p = next) {
        next = p->next;
        for (int i = 0; i < p->nconns; i++)
            evhttp_connection_free(p->conns[i].evcon);
        free(p->conns);
        free(p->host);
        free(p);
    }
    up_pools = NULL;
}
