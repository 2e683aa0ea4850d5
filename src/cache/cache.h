/* SPDX-License-Identifier: BSD-3-Clause */
/* cache.h - the read side of cache-aside: the hit path, and answering
 * requests from a Redis reply or a fill's outcome; and the request side
 * every cache command (reads here, writes in writes.c) is given. */
#ifndef CS_CACHE_H
#define CS_CACHE_H

#include "core.h"
#include "near.h"

struct cache_req;
struct evbuffer;
struct stats_ns;

/* A read's reply: what the client asked with which command. */
enum cache_shape {
    CACHE_NONE,                 /* not a read */
    CACHE_HGETALL,              /* the record's fields and values */
    CACHE_HGET,                 /* argv[2]'s value */
    CACHE_HMGET,                /* argv[2..]'s values, an array */
    CACHE_GET,                  /* the raw body */
    CACHE_MGET,                 /* argv[1..]'s bodies, an array */
};

/* What the cache needs of a request's owner (the client's request and
 * connection): given with each request, so the cache calls back through
 * these and never into the floor above it. */
struct cache_io {
    struct evbuffer *(*out)(struct cache_req *q);   /* where its reply goes now */
    void (*done)(struct cache_req *q);              /* its reply is complete: q may be freed */
    void (*redis_sent)(struct cache_req *q);        /* a read of its went to Redis (not when gone) */
    void (*redis_answered)(struct cache_req *q);    /* ... and was answered */
};

/* One key's lookup within a request: MGET has one per key, every other
 * key command uses the request's own. */
struct cache_slot {
    struct cache_req *q;
    int i;                      /* -1: the request's one key (argv[1]); else argv[1 + i] */
    struct evbuffer *el;        /* MGET: this key's element of the reply */
    struct near_ticket near;    /* when its read was sent (near_put) */
    bool whole;                 /* HGET/HMGET read the whole record (HGETALL) for the near cache */
};

/* The request side of a cache command. Its owner fills the first fields
 * before the command starts and frees state with state_free when done;
 * the rest is the command's while it runs. */
struct cache_req {
    const struct cache_io *io;
    struct cs_config *conf;     /* the config it runs under (the owner holds the ref) */
    const char *name;           /* the command's, lower case (traces) */
    const struct cs_str *argv;  /* argv[0] is the command's name as sent */
    int argc;
    enum cache_shape shape;     /* reads: the reply asked for */
    bool resp3;                 /* reply in RESP3 */
    bool gone;                  /* the client left: nothing to answer, only finish */
    /* Of argv[1], for single-key reads. Its owner may set it before the
     * read starts when it parsed argv[1] under conf (keys_parse), and the
     * read then checks only the namespace's format. */
    const struct cs_ns *ns;
    struct cache_slot one;
    int pending;                /* MGET: keys not yet answered */
    long long count;            /* reply bytes so far (MGET), entries removed (INVALIDATE) */
    void *state;
    void (*state_free)(void *);
    /* Reads: the latency histogram it counts in (enum stats_hist_id, -1
     * for other commands) and its namespace's figures, counted by the
     * owner when it is done. */
    int outcome;
    struct stats_ns *nss;
};

static inline struct evbuffer *cache_out(struct cache_req *q)
{
    return q->io->out(q);
}

static inline void cache_done(struct cache_req *q)
{
    q->io->done(q);
}

void cache_init(void);
/* Exit, before the Redis link goes: release the fill locks we hold. */
void cache_shutdown(void);
void cache_free(void);

/* The read commands: HGETALL, HGET, HMGET and GET (by q->shape), MGET,
 * TTL (seconds) and PTTL (milliseconds). */
void cache_read(struct cache_req *q);
void cache_mget(struct cache_req *q);
void cache_ttl(struct cache_req *q);
void cache_pttl(struct cache_req *q);

#endif
