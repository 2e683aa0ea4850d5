/* SPDX-License-Identifier: BSD-3-Clause */
/* test_compat.c - what a stock Redis client asks a server about itself,
 * answered truthfully and in Redis 7's formats (docs/protocol.md, "The
 * one-node cluster", "Introspection"):
 *   - CLUSTER SLOTS, SHARDS, NODES, INFO, MYID and KEYSLOT describe one node,
 *     this daemon, owning all 16384 slots, with the shapes a real Redis
 *     node of one gives (compared with a cluster-enabled redis-server);
 *   - the address announced: the listen address, each client's own local
 *     address behind a wildcard, cluster_announce (reloaded) when set;
 *   - CLIENT SETNAME/GETNAME/SETINFO/LIST/INFO/ID about this daemon's own
 *     connections, CLIENT KILL closing them;
 *   - COMMAND generated from the command table: count, arity and key
 *     positions equal to a real Redis's, GETKEYS, DOCS for every command;
 *   - INFO in sections, STATS unchanged.
 * Every test runs the built daemon, a real redis-server and the example
 * upstream on free ports and talks over real sockets. */
#define _GNU_SOURCE
#include "suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A connection to a unix socket, or -1 while nothing listens there. */
static int try_unix(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (strlen(path) >= sizeof(a.sun_path))
        return -1;
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        close(fd);
        return h_connect_unix(path);
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

static struct env {
    struct h_redis redis;
    struct h_upstream up;
    struct h_daemon d;
} E;

/* Redis, the upstream and a daemon whose [server] section has the listen
 * line LISTEN ("%d" for its port; NULL: 127.0.0.1) and EXTRA. */
static void env_up(const char *listen, const char *extra)
{
    char line[128];

    memset(&E, 0, sizeof(E));
    h_redis_start(&E.redis);
    h_upstream_start(&E.up, 0, 10);
    h_daemon_init(&E.d);
    snprintf(line, sizeof(line), listen ? listen : "listen = 127.0.0.1:%d\n", E.d.port);
    h_daemon_start(&E.d,
                   "[server]\n%sadmin_listen =\n%s"
                   "\n[redis]\nport = %d\n"
                   "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   line, extra, E.redis.port, E.up.port);
    if (strstr(extra, "requirepass"))
        su_wait_log_linked(&E.d, 0);
    else
        su_wait_linked(&E.d);
}

static bool aggregate(const struct h_reply *r)
{
    return r->type == H_REPLY_ARRAY || r->type == H_REPLY_MAP || r->type == H_REPLY_SET;
}

/* A reply's element i (of an array, a set, or a map's flattened pairs),
 * checked to exist. */
static struct h_reply *el(const struct h_reply *r, size_t i)
{
    ck_assert_msg(aggregate(r) && i < r->elements, "no element %zu (type %c, %zu elements)", i, (char)r->type,
                  r->elements);
    return r->element[i];
}

/* The value of KEY in a map (RESP3) or a flat one (RESP2 array k, v, k,
 * v...), or NULL. */
static struct h_reply *map_get(const struct h_reply *m, const char *key)
{
    for (size_t i = 0; aggregate(m) && i + 1 < m->elements; i += 2)
        if (m->element[i]->type == H_REPLY_BULK && strcmp(m->element[i]->str, key) == 0)
            return m->element[i + 1];
    return NULL;
}

static const char *map_str(const struct h_reply *m, const char *key)
{
    struct h_reply *v = map_get(m, key);

    ck_assert_msg(v && v->type == H_REPLY_BULK, "no bulk '%s' in the map", key);
    return v->str;
}

/* "name:value" of a text reply (INFO, CLUSTER INFO) into out; false when absent. */
static bool text_field(const char *text, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            snprintf(out, size, "%.*s", (int)strcspn(p + nl + 1, "\r\n"), p + nl + 1);
            return true;
        }
    }
    return false;
}

static const char *text_get(const char *text, const char *name)
{
    static char v[4][512];
    static int turn;
    char *out = v[turn++ % 4];

    ck_assert_msg(text_field(text, name, out, sizeof(v[0])), "no '%s:' in %s", name, h_repr(text));
    return out;
}

/* " key=value" of a CLIENT LIST line. */
static const char *line_get(const char *line, const char *key)
{
    static char v[8][512];
    static int turn;
    char *out = v[turn++ % 8], pat[64];
    const char *p;
    size_t eol = strcspn(line, "\n");

    snprintf(pat, sizeof(pat), "%s=", key);
    for (p = line; p && p < line + eol; p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL) {
        if (strncmp(p, pat, strlen(pat)) == 0) {
            size_t len = strcspn(p + strlen(pat), " \n");
            snprintf(out, sizeof(v[0]), "%.*s", (int)len, p + strlen(pat));
            return out;
        }
    }
    ck_abort_msg("no '%s=' in the line %s", key, h_repr(line));
    return NULL;
}

/* The line of CLIENT LIST text whose id is ID, or NULL. */
static const char *line_of(const char *text, long long id)
{
    char pat[40];

    snprintf(pat, sizeof(pat), "id=%lld ", id);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, pat, strlen(pat)) == 0)
            return p;
    return NULL;
}

