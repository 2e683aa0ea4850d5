/* SPDX-License-Identifier: BSD-3-Clause */
/* command.c - the command table, dispatch, and the commands that need no
 * cache: PING, ECHO, AUTH, QUIT, HELLO, SELECT, CONFIG GET and STATS.
 * CLIENT is clientcmd.c's, COMMAND and INFO introspect.c's, CLUSTER and
 * the other commands of the one-node cluster clusteremu.c's. */
#include "core.h"
#include "command.h"
#include "cache.h"
#include "clientcmd.h"
#include "clusteremu.h"
#include "config.h"
#include "conn.h"
#include "introspect.h"
#include "log.h"
#include "multi.h"
#include "order.h"
#include "resp.h"
#include "stats.h"
#include "writes.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void cmd_reply_done(struct req *r)
{
    req_done(r);
}

static void cmd_ping(struct req *r)
{
    if (r->argc > 1)
        resp_bulk(req_out(r), r->argv[1].p, r->argv[1].len);
    else
        resp_simple(req_out(r), "PONG");
    cmd_reply_done(r);
}

static void cmd_echo(struct req *r)
{
    resp_bulk(req_out(r), r->argv[1].p, r->argv[1].len);
    cmd_reply_done(r);
}

static void cmd_quit(struct req *r)
{
    resp_simple(req_out(r), "OK");
    if (r->conn)
        req_conn->drain(r->conn);
    cmd_reply_done(r);
}

/* Compare without an early exit, so timing does not leak the password. */
static bool cmd_secret_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char diff = alen != blen;

    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return diff == 0;
}

static const char cmd_wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

/* AUTH and HELLO ... AUTH: any username, the password must be requirepass. */
static bool cmd_login(struct req *r, const struct cs_str *pw)
{
    if (!r->conf->requirepass[0] || !cmd_secret_eq(pw->p, pw->len, r->conf->requirepass)) {
        if (r->conn)
            clog_info(r->conn, "AUTH failed");
        return false;
    }
    if (r->conn)
        r->conn->authed = true;
    return true;
}

static void cmd_auth(struct req *r)
{
    const struct cs_str *pw = &r->argv[r->argc - 1];

    if (r->argc > 3) {
        resp_error(req_out(r), "ERR syntax error");
    } else if (!r->conf->requirepass[0]) {
        resp_error(req_out(r), "ERR AUTH <password> called without any password configured for the default user. "
                               "Are you sure your configuration is correct?");
    } else if (cmd_login(r, pw)) {
        resp_simple(req_out(r), "OK");
    } else {
        resp_error(req_out(r), cmd_wrongpass);
    }
    cmd_reply_done(r);
}

static void cmd_select(struct req *r)
{
    if (r->argv[1].len == 1 && r->argv[1].p[0] == '0')
        resp_simple(req_out(r), "OK");
    else
        resp_error(req_out(r), "ERR DB index is out of range");
    cmd_reply_done(r);
}

/* HELLO [2|3 [AUTH user pass] [SETNAME name]], as Redis 7 answers it:
 * the server's facts as a map (RESP3) or a flat array (RESP2), in the
 * protocol it switches the connection to; everything after it on the
 * connection is answered so too. Without a version it tells the facts in
 * the protocol in use. The version is the Redis level served and the mode
 * the one-node cluster's (clusteremu.c; INFO says the same). */
