/* SPDX-License-Identifier: BSD-3-Clause */
/* flight.h - in-process single-flight: one fill per key and its waiters,
 * each answered through its own callback with the outcome they all share. */
#ifndef CS_FLIGHT_H
#define CS_FLIGHT_H

#include "core.h"

struct outcome;

/* A waiter's own completion: called once with the flight's outcome (the
 * callee takes its own reference if it keeps o). */
typedef void flight_done_fn(void *ctx, struct outcome *o);

struct fill;

struct waiter {
    flight_done_fn *done;
    void *ctx;
    struct waiter *next;
};

struct flight {
    char *key, *id;
    size_t keylen, idlen;
    struct cs_config *conf;             /* the fill holds its ref: ns lives in it */
    const struct cs_ns *ns;
    struct waiter *waiters, **wtail;
    int ops;                            /* callbacks still to come */
    bool in_table, finished;
    struct fill *fill;                  /* fill.c's own state, freed by on_free */
    /* The fill's hooks: told when the flight finishes, and when it is freed. */
    void (*on_finish)(struct flight *f);
    void (*on_free)(struct flight *f);
    struct flight *hnext;
    TAILQ_ENTRY(flight) all;
};

struct flight *flight_find(const char *key, size_t len);
struct flight *flight_create(struct cs_config *conf, const struct cs_ns *ns, const char *key, size_t keylen,
                             const char *id, size_t idlen);
void flight_add_waiter(struct flight *f, flight_done_fn *done, void *ctx);
/* Invalidation: later requests must not join these flights. */
void flight_detach(const char *key, size_t len);
/* Detaches every flight match() says yes to (e.g. INVALIDATE's glob). */
void flight_detach_if(bool (*match)(const struct flight *f, const void *ctx), const void *ctx);
/* Answer every waiter with o (the flight takes o's reference); returns
 * how many waiters it answered. */
int flight_finish(struct flight *f, struct outcome *o);
/* An operation on f has called back: free f once finished and idle. */
void flight_put(struct flight *f);
/* Exit: finish every flight with an error and free what is idle. */
void flight_free_all(void);
/* fn on every flight, detached ones too; fn may finish (and free) its own. */
void flight_foreach(void (*fn)(struct flight *f));

/* The flights under way, for STATS and /metrics. */
int flight_in_progress(void);

#endif
