/* SPDX-License-Identifier: BSD-3-Clause */
/* xfetch.h - probabilistic early refresh of hot records (docs/design.md section 14). */
#ifndef CS_XFETCH_H
#define CS_XFETCH_H

#include "core.h"
#include "config.h"

/* Whether a fresh hit on a record that expires at exp (Redis ms) and took
 * delta_ms to fetch should start a refresh now, by Redis's clock now. */
bool xfetch_due(const struct cs_ns *ns, int64_t now, int64_t exp, int64_t delta_ms);

#endif
