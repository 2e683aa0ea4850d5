/* SPDX-License-Identifier: BSD-3-Clause */
/* writes.c - keeping the cache correct when the primary changes: DEL and
 * INVALIDATE remove entries (and with them the fill locks they hold, so a
 * fill already under way cannot write old data back), HSET revokes a fill
 * under way and updates fields of a cached entry (docs/design.md, "Writes
 * revoke fills"). */
#include "core.h"
#include "writes.h"
#include "cache.h"
#include "config.h"
#include "flight.h"
#include "glob.h"
#include "keys.h"
#include "log.h"
#include "near.h"
#include "record.h"
#include "resp.h"
#include "rstore.h"
#include "scripts.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITES_SCAN_COUNT "1000"
#define WRITES_DEL_MAX 10000

static const char writes_tryagain[] = CS_ERR_TRYAGAIN;

static void writes_fail(struct cache_req *q, const char *msg)
{
    resp_error(cache_out(q), msg);
    cache_done(q);
}

/* DEL's and HSET's answer: entries removed, fields updated. */
static void writes_count(struct cache_req *q, const redisReply *rep, uint64_t *counter)
{
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        writes_fail(q, writes_tryagain);
        return;
    }
    *counter += (uint64_t)rep->integer;
    resp_int(cache_out(q), rep->integer);
    cache_done(q);
}

static void writes_del_cb(void *priv, const redisReply *rep)
{
    writes_count(priv, rep, &stats_c.invalidations);
}

static void writes_hset_cb(void *priv, const redisReply *rep)
{
    writes_count(priv, rep, &stats_c.field_updates);
}

/* del.lua with KEYS and the key prefix as its one ARGV (each key's notice
 * channel is made from it); rc as rstore_eval_each. */
static int writes_del_keys(struct cache_req *q, rstore_cb cb, int nkeys, const char **argv, size_t *lens)
{
    argv[nkeys] = q->conf->key_prefix;
    lens[nkeys] = strlen(q->conf->key_prefix);
    /* Keys of several slots may be deleted one by one: del.lua's reply is a count. */
    return scripts_eval_each(SCRIPT_DEL, cb, q, nkeys, nkeys + 1, argv, lens);
}

void writes_del(struct cache_req *q)
{
    int nkeys = q->argc - 1;
    const char **argv;
    size_t *lens;
    char *keys, err[200];
    size_t plen, total = 0, used = 0;
    int rc;

    /* One script runs the whole DEL: bound how long it holds Redis. */
    if (nkeys > WRITES_DEL_MAX) {
        writes_fail(q, "ERR too many keys for DEL (at most " CS_XSTR(WRITES_DEL_MAX)
                       "); split it or use INVALIDATE");
        return;
    }
    for (int i = 1; i < q->argc; i++) {
        const struct cs_ns *ns;
        struct cs_str id;
        if (keys_parse(q->conf, q->argv[i], &ns, &id, err, sizeof(err)) != CS_OK) {
            writes_fail(q, err);
            return;
        }
    }
    if (!rstore_ready()) {
        writes_fail(q, writes_tryagain);
        return;
    }
    /* Exactly what the keys take: "<prefix><ns>:{<id>}" + NUL. */
    plen = strlen(q->conf->key_prefix);
    for (int i = 1; i < q->argc; i++)
        total += plen + q->argv[i].len + 3;
    argv = cs_malloc(sizeof(*argv) * (size_t)(nkeys + 1));
    lens = cs_malloc(sizeof(*lens) * (size_t)(nkeys + 1));
    keys = cs_malloc(total);
    for (int i = 0; i < nkeys; i++) {
        const struct cs_ns *ns;
        struct cs_str id;
        if (keys_parse(q->conf, q->argv[i + 1], &ns, &id, err, sizeof(err)) != CS_OK)
            cs_panic("a key validated at dispatch does not parse: %s", err);
        argv[i] = keys + used;
        lens[i] = keys_build(keys + used, q->conf, ns, id);
        used += lens[i] + 1;
        /* Requests from now on start a new fill, not join the old one. */
        flight_detach(argv[i], lens[i]);
        near_forget(argv[i], lens[i]);
    }
    rc = writes_del_keys(q, writes_del_cb, nkeys, argv, lens);
    free(argv);
    free(lens);
    free(keys);
    if (rc != CS_OK)
        writes_fail(q, writes_tryagain);
}

