/* SPDX-License-Identifier: BSD-3-Clause */
/* introspect.c - COMMAND and INFO: the daemon described in Redis's formats.
 *
 * COMMAND is read by client libraries, not people: redis-py's cluster
 * client reads the key positions of every command from it before it sends
 * one, go-redis its readonly flag, redis-cli its documentation for hints.
 * So it is generated from the dispatch table itself (command.c): the
 * commands there, their arity, whether they need AUTH, and where their
 * keys are, which the table's key spec already says (cmd_def.keys: the
 * first argument, or all of them). What only COMMAND needs, Redis's
 * flags, ACL categories, group and summary, is in introspect_docs below,
 * one row per command, and the subcommands come from their modules' own
 * dispatch tables (clientcmd.c, clusteremu.c, the COMMAND table here).
 * A command of the dispatch table without a row here is still listed,
 * with what the table says; tests/test_compat.c fails on it.
 *
 * INFO answers Redis's sectioned text, with the values the daemon knows
 * (its clients, its requests, its memory and CPU, its hits and misses)
 * and Redis's own for what does not exist here (no persistence, no
 * replicas, no keyspace of its own). It presents the one-node cluster of
 * clusteremu.c (redis_mode:cluster, cluster_enabled:1), and its own
 * section, "cachasided", holds STATS's lines. */
#include "core.h"
#include "introspect.h"
#include "clientcmd.h"
#include "clusteremu.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "glob.h"
#include "req.h"
#include "resp.h"
#include "stats.h"

#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

/* What COMMAND says of a command beyond the dispatch table. */
struct introspect_doc {
    const char *name;
    const char *flags;          /* Redis's flags; no_auth comes from CMD_NOAUTH */
    const char *acl;            /* ACL categories */
    const char *group;          /* Redis's command group */
    const char *since;          /* Redis's version; cachasided's for its own commands */
    const char *summary;
    const char *kflags;         /* flags of its key spec, when it has keys */
    const struct cmd_sub *subs; /* its subcommands, NULL-name ended */
    bool keys;                  /* names keys argv[1..] the table orders none of, being
                                 * refused before it touches them (WATCH) */
};

extern const struct cmd_sub introspect_subs[];

