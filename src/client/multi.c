/* SPDX-License-Identifier: BSD-3-Clause */
/* multi.c - transactions: MULTI, EXEC, DISCARD, and WATCH refused.
 *
 * Redis runs the commands of a transaction one after the other with no
 * other client's command in between. cachasided cannot hold Redis, nor
 * the upstream, for that, so its transactions promise less and say so
 * (docs/protocol.md, "Transactions"): commands are checked and queued as
 * Redis queues them, with Redis's replies and errors, and EXEC runs them
 * as the connection's next requests, in order. The per-key ordering every
 * request has (order.c) then makes them take effect in the order they
 * were queued, and before anything sent after EXEC; other connections'
 * commands may come in between. WATCH cannot be honoured over a cache
 * (a write through Redis or another daemon is not seen here), so it is
 * refused rather than pretended.
 *
 * EXEC's reply is one array: EXEC writes the array's header in its own
 * place of the connection's reply order, and its commands follow it
 * there, each answering one element (an error too, as in Redis). An
 * array is its header followed by its elements, so nothing is gathered
 * or copied: the reply order (req.c) puts the elements in place, and
 * conn.c holds what is answered before an unanswered element, so that a
 * transaction sent in one write is answered in one (conn_exec_hold).
 *
 * Bounds: a queued command has been answered (+QUEUED) and waits outside
 * the reply order, holding its arguments. A transaction queues at most
 * max_inflight_per_client commands holding 64 x max_request_bytes, the
 * bounds of a pipeline's unanswered requests; one more is refused and
 * dooms the transaction, whose later commands are then answered +QUEUED
 * and dropped (as Redis does), so it holds no more. EXEC's commands are
 * started by conn.c as it starts pipelined requests (32 a pass, apart
 * from the 32 it may parse, while the client has room in flight and fewer
 * than 64 reads at Redis), before anything sent after EXEC is parsed;
 * their replies count in the output limit as any reply does. A
 * transaction costs what the same commands pipelined cost, plus its
 * +QUEUED replies (written straight out, req_set_aside) and the key checks
 * made when queued, which a read run under the same configuration does
 * not repeat. */
#include "core.h"
#include "multi.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "keys.h"
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct multi {
    TAILQ_HEAD(, req) q;        /* queued, in order; after EXEC, those not started */
    int n;                      /* queued */
    size_t bytes;               /* their requests' blocks */
    bool dirty;                 /* a command was refused: EXEC answers EXECABORT */
    bool running;               /* EXEC: conn.c starts q */
};

static const char multi_watch_msg[] =
    "ERR WATCH is not supported: cachasided cannot promise optimistic locking over a cache "
    "(see docs/protocol.md)";

static void multi_reply(struct req *r, const char *status, const char *err)
{
    if (err)
        resp_error(req_out(r), err);
    else
        resp_simple(req_out(r), status);
    req_done(r);
}

/* Drops what is queued; the transaction goes on, doomed. */
static void multi_drop_queue(struct multi *m)
{
    struct req *r;

    while ((r = TAILQ_FIRST(&m->q)) != NULL) {
        TAILQ_REMOVE(&m->q, r, q);
        req_discard(r);
    }
    m->n = 0;
    m->bytes = 0;
}

static void multi_end(struct conn *c)
{
    if (!c->multi)
        return;
    multi_drop_queue(c->multi);
    free(c->multi);
    c->multi = NULL;
}

int multi_queued(const struct multi *m)
{
    return m && !m->running ? m->n : -1;
}

void multi_cmd_multi(struct req *r)
{
    struct conn *c = r->conn;
    struct multi *m;

    if (c && c->multi) {
        multi_reply(r, NULL, "ERR MULTI calls can not be nested");
        return;
    }
    if (c) {
        m = cs_calloc(1, sizeof(*m));
        TAILQ_INIT(&m->q);
        c->multi = m;
    }
    multi_reply(r, "OK", NULL);
}

