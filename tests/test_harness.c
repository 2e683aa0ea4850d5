/* SPDX-License-Identifier: BSD-3-Clause */
/* test_harness.c - proves tests/harness.c works against a real redis-server.
 * The daemon helpers are exercised with a stand-in script (a real
 * redis-server behind a shell wrapper), the upstream helpers against the
 * real example upstream only when its binary exists. */
#define _GNU_SOURCE
#include "harness.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

/* ---------------------------------------------------------- basics ---- */
START_TEST(t_time_and_paths)
{
    long long t0 = h_now_ms();
    h_msleep(50);
    ck_assert_int_ge(h_now_ms() - t0, 50);

    const char *dir = h_tmpdir();
    ck_assert_str_eq(h_tmpdir(), dir);
    char *p = h_path("x.txt");
    ck_assert_int_eq(strncmp(p, dir, strlen(dir)), 0);
    h_write_file(p, "alpha\nbeta\n", 11);
    ck_assert_int_eq(h_log_size(p), 11);
    ck_assert(h_log_contains(p, "beta"));
    ck_assert(!h_log_contains(p, "gamma"));
    ck_assert(!h_log_contains(h_path("missing"), "x"));
    ck_assert_int_eq(h_wait_log(p, "gamma", 100), -1);
    ck_assert_int_eq(h_wait_log_after(p, 6, "alpha", 0), -1);
    ck_assert_int_eq(h_wait_log_after(p, 6, "beta", 0), 0);
    ck_assert_str_eq(h_log_tail(p), "alpha\nbeta\n");

    int port = h_free_port();
    ck_assert(port > 0 && port < 65536);
    ck_assert_int_eq(h_wait_port(port, 100), -1);
}
END_TEST

START_TEST(t_spawn_wait_stop)
{
    char *log = strdup(h_path("sh.log"));
    int st;
    const char *a1[] = { "/bin/sh", "-c", "echo hello $FOO; exit 3", NULL };
    const char *env[] = { "FOO=bar=baz", NULL };
    pid_t pid = h_spawn_env(a1, env, log);
    ck_assert_int_eq(h_wait_exit(pid, 2000, &st), 0);
    ck_assert_int_eq(h_exit_code(st), 3);
    ck_assert(h_log_contains(log, "hello bar=baz"));
    ck_assert_int_eq(h_wait_exit(pid, 0, NULL), -1); /* already reaped */

    const char *a2[] = { "sleep", "30", NULL };
    pid = h_spawn(a2, NULL);
    ck_assert_int_eq(h_wait_exit(pid, 50, NULL), -1);
    long long t0 = h_now_ms();
    ck_assert_int_eq(h_stop(pid, 2000), 128 + SIGTERM);
    ck_assert_int_lt(h_now_ms() - t0, 1000);
    ck_assert_int_eq(h_stop(pid, 100), -1); /* reaped: not signalled again */

    /* ignores SIGTERM -> SIGKILL after the timeout */
    const char *a3[] = { "/bin/sh", "-c",
                         "trap '' TERM; echo ready; while :; do sleep 0.05; done",
                         NULL };
    pid = h_spawn(a3, log);
    ck_assert_int_eq(h_wait_log(log, "ready", 2000), 0);
    ck_assert_int_eq(h_stop(pid, 200), 128 + SIGKILL);

    /* left running on purpose: h_cleanup (checked teardown) reaps it */
    h_spawn(a2, NULL);
    free(log);
}
END_TEST

