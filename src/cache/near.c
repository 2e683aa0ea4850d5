/* SPDX-License-Identifier: BSD-3-Clause */
/* near.c - the near cache: a bounded map, in this process, from a Redis
 * record key to the reply bytes a hit sends, so a hot key is answered
 * without a Redis round trip.
 *
 * Exactness comes from Redis, not from a TTL: the command link's reads
 * are tracked (CLIENT TRACKING, rtrack.c), and Redis tells the subscriber
 * link when any client, an expiry or an eviction changes a key read
 * (rstore_on_invalidate): the entry goes. What tracking cannot cover is
 * never kept or served:
 * - A read answered after an invalidation of its key that came after the
 *   read was sent (on the other link, so in any order with the reply) may
 *   carry the old value: each invalidation is numbered, and a read keeps
 *   its answer only if none of its key (nor a flush) came since its
 *   ticket (near_begin). The last NEAR_RING invalidations are remembered
 *   by hash; a read older than that is not kept (a collision only costs
 *   a keep).
 * - A read not sent under the tracking generation it is answered under:
 *   tracking came on or went off in between.
 * - When tracking goes off (either link lost) nothing is told any more:
 *   the map is flushed at once, or with near_cache_max_stale_ms served
 *   that long and then flushed; when it comes on again it is flushed too
 *   (what Redis remembered was per connection).
 *
 * What is kept is the encoded reply: a hash record's field/value bulk
 * pairs (HGETALL's body; its map header differs by protocol, so it is
 * put in front when answering, and HGET/HMGET find their fields in the
 * pairs), a raw record's body as one bulk. Encoding per command shape
 * and protocol would keep up to four copies of one record, and the pairs
 * need only a header in front. A not-found record is kept as such.
 *
 * LRU: a hash table of chains (a power of two of buckets, at least one
 * per entry, the hash seeded per process) and a doubly linked list,
 * every operation O(1); bounded by near_cache_entries (at start) and
 * near_cache_bytes (reloadable: counted as the entry's struct, key and
 * reply). */
#include "core.h"
#include "near.h"
#include "config.h"
#include "record.h"
#include "resp.h"
#include "rstore.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define NEAR_DELTA_MAX ((1 << 19) - 1)          /* the delta bit-field's largest */
#define NEAR_EXP_MAX ((INT64_C(1) << 43) - 1)   /* the expiry bit-field's largest */

/* What near.h promises about an entry's size (docs/design.md). */
_Static_assert(sizeof(struct near_ent) == 48, "a near cache entry is 48 bytes");
#include <time.h>
#include <unistd.h>

#define NEAR_RING 1024          /* invalidations remembered for reads in flight */

static struct near_ent **near_tab;
static size_t near_mask;        /* buckets - 1 */
static long long near_cap, near_n, near_size;
static struct near_ent near_lru = { .prev = &near_lru, .next = &near_lru };
static uint64_t near_seed;
static uint64_t near_seq, near_flush_seq;       /* invalidations so far; the latest flush's */
static uint32_t near_ring[NEAR_RING];
static uint64_t near_gen;       /* the tracking generation the map was filled under */
static int64_t near_lost_at;    /* cs_mono_ms when tracking went off with entries kept; 0: not */

static uint32_t near_hash(const char *key, size_t klen)
{
    uint64_t h = cs_fnv1a(near_seed, key, klen);

    return (uint32_t)(h ^ (h >> 32));
}

static size_t near_cost(const struct near_ent *e)
{
    return sizeof(*e) + e->vlen + e->klen;
}

static struct near_ent **near_slot(const char *key, size_t klen, uint32_t h)
{
    struct near_ent **pp = &near_tab[h & near_mask];

