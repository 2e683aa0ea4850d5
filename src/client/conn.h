/* SPDX-License-Identifier: BSD-3-Clause */
/* conn.h - one client connection: what its requests (req.h) see of it. */
#ifndef CS_CONN_H
#define CS_CONN_H

#include "core.h"
#include "order.h"
#include "req.h"
#include "resp.h"

#include <event2/event_struct.h>

/* What CLIENT SETNAME and CLIENT SETINFO set: allocated on the first one,
 * so a client that sets nothing holds a NULL pointer. */
struct conn_meta {
    char *name, *lib_name, *lib_ver;    /* NULL: not set */
};

/* CLIENT's flags of a connection (conn.cflags). */
#define CONN_F_NO_EVICT 0x01        /* CLIENT NO-EVICT on: shown, nothing to protect from */
#define CONN_F_READONLY 0x02        /* READONLY sent: shown, every read is served here anyway */

/* Fields are ordered to pack: an idle client is this struct alone. */
struct conn {
    uint64_t id;
    char peer[64];                  /* "[v6%scope]:port" fits */
    int fd;
    short evmask;                   /* what ev is added with, 0 = not added */
    short todo;                     /* CONN_TODO_*: on conn_todo, run at the end of the pass */
    /* One event, read and/or write as evmask says: writes are tried at the
     * end of each pass and wait for EV_WRITE only after a short write. */
    struct event ev;
    TAILQ_ENTRY(conn) todo_link;
    char *ibuf;                     /* only while a request is partial: NULL when idle */
    size_t ibuf_size, ilen, ipos;   /* allocated, received, parsed */
    struct resp_parser parse;       /* progress of the partial request */
    struct evbuffer *out;           /* NULL while nothing is waiting to go out (conn_out) */
    size_t stashed;                 /* reply bytes finished out of order, waiting their turn */
    size_t qbytes;                  /* bytes held by its queued requests */
    TAILQ_HEAD(, req) reqs;         /* in reply order (req.c) */
    int inflight;                   /* requests whose reply is not yet in out */
    int rq;                         /* its reads waiting on Redis */
    bool authed;
    bool resp3;                     /* HELLO 3: RESP3 replies from now on */
    bool closing;                   /* QUIT or protocol error: close when flushed */
    bool reading;                   /* read event armed */
    bool overflow;                  /* over max_output_bytes_per_client: closing */
    bool more;                      /* parsed its share this pass; the rest is buffered */
    bool wwait;                     /* a short write: waiting for the socket to drain */
    unsigned char cflags;           /* CONN_F_* */
    int64_t last_active;
    uint32_t born_s;                /* cs_mono_ms() / 1000 when accepted (CLIENT LIST's age) */
    unsigned char last_cmd;         /* its last command: command_at(last_cmd - 1), 0 = none yet */
    struct conn_meta *meta;         /* NULL until CLIENT SETNAME or SETINFO */
    struct order_conn ord;          /* keys with unanswered commands */
    struct multi *multi;            /* inside MULTI, or EXEC's commands to start (multi.c) */
    TAILQ_ENTRY(conn) link;
};

/* A RESP request, and the requests a client has queued, may hold this
 * many times max_request_bytes. */
#define CONN_FRAME_FACTOR 64

TAILQ_HEAD(conn_list, conn);
extern struct conn_list conn_all;
extern int conn_count;

/* Before the first connection: gives the requests (req.h) the calls they
 * make of their connection. */
void conn_init(void);
void conn_new(int fd, const char *peer);
void conn_close(struct conn *c, const char *why);
/* CLIENT KILL of another client: what it has answered in order goes out
 * (as far as the socket takes it at once), then it is closed; its
 * requests still under way finish without it, as after a disconnect. */
void conn_kill(struct conn *c);
/* Connections accepted and requests dispatched since start (INFO). */
uint64_t conn_accepted(void);
uint64_t conn_requests(void);
/* Stop reading new requests; close as soon as everything is answered. */
void conn_drain(struct conn *c);
void conn_sweep_idle(int64_t now, long long idle_ms);

/* A read of c's was sent to Redis / was answered: how many reads a client
 * may queue at Redis is bounded (conn.c), so a pipeline of a million costs
 * other clients a few hundred commands of waiting, not a million. */
void conn_redis_sent(struct conn *c);
void conn_redis_answered(struct conn *c);

/* c's output buffer, taken from the pool on first use (req_out, req_done). */
struct evbuffer *conn_out_get(struct conn *c);
static inline struct evbuffer *conn_out(struct conn *c)
{
    return c->out ? c->out : conn_out_get(c);
}
/* From req_done: replies went into out; write them at the end of the
 * pass, and read on if the queue has room again. */
void conn_answered(struct conn *c);

#endif
