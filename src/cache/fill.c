/* SPDX-License-Identifier: BSD-3-Clause */
/* fill.c - how a flight gets its record (docs/design.md section 6, steps 3-4):
 *
 *   lock ──1──> fetch ──> store+unlock+publish ──> finish
 *     │──2──> re-read (someone just filled it)
 *     │──3──> not found (shared from a fill that stored no sentinel)
 *     └──0──> wait: listen on the key's channel and re-read once Redis
 *             confirms it; a notice (done, revoked) re-reads; every
 *             lock_poll_ms the lock script runs again (a lock that went
 *             away quietly is taken at once); at lock_ttl_ms one last lock
 *             attempt: taken, we fetch and store under our own token, so a
 *             DEL still wins; held, we fetch for our waiters, storing nothing.
 *
 * The lock is the record's own __lock field, so a write that removes the
 * record or revokes the lock (DEL, INVALIDATE, HSET) leaves a fill under
 * way nothing to store under, and a read that finds __lock changed does
 * not join it (fill_joinable; docs/design.md section 7).
 * Redis unreachable at any step: fetch from the upstream and store nothing.
 * A flight never depends on the client that started it. Freshness is
 * judged by Redis's clock (TIME in the scripts, and an offset kept here for
 * the read path).
 * Two hooks of their own: an early refresh (xfetch.c) locks a record that
 * is still fresh, only while its __exp is the one its read saw, and drops
 * when it cannot lock; the circuit breaker (breaker.c) is asked before
 * each fetch and told its result. */
#include "core.h"
#include "fill.h"
#include "breaker.h"
#include "config.h"
#include "flight.h"
#include "log.h"
#include "outcome.h"
#include "record.h"
#include "rstore.h"
#include "scripts.h"
#include "stats.h"
#include "upstream.h"

#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum store_mode { SM_NONE, SM_OWN };
enum fill_state { FS_LOCKING, FS_WAITING, FS_READING, FS_FETCHING, FS_DONE };

/* One flight's fill: allocated by fill_start, freed with the flight. */
struct fill {
    enum fill_state state;
    char token[40];
    struct event *timer;
    int64_t deadline;
    int attempts;
    enum store_mode store_mode;         /* how we may store our fetch */
    bool lock_busy;                     /* a lock script is under way */
    bool timed_out;                     /* waited lock_ttl_ms: take over or fetch unstored */
    bool suppressed;                    /* we found the lock held and wait on its fill */
    int64_t lock_sent_ms;               /* wall clock, for the Redis clock offset */
    char since[24];                     /* Redis ms when the lock was first found held */
    char holder[40];                    /* the token holding the lock we wait on */
    int64_t holder_seen;                /* when we first saw it (mono ms; 0: none yet) */
    int64_t wait_start;                 /* when this flight began to wait (mono ms) */
    bool woken_by_poll;                 /* the poll, not a notice, found the record */
    bool listening;                     /* on the key's notice channel */
    int64_t lock_now;                   /* Redis's ms in the last lock reply (0: none yet) */
    char early[24];                     /* an early refresh: the __exp its read saw ('': none) */
    int64_t delta_ms;                   /* the fetch's time, stored as __delta */
};

#define FILL_CLOCK_TICK_MS 500
#define FILL_CLOCK_EVERY_MS 10000

/* What a miss gets while its namespace's breaker is open: the style of
 * the other upstream errors. */
#define FILL_BREAKER_ERR "UPSTREAM unavailable"

static char fill_daemon_id[17];
static uint64_t fill_seq;

/* Redis's clock minus ours, from TIME now and then and every lock reply. */
static int64_t fill_clock_off, fill_clock_at, fill_clock_sent;
static bool fill_clock_pending;
static struct event *fill_clock_timer;

/* Shutdown: lock releases not yet answered. */
static int fill_releasing;

static void fill_lock(struct flight *f, bool poll);
static void fill_reread(struct flight *f, bool notice);
static void fill_fetch(struct flight *f, enum store_mode mode);
static void fill_release(struct flight *f);
struct up_reply;
static enum breaker_result fill_breaker_result(const struct up_reply *up);

int64_t fill_redis_now_ms(void)
{
    return cs_now_ms() + fill_clock_off;
}

