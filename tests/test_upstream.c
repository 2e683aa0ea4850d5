/* SPDX-License-Identifier: BSD-3-Clause */
/* test_upstream.c - integration tests of the upstream client (src/http/upstream.c):
 * responses that would desynchronise a pooled keep-alive connection, response
 * heads without end, the per-namespace fetch limit and pool share, queue
 * deadlines, and host names looked up without blocking the loop.
 *
 * The example upstream is started with -R: its second, hand-written listener
 * serves the same records and misbehaves for IDs given a trick
 * (PUT /_trick/ID on the main port). -g generates p-001 .. p-020. */
#define _GNU_SOURCE
#include "suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int raw_port;               /* the upstream's misbehaving listener */
    int rfd;                    /* direct connection to the test's redis-server */
};

/* ---------------------------------------------------------- helpers ---- */

static int read_port_file(const char *path)
{
    char buf[32] = "";
    FILE *f = fopen(path, "r");

    ck_assert_msg(f != NULL, "no port file %s", path);
    ck_assert_msg(fgets(buf, sizeof(buf), f) != NULL, "empty port file %s", path);
    fclose(f);
    return atoi(buf);
}

/* Redis and the upstream (both listeners). */
static void env_start(struct env *e)
{
    char rawfile[PATH_MAX];
    const char *extra[] = { "-R", rawfile, NULL };

    memset(e, 0, sizeof(*e));
    snprintf(rawfile, sizeof(rawfile), "%s", h_path("raw.port"));
    unlink(rawfile);
    h_redis_start(&e->redis);
    h_upstream_start_args(&e->up, 0, 20, extra);
    e->raw_port = read_port_file(rawfile);
    e->rfd = h_connect(e->redis.port);
}

/* A daemon on e's Redis: the [server]/[redis] preamble, then `rest`. */
static void daemon_go(struct env *e, const char *const envp[], const char *fmt, ...) H_PRINTF(3, 4);

static void daemon_go(struct env *e, const char *const envp[], const char *fmt, ...)
{
    char rest[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(rest, sizeof(rest), fmt, ap);
    va_end(ap);
    h_daemon_init(&e->d);
    h_daemon_start_env(&e->d, envp,
                       "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                       "[redis]\nport = %d\n%s",
                       e->d.port, e->redis.port, rest);
    ck_assert_msg(h_wait_log(e->d.log, "subscribed to cache:fills", H_TIMEOUT_MS) == 0,
                  "daemon never subscribed: %s", h_log_tail(e->d.log));
}

static void up_put(struct h_upstream *u, const char *what, const char *id, const char *body)
{
    char path[256];
    int st;

    snprintf(path, sizeof(path), "/_%s/%s", what, id);
    st = h_http(u->port, "PUT", path, body, strlen(body), NULL, 0);
    ck_assert_msg(st == 204, "PUT %s: status %d", path, st);
}

/* A number from the upstream's /_stats JSON object. */
static long up_stat(struct h_upstream *u, const char *name)
{
    char body[512], key[64];
    const char *p;
    int st = h_http(u->port, "GET", "/_stats", NULL, 0, body, sizeof(body));

    ck_assert_msg(st == 200, "GET /_stats: %d", st);
    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(body, key);
    ck_assert_msg(p != NULL, "no %s in %s", name, body);
    return atol(p + strlen(key));
}

static char *cmd(int fd, const char *a, const char *b, const char *c)
{
    const char *argv[3] = { a, b, c };
    int argc = c ? 3 : b ? 2 : 1;

    ck_assert_int_eq(h_send_cmd(fd, argc, argv), 0);
    return h_read_reply(fd, H_DEFAULT);
}

#define EXPECT(want, fd, a, b, c)                                                          \
    do {                                                                                   \
        const char *b_ = (b);                                                              \
        char *got_ = cmd(fd, a, b_, c);                                                    \
        ck_assert_msg(got_ && strcmp(got_, (want)) == 0, "%s %s: got %s, want %s", a,     \
                      b_ ? b_ : "", h_repr(got_), h_repr(want));                           \
        free(got_);                                                                        \
    } while (0)

/* HGET key id must name the record's own id. */
static void expect_own_record(int fd, const char *ns, const char *id)
{
    char key[128], want[128];

    snprintf(key, sizeof(key), "%s:%s", ns, id);
    snprintf(want, sizeof(want), "$%zu\r\n%s\r\n", strlen(id), id);
    EXPECT(want, fd, "HGET", key, "id");
}

static void expect_not_cached(struct env *e, const char *ns, const char *id)
{
    char key[160];
    char *raw;

    snprintf(key, sizeof(key), "cache:%s:{%s}", ns, id);
    raw = cmd(e->rfd, "EXISTS", key, NULL);
    ck_assert_msg(raw && strcmp(raw, ":0\r\n") == 0, "%s is cached: %s", key, h_repr(raw));
    free(raw);
}

static long vmrss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    ck_assert_msg(kb > 0, "no VmRSS for %d", (int)pid);
    return kb;
}

