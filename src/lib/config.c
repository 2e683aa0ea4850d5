/* SPDX-License-Identifier: BSD-3-Clause */
/* config.c - cachasided.ini through inih, driven by one table of keys.
 *
 * inih (Debian's build) does not tell the handler the line number, so the
 * reader we hand to ini_parse_stream counts lines; the handler runs right
 * after the reader returns each line, so "current line" is exact. */
#include "core.h"
#include "config.h"
#include "log.h"

#include <ini.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct cs_config *cs_conf;

enum ctype { T_INT, T_STR, T_LEVEL, T_FORMAT, T_MODE, T_ADDR, T_ADDR_PATH, T_URL, T_BOOL, T_RMODE, T_ADDRS,
             T_FILE, T_SECRET, T_HEADER, T_MILLI };
/* Keys held as strings (freed with the config, compared on reload). */
#define CONF_IS_STR(t) ((t) == T_STR || (t) == T_ADDR || (t) == T_ADDR_PATH || (t) == T_ADDRS)
/* S_CACHEG: a [cache] key of the daemon as a whole (the near cache's),
 * which a namespace does not override: its offset is into cs_config. */
enum csec { S_SERVER, S_REDIS, S_CACHE, S_NS, S_CACHEG };

struct ckey {
    enum csec sec;
    const char *key;
    enum ctype type;
    size_t off;                 /* into cs_config, cs_cache_conf.v or cs_ns; in
                                 * cs_config a char * (T_STR, T_ADDR) or a long long */
    const char *def;
    long long min, max;
    bool reload;                /* SIGHUP applies it */
    bool in_cache;              /* a namespace key [cache] may set for all */
};

#define SRV(k, t, f, d, mn, mx, r) { S_SERVER, k, t, offsetof(struct cs_config, f), d, mn, mx, r, false }
#define RDS(k, t, f, d, mn, mx) { S_REDIS, k, t, offsetof(struct cs_config, f), d, mn, mx, false, false }
#define CCH(k, i, d, mn, mx) { S_CACHE, k, T_INT, i, d, mn, mx, true, false }
#define CCG(k, f, d, mn, mx, r) { S_CACHEG, k, T_INT, offsetof(struct cs_config, f), d, mn, mx, r, false }
/* A decimal number kept in thousandths: min and max are thousandths too. */
#define CCHM(k, i, d, mn, mx) { S_CACHE, k, T_MILLI, i, d, mn, mx, true, false }
#define NSK(k, t, f, d) { S_NS, k, t, offsetof(struct cs_ns, f), d, 0, 0, true, false }
#define NSC(k, t, f) { S_NS, k, t, offsetof(struct cs_ns, f), "", 0, 0, true, true }
#define CONFIG_PREFIX_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-/"

const char *const config_redis_modes[RM_COUNT] = { "standalone", "cluster", "sentinel" };

static const struct ckey conf_keys[] = {
    SRV("listen", T_ADDR, listen, "127.0.0.1:7379", 0, 0, false),
    SRV("unix_socket", T_STR, unix_socket, "", 0, 0, false),
    SRV("unix_socket_mode", T_MODE, unix_socket_mode, "0660", 0, 0777, false),
    SRV("admin_listen", T_ADDR_PATH, admin_listen, "127.0.0.1:7380", 0, 0, false),
    SRV("admin_demo", T_BOOL, admin_demo, "no", 0, 1, true),
    SRV("requirepass", T_STR, requirepass, "", 0, 0, true),
    SRV("cluster_announce", T_ADDR, cluster_announce, "", 0, 0, true),
    SRV("max_clients", T_INT, max_clients, "10000", 1, 1000000, true),
    SRV("max_request_bytes", T_INT, max_request_bytes, "65536", 64, 8LL << 20, true),
    SRV("client_idle_timeout_s", T_INT, client_idle_timeout_s, "300", 0, 31536000, true),
    SRV("max_inflight_per_client", T_INT, max_inflight_per_client, "1024", 1, 65536, true),
    SRV("max_output_bytes_per_client", T_INT, max_output_bytes_per_client, "67108864", 1024, 1LL << 30, true),
    SRV("shutdown_grace_ms", T_INT, shutdown_grace_ms, "5000", 0, 3600000, true),
    SRV("log_level", T_LEVEL, log_level, "info", 0, 0, true),
    RDS("mode", T_RMODE, redis_mode, "standalone", 0, 2),
    RDS("host", T_STR, redis_host, "127.0.0.1", 0, 0),
    RDS("port", T_INT, redis_port, "6379", 1, 65535),
    RDS("unix_socket", T_STR, redis_unix_socket, "", 0, 0),
    RDS("nodes", T_ADDRS, redis_nodes, "", 0, 0),
    RDS("sentinels", T_ADDRS, redis_sentinels, "", 0, 0),
    RDS("master_name", T_STR, redis_master_name, "", 0, 0),
    RDS("cluster_refresh_s", T_INT, cluster_refresh_s, "60", 1, 86400),
    RDS("username", T_STR, redis_username, "", 0, 0),
    RDS("password", T_STR, redis_password, "", 0, 0),
    RDS("db", T_INT, redis_db, "0", 0, 1000000),
    RDS("key_prefix", T_STR, key_prefix, "cache:", 0, 0),
    RDS("connect_timeout_ms", T_INT, connect_timeout_ms, "1000", 1, 3600000),
    RDS("command_timeout_ms", T_INT, command_timeout_ms, "500", 1, 3600000),
    RDS("tls", T_BOOL, redis_tls, "no", 0, 1),
    RDS("tls_ca_file", T_STR, redis_tls_ca_file, "", 0, 0),
    RDS("tls_cert_file", T_STR, redis_tls_cert_file, "", 0, 0),
    RDS("tls_key_file", T_STR, redis_tls_key_file, "", 0, 0),
    RDS("tls_server_name", T_STR, redis_tls_server_name, "", 0, 0),
    CCH("ttl_s", CK_TTL, "300", 1, 315360000),
    CCH("ttl_jitter_pct", CK_JITTER, "10", 0, 100),
    CCH("negative_ttl_s", CK_NEG_TTL, "30", 0, 315360000),  /* 0: not-found is not cached */
    CCH("grace_s", CK_GRACE, "0", 0, 315360000),
    CCH("lock_ttl_ms", CK_LOCK_TTL, "5000", 1, 3600000),
    CCH("lock_poll_ms", CK_LOCK_POLL, "50", 1, 3600000),
    CCH("upstream_timeout_ms", CK_UP_TIMEOUT, "2000", 1, 3600000),
    CCH("upstream_connections", CK_UP_CONNS, "16", 1, 10000),
    CCH("max_body_bytes", CK_MAX_BODY, "1048576", 1, 1LL << 30),
    CCH("max_upstream_fetches", CK_MAX_FETCHES, "64", 1, 100000),
    /* Restart-only: the daemon asks Redis to track its reads (and sizes
     * the near cache's table) at start. */
    CCG("near_cache_entries", near_cache_entries, "0", 0, 100000000, false),
    CCG("near_cache_bytes", near_cache_bytes, "67108864", 0, 1LL << 40, true),
    CCG("near_cache_max_stale_ms", near_cache_max_stale_ms, "0", 0, 3600000, true),
    CCHM("early_refresh_beta", CK_BETA, "0", 0, 100000),           /* 0: no early refresh */
    CCH("breaker_failures", CK_BRK_FAILS, "0", 0, 1000000),        /* 0: no circuit breaker */
    CCH("breaker_open_ms", CK_BRK_OPEN, "5000", 1, 3600000),
    NSK("upstream", T_URL, upstream, NULL),
    NSK("format", T_FORMAT, format, "hash"),
    NSK("id_slashes", T_BOOL, id_slashes, "no"),
    NSK("near_cache", T_BOOL, near_cache, "no"),
    /* Repeatable: each line adds a header (the table's one such key). */
    NSK("upstream_header", T_HEADER, headers, NULL),
    NSC("upstream_ca_file", T_FILE, ca_file),
    NSC("upstream_cert_file", T_FILE, cert_file),
    NSC("upstream_key_file", T_SECRET, key_file),
};
/* keyline[] is indexed by row of this table: one row more than it holds
 * would write past it. */
