/* SPDX-License-Identifier: BSD-3-Clause */
/* keys.h - the client's key syntax NAMESPACE:ID (and INVALIDATE's
 * NAMESPACE:GLOB), and the Redis keys built from it (keys.c). */
#ifndef CS_KEYS_H
#define CS_KEYS_H

#include "core.h"

#define KEYS_ID_MAX 512
#define KEYS_KEY_MAX 1024

/* NAMESPACE:ID -> namespace and id; on CS_ERR, err holds the reply text.
 * Also refuses an id that would leave the upstream path (upstream_id_check). */
int keys_parse(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *id, char *err,
               size_t errsz) CS_WUR;
/* INVALIDATE's NAMESPACE:GLOB -> namespace and glob: the same syntax
 * without the path rule (a glob never reaches the upstream, and may match
 * what an older daemon cached under such an id), and no glob Redis would
 * misread (glob_check). */
int keys_parse_glob(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *glob,
                    char *err, size_t errsz) CS_WUR;
/* <prefix><ns>:{<id>}: the record, which also holds its fill's lock. buf
 * has KEYS_KEY_MAX bytes; returns the length. */
size_t keys_build(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str id);
/* keys_build() as a SCAN pattern: only the client's glob is a glob; the
 * prefix and the namespace are matched literally. buf has KEYS_KEY_MAX bytes. */
void keys_pattern(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str glob);

#endif