/* Namespaces "r" and "s" on the misbehaving listener. */
static void env_raw(struct env *e, const char *cache_extra)
{
    env_start(e);
    daemon_go(e, NULL, "[cache]\n%s[namespace:r]\nupstream = http://127.0.0.1:%d/r/{id}\n"
              "[namespace:s]\nupstream = http://127.0.0.1:%d/s/{id}\n",
              cache_extra, e->raw_port, e->raw_port);
}

/* ------------------------------------- A: one response per connection ---- */

/* With one pooled connection, a response the upstream garbles is refused
 * with -UPSTREAM bad response, not cached, and the next keys (of this and of
 * another namespace on the host) still get their own records. */
static void check_trick(const char *trick)
{
    struct env e;
    int fd;

    env_raw(&e, "upstream_connections = 1\n");
    up_put(&e.up, "trick", "p-001", trick);
    fd = h_connect(e.d.port);
    EXPECT("-UPSTREAM bad response\r\n", fd, "HGETALL", "r:p-001", NULL);
    expect_not_cached(&e, "r", "p-001");
    expect_own_record(fd, "r", "p-002");
    expect_own_record(fd, "s", "p-003");
    expect_own_record(fd, "r", "p-004");
    /* Each key reached the upstream once: nothing was served twice. */
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-002"), 1);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-004"), 1);
    /* Errors are not cached: the same read asks the upstream again. */
    EXPECT("-UPSTREAM bad response\r\n", fd, "HGETALL", "r:p-001", NULL);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-001"), 2);
    expect_own_record(fd, "r", "p-005");
}

START_TEST(t_early_hints)
{
    check_trick("early-hints");
}
END_TEST

START_TEST(t_surplus_bytes)
{
    check_trick("surplus");
}
END_TEST

START_TEST(t_two_lengths)
{
    check_trick("two-lengths");
}
END_TEST

/* 100 Continue is the one interim response evhttp reads past correctly:
 * the record behind it is served and the connection stays in step. */
START_TEST(t_continue_is_skipped)
{
    struct env e;
    int fd;

    env_raw(&e, "upstream_connections = 1\n");
    up_put(&e.up, "trick", "p-001", "continue");
    fd = h_connect(e.d.port);
    expect_own_record(fd, "r", "p-001");
    expect_own_record(fd, "r", "p-002");
    expect_own_record(fd, "s", "p-003");
}
END_TEST

/* Only a clean 200, 404 or 410 keeps the connection: any other status
 * costs a new one, and the next key is still in step. */
START_TEST(t_other_status_closes)
{
    struct env e;
    int fd;

    env_raw(&e, "upstream_connections = 1\n");
    fd = h_connect(e.d.port);
    expect_own_record(fd, "r", "p-001");
    EXPECT("*0\r\n", fd, "HGETALL", "r:missing", NULL);
    expect_own_record(fd, "s", "p-002");
    ck_assert_int_eq(up_stat(&e.up, "raw_accepted"), 1);
    h_upstream_set_status(&e.up, "p-003", 503);
    EXPECT("-UPSTREAM status 503\r\n", fd, "HGETALL", "r:p-003", NULL);
    expect_own_record(fd, "r", "p-004");
    ck_assert_int_eq(up_stat(&e.up, "raw_accepted"), 2);
    expect_own_record(fd, "r", "p-005");
    ck_assert_int_eq(up_stat(&e.up, "raw_accepted"), 2);
}
END_TEST