_Static_assert(CS_ARRAY_LEN(conf_keys) <= CS_ARRAY_LEN(((struct cs_config *)0)->keyline),
               "conf_keys has more rows than cs_config.keyline");
_Static_assert(CS_ARRAY_LEN(conf_keys) <= CS_ARRAY_LEN(((struct cs_ns *)0)->keyline),
               "conf_keys has more rows than cs_ns.keyline");

static const char *const sec_names[] = { "server", "redis", "cache", "namespace", "cache" };

/* Parse state shared by the reader and the handler. */
struct cparse {
    FILE *fp;
    const char *path;
    int line;
    struct cs_config *conf;
    struct config_errors *errs;
    char *buf;
    size_t bufsz;
    int bad_line;               /* the reader already reported this line */
    bool section_bad;           /* ... or the header of the current section */
    int sections;               /* headers seen: none means an empty file */
    int read_errno;             /* getline failed with this (a directory...) */
};

static int config_section(struct cparse *p, const char *name, struct cs_ns **ns);

static void config_err(struct cparse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_err(struct cparse *p, int line, const char *fmt, ...)
{
    char msg[512];
    char *full;
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = snprintf(NULL, 0, "%s:%d: %s", p->path, line, msg);
    full = cs_malloc((size_t)n + 1);
    snprintf(full, (size_t)n + 1, "%s:%d: %s", p->path, line, msg);
    p->errs->msg = cs_realloc(p->errs->msg, sizeof(char *) * (size_t)(p->errs->n + 1));
    p->errs->msg[p->errs->n++] = full;
}

/* What is wrong with a line inih would accept or mangle silently, or NULL.
 * S is the line without its end of line, N its length. */
static const char *config_line_problem(const char *s, size_t n, char *why, size_t whysz)
{
    const char *t;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\0') {
            snprintf(why, whysz, "NUL byte at column %zu", i + 1);
            return why;
        }
        if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
            snprintf(why, whysz, "control character 0x%02x at column %zu", ch, i + 1);
            return why;
        }
    }
    t = s + strspn(s, " \t");
    if (t != s && *t && *t != ';' && *t != '#')
        return "continuation lines are not supported (line starts with whitespace)";
    if (!*t || *t == ';' || *t == '#')
        return NULL;
    if (*t == '[') {
        const char *rb = strchr(t, ']');
        if (!rb)
            return "syntax error: section header without its closing ']'";
        rb += 1 + strspn(rb + 1, " \t");
        if (*rb && *rb != ';' && *rb != '#')
            return "syntax error: text after the section header's ']'";
        return NULL;
    }
    /* inih also takes ':' as a separator; this file format uses '=' only. */
    if (t[strcspn(t, "=:")] != '=') {
        snprintf(why, whysz, "syntax error: expected '[section]', 'key = value' or a comment, got '%.40s%s'", t,
                 strlen(t) > 40 ? "..." : "");
        return why;
    }
    return NULL;
}

/* Reads whole lines itself so it can reject what inih would silently
 * mangle or skip: over-long lines (inih splits them), continuation lines,
 * NUL and control bytes, a BOM, lines that are neither header nor key. Each
 * bad line is reported here, in file order, and handed on as a blank line. */
