/* rstore.c - Redis through hiredis's async API on libevent.
 *
 * hiredis 0.14 has no connect or command timeouts, so every command is
 * tracked in our own FIFO (replies on one connection come in order) and
 * one sweep timer enforces the deadlines:
 *   - a command with no reply after command_timeout_ms fails alone: its
 *     callback runs with NULL now, and its late reply is dropped when
 *     hiredis delivers it (the rcmd lives until then, marked abandoned);
 *   - a link that waits for replies and has read nothing at all for
 *     RS_DEAD_TIMEOUTS x command_timeout_ms is dead: it is dropped, which
 *     fails what is pending, and reconnected with capped exponential backoff;
 *   - a link quiet for RS_PROBE_MS gets a probe (PING on the command link,
 *     SUBSCRIBE again on the subscriber), so a half-open one is found too;
 *   - time our own loop spends stalled does not count (see rstore_now).
 * Host names are resolved with the shared evdns resolver, never blocking. */
#include "core.h"
#include "rstore.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "resp.h"
#include "stats.h"
#include "lua_scripts.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <event2/event_struct.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_BACKOFF_MIN_MS 100
#define RS_BACKOFF_MAX_MS 5000
#define RS_SWEEP_MS 20
#define RS_STALL_MS 100         /* a sweep gap beyond this is our stall, not Redis's */
#define RS_PROBE_MS 1000        /* a link that has heard nothing this long is probed */
#define RS_DEAD_TIMEOUTS 10     /* silent this many command timeouts: the link is dead */
#define RS_DEAD_MIN_MS 1000
#define RS_MAX_ADDRS 8

enum rs_state { RS_DOWN, RS_RESOLVING, RS_CONNECTING, RS_HANDSHAKE, RS_UP };

struct rcmd {
    TAILQ_ENTRY(rcmd) q;
    struct rlink *link;
    rstore_cb cb;
    void *priv;
    int64_t sent;               /* rstore_now() when queued */
    char *fmt;                  /* kept for scripts: resent after NOSCRIPT */
    size_t fmtlen;
    int script;                 /* -1 when not a script */
    bool retried;
    bool marker;                /* ours alone: hiredis has no callback for it */
    bool abandoned;             /* failed at its deadline; hiredis still holds it */
    int64_t sent_us;            /* for the round-trip histogram */
};

/* Reply objects of one link, built in place of hiredis's malloc'd tree:
 * a reader builds one reply at a time and frees it (freeObject on the
 * root) before it starts the next, so all of a link's objects go at once. */
#define RS_ARENA_SIZE 16384
struct rs_arena {
    size_t used;
    struct rs_big *big;         /* what did not fit, freed with the rest */
    _Alignas(16) char buf[RS_ARENA_SIZE];
};

struct rs_big {
    struct rs_big *next;
    _Alignas(16) char data[];
};

/* The link's events, in place of hiredis's adapters/libevent.h, which
 * re-adds a one-shot read event after every read and arms a write event
 * for every batch (2 to 4 epoll_ctl a batch). Here the read event
 * persists, and what a pass queued is written at its end (rs_flush_ev,
 * as the clients' replies are): EV_WRITE is waited for only after a short
 * write, or while connecting. */
struct rs_events {
    redisAsyncContext *ac;      /* NULL: detached */
    struct event rev, wev;
    bool reading, writing;      /* rev / wev added */
    bool due;                   /* a write at the end of this pass: on rs_due */
    TAILQ_ENTRY(rs_events) due_link;
    bool flushing;              /* inside that write */
};

struct rlink {
    const char *name;
    struct rs_arena arena;
    struct rs_events ev;
    redisAsyncContext *ac;
    enum rs_state state;
    bool subscriber;
    int64_t since;              /* start of this attempt (resolve + connect) */
    long long backoff_ms;
    struct event *retry;
    TAILQ_HEAD(, rcmd) pending; /* not yet answered nor abandoned, oldest first */
    int handshake_left;
    int waiting;                /* replies due: ours, abandoned ones, probes */
    int64_t heard;              /* last read, or when we began waiting */
    size_t seen_len, seen_pos;  /* the reader's buffer at the last sweep */
    long late;                  /* commands failed by their deadline in a row */
    struct evdns_getaddrinfo_request *dns;
    unsigned turn;              /* which resolved address to try */
    char last_error[160];       /* why it is (or was last) down: /healthz, STATS */
    unsigned long connects;     /* attempts since start: 1 + reconnects */
};

static struct rlink rs_cmd = { .name = "redis" }, rs_sub = { .name = "redis subscriber", .subscriber = true };
static struct event *rs_sweep;
static int64_t rs_clock, rs_clock_at;
static char rs_chan[300];       /* the fill-notice channel we subscribed to */
static char rs_sha[RS_NSCRIPTS][41];
static const char *const rs_sources[RS_NSCRIPTS] = { LUA_LOCK, LUA_FILL, LUA_RELEASE, LUA_HSET, LUA_DEL };
static const char *const rs_names[RS_NSCRIPTS] = { "lock", "fill", "release", "hset", "del" };

