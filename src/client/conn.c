/* SPDX-License-Identifier: BSD-3-Clause */
/* conn.c - one client: input buffer, parsing, backpressure, writing and
 * the output limit; its requests and their reply order are req.c's.
 *
 * Reads go into one buffer shared by every client; what is left of a
 * partial request is kept in the client's own buffer, so an idle client
 * holds no input buffer at all. Requests copy their arguments (req_new), so
 * nothing points into either buffer once a request is dispatched.
 *
 * Output is written at the end of the pass that produced it (a read, or a
 * batch of Redis replies: the conn_todo list, run from one event after
 * them), as Redis writes before it sleeps; a client's event waits for
 * EV_WRITE only after a short write. An idle client holds its struct with
 * one embedded event and nothing else: its output buffer goes back to a
 * pool once written. */
#include "core.h"
#include "conn.h"
#include "command.h"
#include "config.h"
#include "log.h"
#include "multi.h"
#include "rstore.h"
#include "stats.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONN_READ_SIZE 65536        /* one read into the shared buffer */
#define CONN_IBUF_MIN 1024          /* a client's own buffer starts at this */
#define CONN_WRITE_SLICE 262144     /* written per loop pass: a big reply never starves others */
#define CONN_ARGS_KEEP 1024         /* a larger shared argv is freed after use */
/* Requests one client may start per loop pass. Every client's Redis reads
 * share one pipelined connection: a client that pipelines thousands would
 * otherwise queue them all in front of everybody else's. As Redis does
 * with its per-read query chunk, the rest waits for the next pass. */
#define CONN_PASS_MAX 32
/* Every client's reads share one pipelined Redis connection, so what one
 * client queues there others wait behind: one client may have at most
 * CONN_REDIS_SHARE reads at Redis (a pipeline deeper than any client library
 * uses). A client paused at it has reads at Redis; their replies resume it. */
#define CONN_REDIS_SHARE 64
/* Before AUTH (with requirepass) a client is held to small requests, as
 * Redis 7 holds one (docs/protocol.md). */
#define CONN_NOAUTH_ARGS 10
#define CONN_NOAUTH_ARG 4096
#define CONN_NOAUTH_FRAME 16384
#define CONN_POOL_MAX 1024          /* spare output buffers kept */

enum { CONN_TODO_READ = 1, CONN_TODO_FLUSH = 2 };

struct conn_list conn_all = TAILQ_HEAD_INITIALIZER(conn_all);
int conn_count;
static uint64_t conn_next_id = 1;
static uint64_t conn_nrequests;
static char conn_rbuf[CONN_READ_SIZE];
static struct resp_args conn_args;  /* the request being dispatched; req_new copies them */
/* Connections with work for the end of this pass, and the event that runs it. */
static TAILQ_HEAD(, conn) conn_todo = TAILQ_HEAD_INITIALIZER(conn_todo);
static struct event conn_todo_ev;
static bool conn_todo_ready, conn_todo_active;
/* Spare empty output buffers. At most one per open connection is kept,
 * so none is left once they are gone. */
static struct evbuffer *conn_out_pool[CONN_POOL_MAX];
static int conn_out_spare;

static void conn_event_cb(evutil_socket_t fd, short what, void *arg);
static void conn_todo_cb(evutil_socket_t fd, short what, void *arg);
static void conn_read(struct conn *c);
static void conn_read_pass(struct conn *c);
static bool conn_flush(struct conn *c);

/* An EXEC's commands wait to start: they go before anything sent after
 * the EXEC is parsed, and still start once the client is closing (their
 * array's header may be out already). */
static inline bool conn_exec_pending(const struct conn *c)
{
    return c->multi && multi_pending(c->multi);
}

/* Adds c's event with what it now waits for: reading, draining, both. */
static void conn_arm(struct conn *c)
{
    short want = (short)((c->reading ? EV_READ : 0) | (c->wwait ? EV_WRITE : 0));

    if (want == c->evmask)
        return;
    if (c->evmask)
        event_del(&c->ev);
    c->evmask = want;
    if (want) {
        event_assign(&c->ev, cs_base, c->fd, (short)(want | EV_PERSIST), conn_event_cb, c);
        event_add(&c->ev, NULL);
    }
}