START_TEST(t_parse_reply)
{
    const char *raw = "*4\r\n:42\r\n$-1\r\n*2\r\n+OK\r\n$3\r\nfoo\r\n*-1\r\n";
    struct h_reply *r = h_parse_reply(raw);
    ck_assert_int_eq(r->type, H_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 4);
    ck_assert_int_eq(r->element[0]->type, H_REPLY_INTEGER);
    ck_assert_int_eq(r->element[0]->integer, 42);
    ck_assert_int_eq(r->element[1]->type, H_REPLY_NIL);
    ck_assert_int_eq(r->element[1]->prefix, '$');
    ck_assert_int_eq(r->element[2]->element[0]->type, H_REPLY_STATUS);
    ck_assert_str_eq(r->element[2]->element[0]->str, "OK");
    ck_assert_str_eq(r->element[2]->element[1]->str, "foo");
    ck_assert_int_eq(r->element[3]->type, H_REPLY_NIL);
    ck_assert_int_eq(r->element[3]->prefix, '*');
    h_reply_free(r);

    r = h_parse_reply_len("$3\r\na\0b\r\n", 9);
    ck_assert_uint_eq(r->len, 3);
    ck_assert_int_eq(memcmp(r->str, "a\0b", 3), 0);
    h_reply_free(r);

    r = h_parse_reply("%1\r\n+k\r\n#t\r\n");
    ck_assert_int_eq(r->type, H_REPLY_MAP);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_int_eq(r->element[1]->integer, 1);
    h_reply_free(r);

    r = h_parse_reply("-ERR bad\r\n");
    ck_assert_int_eq(r->type, H_REPLY_ERROR);
    ck_assert_str_eq(r->str, "ERR bad");
    h_reply_free(r);

    ck_assert_int_eq(h_reply_int(":-7\r\n"), -7);
    ck_assert_str_eq(h_repr("+OK\r\n"), "+OK\\r\\n");
    ck_assert_str_eq(h_repr(NULL), "(null)");
}
END_TEST

/* ------------------------------------------------------------ redis ---- */
START_TEST(t_redis_basic)
{
    struct h_redis r = { 0 };
    h_redis_start(&r);
    ck_assert(r.port > 0 && r.pid > 0);

    int fd = h_connect(r.port);
    char *s = h_inline(fd, "PING");
    ck_assert_str_eq(s, "+PONG\r\n");
    free(s);
    s = h_cmd(fd, "PING", NULL);
    ck_assert_str_eq(s, "+PONG\r\n");
    free(s);

    s = h_cmd(fd, "SET", "k", "v a l", NULL);
    ck_assert_str_eq(s, "+OK\r\n");
    free(s);
    s = h_cmd(fd, "GET", "k", NULL);
    ck_assert_str_eq(s, "$5\r\nv a l\r\n");
    free(s);
    s = h_cmd(fd, "GET", "nope", NULL);
    ck_assert_str_eq(s, "$-1\r\n");
    free(s);

    s = h_cmd(fd, "HSET", "h", "f1", "x", "f2", "yy", NULL);
    ck_assert_int_eq(h_reply_int(s), 2);
    free(s);
    s = h_cmd(fd, "PEXPIRE", "h", "60000", NULL);
    ck_assert_int_eq(h_reply_int(s), 1);
    free(s);
    s = h_cmd(fd, "PTTL", "h", NULL);
    long long ttl = h_reply_int(s);
    ck_assert(ttl > 55000 && ttl <= 60000);
    free(s);
    s = h_cmd(fd, "HGETALL", "h", NULL);
    struct h_reply *rep = h_parse_reply(s);
    ck_assert_int_eq(rep->type, H_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 4);
    ck_assert_str_eq(rep->element[3]->str, "yy");
    h_reply_free(rep);
    free(s);
    s = h_cmd(fd, "HGET", "h", NULL); /* wrong arity -> error reply */
    ck_assert_int_eq(s[0], '-');
    free(s);

    /* binary-safe command + reply */
    const char *argv[] = { "SET", "bin", "a\0\r\nb" };
    const size_t lens[] = { 3, 3, 5 };
    ck_assert_int_eq(h_send_cmd_len(fd, 3, argv, lens), 0);
    s = h_read_reply(fd, H_DEFAULT);
    ck_assert_str_eq(s, "+OK\r\n");
    free(s);
    size_t n;
    ck_assert_int_eq(h_send_cmdv(fd, "GET", "bin", NULL), 0);
    s = h_read_reply_len(fd, H_DEFAULT, &n);
    ck_assert_uint_eq(n, 11);
    ck_assert_int_eq(memcmp(s, "$5\r\na\0\r\nb\r\n", 11), 0);
    free(s);

    /* a read with nothing pending times out instead of hanging */
    long long t0 = h_now_ms();
    ck_assert_ptr_null(h_read_reply(fd, 100));
    ck_assert_int_lt(h_now_ms() - t0, 1000);

    h_close(fd);
    h_redis_stop(&r);
    ck_assert_int_eq(r.pid, 0);
    ck_assert_int_eq(h_wait_port(r.port, 100), -1);
}
END_TEST

