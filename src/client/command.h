/* SPDX-License-Identifier: BSD-3-Clause */
/* command.h - the command table and dispatch. */
#ifndef CS_COMMAND_H
#define CS_COMMAND_H

#include "core.h"
#include "cache.h"

/* The Redis version whose commands and reply formats clients are answered
 * in (INFO's redis_version, HELLO's version): CLIENT SETINFO and the
 * lib-name field of CLIENT LIST are 7.2's. */
#define CMD_REDIS_VERSION "7.2.0"

#define CMD_NOAUTH 0x01     /* allowed before AUTH */
#define CMD_READ 0x04       /* a read: runs beside earlier reads of its keys (order.c) */
#define CMD_NOQUEUE 0x08    /* runs at once inside MULTI, never queued (multi.c) */
#define CMD_WRITE 0x10      /* changes the cache: waits for every earlier command on its keys */
#define CMD_PATTERN 0x20    /* its key is NAMESPACE:GLOB: it holds the whole namespace (order.c) */
#define CMD_EXEC 0x40       /* EXEC: refused, it ends the transaction (multi.c) */

/* A command as data: dispatch checks its arity and flags, order.c and
 * multi.c find its keys from first/last/step, and a cache command is
 * started by handing its request side (struct cache_req) to its cache
 * entry point with its read shape. */
struct cmd_def {
    const char *name;
    int arity;              /* like Redis: n exact, -n at least n (with the name) */
    unsigned flags;         /* CMD_* */
    void (*proc)(struct req *r);
    void (*cache)(struct cache_req *q);    /* the cache floor's entry point (proc then runs it) */
    enum cache_shape shape; /* reads: the reply asked for */
    /* Its keys, as Redis's COMMAND tells them: argv[first..last] every
     * step; last -1 is the final argument; first 0: it names no key. */
    signed char first, last, step;
};

/* The index of d's last key in a request of argc arguments. */
static inline int command_last_key(const struct cmd_def *d, int argc)
{
    return d->last < 0 ? argc + d->last : d->last;
}

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
