/* rstore.c - Redis through hiredis's async API on libevent.
 *
 * hiredis 0.14 has no connect or command timeouts, so every command is
 * tracked in our own FIFO (replies on one connection come in order): one
 * sweep timer looks at the oldest, and a reply later than command_timeout_ms
 * fails the connection, which fails every pending command and reconnects
 * with capped exponential backoff. */
#include "core.h"
#include "rstore.h"
#include "config.h"
#include "log.h"
#include "stats.h"
#include "lua_scripts.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <stdlib.h>
#include <string.h>

#define RS_BACKOFF_MIN_MS 100
#define RS_BACKOFF_MAX_MS 5000
#define RS_SWEEP_MS 20

enum rs_state { RS_DOWN, RS_CONNECTING, RS_HANDSHAKE, RS_UP };

struct rcmd {
    TAILQ_ENTRY(rcmd) q;
    struct rlink *link;
    rstore_cb cb;
    void *priv;
    int64_t sent_ms;
    char *fmt;                  /* kept for scripts: resent after NOSCRIPT */
    size_t fmtlen;
    int script;                 /* -1 when not a script */
    bool retried;
    bool marker;                /* ours alone: hiredis has no callback for it */
};

struct rlink {
    const char *name;
    redisAsyncContext *ac;
    enum rs_state state;
    bool subscriber;
    int64_t since_ms;           /* connect start */
    long long backoff_ms;
    struct event *retry;
    TAILQ_HEAD(, rcmd) pending;
    int handshake_left;
};

static struct rlink rs_cmd = { .name = "redis" }, rs_sub = { .name = "redis subscriber", .subscriber = true };
static struct event *rs_sweep;
static char rs_sha[RS_NSCRIPTS][41];
static const char *const rs_sources[RS_NSCRIPTS] = { LUA_LOCK, LUA_FILL, LUA_RELEASE, LUA_HSET, LUA_DEL };
static const char *const rs_names[RS_NSCRIPTS] = { "lock", "fill", "release", "hset", "del" };

void (*rstore_on_notice)(const char *key, size_t len);

static void rstore_connect(struct rlink *l);

static struct rlink *rstore_link_of(const redisAsyncContext *ac)
{
    return (struct rlink *)ac->data;
}

static void rstore_schedule(struct rlink *l)
{
    struct timeval tv;

    if (cs_exiting)
        return;
    tv.tv_sec = l->backoff_ms / 1000;
    tv.tv_usec = (l->backoff_ms % 1000) * 1000;
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > RS_BACKOFF_MAX_MS ? RS_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

/* Frees what hiredis does not own: the subscribe marker. Every other rcmd is
 * freed by its callback, which hiredis runs with a NULL reply when the
 * context goes: at once, or, when we are inside one of its callbacks, once
 * that callback returns. */
static void rstore_forget(struct rlink *l)
{
    struct rcmd *c, *next;

    for (c = TAILQ_FIRST(&l->pending); c; c = next) {
        next = TAILQ_NEXT(c, q);
        if (c->marker) {
            TAILQ_REMOVE(&l->pending, c, q);
            free(c);
        }
    }
}

/* Fail the link now: hiredis calls every pending callback with NULL. Not
 * from the connect callback: hiredis 0.14 touches the context after it. */
static void rstore_drop(struct rlink *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    if (!ac)
        return;
    log_warn("%s: %s; reconnecting", l->name, why);
    l->ac = NULL;
    l->state = RS_DOWN;
    ac->data = NULL;
    redisAsyncFree(ac);
    rstore_forget(l);
    rstore_schedule(l);
}

static void rstore_drop_later_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    rstore_drop(arg, "cannot send set-up commands");
}

