/* SPDX-License-Identifier: BSD-3-Clause */
/* rnode.c - one Redis link: its commands and their replies, set-up (AUTH,
 * SELECT, scripts, ROLE or SUBSCRIBE), deadlines, probes and reconnects.
 * rstore.c decides which links exist and where each command goes (one
 * server, the Sentinel's primary, the cluster's nodes).
 *
 * hiredis connects the link and drops it on errors; rio.c writes what we
 * queue and hands us each reply. Replies on one connection come in the
 * order of the commands, so every command sent is on the link's `sent`
 * FIFO until its reply comes, and the one reply goes to the first. A
 * subscriber's pub/sub messages are told apart by their shape.
 *
 * hiredis 0.14 has no connect or command timeouts, so each link has one
 * timer, armed for its next deadline (and, while it waits for anything,
 * at least every RS_WATCH_MS), that enforces them:
 *   - a command with no reply after command_timeout_ms fails alone: its
 *     callback runs with NULL now, and its late reply is dropped when it
 *     comes (the rcmd stays on `sent` until then, marked abandoned);
 *   - a link that waits for replies and has read nothing at all for
 *     RS_DEAD_TIMEOUTS x command_timeout_ms is dead: it is dropped, which
 *     fails what is pending, and reconnected with capped exponential backoff;
 *   - a link quiet for RS_PROBE_MS gets a probe (PING on the command link,
 *     SUBSCRIBE again on the subscriber), so a half-open one is found too;
 *   - time our own loop spends stalled does not count (see rnode_now).
 * An idle link's timer fires only for its probe: nothing ticks while idle.
 * Connecting (resolving, the connect, reconnect timers) is in rdial.c. */
#include "core.h"
#include "rstore.h"
#include "rnode_int.h"
#include "config.h"
#include "log.h"
#include "resp.h"
#include "stats.h"
#include "lua_scripts.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rnode_list rs_nodes = LIST_HEAD_INITIALIZER(rs_nodes);
static const struct timeval rs_now_tv = { 0, 0 };
static int64_t rs_active;       /* cs_mono_ms of the last thing a link did: sent, read, fired */
static int64_t rs_lost;         /* ms of our own stalls, not counted against Redis */
static char rs_sha[RS_NSCRIPTS][41];
static const char *const rs_sources[RS_NSCRIPTS] = { LUA_LOCK, LUA_FILL, LUA_RELEASE, LUA_HSET, LUA_DEL, LUA_TTL };
static const char *const rs_names[RS_NSCRIPTS] = { "lock", "fill", "release", "hset", "del", "ttl" };

/* Remembers why a link failed, in the words /healthz shows: "connection
 * refused", "auth failed: WRONGPASS ...". */
void rnode_note(struct rnode *l, const char *prefix, const char *why)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s%s", prefix, why ? why : "");
    if (l->last_error[0] >= 'A' && l->last_error[0] <= 'Z' && l->last_error[1] >= 'a')
        l->last_error[0] = (char)(l->last_error[0] - 'A' + 'a');
}

/* Called on a gap since the last thing any link did. If some link's timer
 * is more than RS_STALL_MS - RS_WATCH_MS overdue, our loop did not run
 * (blocked, or the process stopped) and the gap counts as RS_STALL_MS.
 * The gap began at the last thing a link did, but no earlier than
 * RS_STALL_MS before the missed timer: for a link that waits (looked at
 * every RS_WATCH_MS) the two agree, and an idle link's late probe does
 * not make its whole quiet spell a stall. */
static void rnode_stall(int64_t mono)
{
    int64_t start = INT64_MAX;
    const struct rnode *l;

    LIST_FOREACH(l, &rs_nodes, all) {
        int64_t t = l->due > rs_active ? l->due : rs_active;
        if (l->due && mono - t > RS_STALL_MS - RS_WATCH_MS && l->due - RS_STALL_MS < start)
            start = l->due - RS_STALL_MS;
    }
    if (start == INT64_MAX)
        return;                 /* idle: nothing was due */
    if (start < rs_active)
        start = rs_active;
    if (mono - start > RS_STALL_MS) {
        log_debug("our loop stalled for %lld ms: not counted against Redis", (long long)(mono - start));
        rs_lost += mono - start - RS_STALL_MS;
    }
}

/* Milliseconds as Redis deadlines see them: the monotonic clock less the
 * time our own loop was stalled (rnode_stall), found before anything is
 * stamped after the stall. Replies that arrived meanwhile are in our
 * socket; they must not be blamed on Redis. */