/* INVALIDATE walks SCAN MATCH on every server in batches, each removed by
 * del.lua as DEL removes entries: a fill under way for a swept key loses
 * its lock with its record, and the daemons waiting on it hear so.
 *
 * A SCAN cursor means something only on the server that gave it, and only
 * while that server holds the same keys. A pass names its servers by id
 * and notes rstore_epoch() as it begins; when the epoch moves (a
 * failover, a slot moved, a link lost) the pass stops, and once it is over
 * rstore_settle reads the slot map again and asks each primary whether a
 * slot is migrating. Only a pass that ends on the map it began with, no
 * slot moving, is the answer; otherwise a new pass starts from cursor 0
 * on the servers of the map now. Entries already removed are not found
 * again, so the count adds up over passes. After WRITES_SWEEP_PASSES the
 * command gives up with an error that says entries may remain: a count
 * is never answered while the sweep may have passed entries by. */
#define WRITES_SWEEP_PASSES 4   /* the first and 3 more */
#define WRITES_SWEEP_LEFT "; some entries may remain, run it again"

static const char writes_sweep_down[] = "TRYAGAIN cache unavailable during INVALIDATE" WRITES_SWEEP_LEFT;
static const char writes_sweep_changed[] = "TRYAGAIN slot map or primary changed during INVALIDATE" WRITES_SWEEP_LEFT;
static const char writes_sweep_moving[] =
    "TRYAGAIN failover or slot migration under way during INVALIDATE" WRITES_SWEEP_LEFT;

struct inval {
    char pattern[KEYS_KEY_MAX];
    uint64_t epoch;             /* rstore_epoch() when this pass began */
    unsigned *servers;          /* this pass's, by id */
    int nservers, at;           /* at: the one being swept */
    int passes;
    char cursor[32];
};

static void writes_inval_free(void *p)
{
    struct inval *iv = p;

    free(iv->servers);
    free(iv);
}

static void writes_scan(struct cache_req *q);

/* The sweep stopped: what it removed is counted all the same. */
static void writes_sweep_fail(struct cache_req *q, const char *msg)
{
    near_forget(NULL, 0);       /* what was swept may still be kept here */
    stats_c.invalidations += (uint64_t)q->count;
    writes_fail(q, msg);
}

static void writes_pass(struct cache_req *q)
{
    struct inval *iv = q->state;
    int n = rstore_servers(NULL, 0);

    iv->passes++;
    iv->epoch = rstore_epoch();
    iv->servers = cs_realloc(iv->servers, sizeof(*iv->servers) * (size_t)(n > 0 ? n : 1));
    iv->nservers = rstore_servers(iv->servers, n);
    iv->at = 0;
    strcpy(iv->cursor, "0");
    if (iv->nservers == 0)
        writes_sweep_fail(q, writes_sweep_down);     /* a map with no primary: nothing can be swept */
    else
        writes_scan(q);
}

static void writes_settled_cb(void *priv, enum rstore_settle how)
{
    struct cache_req *q = priv;
    struct inval *iv = q->state;
    bool changed = rstore_epoch() != iv->epoch || iv->at < iv->nservers;

    if (how == RSET_FAILED) {
        writes_sweep_fail(q, writes_sweep_down);
    } else if (how == RSET_SAME && !changed) {
        /* Kept again while the sweep ran: gone before the answer. */
        near_forget(NULL, 0);
        stats_c.invalidations += (uint64_t)q->count;
        resp_int(cache_out(q), q->count);
        cache_done(q);
    } else if (iv->passes >= WRITES_SWEEP_PASSES) {
        writes_sweep_fail(q, changed ? writes_sweep_changed : writes_sweep_moving);
    } else {
        stats_c.invalidate_restarts++;
        log_info("INVALIDATE %s: %s during pass %d; sweeping again", iv->pattern,
                 changed ? "the slot map or primary changed" : "a failover or slot migration under way", iv->passes);
        writes_pass(q);
    }
}

/* The pass is over, or the servers changed under it. */
static void writes_settle(struct cache_req *q)
{
    if (rstore_settle(writes_settled_cb, q) != CS_OK)
        writes_sweep_fail(q, writes_sweep_down);
}

static void writes_batch_cb(void *priv, const redisReply *rep)
{
    struct cache_req *q = priv;

    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        writes_sweep_fail(q, writes_sweep_down);
        return;
    }
    q->count += rep->integer;
    writes_scan(q);
}

