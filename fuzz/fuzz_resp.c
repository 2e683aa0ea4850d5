/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz_resp.c - the request parser (src/lib/resp.c) fed as a client's packets.
 *
 * Input: byte 0 picks max_request_bytes, byte 1 (low 4 bits) how many chunk
 * sizes follow, then those sizes (each 1-256 bytes, used in turn), then the
 * bytes the client sends. The stream is parsed twice: once as one packet,
 * once in the chunks, the way conn.c does it: bytes are appended to the
 * unparsed rest, which moves in memory between calls (conn.c reallocs and
 * compacts its buffer), and the parser is called until it needs more.
 *
 * Invariants: the parser reads only the bytes it is given (the buffer is
 * allocated to their exact size, so ASan sees any overread), a request
 * consumes at least one and at most len bytes, its arguments lie inside the
 * bytes it consumed, and the commands, the error and the unparsed rest are
 * the same however the stream is split. */
#include "core.h"
#include "resp.h"
#include "fuzz.h"

#include <string.h>

/* What one parse of the stream produced: every command, serialised. */
struct outcome {
    struct fuzz_log log;
    int ncmds;
    const char *err;            /* the protocol error that ended it, or NULL */
    size_t rest;                /* bytes left unparsed at the end */
};

/* The client connection as the parser sees it. Adapt this struct and
 * fz_parse() when the parser's API changes. */
struct fz_conn {
    char *buf;                  /* exactly len bytes, parsed up to pos */
    size_t len, pos;
    size_t max_arg;
    struct resp_parser parser;  /* progress within the request at pos */
    struct resp_args args;
    bool dead;                  /* a protocol error closed it */
};

static enum resp_status fz_parse(struct fz_conn *c, size_t pos, size_t *used, const char **err)
{
    const struct resp_limits lim = { .max_arg = c->max_arg, .max_frame = c->max_arg * 64,
                                     .max_args = RESP_MAX_ARGS };

    return resp_parse(&c->parser, c->buf + pos, c->len - pos, &lim, &c->args, used, err);
}

static void fz_conn_free(struct fz_conn *c)
{
    resp_args_free(&c->args);
    free(c->buf);
}

/* Parses what is buffered, recording commands, until more bytes are needed. */
static void fz_process(struct fz_conn *c, struct outcome *o)
{
    size_t pos = c->pos;

    while (!c->dead && pos < c->len) {
        const char *err = NULL;
        size_t used = 0;
        enum resp_status st = fz_parse(c, pos, &used, &err);

        if (st == RESP_MORE)
            break;
        if (st == RESP_ERROR) {
            FUZZ_CHECK(err != NULL && err[0], "an error without a message");
            o->err = err;
            c->dead = true;
            break;
        }
        FUZZ_CHECK(st == RESP_DONE || st == RESP_SKIP, "status %d", (int)st);
        FUZZ_CHECK(used > 0 && used <= c->len - pos, "used %zu of %zu bytes", used, c->len - pos);
        if (st == RESP_DONE) {
            uint32_t argc = (uint32_t)c->args.argc;
            FUZZ_CHECK(c->args.argc > 0, "a command with %d arguments", c->args.argc);
            fuzz_log_add(&o->log, &argc, sizeof(argc));
            for (int i = 0; i < c->args.argc; i++) {
                const struct cs_str *a = &c->args.argv[i];
                uint64_t al = a->len;
                FUZZ_CHECK(a->p >= c->buf + pos && a->len <= used && a->p - (c->buf + pos) <= (ptrdiff_t)(used - a->len),
                           "argument %d (%zu bytes at offset %td) outside the %zu bytes consumed", i, a->len,
                           a->p - (c->buf + pos), used);
                fuzz_log_add(&o->log, &al, sizeof(al));
                fuzz_log_add(&o->log, a->p, a->len);
            }
            o->ncmds++;
        }
        pos += used;
    }
    c->pos = pos;
}

/* Bytes arrive: the unparsed rest and the new bytes move to a new buffer
 * of exact size (one allocation per packet keeps the target fast). */
static void fz_receive(struct fz_conn *c, const uint8_t *p, size_t n)
{
    size_t rest = c->len - c->pos;
    char *nb = cs_malloc(rest + n);

    if (rest)
        memcpy(nb, c->buf + c->pos, rest);
    memcpy(nb + rest, p, n);
    free(c->buf);
    c->buf = nb;
    c->len = rest + n;
    c->pos = 0;
}

static void fz_run(struct outcome *o, size_t max_arg, const uint8_t *data, size_t size,
                   const uint8_t *sizes, size_t nsizes)
{
    struct fz_conn c = { .max_arg = max_arg };
    size_t off = 0, k = 0;

    memset(o, 0, sizeof(*o));
    while (off < size && !c.dead) {
        size_t n = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : size;
        if (n > size - off)
            n = size - off;
        fz_receive(&c, data + off, n);
        off += n;
        fz_process(&c, o);
    }
    o->rest = c.dead ? 0 : c.len - c.pos;
    fz_conn_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_args[] = { 64, 100, 1024, 65536 };
    struct outcome whole, split;
    size_t max_arg, nsizes;
    const uint8_t *sizes;

    if (size < 2)
        return 0;
    max_arg = max_args[data[0] & 3];
    nsizes = data[1] & 15;
    if (size < 2 + nsizes)
        return 0;
    sizes = data + 2;
    data += 2 + nsizes;
    size -= 2 + nsizes;

    fz_run(&whole, max_arg, data, size, NULL, 0);
    /* No sizes: one byte at a time, the slowest trickle. */
    fz_run(&split, max_arg, data, size, nsizes ? sizes : (const uint8_t *)"", nsizes ? nsizes : 1);

    FUZZ_CHECK(whole.ncmds == split.ncmds, "%d commands whole, %d split", whole.ncmds, split.ncmds);
    FUZZ_CHECK(fuzz_log_same(&whole.log, &split.log), "the commands differ between the whole stream and its split");
    FUZZ_CHECK((whole.err == NULL) == (split.err == NULL) && (!whole.err || strcmp(whole.err, split.err) == 0),
               "error '%s' whole, '%s' split", whole.err ? whole.err : "none", split.err ? split.err : "none");
    FUZZ_CHECK(whole.rest == split.rest, "%zu bytes left whole, %zu split", whole.rest, split.rest);
    free(whole.log.buf);
    free(split.log.buf);
    return 0;
}