#define ID_CONN "@fast @connection"
static const struct introspect_doc introspect_docs[] = {
    { "ping", "fast", ID_CONN, "connection", "1.0.0", "Return PONG, or the message given.", NULL, NULL, 0 },
    { "echo", "fast", ID_CONN, "connection", "1.0.0", "Return the message given.", NULL, NULL, 0 },
    { "quit", "allow_busy noscript loading stale fast", ID_CONN, "connection", "1.0.0",
      "Close the connection once what came before is answered.", NULL, NULL, 0 },
    { "auth", "noscript loading stale fast allow_busy", ID_CONN, "connection", "1.0.0",
      "Authenticate with requirepass (any user name).", NULL, NULL, 0 },
    { "hello", "noscript loading stale fast allow_busy", ID_CONN, "connection", "6.0.0",
      "Handshake: RESP2 only; server facts, optional AUTH and SETNAME.", NULL, NULL, 0 },
    { "select", "loading stale fast", "@keyspace @fast", "connection", "1.0.0", "Select database 0, the only one.",
      NULL, NULL, 0 },
    { "client", "", "@slow", "connection", "2.4.0", "This daemon's client connections.", NULL, clientcmd_subs, 0 },
    { "config", "", "@slow", "server", "2.0.0", "CONFIG GET of the few parameters clients ask for.", NULL, NULL, 0 },
    { "command", "", "@slow @connection", "server", "2.8.13", "Describe the commands the daemon answers.", NULL,
      introspect_subs, 0 },
    { "stats", "loading stale", "@slow", "server", "0.1.0", "The daemon's counters; STATS RESET zeroes them.", NULL,
      NULL, 0 },
    { "info", "loading stale", "@slow @dangerous", "server", "1.0.0", "Facts and figures of the daemon, by section.",
      NULL, NULL, 0 },
    { "hgetall", "readonly", "@read @hash @slow", "hash", "2.0.0",
      "Every field of a record, fetched from the upstream on a miss.", "RO access", NULL, 0 },
    { "hget", "readonly", "@read @hash @slow", "hash", "2.0.0", "One field of a record.", "RO access", NULL, 0 },
    { "hmget", "readonly", "@read @hash @slow", "hash", "2.0.0", "Fields of a record.", "RO access", NULL, 0 },
    { "get", "readonly", "@read @string @slow", "string", "1.0.0", "The body of a raw record.", "RO access", NULL, 0 },
    { "mget", "readonly", "@read @string @slow", "string", "1.0.0", "The bodies of raw records.", "RO access", NULL,
      0 },
    { "ttl", "readonly fast", "@keyspace @read @fast", "generic", "1.0.0",
      "Seconds the cache entry has left (-2: not cached).", "RO access", NULL, 0 },
    { "pttl", "readonly fast", "@keyspace @read @fast", "generic", "2.6.0",
      "Milliseconds the cache entry has left (-2: not cached).", "RO access", NULL, 0 },
    { "del", "write", "@keyspace @write @slow", "generic", "1.0.0",
      "Remove cache entries and revoke their fills under way.", "RM delete", NULL, 0 },
    { "unlink", "write fast", "@keyspace @write @fast", "generic", "4.0.0", "As DEL.", "RM delete", NULL, 0 },
    { "invalidate", "write", "@keyspace @write @slow @dangerous", "generic", "0.1.0",
      "Remove the cache entries of ns:glob (its argument is a pattern, shown as its key).", "RM delete", NULL, 0 },
    { "hset", "write denyoom", "@write @hash @slow", "hash", "2.0.0",
      "Update fields of a cached record (0: not cached, nothing written).", "RW update", NULL, 0 },
    { "cluster", "", "@slow", "cluster", "3.0.0", "The one-node cluster this daemon presents.", NULL,
      clusteremu_subs, 0 },
    { "readonly", "fast loading stale", ID_CONN, "cluster", "3.0.0", "Reads may be served here (they always are).",
      NULL, NULL, 0 },
    { "readwrite", "fast loading stale", ID_CONN, "cluster", "3.0.0", "Ends READONLY.", NULL, NULL, 0 },
    { "asking", "fast", ID_CONN, "cluster", "3.0.0", "Accepted: no slot is ever being imported.", NULL, NULL, 0 },
    { "multi", "noscript loading stale fast allow_busy", "@fast @transaction", "transactions", "1.2.0",
      "Start a transaction: the commands are queued until EXEC.", NULL, NULL, 0 },
    { "exec", "noscript loading stale skip_slowlog", "@slow @transaction", "transactions", "1.2.0",
      "Run the queued commands, in order; one array of their replies.", NULL, NULL, 0 },
    { "discard", "noscript loading stale fast allow_busy", "@fast @transaction", "transactions", "2.0.0",
      "Drop the queued commands.", NULL, NULL, 0 },
    { "watch", "noscript loading stale fast allow_busy", "@fast @transaction", "transactions", "2.2.0",
      "Refused: optimistic locking cannot be promised over a cache.", "RO", NULL, true },
    { "unwatch", "noscript loading stale fast allow_busy", "@fast @transaction", "transactions", "2.2.0",
      "Forget watched keys (there never are any).", NULL, NULL, 0 },
};

static const struct introspect_doc *introspect_doc(const char *name)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(introspect_docs); i++)
        if (strcmp(introspect_docs[i].name, name) == 0)
            return &introspect_docs[i];
    return NULL;
}

/* A command named by a client, or NULL. */
static const struct cmd_def *introspect_find(const struct cs_str *name)
{
    return command_lookup(name->p, name->len);
}

/* Redis's first key, last key and step: the table's, or the doc's. */
static void introspect_keys(const struct cmd_def *d, int *first, int *last, int *step)
{
    const struct introspect_doc *doc = introspect_doc(d->name);

    *first = d->first, *last = d->last, *step = d->step;
    if (!d->first && doc && doc->keys)
        *first = *step = 1, *last = -1;
}

