/* SPDX-License-Identifier: BSD-3-Clause */
/* test_reads.c - integration tests of the read path (docs/design.md sections 4, 5
 * read commands, 5 and 6): cache-aside reads through a real redis-server and
 * the example upstream, in-process and cross-daemon single-flight, the error
 * replies and what they leave in Redis, and Redis going away under a daemon.
 *
 * The example upstream serves GET /<prefix>/<ID>; `-g N` generates p-001 ..
 * p-00N as {"id":"p-00i","name":"Product i","price":"i.99","stock":i*7%100,
 * "tags":["demo"]}. */
#define _GNU_SOURCE
#include "suite.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define TTL_S 100
#define JITTER_PCT 20
#define NEG_TTL_S 7

struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
    int rfd;                    /* direct connection to the test's redis-server */
};

/* ---------------------------------------------------------- helpers ---- */

/* Starts a daemon on redis_port with a hash namespace "product" and a raw
 * namespace "page" on the upstream, and waits until it has its Redis
 * command connection and its fill-notice subscription. */
static void daemon_up(struct h_daemon *d, int redis_port, int up_port, const char *cache_extra,
                      const char *ns_extra)
{
    h_daemon_init(d);
    h_daemon_start(d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\nlog_level = info\n"
                   "[redis]\nport = %d\nkey_prefix = cache:\n"
                   "[cache]\nttl_s = %d\nttl_jitter_pct = %d\nnegative_ttl_s = %d\n%s"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n"
                   "[namespace:page]\nupstream = http://127.0.0.1:%d/pages/{id}\nformat = raw\n%s",
                   d->port, redis_port, TTL_S, JITTER_PCT, NEG_TTL_S, cache_extra ? cache_extra : "",
                   up_port, up_port, ns_extra ? ns_extra : "");
    ck_assert_msg(h_wait_log(d->log, "redis: connected", H_TIMEOUT_MS) == 0,
                  "daemon never connected to Redis: %s", h_log_tail(d->log));
    ck_assert_msg(h_wait_log(d->log, "subscribed to cache:fills", H_TIMEOUT_MS) == 0,
                  "daemon never subscribed to cache:fills: %s", h_log_tail(d->log));
}

static void env_up(struct env *e, int latency_ms, int generate, const char *cache_extra, const char *ns_extra)
{
    memset(e, 0, sizeof(*e));
    h_redis_start(&e->redis);
    h_upstream_start(&e->up, latency_ms, generate);
    daemon_up(&e->d, e->redis.port, e->up.port, cache_extra, ns_extra);
    e->rfd = h_connect(e->redis.port);
}

/* Value of `name` in a flat field/value array (HGETALL reply), or NULL. */
static const char *field(const struct h_reply *r, const char *name)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

/* r is exactly the fields/values of kv (n pairs), in any order; no "__" field. */
static void expect_fields(const struct h_reply *r, const char *const kv[], size_t n)
{
    ck_assert_msg(r->type == H_REPLY_ARRAY, "want an array, got type '%c' %s", r->prefix,
                  r->str ? r->str : "");
    for (size_t i = 0; i < r->elements; i++)
        ck_assert_msg(r->element[i]->type == H_REPLY_BULK, "element %zu is not a bulk string", i);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        ck_assert_msg(strncmp(r->element[i]->str, "__", 2) != 0, "bookkeeping field %s in a reply",
                      r->element[i]->str);
    ck_assert_uint_eq(r->elements, 2 * n);
    for (size_t i = 0; i < n; i++) {
        const char *v = field(r, kv[2 * i]);
        ck_assert_msg(v != NULL, "field %s missing", kv[2 * i]);
        ck_assert_msg(strcmp(v, kv[2 * i + 1]) == 0, "field %s = '%s', want '%s'", kv[2 * i], v, kv[2 * i + 1]);
    }
}

/* The generated record p-<i> as field/value strings (5 pairs). */
struct product {
    char id[16], name[32], price[32], stock[16];
    const char *kv[10];
};

static const char *const *product_kv(struct product *p, int i)
{
    snprintf(p->id, sizeof(p->id), "p-%03d", i);
    snprintf(p->name, sizeof(p->name), "Product %d", i);
    snprintf(p->price, sizeof(p->price), "%d.99", i);
    snprintf(p->stock, sizeof(p->stock), "%d", (i * 7) % 100);
    p->kv[0] = "id";    p->kv[1] = p->id;
    p->kv[2] = "name";  p->kv[3] = p->name;
    p->kv[4] = "price"; p->kv[5] = p->price;
    p->kv[6] = "stock"; p->kv[7] = p->stock;
    p->kv[8] = "tags";  p->kv[9] = "[\"demo\"]";
    return p->kv;
}

static void expect_product(const struct h_reply *r, int i)
{
    struct product p;

    expect_fields(r, product_kv(&p, i), 5);
}

/* A raw HGETALL reply of product p-<i>. */
static void expect_product_raw(const char *raw, int i)
{
    struct h_reply *r;

    ck_assert_msg(raw != NULL, "no reply");
    r = h_parse_reply(raw);
    expect_product(r, i);
    h_reply_free(r);
}

static char *product_key(char *buf, size_t sz, int i)
{
    snprintf(buf, sz, "product:p-%03d", i);
    return buf;
}

/* Polls the upstream until it has seen `n` data requests. */
static int wait_upstream_count(struct h_upstream *u, long n, int timeout_ms)
{
    long long end = h_now_ms() + timeout_ms;

    while (h_upstream_count(u) < n) {
        if (h_now_ms() > end)
            return -1;
        h_msleep(10);
    }
    return 0;
}

/* ----------------------------------------------------- hits and misses -- */

/* A miss is fetched, answered and stored with its TTL; the next read is a
 * hit that never reaches the upstream; HGET/HMGET pick fields. */
START_TEST(t_miss_then_hit)
{
    struct env e;
    struct h_reply *r, *rr;
    char *raw;
    int fd;

    env_up(&e, 0, 5, NULL, NULL);
    fd = h_connect(e.d.port);

    r = su_q(fd, "HGETALL", "product:p-002", NULL);
    expect_product(r, 2);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-002"), 1);
    ck_assert_int_eq(su_stat(fd, "misses"), 1);
    ck_assert_int_eq(su_stat(fd, "hits"), 0);

    /* Stored in Redis: the record's fields (bookkeeping "__" fields allowed).
     * The store and the reply leave the daemon on different connections:
     * wait for the store to land. */
    ck_assert_msg(su_wait_cached(e.rfd, "cache:product:{p-002}", 2000) == 0, "record not stored");
    rr = su_q(e.rfd, "HGETALL", "cache:product:{p-002}", NULL);
    ck_assert_int_eq(rr->type, H_REPLY_ARRAY);
    {
        struct product p;
        const char *const *kv = product_kv(&p, 2);
        size_t plain = 0;
        for (size_t i = 0; i + 1 < rr->elements; i += 2)
            if (strncmp(rr->element[i]->str, "__", 2) != 0)
                plain++;
        ck_assert_uint_eq(plain, 5);
        for (int i = 0; i < 5; i++) {
            const char *v = field(rr, kv[2 * i]);
            ck_assert_msg(v && strcmp(v, kv[2 * i + 1]) == 0, "Redis field %s = %s", kv[2 * i], v ? v : "(none)");
        }
    }
    h_reply_free(rr);
    {
        long long pttl = su_qint(e.rfd, "PTTL", "cache:product:{p-002}", NULL);
        ck_assert_msg(pttl >= TTL_S * 1000LL - 1000 && pttl <= TTL_S * 1000LL * (100 + JITTER_PCT) / 100 + 1000,
                      "PTTL %lld outside [%d s, %d s * %d%%] +- 1 s", pttl, TTL_S, TTL_S, 100 + JITTER_PCT);
    }

    /* Second read: a hit, same record, upstream not asked again. */
    r = su_q(fd, "HGETALL", "product:p-002", NULL);
    expect_product(r, 2);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-002"), 1);
    ck_assert_int_eq(su_stat(fd, "hits"), 1);
    ck_assert_int_eq(su_stat(fd, "misses"), 1);

    /* HGET / HMGET on the cached record; absent and bookkeeping fields are nil. */
    EXPECT_RAW("$9\r\nProduct 2\r\n", fd, "HGET", "product:p-002", "name");
    EXPECT_RAW("$2\r\n14\r\n", fd, "HGET", "product:p-002", "stock");
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:p-002", "nosuch");
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:p-002", "__exp");
    EXPECT_RAW("*4\r\n$4\r\n2.99\r\n$-1\r\n$5\r\np-002\r\n$-1\r\n", fd, "HMGET", "product:p-002", "price",
               "nosuch", "id", "__nf");
    ck_assert_int_eq(su_stat(fd, "hits"), 6);

    /* HGET / HMGET on a cold key: a miss answered with the picked fields. */
    EXPECT_RAW("$4\r\n3.99\r\n", fd, "HGET", "product:p-003", "price");
    EXPECT_RAW("*2\r\n$-1\r\n$9\r\nProduct 4\r\n", fd, "HMGET", "product:p-004", "nosuch", "name");
    ck_assert_int_eq(su_stat(fd, "misses"), 3);
    r = su_q(fd, "HGETALL", "product:p-004", NULL);
    expect_product(r, 4);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count(&e.up), 3);
    ck_assert_int_eq(su_stat(fd, "upstream_requests"), 3);
    ck_assert_int_eq(su_stat(fd, "hits"), 7);

    /* Command names are case-insensitive. */
    raw = su_rawq(fd, "hgetall", "product:p-003", NULL);
    expect_product_raw(raw, 3);
    free(raw);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-003"), 1);
}
END_TEST

