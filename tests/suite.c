/* SPDX-License-Identifier: BSD-3-Clause */
/* suite.c - helpers the Check suites share (see suite.h). */
#define _GNU_SOURCE
#include "suite.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long long su_take_int(char *raw)
{
    long long v = h_reply_int(raw);

    free(raw);
    return v;
}

char *su_vcmd(int fd, int timeout_ms, va_list ap)
{
    const char *argv[64];
    int argc = 0;
    const char *a;

    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(argc, 64);
        argv[argc++] = a;
    }
    if (h_send_cmd(fd, argc, argv) != 0)
        return NULL;
    return h_read_reply(fd, timeout_ms);
}

char *su_rawq(int fd, ...)
{
    va_list ap;
    char *raw;

    va_start(ap, fd);
    raw = su_vcmd(fd, H_DEFAULT, ap);
    va_end(ap);
    ck_assert_msg(raw != NULL, "no reply within %d ms", H_TIMEOUT_MS);
    return raw;
}

struct h_reply *su_q(int fd, ...)
{
    va_list ap;
    struct h_reply *r;
    char *raw;

    va_start(ap, fd);
    raw = su_vcmd(fd, H_DEFAULT, ap);
    va_end(ap);
    ck_assert_msg(raw != NULL, "no reply within %d ms", H_TIMEOUT_MS);
    r = h_parse_reply(raw);
    free(raw);
    return r;
}

long long su_qint(int fd, ...)
{
    va_list ap;
    long long v;
    char *raw;

    va_start(ap, fd);
    raw = su_vcmd(fd, H_DEFAULT, ap);
    va_end(ap);
    ck_assert_msg(raw != NULL && raw[0] == ':', "want an integer, got %s", h_repr(raw));
    v = h_reply_int(raw);
    free(raw);
    return v;
}

long long su_dbsize(int fd)
{
    long long n = su_qint(fd, "DBSIZE", NULL);
    char *raw = h_cmd(fd, "SCAN", "0", "MATCH", "cache:daemons", "COUNT", "1000000000", NULL);

    ck_assert_msg(raw != NULL && raw[0] == '*', "SCAN: %s", h_repr(raw));
    if (strstr(raw, "\r\ncache:daemons\r\n"))
        n--;
    free(raw);
    return n;
}

long long su_stat(int fd, const char *name)
{
    char *raw = h_cmd(fd, "STATS", NULL);
    size_t nl = strlen(name);
    long long v = -1;

    ck_assert_msg(raw && raw[0] == '$', "STATS is not a bulk string: %s", h_repr(raw));
    for (const char *p = strstr(raw, "\r\n"); p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
    }
    ck_assert_msg(v >= 0, "no '%s:' line in STATS: %s", name, h_repr(raw));
    free(raw);
    return v;
}

long long su_stat_port(int port, const char *name)
{
    int fd = h_connect(port);
    long long v = su_stat(fd, name);

    h_close(fd);
    return v;
}

void su_wait_linked(const struct h_daemon *d)
{
    long long deadline = h_now_ms() + H_TIMEOUT_MS;
    char *raw = NULL;
    int fd = h_connect(d->port);

    do {
        free(raw);
        raw = h_cmd(fd, "PTTL", "product:ready-probe", NULL);
        if (raw && raw[0] == ':')
            break;
        h_msleep(20);
    } while (h_now_ms() < deadline);
    ck_assert_msg(raw && strcmp(raw, ":-2\r\n") == 0, "daemon's Redis link not up: %s\n%s",
                  h_repr(raw), h_log_tail(d->log));
    free(raw);
    h_close(fd);
    ck_assert_msg(h_wait_log(d->log, "subscribed to cache:fills", 10000) == 0,
                  "no subscription: %s", h_log_tail(d->log));
}

void su_wait_upstream_id(struct h_upstream *u, const char *id, long n, int timeout_ms)
{
    long long deadline = h_now_ms() + timeout_ms;
    long got;

    while ((got = h_upstream_count_id(u, id)) < n && h_now_ms() < deadline)
        h_msleep(10);
    ck_assert_msg(got >= n, "upstream got %ld requests for %s, want %ld", got, id, n);
}

int su_run(const char *suite, const struct su_case *cases, size_t n, enum print_output mode)
{
    Suite *s = suite_create(suite);
    SRunner *sr;
    int failed;

    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);

        tcase_add_checked_fixture(tc, NULL, h_cleanup);
        tcase_set_timeout(tc, cases[i].timeout_s);
        if (cases[i].loops > 0)
            tcase_add_loop_test(tc, cases[i].fn, 0, cases[i].loops);
        else
            tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    h_tmpdir();
    sr = srunner_create(s);
    srunner_run_all(sr, mode);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void su_expect_product(const char *raw, int i)
{
    struct h_reply *r;
    char want[16];
    bool found = false;

    ck_assert_msg(raw != NULL, "no reply for p-%03d", i);
    r = h_parse_reply(raw);
    ck_assert_msg(r->type == H_REPLY_ARRAY && r->elements == 10, "p-%03d: got %s", i, h_repr(raw));
    snprintf(want, sizeof(want), "p-%03d", i);
    for (size_t k = 0; k + 1 < r->elements; k += 2)
        if (strcmp(r->element[k]->str, "id") == 0)
            found = strcmp(r->element[k + 1]->str, want) == 0;
    ck_assert_msg(found, "p-%03d: got %s", i, h_repr(raw));
    h_reply_free(r);
}

