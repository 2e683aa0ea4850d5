/* SPDX-License-Identifier: BSD-3-Clause */
/* test_resp.c - unit tests of the request parser and reply encoder (src/lib/resp.c).
 *
 * The parser is what every byte a client sends goes through, so these tests
 * check the promises of docs/protocol.md "Framing and limits": inline and
 * RESP requests give the same commands however the bytes are split across
 * reads, bytes already parsed are not parsed again (the parser keeps its
 * progress, and the caller may move the bytes between reads), limits are
 * enforced with an error (never an unbounded wait), and the encoders put
 * exactly the RESP2 bytes on the wire. */
#include "core.h"
#include "resp.h"

#include <check.h>
#include <event2/buffer.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARG 64
#define MAX_FRAME (MAX_ARG * 64)

static const struct resp_limits lim_std = { MAX_ARG, MAX_FRAME, RESP_MAX_ARGS, false };

/* A growable byte string: parsed commands are written into one in a canonical,
 * binary-safe form ("argc{len:bytes}...\n" per command, "skip\n" per skip) so
 * two parses can be compared with one memcmp. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *s, const void *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        while (s->len + n + 1 > s->cap)
            s->cap = s->cap ? s->cap * 2 : 256;
        s->p = realloc(s->p, s->cap);
        ck_assert_ptr_nonnull(s->p);
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sb_add(s, tmp, (size_t)n);
}

static void sb_free(struct sbuf *s)
{
    free(s->p);
    memset(s, 0, sizeof(*s));
}

static void sb_cmd(struct sbuf *s, const struct resp_args *a)
{
    sb_printf(s, "%d", a->argc);
    for (int i = 0; i < a->argc; i++) {
        sb_printf(s, "{%zu:", a->argv[i].len);
        sb_add(s, a->argv[i].p, a->argv[i].len);
        sb_add(s, "}", 1);
    }
    sb_add(s, "\n", 1);
}

/* The canonical form of a list of commands given as NULL-terminated word
 * lists (words are C strings, so binary cases build their form by hand). */
static void sb_words(struct sbuf *s, const char *const *words)
{
    int n = 0;

    while (words[n])
        n++;
    sb_printf(s, "%d", n);
    for (int i = 0; i < n; i++) {
        sb_printf(s, "{%zu:", strlen(words[i]));
        sb_add(s, words[i], strlen(words[i]));
        sb_add(s, "}", 1);
    }
    sb_add(s, "\n", 1);
}

/* Parses buf[0..len) request after request like a connection does, appending
 * each command to out. Returns the bytes consumed; stops at MORE, leaving the
 * progress in ps for the next call (which starts at the same request). Fails
 * the test on a protocol error. The bytes are copied into a buffer of exactly
 * len bytes, a new one per call, so that a read past the end is caught under
 * ASan and a parser that kept a pointer into an earlier call's bytes reads
 * freed memory. */
static size_t parse_all(struct resp_parser *ps, const char *buf, size_t len, struct sbuf *out,
                        struct resp_args *args)
{
    char *copy = malloc(len ? len : 1);
    size_t pos = 0;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    for (;;) {
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st = resp_parse(ps, copy + pos, len - pos, &lim_std, args, &used, &err);

        if (st == RESP_MORE) {
            ck_assert_int_eq(args->argc, 0);
            break;
        }
        ck_assert_msg(st != RESP_ERROR, "unexpected protocol error at byte %zu: %s", pos, err ? err : "(null)");
        ck_assert_msg(used > 0 && used <= len - pos, "used %zu out of range (%zu left)", used, len - pos);
        if (st == RESP_DONE)
            sb_cmd(out, args);
        else
            sb_add(out, "skip\n", 5);
        pos += used;
    }
    free(copy);
    return pos;
}

/* One status from parsing buf[0..len) once with a fresh parser, in an
 * exact-size copy. */
static enum resp_status parse_lim(const char *buf, size_t len, const struct resp_limits *lim,
                                  struct resp_args *args, size_t *used, const char **err)
{
    char *copy = malloc(len ? len : 1);
    struct resp_parser ps = { 0 };
    enum resp_status st;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    *used = 0;
    *err = NULL;
    st = resp_parse(&ps, copy, len, lim, args, used, err);
    /* Arguments point into the copy: keep them comparable by pointing them
     * back into buf at the same offsets before the copy goes. */
    if (st == RESP_DONE)
        for (int i = 0; i < args->argc; i++)
            args->argv[i].p = buf + (args->argv[i].p - copy);
    free(copy);
    return st;
}

static enum resp_status parse_one(const char *buf, size_t len, size_t max_arg, size_t max_frame,
                                  struct resp_args *args, size_t *used, const char **err)
{
    struct resp_limits lim = { max_arg, max_frame, RESP_MAX_ARGS, false };

    return parse_lim(buf, len, &lim, args, used, err);
}

static const char *const st_names[] = { "DONE", "SKIP", "MORE", "ERROR" };

#define assert_status(got, want) \
    ck_assert_msg((got) == (want), "status %s, expected %s", st_names[got], st_names[want])

/* ---- the representative frames ---- */

struct frame {
    const char *name;
    const char *bytes;
    size_t len;
    /* expected commands in canonical form */
    const char *expect;
    size_t expect_len;
};

#define S(lit) lit, sizeof(lit) - 1

