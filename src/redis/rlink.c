/* SPDX-License-Identifier: BSD-3-Clause */
/* rlink.c - one Redis link: its commands and their replies, set-up (AUTH,
 * SELECT, scripts, ROLE or SUBSCRIBE), deadlines, probes and reconnects.
 * The topologies (rtopo.h) decide which links exist and where each
 * command goes (one server, the Sentinel's primary, the cluster's nodes).
 *
 * rio.c owns the connection: it writes what we queue and hands us each
 * reply, and says when the connect is done or the connection is lost.
 * Replies on one connection come in the order of the commands, so every
 * command sent is on the link's `sent` FIFO until its reply comes, and
 * the one reply goes to the first. A subscriber's pub/sub messages are
 * told apart by their shape.
 *
 * Redis gives no connect or command timeouts, so each link has one timer,
 * armed for its next deadline (and, while it waits for anything, at least
 * every RLINK_WATCH_MS), that enforces them:
 *   - a command with no reply after command_timeout_ms fails alone: its
 *     callback runs with NULL now, and its late reply is dropped when it
 *     comes (the rcmd stays on `sent` until then, marked abandoned), or,
 *     a script's, handed to the script's owner (rscript_late);
 *   - a link that waits for replies and has read nothing at all for
 *     RLINK_DEAD_TIMEOUTS x command_timeout_ms is dead: it is dropped, which
 *     fails what is pending, and reconnected with capped exponential backoff;
 *   - a link quiet for RLINK_PROBE_MS gets a probe (PING on the command link,
 *     SUBSCRIBE again on the subscriber), so a half-open one is found too;
 *   - time our own loop spends stalled does not count (see rlink_now).
 * An idle link's timer fires only for its probe: nothing ticks while idle.
 * Connecting (resolving, the connect, reconnect timers) is in rdial.c. */
#include "core.h"
#include "rstore.h"
#include "rlink_int.h"
#include "tlserr.h"
#include "rscript.h"
#include "log.h"
#include "resp.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rlink_list rlink_all = LIST_HEAD_INITIALIZER(rlink_all);
static const struct timeval rlink_now_tv = { 0, 0 };
static int64_t rlink_active;    /* cs_mono_ms of the last thing a link did: sent, read, fired */
static int64_t rlink_stalled;   /* ms of our own stalls, not counted against Redis */
static const struct rstore_conf *rlink_conf;   /* rlink_init: timeouts, AUTH, SELECT */

/* Remembers why a link failed, in the words /healthz shows: "connection
 * refused", "auth failed: WRONGPASS ...". */
void rlink_note(struct rlink *l, const char *prefix, const char *why)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s%s", prefix, why ? why : "");
    if (l->last_error[0] >= 'A' && l->last_error[0] <= 'Z' && l->last_error[1] >= 'a')
        l->last_error[0] = (char)(l->last_error[0] - 'A' + 'a');
}

/* Called on a gap since the last thing any link did. If some link's timer
 * is more than RLINK_STALL_MS - RLINK_WATCH_MS overdue, our loop did not run
 * (blocked, or the process stopped) and the gap counts as RLINK_STALL_MS.
 * The gap began at the last thing a link did, but no earlier than
 * RLINK_STALL_MS before the missed timer: for a link that waits (looked at
 * every RLINK_WATCH_MS) the two agree, and an idle link's late probe does
 * not make its whole quiet spell a stall. */
static void rlink_stall(int64_t mono)
{
    int64_t start = INT64_MAX;
    const struct rlink *l;

    LIST_FOREACH(l, &rlink_all, all) {
        int64_t t = l->due > rlink_active ? l->due : rlink_active;
        if (l->due && mono - t > RLINK_STALL_MS - RLINK_WATCH_MS && l->due - RLINK_STALL_MS < start)
            start = l->due - RLINK_STALL_MS;
    }
    if (start == INT64_MAX)
        return;                 /* idle: nothing was due */
    if (start < rlink_active)
        start = rlink_active;
    if (mono - start > RLINK_STALL_MS) {
        log_debug("our loop stalled for %lld ms: not counted against Redis", (long long)(mono - start));
        rlink_stalled += mono - start - RLINK_STALL_MS;
    }
}

/* Milliseconds as Redis deadlines see them: the monotonic clock less the
 * time our own loop was stalled (rlink_stall), found before anything is
 * stamped after the stall. Replies that arrived meanwhile are in our
 * socket; they must not be blamed on Redis. */
static int64_t rlink_now_at(int64_t mono_ms)
{
    if (mono_ms - rlink_active > RLINK_STALL_MS - RLINK_WATCH_MS)
        rlink_stall(mono_ms);
    if (mono_ms > rlink_active)
        rlink_active = mono_ms;
    return mono_ms - rlink_stalled;
}