/* Work for the end of the pass: runs after the events already due. */
static void conn_later(struct conn *c, short what)
{
    if (!c->todo)
        TAILQ_INSERT_TAIL(&conn_todo, c, todo_link);
    c->todo |= what;
    if (!conn_todo_active) {
        conn_todo_active = true;
        event_active(&conn_todo_ev, EV_TIMEOUT, 1);
    }
}

static void conn_todo_clear(struct conn *c, short what)
{
    if (c->todo && !(c->todo &= (short)~what))
        TAILQ_REMOVE(&conn_todo, c, todo_link);
}

static void conn_todo_drop(struct conn *c)
{
    conn_todo_clear(c, CONN_TODO_READ | CONN_TODO_FLUSH);
}

static void conn_todo_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c;
    /* Only what was due when the pass began: work added meanwhile (a
     * client over CONN_PASS_MAX) waits its turn behind the other events. */
    int n = 0;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    conn_todo_active = false;
    TAILQ_FOREACH(c, &conn_todo, todo_link)
        n++;
    while (n-- > 0 && (c = TAILQ_FIRST(&conn_todo)) != NULL) {
        short todo = c->todo;
        conn_todo_drop(c);
        if (todo & CONN_TODO_READ)
            conn_read(c);       /* ends with a flush */
        else if (!c->wwait || c->overflow)
            conn_flush(c);      /* waiting for EV_WRITE: a write now would only get EAGAIN */
    }
}

struct evbuffer *conn_out_get(struct conn *c)
{
    c->out = conn_out_spare ? conn_out_pool[--conn_out_spare] : evbuffer_new();
    return c->out;
}

static size_t conn_out_len(const struct conn *c)
{
    return c->out ? evbuffer_get_length(c->out) : 0;
}

/* A pipelined transaction's replies go out in one write, as a pipeline's
 * do: while the head of the reply order is an EXEC's command still
 * unanswered, what is answered before it (the +QUEUED replies, the
 * array's header and first elements) waits for the rest of the array.
 * Written at once, the +QUEUED replies cost a second write per batch and
 * forced out this pass's Redis commands early (conn_flush writes them
 * first), one Redis write per transaction instead of one per pass. Held
 * up to CONN_WRITE_SLICE: a large transaction streams out as before. */
static inline bool conn_exec_hold(const struct conn *c)
{
    const struct req *h = TAILQ_FIRST(&c->reqs);

    return h && h->exec && !c->closing && conn_out_len(c) < CONN_WRITE_SLICE;
}

/* c's output is all written: its buffer goes back to the pool. */
static void conn_out_release(struct conn *c)
{
    if (!c->out)
        return;
    if (conn_out_spare < CONN_POOL_MAX && conn_out_spare < conn_count && !cs_exiting)
        conn_out_pool[conn_out_spare++] = c->out;
    else
        evbuffer_free(c->out);
    c->out = NULL;
}

/* Fewer connections: fewer spares. */
static void conn_pools_trim(void)
{
    while (conn_out_spare > conn_count)
        evbuffer_free(conn_out_pool[--conn_out_spare]);
    req_pool_trim();
}

void conn_new(int fd, const char *peer)
{
    struct conn *c = cs_calloc(1, sizeof(*c));

    if (!conn_todo_ready) {
        event_assign(&conn_todo_ev, cs_base, -1, 0, conn_todo_cb, NULL);
        conn_todo_ready = true;
    }
    c->id = conn_next_id++;
    c->fd = fd;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    TAILQ_INIT(&c->reqs);
    c->authed = !cs_conf->requirepass[0];
    c->last_active = cs_mono_ms();
    c->born_s = (uint32_t)(c->last_active / 1000);
    c->reading = true;
    conn_arm(c);
    TAILQ_INSERT_TAIL(&conn_all, c, link);
    conn_count++;
    stats_c.clients_connected++;
    clog_debug(c, "connected");
}