/* JSON to hash (docs/design.md section 6): strings as they are, numbers and booleans as their
 * JSON text, nested values as compact JSON, null fields left out. */
START_TEST(t_json_flattening)
{
    struct env e;
    struct h_reply *r;
    static const char *const kv[] = {
        "s", "str", "i", "42", "neg", "-7", "f", "1.5", "t", "true", "fa", "false",
        "o", "{\"a\":1,\"b\":[1,2]}", "arr", "[1,\"x\",null]", "e", "", "u", "\xc3\xa9t\xc3\xa9",
    };
    int fd;

    env_up(&e, 0, 0, NULL, NULL);
    h_upstream_set_body(&e.up, "flat",
                        "{\"s\":\"str\",\"i\":42,\"neg\":-7,\"f\":1.5,\"t\":true,\"fa\":false,\"n\":null,"
                        "\"o\": {\"a\": 1, \"b\": [1, 2]},\"arr\":[1, \"x\", null],\"e\":\"\",\"u\":\"\xc3\xa9t\xc3\xa9\"}");
    fd = h_connect(e.d.port);
    r = su_q(fd, "HGETALL", "product:flat", NULL);
    expect_fields(r, kv, sizeof(kv) / sizeof(kv[0]) / 2);
    h_reply_free(r);
    /* The same from the cache. */
    r = su_q(fd, "HGETALL", "product:flat", NULL);
    expect_fields(r, kv, sizeof(kv) / sizeof(kv[0]) / 2);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "flat"), 1);
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:flat", "n");
    EXPECT_RAW("$-1\r\n", e.rfd, "HGET", "cache:product:{flat}", "n");
    EXPECT_RAW("$17\r\n{\"a\":1,\"b\":[1,2]}\r\n", e.rfd, "HGET", "cache:product:{flat}", "o");
}
END_TEST

/* ---------------------------------------------------- raw namespaces -- */

/* GET returns the body byte for byte, kept in field __body; MGET mixes
 * cached, cold and not-found keys; the wrong command type is -WRONGTYPE. */
