/* SPDX-License-Identifier: BSD-3-Clause */
/* test_multi.c - integration tests of transactions (docs/protocol.md,
 * "Transactions"): MULTI, EXEC and DISCARD with Redis 7's replies and
 * errors, commands refused at queue time dooming the transaction, EXEC's
 * one array with error elements, the order of a transaction's commands
 * among the connection's others, WATCH refused, the bounds of a
 * transaction, and clients that leave in the middle of one.  Each test runs
 * a real redis-server, the example upstream (60 generated records, a
 * latency so that a cold read is still filling when the next command
 * arrives) and the built daemon, and exits it clean (no report under the
 * sanitizers). */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
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
#define NEXT(fd) h_read_reply((fd), H_DEFAULT)

static const char execabort[] = "-EXECABORT Transaction discarded because of previous errors.\r\n";

/* redis + upstream (p-001..p-060, latency_ms each) + daemon with a hash
 * namespace "product" and a raw one "page" over the same records;
 * server_extra goes into [server]. Waits until the daemon has Redis. */
static void env_start(int latency_ms, const char *server_extra)
{
    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start(&E.up, latency_ms, 60);
    h_daemon_init(&E.d);
    h_daemon_start(&E.d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = debug\n%s"
                   "\n[redis]\nhost = 127.0.0.1\nport = %d\n"
                   "\n[cache]\nttl_s = 300\nttl_jitter_pct = 0\nupstream_timeout_ms = 3000\n"
                   "lock_ttl_ms = 5000\nupstream_connections = 64\n"
                   "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
                   "\n[namespace:page]\nupstream = http://127.0.0.1:%d/products/{id}\nformat = raw\n",
                   E.d.port, server_extra ? server_extra : "", E.redis.port, E.up.port, E.up.port);
    E.rd = h_connect(E.redis.port);
    if (server_extra && strstr(server_extra, "requirepass")) {
        E.c = -1;
        return;
    }
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

/* Length of the RESP value that starts at p (read whole by the harness). */
static size_t value_len(const char *p)
{
    const char *eol = strstr(p, "\r\n");
    long long n;
    size_t at;

    ck_assert_msg(eol != NULL, "not RESP: %s", h_repr(p));
    at = (size_t)(eol - p) + 2;
    n = atoll(p + 1);
    if (p[0] == '$')
        return n < 0 ? at : at + (size_t)n + 2;
    if (p[0] == '%')
        n *= 2;                 /* RESP3 map: n pairs */
    if (p[0] == '*' || p[0] == '%')
        for (long long i = 0; i < n; i++)
            at += value_len(p + at);
    return at;
}

/* A copy of element i of the array reply raw. */
static char *elem(const char *raw, int i)
{
    const char *p;

    ck_assert_msg(raw && raw[0] == '*', "not an array: %s", h_repr(raw));
    p = strstr(raw, "\r\n") + 2;
    ck_assert_msg(i < atoi(raw + 1), "no element %d in %s", i, h_repr(raw));
    for (int k = 0; k < i; k++)
        p += value_len(p);
    return strndup(p, value_len(p));
}

/* The raw reply is an array of n elements. */
static void expect_array(const char *raw, int n)
{
    char hdr[32];

    snprintf(hdr, sizeof(hdr), "*%d\r\n", n);
    ck_assert_msg(raw && strncmp(raw, hdr, strlen(hdr)) == 0 && value_len(raw) == strlen(raw),
                  "want an array of %d, got %s", n, h_repr(raw));
}

static char *bulk(const char *s)
{
    char *out = malloc(strlen(s) + 32);

    ck_assert(out != NULL);
    sprintf(out, "$%zu\r\n%s\r\n", strlen(s), s);
    return out;
}

/* ------------------------------------------------------- EXEC's array -- */

/* The commands of a transaction answer in one array, in order: a miss
 * (fetched), a hit, HGET sharing the miss's fill, HSET and HMGET after it,
 * DEL and TTL; the writes took effect in Redis. */
START_TEST(t_exec_array)
{
    char *raw, *e;

    env_start(LATENCY_MS, NULL);
    su_expect_product((raw = D("HGETALL", "product:p-002")), 2);
    free(raw);
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("HGETALL", "product:p-001"), "+QUEUED\r\n");
    CK_REPLY(D("HGETALL", "product:p-002"), "+QUEUED\r\n");
    CK_REPLY(D("HGET", "product:p-001", "name"), "+QUEUED\r\n");
    CK_REPLY(D("HSET", "product:p-001", "stock", "99"), "+QUEUED\r\n");
    CK_REPLY(D("HMGET", "product:p-001", "stock", "name"), "+QUEUED\r\n");
    CK_REPLY(D("DEL", "product:p-002", "product:p-003"), "+QUEUED\r\n");
    CK_REPLY(D("TTL", "product:p-002"), "+QUEUED\r\n");
    CK_REPLY(D("PING"), "+QUEUED\r\n");
    /* Nothing ran yet. */
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-001"), 0);
    ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-002}")), 1);

    raw = D("EXEC");
    expect_array(raw, 8);
    su_expect_product((e = elem(raw, 0)), 1);
    free(e);
    su_expect_product((e = elem(raw, 1)), 2);
    free(e);
    CK_REPLY(elem(raw, 2), "$9\r\nProduct 1\r\n");
    CK_REPLY(elem(raw, 3), ":1\r\n");
    CK_REPLY(elem(raw, 4), "*2\r\n$2\r\n99\r\n$9\r\nProduct 1\r\n");
    CK_REPLY(elem(raw, 5), ":1\r\n");
    CK_REPLY(elem(raw, 6), ":-2\r\n");
    CK_REPLY(elem(raw, 7), "+PONG\r\n");
    free(raw);

    CK_REPLY(R("HGET", "cache:product:{p-001}", "stock"), "$2\r\n99\r\n");
    ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-002}")), 0);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-001"), 1);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-002"), 1);
    /* The transaction is over: commands answer at once again. */
    CK_REPLY(D("HGET", "product:p-001", "stock"), "$2\r\n99\r\n");
    CK_REPLY(D("EXEC"), "-ERR EXEC without MULTI\r\n");
    /* An empty transaction answers an empty array. */
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("EXEC"), "*0\r\n");
    env_stop_clean();
}
END_TEST

