/* SPDX-License-Identifier: BSD-3-Clause */
/* test_writes.c - integration tests of the write side and of grace
 * (docs/design.md sections 5 and 6, step 2): DEL, INVALIDATE, HSET, TTL/PTTL, stale
 * hits with one background refresh, stale-if-error, and the write commands
 * while Redis is down.  Each test runs a real redis-server, the example
 * upstream and the built daemon with two hash namespaces (product, user:
 * both served by the same upstream, so equal IDs exist in both) and one raw
 * namespace (page).  Assertions are on what a user sees: replies, the
 * Redis contents (through a direct connection) and the upstream's request
 * counters. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OLD_BODY "{\"v\":\"old\"}"
#define NEW_BODY "{\"v\":\"new\"}"
#define OLD_REPLY "*2\r\n$1\r\nv\r\n$3\r\nold\r\n"
#define NEW_REPLY "*2\r\n$1\r\nv\r\n$3\r\nnew\r\n"
#define TRYAGAIN "-TRYAGAIN cache unavailable\r\n"

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int rd;     /* direct connection to redis-server */
    int c;      /* client of the daemon */
} E;

/* ------------------------------------------------------------ helpers -- */

/* A command to the daemon / to redis-server, raw reply (caller frees). */
#define D(...) h_cmd(E.c, __VA_ARGS__, NULL)
#define R(...) h_cmd(E.rd, __VA_ARGS__, NULL)

#define D_INT(...) su_take_int(D(__VA_ARGS__))
#define R_INT(...) su_take_int(R(__VA_ARGS__))

/* Number of Redis keys matching a pattern (KEYS is fine for a test). */
static long long r_count(const char *pattern)
{
    return R_INT("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern);
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One counter from STATS. */
static long long stat_get(const char *name)
{
    char *raw = D("STATS");
    struct h_reply *r = h_parse_reply(raw);
    size_t nl = strlen(name);
    long long v = -1;

    ck_assert_msg(r->type == H_REPLY_BULK, "STATS: %s", h_repr(raw));
    for (const char *p = r->str; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
    }
    ck_assert_msg(v >= 0, "STATS has no counter %s: %s", name, h_repr(raw));
    h_reply_free(r);
    free(raw);
    return v;
}

/* Sleeps until the record's logical expiry (__exp, Unix ms) has passed. */
static void wait_logical_expiry(const char *rkey)
{
    char *raw = R("HGET", rkey, "__exp");
    struct h_reply *r = h_parse_reply(raw);
    long long exp, left;

    ck_assert_msg(r->type == H_REPLY_BULK, "HGET %s __exp: %s", rkey, h_repr(raw));
    exp = strtoll(r->str, NULL, 10);
    h_reply_free(r);
    free(raw);
    left = exp - wall_ms() + 100;
    ck_assert_msg(left < 60000, "__exp of %s is %lld ms away", rkey, left);
    if (left > 0)
        h_msleep((int)left);
}

/* redis + upstream (10 generated records p-001.., none used for data
 * below) + daemon; waits until the daemon has its Redis link up. */
static void env_start(int ttl_s, int negative_ttl_s, int grace_s, int upstream_timeout_ms)
{
    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start(&E.up, 0, 10);
    h_daemon_init(&E.d);
    h_daemon_start(&E.d,
                   "[server]\n"
                   "listen = 127.0.0.1:%d\n"
                   "admin_listen =\n"
                   "log_level = debug\n"
                   "\n[redis]\n"
                   "host = 127.0.0.1\n"
                   "port = %d\n"
                   "\n[cache]\n"
                   "ttl_s = %d\n"
                   "ttl_jitter_pct = 0\n"
                   "negative_ttl_s = %d\n"
                   "grace_s = %d\n"
                   "upstream_timeout_ms = %d\n"
                   "lock_ttl_ms = 5000\n"
                   "\n[namespace:product]\n"
                   "upstream = http://127.0.0.1:%d/products/{id}\n"
                   "\n[namespace:user]\n"
                   "upstream = http://127.0.0.1:%d/users/{id}\n"
                   "\n[namespace:page]\n"
                   "upstream = http://127.0.0.1:%d/pages/{id}\n"
                   "format = raw\n",
                   E.d.port, E.redis.port, ttl_s, negative_ttl_s, grace_s, upstream_timeout_ms,
                   E.up.port, E.up.port, E.up.port);
    E.rd = h_connect(E.redis.port);
    E.c = h_connect(E.d.port);
    /* The daemon listens before its Redis link is up: wait for it. */
    su_wait_linked(&E.d);
}

static void env_default(void)
{
    env_start(300, 30, 0, 2000);
}

/* Sends cmd to the daemon until it replies want (Redis state changes are
 * noticed asynchronously); fails after timeout_ms with the last reply. */
static void poll_reply(const char *cmd, const char *arg1, const char *arg2, const char *arg3,
                       const char *want, int timeout_ms)
{
    long long deadline = h_now_ms() + timeout_ms;
    char *raw = NULL;

    for (;;) {
        free(raw);
        raw = h_cmd(E.c, cmd, arg1, arg2, arg3, NULL);
        if ((raw && strcmp(raw, want) == 0) || h_now_ms() >= deadline)
            break;
        h_msleep(50);
    }
    ck_assert_msg(raw && strcmp(raw, want) == 0, "%s %s: got %s, want %s within %d ms", cmd, arg1,
                  h_repr(raw), h_repr(want), timeout_ms);
    free(raw);
}

/* ---------------------------------------------------------------- DEL -- */

/* DEL makes the next read fetch the changed upstream record. */
START_TEST(t_del_then_read_sees_new)
{
    long long inv;

    env_default();
    h_upstream_set_body(&E.up, "a1", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:a1"), OLD_REPLY);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a1}"), 1);
    h_upstream_set_body(&E.up, "a1", NEW_BODY);
    CK_REPLY(D("HGETALL", "product:a1"), OLD_REPLY);           /* still cached */
    ck_assert_int_eq(h_upstream_count_id(&E.up, "a1"), 1);

    inv = stat_get("invalidations");
    CK_REPLY(D("DEL", "product:a1"), ":1\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a1}"), 0);
    ck_assert_int_eq(stat_get("invalidations"), inv + 1);
    CK_REPLY(D("HGETALL", "product:a1"), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "a1"), 2);
    CK_REPLY(D("HGETALL", "product:a1"), NEW_REPLY);           /* cached again */
    ck_assert_int_eq(h_upstream_count_id(&E.up, "a1"), 2);
}
END_TEST

