/* SPDX-License-Identifier: BSD-3-Clause */
/* core.h - types and helpers every cachasided module shares. */
#ifndef CS_CORE_H
#define CS_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/queue.h>

#define CS_WUR __attribute__((warn_unused_result))
#define CS_UNUSED(x) ((void)(x))
#define CS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CS_STR_(x) #x
#define CS_XSTR(x) CS_STR_(x)

#define CS_OK 0
#define CS_ERR (-1)

/* Error replies more than one module sends. */
#define CS_ERR_TRYAGAIN "TRYAGAIN cache unavailable"
#define CS_ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

struct event_base;
struct evbuffer;
struct cs_config;
struct cs_ns;
struct conn;
struct req;
struct flight;

/* A byte string that points into somebody else's memory. */
struct cs_str {
    const char *p;
    size_t len;
};

/* One host:port (a [redis] nodes or sentinels list). */
struct cs_addr {
    char host[256];
    int port;
};
#define CS_ADDRS_MAX 64

/* The event loop (util.c holds both; main.c sets them). */
extern struct event_base *cs_base;
/* Set once the loop has ended: callbacks release, they start nothing new. */
extern bool cs_exiting;

/* Wall clock and monotonic clock in milliseconds. */
int64_t cs_now_ms(void);
int64_t cs_mono_ms(void);
int64_t cs_mono_us(void);       /* for latency figures */
/* The clock of the read pass under way (a client's read, a Redis read),
 * 0 outside one: what one read brought in arrived at one instant as far
 * as our figures go, so a pass reads the clock once, not once a request. */
extern int64_t cs_pass_us;
int64_t cs_pass_begin(void);    /* returns what to give cs_pass_end */
void cs_pass_end(int64_t was);
static inline int64_t cs_clock_us(void)
{
    return cs_pass_us ? cs_pass_us : cs_mono_us();
}

struct timeval;
/* Milliseconds (>= 0) as a timeval for libevent timers. */
void cs_ms_tv(struct timeval *tv, long long ms);
/* <key_prefix>fills into buf; returns its length. The subscriber links
 * stay subscribed to it (their probe); nothing is published there. */
size_t cs_fills_channel(char *buf, size_t size, const char *key_prefix);
/* A record key's own notice channel: <key_prefix>fills:<ns>:{<id>} for
 * <key_prefix><ns>:{<id>}, the same hash tag, so the same cluster slot
 * (docs/design.md, "Notices"). buf holds CS_CHAN_MAX; returns the length. */
#define CS_CHAN_MAX 1100
size_t cs_key_channel(char *buf, const char *key_prefix, const char *key, size_t keylen);

/* 64-bit FNV-1a of len bytes, continued from h: CS_FNV_BASIS to start, or
 * a seed of the caller's to keep its tables apart. */
#define CS_FNV_BASIS 0xcbf29ce484222325ULL
uint64_t cs_fnv1a(uint64_t h, const char *p, size_t len);
/* FNV-1a of a string: the hash of the daemon's own tables. */
uint64_t cs_hash(const char *p, size_t len);

/* A case that cannot happen: "BUG at FILE:LINE: why" logged as an error,
 * then abort(), in every build (going on would answer clients wrongly).
 * CS_ASSERT's why is the condition that failed. */
#define CS_ASSERT(cond) ((cond) ? (void)0 : cs_panic_at(__FILE__, __LINE__, "%s", "assertion failed: " #cond))
#define cs_panic(...) cs_panic_at(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((noreturn, format(printf, 3, 4)))
void cs_panic_at(const char *file, int line, const char *fmt, ...);
/* Out of memory: a message, then abort(). */
__attribute__((noreturn)) void *cs_oom(size_t n);

void *cs_malloc(size_t n);
void *cs_calloc(size_t n, size_t sz);
void *cs_realloc(void *p, size_t n);
char *cs_strndup(const char *s, size_t n);
char *cs_strdup(const char *s);

#endif