/* A read whose fetch fails is an error element; the others answer, as in
 * Redis (WRONGTYPE too, as Redis's own run-time error). */
START_TEST(t_error_elements)
{
    char *raw, *e;

    env_start(LATENCY_MS, NULL);
    h_upstream_set_status(&E.up, "p-002", 503);
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("HGET", "product:p-001", "name"), "+QUEUED\r\n");
    CK_REPLY(D("HGETALL", "product:p-002"), "+QUEUED\r\n");
    CK_REPLY(D("GET", "page:p-003"), "+QUEUED\r\n");
    CK_REPLY(D("MGET", "page:p-004", "page:p-002"), "+QUEUED\r\n");
    CK_REPLY(D("GET", "product:p-005"), "+QUEUED\r\n");
    CK_REPLY(D("HSET", "product:p-005", "__exp", "1"), "+QUEUED\r\n");
    CK_REPLY(D("HGET", "product:p-004", "name"), "+QUEUED\r\n");
    raw = D("EXEC");
    expect_array(raw, 7);
    CK_REPLY(elem(raw, 0), "$9\r\nProduct 1\r\n");
    CK_REPLY(elem(raw, 1), "-UPSTREAM status 503\r\n");
    e = elem(raw, 2);
    ck_assert_msg(e[0] == '$' && strstr(e, "\"name\":\"Product 3\""), "GET page:p-003: %s", h_repr(e));
    free(e);
    e = elem(raw, 3);
    ck_assert_msg(strncmp(e, "*2\r\n$", 5) == 0 && strstr(e, "Product 4") &&
                  strstr(e, "\r\n-UPSTREAM status 503\r\n"), "MGET: %s", h_repr(e));
    free(e);
    CK_REPLY(elem(raw, 4), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    CK_REPLY(elem(raw, 5), "-ERR field names starting with '__' are reserved\r\n");
    CK_REPLY(elem(raw, 6), "$9\r\nProduct 4\r\n");
    free(raw);
    /* An upstream error is not cached: the next read asks again. */
    h_upstream_set_status(&E.up, "p-002", 0);
    su_expect_product((raw = D("HGETALL", "product:p-002")), 2);
    free(raw);
    env_stop_clean();
}
END_TEST

/* A reload between queueing and EXEC applies to the queued commands: the
 * keys were checked when queued, and a read run under the configuration
 * they were checked under is not checked again, but one run after a reload
 * is, under the new namespaces (docs/protocol.md, "Transactions"). */
