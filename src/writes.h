/* SPDX-License-Identifier: BSD-3-Clause */
/* writes.h - the write side: DEL, INVALIDATE, HSET. */
#ifndef CS_WRITES_H
#define CS_WRITES_H

#include "core.h"

void writes_cmd_del(struct req *r);
void writes_cmd_invalidate(struct req *r);
void writes_cmd_hset(struct req *r);
#endif
