/* SPDX-License-Identifier: BSD-3-Clause */
/* rstore.h - the Redis side: pipelined command connections, a subscriber
 * for notices, scripts, timeouts, reconnects; one server, a Sentinel's
 * primary or a Redis Cluster. This is the Redis layer's whole interface:
 * the layers above use nothing else of it, so an in-memory fake can stand
 * in for it. It knows nothing of what its owners store: they give it its
 * configuration, their scripts and their callbacks. */
#ifndef CS_RSTORE_H
#define CS_RSTORE_H

#include "core.h"

struct redisReply;

/* reply is NULL when the command failed without one (connection lost, no
 * reply within command_timeout_ms, shutting down); error replies arrive as
 * REDIS_REPLY_ERROR. A reply that comes after the deadline is dropped,
 * unless it is a script's whose owner asked for it (rstore_late_cb). */
typedef void (*rstore_cb)(void *priv, const struct redisReply *reply);

/* What the layer is told at start (rstore_init copies it). Nothing of it
 * changes while it runs: a reload that changes a [redis] key takes effect
 * at the next start. */
struct rstore_conf {
    const char *mode;           /* a topology's name: rstore_mode_names */
    const char *host;           /* standalone: the server, or */
    int port;
    const char *unix_socket;    /* its unix socket when not empty */
    const struct cs_addr *nodes;        /* cluster: the seed nodes */
    int nnodes;
    long long cluster_refresh_s;        /* the slot map is read again this often */
    const struct cs_addr *sentinels;    /* sentinel: who names the primary */
    int nsentinels;
    const char *master_name;
    const char *username, *password;    /* AUTH when the password is not empty */
    long long db;                       /* SELECT when not 0 (not in a cluster) */
    long long connect_timeout_ms, command_timeout_ms;
    const char *channel;        /* what every subscriber link subscribes to (its probe) */
    /* TLS on every TCP link (servers, sentinels, cluster nodes) when tls;
     * the layer builds its context from these files (empty ca_file: the
     * system's store; cert and key: a client certificate; server_name:
     * the name checked in Redis's certificate, else the host dialled). */
    /* Ask Redis to track the command links' reads (CLIENT TRACKING,
     * redirected to the subscriber links): rstore_on_invalidate hears
     * every change of a key read. Every mode: in a cluster, each
     * primary's command link redirects to that primary's subscriber. */
    bool tracking;
    bool tls;
    const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
};

/* "standalone, sentinel, cluster": the names rstore_conf.mode takes. */
extern const char rstore_mode_names[];

/* CS_ERR: an unknown mode, or a TLS file that does not load (nothing
 * started); ERR says why. */
int rstore_init(const struct rstore_conf *c, char *err, size_t errsize) CS_WUR;
void rstore_free(void);
/* SIGHUP: the TLS files (the paths given at start) read again, for the
 * connections made from now on. CS_ERR: one does not load, the running
 * ones are kept, ERR names it with OpenSSL's reason. */
int rstore_reload_tls(char *err, size_t errsize) CS_WUR;

/* A Lua script the links load at set-up (SCRIPT LOAD) and load again after
 * NOSCRIPT; registered before rstore_init. Returns its handle for
 * rstore_eval, or CS_ERR (too many). LATE, when not NULL, hears a reply of
 * the script that came after the command's deadline (its callback had run
 * with NULL): ARGS are the KEYS then the ARGV the command was sent with
 * (the first 16), so that the owner may undo what the script did after
 * all. A late reply of a script registered without one is dropped. */
typedef void (*rstore_late_cb)(const struct redisReply *reply, int nargs, const struct cs_str *args);
int rstore_script_add(const char *name, const char *src, rstore_late_cb late) CS_WUR;
/* The command connection is up and has loaded the scripts. */
bool rstore_ready(void);
/* The link that KEY (a Redis key) goes to is up: in a cluster, per slot. */
bool rstore_ready_for(const char *key, size_t len);
/* Sends what is queued for Redis now, not on the next loop pass: called
 * before replies go to clients, so a record a fill stores is on its way to
 * Redis before the client that asked for it hears the answer. */
void rstore_flush(void);
/* NULL when ready; otherwise why not ("connection refused", "auth failed"). */
const char *rstore_status(void);
/* Each link's state, last error, pending commands, reconnects. */
struct stats_sink;
void rstore_report(struct stats_sink *s);
/* /metrics: commands awaiting an answer and reconnections, over every link
 * of the mode (command, subscriber, sentinel, cluster nodes); and the
 * families of sentinel and cluster mode (none in standalone). */
