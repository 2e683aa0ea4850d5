/* SPDX-License-Identifier: BSD-3-Clause */
/* test_input.c - integration tests of what one client can cost the daemon
 * (issue 9, items 1-4): parsing stays linear in the bytes however they are
 * split, a client before AUTH is held to small requests, a small request
 * cannot make a large reply (repeated fields and keys are read once, a reply
 * over max_output_bytes_per_client is refused before it is built), queued
 * replies count in the output limit, and an idle client holds almost nothing.
 * Costs are read from /proc/<daemon>/stat and /proc/<daemon>/status and
 * printed; the bounds asserted are generous (the machine is shared), and
 * each is far below what the daemon cost before these limits existed. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Memory bounds are for a plain build; under ASan (this test is built like
 * the daemon) redzones and the quarantine of freed blocks add to the RSS. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_SLACK 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_SLACK 4
#endif
#endif
#ifndef MEM_SLACK
#define MEM_SLACK 1
#endif

struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
};

/* Redis, the example upstream (latency_ms per fetch) and a daemon with a
 * hash namespace "product" and a raw namespace "page"; server_extra goes
 * into [server]. Waits until the daemon has Redis. */
static void env_up(struct env *e, int latency_ms, const char *server_extra)
{
    memset(e, 0, sizeof(*e));
    h_redis_start(&e->redis);
    h_upstream_start(&e->up, latency_ms, 10);
    h_daemon_init(&e->d);
    h_daemon_start(&e->d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n%s"
                   "[redis]\nport = %d\ncommand_timeout_ms = 5000\n"
                   "[cache]\nttl_s = 600\nupstream_timeout_ms = 4000\nlock_ttl_ms = 5000\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
                   "[namespace:page]\nupstream = http://127.0.0.1:%d/pages/{id}\nformat = raw\n",
                   e->d.port, server_extra ? server_extra : "", e->redis.port, e->up.port, e->up.port);
    ck_assert_msg(h_wait_log(e->d.log, "redis: connected", H_TIMEOUT_MS) == 0, "no Redis: %s",
                  h_log_tail(e->d.log));
    ck_assert_msg(h_wait_log(e->d.log, "subscribed to cache:fills", H_TIMEOUT_MS) == 0, "no subscription: %s",
                  h_log_tail(e->d.log));
}

/* The daemon exits cleanly (under the sanitizers: no leak, no error). */
static void env_down(struct env *e)
{
    int st = h_daemon_stop(&e->d);

    ck_assert_msg(st == 0, "daemon exit status %d: %s", st, h_log_tail(e->d.log));
}

/* CPU seconds (user + system) the process has used. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    FILE *f;
    char *p;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    p = strrchr(buf, ')');      /* the command name may hold spaces */
    ck_assert(p != NULL);
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmRSS"/"VmHWM" line of /proc/<pid>/status, in KiB. */
static long proc_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    size_t nl = strlen(name);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, nl) == 0 && line[nl] == ':')
            kb = atol(line + nl + 1);
    fclose(f);
    ck_assert_msg(kb >= 0, "no %s in %s", name, path);
    return kb;
}

/* Resets the peak (VmHWM) to the current RSS, so a test reads its own peak. */
static void proc_reset_peak(pid_t pid)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    fd = open(path, O_WRONLY);
    ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
    ck_assert(write(fd, "5", 1) == 1);
    close(fd);
}

static void sleep_us(long us)
{
    struct timespec ts = { 0, us * 1000 };

    nanosleep(&ts, NULL);
}

#define ASSERT_RAW(expr, expected)                                                                 \
    do {                                                                                           \
        char *r_ = (expr);                                                                         \
        const char *e_ = (expected);                                                               \
        ck_assert_msg(r_ != NULL && strcmp(r_, e_) == 0, "expected %s, got %s", h_repr(e_), h_repr(r_)); \
        free(r_);                                                                                  \
    } while (0)

