/* SPDX-License-Identifier: BSD-3-Clause */
/* upstream.c - fetches records over HTTP/1.1 with libevent's client.
 *
 * An evhttp_connection runs one request at a time, so each upstream host
 * gets a pool of connections and one FIFO queue of fetches waiting for one.
 * Two limits decide when a queued fetch may start: its namespace has fewer
 * than max_upstream_fetches under way, and it may take a connection of the
 * pool without leaving another namespace of that host none (upstream_may_start).
 * The fetch's own timer bounds the whole request from the moment it is
 * queued: half of upstream_timeout_ms to get a slot (else -TRYAGAIN), all of
 * it to be answered (evhttp's own timeout only bounds each read or write).
 *
 * A connection is kept only after a clean 200, 404 or 410 with nothing left
 * after it: libevent 2.1 hands over a 1xx other than 100 as if it were the
 * answer, frames by the first of several Content-Lengths and leaves surplus
 * bytes to be read as the next response, so the header callback refuses what
 * is ambiguous and every other outcome retires the connection (freed from
 * the loop, never inside its own callback) for a fresh one.
 *
 * An https:// pool is keyed by its TLS files too and its connections are
 * made by uptls.c; a connection the server closed while idle is replaced
 * rather than reconnected, as an SSL object serves one session. A failed
 * handshake is UP_UNREACHABLE (result "connect" on /metrics), counted by
 * reason and logged with OpenSSL's reason at most once per TLSERR_LOG_MS
 * per host and reason (tlserr.c). A connection is made when a fetch needs
 * one: when it cannot be (the pool's files no longer load, a name OpenSSL
 * refuses), that fetch fails as unreachable and the next tries again. */
#include "core.h"
#include "upstream.h"
#include "uptls.h"
#include "tlserr.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "prom.h"
#include "stats.h"
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* What one response's head may cost: evhttp holds it all in memory. */
#define UP_MAX_HEADER_BYTES 65536
#define UP_MAX_HEADERS 100

struct up_fetch;

struct up_conn {
    struct evhttp_connection *evcon;
    struct up_fetch *cur;           /* NULL when idle */
    bool used;                      /* has carried a request */
};

/* One namespace's use of one pool (a namespace has one host; keyed by name
 * so the count survives reloads while its fetches are under way). */
struct up_nsq {
    char *name;
    int active;                     /* its fetches holding a connection */
    bool present;                   /* in the running configuration */
    struct up_nsq *next;
};

/* Pools outlive reloads: they are keyed by host:port and never removed. */
struct up_pool {
    char *host;
    int port;
    char hosthdr[300];
    bool tls;                       /* https: the files below, and ctx */
    char *ca_file, *cert_file, *key_file;
    struct uptls *ctx;              /* NULL until its files load */
    struct up_conn *conns;
    int nconns;
    int size;                       /* largest upstream_connections among its namespaces */
    int busy;                       /* connections with a fetch */
    int npresent;                   /* namespaces of the running config on this host */
    struct up_nsq *nsqs;
    int failing;                    /* fetches in a row that failed (upstream_note) */
    int64_t failed_ms;              /* when the last of them ended (mono ms) */
    struct up_reply failed;         /* its kind and status */
    TAILQ_HEAD(, up_fetch) queue;
    struct up_pool *next;
};

struct up_fetch {
    TAILQ_ENTRY(up_fetch) q;
    struct up_pool *pool;
    struct up_nsq *nsq;
    const struct cs_ns *ns;         /* its request headers; the caller holds the config */
    struct up_conn *conn;
    struct evhttp_request *req;
    struct event *timer;
    char *target;
    upstream_cb cb;
    void *arg;
    long long timeout_ms, max_body, max_fetches;
    int64_t deadline;               /* monotonic ms, queueing included */
    int64_t started_us;             /* for the upstream latency histogram */
    enum evhttp_request_error error;
    enum up_kind refused;           /* the header check's verdict, UP_OK = none */
    char why[96];
    struct evbuffer_cb_entry *count;    /* on the connection's input, until the head is read */
    size_t head_bytes;
    bool failed;
    bool queued;
    bool headers_done;
};

/* Connections retired inside a callback, freed from the loop. */
struct up_dead {
    struct evhttp_connection *evcon;
    struct up_dead *next;
};

