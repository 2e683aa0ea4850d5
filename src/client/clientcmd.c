/* SPDX-License-Identifier: BSD-3-Clause */
/* clientcmd.c - CLIENT: this daemon's own clients as Redis shows them.
 *
 * Client libraries and operators use CLIENT to name a connection, to find
 * it again and to get rid of it: redis-py parses CLIENT LIST into dicts,
 * an operator kills a runaway client by its id. So every reply is the
 * truth about the daemon's own connections (conn.c), in Redis 7.2's
 * format: one line per connected client, fields in Redis's order, with
 * the values the daemon knows (id, addresses, descriptor, name, age, idle
 * time, buffers, last command, library) and Redis's values for what does
 * not exist here (database 0, no subscriptions, no MULTI, user default,
 * RESP2). The Redis links the daemon itself opens are not its clients and
 * are not listed; Redis's own CLIENT LIST shows them.
 *
 * A subcommand the daemon cannot honour is refused with an error, never
 * answered +OK while doing nothing; one whose +OK is already true (CLIENT
 * REPLY ON, TRACKING OFF, UNPAUSE) gets it. */
#include "core.h"
#include "clientcmd.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "multi.h"
#include "req.h"
#include "resp.h"

#include <event2/buffer.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Addresses as Redis writes them: "ip:port", "[ipv6]:port", and for a
 * unix socket "<path>:0". */
#define CLIENTCMD_ADDR_MAX 160

static bool clientcmd_is(const struct cs_str *a, const char *word)
{
    return strlen(word) == a->len && strcasecmp(a->p, word) == 0;
}

static void clientcmd_ok(struct req *r)
{
    resp_simple(req_out(r), "OK");
    req_done(r);
}

static bool clientcmd_unix(const struct conn *c)
{
    return strcmp(c->peer, "unix") == 0;
}

static const char *clientcmd_addr(const struct req *r, const struct conn *c, char *buf)
{
    if (clientcmd_unix(c))
        snprintf(buf, CLIENTCMD_ADDR_MAX, "%.150s:0", r->conf->unix_socket);
    else
        snprintf(buf, CLIENTCMD_ADDR_MAX, "%s", c->peer);
    return buf;
}

/* The address c connected to (laddr), read from its socket. */
static const char *clientcmd_laddr(const struct req *r, const struct conn *c, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[64], port[8];

    if (clientcmd_unix(c))
        return clientcmd_addr(r, c, buf);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &len) != 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(buf, CLIENTCMD_ADDR_MAX, "?:0");
    else
        snprintf(buf, CLIENTCMD_ADDR_MAX, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
    return buf;
}

