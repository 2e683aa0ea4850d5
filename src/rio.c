/* rio.c - a Redis link's events and reply arena (see rio.h).
 *
 * hiredis's libevent adapter re-adds a one-shot read event after every
 * read and arms a write event for every batch: 2 to 4 epoll_ctl calls a
 * batch. Its default reply functions malloc every object of every reply. */
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

struct rio_big {
    struct rio_big *next;
    _Alignas(16) char data[];
};

static struct event rio_flush_ev;
static bool rio_flush_ready, rio_flush_active;
/* Every link with a write due, whatever links there are. */
static TAILQ_HEAD(, rio_events) rio_due = TAILQ_HEAD_INITIALIZER(rio_due);

/* ---- the arena ---------------------------------------------------------- */

static void *rio_alloc(struct rio_arena *a, size_t n)
{
    struct rio_big *b;

    n = (n + 15) & ~(size_t)15;
    if (a->used + n <= RIO_ARENA_SIZE) {
        void *p = a->buf + a->used;
        a->used += n;
        return p;
    }
    b = cs_malloc(sizeof(*b) + n);
    b->next = a->big;
    a->big = b;
    return b->data;
}

void rio_arena_reset(struct rio_arena *a)
{
    struct rio_big *b;

    while ((b = a->big) != NULL) {
        a->big = b->next;
        free(b);
    }
    a->used = 0;
}

/* Every object starts with its arena, so freeObject (which gets only the
 * object) finds what to reset. EXTRA bytes follow the object (a string's
 * text), in the same allocation. */
static redisReply *rio_obj(const redisReadTask *t, int type, size_t extra)
{
    struct rio_arena *a = t->privdata;
    struct rio_arena **hdr = rio_alloc(a, 16 + sizeof(redisReply) + extra);
    redisReply *r = (redisReply *)((char *)hdr + 16);

    *hdr = a;
    *r = (redisReply){ .type = type };
    if (t->parent)
        ((redisReply *)t->parent->obj)->element[t->idx] = r;
    return r;
}

static void *rio_string(const redisReadTask *t, char *str, size_t len)
{
    redisReply *r = rio_obj(t, t->type, len + 1);

    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *rio_array(const redisReadTask *t, int n)
{
    redisReply *r = rio_obj(t, REDIS_REPLY_ARRAY, 0);

    if (n > 0) {
        r->element = rio_alloc(t->privdata, sizeof(redisReply *) * (size_t)n);
        memset(r->element, 0, sizeof(redisReply *) * (size_t)n);
    }
    r->elements = (size_t)(n > 0 ? n : 0);
    return r;
}

static void *rio_integer(const redisReadTask *t, long long v)
{
    redisReply *r = rio_obj(t, REDIS_REPLY_INTEGER, 0);

    r->integer = v;
    return r;
}

static void *rio_nil(const redisReadTask *t)
{
    return rio_obj(t, REDIS_REPLY_NIL, 0);
}

static void rio_free_object(void *obj)
{
    if (obj)
        rio_arena_reset(*(struct rio_arena **)((char *)obj - 16));
}

static redisReplyObjectFunctions rio_reply_fns = {
    rio_string, rio_array, rio_integer, rio_nil, rio_free_object,
};

/* ---- the events --------------------------------------------------------- */

static void rio_undue(struct rio_events *e)
{
    if (e->due) {
        e->due = false;
        TAILQ_REMOVE(&rio_due, e, due_link);
    }
}

/* hiredis reads 16 KB at a time into its reader and, once a reply has
 * taken it past 1 KB, moves the rest of its buffer down after every
 * reply: for a read of a hundred pipelined replies that is a hundred
 * moves of up to 16 KB. We read, and feed the reader a kilobyte at a
 * time, so what it moves stays under a kilobyte. Connects, errors and the
 * end of the stream go through hiredis's own read, as before. */
#define RIO_READ (16 * 1024)
#define RIO_FEED 1024

/* An I/O error of ours recorded as hiredis records its own, so that its
 * read or write, called next, drops the link with the same words. */
static void rio_error(redisContext *c, int err, const char *why)
{
    c->err = err;
    snprintf(c->errstr, sizeof(c->errstr), "%s", why);
}

/* What redisAsyncHandleRead runs after its read: exported by libhiredis
 * (0.14 and later), not declared in its async.h. */
void redisProcessCallbacks(redisAsyncContext *ac);

static void rio_read(struct rio_events *e)
{
    redisAsyncContext *ac = e->ac;
    redisContext *c = &ac->c;
    char buf[RIO_READ];
    ssize_t n;

    if (!(c->flags & REDIS_CONNECTED) || c->err) {
        redisAsyncHandleRead(ac);
        return;
    }
    n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        rio_error(c, n < 0 ? REDIS_ERR_IO : REDIS_ERR_EOF, n < 0 ? strerror(errno) : "Server closed the connection");
        redisAsyncHandleRead(ac);   /* sees the error: drops the link */
        return;
    }
    for (ssize_t off = 0; off < n; off += RIO_FEED) {
        size_t len = (size_t)(n - off < RIO_FEED ? n - off : RIO_FEED);
        /* A reader in error refuses more; redisProcessCallbacks then drops the link. */
        (void)redisReaderFeed(c->reader, buf + off, len);
        redisProcessCallbacks(ac);
        if (e->ac != ac)
            return;             /* a callback freed or replaced the context */
    }
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

void rio_attach(struct rio_events *e, struct rio_arena *a, redisAsyncContext *ac)
{
    if (!rio_flush_ready) {
        event_assign(&rio_flush_ev, cs_base, -1, 0, rio_flush_cb, NULL);
        rio_flush_ready = true;
    }
    rio_arena_reset(a);
    ac->c.reader->fn = &rio_reply_fns;
    ac->c.reader->privdata = a;
    rio_del_read(e);            /* the last context's, had it not been cleaned up */
    rio_del_write(e);
    memset(e, 0, sizeof(*e));
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
