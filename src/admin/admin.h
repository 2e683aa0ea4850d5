/* SPDX-License-Identifier: BSD-3-Clause */
/* admin.h - the HTTP admin endpoint on admin_listen: /metrics, /stats,
 * /livez, /readyz (alias /healthz), /stats/reset, the dashboard and its
 * demo actions. */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "core.h"

/* Binds admin_listen (host:port or a unix socket path); CS_OK when empty. */
int admin_start(void) CS_WUR;
void admin_free(void);

#endif
