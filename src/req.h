/* SPDX-License-Identifier: BSD-3-Clause */
/* req.h - one client request, and its place in its connection's reply
 * order (req.c). */
#ifndef CS_REQ_H
#define CS_REQ_H

#include "core.h"
#include "order.h"

struct cmd_def;
struct resp_args;
struct stats_ns;

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
    bool resp3;                     /* its reply in RESP3 (the connection sent HELLO 3 before it) */
    bool exec;                      /* an EXEC's command: its reply is an element of EXEC's array */
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

/* A request of c's with copies of a's arguments, last in c's reply order;
 * t0_us is when it arrived (cs_mono_us() of the read pass). */
struct req *req_new(struct conn *c, const struct resp_args *a, int64_t t0_us);
/* Where the reply to r goes: the socket's buffer when it is r's turn. */
struct evbuffer *req_out(struct req *r);
/* r's reply is complete: send what is in order, free r. */
void req_done(struct req *r);
/* A transaction's command (multi.c): r, the newest request of its
 * connection, leaves the reply order, and no longer counts as in flight,
 * until req_rejoin or req_discard; returns the request that took its
 * place, for the caller to answer (+QUEUED). */
struct req *req_set_aside(struct req *r);
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
