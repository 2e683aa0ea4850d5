/* resp.h - request parser (inline and RESP) and RESP2 reply encoder.
 * Pure: no I/O, no allocation beyond the caller's argv array. */
#ifndef CS_RESP_H
#define CS_RESP_H

#include "core.h"

#define RESP_MAX_ARGS (1024 * 1024)

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

/* Parses one request from buf[0..len). Arguments point into buf. *used is
 * the bytes consumed (DONE/SKIP). max_arg bounds a line or a bulk argument,
 * max_frame a whole RESP array. */
enum resp_status resp_parse(const char *buf, size_t len, size_t max_arg, size_t max_frame,
                            struct resp_args *args, size_t *used, const char **err);
void resp_args_free(struct resp_args *args);

/* Encoders append to an evbuffer. */
void resp_simple(struct evbuffer *b, const char *s);
void resp_error(struct evbuffer *b, const char *s);
void resp_errorf(struct evbuffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_int(struct evbuffer *b, long long v);
void resp_bulk(struct evbuffer *b, const char *p, size_t len);
void resp_nil(struct evbuffer *b);
void resp_array(struct evbuffer *b, long long n);

#endif