    while (*pp && !((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->data + (*pp)->vlen, key, klen) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void near_unlink(struct near_ent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void near_front(struct near_ent *e)
{
    e->next = near_lru.next;
    e->prev = &near_lru;
    near_lru.next->prev = e;
    near_lru.next = e;
}

/* Remove *PP (the entry itself), counted in CAUSE. */
static void near_drop(struct near_ent **pp, uint64_t *cause)
{
    struct near_ent *e = *pp;

    *pp = e->hnext;
    near_unlink(e);
    near_n--;
    near_size -= (long long)near_cost(e);
    (*cause)++;
    free(e);
}

static void near_drop_ent(struct near_ent *e, uint64_t *cause)
{
    near_drop(near_slot(e->data + e->vlen, e->klen, e->hash), cause);
}

static void near_flush(void)
{
    while (near_lru.next != &near_lru)
        near_drop_ent(near_lru.next, &stats_c.near_evict_flush);
    near_flush_seq = ++near_seq;
}

static void near_on_invalidate(const char *key, size_t klen)
{
    uint32_t h;
    struct near_ent **pp;

    if (!key) {
        near_flush();
        return;
    }
    h = near_hash(key, klen);
    near_ring[++near_seq % NEAR_RING] = h;
    if (near_tab && *(pp = near_slot(key, klen, h)))
        near_drop(pp, &stats_c.near_evict_invalidation);
}

void near_forget(const char *key, size_t klen)
{
    if (near_tab)
        near_on_invalidate(key, klen);
}

static void near_on_tracking(bool on)
{
    if (on || cs_conf->near_cache_max_stale_ms == 0) {
        near_flush();
        near_lost_at = 0;
    } else if (!near_lost_at) {
        near_lost_at = cs_mono_ms();
        near_flush_seq = ++near_seq;    /* reads in flight keep nothing */
    }
    near_gen = rstore_tracking();
}

void near_init(long long entries)
{
    size_t buckets = 1;

    near_cap = entries;
    rstore_on_invalidate = near_on_invalidate;
    rstore_on_tracking = near_on_tracking;
    if (entries <= 0)
        return;
    while ((long long)buckets < entries)
        buckets <<= 1;
    near_tab = cs_calloc(buckets, sizeof(*near_tab));
    near_mask = buckets - 1;
    near_seed = CS_FNV_BASIS ^ ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)near_tab;
}

void near_free(void)
{
    rstore_on_invalidate = NULL;        /* the links may still go after this */
    rstore_on_tracking = NULL;
    if (near_tab)
        near_flush();
    free(near_tab);
    near_tab = NULL;
    near_cap = 0;
}

bool near_on(const struct cs_ns *ns)
{
    return near_tab && ns->near_cache;
}

long long near_entries(void)
{
    return near_n;
}

long long near_bytes(void)
{
    return near_size;
}

/* Tracking off: entries are served for near_cache_max_stale_ms, then go. */
static bool near_usable(void)
{
    if (rstore_tracking())
        return true;
    if (near_lost_at && cs_mono_ms() - near_lost_at < cs_conf->near_cache_max_stale_ms)
        return true;
    if (near_n)
        near_flush();
    near_lost_at = 0;
    return false;
}

const struct near_ent *near_get(const char *key, size_t klen, bool raw, int64_t now)
{
    struct near_ent **pp, *e;

    if (!near_usable() || !*(pp = near_slot(key, klen, near_hash(key, klen)))) {
        stats_c.near_misses++;
        return NULL;
    }
    e = *pp;
    if (e->raw != raw || e->exp <= now) {
        /* Past its expiry Redis's own read decides (stale within grace,
         * refresh); a reload switched the namespace's format. */
        near_drop(pp, &stats_c.near_evict_expired);
        stats_c.near_misses++;
        return NULL;
    }
    near_unlink(e);
    near_front(e);
    stats_c.near_hits++;
    return e;
}

bool near_field(const struct near_ent *e, const char *name, size_t len, const char **v, size_t *vlen)
{
    const char *p = e->data, *end = e->data + e->vlen;

    /* The pairs as near_put encoded them: $<len>\r\n<bytes>\r\n each. */
    for (int i = 0; p < end; i++) {
        char *q;
        size_t l = strtoul(p + 1, &q, 10);
        const char *s = q + 2;
        p = s + l + 2;
        if (i % 2 == 0 && l == len && memcmp(s, name, len) == 0 && p < end) {
            *vlen = strtoul(p + 1, &q, 10);
            *v = q + 2;
            return true;
        }
    }
    return false;
}

void near_begin(struct near_ticket *t)
{
    t->seq = near_seq;
    t->gen = rstore_tracking();
}

/* Whether an invalidation of the key (hash H) or a flush came since T. */
static bool near_overtaken(const struct near_ticket *t, uint32_t h)
{
    if (t->seq < near_flush_seq || near_seq - t->seq >= NEAR_RING)
        return true;
    for (uint64_t s = t->seq + 1; s <= near_seq; s++)
        if (near_ring[s % NEAR_RING] == h)
            return true;
    return false;
}

/* The reply's bytes: HGETALL's pairs less the reserved fields, or GET's body. */
static size_t near_encode(char *p, const redisReply *rep, bool raw, bool nf, int32_t *n)
{
    char *start = p;
    size_t size = 0;

    *n = raw ? -1 : 0;
    if (nf)
        return 0;
    if (raw) {
        const redisReply *b = rep->element[2];
        *n = 1;
        if (p)
            p = resp_put_bulk(p, b->str, (size_t)b->len);
        return p ? (size_t)(p - start) : resp_bulk_size((size_t)b->len);
    }
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        if (record_field_reserved(f->str, (size_t)f->len))
            continue;
        (*n)++;
        size += resp_bulk_size((size_t)f->len) + resp_bulk_size((size_t)v->len);
        if (p) {
            p = resp_put_bulk(p, f->str, (size_t)f->len);
            p = resp_put_bulk(p, v->str, (size_t)v->len);
        }
    }
    return size;
}

void near_put(const struct near_ticket *t, const char *key, size_t klen, bool raw, bool nf, int64_t exp,
              int64_t delta, const redisReply *rep)
{
    uint32_t h = near_hash(key, klen);
    struct near_ent **pp, *e;
    int32_t n;
    size_t wrote, vlen = near_encode(NULL, rep, raw, nf, &n);
    long long max_bytes = cs_conf->near_cache_bytes;

    if (!near_tab)
        return;
    if (!t->gen || t->gen != rstore_tracking() || t->gen != near_gen || near_overtaken(t, h)) {
        stats_c.near_keeps_cancelled++;
        return;
    }
    if (klen > UINT16_MAX || sizeof(*e) + vlen + klen > (size_t)max_bytes || vlen > UINT32_MAX || exp < 0 ||
        exp > NEAR_EXP_MAX)
        return;
    if (*(pp = near_slot(key, klen, h))) {
        uint64_t replaced = 0;  /* a newer read of it: no eviction to count */
        near_drop(pp, &replaced);
    }
    e = cs_malloc(sizeof(*e) + vlen + klen);
    e->exp = exp;
    e->delta = delta < 0 ? 0 : delta > NEAR_DELTA_MAX ? NEAR_DELTA_MAX : delta;
    e->vlen = (uint32_t)vlen;
    e->klen = (uint16_t)klen;
    e->hash = h;
    e->raw = raw;
    e->nf = nf;
    wrote = near_encode(e->data, rep, raw, nf, &e->n);
    CS_ASSERT(wrote == vlen);
    memcpy(e->data + vlen, key, klen);
    e->hnext = NULL;
    *near_slot(key, klen, h) = e;
    near_front(e);
    near_n++;
    near_size += (long long)near_cost(e);
    while (near_n > near_cap || near_size > max_bytes)
        near_drop_ent(near_lru.prev, &stats_c.near_evict_capacity);
}
