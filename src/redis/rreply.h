/* SPDX-License-Identifier: BSD-3-Clause */
/* rreply.h - Redis's replies (RESP2) parsed where they were read, into
 * hiredis's redisReply shape, for rio.c. hiredis's reader copies every
 * reply into its own buffer, moves what is left after each one, and
 * builds the tree a task at a time; a link's replies are parsed here in
 * its own input buffer instead, their strings left in place. */
#ifndef CS_RREPLY_H
#define CS_RREPLY_H

#include "core.h"

struct redisReply;

/* Reply objects of one link. One reply is parsed and handed on at a
 * time, so all of a link's objects go at once (rreply_arena_reset). */
#define RREPLY_ARENA_SIZE 16384
struct rreply_big;
struct rreply_arena {
    size_t used;
    struct rreply_big *big;     /* what did not fit, freed with the rest */
    _Alignas(16) char buf[RREPLY_ARENA_SIZE];
};

void rreply_arena_reset(struct rreply_arena *a);

#define RREPLY_DEPTH 8          /* arrays in arrays; Redis's own replies to us go 3 deep */
#define RREPLY_MAX_BULK (512LL * 1024 * 1024)

enum rreply_rc { RREPLY_ERR = -1, RREPLY_MORE = 0, RREPLY_OK = 1 };

/* One whole reply at the start of BUF (LEN bytes) as a tree in A.
 * RREPLY_OK: *OUT is the reply and *USED its length in BUF; its strings
 * point into BUF, where each one's \r became its terminating NUL, so BUF
 * must stay put while the reply is used. RREPLY_MORE: BUF holds only part
 * of a reply (call again with more; A may hold objects: reset it).
 * RREPLY_ERR: not RESP; ERRBUF (ERRSIZE bytes) says why. */
int rreply_parse(struct rreply_arena *a, char *buf, size_t len, struct redisReply **out, size_t *used,
                 char *errbuf, size_t errsize);

/* Whether a reply that comes in over many reads is whole yet, without
 * building it and without reading again what an earlier call saw. Start
 * with rreply_scan_init; call with the reply's first bytes, more each
 * time (BUF is where the reply starts; it may move between calls). */
struct rreply_scan {
    size_t pos;                 /* bytes of the reply seen whole */
    int depth;
    long long left[RREPLY_DEPTH + 1];   /* elements still due at each level */
};

void rreply_scan_init(struct rreply_scan *s);
/* RREPLY_OK: the reply is whole, S->pos bytes; RREPLY_MORE; RREPLY_ERR. */
int rreply_scan(struct rreply_scan *s, const char *buf, size_t len, char *errbuf, size_t errsize);

#endif