static struct up_pool *up_pools;
static struct up_dead *up_dead;
static struct event *up_reaper;

static void upstream_kick(struct up_pool *p);

static struct up_pool *upstream_pool(const struct cs_ns *ns)
{
    struct up_pool *p;

    for (p = up_pools; p; p = p->next)
        if (p->port == ns->port && strcmp(p->host, ns->host) == 0 && p->tls == ns->tls &&
            (!p->tls || (strcmp(p->ca_file, ns->ca_file) == 0 && strcmp(p->cert_file, ns->cert_file) == 0 &&
                         strcmp(p->key_file, ns->key_file) == 0)))
            return p;
    p = cs_calloc(1, sizeof(*p));
    p->host = cs_strdup(ns->host);
    p->port = ns->port;
    p->tls = ns->tls;
    if (p->tls) {
        p->ca_file = cs_strdup(ns->ca_file);
        p->cert_file = cs_strdup(ns->cert_file);
        p->key_file = cs_strdup(ns->key_file);
    }
    snprintf(p->hosthdr, sizeof(p->hosthdr), strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", p->host, p->port);
    TAILQ_INIT(&p->queue);
    p->next = up_pools;
    up_pools = p;
    return p;
}

static struct up_nsq *upstream_nsq(struct up_pool *p, const char *name)
{
    struct up_nsq *n;

    for (n = p->nsqs; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    n = cs_calloc(1, sizeof(*n));
    n->name = cs_strdup(name);
    n->next = p->nsqs;
    p->nsqs = n;
    return n;
}

/* A host shared by more namespaces than connections gets one each. */
static int upstream_capacity(const struct up_pool *p)
{
    return p->size > p->npresent ? p->size : p->npresent;
}

/* The connections each namespace of a shared host can count on. */
static int upstream_share(const struct up_pool *p)
{
    int share = upstream_capacity(p) / (p->npresent > 1 ? p->npresent : 1);

    return share > 1 ? share : 1;
}

/* Within its share a namespace may always take a free connection; beyond
 * it only while a free one stays for every other namespace still below its
 * share. So hanging fetches of one namespace leave each other namespace of
 * the host a connection at once, and its whole share as they time out. */
static bool upstream_may_start(const struct up_fetch *f)
{
    const struct up_pool *p = f->pool;
    int cap = upstream_capacity(p), share = upstream_share(p), reserve = 0;

    if (f->nsq->active >= f->max_fetches || p->busy >= cap)
        return false;
    if (f->nsq->active < share)
        return true;
    for (const struct up_nsq *n = p->nsqs; n; n = n->next)
        if (n != f->nsq && n->present && n->active < share)
            reserve++;
    return cap - p->busy - 1 >= reserve;
}

/* A TLS context for ns's files, or NULL with why in err. */
static struct uptls *upstream_tls_new(const struct cs_ns *ns, char *err, size_t errsz)
{
    char why[400];
    struct uptls *t = uptls_new(ns->ca_file, ns->cert_file, ns->key_file, why, sizeof(why));

