/* SPDX-License-Identifier: BSD-3-Clause */
/* test_rlink.c - integration tests of the daemon's Redis links: a slow
 * Redis fails single commands, not the connection; a stall of the daemon
 * itself is not blamed on Redis; a subscriber that goes silent without a
 * close is replaced and the waits it missed are caught up; the Redis host
 * name is resolved without blocking the loop.
 *
 * The example upstream (-g N) serves products p-001 .. p-00N. Two helpers
 * run in forked children of the test: a TCP proxy between a daemon and
 * Redis that can freeze the subscriber's connection, and, in the test
 * process itself, a loopback DNS server that is silent or answers A
 * 127.0.0.1. */
#define _GNU_SOURCE
#include "suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------- helpers ---- */

/* The ids of Redis's clients of one TYPE, except rfd's own, sorted into
 * buf as "id,id,...". */
static void client_ids(int rfd, const char *type, char *buf, size_t sz)
{
    long long self = su_qint(rfd, "CLIENT", "ID", NULL), ids[64];
    char *raw = su_rawq(rfd, "CLIENT", "LIST", "TYPE", type, NULL);
    int n = 0;
    size_t off = 0;

    for (const char *p = strstr(raw, "id="); p && n < 64; p = strstr(p + 1, "\nid=")) {
        long long id = strtoll(p + (p[0] == '\n' ? 4 : 3), NULL, 10);
        if (id != self)
            ids[n++] = id;
    }
    free(raw);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            long long t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, sz - off, "%s%lld", i ? "," : "", ids[i]);
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void daemon_up(struct h_daemon *d, const char *const env[], const char *redis, const char *cache,
                      int up_port)
{
    h_daemon_init(d);
    h_daemon_start_env(d, env,
                       "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                       "[redis]\n%s\n"
                       "[cache]\n%s\n"
                       "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                       d->port, redis, cache, up_port);
}

/* ------------------------------------------------------ slow Redis ---- */

/* Redis stops answering for 1.5 s (CLIENT PAUSE) with command_timeout_ms
 * 300 while clients read cached and cold keys: each late command fails
 * alone (the reads are answered from the upstream), the connections stay
 * (no reconnect, the same Redis client ids before and after), and right
 * after the pause the cache answers again: a hit costs no upstream request,
 * and the locks our timed-out lock scripts took late are handed back
 * instead of blocking those keys for lock_ttl_ms. */
START_TEST(t_pause_keeps_link)
{
    enum { NCACHED = 3, NCOLD = 3 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    char before_cmd[512], before_sub[512], after_cmd[512], after_sub[512], key[32];
    int rfd, fds[NCACHED + NCOLD];
    long long t0, took, worst = 0, count;
    char *raw;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 9);
    char rconf[128];
    snprintf(rconf, sizeof(rconf), "port = %d\ncommand_timeout_ms = 300", redis.port);
    daemon_up(&d, NULL, rconf, "lock_ttl_ms = 10000\nupstream_timeout_ms = 2000", up.port);
    su_wait_log_linked(&d, 0);
    rfd = h_connect(redis.port);
    for (int i = 1; i <= NCACHED; i++) {
        int fd = h_connect(d.port);
        snprintf(key, sizeof(key), "product:p-%03d", i);
        raw = su_rawq(fd, "HGETALL", key, NULL);
        su_expect_product(raw, i);
        free(raw);
        h_close(fd);
    }
    ck_assert_int_eq(h_upstream_count(&up), NCACHED);
    client_ids(rfd, "normal", before_cmd, sizeof(before_cmd));
    client_ids(rfd, "pubsub", before_sub, sizeof(before_sub));
    ck_assert_msg(before_cmd[0] && before_sub[0], "daemon links not in CLIENT LIST");

    EXPECT_RAW("+OK\r\n", rfd, "CLIENT", "PAUSE", "1500", "ALL");
    t0 = h_now_ms();
    for (int i = 0; i < NCACHED + NCOLD; i++) {
        fds[i] = h_connect(d.port);
        snprintf(key, sizeof(key), "product:p-%03d", i + 1);
        ck_assert_int_eq(h_send_cmdv(fds[i], "HGETALL", key, NULL), 0);
    }
    for (int i = 0; i < NCACHED + NCOLD; i++) {
        raw = h_read_reply(fds[i], 5000);
        took = h_now_ms() - t0;
        su_expect_product(raw, i + 1);
        free(raw);
        if (took > worst)
            worst = took;
    }
    printf("pause: %d reads answered in at most %lld ms (Redis paused 1500 ms, command_timeout_ms 300)\n",
           NCACHED + NCOLD, worst);
    ck_assert_msg(worst < 1500 + 1000, "reads waited for the pause: %lld ms", worst);

    /* Let the pause end; the queued commands run and their replies come. */
    while (h_now_ms() < t0 + 1700)
        h_msleep(20);
    raw = su_rawq(rfd, "PING", NULL);
    free(raw);
    count = h_upstream_count(&up);
    {
        int fd = h_connect(d.port);
        t0 = h_now_ms();
        raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
        took = h_now_ms() - t0;
        su_expect_product(raw, 1);
        free(raw);
        h_close(fd);
    }
    printf("pause: first read after the pause %lld ms\n", took);
    ck_assert_msg(h_upstream_count(&up) == count, "a cached key went to the upstream after the pause");
    ck_assert_msg(took < 1000, "a hit after the pause took %lld ms", took);
    for (int i = NCACHED + 1; i <= NCACHED + NCOLD; i++) {
        snprintf(key, sizeof(key), "cache:product:{p-%03d}", i);
        ck_assert_msg(su_wait_locked(rfd, key, 0, 2000) == 0, "%s: lock still held (lock_ttl_ms 10000)", key);
    }
    {
        int fd = h_connect(d.port);
        raw = su_rawq(fd, "HGETALL", "product:p-009", NULL);
        su_expect_product(raw, 9);
        free(raw);
        h_close(fd);
        ck_assert_int_eq(su_wait_cached(rfd, "cache:product:{p-009}", 2000), 0);
    }
    client_ids(rfd, "normal", after_cmd, sizeof(after_cmd));
    client_ids(rfd, "pubsub", after_sub, sizeof(after_sub));
    ck_assert_msg(strcmp(before_cmd, after_cmd) == 0, "command link replaced: ids %s before, %s after", before_cmd,
                  after_cmd);
    ck_assert_msg(strcmp(before_sub, after_sub) == 0, "subscriber replaced: ids %s before, %s after", before_sub,
                  after_sub);
    ck_assert_msg(!h_log_contains(d.log, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    ck_assert_msg(h_log_contains(d.log, "no reply within command_timeout_ms"), "%s", h_log_tail(d.log));
    ck_assert_msg(h_wait_log(d.log, "replies in time again", 2000) == 0, "%s", h_log_tail(d.log));
    ck_assert_int_ge(su_stat_port(d.port, "redis_errors"), NCACHED + NCOLD);
    for (int i = 0; i < NCACHED + NCOLD; i++)
        h_close(fds[i]);
}
END_TEST

/* The daemon itself is stopped for 1.5 s (SIGSTOP) while its reads of big
 * cached records are pending; Redis answered meanwhile, into the daemon's
 * socket. When it runs again the replies are read and served: no command
 * failed by command_timeout_ms, no reconnect, no upstream request. The
 * records are large so that reading them takes several turns of the loop,
 * in which the deadline sweep also runs. */
START_TEST(t_own_stall_not_blamed)
{
    enum { NBIG = 20, BIG = 60000 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int rfd, fds[NBIG];
    char rconf[128], key[64], exp[32];
    char *body = malloc(BIG + 1);

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 3);
    snprintf(rconf, sizeof(rconf), "port = %d\ncommand_timeout_ms = 500", redis.port);
    daemon_up(&d, NULL, rconf, "", up.port);
    su_wait_log_linked(&d, 0);
    rfd = h_connect(redis.port);
    memset(body, 'x', BIG);
    body[BIG] = '\0';
    snprintf(exp, sizeof(exp), "%lld", wall_ms() + 600000);
    for (int i = 0; i < NBIG; i++) {
        snprintf(key, sizeof(key), "cache:product:{big-%d}", i);
        ck_assert_int_eq(su_qint(rfd, "HSET", key, "__exp", exp, "data", body, NULL), 2);
        ck_assert_int_eq(su_qint(rfd, "EXPIRE", key, "600", NULL), 1);
    }

    EXPECT_RAW("+OK\r\n", rfd, "CLIENT", "PAUSE", "300", "ALL");
    for (int i = 0; i < NBIG; i++) {
        fds[i] = h_connect(d.port);
        snprintf(key, sizeof(key), "product:big-%d", i);
        ck_assert_int_eq(h_send_cmdv(fds[i], "HGETALL", key, NULL), 0);
    }
    h_msleep(100);                  /* the daemon has sent them; Redis is paused */
    h_kill(d.pid, SIGSTOP);
    h_msleep(1500);
    h_kill(d.pid, SIGCONT);
    for (int i = 0; i < NBIG; i++) {
        char *raw = h_read_reply(fds[i], 5000);
        struct h_reply *r;
        ck_assert_msg(raw != NULL, "big-%d: no reply", i);
        r = h_parse_reply(raw);
        ck_assert_msg(r->type == H_REPLY_ARRAY && r->elements == 2 && r->element[1]->len == BIG,
                      "big-%d: not the cached record (%zu elements)", i, r->elements);
        h_reply_free(r);
        free(raw);
        h_close(fds[i]);
    }
    ck_assert_msg(!h_log_contains(d.log, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    ck_assert_msg(!h_log_contains(d.log, "command_timeout_ms"), "commands failed: %s", h_log_tail(d.log));
    ck_assert_int_eq(su_stat_port(d.port, "redis_errors"), 0);
    ck_assert_int_eq(h_upstream_count(&up), 0);
    free(body);
}
END_TEST

/* ------------------------------------------------ a frozen subscriber -- */

/* A TCP proxy from a local port to Redis. SIGUSR1 freezes every connection
 * seen so far whose client sent SUBSCRIBE: its bytes are no longer passed
 * either way, and its sockets stay open (a half-open link). */
static volatile sig_atomic_t px_freeze;

static void px_on_usr1(int sig)
{
    (void)sig;
    px_freeze = 1;
}

struct px_pair {
    int a, b;                   /* client side, Redis side */
    int sub, frozen;
};

static void px_run(int lfd, int redis_port)
{
    struct px_pair pr[32];
    int np = 0;

    signal(SIGUSR1, px_on_usr1);
    for (;;) {
        struct pollfd pfd[1 + 64];
        int n = 0;

        if (px_freeze) {
            px_freeze = 0;
            for (int i = 0; i < np; i++)
                if (pr[i].sub)
                    pr[i].frozen = 1;
        }
        pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
        for (int i = 0; i < np; i++) {
            pfd[n++] = (struct pollfd){ .fd = pr[i].frozen ? -1 : pr[i].a, .events = POLLIN };
            pfd[n++] = (struct pollfd){ .fd = pr[i].frozen ? -1 : pr[i].b, .events = POLLIN };
        }
        if (poll(pfd, (nfds_t)n, 10) < 0 && errno != EINTR)
            _exit(1);
        if ((pfd[0].revents & POLLIN) && np < 32) {
            int c = accept(lfd, NULL, NULL);
            struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port) };
            int r = socket(AF_INET, SOCK_STREAM, 0);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (c >= 0 && r >= 0 && connect(r, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                pr[np++] = (struct px_pair){ .a = c, .b = r };
            else {
                if (c >= 0)
                    close(c);
                if (r >= 0)
                    close(r);
            }
        }
        for (int i = 0, k = 1; i < np; i++, k += 2) {
            for (int side = 0; side < 2; side++) {
                char buf[65536];
                ssize_t got;
                int from = side ? pr[i].b : pr[i].a, to = side ? pr[i].a : pr[i].b;
                if (pr[i].frozen || !(pfd[k + side].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                got = read(from, buf, sizeof(buf));
                if (got <= 0) {
                    close(pr[i].a);
                    close(pr[i].b);
                    pr[i] = pr[--np];
                    break;
                }
                if (!side && !pr[i].sub && memmem(buf, (size_t)got, "SUBSCRIBE", 9))
                    pr[i].sub = 1;
                for (ssize_t off = 0; off < got;) {
                    ssize_t w = write(to, buf + off, (size_t)(got - off));
                    if (w <= 0)
                        _exit(1);
                    off += w;
                }
            }
        }
    }
}

/* Starts the proxy in a child; returns its pid and the port in *port. */
static pid_t px_start(int redis_port, int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    pid_t pid;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(lfd, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        px_run(lfd, redis_port);    /* never returns */
    close(lfd);
    return pid;
}

/* Reads one cold key through two daemons: A takes the lock (the upstream
 * answers in 1 s), B comes 150 ms later and waits for A's fill notice.
 * Returns how long B's reader waited. */
static long long read_through_two(struct h_daemon *a, struct h_daemon *b, int i)
{
    char key[32], *raw;
    int fa = h_connect(a->port), fb = h_connect(b->port);
    long long t0, took;

    snprintf(key, sizeof(key), "product:p-%03d", i);
    ck_assert_int_eq(h_send_cmdv(fa, "HGETALL", key, NULL), 0);
    h_msleep(150);
    t0 = h_now_ms();
    ck_assert_int_eq(h_send_cmdv(fb, "HGETALL", key, NULL), 0);
    raw = h_read_reply(fb, 14000);
    took = h_now_ms() - t0;
    ck_assert_msg(raw != NULL, "daemon B: no reply for %s in 14 s", key);
    su_expect_product(raw, i);
    free(raw);
    raw = h_read_reply(fa, 5000);
    su_expect_product(raw, i);
    free(raw);
    h_close(fa);
    h_close(fb);
    return took;
}

/* Daemon B's subscriber connection freezes (no close, no bytes). B finds it
 * silent, resubscribes, and then re-reads what it was waiting for: the fill
 * notice A published while B was deaf is caught up at once, not at the
 * 10 s poll. After that, B is woken by A's notices again. */
START_TEST(t_silent_subscriber)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon a, b;
    const char *cache = "lock_ttl_ms = 15000\nlock_poll_ms = 10000\nupstream_timeout_ms = 5000";
    char rconf[128];
    pid_t px;
    int px_port, st;
    long from, after;
    long long waited;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 1000, 3);
    px = px_start(redis.port, &px_port);
    snprintf(rconf, sizeof(rconf), "port = %d\ncommand_timeout_ms = 300", redis.port);
    daemon_up(&a, NULL, rconf, cache, up.port);
    snprintf(rconf, sizeof(rconf), "port = %d\ncommand_timeout_ms = 300", px_port);
    daemon_up(&b, NULL, rconf, cache, up.port);
    su_wait_log_linked(&a, 0);
    su_wait_log_linked(&b, 0);
    h_msleep(1500);                 /* a few probes, all answered */
    ck_assert_msg(!h_log_contains(b.log, "reconnecting"), "B dropped a link before any fault: %s",
                  h_log_tail(b.log));
    from = h_log_size(b.log);

    kill(px, SIGUSR1);
    h_msleep(50);
    /* The notice for p-001 comes while B cannot hear it. */
    waited = read_through_two(&a, &b, 1);
    printf("silent subscriber: B answered after %lld ms (dead after 3000 ms of silence, poll 10 s)\n", waited);
    ck_assert_msg(h_wait_log_after(b.log, from, "redis subscriber: nothing read for", 1) == 0,
                  "B never gave up its silent subscriber: %s", h_log_tail(b.log));
    ck_assert_msg(h_wait_log_after(b.log, from, "subscribed to cache:fills", 1) == 0, "%s", h_log_tail(b.log));
    ck_assert_msg(waited < 8000, "B waited %lld ms (fallback poll 10 s, lock_ttl_ms 15 s)", waited);
    ck_assert_msg(!h_log_contains(b.log, "redis: nothing read"), "B's command link was dropped: %s",
                  h_log_tail(b.log));

    /* Resubscribed: B hears A's notice again. */
    after = h_log_size(b.log);
    waited = read_through_two(&a, &b, 2);
    printf("silent subscriber: after resubscribing, B answered after %lld ms\n", waited);
    ck_assert_msg(waited < 1000 + 2500, "B not woken by the fill notice: %lld ms", waited);
    ck_assert_msg(h_wait_log_after(b.log, after, "reconnecting", 1) != 0, "%s", h_log_tail(b.log));
    ck_assert_int_eq(h_upstream_count(&up), 2);

    kill(px, SIGKILL);
    waitpid(px, &st, 0);
}
END_TEST

/* A daemon that starts while Redis holds its commands for 400 ms (within
 * command_timeout_ms) sets up both links without dropping either. Then
 * every Redis link has TCP keepalive on: the kernel's keepalive timer is
 * armed on the daemon's idle sockets to Redis (/proc/net/tcp, "tr" 2). */
START_TEST(t_keepalive)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    char rconf[64], line[512], want[16];
    int n = 0, ka = 0, rfd;
    FILE *f;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 1);
    rfd = h_connect(redis.port);
    EXPECT_RAW("+OK\r\n", rfd, "CLIENT", "PAUSE", "400", "ALL");
    snprintf(rconf, sizeof(rconf), "port = %d\ncommand_timeout_ms = 1500", redis.port);
    daemon_up(&d, NULL, rconf, "", up.port);
    su_wait_log_linked(&d, 0);
    h_msleep(1200);                 /* and a probe or two */
    ck_assert_msg(!h_log_contains(d.log, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    h_close(rfd);                   /* only the daemon's sockets stay established */
    f = fopen("/proc/net/tcp", "r");
    ck_assert_msg(f != NULL, "no /proc/net/tcp");
    snprintf(want, sizeof(want), ":%04X ", redis.port);
    while (fgets(line, sizeof(line), f)) {
        char local[64], remote[64], st[8], tr[16];
        /* sl local rem st tx:rx tr:tm->when ... */
        if (sscanf(line, "%*s %63s %63s %7s %*s %15s", local, remote, st, tr) != 4)
            continue;
        strcat(remote, " ");
        if (strcmp(st, "01") != 0 || !strstr(remote, want))
            continue;
        n++;                    /* an established socket towards Redis */
        if (strncmp(tr, "02:", 3) == 0)
            ka++;
    }
    fclose(f);
    printf("keepalive: %d of %d sockets to Redis have the keepalive timer\n", ka, n);
    ck_assert_msg(n >= 2, "expected the daemon's two links to Redis, found %d", n);
    ck_assert_int_eq(ka, n);
}
END_TEST

/* ------------------------------------------------------- resolving ---- */

/* [redis] host is a name and the resolver does not answer: the daemon's
 * loop stays free (PING answered at once), reads go to the upstream, and
 * each try gives up at connect_timeout_ms. When the resolver answers, the
 * daemon connects to the address it got and caches again. With host =
 * localhost (/etc/hosts) it connects without asking the resolver. */
START_TEST(t_resolve_redis_host)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    int dfd = socket(AF_INET, SOCK_DGRAM, 0), fd;
    char conf[128], rconf[160], env_resolv[PATH_MAX + 40];
    const char *env[2] = { env_resolv, NULL };
    long long worst = 0, t0, took;
    char *raw;
    long from;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 3);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(dfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(dfd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(conf, sizeof(conf), "nameserver 127.0.0.1:%d\n", ntohs(sa.sin_port));
    h_write_file(h_path("resolv.conf"), conf, strlen(conf));
    snprintf(env_resolv, sizeof(env_resolv), "CACHASIDED_RESOLV_CONF=%s", h_path("resolv.conf"));

    snprintf(rconf, sizeof(rconf), "host = redis.cachasided.test\nport = %d\nconnect_timeout_ms = 1000", redis.port);
    daemon_up(&d, env, rconf, "", up.port);
    fd = h_connect(d.port);
    for (t0 = h_now_ms(); h_now_ms() - t0 < 2500; h_msleep(100)) {
        long long s = h_now_ms();
        raw = su_rawq(fd, "PING", NULL);
        took = h_now_ms() - s;
        ck_assert_str_eq(raw, "+PONG\r\n");
        free(raw);
        if (took > worst)
            worst = took;
    }
    printf("resolve: slowest PING %lld ms while the resolver is silent\n", worst);
    ck_assert_msg(worst < 200, "PING took %lld ms while Redis's name was being resolved", worst);
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    su_expect_product(raw, 1);
    free(raw);
    ck_assert_int_eq(h_upstream_count(&up), 1);
    ck_assert_msg(h_log_contains(d.log, "cannot resolve redis.cachasided.test within connect_timeout_ms"), "%s",
                  h_log_tail(d.log));
    ck_assert_msg(!h_log_contains(d.log, "redis: connected"), "%s", h_log_tail(d.log));

    /* The resolver answers now. */
    for (long long end = h_now_ms() + 10000; !h_log_contains(d.log, "subscribed to cache:fills");) {
        ck_assert_msg(h_now_ms() < end, "never connected once the name resolved: %s", h_log_tail(d.log));
        h_dns_serve(dfd, 100);
    }
    ck_assert_msg(h_wait_log(d.log, "redis: connected", 5000) == 0, "%s", h_log_tail(d.log));
    raw = su_rawq(fd, "HGETALL", "product:p-002", NULL);
    su_expect_product(raw, 2);
    free(raw);
    {
        int rfd = h_connect(redis.port);
        ck_assert_int_eq(su_wait_cached(rfd, "cache:product:{p-002}", 2000), 0);
        h_close(rfd);
    }
    h_close(fd);
    ck_assert_int_eq(h_daemon_stop(&d), 0);

    /* localhost comes from /etc/hosts: no query to the (silent) resolver. */
    from = h_log_size(d.log);
    snprintf(rconf, sizeof(rconf), "host = localhost\nport = %d\nconnect_timeout_ms = 1000", redis.port);
    h_daemon_start_env(&d, env,
                       "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n[redis]\n%s\n"
                       "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                       d.port, rconf, up.port);
    su_wait_log_linked(&d, from);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
    close(dfd);
}
END_TEST

/* ------------------------------------------------------------- main ---- */

int main(void)
{
    const struct su_case cases[] = {
        { "pause_keeps_link", t_pause_keeps_link, 40, 0 },
        { "own_stall_not_blamed", t_own_stall_not_blamed, 40, 0 },
        { "silent_subscriber", t_silent_subscriber, 60, 0 },
        { "keepalive", t_keepalive, 30, 0 },
        { "resolve_redis_host", t_resolve_redis_host, 60, 0 },
    };

    return SU_RUN("rlink", cases, CK_ENV);
}
