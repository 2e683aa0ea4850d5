/* SPDX-License-Identifier: BSD-3-Clause */
/* writes.h - the write side: DEL, INVALIDATE, HSET. */
#ifndef CS_WRITES_H
#define CS_WRITES_H

#include "core.h"

void writes_cmd_del(struct req *r);
void writes_cmd_invalidate(struct req *r);
void writes_cmd_hset(struct req *r);
/* INVALIDATE's NS:GLOB -> namespace and glob; on CS_ERR, err holds the
 * reply text (cache_parse_pattern, then a glob Redis would misread). */
int writes_parse_glob(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *glob,
                      char *err, size_t errsz) CS_WUR;

#endif
