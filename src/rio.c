/* SPDX-License-Identifier: BSD-3-Clause */
/* rio.c - a Redis link's I/O (see rio.h).
 *
 * hiredis connects the link, and drops it on an error; the commands and
 * replies in between are ours. Its async API re-parses every command it
 * is given (to spot SUBSCRIBE and MONITOR), mallocs a callback for each,
 * and its reader copies every reply, moves what follows it, and mallocs
 * each object. Its libevent adapter re-adds a one-shot read event after
 * every read and arms a write event for every batch: 2 to 4 epoll_ctl
 * calls a batch. Here commands are appended to its output buffer, replies
 * parsed where they were read (rreply.c) and handed to the link's owner,
 * which keeps its own FIFO of what it sent. */
#include "core.h"
#include "rio.h"

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <event2/event.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct event rio_flush_ev;
static bool rio_flush_ready, rio_flush_active;
/* Every link with a write due, whatever links there are. */
static TAILQ_HEAD(, rio_events) rio_due = TAILQ_HEAD_INITIALIZER(rio_due);

/* ---- the events --------------------------------------------------------- */

static void rio_undue(struct rio_events *e)
{
    if (e->due) {
        e->due = false;
        TAILQ_REMOVE(&rio_due, e, due_link);
    }
}

/* The input buffer: a read's worth at least, kept between reads; grown
 * for a reply larger than that, and given back once it has been used. */
#define RIO_READ (16 * 1024)
#define RIO_KEEP_IN (64 * 1024)

/* An I/O error of ours recorded as hiredis records its own, so that its
 * read or write, called next, drops the link with the same words. */
static void rio_error(redisContext *c, int err, const char *why)
{
    c->err = err;
    snprintf(c->errstr, sizeof(c->errstr), "%s", why);
}

/* Room for a read after what is still unparsed (a reply's first part). */
static void rio_room(struct rio_events *e)
{
    size_t keep = e->in_len - e->in_pos;

    if (keep == 0 && e->in_cap > RIO_KEEP_IN) {
        free(e->in);            /* a large reply is over */
        e->in = NULL;
        e->in_cap = e->in_len = e->in_pos = 0;
    }
    if (e->in_pos > 0 && e->in_cap - e->in_len < RIO_READ) {
        memmove(e->in, e->in + e->in_pos, keep);
        e->in_pos = 0;
        e->in_len = keep;
    }
    if (e->in_cap - e->in_len < RIO_READ) {
        e->in_cap = e->in_cap ? e->in_cap * 2 : RIO_READ;
        if (e->in_cap - e->in_len < RIO_READ)
            e->in_cap = e->in_len + RIO_READ;
        e->in = cs_realloc(e->in, e->in_cap);
    }
}

/* Hands every whole reply in the buffer to the owner, until the context
 * goes (the owner dropped the link, or the input is not RESP). */
static void rio_replies(struct rio_events *e, redisAsyncContext *ac)
{
    char why[128] = "Protocol error";
    int rc;

    while (e->in_pos < e->in_len) {
        char *p = e->in + e->in_pos;
        size_t len = e->in_len - e->in_pos, used;
        redisReply *r;

        if (e->scanning) {
            rc = rreply_scan(&e->scan, p, len, why, sizeof(why));
            if (rc == RREPLY_MORE)
                return;
            e->scanning = false;
        } else {
            rc = RREPLY_OK;
        }
        if (rc == RREPLY_OK)
            rc = rreply_parse(e->arena, p, len, &r, &used, why, sizeof(why));
        if (rc == RREPLY_MORE) {
            /* Came in part: see when it is whole without parsing it again. */
            rreply_arena_reset(e->arena);
            rreply_scan_init(&e->scan);
            rc = rreply_scan(&e->scan, p, len, why, sizeof(why));
            e->scanning = rc == RREPLY_MORE;
            if (rc == RREPLY_MORE)
                return;
            if (rc == RREPLY_OK)
                rc = rreply_parse(e->arena, p, len, &r, &used, why, sizeof(why));
        }
        if (rc != RREPLY_OK) {
            rreply_arena_reset(e->arena);
            rio_error(&ac->c, REDIS_ERR_PROTOCOL, why);
            redisAsyncHandleRead(ac);   /* sees the error: drops the link */
            return;
        }
        e->in_pos += used;
        e->on_reply(e->owner, r);
        rreply_arena_reset(e->arena);
        if (e->ac != ac)
            return;             /* the owner freed or replaced the context */
    }
    e->in_pos = e->in_len = 0;
}

static void rio_read(struct rio_events *e)
{
    redisAsyncContext *ac = e->ac;
    redisContext *c = &ac->c;
    ssize_t n;

    if (!(c->flags & REDIS_CONNECTED) || c->err) {
        redisAsyncHandleRead(ac);
        return;
    }
    rio_room(e);
    n = read(c->fd, e->in + e->in_len, e->in_cap - e->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        rio_error(c, n < 0 ? REDIS_ERR_IO : REDIS_ERR_EOF, n < 0 ? strerror(errno) : "Server closed the connection");
        redisAsyncHandleRead(ac);   /* sees the error: drops the link */
        return;
    }
    e->in_len += (size_t)n;
    e->in_total += (uint64_t)n;
    rio_replies(e, ac);
}

static void rio_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rio_events *e = arg;
    int64_t was = cs_pass_begin();

    CS_UNUSED(fd);
    CS_UNUSED(what);
    rio_read(e);
    cs_pass_end(was);
}

static void rio_write(struct rio_events *e);

