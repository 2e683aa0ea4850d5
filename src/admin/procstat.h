/* SPDX-License-Identifier: BSD-3-Clause */
/* procstat.h - the process_* figures of /metrics, read from /proc/self. */
#ifndef CS_PROCSTAT_H
#define CS_PROCSTAT_H

#include "core.h"

struct prom;

/* The standard process_* families (CPU, memory, descriptors, start time).
 * A figure /proc does not give (not Linux, a file unreadable) is left out,
 * family and all, rather than reported as a made-up 0. */
void procstat_report(struct prom *p);

#endif