static void cmd_hello(struct req *r)
{
    struct evbuffer *out = req_out(r);
    bool resp3 = r->resp3;
    const struct cs_str *name = NULL;
    const char *err;
    int i = 2;

    if (r->argc >= 2) {
        const struct cs_str *v = &r->argv[1];
        size_t digits = strspn(v->p, "0123456789");
        if (v->len == 1 && (v->p[0] == '2' || v->p[0] == '3')) {
            resp3 = v->p[0] == '3';
        } else {
            resp_error(out, digits == v->len && v->len > 0 && v->len < 10 ? "NOPROTO unsupported protocol version"
                                                                          : "ERR Protocol version is not an "
                                                                            "integer or out of range");
            cmd_reply_done(r);
            return;
        }
    }
    for (; i < r->argc; i++) {
        if (strcasecmp(r->argv[i].p, "auth") == 0 && i + 2 < r->argc) {
            if (!cmd_login(r, &r->argv[i + 2])) {
                resp_error(out, cmd_wrongpass);
                cmd_reply_done(r);
                return;
            }
            i += 2;
        } else if (strcasecmp(r->argv[i].p, "setname") == 0 && i + 1 < r->argc) {
            name = &r->argv[++i];
        } else {
            resp_errorf(out, "ERR Syntax error in HELLO option '%.64s'", r->argv[i].p);
            cmd_reply_done(r);
            return;
        }
    }
    if (r->conn && !r->conn->authed) {
        resp_error(out, "NOAUTH HELLO must be called with the client already authenticated, "
                        "otherwise the HELLO <proto> AUTH <user> <pass> option can be used");
        cmd_reply_done(r);
        return;
    }
    if (name && r->conn && (err = clientcmd_setname(r->conn, name)) != NULL) {
        resp_error(out, err);
        cmd_reply_done(r);
        return;
    }
    /* Switched before the reply: HELLO 3 is answered in RESP3. */
    r->resp3 = resp3;
    if (r->conn)
        r->conn->resp3 = resp3;
    resp_map(out, 7, resp3);
    resp_bulk(out, "server", 6);
    resp_bulk(out, "cachasided", 10);
    resp_bulk(out, "version", 7);
    resp_bulk(out, CMD_REDIS_VERSION, strlen(CMD_REDIS_VERSION));
    resp_bulk(out, "proto", 5);
    resp_int(out, resp3 ? 3 : 2);
    resp_bulk(out, "id", 2);
    resp_int(out, r->conn ? (long long)r->conn->id : 0);
    resp_bulk(out, "mode", 4);
    resp_bulk(out, "cluster", 7);
    resp_bulk(out, "role", 4);
    resp_bulk(out, "master", 6);
    resp_bulk(out, "modules", 7);
    resp_array(out, 0);
    cmd_reply_done(r);
}

static void cmd_config(struct req *r)
{
    struct evbuffer *out = req_out(r);
    int n = 0;

    if (r->argv[1].len != 3 || strncasecmp(r->argv[1].p, "get", 3) != 0) {
        resp_error(out, "ERR only CONFIG GET is supported");
        cmd_reply_done(r);
        return;
    }
    /* What redis-benchmark asks for, with harmless values. */
    for (int i = 2; i < r->argc; i++)
        if (strcasecmp(r->argv[i].p, "save") == 0 || strcasecmp(r->argv[i].p, "appendonly") == 0)
            n++;
    resp_map(out, n, r->resp3);
    for (int i = 2; i < r->argc; i++) {
        if (strcasecmp(r->argv[i].p, "save") == 0) {
            resp_bulk(out, "save", 4);
            resp_bulk(out, "", 0);
        } else if (strcasecmp(r->argv[i].p, "appendonly") == 0) {
            resp_bulk(out, "appendonly", 10);
            resp_bulk(out, "no", 2);
        }
    }
    cmd_reply_done(r);
}

static void (*cmd_report_fn)(struct evbuffer *b);

void command_set_report(void (*fn)(struct evbuffer *b))
{
    cmd_report_fn = fn;
}

void command_report(struct evbuffer *b)
{
    if (cmd_report_fn)
        cmd_report_fn(b);
}

static void cmd_stats(struct req *r)
{
    struct evbuffer *out = req_out(r);

    if (r->argc == 2 && strcasecmp(r->argv[1].p, "reset") == 0) {
        stats_reset();
        resp_simple(out, "OK");
    } else if (r->argc > 1) {
        resp_error(out, "ERR unknown STATS subcommand (STATS or STATS RESET)");
    } else {
        struct evbuffer *body = evbuffer_new();
        command_report(body);
        evbuffer_add_printf(out, "$%zu\r\n", evbuffer_get_length(body));
        evbuffer_add_buffer(out, body);
        evbuffer_add(out, "\r\n", 2);
        evbuffer_free(body);
    }
    cmd_reply_done(r);
}

/* A cache command: its request side, filled from r as r starts, goes to
 * the cache floor, which answers through req's cache_io. */
static void cmd_cache(struct req *r)
{
    r->cmd->cache(req_cache(r));
}

#define CMD(name, arity, flags, proc) { name, arity, flags, proc, NULL, CACHE_NONE, 0, 0, 0 }
#define CMD_CACHE(name, arity, flags, fn, shape, first, last) \
    { name, arity, flags, cmd_cache, fn, shape, first, last, 1 }

