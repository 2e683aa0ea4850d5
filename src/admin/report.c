/* SPDX-License-Identifier: BSD-3-Clause */
/* report.c - gathers the figures of stats and of the modules that keep
 * state of their own (Redis links, flights, upstream pools) into one report:
 * STATS and /stats through a sink, with the flat names of docs/design.md
 * section 9; /metrics with the families of docs/admin.md, one row each. */
#include "core.h"
#include "report.h"
#include "config.h"
#include "flight.h"
#include "near.h"
#include "procstat.h"
#include "prom.h"
#include "rstore.h"
#include "rsub.h"
#include "server.h"
#include "stats.h"
#include "tlserr.h"
#include "upstream.h"

#include "autoconf.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <time.h>

static int64_t report_reload_ms;        /* wall clock; 0 = never */
static bool report_reload_ok;

void report_reload(bool ok)
{
    report_reload_ms = cs_now_ms();
    report_reload_ok = ok;
}

void report_all(struct stats_sink *s)
{
    char when[32];

    s->str(s, "build_version", "cachasided version", PACKAGE_VERSION);
    stats_report(s);
    s->num(s, SK_GAUGE, "flights_in_progress", "Fills under way in this daemon", NULL, flight_in_progress());
    s->num(s, SK_GAUGE, "near_entries", "Records in the near cache", NULL, (double)near_entries());
    s->num(s, SK_GAUGE, "near_bytes", "Bytes the near cache holds (entries, keys, replies)", NULL,
           (double)near_bytes());
    rstore_report(s);
    upstream_report(s);
    s->num(s, SK_GAUGE, "last_reload_unix_s", "When the last SIGHUP reload happened (0: never)", NULL,
           (double)(report_reload_ms / 1000));
    snprintf(when, sizeof(when), "%s", !report_reload_ms ? "none" : report_reload_ok ? "ok" : "refused");
    s->str(s, "last_reload_result", "Whether the last reload's file was taken", when);
    s->num(s, SK_GAUGE, "restart_pending", "A reload changed a key that takes effect only after a restart", NULL,
           config_restart_pending());
}

void report_text(struct evbuffer *b)
{
    struct stats_sink s;

    stats_sink_text(&s, b);
    report_all(&s);
}

void report_json(struct evbuffer *b)
{
    struct stats_sink s;

    stats_sink_json(&s, b);
    report_all(&s);
    stats_json_end(&s);
}

/* ---- /metrics ---------------------------------------------------------- */

/* Label values: a read's outcome (SH_REQ_* order), an upstream fetch's
 * result, how a waiting fill was woken. */
static const char *const report_outcomes[SH_REQ_N] = {
    [SH_REQ_HIT] = "hit", [SH_REQ_MISS] = "miss", [SH_REQ_STALE] = "stale", [SH_REQ_NEGATIVE] = "negative",
    [SH_REQ_ERROR] = "error", [SH_REQ_COALESCED] = "coalesced",
};
static const char *const report_results[SU_COUNT] = {
    [SU_OK] = "ok", [SU_NOT_FOUND] = "not_found", [SU_STATUS_5XX] = "status_5xx", [SU_STATUS_OTHER] = "status_other",
    [SU_TIMEOUT] = "timeout", [SU_CONNECT] = "connect", [SU_BAD_BODY] = "bad_body", [SU_TOO_LARGE] = "too_large",
};
static const char *const report_woken[SW_COUNT] = {
    [SW_NOTICE] = "notice", [SW_POLL] = "poll", [SW_LOCK_TIMEOUT] = "lock_timeout",
};

/* The namespaces, but not "" (reads that named none: reads_total only). */
#define REPORT_NS(i) for (int i = 0; i < stats_ns_count(); i++) if (stats_ns_at(i)->name[0])

static void report_build(struct prom *p)
{
    prom_sample(p, 1, "version", PACKAGE_VERSION, NULL, NULL);
}

