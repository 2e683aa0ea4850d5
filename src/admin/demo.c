/* SPDX-License-Identifier: BSD-3-Clause */
/* demo.c - the dashboard's demo actions (admin_demo = yes). Each action
 * opens client connections to the daemon's own listener and sends RESP, so
 * the demo shows the real cache path: the same parsing, ordering, Redis read,
 * single-flight and upstream fetch an application gets. Replies are parsed
 * with hiredis's reader. */
#include "core.h"
#include "demo.h"
#include "config.h"
#include "heartbeat.h"
#include "log.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DEMO_MAX_CMDS 6
#define DEMO_MAX_READERS 1000
#define DEMO_TIMEOUT_S 15

struct demo_action;

/* One client connection that sends its commands one after another. */
struct demo_client {
    struct demo_action *act;
    struct bufferevent *bev;
    redisReader *rd;
    char *fmt[DEMO_MAX_CMDS];
    int fmtlen[DEMO_MAX_CMDS];
    int ncmds, next;
    bool skip_first;            /* AUTH: its reply is not the user's */
    int64_t sent_us;
    bool done;
    json_t *replies;            /* [{reply, us}, ...] */
};

struct demo_action {
    struct evhttp_request *req;     /* NULL once the browser went away */
    const char *name;
    struct demo_client **clients;
    int nclients, pending;
    int64_t started_us;
    uint64_t up_before, coalesced_before, suppressed_before;
    char key[600];
    int readers;                /* stampede: N, started once the DEL is done */
    bool stampede_started;
    /* A stampede across daemons: the live daemons' heartbeats before, the
     * readers spread over their listen addresses, and their heartbeats
     * again once each has published one after the run. */
    bool across, waited;
    json_t *before;
    struct event *wait;
};

static int64_t demo_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reply text as a new JSON string; jansson refuses bytes that are not
 * UTF-8, which are shown as "(binary)". */
static json_t *demo_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);

    return j ? j : json_string("(binary)");
}

/* A new reference: the caller's json_array_append_new or "o" takes it. */
static json_t *demo_reply_json(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return demo_text(r->str, (size_t)r->len);
    case REDIS_REPLY_ERROR:
        return json_pack("{s:o}", "error", demo_text(r->str, (size_t)r->len));
    case REDIS_REPLY_INTEGER:
        return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(a, demo_reply_json(r->element[i]));
        return a;
    }
    default:
        return json_null();
    }
}

static void demo_send_next(struct demo_client *c)
{
    c->sent_us = demo_now_us();
    bufferevent_write(c->bev, c->fmt[c->next], (size_t)c->fmtlen[c->next]);
}

static void demo_action_finish(struct demo_action *a);

static void demo_client_done(struct demo_client *c)
{
    struct demo_action *a = c->act;

    if (c->done)
        return;
    c->done = true;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (--a->pending == 0)
        demo_action_finish(a);
}

static void demo_read_cb(struct bufferevent *bev, void *arg)
{
    struct demo_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    void *reply;

    redisReaderFeed(c->rd, (const char *)evbuffer_pullup(in, -1), n);
    evbuffer_drain(in, n);
    while (c->next < c->ncmds) {
        if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
            json_array_append_new(c->replies, json_pack("{s:s}", "error", "unparsable reply"));
            demo_client_done(c);
            return;
        }
        if (!reply)
            return;
        if (!(c->skip_first && c->next == 0))
            json_array_append_new(c->replies, json_pack("{s:o,s:I}", "reply", demo_reply_json(reply), "us",
                                                        (json_int_t)(demo_now_us() - c->sent_us)));
        freeReplyObject(reply);
        if (++c->next == c->ncmds) {
            demo_client_done(c);
            return;
        }
        demo_send_next(c);
    }
}

static void demo_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct demo_client *c = arg;

    CS_UNUSED(bev);
    if (what & BEV_EVENT_CONNECTED) {
        demo_send_next(c);
        return;
    }
    json_array_append_new(c->replies, json_pack("{s:s}", "error", what & BEV_EVENT_TIMEOUT ? "timeout" : "connection lost"));
    c->next = c->ncmds;
    demo_client_done(c);
}

/* ADDR (a daemon's published listen address), or the daemon's own
 * listener when NULL: TCP when configured, else the unix socket. */
