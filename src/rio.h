/* rio.h - a Redis link's I/O under hiredis: its own libevent events (in
 * place of hiredis's adapter) and its replies in an arena (in place of a
 * malloc'd tree per reply). rnode.c and rdial.c embed one of each per link. */
#ifndef CS_RIO_H
#define CS_RIO_H

#include "core.h"

#include <hiredis/async.h>
#include <event2/event_struct.h>

/* Reply objects of one link. A reader builds one reply at a time and frees
 * it (freeObject on the root) before it starts the next, so all of a
 * link's objects go at once. */
#define RIO_ARENA_SIZE 16384
struct rio_big;
struct rio_arena {
    size_t used;
    struct rio_big *big;        /* what did not fit, freed with the rest */
    _Alignas(16) char buf[RIO_ARENA_SIZE];
};

/* The read event persists; what a loop pass queued for Redis is written
 * at its end (as the clients' replies are); EV_WRITE is waited for only
 * after a short write, or while connecting. */
struct rio_events {
    redisAsyncContext *ac;      /* NULL: detached */
    struct event rev, wev;
    bool reading, writing;      /* rev / wev added */
    bool due;                   /* a write at the end of this pass: on the due list */
    TAILQ_ENTRY(rio_events) due_link;
    bool flushing;              /* inside that write */
};

/* A new context: its replies go to a (emptied first), its events to e. */
void rio_attach(struct rio_events *e, struct rio_arena *a, redisAsyncContext *ac);
/* What the arena holds beyond its own buffer, freed (a link going away). */
void rio_arena_reset(struct rio_arena *a);
/* Writes what every link has queued now, not at the end of the pass. */
void rio_flush(void);

#endif
