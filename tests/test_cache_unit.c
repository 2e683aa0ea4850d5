/* SPDX-License-Identifier: BSD-3-Clause */
/* test_cache_unit.c - unit tests of the cache floor (src/cache: the reads
 * in cache.c, the fills in fill.c, the writes in writes.c) against the
 * Redis layer's interface in memory (fake_rstore.c) and a fetch the test
 * completes (fake_upstream.c): no redis-server, no network. Each command
 * the cache sends is checked, then answered in the order the test picks;
 * the timers (lock_poll_ms, lock_ttl_ms) run on a real event loop.
 *
 * What a client sees (docs/design.md sections 6-7): a hit answered from
 * the one read; a miss filled once for every waiter; a fill of another
 * daemon waited for (notice, poll, lock timeout); a write that overtakes
 * a fill; Redis away, the upstream read straight, still once per key. */
#include "core.h"
#include "cache.h"
#include "config.h"
#include "fill.h"
#include "flight.h"
#include "stats.h"
#include "writes.h"
#include "fake_rstore.h"
#include "fake_upstream.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "cache:product:{p1}"
#define CHAN "cache:fills:product:{p1}"
#define LOCK_TTL_MS 300
#define LOCK_POLL_MS 30

static const char test_ini[] =
    "[redis]\nkey_prefix = cache:\n"
    "[cache]\nlock_ttl_ms = " CS_XSTR(LOCK_TTL_MS) "\nlock_poll_ms = " CS_XSTR(LOCK_POLL_MS) "\n"
    "upstream_timeout_ms = 200\nttl_jitter_pct = 0\n"
    "[namespace:product]\nupstream = http://127.0.0.1:1/products/{id}\nformat = hash\nttl_s = 600\n"
    "[namespace:hot]\nupstream = http://127.0.0.1:1/hot/{id}\nearly_refresh_beta = 100\n"
    "[namespace:frail]\nupstream = http://127.0.0.1:1/frail/{id}\nbreaker_failures = 2\nbreaker_open_ms = 5000\n";

static struct cs_config *conf;

/* ---- a client's request ---- */

struct treq {
    struct cache_req q;         /* first: the callbacks get &q */
    struct evbuffer *out;
    int done;
    struct cs_str argv[8];
};

/* Every request of a test, freed by teardown once nothing can answer them. */
#define T_MAX 16
static struct treq *t_all[T_MAX];
static int t_n;

static struct evbuffer *t_out(struct cache_req *q)
{
    return ((struct treq *)q)->out;
}

static void t_done(struct cache_req *q)
{
    ((struct treq *)q)->done++;
}

static void t_nothing(struct cache_req *q)
{
    CS_UNUSED(q);
}

static const struct cache_io t_io = { t_out, t_done, t_nothing, t_nothing };

/* A request of SHAPE: its arguments after the command's name, NULL-ended. */
static struct treq *t_new(enum cache_shape shape, const char *name, ...)
{
    struct treq *t = cs_calloc(1, sizeof(*t));
    va_list ap;
    const char *a;

    t->out = evbuffer_new();
    t->q.io = &t_io;
    t->q.conf = conf;
    t->q.name = name;
    t->q.shape = shape;
    t->q.outcome = -1;
    t->argv[t->q.argc++] = (struct cs_str){ name, strlen(name) };
    va_start(ap, name);
    while ((a = va_arg(ap, const char *)) != NULL)
        t->argv[t->q.argc++] = (struct cs_str){ a, strlen(a) };
    va_end(ap);
    t->q.argv = t->argv;
    ck_assert_int_lt(t_n, T_MAX);
    t_all[t_n++] = t;
    return t;
}

static struct treq *t_hget(const char *key)
{
    struct treq *t = t_new(CACHE_HGET, "HGET", key, "name", NULL);

    cache_read(&t->q);
    return t;
}

/* What the client got, whole, as a string the test keeps until t_free. */
static const char *t_reply(struct treq *t)
{
    size_t n = evbuffer_get_length(t->out);

    evbuffer_add(t->out, "", 1);
    evbuffer_drain(t->out, 0);
    return (const char *)evbuffer_pullup(t->out, (ev_ssize_t)n + 1);
}

static void t_free(struct treq *t)
{
    if (t->q.state_free)
        t->q.state_free(t->q.state);
    evbuffer_free(t->out);
    free(t);
}

