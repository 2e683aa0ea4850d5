/* SPDX-License-Identifier: BSD-3-Clause */
/* test_integrity.c - the cache stays honest under odd Redis contents, races
 * and faults (issue 8): a DEL beats a lock-timeout fill; keys under
 * key_prefix that the daemon did not write are replaced, never obeyed;
 * key_prefix, ids and INVALIDATE globs cannot escape their namespace; a
 * format switch by reload reads right; fills do not push Redis past
 * maxmemory; waiters hear about fills, free locks and not-found answers;
 * UNLINK counts as an invalidation; __exp comes from Redis's clock.
 * Plus unit tests of the glob matcher, checked against redis-server's own. */
#define _GNU_SOURCE
#include "suite.h"
#include "glob.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define OLD_BODY "{\"v\":\"old\"}"
#define NEW_BODY "{\"v\":\"new\"}"
#define OLD_REPLY "*2\r\n$1\r\nv\r\n$3\r\nold\r\n"
#define NEW_REPLY "*2\r\n$1\r\nv\r\n$3\r\nnew\r\n"
#define NEW_BULK "$11\r\n{\"v\":\"new\"}\r\n"

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d, d2;
    int rd;     /* direct connection to redis-server */
    int c;      /* client of the daemon */
} E;

#define D(...) h_cmd(E.c, __VA_ARGS__, NULL)
#define R(...) h_cmd(E.rd, __VA_ARGS__, NULL)
#define D_INT(...) su_take_int(D(__VA_ARGS__))
#define R_INT(...) su_take_int(R(__VA_ARGS__))

/* The daemon's configuration: product (hash) and page (format as given),
 * [cache] lines as given. */
static char conf_text[4096];
static const char *redis_extra = "";      /* more [redis] lines */
static const char *conf_of(const struct h_daemon *d, const char *cache, const char *page_format,
                           const char *server_extra)
{
    snprintf(conf_text, sizeof(conf_text),
             "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = debug\n%s"
             "\n[redis]\nhost = 127.0.0.1\nport = %d\n%s"
             "\n[cache]\nttl_jitter_pct = 0\n%s"
             "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
             "\n[namespace:page]\nupstream = http://127.0.0.1:%d/pages/{id}\nformat = %s\n",
             d->port, server_extra, E.redis.port, redis_extra, cache, E.up.port, E.up.port, page_format);
    return conf_text;
}

static void daemon_up(struct h_daemon *d, const char *const env[], const char *cache,
                      const char *server_extra)
{
    h_daemon_init(d);
    h_daemon_start_env(d, env, "%s", conf_of(d, cache, "raw", server_extra));
    su_wait_linked(d);
}

static void env_start_full(const char *cache, const char *const redis_args[], const char *const env[],
                           const char *server_extra)
{
    memset(&E, 0, sizeof(E));
    h_redis_start_opts(&E.redis, redis_args);
    h_upstream_start(&E.up, 0, 0);
    daemon_up(&E.d, env, cache, server_extra);
    E.rd = h_connect(E.redis.port);
    E.c = h_connect(E.d.port);
}

static void env_start(const char *cache)
{
    env_start_full(cache, NULL, NULL, "");
}

/* ------------------------------------------------------ glob (unit) -- */

static const struct gcase {
    const char *pat, *s;
    bool want;
} gcases[] = {
    { "*", "", true }, { "*", "abc", true }, { "a*", "a", true }, { "a*c", "abbbc", true },
    { "a*c", "abcd", false }, { "*c", "c", true }, { "a**b", "ab", true }, { "?", "", false },
    { "a?c", "abc", true }, { "a?c", "ac", false }, { "[abc]", "b", true }, { "[abc]", "d", false },
    { "[^abc]", "d", true }, { "[^abc]", "a", false }, { "[a-c]x", "bx", true }, { "[c-a]x", "bx", true },
    { "[a-c]", "d", false }, { "[]a]", "a", false }, { "[]a]", "]a]", false }, { "[\\]]", "]", true },
    { "\\*", "*", true }, { "\\*", "a", false }, { "a\\?b", "a?b", true }, { "*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaac", false },
    { "*a*a*a*b", "aaaaaab", true }, { "p-00?", "p-001", true }, { "p-00?", "p-0010", false },
    { "[a-]x", "-x", false }, { "[a\\-z]", "-", true }, { "[a\\-z]", "m", false }, { "x*[0-9]", "xab7", true },
    { "*}", "a}b}", true }, { "{*}", "{a}", true }, { "[^]x", "ax", true },
};

