/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_rlink.h - Redis links in memory (the redis floor's rlink.h), for a
 * unit test of a topology (rcluster.c): a link is up when the test says,
 * and each command sent on it waits, as its arguments joined by spaces,
 * for the test to answer it (fake_rlink.c). */
#ifndef CS_FAKE_RLINK_H
#define CS_FAKE_RLINK_H

#include "core.h"
#include "rlink.h"

struct redisReply;

/* Links made from now on start up (true) or down. */
extern bool fake_rlink_autoup;

/* The link to HOST:PORT made with FLAGS' bits (RLINK_SUBSCRIBER: its
 * subscriber), the newest if several; NULL: none. */
struct rlink *fake_rlink_find(const char *host, int port, unsigned flags);
/* How many links exist now. */
int fake_rlink_count(void);
/* The link goes up (its owner's up hook runs) or down (its commands fail
 * with no reply, then the down hook). */
void fake_rlink_set_up(struct rlink *n, bool up);
/* The oldest command waiting on N ("HGET foo f"), or NULL. */
const char *fake_rlink_next(const struct rlink *n);
/* Commands waiting on N. */
int fake_rlink_pending(const struct rlink *n);
/* Answers N's oldest command with R (NULL: none), then frees R. */
void fake_rlink_answer(struct rlink *n, struct redisReply *r);
/* Every link still there (a test's leak check): should be 0 after free. */
int fake_rlink_alive(void);

#endif