static int introspect_nwords(const char *s)
{
    int n = 0;

    for (const char *p = s; p && *p; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");
        n += len > 0;
        p += len;
    }
    return n;
}

/* The space-separated words of a and b as one set of status replies, as
 * Redis gives flags and categories ("+readonly", "+@read"). */
static void introspect_words(struct evbuffer *out, bool r3, const char *a, const char *b)
{
    const char *lists[2] = { a, b };

    resp_set(out, introspect_nwords(a) + introspect_nwords(b), r3);
    for (int l = 0; l < 2; l++) {
        for (const char *p = lists[l]; p && *p; p += strspn(p, " ")) {
            size_t len = strcspn(p, " ");
            char w[64];
            if (len) {
                snprintf(w, sizeof(w), "%.*s", (int)len, p);
                resp_simple(out, w);
            }
            p += len;
        }
    }
}

static void introspect_pair(struct evbuffer *out, const char *k, const char *v)
{
    resp_bulk(out, k, strlen(k));
    resp_bulk(out, v, strlen(v));
}

static void introspect_pair_int(struct evbuffer *out, const char *k, long long v)
{
    resp_bulk(out, k, strlen(k));
    resp_int(out, v);
}

/* The key spec of a command with keys: {flags, begin_search: {type index,
 * spec: {index}}, find_keys: {type range, spec: {lastkey, keystep, limit}}}. */
static void introspect_key_spec(struct evbuffer *out, bool r3, const struct cmd_def *d,
                                const struct introspect_doc *doc)
{
    int first, last, step;

    introspect_keys(d, &first, &last, &step);
    resp_set(out, first ? 1 : 0, r3);
    if (!first)
        return;
    resp_map(out, 3, r3);
    resp_bulk(out, "flags", 5);
    introspect_words(out, r3, doc ? doc->kflags : NULL, NULL);
    resp_bulk(out, "begin_search", 12);
    resp_map(out, 2, r3);
    introspect_pair(out, "type", "index");
    resp_bulk(out, "spec", 4);
    resp_map(out, 1, r3);
    introspect_pair_int(out, "index", first);
    resp_bulk(out, "find_keys", 9);
    resp_map(out, 2, r3);
    introspect_pair(out, "type", "range");
    resp_bulk(out, "spec", 4);
    resp_map(out, 3, r3);
    introspect_pair_int(out, "lastkey", last < 0 ? -1 : 0);
    introspect_pair_int(out, "keystep", step);
    introspect_pair_int(out, "limit", 0);
}

static int introspect_nsubs(const struct cmd_sub *subs)
{
    int n = 0;

    for (; subs && subs->name; subs++)
        n++;
    return n;
}

/* COMMAND INFO of a subcommand: "client|list", keyless. */
static void introspect_sub_info(struct evbuffer *out, bool r3, const char *parent, const struct cmd_sub *s,
                                const char *acl)
{
    char name[64];

    snprintf(name, sizeof(name), "%s|%s", parent, s->name);
    resp_array(out, 10);
    resp_bulk(out, name, strlen(name));
    resp_int(out, s->arity);
    introspect_words(out, r3, s->flags, NULL);
    resp_int(out, 0);
    resp_int(out, 0);
    resp_int(out, 0);
    introspect_words(out, r3, acl, NULL);
    resp_set(out, 0, r3);               /* tips */
    resp_set(out, 0, r3);               /* key specs */
    resp_set(out, 0, r3);               /* subcommands */
}

/* One command as COMMAND INFO gives it: name, arity, flags, first key,
 * last key, step, ACL categories, tips, key specs, subcommands. */
