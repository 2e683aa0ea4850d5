/* SPDX-License-Identifier: BSD-3-Clause */
/* flight.c - the table of fills under way in this daemon. A request that
 * misses joins the key's flight if there is one (coalesced), so one fill
 * answers them all with one shared, once-encoded outcome. */
#include "core.h"
#include "flight.h"
#include "log.h"
#include "outcome.h"

#include <stdlib.h>
#include <string.h>

static struct flight **ft_buckets;
static size_t ft_size, ft_count;
static TAILQ_HEAD(, flight) ft_all = TAILQ_HEAD_INITIALIZER(ft_all);

static void flight_grow(void)
{
    size_t nsize = ft_size ? ft_size * 2 : 256;
    struct flight **nb = cs_calloc(nsize, sizeof(*nb));

    for (size_t i = 0; i < ft_size; i++) {
        struct flight *f = ft_buckets[i], *next;
        for (; f; f = next) {
            size_t b = cs_hash(f->key, f->keylen) & (nsize - 1);
            next = f->hnext;
            f->hnext = nb[b];
            nb[b] = f;
        }
    }
    free(ft_buckets);
    ft_buckets = nb;
    ft_size = nsize;
}

struct flight *flight_find(const char *key, size_t len)
{
    struct flight *f;

    if (!ft_size)
        return NULL;
    for (f = ft_buckets[cs_hash(key, len) & (ft_size - 1)]; f; f = f->hnext)
        if (f->keylen == len && memcmp(f->key, key, len) == 0)
            return f;
    return NULL;
}

static void flight_unlink(struct flight *f)
{
    struct flight **pp;

    if (!f->in_table)
        return;
    pp = &ft_buckets[cs_hash(f->key, f->keylen) & (ft_size - 1)];
    while (*pp != f)
        pp = &(*pp)->hnext;
    *pp = f->hnext;
    f->in_table = false;
    ft_count--;
}

struct flight *flight_create(struct cs_config *conf, const struct cs_ns *ns, const char *key, size_t keylen,
                             const char *id, size_t idlen)
{
    struct flight *f = cs_calloc(1, sizeof(*f));
    size_t b;

    f->key = cs_strndup(key, keylen);
    f->keylen = keylen;
    f->id = cs_strndup(id, idlen);
    f->idlen = idlen;
    f->conf = conf;
    f->ns = ns;
    f->wtail = &f->waiters;
    if (ft_count + 1 > ft_size / 2)
        flight_grow();
    b = cs_hash(key, keylen) & (ft_size - 1);
    f->hnext = ft_buckets[b];
    ft_buckets[b] = f;
    f->in_table = true;
    ft_count++;
    TAILQ_INSERT_TAIL(&ft_all, f, all);
    return f;
}

void flight_add_waiter(struct flight *f, flight_done_fn *done, void *ctx)
{
    struct waiter *w = cs_malloc(sizeof(*w));

    w->done = done;
    w->ctx = ctx;
    w->next = NULL;
    *f->wtail = w;
    f->wtail = &w->next;
}

void flight_detach(const char *key, size_t len)
{
    struct flight *f = flight_find(key, len);

    if (f)
        flight_unlink(f);
}

void flight_detach_if(bool (*match)(const struct flight *f, const void *ctx), const void *ctx)
{
    struct flight *f;

    TAILQ_FOREACH(f, &ft_all, all)
        if (match(f, ctx))
            flight_unlink(f);
}

static void flight_free(struct flight *f)
{
    TAILQ_REMOVE(&ft_all, f, all);
    if (f->on_free)
        f->on_free(f);
    free(f->key);
    free(f->id);
    free(f);
}

int flight_finish(struct flight *f, struct outcome *o)
{
    struct waiter *w, *next;
    int n = 0;

    if (f->finished) {          /* e.g. shutdown answered first */
        outcome_unref(o);
        return 0;
    }
    flight_unlink(f);
    f->finished = true;
    if (f->on_finish)
        f->on_finish(f);
    for (w = f->waiters; w; w = next) {
        next = w->next;
        w->done(w->ctx, o);
        free(w);
        n++;
    }
    f->waiters = NULL;
    f->wtail = &f->waiters;
    outcome_unref(o);
    log_trace(f->key, "wake: %d waiter(s) answered", n);
    return n;
}

void flight_put(struct flight *f)
{
    if (f->finished && f->ops == 0)
        flight_free(f);
}

void flight_free_all(void)
{
    struct flight *f, *next;

    for (f = TAILQ_FIRST(&ft_all); f; f = next) {
        next = TAILQ_NEXT(f, all);
        if (!f->finished)
            flight_finish(f, outcome_error("ERR shutting down"));
        if (f->ops == 0)
            flight_free(f);
    }
    free(ft_buckets);
    ft_buckets = NULL;
    ft_size = ft_count = 0;
}

void flight_foreach(void (*fn)(struct flight *f))
{
    struct flight *f, *next;

    for (f = TAILQ_FIRST(&ft_all); f; f = next) {
        next = TAILQ_NEXT(f, all);
        fn(f);
    }
}

int flight_in_progress(void)
{
    const struct flight *f;
    int n = 0;

    TAILQ_FOREACH(f, &ft_all, all)
        n += !f->finished;
    return n;
}
