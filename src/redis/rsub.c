/* SPDX-License-Identifier: BSD-3-Clause */
/* rsub.c - the channels this daemon listens on: a record key's own notice
 * channel while a fill here waits on that key (docs/design.md, "Notices").
 *
 * Each channel is wanted by a count of listeners and set up once, on the
 * subscriber link that serves it (the one server, or the cluster node of
 * its slot: sharded pub/sub, so a notice costs Redis one delivery per
 * daemon that waits, never one per daemon connected). Work is batched:
 * listen and unlisten only mark a channel, and one pass per loop turn
 * sends what changed, so a stampede of misses writes its SSUBSCRIBEs in
 * one go. A channel whose link is down, or whose slot moved, is set up
 * again where it belongs (a retry timer while any waits for a link);
 * meanwhile its waiters poll. Past RSUB_MAX channels nothing more is set
 * up: those waiters poll too. */
#include "core.h"
#include "rsub.h"
#include "rlink.h"
#include "log.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define RSUB_MAX 10000
#define RSUB_RETRY_MS 100

enum rsub_state { RSC_IDLE, RSC_SENT, RSC_ON };

struct rsub_chan {
    struct rsub_chan *hnext;
    TAILQ_ENTRY(rsub_chan) todo;        /* on rsub_todo while it has work */
    struct rlink *link;                 /* where it is (being) set up; NULL: nowhere */
    enum rsub_state state;
    int refs;
    bool queued;
    size_t len;
    char name[];
};

static struct rsub_chan **rsub_buckets;
static size_t rsub_size, rsub_count;
static TAILQ_HEAD(, rsub_chan) rsub_todo = TAILQ_HEAD_INITIALIZER(rsub_todo);
static struct event *rsub_flush_ev, *rsub_retry_ev;
static bool rsub_flush_due, rsub_plain;
static struct rlink *(*rsub_place)(const char *chan, size_t len);
static void (*rsub_stale)(void);

static struct rsub_chan **rsub_slot(const char *chan, size_t len)
{
    struct rsub_chan **pp = &rsub_buckets[cs_hash(chan, len) & (rsub_size - 1)];

    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, chan, len) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static struct rsub_chan *rsub_find(const char *chan, size_t len)
{
    return rsub_size ? *rsub_slot(chan, len) : NULL;
}

static void rsub_grow(void)
{
    size_t nsize = rsub_size ? rsub_size * 2 : 256;
    struct rsub_chan **nb = cs_calloc(nsize, sizeof(*nb));

    for (size_t i = 0; i < rsub_size; i++) {
        struct rsub_chan *c = rsub_buckets[i], *next;
        for (; c; c = next) {
            size_t b = cs_hash(c->name, c->len) & (nsize - 1);
            next = c->hnext;
            c->hnext = nb[b];
            nb[b] = c;
        }
    }
    free(rsub_buckets);
    rsub_buckets = nb;
    rsub_size = nsize;
}

static void rsub_schedule(struct rsub_chan *c)
{
    if (!c->queued) {
        c->queued = true;
        TAILQ_INSERT_TAIL(&rsub_todo, c, todo);
    }
    if (!rsub_flush_due) {
        rsub_flush_due = true;
        event_active(rsub_flush_ev, EV_TIMEOUT, 1);
    }
}

static void rsub_drop(struct rsub_chan *c)
{
    struct rsub_chan **pp = rsub_slot(c->name, c->len);

    *pp = c->hnext;
    rsub_count--;
    free(c);
}

static void rsub_retry_later(void)
{
    struct timeval tv;

    if (evtimer_pending(rsub_retry_ev, NULL))
        return;
    cs_ms_tv(&tv, RSUB_RETRY_MS);
    evtimer_add(rsub_retry_ev, &tv);
}

/* Back to nowhere: set up again on the next pass, or (LATER) at the next
 * retry, so that a refusal is not sent again at once. */
static void rsub_unplace(struct rsub_chan *c, bool later)
{
    c->link = NULL;
    c->state = RSC_IDLE;
    if (c->refs > 0 && !later)
        rsub_schedule(c);
    else if (c->refs > 0)
        rsub_retry_later();
}

/* One channel's work: end it (nobody listens), or set it up where it
 * belongs. Returns false when it must wait for a link. */
static bool rsub_work(struct rsub_chan *c)
{
    struct rlink *link;

    if (c->refs == 0) {
        if (c->state != RSC_IDLE && c->link && rlink_up(c->link) &&
            rlink_listen(c->link, false, rsub_plain, c->name, c->len) != CS_OK)
            log_debug("redis subscriber: cannot end %.*s", (int)c->len, c->name);
        rsub_drop(c);
        return true;
    }
    if (c->state != RSC_IDLE)
        return true;
    link = rsub_place(c->name, c->len);
    if (!link || !rlink_up(link) || rlink_listen(link, true, rsub_plain, c->name, c->len) != CS_OK)
        return false;
    c->link = link;
    c->state = RSC_SENT;
    stats_c.notice_subscribes++;
    return true;
}

static void rsub_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rsub_chan *c;
    bool waiting = false;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    rsub_flush_due = false;
    while ((c = TAILQ_FIRST(&rsub_todo))) {
        TAILQ_REMOVE(&rsub_todo, c, todo);
        c->queued = false;
        if (!rsub_work(c))
            waiting = true;
    }
    if (waiting)
        rsub_retry_later();
}

/* Channels that found no link: try again. */
static void rsub_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    for (size_t i = 0; i < rsub_size; i++)
        for (struct rsub_chan *c = rsub_buckets[i]; c; c = c->hnext)
            if (c->state == RSC_IDLE && c->refs > 0)
                rsub_schedule(c);
}

