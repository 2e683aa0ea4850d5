/* SPDX-License-Identifier: BSD-3-Clause */
/* test_rwire.c - integration tests of the daemon's own Redis wire (rio.c
 * reads the socket and parses replies in place, rlink.c gives each reply
 * to the oldest command it sent): replies that come in pieces, bytes that
 * are not RESP, a reply nobody asked for, and scripts Redis has forgotten.
 *
 * A TCP proxy, forked from the test, sits between the daemon and Redis. It
 * passes Redis's bytes to the daemon one byte a write, in random pieces of
 * 1 to 7 or of 1 to 256 bytes, or as they come, and on the test's word it
 * adds bytes of its own to what the daemon reads on the command connection
 * (never on the one whose client sent SUBSCRIBE). The test talks to it
 * over a socket pair: one byte a command, one byte back. The example
 * upstream (-g N) serves products p-001 .. p-00N. */
#define _GNU_SOURCE
#include "suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------- helpers ---- */

/* One client reads p-<i> on a connection of its own. */
static void read_product(int port, int i)
{
    char key[32], *raw;
    int fd = h_connect(port);

    snprintf(key, sizeof(key), "product:p-%03d", i);
    raw = h_cmd(fd, "HGETALL", key, NULL);
    su_expect_product(raw, i);
    free(raw);
    h_close(fd);
}

/* One client sends HGETALL p-<first> .. p-<last> in one write; each reply
 * must be its own product, in order. */
static void read_pipelined(int fd, int first, int last, int timeout_ms)
{
    char req[64 * 64] = "";
    size_t off = 0;

    for (int i = first; i <= last; i++)
        off += (size_t)snprintf(req + off, sizeof(req) - off, "*2\r\n$7\r\nHGETALL\r\n$13\r\nproduct:p-%03d\r\n", i);
    ck_assert_int_eq(h_send(fd, req, off), 0);
    for (int i = first; i <= last; i++) {
        char *raw = h_read_reply(fd, timeout_ms);
        su_expect_product(raw, i);
        free(raw);
    }
}