int64_t rlink_now(void)
{
    return rlink_now_at(cs_mono_ms());
}

static long long rlink_dead_ms(void)
{
    long long ms = RLINK_DEAD_TIMEOUTS * rlink_conf->command_timeout_ms;

    return ms < RLINK_DEAD_MIN_MS ? RLINK_DEAD_MIN_MS : ms;
}

/* The link's timer fires at AT (rlink_now ms). */
static void rlink_arm_at(struct rlink *l, int64_t at, int64_t now)
{
    int64_t ms = at > now ? at - now : 1;
    struct timeval tv;

    cs_ms_tv(&tv, ms);
    evtimer_add(l->timer, &tv);
    l->due = now + rlink_stalled + ms;
}

/* l now waits for a reply due by DEADLINE: its timer must fire by then,
 * and soon, for the stall check. Mostly just a comparison: a link that
 * already waits is looked at every RLINK_WATCH_MS, so only the first
 * command after a quiet spell moves the timer. */
static void rlink_wake_by(struct rlink *l, int64_t now, int64_t deadline)
{
    int64_t soon = now + RLINK_WATCH_MS, latest = now + RLINK_STALL_MS;

    if (!l->due || l->due - rlink_stalled > (deadline < latest ? deadline : latest))
        rlink_arm_at(l, deadline < soon ? deadline : soon, now);
}