static void introspect_cmd_info(struct evbuffer *out, bool r3, const struct cmd_def *d)
{
    const struct introspect_doc *doc = introspect_doc(d->name);
    int first, last, step, nsubs = introspect_nsubs(doc ? doc->subs : NULL);

    introspect_keys(d, &first, &last, &step);
    resp_array(out, 10);
    resp_bulk(out, d->name, strlen(d->name));
    resp_int(out, d->arity);
    introspect_words(out, r3, doc ? doc->flags : NULL,
                     (d->flags & CMD_NOAUTH) && !(doc && strstr(doc->flags, "no_auth")) ? "no_auth" : NULL);
    resp_int(out, first);
    resp_int(out, last);
    resp_int(out, step);
    introspect_words(out, r3, doc ? doc->acl : NULL, NULL);
    resp_set(out, 0, r3);
    introspect_key_spec(out, r3, d, doc);
    if (nsubs)
        resp_array(out, nsubs);
    else
        resp_set(out, 0, r3);           /* as Redis: an empty set, else an array */
    for (const struct cmd_sub *s = doc ? doc->subs : NULL; s && s->name; s++)
        introspect_sub_info(out, r3, d->name, s, doc->acl);
}

/* COMMAND DOCS of a command: its name, then {summary, since, group[,
 * subcommands: {name: {summary, since, group}}]}. */
static void introspect_cmd_docs(struct evbuffer *out, bool r3, const struct cmd_def *d)
{
    const struct introspect_doc *doc = introspect_doc(d->name);
    int nsubs = introspect_nsubs(doc ? doc->subs : NULL);

    resp_bulk(out, d->name, strlen(d->name));
    if (!doc) {
        resp_map(out, 1, r3);
        introspect_pair(out, "group", "server");
        return;
    }
    resp_map(out, nsubs ? 4 : 3, r3);
    introspect_pair(out, "summary", doc->summary);
    introspect_pair(out, "since", doc->since);
    introspect_pair(out, "group", doc->group);
    if (!nsubs)
        return;
    resp_bulk(out, "subcommands", 11);
    resp_map(out, nsubs, r3);
    for (const struct cmd_sub *s = doc->subs; s->name; s++) {
        char name[64];
        snprintf(name, sizeof(name), "%s|%s", d->name, s->name);
        resp_bulk(out, name, strlen(name));
        resp_map(out, 3, r3);
        introspect_pair(out, "summary", s->summary);
        introspect_pair(out, "since", s->since);
        introspect_pair(out, "group", doc->group);
    }
}

/* ---- COMMAND's subcommands ------------------------------------------ */

static void introspect_all(struct req *r)
{
    struct evbuffer *out = req_out(r);

    resp_array(out, command_count());
    for (int i = 0; i < command_count(); i++)
        introspect_cmd_info(out, r->resp3, command_at(i));
    req_done(r);
}

static void introspect_count(struct req *r)
{
    resp_int(req_out(r), command_count());
    req_done(r);
}

/* INFO [name ...]: the commands named (nil for an unknown one), or all. */
static void introspect_cmd_info_cmd(struct req *r)
{
    struct evbuffer *out = req_out(r);

    if (r->argc == 2) {
        introspect_all(r);
        return;
    }
    resp_array(out, r->argc - 2);
    for (int i = 2; i < r->argc; i++) {
        const struct cmd_def *d = introspect_find(&r->argv[i]);
        if (d)
            introspect_cmd_info(out, r->resp3, d);
        else
            resp_null(out, r->resp3);
    }
    req_done(r);
}

/* DOCS [name ...]: a map of the commands named that exist, or of all. */
static void introspect_docs_cmd(struct req *r)
{
    struct evbuffer *out = req_out(r);
    int n = 0;

    if (r->argc == 2) {
        resp_map(out, command_count(), r->resp3);
        for (int i = 0; i < command_count(); i++)
            introspect_cmd_docs(out, r->resp3, command_at(i));
        req_done(r);
        return;
    }
    for (int i = 2; i < r->argc; i++)
        n += introspect_find(&r->argv[i]) != NULL;
    resp_map(out, n, r->resp3);
    for (int i = 2; i < r->argc; i++) {
        const struct cmd_def *d = introspect_find(&r->argv[i]);
        if (d)
            introspect_cmd_docs(out, r->resp3, d);
    }
    req_done(r);
}

/* LIST [FILTERBY PATTERN glob | ACLCAT category | MODULE name]: the names
 * of the commands and of their subcommands ("client|list"). */