static const struct frame frames[] = {
    { "inline PING", S("PING\r\n"), S("1{4:PING}\n") },
    { "inline spaces and tabs", S("  HGET \t product:p-1\t\t name   \r\n"),
      S("3{4:HGET}{11:product:p-1}{4:name}\n") },
    { "inline LF only", S("GET page:home\n"), S("2{3:GET}{9:page:home}\n") },
    { "inline trailing tab before LF", S("PING\t\n"), S("1{4:PING}\n") },
    { "RESP one bulk", S("*1\r\n$4\r\nPING\r\n"), S("1{4:PING}\n") },
    { "RESP empty and binary bulks",
      S("*4\r\n$4\r\nHSET\r\n$0\r\n\r\n$7\r\na\0b\r\n\xff\x80\r\n$3\r\n \t \r\n"),
      S("4{4:HSET}{0:}{7:a\0b\r\n\xff\x80}{3: \t }\n") },
    { "RESP bulk that looks like a header", S("*2\r\n$4\r\n*1\r\n\r\n$2\r\n$0\r\n"),
      S("2{4:*1\r\n}{2:$0}\n") },
    { "RESP $-0 and leading zeros", S("*3\r\n$-0\r\n\r\n$004\r\nECHO\r\n$10\r\n0123456789\r\n"),
      S("3{0:}{4:ECHO}{10:0123456789}\n") },
    { "RESP max_arg bulk",
      S("*1\r\n$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"),
      S("1{64:0123456789012345678901234567890123456789012345678901234567890123}\n") },
    { "pipelined inline and RESP",
      S("PING\r\n*2\r\n$3\r\nGET\r\n$3\r\nk:1\r\nECHO  hi\n\r\n*1\r\n$4\r\nQUIT\r\n*0\r\nHMGET a:b c d\r\n"),
      S("1{4:PING}\n2{3:GET}{3:k:1}\n2{4:ECHO}{2:hi}\nskip\n1{4:QUIT}\nskip\n4{5:HMGET}{3:a:b}{1:c}{1:d}\n") },
};

/* Fed whole, every frame gives exactly the expected commands and is consumed
 * to its last byte. */
START_TEST(test_frames_whole)
{
    const struct frame *f = &frames[_i];
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    struct sbuf got = { 0 };
    size_t used = parse_all(&ps, f->bytes, f->len, &got, &args);

    ck_assert_msg(used == f->len, "%s: consumed %zu of %zu bytes", f->name, used, f->len);
    ck_assert_msg(got.len == f->expect_len && memcmp(got.p, f->expect, got.len) == 0,
                  "%s: parsed commands differ:\n got: %.*s\nwant: %.*s", f->name, (int)got.len, got.p,
                  (int)f->expect_len, f->expect);
    sb_free(&got);
    resp_args_free(&args);
}
END_TEST

/* A single-command frame cut at any byte is "need more", never a command or
 * an error, and the whole frame then parses to the same command. */
START_TEST(test_frames_every_prefix_is_more)
{
    const struct frame *f = &frames[_i];
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    struct sbuf whole = { 0 };

    (void)parse_all(&ps, f->bytes, f->len, &whole, &args);
    for (size_t k = 0; k < f->len; k++) {
        const char *err;
        size_t used;
        enum resp_status st = parse_one(f->bytes, k, MAX_ARG, MAX_FRAME, &args, &used, &err);

        /* The pipelined frame has complete commands inside it: the streaming
         * test below covers it; here only the first command matters. */
        if (strncmp(f->name, "pipelined", 9) == 0 && st != RESP_MORE)
            continue;
        ck_assert_msg(st == RESP_MORE, "%s: prefix of %zu/%zu bytes gave %s (%s)", f->name, k, f->len,
                      st_names[st], err ? err : "");
    }
    sb_free(&whole);
    resp_args_free(&args);
}
END_TEST

/* Split into two reads at every byte boundary (and into single bytes), a
 * frame gives the same commands as when it arrives in one read. */
START_TEST(test_frames_split_stream)
{
    const struct frame *f = &frames[_i];
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    struct sbuf whole = { 0 };

    (void)parse_all(&ps, f->bytes, f->len, &whole, &args);
    for (size_t k = 0; k <= f->len; k++) {
        struct sbuf got = { 0 };
        size_t pos = parse_all(&ps, f->bytes, k, &got, &args);  /* first read */

        pos += parse_all(&ps, f->bytes + pos, f->len - pos, &got, &args);   /* rest arrives */
        ck_assert_msg(pos == f->len, "%s split at %zu: consumed %zu of %zu", f->name, k, pos, f->len);
        ck_assert_msg(got.len == whole.len && memcmp(got.p, whole.p, got.len) == 0,
                      "%s split at %zu: commands differ:\n got: %.*s\nwant: %.*s", f->name, k,
                      (int)got.len, got.p, (int)whole.len, whole.p);
        sb_free(&got);
    }
    {
        /* One byte per read: the received-so-far buffer grows by one byte each
         * time and is parsed from the first unconsumed byte. */
        struct sbuf got = { 0 };
        size_t pos = 0;

        for (size_t end = 1; end <= f->len; end++)
            pos += parse_all(&ps, f->bytes + pos, end - pos, &got, &args);
        ck_assert_uint_eq(pos, f->len);
        ck_assert_msg(got.len == whole.len && memcmp(got.p, whole.p, got.len) == 0,
                      "%s byte by byte: commands differ", f->name);
        sb_free(&got);
    }
    sb_free(&whole);
    resp_args_free(&args);
}
END_TEST

/* Many pipelined commands in one buffer parse one after another; each *used
 * is exactly the length of its request. */