/* ---- Redis's side ---- */

static struct fake_cmd *must(const char *name)
{
    struct fake_cmd *c = fake_find(name);

    ck_assert_msg(c != NULL, "no %s was sent", name);
    return c;
}

static char *ms_from_now(char *buf, long long ms)
{
    snprintf(buf, 24, "%lld", (long long)cs_now_ms() + ms);
    return buf;
}

/* HMGET's answer for a miss: __exp __nf __body __lock __delta name, all nil. */
static void answer_miss(void)
{
    fake_answer(must("HMGET"), fake_strs(6, NULL, NULL, NULL, NULL, NULL, NULL));
}

/* The lock script's answer: CODE, Redis's ms now, the holder. */
static void answer_lock(int code, const char *holder)
{
    redisReply *r = holder ? fake_arr(3, fake_int(code), fake_int(cs_now_ms()), fake_str(holder))
                           : fake_arr(2, fake_int(code), fake_int(cs_now_ms()));

    fake_answer(must("lock"), r);
}

/* HGETALL of a fresh record whose name is NAME; or of nothing. */
static void answer_record(const char *name)
{
    char exp[24];

    fake_answer(must("HGETALL"), fake_strs(4, "__exp", ms_from_now(exp, 60000), "name", name));
}

static void answer_empty(void)
{
    fake_answer(must("HGETALL"), fake_arr(0));
}

/* Runs the loop until NAME is sent (false: not within MS). */
static bool loop_until(const char *name, int ms)
{
    int64_t end = cs_mono_ms() + ms;

    while (!fake_find(name) && cs_mono_ms() < end) {
        struct timeval tv = { 0, 5000 };
        event_base_loopexit(cs_base, &tv);
        event_base_dispatch(cs_base);
    }
    return fake_find(name) != NULL;
}

/* A fresh HGET hit of KEY's name "Ball" whose record expires in 1 s and
 * took delta_ms to fetch; EXP gets its __exp. */
static struct treq *t_hit(const char *key, char *exp, const char *delta_ms)
{
    struct treq *t = t_hget(key);

    fake_answer(must("HMGET"), fake_strs(6, ms_from_now(exp, 1000), NULL, NULL, NULL, delta_ms, "Ball"));
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
    return t;
}

/* ---- fixture ---- */

static void setup(void)
{
    char path[] = "/tmp/cache_unit_XXXXXX";
    int fd = mkstemp(path);
    struct config_errors e;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, test_ini, sizeof(test_ini) - 1), (ssize_t)sizeof(test_ini) - 1);
    close(fd);
    conf = config_load(path, &e);
    unlink(path);
    ck_assert_msg(conf && e.n == 0, "the test's configuration does not load");
    config_errors_free(&e);
    cs_conf = conf;
    cs_base = event_base_new();
    cs_exiting = false;
    fake_reset();
    cache_init();
}

/* Whatever a test left under way ends as at exit, so nothing leaks. */
static void teardown(void)
{
    struct fake_cmd *c;
    struct fake_fetch *f;

    cs_exiting = true;
    for (int i = 0; i < 1000; i++) {
        if ((c = fake_find(NULL)) != NULL)
            fake_answer(c, NULL);
        else if ((f = fake_fetch_find(NULL)) != NULL)
            fake_fetch_answer(f, UP_UNREACHABLE, 0, NULL);
        else
            break;
    }
    cache_free();
    while (t_n > 0)
        t_free(t_all[--t_n]);
    fake_reset();
    fake_fetch_reset();
    event_base_free(cs_base);
    cs_base = NULL;
    config_unref(conf);
    cs_conf = NULL;
    cs_exiting = false;
}

/* ---- reads ---- */

/* A hit: one HMGET asks for the record's metadata and the fields, and the
 * answer is encoded from its reply; nothing else is sent. */
START_TEST(test_hit)
{
    struct treq *t = t_new(CACHE_HMGET, "HMGET", "product:p1", "name", "price", NULL);
    struct fake_cmd *c;
    char exp[24];
    static const char *want[] = { "HMGET", KEY, "__exp", "__nf", "__body", "__lock", "__delta", "name", "price" };

    cache_read(&t->q);
    ck_assert_int_eq(fake_pending(), 1);
    c = must("HMGET");
    ck_assert_int_eq(c->argc, 9);
    for (int i = 0; i < 9; i++)
        ck_assert_str_eq(fake_arg(c, i), want[i]);
    ck_assert_int_eq(t->done, 0);
    fake_answer(c, fake_strs(7, ms_from_now(exp, 60000), NULL, NULL, NULL, "12", "Ball", "3"));
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "*2\r\n$4\r\nBall\r\n$1\r\n3\r\n");
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_int_eq(fake_fetches(), 0);
}
END_TEST

