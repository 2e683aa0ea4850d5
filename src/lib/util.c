/* SPDX-License-Identifier: BSD-3-Clause */
/* util.c - allocation that never returns NULL, assertions, hashing and clocks. */
#include "core.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* The event loop every module schedules on, and whether it has ended
 * (core.h): here, in the lowest floor, so that a unit test linking a few
 * modules has them without defining them itself. main.c sets them. */
struct event_base *cs_base;
bool cs_exiting;

/* A daemon that cannot allocate a few bytes cannot answer anybody usefully:
 * like Redis's zmalloc, abort with a message instead of limping on. */
void *cs_oom(size_t n)
{
    fprintf(stderr, "cachasided: out of memory allocating %zu bytes\n", n);
    abort();
}

void cs_panic_at(const char *file, int line, const char *fmt, ...)
{
    const char *base = strrchr(file, '/');
    char why[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    /* The file's own name: the build directory says nothing to a reader. */
    log_error("BUG at %s:%d: %s", base ? base + 1 : file, line, why);
    abort();
}

void *cs_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : cs_oom(n);
}

void *cs_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    return p ? p : cs_oom(n * sz);
}

void *cs_realloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    return p ? p : cs_oom(n);
}

char *cs_strndup(const char *s, size_t n)
{
    char *p = cs_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cs_strdup(const char *s)
{
    return cs_strndup(s, strlen(s));
}

int64_t cs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cs_ms_tv(struct timeval *tv, long long ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

size_t cs_fills_channel(char *buf, size_t size, const char *key_prefix)
{
    int n = snprintf(buf, size, "%sfills", key_prefix);

    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

uint64_t cs_fnv1a(uint64_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t cs_hash(const char *p, size_t len)
{
    return cs_fnv1a(CS_FNV_BASIS, p, len);
}

size_t cs_key_channel(char *buf, const char *key_prefix, const char *key, size_t keylen)
{
    size_t pl = strlen(key_prefix);

    /* Keys are ours, bounded by KEYS_KEY_MAX. */
    CS_ASSERT(keylen >= pl && pl + 6 + keylen <= CS_CHAN_MAX - 1);
    memcpy(buf, key_prefix, pl);
    memcpy(buf + pl, "fills:", 6);
    memcpy(buf + pl + 6, key + pl, keylen - pl);
    buf[keylen + 6] = '\0';
    return keylen + 6;
}

int64_t cs_pass_us;

int64_t cs_pass_begin(void)
{
    int64_t was = cs_pass_us;

    cs_pass_us = cs_mono_us();
    return was;
}

void cs_pass_end(int64_t was)
{
    cs_pass_us = was;
}

int64_t cs_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
