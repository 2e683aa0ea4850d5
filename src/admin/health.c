/* SPDX-License-Identifier: BSD-3-Clause */
/* health.c - liveness, readiness and the systemd watchdog (docs/admin.md).
 *
 * The two probes restart different things, so they ask different things.
 * Liveness: does the event loop still turn? A daemon that answers at all is
 * running its loop, so the only case a probe can see is a loop that serves
 * sockets but whose timers have stopped (the sweep, deadlines, reconnects):
 * the heartbeat timer notes when it last ran. Readiness: can a read be
 * answered now? From Redis, or without it from an upstream (degraded mode),
 * so Redis down alone is not a reason to take the daemon out of rotation;
 * draining, or Redis and every upstream host failing, is. The watchdog ping
 * goes out from its own timer, and only while the heartbeat is on time: a
 * wedged loop stops it, and systemd restarts the unit. */
#include "core.h"
#include "health.h"
#include "log.h"
#include "notify.h"
#include "rstore.h"
#include "server.h"
#include "upstream.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct event *health_beat;
static struct event *health_dog;
static int64_t health_last_beat;

static void health_beat_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    health_last_beat = cs_mono_ms();
}

static void health_dog_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (health_live(NULL, 0))
        notify_send("WATCHDOG=1");
}

/* WATCHDOG_USEC in microseconds, 0 when the watchdog is not ours: unset,
 * or WATCHDOG_PID names another process (systemd's own convention). */
static long long health_watchdog_usec(void)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    long long v;

    if (!us || !*us)
        return 0;
    if (pid && *pid && strtoll(pid, NULL, 10) != (long long)getpid())
        return 0;
    v = strtoll(us, &end, 10);
    if (*end || v <= 0) {
        log_warn("WATCHDOG_USEC '%s' is not a positive number of microseconds: no watchdog pings", us);
        return 0;
    }
    return v;
}

void health_start(void)
{
    struct timeval tv = { 1, 0 };
    long long usec = health_watchdog_usec();

    health_last_beat = cs_mono_ms();
    health_beat = event_new(cs_base, -1, EV_PERSIST, health_beat_cb, NULL);
    event_add(health_beat, &tv);
    if (!usec)
        return;
    /* Half the interval, as systemd advises: one late ping is not a restart. */
    tv.tv_sec = (time_t)(usec / 2 / 1000000);
    tv.tv_usec = (suseconds_t)(usec / 2 % 1000000);
    health_dog = event_new(cs_base, -1, EV_PERSIST, health_dog_cb, NULL);
    event_add(health_dog, &tv);
    notify_send("WATCHDOG=1");
    log_info("systemd watchdog: a ping every %lld ms", usec / 2000);
}

void health_free(void)
{
    if (health_beat)
        event_free(health_beat);
    if (health_dog)
        event_free(health_dog);
    health_beat = health_dog = NULL;
}

bool health_live(char *why, size_t len)
{
    int64_t late = cs_mono_ms() - health_last_beat;

    if (late < HEALTH_WEDGED_MS)
        return true;
    if (why)
        snprintf(why, len, "wedged: the event loop's 1 s timer last ran %lld ms ago", (long long)late);
    return false;
}

bool health_ready(char *msg, size_t len)
{
    const char *redis;
    char up[200];

    if (server_stopping()) {
        snprintf(msg, len, "draining");
        return false;
    }
    redis = rstore_status();
    if (!redis) {
        snprintf(msg, len, "ok");
        return true;
    }
    if (upstream_can_serve(up, sizeof(up))) {
        snprintf(msg, len, "ok, degraded: redis: %s; reads go to the upstream", redis);
        return true;
    }
    snprintf(msg, len, "redis: %s; upstream %s", redis, up);
    return false;
}