static void rstore_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rcmd *c = privdata;
    struct rlink *l = c->link;
    redisReply *reply = r;

    CS_UNUSED(ac);
    TAILQ_REMOVE(&l->pending, c, q);
    if (reply && reply->type == REDIS_REPLY_ERROR && c->script >= 0 && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && l->ac) {
        /* Redis restarted or flushed its scripts: load, then run again. */
        const char *argv[3] = { "SCRIPT", "LOAD", rs_sources[c->script] };
        char *load;
        int len = redisFormatCommandArgv(&load, 3, argv, NULL);
        log_notice("%s: script %s missing (NOSCRIPT), loading it again", l->name, rs_names[c->script]);
        c->retried = true;
        if (len > 0 && redisAsyncFormattedCommand(l->ac, NULL, NULL, load, (size_t)len) == REDIS_OK &&
            redisAsyncFormattedCommand(l->ac, rstore_reply_cb, c, c->fmt, c->fmtlen) == REDIS_OK) {
            redisFreeCommand(load);
            c->sent_ms = cs_mono_ms();
            TAILQ_INSERT_TAIL(&l->pending, c, q);
            return;
        }
        if (len > 0)
            redisFreeCommand(load);
    }
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        stats.redis_errors++;
        if (reply)
            log_info("%s: error reply: %s", l->name, reply->str);
    }
    c->cb(c->priv, reply);
    if (c->fmt)
        redisFreeCommand(c->fmt);
    free(c);
}

static int rstore_send_fmt(struct rlink *l, rstore_cb cb, void *priv, char *fmt, size_t len, int script)
{
    struct rcmd *c = cs_calloc(1, sizeof(*c));

    c->link = l;
    c->cb = cb;
    c->priv = priv;
    c->sent_ms = cs_mono_ms();
    c->script = script;
    if (redisAsyncFormattedCommand(l->ac, rstore_reply_cb, c, fmt, len) != REDIS_OK) {
        free(c);
        redisFreeCommand(fmt);
        return CS_ERR;
    }
    if (script >= 0) {
        c->fmt = fmt;
        c->fmtlen = len;
    } else {
        redisFreeCommand(fmt);
    }
    TAILQ_INSERT_TAIL(&l->pending, c, q);
    return CS_OK;
}

static int rstore_send(struct rlink *l, rstore_cb cb, void *priv, int argc, const char **argv,
                       const size_t *lens, int script)
{
    char *fmt;
    int len;

    if (!l->ac || l->state < RS_HANDSHAKE)
        return CS_ERR;
    len = redisFormatCommandArgv(&fmt, argc, argv, lens);
    if (len < 0)
        return CS_ERR;
    return rstore_send_fmt(l, cb, priv, fmt, (size_t)len, script);
}

bool rstore_ready(void)
{
    return rs_cmd.state == RS_UP;
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    if (rs_cmd.state != RS_UP)
        return CS_ERR;
    return rstore_send(&rs_cmd, cb, priv, argc, argv, lens, -1);
}

int rstore_eval(enum rscript s, rstore_cb cb, void *priv, int nkeys, int argc,
                const char **argv, const size_t *lens)
{
    const char **av;
    size_t *al;
    char nk[16];
    int rc;

    if (rs_cmd.state != RS_UP)
        return CS_ERR;
    av = cs_malloc(sizeof(*av) * (size_t)(argc + 3));
    al = cs_malloc(sizeof(*al) * (size_t)(argc + 3));
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = rs_sha[s];
    al[1] = 40;
    al[2] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
    av[2] = nk;
    memcpy(av + 3, argv, sizeof(*av) * (size_t)argc);
    memcpy(al + 3, lens, sizeof(*al) * (size_t)argc);
    rc = rstore_send(&rs_cmd, cb, priv, argc + 3, av, al, (int)s);
    free(av);
    free(al);
    return rc;
}