static int count_lines(const char *text)
{
    int n = 0;

    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* The bulk string reply of a command (the test fails on anything else). */
static char *bulk(int fd, ...)
{
    va_list ap;
    char *raw, *s;
    struct h_reply *r;

    va_start(ap, fd);
    raw = su_vcmd(fd, H_DEFAULT, ap);
    va_end(ap);
    ck_assert_msg(raw && raw[0] == '$', "want a bulk string, got %s", h_repr(raw));
    r = h_parse_reply(raw);
    s = strdup(r->type == H_REPLY_BULK ? r->str : "");
    h_reply_free(r);
    free(raw);
    return s;
}

/* CLIENT LIST once this daemon has exactly N clients (a test's closed
 * connections may not be gone yet). */
static char *client_list_of(int fd, int n)
{
    long long deadline = h_now_ms() + 3000;
    char *text;

    for (;;) {
        text = bulk(fd, "CLIENT", "LIST", NULL);
        if (count_lines(text) == n || h_now_ms() > deadline)
            break;
        free(text);
        h_msleep(20);
    }
    ck_assert_msg(count_lines(text) == n, "want %d clients, CLIENT LIST has %s", n, h_repr(text));
    return text;
}

/* "ip:port" of a socket's own end (local: 1) or its peer's (0). */
static const char *sock_addr(int fd, int local)
{
    static char out[2][80];
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    char ip[INET_ADDRSTRLEN];

    ck_assert_int_eq(local ? getsockname(fd, (struct sockaddr *)&a, &len) : getpeername(fd, (struct sockaddr *)&a, &len), 0);
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
    snprintf(out[local], sizeof(out[0]), "%s:%d", ip, ntohs(a.sin_port));
    return out[local];
}

static bool is_hex40(const char *s)
{
    if (strlen(s) != 40)
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return false;
    return true;
}

/* ------------------------------------------------------ the cluster -- */

/* CLUSTER SLOTS: one range, 0-16383, served by one node at HOST:PORT with
 * the id of CLUSTER MYID; HOSTNAME: the metadata names it. */
static void expect_slots(int fd, const char *host, int port, bool hostname)
{
    struct h_reply *r = su_q(fd, "CLUSTER", "SLOTS", NULL), *range, *node;
    char *myid = bulk(fd, "CLUSTER", "MYID", NULL);

    ck_assert_int_eq(r->elements, 1);
    range = el(r, 0);
    ck_assert_int_eq(range->elements, 3);
    ck_assert_int_eq(el(range, 0)->integer, 0);
    ck_assert_int_eq(el(range, 1)->integer, 16383);
    node = el(range, 2);
    ck_assert_int_eq(node->elements, 4);
    ck_assert_str_eq(el(node, 0)->str, host);
    ck_assert_int_eq(el(node, 1)->integer, port);
    ck_assert_str_eq(el(node, 2)->str, myid);
    ck_assert_int_eq(el(node, 3)->type, H_REPLY_ARRAY);
    if (hostname)
        ck_assert_str_eq(map_str(el(node, 3), "hostname"), host);
    else
        ck_assert_int_eq(el(node, 3)->elements, 0);
    h_reply_free(r);
    free(myid);
}

/* The one-node cluster: SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT, the
 * commands a cluster client sends, and the refusals. */
START_TEST(t_cluster_one_node)
{
    env_up(NULL, "");
    int fd = h_connect(E.d.port), other;
    char *myid = bulk(fd, "CLUSTER", "MYID", NULL), *text, *again, want[256];
    struct h_reply *r, *shard, *node;

    ck_assert_msg(is_hex40(myid), "MYID %s", myid);
    other = h_connect(E.d.port);
    again = bulk(other, "CLUSTER", "MYID", NULL);
    ck_assert_str_eq(again, myid);                  /* the same for every client, every time */
    free(again);
    expect_slots(fd, "127.0.0.1", E.d.port, false);

    r = su_q(fd, "CLUSTER", "SHARDS", NULL);
    ck_assert_int_eq(r->elements, 1);
    shard = el(r, 0);
    ck_assert_int_eq(shard->elements, 4);
    ck_assert_int_eq(map_get(shard, "slots")->elements, 2);
    ck_assert_int_eq(el(map_get(shard, "slots"), 0)->integer, 0);
    ck_assert_int_eq(el(map_get(shard, "slots"), 1)->integer, 16383);
    ck_assert_int_eq(map_get(shard, "nodes")->elements, 1);
    node = el(map_get(shard, "nodes"), 0);
    ck_assert_str_eq(map_str(node, "id"), myid);
    ck_assert_int_eq(map_get(node, "port")->integer, E.d.port);
    ck_assert_str_eq(map_str(node, "ip"), "127.0.0.1");
    ck_assert_str_eq(map_str(node, "endpoint"), "127.0.0.1");
    ck_assert_str_eq(map_str(node, "role"), "master");
    ck_assert_int_eq(map_get(node, "replication-offset")->integer, 0);
    ck_assert_str_eq(map_str(node, "health"), "online");
    ck_assert_ptr_null(map_get(node, "hostname"));
    h_reply_free(r);

    text = bulk(fd, "CLUSTER", "NODES", NULL);
    snprintf(want, sizeof(want), "%s 127.0.0.1:%d@0 myself,master - 0 0 0 connected 0-16383\n", myid, E.d.port);
    ck_assert_str_eq(text, want);
    free(text);

    text = bulk(fd, "CLUSTER", "INFO", NULL);
    ck_assert_str_eq(text_get(text, "cluster_state"), "ok");
    ck_assert_str_eq(text_get(text, "cluster_slots_assigned"), "16384");
    ck_assert_str_eq(text_get(text, "cluster_slots_ok"), "16384");
    ck_assert_str_eq(text_get(text, "cluster_slots_fail"), "0");
    ck_assert_str_eq(text_get(text, "cluster_known_nodes"), "1");
    ck_assert_str_eq(text_get(text, "cluster_size"), "1");
    free(text);

    /* The check value of CRC16/XMODEM, and hash tags. */
    EXPECT_RAW(":12739\r\n", fd, "CLUSTER", "KEYSLOT", "123456789");
    EXPECT_RAW(":12739\r\n", fd, "cluster", "keyslot", "product:{123456789}");
    EXPECT_RAW(":12182\r\n", fd, "CLUSTER", "KEYSLOT", "foo");
    CK_PREFIX(su_rawq(fd, "CLUSTER", "KEYSLOT", NULL), "-ERR wrong number of arguments for 'cluster|keyslot' command");

    /* What cluster clients send on connect and on redirections. */
    EXPECT_RAW("+OK\r\n", fd, "READONLY");
    text = bulk(fd, "CLIENT", "INFO", NULL);
    ck_assert_str_eq(line_get(text, "flags"), "r");
    free(text);
    EXPECT_RAW("+OK\r\n", fd, "READWRITE");
    text = bulk(fd, "CLIENT", "INFO", NULL);
    ck_assert_str_eq(line_get(text, "flags"), "N");
    free(text);
    EXPECT_RAW("+OK\r\n", fd, "ASKING");
    EXPECT_RAW("*0\r\n", fd, "CLUSTER", "LINKS");
    EXPECT_RAW("*0\r\n", fd, "CLUSTER", "REPLICAS", myid);
    CK_PREFIX(su_rawq(fd, "CLUSTER", "REPLICAS", "0000000000000000000000000000000000000000", NULL), "-ERR Unknown node");

    /* Nothing changes the map; unknown subcommands are errors. */
    CK_PREFIX(su_rawq(fd, "CLUSTER", "ADDSLOTS", "1", NULL), "-ERR CLUSTER ADDSLOTS is not supported");
    CK_PREFIX(su_rawq(fd, "CLUSTER", "MEET", "127.0.0.1", "7000", NULL), "-ERR CLUSTER MEET is not supported");
    EXPECT_RAW("-ERR unknown subcommand 'bogus'. Try CLUSTER HELP.\r\n", fd, "CLUSTER", "bogus");
    r = su_q(fd, "CLUSTER", "HELP", NULL);
    ck_assert_int_gt(r->elements, 10);
    h_reply_free(r);

    /* Keys are served as before, whatever their slot. */
    CK_PREFIX(su_rawq(fd, "HGET", "product:p-001", "id", NULL), "$5\r\np-001");
    free(myid);
}
END_TEST

/* A cluster-enabled redis-server owning every slot: the reference the
 * daemon's replies are compared with. */
static int ref_start(struct h_redis *ref)
{
    char cfg[PATH_MAX], bus[16], name[64];
    int fd;

    snprintf(name, sizeof(name), "nodes-%d.conf", (int)getpid());
    snprintf(cfg, sizeof(cfg), "%s", h_path(name));
    snprintf(bus, sizeof(bus), "%d", h_free_port());
    const char *extra[] = { "--cluster-enabled", "yes", "--cluster-config-file", cfg, "--cluster-port", bus, NULL };
    memset(ref, 0, sizeof(*ref));
    h_redis_start_opts(ref, extra);
    fd = h_connect(ref->port);
    EXPECT_RAW("+OK\r\n", fd, "CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    for (long long deadline = h_now_ms() + 5000;;) {
        char *info = bulk(fd, "CLUSTER", "INFO", NULL), state[16] = "";
        text_field(info, "cluster_state", state, sizeof(state));
        free(info);
        if (strcmp(state, "ok") == 0)
            break;
        ck_assert_msg(h_now_ms() < deadline, "the reference node never reached cluster_state:ok");
        h_msleep(50);
    }
    return fd;
}

/* The reply's shape: types and lengths, with map keys spelled out (a
 * RESP3 map's, and with MAP, the even elements of an array as RESP2
 * flattens a map), leaf values not. */
static void shape(const struct h_reply *r, char *buf, size_t size, bool map)
{
    size_t off = strlen(buf);
    bool keys = r->type == H_REPLY_MAP || map;

    if (!aggregate(r)) {
        snprintf(buf + off, size - off, "%c", (char)r->type);
        return;
    }
    snprintf(buf + off, size - off, "%c%zu", r->type == H_REPLY_MAP ? '{' : r->type == H_REPLY_SET ? '~' : '[',
             r->elements);
    for (size_t i = 0; i < r->elements; i++) {
        off = strlen(buf);
        if (keys && i % 2 == 0 && r->element[i]->type == H_REPLY_BULK) {
            snprintf(buf + off, size - off, " %s", r->element[i]->str);
        } else {
            snprintf(buf + off, size - off, " ");
            /* RESP2: a map's values that are arrays of even length are maps
             * too (SHARDS' {slots, nodes}, each node, a key spec's parts). */
            shape(r->element[i], buf, size, map && r->element[i]->elements % 2 == 0);
        }
    }
    off = strlen(buf);
    snprintf(buf + off, size - off, "%c", r->type == H_REPLY_MAP ? '}' : r->type == H_REPLY_SET ? '~' : ']');
}

static void expect_same(const struct h_reply *a, const struct h_reply *b, bool map, const char *what)
{
    char sa[4096] = "", sb[4096] = "";

    shape(a, sa, sizeof(sa), map);
    shape(b, sb, sizeof(sb), map);
    ck_assert_msg(strcmp(sa, sb) == 0, "%s: ours %s, Redis's %s", what, sa, sb);
}

static void expect_same_shape(int ours, int ref, bool map, const char *sub)
{
    struct h_reply *a = su_q(ours, "CLUSTER", sub, NULL), *b = su_q(ref, "CLUSTER", sub, NULL);

    expect_same(a, b, map, sub);
    h_reply_free(a);
    h_reply_free(b);
}

/* COMMAND INFO of NAME: the types of its ten fields, and its key specs
 * whole (their maps and flags), are Redis's. */
static void expect_same_command_info(int ours, int ref, const char *name)
{
    struct h_reply *a = su_q(ours, "COMMAND", "INFO", name, NULL), *b = su_q(ref, "COMMAND", "INFO", name, NULL);
    char what[64];

    ck_assert_int_eq(el(a, 0)->elements, 10);
    ck_assert_int_eq(el(b, 0)->elements, 10);
    for (size_t i = 0; i < 10; i++)
        ck_assert_msg(el(el(a, 0), i)->type == el(el(b, 0), i)->type, "COMMAND INFO %s: field %zu is '%c', Redis's '%c'",
                      name, i, (char)el(el(a, 0), i)->type, (char)el(el(b, 0), i)->type);
    snprintf(what, sizeof(what), "the key specs of %s", name);
    expect_same(el(el(a, 0), 8), el(el(b, 0), 8), true, what);
    h_reply_free(a);
    h_reply_free(b);
}

/* The daemon's cluster replies have the shapes, fields and values of a real
 * Redis node that owns every slot; KEYSLOT agrees with Redis's for every
 * kind of key; COMMAND's arity and key positions are Redis's for every
 * command both have; HELLO says cluster; CLIENT LIST has Redis's fields. */
START_TEST(t_like_redis)
{
    static const char *const keys[] = { "foo", "123456789", "product:{p-001}", "{}x", "a{}{b}", "x{y}{z}", "{", "}{",
                                        "", "{user1000}.following", "\xff\xfe{\x01}", "product:p-001" };
    struct h_redis ref;
    env_up(NULL, "");
    int fd = h_connect(E.d.port), rfd = ref_start(&ref);
    char *a, *b, *p;
    struct h_reply *ours, *theirs;

    for (size_t i = 0; i < N_OF(keys); i++) {
        a = su_rawq(fd, "CLUSTER", "KEYSLOT", keys[i], NULL);
        b = su_rawq(rfd, "CLUSTER", "KEYSLOT", keys[i], NULL);
        ck_assert_msg(strcmp(a, b) == 0, "KEYSLOT %s: ours %s, Redis's %s", h_repr(keys[i]), h_repr(a), h_repr(b));
        free(a);
        free(b);
    }
    expect_same_shape(fd, rfd, false, "SLOTS");
    expect_same_shape(fd, rfd, true, "SHARDS");
    expect_same_command_info(fd, rfd, "hgetall");
    expect_same_command_info(fd, rfd, "mget");
    expect_same_command_info(fd, rfd, "ping");

    /* CLUSTER INFO: the same fields, and the same values but the counters
     * of the cluster bus the daemon does not have. */
    a = bulk(fd, "CLUSTER", "INFO", NULL);
    b = bulk(rfd, "CLUSTER", "INFO", NULL);
    for (p = b; *p; p = strchr(p, '\n') + 1) {
        char name[128], mine[128];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(p, ":"), p);
        ck_assert_msg(text_field(a, name, mine, sizeof(mine)), "CLUSTER INFO has no %s: %s", name, h_repr(a));
        if (!strstr(name, "messages"))
            ck_assert_msg(strcmp(mine, text_get(b, name)) == 0, "%s: ours %s, Redis's %s", name, mine,
                          text_get(b, name));
    }
    ck_assert_int_eq(count_lines(a), count_lines(b));
    free(a);
    free(b);

    /* CLUSTER NODES: after the id and the address, the same words. */
    a = bulk(fd, "CLUSTER", "NODES", NULL);
    b = bulk(rfd, "CLUSTER", "NODES", NULL);
    ck_assert_str_eq(strchr(strchr(a, ' ') + 1, ' '), strchr(strchr(b, ' ') + 1, ' '));
    free(a);
    free(b);

    /* HELLO: the same facts, in the same order, mode cluster. */
    ours = su_q(fd, "HELLO", "2", NULL);
    theirs = su_q(rfd, "HELLO", "2", NULL);
    ck_assert_int_eq(ours->elements, theirs->elements);
    for (size_t i = 0; i < ours->elements; i += 2)
        ck_assert_str_eq(el(ours, i)->str, el(theirs, i)->str);
    ck_assert_str_eq(map_str(ours, "mode"), "cluster");
    ck_assert_str_eq(map_str(ours, "version"), "7.2.0");
    ck_assert_str_eq(map_str(ours, "server"), "cachasided");
    h_reply_free(ours);
    h_reply_free(theirs);

    /* COMMAND INFO: for every command Redis has too, the same arity,
     * first key, last key and step; for each subcommand both have, the
     * same arity. */
    ours = su_q(fd, "COMMAND", NULL);
    for (size_t i = 0; i < ours->elements; i++) {
        struct h_reply *c = el(ours, i), *t = su_q(rfd, "COMMAND", "INFO", el(c, 0)->str, NULL), *rc = el(t, 0);
        if (rc->type == H_REPLY_NIL) {
            h_reply_free(t);
            continue;           /* INVALIDATE, STATS: the daemon's own */
        }
        for (int f = 1; f <= 5; f += 1 + (f == 1))    /* arity, first key, last key, step */
            ck_assert_msg(el(c, (size_t)f)->integer == el(rc, (size_t)f)->integer, "%s: field %d is %lld, Redis's %lld",
                          el(c, 0)->str, f, el(c, (size_t)f)->integer, el(rc, (size_t)f)->integer);
        for (size_t s = 0; s < el(c, 9)->elements; s++) {
            struct h_reply *sub = el(el(c, 9), s);
            for (size_t u = 0; u < el(rc, 9)->elements; u++)
                if (strcmp(el(el(el(rc, 9), u), 0)->str, el(sub, 0)->str) == 0)
                    ck_assert_msg(el(sub, 1)->integer == el(el(el(rc, 9), u), 1)->integer, "%s: arity %lld, Redis's %lld",
                                  el(sub, 0)->str, el(sub, 1)->integer, el(el(el(rc, 9), u), 1)->integer);
        }
        h_reply_free(t);
    }
    h_reply_free(ours);

    /* CLIENT LIST: Redis's fields, in Redis's order (7.2 adds lib-name
     * and lib-ver at the end). */
    a = bulk(fd, "CLIENT", "INFO", NULL);
    b = bulk(rfd, "CLIENT", "INFO", NULL);
    p = a;
    for (const char *q = b; q && *q && *q != '\n'; q = strchr(q, ' ') ? strchr(q, ' ') + 1 : NULL) {
        char field[64];
        snprintf(field, sizeof(field), " %.*s=", (int)strcspn(q, "="), q);
        p = strstr(p, field + (q == b));
        ck_assert_msg(p != NULL, "no %s in order in %s", field, h_repr(a));
    }
    free(a);
    free(b);
}
END_TEST