START_TEST(t_raw_namespace)
{
    static const char body1[] = "<html>\r\n  caf\xc3\xa9 \"quoted\" {not json\n\t\x01\x7f\xff</html>";
    static const char body2[] = "[1,2]";
    struct env e;
    struct h_reply *r;
    char want[256];
    int fd;

    env_up(&e, 0, 2, NULL, NULL);
    h_upstream_set_body(&e.up, "one", body1);
    h_upstream_set_body(&e.up, "two", body2);
    h_upstream_set_body(&e.up, "three", "");
    h_upstream_set_status(&e.up, "busy", 503);
    fd = h_connect(e.d.port);

    r = su_q(fd, "GET", "page:one", NULL);
    ck_assert_int_eq(r->type, H_REPLY_BULK);
    ck_assert_uint_eq(r->len, strlen(body1));
    ck_assert(memcmp(r->str, body1, r->len) == 0);
    h_reply_free(r);

    ck_assert_msg(su_wait_cached(e.rfd, "cache:page:{one}", 2000) == 0, "raw record not stored");
    r = su_q(e.rfd, "HGET", "cache:page:{one}", "__body", NULL);
    ck_assert_int_eq(r->type, H_REPLY_BULK);
    ck_assert_uint_eq(r->len, strlen(body1));
    ck_assert(memcmp(r->str, body1, r->len) == 0);
    h_reply_free(r);
    {
        long long pttl = su_qint(e.rfd, "PTTL", "cache:page:{one}", NULL);
        ck_assert(pttl > TTL_S * 1000LL - 1000 && pttl <= TTL_S * 1000LL * (100 + JITTER_PCT) / 100);
    }

    /* Second GET: from the cache. */
    r = su_q(fd, "GET", "page:one", NULL);
    ck_assert_uint_eq(r->len, strlen(body1));
    ck_assert(memcmp(r->str, body1, r->len) == 0);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "one"), 1);

    /* MGET: cached, cold, an empty body, not found, and the cached one again. */
    snprintf(want, sizeof(want), "*5\r\n$%zu\r\n%s\r\n$5\r\n[1,2]\r\n$0\r\n\r\n$-1\r\n$%zu\r\n%s\r\n",
             strlen(body1), body1, strlen(body1), body1);
    EXPECT_RAW(want, fd, "MGET", "page:one", "page:two", "page:three", "page:missing", "page:one");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "one"), 1);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "two"), 1);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "missing"), 1);
    ck_assert_msg(su_wait_cached(e.rfd, "cache:page:{two}", 2000) == 0, "page:two not stored");
    EXPECT_RAW("$5\r\n[1,2]\r\n", e.rfd, "HGET", "cache:page:{two}", "__body");

    /* A failing key is an error element; the others are still answered. */
    EXPECT_RAW("*2\r\n$5\r\n[1,2]\r\n-UPSTREAM status 503\r\n", fd, "MGET", "page:two", "page:busy");
    ck_assert_int_eq(su_qint(e.rfd, "EXISTS", "cache:page:{busy}", NULL), 0);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "two"), 1);

    /* GET of a not-found key is nil, and it is remembered. */
    EXPECT_RAW("$-1\r\n", fd, "GET", "page:missing");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "missing"), 1);

    /* Wrong command for the namespace's format. */
    EXPECT_RAW("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fd, "GET", "product:p-001");
    EXPECT_RAW("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fd, "MGET", "page:one",
               "product:p-001");
    EXPECT_RAW("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fd, "HGETALL", "page:one");
    EXPECT_RAW("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", fd, "HGET", "page:one",
               "__body");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-001"), 0);
    ck_assert_int_eq(su_qint(e.rfd, "EXISTS", "cache:product:{p-001}", NULL), 0);
}
END_TEST

/* ----------------------------------------------------------- bad keys -- */

/* Invalid keys get an error and touch neither Redis nor the upstream. */
START_TEST(t_bad_keys)
{
    struct env e;
    char longkey[600], maxkey[600];
    int fd;

    env_up(&e, 0, 3, NULL, NULL);
    fd = h_connect(e.d.port);

    EXPECT_RAW("-ERR bad key 'product': expected NAMESPACE:ID\r\n", fd, "HGETALL", "product");
    EXPECT_RAW("-ERR bad key ':p-001': expected NAMESPACE:ID\r\n", fd, "HGETALL", ":p-001");
    EXPECT_RAW("-ERR bad key 'product:': empty id\r\n", fd, "HGETALL", "product:");
    EXPECT_RAW("-ERR unknown namespace 'x'\r\n", fd, "HGETALL", "x:p-001");
    EXPECT_RAW("-ERR unknown namespace 'lock'\r\n", fd, "HGETALL", "lock:product:p-001");

    memcpy(longkey, "product:", 8);
    memset(longkey + 8, 'a', 513);
    longkey[8 + 513] = '\0';
    {
        char *raw = su_rawq(fd, "HGETALL", longkey, NULL);
        ck_assert_msg(strncmp(raw, "-ERR bad key ", 13) == 0 && strstr(raw, "longer than 512"),
                      "513-byte id: %s", h_repr(raw));
        free(raw);
    }

    /* Whitespace and control characters, sent as RESP bulk strings. */
    {
        static const char *const bad[] = {
            "product:a b", "product:a\tb", "product:a\nb", "product:a\rb", "product:a\x01", "product:\x7f",
            "product: ", "page:x y",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *cmd = strncmp(bad[i], "page:", 5) == 0 ? "GET" : "HGETALL";
            char *raw = su_rawq(fd, cmd, bad[i], NULL);
            ck_assert_msg(strncmp(raw, "-ERR bad key", 12) == 0, "%s %s: %s", cmd, h_repr(bad[i]), h_repr(raw));
            ck_assert_msg(strchr(raw, '\n') == raw + strlen(raw) - 1, "error line broken by the key: %s",
                          h_repr(raw));
            free(raw);
        }
    }

    /* Every read command validates; MGET is all or nothing. */
    EXPECT_RAW("-ERR bad key 'product:': empty id\r\n", fd, "HGET", "product:", "name");
    EXPECT_RAW("-ERR unknown namespace 'nope'\r\n", fd, "HMGET", "nope:1", "a", "b");
    EXPECT_RAW("-ERR bad key 'page': expected NAMESPACE:ID\r\n", fd, "GET", "page");
    EXPECT_RAW("-ERR unknown namespace 'x'\r\n", fd, "MGET", "page:good", "x:1");
    EXPECT_RAW("-ERR bad key 'page:': empty id\r\n", fd, "MGET", "page:good", "page:");
    EXPECT_RAW("-ERR unknown namespace 'x'\r\n", fd, "TTL", "x:1");
    EXPECT_RAW("-ERR bad key 'product': expected NAMESPACE:ID\r\n", fd, "PTTL", "product");

    ck_assert_int_eq(h_upstream_count(&e.up), 0);
    ck_assert_int_eq(su_dbsize(e.rfd), 0);
    ck_assert_int_eq(su_stat(fd, "misses"), 0);

    /* The boundary: a 512-byte id is valid (not found upstream here). */
    memcpy(maxkey, "product:", 8);
    memset(maxkey + 8, 'a', 512);
    maxkey[8 + 512] = '\0';
    EXPECT_RAW("*0\r\n", fd, "HGETALL", maxkey);
    ck_assert_int_eq(h_upstream_count(&e.up), 1);
}
END_TEST

/* An ID with URL-unsafe bytes reaches the upstream percent-encoded, and
 * the record is cached under the raw ID. */
START_TEST(t_url_unsafe_id)
{
    static const char id[] = "a:b?d%\xc3\xa9#&=+x~y_z.1-";
    struct env e;
    char key[128], rkey[128];
    struct h_reply *r;
    static const char *const kv[] = { "v", "ok" };
    int fd;

    env_up(&e, 0, 0, NULL, NULL);
    h_upstream_set_body(&e.up, id, "{\"v\":\"ok\"}");
    fd = h_connect(e.d.port);
    snprintf(key, sizeof(key), "product:%s", id);
    snprintf(rkey, sizeof(rkey), "cache:product:{%s}", id);

    r = su_q(fd, "HGETALL", key, NULL);
    expect_fields(r, kv, 1);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count_id(&e.up, id), 1);
    ck_assert_int_eq(h_upstream_count(&e.up), 1);
    ck_assert_msg(su_wait_cached(e.rfd, rkey, 2000) == 0, "%s not stored", rkey);
    EXPECT_RAW("$2\r\nok\r\n", e.rfd, "HGET", rkey, "v");

    r = su_q(fd, "HGETALL", key, NULL);
    expect_fields(r, kv, 1);
    h_reply_free(r);
    ck_assert_int_eq(h_upstream_count(&e.up), 1);
    ck_assert_msg(h_log_contains(e.up.log, "/products/a%3Ab%3Fd%25%C3%A9%23%26%3D%2Bx~y_z.1-"),
                  "upstream did not see the percent-encoded id: %s", h_log_tail(e.up.log));
}
END_TEST

/* The error a key gets: "-ERR bad key '<key>': <why>". */
static void expect_bad_key(int fd, const char *cmd, const char *key, const char *why)
{
    char want[256];

    snprintf(want, sizeof(want), "-ERR bad key '%s': %s\r\n", key, why);
    EXPECT_RAW(want, fd, cmd, key);
}

#define DOT_SEGMENT "id may not be a path segment '.' or '..'"
#define HAS_SLASH "id may not contain '/'"
#define HAS_BACKSLASH "id may not contain '\\'"
#define ENCODED_SEPARATOR "id may not contain an encoded '/' or '\\' (%2F, %5C)"

/* An ID may not take its fetch out of the namespace's upstream path (with
 * upstream = .../users/{id}, users:.. would fetch .../ and users:../x
 * .../x through a proxy that decodes %2F): a dot-segment, a '/' or '\',
 * or one of them after one more round of percent-decoding, is refused
 * before Redis or the upstream is asked, by every command that takes a
 * key, also when such an entry is in Redis already. id_slashes = yes
 * lets '/' through, unencoded, as nested path segments; dot-segments and
 * empty segments stay refused. INVALIDATE takes a glob that never reaches
 * the upstream: it can remove an entry an older daemon cached. */
