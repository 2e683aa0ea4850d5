/* SPDX-License-Identifier: BSD-3-Clause */
/* test_rreply.c - unit tests of the in-place reply parser (rreply.c): each
 * RESP2 type as a tree whose strings stay in the caller's buffer, pipelined
 * replies, every split of a reply (also after a parse of a prefix wrote its
 * NULs), protocol errors, and replies far larger than the arena. */
#include "core.h"
#include "rreply.h"

#include "suite.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (64 * 1024)      /* RR_LINE_MAX in rreply.c */

struct wire { const char *s; size_t n; };
#define W(lit) { (lit), sizeof(lit) - 1 }

static struct rreply_arena arena, ref;
static char err[128];

/* A copy in a buffer of exactly its size: ASan sees any read past it. */
static char *dup_wire(const char *s, size_t n)
{
    char *p = cs_malloc(n ? n : 1);

    memcpy(p, s, n);
    return p;
}

/* BUF (N bytes) holds one whole reply and nothing else. */
static redisReply *parse_whole(struct rreply_arena *a, char *buf, size_t n)
{
    redisReply *r = NULL;
    size_t used = 0;
    int rc = rreply_parse(a, buf, n, &r, &used, err, sizeof(err));

    ck_assert_msg(rc == RREPLY_OK, "parse of %zu bytes: rc %d (%s)", n, rc, rc == RREPLY_ERR ? err : "");
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(used, n);
    return r;
}

/* A string reply of TYPE holding WANT, left in place in BUF and terminated. */
static void ck_str(const redisReply *r, int type, const char *want, size_t len, const char *buf, size_t n)
{
    ck_assert_int_eq(r->type, type);
    ck_assert_uint_eq(r->len, len);
    ck_assert_msg(r->str >= buf && r->str + len < buf + n, "string not inside the buffer");
    ck_assert(memcmp(r->str, want, len) == 0);
    ck_assert_int_eq(r->str[len], '\0');
}

static void ck_tree(const redisReply *got, const redisReply *want, const char *buf, size_t n)
{
    ck_assert_int_eq(got->type, want->type);
    ck_assert(got->integer == want->integer);
    ck_assert_uint_eq(got->elements, want->elements);
    if (want->str)
        ck_str(got, want->type, want->str, want->len, buf, n);
    else
        ck_assert_ptr_null(got->str);
    for (size_t i = 0; i < want->elements; i++)
        ck_tree(got->element[i], want->element[i], buf, n);
}

static void ck_error(int rc)
{
    ck_assert_int_eq(rc, RREPLY_ERR);
    ck_assert_msg(strncmp(err, "Protocol error", 14) == 0, "message: %s", err);
}

/* Reset, and the stale tree in the arena wiped: it would keep an overflow
 * that the reset failed to free reachable, hidden from LeakSanitizer. */
static void wipe(struct rreply_arena *a)
{
    rreply_arena_reset(a);
    memset(a->buf, 0xa5, sizeof(a->buf));
}

/* The same bytes, grown to K as a link's buffer is: moved, its first
 * OLDK bytes what was there (NULs a parse wrote included). */
static char *grow(char *old, size_t oldk, const char *s, size_t k)
{
    char *p = cs_malloc(k ? k : 1);

    if (oldk)
        memcpy(p, old, oldk);
    memcpy(p + oldk, s + oldk, k - oldk);
    free(old);
    return p;
}

static unsigned rnd_state = 12345;

static size_t rnd(size_t max)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return 1 + (rnd_state >> 8) % max;
}

/* One scan fed WIRE STEP bytes at a time (0: random chunks), each prefix
 * also parsed first when PARSE; MORE until the last byte, then OK and a
 * parse that gives WANT. */
static void feed(const char *s, size_t n, const redisReply *want, size_t step, bool parse)
{
    struct rreply_scan sc;
    char *buf = grow(NULL, 0, s, 0);
    size_t k = 0, used = 0;
    redisReply *r = NULL;
    int rc;

    rreply_scan_init(&sc);
    for (;;) {
        if (parse && k < n) {
            ck_assert_int_eq(rreply_parse(&arena, buf, k, &r, &used, err, sizeof(err)), RREPLY_MORE);
            rreply_arena_reset(&arena);
        }
        rc = rreply_scan(&sc, buf, k, err, sizeof(err));
        if (k == n)
            break;
        ck_assert_msg(rc == RREPLY_MORE, "scan at %zu of %zu: rc %d (%s)", k, n, rc, err);
        ck_assert_uint_le(sc.pos, k);
        size_t next = k + (step ? step : rnd(n / 4 + 2));
        buf = grow(buf, k, s, next < n ? next : n);
        k = next < n ? next : n;
    }
    ck_assert_msg(rc == RREPLY_OK, "scan of all %zu: rc %d (%s)", n, rc, err);
    ck_assert_uint_eq(sc.pos, n);
    ck_tree(parse_whole(&arena, buf, n), want, buf, n);
    wipe(&arena);
    free(buf);
}

