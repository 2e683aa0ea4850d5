/* SPDX-License-Identifier: BSD-3-Clause */
/* test_order.c - integration tests of per-connection ordering
 * (docs/design.md section 5, docs/protocol.md "Ordering"): the commands of one connection
 * on one key take effect in the order they were sent, however they are
 * pipelined, while misses of different keys are still fetched in
 * parallel.  Each test runs a real redis-server, the example upstream with
 * a latency (so a cold read is still filling when the next command of the
 * pipeline arrives) and the built daemon.  Assertions are on the replies,
 * on what Redis holds (direct connection) and on the upstream's counters. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LATENCY_MS 200

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int rd;     /* direct connection to redis-server */
    int c;      /* client of the daemon */
} E;

#define D(...) h_cmd(E.c, __VA_ARGS__, NULL)
#define R(...) h_cmd(E.rd, __VA_ARGS__, NULL)

#define R_INT(...) su_take_int(R(__VA_ARGS__))

/* The generated record p-NNN has name "Product N" and stock (N*7)%100. */
static char *bulk(const char *s)
{
    char *out = malloc(strlen(s) + 32);

    ck_assert(out != NULL);
    sprintf(out, "$%zu\r\n%s\r\n", strlen(s), s);
    return out;
}

/* redis + upstream (60 generated records p-001..p-060, LATENCY_MS each)
 * + daemon; waits until the daemon has its Redis link up. */
static void env_start(void)
{
    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start(&E.up, LATENCY_MS, 60);
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
                   "ttl_s = 300\n"
                   "ttl_jitter_pct = 0\n"
                   "upstream_timeout_ms = 3000\n"
                   "lock_ttl_ms = 5000\n"
                   "upstream_connections = 64\n"
                   "\n[namespace:product]\n"
                   "upstream = http://127.0.0.1:%d/products/{id}\n"
                   "\n[namespace:page]\n"
                   "upstream = http://127.0.0.1:%d/products/{id}\n"
                   "format = raw\n",
                   E.d.port, E.redis.port, E.up.port, E.up.port);
    E.rd = h_connect(E.redis.port);
    E.c = h_connect(E.d.port);
    su_wait_linked(&E.d);
}

/* The daemon exits cleanly (under ASan: no leak, no report). */
static void env_stop_clean(void)
{
    int st = h_daemon_stop(&E.d);

    ck_assert_msg(st == 0, "daemon exited %d: %s", st, h_log_tail(E.d.log));
    ck_assert_msg(!h_log_contains(E.d.log, "Sanitizer"), "sanitizer report: %s", h_log_tail(E.d.log));
}

/* ------------------------------------------------- read, then write ---- */

/* The pipeline on a cold key: the TTL and the HSET see the record
 * the HGET brings in.  Then the same with PTTL. */