/* One CLIENT LIST line, without its newline. */
static void clientcmd_line(struct evbuffer *b, const struct req *r, const struct conn *c, int64_t now)
{
    char addr[CLIENTCMD_ADDR_MAX], laddr[CLIENTCMD_ADDR_MAX], flags[8], *f = flags, events[3], *e = events;
    const struct cmd_def *last = c->last_cmd ? command_at(c->last_cmd - 1) : NULL;
    size_t qbuf = c->ibuf ? c->ilen - c->ipos : 0, obuf = (c->out ? evbuffer_get_length(c->out) : 0) + c->stashed;
    size_t meta = 0;

    if (multi_queued(c->multi) >= 0)
        *f++ = 'x';
    if (c->closing)
        *f++ = 'c';
    if (clientcmd_unix(c))
        *f++ = 'U';
    if (c->cflags & CONN_F_READONLY)
        *f++ = 'r';
    if (c->cflags & CONN_F_NO_EVICT)
        *f++ = 'e';
    if (f == flags)
        *f++ = 'N';
    *f = '\0';
    if (c->reading)
        *e++ = 'r';
    if (c->wwait)
        *e++ = 'w';
    *e = '\0';
    if (c->meta) {
        meta = sizeof(*c->meta);
        meta += c->meta->name ? strlen(c->meta->name) + 1 : 0;
        meta += c->meta->lib_name ? strlen(c->meta->lib_name) + 1 : 0;
        meta += c->meta->lib_ver ? strlen(c->meta->lib_ver) + 1 : 0;
    }
    evbuffer_add_printf(b,
                        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=0 sub=0 psub=0 "
                        "ssub=0 multi=%d qbuf=%zu qbuf-free=%zu argv-mem=%zu multi-mem=0 rbs=%zu rbp=%zu obl=0 "
                        "oll=0 omem=%zu tot-mem=%zu events=%s cmd=%s user=default redir=-1 resp=%d lib-name=%s "
                        "lib-ver=%s",
                        (unsigned long long)c->id, clientcmd_addr(r, c, addr), clientcmd_laddr(r, c, laddr), c->fd,
                        c->meta && c->meta->name ? c->meta->name : "", (long long)(now / 1000 - c->born_s),
                        (long long)(now - c->last_active) / 1000, flags, multi_queued(c->multi), qbuf,
                        c->ibuf ? c->ibuf_size - c->ilen : 0, c->qbytes, c->ibuf_size, c->ibuf_size, obuf,
                        sizeof(*c) + c->ibuf_size + c->qbytes + obuf + meta, events, last ? last->name : "NULL",
                        c->resp3 ? 3 : 2,
                        c->meta && c->meta->lib_name ? c->meta->lib_name : "",
                        c->meta && c->meta->lib_ver ? c->meta->lib_ver : "");
}

/* A client type Redis knows, as CLIENT LIST TYPE and CLIENT KILL TYPE take
 * it: 1 normal (every client here), 0 one that does not exist here (no
 * replica, master or subscriber connects to the daemon), -1 unknown. */
static int clientcmd_type(const struct cs_str *t)
{
    if (clientcmd_is(t, "normal"))
        return 1;
    if (clientcmd_is(t, "master") || clientcmd_is(t, "replica") || clientcmd_is(t, "slave") ||
        clientcmd_is(t, "pubsub"))
        return 0;
    return -1;
}

static bool clientcmd_id_arg(const struct cs_str *a, unsigned long long *id)
{
    char *end;

    if (!a->len || a->p[0] < '0' || a->p[0] > '9')
        return false;
    errno = 0;
    *id = strtoull(a->p, &end, 10);
    return !errno && *end == '\0' && (size_t)(end - a->p) == a->len;
}

static void clientcmd_list(struct req *r)
{
    struct evbuffer *body = evbuffer_new(), *out = req_out(r);
    int64_t now = cs_mono_ms();
    struct conn *c;
    bool all = true;

    if (r->argc == 4 && clientcmd_is(&r->argv[2], "type")) {
        int t = clientcmd_type(&r->argv[3]);
        if (t < 0) {
            resp_errorf(out, "ERR Unknown client type '%.64s'", r->argv[3].p);
            goto done;
        }
        all = t == 1;
    } else if (r->argc > 3 && clientcmd_is(&r->argv[2], "id")) {
        for (int i = 3; i < r->argc; i++) {
            unsigned long long id;
            if (!clientcmd_id_arg(&r->argv[i], &id)) {
                resp_error(out, "ERR Invalid client ID");
                goto done;
            }
            TAILQ_FOREACH(c, &conn_all, link) {
                if (c->id == id) {
                    clientcmd_line(body, r, c, now);
                    evbuffer_add(body, "\n", 1);
                }
            }
        }
        all = false;
    } else if (r->argc != 2) {
        resp_error(out, "ERR syntax error");
        goto done;
    }
    if (all) {
        TAILQ_FOREACH(c, &conn_all, link) {
            clientcmd_line(body, r, c, now);
            evbuffer_add(body, "\n", 1);
        }
    }
    resp_text_move(out, body, r->resp3);
done:
    evbuffer_free(body);
    req_done(r);
}

