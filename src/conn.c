/* conn.c - one client: input buffer, parsing, the ordered reply queue,
 * backpressure and the output limit.
 *
 * Reads go into one buffer shared by every client; what is left of a
 * partial request is kept in the client's own buffer, so an idle client
 * holds no input buffer at all. Requests copy their arguments (req_new), so
 * nothing points into either buffer once a request is dispatched. */
#include "core.h"
#include "conn.h"
#include "command.h"
#include "config.h"
#include "log.h"
#include "stats.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONN_READ_SIZE 65536        /* one read into the shared buffer */
#define CONN_IBUF_MIN 1024          /* a client's own buffer starts at this */
#define CONN_WRITE_SLICE 262144     /* written per loop pass: a big reply never starves others */
#define CONN_ARGS_KEEP 1024         /* a larger shared argv is freed after use */
/* Requests one client may start per loop pass. Every client's Redis reads
 * share one pipelined connection: a client that pipelines thousands would
 * otherwise queue them all in front of everybody else's. As Redis does
 * with its per-read query chunk, the rest waits for the next pass. */
#define CONN_PASS_MAX 32
/* Every client's reads share one pipelined Redis connection, so what one
 * client queues there others wait behind: one client may have at most
 * CONN_REDIS_SHARE reads at Redis (a pipeline deeper than any client library
 * uses). A client paused at it has reads at Redis; their replies resume it. */
#define CONN_REDIS_SHARE 64
#define CONN_FRAME_FACTOR 64        /* a RESP request may be 64 x max_request_bytes */
/* Before AUTH (with requirepass) a client is held to small requests, as
 * Redis 7 holds one (docs/protocol.md). */
#define CONN_NOAUTH_ARGS 10
#define CONN_NOAUTH_ARG 4096
#define CONN_NOAUTH_FRAME 16384

struct conn_list conn_all = TAILQ_HEAD_INITIALIZER(conn_all);
int conn_count;
static uint64_t conn_next_id = 1;
static char conn_rbuf[CONN_READ_SIZE];
static struct resp_args conn_args;  /* the request being dispatched; req_new copies them */

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