void conn_close(struct conn *c, const char *why)
{
    clog_debug(c, "closing: %s", why);
    req_close_all(c);
    multi_close(c);
    order_close(&c->ord);
    TAILQ_REMOVE(&conn_all, c, link);
    conn_count--;
    stats_c.clients_connected--;
    conn_todo_drop(c);
    if (c->evmask)
        event_del(&c->ev);
    if (c->out)
        evbuffer_free(c->out);
    close(c->fd);
    free(c->ibuf);
    if (c->meta) {
        free(c->meta->name);
        free(c->meta->lib_name);
        free(c->meta->lib_ver);
        free(c->meta);
    }
    free(c);
    conn_pools_trim();
}

void conn_kill(struct conn *c)
{
    /* Once, without waiting: a client killed for not reading must not
     * keep its connection by not reading. */
    if (c->out && evbuffer_get_length(c->out) && !c->overflow) {
        int n = evbuffer_write_atmost(c->out, c->fd, CONN_WRITE_SLICE);
        if (n > 0)
            stats_c.client_bytes_out += (uint64_t)n;
    }
    stats_c.clients_killed++;
    conn_close(c, "killed (CLIENT KILL)");
}

uint64_t conn_accepted(void)
{
    return conn_next_id - 1;
}

uint64_t conn_requests(void)
{
    return conn_nrequests;
}

static void conn_pause(struct conn *c)
{
    if (c->reading) {
        c->reading = false;
        conn_arm(c);
    }
}

static void conn_resume(struct conn *c)
{
    if (c->reading || c->overflow)
        return;
    if (!c->closing) {
        c->reading = true;
        conn_arm(c);
    } else if (!conn_exec_pending(c)) {
        return;                 /* closing: nothing more is read */
    }
    /* Requests may already be buffered, or an EXEC's wait to start: run
     * the read pass once. */
    conn_later(c, CONN_TODO_READ);
}

/* Output (or a deferred close) for the end of the pass. A client over its
 * output limit is closed from there even when its socket never becomes
 * writable (it does not read). */
static void conn_want_write(struct conn *c)
{
    size_t queued = conn_out_len(c) + c->stashed;

    if (!c->overflow && (long long)queued > cs_conf->max_output_bytes_per_client) {
        c->overflow = true;
        c->closing = true;
        stats_c.output_limit_disconnects++;
        conn_pause(c);
    }
    conn_later(c, CONN_TODO_FLUSH);
}

void conn_drain(struct conn *c)
{
    conn_pause(c);
    c->closing = true;
    conn_want_write(c);
}

/* A protocol error answers after what came before it, then closes. */
static void conn_protocol_error(struct conn *c, const char *why)
{
    struct resp_args none = { 0 };
    struct req *r = req_new(c, &none, cs_clock_us());

    clog_info(c, "protocol error: %s", why);
    stats_c.protocol_errors++;
    resp_errorf(req_out(r), "ERR protocol error: %s", why);
    conn_drain(c);
    req_done(r);
}

static size_t conn_frame_max(void)
{
    return (size_t)cs_conf->max_request_bytes * CONN_FRAME_FACTOR;
}

static void conn_limits(const struct conn *c, struct resp_limits *l)
{
    l->max_arg = (size_t)cs_conf->max_request_bytes;
    l->max_frame = conn_frame_max();
    l->max_args = RESP_MAX_ARGS;
    l->before_auth = !c->authed;
    if (!c->authed) {
        l->max_arg = l->max_arg < CONN_NOAUTH_ARG ? l->max_arg : CONN_NOAUTH_ARG;
        l->max_frame = l->max_frame < CONN_NOAUTH_FRAME ? l->max_frame : CONN_NOAUTH_FRAME;
        l->max_args = CONN_NOAUTH_ARGS;
    }
}

/* Back-pressure: requests queued (answered or not, until their reply is
 * in out) are bounded in number and in the bytes they hold. */
static bool conn_may_read(const struct conn *c)
{
    return c->inflight < cs_conf->max_inflight_per_client && c->qbytes < conn_frame_max() &&
           c->rq < CONN_REDIS_SHARE;
}

/* Starts the commands of an EXEC, then parses and dispatches what
 * base[ipos..ilen) holds. */
