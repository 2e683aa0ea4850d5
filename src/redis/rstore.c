/* SPDX-License-Identifier: BSD-3-Clause */
/* rstore.c - the Redis side as the rest of the daemon sees it: what it
 * is told at start, kept; commands and scripts handed to the configured
 * topology's operations table (rtopo.h):
 *   standalone: one command link and one notice subscriber to the
 *               configured server (rstandalone.c);
 *   sentinel:   the same two links, pointed at the primary the sentinels
 *               name and moved when it changes (rsentinel.c);
 *   cluster:    each command routed by its key's hash slot (rcluster.c). */
#include "core.h"
#include "rstore.h"
#include "rtopo.h"
#include "rtrack.h"
#include "rlink.h"
#include "rio.h"
#include "rscript.h"
#include "rsub.h"
#include "rtls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every topology; the mode names are theirs. */
static const struct rtopo *const rstore_topos[] = { &rstandalone_topo, &rsentinel_topo, &rcluster_topo };
const char rstore_mode_names[] = "standalone, sentinel, cluster";

/* Before rstore_init and after rstore_free: standalone with no links,
 * which is not ready. */
static const struct rtopo *rs_topo = &rstandalone_topo;
static struct rstore_conf rs_conf;      /* what rstore_init was told, copied */
static struct cs_addr *rs_nodes_copy, *rs_sentinels_copy;

void (*rstore_on_notice)(const char *chan, size_t len, const char *msg, size_t msglen);
void (*rstore_on_listening)(const char *chan, size_t len);
void (*rstore_on_subscribed)(void);
void (*rstore_on_invalidate)(const char *key, size_t len);
void (*rstore_on_tracking)(bool on);

static const char *rstore_dup(const char *s)
{
    return cs_strndup(s ? s : "", s ? strlen(s) : 0);
}

static struct cs_addr *rstore_addrs(const struct cs_addr *a, int n)
{
    struct cs_addr *copy = cs_calloc(n > 0 ? (size_t)n : 1, sizeof(*copy));

    if (n > 0)
        memcpy(copy, a, sizeof(*copy) * (size_t)n);
    return copy;
}

/* The strings and lists are the caller's: a reload may free them. */
static void rstore_conf_copy(const struct rstore_conf *c)
{
    rs_conf = *c;
    rs_conf.mode = rstore_dup(c->mode);
    rs_conf.host = rstore_dup(c->host);
    rs_conf.unix_socket = rstore_dup(c->unix_socket);
    rs_conf.master_name = rstore_dup(c->master_name);
    rs_conf.username = rstore_dup(c->username);
    rs_conf.password = rstore_dup(c->password);
    rs_conf.channel = rstore_dup(c->channel);
    rs_conf.nnodes = c->nnodes > 0 ? c->nnodes : 0;
    rs_conf.nsentinels = c->nsentinels > 0 ? c->nsentinels : 0;
    rs_conf.nodes = rs_nodes_copy = rstore_addrs(c->nodes, rs_conf.nnodes);
    rs_conf.sentinels = rs_sentinels_copy = rstore_addrs(c->sentinels, rs_conf.nsentinels);
}

static void rstore_conf_free(void)
{
    free((char *)rs_conf.mode);
    free((char *)rs_conf.host);
    free((char *)rs_conf.unix_socket);
    free((char *)rs_conf.master_name);
    free((char *)rs_conf.username);
    free((char *)rs_conf.password);
    free((char *)rs_conf.channel);
    free(rs_nodes_copy);
    free(rs_sentinels_copy);
    rs_nodes_copy = rs_sentinels_copy = NULL;
    memset(&rs_conf, 0, sizeof(rs_conf));
}

int rstore_init(const struct rstore_conf *c, char *err, size_t errsize)
{
    const struct rtopo *t = NULL;

    for (size_t i = 0; i < CS_ARRAY_LEN(rstore_topos); i++)
        if (c->mode && strcmp(c->mode, rstore_topos[i]->name) == 0)
            t = rstore_topos[i];
    if (!t) {
        snprintf(err, errsize, "unknown mode '%s' (known: %s)", c->mode ? c->mode : "", rstore_mode_names);
        return CS_ERR;
    }
    if (c->tls && rtls_init(c->tls_ca_file, c->tls_cert_file, c->tls_key_file, c->tls_server_name, err,
                            errsize) != CS_OK)
        return CS_ERR;
    rs_topo = t;
    rstore_conf_copy(c);
    rlink_init(&rs_conf);
    rsub_init(rs_topo->sub_for, rs_topo->stale);
    rtrack_init(c->tracking);
    rs_topo->init(&rs_conf);
    return CS_OK;
}

int rstore_reload_tls(char *err, size_t errsize)
{
    return rtls_reload(err, errsize);
}

void rstore_free(void)
{
    rs_topo->free();
    rsub_free();
    rlink_shutdown();
    rscript_free();
    rstore_conf_free();
    rtls_free();
    rs_topo = &rstandalone_topo;
}

uint64_t rstore_tracking(void)
{
    return rtrack_gen();
}

bool rstore_ready(void)
{
    return rs_topo->ready();
}

void rstore_flush(void)
{
    rio_flush();
}

bool rstore_ready_for(const char *key, size_t len)
{
    return rs_topo->ready_for(key, len);
}

const char *rstore_status(void)
{
    return rs_topo->status();
}

void rstore_report(struct stats_sink *s)
{
    rs_topo->report(s);
}

void rstore_links(struct rstore_links *l)
{
    rs_topo->links(l);
}

void rstore_prom_mode(struct prom *p)
{
    rs_topo->prom(p);
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    return rs_topo->cmd(cb, priv, argc, argv, lens);
}

int rstore_eval(int s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
    if (s < 0 || s >= rscript_count())
        return CS_ERR;
    return rs_topo->eval(s, false, cb, priv, nkeys, argc, argv, lens);
}

int rstore_eval_each(int s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
    if (s < 0 || s >= rscript_count())
        return CS_ERR;
    return rs_topo->eval(s, true, cb, priv, nkeys, argc, argv, lens);
}

uint64_t rstore_epoch(void)
{
    return rs_topo->epoch();
}

int rstore_servers(unsigned *ids, int max)
{
    return rs_topo->servers(ids, max);
}

int rstore_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    return rs_topo->cmd_at(id, cb, priv, argc, argv, lens);
}

int rstore_settle(rstore_settle_cb cb, void *priv)
{
    return rs_topo->settle(cb, priv);
}

enum rstore_listen rstore_listen(const char *chan, size_t len)
{
    return rsub_listen(chan, len);
}

void rstore_unlisten(const char *chan, size_t len)
{
    rsub_unlisten(chan, len);
}
