/* SPDX-License-Identifier: BSD-3-Clause */
/* prom.c - the Prometheus text format for /metrics. Histograms export a
 * fixed, short list of bounds: each is one of stats.c's finer buckets, so
 * the cumulative counts are exact, and dashboards can rely on the list. */
#include "core.h"
#include "prom.h"
#include "stats.h"

#include <event2/buffer.h>
#include <stdio.h>

/* Seconds as they appear in le="...", and the same bound in microseconds. */
static const struct { const char *le; uint64_t us; } prom_lat_bounds[] = {
    { "0.00005", 50 }, { "0.0001", 100 }, { "0.00025", 250 }, { "0.0005", 500 }, { "0.001", 1000 },
    { "0.0025", 2500 }, { "0.005", 5000 }, { "0.01", 10000 }, { "0.05", 50000 }, { "0.25", 250000 },
    { "1", 1000000 }, { "10", 10000000 },
};
#define PROM_WAITERS_TOP 10     /* 2^10 = 1024 */

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
    p->family = name;
    evbuffer_add_printf(p->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_value(struct evbuffer *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            evbuffer_add_printf(b, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, v, 1);
    }
}

static void prom_name(struct prom *p, const char *suffix, const char *k1, const char *v1, const char *k2,
                      const char *v2, const char *le)
{
    const char *k[3] = { k1, k1 ? k2 : NULL, "le" }, *v[3] = { v1, v2, le };
    bool any = false;

    evbuffer_add_printf(p->b, "%s%s", p->family, suffix);
    for (int i = 0; i < 3; i++) {
        if (!k[i] || (i == 2 && !le))
            continue;
        evbuffer_add_printf(p->b, "%s%s=\"", any ? "," : "{", k[i]);
        prom_value(p->b, v[i]);
        evbuffer_add(p->b, "\"", 1);
        any = true;
    }
    if (any)
        evbuffer_add(p->b, "}", 1);
}

void prom_sample(struct prom *p, double v, const char *k1, const char *v1, const char *k2, const char *v2)
{
    prom_name(p, "", k1, v1, k2, v2, NULL);
    if (v > -9e15 && v < 9e15 && v == (double)(long long)v)
        evbuffer_add_printf(p->b, " %lld\n", (long long)v);   /* counters: every digit */
    else
        evbuffer_add_printf(p->b, " %.15g\n", v);
}

void prom_hist(struct prom *p, enum stats_hist_id id, const struct stats_hist *h, const char *k, const char *v)
{
    char le[24];
    double scale = id == SH_WAITERS ? 1.0 : 1e-6;

    if (id == SH_WAITERS) {
        for (int i = 0; i <= PROM_WAITERS_TOP; i++) {
            snprintf(le, sizeof(le), "%d", 1 << i);
            prom_name(p, "_bucket", k, v, NULL, NULL, le);
            evbuffer_add_printf(p->b, " %llu\n", (unsigned long long)stats_hist_le(id, h, (uint64_t)1 << i));
        }
    } else {
        for (size_t i = 0; i < CS_ARRAY_LEN(prom_lat_bounds); i++) {
            prom_name(p, "_bucket", k, v, NULL, NULL, prom_lat_bounds[i].le);
            evbuffer_add_printf(p->b, " %llu\n", (unsigned long long)stats_hist_le(id, h, prom_lat_bounds[i].us));
        }
    }
    prom_name(p, "_bucket", k, v, NULL, NULL, "+Inf");
    evbuffer_add_printf(p->b, " %llu\n", (unsigned long long)h->count);
    prom_name(p, "_sum", k, v, NULL, NULL, NULL);
    evbuffer_add_printf(p->b, " %.9g\n", (double)h->sum * scale);
    prom_name(p, "_count", k, v, NULL, NULL, NULL);
    evbuffer_add_printf(p->b, " %llu\n", (unsigned long long)h->count);
}
