/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz_rreply.c - the Redis reply parser (src/redis/rreply.c) fed as a Redis
 * link's reads.
 *
 * Input: byte 0 (low 4 bits) says how many chunk sizes follow, then those
 * sizes (each 1-256 bytes, used in turn), then the bytes Redis sends. The
 * stream is read twice the way rio.c reads a link: once as one read, once
 * in the chunks. A reply that came in part is scanned as more comes
 * (rreply_scan) and parsed once whole; the unparsed rest moves in memory
 * between reads. Each buffer is allocated to the exact size of what it
 * holds, so ASan sees any read past it.
 *
 * Invariants: a reply consumes at least one and at most the bytes given,
 * its strings lie inside what it consumed and end in a NUL, and the
 * replies, whether the stream ended in an error, and the unparsed rest are
 * the same however the stream is split. */
#include "core.h"
#include "rreply.h"
#include "fuzz.h"

#include <hiredis/hiredis.h>
#include <string.h>

static struct rreply_arena fz_arena;

/* What one parse of the stream produced: every reply, serialised. */
struct outcome {
    struct fuzz_log log;
    int nreplies;
    bool err;
    size_t rest;
};

/* Serialises r, checking that its strings lie in [lo, hi). */
static void out_reply(struct outcome *o, const redisReply *r, const char *lo, const char *hi)
{
    fuzz_log_add(&o->log, &r->type, sizeof(r->type));
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        fuzz_log_add(&o->log, &r->integer, sizeof(r->integer));
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        FUZZ_CHECK(r->str >= lo && r->str + r->len < hi, "string outside its reply");
        FUZZ_CHECK(r->str[r->len] == '\0', "string not terminated");
        fuzz_log_add(&o->log, &r->len, sizeof(r->len));
        fuzz_log_add(&o->log, r->str, r->len);
        break;
    case REDIS_REPLY_ARRAY:
        fuzz_log_add(&o->log, &r->elements, sizeof(r->elements));
        for (size_t i = 0; i < r->elements; i++)
            out_reply(o, r->element[i], lo, hi);
        break;
    default:
        FUZZ_CHECK(r->type == REDIS_REPLY_NIL, "type %d", r->type);
    }
}

/* One parse at buf[0, len): RREPLY_OK appends the reply to o. */
static int fz_parse(struct outcome *o, char *buf, size_t len, size_t *used)
{
    char why[128];
    redisReply *r;
    int rc = rreply_parse(&fz_arena, buf, len, &r, used, why, sizeof(why));

    if (rc == RREPLY_OK) {
        FUZZ_CHECK(*used >= 1 && *used <= len, "used %zu of %zu", *used, len);
        out_reply(o, r, buf, buf + *used);
        o->nreplies++;
    } else if (rc == RREPLY_ERR) {
        FUZZ_CHECK(strncmp(why, "Protocol error", 14) == 0, "error says %s", why);
    }
    rreply_arena_reset(&fz_arena);
    return rc;
}

/* rio.c's loop over what is buffered: false once the stream is in error. */
static bool fz_replies(struct outcome *o, char *buf, size_t *pos, size_t len, struct rreply_scan *s,
                       bool *scanning)
{
    char why[128];
    size_t used;
    int rc;

    while (*pos < len) {
        char *p = buf + *pos;
        if (*scanning) {
            rc = rreply_scan(s, p, len - *pos, why, sizeof(why));
            if (rc == RREPLY_MORE)
                return true;
            *scanning = false;
            if (rc == RREPLY_ERR)
                return false;
            rc = fz_parse(o, p, len - *pos, &used);
            FUZZ_CHECK(rc == RREPLY_OK, "whole by the scan, %d by the parse", rc);
            FUZZ_CHECK(used == s->pos, "the scan says %zu bytes, the parse %zu", s->pos, used);
        } else {
            rc = fz_parse(o, p, len - *pos, &used);
            if (rc == RREPLY_MORE) {
                rreply_scan_init(s);
                *scanning = true;
                continue;       /* the scan starts on these bytes */
            }
            if (rc == RREPLY_ERR)
                return false;
        }
        *pos += used;
    }
    return true;
}

static void fz_chunked(struct outcome *o, const uint8_t *data, size_t size, const uint8_t *sizes, size_t nsizes)
{
    char *buf = NULL;
    size_t len = 0, pos = 0, off = 0;
    struct rreply_scan s;
    bool scanning = false, ok = true;

    for (size_t k = 0; off < size && ok; k++) {
        size_t n = nsizes ? (size_t)sizes[k % nsizes] + 1 : size - off;
        char *moved;
        if (n > size - off)
            n = size - off;
        /* The unparsed rest, and the new read after it, in a new block. */
        moved = cs_malloc(len - pos + n);
        if (len > pos)
            memcpy(moved, buf + pos, len - pos);
        memcpy(moved + len - pos, data + off, n);
        free(buf);
        buf = moved;
        len = len - pos + n;
        pos = 0;
        off += n;
        ok = fz_replies(o, buf, &pos, len, &s, &scanning);
    }
    o->err = !ok;
    o->rest = ok ? len - pos : 0;
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole = { 0 }, split = { 0 };
    size_t nsizes;

    if (size < 1)
        return 0;
    nsizes = data[0] & 15;
    if (size < 1 + nsizes)
        return 0;
    fz_chunked(&whole, data + 1 + nsizes, size - 1 - nsizes, NULL, 0);
    fz_chunked(&split, data + 1 + nsizes, size - 1 - nsizes, data + 1, nsizes);
    FUZZ_CHECK(whole.nreplies == split.nreplies, "%d replies whole, %d split", whole.nreplies, split.nreplies);
    FUZZ_CHECK(whole.err == split.err, "error %d whole, %d split", whole.err, split.err);
    FUZZ_CHECK(whole.rest == split.rest, "rest %zu whole, %zu split", whole.rest, split.rest);
    FUZZ_CHECK(fuzz_log_same(&whole.log, &split.log), "the replies differ");
    free(whole.log.buf);
    free(split.log.buf);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    CS_UNUSED(argc);
    CS_UNUSED(argv);
    return 0;
}