/* After HELLO 3 the replies have RESP3's types where Redis 7 uses them:
 * maps, sets, nulls, verbatim text. */
START_TEST(t_resp3)
{
    static const char *const texts[][2] = { { "CLUSTER", "NODES" }, { "CLUSTER", "INFO" }, { "CLIENT", "LIST" },
                                            { "CLIENT", "INFO" }, { "INFO", "server" } };
    struct h_redis ref;
    env_up(NULL, "");
    int fd = h_connect(E.d.port), rfd = ref_start(&ref);
    struct h_reply *a, *b;

    CK_PREFIX(su_rawq(fd, "HELLO", "3", NULL), "%7\r\n");
    CK_PREFIX(su_rawq(rfd, "HELLO", "3", NULL), "%7\r\n");
    expect_same_shape(fd, rfd, false, "SLOTS");
    expect_same_shape(fd, rfd, false, "SHARDS");
    expect_same_command_info(fd, rfd, "hgetall");
    expect_same_command_info(fd, rfd, "mget");
    for (size_t i = 0; i < N_OF(texts); i++) {
        char *ours = su_rawq(fd, texts[i][0], texts[i][1], NULL), *theirs = su_rawq(rfd, texts[i][0], texts[i][1], NULL);
        ck_assert_msg(ours[0] == '=' && strstr(ours, "\r\ntxt:") == strchr(ours, '\r'), "%s %s: %s", texts[i][0],
                      texts[i][1], h_repr(ours));
        ck_assert_msg(theirs[0] == '=', "Redis's %s %s: %s", texts[i][0], texts[i][1], h_repr(theirs));
        free(ours);
        free(theirs);
    }
    EXPECT_RAW("_\r\n", fd, "CLIENT", "GETNAME");
    EXPECT_RAW("_\r\n", rfd, "CLIENT", "GETNAME");
    EXPECT_RAW("*1\r\n_\r\n", fd, "COMMAND", "INFO", "nosuch");
    EXPECT_RAW("*1\r\n_\r\n", rfd, "COMMAND", "INFO", "nosuch");
    a = su_q(fd, "CLIENT", "TRACKINGINFO", NULL);
    b = su_q(rfd, "CLIENT", "TRACKINGINFO", NULL);
    expect_same(a, b, false, "CLIENT TRACKINGINFO");
    h_reply_free(a);
    h_reply_free(b);
    a = su_q(fd, "COMMAND", "DOCS", "get", NULL);
    ck_assert_int_eq(a->type, H_REPLY_MAP);
    ck_assert_int_eq(el(a, 1)->type, H_REPLY_MAP);
    ck_assert_str_eq(map_str(el(a, 1), "group"), "string");
    h_reply_free(a);
    a = su_q(fd, "COMMAND", "GETKEYSANDFLAGS", "GET", "k", NULL);
    ck_assert_int_eq(el(el(a, 0), 1)->type, H_REPLY_SET);
    h_reply_free(a);
}
END_TEST

