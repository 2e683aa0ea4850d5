/* SPDX-License-Identifier: BSD-3-Clause */
/* order.c - per-connection, per-key ordering of commands.
 *
 * Redis runs one connection's commands in the order they were sent, and
 * clients rely on it: `HGET k f`, `TTL k`, `HSET k f v` pipelined on a cold
 * key expect the TTL and the HSET to see the record the HGET brings in.
 * cachasided runs the commands of a pipeline concurrently (misses of
 * different keys are fetched in parallel), so a command on a key is held
 * back while an earlier command of its connection on that key has not been
 * answered.
 *
 * The rule is a first-come reader/writer lock per key and connection:
 * - the reads (HGETALL, HGET, HMGET, GET, MGET) share a key: a read next to
 *   a read gives the same answer either way (the second joins the first's
 *   fill or reads what it stored), and pipelined hits of one key keep
 *   going out in one batch;
 * - TTL, PTTL, HSET, DEL and UNLINK take it alone: they wait for every
 *   earlier command on the key, and every later one waits for them;
 * - a command also holds its keys' namespaces, shared; INVALIDATE ns:glob
 *   holds its namespace alone, so it waits for all earlier commands of the
 *   namespace on the connection and later ones wait for it (simpler than
 *   matching the glob, and INVALIDATE is rare).
 * A fill stores the record before it answers its waiters, on the same
 * pipelined Redis connection, so a command started after a read was
 * answered sees what that read stored.
 *
 * Cost: while every unanswered keyed command of a connection is a read
 * (or there is only one command), nothing can wait, so nothing is looked
 * up: the commands are only counted ("light"). One-at-a-time clients and
 * pipelines of reads pay nothing. The first command that could have to
 * wait puts the light ones' keys into a small per-connection hash table
 * (by a 64-bit hash of the key: two keys that collide are merely ordered
 * among themselves), and the table is used until the connection has no
 * unanswered keyed command again. There a command costs O(its keys)
 * however deep the pipeline; a waiting command is queued on each key it
 * waits for and woken by the last one to let it go, never found by a scan.
 */
#include "core.h"
#include "order.h"
#include "command.h"
#include "conn.h"

#include <stdlib.h>
#include <string.h>

enum order_state {
    ORDER_NONE,         /* no keys, or answered */
    ORDER_LIGHT,        /* running, counted only: not in the table */
    ORDER_HELD,         /* running, its keys in the table */
    ORDER_WAITING,      /* queued on one key or more */
    ORDER_READY,        /* its turn has come: on the run list */
};

/* One waiting request's place in one key's queue. */
struct order_node {
    struct order_node *next;
    struct req *r;
    bool shared;
};

/* One key (or namespace) with unanswered commands. */
struct order_entry {
    uint64_t h;                     /* 0: free slot */
    uint64_t seen;                  /* pass of the walk that last saw it */
    int holders;                    /* running (or let through) commands */
    bool excl;                      /* the holder has it alone */
    struct order_node *head, *tail; /* waiting, in order */
};

#define ORDER_MIN_CAP 16
#define ORDER_KEEP_CAP 1024         /* a bigger table is freed once empty */
#define ORDER_SEED_KEY CS_FNV_BASIS
#define ORDER_SEED_NS 0x84222325cbf29ce4ULL

/* Requests whose turn has come, run from order_run: never from inside
 * a command that is still running (req_done may be called there). */
static TAILQ_HEAD(, req) order_ready_list = TAILQ_HEAD_INITIALIZER(order_ready_list);
static bool order_running;

/* FNV-1a, then a finalizer so that the low bits index the table well. */
static uint64_t order_hash(const char *p, size_t n, uint64_t seed)
{
    uint64_t h = cs_fnv1a(seed, p, n);

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static struct order_entry *order_find(struct order_conn *o, uint64_t h)
{
    uint32_t mask = o->cap - 1;

    if (!o->cap)
        return NULL;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        if (o->tab[i].h == h)
            return &o->tab[i];
        if (o->tab[i].h == 0)
            return NULL;
    }
}