static int demo_addr(const char *addr, struct sockaddr_storage *ss, int *len)
{
    const char *path = addr ? addr : cs_conf->unix_socket;

    if (addr ? addr[0] != '/' : cs_conf->listen[0] != '\0') {
        *len = sizeof(*ss);
        if (evutil_parse_sockaddr_port(addr ? addr : cs_conf->listen, (struct sockaddr *)ss, len) == 0)
            return CS_OK;
        return CS_ERR;          /* a host name: the demo needs an address */
    }
    if (path[0] && strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path)) {
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        memset(su, 0, sizeof(*su));
        su->sun_family = AF_UNIX;
        strcpy(su->sun_path, path);
        *len = sizeof(*su);
        return CS_OK;
    }
    return CS_ERR;
}

static struct demo_client *demo_client_new(struct demo_action *a, const char *addr, int argc, const char **argv)
{
    struct demo_client *c = cs_calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    struct timeval tv = { DEMO_TIMEOUT_S, 0 };
    int len;

    c->act = a;
    c->rd = redisReaderCreate();
    c->replies = json_array();
    if (cs_conf->requirepass[0]) {
        const char *auth[2] = { "AUTH", cs_conf->requirepass };
        c->fmtlen[c->ncmds] = redisFormatCommandArgv(&c->fmt[c->ncmds], 2, auth, NULL);
        c->ncmds++;
        c->skip_first = true;
    }
    /* argv: commands separated by NULL, ended by two NULLs. */
    for (int i = 0; i < argc && c->ncmds < DEMO_MAX_CMDS;) {
        int n = 0;
        while (i + n < argc && argv[i + n])
            n++;
        c->fmtlen[c->ncmds] = redisFormatCommandArgv(&c->fmt[c->ncmds], n, argv + i, NULL);
        c->ncmds++;
        i += n + 1;
    }
    a->pending++;
    c->bev = bufferevent_socket_new(cs_base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, demo_read_cb, NULL, demo_event_cb, c);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (demo_addr(addr, &ss, &len) != CS_OK || bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) != 0) {
        json_array_append_new(c->replies, json_pack("{s:s}", "error", "cannot connect to the daemon's listener"));
        c->next = c->ncmds;
        /* Finished from the loop, never inside the caller. */
        bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
    }
    return c;
}

static void demo_client_free(struct demo_client *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    for (int i = 0; i < c->ncmds; i++)
        redisFreeCommand(c->fmt[i]);
    redisReaderFree(c->rd);
    json_decref(c->replies);
    free(c);
}

static void demo_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    struct demo_action *a = arg;

    CS_UNUSED(evcon);
    a->req = NULL;
}

static void demo_respond(struct demo_action *a, int code, json_t *body)
{
    if (a->req) {
        struct evbuffer *b = evbuffer_new();
        /* NULL when a json_pack failed (out of memory): say so, not crash. */
        char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (!s)
            code = 500;
        evhttp_connection_set_closecb(evhttp_request_get_connection(a->req), NULL, NULL);
        evbuffer_add_printf(b, "%s", s ? s : "{\"error\":\"out of memory\"}");
        evhttp_add_header(evhttp_request_get_output_headers(a->req), "Content-Type", "application/json");
        evhttp_add_header(evhttp_request_get_output_headers(a->req), "Cache-Control", "no-store");
        evhttp_send_reply(a->req, code, code == 200 ? "OK" : code == 400 ? "Bad Request" : "Internal Server Error", b);
        evbuffer_free(b);
        free(s);
    }
    json_decref(body);
}

static void demo_action_free(struct demo_action *a)
{
    json_decref(a->before);
    if (a->wait)
        event_free(a->wait);
    for (int i = 0; i < a->nclients; i++)
        demo_client_free(a->clients[i]);
    free(a->clients);
    free(a);
}

static void demo_add(struct demo_action *a, struct demo_client *c)
{
    a->clients = cs_realloc(a->clients, sizeof(*a->clients) * (size_t)(a->nclients + 1));
    a->clients[a->nclients++] = c;
}

static bool demo_is_raw(const char *key)
{
    const char *colon = strchr(key, ':');
    const struct cs_ns *ns = colon ? config_ns_find(cs_conf, key, (size_t)(colon - key)) : NULL;

    return ns && ns->format == NS_RAW;
}

