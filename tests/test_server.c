/* SPDX-License-Identifier: BSD-3-Clause */
/* test_server.c - integration tests of the daemon's foundation: command line,
 * configuration reload, the protocol front end (framing, pipelining, errors,
 * compatibility commands, AUTH), per-client limits, signals and sd_notify
 * (docs/design.md sections 2, 3, 5 and 10).  Every test runs a real redis-server and the
 * built daemon on free ports and talks to it over real sockets. */
#define _GNU_SOURCE
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers -- */

static struct h_redis g_redis;

static void start_redis(void)
{
    memset(&g_redis, 0, sizeof g_redis);
    h_redis_start(&g_redis);
}

/* A whole configuration: TCP listener on listen_port (0 = none), the test's
 * redis, namespace "product" fetching from upstream_port (1 = nothing listens
 * there; these tests do not read records unless they say so).  server_extra
 * is appended to [server], tail after the namespace (more sections).
 * Returns a static buffer. */
static const char *conf_text(int listen_port, const char *server_extra, int upstream_port,
                             const char *tail)
{
    static char buf[8192];
    char listen[64] = "";

    if (listen_port > 0)
        snprintf(listen, sizeof listen, "127.0.0.1:%d", listen_port);
    snprintf(buf, sizeof buf,
             "[server]\n"
             "listen = %s\n"
             "admin_listen =\n"
             "%s"
             "[redis]\n"
             "port = %d\n"
             "command_timeout_ms = 2000\n"
             "[namespace:product]\n"
             "upstream = http://127.0.0.1:%d/products/{id}\n"
             "%s",
             listen, server_extra, g_redis.port, upstream_port, tail);
    return buf;
}

/* The daemon connects to Redis after it starts listening: wait until a
 * Redis-backed command (TTL) stops answering -TRYAGAIN.  pass: requirepass
 * or NULL. */
static void wait_cache_ready(int port, const char *pass)
{
    long long dl = h_now_ms() + 5000;
    int fd = h_connect(port);
    char *r;

    if (pass) {
        r = h_cmd(fd, "AUTH", pass, NULL);
        ck_assert_msg(r && strcmp(r, "+OK\r\n") == 0, "AUTH: %s", h_repr(r));
        free(r);
    }
    for (;;) {
        r = h_cmd(fd, "TTL", "product:ready-probe", NULL);
        if (r && strcmp(r, ":-2\r\n") == 0)
            break;
        ck_assert_msg(r && strncmp(r, "-TRYAGAIN", 9) == 0, "TTL probe: %s", h_repr(r));
        ck_assert_msg(h_now_ms() < dl, "daemon not connected to Redis within 5 s");
        free(r);
        h_msleep(20);
    }
    free(r);
    h_close(fd);
}

/* Starts redis (if not running) and the daemon on d (h_daemon_init'ed);
 * without requirepass, also waits until it is connected to Redis. */
static void start_daemon(struct h_daemon *d, const char *server_extra)
{
    if (g_redis.pid <= 0)
        start_redis();
    h_daemon_start(d, "%s", conf_text(d->port, server_extra, 1, ""));
    if (!strstr(server_extra, "requirepass"))
        wait_cache_ready(d->port, NULL);
}

/* Reply checks as macros, so a failure points at the test's line. */
#define ASSERT_RAW(expr, expected)                                                     \
    do {                                                                               \
        char *r_ = (expr);                                                             \
        const char *e_ = (expected);                                                   \
        ck_assert_msg(r_ != NULL && strcmp(r_, e_) == 0, "expected %s, got %s",        \
                      h_repr(e_), h_repr(r_));                                         \
        free(r_);                                                                      \
    } while (0)

#define ASSERT_PREFIX(expr, prefix)                                                    \
    do {                                                                               \
        char *r_ = (expr);                                                             \
        const char *p_ = (prefix);                                                     \
        ck_assert_msg(r_ != NULL && strncmp(r_, p_, strlen(p_)) == 0,                  \
                      "expected a reply starting with %s, got %s", h_repr(p_),         \
                      h_repr(r_));                                                     \
        free(r_);                                                                      \
    } while (0)

#define ASSERT_TYPE(expr, want_type)                                                        \
    do {                                                                               \
        char *r_ = (expr);                                                             \
        ck_assert_msg(r_ != NULL, "no reply");                                         \
        struct h_reply *p_ = h_parse_reply(r_);                                        \
        ck_assert_msg(p_->type == (want_type), "expected reply type '%c', got %s",          \
                      (char)(want_type), h_repr(r_));                                       \
        h_reply_free(p_);                                                              \
        free(r_);                                                                      \
    } while (0)

static int have_prog(const char *name)
{
    const char *path = getenv("PATH");
    char *copy, *dir, *save = NULL;
    int found = 0;

    if (!path)
        return 0;
    copy = strdup(path);
    for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", *dir ? dir : ".", name);
        found = access(full, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* Whole file into a malloc'd NUL-terminated string ("" if missing). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0, len = 0;

    if (f) {
        for (;;) {
            if (len + 4096 + 1 > cap) {
                cap = cap ? cap * 2 : 8192;
                buf = realloc(buf, cap);
                ck_assert(buf != NULL);
            }
            size_t n = fread(buf + len, 1, cap - len - 1, f);
            if (n == 0)
                break;
            len += n;
        }
        fclose(f);
    }
    if (!buf)
        buf = malloc(1);
    ck_assert(buf != NULL);
    buf[len] = '\0';
    return buf;
}

/* Runs a program to completion (5 s deadline), stdout into out_path (and
 * stderr into err_path when not NULL, else with stdout).  Returns its exit
 * code. */
static int run_prog(const char *const args[], const char *out_path, const char *err_path)
{
    const char *argv[32];
    char envbuf[PATH_MAX + 16];
    const char *env[] = { envbuf, NULL };
    int n = 0, st;
    pid_t pid;

    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = err_path ? "exec \"$0\" \"$@\" 2>\"$TS_ERR\"" : "exec \"$0\" \"$@\"";
    for (int i = 0; args[i]; i++) {
        ck_assert(n < 31);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    snprintf(envbuf, sizeof envbuf, "TS_ERR=%s", err_path ? err_path : "/dev/null");
    unlink(out_path);
    pid = h_spawn_env(argv, env, out_path);
    ck_assert_msg(h_wait_exit(pid, 5000, &st) == 0, "%s did not exit within 5 s", args[0]);
    return h_exit_code(st);
}

/* A plain TCP client socket outside the harness (whose reads would drain
 * it), with a small receive buffer so little of the output sits in it. */
static int raw_connect(int port, int rcvbuf)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
    return fd;
}

/* ------------------------------------------------- protocol: basics --- */

/* PING in every request form; command names are case-insensitive; ECHO is
 * binary-safe over RESP; inline words may be separated by several blanks. */
START_TEST(t_ping_forms)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);

    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");                   /* PING\r\n */
    ck_assert_int_eq(h_send(fd, "PING\n", 5), 0);                     /* bare LF */
    ASSERT_RAW(h_read_reply(fd, H_DEFAULT), "+PONG\r\n");
    ASSERT_RAW(h_cmd(fd, "PING", NULL), "+PONG\r\n");                 /* RESP */
    ASSERT_RAW(h_cmd(fd, "PING", "hello world", NULL), "$11\r\nhello world\r\n");
    ASSERT_RAW(h_inline(fd, "PING hi"), "$2\r\nhi\r\n");
    ASSERT_RAW(h_inline(fd, "ping"), "+PONG\r\n");
    ASSERT_RAW(h_cmd(fd, "pInG", NULL), "+PONG\r\n");
    ASSERT_RAW(h_inline(fd, "  EcHo \t spaced  "), "$6\r\nspaced\r\n");

    const char *argv[] = { "echo", "a\r\n\0b" };
    const size_t lens[] = { 4, 5 };
    size_t len;
    ck_assert_int_eq(h_send_cmd_len(fd, 2, argv, lens), 0);
    char *r = h_read_reply_len(fd, H_DEFAULT, &len);
    ck_assert_msg(r && len == 11 && memcmp(r, "$5\r\na\r\n\0b\r\n", 11) == 0, "got %s (%zu bytes)",
                  h_repr(r), r ? len : 0);
    free(r);
}
END_TEST