static char *config_reader(char *str, int num, void *stream)
{
    struct cparse *p = stream;
    ssize_t n;
    const char *s, *bad;
    char why[160];

    errno = 0;
    n = getline(&p->buf, &p->bufsz, p->fp);
    if (n < 0) {
        if (ferror(p->fp))
            p->read_errno = errno ? errno : EIO;
        return NULL;
    }
    p->line++;
    while (n > 0 && (p->buf[n - 1] == '\n' || p->buf[n - 1] == '\r'))
        p->buf[--n] = '\0';
    /* Refused rather than skipped: the file is then the same bytes for
     * every tool that reads it. The rest of the line is still checked. */
    if (p->line == 1 && n >= 3 && memcmp(p->buf, "\xef\xbb\xbf", 3) == 0) {
        config_err(p, 1, "the file starts with a UTF-8 byte order mark (BOM); save it as plain UTF-8 without one");
        memmove(p->buf, p->buf + 3, (size_t)n - 2);
        n -= 3;
    }
    s = p->buf;
    if (n > num - 3) {
        config_err(p, p->line, "line too long (%d bytes, at most %d)", (int)n, num - 3);
        p->bad_line = p->line;
        strcpy(str, "\n");
        return str;
    }
    if ((bad = config_line_problem(s, (size_t)n, why, sizeof(why))) != NULL) {
        config_err(p, p->line, "%s", bad);
        p->bad_line = p->line;
        if (s[strspn(s, " \t")] == '[') {
            p->sections++;
            p->section_bad = true;   /* its keys are not blamed on the section before */
        }
        strcpy(str, "\n");
        return str;
    }
    if (s[0] == '[') {
        /* inih only reports sections through their keys: check headers here
         * so an empty [bogus] or a bare [namespace:x] is caught too. */
        const char *rb = strchr(s, ']');
        char name[200];
        struct cs_ns *ns;
        p->sections++;
        p->section_bad = true;
        if ((size_t)(rb - s - 1) < sizeof(name)) {
            memcpy(name, s + 1, (size_t)(rb - s - 1));
            name[rb - s - 1] = '\0';
            p->section_bad = config_section(p, name, &ns) < 0;
        }
    }
    memcpy(str, p->buf, (size_t)n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

/* What is wrong with S as host:port, or NULL when it is one; HOST and PORT
 * get its parts. */
static const char *config_addr_problem(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon, *h = s;
    size_t hl;
    char *end;
    long v;

    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return "an IPv6 address is written [address]:port";
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "has no ':port'";
        hl = (size_t)(colon - s);
    }
    if (hl == 0)
        return "has no host before ':port'";
    if (hl >= hostsz)
        return "has a host name too long";
    if (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return "has a port that is not a number";
    errno = 0;
    v = strtol(colon + 1, &end, 10);
    if (errno || v < 1 || v > 65535)
        return "has a port out of range (1-65535)";
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return NULL;
}

int config_parse_addr(const char *s, char *host, size_t hostsz, int *port)
{
    return config_addr_problem(s, host, hostsz, port) ? CS_ERR : CS_OK;
}

int config_addr_list(const char *s, struct cs_addr *out, int max)
{
    int n = 0;

    while (*s) {
        char item[300], host[256];
        size_t len;
        int port;
        s += strspn(s, " \t,");
        len = strcspn(s, ",");
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (!len)
            break;
        if (len >= sizeof(item) || n >= CS_ADDRS_MAX)
            return -1;
        memcpy(item, s, len);
        item[len] = '\0';
        if (strpbrk(item, " \t") || config_parse_addr(item, host, sizeof(host), &port) != CS_OK)
            return -1;
        if (out && n < max) {
            snprintf(out[n].host, sizeof(out[n].host), "%s", host);
            out[n].port = port;
        }
        n++;
        s += strcspn(s, ",");
    }
    return n;
}

/* http://host[:port]/path with one or more {id}: split into parts. */
static int config_parse_url(struct cs_ns *ns, const char *v, char *err, size_t errsz)
{
    const char *p, *path, *q;
    char hostport[300];
    size_t hl;

    ns->tls = strncasecmp(v, "https://", 8) == 0;
    if (!ns->tls && strncasecmp(v, "http://", 7) != 0) {
        snprintf(err, errsz, "upstream must start with http:// or https://");
        return CS_ERR;
    }
    p = v + (ns->tls ? 8 : 7);
    path = strchr(p, '/');
    if (!path) {
        snprintf(err, errsz, "upstream has no path (http://host:port/path/{id})");
        return CS_ERR;
    }
    hl = (size_t)(path - p);
    if (hl == 0 || hl >= sizeof(hostport) || memchr(p, '{', hl) || memchr(p, '@', hl)) {
        snprintf(err, errsz, "upstream has a bad host part");
        return CS_ERR;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    free(ns->host);
    ns->host = NULL;
    {
        char host[300];
        int port = ns->tls ? 443 : 80;
        if (strchr(hostport, ':') && hostport[hl - 1] != ']') {
            if (config_parse_addr(hostport, host, sizeof(host), &port) != CS_OK) {
                snprintf(err, errsz, "upstream has a bad host:port");
                return CS_ERR;
            }
        } else if (hostport[0] == '[') {
            /* "[" alone or without its "]" once named an empty host. */
            if (hl < 3 || hostport[hl - 1] != ']') {
                snprintf(err, errsz, "upstream has a bad host part");
                return CS_ERR;
            }
            snprintf(host, sizeof(host), "%.*s", (int)hl - 2, hostport + 1);
        } else {
            snprintf(host, sizeof(host), "%s", hostport);
        }
        ns->host = cs_strdup(host);
        ns->port = port;
    }
    if (!strstr(path, "{id}")) {
        snprintf(err, errsz, "upstream must contain {id}");
        return CS_ERR;
    }
    for (q = path; *q; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '#') {
            snprintf(err, errsz, "upstream path has a space, control character or '#'");
            return CS_ERR;
        }
    }
    for (int i = 0; i < ns->nparts; i++)
        free(ns->parts[i]);
    free(ns->parts);
    ns->parts = NULL;
    ns->nparts = 0;
    for (q = path;;) {
        const char *m = strstr(q, "{id}");
        size_t len = m ? (size_t)(m - q) : strlen(q);
        ns->parts = cs_realloc(ns->parts, sizeof(char *) * (size_t)(ns->nparts + 1));
        ns->parts[ns->nparts++] = cs_strndup(q, len);
        if (!m)
            break;
        q = m + 4;
    }
    return CS_OK;
}

bool config_addr_wildcard(const char *host)
{
    static const char *const wildcards[] = { "0.0.0.0", "::", "0:0:0:0:0:0:0:0", "*" };

    for (size_t i = 0; i < CS_ARRAY_LEN(wildcards); i++)
        if (strcmp(host, wildcards[i]) == 0)
            return true;
    return false;
}

/* cluster_announce is written into CLUSTER NODES lines and CLUSTER SLOTS
 * replies: a host clients can reach, in characters those formats keep
 * whole (no space, comma or '@'), and not a wildcard, which reaches
 * nothing. NULL when v is fine, else what is wrong. */
static const char *config_announce_problem(const char *v)
{
    char host[256];
    int port;

    if (config_parse_addr(v, host, sizeof(host), &port) != CS_OK)
        return "must be host:port";
    if (strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:%") != strlen(host))
        return "may hold only A-Z a-z 0-9 and . - _ : % in its host";
    if (config_addr_wildcard(host))
        return "must be an address clients can reach, not a wildcard (leave it empty to announce "
               "the address each client connected to)";
    return NULL;
}

/* Mistakes the table's types would take silently and that bite at run
 * time: quotes (inih keeps them, so a password would include them) and a
 * port written into a host name (it would fail to resolve). */
static const char *config_value_problem(const struct ckey *k, const char *v)
{
    size_t n = strlen(v);
    char host[256];
    int port;

    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0])
        return "is in quotes, which would be part of the value: write it without them";
    if (k->sec == S_REDIS && strcmp(k->key, "host") == 0 && strchr(v, ':') == strrchr(v, ':') &&
        config_parse_addr(v, host, sizeof(host), &port) == CS_OK)
        return "takes a host name or address only: write the port as 'port = N'";
    return NULL;
}

/* "1", "0.25", "2.5": digits, then at most 3 after a point, as thousandths. */
static int config_milli(const char *v, long long *out)
{
    size_t whole = strspn(v, "0123456789"), frac = 0;
    long long n = 0;

    if (whole == 0 || whole > 9)
        return CS_ERR;
    if (v[whole] == '.') {
        frac = strspn(v + whole + 1, "0123456789");
        if (frac == 0 || frac > 3 || v[whole + 1 + frac])
            return CS_ERR;
    } else if (v[whole]) {
        return CS_ERR;
    }
    for (size_t i = 0; i < whole; i++)
        n = n * 10 + (v[i] - '0');
    for (size_t i = 0; i < 3; i++)
        n = n * 10 + (i < frac ? v[whole + 1 + i] - '0' : 0);
    *out = n;
    return CS_OK;
}

static int config_set(const struct ckey *k, void *base, const char *v, char *err, size_t errsz)
{
    void *field = (char *)base + k->off;
    const char *why = config_value_problem(k, v);
    long long n;
    char *end;

    if (why) {
        snprintf(err, errsz, "'%s' %s (got %s)", k->key, why, v);
        return CS_ERR;
    }
    switch (k->type) {
    case T_INT:
    case T_MODE:
        /* Digits only: strtoll alone would take signs, spaces and 0x. */
        if (!*v || strspn(v, k->type == T_MODE ? "01234567" : "0123456789") != strlen(v)) {
            if (k->type == T_MODE)
                snprintf(err, errsz, "'%s' must be an octal mode (digits 0-7, e.g. 0660), got '%s'", k->key, v);
            else
                snprintf(err, errsz, "'%s' must be a whole number, got '%s'", k->key, v);
            return CS_ERR;
        }
        errno = 0;
        n = strtoll(v, &end, k->type == T_MODE ? 8 : 10);
        if (errno == ERANGE || n < k->min || n > k->max) {
            if (k->type == T_MODE)
                snprintf(err, errsz, "'%s' must be an octal mode up to 0777, got '%s'", k->key, v);
            else
                snprintf(err, errsz, "'%s' must be between %lld and %lld, got %s", k->key, k->min, k->max, v);
            return CS_ERR;
        }
        *(long long *)field = n;
        return CS_OK;
    case T_MILLI:
        if (config_milli(v, &n) != CS_OK || n < k->min || n > k->max) {
            snprintf(err, errsz, "'%s' must be a decimal number from %g to %g (at most 3 decimals, e.g. 1 or 0.5), "
                     "got '%s'", k->key, (double)k->min / 1000, (double)k->max / 1000, v);
            return CS_ERR;
        }
        *(long long *)field = n;
        return CS_OK;
    case T_LEVEL: {
        enum log_level l;
        if (log_level_parse(v, &l) != CS_OK) {
            snprintf(err, errsz, "'%s' must be debug, info, notice, warning or error, got '%s'", k->key, v);
            return CS_ERR;
        }
        *(long long *)field = l;
        return CS_OK;
    }
    case T_FORMAT:
        if (strcmp(v, "hash") == 0)
            *(enum ns_format *)field = NS_HASH;
        else if (strcmp(v, "raw") == 0)
            *(enum ns_format *)field = NS_RAW;
        else {
            snprintf(err, errsz, "'format' must be hash or raw, got '%s'", v);
            return CS_ERR;
        }
        return CS_OK;
    case T_BOOL:
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
            *(long long *)field = 1;
        else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
            *(long long *)field = 0;
        else {
            snprintf(err, errsz, "'%s' must be yes or no, got '%s'", k->key, v);
            return CS_ERR;
        }
        return CS_OK;
    case T_RMODE:
        for (long long m = 0; m < RM_COUNT; m++) {
            if (strcmp(v, config_redis_modes[m]) == 0) {
                *(long long *)field = m;
                return CS_OK;
            }
        }
        snprintf(err, errsz, "'mode' must be standalone, cluster or sentinel, got '%s'", v);
        return CS_ERR;
    case T_ADDRS:
        if (config_addr_list(v, NULL, 0) < 0) {
            snprintf(err, errsz, "'%s' must be a list of host:port separated by commas, got '%s'", k->key, v);
            return CS_ERR;
        }
        goto str;
    case T_ADDR_PATH:
        if (*v == '/')
            goto str;           /* a unix socket path */
        /* fall through */
    case T_ADDR:
        if (*v) {
            char host[256];
            int port;
            const char *bad = config_addr_problem(v, host, sizeof(host), &port);
            if (bad) {
                snprintf(err, errsz, "'%s' must be host:port (or empty for %s): '%s' %s", k->key,
                         strcmp(k->key, "cluster_announce") == 0 ? "the default" : "off", v, bad);
                return CS_ERR;
            }
        }
        /* fall through */
    case T_STR:
    str:
        /* key_prefix goes into SCAN patterns and before a {hash tag}: no
         * glob or brace characters, nothing that needs quoting. */
        if (strcmp(k->key, "key_prefix") == 0 &&
            (strlen(v) > 64 || strspn(v, CONFIG_PREFIX_CHARS) != strlen(v))) {
            snprintf(err, errsz, "'key_prefix' may hold only A-Z a-z 0-9 and _ . : - / "
                     "(at most 64 bytes), got '%s'", v);
            return CS_ERR;
        }
        if (strcmp(k->key, "cluster_announce") == 0 && *v && config_announce_problem(v)) {
            snprintf(err, errsz, "'cluster_announce' %s, got '%s'", config_announce_problem(v), v);
            return CS_ERR;
        }
        free(*(char **)field);
        *(char **)field = cs_strdup(v);
        return CS_OK;
    case T_FILE:
    case T_SECRET:
        /* Read by the upstream client; checked here so that a reload with
         * a missing or exposed file changes nothing. */
        if (*v && *v != '/') {
            snprintf(err, errsz, "'%s' takes an absolute path, got '%s'", k->key, v);
            return CS_ERR;
        }
        if (*v) {
            char fwhy[300];
            if (confhdr_file_check(v, k->type == T_SECRET, fwhy, sizeof(fwhy)) != CS_OK) {
                snprintf(err, errsz, "'%s': %s", k->key, fwhy);
                return CS_ERR;
            }
        }
        goto str;
    case T_HEADER:
        return CS_ERR;          /* config_header adds it, with its line */
    case T_URL:
        if (config_parse_url(base, v, err, errsz) != CS_OK)
            return CS_ERR;
        free(*(char **)field);
        *(char **)field = cs_strdup(v);
        return CS_OK;
    }
    return CS_ERR;
}

static struct cs_ns *config_ns_get(struct cs_config *c, const char *name, int line)
{
    struct cs_ns *ns;

    for (int i = 0; i < c->nns; i++)
        if (strcmp(c->ns[i]->name, name) == 0)
            return c->ns[i];
    ns = cs_calloc(1, sizeof(*ns));
    ns->name = cs_strdup(name);
    ns->namelen = strlen(name);
    ns->line = line;
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        char err[256];
        /* upstream has no default: it is required. */
        if (k->sec == S_NS && k->def && config_set(k, ns, k->def, err, sizeof(err)) != CS_OK)
            cs_panic("the default of %s is refused: %s", k->key, err);
    }
    c->ns = cs_realloc(c->ns, sizeof(*c->ns) * (size_t)(c->nns + 1));
    c->ns[c->nns++] = ns;
    return ns;
}