static void fill_clock_sample(int64_t redis_ms, int64_t sent_ms)
{
    int64_t now = cs_now_ms();

    if (now - sent_ms > 1000 || now < sent_ms)
        return;                 /* a slow reply says little about the offset */
    fill_clock_off = redis_ms - (sent_ms + now) / 2;
    fill_clock_at = cs_mono_ms();
}

static void fill_time_cb(void *priv, const redisReply *rep)
{
    CS_UNUSED(priv);
    fill_clock_pending = false;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING)
        fill_clock_sample(strtoll(rep->element[0]->str, NULL, 10) * 1000 +
                          strtoll(rep->element[1]->str, NULL, 10) / 1000, fill_clock_sent);
}

/* Measure when the link (re)appears and every FILL_CLOCK_EVERY_MS. */
static void fill_clock_cb(evutil_socket_t fd, short what, void *arg)
{
    const char *argv[1] = { "TIME" };
    size_t lens[1] = { 4 };

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (!rstore_ready()) {
        fill_clock_at = 0;
        return;
    }
    if (fill_clock_pending || (fill_clock_at && cs_mono_ms() - fill_clock_at < FILL_CLOCK_EVERY_MS))
        return;
    fill_clock_sent = cs_now_ms();
    if (rstore_cmd(fill_time_cb, NULL, 1, argv, lens) == CS_OK)
        fill_clock_pending = true;
}

void fill_init(void)
{
    unsigned char rnd[8];
    struct timeval tv;

    cs_ms_tv(&tv, FILL_CLOCK_TICK_MS);
    evutil_secure_rng_get_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(fill_daemon_id + 2 * i, 3, "%02x", rnd[i]);
    srandom((unsigned)rnd[0] << 24 | (unsigned)rnd[1] << 16 | (unsigned)rnd[2] << 8 | rnd[3]);
    fill_clock_timer = event_new(cs_base, -1, EV_PERSIST, fill_clock_cb, NULL);
    event_add(fill_clock_timer, &tv);
}

void fill_free(void)
{
    if (fill_clock_timer)
        event_free(fill_clock_timer);
    fill_clock_timer = NULL;
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg);

/* The key's notice channel, listened on while the flight waits. */
static void fill_listen(struct flight *f, bool on)
{
    char chan[CS_CHAN_MAX];
    size_t len;

    if (f->fill->listening == on)
        return;
    len = cs_key_channel(chan, f->conf->key_prefix, f->key, f->keylen);
    if (!on) {
        rstore_unlisten(chan, len);
        f->fill->listening = false;
        return;
    }
    switch (rstore_listen(chan, len)) {
    case RL_PENDING:
        /* Once Redis confirms it, fill_notice looks again: a fill done
         * before then is found so. */
        f->fill->listening = true;
        return;
    case RL_ON:
        f->fill->listening = true;
        break;
    case RL_FULL:
        break;                  /* the poll it is */
    }
    /* A fill that completed between our miss and our lock attempt
     * published before we listened: one read now catches it. */
    fill_reread(f, false);
}

static void fill_on_finish(struct flight *f)
{
    f->fill->state = FS_DONE;
    evtimer_del(f->fill->timer);
    fill_listen(f, false);
}

/* A key's commands go to one link, whose replies come in order: when the
 * joining read's reply is here, every command f sent before that read has
 * been answered, so what f still waits for ran in Redis after the read,
 * and after any write that was answered before the read began. Only a
 * fetch already under way predates it: joined when the lock it holds is
 * still the one the read found (a write would have removed it). */
bool fill_joinable(const struct flight *f, struct cs_str lock)
{
    const struct fill *fl = f->fill;

    switch (fl->state) {
    case FS_LOCKING:
    case FS_WAITING:
    case FS_READING:
        return true;
    case FS_FETCHING:
        return fl->store_mode == SM_OWN && lock.p && lock.len == strlen(fl->token) &&
               memcmp(lock.p, fl->token, lock.len) == 0;
    case FS_DONE:
        break;
    }
    return false;
}

static void fill_on_free(struct flight *f)
{
    event_free(f->fill->timer);
    free(f->fill);
    f->fill = NULL;
    config_unref(f->conf);
}

static void fill_finish(struct flight *f, struct outcome *o);

