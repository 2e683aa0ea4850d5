/* SPDX-License-Identifier: BSD-3-Clause */
/* cache.h - the read side of cache-aside: key syntax, the hit path, and
 * answering requests from a Redis reply or a fill's outcome. */
#ifndef CS_CACHE_H
#define CS_CACHE_H

#include "core.h"

struct outcome;
struct req_slot;

#define CACHE_ID_MAX 512
#define CACHE_KEY_MAX 1024

enum read_kind { RK_NONE, RK_HGETALL, RK_HGET, RK_HMGET, RK_GET, RK_MGET };

void cache_init(void);
/* Exit, before the Redis link goes: release the fill locks we hold. */
void cache_shutdown(void);
void cache_free(void);

/* NAMESPACE:ID -> namespace and id; on CS_ERR, err holds the reply text.
 * Also refuses an id that would leave the upstream path (upstream_id_check). */
int cache_parse_key(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns,
                    struct cs_str *id, char *err, size_t errsz) CS_WUR;
/* The same syntax for INVALIDATE's NAMESPACE:GLOB, without the path rule:
 * a glob never reaches the upstream, and may match what an older daemon
 * cached under such an id. */
int cache_parse_pattern(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns,
                        struct cs_str *id, char *err, size_t errsz) CS_WUR;
/* <prefix><ns>:{<id>}: the record, which also holds its fill's lock. */
size_t cache_key(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str id);

void cache_cmd_read(struct req *r);
void cache_cmd_mget(struct req *r);
void cache_cmd_ttl(struct req *r);

#endif
