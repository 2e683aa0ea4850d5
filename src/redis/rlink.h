/* SPDX-License-Identifier: BSD-3-Clause */
/* rlink.h - one Redis link (rlink.c), for the topologies (rstandalone.c,
 * rsentinel.c, rcluster.c) and rsub.c. It includes rstore.h, the Redis
 * layer's public interface, for the types it shares (rstore_cb,
 * rstore_conf, rstore_links); rstore.h includes nothing of the layer. */
#ifndef CS_RLINK_H
#define CS_RLINK_H

#include "core.h"
#include "rstore.h"

struct rlink;
struct stats_sink;

enum rlink_flags {
    RLINK_SUBSCRIBER = 1,       /* SUBSCRIBE to its channel; messages to hooks->message */
    RLINK_SCRIPTS = 2,          /* SELECT db and load the scripts at set-up */
    RLINK_ROLE = 4,             /* set-up checks ROLE: only a primary comes up */
    RLINK_NOAUTH = 8,           /* no AUTH (a sentinel) */
    RLINK_ROUTED = 16,          /* its owner follows redirections (rlink_redirection): not failures here */
    RLINK_INVALIDATIONS = 32,   /* a subscriber that also hears __redis__:invalidate; its CLIENT ID is kept */
};

/* -MOVED, -ASK, -TRYAGAIN, -CLUSTERDOWN: the command did not run, and a
 * Redis Cluster says where or when to send it again. Whoever gives up
 * following one counts the failure. */
bool rlink_redirection(const struct redisReply *r);

/* What the owner of a link hears. Each may be NULL. */
struct rlink_hooks {
    void (*up)(struct rlink *n, void *owner);           /* set up (or re-subscribed) */
    void (*down)(struct rlink *n, void *owner);         /* lost or failed; it reconnects */
    void (*message)(struct rlink *n, void *owner, const struct redisReply *msg);
    void (*readonly)(struct rlink *n, void *owner);     /* a -READONLY reply: not a primary any more */
    /* A subscriber's rlink_listen answered: ERR NULL when confirmed, else
     * Redis's error; or, with ON false and ERR "dropped", Redis ended the
     * subscription unasked (its slot moved away from this node). */
    void (*listened)(struct rlink *n, void *owner, const char *chan, size_t len, bool on, const char *err);
};

/* HOST is an address or a name (resolved without blocking); PATH, when not
 * NULL, a unix socket used instead. CHANNEL: what a subscriber subscribes. */
struct rlink *rlink_new(const char *name, const char *host, int port, const char *path, unsigned flags,
                        const char *channel, const struct rlink_hooks *hooks, void *owner);
void rlink_free(struct rlink *n);
/* Move the link to another server now (its pending commands fail). */
void rlink_target(struct rlink *n, const char *host, int port);
bool rlink_up(const struct rlink *n);
/* No command sent on it waits for its answer: freeing it now calls no
 * callback of its owner. */
bool rlink_idle(const struct rlink *n);
const char *rlink_host(const struct rlink *n);
int rlink_port(const struct rlink *n);
const char *rlink_name(const struct rlink *n);
/* An RLINK_INVALIDATIONS subscriber's CLIENT ID on its connection now
 * (valid while it is up), for CLIENT TRACKING ... REDIRECT. */
long long rlink_client_id(const struct rlink *n);
/* NULL when up; otherwise why not. */
const char *rlink_status(const struct rlink *n);
/* CS_ERR: not sent, cb not called. SCRIPT: a script's handle
 * (rstore_script_add), or -1. */
int rlink_send(struct rlink *n, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens,
               int script) CS_WUR;
/* Same with a command already in RESP (FMT, LEN), which the caller keeps:
 * it is copied to the link's output buffer, and a script's also kept, to
 * send it again after NOSCRIPT. */
int rlink_send_buf(struct rlink *n, rstore_cb cb, void *priv, const char *fmt, size_t len, int script) CS_WUR;
/* EVALSHA of a script with its keys and args, on this link. */
int rlink_eval(struct rlink *n, int s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
               const size_t *lens) CS_WUR;

/* The arguments of EVALSHA sha NKEYS ARGV...: on the stack for a command
 * of up to RLINK_EVAL_STACK arguments, else allocated; rlink_evalsha_done
 * gives them back. */
/* Where Redis sends the invalidations of CLIENT TRACKING ... REDIRECT. */
#define RLINK_INVALIDATE_CHAN "__redis__:invalidate"

#define RLINK_EVAL_STACK 16
struct rlink_evalsha {
    int argc;
    const char **av;
    size_t *al;
    const char *av_stack[RLINK_EVAL_STACK];
    size_t al_stack[RLINK_EVAL_STACK];
    char nkeys[16];
};
void rlink_evalsha(struct rlink_evalsha *e, int s, int nkeys, int argc, const char **argv,
                   const size_t *lens);
void rlink_evalsha_done(struct rlink_evalsha *e);
/* A subscriber link (up) starts or ends listening on CHAN: SSUBSCRIBE or
 * SUNSUBSCRIBE, or with PLAIN the SUBSCRIBE family (Redis before 7). The
 * answer goes to hooks->listened; messages to hooks->message. */
int rlink_listen(struct rlink *n, bool on, bool plain, const char *chan, size_t len) CS_WUR;
/* State, last error, pending commands, reconnects as KEY_state, ... */
void rlink_report(const struct rlink *n, struct stats_sink *s, const char *key);
/* Adds n's commands awaiting an answer and reconnections to l (n may be NULL). */
void rlink_links_add(const struct rlink *n, struct rstore_links *l);
/* "up", "down", "connecting" ... */
const char *rlink_state_name(const struct rlink *n);

/* The clock every link shares, and what they are told (C stays valid
 * until rlink_shutdown); what the links leave behind at exit. */
void rlink_init(const struct rstore_conf *c);
void rlink_shutdown(void);

#endif
