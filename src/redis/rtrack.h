/* SPDX-License-Identifier: BSD-3-Clause */
/* rtrack.h - Redis client tracking for a command link and the subscriber
 * its invalidations are redirected to (rtrack.c), for the topologies. */
#ifndef CS_RTRACK_H
#define CS_RTRACK_H

#include "core.h"

struct rlink;
struct redisReply;

/* One pair: CMD's reads are tracked, SUB hears the invalidations. A
 * server's pair is added once both links exist and removed before either
 * is freed; tracking counts as on only while every pair added is on, since
 * a read may go to any of them. */
struct rtrack {
    struct rlink *cmd, *sub;
    bool on;                    /* CLIENT TRACKING confirmed on cmd, redirected to sub's id now */
    bool added;
    unsigned asked;             /* which request the OK answers: older answers are ignored */
};

void rtrack_add(struct rtrack *t, struct rlink *cmd, struct rlink *sub);
void rtrack_remove(struct rtrack *t);
/* A subscriber link's hooks when tracking is on: rsub_hooks, and the
 * pair's tracking; its owner is its struct rtrack. */
extern const struct rlink_hooks rtrack_sub_hooks;

/* Whether the daemon asks for tracking at all (rstore_conf.tracking). */
void rtrack_init(bool enabled);
bool rtrack_enabled(void);
/* Either link came up (again): ask for tracking when both are up. */
void rtrack_link_up(struct rtrack *t);
/* Either link was lost: its tracking (or its redirection) is gone. */
void rtrack_link_down(struct rtrack *t);
/* rstore_tracking: the tracking generation, 0 while a pair is off. */
uint64_t rtrack_gen(void);

#endif
