/* SPDX-License-Identifier: BSD-3-Clause */
/* server.h - listeners, accept, the client limit, the idle sweep, shutdown. */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include "core.h"

/* Binds the configured listeners; CS_ERR when one cannot bind. */
int server_start(void) CS_WUR;
/* SIGTERM: stop accepting, drain clients, then break the loop. */
void server_shutdown(void);
void server_free(void);
bool server_stopping(void);
/* Raises the soft RLIMIT_NOFILE (up to the hard one) to what max_clients
 * and the upstream pools need, or warns; at start and after a reload. */
void server_check_nofile(void);

#endif