void conn_new(int fd, const char *peer)
{
    struct conn *c = cs_calloc(1, sizeof(*c));

    c->id = conn_next_id++;
    c->fd = fd;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->out = evbuffer_new();
    TAILQ_INIT(&c->reqs);
    c->authed = !cs_conf->requirepass[0];
    c->last_active = cs_mono_ms();
    c->rev = event_new(cs_base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->wev = event_new(cs_base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    event_add(c->rev, NULL);
    c->reading = true;
    TAILQ_INSERT_TAIL(&conn_all, c, link);
    conn_count++;
    stats.clients_connected++;
    clog_debug(c, "connected");
}

static void req_free(struct req *r)
{
    if (r->state_free)
        r->state_free(r->state);
    if (r->stash)
        evbuffer_free(r->stash);
    config_unref(r->conf);
    free(r);
}

void conn_close(struct conn *c, const char *why)
{
    struct req *r;

    clog_debug(c, "closing: %s", why);
    while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
        TAILQ_REMOVE(&c->reqs, r, q);
        if (r->done || order_drop(r))
            req_free(r);
        else
            r->conn = NULL;     /* its owner frees it when the answer comes */
    }
    order_close(&c->ord);
    TAILQ_REMOVE(&conn_all, c, link);
    conn_count--;
    stats.clients_connected--;
    event_free(c->rev);
    event_free(c->wev);
    evbuffer_free(c->out);
    close(c->fd);
    free(c->ibuf);
    free(c);
}

static void conn_pause(struct conn *c)
{
    if (c->reading) {
        event_del(c->rev);
        c->reading = false;
    }
}

static void conn_resume(struct conn *c)
{
    if (!c->reading && !c->closing) {
        event_add(c->rev, NULL);
        c->reading = true;
        /* Requests may already be buffered: run the read callback once. */
        event_active(c->rev, EV_READ, 1);
    }
}

/* Arm the write event; the write callback also does deferred closes. A
 * client over its output limit is closed from there even when its socket
 * never becomes writable (it does not read): the event is made active. */
static void conn_want_write(struct conn *c)
{
    size_t queued = evbuffer_get_length(c->out) + c->stashed;

    event_add(c->wev, NULL);
    if (!c->overflow && (long long)queued > cs_conf->max_output_bytes_per_client) {
        c->overflow = true;
        c->closing = true;
        stats.output_limit_disconnects++;
        conn_pause(c);
        event_active(c->wev, EV_WRITE, 1);
    }
}

void conn_drain(struct conn *c)
{
    conn_pause(c);
    c->closing = true;
    conn_want_write(c);
}

static struct req *req_new(struct conn *c, const struct resp_args *a)
{
    size_t need = sizeof(struct req) + sizeof(struct cs_str) * (size_t)a->argc;
    struct req *r;
    char *p;

    for (int i = 0; i < a->argc; i++)
        need += a->argv[i].len + 1;
    r = cs_malloc(need);
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->bytes = need;
    r->outcome = -1;
    r->t0_us = cs_mono_us();
    r->conf = config_ref(cs_conf);
    r->argc = a->argc;
    r->argv = (struct cs_str *)(r + 1);
    p = (char *)(r->argv + a->argc);
    for (int i = 0; i < a->argc; i++) {
        memcpy(p, a->argv[i].p, a->argv[i].len);
        p[a->argv[i].len] = '\0';   /* handy for logging and lookups */
        r->argv[i].p = p;
        r->argv[i].len = a->argv[i].len;
        p += a->argv[i].len + 1;
    }
    TAILQ_INSERT_TAIL(&c->reqs, r, q);
    c->inflight++;
    c->qbytes += need;
    return r;
}

/* A protocol error answers after what came before it, then closes. */
static void conn_protocol_error(struct conn *c, const char *why)
{
    struct resp_args none = { 0 };
    struct req *r = req_new(c, &none);

    clog_info(c, "protocol error: %s", why);
    stats.protocol_errors++;
    resp_errorf(req_out(r), "ERR protocol error: %s", why);
    conn_drain(c);
    req_done(r);
}

static size_t conn_frame_max(void)
{
    return (size_t)cs_conf->max_request_bytes * CONN_FRAME_FACTOR;
}

static void conn_limits(const struct conn *c, struct resp_limits *l)
{
    l->max_arg = (size_t)cs_conf->max_request_bytes;
    l->max_frame = conn_frame_max();
    l->max_args = RESP_MAX_ARGS;
    l->before_auth = !c->authed;
    if (!c->authed) {
        l->max_arg = l->max_arg < CONN_NOAUTH_ARG ? l->max_arg : CONN_NOAUTH_ARG;
        l->max_frame = l->max_frame < CONN_NOAUTH_FRAME ? l->max_frame : CONN_NOAUTH_FRAME;
        l->max_args = CONN_NOAUTH_ARGS;
    }
}

/* Back-pressure: requests queued (answered or not, until their reply is
 * in out) are bounded in number and in the bytes they hold. */
static bool conn_may_read(const struct conn *c)
{
    return c->inflight < cs_conf->max_inflight_per_client && c->qbytes < conn_frame_max() &&
           c->rq < CONN_REDIS_SHARE;
}

/* Parses and dispatches what base[ipos..ilen) holds. */
static void conn_process(struct conn *c, const char *base)
{
    int started = 0;

    while (!c->closing && c->ipos < c->ilen) {
        struct resp_limits lim;
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st;

        if (!conn_may_read(c)) {
            conn_pause(c);      /* resumed by req_done */
            break;
        }
        if (started == CONN_PASS_MAX) {
            c->more = true;     /* the next pass parses on before reading */
            event_active(c->rev, EV_READ, 1);
            break;
        }
        conn_limits(c, &lim);   /* each time: AUTH changes them */
        st = resp_parse(&c->parse, base + c->ipos, c->ilen - c->ipos, &lim, &conn_args, &used, &err);
        if (st == RESP_MORE)
            break;
        if (st == RESP_ERROR) {
            conn_protocol_error(c, err);
            break;
        }
        c->ipos += used;
        if (st == RESP_DONE) {
            started++;
            command_dispatch(req_new(c, &conn_args));
        }
    }
    if (conn_args.cap > CONN_ARGS_KEEP)
        resp_args_free(&conn_args);
}

/* After parsing: keep only the unparsed rest, in a buffer of the client's
 * own sized to it; nothing at all when everything was parsed. */
static void conn_keep_rest(struct conn *c, const char *base)
{
    size_t rest = c->closing ? 0 : c->ilen - c->ipos;   /* closing: nothing more is read */

    if (rest == 0) {
        free(c->ibuf);
        c->ibuf = NULL;
        c->ibuf_size = c->ilen = c->ipos = 0;
        return;
    }
    if (!c->ibuf) {
        c->ibuf_size = rest * 2 > CONN_IBUF_MIN ? rest * 2 : CONN_IBUF_MIN;
        c->ibuf = cs_malloc(c->ibuf_size);
        memcpy(c->ibuf, base + c->ipos, rest);
    } else if (c->ipos > 0) {
        memmove(c->ibuf, c->ibuf + c->ipos, rest);
        if (c->ibuf_size > 4 * rest && c->ibuf_size > CONN_IBUF_MIN) {
            c->ibuf_size = rest * 2 > CONN_IBUF_MIN ? rest * 2 : CONN_IBUF_MIN;
            c->ibuf = cs_realloc(c->ibuf, c->ibuf_size);
        }
    }
    c->ilen = rest;
    c->ipos = 0;
}

/* Room in the client's own buffer for the next read: doubling, or straight
 * to what the request in progress is known to need, never past one
 * request plus a read. */
static void conn_ibuf_room(struct conn *c)
{
    struct resp_limits lim;
    size_t cap, want = c->ibuf_size, need = resp_need(&c->parse);

    conn_limits(c, &lim);
    cap = lim.max_frame + CONN_IBUF_MIN;
    if (cap < need + CONN_IBUF_MIN)
        cap = need + CONN_IBUF_MIN;     /* a bulk accepted before a reload lowered the limit */
    if (c->ibuf_size - c->ilen >= CONN_IBUF_MIN / 2 && need <= c->ibuf_size)
        return;
    if (want < 2 * c->ibuf_size)
        want = 2 * c->ibuf_size;
    if (want < need + CONN_IBUF_MIN)
        want = need + CONN_IBUF_MIN;
    if (want > cap)
        want = cap;
    if (want > c->ibuf_size) {
        c->ibuf_size = want;
        c->ibuf = cs_realloc(c->ibuf, c->ibuf_size);
    }
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char *dst = conn_rbuf, *base;
    size_t room = sizeof(conn_rbuf);
    ssize_t n;

    CS_UNUSED(what);
    if (c->more && c->ibuf) {
        /* Requests already buffered: their turn, before reading more. */
        c->more = false;
        conn_process(c, c->ibuf);
        if (!c->more)           /* compact once, not once a pass */
            conn_keep_rest(c, c->ibuf);
        if (evbuffer_get_length(c->out))
            conn_want_write(c);
        return;
    }
    c->more = false;
    if (c->ibuf) {
        conn_ibuf_room(c);
        dst = c->ibuf + c->ilen;
        room = c->ibuf_size - c->ilen;
    }
    if (room > 0) {
        n = read(fd, dst, room);
        if (n == 0) {
            /* Half-close: answer what was sent, then close. Requests held
             * back by max_inflight_per_client are parsed when req_done
             * resumes us (the read sees EOF again). */
            if (c->ibuf) {
                conn_process(c, c->ibuf);
                conn_keep_rest(c, c->ibuf);
            }
            if (c->ilen > 0 && !conn_may_read(c))
                conn_pause(c);
            else
                conn_drain(c);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c, strerror(errno));
                return;
            }
        } else {
            c->ilen += (size_t)n;
            c->last_active = cs_mono_ms();
        }
    }
    base = c->ibuf ? c->ibuf : conn_rbuf;
    conn_process(c, base);
    conn_keep_rest(c, base);
    if (evbuffer_get_length(c->out))
        conn_want_write(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    CS_UNUSED(what);
    if (c->overflow) {
        clog_warn(c, "output buffer over max_output_bytes_per_client: disconnecting a slow reader");
        conn_close(c, "output limit");
        return;
    }
    if (evbuffer_get_length(c->out)) {
        int n = evbuffer_write_atmost(c->out, fd, CONN_WRITE_SLICE);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_close(c, strerror(errno));
            return;
        }
        if (evbuffer_get_length(c->out))
            return;             /* the rest on the next loop pass */
    }
    event_del(c->wev);
    if (c->closing && c->inflight == 0)
        conn_close(c, "done");
}