/* Many requests, inline and RESP mixed (plus ignored empty lines and *0),
 * in one write and in tiny pieces: every reply comes, in request order. */
START_TEST(t_pipelining)
{
    enum { N = 400 };
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);

    size_t cap = 64 * N + 64, len = 0;
    char *buf = malloc(cap);
    ck_assert(buf != NULL);
    for (int i = 0; i < N; i++) {
        char a[32];
        switch (i % 4) {
        case 0:
            len += (size_t)snprintf(buf + len, cap - len, "PING\r\n");
            break;
        case 1:
            snprintf(a, sizeof a, "msg-%d", i);
            len += (size_t)snprintf(buf + len, cap - len, "*2\r\n$4\r\nECHO\r\n$%zu\r\n%s\r\n", strlen(a), a);
            break;
        case 2:
            len += (size_t)snprintf(buf + len, cap - len, "echo in-%d\n\r\n", i); /* + empty line */
            break;
        default:
            snprintf(a, sizeof a, "p-%d", i);
            len += (size_t)snprintf(buf + len, cap - len, "*0\r\n*2\r\n$4\r\nping\r\n$%zu\r\n%s\r\n",
                                    strlen(a), a);
            break;
        }
    }

    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            ck_assert_int_eq(h_send(fd, buf, len), 0);
        } else {
            /* Pieces of 7 bytes split every header, payload and CRLF. */
            for (size_t off = 0; off < len; off += 7)
                ck_assert_int_eq(h_send(fd, buf + off, len - off < 7 ? len - off : 7), 0);
        }
        for (int i = 0; i < N; i++) {
            char want[64], a[32];
            switch (i % 4) {
            case 0:
                snprintf(want, sizeof want, "+PONG\r\n");
                break;
            case 1:
                snprintf(a, sizeof a, "msg-%d", i);
                snprintf(want, sizeof want, "$%zu\r\n%s\r\n", strlen(a), a);
                break;
            case 2:
                snprintf(a, sizeof a, "in-%d", i);
                snprintf(want, sizeof want, "$%zu\r\n%s\r\n", strlen(a), a);
                break;
            default:
                snprintf(a, sizeof a, "p-%d", i);
                snprintf(want, sizeof want, "$%zu\r\n%s\r\n", strlen(a), a);
                break;
            }
            char *r = h_read_reply(fd, H_DEFAULT);
            ck_assert_msg(r && strcmp(r, want) == 0, "pass %d reply %d: expected %s, got %s", pass, i,
                          h_repr(want), h_repr(r));
            free(r);
        }
        /* Nothing extra: the empty lines and *0 had no reply. */
        ASSERT_RAW(h_inline(fd, "PING end"), "$3\r\nend\r\n");
    }
    free(buf);
}
END_TEST

/* Unknown commands and wrong arities are errors; the connection stays usable. */
START_TEST(t_unknown_command_and_arity)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);

    ASSERT_PREFIX(h_inline(fd, "FOO bar"), "-ERR unknown command 'FOO'");
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    ASSERT_PREFIX(h_cmd(fd, "x", NULL), "-ERR unknown command 'x'");
    ASSERT_RAW(h_cmd(fd, "hget", "product:p-1", NULL),
               "-ERR wrong number of arguments for 'hget' command\r\n");
    ASSERT_RAW(h_inline(fd, "HGET product:p-1"),
               "-ERR wrong number of arguments for 'hget' command\r\n");
    ASSERT_RAW(h_cmd(fd, "HGETALL", NULL), "-ERR wrong number of arguments for 'hgetall' command\r\n");
    ASSERT_RAW(h_cmd(fd, "ECHO", NULL), "-ERR wrong number of arguments for 'echo' command\r\n");
    ASSERT_RAW(h_cmd(fd, "PING", NULL), "+PONG\r\n");
}
END_TEST

/* Each malformed or over-long request gets "-ERR protocol error ..." after
 * the replies to what came before it, then the connection is closed; a
 * client connected before is not affected. */
START_TEST(t_protocol_errors)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "max_request_bytes = 1024\n");

    char longline[1200], nonl[1500];
    snprintf(longline, sizeof longline, "PING %01100d\r\n", 0);
    memset(nonl, 'x', sizeof nonl);
    /* One RESP request bigger than 64 * max_request_bytes (100 x 1000 B). */
    size_t bigcap = 110 * 1024, biglen = 0;
    char *big = malloc(bigcap);
    ck_assert(big != NULL);
    biglen += (size_t)snprintf(big, bigcap, "*100\r\n");
    for (int i = 0; i < 100; i++) {
        biglen += (size_t)snprintf(big + biglen, bigcap - biglen, "$1000\r\n");
        memset(big + biglen, 'a', 1000);
        biglen += 1000;
        memcpy(big + biglen, "\r\n", 2);
        biglen += 2;
    }

    struct {
        const char *name;
        const char *data;
        size_t len;
        int pong_first;  /* data starts with a good PING */
    } cases[] = {
        { "inline line over max_request_bytes", longline, strlen(longline), 0 },
        { "inline line over the limit without newline", nonl, sizeof nonl, 0 },
        { "good request then over-long line", NULL, 0, 1 },
        { "bulk length over max_request_bytes", "*2\r\n$4\r\nECHO\r\n$5000\r\n", 0, 0 },
        { "non-numeric bulk length", "*1\r\n$abc\r\n", 0, 0 },
        { "negative bulk length", "*1\r\n$-1\r\n", 0, 0 },
        { "non-numeric array length", "*x\r\n", 0, 0 },
        { "array of a non-bulk element", "*1\r\n+PING\r\n", 0, 0 },
        { "bulk not terminated by CRLF", "*1\r\n$4\r\nPINGxx\r\n", 0, 0 },
        { "too many arguments", "*2000000\r\n", 0, 0 },
        { "RESP request over 64 x max_request_bytes", big, biglen, 0 },
    };
    char withpong[1300];
    snprintf(withpong, sizeof withpong, "PING\r\n%s", longline);
    cases[2].data = withpong;
    cases[2].len = strlen(withpong);

    int other = h_connect(d.port);
    ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int bad = h_connect(d.port);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].data);
        (void)h_send(bad, cases[i].data, len); /* the daemon may close before all is sent */
        if (cases[i].pong_first) {
            char *r = h_read_reply(bad, H_DEFAULT);
            ck_assert_msg(r && strcmp(r, "+PONG\r\n") == 0, "%s: expected +PONG first, got %s",
                          cases[i].name, h_repr(r));
            free(r);
        }
        char *r = h_read_reply(bad, H_DEFAULT);
        ck_assert_msg(r && strncmp(r, "-ERR protocol error", 19) == 0,
                      "%s: expected -ERR protocol error, got %s", cases[i].name, h_repr(r));
        free(r);
        ck_assert_msg(h_is_closed(bad, 3000), "%s: connection not closed after the protocol error",
                      cases[i].name);
        h_close(bad);
        r = h_inline(other, "PING");
        ck_assert_msg(r && strcmp(r, "+PONG\r\n") == 0, "%s: other client got %s", cases[i].name,
                      h_repr(r));
        free(r);
    }
    free(big);
}
END_TEST

