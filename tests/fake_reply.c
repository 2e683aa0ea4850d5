/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_reply.c - hiredis replies built by hand (fake_reply.h). */
#include "core.h"
#include "fake_reply.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static redisReply *fake_new(int type)
{
    redisReply *r = cs_calloc(1, sizeof(*r));

    r->type = type;
    return r;
}

redisReply *fake_nil(void)
{
    return fake_new(REDIS_REPLY_NIL);
}

redisReply *fake_int(long long v)
{
    redisReply *r = fake_new(REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

static redisReply *fake_text(int type, const char *s)
{
    redisReply *r = fake_new(type);

    r->len = strlen(s);
    r->str = cs_malloc(r->len + 1);
    memcpy(r->str, s, r->len + 1);
    return r;
}

redisReply *fake_str(const char *s)
{
    return fake_text(REDIS_REPLY_STRING, s);
}

redisReply *fake_err(const char *s)
{
    return fake_text(REDIS_REPLY_ERROR, s);
}

redisReply *fake_arr(int n, ...)
{
    redisReply *r = fake_new(REDIS_REPLY_ARRAY);
    va_list ap;

    r->elements = (size_t)n;
    r->element = cs_calloc((size_t)(n > 0 ? n : 1), sizeof(*r->element));
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

redisReply *fake_strs(int n, ...)
{
    redisReply *r = fake_arr(0);
    va_list ap;

    free(r->element);
    r->elements = (size_t)n;
    r->element = cs_calloc((size_t)(n > 0 ? n : 1), sizeof(*r->element));
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        r->element[i] = s ? fake_str(s) : fake_nil();
    }
    va_end(ap);
    return r;
}

void fake_reply_free(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++)
        fake_reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}
