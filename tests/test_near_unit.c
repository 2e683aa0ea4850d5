/* SPDX-License-Identifier: BSD-3-Clause */
/* test_near_unit.c - unit tests of the near cache (src/cache/near.c)
 * without Redis: the tracking generation and the invalidations are the
 * Redis layer's hooks, driven here. What a kept record answers, LRU order
 * and both bounds, the read/invalidate race (an invalidation between a
 * ticket and its keep, the ring's horizon), tracking lost and regained,
 * near_cache_max_stale_ms, expiry. */
#include "core.h"
#include "config.h"
#include "near.h"
#include "rstore.h"
#include "stats.h"
#include "fake_reply.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The Redis layer's side, as near.c sees it. */
struct cs_config *cs_conf;
void (*rstore_on_invalidate)(const char *key, size_t len);
void (*rstore_on_tracking)(bool on);
static uint64_t fake_gen;

uint64_t rstore_tracking(void)
{
    return fake_gen;
}

/* record.c's rule, without the rest of record.c. */
bool record_field_reserved(const char *p, size_t len)
{
    return len >= 2 && p[0] == '_' && p[1] == '_';
}

static struct cs_config conf;

static void tracking(uint64_t gen)
{
    fake_gen = gen;
    rstore_on_tracking(gen != 0);
}

static void setup(long long entries)
{
    memset(&conf, 0, sizeof(conf));
    conf.near_cache_bytes = 1 << 20;
    cs_conf = &conf;
    memset(&stats_c, 0, sizeof(stats_c));
    fake_gen = 0;
    near_init(entries);
    tracking(7);
}

/* HGETALL's reply of a record with one field NAME = VALUE. */
static redisReply *hash(const char *value)
{
    return fake_strs(4, "name", value, "__exp", "100000");
}

static bool keep(const char *key, const char *value)
{
    struct near_ticket t;
    redisReply *r = hash(value);
    uint64_t before = stats_c.near_keeps_cancelled;

    near_begin(&t);
    near_put(&t, key, strlen(key), false, false, 100000, 0, r);
    fake_reply_free(r);
    return stats_c.near_keeps_cancelled == before;
}

static const char *name_of(const char *key)
{
    static char out[64];
    const struct near_ent *e = near_get(key, strlen(key), false, 1000);
    const char *v;
    size_t vl;

    if (!e)
        return NULL;
    ck_assert(near_field(e, "name", 4, &v, &vl));
    snprintf(out, sizeof(out), "%.*s", (int)vl, v);
    return out;
}

START_TEST(test_kept_reply)
{
    const struct near_ent *e;
    static const char pairs[] = "$4\r\nname\r\n$6\r\nwidget\r\n";
    const char *v;
    size_t vl;
    redisReply *raw = fake_strs(4, "100000", NULL, "<b>body</b>", NULL);
    struct near_ticket t;

    setup(10);
    ck_assert(keep("cache:product:{1}", "widget"));
    e = near_get("cache:product:{1}", 17, false, 1000);
    ck_assert_ptr_nonnull(e);
    /* The pairs as HGETALL answers them, less the reserved fields. */
    ck_assert_int_eq(e->n, 1);
    ck_assert_uint_eq(e->vlen, sizeof(pairs) - 1);
    ck_assert(memcmp(e->data, pairs, e->vlen) == 0);
    ck_assert(!near_field(e, "__exp", 5, &v, &vl));
    ck_assert(!near_field(e, "price", 5, &v, &vl));
    /* The raw shape: GET's body as one bulk; asked as a hash, a miss. */
    near_begin(&t);
    near_put(&t, "cache:page:{1}", 14, true, false, 100000, 0, raw);
    fake_reply_free(raw);
    e = near_get("cache:page:{1}", 14, true, 1000);
    ck_assert_ptr_nonnull(e);
    ck_assert(e->vlen == 18 && memcmp(e->data, "$11\r\n<b>body</b>\r\n", 18) == 0);
    ck_assert_ptr_null(near_get("cache:page:{1}", 14, false, 1000));
    ck_assert_int_eq(near_entries(), 1);
    /* Past its expiry: gone, counted. */
    ck_assert_ptr_null(near_get("cache:product:{1}", 17, false, 100000));
    ck_assert_uint_eq(stats_c.near_evict_expired, 2);
    near_free();
}
END_TEST