/* How many times needle is in the log past offset from. */
static int log_count(const char *path, long from, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;

    if (!f)
        return 0;
    if (fseek(f, from, SEEK_SET) == 0)
        while (fgets(line, sizeof(line), f))
            n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Whether needle was logged past from (already: no wait). */
static bool logged_after(const char *path, long from, const char *needle)
{
    return log_count(path, from, needle) > 0;
}

/* The read(2)-like calls the process has made. */
static long long read_calls(pid_t pid)
{
    return su_proc_counter(pid, "io", "syscr");
}

/* The first line past from that holds needle, or "" (a static buffer). */
static const char *log_line(const char *path, long from, const char *needle)
{
    static char line[4096];
    FILE *f = fopen(path, "r");
    bool found = false;

    if (f && fseek(f, from, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof(line), f))
            found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found ? line : "";
}

/* No link of the daemon's was dropped (a reply it could not read would). */
#define EXPECT_NO_DROP(d) \
    ck_assert_msg(!h_log_contains((d)->log, "reconnecting") && !h_log_contains((d)->log, "connection lost"), \
                  "a link was dropped: %s", \
                  log_line((d)->log, 0, h_log_contains((d)->log, "connection lost") ? "connection lost" : "reconnecting"))

static void daemon_up(struct h_daemon *d, int redis_port, const char *redis, int up_port)
{
    h_daemon_init(d);
    h_daemon_start(d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                   "[redis]\nport = %d\n%s\n"
                   "[cache]\nupstream_timeout_ms = 3000\nlock_ttl_ms = 6000\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d->port, redis_port, redis, up_port);
}

/* ------------------------------------------------------- the proxy ---- */

enum wp_mode { WP_WHOLE = 'w', WP_BYTE = 'b', WP_CHUNKS = 'c', WP_PIECES = 'p' };
#define WP_GARBAGE "%%%garbage\r\n"
#define WP_UNASKED "+OK\r\n"
#define WP_IDLE_MS 150          /* quiet this long: no command of the daemon's is on the wire */
#define WP_MAX 16

struct wp_out {                 /* bytes waiting for one side */
    char *p;
    size_t off, len, cap;
};

struct wp_pair {
    int a, b;                   /* the daemon's side, Redis's side */
    bool sub;                   /* the daemon sent SUBSCRIBE on it */
    struct wp_out to_a, to_b;
    long long quiet_since;      /* the last byte either way */
};

struct wp {
    int lfd, ctl, redis_port;
    int mode;
    bool garbage_armed, unasked_armed;
    int injected;               /* bytes of ours added so far, each kind counted once */
    struct wp_pair pr[WP_MAX];
    int np;
    unsigned seed;
};

static void wp_add(struct wp_out *o, const char *p, size_t n)
{
    if (o->off == o->len)
        o->off = o->len = 0;
    if (o->cap - o->len < n) {
        o->cap = (o->len + n) * 2;
        o->p = realloc(o->p, o->cap);
        if (!o->p)
            _exit(3);
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

/* Writes n bytes whole (the proxy's sockets block); false: the peer went. */
static bool wp_put(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void wp_close(struct wp *x, int i)
{
    close(x->pr[i].a);
    close(x->pr[i].b);
    free(x->pr[i].to_a.p);
    free(x->pr[i].to_b.p);
    x->pr[i] = x->pr[--x->np];
}

static void wp_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void wp_accept(struct wp *x)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)x->redis_port) };
    int c = accept(x->lfd, NULL, NULL), r = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c >= 0 && r >= 0 && x->np < WP_MAX && connect(r, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        wp_nodelay(c);
        wp_nodelay(r);
        x->pr[x->np++] = (struct wp_pair){ .a = c, .b = r, .quiet_since = h_now_ms() };
        return;
    }
    if (c >= 0)
        close(c);
    if (r >= 0)
        close(r);
}

/* A command from the test: a mode, an injection to arm, or '?' (how many
 * injections were made). Every command is answered with one byte. */
static void wp_control(struct wp *x)
{
    char cmd, ack = 1;

    if (read(x->ctl, &cmd, 1) != 1)
        _exit(0);               /* the test is gone */
    switch (cmd) {
    case WP_WHOLE:
    case WP_BYTE:
    case WP_CHUNKS:
    case WP_PIECES:
        x->mode = cmd;
        break;
    case 'g':
        x->garbage_armed = true;
        break;
    case 'o':
        x->unasked_armed = true;
        break;
    case '?':
        ack = (char)x->injected;
        break;
    default:
        ack = 0;
    }
    if (write(x->ctl, &ack, 1) != 1)
        _exit(0);
}

/* Reads what one side has sent; false: it closed. */
static bool wp_read(struct wp *x, struct wp_pair *p, bool from_daemon)
{
    char buf[65536];
    ssize_t got = read(from_daemon ? p->a : p->b, buf, sizeof(buf));

    if (got <= 0)
        return false;
    p->quiet_since = h_now_ms();
    if (!from_daemon) {
        wp_add(&p->to_a, buf, (size_t)got);
        return true;
    }
    if (!p->sub && memmem(buf, (size_t)got, "SUBSCRIBE", 9))
        p->sub = true;
    if (!p->sub && x->garbage_armed) {
        /* Before Redis can answer this command, the daemon reads bytes
         * that are not RESP. */
        x->garbage_armed = false;
        x->injected++;
        wp_add(&p->to_a, WP_GARBAGE, strlen(WP_GARBAGE));
    }
    wp_add(&p->to_b, buf, (size_t)got);
    return true;
}

/* Passes on what is waiting: all of it to Redis, one piece to the daemon.
 * False: a side went. */
static bool wp_pass(struct wp *x, struct wp_pair *p)
{
    struct wp_out *o = &p->to_a;
    size_t n = o->len - o->off;

    if (p->to_b.len > p->to_b.off && !wp_put(p->b, p->to_b.p + p->to_b.off, p->to_b.len - p->to_b.off))
        return false;
    p->to_b.off = p->to_b.len;
    if (n == 0)
        return true;
    if (x->mode == WP_BYTE)
        n = 1;
    else if (x->mode == WP_CHUNKS || x->mode == WP_PIECES) {
        size_t piece = 1 + (size_t)(rand_r(&x->seed) % (x->mode == WP_CHUNKS ? 7 : 256));
        n = piece < n ? piece : n;
    }
    if (!wp_put(p->a, o->p + o->off, n))
        return false;
    o->off += n;
    if (x->mode == WP_BYTE)
        usleep(50);             /* time for the daemon to read this byte alone */
    return true;
}

static void wp_run(struct wp *x)
{
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        struct pollfd pfd[2 + 2 * WP_MAX];
        bool busy = false;
        int n = 0;

        pfd[n++] = (struct pollfd){ .fd = x->lfd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = x->ctl, .events = POLLIN };
        for (int i = 0; i < x->np; i++) {
            pfd[n++] = (struct pollfd){ .fd = x->pr[i].a, .events = POLLIN };
            pfd[n++] = (struct pollfd){ .fd = x->pr[i].b, .events = POLLIN };
            busy |= x->pr[i].to_a.len > x->pr[i].to_a.off;
        }
        if (poll(pfd, (nfds_t)n, busy ? 0 : 10) < 0 && errno != EINTR)
            _exit(1);
        if (pfd[1].revents)
            wp_control(x);
        for (int i = 0, k = 2; i < x->np; k += 2) {
            struct wp_pair *p = &x->pr[i];
            bool ok = true;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                ok = wp_read(x, p, true);
            if (ok && (pfd[k + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                ok = wp_read(x, p, false);
            if (ok)
                ok = wp_pass(x, p);
            if (!ok) {
                wp_close(x, i);     /* the last pair moves to i; its events are lost for one turn */
                continue;
            }
            if (x->unasked_armed && !p->sub && p->to_a.off == p->to_a.len &&
                h_now_ms() - p->quiet_since >= WP_IDLE_MS) {
                /* A reply to nothing, on a link with no command out. */
                x->unasked_armed = false;
                x->injected++;
                wp_add(&p->to_a, WP_UNASKED, strlen(WP_UNASKED));
            }
            i++;
        }
        if (pfd[0].revents & POLLIN)
            wp_accept(x);
    }
}

/* Starts the proxy in MODE in a child; *port is where it listens, *ctl the
 * test's end of the control socket. */
static pid_t wp_start(int redis_port, int mode, int *port, int *ctl)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1, sv[2];
    struct wp x;
    pid_t pid;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(lfd, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    *port = ntohs(sa.sin_port);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        memset(&x, 0, sizeof(x));
        x.lfd = lfd;
        x.ctl = sv[1];
        x.redis_port = redis_port;
        x.mode = mode;
        x.seed = 7;
        wp_run(&x);             /* never returns */
    }
    close(lfd);
    close(sv[1]);
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    *ctl = sv[0];
    return pid;
}

/* One command to the proxy; its one-byte answer. */
static int wp_say(int ctl, char cmd)
{
    struct pollfd p = { .fd = ctl, .events = POLLIN };
    char ack;

    ck_assert_int_eq(write(ctl, &cmd, 1), 1);
    ck_assert_msg(poll(&p, 1, 5000) == 1, "the proxy did not answer '%c'", cmd);
    ck_assert_int_eq(read(ctl, &ack, 1), 1);
    return ack;
}

static void wp_stop(pid_t pid, int ctl)
{
    int st;

    close(ctl);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

/* ---------------------------------------------------------- trickle ---- */

/* A JSON record whose "data" is n bytes of printable noise. */
static char *big_body(size_t n, char **data)
{
    char *body = malloc(n + 64), *p;
    unsigned seed = 11;

    ck_assert_ptr_nonnull(body);
    p = body + sprintf(body, "{\"id\":\"big\",\"data\":\"");
    *data = p;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + rand_r(&seed) % 26);
    strcpy(p + n, "\"}");
    return body;
}

/* raw (rawlen bytes) is the HGETALL reply of product:big: its "data" is
 * want (n bytes). */
static void expect_big(const char *raw, size_t rawlen, const char *want, size_t n)
{
    struct h_reply *r;
    bool found = false;

    ck_assert_msg(raw != NULL, "no reply for product:big");
    r = h_parse_reply_len(raw, rawlen);
    ck_assert_msg(r->type == H_REPLY_ARRAY && r->elements == 4, "product:big: %zu elements, type %c", r->elements,
                  r->type);
    for (size_t k = 0; k + 1 < r->elements; k += 2)
        if (strcmp(r->element[k]->str, "data") == 0) {
            ck_assert_msg(r->element[k + 1]->len == n, "data: %zu bytes, want %zu", r->element[k + 1]->len, n);
            ck_assert_msg(memcmp(r->element[k + 1]->str, want, n) == 0, "data: not the bytes the upstream sent");
            found = true;
        }
    ck_assert_msg(found, "product:big has no data field");
    h_reply_free(r);
}

/* Redis's bytes reach the daemon one byte a write (and a 300 KB record in
 * pieces of 1 to 7 bytes): the set-up completes, cold reads fill and
 * answer, 20 pipelined hits answer each its own record in order, and the
 * large field comes back byte for byte, from the cache (no upstream
 * request, no command timed out, no reconnect). The daemon's read calls
 * show that the replies really came in pieces. Then the same in pieces of
 * up to 256 bytes and as the bytes come, where a reply's first read holds
 * a part of it that is more than its first line. */
START_TEST(t_trickle)
{
    enum { NCOLD = 5, NALL = 20, BIG = 300 * 1000 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    char *data, *body = big_body(BIG, &data), *raw;
    int px_port, ctl, fd, rfd;
    long long t0, reads;
    size_t len;
    pid_t px;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, NALL);
    h_upstream_set_body(&up, "big", body);
    px = wp_start(redis.port, WP_BYTE, &px_port, &ctl);
    t0 = h_now_ms();
    daemon_up(&d, px_port, "command_timeout_ms = 10000", up.port);
    su_wait_log_linked(&d, 0);
    printf("trickle: linked in %lld ms, Redis's replies a byte a write\n", h_now_ms() - t0);
    rfd = h_connect(redis.port);

    /* Cold reads, one client each: lock, fetch, fill, answer. */
    for (int i = 1; i <= NCOLD; i++) {
        char key[40];
        read_product(d.port, i);
        snprintf(key, sizeof(key), "cache:product:{p-%03d}", i);
        ck_assert_msg(su_wait_cached(rfd, key, 5000) == 0, "%s not filled", key);
    }
    ck_assert_int_eq(h_upstream_count(&up), NCOLD);
    /* The rest cold too, pipelined by one client. */
    fd = h_connect(d.port);
    read_pipelined(fd, NCOLD + 1, NALL, 15000);
    EXPECT_NO_DROP(&d);
    ck_assert_int_eq(h_upstream_count(&up), NALL);

    /* All cached now: 20 hits in one write, their replies trickled. */
    reads = read_calls(d.pid);
    t0 = h_now_ms();
    read_pipelined(fd, 1, NALL, 15000);
    reads = read_calls(d.pid) - reads;
    printf("trickle: %d pipelined hits in %lld ms, %lld read calls\n", NALL, h_now_ms() - t0, reads);
    EXPECT_NO_DROP(&d);
    ck_assert_int_eq(h_upstream_count(&up), NALL);
    ck_assert_msg(reads > 2 * NALL, "only %lld reads for %d replies a byte a write: not read in pieces", reads, NALL);

    /* 300 KB in small random pieces: a cold read fills it, a hit reads it
     * back from Redis. */
    ck_assert_int_eq(wp_say(ctl, WP_CHUNKS), 1);
    t0 = h_now_ms();
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:big", NULL), 0);
    raw = h_read_reply_len(fd, 20000, &len);
    expect_big(raw, len, data, BIG);
    free(raw);
    ck_assert_msg(su_wait_cached(rfd, "cache:product:{big}", 5000) == 0, "product:big not filled");
    ck_assert_int_eq(h_upstream_count(&up), NALL + 1);
    reads = read_calls(d.pid);
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:big", NULL), 0);
    raw = h_read_reply_len(fd, 20000, &len);
    reads = read_calls(d.pid) - reads;
    EXPECT_NO_DROP(&d);
    printf("trickle: cold and hit read of a %d-byte field in %lld ms (the hit: %lld read calls)\n", BIG,
           h_now_ms() - t0, reads);
    expect_big(raw, len, data, BIG);
    free(raw);
    ck_assert_int_eq(h_upstream_count(&up), NALL + 1);
    ck_assert_msg(reads > 200, "only %lld reads for 300 KB in pieces of 1 to 7 bytes", reads);

    /* Pieces of up to 256 bytes: a reply's first read often holds some of
     * its elements but not all (parsed in part, then scanned). */
    ck_assert_int_eq(wp_say(ctl, WP_PIECES), 1);
    for (int round = 0; round < 5; round++)
        read_pipelined(fd, 1, NALL, 5000);
    EXPECT_NO_DROP(&d);
    /* Bytes as they come: the 300 KB reply's first read is a part of it. */
    ck_assert_int_eq(wp_say(ctl, WP_WHOLE), 1);
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:big", NULL), 0);
    raw = h_read_reply_len(fd, 5000, &len);
    expect_big(raw, len, data, BIG);
    free(raw);
    read_pipelined(fd, 1, NALL, 5000);
    EXPECT_NO_DROP(&d);
    ck_assert_int_eq(h_upstream_count(&up), NALL + 1);
    ck_assert_msg(!h_log_contains(d.log, "command_timeout_ms"), "commands timed out: %s", h_log_tail(d.log));
    ck_assert_int_eq(su_stat(fd, "redis_errors"), 0);
    h_close(fd);
    h_close(rfd);
    wp_stop(px, ctl);
    free(body);
}
END_TEST

/* ------------------------------------------------- faults on the wire -- */

/* A daemon through the proxy with p-001 .. p-00<n> cached. */
static void cached_daemon(struct h_daemon *d, int px_port, struct h_upstream *up, int n)
{
    daemon_up(d, px_port, "command_timeout_ms = 5000", up->port);
    su_wait_log_linked(d, 0);
    for (int i = 1; i <= n; i++)
        read_product(d->port, i);
    ck_assert_int_eq(h_upstream_count(up), n);
}

/* The value of STATS line name (a new connection asks); "" if none. */
static const char *stat_text(int port, const char *name)
{
    static char val[256];
    int fd = h_connect(port);
    char *raw = h_cmd(fd, "STATS", NULL);
    size_t nl = strlen(name);
    const char *p;

    val[0] = '\0';
    ck_assert_msg(raw && raw[0] == '$', "STATS: %s", h_repr(raw));
    for (p = raw; (p = strstr(p, name)) != NULL; p += nl)
        if (p[-1] == '\n' && p[nl] == ':') {
            snprintf(val, sizeof(val), "%.*s", (int)strcspn(p + nl + 1, "\r\n"), p + nl + 1);
            break;
        }
    free(raw);
    h_close(fd);
    return val;
}

/* Clients that were connected before a fault still are, and are served. */
static void expect_served(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        char key[32], *raw;
        CK_REPLY(h_cmd(fds[i], "PING", NULL), "+PONG\r\n");
        snprintf(key, sizeof(key), "product:p-%03d", i + 1);
        raw = h_cmd(fds[i], "HGETALL", key, NULL);
        su_expect_product(raw, i + 1);
        free(raw);
    }
}

/* Bytes that are not RESP come on the command connection while a read's
 * command is on it: the link is dropped ("Protocol error") and set up
 * again, the read is still answered with its own record, the subscriber
 * is left alone, every other client's connection stays open and served,
 * and once the link is back hits come from the cache again. */
START_TEST(t_garbage)
{
    enum { NCACHED = 4, NOTHERS = 3 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int px_port, ctl, fd, others[NOTHERS];
    long from, count;
    long long t0, took, reconnects;
    pid_t px;
    char *raw;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 9);
    px = wp_start(redis.port, WP_WHOLE, &px_port, &ctl);
    cached_daemon(&d, px_port, &up, NCACHED);
    for (int i = 0; i < NOTHERS; i++)
        others[i] = h_connect(d.port);
    expect_served(others, NOTHERS);
    fd = h_connect(d.port);

    reconnects = su_stat_port(d.port, "redis_reconnects");
    from = h_log_size(d.log);
    ck_assert_int_eq(wp_say(ctl, 'g'), 1);
    t0 = h_now_ms();
    ck_assert_int_eq(h_send_cmdv(fd, "HGETALL", "product:p-002", NULL), 0);     /* its command meets the garbage */
    raw = h_read_reply(fd, 15000);
    took = h_now_ms() - t0;
    su_expect_product(raw, 2);
    free(raw);
    /* Failed when the link went, not at command_timeout_ms (5000). */
    ck_assert_msg(took < 3000, "the read waited %lld ms", took);
    ck_assert_int_eq(wp_say(ctl, '?'), 1);
    ck_assert_msg(h_wait_log_after(d.log, from, "Protocol error", 5000) == 0, "no protocol error logged: %s",
                  h_log_tail(d.log));
    ck_assert_msg(h_wait_log_after(d.log, from, "redis: connected", 5000) == 0, "the link did not come back: %s",
                  h_log_tail(d.log));
    printf("garbage: read answered in %lld ms; %s", took, log_line(d.log, from, "Protocol error"));
    /* The read's command was on the wire when the link went: it failed,
     * and the read was answered from the upstream. */
    ck_assert_int_eq(h_upstream_count_id(&up, "p-002"), 2);
    ck_assert_msg(!logged_after(d.log, from, "redis subscriber: connection lost") &&
                  !logged_after(d.log, from, "redis subscriber: reconnecting"),
                  "the subscriber was dropped: %s", h_log_tail(d.log));

    /* The same client, and the others, on the same connections. */
    raw = h_cmd(fd, "HGETALL", "product:p-003", NULL);
    su_expect_product(raw, 3);
    free(raw);
    expect_served(others, NOTHERS);
    /* Cached reads are hits again; a cold one fills. */
    count = h_upstream_count(&up);
    read_pipelined(fd, 1, NCACHED, 5000);
    ck_assert_int_eq(h_upstream_count(&up), count);
    read_product(d.port, 9);
    ck_assert_int_eq(h_upstream_count(&up), count + 1);
    ck_assert_int_eq(su_stat_port(d.port, "redis_reconnects"), reconnects + 1);
    ck_assert_str_eq(stat_text(d.port, "redis_state"), "up");
    ck_assert_int_eq(h_is_closed(fd, 0), 0);
    for (int i = 0; i < NOTHERS; i++)
        ck_assert_int_eq(h_is_closed(others[i], 0), 0);
    wp_stop(px, ctl);
}
END_TEST

/* "+OK" comes on the idle command connection, a reply to nothing: the link
 * is dropped ("reply to no command") rather than handing that reply, and
 * every one after it, to the wrong command. The reads right after, and
 * once the link is back, each get their own record. */
START_TEST(t_unasked_reply)
{
    enum { NCACHED = 5 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int px_port, ctl, fd;
    long from, count;
    long long end, reconnects;
    pid_t px;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 9);
    px = wp_start(redis.port, WP_WHOLE, &px_port, &ctl);
    cached_daemon(&d, px_port, &up, NCACHED);
    fd = h_connect(d.port);
    read_pipelined(fd, 1, NCACHED, 5000);

    reconnects = su_stat_port(d.port, "redis_reconnects");
    from = h_log_size(d.log);
    ck_assert_int_eq(wp_say(ctl, 'o'), 1);
    for (end = h_now_ms() + 5000; wp_say(ctl, '?') == 0; h_msleep(20))
        ck_assert_msg(h_now_ms() < end, "the command connection was never idle for %d ms", WP_IDLE_MS);
    ck_assert_msg(h_wait_log_after(d.log, from, "reply to no command", 5000) == 0, "not logged: %s",
                  h_log_tail(d.log));
    printf("unasked reply: %s", log_line(d.log, from, "reply to no command"));

    /* Right after: every read its own record (from the cache or the upstream). */
    read_pipelined(fd, 1, NCACHED, 5000);
    read_product(d.port, 6);
    ck_assert_msg(h_wait_log_after(d.log, from, "redis: connected", 5000) == 0, "the link did not come back: %s",
                  h_log_tail(d.log));
    /* Back: hits again, in order, and a cold read fills. */
    count = h_upstream_count(&up);
    read_pipelined(fd, 1, NCACHED, 5000);
    ck_assert_int_eq(h_upstream_count(&up), count);
    read_product(d.port, 7);
    ck_assert_int_eq(h_upstream_count(&up), count + 1);
    ck_assert_int_eq(log_count(d.log, from, "reply to no command"), 1);
    ck_assert_int_eq(su_stat_port(d.port, "redis_reconnects"), reconnects + 1);
    ck_assert_msg(strstr(stat_text(d.port, "redis_last_error"), "reply to no command"), "redis_last_error: %s",
                  stat_text(d.port, "redis_last_error"));
    ck_assert_int_eq(h_is_closed(fd, 0), 0);
    wp_stop(px, ctl);
}
END_TEST

/* ------------------------------------------------------- NOSCRIPT ---- */

/* Redis forgets the scripts (SCRIPT FLUSH) under a running daemon: the next
 * cold read still fills the cache, the daemon saying it loads them again;
 * the cold read after that needs no second load. Then again with six cold
 * reads pipelined, so that several commands on the wire meet NOSCRIPT. */
START_TEST(t_noscript)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    long from;
    int rfd, fd, loads;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 0, 9);
    daemon_up(&d, redis.port, "", up.port);
    su_wait_log_linked(&d, 0);
    rfd = h_connect(redis.port);
    read_product(d.port, 1);
    ck_assert_int_eq(su_wait_cached(rfd, "cache:product:{p-001}", 2000), 0);
    ck_assert_int_eq(h_upstream_count(&up), 1);

    from = h_log_size(d.log);
    EXPECT_RAW("+OK\r\n", rfd, "SCRIPT", "FLUSH", NULL);
    read_product(d.port, 2);
    ck_assert_msg(su_wait_cached(rfd, "cache:product:{p-002}", 2000) == 0,
                  "p-002 not filled after SCRIPT FLUSH: %s", h_log_tail(d.log));
    ck_assert_int_eq(h_upstream_count(&up), 2);
    loads = log_count(d.log, from, "(NOSCRIPT), loading it again");
    printf("noscript: %d script(s) loaded again for the first cold read\n", loads);
    ck_assert_msg(loads >= 1, "no NOSCRIPT reload logged: %s", h_log_tail(d.log));

    read_product(d.port, 3);
    ck_assert_msg(su_wait_cached(rfd, "cache:product:{p-003}", 2000) == 0, "p-003 not filled: %s",
                  h_log_tail(d.log));
    ck_assert_int_eq(h_upstream_count(&up), 3);
    ck_assert_int_eq(log_count(d.log, from, "(NOSCRIPT), loading it again"), loads);
    ck_assert_msg(!logged_after(d.log, from, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    /* The hit path is unchanged: no upstream request. */
    read_product(d.port, 2);
    ck_assert_int_eq(h_upstream_count(&up), 3);

    /* Forgotten again, then six cold reads in one write: every command that
     * met NOSCRIPT is run again once, after the load, each read its own. */
    EXPECT_RAW("+OK\r\n", rfd, "SCRIPT", "FLUSH", NULL);
    fd = h_connect(d.port);
    read_pipelined(fd, 4, 9, 5000);
    h_close(fd);
    for (int i = 4; i <= 9; i++) {
        char key[40];
        snprintf(key, sizeof(key), "cache:product:{p-%03d}", i);
        ck_assert_msg(su_wait_cached(rfd, key, 2000) == 0, "%s not filled after the second SCRIPT FLUSH: %s", key,
                      h_log_tail(d.log));
    }
    ck_assert_int_eq(h_upstream_count(&up), 9);
    printf("noscript: %d reload(s) for six pipelined cold reads\n",
           log_count(d.log, from, "(NOSCRIPT), loading it again") - loads);
    ck_assert_msg(!logged_after(d.log, from, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    h_close(rfd);
}
END_TEST

/* ------------------------------------------------------------- main ---- */

int main(void)
{
    const struct su_case cases[] = {
        { "trickle", t_trickle, 60, 0 },
        { "garbage", t_garbage, 30, 0 },
        { "unasked_reply", t_unasked_reply, 30, 0 },
        { "noscript", t_noscript, 30, 0 },
    };

    return SU_RUN("rwire", cases, CK_ENV);
}
