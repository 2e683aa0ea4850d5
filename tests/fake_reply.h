/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_reply.h - Redis replies for the fakes of the Redis layer, built as
 * hiredis builds them (struct redisReply is public), freed with
 * fake_reply_free (fake_reply.c). */
#ifndef CS_FAKE_REPLY_H
#define CS_FAKE_REPLY_H

#include "core.h"

struct redisReply;

struct redisReply *fake_nil(void);
struct redisReply *fake_int(long long v);
struct redisReply *fake_str(const char *s);
struct redisReply *fake_err(const char *s);
/* An array of N replies, which it takes. */
struct redisReply *fake_arr(int n, ...);
/* An array of N strings, NULL for a nil element. */
struct redisReply *fake_strs(int n, ...);
void fake_reply_free(struct redisReply *r);

#endif