START_TEST(t_glob_unit)
{
    for (size_t i = 0; i < sizeof(gcases) / sizeof(gcases[0]); i++) {
        const struct gcase *g = &gcases[i];
        ck_assert_msg(glob_match(g->pat, strlen(g->pat), g->s, strlen(g->s)) == g->want,
                      "glob '%s' on '%s': want %d", g->pat, g->s, g->want);
    }
    ck_assert_ptr_null(glob_check("a*[bc]?\\*", 9));
    ck_assert_ptr_nonnull(glob_check("abc[", 4));
    ck_assert_ptr_nonnull(glob_check("abc[^", 5));
    ck_assert_ptr_nonnull(glob_check("[a-", 3));
    ck_assert_ptr_nonnull(glob_check("[\\]", 3));
    ck_assert_ptr_nonnull(glob_check("abc\\", 4));
    ck_assert_ptr_null(glob_check("abc\\\\", 5));
    {
        char buf[64];
        size_t n = glob_escape(buf, "a*b?[c]\\", 8);
        ck_assert_str_eq(buf, "a\\*b\\?\\[c\\]\\\\");
        ck_assert_uint_eq(n, strlen(buf));
        ck_assert(glob_match(buf, n, "a*b?[c]\\", 8));
        ck_assert(!glob_match(buf, n, "axbx[c]\\", 8));
    }
}
END_TEST

/* The matcher agrees with redis-server's (SCAN MATCH) on every case. */
START_TEST(t_glob_vs_redis)
{
    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    E.rd = h_connect(E.redis.port);
    for (size_t i = 0; i < sizeof(gcases) / sizeof(gcases[0]); i++) {
        const struct gcase *g = &gcases[i];
        char *raw;
        struct h_reply *r;
        bool redis_says;

        CK_REPLY(R("FLUSHALL"), "+OK\r\n");
        if (*g->s)
            CK_REPLY(R("SET", g->s, "1"), "+OK\r\n");
        raw = R("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", g->pat);
        r = h_parse_reply(raw);
        ck_assert_msg(r->type == H_REPLY_INTEGER, "KEYS %s: %s", g->pat, h_repr(raw));
        redis_says = *g->s && r->integer == 1;
        h_reply_free(r);
        free(raw);
        if (!*g->s)
            continue;           /* Redis has no empty key to match */
        ck_assert_msg(glob_match(g->pat, strlen(g->pat), g->s, strlen(g->s)) == redis_says,
                      "glob '%s' on '%s': Redis says %d", g->pat, g->s, redis_says);
    }
}
END_TEST

/* ------------------------------------------- item 2: DEL beats take-over -- */

START_TEST(t_del_beats_lock_timeout)
{
    int c1;

    env_start("lock_ttl_ms = 1500\nupstream_timeout_ms = 1000\nlock_poll_ms = 50\n");
    h_upstream_set_body(&E.up, "k2", OLD_BODY);
    /* A stuck lock holder (another daemon that froze). */
    su_set_lock(E.rd, "cache:product:{k2}", "stuck", 1500);
    h_upstream_set_latency(&E.up, 700);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:k2", NULL);
    su_wait_upstream_id(&E.up, "k2", 1, 5000);
    /* The take-over fetch is under way: invalidate. */
    CK_REPLY(D("DEL", "product:k2"), ":0\r\n");
    CK_REPLY(h_read_reply(c1, 5000), OLD_REPLY);
    /* Through the daemon: its Redis link runs this after the fill's store. */
    CK_REPLY(D("PTTL", "product:k2"), ":-2\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{k2}"), 0);
}
END_TEST

/* ------------------------------------ item 3: keys the daemon did not write -- */

static void ck_quick_fill(const char *key, const char *rkey, const char *id)
{
    long long t0 = h_now_ms();

    h_upstream_set_body(&E.up, id, NEW_BODY);
    CK_REPLY(D("HGETALL", key), NEW_REPLY);
    ck_assert_msg(h_now_ms() - t0 < 1500, "%s took %lld ms (lock_ttl_ms is 3000)", key, h_now_ms() - t0);
    CK_REPLY(R("TYPE", rkey), "+hash\r\n");
    CK_REPLY(D("HGETALL", key), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, id), 1);
}