static int64_t rnode_now_at(int64_t mono_ms)
{
    if (mono_ms - rs_active > RS_STALL_MS - RS_WATCH_MS)
        rnode_stall(mono_ms);
    if (mono_ms > rs_active)
        rs_active = mono_ms;
    return mono_ms - rs_lost;
}

int64_t rnode_now(void)
{
    return rnode_now_at(cs_mono_ms());
}

static long long rnode_dead_ms(void)
{
    long long ms = RS_DEAD_TIMEOUTS * cs_conf->command_timeout_ms;

    return ms < RS_DEAD_MIN_MS ? RS_DEAD_MIN_MS : ms;
}

/* The link's timer fires at AT (rnode_now ms). */
static void rnode_arm_at(struct rnode *l, int64_t at, int64_t now)
{
    int64_t ms = at > now ? at - now : 1;
    struct timeval tv;

    cs_ms_tv(&tv, ms);
    evtimer_add(l->timer, &tv);
    l->due = now + rs_lost + ms;
}

/* l now waits for a reply due by DEADLINE: its timer must fire by then,
 * and soon, for the stall check. Mostly just a comparison: a link that
 * already waits is looked at every RS_WATCH_MS, so only the first
 * command after a quiet spell moves the timer. */
static void rnode_wake_by(struct rnode *l, int64_t now, int64_t deadline)
{
    int64_t soon = now + RS_WATCH_MS, latest = now + RS_STALL_MS;

    if (!l->due || l->due - rs_lost > (deadline < latest ? deadline : latest))
        rnode_arm_at(l, deadline < soon ? deadline : soon, now);
}

struct rnode *rnode_link_of(const redisAsyncContext *ac)
{
    return (struct rnode *)ac->data;
}

void rnode_schedule(struct rnode *l)
{
    struct timeval tv;

    if (cs_exiting)
        return;
    cs_ms_tv(&tv, l->backoff_ms);
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > RS_BACKOFF_MAX_MS ? RS_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void rnode_reply(struct rnode *l, struct rcmd *c, const redisReply *reply);

/* The context is gone (l->ac is NULL already, so nothing is sent on it):
 * every command on the wire fails, its callback run with NULL, and the
 * subscribe marker goes. */
void rnode_forget(struct rnode *l)
{
    struct rcmd *c, *next;
    struct rlisten *ls;

    while ((ls = TAILQ_FIRST(&l->listens)) != NULL) {
        TAILQ_REMOVE(&l->listens, ls, q);
        free(ls);
    }

    while ((c = TAILQ_FIRST(&l->sent)) != NULL) {
        TAILQ_REMOVE(&l->sent, c, wire);
        rnode_reply(l, c, NULL);
    }
    for (c = TAILQ_FIRST(&l->pending); c; c = next) {
        next = TAILQ_NEXT(c, q);
        if (c->marker) {
            TAILQ_REMOVE(&l->pending, c, q);
            free(c);
        }
    }
}

void rnode_lost(struct rnode *l)
{
    if (l->hooks && l->hooks->down && !cs_exiting)
        l->hooks->down(l, l->owner);
}

/* Fail the link now: every pending command with it. Not from the connect
 * callback: hiredis 0.14 touches the context after it. */
void rnode_drop(struct rnode *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    if (!ac)
        return;
    log_warn("%s: %s; reconnecting", l->name, why);
    if (!l->last_error[0] || l->state == RS_UP)
        rnode_note(l, "", why);
    l->ac = NULL;
    l->state = RS_DOWN;
    ac->data = NULL;
    redisAsyncFree(ac);
    rnode_forget(l);
    rnode_schedule(l);
    rnode_lost(l);
}


/* Something was read: the link is alive, and a reply in time ends a run of
 * late ones. */
static void rnode_heard(struct rnode *l, bool in_time)
{
    l->heard = rnode_now_at(cs_clock_us() / 1000);
    if (in_time && l->late) {
        log_notice("%s: replies in time again (%ld command(s) failed by command_timeout_ms)", l->name, l->late);
        l->late = 0;
    }
}

static void rnode_probe_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

/* The n-th bulk string (0-based) of a RESP command we formatted. */
static struct cs_str rnode_fmt_arg(const char *fmt, size_t len, int n)
{
    const char *p = memchr(fmt, '\n', len), *end = fmt + len;
    struct cs_str s = { NULL, 0 };

    while (p && ++p < end && *p == '$') {
        size_t blen = strtoul(p + 1, NULL, 10);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || (size_t)(end - nl - 1) < blen)
            break;
        if (n-- == 0) {
            s.p = nl + 1;
            s.len = blen;
            break;
        }
        p = nl + 1 + blen + 1;      /* past the bulk and its \r\n */
    }
    return s;
}