START_TEST(test_many_commands_one_buffer)
{
    struct sbuf in = { 0 }, want = { 0 };
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    size_t lens[300];
    size_t pos = 0;
    int n = 0;

    for (int i = 0; i < 300; i++) {
        size_t before = in.len;
        char id[32];
        const char *words[] = { "HGET", id, "name", NULL };

        snprintf(id, sizeof(id), "product:p-%d", i);
        if (i % 3 == 0)
            sb_printf(&in, "HGET %s name\r\n", id);
        else if (i % 3 == 1)
            sb_printf(&in, "HGET\t%s  name\n", id);
        else
            sb_printf(&in, "*3\r\n$4\r\nHGET\r\n$%zu\r\n%s\r\n$4\r\nname\r\n", strlen(id), id);
        lens[i] = in.len - before;
        sb_words(&want, words);
    }
    while (pos < in.len) {
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st = resp_parse(&ps, in.p + pos, in.len - pos, &lim_std, &args, &used, &err);
        char id[32];

        assert_status(st, RESP_DONE);
        ck_assert_int_lt(n, 300);
        ck_assert_msg(used == lens[n], "command %d: used %zu, its request is %zu bytes", n, used, lens[n]);
        snprintf(id, sizeof(id), "product:p-%d", n);
        ck_assert_int_eq(args.argc, 3);
        ck_assert_uint_eq(args.argv[1].len, strlen(id));
        ck_assert_mem_eq(args.argv[1].p, id, strlen(id));
        pos += used;
        n++;
    }
    ck_assert_int_eq(n, 300);
    {
        struct sbuf got = { 0 };
        ck_assert_uint_eq(parse_all(&ps, in.p, in.len, &got, &args), in.len);
        ck_assert_uint_eq(got.len, want.len);
        ck_assert_mem_eq(got.p, want.p, got.len);
        sb_free(&got);
    }
    sb_free(&in);
    sb_free(&want);
    resp_args_free(&args);
}
END_TEST

/* Empty inline lines, blank lines and empty arrays are consumed and ignored
 * (docs: "An empty inline line and *0\r\n are ignored"). "*-1" is ignored
 * too, as Redis does. */
START_TEST(test_empty_lines_skip)
{
    static const struct { const char *b; size_t len; size_t used; } cases[] = {
        { S("\r\n"), 2 },
        { S("\n"), 1 },
        { S("   \t \r\n"), 7 },
        { S(" \n"), 2 },
        { S("*0\r\n"), 4 },
        { S("*-1\r\n"), 5 },
        { S("\r\nPING\r\n"), 2 },   /* a skip followed by a command */
    };
    struct resp_args args = { 0 };

    for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
        const char *err;
        size_t used;
        enum resp_status st = parse_one(cases[i].b, cases[i].len, MAX_ARG, MAX_FRAME, &args, &used, &err);

        ck_assert_msg(st == RESP_SKIP, "case %zu: %s, expected SKIP", i, st_names[st]);
        ck_assert_msg(used == cases[i].used, "case %zu: used %zu, expected %zu", i, used, cases[i].used);
    }
    resp_args_free(&args);
}
END_TEST

/* An empty buffer needs more bytes. */
START_TEST(test_empty_buffer_more)
{
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    const char *err = NULL;
    size_t used = 0;

    assert_status(resp_parse(&ps, "", 0, &lim_std, &args, &used, &err), RESP_MORE);
    resp_args_free(&args);
}
END_TEST

static void expect_error(const char *b, size_t len, size_t max_arg, size_t max_frame, const char *what)
{
    struct resp_args args = { 0 };
    const char *err;
    size_t used;
    enum resp_status st = parse_one(b, len, max_arg, max_frame, &args, &used, &err);

    ck_assert_msg(st == RESP_ERROR, "%s: %s, expected ERROR", what, st_names[st]);
    ck_assert_msg(err && *err, "%s: ERROR without a message", what);
    resp_args_free(&args);
}

/* The longest inline line is max_request_bytes: one byte more is an error,
 * with or without its newline, so a client cannot make the daemon buffer an
 * endless line. */
