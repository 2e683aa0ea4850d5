/* SPDX-License-Identifier: BSD-3-Clause */
/* rio.h - a Redis link's I/O under hiredis: its own libevent events (in
 * place of hiredis's adapter), its commands appended to hiredis's output
 * buffer, its replies parsed in its own input buffer (rreply.c) and
 * handed to its owner in order. hiredis still connects, and drops the
 * link on an error. rnode.c and rdial.c embed one per link. */
#ifndef CS_RIO_H
#define CS_RIO_H

#include "core.h"
#include "rreply.h"

#include <hiredis/async.h>
#include <event2/event_struct.h>

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
    /* Replies: read into in, parsed into arena, handed to on_reply. */
    struct rreply_arena *arena;
    void (*on_reply)(void *owner, struct redisReply *r);
    void *owner;
    char *in;
    size_t in_cap, in_len, in_pos;      /* in[in_pos, in_len): not parsed yet */
    bool scanning;              /* in_pos starts a reply only partly read */
    struct rreply_scan scan;
    uint64_t in_total;          /* bytes read since the attach */
};

/* A new context: its events to e, each reply on it to ON_REPLY (built in
 * A, valid during the call), in the order the replies come. */
void rio_attach(struct rio_events *e, redisAsyncContext *ac, struct rreply_arena *a,
                void (*on_reply)(void *owner, struct redisReply *r), void *owner);
/* Queues a command (RESP) on the attached context: written at the end of
 * the pass. CS_ERR: no context, or it is failing. */
int rio_send(struct rio_events *e, const char *cmd, size_t len) CS_WUR;
/* What e keeps between contexts, freed (the link going away). */
void rio_release(struct rio_events *e);
/* Writes what every link has queued now, not at the end of the pass. */
void rio_flush(void);

#endif