    if (!t)
        snprintf(err, errsz, "namespace %s: %s", ns->name, why);
    return t;
}

int upstream_check(const struct cs_config *c, char *err, size_t errsz)
{
    for (int i = 0; i < c->nns; i++) {
        struct uptls *t;
        if (!c->ns[i]->tls)
            continue;
        if (!(t = upstream_tls_new(c->ns[i], err, errsz)))
            return CS_ERR;
        uptls_free(t);
    }
    return CS_OK;
}

void upstream_reconfigure(const struct cs_config *c)
{
    struct up_pool *p;
    char err[512];

    for (p = up_pools; p; p = p->next) {
        p->npresent = 0;
        for (struct up_nsq *n = p->nsqs; n; n = n->next)
            n->present = false;
    }
    for (int i = 0; i < c->nns; i++) {
        const struct cs_ns *ns = c->ns[i];
        struct up_nsq *n;
        p = upstream_pool(ns);
        n = upstream_nsq(p, ns->name);
        if (p->tls && p->npresent == 0) {
            /* Read again at each reload: renewed files take effect for
             * the connections made from now on. */
            struct uptls *t = upstream_tls_new(ns, err, sizeof(err));
            if (t) {
                uptls_free(p->ctx);
                p->ctx = t;
            } else {
                log_error("upstream %s: %s%s", p->hosthdr, err, p->ctx ? "; keeping the files read before" : "");
            }
        }
        if (!n->present) {
            /* A host no namespace uses any more keeps its size for the
             * fetches of the old configuration still queued on it. */
            if (p->npresent == 0)
                p->size = 0;
            n->present = true;
            p->npresent++;
        }
        if (p->size < ns->c.v[CK_UP_CONNS])
            p->size = (int)ns->c.v[CK_UP_CONNS];
    }
    /* Larger shares or limits may let queued fetches start now; a smaller
     * pool keeps its extra connections until they are retired. */
    for (p = up_pools; p; p = p->next)
        upstream_kick(p);
}

static int upstream_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The byte "%XX" at p (n bytes left) stands for, or -1 when it is not one. */
static int upstream_pct(const char *p, size_t n)
{
    int hi, lo;

    if (n < 3 || p[0] != '%' || (hi = upstream_hex(p[1])) < 0 || (lo = upstream_hex(p[2])) < 0)
        return -1;
    return hi * 16 + lo;
}

/* '.' or '..' after one round of percent-decoding, up to a ';' (a path
 * parameter: servlet containers read "..;x" as "..") or a NUL. */
static bool upstream_dot_segment(const char *s, size_t n)
{
    int dots = 0;

    for (size_t i = 0; i < n;) {
        int ch = upstream_pct(s + i, n - i);
        size_t step = ch < 0 ? 1 : 3;
        if (ch < 0)
            ch = (unsigned char)s[i];
        if (ch == ';' || ch == '\0')
            break;
        if (ch != '.' || ++dots > 2)
            return false;
        i += step;
    }
    return dots > 0;
}

/* The id is sent percent-encoded and the upstream decodes it once; a proxy
 * in front may decode it once more (nginx does, before it resolves
 * dot-segments), so the id must stay one path segment (or, with
 * id_slashes, segments) both as it is and after one round of decoding:
 * docs/protocol.md, Keys, states the rule. */
const char *upstream_id_check(const struct cs_ns *ns, const char *id, size_t idlen)
{
    size_t start = 0;

    for (size_t i = 0; i < idlen; i++) {
        int ch = upstream_pct(id + i, idlen - i);
        if (id[i] == '/' && !ns->id_slashes)
            return "id may not contain '/'";
        if (id[i] == '\\')
            return "id may not contain '\\'";
        if (ch == '/' || ch == '\\')
            return "id may not contain an encoded '/' or '\\' (%2F, %5C)";
    }
    for (size_t i = 0; i <= idlen; i++) {
        if (i < idlen && !(ns->id_slashes && id[i] == '/'))
            continue;
        if (i == start)
            return "id may not have an empty path segment";
        if (upstream_dot_segment(id + start, i - start))
            return ns->id_slashes ? "id may not have a path segment '.' or '..'"
                                  : "id may not be a path segment '.' or '..'";
        start = i + 1;
    }
    return NULL;
}

/* RFC 3986 unreserved, and '/' where ids are nested paths. */
static bool upstream_keep(const struct cs_ns *ns, unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~' || (ch == '/' && ns->id_slashes);
}

char *upstream_target(const struct cs_ns *ns, const char *id, size_t idlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t enclen = 0, total = 0;
    char *out, *p;

    for (size_t i = 0; i < idlen; i++)
        enclen += upstream_keep(ns, (unsigned char)id[i]) ? 1 : 3;
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
            if (upstream_keep(ns, ch)) {
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

static void upstream_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_dead *d;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    while ((d = up_dead) != NULL) {
        up_dead = d->next;
        evhttp_connection_free(d->evcon);
        free(d);
    }
}

/* evhttp closes a connection: when the server ended an idle one with
 * close_notify, ours answers it before the socket goes. */
static void upstream_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    const struct up_pool *p = arg;

    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i].evcon == evcon && !p->conns[i].cur)
            uptls_close_notify(evhttp_connection_get_bufferevent(evcon), true);
}

