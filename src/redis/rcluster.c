/* SPDX-License-Identifier: BSD-3-Clause */
/* rcluster.c - Redis Cluster on top of rlink links (hiredis 0.14 has no
 * cluster support of its own).
 *
 * The slot map comes from CLUSTER SLOTS, asked of any node that is up (a
 * seed link at first): at start, after MOVED, when a node's link is lost,
 * every second while a primary of the map is down, and every
 * cluster_refresh_s. Each primary has one rlink link that loads the
 * scripts. A command is sent to the primary of its key's hash slot inside
 * a small request that keeps the formatted command, so that
 *   - MOVED updates the slot and resends to the node named,
 *   - ASK resends once to the node named, after ASKING,
 *   - TRYAGAIN and CLUSTERDOWN are resent every RC_RETRY_MS,
 * all within command_timeout_ms of the first send. A slot whose primary is
 * down makes the send fail at once (CS_ERR): its reads go to the upstream
 * as in any Redis outage; other slots go on. A multi-key UNLINK, and a
 * script its caller lets run per key (rstore_eval_each), are split per
 * key, their integer replies summed.
 * Fill notices are sharded pub/sub on each key's own channel, which lives
 * on the key's slot: each primary has a subscriber link too, and rsub.c
 * listens on a channel through the link of its slot's primary.
 *
 * A node the map stops naming (replaced by its replica, its slots moved
 * away, announced at a new address) is forgotten with both its links once
 * no request can still be on its way there (rcluster_prune). The table
 * holds what the map names now, not every address it ever named; so a
 * request names the node of its next send by id, never reused, not by its
 * place in the table, which a forgotten node's successor takes. */
#include "core.h"
#include "rtopo.h"
#include "rlink.h"
#include "rslot.h"
#include "rsub.h"
#include "rtrack.h"
#include "resp.h"
#include "log.h"
#include "prom.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RC_MAX_NODES INT16_MAX  /* rc_slot's indexes are int16_t */
#define RC_MAX_REDIRECTS 5
#define RC_TICK_MS 20
#define RC_RETRY_MS 50          /* TRYAGAIN / CLUSTERDOWN / target not connected yet */
#define RC_REFRESH_MIN_MS 200   /* at most this often, whatever asks for it */
#define RC_DOWN_REFRESH_MS 1000 /* while a primary of the map is down */
#define RC_FORGET_MS 1000       /* past command_timeout_ms: a node out of the map this long is forgotten */

struct rcnode {
    char host[256];
    int port;
    unsigned id;                /* never reused: what a request or a scan names it by */
    char label[300];            /* "node=127_0_0_1_7000" for the report */
    struct rlink *link;
    struct rlink *sub;          /* its subscriber, made when it first serves slots */
    struct rtrack track;        /* client tracking of the pair, once it has both */
    int slots;                  /* entries of rc_slot naming it; > 0: a primary */
    int64_t named_ms;           /* when it last had slots, or a map or a redirection named it */
};

/* A command kept until its answer, to send again on MOVED or ASK: in
 * `small` when it fits (a read's HGETALL or HMGET does). Spare ones are
 * kept for the next commands. */
#define RC_SMALL 192
#define RC_SPARE_MAX 256

struct rcreq {
    rstore_cb cb;
    void *priv;
    char *fmt;                  /* small, or allocated */
    size_t len;
    int script;
    unsigned slot;
    bool keyed;
    bool asking;                /* the next send goes after ASKING */
    unsigned target;            /* id of the node of the next send (ASK); 0: the slot's */
    int redirects;
    int64_t deadline;           /* cs_mono_ms */
    TAILQ_ENTRY(rcreq) wait;
    char small[RC_SMALL];
};

static struct rcreq *rc_spare[RC_SPARE_MAX];
static int rc_nspare;

/* One reply for a command split per key: the sum of the integers. */
struct rcagg {
    rstore_cb cb;
    void *priv;
    int left;
    long long sum;
    bool failed;
};

/* The nodes the map or a redirection named and that are not forgotten
 * yet; rc_slot holds indexes into it. */
static struct rcnode **rc_node;
static int rc_n, rc_cap;
static unsigned rc_next_id;
static int16_t rc_slot[RC_SLOTS];
static const struct rstore_conf *rc_conf;
static const struct cs_addr *rc_seeds;
static int rc_nseeds, rc_seed_at;
static struct rlink *rc_seed;
static struct event *rc_timer;
static TAILQ_HEAD(, rcreq) rc_waiting = TAILQ_HEAD_INITIALIZER(rc_waiting);
static bool rc_due, rc_asking_map;
static int64_t rc_asked_ms, rc_refresh_ms, rc_refresh_wall;
static unsigned rc_rr;
static uint64_t rc_refreshes, rc_moved, rc_ask, rc_changes, rc_retries, rc_forgotten;
static uint64_t rc_epoch;       /* see rcluster_epoch */
static int rc_covered;          /* slots with a primary in the map */
static char rc_error[200];

/* ---- nodes ----------------------------------------------------------- */