void (*rstore_on_notice)(const char *key, size_t len);
void (*rstore_on_subscribed)(void);

static void rstore_connect(struct rlink *l);

/* When the bytes being handled were read (cs_mono_us), 0 outside a read:
 * every reply of one read arrived then, and the clock is read once. */
static int64_t rs_read_us;

static void *rs_arena_alloc(struct rs_arena *a, size_t n)
{
    struct rs_big *b;

    n = (n + 15) & ~(size_t)15;
    if (a->used + n <= RS_ARENA_SIZE) {
        void *p = a->buf + a->used;
        a->used += n;
        return p;
    }
    b = cs_malloc(sizeof(*b) + n);
    b->next = a->big;
    a->big = b;
    return b->data;
}

static void rs_arena_reset(struct rs_arena *a)
{
    struct rs_big *b;

    while ((b = a->big) != NULL) {
        a->big = b->next;
        free(b);
    }
    a->used = 0;
}

/* Every object starts with its arena, so freeObject (which gets only the
 * object) finds what to reset. */
static redisReply *rs_obj(const redisReadTask *t, int type)
{
    struct rs_arena *a = t->privdata;
    struct rs_arena **hdr = rs_arena_alloc(a, 16 + sizeof(redisReply));
    redisReply *r = (redisReply *)((char *)hdr + 16);

    *hdr = a;
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (t->parent)
        ((redisReply *)t->parent->obj)->element[t->idx] = r;
    return r;
}

