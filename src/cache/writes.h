/* SPDX-License-Identifier: BSD-3-Clause */
/* writes.h - the write side: DEL (and UNLINK), INVALIDATE, HSET, on the
 * request side struct cache_req (cache.h). */
#ifndef CS_WRITES_H
#define CS_WRITES_H

#include "core.h"

struct cache_req;

void writes_del(struct cache_req *q);
void writes_invalidate(struct cache_req *q);
void writes_hset(struct cache_req *q);

#endif