/* A miss is not the hot path: one allocation per fill. */
static void fill_begin(struct flight *f, int64_t early_exp)
{
    (void)config_ref(f->conf);
    f->fill = cs_calloc(1, sizeof(*f->fill));
    snprintf(f->fill->token, sizeof(f->fill->token), "%s-%llu", fill_daemon_id, (unsigned long long)++fill_seq);
    if (early_exp)
        snprintf(f->fill->early, sizeof(f->fill->early), "%lld", (long long)early_exp);
    f->fill->timer = evtimer_new(cs_base, fill_timer_cb, f);
    f->on_finish = fill_on_finish;
    f->on_free = fill_on_free;
    if (breaker_open_here(f->ns)) {
        /* The open period this daemon learned is not over: no Redis round trip. */
        log_trace(f->key, "fill: the namespace's breaker is open: refused");
        if (early_exp)
            stats_c.early_refresh_failures++;
        fill_finish(f, outcome_error(FILL_BREAKER_ERR));
        flight_put(f);
        return;
    }
    fill_lock(f, false);
}

void fill_start(struct flight *f)
{
    fill_begin(f, 0);
}

void fill_start_early(struct flight *f, int64_t exp)
{
    fill_begin(f, exp);
}

/* Answers f's waiters; the number answered goes into the waiters histogram. */
static void fill_finish(struct flight *f, struct outcome *o)
{
    bool refused = o->kind == OC_ERROR && o->err && strcmp(o->err, FILL_BREAKER_ERR) == 0;
    int n = flight_finish(f, o);

    if (refused)
        stats_c.breaker_refused += (uint64_t)n;
    if (n)
        stats_observe(SH_WAITERS, (uint64_t)n);
}

/* Finish with what Redis holds, if it holds a usable record: a hash with a
 * valid __exp, of this namespace's shape (or a not-found sentinel), and
 * fresh by Redis's clock when stale records are possible (grace). */
static bool fill_take_reply(struct flight *f, const redisReply *rep)
{
    struct outcome *o;
    struct record rec;
    struct record_meta m;
    int64_t now;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return false;
    if (!record_reply_meta(rep, &m) || (!m.nf && m.body != (f->ns->format == NS_RAW)))
        return false;           /* not ours, or the other format's: overwrite it */
    /* Fresh by Redis's clock: the lock script's own word when it just said
     * so (our estimate of Redis's time may run a little ahead, and the
     * record would be chased again and again), else our estimate. */
    now = fill_redis_now_ms();
    if (f->fill->lock_now && f->fill->lock_now < now)
        now = f->fill->lock_now;
    if (m.exp <= now)
        return false;           /* not fresh: a refresh still under way, or a record its lock keeps */
    record_from_reply(&rec, rep);
    o = outcome_new(rec.nf ? OC_NOTFOUND : OC_RECORD);
    o->rec = rec;
    fill_finish(f, o);
    return true;
}

static void fill_arm(struct flight *f)
{
    int64_t left = f->fill->deadline - cs_mono_ms();
    struct timeval tv;

    if (left > f->ns->c.v[CK_LOCK_POLL])
        left = f->ns->c.v[CK_LOCK_POLL];
    if (left < 0)
        left = 0;
    cs_ms_tv(&tv, left);
    evtimer_add(f->fill->timer, &tv);
}

/* The lock is held by `holder`. Each holder gets lock_ttl_ms from when we
 * first saw it, so a fill that took over from a failed or expired one is
 * waited for, not fetched alongside; all of it within the reply bound
 * (docs/design.md section 6: lock_ttl_ms + upstream_timeout_ms of waiting). At the deadline:
 * a holder we waited lock_ttl_ms on is stuck, and we fetch for our waiters
 * storing nothing (lock timeout); a younger one is still fetching, and we
 * answer -TRYAGAIN rather than read the upstream beside it.
 * Returns true when the flight has moved on (fetching or finished). */