/* What stock clients send on connect gets harmless replies; QUIT closes. */
START_TEST(t_compat_commands)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);

    ASSERT_RAW(h_cmd(fd, "SELECT", "0", NULL), "+OK\r\n");
    ASSERT_PREFIX(h_cmd(fd, "SELECT", "1", NULL), "-ERR");
    ASSERT_RAW(h_cmd(fd, "CLIENT", "SETNAME", "x", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(fd, "CLIENT", "SETINFO", "lib-name", "redis-py", NULL), "+OK\r\n");
    ASSERT_TYPE(h_cmd(fd, "CONFIG", "GET", "maxmemory", NULL), H_REPLY_ARRAY);
    ASSERT_TYPE(h_cmd(fd, "CONFIG", "GET", "save", NULL), H_REPLY_ARRAY);
    ASSERT_TYPE(h_cmd(fd, "COMMAND", NULL), H_REPLY_ARRAY);
    ASSERT_TYPE(h_cmd(fd, "COMMAND", "DOCS", NULL), H_REPLY_ARRAY);
    /* HELLO: RESP2 facts for clients that probe (RESP3: test_resp3). */
    char *hello = h_cmd(fd, "HELLO", "2", NULL);
    ck_assert_msg(hello && hello[0] == '*' && strstr(hello, "cachasided") && strstr(hello, "proto\r\n:2"),
                  "HELLO 2: %s", h_repr(hello));
    free(hello);
    ASSERT_TYPE(h_cmd(fd, "HELLO", NULL), H_REPLY_ARRAY);
    ASSERT_PREFIX(h_cmd(fd, "HELLO", "4", NULL), "-NOPROTO");
    ASSERT_RAW(h_cmd(fd, "PING", NULL), "+PONG\r\n");
    ASSERT_RAW(h_cmd(fd, "QUIT", NULL), "+OK\r\n");
    ck_assert_msg(h_is_closed(fd, 3000), "connection still open after QUIT");

    /* Inline QUIT (nc/telnet users) too. */
    fd = h_connect(d.port);
    ASSERT_RAW(h_inline(fd, "quit"), "+OK\r\n");
    ck_assert_msg(h_is_closed(fd, 3000), "connection still open after inline QUIT");
}
END_TEST

/* redis-cli connects unchanged (skipped when redis-cli is not installed). */
START_TEST(t_redis_cli)
{
    if (!have_prog("redis-cli")) {
        fprintf(stderr, "t_redis_cli: redis-cli not on PATH, skipped\n");
        return;
    }
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    char port[16];
    snprintf(port, sizeof port, "%d", d.port);
    char *out = strdup(h_path("redis-cli.out"));

    const char *ping[] = { "redis-cli", "-p", port, "PING", NULL };
    ck_assert_int_eq(run_prog(ping, out, NULL), 0);
    char *s = slurp(out);
    ck_assert_msg(strcmp(s, "PONG\n") == 0, "redis-cli PING printed %s", h_repr(s));
    free(s);

    const char *echo[] = { "redis-cli", "-p", port, "ECHO", "hello there", NULL };
    ck_assert_int_eq(run_prog(echo, out, NULL), 0);
    s = slurp(out);
    ck_assert_msg(strcmp(s, "hello there\n") == 0, "redis-cli ECHO printed %s", h_repr(s));
    free(s);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- AUTH -- */

/* With requirepass: commands before AUTH get -NOAUTH, a wrong password
 * -WRONGPASS, the right one (with or without a user name) +OK. */
START_TEST(t_auth)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "requirepass = s3cret\n");
    wait_cache_ready(d.port, "s3cret");
    int fd = h_connect(d.port);

    ASSERT_PREFIX(h_cmd(fd, "HGETALL", "product:p-001", NULL), "-NOAUTH");
    ASSERT_PREFIX(h_cmd(fd, "TTL", "product:p-001", NULL), "-NOAUTH");
    ASSERT_PREFIX(h_inline(fd, "STATS"), "-NOAUTH");
    ASSERT_PREFIX(h_cmd(fd, "HELLO", "2", NULL), "-NOAUTH");
    {
        /* HELLO 2 AUTH user pass authenticates, as in Redis. */
        int hf = h_connect(d.port);
        ASSERT_PREFIX(h_cmd(hf, "HELLO", "2", "AUTH", "default", "nope", NULL), "-WRONGPASS");
        ASSERT_PREFIX(h_cmd(hf, "PING", NULL), "-NOAUTH");
        ASSERT_TYPE(h_cmd(hf, "HELLO", "2", "AUTH", "default", "s3cret", NULL), H_REPLY_ARRAY);
        ASSERT_RAW(h_cmd(hf, "PING", NULL), "+PONG\r\n");
        h_close(hf);
    }
    ASSERT_PREFIX(h_cmd(fd, "AUTH", "wrong", NULL), "-WRONGPASS");
    ASSERT_PREFIX(h_cmd(fd, "TTL", "product:p-001", NULL), "-NOAUTH");
    ASSERT_RAW(h_cmd(fd, "AUTH", "s3cret", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(fd, "PING", NULL), "+PONG\r\n");
    ASSERT_RAW(h_cmd(fd, "TTL", "product:p-001", NULL), ":-2\r\n");

    int fd2 = h_connect(d.port);
    ASSERT_PREFIX(h_cmd(fd2, "AUTH", "default", "nope", NULL), "-WRONGPASS");
    ASSERT_RAW(h_cmd(fd2, "AUTH", "someuser", "s3cret", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(fd2, "TTL", "product:p-001", NULL), ":-2\r\n");

    /* QUIT needs no AUTH. */
    int fd3 = h_connect(d.port);
    ASSERT_RAW(h_inline(fd3, "QUIT"), "+OK\r\n");
    ck_assert(h_is_closed(fd3, 3000));

    if (have_prog("redis-cli")) {
        char port[16];
        snprintf(port, sizeof port, "%d", d.port);
        char *out = strdup(h_path("redis-cli-auth.out"));
        const char *ok[] = { "redis-cli", "-p", port, "-a", "s3cret", "--no-auth-warning", "PING", NULL };
        ck_assert_int_eq(run_prog(ok, out, NULL), 0);
        char *s = slurp(out);
        ck_assert_msg(strcmp(s, "PONG\n") == 0, "redis-cli -a PING printed %s", h_repr(s));
        free(s);
        const char *noauth[] = { "redis-cli", "-p", port, "TTL", "product:p-001", NULL };
        run_prog(noauth, out, NULL);
        s = slurp(out);
        ck_assert_msg(strstr(s, "NOAUTH") != NULL, "redis-cli without -a printed %s", h_repr(s));
        free(s);
        free(out);
    } else {
        fprintf(stderr, "t_auth: redis-cli not on PATH, its part skipped\n");
    }
}
END_TEST

/* docs/design.md section 5, docs/protocol.md: before AUTH every command but AUTH, HELLO and QUIT gets
 * -NOAUTH - PING included, as in Redis. */
START_TEST(t_auth_ping_needs_auth)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "requirepass = s3cret\n");
    int fd = h_connect(d.port);

    ASSERT_PREFIX(h_cmd(fd, "PING", NULL), "-NOAUTH");
    ASSERT_PREFIX(h_inline(fd, "PING"), "-NOAUTH");
    ASSERT_RAW(h_cmd(fd, "AUTH", "s3cret", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(fd, "PING", NULL), "+PONG\r\n");
}
END_TEST

