/* SPDX-License-Identifier: BSD-3-Clause */
/* record.h - a cached record: upstream JSON or raw body <-> hash fields. */
#ifndef CS_RECORD_H
#define CS_RECORD_H

#include "core.h"

struct redisReply;

/* User-visible fields, plus the bookkeeping the hash carries in "__" fields:
 * __exp (logical expiry, unix ms), __nf (not-found sentinel), __body (raw). */
struct record {
    bool nf;
    bool has_body;
    int64_t exp_ms;
    int n;
    struct cs_str *f, *v;
    struct cs_str body;
    char *mem;                  /* owns every byte the views point at */
};

/* A JSON object flattened as docs/design.md section 6 says; CS_ERR when the body is
 * not one (err says why, for the log). */
int record_from_json(struct record *rec, const char *body, size_t len, char *err, size_t errsz) CS_WUR;
void record_from_raw(struct record *rec, const char *body, size_t len);
/* Copies an HGETALL reply. */
void record_from_reply(struct record *rec, const struct redisReply *r);
/* A record's __exp: decimal digits only, else not ours (a miss). */
bool record_exp_parse(const char *p, size_t len, int64_t *exp) CS_WUR;
/* The bookkeeping fields of an HGETALL reply: true when __exp is valid. */
/* The bookkeeping fields of a record read with HGETALL. */
struct record_meta {
    int64_t exp;                /* __exp, when valid */
    bool nf, body;              /* __nf, __body present */
    struct cs_str lock;         /* __lock: the token of the fill under way (p NULL: none) */
    int64_t delta;              /* __delta: how long its fetch took, ms (0: not known) */
};
bool record_reply_meta(const struct redisReply *rep, struct record_meta *m) CS_WUR;
void record_free(struct record *rec);

static inline bool record_field_reserved(const char *p, size_t len)
{
    return len >= 2 && p[0] == '_' && p[1] == '_';
}

#endif