START_TEST(types)
{
    static const struct {
        struct wire w;
        int type;
        long long integer;
        struct wire str;
    } t[] = {
        { W("+OK\r\n"), REDIS_REPLY_STATUS, 0, W("OK") }, { W("+\r\n"), REDIS_REPLY_STATUS, 0, W("") },
        { W("-ERR msg here\r\n"), REDIS_REPLY_ERROR, 0, W("ERR msg here") },
        { W(":0\r\n"), REDIS_REPLY_INTEGER, 0, { NULL, 0 } }, { W(":-42\r\n"), REDIS_REPLY_INTEGER, -42, { NULL, 0 } },
        { W(":9223372036854775807\r\n"), REDIS_REPLY_INTEGER, LLONG_MAX, { NULL, 0 } },
        /* INCRBY can reach it, and hiredis's own reader takes it. */
        { W(":-9223372036854775808\r\n"), REDIS_REPLY_INTEGER, LLONG_MIN, { NULL, 0 } },
        { W("$3\r\nfoo\r\n"), REDIS_REPLY_STRING, 0, W("foo") },
        { W("$0\r\n\r\n"), REDIS_REPLY_STRING, 0, W("") },
        /* Binary safe: the length says where it ends, not \r\n or NUL. */
        { W("$9\r\na\r\nb\0c\r\n\r\r\n"), REDIS_REPLY_STRING, 0, W("a\r\nb\0c\r\n\r") },
        { W("$-1\r\n"), REDIS_REPLY_NIL, 0, { NULL, 0 } }, { W("*-1\r\n"), REDIS_REPLY_NIL, 0, { NULL, 0 } },
        { W("*0\r\n"), REDIS_REPLY_ARRAY, 0, { NULL, 0 } },
    };

    for (size_t i = 0; i < CS_ARRAY_LEN(t); i++) {
        char *buf = dup_wire(t[i].w.s, t[i].w.n);
        redisReply *r = parse_whole(&arena, buf, t[i].w.n);

        ck_assert_msg(r->type == t[i].type, "%s: type %d", t[i].w.s, r->type);
        ck_assert_msg(r->integer == t[i].integer, "%s: %lld", t[i].w.s, r->integer);
        ck_assert_uint_eq(r->elements, 0);
        if (t[i].str.s)
            ck_str(r, t[i].type, t[i].str.s, t[i].str.n, buf, t[i].w.n);
        else
            ck_assert_ptr_null(r->str);
        rreply_arena_reset(&arena);
        free(buf);
    }
}
END_TEST

/* CLUSTER SLOTS: ranges, each with its nodes, each node an array. */
static const char slots[] = "*2\r\n"
    "*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$4\r\nid-a\r\n"
    "*4\r\n:5461\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nid-b\r\n"
    "*2\r\n$9\r\n127.0.0.2\r\n:7002\r\n";
static const char hgetall[] = "*8\r\n$2\r\nid\r\n$1\r\n7\r\n$4\r\nname\r\n$3\r\nabc\r\n"
    "$5\r\nprice\r\n$0\r\n\r\n$3\r\nbin\r\n$4\r\n\r\n\0\n\r\n";
static const char mixed[] = "*5\r\n*0\r\n$-1\r\n*-1\r\n*1\r\n+\r\n-ERR x\r\n";