static void demo_start_stampede(struct demo_action *a, int n)
{
    const char *argv[2] = { demo_is_raw(a->key) ? "GET" : "HGETALL", a->key };

    a->stampede_started = true;
    a->up_before = stats_c.upstream_requests;
    a->coalesced_before = stats_c.coalesced;
    a->suppressed_before = stats_c.stampedes_suppressed;
    a->started_us = demo_now_us();
    for (int i = 0; i < n; i++) {
        json_t *d = a->across ? json_array_get(a->before, (size_t)i % json_array_size(a->before)) : NULL;
        demo_add(a, demo_client_new(a, d ? json_string_value(json_object_get(d, "listen")) : NULL, 2, argv));
    }
}

static void demo_action_finish(struct demo_action *a);

static void demo_across_after(void *priv, json_t *after, const char *err)
{
    struct demo_action *a = priv;

    CS_UNUSED(err);
    /* Each daemon's figures: its heartbeat after the run less the one
     * before (this daemon's own from its counters, exact). */
    for (size_t i = 0; i < json_array_size(a->before); i++) {
        json_t *d = json_array_get(a->before, i), *now = NULL;
        const char *id = json_string_value(json_object_get(d, "id"));
        for (size_t j = 0; j < json_array_size(after); j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(after, j), "id")), id) == 0)
                now = json_array_get(after, j);
        if (json_is_true(json_object_get(d, "self"))) {
            json_object_set_new(d, "upstream_reads", json_integer((json_int_t)(stats_c.upstream_requests - a->up_before)));
            json_object_set_new(d, "coalesced", json_integer((json_int_t)(stats_c.coalesced - a->coalesced_before)));
            json_object_set_new(d, "stampedes_suppressed",
                                json_integer((json_int_t)(stats_c.stampedes_suppressed - a->suppressed_before)));
            continue;
        }
        static const char *const f[3][2] = { { "upstream_reads", "upstream_requests" }, { "coalesced", "coalesced" },
                                             { "stampedes_suppressed", "stampedes_suppressed" } };
        for (int k = 0; k < 3; k++) {
            json_t *b = json_object_get(json_object_get(d, "counters"), f[k][1]);
            json_t *e = json_object_get(json_object_get(now, "counters"), f[k][1]);
            json_object_set_new(d, f[k][0], now ? json_integer(json_integer_value(e) - json_integer_value(b)) : json_null());
        }
    }
    demo_action_finish(a);
}

/* Every other daemon has published a heartbeat since the run ended. */
static void demo_across_wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct demo_action *a = arg;

    CS_UNUSED(fd);
    CS_UNUSED(what);
    if (heartbeat_list(demo_across_after, a) != CS_OK)
        demo_across_after(a, NULL, "Redis is down");
}

static void demo_across_listed(void *priv, json_t *daemons, const char *err)
{
    struct demo_action *a = priv;
    const char *argv[] = { "DEL", a->key };

    if (!daemons || !json_array_size(daemons)) {
        demo_respond(a, 500, json_pack("{s:s+}", "error", "cannot list the daemons: ", err ? err : "none"));
        demo_action_free(a);
        return;
    }
    a->before = json_deep_copy(daemons);
    a->up_before = stats_c.upstream_requests;
    a->coalesced_before = stats_c.coalesced;
    a->suppressed_before = stats_c.stampedes_suppressed;
    demo_add(a, demo_client_new(a, NULL, (int)CS_ARRAY_LEN(argv), argv));
}

