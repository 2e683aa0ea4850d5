/* outcome.c - a fill's outcome and its shared reply encodings: HGETALL's
 * array, GET's bulk and the error line are encoded once per flight and
 * queued to each waiter by reference (evbuffer_add_reference). */
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

    o->err = strdup(msg);
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
    blob_unref(o->all);
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

struct blob *outcome_all(struct outcome *o)
{
    if (o->kind == OC_ERROR)
        return outcome_err(o);
    if (!o->all) {
        struct evbuffer *b = evbuffer_new();
        resp_array(b, o->kind == OC_RECORD ? 2LL * o->rec.n : 0);
        for (int i = 0; o->kind == OC_RECORD && i < o->rec.n; i++) {
            resp_bulk(b, o->rec.f[i].p, o->rec.f[i].len);
            resp_bulk(b, o->rec.v[i].p, o->rec.v[i].len);
        }
        o->all = blob_from(b);
    }
    return o->all;
}

struct blob *outcome_body(struct outcome *o)
{
    if (o->kind == OC_ERROR)
        return outcome_err(o);
    if (!o->body) {
        struct evbuffer *b = evbuffer_new();
        if (o->kind == OC_RECORD && o->rec.has_body)
            resp_bulk(b, o->rec.body.p, o->rec.body.len);
        else
            resp_nil(b);
        o->body = blob_from(b);
    }
    return o->body;
}