START_TEST(test_inline_too_long)
{
    char line[10 * MAX_ARG + 3];
    struct resp_args args = { 0 };
    const char *err;
    size_t used;

    /* exactly max_arg bytes, CRLF and LF: accepted */
    memset(line, 'a', MAX_ARG);
    memcpy(line + MAX_ARG, "\r\n", 2);
    assert_status(parse_one(line, MAX_ARG + 2, MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_DONE);
    ck_assert_uint_eq(used, MAX_ARG + 2);
    ck_assert_int_eq(args.argc, 1);
    ck_assert_uint_eq(args.argv[0].len, MAX_ARG);
    line[MAX_ARG] = '\n';
    assert_status(parse_one(line, MAX_ARG + 1, MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_DONE);
    ck_assert_uint_eq(used, MAX_ARG + 1);

    /* max_arg + 1 bytes then a newline */
    memset(line, 'a', MAX_ARG + 1);
    memcpy(line + MAX_ARG + 1, "\r\n", 2);
    expect_error(line, MAX_ARG + 3, MAX_ARG, MAX_FRAME, "max_arg+1 bytes + CRLF");
    line[MAX_ARG + 1] = '\n';
    expect_error(line, MAX_ARG + 2, MAX_ARG, MAX_FRAME, "max_arg+1 bytes + LF");
    /* words separated by spaces count too: the limit is the line */
    for (int i = 1; i < MAX_ARG; i += 2)
        line[i] = ' ';
    expect_error(line, MAX_ARG + 2, MAX_ARG, MAX_FRAME, "max_arg+1 bytes of words + LF");

    /* no newline yet, already too long to be a valid line */
    memset(line, 'a', sizeof(line));
    expect_error(line, MAX_ARG + 2, MAX_ARG, MAX_FRAME, "max_arg+2 bytes, no newline");
    expect_error(line, sizeof(line), MAX_ARG, MAX_FRAME, "10*max_arg bytes, no newline");
    /* ... but a line still within the limit waits for its newline */
    assert_status(parse_one(line, MAX_ARG, MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_MORE);
    resp_args_free(&args);
}
END_TEST

/* A bulk argument longer than max_request_bytes is refused as soon as its
 * header arrives, before the payload is buffered. */
START_TEST(test_bulk_too_long)
{
    expect_error(S("*1\r\n$65\r\n"), MAX_ARG, MAX_FRAME, "$65 header alone");
    expect_error(S("*2\r\n$3\r\nGET\r\n$65\r\nxx"), MAX_ARG, MAX_FRAME, "$65 second argument");
    expect_error(S("*1\r\n$9223372036854775807\r\n"), MAX_ARG, MAX_FRAME, "$LLONG_MAX");
}
END_TEST

/* Unparsable RESP: each is an error with a reason, never a hang or a command. */
START_TEST(test_resp_malformed)
{
    static const struct { const char *b; size_t len; const char *what; } cases[] = {
        { S("*1\r\n$-1\r\n"), "negative bulk length" },
        { S("*1\r\n$-5\r\nabc\r\n"), "negative bulk length -5" },
        { S("*1\r\n$abc\r\n"), "non-numeric bulk length" },
        { S("*1\r\n$3x\r\nabc\r\n"), "bulk length with trailing garbage" },
        { S("*1\r\n$ 3\r\nabc\r\n"), "bulk length with a space" },
        { S("*1\r\n$\r\n"), "empty bulk length" },
        { S("*1\r\n$-\r\n"), "bulk length of just '-'" },
        { S("*1\r\n$3\nabc\r\n"), "bulk header ended by LF only" },
        { S("*1\r\n$99999999999999999999999\r\n"), "bulk length overflowing" },
        { S("*x\r\n"), "non-numeric count" },
        { S("*1x\r\n"), "count with trailing garbage" },
        { S("*\r\n"), "empty count" },
        { S("*-\r\n"), "count of just '-'" },
        { S("*-x\r\n"), "negative non-numeric count" },
        { S("*1\n$4\r\nPING\r\n"), "count ended by LF only" },
        { S("*99999999999999999999\r\n"), "count overflowing" },
        { S("*2000000\r\n"), "more than RESP_MAX_ARGS arguments" },
        { S("*1\r\n:4\r\n"), "array element that is not a bulk string" },
        { S("*2\r\n$4\r\nPING\r\nPING\r\n"), "inline text inside an array" },
        { S("*1\r\n$3\r\nGETxy"), "bulk not followed by CRLF" },
        { S("*1\r\n$3\r\nGET\n\r"), "bulk followed by LF CR" },
        { S("*1\r\n$3\r\nGET\rx"), "bulk followed by CR and garbage" },
        { S("*2\r\n$3\r\nGETab$3\r\nkey\r\n"), "bulk shorter than its payload" },
        { S("*11111111111111111111111111111111111"), "count header over 32 bytes with no newline" },
        { S("*1\r\n$1111111111111111111111111111111111"), "bulk header over 32 bytes with no newline" },
    };

    for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++)
        expect_error(cases[i].b, cases[i].len, MAX_ARG, MAX_FRAME, cases[i].what);
}
END_TEST

/* The reasons are meant for the client's "-ERR protocol error: <reason>"
 * line: check a few say what went wrong. */
START_TEST(test_error_messages)
{
    static const struct { const char *b; size_t len; const char *word; } cases[] = {
        { S("*1\r\n$-1\r\n"), "negative" },
        { S("*1\r\n$65\r\n"), "max_request_bytes" },
        { S("*1\r\n:4\r\n"), "'$'" },
        { S("*1\r\n$3\r\nGETxy"), "CRLF" },
        { S("*x\r\n"), "length" },
        { S("*2000000\r\n"), "too many" },
    };
    struct resp_args args = { 0 };

    for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
        const char *err;
        size_t used;

        assert_status(parse_one(cases[i].b, cases[i].len, MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_ERROR);
        ck_assert_msg(err && strstr(err, cases[i].word), "case %zu: message '%s' lacks '%s'", i,
                      err ? err : "(null)", cases[i].word);
        ck_assert_msg(!strpbrk(err, "\r\n"), "case %zu: message has CR/LF", i);
    }
    resp_args_free(&args);
}
END_TEST

/* A RESP frame whose arguments reach past max_frame is an error, also while
 * it is still arriving (the daemon must not buffer it to the end). */
START_TEST(test_frame_too_large)
{
    struct sbuf in = { 0 };
    char arg[60];
    size_t max_frame = 256;

    memset(arg, 'x', sizeof(arg));
    sb_printf(&in, "*1000\r\n");
    for (int i = 0; i < 10; i++) {
        sb_printf(&in, "$%zu\r\n", sizeof(arg));
        sb_add(&in, arg, sizeof(arg));
        sb_add(&in, "\r\n", 2);
    }
    /* 10 arguments of 67 bytes: 677 bytes received of a frame over 256 */
    expect_error(in.p, in.len, MAX_ARG, max_frame, "partial frame already past max_frame");
    expect_error(in.p, in.len - 3, MAX_ARG, max_frame, "partial frame past max_frame, mid-argument");
    sb_free(&in);

    /* complete frame of 5 arguments, 339 bytes */
    sb_printf(&in, "*5\r\n");
    for (int i = 0; i < 5; i++) {
        sb_printf(&in, "$%zu\r\n", sizeof(arg));
        sb_add(&in, arg, sizeof(arg));
        sb_add(&in, "\r\n", 2);
    }
    expect_error(in.p, in.len, MAX_ARG, max_frame, "complete 5-argument frame over max_frame");
    sb_free(&in);
}
END_TEST

/* docs/protocol.md: "one RESP request, all of it: 64 x max_request_bytes".
 * A frame whose last argument starts within the limit but ends past it is
 * still over the limit. */
START_TEST(test_frame_total_over_limit)
{
    struct sbuf in = { 0 };
    struct resp_args args = { 0 };
    char arg[60];
    size_t max_frame = 256;
    const char *err;
    size_t used;
    enum resp_status st;

    memset(arg, 'x', sizeof(arg));
    sb_printf(&in, "*4\r\n");
    for (int i = 0; i < 4; i++) {
        sb_printf(&in, "$%zu\r\n", sizeof(arg));
        sb_add(&in, arg, sizeof(arg));
        sb_add(&in, "\r\n", 2);
    }
    ck_assert_uint_gt(in.len, max_frame);   /* 272 bytes */
    st = parse_one(in.p, in.len, MAX_ARG, max_frame, &args, &used, &err);
    ck_assert_msg(st == RESP_ERROR, "a %zu-byte frame with max_frame %zu gave %s", in.len, max_frame, st_names[st]);

    /* and a frame of exactly max_frame bytes is fine: 4 + 4 * 63 = 256 */
    sb_free(&in);
    sb_printf(&in, "*4\r\n");
    for (int i = 0; i < 4; i++) {
        sb_printf(&in, "$%d\r\n", 56);
        sb_add(&in, arg, 56);
        sb_add(&in, "\r\n", 2);
    }
    ck_assert_uint_eq(in.len, max_frame);
    assert_status(parse_one(in.p, in.len, MAX_ARG, max_frame, &args, &used, &err), RESP_DONE);
    sb_free(&in);
    resp_args_free(&args);
}
END_TEST

/* A frame within max_frame made of many small arguments parses, and the args
 * array grows as needed (and is reused across calls). */
START_TEST(test_many_arguments)
{
    struct sbuf in = { 0 };
    struct resp_args args = { 0 };
    const char *err;
    size_t used;

    sb_printf(&in, "*400\r\n");
    for (int i = 0; i < 400; i++)
        sb_printf(&in, "$%d\r\n%d\r\n", i < 10 ? 1 : i < 100 ? 2 : 3, i);
    ck_assert_uint_lt(in.len, MAX_FRAME);
    assert_status(parse_one(in.p, in.len, MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_DONE);
    ck_assert_uint_eq(used, in.len);
    ck_assert_int_eq(args.argc, 400);
    ck_assert_int_ge(args.cap, 400);
    for (int i = 0; i < 400; i += 37) {
        char num[8];
        int n = snprintf(num, sizeof(num), "%d", i);
        ck_assert_uint_eq(args.argv[i].len, (size_t)n);
        ck_assert_mem_eq(args.argv[i].p, num, (size_t)n);
    }
    /* the next parse starts from argc 0 */
    assert_status(parse_one(S("PING\r\n"), MAX_ARG, MAX_FRAME, &args, &used, &err), RESP_DONE);
    ck_assert_int_eq(args.argc, 1);
    resp_args_free(&args);
    ck_assert_ptr_null(args.argv);
    ck_assert_int_eq(args.argc, 0);
    ck_assert_int_eq(args.cap, 0);
    sb_free(&in);
}
END_TEST

/* The parser keeps its progress between reads: after "need more" at most a
 * partial length header (under 32 bytes) is left to look at again, or it is
 * waiting for a bulk payload whose length it knows (checked in O(1)). Fed
 * one byte at a time, every frame ends in the same commands. */
START_TEST(test_progress_kept)
{
    const struct frame *f = &frames[_i];
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    struct sbuf got = { 0 }, whole = { 0 };
    size_t start = 0;

    (void)parse_all(&ps, f->bytes, f->len, &whole, &args);
    for (size_t end = 1; end <= f->len; end++) {
        for (;;) {
            const char *err = NULL;
            size_t used = 0, len = end - start;
            enum resp_status st = resp_parse(&ps, f->bytes + start, len, &lim_std, &args, &used, &err);

            if (st == RESP_MORE) {
                ck_assert_msg(ps.pos <= len, "%s: pos %zu past the %zu bytes given", f->name, ps.pos, len);
                ck_assert_msg(len - ps.pos < 32 || (ps.bulk >= 0 && ps.pos + (size_t)ps.bulk + 2 > len),
                              "%s at %zu: %zu bytes would be parsed again", f->name, end, len - ps.pos);
                break;
            }
            ck_assert_msg(st != RESP_ERROR, "%s: %s", f->name, err);
            if (st == RESP_DONE)
                sb_cmd(&got, &args);
            else
                sb_add(&got, "skip\n", 5);
            start += used;
        }
    }
    ck_assert_uint_eq(start, f->len);
    ck_assert_msg(got.len == whole.len && memcmp(got.p, whole.p, got.len) == 0, "%s: commands differ", f->name);
    sb_free(&got);
    sb_free(&whole);
    resp_args_free(&args);
}
END_TEST

/* 30 000 one-byte arguments arriving one byte per read: the cost is linear
 * in the bytes (a parser that restarted at the request's first byte on
 * every read would do some 3e9 header parses here and time out). */
START_TEST(test_trickle_linear)
{
    enum { N = 30000 };
    struct resp_limits lim = { MAX_ARG, 1 << 20, RESP_MAX_ARGS, false };
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };
    struct sbuf in = { 0 };
    enum resp_status st = RESP_MORE;
    const char *err = NULL;
    size_t used = 0, end;

    sb_printf(&in, "*%d\r\n$4\r\nPING\r\n", N + 1);
    for (int i = 0; i < N; i++)
        sb_printf(&in, "$1\r\n%c\r\n", 'a' + i % 26);
    for (end = 1; end <= in.len; end++) {
        st = resp_parse(&ps, in.p, end, &lim, &args, &used, &err);
        if (st != RESP_MORE)
            break;
    }
    assert_status(st, RESP_DONE);
    ck_assert_uint_eq(end, in.len);
    ck_assert_uint_eq(used, in.len);
    ck_assert_int_eq(args.argc, N + 1);
    ck_assert_mem_eq(args.argv[0].p, "PING", 4);
    for (int i = 0; i < N; i += 997) {
        ck_assert_uint_eq(args.argv[1 + i].len, 1);
        ck_assert_int_eq(args.argv[1 + i].p[0], 'a' + i % 26);
    }
    sb_free(&in);
    resp_args_free(&args);
}
END_TEST

/* A request of many arguments split in two at many places: the arguments
 * collected after the split are those of the whole. */
START_TEST(test_many_arguments_split)
{
    struct sbuf in = { 0 }, whole = { 0 };
    struct resp_args args = { 0 };
    struct resp_parser ps = { 0 };

    sb_printf(&in, "*400\r\n");
    for (int i = 0; i < 400; i++)
        sb_printf(&in, "$%d\r\n%d\r\n", i < 10 ? 1 : i < 100 ? 2 : 3, i);
    (void)parse_all(&ps, in.p, in.len, &whole, &args);
    for (size_t k = 1; k < in.len; k += 13) {
        struct sbuf got = { 0 };
        size_t pos = parse_all(&ps, in.p, k, &got, &args);

        ck_assert_uint_eq(pos, 0);
        pos += parse_all(&ps, in.p, in.len, &got, &args);
        ck_assert_uint_eq(pos, in.len);
        ck_assert_msg(got.len == whole.len && memcmp(got.p, whole.p, got.len) == 0, "split at %zu differs", k);
        sb_free(&got);
    }
    sb_free(&in);
    sb_free(&whole);
    resp_args_free(&args);
}
END_TEST

/* The small limits of a client before AUTH: a few arguments, short bulks
 * and lines, a small request; each refusal says "before AUTH". */
START_TEST(test_before_auth_limits)
{
    static const struct resp_limits lim = { 4096, 16384, 10, true };
    struct sbuf in = { 0 };
    struct resp_args args = { 0 };
    const char *err;
    size_t used;
    char *line = malloc(5000);

    ck_assert_ptr_nonnull(line);
    /* within them: AUTH, and a 10-argument HELLO */
    assert_status(parse_lim(S("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"), &lim, &args, &used, &err), RESP_DONE);
    assert_status(parse_lim(S("HELLO 2 AUTH default secret SETNAME a b c d\r\n"), &lim, &args, &used, &err),
                  RESP_DONE);
    ck_assert_int_eq(args.argc, 10);
    /* beyond them */
    assert_status(parse_lim(S("*11\r\n"), &lim, &args, &used, &err), RESP_ERROR);
    ck_assert_msg(strstr(err, "before AUTH"), "'%s'", err);
    assert_status(parse_lim(S("*2\r\n$4\r\nAUTH\r\n$4097\r\n"), &lim, &args, &used, &err), RESP_ERROR);
    ck_assert_msg(strstr(err, "before AUTH"), "'%s'", err);
    assert_status(parse_lim(S("HELLO 2 AUTH default secret SETNAME a b c d e\r\n"), &lim, &args, &used, &err),
                  RESP_ERROR);
    ck_assert_msg(strstr(err, "before AUTH"), "'%s'", err);
    memset(line, 'a', 5000);
    assert_status(parse_lim(line, 5000, &lim, &args, &used, &err), RESP_ERROR);
    ck_assert_msg(strstr(err, "before AUTH"), "'%s'", err);
    /* 5 bulks of 4000 bytes: each within the bulk limit, 20 KB in all */
    sb_printf(&in, "*5\r\n");
    for (int i = 0; i < 5; i++) {
        sb_printf(&in, "$4000\r\n");
        sb_add(&in, line, 4000);
        sb_add(&in, "\r\n", 2);
    }
    assert_status(parse_lim(in.p, in.len, &lim, &args, &used, &err), RESP_ERROR);
    ck_assert_msg(strstr(err, "too large"), "'%s'", err);
    sb_free(&in);
    free(line);
    resp_args_free(&args);
}
END_TEST

/* The size functions agree with what the encoders write. */
START_TEST(test_enc_sizes)
{
    static const size_t lens[] = { 0, 1, 9, 10, 99, 100, 65536, 1000000 };
    static const long long ns[] = { 0, 1, 9, 10, 12345, -1 };
    struct evbuffer *b = evbuffer_new();
    char *big = calloc(1, 1000000);

    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < CS_ARRAY_LEN(lens); i++) {
        resp_bulk(b, big, lens[i]);
        ck_assert_uint_eq(evbuffer_get_length(b), resp_bulk_size(lens[i]));
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    for (size_t i = 0; i < CS_ARRAY_LEN(ns); i++) {
        resp_array(b, ns[i]);
        ck_assert_uint_eq(evbuffer_get_length(b), resp_array_size(ns[i]));
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    evbuffer_free(b);
    free(big);
}
END_TEST

/* ---- encoders ---- */

static struct evbuffer *eb;

static void eb_setup(void)
{
    eb = evbuffer_new();
    ck_assert_ptr_nonnull(eb);
}

static void eb_teardown(void)
{
    evbuffer_free(eb);
    eb = NULL;
}

/* The evbuffer holds exactly want[0..len) and is emptied. */
static void eb_expect(const char *want, size_t len, const char *what)
{
    size_t n = evbuffer_get_length(eb);
    const unsigned char *p = evbuffer_pullup(eb, -1);

    ck_assert_msg(n == len && (len == 0 || memcmp(p, want, len) == 0),
                  "%s: got %zu bytes '%.*s', want %zu bytes '%.*s'", what, n, (int)n, p ? (const char *)p : "",
                  len, (int)len, want);
    evbuffer_drain(eb, n);
}

START_TEST(test_enc_simple)
{
    resp_simple(eb, "OK");
    eb_expect(S("+OK\r\n"), "+OK");
    resp_simple(eb, "PONG");
    eb_expect(S("+PONG\r\n"), "+PONG");
    resp_simple(eb, "");
    eb_expect(S("+\r\n"), "empty simple string");
}
END_TEST

START_TEST(test_enc_error)
{
    resp_error(eb, "ERR unknown command 'x'");
    eb_expect(S("-ERR unknown command 'x'\r\n"), "-ERR");
    resp_errorf(eb, "ERR wrong number of arguments for '%s' command", "hget");
    eb_expect(S("-ERR wrong number of arguments for 'hget' command\r\n"), "errorf");
    resp_errorf(eb, "UPSTREAM status %d", 503);
    eb_expect(S("-UPSTREAM status 503\r\n"), "errorf int");
}
END_TEST

/* An error line cannot carry CR or LF: they become spaces, so a reason that
 * echoes client bytes cannot break the framing. */
START_TEST(test_enc_errorf_strips_crlf)
{
    resp_errorf(eb, "ERR protocol error: %s", "bad\r\nline\n");
    eb_expect(S("-ERR protocol error: bad  line \r\n"), "errorf with CRLF");
}
END_TEST

/* A very long formatted error is cut, still one well-formed line. */
START_TEST(test_enc_errorf_long)
{
    char big[2000];
    size_t n;
    const unsigned char *p;

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    resp_errorf(eb, "ERR bad key '%s'", big);
    n = evbuffer_get_length(eb);
    p = evbuffer_pullup(eb, -1);
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, sizeof(big));
    ck_assert_int_eq(p[0], '-');
    ck_assert_mem_eq(p + n - 2, "\r\n", 2);
    ck_assert_ptr_null(memchr(p, '\r', n - 2));
    ck_assert_ptr_null(memchr(p, '\n', n - 1));
    evbuffer_drain(eb, n);
}
END_TEST

START_TEST(test_enc_int)
{
    resp_int(eb, 0);
    eb_expect(S(":0\r\n"), ":0");
    resp_int(eb, 1);
    eb_expect(S(":1\r\n"), ":1");
    resp_int(eb, -2);
    eb_expect(S(":-2\r\n"), ":-2");
    /* Both sides of the two-digit fast path. */
    resp_int(eb, 9);
    eb_expect(S(":9\r\n"), ":9");
    resp_int(eb, 10);
    eb_expect(S(":10\r\n"), ":10");
    resp_int(eb, 99);
    eb_expect(S(":99\r\n"), ":99");
    resp_int(eb, 100);
    eb_expect(S(":100\r\n"), ":100");
    resp_int(eb, -10);
    eb_expect(S(":-10\r\n"), ":-10");
    resp_int(eb, LLONG_MAX);
    eb_expect(S(":9223372036854775807\r\n"), ":LLONG_MAX");
    resp_int(eb, LLONG_MIN);
    eb_expect(S(":-9223372036854775808\r\n"), ":LLONG_MIN");
}
END_TEST

START_TEST(test_enc_bulk)
{
    resp_bulk(eb, "hello", 5);
    eb_expect(S("$5\r\nhello\r\n"), "bulk");
    resp_bulk(eb, "", 0);
    eb_expect(S("$0\r\n\r\n"), "empty bulk");
    resp_bulk(eb, "a\0b\r\n\xff", 6);
    eb_expect(S("$6\r\na\0b\r\n\xff\r\n"), "binary bulk");
}
END_TEST

START_TEST(test_enc_bulk_large)
{
    size_t len = 100000;
    char *big = malloc(len);
    const unsigned char *p;

    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i * 7);
    resp_bulk(eb, big, len);
    /* header "$100000\r\n" is 9 bytes */
    ck_assert_uint_eq(evbuffer_get_length(eb), 9 + len + 2);
    p = evbuffer_pullup(eb, -1);
    ck_assert_mem_eq(p, "$100000\r\n", 9);
    ck_assert_mem_eq(p + 9, big, len);
    ck_assert_mem_eq(p + 9 + len, "\r\n", 2);
    free(big);
    evbuffer_drain(eb, evbuffer_get_length(eb));
}
END_TEST

START_TEST(test_enc_nil_array)
{
    resp_null(eb, false);
    eb_expect(S("$-1\r\n"), "nil");
    resp_array(eb, 0);
    eb_expect(S("*0\r\n"), "empty array");
    resp_array(eb, 3);
    eb_expect(S("*3\r\n"), "array header");
    resp_array(eb, -1);
    eb_expect(S("*-1\r\n"), "nil array");
}
END_TEST

/* RESP3 (after HELLO 3): the null is `_`, a map `%<pairs>`; RESP2 keeps
 * the nil bulk and an array of twice the pairs. The sizes and the
 * straight-into-memory encoders agree with the evbuffer ones. */
START_TEST(test_enc_resp3)
{
    char buf[64], *end;

    resp_null(eb, true);
    eb_expect(S("_\r\n"), "RESP3 null");
    resp_map(eb, 2, true);
    eb_expect(S("%2\r\n"), "RESP3 map of two pairs");
    resp_map(eb, 2, false);
    eb_expect(S("*4\r\n"), "RESP2: an array of four");
    resp_map(eb, 0, true);
    eb_expect(S("%0\r\n"), "RESP3 empty map");
    for (int r3 = 0; r3 <= 1; r3++) {
        long long ns[] = { 0, 1, 5, 10, 99999 };
        ck_assert_uint_eq(resp_null_size(r3), r3 ? 3 : 5);
        end = resp_put_null(buf, r3);
        ck_assert_uint_eq((size_t)(end - buf), resp_null_size(r3));
        ck_assert_int_eq(memcmp(buf, r3 ? "_\r\n" : "$-1\r\n", resp_null_size(r3)), 0);
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
            end = resp_put_map(buf, ns[i], r3);
            ck_assert_uint_eq((size_t)(end - buf), resp_map_size(ns[i], r3));
            resp_map(eb, ns[i], r3);
            ck_assert_uint_eq(evbuffer_get_length(eb), resp_map_size(ns[i], r3));
            ck_assert_int_eq(memcmp(evbuffer_pullup(eb, -1), buf, (size_t)(end - buf)), 0);
            evbuffer_drain(eb, evbuffer_get_length(eb));
        }
    }
}
END_TEST