static bool fill_watch(struct flight *f, const char *holder)
{
    const struct cs_cache_conf *c = &f->ns->c;
    int64_t mono = cs_mono_ms(), cap, dl;

    if (f->fill->holder_seen == 0 || strcmp(f->fill->holder, holder) != 0) {
        snprintf(f->fill->holder, sizeof(f->fill->holder), "%s", holder);
        f->fill->holder_seen = mono;
        cap = f->fill->wait_start + c->v[CK_LOCK_TTL] + c->v[CK_UP_TIMEOUT];
        dl = mono + c->v[CK_LOCK_TTL];
        f->fill->deadline = dl < cap ? dl : cap;
        if (f->fill->deadline > mono && f->fill->timed_out) {
            f->fill->timed_out = false;           /* the timer stopped at the old deadline */
            fill_arm(f);
        }
    }
    if (!f->fill->timed_out)
        return false;
    if (mono - f->fill->holder_seen >= c->v[CK_LOCK_TTL]) {
        fill_fetch(f, SM_NONE);
        return true;
    }
    log_limited(LOG_INFO, "fill %s: another daemon's fill is still under way at the reply bound", f->key);
    fill_finish(f, outcome_error("TRYAGAIN fill under way in another daemon"));
    flight_put(f);
    return true;
}

static void fill_lock_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;
    bool poll = f->fill->state != FS_LOCKING;
    long long code = -1, now = 0;
    const char *holder = "";
    struct outcome *o;

    f->ops--;
    f->fill->lock_busy = false;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[1]->type == REDIS_REPLY_INTEGER) {
        code = rep->element[0]->integer;
        now = rep->element[1]->integer;
        fill_clock_sample(now, f->fill->lock_sent_ms);
        f->fill->lock_now = now;
        if (rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_STRING)
            holder = rep->element[2]->str;
    }
    if (f->finished || f->fill->state == FS_FETCHING || cs_exiting) {
        if (code == 1)
            fill_release(f);    /* taken too late to be used: give it back */
        if (cs_exiting && !f->finished)
            fill_finish(f, outcome_error("ERR shutting down"));
        flight_put(f);
        return;
    }
    if (f->fill->early[0] && code != 1 && !f->waiters && !poll) {
        /* Refreshed meanwhile, or another daemon's refresh holds the lock. */
        log_trace(f->key, "lock: early refresh not needed here (code %lld)", code);
        fill_finish(f, outcome_error("TRYAGAIN early refresh dropped"));
        flight_put(f);
        return;
    }
    log_trace(f->key, "lock: %s", code == 1 ? "taken" : code == 2 ? "just filled: re-reading"
              : code == 3 ? "not found, by a fill that stored no sentinel" : code == 0 ? "held by another fill: waiting"
              : "no answer from Redis: fetching, storing nothing");
    switch (code) {
    case 1:
        fill_fetch(f, SM_OWN);
        return;
    case 2:
        if (f->fill->attempts > 3) {
            /* Fresh by the script, unusable by the re-read, again and
             * again: answer from the upstream, storing nothing. */
            fill_fetch(f, SM_NONE);
            return;
        }
        f->fill->woken_by_poll = poll;
        fill_reread(f, true);
        return;
    case 3:
        o = outcome_new(OC_NOTFOUND);
        o->rec.nf = true;
        fill_finish(f, o);
        flight_put(f);
        return;
    case 0:
        if (!poll)
            stats_c.lock_acquisitions_lost++;
        break;
    default:
        fill_fetch(f, SM_NONE);
        return;
    }
    if (!f->fill->suppressed) {
        f->fill->suppressed = true;
        stats_c.stampedes_suppressed++;
        f->fill->wait_start = cs_mono_ms();
        snprintf(f->fill->since, sizeof(f->fill->since), "%lld", now);
    }
    if (fill_watch(f, holder))
        return;
    if (poll)
        return;                 /* the timer polls on */
    f->fill->state = FS_WAITING;
    fill_arm(f);
    if (f->fill->listening)
        fill_reread(f, false);  /* waiting again: see fill_listen */
    else
        fill_listen(f, true);
}

/* Run the lock script: a first or renewed attempt (counted: a record that
 * keeps vanishing under us is chased three times, then fetched), or a poll
 * while waiting. A held lock is waited for however often it changes hands,
 * within the reply bound (fill_watch). One at a time: the reply decides
 * what follows. */
