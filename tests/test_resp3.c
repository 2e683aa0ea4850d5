/* SPDX-License-Identifier: BSD-3-Clause */
/* test_resp3.c - RESP3 on a connection that sent HELLO 3 (docs/protocol.md,
 * "RESP3"): HELLO answered as Redis 7 does, in the protocol it switches to;
 * every command of the table in its RESP3 shape (HGETALL a map, a missing
 * record, body or field the null `_`, integers and errors as in RESP2);
 * RESP2 stays the default and HELLO 2 switches back; one fill's shared
 * reply reaches a RESP2 and a RESP3 waiter each in its own shape; and
 * redis-cli -3 works. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int c;                      /* a client of the daemon */
} E;

#define D(...) h_cmd(E.c, __VA_ARGS__, NULL)

static void env_start(int latency_ms)
{
    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start(&E.up, latency_ms, 3);
    h_upstream_set_body(&E.up, "home", "<h1>home</h1>");
    h_daemon_init(&E.d);
    h_daemon_start(&E.d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n"
                   "\n[redis]\nhost = 127.0.0.1\nport = %d\n"
                   "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
                   "\n[namespace:page]\nupstream = http://127.0.0.1:%d/pages/{id}\nformat = raw\n",
                   E.d.port, E.redis.port, E.up.port, E.up.port);
    su_wait_linked(&E.d);
    E.c = h_connect(E.d.port);
}

/* What HELLO answers (raw, freed here): the seven facts, as a map in RESP3 or as an array of
 * fourteen in RESP2, with the protocol in force. */
static void expect_hello(char *raw, int proto)
{
    char want[64];

    ck_assert_ptr_nonnull(raw);
    ck_assert_msg(strncmp(raw, proto == 3 ? "%7\r\n" : "*14\r\n", proto == 3 ? 4 : 5) == 0, "HELLO %d: %s",
                  proto, h_repr(raw));
    snprintf(want, sizeof(want), "$5\r\nproto\r\n:%d\r\n", proto);
    ck_assert_msg(strstr(raw, want), "HELLO %d: %s", proto, h_repr(raw));
    ck_assert_msg(strstr(raw, "$6\r\nserver\r\n$10\r\ncachasided\r\n") && strstr(raw, "$7\r\nmodules\r\n*0\r\n") &&
                  strstr(raw, "$4\r\nrole\r\n$6\r\nmaster\r\n") && strstr(raw, "$2\r\nid\r\n:"),
                  "HELLO %d: %s", proto, h_repr(raw));
    free(raw);
}

