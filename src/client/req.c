/* SPDX-License-Identifier: BSD-3-Clause */
/* req.c - a client request and its place in its connection's reply order.
 *
 * A connection (conn.c) parses a request and hands it here: req_new copies
 * its arguments into one block, so nothing points into the input buffers
 * once it is dispatched, and queues it last on the connection. Commands
 * answer in any order (a hit before an earlier miss), but replies must go
 * out in the order the requests came: req_out gives the connection's own
 * output buffer to the request at the head of the queue and a stash of
 * its own to any other, and req_done moves every finished request at the
 * head into the output buffer, stash by stash, then frees it. What is
 * stashed counts against the client's output limit like what is written.
 *
 * Ownership: the queue owns its requests. A client that goes away first
 * leaves the requests someone else holds (a Redis callback, a flight) with
 * conn set to NULL; that holder's req_done frees them (req_close_all).
 * A command queued by MULTI is set aside, answered +QUEUED in its place,
 * and owned by the transaction (multi.c) until EXEC brings it back.
 *
 * Small requests, which are nearly all of them, come from a pool of
 * blocks of one size, so a hit allocates nothing once the daemon is warm;
 * the pool keeps at most REQ_PER_CONN blocks per open connection. */
#include "core.h"
#include "req.h"
#include "command.h"
#include "conn.h"
#include "config.h"
#include "resp.h"
#include "stats.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define REQ_POOL_MAX 1024           /* spare request blocks kept */
#define REQ_BLOCK 512               /* requests this small come from the block pool */
#define REQ_PER_CONN 16             /* spare blocks per open connection: a -P 16 pipeline's worth */

const struct req_conn_ops *req_conn;

void req_set_conn_ops(const struct req_conn_ops *ops)
{
    req_conn = ops;
}

static void *req_pool[REQ_POOL_MAX];
static int req_spare;

static void *req_alloc(size_t need)
{
    if (need > REQ_BLOCK)
        return cs_malloc(need);
    return req_spare ? req_pool[--req_spare] : cs_malloc(REQ_BLOCK);
}

static void req_release(void *p, size_t need)
{
    if (need <= REQ_BLOCK && req_spare < REQ_POOL_MAX && req_spare < REQ_PER_CONN * conn_count && !cs_exiting)
        req_pool[req_spare++] = p;
    else
        free(p);
}

void req_pool_trim(void)
{
    while (req_spare > REQ_PER_CONN * conn_count)
        free(req_pool[--req_spare]);
}

static void req_free(struct req *r)
{
    if (r->cq.state_free)
        r->cq.state_free(r->cq.state);
    if (r->stash)
        evbuffer_free(r->stash);
    config_unref(r->conf);
    req_release(r, r->bytes);
}

struct req *req_new(struct conn *c, const struct resp_args *a, int64_t t0_us)
{
    size_t need = sizeof(struct req) + sizeof(struct cs_str) * (size_t)a->argc;
    struct req *r;
    char *p;

    for (int i = 0; i < a->argc; i++)
        need += a->argv[i].len + 1;
    r = req_alloc(need);
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->resp3 = c->resp3;        /* as it is now: HELLO 3 changes the replies that follow it */
    r->bytes = need;
    r->cq.outcome = -1;
    r->t0_us = t0_us;
    r->conf = config_ref(cs_conf);
    r->argc = a->argc;
    r->argv = (struct cs_str *)(r + 1);
    p = (char *)(r->argv + a->argc);
    for (int i = 0; i < a->argc; i++) {
        memcpy(p, a->argv[i].p, a->argv[i].len);
        p[a->argv[i].len] = '\0';   /* handy for logging and lookups */
        r->argv[i].p = p;
        r->argv[i].len = a->argv[i].len;
        p += a->argv[i].len + 1;
    }
    TAILQ_INSERT_TAIL(&c->reqs, r, q);
    c->inflight++;
    c->qbytes += need;
    return r;
}

/* The connection's output buffer, as conn_out: no call on the hit path
 * once it exists. */
static struct evbuffer *req_conn_out(struct conn *c)
{
    return c->out ? c->out : req_conn->out_get(c);
}

struct evbuffer *req_out(struct req *r)
{
    if (r->conn && TAILQ_FIRST(&r->conn->reqs) == r)
        return req_conn_out(r->conn);
    if (!r->stash)
        r->stash = evbuffer_new();
    return r->stash;
}

#define REQ_OF(q) ((struct req *)((char *)(q) - offsetof(struct req, cq)))