/* DEL counts only entries that were cached (a not-found sentinel is one),
 * only in the namespace named, and removes the fill lock too. */
START_TEST(t_del_counts_cached_only)
{
    env_default();
    h_upstream_set_body(&E.up, "a2", OLD_BODY);
    h_upstream_set_body(&E.up, "a3", OLD_BODY);
    CK_REPLY(D("DEL", "product:never-read"), ":0\r\n");

    CK_REPLY(D("HGETALL", "product:a2"), OLD_REPLY);
    CK_REPLY(D("HGETALL", "product:a3"), OLD_REPLY);
    CK_REPLY(D("HGETALL", "user:a2"), OLD_REPLY);
    CK_REPLY(D("HGETALL", "product:gone"), "*0\r\n");          /* upstream 404 */
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{gone}"), 1);

    CK_REPLY(D("DEL", "product:a2", "product:nope", "product:a3", "product:gone"), ":3\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a2}", "cache:product:{a3}",
                           "cache:product:{gone}"), 0);
    ck_assert_int_eq(R_INT("EXISTS", "cache:user:{a2}"), 1);   /* other namespace untouched */
    CK_REPLY(D("DEL", "product:a2", "product:a2"), ":0\r\n");

    /* A stuck fill lock goes with DEL even when no record is cached. */
    su_set_lock(E.rd, "cache:product:{a9}", "sometoken", 60000);
    CK_REPLY(D("DEL", "product:a9"), ":0\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a9}"), 0);

    /* UNLINK is accepted as a synonym. */
    CK_REPLY(D("UNLINK", "user:a2"), ":1\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:user:{a2}"), 0);
}
END_TEST

/* One DEL takes up to 10000 keys (one script holds Redis while it runs);
 * more get a clear error and remove nothing. */
