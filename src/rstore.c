/* SPDX-License-Identifier: BSD-3-Clause */
/* rstore.c - the Redis side as the rest of the daemon sees it: commands
 * and scripts go to the right link for the configured mode.
 *   standalone: one command link and one fill-notice subscriber to the
 *               configured server (the hit path: one call down to rnode);
 *   sentinel:   the same two links, pointed at the primary rsentinel.c
 *               finds and moved when it changes;
 *   cluster:    rcluster.c routes each command by its key's hash slot. */
#include "core.h"
#include "rstore.h"
#include "rnode.h"
#include "rio.h"
#include "rcluster.h"
#include "rsentinel.h"
#include "rsub.h"
#include "config.h"
#include "log.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

static struct rnode *rs_cmd, *rs_sub;
static long long rs_mode;
static char rs_chan[300];
static uint64_t rs_epoch;       /* the command link's server may have changed: see rstore_epoch */

void (*rstore_on_notice)(const char *chan, size_t len, const char *msg, size_t msglen);
void (*rstore_on_listening)(const char *chan, size_t len);
void (*rstore_on_subscribed)(void);

static void rstore_sub_up(struct rnode *n, void *owner)
{
    CS_UNUSED(owner);
    rsub_link_up(n);
    /* Notices published while we were away are lost. */
    if (rstore_on_subscribed)
        rstore_on_subscribed();
}

static void rstore_sub_down(struct rnode *n, void *owner)
{
    CS_UNUSED(owner);
    rsub_link_down(n);
}

static void rstore_sub_message(struct rnode *n, void *owner, const redisReply *msg)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rsub_message(msg);
}

static void rstore_sub_listened(struct rnode *n, void *owner, const char *chan, size_t len, bool on,
                                const char *err)
{
    CS_UNUSED(owner);
    rsub_listened(n, chan, len, on, err);
}

static const struct rnode_hooks rstore_sub_hooks = { .up = rstore_sub_up, .down = rstore_sub_down,
                                                     .message = rstore_sub_message,
                                                     .listened = rstore_sub_listened };

/* Where a channel is listened on: the one subscriber, or the cluster
 * node of its slot. */
static struct rnode *rstore_place(const char *chan, size_t len)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_sub_for(chan, len);
    return rs_sub;
}

enum rstore_listen rstore_listen(const char *chan, size_t len)
{
    return rsub_listen(chan, len);
}

void rstore_unlisten(const char *chan, size_t len)
{
    rsub_unlisten(chan, len);
}

/* Standalone: the server may come back restarted, its keys elsewhere in
 * its table. */
static void rstore_cmd_down(struct rnode *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rs_epoch++;
}

static const struct rnode_hooks rstore_cmd_hooks = { .down = rstore_cmd_down };

/* Sentinel: the primary's link failed or says it is a replica now. */
static void rstore_primary_lost(struct rnode *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rs_epoch++;
    rsentinel_lost();
}

/* -READONLY: the server we write to was demoted. Reconnecting checks ROLE
 * again, and the sentinels are asked where the primary went. */
static void rstore_primary_readonly(struct rnode *n, void *owner)
{
    CS_UNUSED(owner);
    log_warn("redis: %s:%d answers READONLY: no longer the primary", rnode_host(n), rnode_port(n));
    rs_epoch++;
    rnode_target(n, rnode_host(n), rnode_port(n));
    rsentinel_lost();
}

static void rstore_primary_up(struct rnode *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rsentinel_ok();
}

static const struct rnode_hooks rstore_primary_hooks = { .up = rstore_primary_up, .down = rstore_primary_lost,
                                                         .readonly = rstore_primary_readonly };

/* Sentinel named the primary: move both links there unless they are. */
static void rstore_primary_found(const char *host, int port)
{
    /* The same address: the link's own reconnects go on (a replica that
     * has not been promoted yet keeps failing ROLE until it is). */
    if (strcmp(rnode_host(rs_cmd), host) != 0 || rnode_port(rs_cmd) != port) {
        rs_epoch++;
        rnode_target(rs_cmd, host, port);
    }
    if (strcmp(rnode_host(rs_sub), host) != 0 || rnode_port(rs_sub) != port)
        rnode_target(rs_sub, host, port);
}

