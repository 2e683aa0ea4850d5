/* SPDX-License-Identifier: BSD-3-Clause */
/* test_idle.c - an idle daemon sleeps: its Redis links' timers fire only
 * for their deadlines and probes, not on a fixed tick; and the first
 * command after a quiet spell still fails by command_timeout_ms when
 * Redis does not answer (the timer is moved for it). */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void idle_up(struct h_daemon *d, struct h_redis *redis, struct h_upstream *up, const char *rconf)
{
    memset(redis, 0, sizeof(*redis));
    h_redis_start(redis);
    h_upstream_start(up, 0, 3);
    h_daemon_init(d);
    h_daemon_start(d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                   "[redis]\nport = %d\n%s\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d->port, redis->port, rconf, up->port);
    su_wait_linked(d);
}

/* How often the process has gone to sleep (each wait in the loop that
 * blocks is one voluntary context switch). */
static long long sleeps(pid_t pid)
{
    return su_proc_counter(pid, "status", "voluntary_ctxt_switches");
}

/* Idle, with both Redis links up, the daemon wakes a few times a second
 * (probes, once-a-second housekeeping), not 50 times for a deadline sweep
 * with nothing to sweep. The bound is far from both. */
START_TEST(t_idle_is_quiet)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    long long n;

    idle_up(&d, &redis, &up, "");
    h_msleep(1500);                 /* start-up and the first probes are over */
    n = sleeps(d.pid);
    h_msleep(3000);
    n = sleeps(d.pid) - n;
    printf("idle: %lld wake-ups in 3 s\n", n);
    ck_assert_msg(n < 75, "an idle daemon woke %lld times in 3 s", n);
}
END_TEST

/* Each round: quiet for longer than a probe interval, then Redis stops
 * answering and one command goes out. It fails by command_timeout_ms
 * (100 ms), whenever in the probe cycle it was sent. */
START_TEST(t_first_command_after_quiet)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int fd, rfd;
    long long t0, worst = 0;

    idle_up(&d, &redis, &up, "command_timeout_ms = 100");
    fd = h_connect(d.port);
    rfd = h_connect(redis.port);
    for (int i = 0; i < 5; i++) {
        long long took;
        h_msleep(1300 + 170 * i);
        EXPECT_RAW("+OK\r\n", rfd, "CLIENT", "PAUSE", "600", "ALL");
        t0 = h_now_ms();
        CK_PREFIX(su_rawq(fd, "TTL", "product:p-001", NULL), "-TRYAGAIN");
        took = h_now_ms() - t0;
        if (took > worst)
            worst = took;
        h_msleep(700);              /* the pause is over, the late reply read */
    }
    printf("first command after quiet: failed after at most %lld ms (command_timeout_ms 100)\n", worst);
    ck_assert_msg(worst < 500, "a command sent after a quiet spell failed only after %lld ms", worst);
    ck_assert_msg(!h_log_contains(d.log, "reconnecting"), "a link was dropped: %s", h_log_tail(d.log));
    h_close(fd);
    h_close(rfd);
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "idle_is_quiet", t_idle_is_quiet, 30, 0 },
        { "first_command_after_quiet", t_first_command_after_quiet, 40, 0 },
    };

    return SU_RUN("idle", cases, CK_ENV);
}