START_TEST(t_read_ttl_hset)
{
    struct su_pipe b = { 0 };
    char *raw;
    long long ttl;

    env_start();
    su_pipe_cmd(&b, "HGET", "product:p-001", "name", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-001", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-001", "stock", "7", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$9\r\nProduct 1\r\n");
    raw = h_read_reply(E.c, H_DEFAULT);
    ttl = h_reply_int(raw);
    ck_assert_msg(ttl > 0 && ttl <= 300, "TTL after the read: %s", h_repr(raw));
    free(raw);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(R("HGET", "cache:product:{p-001}", "stock"), "$1\r\n7\r\n");
    CK_REPLY(D("HGET", "product:p-001", "stock"), "$1\r\n7\r\n");

    su_pipe_cmd(&b, "HGETALL", "product:p-002", NULL);
    su_pipe_cmd(&b, "PTTL", "product:p-002", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-002", "stock", "8", "name", "Renamed", NULL);
    su_pipe_cmd(&b, "HMGET", "product:p-002", "stock", "name", NULL);
    su_pipe_send(E.c, &b);
    raw = h_read_reply(E.c, H_DEFAULT);
    ck_assert_msg(raw && raw[0] == '*' && strstr(raw, "Product 2"), "HGETALL: %s", h_repr(raw));
    free(raw);
    raw = h_read_reply(E.c, H_DEFAULT);
    ttl = h_reply_int(raw);
    ck_assert_msg(ttl > 250000 && ttl <= 300000, "PTTL after the read: %s", h_repr(raw));
    free(raw);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "*2\r\n$1\r\n8\r\n$7\r\nRenamed\r\n");
    CK_REPLY(R("HGET", "cache:product:{p-002}", "stock"), "$1\r\n8\r\n");
    ck_assert_int_eq(h_upstream_count(&E.up), 2);
    env_stop_clean();
}
END_TEST

/* Reads of a cold key and of other keys run side by side, counted only;
 * the HSET that follows them must still wait for every one of them (the
 * HGETs of p-003 fill the record: an HSET run beside them would be
 * overwritten by that fill), and the read after it sees its value. */
START_TEST(t_reads_then_write)
{
    struct su_pipe b = { 0 };
    char *raw;

    env_start();
    for (int i = 0; i < 5; i++) {
        su_pipe_cmd(&b, "HGET", "product:p-003", "stock", NULL);
        su_pipe_cmd(&b, "HGET", i % 2 ? "product:p-004" : "product:p-005", "name", NULL);
    }
    su_pipe_cmd(&b, "HSET", "product:p-003", "stock", "99", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-003", "stock", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-005", NULL);
    su_pipe_send(E.c, &b);
    for (int i = 0; i < 5; i++) {
        CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$2\r\n21\r\n");
        CK_REPLY(h_read_reply(E.c, H_DEFAULT), i % 2 ? "$9\r\nProduct 4\r\n" : "$9\r\nProduct 5\r\n");
    }
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$2\r\n99\r\n");
    raw = h_read_reply(E.c, H_DEFAULT);
    ck_assert_msg(h_reply_int(raw) > 0, "TTL: %s", h_repr(raw));
    free(raw);
    CK_REPLY(R("HGET", "cache:product:{p-003}", "stock"), "$2\r\n99\r\n");
    ck_assert_int_eq(h_upstream_count(&E.up), 3);
    env_stop_clean();
}
END_TEST

/* The same bytes through redis-cli --pipe (the mass-insertion mode: it
 * writes the file as it is, then waits for the replies), so the commands
 * arrive in as few packets as the kernel makes of them. */
START_TEST(t_redis_cli_pipe)
{
    struct su_pipe b = { 0 };
    char port[16], cmd[PATH_MAX * 3];
    char *in, *out;
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int st;
    pid_t pid;
    FILE *f;
    char text[4096];
    size_t n;

    if (access("/usr/bin/redis-cli", X_OK) != 0 && system("command -v redis-cli >/dev/null 2>&1") != 0) {
        fprintf(stderr, "t_redis_cli_pipe: redis-cli not on PATH, skipped\n");
        return;
    }
    env_start();
    su_pipe_cmd(&b, "HGET", "product:p-003", "name", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-003", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-003", "stock", "7", NULL);
    in = strdup(h_path("pipe.in"));
    out = strdup(h_path("pipe.out"));
    h_write_file(in, b.p, b.len);
    free(b.p);
    snprintf(port, sizeof(port), "%d", E.d.port);
    snprintf(cmd, sizeof(cmd), "exec redis-cli -p %s --pipe < '%s'", port, in);
    pid = h_spawn(argv, out);
    ck_assert_msg(h_wait_exit(pid, 10000, &st) == 0, "redis-cli --pipe did not finish");
    f = fopen(out, "r");
    ck_assert(f != NULL);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    fprintf(stderr, "t_redis_cli_pipe: redis-cli --pipe printed: %s", text);
    ck_assert_msg(h_exit_code(st) == 0 && strstr(text, "errors: 0, replies: 3"), "redis-cli --pipe: %s", text);
    CK_REPLY(R("HGET", "cache:product:{p-003}", "stock"), "$1\r\n7\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-003"), 1);
    free(in);
    free(out);
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------ write, then read ---- */

/* DEL between two reads of a cold key: DEL removes what the first read
 * stored and the second read fetches a fresh record.  HSET between two
 * reads: the second read answers the new value. */
START_TEST(t_del_hset_then_read)
{
    struct su_pipe b = { 0 };
    char *name = bulk("Product 4");

    env_start();
    su_pipe_cmd(&b, "HGET", "product:p-004", "name", NULL);
    su_pipe_cmd(&b, "DEL", "product:p-004", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-004", "name", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), name);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), name);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-004"), 2);  /* a fresh fetch */
    ck_assert_int_eq(R_INT("EXISTS", "cache:product:{p-004}"), 1);

    /* Cached now: DEL then read in one pipeline fetches once more. */
    su_pipe_cmd(&b, "UNLINK", "product:p-004", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-004", "name", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), name);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-004"), 3);

    /* stock of p-005 is 35 upstream. */
    su_pipe_cmd(&b, "HGET", "product:p-005", "stock", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-005", "stock", "7", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-005", "stock", NULL);
    su_pipe_cmd(&b, "HMGET", "product:p-005", "stock", "nosuch", NULL);
    su_pipe_cmd(&b, "DEL", "product:p-005", "product:p-004", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-005", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$2\r\n35\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$1\r\n7\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "*2\r\n$1\r\n7\r\n$-1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":2\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":-2\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-005"), 1);

    /* Raw namespace: GET and MGET (each of its keys) in order with DEL. */
    su_pipe_cmd(&b, "MGET", "page:p-006", "page:p-007", NULL);
    su_pipe_cmd(&b, "DEL", "page:p-007", NULL);
    su_pipe_cmd(&b, "GET", "page:p-007", NULL);
    su_pipe_send(E.c, &b);
    {
        char *m = h_read_reply(E.c, H_DEFAULT), *g;
        ck_assert_msg(m && m[0] == '*' && strstr(m, "Product 6") && strstr(m, "Product 7"), "MGET: %s", h_repr(m));
        free(m);
        CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
        g = h_read_reply(E.c, H_DEFAULT);
        ck_assert_msg(g && g[0] == '$' && strstr(g, "Product 7"), "GET: %s", h_repr(g));
        free(g);
    }
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-007"), 2);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-006"), 1);
    free(name);
    env_stop_clean();
}
END_TEST

