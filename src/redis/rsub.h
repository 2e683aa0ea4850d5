/* SPDX-License-Identifier: BSD-3-Clause */
/* rsub.h - the channels the daemon listens on (rsub.c), for rstore.c and
 * the topologies: which are wanted, on which subscriber link each is, and
 * setting them up again when a link or a slot moves. */
#ifndef CS_RSUB_H
#define CS_RSUB_H

#include "core.h"
#include "rstore.h"

struct rlink_hooks;

struct rlink;
struct stats_sink;

/* PLACE: the subscriber link that serves a channel now (NULL: none yet).
 * A link is asked for again whenever a channel must be set up. STALE
 * (may be NULL): Redis says a channel is elsewhere; read the map again. */
void rsub_init(struct rlink *(*place)(const char *chan, size_t len), void (*stale)(void));
void rsub_free(void);

enum rstore_listen rsub_listen(const char *chan, size_t len);
void rsub_unlisten(const char *chan, size_t len);

/* What every notice subscriber link is given to hear (rlink_new). */
extern const struct rlink_hooks rsub_hooks;
/* N is lost or about to be freed: no channel stays placed on it. */
void rsub_link_gone(struct rlink *n);
/* The slot map changed: channels go where their slot is now. */
void rsub_replace(void);

void rsub_report(struct stats_sink *s);
/* Key channels listened on now. */
int rsub_channels(void);

#endif