static void report_reads(struct prom *p)
{
    for (int i = 0; i < stats_ns_count(); i++)
        for (int o = 0; o < SH_REQ_N; o++)
            prom_sample(p, (double)stats_ns_at(i)->reads[o], "namespace", stats_ns_at(i)->name, "outcome",
                        report_outcomes[o]);
}

static void report_read_duration(struct prom *p)
{
    for (int o = 0; o < SH_REQ_N; o++)
        prom_hist(p, (enum stats_hist_id)o, stats_hist_get((enum stats_hist_id)o), "outcome", report_outcomes[o]);
}

static void report_fills_led(struct prom *p)
{
    REPORT_NS(i)
        prom_sample(p, (double)stats_ns_at(i)->fills_led, "namespace", stats_ns_at(i)->name, NULL, NULL);
}

static void report_breaker(struct prom *p)
{
    REPORT_NS(i)
        prom_sample(p, (double)stats_ns_at(i)->breaker, "namespace", stats_ns_at(i)->name, NULL, NULL);
}

static void report_fill_waits(struct prom *p)
{
    REPORT_NS(i)
        for (int w = 0; w < SW_COUNT; w++)
            prom_sample(p, (double)stats_ns_at(i)->waits[w], "namespace", stats_ns_at(i)->name, "woken",
                        report_woken[w]);
}

static void report_fill_waiters(struct prom *p)
{
    prom_hist(p, SH_WAITERS, stats_hist_get(SH_WAITERS), NULL, NULL);
}

static void report_upstream_results(struct prom *p)
{
    REPORT_NS(i)
        for (int r = 0; r < SU_COUNT; r++)
            prom_sample(p, (double)stats_ns_at(i)->upstream[r], "namespace", stats_ns_at(i)->name, "result",
                        report_results[r]);
}

static void report_upstream_duration(struct prom *p)
{
    REPORT_NS(i)
        prom_hist(p, SH_UPSTREAM, &stats_ns_at(i)->upstream_h, "namespace", stats_ns_at(i)->name);
}

static void report_upstream_bytes(struct prom *p)
{
    REPORT_NS(i)
        prom_sample(p, (double)stats_ns_at(i)->upstream_bytes, "namespace", stats_ns_at(i)->name, NULL, NULL);
}

static void report_up_connections(struct prom *p) { upstream_prom(p, UPM_CONNECTIONS); }
static void report_up_busy(struct prom *p) { upstream_prom(p, UPM_BUSY); }
static void report_up_queued(struct prom *p) { upstream_prom(p, UPM_QUEUED); }

static void report_redis_duration(struct prom *p)
{
    prom_hist(p, SH_REDIS, stats_hist_get(SH_REDIS), NULL, NULL);
}

static void report_disconnects(struct prom *p)
{
    prom_sample(p, (double)stats_c.protocol_errors, "reason", "protocol_error", NULL, NULL);
    prom_sample(p, (double)stats_c.output_limit_disconnects, "reason", "output_limit", NULL, NULL);
    prom_sample(p, (double)stats_c.idle_disconnects, "reason", "idle_timeout", NULL, NULL);
    prom_sample(p, (double)stats_c.clients_killed, "reason", "killed", NULL, NULL);
}

/* Every peer and reason, zeros included: an alert needs the series first. */
static void report_tls_errors(struct prom *p)
{
    for (int peer = 0; peer < TLSERR_NPEERS; peer++)
        for (int r = 0; r < TLSERR_NREASONS; r++)
            prom_sample(p, (double)tlserr_count((enum tlserr_peer)peer, (enum tlserr_reason)r), "peer",
                        tlserr_peer_names[peer], "reason", tlserr_reason_names[r]);
}

static double report_reload_successful(void) { return !report_reload_ms || report_reload_ok; }
static double report_reload_seconds(void) { return (double)report_reload_ms / 1000; }
static double report_restart_pending(void) { return config_restart_pending(); }
static double report_draining(void) { return server_stopping(); }
static double report_fills_in_progress(void) { return flight_in_progress(); }
static double report_redis_up(void) { return !rstore_status(); }
static double report_degraded(void) { return !!rstore_status(); }
static double report_clients(void) { return (double)stats_c.clients_connected; }
static double report_notice_channels(void) { return rsub_channels(); }
static double report_near_entries(void) { return (double)near_entries(); }
static double report_near_bytes(void) { return (double)near_bytes(); }