void rlink_schedule(struct rlink *l)
{
    struct timeval tv;

    if (cs_exiting)
        return;
    cs_ms_tv(&tv, l->backoff_ms);
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > RLINK_BACKOFF_MAX_MS ? RLINK_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void rlink_reply(struct rlink *l, struct rcmd *c, const redisReply *reply);

/* The connection is gone (closed already, so nothing is sent on it):
 * every command on the wire fails, its callback run with NULL, and the
 * subscribe marker goes. */
void rlink_forget(struct rlink *l)
{
    struct rcmd *c, *next;
    struct rlisten *ls;

    while ((ls = TAILQ_FIRST(&l->listens)) != NULL) {
        TAILQ_REMOVE(&l->listens, ls, q);
        free(ls);
    }

    while ((c = TAILQ_FIRST(&l->sent)) != NULL) {
        TAILQ_REMOVE(&l->sent, c, wire);
        rlink_reply(l, c, NULL);
    }
    for (c = TAILQ_FIRST(&l->pending); c; c = next) {
        next = TAILQ_NEXT(c, q);
        if (c->marker) {
            TAILQ_REMOVE(&l->pending, c, q);
            free(c);
        }
    }
}

void rlink_lost(struct rlink *l)
{
    if (l->hooks && l->hooks->down && !cs_exiting)
        l->hooks->down(l, l->owner);
}

/* Fail the link now: every pending command with it. */
/* LOGGED: the caller said it already. */
static void rlink_drop_as(struct rlink *l, const char *why, bool logged)
{
    if (!rio_live(&l->ev))
        return;
    if (!logged)
        log_warn("%s: %s; reconnecting", l->name, why);
    if (!l->last_error[0] || l->state == RLINK_UP)
        rlink_note(l, "", why);
    rio_close(&l->ev);
    l->state = RLINK_DOWN;
    rlink_forget(l);
    rlink_schedule(l);
    rlink_lost(l);
}

void rlink_drop(struct rlink *l, const char *why)
{
    rlink_drop_as(l, why, false);
}


/* Something was read: the link is alive, and a reply in time ends a run of
 * late ones. */
static void rlink_heard(struct rlink *l, bool in_time)
{
    l->heard = rlink_now_at(cs_clock_us() / 1000);
    if (in_time && l->late) {
        log_notice("%s: replies in time again (%ld command(s) failed by command_timeout_ms)", l->name, l->late);
        l->late = 0;
    }
}

static void rlink_probe_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

/* One more reply is due on l; silence is counted from the first. */
static void rlink_expect(struct rlink *l)
{
    if (l->waiting++ == 0)
        l->heard = rlink_now();
}

static struct rcmd *rlink_cmd_new(void);

/* Sends a command whose reply nobody waits for (a SCRIPT LOAD before a
 * resend): on the wire as abandoned from the start,
 * so its reply is read and dropped. No deadline. */
static int rlink_quiet(struct rlink *l, const char *fmt, size_t len)
{
    struct rcmd *c;

    if (!rio_live(&l->ev) || rio_send(&l->ev, fmt, len) != CS_OK)
        return CS_ERR;
    c = rlink_cmd_new();
    c->link = l;
    c->script = -1;
    c->abandoned = true;
    TAILQ_INSERT_TAIL(&l->sent, c, wire);
    rlink_expect(l);
    return CS_OK;
}

/* Spare command records: one per command in flight is the steady state. */
#define RLINK_SPARE_MAX 256
static struct rcmd *rlink_spare[RLINK_SPARE_MAX];
static int rlink_nspare;

static struct rcmd *rlink_cmd_new(void)
{
    struct rcmd *c = rlink_nspare ? rlink_spare[--rlink_nspare] : cs_malloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    return c;
}

static void rlink_cmd_free(struct rcmd *c)
{
    free(c->fmt);
    if (rlink_nspare < RLINK_SPARE_MAX && !cs_exiting)
        rlink_spare[rlink_nspare++] = c;
    else
        free(c);
}

bool rlink_redirection(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
            strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/* c's reply (NULL: the link went), c already off `sent`. */
static void rlink_reply(struct rlink *l, struct rcmd *c, const redisReply *reply)
{
    l->waiting--;
    if (reply)
        rlink_heard(l, !c->abandoned);
    if (c->abandoned) {
        /* Its callback ran at the deadline; a script's late reply goes
         * to its owner, who may have to undo what it did. */
        if (reply && c->script >= 0 && rio_live(&l->ev))
            rscript_late(c->script, c->fmt, c->fmtlen, reply);
        rlink_cmd_free(c);
        return;
    }
    TAILQ_REMOVE(&l->pending, c, q);
    if (reply)
        stats_observe(SH_REDIS, (uint64_t)(cs_clock_us() - c->sent_us));
    if (reply && reply->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && rio_live(&l->ev)) {
        /* Redis restarted or flushed its scripts: load, then run again. */
        const char *argv[3] = { "SCRIPT", "LOAD", rscript_source(c->script) };
        char *load;
        int len = resp_command(&load, NULL, 0, 3, argv, NULL);
        log_notice("%s: script %s missing (NOSCRIPT), loading it again", l->name, rscript_name(c->script));
        c->retried = true;
        if (len > 0 && rlink_quiet(l, load, (size_t)len) == CS_OK &&
            rio_send(&l->ev, c->fmt, c->fmtlen) == CS_OK) {
            free(load);
            c->sent = rlink_now();     /* a new deadline for the second run */
            l->waiting++;
            TAILQ_INSERT_TAIL(&l->pending, c, q);
            TAILQ_INSERT_TAIL(&l->sent, c, wire);
            rlink_wake_by(l, c->sent, c->sent + rlink_conf->command_timeout_ms + 1);
            return;
        }
        if (len > 0)
            free(load);
    }
    /* A redirection its owner follows is counted there, if it gives up:
     * a reshard is not hundreds of errors. */
    if ((!reply || reply->type == REDIS_REPLY_ERROR) && c->cb != rlink_probe_cb &&
        !((l->flags & RLINK_ROUTED) && rlink_redirection(reply))) {
        stats_c.redis_errors++;
        if (reply)
            log_limited(LOG_WARNING, "%s: error reply: %s", l->name, reply->str);
    }
    c->cb(c->priv, reply);
    rlink_cmd_free(c);
    /* A primary demoted under us (a failover): its owner looks again. */
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0 && l->hooks &&
        l->hooks->readonly && !cs_exiting)
        l->hooks->readonly(l, l->owner);
}

/* Queues fmt on l; owned: fmt is malloc'd and now ours (kept for a script
 * to resend, else freed); not owned: it is copied, the caller keeps it. */
static int rlink_queue(struct rlink *l, rstore_cb cb, void *priv, char *fmt, size_t len, int script, bool owned)
{
    struct rcmd *c;

    if (!rio_live(&l->ev) || l->state < RLINK_HANDSHAKE || rio_send(&l->ev, fmt, len) != CS_OK) {
        if (owned)
            free(fmt);
        return CS_ERR;
    }
    c = rlink_cmd_new();
    c->link = l;
    c->cb = cb;
    c->priv = priv;
    c->sent_us = cs_clock_us();
    c->sent = rlink_now_at(c->sent_us / 1000);
    c->script = script;
    if (owned && script >= 0) {
        c->fmt = fmt;
        c->fmtlen = len;
    } else if (owned) {
        free(fmt);
    }
    rlink_expect(l);
    TAILQ_INSERT_TAIL(&l->pending, c, q);
    TAILQ_INSERT_TAIL(&l->sent, c, wire);
    rlink_wake_by(l, c->sent, c->sent + rlink_conf->command_timeout_ms + 1);
    return CS_OK;
}

int rlink_send_buf(struct rlink *l, rstore_cb cb, void *priv, const char *fmt, size_t len, int script)
{
    char *copy;

    if (script < 0)
        return rlink_queue(l, cb, priv, (char *)fmt, len, script, false);
    copy = cs_malloc(len);      /* kept to send again after NOSCRIPT */
    memcpy(copy, fmt, len);
    return rlink_queue(l, cb, priv, copy, len, script, true);
}

int rlink_send(struct rlink *l, rstore_cb cb, void *priv, int argc, const char **argv,
               const size_t *lens, int script)
{
    char small[512], *fmt;
    int len;

    if (!rio_live(&l->ev) || l->state < RLINK_HANDSHAKE)
        return CS_ERR;
    /* A script's command is kept, to send again after NOSCRIPT; any other
     * is copied to the output buffer at once, so it is built on the stack. */
    len = resp_command(&fmt, script < 0 ? small : NULL, sizeof(small), argc, argv, lens);
    if (len < 0)
        return CS_ERR;
    return rlink_queue(l, cb, priv, fmt, (size_t)len, script, fmt != small);
}

void rlink_evalsha(struct rlink_evalsha *e, int s, int nkeys, int argc, const char **argv,
                   const size_t *lens)
{
    e->argc = argc + 3;
    if (e->argc <= RLINK_EVAL_STACK) {
        e->av = e->av_stack;
        e->al = e->al_stack;
    } else {
        e->av = cs_malloc(sizeof(*e->av) * (size_t)e->argc);
        e->al = cs_malloc(sizeof(*e->al) * (size_t)e->argc);
    }
    e->av[0] = "EVALSHA";
    e->al[0] = 7;
    e->av[1] = rscript_sha(s);
    e->al[1] = 40;
    e->al[2] = (size_t)snprintf(e->nkeys, sizeof(e->nkeys), "%d", nkeys);
    e->av[2] = e->nkeys;
    memcpy(e->av + 3, argv, sizeof(*e->av) * (size_t)argc);
    memcpy(e->al + 3, lens, sizeof(*e->al) * (size_t)argc);
}

void rlink_evalsha_done(struct rlink_evalsha *e)
{
    if (e->av != e->av_stack) {
        free(e->av);
        free(e->al);
    }
    e->av = NULL;
    e->al = NULL;
}

int rlink_eval(struct rlink *n, int s, rstore_cb cb, void *priv, int nkeys, int argc,
               const char **argv, const size_t *lens)
{
    struct rlink_evalsha e;
    int rc;

    if (n->state != RLINK_UP)
        return CS_ERR;
    rlink_evalsha(&e, s, nkeys, argc, argv, lens);
    rc = rlink_send(n, cb, priv, e.argc, e.av, e.al, s);
    rlink_evalsha_done(&e);
    return rc;
}

static void rlink_set_up(struct rlink *l)
{
    l->state = RLINK_UP;
    l->backoff_ms = RLINK_BACKOFF_MIN_MS;
    rlink_arm(l);               /* for its first probe */
    if (l->subscriber)
        log_notice("%s: subscribed to %s", l->name, l->chan);
    else
        log_notice("%s: connected", l->name);
    if (l->hooks && l->hooks->up)
        l->hooks->up(l, l->owner);
}

/* Handshake: AUTH, SELECT, SCRIPT LOAD (or SUBSCRIBE), each checked. */
static void rlink_handshake_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;

    if (!rio_live(&l->ev))
        return;                 /* dropped meanwhile: the drop logged it */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_error("%s: set-up failed: %s", l->name, r ? r->str : "no reply");
        rlink_note(l, r && (strstr(r->str, "WRONGPASS") || strstr(r->str, "NOAUTH") || strstr(r->str, "AUTH"))
                        ? "auth failed: " : "set-up failed: ", r ? r->str : "no reply");
        rlink_drop(l, "set-up failed");
        return;
    }
    if (l->subscriber)
        return;                 /* up once SUBSCRIBE is confirmed */
    if (--l->handshake_left == 0)
        rlink_set_up(l);
}

