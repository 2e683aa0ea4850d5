/* SPDX-License-Identifier: BSD-3-Clause */
/* test_confsrv.c - integration tests of the daemon at its limits and across
 * a reload: running out of file descriptors (issue: accept spin, log flood,
 * RLIMIT_NOFILE vs max_clients) and keys that only a restart applies
 * (docs/design.md section 3: every [redis] key and the listener addresses keep their running
 * values after SIGHUP; the log names each one that changed).  Every test
 * runs a real redis-server, the example upstream and the built daemon. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers -- */

/* Starts the daemon with the open files limit set to SOFT/HARD (through
 * the shell's ulimit, so the test process keeps its own limit), and waits
 * until it listens.  The config is printf-formatted into d->conf. */
static void start_nofile(struct h_daemon *d, int soft, int hard, const char *fmt, ...) H_PRINTF(4, 5);
static void start_nofile(struct h_daemon *d, int soft, int hard, const char *fmt, ...)
{
    char conf[4096], script[200];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(conf, sizeof conf, fmt, ap);
    va_end(ap);
    ck_assert_int_lt(n, (int)sizeof conf);
    snprintf(script, sizeof script, "confsrv-%d.ini", d->port);
    snprintf(d->conf, sizeof d->conf, "%s", h_path(script));
    snprintf(script, sizeof script, "confsrv-%d.log", d->port);
    snprintf(d->log, sizeof d->log, "%s", h_path(script));
    h_write_file(d->conf, conf, strlen(conf));
    /* Soft first: a hard limit below the current soft one is refused. */
    snprintf(script, sizeof script, "ulimit -Sn %d && ulimit -Hn %d && exec \"$0\" -c \"$1\"", soft, hard);
    {
        const char *argv[] = { "sh", "-c", script, h_daemon_bin(), d->conf, NULL };
        d->pid = h_spawn(argv, d->log);
    }
    ck_assert_msg(h_wait_port(d->port, H_TIMEOUT_MS) == 0, "daemon not listening: %s", h_log_tail(d->log));
}

/* CPU time (user + system) of PID in clock ticks. */
static long long proc_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    const char *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    ck_assert_ptr_nonnull(p);
    /* fields 3-13, then utime (14) and stime (15) */
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (long long)(ut + st);
}

/* The soft "Max open files" limit of PID. */
static long long proc_nofile_soft(pid_t pid)
{
    char path[64], line[256];
    long long soft = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Max open files", 14) == 0)
            soft = strtoll(line + 14, NULL, 10);
    fclose(f);
    return soft;
}

/* Lines in a file after byte offset OFF. */
static long log_lines_after(const char *path, long off)
{
    FILE *f = fopen(path, "r");
    long lines = 0;
    int ch;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    while ((ch = getc(f)) != EOF)
        if (ch == '\n')
            lines++;
    fclose(f);
    return lines;
}

/* Connects and PINGs: the fd if PONG came within TIMEOUT_MS, else -1 (the
 * connection, if any, is kept open in *pending). */
static int connect_ping(int port, int timeout_ms, int *pending)
{
    int fd = h_try_connect(port, 1000);
    char *r;

    *pending = -1;
    if (fd < 0)
        return -1;
    if (h_send(fd, "PING\r\n", 6) != 0) {
        h_close(fd);
        return -1;
    }
    r = h_read_reply(fd, timeout_ms);
    if (r && strcmp(r, "+PONG\r\n") == 0) {
        free(r);
        return fd;
    }
    free(r);
    *pending = fd;
    return -1;
}

/* 1 if Redis holds KEY. */
static int redis_exists(int rfd, const char *key)
{
    char *r = h_cmd(rfd, "EXISTS", key, NULL);
    long long v = h_reply_int(r);

    free(r);
    return v == 1;
}

/* Polls until Redis holds KEY: 0, or -1 after timeout_ms. */
static int redis_wait_key(int rfd, const char *key, int timeout_ms)
{
    long long end = h_now_ms() + timeout_ms;

    do {
        if (redis_exists(rfd, key))
            return 0;
        h_msleep(20);
    } while (h_now_ms() < end);
    return -1;
}

/* HGETALL of KEY: the raw reply must be an array with the record. */
static void read_record(int fd, const char *key)
{
    char *r = h_cmd(fd, "HGETALL", key, NULL);

    ck_assert_msg(r && r[0] == '*' && r[1] != '0' && strstr(r, "Product"), "HGETALL %s: %s", key, h_repr(r));
    free(r);
}

/* ----------------------------------------------- descriptor exhaustion -- */

#define NOFILE_LOW 64
#define MAX_TRY 200

