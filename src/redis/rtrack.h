/* SPDX-License-Identifier: BSD-3-Clause */
/* rtrack.h - Redis client tracking for a command link and the subscriber
 * its invalidations are redirected to (rtrack.c), for the topologies. */
#ifndef CS_RTRACK_H
#define CS_RTRACK_H

#include "core.h"

struct rlink;
struct redisReply;

/* One pair: CMD's reads are tracked, SUB hears the invalidations. */
struct rtrack {
    struct rlink *cmd, *sub;
    bool on;                    /* CLIENT TRACKING confirmed on cmd, redirected to sub's id now */
    unsigned asked;             /* which request the OK answers: older answers are ignored */
};

/* Whether the daemon asks for tracking at all (rstore_conf.tracking). */
void rtrack_init(bool enabled);
bool rtrack_enabled(void);
/* Either link came up (again): ask for tracking when both are up. */
void rtrack_link_up(struct rtrack *t);
/* Either link was lost: its tracking (or its redirection) is gone. */
void rtrack_link_down(struct rtrack *t);
/* MSG on SUB's __redis__:invalidate: the keys, or nil for all. */
void rtrack_message(const struct redisReply *msg);
/* rstore_tracking: the tracking generation, 0 while a pair is off. */
uint64_t rtrack_gen(void);

#endif
