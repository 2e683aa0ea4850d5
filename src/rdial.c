/* SPDX-License-Identifier: BSD-3-Clause */
/* rdial.c - finding and connecting a link's server: the address resolved
 * with the shared evdns resolver (never blocking; each attempt tries the
 * next address), the non-blocking connect, keepalive, and the reconnect
 * timer (backoff, or at once after rnode_target). Deadlines of an attempt
 * are enforced by the link's timer in rnode.c. */
#include "core.h"
#include "rnode_int.h"
#include "config.h"
#include "dns.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static void rdial_connect_cb(const redisAsyncContext *ac, int status)
{
    struct rnode *l = rnode_link_of(ac);

    if (!l)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, ac->errstr);
        rnode_note(l, "", ac->errstr);
        l->ac = NULL;
        l->state = RS_DOWN;
        l->turn++;              /* the next attempt tries the next address */
        rnode_forget(l);
        rnode_schedule(l);
        rnode_lost(l);
        return;
    }
    rnode_start_handshake(l);
}

static void rdial_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct rnode *l = rnode_link_of(ac);

    if (!l)
        return;                 /* we dropped it ourselves */
    log_warn("%s: connection lost%s%s", l->name, status == REDIS_OK ? "" : ": ",
             status == REDIS_OK ? "" : ac->errstr);
    rnode_note(l, "", "connection lost");
    l->ac = NULL;
    l->state = RS_DOWN;
    rnode_forget(l);
    rnode_schedule(l);
    rnode_lost(l);
}

/* Connect to a numeric address (or the unix socket when host is NULL). */
static void rdial_to(struct rnode *l, const char *host)
{
    redisAsyncContext *ac;

    if (host)
        ac = redisAsyncConnect(host, l->port);
    else
        ac = redisAsyncConnectUnix(l->path);
    if (!ac || ac->err) {
        log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, ac ? ac->errstr : "out of memory");
        rnode_note(l, "", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        l->state = RS_DOWN;
        rnode_schedule(l);
        rnode_lost(l);
        return;
    }
    /* Keepalive finds a peer that vanished without a FIN on an idle link.
     * A failure here is not worth the connection: clear hiredis's error. */
    if (host && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        log_info("%s: cannot enable TCP keepalive: %s", l->name, ac->c.errstr);
        ac->c.err = 0;
        ac->c.errstr[0] = '\0';
    }
    ac->data = l;
    l->ac = ac;
    l->state = RS_CONNECTING;
    l->waiting = 0;
    l->late = 0;
    l->heard = rnode_now();
    l->seen = 0;
    rio_attach(&l->ev, ac, &l->arena, rnode_on_reply, l);
    redisAsyncSetConnectCallback(ac, rdial_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rdial_disconnect_cb);
}

static void rdial_resolved_cb(int err, struct evutil_addrinfo *res, void *arg)
{
    struct rnode *l = arg;
    char addrs[RS_MAX_ADDRS][INET6_ADDRSTRLEN];
    int n = 0;

    if (err == EVUTIL_EAI_CANCEL)
        return;                 /* timed out or exiting: already handled */
    l->dns = NULL;
    for (struct evutil_addrinfo *ai = res; ai && n < RS_MAX_ADDRS; ai = ai->ai_next) {
        const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                      : ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                      : NULL;
        if (a && evutil_inet_ntop(ai->ai_family, a, addrs[n], sizeof(addrs[n])))
            n++;
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (l->state != RS_RESOLVING)
        return;
    if (err || n == 0) {
        log_limited(LOG_WARNING, "%s: cannot resolve %s: %s", l->name, l->host,
                 err ? evutil_gai_strerror(err) : "no address");
        rnode_note(l, "cannot resolve host: ", err ? evutil_gai_strerror(err) : "no address");
        l->state = RS_DOWN;
        rnode_schedule(l);
        return;
    }
    log_debug("%s: %s is %s", l->name, l->host, addrs[l->turn % (unsigned)n]);
    rdial_to(l, addrs[l->turn % (unsigned)n]);
}

static bool rdial_numeric(const char *host)
{
    unsigned char buf[16];

    return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

void rdial_connect(struct rnode *l)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    l->since = rnode_now();    /* resolving counts against connect_timeout_ms */
    l->connects++;
    if (l->path || rdial_numeric(l->host)) {
        rdial_to(l, l->path ? NULL : l->host);
        rnode_arm(l);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    l->state = RS_RESOLVING;
    /* From /etc/hosts the callback runs before this returns (and NULL is
     * returned); otherwise it runs from the loop. */
    req = evdns_getaddrinfo(dns_base(), l->host, NULL, &hints, rdial_resolved_cb, l);
    if (l->state == RS_RESOLVING)
        l->dns = req;
    rnode_arm(l);
}

/* Close the link without the down hook: its owner moved it. */
void rdial_close(struct rnode *l)
{
    redisAsyncContext *ac = l->ac;

    if (l->dns)
        evdns_getaddrinfo_cancel(l->dns);
    l->dns = NULL;
    l->ac = NULL;
    l->state = RS_DOWN;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    rnode_forget(l);
}

void rdial_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rnode *l = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (l->drop_later) {
        l->drop_later = false;
        if (l->ac) {
            rnode_drop(l, "cannot send set-up commands");
            return;
        }
    }
    if (l->moving) {
        l->moving = false;
        rdial_close(l);
    }
    rdial_connect(l);
}