/* -------------------------------------------------------------- limits -- */

/* Connects until the daemon accepts (PING answered, not "max number of
 * clients reached"), for up to 5 s.  Returns the fd. */
static int connect_accepted(int port)
{
    long long dl = h_now_ms() + 5000;
    for (;;) {
        int fd = h_connect(port);
        char *r = h_inline(fd, "PING");
        if (r && strcmp(r, "+PONG\r\n") == 0) {
            free(r);
            return fd;
        }
        ck_assert_msg(r && strcmp(r, "-ERR max number of clients reached\r\n") == 0,
                      "unexpected reply %s", h_repr(r));
        free(r);
        h_close(fd);
        ck_assert_msg(h_now_ms() < dl, "no client accepted within 5 s");
        h_msleep(50);
    }
}

/* max_clients = 2: the third client gets an error and is closed; once one
 * leaves, a new client is accepted. */
START_TEST(t_max_clients)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "max_clients = 2\n");

    /* The harness's own start-up probe may still count for a moment. */
    int c1 = connect_accepted(d.port), c2 = connect_accepted(d.port);
    int c3 = h_connect(d.port);
    ASSERT_RAW(h_read_reply(c3, H_DEFAULT), "-ERR max number of clients reached\r\n");
    ck_assert_msg(h_is_closed(c3, 3000), "refused client not closed");
    h_close(c3);
    ASSERT_RAW(h_inline(c1, "PING"), "+PONG\r\n");

    h_close(c1);
    /* The daemon notices the close asynchronously: retry until accepted. */
    connect_accepted(d.port);
    ASSERT_RAW(h_inline(c2, "PING"), "+PONG\r\n");
}
END_TEST


/* A client that sent half a request does not hold up anybody; completing
 * its request later gets the reply. */
START_TEST(t_half_sent_requests)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");

    int s1 = h_connect(d.port), s2 = h_connect(d.port), fast = h_connect(d.port);
    ck_assert_int_eq(h_send(s1, "PIN", 3), 0);
    const char *half = "*2\r\n$4\r\nECHO\r\n$5\r\nhel";
    ck_assert_int_eq(h_send(s2, half, strlen(half)), 0);
    for (int i = 0; i < 5; i++)
        ASSERT_RAW(h_inline(fast, "PING"), "+PONG\r\n");
    char *r = h_read_reply(s1, 300);
    ck_assert_msg(r == NULL, "reply to half a line: %s", h_repr(r));
    r = h_read_reply(s2, 300);
    ck_assert_msg(r == NULL, "reply to half a RESP array: %s", h_repr(r));

    ck_assert_int_eq(h_send(s1, "G\r\n", 3), 0);
    ASSERT_RAW(h_read_reply(s1, H_DEFAULT), "+PONG\r\n");
    ck_assert_int_eq(h_send(s2, "lo\r\n", 4), 0);
    ASSERT_RAW(h_read_reply(s2, H_DEFAULT), "$5\r\nhello\r\n");
    ASSERT_RAW(h_inline(fast, "PING"), "+PONG\r\n");
}
END_TEST

/* client_idle_timeout_s = 1: a silent client is closed after about a
 * second; one that keeps sending is not. */
START_TEST(t_idle_timeout)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "client_idle_timeout_s = 1\n");

    long long t0 = h_now_ms();
    int idle = h_connect(d.port);
    int active = h_connect(d.port);
    long long closed_after = -1;
    while (closed_after < 0 && h_now_ms() - t0 < 6000) {
        ASSERT_RAW(h_inline(active, "PING"), "+PONG\r\n");
        if (h_is_closed(idle, 200))
            closed_after = h_now_ms() - t0;
    }
    ck_assert_msg(closed_after >= 0, "idle client still open after 6 s");
    ck_assert_msg(closed_after >= 900, "idle client closed after only %lld ms", closed_after);
    ck_assert_msg(closed_after <= 4000, "idle client closed after %lld ms", closed_after);
    /* The active client lives on well past the timeout. */
    while (h_now_ms() - t0 < 3500) {
        ASSERT_RAW(h_inline(active, "PING"), "+PONG\r\n");
        h_msleep(200);
    }
    ASSERT_RAW(h_inline(active, "PING"), "+PONG\r\n");
}
END_TEST

/* BATCH pipelined "ECHO <payload>" requests in one buffer (caller frees). */
static char *echo_batch(int payload, int nreq, char fill, size_t *len)
{
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "*2\r\n$4\r\nECHO\r\n$%d\r\n", payload);
    size_t one = (size_t)hl + (size_t)payload + 2;
    char *batch = malloc(one * (size_t)nreq);

    ck_assert(batch != NULL);
    for (int i = 0; i < nreq; i++) {
        char *p = batch + one * (size_t)i;
        memcpy(p, hdr, (size_t)hl);
        memset(p + hl, fill, (size_t)payload);
        memcpy(p + hl + payload, "\r\n", 2);
    }
    *len = one * (size_t)nreq;
    return batch;
}

/* A client that pipelines requests and never reads the replies is
 * disconnected once more than max_output_bytes_per_client is queued for it;
 * another client keeps being served meanwhile. */
START_TEST(t_output_limit)
{
    enum { PAYLOAD = 8000, BATCH = 16 };
    const size_t cap_total = 64u << 20;   /* give up after 64 MB of requests */
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "max_output_bytes_per_client = 65536\n");
    int other = h_connect(d.port);
    int slow = raw_connect(d.port, 4096);
    ck_assert(fcntl(slow, F_SETFL, O_NONBLOCK) == 0);

    size_t blen;
    char *batch = echo_batch(PAYLOAD, BATCH, 'z', &blen);

    size_t sent = 0;
    int rc = 0, err = 0, n = 0;
    while (sent < cap_total) {
        rc = h_send(slow, batch, blen);
        if (rc != 0) {
            err = errno;
            break;
        }
        sent += blen;
        if (++n % 32 == 0)
            ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    }
    ck_assert_msg(rc != 0, "daemon took %zu MB of requests from a client that reads nothing "
                  "(max_output_bytes_per_client = 65536) without disconnecting it", sent >> 20);
    ck_assert_msg(err == EPIPE || err == ECONNRESET,
                  "sending stopped after %zu bytes with %s, not a disconnect", sent, strerror(err));
    ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    close(slow);
    free(batch);
}
END_TEST

