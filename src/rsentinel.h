/* SPDX-License-Identifier: BSD-3-Clause */
/* rsentinel.h - finding the primary through Redis Sentinel (rsentinel.c). */
#ifndef CS_RSENTINEL_H
#define CS_RSENTINEL_H

#include "core.h"

struct rnode;
struct stats_sink;

/* FOUND runs whenever a sentinel names the primary (at start, after a
 * +switch-master, after rsentinel_lost). */
void rsentinel_init(void (*found)(const char *host, int port));
void rsentinel_free(void);
/* The primary's link failed or it answered as a replica: ask again, and
 * keep asking every second until rsentinel_ok. */
void rsentinel_lost(void);
void rsentinel_ok(void);
/* Why no primary is known yet. */
const char *rsentinel_status(void);
/* The mode and the primary's address; then the sentinel links and the
 * switches seen. */
void rsentinel_report_primary(struct stats_sink *s);
void rsentinel_report(struct stats_sink *s);
/* /metrics: the sentinel links, and the failovers seen. */
struct rstore_links;
void rsentinel_links(struct rstore_links *l);
struct prom;
void rsentinel_prom(struct prom *p);

#endif