static void clientcmd_info(struct req *r)
{
    struct evbuffer *body = evbuffer_new();

    if (r->conn) {
        clientcmd_line(body, r, r->conn, cs_mono_ms());
        evbuffer_add(body, "\n", 1);
    }
    resp_text_move(req_out(r), body, r->resp3);
    evbuffer_free(body);
    req_done(r);
}

static void clientcmd_id(struct req *r)
{
    resp_int(req_out(r), r->conn ? (long long)r->conn->id : 0);
    req_done(r);
}

/* What CLIENT LIST can show: printable ASCII without spaces, so the line
 * still splits on spaces. */
static bool clientcmd_attr_ok(const struct cs_str *v)
{
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] < '!' || v->p[i] > '~')
            return false;
    return true;
}

/* *field (one of c's conn_meta) = v; empty: unset. */
static void clientcmd_store(struct conn *c, size_t field, const struct cs_str *v)
{
    char **p;

    if (!v->len && !c->meta)
        return;                 /* nothing set, nothing to unset */
    if (!c->meta)
        c->meta = cs_calloc(1, sizeof(*c->meta));
    p = (char **)((char *)c->meta + field);
    free(*p);
    *p = v->len ? cs_strndup(v->p, v->len) : NULL;
}

const char *clientcmd_setname(struct conn *c, const struct cs_str *name)
{
    if (!clientcmd_attr_ok(name))
        return "ERR Client names cannot contain spaces, newlines or special characters.";
    clientcmd_store(c, offsetof(struct conn_meta, name), name);
    return NULL;
}

static void clientcmd_setname_cmd(struct req *r)
{
    const char *err = r->conn ? clientcmd_setname(r->conn, &r->argv[2]) : NULL;

    if (err)
        resp_error(req_out(r), err);
    else
        resp_simple(req_out(r), "OK");
    req_done(r);
}

static void clientcmd_getname(struct req *r)
{
    const char *name = r->conn && r->conn->meta ? r->conn->meta->name : NULL;

    if (name)
        resp_bulk(req_out(r), name, strlen(name));
    else
        resp_null(req_out(r), r->resp3);
    req_done(r);
}

/* SETINFO LIB-NAME|LIB-VER value: shown by CLIENT LIST. */
static void clientcmd_setinfo(struct req *r)
{
    const struct cs_str *attr = &r->argv[2], *v = &r->argv[3];
    bool name = clientcmd_is(attr, "lib-name");

    if (!name && !clientcmd_is(attr, "lib-ver")) {
        resp_errorf(req_out(r), "ERR Unrecognized option '%.64s'", attr->p);
    } else if (!clientcmd_attr_ok(v)) {
        resp_errorf(req_out(r), "ERR %s cannot contain spaces, newlines or special characters.", attr->p);
    } else {
        if (r->conn)
            clientcmd_store(r->conn, name ? offsetof(struct conn_meta, lib_name) : offsetof(struct conn_meta, lib_ver),
                            v);
        resp_simple(req_out(r), "OK");
    }
    req_done(r);
}

/* NO-EVICT ON|OFF: Redis evicts clients past maxmemory-clients; the daemon
 * never does (max_output_bytes_per_client closes a slow reader, whatever
 * this says), so the flag is kept and shown, and both are true. */
static void clientcmd_no_evict(struct req *r)
{
    bool on = clientcmd_is(&r->argv[2], "on");

    if (!on && !clientcmd_is(&r->argv[2], "off")) {
        resp_error(req_out(r), "ERR syntax error");
        req_done(r);
        return;
    }
    if (r->conn)
        r->conn->cflags = (unsigned char)(on ? r->conn->cflags | CONN_F_NO_EVICT
                                             : r->conn->cflags & ~CONN_F_NO_EVICT);
    clientcmd_ok(r);
}

/* The filters of CLIENT KILL's option form. */
struct clientcmd_kill {
    unsigned long long id;      /* 0: any */
    const char *addr, *laddr;   /* NULL: any */
    bool none;                  /* TYPE of clients there are none of */
    bool skipme;
};

