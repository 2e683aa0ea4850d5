/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_rstore.c - the Redis layer's interface in memory (fake_rstore.h):
 * linked into unit tests instead of src/redis's library. */
#include "core.h"
#include "fake_rstore.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAKE_SCRIPTS 16
#define FAKE_CHANS 64

bool fake_ready = true;
enum rstore_listen fake_listen_answer = RL_PENDING;

void (*rstore_on_notice)(const char *chan, size_t len, const char *msg, size_t msglen);
void (*rstore_on_listening)(const char *chan, size_t len);
void (*rstore_on_subscribed)(void);
void (*rstore_on_invalidate)(const char *key, size_t len);
void (*rstore_on_tracking)(bool on);

/* No tracking here: the near cache keeps nothing. */
uint64_t rstore_tracking(void)
{
    return 0;
}

static struct {
    const char *name;
    rstore_late_cb late;
} fake_script[FAKE_SCRIPTS];
static int fake_nscripts;

static struct fake_cmd *fake_head, **fake_tail = &fake_head;

static struct {
    char *chan;
    int n;
} fake_chan[FAKE_CHANS];

static void fake_cmd_free(struct fake_cmd *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->lens);
    free(c);
}

void fake_reset(void)
{
    struct fake_cmd *c;

    while ((c = fake_head) != NULL) {
        fake_head = c->next;
        fake_cmd_free(c);
    }
    fake_tail = &fake_head;
    for (int i = 0; i < FAKE_CHANS; i++) {
        free(fake_chan[i].chan);
        fake_chan[i].chan = NULL;
        fake_chan[i].n = 0;
    }
    fake_ready = true;
    fake_listen_answer = RL_PENDING;
}

static int fake_queue(const char *name, int script, bool each, unsigned at, int nkeys, int argc,
                      const char **argv, const size_t *lens, rstore_cb cb, void *priv)
{
    struct fake_cmd *c;

    if (!fake_ready)
        return CS_ERR;
    c = cs_calloc(1, sizeof(*c));
    c->script = script;
    c->each = each;
    c->at = at;
    c->nkeys = nkeys;
    c->argc = argc;
    c->argv = cs_calloc((size_t)argc + 1, sizeof(*c->argv));
    c->lens = cs_calloc((size_t)argc + 1, sizeof(*c->lens));
    for (int i = 0; i < argc; i++) {
        c->argv[i] = cs_malloc(lens[i] + 1);
        memcpy(c->argv[i], argv[i], lens[i]);
        c->argv[i][lens[i]] = '\0';
        c->lens[i] = lens[i];
    }
    c->name = name ? name : c->argv[0];
    c->cb = cb;
    c->priv = priv;
    *fake_tail = c;
    fake_tail = &c->next;
    return CS_OK;
}

int fake_pending(void)
{
    int n = 0;

    for (struct fake_cmd *c = fake_head; c; c = c->next)
        n++;
    return n;
}

struct fake_cmd *fake_find(const char *name)
{
    for (struct fake_cmd *c = fake_head; c; c = c->next)
        if (!name || strcasecmp(c->name, name) == 0)
            return c;
    return NULL;
}

int fake_count(const char *name)
{
    int n = 0;

    for (struct fake_cmd *c = fake_head; c; c = c->next)
        n += strcasecmp(c->name, name) == 0;
    return n;
}

const char *fake_arg(const struct fake_cmd *c, int i)
{
    return i >= 0 && i < c->argc ? c->argv[i] : NULL;
}

/* Off the queue before its callback runs: the callback may send more. */
static void fake_unlink(struct fake_cmd *c)
{
    struct fake_cmd **p = &fake_head;

    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    if (fake_tail == &c->next)
        fake_tail = p;
}

void fake_answer(struct fake_cmd *c, redisReply *r)
{
    fake_unlink(c);
    c->cb(c->priv, r);
    fake_cmd_free(c);
    if (r)
        fake_reply_free(r);
}