/* A miss leads a fill: the lock taken once for three readers, the
 * upstream read once, the record stored under the lock's token, and every
 * reader answered from the one outcome. */
START_TEST(test_miss_fill)
{
    struct treq *t[3];
    struct fake_cmd *lock, *fill;
    char token[64], chan[64];

    for (int i = 0; i < 3; i++)
        t[i] = t_hget("product:p1");
    ck_assert_int_eq(fake_count("HMGET"), 3);
    answer_miss();
    ck_assert_int_eq(fake_count("lock"), 1);
    answer_miss();
    answer_miss();
    ck_assert_int_eq(fake_count("lock"), 1);     /* the others joined */
    lock = must("lock");
    ck_assert_int_eq(lock->nkeys, 1);
    ck_assert_str_eq(fake_arg(lock, 0), KEY);
    ck_assert_str_eq(fake_arg(lock, 2), CS_XSTR(LOCK_TTL_MS));
    ck_assert_str_eq(fake_arg(lock, 3), "hash");
    snprintf(token, sizeof(token), "%s", fake_arg(lock, 1));
    answer_lock(1, NULL);
    ck_assert_int_eq(fake_fetches(), 1);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    fill = must("fill");
    ck_assert_int_eq(fill->nkeys, 1);
    ck_assert_str_eq(fake_arg(fill, 0), KEY);
    ck_assert_str_eq(fake_arg(fill, 1), token);
    ck_assert_str_eq(fake_arg(fill, 2), "600000");           /* ttl_s, no jitter */
    ck_assert_str_eq(fake_arg(fill, 3), "600000");           /* no grace */
    snprintf(chan, sizeof(chan), "%s", fake_arg(fill, 4));
    ck_assert_str_eq(chan, CHAN);
    ck_assert_str_eq(fake_arg(fill, 5), CS_XSTR(LOCK_TTL_MS));
    ck_assert_int_eq(fill->argc, 10);
    ck_assert_str_eq(fake_arg(fill, 6), "__delta");   /* the fetch's time, for the early refresh */
    ck_assert_str_eq(fake_arg(fill, 8), "name");
    ck_assert_str_eq(fake_arg(fill, 9), "Ball");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t[i]->done, 1);
        ck_assert_str_eq(t_reply(t[i]), "$4\r\nBall\r\n");
    }
    fake_answer(fill, fake_int(1));
    ck_assert_int_eq(fake_pending(), 0);
}
END_TEST

/* The lock is held by another daemon: listen on the key's channel; once
 * Redis confirms it, read again (a fill done before we listened). */
START_TEST(test_held_confirm_rereads)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    answer_lock(0, "other-1");
    ck_assert_int_eq(fake_listening(CHAN), 1);
    ck_assert_ptr_null(fake_find("HGETALL"));   /* not before the confirmation */
    fake_confirm(CHAN);
    answer_record("Ball");
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
    ck_assert_int_eq(fake_listening(CHAN), 0);  /* the flight is over */
    ck_assert_int_eq(fake_fetches(), 0);
}
END_TEST

/* Waiting on another daemon's fill: a 'done' notice on the key's channel
 * reads the record it stored. */
START_TEST(test_held_done_notice)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    answer_lock(0, "other-1");
    fake_confirm(CHAN);
    answer_empty();             /* not filled yet: the lock again */
    answer_lock(0, "other-1");
    answer_empty();             /* waiting again: one more look */
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_int_eq(t->done, 0);
    fake_notice(CHAN, "done");
    answer_record("Ball");
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
    ck_assert_int_eq(fake_fetches(), 0);
}
END_TEST

/* A subscriber link set up again (notices sent while it was away are
 * lost): a waiting flight looks again as if its notice had come. */
