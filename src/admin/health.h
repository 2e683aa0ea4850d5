/* SPDX-License-Identifier: BSD-3-Clause */
/* health.h - what the probes ask: is the loop turning (live), can reads be
 * answered (ready); and systemd's watchdog, fed while live. */
#ifndef CS_HEALTH_H
#define CS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

/* The loop counts as wedged once its heartbeat (a 1 s timer) has not run
 * for this long. */
#define HEALTH_WEDGED_MS 5000

/* Starts the heartbeat and, with WATCHDOG_USEC set for us, the watchdog. */
void health_start(void);
void health_free(void);
/* True while live; else why not, in one line. */
bool health_live(char *why, size_t len);
/* True while reads can be answered (from Redis, or degraded from an
 * upstream); msg says which, or why not, in one line. */
bool health_ready(char *msg, size_t len);

#endif
