/* SPDX-License-Identifier: BSD-3-Clause */
/* resp.h - request parser (inline and RESP) and RESP2 reply encoder.
 * Pure: no I/O; the only allocations are the caller's argv array and
 * resp_command's result. */
#ifndef CS_RESP_H
#define CS_RESP_H

#include "core.h"

#define RESP_MAX_ARGS 65536

enum resp_status {
    RESP_DONE,      /* one command parsed into args */
    RESP_SKIP,      /* consumed an empty line or an empty array */
    RESP_MORE,      /* need more bytes */
    RESP_ERROR,     /* protocol error: *err says why */
};

struct resp_args {
    struct cs_str *argv;
    int argc;
    int cap;
};

/* What one request may be. */
struct resp_limits {
    size_t max_arg;             /* an inline line or one bulk argument */
    size_t max_frame;           /* a RESP array, all of it */
    long long max_args;         /* arguments in one request */
    bool before_auth;           /* the small limits of a client before AUTH: say so in errors */
};

/* Where the parse of a request stands between reads (as Redis keeps
 * multibulklen and bulklen per client): bytes before pos are never looked
 * at again. Offsets are from the start of the request, so the caller may
 * move its buffer between calls. Zero it for the first request. */
struct resp_parser {
    size_t pos;                 /* bytes of this request parsed so far */
    long long nargs;            /* RESP: arguments in the array */
    long long left;             /* RESP: arguments still to come */
    long long bulk;             /* length of the bulk being received, -1 before its header */
};

/* Parses the request that starts at buf[0]; len is what has arrived of it
 * and after it. DONE: args point into buf, *used is the request's length,
 * and p is ready for the next request. MORE: p remembers the progress; call
 * again with the same start and more bytes. resp_need tells how long the
 * request is known to be so far (a buffer hint). */
enum resp_status resp_parse(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
                            struct resp_args *args, size_t *used, const char **err);
size_t resp_need(const struct resp_parser *p);
void resp_args_free(struct resp_args *args);

/* Encoders append to an evbuffer. */
void resp_simple(struct evbuffer *b, const char *s);
void resp_error(struct evbuffer *b, const char *s);
void resp_errorf(struct evbuffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_int(struct evbuffer *b, long long v);
void resp_bulk(struct evbuffer *b, const char *p, size_t len);
void resp_array(struct evbuffer *b, long long n);
/* What RESP3 (a connection that sent HELLO 3) changes for us: a null is
 * `_`, not RESP2's nil bulk `$-1`, and a map is `%<pairs>`, not an array
 * of twice as many elements. RESP3 is true for such a connection. */
void resp_null(struct evbuffer *b, bool resp3);
void resp_map(struct evbuffer *b, long long pairs, bool resp3);
/* A set (`~<n>`; RESP2: an array), as Redis gives flags and categories. */
void resp_set(struct evbuffer *b, long long n, bool resp3);
/* All of body as one text reply (body is left empty): a verbatim string
 * `=<len>\r\ntxt:...` in RESP3, a bulk string in RESP2, as Redis gives
 * INFO, CLIENT LIST and CLUSTER NODES. */
void resp_text_move(struct evbuffer *b, struct evbuffer *body, bool resp3);
/* Bytes resp_bulk(len) / resp_array(n) / resp_null / resp_map put on the wire. */
size_t resp_bulk_size(size_t len);
size_t resp_array_size(long long n);
size_t resp_null_size(bool resp3);
size_t resp_map_size(long long pairs, bool resp3);
/* The same straight into memory the caller sized with resp_*_size: one
 * copy of the value, no buffer calls. Return the end. */
char *resp_put_array(char *p, long long n);
char *resp_put_bulk(char *p, const char *s, size_t len);
char *resp_put_null(char *p, bool resp3);
char *resp_put_map(char *p, long long pairs, bool resp3);
/* A RESP command (array of bulks) in one NUL-ended buffer, as
 * redisFormatCommandArgv makes it but without printf: returns its length,
 * -1 when too long. lens NULL: the arguments are C strings. The buffer is
 * small when it fits there (small may be NULL), else malloc'd. */
int resp_command(char **out, char *small, size_t smallsz, int argc, const char **argv,
                 const size_t *lens) CS_WUR;

#endif
