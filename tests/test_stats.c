/* SPDX-License-Identifier: BSD-3-Clause */
/* test_stats.c - unit tests of the latency histograms: every sample lands
 * in the first bucket whose bound is at least the sample (the bucket the
 * reports' quantiles and Prometheus's le="..." lines assume), and each
 * bound /metrics exports counts exactly. */
#include "core.h"
#include "stats.h"

#include "suite.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct stats_hist *seen[SH_COUNT];

static void cap_num(struct stats_sink *s, enum stats_kind k, const char *name, const char *help,
                    const char *label, double v)
{
    CS_UNUSED(s);
    CS_UNUSED(k);
    CS_UNUSED(name);
    CS_UNUSED(help);
    CS_UNUSED(label);
    CS_UNUSED(v);
}

static void cap_str(struct stats_sink *s, const char *name, const char *help, const char *v)
{
    CS_UNUSED(s);
    CS_UNUSED(name);
    CS_UNUSED(help);
    CS_UNUSED(v);
}

static void cap_hist(struct stats_sink *s, enum stats_hist_id id, const char *name, const char *help,
                     const char *label, const struct stats_hist *h)
{
    CS_UNUSED(s);
    CS_UNUSED(name);
    CS_UNUSED(help);
    CS_UNUSED(label);
    seen[id] = h;
}

/* Where one sample of v went, as the reports see it. */
static int bucket_of(enum stats_hist_id id, uint64_t v)
{
    struct stats_sink sink = { cap_num, cap_str, cap_hist, NULL };
    int at = -1;

    stats_reset();
    stats_observe(id, v);
    stats_report(&sink);
    ck_assert_ptr_nonnull(seen[id]);
    ck_assert_uint_eq(seen[id]->count, 1);
    ck_assert_uint_eq(seen[id]->sum, v);
    for (int i = 0; i <= STATS_NBUCKETS; i++) {
        if (seen[id]->n[i]) {
            ck_assert_int_eq(at, -1);
            at = i;
        }
    }
    return at;
}

/* The definition: the first bucket whose bound is >= v, else the last. */
static int bucket_want(enum stats_hist_id id, uint64_t v)
{
    for (int i = 0; i < STATS_NBUCKETS; i++)
        if (stats_bucket_bound(id, i) >= v)
            return i;
    return STATS_NBUCKETS;
}

static void check_value(enum stats_hist_id id, uint64_t v)
{
    int got = bucket_of(id, v), want = bucket_want(id, v);

    ck_assert_msg(got == want, "hist %d: %llu went to bucket %d, want %d", (int)id, (unsigned long long)v,
                  got, want);
}

/* Both sides of every bound, and of every power of two. */
static void check_edges(enum stats_hist_id id)
{
    check_value(id, 0);
    check_value(id, UINT64_MAX);
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        uint64_t b = stats_bucket_bound(id, i);
        check_value(id, b - 1);
        check_value(id, b);
        check_value(id, b + 1);
    }
    for (int k = 0; k < 64; k++) {
        uint64_t p = (uint64_t)1 << k;
        check_value(id, p - 1);
        check_value(id, p);
        check_value(id, p + 1);
    }
}

START_TEST(latency_buckets)
{
    check_edges(SH_REDIS);
    check_edges(SH_REQ_HIT);
    srandom(7);
    for (int i = 0; i < 20000; i++)
        check_value(SH_UPSTREAM, (uint64_t)random() % (1u << (i % 31 + 1)));
}
END_TEST

START_TEST(waiter_buckets)
{
    check_edges(SH_WAITERS);
    for (uint64_t v = 0; v < 5000; v++)
        check_value(SH_WAITERS, v);
}
END_TEST

/* /metrics's bounds (docs/admin.md) are bucket bounds: the count at or
 * below each is exact, samples on both sides of it. */
START_TEST(exported_bounds_are_exact)
{
    static const uint64_t us[] = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000, 1000000, 10000000 };
    struct stats_hist h;

    for (size_t i = 0; i < CS_ARRAY_LEN(us); i++) {
        memset(&h, 0, sizeof(h));
        stats_hist_add(&h, SH_REDIS, us[i] - 1);
        stats_hist_add(&h, SH_REDIS, us[i]);
        stats_hist_add(&h, SH_REDIS, us[i] + 1);
        stats_hist_add(&h, SH_REDIS, us[i] * 3 / 2);
        ck_assert_uint_eq(stats_hist_le(SH_REDIS, &h, us[i]), 2);
    }
    for (int i = 0; i <= 10; i++) {
        uint64_t b = (uint64_t)1 << i;
        memset(&h, 0, sizeof(h));
        stats_hist_add(&h, SH_WAITERS, b);
        stats_hist_add(&h, SH_WAITERS, b + 1);
        ck_assert_uint_eq(stats_hist_le(SH_WAITERS, &h, b), 1);
    }
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "latency_buckets", latency_buckets, 30, 0 },
        { "waiter_buckets", waiter_buckets, 30, 0 },
        { "exported_bounds_are_exact", exported_bounds_are_exact, 30, 0 },
    };
    int rc;

    stats_init();
    rc = SU_RUN("stats", cases, CK_NORMAL);
    return rc;
}