static void *rs_create_string(const redisReadTask *t, char *str, size_t len)
{
    redisReply *r = rs_obj(t, t->type);

    r->str = rs_arena_alloc(t->privdata, len + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *rs_create_array(const redisReadTask *t, int n)
{
    redisReply *r = rs_obj(t, REDIS_REPLY_ARRAY);

    if (n > 0) {
        r->element = rs_arena_alloc(t->privdata, sizeof(redisReply *) * (size_t)n);
        memset(r->element, 0, sizeof(redisReply *) * (size_t)n);
    }
    r->elements = (size_t)(n > 0 ? n : 0);
    return r;
}

static void *rs_create_integer(const redisReadTask *t, long long v)
{
    redisReply *r = rs_obj(t, REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

static void *rs_create_nil(const redisReadTask *t)
{
    return rs_obj(t, REDIS_REPLY_NIL);
}

static void rs_free_object(void *obj)
{
    if (obj)
        rs_arena_reset(*(struct rs_arena **)((char *)obj - 16));
}

static redisReplyObjectFunctions rs_reply_fns = {
    rs_create_string, rs_create_array, rs_create_integer, rs_create_nil, rs_free_object,
};

static struct event rs_flush_ev;
static bool rs_flush_ready, rs_flush_active;
/* Every link with a write due, whatever links there are. */
static TAILQ_HEAD(, rs_events) rs_due = TAILQ_HEAD_INITIALIZER(rs_due);

static void rs_ev_undue(struct rs_events *e)
{
    if (e->due) {
        e->due = false;
        TAILQ_REMOVE(&rs_due, e, due_link);
    }
}

static void rs_ev_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rs_events *e = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    rs_read_us = cs_mono_us();
    redisAsyncHandleRead(e->ac);
    rs_read_us = 0;
}

static void rs_ev_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rs_events *e = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    redisAsyncHandleWrite(e->ac);
}

static void rs_ev_add_read(void *priv)
{
    struct rs_events *e = priv;

    if (!e->reading) {
        e->reading = true;
        event_add(&e->rev, NULL);
    }
}

static void rs_ev_del_read(void *priv)
{
    struct rs_events *e = priv;

    if (e->reading) {
        e->reading = false;
        event_del(&e->rev);
    }
}

static void rs_ev_arm_write(struct rs_events *e)
{
    if (!e->writing) {
        e->writing = true;
        event_add(&e->wev, NULL);
    }
}

static void rs_ev_add_write(void *priv)
{
    struct rs_events *e = priv;

    if (e->writing || e->due)
        return;
    if (e->flushing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        rs_ev_arm_write(e);     /* a short write, or a connect to complete */
        return;
    }
    e->due = true;
    TAILQ_INSERT_TAIL(&rs_due, e, due_link);
    if (!rs_flush_active) {
        rs_flush_active = true;
        event_active(&rs_flush_ev, EV_TIMEOUT, 1);
    }
}

static void rs_ev_del_write(void *priv)
{
    struct rs_events *e = priv;

    rs_ev_undue(e);
    if (e->writing) {
        e->writing = false;
        event_del(&e->wev);
    }
}

static void rs_ev_cleanup(void *priv)
{
    struct rs_events *e = priv;

    rs_ev_del_read(e);
    rs_ev_del_write(e);
    e->ac = NULL;
}

static void rs_ev_flush(struct rs_events *e)
{
    redisAsyncContext *ac = e->ac;

    if (!e->due)
        return;
    rs_ev_undue(e);
    if (!ac)
        return;
    e->flushing = true;
    redisAsyncHandleWrite(ac);  /* may free ac: e outlives it */
    e->flushing = false;
}

static void rs_flush_cb(evutil_socket_t fd, short what, void *arg);

static void rs_ev_attach(struct rs_events *e, redisAsyncContext *ac)
{
    if (!rs_flush_ready) {
        event_assign(&rs_flush_ev, cs_base, -1, 0, rs_flush_cb, NULL);
        rs_flush_ready = true;
    }
    rs_ev_del_read(e);          /* the last context's, had it not been cleaned up */
    rs_ev_del_write(e);
    memset(e, 0, sizeof(*e));
    e->ac = ac;
    event_assign(&e->rev, cs_base, ac->c.fd, EV_READ | EV_PERSIST, rs_ev_read_cb, e);
    event_assign(&e->wev, cs_base, ac->c.fd, EV_WRITE | EV_PERSIST, rs_ev_write_cb, e);
    ac->ev.addRead = rs_ev_add_read;
    ac->ev.delRead = rs_ev_del_read;
    ac->ev.addWrite = rs_ev_add_write;
    ac->ev.delWrite = rs_ev_del_write;
    ac->ev.cleanup = rs_ev_cleanup;
    ac->ev.data = e;
    /* As hiredis's adapter starts: reading, and writable tells the connect is done. */
    rs_ev_add_read(e);
    rs_ev_arm_write(e);
}

/* Remembers why a link failed, in the words /healthz shows: "connection
 * refused", "auth failed: WRONGPASS ...". */
static void rstore_note(struct rlink *l, const char *prefix, const char *why)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s%s", prefix, why ? why : "");
    if (l->last_error[0] >= 'A' && l->last_error[0] <= 'Z' && l->last_error[1] >= 'a')
        l->last_error[0] = (char)(l->last_error[0] - 'A' + 'a');
}

/* Milliseconds as Redis deadlines see them: the monotonic clock, except
 * that a gap between two sweeps longer than RS_STALL_MS (our loop was
 * blocked, or the process stopped) counts as RS_STALL_MS. Replies that
 * arrived meanwhile are in our socket; they must not be blamed on Redis. */
static int64_t rstore_now_at(int64_t mono_ms)
{
    int64_t d = mono_ms - rs_clock_at;

    return rs_clock + (d < RS_STALL_MS ? d : RS_STALL_MS);
}

static int64_t rstore_now(void)
{
    return rstore_now_at(cs_mono_ms());
}


static int64_t rstore_reply_us(void)
{
    return rs_read_us ? rs_read_us : cs_mono_us();
}

static long long rstore_dead_ms(void)
{
    long long ms = RS_DEAD_TIMEOUTS * cs_conf->command_timeout_ms;

    return ms < RS_DEAD_MIN_MS ? RS_DEAD_MIN_MS : ms;
}

static struct rlink *rstore_link_of(const redisAsyncContext *ac)
{
    return (struct rlink *)ac->data;
}

static void rstore_schedule(struct rlink *l)
{
    struct timeval tv;

    if (cs_exiting)
        return;
    tv.tv_sec = l->backoff_ms / 1000;
    tv.tv_usec = (l->backoff_ms % 1000) * 1000;
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > RS_BACKOFF_MAX_MS ? RS_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

/* Frees what hiredis does not own: the subscribe marker. Every other rcmd is
 * freed by its callback, which hiredis runs with a NULL reply when the
 * context goes: at once, or, when we are inside one of its callbacks, once
 * that callback returns. */
static void rstore_forget(struct rlink *l)
{
    struct rcmd *c, *next;

    for (c = TAILQ_FIRST(&l->pending); c; c = next) {
        next = TAILQ_NEXT(c, q);
        if (c->marker) {
            TAILQ_REMOVE(&l->pending, c, q);
            free(c);
        }
    }
}

/* Fail the link now: hiredis calls every pending callback with NULL. Not
 * from the connect callback: hiredis 0.14 touches the context after it. */
static void rstore_drop(struct rlink *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    if (!ac)
        return;
    log_warn("%s: %s; reconnecting", l->name, why);
    if (!l->last_error[0] || l->state == RS_UP)
        rstore_note(l, "", why);
    l->ac = NULL;
    l->state = RS_DOWN;
    ac->data = NULL;
    redisAsyncFree(ac);
    rstore_forget(l);
    rstore_schedule(l);
}

static void rstore_drop_later_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    rstore_drop(arg, "cannot send set-up commands");
}

/* Something was read: the link is alive, and a reply in time ends a run of
 * late ones. */
static void rstore_heard(struct rlink *l, bool in_time)
{
    l->heard = rstore_now_at(rstore_reply_us() / 1000);
    if (in_time && l->late) {
        log_notice("%s: replies in time again (%ld command(s) failed by command_timeout_ms)", l->name, l->late);
        l->late = 0;
    }
}

static void rstore_probe_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

/* The n-th bulk string (0-based) of a RESP command we formatted. */
static struct cs_str rstore_fmt_arg(const char *fmt, size_t len, int n)
{
    const char *p = memchr(fmt, '\n', len), *end = fmt + len;
    struct cs_str s = { NULL, 0 };

    while (p && ++p < end && *p == '$') {
        size_t blen = strtoul(p + 1, NULL, 10);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || (size_t)(end - nl - 1) < blen)
            break;
        if (n-- == 0) {
            s.p = nl + 1;
            s.len = blen;
            break;
        }
        p = nl + 1 + blen + 1;      /* past the bulk and its \r\n */
    }
    return s;
}

