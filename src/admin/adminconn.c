/* SPDX-License-Identifier: BSD-3-Clause */
/* adminconn.c - the admin port's connections: a cap on how many are open,
 * and a pause when the process is out of descriptors.
 *
 * Anyone local can connect to the admin port (/metrics needs no password).
 * Unbounded, its connections would take the descriptors that clients and
 * the Redis and upstream links need. So at most CS_ADMIN_MAX_CONNS are
 * open: evhttp's listener accepts up to the cap and then stops, and a read
 * event on the same socket takes its place, answering each newcomer a short
 * 503 and closing it at once; the client port is not involved.
 *
 * evhttp (libevent 2.1) says nothing when a connection it accepted ends. It
 * does let us make each new connection's bufferevent, and it puts the
 * descriptor in it before the loop runs anything else. We note that
 * descriptor with its socket's inode: the connection is open while the
 * descriptor still names that socket (once closed, fstat fails or the
 * number names another file). The notes are checked only at the cap (64
 * fstat calls), so below it the count may run high; at it, it is exact.
 *
 * Out of descriptors, accept fails and leaves the connection queued, so a
 * level-triggered listener fires again at once: a busy loop, libevent
 * logging a line each turn. Instead both ways in pause and try again later,
 * with one log line per window, as the client listener does (server.c). */
#include "core.h"
#include "adminconn.h"
#include "config.h"
#include "log.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Out of descriptors: not accepting for this long, then trying again. */
#define ADMINCONN_PAUSE_MS 250

#define ADMINCONN_BUSY_BODY "too many admin connections\n"
_Static_assert(sizeof(ADMINCONN_BUSY_BODY) - 1 == 27, "Content-Length below");
static const char adminconn_busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                     "Content-Type: text/plain; charset=utf-8\r\n"
                                     "Content-Length: 27\r\nConnection: close\r\n\r\n" ADMINCONN_BUSY_BODY;

/* A connection evhttp holds: open while fd still names this socket. */
struct adminconn_peer {
    int fd;
    dev_t dev;
    ino_t ino;
};

static struct evconnlistener *ac_listener;  /* evhttp's */
static struct event *ac_gate;               /* the same socket, at the cap */
static struct event *ac_adopt, *ac_resume;
static struct adminconn_peer ac_peers[CS_ADMIN_MAX_CONNS];
static int ac_npeers;
/* Accepted since the last adoption; each holds a reference. The listener
 * stops at the cap, so peers and these never exceed it together. */
static struct bufferevent *ac_new[CS_ADMIN_MAX_CONNS];
static int ac_nnew;
static bool ac_full, ac_paused;

/* Which way in is open: none while paused, the refusing gate at the cap,
 * else evhttp's listener. Disabling the listener from inside its own
 * accept callback ends its accept loop, so the cap is exact. */
static void adminconn_update(void)
{
    if (!ac_listener)
        return;                 /* shutting down */
    if (!ac_paused && !ac_full)
        evconnlistener_enable(ac_listener);
    else
        evconnlistener_disable(ac_listener);
    if (!ac_paused && ac_full)
        event_add(ac_gate, NULL);
    else
        event_del(ac_gate);
}

/* Forgets the noted connections that have ended; true when the open ones
 * are at the cap. */
static bool adminconn_at_cap(void)
{
    struct stat st;
    int n = 0;

    if (ac_npeers + ac_nnew < CS_ADMIN_MAX_CONNS)
        return false;
    for (int i = 0; i < ac_npeers; i++) {
        const struct adminconn_peer *p = &ac_peers[i];
        if (fstat(p->fd, &st) == 0 && st.st_ino == p->ino && st.st_dev == p->dev)
            ac_peers[n++] = *p;
    }
    ac_npeers = n;
    return ac_npeers + ac_nnew >= CS_ADMIN_MAX_CONNS;
}

/* evhttp wants a bufferevent for a connection just accepted: a plain one,
 * remembered until the loop's next turn, when its descriptor is set. */
static struct bufferevent *adminconn_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev;

    CS_UNUSED(arg);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;            /* evhttp tries its own */
    if (ac_npeers + ac_nnew >= CS_ADMIN_MAX_CONNS)
        return bev;             /* cannot be: the listener stops at the cap */
    bufferevent_incref(bev);    /* valid until adopted, whatever evhttp does */
    ac_new[ac_nnew++] = bev;
    event_active(ac_adopt, EV_TIMEOUT, 1);
    if (adminconn_at_cap()) {
        ac_full = true;
        adminconn_update();
    }
    return bev;
}

