/* SPDX-License-Identifier: BSD-3-Clause */
/* clusteremu.h - the one-node cluster clients configured for Redis Cluster
 * see: CLUSTER, READONLY, READWRITE, ASKING (clusteremu.c). */
#ifndef CS_CLUSTEREMU_H
#define CS_CLUSTEREMU_H

#include "core.h"
#include "command.h"

void clusteremu_cluster(struct req *r);     /* CLUSTER <subcommand> ... */
void clusteremu_readonly(struct req *r);
void clusteremu_readwrite(struct req *r);
void clusteremu_asking(struct req *r);

/* CLUSTER's subcommands, for COMMAND (ended by a NULL name). */
extern const struct cmd_sub clusteremu_subs[];

/* The node's id: 40 hex digits drawn at the first use, the same for the
 * daemon's life (INFO's run_id too). */
const char *clusteremu_myid(void);

#endif