/* The other RESP3 shapes (COMMAND's flags, INFO, CLIENT LIST): a set is
 * `~<n>` (RESP2: an array), a text is a verbatim string whose length
 * counts its "txt:" (RESP2: a bulk); the body moves, and is left empty. */
START_TEST(test_enc_resp3_set_text)
{
    struct evbuffer *body = evbuffer_new();

    resp_set(eb, 3, true);
    eb_expect(S("~3\r\n"), "RESP3 set");
    resp_set(eb, 0, true);
    eb_expect(S("~0\r\n"), "RESP3 empty set");
    resp_set(eb, 3, false);
    eb_expect(S("*3\r\n"), "RESP2: an array");
    evbuffer_add(body, S("a\r\nb"));
    resp_text_move(eb, body, true);
    eb_expect(S("=8\r\ntxt:a\r\nb\r\n"), "RESP3 verbatim text");
    ck_assert_uint_eq(evbuffer_get_length(body), 0);
    evbuffer_add(body, S("a\r\nb"));
    resp_text_move(eb, body, false);
    eb_expect(S("$4\r\na\r\nb\r\n"), "RESP2: a bulk");
    ck_assert_uint_eq(evbuffer_get_length(body), 0);
    resp_text_move(eb, body, true);
    eb_expect(S("=4\r\ntxt:\r\n"), "RESP3 empty text");
    evbuffer_free(body);
}
END_TEST

