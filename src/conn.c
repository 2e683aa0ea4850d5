/* conn.c - one client: input buffer, parsing, the ordered reply queue,
 * backpressure and the output limit. */
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

#define CONN_IBUF_MIN 16384

struct conn_list conn_all = TAILQ_HEAD_INITIALIZER(conn_all);
int conn_count;
static uint64_t conn_next_id = 1;

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

void conn_new(int fd, const char *peer)
{
    struct conn *c = cs_calloc(1, sizeof(*c));

    c->id = conn_next_id++;
    c->fd = fd;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->ibuf_size = CONN_IBUF_MIN;
    c->ibuf = cs_malloc(c->ibuf_size);
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
    resp_args_free(&c->args);
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
    event_add(c->wev, NULL);
    if (!c->overflow && (long long)evbuffer_get_length(c->out) > cs_conf->max_output_bytes_per_client) {
        c->overflow = true;
        c->closing = true;
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
    return r;
}

/* A protocol error answers after what came before it, then closes. */
static void conn_protocol_error(struct conn *c, const char *why)
{
    struct resp_args none = { 0 };
    struct req *r = req_new(c, &none);

    clog_info(c, "protocol error: %s", why);
    resp_errorf(req_out(r), "ERR protocol error: %s", why);
    conn_drain(c);
    req_done(r);
}

static void conn_process(struct conn *c)
{
    size_t max_arg = (size_t)cs_conf->max_request_bytes;
    size_t max_frame = max_arg * 64;

    while (!c->closing && c->ipos < c->ilen) {
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st;

        if (c->inflight >= cs_conf->max_inflight_per_client) {
            conn_pause(c);      /* resumed by req_done */
            break;
        }
        st = resp_parse(c->ibuf + c->ipos, c->ilen - c->ipos, max_arg, max_frame,
                        &c->args, &used, &err);
        if (st == RESP_MORE)
            break;
        if (st == RESP_ERROR) {
            conn_protocol_error(c, err);
            break;
        }
        c->ipos += used;
        if (st == RESP_DONE)
            command_dispatch(req_new(c, &c->args));
    }
    if (c->ipos == c->ilen) {
        c->ipos = c->ilen = 0;
    } else if (c->ipos > 0 && c->ilen == c->ibuf_size) {
        memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    }
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    size_t cap = (size_t)cs_conf->max_request_bytes * 65 + 1024;
    ssize_t n;

    CS_UNUSED(what);
    if (c->ilen == c->ibuf_size && c->ipos == 0 && c->ibuf_size < cap) {
        c->ibuf_size = c->ibuf_size * 2 < cap ? c->ibuf_size * 2 : cap;
        c->ibuf = cs_realloc(c->ibuf, c->ibuf_size);
    }
    if (c->ilen < c->ibuf_size) {
        n = read(fd, c->ibuf + c->ilen, c->ibuf_size - c->ilen);
        if (n == 0) {
            /* Half-close: answer what was sent, then close. Requests held
             * back by max_inflight_per_client are parsed when req_done
             * resumes us (the read sees EOF again). */
            conn_process(c);
            if (c->ipos < c->ilen && c->inflight >= cs_conf->max_inflight_per_client)
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
    conn_process(c);
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
    while (evbuffer_get_length(c->out)) {
        int n = evbuffer_write(c->out, fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_close(c, strerror(errno));
            return;
        }
        if (n == 0)
            return;
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
    if (!c) {
        req_free(r);
        return;
    }
    c->inflight--;
    c->last_active = cs_mono_ms();
    order_done(r);              /* may run later commands on its keys */
    while ((h = TAILQ_FIRST(&c->reqs)) != NULL && h->done) {
        TAILQ_REMOVE(&c->reqs, h, q);
        if (h->stash)
            evbuffer_add_buffer(c->out, h->stash);
        req_free(h);
    }
    /* Writing (and any close) happens from the write event, never here:
     * our caller may still be walking this connection. */
    conn_want_write(c);
    if (c->inflight < cs_conf->max_inflight_per_client)
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
