/* SPDX-License-Identifier: BSD-3-Clause */
/* rio.c - a Redis link's connection (see rio.h).
 *
 * The link owns its socket: the connect, the buffers and the events are
 * ours, and hiredis is used only for its public reply type. (Its async
 * API re-parses every command it is given, mallocs a callback for each,
 * copies every reply, and its libevent adapter re-adds a one-shot read
 * event after every read: 2 to 4 epoll_ctl calls a batch; and writing
 * into its context, as an earlier version did, ties the build to one
 * version of its private struct layout.) Commands are appended to our
 * output buffer and written at the end of the pass, replies parsed where
 * they were read (rreply.c) and handed to the link's owner, which keeps
 * its own FIFO of what it sent.
 *
 * TLS is the same connection with OpenSSL's calls in place of read and
 * send on the non-blocking socket: the handshake runs after the TCP
 * connect, inside the connect's deadline, driven by whichever event
 * (readable, writable) OpenSSL waits for; then one record read at a time
 * (each fits the buffer, and whatever OpenSSL holds is read before
 * returning to the loop, since the socket will not wake us for it). */
#include "core.h"
#include "rio.h"
#include "rtls.h"

#include <event2/event.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct event rio_flush_ev;
static bool rio_flush_ready, rio_flush_active;
/* Every link with a write due, whatever links there are. */
static TAILQ_HEAD(, rio_events) rio_due = TAILQ_HEAD_INITIALIZER(rio_due);

/* The input buffer: a read's worth at least, kept between reads; grown
 * for a reply larger than that, and given back once it has been used.
 * The output buffer is kept up to RIO_KEEP_OUT between batches. */
#define RIO_READ (16 * 1024)
#define RIO_KEEP_IN (64 * 1024)
#define RIO_KEEP_OUT (64 * 1024)