static void order_grow(struct order_conn *o)
{
    uint32_t cap = o->cap ? o->cap * 2 : ORDER_MIN_CAP, mask = cap - 1;
    struct order_entry *tab = cs_calloc(cap, sizeof(*tab));

    for (uint32_t j = 0; j < o->cap; j++) {
        uint32_t i;
        if (o->tab[j].h == 0)
            continue;
        for (i = (uint32_t)o->tab[j].h & mask; tab[i].h; i = (i + 1) & mask)
            ;
        tab[i] = o->tab[j];
    }
    free(o->tab);
    o->tab = tab;
    o->cap = cap;
}

/* Finds or adds h. Entries move when the table grows: never keep one
 * across a call that may add. */
static struct order_entry *order_get(struct order_conn *o, uint64_t h)
{
    struct order_entry *e = order_find(o, h);
    uint32_t mask, i;

    if (e)
        return e;
    if ((o->used + 1) * 2 > o->cap)
        order_grow(o);
    mask = o->cap - 1;
    for (i = (uint32_t)h & mask; o->tab[i].h; i = (i + 1) & mask)
        ;
    e = &o->tab[i];
    memset(e, 0, sizeof(*e));
    e->h = h;
    o->used++;
    return e;
}

/* Linear probing's deletion: pull later entries of the run back into the
 * hole when the hole is on their probe path. */
static void order_del(struct order_conn *o, struct order_entry *e)
{
    uint32_t mask = o->cap - 1, i = (uint32_t)(e - o->tab), j = i;

    o->tab[i].h = 0;
    o->used--;
    for (;;) {
        uint32_t home;
        j = (j + 1) & mask;
        if (o->tab[j].h == 0)
            return;
        home = (uint32_t)o->tab[j].h & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            o->tab[i] = o->tab[j];
            o->tab[j].h = 0;
            i = j;
        }
    }
}

typedef void (*order_fn)(struct order_conn *o, struct req *r, uint64_t h, bool shared);

/* Calls fn once for each key and namespace r holds (a key named twice, as
 * in MGET k k, is visited once: the pass mark). */
static void order_each(struct order_conn *o, struct req *r, order_fn fn)
{
    const struct cmd_def *d = r->cmd;
    bool shared = (d->flags & CMD_READ) != 0;
    int last = command_last_key(d, r->argc);

    o->pass++;
    for (int i = d->first; d->first && i <= last; i += d->step) {
        const struct cs_str *k = &r->argv[i];
        const char *colon = memchr(k->p, ':', k->len);
        size_t nl = colon ? (size_t)(colon - k->p) : k->len;

        if (d->flags & CMD_PATTERN) {
            fn(o, r, order_hash(k->p, nl, ORDER_SEED_NS), false);
            continue;
        }
        fn(o, r, order_hash(k->p, k->len, ORDER_SEED_KEY), shared);
        fn(o, r, order_hash(k->p, nl, ORDER_SEED_NS), true);
    }
}

/* At most this many entries: a key and its namespace per key argument,
 * a pattern's namespace alone. */
static int order_max_nodes(const struct req *r)
{
    const struct cmd_def *d = r->cmd;
    int nkeys = (command_last_key(d, r->argc) - d->first) / d->step + 1;

    return d->flags & CMD_PATTERN ? nkeys : 2 * nkeys;
}

/* Takes h for r if nothing earlier is in the way, else queues r on it. */
static void order_take(struct order_conn *o, struct req *r, uint64_t h, bool shared)
{
    struct order_entry *e = order_get(o, h);
    struct order_node *n;

    if (e->seen == o->pass)
        return;
    e->seen = o->pass;
    if (!e->head && (e->holders == 0 || (shared && !e->excl))) {
        e->holders++;
        e->excl = !shared;
        return;
    }
    /* Only a command that must wait pays for its queue places. */
    if (!r->ord.nodes)
        r->ord.nodes = cs_malloc(sizeof(*n) * (size_t)order_max_nodes(r));
    n = &r->ord.nodes[r->ord.wait++];
    n->next = NULL;
    n->r = r;
    n->shared = shared;
    if (e->tail)
        e->tail->next = n;
    else
        e->head = n;
    e->tail = n;
}

static void order_ready(struct req *r)
{
    free(r->ord.nodes);
    r->ord.nodes = NULL;
    r->ord.state = ORDER_READY;
    TAILQ_INSERT_TAIL(&order_ready_list, r, ord.ready);
}