static void demo_action_finish(struct demo_action *a)
{
    json_t *out;

    if (strcmp(a->name, "stampede") == 0 && !a->stampede_started) {
        /* The DEL is done: now the N concurrent readers. */
        demo_start_stampede(a, a->readers);
        return;
    }
    if (a->across && !a->waited) {
        struct timeval tv;
        a->waited = true;
        cs_ms_tv(&tv, HEARTBEAT_EVERY_MS + 600);
        a->wait = evtimer_new(cs_base, demo_across_wait_cb, a);
        evtimer_add(a->wait, &tv);
        return;
    }
    out = json_pack("{s:s,s:o}", "action", a->name, "key", demo_text(a->key, strlen(a->key)));
    if (strcmp(a->name, "stampede") == 0) {
        int64_t slowest = 0;
        int errors = 0;
        for (int i = 1; i < a->nclients; i++) {
            json_t *r = json_array_get(a->clients[i]->replies, 0);
            json_t *us = json_object_get(r, "us");
            json_t *rep = json_object_get(r, "reply");
            if (!us || (json_is_object(rep) && json_object_get(rep, "error")) || json_object_get(r, "error"))
                errors++;
            if (us && json_integer_value(us) > slowest)
                slowest = json_integer_value(us);
        }
        json_object_set_new(out, "readers", json_integer(a->nclients - 1));
        if (a->across) {
            json_int_t total = 0, coalesced = 0;
            size_t k = json_array_size(a->before), n = (size_t)(a->nclients - 1);
            for (size_t i = 0; i < k; i++) {        /* reader i went to daemon i % k */
                json_t *d = json_array_get(a->before, i);
                json_object_set_new(d, "readers", json_integer((json_int_t)(n / k + (i < n % k))));
                total += json_integer_value(json_object_get(d, "upstream_reads"));
                coalesced += json_integer_value(json_object_get(d, "coalesced"));
            }
            json_object_set_new(out, "upstream_reads", json_integer(total));
            json_object_set_new(out, "coalesced", json_integer(coalesced));
            json_object_set(out, "daemons", a->before);
        } else {
            json_object_set_new(out, "upstream_reads", json_integer((json_int_t)(stats_c.upstream_requests - a->up_before)));
            json_object_set_new(out, "coalesced", json_integer((json_int_t)(stats_c.coalesced - a->coalesced_before)));
        }
        json_object_set_new(out, "errors", json_integer(errors));
        json_object_set_new(out, "slowest_us", json_integer(slowest));
        json_object_set_new(out, "total_us", json_integer((json_int_t)(demo_now_us() - a->started_us)));
    } else {
        json_object_set(out, "steps", a->clients[0]->replies);     /* a second reference: the client keeps its own */
    }
    demo_respond(a, 200, out);
    demo_action_free(a);
}

static const char *demo_param(struct evkeyvalq *q, const char *name)
{
    const char *v = evhttp_find_header(q, name);

    return v && *v ? v : NULL;
}

void demo_handle(struct evhttp_request *req, const char *action)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evkeyvalq q;
    struct demo_action *a;
    const char *key, *field, *value, *nstr;
    json_t *err = NULL;

    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(uri && evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "", &q) != 0)
        err = json_pack("{s:s}", "error", "bad query string");
    key = demo_param(&q, "key");
    field = demo_param(&q, "field");
    value = evhttp_find_header(&q, "value");
    nstr = demo_param(&q, "n");
    if (!err && (!key || strlen(key) >= sizeof(a->key)))
        err = json_pack("{s:s}", "error", "key=NAMESPACE:ID is needed");
    if (!err && strcmp(action, "update") == 0 && (!field || !value))
        err = json_pack("{s:s}", "error", "update needs field= and value=");
    if (err) {
        struct demo_action tmp = { .req = req };
        evhttp_clear_headers(&q);
        demo_respond(&tmp, 400, err);
        return;
    }
    a = cs_calloc(1, sizeof(*a));
    a->req = req;
    a->name = action;
    a->started_us = demo_now_us();
    snprintf(a->key, sizeof(a->key), "%s", key);
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), demo_closed_cb, a);
    if (strcmp(action, "read") == 0) {
        const char *argv[] = { "PTTL", a->key, NULL, demo_is_raw(a->key) ? "GET" : "HGETALL", a->key, NULL,
                               "PTTL", a->key };
        demo_add(a, demo_client_new(a, NULL, (int)CS_ARRAY_LEN(argv), argv));
    } else if (strcmp(action, "update") == 0) {
        const char *argv[] = { "HSET", a->key, field, value, NULL, "PTTL", a->key };
        demo_add(a, demo_client_new(a, NULL, (int)CS_ARRAY_LEN(argv), argv));
    } else if (strcmp(action, "invalidate") == 0) {
        const char *argv[] = { "DEL", a->key };
        demo_add(a, demo_client_new(a, NULL, (int)CS_ARRAY_LEN(argv), argv));
    } else {
        const char *argv[] = { "DEL", a->key };
        long n = nstr ? strtol(nstr, NULL, 10) : 50;
        a->readers = n < 1 ? 1 : n > DEMO_MAX_READERS ? DEMO_MAX_READERS : (int)n;
        a->across = demo_param(&q, "across") && strcmp(demo_param(&q, "across"), "no") != 0;
        if (!a->across)
            demo_add(a, demo_client_new(a, NULL, (int)CS_ARRAY_LEN(argv), argv));
        else if (heartbeat_list(demo_across_listed, a) != CS_OK)
            demo_across_listed(a, NULL, "Redis is down");
    }
    evhttp_clear_headers(&q);
}