struct rstore_links {
    int pending;
    uint64_t reconnects;
};
void rstore_links(struct rstore_links *l);
struct prom;
void rstore_prom_mode(struct prom *p);
/* CS_ERR: not sent, and cb will not be called. CS_OK: cb runs exactly once. */
/* A command's arguments gathered in place: argv and lens are the caller's
 * arrays (on its stack, or allocated when the command is long), sized for
 * every argument it adds; nothing is copied. */
struct rstore_args {
    const char **argv;
    size_t *lens;
    int argc;
};

static inline void rstore_arg(struct rstore_args *a, const char *p, size_t len)
{
    a->argv[a->argc] = p;
    a->lens[a->argc++] = len;
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens) CS_WUR;
/* EVALSHA of the script with handle S (rstore_script_add): NKEYS keys,
 * then ARGV, argc in all. Routed by its first key. */
int rstore_eval(int s, rstore_cb cb, void *priv, int nkeys, int argc,
                const char **argv, const size_t *lens) CS_WUR;
/* The same, for a script that may run once per key instead, each key with
 * the arguments after the keys (argc is nkeys + those), when the keys may
 * be on several servers (a cluster): the caller says it may be split, and
 * that its replies are integers, which are then summed into one. */
int rstore_eval_each(int s, rstore_cb cb, void *priv, int nkeys, int argc,
                     const char **argv, const size_t *lens) CS_WUR;

/* A sweep of every server (INVALIDATE's SCAN). A SCAN cursor is good
 * only on the server that gave it, while that server holds the same keys:
 * the servers are named by id (never reused), and the epoch changes
 * whenever which server holds which keys may have changed (a cluster's
 * slot changed primary: failover, resharding; a Sentinel switch; a
 * primary's link lost, so it may come back as another server).
 * rstore_servers puts up to MAX ids of the servers to visit now (a
 * cluster's primaries; else the one) in IDS and says how many there are;
 * rstore_cmd_at sends to one of them (no key routing; CS_ERR: gone or
 * down). */
uint64_t rstore_epoch(void);
int rstore_servers(unsigned *ids, int max);
int rstore_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens) CS_WUR;
/* After a sweep, before its result is trusted: whether the servers still
 * hold the keys they held. In a cluster the slot map is read again (which
 * bumps the epoch if it changed) and each primary asked whether it is one
 * with no slot migrating; elsewhere there is nothing to ask and cb runs at
 * once. CS_ERR: nobody to ask, cb not called. */
enum rstore_settle { RSET_SAME, RSET_MOVING, RSET_FAILED };
typedef void (*rstore_settle_cb)(void *priv, enum rstore_settle how);
int rstore_settle(rstore_settle_cb cb, void *priv) CS_WUR;

/* Listening on a channel (sharded pub/sub: SSUBSCRIBE on the node of the
 * channel's slot, or SUBSCRIBE before Redis 7), counted: each listen is
 * ended by one unlisten. RL_PENDING: rstore_on_listening is called once
 * Redis confirms it (a notice sent before then is missed: look again
 * then); RL_ON: already confirmed; RL_FULL: too many channels, or no link
 * to listen on now (poll instead). */
enum rstore_listen { RL_PENDING, RL_ON, RL_FULL };
enum rstore_listen rstore_listen(const char *chan, size_t len);
void rstore_unlisten(const char *chan, size_t len);

/* Set by the cache: a message on a channel listened to. */
extern void (*rstore_on_notice)(const char *chan, size_t len, const char *msg, size_t msglen);
/* Set by the cache: a channel's listening is confirmed. */
extern void (*rstore_on_listening)(const char *chan, size_t len);
/* Set by the cache: a subscriber link is (again) set up; notices sent
 * while it was away are lost. */
extern void (*rstore_on_subscribed)(void);

/* Client tracking (rstore_conf.tracking). rstore_tracking is a generation,
 * 0 while tracking is off: a read sent and answered under the same
 * nonzero generation was tracked, and its key's every later change is
 * told to rstore_on_invalidate (KEY NULL: every key). rstore_on_tracking
 * hears each change of state: whatever was kept under tracking is not
 * covered by it any more once it goes off, nor once it comes on again
 * (a new connection: what Redis remembered is gone). */
uint64_t rstore_tracking(void);
extern void (*rstore_on_invalidate)(const char *key, size_t len);
extern void (*rstore_on_tracking)(bool on);

#endif
