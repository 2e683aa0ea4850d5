/* SPDX-License-Identifier: BSD-3-Clause */
/* test_sentinel.c - mode = sentinel against a real Sentinel set-up on
 * loopback: one primary, one replica, three sentinels. The daemon finds
 * the primary, serves reads and writes, follows a SENTINEL FAILOVER within
 * about a second, writes only to the new primary afterwards, and never
 * takes a replica for a primary.
 *
 * The example upstream (-g N) serves products p-001 .. p-00N. */
#define _GNU_SOURCE
#include "suite.h"
#include "topo.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSENT 3
#define MASTER "cachemaster"

struct sset {
    struct h_redis primary, replica;
    int sport[NSENT];
    pid_t spid[NSENT];
    char slog[NSENT][PATH_MAX];
};

/* Waits until the replica of R has its link to the primary up. */
static void wait_replicating(struct h_redis *r)
{
    long long dl = h_now_ms() + 15000;

    while (strcmp(t_stat(r->port, "replication", "master_link_status"), "up") != 0) {
        ck_assert_msg(h_now_ms() < dl, "replica on %d never linked; log:\n%s", r->port, h_log_tail(r->log));
        h_msleep(50);
    }
}

static void sentinel_start(struct sset *s, int i)
{
    char conf[PATH_MAX], name[64], text[1024];
    const char *argv[4];

    s->sport[i] = h_free_port();
    snprintf(name, sizeof(name), "sentinel-%d.conf", s->sport[i]);
    snprintf(conf, sizeof(conf), "%s", h_path(name));
    snprintf(text, sizeof(text),
             "port %d\nbind 127.0.0.1\ndir %s\n"
             "sentinel monitor " MASTER " 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds " MASTER " 1000\n"
             "sentinel failover-timeout " MASTER " 6000\n"
             "sentinel parallel-syncs " MASTER " 1\n",
             s->sport[i], h_tmpdir(), s->primary.port);
    h_write_file(conf, text, strlen(text));
    snprintf(name, sizeof(name), "sentinel-%d.log", s->sport[i]);
    snprintf(s->slog[i], sizeof(s->slog[i]), "%s", h_path(name));
    argv[0] = getenv("REDIS_SERVER") && *getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
    argv[1] = conf;
    argv[2] = "--sentinel";
    argv[3] = NULL;
    s->spid[i] = h_spawn(argv, s->slog[i]);
    ck_assert_msg(h_wait_port(s->sport[i], H_TIMEOUT_MS) == 0, "sentinel %d not up:\n%s", i,
                  h_log_tail(s->slog[i]));
}

/* The port the sentinel names for the primary, or 0. */
static int sentinel_primary(int sport)
{
    char *raw = t_cmd(sport, H_DEFAULT, "SENTINEL", "get-master-addr-by-name", MASTER, NULL);
    int port = 0;

    if (raw && raw[0] == '*') {
        struct h_reply *r = h_parse_reply(raw);
        if (r->type == H_REPLY_ARRAY && r->elements == 2)
            port = atoi(r->element[1]->str);
        h_reply_free(r);
    }
    free(raw);
    return port;
}

/* Every sentinel knows the replica and the other sentinels: a failover
 * can be asked for. */
static void sentinels_settled(struct sset *s)
{
    long long dl = h_now_ms() + 20000;

    for (;;) {
        bool ok = true;
        for (int i = 0; i < NSENT && ok; i++) {
            char *raw = t_cmd(s->sport[i], H_DEFAULT, "SENTINEL", "master", MASTER, NULL);
            char want[32];
            snprintf(want, sizeof(want), "num-slaves\r\n$1\r\n1");
            ok = raw && strstr(raw, want) && strstr(raw, "num-other-sentinels\r\n$1\r\n2");
            free(raw);
        }
        if (ok)
            return;
        ck_assert_msg(h_now_ms() < dl, "sentinels did not settle; log:\n%s", h_log_tail(s->slog[0]));
        h_msleep(100);
    }
}

