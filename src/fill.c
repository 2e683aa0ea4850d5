/* fill.c - how a flight gets its record (SPEC section 5, steps 3-5):
 *
 *   lock ──1──> fetch ──> store+unlock+publish ──> finish
 *     │──2──> re-read (someone just filled it)
 *     └──0──> wait: fill notice or poll re-reads; at lock_ttl_ms, fetch
 *             ourselves and store only if the lock is free then.
 *
 * Redis unreachable at any step: fetch from the upstream and store nothing.
 * A flight never depends on the client that started it. */
#include "core.h"
#include "fill.h"
#include "cache.h"
#include "config.h"
#include "flight.h"
#include "log.h"
#include "record.h"
#include "rstore.h"
#include "stats.h"
#include "upstream.h"

#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum store_mode { SM_NONE, SM_OWN, SM_TAKE };

static char fill_daemon_id[17];
static uint64_t fill_seq;

static void fill_lock(struct flight *f);
static void fill_reread(struct flight *f, bool notice);
static void fill_fetch(struct flight *f, enum store_mode mode);

void fill_init(void)
{
    unsigned char rnd[8];

    evutil_secure_rng_get_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(fill_daemon_id + 2 * i, 3, "%02x", rnd[i]);
    srandom((unsigned)rnd[0] << 24 | (unsigned)rnd[1] << 16 | (unsigned)rnd[2] << 8 | rnd[3]);
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg);

void fill_start(struct flight *f)
{
    snprintf(f->token, sizeof(f->token), "%s-%llu", fill_daemon_id, (unsigned long long)++fill_seq);
    f->timer = evtimer_new(cs_base, fill_timer_cb, f);
    fill_lock(f);
}

/* Finish with what Redis holds, if it holds a usable record. */
static bool fill_take_reply(struct flight *f, const redisReply *rep)
{
    struct outcome *o;
    struct record rec;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return false;
    record_from_reply(&rec, rep);
    if (!rec.exp_ms || (f->ns->c.v[CK_GRACE] > 0 && rec.exp_ms <= cs_now_ms())) {
        record_free(&rec);      /* stale: another refresh is still under way */
        return false;
    }
    o = outcome_new(rec.nf ? OC_NOTFOUND : OC_RECORD);
    o->rec = rec;
    flight_finish(f, o);
    return true;
}

static void fill_lock_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;

    f->ops--;
    if (f->finished) {
        flight_put(f);
        return;
    }
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        fill_fetch(f, SM_NONE);
        return;
    }
    if (rep->integer == 1) {
        fill_fetch(f, SM_OWN);
    } else if (rep->integer == 2) {
        fill_reread(f, true);
    } else {
        struct timeval tv;
        if (!f->suppressed) {
            f->suppressed = true;
            stats.stampedes_suppressed++;
            f->deadline = cs_mono_ms() + f->ns->c.v[CK_LOCK_TTL];
        }
        f->state = FS_WAITING;
        tv.tv_sec = f->ns->c.v[CK_LOCK_POLL] / 1000;
        tv.tv_usec = (f->ns->c.v[CK_LOCK_POLL] % 1000) * 1000;
        evtimer_add(f->timer, &tv);
        /* A fill that completed between our miss and our lock attempt
         * published before we waited: one read now catches it. */
        fill_reread(f, false);
    }
}

static void fill_lock(struct flight *f)
{
    char ttl[24], now[24];
    const char *argv[5] = { f->key, f->lock, f->token, ttl, now };
    size_t lens[5];

    if (cs_exiting) {
        flight_finish(f, outcome_error("ERR shutting down"));
        flight_put(f);
        return;
    }
    if (++f->attempts > 3) {
        /* Records keep vanishing under us (tiny TTLs, invalidations): stop
         * chasing Redis and answer from the upstream. */
        fill_fetch(f, SM_NONE);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%lld", f->ns->c.v[CK_LOCK_TTL]);
    snprintf(now, sizeof(now), "%lld", (long long)cs_now_ms());
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    f->state = FS_LOCKING;
    if (rstore_eval(RS_LOCK, fill_lock_cb, f, 2, 5, argv, lens) != CS_OK) {
        fill_fetch(f, SM_NONE);
        return;
    }
    f->ops++;
}

static void fill_reread_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;
    bool notice = f->state == FS_READING;

    f->ops--;
    /* A re-read that comes back after the lock timeout took over: the
     * fetch under way answers. */
    if (f->finished || f->state == FS_FETCHING) {
        flight_put(f);
        return;
    }
    if (fill_take_reply(f, rep)) {
        flight_put(f);
        return;
    }
    if (!rep && !rstore_ready() && (f->state == FS_WAITING || f->state == FS_READING)) {
        fill_fetch(f, SM_NONE);     /* Redis went away while we waited */
        return;
    }
    /* Still missing after a fill notice: that fill stored nothing (an
     * upstream error) or was invalidated; try to take the lock ourselves. */
    if (notice)
        fill_lock(f);
}

static void fill_reread(struct flight *f, bool notice)
{
    char key[CACHE_KEY_MAX];
    const char *argv[2] = { "HGETALL", key };
    size_t lens[2] = { 7, f->keylen };

    memcpy(key, f->key, f->keylen);
    if (notice)
        f->state = FS_READING;
    if (rstore_cmd(fill_reread_cb, f, 2, argv, lens) != CS_OK) {
        fill_fetch(f, SM_NONE);
        return;
    }
    f->ops++;
}