START_TEST(t_path_ids)
{
    static const char *const dots[] = {
        "product:.", "product:..", "product:%2e", "product:%2E%2e", "product:.%2E", "product:..;x",
        "product:%2e%2e%3bjsessionid=1", "product:.%00",
    };
    static const struct { const char *key, *why; } refused[] = {
        { "product:../admin/cfg", HAS_SLASH }, { "product:a/b", HAS_SLASH }, { "product:/", HAS_SLASH },
        { "product:a\\b", HAS_BACKSLASH }, { "product:..\\x", HAS_BACKSLASH },
        { "product:..%2Fadmin", ENCODED_SEPARATOR }, { "product:a%2fb", ENCODED_SEPARATOR },
        { "product:a%5Cb", ENCODED_SEPARATOR }, { "product:%5c", ENCODED_SEPARATOR },
        { "doc:en/../admin", "id may not have a path segment '.' or '..'" },
        { "doc:./x", "id may not have a path segment '.' or '..'" },
        { "doc:x/%2e%2E", "id may not have a path segment '.' or '..'" },
        { "doc:..", "id may not have a path segment '.' or '..'" },
        { "doc:/etc", "id may not have an empty path segment" },
        { "doc:en/", "id may not have an empty path segment" },
        { "doc:a//b", "id may not have an empty path segment" },
        { "doc:a%2Fb", ENCODED_SEPARATOR }, { "doc:a\\b", HAS_BACKSLASH },
    };
    struct env e;
    char ns[256], *raw;
    int fd;

    memset(&e, 0, sizeof(e));
    h_redis_start(&e.redis);
    h_upstream_start(&e.up, 0, 3);
    snprintf(ns, sizeof(ns), "[namespace:doc]\nupstream = http://127.0.0.1:%d/docs/{id}\nformat = raw\n"
             "id_slashes = yes\n", e.up.port);
    daemon_up(&e.d, e.redis.port, e.up.port, NULL, ns);
    e.rfd = h_connect(e.redis.port);
    fd = h_connect(e.d.port);
    /* What a daemon without this rule cached for users:.. (the backend's
     * answer for the namespace's parent path). */
    EXPECT_RAW(":2\r\n", e.rfd, "HSET", "cache:product:{..}", "__exp", "99999999999999", "name", "admin");
    EXPECT_RAW("+OK\r\n", e.rfd, "CONFIG", "RESETSTAT");

    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++)
        expect_bad_key(fd, "HGETALL", dots[i], DOT_SEGMENT);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        expect_bad_key(fd, strncmp(refused[i].key, "doc:", 4) == 0 ? "GET" : "HGETALL", refused[i].key,
                       refused[i].why);
    /* Every command that takes a key. */
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "HGET", "product:..", "name");
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "HMGET", "product:..", "name", "id");
    EXPECT_RAW("-ERR bad key 'page:..': " DOT_SEGMENT "\r\n", fd, "GET", "page:..");
    EXPECT_RAW("-ERR bad key 'page:a/b': " HAS_SLASH "\r\n", fd, "MGET", "page:ok", "page:a/b");
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "DEL", "product:p-001", "product:..");
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "UNLINK", "product:..");
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "HSET", "product:..", "name", "x");
    EXPECT_RAW("-ERR bad key 'product:..': " DOT_SEGMENT "\r\n", fd, "TTL", "product:..");
    EXPECT_RAW("-ERR bad key 'product:a/b': " HAS_SLASH "\r\n", fd, "PTTL", "product:a/b");

    /* Neither the upstream nor Redis was asked (only this test's CONFIG). */
    ck_assert_int_eq(h_upstream_count(&e.up), 0);
    raw = su_rawq(e.rfd, "INFO", "commandstats", NULL);
    ck_assert_msg(!strstr(raw, "cmdstat_hgetall") && !strstr(raw, "cmdstat_hmget") && !strstr(raw, "cmdstat_evalsha") &&
                  !strstr(raw, "cmdstat_pttl") && !strstr(raw, "cmdstat_del") && !strstr(raw, "cmdstat_unlink"),
                  "Redis was asked: %s", h_repr(raw));
    free(raw);
    ck_assert_int_eq(su_stat(fd, "misses") + su_stat(fd, "hits"), 0);

    /* Near misses are ordinary ids, percent-encoded as ever. */
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:...");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:..a");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:%252e%252e");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:%2");
    ck_assert_msg(h_log_contains(e.up.log, "GET /products/... ") && h_log_contains(e.up.log, "GET /products/..a ") &&
                  h_log_contains(e.up.log, "GET /products/%25252e%25252e ") &&
                  h_log_contains(e.up.log, "GET /products/%252 "),
                  "upstream log: %s", h_log_tail(e.up.log));
    ck_assert_int_eq(h_upstream_count(&e.up), 4);

    /* id_slashes = yes: nested paths, '/' sent as it is. */
    h_upstream_set_body(&e.up, "about", "about us");
    EXPECT_RAW("$8\r\nabout us\r\n", fd, "GET", "doc:en/about");
    ck_assert_msg(h_log_contains(e.up.log, "GET /docs/en/about "), "upstream log: %s", h_log_tail(e.up.log));
    ck_assert_int_eq(su_wait_cached(e.rfd, "cache:doc:{en/about}", 2000), 0);
    EXPECT_RAW("$8\r\nabout us\r\n", fd, "GET", "doc:en/about");
    ck_assert_int_eq(h_upstream_count(&e.up), 5);
    EXPECT_RAW(":1\r\n", fd, "DEL", "doc:en/about");

    /* INVALIDATE's glob is not an id: the old entry can be removed. */
    EXPECT_RAW(":1\r\n", fd, "INVALIDATE", "product:..");
    ck_assert_int_eq(su_qint(e.rfd, "EXISTS", "cache:product:{..}", NULL), 0);
}
END_TEST

/* ------------------------------------------------------ single-flight -- */

/* 200 concurrent misses of one key in one daemon: one upstream request,
 * everyone gets the record, 199 coalesced. */
START_TEST(t_coalesce_200)
{
    enum { N = 200 };
    struct env e;
    int fds[N], fd;

    env_up(&e, 300, 3, NULL, NULL);
    for (int i = 0; i < N; i++)
        fds[i] = h_connect(e.d.port);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(h_send_cmdv(fds[i], "HGETALL", "product:p-001", NULL), 0);
    for (int i = 0; i < N; i++) {
        char *raw = h_read_reply(fds[i], H_DEFAULT);
        ck_assert_msg(raw != NULL, "client %d: no reply", i);
        expect_product_raw(raw, 1);
        free(raw);
    }
    ck_assert_int_eq(h_upstream_count(&e.up), 1);
    fd = h_connect(e.d.port);
    ck_assert_int_eq(su_stat(fd, "coalesced"), N - 1);
    ck_assert_int_eq(su_stat(fd, "misses"), N);
    ck_assert_int_eq(su_stat(fd, "upstream_requests"), 1);
    ck_assert_msg(su_wait_cached(e.rfd, "cache:product:{p-001}", 2000) == 0, "record not stored");
    ck_assert_int_eq(su_locked(e.rfd, "cache:product:{p-001}"), 0);
}
END_TEST

/* Three daemons on one Redis, 30 clients each, one cold key: one upstream
 * request in all, and the waiting daemons are woken by the fill notice
 * (the fallback poll is 10 s, far beyond the deadline). */
START_TEST(t_cross_daemon)
{
    enum { ND = 3, NC = 30 };
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d[ND];
    int fds[ND][NC];
    long long t0, elapsed, suppressed = 0, coalesced = 0;
    const char *cache = "lock_ttl_ms = 15000\nlock_poll_ms = 10000\nupstream_timeout_ms = 5000\n";

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 300, 3);
    for (int k = 0; k < ND; k++)
        daemon_up(&d[k], redis.port, up.port, cache, NULL);
    for (int k = 0; k < ND; k++)
        for (int i = 0; i < NC; i++)
            fds[k][i] = h_connect(d[k].port);

    t0 = h_now_ms();
    for (int i = 0; i < NC; i++)
        for (int k = 0; k < ND; k++)
            ck_assert_int_eq(h_send_cmdv(fds[k][i], "HGETALL", "product:p-002", NULL), 0);
    for (int k = 0; k < ND; k++) {
        for (int i = 0; i < NC; i++) {
            char *raw = h_read_reply(fds[k][i], 5000);
            ck_assert_msg(raw != NULL, "daemon %d client %d: no reply after %lld ms", k, i, h_now_ms() - t0);
            expect_product_raw(raw, 2);
            free(raw);
        }
    }
    elapsed = h_now_ms() - t0;
    ck_assert_msg(elapsed <= 300 + 1500, "all answered only after %lld ms (latency 300 ms, poll 10 s)", elapsed);
    ck_assert_int_eq(h_upstream_count(&up), 1);
    for (int k = 0; k < ND; k++) {
        int fd = h_connect(d[k].port);
        suppressed += su_stat(fd, "stampedes_suppressed");
        coalesced += su_stat(fd, "coalesced");
        ck_assert_int_eq(su_stat(fd, "lock_timeouts"), 0);
        h_close(fd);
    }
    ck_assert_int_ge(suppressed, 1);
    ck_assert_int_eq(coalesced, ND * (NC - 1));
}
END_TEST

