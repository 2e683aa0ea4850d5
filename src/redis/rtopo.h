/* SPDX-License-Identifier: BSD-3-Clause */
/* rtopo.h - a topology: how the Redis layer finds its servers and where
 * each command goes. One operations table per topology (rstandalone.c,
 * rsentinel.c, rcluster.c), named in it; rstore.c calls through the one
 * the configuration names and never asks which it is. Inside the layer. */
#ifndef CS_RTOPO_H
#define CS_RTOPO_H

#include "core.h"
#include "rstore.h"

struct rlink;
struct stats_sink;
struct prom;

struct rtopo {
    const char *name;           /* rstore_conf.mode */
    /* C stays valid until free. */
    void (*init)(const struct rstore_conf *c);
    void (*free)(void);
    bool (*ready)(void);
    bool (*ready_for)(const char *key, size_t len);
    const char *(*status)(void);
    void (*report)(struct stats_sink *s);
    void (*links)(struct rstore_links *l);
    void (*prom)(struct prom *p);
    int (*cmd)(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens);
    /* EACH: rstore_eval_each. */
    int (*eval)(int s, bool each, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                const size_t *lens);
    /* The sweep (rstore_epoch, rstore_servers, rstore_cmd_at, rstore_settle). */
    uint64_t (*epoch)(void);
    int (*servers)(unsigned *ids, int max);
    int (*cmd_at)(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens);
    int (*settle)(rstore_settle_cb cb, void *priv);
    /* The subscriber link a channel is listened on now (NULL: none yet);
     * stale, when not NULL: Redis says a channel is elsewhere. */
    struct rlink *(*sub_for)(const char *chan, size_t len);
    void (*stale)(void);
};

extern const struct rtopo rstandalone_topo, rsentinel_topo, rcluster_topo;

#endif