/* At the open files limit the daemon pauses accepting instead of spinning
 * on a level-triggered listener: its CPU stays low, the accept error is
 * logged a bounded number of times (then a "repeated N times" count), the
 * clients it already has are served, and once descriptors are free again a
 * new client is accepted.  Before: 100% CPU and hundreds of thousands of
 * "accept: Too many open files" lines per second. */
START_TEST(test_fd_exhaustion_pauses_accept)
{
    struct h_redis redis = { 0 };
    struct h_upstream up;
    struct h_daemon d;
    int served[MAX_TRY], pending[MAX_TRY + 8], nserved = 0, npending = 0, fd, p;
    long long cpu0, cpu1;
    long off;
    long lines;
    char *r;

    h_redis_start(&redis);
    h_upstream_start(&up, 0, 5);
    h_daemon_init(&d);
    start_nofile(&d, NOFILE_LOW, NOFILE_LOW,
                 "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nclient_idle_timeout_s = 0\n"
                 "[redis]\nport = %d\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                 d.port, redis.port, up.port);
    ck_assert_msg(h_wait_log(d.log, "redis: connected", H_TIMEOUT_MS) == 0, "%s", h_log_tail(d.log));

    /* Fill the daemon's descriptor table with clients. */
    while (nserved < MAX_TRY) {
        fd = connect_ping(d.port, 1000, &p);
        if (fd < 0) {
            if (p >= 0)
                pending[npending++] = p;
            break;
        }
        served[nserved++] = fd;
    }
    ck_assert_msg(nserved > 10 && nserved < NOFILE_LOW, "served %d clients under a limit of %d", nserved, NOFILE_LOW);
    ck_assert_msg(npending == 1, "the first client over the limit should wait in the backlog");
    /* More waiting connections keep the listener readable. */
    for (int i = 0; i < 8; i++) {
        fd = h_try_connect(d.port, 1000);
        if (fd >= 0)
            pending[npending++] = fd;
    }

    off = h_log_size(d.log);
    cpu0 = proc_cpu_ticks(d.pid);
    h_msleep(2000);
    cpu1 = proc_cpu_ticks(d.pid);
    lines = log_lines_after(d.log, off);
    /* A spinning daemon burns ~2 s (sysconf(_SC_CLK_TCK) ticks per second);
     * a paused one next to nothing.  Generous: the machine is shared. */
    ck_assert_msg(cpu1 - cpu0 < sysconf(_SC_CLK_TCK) / 2, "daemon used %lld ticks of CPU in 2 s at the fd limit",
                  cpu1 - cpu0);
    ck_assert_msg(lines < 50, "%ld log lines in 2 s at the fd limit: %s", lines, h_log_tail(d.log));
    ck_assert_msg(h_log_contains(d.log, "Too many open files"), "accept error not logged: %s", h_log_tail(d.log));

    /* Clients it has are still served. */
    r = h_inline(served[0], "PING");
    ck_assert_msg(r && strcmp(r, "+PONG\r\n") == 0, "existing client: %s", h_repr(r));
    free(r);

    /* Free descriptors: the waiting ones go, then a new client is served. */
    for (int i = 0; i < npending; i++)
        h_close(pending[i]);
    for (int i = 0; i < 10; i++)
        h_close(served[--nserved]);
    fd = connect_ping(d.port, H_TIMEOUT_MS, &p);
    ck_assert_msg(fd >= 0, "no new client served after descriptors were freed: %s", h_log_tail(d.log));
    read_record(fd, "product:p-001");
    h_close(fd);
    /* The held-back accept errors are counted once their window ends. */
    ck_assert_msg(h_wait_log_after(d.log, off, "repeated", 8000) == 0, "no repeat count logged: %s",
                  h_log_tail(d.log));
    /* start-up compared max_clients (10000) with the limit it cannot raise */
    ck_assert_msg(h_log_contains(d.log, "RLIMIT_NOFILE is 64"), "no open files warning: %s", h_log_tail(d.log));
    for (int i = 0; i < nserved; i++)
        h_close(served[i]);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* A soft open files limit below what max_clients needs is raised at start,
 * up to the hard limit. */
START_TEST(test_nofile_raised)
{
    struct h_redis redis = { 0 };
    struct h_daemon d;
    long long soft;

    h_redis_start(&redis);
    h_daemon_init(&d);
    start_nofile(&d, NOFILE_LOW, 4096,
                 "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nmax_clients = 500\n"
                 "[redis]\nport = %d\n[namespace:product]\nupstream = http://127.0.0.1:1/products/{id}\n",
                 d.port, redis.port);
    soft = proc_nofile_soft(d.pid);
    ck_assert_msg(soft >= 500 && soft <= 4096, "soft open files limit %lld for max_clients = 500", soft);
    ck_assert_msg(h_log_contains(d.log, "raised the open files limit"), "%s", h_log_tail(d.log));
    ck_assert_msg(!h_log_contains(d.log, "RLIMIT_NOFILE is"), "warned although raised: %s", h_log_tail(d.log));
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* ---------------------------------------------------- restart-only keys -- */

/* SIGHUP with a new key_prefix and a new Redis port: both are named in the
 * log and neither applies; records keep going under the old prefix, and
 * after the Redis links drop the daemon reconnects to the old port.  The
 * reloadable part of the same file (ttl_s) does apply. */
START_TEST(test_reload_keeps_restart_only)
{
    struct h_redis redis = { 0 };
    struct h_upstream up;
    struct h_daemon d;
    int fd, rfd, dead_port = h_free_port();
    long off;
    char *r;
    static const char conf[] =
        "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n"
        "[redis]\nport = %d\nkey_prefix = %s\n[cache]\nttl_s = %d\nttl_jitter_pct = 0\n"
        "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n";

    h_redis_start(&redis);
    h_upstream_start(&up, 0, 5);
    h_daemon_init(&d);
    h_daemon_start(&d, conf, d.port, redis.port, "old:", 300, up.port);
    ck_assert_msg(h_wait_log(d.log, "subscribed to old:fills", H_TIMEOUT_MS) == 0, "%s", h_log_tail(d.log));
    rfd = h_connect(redis.port);
    fd = h_connect(d.port);
    read_record(fd, "product:p-001");
    ck_assert(redis_wait_key(rfd, "old:product:{p-001}", H_TIMEOUT_MS) == 0);

    off = h_log_size(d.log);
    h_daemon_rewrite_conf(&d, conf, d.port, dead_port, "new:", 900, up.port);
    h_kill(d.pid, SIGHUP);
    ck_assert_msg(h_wait_log_after(d.log, off, "configuration applied", H_TIMEOUT_MS) == 0, "%s",
                  h_log_tail(d.log));
    ck_assert_msg(h_wait_log_after(d.log, off, "[redis] key_prefix changed", 100) == 0, "key_prefix not named: %s",
                  h_log_tail(d.log));
    ck_assert_msg(h_wait_log_after(d.log, off, "[redis] port changed", 100) == 0, "port not named: %s",
                  h_log_tail(d.log));

    /* The prefix did not change under the running daemon. */
    read_record(fd, "product:p-002");
    ck_assert_msg(redis_wait_key(rfd, "old:product:{p-002}", H_TIMEOUT_MS) == 0,
                  "record not stored under the running prefix");
    ck_assert_msg(!redis_exists(rfd, "new:product:{p-002}"), "record stored under the reloaded prefix");
    /* The reloadable ttl_s applied: 900 s, not 300. */
    r = h_cmd(rfd, "TTL", "old:product:{p-002}", NULL);
    ck_assert_msg(h_reply_int(r) > 300, "ttl_s not reloaded: TTL %s", h_repr(r));
    free(r);

    /* Drop the daemon's Redis links: it must reconnect to the port it runs
     * with, not the one in the reloaded file (where nothing listens). */
    off = h_log_size(d.log);
    free(h_cmd(rfd, "CLIENT", "KILL", "TYPE", "pubsub", NULL));
    free(h_cmd(rfd, "CLIENT", "KILL", "TYPE", "normal", NULL));
    ck_assert_msg(h_wait_log_after(d.log, off, "subscribed to old:fills", 10000) == 0, "no resubscribe: %s",
                  h_log_tail(d.log));
    ck_assert_msg(h_wait_log_after(d.log, off, "redis: connected", 10000) == 0, "no reconnect: %s",
                  h_log_tail(d.log));
    /* A read right at the reconnect may still go around Redis (docs/design.md section 6):
     * one of three fresh keys must be stored. */
    {
        static const char *const ids[] = { "p-003", "p-004", "p-005" };
        bool stored = false;
        for (size_t i = 0; i < 3 && !stored; i++) {
            char key[64], rkey[64];
            snprintf(key, sizeof key, "product:%s", ids[i]);
            snprintf(rkey, sizeof rkey, "old:product:{%s}", ids[i]);
            read_record(fd, key);
            stored = redis_wait_key(rfd, rkey, 1500) == 0;
        }
        ck_assert_msg(stored, "no record stored after the reconnect (went to the reloaded port?): %s",
                      h_log_tail(d.log));
    }
    h_close(fd);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* ---------------------------------------------------------------- main -- */


int main(void)
{
    const struct su_case cases[] = {
        { "fd_exhaustion_pauses_accept", test_fd_exhaustion_pauses_accept, 60, 0 },
        { "nofile_raised", test_nofile_raised, 60, 0 },
        { "reload_keeps_restart_only", test_reload_keeps_restart_only, 60, 0 },
    };

    return SU_RUN("confsrv", cases, CK_NORMAL);
}
