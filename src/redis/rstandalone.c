/* SPDX-License-Identifier: BSD-3-Clause */
/* rstandalone.c - the standalone topology: one command link and one
 * notice subscriber to the configured server. The hit path is one call
 * down to rlink. The sentinel topology (rsentinel.c) runs the same pair,
 * pointed at the primary the sentinels name. */
#include "core.h"
#include "rstandalone.h"
#include "rlink.h"
#include "rsub.h"
#include "rtrack.h"
#include "stats.h"

#include <string.h>

static struct rlink *rsa_cmd, *rsa_sub;
static struct rtrack rsa_track;         /* the pair's client tracking (rtrack.c) */
static const struct rlink_hooks *rsa_cmd_owner;     /* the topology's hooks of the command link */
static uint64_t rsa_epoch;      /* the command link's server may have changed: see rstore_epoch */

/* The server may come back restarted, its keys elsewhere in its table. */
static void rstandalone_cmd_down(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    rsa_epoch++;
}

static const struct rlink_hooks rstandalone_cmd_hooks = { .down = rstandalone_cmd_down };

/* The pair's links tell tracking first, then their usual owners. */
static void rstandalone_cmd_up(struct rlink *n, void *owner)
{
    rtrack_link_up(&rsa_track);
    if (rsa_cmd_owner->up)
        rsa_cmd_owner->up(n, owner);
}

static void rstandalone_cmd_lost(struct rlink *n, void *owner)
{
    rtrack_link_down(&rsa_track);
    if (rsa_cmd_owner->down)
        rsa_cmd_owner->down(n, owner);
}

static void rstandalone_cmd_readonly(struct rlink *n, void *owner)
{
    if (rsa_cmd_owner->readonly)
        rsa_cmd_owner->readonly(n, owner);
}

static const struct rlink_hooks rstandalone_track_cmd_hooks = {
    .up = rstandalone_cmd_up, .down = rstandalone_cmd_lost, .readonly = rstandalone_cmd_readonly,
};

void rstandalone_open(const struct rstore_conf *c, const char *host, int port, const char *path,
                      unsigned cmd_flags, const struct rlink_hooks *cmd_hooks)
{
    bool track = rtrack_enabled();

    rsa_cmd_owner = cmd_hooks;
    rsa_cmd = rlink_new("redis", host, port, path, RLINK_SCRIPTS | cmd_flags, NULL,
                        track ? &rstandalone_track_cmd_hooks : cmd_hooks, NULL);
    rsa_sub = rlink_new("redis subscriber", host, port, path, RLINK_SUBSCRIBER | (track ? RLINK_INVALIDATIONS : 0),
                        c->channel, track ? &rtrack_sub_hooks : &rsub_hooks, track ? &rsa_track : NULL);
    if (track)
        rtrack_add(&rsa_track, rsa_cmd, rsa_sub);
}

void rstandalone_close(void)
{
    rtrack_remove(&rsa_track);
    rlink_free(rsa_cmd);
    rlink_free(rsa_sub);
    rsa_cmd = rsa_sub = NULL;
}

struct rlink *rstandalone_cmd_link(void)
{
    return rsa_cmd;
}

void rstandalone_bump(void)
{
    rsa_epoch++;
}

void rstandalone_target(const char *host, int port)
{
    /* The same address: the link's own reconnects go on (a replica that
     * has not been promoted yet keeps failing ROLE until it is). */
    if (strcmp(rlink_host(rsa_cmd), host) != 0 || rlink_port(rsa_cmd) != port) {
        rsa_epoch++;
        rlink_target(rsa_cmd, host, port);
    }
    if (strcmp(rlink_host(rsa_sub), host) != 0 || rlink_port(rsa_sub) != port)
        rlink_target(rsa_sub, host, port);
}

bool rstandalone_ready(void)
{
    return rsa_cmd && rlink_up(rsa_cmd);
}

bool rstandalone_ready_for(const char *key, size_t len)
{
    CS_UNUSED(key);
    CS_UNUSED(len);
    return rstandalone_ready();
}

const char *rstandalone_status(void)
{
    return rlink_status(rsa_cmd);
}

void rstandalone_report(struct stats_sink *s)
{
    rlink_report(rsa_cmd, s, "redis");
    rlink_report(rsa_sub, s, "redis_subscriber");
    rsub_report(s);
}

void rstandalone_links(struct rstore_links *l)
{
    rlink_links_add(rsa_cmd, l);
    rlink_links_add(rsa_sub, l);
}

int rstandalone_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (!rlink_up(rsa_cmd))
        return CS_ERR;
    return rlink_send(rsa_cmd, cb, priv, argc, argv, lens, -1);
}

/* One server holds every key: EACH is one command too. */
int rstandalone_eval(int s, bool each, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                     const size_t *lens)
{
    CS_UNUSED(each);
    return rlink_eval(rsa_cmd, s, cb, priv, nkeys, argc, argv, lens);
}

uint64_t rstandalone_epoch(void)
{
    return rsa_epoch;
}

int rstandalone_servers(unsigned *ids, int max)
{
    if (max > 0)
        ids[0] = 0;
    return 1;
}

int rstandalone_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    CS_UNUSED(id);
    return rstandalone_cmd(cb, priv, argc, argv, lens);
}

/* Nothing to ask: the one server holds what it held. */
int rstandalone_settle(rstore_settle_cb cb, void *priv)
{
    cb(priv, RSET_SAME);
    return CS_OK;
}

struct rlink *rstandalone_sub_for(const char *chan, size_t len)
{
    CS_UNUSED(chan);
    CS_UNUSED(len);
    return rsa_sub;
}

/* No families of its own on /metrics. */
static void rstandalone_prom(struct prom *p)
{
    CS_UNUSED(p);
}

static void rstandalone_init(const struct rstore_conf *c)
{
    rstandalone_open(c, c->host, c->port, c->unix_socket, 0, &rstandalone_cmd_hooks);
}

const struct rtopo rstandalone_topo = {
    .name = "standalone",
    .init = rstandalone_init,
    .free = rstandalone_close,
    .ready = rstandalone_ready,
    .ready_for = rstandalone_ready_for,
    .status = rstandalone_status,
    .report = rstandalone_report,
    .links = rstandalone_links,
    .prom = rstandalone_prom,
    .cmd = rstandalone_cmd,
    .eval = rstandalone_eval,
    .epoch = rstandalone_epoch,
    .servers = rstandalone_servers,
    .cmd_at = rstandalone_cmd_at,
    .settle = rstandalone_settle,
    .sub_for = rstandalone_sub_for,
    .stale = NULL,
};