/* A client that does read, but far slower than it asks (4 KB per 128 KB of
 * requests), is disconnected as well once its queued replies pass
 * max_output_bytes_per_client. */
START_TEST(t_output_limit_slow_reader)
{
    enum { PAYLOAD = 8000, BATCH = 16 };
    const size_t cap_total = 64u << 20;
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "max_output_bytes_per_client = 65536\n");
    int other = h_connect(d.port);
    int slow = raw_connect(d.port, 4096);
    ck_assert(fcntl(slow, F_SETFL, O_NONBLOCK) == 0);

    size_t blen;
    char *batch = echo_batch(PAYLOAD, BATCH, 'y', &blen);

    size_t sent = 0, got = 0;
    int closed = 0, n = 0;
    while (!closed && sent < cap_total) {
        char buf[4096];
        if (h_send(slow, batch, blen) != 0) {
            ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "send failed with %s", strerror(errno));
            closed = 1;
            break;
        }
        sent += blen;
        ssize_t r = read(slow, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            closed = 1;
        else if (r > 0)
            got += (size_t)r;
        if (++n % 32 == 0)
            ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    }
    ck_assert_msg(closed, "slow reader not disconnected after %zu MB of requests (it read %zu KB)",
                  sent >> 20, got >> 10);
    ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    close(slow);
    free(batch);
}
END_TEST

/* More requests in flight than max_inflight_per_client: the daemon pauses
 * reading and resumes, every reply still comes, in order. */
/* _i == 1: the client half-closes (shutdown SHUT_WR) after sending. */
START_TEST(t_inflight_limit_order)
{
    enum { N = 300 };
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "max_inflight_per_client = 4\n");
    int fd = h_connect(d.port);

    size_t cap = 80 * N, len = 0;
    char *buf = malloc(cap);
    ck_assert(buf != NULL);
    for (int i = 0; i < N; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "product:k%d", i);
        if (i % 2)
            len += (size_t)snprintf(buf + len, cap - len, "ECHO e%d\r\n", i);
        else
            len += (size_t)snprintf(buf + len, cap - len, "*2\r\n$3\r\nTTL\r\n$%d\r\n%s\r\n", kl, key);
    }
    ck_assert_int_eq(h_send(fd, buf, len), 0);
    if (_i == 1)
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    for (int i = 0; i < N; i++) {
        char want[32], e[16];
        if (i % 2) {
            snprintf(e, sizeof e, "e%d", i);
            snprintf(want, sizeof want, "$%zu\r\n%s\r\n", strlen(e), e);
        } else {
            snprintf(want, sizeof want, ":-2\r\n");
        }
        char *r = h_read_reply(fd, H_DEFAULT);
        ck_assert_msg(r && strcmp(r, want) == 0, "reply %d: expected %s, got %s", i, h_repr(want), h_repr(r));
        free(r);
    }
    if (_i == 1) {
        /* Half-closed after sending: every request is still answered
         * (those held back by the limit too), then the daemon closes. */
        ck_assert_int_eq(h_is_closed(fd, 5000), 1);
    } else {
        ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    }
    free(buf);
}
END_TEST

/* max_inflight_per_client = 2 with slow fills: at most two of a client's
 * pipelined misses run at a time, and all are answered in order. */
START_TEST(t_inflight_limit_pauses_reading)
{
    enum { N = 6, LAT = 400 };
    struct h_upstream up;
    struct h_daemon d;
    start_redis();
    h_upstream_start(&up, LAT, 10);
    h_daemon_init(&d);
    h_daemon_start(&d, "%s", conf_text(d.port, "max_inflight_per_client = 2\n", up.port, ""));
    wait_cache_ready(d.port, NULL);
    int fd = h_connect(d.port);

    char buf[2048];
    size_t len = 0;
    for (int i = 1; i <= N; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "HGETALL product:p-%03d\r\nECHO e%d\r\n", i, i);
    long long t0 = h_now_ms();
    ck_assert_int_eq(h_send(fd, buf, len), 0);
    h_msleep(150);
    long count = h_upstream_count(&up);
    long long at = h_now_ms() - t0;
    if (at < LAT) /* no fill can have finished yet, so no third one started */
        ck_assert_msg(count <= 2, "%ld upstream fetches running after %lld ms with max_inflight 2",
                      count, at);
    for (int i = 1; i <= N; i++) {
        char name[32], e[32];
        snprintf(name, sizeof name, "Product %d", i);
        char *r = h_read_reply(fd, H_DEFAULT);
        ck_assert_msg(r && r[0] == '*' && strstr(r, name), "HGETALL %d: got %s", i, h_repr(r));
        free(r);
        snprintf(e, sizeof e, "$%d\r\ne%d\r\n", i < 10 ? 2 : 3, i);
        ASSERT_RAW(h_read_reply(fd, H_DEFAULT), e);
    }
    long long took = h_now_ms() - t0;
    ck_assert_msg(took >= 3 * LAT - 200, "6 fills of %d ms with max_inflight 2 took only %lld ms", LAT, took);
    ck_assert_int_eq(h_upstream_count(&up), N);
}
END_TEST

/* ------------------------------------------------------------- reload -- */

/* SIGHUP with a valid file: the new requirepass and a new namespace apply to
 * new connections; an existing connection stays open and sees the new
 * namespace; a changed listen address is logged as needing a restart. */
START_TEST(t_reload_good)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int old = h_connect(d.port);
    ASSERT_RAW(h_cmd(old, "TTL", "extra:1", NULL), "-ERR unknown namespace 'extra'\r\n");

    long off = h_log_size(d.log);
    char server[128];
    snprintf(server, sizeof server, "requirepass = newpass\n");
    char conf[8192];
    snprintf(conf, sizeof conf, "%s", conf_text(d.port, server, 1,
                                                "[namespace:extra]\nupstream = http://127.0.0.1:1/x/{id}\n"));
    h_daemon_rewrite_conf(&d, "%s", conf);
    h_kill(d.pid, SIGHUP);
    ck_assert_msg(h_wait_log_after(d.log, off, "reload: configuration applied", 5000) == 0,
                  "no reload in the log:\n%s", h_log_tail(d.log));

    int neu = h_connect(d.port);
    ASSERT_PREFIX(h_cmd(neu, "TTL", "product:1", NULL), "-NOAUTH");
    ASSERT_RAW(h_cmd(neu, "AUTH", "newpass", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(neu, "TTL", "extra:1", NULL), ":-2\r\n");

    ASSERT_RAW(h_cmd(old, "PING", NULL), "+PONG\r\n");
    ASSERT_RAW(h_cmd(old, "TTL", "extra:1", NULL), ":-2\r\n");

    /* A new listen address needs a restart: logged, old listener kept. */
    off = h_log_size(d.log);
    int other_port = h_free_port();
    snprintf(conf, sizeof conf, "%s", conf_text(other_port, server, 1, ""));
    h_daemon_rewrite_conf(&d, "%s", conf);
    h_kill(d.pid, SIGHUP);
    ck_assert_msg(h_wait_log_after(d.log, off, "reload: configuration applied", 5000) == 0,
                  "no reload in the log:\n%s", h_log_tail(d.log));
    ck_assert_msg(h_wait_log_after(d.log, off, "listen", 0) == 0 &&
                  h_wait_log_after(d.log, off, "restart", 0) == 0,
                  "changed listen not logged as needing a restart:\n%s", h_log_tail(d.log));
    ASSERT_RAW(h_cmd(old, "PING", NULL), "+PONG\r\n");
    int third = h_connect(d.port);
    ASSERT_RAW(h_cmd(third, "AUTH", "newpass", NULL), "+OK\r\n");
    ASSERT_RAW(h_cmd(third, "TTL", "extra:1", NULL), "-ERR unknown namespace 'extra'\r\n");
}
END_TEST