static void adminconn_adopt_cb(evutil_socket_t unused, short what, void *arg)
{
    struct stat st;

    CS_UNUSED(unused);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    for (int i = 0; i < ac_nnew; i++) {
        evutil_socket_t fd = bufferevent_getfd(ac_new[i]);
        if (fd >= 0 && fstat(fd, &st) == 0 && ac_npeers < CS_ADMIN_MAX_CONNS)
            ac_peers[ac_npeers++] = (struct adminconn_peer){ .fd = fd, .dev = st.st_dev, .ino = st.st_ino };
        /* If evhttp already let it go, this frees it and closes fd: the
         * note then no longer matches. */
        bufferevent_decref(ac_new[i]);
    }
    ac_nnew = 0;
}

static void adminconn_resume_cb(evutil_socket_t unused, short what, void *arg)
{
    CS_UNUSED(unused);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    ac_paused = false;
    adminconn_update();
}

/* accept failed for a reason that a retry right away would meet again. */
static void adminconn_pause(int err)
{
    struct timeval tv;

    if (err == EMFILE || err == ENFILE)
        log_limited(LOG_ERROR, "admin: accept: %s: not accepting for %d ms (%d admin connections; see LimitNOFILE)",
                    evutil_socket_error_to_string(err), ADMINCONN_PAUSE_MS, ac_npeers + ac_nnew);
    else
        log_limited(LOG_ERROR, "admin: accept: %s: not accepting for %d ms", evutil_socket_error_to_string(err),
                    ADMINCONN_PAUSE_MS);
    ac_paused = true;
    adminconn_update();
    cs_ms_tv(&tv, ADMINCONN_PAUSE_MS);
    evtimer_add(ac_resume, &tv);
}

/* The listener retries on its own what is transient (EINTR, EAGAIN,
 * ECONNABORTED); anything it hands here would recur at once. */
static void adminconn_error_cb(struct evconnlistener *l, void *arg)
{
    CS_UNUSED(l);
    CS_UNUSED(arg);
    adminconn_pause(EVUTIL_SOCKET_ERROR());
}

/* A short answer, then closed: the newcomer learns why and holds nothing. */
static void adminconn_refuse(int fd)
{
    char skip[4096];

    /* A request already here is read first: closing a socket with unread
     * bytes resets the connection, and the answer would be lost. */
    if (recv(fd, skip, sizeof(skip), MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        log_debug("admin: refusing a connection: %m");
    /* Best effort: the socket is new, its buffer has room for this. */
    if (send(fd, adminconn_busy, sizeof(adminconn_busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("admin: refusing a connection: %m");
    close(fd);
    log_limited(LOG_WARNING, "admin: connection refused: %d admin connections open (the limit)", CS_ADMIN_MAX_CONNS);
}

/* The admin socket is readable while evhttp's listener is off at the cap:
 * a connection that ended may have made room, else refuse what waits. */
static void adminconn_gate_cb(evutil_socket_t lfd, short what, void *arg)
{
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (!adminconn_at_cap()) {
        ac_full = false;
        adminconn_update();     /* the listener takes it on the next turn */
        return;
    }
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                adminconn_pause(errno);
            return;
        }
        adminconn_refuse(fd);
    }
}

int adminconn_attach(struct evhttp *http, struct evhttp_bound_socket *bound)
{
    struct event_base *base;

    ac_listener = evhttp_bound_socket_get_listener(bound);
    base = evconnlistener_get_base(ac_listener);
    ac_gate = event_new(base, evconnlistener_get_fd(ac_listener), EV_READ | EV_PERSIST, adminconn_gate_cb, NULL);
    ac_adopt = event_new(base, -1, 0, adminconn_adopt_cb, NULL);
    ac_resume = evtimer_new(base, adminconn_resume_cb, NULL);
    if (!ac_gate || !ac_adopt || !ac_resume) {
        log_error("admin_listen: out of memory");
        adminconn_free();
        return CS_ERR;
    }
    evconnlistener_set_error_cb(ac_listener, adminconn_error_cb);
    evhttp_set_bevcb(http, adminconn_bev, NULL);
    return CS_OK;
}

void adminconn_free(void)
{
    ac_listener = NULL;         /* evhttp_free frees it */
    for (int i = 0; i < ac_nnew; i++)
        bufferevent_decref(ac_new[i]);
    ac_nnew = ac_npeers = 0;
    ac_full = ac_paused = false;
    if (ac_gate)
        event_free(ac_gate);
    if (ac_adopt)
        event_free(ac_adopt);
    if (ac_resume)
        event_free(ac_resume);
    ac_gate = ac_adopt = ac_resume = NULL;
}