#define ASSERT_PREFIX(expr, prefix)                                                                \
    do {                                                                                           \
        char *r_ = (expr);                                                                         \
        const char *p_ = (prefix);                                                                 \
        ck_assert_msg(r_ != NULL && strncmp(r_, p_, strlen(p_)) == 0, "expected %s..., got %s",     \
                      h_repr(p_), h_repr(r_));                                                     \
        free(r_);                                                                                  \
    } while (0)

/* A growable byte string for building requests. */
struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 4096;
        b->p = realloc(b->p, b->cap);
        ck_assert(b->p != NULL);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) H_PRINTF(2, 3);
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < sizeof tmp);
    buf_add(b, tmp, (size_t)n);
}

static void buf_bulk(struct buf *b, const char *p, size_t n)
{
    buf_printf(b, "$%zu\r\n", n);
    buf_add(b, p, n);
    buf_add(b, "\r\n", 2);
}

/* ------------------------------------------------ 1. linear parsing ---- */

/* Sends data in pieces of `piece` bytes (the first `first` bytes in one),
 * one send each, a little apart, as a slow or hostile client sends.
 * Returns the number of sends. */
static int trickle(int fd, const char *data, size_t len, size_t first, size_t piece)
{
    size_t pos = 0;
    int sends = 0;

    while (pos < len) {
        size_t n = pos == 0 ? first : piece;
        if (n > len - pos)
            n = len - pos;
        ck_assert_int_eq(h_send(fd, data + pos, n), 0);
        pos += n;
        sends++;
        sleep_us(20);
    }
    return sends;
}

/* A PING request trickled in small pieces: the daemon's CPU for it, beyond
 * what as many pieces of empty lines cost it (the wake-ups and reads
 * themselves), must be small. Before the parser kept its progress it
 * re-parsed the request from its first byte on every read: 30 000 one-byte
 * arguments one per packet cost 2.7 s of CPU, a 4 MB request in 256-byte
 * pieces several seconds. _i = 0: 30 000 one-byte arguments, one per send;
 * _i = 1: 4 MB of 250-byte arguments in 256-byte sends. */