static void rcluster_node_down(struct rlink *n, void *owner)
{
    struct rcnode *node = owner;

    CS_UNUSED(n);
    rtrack_link_down(&node->track);
    rc_due = true;              /* maybe failed over: look again */
    if (node->slots > 0)
        rc_epoch++;             /* and when it is back, it may hold other keys */
}

static void rcluster_node_up(struct rlink *n, void *owner)
{
    struct rcnode *node = owner;

    CS_UNUSED(n);
    rtrack_link_up(&node->track);
}

static const struct rlink_hooks rc_node_hooks = { .up = rcluster_node_up, .down = rcluster_node_down };

static int rcluster_node(const char *host, int port)
{
    struct rcnode *n;
    char name[300];

    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->port == port && strcmp(rc_node[i]->host, host) == 0) {
            rc_node[i]->named_ms = cs_mono_ms();
            return i;
        }
    }
    if (rc_n == RC_MAX_NODES) {
        log_limited(LOG_ERROR, "redis cluster: more than %d nodes; %s:%d not used", RC_MAX_NODES, host, port);
        return -1;
    }
    if (rc_n == rc_cap) {
        rc_cap = rc_cap ? rc_cap * 2 : 8;
        rc_node = cs_realloc(rc_node, sizeof(*rc_node) * (size_t)rc_cap);
    }
    n = cs_calloc(1, sizeof(*n));
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    n->id = ++rc_next_id;
    n->named_ms = cs_mono_ms();
    snprintf(n->label, sizeof(n->label), "node=%s:%d", host, port);
    for (char *p = n->label + 5; *p; p++)
        if (*p == '.' || *p == ':')
            *p = '_';
    snprintf(name, sizeof(name), "redis %s:%d", host, port);
    n->link = rlink_new(name, host, port, NULL, RLINK_SCRIPTS | RLINK_ROUTED, NULL, &rc_node_hooks, n);
    rc_node[rc_n] = n;
    return rc_n++;
}

/* The index of the node with this id, or -1: forgotten. */
static int rcluster_find(unsigned id)
{
    for (int i = 0; i < rc_n; i++)
        if (rc_node[i]->id == id)
            return i;
    return -1;
}

/* SLOT's primary is node NODE now (a MOVED): each node's count of slots
 * stays the number of rc_slot entries that name it. */
static void rcluster_set_slot(unsigned slot, int node)
{
    if (rc_slot[slot] == node)
        return;
    rc_epoch++;
    if (rc_slot[slot] >= 0 && --rc_node[rc_slot[slot]]->slots == 0)
        rc_node[rc_slot[slot]]->named_ms = cs_mono_ms();
    rc_slot[slot] = (int16_t)node;
    rc_node[node]->slots++;
}

/* Forgets node I: its links closed, the last node moved to its place. No
 * slot names it, and no command waits on its link (rcluster_prune), so no
 * index is left dangling and no callback runs; a request that named it
 * for its next send finds its id gone and goes by its slot. */
static void rcluster_forget(int i)
{
    struct rcnode *n = rc_node[i];
    int last = rc_n - 1;

    log_notice("redis cluster: %s:%d is not in the slot map any more: forgotten, its links closed", n->host,
               n->port);
    rtrack_remove(&n->track);
    if (n->sub) {
        rsub_link_gone(n->sub);     /* no channel stays placed on it */
        rlink_free(n->sub);
    }
    rlink_free(n->link);
    free(n);
    rc_forgotten++;
    rc_node[i] = rc_node[last];
    rc_n--;
    if (i == last)
        return;
    for (int s = 0; s < RC_SLOTS; s++)
        if (rc_slot[s] == last)
            rc_slot[s] = (int16_t)i;
}

/* A node the map stopped naming (failed over, its slots moved away, its
 * address changed) is forgotten once every request that may still name it
 * is over: after command_timeout_ms and RC_FORGET_MS more, with its link
 * idle. Otherwise the table would only grow, each old address keeping a
 * link that reconnects forever. */
static void rcluster_prune(int64_t now)
{
    for (int i = rc_n - 1; i >= 0; i--) {
        const struct rcnode *n = rc_node[i];
        if (n->slots == 0 && now - n->named_ms >= rc_conf->command_timeout_ms + RC_FORGET_MS &&
            rlink_idle(n->link))
            rcluster_forget(i);
    }
}

static struct rlink *rcluster_any_up(void)
{
    for (int k = 0; k < rc_n; k++) {
        struct rcnode *n = rc_node[(rc_rr + (unsigned)k) % (unsigned)rc_n];
        if (n->slots > 0 && rlink_up(n->link)) {
            rc_rr += (unsigned)k + 1;
            return n->link;
        }
    }
    return NULL;
}

/* ---- the slot map ---------------------------------------------------- */