START_TEST(t_del_many_keys)
{
    enum { MAX = 10000 };
    const char **argv = calloc(MAX + 2, sizeof(*argv));
    char (*keys)[24] = calloc(MAX + 1, sizeof(*keys));
    char *raw;

    ck_assert(argv && keys);
    env_default();
    h_upstream_set_body(&E.up, "m1", OLD_BODY);
    h_upstream_set_body(&E.up, "m2", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:m1"), OLD_REPLY);
    CK_REPLY(D("HGETALL", "product:m2"), OLD_REPLY);
    argv[0] = "DEL";
    for (int i = 0; i <= MAX; i++) {
        snprintf(keys[i], sizeof(keys[i]), "product:m%d", i);
        argv[i + 1] = keys[i];
    }
    ck_assert_int_eq(h_send_cmd(E.c, MAX + 2, argv), 0);       /* 10001 keys */
    raw = h_read_reply(E.c, H_DEFAULT);
    ck_assert_msg(raw && strncmp(raw, "-ERR too many keys for DEL", 26) == 0, "got %s", h_repr(raw));
    free(raw);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{m1}", "cache:product:{m2}"), 2);
    ck_assert_int_eq(h_send_cmd(E.c, MAX + 1, argv), 0);       /* 10000 keys */
    raw = h_read_reply(E.c, H_DEFAULT);
    ck_assert_msg(raw && strcmp(raw, ":2\r\n") == 0, "got %s", h_repr(raw));
    free(raw);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{m1}", "cache:product:{m2}"), 0);
    free(argv);
    free(keys);
}
END_TEST

/* A bad key or unknown namespace anywhere in DEL fails the whole command
 * and removes nothing. */
START_TEST(t_del_bad_key_touches_nothing)
{
    env_default();
    h_upstream_set_body(&E.up, "a4", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:a4"), OLD_REPLY);

    CK_PREFIX(D("DEL", "product:a4", "badkey"), "-ERR bad key");
    CK_REPLY(D("DEL", "product:a4", "nosuch:a4"), "-ERR unknown namespace 'nosuch'\r\n");
    CK_PREFIX(D("DEL", "product:"), "-ERR bad key");
    CK_PREFIX(D("DEL", "product:a b"), "-ERR bad key");
    CK_REPLY(D("DEL"), "-ERR wrong number of arguments for 'del' command\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a4}"), 1);
    CK_REPLY(D("HGETALL", "product:a4"), OLD_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "a4"), 1);
}
END_TEST

/* DEL while a fill is under way: the fill that started before DEL
 * carries the old record and must not write it back; a read sent after DEL
 * starts its own fill (it does not join the old one) and gets the new
 * record.  The example upstream builds a response when its latency ends and
 * takes the latency in force when a request arrives: A's request waits
 * 1000 ms, C's 3000 ms, and the record changes between the two answers, so
 * A's fill carries the old record and C's the new one. */