/* --------------------------------------------- B: bounded response heads ---- */

/* An upstream that never ends its headers: every fetch is cut off with
 * -UPSTREAM headers too large, and the daemon stays small round after round. */
START_TEST(t_endless_headers)
{
    struct env e;
    char id[16], key[32];
    int fds[8];
    long rss0, rss;

    env_raw(&e, "upstream_connections = 8\nupstream_timeout_ms = 2000\nlock_ttl_ms = 3000\n");
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof(id), "big-%d", i);
        up_put(&e.up, "trick", id, "endless-headers");
        fds[i] = h_connect(e.d.port);
    }
    rss0 = vmrss_kb(e.d.pid);
    for (int round = 0; round < 4; round++) {
        long long t0 = h_now_ms();
        for (int i = 0; i < 8; i++) {
            snprintf(key, sizeof(key), "r:big-%d", i);
            const char *argv[2] = { "HGETALL", key };
            ck_assert_int_eq(h_send_cmd(fds[i], 2, argv), 0);
        }
        for (int i = 0; i < 8; i++) {
            char *raw = h_read_reply(fds[i], H_DEFAULT);
            ck_assert_msg(raw && strcmp(raw, "-UPSTREAM headers too large\r\n") == 0, "round %d fetch %d: %s",
                          round, i, h_repr(raw));
            free(raw);
        }
        rss = vmrss_kb(e.d.pid);
        fprintf(stderr, "endless headers round %d: 8 fetches in %lld ms, daemon RSS %ld kB (at start %ld kB)\n",
                round, h_now_ms() - t0, rss, rss0);
        ck_assert_msg(rss < 64 * 1024, "daemon RSS %ld kB after round %d", rss, round);
    }
    expect_not_cached(&e, "r", "big-0");
    /* A head of 1000 short lines is small but over the line limit. */
    up_put(&e.up, "trick", "p-001", "many-headers");
    EXPECT("-UPSTREAM headers too large\r\n", fds[0], "HGETALL", "r:p-001", NULL);
    expect_own_record(fds[0], "r", "p-002");
}
END_TEST

/* ------------------------------------- C: limits per namespace and host ---- */

/* A fetch waiting for the host's only connection is bounded from the moment
 * it queued: it gets -TRYAGAIN upstream busy after half of
 * upstream_timeout_ms, not the rest of someone else's fetch plus its own. */
START_TEST(t_queued_fetch_deadline)
{
    struct env e;
    long long t0, ms;
    int fa, fb;
    char *raw;

    env_start(&e);
    daemon_go(&e, NULL, "[cache]\nupstream_connections = 1\nupstream_timeout_ms = 1000\nlock_ttl_ms = 2000\n"
              "[namespace:n]\nupstream = http://127.0.0.1:%d/n/{id}\n", e.up.port);
    up_put(&e.up, "delay", "hang-1", "5000");
    fa = h_connect(e.d.port);
    fb = h_connect(e.d.port);
    {
        const char *argv[2] = { "HGETALL", "n:hang-1" };
        ck_assert_int_eq(h_send_cmd(fa, 2, argv), 0);
    }
    for (int i = 0; i < 100 && up_stat(&e.up, "inflight") < 1; i++)
        h_msleep(20);
    t0 = h_now_ms();
    raw = cmd(fb, "HGETALL", "n:p-001", NULL);
    ms = h_now_ms() - t0;
    fprintf(stderr, "queued fetch answered after %lld ms: %s\n", ms, h_repr(raw));
    ck_assert_msg(raw && strcmp(raw, "-TRYAGAIN upstream busy\r\n") == 0, "queued fetch: %s", h_repr(raw));
    ck_assert_msg(ms >= 400 && ms < 1000, "queued fetch answered after %lld ms", ms);
    free(raw);
    expect_not_cached(&e, "n", "p-001");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-001"), 0);
    raw = h_read_reply(fa, H_DEFAULT);
    ck_assert_msg(raw && strcmp(raw, "-UPSTREAM timeout\r\n") == 0, "hanging fetch: %s", h_repr(raw));
    free(raw);
    /* The connection freed, the same key now gets its record. */
    expect_own_record(fb, "n", "p-001");
}
END_TEST

