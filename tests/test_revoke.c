/* SPDX-License-Identifier: BSD-3-Clause */
/* test_revoke.c - writes revoke fills in every daemon, and notices reach
 * only the daemons that wait on a key (docs/design.md, "Writes revoke
 * fills" and "Notices"). Two daemons share one redis-server; the example
 * upstream runs with -A, so a fetch answers the record as it was when the
 * request arrived (a database read at arrival), which is what exposes a
 * fill that began before a write:
 *   - a DEL through daemon A: a read through daemon B that begins after it
 *     does not join B's fetch that began before it;
 *   - an HSET answered :1 (or :0 on a miss) is never undone by a refresh
 *     or a fill that read the upstream before it;
 *   - a waiting daemon hears a revocation at once and fills anew;
 *   - a daemon listens on a key's own channel only while it waits on the
 *     key: a notice for another key never reaches it;
 *   - a subscriber link killed mid-wait: the wait goes on by polling, and
 *     the key's channel is listened on again once the link is back. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OLD_BODY "{\"price\":\"old\"}"
#define NEW_BODY "{\"price\":\"new\"}"
#define OLD_REPLY "*2\r\n$5\r\nprice\r\n$3\r\nold\r\n"
#define NEW_REPLY "*2\r\n$5\r\nprice\r\n$3\r\nnew\r\n"

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon a, b;
    int rd;                     /* direct connection to redis-server */
    int ca, cb;                 /* clients of daemon a and b */
} E;

#define R(...) h_cmd(E.rd, __VA_ARGS__, NULL)
#define R_INT(...) su_take_int(R(__VA_ARGS__))
#define A(...) h_cmd(E.ca, __VA_ARGS__, NULL)
#define B(...) h_cmd(E.cb, __VA_ARGS__, NULL)