/* The address announced: cluster_announce when set (a name is the
 * hostname too), taken up by a reload; with a wildcard listen and none
 * set, the address each client reached. */
START_TEST(t_cluster_announce)
{
    char listen[64], *text, want[256], *myid;
    int fd;

    env_up(NULL, "cluster_announce = cache-1.svc.example:7000\n");
    fd = h_connect(E.d.port);
    myid = bulk(fd, "CLUSTER", "MYID", NULL);
    expect_slots(fd, "cache-1.svc.example", 7000, true);
    text = bulk(fd, "CLUSTER", "NODES", NULL);
    snprintf(want, sizeof(want), "%s cache-1.svc.example:7000@0,cache-1.svc.example myself,master - 0 0 0 connected 0-16383\n",
             myid);
    ck_assert_str_eq(text, want);
    free(text);

    /* A reload: the next reply says the new address. */
    h_daemon_rewrite_conf(&E.d,
                          "[server]\nlisten = 127.0.0.1:%d\nadmin_listen =\ncluster_announce = 10.1.2.3:7001\n"
                          "\n[redis]\nport = %d\n"
                          "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                          E.d.port, E.redis.port, E.up.port);
    long from = h_log_size(E.d.log);
    h_kill(E.d.pid, SIGHUP);
    ck_assert_int_eq(h_wait_log_after(E.d.log, from, "reload", 5000), 0);
    for (long long deadline = h_now_ms() + 5000;; h_msleep(20)) {
        struct h_reply *r = su_q(fd, "CLUSTER", "SLOTS", NULL);
        bool now = strcmp(el(el(el(r, 0), 2), 0)->str, "10.1.2.3") == 0;
        h_reply_free(r);
        if (now)
            break;
        ck_assert_msg(h_now_ms() < deadline, "cluster_announce not reloaded");
    }
    expect_slots(fd, "10.1.2.3", 7001, false);
    free(myid);
    h_daemon_stop(&E.d);
    h_close(fd);

    /* A wildcard listen: each client is told the address it connected to. */
    h_daemon_init(&E.d);
    snprintf(listen, sizeof(listen), "listen = 0.0.0.0:%d\n", E.d.port);
    h_daemon_start(&E.d,
                   "[server]\n%sadmin_listen =\nunix_socket = %s\n\n[redis]\nport = %d\n"
                   "\n[namespace:product]\nupstream = http://127.0.0.1:%d/products/{id}\n",
                   listen, h_path("compat.sock"), E.redis.port, E.up.port);
    fd = h_connect(E.d.port);
    expect_slots(fd, "127.0.0.1", E.d.port, false);
    h_close(fd);
    fd = h_connect_unix(h_path("compat.sock"));
    expect_slots(fd, "127.0.0.1", E.d.port, false);      /* on this host: loopback */
    h_close(fd);
    h_daemon_stop(&E.d);

    /* No TCP listener and nothing set: no address to give. */
    {
        char conf[PATH_MAX], sock[PATH_MAX], text2[PATH_MAX + 128];
        const char *argv[] = { h_daemon_bin(), "-c", conf, NULL };
        pid_t pid;
        snprintf(conf, sizeof(conf), "%s", h_path("unix-only.ini"));
        snprintf(sock, sizeof(sock), "%s", h_path("unix-only.sock"));
        snprintf(text2, sizeof(text2), "[server]\nlisten =\nunix_socket = %s\nadmin_listen =\n\n[redis]\nport = %d\n",
                 sock, E.redis.port);
        h_write_file(conf, text2, strlen(text2));
        pid = h_spawn(argv, h_path("unix-only.log"));
        for (long long deadline = h_now_ms() + 5000; (fd = try_unix(sock)) < 0; h_msleep(20))
            ck_assert_msg(h_now_ms() < deadline, "no unix socket: %s", h_log_tail(h_path("unix-only.log")));
        CK_PREFIX(su_rawq(fd, "CLUSTER", "SLOTS", NULL), "-ERR no address to announce");
        CK_PREFIX(su_rawq(fd, "CLUSTER", "NODES", NULL), "-ERR no address to announce");
        CK_PREFIX(su_rawq(fd, "CLUSTER", "KEYSLOT", "foo", NULL), ":12182");
        h_close(fd);
        ck_assert_int_eq(h_stop(pid, H_STOP_TIMEOUT_MS), 0);
    }
}
END_TEST

/* With [::] the address is the one the client reached, IPv4 or IPv6
 * (skipped where the host has no IPv6 loopback). */
START_TEST(t_cluster_announce_v6)
{
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int s = socket(AF_INET6, SOCK_STREAM, 0), fd;

    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "t_cluster_announce_v6: no IPv6 loopback, skipped\n");
        if (s >= 0)
            close(s);
        return;
    }
    close(s);
    env_up("listen = [::]:%d\n", "");
    fd = h_connect(E.d.port);
    expect_slots(fd, "127.0.0.1", E.d.port, false);      /* an IPv4 client of a dual-stack listener */
    h_close(fd);
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    a.sin6_port = htons((uint16_t)E.d.port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    expect_slots(fd, "::1", E.d.port, false);
    close(fd);
}
END_TEST

