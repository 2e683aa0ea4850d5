/* SPDX-License-Identifier: BSD-3-Clause */
/* rnode.h - one Redis link (rnode.c), for rstore.c and the modules that
 * find the servers (rsentinel.c, rcluster.c). */
#ifndef CS_RNODE_H
#define CS_RNODE_H

#include "core.h"
#include "rstore.h"

struct rnode;
struct stats_sink;

enum rnode_flags {
    RN_SUBSCRIBER = 1,          /* SUBSCRIBE to its channel; messages to hooks->message */
    RN_SCRIPTS = 2,             /* SELECT db and load the scripts at set-up */
    RN_ROLE = 4,                /* set-up checks ROLE: only a primary comes up */
    RN_NOAUTH = 8,              /* no AUTH (a sentinel) */
    RN_ROUTED = 16,             /* its owner follows redirections (rnode_redirection): not failures here */
};

/* -MOVED, -ASK, -TRYAGAIN, -CLUSTERDOWN: the command did not run, and a
 * Redis Cluster says where or when to send it again. Whoever gives up
 * following one counts the failure. */
bool rnode_redirection(const struct redisReply *r);

/* What the owner of a link hears. Each may be NULL. */
struct rnode_hooks {
    void (*up)(struct rnode *n, void *owner);           /* set up (or re-subscribed) */
    void (*down)(struct rnode *n, void *owner);         /* lost or failed; it reconnects */
    void (*message)(struct rnode *n, void *owner, const struct redisReply *msg);
    void (*readonly)(struct rnode *n, void *owner);     /* a -READONLY reply: not a primary any more */
    /* A subscriber's rnode_listen answered: ERR NULL when confirmed, else
     * Redis's error; or, with ON false and ERR "dropped", Redis ended the
     * subscription unasked (its slot moved away from this node). */
    void (*listened)(struct rnode *n, void *owner, const char *chan, size_t len, bool on, const char *err);
};

/* HOST is an address or a name (resolved without blocking); PATH, when not
 * NULL, a unix socket used instead. CHANNEL: what a subscriber subscribes. */
struct rnode *rnode_new(const char *name, const char *host, int port, const char *path, unsigned flags,
                        const char *channel, const struct rnode_hooks *hooks, void *owner);
void rnode_free(struct rnode *n);
/* Move the link to another server now (its pending commands fail). */
void rnode_target(struct rnode *n, const char *host, int port);
bool rnode_up(const struct rnode *n);
/* No command sent on it waits for its answer: freeing it now calls no
 * callback of its owner. */
bool rnode_idle(const struct rnode *n);
const char *rnode_host(const struct rnode *n);
int rnode_port(const struct rnode *n);
const char *rnode_name(const struct rnode *n);
/* NULL when up; otherwise why not. */
const char *rnode_status(const struct rnode *n);
/* CS_ERR: not sent, cb not called. SCRIPT: an rscript, or -1. */
int rnode_send(struct rnode *n, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens,
               int script) CS_WUR;
/* Same with a command already in RESP (FMT, LEN), which the caller keeps:
 * it is copied to the link's output buffer, and a script's also kept, to
 * send it again after NOSCRIPT. */
int rnode_send_buf(struct rnode *n, rstore_cb cb, void *priv, const char *fmt, size_t len, int script) CS_WUR;
/* EVALSHA of a script with its keys and args, on this link. */
int rnode_eval(struct rnode *n, enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
               const size_t *lens) CS_WUR;

/* The arguments of EVALSHA sha NKEYS ARGV...: on the stack for a command
 * of up to RN_EVAL_STACK arguments, else allocated; rnode_evalsha_done
 * gives them back. */
#define RN_EVAL_STACK 16
struct rnode_evalsha {
    int argc;
    const char **av;
    size_t *al;
    const char *av_stack[RN_EVAL_STACK];
    size_t al_stack[RN_EVAL_STACK];
    char nkeys[16];
};
void rnode_evalsha(struct rnode_evalsha *e, enum rscript s, int nkeys, int argc, const char **argv,
                   const size_t *lens);
void rnode_evalsha_done(struct rnode_evalsha *e);
/* A subscriber link (up) starts or ends listening on CHAN: SSUBSCRIBE or
 * SUNSUBSCRIBE, or with PLAIN the SUBSCRIBE family (Redis before 7). The
 * answer goes to hooks->listened; messages to hooks->message. */
int rnode_listen(struct rnode *n, bool on, bool plain, const char *chan, size_t len) CS_WUR;
/* State, last error, pending commands, reconnects as KEY_state, ... */
void rnode_report(const struct rnode *n, struct stats_sink *s, const char *key);
/* Adds n's commands awaiting an answer and reconnections to l (n may be NULL). */
void rnode_links_add(const struct rnode *n, struct rstore_links *l);
/* "up", "down", "connecting" ... */
const char *rnode_state_name(const struct rnode *n);

/* The clock every link shares; what the links leave behind at exit. */
void rnode_init(void);
void rnode_shutdown(void);

#endif
