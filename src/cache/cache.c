/* SPDX-License-Identifier: BSD-3-Clause */
/* cache.c - the read commands: validate the key, read Redis once, answer a
 * hit straight from the reply, and send misses to the key's flight.
 *
 * A small request must not cost much: repeated fields (HMGET) and keys
 * (MGET) are read from Redis once, and a reply's size is added up before
 * it is built, so one over max_output_bytes_per_client is refused with
 * -ERR reply too large instead of being built. */
#include "core.h"
#include "cache.h"
#include "config.h"
#include "fill.h"
#include "flight.h"
#include "keys.h"
#include "log.h"
#include "near.h"
#include "outcome.h"
#include "record.h"
#include "resp.h"
#include "rstore.h"
#include "scripts.h"
#include "stats.h"
#include "xfetch.h"

#include <hiredis/hiredis.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MGET_MAX 10000

static const char cache_too_large[] = "ERR reply too large (over max_output_bytes_per_client)";

/* A read's outcome for the latency histograms and reads_total: the worst
 * of its keys' (hit < negative < stale < coalesced < miss < error), so an
 * MGET with one miss is a miss. STATS's namespace figures count per key. */
static void cache_outcome(struct cache_req *q, enum stats_hist_id o)
{
    static const int rank[SH_COUNT] = {
        [SH_REQ_HIT] = 1, [SH_REQ_NEGATIVE] = 2, [SH_REQ_STALE] = 3, [SH_REQ_COALESCED] = 4, [SH_REQ_MISS] = 5,
        [SH_REQ_ERROR] = 6,
    };

    if (q->outcome < 0 || rank[o] > rank[q->outcome])
        q->outcome = (int)o;
}

/* The namespace a read counts in on /metrics: its first key's. */
static void cache_ns_of(struct cache_req *q, const struct cs_ns *ns)
{
    if (!q->nss)
        q->nss = stats_ns_get(ns->name, ns->namelen);
}

static void cache_count(struct cache_req *q, const struct cs_ns *ns, enum stats_hist_id o)
{
    struct stats_ns *n = stats_ns_get(ns->name, ns->namelen);

    if (o == SH_REQ_MISS) {
        stats_c.misses++;
        n->misses++;
    } else {
        n->hits++;
        if (o == SH_REQ_HIT)
            stats_c.hits++;
        else if (o == SH_REQ_STALE)
            stats_c.stale_hits++;
        else
            stats_c.negative_hits++;
    }
    cache_ns_of(q, ns);
    if (o != SH_REQ_MISS)       /* a miss is a miss or coalesced: cache_join tells */
        cache_outcome(q, o);
}

/* MGET's state: one slot per key; only the first of equal keys is read. */
struct cache_mget {
    int n;
    int *first;                 /* per key: the slot that reads it */
    int *uses;                  /* per slot: keys it answers, counted down while the reply is built */
    struct cache_slot slot[];
};

static const struct cs_str *cache_sort_v;

static int cache_sort_cmp(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    const struct cs_str *x = &cache_sort_v[i], *y = &cache_sort_v[j];
    int c;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    c = memcmp(x->p, y->p, x->len);
    return c ? c : i - j;
}