struct evbuffer *req_out(struct req *r)
{
    if (r->conn && TAILQ_FIRST(&r->conn->reqs) == r)
        return r->conn->out;
    if (!r->stash)
        r->stash = evbuffer_new();
    return r->stash;
}

void req_done(struct req *r)
{
    struct conn *c = r->conn;
    struct req *h;

    r->done = true;
    if (r->outcome >= 0) {
        stats_observe((enum stats_hist_id)r->outcome, (uint64_t)(cs_mono_us() - r->t0_us));
        if (r->outcome == SH_REQ_ERROR && r->nss)
            r->nss->errors++;
    }
    if (!c) {
        req_free(r);
        return;
    }
    c->last_active = cs_mono_ms();
    if (r->stash)
        c->stashed += evbuffer_get_length(r->stash);
    order_done(r);              /* may run later commands on its keys */
    while ((h = TAILQ_FIRST(&c->reqs)) != NULL && h->done) {
        TAILQ_REMOVE(&c->reqs, h, q);
        c->inflight--;
        c->qbytes -= h->bytes;
        if (h->stash) {
            c->stashed -= evbuffer_get_length(h->stash);
            evbuffer_add_buffer(c->out, h->stash);
        }
        req_free(h);
    }
    /* Writing (and any close) happens from the write event, never here:
     * our caller may still be walking this connection. */
    conn_want_write(c);
    if (conn_may_read(c))
        conn_resume(c);
}

void conn_redis_sent(struct conn *c)
{
    c->rq++;
}

void conn_redis_answered(struct conn *c)
{
    c->rq--;
    if (!c->reading && conn_may_read(c))
        conn_resume(c);
}

void conn_sweep_idle(int64_t now, long long idle_ms)
{
    struct conn *c, *next;

    for (c = TAILQ_FIRST(&conn_all); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->inflight == 0 && now - c->last_active > idle_ms)
            conn_close(c, "idle timeout");
    }
}
