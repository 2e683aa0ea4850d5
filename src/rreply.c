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

static redisReply *rr_obj(struct rreply_arena *a, int type)
{
    redisReply *r = rr_alloc(a, sizeof(*r));

    memset(r, 0, sizeof(*r));
    r->type = type;
    return r;
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

static bool rr_num(const char *s, size_t n, long long *out)
{
    bool neg = n > 0 && s[0] == '-';
    long long v = 0;
    size_t i = neg ? 1 : 0;

    if (i == n)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (LLONG_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static int rr_head(char *p, const char *end, struct rr_head *h, char *errbuf, size_t errsize)
{
    char *nl;

    if (p >= end)
        return RREPLY_MORE;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return end - p > RR_LINE_MAX ? rr_fail(errbuf, errsize, "line too long") : RREPLY_MORE;
    if (nl - p < 2 || !rr_crlf(nl - 1))
        return rr_fail(errbuf, errsize, "line without \\r\\n");
    h->type = p[0];
    h->text = p + 1;
    h->tlen = (size_t)(nl - 1 - h->text);
    h->next = nl + 1;
    switch (h->type) {
    case '+':
    case '-':
        return RREPLY_OK;
    case ':':
        return rr_num(h->text, h->tlen, &h->num) ? RREPLY_OK : rr_fail(errbuf, errsize, "bad integer");
    case '$':
    case '*':
        if (!rr_num(h->text, h->tlen, &h->num) || h->num < -1 || h->num > RREPLY_MAX_BULK)
            return rr_fail(errbuf, errsize, "bad length");
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

static int rr_build(struct rr_ctx *x, int depth, redisReply **out)
{
    struct rr_head h;
    redisReply *r;
    int rc = rr_head(x->p, x->end, &h, x->errbuf, x->errsize);

    if (rc != RREPLY_OK)
        return rc;
    x->p = h.next;
    if ((h.type == '$' || h.type == '*') && h.num == -1) {
        *out = rr_obj(x->a, REDIS_REPLY_NIL);
        return RREPLY_OK;
    }
    switch (h.type) {
    case '+':
    case '-':
        r = rr_obj(x->a, h.type == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR);
        r->str = h.text;
        r->len = h.tlen;
        r->str[r->len] = '\0';
        break;
    case ':':
        r = rr_obj(x->a, REDIS_REPLY_INTEGER);
        r->integer = h.num;
        break;
    case '$':
        if (x->end - h.next < h.num + 2)
            return RREPLY_MORE;
        if (!rr_crlf(h.next + h.num))
            return rr_fail(x->errbuf, x->errsize, "bulk without \\r\\n");
        r = rr_obj(x->a, REDIS_REPLY_STRING);
        r->str = h.next;
        r->len = (size_t)h.num;
        r->str[r->len] = '\0';
        x->p = h.next + h.num + 2;
        break;
    default:                    /* '*' */
        if (depth == RREPLY_DEPTH)
            return rr_fail(x->errbuf, x->errsize, "arrays nested too deep");
        /* Each element takes 3 bytes at least: until they can all be
         * here, allocate nothing for them. */
        if (h.num > (x->end - h.next) / 3)
            return RREPLY_MORE;
        r = rr_obj(x->a, REDIS_REPLY_ARRAY);
        r->elements = (size_t)h.num;
        if (h.num > 0)
            r->element = rr_alloc(x->a, sizeof(*r->element) * r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            rc = rr_build(x, depth + 1, &r->element[i]);
            if (rc != RREPLY_OK)
                return rc;
        }
        break;
    }
    *out = r;
    return RREPLY_OK;
}

int rreply_parse(struct rreply_arena *a, char *buf, size_t len, redisReply **out, size_t *used, char *errbuf,
                 size_t errsize)
{
    struct rr_ctx x = { a, buf, buf + len, errbuf, errsize };
    int rc = rr_build(&x, 0, out);

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