START_TEST(test_held_resubscribed)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    answer_lock(0, "other-1");
    fake_confirm(CHAN);
    answer_empty();
    answer_lock(0, "other-1");
    answer_empty();
    ck_assert_int_eq(fake_pending(), 0);
    fake_resubscribed();
    answer_record("Ball");
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
}
END_TEST

/* No notice comes: every lock_poll_ms the lock script runs again, and
 * when it says the record was just filled, the record is read. */
START_TEST(test_held_poll)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    answer_lock(0, "other-1");
    ck_assert_ptr_null(fake_find("lock"));
    ck_assert_msg(loop_until("lock", 50 * LOCK_POLL_MS), "no poll within 50 lock_poll_ms");
    answer_lock(2, NULL);
    answer_record("Ball");
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
}
END_TEST

/* The holder never finishes: at lock_ttl_ms the flight fetches for its
 * waiters itself, and stores nothing (the lock is not ours). */
START_TEST(test_held_lock_timeout)
{
    struct treq *t = t_hget("product:p1");
    int64_t t0 = cs_mono_ms();

    answer_miss();
    fake_listen_answer = RL_FULL;       /* no channel: polls alone */
    answer_lock(0, "other-1");
    answer_empty();
    while (!fake_fetch_find("p1") && cs_mono_ms() - t0 < 10 * LOCK_TTL_MS) {
        if (loop_until("lock", 2 * LOCK_POLL_MS))
            answer_lock(0, "other-1");
    }
    ck_assert_msg(fake_fetch_find("p1") != NULL, "no fetch after lock_ttl_ms");
    ck_assert_int_ge(cs_mono_ms() - t0, LOCK_TTL_MS);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Own\"}");
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "$3\r\nOwn\r\n");
    ck_assert_int_eq(fake_count("fill"), 0);
}
END_TEST

/* A write revoked the fill we waited on ('revoked' notice): the record is
 * not there, so the flight takes the lock itself and fills. */
START_TEST(test_held_revoked)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    answer_lock(0, "other-1");
    fake_confirm(CHAN);
    answer_empty();
    answer_lock(0, "other-1");
    answer_empty();
    fake_notice(CHAN, "revoked");
    answer_empty();
    answer_lock(1, NULL);
    ck_assert_msg(fake_fetch_find("p1") != NULL, "the revoked fill is not taken over");
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"New\"}");
    ck_assert_str_eq(t_reply(t), "$3\r\nNew\r\n");
}
END_TEST

/* fill.lua refuses to store (the lock was revoked under the fetch): the
 * readers still get the fetch, and nothing more is sent; Redis refusing
 * with an error instead frees the lock for the others. */
START_TEST(test_fill_refused)
{
    struct treq *t = t_hget("product:p1"), *u;
    char token[64];

    answer_miss();
    snprintf(token, sizeof(token), "%s", fake_arg(must("lock"), 1));
    answer_lock(1, NULL);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    fake_answer(must("fill"), fake_int(0));
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");

    u = t_hget("product:p1");
    answer_miss();
    snprintf(token, sizeof(token), "%s", fake_arg(must("lock"), 1));
    answer_lock(1, NULL);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    fake_answer(must("fill"), fake_err("OOM command not allowed"));
    ck_assert_str_eq(fake_arg(must("release"), 0), KEY);
    ck_assert_str_eq(fake_arg(must("release"), 1), token);
    ck_assert_str_eq(fake_arg(must("release"), 2), CHAN);
    ck_assert_str_eq(t_reply(u), "$4\r\nBall\r\n");
}
END_TEST

/* The lock script timed out (no reply: the reader is answered from the
 * upstream, storing nothing), then its reply came: it had taken the lock,
 * which is released at once rather than held for lock_ttl_ms. */
START_TEST(test_lock_late)
{
    struct treq *t = t_hget("product:p1");
    struct fake_cmd *lock, *rel;
    char token[64];

    answer_miss();
    lock = must("lock");
    snprintf(token, sizeof(token), "%s", fake_arg(lock, 1));
    fake_answer_late(lock, fake_arr(2, fake_int(1), fake_int(cs_now_ms())));
    rel = must("release");
    ck_assert_int_eq(rel->nkeys, 1);
    ck_assert_str_eq(fake_arg(rel, 0), KEY);
    ck_assert_str_eq(fake_arg(rel, 1), token);
    ck_assert_str_eq(fake_arg(rel, 2), CHAN);
    ck_assert_int_eq(fake_fetches(), 1);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
    ck_assert_int_eq(fake_count("fill"), 0);
    fake_answer(rel, fake_int(1));
}
END_TEST

