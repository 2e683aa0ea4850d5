/* SPDX-License-Identifier: BSD-3-Clause */
/* rstandalone.h - one server: a command link and a subscriber link to it
 * (rstandalone.c). The sentinel topology is the same pair, pointed at the
 * primary the sentinels name, so it uses these too. */
#ifndef CS_RSTANDALONE_H
#define CS_RSTANDALONE_H

#include "core.h"
#include "rtopo.h"

struct rlink_hooks;

/* Both links, to HOST:PORT or PATH (none yet when HOST is NULL: see
 * rstandalone_target); CMD_FLAGS and CMD_HOOKS for the command link. */
void rstandalone_open(const struct rstore_conf *c, const char *host, int port, const char *path,
                      unsigned cmd_flags, const struct rlink_hooks *cmd_hooks);
void rstandalone_close(void);
struct rlink *rstandalone_cmd_link(void);
/* The server may have changed (a sweep's cursors are no good). */
void rstandalone_bump(void);
/* Both links go to HOST:PORT unless they are there already (a move of the
 * command link bumps the epoch). */
void rstandalone_target(const char *host, int port);

bool rstandalone_ready(void);
bool rstandalone_ready_for(const char *key, size_t len);
const char *rstandalone_status(void);
void rstandalone_report(struct stats_sink *s);
void rstandalone_links(struct rstore_links *l);
int rstandalone_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens);
int rstandalone_eval(int s, bool each, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                     const size_t *lens);
uint64_t rstandalone_epoch(void);
int rstandalone_servers(unsigned *ids, int max);
int rstandalone_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens);
int rstandalone_settle(rstore_settle_cb cb, void *priv);
struct rlink *rstandalone_sub_for(const char *chan, size_t len);

#endif