/* Every primary of the map has its subscriber link. */
static void rcluster_subs(void)
{
    char name[300];

    for (int i = 0; i < rc_n; i++) {
        struct rcnode *n = rc_node[i];
        if (n->slots > 0 && !n->sub) {
            snprintf(name, sizeof(name), "redis subscriber %s:%d", n->host, n->port);
            if (rtrack_enabled()) {
                n->sub = rlink_new(name, n->host, n->port, NULL, RLINK_SUBSCRIBER | RLINK_INVALIDATIONS,
                                   rc_conf->channel, &rtrack_sub_hooks, &n->track);
                rtrack_add(&n->track, n->link, n->sub);
            } else {
                n->sub = rlink_new(name, n->host, n->port, NULL, RLINK_SUBSCRIBER, rc_conf->channel, &rsub_hooks, n);
            }
        }
    }
}

/* CLUSTER SLOTS's reply R from FROM becomes the map; false when it is
 * not one (and the map is asked for again). */
static bool rcluster_map_apply(struct rlink *from, const redisReply *r)
{
    int16_t map[RC_SLOTS];
    int changed = 0, covered = 0, primaries = 0;
    bool other = false;         /* any slot's primary differs, an uncovered one included */

    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        snprintf(rc_error, sizeof(rc_error), "CLUSTER SLOTS from %s: %s", rlink_name(from),
                 !r ? "no reply" : r->type == REDIS_REPLY_ERROR ? r->str : "no slots");
        log_limited(LOG_WARNING, "%s", rc_error);
        rc_due = true;
        return false;
    }
    memset(map, 0xff, sizeof(map));
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        const char *host;
        int node;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        m = e->element[2];
        /* An empty address is the node that answered. */
        host = m->element[0]->len ? m->element[0]->str : rlink_host(from);
        node = rcluster_node(host, (int)m->element[1]->integer);
        if (node < 0)
            continue;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer && s < RC_SLOTS; s++)
            if (s >= 0)
                map[s] = (int16_t)node;
    }
    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->slots > 0)
            rc_node[i]->named_ms = cs_mono_ms();    /* the grace of one that leaves starts now */
        rc_node[i]->slots = 0;
    }
    for (int s = 0; s < RC_SLOTS; s++) {
        if (map[s] >= 0) {
            rc_node[map[s]]->slots++;
            covered++;
        }
        if (rc_slot[s] >= 0 && map[s] != rc_slot[s])
            changed++;
        other |= map[s] != rc_slot[s];
    }
    for (int i = 0; i < rc_n; i++)
        primaries += rc_node[i]->slots > 0;
    memcpy(rc_slot, map, sizeof(map));
    rc_refreshes++;
    rc_refresh_wall = cs_now_ms();
    rc_error[0] = '\0';
    if (changed)
        rc_changes++;
    /* A slot that gains or loses its primary moves the epoch too: a sweep
     * that went by a map without it did not visit its keys. */
    if (other && rc_refreshes > 1)
        rc_epoch++;
    rc_covered = covered;
    if (changed || rc_refreshes == 1)
        log_notice("redis cluster: slot map from %s: %d primaries, %d of %d slots covered, %d slot(s) moved",
                   rlink_name(from), primaries, covered, RC_SLOTS, changed);
    rcluster_subs();
    if (changed)
        rsub_replace();
    return true;
}

static void rcluster_map_cb(void *priv, const redisReply *r)
{
    rc_asking_map = false;
    if (!cs_exiting)
        (void)rcluster_map_apply(priv, r);
}

static void rcluster_refresh(void)
{
    const char *argv[2] = { "CLUSTER", "SLOTS" };
    struct rlink *l;

    if (rc_asking_map)
        return;
    l = rcluster_any_up();
    if (!l && rlink_up(rc_seed))
        l = rc_seed;
    if (!l)
        return;                 /* the seed link's reconnects will ask */
    rc_due = false;
    rc_asked_ms = cs_mono_ms();
    rc_refresh_ms = rc_asked_ms;
    if (rlink_send(l, rcluster_map_cb, l, 2, argv, NULL, -1) == CS_OK)
        rc_asking_map = true;
    else
        rc_due = true;
}

static void rcluster_seed_up(struct rlink *n, void *owner)
{
    CS_UNUSED(n);
    CS_UNUSED(owner);
    if (!rc_refreshes || rc_due)
        rcluster_refresh();
}

/* The next seed, then the nodes of the map, in turn. */
static void rcluster_seed_down(struct rlink *n, void *owner)
{
    int total = rc_nseeds + rc_n;

    CS_UNUSED(owner);
    rc_seed_at = (rc_seed_at + 1) % total;
    if (rc_seed_at < rc_nseeds)
        rlink_target(n, rc_seeds[rc_seed_at].host, rc_seeds[rc_seed_at].port);
    else
        rlink_target(n, rc_node[rc_seed_at - rc_nseeds]->host, rc_node[rc_seed_at - rc_nseeds]->port);
}

static const struct rlink_hooks rc_seed_hooks = { .up = rcluster_seed_up, .down = rcluster_seed_down };

/* ---- the notice subscribers ------------------------------------------ */

static void rcluster_stale(void)
{
    rc_due = true;
}