static void writes_scan_cb(void *priv, const redisReply *rep)
{
    struct cache_req *q = priv;
    struct inval *iv = q->state;
    const redisReply *keys;
    const char **argv;
    size_t *lens;
    int rc;

    /* A server that failed mid-sweep is not swept: never taken for done. */
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        writes_sweep_fail(q, writes_sweep_down);
        return;
    }
    snprintf(iv->cursor, sizeof(iv->cursor), "%s", rep->element[0]->str);
    if (strcmp(iv->cursor, "0") == 0)
        iv->at++;               /* this server is swept after this batch */
    keys = rep->element[1];
    if (keys->elements == 0) {
        writes_scan(q);
        return;
    }
    argv = cs_malloc(sizeof(*argv) * (keys->elements + 1));
    lens = cs_malloc(sizeof(*lens) * (keys->elements + 1));
    for (size_t i = 0; i < keys->elements; i++) {
        argv[i] = keys->element[i]->str;
        lens[i] = (size_t)keys->element[i]->len;
    }
    rc = writes_del_keys(q, writes_batch_cb, (int)keys->elements, argv, lens);
    free(argv);
    free(lens);
    if (rc != CS_OK)
        writes_sweep_fail(q, writes_sweep_down);
}

static void writes_scan(struct cache_req *q)
{
    struct inval *iv = q->state;
    const char *argv[6];
    size_t lens[6];

    if (iv->at == iv->nservers || rstore_epoch() != iv->epoch) {
        writes_settle(q);
        return;
    }
    argv[0] = "SCAN";
    argv[1] = iv->cursor;
    argv[2] = "MATCH";
    argv[3] = iv->pattern;
    argv[4] = "COUNT";
    argv[5] = WRITES_SCAN_COUNT;
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (rstore_cmd_at(iv->servers[iv->at], writes_scan_cb, q, 6, argv, lens) != CS_OK)
        writes_sweep_fail(q, writes_sweep_down);
}

struct writes_glob {
    const struct cs_ns *ns;
    struct cs_str glob;
};

static bool writes_glob_match(const struct flight *f, const void *ctx)
{
    const struct writes_glob *g = ctx;

    return f->ns->namelen == g->ns->namelen && memcmp(f->ns->name, g->ns->name, g->ns->namelen) == 0 &&
           glob_match(g->glob.p, g->glob.len, f->id, f->idlen);
}

/* INVALIDATE ns:glob: the flights of ns whose id the glob matches. */
static void writes_detach_glob(const struct cs_ns *ns, struct cs_str glob)
{
    struct writes_glob g = { ns, glob };

    flight_detach_if(writes_glob_match, &g);
}

void writes_invalidate(struct cache_req *q)
{
    const struct cs_ns *ns;
    struct cs_str glob;
    struct inval *iv;
    char err[200];

    if (keys_parse_glob(q->conf, q->argv[1], &ns, &glob, err, sizeof(err)) != CS_OK) {
        writes_fail(q, err);
        return;
    }
    if (!rstore_ready()) {
        writes_fail(q, writes_tryagain);
        return;
    }
    iv = cs_calloc(1, sizeof(*iv));
    keys_pattern(iv->pattern, q->conf, ns, glob);
    q->state = iv;
    q->state_free = writes_inval_free;
    writes_detach_glob(ns, glob);
    near_forget(NULL, 0);
    writes_pass(q);
}

void writes_hset(struct cache_req *q)
{
    const struct cs_ns *ns;
    struct cs_str id;
    char err[200], key[KEYS_KEY_MAX], chan[CS_CHAN_MAX];
    const char **argv;
    size_t *lens;
    int rc;

    if ((q->argc - 2) % 2 != 0) {
        writes_fail(q, "ERR wrong number of arguments for 'hset' command");
        return;
    }
    if (keys_parse(q->conf, q->argv[1], &ns, &id, err, sizeof(err)) != CS_OK) {
        writes_fail(q, err);
        return;
    }
    if (ns->format != NS_HASH) {
        writes_fail(q, CS_ERR_WRONGTYPE);
        return;
    }
    for (int i = 2; i < q->argc; i += 2) {
        if (record_field_reserved(q->argv[i].p, q->argv[i].len)) {
            writes_fail(q, "ERR field names starting with '__' are reserved");
            return;
        }
    }
    if (!rstore_ready()) {
        writes_fail(q, writes_tryagain);
        return;
    }
    argv = cs_malloc(sizeof(*argv) * (size_t)q->argc);
    lens = cs_malloc(sizeof(*lens) * (size_t)q->argc);
    argv[0] = key;
    lens[0] = keys_build(key, q->conf, ns, id);
    argv[1] = chan;
    lens[1] = cs_key_channel(chan, q->conf->key_prefix, key, lens[0]);
    for (int i = 2; i < q->argc; i++) {
        argv[i] = q->argv[i].p;
        lens[i] = q->argv[i].len;
    }
    /* A fill of this key under way here read the upstream before this
     * write: requests from now on start a new one. */
    flight_detach(key, lens[0]);
    near_forget(key, lens[0]);
    rc = scripts_eval(SCRIPT_HSET, writes_hset_cb, q, 1, q->argc, argv, lens);
    free(argv);
    free(lens);
    if (rc != CS_OK)
        writes_fail(q, writes_tryagain);
}