/* INVALIDATE ns:glob waits for the connection's earlier commands of that
 * namespace, and later ones of that namespace wait for it. */
START_TEST(t_invalidate_in_order)
{
    struct su_pipe b = { 0 };

    env_start();
    su_pipe_cmd(&b, "HGET", "product:p-008", "name", NULL);
    su_pipe_cmd(&b, "INVALIDATE", "product:p-00*", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-008", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-008", "name", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$9\r\nProduct 8\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":1\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), ":-2\r\n");
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$9\r\nProduct 8\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-008"), 2);
    env_stop_clean();
}
END_TEST

/* --------------------------------------------- concurrency is kept ---- */

/* 50 misses of different keys in one pipeline are fetched in parallel;
 * 10 reads of one cold key share one fetch. */
START_TEST(t_parallel_misses)
{
    struct su_pipe b = { 0 };
    long long t0, ms;

    env_start();
    for (int i = 1; i <= 50; i++) {
        char key[32];
        snprintf(key, sizeof(key), "product:p-%03d", i);
        su_pipe_cmd(&b, "HGET", key, "name", NULL);
    }
    t0 = h_now_ms();
    su_pipe_send(E.c, &b);
    for (int i = 1; i <= 50; i++) {
        char want[64];
        snprintf(want, sizeof(want), "Product %d", i);
        char *w = bulk(want);
        CK_REPLY(h_read_reply(E.c, 10000), w);
        free(w);
    }
    ms = h_now_ms() - t0;
    fprintf(stderr, "t_parallel_misses: 50 pipelined misses (upstream latency %d ms) took %lld ms\n",
            LATENCY_MS, ms);
    ck_assert_msg(ms < 3000, "50 misses took %lld ms: fetched one after another?", ms);
    ck_assert_int_eq(h_upstream_count(&E.up), 50);

    for (int i = 0; i < 10; i++)
        su_pipe_cmd(&b, "HGET", "product:p-051", "name", NULL);
    t0 = h_now_ms();
    su_pipe_send(E.c, &b);
    for (int i = 0; i < 10; i++)
        CK_REPLY(h_read_reply(E.c, 10000), "$10\r\nProduct 51\r\n");
    ms = h_now_ms() - t0;
    fprintf(stderr, "t_parallel_misses: 10 pipelined reads of one cold key took %lld ms\n", ms);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-051"), 1);
    env_stop_clean();
}
END_TEST

/* A long pipeline mixing reads and writes of a few keys, far past
 * max_inflight_per_client: every write lands in order, every read sees
 * the write before it. */
START_TEST(t_long_mixed_pipeline)
{
    enum { N = 6000, KEYS = 40 };   /* KEYS: not a multiple of 3 */
    struct su_pipe b = { 0 };

    env_start();
    h_upstream_set_latency(&E.up, 20);
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof(key), "product:p-0%d", 10 + k);
        su_pipe_cmd(&b, "HGET", key, "stock", NULL);
    }
    su_pipe_send(E.c, &b);
    for (int k = 0; k < KEYS; k++)
        free(h_read_reply(E.c, H_DEFAULT));
    for (int i = 0; i < N; i++) {
        char key[32], v[16];
        snprintf(key, sizeof(key), "product:p-0%d", 10 + i % KEYS);
        snprintf(v, sizeof(v), "%d", i);
        if (i % 3 == 2)
            su_pipe_cmd(&b, "HSET", key, "stock", v, NULL);
        else
            su_pipe_cmd(&b, "HGET", key, "stock", NULL);
    }
    su_pipe_send(E.c, &b);
    for (int i = 0; i < N; i++) {
        char *raw = h_read_reply(E.c, 20000);
        ck_assert_msg(raw != NULL, "reply %d missing", i);
        if (i % 3 == 2) {
            ck_assert_msg(strcmp(raw, ":1\r\n") == 0, "reply %d (HSET): %s", i, h_repr(raw));
        } else if (i >= KEYS * 3) {
            /* The last HSET of this key before i. */
            int last = i - KEYS;
            while (last % 3 != 2)
                last -= KEYS;
            char v[16];
            snprintf(v, sizeof(v), "%d", last);
            char *w = bulk(v);
            ck_assert_msg(strcmp(raw, w) == 0, "reply %d (HGET): %s, want %s", i, h_repr(raw), h_repr(w));
            free(w);
        }
        free(raw);
    }
    ck_assert_int_eq(h_upstream_count(&E.up), KEYS);
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------------ disconnects ---- */

