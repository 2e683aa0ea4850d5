/* SPDX-License-Identifier: BSD-3-Clause */
/* scripts.h - the cache's Lua scripts (the lua/ sources, embedded at build),
 * registered with the Redis layer at start and run by name (scripts.c). */
#ifndef CS_SCRIPTS_H
#define CS_SCRIPTS_H

#include "core.h"
#include "rstore.h"

enum script { SCRIPT_LOCK, SCRIPT_FILL, SCRIPT_RELEASE, SCRIPT_HSET, SCRIPT_DEL, SCRIPT_TTL, SCRIPT_BREAKER, SCRIPT_COUNT };

/* Before rstore_init: the links load them as they come up. */
int scripts_init(void) CS_WUR;
/* rstore_eval and rstore_eval_each of one of them. */
int scripts_eval(enum script s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                 const size_t *lens) CS_WUR;
int scripts_eval_each(enum script s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                      const size_t *lens) CS_WUR;

#endif