static struct rlink *rcluster_sub_for(const char *chan, size_t len)
{
    int node = rc_slot[rslot_of(chan, len)];

    return node >= 0 ? rc_node[node]->sub : NULL;
}

/* ---- requests -------------------------------------------------------- */

static void rcluster_reply_cb(void *priv, const redisReply *r);

static struct rcreq *rcluster_req_new(void)
{
    struct rcreq *q = rc_nspare ? rc_spare[--rc_nspare] : cs_malloc(sizeof(*q));

    memset(q, 0, offsetof(struct rcreq, small));
    return q;
}

static void rcluster_req_free(struct rcreq *q)
{
    if (q->fmt != q->small)
        free(q->fmt);
    if (rc_nspare < RC_SPARE_MAX && !cs_exiting)
        rc_spare[rc_nspare++] = q;
    else
        free(q);
}

static void rcluster_ignore_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

/* CS_ERR when the target is not up (nothing sent). */
static int rcluster_send(struct rcreq *q)
{
    int node = q->target ? rcluster_find(q->target) : rc_slot[q->slot];
    struct rlink *l;
    static const char *const asking[1] = { "ASKING" };

    if (q->target && node < 0) {
        q->target = 0;          /* forgotten since: its slot's primary, which redirects again */
        q->asking = false;
        node = rc_slot[q->slot];
    }
    if (!q->keyed && !q->target) {
        l = rcluster_any_up();
    } else {
        if (node < 0 || node >= rc_n)
            return CS_ERR;
        l = rc_node[node]->link;
    }
    if (!l || !rlink_up(l))
        return CS_ERR;
    if (q->asking && rlink_send(l, rcluster_ignore_cb, NULL, 1, (const char **)asking, NULL, -1) != CS_OK)
        return CS_ERR;
    return rlink_send_buf(l, rcluster_reply_cb, q, q->fmt, q->len, q->script);
}

static void rcluster_wait(struct rcreq *q)
{
    rc_retries++;
    TAILQ_INSERT_TAIL(&rc_waiting, q, wait);
}

/* "MOVED 3999 127.0.0.1:6381": the node index, or -1. */
static int rcluster_redirect_node(const char *err, unsigned *slot)
{
    const char *sp = strchr(err, ' '), *addr, *colon;
    char host[256];
    long port;

    if (!sp)
        return -1;
    *slot = (unsigned)strtoul(sp + 1, NULL, 10) & (RC_SLOTS - 1);
    addr = strchr(sp + 1, ' ');
    if (!addr || !(colon = strrchr(addr + 1, ':')) || (size_t)(colon - addr - 1) >= sizeof(host))
        return -1;
    memcpy(host, addr + 1, (size_t)(colon - addr - 1));
    host[colon - addr - 1] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return -1;
    return rcluster_node(host, (int)port);
}

static void rcluster_reply_cb(void *priv, const redisReply *r)
{
    struct rcreq *q = priv;
    bool moved, ask;

    if (r && r->type == REDIS_REPLY_ERROR && !cs_exiting && q->redirects < RC_MAX_REDIRECTS) {
        moved = strncmp(r->str, "MOVED ", 6) == 0;
        ask = strncmp(r->str, "ASK ", 4) == 0;
        if (moved || ask) {
            unsigned slot;
            int node = rcluster_redirect_node(r->str, &slot);
            if (node >= 0) {
                q->redirects++;
                if (moved) {
                    rc_moved++;
                    rcluster_set_slot(slot, node);
                    rc_due = true;
                    q->target = 0;
                    q->asking = false;
                } else {
                    rc_ask++;
                    q->target = rc_node[node]->id;
                    q->asking = true;
                }
                if (rcluster_send(q) != CS_OK)
                    rcluster_wait(q);
                return;
            }
        }
        if ((strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0) &&
            cs_mono_ms() + RC_RETRY_MS < q->deadline) {
            rcluster_wait(q);
            return;
        }
    }
    if (!r && !cs_exiting)
        rc_due = true;          /* a lost link or a silent node: look again */
    /* Given up on (too many, past the deadline, an address we cannot use):
     * now it is a failure, which the link left to us. */
    if (rlink_redirection(r)) {
        stats_c.redis_errors++;
        log_limited(LOG_WARNING, "redis cluster: gave up after %d redirection(s): %s", q->redirects, r->str);
    }
    q->cb(q->priv, r);
    rcluster_req_free(q);
}

static int rcluster_start(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens, int script,
                          const char *key, size_t keylen)
{
    struct rcreq *q;
    char *fmt;
    int len;

    if (key) {
        int node = rc_slot[rslot_of(key, keylen)];
        if (node < 0 || !rlink_up(rc_node[node]->link))
            return CS_ERR;      /* this slot is degraded */
    }
    q = rcluster_req_new();
    len = resp_command(&fmt, q->small, sizeof(q->small), argc, argv, lens);
    if (len < 0) {
        q->fmt = q->small;
        rcluster_req_free(q);
        return CS_ERR;
    }
    q->cb = cb;
    q->priv = priv;
    q->fmt = fmt;
    q->len = (size_t)len;
    q->script = script;
    q->keyed = key != NULL;
    q->slot = key ? rslot_of(key, keylen) : 0;
    q->target = 0;
    q->deadline = cs_mono_ms() + rc_conf->command_timeout_ms;
    if (rcluster_send(q) != CS_OK) {
        rcluster_req_free(q);
        return CS_ERR;
    }
    return CS_OK;
}