/* OpenSSL counts in int. */
static int rio_int(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* ---- the events --------------------------------------------------------- */

static void rio_undue(struct rio_events *e)
{
    if (e->due) {
        e->due = false;
        TAILQ_REMOVE(&rio_due, e, due_link);
    }
}

static void rio_add_read(struct rio_events *e)
{
    if (!e->reading) {
        e->reading = true;
        event_add(&e->rev, NULL);
    }
}

static void rio_arm_write(struct rio_events *e)
{
    if (!e->writing) {
        e->writing = true;
        event_add(&e->wev, NULL);
    }
}

static void rio_del_read(struct rio_events *e)
{
    if (e->reading) {
        e->reading = false;
        event_del(&e->rev);
    }
}

static void rio_del_write(struct rio_events *e)
{
    rio_undue(e);
    if (e->writing) {
        e->writing = false;
        event_del(&e->wev);
    }
}

/* A write at the end of this pass (or, inside a write or a connect, when
 * the socket can take it). */
static void rio_want_write(struct rio_events *e)
{
    if (e->writing || e->due)
        return;
    if (e->handshaking)
        return;                 /* written once the handshake is done */
    if (e->flushing || e->connecting) {
        rio_arm_write(e);
        return;
    }
    e->due = true;
    TAILQ_INSERT_TAIL(&rio_due, e, due_link);
    if (!rio_flush_active) {
        rio_flush_active = true;
        event_active(&rio_flush_ev, EV_TIMEOUT, 1);
    }
}

/* ORDERLY: the owner closes a sound connection (shutdown, a drop, a
 * link moved): TLS says so with close_notify, sent once without waiting
 * for Redis's. After a failure nothing more is written on it. */
static void rio_shut(struct rio_events *e, bool orderly)
{
    if (e->fd < 0)
        return;
    rio_del_write(e);
    rio_del_read(e);
    if (orderly)
        rtls_close_notify(e->ssl);
    SSL_free(e->ssl);
    e->ssl = NULL;
    e->handshaking = e->read_wants_write = e->write_wants_read = false;
    close(e->fd);
    e->fd = -1;
    e->connecting = false;
    e->gen++;
    e->out_len = e->out_pos = 0;
    if (e->out_cap > RIO_KEEP_OUT) {
        free(e->out);
        e->out = NULL;
        e->out_cap = 0;
    }
    e->in_len = e->in_pos = 0;
    e->scanning = false;
    rreply_arena_reset(e->arena);
}

void rio_close(struct rio_events *e)
{
    rio_shut(e, true);
}

/* The connection failed: closed, and its owner told why. */
static void rio_fail(struct rio_events *e, const char *why)
{
    char copy[200];

    snprintf(copy, sizeof(copy), "%s", why);
    rio_shut(e, false);
    e->cb->lost(e->owner, copy);
}

/* ---- replies -------------------------------------------------------------- */

/* Room for a read after what is still unparsed (a reply's first part). */
static void rio_room(struct rio_events *e)
{
    size_t keep = e->in_len - e->in_pos;

    if (keep == 0 && e->in_cap > RIO_KEEP_IN) {
        free(e->in);            /* a large reply is over */
        e->in = NULL;
        e->in_cap = e->in_len = e->in_pos = 0;
    }
    if (e->in_pos > 0 && e->in_cap - e->in_len < RIO_READ) {
        memmove(e->in, e->in + e->in_pos, keep);
        e->in_pos = 0;
        e->in_len = keep;
    }
    if (e->in_cap - e->in_len < RIO_READ) {
        e->in_cap = e->in_cap ? e->in_cap * 2 : RIO_READ;
        if (e->in_cap - e->in_len < RIO_READ)
            e->in_cap = e->in_len + RIO_READ;
        e->in = cs_realloc(e->in, e->in_cap);
    }
}

/* Hands every whole reply in the buffer to the owner, until the
 * connection goes (the owner dropped it, or the input is not RESP). */
static void rio_replies(struct rio_events *e)
{
    unsigned gen = e->gen;
    char why[128] = "Protocol error";
    int rc;

    while (e->in_pos < e->in_len) {
        char *p = e->in + e->in_pos;
        size_t len = e->in_len - e->in_pos, used;
        struct redisReply *r;

        if (e->scanning) {
            rc = rreply_scan(&e->scan, p, len, why, sizeof(why));
            if (rc == RREPLY_MORE)
                return;
            e->scanning = false;
        } else {
            rc = RREPLY_OK;
        }
        if (rc == RREPLY_OK)
            rc = rreply_parse(e->arena, p, len, &r, &used, why, sizeof(why));
        if (rc == RREPLY_MORE) {
            /* Came in part: see when it is whole without parsing it again. */
            rreply_arena_reset(e->arena);
            rreply_scan_init(&e->scan);
            rc = rreply_scan(&e->scan, p, len, why, sizeof(why));
            e->scanning = rc == RREPLY_MORE;
            if (rc == RREPLY_MORE)
                return;
            if (rc == RREPLY_OK)
                rc = rreply_parse(e->arena, p, len, &r, &used, why, sizeof(why));
        }
        if (rc != RREPLY_OK) {
            rio_fail(e, why);
            return;
        }
        e->in_pos += used;
        e->cb->reply(e->owner, r);
        if (e->gen != gen)
            return;             /* the owner closed the connection */
        rreply_arena_reset(e->arena);
    }
    e->in_pos = e->in_len = 0;
}

/* Reads records until OpenSSL holds nothing more: the socket may have
 * nothing left to wake us for what it buffered. */
static void rio_read_tls(struct rio_events *e)
{
    unsigned gen = e->gen;
    char why[200];

    for (;;) {
        int n, want;

        rio_room(e);
        n = SSL_read(e->ssl, e->in + e->in_len, rio_int(e->in_cap - e->in_len));
        if (n > 0) {
            e->in_len += (size_t)n;
            e->in_total += (uint64_t)n;
            rio_replies(e);
            if (e->gen != gen)
                return;
            if (SSL_pending(e->ssl) > 0)
                continue;
            break;
        }
        want = SSL_get_error(e->ssl, n);
        if (want == SSL_ERROR_WANT_READ)
            break;
        if (want == SSL_ERROR_WANT_WRITE) {
            e->read_wants_write = true;
            rio_arm_write(e);
            return;
        }
        e->tls_failed = 1 + rtls_why(e->ssl, n, false, e->in_total == 0, why, sizeof(why));
        rio_fail(e, why);
        return;
    }
    if (e->write_wants_read) {
        e->write_wants_read = false;
        rio_want_write(e);
    }
}

static void rio_read(struct rio_events *e)
{
    ssize_t n;

    if (e->ssl) {
        rio_read_tls(e);
        return;
    }
    rio_room(e);
    n = read(e->fd, e->in + e->in_len, e->in_cap - e->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* A TLS port drops (or resets) a client that speaks plaintext. */
        if (e->in_total == 0 && (n == 0 || errno == ECONNRESET))
            rio_fail(e, n == 0 ? "Server closed the connection before any reply (a TLS port? tls = yes)"
                               : "Connection reset before any reply (a TLS port? tls = yes)");
        else
            rio_fail(e, n < 0 ? strerror(errno) : "Server closed the connection");
        return;
    }
    e->in_len += (size_t)n;
    e->in_total += (uint64_t)n;
    rio_replies(e);
}

static void rio_handshake(struct rio_events *e);

static void rio_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rio_events *e = arg;
    int64_t was = cs_pass_begin();

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (e->handshaking)
        rio_handshake(e);
    else
        rio_read(e);
    cs_pass_end(was);
}