static int config_ns_name_ok(const char *n)
{
    size_t len = strlen(n);

    if (len < 1 || len > 64 || strcmp(n, "lock") == 0)
        return 0;
    return strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

/* The kind of a [section] (and its namespace, created on first sight), or
 * -1 after reporting it at the current line. The reader calls this for
 * every header, so empty sections are checked too; the handler for keys. */
static int config_section(struct cparse *p, const char *name, struct cs_ns **ns)
{
    *ns = NULL;
    if (strcmp(name, "server") == 0)
        return S_SERVER;
    if (strcmp(name, "redis") == 0)
        return S_REDIS;
    if (strcmp(name, "cache") == 0)
        return S_CACHE;
    if (strncmp(name, "namespace:", 10) == 0) {
        if (!config_ns_name_ok(name + 10)) {
            config_err(p, p->line, "bad namespace name '%s' (1-64 of A-Z a-z 0-9 _ . -, not 'lock')", name + 10);
            return -1;
        }
        *ns = config_ns_get(p->conf, name + 10, p->line);
        return S_NS;
    }
    config_err(p, p->line, "unknown section [%s]", name);
    return -1;
}

/* Edit distance between A and B (insertions, deletions, substitutions),
 * for the "did you mean" of an unknown key; keys are short. */
static size_t config_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];

    if (lb >= CS_ARRAY_LEN(row))
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The key of section SEC nearest to NAME, if one is near enough to be
 * the one meant (at most 2 edits, fewer than a third of its length), else
 * the only key NAME begins (max_body: max_body_bytes), else NULL. */
