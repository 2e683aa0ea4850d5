/* SPDX-License-Identifier: BSD-3-Clause */
/* rreply.c - Redis's replies parsed in place (see rreply.h).
 *
 * A reply that arrived whole (the usual case: a read brings in many
 * pipelined replies) is parsed once, straight into its tree. One that did
 * not is scanned, without building anything, as more of it comes in, and
 * parsed once the scan says it is whole: a large reply is read over many
 * reads, and is not parsed again from its start after each one. */
#include "core.h"
#include "rreply.h"

#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A line with no end in this many bytes is not Redis talking: Redis's
 * status and error lines are short, and everything long is a bulk. */
#define RR_LINE_MAX (64 * 1024)

struct rreply_big {
    struct rreply_big *next;
    _Alignas(16) char data[];
};

static void *rr_alloc(struct rreply_arena *a, size_t n)
{
    struct rreply_big *b;

    n = (n + 15) & ~(size_t)15;
    if (a->used + n <= RREPLY_ARENA_SIZE) {
        void *p = a->buf + a->used;
        a->used += n;
        return p;
    }
    b = cs_malloc(sizeof(*b) + n);
    b->next = a->big;
    a->big = b;
    return b->data;
}

void rreply_arena_reset(struct rreply_arena *a)
{
    struct rreply_big *b;

    while ((b = a->big) != NULL) {
        a->big = b->next;
        free(b);
    }
    a->used = 0;
}

/* One line: a type byte, its text, \r\n. */
struct rr_head {
    char type;
    char *text;                 /* after the type byte */
    size_t tlen;                /* up to the \r */
    long long num;              /* ':' '$' '*' */
    char *next;                 /* after the \n */
};

static int rr_fail(char *errbuf, size_t errsize, const char *why)
{
    snprintf(errbuf, errsize, "Protocol error: %s", why);
    return RREPLY_ERR;
}

/* "\r\n", or "\0\n": the \r of a string an earlier, unfinished parse of
 * this reply already made its terminator. */
static bool rr_crlf(const char *p)
{
    return (p[0] == '\r' || p[0] == '\0') && p[1] == '\n';
}

/* The number after a type byte, up to its \r\n, without memchr or
 * division: most lines of a reply are these. *NEXT: past the \n. */
static int rr_int(char *p, const char *end, long long *v, char **next)
{
    char *q = p, *digits;
    unsigned long long u = 0;
    bool neg = q < end && *q == '-';

    if (neg)
        q++;
    digits = q;
    while (q < end && (unsigned)(*q - '0') < 10) {
        u = u * 10 + (unsigned)(*q - '0');
        q++;
    }
    /* 19 digits cannot wrap: only the bound to check, one more for a
     * negative number (INCRBY can answer LLONG_MIN). */
    if (q - digits > 19 || (q - digits == 19 && u > (unsigned long long)LLONG_MAX + neg))
        return RREPLY_ERR;
    if (end - q < 2)
        return RREPLY_MORE;
    if (q == digits || !rr_crlf(q))
        return RREPLY_ERR;
    *v = neg && u ? -(long long)(u - 1) - 1 : (long long)u;
    *next = q + 2;
    return RREPLY_OK;
}

static inline __attribute__((always_inline)) int rr_head(char *p, const char *end, struct rr_head *h, char *errbuf, size_t errsize)
{
    char *nl;
    int rc;

    if (p >= end)
        return RREPLY_MORE;
    h->type = p[0];
    h->text = p + 1;
    h->tlen = 0;
    switch (h->type) {
    case ':':
    case '$':
    case '*':
        rc = rr_int(p + 1, end, &h->num, &h->next);
        if (rc == RREPLY_OK && h->type != ':' && (h->num < -1 || h->num > RREPLY_MAX_BULK))
            rc = RREPLY_ERR;
        if (rc == RREPLY_ERR)
            return rr_fail(errbuf, errsize, h->type == ':' ? "bad integer" : "bad length");
        return rc;
    case '+':
    case '-':
        /* The limit holds however the line was split into reads: its \n
         * is looked for no further than a split line is waited for. */
        nl = memchr(p, '\n', end - p > RR_LINE_MAX ? RR_LINE_MAX + 1 : (size_t)(end - p));
        if (!nl)
            return end - p > RR_LINE_MAX ? rr_fail(errbuf, errsize, "line too long") : RREPLY_MORE;
        if (nl - p < 2 || !rr_crlf(nl - 1))
            return rr_fail(errbuf, errsize, "line without \\r\\n");
        h->tlen = (size_t)(nl - 1 - h->text);
        h->next = nl + 1;
        return RREPLY_OK;
    default: {
        char why[48];
        snprintf(why, sizeof(why), "unknown reply type byte 0x%02x", (unsigned char)h->type);
        return rr_fail(errbuf, errsize, why);
    }
    }
}

struct rr_ctx {
    struct rreply_arena *a;
    char *p;                    /* what is parsed next */
    const char *end;
    char *errbuf;
    size_t errsize;
};

/* The element most replies are made of, a bulk string of under 10^8
 * bytes that is all here, parsed with nothing to spare. False: anything
 * else, for rr_fill. */
