/* stats.c - counters, rendered from one table. */
#include "core.h"
#include "stats.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <string.h>

struct cs_stats stats;
static int64_t stats_started_ms;

#define STAT(f) { #f, offsetof(struct cs_stats, f) }
static const struct { const char *name; size_t off; } stats_counters[] = {
    STAT(hits), STAT(misses), STAT(stale_hits), STAT(negative_hits), STAT(coalesced),
    STAT(stampedes_suppressed), STAT(lock_timeouts), STAT(upstream_requests),
    STAT(upstream_errors), STAT(redis_errors), STAT(invalidations), STAT(field_updates),
};

void stats_init(void)
{
    memset(&stats, 0, sizeof(stats));
    stats_started_ms = cs_mono_ms();
}

void stats_reset(void)
{
    int64_t clients = stats.clients_connected;

    memset(&stats, 0, sizeof(stats));
    stats.clients_connected = clients;
}

void stats_render(struct evbuffer *b)
{
    uint64_t served = stats.hits + stats.stale_hits + stats.negative_hits;
    uint64_t lookups = served + stats.misses;

    for (size_t i = 0; i < CS_ARRAY_LEN(stats_counters); i++)
        evbuffer_add_printf(b, "%s:%llu\r\n", stats_counters[i].name,
                            (unsigned long long)*(const uint64_t *)((const char *)&stats + stats_counters[i].off));
    evbuffer_add_printf(b, "clients_connected:%lld\r\n", (long long)stats.clients_connected);
    evbuffer_add_printf(b, "uptime_s:%lld\r\n", (long long)((cs_mono_ms() - stats_started_ms) / 1000));
    evbuffer_add_printf(b, "hit_rate_pct:%llu\r\n",
                        (unsigned long long)(lookups ? served * 100 / lookups : 0));
}
