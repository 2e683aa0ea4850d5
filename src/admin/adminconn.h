/* SPDX-License-Identifier: BSD-3-Clause */
/* adminconn.h - the admin port's connections: at most CS_ADMIN_MAX_CONNS,
 * the rest answered 503 at once; accepting paused when out of descriptors. */
#ifndef CS_ADMINCONN_H
#define CS_ADMINCONN_H

#include "core.h"

struct evhttp;
struct evhttp_bound_socket;

/* Takes over how HTTP accepts on BOUND (a socket it listens on); once per
 * server, after binding. */
int adminconn_attach(struct evhttp *http, struct evhttp_bound_socket *bound) CS_WUR;
/* Before evhttp_free. */
void adminconn_free(void);

#endif