/* A lock script that timed out here may still have taken the lock in
 * Redis: its flight has moved on, so hand the lock back (and wake waiters)
 * instead of letting every daemon wait lock_ttl_ms for it. */
static void rstore_unlock_late(struct rlink *l, const struct rcmd *c)
{
    /* EVALSHA sha 2 record lock token ... */
    struct cs_str key = rstore_fmt_arg(c->fmt, c->fmtlen, 3), lock = rstore_fmt_arg(c->fmt, c->fmtlen, 4),
                  token = rstore_fmt_arg(c->fmt, c->fmtlen, 5);
    char chan[300];
    const char *argv[7] = { "EVALSHA", rs_sha[RS_RELEASE], "1", lock.p, token.p, chan, key.p };
    size_t lens[7] = { 7, 40, 1, lock.len, token.len, 0, key.len };
    char *fmt;
    int len;

    lens[5] = (size_t)snprintf(chan, sizeof(chan), "%sfills", cs_conf->key_prefix);

    if (!key.p || !lock.p || !token.p || !l->ac || l->state != RS_UP)
        return;
    log_info("%s: lock %.*s taken after its command timed out: releasing it", l->name, (int)lock.len, lock.p);
    len = redisFormatCommandArgv(&fmt, 7, argv, lens);
    if (len < 0)
        return;
    if (redisAsyncFormattedCommand(l->ac, NULL, NULL, fmt, (size_t)len) != REDIS_OK)
        log_info("%s: cannot release %.*s", l->name, (int)lock.len, lock.p);
    redisFreeCommand(fmt);
}

/* Spare command records: one per command in flight is the steady state. */
#define RS_SPARE_MAX 256
static struct rcmd *rs_spare[RS_SPARE_MAX];
static int rs_nspare;

static struct rcmd *rstore_cmd_new(void)
{
    struct rcmd *c = rs_nspare ? rs_spare[--rs_nspare] : cs_malloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    return c;
}

static void rstore_cmd_free(struct rcmd *c)
{
    if (c->fmt)
        redisFreeCommand(c->fmt);
    if (rs_nspare < RS_SPARE_MAX && !cs_exiting)
        rs_spare[rs_nspare++] = c;
    else
        free(c);
}

static void rstore_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rcmd *c = privdata;
    struct rlink *l = c->link;
    redisReply *reply = r;

    CS_UNUSED(ac);
    l->waiting--;
    if (reply)
        rstore_heard(l, !c->abandoned);
    if (c->abandoned) {
        /* Its callback ran at the deadline; this late reply is dropped. */
        /* The lock script answers {code, Redis ms}; code 1: it took the lock. */
        if (reply && c->script == RS_LOCK && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 1)
            rstore_unlock_late(l, c);
        rstore_cmd_free(c);
        return;
    }
    TAILQ_REMOVE(&l->pending, c, q);
    if (reply)
        stats_observe(SH_REDIS, (uint64_t)(rstore_reply_us() - c->sent_us));
    if (reply && reply->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && l->ac) {
        /* Redis restarted or flushed its scripts: load, then run again. */
        const char *argv[3] = { "SCRIPT", "LOAD", rs_sources[c->script] };
        char *load;
        int len = redisFormatCommandArgv(&load, 3, argv, NULL);
        log_notice("%s: script %s missing (NOSCRIPT), loading it again", l->name, rs_names[c->script]);
        c->retried = true;
        if (len > 0 && redisAsyncFormattedCommand(l->ac, NULL, NULL, load, (size_t)len) == REDIS_OK &&
            redisAsyncFormattedCommand(l->ac, rstore_reply_cb, c, c->fmt, c->fmtlen) == REDIS_OK) {
            redisFreeCommand(load);
            c->sent = rstore_now();     /* a new deadline for the second run */
            l->waiting++;
            TAILQ_INSERT_TAIL(&l->pending, c, q);
            return;
        }
        if (len > 0)
            redisFreeCommand(load);
    }
    if ((!reply || reply->type == REDIS_REPLY_ERROR) && c->cb != rstore_probe_cb) {
        stats.redis_errors++;
        if (reply)
            log_limited(LOG_INFO, "%s: error reply: %s", l->name, reply->str);
    }
    c->cb(c->priv, reply);
    rstore_cmd_free(c);
}

