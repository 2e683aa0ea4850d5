/* SPDX-License-Identifier: BSD-3-Clause */
/* command.h - the command table and dispatch. */
#ifndef CS_COMMAND_H
#define CS_COMMAND_H

#include "core.h"

/* The Redis version whose commands and reply formats clients are answered
 * in (INFO's redis_version, HELLO's version): CLIENT SETINFO and the
 * lib-name field of CLIENT LIST are 7.2's. */
#define CMD_REDIS_VERSION "7.2.0"

#define CMD_NOAUTH 0x01     /* allowed before AUTH */
#define CMD_SHARED 0x04     /* reads: runs beside earlier reads of its keys (order.c) */
#define CMD_NOQUEUE 0x08    /* runs at once inside MULTI, never queued (multi.c) */

/* Which of the commands sharing a handler this is: handlers test this,
 * never the name. */
enum cmd_variant {
    CMD_V_NONE,
    CMD_V_PTTL,             /* PTTL: milliseconds; TTL is CMD_V_NONE */
};

/* Where a command's keys are, for ordering them per connection (order.c). */
enum cmd_keys {
    CMD_KEYS_NONE,          /* touches no cache entry */
    CMD_KEYS_ONE,           /* argv[1] */
    CMD_KEYS_ALL,           /* argv[1..] */
    CMD_KEYS_NS,            /* argv[1] is ns:glob: every key of the namespace */
};

struct cmd_def {
    const char *name;
    int arity;              /* like Redis: n exact, -n at least n (with the name) */
    unsigned flags;
    void (*proc)(struct req *r);
    int rk;                 /* enum read_kind of the read commands */
    int keys;               /* enum cmd_keys */
    int variant;            /* enum cmd_variant */
};

/* A subcommand (CLIENT LIST, CLUSTER SLOTS, COMMAND INFO): its module
 * keeps a table of these ended by a row with a NULL name, dispatches
 * argv[1] with command_sub, and COMMAND describes it from the same row. */
struct cmd_sub {
    const char *name;       /* lower case */
    int arity;              /* as cmd_def's, counting the command and the subcommand */
    void (*proc)(struct req *r);   /* NULL: HELP, which command_sub answers from the table */
    const char *flags;      /* Redis's command flags, space-separated ("loading stale") */
    const char *since;      /* the Redis version that has it */
    const char *summary;    /* one line; HELP shows it */
};

/* Runs r's subcommand (argv[1]) from subs, or answers its HELP, or the
 * error Redis gives for an unknown subcommand or a wrong argument count. */
void command_sub(struct req *r, const struct cmd_sub *subs);

const struct cmd_def *command_lookup(const char *name, size_t len);
/* s (a command or subcommand name, ASCII) in upper case into buf, for
 * error messages as Redis words them. Returns buf. */
const char *command_upper(char *buf, size_t size, const char *s);
/* The table, for COMMAND and CLIENT LIST: entries 0 to command_count() - 1. */
int command_count(void);
const struct cmd_def *command_at(int i);
/* STATS's body and INFO's cachasided section: the daemon's report is
 * written by the admin floor above this one, so main sets it here
 * (report_text). Until then both are empty. */
void command_set_report(void (*fn)(struct evbuffer *b));
void command_report(struct evbuffer *b);
/* Runs r; the command answers through req_out/req_done now or later. */
void command_dispatch(struct req *r);
/* Runs r, which passed dispatch's checks (r->cmd set), in its turn among
 * the connection's commands on its keys (order.c): EXEC's commands. */
void command_run(struct req *r);

#endif