static void daemon_up(struct h_daemon *d, const char *cache)
{
    h_daemon_init(d);
    h_daemon_start(d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = debug\n"
                   "\n[redis]\nhost = 127.0.0.1\nport = %d\n"
                   "\n[cache]\nttl_jitter_pct = 0\n%s"
                   "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d->port, E.redis.port, cache, E.up.port);
    su_wait_linked(d);
}

/* Two daemons with the same [cache] lines; the upstream answers what a
 * record was when the request arrived, after LATENCY_MS. */
static void env_start(const char *cache, int latency_ms)
{
    static const char *const at_arrival[] = { "-A", NULL };

    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start_args(&E.up, latency_ms, 0, at_arrival);
    daemon_up(&E.a, cache);
    daemon_up(&E.b, cache);
    E.rd = h_connect(E.redis.port);
    E.ca = h_connect(E.a.port);
    E.cb = h_connect(E.b.port);
}

/* A DEL answered through daemon A: a read through daemon B that begins
 * after it gets the record as the upstream has it after the write, not
 * the fetch B began before the write. The read that was already waiting
 * may get the older fetch (it asked before the write). */
START_TEST(t_del_through_other_daemon)
{
    int early;
    char *raw;

    env_start("", 600);
    h_upstream_set_body(&E.up, "k1", OLD_BODY);
    early = h_connect(E.b.port);
    ck_assert_int_eq(h_send_cmdv(early, "HGETALL", "product:k1", NULL), 0);
    su_wait_upstream_id(&E.up, "k1", 1, 3000);      /* B's fetch read OLD */
    h_upstream_set_body(&E.up, "k1", NEW_BODY);      /* the source of truth changes */
    CK_REPLY(A("DEL", "product:k1"), ":0\r\n");      /* then the application invalidates */
    CK_REPLY(B("HGETALL", "product:k1"), NEW_REPLY);
    raw = h_read_reply(early, 3000);
    CK_REPLY(raw, OLD_REPLY);
    ck_assert_int_eq(su_stat(E.cb, "fills_overtaken"), 1);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k1"), 2);
    /* And what is cached is the new record: the old fetch stored nothing. */
    h_msleep(200);
    CK_REPLY(A("HGETALL", "product:k1"), NEW_REPLY);
    CK_REPLY(R("HGET", "cache:product:{k1}", "price"), "$3\r\nnew\r\n");
}
END_TEST

/* With grace: a stale read starts a refresh that reads the upstream; the
 * application updates its database and sends HSET (:1). The refresh must
 * not store what it read before, and the next reads return the update. */
START_TEST(t_hset_revokes_refresh)
{
    char *raw;
    long long end;

    env_start("ttl_s = 1\nnegative_ttl_s = 0\ngrace_s = 60\n", 0);
    h_upstream_set_body(&E.up, "k2", OLD_BODY);
    CK_REPLY(A("HGETALL", "product:k2"), OLD_REPLY);
    h_msleep(1300);                                  /* past ttl_s: stale, within grace */
    h_upstream_set_latency(&E.up, 800);
    CK_REPLY(A("HGETALL", "product:k2"), OLD_REPLY);  /* stale hit; the refresh reads OLD */
    su_wait_upstream_id(&E.up, "k2", 2, 3000);
    h_upstream_set_body(&E.up, "k2", NEW_BODY);
    CK_REPLY(B("HSET", "product:k2", "price", "new"), ":1\r\n");
    CK_REPLY(A("HGET", "product:k2", "price"), "$3\r\nnew\r\n");
    /* Every refresh is over: the one from before the HSET stored nothing. */
    end = h_now_ms() + 2500;
    while (h_now_ms() < end)
        h_msleep(100);
    for (int i = 0; i < 3; i++) {
        raw = h_cmd(i % 2 ? E.ca : E.cb, "HGETALL", "product:k2", NULL);
        CK_REPLY(raw, NEW_REPLY);
    }
    CK_REPLY(R("HGET", "cache:product:{k2}", "price"), "$3\r\nnew\r\n");
}
END_TEST

/* The miss case: a fill is under way, the application updates its
 * database and sends HSET (:0, not cached). The fill stores nothing, and
 * the next read fills the new record. */
START_TEST(t_hset_revokes_fill)
{
    int early;

    env_start("", 600);
    h_upstream_set_body(&E.up, "k3", OLD_BODY);
    early = h_connect(E.a.port);
    ck_assert_int_eq(h_send_cmdv(early, "HGETALL", "product:k3", NULL), 0);
    su_wait_upstream_id(&E.up, "k3", 1, 3000);
    h_upstream_set_body(&E.up, "k3", NEW_BODY);
    CK_REPLY(B("HSET", "product:k3", "price", "new"), ":0\r\n");
    CK_REPLY(h_read_reply(early, 3000), OLD_REPLY);  /* it asked before the write */
    h_msleep(100);
    CK_REPLY(A("HGETALL", "product:k3"), NEW_REPLY);
    CK_REPLY(B("HGETALL", "product:k3"), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k3"), 2);
}
END_TEST

/* A waits on B's fill (B holds the lock, a slow fetch); a DEL through B
 * revokes it: A hears so on the key's channel and fills anew at once,
 * instead of waiting for B's fetch to end. */
START_TEST(t_revocation_wakes_waiter)
{
    char path[64], body[64];
    int holder, waiter;
    long long t_del, took;

    env_start("lock_poll_ms = 5000\nlock_ttl_ms = 10000\nupstream_timeout_ms = 8000\n", 0);
    h_upstream_set_body(&E.up, "k4", OLD_BODY);
    snprintf(path, sizeof(path), "/_delay/k4");
    ck_assert_int_eq(h_http(E.up.port, "PUT", path, "4000", 4, body, sizeof(body)) / 100, 2);
    holder = h_connect(E.b.port);
    ck_assert_int_eq(h_send_cmdv(holder, "HGETALL", "product:k4", NULL), 0);
    su_wait_upstream_id(&E.up, "k4", 1, 3000);
    waiter = h_connect(E.a.port);
    ck_assert_int_eq(h_send_cmdv(waiter, "HGETALL", "product:k4", NULL), 0);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k4}", 1, 3000), 0);
    h_upstream_set_body(&E.up, "k4", NEW_BODY);
    ck_assert_int_eq(h_http(E.up.port, "DELETE", path, NULL, 0, body, sizeof(body)) / 100, 2);
    t_del = h_now_ms();
    CK_REPLY(B("DEL", "product:k4"), ":0\r\n");
    CK_REPLY(h_read_reply(waiter, 3000), NEW_REPLY);
    took = h_now_ms() - t_del;
    ck_assert_msg(took < 1500, "the waiter answered %lld ms after the DEL", took);
    ck_assert_int_ge(su_stat(E.ca, "notices_received"), 1);
    CK_REPLY(h_read_reply(holder, 5000), OLD_REPLY);  /* asked before the write */
    CK_REPLY(B("HGETALL", "product:k4"), NEW_REPLY);
}
END_TEST

/* Each daemon listens only on the channel of the key it waits on: a
 * notice for k5 reaches A alone, none reaches B, and once the waits are
 * over nobody listens any more. */
START_TEST(t_notices_reach_only_waiters)
{
    long long heard_a, heard_b;
    int wa, wb;

    env_start("lock_poll_ms = 10000\nlock_ttl_ms = 20000\nupstream_timeout_ms = 5000\n", 0);
    h_upstream_set_body(&E.up, "k5", OLD_BODY);
    h_upstream_set_body(&E.up, "k6", OLD_BODY);
    /* Fills of another daemon hold both keys. */
    su_set_lock(E.rd, "cache:product:{k5}", "other-5", 20000);
    su_set_lock(E.rd, "cache:product:{k6}", "other-6", 20000);
    wa = h_connect(E.a.port);
    wb = h_connect(E.b.port);
    ck_assert_int_eq(h_send_cmdv(wa, "HGETALL", "product:k5", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(wb, "HGETALL", "product:k6", NULL), 0);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k5}", 1, 3000), 0);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k6}", 1, 3000), 0);
    ck_assert_int_eq(su_stat(E.ca, "notice_channels"), 1);
    ck_assert_int_eq(su_stat(E.cb, "notice_channels"), 1);
    /* k5's fill is done elsewhere: one delivery, to A. (A then fills k5
     * itself, and may still hear its own notice if its unsubscribe reaches
     * Redis after its store: A's count is at least 1, B's stays 0.) */
    ck_assert_int_eq(R_INT("HDEL", "cache:product:{k5}", "__lock", "__lockexp"), 2);
    ck_assert_int_eq(R_INT("SPUBLISH", "cache:fills:product:{k5}", "done"), 1);
    CK_REPLY(h_read_reply(wa, 3000), OLD_REPLY);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k5}", 0, 3000), 0);
    heard_a = su_stat(E.ca, "notices_received");
    ck_assert_int_ge(heard_a, 1);
    ck_assert_int_eq(su_stat(E.cb, "notices_received"), 0);
    ck_assert_msg(h_read_reply(wb, 300) == NULL, "B answered without a notice");
    /* Then k6's: to B alone. */
    ck_assert_int_eq(R_INT("HDEL", "cache:product:{k6}", "__lock", "__lockexp"), 2);
    ck_assert_int_eq(R_INT("SPUBLISH", "cache:fills:product:{k6}", "done"), 1);
    CK_REPLY(h_read_reply(wb, 3000), OLD_REPLY);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k6}", 0, 3000), 0);
    heard_b = su_stat(E.cb, "notices_received");
    ck_assert_int_ge(heard_b, 1);
    ck_assert_int_eq(su_stat(E.ca, "notices_received"), heard_a);
    ck_assert_int_eq(su_stat(E.ca, "notice_channels"), 0);
    ck_assert_int_eq(su_stat(E.cb, "notice_channels"), 0);
    /* A fill these daemons run themselves costs no notice to the other. */
    CK_REPLY(A("HGETALL", "product:k7"), "*0\r\n");
    ck_assert_int_eq(su_stat(E.cb, "notices_received"), heard_b);
}
END_TEST