/* One more reply is due on l; silence is counted from the first. */
static void rstore_expect(struct rlink *l)
{
    if (l->waiting++ == 0)
        l->heard = rstore_now();
}

static int rstore_send_fmt(struct rlink *l, rstore_cb cb, void *priv, char *fmt, size_t len, int script)
{
    struct rcmd *c = rstore_cmd_new();

    c->link = l;
    c->cb = cb;
    c->priv = priv;
    c->sent_us = cs_mono_us();
    c->sent = rstore_now_at(c->sent_us / 1000);
    c->script = script;
    if (redisAsyncFormattedCommand(l->ac, rstore_reply_cb, c, fmt, len) != REDIS_OK) {
        rstore_cmd_free(c);
        redisFreeCommand(fmt);
        return CS_ERR;
    }
    if (script >= 0) {
        c->fmt = fmt;
        c->fmtlen = len;
    } else {
        redisFreeCommand(fmt);
    }
    rstore_expect(l);
    TAILQ_INSERT_TAIL(&l->pending, c, q);
    return CS_OK;
}

static int rstore_send(struct rlink *l, rstore_cb cb, void *priv, int argc, const char **argv,
                       const size_t *lens, int script)
{
    char *fmt;
    int len;

    if (!l->ac || l->state < RS_HANDSHAKE)
        return CS_ERR;
    len = resp_command(&fmt, argc, argv, lens);   /* as redisFormatCommandArgv, without printf */
    if (len < 0)
        return CS_ERR;
    return rstore_send_fmt(l, cb, priv, fmt, (size_t)len, script);
}

void rstore_flush(void)
{
    while (!TAILQ_EMPTY(&rs_due))
        rs_ev_flush(TAILQ_FIRST(&rs_due));  /* takes it off the list */
}

static void rs_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    rs_flush_active = false;
    rstore_flush();
}

bool rstore_ready(void)
{
    return rs_cmd.state == RS_UP;
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (rs_cmd.state != RS_UP)
        return CS_ERR;
    return rstore_send(&rs_cmd, cb, priv, argc, argv, lens, -1);
}

int rstore_eval(enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc,
                const char **argv, const size_t *lens)
{
    const char **av;
    size_t *al;
    char nk[16];
    int rc;

    if (rs_cmd.state != RS_UP)
        return CS_ERR;
    av = cs_malloc(sizeof(*av) * (size_t)(argc + 3));
    al = cs_malloc(sizeof(*al) * (size_t)(argc + 3));
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = rs_sha[s];
    al[1] = 40;
    al[2] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
    av[2] = nk;
    memcpy(av + 3, argv, sizeof(*av) * (size_t)argc);
    memcpy(al + 3, lens, sizeof(*al) * (size_t)argc);
    rc = rstore_send(&rs_cmd, cb, priv, argc + 3, av, al, (int)s);
    free(av);
    free(al);
    return rc;
}

/* Handshake: AUTH, SELECT, SCRIPT LOAD (or SUBSCRIBE), each checked. */
static void rstore_handshake_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;

    if (!l->ac)
        return;                 /* dropped meanwhile: the drop logged it */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_error("%s: set-up failed: %s", l->name, r ? r->str : "no reply");
        rstore_note(l, r && (strstr(r->str, "WRONGPASS") || strstr(r->str, "NOAUTH") || strstr(r->str, "AUTH"))
                        ? "auth failed: " : "set-up failed: ", r ? r->str : "no reply");
        rstore_drop(l, "set-up failed");
        return;
    }
    if (l->subscriber)
        return;                 /* up once SUBSCRIBE is confirmed */
    if (--l->handshake_left == 0) {
        l->state = RS_UP;
        l->backoff_ms = RS_BACKOFF_MIN_MS;
        log_notice("%s: connected", l->name);
    }
}

static void rstore_script_loaded_cb(void *priv, const redisReply *r)
{
    for (int i = 0; i < RS_NSCRIPTS; i++) {
        if (priv == rs_names[i] && r && r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(rs_sha[i], r->str, 41);
    }
    rstore_handshake_cb(&rs_cmd, r);
}

static void rstore_message_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct rlink *l = &rs_sub;

    CS_UNUSED(ac);
    CS_UNUSED(privdata);
    if (!reply || !l->ac)
        return;                 /* the link is going away */
    rstore_heard(l, true);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        if (strcmp(reply->element[0]->str, "message") == 0) {
            if (rstore_on_notice && reply->element[2]->type == REDIS_REPLY_STRING)
                rstore_on_notice(reply->element[2]->str, (size_t)reply->element[2]->len);
        } else if (strcmp(reply->element[0]->str, "subscribe") == 0 && l->state == RS_UP) {
            if (l->waiting > 0)
                l->waiting--;   /* a probe's answer */
        } else if (strcmp(reply->element[0]->str, "subscribe") == 0) {
            /* The subscribe confirmation is the end of the handshake. */
            struct rcmd *c = TAILQ_FIRST(&l->pending);
            if (c && c->marker) {
                TAILQ_REMOVE(&l->pending, c, q);
                free(c);
            }
            l->waiting = 0;
            l->state = RS_UP;
            l->backoff_ms = RS_BACKOFF_MIN_MS;
            log_notice("%s: subscribed to %s", l->name, rs_chan);
            /* Notices published while we were away are lost. */
            if (rstore_on_subscribed)
                rstore_on_subscribed();
        }
    }
}

