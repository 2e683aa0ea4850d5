/* SPDX-License-Identifier: BSD-3-Clause */
/* heartbeat.c - this daemon's entry in <key_prefix>daemons, and reading
 * the others'. One hash, one key: it lives in one slot of a cluster and on
 * the one primary elsewhere, so every topology sees the same list.
 *
 * Each daemon HSETs its own field every HEARTBEAT_EVERY_MS: a JSON object of
 * a few hundred bytes with its addresses and counters. That is the whole
 * cost, one small write per daemon every 2 s (a thousand sidecars: 500
 * writes a second on one key), and nothing when nobody looks. Reading is
 * on demand (GET /daemons, the stampede demo across daemons): one HGETALL.
 * A daemon that stops cleanly HDELs its field; one that dies leaves it, and
 * the next reader that finds its heartbeat older than HEARTBEAT_EXPIRE_MS
 * leaves it out and HDELs it. Heartbeat times are wall-clock: daemons on
 * hosts whose clocks differ by seconds look that much older or younger. */
#include "core.h"
#include "heartbeat.h"
#include "autoconf.h"
#include "config.h"
#include "log.h"
#include "rstore.h"
#include "stats.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEARTBEAT_TICK_MS 500
#define HEARTBEAT_KEY_MAX 300

static struct event *hb_timer;
static char hb_id[600];
static int64_t hb_started_ms;
static int64_t hb_sent_at;      /* monotonic; 0: not yet */
static bool hb_pending;         /* a beat not yet answered: do not pile up */
static bool hb_stopping;

struct hb_query {
    heartbeat_list_cb cb;
    void *priv;
};

static size_t heartbeat_key(char *buf)
{
    int n = snprintf(buf, HEARTBEAT_KEY_MAX, "%sdaemons", cs_conf->key_prefix);

    return n < HEARTBEAT_KEY_MAX ? (size_t)n : HEARTBEAT_KEY_MAX - 1;
}

const char *heartbeat_id(void)
{
    return hb_id;
}

static void heartbeat_sent_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    hb_pending = false;
    if (!r || r->type == REDIS_REPLY_ERROR)
        log_limited(LOG_WARNING, "heartbeat: HSET failed: %s", r ? r->str : "no reply");
}

/* The JSON heartbeat: a new string, the caller frees it. */
static char *heartbeat_json(void)
{
    const struct cs_stats *c = &stats_c;
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}",
        "id", hb_id, "listen", cs_conf->listen[0] ? cs_conf->listen : cs_conf->unix_socket,
        "admin", cs_conf->admin_listen, "version", PACKAGE_VERSION, "pid", (int)getpid(),
        "started_ms", (json_int_t)hb_started_ms, "heartbeat_ms", (json_int_t)cs_now_ms(), "counters",
        "reads", (json_int_t)(c->hits + c->stale_hits + c->negative_hits + c->misses),
        "hits", (json_int_t)c->hits, "stale_hits", (json_int_t)c->stale_hits,
        "negative_hits", (json_int_t)c->negative_hits, "misses", (json_int_t)c->misses,
        "coalesced", (json_int_t)c->coalesced, "stampedes_suppressed", (json_int_t)c->stampedes_suppressed,
        "upstream_requests", (json_int_t)c->upstream_requests, "clients_connected", (json_int_t)c->clients_connected);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return s;
}

static void heartbeat_beat(void)
{
    char key[HEARTBEAT_KEY_MAX];
    char *body = heartbeat_json();
    const char *argv[4] = { "HSET", key, hb_id, body };
    size_t lens[4] = { 4, heartbeat_key(key), strlen(hb_id), body ? strlen(body) : 0 };

    if (!body)
        return;
    hb_sent_at = cs_mono_ms();
    if (rstore_cmd(heartbeat_sent_cb, NULL, 4, argv, lens) == CS_OK)
        hb_pending = true;
    free(body);
}

static void heartbeat_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    CS_UNUSED(fd);
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (hb_stopping || hb_pending || !rstore_ready())
        return;
    if (hb_sent_at && cs_mono_ms() - hb_sent_at < HEARTBEAT_EVERY_MS)
        return;
    heartbeat_beat();
}