START_TEST(t_stray_locks_replaced)
{
    env_start("lock_ttl_ms = 3000\n");
    su_set_lock(E.rd, "cache:product:{k3}", "junk", 0);        /* never lapses */
    ck_quick_fill("product:k3", "cache:product:{k3}", "k3");
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{k3}"), 0);
    ck_assert_int_eq(R_INT("HSET", "cache:product:{k4}", "__lock", "x", "__lockexp", "soon"), 2);  /* not a time */
    ck_quick_fill("product:k4", "cache:product:{k4}", "k4");
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{k4}"), 0);
}
END_TEST

START_TEST(t_foreign_records_replaced)
{
    env_start("lock_ttl_ms = 3000\n");
    CK_REPLY(R("SET", "cache:product:{k5}", "junk", "EX", "600"), "+OK\r\n");
    CK_REPLY(D("HSET", "product:k5", "name", "x"), ":0\r\n");
    ck_quick_fill("product:k5", "cache:product:{k5}", "k5");
    CK_REPLY(D("HSET", "product:k5", "v", "set"), ":1\r\n");

    ck_assert_int_eq(R_INT("RPUSH", "cache:page:{k6}", "a"), 1);
    h_upstream_set_body(&E.up, "k6", NEW_BODY);
    CK_REPLY(D("GET", "page:k6"), NEW_BULK);
    CK_REPLY(R("TYPE", "cache:page:{k6}"), "+hash\r\n");
    CK_REPLY(D("GET", "page:k6"), NEW_BULK);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k6"), 1);

    /* __exp that is not a number: not served as fresh for ever. */
    ck_assert_int_eq(R_INT("HSET", "cache:product:{k7}", "__exp", "abc", "v", "forged"), 2);
    ck_assert_int_eq(R_INT("PEXPIRE", "cache:product:{k7}", "600000"), 1);
    CK_REPLY(D("HSET", "product:k7", "v", "x"), ":0\r\n");
    h_upstream_set_body(&E.up, "k7", NEW_BODY);
    CK_REPLY(D("HGET", "product:k7", "v"), "$3\r\nnew\r\n");
    CK_REPLY(D("HGETALL", "product:k7"), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "k7"), 1);
}
END_TEST

/* ------------------------------------ item 4: prefix, ids and globs -- */

static int check_conf(const char *prefix, char *out, size_t outsz)
{
    struct h_daemon d;
    char path[PATH_MAX], log[PATH_MAX], text[4096];
    const char *argv[5];
    int st = 0;
    pid_t pid;

    memset(&d, 0, sizeof(d));
    d.port = 7379;
    memset(&E, 0, sizeof(E));
    E.up.port = 8080;
    E.redis.port = 6379;
    snprintf(path, sizeof(path), "%s", h_path("prefix.ini"));
    snprintf(log, sizeof(log), "%s", h_path("prefix.log"));
    snprintf(text, sizeof(text), "%s", conf_of(&d, "", "raw", ""));
    /* key_prefix is line 9: [server] and its 3 keys, a blank, [redis] and its 2 keys. */
    {
        char *p = strstr(text, "port = 6379\n") + strlen("port = 6379\n");
        char rest[4096];
        snprintf(rest, sizeof(rest), "%s", p);
        snprintf(p, sizeof(text) - (size_t)(p - text), "key_prefix = %s\n%s", prefix, rest);
    }
    h_write_file(path, text, strlen(text));
    argv[0] = h_daemon_bin();
    argv[1] = "-t";
    argv[2] = "-c";
    argv[3] = path;
    argv[4] = NULL;
    pid = h_spawn(argv, log);
    ck_assert_int_eq(h_wait_exit(pid, 5000, &st), 0);
    {
        FILE *f = fopen(log, "r");
        size_t n = f ? fread(out, 1, outsz - 1, f) : 0;
        out[n] = '\0';
        if (f)
            fclose(f);
    }
    unlink(log);
    return h_exit_code(st);
}