static bool introspect_listed(const char *name, const char *acl, int filter, const char *arg)
{
    char cat[80];
    size_t len = strlen(name);

    if (filter == 0)
        return true;
    if (filter == 1)
        return glob_match(arg, strlen(arg), name, len);
    if (filter == 2) {
        snprintf(cat, sizeof(cat), "@%s", arg);
        for (const char *p = acl; p && *p; p += strcspn(p, " "), p += strspn(p, " "))
            if (strcspn(p, " ") == strlen(cat) && strncasecmp(p, cat, strlen(cat)) == 0)
                return true;
    }
    return false;                       /* MODULE: the daemon has none */
}

static void introspect_list(struct req *r)
{
    struct evbuffer *out = req_out(r), *names;
    int filter = 0, n = 0;
    char arg[128] = "";

    if (r->argc == 5 && strcasecmp(r->argv[2].p, "filterby") == 0) {
        static const char *const kinds[] = { "pattern", "aclcat", "module" };
        for (int k = 0; k < 3; k++)
            if (strcasecmp(r->argv[3].p, kinds[k]) == 0)
                filter = k + 1;
        snprintf(arg, sizeof(arg), "%s", r->argv[4].p);
        for (char *p = arg; *p; p++)          /* names are lower case; Redis matches without case */
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    if (r->argc != 2 && !filter) {
        resp_error(out, "ERR syntax error");
        req_done(r);
        return;
    }
    names = evbuffer_new();
    for (int i = 0; i < command_count(); i++) {
        const struct cmd_def *d = command_at(i);
        const struct introspect_doc *doc = introspect_doc(d->name);
        const char *acl = doc ? doc->acl : NULL;
        if (introspect_listed(d->name, acl, filter, arg)) {
            resp_bulk(names, d->name, strlen(d->name));
            n++;
        }
        for (const struct cmd_sub *s = doc ? doc->subs : NULL; s && s->name; s++) {
            char name[64];
            snprintf(name, sizeof(name), "%s|%s", d->name, s->name);
            if (introspect_listed(name, acl, filter, arg)) {
                resp_bulk(names, name, strlen(name));
                n++;
            }
        }
    }
    resp_array(out, n);
    evbuffer_add_buffer(out, names);
    evbuffer_free(names);
    req_done(r);
}

/* GETKEYS / GETKEYSANDFLAGS command arg...: its keys, where the table says. */
static void introspect_getkeys(struct req *r)
{
    struct evbuffer *out = req_out(r);
    const struct cmd_def *d = introspect_find(&r->argv[2]);
    bool with_flags = strcasecmp(r->argv[1].p, "getkeysandflags") == 0;
    int argc = r->argc - 2, first, last, step, n;

    if (!d) {
        resp_error(out, "ERR Invalid command specified");
    } else if (introspect_keys(d, &first, &last, &step), first == 0) {
        resp_error(out, "ERR The command has no key arguments");
    } else if ((d->arity > 0 && argc != d->arity) || (d->arity < 0 && argc < -d->arity)) {
        resp_error(out, "ERR Invalid number of arguments specified for command");
    } else {
        const struct introspect_doc *doc = introspect_doc(d->name);
        if (last < 0)
            last = argc + last;
        n = (last - first) / step + 1;
        resp_array(out, n);
        for (int i = first; i <= last; i += step) {
            if (with_flags)
                resp_array(out, 2);
            resp_bulk(out, r->argv[2 + i].p, r->argv[2 + i].len);
            if (with_flags)
                introspect_words(out, r->resp3, doc ? doc->kflags : NULL, NULL);
        }
    }
    req_done(r);
}

#define IS_F "loading stale"
const struct cmd_sub introspect_subs[] = {
    { "count", 2, introspect_count, IS_F, "2.8.13", "Return the number of commands." },
    { "info", -2, introspect_cmd_info_cmd, IS_F, "2.8.13", "Describe the commands named, or every command." },
    { "docs", -2, introspect_docs_cmd, IS_F, "7.0.0", "Document the commands named, or every command." },
    { "list", -2, introspect_list, IS_F, "7.0.0",
      "Name every command: [FILTERBY PATTERN glob|ACLCAT category|MODULE name]." },
    { "getkeys", -4, introspect_getkeys, IS_F, "2.8.13", "Return the keys of a command line." },
    { "getkeysandflags", -4, introspect_getkeys, IS_F, "7.0.0", "Return the keys of a command line and their flags." },
    { "help", 2, NULL, IS_F, "5.0.0", "Show this help." },
    { NULL, 0, NULL, NULL, NULL, NULL },
};

void introspect_command(struct req *r)
{
    if (r->argc == 1)
        introspect_all(r);
    else
        command_sub(r, introspect_subs);
}

/* ---- INFO ----------------------------------------------------------- */

/* Bytes as Redis's *_human fields write them: 1023B, 1.50K, 2.00M. */
static void introspect_human(char *buf, size_t size, unsigned long long n)
{
    static const char units[] = "KMGTP";
    double v = (double)n;
    int u = -1;

    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (u < 0)
        snprintf(buf, size, "%lluB", n);
    else
        snprintf(buf, size, "%.2f%c", v, units[u]);
}

static void introspect_server(struct evbuffer *b, const struct req *r)
{
    struct utsname un;
    struct timeval tv;
    char host[256] = "";
    int port = 0;
    int64_t up = stats_uptime_s();

    if (uname(&un) != 0)
        memset(&un, 0, sizeof(un));
    gettimeofday(&tv, NULL);
    if (r->conf->listen[0] && config_parse_addr(r->conf->listen, host, sizeof(host), &port) != CS_OK)
        port = 0;
    evbuffer_add_printf(b,
                        "redis_version:%s\r\n"
                        "cachasided_version:%s\r\n"
                        "redis_git_sha1:00000000\r\n"
                        "redis_git_dirty:0\r\n"
                        "redis_mode:cluster\r\n"
                        "os:%s %s %s\r\n"
                        "arch_bits:%d\r\n"
                        "multiplexing_api:%s\r\n"
                        "process_id:%ld\r\n"
                        "run_id:%s\r\n"
                        "tcp_port:%d\r\n"
                        "server_time_usec:%lld\r\n"
                        "uptime_in_seconds:%lld\r\n"
                        "uptime_in_days:%lld\r\n"
                        "config_file:%s\r\n",
                        CMD_REDIS_VERSION, PACKAGE_VERSION, un.sysname, un.release, un.machine,
                        (int)(sizeof(void *) * 8), event_base_get_method(cs_base), (long)getpid(), clusteremu_myid(),
                        port, (long long)tv.tv_sec * 1000000 + tv.tv_usec, (long long)up,
                        (long long)up / 86400, r->conf->path);
}

static void introspect_clients(struct evbuffer *b, const struct req *r)
{
    evbuffer_add_printf(b,
                        "connected_clients:%d\r\n"
                        "cluster_connections:0\r\n"
                        "maxclients:%lld\r\n"
                        "blocked_clients:0\r\n"
                        "tracking_clients:0\r\n",
                        conn_count, r->conf->max_clients);
}

/* Resident memory from /proc/self/statm (0 when it cannot be read). */
static unsigned long long introspect_rss(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void introspect_memory(struct evbuffer *b, const struct req *r)
{
    struct mallinfo2 mi = mallinfo2();
    unsigned long long used = mi.uordblks + mi.hblkhd, rss = introspect_rss();
    char uh[32], rh[32];

    CS_UNUSED(r);
    introspect_human(uh, sizeof(uh), used);
    introspect_human(rh, sizeof(rh), rss);
    evbuffer_add_printf(b,
                        "used_memory:%llu\r\n"
                        "used_memory_human:%s\r\n"
                        "used_memory_rss:%llu\r\n"
                        "used_memory_rss_human:%s\r\n"
                        "maxmemory:0\r\n"
                        "maxmemory_human:0B\r\n"
                        "maxmemory_policy:noeviction\r\n",
                        used, uh, rss, rh);
}

static void introspect_persistence(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(r);
    evbuffer_add_printf(b, "loading:0\r\n"
                           "async_loading:0\r\n"
                           "rdb_changes_since_last_save:0\r\n"
                           "rdb_bgsave_in_progress:0\r\n"
                           "aof_enabled:0\r\n"
                           "aof_rewrite_in_progress:0\r\n");
}

static void introspect_stats(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(r);
    evbuffer_add_printf(b,
                        "total_connections_received:%llu\r\n"
                        "total_commands_processed:%llu\r\n"
                        "rejected_connections:%llu\r\n"
                        "keyspace_hits:%llu\r\n"
                        "keyspace_misses:%llu\r\n"
                        "pubsub_channels:0\r\n"
                        "pubsub_patterns:0\r\n"
                        "pubsubshard_channels:0\r\n",
                        (unsigned long long)req_conn->accepted(), (unsigned long long)req_conn->requests(),
                        (unsigned long long)stats_c.clients_rejected,
                        (unsigned long long)(stats_c.hits + stats_c.stale_hits + stats_c.negative_hits),
                        (unsigned long long)stats_c.misses);
}

static void introspect_replication(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(r);
    evbuffer_add_printf(b, "role:master\r\n"
                           "connected_slaves:0\r\n"
                           "master_failover_state:no-failover\r\n"
                           "master_repl_offset:0\r\n");
}

static void introspect_cpu(struct evbuffer *b, const struct req *r)
{
    struct rusage self, kids;

    CS_UNUSED(r);
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    evbuffer_add_printf(b,
                        "used_cpu_sys:%ld.%06ld\r\n"
                        "used_cpu_user:%ld.%06ld\r\n"
                        "used_cpu_sys_children:%ld.%06ld\r\n"
                        "used_cpu_user_children:%ld.%06ld\r\n",
                        (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec, (long)self.ru_utime.tv_sec,
                        (long)self.ru_utime.tv_usec, (long)kids.ru_stime.tv_sec, (long)kids.ru_stime.tv_usec,
                        (long)kids.ru_utime.tv_sec, (long)kids.ru_utime.tv_usec);
}

static void introspect_cluster(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(r);
    evbuffer_add_printf(b, "cluster_enabled:1\r\n");
}

/* The daemon has no keyspace of its own: the records are Redis's. */
static void introspect_keyspace(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(b);
    CS_UNUSED(r);
}

static void introspect_cachasided(struct evbuffer *b, const struct req *r)
{
    CS_UNUSED(r);
    command_report(b);
}

static const struct {
    const char *name, *title;
    void (*fn)(struct evbuffer *b, const struct req *r);
} introspect_sections[] = {
    { "server", "Server", introspect_server },
    { "clients", "Clients", introspect_clients },
    { "memory", "Memory", introspect_memory },
    { "persistence", "Persistence", introspect_persistence },
    { "stats", "Stats", introspect_stats },
    { "replication", "Replication", introspect_replication },
    { "cpu", "CPU", introspect_cpu },
    { "cluster", "Cluster", introspect_cluster },
    { "keyspace", "Keyspace", introspect_keyspace },
    { "cachasided", "Cachasided", introspect_cachasided },
};

/* INFO [section ...]: every section for none, default, all or everything
 * (the daemon has no section that "default" leaves out); else the ones
 * named, in this order; names it does not have give nothing, as in Redis. */
void introspect_info(struct req *r)
{
    struct evbuffer *body = evbuffer_new();
    bool want[CS_ARRAY_LEN(introspect_sections)] = { false };
    int shown = 0;

    for (size_t i = 0; i < CS_ARRAY_LEN(introspect_sections); i++) {
        want[i] = r->argc == 1;
        for (int a = 1; a < r->argc; a++)
            want[i] |= strcasecmp(r->argv[a].p, introspect_sections[i].name) == 0 ||
                       strcasecmp(r->argv[a].p, "default") == 0 || strcasecmp(r->argv[a].p, "all") == 0 ||
                       strcasecmp(r->argv[a].p, "everything") == 0;
    }
    for (size_t i = 0; i < CS_ARRAY_LEN(introspect_sections); i++) {
        if (!want[i])
            continue;
        evbuffer_add_printf(body, "%s# %s\r\n", shown++ ? "\r\n" : "", introspect_sections[i].title);
        introspect_sections[i].fn(body, r);
    }
    resp_text_move(req_out(r), body, r->resp3);
    evbuffer_free(body);
    req_done(r);
}