static void fill_lock(struct flight *f, bool poll)
{
    char ttl[24];
    const char *fmt = f->ns->format == NS_RAW ? "raw" : "hash";
    const char *argv[6] = { f->key, f->fill->token, ttl, fmt, f->fill->since, f->fill->early };
    size_t lens[6];

    if (cs_exiting) {
        fill_finish(f, outcome_error("ERR shutting down"));
        flight_put(f);
        return;
    }
    if (f->fill->lock_busy)
        return;
    if (!poll)
        f->fill->attempts++;
    snprintf(ttl, sizeof(ttl), "%lld", f->ns->c.v[CK_LOCK_TTL]);
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    lens[0] = f->keylen;
    if (!poll)
        f->fill->state = FS_LOCKING;
    f->fill->lock_sent_ms = cs_now_ms();
    if (scripts_eval(SCRIPT_LOCK, fill_lock_cb, f, 1, 6, argv, lens) != CS_OK) {
        fill_fetch(f, SM_NONE);
        return;
    }
    f->fill->lock_busy = true;
    f->ops++;
}

static void fill_reread_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;
    bool notice = f->fill->state == FS_READING;

    f->ops--;
    /* A re-read that comes back after the lock timeout took over: the
     * fetch under way answers. */
    if (f->finished || f->fill->state == FS_FETCHING) {
        flight_put(f);
        return;
    }
    if (fill_take_reply(f, rep)) {
        if (f->fill->suppressed) {  /* another daemon's fill answered us */
            struct stats_ns *n = stats_ns_get(f->ns->name, f->ns->namelen);
            if (notice && !f->fill->woken_by_poll) {
                stats_c.fills_woken_by_notice++;
                n->waits[SW_NOTICE]++;
            } else {
                stats_c.fills_woken_by_poll++;
                n->waits[SW_POLL]++;
            }
        }
        flight_put(f);
        return;
    }
    if (!rep && !rstore_ready_for(f->key, f->keylen) && (f->fill->state == FS_WAITING || f->fill->state == FS_READING)) {
        fill_fetch(f, SM_NONE);     /* Redis went away while we waited */
        return;
    }
    /* Still missing after a fill notice: that fill stored nothing (an
     * upstream error) or was invalidated; try to take the lock ourselves. */
    if (notice)
        fill_lock(f, false);
}

static void fill_reread(struct flight *f, bool notice)
{
    const char *argv[2] = { "HGETALL", f->key };
    size_t lens[2] = { 7, f->keylen };

    if (notice)
        f->fill->state = FS_READING;
    if (rstore_cmd(fill_reread_cb, f, 2, argv, lens) != CS_OK) {
        fill_fetch(f, SM_NONE);
        return;
    }
    f->ops++;
}

void fill_notice(struct flight *f)
{
    if (f->fill->state == FS_WAITING)
        fill_reread(f, true);
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct flight *f = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (f->fill->state != FS_WAITING && f->fill->state != FS_READING)
        return;
    if (f->fill->deadline - cs_mono_ms() <= 0) {
        if (!f->fill->timed_out) {
            log_limited(LOG_INFO, "fill %s: no fill notice within lock_ttl_ms, fetching it ourselves", f->key);
            stats_c.lock_timeouts++;
            stats_ns_get(f->ns->name, f->ns->namelen)->waits[SW_LOCK_TIMEOUT]++;
            f->fill->timed_out = true;
        }
        /* Take the lock with our own token, or fetch without storing: the
         * reply decides (the poll under way, if there is one). */
        fill_lock(f, true);
        return;
    }
    /* The poll runs the lock script, not a plain read: a fill that has
     * gone (invalidated, released without a notice we heard) frees the
     * lock, and we take it instead of waiting out lock_ttl_ms. */
    fill_lock(f, true);
    if (f->fill->state == FS_WAITING || f->fill->state == FS_READING)
        fill_arm(f);
}

static void fill_released_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;

    CS_UNUSED(rep);
    f->ops--;
    if (fill_releasing > 0 && --fill_releasing == 0 && cs_exiting)
        event_base_loopbreak(cs_base);
    flight_put(f);
}

