/* cache.c - the read commands: validate the key, read Redis once, answer a
 * hit straight from the reply, and send misses to the key's flight. */
#include "core.h"
#include "cache.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "fill.h"
#include "flight.h"
#include "log.h"
#include "record.h"
#include "resp.h"
#include "rstore.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cache_on_notice(const char *key, size_t len)
{
    struct flight *f = flight_find(key, len);

    if (f)
        fill_notice(f);
}

/* Notices sent while the subscriber was away are lost: every flight
 * waiting for one acts as if it had come (with the command link up; else
 * the flights find Redis gone on their own). */
static void cache_on_subscribed(void)
{
    if (rstore_ready())
        flight_foreach(fill_notice);
}

void cache_init(void)
{
    rstore_on_notice = cache_on_notice;
    rstore_on_subscribed = cache_on_subscribed;
    fill_init();
}

void cache_shutdown(void)
{
    fill_shutdown((int)cs_conf->command_timeout_ms);
}

void cache_free(void)
{
    flight_free_all();
    fill_free();
}

bool cache_exp_parse(const char *p, size_t len, int64_t *exp)
{
    int64_t v = 0;

    if (len == 0 || len > 18)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *exp = v;
    return true;
}

int cache_parse_key(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns,
                    struct cs_str *id, char *err, size_t errsz)
{
    const char *colon = memchr(key.p, ':', key.len);
    int shown = key.len > 80 ? 80 : (int)key.len;

    if (!colon || colon == key.p) {
        snprintf(err, errsz, "ERR bad key '%.*s%s': expected NAMESPACE:ID", shown, key.p, key.len > 80 ? "..." : "");
        return CS_ERR;
    }
    id->p = colon + 1;
    id->len = key.len - (size_t)(id->p - key.p);
    if (id->len == 0) {
        snprintf(err, errsz, "ERR bad key '%.*s': empty id", shown, key.p);
        return CS_ERR;
    }
    if (id->len > CACHE_ID_MAX) {
        snprintf(err, errsz, "ERR bad key '%.*s...': id longer than %d bytes", shown, key.p, CACHE_ID_MAX);
        return CS_ERR;
    }
    for (size_t i = 0; i < id->len; i++) {
        unsigned char ch = (unsigned char)id->p[i];
        if (ch <= ' ' || ch == 0x7f) {
            snprintf(err, errsz, "ERR bad key: id has whitespace or control characters");
            return CS_ERR;
        }
    }
    /* The id goes inside a {hash tag}: one that starts with '}' would make
     * the tag empty, and Redis Cluster would hash the record and its lock
     * to different slots. */
    if (id->p[0] == '}') {
        snprintf(err, errsz, "ERR bad key '%.*s': id may not start with '}'", shown, key.p);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                *p = '?';
        return CS_ERR;
    }
    *ns = config_ns_find(c, key.p, (size_t)(colon - key.p));
    if (!*ns) {
        int nl = (int)(colon - key.p) > 80 ? 80 : (int)(colon - key.p);
        snprintf(err, errsz, "ERR unknown namespace '%.*s'", nl, key.p);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                *p = '?';
        return CS_ERR;
    }
    return CS_OK;
}

size_t cache_key(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str id, bool lock)
{
    return (size_t)snprintf(buf, CACHE_KEY_MAX, "%s%s%s:{%.*s}", c->key_prefix, lock ? "lock:" : "",
                            ns->name, (int)id.len, id.p);
}

/* Where a slot's answer goes, and what finishing it means. */
static struct evbuffer *cache_dst(struct req_slot *s)
{
    if (s->i < 0)
        return req_out(s->r);
    if (!s->el)
        s->el = evbuffer_new();
    return s->el;
}

static void cache_slot_done(struct req_slot *s)
{
    struct req *r = s->r;

    if (s->i < 0) {
        req_done(r);
        return;
    }
    if (--r->pending > 0)
        return;
    {
        struct req_slot *slots = r->state;
        struct evbuffer *out = req_out(r);
        resp_array(out, r->argc - 1);
        for (int i = 0; i < r->argc - 1; i++)
            if (slots[i].el)
                evbuffer_add_buffer(out, slots[i].el);
        req_done(r);
    }
}