/* One more reply is due on l; silence is counted from the first. */
static void rnode_expect(struct rnode *l)
{
    if (l->waiting++ == 0)
        l->heard = rnode_now();
}

static struct rcmd *rnode_cmd_new(void);

/* Sends a command whose reply nobody waits for (a SCRIPT LOAD before a
 * resend, a late lock's release): on the wire as abandoned from the start,
 * so its reply is read and dropped. No deadline. */
static int rnode_quiet(struct rnode *l, const char *fmt, size_t len)
{
    struct rcmd *c;

    if (!l->ac || rio_send(&l->ev, fmt, len) != CS_OK)
        return CS_ERR;
    c = rnode_cmd_new();
    c->link = l;
    c->script = -1;
    c->abandoned = true;
    TAILQ_INSERT_TAIL(&l->sent, c, wire);
    rnode_expect(l);
    return CS_OK;
}

/* A lock script that timed out here may still have taken the lock in
 * Redis: its flight has moved on, so hand the lock back (and wake waiters)
 * instead of letting every daemon wait lock_ttl_ms for it. */
static void rnode_unlock_late(struct rnode *l, const struct rcmd *c)
{
    /* EVALSHA sha 1 record token ... */
    struct cs_str key = rnode_fmt_arg(c->fmt, c->fmtlen, 3), token = rnode_fmt_arg(c->fmt, c->fmtlen, 4);
    char chan[CS_CHAN_MAX], small[512], *fmt;
    const char *argv[6] = { "EVALSHA", rs_sha[RS_RELEASE], "1", key.p, token.p, chan };
    size_t lens[6] = { 7, 40, 1, key.len, token.len, 0 };
    int len;

    if (!key.p || !token.p || !l->ac || l->state != RS_UP || key.len >= CS_CHAN_MAX - 6 ||
        key.len < strlen(cs_conf->key_prefix))
        return;
    lens[5] = cs_key_channel(chan, cs_conf->key_prefix, key.p, key.len);
    log_info("%s: lock of %.*s taken after its command timed out: releasing it", l->name, (int)key.len, key.p);
    len = resp_command(&fmt, small, sizeof(small), 6, argv, lens);
    if (len < 0)
        return;
    if (rnode_quiet(l, fmt, (size_t)len) != CS_OK)
        log_info("%s: cannot release the lock of %.*s", l->name, (int)key.len, key.p);
    if (fmt != small)
        free(fmt);
}

/* Spare command records: one per command in flight is the steady state. */
#define RS_SPARE_MAX 256
static struct rcmd *rs_spare[RS_SPARE_MAX];
static int rs_nspare;

static struct rcmd *rnode_cmd_new(void)
{
    struct rcmd *c = rs_nspare ? rs_spare[--rs_nspare] : cs_malloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    return c;
}

static void rnode_cmd_free(struct rcmd *c)
{
    free(c->fmt);
    if (rs_nspare < RS_SPARE_MAX && !cs_exiting)
        rs_spare[rs_nspare++] = c;
    else
        free(c);
}

bool rnode_redirection(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
            strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/* c's reply (NULL: the link went), c already off `sent`. */
static void rnode_reply(struct rnode *l, struct rcmd *c, const redisReply *reply)
{
    l->waiting--;
    if (reply)
        rnode_heard(l, !c->abandoned);
    if (c->abandoned) {
        /* Its callback ran at the deadline; this late reply is dropped. */
        /* The lock script answers {code, Redis ms}; code 1: it took the lock. */
        if (reply && c->script == RS_LOCK && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 1)
            rnode_unlock_late(l, c);
        rnode_cmd_free(c);
        return;
    }
    TAILQ_REMOVE(&l->pending, c, q);
    if (reply)
        stats_observe(SH_REDIS, (uint64_t)(cs_clock_us() - c->sent_us));
    if (reply && reply->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && l->ac) {
        /* Redis restarted or flushed its scripts: load, then run again. */
        const char *argv[3] = { "SCRIPT", "LOAD", rs_sources[c->script] };
        char *load;
        int len = resp_command(&load, NULL, 0, 3, argv, NULL);
        log_notice("%s: script %s missing (NOSCRIPT), loading it again", l->name, rs_names[c->script]);
        c->retried = true;
        if (len > 0 && rnode_quiet(l, load, (size_t)len) == CS_OK &&
            rio_send(&l->ev, c->fmt, c->fmtlen) == CS_OK) {
            free(load);
            c->sent = rnode_now();     /* a new deadline for the second run */
            l->waiting++;
            TAILQ_INSERT_TAIL(&l->pending, c, q);
            TAILQ_INSERT_TAIL(&l->sent, c, wire);
            rnode_wake_by(l, c->sent, c->sent + cs_conf->command_timeout_ms + 1);
            return;
        }
        if (len > 0)
            free(load);
    }
    /* A redirection its owner follows is counted there, if it gives up:
     * a reshard is not hundreds of errors. */
    if ((!reply || reply->type == REDIS_REPLY_ERROR) && c->cb != rnode_probe_cb &&
        !((l->flags & RN_ROUTED) && rnode_redirection(reply))) {
        stats_c.redis_errors++;
        if (reply)
            log_limited(LOG_WARNING, "%s: error reply: %s", l->name, reply->str);
    }
    c->cb(c->priv, reply);
    rnode_cmd_free(c);
    /* A primary demoted under us (a failover): its owner looks again. */
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0 && l->hooks &&
        l->hooks->readonly && !cs_exiting)
        l->hooks->readonly(l, l->owner);
}