/* The daemon holding the fill lock dies mid-fetch: another daemon's reader
 * waits for the lock to expire, fetches itself and is answered. */
START_TEST(t_lock_holder_killed)
{
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon a, b;
    const char *cache = "lock_ttl_ms = 3000\nupstream_timeout_ms = 2500\nlock_poll_ms = 100\n";
    int fa, fb, rfd, st;
    long long t0, elapsed;
    char *raw;

    memset(&redis, 0, sizeof(redis));
    h_redis_start(&redis);
    h_upstream_start(&up, 2000, 3);
    daemon_up(&a, redis.port, up.port, cache, NULL);
    daemon_up(&b, redis.port, up.port, cache, NULL);
    rfd = h_connect(redis.port);

    fa = h_connect(a.port);
    ck_assert_int_eq(h_send_cmdv(fa, "HGETALL", "product:p-003", NULL), 0);
    ck_assert_msg(wait_upstream_count(&up, 1, 3000) == 0, "A's fetch never reached the upstream");
    ck_assert_int_eq(su_locked(rfd, "cache:product:{p-003}"), 1);
    h_kill(a.pid, SIGKILL);
    ck_assert_int_eq(h_wait_exit(a.pid, 5000, &st), 0);
    a.pid = 0;

    t0 = h_now_ms();
    fb = h_connect(b.port);
    ck_assert_int_eq(h_send_cmdv(fb, "HGETALL", "product:p-003", NULL), 0);
    raw = h_read_reply(fb, 3000 + 2000 + 1500);
    elapsed = h_now_ms() - t0;
    ck_assert_msg(raw != NULL, "B gave no answer within lock_ttl + latency + 1.5 s");
    expect_product_raw(raw, 3);
    free(raw);
    ck_assert_msg(elapsed <= 3000 + 2000 + 1500, "answered after %lld ms", elapsed);
    ck_assert_int_eq(h_upstream_count(&up), 2);
    /* B takes the expired lock on a poll, or at its own lock timeout
     * (whichever comes first): either way it waited for the lock. */
    ck_assert_int_le(su_stat(fb, "lock_timeouts"), 1);
    ck_assert_int_eq(su_stat(fb, "stampedes_suppressed"), 1);
    /* B stored it (the dead daemon's lock had expired), and it is a hit now. */
    ck_assert_msg(su_wait_cached(rfd, "cache:product:{p-003}", 2000) == 0, "B did not store the record");
    raw = su_rawq(fb, "HGETALL", "product:p-003", NULL);
    expect_product_raw(raw, 3);
    free(raw);
    ck_assert_int_eq(h_upstream_count(&up), 2);
}
END_TEST

/* The client that started a fill leaves mid-fill: the fill goes on, the
 * other waiters get the record, and it is stored. */
START_TEST(t_starter_disconnects)
{
    enum { NW = 4 };
    struct env e;
    int starter, w[NW], fd;

    env_up(&e, 500, 3, NULL, NULL);
    starter = h_connect(e.d.port);
    ck_assert_int_eq(h_send_cmdv(starter, "HGETALL", "product:p-001", NULL), 0);
    ck_assert_msg(wait_upstream_count(&e.up, 1, 2000) == 0, "the fill never reached the upstream");
    for (int i = 0; i < NW; i++) {
        w[i] = h_connect(e.d.port);
        ck_assert_int_eq(h_send_cmdv(w[i], "HGETALL", "product:p-001", NULL), 0);
    }
    h_close(starter);
    for (int i = 0; i < NW; i++) {
        char *raw = h_read_reply(w[i], H_DEFAULT);
        ck_assert_msg(raw != NULL, "waiter %d: no reply", i);
        expect_product_raw(raw, 1);
        free(raw);
    }
    ck_assert_int_eq(h_upstream_count(&e.up), 1);
    ck_assert_msg(su_wait_cached(e.rfd, "cache:product:{p-001}", 2000) == 0, "the fill was not stored");
    fd = h_connect(e.d.port);
    EXPECT_RAW("+PONG\r\n", fd, "PING");
    ck_assert_int_eq(su_stat(fd, "coalesced"), NW);
    ck_assert_int_eq(h_wait_exit(e.d.pid, 0, NULL), -1);
}
END_TEST

/* ------------------------------------------------------- error modes -- */

/* After an -UPSTREAM error: the fill lock is released and nothing is cached. */
static void expect_nothing_cached(int rfd, const char *ns, const char *id)
{
    char rkey[700];

    /* The lock lives in the record's hash: released, nothing is left. */
    snprintf(rkey, sizeof(rkey), "cache:%s:{%s}", ns, id);
    ck_assert_msg(su_wait_exists(rfd, rkey, 0, 2000) == 0, "%s: fill lock still held, or cached, after an error",
                  rkey);
}

/* The not-found sentinel in Redis: only "__" fields, TTL about negative_ttl_s. */
static void expect_sentinel(int rfd, const char *rkey)
{
    struct h_reply *r;
    long long pttl;

    ck_assert_msg(su_wait_cached(rfd, rkey, 2000) == 0, "no not-found sentinel stored at %s", rkey);
    r = su_q(rfd, "HGETALL", rkey, NULL);

    ck_assert_int_eq(r->type, H_REPLY_ARRAY);
    ck_assert_msg(r->elements > 0, "no not-found sentinel stored at %s", rkey);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        ck_assert_msg(strncmp(r->element[i]->str, "__", 2) == 0, "sentinel %s has field %s", rkey,
                      r->element[i]->str);
    h_reply_free(r);
    pttl = su_qint(rfd, "PTTL", rkey, NULL);
    ck_assert_msg(pttl > NEG_TTL_S * 1000LL - 1500 && pttl <= NEG_TTL_S * 1000LL,
                  "sentinel PTTL %lld, want about %d s", pttl, NEG_TTL_S);
}

/* 404 and 410 are "not found": empty array / nil, remembered for
 * negative_ttl_s and answered from the cache afterwards. */
START_TEST(t_not_found_cached)
{
    struct env e;
    int fd;

    env_up(&e, 0, 0, NULL, NULL);
    h_upstream_set_status(&e.up, "gone", 410);
    fd = h_connect(e.d.port);

    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "nope"), 1);
    expect_sentinel(e.rfd, "cache:product:{nope}");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:nope", "name");
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:nope", "__nf");
    EXPECT_RAW("*2\r\n$-1\r\n$-1\r\n", fd, "HMGET", "product:nope", "id", "name");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "nope"), 1);
    ck_assert_int_eq(su_stat(fd, "negative_hits"), 4);
    ck_assert_int_eq(su_stat(fd, "hits"), 0);
    ck_assert_int_eq(su_stat(fd, "misses"), 1);
    ck_assert_int_eq(su_stat(fd, "upstream_errors"), 0);

    /* A cold not-found key through HGET / HMGET. */
    EXPECT_RAW("$-1\r\n", fd, "HGET", "product:nope2", "name");
    EXPECT_RAW("*1\r\n$-1\r\n", fd, "HMGET", "product:nope3", "name");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "nope2"), 1);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "nope3"), 1);

    /* 410 Gone is not found too. */
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:gone");
    expect_sentinel(e.rfd, "cache:product:{gone}");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:gone");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "gone"), 1);

    /* Raw namespace: GET is nil, remembered as well. */
    EXPECT_RAW("$-1\r\n", fd, "GET", "page:nope-raw");
    expect_sentinel(e.rfd, "cache:page:{nope-raw}");
    EXPECT_RAW("$-1\r\n", fd, "GET", "page:nope-raw");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "nope-raw"), 1);
}
END_TEST

/* Other statuses are -UPSTREAM status N, never cached: the next read asks
 * the upstream again. */