static void fill_store_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;

    f->ops--;
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
        log_debug("fill %s: lock lost (invalidated or timed out): not stored", f->key);
    } else if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* e.g. -OOM: nothing was written; free the lock for the others. */
        log_limited(LOG_WARNING, "fill %s: Redis refused the store: %s", f->key, rep->str);
        if (!cs_exiting)
            fill_release(f);
    }
    flight_put(f);
}
/* /metrics's result of a fetch that was sent (UP_BUSY never was): a
 * response that cannot be framed counts as a bad body, a head over its
 * limit as too large. */
static void fill_count_upstream(const struct flight *f, const struct up_reply *up, bool usable)
{
    static const enum stats_up_result by_kind[] = {
        [UP_OK] = SU_OK, [UP_NOTFOUND] = SU_NOT_FOUND, [UP_STATUS] = SU_STATUS_OTHER, [UP_TIMEOUT] = SU_TIMEOUT,
        [UP_UNREACHABLE] = SU_CONNECT, [UP_TOOBIG] = SU_TOO_LARGE, [UP_BAD] = SU_BAD_BODY, [UP_HEADERS] = SU_TOO_LARGE,
    };
    enum stats_up_result r;

    _Static_assert(CS_ARRAY_LEN(by_kind) == UP_BUSY, "a result for every kind of fetch that was sent");
    if (up->kind == UP_BUSY)
        return;             /* read before this check, by_kind[UP_BUSY] was past its end */
    r = by_kind[up->kind];
    if (up->kind == UP_STATUS && up->status >= 500 && up->status <= 599)
        r = SU_STATUS_5XX;
    if (!usable)
        r = SU_BAD_BODY;
    stats_upstream_done(f->ns->name, f->ns->namelen, r, up->us, up->bytes);
}

static struct outcome *fill_outcome(struct flight *f, const struct up_reply *up)
{
    struct outcome *o;
    char err[256], msg[64];

    if (up->kind != UP_OK)
        fill_count_upstream(f, up, true);
    switch (up->kind) {
    case UP_OK:
        o = outcome_new(OC_RECORD);
        if (f->ns->format == NS_RAW) {
            record_from_raw(&o->rec, up->body, up->len);
        } else if (record_from_json(&o->rec, up->body, up->len, err, sizeof(err)) != CS_OK) {
            log_limited(LOG_WARNING, "upstream body for %s is not usable: %s", f->key, err);
            stats_c.upstream_errors++;
            fill_count_upstream(f, up, false);
            outcome_unref(o);
            return outcome_error("UPSTREAM bad body");
        }
        fill_count_upstream(f, up, true);
        return o;
    case UP_NOTFOUND:
        o = outcome_new(OC_NOTFOUND);
        o->rec.nf = true;
        return o;
    case UP_STATUS:
        snprintf(msg, sizeof(msg), "UPSTREAM status %d", up->status);
        return outcome_error(msg);
    case UP_TIMEOUT:
        return outcome_error("UPSTREAM timeout");
    case UP_TOOBIG:
        return outcome_error("UPSTREAM body too large");
    case UP_BAD:
        return outcome_error("UPSTREAM bad response");
    case UP_HEADERS:
        return outcome_error("UPSTREAM headers too large");
    case UP_BUSY:
        return outcome_error("TRYAGAIN upstream busy");
    case UP_UNREACHABLE:
        break;
    }
    return outcome_error("UPSTREAM unreachable");
}

/* Store o under f's lock: the hash (with __nf or __body); fill.lua adds
 * __exp from Redis's clock. */