START_TEST(t_reload_between)
{
    char *raw;
    long from;

    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("HGET", "product:p-001", "name"), "+QUEUED\r\n");
    CK_REPLY(D("GET", "page:p-003"), "+QUEUED\r\n");
    CK_REPLY(D("HGET", "page:p-002", "name"), "+QUEUED\r\n");
    /* product is gone, and page is a hash namespace now. */
    h_daemon_rewrite_conf(&E.d,
                          "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = debug\n"
                          "\n[redis]\nhost = 127.0.0.1\nport = %d\n"
                          "\n[cache]\nttl_s = 300\nttl_jitter_pct = 0\nupstream_timeout_ms = 3000\n"
                          "lock_ttl_ms = 5000\nupstream_connections = 64\n"
                          "\n[namespace:page]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                          E.d.port, E.redis.port, E.up.port);
    from = h_log_size(E.d.log);
    h_kill(E.d.pid, SIGHUP);
    ck_assert_int_eq(h_wait_log_after(E.d.log, from, "reload", 5000), 0);
    raw = D("EXEC");
    expect_array(raw, 3);
    CK_REPLY(elem(raw, 0), "-ERR unknown namespace 'product'\r\n");
    CK_REPLY(elem(raw, 1), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    CK_REPLY(elem(raw, 2), "$9\r\nProduct 2\r\n");
    free(raw);
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------------------ errors -- */

/* Each command refused at queue time (unknown, wrong arity, a bad key or
 * namespace, an id that would leave the upstream path, a glob Redis would
 * misread) answers its error at once and dooms the transaction: EXEC
 * answers EXECABORT and nothing queued ran. */
START_TEST(t_execabort)
{
    static const struct {
        const char *argv[5];
        const char *want;
    } bad[] = {
        { { "NOSUCH", "a" }, "-ERR unknown command 'NOSUCH'\r\n" },
        { { "HGET", "product:p-001" }, "-ERR wrong number of arguments for 'hget' command\r\n" },
        { { "PING", "a", "b" }, NULL },         /* PING takes any number: queued */
        { { "DEL", "product:p-001", "product" }, "-ERR bad key 'product': expected NAMESPACE:ID\r\n" },
        { { "GET", "nosuch:1" }, "-ERR unknown namespace 'nosuch'\r\n" },
        { { "TTL", "product:.." }, "-ERR bad key 'product:..': id may not be a path segment '.' or '..'\r\n" },
        { { "INVALIDATE", "product:abc[" }, "-ERR bad key 'product:abc[': glob has an unclosed '['\r\n" },
        { { "MGET", "page:a", "page:b c" }, "-ERR bad key: id has whitespace or control characters\r\n" },
        { { "HSET", "product:p-001", "f" }, "-ERR wrong number of arguments for 'hset' command\r\n" },
    };

    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("HGET", "product:p-001", "name"), "$9\r\nProduct 1\r\n");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const *a = bad[i].argv;
        CK_REPLY(D("MULTI"), "+OK\r\n");
        CK_REPLY(D("DEL", "product:p-001"), "+QUEUED\r\n");
        CK_REPLY(h_cmd(E.c, a[0], a[1], a[2], a[3], a[4], NULL), bad[i].want ? bad[i].want : "+QUEUED\r\n");
        /* Later commands are still answered +QUEUED, and never run. */
        CK_REPLY(D("INVALIDATE", "product:*"), "+QUEUED\r\n");
        if (bad[i].want) {
            CK_REPLY(D("EXEC"), execabort);
        } else {
            char *raw = D("DISCARD");
            CK_REPLY(raw, "+OK\r\n");
        }
        /* The transaction is over, and the DEL never ran. */
        CK_REPLY(D("PING"), "+PONG\r\n");
        ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-001}")), 1);
    }
    ck_assert_int_eq(h_upstream_count(&E.up), 1);
    env_stop_clean();
}
END_TEST

/* MULTI, EXEC and DISCARD out of place, as Redis 7 answers them: a nested
 * MULTI is refused and the transaction goes on; EXEC and DISCARD without
 * MULTI; with a wrong argument count inside MULTI, EXEC ends the
 * transaction with the reason, DISCARD and MULTI doom it. */
START_TEST(t_out_of_place)
{
    char *raw;

    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("EXEC"), "-ERR EXEC without MULTI\r\n");
    CK_REPLY(D("DISCARD"), "-ERR DISCARD without MULTI\r\n");
    CK_REPLY(D("MULTI", "x"), "-ERR wrong number of arguments for 'multi' command\r\n");
    CK_REPLY(D("PING"), "+PONG\r\n");

    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("MULTI"), "-ERR MULTI calls can not be nested\r\n");
    CK_REPLY(D("PING"), "+QUEUED\r\n");
    CK_REPLY(D("EXEC"), "*1\r\n+PONG\r\n");

    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("PING"), "+QUEUED\r\n");
    CK_REPLY(D("EXEC", "x"),
             "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n");
    CK_REPLY(D("PING"), "+PONG\r\n");

    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("DISCARD", "x"), "-ERR wrong number of arguments for 'discard' command\r\n");
    CK_REPLY(D("PING"), "+QUEUED\r\n");
    CK_REPLY(D("EXEC"), execabort);

    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("MULTI", "x"), "-ERR wrong number of arguments for 'multi' command\r\n");
    CK_REPLY(D("EXEC"), execabort);

    /* Inline commands too. */
    CK_REPLY(h_inline(E.c, "multi"), "+OK\r\n");
    CK_REPLY(h_inline(E.c, "ping hello"), "+QUEUED\r\n");
    raw = h_inline(E.c, "exec");
    CK_REPLY(raw, "*1\r\n$5\r\nhello\r\n");
    env_stop_clean();
}
END_TEST

/* DISCARD drops what was queued: nothing of it runs, and the connection
 * answers at once again. */