static void rlink_client_id_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;

    if (rio_live(&l->ev) && r && r->type == REDIS_REPLY_INTEGER)
        l->client_id = r->integer;
    else
        rlink_handshake_cb(l, r);   /* drops the link on an error */
}

/* The scripts are the last replies of the set-up: which one this is
 * follows from how many replies are still due. */
static void rlink_script_loaded_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;
    int i = rscript_count() - l->handshake_left;

    if (rio_live(&l->ev) && r && r->type == REDIS_REPLY_STRING)
        rscript_loaded(i, r->str, r->len);
    rlink_handshake_cb(l, r);
}

/* ROLE's first element says what the server is now: a replica is never
 * written, so it does not come up. */
static void rlink_role_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;
    char why[120];

    if (rio_live(&l->ev) && r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") != 0) {
        snprintf(why, sizeof(why), "not a primary (ROLE says %s)", r->element[0]->str);
        log_warn("%s: %s:%d is %s", l->name, l->host, l->port, why);
        rlink_note(l, "", why);
        rlink_drop(l, why);
        return;
    }
    rlink_handshake_cb(l, r);
}

/* The kinds of pub/sub replies a subscriber gets: 3-element arrays. */
enum rlink_ps { RLINK_PS_NOTPS, RLINK_PS_MESSAGE, RLINK_PS_SUB, RLINK_PS_UNSUB };

