/* SPDX-License-Identifier: BSD-3-Clause */
/* report.h - every module's figures in one report, for STATS, /stats and
 * /metrics: the same names everywhere. */
#ifndef CS_REPORT_H
#define CS_REPORT_H

#include "core.h"

struct stats_sink;

void report_all(struct stats_sink *s);
void report_text(struct evbuffer *b);           /* the STATS reply body */
void report_json(struct evbuffer *b);           /* /stats */
void report_prometheus(struct evbuffer *b);     /* /metrics */
/* A SIGHUP reload happened: its time and whether the file was taken. */
void report_reload(bool ok);

#endif
