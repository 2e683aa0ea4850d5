/* SPDX-License-Identifier: BSD-3-Clause */
/* introspect.h - COMMAND and INFO: what the daemon is, described in
 * Redis's formats (introspect.c). */
#ifndef CS_INTROSPECT_H
#define CS_INTROSPECT_H

#include "core.h"

void introspect_command(struct req *r);     /* COMMAND [subcommand ...] */
void introspect_info(struct req *r);        /* INFO [section ...] */

#endif