static void fill_store(struct flight *f, struct outcome *o)
{
    const struct cs_cache_conf *c = &f->ns->c;
    struct record *rec = &o->rec;
    int n = 6 + 2 * rec->n + 6;
    struct rstore_args a = { cs_malloc(sizeof(*a.argv) * (size_t)n), cs_malloc(sizeof(*a.lens) * (size_t)n), 0 };
    char fresh[24], pttl[24], mark[24], delta[24], chan[CS_CHAN_MAX];
    size_t chanlen;
    long long ttl_ms, keep_ms;

    if (o->kind == OC_NOTFOUND) {
        /* negative_ttl_s = 0: no sentinel; the script leaves a short marker
         * in the lock key instead, so daemons already waiting share this
         * answer rather than asking the upstream again. */
        ttl_ms = keep_ms = c->v[CK_NEG_TTL] * 1000;
    } else {
        double u = (double)random() / 2147483647.0;
        ttl_ms = (long long)((double)c->v[CK_TTL] * 1000.0 * (1.0 + u * (double)c->v[CK_JITTER] / 100.0));
        keep_ms = ttl_ms + c->v[CK_GRACE] * 1000;
    }
    rec->exp_ms = fill_redis_now_ms() + ttl_ms;
    snprintf(fresh, sizeof(fresh), "%lld", ttl_ms);
    snprintf(pttl, sizeof(pttl), "%lld", keep_ms);
    snprintf(mark, sizeof(mark), "%lld", c->v[CK_LOCK_TTL]);
    chanlen = cs_key_channel(chan, f->conf->key_prefix, f->key, f->keylen);
    rstore_arg(&a, f->key, f->keylen);
    rstore_arg(&a, f->fill->token, strlen(f->fill->token));
    rstore_arg(&a, fresh, strlen(fresh));
    rstore_arg(&a, pttl, strlen(pttl));
    rstore_arg(&a, chan, chanlen);
    rstore_arg(&a, mark, strlen(mark));
    if (o->kind == OC_NOTFOUND) {
        rstore_arg(&a, "__nf", 4);
        rstore_arg(&a, "1", 1);
    } else if (rec->has_body) {
        rstore_arg(&a, "__body", 6);
        rstore_arg(&a, rec->body.p, rec->body.len);
    }
    if (o->kind != OC_NOTFOUND) {
        /* For the early refresh's draw (xfetch.c). */
        snprintf(delta, sizeof(delta), "%lld", (long long)f->fill->delta_ms);
        rstore_arg(&a, "__delta", 7);
        rstore_arg(&a, delta, strlen(delta));
    }
    for (int i = 0; i < rec->n; i++) {
        rstore_arg(&a, rec->f[i].p, rec->f[i].len);
        rstore_arg(&a, rec->v[i].p, rec->v[i].len);
    }
    if (scripts_eval(SCRIPT_FILL, fill_store_cb, f, 1, a.argc, a.argv, a.lens) == CS_OK)
        f->ops++;
    free(a.argv);
    free(a.lens);
}

static void fill_release(struct flight *f)
{
    char chan[CS_CHAN_MAX];
    const char *argv[3] = { f->key, f->fill->token, chan };
    size_t lens[3] = { f->keylen, strlen(f->fill->token), 0 };

    lens[2] = cs_key_channel(chan, f->conf->key_prefix, f->key, f->keylen);
    if (scripts_eval(SCRIPT_RELEASE, fill_released_cb, f, 1, 3, argv, lens) == CS_OK) {
        f->ops++;
        if (cs_exiting)
            fill_releasing++;
    }
}

static void fill_late_released_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

/* A lock script whose reply came after its deadline may still have taken
 * the lock in Redis ({1, Redis ms}): its flight has moved on, so hand the
 * lock back (and wake the waiters) instead of letting every daemon wait
 * lock_ttl_ms for it. ARGS: KEYS[1] the record, ARGV[1] the token. */
void fill_lock_late(const redisReply *r, int nargs, const struct cs_str *args)
{
    const char *prefix = cs_conf->key_prefix;
    struct cs_str key = nargs >= 2 ? args[0] : (struct cs_str){ NULL, 0 };
    char chan[CS_CHAN_MAX];
    const char *argv[3] = { key.p, nargs >= 2 ? args[1].p : NULL, chan };
    size_t lens[3] = { key.len, nargs >= 2 ? args[1].len : 0, 0 };

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[0]->integer != 1 || nargs < 2 || key.len >= CS_CHAN_MAX - 6 || key.len < strlen(prefix))
        return;
    lens[2] = cs_key_channel(chan, prefix, key.p, key.len);
    log_info("redis: lock of %.*s taken after its command timed out: releasing it", (int)key.len, key.p);
    if (scripts_eval(SCRIPT_RELEASE, fill_late_released_cb, NULL, 1, 3, argv, lens) != CS_OK)
        log_info("redis: cannot release the lock of %.*s", (int)key.len, key.p);
}