START_TEST(t_discard)
{
    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("HGET", "product:p-001", "name"), "$9\r\nProduct 1\r\n");
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("DEL", "product:p-001"), "+QUEUED\r\n");
    CK_REPLY(D("HSET", "product:p-001", "name", "X"), "+QUEUED\r\n");
    CK_REPLY(D("HGET", "product:p-009", "name"), "+QUEUED\r\n");
    CK_REPLY(D("DISCARD"), "+OK\r\n");
    CK_REPLY(D("HGET", "product:p-001", "name"), "$9\r\nProduct 1\r\n");
    ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-001}")), 1);
    ck_assert_int_eq(h_upstream_count(&E.up), 1);
    CK_REPLY(D("DISCARD"), "-ERR DISCARD without MULTI\r\n");
    CK_REPLY(D("EXEC"), "-ERR EXEC without MULTI\r\n");
    CK_REPLY(D("DEL", "product:p-001"), ":1\r\n");
    env_stop_clean();
}
END_TEST

/* WATCH is refused with a reason (optimistic locking cannot be promised
 * over a cache); inside MULTI as Redis refuses it there, without dooming
 * the transaction. UNWATCH has nothing to undo: +OK, queued inside MULTI. */
START_TEST(t_watch)
{
    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("WATCH", "product:p-001"),
             "-ERR WATCH is not supported: cachasided cannot promise optimistic locking over a cache "
             "(see docs/protocol.md)\r\n");
    CK_REPLY(D("UNWATCH"), "+OK\r\n");
    CK_REPLY(D("WATCH"), "-ERR wrong number of arguments for 'watch' command\r\n");
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("WATCH", "product:p-001"), "-ERR WATCH inside MULTI is not allowed\r\n");
    CK_REPLY(D("UNWATCH"), "+QUEUED\r\n");
    CK_REPLY(D("EXEC"), "*1\r\n+OK\r\n");
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("WATCH"), "-ERR wrong number of arguments for 'watch' command\r\n");
    CK_REPLY(D("EXEC"), execabort);
    env_stop_clean();
}
END_TEST

/* QUIT inside MULTI answers +OK and closes, as in Redis: nothing queued
 * runs. AUTH and HELLO are queued (Redis 7 queues them) and answer in
 * EXEC's array. Before AUTH, MULTI is refused like any command. */
START_TEST(t_quit_auth_hello)
{
    char *raw, *e;
    int c;

    env_start(LATENCY_MS, "requirepass = s3cret\n");
    c = h_connect(E.d.port);
    CK_REPLY(h_cmd(c, "MULTI", NULL), "-NOAUTH Authentication required.\r\n");
    CK_REPLY(h_cmd(c, "EXEC", NULL), "-NOAUTH Authentication required.\r\n");
    CK_REPLY(h_cmd(c, "AUTH", "s3cret", NULL), "+OK\r\n");
    CK_REPLY(h_cmd(c, "HGET", "product:p-001", "name", NULL), "$9\r\nProduct 1\r\n");
    CK_REPLY(h_cmd(c, "MULTI", NULL), "+OK\r\n");
    CK_REPLY(h_cmd(c, "AUTH", "wrong", NULL), "+QUEUED\r\n");
    CK_REPLY(h_cmd(c, "HELLO", "2", NULL), "+QUEUED\r\n");
    CK_REPLY(h_cmd(c, "AUTH", "s3cret", NULL), "+QUEUED\r\n");
    CK_REPLY(h_cmd(c, "ECHO", "e", NULL), "+QUEUED\r\n");
    raw = h_cmd(c, "EXEC", NULL);
    expect_array(raw, 4);
    CK_REPLY(elem(raw, 0), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    e = elem(raw, 1);
    ck_assert_msg(e[0] == '*' && strstr(e, "$10\r\ncachasided\r\n"), "HELLO: %s", h_repr(e));
    free(e);
    CK_REPLY(elem(raw, 2), "+OK\r\n");
    CK_REPLY(elem(raw, 3), "$1\r\ne\r\n");
    free(raw);

    CK_REPLY(h_cmd(c, "MULTI", NULL), "+OK\r\n");
    CK_REPLY(h_cmd(c, "DEL", "product:p-001", NULL), "+QUEUED\r\n");
    CK_REPLY(h_cmd(c, "QUIT", NULL), "+OK\r\n");
    ck_assert_msg(h_is_closed(c, 2000), "still open after QUIT inside MULTI");
    h_close(c);
    ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-001}")), 1);
    env_stop_clean();
}
END_TEST

/* HELLO 3 inside MULTI switches the connection to RESP3 when it runs, as
 * in Redis 7: the commands queued after it answer in RESP3 in EXEC's
 * array (its header and the elements before it stay as they were), and
 * so do the commands sent after EXEC. */