static void sset_start(struct sset *s)
{
    char pport[16], rdb[2][64];

    memset(s, 0, sizeof(*s));
    /* A replica's full sync writes an RDB: never one a later server loads. */
    snprintf(rdb[0], sizeof(rdb[0]), "dump-%d-p.rdb", (int)getpid());
    snprintf(rdb[1], sizeof(rdb[1]), "dump-%d-r.rdb", (int)getpid());
    {
        const char *e[3] = { "--dbfilename", rdb[0], NULL };
        h_redis_start_opts(&s->primary, e);
    }
    snprintf(pport, sizeof(pport), "%d", s->primary.port);
    {
        const char *e[6] = { "--replicaof", "127.0.0.1", pport, "--dbfilename", rdb[1], NULL };
        h_redis_start_opts(&s->replica, e);
    }
    wait_replicating(&s->replica);
    for (int i = 0; i < NSENT; i++)
        sentinel_start(s, i);
    sentinels_settled(s);
}

/* SENTINEL FAILOVER, and the sentinels' new primary once they name it. */
static int sentinel_failover(struct sset *s)
{
    char *raw = t_cmd(s->sport[0], H_DEFAULT, "SENTINEL", "FAILOVER", MASTER, NULL);
    int port;

    ck_assert_msg(raw && strcmp(raw, "+OK\r\n") == 0, "SENTINEL FAILOVER: %s", h_repr(raw));
    free(raw);
    for (long long dl = h_now_ms() + 20000; (port = sentinel_primary(s->sport[1])) == s->primary.port;) {
        ck_assert_msg(h_now_ms() < dl, "no failover; log:\n%s", h_log_tail(s->slog[0]));
        h_msleep(10);
    }
    return port;
}

static int admin_port;
static const char *cache_lines = "lock_ttl_ms = 3000\nupstream_timeout_ms = 2000\n";

static void daemon_up(struct h_daemon *d, struct sset *s, int up_port, const char *redis_extra)
{
    h_daemon_init(d);
    admin_port = h_free_port();
    h_daemon_start(d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\nlog_level = info\n"
                   "[redis]\nmode = sentinel\nmaster_name = " MASTER "\n"
                   "sentinels = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d\n%s\n"
                   "[cache]\n%s"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d->port, admin_port, s->sport[0], s->sport[1], s->sport[2], redis_extra, cache_lines, up_port);
}

static void wait_primary(struct h_daemon *d, int port, int timeout_ms)
{
    char want[32];
    long long dl = h_now_ms() + timeout_ms;

    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    while (strcmp(t_stat(d->port, NULL, "redis_primary"), want) != 0 ||
           strcmp(t_stat(d->port, NULL, "redis_state"), "up") != 0) {
        ck_assert_msg(h_now_ms() < dl, "daemon not on %s within %d ms: primary %s, state %s; log:\n%s", want,
                      timeout_ms, t_stat(d->port, NULL, "redis_primary"), t_stat(d->port, NULL, "redis_state"),
                      h_log_tail(d->log));
        h_msleep(20);
    }
}

static long long calls_of(int port, const char *cmd)
{
    char name[64];
    const char *v;

    snprintf(name, sizeof(name), "cmdstat_%s", cmd);
    v = t_stat(port, "commandstats", name);
    return v[0] ? strtoll(strstr(v, "calls=") ? strstr(v, "calls=") + 6 : "0", NULL, 10) : 0;
}

static bool cached_on(int port, int i)
{
    char key[48];

    snprintf(key, sizeof(key), "cache:product:{p-%03d}", i);
    return t_int(port, "EXISTS", key, NULL) == 1;
}

/* Reads and writes on the primary; a failover is followed within about a
 * second and nothing is written to the old primary after it. */