/* Handshake: AUTH, SELECT, SCRIPT LOAD (or SUBSCRIBE), each checked. */
static void rstore_handshake_cb(void *priv, const redisReply *r)
{
    struct rlink *l = priv;

    if (!l->ac)
        return;                 /* dropped meanwhile: the drop logged it */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        log_error("%s: set-up failed: %s", l->name, r ? r->str : "no reply");
        rstore_drop(l, "set-up failed");
        return;
    }
    if (l->subscriber)
        return;                 /* up once SUBSCRIBE is confirmed */
    if (--l->handshake_left == 0) {
        l->state = RS_UP;
        l->backoff_ms = RS_BACKOFF_MIN_MS;
        log_notice("%s: connected", l->name);
    }
}

static void rstore_script_loaded_cb(void *priv, const redisReply *r)
{
    for (int i = 0; i < RS_NSCRIPTS; i++) {
        if (priv == rs_names[i] && r && r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(rs_sha[i], r->str, 41);
    }
    rstore_handshake_cb(&rs_cmd, r);
}

static void rstore_message_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct rlink *l = &rs_sub;

    CS_UNUSED(ac);
    CS_UNUSED(privdata);
    if (!reply)
        return;                 /* the link is going away */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        if (strcmp(reply->element[0]->str, "message") == 0) {
            if (rstore_on_notice && reply->element[2]->type == REDIS_REPLY_STRING)
                rstore_on_notice(reply->element[2]->str, (size_t)reply->element[2]->len);
        } else if (strcmp(reply->element[0]->str, "subscribe") == 0 && l->state != RS_UP) {
            /* The subscribe confirmation is the end of the handshake. */
            struct rcmd *c = TAILQ_FIRST(&l->pending);
            if (c) {
                TAILQ_REMOVE(&l->pending, c, q);
                free(c);
            }
            l->state = RS_UP;
            l->backoff_ms = RS_BACKOFF_MIN_MS;
            log_notice("%s: subscribed to %sfills", l->name, cs_conf->key_prefix);
        }
    }
}

