/* SPDX-License-Identifier: BSD-3-Clause */
/* server.c - listeners (libevent's evconnlistener), accept and the client
 * limit, the once-a-second sweep, and the graceful stop. */
#include "core.h"
#include "server.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "stats.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static struct evconnlistener *srv_tcp, *srv_unix;
static char *srv_unix_path;
static struct event *srv_sweep, *srv_grace, *srv_resume;
static bool srv_stopping;

/* Out of descriptors, a level-triggered listener would fire again at once:
 * stop listening this long, then try again. */
#define SERVER_ACCEPT_PAUSE_MS 250
/* Descriptors besides clients and admin connections: stdio, the loop,
 * listeners, Redis links, the resolver, a margin. */
#define SERVER_FD_RESERVE 32

static void server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                             struct sockaddr *sa, int salen, void *arg)
{
    static const char full[] = "-ERR max number of clients reached\r\n";
    char peer[80];
    int one = 1;

    CS_UNUSED(l);
    CS_UNUSED(salen);
    CS_UNUSED(arg);
    if (sa->sa_family == AF_UNIX) {
        snprintf(peer, sizeof(peer), "unix");
    } else {
        char host[64], port[8];
        if (getnameinfo(sa, (socklen_t)salen, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            snprintf(host, sizeof(host), "?"), snprintf(port, sizeof(port), "?");
        snprintf(peer, sizeof(peer), sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (conn_count >= cs_conf->max_clients) {
        stats_c.clients_rejected++;
        /* Best effort: the socket is new, its buffer has room for this. */
        if (write(fd, full, sizeof(full) - 1) < 0)
            log_debug("%s: refusing client: %m", peer);
        log_limited(LOG_WARNING, "%s: refused: max_clients (%lld) reached", peer, cs_conf->max_clients);
        close(fd);
        return;
    }
    conn_new(fd, peer);
}

static void server_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (srv_tcp)
        evconnlistener_enable(srv_tcp);
    if (srv_unix)
        evconnlistener_enable(srv_unix);
}

static void server_accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 0, SERVER_ACCEPT_PAUSE_MS * 1000 };

    CS_UNUSED(l);
    CS_UNUSED(arg);
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        /* Transient (ECONNABORTED...): the next accept may work. */
        log_limited(LOG_ERROR, "accept: %s", evutil_socket_error_to_string(err));
        return;
    }
    /* The pending connection stays queued, so the listener would fire
     * again at once: pause both listeners (the shortage is shared). */
    log_limited(LOG_ERROR, "accept: %s: not accepting for %d ms (%d clients; see max_clients and LimitNOFILE)",
                evutil_socket_error_to_string(err), SERVER_ACCEPT_PAUSE_MS, conn_count);
    if (srv_tcp)
        evconnlistener_disable(srv_tcp);
    if (srv_unix)
        evconnlistener_disable(srv_unix);
    if (!srv_resume)
        srv_resume = evtimer_new(cs_base, server_resume_cb, NULL);
    evtimer_add(srv_resume, &tv);
}

/* Descriptors the configuration may need: every client, every admin
 * connection and every upstream connection (over-counted when namespaces
 * share a host). */
static unsigned long long server_fds_wanted(const struct cs_config *c)
{
    unsigned long long n = (unsigned long long)c->max_clients + SERVER_FD_RESERVE;

    if (c->admin_listen[0])
        n += CS_ADMIN_MAX_CONNS;
    for (int i = 0; i < c->nns; i++)
        n += (unsigned long long)c->ns[i]->c.v[CK_UP_CONNS];
    return n;
}

void server_check_nofile(void)
{
    unsigned long long want = server_fds_wanted(cs_conf);
    struct rlimit rl;
    rlim_t old;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("getrlimit(RLIMIT_NOFILE): %m");
        return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : (rlim_t)want;
        if (rl.rlim_cur > old) {
            if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
                log_info("raised the open files limit (RLIMIT_NOFILE) from %llu to %llu for max_clients = %lld",
                         (unsigned long long)old, (unsigned long long)rl.rlim_cur, cs_conf->max_clients);
            else
                rl.rlim_cur = old;
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        log_warn("max_clients = %lld with %d namespace(s) needs about %llu open files, but RLIMIT_NOFILE is %llu "
                 "(hard limit): with more clients than it allows, accepting pauses and fetches fail; "
                 "raise LimitNOFILE= or lower max_clients",
                 cs_conf->max_clients, cs_conf->nns, want, (unsigned long long)rl.rlim_cur);
}

static int server_listen_tcp(const char *addr)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);

    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        /* A host name, not an address: resolve it once at start. */
        char host[256];
        int port;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
        char portstr[8];

        if (config_parse_addr(addr, host, sizeof(host), &port) != CS_OK)
            return CS_ERR;
        snprintf(portstr, sizeof(portstr), "%d", port);
        if (getaddrinfo(host, portstr, &hints, &res) != 0) {
            log_error("listen %s: cannot resolve host", addr);
            return CS_ERR;
        }
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        sslen = (int)res->ai_addrlen;
        freeaddrinfo(res);
    }
    srv_tcp = evconnlistener_new_bind(cs_base, server_accept_cb, NULL,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                      1024, (struct sockaddr *)&ss, sslen);
    if (!srv_tcp) {
        log_error("listen %s: %s", addr, strerror(errno));
        return CS_ERR;
    }
    evconnlistener_set_error_cb(srv_tcp, server_accept_error_cb);
    log_info("listening on %s", addr);
    return CS_OK;
}

