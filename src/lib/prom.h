/* SPDX-License-Identifier: BSD-3-Clause */
/* prom.h - a writer of the Prometheus text exposition format (0.0.4):
 * one family's HELP and TYPE, then its samples, labels escaped. */
#ifndef CS_PROM_H
#define CS_PROM_H

#include "core.h"
#include "stats.h"

struct prom {
    struct evbuffer *b;
    const char *family;         /* the family being written */
};

void prom_family(struct prom *p, const char *name, const char *type, const char *help);
/* A sample of the current family, with up to two labels (a NULL key ends them). */
void prom_sample(struct prom *p, double v, const char *k1, const char *v1, const char *k2, const char *v2);
/* A histogram of the current family: the exported buckets (the latency
 * bounds in seconds, or 1, 2, 4 ... 1024 for SH_WAITERS), _sum and _count,
 * with one label or none. */
void prom_hist(struct prom *p, enum stats_hist_id id, const struct stats_hist *h, const char *k, const char *v);

#endif
