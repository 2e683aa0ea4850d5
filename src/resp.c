/* resp.c - the request parser and reply encoder.
 *
 * The parser is restartable from the start of a request: a RESP array is
 * walked header by header and bulk payloads are skipped by length, never
 * scanned, so re-parsing a partial frame costs O(arguments), not O(bytes). */
#include "core.h"
#include "resp.h"

#include <event2/buffer.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static enum resp_status resp_header(const char *buf, size_t len, size_t pos, size_t max_line,
                                    long long *val, size_t *next, const char **err)
{
    const char *nl, *p;
    size_t avail = len - pos;
    long long v = 0;
    int neg = 0;

    nl = memchr(buf + pos, '\n', avail < max_line ? avail : max_line);
    if (!nl) {
        if (avail >= max_line) {
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

static enum resp_status resp_parse_array(const char *buf, size_t len, size_t max_arg, size_t max_frame,
                                         struct resp_args *args, size_t *used, const char **err)
{
    long long n, blen;
    size_t pos;
    enum resp_status st;

    st = resp_header(buf, len, 0, 32, &n, &pos, err);
    if (st != RESP_DONE)
        return st;
    if (n <= 0) {               /* "*0" and "*-1": nothing to run, like Redis */
        *used = pos;
        return RESP_SKIP;
    }
    if (n > RESP_MAX_ARGS) {
        *err = "too many arguments in one request";
        return RESP_ERROR;
    }
    for (long long i = 0; i < n; i++) {
        if (pos >= len)
            return RESP_MORE;
        if (pos > max_frame) {
            *err = "request too large";
            return RESP_ERROR;
        }
        if (buf[pos] != '$') {
            *err = "expected '$' for a bulk string";
            return RESP_ERROR;
        }
        st = resp_header(buf, len, pos, 32, &blen, &pos, err);
        if (st != RESP_DONE)
            return st;
        if (blen < 0) {
            *err = "negative bulk length";
            return RESP_ERROR;
        }
        if ((unsigned long long)blen > max_arg) {
            *err = "bulk argument longer than max_request_bytes";
            return RESP_ERROR;
        }
        if (pos + (size_t)blen + 2 > max_frame) {
            *err = "request too large";
            return RESP_ERROR;
        }
        if (len - pos < (size_t)blen + 2)
            return RESP_MORE;
        if (buf[pos + (size_t)blen] != '\r' || buf[pos + (size_t)blen + 1] != '\n') {
            *err = "bulk string not terminated by CRLF";
            return RESP_ERROR;
        }
        resp_push(args, buf + pos, (size_t)blen);
        pos += (size_t)blen + 2;
    }
    *used = pos;
    return RESP_DONE;
}

static enum resp_status resp_parse_inline(const char *buf, size_t len, size_t max_arg,
                                          struct resp_args *args, size_t *used, const char **err)
{
    const char *nl = memchr(buf, '\n', len < max_arg + 2 ? len : max_arg + 2);
    const char *p, *end;

    if (!nl) {
        if (len > max_arg + 1) {
            *err = "inline request longer than max_request_bytes";
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    if ((size_t)(end - buf) > max_arg) {
        *err = "inline request longer than max_request_bytes";
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
        resp_push(args, w, (size_t)(p - w));
    }
    return args->argc ? RESP_DONE : RESP_SKIP;
}

enum resp_status resp_parse(const char *buf, size_t len, size_t max_arg, size_t max_frame,
                            struct resp_args *args, size_t *used, const char **err)
{
    args->argc = 0;
    if (len == 0)
        return RESP_MORE;
    if (buf[0] == '*')
        return resp_parse_array(buf, len, max_arg, max_frame, args, used, err);
    return resp_parse_inline(buf, len, max_arg, args, used, err);
}

void resp_simple(struct evbuffer *b, const char *s)
{
    evbuffer_add_printf(b, "+%s\r\n", s);
}

void resp_error(struct evbuffer *b, const char *s)
{
    evbuffer_add_printf(b, "-%s\r\n", s);
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
    evbuffer_add_printf(b, ":%lld\r\n", v);
}

void resp_bulk(struct evbuffer *b, const char *p, size_t len)
{
    char hdr[32];
    int n = snprintf(hdr, sizeof(hdr), "$%zu\r\n", len);

    evbuffer_add(b, hdr, (size_t)n);
    evbuffer_add(b, p, len);
    evbuffer_add(b, "\r\n", 2);
}

void resp_nil(struct evbuffer *b)
{
    evbuffer_add(b, "$-1\r\n", 5);
}

void resp_array(struct evbuffer *b, long long n)
{
    evbuffer_add_printf(b, "*%lld\r\n", n);
}
