/* SPDX-License-Identifier: BSD-3-Clause */
/* stats.c - counters and histograms, reported from one table through a sink
 * so that STATS and /stats can never disagree on a name; /metrics reads the
 * same figures (report.c). */
#include "core.h"
#include "stats.h"
#include "log.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_stats stats_c;
static struct stats_hist stats_h[SH_COUNT];
/* us: 1, 1.5, 2, 2.5, 3.5, 5, 7.5 per decade (steps of 1.5x at most), from
 * 50 us to 15 s, so that every bound /metrics exports is a bound here and
 * its cumulative counts are exact, while p50/p99 keep fine buckets. */
static uint64_t stats_lat_bounds[STATS_NBUCKETS];
/* By bit length of v: the first bucket whose bound is >= the smallest v
 * of that length. A length doubles and a bucket is at least 1.25x the
 * last, so the right one is at most three further on: no search per sample. */
static unsigned char stats_lat_from[65];
static int64_t stats_started_ms;

#define STATS_NS_MAX 256
static struct stats_ns stats_nss[STATS_NS_MAX];
static int stats_nns;

#define STAT(f, h) { #f, h, offsetof(struct cs_stats, f) }
static const struct { const char *name, *help; size_t off; } stats_counters[] = {
    STAT(hits, "Reads answered from a fresh cached record"),
    STAT(misses, "Reads that found no usable record in Redis"),
    STAT(stale_hits, "Reads answered from a record within grace while it is refreshed"),
    STAT(negative_hits, "Reads answered from a cached not-found"),
    STAT(coalesced, "Misses that joined a fill already under way in this daemon"),
    STAT(stampedes_suppressed, "Fills that found another daemon's lock and waited for its result"),
    STAT(lock_timeouts, "Fills that waited lock_ttl_ms and fetched themselves"),
    STAT(upstream_requests, "HTTP requests sent to upstreams"),
    STAT(upstream_errors, "Upstream fetches that failed (status, timeout, body, connection)"),
    STAT(redis_errors, "Redis commands that failed or timed out (a cluster redirection followed is not one)"),
    STAT(invalidations, "Cache entries removed by DEL, UNLINK and INVALIDATE"),
    STAT(field_updates, "Cache entries updated by HSET"),
    STAT(fills_led, "Fills this daemon fetched from the upstream"),
    STAT(fills_woken_by_notice, "Waiting fills answered after another daemon's fill notice"),
    STAT(fills_woken_by_poll, "Waiting fills answered by their fallback poll"),
    STAT(lock_acquisitions_lost, "Fill lock attempts that found the lock held"),
    STAT(clients_rejected, "Connections refused at max_clients"),
    STAT(protocol_errors, "Clients closed for a malformed or oversized request"),
    STAT(output_limit_disconnects, "Clients closed at max_output_bytes_per_client"),
    STAT(notices_received, "Fill notices (done, revoked) heard on the channels of keys this daemon waits on"),
    STAT(notice_subscribes, "Key channels subscribed to (SSUBSCRIBE sent)"),
    STAT(near_hits, "Reads answered from the near cache, without Redis"),
    STAT(near_misses, "Reads of near-cached namespaces that the near cache could not answer"),
    STAT(near_invalidations, "Invalidation messages heard from Redis client tracking"),
    STAT(near_evict_capacity, "Near cache entries evicted for near_cache_entries or near_cache_bytes"),
    STAT(near_evict_invalidation, "Near cache entries removed by a Redis invalidation"),
    STAT(near_evict_flush, "Near cache entries removed by a flush (tracking lost or re-established)"),
    STAT(near_keeps_cancelled, "Reads not kept in the near cache: their key changed (or tracking did) while they were in flight"),
    STAT(near_evict_expired, "Near cache entries found past their logical expiry"),
    STAT(fills_overtaken, "Misses that did not join a fill under way here: a write had revoked it"),
    STAT(invalidate_restarts, "INVALIDATE sweeps begun again: the slot map or primary changed under them"),
    STAT(early_refreshes, "Background refreshes a hit started before its record expired (early_refresh_beta)"),
    STAT(early_refresh_failures, "Early refreshes whose fetch failed or was refused: the record was left as it was"),
    STAT(breaker_changes, "Circuit breaker state changes this daemon's reports made (closed, open, half-open)"),
    STAT(breaker_refused, "Misses answered -UPSTREAM unavailable at once: their namespace's breaker was open"),
};