START_TEST(t_upstream_status)
{
    struct env e;
    int fd;

    env_up(&e, 0, 0, NULL, NULL);
    h_upstream_set_status(&e.up, "busy", 503);
    h_upstream_set_status(&e.up, "boom", 500);
    h_upstream_set_status(&e.up, "moved", 302);
    fd = h_connect(e.d.port);

    EXPECT_RAW("-UPSTREAM status 503\r\n", fd, "HGETALL", "product:busy");
    expect_nothing_cached(e.rfd, "product", "busy");
    EXPECT_RAW("-UPSTREAM status 503\r\n", fd, "HGETALL", "product:busy");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "busy"), 2);
    EXPECT_RAW("-UPSTREAM status 503\r\n", fd, "HGET", "product:busy", "name");
    EXPECT_RAW("-UPSTREAM status 503\r\n", fd, "HMGET", "product:busy", "name", "id");
    EXPECT_RAW("-UPSTREAM status 503\r\n", fd, "GET", "page:busy");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "busy"), 5);
    expect_nothing_cached(e.rfd, "product", "busy");
    expect_nothing_cached(e.rfd, "page", "busy");

    EXPECT_RAW("-UPSTREAM status 500\r\n", fd, "HGETALL", "product:boom");
    expect_nothing_cached(e.rfd, "product", "boom");
    EXPECT_RAW("-UPSTREAM status 302\r\n", fd, "HGETALL", "product:moved");
    expect_nothing_cached(e.rfd, "product", "moved");
    ck_assert_int_eq(su_stat(fd, "upstream_errors"), 7);
    ck_assert_int_eq(su_stat(fd, "upstream_requests"), 7);

    /* Once the upstream recovers, the record is fetched and cached. */
    h_upstream_set_status(&e.up, "busy", 0);
    h_upstream_set_body(&e.up, "busy", "{\"ok\":1}");
    EXPECT_RAW("*2\r\n$2\r\nok\r\n$1\r\n1\r\n", fd, "HGETALL", "product:busy");
    ck_assert_msg(su_wait_cached(e.rfd, "cache:product:{busy}", 2000) == 0, "recovered record not stored");
}
END_TEST

/* No answer within upstream_timeout_ms: every waiter gets -UPSTREAM timeout,
 * nothing is cached, and the next read fetches again. */
START_TEST(t_upstream_timeout)
{
    enum { N = 3 };
    struct env e;
    int fds[N];
    long long t0, elapsed;

    env_up(&e, 1500, 3, "upstream_timeout_ms = 1000\nlock_ttl_ms = 2000\n", NULL);
    for (int i = 0; i < N; i++)
        fds[i] = h_connect(e.d.port);
    t0 = h_now_ms();
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(h_send_cmdv(fds[i], "HGETALL", "product:p-001", NULL), 0);
    for (int i = 0; i < N; i++) {
        char *raw = h_read_reply(fds[i], H_DEFAULT);
        ck_assert_msg(raw && strcmp(raw, "-UPSTREAM timeout\r\n") == 0, "client %d: %s", i, h_repr(raw));
        free(raw);
    }
    elapsed = h_now_ms() - t0;
    ck_assert_msg(elapsed >= 900 && elapsed <= 1000 + 1000, "timeout reply after %lld ms, want about 1000", elapsed);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-001"), 1);
    expect_nothing_cached(e.rfd, "product", "p-001");
    ck_assert_int_eq(su_stat(fds[0], "upstream_errors"), 1);

    /* Fast again: the next read fetches and caches. */
    h_upstream_set_latency(&e.up, 0);
    {
        char *raw = su_rawq(fds[0], "HGETALL", "product:p-001", NULL);
        expect_product_raw(raw, 1);
        free(raw);
    }
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-001"), 2);
    ck_assert_msg(su_wait_cached(e.rfd, "cache:product:{p-001}", 2000) == 0, "record not stored");
}
END_TEST

/* A namespace whose upstream refuses connections: an -UPSTREAM error. */
START_TEST(t_upstream_unreachable)
{
    struct env e;
    char ns[200];
    int fd;

    snprintf(ns, sizeof(ns), "[namespace:dead]\nupstream = http://127.0.0.1:%d/x/{id}\n", h_free_port());
    env_up(&e, 0, 0, NULL, ns);
    fd = h_connect(e.d.port);
    EXPECT_RAW("-UPSTREAM unreachable\r\n", fd, "HGETALL", "dead:1");
    expect_nothing_cached(e.rfd, "dead", "1");
    EXPECT_RAW("-UPSTREAM unreachable\r\n", fd, "HGET", "dead:1", "a");
    ck_assert_int_eq(su_stat(fd, "upstream_errors"), 2);
    EXPECT_RAW("+PONG\r\n", fd, "PING");
}
END_TEST

/* A hash namespace needs a JSON object: anything else is -UPSTREAM bad body
 * and not cached. A raw namespace takes any body. */
START_TEST(t_bad_body)
{
    static const char *const bodies[][2] = {
        { "arr", "[1,2]" }, { "inv", "{\"a\":" }, { "str", "\"text\"" }, { "num", "42" },
        { "nul", "null" }, { "empty", "" }, { "junk", "<html>oops</html>" },
    };
    struct env e;
    int fd;

    env_up(&e, 0, 0, NULL, NULL);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        h_upstream_set_body(&e.up, bodies[i][0], bodies[i][1]);
    fd = h_connect(e.d.port);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char key[64];
        char *raw;

        snprintf(key, sizeof(key), "product:%s", bodies[i][0]);
        raw = su_rawq(fd, "HGETALL", key, NULL);
        ck_assert_msg(strcmp(raw, "-UPSTREAM bad body\r\n") == 0, "body %s: %s", h_repr(bodies[i][1]), h_repr(raw));
        free(raw);
        expect_nothing_cached(e.rfd, "product", bodies[i][0]);
        raw = su_rawq(fd, "HGET", key, "a", NULL);
        ck_assert_msg(strcmp(raw, "-UPSTREAM bad body\r\n") == 0, "body %s: %s", h_repr(bodies[i][1]), h_repr(raw));
        free(raw);
        ck_assert_int_eq(h_upstream_count_id(&e.up, bodies[i][0]), 2);
    }
    EXPECT_RAW("$5\r\n[1,2]\r\n", fd, "GET", "page:arr");
    EXPECT_RAW("$0\r\n\r\n", fd, "GET", "page:empty");
}
END_TEST

/* A body over max_body_bytes is an -UPSTREAM error and not cached. */
START_TEST(t_body_too_large)
{
    struct env e;
    char big[1600], small[1000];
    int fd;

    env_up(&e, 0, 0, "max_body_bytes = 1000\n", NULL);
    snprintf(big, sizeof(big), "{\"big\":\"%01500d\"}", 0);
    snprintf(small, sizeof(small), "{\"small\":\"%0900d\"}", 0);
    h_upstream_set_body(&e.up, "big", big);
    h_upstream_set_body(&e.up, "small", small);
    fd = h_connect(e.d.port);

    EXPECT_RAW("-UPSTREAM body too large\r\n", fd, "HGETALL", "product:big");
    expect_nothing_cached(e.rfd, "product", "big");
    EXPECT_RAW("-UPSTREAM body too large\r\n", fd, "GET", "page:big");
    expect_nothing_cached(e.rfd, "page", "big");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "big"), 2);
    {
        struct h_reply *r = su_q(fd, "HGETALL", "product:small", NULL);
        ck_assert_int_eq(r->type, H_REPLY_ARRAY);
        ck_assert_uint_eq(r->elements, 2);
        ck_assert_uint_eq(r->element[1]->len, 900);
        h_reply_free(r);
    }
    /* The connection pool still works after the oversized reply. */
    EXPECT_RAW("-UPSTREAM body too large\r\n", fd, "HGETALL", "product:big");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "big"), 3);
}
END_TEST

/* --------------------------------------------------- Redis unavailable -- */