void rsub_init(struct rlink *(*place)(const char *chan, size_t len), void (*stale)(void))
{
    rsub_place = place;
    rsub_stale = stale;
    rsub_flush_ev = event_new(cs_base, -1, 0, rsub_flush_cb, NULL);
    rsub_retry_ev = evtimer_new(cs_base, rsub_retry_cb, NULL);
}

void rsub_free(void)
{
    for (size_t i = 0; i < rsub_size; i++) {
        struct rsub_chan *c, *next;
        for (c = rsub_buckets[i]; c; c = next) {
            next = c->hnext;
            free(c);
        }
    }
    free(rsub_buckets);
    rsub_buckets = NULL;
    rsub_size = rsub_count = 0;
    TAILQ_INIT(&rsub_todo);
    if (rsub_flush_ev)
        event_free(rsub_flush_ev);
    if (rsub_retry_ev)
        event_free(rsub_retry_ev);
    rsub_flush_ev = rsub_retry_ev = NULL;
    rsub_flush_due = false;
}

enum rstore_listen rsub_listen(const char *chan, size_t len)
{
    struct rsub_chan *c = rsub_find(chan, len);

    if (!c) {
        if (rsub_count >= RSUB_MAX) {
            log_limited(LOG_INFO, "redis subscriber: %d key channels already: waiters poll", RSUB_MAX);
            return RL_FULL;
        }
        if (rsub_count + 1 > rsub_size / 2)
            rsub_grow();
        struct rsub_chan **head;
        c = cs_calloc(1, sizeof(*c) + len);
        c->len = len;
        memcpy(c->name, chan, len);
        head = &rsub_buckets[cs_hash(chan, len) & (rsub_size - 1)];
        c->hnext = *head;
        *head = c;
        rsub_count++;
    }
    if (c->refs++ == 0 && c->state == RSC_IDLE)
        rsub_schedule(c);
    return c->state == RSC_ON ? RL_ON : RL_PENDING;
}

void rsub_unlisten(const char *chan, size_t len)
{
    struct rsub_chan *c = rsub_find(chan, len);

    if (c && c->refs > 0 && --c->refs == 0)
        rsub_schedule(c);
}

/* A new connection has no channels: those placed on its link (before a
 * drop, or a move to another server, which tells no one) go again. */
void rsub_link_gone(struct rlink *n)
{
    for (size_t i = 0; i < rsub_size; i++)
        for (struct rsub_chan *c = rsub_buckets[i]; c; c = c->hnext)
            if (c->link == n)
                rsub_unplace(c, true);
}

static void rsub_link_up(struct rlink *n, void *owner)
{
    CS_UNUSED(owner);
    rsub_link_gone(n);
    rsub_retry_cb(-1, 0, NULL);
    /* Notices published while we were away are lost. */
    if (rstore_on_subscribed)
        rstore_on_subscribed();
}

static void rsub_link_down(struct rlink *n, void *owner)
{
    CS_UNUSED(owner);
    rsub_link_gone(n);
}

static void rsub_listened(struct rlink *n, void *owner, const char *chan, size_t len, bool on, const char *err)
{
    struct rsub_chan *c = rsub_find(chan, len);

    CS_UNUSED(owner);
    if (!c || c->link != n || (!on && !err))
        return;                 /* an unsubscribe we asked for, or a channel gone meanwhile */
    if (on && !err) {
        c->state = RSC_ON;
        if (c->refs > 0 && rstore_on_listening)
            rstore_on_listening(c->name, c->len);
        return;
    }
    if (on && !rsub_plain && strncmp(err, "ERR unknown command", 19) == 0) {
        log_notice("redis subscriber: no sharded pub/sub (Redis before 7): SUBSCRIBE instead");
        rsub_plain = true;
        rsub_unplace(c, false);
        return;
    }
    if (on)
        log_limited(LOG_WARNING, "redis subscriber: %s refused %.*s: %s", rlink_name(n), (int)len, chan, err);
    /* Refused (MOVED: our slot map is old), or dropped by Redis (its slot
     * moved): the map is read again, and the channel set up where it is
     * then. */
    if (rsub_stale)
        rsub_stale();
    rsub_unplace(c, true);
}

static void rsub_message(struct rlink *n, void *owner, const redisReply *msg)
{
    const redisReply *ch = msg->element[1], *m = msg->element[2];

    CS_UNUSED(n);
    CS_UNUSED(owner);
    stats_c.notices_received++;
    if (rstore_on_notice && m->type == REDIS_REPLY_STRING)
        rstore_on_notice(ch->str, (size_t)ch->len, m->str, (size_t)m->len);
}

const struct rlink_hooks rsub_hooks = { .up = rsub_link_up, .down = rsub_link_down,
                                        .message = rsub_message, .listened = rsub_listened };

void rsub_replace(void)
{
    for (size_t i = 0; i < rsub_size; i++) {
        for (struct rsub_chan *c = rsub_buckets[i]; c; c = c->hnext) {
            if (c->state == RSC_IDLE || c->refs == 0 || rsub_place(c->name, c->len) == c->link)
                continue;
            if (rlink_up(c->link) && rlink_listen(c->link, false, rsub_plain, c->name, c->len) != CS_OK)
                log_debug("redis subscriber: cannot end %.*s", (int)c->len, c->name);
            rsub_unplace(c, false);
        }
    }
}

int rsub_channels(void)
{
    int on = 0;

    for (size_t i = 0; i < rsub_size; i++)
        for (const struct rsub_chan *c = rsub_buckets[i]; c; c = c->hnext)
            on += c->state == RSC_ON;
    return on;
}

void rsub_report(struct stats_sink *s)
{
    s->num(s, SK_GAUGE, "notice_channels", "Key channels this daemon listens on now (waiting fills)", NULL,
           rsub_channels());
}