/* A connection of p's, or NULL (logged) when it cannot be made: an https
 * pool whose files do not load (read again at each try), a host name
 * OpenSSL refuses as a server name. Never fatal: that fetch fails. */
static struct evhttp_connection *upstream_evcon_new(struct up_pool *p)
{
    struct evhttp_connection *evcon = NULL;
    struct bufferevent *bev;
    char why[400];

    if (p->tls && !p->ctx && !(p->ctx = uptls_new(p->ca_file, p->cert_file, p->key_file, why, sizeof(why)))) {
        log_limited(LOG_ERROR, "upstream https://%s: %s", p->hosthdr, why);
        return NULL;
    }
    /* With a resolver, evhttp looks host names up without blocking. */
    if (!p->tls) {
        evcon = evhttp_connection_base_new(cs_base, dns_base(), p->host, (unsigned short)p->port);
    } else if ((bev = uptls_bev(p->ctx, cs_base, p->host)) != NULL) {
        evcon = evhttp_connection_base_bufferevent_new(cs_base, dns_base(), bev, p->host, (unsigned short)p->port);
        if (!evcon)
            bufferevent_free(bev);
        else
            evhttp_connection_set_closecb(evcon, upstream_closed_cb, p);
    } else {
        log_limited(LOG_ERROR, "upstream https://%s: cannot start TLS: OpenSSL refuses the server name %s",
                    p->hosthdr, p->host);
        return NULL;
    }
    if (!evcon) {
        log_error("upstream %s: cannot create a connection (out of memory)", p->hosthdr);
        abort();
    }
    evhttp_connection_set_retries(evcon, 0);
    evhttp_connection_set_max_headers_size(evcon, UP_MAX_HEADER_BYTES);
    return evcon;
}

/* Retire uc's connection: it (and whatever its socket still holds) is
 * freed from the loop, outside evhttp's callbacks; uc gets a fresh one
 * when a fetch next takes it (upstream_start). */
static void upstream_retire(struct up_conn *uc)
{
    struct up_dead *d;

    if (!uc->evcon)
        return;
    d = cs_calloc(1, sizeof(*d));
    d->evcon = uc->evcon;
    d->next = up_dead;
    up_dead = d;
    if (!up_reaper)
        up_reaper = event_new(cs_base, -1, 0, upstream_reap_cb, NULL);
    event_active(up_reaper, EV_TIMEOUT, 1);
    uc->evcon = NULL;           /* a fresh one when a fetch needs it */
}

enum up_leftover { UL_CLEAN, UL_CLOSED, UL_SURPLUS };

/* After a response: is the connection exactly at a message boundary? Bytes
 * already read or waiting in the socket mean the upstream said more than
 * the framing allows. */
static enum up_leftover upstream_leftover(const struct up_pool *p, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd;
    char c;
    ssize_t n;

    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        return UL_SURPLUS;
    fd = bufferevent_getfd(bev);
    if (fd < 0)
        return UL_CLOSED;
    if (p->tls)
        return UL_CLEAN;        /* the socket holds records, not bytes of a response */
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return UL_SURPLUS;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return UL_CLEAN;
    return UL_CLOSED;
}

static void upstream_uncount(struct up_fetch *f)
{
    if (f->count) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(f->conn->evcon);
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), f->count);
        f->count = NULL;
    }
}

/* evhttp says only "invalid header" when a head outgrows its limit: count
 * what arrives before the head is complete to tell the two apart. */
static void upstream_count_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct up_fetch *f = arg;

    CS_UNUSED(buf);
    f->head_bytes += info->n_added;
}

static void upstream_note(struct up_pool *p, const struct up_reply *r);

static void upstream_finish(struct up_fetch *f, const struct up_reply *r, bool reuse)
{
    struct up_pool *p = f->pool;
    struct up_conn *uc = f->conn;
    struct up_reply done = *r;

    if (f->queued)
        TAILQ_REMOVE(&p->queue, f, q);
    event_free(f->timer);
    if (uc) {
        upstream_uncount(f);
        uc->cur = NULL;
        p->busy--;
        f->nsq->active--;
        if (!reuse && !cs_exiting)
            upstream_retire(uc);
    }
    if (r->kind != UP_OK && r->kind != UP_NOTFOUND)
        stats_c.upstream_errors++;
    if (!cs_exiting)
        upstream_note(p, r);
    done.us = (uint64_t)(cs_mono_us() - f->started_us);
    stats_observe(SH_UPSTREAM, done.us);
    f->cb(f->arg, &done);
    free(f->target);
    free(f);
    upstream_kick(p);
}

