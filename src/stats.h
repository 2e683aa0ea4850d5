/* stats.h - the counters of SPEC section 6. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include "core.h"

struct cs_stats {
    uint64_t hits, misses, stale_hits, negative_hits, coalesced, stampedes_suppressed,
        lock_timeouts, upstream_requests, upstream_errors, redis_errors, invalidations,
        field_updates;
    int64_t clients_connected;  /* a gauge: STATS RESET leaves it */
};

extern struct cs_stats stats;

void stats_init(void);
void stats_reset(void);
/* "name:value\r\n" lines, the body of the STATS reply. */
void stats_render(struct evbuffer *b);

#endif