static inline bool rr_fast_bulk(struct rr_ctx *x, redisReply *r)
{
    char *p = x->p, *q = p + 1;
    const char *end = x->end;
    size_t n = 0;

    if (end - p < 4 || p[0] != '$')
        return false;
    while (q < end && (unsigned)(*q - '0') < 10 && q - p < 9)
        n = n * 10 + (size_t)(*q++ - '0');
    if (q == p + 1 || end - q < 4 || (size_t)(end - q) - 4 < n || q[0] != '\r' || q[1] != '\n' ||
        q[2 + n] != '\r' || q[3 + n] != '\n')
        return false;
    r->type = REDIS_REPLY_STRING;
    r->str = q + 2;
    r->len = n;
    r->str[n] = '\0';
    x->p = q + 4 + n;
    return true;
}

/* Fills R (zeroed) with the reply at x->p. An array's elements are
 * allocated together with their pointers: one allocation an array. */
static int rr_fill(struct rr_ctx *x, int depth, redisReply *r)
{
    struct rr_head h;
    redisReply *objs;
    int rc = rr_head(x->p, x->end, &h, x->errbuf, x->errsize);

    if (rc != RREPLY_OK)
        return rc;
    switch (h.type) {
    case '$':
        if (h.num == -1)
            break;
        if (x->end - h.next < h.num + 2)
            return RREPLY_MORE;
        if (!rr_crlf(h.next + h.num))
            return rr_fail(x->errbuf, x->errsize, "bulk without \\r\\n");
        r->type = REDIS_REPLY_STRING;
        r->str = h.next;
        r->len = (size_t)h.num;
        r->str[r->len] = '\0';
        x->p = h.next + h.num + 2;
        return RREPLY_OK;
    case '*':
        if (h.num == -1)
            break;
        if (depth == RREPLY_DEPTH)
            return rr_fail(x->errbuf, x->errsize, "arrays nested too deep");
        /* Each element takes 3 bytes at least: until they can all be
         * here, allocate nothing for them. */
        if (h.num > (x->end - h.next) / 3)
            return RREPLY_MORE;
        r->type = REDIS_REPLY_ARRAY;
        r->elements = (size_t)h.num;
        x->p = h.next;
        if (h.num == 0)
            return RREPLY_OK;
        r->element = rr_alloc(x->a, (sizeof(*r->element) + sizeof(*objs)) * r->elements);
        objs = (redisReply *)(r->element + r->elements);
        memset(objs, 0, sizeof(*objs) * r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            r->element[i] = &objs[i];
            if (!rr_fast_bulk(x, &objs[i]) && (rc = rr_fill(x, depth + 1, &objs[i])) != RREPLY_OK)
                return rc;
        }
        return RREPLY_OK;
    case ':':
        r->type = REDIS_REPLY_INTEGER;
        r->integer = h.num;
        x->p = h.next;
        return RREPLY_OK;
    default:                    /* '+' '-' */
        r->type = h.type == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR;
        r->str = h.text;
        r->len = h.tlen;
        r->str[r->len] = '\0';
        x->p = h.next;
        return RREPLY_OK;
    }
    r->type = REDIS_REPLY_NIL;  /* $-1, *-1 */
    x->p = h.next;
    return RREPLY_OK;
}

int rreply_parse(struct rreply_arena *a, char *buf, size_t len, redisReply **out, size_t *used, char *errbuf,
                 size_t errsize)
{
    struct rr_ctx x = { a, buf, buf + len, errbuf, errsize };
    redisReply *r = rr_alloc(a, sizeof(*r));
    int rc;

    memset(r, 0, sizeof(*r));
    rc = rr_fill(&x, 0, r);
    *out = r;

    if (rc == RREPLY_OK)
        *used = (size_t)(x.p - buf);
    return rc;
}

void rreply_scan_init(struct rreply_scan *s)
{
    s->pos = 0;
    s->depth = 1;
    s->left[0] = 1;             /* the reply itself */
}

int rreply_scan(struct rreply_scan *s, const char *buf, size_t len, char *errbuf, size_t errsize)
{
    /* rr_head writes nothing: the cast only shares its parser. */
    char *b = (char *)buf;

    while (s->depth > 0) {
        struct rr_head h;
        int rc = rr_head(b + s->pos, b + len, &h, errbuf, errsize);
        size_t next;

        if (rc != RREPLY_OK)
            return rc;
        next = (size_t)(h.next - b);
        if (h.type == '$' && h.num >= 0) {
            if (len - next < (size_t)h.num + 2)
                return RREPLY_MORE;     /* the header is read again next time: it is one line */
            if (!rr_crlf(h.next + h.num))
                return rr_fail(errbuf, errsize, "bulk without \\r\\n");
            next += (size_t)h.num + 2;
        }
        if (h.type == '*' && h.num >= 0 && s->depth > RREPLY_DEPTH)
            return rr_fail(errbuf, errsize, "arrays nested too deep");
        s->pos = next;
        s->left[s->depth - 1]--;
        if (h.type == '*' && h.num > 0)
            s->left[s->depth++] = h.num;
        while (s->depth > 0 && s->left[s->depth - 1] == 0)
            s->depth--;
    }
    return RREPLY_OK;
}