static bool cache_str_eq(const struct cs_str *a, const struct cs_str *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* first[i] = the lowest j with v[j] equal to v[i]; returns how many differ.
 * Sorting, not hashing: no input makes it slower than n log n. */
static int cache_dedupe(const struct cs_str *v, int n, int *first)
{
    int uniq = 0, lead = 0, *idx;

    if (n <= 8) {
        for (int i = 0; i < n; i++) {
            first[i] = i;
            for (int j = 0; j < i; j++)
                if (cache_str_eq(&v[j], &v[i])) {
                    first[i] = j;
                    break;
                }
            uniq += first[i] == i;
        }
        return uniq;
    }
    idx = cs_malloc(sizeof(*idx) * (size_t)n);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    cache_sort_v = v;
    qsort(idx, (size_t)n, sizeof(*idx), cache_sort_cmp);
    for (int k = 0; k < n; k++) {
        if (k == 0 || !cache_str_eq(&v[idx[k]], &v[idx[k - 1]])) {
            lead = idx[k];
            uniq++;
        }
        first[idx[k]] = lead;
    }
    free(idx);
    return uniq;
}

/* <prefix>fills:<ns>:{<id>} -> <prefix><ns>:{<id>}: the flight of the key
 * a channel is for, or NULL. */
static struct flight *cache_chan_flight(const char *chan, size_t len)
{
    char key[KEYS_KEY_MAX];
    size_t pl = strlen(cs_conf->key_prefix);

    if (len < pl + 6 || len - 6 >= sizeof(key) || memcmp(chan + pl, "fills:", 6) != 0)
        return NULL;
    memcpy(key, chan, pl);
    memcpy(key + pl, chan + pl + 6, len - pl - 6);
    return flight_find(key, len - 6);
}

/* A fill of the key is done, or a write revoked it: look again. */
static void cache_on_notice(const char *chan, size_t len, const char *msg, size_t msglen)
{
    struct flight *f = cache_chan_flight(chan, len);

    CS_UNUSED(msg);
    CS_UNUSED(msglen);
    if (f)
        fill_notice(f);
}

/* Listening on the key's channel from now on: a fill that was done before
 * is found by looking once more. */
static void cache_on_listening(const char *chan, size_t len)
{
    struct flight *f = cache_chan_flight(chan, len);

    if (f)
        fill_notice(f);
}

/* Notices sent while a subscriber was away are lost: every flight
 * waiting for one acts as if it had come (with the command link up; else
 * the flights find Redis gone on their own). */
static void cache_on_subscribed(void)
{
    if (rstore_ready())
        flight_foreach(fill_notice);
}

void cache_init(void)
{
    near_init(cs_conf->near_cache_entries);
    rstore_on_notice = cache_on_notice;
    rstore_on_listening = cache_on_listening;
    rstore_on_subscribed = cache_on_subscribed;
    if (scripts_init() != CS_OK)
        log_error("redis: cannot register the scripts: every script command will fail");
    fill_init();
}

void cache_shutdown(void)
{
    fill_shutdown((int)cs_conf->command_timeout_ms);
}

void cache_free(void)
{
    near_free();
    flight_free_all();
    fill_free();
}

/* Where a slot's answer goes, and what finishing it means. */
static struct evbuffer *cache_dst(struct cache_slot *s)
{
    if (s->i < 0)
        return cache_out(s->q);
    if (!s->el)
        s->el = evbuffer_new();
    return s->el;
}

/* src stays as it is: a key named twice gets its element twice. */
static void cache_copy(struct evbuffer *dst, struct evbuffer *src)
{
    int n = evbuffer_peek(src, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = cs_malloc(sizeof(*v) * (size_t)(n > 0 ? n : 1));

    n = evbuffer_peek(src, -1, NULL, v, n);
    for (int i = 0; i < n; i++)
        evbuffer_add(dst, v[i].iov_base, v[i].iov_len);
    free(v);
}

static void cache_slot_done(struct cache_slot *s)
{
    struct cache_req *q = s->q;
    struct cache_mget *m = q->state;
    struct evbuffer *out;

    if (s->i < 0) {
        cache_done(q);
        return;
    }
    if (--q->pending > 0)
        return;
    if (q->gone) {              /* the client left: no reply to build */
        cache_done(q);
        return;
    }
    out = cache_out(q);
    if (q->count + (long long)resp_array_size(m->n) > q->conf->max_output_bytes_per_client) {
        resp_error(out, cache_too_large);
    } else {
        resp_array(out, m->n);
        for (int i = 0; i < m->n; i++) {
            int f = m->first[i];
            if (!m->slot[f].el)
                continue;
            if (--m->uses[f] == 0)
                evbuffer_add_buffer(out, m->slot[f].el);
            else
                cache_copy(out, m->slot[f].el);
        }
    }
    cache_done(q);
}

/* Whether a reply of size bytes may be built for s. A single-key reply
 * over the limit is answered with the error here; for MGET the sizes of
 * the keys' elements are added up (a repeated key counts each time) and
 * once past the limit no element is kept. */
static bool cache_fits(struct cache_slot *s, size_t size)
{
    struct cache_req *q = s->q;
    long long max = q->conf->max_output_bytes_per_client;
    struct cache_mget *m;

    if (s->i < 0) {
        if ((long long)size <= max)
            return true;
        resp_error(cache_out(q), cache_too_large);
        cache_outcome(q, SH_REQ_ERROR);
        return false;
    }
    m = q->state;
    if (q->count > max)
        return false;
    q->count += (long long)size * m->uses[s->i];
    if (q->count <= max)
        return true;
    for (int i = 0; i < m->n; i++)     /* just went over: drop what was kept */
        if (m->slot[i].el)
            evbuffer_drain(m->slot[i].el, evbuffer_get_length(m->slot[i].el));
    cache_outcome(q, SH_REQ_ERROR);
    return false;
}

static const struct cs_str *cache_field(const struct record *rec, const struct cs_str *name)
{
    for (int i = 0; i < rec->n; i++)
        if (rec->f[i].len == name->len && memcmp(rec->f[i].p, name->p, name->len) == 0)
            return &rec->v[i];
    return NULL;
}

static const struct cs_str *cache_outcome_field(const struct cache_req *q, const struct outcome *o, int i)
{
    const struct cs_str *name = &q->argv[2 + i];

    return o->kind == OC_RECORD && !record_field_reserved(name->p, name->len) ? cache_field(&o->rec, name) : NULL;
}

/* A waiter's completion: answer its slot from the flight's outcome. */
static void cache_answer(void *ctx, struct outcome *o)
{
    struct cache_slot *s = ctx;
    struct cache_req *q = s->q;
    enum cache_shape rk = q->shape;
    struct blob *b;

    if (q->gone) {              /* the client left; nothing to say */
        cache_slot_done(s);
        return;
    }
    if (o->kind == OC_ERROR) {
        b = outcome_err(o);
        cache_outcome(q, SH_REQ_ERROR);
        if (cache_fits(s, b->len))
            blob_append(cache_dst(s), b);
    } else if (rk == CACHE_HGETALL) {
        /* The shared pairs after this protocol's map header. */
        long long n = outcome_npairs(o);
        b = outcome_pairs(o);
        if (cache_fits(s, resp_map_size(n, q->resp3) + b->len)) {
            resp_map(cache_dst(s), n, q->resp3);
            blob_append(cache_dst(s), b);
        }
    } else if ((rk == CACHE_GET || rk == CACHE_MGET) && (b = outcome_body(o)) != NULL) {
        if (cache_fits(s, b->len))
            blob_append(cache_dst(s), b);
    } else if (rk == CACHE_GET || rk == CACHE_MGET) {
        if (cache_fits(s, resp_null_size(q->resp3)))
            resp_null(cache_dst(s), q->resp3);
    } else {
        /* HGET / HMGET pick their own fields, encoded per waiter. */
        int nf = q->argc - 2;
        size_t size = rk == CACHE_HMGET ? resp_array_size(nf) : 0;
        for (int i = 0; i < nf; i++) {
            const struct cs_str *v = cache_outcome_field(q, o, i);
            size += v ? resp_bulk_size(v->len) : resp_null_size(q->resp3);
        }
        if (cache_fits(s, size)) {
            struct evbuffer *dst = cache_dst(s);
            if (rk == CACHE_HMGET)
                resp_array(dst, nf);
            for (int i = 0; i < nf; i++) {
                const struct cs_str *v = cache_outcome_field(q, o, i);
                if (v)
                    resp_bulk(dst, v->p, v->len);
                else
                    resp_null(dst, q->resp3);
            }
        }
    }
    cache_slot_done(s);
}

/* A miss (or Redis trouble): join the key's flight or start one. LOCK is
 * what the read found in the record's __lock (p NULL: nothing), READ
 * false when Redis gave no answer. A flight that a write has overtaken
 * since (fill_joinable) is left to the requests already waiting on it:
 * this one starts a new fill, so no read that begins after a write
 * answered, through any daemon, gets data from before it. */
static void cache_join(struct cache_slot *s, const struct cs_ns *ns, struct cs_str id, bool refresh, bool read,
                       struct cs_str lock)
{
    char key[KEYS_KEY_MAX];
    size_t kl = keys_build(key, s->q->conf, ns, id);
    struct flight *f = flight_find(key, kl);

    if (f && f->ns->format != ns->format) {
        /* A reload switched the format: that fill answers in the old shape.
         * Its waiters keep it; this request starts its own. */
        flight_detach(key, kl);
        f = NULL;
    }
    if (f && read && !fill_joinable(f, lock)) {
        stats_c.fills_overtaken++;
        flight_detach(key, kl);
        f = NULL;
    }
    if (f) {
        log_trace(key, "join: %s the fill under way", refresh ? "refreshed by" : "waits on");
        if (!refresh) {
            stats_c.coalesced++;
            cache_outcome(s->q, SH_REQ_COALESCED);
            flight_add_waiter(f, cache_answer, s);
        }
        return;
    }
    if (!refresh)
        cache_outcome(s->q, SH_REQ_MISS);
    f = flight_create(s->q->conf, ns, key, kl, id.p, id.len);
    if (!refresh)
        flight_add_waiter(f, cache_answer, s);
    fill_start(f);
}

/* A hit drew an early refresh (xfetch.c): one background fill, unless one
 * of the key is under way here already. No waiter: the hit is answered. */
static void cache_refresh_early(struct cache_slot *s, const struct cs_ns *ns, struct cs_str id, int64_t exp)
{
    char key[KEYS_KEY_MAX];
    size_t kl = keys_build(key, s->q->conf, ns, id);
    struct flight *f;

    if (flight_find(key, kl))
        return;
    log_trace(key, "early refresh: started in the background");
    stats_c.early_refreshes++;
    f = flight_create(s->q->conf, ns, key, kl, id.p, id.len);
    fill_start_early(f, exp);
}

/* A debug trace line for a slot's key (log_trace); the key is built only
 * at debug level. */
#define CACHE_TRACE(q, ns, id, ...) \
    do { if (log_min_level <= LOG_DEBUG) cache_trace((q)->conf, (ns), (id), __VA_ARGS__); } while (0)

static void cache_trace(const struct cs_config *c, const struct cs_ns *ns, struct cs_str id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Which key a slot reads: argv[1] for single-key commands, argv[1+i] in MGET. */
static struct cs_str cache_slot_key(const struct cache_slot *s)
{
    return s->q->argv[s->i < 0 ? 1 : 1 + s->i];
}

/* Answer a hit from the reply itself: HGETALL's array, or HMGET's
 * elements after __exp and __nf. */
/* The value for the i-th asked field (GET, MGET: the body) in a read's
 * reply, or NULL. HMGET's repeated fields were asked once: q->state maps
 * each field to its element. */
static const redisReply *cache_reply_value(const struct cache_slot *s, const redisReply *rep, int i)
{
    const struct cache_req *q = s->q;
    const int *at = q->shape == CACHE_HMGET ? q->state : NULL;
    /* HMGET key __exp __nf __body __lock __delta <fields>: GET's body is
     * element 2, the fields start at 5. */
    bool raw = q->shape == CACHE_GET || q->shape == CACHE_MGET;
    size_t e = raw ? 2 : 5 + (size_t)(at ? at[i] : i);
    const redisReply *v = e < rep->elements ? rep->element[e] : NULL;

    if (q->shape == CACHE_HGET || q->shape == CACHE_HMGET)
        if (record_field_reserved(q->argv[2 + i].p, q->argv[2 + i].len))
            return NULL;
    if (s->whole) {
        /* HGETALL's pairs: the field by name. */
        const struct cs_str *name = &q->argv[2 + i];
        for (size_t k = 0; k + 1 < rep->elements; k += 2)
            if ((size_t)rep->element[k]->len == name->len && memcmp(rep->element[k]->str, name->p, name->len) == 0)
                return rep->element[k + 1];
        return NULL;
    }
    return v && v->type == REDIS_REPLY_STRING ? v : NULL;
}

/* A hit's reply is encoded straight into the client's buffer: size bytes
 * (counted by cache_fits's caller) reserved in one piece, one copy of each
 * value. */
static char *cache_reserve(struct evbuffer *dst, size_t size, struct evbuffer_iovec *v)
{
    if (evbuffer_reserve_space(dst, (ev_ssize_t)size, v, 1) != 1 || v->iov_len < size)
        cs_oom(size);           /* libevent could not allocate */
    return v->iov_base;
}

static void cache_commit(struct evbuffer *dst, struct evbuffer_iovec *v, const char *end, size_t size)
{
    /* Counted and encoded differ: a bug, not a state to go on in. */
    CS_ASSERT((size_t)(end - (const char *)v->iov_base) == size);
    v->iov_len = size;
    if (evbuffer_commit_space(dst, v, 1) != 0)
        cs_panic("libevent refused to commit the space it reserved");
}

static void cache_answer_reply(struct cache_slot *s, const redisReply *rep, bool nf)
{
    struct cache_req *q = s->q;
    struct evbuffer *dst;
    enum cache_shape rk = q->shape;
    size_t size = 0;

    if (rk == CACHE_HGETALL) {
        long long n = 0;
        for (size_t i = 0; !nf && i + 1 < rep->elements; i += 2) {
            const redisReply *f = rep->element[i], *v = rep->element[i + 1];
            if (!record_field_reserved(f->str, (size_t)f->len)) {
                n++;
                size += resp_bulk_size((size_t)f->len) + resp_bulk_size((size_t)v->len);
            }
        }
        size += resp_map_size(n, q->resp3);
        if (cache_fits(s, size)) {
            struct evbuffer_iovec v;
            char *p = cache_reserve(dst = cache_dst(s), size, &v);
            p = resp_put_map(p, n, q->resp3);
            for (size_t i = 0; !nf && i + 1 < rep->elements; i += 2) {
                const redisReply *f = rep->element[i], *val = rep->element[i + 1];
                if (record_field_reserved(f->str, (size_t)f->len))
                    continue;
                p = resp_put_bulk(p, f->str, (size_t)f->len);
                p = resp_put_bulk(p, val->str, (size_t)val->len);
            }
            cache_commit(dst, &v, p, size);
        }
    } else {
        int n = rk == CACHE_HGET || rk == CACHE_HMGET ? q->argc - 2 : 1;
        if (rk == CACHE_HMGET)
            size += resp_array_size(n);
        for (int i = 0; i < n; i++) {
            const redisReply *v = nf ? NULL : cache_reply_value(s, rep, i);
            size += v ? resp_bulk_size((size_t)v->len) : resp_null_size(q->resp3);
        }
        if (cache_fits(s, size)) {
            struct evbuffer_iovec iv;
            char *p = cache_reserve(dst = cache_dst(s), size, &iv);
            if (rk == CACHE_HMGET)
                p = resp_put_array(p, n);
            for (int i = 0; i < n; i++) {
                const redisReply *v = nf ? NULL : cache_reply_value(s, rep, i);
                p = v ? resp_put_bulk(p, v->str, (size_t)v->len) : resp_put_null(p, q->resp3);
            }
            cache_commit(dst, &iv, p, size);
        }
    }
    cache_slot_done(s);
}

/* A near cache entry's reply, as cache_answer_reply builds one from Redis's. */
static void cache_answer_near(struct cache_slot *s, const struct near_ent *e)
{
    struct cache_req *q = s->q;
    enum cache_shape rk = q->shape;
    int n = rk == CACHE_HGET || rk == CACHE_HMGET ? q->argc - 2 : 0;
    size_t size, vl;
    const char *v;

    if (rk == CACHE_HGETALL)
        size = resp_map_size(e->nf ? 0 : e->n, q->resp3) + e->vlen;
    else if (rk == CACHE_GET || rk == CACHE_MGET)
        size = e->nf ? resp_null_size(q->resp3) : e->vlen;
    else
        size = rk == CACHE_HMGET ? resp_array_size(n) : 0;
    for (int i = 0; i < n; i++)
        size += !e->nf && near_field(e, q->argv[2 + i].p, q->argv[2 + i].len, &v, &vl) ? resp_bulk_size(vl)
                                                                                     : resp_null_size(q->resp3);
    if (cache_fits(s, size)) {
        struct evbuffer_iovec iv;
        struct evbuffer *dst = cache_dst(s);
        char *p = cache_reserve(dst, size, &iv);
        if (rk == CACHE_HGETALL)
            p = resp_put_map(p, e->nf ? 0 : e->n, q->resp3);
        else if (rk == CACHE_HMGET)
            p = resp_put_array(p, n);
        if ((rk == CACHE_GET || rk == CACHE_MGET) && e->nf) {
            p = resp_put_null(p, q->resp3);
        } else if (n == 0) {
            memcpy(p, e->data, e->vlen);
            p += e->vlen;
        }
        for (int i = 0; i < n; i++)
            p = !e->nf && near_field(e, q->argv[2 + i].p, q->argv[2 + i].len, &v, &vl) ? resp_put_bulk(p, v, vl)
                                                                                     : resp_put_null(p, q->resp3);
        cache_commit(dst, &iv, p, size);
    }
    cache_slot_done(s);
}

/* A read of a near-cached namespace: answered here when the near cache
 * has the record; else its ticket is taken before the read is sent. */
static bool cache_near(struct cache_slot *s, const struct cs_ns *ns, struct cs_str id)
{
    char key[KEYS_KEY_MAX];
    size_t kl = keys_build(key, s->q->conf, ns, id);
    int64_t now = fill_redis_now_ms();
    const struct near_ent *e = near_get(key, kl, ns->format == NS_RAW, now);

    if (!e) {
        near_begin(&s->near);
        return false;
    }
    log_trace(key, "near cache: %s", e->nf ? "hit (not found)" : "hit");
    cache_count(s->q, ns, e->nf ? SH_REQ_NEGATIVE : SH_REQ_HIT);
    /* A hot record lives here, not in Redis's reads: the early refresh's
     * draw is made on the near hit too, or it would never be. The refresh's
     * write comes back as an invalidation, and the next read keeps the new
     * record. First: answering may free q. */
    if (!e->nf && xfetch_due(ns, now, e->exp, e->delta))
        cache_refresh_early(s, ns, id, e->exp);
    cache_answer_near(s, e);
    return true;
}

/* A fresh record Redis answered (HGETALL, or GET's and MGET's body): kept. */
static void cache_near_keep(struct cache_slot *s, const struct cs_ns *ns, struct cs_str id, const redisReply *rep,
                            const struct record_meta *m)
{
    char key[KEYS_KEY_MAX];
    size_t kl;

    if (s->q->shape != CACHE_HGETALL && s->q->shape != CACHE_GET && s->q->shape != CACHE_MGET && !s->whole)
        return;
    kl = keys_build(key, s->q->conf, ns, id);
    near_put(&s->near, key, kl, ns->format == NS_RAW, m->nf, m->exp, m->delta, rep);
}

static void cache_trace(const struct cs_config *c, const struct cs_ns *ns, struct cs_str id, const char *fmt, ...)
{
    char key[KEYS_KEY_MAX], step[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(step, sizeof(step), fmt, ap);
    va_end(ap);
    keys_build(key, c, ns, id);
    log_trace(key, "%s", step);
}

static void cache_read_cb(void *priv, const redisReply *rep)
{
    struct cache_slot *s = priv;
    struct cache_req *q = s->q;
    const struct cs_ns *ns;
    struct cs_str id;
    char err[160];
    struct record_meta m = { 0 };
    bool found = false;
    int64_t now;

    if (q->gone) {
        cache_slot_done(s);
        return;
    }
    q->io->redis_answered(q);
    if (s->i < 0 && q->ns) {
        /* Parsed at dispatch: the id follows "<ns>:". */
        ns = q->ns;
        id.p = q->argv[1].p + ns->namelen + 1;
        id.len = q->argv[1].len - ns->namelen - 1;
    } else if (keys_parse(q->conf, cache_slot_key(s), &ns, &id, err, sizeof(err)) != CS_OK) {
        cs_panic("a key validated before its read was sent does not parse: %s", err);
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (cs_exiting) {
            resp_error(cache_dst(s), "ERR shutting down");
            cache_ns_of(q, ns);
            cache_outcome(q, SH_REQ_ERROR);
            cache_slot_done(s);
            return;
        }
        CACHE_TRACE(q, ns, id, "redis read: no answer (Redis down): to the upstream");
        cache_count(q, ns, SH_REQ_MISS);
        cache_join(s, ns, id, false, false, m.lock);   /* the fill finds Redis down: straight to the upstream */
        return;
    }
    if (q->shape == CACHE_HGETALL || s->whole) {
        found = record_reply_meta(rep, &m);
    } else if (rep->elements >= 5 && rep->element[0]->type == REDIS_REPLY_STRING) {
        found = record_exp_parse(rep->element[0]->str, (size_t)rep->element[0]->len, &m.exp);
        m.nf = rep->element[1]->type == REDIS_REPLY_STRING;
        m.body = rep->element[2]->type == REDIS_REPLY_STRING;
        if (rep->element[4]->type != REDIS_REPLY_STRING ||
            !record_exp_parse(rep->element[4]->str, (size_t)rep->element[4]->len, &m.delta))
            m.delta = 0;
    }
    if (rep->elements >= 4 && q->shape != CACHE_HGETALL && !s->whole && rep->element[3]->type == REDIS_REPLY_STRING) {
        m.lock.p = rep->element[3]->str;
        m.lock.len = (size_t)rep->element[3]->len;
    }
    /* Everything under key_prefix is ours: a record without a valid __exp
     * or of the other format's shape (left by a reload that switched the
     * format) is a miss, and the fill overwrites it. */
    if (found && !m.nf && m.body != (ns->format == NS_RAW))
        found = false;
    now = found ? fill_redis_now_ms() : 0;
    /* Past its grace (a fill's lock can keep the key a little longer). */
    if (found && m.exp + ns->c.v[CK_GRACE] * 1000 <= now)
        found = false;
    if (!found) {
        CACHE_TRACE(q, ns, id, "redis read: miss");
        cache_count(q, ns, SH_REQ_MISS);
        cache_join(s, ns, id, false, true, m.lock);
        return;
    }
    if (ns->c.v[CK_GRACE] > 0 && m.exp <= now) {
        /* Stale within grace: answer now, refresh in the background. */
        CACHE_TRACE(q, ns, id, "redis read: stale within grace: answered, refreshed in the background");
        cache_count(q, ns, SH_REQ_STALE);
        cache_join(s, ns, id, true, true, m.lock);     /* first: answering may free q */
        cache_answer_reply(s, rep, m.nf);
        return;
    }
    CACHE_TRACE(q, ns, id, "redis read: %s", m.nf ? "hit (not found)" : "hit");
    cache_count(q, ns, m.nf ? SH_REQ_NEGATIVE : SH_REQ_HIT);
    if (near_on(ns))
        cache_near_keep(s, ns, id, rep, &m);
    if (!m.nf && xfetch_due(ns, now, m.exp, m.delta))
        cache_refresh_early(s, ns, id, m.exp);         /* first: answering may free q */
    cache_answer_reply(s, rep, m.nf);
}

/* Send one slot's read: HGETALL, or HMGET __exp __nf __body __lock __delta
 * <fields> so a single round trip tells presence, freshness, the fill
 * under way and the values. */
static void cache_lookup(struct cache_slot *s, const struct cs_ns *ns, struct cs_str id)
{
    struct cache_req *q = s->q;
    char key[KEYS_KEY_MAX];
    const char *argv_small[8];
    size_t lens_small[8];
    struct rstore_args a = { argv_small, lens_small, 0 };
    int nfields = q->shape == CACHE_HGET || q->shape == CACHE_HMGET ? q->argc - 2 : 0;
    int first_small[8], *first = first_small, nuniq;
    int rc;

    s->whole = false;
    if (near_on(ns)) {
        if (cache_near(s, ns, id))
            return;
        /* A near-cached record is read whole, so a field read keeps it too. */
        s->whole = nfields > 0;
        if (s->whole)
            nfields = 0;
    }
    nuniq = nfields;
    if (nfields > 8)
        first = cs_malloc(sizeof(*first) * (size_t)nfields);
    if (nfields > 1)
        nuniq = cache_dedupe(q->argv + 2, nfields, first);
    if (nuniq < nfields) {
        /* Ask Redis for each field once; q->state maps fields to elements. */
        int *at = cs_malloc(sizeof(*at) * (size_t)nfields), u = 0;
        for (int i = 0; i < nfields; i++)
            at[i] = first[i] == i ? u++ : at[first[i]];
        q->state = at;
        q->state_free = free;
    }
    if (nfields + 7 > 8) {
        a.argv = cs_malloc(sizeof(*a.argv) * (size_t)(nfields + 7));
        a.lens = cs_malloc(sizeof(*a.lens) * (size_t)(nfields + 7));
    }
    if (q->shape == CACHE_HGETALL || s->whole) {
        rstore_arg(&a, "HGETALL", 7);
    } else {
        rstore_arg(&a, "HMGET", 5);
    }
    rstore_arg(&a, key, keys_build(key, q->conf, ns, id));
    log_trace(key, "parse: %s %.*s (namespace %s)", q->name, (int)cache_slot_key(s).len, cache_slot_key(s).p,
              ns->name);
    if (q->shape != CACHE_HGETALL && !s->whole) {
        rstore_arg(&a, "__exp", 5);
        rstore_arg(&a, "__nf", 4);
        rstore_arg(&a, "__body", 6);  /* the shape tells raw records from hashes */
        rstore_arg(&a, "__lock", 6);
        rstore_arg(&a, "__delta", 7);
    }
    for (int i = 0; i < nfields; i++)
        if (nuniq == nfields || first[i] == i)
            rstore_arg(&a, q->argv[2 + i].p, q->argv[2 + i].len);
    if (first != first_small)
        free(first);
    rc = rstore_cmd(cache_read_cb, s, a.argc, a.argv, a.lens);
    if (a.argv != argv_small) {
        free(a.argv);
        free(a.lens);
    }
    if (rc == CS_OK && !q->gone)
        q->io->redis_sent(q);
    if (rc != CS_OK) {
        struct cs_str none = { NULL, 0 };
        CACHE_TRACE(q, ns, id, "redis read: not sent (Redis down): to the upstream");
        cache_count(q, ns, SH_REQ_MISS);
        cache_join(s, ns, id, false, false, none);
    }
}

static bool cache_type_ok(const struct cache_req *q, const struct cs_ns *ns)
{
    bool raw_cmd = q->shape == CACHE_GET || q->shape == CACHE_MGET;

    return raw_cmd == (ns->format == NS_RAW);
}


/* KEY's namespace and id, checked for the read's shape; false after
 * answering the read with the error. *ns already set: KEY was parsed
 * under q->conf by the request's owner (a transaction's queue-time check,
 * q->ns), so only the shape is left to check. */
static bool cache_key_ok(struct cache_req *q, struct cs_str key, const struct cs_ns **ns, struct cs_str *id)
{
    char err[200];

    if (*ns) {
        id->p = key.p + (*ns)->namelen + 1;     /* "<ns>:<id>" */
        id->len = key.len - (*ns)->namelen - 1;
    } else if (keys_parse(q->conf, key, ns, id, err, sizeof(err)) != CS_OK) {
        resp_error(cache_out(q), err);
        cache_outcome(q, SH_REQ_ERROR);
        cache_done(q);
        return false;
    }
    if (!cache_type_ok(q, *ns)) {
        resp_error(cache_out(q), CS_ERR_WRONGTYPE);
        cache_ns_of(q, *ns);
        cache_outcome(q, SH_REQ_ERROR);
        cache_done(q);
        return false;
    }
    return true;
}

void cache_read(struct cache_req *q)
{
    const struct cs_ns *ns = q->ns;
    struct cs_str id;

    if (!cache_key_ok(q, q->argv[1], &ns, &id))
        return;
    q->one.q = q;
    q->one.i = -1;
    q->ns = ns;
    cache_lookup(&q->one, ns, id);
}

static void cache_mget_free(void *p)
{
    struct cache_mget *m = p;

    for (int i = 0; i < m->n; i++)
        if (m->slot[i].el)
            evbuffer_free(m->slot[i].el);
    free(m);
}

void cache_mget(struct cache_req *q)
{
    const struct cs_ns *ns;
    struct cs_str id;
    struct cache_mget *m;
    char err[200];
    int n = q->argc - 1;

    if (n > CACHE_MGET_MAX) {
        resp_error(cache_out(q), "ERR too many keys for MGET (at most " CS_XSTR(CACHE_MGET_MAX) ")");
        cache_outcome(q, SH_REQ_ERROR);
        cache_done(q);
        return;
    }
    /* Every key is checked before any is read: all or nothing. */
    for (int i = 1; i < q->argc; i++) {
        ns = NULL;
        if (!cache_key_ok(q, q->argv[i], &ns, &id))
            return;
    }
    m = cs_calloc(1, sizeof(*m) + (sizeof(m->slot[0]) + 2 * sizeof(int)) * (size_t)n);
    m->n = n;
    m->first = (int *)(m->slot + n);
    m->uses = m->first + n;
    q->state = m;
    q->state_free = cache_mget_free;
    /* One more than the keys read while they are sent: a key the near
     * cache answers at once must not finish (and free) q in this loop. */
    q->pending = cache_dedupe(q->argv + 1, n, m->first) + 1;
    q->count = 0;               /* reply bytes so far */
    for (int i = 0; i < n; i++) {
        m->slot[i].q = q;
        m->slot[i].i = i;
        m->uses[m->first[i]]++;
    }
    for (int i = 0; i < n; i++) {
        if (m->first[i] != i)
            continue;
        if (keys_parse(q->conf, q->argv[1 + i], &ns, &id, err, sizeof(err)) != CS_OK)
            cs_panic("a key validated at dispatch does not parse: %s", err);
        cache_lookup(&m->slot[i], ns, id);
    }
    cache_slot_done(&m->slot[0]);
}

static void cache_ttl_reply(struct cache_req *q, const redisReply *rep, bool ms)
{
    struct evbuffer *out = cache_out(q);

    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        resp_error(out, CS_ERR_TRYAGAIN);
    } else if (rep->integer < 0 || ms) {
        resp_int(out, rep->integer);
    } else {
        resp_int(out, (rep->integer + 500) / 1000);  /* rounded, as Redis's TTL */
    }
    cache_done(q);
}

static void cache_ttl_cb(void *priv, const redisReply *rep)
{
    cache_ttl_reply(priv, rep, false);
}

static void cache_pttl_cb(void *priv, const redisReply *rep)
{
    cache_ttl_reply(priv, rep, true);
}

/* ttl.lua answers in milliseconds; TTL rounds them to seconds. */
static void cache_ttl_ask(struct cache_req *q, rstore_cb cb)
{
    const struct cs_ns *ns;
    struct cs_str id;
    char err[200], key[KEYS_KEY_MAX];
    const char *argv[1] = { key };
    size_t lens[1] = { 0 };

    if (keys_parse(q->conf, q->argv[1], &ns, &id, err, sizeof(err)) != CS_OK) {
        resp_error(cache_out(q), err);
        cache_done(q);
        return;
    }
    lens[0] = keys_build(key, q->conf, ns, id);
    if (scripts_eval(SCRIPT_TTL, cb, q, 1, 1, argv, lens) != CS_OK) {
        resp_error(cache_out(q), CS_ERR_TRYAGAIN);
        cache_done(q);
    }
}

void cache_ttl(struct cache_req *q)
{
    cache_ttl_ask(q, cache_ttl_cb);
}

void cache_pttl(struct cache_req *q)
{
    cache_ttl_ask(q, cache_pttl_cb);
}
