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
/* NODE < 0: routed by the key in argv[1] (any node when there is none);
 * else the NODE-th primary (SCAN). */
int rcluster_cmd(int node, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens) CS_WUR;
int rcluster_eval(enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                  const size_t *lens) CS_WUR;
int rcluster_nodes(void);
/* The slot map is old (a node said a channel is elsewhere): read it again. */
void rcluster_stale(void);
/* The subscriber link of the primary that serves CHAN's slot, or NULL. */
struct rnode *rcluster_sub_for(const char *chan, size_t len);

#endif