static const struct cs_str *cache_field(const struct record *rec, const struct cs_str *name)
{
    for (int i = 0; i < rec->n; i++)
        if (rec->f[i].len == name->len && memcmp(rec->f[i].p, name->p, name->len) == 0)
            return &rec->v[i];
    return NULL;
}

void cache_answer(struct req_slot *s, struct outcome *o)
{
    struct req *r = s->r;
    struct evbuffer *dst;

    if (!r->conn) {             /* the client left; nothing to say */
        cache_slot_done(s);
        return;
    }
    dst = cache_dst(s);
    if (o->kind == OC_ERROR) {
        blob_append(dst, outcome_err(o));
    } else if (r->cmd->rk == RK_HGETALL) {
        blob_append(dst, outcome_all(o));
    } else if (r->cmd->rk == RK_GET || r->cmd->rk == RK_MGET) {
        blob_append(dst, outcome_body(o));
    } else {
        /* HGET / HMGET pick their own fields: small, encoded per waiter. */
        int nf = r->argc - 2;
        if (r->cmd->rk == RK_HMGET)
            resp_array(dst, nf);
        for (int i = 0; i < nf; i++) {
            const struct cs_str *v = o->kind == OC_RECORD && !record_field_reserved(r->argv[2 + i].p, r->argv[2 + i].len)
                                         ? cache_field(&o->rec, &r->argv[2 + i]) : NULL;
            if (v)
                resp_bulk(dst, v->p, v->len);
            else
                resp_nil(dst);
        }
    }
    cache_slot_done(s);
}

/* A miss (or Redis trouble): join the key's flight or start one. */
static void cache_join(struct req_slot *s, const struct cs_ns *ns, struct cs_str id, bool refresh)
{
    char key[CACHE_KEY_MAX], lock[CACHE_KEY_MAX];
    size_t kl = cache_key(key, s->r->conf, ns, id, false);
    struct flight *f = flight_find(key, kl);

    if (f && f->ns->format != ns->format) {
        /* A reload switched the format: that fill answers in the old shape.
         * Its waiters keep it; this request starts its own. */
        flight_detach(key, kl);
        f = NULL;
    }
    if (f) {
        if (!refresh) {
            stats.coalesced++;
            flight_add_waiter(f, s);
        }
        return;
    }
    f = flight_create(s->r->conf, ns, key, kl, lock, cache_key(lock, s->r->conf, ns, id, true), id.p, id.len);
    f->refresh = refresh;
    if (!refresh)
        flight_add_waiter(f, s);
    fill_start(f);
}

/* Which key a slot reads: argv[1] for single-key commands, argv[1+i] in MGET. */
static struct cs_str cache_slot_key(const struct req_slot *s)
{
    return s->r->argv[s->i < 0 ? 1 : 1 + s->i];
}

/* Answer a hit from the reply itself: HGETALL's array, or HMGET's
 * elements after __exp and __nf. */
static void cache_answer_reply(struct req_slot *s, const redisReply *rep, bool nf)
{
    struct req *r = s->r;
    struct evbuffer *dst = cache_dst(s);
    int rk = r->cmd->rk;

    if (rk == RK_HGETALL) {
        long long n = 0;
        for (size_t i = 0; !nf && i + 1 < rep->elements; i += 2)
            if (!record_field_reserved(rep->element[i]->str, (size_t)rep->element[i]->len))
                n++;
        resp_array(dst, 2 * n);
        for (size_t i = 0; !nf && i + 1 < rep->elements; i += 2) {
            const redisReply *f = rep->element[i], *v = rep->element[i + 1];
            if (record_field_reserved(f->str, (size_t)f->len))
                continue;
            resp_bulk(dst, f->str, (size_t)f->len);
            resp_bulk(dst, v->str, (size_t)v->len);
        }
    } else if (rk == RK_GET || rk == RK_MGET) {
        const redisReply *v = rep->element[2];
        if (!nf && v->type == REDIS_REPLY_STRING)
            resp_bulk(dst, v->str, (size_t)v->len);
        else
            resp_nil(dst);
    } else {
        /* HMGET key __exp __nf __body <fields>: argv[2 + i] is field i. */
        if (rk == RK_HMGET)
            resp_array(dst, (long long)rep->elements - 3);
        for (size_t i = 3; i < rep->elements; i++) {
            const redisReply *v = rep->element[i];
            bool reserved = record_field_reserved(r->argv[i - 1].p, r->argv[i - 1].len);
            if (!nf && !reserved && v->type == REDIS_REPLY_STRING)
                resp_bulk(dst, v->str, (size_t)v->len);
            else
                resp_nil(dst);
        }
    }
    cache_slot_done(s);
}