/* SUBSCRIBE to the fill-notice channel: at set-up, and again as the
 * subscriber's probe (Redis confirms it again; nothing else changes).
 * Not PING: hiredis 0.14 takes the ["pong", ""] reply for a pattern
 * message (its first letter is 'p'), finds no callback and drops it, and
 * the PING's own callback stays queued until the connection goes. */
static int rstore_subscribe(struct rlink *l)
{
    const char *argv[2] = { "SUBSCRIBE", rs_chan };
    char *fmt;
    int len = redisFormatCommandArgv(&fmt, 2, argv, NULL);
    int rc;

    if (len < 0)
        return CS_ERR;
    rc = redisAsyncFormattedCommand(l->ac, rstore_message_cb, NULL, fmt, (size_t)len) == REDIS_OK ? CS_OK : CS_ERR;
    redisFreeCommand(fmt);
    return rc;
}

static void rstore_start_handshake(struct rlink *l)
{
    const char *argv[4];
    size_t lens[4];
    char db[24];
    const struct cs_config *c = cs_conf;

    l->state = RS_HANDSHAKE;
    l->handshake_left = 0;
    if (c->redis_password[0]) {
        int n = 0;
        argv[n++] = "AUTH";
        if (c->redis_username[0])
            argv[n++] = c->redis_username;
        argv[n++] = c->redis_password;
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        l->handshake_left++;
        if (rstore_send(l, rstore_handshake_cb, l, n, argv, lens, -1) != CS_OK)
            goto fail;
    }
    if (l->subscriber) {
        /* A timeout marker in the FIFO until the confirmation arrives. */
        struct rcmd *mark = cs_calloc(1, sizeof(*mark));
        mark->link = l;
        mark->sent = rstore_now();
        mark->script = -1;
        mark->marker = true;
        TAILQ_INSERT_TAIL(&l->pending, mark, q);
        snprintf(rs_chan, sizeof(rs_chan), "%sfills", c->key_prefix);
        if (rstore_subscribe(l) != CS_OK)
            goto fail;
        return;
    }
    if (c->redis_db) {
        snprintf(db, sizeof(db), "%lld", c->redis_db);
        argv[0] = "SELECT";
        argv[1] = db;
        l->handshake_left++;
        if (rstore_send(l, rstore_handshake_cb, l, 2, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    for (int i = 0; i < RS_NSCRIPTS; i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = rs_sources[i];
        l->handshake_left++;
        if (rstore_send(l, rstore_script_loaded_cb, (void *)rs_names[i], 3, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    return;
fail:
    /* We are inside hiredis's connect callback: drop from the loop. */
    l->state = RS_DOWN;
    if (event_base_once(cs_base, -1, EV_TIMEOUT, rstore_drop_later_cb, l, &(struct timeval){ 0, 0 }) != 0)
        log_error("%s: cannot schedule a reconnect", l->name);
}

static void rstore_connect_cb(const redisAsyncContext *ac, int status)
{
    struct rlink *l = rstore_link_of(ac);

    if (!l)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, ac->errstr);
        rstore_note(l, "", ac->errstr);
        l->ac = NULL;
        l->state = RS_DOWN;
        l->turn++;              /* the next attempt tries the next address */
        rstore_forget(l);
        rstore_schedule(l);
        return;
    }
    rstore_start_handshake(l);
}

static void rstore_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct rlink *l = rstore_link_of(ac);

    if (!l)
        return;                 /* we dropped it ourselves */
    log_warn("%s: connection lost%s%s", l->name, status == REDIS_OK ? "" : ": ",
             status == REDIS_OK ? "" : ac->errstr);
    rstore_note(l, "", "connection lost");
    l->ac = NULL;
    l->state = RS_DOWN;
    rstore_forget(l);
    rstore_schedule(l);
}

/* Connect to a numeric address (or the unix socket when host is NULL). */
static void rstore_connect_to(struct rlink *l, const char *host)
{
    redisAsyncContext *ac;

    if (host)
        ac = redisAsyncConnect(host, (int)cs_conf->redis_port);
    else
        ac = redisAsyncConnectUnix(cs_conf->redis_unix_socket);
    if (!ac || ac->err) {
        log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, ac ? ac->errstr : "out of memory");
        rstore_note(l, "", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        l->state = RS_DOWN;
        rstore_schedule(l);
        return;
    }
    /* Keepalive finds a peer that vanished without a FIN on an idle link.
     * A failure here is not worth the connection: clear hiredis's error. */
    if (host && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        log_info("%s: cannot enable TCP keepalive: %s", l->name, ac->c.errstr);
        ac->c.err = 0;
        ac->c.errstr[0] = '\0';
    }
    ac->data = l;
    /* No reply tree per command: replies are built in the link's arena. */
    rs_arena_reset(&l->arena);
    ac->c.reader->fn = &rs_reply_fns;
    ac->c.reader->privdata = &l->arena;
    l->ac = ac;
    l->state = RS_CONNECTING;
    l->waiting = 0;
    l->late = 0;
    l->heard = rstore_now();
    l->seen_len = l->seen_pos = 0;
    rs_ev_attach(&l->ev, ac);
    redisAsyncSetConnectCallback(ac, rstore_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rstore_disconnect_cb);
}

static void rstore_resolved_cb(int err, struct evutil_addrinfo *res, void *arg)
{
    struct rlink *l = arg;
    char addrs[RS_MAX_ADDRS][INET6_ADDRSTRLEN];
    int n = 0;

    if (err == EVUTIL_EAI_CANCEL)
        return;                 /* timed out or exiting: already handled */
    l->dns = NULL;
    for (struct evutil_addrinfo *ai = res; ai && n < RS_MAX_ADDRS; ai = ai->ai_next) {
        const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                      : ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                      : NULL;
        if (a && evutil_inet_ntop(ai->ai_family, a, addrs[n], sizeof(addrs[n])))
            n++;
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (l->state != RS_RESOLVING)
        return;
    if (err || n == 0) {
        log_warn("%s: cannot resolve %s: %s", l->name, cs_conf->redis_host,
                 err ? evutil_gai_strerror(err) : "no address");
        rstore_note(l, "cannot resolve host: ", err ? evutil_gai_strerror(err) : "no address");
        l->state = RS_DOWN;
        rstore_schedule(l);
        return;
    }
    log_debug("%s: %s is %s", l->name, cs_conf->redis_host, addrs[l->turn % (unsigned)n]);
    rstore_connect_to(l, addrs[l->turn % (unsigned)n]);
}

static bool rstore_numeric(const char *host)
{
    unsigned char buf[16];

    return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

static void rstore_connect(struct rlink *l)
{
    const struct cs_config *c = cs_conf;
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    l->since = rstore_now();    /* resolving counts against connect_timeout_ms */
    l->connects++;
    if (c->redis_unix_socket[0]) {
        rstore_connect_to(l, NULL);
        return;
    }
    if (rstore_numeric(c->redis_host)) {
        rstore_connect_to(l, c->redis_host);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    l->state = RS_RESOLVING;
    /* From /etc/hosts the callback runs before this returns (and NULL is
     * returned); otherwise it runs from the loop. */
    req = evdns_getaddrinfo(dns_base(), c->redis_host, NULL, &hints, rstore_resolved_cb, l);
    if (l->state == RS_RESOLVING)
        l->dns = req;
}

static void rstore_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    rstore_connect(arg);
}

/* Per-command deadlines: the oldest commands first. */
static void rstore_expire(struct rlink *l, int64_t now)
{
    redisAsyncContext *ac = l->ac;
    struct rcmd *c;

    while (ac && l->ac == ac && (c = TAILQ_FIRST(&l->pending)) && now - c->sent > cs_conf->command_timeout_ms) {
        TAILQ_REMOVE(&l->pending, c, q);
        if (c->marker) {
            free(c);
            rstore_drop(l, "SUBSCRIBE not confirmed within command_timeout_ms");
            return;
        }
        c->abandoned = true;
        if (c->cb == rstore_probe_cb)
            continue;
        stats.redis_errors++;
        if (l->late++ == 0)
            log_warn("%s: no reply within command_timeout_ms (%lld ms): failing such commands, keeping the connection",
                     l->name, cs_conf->command_timeout_ms);
        c->cb(c->priv, NULL);
    }
}

static void rstore_probe(struct rlink *l)
{
    const char *argv[1] = { "PING" };

    if (l->subscriber) {
        if (rstore_subscribe(l) == CS_OK)
            rstore_expect(l);
    } else if (rstore_send(l, rstore_probe_cb, NULL, 1, argv, NULL, -1) != CS_OK) {
        log_debug("%s: cannot send a probe", l->name);
    }
}

static void rstore_check(struct rlink *l, int64_t now)
{
    char why[160];

    if ((l->state == RS_RESOLVING || l->state == RS_CONNECTING) && now - l->since > cs_conf->connect_timeout_ms) {
        if (l->state == RS_CONNECTING) {
            l->turn++;
            rstore_drop(l, "connect timed out (connect_timeout_ms)");
            return;
        }
        log_warn("%s: cannot resolve %s within connect_timeout_ms; retrying", l->name, cs_conf->redis_host);
        rstore_note(l, "", "cannot resolve host: no answer");
        if (l->dns)
            evdns_getaddrinfo_cancel(l->dns);
        l->dns = NULL;
        l->state = RS_DOWN;
        rstore_schedule(l);
        return;
    }
    if (!l->ac || l->state < RS_HANDSHAKE)
        return;
    if (l->ac->c.reader->len != l->seen_len || l->ac->c.reader->pos != l->seen_pos) {
        l->seen_len = l->ac->c.reader->len;   /* part of a long reply came in */
        l->seen_pos = l->ac->c.reader->pos;
        l->heard = now;
    }
    rstore_expire(l, now);
    if (!l->ac)
        return;
    if ((l->waiting > 0 || !TAILQ_EMPTY(&l->pending)) && now - l->heard > rstore_dead_ms()) {
        snprintf(why, sizeof(why), "nothing read for %lld ms while waiting for replies (%d x command_timeout_ms)",
                 (long long)(now - l->heard), RS_DEAD_TIMEOUTS);
        rstore_drop(l, why);
        return;
    }
    if (l->state == RS_UP && l->waiting == 0 && now - l->heard >= RS_PROBE_MS)
        rstore_probe(l);
}

static void rstore_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    now = rstore_now();
    rs_clock = now;
    rs_clock_at = cs_mono_ms();
    rstore_check(&rs_cmd, now);
    rstore_check(&rs_sub, now);
}

void rstore_init(void)
{
    struct timeval tv = { 0, RS_SWEEP_MS * 1000 };
    struct rlink *links[2] = { &rs_cmd, &rs_sub };

    rs_clock = rs_clock_at = cs_mono_ms();
    for (int i = 0; i < 2; i++) {
        TAILQ_INIT(&links[i]->pending);
        links[i]->backoff_ms = RS_BACKOFF_MIN_MS;
        links[i]->retry = evtimer_new(cs_base, rstore_retry_cb, links[i]);
        rstore_connect(links[i]);
    }
    rs_sweep = event_new(cs_base, -1, EV_PERSIST, rstore_sweep_cb, NULL);
    event_add(rs_sweep, &tv);
}

void rstore_free(void)
{
    struct rlink *links[2] = { &rs_cmd, &rs_sub };
    bool cancelled = false;

    for (int i = 0; i < 2; i++) {
        struct rlink *l = links[i];
        if (l->dns) {
            evdns_getaddrinfo_cancel(l->dns);
            cancelled = true;
        }
        l->dns = NULL;
        if (l->ac) {
            redisAsyncContext *ac = l->ac;
            l->ac = NULL;
            l->state = RS_DOWN;
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        rstore_forget(l);
        if (l->retry)
            event_free(l->retry);
        l->retry = NULL;
    }
    if (rs_sweep)
        event_free(rs_sweep);
    rs_sweep = NULL;
    while (rs_nspare > 0)
        free(rs_spare[--rs_nspare]);
    /* A cancelled lookup is freed by a deferred callback of the resolver:
     * give the loop one turn, so that exiting mid-lookup leaks nothing. */
    if (cancelled)
        event_base_loop(cs_base, EVLOOP_NONBLOCK);
}

const char *rstore_status(void)
{
    if (rs_cmd.state == RS_UP)
        return NULL;
    if (rs_cmd.last_error[0])
        return rs_cmd.last_error;
    return rs_cmd.state == RS_DOWN ? "not connected" : "connecting";
}

static const char *rstore_state_name(const struct rlink *l)
{
    static const char *const names[] = { "down", "resolving", "connecting", "handshake", "up" };

    return names[l->state];
}

void rstore_report(struct stats_sink *s)
{
    const struct rlink *links[2] = { &rs_cmd, &rs_sub };
    static const char *const keys[2] = { "redis", "redis_subscriber" };
    char name[64];

    for (int i = 0; i < 2; i++) {
        const struct rlink *l = links[i];
        int n = 0;
        const struct rcmd *c;
        TAILQ_FOREACH(c, &l->pending, q)
            n++;
        snprintf(name, sizeof(name), "%s_state", keys[i]);
        s->str(s, name, "Redis link state: down, resolving, connecting, handshake, up", rstore_state_name(l));
        snprintf(name, sizeof(name), "%s_last_error", keys[i]);
        s->str(s, name, "Why the Redis link last failed (empty: never)", l->last_error);
        snprintf(name, sizeof(name), "%s_pending", keys[i]);
        s->num(s, SK_GAUGE, name, "Commands sent on the link and not yet answered", NULL, n);
        snprintf(name, sizeof(name), "%s_reconnects", keys[i]);
        s->num(s, SK_COUNTER, name, "Connection attempts after the first", NULL,
               (double)(l->connects ? l->connects - 1 : 0));
    }
}