START_TEST(t_del_during_slow_fill)
{
    int ca, cc;
    char *a, *raw;

    env_start(300, 30, 0, 4000);                                /* C waits 3000 ms */
    h_upstream_set_body(&E.up, "x1", OLD_BODY);
    h_upstream_set_latency(&E.up, 1000);
    ca = h_connect(E.d.port);
    cc = h_connect(E.d.port);
    ck_assert_int_eq(h_send_cmdv(ca, "HGETALL", "product:x1", NULL), 0);
    su_wait_upstream_id(&E.up, "x1", 1, 3000);   /* A's fill is at the upstream */
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{x1}"), 1);

    CK_REPLY(D("DEL", "product:x1"), ":0\r\n");                 /* nothing stored yet */
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{x1}"), 0);
    h_upstream_set_latency(&E.up, 3000);
    ck_assert_int_eq(h_send_cmdv(cc, "HGETALL", "product:x1", NULL), 0);
    su_wait_upstream_id(&E.up, "x1", 2, 3000);   /* C has a fill of its own */

    a = h_read_reply(ca, 5000);
    h_upstream_set_body(&E.up, "x1", NEW_BODY);
    CK_REPLY(a, OLD_REPLY);     /* A asked before the change: the old record is right */
    /* A's fill is over, C's will not be for about 2 s: whatever Redis holds
     * in between is not the old record (checked twice, the second time well
     * after A's store script has run). */
    for (int i = 0; i < 2; i++) {
        raw = R("HGETALL", "cache:product:{x1}");
        ck_assert_msg(raw && strstr(raw, "old") == NULL, "Redis holds %s after DEL", h_repr(raw));
        free(raw);
        h_msleep(300);
    }

    CK_REPLY(h_read_reply(cc, 5000), NEW_REPLY);
    h_upstream_set_latency(&E.up, 0);
    CK_REPLY(D("HGETALL", "product:x1"), NEW_REPLY);
    CK_REPLY(R("HGET", "cache:product:{x1}", "v"), "$3\r\nnew\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "x1"), 2);     /* A's fill and C's, no more */
    h_close(ca);
    h_close(cc);
}
END_TEST

/* --------------------------------------------------------- INVALIDATE -- */

/* Writes n records "cache:<ns>:{<id>}" (id = fmt % i) directly, pipelined:
 * HSET with a far __exp (fresh) and a field v = id, then EXPIRE. */
static void populate(const char *ns, const char *fmt, int n)
{
    char exp[32];
    const int chunk = 500;

    snprintf(exp, sizeof(exp), "%lld", wall_ms() + 3600 * 1000LL);
    for (int base = 0; base < n; base += chunk) {
        int m = n - base < chunk ? n - base : chunk;
        for (int i = base; i < base + m; i++) {
            char id[64], key[128];
            snprintf(id, sizeof(id), fmt, i);
            snprintf(key, sizeof(key), "cache:%s:{%s}", ns, id);
            const char *hset[] = { "HSET", key, "__exp", exp, "v", id };
            const char *expire[] = { "EXPIRE", key, "3600" };
            ck_assert_int_eq(h_send_cmd(E.rd, 6, hset), 0);
            ck_assert_int_eq(h_send_cmd(E.rd, 3, expire), 0);
        }
        for (int i = 0; i < m; i++) {
            CK_REPLY(h_read_reply(E.rd, H_DEFAULT), ":2\r\n");
            CK_REPLY(h_read_reply(E.rd, H_DEFAULT), ":1\r\n");
        }
    }
}

/* INVALIDATE ns:glob removes exactly the matching entries of that
 * namespace (and their fill locks) over many SCAN rounds, and other
 * clients are served while it runs. */
START_TEST(t_invalidate_glob)
{
    int c2;
    long long inv, t0, t_ping, t_inval;
    char *inval_early, *raw;

    env_default();
    /* product: 3000 ids start with 'a', 17000 do not (some contain 'a'). */
    populate("product", "a%05d", 3000);
    populate("product", "b%05d", 16000);
    populate("product", "xa%04d", 1000);
    /* user: ids that the glob would match, were it not for the namespace. */
    populate("user", "a%05d", 500);
    populate("user", "b%05d", 100);
    su_set_lock(E.rd, "cache:product:{a00007}", "t", 60000);
    su_set_lock(E.rd, "cache:product:{b00007}", "t", 60000);
    su_set_lock(E.rd, "cache:user:{a00007}", "t", 60000);
    su_set_lock(E.rd, "cache:product:{a99999}", "t", 60000);    /* a fill of an uncached key */
    ck_assert_int_eq(su_dbsize(E.rd), 20000 + 600 + 1);
    inv = stat_get("invalidations");

    c2 = h_connect(E.d.port);
    t0 = h_now_ms();
    ck_assert_int_eq(h_send_cmdv(E.c, "INVALIDATE", "product:a*", NULL), 0);
    /* Another client while the sweep runs: a ping and two cache hits. */
    CK_REPLY(h_cmd(c2, "PING", NULL), "+PONG\r\n");
    t_ping = h_now_ms() - t0;
    inval_early = h_read_reply(E.c, 0);
    CK_REPLY(h_cmd(c2, "HGETALL", "product:b00001", NULL), "*2\r\n$1\r\nv\r\n$6\r\nb00001\r\n");
    CK_REPLY(h_cmd(c2, "HGETALL", "user:a00001", NULL), "*2\r\n$1\r\nv\r\n$6\r\na00001\r\n");
    raw = inval_early ? inval_early : h_read_reply(E.c, 10000);
    t_inval = h_now_ms() - t0;
    fprintf(stderr, "t_invalidate_glob: PING answered after %lld ms, INVALIDATE after %lld ms; "
            "the INVALIDATE reply was %s when the PING reply came\n", t_ping, t_inval,
            inval_early ? "already there" : "still pending");
    CK_REPLY(raw, ":3000\r\n");

    ck_assert_int_eq(r_count("cache:product:{a*"), 0);
    ck_assert_int_eq(r_count("cache:product:*"), 17000);
    ck_assert_int_eq(r_count("cache:product:{xa*"), 1000);
    ck_assert_int_eq(r_count("cache:user:*"), 600);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a00007}"), 0);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{a99999}"), 0);   /* its lock went too */
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{b00007}"), 1);
    ck_assert_int_eq(su_locked(E.rd, "cache:user:{a00007}"), 1);
    ck_assert_int_eq(su_dbsize(E.rd), 17000 + 600);
    ck_assert_int_eq(stat_get("invalidations"), inv + 3000);
    /* Nothing was fetched for all that. */
    ck_assert_int_eq(h_upstream_count(&E.up), 0);
    CK_REPLY(D("INVALIDATE", "product:a*"), ":0\r\n");
    h_close(c2);
}
END_TEST

/* Bad INVALIDATE arguments are errors that remove nothing; "*" empties
 * one namespace only. */