void fill_notice(struct flight *f)
{
    if (f->state == FS_WAITING)
        fill_reread(f, true);
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct flight *f = arg;
    struct timeval tv;
    int64_t left;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (f->state != FS_WAITING && f->state != FS_READING)
        return;
    left = f->deadline - cs_mono_ms();
    if (left <= 0) {
        log_info("fill %s: no fill notice within lock_ttl_ms, fetching it ourselves", f->key);
        stats.lock_timeouts++;
        fill_fetch(f, SM_TAKE);
        return;
    }
    if (f->state == FS_WAITING)
        fill_reread(f, false);
    if (left > f->ns->c.v[CK_LOCK_POLL])
        left = f->ns->c.v[CK_LOCK_POLL];
    tv.tv_sec = left / 1000;
    tv.tv_usec = (left % 1000) * 1000;
    evtimer_add(f->timer, &tv);
}

static void fill_store_cb(void *priv, const redisReply *rep)
{
    struct flight *f = priv;

    f->ops--;
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        log_debug("fill %s: lock lost (invalidated or timed out): not stored", f->key);
    flight_put(f);
}

static struct outcome *fill_outcome(struct flight *f, const struct up_reply *up)
{
    struct outcome *o;
    char err[256], msg[64];

    switch (up->kind) {
    case UP_OK:
        o = outcome_new(OC_RECORD);
        if (f->ns->format == NS_RAW) {
            record_from_raw(&o->rec, up->body, up->len);
        } else if (record_from_json(&o->rec, up->body, up->len, err, sizeof(err)) != CS_OK) {
            log_info("upstream body for %s is not usable: %s", f->key, err);
            stats.upstream_errors++;
            outcome_unref(o);
            return outcome_error("UPSTREAM bad body");
        }
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

/* Store o under f's lock: the hash with __exp (and __nf or __body). */
static void fill_store(struct flight *f, struct outcome *o, enum store_mode mode)
{
    const struct cs_cache_conf *c = &f->ns->c;
    struct record *rec = &o->rec;
    int n = 4 + 2 * rec->n + 6, argc = 0;
    const char **argv = cs_malloc(sizeof(*argv) * (size_t)n);
    size_t *lens = cs_malloc(sizeof(*lens) * (size_t)n);
    char pttl[24], exp[24], chan[300];
    long long ttl_ms, keep_ms;

    if (o->kind == OC_NOTFOUND) {
        /* negative_ttl_s = 0: the script's PEXPIRE 0 deletes the record, so
         * a stale one goes and nothing new stays; the notice still wakes
         * other daemons. */
        ttl_ms = keep_ms = c->v[CK_NEG_TTL] * 1000;
    } else {
        double u = (double)random() / 2147483647.0;
        ttl_ms = (long long)((double)c->v[CK_TTL] * 1000.0 * (1.0 + u * (double)c->v[CK_JITTER] / 100.0));
        keep_ms = ttl_ms + c->v[CK_GRACE] * 1000;
    }
    rec->exp_ms = cs_now_ms() + ttl_ms;
    snprintf(pttl, sizeof(pttl), "%lld", keep_ms);
    snprintf(exp, sizeof(exp), "%lld", (long long)rec->exp_ms);
    snprintf(chan, sizeof(chan), "%sfills", f->conf->key_prefix);
#define ARG(p, l) (argv[argc] = (p), lens[argc++] = (l))
    ARG(f->key, f->keylen);
    ARG(f->lock, f->locklen);
    ARG(f->token, strlen(f->token));
    ARG(mode == SM_TAKE ? "take" : "own", mode == SM_TAKE ? 4 : 3);
    ARG(pttl, strlen(pttl));
    ARG(chan, strlen(chan));
    ARG("__exp", 5);
    ARG(exp, strlen(exp));
    if (o->kind == OC_NOTFOUND) {
        ARG("__nf", 4);
        ARG("1", 1);
    } else if (rec->has_body) {
        ARG("__body", 6);
        ARG(rec->body.p, rec->body.len);
    }
    for (int i = 0; i < rec->n; i++) {
        ARG(rec->f[i].p, rec->f[i].len);
        ARG(rec->v[i].p, rec->v[i].len);
    }
#undef ARG
    if (rstore_eval(RS_FILL, fill_store_cb, f, 2, argc, argv, lens) == CS_OK)
        f->ops++;
    free(argv);
    free(lens);
}

static void fill_release(struct flight *f)
{
    char chan[300];
    const char *argv[4] = { f->lock, f->token, chan, f->key };
    size_t lens[4] = { f->locklen, strlen(f->token), 0, f->keylen };

    lens[2] = (size_t)snprintf(chan, sizeof(chan), "%sfills", f->conf->key_prefix);
    if (rstore_eval(RS_RELEASE, fill_store_cb, f, 1, 4, argv, lens) == CS_OK)
        f->ops++;
}

static void fill_fetched_cb(void *arg, const struct up_reply *up)
{
    struct flight *f = arg;
    struct outcome *o;

    f->ops--;
    o = fill_outcome(f, up);
    /* Store before answering: a client's next read, pipelined on the same
     * Redis connection, then comes after the record. */
    if (!cs_exiting && f->store_mode != SM_NONE) {
        if (o->kind != OC_ERROR)
            fill_store(f, o, (enum store_mode)f->store_mode);
        else if (f->store_mode == SM_OWN)
            fill_release(f);
    }
    flight_finish(f, o);
    flight_put(f);
}

static void fill_fetch(struct flight *f, enum store_mode mode)
{
    if (cs_exiting) {
        flight_finish(f, outcome_error("ERR shutting down"));
        flight_put(f);
        return;
    }
    evtimer_del(f->timer);
    f->state = FS_FETCHING;
    f->store_mode = mode;
    f->ops++;
    upstream_fetch(f->ns, f->id, f->idlen, fill_fetched_cb, f);
}