static int upstream_refuse(struct up_fetch *f, enum up_kind kind, const char *why)
{
    f->refused = kind;
    snprintf(f->why, sizeof(f->why), "%s", why);
    return -1;                  /* evhttp fails the request and resets the link */
}

static bool upstream_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The response head is complete: refuse what evhttp would misframe. */
static int upstream_header_cb(struct evhttp_request *req, void *arg)
{
    struct up_fetch *f = arg;
    int code = evhttp_request_get_response_code(req);
    const struct evkeyval *kv;
    const char *cl = NULL, *te = NULL;
    int n = 0, nte = 0;
    bool conflict = false;
    char why[64];

    if (code == 100)
        return 0;               /* evhttp reads on to the final response */
    f->headers_done = true;
    upstream_uncount(f);
    if (code < 200) {
        snprintf(why, sizeof(why), "interim response %d", code);
        return upstream_refuse(f, UP_BAD, why);
    }
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
        n++;
        if (strcasecmp(kv->key, "Content-Length") == 0) {
            if (cl && strcmp(cl, kv->value) != 0)
                conflict = true;
            cl = kv->value;
        } else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
            nte++;
            te = kv->value;
        }
    }
    if (n > UP_MAX_HEADERS) {
        snprintf(why, sizeof(why), "more than %d header lines", UP_MAX_HEADERS);
        return upstream_refuse(f, UP_HEADERS, why);
    }
    if (conflict)
        return upstream_refuse(f, UP_BAD, "conflicting Content-Length headers");
    if (cl && !upstream_digits(cl))
        return upstream_refuse(f, UP_BAD, "malformed Content-Length");
    if (nte > 1 || (te && strcasecmp(te, "chunked") != 0))
        return upstream_refuse(f, UP_BAD, "unsupported Transfer-Encoding");
    if (te && cl)
        return upstream_refuse(f, UP_BAD, "both Content-Length and Transfer-Encoding");
    return 0;
}

static void upstream_error_cb(enum evhttp_request_error err, void *arg)
{
    struct up_fetch *f = arg;

    f->error = err;
    f->failed = true;
}

static const char *upstream_kind_text(enum up_kind k)
{
    switch (k) {
    case UP_TOOBIG: return "body over max_body_bytes";
    case UP_TIMEOUT: return "timed out";
    case UP_HEADERS: return "response head too large";
    case UP_BAD: return "malformed response";
    default: return "connection failed";
    }
}

/* For readiness: a connection that failed or timed out, or a 5xx, is a
 * failure of the host; any other answer it gave (200, 404, another 4xx)
 * shows it serving. What says nothing about the host (a body over
 * max_body_bytes, a malformed response, no free slot here) changes nothing. */
static void upstream_note(struct up_pool *p, const struct up_reply *r)
{
    if (r->kind == UP_UNREACHABLE || r->kind == UP_TIMEOUT || (r->kind == UP_STATUS && r->status >= 500)) {
        p->failing++;
        p->failed_ms = cs_mono_ms();
        p->failed = (struct up_reply){ .kind = r->kind, .status = r->status };
    } else if (r->kind == UP_OK || r->kind == UP_NOTFOUND || r->kind == UP_STATUS) {
        p->failing = 0;
    }
}

bool upstream_can_serve(char *why, size_t len)
{
    int64_t now = cs_mono_ms();
    const struct up_pool *p, *down = NULL;

    for (p = up_pools; p; p = p->next) {
        if (!p->npresent)
            continue;           /* no namespace of the running configuration */
        if (p->failing < UPSTREAM_DOWN_AFTER || now - p->failed_ms >= UPSTREAM_DOWN_FOR_MS)
            return true;
        down = p;
    }
    if (!down)
        return true;            /* nothing to ask: not for us to judge */
    if (down->failed.kind == UP_STATUS)
        snprintf(why, len, "%s: its last %d fetches failed (the last: status %d)", down->hosthdr, down->failing,
                 down->failed.status);
    else
        snprintf(why, len, "%s: its last %d fetches failed (the last: %s)", down->hosthdr, down->failing,
                 upstream_kind_text(down->failed.kind));
    return false;
}