static const struct { const char *name, *label, *help; } stats_hists[SH_COUNT] = {
    [SH_REQ_HIT] = { "request_duration", "outcome=hit", "Client read latency by outcome" },
    [SH_REQ_MISS] = { "request_duration", "outcome=miss", "Client read latency by outcome" },
    [SH_REQ_STALE] = { "request_duration", "outcome=stale", "Client read latency by outcome" },
    [SH_REQ_NEGATIVE] = { "request_duration", "outcome=negative", "Client read latency by outcome" },
    [SH_REQ_ERROR] = { "request_duration", "outcome=error", "Client read latency by outcome" },
    [SH_REQ_COALESCED] = { "request_duration", "outcome=coalesced", "Client read latency by outcome" },
    [SH_REDIS] = { "redis_duration", NULL, "Redis command round trips" },
    [SH_UPSTREAM] = { "upstream_duration", NULL, "Upstream fetches, queueing included" },
    [SH_WAITERS] = { "fill_waiters", NULL, "Requests answered by one fill" },
};

void stats_init(void)
{
    static const unsigned mant[] = { 10, 15, 20, 25, 35, 50, 75 };
    uint64_t scale = 1;
    int i = 0;

    memset(&stats_c, 0, sizeof(stats_c));
    memset(stats_h, 0, sizeof(stats_h));
    for (; i < STATS_NBUCKETS; scale *= 10)
        for (size_t m = 0; m < CS_ARRAY_LEN(mant) && i < STATS_NBUCKETS; m++)
            if (mant[m] * scale >= 50)
                stats_lat_bounds[i++] = mant[m] * scale;
    i = 0;
    for (int k = 0; k <= 64; k++) {
        uint64_t least = k ? (uint64_t)1 << (k - 1) : 0;
        while (i < STATS_NBUCKETS && stats_lat_bounds[i] < least)
            i++;
        stats_lat_from[k] = (unsigned char)i;
    }
    stats_started_ms = cs_mono_ms();
}

int64_t stats_uptime_s(void)
{
    return (cs_mono_ms() - stats_started_ms) / 1000;
}

void stats_reset(void)
{
    int64_t clients = stats_c.clients_connected;

    memset(&stats_c, 0, sizeof(stats_c));
    memset(stats_h, 0, sizeof(stats_h));
    for (int i = 0; i < stats_nns; i++) {
        struct stats_ns *n = &stats_nss[i];
        char name[sizeof(n->name)];
        int breaker = n->breaker;       /* a gauge, as clients_connected */
        memcpy(name, n->name, sizeof(name));
        memset(n, 0, sizeof(*n));
        memcpy(n->name, name, sizeof(name));
        n->breaker = breaker;
    }
    stats_c.clients_connected = clients;
}

uint64_t stats_bucket_bound(enum stats_hist_id h, int i)
{
    return h == SH_WAITERS ? (uint64_t)1 << i : stats_lat_bounds[i];
}

static int stats_bits(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

void stats_observe(enum stats_hist_id h, uint64_t v)
{
    stats_hist_add(&stats_h[h], h, v);
}

const struct stats_hist *stats_hist_get(enum stats_hist_id id)
{
    return &stats_h[id];
}

uint64_t stats_hist_le(enum stats_hist_id id, const struct stats_hist *h, uint64_t bound)
{
    uint64_t cum = 0;

    for (int i = 0; i < STATS_NBUCKETS; i++) {
        cum += h->n[i];
        if (stats_bucket_bound(id, i) == bound)
            return cum;
    }
    /* A bound table out of step with the buckets. */
    cs_panic("stats: %llu is not a bucket bound", (unsigned long long)bound);
}

void stats_hist_add(struct stats_hist *s, enum stats_hist_id h, uint64_t v)
{
    int i;

    /* The first bucket whose bound is >= v; STATS_NBUCKETS when above all. */
    if (h == SH_WAITERS) {
        i = v <= 1 ? 0 : stats_bits(v - 1);
        if (i > STATS_NBUCKETS)
            i = STATS_NBUCKETS;
    } else {
        i = stats_lat_from[stats_bits(v)];
        while (i < STATS_NBUCKETS && stats_lat_bounds[i] < v)
            i++;
    }
    s->n[i]++;
    s->count++;
    s->sum += v;
}

uint64_t stats_quantile(enum stats_hist_id id, const struct stats_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (!h->count)
        return 0;
    rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count || rank < 1)
        rank++;
    for (int i = 0; i <= STATS_NBUCKETS; i++) {
        if (seen + h->n[i] >= rank) {
            uint64_t lo = i ? stats_bucket_bound(id, i - 1) : 0;
            uint64_t hi = i < STATS_NBUCKETS ? stats_bucket_bound(id, i) : lo * 2;
            double frac = (double)(rank - seen) / (double)h->n[i];
            return lo + (uint64_t)((double)(hi - lo) * frac);
        }
        seen += h->n[i];
    }
    return 0;
}