START_TEST(t_invalidate_errors_and_star)
{
    env_default();
    populate("product", "p%03d", 50);
    populate("user", "p%03d", 30);

    CK_REPLY(D("INVALIDATE", "nosuch:p*"), "-ERR unknown namespace 'nosuch'\r\n");
    CK_REPLY(D("INVALIDATE", "lock:*"), "-ERR unknown namespace 'lock'\r\n");
    CK_PREFIX(D("INVALIDATE", "product"), "-ERR bad key");
    CK_PREFIX(D("INVALIDATE", "product:"), "-ERR bad key");
    CK_REPLY(D("INVALIDATE"), "-ERR wrong number of arguments for 'invalidate' command\r\n");
    CK_REPLY(D("INVALIDATE", "product:*", "user:*"),
             "-ERR wrong number of arguments for 'invalidate' command\r\n");
    ck_assert_int_eq(su_dbsize(E.rd), 80);

    CK_REPLY(D("INVALIDATE", "product:p00?"), ":10\r\n");
    CK_REPLY(D("INVALIDATE", "product:*"), ":40\r\n");
    ck_assert_int_eq(r_count("cache:product:*"), 0);
    ck_assert_int_eq(r_count("cache:user:*"), 30);
    CK_REPLY(D("HGETALL", "user:p001"), "*2\r\n$1\r\nv\r\n$4\r\np001\r\n");
    CK_REPLY(D("INVALIDATE", "product:*"), ":0\r\n");
    ck_assert_int_eq(h_upstream_count(&E.up), 0);
}
END_TEST

/* --------------------------------------------------------------- HSET -- */

/* HSET updates a cached entry in place without extending its TTL or its
 * logical expiry; HSET on an uncached key writes and fetches nothing. */
START_TEST(t_hset_cached_and_uncached)
{
    long long fu, pttl_before, pttl_after, rpttl_before, rpttl_after;
    char *exp_before;

    env_default();
    h_upstream_set_body(&E.up, "h1", "{\"v\":\"old\",\"w\":\"keep\"}");
    CK_REPLY(D("HGET", "product:h1", "v"), "$3\r\nold\r\n");
    fu = stat_get("field_updates");
    pttl_before = D_INT("PTTL", "product:h1");
    rpttl_before = R_INT("PTTL", "cache:product:{h1}");
    exp_before = R("HGET", "cache:product:{h1}", "__exp");
    ck_assert(pttl_before > 0 && pttl_before <= 300000);
    h_msleep(20);

    CK_REPLY(D("HSET", "product:h1", "v", "new", "extra", "42"), ":1\r\n");
    CK_REPLY(D("HGET", "product:h1", "v"), "$3\r\nnew\r\n");
    CK_REPLY(D("HGET", "product:h1", "extra"), "$2\r\n42\r\n");
    CK_REPLY(D("HGET", "product:h1", "w"), "$4\r\nkeep\r\n");
    CK_REPLY(R("HGET", "cache:product:{h1}", "v"), "$3\r\nnew\r\n");
    CK_REPLY(R("HGET", "cache:product:{h1}", "extra"), "$2\r\n42\r\n");
    pttl_after = D_INT("PTTL", "product:h1");
    rpttl_after = R_INT("PTTL", "cache:product:{h1}");
    ck_assert_int_le(pttl_after, pttl_before);
    ck_assert_int_gt(pttl_after, 0);
    ck_assert_int_le(rpttl_after, rpttl_before);
    CK_REPLY(R("HGET", "cache:product:{h1}", "__exp"), exp_before);
    free(exp_before);
    ck_assert_int_eq(stat_get("field_updates"), fu + 1);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "h1"), 1);     /* the upstream is not told */

    /* Not cached: nothing written, nothing fetched. */
    h_upstream_set_body(&E.up, "h2", OLD_BODY);
    CK_REPLY(D("HSET", "product:h2", "v", "x"), ":0\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{h2}"), 0);
    ck_assert_int_eq(h_upstream_count(&E.up), 1);
    ck_assert_int_eq(stat_get("field_updates"), fu + 1);
    /* A not-found sentinel is not an entry to update either. */
    CK_REPLY(D("HGETALL", "product:h404"), "*0\r\n");
    CK_REPLY(D("HSET", "product:h404", "v", "x"), ":0\r\n");
    CK_REPLY(D("HGETALL", "product:h404"), "*0\r\n");
    CK_REPLY(R("HGET", "cache:product:{h404}", "v"), "$-1\r\n");
    /* After DEL the update is gone and the upstream record is back. */
    CK_REPLY(D("DEL", "product:h1"), ":1\r\n");
    CK_REPLY(D("HGET", "product:h1", "v"), "$3\r\nold\r\n");
    CK_REPLY(D("HGET", "product:h1", "extra"), "$-1\r\n");
}
END_TEST