/* The id of the one client listening on a shard channel (CLIENT LIST's
 * ssub count), or -1. */
static long long shard_subscriber_id(void)
{
    char *raw = R("CLIENT", "LIST");
    struct h_reply *r = h_parse_reply(raw);
    long long id = -1;

    ck_assert_int_eq(r->type, H_REPLY_BULK);
    for (char *line = r->str; line && *line && id < 0;) {
        char *nl = strchr(line, '\n'), *ssub = strstr(line, " ssub=");
        if (ssub && (!nl || ssub < nl) && strtol(ssub + 6, NULL, 10) > 0)
            id = strtoll(line + 3, NULL, 10);     /* "id=N ..." */
        line = nl ? nl + 1 : NULL;
    }
    h_reply_free(r);
    free(raw);
    return id;
}

/* The subscriber link goes while a fill waits: the channel is listened on
 * again once the link is back, and a lock that goes without a notice is
 * found by the poll. */
START_TEST(t_subscriber_lost_mid_wait)
{
    char idbuf[32];
    long long id, t0, took;
    int w;

    env_start("lock_poll_ms = 300\nlock_ttl_ms = 20000\nupstream_timeout_ms = 5000\n", 0);
    h_upstream_set_body(&E.up, "k8", OLD_BODY);
    su_set_lock(E.rd, "cache:product:{k8}", "other-8", 20000);
    w = h_connect(E.a.port);
    ck_assert_int_eq(h_send_cmdv(w, "HGETALL", "product:k8", NULL), 0);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k8}", 1, 3000), 0);
    id = shard_subscriber_id();
    ck_assert_int_gt(id, 0);
    snprintf(idbuf, sizeof(idbuf), "%lld", id);
    ck_assert_int_eq(R_INT("CLIENT", "KILL", "ID", idbuf), 1);
    /* Back: listened on again. */
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k8}", 0, 1000), 0);
    ck_assert_int_eq(su_wait_shard_numsub(E.redis.port, "cache:fills:product:{k8}", 1, 5000), 0);
    ck_assert_int_ne(shard_subscriber_id(), id);
    /* The lock goes without a notice: the poll finds it. */
    t0 = h_now_ms();
    ck_assert_int_eq(R_INT("HDEL", "cache:product:{k8}", "__lock", "__lockexp"), 2);
    CK_REPLY(h_read_reply(w, 5000), OLD_REPLY);
    took = h_now_ms() - t0;
    ck_assert_msg(took < 2000, "answered %lld ms after the lock went (lock_poll_ms 300)", took);
}
END_TEST