void multi_cmd_exec(struct req *r)
{
    struct conn *c = r->conn;
    struct multi *m = c ? c->multi : NULL;

    if (!m) {
        multi_reply(r, NULL, "ERR EXEC without MULTI");
        return;
    }
    if (m->dirty) {
        multi_end(c);
        multi_reply(r, NULL, "EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    resp_array(req_out(r), m->n);
    if (m->n == 0)
        multi_end(c);
    else
        m->running = true;      /* conn.c starts them before it parses on */
    req_done(r);
}

void multi_cmd_discard(struct req *r)
{
    struct conn *c = r->conn;

    if (!c || !c->multi) {
        multi_reply(r, NULL, "ERR DISCARD without MULTI");
        return;
    }
    multi_end(c);
    multi_reply(r, "OK", NULL);
}

void multi_cmd_watch(struct req *r)
{
    if (r->conn && r->conn->multi)
        multi_reply(r, NULL, "ERR WATCH inside MULTI is not allowed");
    else
        multi_reply(r, NULL, multi_watch_msg);
}

/* Nothing is ever watched (WATCH is refused), so there is nothing to
 * unwatch and +OK is true; clients send it when they reset a pipeline. */
void multi_cmd_unwatch(struct req *r)
{
    multi_reply(r, "OK", NULL);
}

/* What the command would refuse before it asks Redis for anything: a bad
 * key or an unknown namespace. Refused at queue time, like an unknown
 * command; what depends on more than the command's text (WRONGTYPE, as
 * in Redis, and every error of Redis or the upstream) is an element of
 * EXEC's reply. A single key's namespace is kept for the read (cq.ns):
 * when EXEC runs it under the same configuration, the key is not parsed
 * again (req_rejoin drops it after a reload). */
static bool multi_keys_ok(struct req *r, char *err, size_t errsz)
{
    const struct cmd_def *d = r->cmd;
    const struct cs_ns *ns = NULL;
    struct cs_str id;
    int last = command_last_key(d, r->argc);

    for (int i = d->first; d->first && i <= last; i += d->step) {
        if ((d->flags & CMD_PATTERN) ? keys_parse_glob(r->conf, r->argv[i], &ns, &id, err, errsz) != CS_OK
                                     : keys_parse(r->conf, r->argv[i], &ns, &id, err, errsz) != CS_OK)
            return false;
    }
    if (d->first == 1 && last == 1 && !(d->flags & CMD_PATTERN))
        r->cq.ns = ns;
    return true;
}

/* A refused command dooms the transaction: what was queued can never run. */
static void multi_refuse(struct req *r, struct multi *m, const char *msg)
{
    m->dirty = true;
    multi_drop_queue(m);
    multi_reply(r, NULL, msg);
}

bool multi_queue(struct req *r)
{
    struct conn *c = r->conn;
    struct multi *m = c ? c->multi : NULL;
    char err[200];

    if (!m || (r->cmd->flags & CMD_NOQUEUE))
        return false;
    if (!multi_keys_ok(r, err, sizeof(err))) {
        multi_refuse(r, m, err);
        return true;
    }
    if (m->dirty) {
        multi_reply(r, "QUEUED", NULL);     /* never runs: nothing kept */
        return true;
    }
    if (m->n >= r->conf->max_inflight_per_client) {
        multi_refuse(r, m, "ERR transaction too long (over max_inflight_per_client commands)");
        return true;
    }
    if (m->bytes + r->bytes > (size_t)r->conf->max_request_bytes * CONN_FRAME_FACTOR) {
        multi_refuse(r, m, "ERR transaction too large (over 64 x max_request_bytes of commands)");
        return true;
    }
    req_set_aside(r, "QUEUED");
    TAILQ_INSERT_TAIL(&m->q, r, q);
    m->n++;
    m->bytes += r->bytes;
    return true;
}

bool multi_refused(struct req *r, const char *msg)
{
    struct conn *c = r->conn;
    struct multi *m = c ? c->multi : NULL;

    if (!m)
        return false;
    if (r->cmd && (r->cmd->flags & CMD_EXEC)) {
        char err[256];
        snprintf(err, sizeof(err), "EXECABORT Transaction discarded because of: %s",
                 strncmp(msg, "ERR ", 4) == 0 ? msg + 4 : msg);
        multi_end(c);
        multi_reply(r, NULL, err);
        return true;
    }
    m->dirty = true;
    multi_drop_queue(m);
    return false;
}

bool multi_pending(const struct multi *m)
{
    return m->running;
}

void multi_start_next(struct conn *c)
{
    struct multi *m = c->multi;
    struct req *r = TAILQ_FIRST(&m->q);

    TAILQ_REMOVE(&m->q, r, q);
    if (TAILQ_EMPTY(&m->q))
        multi_end(c);
    req_rejoin(r, cs_clock_us());
    command_run(r);
}

void multi_close(struct conn *c)
{
    multi_end(c);
}