static void rcluster_agg_cb(void *priv, const redisReply *r)
{
    struct rcagg *a = priv;

    if (r && r->type == REDIS_REPLY_INTEGER)
        a->sum += r->integer;
    else
        a->failed = true;
    if (--a->left > 0)
        return;
    if (a->failed) {
        a->cb(a->priv, NULL);
    } else {
        redisReply sum;
        memset(&sum, 0, sizeof(sum));
        sum.type = REDIS_REPLY_INTEGER;
        sum.integer = a->sum;
        a->cb(a->priv, &sum);
    }
    free(a);
}

/* NPARTS commands, part i made by MAKE; one summed reply. */
static int rcluster_split(rstore_cb cb, void *priv, int nparts,
                          int (*send)(int i, rstore_cb cb, void *priv, void *ctx), void *ctx)
{
    struct rcagg *a = cs_calloc(1, sizeof(*a));
    int sent = 0;

    a->cb = cb;
    a->priv = priv;
    a->left = nparts;
    for (int i = 0; i < nparts; i++) {
        if (send(i, rcluster_agg_cb, a, ctx) == CS_OK) {
            sent++;
        } else {
            a->failed = true;
            a->left--;
        }
    }
    if (sent == 0) {
        free(a);
        return CS_ERR;
    }
    return CS_OK;
}

struct rcsplit {
    const char **argv;
    const size_t *lens;
    int script;
    int nkeys;
    int nargs;                  /* after the keys */
};

static int rcluster_unlink_one(int i, rstore_cb cb, void *priv, void *ctx)
{
    const struct rcsplit *sp = ctx;
    const char *argv[2] = { "UNLINK", sp->argv[i + 1] };
    size_t lens[2] = { 6, sp->lens[i + 1] };

    return rcluster_start(cb, priv, 2, argv, lens, -1, argv[1], lens[1]);
}

static int rcluster_eval(int s, bool each, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                         const size_t *lens);

/* A script its caller let run once per key (rstore_eval_each): key i
 * with the arguments after the keys. */
static int rcluster_eval_one(int i, rstore_cb cb, void *priv, void *ctx)
{
    const struct rcsplit *sp = ctx;
    int nargs = 0;
    const char *argv[RLINK_EVAL_STACK];
    size_t lens[RLINK_EVAL_STACK];

    argv[nargs] = sp->argv[i];
    lens[nargs++] = sp->lens[i];
    for (int a = sp->nkeys; a < sp->nkeys + sp->nargs && nargs < RLINK_EVAL_STACK; a++) {
        argv[nargs] = sp->argv[a];
        lens[nargs++] = sp->lens[a];
    }
    return rcluster_eval(sp->script, false, cb, priv, 1, nargs, argv, lens);
}

static int rcluster_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (argc > 2 && lens[0] == 6 && strncasecmp(argv[0], "UNLINK", 6) == 0) {
        struct rcsplit sp = { argv, lens, -1, 0, 0 };
        return rcluster_split(cb, priv, argc - 1, rcluster_unlink_one, &sp);
    }
    if (argc < 2)
        return rcluster_start(cb, priv, argc, argv, lens, -1, NULL, 0);
    return rcluster_start(cb, priv, argc, argv, lens, -1, argv[1], lens[1]);
}

static int rcluster_eval(int s, bool each, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                         const size_t *lens)
{
    struct rlink_evalsha e;
    int rc;

    /* Keys that may be in as many slots: one by one, replies summed. */
    if (each && nkeys > 1 && argc - nkeys < RLINK_EVAL_STACK) {
        struct rcsplit sp = { argv, lens, s, nkeys, argc - nkeys };
        return rcluster_split(cb, priv, nkeys, rcluster_eval_one, &sp);
    }
    rlink_evalsha(&e, s, nkeys, argc, argv, lens);
    rc = rcluster_start(cb, priv, e.argc, e.av, e.al, s, nkeys > 0 ? argv[0] : NULL, nkeys > 0 ? lens[0] : 0);
    rlink_evalsha_done(&e);
    return rc;
}

/* ---- sweeping every primary (INVALIDATE) ----------------------------- */

static uint64_t rcluster_epoch(void)
{
    return rc_epoch;
}

static int rcluster_primaries(unsigned *ids, int max)
{
    int n = 0;

    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->slots > 0) {
            if (n < max)
                ids[n] = rc_node[i]->id;
            n++;
        }
    }
    return n;
}

static int rcluster_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    int i = rcluster_find(id);

    if (i < 0 || !rlink_up(rc_node[i]->link))
        return CS_ERR;
    return rlink_send(rc_node[i]->link, cb, priv, argc, argv, lens, -1);
}