/* ------------------------------------------------------------ CLIENT -- */

/* SETNAME/GETNAME/SETINFO are kept; CLIENT LIST has one line per client of
 * the daemon in Redis's format with the true values; CLIENT INFO is the
 * caller's line; the ID and TYPE filters. */
START_TEST(t_client_list)
{
    env_up(NULL, "");
    int a = h_connect(E.d.port), b = h_connect(E.d.port);
    long long ida = su_qint(a, "CLIENT", "ID", NULL), idb = su_qint(b, "CLIENT", "ID", NULL);
    char laddr[64], idbuf[32], *text, *info;
    const char *la, *lb;

    ck_assert_int_ne(ida, idb);
    EXPECT_RAW("$-1\r\n", a, "CLIENT", "GETNAME");
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "SETNAME", "svc-a");
    EXPECT_RAW("$5\r\nsvc-a\r\n", a, "CLIENT", "GETNAME");
    EXPECT_RAW("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", a, "CLIENT", "SETNAME",
               "a b");
    EXPECT_RAW("$5\r\nsvc-a\r\n", a, "CLIENT", "GETNAME");
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "SETINFO", "LIB-NAME", "redis-py");
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "SETINFO", "lib-ver", "4.3.4");
    CK_PREFIX(su_rawq(a, "CLIENT", "SETINFO", "lib-name", "a b", NULL), "-ERR");
    CK_PREFIX(su_rawq(a, "CLIENT", "SETINFO", "color", "red", NULL), "-ERR Unrecognized option 'color'");
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "NO-EVICT", "on");
    /* HELLO ... SETNAME names the connection too. */
    CK_PREFIX(su_rawq(b, "HELLO", "2", "SETNAME", "svc-b", NULL), "*14\r\n");
    EXPECT_RAW("$5\r\nsvc-b\r\n", b, "CLIENT", "GETNAME");
    EXPECT_RAW("+PONG\r\n", b, "PING");

    text = client_list_of(a, 2);
    la = line_of(text, ida);
    lb = line_of(text, idb);
    ck_assert_msg(la && lb, "ids %lld and %lld in %s", ida, idb, h_repr(text));
    snprintf(laddr, sizeof(laddr), "127.0.0.1:%d", E.d.port);
    ck_assert_str_eq(line_get(la, "addr"), sock_addr(a, 1));
    ck_assert_str_eq(line_get(lb, "addr"), sock_addr(b, 1));
    ck_assert_str_eq(line_get(la, "laddr"), laddr);
    ck_assert_int_ge(atoi(line_get(la, "fd")), 0);
    ck_assert_str_ne(line_get(la, "fd"), line_get(lb, "fd"));
    ck_assert_str_eq(line_get(la, "name"), "svc-a");
    ck_assert_str_eq(line_get(lb, "name"), "svc-b");
    ck_assert_int_ge(atoi(line_get(la, "age")), 0);
    ck_assert_int_ge(atoi(line_get(la, "idle")), 0);
    ck_assert_str_eq(line_get(la, "flags"), "e");
    ck_assert_str_eq(line_get(lb, "flags"), "N");
    ck_assert_str_eq(line_get(la, "db"), "0");
    ck_assert_str_eq(line_get(la, "multi"), "-1");
    ck_assert_str_eq(line_get(la, "cmd"), "client");
    ck_assert_str_eq(line_get(lb, "cmd"), "ping");
    ck_assert_str_eq(line_get(la, "user"), "default");
    ck_assert_str_eq(line_get(la, "resp"), "2");
    ck_assert_str_eq(line_get(la, "lib-name"), "redis-py");
    ck_assert_str_eq(line_get(la, "lib-ver"), "4.3.4");
    ck_assert_str_eq(line_get(lb, "lib-name"), "");
    ck_assert_str_eq(line_get(la, "events"), "r");

    /* CLIENT INFO: the caller's own line. */
    info = bulk(b, "CLIENT", "INFO", NULL);
    ck_assert_int_eq(count_lines(info), 1);
    ck_assert_str_eq(line_get(info, "id"), line_get(lb, "id"));
    ck_assert_str_eq(line_get(info, "name"), "svc-b");
    free(info);
    free(text);

    /* Filters. */
    snprintf(idbuf, sizeof(idbuf), "%lld", idb);
    text = bulk(a, "CLIENT", "LIST", "ID", idbuf, "999999", NULL);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(line_of(text, idb));
    free(text);
    text = bulk(a, "CLIENT", "LIST", "TYPE", "normal", NULL);
    ck_assert_int_eq(count_lines(text), 2);
    free(text);
    /* Inside MULTI: the x flag and the commands queued; RESP3 after HELLO 3. */
    EXPECT_RAW("+OK\r\n", b, "MULTI");
    EXPECT_RAW("+QUEUED\r\n", b, "PING");
    text = bulk(a, "CLIENT", "LIST", "ID", idbuf, NULL);
    ck_assert_str_eq(line_get(text, "flags"), "x");
    ck_assert_str_eq(line_get(text, "multi"), "1");
    free(text);
    EXPECT_RAW("+OK\r\n", b, "DISCARD");
    CK_PREFIX(su_rawq(b, "HELLO", "3", NULL), "%7\r\n");
    text = bulk(a, "CLIENT", "LIST", "ID", idbuf, NULL);
    ck_assert_str_eq(line_get(text, "multi"), "-1");
    ck_assert_str_eq(line_get(text, "resp"), "3");
    free(text);
    EXPECT_RAW("$0\r\n\r\n", a, "CLIENT", "LIST", "TYPE", "pubsub");
    EXPECT_RAW("-ERR Unknown client type 'bogus'\r\n", a, "CLIENT", "LIST", "TYPE", "bogus");
    EXPECT_RAW("-ERR Invalid client ID\r\n", a, "CLIENT", "LIST", "ID", "x");
    EXPECT_RAW("-ERR syntax error\r\n", a, "CLIENT", "LIST", "bogus");

    /* An empty name unsets it. */
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "SETNAME", "");
    EXPECT_RAW("$-1\r\n", a, "CLIENT", "GETNAME");

    /* What the daemon cannot do is refused, what is already true is +OK. */
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "REPLY", "ON");
    CK_PREFIX(su_rawq(a, "CLIENT", "REPLY", "OFF", NULL), "-ERR CLIENT REPLY is not supported");
    CK_PREFIX(su_rawq(a, "CLIENT", "TRACKING", "on", NULL), "-ERR CLIENT TRACKING is not supported");
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "TRACKING", "off");
    EXPECT_RAW(":-1\r\n", a, "CLIENT", "GETREDIR");
    CK_PREFIX(su_rawq(a, "CLIENT", "PAUSE", "100", NULL), "-ERR CLIENT PAUSE is not supported");
    EXPECT_RAW("-ERR unknown subcommand 'bogus'. Try CLIENT HELP.\r\n", a, "CLIENT", "bogus");
    EXPECT_RAW("-ERR wrong number of arguments for 'client|setname' command\r\n", a, "CLIENT", "SETNAME");
}
END_TEST