static bool clientcmd_kill_parse(struct req *r, struct clientcmd_kill *k)
{
    struct evbuffer *out = req_out(r);

    k->skipme = true;
    for (int i = 2; i < r->argc; i += 2) {
        const struct cs_str *opt = &r->argv[i], *v;
        if (i + 1 >= r->argc) {
            resp_error(out, "ERR syntax error");
            return false;
        }
        v = &r->argv[i + 1];
        if (clientcmd_is(opt, "id")) {
            if (!clientcmd_id_arg(v, &k->id) || k->id == 0 || k->id > (unsigned long long)INT64_MAX) {
                resp_error(out, "ERR client-id should be greater than 0");
                return false;
            }
        } else if (clientcmd_is(opt, "type")) {
            int t = clientcmd_type(v);
            if (t < 0) {
                resp_errorf(out, "ERR Unknown client type '%.64s'", v->p);
                return false;
            }
            k->none |= t == 0;
        } else if (clientcmd_is(opt, "addr")) {
            k->addr = v->p;
        } else if (clientcmd_is(opt, "laddr")) {
            k->laddr = v->p;
        } else if (clientcmd_is(opt, "user")) {
            if (strcmp(v->p, "default") != 0) {     /* the one user there is */
                resp_errorf(out, "ERR No such user '%.64s'", v->p);
                return false;
            }
        } else if (clientcmd_is(opt, "skipme") && (clientcmd_is(v, "yes") || clientcmd_is(v, "no"))) {
            k->skipme = clientcmd_is(v, "yes");
        } else {
            resp_error(out, "ERR syntax error");
            return false;
        }
    }
    return true;
}

/* KILL addr (the old form: +OK or an error, and a client may kill itself)
 * or KILL <option> <value> ... (the number killed; SKIPME yes unless
 * said). Another client is closed at once, after what it has already
 * answered; the caller, when it matches, once this reply is written. */
static void clientcmd_kill(struct req *r)
{
    struct clientcmd_kill k = { 0 };
    struct conn *c, *next;
    char buf[CLIENTCMD_ADDR_MAX];
    bool old = r->argc == 3, self = false;
    long long killed = 0;

    if (old)
        k.addr = r->argv[2].p;
    else if (!clientcmd_kill_parse(r, &k)) {
        req_done(r);
        return;
    }
    for (c = TAILQ_FIRST(&conn_all); c && !k.none; c = next) {
        next = TAILQ_NEXT(c, link);
        if ((k.id && c->id != k.id) || (k.addr && strcmp(clientcmd_addr(r, c, buf), k.addr) != 0) ||
            (k.laddr && strcmp(clientcmd_laddr(r, c, buf), k.laddr) != 0))
            continue;
        if (c == r->conn) {
            if (k.skipme && !old)
                continue;
            self = true;
        } else {
            req_conn->kill(c);
        }
        killed++;
    }
    if (!old)
        resp_int(req_out(r), killed);
    else if (killed)
        resp_simple(req_out(r), "OK");
    else
        resp_error(req_out(r), "ERR No such client");
    if (self)
        req_conn->drain(r->conn);
    req_done(r);
}

/* ---- what tracking and reply control would be ----------------------- */

static void clientcmd_unsupported(struct req *r)
{
    char up[32];

    resp_errorf(req_out(r), "ERR CLIENT %s is not supported by cachasided",
                command_upper(up, sizeof(up), r->argv[1].p));
    req_done(r);
}

/* REPLY ON, TRACKING OFF, NO-TOUCH OFF: the state there always is. */
static void clientcmd_true_if_off(struct req *r)
{
    bool reply = clientcmd_is(&r->argv[1], "reply");

    if (clientcmd_is(&r->argv[2], reply ? "on" : "off") && r->argc == 3)
        clientcmd_ok(r);
    else
        clientcmd_unsupported(r);
}

static void clientcmd_getredir(struct req *r)
{
    resp_int(req_out(r), -1);       /* tracking is off */
    req_done(r);
}