/* Queues fmt on l; owned: fmt is malloc'd and now ours (kept for a script
 * to resend, else freed); not owned: it is copied, the caller keeps it. */
static int rnode_queue(struct rnode *l, rstore_cb cb, void *priv, char *fmt, size_t len, int script, bool owned)
{
    struct rcmd *c;

    if (!l->ac || l->state < RS_HANDSHAKE || rio_send(&l->ev, fmt, len) != CS_OK) {
        if (owned)
            free(fmt);
        return CS_ERR;
    }
    c = rnode_cmd_new();
    c->link = l;
    c->cb = cb;
    c->priv = priv;
    c->sent_us = cs_clock_us();
    c->sent = rnode_now_at(c->sent_us / 1000);
    c->script = script;
    if (owned && script >= 0) {
        c->fmt = fmt;
        c->fmtlen = len;
    } else if (owned) {
        free(fmt);
    }
    rnode_expect(l);
    TAILQ_INSERT_TAIL(&l->pending, c, q);
    TAILQ_INSERT_TAIL(&l->sent, c, wire);
    rnode_wake_by(l, c->sent, c->sent + cs_conf->command_timeout_ms + 1);
    return CS_OK;
}

int rnode_send_buf(struct rnode *l, rstore_cb cb, void *priv, const char *fmt, size_t len, int script)
{
    char *copy;

    if (script < 0)
        return rnode_queue(l, cb, priv, (char *)fmt, len, script, false);
    copy = cs_malloc(len);      /* kept to send again after NOSCRIPT */
    memcpy(copy, fmt, len);
    return rnode_queue(l, cb, priv, copy, len, script, true);
}

int rnode_send(struct rnode *l, rstore_cb cb, void *priv, int argc, const char **argv,
               const size_t *lens, int script)
{
    char small[512], *fmt;
    int len;

    if (!l->ac || l->state < RS_HANDSHAKE)
        return CS_ERR;
    /* A script's command is kept, to send again after NOSCRIPT; any other
     * is copied to the output buffer at once, so it is built on the stack. */
    len = resp_command(&fmt, script < 0 ? small : NULL, sizeof(small), argc, argv, lens);
    if (len < 0)
        return CS_ERR;
    return rnode_queue(l, cb, priv, fmt, (size_t)len, script, fmt != small);
}

void rnode_evalsha(struct rnode_evalsha *e, enum rscript s, int nkeys, int argc, const char **argv,
                   const size_t *lens)
{
    e->argc = argc + 3;
    if (e->argc <= RN_EVAL_STACK) {
        e->av = e->av_stack;
        e->al = e->al_stack;
    } else {
        e->av = cs_malloc(sizeof(*e->av) * (size_t)e->argc);
        e->al = cs_malloc(sizeof(*e->al) * (size_t)e->argc);
    }
    e->av[0] = "EVALSHA";
    e->al[0] = 7;
    e->av[1] = rs_sha[s];
    e->al[1] = 40;
    e->al[2] = (size_t)snprintf(e->nkeys, sizeof(e->nkeys), "%d", nkeys);
    e->av[2] = e->nkeys;
    memcpy(e->av + 3, argv, sizeof(*e->av) * (size_t)argc);
    memcpy(e->al + 3, lens, sizeof(*e->al) * (size_t)argc);
}

void rnode_evalsha_done(struct rnode_evalsha *e)
{
    if (e->av != e->av_stack) {
        free(e->av);
        free(e->al);
    }
    e->av = NULL;
    e->al = NULL;
}