/* A handshake that failed: counted by reason, logged with OpenSSL's
 * reason at most once per TLSERR_LOG_MS per host and reason. */
static void upstream_tls_note(const struct up_pool *p, enum tlserr_reason reason, const char *why)
{
    unsigned held;
    char more[64] = "";

    if (!tlserr_note(TLSERR_UPSTREAM, p->hosthdr, reason, &held))
        return;
    if (held)
        snprintf(more, sizeof(more), " (%u more not logged)", held);
    log_warn("upstream https://%s: TLS failed: %s%s", p->hosthdr, why, more);
}

static bool upstream_tls_failed(struct up_fetch *f)
{
    enum tlserr_reason reason = TLSERR_OTHER;
    char why[256];

    if (!uptls_error(evhttp_connection_get_bufferevent(f->conn->evcon), why, sizeof(why), &reason))
        return false;
    upstream_tls_note(f->pool, reason, why);
    return true;
}

static void upstream_done_cb(struct evhttp_request *req, void *arg)
{
    struct up_fetch *f = arg;
    struct up_reply r = { 0 };
    enum up_leftover left;
    struct evbuffer *in;
    int code;

    f->req = NULL;
    if (!req || f->failed || f->refused != UP_OK || (code = evhttp_request_get_response_code(req)) == 0) {
        /* A failed connect calls back with code 0 and no error. */
        if (f->refused != UP_OK)
            r.kind = f->refused;
        else if (!f->failed)
            r.kind = UP_UNREACHABLE;
        else if (f->error == EVREQ_HTTP_DATA_TOO_LONG)
            r.kind = f->headers_done ? UP_TOOBIG : UP_HEADERS;
        else if (f->error == EVREQ_HTTP_TIMEOUT)
            r.kind = UP_TIMEOUT;
        else if (f->error == EVREQ_HTTP_INVALID_HEADER)
            r.kind = !f->headers_done && f->head_bytes > UP_MAX_HEADER_BYTES ? UP_HEADERS : UP_BAD;
        else if (f->error == EVREQ_HTTP_EOF && f->headers_done)
            r.kind = UP_BAD;    /* closed before the body was complete */
        else
            r.kind = UP_UNREACHABLE;
        if (r.kind == UP_HEADERS && !f->why[0])
            snprintf(f->why, sizeof(f->why), "more than %d bytes", UP_MAX_HEADER_BYTES);
        if (f->pool->tls && f->conn && upstream_tls_failed(f)) {
            r.kind = UP_UNREACHABLE;
            upstream_finish(f, &r, false);
            return;
        }
        log_limited(LOG_WARNING, "upstream %s%s: %s%s%s", f->pool->hosthdr, f->target, upstream_kind_text(r.kind),
                 f->why[0] ? ": " : "", f->why);
        upstream_finish(f, &r, false);
        return;
    }
    r.status = code;
    r.bytes = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    left = upstream_leftover(f->pool, f->conn->evcon);
    if (left == UL_SURPLUS) {
        r.kind = UP_BAD;
        log_limited(LOG_WARNING, "upstream %s%s: malformed response: bytes after the end of the response (status %d)",
                 f->pool->hosthdr, f->target, code);
    } else if (code == 200) {
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
        log_limited(LOG_WARNING, "upstream %s%s: status %d", f->pool->hosthdr, f->target, code);
    }
    upstream_finish(f, &r, left == UL_CLEAN && (r.kind == UP_OK || r.kind == UP_NOTFOUND));
}