/* Encoders append: a whole HMGET-style reply is the concatenation. */
START_TEST(test_enc_sequence)
{
    resp_array(eb, 3);
    resp_bulk(eb, "Widget", 6);
    resp_null(eb, false);
    resp_bulk(eb, "9.5", 3);
    resp_int(eb, 1);
    resp_simple(eb, "OK");
    eb_expect(S("*3\r\n$6\r\nWidget\r\n$-1\r\n$3\r\n9.5\r\n:1\r\n+OK\r\n"), "sequence");
}
END_TEST

static Suite *resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc;
    int nframes = (int)CS_ARRAY_LEN(frames);

    tc = tcase_create("parse");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_frames_whole, 0, nframes);
    tcase_add_loop_test(tc, test_frames_every_prefix_is_more, 0, nframes);
    tcase_add_loop_test(tc, test_frames_split_stream, 0, nframes);
    tcase_add_test(tc, test_many_commands_one_buffer);
    tcase_add_test(tc, test_empty_lines_skip);
    tcase_add_test(tc, test_empty_buffer_more);
    tcase_add_test(tc, test_many_arguments);
    tcase_add_loop_test(tc, test_progress_kept, 0, nframes);
    tcase_add_test(tc, test_trickle_linear);
    tcase_add_test(tc, test_many_arguments_split);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_inline_too_long);
    tcase_add_test(tc, test_bulk_too_long);
    tcase_add_test(tc, test_resp_malformed);
    tcase_add_test(tc, test_error_messages);
    tcase_add_test(tc, test_frame_too_large);
    tcase_add_test(tc, test_frame_total_over_limit);
    tcase_add_test(tc, test_before_auth_limits);
    tcase_add_test(tc, test_enc_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, eb_setup, eb_teardown);
    tcase_add_test(tc, test_enc_simple);
    tcase_add_test(tc, test_enc_error);
    tcase_add_test(tc, test_enc_errorf_strips_crlf);
    tcase_add_test(tc, test_enc_errorf_long);
    tcase_add_test(tc, test_enc_int);
    tcase_add_test(tc, test_enc_bulk);
    tcase_add_test(tc, test_enc_bulk_large);
    tcase_add_test(tc, test_enc_nil_array);
    tcase_add_test(tc, test_enc_resp3);
    tcase_add_test(tc, test_enc_resp3_set_text);
    tcase_add_test(tc, test_enc_sequence);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