void rstore_init(void)
{
    const struct cs_config *c = cs_conf;

    rs_mode = c->redis_mode;
    cs_fills_channel(rs_chan, sizeof(rs_chan), c->key_prefix);
    rnode_init();
    rsub_init(rstore_place, rs_mode == RM_CLUSTER ? rcluster_stale : NULL);
    switch (rs_mode) {
    case RM_CLUSTER:
        rcluster_init(rs_chan, &rstore_sub_hooks);
        break;
    case RM_SENTINEL:
        rs_cmd = rnode_new("redis", NULL, 0, NULL, RN_SCRIPTS | RN_ROLE, NULL, &rstore_primary_hooks, NULL);
        rs_sub = rnode_new("redis subscriber", NULL, 0, NULL, RN_SUBSCRIBER, rs_chan, &rstore_sub_hooks, NULL);
        rsentinel_init(rstore_primary_found);
        break;
    default:
        rs_cmd = rnode_new("redis", c->redis_host, (int)c->redis_port, c->redis_unix_socket, RN_SCRIPTS, NULL,
                           &rstore_cmd_hooks, NULL);
        rs_sub = rnode_new("redis subscriber", c->redis_host, (int)c->redis_port, c->redis_unix_socket,
                           RN_SUBSCRIBER, rs_chan, &rstore_sub_hooks, NULL);
        break;
    }
}

void rstore_free(void)
{
    if (rs_mode == RM_CLUSTER)
        rcluster_free();
    if (rs_mode == RM_SENTINEL)
        rsentinel_free();
    rnode_free(rs_cmd);
    rnode_free(rs_sub);
    rs_cmd = rs_sub = NULL;
    rsub_free();
    rnode_shutdown();
}

bool rstore_ready(void)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_ready();
    return rs_cmd && rnode_up(rs_cmd);
}

void rstore_flush(void)
{
    rio_flush();
}

bool rstore_ready_for(const char *key, size_t len)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_ready_for(key, len);
    return rs_cmd && rnode_up(rs_cmd);
}

const char *rstore_status(void)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_status();
    if (rs_mode == RM_SENTINEL && !rnode_host(rs_cmd)[0])
        return rsentinel_status();
    return rnode_status(rs_cmd);
}

void rstore_report(struct stats_sink *s)
{
    if (rs_mode == RM_CLUSTER) {
        rcluster_report(s);
        rsub_report(s);
        return;
    }
    if (rs_mode == RM_SENTINEL)
        rsentinel_report_primary(s);
    rnode_report(rs_cmd, s, "redis");
    rnode_report(rs_sub, s, "redis_subscriber");
    rsub_report(s);
    if (rs_mode == RM_SENTINEL)
        rsentinel_report(s);
}

void rstore_links(struct rstore_links *l)
{
    if (rs_mode == RM_CLUSTER) {
        rcluster_links(l);
        return;
    }
    rnode_links_add(rs_cmd, l);
    rnode_links_add(rs_sub, l);
    if (rs_mode == RM_SENTINEL)
        rsentinel_links(l);
}

void rstore_prom_mode(struct prom *p)
{
    if (rs_mode == RM_CLUSTER)
        rcluster_prom(p);
    else if (rs_mode == RM_SENTINEL)
        rsentinel_prom(p);
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_cmd(cb, priv, argc, argv, lens);
    if (!rnode_up(rs_cmd))
        return CS_ERR;
    return rnode_send(rs_cmd, cb, priv, argc, argv, lens, -1);
}

int rstore_eval(enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc,
                const char **argv, const size_t *lens)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_eval(s, cb, priv, nkeys, argc, argv, lens);
    return rnode_eval(rs_cmd, s, cb, priv, nkeys, argc, argv, lens);
}

uint64_t rstore_epoch(void)
{
    return rs_mode == RM_CLUSTER ? rcluster_epoch() : rs_epoch;
}

int rstore_servers(unsigned *ids, int max)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_primaries(ids, max);
    if (max > 0)
        ids[0] = 0;
    return 1;
}

int rstore_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_cmd_at(id, cb, priv, argc, argv, lens);
    return rstore_cmd(cb, priv, argc, argv, lens);
}

int rstore_settle(rstore_settle_cb cb, void *priv)
{
    if (rs_mode == RM_CLUSTER)
        return rcluster_settle(cb, priv);
    cb(priv, RSET_SAME);
    return CS_OK;
}
