/* SPDX-License-Identifier: BSD-3-Clause */
/* fill.h - one flight's way to a record: lock, fetch, store, or wait for
 * another daemon's fill (docs/design.md section 6, steps 3-4). */
#ifndef CS_FILL_H
#define CS_FILL_H

#include "core.h"

struct flight;

void fill_init(void);
void fill_free(void);
/* At exit, before the Redis link goes: release the fill locks we hold,
 * waiting up to timeout_ms for Redis to confirm. */
void fill_shutdown(int timeout_ms);
/* Now by Redis's clock (ms), from an offset kept without extra round trips
 * on the read path. */
int64_t fill_redis_now_ms(void);
void fill_start(struct flight *f);
/* An early refresh of a record still fresh, whose __exp its read found to
 * be exp: locks only while __exp is still that, and drops (no waiter is
 * answered) when it cannot (xfetch.c). */
void fill_start_early(struct flight *f, int64_t exp);
/* A notice for f's key (a fill done, or revoked by a write), or the
 * key's channel is listened on now: f looks again if it waits. */
void fill_notice(struct flight *f);
/* Whether a read that found no usable record, with LOCK in the record's
 * __lock (p NULL: none), may join f: only when f's answer is sure to come
 * from Redis or the upstream after that read (docs/design.md, "Writes
 * revoke fills"). */
bool fill_joinable(const struct flight *f, struct cs_str lock);
/* The lock script's late reply (rstore_late_cb): releases a lock it took
 * after all. */
struct redisReply;
void fill_lock_late(const struct redisReply *r, int nargs, const struct cs_str *args);

#endif