START_TEST(t_prefix_checked)
{
    static const char *const bad[] = { "c?:", "c*:", "c[a]:", "c{x}:", "c\\:", "a b" };
    char out[2048], want[PATH_MAX + 64];

    snprintf(want, sizeof(want), "%s:9: 'key_prefix' may hold only", h_path("prefix.ini"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(check_conf(bad[i], out, sizeof(out)) == 1, "key_prefix %s accepted: %s", bad[i], out);
        ck_assert_msg(strstr(out, want), "key_prefix %s: %s (want %s)", bad[i], out, want);
    }
    ck_assert_msg(check_conf("app-1.cache:v2/", out, sizeof(out)) == 0, "good prefix refused: %s", out);
}
END_TEST

START_TEST(t_bad_globs_and_ids)
{
    env_start("");
    h_upstream_set_body(&E.up, "abc", NEW_BODY);
    CK_REPLY(D("HGETALL", "product:abc"), NEW_REPLY);
    CK_PREFIX(D("INVALIDATE", "product:abc["), "-ERR bad key 'product:abc[': glob has an unclosed '['");
    CK_PREFIX(D("INVALIDATE", "product:abc\\"), "-ERR bad key 'product:abc\\': glob ends with a lone");
    CK_PREFIX(D("INVALIDATE", "product:ab[^"), "-ERR bad key");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{abc}"), 1);
    CK_PREFIX(D("HGETALL", "product:}x"), "-ERR bad key 'product:}x': id may not start with '}'");
    CK_PREFIX(D("DEL", "product:}"), "-ERR bad key");
    CK_PREFIX(D("INVALIDATE", "product:}*"), "-ERR bad key");
    CK_REPLY(D("INVALIDATE", "product:ab[c]"), ":1\r\n");
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{abc}"), 0);
    ck_assert_int_eq(h_upstream_count(&E.up), 1);
}
END_TEST

/* ------------------------------------------- item 5: format switch -- */

static void reload_page_format(const char *cache, const char *format)
{
    long off = h_log_size(E.d.log);

    h_daemon_rewrite_conf(&E.d, "%s", conf_of(&E.d, cache, format, ""));
    h_kill(E.d.pid, SIGHUP);
    ck_assert_msg(h_wait_log_after(E.d.log, off, "reload: configuration applied", 5000) == 0,
                  "no reload: %s", h_log_tail(E.d.log));
}

START_TEST(t_format_switch)
{
    const char *cache = "lock_ttl_ms = 3000\n";
    int c1;

    env_start(cache);
    h_upstream_set_body(&E.up, "f1", NEW_BODY);
    CK_REPLY(D("GET", "page:f1"), NEW_BULK);
    reload_page_format(cache, "hash");
    CK_REPLY(D("HGETALL", "page:f1"), NEW_REPLY);          /* not an empty array */
    ck_assert_int_eq(R_INT("HEXISTS", "cache:page:{f1}", "__body"), 0);
    CK_REPLY(D("HGET", "page:f1", "v"), "$3\r\nnew\r\n");
    reload_page_format(cache, "raw");
    CK_REPLY(D("GET", "page:f1"), NEW_BULK);               /* not nil */
    ck_assert_int_eq(h_upstream_count_id(&E.up, "f1"), 3);

    /* A request right after a reload does not join the old-format fill. */
    h_upstream_set_body(&E.up, "f2", NEW_BODY);
    h_upstream_set_latency(&E.up, 1200);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "GET", "page:f2", NULL);
    su_wait_upstream_id(&E.up, "f2", 1, 3000);
    reload_page_format(cache, "hash");
    CK_REPLY(h_cmd(E.c, "HGETALL", "page:f2", NULL), NEW_REPLY);
    CK_REPLY(h_read_reply(c1, 5000), NEW_BULK);
    CK_REPLY(D("HGETALL", "page:f2"), NEW_REPLY);
}
END_TEST

/* ------------------------------------------------ item 6: maxmemory -- */

/* As many as upstream_connections, so every fetch runs at once. */
#define OOM_KEYS 16
#define OOM_BODY 800000