static const char *config_suggest(enum csec sec, const char *name)
{
    const char *best = NULL, *prefix = NULL;
    size_t bestd = 3, nprefix = 0;

    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        size_t d;
        if (!(k->sec == sec || (sec == S_NS && k->sec == S_CACHE) || (sec == S_CACHE && k->sec == S_CACHEG)))
            continue;
        d = config_distance(name, k->key);
        if (d < bestd && d * 3 <= strlen(k->key) + 2) {
            bestd = d;
            best = k->key;
        }
        if (strlen(name) >= 3 && strncmp(k->key, name, strlen(name)) == 0) {
            prefix = k->key;
            nprefix++;
        }
    }
    return best ? best : nprefix == 1 ? prefix : NULL;
}

/* An upstream_header line: one more header for ns, each name once. */
static void config_header(struct cparse *p, struct cs_ns *ns, const char *value)
{
    struct cs_hdr h;
    char err[600];

    if (confhdr_parse(value, &h, err, sizeof(err)) != CS_OK) {
        config_err(p, p->line, "%s", err);
        return;
    }
    for (int i = 0; i < ns->nheaders; i++) {
        if (strcasecmp(ns->headers[i].name, h.name) == 0) {
            config_err(p, p->line, "'upstream_header' %s is set twice (first at line %d)", h.name,
                       ns->headers[i].line);
            free(h.name);
            free(h.value);
            return;
        }
    }
    h.line = p->line;
    ns->headers = cs_realloc(ns->headers, sizeof(*ns->headers) * (size_t)(ns->nheaders + 1));
    ns->headers[ns->nheaders++] = h;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
    struct cparse *p = user;
    struct cs_config *c = p->conf;
    enum csec sec;
    struct cs_ns *ns = NULL;
    int kind;
    char err[400];
    int *lines;

    if (p->section_bad)
        return 1;               /* its header was reported */
    if (!section[0]) {
        config_err(p, p->line, "key outside any section");
        return 1;
    }
    if ((kind = config_section(p, section, &ns)) < 0)
        return 1;
    sec = (enum csec)kind;
    lines = ns ? ns->keyline : c->keyline;
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        void *base;

        if (strcmp(k->key, name) != 0)
            continue;
        if (!(k->sec == sec || (sec == S_NS && k->sec == S_CACHE) || (sec == S_CACHE && k->in_cache) ||
              (sec == S_CACHE && k->sec == S_CACHEG)))
            continue;
        if (k->type == T_HEADER) {
            config_header(p, ns, value);
            return 1;
        }
        if (lines[i]) {
            config_err(p, p->line, "duplicate key '%s' (first set at line %d)", name, lines[i]);
            return 1;
        }
        lines[i] = p->line;
        if (k->sec == S_CACHE) {
            struct cs_cache_conf *cc = ns ? &ns->c : &c->cache;
            base = cc->v;
            if (config_set(&(struct ckey){ k->sec, k->key, k->type, sizeof(long long) * k->off,
                                            k->def, k->min, k->max, k->reload, false },
                           base, value, err, sizeof(err)) != CS_OK)
                config_err(p, p->line, "%s", err);
            else
                cc->line[k->off] = p->line;
            return 1;
        }
        base = ns ? (void *)ns : k->sec == S_NS ? (void *)c->nsdef : (void *)c;
        if (config_set(k, base, value, err, sizeof(err)) != CS_OK)
            config_err(p, p->line, "%s", err);
        return 1;
    }
    {
        const char *near = config_suggest(sec, name);
        config_err(p, p->line, "unknown key '%s' in [%s]%s%s%s", name, sec == S_NS ? "namespace:..." : sec_names[sec],
                   near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    }
    return 1;
}

