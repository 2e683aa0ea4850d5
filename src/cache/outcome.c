/* SPDX-License-Identifier: BSD-3-Clause */
/* outcome.c - a fill's outcome and its shared reply encodings: HGETALL's
 * pairs, GET's bulk and the error line are encoded once per flight and
 * queued to each waiter by reference (evbuffer_add_reference); what
 * differs between RESP2 and RESP3 (the map's header, a null) is a few
 * bytes each waiter writes itself. */
#include "core.h"
#include "outcome.h"
#include "record.h"
#include "resp.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

struct outcome *outcome_new(enum oc_kind kind)
{
    struct outcome *o = cs_calloc(1, sizeof(*o));

    o->refcnt = 1;
    o->kind = kind;
    return o;
}

struct outcome *outcome_error(const char *msg)
{
    struct outcome *o = outcome_new(OC_ERROR);

    o->err = cs_strdup(msg);
    return o;
}

static void blob_unref(struct blob *b)
{
    if (b && --b->refcnt == 0)
        free(b);
}

void outcome_unref(struct outcome *o)
{
    if (--o->refcnt > 0)
        return;
    record_free(&o->rec);
    free(o->err);
    blob_unref(o->pairs);
    blob_unref(o->body);
    blob_unref(o->errb);
    free(o);
}

/* Moves an encoded evbuffer into a blob: one copy per flight, not per waiter. */
static struct blob *blob_from(struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    struct blob *bl = cs_malloc(sizeof(*bl) + len);

    bl->refcnt = 1;
    bl->len = len;
    evbuffer_remove(b, bl->data, len);
    evbuffer_free(b);
    return bl;
}

static void blob_cleanup(const void *data, size_t len, void *arg)
{
    CS_UNUSED(data);
    CS_UNUSED(len);
    blob_unref(arg);
}

void blob_append(struct evbuffer *dst, struct blob *b)
{
    b->refcnt++;
    evbuffer_add_reference(dst, b->data, b->len, blob_cleanup, b);
}

struct blob *outcome_err(struct outcome *o)
{
    if (!o->errb) {
        struct evbuffer *b = evbuffer_new();
        resp_error(b, o->err);
        o->errb = blob_from(b);
    }
    return o->errb;
}

long long outcome_npairs(const struct outcome *o)
{
    return o->kind == OC_RECORD ? o->rec.n : 0;
}

struct blob *outcome_pairs(struct outcome *o)
{
    if (!o->pairs) {
        struct evbuffer *b = evbuffer_new();
        for (int i = 0; i < outcome_npairs(o); i++) {
            resp_bulk(b, o->rec.f[i].p, o->rec.f[i].len);
            resp_bulk(b, o->rec.v[i].p, o->rec.v[i].len);
        }
        o->pairs = blob_from(b);
    }
    return o->pairs;
}

struct blob *outcome_body(struct outcome *o)
{
    if (o->kind != OC_RECORD || !o->rec.has_body)
        return NULL;
    if (!o->body) {
        struct evbuffer *b = evbuffer_new();
        resp_bulk(b, o->rec.body.p, o->rec.body.len);
        o->body = blob_from(b);
    }
    return o->body;
}