int rnode_eval(struct rnode *n, enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc,
               const char **argv, const size_t *lens)
{
    struct rnode_evalsha e;
    int rc;

    if (n->state != RS_UP)
        return CS_ERR;
    rnode_evalsha(&e, s, nkeys, argc, argv, lens);
    rc = rnode_send(n, cb, priv, e.argc, e.av, e.al, (int)s);
    rnode_evalsha_done(&e);
    return rc;
}

static void rnode_set_up(struct rnode *l)
{
    l->state = RS_UP;
    l->backoff_ms = RS_BACKOFF_MIN_MS;
    rnode_arm(l);               /* for its first probe */
    if (l->subscriber)
        log_notice("%s: subscribed to %s", l->name, l->chan);
    else
        log_notice("%s: connected", l->name);
    if (l->hooks && l->hooks->up)
        l->hooks->up(l, l->owner);
}

/* Handshake: AUTH, SELECT, SCRIPT LOAD (or SUBSCRIBE), each checked. */
static void rnode_handshake_cb(void *priv, const redisReply *r)
{
    struct rnode *l = priv;

    if (!l->ac)
        return;                 /* dropped meanwhile: the drop logged it */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_error("%s: set-up failed: %s", l->name, r ? r->str : "no reply");
        rnode_note(l, r && (strstr(r->str, "WRONGPASS") || strstr(r->str, "NOAUTH") || strstr(r->str, "AUTH"))
                        ? "auth failed: " : "set-up failed: ", r ? r->str : "no reply");
        rnode_drop(l, "set-up failed");
        return;
    }
    if (l->subscriber)
        return;                 /* up once SUBSCRIBE is confirmed */
    if (--l->handshake_left == 0)
        rnode_set_up(l);
}

/* The scripts are the last replies of the set-up: which one this is
 * follows from how many replies are still due. */
static void rnode_script_loaded_cb(void *priv, const redisReply *r)
{
    struct rnode *l = priv;
    int i = RS_NSCRIPTS - l->handshake_left;

    if (l->ac && i >= 0 && i < RS_NSCRIPTS && r && r->type == REDIS_REPLY_STRING && r->len == 40)
        memcpy(rs_sha[i], r->str, 41);
    rnode_handshake_cb(l, r);
}

/* ROLE's first element says what the server is now: a replica is never
 * written, so it does not come up. */
static void rnode_role_cb(void *priv, const redisReply *r)
{
    struct rnode *l = priv;
    char why[120];

    if (l->ac && r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") != 0) {
        snprintf(why, sizeof(why), "not a primary (ROLE says %s)", r->element[0]->str);
        log_warn("%s: %s:%d is %s", l->name, l->host, l->port, why);
        rnode_note(l, "", why);
        rnode_drop(l, why);
        return;
    }
    rnode_handshake_cb(l, r);
}

/* The kinds of pub/sub replies a subscriber gets: 3-element arrays. */
enum rnode_kind { RK_NOTPS, RK_MESSAGE, RK_SUB, RK_UNSUB };

static enum rnode_kind rnode_ps_kind(const struct rnode *l, const redisReply *r)
{
    static const struct { const char *name; enum rnode_kind kind; } kinds[] = {
        { "message", RK_MESSAGE }, { "smessage", RK_MESSAGE }, { "subscribe", RK_SUB },
        { "ssubscribe", RK_SUB }, { "unsubscribe", RK_UNSUB }, { "sunsubscribe", RK_UNSUB },
    };

    if (!l->subscriber || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return RK_NOTPS;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(r->element[0]->str, kinds[i].name) == 0)
            return kinds[i].kind;
    return RK_NOTPS;
}

/* The answer to the oldest channel command on the wire (ERR: refused). */
static void rnode_listened(struct rnode *l, const char *err)
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
static void rnode_message(struct rnode *l, const redisReply *reply, enum rnode_kind kind)
{
    const redisReply *ch = reply->element[1];
    const struct rlisten *ls = TAILQ_FIRST(&l->listens);

    rnode_heard(l, true);
    if (kind == RK_MESSAGE) {
        if (l->hooks && l->hooks->message)
            l->hooks->message(l, l->owner, reply);
    } else if (kind == RK_SUB && strcmp(ch->str, l->chan) == 0) {
        if (l->state == RS_UP) {
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
            rnode_set_up(l);
        }
    } else if (ls && ls->on == (kind == RK_SUB) && ls->len == (size_t)ch->len &&
               memcmp(ls->chan, ch->str, ls->len) == 0) {
        rnode_listened(l, NULL);
    } else if (kind == RK_UNSUB && l->hooks && l->hooks->listened) {
        /* Unasked: Redis moved the channel's slot away from this node. */
        l->hooks->listened(l, l->owner, ch->str, (size_t)ch->len, false, "dropped");
    }
}

