/* SPDX-License-Identifier: BSD-3-Clause */
/* clientcmd.h - CLIENT: this daemon's own clients, named, listed and
 * killed as Redis does it (clientcmd.c). */
#ifndef CS_CLIENTCMD_H
#define CS_CLIENTCMD_H

#include "core.h"
#include "command.h"

void clientcmd_client(struct req *r);       /* CLIENT <subcommand> ... */

/* CLIENT's subcommands, for COMMAND (ended by a NULL name). */
extern const struct cmd_sub clientcmd_subs[];

/* Names c as CLIENT SETNAME does (empty: no name); NULL when done, else
 * the error to reply. HELLO ... SETNAME uses it too. */
const char *clientcmd_setname(struct conn *c, const struct cs_str *name);

#endif