static void conn_process(struct conn *c, const char *base)
{
    int started = 0, execd = 0;

    for (;;) {
        bool exec = conn_exec_pending(c);
        struct resp_limits lim;
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st;

        if (c->overflow || (!exec && (c->closing || c->ipos >= c->ilen)))
            break;
        if (!conn_may_read(c)) {
            conn_pause(c);      /* resumed by req_done */
            break;
        }
        /* An EXEC's commands have a budget of their own: each counted once
         * already, when parsed and queued, and MULTI, 16 commands and EXEC
         * counted again as they start (34) would cut a transaction of 16 in
         * two passes, so two Redis round trips. */
        if ((exec ? execd : started) == CONN_PASS_MAX) {
            c->more = true;     /* the next pass parses on before reading */
            conn_later(c, CONN_TODO_READ);
            break;
        }
        if (exec) {
            execd++;            /* as if it had just been pipelined */
            multi_start_next(c);
            continue;
        }
        conn_limits(c, &lim);   /* each time: AUTH changes them */
        st = resp_parse(&c->parse, base + c->ipos, c->ilen - c->ipos, &lim, &conn_args, &used, &err);
        if (st == RESP_MORE)
            break;
        if (st == RESP_ERROR) {
            conn_protocol_error(c, err);
            break;
        }
        c->ipos += used;
        if (st == RESP_DONE) {
            started++;
            conn_nrequests++;
            command_dispatch(req_new(c, &conn_args, cs_pass_us));   /* read together, arrived together */
        }
    }
    if (conn_args.cap > CONN_ARGS_KEEP)
        resp_args_free(&conn_args);
}

/* After parsing: keep only the unparsed rest, in a buffer of the client's
 * own sized to it; nothing at all when everything was parsed. */
static void conn_keep_rest(struct conn *c, const char *base)
{
    size_t rest = c->closing ? 0 : c->ilen - c->ipos;   /* closing: nothing more is read */

    if (rest == 0) {
        free(c->ibuf);
        c->ibuf = NULL;
        c->ibuf_size = c->ilen = c->ipos = 0;
        return;
    }
    if (!c->ibuf) {
        c->ibuf_size = rest * 2 > CONN_IBUF_MIN ? rest * 2 : CONN_IBUF_MIN;
        c->ibuf = cs_malloc(c->ibuf_size);
        memcpy(c->ibuf, base + c->ipos, rest);
    } else if (c->ipos > 0) {
        memmove(c->ibuf, c->ibuf + c->ipos, rest);
        if (c->ibuf_size > 4 * rest && c->ibuf_size > CONN_IBUF_MIN) {
            c->ibuf_size = rest * 2 > CONN_IBUF_MIN ? rest * 2 : CONN_IBUF_MIN;
            c->ibuf = cs_realloc(c->ibuf, c->ibuf_size);
        }
    }
    c->ilen = rest;
    c->ipos = 0;
}

/* Room in the client's own buffer for the next read: doubling, or straight
 * to what the request in progress is known to need, never past one
 * request plus a read. */
static void conn_ibuf_room(struct conn *c)
{
    struct resp_limits lim;
    size_t cap, want = c->ibuf_size, need = resp_need(&c->parse);

    conn_limits(c, &lim);
    cap = lim.max_frame + CONN_IBUF_MIN;
    if (cap < need + CONN_IBUF_MIN)
        cap = need + CONN_IBUF_MIN;     /* a bulk accepted before a reload lowered the limit */
    if (c->ibuf_size - c->ilen >= CONN_IBUF_MIN / 2 && need <= c->ibuf_size)
        return;
    if (want < 2 * c->ibuf_size)
        want = 2 * c->ibuf_size;
    if (want < need + CONN_IBUF_MIN)
        want = need + CONN_IBUF_MIN;
    if (want > cap)
        want = cap;
    if (want > c->ibuf_size) {
        c->ibuf_size = want;
        c->ibuf = cs_realloc(c->ibuf, c->ibuf_size);
    }
}

/* One read pass: parse what is buffered or read more, dispatch, and write
 * what is answered already. c may be closed on return. */
static void conn_read(struct conn *c)
{
    int64_t was = cs_pass_begin();

    conn_read_pass(c);
    cs_pass_end(was);
}

