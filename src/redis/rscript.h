/* SPDX-License-Identifier: BSD-3-Clause */
/* rscript.h - the Lua scripts the Redis layer's owners register
 * (rstore_script_add), for the links that load and run them (rscript.c). */
#ifndef CS_RSCRIPT_H
#define CS_RSCRIPT_H

#include "core.h"
#include "rstore.h"

/* How many scripts are registered; handles are 0 .. rscript_count() - 1. */
int rscript_count(void);
const char *rscript_name(int s);
const char *rscript_source(int s);
/* The SHA1 Redis named at the last SCRIPT LOAD (40 hex digits, NUL-ended;
 * empty before the first load). */
const char *rscript_sha(int s);
void rscript_loaded(int s, const char *sha, size_t len);
/* A reply to EVALSHA of S that came after the command's deadline: its
 * owner's late callback, with the KEYS and ARGV parsed back from the
 * command as it went out (FMT, LEN: its RESP). */
void rscript_late(int s, const char *fmt, size_t len, const struct redisReply *reply);
void rscript_free(void);

#endif
