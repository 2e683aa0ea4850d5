/* SPDX-License-Identifier: BSD-3-Clause */
/* rcluster.h - Redis Cluster: slot map, one link per primary, routing by
 * hash slot, MOVED/ASK (rcluster.c). */
#ifndef CS_RCLUSTER_H
#define CS_RCLUSTER_H

#include "core.h"
#include "rstore.h"

struct rnode_hooks;
struct stats_sink;

/* CHANNEL: the fill notices; SUB_HOOKS: what the subscriber hears. */
void rcluster_init(const char *channel, const struct rnode_hooks *sub_hooks);
void rcluster_free(void);
/* Some primary is up (the map is known). */
bool rcluster_ready(void);
bool rcluster_ready_for(const char *key, size_t len);
const char *rcluster_status(void);
void rcluster_report(struct stats_sink *s);
/* /metrics: every node's links, and the cluster's families. */
void rcluster_links(struct rstore_links *l);
struct prom;
void rcluster_prom(struct prom *p);
/* Routed by the key in argv[1] (any node when there is none). */
int rcluster_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens) CS_WUR;
int rcluster_eval(enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                  const size_t *lens) CS_WUR;
/* The slot map is old (a node said a channel is elsewhere): read it again. */
void rcluster_stale(void);
/* For a sweep of every primary (rstore_epoch, rstore_servers,
 * rstore_cmd_at, rstore_settle): bumped whenever a slot changes primary
 * in the map or by MOVED, or a primary's link is lost. */
uint64_t rcluster_epoch(void);
int rcluster_primaries(unsigned *ids, int max);
int rcluster_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens) CS_WUR;
/* Reads the map again, then asks each primary whether it still is one
 * and has no slot migrating: RSET_MOVING if not, RSET_FAILED when one
 * cannot be asked. CS_ERR: no node to ask (cb not called). */
int rcluster_settle(rstore_settle_cb cb, void *priv) CS_WUR;
/* The subscriber link of the primary that serves CHAN's slot, or NULL. */
struct rnode *rcluster_sub_for(const char *chan, size_t len);

#endif
