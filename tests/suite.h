/* SPDX-License-Identifier: BSD-3-Clause */
/* suite.h - what the Check suites share on top of the harness: reply
 * assertions, STATS counters, waiting for the upstream, and a table-driven
 * main. */
#ifndef CACHASIDED_TESTS_SUITE_H
#define CACHASIDED_TESTS_SUITE_H

#include "harness.h"

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The raw reply is exactly `want`; frees it. */
#define CK_REPLY(expr, want) do { \
        char *got_ = (expr); \
        const char *want_ = (want); \
        ck_assert_msg(got_ != NULL && strcmp(got_, want_) == 0, "%s: got %s, want %s", \
                      #expr, h_repr(got_), h_repr(want_)); \
        free(got_); \
    } while (0)

/* The raw reply starts with `want` (errors that carry the key); frees it. */
#define CK_PREFIX(expr, want) do { \
        char *got_ = (expr); \
        const char *want_ = (want); \
        ck_assert_msg(got_ != NULL && strncmp(got_, want_, strlen(want_)) == 0, \
                      "%s: got %s, want it to start with %s", #expr, h_repr(got_), h_repr(want_)); \
        free(got_); \
    } while (0)

/* The reply to a command must be exactly `want` (raw RESP). */
#define EXPECT_RAW(want, fd, ...) CK_REPLY(su_rawq((fd), __VA_ARGS__, NULL), (want))

/* One command (arguments NULL-terminated): its raw reply (free it), its
 * parsed reply (h_reply_free) or its integer; each fails the test when no
 * reply comes within H_TIMEOUT_MS, su_qint also when it is not an integer. */
char *su_vcmd(int fd, int timeout_ms, va_list ap);
char *su_rawq(int fd, ...) H_SENTINEL;
struct h_reply *su_q(int fd, ...) H_SENTINEL;
long long su_qint(int fd, ...) H_SENTINEL;
/* DBSIZE of the Redis at FD leaving out the hash every daemon writes its
 * heartbeat in every 2 s (cache:daemons, docs/admin.md): what the cache holds. */
long long su_dbsize(int fd);
/* An integer reply's value; frees raw. */
long long su_take_int(char *raw);
/* A counter of STATS ("name:value"), asked on fd or on a new connection to
 * port; fails the test when there is no such line. */
long long su_stat(int fd, const char *name);
long long su_stat_port(int port, const char *name);
/* Waits until the daemon's Redis link answers (a PTTL through it gives
 * :-2) and its subscriber has subscribed to cache:fills; fails otherwise. */
void su_wait_linked(const struct h_daemon *d);
/* Waits until the log past offset FROM says both Redis links are up
 * ("redis: connected", "subscribed to cache:fills"); fails otherwise. */
void su_wait_log_linked(const struct h_daemon *d, long from);
/* Waits up to TIMEOUT_MS until EXISTS key on Redis (fd rfd) is WANT:
 * 0 when it is, -1 when it never was. A record's key exists from when its
 * first fill takes the lock: su_wait_cached waits for the record itself. */
int su_wait_cached(int rfd, const char *key, int timeout_ms);
int su_wait_exists(int rfd, const char *key, int want, int timeout_ms);
/* A growing buffer of RESP commands, sent in one write: su_pipe_cmd
 * appends one (NULL-terminated words), su_pipe_add raw bytes, su_pipe_send
 * writes it all and empties it. Start it zeroed. */
struct su_pipe {
    char *p;
    size_t len, cap;
};
void su_pipe_add(struct su_pipe *b, const char *s, size_t n);
void su_pipe_cmd(struct su_pipe *b, const char *w, ...) H_SENTINEL;
void su_pipe_send(int fd, struct su_pipe *b);
/* Redis's clock in ms (TIME on fd rfd). */
long long su_redis_time_ms(int rfd);
/* PUBSUB SHARDNUMSUB CHAN on the Redis at PORT: how many clients listen. */
long long su_shard_numsub(int port, const char *chan);
/* Waits up to TIMEOUT_MS until su_shard_numsub(port, chan) is WANT: 0, or -1. */
int su_wait_shard_numsub(int port, const char *chan, long long want, int timeout_ms);
/* A fill lock as lock.lua takes one, in record KEY's own hash: __lock =
 * TOKEN, lapsing in PX ms (PX 0: no __lockexp, a lock that never was
 * taken by a daemon); a hash without a record then lives PX ms. */
void su_set_lock(int rfd, const char *key, const char *token, long long px);
/* 1 when record KEY's hash holds a fill lock (__lock), else 0. */
long long su_locked(int rfd, const char *key);
/* Waits up to TIMEOUT_MS until su_locked(rfd, key) is WANT: 0, or -1. */
int su_wait_locked(int rfd, const char *key, int want, int timeout_ms);
/* The counter NAME ("syscr") of /proc/PID/FILE ("io"); fails the test
 * when the file or the line is missing. */
long long su_proc_counter(pid_t pid, const char *file, const char *name);
/* raw is the HGETALL reply of generated product p-<i> (the example
 * upstream's -g N): fails unless it is that record. */
void su_expect_product(const char *raw, int i);
/* Waits until the upstream has had n requests for id; fails otherwise. */
void su_wait_upstream_id(struct h_upstream *u, const char *id, long n, int timeout_ms);

/* One test case: a name for CK_RUN_CASE, the test, its timeout, and for a
 * loop test how many times it runs (_i from 0). Every case runs with
 * h_cleanup as its teardown. */
struct su_case {
    const char *name;
    const TTest *fn;
    int timeout_s;
    int loops;
};

/* Runs the cases as one suite; returns main's exit status. */
int su_run(const char *suite, const struct su_case *cases, size_t n, enum print_output mode);
#define SU_RUN(suite, cases, mode) su_run((suite), (cases), sizeof(cases) / sizeof((cases)[0]), (mode))

#endif
