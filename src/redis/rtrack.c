/* SPDX-License-Identifier: BSD-3-Clause */
/* rtrack.c - server-assisted client-side caching, as Redis 6+ offers it
 * over RESP2: the command link sends CLIENT TRACKING on REDIRECT <id>,
 * where <id> is the CLIENT ID of the subscriber link that is subscribed
 * to __redis__:invalidate; from then on Redis remembers each key that
 * link read and tells the subscriber once when any client, an expiry or
 * an eviction changes it.
 *
 * Tracking belongs to a connection: when either link is lost, what Redis
 * remembered (or where it sends it) is gone, so the owner is told that
 * tracking is off and must forget what it kept. Each change of state
 * bumps a generation: a read sent under one generation and answered
 * under another may have missed its invalidation, and its owner can tell.
 * The layer knows nothing of what its owner keeps; it only passes the
 * keys on (rstore_on_invalidate, rstore_on_tracking). */
#include "core.h"
#include "rtrack.h"
#include "rlink.h"
#include "rsub.h"
#include "log.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

static bool rtrack_wanted;
static uint64_t rtrack_generation = 1;
static int rtrack_pairs, rtrack_on;     /* pairs added; of which with tracking confirmed */

void rtrack_init(bool enabled)
{
    rtrack_wanted = enabled;
    rtrack_pairs = rtrack_on = 0;
    rtrack_generation++;
}

bool rtrack_enabled(void)
{
    return rtrack_wanted;
}

uint64_t rtrack_gen(void)
{
    return rtrack_pairs > 0 && rtrack_on == rtrack_pairs ? rtrack_generation : 0;
}

static void rtrack_set(struct rtrack *t, bool on)
{
    if (t->on == on || !t->added)
        return;
    t->on = on;
    rtrack_on += on ? 1 : -1;
    rtrack_generation++;
    if (rstore_on_tracking)
        rstore_on_tracking(on);
}

/* The answer to the latest CLIENT TRACKING: PRIV carries which request it
 * was (an older one's answer came from a connection since replaced). */
struct rtrack_ask {
    struct rtrack *t;
    unsigned asked;
};

static void rtrack_answered(void *priv, const redisReply *r)
{
    struct rtrack_ask *a = priv;
    struct rtrack *t = a->t;
    bool current = a->asked == t->asked;

    free(a);
    if (!current)
        return;
    if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0 && rlink_up(t->cmd) && rlink_up(t->sub)) {
        log_notice("redis: client tracking on, invalidations to %s (client id %lld)", rlink_name(t->sub),
                   rlink_client_id(t->sub));
        rtrack_set(t, true);
        return;
    }
    log_limited(LOG_WARNING, "redis: CLIENT TRACKING refused: %s: the near cache stays off",
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : "no reply");
}

void rtrack_add(struct rtrack *t, struct rlink *cmd, struct rlink *sub)
{
    *t = (struct rtrack){ .cmd = cmd, .sub = sub, .added = true };
    rtrack_pairs++;
    rtrack_generation++;        /* one more server whose tracking is not on yet */
    if (rstore_on_tracking)
        rstore_on_tracking(false);
    rtrack_link_up(t);
}

void rtrack_remove(struct rtrack *t)
{
    if (!t->added)
        return;
    rtrack_link_down(t);
    t->added = false;
    rtrack_pairs--;
    rtrack_generation++;
    t->cmd = t->sub = NULL;
    /* The pairs left may all be on: a new generation, told as such. */
    if (rtrack_gen() && rstore_on_tracking)
        rstore_on_tracking(true);
}

void rtrack_link_up(struct rtrack *t)
{
    char id[24];
    const char *argv[5] = { "CLIENT", "TRACKING", "on", "REDIRECT", id };
    struct rtrack_ask *a;

    if (!rtrack_wanted || !t->added)
        return;
    /* A new subscriber connection has a new id: tracking starts again. */
    rtrack_link_down(t);
    if (!rlink_up(t->cmd) || !rlink_up(t->sub) || rlink_client_id(t->sub) <= 0)
        return;
    snprintf(id, sizeof(id), "%lld", rlink_client_id(t->sub));
    a = cs_malloc(sizeof(*a));
    a->t = t;
    a->asked = ++t->asked;
    if (rlink_send(t->cmd, rtrack_answered, a, 5, argv, NULL, -1) != CS_OK) {
        free(a);
        log_limited(LOG_WARNING, "redis: CLIENT TRACKING not sent: the near cache stays off until a reconnect");
    }
}

void rtrack_link_down(struct rtrack *t)
{
    t->asked++;                 /* an answer still due is for a connection gone */
    rtrack_set(t, false);
}

static void rtrack_message(const redisReply *msg)
{
    const redisReply *keys = msg->element[2];

    stats_c.near_invalidations++;
    if (!rstore_on_invalidate)
        return;
    if (keys->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING)
                rstore_on_invalidate(keys->element[i]->str, (size_t)keys->element[i]->len);
    } else {
        rstore_on_invalidate(NULL, 0);  /* nil: FLUSHALL, FLUSHDB, or the tracking table full */
    }
}

/* The subscriber's hooks: rsub.c's (which do not use the owner), and the
 * pair's tracking; the invalidations are not a channel rsub.c knows. */
static void rtrack_sub_up(struct rlink *n, void *owner)
{
    rsub_hooks.up(n, NULL);
    rtrack_link_up(owner);
}

static void rtrack_sub_down(struct rlink *n, void *owner)
{
    rtrack_link_down(owner);
    rsub_hooks.down(n, NULL);
}

static void rtrack_sub_message(struct rlink *n, void *owner, const redisReply *msg)
{
    if (strcmp(msg->element[1]->str, RLINK_INVALIDATE_CHAN) == 0)
        rtrack_message(msg);
    else
        rsub_hooks.message(n, NULL, msg);
}

static void rtrack_sub_listened(struct rlink *n, void *owner, const char *chan, size_t len, bool on, const char *err)
{
    rsub_hooks.listened(n, NULL, chan, len, on, err);
}

const struct rlink_hooks rtrack_sub_hooks = {
    .up = rtrack_sub_up, .down = rtrack_sub_down, .message = rtrack_sub_message, .listened = rtrack_sub_listened,
};