/* A check that the map a sweep went by still holds: the map is read
 * again, then every primary of it says what it is. */
struct rcsettle {
    rstore_settle_cb cb;
    void *priv;
    struct rlink *from;         /* asked for the map */
    int left;                   /* CLUSTER NODES replies due */
    enum rstore_settle how;     /* the worst heard so far */
};

static void rcluster_settle_worse(struct rcsettle *st, enum rstore_settle how)
{
    if (how > st->how)
        st->how = how;
}

static void rcluster_settle_end(struct rcsettle *st)
{
    st->cb(st->priv, st->how);
    free(st);
}

/* The line of CLUSTER NODES where a node tells of itself: "<id> <addr>
 * myself,master ... connected 0-5460 [5461->-<id>]". Settled when it is a
 * primary with no slot migrating out or importing in (the [...] entries
 * after its slots): keys move between nodes only during a migration. */
static bool rcluster_self_settled(const char *text, size_t len)
{
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *f = p;
        char flags[128] = "";
        bool moving = false;

        if (!eol)
            eol = end;
        for (int field = 0; f < eol; field++) {
            const char *sp = memchr(f, ' ', (size_t)(eol - f));
            size_t n = (size_t)((sp ? sp : eol) - f);
            if (field == 2)
                snprintf(flags, sizeof(flags), "%.*s", (int)n, f);
            else if (field >= 8 && n > 0 && f[0] == '[')
                moving = true;
            f += n + 1;
        }
        if (strstr(flags, "myself"))
            return !moving && strstr(flags, "master") != NULL;
        p = eol + 1;
    }
    return false;
}

static void rcluster_settle_node_cb(void *priv, const redisReply *r)
{
    struct rcsettle *st = priv;

    if (!r || r->type != REDIS_REPLY_STRING)
        rcluster_settle_worse(st, RSET_FAILED);
    else if (!rcluster_self_settled(r->str, (size_t)r->len))
        rcluster_settle_worse(st, RSET_MOVING);
    if (--st->left == 0)
        rcluster_settle_end(st);
}

static void rcluster_settle_map_cb(void *priv, const redisReply *r)
{
    struct rcsettle *st = priv;
    const char *argv[2] = { "CLUSTER", "NODES" };

    if (cs_exiting || !rcluster_map_apply(st->from, r)) {
        rcluster_settle_worse(st, RSET_FAILED);
        rcluster_settle_end(st);
        return;
    }
    /* A map without a primary for every slot (a failover half-way) does
     * not vouch for the slots it lacks. */
    if (rc_covered < RC_SLOTS)
        rcluster_settle_worse(st, RSET_MOVING);
    st->left = 1;               /* until every node is asked */
    for (int i = 0; i < rc_n; i++) {
        struct rlink *l = rc_node[i]->link;
        if (rc_node[i]->slots == 0)
            continue;
        if (rlink_up(l) && rlink_send(l, rcluster_settle_node_cb, st, 2, argv, NULL, -1) == CS_OK)
            st->left++;
        else
            rcluster_settle_worse(st, RSET_FAILED);
    }
    if (--st->left == 0)
        rcluster_settle_end(st);
}

static int rcluster_settle(rstore_settle_cb cb, void *priv)
{
    const char *argv[2] = { "CLUSTER", "SLOTS" };
    struct rlink *l = rcluster_any_up();
    struct rcsettle *st;

    if (!l)
        return CS_ERR;
    st = cs_calloc(1, sizeof(*st));
    st->cb = cb;
    st->priv = priv;
    st->from = l;
    st->how = RSET_SAME;
    if (rlink_send(l, rcluster_settle_map_cb, st, 2, argv, NULL, -1) != CS_OK) {
        free(st);
        return CS_ERR;
    }
    return CS_OK;
}

/* ---- the timer: retries, refreshes ----------------------------------- */

static void rcluster_tick(evutil_socket_t fd, short what, void *arg)
{
    TAILQ_HEAD(, rcreq) now = TAILQ_HEAD_INITIALIZER(now);
    int64_t t = cs_mono_ms();
    struct rcreq *q;
    bool down = false;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    /* Requests put back while we go round wait for the next tick. */
    TAILQ_CONCAT(&now, &rc_waiting, wait);
    while ((q = TAILQ_FIRST(&now))) {
        TAILQ_REMOVE(&now, q, wait);
        if (t >= q->deadline) {
            stats_c.redis_errors++;
            q->cb(q->priv, NULL);
            rcluster_req_free(q);
        } else if (rcluster_send(q) != CS_OK) {
            TAILQ_INSERT_TAIL(&rc_waiting, q, wait);
        }
    }
    for (int i = 0; i < rc_n; i++)
        if (rc_node[i]->slots > 0 && !rlink_up(rc_node[i]->link))
            down = true;
    if (down && t - rc_asked_ms >= RC_DOWN_REFRESH_MS)
        rc_due = true;
    if (t - rc_refresh_ms >= rc_conf->cluster_refresh_s * 1000)
        rc_due = true;
    if (rc_due && t - rc_asked_ms >= RC_REFRESH_MIN_MS)
        rcluster_refresh();
    rcluster_prune(t);
}

