/* stats.c - counters and histograms, reported from one table through a sink
 * so that STATS, /stats and /metrics can never disagree on a name. */
#include "core.h"
#include "stats.h"

#include <event2/buffer.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct cs_stats stats_c;
static struct stats_hist stats_h[SH_COUNT];
static uint64_t stats_lat_bounds[STATS_NBUCKETS];   /* us: 50 * 1.5^i, up to ~14 s */
/* By bit length of v: the first bucket whose bound is >= the smallest v
 * of that length. A bucket is 1.5x the last and a length 2x, so the right
 * one is at most two further on: no search per sample. */
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
    STAT(fills_overtaken, "Misses that did not join a fill under way here: a write had revoked it"),
    STAT(invalidate_restarts, "INVALIDATE sweeps begun again: the slot map or primary changed under them"),
};

static const struct { const char *name, *label, *help; } stats_hists[SH_COUNT] = {
    [SH_REQ_HIT] = { "request_duration", "outcome=hit", "Client read latency by outcome" },
    [SH_REQ_MISS] = { "request_duration", "outcome=miss", "Client read latency by outcome" },
    [SH_REQ_STALE] = { "request_duration", "outcome=stale", "Client read latency by outcome" },
    [SH_REQ_NEGATIVE] = { "request_duration", "outcome=negative", "Client read latency by outcome" },
    [SH_REQ_ERROR] = { "request_duration", "outcome=error", "Client read latency by outcome" },
    [SH_REDIS] = { "redis_duration", NULL, "Redis command round trips" },
    [SH_UPSTREAM] = { "upstream_duration", NULL, "Upstream fetches, queueing included" },
    [SH_WAITERS] = { "fill_waiters", NULL, "Requests answered by one fill" },
};

void stats_init(void)
{
    uint64_t b = 50;

    memset(&stats_c, 0, sizeof(stats_c));
    memset(stats_h, 0, sizeof(stats_h));
    for (int i = 0; i < STATS_NBUCKETS; i++, b = b * 3 / 2)
        stats_lat_bounds[i] = b;
    for (int k = 0, i = 0; k <= 64; k++) {
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
    for (int i = 0; i < stats_nns; i++)
        stats_nss[i].hits = stats_nss[i].misses = stats_nss[i].errors = 0;
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
    struct stats_hist *s = &stats_h[h];
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
        snprintf(label, sizeof(label), "namespace=%.63s", stats_nss[i].name);       \
        s->num(s, SK_COUNTER, "namespace_" #f, h, label, (double)stats_nss[i].f); \
    }
    NS_FAMILY(hits, "Reads answered from the cache, per namespace")
    NS_FAMILY(misses, "Reads that missed the cache, per namespace")
    NS_FAMILY(errors, "Reads answered with an error, per namespace")
#undef NS_FAMILY
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

/* ---- /metrics: Prometheus text exposition format 0.0.4 ----------------- */

/* HELP and TYPE once per family: a family's samples come one after another. */
static bool stats_prom_family(struct stats_sink *s, const char *family, const char *type, const char *help)
{
    if (strcmp(s->family, family) == 0)
        return false;
    snprintf(s->family, sizeof(s->family), "%s", family);
    evbuffer_add_printf(s->ctx, "# HELP %s %s\n# TYPE %s %s\n", family, help ? help : family, family, type);
    return true;
}

/* label "key=value" -> {key="value"}, value escaped as the format says. */
static void stats_prom_labels(struct evbuffer *b, const char *label, const char *extra)
{
    const char *eq = label ? strchr(label, '=') : NULL;

    if (!eq && !extra)
        return;
    evbuffer_add(b, "{", 1);
    if (eq) {
        evbuffer_add(b, label, (size_t)(eq - label));
        evbuffer_add(b, "=\"", 2);
        for (const char *p = eq + 1; *p; p++) {
            if (*p == '"' || *p == '\\')
                evbuffer_add(b, "\\", 1);
            if (*p == '\n')
                evbuffer_add(b, "\\n", 2);
            else
                evbuffer_add(b, p, 1);
        }
        evbuffer_add(b, "\"", 1);
    }
    if (extra)
        evbuffer_add_printf(b, "%s%s", eq ? "," : "", extra);
    evbuffer_add(b, "}", 1);
}

static void stats_prom_num(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                           const char *label, double v)
{
    size_t n = strlen(name);
    char fam[160];

    /* Prometheus spells units out: uptime_s is cachasided_uptime_seconds. */
    if (n > 2 && strcmp(name + n - 2, "_s") == 0)
        snprintf(fam, sizeof(fam), "cachasided_%.*s_seconds", (int)(n - 2), name);
    else
        snprintf(fam, sizeof(fam), "cachasided_%s%s", name, k == SK_COUNTER ? "_total" : "");
    stats_prom_family(s, fam, k == SK_COUNTER ? "counter" : "gauge", help);
    evbuffer_add_printf(s->ctx, "%s", fam);
    stats_prom_labels(s->ctx, label, NULL);
    evbuffer_add_printf(s->ctx, " %.0f\n", v);
}

/* A string figure "redis_state" = "up" becomes an info gauge:
 * cachasided_redis_info{state="up"} 1 (split at the last underscore). */
static void stats_prom_str(struct stats_sink *s, const char *name, const char *help, const char *v)
{
    const char *us = strrchr(name, '_');
    char fam[160], label[600];
    size_t base = us ? (size_t)(us - name) : strlen(name);

    snprintf(fam, sizeof(fam), "cachasided_%.*s_info", (int)base, name);
    stats_prom_family(s, fam, "gauge", help);
    snprintf(label, sizeof(label), "%s=%s", us ? us + 1 : "value", v);
    evbuffer_add_printf(s->ctx, "%s", fam);
    stats_prom_labels(s->ctx, label, NULL);
    evbuffer_add(s->ctx, " 1\n", 3);
}

static void stats_prom_hist(struct stats_sink *s, enum stats_hist_id id, const char *name, const char *help,
                            const char *label, const struct stats_hist *h)
{
    bool secs = id != SH_WAITERS;
    double scale = secs ? 1e-6 : 1.0;
    uint64_t cum = 0;
    char fam[160], le[64];

    snprintf(fam, sizeof(fam), "cachasided_%s%s", name, secs ? "_seconds" : "");
    stats_prom_family(s, fam, "histogram", help);
    for (int i = 0; i <= STATS_NBUCKETS; i++) {
        cum += h->n[i];
        if (i < STATS_NBUCKETS)
            snprintf(le, sizeof(le), "le=\"%.9g\"", (double)stats_bucket_bound(id, i) * scale);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        evbuffer_add_printf(s->ctx, "%s_bucket", fam);
        stats_prom_labels(s->ctx, label, le);
        evbuffer_add_printf(s->ctx, " %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(s->ctx, "%s_sum", fam);
    stats_prom_labels(s->ctx, label, NULL);
    evbuffer_add_printf(s->ctx, " %.9g\n%s_count", (double)h->sum * scale, fam);
    stats_prom_labels(s->ctx, label, NULL);
    evbuffer_add_printf(s->ctx, " %llu\n", (unsigned long long)h->count);
}

void stats_sink_prometheus(struct stats_sink *s, struct evbuffer *b)
{
    s->num = stats_prom_num;
    s->str = stats_prom_str;
    s->hist = stats_prom_hist;
    s->ctx = b;
    s->family[0] = '\0';
}