START_TEST(t_trickle_cpu)
{
    struct env e;
    struct buf req = { 0 }, want = { 0 };
    int nargs = _i == 0 ? 30000 : 15800;
    size_t arglen = _i == 0 ? 1 : 250, piece = _i == 0 ? 7 : 256, hdr;
    char *arg = malloc(arglen), *blank;
    long long t0;
    double cpu0, cpu, base;
    int fd, sends;

    ck_assert(arg != NULL);
    memset(arg, 'x', arglen);
    env_up(&e, 0, NULL);
    buf_printf(&req, "*%d\r\n$4\r\nPING\r\n", nargs + 1);
    hdr = req.len;
    for (int i = 0; i < nargs; i++)
        buf_bulk(&req, arg, arglen);
    buf_bulk(&want, arg, arglen);
    fd = h_connect(e.d.port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    /* the same number of pieces of empty lines (ignored, no reply) */
    blank = malloc(req.len);
    ck_assert(blank != NULL);
    for (size_t i = 0; i < req.len; i++)
        blank[i] = i % 2 ? '\n' : '\r';
    cpu0 = proc_cpu_s(e.d.pid);
    (void)trickle(fd, blank, req.len, hdr + piece - (hdr + piece) % 2, piece - piece % 2);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    base = proc_cpu_s(e.d.pid) - cpu0;
    free(blank);
    /* the request: the header with the first piece, then piece by piece */
    cpu0 = proc_cpu_s(e.d.pid);
    t0 = h_now_ms();
    sends = trickle(fd, req.p, req.len, hdr + piece, piece);
    ASSERT_RAW(h_read_reply(fd, 20000), want.p);
    cpu = proc_cpu_s(e.d.pid) - cpu0;
    printf("trickle %s: %zu bytes in %d sends over %lld ms: daemon CPU %.3f s (as many pieces of empty "
           "lines: %.3f s)\n",
           _i == 0 ? "30000 one-byte arguments" : "4 MB in 256-byte pieces", req.len, sends,
           h_now_ms() - t0, cpu, base);
    fflush(stdout);
    ck_assert_msg(cpu - base < 0.5, "the daemon used %.2f s of CPU (%.2f s more than for as many empty "
                  "lines) to parse one %zu-byte request sent in %d pieces", cpu, cpu - base, req.len, sends);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    free(req.p);
    free(want.p);
    free(arg);
    env_down(&e);
}
END_TEST

/* ------------------------------------------------ 2. before AUTH ------- */

/* With requirepass, a client that has not authenticated is held to 10
 * arguments, 4096-byte arguments and lines and 16 KiB per request: beyond
 * that, -ERR protocol error and the connection is closed (before, such a
 * client could send 4 MB frames with hundreds of thousands of arguments and
 * got -NOAUTH only once the daemon had parsed them). AUTH and HELLO ... AUTH
 * fit; after AUTH the ordinary limits apply. */
START_TEST(t_before_auth_limits)
{
    struct env e;
    struct buf big = { 0 }, many = { 0 }, longarg = { 0 }, wide = { 0 };
    char line[5000], *pad = malloc(4000);

    ck_assert(pad != NULL);
    memset(pad, 'p', 4000);
    env_up(&e, 0, "requirepass = s3cret\n");
    buf_printf(&many, "*11\r\n$4\r\nPING\r\n");
    for (int i = 0; i < 10; i++)
        buf_bulk(&many, "a", 1);
    buf_printf(&longarg, "*2\r\n$4\r\nAUTH\r\n$5000\r\n");
    buf_printf(&wide, "*6\r\n$4\r\nPING\r\n");
    for (int i = 0; i < 5; i++)
        buf_bulk(&wide, pad, 4000);
    buf_printf(&big, "*60000\r\n$4\r\nPING\r\n");
    for (int i = 1; i < 60000; i++)
        buf_bulk(&big, "z", 1);
    memset(line, 'a', sizeof line - 3);
    memcpy(line + sizeof line - 3, "\r\n", 3);

    struct {
        const char *name;
        const char *data;
        size_t len;
    } cases[] = {
        { "11 arguments", many.p, many.len },
        { "a 5000-byte argument", longarg.p, longarg.len },
        { "a 20 KB request of 4000-byte arguments", wide.p, wide.len },
        { "a 5000-byte inline line", line, strlen(line) },
        { "420 KB of 60000 arguments", big.p, big.len },
    };
    int other = h_connect(e.d.port);
    ASSERT_RAW(h_cmd(other, "AUTH", "s3cret", NULL), "+OK\r\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = h_connect(e.d.port);
        char *r;
        (void)h_send(fd, cases[i].data, cases[i].len);  /* may be cut short by the close */
        r = h_read_reply(fd, H_DEFAULT);
        ck_assert_msg(r && strncmp(r, "-ERR protocol error", 19) == 0 && strstr(r, "before AUTH"),
                      "%s before AUTH: got %s", cases[i].name, h_repr(r));
        free(r);
        ck_assert_msg(h_is_closed(fd, 3000), "%s before AUTH: connection left open", cases[i].name);
        h_close(fd);
        ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    }
    /* within the limits: NOAUTH, AUTH, HELLO with AUTH; then the full limits */
    {
        int fd = h_connect(e.d.port);
        ASSERT_PREFIX(h_cmd(fd, "PING", NULL), "-NOAUTH");
        ASSERT_PREFIX(h_cmd(fd, "HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "x", NULL), "*14\r\n");
        ASSERT_PREFIX(h_send(fd, many.p, many.len) == 0 ? h_read_reply(fd, H_DEFAULT) : NULL, "$1\r\na\r\n");
        ASSERT_PREFIX(h_send(fd, wide.p, wide.len) == 0 ? h_read_reply(fd, H_DEFAULT) : NULL, "$4000\r\npppp");
        h_close(fd);
        fd = h_connect(e.d.port);
        ASSERT_RAW(h_cmd(fd, "AUTH", "s3cret", NULL), "+OK\r\n");
        ASSERT_RAW(h_send(fd, big.p, big.len) == 0 ? h_read_reply(fd, H_DEFAULT) : NULL, "$1\r\nz\r\n");
        h_close(fd);
    }
    free(big.p);
    free(many.p);
    free(longarg.p);
    free(wide.p);
    free(pad);
    env_down(&e);
}
END_TEST

/* ------------------------------------------------ 3. amplification ----- */

/* A JSON object with one field "f" of n bytes. */
static char *json_big_field(size_t n)
{
    char *s = malloc(n + 16);

    ck_assert(s != NULL);
    memcpy(s, "{\"f\":\"", 6);
    memset(s + 6, 'v', n);
    memcpy(s + 6 + n, "\"}", 3);
    return s;
}

/* Sends req on one connection and, while the daemon works on it, PINGs on
 * another: each PING must be answered within 1 s. Returns the first reply
 * to req; *peak_kb is the daemon's peak RSS growth meanwhile. */
static char *amplify(struct env *e, const struct buf *req, long *peak_kb, long long *worst_ping_ms)
{
    int fd = h_connect(e->d.port), other = h_connect(e->d.port);
    long rss0;
    char *r;

    ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    proc_reset_peak(e->d.pid);
    rss0 = proc_kb(e->d.pid, "VmRSS");
    ck_assert_int_eq(h_send(fd, req->p, req->len), 0);
    *worst_ping_ms = 0;
    for (int i = 0; i < 5; i++) {
        long long t = h_now_ms(), took;
        ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
        took = h_now_ms() - t;
        if (took > *worst_ping_ms)
            *worst_ping_ms = took;
        h_msleep(20);
    }
    r = h_read_reply(fd, 30000);
    *peak_kb = proc_kb(e->d.pid, "VmHWM") - rss0;
    h_close(fd);
    h_close(other);
    return r;
}

/* HMGET naming one 1 MB field 4000 times (a 36 KB request) and MGET naming
 * one 1 MB record 1000 times (12 KB): the field and the key are read from
 * Redis once, and the reply (4 GB, 1 GB) is refused as over
 * max_output_bytes_per_client before it is built. Before, the HMGET took the
 * daemon to 3.8 GB resident and the MGET to 0.4-1 GB, and other clients
 * stalled. The daemon's peak growth must stay under 64 MB, and another
 * client's PING is answered within 1 s meanwhile. */
START_TEST(t_amplification)
{
    struct env e;
    struct buf req = { 0 };
    char *body = json_big_field(1000000), *raw;
    long peak;
    long long ping;
    int fd;

    env_up(&e, 0, NULL);
    h_upstream_set_body(&e.up, "big", body);
    fd = h_connect(e.d.port);
    raw = h_cmd(fd, "HGET", "product:big", "f", NULL);     /* the miss that caches it */
    ck_assert_msg(raw && strncmp(raw, "$1000000\r\n", 10) == 0, "HGET: %s", h_repr(raw));
    free(raw);
    raw = h_cmd(fd, "GET", "page:big", NULL);
    ck_assert_msg(raw && strncmp(raw, "$1000008\r\n", 10) == 0, "GET: %s", h_repr(raw));
    free(raw);

    if (_i == 0) {
        buf_printf(&req, "*4002\r\n$5\r\nHMGET\r\n$11\r\nproduct:big\r\n");
        for (int i = 0; i < 4000; i++)
            buf_bulk(&req, "f", 1);
    } else {
        buf_printf(&req, "*1001\r\n$4\r\nMGET\r\n");
        for (int i = 0; i < 1000; i++)
            buf_bulk(&req, "page:big", 8);
    }
    raw = amplify(&e, &req, &peak, &ping);
    printf("%s (%zu-byte request): peak RSS growth %ld KiB, slowest other PING %lld ms, reply %s\n",
           _i == 0 ? "HMGET of one 1 MB field x 4000" : "MGET of one 1 MB record x 1000", req.len, peak, ping,
           h_repr(raw));
    fflush(stdout);
    ck_assert_msg(raw && strncmp(raw, "-ERR reply too large", 20) == 0, "got %s", h_repr(raw));
    ck_assert_msg(peak < MEM_SLACK * 64 * 1024, "the daemon grew by %ld MB for a %zu-byte request", peak >> 10,
                  req.len);
    ck_assert_msg(ping < 1000, "another client waited %lld ms for PING", ping);
    free(raw);
    /* the connection that asked is fine, and so is a normal read */
    ASSERT_PREFIX(h_cmd(fd, "HMGET", "product:big", "f", "nosuch", NULL), "*2\r\n$1000000\r\n");
    free(req.p);
    free(body);
    env_down(&e);
}
END_TEST

/* MGET of 100 distinct cached 1 MB records (100 MB, over the 64 MB limit):
 * the elements are dropped as soon as their sizes add up past the limit, so
 * the daemon never holds the whole reply. */
START_TEST(t_mget_distinct_too_large)
{
    enum { N = 100 };
    struct env e;
    struct buf req = { 0 };
    char *body = malloc(1000001), *raw;
    long peak;
    long long ping;
    int fd;

    ck_assert(body != NULL);
    memset(body, 'b', 1000000);
    body[1000000] = '\0';
    env_up(&e, 0, NULL);
    fd = h_connect(e.d.port);
    buf_printf(&req, "*%d\r\n$4\r\nMGET\r\n", N + 1);
    for (int i = 0; i < N; i++) {
        char id[16], key[32];
        snprintf(id, sizeof id, "b%d", i);
        snprintf(key, sizeof key, "page:%s", id);
        h_upstream_set_body(&e.up, id, body);
        raw = h_cmd(fd, "GET", key, NULL);
        ck_assert_msg(raw && strncmp(raw, "$1000000\r\n", 10) == 0, "GET %s: %s", key, h_repr(raw));
        free(raw);
        buf_bulk(&req, key, strlen(key));
    }
    raw = amplify(&e, &req, &peak, &ping);
    printf("MGET of %d distinct 1 MB records: peak RSS growth %ld KiB, slowest other PING %lld ms\n", N, peak,
           ping);
    fflush(stdout);
    ck_assert_msg(raw && strncmp(raw, "-ERR reply too large", 20) == 0, "got %s", h_repr(raw));
    ck_assert_msg(peak < MEM_SLACK * 96 * 1024, "the daemon grew by %ld MB", peak >> 10);
    ck_assert_msg(ping < 1000, "another client waited %lld ms for PING", ping);
    free(raw);
    free(req.p);
    free(body);
    env_down(&e);
}
END_TEST

/* Reading Redis's MONITOR stream: the next command line naming `what`. */
static char *monitor_next(int mon, const char *what)
{
    for (;;) {
        char *r = h_read_reply(mon, H_DEFAULT);
        ck_assert_msg(r != NULL, "MONITOR: nothing naming %s", what);
        if (strstr(r, what))
            return r;
        free(r);
    }
}

/* Repeated fields and keys are sent to Redis once: HMGET a b a b a reads
 * "a" "b"; MGET k k k reads k once. The replies still name each one. */
START_TEST(t_repeats_read_once)
{
    struct env e;
    int fd, mon;
    char *raw;

    env_up(&e, 0, NULL);
    h_upstream_set_body(&e.up, "r1", "{\"a\":\"1\",\"b\":\"22\"}");
    h_upstream_set_body(&e.up, "k", "body-k");
    fd = h_connect(e.d.port);
    ASSERT_PREFIX(h_cmd(fd, "HGETALL", "product:r1", NULL), "*4\r\n");
    ASSERT_RAW(h_cmd(fd, "GET", "page:k", NULL), "$6\r\nbody-k\r\n");
    mon = h_connect(e.redis.port);
    ASSERT_RAW(h_cmd(mon, "MONITOR", NULL), "+OK\r\n");

    ASSERT_RAW(h_cmd(fd, "HMGET", "product:r1", "a", "b", "a", "zz", "b", "a", NULL),
               "*6\r\n$1\r\n1\r\n$2\r\n22\r\n$1\r\n1\r\n$-1\r\n$2\r\n22\r\n$1\r\n1\r\n");
    raw = monitor_next(mon, "cache:product:{r1}");
    ck_assert_msg(strstr(raw, "\"HMGET\" \"cache:product:{r1}\" \"__exp\" \"__nf\" \"__body\" \"__lock\" \"__delta\" \"a\" \"b\" \"zz\"\r\n"),
                  "Redis was asked %s", h_repr(raw));
    free(raw);

    ASSERT_RAW(h_cmd(fd, "MGET", "page:k", "page:k", "page:nosuch", "page:k", NULL),
               "*4\r\n$6\r\nbody-k\r\n$6\r\nbody-k\r\n$-1\r\n$6\r\nbody-k\r\n");
    /* page:k once, then page:nosuch (its miss), and no second page:k read */
    raw = monitor_next(mon, "cache:page:{");
    ck_assert_msg(strstr(raw, "cache:page:{k}"), "first read %s", h_repr(raw));
    free(raw);
    raw = monitor_next(mon, "cache:page:{");
    ck_assert_msg(strstr(raw, "cache:page:{nosuch}"), "second read %s", h_repr(raw));
    free(raw);
    ASSERT_RAW(h_cmd(fd, "TTL", "page:marker", NULL), ":-2\r\n");
    for (;;) {
        raw = monitor_next(mon, "cache:page:{");
        ck_assert_msg(!strstr(raw, "cache:page:{k}"), "page:k read twice: %s", h_repr(raw));
        if (strstr(raw, "{marker}")) {
            free(raw);
            break;
        }
        free(raw);
    }
    h_close(mon);
    env_down(&e);
}
END_TEST

/* With max_output_bytes_per_client = 65536: a 100 KB HGETALL, and HMGET of
 * a 40 KB field twice (80 KB), get -ERR reply too large and the connection
 * stays open (before, the reply was built and the client disconnected as a
 * slow reader); the same field once is answered. MGET takes at most 10000
 * keys, like DEL. */
START_TEST(t_reply_too_large)
{
    struct env e;
    char *big = json_big_field(100000), *mid = json_big_field(40000), *raw;
    struct buf mget = { 0 };
    int fd;

    env_up(&e, 0, "max_output_bytes_per_client = 65536\n");
    h_upstream_set_body(&e.up, "big", big);
    h_upstream_set_body(&e.up, "mid", mid);
    fd = h_connect(e.d.port);
    /* the miss (answered from the fill) and the hit (from Redis's reply) */
    ASSERT_PREFIX(h_cmd(fd, "HGETALL", "product:big", NULL), "-ERR reply too large");
    ASSERT_PREFIX(h_cmd(fd, "HGETALL", "product:big", NULL), "-ERR reply too large");
    ASSERT_PREFIX(h_cmd(fd, "HMGET", "product:mid", "f", "f", NULL), "-ERR reply too large");
    ASSERT_PREFIX(h_cmd(fd, "HMGET", "product:mid", "f", "f", NULL), "-ERR reply too large");
    ASSERT_PREFIX(h_cmd(fd, "HMGET", "product:mid", "f", NULL), "*1\r\n$40000\r\n");
    ASSERT_PREFIX(h_cmd(fd, "GET", "page:mid", NULL), "$40008\r\n");
    ASSERT_PREFIX(h_cmd(fd, "MGET", "page:mid", "page:mid", NULL), "-ERR reply too large");
    ASSERT_PREFIX(h_cmd(fd, "MGET", "page:mid", "page:x", NULL), "*2\r\n$40008\r\n");
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");

    buf_printf(&mget, "*10002\r\n$4\r\nMGET\r\n");
    for (int i = 0; i < 10001; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "page:m%d", i);
        buf_bulk(&mget, key, (size_t)n);
    }
    ck_assert_int_eq(h_send(fd, mget.p, mget.len), 0);
    raw = h_read_reply(fd, H_DEFAULT);
    ck_assert_msg(raw && strcmp(raw, "-ERR too many keys for MGET (at most 10000)\r\n") == 0, "got %s",
                  h_repr(raw));
    free(raw);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    free(mget.p);
    free(big);
    free(mid);
    env_down(&e);
}
END_TEST

/* ------------------------------------------------ 4. buffers ----------- */

/* Replies finished out of order count in the output limit: 20 ECHOs of
 * 20 KB behind a slow miss (400 KB waiting for their turn) with
 * max_output_bytes_per_client = 262144 disconnect the client at once
 * instead of being held until the miss is answered. */
START_TEST(t_stash_counted)
{
    struct env e;
    struct buf req = { 0 };
    char *payload = malloc(20000);
    long long t0;

    ck_assert(payload != NULL);
    memset(payload, 'e', 20000);
    env_up(&e, 1500, "max_output_bytes_per_client = 262144\n");
    buf_printf(&req, "*2\r\n$7\r\nHGETALL\r\n$11\r\nproduct:p-1\r\n");
    for (int i = 0; i < 20; i++) {
        buf_printf(&req, "*2\r\n$4\r\nECHO\r\n");
        buf_bulk(&req, payload, 20000);
    }
    int fd = h_connect(e.d.port), other = h_connect(e.d.port);
    t0 = h_now_ms();
    ck_assert_int_eq(h_send(fd, req.p, req.len), 0);
    ck_assert_msg(h_is_closed(fd, 1200), "400 KB of replies waiting behind a miss were held for a client "
                                         "with max_output_bytes_per_client = 262144");
    ck_assert_msg(h_now_ms() - t0 < 1400, "closed only after the miss was answered");
    ASSERT_RAW(h_inline(other, "PING"), "+PONG\r\n");
    free(req.p);
    free(payload);
    env_down(&e);
}
END_TEST

/* 200 000 PINGs pipelined behind a slow miss: a request counts as in flight
 * until its reply is in the output buffer, so the daemon stops reading at
 * max_inflight_per_client instead of queueing every request and its stashed
 * reply (about 1.4 KB each, some 280 MB before). All are answered, in
 * order, once the miss is. */
START_TEST(t_pipeline_behind_miss)
{
    enum { N = 200000 };
    struct env e;
    struct buf req = { 0 };
    long rss0, peak;
    char *raw;
    int fd;

    env_up(&e, 1000, NULL);
    buf_printf(&req, "HGETALL product:p-002\r\n");
    for (int i = 0; i < N; i++)
        buf_add(&req, "PING\r\n", 6);
    fd = h_connect(e.d.port);
    ASSERT_RAW(h_inline(fd, "PING"), "+PONG\r\n");
    proc_reset_peak(e.d.pid);
    rss0 = proc_kb(e.d.pid, "VmRSS");
    ck_assert_int_eq(h_send(fd, req.p, req.len), 0);
    raw = h_read_reply(fd, 10000);
    ck_assert_msg(raw && strstr(raw, "Product 2"), "HGETALL: %s", h_repr(raw));
    free(raw);
    for (int i = 0; i < N; i++) {
        raw = h_read_reply(fd, H_DEFAULT);
        ck_assert_msg(raw && strcmp(raw, "+PONG\r\n") == 0, "PING %d: %s", i, h_repr(raw));
        free(raw);
    }
    peak = proc_kb(e.d.pid, "VmHWM") - rss0;
    printf("%d PINGs behind a 1 s miss: peak RSS growth %ld KiB\n", N, peak);
    fflush(stdout);
    ck_assert_msg(peak < MEM_SLACK * 32 * 1024, "the daemon grew by %ld MB holding pipelined requests", peak >> 10);
    free(req.p);
    env_down(&e);
}
END_TEST

/* 2000 clients that each sent one PING and wait: the daemon's RSS per idle
 * client (printed) must stay small. An idle client holds no input buffer
 * and no argument array; before, each kept a 16 KiB input buffer. */
START_TEST(t_idle_clients_memory)
{
    enum { N = 2000 };
    struct env e;
    struct rlimit rl;
    static int fds[N];
    long rss0, rss1;
    double per;

    ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < N + 200) {
        rl.rlim_cur = rl.rlim_max < N + 200 ? rl.rlim_max : N + 200;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= N + 200, "RLIMIT_NOFILE %ld is too low for %d clients", (long)rl.rlim_cur, N);
    env_up(&e, 0, NULL);
    /* warm up: the first clients grow the loop's tables once */
    for (int i = 0; i < 200; i++) {
        fds[i] = h_connect(e.d.port);
        ASSERT_RAW(h_inline(fds[i], "PING"), "+PONG\r\n");
    }
    for (int i = 0; i < 200; i++)
        h_close(fds[i]);
    h_msleep(200);
    rss0 = proc_kb(e.d.pid, "VmRSS");
    for (int i = 0; i < N; i++) {
        fds[i] = h_connect(e.d.port);
        ck_assert_int_eq(h_send(fds[i], "PING\r\n", 6), 0);
    }
    for (int i = 0; i < N; i++)
        ASSERT_RAW(h_read_reply(fds[i], H_DEFAULT), "+PONG\r\n");
    h_msleep(200);
    rss1 = proc_kb(e.d.pid, "VmRSS");
    per = (double)(rss1 - rss0) * 1024.0 / N;
    printf("%d idle clients (one PING each): RSS %ld -> %ld KiB, %.0f bytes per client\n", N, rss0, rss1, per);
    fflush(stdout);
    ck_assert_msg(per < MEM_SLACK * 2048, "%.0f bytes of daemon RSS per idle client", per);
    for (int i = 0; i < N; i++)
        h_close(fds[i]);
    env_down(&e);
}
END_TEST

/* The limits that bound a client's worst case are refused past their
 * upper ends (docs/configuration.md, "Memory per client"). */
START_TEST(t_config_upper_bounds)
{
    static const struct {
        const char *line, *want;
    } cases[] = {
        { "max_request_bytes = 8388609", "'max_request_bytes' must be between 64 and 8388608" },
        { "max_request_bytes = 536870912", "'max_request_bytes' must be between 64 and 8388608" },
        { "max_inflight_per_client = 65537", "'max_inflight_per_client' must be between 1 and 65536" },
        { "max_output_bytes_per_client = 1099511627776",
          "'max_output_bytes_per_client' must be between 1024 and 1073741824" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char conf[PATH_MAX], log[PATH_MAX], text[512];
        const char *argv[] = { h_daemon_bin(), "-t", "-c", conf, NULL };
        int st;
        pid_t pid;

        snprintf(conf, sizeof conf, "%s", h_path("bounds.ini"));
        snprintf(log, sizeof log, "%s", h_path("bounds.log"));
        snprintf(text, sizeof text,
                 "[server]\n%s\n[namespace:p]\nupstream = http://127.0.0.1:1/{id}\n", cases[i].line);
        h_write_file(conf, text, strlen(text));
        unlink(log);
        pid = h_spawn(argv, log);
        ck_assert_int_eq(h_wait_exit(pid, 5000, &st), 0);
        ck_assert_msg(h_exit_code(st) == 1, "%s: exit %d, %s", cases[i].line, h_exit_code(st), h_log_tail(log));
        ck_assert_msg(h_log_contains(log, cases[i].want), "%s: %s", cases[i].line, h_log_tail(log));
    }
}
END_TEST


int main(void)
{
    const struct su_case cases[] = {
        { "trickle_cpu", t_trickle_cpu, 120, 2 },
        { "before_auth_limits", t_before_auth_limits, 120, 0 },
        { "amplification", t_amplification, 120, 2 },
        { "mget_distinct_too_large", t_mget_distinct_too_large, 120, 0 },
        { "repeats_read_once", t_repeats_read_once, 120, 0 },
        { "reply_too_large", t_reply_too_large, 120, 0 },
        { "stash_counted", t_stash_counted, 120, 0 },
        { "pipeline_behind_miss", t_pipeline_behind_miss, 120, 0 },
        { "idle_clients_memory", t_idle_clients_memory, 120, 0 },
        { "config_upper_bounds", t_config_upper_bounds, 120, 0 },
    };

    return SU_RUN("input", cases, CK_NORMAL);
}