static struct evbuffer *req_cache_out(struct cache_req *q)
{
    return req_out(REQ_OF(q));
}

static void req_cache_done(struct cache_req *q)
{
    req_done(REQ_OF(q));
}

static void req_cache_sent(struct cache_req *q)
{
    req_conn->redis_sent(REQ_OF(q)->conn);
}

static void req_cache_answered(struct cache_req *q)
{
    req_conn->redis_answered(REQ_OF(q)->conn);
}

static const struct cache_io req_cache_io = {
    req_cache_out, req_cache_done, req_cache_sent, req_cache_answered,
};

struct cache_req *req_cache(struct req *r)
{
    struct cache_req *q = &r->cq;

    q->io = &req_cache_io;
    q->conf = r->conf;
    q->name = r->cmd->name;
    q->argv = r->argv;
    q->argc = r->argc;
    q->shape = r->cmd->shape;
    q->resp3 = r->resp3;
    q->gone = !r->conn;
    return q;
}

void req_done(struct req *r)
{
    struct conn *c = r->conn;
    struct req *h;
    int64_t now_us = cs_clock_us();

    r->done = true;
    if (r->cq.outcome >= 0) {
        /* A read that named no namespace (refused) counts under "". */
        struct stats_ns *n = r->cq.nss ? r->cq.nss : stats_ns_get("", 0);
        stats_observe((enum stats_hist_id)r->cq.outcome, (uint64_t)(now_us - r->t0_us));
        n->reads[r->cq.outcome]++;
        if (r->cq.outcome == SH_REQ_ERROR && r->cq.nss)
            r->cq.nss->errors++;
    }
    if (!c) {
        req_free(r);
        return;
    }
    c->last_active = now_us / 1000;     /* cs_mono_ms() */
    if (r->stash)
        c->stashed += evbuffer_get_length(r->stash);
    order_done(r);              /* may run later commands on its keys */
    while ((h = TAILQ_FIRST(&c->reqs)) != NULL && h->done) {
        TAILQ_REMOVE(&c->reqs, h, q);
        c->inflight--;
        c->qbytes -= h->bytes;
        if (h->stash) {
            c->stashed -= evbuffer_get_length(h->stash);
            evbuffer_add_buffer(req_conn_out(c), h->stash);
        }
        req_free(h);
    }
    req_conn->answered(c);
}

/* The reply in r's place: when r heads the reply order, nothing before it
 * is unanswered and the reply goes straight to the output; otherwise a
 * stand-in request holds r's place, and answers when its turn comes. A
 * pipelined transaction's commands all head the order as they are queued
 * (MULTI was answered at once), so they cost no stand-in. */
void req_set_aside(struct req *r, const char *status)
{
    struct conn *c = r->conn;
    bool head = TAILQ_FIRST(&c->reqs) == r;
    struct req *in_place = NULL;

    if (!head) {
        struct resp_args none = { 0 };
        in_place = req_new(c, &none, r->t0_us);     /* last, right after r */
    }
    TAILQ_REMOVE(&c->reqs, r, q);
    c->inflight--;
    c->qbytes -= r->bytes;
    if (in_place) {
        resp_simple(req_out(in_place), status);
        req_done(in_place);
        return;
    }
    resp_simple(req_conn_out(c), status);
    c->last_active = cs_clock_us() / 1000;      /* as req_done */
    req_conn->answered(c);
}

void req_rejoin(struct req *r, int64_t t0_us)
{
    struct conn *c = r->conn;

    /* A reload since it was queued applies: the namespace its key was
     * checked under (multi.c) may be gone. r's reference keeps the old
     * configuration alive, so a new one can never share its address: the
     * same pointer is the same configuration. */
    if (r->conf != cs_conf) {
        config_unref(r->conf);
        r->conf = config_ref(cs_conf);
        r->cq.ns = NULL;
    }
    r->resp3 = c->resp3;                /* so does a HELLO queued before it */
    r->t0_us = t0_us;
    r->exec = true;                     /* only EXEC brings a request back */
    TAILQ_INSERT_TAIL(&c->reqs, r, q);
    c->inflight++;
    c->qbytes += r->bytes;
}

void req_discard(struct req *r)
{
    req_free(r);
}

void req_close_all(struct conn *c)
{
    struct req *r;

    while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
        TAILQ_REMOVE(&c->reqs, r, q);
        if (r->done || order_drop(r)) {
            req_free(r);
        } else {
            r->conn = NULL;     /* its owner frees it when the answer comes */
            r->cq.gone = true;
        }
    }
}