START_TEST(t_hello)
{
    env_start(0);
    /* RESP2 is the default: a miss of a field is the nil bulk. */
    CK_REPLY(D("HGET", "product:p-001", "nosuch"), "$-1\r\n");
    expect_hello(D("HELLO"), 2);
    expect_hello(D("HELLO", "3"), 3);
    CK_REPLY(D("HGET", "product:p-001", "nosuch"), "_\r\n");
    expect_hello(D("HELLO"), 3);                                 /* no version: the one in use */
    CK_PREFIX(D("HELLO", "4"), "-NOPROTO");
    CK_PREFIX(D("HELLO", "x"), "-ERR Protocol version is not an integer");
    CK_REPLY(D("HGET", "product:p-001", "nosuch"), "_\r\n");     /* refused: still RESP3 */
    expect_hello(D("HELLO", "2"), 2);
    CK_REPLY(D("HGET", "product:p-001", "nosuch"), "$-1\r\n");
    /* HELLO 3 SETNAME: accepted with its argument. */
    expect_hello(D("HELLO", "3", "SETNAME", "svc"), 3);
    /* Pipelined: the command after HELLO 3 is answered in RESP3. */
    ck_assert_int_eq(h_send_cmdv(E.c, "HELLO", "2", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(E.c, "GET", "page:nosuch", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(E.c, "HELLO", "3", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(E.c, "GET", "page:nosuch", NULL), 0);
    expect_hello(h_read_reply(E.c, H_DEFAULT), 2);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "$-1\r\n");
    expect_hello(h_read_reply(E.c, H_DEFAULT), 3);
    CK_REPLY(h_read_reply(E.c, H_DEFAULT), "_\r\n");
}
END_TEST

/* Every command of the table on a RESP3 connection. */
START_TEST(t_every_command)
{
    static const char p1[] = "$2\r\nid\r\n$5\r\np-001\r\n";
    char *raw;

    env_start(0);
    expect_hello(D("HELLO", "3"), 3);
    CK_REPLY(D("PING"), "+PONG\r\n");
    CK_REPLY(D("PING", "hi"), "$2\r\nhi\r\n");
    CK_REPLY(D("ECHO", "x"), "$1\r\nx\r\n");
    /* HGETALL: a map, from a fill and from a hit; not found: an empty map. */
    for (int i = 0; i < 2; i++) {
        raw = D("HGETALL", "product:p-001");
        ck_assert_msg(raw && raw[0] == '%' && strstr(raw, p1), "HGETALL (%d): %s", i, h_repr(raw));
        ck_assert_msg(strncmp(raw, "%", 1) == 0 && strtol(raw + 1, NULL, 10) >= 2, "%s", h_repr(raw));
        free(raw);
    }
    CK_REPLY(D("HGETALL", "product:nosuch"), "%0\r\n");
    CK_REPLY(D("HGETALL", "product:nosuch"), "%0\r\n");         /* the negative hit too */
    CK_REPLY(D("HGET", "product:p-001", "id"), "$5\r\np-001\r\n");
    CK_REPLY(D("HGET", "product:p-001", "nosuch"), "_\r\n");
    CK_REPLY(D("HGET", "product:nosuch", "id"), "_\r\n");
    CK_REPLY(D("HMGET", "product:p-001", "id", "nosuch", "id"), "*3\r\n$5\r\np-001\r\n_\r\n$5\r\np-001\r\n");
    CK_REPLY(D("HMGET", "product:p-002", "nosuch", "id"), "*2\r\n_\r\n$5\r\np-002\r\n");   /* a fill */
    CK_REPLY(D("GET", "page:home"), "$13\r\n<h1>home</h1>\r\n");
    CK_REPLY(D("GET", "page:nosuch"), "_\r\n");
    CK_REPLY(D("GET", "page:nosuch2"), "_\r\n");
    CK_REPLY(D("MGET", "page:home", "page:nosuch", "page:other"), "*3\r\n$13\r\n<h1>home</h1>\r\n_\r\n_\r\n");
    CK_PREFIX(D("TTL", "product:p-001"), ":");
    CK_PREFIX(D("PTTL", "product:p-001"), ":");
    CK_REPLY(D("TTL", "product:none"), ":-2\r\n");
    CK_REPLY(D("HSET", "product:p-001", "name", "x"), ":1\r\n");
    CK_REPLY(D("HSET", "product:none", "name", "x"), ":0\r\n");
    CK_REPLY(D("DEL", "product:p-001"), ":1\r\n");
    CK_REPLY(D("UNLINK", "product:p-002"), ":1\r\n");
    CK_REPLY(D("INVALIDATE", "product:*"), ":1\r\n");             /* product:nosuch's sentinel */
    CK_PREFIX(D("STATS"), "$");
    CK_REPLY(D("STATS", "RESET"), "+OK\r\n");
    CK_PREFIX(D("INFO"), "=");                                  /* verbatim text, as Redis 7 */
    CK_REPLY(D("SELECT", "0"), "+OK\r\n");
    CK_PREFIX(D("CLIENT", "ID"), ":");
    CK_REPLY(D("CONFIG", "GET", "save"), "%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
    CK_PREFIX(D("COMMAND"), "*");
    CK_PREFIX(D("AUTH", "pw"), "-ERR AUTH");
    CK_REPLY(D("NOSUCH"), "-ERR unknown command 'NOSUCH'\r\n");
    CK_REPLY(D("HGET", "product:p-001"), "-ERR wrong number of arguments for 'hget' command\r\n");
    CK_REPLY(D("GET", "product:p-001"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    CK_REPLY(D("QUIT"), "+OK\r\n");
}
END_TEST

/* One fill, two waiters: a RESP2 one gets the array, a RESP3 one the map,
 * both with the same pairs (shared once); GET's null likewise. */
START_TEST(t_shared_fill_both_protocols)
{
    int c2, c3;
    char *r2, *r3;

    env_start(300);
    c2 = h_connect(E.d.port);
    c3 = h_connect(E.d.port);
    expect_hello(h_cmd(c3, "HELLO", "3", NULL), 3);
    ck_assert_int_eq(h_send_cmdv(c2, "HGETALL", "product:p-003", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(c3, "HGETALL", "product:p-003", NULL), 0);
    r2 = h_read_reply(c2, 3000);
    r3 = h_read_reply(c3, 3000);
    ck_assert_ptr_nonnull(r2);
    ck_assert_ptr_nonnull(r3);
    ck_assert_msg(r2[0] == '*' && r3[0] == '%', "RESP2 %s, RESP3 %s", h_repr(r2), h_repr(r3));
    ck_assert_int_eq(strtol(r2 + 1, NULL, 10), 2 * strtol(r3 + 1, NULL, 10));
    ck_assert_str_eq(strchr(r2, '\n'), strchr(r3, '\n'));      /* the same pairs after the header */
    ck_assert_int_eq(h_upstream_count_id(&E.up, "p-003"), 1);
    ck_assert_int_eq(su_stat(E.c, "coalesced"), 1);
    free(r2);
    free(r3);
    ck_assert_int_eq(h_send_cmdv(c2, "GET", "page:gone", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(c3, "GET", "page:gone", NULL), 0);
    CK_REPLY(h_read_reply(c2, 3000), "$-1\r\n");
    CK_REPLY(h_read_reply(c3, 3000), "_\r\n");
}
END_TEST

/* redis-cli -3 speaks RESP3 with HELLO 3 first: no "HELLO 3 failed", and
 * HGETALL shown as a map (its "=>" lines, --no-raw as on a terminal). */
START_TEST(t_redis_cli_3)
{
    char port[16], log[PATH_MAX];
    const char *text;
    const char *argv[] = { "redis-cli", "-3", "--no-raw", "-p", port, "HGETALL", "product:p-001", NULL };
    int st = 0;
    pid_t pid;

    env_start(0);
    snprintf(port, sizeof(port), "%d", E.d.port);
    snprintf(log, sizeof(log), "%s", h_path("redis-cli.log"));
    pid = h_spawn(argv, log);
    ck_assert_int_eq(h_wait_exit(pid, 10000, &st), 0);
    ck_assert_int_eq(h_exit_code(st), 0);
    text = h_log_tail(log);
    ck_assert_msg(!strstr(text, "HELLO 3 failed") && strstr(text, "p-001") && strstr(text, "=>"),
                  "redis-cli -3 printed: %s", text);
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "hello", t_hello, 30, 0 },
        { "every_command", t_every_command, 30, 0 },
        { "shared_fill_both_protocols", t_shared_fill_both_protocols, 30, 0 },
        { "redis_cli_3", t_redis_cli_3, 30, 0 },
    };

    return SU_RUN("resp3", cases, CK_NORMAL);
}
