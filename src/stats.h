/* stats.h - the counters and latency histograms of docs/design.md section 9, and the
 * sink interface every report (STATS, /stats, /metrics) is written through. */
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
        fills_overtaken, invalidate_restarts;
    int64_t clients_connected;  /* a gauge: STATS RESET leaves it */
};

extern struct cs_stats stats_c;

/* Latency histograms: fixed log-scale buckets, microseconds, no allocation
 * per sample. */
enum stats_hist_id {
    SH_REQ_HIT, SH_REQ_MISS, SH_REQ_STALE, SH_REQ_NEGATIVE, SH_REQ_ERROR,
    SH_REDIS, SH_UPSTREAM, SH_WAITERS, SH_COUNT
};

#define STATS_NBUCKETS 32

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

/* Per-namespace figures, kept by name so that they survive reloads. */
struct stats_ns {
    char name[64];
    uint64_t hits, misses, errors;
};
struct stats_ns *stats_ns_get(const char *name, size_t len);

/* A report is written through a sink: one for each output format. Names are
 * the STATS names; /metrics prefixes them with cachasided_ (and _total on
 * counters). label, when set, is "key=value" (a per-namespace figure). */
enum stats_kind { SK_COUNTER, SK_GAUGE };

struct stats_sink {
    void (*num)(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                const char *label, double v);
    void (*str)(struct stats_sink *s, const char *name, const char *help, const char *v);
    void (*hist)(struct stats_sink *s, enum stats_hist_id id, const char *name, const char *help,
                 const char *label, const struct stats_hist *h);
    void *ctx;
    char family[160];           /* the Prometheus sink's current family */
};

void stats_init(void);
void stats_reset(void);
int64_t stats_uptime_s(void);   /* since stats_init (start); STATS RESET leaves it */
/* The counters, gauges and histograms this module keeps. */
void stats_report(struct stats_sink *s);
/* Sinks: STATS's "name:value\r\n" lines, /stats's flat JSON object (closed
 * by stats_json_end) and /metrics's Prometheus text format. */
void stats_sink_text(struct stats_sink *s, struct evbuffer *b);
void stats_sink_json(struct stats_sink *s, struct evbuffer *b);
void stats_json_end(struct stats_sink *s);
void stats_sink_prometheus(struct stats_sink *s, struct evbuffer *b);

#endif