START_TEST(t_fills_respect_maxmemory)
{
    static const char *const args[] = { "--maxmemory", "3mb", "--maxmemory-policy", "noeviction", NULL };
    const char *argv[OOM_KEYS + 1];
    char ids[OOM_KEYS][16], keys[OOM_KEYS][24], *body = malloc(OOM_BODY + 1), *raw;
    struct h_reply *r;
    long long used = -1, stored = 0;
    size_t len;

    /* Megabytes of scripts on one link: do not let a slow (sanitizer)
     * build drop it, which would fail the releases this test checks. */
    redis_extra = "command_timeout_ms = 5000\n";
    env_start_full("upstream_timeout_ms = 8000\nlock_ttl_ms = 10000\n", args, NULL, "");
    memset(body, 'x', OOM_BODY);
    body[OOM_BODY] = '\0';
    argv[0] = "MGET";
    for (int i = 0; i < OOM_KEYS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "big%02d", i);
        snprintf(keys[i], sizeof(keys[i]), "page:%s", ids[i]);
        body[0] = (char)('A' + i % 26);
        h_upstream_set_body(&E.up, ids[i], body);
        argv[i + 1] = keys[i];
    }
    h_upstream_set_latency(&E.up, 300);
    h_send_cmd(E.c, OOM_KEYS + 1, argv);
    raw = h_read_reply_len(E.c, 30000, &len);
    ck_assert_msg(raw != NULL, "no MGET reply: %s", h_log_tail(E.d.log));
    r = h_parse_reply_len(raw, len);
    ck_assert_int_eq(r->type, H_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, OOM_KEYS);
    for (int i = 0; i < OOM_KEYS; i++) {
        /* Every read still gets the upstream's record. */
        ck_assert_msg(r->element[i]->type == H_REPLY_BULK && r->element[i]->len == OOM_BODY &&
                      r->element[i]->str[0] == 'A' + i % 26, "element %d: %s", i,
                      h_repr(r->element[i]->str));
    }
    h_reply_free(r);
    free(raw);
    CK_REPLY(D("PING"), "+PONG\r\n");
    h_msleep(300);
    raw = R("INFO", "memory");
    {
        const char *p = strstr(raw, "used_memory:");
        ck_assert_ptr_nonnull(p);
        used = strtoll(p + 12, NULL, 10);
    }
    free(raw);
    ck_assert_msg(used < 6 * 1024 * 1024, "Redis holds %lld bytes with maxmemory 3mb", used);
    /* Nothing half stored: each record is whole; no lock is left behind. */
    for (int i = 0; i < OOM_KEYS; i++) {
        char rkey[600];
        snprintf(rkey, sizeof(rkey), "cache:page:{%s}", ids[i]);
        if (R_INT("EXISTS", rkey) == 0)
            continue;
        stored++;
        ck_assert_int_eq(R_INT("HSTRLEN", rkey, "__body"), OOM_BODY);
        ck_assert_int_eq(R_INT("HEXISTS", rkey, "__exp"), 1);
        ck_assert_int_gt(R_INT("PTTL", rkey), 0);
    }
    ck_assert_msg(stored < OOM_KEYS, "all %lld records stored", stored);
    ck_assert_int_eq(R_INT("EVAL", "local n = 0 for _, k in ipairs(redis.call('KEYS', 'cache:page:*')) do "
                                   "n = n + redis.call('HEXISTS', k, '__lock') end return n", "0"), 0);
    ck_assert_int_gt(su_stat(E.c, "redis_errors"), 0);
    /* Refused up front by the #!lua declaration, not half-way. */
    ck_assert_msg(h_log_contains(E.d.log, "Redis refused the store: OOM"), "no OOM refusal: %s",
                  h_log_tail(E.d.log));
    free(body);
}
END_TEST

/* ------------------------------------------- item 8: waiters, notices -- */

START_TEST(t_invalidate_detaches_only_matches)
{
    int c1, c2, c3;

    env_start("");
    h_upstream_set_body(&E.up, "a1", NEW_BODY);
    h_upstream_set_body(&E.up, "b1", NEW_BODY);
    h_upstream_set_latency(&E.up, 1200);
    c1 = h_connect(E.d.port);
    c2 = h_connect(E.d.port);
    c3 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:a1", NULL);
    h_send_cmdv(c2, "HGETALL", "product:b1", NULL);
    su_wait_upstream_id(&E.up, "a1", 1, 3000);
    su_wait_upstream_id(&E.up, "b1", 1, 3000);
    CK_REPLY(D("INVALIDATE", "product:a*"), ":0\r\n");
    h_send_cmdv(c3, "HGETALL", "product:b1", NULL);
    CK_REPLY(h_read_reply(c1, 5000), NEW_REPLY);
    CK_REPLY(h_read_reply(c2, 5000), NEW_REPLY);
    CK_REPLY(h_read_reply(c3, 5000), NEW_REPLY);
    ck_assert_int_eq(su_stat(E.c, "coalesced"), 1);
    ck_assert_int_eq(su_stat(E.c, "stampedes_suppressed"), 0);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "b1"), 1);
}
END_TEST