static void clientcmd_trackinginfo(struct req *r)
{
    struct evbuffer *out = req_out(r);

    resp_map(out, 3, r->resp3);
    resp_bulk(out, "flags", 5);
    resp_set(out, 1, r->resp3);
    resp_bulk(out, "off", 3);
    resp_bulk(out, "redirect", 8);
    resp_int(out, -1);
    resp_bulk(out, "prefixes", 8);
    resp_array(out, 0);
    req_done(r);
}

static void clientcmd_caching(struct req *r)
{
    resp_error(req_out(r), "ERR CLIENT CACHING can be called only when the client is in tracking mode with "
                           "OPTIN or OPTOUT mode enabled");
    req_done(r);
}

/* UNBLOCK id: no client is ever blocked in Redis's sense (a read waiting
 * on a fill cannot be cut short): 0, none unblocked. */
static void clientcmd_unblock(struct req *r)
{
    unsigned long long id;

    if (!clientcmd_id_arg(&r->argv[2], &id))
        resp_error(req_out(r), "ERR value is not an integer or out of range");
    else if (r->argc == 4 && !clientcmd_is(&r->argv[3], "timeout") && !clientcmd_is(&r->argv[3], "error"))
        resp_error(req_out(r), "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    else if (r->argc > 4)
        resp_error(req_out(r), "ERR syntax error");
    else
        resp_int(req_out(r), 0);
    req_done(r);
}

#define CC_F "noscript loading stale"
#define CC_ADMIN "admin " CC_F
const struct cmd_sub clientcmd_subs[] = {
    { "id", 2, clientcmd_id, CC_F, "5.0.0", "Return the id of this connection." },
    { "info", 2, clientcmd_info, CC_F, "6.2.0", "Return CLIENT LIST's line of this connection." },
    { "list", -2, clientcmd_list, CC_ADMIN, "2.4.0",
      "List the connected clients, one line each: [TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID id ...]." },
    { "kill", -3, clientcmd_kill, CC_ADMIN, "2.4.0",
      "Close connections: <ip:port>, or ID, ADDR, LADDR, TYPE, USER, SKIPME filters." },
    { "setname", 3, clientcmd_setname_cmd, CC_F, "2.6.9", "Name this connection." },
    { "getname", 2, clientcmd_getname, CC_F, "2.6.9", "Return this connection's name." },
    { "setinfo", 4, clientcmd_setinfo, CC_F, "7.2.0", "Set LIB-NAME or LIB-VER of this connection." },
    { "no-evict", 3, clientcmd_no_evict, CC_ADMIN, "7.0.0", "Mark this connection ON or OFF for client eviction." },
    { "no-touch", 3, clientcmd_true_if_off, CC_F, "7.2.0", "OFF only: reads touch what they read in Redis." },
    { "reply", 3, clientcmd_true_if_off, CC_F, "3.2.0", "ON only: every request is answered." },
    { "tracking", -3, clientcmd_true_if_off, CC_F, "6.0.0", "OFF only: no client-side caching invalidations." },
    { "trackinginfo", 2, clientcmd_trackinginfo, CC_F, "6.2.0", "Return the tracking state (off)." },
    { "getredir", 2, clientcmd_getredir, CC_F, "6.0.0", "Return the tracking redirection (-1: off)." },
    { "caching", 3, clientcmd_caching, CC_F, "6.0.0", "Refused: tracking is off." },
    { "unblock", -3, clientcmd_unblock, CC_ADMIN, "5.0.0", "Unblock a client (none is ever blocked: 0)." },
    { "pause", -3, clientcmd_unsupported, CC_ADMIN, "3.0.0", "Not supported." },
    { "unpause", 2, clientcmd_ok, CC_ADMIN, "6.2.0", "Resume paused clients (none ever is)." },
    { "help", 2, NULL, "loading stale", "5.0.0", "Show this help." },
    { NULL, 0, NULL, NULL, NULL, NULL },
};

void clientcmd_client(struct req *r)
{
    command_sub(r, clientcmd_subs);
}