/* CLIENT KILL closes this daemon's own clients: by ID, ADDR, LADDR and the
 * old addr form; SKIPME; the caller killed by itself gets its reply first
 * and nothing after it. */
START_TEST(t_client_kill)
{
    env_up(NULL, "");
    int a = h_connect(E.d.port), b = h_connect(E.d.port), c = h_connect(E.d.port), d, e;
    char idbuf[32], laddr[64];

    free(client_list_of(a, 3));
    snprintf(idbuf, sizeof(idbuf), "%lld", su_qint(b, "CLIENT", "ID", NULL));
    EXPECT_RAW(":1\r\n", a, "CLIENT", "KILL", "ID", idbuf);
    ck_assert_msg(h_is_closed(b, 2000), "b is still connected");
    EXPECT_RAW(":0\r\n", a, "CLIENT", "KILL", "ID", idbuf);
    EXPECT_RAW("-ERR client-id should be greater than 0\r\n", a, "CLIENT", "KILL", "ID", "0");
    EXPECT_RAW("+PONG\r\n", c, "PING");                      /* the others are untouched */

    /* The old form: addr, +OK or an error. */
    EXPECT_RAW("+OK\r\n", a, "CLIENT", "KILL", sock_addr(c, 1));
    ck_assert_msg(h_is_closed(c, 2000), "c is still connected");
    EXPECT_RAW("-ERR No such client\r\n", a, "CLIENT", "KILL", "10.9.9.9:1");

    /* ADDR of the caller itself: skipped by default. */
    EXPECT_RAW(":0\r\n", a, "CLIENT", "KILL", "ADDR", sock_addr(a, 1));
    /* LADDR: every client of the listener but the caller. */
    d = h_connect(E.d.port);
    e = h_connect(E.d.port);
    free(client_list_of(a, 3));
    snprintf(laddr, sizeof(laddr), "127.0.0.1:%d", E.d.port);
    EXPECT_RAW(":2\r\n", a, "CLIENT", "KILL", "LADDR", laddr, "SKIPME", "yes");
    ck_assert(h_is_closed(d, 2000));
    ck_assert(h_is_closed(e, 2000));
    EXPECT_RAW(":0\r\n", a, "CLIENT", "KILL", "TYPE", "master");
    EXPECT_RAW("-ERR No such user 'nobody'\r\n", a, "CLIENT", "KILL", "USER", "nobody");
    EXPECT_RAW("-ERR syntax error\r\n", a, "CLIENT", "KILL", "ID", "1", "SKIPME");

    /* The caller killing itself: its reply, then the connection closes and
     * what it pipelined behind is not run. */
    snprintf(idbuf, sizeof(idbuf), "%lld", su_qint(a, "CLIENT", "ID", NULL));
    ck_assert_int_eq(h_sendf(a, "CLIENT KILL ID %s SKIPME no\r\nPING\r\n", idbuf), 0);
    CK_REPLY(h_read_reply(a, H_DEFAULT), ":1\r\n");
    ck_assert_msg(h_is_closed(a, 2000), "the caller is still connected");
}
END_TEST

