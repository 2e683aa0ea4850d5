/* SPDX-License-Identifier: BSD-3-Clause */
/* daemons.h - GET /daemons: every daemon sharing this Redis, from their
 * heartbeats (heartbeat.h), as JSON. */
#ifndef CS_DAEMONS_H
#define CS_DAEMONS_H

#include "core.h"

struct evhttp_request;

/* Answers req once Redis has (one HGETALL); 503 when Redis is down. */
void daemons_handle(struct evhttp_request *req, const char *arg);

#endif
