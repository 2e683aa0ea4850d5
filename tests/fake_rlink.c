/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_rlink.c - the links of fake_rlink.h, and what rcluster.c needs of
 * rsub.c (the subscriber side, not under test here). */
#include "core.h"
#include "fake_rlink.h"
#include "fake_reply.h"
#include "rsub.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_LINKS 32

struct fake_sent {
    char *text;
    rstore_cb cb;
    void *priv;
    struct fake_sent *next;
};

struct rlink {
    char name[300], host[256];
    int port;
    unsigned flags;
    bool up;
    const struct rlink_hooks *hooks;
    void *owner;
    struct fake_sent *head;
};

bool fake_rlink_autoup;
static struct rlink *fake_links[FAKE_LINKS];

struct rlink *rlink_new(const char *name, const char *host, int port, const char *path, unsigned flags,
                        const char *channel, const struct rlink_hooks *hooks, void *owner)
{
    struct rlink *n = cs_calloc(1, sizeof(*n));
    int i = 0;

    CS_UNUSED(path);
    CS_UNUSED(channel);
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    n->flags = flags;
    n->hooks = hooks;
    n->owner = owner;
    n->up = fake_rlink_autoup;
    while (i < FAKE_LINKS && fake_links[i])
        i++;
    if (i == FAKE_LINKS)
        cs_panic("fake_rlink: too many links");
    fake_links[i] = n;
    return n;
}

static void fake_sent_free(struct fake_sent *s)
{
    free(s->text);
    free(s);
}

void rlink_free(struct rlink *n)
{
    struct fake_sent *s;

    if (!n)
        return;
    while ((s = n->head) != NULL) {
        n->head = s->next;
        s->cb(s->priv, NULL);
        fake_sent_free(s);
    }
    for (int i = 0; i < FAKE_LINKS; i++)
        if (fake_links[i] == n)
            fake_links[i] = NULL;
    free(n);
}

struct rlink *fake_rlink_find(const char *host, int port, unsigned flags)
{
    struct rlink *found = NULL;

    for (int i = 0; i < FAKE_LINKS; i++) {
        struct rlink *n = fake_links[i];
        if (n && n->port == port && strcmp(n->host, host) == 0 && (n->flags & RLINK_SUBSCRIBER) == flags)
            found = n;
    }
    return found;
}

int fake_rlink_count(void)
{
    int k = 0;

    for (int i = 0; i < FAKE_LINKS; i++)
        k += fake_links[i] != NULL;
    return k;
}

int fake_rlink_alive(void)
{
    return fake_rlink_count();
}

void fake_rlink_set_up(struct rlink *n, bool up)
{
    struct fake_sent *s;

    n->up = up;
    if (up) {
        if (n->hooks && n->hooks->up)
            n->hooks->up(n, n->owner);
        return;
    }
    while ((s = n->head) != NULL) {
        n->head = s->next;
        s->cb(s->priv, NULL);
        fake_sent_free(s);
    }
    if (n->hooks && n->hooks->down)
        n->hooks->down(n, n->owner);
}

const char *fake_rlink_next(const struct rlink *n)
{
    return n->head ? n->head->text : NULL;
}

int fake_rlink_pending(const struct rlink *n)
{
    int k = 0;

    for (const struct fake_sent *s = n->head; s; s = s->next)
        k++;
    return k;
}

void fake_rlink_answer(struct rlink *n, redisReply *r)
{
    struct fake_sent *s = n->head;

    if (!s)
        cs_panic("fake_rlink: no command waits on %s", n->name);
    n->head = s->next;
    s->cb(s->priv, r);
    fake_sent_free(s);
    if (r)
        fake_reply_free(r);
}

static void fake_queue_text(struct rlink *n, char *text, rstore_cb cb, void *priv)
{
    struct fake_sent *s = cs_calloc(1, sizeof(*s)), **p = &n->head;

    s->text = text;
    s->cb = cb;
    s->priv = priv;
    while (*p)
        p = &(*p)->next;
    *p = s;
}