START_TEST(test_lru_and_bounds)
{
    char key[32], big[300];

    setup(4);
    for (int i = 1; i <= 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert(keep(key, "v"));
    }
    ck_assert_ptr_nonnull(name_of("k1"));      /* k1 used: k2 is the oldest now */
    ck_assert(keep("k5", "v"));
    ck_assert_ptr_null(name_of("k2"));
    ck_assert_ptr_nonnull(name_of("k1"));
    ck_assert_int_eq(near_entries(), 4);
    ck_assert_uint_eq(stats_c.near_evict_capacity, 1);
    /* Bytes: a bound lowered by a reload holds from the next keep on. */
    conf.near_cache_bytes = 2 * (long long)(sizeof(struct near_ent) + 2 + 24) + 10;
    ck_assert(keep("k6", "w"));
    ck_assert_int_le(near_bytes(), conf.near_cache_bytes);
    ck_assert_int_eq(near_entries(), 2);
    /* A record larger than the whole bound is not kept, nor evicts. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert(keep("k7", big));
    ck_assert_int_eq(near_entries(), 2);
    ck_assert_ptr_null(name_of("k7"));
    ck_assert_int_le(near_bytes(), conf.near_cache_bytes);
    near_free();
}
END_TEST

START_TEST(test_invalidate_race)
{
    struct near_ticket t;
    redisReply *r = hash("old");
    char other[32];

    setup(100);
    /* An invalidation of the key between the ticket and the reply: the
     * reply may be the old value, not kept. */
    near_begin(&t);
    rstore_on_invalidate("k", 1);
    near_put(&t, "k", 1, false, false, 100000, 0, r);
    ck_assert_ptr_null(name_of("k"));
    ck_assert_uint_eq(stats_c.near_keeps_cancelled, 1);
    /* Another key's: kept. */
    near_begin(&t);
    rstore_on_invalidate("j", 1);
    near_put(&t, "k", 1, false, false, 100000, 0, r);
    ck_assert_str_eq(name_of("k"), "old");
    /* After the reply: the entry goes. */
    rstore_on_invalidate("k", 1);
    ck_assert_ptr_null(name_of("k"));
    ck_assert_uint_eq(stats_c.near_evict_invalidation, 1);
    /* More invalidations in flight than the ring remembers: not kept. */
    near_begin(&t);
    for (int i = 0; i < 1100; i++) {
        snprintf(other, sizeof(other), "o%d", i);
        rstore_on_invalidate(other, strlen(other));
    }
    near_put(&t, "k", 1, false, false, 100000, 0, r);
    ck_assert_ptr_null(name_of("k"));
    /* A nil message (FLUSHALL): everything goes, reads in flight keep nothing. */
    ck_assert(keep("a", "1"));
    near_begin(&t);
    rstore_on_invalidate(NULL, 0);
    ck_assert_int_eq(near_entries(), 0);
    near_put(&t, "k", 1, false, false, 100000, 0, r);
    ck_assert_int_eq(near_entries(), 0);
    /* This daemon's own write: the same. */
    ck_assert(keep("a", "1"));
    near_begin(&t);
    near_forget("a", 1);
    ck_assert_int_eq(near_entries(), 0);
    near_put(&t, "a", 1, false, false, 100000, 0, r);
    ck_assert_int_eq(near_entries(), 0);
    fake_reply_free(r);
    near_free();
}
END_TEST

START_TEST(test_tracking_lost)
{
    struct near_ticket t;
    redisReply *r = hash("v");

    setup(100);
    ck_assert(keep("a", "v"));
    /* A read sent under one generation, answered under another: not kept. */
    near_begin(&t);
    tracking(0);
    ck_assert_int_eq(near_entries(), 0);       /* lost: flushed at once */
    ck_assert_uint_eq(stats_c.near_evict_flush, 1);
    tracking(8);
    near_put(&t, "b", 1, false, false, 100000, 0, r);
    ck_assert_int_eq(near_entries(), 0);
    /* Nothing is kept while tracking is off. */
    tracking(0);
    ck_assert(!keep("c", "v"));
    /* With near_cache_max_stale_ms, served that long, then flushed. */
    tracking(9);
    conf.near_cache_max_stale_ms = 60;
    ck_assert(keep("a", "v"));
    tracking(0);
    ck_assert_str_eq(name_of("a"), "v");
    usleep(80 * 1000);
    ck_assert_ptr_null(name_of("a"));
    ck_assert_int_eq(near_entries(), 0);
    /* Tracking back: flushed again, new reads kept. */
    ck_assert(!keep("a", "v"));
    tracking(10);
    ck_assert(keep("a", "v"));
    ck_assert_str_eq(name_of("a"), "v");
    fake_reply_free(r);
    near_free();
}
END_TEST

static Suite *near_suite(void)
{
    Suite *s = suite_create("near");
    TCase *tc = tcase_create("near");

    tcase_add_test(tc, test_kept_reply);
    tcase_add_test(tc, test_lru_and_bounds);
    tcase_add_test(tc, test_invalidate_race);
    tcase_add_test(tc, test_tracking_lost);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(near_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