static void cache_read_cb(void *priv, const redisReply *rep)
{
    struct req_slot *s = priv;
    struct req *r = s->r;
    const struct cs_ns *ns;
    struct cs_str id;
    char err[160];
    int64_t exp = 0;
    bool found = false, nf = false, body = false;

    if (!r->conn) {
        cache_slot_done(s);
        return;
    }
    if (cache_parse_key(r->conf, cache_slot_key(s), &ns, &id, err, sizeof(err)) != CS_OK)
        abort();                /* validated before the read was sent */
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (cs_exiting) {
            resp_error(cache_dst(s), "ERR shutting down");
            cache_slot_done(s);
            return;
        }
        stats.misses++;
        cache_join(s, ns, id, false);   /* the fill finds Redis down: straight to the upstream */
        return;
    }
    if (r->cmd->rk == RK_HGETALL) {
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            const redisReply *f = rep->element[i];
            const redisReply *v = rep->element[i + 1];
            if (f->len == 5 && memcmp(f->str, "__exp", 5) == 0)
                found = cache_exp_parse(v->str, (size_t)v->len, &exp);
            else if (f->len == 4 && memcmp(f->str, "__nf", 4) == 0)
                nf = true;
            else if (f->len == 6 && memcmp(f->str, "__body", 6) == 0)
                body = true;
        }
    } else if (rep->elements >= 3 && rep->element[0]->type == REDIS_REPLY_STRING) {
        found = cache_exp_parse(rep->element[0]->str, (size_t)rep->element[0]->len, &exp);
        nf = rep->element[1]->type == REDIS_REPLY_STRING;
        body = rep->element[2]->type == REDIS_REPLY_STRING;
    }
    /* Everything under key_prefix is ours: a record without a valid __exp
     * or of the other format's shape (left by a reload that switched the
     * format) is a miss, and the fill overwrites it. */
    if (found && !nf && body != (ns->format == NS_RAW))
        found = false;
    if (!found) {
        stats.misses++;
        cache_join(s, ns, id, false);
        return;
    }
    if (ns->c.v[CK_GRACE] > 0 && exp <= fill_redis_now_ms()) {
        /* Stale within grace: answer now, refresh in the background. */
        stats.stale_hits++;
        cache_join(s, ns, id, true);    /* first: answering may free r */
        cache_answer_reply(s, rep, nf);
        return;
    }
    if (nf)
        stats.negative_hits++;
    else
        stats.hits++;
    cache_answer_reply(s, rep, nf);
}

/* Send one slot's read: HGETALL, or HMGET __exp __nf __body <fields> so a
 * single round trip tells presence, freshness and the values. */
static void cache_lookup(struct req_slot *s, const struct cs_ns *ns, struct cs_str id)
{
    struct req *r = s->r;
    char key[CACHE_KEY_MAX];
    const char *argv_small[8], **argv = argv_small;
    size_t lens_small[8], *lens = lens_small;
    int argc = 0, nfields = r->cmd->rk == RK_HGET || r->cmd->rk == RK_HMGET ? r->argc - 2 : 0;
    int rc;

    if (nfields + 5 > 8) {
        argv = cs_malloc(sizeof(*argv) * (size_t)(nfields + 5));
        lens = cs_malloc(sizeof(*lens) * (size_t)(nfields + 5));
    }
#define ARG(p, l) (argv[argc] = (p), lens[argc++] = (l))
    if (r->cmd->rk == RK_HGETALL) {
        ARG("HGETALL", 7);
    } else {
        ARG("HMGET", 5);
    }
    ARG(key, cache_key(key, r->conf, ns, id, false));
    if (r->cmd->rk != RK_HGETALL) {
        ARG("__exp", 5);
        ARG("__nf", 4);
        ARG("__body", 6);       /* the shape tells raw records from hashes */
    }
    for (int i = 0; i < nfields; i++)
        ARG(r->argv[2 + i].p, r->argv[2 + i].len);
#undef ARG
    rc = rstore_cmd(cache_read_cb, s, argc, argv, lens);
    if (argv != argv_small) {
        free(argv);
        free(lens);
    }
    if (rc != CS_OK) {
        stats.misses++;
        cache_join(s, ns, id, false);
    }
}