/* SIGHUP with an invalid file: FILE:LINE in the log, the daemon keeps
 * running with the old configuration. */
START_TEST(t_reload_bad)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int old = h_connect(d.port);
    ASSERT_RAW(h_inline(old, "PING"), "+PONG\r\n");

    long off = h_log_size(d.log);
    /* Line 5 is bad; line 4 would require AUTH if it were applied. */
    h_daemon_rewrite_conf(&d,
                          "[server]\n"
                          "listen = 127.0.0.1:%d\n"
                          "admin_listen =\n"
                          "requirepass = sneaky\n"
                          "max_clients = lots\n"
                          "[redis]\n"
                          "port = %d\n"
                          "[namespace:extra]\n"
                          "upstream = http://127.0.0.1:1/x/{id}\n",
                          d.port, g_redis.port);
    h_kill(d.pid, SIGHUP);
    char needle[PATH_MAX + 16];
    snprintf(needle, sizeof needle, "%s:5: ", d.conf);
    ck_assert_msg(h_wait_log_after(d.log, off, needle, 5000) == 0, "no '%s' in the log:\n%s", needle,
                  h_log_tail(d.log));
    /* Still alive, old configuration in force for old and new clients. */
    ck_assert_int_eq(h_wait_exit(d.pid, 200, NULL), -1);
    ASSERT_RAW(h_inline(old, "PING"), "+PONG\r\n");
    ASSERT_RAW(h_cmd(old, "TTL", "product:1", NULL), ":-2\r\n");
    int neu = h_connect(d.port);
    ASSERT_RAW(h_cmd(neu, "TTL", "product:1", NULL), ":-2\r\n");
    ASSERT_RAW(h_cmd(neu, "TTL", "extra:1", NULL), "-ERR unknown namespace 'extra'\r\n");
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* ------------------------------------------------------------ signals -- */

/* SIGTERM with an idle client connected: exit 0 promptly. */
START_TEST(t_sigterm_exit0)
{
    struct h_daemon d;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    ck_assert_int_eq(h_daemon_stop(&d), 0);
    ck_assert(h_is_closed(fd, 1000));
}
END_TEST