static void rstore_start_handshake(struct rlink *l)
{
    const char *argv[4];
    size_t lens[4];
    char db[24];
    const struct cs_config *c = cs_conf;

    l->state = RS_HANDSHAKE;
    l->handshake_left = 0;
    if (c->redis_password[0]) {
        int n = 0;
        argv[n++] = "AUTH";
        if (c->redis_username[0])
            argv[n++] = c->redis_username;
        argv[n++] = c->redis_password;
        for (int i = 0; i < n; i++)
            lens[i] = strlen(argv[i]);
        l->handshake_left++;
        if (rstore_send(l, rstore_handshake_cb, l, n, argv, lens, -1) != CS_OK)
            goto fail;
    }
    if (l->subscriber) {
        char *fmt, chan[300];
        int len;
        snprintf(chan, sizeof(chan), "%sfills", c->key_prefix);
        argv[0] = "SUBSCRIBE";
        argv[1] = chan;
        len = redisFormatCommandArgv(&fmt, 2, argv, NULL);
        /* A timeout marker in the FIFO until the confirmation arrives. */
        struct rcmd *mark = cs_calloc(1, sizeof(*mark));
        mark->link = l;
        mark->sent_ms = cs_mono_ms();
        mark->script = -1;
        mark->marker = true;
        TAILQ_INSERT_TAIL(&l->pending, mark, q);
        if (len < 0 || redisAsyncFormattedCommand(l->ac, rstore_message_cb, NULL, fmt, (size_t)len) != REDIS_OK) {
            if (len >= 0)
                redisFreeCommand(fmt);
            goto fail;
        }
        redisFreeCommand(fmt);
        return;
    }
    if (c->redis_db) {
        snprintf(db, sizeof(db), "%lld", c->redis_db);
        argv[0] = "SELECT";
        argv[1] = db;
        l->handshake_left++;
        if (rstore_send(l, rstore_handshake_cb, l, 2, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    for (int i = 0; i < RS_NSCRIPTS; i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = rs_sources[i];
        l->handshake_left++;
        if (rstore_send(l, rstore_script_loaded_cb, (void *)rs_names[i], 3, argv, NULL, -1) != CS_OK)
            goto fail;
    }
    return;
fail:
    /* We are inside hiredis's connect callback: drop from the loop. */
    l->state = RS_DOWN;
    if (event_base_once(cs_base, -1, EV_TIMEOUT, rstore_drop_later_cb, l, &(struct timeval){ 0, 0 }) != 0)
        log_error("%s: cannot schedule a reconnect", l->name);
}

static void rstore_connect_cb(const redisAsyncContext *ac, int status)
{
    struct rlink *l = rstore_link_of(ac);

    if (!l)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        log_warn("%s: cannot connect: %s", l->name, ac->errstr);
        l->ac = NULL;
        l->state = RS_DOWN;
        rstore_forget(l);
        rstore_schedule(l);
        return;
    }
    rstore_start_handshake(l);
}

static void rstore_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct rlink *l = rstore_link_of(ac);

    if (!l)
        return;                 /* we dropped it ourselves */
    log_warn("%s: connection lost%s%s", l->name, status == REDIS_OK ? "" : ": ",
             status == REDIS_OK ? "" : ac->errstr);
    l->ac = NULL;
    l->state = RS_DOWN;
    rstore_forget(l);
    rstore_schedule(l);
}

static void rstore_connect(struct rlink *l)
{
    const struct cs_config *c = cs_conf;
    redisAsyncContext *ac;

    if (c->redis_unix_socket[0])
        ac = redisAsyncConnectUnix(c->redis_unix_socket);
    else
        ac = redisAsyncConnect(c->redis_host, (int)c->redis_port);
    if (!ac || ac->err) {
        log_warn("%s: cannot connect: %s", l->name, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        rstore_schedule(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->state = RS_CONNECTING;
    l->since_ms = cs_mono_ms();
    redisLibeventAttach(ac, cs_base);
    redisAsyncSetConnectCallback(ac, rstore_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rstore_disconnect_cb);
}

static void rstore_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    rstore_connect(arg);
}

static void rstore_check(struct rlink *l, int64_t now)
{
    struct rcmd *c;

    if (l->state == RS_CONNECTING && now - l->since_ms > cs_conf->connect_timeout_ms) {
        rstore_drop(l, "connect timed out");
        return;
    }
    c = TAILQ_FIRST(&l->pending);
    if (c && l->ac && now - c->sent_ms > cs_conf->command_timeout_ms)
        rstore_drop(l, "reply later than command_timeout_ms");
}

static void rstore_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = cs_mono_ms();

    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    rstore_check(&rs_cmd, now);
    rstore_check(&rs_sub, now);
}

void rstore_init(void)
{
    struct timeval tv = { 0, RS_SWEEP_MS * 1000 };
    struct rlink *links[2] = { &rs_cmd, &rs_sub };

    for (int i = 0; i < 2; i++) {
        TAILQ_INIT(&links[i]->pending);
        links[i]->backoff_ms = RS_BACKOFF_MIN_MS;
        links[i]->retry = evtimer_new(cs_base, rstore_retry_cb, links[i]);
        rstore_connect(links[i]);
    }
    rs_sweep = event_new(cs_base, -1, EV_PERSIST, rstore_sweep_cb, NULL);
    event_add(rs_sweep, &tv);
}

void rstore_free(void)
{
    struct rlink *links[2] = { &rs_cmd, &rs_sub };

    for (int i = 0; i < 2; i++) {
        struct rlink *l = links[i];
        if (l->ac) {
            redisAsyncContext *ac = l->ac;
            l->ac = NULL;
            l->state = RS_DOWN;
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        rstore_forget(l);
        if (l->retry)
            event_free(l->retry);
        l->retry = NULL;
    }
    if (rs_sweep)
        event_free(rs_sweep);
    rs_sweep = NULL;
}

const char *rstore_status(void)
{
    if (rs_cmd.state == RS_UP)
        return NULL;
    return rs_cmd.state == RS_DOWN ? "not connected" : "connecting";
}