static const struct cmd_def cmd_table[] = {
    CMD("ping", -1, 0, cmd_ping),
    CMD("echo", 2, 0, cmd_echo),
    CMD("quit", -1, CMD_NOAUTH | CMD_NOQUEUE, cmd_quit),
    CMD("auth", -2, CMD_NOAUTH, cmd_auth),
    CMD("hello", -1, CMD_NOAUTH, cmd_hello),
    CMD("select", 2, 0, cmd_select),
    CMD("client", -2, 0, clientcmd_client),
    CMD("config", -2, 0, cmd_config),
    CMD("command", -1, 0, introspect_command),
    CMD("stats", -1, 0, cmd_stats),
    CMD("info", -1, 0, introspect_info),
    CMD_CACHE("hgetall", 2, CMD_READ, cache_read, CACHE_HGETALL, 1, 1),
    CMD_CACHE("hget", 3, CMD_READ, cache_read, CACHE_HGET, 1, 1),
    CMD_CACHE("hmget", -3, CMD_READ, cache_read, CACHE_HMGET, 1, 1),
    CMD_CACHE("get", 2, CMD_READ, cache_read, CACHE_GET, 1, 1),
    CMD_CACHE("mget", -2, CMD_READ, cache_mget, CACHE_MGET, 1, -1),
    CMD_CACHE("ttl", 2, 0, cache_ttl, CACHE_NONE, 1, 1),
    CMD_CACHE("pttl", 2, 0, cache_pttl, CACHE_NONE, 1, 1),
    CMD_CACHE("del", -2, CMD_WRITE, writes_del, CACHE_NONE, 1, -1),
    CMD_CACHE("unlink", -2, CMD_WRITE, writes_del, CACHE_NONE, 1, -1),
    CMD_CACHE("invalidate", 2, CMD_WRITE | CMD_PATTERN, writes_invalidate, CACHE_NONE, 1, 1),
    CMD_CACHE("hset", -4, CMD_WRITE, writes_hset, CACHE_NONE, 1, 1),
    CMD("multi", 1, CMD_NOQUEUE, multi_cmd_multi),
    CMD("exec", 1, CMD_NOQUEUE | CMD_EXEC, multi_cmd_exec),
    CMD("discard", 1, CMD_NOQUEUE, multi_cmd_discard),
    CMD("watch", -2, CMD_NOQUEUE, multi_cmd_watch),
    CMD("unwatch", 1, 0, multi_cmd_unwatch),
    CMD("cluster", -2, 0, clusteremu_cluster),
    CMD("readonly", 1, 0, clusteremu_readonly),
    CMD("readwrite", 1, 0, clusteremu_readwrite),
    CMD("asking", 1, 0, clusteremu_asking),
};

/* ASCII only, as command names are: no locale on the hit path. */
#define CMD_NAME_MAX 16          /* no command name is longer */

static bool cmd_name_eq(const char *lower, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != lower[i])
            return false;
    }
    return true;
}

const struct cmd_def *command_lookup(const char *name, size_t len)
{
    /* By length: each length's names are a run of cmd_by_len, and a name is
     * compared only when its first letter matches too. */
    static unsigned char cmd_by_len[CS_ARRAY_LEN(cmd_table)], cmd_len_at[CMD_NAME_MAX + 2];
    char first;

    if (len == 0 || len > CMD_NAME_MAX)
        return NULL;
    if (!cmd_len_at[CMD_NAME_MAX + 1]) {
        int n = 0;
        for (size_t l = 0; l <= CMD_NAME_MAX; l++) {
            cmd_len_at[l] = (unsigned char)n;
            for (size_t i = 0; i < CS_ARRAY_LEN(cmd_table); i++)
                if (strlen(cmd_table[i].name) == l)
                    cmd_by_len[n++] = (unsigned char)i;
        }
        cmd_len_at[CMD_NAME_MAX + 1] = (unsigned char)n;
    }
    first = name[0] >= 'A' && name[0] <= 'Z' ? (char)(name[0] - 'A' + 'a') : name[0];
    for (int j = cmd_len_at[len]; j < cmd_len_at[len + 1]; j++) {
        const struct cmd_def *d = &cmd_table[cmd_by_len[j]];
        if (d->name[0] == first && cmd_name_eq(d->name, name, len))
            return d;
    }
    return NULL;
}