/* SIGINT like SIGTERM: exit 0. */
START_TEST(t_sigint_exit0)
{
    struct h_daemon d;
    int st;
    h_daemon_init(&d);
    start_daemon(&d, "");
    int fd = h_connect(d.port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    h_kill(d.pid, SIGINT);
    ck_assert_int_eq(h_wait_exit(d.pid, 5000, &st), 0);
    d.pid = 0;
    ck_assert_int_eq(h_exit_code(st), 0);
}
END_TEST

/* SIGTERM while a request waits on a slow upstream: the request is still
 * answered, new clients are not served, exit 0. */
START_TEST(t_shutdown_finishes_inflight)
{
    struct h_upstream up;
    struct h_daemon d;
    int st;
    start_redis();
    h_upstream_start(&up, 1500, 10);
    h_daemon_init(&d);
    h_daemon_start(&d, "%s", conf_text(d.port, "", up.port,
                                       "[cache]\nupstream_timeout_ms = 5000\nlock_ttl_ms = 6000\n"));
    wait_cache_ready(d.port, NULL);
    int fd = h_connect(d.port);
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:p-001", NULL), 0);
    long long dl = h_now_ms() + 3000;
    while (h_upstream_count(&up) < 1 && h_now_ms() < dl)
        h_msleep(10);
    ck_assert_int_eq(h_upstream_count(&up), 1);

    long off = h_log_size(d.log);
    h_kill(d.pid, SIGTERM);
    ck_assert_int_eq(h_wait_log_after(d.log, off, "SIGTERM", 3000), 0);
    /* The listeners are closed at once: a new client is refused. */
    int late = h_try_connect(d.port, 200);
    ck_assert_msg(late < 0, "a new client was accepted during the shutdown");
    char *r = h_read_reply(fd, 5000);
    ck_assert_msg(r && r[0] == '*' && strstr(r, "Product 1"), "in-flight request got %s", h_repr(r));
    free(r);
    ck_assert_int_eq(h_wait_exit(d.pid, 5000, &st), 0);
    d.pid = 0;
    ck_assert_int_eq(h_exit_code(st), 0);
    ck_assert_int_lt(h_try_connect(d.port, 300), 0);
}
END_TEST

/* shutdown_grace_ms bounds the wait for in-flight requests. */
START_TEST(t_shutdown_grace_bounded)
{
    struct h_upstream up;
    struct h_daemon d;
    int st;
    start_redis();
    h_upstream_start(&up, 20000, 10);
    h_daemon_init(&d);
    h_daemon_start(&d, "%s", conf_text(d.port, "shutdown_grace_ms = 300\n", up.port,
                                       "[cache]\nupstream_timeout_ms = 30000\nlock_ttl_ms = 31000\n"));
    wait_cache_ready(d.port, NULL);
    int fd = h_connect(d.port);
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:p-001", NULL), 0);
    long long dl = h_now_ms() + 3000;
    while (h_upstream_count(&up) < 1 && h_now_ms() < dl)
        h_msleep(10);
    h_kill(d.pid, SIGTERM);
    ck_assert_msg(h_wait_exit(d.pid, 4000, &st) == 0, "daemon still running 4 s after SIGTERM "
                  "with shutdown_grace_ms = 300");
    d.pid = 0;
    ck_assert_int_eq(h_exit_code(st), 0);
    ck_assert(h_is_closed(fd, 1000));
}
END_TEST

/* sd_notify: READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP,
 * STOPPING=1 on SIGTERM. */
static void notify_expect(int sock, const char *want)
{
    char buf[256];
    struct pollfd p = { sock, POLLIN, 0 };
    ck_assert_msg(poll(&p, 1, 5000) == 1, "no notify datagram (waiting for %s)", want);
    ssize_t n = recv(sock, buf, sizeof buf - 1, 0);
    ck_assert(n >= 0);
    buf[n] = '\0';
    ck_assert_msg(strcmp(buf, want) == 0, "notify: expected %s, got %s", want, h_repr(buf));
}

START_TEST(t_sd_notify)
{
    struct h_daemon d;
    char *path = strdup(h_path("notify.sock"));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert(sock >= 0 && strlen(path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert(bind(sock, (struct sockaddr *)&sa, sizeof sa) == 0);

    char env0[PATH_MAX + 32];
    snprintf(env0, sizeof env0, "NOTIFY_SOCKET=%s", path);
    const char *env[] = { env0, NULL };
    start_redis();
    h_daemon_init(&d);
    h_daemon_start_env(&d, env, "%s", conf_text(d.port, "", 1, ""));
    notify_expect(sock, "READY=1");

    h_kill(d.pid, SIGHUP);
    notify_expect(sock, "RELOADING=1");
    notify_expect(sock, "READY=1");
    int fd = h_connect(d.port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");

    h_kill(d.pid, SIGTERM);
    notify_expect(sock, "STOPPING=1");
    int st;
    ck_assert_int_eq(h_wait_exit(d.pid, 5000, &st), 0);
    d.pid = 0;
    ck_assert_int_eq(h_exit_code(st), 0);
    close(sock);
    free(path);
}
END_TEST

/* ------------------------------------------------------- command line -- */

/* -t: exit 0 for a valid file, 1 with FILE:LINE: on stderr for a bad one. */
START_TEST(t_cli_check_config)
{
    char *good = strdup(h_path("good.ini")), *bad = strdup(h_path("bad.ini"));
    char *out = strdup(h_path("cli.out")), *err = strdup(h_path("cli.err"));
    memset(&g_redis, 0, sizeof g_redis);
    g_redis.port = 6379; /* only checked, never contacted */
    const char *text = conf_text(7379, "", 8080, "");
    h_write_file(good, text, strlen(text));
    const char *badtext = "[server]\nlisten = 127.0.0.1:7379\n\n; comment\nmax_clients = 0\n"
                          "[namespace:product]\nupstream = http://127.0.0.1:8080/p/{id}\n";
    h_write_file(bad, badtext, strlen(badtext));

    const char *a1[] = { h_daemon_bin(), "-t", "-c", good, NULL };
    ck_assert_int_eq(run_prog(a1, out, err), 0);

    const char *a2[] = { h_daemon_bin(), "-t", "-c", bad, NULL };
    ck_assert_int_eq(run_prog(a2, out, err), 1);
    char *s = slurp(err), needle[PATH_MAX + 8];
    snprintf(needle, sizeof needle, "%s:5: ", bad);
    ck_assert_msg(strstr(s, needle) != NULL, "stderr of -t on a bad file lacks '%s': %s", needle, h_repr(s));
    free(s);

    /* A namespace without an upstream is rejected too. */
    const char *noup = "[server]\nlisten = 127.0.0.1:7379\n[namespace:product]\nformat = raw\n";
    h_write_file(bad, noup, strlen(noup));
    ck_assert_int_eq(run_prog(a2, out, err), 1);
    s = slurp(err);
    snprintf(needle, sizeof needle, "%s:", bad);
    ck_assert_msg(strstr(s, needle) != NULL, "stderr: %s", h_repr(s));
    free(s);

    /* Missing file: exit 1 too. */
    const char *a3[] = { h_daemon_bin(), "-t", "-c", h_path("does-not-exist.ini"), NULL };
    ck_assert_int_eq(run_prog(a3, out, err), 1);
    free(good), free(bad), free(out), free(err);
}
END_TEST

/* -V prints a version, -h a usage; unknown options and stray arguments fail. */
START_TEST(t_cli_options)
{
    char *out = strdup(h_path("cli.out")), *err = strdup(h_path("cli.err"));
    char *s;

    const char *v[] = { h_daemon_bin(), "-V", NULL };
    ck_assert_int_eq(run_prog(v, out, err), 0);
    s = slurp(out);
    ck_assert_msg(strncmp(s, "cachasided ", 11) == 0 && strpbrk(s, "0123456789"), "-V printed %s", h_repr(s));
    free(s);

    const char *h[] = { h_daemon_bin(), "-h", NULL };
    ck_assert_int_eq(run_prog(h, out, err), 0);
    s = slurp(out);
    ck_assert_msg(strstr(s, "-c FILE") && strstr(s, "-t") && strstr(s, "-l"), "-h printed %s", h_repr(s));
    free(s);

    const char *z[] = { h_daemon_bin(), "-Z", NULL };
    ck_assert_int_ne(run_prog(z, out, err), 0);
    s = slurp(err);
    ck_assert_msg(*s, "nothing on stderr for an unknown option");
    free(s);

    const char *stray[] = { h_daemon_bin(), "-c", h_path("x.ini"), "extra", NULL };
    ck_assert_int_ne(run_prog(stray, out, err), 0);

    const char *badlevel[] = { h_daemon_bin(), "-l", "loud", "-t", "-c", h_path("x.ini"), NULL };
    ck_assert_int_ne(run_prog(badlevel, out, err), 0);
    free(out), free(err);
}
END_TEST

/* The long options (getopt_long): --help on stdout with exit 0, --version,
 * --config/--test/--log-level as -c/-t/-l; an unknown one prints the usage
 * on stderr and exits 1. */
START_TEST(t_cli_long_options)
{
    char *out = strdup(h_path("long.out")), *err = strdup(h_path("long.err"));
    char *conf = strdup(h_path("long.ini"));
    const char *text = "[namespace:product]\nupstream = http://127.0.0.1:9/p/{id}\n";
    char *s;

    h_write_file(conf, text, strlen(text));
    const char *v[] = { h_daemon_bin(), "--version", NULL };
    ck_assert_int_eq(run_prog(v, out, err), 0);
    s = slurp(out);
    ck_assert_msg(strncmp(s, "cachasided ", 11) == 0 && strpbrk(s, "0123456789"), "--version printed %s", h_repr(s));
    free(s);

    const char *h[] = { h_daemon_bin(), "--help", NULL };
    ck_assert_int_eq(run_prog(h, out, err), 0);
    s = slurp(out);
    ck_assert_msg(strstr(s, "Usage: cachasided") && strstr(s, "--config") && strstr(s, "--log-level"),
                  "--help printed %s", h_repr(s));
    free(s);
    s = slurp(err);
    ck_assert_msg(!*s, "--help wrote on stderr: %s", h_repr(s));
    free(s);

    const char *t[] = { h_daemon_bin(), "--test", "--config", conf, "--log-level", "debug", NULL };
    ck_assert_int_eq(run_prog(t, out, err), 0);
    s = slurp(out);
    ck_assert_msg(strstr(s, "configuration is valid"), "--test printed %s", h_repr(s));
    free(s);

    const char *eq[] = { h_daemon_bin(), "--test", "--config=/nonexistent/x.ini", NULL };
    ck_assert_int_eq(run_prog(eq, out, err), 1);

    const char *z[] = { h_daemon_bin(), "--frobnicate", NULL };
    ck_assert_int_eq(run_prog(z, out, err), 1);
    s = slurp(err);
    ck_assert_msg(strstr(s, "--frobnicate") && strstr(s, "Usage: cachasided"), "stderr: %s", h_repr(s));
    free(s);
    s = slurp(out);
    ck_assert_msg(!*s, "an unknown option printed on stdout: %s", h_repr(s));
    free(s);

    const char *bad[] = { h_daemon_bin(), "--log-level=loud", "-t", "-c", conf, NULL };
    ck_assert_int_eq(run_prog(bad, out, err), 1);
    s = slurp(err);
    ck_assert_msg(strstr(s, "unknown level 'loud'"), "stderr: %s", h_repr(s));
    free(s);
    free(out), free(err), free(conf);
}
END_TEST

/* -l debug overrides log_level from the file. */
START_TEST(t_cli_log_level)
{
    start_redis();
    int port = h_free_port();
    char *conf = strdup(h_path("level.ini")), *log = strdup(h_path("level.log"));
    const char *text = conf_text(port, "log_level = error\n", 1, "");
    h_write_file(conf, text, strlen(text));

    /* Without -l: no debug lines for a client's PING. */
    const char *a1[] = { h_daemon_bin(), "-c", conf, NULL };
    pid_t pid = h_spawn(a1, log);
    ck_assert_int_eq(h_wait_port(port, H_DEFAULT), 0);
    int fd = h_connect(port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    h_close(fd);
    ck_assert_int_eq(h_stop(pid, H_STOP_TIMEOUT_MS), 0);
    ck_assert_msg(!h_log_contains(log, " debug "), "debug line at log_level = error:\n%s", h_log_tail(log));

    long off = h_log_size(log);
    const char *a2[] = { h_daemon_bin(), "-l", "debug", "-c", conf, NULL };
    pid = h_spawn(a2, log);
    ck_assert_int_eq(h_wait_port(port, H_DEFAULT), 0);
    fd = h_connect(port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    ck_assert_msg(h_wait_log_after(log, off, " debug ", 3000) == 0, "no debug line with -l debug:\n%s",
                  h_log_tail(log));
    ck_assert_int_eq(h_stop(pid, H_STOP_TIMEOUT_MS), 0);
    free(conf), free(log);
}
END_TEST

/* A TCP listener that cannot bind: exit code 2. */
START_TEST(t_bind_failure_exit2)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof sa;
    int held = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), st = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(held >= 0);
    ck_assert(bind(held, (struct sockaddr *)&sa, sizeof sa) == 0);
    ck_assert(listen(held, 8) == 0);
    ck_assert(getsockname(held, (struct sockaddr *)&sa, &sl) == 0);
    int taken = ntohs(sa.sin_port);

    start_redis();
    struct h_daemon d;
    h_daemon_init(&d); /* d.port: where the harness looks; nothing will listen */
    ck_assert_int_eq(h_daemon_try_start(&d, 5000, &st, "%s", conf_text(taken, "", 1, "")), -1);
    ck_assert_msg(st == 2, "exit status %d for a listener that cannot bind; log:\n%s", st, h_log_tail(d.log));
    close(held);
}
END_TEST

/* A unix socket another process listens on: exit 2, the socket untouched. */
START_TEST(t_unix_socket_busy_exit2)
{
    char *path = strdup(h_path("busy.sock"));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int held = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), st = 0;
    ck_assert(held >= 0 && strlen(path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert(bind(held, (struct sockaddr *)&sa, sizeof sa) == 0);
    ck_assert(listen(held, 8) == 0);

    start_redis();
    struct h_daemon d;
    h_daemon_init(&d);
    char extra[PATH_MAX + 32];
    snprintf(extra, sizeof extra, "unix_socket = %s\n", path);
    ck_assert_int_eq(h_daemon_try_start(&d, 5000, &st, "%s", conf_text(0, extra, 1, "")), -1);
    ck_assert_msg(st == 2, "exit status %d; log:\n%s", st, h_log_tail(d.log));
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0, "the other process's socket was removed");
    close(held);
    free(path);
}
END_TEST

/* unix_socket with unix_socket_mode: the file has that mode, PING works over
 * it, a stale socket file is replaced, the file is removed at exit. */
START_TEST(t_unix_socket)
{
    char *path = strdup(h_path("cs.sock"));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(stale >= 0 && strlen(path) < sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert(bind(stale, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(stale); /* leaves a socket file nobody listens on, as after a crash */

    struct h_daemon d;
    h_daemon_init(&d);
    char extra[PATH_MAX + 64];
    snprintf(extra, sizeof extra, "unix_socket = %s\nunix_socket_mode = 0600\n", path);
    start_daemon(&d, extra);

    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISSOCK(sb.st_mode));
    ck_assert_msg((sb.st_mode & 07777) == 0600, "mode %04o", (unsigned)(sb.st_mode & 07777));
    int fd = h_connect_unix(path);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    ASSERT_RAW(h_cmd(fd, "ECHO", "over unix", NULL), "$9\r\nover unix\r\n");
    if (have_prog("redis-cli")) {
        char *out = strdup(h_path("redis-cli-unix.out"));
        const char *a[] = { "redis-cli", "-s", path, "PING", NULL };
        ck_assert_int_eq(run_prog(a, out, NULL), 0);
        char *s = slurp(out);
        ck_assert_msg(strcmp(s, "PONG\n") == 0, "redis-cli -s PING printed %s", h_repr(s));
        free(s);
        free(out);
    }
    h_close(fd);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
    ck_assert_msg(access(path, F_OK) != 0, "unix socket file left behind after exit");
    free(path);
}
END_TEST

/* ---------------------------------------------------------------- main -- */

static TCase *tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, NULL, h_cleanup);
    tcase_set_timeout(tc, 30);
    return tc;
}

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc;

    tc = tcase("protocol");
    tcase_add_test(tc, t_ping_forms);
    tcase_add_test(tc, t_pipelining);
    tcase_add_test(tc, t_unknown_command_and_arity);
    tcase_add_test(tc, t_protocol_errors);
    tcase_add_test(tc, t_compat_commands);
    tcase_add_test(tc, t_redis_cli);
    suite_add_tcase(s, tc);

    tc = tcase("auth");
    tcase_add_test(tc, t_auth);
    tcase_add_test(tc, t_auth_ping_needs_auth);
    suite_add_tcase(s, tc);

    tc = tcase("limits");
    tcase_add_test(tc, t_max_clients);
    tcase_add_test(tc, t_half_sent_requests);
    tcase_add_test(tc, t_idle_timeout);
    tcase_add_test(tc, t_output_limit);
    tcase_add_test(tc, t_output_limit_slow_reader);
    tcase_add_loop_test(tc, t_inflight_limit_order, 0, 2);   /* 1: client half-closes */
    tcase_add_test(tc, t_inflight_limit_pauses_reading);
    suite_add_tcase(s, tc);

    tc = tcase("reload");
    tcase_add_test(tc, t_reload_good);
    tcase_add_test(tc, t_reload_bad);
    suite_add_tcase(s, tc);

    tc = tcase("signals");
    tcase_add_test(tc, t_sigterm_exit0);
    tcase_add_test(tc, t_sigint_exit0);
    tcase_add_test(tc, t_shutdown_finishes_inflight);
    tcase_add_test(tc, t_shutdown_grace_bounded);
    tcase_add_test(tc, t_sd_notify);
    suite_add_tcase(s, tc);

    tc = tcase("cli");
    tcase_add_test(tc, t_cli_check_config);
    tcase_add_test(tc, t_cli_options);
    tcase_add_test(tc, t_cli_long_options);
    tcase_add_test(tc, t_cli_log_level);
    tcase_add_test(tc, t_bind_failure_exit2);
    tcase_add_test(tc, t_unix_socket_busy_exit2);
    tcase_add_test(tc, t_unix_socket);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    h_tmpdir(); /* owned by the runner: removed at exit even if tests fail */
    SRunner *sr = srunner_create(server_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