START_TEST(arrays)
{
    char *buf = dup_wire(slots, sizeof(slots) - 1);
    size_t n = sizeof(slots) - 1;
    redisReply *r = parse_whole(&arena, buf, n), *node;

    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    ck_assert(r->element[0]->elements == 3 && r->element[1]->elements == 4);
    ck_assert(r->element[0]->element[1]->integer == 5460);
    ck_assert(r->element[1]->element[0]->integer == 5461);
    node = r->element[1]->element[2];
    ck_assert(node->type == REDIS_REPLY_ARRAY && node->elements == 3);
    ck_str(node->element[0], REDIS_REPLY_STRING, "127.0.0.1", 9, buf, n);
    ck_assert(node->element[1]->integer == 7001);
    ck_str(node->element[2], REDIS_REPLY_STRING, "id-b", 4, buf, n);
    node = r->element[1]->element[3];
    ck_str(node->element[0], REDIS_REPLY_STRING, "127.0.0.2", 9, buf, n);
    rreply_arena_reset(&arena);
    free(buf);

    static const struct wire fields[] = { W("id"), W("7"), W("name"), W("abc"), W("price"), W(""), W("bin"),
                                          W("\r\n\0\n") };
    n = sizeof(hgetall) - 1;
    buf = dup_wire(hgetall, n);
    r = parse_whole(&arena, buf, n);
    ck_assert_uint_eq(r->elements, 8);
    for (size_t i = 0; i < 8; i++)
        ck_str(r->element[i], REDIS_REPLY_STRING, fields[i].s, fields[i].n, buf, n);
    rreply_arena_reset(&arena);
    free(buf);

    n = sizeof(mixed) - 1;
    buf = dup_wire(mixed, n);
    r = parse_whole(&arena, buf, n);
    ck_assert_uint_eq(r->elements, 5);
    ck_assert(r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 0);
    ck_assert(r->element[1]->type == REDIS_REPLY_NIL && r->element[2]->type == REDIS_REPLY_NIL);
    ck_str(r->element[3]->element[0], REDIS_REPLY_STATUS, "", 0, buf, n);
    ck_str(r->element[4], REDIS_REPLY_ERROR, "ERR x", 5, buf, n);
    rreply_arena_reset(&arena);
    free(buf);
}
END_TEST

START_TEST(pipelined)
{
    static const char all[] = "+OK\r\n:1\r\n$3\r\nfoo\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR x\r\n$2\r\n\0\r\r\n";
    static const size_t ends[] = { 5, 9, 18, 34, 42, 50 };
    size_t n = sizeof(all) - 1, at = 0, used;
    char *buf = dup_wire(all, n);
    redisReply *r;

    for (size_t i = 0; i < CS_ARRAY_LEN(ends); i++) {
        ck_assert_int_eq(rreply_parse(&arena, buf + at, n - at, &r, &used, err, sizeof(err)), RREPLY_OK);
        ck_assert_uint_eq(at + used, ends[i]);
        switch (i) {
        case 0: ck_assert(r->str == buf + 1); ck_str(r, REDIS_REPLY_STATUS, "OK", 2, buf, n); break;
        case 1: ck_assert(r->type == REDIS_REPLY_INTEGER && r->integer == 1); break;
        case 2: ck_assert(r->str == buf + 13); ck_str(r, REDIS_REPLY_STRING, "foo", 3, buf, n); break;
        case 3:
            ck_assert_uint_eq(r->elements, 2);
            ck_assert(r->element[0]->str == buf + 26);
            ck_str(r->element[0], REDIS_REPLY_STRING, "a", 1, buf, n);
            ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_NIL);
            break;
        case 4: ck_str(r, REDIS_REPLY_ERROR, "ERR x", 5, buf, n); break;
        default: ck_str(r, REDIS_REPLY_STRING, "\0\r", 2, buf, n); break;
        }
        at += used;
        rreply_arena_reset(&arena);
        ck_assert_uint_eq(arena.used, 0);
    }
    /* Nothing left: no reply, and the buffer is not read past its end. */
    ck_assert_int_eq(rreply_parse(&arena, buf + at, n - at, &r, &used, err, sizeof(err)), RREPLY_MORE);
    free(buf);
}
END_TEST

static const struct wire samples[] = {
    W("+OK\r\n"), W("-ERR wrong\r\n"), W(":-42\r\n"), W("$3\r\nfoo\r\n"), W("$0\r\n\r\n"), W("$-1\r\n"),
    W("*-1\r\n"), W("*0\r\n"), W("$9\r\na\r\nb\0c\r\n\r\r\n"), { slots, sizeof(slots) - 1 },
    { hgetall, sizeof(hgetall) - 1 }, { mixed, sizeof(mixed) - 1 },
};

START_TEST(split)
{
    const struct wire *w = &samples[_i];
    char *whole = dup_wire(w->s, w->n);
    const redisReply *want = parse_whole(&ref, whole, w->n);
    redisReply *r;
    size_t used;

    for (size_t k = 0; k < w->n; k++) {
        char *buf = dup_wire(w->s, k);
        struct rreply_scan sc;

        ck_assert_msg(rreply_parse(&arena, buf, k, &r, &used, err, sizeof(err)) == RREPLY_MORE,
                      "sample %d, %zu of %zu bytes", _i, k, w->n);
        rreply_arena_reset(&arena);
        rreply_scan_init(&sc);
        ck_assert_int_eq(rreply_scan(&sc, buf, k, err, sizeof(err)), RREPLY_MORE);
        free(buf);
    }
    feed(w->s, w->n, want, 1, false);
    feed(w->s, w->n, want, 1, true);
    feed(w->s, w->n, want, 3, true);
    for (int round = 0; round < 20; round++)
        feed(w->s, w->n, want, 0, round & 1);
    rreply_arena_reset(&ref);
    free(whole);
}
END_TEST

