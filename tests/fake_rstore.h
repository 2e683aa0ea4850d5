/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_rstore.h - an in-memory stand-in for the Redis layer's interface
 * (src/redis/rstore.h) in unit tests of the floors above it: nothing is
 * sent anywhere. Each command (rstore_cmd, rstore_cmd_at, a script through
 * rstore_eval or rstore_eval_each) is queued with a copy of its arguments,
 * and the test answers it, in the order it chooses, with a reply it builds
 * (or none: a timeout or a lost link), or answers it late, as the layer does
 * when a script's reply comes after its deadline. Listening is counted per
 * channel; notices and confirmations are delivered when the test says. */
#ifndef CS_FAKE_RSTORE_H
#define CS_FAKE_RSTORE_H

#include "core.h"
#include "rstore.h"
#include "fake_reply.h"

struct redisReply;

/* One command the code under test sent, waiting for the test's answer. */
struct fake_cmd {
    const char *name;           /* argv[0] of a command; a script's name (rstore_script_add) */
    int script;                 /* -1: a command */
    bool each;                  /* rstore_eval_each */
    unsigned at;                /* rstore_cmd_at's server id, else 0 */
    int nkeys, argc;
    char **argv;                /* copies, NUL-terminated */
    size_t *lens;
    rstore_cb cb;
    void *priv;
    struct fake_cmd *next;
};

/* What the fake answers on its own (set by the test; fake_reset restores
 * them): whether the layer is ready, and rstore_listen's answer. */
extern bool fake_ready;
extern enum rstore_listen fake_listen_answer;

/* Frees what is still queued (without calling back) and the counts. */
void fake_reset(void);
/* Commands waiting for an answer. */
int fake_pending(void);
/* The oldest waiting command named NAME (a command's argv[0], case
 * insensitive, or a script's name; NULL: any), or NULL; it stays queued. */
struct fake_cmd *fake_find(const char *name);
/* How many of those are waiting. */
int fake_count(const char *name);
/* Answers C with R (NULL: no reply), then frees both. */
void fake_answer(struct fake_cmd *c, struct redisReply *r);
/* C's deadline passed (its callback hears NULL), then R came: handed to
 * the late callback its script registered, if any. Frees both. */
void fake_answer_late(struct fake_cmd *c, struct redisReply *r);
/* argv[i] of C as a string (NULL past argc). */
const char *fake_arg(const struct fake_cmd *c, int i);

/* How many listens on CHAN are not yet ended by an unlisten. */
int fake_listening(const char *chan);
/* Redis confirms listening on CHAN; a message MSG arrives on CHAN; a
 * subscriber link is set up again. Through the owner's hooks. */
void fake_confirm(const char *chan);
void fake_notice(const char *chan, const char *msg);
void fake_resubscribed(void);

#endif