static void config_defaults(struct cs_config *c)
{
    char err[256];

    c->nsdef = cs_calloc(1, sizeof(*c->nsdef));
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        if (k->in_cache && config_set(k, c->nsdef, k->def, err, sizeof(err)) != CS_OK)
            cs_panic("the default of [cache] %s is refused: %s", k->key, err);
    }
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        if (k->sec == S_CACHE)
            c->cache.v[k->off] = strtoll(k->def, NULL, 10) * (k->type == T_MILLI ? 1000 : 1);
        else if (k->sec != S_NS && config_set(k, c, k->def, err, sizeof(err)) != CS_OK)
            cs_panic("the default of [%s] %s is refused: %s", sec_names[k->sec], k->key, err);
    }
}

/* A cross-key rule is blamed on the later of its two keys as set where the
 * rule broke: the namespace's own lines first, else [cache]'s, else the
 * namespace header (or line 1 when both keys are defaults). */
static int config_blame(const struct cs_config *c, const struct cs_ns *ns, int a, int b)
{
    int la, lb;

    if (ns && (ns->c.line[a] || ns->c.line[b])) {
        la = ns->c.line[a];
        lb = ns->c.line[b];
    } else {
        la = c->cache.line[a];
        lb = c->cache.line[b];
    }
    if (la || lb)
        return la > lb ? la : lb;
    return ns ? ns->line : 1;
}

static void config_check_cache(struct cparse *p, const struct cs_cache_conf *cc, const struct cs_ns *ns)
{
    const char *where = ns ? ns->name : "[cache]";

    if (cc->v[CK_NEG_TTL] >= cc->v[CK_TTL])
        config_err(p, config_blame(p->conf, ns, CK_NEG_TTL, CK_TTL), "negative_ttl_s (%lld) must be less than ttl_s (%lld) for %s",
                   cc->v[CK_NEG_TTL], cc->v[CK_TTL], where);
    if (cc->v[CK_LOCK_TTL] <= cc->v[CK_UP_TIMEOUT])
        config_err(p, config_blame(p->conf, ns, CK_LOCK_TTL, CK_UP_TIMEOUT), "lock_ttl_ms (%lld) must exceed upstream_timeout_ms (%lld) for %s",
                   cc->v[CK_LOCK_TTL], cc->v[CK_UP_TIMEOUT], where);
}

static size_t config_redis_row(const char *key)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++)
        if (conf_keys[i].sec == S_REDIS && strcmp(conf_keys[i].key, key) == 0)
            return i;
    cs_panic("no key [redis] %s in the table", key);
}

static size_t config_row(const char *key)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++)
        if (strcmp(conf_keys[i].key, key) == 0)
            return i;
    cs_panic("no key %s in the table", key);
}

/* What would only fail later, at bind or at stop: unix socket paths that do
 * not fit a sockaddr_un, and a drain longer than systemd waits for. */
#define CONF_SUN_PATH_MAX 107           /* sizeof(sun_path) - 1 on Linux */
#define CONF_UNIT_STOP_MS 30000         /* TimeoutStopSec of systemd/cachasided.service */