/* A late reply that did not take the lock releases nothing. */
START_TEST(test_lock_late_not_taken)
{
    struct treq *t = t_hget("product:p1");

    answer_miss();
    fake_answer_late(must("lock"), fake_arr(3, fake_int(0), fake_int(cs_now_ms()), fake_str("other-1")));
    ck_assert_ptr_null(fake_find("release"));
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    ck_assert_str_eq(t_reply(t), "$4\r\nBall\r\n");
}
END_TEST

/* Redis unavailable: reads go straight to the upstream, one fetch for the
 * readers of a key, nothing sent to Redis. */
START_TEST(test_redis_down)
{
    struct treq *t[2];

    fake_ready = false;
    t[0] = t_hget("product:p1");
    t[1] = t_hget("product:p1");
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_int_eq(fake_fetches(), 1);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Ball\"}");
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(t[i]->done, 1);
        ck_assert_str_eq(t_reply(t[i]), "$4\r\nBall\r\n");
    }
    ck_assert_int_eq(fake_pending(), 0);
}
END_TEST

/* ---- writes ---- */

/* After a write answered while T's fill of product:p1 was under way, a new
 * read does not join that fill: it takes a lock of its own, and each fill
 * answers only its own readers (T the old record, the new read the new). */
static void expect_detached(struct treq *t)
{
    struct treq *u = t_hget("product:p1");

    answer_miss();
    ck_assert_int_eq(fake_count("lock"), 2);
    answer_lock(1, NULL);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"Old\"}");
    answer_lock(1, NULL);
    fake_fetch_answer(fake_fetch_find("p1"), UP_OK, 200, "{\"name\":\"New\"}");
    ck_assert_str_eq(t_reply(t), "$3\r\nOld\r\n");
    ck_assert_str_eq(t_reply(u), "$3\r\nNew\r\n");
}

/* DEL sends del.lua with the key and the prefix, and detaches the key's
 * fill: a read after it starts its own instead of joining. */
START_TEST(test_del_detaches)
{
    struct treq *t = t_hget("product:p1"), *d;
    struct fake_cmd *del;

    answer_miss();              /* a fill: its lock under way */
    d = t_new(CACHE_NONE, "DEL", "product:p1", NULL);
    writes_del(&d->q);
    del = must("del");
    ck_assert(del->each);
    ck_assert_int_eq(del->nkeys, 1);
    ck_assert_int_eq(del->argc, 2);
    ck_assert_str_eq(fake_arg(del, 0), KEY);
    ck_assert_str_eq(fake_arg(del, 1), "cache:");
    fake_answer(del, fake_int(1));
    ck_assert_str_eq(t_reply(d), ":1\r\n");
    expect_detached(t);
}
END_TEST

/* HSET sends hset.lua with the key, its channel and the pairs, and
 * detaches the fill as DEL does. */