/* HSET refuses bookkeeping fields, odd field/value lists, bad keys and raw
 * namespaces without writing anything. */
START_TEST(t_hset_errors)
{
    char *before;

    env_default();
    h_upstream_set_body(&E.up, "h3", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:h3"), OLD_REPLY);
    before = R("HGETALL", "cache:product:{h3}");

    CK_REPLY(D("HSET", "product:h3", "__exp", "1"), "-ERR field names starting with '__' are reserved\r\n");
    CK_REPLY(D("HSET", "product:h3", "v", "x", "__nf", "1"),
             "-ERR field names starting with '__' are reserved\r\n");
    CK_REPLY(D("HSET", "product:h3", "v"), "-ERR wrong number of arguments for 'hset' command\r\n");
    CK_REPLY(D("HSET", "product:h3", "v", "x", "w"), "-ERR wrong number of arguments for 'hset' command\r\n");
    CK_PREFIX(D("HSET", "h3", "v", "x"), "-ERR bad key");
    CK_REPLY(D("HSET", "nosuch:h3", "v", "x"), "-ERR unknown namespace 'nosuch'\r\n");
    CK_PREFIX(D("HSET", "page:h3", "v", "x"), "-WRONGTYPE");

    CK_REPLY(R("HGETALL", "cache:product:{h3}"), before);
    free(before);
    CK_REPLY(D("HGETALL", "product:h3"), OLD_REPLY);
    ck_assert_int_eq(R_INT("EXISTS", "cache:page:{h3}"), 0);
}
END_TEST

/* ---------------------------------------------------------- TTL/PTTL -- */

/* TTL/PTTL report -2 for an uncached key without loading it, and the
 * entry's remaining TTL once it is cached. */
START_TEST(t_ttl_pttl)
{
    long long ttl, pttl;

    env_default();
    h_upstream_set_body(&E.up, "t1", OLD_BODY);
    CK_REPLY(D("TTL", "product:t1"), ":-2\r\n");
    CK_REPLY(D("PTTL", "product:t1"), ":-2\r\n");
    CK_REPLY(D("ttl", "page:t1"), ":-2\r\n");
    ck_assert_int_eq(h_upstream_count(&E.up), 0);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{t1}"), 0);

    CK_REPLY(D("HGETALL", "product:t1"), OLD_REPLY);
    ttl = D_INT("TTL", "product:t1");
    pttl = D_INT("PTTL", "product:t1");
    ck_assert_msg(ttl >= 295 && ttl <= 300, "TTL %lld", ttl);
    ck_assert_msg(pttl > 295000 && pttl <= 300000, "PTTL %lld", pttl);

    /* A not-found sentinel has its own (negative) TTL. */
    CK_REPLY(D("HGETALL", "product:t404"), "*0\r\n");
    ttl = D_INT("TTL", "product:t404");
    ck_assert_msg(ttl >= 25 && ttl <= 30, "TTL of a not-found sentinel %lld", ttl);

    CK_REPLY(D("DEL", "product:t1"), ":1\r\n");
    CK_REPLY(D("PTTL", "product:t1"), ":-2\r\n");
    CK_PREFIX(D("TTL", "t1"), "-ERR bad key");
    CK_REPLY(D("PTTL", "nosuch:t1"), "-ERR unknown namespace 'nosuch'\r\n");
    CK_REPLY(D("TTL"), "-ERR wrong number of arguments for 'ttl' command\r\n");
    ck_assert_int_eq(h_upstream_count(&E.up), 2);
}
END_TEST

/* -------------------------------------------------------------- grace -- */

/* Past its fresh time but within grace, a record is answered at once from
 * the cache while exactly one background refresh fetches the new one. */
START_TEST(t_grace_stale_hit_one_refresh)
{
    enum { NCLI = 4 };
    int cli[NCLI];
    long long stale0, t0, deadline;
    char *raw = NULL;

    /* ttl_s 2 (not 1): negative_ttl_s must be >= 1 and < ttl_s. */
    env_start(2, 1, 30, 4000);
    h_upstream_set_body(&E.up, "g1", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:g1"), OLD_REPLY);
    /* The key lives for the fresh time plus grace. */
    ck_assert_int_gt(R_INT("PTTL", "cache:product:{g1}"), 30000);
    ck_assert_int_gt(D_INT("TTL", "product:g1"), 2);

    h_upstream_set_body(&E.up, "g1", NEW_BODY);
    h_upstream_set_latency(&E.up, 2000);
    wait_logical_expiry("cache:product:{g1}");
    stale0 = stat_get("stale_hits");

    for (int i = 0; i < NCLI; i++)
        cli[i] = h_connect(E.d.port);
    t0 = h_now_ms();
    for (int i = 0; i < NCLI; i++)
        ck_assert_int_eq(h_send_cmdv(cli[i], "HGETALL", "product:g1", NULL), 0);
    for (int i = 0; i < NCLI; i++) {
        CK_REPLY(h_read_reply(cli[i], 5000), OLD_REPLY);
        /* Well before the upstream's 2000 ms: nobody waited for the refresh. */
        ck_assert_msg(h_now_ms() - t0 < 1000, "stale reply %d after %lld ms", i, h_now_ms() - t0);
    }
    ck_assert_int_eq(stat_get("stale_hits"), stale0 + NCLI);

    /* The refresh lands; until then reads stay stale and start no fetch. */
    deadline = h_now_ms() + 6000;
    for (;;) {
        free(raw);
        raw = D("HGETALL", "product:g1");
        ck_assert_msg(raw && (strcmp(raw, OLD_REPLY) == 0 || strcmp(raw, NEW_REPLY) == 0),
                      "read during refresh: %s", h_repr(raw));
        if (strcmp(raw, NEW_REPLY) == 0 || h_now_ms() >= deadline)
            break;
        h_msleep(100);
    }
    CK_REPLY(raw, NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "g1"), 2);
    ck_assert_int_gt(R_INT("PTTL", "cache:product:{g1}"), 30000);
    for (int i = 0; i < NCLI; i++)
        h_close(cli[i]);
}
END_TEST

/* Stale-if-error: while the upstream fails, the stale record is served
 * until grace runs out; after that the read gets the upstream's error. */
START_TEST(t_grace_stale_if_error)
{
    long long deadline, pttl;
    int stale = 0;

    env_start(2, 1, 3, 2000);
    h_upstream_set_body(&E.up, "e1", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:e1"), OLD_REPLY);
    h_upstream_set_status(&E.up, "e1", 503);
    wait_logical_expiry("cache:product:{e1}");

    deadline = h_now_ms() + 8000;
    for (;;) {
        ck_assert_msg(h_now_ms() < deadline, "key never expired (%d stale reads)", stale);
        /* The daemon's PTTL: the entry's own end, also while a refresh's
         * lock keeps the key a little longer. */
        pttl = D_INT("PTTL", "product:e1");
        if (pttl > 300) {
            /* Well within grace: the stale record, not an error. */
            CK_REPLY(D("HGETALL", "product:e1"), OLD_REPLY);
            stale++;
            h_msleep(200);
        } else if (pttl >= 0) {
            h_msleep((int)pttl + 50);   /* too close to call */
        } else {
            break;
        }
    }
    CK_REPLY(D("HGETALL", "product:e1"), "-UPSTREAM status 503\r\n");
    ck_assert_int_ge(stale, 3);
    /* The stale reads did try to refresh (each failed refresh stores nothing). */
    ck_assert_int_ge(h_upstream_count_id(&E.up, "e1"), 3);
    ck_assert_int_eq(su_wait_exists(E.rd, "cache:product:{e1}", 0, 2000), 0);
    CK_REPLY(D("HGETALL", "product:e1"), "-UPSTREAM status 503\r\n");
}
END_TEST

/* A not-found answer to a grace refresh replaces the stale record. */
START_TEST(t_grace_notfound_replaces_stale)
{
    long long deadline;
    char *raw = NULL;

    /* _i == 1: negative_ttl_s = 0 (not-found not cached), which also
     * allows ttl_s = 1. */
    if (_i == 0)
        env_start(2, 1, 30, 2000);
    else
        env_start(1, 0, 30, 2000);
    h_upstream_set_body(&E.up, "n1", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:n1"), OLD_REPLY);
    h_upstream_set_body(&E.up, "n1", NULL);                     /* now 404 */
    wait_logical_expiry("cache:product:{n1}");

    CK_REPLY(D("HGETALL", "product:n1"), OLD_REPLY);           /* stale hit, refresh starts */
    su_wait_upstream_id(&E.up, "n1", 2, 3000);
    deadline = h_now_ms() + 3000;
    for (;;) {
        free(raw);
        raw = D("HGETALL", "product:n1");
        if ((raw && strcmp(raw, "*0\r\n") == 0) || h_now_ms() >= deadline)
            break;
        h_msleep(50);
    }
    CK_REPLY(raw, "*0\r\n");
    CK_REPLY(D("HGET", "product:n1", "v"), "$-1\r\n");
    CK_REPLY(R("HGET", "cache:product:{n1}", "v"), "$-1\r\n"); /* the old record is gone */
    if (_i == 1) {
        long before = h_upstream_count_id(&E.up, "n1");
        /* Only the short not-found marker for waiting daemons is left. */
        ck_assert_int_eq(R_INT("HEXISTS", "cache:product:{n1}", "__exp"), 0);
        CK_REPLY(D("HGETALL", "product:n1"), "*0\r\n");         /* not cached: asked again */
        ck_assert_int_eq(h_upstream_count_id(&E.up, "n1"), before + 1);
        ck_assert_int_eq(R_INT("HEXISTS", "cache:product:{n1}", "__exp"), 0);
    }
}
END_TEST

/* --------------------------------------------------------- Redis down -- */

/* Without Redis the write-side commands reply TRYAGAIN, reads still get
 * answers from the upstream, and the daemon comes back with Redis. */
START_TEST(t_redis_down)
{
    env_default();
    h_upstream_set_body(&E.up, "r1", OLD_BODY);
    CK_REPLY(D("HGETALL", "product:r1"), OLD_REPLY);
    h_upstream_set_body(&E.up, "r1", NEW_BODY);

    h_close(E.rd);
    h_redis_stop(&E.redis);
    poll_reply("DEL", "product:r1", NULL, NULL, TRYAGAIN, 5000);
    CK_REPLY(D("DEL", "product:r1", "user:r1"), TRYAGAIN);
    CK_REPLY(D("INVALIDATE", "product:*"), TRYAGAIN);
    CK_REPLY(D("HSET", "product:r1", "v", "x"), TRYAGAIN);
    CK_REPLY(D("TTL", "product:r1"), TRYAGAIN);
    CK_REPLY(D("PTTL", "product:r1"), TRYAGAIN);
    /* Validation still comes first. */
    CK_PREFIX(D("DEL", "r1"), "-ERR bad key");
    CK_REPLY(D("INVALIDATE", "nosuch:*"), "-ERR unknown namespace 'nosuch'\r\n");
    CK_REPLY(D("PING"), "+PONG\r\n");
    /* Reads go to the upstream, every time (nothing can be stored). */
    CK_REPLY(D("HGETALL", "product:r1"), NEW_REPLY);
    CK_REPLY(D("HGETALL", "product:r1"), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "r1"), 3);
    /* The write-side commands never contacted the upstream. */
    ck_assert_int_eq(h_upstream_count(&E.up), 3);

    /* Redis back (empty): the daemon reconnects by itself. */
    h_redis_start(&E.redis);
    poll_reply("DEL", "product:r1", NULL, NULL, ":0\r\n", 10000);
    E.rd = h_connect(E.redis.port);
    CK_REPLY(D("HGETALL", "product:r1"), NEW_REPLY);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{r1}"), 1);
    CK_REPLY(D("HSET", "product:r1", "v", "x"), ":1\r\n");
    CK_REPLY(D("DEL", "product:r1"), ":1\r\n");
}
END_TEST

/* ---------------------------------------------------------------- main -- */


int main(void)
{
    const struct su_case cases[] = {
        { "del", t_del_then_read_sees_new, 30, 0 },
        { "del_counts", t_del_counts_cached_only, 30, 0 },
        { "del_bad_key", t_del_bad_key_touches_nothing, 30, 0 },
        { "del_many", t_del_many_keys, 30, 0 },
        { "del_slow_fill", t_del_during_slow_fill, 30, 0 },
        { "invalidate_glob", t_invalidate_glob, 30, 0 },
        { "invalidate_errors", t_invalidate_errors_and_star, 30, 0 },
        { "hset", t_hset_cached_and_uncached, 30, 0 },
        { "hset_errors", t_hset_errors, 30, 0 },
        { "ttl", t_ttl_pttl, 30, 0 },
        { "grace", t_grace_stale_hit_one_refresh, 30, 0 },
        { "grace_error", t_grace_stale_if_error, 30, 0 },
        { "grace_notfound", t_grace_notfound_replaces_stale, 30, 2 },
        { "redis_down", t_redis_down, 30, 0 },
    };

    return SU_RUN("writes", cases, CK_NORMAL);
}
