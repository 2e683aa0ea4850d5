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

extern struct event_base *cs_base;
/* Set once the loop has ended: callbacks release, they start nothing new. */
extern bool cs_exiting;

/* Wall clock and monotonic clock in milliseconds. */
int64_t cs_now_ms(void);
int64_t cs_mono_ms(void);
int64_t cs_mono_us(void);       /* for latency figures */

void *cs_malloc(size_t n);
void *cs_calloc(size_t n, size_t sz);
void *cs_realloc(void *p, size_t n);
char *cs_strndup(const char *s, size_t n);

#endif
