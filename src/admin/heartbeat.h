/* SPDX-License-Identifier: BSD-3-Clause */
/* heartbeat.h - every daemon sharing the Redis, seen from each of them:
 * each publishes a small JSON heartbeat with its counters in one hash,
 * <key_prefix>daemons, and any of them lists the live ones (docs/design.md,
 * "Daemons sharing a Redis"). */
#ifndef CS_HEARTBEAT_H
#define CS_HEARTBEAT_H

#include "core.h"

#include <jansson.h>

#define HEARTBEAT_EVERY_MS 2000
#define HEARTBEAT_EXPIRE_MS 10000

/* Starts beating once Redis is ready (within half a second of it). */
void heartbeat_start(void);
/* Stops, and removes this daemon's entry (waits at most timeout_ms for
 * Redis to answer, running the loop). */
void heartbeat_stop(int timeout_ms);
/* This process's entry name: host, listen address, pid, start time. */
const char *heartbeat_id(void);

/* The live daemons, as a JSON array of their heartbeats sorted by id, each
 * with "age_ms" and "self" added; NULL and ERR when Redis failed. The
 * array is the callee's: it is freed when cb returns. Entries older than
 * HEARTBEAT_EXPIRE_MS are left out and removed from the hash. CS_ERR: not
 * sent (Redis is down), cb will not be called. */
typedef void (*heartbeat_list_cb)(void *priv, json_t *daemons, const char *err);
int heartbeat_list(heartbeat_list_cb cb, void *priv) CS_WUR;

#endif
