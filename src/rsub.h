/* SPDX-License-Identifier: BSD-3-Clause */
/* rsub.h - the channels the daemon listens on (rsub.c), for rstore.c and
 * rcluster.c: which are wanted, on which subscriber link each is, and
 * setting them up again when a link or a slot moves. */
#ifndef CS_RSUB_H
#define CS_RSUB_H

#include "core.h"
#include "rstore.h"

struct rnode;
struct stats_sink;

/* PLACE: the subscriber link that serves a channel now (NULL: none yet).
 * A link is asked for again whenever a channel must be set up. STALE
 * (may be NULL): Redis says a channel is elsewhere; read the map again. */
void rsub_init(struct rnode *(*place)(const char *chan, size_t len), void (*stale)(void));
void rsub_free(void);

enum rstore_listen rsub_listen(const char *chan, size_t len);
void rsub_unlisten(const char *chan, size_t len);

/* What the subscriber links hear, passed on by their owner. */
void rsub_link_up(struct rnode *n);
void rsub_link_down(struct rnode *n);
void rsub_listened(struct rnode *n, const char *chan, size_t len, bool on, const char *err);
void rsub_message(const struct redisReply *msg);
/* The slot map changed: channels go where their slot is now. */
void rsub_replace(void);

void rsub_report(struct stats_sink *s);
/* Key channels listened on now. */
int rsub_channels(void);

#endif