/* With requirepass, CLIENT KILL (like every command) needs AUTH first. */
START_TEST(t_client_kill_auth)
{
    env_up(NULL, "requirepass = s3cret\n");
    int a = h_connect(E.d.port), b = h_connect(E.d.port);
    char idbuf[32];

    EXPECT_RAW("+OK\r\n", b, "AUTH", "s3cret");
    snprintf(idbuf, sizeof(idbuf), "%lld", su_qint(b, "CLIENT", "ID", NULL));
    EXPECT_RAW("-NOAUTH Authentication required.\r\n", a, "CLIENT", "KILL", "ID", idbuf);
    EXPECT_RAW("-NOAUTH Authentication required.\r\n", a, "CLIENT", "LIST");
    EXPECT_RAW("+PONG\r\n", b, "PING");
    EXPECT_RAW("+OK\r\n", a, "AUTH", "s3cret");
    EXPECT_RAW(":1\r\n", a, "CLIENT", "KILL", "ID", idbuf);
    ck_assert(h_is_closed(b, 2000));
}
END_TEST

/* ----------------------------------------------------------- COMMAND -- */

/* COMMAND is generated from the command table: COUNT, INFO with key
 * positions, GETKEYS, DOCS for every command, LIST. */
START_TEST(t_command)
{
    env_up(NULL, "");
    int fd = h_connect(E.d.port);
    struct h_reply *all = su_q(fd, "COMMAND", NULL), *r, *c, *list, *docs;
    long long count = su_qint(fd, "COMMAND", "COUNT", NULL);
    size_t top = 0;

    ck_assert_int_ge(count, 20);
    ck_assert_int_eq((long long)all->elements, count);
    for (size_t i = 0; i < all->elements; i++)
        ck_assert_int_eq(el(all, i)->elements, 10);

    r = su_q(fd, "COMMAND", "INFO", "hgetall", "MGET", "hset", "ping", "auth", "nosuch", NULL);
    ck_assert_int_eq(r->elements, 6);
    c = el(r, 0);
    ck_assert_str_eq(el(c, 0)->str, "hgetall");
    ck_assert_int_eq(el(c, 1)->integer, 2);
    ck_assert_str_eq(el(el(c, 2), 0)->str, "readonly");
    ck_assert_int_eq(el(c, 3)->integer, 1);
    ck_assert_int_eq(el(c, 4)->integer, 1);
    ck_assert_int_eq(el(c, 5)->integer, 1);
    ck_assert_int_eq(el(c, 8)->elements, 1);                         /* one key spec */
    ck_assert_int_eq(map_get(map_get(map_get(el(el(c, 8), 0), "begin_search"), "spec"), "index")->integer, 1);
    c = el(r, 1);
    ck_assert_str_eq(el(c, 0)->str, "mget");
    ck_assert_int_eq(el(c, 1)->integer, -2);
    ck_assert_int_eq(el(c, 3)->integer, 1);
    ck_assert_int_eq(el(c, 4)->integer, -1);
    ck_assert_int_eq(el(c, 5)->integer, 1);
    c = el(r, 2);
    ck_assert_int_eq(el(c, 1)->integer, -4);
    ck_assert_str_eq(el(el(c, 2), 0)->str, "write");
    c = el(r, 3);
    ck_assert_int_eq(el(c, 3)->integer, 0);
    ck_assert_int_eq(el(c, 8)->elements, 0);
    c = el(r, 4);
    ck_assert_str_eq(el(el(c, 2), el(c, 2)->elements - 1)->str, "no_auth");   /* from the table's CMD_NOAUTH */
    ck_assert_int_eq(el(r, 5)->type, H_REPLY_NIL);
    h_reply_free(r);

    EXPECT_RAW("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", fd, "COMMAND", "GETKEYS", "MGET", "a", "b", "c");
    EXPECT_RAW("*1\r\n$9\r\nproduct:1\r\n", fd, "COMMAND", "GETKEYS", "hset", "product:1", "f", "v");
    EXPECT_RAW("*1\r\n$9\r\nproduct:*\r\n", fd, "COMMAND", "GETKEYS", "INVALIDATE", "product:*");
    EXPECT_RAW("*1\r\n*2\r\n$1\r\nk\r\n*2\r\n+RO\r\n+access\r\n", fd, "COMMAND", "GETKEYSANDFLAGS", "GET", "k");
    EXPECT_RAW("-ERR The command has no key arguments\r\n", fd, "COMMAND", "GETKEYS", "PING", "x");
    EXPECT_RAW("-ERR Invalid command specified\r\n", fd, "COMMAND", "GETKEYS", "NOSUCH", "x");
    EXPECT_RAW("-ERR Invalid number of arguments specified for command\r\n", fd, "COMMAND", "GETKEYS", "HGET", "k");

    /* LIST: every command and subcommand; the commands are COUNT's. */
    list = su_q(fd, "COMMAND", "LIST", NULL);
    for (size_t i = 0; i < list->elements; i++)
        top += strchr(el(list, i)->str, '|') == NULL;
    ck_assert_int_eq((long long)top, count);
    ck_assert_int_gt((long long)list->elements, count);
    h_reply_free(list);
    list = su_q(fd, "COMMAND", "LIST", "FILTERBY", "PATTERN", "CLUSTER|SH*", NULL);
    ck_assert_int_eq(list->elements, 1);
    ck_assert_str_eq(el(list, 0)->str, "cluster|shards");
    h_reply_free(list);
    list = su_q(fd, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "read", NULL);
    ck_assert_int_ge(list->elements, 7);           /* the reads, TTL, PTTL */
    for (size_t i = 0; i < list->elements; i++)
        ck_assert_msg(strcmp(el(list, i)->str, "del") != 0, "del is not @read");
    h_reply_free(list);

    /* DOCS: a summary for every command of the table. */
    docs = su_q(fd, "COMMAND", "DOCS", NULL);
    ck_assert_int_eq((long long)docs->elements, 2 * count);
    for (size_t i = 0; i < docs->elements; i += 2) {
        struct h_reply *summary = map_get(el(docs, i + 1), "summary");
        ck_assert_msg(summary && summary->len > 0, "COMMAND DOCS: no summary for %s (a row in introspect_docs)",
                      el(docs, i)->str);
    }
    h_reply_free(docs);
    EXPECT_RAW("*0\r\n", fd, "COMMAND", "DOCS", "nosuch");
    r = su_q(fd, "COMMAND", "HELP", NULL);
    ck_assert_int_gt(r->elements, 5);
    h_reply_free(r);
    EXPECT_RAW("-ERR unknown subcommand 'bogus'. Try COMMAND HELP.\r\n", fd, "COMMAND", "bogus");
    h_reply_free(all);
}
END_TEST