int rlink_send(struct rlink *n, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens,
               int script)
{
    size_t total = 1;
    char *t;

    CS_UNUSED(script);
    if (!n->up)
        return CS_ERR;
    for (int i = 0; i < argc; i++)
        total += (lens ? lens[i] : strlen(argv[i])) + 1;
    t = cs_calloc(1, total);
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(t, " ");
        strncat(t, argv[i], lens ? lens[i] : strlen(argv[i]));
    }
    fake_queue_text(n, t, cb, priv);
    return CS_OK;
}

/* A RESP array of bulk strings back to its arguments joined by spaces. */
int rlink_send_buf(struct rlink *n, rstore_cb cb, void *priv, const char *fmt, size_t len, int script)
{
    const char *p = fmt, *end = fmt + len;
    char *t = cs_calloc(1, len + 1);
    long argc;

    CS_UNUSED(script);
    if (!n->up) {
        free(t);
        return CS_ERR;
    }
    argc = strtol(p + 1, NULL, 10);
    p = strchr(p, '\n') + 1;
    for (long i = 0; i < argc && p < end; i++) {
        long l = strtol(p + 1, NULL, 10);
        p = strchr(p, '\n') + 1;
        if (i)
            strcat(t, " ");
        strncat(t, p, (size_t)l);
        p += l + 2;
    }
    fake_queue_text(n, t, cb, priv);
    return CS_OK;
}

void rlink_evalsha(struct rlink_evalsha *e, int s, int nkeys, int argc, const char **argv, const size_t *lens)
{
    static char sha[16];

    snprintf(sha, sizeof(sha), "script%d", s);
    snprintf(e->nkeys, sizeof(e->nkeys), "%d", nkeys);
    e->av = e->av_stack;
    e->al = e->al_stack;
    if (argc + 3 > RLINK_EVAL_STACK) {
        e->av = cs_malloc(sizeof(*e->av) * (size_t)(argc + 3));
        e->al = cs_malloc(sizeof(*e->al) * (size_t)(argc + 3));
    }
    e->av[0] = "EVALSHA";
    e->al[0] = 7;
    e->av[1] = sha;
    e->al[1] = strlen(sha);
    e->av[2] = e->nkeys;
    e->al[2] = strlen(e->nkeys);
    for (int i = 0; i < argc; i++) {
        e->av[3 + i] = argv[i];
        e->al[3 + i] = lens[i];
    }
    e->argc = argc + 3;
}

void rlink_evalsha_done(struct rlink_evalsha *e)
{
    if (e->av != e->av_stack) {
        free(e->av);
        free(e->al);
    }
}

void rlink_target(struct rlink *n, const char *host, int port)
{
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
}

bool rlink_up(const struct rlink *n)
{
    return n && n->up;
}

bool rlink_idle(const struct rlink *n)
{
    return !n->head;
}

const char *rlink_host(const struct rlink *n)
{
    return n->host;
}

int rlink_port(const struct rlink *n)
{
    return n->port;
}

const char *rlink_name(const struct rlink *n)
{
    return n->name;
}

/* Client tracking (rtrack.c) is linked but never enabled here. */
long long rlink_client_id(const struct rlink *n)
{
    CS_UNUSED(n);
    return 0;
}

void (*rstore_on_invalidate)(const char *key, size_t len);
void (*rstore_on_tracking)(bool on);

const char *rlink_status(const struct rlink *n)
{
    return n->up ? NULL : "down";
}

const char *rlink_state_name(const struct rlink *n)
{
    return n->up ? "up" : "down";
}

void rlink_links_add(const struct rlink *n, struct rstore_links *l)
{
    if (n)
        l->pending += fake_rlink_pending(n);
}

bool rlink_redirection(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
            strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/* ---- rsub.c: the subscribers are not what this fake tests ---- */

const struct rlink_hooks rsub_hooks;

void rsub_link_gone(struct rlink *n)
{
    CS_UNUSED(n);
}

void rsub_replace(void)
{
}

void rsub_report(struct stats_sink *s)
{
    CS_UNUSED(s);
}