static void upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct up_fetch *f = arg;
    struct up_reply r = { .kind = f->failed ? UP_UNREACHABLE : UP_TIMEOUT };

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (f->queued) {
        r.kind = UP_BUSY;
        log_limited(LOG_WARNING, "upstream %s%s: no free slot within %lld ms (namespace %s: %d of max_upstream_fetches %lld under way)",
                 f->pool->hosthdr, f->target, f->timeout_ms / 2, f->nsq->name, f->nsq->active, f->max_fetches);
    } else if (!f->failed && f->pool->tls && uptls_handshaking(evhttp_connection_get_bufferevent(f->conn->evcon))) {
        char why[96];
        snprintf(why, sizeof(why), "the handshake did not finish within %lld ms", f->timeout_ms);
        upstream_tls_note(f->pool, TLSERR_TIMEOUT, why);
    } else if (!f->failed) {
        log_limited(LOG_WARNING, "upstream %s%s: no answer within %lld ms", f->pool->hosthdr, f->target, f->timeout_ms);
    }
    if (f->req) {
        /* Cancelling resets the connection and frees the request without
         * calling its callback; the connection is retired all the same, so
         * a lookup still under way goes with it. */
        evhttp_cancel_request(f->req);
        f->req = NULL;
    }
    upstream_finish(f, &r, false);
}

static struct up_conn *upstream_idle_conn(struct up_pool *p)
{
    for (int i = 0; i < p->nconns; i++) {
        struct up_conn *uc = &p->conns[i];
        if (uc->cur)
            continue;
        /* evhttp would connect again with the SSL of the closed session. */
        if (p->tls && uc->used && uc->evcon &&
            bufferevent_getfd(evhttp_connection_get_bufferevent(uc->evcon)) < 0) {
            upstream_retire(uc);
            uc->used = false;
        }
        return uc;
    }
    p->conns = cs_realloc(p->conns, sizeof(*p->conns) * (size_t)(p->nconns + 1));
    /* Fetches point at their connection: re-point after the move. */
    for (int i = 0; i < p->nconns; i++)
        if (p->conns[i].cur)
            p->conns[i].cur->conn = &p->conns[i];
    p->conns[p->nconns].cur = NULL;
    p->conns[p->nconns].used = false;
    p->conns[p->nconns].evcon = NULL;
    return &p->conns[p->nconns++];
}

static void upstream_arm(struct up_fetch *f, int64_t ms)
{
    struct timeval tv;

    if (ms < 1)
        ms = 1;
    cs_ms_tv(&tv, ms);
    evtimer_add(f->timer, &tv);
}