int rnode_listen(struct rnode *l, bool on, bool plain, const char *chan, size_t len)
{
    static const char *const verbs[2][2] = { { "SUNSUBSCRIBE", "SSUBSCRIBE" }, { "UNSUBSCRIBE", "SUBSCRIBE" } };
    const char *argv[2] = { verbs[plain][on], chan };
    size_t lens[2] = { strlen(argv[0]), len };
    char small[512], *fmt;
    struct rlisten *ls;
    int n, rc;

    if (!l->subscriber || l->state != RS_UP || !l->ac)
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
    rnode_expect(l);
    rnode_wake_by(l, rnode_now(), l->heard + rnode_dead_ms() + 1);
    return CS_OK;
}

/* Each reply rio.c reads on l's link: the answer to the oldest command on
 * the wire, or a subscriber's pub/sub message (no command of ours). */
void rnode_on_reply(void *owner, redisReply *r)
{
    struct rnode *l = owner;
    enum rnode_kind kind = rnode_ps_kind(l, r);
    struct rcmd *c;

    /* rio.c stops handing replies once the context goes, so l->ac is set. */
    if (kind != RK_NOTPS) {
        rnode_message(l, r, kind);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !TAILQ_EMPTY(&l->listens)) {
        rnode_heard(l, true);
        rnode_listened(l, r->str);
        return;
    }
    c = TAILQ_FIRST(&l->sent);
    if (!c) {
        /* Redis says this before it closes a connection it will not serve
         * (too many clients): anything else unasked for is a broken link. */
        char why[150];
        snprintf(why, sizeof(why), "reply to no command: %.120s",
                 r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ? r->str : "(not a status)");
        rnode_note(l, "", why);
        rnode_drop(l, why);
        return;
    }
    TAILQ_REMOVE(&l->sent, c, wire);
    rnode_reply(l, c, r);
}

/* SUBSCRIBE to the fill-notice channel: at set-up, and again as the
 * subscriber's probe (Redis confirms it again; nothing else changes).
 * Its confirmation is told apart by its shape (rnode_ps_kind), so it
 * is not on `sent`. Not PING: a subscribed connection answers it with
 * ["pong", ""], an array of two that nothing else looks like. */
static int rnode_subscribe(struct rnode *l)
{
    const char *argv[2] = { "SUBSCRIBE", l->chan };
    char small[512], *fmt;
    int len = resp_command(&fmt, small, sizeof(small), 2, argv, NULL);
    int rc;

    if (len < 0)
        return CS_ERR;
    rc = rio_send(&l->ev, fmt, (size_t)len);
    if (fmt != small)
        free(fmt);
    return rc;
}