static void report_near_evictions(struct prom *p)
{
    prom_sample(p, (double)stats_c.near_evict_capacity, "cause", "capacity", NULL, NULL);
    prom_sample(p, (double)stats_c.near_evict_invalidation, "cause", "invalidation", NULL, NULL);
    prom_sample(p, (double)stats_c.near_evict_flush, "cause", "flush", NULL, NULL);
    prom_sample(p, (double)stats_c.near_evict_expired, "cause", "expired", NULL, NULL);
}

static double report_redis_pending(void)
{
    struct rstore_links l = { 0, 0 };

    rstore_links(&l);
    return l.pending;
}

static double report_redis_reconnects(void)
{
    struct rstore_links l = { 0, 0 };

    rstore_links(&l);
    return (double)l.reconnects;
}

/* One family a row: a counter of stats_c, a gauge's function, or a writer
 * of labelled samples. */
static const struct report_row {
    const char *name, *type, *help;
    const uint64_t *ctr;
    double (*gauge)(void);
    void (*write)(struct prom *p);
} report_rows[] = {
#define R_CTR(n, f, h) { "cachasided_" n, "counter", h, &stats_c.f, NULL, NULL }
#define R_GAUGE(n, f, h) { "cachasided_" n, "gauge", h, NULL, f, NULL }
#define R_MANY(n, t, f, h) { "cachasided_" n, t, h, NULL, NULL, f }
    R_MANY("build_info", "gauge", report_build, "The version running, always 1"),
    R_GAUGE("config_last_reload_successful", report_reload_successful,
            "Whether the last SIGHUP reload's file was taken (1 when never reloaded)"),
    R_GAUGE("config_last_reload_timestamp_seconds", report_reload_seconds,
            "When the last SIGHUP reload happened, seconds since the epoch (0: never)"),
    R_GAUGE("restart_pending", report_restart_pending,
            "A reload changed a key that takes effect only after a restart"),
    R_GAUGE("draining", report_draining, "SIGTERM received: finishing the requests under way"),
    R_MANY("reads_total", "counter", report_reads, "Client reads, each counted once by the outcome its reply carried"),
    R_MANY("read_duration_seconds", "histogram", report_read_duration, "Client read latency by outcome"),
    R_GAUGE("fills_in_progress", report_fills_in_progress, "Fills under way in this daemon"),
    R_MANY("fills_led_total", "counter", report_fills_led, "Fills this daemon fetched from the upstream"),
    R_MANY("fill_waits_total", "counter", report_fill_waits,
           "Fills that waited for another daemon's fill, by what ended the wait"),
    R_CTR("fills_overtaken_total", fills_overtaken,
          "Misses that did not join a fill under way here: a write had revoked it"),
    R_MANY("fill_waiters", "histogram", report_fill_waiters, "Requests answered by one fill"),
    R_CTR("early_refreshes_total", early_refreshes,
          "Background refreshes a hit started before its record expired (early_refresh_beta)"),
    R_CTR("early_refresh_failures_total", early_refresh_failures,
          "Early refreshes whose fetch failed or was refused: the record was left as it was"),
    R_MANY("breaker_state", "gauge", report_breaker,
           "Circuit breaker state as this daemon last learned it: 0 closed, 1 open, 2 half-open"),
    R_CTR("breaker_changes_total", breaker_changes, "Circuit breaker state changes this daemon's reports made"),
    R_CTR("breaker_refused_total", breaker_refused,
          "Misses answered -UPSTREAM unavailable at once: their namespace's breaker was open"),
    R_MANY("upstream_requests_total", "counter", report_upstream_results, "Upstream fetches sent, by result"),
    R_MANY("upstream_duration_seconds", "histogram", report_upstream_duration,
           "Upstream fetch latency, queueing for a connection included"),
    R_MANY("upstream_response_bytes_total", "counter", report_upstream_bytes, "Upstream response body bytes received"),
    R_MANY("upstream_connections", "gauge", report_up_connections, "Keep-alive connections open per upstream host"),
    R_MANY("upstream_busy", "gauge", report_up_busy, "Upstream connections with a fetch under way, per host"),
    R_MANY("upstream_queued", "gauge", report_up_queued, "Fetches waiting for a connection, per host"),
    R_MANY("tls_errors_total", "counter", report_tls_errors,
           "TLS handshakes with Redis or an https upstream that failed, by peer and reason"),
    R_GAUGE("redis_up", report_redis_up, "Every Redis link needed to serve reads is up"),
    R_GAUGE("degraded", report_degraded, "Reads bypass Redis and go straight to the upstream"),
    R_MANY("redis_duration_seconds", "histogram", report_redis_duration, "Redis command round trips"),
    R_CTR("redis_errors_total", redis_errors, "Redis commands that failed or timed out"),
    { "cachasided_redis_reconnects_total", "counter", "Redis connection attempts after each link's first", NULL,
      report_redis_reconnects, NULL },
    R_GAUGE("redis_pending", report_redis_pending, "Redis commands sent and not yet answered"),
    R_GAUGE("notice_channels", report_notice_channels, "Key channels listened on now (waiting fills)"),
    R_CTR("notice_subscribes_total", notice_subscribes, "Key channels subscribed to"),
    R_CTR("notices_received_total", notices_received, "Fill notices heard on the channels of keys waited on"),
    R_CTR("near_hits_total", near_hits, "Reads answered from the near cache, without Redis"),
    R_CTR("near_misses_total", near_misses, "Reads of near-cached namespaces the near cache could not answer"),
    R_GAUGE("near_entries", report_near_entries, "Records in the near cache"),
    R_GAUGE("near_bytes", report_near_bytes, "Bytes the near cache holds (entries, keys, replies)"),
    R_MANY("near_evictions_total", "counter", report_near_evictions, "Near cache entries removed, by cause"),
    R_CTR("near_invalidation_messages_total", near_invalidations,
          "Invalidation messages heard from Redis client tracking"),
    R_GAUGE("clients_connected", report_clients, "Client connections open now"),
    R_CTR("clients_rejected_total", clients_rejected, "Connections refused at max_clients"),
    R_MANY("client_disconnects_total", "counter", report_disconnects, "Clients closed by the daemon, by reason"),
    R_CTR("client_received_bytes_total", client_bytes_in, "Bytes read from clients"),
    R_CTR("client_sent_bytes_total", client_bytes_out, "Bytes written to clients"),
    R_CTR("invalidations_total", invalidations, "Cache entries removed by DEL, UNLINK and INVALIDATE"),
    R_CTR("field_updates_total", field_updates, "Cache entries updated by HSET"),
    R_CTR("invalidate_restarts_total", invalidate_restarts,
          "INVALIDATE sweeps begun again: the slot map or primary changed under them"),
#undef R_CTR
#undef R_GAUGE
#undef R_MANY
};

void report_prometheus(struct evbuffer *b)
{
    struct prom p = { b, NULL };

    /* Every configured namespace has its series from the start, zeros
     * included: rate() and alert rules need the series before the first read. */
    for (int i = 0; cs_conf && i < cs_conf->nns; i++)
        (void)stats_ns_get(cs_conf->ns[i]->name, cs_conf->ns[i]->namelen);
    procstat_report(&p);
    for (size_t i = 0; i < CS_ARRAY_LEN(report_rows); i++) {
        const struct report_row *r = &report_rows[i];
        prom_family(&p, r->name, r->type, r->help);
        if (r->write)
            r->write(&p);
        else
            prom_sample(&p, r->ctr ? (double)*r->ctr : r->gauge(), NULL, NULL, NULL, NULL);
    }
    rstore_prom_mode(&p);       /* sentinel and cluster figures */
}
