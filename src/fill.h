/* fill.h - one flight's way to a record: lock, fetch, store, or wait for
 * another daemon's fill (SPEC section 5, steps 3-5). */
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
/* A fill notice for f's key arrived on the subscriber connection. */
void fill_notice(struct flight *f);

#endif