/* WIRE gives ERR "Protocol error..." from parse and from the scan. */
static void ck_bad(const char *s, size_t n)
{
    char *buf = dup_wire(s, n);
    struct rreply_scan sc;
    redisReply *r;
    size_t used;

    ck_error(rreply_parse(&arena, buf, n, &r, &used, err, sizeof(err)));
    rreply_arena_reset(&arena);
    rreply_scan_init(&sc);
    ck_error(rreply_scan(&sc, buf, n, err, sizeof(err)));
    free(buf);
}

START_TEST(errors)
{
    static const struct wire bad[] = {
        W("?x\r\n"), W("$abc\r\n"), W("$-2\r\n"), W("*-2\r\n"), W("$\r\n"), W(":12x\r\n"), W(":\r\n"),
        W(":-\r\n"), W(":9223372036854775808\r\n"), W(":-9223372036854775809\r\n"), W("$536870913\r\n"),
        W("+OK\n"), W("\n"), W("\r\n"), W("$3\r\nfoox\r\n"), W("$3\r\nfoo\n\n"), W("$0\r\nxx"),
        W("*2\r\n:1\r\n?\r\n"), W("*2\r\n$1\r\nab\r\n:1\r\n"),
    };

    for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++)
        ck_bad(bad[i].s, bad[i].n);
}
END_TEST

/* D arrays of one, each in the one before, around LAST. */
static char *nest(int d, const char *last, size_t *n)
{
    size_t ln = strlen(last);
    char *p = cs_malloc((size_t)d * 4 + ln);

    for (int i = 0; i < d; i++)
        memcpy(p + i * 4, "*1\r\n", 4);
    memcpy(p + d * 4, last, ln);
    *n = (size_t)d * 4 + ln;
    return p;
}

