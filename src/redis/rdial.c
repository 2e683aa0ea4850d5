/* SPDX-License-Identifier: BSD-3-Clause */
/* rdial.c - finding and connecting a link's server: the address resolved
 * with the shared evdns resolver (never blocking; each attempt tries the
 * next address), the non-blocking connect, keepalive, and the reconnect
 * timer (backoff, or at once after rlink_target). Deadlines of an attempt
 * are enforced by the link's timer in rlink.c. */
#include "core.h"
#include "rlink_int.h"
#include "dns.h"
#include "log.h"
#include "rtls.h"
#include "tlserr.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define RDIAL_KEEPALIVE_S 15     /* idle seconds before TCP keepalive probes */

void rdial_tls_log(struct rlink *l, int reason, const char *what, const char *why)
{
    unsigned held;
    char more[64] = "";

    if (!tlserr_note(TLSERR_REDIS, l->name, (enum tlserr_reason)reason, &held))
        return;
    if (held)
        snprintf(more, sizeof(more), " (%u more not logged)", held);
    log_warn("%s: %s: %s%s", l->name, what, why, more);
}

/* The connect is done: the set-up starts, or the next attempt is due. */
static void rdial_connected(void *owner, const char *err)
{
    struct rlink *l = owner;

    if (err) {
        if (l->ev.tls_failed)
            rdial_tls_log(l, l->ev.tls_failed - 1, "cannot connect", err);
        else
            log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, err);
        rlink_note(l, "", err);
        l->state = RLINK_DOWN;
        l->turn++;              /* the next attempt tries the next address */
        rlink_forget(l);
        rlink_schedule(l);
        rlink_lost(l);
        return;
    }
    rlink_start_handshake(l);
}

static void rdial_lost(void *owner, const char *why)
{
    struct rlink *l = owner;

    if (l->ev.tls_failed)
        rdial_tls_log(l, l->ev.tls_failed - 1, "connection lost", why);
    else
        log_warn("%s: connection lost: %s", l->name, why);
    rlink_note(l, "connection lost: ", why);
    l->state = RLINK_DOWN;
    rlink_forget(l);
    rlink_schedule(l);
    rlink_lost(l);
}

const struct rio_owner rdial_io = { .connected = rdial_connected, .reply = rlink_on_reply, .lost = rdial_lost };

/* Connect to a numeric address (or the unix socket when host is NULL). */
static void rdial_to(struct rlink *l, const char *host)
{
    char err[160];

    /* TLS names the host as configured or announced, not the address it
     * resolved to (rtls.c: unless tls_server_name says otherwise). */
    const char *tls_name = host && rtls_on() ? l->host : NULL;

    if (rio_open(&l->ev, host, l->port, l->path, tls_name, RDIAL_KEEPALIVE_S, err, sizeof(err)) != CS_OK) {
        log_limited(LOG_WARNING, "%s: cannot connect: %s", l->name, err);
        rlink_note(l, "", err);
        l->state = RLINK_DOWN;
        rlink_schedule(l);
        rlink_lost(l);
        return;
    }
    l->state = RLINK_CONNECTING;
    l->waiting = 0;
    l->late = 0;
    l->heard = rlink_now();
    l->seen = 0;
}

static void rdial_resolved_cb(int err, struct evutil_addrinfo *res, void *arg)
{
    struct rlink *l = arg;
    char addrs[RLINK_MAX_ADDRS][INET6_ADDRSTRLEN];
    int n = 0;

    if (err == EVUTIL_EAI_CANCEL)
        return;                 /* timed out or exiting: already handled */
    l->dns = NULL;
    for (struct evutil_addrinfo *ai = res; ai && n < RLINK_MAX_ADDRS; ai = ai->ai_next) {
        const void *a = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                      : ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                      : NULL;
        if (a && evutil_inet_ntop(ai->ai_family, a, addrs[n], sizeof(addrs[n])))
            n++;
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (l->state != RLINK_RESOLVING)
        return;
    if (err || n == 0) {
        log_limited(LOG_WARNING, "%s: cannot resolve %s: %s", l->name, l->host,
                 err ? evutil_gai_strerror(err) : "no address");
        rlink_note(l, "cannot resolve host: ", err ? evutil_gai_strerror(err) : "no address");
        l->state = RLINK_DOWN;
        rlink_schedule(l);
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

void rdial_connect(struct rlink *l)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;

    l->since = rlink_now();    /* resolving counts against connect_timeout_ms */
    l->connects++;
    if (l->path || rdial_numeric(l->host)) {
        rdial_to(l, l->path ? NULL : l->host);
        rlink_arm(l);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    l->state = RLINK_RESOLVING;
    /* From /etc/hosts the callback runs before this returns (and NULL is
     * returned); otherwise it runs from the loop. */
    req = evdns_getaddrinfo(dns_base(), l->host, NULL, &hints, rdial_resolved_cb, l);
    if (l->state == RLINK_RESOLVING)
        l->dns = req;
    rlink_arm(l);
}

/* Close the link without the down hook: its owner moved it. */
void rdial_close(struct rlink *l)
{
    if (l->dns)
        evdns_getaddrinfo_cancel(l->dns);
    l->dns = NULL;
    rio_close(&l->ev);
    l->state = RLINK_DOWN;
    rlink_forget(l);
}

void rdial_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rlink *l = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (l->drop_later) {
        l->drop_later = false;
        if (rio_live(&l->ev)) {
            rlink_drop(l, "cannot send set-up commands");
            return;
        }
    }
    if (l->moving) {
        l->moving = false;
        rdial_close(l);
    }
    rdial_connect(l);
}