/* Redis stops under a running daemon: reads are answered from the upstream
 * (coalesced) without an error; once Redis is back, reads fill it again. */
START_TEST(t_redis_down_and_back)
{
    enum { N = 10 };
    struct env e;
    int fd, fds[N];
    char *raw;
    long long end;
    long before;

    env_up(&e, 0, 6, NULL, NULL);
    fd = h_connect(e.d.port);
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    expect_product_raw(raw, 1);
    free(raw);

    h_close(e.rfd);
    h_redis_stop(&e.redis);

    /* Degraded: cached or not, every read is answered. */
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    expect_product_raw(raw, 1);
    free(raw);
    raw = su_rawq(fd, "HGETALL", "product:p-002", NULL);
    expect_product_raw(raw, 2);
    free(raw);
    EXPECT_RAW("$9\r\nProduct 2\r\n", fd, "HGET", "product:p-002", "name");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    ck_assert_int_ge(h_upstream_count_id(&e.up, "p-001"), 2);

    /* Still single-flight within the daemon. */
    h_upstream_set_latency(&e.up, 300);
    for (int i = 0; i < N; i++) {
        fds[i] = h_connect(e.d.port);
        ck_assert_int_eq(h_send_cmdv(fds[i], "HGETALL", "product:p-003", NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        raw = h_read_reply(fds[i], H_DEFAULT);
        ck_assert_msg(raw != NULL, "client %d: no reply with Redis down", i);
        expect_product_raw(raw, 3);
        free(raw);
    }
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-003"), 1);
    h_upstream_set_latency(&e.up, 0);

    /* Redis back (empty): reads populate it again within a few seconds. */
    h_redis_restart(&e.redis);
    e.rfd = h_connect(e.redis.port);
    end = h_now_ms() + 10000;
    for (;;) {
        raw = su_rawq(fd, "HGETALL", "product:p-004", NULL);
        expect_product_raw(raw, 4);
        free(raw);
        if (su_qint(e.rfd, "EXISTS", "cache:product:{p-004}", NULL) == 1)
            break;
        ck_assert_msg(h_now_ms() < end, "Redis not written 10 s after its restart: %s", h_log_tail(e.d.log));
        h_msleep(100);
    }
    before = h_upstream_count_id(&e.up, "p-004");
    raw = su_rawq(fd, "HGETALL", "product:p-004", NULL);
    expect_product_raw(raw, 4);
    free(raw);
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-004"), before);
}
END_TEST

/* A Redis that refuses the daemon's AUTH (a wrong password in the config):
 * the daemon logs why, keeps answering reads from the upstream while it
 * retries, and write commands say TRYAGAIN. Restarted with the right
 * password (AUTH username password form), it caches. */
START_TEST(t_redis_auth)
{
    struct h_redis redis = { 0 };
    struct h_upstream up;
    struct h_daemon d;
    int fd, rfd;
    char *raw;

    h_redis_start(&redis);
    rfd = h_connect(redis.port);
    EXPECT_RAW("+OK\r\n", rfd, "CONFIG", "SET", "requirepass", "s3cret");
    h_upstream_start(&up, 0, 6);
    h_daemon_init(&d);
    h_daemon_start(&d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n"
                   "[redis]\nport = %d\npassword = wrong\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d.port, redis.port, up.port);
    ck_assert_msg(h_wait_log(d.log, "WRONGPASS", H_TIMEOUT_MS) == 0,
                  "the refused AUTH is not logged: %s", h_log_tail(d.log));
    fd = h_connect(d.port);
    for (int i = 0; i < 3; i++) {       /* across several reconnect attempts */
        raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
        expect_product_raw(raw, 1);
        free(raw);
        h_msleep(150);
    }
    EXPECT_RAW("-TRYAGAIN cache unavailable\r\n", fd, "DEL", "product:p-001");
    ck_assert_int_eq(h_daemon_stop(&d), 0);
    h_close(fd);

    h_daemon_start(&d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n"
                   "[redis]\nport = %d\nusername = default\npassword = s3cret\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   d.port, redis.port, up.port);
    ck_assert_msg(h_wait_log(d.log, "redis: connected", H_TIMEOUT_MS) == 0,
                  "no Redis connection with the right password: %s", h_log_tail(d.log));
    fd = h_connect(d.port);
    raw = su_rawq(fd, "HGETALL", "product:p-002", NULL);
    expect_product_raw(raw, 2);
    free(raw);
    EXPECT_RAW("+OK\r\n", rfd, "AUTH", "s3cret");
    ck_assert_int_eq(su_qint(rfd, "EXISTS", "cache:product:{p-002}", NULL), 1);
}
END_TEST

/* A Redis that stops answering (CLIENT PAUSE) is given up on after
 * command_timeout_ms: the read is answered from the upstream, well before
 * the pause ends, and counted in redis_errors; afterwards the cache works
 * again. */
START_TEST(t_redis_command_timeout)
{
    struct env e;
    int fd;
    char *raw;
    long long t0, took;

    memset(&e, 0, sizeof(e));
    h_redis_start(&e.redis);
    e.rfd = h_connect(e.redis.port);
    h_upstream_start(&e.up, 0, 6);
    h_daemon_init(&e.d);
    h_daemon_start(&e.d,
                   "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\n"
                   "[redis]\nport = %d\ncommand_timeout_ms = 300\n"
                   "[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   e.d.port, e.redis.port, e.up.port);
    ck_assert_msg(h_wait_log(e.d.log, "redis: connected", H_TIMEOUT_MS) == 0, "%s", h_log_tail(e.d.log));
    fd = h_connect(e.d.port);
    EXPECT_RAW("+OK\r\n", e.rfd, "CLIENT", "PAUSE", "4000", "ALL");
    t0 = h_now_ms();
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    took = h_now_ms() - t0;
    expect_product_raw(raw, 1);
    free(raw);
    ck_assert_msg(took < 2500, "read took %lld ms with Redis paused for 4000 ms (command_timeout_ms 300)", took);
    ck_assert_int_ge(su_stat(fd, "redis_errors"), 1);
    ck_assert_msg(h_log_contains(e.d.log, "command_timeout_ms"), "%s", h_log_tail(e.d.log));

    /* Once the pause is over the daemon reconnects and caches again. */
    for (long long end = h_now_ms() + 10000;; h_msleep(100)) {
        raw = su_rawq(fd, "HGETALL", "product:p-002", NULL);
        expect_product_raw(raw, 2);
        free(raw);
        if (su_qint(e.rfd, "EXISTS", "cache:product:{p-002}", NULL) == 1)
            break;
        ck_assert_msg(h_now_ms() < end, "nothing cached after the pause: %s", h_log_tail(e.d.log));
    }
}
END_TEST

/* Clients that send reads of cached keys and leave at once: the Redis
 * replies arrive for connections that are gone; the daemon stays up. */
START_TEST(t_clients_gone_before_reply)
{
    enum { NKEYS = 10, NCLIENTS = 100 };
    struct env e;
    char batch[4096], key[32];
    size_t blen = 0;
    long long end;
    char *raw;
    int fd;

    env_up(&e, 0, 20, NULL, NULL);
    fd = h_connect(e.d.port);
    for (int i = 1; i <= NKEYS; i++) {
        raw = su_rawq(fd, "HGETALL", product_key(key, sizeof(key), i), NULL);
        expect_product_raw(raw, i);
        free(raw);
    }
    for (int i = 1; i <= NKEYS; i++) {
        product_key(key, sizeof(key), i);
        blen += (size_t)snprintf(batch + blen, sizeof(batch) - blen, "*2\r\n$7\r\nHGETALL\r\n$%zu\r\n%s\r\n",
                                 strlen(key), key);
    }
    for (int c = 0; c < NCLIENTS; c++) {
        int cfd = h_connect(e.d.port);
        char tail[128];
        /* Some clients also start fills they will not wait for. */
        product_key(key, sizeof(key), NKEYS + 1 + c % 10);
        snprintf(tail, sizeof(tail), "*2\r\n$7\r\nHGETALL\r\n$%zu\r\n%s\r\n", strlen(key), key);
        ck_assert_int_eq(h_send(cfd, batch, blen), 0);
        if (c % 2)
            ck_assert_int_eq(h_send(cfd, tail, strlen(tail)), 0);
        if (c % 3) {
            /* Reset rather than a polite FIN: the daemon drops the
             * connection at once, with its Redis reads still pending. */
            struct linger lg = { 1, 0 };
            ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        }
        h_close(cfd);
    }
    EXPECT_RAW("+PONG\r\n", fd, "PING");
    raw = su_rawq(fd, "HGETALL", "product:p-005", NULL);
    expect_product_raw(raw, 5);
    free(raw);
    raw = su_rawq(fd, "HGETALL", "product:p-015", NULL);
    expect_product_raw(raw, 15);
    free(raw);
    end = h_now_ms() + 5000;
    while (su_stat(fd, "clients_connected") != 1) {
        ck_assert_msg(h_now_ms() < end, "clients_connected stays %lld", su_stat(fd, "clients_connected"));
        h_msleep(20);
    }
    ck_assert_int_eq(h_wait_exit(e.d.pid, 0, NULL), -1);
}
END_TEST

/* ------------------------------------------------------ stats and TTL -- */

/* STATS RESET zeroes the counters (the connected-clients gauge stays);
 * INFO's cachasided section has STATS's lines. */
START_TEST(t_stats_reset_info)
{
    static const char *const counters[] = {
        "hits", "misses", "stale_hits", "negative_hits", "coalesced", "stampedes_suppressed", "lock_timeouts",
        "upstream_requests", "upstream_errors", "redis_errors", "invalidations", "field_updates",
    };
    struct env e;
    struct h_reply *r;
    char *raw;
    int fd;

    env_up(&e, 0, 3, NULL, NULL);
    fd = h_connect(e.d.port);
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    free(raw);
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    free(raw);
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    ck_assert_int_eq(su_stat(fd, "hits"), 1);
    ck_assert_int_eq(su_stat(fd, "misses"), 2);
    ck_assert_int_eq(su_stat(fd, "negative_hits"), 1);
    ck_assert_int_eq(su_stat(fd, "upstream_requests"), 2);
    ck_assert_int_eq(su_stat(fd, "hit_rate_pct"), 50);
    ck_assert_int_eq(su_stat(fd, "clients_connected"), 1);
    ck_assert_int_ge(su_stat(fd, "uptime_s"), 0);

    EXPECT_RAW("+OK\r\n", fd, "STATS", "RESET");
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        ck_assert_msg(su_stat(fd, counters[i]) == 0, "%s not reset", counters[i]);
    ck_assert_int_eq(su_stat(fd, "hit_rate_pct"), 0);
    ck_assert_int_eq(su_stat(fd, "clients_connected"), 1);

    /* INFO: the same lines, in its cachasided section. */
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    free(raw);
    r = su_q(fd, "INFO", NULL);
    ck_assert_int_eq(r->type, H_REPLY_BULK);
    ck_assert_msg(strncmp(r->str, "hits:1\r\n", 8) == 0 || strstr(r->str, "\nhits:1\r\n"), "INFO: %s",
                  h_repr(r->str));
    ck_assert_msg(strstr(r->str, "\nmisses:0\r\n") || strncmp(r->str, "misses:0\r\n", 10) == 0, "INFO: %s",
                  h_repr(r->str));
    h_reply_free(r);

    /* Inline, lower case. */
    raw = h_inline(fd, "stats reset");
    ck_assert_msg(raw && strcmp(raw, "+OK\r\n") == 0, "stats reset: %s", h_repr(raw));
    free(raw);
    ck_assert_int_eq(su_stat(fd, "hits"), 0);
}
END_TEST

/* TTL/PTTL show a cached entry's remaining time, and -2 for an uncached
 * key without loading it. */
START_TEST(t_ttl_pttl)
{
    struct env e;
    long long ttl, pttl;
    char *raw;
    int fd;

    env_up(&e, 0, 3, NULL, NULL);
    fd = h_connect(e.d.port);
    raw = su_rawq(fd, "HGETALL", "product:p-001", NULL);
    expect_product_raw(raw, 1);
    free(raw);

    ttl = su_qint(fd, "TTL", "product:p-001", NULL);
    ck_assert_msg(ttl >= TTL_S - 1 && ttl <= TTL_S * (100 + JITTER_PCT) / 100, "TTL %lld", ttl);
    pttl = su_qint(fd, "PTTL", "product:p-001", NULL);
    ck_assert_msg(pttl >= TTL_S * 1000LL - 1000 && pttl <= TTL_S * 1000LL * (100 + JITTER_PCT) / 100,
                  "PTTL %lld", pttl);
    {
        long long direct = su_qint(e.rfd, "PTTL", "cache:product:{p-001}", NULL);
        ck_assert_msg(pttl >= direct && pttl - direct < 1000, "PTTL %lld, Redis says %lld", pttl, direct);
    }

    EXPECT_RAW(":-2\r\n", fd, "TTL", "product:p-002");
    EXPECT_RAW(":-2\r\n", fd, "PTTL", "product:p-002");
    EXPECT_RAW(":-2\r\n", fd, "TTL", "page:p-002");
    ck_assert_int_eq(h_upstream_count_id(&e.up, "p-002"), 0);
    ck_assert_int_eq(su_qint(e.rfd, "EXISTS", "cache:product:{p-002}", NULL), 0);
    ck_assert_int_eq(h_upstream_count(&e.up), 1);

    /* A not-found sentinel counts down from negative_ttl_s. */
    EXPECT_RAW("*0\r\n", fd, "HGETALL", "product:nope");
    ttl = su_qint(fd, "TTL", "product:nope", NULL);
    ck_assert_msg(ttl >= NEG_TTL_S - 1 && ttl <= NEG_TTL_S, "TTL of a not-found entry %lld", ttl);
}
END_TEST

/* ------------------------------------------------------------- main ---- */

int main(void)
{
    const struct su_case cases[] = {
        { "miss_then_hit", t_miss_then_hit, 30, 0 },
        { "json_flattening", t_json_flattening, 30, 0 },
        { "raw_namespace", t_raw_namespace, 30, 0 },
        { "bad_keys", t_bad_keys, 30, 0 },
        { "url_unsafe_id", t_url_unsafe_id, 30, 0 },
        { "path_ids", t_path_ids, 30, 0 },
        { "coalesce_200", t_coalesce_200, 30, 0 },
        { "cross_daemon", t_cross_daemon, 30, 0 },
        { "lock_holder_killed", t_lock_holder_killed, 30, 0 },
        { "starter_disconnects", t_starter_disconnects, 30, 0 },
        { "not_found_cached", t_not_found_cached, 30, 0 },
        { "upstream_status", t_upstream_status, 30, 0 },
        { "upstream_timeout", t_upstream_timeout, 30, 0 },
        { "upstream_unreachable", t_upstream_unreachable, 30, 0 },
        { "bad_body", t_bad_body, 30, 0 },
        { "body_too_large", t_body_too_large, 30, 0 },
        { "redis_down_and_back", t_redis_down_and_back, 30, 0 },
        { "redis_auth", t_redis_auth, 30, 0 },
        { "redis_command_timeout", t_redis_command_timeout, 30, 0 },
        { "clients_gone_before_reply", t_clients_gone_before_reply, 30, 0 },
        { "stats_reset_info", t_stats_reset_info, 30, 0 },
        { "ttl_pttl", t_ttl_pttl, 30, 0 },
    };

    return SU_RUN("reads", cases, CK_ENV);
}