static void upstream_start(struct up_fetch *f)
{
    struct up_pool *p = f->pool;
    struct up_conn *uc = upstream_idle_conn(p);
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct timeval tv;
    int64_t left = f->deadline - cs_mono_ms();

    if (f->queued) {
        TAILQ_REMOVE(&p->queue, f, q);
        f->queued = false;
    }
    f->conn = uc;
    uc->cur = f;
    uc->used = true;
    p->busy++;
    f->nsq->active++;
    if (left < 1)
        left = 1;
    upstream_arm(f, left);
    if (!uc->evcon && !(uc->evcon = upstream_evcon_new(p))) {
        /* Logged; the fetch fails from the loop, as callers expect. */
        f->failed = true;
        f->error = EVREQ_HTTP_EOF;
        event_active(f->timer, EV_TIMEOUT, 1);
        return;
    }
    cs_ms_tv(&tv, left);
    evhttp_connection_set_timeout_tv(uc->evcon, &tv);
    evhttp_connection_set_max_body_size(uc->evcon, (ev_ssize_t)f->max_body);
    f->count = evbuffer_add_cb(bufferevent_get_input(evhttp_connection_get_bufferevent(uc->evcon)),
                               upstream_count_cb, f);
    req = evhttp_request_new(upstream_done_cb, f);
    evhttp_request_set_error_cb(req, upstream_error_cb);
    evhttp_request_set_header_cb(req, upstream_header_cb);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", p->hosthdr);
    /* The namespace's upstream_header lines; Accept and User-Agent are
     * ours unless it sets them. */
    for (int i = 0; i < f->ns->nheaders; i++)
        evhttp_add_header(h, f->ns->headers[i].name, f->ns->headers[i].value);
    if (!evhttp_find_header(h, "Accept"))
        evhttp_add_header(h, "Accept", "application/json, */*");
    if (!evhttp_find_header(h, "User-Agent"))
        evhttp_add_header(h, "User-Agent", "cachasided/" PACKAGE_VERSION);
    f->req = req;
    stats_c.upstream_requests++;
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

/* Start, in queue order, every waiting fetch the limits now allow. */
static void upstream_kick(struct up_pool *p)
{
    struct up_fetch *f, *next;

    if (cs_exiting)
        return;
    for (f = TAILQ_FIRST(&p->queue); f && p->busy < upstream_capacity(p); f = next) {
        next = TAILQ_NEXT(f, q);
        if (upstream_may_start(f))
            upstream_start(f);
    }
}

void upstream_fetch(const struct cs_ns *ns, const char *id, size_t idlen, upstream_cb cb, void *arg)
{
    struct up_pool *p = upstream_pool(ns);
    struct up_fetch *f = cs_calloc(1, sizeof(*f));

    /* A namespace of an older configuration still counts, on its own terms. */
    if (p->size < 1)
        p->size = (int)ns->c.v[CK_UP_CONNS];
    f->pool = p;
    f->nsq = upstream_nsq(p, ns->name);
    f->ns = ns;
    f->cb = cb;
    f->arg = arg;
    f->timeout_ms = ns->c.v[CK_UP_TIMEOUT];
    f->max_body = ns->c.v[CK_MAX_BODY];
    f->max_fetches = ns->c.v[CK_MAX_FETCHES];
    f->deadline = cs_mono_ms() + f->timeout_ms;
    f->started_us = cs_mono_us();
    f->target = upstream_target(ns, id, idlen);
    f->timer = evtimer_new(cs_base, upstream_timer_cb, f);
    TAILQ_INSERT_TAIL(&p->queue, f, q);
    f->queued = true;
    upstream_kick(p);
    /* Waiting for a slot may take half the budget; the rest is the fetch's. */
    if (f->queued)
        upstream_arm(f, f->timeout_ms / 2);
}

void upstream_report(struct stats_sink *s)
{
    const struct up_pool *p;
    const struct up_fetch *f;
    char label[320];
    int n;

#define UP_FAMILY(name, help, expr)                                       \
    for (p = up_pools; p; p = p->next) {                                  \
        snprintf(label, sizeof(label), "host=%s", p->hosthdr);            \
        s->num(s, SK_GAUGE, name, help, label, (double)(expr));           \
    }
    UP_FAMILY("upstream_connections", "Keep-alive connections open per upstream host", p->nconns)
    UP_FAMILY("upstream_busy", "Upstream connections with a fetch under way, per host", p->busy)
    for (p = up_pools; p; p = p->next) {
        n = 0;
        TAILQ_FOREACH(f, &p->queue, q)
            n++;
        snprintf(label, sizeof(label), "host=%s", p->hosthdr);
        s->num(s, SK_GAUGE, "upstream_queued", "Fetches waiting for a connection, per host", label, n);
    }
#undef UP_FAMILY
}

void upstream_prom(struct prom *p, enum up_metric m)
{
    const struct up_pool *pl;
    const struct up_fetch *f;
    int n;

    for (pl = up_pools; pl; pl = pl->next) {
        n = m == UPM_CONNECTIONS ? pl->nconns : pl->busy;
        if (m == UPM_QUEUED) {
            n = 0;
            TAILQ_FOREACH(f, &pl->queue, q)
                n++;
        }
        prom_sample(p, n, "host", pl->hosthdr, NULL, NULL);
    }
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
                upstream_finish(f, &gone, true);
            }
        }
        while ((f = TAILQ_FIRST(&p->queue)) != NULL)
            upstream_finish(f, &gone, true);
    }
    upstream_reap_cb(-1, 0, NULL);
    if (up_reaper)
        event_free(up_reaper);
    up_reaper = NULL;
    for (p = up_pools; p; p = next) {
        struct up_nsq *n, *nn;
        next = p->next;
        for (int i = 0; i < p->nconns; i++) {
            if (!p->conns[i].evcon)
                continue;
            if (p->tls)         /* idle now: an orderly close */
                uptls_close_notify(evhttp_connection_get_bufferevent(p->conns[i].evcon), false);
            evhttp_connection_free(p->conns[i].evcon);
        }
        for (n = p->nsqs; n; n = nn) {
            nn = n->next;
            free(n->name);
            free(n);
        }
        free(p->conns);
        free(p->host);
        free(p->ca_file);
        free(p->cert_file);
        free(p->key_file);
        uptls_free(p->ctx);
        free(p);
    }
    up_pools = NULL;
}