static int server_listen_unix(const char *path, mode_t mode)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error("unix_socket %s: path too long", path);
        return CS_ERR;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("unix_socket %s: %m", path);
        return CS_ERR;
    }
    /* A stale socket from a crash would block the bind: remove it, but only
     * if nobody answers on it. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        log_error("unix_socket %s: another process is listening on it", path);
        close(fd);
        return CS_ERR;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, mode) < 0) {
        log_error("unix_socket %s: %m", path);
        close(fd);
        return CS_ERR;
    }
    srv_unix = evconnlistener_new(cs_base, server_accept_cb, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
    if (!srv_unix) {
        log_error("unix_socket %s: listen: %m", path);
        close(fd);
        return CS_ERR;
    }
    evconnlistener_set_error_cb(srv_unix, server_accept_error_cb);
    srv_unix_path = cs_strdup(path);
    log_info("listening on unix socket %s (mode %04llo)", path, (long long)mode);
    return CS_OK;
}

static void server_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (cs_conf->client_idle_timeout_s > 0)
        conn_sweep_idle(cs_mono_ms(), cs_conf->client_idle_timeout_s * 1000);
    log_repeat_flush();
    if (srv_stopping && conn_count == 0)
        event_base_loopbreak(cs_base);
}

int server_start(void)
{
    struct timeval tv = { 1, 0 };

    server_check_nofile();
    conn_init();
    if (*cs_conf->listen && server_listen_tcp(cs_conf->listen) != CS_OK)
        return CS_ERR;
    if (*cs_conf->unix_socket &&
        server_listen_unix(cs_conf->unix_socket, (mode_t)cs_conf->unix_socket_mode) != CS_OK)
        return CS_ERR;
    srv_sweep = event_new(cs_base, -1, EV_PERSIST, server_sweep_cb, NULL);
    event_add(srv_sweep, &tv);
    return CS_OK;
}

static void server_grace_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    log_warn("shutdown: %d client(s) still busy after shutdown_grace_ms, closing them", conn_count);
    event_base_loopbreak(cs_base);
}

/* Closing (not just disabling) the listeners makes new clients see a
 * refused connection at once instead of hanging until we exit. */
static void server_close_listeners(void)
{
    if (srv_tcp)
        evconnlistener_free(srv_tcp);
    if (srv_unix)
        evconnlistener_free(srv_unix);
    srv_tcp = srv_unix = NULL;
    if (srv_unix_path) {
        unlink(srv_unix_path);
        free(srv_unix_path);
        srv_unix_path = NULL;
    }
}

void server_shutdown(void)
{
    struct conn *c, *next;
    struct timeval tv;

    if (srv_stopping)
        return;
    srv_stopping = true;
    server_close_listeners();
    for (c = TAILQ_FIRST(&conn_all); c; c = next) {
        next = TAILQ_NEXT(c, link);
        conn_drain(c);
    }
    cs_ms_tv(&tv, cs_conf->shutdown_grace_ms);
    srv_grace = evtimer_new(cs_base, server_grace_cb, NULL);
    evtimer_add(srv_grace, &tv);
    /* The sweep notices when the last client is gone; make it quick. */
    event_del(srv_sweep);
    cs_ms_tv(&tv, 20);
    event_add(srv_sweep, &tv);
}

bool server_stopping(void)
{
    return srv_stopping;
}

void server_free(void)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&conn_all)) != NULL)
        conn_close(c, "shutdown");
    server_close_listeners();
    if (srv_sweep)
        event_free(srv_sweep);
    if (srv_grace)
        event_free(srv_grace);
    if (srv_resume)
        event_free(srv_resume);
    srv_sweep = srv_grace = srv_resume = NULL;
}