static void conn_read_pass(struct conn *c)
{
    char *dst = conn_rbuf, *base;
    size_t room = sizeof(conn_rbuf);
    ssize_t n;

    if (c->more && c->ibuf) {
        /* Requests already buffered: their turn, before reading more. */
        c->more = false;
        conn_process(c, c->ibuf);
        if (!c->more)           /* compact once, not once a pass */
            conn_keep_rest(c, c->ibuf);
        conn_flush(c);
        return;
    }
    c->more = false;
    if (c->ibuf) {
        conn_ibuf_room(c);
        dst = c->ibuf + c->ilen;
        room = c->ibuf_size - c->ilen;
    }
    if (room > 0) {
        n = read(c->fd, dst, room);
        if (n == 0) {
            /* Half-close: answer what was sent, then close. Requests held
             * back by max_inflight_per_client are parsed when req_done
             * resumes us (the read sees EOF again). */
            if (c->ibuf || conn_exec_pending(c)) {
                conn_process(c, c->ibuf);
                conn_keep_rest(c, c->ibuf);
            }
            if (c->ilen > 0 && !conn_may_read(c))
                conn_pause(c);
            else
                conn_drain(c);
            conn_flush(c);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c, strerror(errno));
                return;
            }
        } else {
            c->ilen += (size_t)n;
            stats_c.client_bytes_in += (uint64_t)n;
            c->last_active = cs_pass_us / 1000;     /* cs_mono_ms() */
        }
    }
    base = c->ibuf ? c->ibuf : conn_rbuf;
    conn_process(c, base);
    conn_keep_rest(c, base);
    conn_flush(c);
}

/* Writes what is queued (at most CONN_WRITE_SLICE a pass, so one big reply
 * never starves the others), does a deferred close, and waits for EV_WRITE
 * only when the socket took less. Returns false when c was closed. Only
 * from the top of an event, never under a caller still walking c. */
static bool conn_flush(struct conn *c)
{
    conn_todo_clear(c, CONN_TODO_FLUSH);   /* a read pass due stays due */
    if (c->overflow) {
        clog_warn(c, "output buffer over max_output_bytes_per_client: disconnecting a slow reader");
        conn_close(c, "output limit");
        return false;
    }
    if (conn_out_len(c) && conn_exec_hold(c)) {
        if (c->wwait) {
            c->wwait = false;   /* the element that completes the array writes it */
            conn_arm(c);
        }
        return true;
    }
    if (conn_out_len(c)) {
        int n;
        rstore_flush();         /* what this pass asked of Redis goes first */
        n = evbuffer_write_atmost(c->out, c->fd, CONN_WRITE_SLICE);
        if (n > 0)
            stats_c.client_bytes_out += (uint64_t)n;
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(c, strerror(errno));
            return false;
        }
    }
    if (conn_out_len(c)) {
        if (!c->wwait) {
            c->wwait = true;    /* the rest when the socket drains */
            conn_arm(c);
        }
        return true;
    }
    conn_out_release(c);
    if (c->wwait) {
        c->wwait = false;
        conn_arm(c);
    }
    if (c->closing && c->inflight == 0 && !conn_exec_pending(c)) {
        conn_close(c, "done");
        return false;
    }
    return true;
}

static void conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    CS_UNUSED(fd);
    if ((what & EV_WRITE) && !conn_flush(c))
        return;
    if (what & EV_READ)
        conn_read(c);
}

void conn_answered(struct conn *c)
{
    /* Writing (and any close) happens at the end of the pass (conn_todo),
     * never here: our caller may still be walking this connection. */
    conn_want_write(c);
    if (conn_may_read(c))
        conn_resume(c);
}

void conn_redis_sent(struct conn *c)
{
    c->rq++;
}

void conn_redis_answered(struct conn *c)
{
    c->rq--;
    if (!c->reading && conn_may_read(c))
        conn_resume(c);
}

void conn_sweep_idle(int64_t now, long long idle_ms)
{
    struct conn *c, *next;

    for (c = TAILQ_FIRST(&conn_all); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->inflight == 0 && now - c->last_active > idle_ms) {
            stats_c.idle_disconnects++;
            conn_close(c, "idle timeout");
        }
    }
}

/* What the requests and commands below call of their connection (req.h). */
static const struct req_conn_ops conn_req_ops = {
    conn_out_get, conn_answered, conn_redis_sent, conn_redis_answered, conn_drain, conn_kill, conn_accepted,
    conn_requests,
};

void conn_init(void)
{
    req_set_conn_ops(&conn_req_ops);
}
