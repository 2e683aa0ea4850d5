/* SPDX-License-Identifier: BSD-3-Clause */
/* rsentinel.c - the primary of a Sentinel set-up: asked with SENTINEL
 * get-master-addr-by-name (one sentinel at a time, the next one when it
 * fails or does not know), followed through +switch-master messages on a
 * subscription to a sentinel. The links to the primary are the
 * standalone pair (rstandalone.c), which this topology points at the
 * primary named and moves when it changes. */
#include "core.h"
#include "rtopo.h"
#include "rstandalone.h"
#include "rlink.h"
#include "log.h"
#include "prom.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RSN_ASK_EVERY_MS 1000   /* while the primary is lost */

static const struct rstore_conf *rsn_conf;
static const struct cs_addr *rsn_addr;
static int rsn_n, rsn_ask_at, rsn_sub_at;        /* which sentinel each link uses */
static struct rlink *rsn_ask, *rsn_sub;
static struct event *rsn_timer;
static bool rsn_need, rsn_busy;
static char rsn_primary[300];                     /* "host:port" last named, "" none */
static char rsn_error[600];
static uint64_t rsn_switches;
static int64_t rsn_switch_ms;

static void rsentinel_next(struct rlink *n, int *at)
{
    *at = (*at + 1) % rsn_n;
    rlink_target(n, rsn_addr[*at].host, rsn_addr[*at].port);
}

static void rsentinel_named(const char *host, int port, const char *how)
{
    char now[300];

    snprintf(now, sizeof(now), "%s:%d", host, port);
    if (strcmp(now, rsn_primary) != 0)
        log_notice("sentinel: primary '%s' is %s (%s)", rsn_conf->master_name, now, how);
    snprintf(rsn_primary, sizeof(rsn_primary), "%s", now);
    rstandalone_target(host, port);
}

static void rsentinel_asked_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    rsn_busy = false;
    if (cs_exiting)
        return;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        int port = atoi(r->element[1]->str);
        if (port > 0 && port <= 65535) {
            rsn_error[0] = '\0';
            rsentinel_named(r->element[0]->str, port, "asked");
            return;
        }
    }
    snprintf(rsn_error, sizeof(rsn_error), "sentinel %s:%d: %s", rsn_addr[rsn_ask_at].host,
             rsn_addr[rsn_ask_at].port, !r ? "no reply" : r->type == REDIS_REPLY_ERROR ? r->str
                                            : "does not know the master name");
    log_limited(LOG_WARNING, "%s; asking the next sentinel", rsn_error);
    rsn_need = true;
    if (rsn_n > 1)
        rsentinel_next(rsn_ask, &rsn_ask_at);
}

static void rsentinel_ask(void)
{
    const char *argv[3] = { "SENTINEL", "get-master-addr-by-name", rsn_conf->master_name };

    if (rsn_busy || !rlink_up(rsn_ask))
        return;
    if (rlink_send(rsn_ask, rsentinel_asked_cb, NULL, 3, argv, NULL, -1) == CS_OK)
        rsn_busy = true;
}

static void rsentinel_ask_up(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    if (rsn_need || !rsn_primary[0])
        rsentinel_ask();
}

static void rsentinel_ask_down(struct rlink *n, void *owner)
{
    CS_UNUSED(owner);
    rsn_busy = false;
    snprintf(rsn_error, sizeof(rsn_error), "sentinel %s:%d: %s", rsn_addr[rsn_ask_at].host,
             rsn_addr[rsn_ask_at].port, rlink_status(n) ? rlink_status(n) : "connection lost");
    if (rsn_n > 1)
        rsentinel_next(n, &rsn_ask_at);
}

