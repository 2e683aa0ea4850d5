/* SPDX-License-Identifier: BSD-3-Clause */
/* multi.h - transactions: MULTI queues a connection's commands, EXEC runs
 * them in order as one array reply, DISCARD drops them; WATCH is refused
 * (multi.c, docs/protocol.md "Transactions"). */
#ifndef CS_MULTI_H
#define CS_MULTI_H

#include "core.h"

struct multi;

void multi_cmd_multi(struct req *r);
void multi_cmd_exec(struct req *r);
void multi_cmd_discard(struct req *r);
void multi_cmd_watch(struct req *r);
void multi_cmd_unwatch(struct req *r);

/* From command_dispatch, for a command that passed the checks every
 * command gets, on a connection inside MULTI: true = r was taken (queued
 * and answered +QUEUED, or refused); false = it runs now (EXEC, DISCARD,
 * MULTI, WATCH, QUIT). */
bool multi_queue(struct req *r) CS_WUR;
/* From command_dispatch, for a command refused before it ran, on a
 * connection inside MULTI: the transaction is doomed (EXEC answers
 * EXECABORT). True when r was answered here: an EXEC refused ends the
 * transaction with the reason, as Redis does. */
bool multi_refused(struct req *r, const char *msg) CS_WUR;

/* After EXEC: its commands wait to start (conn.c starts them as it would
 * start pipelined requests, and parses nothing sent after EXEC before). */
bool multi_pending(const struct multi *m);
/* Starts the next of them as the connection's newest request. */
void multi_start_next(struct conn *c);
/* CLIENT LIST's multi=: the commands queued inside MULTI, -1 when the
 * connection is not inside one (m NULL, or its EXEC running). */
int multi_queued(const struct multi *m);
/* From conn_close: frees what is queued. */
void multi_close(struct conn *c);

#endif