static void config_check_later(struct cparse *p)
{
    const struct cs_config *c = p->conf;

    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        const char *v;
        if (k->sec == S_CACHE || k->sec == S_NS || !CONF_IS_STR(k->type) ||
            (strcmp(k->key, "unix_socket") != 0 && strcmp(k->key, "admin_listen") != 0))
            continue;
        v = *(char *const *)((const char *)c + k->off);
        if (v[0] == '/' && strlen(v) > CONF_SUN_PATH_MAX)
            config_err(p, c->keyline[i], "'%s' path is %zu bytes; a unix socket path may have at most %d",
                       k->key, strlen(v), CONF_SUN_PATH_MAX);
    }
    if (c->shutdown_grace_ms + 5000 > CONF_UNIT_STOP_MS)
        log_warn("%s:%d: shutdown_grace_ms = %lld leaves less than 5 s before the unit's TimeoutStopSec (%d s): "
                 "systemd would kill a draining daemon; raise TimeoutStopSec in a drop-in",
                 p->path, c->keyline[config_row("shutdown_grace_ms")], c->shutdown_grace_ms,
                 CONF_UNIT_STOP_MS / 1000);
}

/* The value of conf_keys[row] (a [server] or [redis] key) is its default. */
static bool config_is_default(const struct cs_config *c, size_t row)
{
    const struct ckey *k = &conf_keys[row];
    const char *base = (const char *)c + k->off;

    if (CONF_IS_STR(k->type))
        return strcmp(*(char *const *)base, k->def) == 0;
    if (k->type == T_INT)
        return *(const long long *)base == strtoll(k->def, NULL, 10);
    return false;
}

/* TLS to Redis: the files named must be there to read now (-t says so
 * before a start fails), a client certificate comes with its key, and
 * the tls_* keys without tls = yes are a mistake worth a warning. */
static void config_check_tls(struct cparse *p)
{
    const struct cs_config *c = p->conf;
    const struct { const char *key; const char *v; } files[] = {
        { "tls_ca_file", c->redis_tls_ca_file },
        { "tls_cert_file", c->redis_tls_cert_file },
        { "tls_key_file", c->redis_tls_key_file },
    };
    for (size_t i = 0; i < CS_ARRAY_LEN(files); i++) {
        int line = c->keyline[config_redis_row(files[i].key)];
        if (!files[i].v[0])
            continue;
        if (!c->redis_tls)
            log_warn("%s:%d: [redis] %s is ignored without tls = yes", p->path, line, files[i].key);
        else if (access(files[i].v, R_OK) != 0)
            config_err(p, line, "[redis] %s '%s': %s", files[i].key, files[i].v, strerror(errno));
    }
    if (c->redis_tls && !c->redis_tls_cert_file[0] != !c->redis_tls_key_file[0])
        config_err(p, c->keyline[config_redis_row(c->redis_tls_cert_file[0] ? "tls_cert_file" : "tls_key_file")],
                   "[redis] tls_cert_file and tls_key_file go together (a client certificate and its key)");
}

/* Which [redis] keys each mode needs and which it ignores. */
static void config_check_redis(struct cparse *p)
{
    const struct cs_config *c = p->conf;
    int mline = c->keyline[config_redis_row("mode")];
    /* Set to other than its default (the example file lists them all),
     * a key of another mode is a mistake worth a warning. */
    static const struct { const char *key; int mode; } mode_keys[] = {
        { "host", RM_STANDALONE }, { "port", RM_STANDALONE }, { "unix_socket", RM_STANDALONE },
        { "nodes", RM_CLUSTER }, { "cluster_refresh_s", RM_CLUSTER },
        { "sentinels", RM_SENTINEL }, { "master_name", RM_SENTINEL },
    };
    if (p->errs->n)
        return;                 /* a bad list already said what is wrong */
    if (c->redis_mode == RM_CLUSTER) {
        if (config_addr_list(c->redis_nodes, NULL, 0) <= 0)
            config_err(p, mline, "mode = cluster needs 'nodes' (seed nodes, host:port, ...)");
        if (c->redis_db != 0)
            config_err(p, c->keyline[config_redis_row("db")], "a Redis Cluster has only database 0; 'db' must be 0 in mode = cluster");
    } else if (c->redis_mode == RM_SENTINEL) {
        if (config_addr_list(c->redis_sentinels, NULL, 0) <= 0)
            config_err(p, mline, "mode = sentinel needs 'sentinels' (host:port, ...)");
        if (!c->redis_master_name[0])
            config_err(p, mline, "mode = sentinel needs 'master_name' (the name the sentinels monitor)");
    }
    config_check_tls(p);
    if (p->errs->n)
        return;
    for (size_t i = 0; i < CS_ARRAY_LEN(mode_keys); i++) {
        size_t row = config_redis_row(mode_keys[i].key);
        if (c->redis_mode != mode_keys[i].mode && c->keyline[row] && !config_is_default(c, row))
            log_warn("%s:%d: [redis] %s is for mode = %s; ignored in mode = %s", p->path, c->keyline[row],
                     mode_keys[i].key, config_redis_modes[mode_keys[i].mode], config_redis_modes[c->redis_mode]);
    }
}

/* The file keys [cache] sets and ns does not, then the pairing of a
 * client certificate and its key. */
static void config_inherit(struct cparse *p, struct cs_ns *ns)
{
    const struct cs_config *c = p->conf;
    size_t crt = config_row("upstream_cert_file"), key = config_row("upstream_key_file");
    int line;

    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        char **dst = (char **)((char *)ns + k->off);
        if (!k->in_cache || ns->keyline[i])
            continue;
        free(*dst);
        *dst = cs_strdup(*(char *const *)((const char *)c->nsdef + k->off));
    }
    if (!*ns->cert_file == !*ns->key_file)
        return;
    line = ns->keyline[crt] > ns->keyline[key] ? ns->keyline[crt] : ns->keyline[key];
    if (!line)
        line = c->keyline[crt] > c->keyline[key] ? c->keyline[crt] : c->keyline[key];
    config_err(p, line, "namespace '%s': upstream_cert_file and upstream_key_file go together (a client "
               "certificate and its key); only %s is set", ns->name,
               *ns->cert_file ? "upstream_cert_file" : "upstream_key_file");
}