START_TEST(t_redis_pipeline_and_close)
{
    struct h_redis r = { 0 };
    h_redis_start(&r);
    int fd = h_connect(r.port);

    /* three commands in one write; replies arrive together */
    ck_assert_int_eq(h_sendf(fd, "PING\r\nSET a %d\r\nRPUSH l 1 2 3\r\n"
                             "LRANGE l 0 -1\r\nINCR a\r\n", 41), 0);
    const char *want[] = { "+PONG\r\n", "+OK\r\n", ":3\r\n",
                           "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n", ":42\r\n" };
    for (int i = 0; i < 5; i++) {
        char *s = h_read_reply(fd, H_DEFAULT);
        ck_assert_msg(s && strcmp(s, want[i]) == 0, "reply %d: %s", i, h_repr(s));
        free(s);
    }
    ck_assert_int_eq(h_is_closed(fd, 100), 0);

    /* pending data is drained, then the close is seen */
    ck_assert_int_eq(h_send_cmdv(fd, "PING", NULL), 0);
    ck_assert_int_eq(h_send_cmdv(fd, "QUIT", NULL), 0);
    ck_assert_int_eq(h_is_closed(fd, 2000), 1);
    ck_assert_ptr_null(h_read_reply(fd, 100)); /* EOF -> NULL */
    h_close(fd);

    /* server-side kill of a client */
    int a = h_connect(r.port), b = h_connect(r.port);
    char *s = h_cmd(a, "CLIENT", "SETNAME", "victim", NULL);
    free(s);
    s = h_cmd(b, "CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal", NULL);
    ck_assert_int_eq(h_reply_int(s), 1);
    free(s);
    ck_assert_int_eq(h_is_closed(a, 2000), 1);
    h_close(a);
    h_close(b);
    h_redis_stop(&r);
}
END_TEST

START_TEST(t_redis_restart_and_unix)
{
    struct h_redis r = { 0 };
    char *sock = strdup(h_path("redis.sock"));
    const char *extra[] = { "--unixsocket", sock, "--unixsocketperm", "700", NULL };
    h_redis_start_opts(&r, extra);
    int port = r.port;
    pid_t pid = r.pid;

    int fd = h_connect_unix(sock);
    char *s = h_cmd(fd, "SET", "x", "1", NULL);
    ck_assert_str_eq(s, "+OK\r\n");
    free(s);
    h_close(fd);

    h_redis_restart(&r);
    ck_assert_int_eq(r.port, port);
    ck_assert_int_ne(r.pid, pid);
    fd = h_connect_unix(sock); /* extra args survived the restart */
    s = h_cmd(fd, "GET", "x", NULL);
    ck_assert_str_eq(s, "$-1\r\n"); /* no persistence */
    free(s);
    h_close(fd);
    free(sock);
    /* not stopped on purpose: h_cleanup must reap it */
}
END_TEST

