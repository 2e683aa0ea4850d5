/* SPDX-License-Identifier: BSD-3-Clause */
/* clockshift.c - LD_PRELOAD library for tests: moves CLOCK_REALTIME by
 * $CLOCKSHIFT_S seconds, as if the process ran on a host whose clock is off.
 * Monotonic clocks are left alone. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    long rc = syscall(SYS_clock_gettime, id, ts);
    const char *s;

    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE) && (s = getenv("CLOCKSHIFT_S")))
        ts->tv_sec += atol(s);
    return (int)rc;
}
