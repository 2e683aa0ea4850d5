/* SPDX-License-Identifier: BSD-3-Clause */
/* order.h - one connection's commands on a key take effect in the order
 * they were sent, as in Redis: a command that reads or changes a key's
 * cache entry starts only once every earlier command of its connection on
 * that key has been answered. Reads of a key may run side by side (they
 * share one fill); other keys and other connections are never held up. */
#ifndef CS_ORDER_H
#define CS_ORDER_H

#include "core.h"

struct order_node;
struct order_entry;

/* A request's place in its connection's ordering (inside struct req). */
struct order_req {
    TAILQ_ENTRY(req) ready;         /* its turn has come: on the run list */
    struct order_node *nodes;       /* waiting: its places in key queues */
    int wait;                       /* keys it still waits for */
    unsigned char state;            /* enum order_state in order.c */
};

/* A connection's keys with unanswered commands (inside struct conn). */
struct order_conn {
    struct order_entry *tab;        /* open addressing by key hash */
    uint32_t cap, used;
    int nkeyed;                     /* unanswered commands that have keys */
    int nlight;                     /* of those, running and not in tab */
    bool light_excl;                /* the one light command is not a read */
    uint64_t pass;                  /* marks the entries one walk has seen */
};

/* From command_dispatch, for a command with keys: true = run it now;
 * false = it waits, and order runs it (r->cmd->proc) when its turn comes. */
bool order_admit(struct req *r) CS_WUR;
/* From req_done while the client is there: frees r's keys and runs the
 * commands whose turn has come. */
void order_done(struct req *r);
/* From conn_close for an unanswered request: true if it was still
 * waiting for its turn (nobody else holds it: the caller frees it). */
bool order_drop(struct req *r) CS_WUR;
/* From conn_close, after order_drop on every request. */
void order_close(struct order_conn *o);

#endif