static void rcluster_init(const struct rstore_conf *c)
{
    struct timeval tv = { 0, RC_TICK_MS * 1000 };

    memset(rc_slot, 0xff, sizeof(rc_slot));
    rc_conf = c;
    rc_seeds = c->nodes;
    rc_nseeds = c->nnodes;
    rc_seed_at = 0;
    rc_refresh_ms = cs_mono_ms();
    rc_seed = rlink_new("redis cluster seed", rc_seeds[0].host, rc_seeds[0].port, NULL, 0, NULL, &rc_seed_hooks,
                        NULL);
    rc_timer = event_new(cs_base, -1, EV_PERSIST, rcluster_tick, NULL);
    event_add(rc_timer, &tv);
}

static void rcluster_free(void)
{
    struct rcreq *q;

    while ((q = TAILQ_FIRST(&rc_waiting))) {
        TAILQ_REMOVE(&rc_waiting, q, wait);
        q->cb(q->priv, NULL);
        rcluster_req_free(q);
    }
    if (rc_timer)
        event_free(rc_timer);
    rc_timer = NULL;
    rlink_free(rc_seed);
    rc_seed = NULL;
    for (int i = 0; i < rc_n; i++) {
        rtrack_remove(&rc_node[i]->track);
        rlink_free(rc_node[i]->link);
        rlink_free(rc_node[i]->sub);
        free(rc_node[i]);
    }
    free(rc_node);
    rc_node = NULL;
    rc_n = rc_cap = 0;
    while (rc_nspare > 0)      /* after the links, whose commands come back here */
        free(rc_spare[--rc_nspare]);
}

static bool rcluster_ready(void)
{
    for (int i = 0; i < rc_n; i++)
        if (rc_node[i]->slots > 0 && rlink_up(rc_node[i]->link))
            return true;
    return false;
}

static bool rcluster_ready_for(const char *key, size_t len)
{
    int node = rc_slot[rslot_of(key, len)];

    return node >= 0 && rlink_up(rc_node[node]->link);
}

static int rcluster_nodes(void)
{
    int n = 0;

    for (int i = 0; i < rc_n; i++)
        n += rc_node[i]->slots > 0;
    return n;
}

static const char *rcluster_status(void)
{
    if (rcluster_ready())
        return NULL;
    if (rc_error[0])
        return rc_error;
    if (!rc_refreshes)
        return rlink_status(rc_seed) ? rlink_status(rc_seed) : "no slot map yet";
    return "no primary of the cluster is connected";
}

static void rcluster_links(struct rstore_links *l)
{
    rlink_links_add(rc_seed, l);
    for (int i = 0; i < rc_n; i++) {
        rlink_links_add(rc_node[i]->link, l);
        rlink_links_add(rc_node[i]->sub, l);
    }
}

/* Per primary (label node="host:port"): up, slots. */
static void rcluster_prom_nodes(struct prom *p, bool slots)
{
    char node[300];

    for (int i = 0; i < rc_n; i++) {
        const struct rcnode *n = rc_node[i];
        if (n->slots <= 0)
            continue;
        snprintf(node, sizeof(node), "%s:%d", n->host, n->port);
        prom_sample(p, slots ? n->slots : rlink_up(n->link), "node", node, NULL, NULL);
    }
}

static void rcluster_prom(struct prom *p)
{
    int covered = 0;

    for (int i = 0; i < rc_n; i++)
        covered += rc_node[i]->slots > 0 ? rc_node[i]->slots : 0;
    prom_family(p, "cachasided_redis_failovers_seen_total", "counter",
                "Slot maps in which slots changed primary (failover, resharding)");
    prom_sample(p, (double)rc_changes, NULL, NULL, NULL, NULL);
    prom_family(p, "cachasided_redis_cluster_primaries", "gauge", "Primaries in the slot map");
    prom_sample(p, rcluster_nodes(), NULL, NULL, NULL, NULL);
    prom_family(p, "cachasided_redis_cluster_slots_covered", "gauge", "Slots with a primary in the map");
    prom_sample(p, covered, NULL, NULL, NULL, NULL);
    prom_family(p, "cachasided_redis_node_up", "gauge", "Whether the link to this primary is up");
    rcluster_prom_nodes(p, false);
    prom_family(p, "cachasided_redis_node_slots", "gauge", "Slots this primary serves");
    rcluster_prom_nodes(p, true);
    prom_family(p, "cachasided_redis_cluster_redirections_total", "counter", "MOVED and ASK redirections followed");
    prom_sample(p, (double)rc_moved, "kind", "moved", NULL, NULL);
    prom_sample(p, (double)rc_ask, "kind", "ask", NULL, NULL);
    prom_family(p, "cachasided_redis_cluster_refreshes_total", "counter", "Slot maps read (CLUSTER SLOTS)");
    prom_sample(p, (double)rc_refreshes, NULL, NULL, NULL, NULL);
}

