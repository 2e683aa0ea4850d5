/* SPDX-License-Identifier: BSD-3-Clause */
/* near.h - the near cache (near.c): recently read records kept in this
 * process, already encoded as RESP, exact as long as Redis client tracking
 * tells it every change. */
#ifndef CS_NEAR_H
#define CS_NEAR_H

#include "core.h"

struct cs_ns;
struct redisReply;

/* One record kept: its reply's bytes (a hash's field/value bulk pairs, or
 * a raw body's bulk; none for not-found), the key after them. */
struct near_ent {
    struct near_ent *hnext;     /* the bucket's chain */
    struct near_ent *prev, *next;   /* LRU: most recently used first */
    /* Bit-fields keep the entry at 48 bytes: an expiry in ms fits 43 bits
     * until the year 2248, and a fetch time past 8 minutes only makes an
     * early refresh a little later. */
    int64_t exp : 44;           /* the record's logical expiry, Redis's clock (ms) */
    int64_t delta : 20;         /* how long its fetch took, ms (early refresh) */
    uint32_t vlen;
    int32_t n;                  /* a hash's pairs; -1: the null of a raw not-found */
    uint32_t hash;
    uint16_t klen;
    bool raw;
    bool nf;                    /* the record says not-found */
    char data[];                /* vlen bytes of reply, then klen of key */
};

/* ENTRIES 0: off. Registers the tracking hooks with the Redis layer. */
void near_init(long long entries);
void near_free(void);
/* Whether NS's reads go through the near cache. */
bool near_on(const struct cs_ns *ns);

/* The entry of KEY, fresh at NOW (Redis's clock), or NULL; counted. */
const struct near_ent *near_get(const char *key, size_t klen, bool raw, int64_t now);
/* A hash entry's value of a field, or false. */
bool near_field(const struct near_ent *e, const char *name, size_t len, const char **v, size_t *vlen);

/* Taken before a read is sent: whether its answer may be kept. */
struct near_ticket {
    uint64_t seq, gen;
};
void near_begin(struct near_ticket *t);
/* Keep what a read found (REP: HGETALL's reply, or GET's HMGET with the
 * body at element 2; DELTA: its fetch's ms), unless an invalidation of KEY, a flush or a change
 * of tracking came between T and now. NF: the record says not-found. */
void near_put(const struct near_ticket *t, const char *key, size_t klen, bool raw, bool nf, int64_t exp,
              int64_t delta, const struct redisReply *rep);

/* This daemon writes KEY (NULL: an INVALIDATE, every key): the entry goes
 * now and reads in flight keep nothing of it, so a read after the write's
 * answer never meets the old record, whenever Redis's invalidation comes. */
void near_forget(const char *key, size_t klen);

/* STATS and /metrics. */
long long near_entries(void);
long long near_bytes(void);

#endif