/* Refused before it ran: inside MULTI this dooms the transaction, and an
 * EXEC refused ends it (multi.c). */
static void cmd_refuse(struct req *r, const char *msg)
{
    if (r->conn && r->conn->multi && multi_refused(r, msg))
        return;
    resp_error(req_out(r), msg);
    req_done(r);
}

int command_count(void)
{
    return (int)CS_ARRAY_LEN(cmd_table);
}

const struct cmd_def *command_at(int i)
{
    return i >= 0 && i < command_count() ? &cmd_table[i] : NULL;
}

const char *command_upper(char *buf, size_t size, const char *s)
{
    size_t i = 0;

    for (; s[i] && i < size - 1; i++)
        buf[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
    buf[i] = '\0';
    return buf;
}

/* HELP: the subcommands and their summaries, as Redis lays it out. */
static void cmd_sub_help(struct req *r, const struct cmd_sub *subs)
{
    struct evbuffer *out = req_out(r);
    char line[256], up[CMD_NAME_MAX + 1];
    int n = 0;

    for (const struct cmd_sub *s = subs; s->name; s++)
        n++;
    resp_array(out, 2LL * n + 1);
    snprintf(line, sizeof(line), "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             command_upper(up, sizeof(up), r->cmd->name));
    resp_simple(out, line);
    for (const struct cmd_sub *s = subs; s->name; s++) {
        resp_simple(out, command_upper(line, sizeof(line), s->name));
        snprintf(line, sizeof(line), "    %s", s->summary);
        resp_simple(out, line);
    }
}

void command_sub(struct req *r, const struct cmd_sub *subs)
{
    const struct cs_str *name = &r->argv[1];
    char shown[64], up[CMD_NAME_MAX + 1];

    for (const struct cmd_sub *s = subs; s->name; s++) {
        if (strlen(s->name) != name->len || !cmd_name_eq(s->name, name->p, name->len))
            continue;
        if ((s->arity > 0 && r->argc != s->arity) || (s->arity < 0 && r->argc < -s->arity)) {
            resp_errorf(req_out(r), "ERR wrong number of arguments for '%s|%s' command", r->cmd->name, s->name);
            req_done(r);
        } else if (!s->proc) {
            cmd_sub_help(r, subs);
            req_done(r);
        } else {
            s->proc(r);
        }
        return;
    }
    snprintf(shown, sizeof(shown), "%.*s", (int)(name->len < 48 ? name->len : 48), name->p);
    for (char *p = shown; *p; p++)
        if ((unsigned char)*p < ' ' || *p == '\'')
            *p = '?';
    resp_errorf(req_out(r), "ERR unknown subcommand '%s'. Try %s HELP.", shown,
                command_upper(up, sizeof(up), r->cmd->name));
    req_done(r);
}

void command_dispatch(struct req *r)
{
    const struct cmd_def *def = command_lookup(r->argv[0].p, r->argv[0].len);
    char msg[128];

    if (!def) {
        char name[64];
        size_t n = r->argv[0].len < sizeof(name) - 1 ? r->argv[0].len : sizeof(name) - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = (unsigned char)r->argv[0].p[i] < ' ' || r->argv[0].p[i] == '\'' ? '?' : r->argv[0].p[i];
        name[n] = '\0';
        snprintf(msg, sizeof(msg), "ERR unknown command '%s'", name);
        cmd_refuse(r, msg);
        return;
    }
    r->cmd = def;
    if (r->conn)
        r->conn->last_cmd = (unsigned char)(def - cmd_table + 1);
    if (r->conn && !r->conn->authed && !(def->flags & CMD_NOAUTH)) {
        cmd_refuse(r, "NOAUTH Authentication required.");
        return;
    }
    if ((def->arity > 0 && r->argc != def->arity) || (def->arity < 0 && r->argc < -def->arity)) {
        snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command", def->name);
        cmd_refuse(r, msg);
        return;
    }
    if (r->conn && r->conn->multi && multi_queue(r))
        return;                 /* inside MULTI: queued, or refused */
    command_run(r);
}

void command_run(struct req *r)
{
    if (r->cmd->first && !order_admit(r))
        return;                 /* an earlier command on its keys runs: order.c starts it */
    r->cmd->proc(r);
}
