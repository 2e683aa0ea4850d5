/* SPDX-License-Identifier: BSD-3-Clause */
/* outcome.h - what a fill ends with (record, not-found or error), shared by
 * every waiter of its flight, and its replies, encoded once. */
#ifndef CS_OUTCOME_H
#define CS_OUTCOME_H

#include "core.h"
#include "record.h"

/* An encoded reply shared by every waiter (evbuffer_add_reference). */
struct blob {
    int refcnt;
    size_t len;
    char data[];
};

enum oc_kind { OC_RECORD, OC_NOTFOUND, OC_ERROR };

struct outcome {
    int refcnt;
    enum oc_kind kind;
    struct record rec;
    char *err;                          /* e.g. "UPSTREAM timeout" */
    struct blob *pairs, *body, *errb;   /* encoded on first use */
};

struct outcome *outcome_new(enum oc_kind kind);
struct outcome *outcome_error(const char *msg);
void outcome_unref(struct outcome *o);
/* Shared encodings: HGETALL's field and value pairs (after a header the
 * caller writes: RESP2's array or RESP3's map, of o's record's pairs, 0
 * when not found), GET's bulk (NULL when there is no body: the caller
 * writes its protocol's null), the error line. */
struct blob *outcome_pairs(struct outcome *o);
long long outcome_npairs(const struct outcome *o);
struct blob *outcome_body(struct outcome *o);
struct blob *outcome_err(struct outcome *o);
void blob_append(struct evbuffer *dst, struct blob *b);


#endif
