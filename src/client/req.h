/* SPDX-License-Identifier: BSD-3-Clause */
/* req.h - one client request, and its place in its connection's reply
 * order (req.c). */
#ifndef CS_REQ_H
#define CS_REQ_H

#include "core.h"
#include "cache.h"
#include "order.h"

struct cmd_def;
struct resp_args;

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
    int argc;
    struct cs_str *argv;            /* copies, in the same allocation */
    size_t bytes;                   /* of that allocation: the client's share */
    bool done;
    bool resp3;                     /* its reply in RESP3 (the connection sent HELLO 3 before it) */
    bool exec;                      /* an EXEC's command: its reply is an element of EXEC's array */
    /* A cache command's request side (req_cache): its state while it
     * runs, and a read's outcome (enum stats_hist_id, -1 for other
     * commands) and namespace figures, counted by req_done. */
    struct cache_req cq;
    struct order_req ord;           /* its turn among commands on its keys */
    int64_t t0_us;
};

/* What requests and commands need of their connection, which sits above
 * them: conn.c registers these (req_set_conn_ops) before the first
 * request, so nothing else of the client floor, nor the cache below it,
 * calls into conn.c. */
struct req_conn_ops {
    struct evbuffer *(*out_get)(struct conn *c);    /* its output buffer, taken from the pool */
    void (*answered)(struct conn *c);               /* replies went into out: write, read on */
    void (*redis_sent)(struct conn *c);             /* a read of c's went to Redis */
    void (*redis_answered)(struct conn *c);         /* ... and was answered */
    void (*drain)(struct conn *c);                  /* QUIT: close once everything is answered */
    void (*kill)(struct conn *c);                   /* CLIENT KILL (conn_kill) */
    uint64_t (*accepted)(void);                     /* connections accepted since start (INFO) */
    uint64_t (*requests)(void);                     /* requests dispatched since start (INFO) */
};
extern const struct req_conn_ops *req_conn;
void req_set_conn_ops(const struct req_conn_ops *ops);

/* A request of c's with copies of a's arguments, last in c's reply order;
 * t0_us is when it arrived (cs_mono_us() of the read pass). */
struct req *req_new(struct conn *c, const struct resp_args *a, int64_t t0_us);
/* Where the reply to r goes: the socket's buffer when it is r's turn. */
struct evbuffer *req_out(struct req *r);
/* r's request side for the cache floor, filled from r as its command
 * starts (the config and protocol of now: MULTI's rejoin may change them). */
struct cache_req *req_cache(struct req *r);
/* r's reply is complete: send what is in order, free r. */
void req_done(struct req *r);
/* A transaction's command (multi.c): r, the newest request of its
 * connection, leaves the reply order, and no longer counts as in flight,
 * until req_rejoin or req_discard; status (+QUEUED) is answered in its
 * place. */
void req_set_aside(struct req *r, const char *status);
/* r, set aside, becomes its connection's newest request again, under the
 * configuration of now; t0_us as req_new's. */
void req_rejoin(struct req *r, int64_t t0_us);
/* Frees r, set aside. */
void req_discard(struct req *r);
/* From conn_close: frees c's requests nobody else holds, and leaves the
 * others (at Redis, in a flight) to free themselves when answered. */
void req_close_all(struct conn *c);
/* Fewer connections: fewer spare request blocks. */
void req_pool_trim(void);

#endif