static void config_finish(struct cparse *p)
{
    struct cs_config *c = p->conf;

    config_check_later(p);
    config_check_redis(p);
    config_check_cache(p, &c->cache, NULL);
    for (int i = 0; i < c->nns; i++) {
        struct cs_ns *ns = c->ns[i];
        for (int k = 0; k < CK_COUNT; k++)
            if (!ns->c.line[k])
                ns->c.v[k] = c->cache.v[k];
        if (!ns->upstream && !ns->keyline[config_row("upstream")])
            config_err(p, ns->line, "namespace '%s' has no upstream", ns->name);
        config_inherit(p, ns);
        /* Only blame namespaces for what they override, not [cache] twice. */
        for (int k = 0; k < CK_COUNT; k++) {
            if (ns->c.line[k]) {
                config_check_cache(p, &ns->c, ns);
                break;
            }
        }
    }
    if (p->errs->n == 0 && !*c->listen && !*c->unix_socket)
        log_warn("%s: neither listen nor unix_socket is set: no client can connect", p->path);
    /* Valid (docs/design.md section 3 does not require one) but every key read would fail. */
    if (p->errs->n == 0 && c->nns == 0)
        log_warn("%s: no [namespace:...] section: every key gets 'unknown namespace'", p->path);
}

struct cs_config *config_load(const char *path, struct config_errors *errs)
{
    struct cparse p = { .path = path, .errs = errs };
    struct cs_config *c;
    int rc;

    errs->msg = NULL;
    errs->n = 0;
    p.fp = fopen(path, "r");
    if (!p.fp) {
        config_err(&p, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    c = cs_calloc(1, sizeof(*c));
    c->refcnt = 1;
    c->path = cs_strdup(path);
    config_defaults(c);
    p.conf = c;
    rc = ini_parse_stream(config_reader, &p, config_handler, &p);
    if (rc > 0 && rc != p.bad_line)
        config_err(&p, rc, "syntax error: expected '[section]', 'key = value' or a comment");
    else if (rc < 0)
        config_err(&p, p.line, "cannot parse (out of memory?)");
    fclose(p.fp);
    free(p.buf);
    /* Line 0 stands for the file as a whole. */
    if (p.read_errno)
        config_err(&p, 0, "cannot read: %s", strerror(p.read_errno));
    else if (!p.sections && !errs->n)
        config_err(&p, 0, "no section: the file is empty or holds only comments (is it the right file?)");
    config_finish(&p);
    if (errs->n) {
        config_unref(c);
        return NULL;
    }
    return c;
}

struct cs_config *config_ref(struct cs_config *c)
{
    c->refcnt++;
    return c;
}

static void config_ns_free(struct cs_ns *ns)
{
    for (int i = 0; i < ns->nparts; i++)
        free(ns->parts[i]);
    free(ns->parts);
    free(ns->host);
    free(ns->upstream);
    free(ns->name);
    free(ns->ca_file);
    free(ns->cert_file);
    free(ns->key_file);
    confhdr_free(ns->headers, ns->nheaders);
    free(ns);
}

void config_unref(struct cs_config *c)
{
    if (!c || --c->refcnt > 0)
        return;
    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        if (k->sec != S_CACHE && k->sec != S_NS && CONF_IS_STR(k->type))
            free(*(char **)((char *)c + k->off));
    }
    for (int i = 0; i < c->nns; i++)
        config_ns_free(c->ns[i]);
    free(c->ns);
    if (c->nsdef)
        config_ns_free(c->nsdef);
    free(c->path);
    free(c);
}

void config_errors_free(struct config_errors *errs)
{
    for (int i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    free(errs->msg);
    errs->msg = NULL;
    errs->n = 0;
}

const struct cs_ns *config_ns_find(const struct cs_config *c, const char *name, size_t len)
{
    for (int i = 0; i < c->nns; i++)
        if (c->ns[i]->namelen == len && memcmp(c->ns[i]->name, name, len) == 0)
            return c->ns[i];
    return NULL;
}

static bool config_is_str(const struct ckey *k)
{
    return CONF_IS_STR(k->type);
}

/* Reload: each restart-only row whose value differs between OLD and NEU
 * is logged by name and gets OLD's (the running) value back in NEU. */
/* The restart-only keys reloads have changed since start ("[server] listen,
 * ..."): the running values stay, so a restart is due even if a later
 * file puts them back. */
static char config_pending[256];

bool config_restart_pending(void)
{
    return config_pending[0] != '\0';
}

static void config_pending_add(const char *sec, const char *key)
{
    size_t n = strlen(config_pending);
    char item[96];

    snprintf(item, sizeof(item), "[%s] %s", sec, key);
    if (strstr(config_pending, item))
        return;
    snprintf(config_pending + n, sizeof(config_pending) - n, "%s%s", n ? ", " : "", item);
}

void config_keep_restart(const struct cs_config *old, struct cs_config *neu)
{
    bool warned = false;

    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        const struct ckey *k = &conf_keys[i];
        const char *pa = (const char *)old + k->off;
        char *pb = (char *)neu + k->off;

        if (k->reload || k->sec == S_CACHE || k->sec == S_NS)
            continue;
        if (config_is_str(k) ? strcmp(*(char *const *)pa, *(char *const *)pb) == 0
                             : *(const long long *)pa == *(const long long *)pb)
            continue;
        log_warn("reload: [%s] %s changed; it takes effect after a restart (keeping the running value)",
                 sec_names[k->sec], k->key);
        config_pending_add(sec_names[k->sec], k->key);
        warned = true;
        if (config_is_str(k)) {
            free(*(char **)pb);
            *(char **)pb = cs_strdup(*(char *const *)pa);
        } else {
            *(long long *)pb = *(const long long *)pa;
        }
    }
    if (!warned && config_restart_pending())
        log_warn("reload: a restart is still pending: %s changed in an earlier reload", config_pending);
}

int config_key_list(const struct config_key_info **out)
{
    static struct config_key_info list[CS_ARRAY_LEN(conf_keys)];

    for (size_t i = 0; i < CS_ARRAY_LEN(conf_keys); i++) {
        list[i].section = sec_names[conf_keys[i].sec];
        list[i].key = conf_keys[i].key;
    }
    *out = list;
    return (int)CS_ARRAY_LEN(conf_keys);
}