static enum rlink_ps rlink_ps_kind(const struct rlink *l, const redisReply *r)
{
    static const struct { const char *name; enum rlink_ps kind; } kinds[] = {
        { "message", RLINK_PS_MESSAGE }, { "smessage", RLINK_PS_MESSAGE }, { "subscribe", RLINK_PS_SUB },
        { "ssubscribe", RLINK_PS_SUB }, { "unsubscribe", RLINK_PS_UNSUB }, { "sunsubscribe", RLINK_PS_UNSUB },
    };

    if (!l->subscriber || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return RLINK_PS_NOTPS;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(r->element[0]->str, kinds[i].name) == 0)
            return kinds[i].kind;
    return RLINK_PS_NOTPS;
}

/* The answer to the oldest channel command on the wire (ERR: refused). */
static void rlink_listened(struct rlink *l, const char *err)
{
    struct rlisten *ls = TAILQ_FIRST(&l->listens);

    TAILQ_REMOVE(&l->listens, ls, q);
    if (l->waiting > 0)
        l->waiting--;
    if (l->hooks && l->hooks->listened)
        l->hooks->listened(l, l->owner, ls->chan, ls->len, ls->on, err);
    free(ls);
}

/* A subscriber's pub/sub reply: a message, the base channel's SUBSCRIBE
 * confirmed (set-up or probe), or a channel command's confirmation. */
static void rlink_message(struct rlink *l, const redisReply *reply, enum rlink_ps kind)
{
    const redisReply *ch = reply->element[1];
    const struct rlisten *ls = TAILQ_FIRST(&l->listens);

    rlink_heard(l, true);
    if (kind == RLINK_PS_MESSAGE) {
        if (l->hooks && l->hooks->message)
            l->hooks->message(l, l->owner, reply);
    } else if (kind == RLINK_PS_SUB && strcmp(ch->str, l->chan) == 0) {
        if (l->state == RLINK_UP) {
            if (l->waiting > 0)
                l->waiting--;   /* a probe's answer */
        } else {
            /* The subscribe confirmation is the end of the handshake. */
            struct rcmd *c = TAILQ_FIRST(&l->pending);
            if (c && c->marker) {
                TAILQ_REMOVE(&l->pending, c, q);
                free(c);
            }
            l->waiting = 0;
            rlink_set_up(l);
        }
    } else if (ls && ls->on == (kind == RLINK_PS_SUB) && ls->len == (size_t)ch->len &&
               memcmp(ls->chan, ch->str, ls->len) == 0) {
        rlink_listened(l, NULL);
    } else if (kind == RLINK_PS_UNSUB && l->hooks && l->hooks->listened) {
        /* Unasked: Redis moved the channel's slot away from this node. */
        l->hooks->listened(l, l->owner, ch->str, (size_t)ch->len, false, "dropped");
    }
}

int rlink_listen(struct rlink *l, bool on, bool plain, const char *chan, size_t len)
{
    static const char *const verbs[2][2] = { { "SUNSUBSCRIBE", "SSUBSCRIBE" }, { "UNSUBSCRIBE", "SUBSCRIBE" } };
    const char *argv[2] = { verbs[plain][on], chan };
    size_t lens[2] = { strlen(argv[0]), len };
    char small[512], *fmt;
    struct rlisten *ls;
    int n, rc;

    if (!l->subscriber || l->state != RLINK_UP || !rio_live(&l->ev))
        return CS_ERR;
    n = resp_command(&fmt, small, sizeof(small), 2, argv, lens);
    if (n < 0)
        return CS_ERR;
    rc = rio_send(&l->ev, fmt, (size_t)n);
    if (fmt != small)
        free(fmt);
    if (rc != CS_OK)
        return CS_ERR;
    ls = cs_malloc(sizeof(*ls) + len);
    ls->on = on;
    ls->len = len;
    memcpy(ls->chan, chan, len);
    TAILQ_INSERT_TAIL(&l->listens, ls, q);
    rlink_expect(l);
    rlink_wake_by(l, rlink_now(), l->heard + rlink_dead_ms() + 1);
    return CS_OK;
}

/* Each reply rio.c reads on l's link: the answer to the oldest command on
 * the wire, or a subscriber's pub/sub message (no command of ours). */
