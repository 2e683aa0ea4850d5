/* SPDX-License-Identifier: BSD-3-Clause */
/* cache.h - the read side of cache-aside: the hit path, and
 * answering requests from a Redis reply or a fill's outcome. */
#ifndef CS_CACHE_H
#define CS_CACHE_H

#include "core.h"

struct outcome;
struct req_slot;

enum read_kind { RK_NONE, RK_HGETALL, RK_HGET, RK_HMGET, RK_GET, RK_MGET };

void cache_init(void);
/* Exit, before the Redis link goes: release the fill locks we hold. */
void cache_shutdown(void);
void cache_free(void);

void cache_cmd_read(struct req *r);
void cache_cmd_mget(struct req *r);
void cache_cmd_ttl(struct req *r);

#endif