/* ---- commands ------------------------------------------------------------- */

int rio_send(struct rio_events *e, const char *cmd, size_t len)
{
    if (e->fd < 0)
        return CS_ERR;
    if (e->out_pos == e->out_len)
        e->out_pos = e->out_len = 0;
    if (e->out_cap - e->out_len < len) {
        if (e->out_pos > 0) {
            memmove(e->out, e->out + e->out_pos, e->out_len - e->out_pos);
            e->out_len -= e->out_pos;
            e->out_pos = 0;
        }
        if (e->out_cap - e->out_len < len) {
            size_t cap = e->out_cap ? e->out_cap : 1024;
            while (cap - e->out_len < len)
                cap *= 2;
            e->out = cs_realloc(e->out, cap);
            e->out_cap = cap;
        }
    }
    memcpy(e->out + e->out_len, cmd, len);
    e->out_len += len;
    rio_want_write(e);
    return CS_OK;
}

static void rio_write(struct rio_events *e)
{
    size_t len = e->out_len - e->out_pos;
    ssize_t n = 0;

    if (len && e->ssl) {
        n = SSL_write(e->ssl, e->out + e->out_pos, rio_int(len));
        if (n <= 0) {
            int want = SSL_get_error(e->ssl, (int)n);
            char why[200];
            if (want == SSL_ERROR_WANT_READ) {
                /* The read event (always on) will retry it. */
                e->write_wants_read = true;
                rio_del_write(e);
                return;
            }
            if (want != SSL_ERROR_WANT_WRITE) {
                e->tls_failed = 1 + rtls_why(e->ssl, (int)n, false, e->in_total == 0, why, sizeof(why));
                rio_fail(e, why);
                return;
            }
        } else {
            e->out_pos += (size_t)n;
        }
    } else if (len) {
        n = send(e->fd, e->out + e->out_pos, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            rio_fail(e, strerror(errno));
            return;
        }
        if (n > 0)
            e->out_pos += (size_t)n;
    }
    if (e->out_pos < e->out_len) {
        rio_arm_write(e);       /* the rest when the socket drains */
        return;
    }
    e->out_pos = e->out_len = 0;
    if (e->out_cap > RIO_KEEP_OUT) {
        free(e->out);
        e->out = NULL;
        e->out_cap = 0;
    }
    rio_del_write(e);
}

/* Up (TCP connected, TLS shaken hands): the owner told, then what it
 * queued meanwhile goes out. */
static void rio_up(struct rio_events *e)
{
    unsigned gen = e->gen;

    e->connecting = false;
    rio_add_read(e);
    e->flushing = true;
    e->cb->connected(e->owner, NULL);
    if (e->gen != gen)
        return;
    rio_write(e);
    e->flushing = false;
}

/* The connect did not make it: closed, and the owner told why. */
static void rio_not_up(struct rio_events *e, const char *err)
{
    char why[200];

    snprintf(why, sizeof(why), "%s", err);
    rio_shut(e, false);
    e->cb->connected(e->owner, why);
}

/* One step of the handshake; the next when the socket is ready the way
 * OpenSSL asks, and only that way (the other would wake us in vain). */
static void rio_handshake(struct rio_events *e)
{
    int rc = SSL_connect(e->ssl);
    char why[200];

    if (rc == 1) {
        e->handshaking = false;
        rio_del_write(e);
        rio_up(e);
        return;
    }
    switch (SSL_get_error(e->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        rio_del_write(e);
        rio_add_read(e);
        return;
    case SSL_ERROR_WANT_WRITE:
        rio_del_read(e);
        rio_arm_write(e);
        return;
    default:
        e->tls_failed = 1 + rtls_why(e->ssl, rc, true, false, why, sizeof(why));
        rio_not_up(e, why);
    }
}

/* The connect is done (writable): its outcome to the owner, then what it
 * queued meanwhile goes out (after the TLS handshake, over TLS). */
static void rio_connect_done(struct rio_events *e)
{
    int err = 0;
    socklen_t errlen = sizeof(err);

    if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0)
        err = errno;
    if (err == EINPROGRESS)
        return;
    if (err) {
        rio_not_up(e, strerror(err));
        return;
    }
    if (e->ssl) {
        e->handshaking = true;
        rio_handshake(e);
        return;
    }
    rio_up(e);
}