/* A record at the very end of its life (its key goes in 50 ms): the fill
 * that takes its lock keeps the key as long as the lock, so a second
 * daemon finds the lock held and waits, not fetches beside it. The kept
 * record is no entry meanwhile: TTL says -2, HSET does not update it. */
START_TEST(t_lock_outlives_expiring_record)
{
    char exp[32];
    int wa, wb;

    env_start("lock_poll_ms = 50\nlock_ttl_ms = 3000\nupstream_timeout_ms = 2000\n", 600);
    h_upstream_set_body(&E.up, "k9", NEW_BODY);
    snprintf(exp, sizeof(exp), "%lld", su_redis_time_ms(E.rd) - 1000);
    ck_assert_int_eq(R_INT("HSET", "cache:product:{k9}", "__exp", exp, "price", "old"), 2);
    ck_assert_int_eq(R_INT("PEXPIRE", "cache:product:{k9}", "150"), 1);
    wa = h_connect(E.a.port);
    ck_assert_int_eq(h_send_cmdv(wa, "HGETALL", "product:k9", NULL), 0);
    su_wait_upstream_id(&E.up, "k9", 1, 3000);
    h_msleep(200);                                   /* the key's own end has passed */
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{k9}"), 1);
    CK_REPLY(B("PTTL", "product:k9"), ":-2\r\n");
    CK_REPLY(B("HSET", "product:k9", "price", "x"), ":0\r\n");    /* no entry; revokes A's fill */
    wb = h_connect(E.b.port);
    ck_assert_int_eq(h_send_cmdv(wb, "HGETALL", "product:k9", NULL), 0);
    CK_REPLY(h_read_reply(wa, 3000), NEW_REPLY);
    CK_REPLY(h_read_reply(wb, 3000), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k9"), 2);          /* A's, then B's after the HSET */
    /* Without a write: the second daemon waits for the first one's fill. */
    ck_assert_int_eq(R_INT("DEL", "cache:product:{k9}"), 1);
    ck_assert_int_eq(R_INT("HSET", "cache:product:{k9}", "__exp", exp, "price", "old"), 2);
    ck_assert_int_eq(R_INT("PEXPIRE", "cache:product:{k9}", "150"), 1);
    ck_assert_int_eq(h_send_cmdv(wa, "HGETALL", "product:k9", NULL), 0);
    su_wait_upstream_id(&E.up, "k9", 3, 3000);
    h_msleep(200);
    ck_assert_int_eq(h_send_cmdv(wb, "HGETALL", "product:k9", NULL), 0);
    CK_REPLY(h_read_reply(wa, 3000), NEW_REPLY);
    CK_REPLY(h_read_reply(wb, 3000), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k9"), 3);
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "del_through_other_daemon", t_del_through_other_daemon, 30, 0 },
        { "hset_revokes_refresh", t_hset_revokes_refresh, 30, 0 },
        { "hset_revokes_fill", t_hset_revokes_fill, 30, 0 },
        { "revocation_wakes_waiter", t_revocation_wakes_waiter, 30, 0 },
        { "notices_reach_only_waiters", t_notices_reach_only_waiters, 30, 0 },
        { "subscriber_lost_mid_wait", t_subscriber_lost_mid_wait, 30, 0 },
        { "lock_outlives_expiring_record", t_lock_outlives_expiring_record, 30, 0 },
    };

    return SU_RUN("revoke", cases, CK_NORMAL);
}
