/* SPDX-License-Identifier: BSD-3-Clause */
/* demo.h - the dashboard's cache-aside demo, done through the daemon's own
 * client path: each action is a real client connection to our own listener
 * speaking RESP, so it sees exactly what an application sees. */
#ifndef CS_DEMO_H
#define CS_DEMO_H

#include "core.h"

struct evhttp_request;

/* Each answers req (now or later) with a JSON object. The actions:
 * read, update, invalidate, stampede. */
void demo_handle(struct evhttp_request *req, const char *action);

#endif