/* ------------------------------------------------------------- http ---- */
/* one-shot HTTP server in a forked child: serves `n` canned responses */
static int serve_http(const char *const responses[], int n)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t l = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(ls, 8), 0);
    getsockname(ls, (struct sockaddr *)&a, &l);
    if (fork() == 0) {
        for (int i = 0; i < n; i++) {
            int c = accept(ls, NULL, NULL);
            char req[4096];
            ssize_t got = 0, k;
            /* read until the end of headers (+ the small bodies we send) */
            while ((k = read(c, req + got, sizeof req - 1 - (size_t)got)) > 0) {
                got += k;
                req[got] = 0;
                if (strstr(req, "\r\n\r\n") &&
                    (!strstr(req, "Content-Length: 5") || strstr(req, "\r\n\r\nhello")))
                    break;
            }
            if (!strstr(req, "Connection: close") || !strstr(req, "Host: 127.0.0.1:"))
                _exit(1);
            ssize_t w = write(c, responses[i], strlen(responses[i]));
            (void)w;
            if (i != 1) /* response 1 relies on Content-Length, keeps open */
                close(c);
            else
                sleep(1), close(c);
        }
        _exit(0);
    }
    close(ls);
    return ntohs(a.sin_port);
}

START_TEST(t_http_client)
{
    const char *resp[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n17\n",
        "HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello",
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n",
    };
    int port = serve_http(resp, 4);
    char out[64];
    ck_assert_int_eq(h_http(port, "GET", "/_count", NULL, 0, out, sizeof out), 200);
    ck_assert_str_eq(out, "17\n");
    long long t0 = h_now_ms();
    ck_assert_int_eq(h_http(port, "PUT", "/_records/a", "hello", 5, out, sizeof out), 201);
    ck_assert_str_eq(out, "hello");
    ck_assert_int_lt(h_now_ms() - t0, 800); /* did not wait for the close */
    ck_assert_int_eq(h_http(port, "GET", "/c", NULL, 0, out, 5), 200);
    ck_assert_str_eq(out, "abcd"); /* truncated to outsz-1 */
    ck_assert_int_eq(h_http(port, "DELETE", "/x", NULL, 0, NULL, 0), 404);
    ck_assert_int_eq(h_http(h_free_port(), "GET", "/", NULL, 0, out, sizeof out), -1);

    char enc[64];
    ck_assert_str_eq(h_urlencode("a b/c%é~", enc, sizeof enc), "a%20b%2Fc%25%C3%A9~");
}
END_TEST

/* ---------------------------------------------------------- upstream --- */
START_TEST(t_upstream)
{
    if (access(h_upstream_bin(), X_OK) != 0) {
        fprintf(stderr, "t_upstream: %s not built, skipped\n", h_upstream_bin());
        return;
    }
    struct h_upstream u;
    h_upstream_start(&u, 0, 10);
    ck_assert(u.port > 0);
    h_upstream_reset(&u);
    ck_assert_int_eq(h_upstream_count(&u), 0);
    h_upstream_set_body(&u, "42", "{\"id\":42}");
    char out[256];
    ck_assert_int_eq(h_http(u.port, "GET", "/products/42", NULL, 0, out, sizeof out), 200);
    ck_assert_str_eq(out, "{\"id\":42}");
    ck_assert_int_eq(h_upstream_count(&u), 1);
    ck_assert_int_eq(h_upstream_count_id(&u, "42"), 1);
    h_upstream_set_status(&u, "42", 503);
    ck_assert_int_eq(h_http(u.port, "GET", "/products/42", NULL, 0, NULL, 0), 503);
    h_upstream_set_status(&u, "42", 0);
    h_upstream_set_body(&u, "a b/c", "x");
    h_upstream_set_body(&u, "a b/c", NULL);
    h_upstream_set_latency(&u, 300);
    long long t0 = h_now_ms();
    h_http(u.port, "GET", "/products/42", NULL, 0, NULL, 0);
    ck_assert_int_ge(h_now_ms() - t0, 250);
    h_upstream_set_latency(&u, 0);
    ck_assert_int_eq(h_upstream_stop(&u), 0);
}
END_TEST

/* ------------------------------------------------------------ daemon --- */
/* Stand-in for cachasided: parses `listen` from the config and execs a
 * redis-server there (redis exits 0 on SIGTERM, like the daemon). */