START_TEST(t_waiter_takes_freed_lock)
{
    long long t0;
    int c1;

    env_start("lock_ttl_ms = 4000\nupstream_timeout_ms = 2000\n");
    h_upstream_set_body(&E.up, "w1", NEW_BODY);
    su_set_lock(E.rd, "cache:product:{w1}", "other", 20000);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:w1", NULL);
    h_msleep(300);
    t0 = h_now_ms();
    CK_REPLY(D("INVALIDATE", "product:w*"), ":0\r\n");     /* removes the lock */
    CK_REPLY(h_read_reply(c1, 6000), NEW_REPLY);
    ck_assert_msg(h_now_ms() - t0 < 2000, "waited %lld ms after the lock was freed", h_now_ms() - t0);
    ck_assert_int_eq(su_stat(E.c, "lock_timeouts"), 0);
}
END_TEST

/* Another daemon's fill failed and a third took the lock over: the new
 * holder gets its own lock_ttl_ms, so no upstream read runs beside it. */
START_TEST(t_new_holder_is_waited_for)
{
    long long t0;
    int c1;

    env_start("lock_ttl_ms = 1000\nupstream_timeout_ms = 800\nlock_poll_ms = 50\n");
    h_upstream_set_body(&E.up, "n1", NEW_BODY);
    su_set_lock(E.rd, "cache:product:{n1}", "other-1", 1000);
    t0 = h_now_ms();
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:n1", NULL);
    h_msleep(500);
    su_set_lock(E.rd, "cache:product:{n1}", "other-2", 1000);
    /* Past the first holder's lock_ttl_ms, inside the second's. */
    while (h_now_ms() < t0 + 1350)
        h_msleep(10);
    ck_assert_msg(h_upstream_count_id(&E.up, "n1") == 0,
                  "the upstream was read while another daemon's fill held the lock");
    /* The second lock expires at t0+1500: the poll takes it and fills. */
    CK_REPLY(h_read_reply(c1, 5000), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "n1"), 1);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{n1}"), 1);
}
END_TEST

/* Fills elsewhere that fail fast, one after another (each a notice with no
 * record, the lock taken over at once): however many, this daemon never
 * reads the upstream while another holds the lock. */
START_TEST(t_failed_fills_never_overlap)
{
    char tok[16];
    int c1;

    env_start("lock_ttl_ms = 2000\nupstream_timeout_ms = 1000\nlock_poll_ms = 50\n");
    h_upstream_set_body(&E.up, "n3", NEW_BODY);
    su_set_lock(E.rd, "cache:product:{n3}", "other-0", 2000);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:n3", NULL);
    h_msleep(200);
    for (int i = 1; i <= 6; i++) {
        snprintf(tok, sizeof(tok), "other-%d", i);
        su_set_lock(E.rd, "cache:product:{n3}", tok, 2000);
        free(R("SPUBLISH", "cache:fills:product:{n3}", "done"));
        h_msleep(100);
        ck_assert_msg(h_upstream_count_id(&E.up, "n3") == 0,
                      "the upstream was read beside fill %d of another daemon", i);
    }
    /* The last holder goes away: the waiter takes the lock and fills. */
    ck_assert_int_eq(R_INT("DEL", "cache:product:{n3}"), 1);
    free(R("SPUBLISH", "cache:fills:product:{n3}", "done"));
    CK_REPLY(h_read_reply(c1, 5000), NEW_REPLY);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "n3"), 1);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{n3}"), 1);
}
END_TEST

/* Holders that keep changing: the wait ends at lock_ttl_ms +
 * upstream_timeout_ms with -TRYAGAIN, and no upstream read. */
START_TEST(t_holder_chain_hits_reply_bound)
{
    long long t0, took;
    char tok[16];
    char *raw = NULL;
    int c1;

    env_start("lock_ttl_ms = 1000\nupstream_timeout_ms = 800\nlock_poll_ms = 50\n");
    h_upstream_set_body(&E.up, "n2", NEW_BODY);
    su_set_lock(E.rd, "cache:product:{n2}", "other-0", 1000);
    t0 = h_now_ms();
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:n2", NULL);
    for (int i = 1; i <= 8 && !raw; i++) {
        h_msleep(400);
        snprintf(tok, sizeof(tok), "other-%d", i);
        su_set_lock(E.rd, "cache:product:{n2}", tok, 1000);
        raw = h_read_reply(c1, 1);
    }
    if (!raw)
        raw = h_read_reply(c1, 3000);
    took = h_now_ms() - t0;
    CK_PREFIX(raw, "-TRYAGAIN");
    ck_assert_msg(took >= 1700 && took < 2800, "answered after %lld ms, want about 1800", took);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "n2"), 0);
}
END_TEST