/* A client leaves with commands still waiting for their turn: they are
 * dropped, the read it started still fills the cache, other clients are
 * served, and the daemon exits clean (no leak under ASan). */
START_TEST(t_disconnect_with_waiting)
{
    struct su_pipe b = { 0 };
    int c2, c3;

    env_start();
    /* Clients that leave after 0..190 ms: before, while and after their
     * first read fills. */
    for (int i = 0; i < 20; i++) {
        char key[32], key2[32];
        snprintf(key, sizeof(key), "product:p-%03d", 20 + i);
        snprintf(key2, sizeof(key2), "product:p-%03d", 40 + i);
        c2 = h_connect(E.d.port);
        su_pipe_cmd(&b, "HGET", key, "name", NULL);
        su_pipe_cmd(&b, "TTL", key, NULL);
        su_pipe_cmd(&b, "HSET", key, "stock", "1", NULL);
        su_pipe_cmd(&b, "DEL", key2, key, NULL);
        su_pipe_cmd(&b, "MGET", key, key2, NULL);
        su_pipe_cmd(&b, "PING", NULL);
        su_pipe_cmd(&b, "INVALIDATE", "product:nothing*", NULL);
        su_pipe_cmd(&b, "HGET", key2, "name", NULL);
        su_pipe_send(c2, &b);
        h_msleep(i * 10);
        if (i % 2 == 0) {
            /* A reset: the daemon's next read fails and it closes at once,
             * with the HSET and what follows still waiting. */
            struct linger lg = { 1, 0 };
            ck_assert_int_eq(setsockopt(c2, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        }
        /* else a plain close: the daemon answers what it has read (a
         * half-close) until a write fails. */
        h_close(c2);
    }
    /* Another client is served meanwhile. */
    CK_REPLY(D("PING"), "+PONG\r\n");
    CK_REPLY(D("HGET", "product:p-060", "name"), "$10\r\nProduct 60\r\n");
    /* The first reads filled the cache (a fill belongs to its flight); the
     * HSETs that were still waiting when their client was reset never ran. */
    for (int i = 6; i < 20; i += 2) {
        char rkey[32], want[16];
        long long end = h_now_ms() + H_TIMEOUT_MS;
        char *got;
        snprintf(rkey, sizeof(rkey), "cache:product:{p-%03d}", 20 + i);
        snprintf(want, sizeof(want), "%d", (20 + i) * 7 % 100);
        char *w = bulk(want);
        /* On a loaded machine the last fills may still be under way. */
        while ((got = R("HGET", rkey, "stock")) && strcmp(got, "$-1\r\n") == 0 && h_now_ms() < end) {
            free(got);
            h_msleep(20);
        }
        CK_REPLY(got, w);
        free(w);
    }

    /* A protocol error after waiting commands answers after them. */
    c3 = h_connect(E.d.port);
    su_pipe_cmd(&b, "HGET", "product:p-059", "name", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-059", "stock", "3", NULL);
    su_pipe_add(&b, "*2\r\n$x\r\n", 8);
    su_pipe_send(c3, &b);
    CK_REPLY(h_read_reply(c3, H_DEFAULT), "$10\r\nProduct 59\r\n");
    CK_REPLY(h_read_reply(c3, H_DEFAULT), ":1\r\n");
    {
        char *raw = h_read_reply(c3, H_DEFAULT);
        ck_assert_msg(raw && strncmp(raw, "-ERR protocol error", 19) == 0, "got %s", h_repr(raw));
        free(raw);
    }
    ck_assert_msg(h_is_closed(c3, 3000), "still open after a protocol error");
    CK_REPLY(R("HGET", "cache:product:{p-059}", "stock"), "$1\r\n3\r\n");
    env_stop_clean();
}
END_TEST

/* ---------------------------------------------------------------- main -- */


int main(void)
{
    const struct su_case cases[] = {
        { "read_ttl_hset", t_read_ttl_hset, 60, 0 },
        { "redis_cli_pipe", t_redis_cli_pipe, 60, 0 },
        { "reads_then_write", t_reads_then_write, 60, 0 },
        { "del_hset_then_read", t_del_hset_then_read, 60, 0 },
        { "invalidate_in_order", t_invalidate_in_order, 60, 0 },
        { "parallel_misses", t_parallel_misses, 60, 0 },
        { "long_mixed_pipeline", t_long_mixed_pipeline, 60, 0 },
        { "disconnect_with_waiting", t_disconnect_with_waiting, 60, 0 },
    };

    return SU_RUN("order", cases, CK_NORMAL);
}