/* 16 hanging fetches of namespace a fill a host's 16 connections no more
 * than a's share allows: a key of namespace b on the same host is answered
 * at once. */
START_TEST(t_hanging_namespace_leaves_others)
{
    struct env e;
    char key[32], id[16];
    int fds[16], fb;
    long long t0, ms;
    long inflight = 0;
    char *raw;

    env_start(&e);
    daemon_go(&e, NULL, "[cache]\nupstream_connections = 16\nupstream_timeout_ms = 3000\nlock_ttl_ms = 4000\n"
              "[namespace:a]\nupstream = http://127.0.0.1:%d/a/{id}\n"
              "[namespace:b]\nupstream = http://127.0.0.1:%d/b/{id}\n", e.up.port, e.up.port);
    for (int i = 0; i < 16; i++) {
        snprintf(id, sizeof(id), "hang-%d", i);
        up_put(&e.up, "delay", id, "20000");
    }
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof(key), "a:hang-%d", i);
        const char *argv[2] = { "HGETALL", key };
        fds[i] = h_connect(e.d.port);
        ck_assert_int_eq(h_send_cmd(fds[i], 2, argv), 0);
    }
    for (int i = 0; i < 100 && (inflight = up_stat(&e.up, "inflight")) < 15; i++)
        h_msleep(20);
    h_msleep(100);
    inflight = up_stat(&e.up, "inflight");
    fprintf(stderr, "hanging fetches of namespace a at the upstream: %ld\n", inflight);
    ck_assert_msg(inflight == 15, "%ld of a's 16 hanging fetches reached the upstream", inflight);
    fb = h_connect(e.d.port);
    t0 = h_now_ms();
    raw = cmd(fb, "HGET", "b:p-001", "id");
    ms = h_now_ms() - t0;
    fprintf(stderr, "namespace b answered in %lld ms beside 16 hanging fetches of a\n", ms);
    ck_assert_msg(raw && strcmp(raw, "$5\r\np-001\r\n") == 0, "b:p-001: %s", h_repr(raw));
    ck_assert_msg(ms < 1500, "b:p-001 took %lld ms", ms);
    free(raw);
    /* Every hanging fetch still gets its error within the bound. */
    for (int i = 0; i < 16; i++) {
        raw = h_read_reply(fds[i], 6000);
        ck_assert_msg(raw && (strcmp(raw, "-UPSTREAM timeout\r\n") == 0 ||
                              strcmp(raw, "-TRYAGAIN upstream busy\r\n") == 0), "a:hang-%d: %s", i, h_repr(raw));
        free(raw);
    }
}
END_TEST

/* max_upstream_fetches = 2 (set on the namespace): five concurrent misses
 * never have more than two reads at the upstream; the others wait for a
 * slot and are answered, or get -TRYAGAIN upstream busy (not cached) when
 * none frees within half of upstream_timeout_ms. */