void rlink_on_reply(void *owner, redisReply *r)
{
    struct rlink *l = owner;
    enum rlink_ps kind = rlink_ps_kind(l, r);
    struct rcmd *c;

    /* rio.c stops handing replies once the connection goes. */
    if (kind != RLINK_PS_NOTPS) {
        rlink_message(l, r, kind);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !TAILQ_EMPTY(&l->listens)) {
        rlink_heard(l, true);
        rlink_listened(l, r->str);
        return;
    }
    c = TAILQ_FIRST(&l->sent);
    if (!c) {
        /* Redis says this before it closes a connection it will not serve
         * (too many clients): anything else unasked for is a broken link. */
        char why[150];
        snprintf(why, sizeof(why), "reply to no command: %.120s",
                 r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ? r->str : "(not a status)");
        rlink_note(l, "", why);
        rlink_drop(l, why);
        return;
    }
    TAILQ_REMOVE(&l->sent, c, wire);
    rlink_reply(l, c, r);
}

/* SUBSCRIBE to the fill-notice channel: at set-up, and again as the
 * subscriber's probe (Redis confirms it again; nothing else changes).
 * Its confirmation is told apart by its shape (rlink_ps_kind), so it
 * is not on `sent`. Not PING: a subscribed connection answers it with
 * ["pong", ""], an array of two that nothing else looks like. */
static int rlink_subscribe(struct rlink *l, bool setup)
{
    const char *argv[3] = { "SUBSCRIBE", l->chan, RLINK_INVALIDATE_CHAN };
    int argc = setup && (l->flags & RLINK_INVALIDATIONS) ? 3 : 2;
    char small[512], *fmt;
    int len = resp_command(&fmt, small, sizeof(small), argc, argv, NULL);
    int rc;

    if (len < 0)
        return CS_ERR;
    rc = rio_send(&l->ev, fmt, (size_t)len);
    if (fmt != small)
        free(fmt);
    return rc;
}