static void fill_fetched_cb(void *arg, const struct up_reply *up)
{
    struct flight *f = arg;
    struct outcome *o;

    f->ops--;
    f->fill->delta_ms = up->us >= 1000 ? (int64_t)(up->us / 1000) : 1;
    if (breaker_on(f->ns) && up->kind != UP_BUSY && !cs_exiting)
        breaker_report(f->conf, f->ns, fill_breaker_result(up));
    o = fill_outcome(f, up);
    if (f->fill->early[0] && o->kind == OC_ERROR)
        stats_c.early_refresh_failures++;
    log_trace(f->key, "fill: the upstream's answer is %s; %s",
              o->kind == OC_RECORD ? "a record" : o->kind == OC_NOTFOUND ? "not found" : "an error",
              cs_exiting || f->fill->store_mode != SM_OWN ? "storing nothing"
              : o->kind != OC_ERROR ? "storing it" : "releasing the lock");
    /* Store before answering: a client's next read, pipelined on the same
     * Redis connection, then comes after the record. */
    if (!cs_exiting && f->fill->store_mode == SM_OWN) {
        if (o->kind != OC_ERROR)
            fill_store(f, o);
        else
            fill_release(f);
    }
    fill_finish(f, o);
    flight_put(f);
}

/* 5xx, a timeout, no connection: the upstream is failing. Anything else
 * it answered (a 404, a 4xx, a body we cannot use) shows it is up. */
static enum breaker_result fill_breaker_result(const struct up_reply *up)
{
    if (up->kind == UP_TIMEOUT || up->kind == UP_UNREACHABLE ||
        (up->kind == UP_STATUS && up->status >= 500 && up->status <= 599))
        return BR_FAIL;
    return BR_OK;
}

static void fill_send(struct flight *f)
{
    f->ops++;
    stats_c.fills_led++;
    stats_ns_get(f->ns->name, f->ns->namelen)->fills_led++;
    log_trace(f->key, "fetch: from the upstream, %s",
              f->fill->store_mode == SM_OWN ? "to store under our lock" : "storing nothing");
    upstream_fetch(f->ns, f->id, f->idlen, fill_fetched_cb, f);
}

/* The breaker's word on our fetch: send it, or refuse it (the lock given
 * back, the record left as it is). */
static void fill_gate_cb(void *priv, bool go)
{
    struct flight *f = priv;

    f->ops--;
    if (f->finished) {
        flight_put(f);
        return;
    }
    if (cs_exiting || !go) {
        log_trace(f->key, "fetch: %s", cs_exiting ? "shutting down" : "the namespace's breaker is open: refused");
        if (f->fill->store_mode == SM_OWN && !cs_exiting)
            fill_release(f);
        if (f->fill->early[0] && !cs_exiting)
            stats_c.early_refresh_failures++;
        fill_finish(f, outcome_error(cs_exiting ? "ERR shutting down" : FILL_BREAKER_ERR));
        flight_put(f);
        return;
    }
    fill_send(f);
}

static void fill_fetch(struct flight *f, enum store_mode mode)
{
    if (cs_exiting) {
        fill_finish(f, outcome_error("ERR shutting down"));
        flight_put(f);
        return;
    }
    evtimer_del(f->fill->timer);
    fill_listen(f, false);      /* from now on no notice changes what it does */
    f->fill->state = FS_FETCHING;
    f->fill->store_mode = mode;
    if (!breaker_on(f->ns)) {
        fill_send(f);
        return;
    }
    f->ops++;
    breaker_ask(f->conf, f->ns, fill_gate_cb, f);
}

/* Shutdown: a fill lock we hold would make every other daemon wait up to
 * lock_ttl_ms for a fetch that will never be stored; give it back. */
static void fill_shutdown_one(struct flight *f)
{
    if (f->fill->state == FS_FETCHING && f->fill->store_mode == SM_OWN) {
        f->fill->store_mode = SM_NONE;
        fill_release(f);
    }
}

void fill_shutdown(int timeout_ms)
{
    struct timeval tv;

    if (!rstore_ready())
        return;
    flight_foreach(fill_shutdown_one);
    if (fill_releasing == 0)
        return;
    log_info("shutdown: releasing %d fill lock(s)", fill_releasing);
    /* Run the loop until the releases are answered (or time runs out). */
    cs_ms_tv(&tv, timeout_ms);
    event_base_loopexit(cs_base, &tv);
    event_base_dispatch(cs_base);
}