static void check_max_fetches(int latency_ms, int want_records)
{
    struct env e;
    char key[32], id[16];
    int fds[5], records = 0, busy = 0;
    long long t0 = 0;

    env_start(&e);
    daemon_go(&e, NULL, "[cache]\nupstream_timeout_ms = 3000\nlock_ttl_ms = 4000\n"
              "[namespace:m]\nupstream = http://127.0.0.1:%d/m/{id}\nmax_upstream_fetches = 2\n", e.up.port);
    h_upstream_set_latency(&e.up, latency_ms);
    h_upstream_reset(&e.up);
    t0 = h_now_ms();
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "m:p-00%d", i + 1);
        const char *argv[3] = { "HGET", key, "id" };
        fds[i] = h_connect(e.d.port);
        ck_assert_int_eq(h_send_cmd(fds[i], 3, argv), 0);
    }
    for (int i = 0; i < 5; i++) {
        char *raw = h_read_reply(fds[i], 6000);
        snprintf(id, sizeof(id), "p-00%d", i + 1);
        fprintf(stderr, "latency %d: m:%s after %lld ms: %s\n", latency_ms, id, h_now_ms() - t0, h_repr(raw));
        ck_assert_msg(raw != NULL, "no reply for m:%s", id);
        if (strcmp(raw, "-TRYAGAIN upstream busy\r\n") == 0) {
            busy++;
            expect_not_cached(&e, "m", id);
        } else {
            char want[32];
            snprintf(want, sizeof(want), "$5\r\n%s\r\n", id);
            ck_assert_msg(strcmp(raw, want) == 0, "m:%s: %s", id, h_repr(raw));
            records++;
        }
        free(raw);
    }
    fprintf(stderr, "upstream saw at most %ld concurrent reads\n", up_stat(&e.up, "max_inflight"));
    ck_assert_int_le(up_stat(&e.up, "max_inflight"), 2);
    ck_assert_int_eq(records, want_records);
    ck_assert_int_eq(busy, 5 - want_records);
}

START_TEST(t_max_fetches_wait)
{
    check_max_fetches(300, 5);
}
END_TEST

START_TEST(t_max_fetches_tryagain)
{
    check_max_fetches(2200, 2);     /* the slot wait ends at 1500 ms */
}
END_TEST

/* A reload changes the limit for the next misses. */
START_TEST(t_max_fetches_reload)
{
    struct env e;
    const char *conf = "[cache]\nupstream_timeout_ms = 3000\nlock_ttl_ms = 4000\nmax_upstream_fetches = %d\n"
                       "[namespace:m]\nupstream = http://127.0.0.1:%d/m/{id}\n";
    char key[32];
    int fds[3];
    long off;

    env_start(&e);
    daemon_go(&e, NULL, conf, 1, e.up.port);
    h_upstream_set_latency(&e.up, 300);
    for (int round = 0; round < 2; round++) {
        h_upstream_reset(&e.up);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "m:p-%d%02d", round + 1, i);
            const char *argv[2] = { "HGETALL", key };
            fds[i] = h_connect(e.d.port);
            ck_assert_int_eq(h_send_cmd(fds[i], 2, argv), 0);
        }
        for (int i = 0; i < 3; i++) {
            char *raw = h_read_reply(fds[i], 6000);
            ck_assert_msg(raw && raw[0] == '*', "round %d: %s", round, h_repr(raw));
            free(raw);
            h_close(fds[i]);
        }
        ck_assert_int_eq(up_stat(&e.up, "max_inflight"), round == 0 ? 1 : 3);
        if (round == 0) {
            off = h_log_size(e.d.log);
            h_daemon_rewrite_conf(&e.d, "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                                  "[redis]\nport = %d\n[cache]\nupstream_timeout_ms = 3000\nlock_ttl_ms = 4000\n"
                                  "max_upstream_fetches = 3\n[namespace:m]\nupstream = http://127.0.0.1:%d/m/{id}\n",
                                  e.d.port, e.redis.port, e.up.port);
            h_kill(e.d.pid, SIGHUP);
            ck_assert(h_wait_log_after(e.d.log, off, "configuration applied", H_TIMEOUT_MS) == 0);
        }
    }
}
END_TEST

/* ------------------------------------------------ D: lookups off the loop ---- */

/* The upstream host is a name and the resolver never answers: while that
 * fetch waits, other clients are answered at once, and the stuck read gets
 * -UPSTREAM timeout within upstream_timeout_ms. */