void heartbeat_start(void)
{
    struct timeval tv;
    char host[256] = "";

    hb_started_ms = cs_now_ms();
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "?");
    /* Unique per process: a restarted daemon is a new entry, and the old
     * one expires. */
    snprintf(hb_id, sizeof(hb_id), "%.255s/%.200s/%d/%lld", host,
             cs_conf->listen[0] ? cs_conf->listen : cs_conf->unix_socket, (int)getpid(),
             (long long)hb_started_ms);
    hb_timer = event_new(cs_base, -1, EV_PERSIST, heartbeat_tick_cb, NULL);
    cs_ms_tv(&tv, HEARTBEAT_TICK_MS);
    event_add(hb_timer, &tv);
}

static void heartbeat_gone_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
    if (hb_stopping && cs_exiting)
        event_base_loopbreak(cs_base);
}

static void heartbeat_ignore_cb(void *priv, const redisReply *r)
{
    CS_UNUSED(priv);
    CS_UNUSED(r);
}

static int heartbeat_hdel(const char *field, size_t len, rstore_cb cb)
{
    char key[HEARTBEAT_KEY_MAX];
    const char *argv[3] = { "HDEL", key, field };
    size_t lens[3] = { 4, heartbeat_key(key), len };

    return rstore_cmd(cb, NULL, 3, argv, lens);
}

void heartbeat_stop(int timeout_ms)
{
    struct timeval tv;

    if (!hb_timer)
        return;
    event_free(hb_timer);
    hb_timer = NULL;
    hb_stopping = true;
    if (!rstore_ready() || heartbeat_hdel(hb_id, strlen(hb_id), heartbeat_gone_cb) != CS_OK)
        return;
    rstore_flush();
    /* Run the loop until the HDEL is answered (or time runs out). */
    cs_ms_tv(&tv, timeout_ms);
    event_base_loopexit(cs_base, &tv);
    event_base_dispatch(cs_base);
}

static int heartbeat_cmp(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));

    return strcmp(x ? x : "", y ? y : "");
}

static void heartbeat_list_cb_(void *priv, const redisReply *r)
{
    struct hb_query *q = priv;
    int64_t now = cs_now_ms();
    json_t *out, **all;
    size_t n = 0;

    if (!r || r->type != REDIS_REPLY_ARRAY) {
        q->cb(q->priv, NULL, !r ? "no reply from Redis" : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        free(q);
        return;
    }
    all = cs_calloc(r->elements / 2 + 1, sizeof(*all));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        json_t *o = v->type == REDIS_REPLY_STRING ? json_loadb(v->str, (size_t)v->len, 0, NULL) : NULL;
        json_t *at = json_object_get(o, "heartbeat_ms");
        if (!json_is_object(o) || !json_is_integer(at) || !json_is_string(json_object_get(o, "id")) ||
            now - json_integer_value(at) > HEARTBEAT_EXPIRE_MS) {
            /* Dead (or not ours to read): gone from the list and the hash. */
            if (f->type == REDIS_REPLY_STRING && !cs_exiting &&
                heartbeat_hdel(f->str, (size_t)f->len, heartbeat_ignore_cb) != CS_OK)
                log_limited(LOG_WARNING, "heartbeat: cannot remove an expired entry: Redis is down");
            json_decref(o);
            continue;
        }
        json_object_set_new(o, "age_ms", json_integer((json_int_t)(now - json_integer_value(at))));
        json_object_set_new(o, "self", json_boolean(strcmp(json_string_value(json_object_get(o, "id")), hb_id) == 0));
        all[n++] = o;
    }
    qsort(all, n, sizeof(*all), heartbeat_cmp);
    out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, all[i]);
    free(all);
    q->cb(q->priv, out, NULL);
    json_decref(out);
    free(q);
}

int heartbeat_list(heartbeat_list_cb cb, void *priv)
{
    char key[HEARTBEAT_KEY_MAX];
    const char *argv[2] = { "HGETALL", key };
    size_t lens[2] = { 7, heartbeat_key(key) };
    struct hb_query *q = cs_calloc(1, sizeof(*q));

    q->cb = cb;
    q->priv = priv;
    if (rstore_cmd(heartbeat_list_cb_, q, 2, argv, lens) != CS_OK) {
        free(q);
        return CS_ERR;
    }
    return CS_OK;
}