long long su_proc_counter(pid_t pid, const char *file, const char *name)
{
    char path[64], line[256];
    size_t n = strlen(name);
    long long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    while (v < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            v = strtoll(line + n + 1, NULL, 10);
    fclose(f);
    ck_assert_msg(v >= 0, "no %s in %s", name, path);
    return v;
}

void su_wait_log_linked(const struct h_daemon *d, long from)
{
    ck_assert_msg(h_wait_log_after(d->log, from, "redis: connected", 10000) == 0,
                  "never connected to Redis: %s", h_log_tail(d->log));
    ck_assert_msg(h_wait_log_after(d->log, from, "subscribed to cache:fills", 10000) == 0,
                  "never subscribed: %s", h_log_tail(d->log));
}

void su_pipe_add(struct su_pipe *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert(b->p != NULL);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void su_pipe_cmd(struct su_pipe *b, const char *w, ...)
{
    const char *words[16];
    char hdr[32];
    int n = 0;
    va_list ap;

    va_start(ap, w);
    for (const char *s = w; s; s = va_arg(ap, const char *)) {
        ck_assert(n < 16);
        words[n++] = s;
    }
    va_end(ap);
    snprintf(hdr, sizeof(hdr), "*%d\r\n", n);
    su_pipe_add(b, hdr, strlen(hdr));
    for (int i = 0; i < n; i++) {
        snprintf(hdr, sizeof(hdr), "$%zu\r\n", strlen(words[i]));
        su_pipe_add(b, hdr, strlen(hdr));
        su_pipe_add(b, words[i], strlen(words[i]));
        su_pipe_add(b, "\r\n", 2);
    }
}

void su_pipe_send(int fd, struct su_pipe *b)
{
    ck_assert_int_eq(h_send(fd, b->p, b->len), 0);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

long long su_redis_time_ms(int rfd)
{
    struct h_reply *r = su_q(rfd, "TIME", NULL);
    long long ms;

    ck_assert_msg(r->type == H_REPLY_ARRAY && r->elements == 2, "TIME: not an array of two");
    ms = strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    h_reply_free(r);
    return ms;
}

long long su_shard_numsub(int port, const char *chan)
{
    int fd = h_connect(port);
    struct h_reply *r = su_q(fd, "PUBSUB", "SHARDNUMSUB", chan, NULL);
    long long n;

    ck_assert_msg(r->type == H_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == H_REPLY_INTEGER,
                  "PUBSUB SHARDNUMSUB %s", chan);
    n = r->element[1]->integer;
    h_reply_free(r);
    h_close(fd);
    return n;
}

int su_wait_shard_numsub(int port, const char *chan, long long want, int timeout_ms)
{
    for (long long end = h_now_ms() + timeout_ms;; h_msleep(20)) {
        if (su_shard_numsub(port, chan) == want)
            return 0;
        if (h_now_ms() > end)
            return -1;
    }
}

void su_set_lock(int rfd, const char *key, const char *token, long long px)
{
    static const char script[] =
        "local t = redis.call('TIME') "
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
        "redis.call('HSET', KEYS[1], '__lock', ARGV[1]) "
        "if tonumber(ARGV[2]) > 0 then "
        "  redis.call('HSET', KEYS[1], '__lockexp', string.format('%.0f', now + tonumber(ARGV[2]))) "
        "  if redis.call('HEXISTS', KEYS[1], '__exp') == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
        "end "
        "return 1";
    char pxs[32];

    snprintf(pxs, sizeof(pxs), "%lld", px);
    ck_assert_int_eq(su_qint(rfd, "EVAL", script, "1", key, token, pxs, NULL), 1);
}

long long su_locked(int rfd, const char *key)
{
    return su_qint(rfd, "HEXISTS", key, "__lock", NULL);
}

int su_wait_locked(int rfd, const char *key, int want, int timeout_ms)
{
    long long end = h_now_ms() + timeout_ms;

    for (;;) {
        if (su_locked(rfd, key) == want)
            return 0;
        if (h_now_ms() > end)
            return -1;
        h_msleep(20);
    }
}

int su_wait_cached(int rfd, const char *key, int timeout_ms)
{
    long long end = h_now_ms() + timeout_ms;

    for (;;) {
        if (su_qint(rfd, "HEXISTS", key, "__exp", NULL) == 1)
            return 0;
        if (h_now_ms() > end)
            return -1;
        h_msleep(20);
    }
}

int su_wait_exists(int rfd, const char *key, int want, int timeout_ms)
{
    long long end = h_now_ms() + timeout_ms;

    for (;;) {
        if (su_qint(rfd, "EXISTS", key, NULL) == want)
            return 0;
        if (h_now_ms() > end)
            return -1;
        h_msleep(20);
    }
}
