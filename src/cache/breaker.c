/* SPDX-License-Identifier: BSD-3-Clause */
/* breaker.c - each namespace's circuit breaker, shared by every daemon on
 * one Redis (docs/design.md section 15).
 *
 * The state lives in Redis (lua/breaker.lua, one hash per namespace), so a
 * failure any daemon sees counts for all. A daemon asks it before each
 * upstream fetch and reports each fetch's result: only a miss that would
 * fetch pays the round trip, never a hit. What a reply says is kept here:
 * while the open period it named is not over, a miss is refused at once,
 * without asking Redis again. When the period ends the next ask takes
 * the probe (one daemon at a time: a lock in the hash for upstream_timeout_ms
 * plus a second); the others keep refusing until its result closes or
 * re-opens the breaker. Redis out of reach: what is kept here decides,
 * and a fetch goes when nothing says open. */
#include "core.h"
#include "breaker.h"
#include "log.h"
#include "scripts.h"
#include "stats.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BS_CLOSED, BS_OPEN, BS_HALF };

/* What this daemon knows of a namespace's breaker. */
struct breaker_ns {
    char name[64];
    int state;
    int64_t open_until;         /* mono ms: refuse without asking until then */
};

#define BREAKER_NS_MAX 256
static struct breaker_ns breaker_nss[BREAKER_NS_MAX];
static int breaker_nns;

/* One script call under way: the namespace by name (a reload may free ns). */
struct breaker_call {
    char name[64];
    breaker_cb *cb;
    void *priv;
};

static struct breaker_ns *breaker_get(const struct cs_ns *ns)
{
    size_t len = ns->namelen < 63 ? ns->namelen : 63;

    for (int i = 0; i < breaker_nns; i++)
        if (strlen(breaker_nss[i].name) == len && memcmp(breaker_nss[i].name, ns->name, len) == 0)
            return &breaker_nss[i];
    if (breaker_nns == BREAKER_NS_MAX)
        return &breaker_nss[BREAKER_NS_MAX - 1];  /* past the cap they share the last one */
    memcpy(breaker_nss[breaker_nns].name, ns->name, len);
    return &breaker_nss[breaker_nns++];
}

static struct breaker_ns *breaker_by_name(const char *name)
{
    for (int i = 0; i < breaker_nns; i++)
        if (strcmp(breaker_nss[i].name, name) == 0)
            return &breaker_nss[i];
    return NULL;
}

bool breaker_on(const struct cs_ns *ns)
{
    return ns->c.v[CK_BRK_FAILS] > 0;
}

bool breaker_open_here(const struct cs_ns *ns)
{
    struct breaker_ns *b;

    if (!breaker_on(ns))
        return false;
    b = breaker_get(ns);
    return b->state == BS_OPEN && cs_mono_ms() < b->open_until;
}

static void breaker_set(struct breaker_ns *b, int state)
{
    static const char *const names[] = { "closed", "open", "half-open" };

    if (b->state != state)
        log_info("breaker %s: %s (was %s)", b->name, names[state], names[b->state]);
    b->state = state;
    stats_ns_get(b->name, strlen(b->name))->breaker = state;
}

/* The script's {state, open until, now, changed, go}: learn it; returns go
 * (-1: no usable reply). */
static int breaker_learn(struct breaker_call *c, const redisReply *rep)
{
    struct breaker_ns *b = breaker_by_name(c->name);
    long long v[5];

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5)
        return -1;
    for (int i = 0; i < 5; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
        v[i] = rep->element[i]->integer;
    }
    if (b) {
        if (v[0] < BS_CLOSED || v[0] > BS_HALF)
            return -1;
        breaker_set(b, (int)v[0]);
        b->open_until = v[0] == BS_OPEN ? cs_mono_ms() + (v[1] - v[2]) : 0;
    }
    if (v[3])
        stats_c.breaker_changes++;
    return (int)v[4];
}

static void breaker_ask_cb(void *priv, const redisReply *rep)
{
    struct breaker_call *c = priv;
    struct breaker_ns *b = breaker_by_name(c->name);
    int go = breaker_learn(c, rep);

    if (go < 0)                 /* Redis gave no answer: what we know decides */
        go = !(b && b->state == BS_OPEN && cs_mono_ms() < b->open_until);
    c->cb(c->priv, go != 0);
    free(c);
}

static void breaker_report_cb(void *priv, const redisReply *rep)
{
    struct breaker_call *c = priv;

    if (rep && rep->type == REDIS_REPLY_ERROR)
        log_limited(LOG_WARNING, "breaker %s: Redis refused the report: %s", c->name, rep->str);
    (void)breaker_learn(c, rep);
    free(c);
}

/* Run breaker.lua for ns: OP is ask, ok or fail. */
static int breaker_eval(const struct cs_config *conf, const struct cs_ns *ns, const char *op, rstore_cb cb,
                        struct breaker_call *c)
{
    char key[256], fails[24], open[24], probe[24];
    const char *argv[5] = { key, op, fails, open, probe };
    size_t lens[5];
    int kl = snprintf(key, sizeof(key), "%sbreaker:{%.*s}:state", conf->key_prefix, (int)ns->namelen, ns->name);

    if (kl < 0 || (size_t)kl >= sizeof(key))
        return CS_ERR;
    snprintf(fails, sizeof(fails), "%lld", ns->c.v[CK_BRK_FAILS]);
    snprintf(open, sizeof(open), "%lld", ns->c.v[CK_BRK_OPEN]);
    /* A probe that neither answers nor times out (its daemon died) frees
     * the way for another after this long. */
    snprintf(probe, sizeof(probe), "%lld", ns->c.v[CK_UP_TIMEOUT] + 1000);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    snprintf(c->name, sizeof(c->name), "%.*s", (int)(ns->namelen < 63 ? ns->namelen : 63), ns->name);
    (void)breaker_get(ns);
    return scripts_eval(SCRIPT_BREAKER, cb, c, 1, 5, argv, lens);
}

void breaker_ask(const struct cs_config *conf, const struct cs_ns *ns, breaker_cb *cb, void *priv)
{
    struct breaker_call *c = cs_calloc(1, sizeof(*c));

    c->cb = cb;
    c->priv = priv;
    if (breaker_eval(conf, ns, "ask", breaker_ask_cb, c) != CS_OK) {
        free(c);
        cb(priv, !breaker_open_here(ns));
    }
}

void breaker_report(const struct cs_config *conf, const struct cs_ns *ns, enum breaker_result r)
{
    struct breaker_call *c = cs_calloc(1, sizeof(*c));

    if (breaker_eval(conf, ns, r == BR_OK ? "ok" : "fail", breaker_report_cb, c) != CS_OK)
        free(c);
}
