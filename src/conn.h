/* conn.h - one client connection and the requests it has in flight. */
#ifndef CS_CONN_H
#define CS_CONN_H

#include "core.h"
#include "order.h"
#include "resp.h"

#include <event2/event_struct.h>

struct cmd_def;

/* One key's lookup within a request: MGET has one per key, every other
 * key command uses the request's own. */
struct req_slot {
    struct req *r;
    int i;
    struct evbuffer *el;        /* MGET: this key's element of the reply */
};

/* A request moves parsed -> (Redis lookup | flight) -> done. It is owned by
 * its connection's queue; when the client goes away first, conn is set to
 * NULL and whoever holds the request (a Redis callback, a flight) frees it
 * with req_done when its answer arrives; a request still waiting for its
 * turn (order.c) has no other owner and goes with its connection. */
struct req {
    TAILQ_ENTRY(req) q;
    struct conn *conn;
    struct evbuffer *stash;         /* reply finished before its turn */
    const struct cmd_def *cmd;
    struct cs_config *conf;         /* the config it started under (a ref) */
    const struct cs_ns *ns;         /* of argv[1], for key commands */
    int argc;
    struct cs_str *argv;            /* copies, in the same allocation */
    size_t bytes;                   /* of that allocation: the client's share */
    bool done;
    struct req_slot one;
    /* Per-command state of asynchronous commands (MGET, INVALIDATE). */
    int pending;
    long long count;
    void *state;
    void (*state_free)(void *);
    struct order_req ord;           /* its turn among commands on its keys */
    /* Read commands: the latency histogram it counts in (enum
     * stats_hist_id, -1 for other commands) and its namespace's figures. */
    int outcome;
    int64_t t0_us;
    struct stats_ns *nss;
};

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
    TAILQ_HEAD(, req) reqs;
    int inflight;                   /* requests whose reply is not yet in out */
    int rq;                         /* its reads waiting on Redis */
    bool authed;
    bool closing;                   /* QUIT or protocol error: close when flushed */
    bool reading;                   /* read event armed */
    bool overflow;                  /* over max_output_bytes_per_client: closing */
    bool more;                      /* parsed its share this pass; the rest is buffered */
    bool wwait;                     /* a short write: waiting for the socket to drain */
    int64_t last_active;
    struct order_conn ord;          /* keys with unanswered commands */
    TAILQ_ENTRY(conn) link;
};

TAILQ_HEAD(conn_list, conn);
extern struct conn_list conn_all;
extern int conn_count;

void conn_new(int fd, const char *peer);
void conn_close(struct conn *c, const char *why);
/* Stop reading new requests; close as soon as everything is answered. */
void conn_drain(struct conn *c);
void conn_sweep_idle(int64_t now, long long idle_ms);

/* A read of c's was sent to Redis / was answered: how many reads a client
 * may queue at Redis is bounded (conn.c), so a pipeline of a million costs
 * other clients a few hundred commands of waiting, not a million. */
void conn_redis_sent(struct conn *c);
void conn_redis_answered(struct conn *c);

/* Where the reply to r goes: the socket's buffer when it is r's turn. */
struct evbuffer *req_out(struct req *r);
/* r's reply is complete: send what is in order, free r. */
void req_done(struct req *r);

#endif