void fake_answer_late(struct fake_cmd *c, redisReply *r)
{
    struct cs_str args[16];
    int n = c->argc < 16 ? c->argc : 16;

    fake_unlink(c);
    c->cb(c->priv, NULL);
    for (int i = 0; i < n; i++) {
        args[i].p = c->argv[i];
        args[i].len = c->lens[i];
    }
    if (c->script >= 0 && fake_script[c->script].late)
        fake_script[c->script].late(r, n, args);
    fake_cmd_free(c);
    fake_reply_free(r);
}

/* ---- listening ---- */

static int fake_chan_at(const char *chan, size_t len, bool add)
{
    int free_at = -1;

    for (int i = 0; i < FAKE_CHANS; i++) {
        if (fake_chan[i].chan && strlen(fake_chan[i].chan) == len && memcmp(fake_chan[i].chan, chan, len) == 0)
            return i;
        if (!fake_chan[i].chan && free_at < 0)
            free_at = i;
    }
    if (!add || free_at < 0)
        return -1;
    fake_chan[free_at].chan = cs_malloc(len + 1);
    memcpy(fake_chan[free_at].chan, chan, len);
    fake_chan[free_at].chan[len] = '\0';
    return free_at;
}

enum rstore_listen rstore_listen(const char *chan, size_t len)
{
    int i;

    if (fake_listen_answer == RL_FULL || (i = fake_chan_at(chan, len, true)) < 0)
        return RL_FULL;
    fake_chan[i].n++;
    return fake_listen_answer;
}

void rstore_unlisten(const char *chan, size_t len)
{
    int i = fake_chan_at(chan, len, false);

    if (i >= 0 && fake_chan[i].n > 0)
        fake_chan[i].n--;
}

int fake_listening(const char *chan)
{
    int i = fake_chan_at(chan, strlen(chan), false);

    return i < 0 ? 0 : fake_chan[i].n;
}

void fake_confirm(const char *chan)
{
    if (rstore_on_listening)
        rstore_on_listening(chan, strlen(chan));
}

void fake_notice(const char *chan, const char *msg)
{
    if (rstore_on_notice)
        rstore_on_notice(chan, strlen(chan), msg, strlen(msg));
}

void fake_resubscribed(void)
{
    if (rstore_on_subscribed)
        rstore_on_subscribed();
}

/* ---- the interface ---- */

int rstore_script_add(const char *name, const char *src, rstore_late_cb late)
{
    CS_UNUSED(src);
    for (int i = 0; i < fake_nscripts; i++)
        if (strcmp(fake_script[i].name, name) == 0) {
            fake_script[i].late = late;     /* again in the next test */
            return i;
        }
    if (fake_nscripts == FAKE_SCRIPTS)
        return CS_ERR;
    fake_script[fake_nscripts].name = name;
    fake_script[fake_nscripts].late = late;
    return fake_nscripts++;
}

bool rstore_ready(void)
{
    return fake_ready;
}

bool rstore_ready_for(const char *key, size_t len)
{
    CS_UNUSED(key);
    CS_UNUSED(len);
    return fake_ready;
}

void rstore_flush(void)
{
}

int rstore_cmd(rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    return fake_queue(NULL, -1, false, 0, 0, argc, argv, lens, cb, priv);
}

static const char *fake_script_name(int s)
{
    return s >= 0 && s < fake_nscripts ? fake_script[s].name : "?";
}

int rstore_eval(int s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
    return fake_queue(fake_script_name(s), s, false, 0, nkeys, argc, argv, lens, cb, priv);
}

int rstore_eval_each(int s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
    return fake_queue(fake_script_name(s), s, true, 0, nkeys, argc, argv, lens, cb, priv);
}

/* One server, id 1, whose keys never move. */
uint64_t rstore_epoch(void)
{
    return 1;
}

int rstore_servers(unsigned *ids, int max)
{
    if (!fake_ready)
        return 0;
    if (max > 0)
        ids[0] = 1;
    return 1;
}

int rstore_cmd_at(unsigned id, rstore_cb cb, void *priv, int argc, const char **argv, const size_t *lens)
{
    return fake_queue(NULL, -1, false, id, 0, argc, argv, lens, cb, priv);
}

int rstore_settle(rstore_settle_cb cb, void *priv)
{
    if (!fake_ready)
        return CS_ERR;
    cb(priv, RSET_SAME);
    return CS_OK;
}