static void rcluster_report(struct stats_sink *s)
{
    char topo[1024];
    size_t off = 0;
    int up = 0, covered = 0;

    topo[0] = '\0';
    for (int i = 0; i < rc_n; i++) {
        const struct rcnode *n = rc_node[i];
        if (n->slots <= 0)
            continue;
        covered += n->slots;
        up += rlink_up(n->link);
        if (off < sizeof(topo) - 1)
            off += (size_t)snprintf(topo + off, sizeof(topo) - off, "%s%s:%d %s %d slots", off ? ", " : "",
                                    n->host, n->port, rlink_state_name(n->link), n->slots);
    }
    s->str(s, "redis_mode", "How Redis is found: standalone, sentinel or cluster", "cluster");
    s->str(s, "redis_cluster_topology", "Each primary of the slot map: address, link state, slots", topo);
    s->num(s, SK_GAUGE, "redis_cluster_primaries", "Primaries in the slot map", NULL, rcluster_nodes());
    s->num(s, SK_GAUGE, "redis_cluster_primaries_up", "Primaries of the slot map whose link is up", NULL, up);
    s->num(s, SK_GAUGE, "redis_cluster_slots_covered", "Slots with a primary in the map", NULL, covered);
    s->num(s, SK_GAUGE, "redis_cluster_last_refresh_unix_s", "When the slot map was last read (0: never)", NULL,
           (double)(rc_refresh_wall / 1000));
    s->num(s, SK_COUNTER, "redis_cluster_refreshes", "Slot maps read (CLUSTER SLOTS)", NULL, (double)rc_refreshes);
    s->num(s, SK_COUNTER, "redis_cluster_moved", "MOVED redirections followed", NULL, (double)rc_moved);
    s->num(s, SK_COUNTER, "redis_cluster_ask", "ASK redirections followed", NULL, (double)rc_ask);
    s->num(s, SK_COUNTER, "redis_cluster_retries", "Commands resent later (TRYAGAIN, CLUSTERDOWN, node not up yet)",
           NULL, (double)rc_retries);
    s->num(s, SK_COUNTER, "redis_failovers_seen", "Slot maps in which slots changed primary (failover, resharding)",
           NULL, (double)rc_changes);
    s->num(s, SK_GAUGE, "redis_cluster_nodes_known",
           "Nodes the daemon keeps links to: the primaries, and nodes that left the map not forgotten yet", NULL, rc_n);
    s->num(s, SK_COUNTER, "redis_cluster_nodes_forgotten", "Nodes forgotten, their links closed, after leaving the map",
           NULL, (double)rc_forgotten);
    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->slots > 0)
            s->num(s, SK_GAUGE, "redis_node_slots", "Slots this primary serves", rc_node[i]->label,
                   rc_node[i]->slots);
    }
    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->slots > 0)
            s->num(s, SK_GAUGE, "redis_node_up", "Whether the link to this primary is up", rc_node[i]->label,
                   rlink_up(rc_node[i]->link));
    }
    /* The subscribers as one: up when every primary's is. */
    const struct rlink *sub = NULL;
    for (int i = 0; i < rc_n && !sub; i++)
        if (rc_node[i]->slots > 0 && (!rc_node[i]->sub || !rlink_up(rc_node[i]->sub)))
            sub = rc_node[i]->sub ? rc_node[i]->sub : rc_node[i]->link;
    if (!sub) {
        s->str(s, "redis_subscriber_state", "Redis link state: down, resolving, connecting, handshake, up",
               rcluster_ready() ? "up" : "down");
    } else {
        s->str(s, "redis_subscriber_state", "Redis link state: down, resolving, connecting, handshake, up",
               rlink_state_name(sub));
    }
    for (int i = 0; i < rc_n; i++) {
        if (rc_node[i]->slots > 0)
            s->num(s, SK_GAUGE, "redis_node_subscriber_up", "Whether the notice subscriber on this primary is up",
                   rc_node[i]->label, rc_node[i]->sub && rlink_up(rc_node[i]->sub));
    }
}

/* The slot map's nodes, then the channels listened on. */
static void rcluster_report_all(struct stats_sink *s)
{
    rcluster_report(s);
    rsub_report(s);
}

const struct rtopo rcluster_topo = {
    .name = "cluster",
    .init = rcluster_init,
    .free = rcluster_free,
    .ready = rcluster_ready,
    .ready_for = rcluster_ready_for,
    .status = rcluster_status,
    .report = rcluster_report_all,
    .links = rcluster_links,
    .prom = rcluster_prom,
    .cmd = rcluster_cmd,
    .eval = rcluster_eval,
    .epoch = rcluster_epoch,
    .servers = rcluster_primaries,
    .cmd_at = rcluster_cmd_at,
    .settle = rcluster_settle,
    .sub_for = rcluster_sub_for,
    .stale = rcluster_stale,
};
