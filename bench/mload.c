/* SPDX-License-Identifier: BSD-3-Clause */
/* mload.c - batches of reads, plain pipelines or MULTI/EXEC, for bench/run.
 *
 *   mload -p PORT [-c CONNS] [-k BATCH] [-m] [-3] [-a] [-d SECONDS]
 *         [-r KEYS] [-K KEYFMT] [-f FIELD]
 *
 * Each of CONNS connections sends BATCH pipelined `HGET key FIELD` (-a:
 * `HGETALL key`), wrapped in MULTI ... EXEC with -m, waits for the whole
 * batch's replies, checks them, and sends the next, for SECONDS. Keys are
 * KEYFMT (a printf format of one integer) of a number below KEYS, picked
 * at random for each command. -3 sends HELLO 3 first (RESP3 replies).
 *
 * A batch counts only when every reply is what it should be: with -m,
 * +OK, BATCH times +QUEUED, and an EXEC array of BATCH elements; each read
 * a non-null bulk (HGET) or a non-empty array or map (HGETALL). Anything
 * else stops the run with the reply shown and exit status 1, so a broken
 * server cannot look fast. Prints one line: reads/s, batches/s, and the
 * counts. libc and poll only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

struct opts {
    int port, conns, batch, seconds, keys;
    bool multi, resp3, all;
    const char *keyfmt, *field;
};

struct mconn {
    int fd;
    char *out;
    size_t ocap, olen, opos;
    char *in;
    size_t isize, ilen;
    bool hello;                 /* waiting for HELLO 3's answer */
};

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("mload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

static void put(struct mconn *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(c->out + c->olen, c->ocap - c->olen, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("format");
        if ((size_t)n < c->ocap - c->olen)
            break;
        c->ocap = 2 * c->ocap + (size_t)n;
        c->out = xrealloc(c->out, c->ocap);
    }
    c->olen += (size_t)n;
}

static void put_cmd(struct mconn *c, int argc, const char **argv)
{
    put(c, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        put(c, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
}

static void build_batch(struct mconn *c, const struct opts *o)
{
    char key[512];
    const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    const char *cmd[3];

    c->olen = c->opos = 0;
    if (o->multi)
        put_cmd(c, 1, multi);
    for (int i = 0; i < o->batch; i++) {
        snprintf(key, sizeof(key), o->keyfmt, rand() % o->keys);
        cmd[0] = o->all ? "HGETALL" : "HGET";
        cmd[1] = key;
        cmd[2] = o->field;
        put_cmd(c, o->all ? 2 : 3, cmd);
    }
    if (o->multi)
        put_cmd(c, 1, exec);
}

/* Where the RESP value at b[i] ends, 0 while incomplete. *n is its
 * header's count (or length), *t its type. */
static size_t val_end(const char *b, size_t len, size_t i, char *t, long long *n)
{
    const char *nl = memchr(b + i, '\n', len - i);
    long long cnt, sub;
    size_t at;
    char st;

    if (!nl)
        return 0;
    *t = b[i];
    cnt = strtoll(b + i + 1, NULL, 10);
    *n = cnt;
    at = (size_t)(nl - b) + 1;
    switch (*t) {
    case '+': case '-': case ':': case '_': case '#': case ',': case '(':
        return at;
    case '$': case '=': case '!':
        if (cnt < 0)
            return at;
        return at + (size_t)cnt + 2 <= len ? at + (size_t)cnt + 2 : 0;
    case '*': case '~': case '>': case '%':
        if (*t == '%')
            cnt *= 2;
        for (long long k = 0; k < cnt; k++)
            if ((at = val_end(b, len, at, &st, &sub)) == 0)
                return 0;
        return at;
    default:
        die("not RESP: %.40s", b + i);
    }
    return 0;
}

static void bad(const struct mconn *c, size_t at, const char *want)
{
    size_t n = c->ilen - at < 120 ? c->ilen - at : 120;
    char shown[121];

    for (size_t i = 0; i < n; i++)
        shown[i] = c->in[at + i] == '\r' || c->in[at + i] == '\n' ? ' ' : c->in[at + i];
    shown[n] = '\0';
    die("wanted %s, got: %s", want, shown);
}

/* One read's answer at in[at]: returns its end. */
static size_t check_read(const struct mconn *c, size_t at, const struct opts *o)
{
    char t;
    long long n;
    size_t end = val_end(c->in, c->ilen, at, &t, &n);

    if (o->all ? !((t == '*' || t == '%') && n > 0) : !(t == '$' && n >= 0))
        bad(c, at, o->all ? "a non-empty array or map" : "a bulk string");
    return end;
}

/* The whole batch is in: checks it, returns its length, 0 while partial. */
static size_t batch_end(struct mconn *c, const struct opts *o)
{
    size_t at = 0, end;
    int want = o->batch + (o->multi ? 2 : 0);
    char t;
    long long n;

    for (int i = 0; i < want; i++)
        if ((at = val_end(c->in, c->ilen, at, &t, &n)) == 0)
            return 0;
    end = at;
    at = 0;
    if (o->multi) {
        if (strncmp(c->in, "+OK\r\n", 5) != 0)
            bad(c, 0, "+OK for MULTI");
        at = 5;
        for (int i = 0; i < o->batch; i++, at += 9)
            if (strncmp(c->in + at, "+QUEUED\r\n", 9) != 0)
                bad(c, at, "+QUEUED");
        val_end(c->in, c->ilen, at, &t, &n);
        if (t != '*' || n != o->batch)
            bad(c, at, "EXEC's array of the batch");
        at = (size_t)((char *)memchr(c->in + at, '\n', c->ilen - at) - c->in) + 1;
    }
    for (int i = 0; i < o->batch; i++)
        at = check_read(c, at, o);
    if (at != end)
        die("batch parsed to %zu, ends at %zu", at, end);
    return end;
}

static int dial(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect to port %d: %s", port, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
        die("fcntl: %s", strerror(errno));
    return fd;
}

static bool flush_out(struct mconn *c)
{
    while (c->opos < c->olen) {
        ssize_t w = write(c->fd, c->out + c->opos, c->olen - c->opos);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
        if (w <= 0)
            die("write: %s", strerror(errno));
        c->opos += (size_t)w;
    }
    return true;
}

static void usage(void)
{
    fputs("usage: mload -p PORT [-c CONNS] [-k BATCH] [-m] [-3] [-a] [-d SECONDS] [-r KEYS] "
          "[-K KEYFMT] [-f FIELD]\n", stderr);
    exit(2);
}

static int num(const char *s, int min)
{
    char *e;
    long v = strtol(s, &e, 10);

    if (*s == '\0' || *e != '\0' || v < min || v > 1000000)
        usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    struct opts o = { .conns = 50, .batch = 16, .seconds = 5, .keys = 1000,
                      .keyfmt = "product:h-%012d", .field = "name" };
    struct mconn *cs;
    struct pollfd *pfd;
    long long batches = 0;
    double t0, end;
    int ch, live;

    while ((ch = getopt(argc, argv, "p:c:k:m3ad:r:K:f:")) != -1) {
        switch (ch) {
        case 'p': o.port = num(optarg, 1); break;
        case 'c': o.conns = num(optarg, 1); break;
        case 'k': o.batch = num(optarg, 1); break;
        case 'm': o.multi = true; break;
        case '3': o.resp3 = true; break;
        case 'a': o.all = true; break;
        case 'd': o.seconds = num(optarg, 1); break;
        case 'r': o.keys = num(optarg, 1); break;
        case 'K': o.keyfmt = optarg; break;
        case 'f': o.field = optarg; break;
        default: usage();
        }
    }
    if (!o.port || optind != argc || !strstr(o.keyfmt, "%"))
        usage();
    cs = calloc((size_t)o.conns, sizeof(*cs));
    pfd = calloc((size_t)o.conns, sizeof(*pfd));
    if (!cs || !pfd)
        die("out of memory");
    srand(1);
    for (int i = 0; i < o.conns; i++) {
        struct mconn *c = &cs[i];
        static const char hello[] = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";

        c->fd = dial(o.port);
        c->isize = 65536;
        c->in = xrealloc(NULL, c->isize);
        c->ocap = 4096;
        c->out = xrealloc(NULL, c->ocap);
        if (o.resp3) {
            memcpy(c->out, hello, sizeof(hello) - 1);
            c->olen = sizeof(hello) - 1;
            c->hello = true;
        } else {
            build_batch(c, &o);
        }
        pfd[i].fd = c->fd;
    }
    t0 = now_s();
    end = t0 + o.seconds;
    live = o.conns;
    while (live > 0) {
        for (int i = 0; i < o.conns; i++)
            pfd[i].events = cs[i].fd < 0 ? 0 : cs[i].opos < cs[i].olen ? POLLOUT | POLLIN : POLLIN;
        if (poll(pfd, (nfds_t)o.conns, 1000) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (int i = 0; i < o.conns; i++) {
            struct mconn *c = &cs[i];
            ssize_t n;
            size_t used;

            if (c->fd < 0 || !pfd[i].revents)
                continue;
            if (pfd[i].revents & POLLOUT)
                flush_out(c);
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (c->ilen == c->isize)
                c->in = xrealloc(c->in, c->isize *= 2);
            n = read(c->fd, c->in + c->ilen, c->isize - c->ilen);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0)
                die("connection %d closed by the server (%s)", i, n < 0 ? strerror(errno) : "EOF");
            c->ilen += (size_t)n;
            if (c->hello) {
                char t;
                long long cnt;
                if ((used = val_end(c->in, c->ilen, 0, &t, &cnt)) == 0)
                    continue;
                if (t != '%')
                    bad(c, 0, "HELLO 3's map");
                c->hello = false;
            } else if ((used = batch_end(c, &o)) == 0) {
                continue;
            } else {
                batches++;
            }
            if (used != c->ilen)
                die("connection %d: %zu bytes after a whole batch", i, c->ilen - used);
            c->ilen = 0;
            if (now_s() >= end) {
                close(c->fd);
                c->fd = -1;
                live--;
                continue;
            }
            build_batch(c, &o);
            flush_out(c);
        }
    }
    {
        double dt = now_s() - t0;
        printf("reads_per_s %.0f batches_per_s %.0f batches %lld reads %lld seconds %.3f "
               "conns %d batch %d multi %d resp3 %d\n",
               (double)batches * o.batch / dt, (double)batches / dt, batches, batches * o.batch, dt,
               o.conns, o.batch, o.multi, o.resp3);
    }
    for (int i = 0; i < o.conns; i++) {
        free(cs[i].in);
        free(cs[i].out);
    }
    free(cs);
    free(pfd);
    return 0;
}