static void rio_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rio_events *e = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (e->handshaking) {
        rio_handshake(e);
        return;
    }
    if (e->connecting) {
        rio_connect_done(e);
        return;
    }
    if (e->read_wants_write) {
        unsigned gen = e->gen;
        e->read_wants_write = false;
        rio_read(e);
        if (e->gen != gen)
            return;
    }
    e->flushing = true;
    rio_write(e);
    e->flushing = false;
}

static void rio_flush_one(struct rio_events *e)
{
    rio_undue(e);
    if (e->fd < 0 || e->connecting)
        return;
    e->flushing = true;
    rio_write(e);
    e->flushing = false;
}

void rio_flush(void)
{
    while (!TAILQ_EMPTY(&rio_due))
        rio_flush_one(TAILQ_FIRST(&rio_due));
}

static void rio_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    rio_flush_active = false;
    rio_flush();
}

/* ---- the connection ------------------------------------------------------- */

void rio_init(struct rio_events *e, struct rreply_arena *a, const struct rio_owner *cb, void *owner)
{
    memset(e, 0, sizeof(*e));
    e->fd = -1;
    e->arena = a;
    e->cb = cb;
    e->owner = owner;
    if (!rio_flush_ready) {
        event_assign(&rio_flush_ev, cs_base, -1, 0, rio_flush_cb, NULL);
        rio_flush_ready = true;
    }
}

/* Keepalive finds a peer that vanished without a FIN on an idle link:
 * probes after S idle seconds, S / 3 apart, 3 of them. A failure is not
 * worth the connection. */
static void rio_keepalive(int fd, int s)
{
    int on = 1, intvl = s / 3 > 0 ? s / 3 : 1, cnt = 3;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
        return;
#ifdef TCP_KEEPIDLE
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &s, sizeof(s));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#endif
}

/* The address to connect to: numeric HOST and PORT, or PATH. */
static int rio_addr(const char *host, int port, const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (!host) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(path) >= sizeof(un->sun_path)) {
            errno = ENAMETOOLONG;
            return CS_ERR;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        *len = sizeof(*un);
        return CS_OK;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
        return CS_OK;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return CS_OK;
    }
    errno = EINVAL;
    return CS_ERR;
}

int rio_open(struct rio_events *e, const char *host, int port, const char *path, const char *tls_name,
             int keepalive_s, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd, one = 1;

    rio_close(e);
    if (rio_addr(host, port, path, &ss, &sslen) != CS_OK) {
        snprintf(err, errsize, "%s", strerror(errno));
        return CS_ERR;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsize, "%s", strerror(errno));
        return CS_ERR;
    }
    if (host) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (keepalive_s > 0)
            rio_keepalive(fd, keepalive_s);
    }
    if (connect(fd, (struct sockaddr *)&ss, sslen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errsize, "%s", strerror(errno));
        close(fd);
        return CS_ERR;
    }
    if (tls_name && !(e->ssl = rtls_new(fd, tls_name, err, errsize))) {
        close(fd);
        return CS_ERR;
    }
    e->fd = fd;
    e->gen++;
    e->tls_failed = 0;
    e->connecting = true;
    e->in_total = 0;
    e->in_len = e->in_pos = 0;
    e->out_len = e->out_pos = 0;
    e->scanning = false;
    rreply_arena_reset(e->arena);
    event_assign(&e->rev, cs_base, fd, EV_READ | EV_PERSIST, rio_read_cb, e);
    event_assign(&e->wev, cs_base, fd, EV_WRITE | EV_PERSIST, rio_write_cb, e);
    /* Writable says the connect is done, whether it failed or not. */
    rio_arm_write(e);
    return CS_OK;
}

void rio_release(struct rio_events *e)
{
    rio_close(e);
    free(e->in);
    e->in = NULL;
    e->in_cap = e->in_len = e->in_pos = 0;
    free(e->out);
    e->out = NULL;
    e->out_cap = e->out_len = e->out_pos = 0;
}