START_TEST(test_hset_detaches)
{
    struct treq *t = t_hget("product:p1"), *h;
    struct fake_cmd *c;
    static const char *want[] = { KEY, CHAN, "name", "Cup" };

    answer_miss();
    h = t_new(CACHE_NONE, "HSET", "product:p1", "name", "Cup", NULL);
    writes_hset(&h->q);
    c = must("hset");
    ck_assert_int_eq(c->nkeys, 1);
    ck_assert_int_eq(c->argc, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(fake_arg(c, i), want[i]);
    fake_answer(c, fake_int(1));
    ck_assert_str_eq(t_reply(h), ":1\r\n");
    expect_detached(t);
}
END_TEST

/* A write with Redis away is refused, and sends nothing. */
START_TEST(test_write_redis_down)
{
    struct treq *d = t_new(CACHE_NONE, "DEL", "product:p1", NULL);

    fake_ready = false;
    writes_del(&d->q);
    ck_assert_int_eq(d->done, 1);
    ck_assert_str_eq(t_reply(d), "-" CS_ERR_TRYAGAIN "\r\n");
    ck_assert_int_eq(fake_pending(), 0);
}
END_TEST

/* ---- early refresh and the breaker ---- */

/* A hit that draws an early refresh (beta 100, a fetch that took a day:
 * the draw cannot miss) is answered at once; the refresh locks the record
 * only while __exp is what the read saw, and ends quietly when Redis says
 * the record was refreshed meanwhile (2). A namespace without beta never
 * refreshes early, whatever __delta says. */
START_TEST(test_early_refresh)
{
    char exp[24];

    t_hit("product:p1", exp, "86400000");
    ck_assert_int_eq(fake_pending(), 0);
    t_hit("hot:p1", exp, "86400000");
    ck_assert_int_eq(stats_c.early_refreshes, 1);
    ck_assert_int_eq(fake_count("lock"), 1);
    ck_assert_str_eq(fake_arg(must("lock"), 0), "cache:hot:{p1}");
    ck_assert_str_eq(fake_arg(must("lock"), 5), exp);
    answer_lock(2, NULL);
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_int_eq(fake_fetches(), 0);
    ck_assert_int_eq(flight_in_progress(), 0);
    ck_assert_int_eq(stats_c.early_refresh_failures, 0);
}
END_TEST

/* A refresh that took the lock and whose fetch fails releases the lock,
 * stores nothing (the record stays) and is counted. */
START_TEST(test_early_refresh_fails)
{
    char exp[24];

    t_hit("hot:p1", exp, "86400000");
    answer_lock(1, NULL);
    ck_assert_int_eq(fake_fetches(), 1);
    fake_fetch_answer(fake_fetch_find("p1"), UP_STATUS, 503, NULL);
    ck_assert_int_eq(fake_count("fill"), 0);
    ck_assert_int_eq(fake_count("release"), 1);
    ck_assert_int_eq(stats_c.early_refresh_failures, 1);
}
END_TEST

/* With the breaker on, the lock holder asks it before fetching: open
 * means -UPSTREAM unavailable, no fetch, the lock given back; until the
 * open period it named is over, the next miss is refused at once, with
 * no lock and no question to Redis. */
START_TEST(test_breaker_refuses)
{
    struct treq *t = t_hget("frail:p1"), *t2;
    struct fake_cmd *ask;
    long long now = cs_now_ms();

    answer_miss();
    answer_lock(1, NULL);
    ask = must("breaker");
    ck_assert_str_eq(fake_arg(ask, 0), "cache:breaker:{frail}:state");
    ck_assert_str_eq(fake_arg(ask, 1), "ask");
    ck_assert_str_eq(fake_arg(ask, 2), "2");
    ck_assert_str_eq(fake_arg(ask, 3), "5000");
    fake_answer(ask, fake_arr(5, fake_int(1), fake_int(now + 5000), fake_int(now), fake_int(0), fake_int(0)));
    ck_assert_int_eq(fake_fetches(), 0);
    ck_assert_int_eq(t->done, 1);
    ck_assert_str_eq(t_reply(t), "-UPSTREAM unavailable\r\n");
    ck_assert_int_eq(fake_count("release"), 1);
    fake_answer(must("release"), fake_int(1));
    t2 = t_hget("frail:p2");
    answer_miss();
    ck_assert_int_eq(t2->done, 1);
    ck_assert_str_eq(t_reply(t2), "-UPSTREAM unavailable\r\n");
    ck_assert_int_eq(fake_pending(), 0);
    ck_assert_int_eq(stats_c.breaker_refused, 2);
    ck_assert_int_eq(stats_ns_get("frail", 5)->breaker, 1);
}
END_TEST


static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache_unit");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_hit);
    tcase_add_test(tc, test_miss_fill);
    tcase_add_test(tc, test_held_confirm_rereads);
    tcase_add_test(tc, test_held_done_notice);
    tcase_add_test(tc, test_held_resubscribed);
    tcase_add_test(tc, test_held_poll);
    tcase_add_test(tc, test_held_lock_timeout);
    tcase_add_test(tc, test_held_revoked);
    tcase_add_test(tc, test_fill_refused);
    tcase_add_test(tc, test_lock_late);
    tcase_add_test(tc, test_lock_late_not_taken);
    tcase_add_test(tc, test_redis_down);
    tcase_add_test(tc, test_del_detaches);
    tcase_add_test(tc, test_hset_detaches);
    tcase_add_test(tc, test_write_redis_down);
    tcase_add_test(tc, test_early_refresh);
    tcase_add_test(tc, test_early_refresh_fails);
    tcase_add_test(tc, test_breaker_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
