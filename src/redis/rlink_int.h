/* SPDX-License-Identifier: BSD-3-Clause */
/* rlink_int.h - the inside of a Redis link, shared by rlink.c (commands,
 * set-up, deadlines) and rdial.c (finding and connecting the server).
 * Nothing else includes it: the rest of the daemon sees rlink.h. */
#ifndef CS_RLINK_INT_H
#define CS_RLINK_INT_H

#include "core.h"
#include "rlink.h"
#include "rio.h"

#include <event2/util.h>

#define RLINK_BACKOFF_MIN_MS 100
#define RLINK_BACKOFF_MAX_MS 5000
#define RLINK_STALL_MS 100      /* a gap in our loop beyond this is our stall, not Redis's */
#define RLINK_WATCH_MS 50       /* a link that waits is looked at this often (see rlink_now) */
#define RLINK_PROBE_MS 1000     /* a link that has heard nothing this long is probed */
#define RLINK_DEAD_TIMEOUTS 10  /* silent this many command timeouts: the link is dead */
#define RLINK_DEAD_MIN_MS 1000
#define RLINK_MAX_ADDRS 8

enum rlink_state { RLINK_DOWN, RLINK_RESOLVING, RLINK_CONNECTING, RLINK_HANDSHAKE, RLINK_UP };

struct rcmd {
    TAILQ_ENTRY(rcmd) q;        /* on pending */
    TAILQ_ENTRY(rcmd) wire;     /* on sent */
    struct rlink *link;
    rstore_cb cb;
    void *priv;
    int64_t sent;               /* rlink_now() when queued */
    char *fmt;                  /* kept for scripts: resent after NOSCRIPT */
    size_t fmtlen;
    int script;                 /* -1 when not a script */
    bool retried;
    bool marker;                /* on pending alone: the subscribe confirmation's deadline */
    bool abandoned;             /* failed at its deadline (or nobody waits): on sent alone */
    int64_t sent_us;            /* for the round-trip histogram */
};

/* A subscriber's (S)SUBSCRIBE or (S)UNSUBSCRIBE of one channel on the wire:
 * its answer, a confirmation naming the channel or an error, comes in order. */
struct rlisten {
    TAILQ_ENTRY(rlisten) q;
    bool on;
    size_t len;
    char chan[];
};

struct rlink {
    struct rreply_arena arena;  /* this link's replies */
    struct rio_events ev;       /* and its events */
    char name[80];
    char host[256];
    int port;
    char *path;                 /* unix socket, or NULL */
    unsigned flags;
    char chan[300];             /* what a subscriber subscribes */
    const struct rlink_hooks *hooks;
    void *owner;
    LIST_ENTRY(rlink) all;
    enum rlink_state state;
    bool subscriber;
    bool moving;                /* rlink_target: reconnect now, elsewhere */
    bool drop_later;            /* set-up could not be sent: drop from the loop */
    int64_t since;              /* start of this attempt (resolve + connect) */
    long long backoff_ms;
    struct event *retry;
    struct event *timer;        /* its next deadline, or its next look while it waits */
    int64_t due;                /* cs_mono_ms when timer fires; 0: not armed */
    TAILQ_HEAD(, rcmd) pending; /* not yet answered nor abandoned, oldest first */
    TAILQ_HEAD(, rcmd) sent;    /* every command on the wire, in order: replies come so */
    TAILQ_HEAD(, rlisten) listens;  /* a subscriber's channel commands on the wire */
    int handshake_left;
    int waiting;                /* replies due: ours, abandoned ones, probes */
    int64_t heard;              /* last read, or when we began waiting */
    uint64_t seen;              /* bytes read at the last look */
    long late;                  /* commands failed by their deadline in a row */
    struct evdns_getaddrinfo_request *dns;
    unsigned turn;              /* which resolved address to try */
    char last_error[256];       /* why it is (or was last) down: /healthz, STATS */
    unsigned long connects;     /* attempts since start: 1 + reconnects */
    long long client_id;        /* RLINK_INVALIDATIONS: CLIENT ID of this connection, 0 before */
};

LIST_HEAD(rlink_list, rlink);
extern struct rlink_list rlink_all;      /* every link, for the stall check */
extern bool rlink_cancelled;               /* a lookup was cancelled: see rlink_shutdown */

/* rlink.c */
void rlink_note(struct rlink *l, const char *prefix, const char *why);
int64_t rlink_now(void);
void rlink_arm(struct rlink *l);
void rlink_schedule(struct rlink *l);
void rlink_forget(struct rlink *l);
void rlink_lost(struct rlink *l);
void rlink_drop(struct rlink *l, const char *why);
/* A TLS failure of l's server (REASON an enum tlserr_reason): counted, and
 * logged as "WHAT: WHY" once per TLSERR_LOG_MS per server and reason. */
void rdial_tls_log(struct rlink *l, int reason, const char *what, const char *why);
void rlink_start_handshake(struct rlink *l);
void rlink_on_reply(void *owner, struct redisReply *r);

/* rdial.c */
extern const struct rio_owner rdial_io;     /* what a link's connection tells it */
void rdial_connect(struct rlink *l);
void rdial_close(struct rlink *l);
void rdial_retry_cb(evutil_socket_t fd, short what, void *arg);

#endif
