/* SPDX-License-Identifier: BSD-3-Clause */
/* rio.h - a Redis link's connection, owned outright: the socket and its
 * non-blocking connect, its libevent events, an output buffer its
 * commands are appended to and written at the end of the loop pass, and
 * an input buffer its replies are parsed in (rreply.c) and handed to its
 * owner in order; over TLS (rtls.h) when the link is opened with a name
 * to check. hiredis is used for nothing here but the shape of a reply
 * (struct redisReply, its public type). rlink.c and rdial.c embed one
 * per link. */
#ifndef CS_RIO_H
#define CS_RIO_H

#include "core.h"
#include "rreply.h"

#include <event2/event_struct.h>
#include <openssl/ssl.h>

/* What the owner hears. Each runs from the loop, never inside a call the
 * owner made; each may close the connection (rio_close). */
struct rio_owner {
    /* The connect is done: ERR NULL, or why it failed (the connection
     * is closed already). */
    void (*connected)(void *owner, const char *err);
    /* A reply, built in the owner's arena, valid during the call. */
    void (*reply)(void *owner, struct redisReply *r);
    /* The connection failed after it was up: closed already. */
    void (*lost)(void *owner, const char *why);
};

/* The read event persists; what a loop pass queued for Redis is written
 * at its end (as the clients' replies are); EV_WRITE is waited for only
 * after a short write, or while connecting. */
struct rio_events {
    int fd;                     /* -1: no connection */
    bool connecting;            /* the connect is under way */
    unsigned gen;               /* changes at every open and close */
    struct event rev, wev;
    bool reading, writing;      /* rev / wev added */
    bool due;                   /* a write at the end of this pass: on the due list */
    TAILQ_ENTRY(rio_events) due_link;
    bool flushing;              /* inside that write */
    const struct rio_owner *cb;
    void *owner;
    /* Commands: out[out_pos, out_len) not written yet. */
    char *out;
    size_t out_cap, out_len, out_pos;
    /* Replies: read into in, parsed into arena. */
    struct rreply_arena *arena;
    char *in;
    size_t in_cap, in_len, in_pos;      /* in[in_pos, in_len): not parsed yet */
    bool scanning;              /* in_pos starts a reply only partly read */
    struct rreply_scan scan;
    uint64_t in_total;          /* bytes read since the open */
    /* TLS: the session, and which way it waits. The handshake is part of
     * the connect (connecting stays true), so it counts against the same
     * deadline; a read that needs the socket writable, or a write that
     * needs it readable, is retried when it is. */
    SSL *ssl;
    int tls_failed;             /* 1 + the enum tlserr_reason of the TLS failure that closed it, else 0 */
    bool handshaking;
    bool read_wants_write, write_wants_read;
};

/* Once per link, before its first open: fd -1, nothing allocated. */
void rio_init(struct rio_events *e, struct rreply_arena *a, const struct rio_owner *cb, void *owner);
/* Starts a non-blocking connect to HOST (a numeric address) and PORT, or
 * to the unix socket PATH when HOST is NULL; its end (after the TLS
 * handshake when TLS_NAME is not NULL: the name or address the server's
 * certificate must show) goes to cb->connected. KEEPALIVE_S > 0: TCP
 * keepalive probes after that many idle seconds. CS_ERR: failed at once,
 * ERR (ERRSIZE bytes) says why. */
int rio_open(struct rio_events *e, const char *host, int port, const char *path, const char *tls_name,
             int keepalive_s, char *err, size_t errsize) CS_WUR;
/* Closes the connection, if any; no callback runs, what was queued goes.
 * Over TLS, close_notify is sent first (once, not waited for). */
void rio_close(struct rio_events *e);
static inline bool rio_live(const struct rio_events *e)
{
    return e->fd >= 0;
}
/* Connected, in the TLS handshake. */
static inline bool rio_handshaking(const struct rio_events *e)
{
    return e->handshaking;
}
/* Queues a command (RESP): written at the end of the pass (or once the
 * connect is done). CS_ERR: no connection. */
int rio_send(struct rio_events *e, const char *cmd, size_t len) CS_WUR;
/* What e keeps between connections, freed (the link going away). */
void rio_release(struct rio_events *e);
/* Writes what every link has queued now, not at the end of the pass. */
void rio_flush(void);

#endif