START_TEST(t_notice_when_lock_lost)
{
    int sub, c1;
    char *raw;

    env_start("");
    sub = h_connect(E.redis.port);
    raw = h_cmd(sub, "SSUBSCRIBE", "cache:fills:product:{l1}", NULL);
    ck_assert_ptr_nonnull(raw);
    free(raw);
    h_upstream_set_body(&E.up, "l1", NEW_BODY);
    h_upstream_set_latency(&E.up, 500);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:l1", NULL);
    su_wait_upstream_id(&E.up, "l1", 1, 3000);
    ck_assert_int_eq(R_INT("HDEL", "cache:product:{l1}", "__lock", "__lockexp"), 2);  /* as if it expired */
    CK_REPLY(h_read_reply(c1, 5000), NEW_REPLY);
    raw = h_read_reply(sub, 3000);
    ck_assert_msg(raw && strstr(raw, "smessage") && strstr(raw, "cache:fills:product:{l1}") && strstr(raw, "done"),
                  "no fill notice: %s", h_repr(raw));
    free(raw);
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{l1}"), 0);
}
END_TEST

START_TEST(t_shutdown_releases_locks)
{
    int c1;

    env_start_full("lock_ttl_ms = 8000\nupstream_timeout_ms = 6000\n", NULL, NULL, "shutdown_grace_ms = 200\n");
    h_upstream_set_body(&E.up, "s1", NEW_BODY);
    h_upstream_set_latency(&E.up, 4000);
    c1 = h_connect(E.d.port);
    h_send_cmdv(c1, "HGETALL", "product:s1", NULL);
    su_wait_upstream_id(&E.up, "s1", 1, 3000);
    ck_assert_int_eq(su_locked(E.rd, "cache:product:{s1}"), 1);
    ck_assert_int_eq(h_daemon_stop(&E.d), 0);
    ck_assert_msg(su_locked(E.rd, "cache:product:{s1}") == 0, "lock left: %s", h_log_tail(E.d.log));
}
END_TEST

START_TEST(t_notfound_shared_across_daemons)
{
    int c1, c2, c3;

    env_start("negative_ttl_s = 0\nlock_ttl_ms = 4000\n");
    daemon_up(&E.d2, NULL, "negative_ttl_s = 0\nlock_ttl_ms = 4000\n", "");
    h_upstream_set_latency(&E.up, 1000);
    c1 = h_connect(E.d.port);
    c2 = h_connect(E.d2.port);
    c3 = h_connect(E.d2.port);
    h_send_cmdv(c1, "HGETALL", "product:nf1", NULL);
    su_wait_upstream_id(&E.up, "nf1", 1, 3000);
    h_send_cmdv(c2, "HGETALL", "product:nf1", NULL);
    h_send_cmdv(c3, "HGET", "product:nf1", "v", NULL);
    CK_REPLY(h_read_reply(c1, 5000), "*0\r\n");
    CK_REPLY(h_read_reply(c2, 5000), "*0\r\n");
    CK_REPLY(h_read_reply(c3, 5000), "$-1\r\n");
    h_msleep(300);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "nf1"), 1);
    ck_assert_int_eq(R_INT("HEXISTS", "cache:product:{nf1}", "__exp"), 0);     /* nothing cached */
    /* A later read is a new question: it asks the upstream again. */
    h_upstream_set_latency(&E.up, 0);
    CK_REPLY(D("HGETALL", "product:nf1"), "*0\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "nf1"), 2);
}
END_TEST

/* ---------------------------------------- item 9: UNLINK, Redis's clock -- */

START_TEST(t_unlink_is_an_invalidation)
{
    env_start("");
    h_upstream_set_body(&E.up, "u1", NEW_BODY);
    CK_REPLY(D("HGETALL", "product:u1"), NEW_REPLY);
    CK_REPLY(D("UNLINK", "product:u1"), ":1\r\n");
    ck_assert_int_eq(su_stat(E.c, "invalidations"), 1);
    ck_assert_int_eq(su_stat(E.c, "field_updates"), 0);
}
END_TEST