START_TEST(t_hello3_inside)
{
    struct su_pipe b = { 0 };
    char *raw, *e;

    env_start(LATENCY_MS, NULL);
    su_pipe_cmd(&b, "MULTI", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-001", "nosuch", NULL);
    su_pipe_cmd(&b, "HELLO", "3", NULL);
    su_pipe_cmd(&b, "HGETALL", "product:p-001", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-001", "nosuch", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-001", "nosuch", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    for (int i = 0; i < 4; i++)
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    raw = NEXT(E.c);
    expect_array(raw, 4);
    CK_REPLY(elem(raw, 0), "$-1\r\n");
    e = elem(raw, 1);
    ck_assert_msg(strncmp(e, "%7\r\n", 4) == 0 && strstr(e, "$5\r\nproto\r\n:3\r\n"), "HELLO 3: %s", h_repr(e));
    free(e);
    e = elem(raw, 2);
    ck_assert_msg(strncmp(e, "%5\r\n", 4) == 0 && strstr(e, "$9\r\nProduct 1\r\n"), "HGETALL: %s", h_repr(e));
    free(e);
    CK_REPLY(elem(raw, 3), "_\r\n");
    free(raw);
    CK_REPLY(NEXT(E.c), "_\r\n");
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------------------- order -- */

/* A transaction's commands take effect in order among themselves and
 * among the connection's other commands: sent in one write, a DEL inside
 * the transaction is seen by the read after EXEC (it fetches the new
 * record); a read inside a transaction fills before the HSET sent after
 * EXEC, which therefore updates the record; a command before MULTI runs
 * before the transaction's on its key. */
START_TEST(t_order_across_exec)
{
    struct su_pipe b = { 0 };
    char *raw;

    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("HGET", "product:p-001", "name"), "$9\r\nProduct 1\r\n");
    h_upstream_set_body(&E.up, "p-001", "{\"id\":\"p-001\",\"name\":\"New\"}");
    su_pipe_cmd(&b, "MULTI", NULL);
    su_pipe_cmd(&b, "DEL", "product:p-001", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-001", "name", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    CK_REPLY(NEXT(E.c), "*1\r\n:1\r\n");
    CK_REPLY(NEXT(E.c), "$3\r\nNew\r\n");

    /* Cold keys: every read below is still filling when the next command
     * comes. */
    su_pipe_cmd(&b, "HGET", "product:p-007", "name", NULL);
    su_pipe_cmd(&b, "MULTI", NULL);
    su_pipe_cmd(&b, "DEL", "product:p-007", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-005", "name", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-006", "name", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-006", "name", "In", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-006", "name", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_cmd(&b, "HSET", "product:p-005", "name", "After", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-005", "name", NULL);
    su_pipe_cmd(&b, "TTL", "product:p-007", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(NEXT(E.c), "$9\r\nProduct 7\r\n");
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    for (int i = 0; i < 5; i++)
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    raw = NEXT(E.c);
    CK_REPLY(raw, "*5\r\n:1\r\n$9\r\nProduct 5\r\n$9\r\nProduct 6\r\n:1\r\n$2\r\nIn\r\n");
    CK_REPLY(NEXT(E.c), ":1\r\n");
    CK_REPLY(NEXT(E.c), "$5\r\nAfter\r\n");
    CK_REPLY(NEXT(E.c), ":-2\r\n");
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-005"), 1);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-007"), 1);
    env_stop_clean();
}
END_TEST

/* A whole transaction pipelined in one write with commands around it,
 * longer than the requests a client may start in one pass (32) and than
 * its reads at Redis (64), and a second transaction right after it: EXEC
 * starts them as a pipeline's, and every reply comes in order. Then the
 * same one byte at a time. */
START_TEST(t_pipelined)
{
    enum { N = 150 };
    struct su_pipe b = { 0 };
    char *raw;

    env_start(LATENCY_MS, NULL);
    for (int pass = 0; pass < 2; pass++) {
        su_pipe_cmd(&b, "PING", NULL);
        su_pipe_cmd(&b, "HGET", "product:p-010", "name", NULL);
        su_pipe_cmd(&b, "MULTI", NULL);
        for (int i = 0; i < N; i++) {
            char key[32];
            snprintf(key, sizeof(key), "product:p-%03d", 1 + i % 60);
            su_pipe_cmd(&b, "HGET", key, "name", NULL);
        }
        su_pipe_cmd(&b, "EXEC", NULL);
        su_pipe_cmd(&b, "PING", "after", NULL);
        su_pipe_cmd(&b, "MULTI", NULL);
        su_pipe_cmd(&b, "HGET", "product:p-010", "stock", NULL);
        su_pipe_cmd(&b, "EXEC", NULL);
        su_pipe_cmd(&b, "HGET", "product:p-010", "stock", NULL);
        if (pass == 0) {
            su_pipe_send(E.c, &b);
        } else {
            for (size_t i = 0; i < b.len; i++)
                ck_assert_int_eq(h_send(E.c, b.p + i, 1), 0);
            free(b.p);
            memset(&b, 0, sizeof(b));
        }
        CK_REPLY(NEXT(E.c), "+PONG\r\n");
        CK_REPLY(NEXT(E.c), "$10\r\nProduct 10\r\n");
        CK_REPLY(NEXT(E.c), "+OK\r\n");
        for (int i = 0; i < N; i++)
            CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
        raw = NEXT(E.c);
        expect_array(raw, N);
        for (int i = 0; i < N; i++) {
            char name[32], *want;
            snprintf(name, sizeof(name), "Product %d", 1 + i % 60);
            want = bulk(name);
            CK_REPLY(elem(raw, i), want);
            free(want);
        }
        free(raw);
        CK_REPLY(NEXT(E.c), "$5\r\nafter\r\n");
        CK_REPLY(NEXT(E.c), "+OK\r\n");
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
        CK_REPLY(NEXT(E.c), "*1\r\n$2\r\n70\r\n");
        CK_REPLY(NEXT(E.c), "$2\r\n70\r\n");
    }
    ck_assert_int_eq(h_upstream_count(&E.up), 60);
    env_stop_clean();
}
END_TEST

/* A transaction pipelined in one write is answered in one piece: the
 * +QUEUED replies wait for EXEC's array (a cold read here, LATENCY_MS),
 * then all of it comes in one read. Sent one command at a time, each
 * +QUEUED still comes at once: the client waits for it before EXEC. */
START_TEST(t_pipelined_whole)
{
    struct su_pipe b = { 0 };
    struct pollfd pfd;
    char buf[8192], *p;
    long long t0;
    ssize_t n;

    env_start(LATENCY_MS, NULL);
    su_pipe_cmd(&b, "MULTI", NULL);
    su_pipe_cmd(&b, "HGETALL", "product:p-005", NULL);
    su_pipe_cmd(&b, "HGET", "product:p-005", "name", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    t0 = h_now_ms();
    su_pipe_send(E.c, &b);
    pfd.fd = E.c;
    pfd.events = POLLIN;
    ck_assert_int_eq(poll(&pfd, 1, LATENCY_MS / 2), 0);     /* not the +QUEUED replies alone */
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_ge(h_now_ms() - t0, LATENCY_MS - 20);
    n = recv(E.c, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_msg(strncmp(buf, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n", 27) == 0, "got %s", h_repr(buf));
    p = buf + 23;
    ck_assert_uint_eq(value_len(p), (size_t)n - 23);        /* the whole array, in this one read */
    su_expect_product((p = elem(buf + 23, 0)), 5);
    free(p);
    CK_REPLY(elem(buf + 23, 1), "$9\r\nProduct 5\r\n");

    CK_REPLY(D("MULTI"), "+OK\r\n");
    t0 = h_now_ms();
    CK_REPLY(D("HGETALL", "product:p-006"), "+QUEUED\r\n");
    ck_assert_int_lt(h_now_ms() - t0, LATENCY_MS / 2);
    p = D("EXEC");
    expect_array(p, 1);
    free(p);
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------------------ bounds -- */

/* A transaction queues at most max_inflight_per_client commands, holding
 * at most 64 x max_request_bytes: one more is refused and dooms it, later
 * ones are answered +QUEUED and dropped; the connection goes on. */
START_TEST(t_queue_limits)
{
    enum { I = 100 };
    struct su_pipe b = { 0 };
    char payload[1001];
    int refused = -1;

    env_start(LATENCY_MS, "max_inflight_per_client = 100\nmax_request_bytes = 1024\n");
    /* Exactly at the limit: runs. */
    su_pipe_cmd(&b, "MULTI", NULL);
    for (int i = 0; i < I; i++)
        su_pipe_cmd(&b, "PING", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    for (int i = 0; i < I; i++)
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    {
        char *raw = NEXT(E.c);
        expect_array(raw, I);
        free(raw);
    }
    /* One more: refused. */
    su_pipe_cmd(&b, "MULTI", NULL);
    for (int i = 0; i < I + 2; i++)
        su_pipe_cmd(&b, "PING", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_cmd(&b, "PING", NULL);
    su_pipe_send(E.c, &b);
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    for (int i = 0; i < I; i++)
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    CK_REPLY(NEXT(E.c), "-ERR transaction too long (over max_inflight_per_client commands)\r\n");
    CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    CK_REPLY(NEXT(E.c), execabort);
    CK_REPLY(NEXT(E.c), "+PONG\r\n");

    /* Bytes: 70 ECHOs of 1000 bytes pass 64 KiB. */
    memset(payload, 'x', 1000);
    payload[1000] = '\0';
    CK_REPLY(D("MULTI"), "+OK\r\n");
    for (int i = 0; i < 70; i++) {
        char *raw = D("ECHO", payload);
        if (strcmp(raw, "+QUEUED\r\n") != 0) {
            ck_assert_msg(refused < 0, "ECHO %d: %s", i, h_repr(raw));
            CK_REPLY(raw, "-ERR transaction too large (over 64 x max_request_bytes of commands)\r\n");
            refused = i;
        } else {
            free(raw);
        }
    }
    ck_assert_msg(refused > 40 && refused < 65, "refused at ECHO %d", refused);
    CK_REPLY(D("EXEC"), execabort);
    {
        char *want = bulk(payload);
        CK_REPLY(D("ECHO", payload), want);
        free(want);
    }
    env_stop_clean();
}
END_TEST

/* EXEC's elements count in the output limit as any reply: one element
 * over max_output_bytes_per_client is that element's error and the rest
 * answer; elements finished behind a slow one and over the limit
 * disconnect the client, as a pipeline's replies would. */
START_TEST(t_output_limit)
{
    char *big = malloc(300001), *payload = malloc(20001), *raw;
    struct su_pipe b = { 0 };
    int slow;

    ck_assert(big && payload);
    memset(big, 'b', 300000);
    big[0] = '"';
    big[299999] = '"';
    big[300000] = '\0';
    memset(payload, 'e', 20000);
    payload[20000] = '\0';
    env_start(1500, "max_output_bytes_per_client = 262144\n");
    h_upstream_set_body(&E.up, "big", big);
    CK_REPLY(D("MULTI"), "+OK\r\n");
    CK_REPLY(D("GET", "page:big"), "+QUEUED\r\n");
    CK_REPLY(D("PING"), "+QUEUED\r\n");
    raw = D("EXEC");
    CK_REPLY(raw, "*2\r\n-ERR reply too large (over max_output_bytes_per_client)\r\n+PONG\r\n");
    CK_REPLY(D("PING"), "+PONG\r\n");

    slow = h_connect(E.d.port);
    su_pipe_cmd(&b, "MULTI", NULL);
    su_pipe_cmd(&b, "HGETALL", "product:p-001", NULL);
    for (int i = 0; i < 20; i++)
        su_pipe_cmd(&b, "ECHO", payload, NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    {
        long long t0 = h_now_ms();
        su_pipe_send(slow, &b);
        ck_assert_msg(h_is_closed(slow, 1200), "400 KB of EXEC's elements waiting behind a miss were held "
                                               "with max_output_bytes_per_client = 262144");
        ck_assert_msg(h_now_ms() - t0 < 1400, "closed only after the miss was answered");
    }
    ck_assert_int_ge(su_stat(E.c, "output_limit_disconnects"), 1);
    CK_REPLY(D("PING"), "+PONG\r\n");
    free(big);
    free(payload);
    env_stop_clean();
}
END_TEST

/* ------------------------------------------------------- disconnects -- */

/* Clients that leave inside a transaction, or while EXEC's commands run
 * or still wait to start: nothing queued runs, what started finishes (its
 * fills are stored), other clients are served, and the daemon exits clean
 * (no leak under ASan). A client that half-closes after EXEC gets the
 * whole array. */
START_TEST(t_disconnects)
{
    struct su_pipe b = { 0 };
    char *raw;

    env_start(LATENCY_MS, NULL);
    CK_REPLY(D("HGET", "product:p-001", "name"), "$9\r\nProduct 1\r\n");
    for (int i = 0; i < 10; i++) {
        int c2 = h_connect(E.d.port);
        su_pipe_cmd(&b, "MULTI", NULL);
        su_pipe_cmd(&b, "DEL", "product:p-001", NULL);
        su_pipe_cmd(&b, "ECHO", "hello", NULL);
        su_pipe_cmd(&b, "HGET", "product:p-002", "name", NULL);
        if (i % 2)
            su_pipe_cmd(&b, "NOSUCH", NULL);      /* doomed: what follows is dropped */
        su_pipe_cmd(&b, "HSET", "product:p-001", "name", "X", NULL);
        su_pipe_send(c2, &b);
        h_msleep(i * 5);
        if (i % 3 == 0) {
            struct linger lg = { 1, 0 };
            ck_assert_int_eq(setsockopt(c2, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        }
        h_close(c2);
    }
    CK_REPLY(D("PING"), "+PONG\r\n");
    ck_assert_int_eq(su_take_int(R("EXISTS", "cache:product:{p-001}")), 1);
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-002"), 0);

    /* Mid-EXEC: 150 cold reads, more than start at once. */
    for (int i = 0; i < 6; i++) {
        int c3 = h_connect(E.d.port);
        su_pipe_cmd(&b, "MULTI", NULL);
        for (int k = 0; k < 150; k++) {
            char key[32];
            snprintf(key, sizeof(key), "product:p-%03d", 11 + (k + i) % 50);
            su_pipe_cmd(&b, k % 7 ? "HGET" : "TTL", key, k % 7 ? "name" : NULL, NULL);
        }
        su_pipe_cmd(&b, "EXEC", NULL);
        su_pipe_cmd(&b, "PING", NULL);
        su_pipe_send(c3, &b);
        h_msleep(i * 40);
        if (i % 2 == 0) {
            struct linger lg = { 1, 0 };
            ck_assert_int_eq(setsockopt(c3, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        }
        h_close(c3);
    }
    CK_REPLY(D("HGET", "product:p-060", "name"), "$10\r\nProduct 60\r\n");
    /* The reads that started filled the cache. */
    ck_assert_int_eq(su_wait_exists(E.rd, "cache:product:{p-013}", 1, H_TIMEOUT_MS), 0);

    /* A half-close after EXEC: the whole array, then the close; with
     * reads (answered later) and with ECHOs (answered as they start). */
    for (int i = 0; i < 2; i++) {
        int c4 = h_connect(E.d.port);
        su_pipe_cmd(&b, "MULTI", NULL);
        for (int k = 0; k < 100; k++) {
            char key[32];
            snprintf(key, sizeof(key), "page:p-%03d", 1 + k % 40);
            su_pipe_cmd(&b, i ? "ECHO" : "GET", key, NULL);
        }
        su_pipe_cmd(&b, "EXEC", NULL);
        su_pipe_send(c4, &b);
        ck_assert_int_eq(shutdown(c4, SHUT_WR), 0);
        CK_REPLY(NEXT(c4), "+OK\r\n");
        for (int k = 0; k < 100; k++)
            CK_REPLY(NEXT(c4), "+QUEUED\r\n");
        raw = NEXT(c4);
        expect_array(raw, 100);
        if (i) {
            char *e = elem(raw, 99);
            CK_REPLY(e, "$10\r\npage:p-020\r\n");
        }
        free(raw);
        ck_assert_msg(h_is_closed(c4, 3000), "still open after the half-close was answered");
        h_close(c4);
    }
    CK_REPLY(D("PING"), "+PONG\r\n");
    env_stop_clean();
}
END_TEST

/* The client is closing while EXEC's commands wait to start (it is at
 * max_inflight_per_client, behind 30 cold reads): _i == 0, the daemon gets
 * SIGTERM; _i == 1, the client half-closes. The commands still start, the
 * whole array comes, then the connection closes (and the daemon exits 0). */
START_TEST(t_closing_mid_exec)
{
    enum { SLOW = 30, N = 68 };
    struct su_pipe b = { 0 };
    char *raw;

    env_start(LATENCY_MS, "max_inflight_per_client = 100\n");
    for (int k = 0; k < SLOW; k++) {
        char key[32];
        snprintf(key, sizeof(key), "product:p-%03d", 1 + k);
        su_pipe_cmd(&b, "HGET", key, "name", NULL);
    }
    su_pipe_cmd(&b, "MULTI", NULL);
    for (int k = 0; k < N - 1; k++) {
        char word[32];
        snprintf(word, sizeof(word), "w%d", k);
        su_pipe_cmd(&b, "ECHO", word, NULL);
    }
    su_pipe_cmd(&b, "HGET", "product:p-001", "stock", NULL);
    su_pipe_cmd(&b, "EXEC", NULL);
    su_pipe_send(E.c, &b);
    if (_i == 0) {
        h_msleep(60);
        h_kill(E.d.pid, SIGTERM);
    } else {
        ck_assert_int_eq(shutdown(E.c, SHUT_WR), 0);
    }
    for (int k = 0; k < SLOW; k++)
        free(NEXT(E.c));
    CK_REPLY(NEXT(E.c), "+OK\r\n");
    for (int k = 0; k < N; k++)
        CK_REPLY(NEXT(E.c), "+QUEUED\r\n");
    raw = NEXT(E.c);
    expect_array(raw, N);
    CK_REPLY(elem(raw, N - 1), "$1\r\n7\r\n");
    for (int k = 0; k < N - 1; k++) {
        char word[32], *want;
        snprintf(word, sizeof(word), "w%d", k);
        want = bulk(word);
        CK_REPLY(elem(raw, k), want);
        free(want);
    }
    free(raw);
    ck_assert_msg(h_is_closed(E.c, 3000), "still open");
    env_stop_clean();
}
END_TEST

/* ---------------------------------------------------------------- main -- */

int main(void)
{
    const struct su_case cases[] = {
        { "exec_array", t_exec_array, 60, 0 },
        { "error_elements", t_error_elements, 60, 0 },
        { "reload_between", t_reload_between, 60, 0 },
        { "execabort", t_execabort, 60, 0 },
        { "out_of_place", t_out_of_place, 60, 0 },
        { "discard", t_discard, 60, 0 },
        { "watch", t_watch, 60, 0 },
        { "quit_auth_hello", t_quit_auth_hello, 60, 0 },
        { "hello3_inside", t_hello3_inside, 60, 0 },
        { "order_across_exec", t_order_across_exec, 60, 0 },
        { "pipelined", t_pipelined, 120, 0 },
        { "pipelined_whole", t_pipelined_whole, 60, 0 },
        { "queue_limits", t_queue_limits, 60, 0 },
        { "output_limit", t_output_limit, 60, 0 },
        { "disconnects", t_disconnects, 90, 0 },
        { "closing_mid_exec", t_closing_mid_exec, 60, 2 },
    };

    return SU_RUN("multi", cases, CK_NORMAL);
}