static void rio_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rio_events *e = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    rio_write(e);
}

static void rio_add_read(void *priv)
{
    struct rio_events *e = priv;

    if (!e->reading) {
        e->reading = true;
        event_add(&e->rev, NULL);
    }
}

static void rio_del_read(void *priv)
{
    struct rio_events *e = priv;

    if (e->reading) {
        e->reading = false;
        event_del(&e->rev);
    }
}

static void rio_arm_write(struct rio_events *e)
{
    if (!e->writing) {
        e->writing = true;
        event_add(&e->wev, NULL);
    }
}

static void rio_add_write(void *priv)
{
    struct rio_events *e = priv;

    if (e->writing || e->due)
        return;
    if (e->flushing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        rio_arm_write(e);       /* a short write, or a connect to complete */
        return;
    }
    e->due = true;
    TAILQ_INSERT_TAIL(&rio_due, e, due_link);
    if (!rio_flush_active) {
        rio_flush_active = true;
        event_active(&rio_flush_ev, EV_TIMEOUT, 1);
    }
}

static void rio_del_write(void *priv)
{
    struct rio_events *e = priv;

    rio_undue(e);
    if (e->writing) {
        e->writing = false;
        event_del(&e->wev);
    }
}

int rio_send(struct rio_events *e, const char *cmd, size_t len)
{
    redisContext *c;
    sds grown;

    if (!e->ac)
        return CS_ERR;
    c = &e->ac->c;
    if (c->err || (c->flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return CS_ERR;
    grown = sdscatlen(c->obuf, cmd, len);
    if (!grown)
        return CS_ERR;          /* out of memory: obuf is as it was */
    c->obuf = grown;
    rio_add_write(e);
    return CS_OK;
}

static void rio_cleanup(void *priv)
{
    struct rio_events *e = priv;

    rio_del_read(e);
    rio_del_write(e);
    e->ac = NULL;
}

/* hiredis frees its output buffer after each complete write and grows a
 * new one, doubling, for the next batch: several reallocs a batch. We
 * write it ourselves and keep the buffer, up to RIO_KEEP_OBUF. Connects,
 * errors and a buffer grown past that go through hiredis's own write. */
#define RIO_KEEP_OBUF (64 * 1024)

static void rio_write(struct rio_events *e)
{
    redisAsyncContext *ac = e->ac;
    redisContext *c = &ac->c;
    size_t len = sdslen(c->obuf);
    ssize_t n;

    if (!(c->flags & REDIS_CONNECTED) || c->err || sdsalloc(c->obuf) > RIO_KEEP_OBUF) {
        redisAsyncHandleWrite(ac);
        return;
    }
    if (len) {
        n = write(c->fd, c->obuf, len);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            rio_error(c, REDIS_ERR_IO, strerror(errno));
            redisAsyncHandleWrite(ac);  /* sees the error: drops the link */
            return;
        }
        if (n == (ssize_t)len)
            sdsclear(c->obuf);
        else if (n > 0)
            sdsrange(c->obuf, (int)n, -1);      /* n < len <= RIO_KEEP_OBUF */
    }
    if (sdslen(c->obuf))
        rio_arm_write(e);       /* the rest when the socket drains */
    else
        rio_del_write(e);
    rio_add_read(e);
}

/* The link outlives its contexts (links are freed only at exit), so e is
 * still there when the write frees ac. */
static void rio_flush_one(struct rio_events *e)
{
    redisAsyncContext *ac = e->ac;

    rio_undue(e);
    if (!ac)
        return;
    e->flushing = true;
    rio_write(e);
    e->flushing = false;
}

void rio_flush(void)
{
    while (!TAILQ_EMPTY(&rio_due))
        rio_flush_one(TAILQ_FIRST(&rio_due));
}

static void rio_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    rio_flush_active = false;
    rio_flush();
}

void rio_attach(struct rio_events *e, redisAsyncContext *ac, struct rreply_arena *a,
                void (*on_reply)(void *owner, struct redisReply *r), void *owner)
{
    char *in = e->in;
    size_t cap = e->in_cap;

    if (!rio_flush_ready) {
        event_assign(&rio_flush_ev, cs_base, -1, 0, rio_flush_cb, NULL);
        rio_flush_ready = true;
    }
    rreply_arena_reset(a);
    rio_del_read(e);            /* the last context's, had it not been cleaned up */
    rio_del_write(e);
    memset(e, 0, sizeof(*e));
    e->in = in;                 /* the buffer stays; what was in it does not */
    e->in_cap = cap;
    e->arena = a;
    e->on_reply = on_reply;
    e->owner = owner;
    e->ac = ac;
    event_assign(&e->rev, cs_base, ac->c.fd, EV_READ | EV_PERSIST, rio_read_cb, e);
    event_assign(&e->wev, cs_base, ac->c.fd, EV_WRITE | EV_PERSIST, rio_write_cb, e);
    ac->ev.addRead = rio_add_read;
    ac->ev.delRead = rio_del_read;
    ac->ev.addWrite = rio_add_write;
    ac->ev.delWrite = rio_del_write;
    ac->ev.cleanup = rio_cleanup;
    ac->ev.data = e;
    /* As hiredis's adapter starts: reading, and writable says the connect is done. */
    rio_add_read(e);
    rio_arm_write(e);
}

void rio_release(struct rio_events *e)
{
    free(e->in);
    e->in = NULL;
    e->in_cap = e->in_len = e->in_pos = 0;
    if (e->arena)
        rreply_arena_reset(e->arena);
}