static const char fake_daemon[] =
    "#!/bin/sh\n"
    "[ \"$1\" = -c ] || exit 64\n"
    "grep -q '^fail' \"$2\" && { echo 'bad config' >&2; exit 2; }\n"
    "grep -q '^hang' \"$2\" && exec sleep 30\n"
    "port=$(sed -n 's/^listen = 127.0.0.1://p' \"$2\")\n"
    "echo \"fake daemon port=$port notify=$NOTIFY_SOCKET\" >&2\n"
    "exec redis-server --port \"$port\" --bind 127.0.0.1 --save '' "
    "--appendonly no\n";

START_TEST(t_daemon)
{
    char *bin = strdup(h_path("fake-cachasided"));
    h_write_file(bin, fake_daemon, sizeof fake_daemon - 1);
    chmod(bin, 0755);
    setenv("CACHASIDED_BIN", bin, 1);
    ck_assert_str_eq(h_daemon_bin(), bin);

    struct h_daemon d;
    h_daemon_init(&d);
    const char *env[] = { "NOTIFY_SOCKET=/tmp/nowhere.sock", NULL };
    h_daemon_start_env(&d, env, "[server]\nlisten = 127.0.0.1:%d\n[cache]\nttl_s = %d\n",
                       d.port, 300);
    ck_assert(d.pid > 0);
    ck_assert(h_log_contains(d.conf, "ttl_s = 300"));
    ck_assert_int_eq(h_wait_log(d.log, "notify=/tmp/nowhere.sock", 2000), 0);
    int fd = h_connect(d.port);
    char *s = h_cmd(fd, "PING", NULL);
    ck_assert_str_eq(s, "+PONG\r\n");
    free(s);
    h_close(fd);

    long off = h_log_size(d.log);
    h_daemon_rewrite_conf(&d, "[server]\nlisten = 127.0.0.1:%d\nreloaded = yes\n", d.port);
    ck_assert(h_log_contains(d.conf, "reloaded = yes"));
    ck_assert(!h_log_contains(d.conf, "ttl_s"));
    ck_assert_int_eq(h_daemon_stop(&d), 0);
    ck_assert_int_eq(d.pid, 0);
    ck_assert_int_eq(h_daemon_stop(&d), -1);

    /* restart of the same struct: same files, log appended */
    h_daemon_start(&d, "[server]\nlisten = 127.0.0.1:%d\n", d.port);
    ck_assert_int_eq(h_wait_log_after(d.log, off, "notify=\n", 2000), 0);
    ck_assert_int_eq(h_daemon_stop(&d), 0);

    int st = 1234;
    ck_assert_int_eq(h_daemon_try_start(&d, 2000, &st, "fail\n"), -1);
    ck_assert_int_eq(st, 2);
    ck_assert_int_eq(d.pid, 0);
    ck_assert(h_log_contains(d.log, "bad config"));
    long long t0 = h_now_ms();
    ck_assert_int_eq(h_daemon_try_start(&d, 300, &st, "hang\n"), -1);
    ck_assert_int_eq(st, -1);
    ck_assert_int_lt(h_now_ms() - t0, 2000);
    unsetenv("CACHASIDED_BIN");
    free(bin);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, NULL, h_cleanup); /* reap leftovers */
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *harness_suite(void)
{
    Suite *s = suite_create("harness");
    TCase *tc = tcase(s, "basics");
    tcase_add_test(tc, t_time_and_paths);
    tcase_add_test(tc, t_spawn_wait_stop);
    tcase_add_test(tc, t_parse_reply);
    tc = tcase(s, "redis");
    tcase_add_test(tc, t_redis_basic);
    tcase_add_test(tc, t_redis_pipeline_and_close);
    tcase_add_test(tc, t_redis_restart_and_unix);
    tc = tcase(s, "http");
    tcase_add_test(tc, t_http_client);
    tcase_add_test(tc, t_upstream);
    tc = tcase(s, "daemon");
    tcase_add_test(tc, t_daemon);
    return s;
}

int main(void)
{
    h_tmpdir(); /* owned by the runner: removed at exit even if tests fail */
    SRunner *sr = srunner_create(harness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