START_TEST(test_sentinel_failover)
{
    struct sset s;
    struct h_upstream up;
    struct h_daemon d;
    long long t0, followed_ms, evals_old, reads_old;
    int newport = 0;
    char *raw;

    sset_start(&s);
    h_upstream_start(&up, 0, 40);
    daemon_up(&d, &s, up.port, "");
    wait_primary(&d, s.primary.port, 5000);

    /* Reads fill the cache on the primary; a second read is a hit. */
    for (int i = 1; i <= 10; i++)
        t_expect_product(d.port, i);
    ck_assert_int_eq(h_upstream_count(&up), 10);
    for (int i = 1; i <= 10; i++)
        t_expect_product(d.port, i);
    ck_assert_int_eq(h_upstream_count(&up), 10);
    ck_assert(cached_on(s.primary.port, 3));
    raw = t_cmd(d.port, H_DEFAULT, "HSET", "product:p-002", "name", "renamed", NULL);
    ck_assert_msg(raw && strcmp(raw, ":1\r\n") == 0, "HSET: %s", h_repr(raw));
    free(raw);
    raw = t_cmd(s.primary.port, H_DEFAULT, "HGET", "cache:product:{p-002}", "name", NULL);
    ck_assert_msg(raw && strstr(raw, "renamed"), "HSET not on the primary: %s", h_repr(raw));
    free(raw);

    /* The switch. */
    newport = sentinel_failover(&s);
    t0 = h_now_ms();
    ck_assert_int_eq(newport, s.replica.port);
    wait_primary(&d, s.replica.port, 3000);
    followed_ms = h_now_ms() - t0;
    ck_assert_msg(h_log_contains(d.log, "+switch-master"), "log:\n%s", h_log_tail(d.log));
    fprintf(stderr, "test_sentinel: the daemon followed the switch in %lld ms\n", followed_ms);

    /* From now on nothing reaches the old primary: its script calls stay
     * where they are while the daemon fills and updates records. */
    evals_old = calls_of(s.primary.port, "evalsha");
    reads_old = calls_of(s.primary.port, "hgetall");
    for (int i = 11; i <= 30; i++)
        t_expect_product(d.port, i);
    raw = t_cmd(d.port, H_DEFAULT, "HSET", "product:p-003", "name", "after", NULL);
    ck_assert_msg(raw && raw[0] == ':', "HSET after the switch: %s", h_repr(raw));
    free(raw);
    raw = t_cmd(d.port, H_DEFAULT, "DEL", "product:p-004", NULL);
    ck_assert_msg(raw && raw[0] == ':', "DEL after the switch: %s", h_repr(raw));
    free(raw);
    for (int i = 11; i <= 30; i++)
        ck_assert_msg(cached_on(s.replica.port, i), "p-%03d not on the new primary", i);
    ck_assert_int_eq(calls_of(s.primary.port, "evalsha"), evals_old);
    /* (Its HSETs are the new primary's replication stream, not ours.) */
    ck_assert_int_eq(calls_of(s.primary.port, "hgetall"), reads_old);
    /* The sentinels make the old primary a replica of the new one. */
    for (long long dl = h_now_ms() + 15000; strcmp(t_stat(s.primary.port, "replication", "role"), "slave") != 0;) {
        ck_assert_msg(h_now_ms() < dl, "old primary never demoted");
        h_msleep(50);
    }
    for (int i = 31; i <= 35; i++)
        t_expect_product(d.port, i);
    ck_assert_int_eq(calls_of(s.primary.port, "evalsha"), evals_old);
    ck_assert_int_eq(t_stat_int(d.port, "redis_failovers_seen"), 1);
    /* The switch on /metrics, as Prometheus takes it (the primary's address
     * is in STATS: no free text in labels). */
    {
        const char *m = t_promtool(admin_port);
        ck_assert_msg(strstr(m, "\ncachasided_redis_failovers_seen_total 1\n") &&
                      strstr(m, "\ncachasided_redis_up 1\n"), "%s", m);
    }
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* Pointed at a replica (a sentinel that still names it after a switch, or
 * a stale answer), the daemon does not come up on it: ROLE is checked. */
START_TEST(test_sentinel_never_a_replica)
{
    struct sset s;
    struct h_upstream up;
    struct h_daemon d;
    char *raw;

    sset_start(&s);
    h_upstream_start(&up, 0, 5);
    /* A sentinel set-up whose monitored "primary" is in fact the replica:
     * remove the real one and monitor the replica under the name. */
    for (int i = 0; i < NSENT; i++) {
        char port[16];
        snprintf(port, sizeof(port), "%d", s.replica.port);
        free(t_cmd(s.sport[i], H_DEFAULT, "SENTINEL", "REMOVE", MASTER, NULL));
        raw = t_cmd(s.sport[i], H_DEFAULT, "SENTINEL", "MONITOR", MASTER, "127.0.0.1", port, "2", NULL);
        ck_assert_msg(raw && raw[0] == '+', "MONITOR: %s", h_repr(raw));
        free(raw);
    }
    /* Sentinel would "fix" this by promoting nothing within a few seconds;
     * the daemon meanwhile must refuse the replica. */
    daemon_up(&d, &s, up.port, "");
    ck_assert_msg(h_wait_log(d.log, "not a primary (ROLE says slave)", 5000) == 0, "log:\n%s", h_log_tail(d.log));
    ck_assert_str_ne(t_stat(d.port, NULL, "redis_state"), "up");
    /* Reads still answer, from the upstream. */
    t_expect_product(d.port, 1);
    ck_assert_int_eq(t_dbsize(s.replica.port), 0);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* A fill that waits on another daemon's lock across a failover: the
 * daemon listens on the key's channel at the new primary once it has
 * moved there (moving the connection tells no one else), and the notice
 * published there wakes it. */
START_TEST(test_sentinel_wait_follows_failover)
{
    static const char chan[] = "cache:fills:product:{p-005}";
    struct sset s;
    struct h_upstream up;
    struct h_daemon d;
    long long t0, took;
    int w, newport = 0, rfd;
    char *raw;

    sset_start(&s);
    h_upstream_start(&up, 0, 10);
    cache_lines = "lock_ttl_ms = 30000\nupstream_timeout_ms = 5000\nlock_poll_ms = 20000\n";
    daemon_up(&d, &s, up.port, "");
    cache_lines = "lock_ttl_ms = 3000\nupstream_timeout_ms = 2000\n";
    wait_primary(&d, s.primary.port, 5000);
    /* Another daemon's fill holds p-005, on both servers. */
    rfd = h_connect(s.primary.port);
    su_set_lock(rfd, "cache:product:{p-005}", "other", 30000);
    ck_assert_int_eq(su_qint(rfd, "WAIT", "1", "2000", NULL), 1);
    h_close(rfd);
    w = h_connect(d.port);
    ck_assert_int_eq(h_send_cmdv(w, "HGETALL", "product:p-005", NULL), 0);
    for (long long dl = h_now_ms() + 5000; su_shard_numsub(s.primary.port, chan) != 1;) {
        ck_assert_msg(h_now_ms() < dl, "not listening on %s", chan);
        h_msleep(20);
    }
    newport = sentinel_failover(&s);
    ck_assert_int_eq(newport, s.replica.port);
    wait_primary(&d, s.replica.port, 3000);
    for (long long dl = h_now_ms() + 3000; su_shard_numsub(s.replica.port, chan) != 1;) {
        ck_assert_msg(h_now_ms() < dl, "not listening on %s at the new primary; log:\n%s", chan,
                      h_log_tail(d.log));
        h_msleep(20);
    }
    /* The holder's fill ends on the new primary: its notice wakes us. */
    t0 = h_now_ms();
    ck_assert_int_eq(t_int(s.replica.port, "HDEL", "cache:product:{p-005}", "__lock", "__lockexp", NULL), 2);
    ck_assert_int_eq(t_int(s.replica.port, "SPUBLISH", chan, "done", NULL), 1);
    raw = h_read_reply(w, 5000);
    su_expect_product(raw, 5);
    free(raw);
    took = h_now_ms() - t0;
    ck_assert_msg(took < 2000, "answered %lld ms after the notice (lock_poll_ms 20000)", took);
    h_close(w);
    ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "failover", test_sentinel_failover, 90, 0 },
        { "never_a_replica", test_sentinel_never_a_replica, 90, 0 },
        { "wait_follows_failover", test_sentinel_wait_follows_failover, 90, 0 },
    };

    return SU_RUN("sentinel", cases, CK_NORMAL);
}