static bool cache_type_ok(const struct req *r, const struct cs_ns *ns)
{
    bool raw_cmd = r->cmd->rk == RK_GET || r->cmd->rk == RK_MGET;

    return raw_cmd == (ns->format == NS_RAW);
}

static const char cache_wrongtype[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

void cache_cmd_read(struct req *r)
{
    const struct cs_ns *ns;
    struct cs_str id;
    char err[200];

    if (cache_parse_key(r->conf, r->argv[1], &ns, &id, err, sizeof(err)) != CS_OK) {
        resp_error(req_out(r), err);
        req_done(r);
        return;
    }
    if (!cache_type_ok(r, ns)) {
        resp_error(req_out(r), cache_wrongtype);
        req_done(r);
        return;
    }
    r->one.r = r;
    r->one.i = -1;
    r->ns = ns;
    cache_lookup(&r->one, ns, id);
}

static void cache_mget_free(void *p)
{
    struct req_slot *slots = p;

    for (int i = 0; slots[i].r; i++)
        if (slots[i].el)
            evbuffer_free(slots[i].el);
    free(slots);
}

void cache_cmd_mget(struct req *r)
{
    const struct cs_ns *ns;
    struct cs_str id;
    struct req_slot *slots;
    char err[200];
    int n = r->argc - 1;

    /* Every key is checked before any is read: all or nothing. */
    for (int i = 1; i < r->argc; i++) {
        if (cache_parse_key(r->conf, r->argv[i], &ns, &id, err, sizeof(err)) != CS_OK) {
            resp_error(req_out(r), err);
            req_done(r);
            return;
        }
        if (!cache_type_ok(r, ns)) {
            resp_error(req_out(r), cache_wrongtype);
            req_done(r);
            return;
        }
    }
    slots = cs_calloc((size_t)n + 1, sizeof(*slots));   /* r == NULL ends it */
    r->state = slots;
    r->state_free = cache_mget_free;
    r->pending = n;
    for (int i = 0; i < n; i++) {
        slots[i].r = r;
        slots[i].i = i;
    }
    for (int i = 0; i < n; i++) {
        if (cache_parse_key(r->conf, r->argv[1 + i], &ns, &id, err, sizeof(err)) != CS_OK)
            abort();
        cache_lookup(&slots[i], ns, id);
    }
}

static void cache_ttl_cb(void *priv, const redisReply *rep)
{
    struct req *r = priv;
    struct evbuffer *out = req_out(r);

    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        resp_error(out, "TRYAGAIN cache unavailable");
    } else if (rep->integer < 0 || strcmp(r->cmd->name, "pttl") == 0) {
        resp_int(out, rep->integer);
    } else {
        resp_int(out, (rep->integer + 500) / 1000);  /* rounded, as Redis's TTL */
    }
    req_done(r);
}

void cache_cmd_ttl(struct req *r)
{
    const struct cs_ns *ns;
    struct cs_str id;
    char err[200], key[CACHE_KEY_MAX];
    const char *argv[2] = { "PTTL", key };
    size_t lens[2] = { 4, 0 };

    if (cache_parse_key(r->conf, r->argv[1], &ns, &id, err, sizeof(err)) != CS_OK) {
        resp_error(req_out(r), err);
        req_done(r);
        return;
    }
    lens[1] = cache_key(key, r->conf, ns, id, false);
    if (rstore_cmd(cache_ttl_cb, r, 2, argv, lens) != CS_OK) {
        resp_error(req_out(r), "TRYAGAIN cache unavailable");
        req_done(r);
    }
}
