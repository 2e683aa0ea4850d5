/* SPDX-License-Identifier: BSD-3-Clause */
/* stats.h - the counters and latency histograms of docs/design.md section 9, and the
 * sink interface STATS and /stats are written through. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include "core.h"

struct cs_stats {
    uint64_t hits, misses, stale_hits, negative_hits, coalesced, stampedes_suppressed,
        lock_timeouts, upstream_requests, upstream_errors, redis_errors, invalidations,
        field_updates;
    /* What an operator needs beyond the list in docs/design.md. */
    uint64_t fills_led, fills_woken_by_notice, fills_woken_by_poll, lock_acquisitions_lost,
        clients_rejected, protocol_errors, output_limit_disconnects, notices_received, notice_subscribes,
        near_hits, near_misses, near_invalidations, near_evict_capacity, near_evict_invalidation,
        near_evict_flush, near_evict_expired, near_keeps_cancelled,
        fills_overtaken, invalidate_restarts;
    /* Early refresh (xfetch.c) and the circuit breaker (breaker.c). */
    uint64_t early_refreshes, early_refresh_failures, breaker_changes, breaker_refused;
    /* For /metrics: client traffic and why clients were closed (the other
     * reasons are protocol_errors and output_limit_disconnects). */
    uint64_t client_bytes_in, client_bytes_out, idle_disconnects, clients_killed;
    int64_t clients_connected;  /* a gauge: STATS RESET leaves it */
};

extern struct cs_stats stats_c;

/* Latency histograms: fixed buckets, microseconds, no allocation per
 * sample. The SH_REQ_* ids are also a read's outcome (req->outcome), the
 * index of stats_ns.reads. */
enum stats_hist_id {
    SH_REQ_HIT, SH_REQ_MISS, SH_REQ_STALE, SH_REQ_NEGATIVE, SH_REQ_ERROR, SH_REQ_COALESCED,
    SH_REDIS, SH_UPSTREAM, SH_WAITERS, SH_COUNT
};
#define SH_REQ_N (SH_REQ_COALESCED + 1)

/* 1, 1.5, 2, 2.5, 3.5, 5, 7.5 per decade from 50 us to 15 s: every bound
 * /metrics exports is one of them (stats_hist_le). */
#define STATS_NBUCKETS 39

struct stats_hist {
    uint64_t n[STATS_NBUCKETS + 1];     /* the last one: above the top bound */
    uint64_t count;
    uint64_t sum;
};

void stats_observe(enum stats_hist_id h, uint64_t v);
/* Estimated value at quantile q (0..1), interpolated inside its bucket. */
uint64_t stats_quantile(enum stats_hist_id id, const struct stats_hist *h, double q);
/* The upper bound of bucket i (microseconds, or waiters for SH_WAITERS). */
uint64_t stats_bucket_bound(enum stats_hist_id h, int i);
/* Samples <= bound, which must be one of the bucket bounds (exact). */
uint64_t stats_hist_le(enum stats_hist_id id, const struct stats_hist *h, uint64_t bound);
const struct stats_hist *stats_hist_get(enum stats_hist_id id);
void stats_hist_add(struct stats_hist *h, enum stats_hist_id id, uint64_t v);

/* What an upstream fetch ended with, for /metrics (a fetch that never got
 * a connection is not one). */
enum stats_up_result {
    SU_OK, SU_NOT_FOUND, SU_STATUS_5XX, SU_STATUS_OTHER, SU_TIMEOUT, SU_CONNECT, SU_BAD_BODY, SU_TOO_LARGE,
    SU_COUNT
};
/* How a fill that waited for another daemon's fill ended its wait. */
enum stats_wait { SW_NOTICE, SW_POLL, SW_LOCK_TIMEOUT, SW_COUNT };

/* Per-namespace figures, kept by name so that they survive reloads.
 * hits, misses, errors: STATS's, per key looked up; the rest: /metrics's. */
struct stats_ns {
    char name[64];
    uint64_t hits, misses, errors;
    uint64_t reads[SH_REQ_N];           /* per client read, by its final outcome */
    uint64_t upstream[SU_COUNT], waits[SW_COUNT], fills_led, upstream_bytes;
    struct stats_hist upstream_h;       /* an SH_UPSTREAM histogram */
    int breaker;                        /* a gauge: 0 closed, 1 open, 2 half-open */
};
struct stats_ns *stats_ns_get(const char *name, size_t len);
/* The namespaces seen so far, in order of first use. */
int stats_ns_count(void);
const struct stats_ns *stats_ns_at(int i);
/* One fetch of namespace ns's upstream: its result, duration and body bytes. */
void stats_upstream_done(const char *ns, size_t nslen, enum stats_up_result r, uint64_t us, uint64_t bytes);

/* STATS and /stats are written through a sink: one for each format.
 * label, when set, is "key=value" (a per-namespace figure). /metrics has
 * names of its own (report.c). */
enum stats_kind { SK_COUNTER, SK_GAUGE };

struct stats_sink {
    void (*num)(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                const char *label, double v);
    void (*str)(struct stats_sink *s, const char *name, const char *help, const char *v);
    void (*hist)(struct stats_sink *s, enum stats_hist_id id, const char *name, const char *help,
                 const char *label, const struct stats_hist *h);
    void *ctx;
};

void stats_init(void);
void stats_reset(void);
int64_t stats_uptime_s(void);   /* since stats_init (start); STATS RESET leaves it */
/* The counters, gauges and histograms this module keeps. */
void stats_report(struct stats_sink *s);
/* Sinks: STATS's "name:value\r\n" lines and /stats's flat JSON object
 * (closed by stats_json_end). */
void stats_sink_text(struct stats_sink *s, struct evbuffer *b);
void stats_sink_json(struct stats_sink *s, struct evbuffer *b);
void stats_json_end(struct stats_sink *s);

#endif