/* __exp is Redis's time plus the fresh time, whatever the daemon's clock
 * says (CLOCKSHIFT_S moves the daemon's wall clock when the test preload
 * library is there). */
START_TEST(t_exp_from_redis_clock)
{
    const char *shim = getenv("CACHASIDED_CLOCKSHIFT_LIB");
    char preload[PATH_MAX + 16], asan[1024];
    const char *env[4] = { NULL };
    long long before, after, exp;
    char *raw;
    struct h_reply *r;

    if (shim && *shim) {
        const char *old = getenv("ASAN_OPTIONS");
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", shim);
        snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0", old ? old : "", old && *old ? ":" : "");
        env[0] = preload;
        env[1] = "CLOCKSHIFT_S=3600";      /* the daemon's host is an hour ahead */
        env[2] = asan;
    }
    env_start_full("ttl_s = 300\ngrace_s = 600\n", NULL, env, "");
    h_upstream_set_body(&E.up, "t1", NEW_BODY);
    before = su_redis_time_ms(E.rd);
    CK_REPLY(D("HGETALL", "product:t1"), NEW_REPLY);
    after = su_redis_time_ms(E.rd);
    raw = R("HGET", "cache:product:{t1}", "__exp");
    r = h_parse_reply(raw);
    ck_assert_msg(r->type == H_REPLY_BULK, "__exp: %s", h_repr(raw));
    exp = strtoll(r->str, NULL, 10);
    h_reply_free(r);
    free(raw);
    ck_assert_msg(exp >= before + 300000 && exp <= after + 300000, "__exp %lld, Redis time %lld..%lld + 300 s",
                  exp, before, after);
    /* The read path judges freshness by Redis's clock too: a record fresh
     * for another minute is a hit, not a stale hit with a refresh. */
    exp = su_redis_time_ms(E.rd) + 60000;
    {
        char e[32];
        snprintf(e, sizeof(e), "%lld", exp);
        ck_assert_int_eq(R_INT("HSET", "cache:product:{t2}", "__exp", e, "v", "cached"), 2);
        ck_assert_int_eq(R_INT("PEXPIRE", "cache:product:{t2}", "600000"), 1);
    }
    h_msleep(1500);             /* the daemon has measured Redis's clock */
    CK_REPLY(D("HGET", "product:t2", "v"), "$6\r\ncached\r\n");
    ck_assert_int_eq(su_stat(E.c, "stale_hits"), 0);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "t2"), 0);
}
END_TEST


int main(void)
{
    const struct su_case cases[] = {
        { "glob_unit", t_glob_unit, 10, 0 },
        { "glob_vs_redis", t_glob_vs_redis, 30, 0 },
        { "del_beats_lock_timeout", t_del_beats_lock_timeout, 30, 0 },
        { "stray_locks_replaced", t_stray_locks_replaced, 30, 0 },
        { "foreign_records_replaced", t_foreign_records_replaced, 30, 0 },
        { "prefix_checked", t_prefix_checked, 30, 0 },
        { "bad_globs_and_ids", t_bad_globs_and_ids, 30, 0 },
        { "format_switch", t_format_switch, 40, 0 },
        { "fills_respect_maxmemory", t_fills_respect_maxmemory, 60, 0 },
        { "invalidate_detaches_only_matches", t_invalidate_detaches_only_matches, 30, 0 },
        { "waiter_takes_freed_lock", t_waiter_takes_freed_lock, 30, 0 },
        { "new_holder_is_waited_for", t_new_holder_is_waited_for, 30, 0 },
        { "holder_chain_hits_reply_bound", t_holder_chain_hits_reply_bound, 30, 0 },
        { "failed_fills_never_overlap", t_failed_fills_never_overlap, 30, 0 },
        { "notice_when_lock_lost", t_notice_when_lock_lost, 30, 0 },
        { "shutdown_releases_locks", t_shutdown_releases_locks, 30, 0 },
        { "notfound_shared_across_daemons", t_notfound_shared_across_daemons, 30, 0 },
        { "unlink_is_an_invalidation", t_unlink_is_an_invalidation, 30, 0 },
        { "exp_from_redis_clock", t_exp_from_redis_clock, 30, 0 },
    };

    return SU_RUN("integrity", cases, CK_NORMAL);
}