void rlink_start_handshake(struct rlink *l)
{
    const char *argv[4];
    size_t lens[4];
    char db[24];
    const struct rstore_conf *c = rlink_conf;

    l->state = RLINK_HANDSHAKE;
    l->handshake_left = 0;
    if (c->password[0] && !(l->flags & RLINK_NOAUTH)) {
        int n = 0;
        argv[n++] = "AUTH";
        if (c->username[0])
            argv[n++] = c->username;
        argv[n++] = c->password;
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        l->handshake_left++;
        if (rlink_send(l, rlink_handshake_cb, l, n, argv, lens, -1) != CS_OK)
            goto fail;
    }
    if (l->subscriber && (l->flags & RLINK_INVALIDATIONS)) {
        /* Whom CLIENT TRACKING redirects to: answered before SUBSCRIBE's
         * confirmation, which ends the set-up. */
        argv[0] = "CLIENT";
        argv[1] = "ID";
        l->client_id = 0;
        if (rlink_send(l, rlink_client_id_cb, l, 2, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    if (l->subscriber) {
        /* A timeout marker in the FIFO until the confirmation arrives. */
        struct rcmd *mark = cs_calloc(1, sizeof(*mark));
        mark->link = l;
        mark->sent = rlink_now();
        mark->script = -1;
        mark->marker = true;
        TAILQ_INSERT_TAIL(&l->pending, mark, q);
        rlink_wake_by(l, mark->sent, mark->sent + c->command_timeout_ms + 1);
        if (rlink_subscribe(l, true) != CS_OK)
            goto fail;
        return;
    }
    if (l->flags & RLINK_ROLE) {
        argv[0] = "ROLE";
        l->handshake_left++;
        if (rlink_send(l, rlink_role_cb, l, 1, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    if (!(l->flags & RLINK_SCRIPTS)) {
        if (l->handshake_left == 0)
            rlink_set_up(l);
        return;
    }
    if (c->db) {
        snprintf(db, sizeof(db), "%lld", c->db);
        argv[0] = "SELECT";
        argv[1] = db;
        l->handshake_left++;
        if (rlink_send(l, rlink_handshake_cb, l, 2, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    for (int i = 0; i < rscript_count(); i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = rscript_source(i);
        l->handshake_left++;
        if (rlink_send(l, rlink_script_loaded_cb, l, 3, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    return;
fail:
    /* We are inside the connect's callback: drop from the loop. */
    l->state = RLINK_DOWN;
    /* The link's own timer, so that a link freed meanwhile is not touched. */
    l->drop_later = true;
    evtimer_add(l->retry, &rlink_now_tv);
}

/* Per-command deadlines: the oldest commands first. */
static void rlink_expire(struct rlink *l, int64_t now)
{
    unsigned gen = l->ev.gen;
    struct rcmd *c;

    while (rio_live(&l->ev) && l->ev.gen == gen && (c = TAILQ_FIRST(&l->pending)) && now - c->sent > rlink_conf->command_timeout_ms) {
        TAILQ_REMOVE(&l->pending, c, q);
        if (c->marker) {
            free(c);
            rlink_drop(l, "SUBSCRIBE not confirmed within command_timeout_ms");
            return;
        }
        c->abandoned = true;
        if (c->cb == rlink_probe_cb)
            continue;
        stats_c.redis_errors++;
        if (l->late++ == 0)
            log_warn("%s: no reply within command_timeout_ms (%lld ms): failing such commands, keeping the connection",
                     l->name, rlink_conf->command_timeout_ms);
        c->cb(c->priv, NULL);
    }
}

static void rlink_probe(struct rlink *l)
{
    const char *argv[1] = { "PING" };

    if (l->subscriber) {
        if (rlink_subscribe(l, false) == CS_OK)
            rlink_expect(l);
    } else if (rlink_send(l, rlink_probe_cb, NULL, 1, argv, NULL, -1) != CS_OK) {
        log_debug("%s: cannot send a probe", l->name);
    }
}

static void rlink_check(struct rlink *l, int64_t now)
{
    char why[160];

    if ((l->state == RLINK_RESOLVING || l->state == RLINK_CONNECTING) && now - l->since > rlink_conf->connect_timeout_ms) {
        if (l->state == RLINK_CONNECTING) {
            l->turn++;
            if (rio_handshaking(&l->ev)) {
                const char *hs = "TLS handshake timed out (connect_timeout_ms): is the port plaintext?";
                rdial_tls_log(l, TLSERR_TIMEOUT, "cannot connect", hs);
                rlink_drop_as(l, hs, true);
            } else {
                rlink_drop(l, "connect timed out (connect_timeout_ms)");
            }
            return;
        }
        log_warn("%s: cannot resolve %s within connect_timeout_ms; retrying", l->name, l->host);
        rlink_note(l, "", "cannot resolve host: no answer");
        if (l->dns)
            evdns_getaddrinfo_cancel(l->dns);
        l->dns = NULL;
        l->state = RLINK_DOWN;
        rlink_schedule(l);
        return;
    }
    if (!rio_live(&l->ev) || l->state < RLINK_HANDSHAKE)
        return;
    if (l->ev.in_total != l->seen) {
        l->seen = l->ev.in_total;       /* part of a long reply came in */
        l->heard = now;
    }
    rlink_expire(l, now);
    if (!rio_live(&l->ev))
        return;
    if ((l->waiting > 0 || !TAILQ_EMPTY(&l->pending)) && now - l->heard > rlink_dead_ms()) {
        snprintf(why, sizeof(why), "nothing read for %lld ms while waiting for replies (%d x command_timeout_ms)",
                 (long long)(now - l->heard), RLINK_DEAD_TIMEOUTS);
        rlink_drop(l, why);
        return;
    }
    if (l->state == RLINK_UP && l->waiting == 0 && now - l->heard >= RLINK_PROBE_MS)
        rlink_probe(l);
}

/* When rlink_check has something to do for l next (rlink_now ms), or
 * INT64_MAX: its deadlines, a look every RLINK_WATCH_MS while it waits for
 * anything (a stall is seen, and a long reply that is still coming in
 * counts as heard), its probe when it is up and quiet. */
static int64_t rlink_next(const struct rlink *l, int64_t now)
{
    int64_t t = now + RLINK_WATCH_MS, d;
    const struct rcmd *c = TAILQ_FIRST(&l->pending);

    if (l->state == RLINK_RESOLVING || l->state == RLINK_CONNECTING)
        d = l->since + rlink_conf->connect_timeout_ms + 1;
    else if (!rio_live(&l->ev) || l->state < RLINK_HANDSHAKE)
        return INT64_MAX;
    else if (c || l->waiting > 0)
        d = c ? c->sent + rlink_conf->command_timeout_ms + 1 : l->heard + rlink_dead_ms() + 1;
    else if (l->state == RLINK_UP)
        return l->heard + RLINK_PROBE_MS;
    else
        return INT64_MAX;
    return d < t ? d : t;
}

void rlink_arm(struct rlink *l)
{
    int64_t now = rlink_now(), at = rlink_next(l, now);

    if (at != INT64_MAX)
        rlink_arm_at(l, at, now);
}

static void rlink_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rlink *l = arg;
    int64_t now = rlink_now();  /* before due is cleared: a late timer is a stall */

    CS_UNUSED(fd);
    CS_UNUSED(what);
    l->due = 0;
    rlink_check(l, now);
    rlink_arm(l);
}

void rlink_init(const struct rstore_conf *c)
{
    rlink_conf = c;
    rlink_active = cs_mono_ms();
    rlink_stalled = 0;
}

struct rlink *rlink_new(const char *name, const char *host, int port, const char *path, unsigned flags,
                        const char *channel, const struct rlink_hooks *hooks, void *owner)
{
    struct rlink *l = cs_calloc(1, sizeof(*l));

    snprintf(l->name, sizeof(l->name), "%s", name);
    snprintf(l->host, sizeof(l->host), "%s", host ? host : "");
    l->port = port;
    l->path = path && path[0] ? cs_strdup(path) : NULL;
    l->flags = flags;
    l->subscriber = (flags & RLINK_SUBSCRIBER) != 0;
    snprintf(l->chan, sizeof(l->chan), "%s", channel ? channel : "");
    l->hooks = hooks;
    l->owner = owner;
    rio_init(&l->ev, &l->arena, &rdial_io, l);
    TAILQ_INIT(&l->pending);
    TAILQ_INIT(&l->sent);
    TAILQ_INIT(&l->listens);
    l->backoff_ms = RLINK_BACKOFF_MIN_MS;
    l->retry = evtimer_new(cs_base, rdial_retry_cb, l);
    l->timer = evtimer_new(cs_base, rlink_timer_cb, l);
    LIST_INSERT_HEAD(&rlink_all, l, all);
    if (l->host[0] || l->path)
        rdial_connect(l);   /* else it waits for rlink_target */
    return l;
}

bool rlink_cancelled;              /* a lookup was cancelled: see rlink_shutdown */

void rlink_free(struct rlink *l)
{
    if (!l)
        return;
    if (l->dns)
        rlink_cancelled = true;
    rdial_close(l);
    if (l->retry)
        event_free(l->retry);
    if (l->timer)
        event_free(l->timer);
    LIST_REMOVE(l, all);
    rio_release(&l->ev);
    free(l->path);
    free(l);
}

void rlink_target(struct rlink *l, const char *host, int port)
{
    struct timeval now = { 0, 0 };

    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->turn = 0;
    l->backoff_ms = RLINK_BACKOFF_MIN_MS;
    l->last_error[0] = '\0';
    /* From the loop: we may be inside one of this link's callbacks. */
    l->moving = true;
    if (!cs_exiting)
        evtimer_add(l->retry, &now);
}

void rlink_shutdown(void)
{
    while (rlink_nspare > 0)
        free(rlink_spare[--rlink_nspare]);
    /* A cancelled lookup is freed by a deferred callback of the resolver:
     * give the loop one turn, so that exiting mid-lookup leaks nothing. */
    if (rlink_cancelled)
        event_base_loop(cs_base, EVLOOP_NONBLOCK);
    rlink_cancelled = false;
}

bool rlink_up(const struct rlink *l)
{
    return l->state == RLINK_UP;
}

bool rlink_idle(const struct rlink *l)
{
    const struct rcmd *c;

    TAILQ_FOREACH(c, &l->pending, q)
        if (!c->marker)
            return false;
    return true;
}

const char *rlink_host(const struct rlink *l)
{
    return l->host;
}

int rlink_port(const struct rlink *l)
{
    return l->port;
}

long long rlink_client_id(const struct rlink *l)
{
    return l->client_id;
}

const char *rlink_name(const struct rlink *l)
{
    return l->name;
}

const char *rlink_status(const struct rlink *l)
{
    if (l->state == RLINK_UP)
        return NULL;
    if (l->last_error[0])
        return l->last_error;
    return l->state == RLINK_DOWN ? "not connected" : "connecting";
}

const char *rlink_state_name(const struct rlink *l)
{
    static const char *const names[] = { "down", "resolving", "connecting", "handshake", "up" };

    return names[l->state];
}

void rlink_links_add(const struct rlink *n, struct rstore_links *l)
{
    const struct rcmd *c;

    if (!n)
        return;
    TAILQ_FOREACH(c, &n->pending, q)
        l->pending++;
    l->reconnects += n->connects ? (uint64_t)n->connects - 1 : 0;
}

void rlink_report(const struct rlink *l, struct stats_sink *s, const char *key)
{
    char name[96];
    int n = 0;
    const struct rcmd *c;

    TAILQ_FOREACH(c, &l->pending, q)
        n++;
    snprintf(name, sizeof(name), "%s_state", key);
    s->str(s, name, "Redis link state: down, resolving, connecting, handshake, up", rlink_state_name(l));
    snprintf(name, sizeof(name), "%s_last_error", key);
    s->str(s, name, "Why the Redis link last failed (empty: never)", l->last_error);
    snprintf(name, sizeof(name), "%s_pending", key);
    s->num(s, SK_GAUGE, name, "Commands sent on the link and not yet answered", NULL, n);
    snprintf(name, sizeof(name), "%s_reconnects", key);
    s->num(s, SK_COUNTER, name, "Connection attempts after the first", NULL,
           (double)(l->connects ? l->connects - 1 : 0));
}