START_TEST(t_resolver_never_answers)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t salen = sizeof(sa);
    char conf[128], env_rc[PATH_MAX + 32], pkt[512];
    const char *envp[2] = { env_rc, NULL };
    struct pollfd pfd;
    struct env e;
    int udp, fs, fo;
    long long t0, ms;
    ssize_t n;
    char *raw;

    udp = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(udp, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(udp, (struct sockaddr *)&sa, &salen), 0);
    snprintf(conf, sizeof(conf), "nameserver 127.0.0.1:%d\n", ntohs(sa.sin_port));
    h_write_file(h_path("resolv.conf"), conf, strlen(conf));
    snprintf(env_rc, sizeof(env_rc), "CACHASIDED_RESOLV_CONF=%s", h_path("resolv.conf"));

    env_start(&e);
    daemon_go(&e, envp, "[cache]\nupstream_timeout_ms = 1500\nlock_ttl_ms = 2500\n"
              "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
              "[namespace:far]\nupstream = http://upstream.invalid:%d/far/{id}\n", e.up.port, e.up.port);
    fo = h_connect(e.d.port);
    expect_own_record(fo, "product", "p-001");          /* now a hit */

    fs = h_connect(e.d.port);
    {
        const char *argv[2] = { "HGETALL", "far:p-002" };
        ck_assert_int_eq(h_send_cmd(fs, 2, argv), 0);
    }
    t0 = h_now_ms();
    /* The daemon asks our resolver (and nobody answers). */
    pfd.fd = udp;
    pfd.events = POLLIN;
    ck_assert_msg(poll(&pfd, 1, 3000) == 1, "no DNS query reached the resolver of resolv.conf");
    n = recv(udp, pkt, sizeof(pkt), 0);
    for (ssize_t i = 0; i < n; i++)     /* evdns randomises the case of names */
        if (pkt[i] >= 'A' && pkt[i] <= 'Z')
            pkt[i] = (char)(pkt[i] - 'A' + 'a');
    ck_assert_msg(n > 12 && memmem(pkt, (size_t)n, "\010upstream\007invalid", 17) != NULL,
                  "the query does not ask for upstream.invalid");
    fprintf(stderr, "DNS query for upstream.invalid after %lld ms\n", h_now_ms() - t0);

    t0 = h_now_ms();
    EXPECT("+PONG\r\n", fo, "PING", NULL, NULL);
    ms = h_now_ms() - t0;
    fprintf(stderr, "PING answered in %lld ms while the lookup hangs\n", ms);
    ck_assert_msg(ms < 500, "PING took %lld ms", ms);
    t0 = h_now_ms();
    expect_own_record(fo, "product", "p-001");
    ms = h_now_ms() - t0;
    fprintf(stderr, "hit answered in %lld ms while the lookup hangs\n", ms);
    ck_assert_msg(ms < 500, "hit took %lld ms", ms);

    raw = h_read_reply(fs, 4000);
    fprintf(stderr, "stuck read: %s\n", h_repr(raw));
    ck_assert_msg(raw && strcmp(raw, "-UPSTREAM timeout\r\n") == 0, "stuck read: %s", h_repr(raw));
    free(raw);
    expect_not_cached(&e, "far", "p-002");
    EXPECT("+PONG\r\n", fs, "PING", NULL, NULL);
    close(udp);
}
END_TEST

/* ------------------------------------------------------------- main ---- */

int main(void)
{
    const struct su_case cases[] = {
        { "early_hints", t_early_hints, 60, 0 },
        { "surplus_bytes", t_surplus_bytes, 60, 0 },
        { "two_lengths", t_two_lengths, 60, 0 },
        { "continue_is_skipped", t_continue_is_skipped, 60, 0 },
        { "other_status_closes", t_other_status_closes, 60, 0 },
        { "endless_headers", t_endless_headers, 60, 0 },
        { "queued_fetch_deadline", t_queued_fetch_deadline, 60, 0 },
        { "hanging_namespace_leaves_others", t_hanging_namespace_leaves_others, 60, 0 },
        { "max_fetches_wait", t_max_fetches_wait, 60, 0 },
        { "max_fetches_tryagain", t_max_fetches_tryagain, 60, 0 },
        { "max_fetches_reload", t_max_fetches_reload, 60, 0 },
        { "resolver_never_answers", t_resolver_never_answers, 60, 0 },
    };

    return SU_RUN("upstream", cases, CK_ENV);
}