/* Lets through the waiting commands at the head of e's queue that may
 * run beside its holders: one exclusive, or a run of shared ones. */
static void order_grant(struct order_entry *e)
{
    struct order_node *n;

    while ((n = e->head) != NULL && (e->holders == 0 || (n->shared && !e->excl))) {
        struct req *w = n->r;
        e->head = n->next;
        if (!e->head)
            e->tail = NULL;
        e->holders++;
        e->excl = !n->shared;
        if (--w->ord.wait == 0)
            order_ready(w);     /* frees n: not used below */
    }
}

static void order_give(struct order_conn *o, struct req *r, uint64_t h, bool shared)
{
    struct order_entry *e = order_find(o, h);

    CS_UNUSED(r);
    CS_UNUSED(shared);
    if (!e || e->seen == o->pass)
        return;
    e->seen = o->pass;
    e->holders--;
    order_grant(e);
    if (e->holders == 0 && !e->head)
        order_del(o, e);
}

/* The light commands go into the table, from the oldest: the table
 * must now decide who waits. */
static void order_promote(struct conn *c)
{
    struct order_conn *o = &c->ord;
    struct req *r;

    TAILQ_FOREACH(r, &c->reqs, q) {
        if (r->ord.state != ORDER_LIGHT)
            continue;
        order_each(o, r, order_take);
        r->ord.state = ORDER_HELD;
    }
    o->nlight = 0;
    o->light_excl = false;
}

bool order_admit(struct req *r)
{
    struct order_conn *o;
    bool shared;

    if (!r->conn || !r->cmd->first)
        return true;
    o = &r->conn->ord;
    shared = (r->cmd->flags & CMD_READ) != 0;
    if (o->nkeyed == o->nlight && (o->nkeyed == 0 || (shared && !o->light_excl))) {
        /* Nothing unanswered, or reads beside reads: nothing can wait. */
        o->nkeyed++;
        o->nlight++;
        o->light_excl = !shared;
        r->ord.state = ORDER_LIGHT;
        return true;
    }
    o->nkeyed++;
    if (o->nlight)
        order_promote(r->conn);
    order_each(o, r, order_take);
    if (r->ord.wait == 0) {
        r->ord.state = ORDER_HELD;
        return true;
    }
    r->ord.state = ORDER_WAITING;
    return false;
}

/* Runs the requests whose turn has come. A command may answer at once
 * (req_done inside proc), letting more through: they join the list and
 * this loop runs them, so nothing recurses. */
static void order_run(void)
{
    struct req *r;

    if (order_running)
        return;
    order_running = true;
    while ((r = TAILQ_FIRST(&order_ready_list)) != NULL) {
        TAILQ_REMOVE(&order_ready_list, r, ord.ready);
        r->ord.state = ORDER_HELD;
        r->cmd->proc(r);
    }
    order_running = false;
}

void order_done(struct req *r)
{
    struct order_conn *o = &r->conn->ord;

    switch (r->ord.state) {
    case ORDER_NONE:
        return;
    case ORDER_LIGHT:
        if (--o->nlight == 0)
            o->light_excl = false;
        break;
    case ORDER_HELD:
        order_each(o, r, order_give);
        break;
    default:
        /* A waiting command has not started: nobody answers it. */
        cs_panic("order state %d at release", (int)r->ord.state);
    }
    r->ord.state = ORDER_NONE;
    if (--o->nkeyed == 0 && o->cap > ORDER_KEEP_CAP) {
        free(o->tab);           /* a one-off huge DEL does not keep its table */
        o->tab = NULL;
        o->cap = o->used = 0;
    }
    order_run();
}

bool order_drop(struct req *r)
{
    if (r->ord.state == ORDER_READY)
        TAILQ_REMOVE(&order_ready_list, r, ord.ready);
    else if (r->ord.state != ORDER_WAITING)
        return false;
    free(r->ord.nodes);
    r->ord.nodes = NULL;
    r->ord.state = ORDER_NONE;
    return true;
}

void order_close(struct order_conn *o)
{
    free(o->tab);
    memset(o, 0, sizeof(*o));
}
