/* SPDX-License-Identifier: BSD-3-Clause */
/* resp.c - the request parser and reply encoder.
 *
 * The parser is incremental: a partial request leaves its progress in a
 * struct resp_parser (header by header, bulk payloads skipped by length and
 * never scanned), so every byte is examined once however the request is
 * split into reads. When a request arrived in one piece its arguments are
 * collected on the way; when it took several reads they are collected at
 * the end by one walk over the headers, since the caller may have moved the
 * bytes in between. */
#include "core.h"
#include "resp.h"

#include <event2/buffer.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESP_HEADER_MAX 32

static void resp_push(struct resp_args *a, const char *p, size_t len)
{
    if (a->argc == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->argv = cs_realloc(a->argv, sizeof(*a->argv) * (size_t)a->cap);
    }
    a->argv[a->argc].p = p;
    a->argv[a->argc].len = len;
    a->argc++;
}

void resp_args_free(struct resp_args *a)
{
    free(a->argv);
    a->argv = NULL;
    a->argc = a->cap = 0;
}

/* A RESP header line "<c><digits>\r\n" starting at buf[pos]. */
static enum resp_status resp_header(const char *buf, size_t len, size_t pos, long long *val, size_t *next,
                                    const char **err)
{
    const char *nl, *p;
    size_t avail = len - pos;
    long long v = 0;
    int neg = 0;

    nl = memchr(buf + pos, '\n', avail < RESP_HEADER_MAX ? avail : RESP_HEADER_MAX);
    if (!nl) {
        if (avail >= RESP_HEADER_MAX) {
            *err = "length header too long";
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    p = buf + pos + 1;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p == nl || nl[-1] != '\r' || p == nl - 1) {
        *err = "bad length header";
        return RESP_ERROR;
    }
    for (; p < nl - 1; p++) {
        if (*p < '0' || *p > '9' || v > (LLONG_MAX - 9) / 10) {
            *err = "bad length header";
            return RESP_ERROR;
        }
        v = v * 10 + (*p - '0');
    }
    *val = neg ? -v : v;
    *next = (size_t)(nl - buf) + 1;
    return RESP_DONE;
}

/* The arguments of a complete, already checked array. */
static void resp_collect(const char *buf, long long n, struct resp_args *args)
{
    const char *p = memchr(buf, '\n', RESP_HEADER_MAX);

    args->argc = 0;
    for (long long i = 0; i < n; i++) {
        size_t blen = 0;
        p += 2;                         /* past "\n$" */
        if (*p == '-')
            p++;                        /* "$-0" is a valid 0 */
        for (; *p != '\r'; p++)
            blen = blen * 10 + (size_t)(*p - '0');
        resp_push(args, p + 2, blen);
        p += 2 + blen + 1;              /* on the '\n' ending the payload */
    }
}

static void resp_reset(struct resp_parser *ps)
{
    memset(ps, 0, sizeof(*ps));
}

static enum resp_status resp_parse_array(struct resp_parser *ps, const char *buf, size_t len,
                                         const struct resp_limits *lim, struct resp_args *args, size_t *used,
                                         const char **err)
{
    bool fresh = ps->pos == 0;  /* all of it is in this call: collect as we go */
    enum resp_status st;

    if (fresh) {
        long long n;
        size_t next;
        st = resp_header(buf, len, 0, &n, &next, err);
        if (st != RESP_DONE)
            return st;
        if (n <= 0) {           /* "*0" and "*-1": nothing to run, like Redis */
            *used = next;
            return RESP_SKIP;
        }
        if (n > lim->max_args) {
            *err = lim->before_auth ? "too many arguments before AUTH" : "too many arguments in one request";
            return RESP_ERROR;
        }
        ps->nargs = ps->left = n;
        ps->bulk = -1;
        ps->pos = next;
    }
    while (ps->left > 0) {
        size_t pos = ps->pos;
        if (ps->bulk < 0) {
            long long blen;
            if (pos >= len)
                return RESP_MORE;
            if (buf[pos] != '$') {
                *err = "expected '$' for a bulk string";
                return RESP_ERROR;
            }
            st = resp_header(buf, len, pos, &blen, &pos, err);
            if (st != RESP_DONE)
                return st;
            if (blen < 0) {
                *err = "negative bulk length";
                return RESP_ERROR;
            }
            if ((unsigned long long)blen > lim->max_arg) {
                *err = lim->before_auth ? "bulk argument too long before AUTH"
                                        : "bulk argument longer than max_request_bytes";
                return RESP_ERROR;
            }
            if (pos + (size_t)blen + 2 > lim->max_frame) {
                *err = lim->before_auth ? "request too large before AUTH" : "request too large";
                return RESP_ERROR;
            }
            ps->bulk = blen;
            ps->pos = pos;
        }
        if (len - pos < (size_t)ps->bulk + 2)
            return RESP_MORE;
        if (buf[pos + (size_t)ps->bulk] != '\r' || buf[pos + (size_t)ps->bulk + 1] != '\n') {
            *err = "bulk string not terminated by CRLF";
            return RESP_ERROR;
        }
        if (fresh)
            resp_push(args, buf + pos, (size_t)ps->bulk);
        ps->pos = pos + (size_t)ps->bulk + 2;
        ps->bulk = -1;
        ps->left--;
    }
    if (!fresh)
        resp_collect(buf, ps->nargs, args);
    *used = ps->pos;
    return RESP_DONE;
}

static enum resp_status resp_parse_inline(struct resp_parser *ps, const char *buf, size_t len,
                                          const struct resp_limits *lim, struct resp_args *args, size_t *used,
                                          const char **err)
{
    size_t max_arg = lim->max_arg;
    size_t scan_end = len < max_arg + 2 ? len : max_arg + 2;
    const char *nl = ps->pos < scan_end ? memchr(buf + ps->pos, '\n', scan_end - ps->pos) : NULL;
    const char *p, *end;

    if (!nl) {
        if (len > max_arg + 1) {
            *err = lim->before_auth ? "inline request too long before AUTH"
                                    : "inline request longer than max_request_bytes";
            return RESP_ERROR;
        }
        ps->pos = scan_end;     /* searched up to here: never again */
        return RESP_MORE;
    }
    end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    if ((size_t)(end - buf) > max_arg) {
        *err = lim->before_auth ? "inline request too long before AUTH"
                                : "inline request longer than max_request_bytes";
        return RESP_ERROR;
    }
    *used = (size_t)(nl - buf) + 1;
    for (p = buf; p < end;) {
        const char *w;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        w = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        if (args->argc == lim->max_args) {
            *err = lim->before_auth ? "too many arguments before AUTH" : "too many arguments in one request";
            return RESP_ERROR;
        }
        resp_push(args, w, (size_t)(p - w));
    }
    return args->argc ? RESP_DONE : RESP_SKIP;
}

enum resp_status resp_parse(struct resp_parser *ps, const char *buf, size_t len, const struct resp_limits *lim,
                            struct resp_args *args, size_t *used, const char **err)
{
    enum resp_status st;

    args->argc = 0;
    if (len == 0)
        return RESP_MORE;
    if (buf[0] == '*')
        st = resp_parse_array(ps, buf, len, lim, args, used, err);
    else
        st = resp_parse_inline(ps, buf, len, lim, args, used, err);
    if (st == RESP_MORE)
        args->argc = 0;         /* nothing half-collected is shown */
    else
        resp_reset(ps);
    return st;
}

size_t resp_need(const struct resp_parser *ps)
{
    return ps->pos + (ps->bulk > 0 ? (size_t)ps->bulk + 2 : 0);
}

static size_t resp_digits(unsigned long long v);

/* "<type><n>\r\n" into buf (at least 24 bytes), digits written in place:
 * no printf and no second copy on the hit path. */
static size_t resp_enc_header(char *buf, char type, long long n)
{
    unsigned long long v;
    size_t len;
    char *p;

    buf[0] = type;
    if (n >= 0 && n < 100) {
        /* Nearly every header: field counts and short values. */
        len = n < 10 ? 2 : 3;
        buf[len - 1] = (char)('0' + n % 10);
        if (n >= 10)
            buf[1] = (char)('0' + n / 10);
        buf[len] = '\r';
        buf[len + 1] = '\n';
        return len + 2;
    }
    v = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    len = 1 + (n < 0) + resp_digits(v);
    p = buf + len;
    if (n < 0)
        buf[1] = '-';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf[len] = '\r';
    buf[len + 1] = '\n';
    return len + 2;
}

static void resp_line(struct evbuffer *b, char type, const char *s)
{
    size_t len = strlen(s);
    char small[256];

    if (len + 3 <= sizeof(small)) {
        small[0] = type;
        memcpy(small + 1, s, len);
        small[len + 1] = '\r';
        small[len + 2] = '\n';
        evbuffer_add(b, small, len + 3);
        return;
    }
    evbuffer_add(b, &type, 1);
    evbuffer_add(b, s, len);
    evbuffer_add(b, "\r\n", 2);
}

void resp_simple(struct evbuffer *b, const char *s)
{
    resp_line(b, '+', s);
}

void resp_error(struct evbuffer *b, const char *s)
{
    resp_line(b, '-', s);
}

void resp_errorf(struct evbuffer *b, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* An error line cannot carry CR or LF; clients echo them back. */
    for (char *p = msg; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    resp_error(b, msg);
}

void resp_int(struct evbuffer *b, long long v)
{
    char hdr[32];

    evbuffer_add(b, hdr, resp_enc_header(hdr, ':', v));
}

#define RESP_BULK_SMALL 512         /* a bulk up to this goes in with one copy */

void resp_bulk(struct evbuffer *b, const char *p, size_t len)
{
    char small[RESP_BULK_SMALL + 32];
    size_t n = resp_enc_header(small, '$', (long long)len);

    if (len <= RESP_BULK_SMALL) {
        memcpy(small + n, p, len);
        small[n + len] = '\r';
        small[n + len + 1] = '\n';
        evbuffer_add(b, small, n + len + 2);
        return;
    }
    evbuffer_add(b, small, n);
    evbuffer_add(b, p, len);
    evbuffer_add(b, "\r\n", 2);
}

void resp_text_move(struct evbuffer *b, struct evbuffer *body, bool resp3)
{
    char hdr[40];
    size_t len = evbuffer_get_length(body);

    if (resp3) {
        size_t n = resp_enc_header(hdr, '=', (long long)len + 4);
        memcpy(hdr + n, "txt:", 4);
        evbuffer_add(b, hdr, n + 4);
    } else {
        evbuffer_add(b, hdr, resp_enc_header(hdr, '$', (long long)len));
    }
    evbuffer_add_buffer(b, body);
    evbuffer_add(b, "\r\n", 2);
}

void resp_null(struct evbuffer *b, bool resp3)
{
    if (resp3)
        evbuffer_add(b, "_\r\n", 3);
    else
        evbuffer_add(b, "$-1\r\n", 5);
}

void resp_map(struct evbuffer *b, long long pairs, bool resp3)
{
    char hdr[32];

    evbuffer_add(b, hdr, resp_enc_header(hdr, resp3 ? '%' : '*', resp3 ? pairs : 2 * pairs));
}

void resp_set(struct evbuffer *b, long long n, bool resp3)
{
    char hdr[32];

    evbuffer_add(b, hdr, resp_enc_header(hdr, resp3 ? '~' : '*', n));
}

void resp_array(struct evbuffer *b, long long n)
{
    char hdr[32];

    evbuffer_add(b, hdr, resp_enc_header(hdr, '*', n));
}

char *resp_put_array(char *p, long long n)
{
    return p + resp_enc_header(p, '*', n);
}

char *resp_put_bulk(char *p, const char *s, size_t len)
{
    p += resp_enc_header(p, '$', (long long)len);
    memcpy(p, s, len);
    p[len] = '\r';
    p[len + 1] = '\n';
    return p + len + 2;
}

char *resp_put_null(char *p, bool resp3)
{
    if (resp3) {
        memcpy(p, "_\r\n", 3);
        return p + 3;
    }
    memcpy(p, "$-1\r\n", 5);
    return p + 5;
}

char *resp_put_map(char *p, long long pairs, bool resp3)
{
    return p + resp_enc_header(p, resp3 ? '%' : '*', resp3 ? pairs : 2 * pairs);
}

int resp_command(char **out, char *small, size_t smallsz, int argc, const char **argv, const size_t *lens)
{
    size_t total = resp_array_size(argc), pos;
    char *buf;

    for (int i = 0; i < argc; i++)
        total += resp_bulk_size(lens ? lens[i] : strlen(argv[i]));
    if (total > INT32_MAX)
        return -1;
    buf = small && total + 1 <= smallsz ? small : cs_malloc(total + 1);
    pos = resp_enc_header(buf, '*', argc);
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        pos += resp_enc_header(buf + pos, '$', (long long)len);
        memcpy(buf + pos, argv[i], len);
        pos += len;
        buf[pos++] = '\r';
        buf[pos++] = '\n';
    }
    buf[pos] = '\0';
    *out = buf;
    return (int)pos;
}

static size_t resp_digits(unsigned long long v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Counted, not formatted: the read path sizes every reply before building it. */
size_t resp_bulk_size(size_t len)
{
    return 1 + resp_digits(len) + 2 + len + 2;
}

size_t resp_array_size(long long n)
{
    return 1 + (n < 0) + resp_digits(n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n) + 2;
}

size_t resp_null_size(bool resp3)
{
    return resp3 ? 3 : 5;
}

size_t resp_map_size(long long pairs, bool resp3)
{
    return resp_array_size(resp3 ? pairs : 2 * pairs);    /* the same shape: type byte, count, CRLF */
}