/* -------------------------------------------------------------- INFO -- */

static int section_count(const char *text)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, "# ")) != NULL; p += 2)
        n += p == text || p[-1] == '\n';
    return n;
}

/* INFO answers Redis's sections with true values; sections by name; STATS
 * keeps its lines. */
START_TEST(t_info)
{
    static const char *const titles[] = { "# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Persistence\r\n",
                                          "# Stats\r\n", "# Replication\r\n", "# CPU\r\n", "# Cluster\r\n",
                                          "# Keyspace\r\n", "# Cachasided\r\n" };
    env_up(NULL, "");
    int fd = h_connect(E.d.port), other = h_connect(E.d.port);
    char *text, *myid = bulk(fd, "CLUSTER", "MYID", NULL), port[16], *stats;
    const char *at = NULL;
    long long cmds;

    free(client_list_of(fd, 2));
    text = bulk(fd, "INFO", NULL);
    for (size_t i = 0; i < N_OF(titles); i++) {
        const char *p = strstr(text, titles[i]);
        ck_assert_msg(p && p > at, "no %s after the section before in %s", titles[i], h_repr(text));
        ck_assert_msg(p == text || strncmp(p - 4, "\r\n\r\n", 4) == 0, "no blank line before %s", titles[i]);
        at = p;
    }
    snprintf(port, sizeof(port), "%d", E.d.port);
    ck_assert_str_eq(text_get(text, "redis_version"), "7.2.0");
    ck_assert_str_eq(text_get(text, "redis_mode"), "cluster");
    ck_assert_str_eq(text_get(text, "cluster_enabled"), "1");
    ck_assert_str_eq(text_get(text, "connected_clients"), "2");
    ck_assert_str_eq(text_get(text, "run_id"), myid);
    ck_assert_str_eq(text_get(text, "tcp_port"), port);
    ck_assert_int_eq(atoi(text_get(text, "process_id")), E.d.pid);
    ck_assert_str_eq(text_get(text, "loading"), "0");
    ck_assert_str_eq(text_get(text, "role"), "master");
    ck_assert_str_eq(text_get(text, "keyspace_hits"), "0");
    ck_assert_int_gt(atoll(text_get(text, "used_memory_rss")), 0);
    stats = bulk(fd, "STATS", NULL);
    ck_assert_str_eq(text_get(text, "cachasided_version"), text_get(stats, "build_version"));
    ck_assert_msg(strncmp(stats, "build_version:", 14) == 0 && !strstr(stats, "# "), "STATS: %s", h_repr(stats));
    free(stats);
    cmds = atoll(text_get(text, "total_commands_processed"));
    free(text);

    /* A miss then a hit. */
    free(su_rawq(other, "HGETALL", "product:p-001", NULL));
    free(su_rawq(other, "HGETALL", "product:p-001", NULL));
    text = bulk(fd, "INFO", "stats", NULL);
    ck_assert_int_eq(section_count(text), 1);
    ck_assert_str_eq(text_get(text, "keyspace_hits"), "1");
    ck_assert_str_eq(text_get(text, "keyspace_misses"), "1");
    ck_assert_int_ge(atoll(text_get(text, "total_commands_processed")), cmds + 3);
    free(text);

    /* Sections by name, in Redis's order whatever the order asked; names
     * without a section give nothing. */
    text = bulk(fd, "INFO", "CLIENTS", "server", NULL);
    ck_assert_int_eq(section_count(text), 2);
    ck_assert_ptr_nonnull(strstr(text, "# Server\r\n"));
    ck_assert_ptr_nonnull(strstr(text, "# Clients\r\n"));
    ck_assert(strstr(text, "# Server") < strstr(text, "# Clients"));
    free(text);
    text = bulk(fd, "INFO", "cachasided", NULL);
    ck_assert_str_eq(text_get(text, "hits"), "1");
    free(text);
    EXPECT_RAW("$0\r\n\r\n", fd, "INFO", "nosuch");
    text = bulk(fd, "INFO", "everything", NULL);
    ck_assert_int_eq(section_count(text), (int)N_OF(titles));
    free(text);
    free(myid);
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "cluster_one_node", t_cluster_one_node, 30, 0 },
        { "like_redis", t_like_redis, 60, 0 },
        { "resp3", t_resp3, 60, 0 },
        { "cluster_announce", t_cluster_announce, 60, 0 },
        { "cluster_announce_v6", t_cluster_announce_v6, 30, 0 },
        { "client_list", t_client_list, 30, 0 },
        { "client_kill", t_client_kill, 30, 0 },
        { "client_kill_auth", t_client_kill_auth, 30, 0 },
        { "command", t_command, 30, 0 },
        { "info", t_info, 30, 0 },
    };

    return SU_RUN("compat", cases, CK_NORMAL);
}