void rnode_start_handshake(struct rnode *l)
{
    const char *argv[4];
    size_t lens[4];
    char db[24];
    const struct cs_config *c = cs_conf;

    l->state = RS_HANDSHAKE;
    l->handshake_left = 0;
    if (c->redis_password[0] && !(l->flags & RN_NOAUTH)) {
        int n = 0;
        argv[n++] = "AUTH";
        if (c->redis_username[0])
            argv[n++] = c->redis_username;
        argv[n++] = c->redis_password;
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        l->handshake_left++;
        if (rnode_send(l, rnode_handshake_cb, l, n, argv, lens, -1) != CS_OK)
            goto fail;
    }
    if (l->subscriber) {
        /* A timeout marker in the FIFO until the confirmation arrives. */
        struct rcmd *mark = cs_calloc(1, sizeof(*mark));
        mark->link = l;
        mark->sent = rnode_now();
        mark->script = -1;
        mark->marker = true;
        TAILQ_INSERT_TAIL(&l->pending, mark, q);
        rnode_wake_by(l, mark->sent, mark->sent + c->command_timeout_ms + 1);
        if (rnode_subscribe(l) != CS_OK)
            goto fail;
        return;
    }
    if (l->flags & RN_ROLE) {
        argv[0] = "ROLE";
        l->handshake_left++;
        if (rnode_send(l, rnode_role_cb, l, 1, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    if (!(l->flags & RN_SCRIPTS)) {
        if (l->handshake_left == 0)
            rnode_set_up(l);
        return;
    }
    if (c->redis_db) {
        snprintf(db, sizeof(db), "%lld", c->redis_db);
        argv[0] = "SELECT";
        argv[1] = db;
        l->handshake_left++;
        if (rnode_send(l, rnode_handshake_cb, l, 2, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    for (int i = 0; i < RS_NSCRIPTS; i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = rs_sources[i];
        l->handshake_left++;
        if (rnode_send(l, rnode_script_loaded_cb, l, 3, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    return;
fail:
    /* We are inside hiredis's connect callback: drop from the loop. */
    l->state = RS_DOWN;
    /* The link's own timer, so that a link freed meanwhile is not touched. */
    l->drop_later = true;
    evtimer_add(l->retry, &rs_now_tv);
}

/* Per-command deadlines: the oldest commands first. */
static void rnode_expire(struct rnode *l, int64_t now)
{
    redisAsyncContext *ac = l->ac;
    struct rcmd *c;

    while (ac && l->ac == ac && (c = TAILQ_FIRST(&l->pending)) && now - c->sent > cs_conf->command_timeout_ms) {
        TAILQ_REMOVE(&l->pending, c, q);
        if (c->marker) {
            free(c);
            rnode_drop(l, "SUBSCRIBE not confirmed within command_timeout_ms");
            return;
        }
        c->abandoned = true;
        if (c->cb == rnode_probe_cb)
            continue;
        stats_c.redis_errors++;
        if (l->late++ == 0)
            log_warn("%s: no reply within command_timeout_ms (%lld ms): failing such commands, keeping the connection",
                     l->name, cs_conf->command_timeout_ms);
        c->cb(c->priv, NULL);
    }
}

static void rnode_probe(struct rnode *l)
{
    const char *argv[1] = { "PING" };

    if (l->subscriber) {
        if (rnode_subscribe(l) == CS_OK)
            rnode_expect(l);
    } else if (rnode_send(l, rnode_probe_cb, NULL, 1, argv, NULL, -1) != CS_OK) {
        log_debug("%s: cannot send a probe", l->name);
    }
}

static void rnode_check(struct rnode *l, int64_t now)
{
    char why[160];

    if ((l->state == RS_RESOLVING || l->state == RS_CONNECTING) && now - l->since > cs_conf->connect_timeout_ms) {
        if (l->state == RS_CONNECTING) {
            l->turn++;
            rnode_drop(l, "connect timed out (connect_timeout_ms)");
            return;
        }
        log_warn("%s: cannot resolve %s within connect_timeout_ms; retrying", l->name, l->host);
        rnode_note(l, "", "cannot resolve host: no answer");
        if (l->dns)
            evdns_getaddrinfo_cancel(l->dns);
        l->dns = NULL;
        l->state = RS_DOWN;
        rnode_schedule(l);
        return;
    }
    if (!l->ac || l->state < RS_HANDSHAKE)
        return;
    if (l->ev.in_total != l->seen) {
        l->seen = l->ev.in_total;       /* part of a long reply came in */
        l->heard = now;
    }
    rnode_expire(l, now);
    if (!l->ac)
        return;
    if ((l->waiting > 0 || !TAILQ_EMPTY(&l->pending)) && now - l->heard > rnode_dead_ms()) {
        snprintf(why, sizeof(why), "nothing read for %lld ms while waiting for replies (%d x command_timeout_ms)",
                 (long long)(now - l->heard), RS_DEAD_TIMEOUTS);
        rnode_drop(l, why);
        return;
    }
    if (l->state == RS_UP && l->waiting == 0 && now - l->heard >= RS_PROBE_MS)
        rnode_probe(l);
}

/* When rnode_check has something to do for l next (rnode_now ms), or
 * INT64_MAX: its deadlines, a look every RS_WATCH_MS while it waits for
 * anything (a stall is seen, and a long reply that is still coming in
 * counts as heard), its probe when it is up and quiet. */
static int64_t rnode_next(const struct rnode *l, int64_t now)
{
    int64_t t = now + RS_WATCH_MS, d;
    const struct rcmd *c = TAILQ_FIRST(&l->pending);

    if (l->state == RS_RESOLVING || l->state == RS_CONNECTING)
        d = l->since + cs_conf->connect_timeout_ms + 1;
    else if (!l->ac || l->state < RS_HANDSHAKE)
        return INT64_MAX;
    else if (c || l->waiting > 0)
        d = c ? c->sent + cs_conf->command_timeout_ms + 1 : l->heard + rnode_dead_ms() + 1;
    else if (l->state == RS_UP)
        return l->heard + RS_PROBE_MS;
    else
        return INT64_MAX;
    return d < t ? d : t;
}

void rnode_arm(struct rnode *l)
{
    int64_t now = rnode_now(), at = rnode_next(l, now);

    if (at != INT64_MAX)
        rnode_arm_at(l, at, now);
}

static void rnode_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rnode *l = arg;
    int64_t now = rnode_now();  /* before due is cleared: a late timer is a stall */

    CS_UNUSED(fd);
    CS_UNUSED(what);
    l->due = 0;
    rnode_check(l, now);
    rnode_arm(l);
}

void rnode_init(void)
{
    rs_active = cs_mono_ms();
    rs_lost = 0;
}

struct rnode *rnode_new(const char *name, const char *host, int port, const char *path, unsigned flags,
                        const char *channel, const struct rnode_hooks *hooks, void *owner)
{
    struct rnode *l = cs_calloc(1, sizeof(*l));

    snprintf(l->name, sizeof(l->name), "%s", name);
    snprintf(l->host, sizeof(l->host), "%s", host ? host : "");
    l->port = port;
    l->path = path && path[0] ? cs_strdup(path) : NULL;
    l->flags = flags;
    l->subscriber = (flags & RN_SUBSCRIBER) != 0;
    snprintf(l->chan, sizeof(l->chan), "%s", channel ? channel : "");
    l->hooks = hooks;
    l->owner = owner;
    TAILQ_INIT(&l->pending);
    TAILQ_INIT(&l->sent);
    TAILQ_INIT(&l->listens);
    l->backoff_ms = RS_BACKOFF_MIN_MS;
    l->retry = evtimer_new(cs_base, rdial_retry_cb, l);
    l->timer = evtimer_new(cs_base, rnode_timer_cb, l);
    LIST_INSERT_HEAD(&rs_nodes, l, all);
    if (l->host[0] || l->path)
        rdial_connect(l);   /* else it waits for rnode_target */
    return l;
}

bool rs_cancelled;              /* a lookup was cancelled: see rnode_shutdown */

void rnode_free(struct rnode *l)
{
    if (!l)
        return;
    if (l->dns)
        rs_cancelled = true;
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

void rnode_target(struct rnode *l, const char *host, int port)
{
    struct timeval now = { 0, 0 };

    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->turn = 0;
    l->backoff_ms = RS_BACKOFF_MIN_MS;
    l->last_error[0] = '\0';
    /* From the loop: we may be inside one of this link's callbacks. */
    l->moving = true;
    if (!cs_exiting)
        evtimer_add(l->retry, &now);
}

void rnode_shutdown(void)
{
    while (rs_nspare > 0)
        free(rs_spare[--rs_nspare]);
    /* A cancelled lookup is freed by a deferred callback of the resolver:
     * give the loop one turn, so that exiting mid-lookup leaks nothing. */
    if (rs_cancelled)
        event_base_loop(cs_base, EVLOOP_NONBLOCK);
    rs_cancelled = false;
}

bool rnode_up(const struct rnode *l)
{
    return l->state == RS_UP;
}

bool rnode_idle(const struct rnode *l)
{
    const struct rcmd *c;

    TAILQ_FOREACH(c, &l->pending, q)
        if (!c->marker)
            return false;
    return true;
}

const char *rnode_host(const struct rnode *l)
{
    return l->host;
}

int rnode_port(const struct rnode *l)
{
    return l->port;
}

const char *rnode_name(const struct rnode *l)
{
    return l->name;
}

const char *rnode_status(const struct rnode *l)
{
    if (l->state == RS_UP)
        return NULL;
    if (l->last_error[0])
        return l->last_error;
    return l->state == RS_DOWN ? "not connected" : "connecting";
}

const char *rnode_state_name(const struct rnode *l)
{
    static const char *const names[] = { "down", "resolving", "connecting", "handshake", "up" };

    return names[l->state];
}

void rnode_links_add(const struct rnode *n, struct rstore_links *l)
{
    const struct rcmd *c;

    if (!n)
        return;
    TAILQ_FOREACH(c, &n->pending, q)
        l->pending++;
    l->reconnects += n->connects ? (uint64_t)n->connects - 1 : 0;
}

void rnode_report(const struct rnode *l, struct stats_sink *s, const char *key)
{
    char name[96];
    int n = 0;
    const struct rcmd *c;

    TAILQ_FOREACH(c, &l->pending, q)
        n++;
    snprintf(name, sizeof(name), "%s_state", key);
    s->str(s, name, "Redis link state: down, resolving, connecting, handshake, up", rnode_state_name(l));
    snprintf(name, sizeof(name), "%s_last_error", key);
    s->str(s, name, "Why the Redis link last failed (empty: never)", l->last_error);
    snprintf(name, sizeof(name), "%s_pending", key);
    s->num(s, SK_GAUGE, name, "Commands sent on the link and not yet answered", NULL, n);
    snprintf(name, sizeof(name), "%s_reconnects", key);
    s->num(s, SK_COUNTER, name, "Connection attempts after the first", NULL,
           (double)(l->connects ? l->connects - 1 : 0));
}
