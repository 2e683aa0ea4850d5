/* SPDX-License-Identifier: BSD-3-Clause */
/* breaker.h - each namespace's circuit breaker, shared through Redis
 * (docs/design.md section 15). */
#ifndef CS_BREAKER_H
#define CS_BREAKER_H

#include "core.h"
#include "config.h"

/* What a fetch ended with, as the breaker counts it. */
enum breaker_result { BR_OK, BR_FAIL };

/* go: the caller may fetch from the upstream (closed, or its probe). */
typedef void breaker_cb(void *priv, bool go);

/* breaker_failures > 0 in ns. */
bool breaker_on(const struct cs_ns *ns);
/* What this daemon last learned says open, and the period is not over:
 * refuse without asking Redis. */
bool breaker_open_here(const struct cs_ns *ns);
/* Before a fetch: cb says whether to send it (called later, or at once
 * when Redis cannot be asked: then what this daemon knows decides). */
void breaker_ask(const struct cs_config *conf, const struct cs_ns *ns, breaker_cb *cb, void *priv);
/* After a fetch that reached (or failed to reach) the upstream. */
void breaker_report(const struct cs_config *conf, const struct cs_ns *ns, enum breaker_result r);

#endif