/* "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>" */
static void rsentinel_message(struct rlink *n, void *owner, const redisReply *msg)
{
    char name[256], oldh[256], newh[256];
    int oldp, newp;
    const redisReply *body = msg->element[2];

    CS_UNUSED(n);
    CS_UNUSED(owner);
    if (body->type != REDIS_REPLY_STRING || body->len > 900 ||
        sscanf(body->str, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5 ||
        strcmp(name, rsn_conf->master_name) != 0 || newp < 1 || newp > 65535)
        return;
    rsn_switches++;
    rsn_switch_ms = cs_now_ms();
    log_notice("sentinel: +switch-master %s from %s:%d to %s:%d", name, oldh, oldp, newh, newp);
    rsentinel_named(newh, newp, "+switch-master");
}

static void rsentinel_sub_down(struct rlink *n, void *owner)
{
    CS_UNUSED(owner);
    if (rsn_n > 1)
        rsentinel_next(n, &rsn_sub_at);
}

/* Switches seen while the subscription was away are missed: ask. */
static void rsentinel_sub_up(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    if (rsn_primary[0])
        rsentinel_ask();
}

static const struct rlink_hooks rsn_ask_hooks = { .up = rsentinel_ask_up, .down = rsentinel_ask_down };
static const struct rlink_hooks rsn_sub_hooks = { .up = rsentinel_sub_up, .down = rsentinel_sub_down,
                                                  .message = rsentinel_message };

static void rsentinel_tick(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (rsn_need)
        rsentinel_ask();
}

/* The primary's link failed or it answered as a replica: ask again, and
 * keep asking every second until it is up. */
static void rsentinel_lost(void)
{
    rsn_need = true;
    rsentinel_ask();
}

/* The primary's link failed or says it is a replica now. */
static void rsentinel_primary_down(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rstandalone_bump();
    rsentinel_lost();
}

/* -READONLY: the server we write to was demoted. Reconnecting checks ROLE
 * again, and the sentinels are asked where the primary went. */
static void rsentinel_primary_readonly(struct rlink *n, void *owner)
{
    CS_UNUSED(owner);
    log_warn("redis: %s:%d answers READONLY: no longer the primary", rlink_host(n), rlink_port(n));
    rstandalone_bump();
    rlink_target(n, rlink_host(n), rlink_port(n));
    rsentinel_lost();
}

static void rsentinel_primary_up(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rsn_need = false;
}

static const struct rlink_hooks rsn_primary_hooks = { .up = rsentinel_primary_up, .down = rsentinel_primary_down,
                                                      .readonly = rsentinel_primary_readonly };

static void rsentinel_init(const struct rstore_conf *c)
{
    struct timeval tv;

    rsn_conf = c;
    /* Nowhere yet: the sentinels name the primary. */
    rstandalone_open(c, NULL, 0, NULL, RLINK_ROLE, &rsn_primary_hooks);
    cs_ms_tv(&tv, RSN_ASK_EVERY_MS);
    rsn_addr = c->sentinels;
    rsn_n = c->nsentinels;
    rsn_ask_at = 0;
    /* The subscription on another sentinel than the questions, when there is one. */
    rsn_sub_at = rsn_n > 1 ? 1 : 0;
    rsn_ask = rlink_new("redis sentinel", rsn_addr[rsn_ask_at].host, rsn_addr[rsn_ask_at].port, NULL, RLINK_NOAUTH,
                        NULL, &rsn_ask_hooks, NULL);
    rsn_sub = rlink_new("redis sentinel subscriber", rsn_addr[rsn_sub_at].host, rsn_addr[rsn_sub_at].port, NULL,
                        RLINK_NOAUTH | RLINK_SUBSCRIBER, "+switch-master", &rsn_sub_hooks, NULL);
    rsn_timer = event_new(cs_base, -1, EV_PERSIST, rsentinel_tick, NULL);
    event_add(rsn_timer, &tv);
}

static void rsentinel_free(void)
{
    rlink_free(rsn_ask);
    rlink_free(rsn_sub);
    rsn_ask = rsn_sub = NULL;
    if (rsn_timer)
        event_free(rsn_timer);
    rsn_timer = NULL;
    rstandalone_close();
}

/* Why no primary is known yet, or why its link is not up. */
static const char *rsentinel_status(void)
{
    if (rlink_host(rstandalone_cmd_link())[0])
        return rstandalone_status();
    return rsn_error[0] ? rsn_error : "no primary named by the sentinels yet";
}

/* First, so that on /metrics redis_mode and redis_primary sit beside the
 * primary link's redis_state (one cachasided_redis_info family). */
static void rsentinel_report_primary(struct stats_sink *s)
{
    char primary_addr[300];

    s->str(s, "redis_mode", "How Redis is found: standalone, sentinel or cluster", "sentinel");
    snprintf(primary_addr, sizeof(primary_addr), "%s", rsn_primary);
    s->str(s, "redis_primary", "The primary the sentinels named last (host:port)", primary_addr);
}

static void rsentinel_links(struct rstore_links *l)
{
    rstandalone_links(l);
    rlink_links_add(rsn_ask, l);
    rlink_links_add(rsn_sub, l);
}

static void rsentinel_prom(struct prom *p)
{
    prom_family(p, "cachasided_redis_failovers_seen_total", "counter", "Primary switches (+switch-master) seen");
    prom_sample(p, (double)rsn_switches, NULL, NULL, NULL, NULL);
}

/* The mode and the primary's address first, then the pair's links, then
 * the sentinel links and the switches seen. */
static void rsentinel_report(struct stats_sink *s)
{
    rsentinel_report_primary(s);
    rstandalone_report(s);
    rlink_report(rsn_ask, s, "redis_sentinel");
    rlink_report(rsn_sub, s, "redis_sentinel_subscriber");
    s->num(s, SK_COUNTER, "redis_failovers_seen", "Primary switches (+switch-master) seen", NULL,
           (double)rsn_switches);
    s->num(s, SK_GAUGE, "redis_last_failover_unix_s", "When the last primary switch was seen (0: never)", NULL,
           (double)(rsn_switch_ms / 1000));
}

const struct rtopo rsentinel_topo = {
    .name = "sentinel",
    .init = rsentinel_init,
    .free = rsentinel_free,
    .ready = rstandalone_ready,
    .ready_for = rstandalone_ready_for,
    .status = rsentinel_status,
    .report = rsentinel_report,
    .links = rsentinel_links,
    .prom = rsentinel_prom,
    .cmd = rstandalone_cmd,
    .eval = rstandalone_eval,
    .epoch = rstandalone_epoch,
    .servers = rstandalone_servers,
    .cmd_at = rstandalone_cmd_at,
    .settle = rstandalone_settle,
    .sub_for = rstandalone_sub_for,
    .stale = NULL,
};