START_TEST(depth)
{
    size_t n;
    char *buf = nest(RREPLY_DEPTH, ":1\r\n", &n);
    redisReply *r = parse_whole(&ref, buf, n);
    const redisReply *want = r;
    struct rreply_scan sc;

    for (int i = 0; i < RREPLY_DEPTH; i++, r = r->element[0])
        ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    ck_assert(r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    feed(buf, n, want, 1, true);
    rreply_arena_reset(&ref);
    free(buf);
    /* A NIL in place of the deepest array is no array. */
    buf = nest(RREPLY_DEPTH, "*-1\r\n", &n);
    feed(buf, n, parse_whole(&ref, buf, n), 1, true);
    rreply_arena_reset(&ref);
    free(buf);

    static const char *const over[] = { ":1\r\n", "*0\r\n", "*1\r\n:1\r\n" };
    for (size_t i = 0; i < CS_ARRAY_LEN(over); i++) {
        buf = nest(RREPLY_DEPTH + 1, over[i], &n);
        ck_bad(buf, n);
        /* Fed a byte at a time, the scan never says whole. */
        int rc = RREPLY_MORE;
        rreply_scan_init(&sc);
        for (size_t k = 0; k <= n; k++) {
            rc = rreply_scan(&sc, buf, k, err, sizeof(err));
            ck_assert_int_ne(rc, RREPLY_OK);
        }
        ck_error(rc);
        free(buf);
    }
}
END_TEST

/* A status line of M text bytes with its \r\n, split or not. */
static int long_line(size_t m, size_t upto, bool scan)
{
    char *buf = cs_malloc(m + 3);
    struct rreply_scan sc;
    redisReply *r;
    size_t used;
    int rc;

    buf[0] = '+';
    memset(buf + 1, 'x', m);
    memcpy(buf + 1 + m, "\r\n", 2);
    rreply_scan_init(&sc);
    rc = scan ? rreply_scan(&sc, buf, upto, err, sizeof(err))
        : rreply_parse(&arena, buf, upto, &r, &used, err, sizeof(err));
    rreply_arena_reset(&arena);
    free(buf);
    return rc;
}

START_TEST(line_limit)
{
    for (int scan = 0; scan <= 1; scan++) {
        /* No \n yet: waiting up to the limit, an error past it. */
        ck_assert_int_eq(long_line(LINE_MAX_BYTES, LINE_MAX_BYTES, scan), RREPLY_MORE);
        ck_error(long_line(LINE_MAX_BYTES, LINE_MAX_BYTES + 1, scan));
        /* Whole or split into reads, one answer. \n at LINE_MAX_BYTES: */
        ck_assert_int_eq(long_line(LINE_MAX_BYTES - 2, LINE_MAX_BYTES, scan), RREPLY_MORE);
        ck_assert_int_eq(long_line(LINE_MAX_BYTES - 2, LINE_MAX_BYTES + 1, scan), RREPLY_OK);
        /* \n one further: an error split, so an error whole. */
        ck_error(long_line(LINE_MAX_BYTES - 1, LINE_MAX_BYTES + 1, scan));
        ck_error(long_line(LINE_MAX_BYTES - 1, LINE_MAX_BYTES + 2, scan));
    }
}
END_TEST

#define BIG_BULK (1024 * 1024)
#define BIG_ARRAY 100000

START_TEST(big)
{
    /* One 1 MB bulk with every byte value in it. */
    char *w = cs_malloc(BIG_BULK + 32), *buf, v[16];
    size_t hl = (size_t)snprintf(w, 32, "$%d\r\n", BIG_BULK), n = hl + BIG_BULK + 2;
    struct rreply_scan sc;
    redisReply *r;

    for (size_t i = 0; i < BIG_BULK; i++)
        w[hl + i] = (char)(i * 31 % 256);
    memcpy(w + hl + BIG_BULK, "\r\n", 2);
    buf = dup_wire(w, n);
    r = parse_whole(&ref, buf, n);
    ck_str(r, REDIS_REPLY_STRING, w + hl, BIG_BULK, buf, n);
    feed(w, n, r, 16384, false);
    wipe(&ref);
    free(buf);
    free(w);

    /* 100000 bulks: all but the first few hundred objects overflow. */
    w = cs_malloc((size_t)BIG_ARRAY * 16 + 32);
    n = (size_t)snprintf(w, 32, "*%d\r\n", BIG_ARRAY);
    for (int i = 0; i < BIG_ARRAY; i++)
        n += (size_t)sprintf(w + n, "$%d\r\n%s\r\n", snprintf(v, sizeof(v), "v%d", i), v);
    buf = dup_wire(w, n);
    r = parse_whole(&ref, buf, n);
    ck_assert_uint_eq(r->elements, BIG_ARRAY);
    for (int i = 0; i < BIG_ARRAY; i++)
        ck_str(r->element[i], REDIS_REPLY_STRING, v, (size_t)snprintf(v, sizeof(v), "v%d", i), buf, n);
    ck_assert_ptr_nonnull(ref.big);
    feed(w, n, r, 16384, false);

    /* The scan keeps what it has seen: at most one element short. */
    rreply_scan_init(&sc);
    for (size_t k = 16384; k < n; k += 16384) {
        ck_assert_int_eq(rreply_scan(&sc, buf, k, err, sizeof(err)), RREPLY_MORE);
        ck_assert_uint_gt(sc.pos + 16, k);
    }
    wipe(&ref);
    ck_assert(ref.big == NULL && ref.used == 0);
    free(buf);
    free(w);
}
END_TEST

START_TEST(huge_count)
{
    static const struct wire w[] = {
        W("*100000000\r\n"), W("*100000000\r\n:1\r\n:2\r\n"), W("*536870912\r\n"), W("$536870912\r\n"),
        W("*3\r\n*100000000\r\n"),
    };
    struct rreply_scan sc;
    redisReply *r;
    size_t used;

    for (size_t i = 0; i < CS_ARRAY_LEN(w); i++) {
        char *buf = dup_wire(w[i].s, w[i].n);

        ck_assert_int_eq(rreply_parse(&arena, buf, w[i].n, &r, &used, err, sizeof(err)), RREPLY_MORE);
        ck_assert_ptr_null(arena.big);
        ck_assert_uint_le(arena.used, 256);
        rreply_arena_reset(&arena);
        rreply_scan_init(&sc);
        ck_assert_int_eq(rreply_scan(&sc, buf, w[i].n, err, sizeof(err)), RREPLY_MORE);
        free(buf);
    }
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "types", types, 30, 0 }, { "arrays", arrays, 30, 0 },
        { "pipelined", pipelined, 30, 0 },
        { "split", split, 60, (int)CS_ARRAY_LEN(samples) },
        { "errors", errors, 30, 0 },
        { "depth", depth, 30, 0 },
        { "line_limit", line_limit, 30, 0 },
        { "big", big, 120, 0 },
        { "huge_count", huge_count, 30, 0 },
    };

    return SU_RUN("rreply", cases, CK_NORMAL);
}