int stats_ns_count(void)
{
    return stats_nns;
}

const struct stats_ns *stats_ns_at(int i)
{
    return &stats_nss[i];
}

void stats_upstream_done(const char *ns, size_t nslen, enum stats_up_result r, uint64_t us, uint64_t bytes)
{
    struct stats_ns *n = stats_ns_get(ns, nslen);

    n->upstream[r]++;
    n->upstream_bytes += bytes;
    stats_hist_add(&n->upstream_h, SH_UPSTREAM, us);
}

struct stats_ns *stats_ns_get(const char *name, size_t len)
{
    if (len >= sizeof(stats_nss[0].name))
        len = sizeof(stats_nss[0].name) - 1;
    for (int i = 0; i < stats_nns; i++)
        if (strlen(stats_nss[i].name) == len && memcmp(stats_nss[i].name, name, len) == 0)
            return &stats_nss[i];
    if (stats_nns == STATS_NS_MAX)
        return &stats_nss[STATS_NS_MAX - 1];    /* more namespaces than anyone runs: share the last */
    memcpy(stats_nss[stats_nns].name, name, len);
    stats_nss[stats_nns].name[len] = '\0';
    return &stats_nss[stats_nns++];
}

void stats_report(struct stats_sink *s)
{
    uint64_t served = stats_c.hits + stats_c.stale_hits + stats_c.negative_hits;
    uint64_t lookups = served + stats_c.misses;
    char label[96];

    for (size_t i = 0; i < CS_ARRAY_LEN(stats_counters); i++)
        s->num(s, SK_COUNTER, stats_counters[i].name, stats_counters[i].help, NULL,
               (double)*(const uint64_t *)((const char *)&stats_c + stats_counters[i].off));
    s->num(s, SK_GAUGE, "clients_connected", "Client connections open now", NULL, (double)stats_c.clients_connected);
    s->num(s, SK_GAUGE, "uptime_s", "Seconds since start", NULL, (double)stats_uptime_s());
    s->num(s, SK_GAUGE, "hit_rate_pct", "Reads answered from the cache, percent (since start or STATS RESET)", NULL,
           (double)(lookups ? served * 100 / lookups : 0));
#define NS_FAMILY(f, h)                                                          \
    for (int i = 0; i < stats_nns; i++) {                                        \
        if (!stats_nss[i].name[0])                                               \
            continue;           /* reads that named no namespace */              \
        snprintf(label, sizeof(label), "namespace=%.63s", stats_nss[i].name);       \
        s->num(s, SK_COUNTER, "namespace_" #f, h, label, (double)stats_nss[i].f); \
    }
    NS_FAMILY(hits, "Reads answered from the cache, per namespace")
    NS_FAMILY(misses, "Reads that missed the cache, per namespace")
    NS_FAMILY(errors, "Reads answered with an error, per namespace")
#undef NS_FAMILY
    for (int i = 0; i < stats_nns; i++) {
        if (!stats_nss[i].name[0])
            continue;
        snprintf(label, sizeof(label), "namespace=%.63s", stats_nss[i].name);
        s->num(s, SK_GAUGE, "namespace_breaker", "Circuit breaker state: 0 closed, 1 open, 2 half-open", label,
               (double)stats_nss[i].breaker);
    }
    for (int i = 0; i < SH_COUNT; i++)
        s->hist(s, (enum stats_hist_id)i, stats_hists[i].name, stats_hists[i].help, stats_hists[i].label,
                &stats_h[i]);
}

/* ---- STATS: name:value lines ---------------------------------------- */

/* "namespace=product" + "namespace_hits" -> "product_hits" style names are
 * ambiguous with other counters; STATS says "namespace_hits_product". */
static void stats_flat_name(char *buf, size_t sz, const char *name, const char *label)
{
    const char *v = label ? strchr(label, '=') : NULL;

    if (v)
        snprintf(buf, sz, "%s_%s", name, v + 1);
    else
        snprintf(buf, sz, "%s", name);
}

static void stats_text_num(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                           const char *label, double v)
{
    char n[160];

    CS_UNUSED(k);
    CS_UNUSED(help);
    stats_flat_name(n, sizeof(n), name, label);
    evbuffer_add_printf(s->ctx, "%s:%.0f\r\n", n, v);
}

static void stats_text_str(struct stats_sink *s, const char *name, const char *help, const char *v)
{
    CS_UNUSED(help);
    evbuffer_add_printf(s->ctx, "%s:%s\r\n", name, v);
}

/* Histograms as count and p50/p99/p999: "request_duration_hit_p99_us". */
static void stats_flat_hist(struct stats_sink *s, enum stats_hist_id id, const char *name,
                            const char *label, const struct stats_hist *h)
{
    static const struct { const char *sfx; double q; } qs[] = { { "p50", .5 }, { "p99", .99 }, { "p999", .999 } };
    const char *unit = id == SH_WAITERS ? "" : "_us";
    char base[160], n[200];

    stats_flat_name(base, sizeof(base), name, label);
    snprintf(n, sizeof(n), "%s_count", base);
    s->num(s, SK_COUNTER, n, NULL, NULL, (double)h->count);
    for (size_t i = 0; i < CS_ARRAY_LEN(qs); i++) {
        snprintf(n, sizeof(n), "%s_%s%s", base, qs[i].sfx, unit);
        s->num(s, SK_GAUGE, n, NULL, NULL, (double)stats_quantile(id, h, qs[i].q));
    }
}

static void stats_text_hist(struct stats_sink *s, enum stats_hist_id id, const char *name, const char *help,
                            const char *label, const struct stats_hist *h)
{
    CS_UNUSED(help);
    stats_flat_hist(s, id, name, label, h);
}

void stats_sink_text(struct stats_sink *s, struct evbuffer *b)
{
    s->num = stats_text_num;
    s->str = stats_text_str;
    s->hist = stats_text_hist;
    s->ctx = b;
}

/* ---- /stats: one flat JSON object with the same names ----------------- */

static void stats_json_key(struct evbuffer *b, const char *name)
{
    /* Names are ours or namespace names (config-checked): no escaping needed
     * beyond what a namespace may hold; quote and backslash are refused by
     * the config reader, control characters cannot appear in an ini line. */
    evbuffer_add_printf(b, "%s\"%s\":", evbuffer_get_length(b) > 1 ? "," : "", name);
}

static void stats_json_num(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                           const char *label, double v)
{
    char n[160];

    CS_UNUSED(k);
    CS_UNUSED(help);
    stats_flat_name(n, sizeof(n), name, label);
    stats_json_key(s->ctx, n);
    evbuffer_add_printf(s->ctx, "%.0f", v);
}

static void stats_json_str(struct stats_sink *s, const char *name, const char *help, const char *v)
{
    struct evbuffer *b = s->ctx;

    CS_UNUSED(help);
    stats_json_key(b, name);
    evbuffer_add(b, "\"", 1);
    for (const char *p = v; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
}

void stats_sink_json(struct stats_sink *s, struct evbuffer *b)
{
    s->num = stats_json_num;
    s->str = stats_json_str;
    s->hist = stats_text_hist;
    s->ctx = b;
    evbuffer_add(b, "{", 1);
}

void stats_json_end(struct stats_sink *s)
{
    evbuffer_add(s->ctx, "}\n", 2);
}
