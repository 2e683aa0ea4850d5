/* SPDX-License-Identifier: BSD-3-Clause */
/* test_config.c - unit tests of cachasided.ini loading (src/lib/config.c) and of
 * `cachasided -t`.
 *
 * What a user sees of the configuration: the shipped example loads and means
 * what it says; every mistake is reported as "FILE:LINE: message" pointing at
 * the line to fix (docs/design.md section 3, docs/configuration.md "Validation"); every
 * key is documented in the example, the man page and the reference. */
#define _GNU_SOURCE 1     /* nftw */
#include "core.h"
#include "config.h"
#include "log.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

/* ---- helpers ---- */

static const char *srcdir(void)
{
    const char *s = getenv("CACHASIDED_SRCDIR");

    if (!s || !*s)
        s = getenv("srcdir");
    return s && *s ? s : "..";
}

static char *src_path(const char *rel)
{
    static char buf[4][1024];
    static int i;
    char *p = buf[i++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", srcdir(), rel);
    return p;
}

/* Reads a whole file into a NUL-terminated buffer; fails the test if it
 * cannot. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Writes a file named NAME in the test's temp dir; returns its path (static
 * storage, valid until the next call). */
static const char *write_conf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *write_conf(const char *name, const char *fmt, ...)
{
    static char path[512];
    va_list ap;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

static char *errs_dump(const struct config_errors *e)
{
    static char buf[4096];
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < e->n && off < sizeof(buf) - 1; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\n  %s", e->msg[i]);
    if (e->n == 0)
        snprintf(buf, sizeof(buf), " (none)");
    return buf;
}

/* Loads a file that must be valid. */
static struct cs_config *load_ok(const char *path)
{
    struct config_errors e;
    struct cs_config *c = config_load(path, &e);

    ck_assert_msg(c != NULL && e.n == 0, "%s should load, errors:%s", path, errs_dump(&e));
    config_errors_free(&e);
    return c;
}

/* Loads a file that must be rejected; returns its errors. */
static void load_bad(const char *path, struct config_errors *e)
{
    struct cs_config *c = config_load(path, e);

    ck_assert_msg(c == NULL, "%s should be rejected", path);
    ck_assert_msg(e->n > 0, "%s rejected without a message", path);
    for (int i = 0; i < e->n; i++)
        ck_assert_msg(strncmp(e->msg[i], path, strlen(path)) == 0 && e->msg[i][strlen(path)] == ':',
                      "message does not start with 'FILE:': %s", e->msg[i]);
}

/* The index of the message that is exactly "PATH:LINE: " followed by text
 * containing every one of the NULL-terminated words, or -1. */
static int find_err(const struct config_errors *e, const char *path, int line, const char *const *words)
{
    char prefix[600];
    size_t pl = (size_t)snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);

    for (int i = 0; i < e->n; i++) {
        bool all = true;
        if (strncmp(e->msg[i], prefix, pl) != 0)
            continue;
        for (int w = 0; words[w]; w++)
            if (!strstr(e->msg[i] + pl, words[w]))
                all = false;
        if (all)
            return i;
    }
    return -1;
}

/* The file with CONTENT is rejected with a message "FILE:LINE: ..." holding
 * each of the words; when ONLY is set it is the file's only message. */
#define expect_error(only, line, content, ...) \
    expect_error_at(__func__, only, line, content, (const char *const[]){ __VA_ARGS__, NULL })

static void expect_error_at(const char *name, bool only, int line, const char *content, const char *const *words)
{
    char fname[128];
    const char *path;
    struct config_errors e;
    char want[512];
    size_t off = 0;

    snprintf(fname, sizeof(fname), "%s-%d.ini", name, line);
    path = write_conf(fname, "%s", content);
    load_bad(path, &e);
    want[0] = '\0';
    for (int w = 0; words[w]; w++)
        off += (size_t)snprintf(want + off, sizeof(want) - off, " '%s'", words[w]);
    ck_assert_msg(find_err(&e, path, line, words) >= 0, "expected '%s:%d: ...' with%s; got:%s", path, line, want,
                  errs_dump(&e));
    if (only)
        ck_assert_msg(e.n == 1, "expected exactly one message; got:%s", errs_dump(&e));
    config_errors_free(&e);
}

/* The value of KEY in [SECTION] of an ini text, read naively (the example
 * file is simple): "" when absent. */
static const char *ini_value(const char *text, const char *section, const char *key)
{
    static char val[256];
    char cur[128] = "";
    const char *p = text;

    val[0] = '\0';
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];

        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if (line[0] == '[') {
            char *rb = strchr(line, ']');
            if (rb) {
                *rb = '\0';
                snprintf(cur, sizeof(cur), "%.*s", (int)sizeof(cur) - 1, line + 1);
            }
        } else if (strcmp(cur, section) == 0 && strncmp(line, key, strlen(key)) == 0) {
            char *q = line + strlen(key);
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=') {
                char *semi, *end;
                q++;
                while (*q == ' ' || *q == '\t')
                    q++;
                semi = strstr(q, " ;");
                if (semi)
                    *semi = '\0';
                end = q + strlen(q);
                while (end > q && isspace((unsigned char)end[-1]))
                    *--end = '\0';
                snprintf(val, sizeof(val), "%s", q);
                return val;
            }
        }
        p += len + (eol ? 1 : 0);
    }
    return val;
}

static long long ini_int(const char *text, const char *section, const char *key, int base)
{
    const char *v = ini_value(text, section, key);

    ck_assert_msg(*v, "the example has no '%s =' in [%s]", key, section);
    return strtoll(v, NULL, base);
}

static const struct cs_ns *ns_get(const struct cs_config *c, const char *name)
{
    const struct cs_ns *ns = config_ns_find(c, name, strlen(name));

    ck_assert_msg(ns != NULL, "namespace '%s' not found", name);
    return ns;
}

/* ---- the shipped example ---- */

/* conf/cachasided.ini loads without errors and its values are what the file
 * says. */
START_TEST(test_example_loads)
{
    const char *path = src_path("conf/cachasided.ini");
    char *text = slurp(path);
    struct cs_config *c = load_ok(path);
    const struct cs_ns *product, *page;
    enum log_level level;
    int nsections = 0;

    ck_assert_str_eq(c->listen, ini_value(text, "server", "listen"));
    ck_assert_str_eq(c->admin_listen, ini_value(text, "server", "admin_listen"));
    ck_assert_str_eq(c->unix_socket, ini_value(text, "server", "unix_socket"));
    ck_assert_int_eq(c->unix_socket_mode, ini_int(text, "server", "unix_socket_mode", 8));
    ck_assert_int_eq(c->max_clients, ini_int(text, "server", "max_clients", 10));
    ck_assert_int_eq(c->max_request_bytes, ini_int(text, "server", "max_request_bytes", 10));
    ck_assert_int_eq(c->max_output_bytes_per_client, ini_int(text, "server", "max_output_bytes_per_client", 10));
    ck_assert_int_eq(log_level_parse(ini_value(text, "server", "log_level"), &level), CS_OK);
    ck_assert_int_eq(c->log_level, level);
    ck_assert_str_eq(c->redis_host, ini_value(text, "redis", "host"));
    ck_assert_int_eq(c->redis_port, ini_int(text, "redis", "port", 10));
    ck_assert_str_eq(c->key_prefix, ini_value(text, "redis", "key_prefix"));
    ck_assert_int_eq(c->command_timeout_ms, ini_int(text, "redis", "command_timeout_ms", 10));
    ck_assert_int_eq(c->cache.v[CK_TTL], ini_int(text, "cache", "ttl_s", 10));
    ck_assert_int_eq(c->cache.v[CK_NEG_TTL], ini_int(text, "cache", "negative_ttl_s", 10));
    ck_assert_int_eq(c->cache.v[CK_LOCK_TTL], ini_int(text, "cache", "lock_ttl_ms", 10));
    ck_assert_int_eq(c->cache.v[CK_MAX_BODY], ini_int(text, "cache", "max_body_bytes", 10));

    for (const char *p = text; (p = strstr(p, "\n[namespace:")) != NULL; p++)
        nsections++;
    ck_assert_int_eq(c->nns, nsections);

    product = ns_get(c, "product");
    ck_assert_str_eq(product->upstream, ini_value(text, "namespace:product", "upstream"));
    ck_assert_int_eq(product->format, strcmp(ini_value(text, "namespace:product", "format"), "raw") == 0 ? NS_RAW : NS_HASH);
    ck_assert_int_eq(product->c.v[CK_TTL], ini_int(text, "namespace:product", "ttl_s", 10));
    ck_assert_int_eq(product->id_slashes, strcmp(ini_value(text, "namespace:product", "id_slashes"), "yes") == 0);
    /* not overridden: inherited from [cache] */
    ck_assert_str_eq(ini_value(text, "namespace:product", "negative_ttl_s"), "");
    ck_assert_int_eq(product->c.v[CK_NEG_TTL], c->cache.v[CK_NEG_TTL]);
    ck_assert_int_eq(product->c.v[CK_UP_TIMEOUT], c->cache.v[CK_UP_TIMEOUT]);

    page = ns_get(c, "page");
    ck_assert_str_eq(page->upstream, ini_value(text, "namespace:page", "upstream"));
    ck_assert_int_eq(page->format, strcmp(ini_value(text, "namespace:page", "format"), "raw") == 0 ? NS_RAW : NS_HASH);
    ck_assert_int_eq(page->id_slashes, strcmp(ini_value(text, "namespace:page", "id_slashes"), "yes") == 0);
    if (!*ini_value(text, "namespace:page", "ttl_s"))
        ck_assert_int_eq(page->c.v[CK_TTL], c->cache.v[CK_TTL]);
    config_unref(c);
    free(text);
}
END_TEST

/* The example's upstream templates are split into host, port and the parts
 * around {id}, as the upstream client uses them. */
START_TEST(test_example_upstream_parsed)
{
    struct cs_config *c = load_ok(src_path("conf/cachasided.ini"));
    const struct cs_ns *product = ns_get(c, "product");
    char rebuilt[512] = "";
    char prefix[300];

    snprintf(prefix, sizeof(prefix), "http://%s:%d", product->host, product->port);
    ck_assert_msg(strncmp(product->upstream, prefix, strlen(prefix)) == 0, "%s does not start with %s",
                  product->upstream, prefix);
    ck_assert_int_ge(product->nparts, 2);
    snprintf(rebuilt, sizeof(rebuilt), "%s", prefix);
    for (int i = 0; i < product->nparts; i++) {
        strncat(rebuilt, product->parts[i], sizeof(rebuilt) - strlen(rebuilt) - 1);
        if (i + 1 < product->nparts)
            strncat(rebuilt, "{id}", sizeof(rebuilt) - strlen(rebuilt) - 1);
    }
    ck_assert_str_eq(rebuilt, product->upstream);
    config_unref(c);
}
END_TEST

/* ---- values land where they should ---- */

/* Every key set to a non-default value ends up in its own field (two keys
 * named unix_socket, in [server] and [redis], stay apart). */
START_TEST(test_all_keys_set)
{
    const char *path = write_conf("all.ini",
        "[server]\n"
        "listen = [::1]:7001\n"
        "unix_socket = /run/cs/client.sock\n"
        "unix_socket_mode = 0600\n"
        "admin_listen =\n"
        "requirepass = s3cret;x\n"
        "max_clients = 77\n"
        "max_request_bytes = 4096\n"
        "client_idle_timeout_s = 0\n"
        "max_inflight_per_client = 9\n"
        "max_output_bytes_per_client = 2048\n"
        "shutdown_grace_ms = 1234\n"
        "log_level = warning\n"
        "[redis]\n"
        "host = redis.internal\n"
        "port = 6380\n"
        "unix_socket = /run/redis/redis.sock\n"
        "username = cs\n"
        "password = pw with spaces\n"
        "db = 3\n"
        "key_prefix = c2:\n"
        "connect_timeout_ms = 111\n"
        "command_timeout_ms = 222\n"
        "[cache]\n"
        "ttl_s = 1000\n"
        "ttl_jitter_pct = 0\n"
        "negative_ttl_s = 5\n"
        "grace_s = 60\n"
        "lock_ttl_ms = 3000\n"
        "lock_poll_ms = 25\n"
        "upstream_timeout_ms = 2500\n"
        "upstream_connections = 4\n"
        "max_body_bytes = 99\n"
        "[namespace:user.v2]\n"
        "upstream = http://[::1]:9000/u/{id}/x/{id}?full=1\n"
        "format = raw\n"
        "id_slashes = yes\n"
        "grace_s = 0 ; off here\n");
    struct cs_config *c = load_ok(path);
    const struct cs_ns *ns;

    ck_assert_str_eq(c->listen, "[::1]:7001");
    ck_assert_str_eq(c->unix_socket, "/run/cs/client.sock");
    ck_assert_int_eq(c->unix_socket_mode, 0600);
    ck_assert_str_eq(c->admin_listen, "");
    ck_assert_str_eq(c->requirepass, "s3cret;x");   /* no space before ';': part of the value */
    ck_assert_int_eq(c->max_clients, 77);
    ck_assert_int_eq(c->max_request_bytes, 4096);
    ck_assert_int_eq(c->client_idle_timeout_s, 0);
    ck_assert_int_eq(c->max_inflight_per_client, 9);
    ck_assert_int_eq(c->max_output_bytes_per_client, 2048);
    ck_assert_int_eq(c->shutdown_grace_ms, 1234);
    ck_assert_int_eq(c->log_level, LOG_WARNING);
    ck_assert_str_eq(c->redis_host, "redis.internal");
    ck_assert_int_eq(c->redis_port, 6380);
    ck_assert_str_eq(c->redis_unix_socket, "/run/redis/redis.sock");
    ck_assert_str_eq(c->redis_username, "cs");
    ck_assert_str_eq(c->redis_password, "pw with spaces");
    ck_assert_int_eq(c->redis_db, 3);
    ck_assert_str_eq(c->key_prefix, "c2:");
    ck_assert_int_eq(c->connect_timeout_ms, 111);
    ck_assert_int_eq(c->command_timeout_ms, 222);
    ck_assert_int_eq(c->cache.v[CK_TTL], 1000);
    ck_assert_int_eq(c->cache.v[CK_JITTER], 0);
    ck_assert_int_eq(c->cache.v[CK_NEG_TTL], 5);
    ck_assert_int_eq(c->cache.v[CK_GRACE], 60);
    ck_assert_int_eq(c->cache.v[CK_LOCK_TTL], 3000);
    ck_assert_int_eq(c->cache.v[CK_LOCK_POLL], 25);
    ck_assert_int_eq(c->cache.v[CK_UP_TIMEOUT], 2500);
    ck_assert_int_eq(c->cache.v[CK_UP_CONNS], 4);
    ck_assert_int_eq(c->cache.v[CK_MAX_BODY], 99);

    ck_assert_int_eq(c->nns, 1);
    ns = ns_get(c, "user.v2");
    ck_assert_int_eq(ns->line, 34);
    ck_assert_str_eq(ns->upstream, "http://[::1]:9000/u/{id}/x/{id}?full=1");
    ck_assert_str_eq(ns->host, "::1");
    ck_assert_int_eq(ns->port, 9000);
    ck_assert_int_eq(ns->nparts, 3);
    ck_assert_str_eq(ns->parts[0], "/u/");
    ck_assert_str_eq(ns->parts[1], "/x/");
    ck_assert_str_eq(ns->parts[2], "?full=1");
    ck_assert_int_eq(ns->format, NS_RAW);
    ck_assert_int_eq(ns->id_slashes, 1);
    ck_assert_int_eq(ns->c.v[CK_GRACE], 0);         /* overridden */
    ck_assert_int_eq(ns->c.v[CK_TTL], 1000);        /* inherited */
    ck_assert_int_eq(ns->c.v[CK_MAX_BODY], 99);
    config_unref(c);
}
END_TEST

/* A file with one empty section is valid and gives the documented defaults
 * (a file with no section at all is refused: test_err_file_level). */
START_TEST(test_defaults)
{
    struct cs_config *c = load_ok(write_conf("empty.ini", "; nothing\n[server]\n"));

    ck_assert_str_eq(c->listen, "127.0.0.1:7379");
    ck_assert_str_eq(c->unix_socket, "");
    ck_assert_int_eq(c->unix_socket_mode, 0660);
    ck_assert_int_eq(c->max_request_bytes, 65536);
    ck_assert_int_eq(c->log_level, LOG_INFO);
    ck_assert_int_eq(c->redis_port, 6379);
    ck_assert_str_eq(c->key_prefix, "cache:");
    ck_assert_int_eq(c->cache.v[CK_TTL], 300);
    ck_assert_int_eq(c->cache.v[CK_NEG_TTL], 30);
    ck_assert_int_eq(c->cache.v[CK_LOCK_TTL], 5000);
    ck_assert_int_eq(c->cache.v[CK_UP_TIMEOUT], 2000);
    ck_assert_int_eq(c->nns, 0);
    config_unref(c);
}
END_TEST

/* [cache] applies to namespaces wherever it appears in the file, also after
 * them; a namespace's own value wins. */
START_TEST(test_cache_after_namespace)
{
    struct cs_config *c = load_ok(write_conf("order.ini",
        "[namespace:a]\nupstream = http://h/{id}\nlock_poll_ms = 7\n"
        "[namespace:b]\nupstream = http://h:8081/b?id={id}\n"
        "[cache]\nttl_s = 900\nlock_poll_ms = 70\n"));
    const struct cs_ns *a = ns_get(c, "a"), *b = ns_get(c, "b");

    ck_assert_int_eq(a->c.v[CK_TTL], 900);
    ck_assert_int_eq(a->c.v[CK_LOCK_POLL], 7);
    ck_assert_int_eq(b->c.v[CK_TTL], 900);
    ck_assert_int_eq(b->c.v[CK_LOCK_POLL], 70);
    ck_assert_str_eq(a->host, "h");
    ck_assert_int_eq(a->port, 80);
    ck_assert_int_eq(b->port, 8081);
    ck_assert_int_eq(b->nparts, 2);
    ck_assert_str_eq(b->parts[0], "/b?id=");
    ck_assert_str_eq(b->parts[1], "");
    ck_assert_ptr_null(config_ns_find(c, "c", 1));
    ck_assert_ptr_null(config_ns_find(c, "ab", 2));
    ck_assert_ptr_nonnull(config_ns_find(c, "abc", 1));     /* by length: "a" */
    config_unref(c);
}
END_TEST

/* https:// upstreams: port 443 unless given; the TLS files from [cache]
 * unless the namespace sets its own; upstream_header lines in file order,
 * a value from a file without its newline. */
START_TEST(test_https_namespace)
{
    char *tok = strdup(write_conf("token", "Bearer t\n"));      /* write_conf's buffer is reused */
    struct cs_config *c;
    const struct cs_ns *a, *b;
    char conf[512];

    ck_assert_int_eq(chmod(tok, 0600), 0);
    snprintf(conf, sizeof(conf),
             "[cache]\nupstream_ca_file = %s\n"
             "[namespace:a]\nupstream = https://h/{id}\nupstream_header = X-A: 1\nupstream_header = Authorization: @%s\n"
             "[namespace:b]\nupstream = HTTPS://h:8443/{id}\nupstream_ca_file =\n", tok, tok);
    c = load_ok(write_conf("https.ini", "%s", conf));
    a = ns_get(c, "a");
    b = ns_get(c, "b");
    ck_assert(a->tls && b->tls);
    ck_assert_int_eq(a->port, 443);
    ck_assert_int_eq(b->port, 8443);
    ck_assert_str_eq(a->ca_file, tok);
    ck_assert_str_eq(b->ca_file, "");
    ck_assert_int_eq(a->nheaders, 2);
    ck_assert_str_eq(a->headers[0].name, "X-A");
    ck_assert_str_eq(a->headers[0].value, "1");
    ck_assert_str_eq(a->headers[1].name, "Authorization");
    ck_assert_str_eq(a->headers[1].value, "Bearer t");
    ck_assert_int_eq(b->nheaders, 0);
    config_unref(c);
    free(tok);
}
END_TEST

/* Comments, CRLF line endings, indented comments, inline comments and blank
 * lines are accepted; line numbers in errors still count every line. */
START_TEST(test_syntax_accepted)
{
    struct cs_config *c = load_ok(write_conf("syntax.ini",
        "; comment\r\n# comment\r\n\r\n[server]\r\n  ; indented comment\r\n"
        "max_clients = 5 ; five\r\nrequirepass = a#b\r\n[namespace:x]\r\nupstream = http://h/{id}\r\n"));

    ck_assert_int_eq(c->max_clients, 5);
    ck_assert_str_eq(c->requirepass, "a#b");
    config_unref(c);
    expect_error(true, 7, "; c\r\n\r\n[server]\r\n\r\nmax_clients = 5\r\n; c\r\nmax_clients = 6\r\n",
                 "duplicate key 'max_clients'", "line 5");
}
END_TEST

/* ---- errors: FILE:LINE: message ---- */

START_TEST(test_err_unknown_section)
{
    expect_error(true, 3, "[server]\nmax_clients = 5\n[servers]\nlisten = 1.2.3.4:5\n", "unknown section", "servers");
    /* an empty unknown section is reported too */
    expect_error(true, 2, "; x\n[bogus]\n", "unknown section", "bogus");
    expect_error(true, 1, "[namespace]\n", "unknown section");
}
END_TEST

START_TEST(test_err_key_outside_section)
{
    expect_error(true, 2, "; top\nttl_s = 5\n[cache]\n", "outside any section");
}
END_TEST

START_TEST(test_err_unknown_key)
{
    expect_error(true, 3, "[server]\nlisten = 127.0.0.1:1\nmax_client = 5\n", "unknown key", "'max_client'", "server");
    expect_error(true, 2, "[redis]\nhostname = x\n", "unknown key", "'hostname'", "redis");
    expect_error(true, 4, "[redis]\nport = 1\n[cache]\nttl = 5\n", "unknown key", "'ttl'", "cache");
    /* [server] and [redis] keys do not belong in [cache] or a namespace */
    expect_error(true, 2, "[cache]\nlisten = 127.0.0.1:1\n", "unknown key", "'listen'", "cache");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nport = 1\n", "unknown key", "'port'",
                 "namespace");
    expect_error(true, 4, "[namespace:p]\nupstream = http://h/{id}\n; c\nttl = 1\n", "unknown key", "'ttl'");
    /* namespace keys do not belong in [cache] */
    expect_error(true, 2, "[cache]\nupstream = http://h/{id}\n", "unknown key", "'upstream'");
    expect_error(true, 2, "[server]\nformat = raw\n", "unknown key", "'format'");
}
END_TEST

START_TEST(test_err_bad_integer)
{
    expect_error(true, 2, "[server]\nmax_clients = ten\n", "max_clients", "ten");
    expect_error(true, 2, "[server]\nmax_clients = 10x\n", "max_clients", "10x");
    expect_error(true, 2, "[server]\nmax_clients = -5\n", "max_clients", "-5");
    expect_error(true, 2, "[server]\nmax_clients = 0x10\n", "max_clients", "0x10");
    expect_error(true, 2, "[server]\nmax_clients =\n", "max_clients");
    expect_error(true, 2, "[redis]\nport = 6379.5\n", "port", "6379.5");
    expect_error(true, 2, "[cache]\nttl_s = 99999999999999999999999\n", "ttl_s");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nttl_s = 1 0\n", "ttl_s", "1 0");
    expect_error(true, 2, "[server]\nunix_socket_mode = 0680\n", "unix_socket_mode", "octal");
}
END_TEST

/* early_refresh_beta is a decimal kept in thousandths, in [cache] and per
 * namespace; a value that is not a plain decimal of at most 3 places, or
 * past 100, is an error naming the key and the value; the breaker's keys
 * are whole numbers like the others, off by default. */
START_TEST(test_early_refresh_and_breaker_keys)
{
    struct cs_config *c = load_ok(write_conf("xfb.ini",
        "[cache]\nearly_refresh_beta = 1.5\nbreaker_failures = 5\n"
        "[namespace:a]\nupstream = http://h/{id}\nearly_refresh_beta = 0.025\nbreaker_open_ms = 250\n"
        "[namespace:b]\nupstream = http://h/{id}\nearly_refresh_beta = 100\nbreaker_failures = 0\n"));
    const struct cs_ns *a = ns_get(c, "a"), *b = ns_get(c, "b");

    ck_assert_int_eq(c->cache.v[CK_BETA], 1500);
    ck_assert_int_eq(a->c.v[CK_BETA], 25);
    ck_assert_int_eq(b->c.v[CK_BETA], 100000);
    ck_assert_int_eq(a->c.v[CK_BRK_FAILS], 5);
    ck_assert_int_eq(a->c.v[CK_BRK_OPEN], 250);
    ck_assert_int_eq(b->c.v[CK_BRK_FAILS], 0);
    ck_assert_int_eq(b->c.v[CK_BRK_OPEN], 5000);
    config_unref(c);
    c = load_ok(write_conf("xfb0.ini", "[server]\n"));
    ck_assert_int_eq(c->cache.v[CK_BETA], 0);
    ck_assert_int_eq(c->cache.v[CK_BRK_FAILS], 0);
    ck_assert_int_eq(c->cache.v[CK_BRK_OPEN], 5000);
    config_unref(c);
    expect_error(true, 2, "[cache]\nearly_refresh_beta = 100.001\n", "early_refresh_beta", "0 to 100", "100.001");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = 0.0001\n", "early_refresh_beta", "3 decimals", "0.0001");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = -1\n", "early_refresh_beta", "-1");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = .5\n", "early_refresh_beta", ".5");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = 1.\n", "early_refresh_beta", "1.");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = 1e2\n", "early_refresh_beta", "1e2");
    expect_error(true, 2, "[cache]\nearly_refresh_beta = one\n", "early_refresh_beta", "one");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nearly_refresh_beta = 1,5\n",
                 "early_refresh_beta", "1,5");
    expect_error(true, 2, "[cache]\nbreaker_failures = -1\n", "breaker_failures", "-1");
    expect_error(true, 2, "[cache]\nbreaker_open_ms = 0\n", "breaker_open_ms", "between 1 and 3600000", "0");
}
END_TEST

START_TEST(test_err_out_of_range)
{
    expect_error(true, 2, "[server]\nmax_clients = 0\n", "max_clients", "between 1 and 1000000", "0");
    expect_error(true, 2, "[server]\nmax_request_bytes = 63\n", "max_request_bytes", "63");
    expect_error(true, 2, "[redis]\nport = 65536\n", "port", "65535", "65536");
    expect_error(true, 2, "[cache]\nttl_jitter_pct = 101\n", "ttl_jitter_pct", "101");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nupstream_connections = 0\n",
                 "upstream_connections", "0");
    expect_error(true, 2, "[server]\nunix_socket_mode = 1777\n", "unix_socket_mode", "0777");
    /* the limits themselves are accepted */
    {
        struct cs_config *c = load_ok(write_conf("limits.ini",
            "[server]\nmax_clients = 1000000\nmax_request_bytes = 64\nunix_socket_mode = 0777\n"
            "[redis]\nport = 65535\n[cache]\nttl_jitter_pct = 100\n"));
        ck_assert_int_eq(c->max_clients, 1000000);
        ck_assert_int_eq(c->redis_port, 65535);
        config_unref(c);
    }
}
END_TEST

START_TEST(test_err_bad_enum)
{
    expect_error(true, 2, "[server]\nlog_level = verbose\n", "log_level", "verbose", "debug");
    expect_error(true, 2, "[server]\nlog_level = INFO\n", "log_level", "INFO");    /* lower case only */
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nformat = json\n", "format", "json", "hash",
                 "raw");
    expect_error(true, 2, "[namespace:p]\nformat = json\nupstream = http://h/{id}\n", "format", "json");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nid_slashes = maybe\n", "id_slashes", "maybe",
                 "yes or no");
}
END_TEST

START_TEST(test_err_bad_address)
{
    expect_error(true, 2, "[server]\nlisten = 127.0.0.1\n", "listen", "host:port");
    expect_error(true, 2, "[server]\nlisten = 127.0.0.1:0\n", "listen");
    expect_error(true, 2, "[server]\nadmin_listen = :7380\n", "admin_listen");
    expect_error(true, 2, "[server]\nadmin_listen = [::1]7380\n", "admin_listen");
    /* Each says what is wrong with the address, not only its form. */
    expect_error(true, 2, "[server]\nlisten = 127.0.0.1:73790\n", "listen", "out of range", "1-65535");
    expect_error(true, 2, "[server]\nlisten = 127.0.0.1:\n", "listen", "not a number");
    expect_error(true, 2, "[server]\nlisten = 127.0.0.1\n", "listen", "no ':port'");
}
END_TEST

/* What inih takes silently and bites at run time: quotes kept in the value
 * (a password that never matches), a port written into the Redis host (a
 * name that never resolves). */
START_TEST(test_err_value_mistakes)
{
    struct cs_config *c;

    expect_error(true, 2, "[server]\nrequirepass = \"s3cret\"\n", "requirepass", "quotes", "without them");
    expect_error(true, 2, "[redis]\npassword = 's3cret'\n", "password", "quotes");
    expect_error(true, 2, "[cache]\nttl_s = \"60\"\n", "ttl_s", "quotes");
    expect_error(true, 2, "[redis]\nhost = 127.0.0.1:6379\n", "host", "port = N");
    expect_error(true, 2, "[redis]\nhost = redis.internal:6380\n", "host", "port = N");
    /* Quotes inside a value, a bare IPv6 address: kept as they are. */
    c = load_ok(write_conf("value-ok.ini", "[server]\nrequirepass = a\"b'c\n[redis]\nhost = ::1\n"));
    ck_assert_str_eq(c->requirepass, "a\"b'c");
    ck_assert_str_eq(c->redis_host, "::1");
    config_unref(c);
}
END_TEST

/* An unknown key near a known one names it. */
START_TEST(test_err_did_you_mean)
{
    expect_error(true, 2, "[cache]\nttl = 5\n", "unknown key 'ttl'", "did you mean 'ttl_s'?");
    expect_error(true, 3, "[namespace:p]\nupstream = http://h/{id}\nformt = raw\n", "did you mean 'format'?");
    expect_error(true, 2, "[server]\nmax_client = 5\n", "did you mean 'max_clients'?");
    expect_error(true, 2, "[cache]\nmax_body = 5\n", "did you mean 'max_body_bytes'?");
    /* Nothing near: no guess. */
    expect_error(true, 2, "[redis]\nbananas = 5\n", "unknown key 'bananas'");
    {
        struct config_errors e;
        load_bad(write_conf("far.ini", "[redis]\nbananas = 5\n"), &e);
        ck_assert_msg(!strstr(e.msg[0], "did you mean"), "guessed for a far key: %s", e.msg[0]);
        config_errors_free(&e);
    }
}
END_TEST

/* cluster_announce: a host:port clients can reach, which CLUSTER NODES and
 * CLUSTER SLOTS write whole; empty = the listen address. */
START_TEST(test_cluster_announce)
{
    struct cs_config *c = load_ok(write_conf("ann.ini", "[server]\n"));

    ck_assert_str_eq(c->cluster_announce, "");
    config_unref(c);
    c = load_ok(write_conf("ann1.ini", "[server]\ncluster_announce = cache-1.svc.example:7000\n"));
    ck_assert_str_eq(c->cluster_announce, "cache-1.svc.example:7000");
    config_unref(c);
    c = load_ok(write_conf("ann2.ini", "[server]\ncluster_announce = [fe80::1%%eth0]:7000\n"));
    ck_assert_str_eq(c->cluster_announce, "[fe80::1%eth0]:7000");
    config_unref(c);
    expect_error(true, 2, "[server]\ncluster_announce = 0.0.0.0:7379\n", "cluster_announce", "wildcard");
    expect_error(true, 2, "[server]\ncluster_announce = [::]:7379\n", "cluster_announce", "wildcard");
    expect_error(true, 2, "[server]\ncluster_announce = 10.0.0.1\n", "cluster_announce", "host:port");
    expect_error(true, 2, "[server]\ncluster_announce = a b:7379\n", "cluster_announce", "A-Z");
    expect_error(true, 2, "[server]\ncluster_announce = a,b@c:7379\n", "cluster_announce", "A-Z");
}
END_TEST

/* The same key twice in one section: the error is at the second and names
 * the first line. Setting a [cache] key in a namespace is not a duplicate. */
START_TEST(test_err_duplicate_key)
{
    expect_error(true, 4, "[server]\nmax_clients = 5\n; again\nmax_clients = 5\n", "duplicate key 'max_clients'",
                 "line 2");
    expect_error(true, 6, "[cache]\nttl_s = 100\n[server]\nlisten = 127.0.0.1:1\n[cache]\nttl_s = 100\n",
                 "duplicate key 'ttl_s'", "line 2");
    expect_error(true, 4, "[namespace:p]\nupstream = http://h/{id}\nttl_s = 100\nttl_s = 200\n",
                 "duplicate key 'ttl_s'", "line 3");
    /* documented: also when the namespace header is repeated */
    expect_error(true, 6, "[namespace:p]\nupstream = http://h/{id}\n[namespace:q]\nupstream = http://h/{id}\n"
                 "[namespace:p]\nupstream = http://h2/{id}\n", "duplicate key 'upstream'", "line 2");
    {
        struct cs_config *c = load_ok(write_conf("override.ini",
            "[cache]\nttl_s = 100\n[namespace:p]\nupstream = http://h/{id}\nttl_s = 200\n"
            "[namespace:q]\nupstream = http://h/{id}\nttl_s = 300\n"));
        ck_assert_int_eq(ns_get(c, "p")->c.v[CK_TTL], 200);
        ck_assert_int_eq(ns_get(c, "q")->c.v[CK_TTL], 300);
        config_unref(c);
    }
}
END_TEST

/* negative_ttl_s >= ttl_s in [cache]: the line is the one that set the
 * offending value (docs: "points at the line that set the offending value
 * when the file sets it"). */
START_TEST(test_err_negative_ttl_cache)
{
    /* negative_ttl_s set too high: its line */
    expect_error(true, 3, "; c\n[cache]\nnegative_ttl_s = 300\n", "negative_ttl_s", "ttl_s", "300");
    expect_error(true, 4, "; c\n[cache]\nttl_s = 60\nnegative_ttl_s = 60\n", "negative_ttl_s", "ttl_s");
}
END_TEST

/* ... and when only ttl_s is set (below the default negative_ttl_s), the
 * ttl_s line, which is the only line of the file involved. */
START_TEST(test_err_negative_ttl_cache_ttl_only)
{
    expect_error(true, 4, "; comment\n; comment\n[cache]\nttl_s = 20\n", "negative_ttl_s (30)", "ttl_s (20)");
}
END_TEST

/* As a namespace override: the namespace's own line, for that namespace
 * only, and [cache] is not blamed for what a namespace did. */
START_TEST(test_err_negative_ttl_namespace)
{
    /* the namespace sets negative_ttl_s over the inherited ttl_s */
    expect_error(true, 5, "[cache]\nttl_s = 100\n[namespace:p]\nupstream = http://h/{id}\nnegative_ttl_s = 100\n",
                 "negative_ttl_s", "ttl_s", "p");
}
END_TEST

/* The namespace sets ttl_s below the inherited negative_ttl_s: the doc's own
 * example ("...:52: negative_ttl_s (30) must be less than ttl_s (20) for
 * product") points at the namespace's ttl_s line. */
START_TEST(test_err_negative_ttl_namespace_ttl_only)
{
    expect_error(true, 5, "; c\n[namespace:product]\nupstream = http://h/{id}\n; shorter\nttl_s = 20\n",
                 "negative_ttl_s (30) must be less than ttl_s (20) for product");
}
END_TEST

/* Both values are set in the file, one in [cache] and one in the namespace:
 * either line is a sensible place to point at, the [cache] header or the
 * namespace header are not. */
START_TEST(test_err_negative_ttl_namespace_mixed)
{
    const char *path = write_conf("mixed.ini",
        "[cache]\nnegative_ttl_s = 40\n[namespace:p]\nupstream = http://h/{id}\nttl_s = 40\n");
    struct config_errors e;
    const char *words[] = { "negative_ttl_s (40)", "ttl_s (40)", "p", NULL };

    load_bad(path, &e);
    ck_assert_msg(e.n == 1, "expected one message, got:%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 2, words) >= 0 || find_err(&e, path, 5, words) >= 0,
                  "expected line 2 or 5, got:%s", errs_dump(&e));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_err_lock_ttl)
{
    expect_error(true, 3, "[cache]\nupstream_timeout_ms = 1000\nlock_ttl_ms = 1000\n", "lock_ttl_ms",
                 "upstream_timeout_ms", "1000");
    expect_error(true, 4, "[cache]\nlock_ttl_ms = 9000\n[namespace:p]\nlock_ttl_ms = 500\nupstream = http://h/{id}\n",
                 "lock_ttl_ms (500)", "upstream_timeout_ms (2000)", "p");
    {
        /* lock_ttl_ms just above the timeout is fine */
        struct cs_config *c = load_ok(write_conf("lockok.ini", "[cache]\nupstream_timeout_ms = 1000\nlock_ttl_ms = 1001\n"));
        config_unref(c);
    }
}
END_TEST

/* Only upstream_timeout_ms is set, above the default lock_ttl_ms: its line. */
START_TEST(test_err_lock_ttl_timeout_only)
{
    expect_error(true, 3, "; c\n[cache]\nupstream_timeout_ms = 6000\n", "lock_ttl_ms (5000)",
                 "upstream_timeout_ms (6000)");
    expect_error(true, 4, "; c\n[namespace:p]\nupstream = http://h/{id}\nupstream_timeout_ms = 6000\n",
                 "lock_ttl_ms (5000)", "upstream_timeout_ms (6000)", "p");
}
END_TEST

/* A namespace without upstream: the line of its header. */
START_TEST(test_err_no_upstream)
{
    expect_error(true, 3, "[cache]\nttl_s = 100\n[namespace:orders]\nformat = raw\n[server]\n", "orders",
                 "no upstream");
    expect_error(true, 2, "; bare header\n[namespace:empty]\n", "empty", "no upstream");
}
END_TEST

START_TEST(test_err_bad_namespace_name)
{
    expect_error(true, 2, "; c\n[namespace:lock]\nupstream = http://h/{id}\n", "namespace name", "lock");
    expect_error(true, 1, "[namespace:]\nupstream = http://h/{id}\n", "namespace name");
    expect_error(true, 1, "[namespace:a b]\nupstream = http://h/{id}\n", "namespace name", "a b");
    expect_error(true, 1, "[namespace:a:b]\nupstream = http://h/{id}\n", "namespace name", "a:b");
}
END_TEST

/* A bad upstream template is reported at its line with what is wrong. */
START_TEST(test_err_bad_upstream)
{
    static const struct { const char *url; const char *word; } cases[] = {
        { "http://h/products/", "{id}" },
        { "http://h/products/{ID}", "{id}" },
        { "https//h/products/{id}", "https://" },
        { "ftp://h/products/{id}", "http://" },
        { "h/products/{id}", "http://" },
        { "http://h:99999/products/{id}", "port" },
        { "http://h:0/products/{id}", "port" },
        { "http://h:x/products/{id}", "port" },
        { "http://h:/products/{id}", "port" },
        { "http://h", "path" },
        { "http:///products/{id}", "host" },
        { "http://user@h/{id}", "host" },
        { "http://h/pro ducts/{id}", "space" },
        { "http://h/products/{id}#frag", "#" },
        { "http://[/{id}", "host" },            /* found by fuzz_config: once an empty host */
        { "http://[abc/{id}", "host" },
    };

    for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
        char content[256], fname[64];
        const char *path;
        struct config_errors e;
        const char *words[] = { cases[i].word, NULL };

        snprintf(content, sizeof(content), "; c\n[namespace:p]\nupstream = %s\n", cases[i].url);
        snprintf(fname, sizeof(fname), "url-%zu.ini", i);
        path = write_conf(fname, "%s", content);
        load_bad(path, &e);
        ck_assert_msg(find_err(&e, path, 3, words) >= 0, "upstream '%s': expected '%s:3: ...%s...', got:%s",
                      cases[i].url, path, cases[i].word, errs_dump(&e));
        config_errors_free(&e);
    }
}
END_TEST

/* A namespace whose upstream line is wrong has an upstream: the user gets
 * the one message about the template, not also "has no upstream". */
START_TEST(test_err_bad_upstream_reported_once)
{
    expect_error(true, 3, "; c\n[namespace:p]\nupstream = http://h/products\n", "{id}");
}
END_TEST

/* Lines over 197 bytes are an error at their line, not silently split; a
 * 197-byte line is fine. */
START_TEST(test_err_long_line)
{
    char val[400];
    const char *path;
    struct cs_config *c;

    /* "requirepass = " is 14 bytes */
    memset(val, 'x', sizeof(val));
    val[197 - 14] = '\0';
    path = write_conf("long-ok.ini", "[server]\nrequirepass = %s\n", val);
    c = load_ok(path);
    ck_assert_uint_eq(strlen(c->requirepass), 197 - 14);
    config_unref(c);

    val[197 - 14] = 'x';
    val[198 - 14] = '\0';
    path = write_conf("long1.ini", "[server]\nrequirepass = %s\n", val);
    {
        struct config_errors e;
        const char *words[] = { "line too long", "198", NULL };
        load_bad(path, &e);
        ck_assert_msg(find_err(&e, path, 2, words) >= 0, "got:%s", errs_dump(&e));
        ck_assert_int_eq(e.n, 1);
        config_errors_free(&e);
    }
    val[198 - 14] = 'x';
    val[sizeof(val) - 1] = '\0';
    {
        /* a long comment line is an error too, and later lines keep their numbers */
        char content[1024];
        snprintf(content, sizeof(content), "[server]\n;%s\nmax_clients = 0\n", val);
        expect_error(false, 2, content, "line too long");
        expect_error(false, 3, content, "max_clients");
    }
}
END_TEST

START_TEST(test_err_continuation_line)
{
    expect_error(true, 3, "[server]\nrequirepass = a\n  b\n", "continuation");
    expect_error(true, 3, "[server]\nmax_clients = 5\n\tlisten = 127.0.0.1:1\n", "whitespace");
}
END_TEST

START_TEST(test_err_syntax)
{
    expect_error(true, 3, "[server]\nmax_clients = 5\njust some words\n", "syntax");
    expect_error(false, 2, "; c\n[server\nmax_clients = 5\n", "syntax");
}
END_TEST

/* Every problem of a file is reported, in file order, not only the first. */
START_TEST(test_err_all_reported)
{
    const char *path = write_conf("many.ini",
        "[server]\nmax_clients = 0\nlog_level = loud\n[redis]\nport = x\n[nope]\n[namespace:p]\nformat = raw\n");
    struct config_errors e;

    load_bad(path, &e);
    ck_assert_msg(e.n == 5, "expected 5 messages, got:%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 2, (const char *[]){ "max_clients", NULL }) == 0, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 3, (const char *[]){ "log_level", NULL }) == 1, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 5, (const char *[]){ "port", NULL }) == 2, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 6, (const char *[]){ "nope", NULL }) == 3, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 7, (const char *[]){ "no upstream", NULL }) == 4, "%s", errs_dump(&e));
    config_errors_free(&e);
}
END_TEST

/* A file that cannot be opened is an error naming the file and the reason. */
START_TEST(test_err_missing_file)
{
    char path[512];
    struct config_errors e;
    struct cs_config *c;

    snprintf(path, sizeof(path), "%s/does-not-exist.ini", tmpdir);
    c = config_load(path, &e);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(e.n, 1);
    ck_assert_msg(strncmp(e.msg[0], path, strlen(path)) == 0 && e.msg[0][strlen(path)] == ':', "%s", e.msg[0]);
    ck_assert_msg(strstr(e.msg[0], "cannot open") && strstr(e.msg[0], strerror(ENOENT)), "%s", e.msg[0]);
    config_errors_free(&e);
    ck_assert_int_eq(e.n, 0);
}
END_TEST

/* Writes LEN raw bytes (NULs included) as NAME in the temp dir. */
static const char *write_raw(const char *name, const char *data, size_t len)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* PATH is refused with exactly one message, "PATH:LINE: ..." holding WORD. */
static void expect_only(const char *path, int line, const char *word)
{
    struct config_errors e;

    load_bad(path, &e);
    ck_assert_msg(e.n == 1 && find_err(&e, path, line, (const char *[]){ word, NULL }) == 0,
                  "expected only '%s:%d: ...%s...'; got:%s", path, line, word, errs_dump(&e));
    config_errors_free(&e);
}

/* What the whole file is: a directory or an empty file is not a
 * configuration (line 0 = the file as a whole, as for "cannot open"). */
START_TEST(test_err_file_level)
{
    char msg[300];

    snprintf(msg, sizeof(msg), "cannot read: %s", strerror(EISDIR));
    expect_only(tmpdir, 0, msg);
    expect_only(write_raw("zero.ini", "", 0), 0, "empty");
    expect_only(write_conf("comments.ini", "; only\n# comments\n\n"), 0, "empty");
}
END_TEST

/* Numbers: too large is out of range (not "not a number"); a mode with an
 * 8 or 9 is not octal, said in plain words. */
START_TEST(test_err_number_words)
{
    const char *path = write_conf("bignum.ini", "[cache]\nttl_s = 99999999999999999999\n");
    struct config_errors e;

    expect_error(true, 2, "[cache]\nttl_s = 99999999999999999999\n", "'ttl_s' must be between 1 and 315360000",
                 "99999999999999999999");
    load_bad(path, &e);
    ck_assert_msg(!strstr(e.msg[0], "whole number"), "%s", e.msg[0]);
    config_errors_free(&e);
    expect_error(true, 2, "[server]\nmax_clients = 18446744073709551616\n", "between 1 and 1000000");
    expect_error(true, 2, "[server]\nunix_socket_mode = 0999\n", "'unix_socket_mode' must be an octal mode",
                 "digits 0-7", "0999");
    expect_error(true, 2, "[server]\nunix_socket_mode = 77777777777777777777777\n", "up to 0777");
}
END_TEST

/* Lines that are neither header, key = value nor comment: each one is
 * reported at its own line, in file order, and nothing else is lost. */
START_TEST(test_err_junk_lines)
{
    const char *path = write_conf("junk.ini", "[server]\njunk\nmax_clients = 0\nmore junk\n[cache]\nttl_s: 5\n");
    struct config_errors e;

    load_bad(path, &e);
    ck_assert_msg(e.n == 4, "expected 4 messages, got:%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 2, (const char *[]){ "syntax", "'junk'", NULL }) == 0, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 3, (const char *[]){ "max_clients", NULL }) == 1, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 4, (const char *[]){ "syntax", "'more junk'", NULL }) == 2, "%s", errs_dump(&e));
    ck_assert_msg(find_err(&e, path, 6, (const char *[]){ "syntax", NULL }) == 3, "%s", errs_dump(&e));
    config_errors_free(&e);
    expect_error(true, 1, "junk\n[server]\n", "syntax", "'junk'");
    expect_error(true, 2, "[server]\njunk", "syntax");          /* no final newline */
    expect_error(true, 1, "[server] max_clients = 5\n", "syntax", "after the section header");
}
END_TEST

/* Bytes inih would cut a value at or pass on: a NUL, control characters,
 * a UTF-8 byte order mark (refused, not skipped: see docs). */
START_TEST(test_err_bad_bytes)
{
    static const char nul[] = "[server]\nrequirepass = ab\0cd\n[namespace:p]\nupstream = http://h/{id}\n";
    static const char bom[] = "\xef\xbb\xbf[server]\nmax_clients = 5\n[namespace:p]\nupstream = http://h/{id}\n";

    expect_only(write_raw("nul.ini", nul, sizeof(nul) - 1), 2, "NUL byte at column 17");
    expect_error(true, 2, "[server]\nrequirepass = a\x01z\n", "control character 0x01");
    expect_error(true, 2, "[server]\nrequirepass = a\rz\n", "control character 0x0d");
    expect_only(write_raw("bom.ini", bom, sizeof(bom) - 1), 1, "byte order mark");
    expect_only(write_raw("bom-only.ini", bom, 3), 1, "byte order mark");
    /* UTF-8 inside a value is fine */
    {
        struct cs_config *c = load_ok(write_conf("utf8.ini", "[server]\nrequirepass = p\xc3\xa4ss\n"));
        ck_assert_str_eq(c->requirepass, "p\xc3\xa4ss");
        config_unref(c);
    }
}
END_TEST

/* ---- refcount and reload helpers ---- */

START_TEST(test_ref_unref)
{
    struct cs_config *c = load_ok(src_path("conf/cachasided.ini"));

    ck_assert_ptr_eq(config_ref(c), c);
    ck_assert_int_eq(c->refcnt, 2);
    config_unref(c);
    ck_assert_int_eq(c->refcnt, 1);
    {
        char *text = slurp(src_path("conf/cachasided.ini"));
        ck_assert_str_eq(c->key_prefix, ini_value(text, "redis", "key_prefix"));
        free(text);
    }
    config_unref(c);
    config_unref(NULL);
}
END_TEST

/* Runs config_keep_restart with stderr captured; returns what it logged. */
static char *keep_restart_output(const struct cs_config *a, struct cs_config *b)
{
    char path[512];
    int saved = dup(2), fd;
    char *out;

    snprintf(path, sizeof(path), "%s/keep-%d.log", tmpdir, (int)getpid());
    fflush(stderr);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    config_keep_restart(a, b);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    out = slurp(path);
    unlink(path);
    return out;
}

/* A reload that changes a restart-only key says so; reloadable keys do not. */
START_TEST(test_warn_restart)
{
    struct cs_config *a = load_ok(write_conf("r1.ini", "[server]\nlisten = 127.0.0.1:7001\nmax_clients = 5\n"));
    struct cs_config *b = load_ok(write_conf("r2.ini", "[server]\nlisten = 127.0.0.1:7002\nmax_clients = 6\n"
                                                        "[redis]\nport = 6380\n"));
    struct cs_config *a2 = load_ok(write_conf("r3.ini", "[server]\nlisten = 127.0.0.1:7001\nmax_clients = 9\n"
                                                         "requirepass = x\n[cache]\nttl_s = 9\nnegative_ttl_s = 1\n"));
    char *out = keep_restart_output(a, a2);

    ck_assert_msg(out[0] == '\0', "only reloadable keys changed, yet: '%s'", out);
    ck_assert(!config_restart_pending());
    free(out);
    out = keep_restart_output(a, b);
    ck_assert_msg(strstr(out, "listen") && strstr(out, "restart"), "no listen warning in '%s'", out);
    ck_assert_msg(strstr(out, "port"), "no [redis] port warning in '%s'", out);
    ck_assert_msg(!strstr(out, "max_clients"), "max_clients is reloadable: '%s'", out);
    ck_assert(config_restart_pending());
    free(out);
    /* Until a restart, every later reload says a restart is still pending. */
    out = keep_restart_output(a, a2);
    ck_assert_msg(strstr(out, "still pending") && strstr(out, "listen") && strstr(out, "port"),
                  "no pending warning in '%s'", out);
    ck_assert_msg(!strstr(out, "max_clients"), "max_clients is reloadable: '%s'", out);
    ck_assert(config_restart_pending());
    free(out);
    config_unref(a);
    config_unref(b);
    config_unref(a2);
}
END_TEST

/* A reload keeps the running value of every restart-only key (all of
 * [redis], the listener addresses), names each that changed, and takes
 * the reloadable ones from the new file. */
START_TEST(test_keep_restart)
{
    struct cs_config *a = load_ok(write_conf("k1.ini", "[server]\nlisten = 127.0.0.1:7001\nunix_socket_mode = 0600\n"
                                                        "max_clients = 5\n[redis]\nport = 6380\nkey_prefix = a:\n"
                                                        "password = one\n[cache]\nttl_s = 50\n"));
    struct cs_config *b = load_ok(write_conf("k2.ini", "[server]\nlisten = 127.0.0.1:7002\nunix_socket_mode = 0666\n"
                                                        "max_clients = 6\n[redis]\nport = 6381\nkey_prefix = b:\n"
                                                        "password = two\ndb = 3\ncommand_timeout_ms = 9\n"
                                                        "[cache]\nttl_s = 60\n"));
    static const char *const changed[] = { "listen", "unix_socket_mode", "port", "key_prefix", "password", "db",
                                           "command_timeout_ms" };
    char *out = keep_restart_output(a, b);

    for (size_t i = 0; i < CS_ARRAY_LEN(changed); i++) {
        char want[100];
        snprintf(want, sizeof(want), "] %s changed", changed[i]);
        ck_assert_msg(strstr(out, want), "no warning for %s in '%s'", changed[i], out);
    }
    ck_assert_msg(!strstr(out, "max_clients") && !strstr(out, "ttl_s"), "reloadable keys warned: '%s'", out);
    ck_assert_str_eq(b->listen, "127.0.0.1:7001");
    ck_assert_int_eq(b->unix_socket_mode, 0600);
    ck_assert_int_eq(b->redis_port, 6380);
    ck_assert_str_eq(b->key_prefix, "a:");
    ck_assert_str_eq(b->redis_password, "one");
    ck_assert_int_eq(b->redis_db, 0);
    ck_assert_int_eq(b->command_timeout_ms, 500);
    ck_assert_int_eq(b->max_clients, 6);
    ck_assert_int_eq(b->cache.v[CK_TTL], 60);
    free(out);
    config_unref(a);
    config_unref(b);
}
END_TEST

START_TEST(test_parse_addr)
{
    char host[64];
    int port = 0;

    ck_assert_int_eq(config_parse_addr("127.0.0.1:7379", host, sizeof(host), &port), CS_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 7379);
    ck_assert_int_eq(config_parse_addr("[::1]:80", host, sizeof(host), &port), CS_OK);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 80);
    ck_assert_int_eq(config_parse_addr("localhost:65535", host, sizeof(host), &port), CS_OK);
    ck_assert_str_eq(host, "localhost");
    ck_assert_int_eq(config_parse_addr("localhost", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr(":80", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("h:", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("h:0", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("h:65536", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("h:80x", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("[::1]", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("[::1:80", host, sizeof(host), &port), CS_ERR);
    ck_assert_int_eq(config_parse_addr("a-very-long-host-name:80", host, 8, &port), CS_ERR);
}
END_TEST

/* ---- the key table and the documentation ---- */

/* config_key_list lists every key once: each one the example file sets is in
 * it, and the loader knows each listed key in its section. */
START_TEST(test_key_list_complete)
{
    const struct config_key_info *keys;
    int n = config_key_list(&keys);
    char *text = slurp(src_path("conf/cachasided.ini"));
    char cur[128] = "";
    int found = 0;

    ck_assert_int_ge(n, 30);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(keys[i].section);
        ck_assert_ptr_nonnull(keys[i].key);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(keys[i].section, keys[j].section) != 0 || strcmp(keys[i].key, keys[j].key) != 0,
                          "[%s] %s listed twice", keys[i].section, keys[i].key);
    }
    /* every "key =" line of the example is a listed key of its section */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t kl = strspn(line, "abcdefghijklmnopqrstuvwxyz_");
        char key[64], sec[128];
        bool listed = false;

        if (line[0] == '[') {
            snprintf(cur, sizeof(cur), "%.*s", (int)strcspn(line + 1, "]:"), line + 1);
            continue;
        }
        if (kl == 0 || kl >= sizeof(key) || !strchr(" =", line[kl]))
            continue;
        snprintf(key, sizeof(key), "%.*s", (int)kl, line);
        snprintf(sec, sizeof(sec), "%s", cur);
        for (int i = 0; i < n; i++)
            if (strcmp(keys[i].key, key) == 0 &&
                (strcmp(keys[i].section, sec) == 0 ||
                 (strcmp(sec, "namespace") == 0 && strcmp(keys[i].section, "cache") == 0)))
                listed = true;
        ck_assert_msg(listed, "the example sets [%s] %s, config_key_list does not have it", sec, key);
        found++;
    }
    ck_assert_int_ge(found, n);
    free(text);

    /* the loader accepts each listed key in its section: a junk value gives a
     * value error, never "unknown key" */
    for (int i = 0; i < n; i++) {
        char fname[128];
        const char *path;
        struct config_errors e;
        struct cs_config *c;
        bool ns = strcmp(keys[i].section, "namespace") == 0;

        snprintf(fname, sizeof(fname), "key-%d.ini", i);
        path = write_conf(fname, "[%s%s]\n%s = \001junk\n", keys[i].section, ns ? ":k" : "", keys[i].key);
        c = config_load(path, &e);
        config_unref(c);
        for (int m = 0; m < e.n; m++)
            ck_assert_msg(!strstr(e.msg[m], "unknown"), "[%s] %s: %s", keys[i].section, keys[i].key, e.msg[m]);
        config_errors_free(&e);
    }
}
END_TEST

/* Whether WORD occurs in TEXT with no identifier character ([A-Za-z0-9_])
 * right before or after it, like grep -w. */
static bool has_word(const char *text, const char *word)
{
    size_t wl = strlen(word);

    for (const char *p = text; (p = strstr(p, word)) != NULL; p++) {
        bool before = p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = isalnum((unsigned char)p[wl]) || p[wl] == '_';
        if (!before && !after)
            return true;
    }
    return false;
}

/* Whether the ini text has a line "KEY =" (at line start) inside a section
 * named SECTION, where "namespace" means any [namespace:NAME]. */
static bool ini_sets(const char *text, const char *section, const char *key)
{
    size_t kl = strlen(key), sl = strlen(section);
    bool in = false;

    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (p[0] == '[')
            in = strncmp(p + 1, section, sl) == 0 && (p[1 + sl] == ']' || p[1 + sl] == ':');
        else if (in && len > kl && strncmp(p, key, kl) == 0) {
            const char *q = p + kl;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=')
                return true;
        }
        p += len + (eol ? 1 : 0);
    }
    return false;
}

/* Every key of the table is in the example configuration (in its section),
 * in the man page cachasided.ini(5) and in docs/configuration.md. */
START_TEST(test_keys_documented)
{
    const struct config_key_info *keys;
    int n = config_key_list(&keys);
    char *ini = slurp(src_path("conf/cachasided.ini"));
    char *man = slurp(src_path("man/cachasided.ini.5"));
    char *md = slurp(src_path("docs/configuration.md"));
    char missing[4096] = "";
    size_t off = 0;

    for (int i = 0; i < n; i++) {
        const char *s = keys[i].section, *k = keys[i].key;

        if (!ini_sets(ini, s, k))
            off += (size_t)snprintf(missing + off, sizeof(missing) - off, "\n  conf/cachasided.ini: no '%s =' in [%s%s]",
                                    k, s, strcmp(s, "namespace") == 0 ? ":NAME" : "");
        if (!has_word(man, k))
            off += (size_t)snprintf(missing + off, sizeof(missing) - off, "\n  man/cachasided.ini.5: %s.%s", s, k);
        if (!has_word(md, k))
            off += (size_t)snprintf(missing + off, sizeof(missing) - off, "\n  docs/configuration.md: %s.%s", s, k);
        ck_assert_uint_lt(off, sizeof(missing) - 200);
    }
    ck_assert_msg(off == 0, "undocumented keys:%s", missing);
    free(ini);
    free(man);
    free(md);
}
END_TEST

/* The word matcher itself: a key that is only part of a longer name does
 * not count as documented. */
START_TEST(test_doc_matchers)
{
    ck_assert(has_word("set `ttl_s` here", "ttl_s"));
    ck_assert(has_word(".B ttl_s\n", "ttl_s"));
    ck_assert(!has_word("negative_ttl_s only", "ttl_s"));
    ck_assert(!has_word("ttl_s_max only", "ttl_s"));
    ck_assert(ini_sets("[cache]\nttl_s = 1\n", "cache", "ttl_s"));
    ck_assert(!ini_sets("[cache]\nnegative_ttl_s = 1\n", "cache", "ttl_s"));
    ck_assert(!ini_sets("[server]\nttl_s = 1\n", "cache", "ttl_s"));
    ck_assert(!ini_sets("[cache]\n; ttl_s = 1\n", "cache", "ttl_s"));
    ck_assert(ini_sets("[namespace:x]\nupstream = u\n", "namespace", "upstream"));
    ck_assert(!ini_sets("[namespaces]\nupstream = u\n", "namespace", "upstream"));
}
END_TEST

/* ---- cachasided -t ---- */

static const char *daemon_bin(void)
{
    const char *b = getenv("CACHASIDED_BIN");

    if (b && *b)
        return b;
    if (access("src/cachasided", X_OK) == 0)
        return "src/cachasided";
    return "../src/cachasided";
}

/* Runs "cachasided ARGS" with stdout and stderr captured separately; returns
 * the exit status. */
static int run_daemon(const char *args, char **out, char **err)
{
    char cmd[2048], outp[512], errp[512];
    int st;

    ck_assert_msg(access(daemon_bin(), X_OK) == 0, "daemon binary %s not found (set CACHASIDED_BIN)", daemon_bin());
    snprintf(outp, sizeof(outp), "%s/out-%d", tmpdir, (int)getpid());
    snprintf(errp, sizeof(errp), "%s/err-%d", tmpdir, (int)getpid());
    snprintf(cmd, sizeof(cmd), "'%s' %s >'%s' 2>'%s' </dev/null", daemon_bin(), args, outp, errp);
    st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "'%s' did not exit normally (status %d)", cmd, st);
    *out = slurp(outp);
    *err = slurp(errp);
    return WEXITSTATUS(st);
}

/* -t on a valid file: exit 0, nothing on stderr. */
START_TEST(test_cli_check_good)
{
    char args[1024], *out, *err;
    int rc;

    snprintf(args, sizeof(args), "-t -c '%s'", write_conf("good.ini", "[server]\nlisten = 127.0.0.1:7001\n"
                                                           "[namespace:p]\nupstream = http://h/{id}\n"));
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, err);
    ck_assert_msg(err[0] == '\0', "stderr: %s", err);
    free(out);
    free(err);

    snprintf(args, sizeof(args), "-t -c '%s'", src_path("conf/cachasided.ini"));
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 0, "the example: exit %d, stderr: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

/* -t on an invalid file: exit 1, "FILE:LINE: message" on stderr for each
 * problem; the daemon does not start. */
START_TEST(test_cli_check_bad)
{
    char args[1024], want1[600], want2[600], *out, *err;
    const char *path = write_conf("bad.ini", "[server]\nlisten = 127.0.0.1:7001\nmax_clients = 0\n"
                                             "[namespace:p]\nformat = raw\n");
    int rc;

    snprintf(args, sizeof(args), "-t -c '%s'", path);
    snprintf(want1, sizeof(want1), "%s:3: ", path);
    snprintf(want2, sizeof(want2), "%s:4: ", path);
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 1, "exit %d", rc);
    ck_assert_msg(strstr(err, want1) && strstr(err, "max_clients"), "stderr lacks '%s...max_clients': %s", want1, err);
    ck_assert_msg(strstr(err, want2) && strstr(err, "upstream"), "stderr lacks '%s...upstream': %s", want2, err);
    ck_assert_msg(!strstr(out, want1), "errors belong on stderr, stdout: %s", out);
    free(out);
    free(err);

    /* a directory is not a valid configuration */
    snprintf(args, sizeof(args), "-t -c '%s'", tmpdir);
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 1, "directory: exit %d, stdout: %s", rc, out);
    snprintf(want1, sizeof(want1), "%s:0: cannot read", tmpdir);
    ck_assert_msg(strstr(err, want1), "stderr lacks '%s': %s", want1, err);
    free(out);
    free(err);

    snprintf(args, sizeof(args), "-t -c '%s/nope.ini'", tmpdir);
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 1, "missing file: exit %d", rc);
    ck_assert_msg(strstr(err, "nope.ini:"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

/* ---- [redis] mode and the keys each mode needs ---- */

START_TEST(test_redis_modes_ok)
{
    struct cs_config *c = load_ok(write_conf("cluster-ok.ini", "[redis]\nmode = cluster\n"
                                             "nodes = 127.0.0.1:7000, 127.0.0.1:7001,[::1]:7002\ncluster_refresh_s = 5\n"));
    struct cs_addr a[4];

    ck_assert_int_eq(c->redis_mode, RM_CLUSTER);
    ck_assert_int_eq(c->cluster_refresh_s, 5);
    ck_assert_int_eq(config_addr_list(c->redis_nodes, a, 4), 3);
    ck_assert_str_eq(a[1].host, "127.0.0.1");
    ck_assert_int_eq(a[1].port, 7001);
    ck_assert_str_eq(a[2].host, "::1");
    config_unref(c);
    c = load_ok(write_conf("sentinel-ok.ini", "[redis]\nmode = sentinel\nsentinels = s1:26379,s2:26379\n"
                                              "master_name = mymaster\n"));
    ck_assert_int_eq(c->redis_mode, RM_SENTINEL);
    ck_assert_str_eq(c->redis_master_name, "mymaster");
    config_unref(c);
    c = load_ok(write_conf("standalone-ok.ini", "[redis]\nhost = 127.0.0.1\n"));
    ck_assert_int_eq(c->redis_mode, RM_STANDALONE);
    config_unref(c);
}
END_TEST

START_TEST(test_redis_modes_bad)
{
    expect_error(true, 2, "[redis]\nmode = shard\n", "'mode' must be standalone, cluster or sentinel");
    expect_error(true, 2, "[redis]\nmode = cluster\n", "mode = cluster needs 'nodes'");
    expect_error(true, 3, "[redis]\nmode = cluster\nnodes = a:1, b\n", "'nodes' must be a list of host:port");
    expect_error(true, 3, "[redis]\nmode = cluster\ndb = 2\nnodes = a:1\n", "'db' must be 0");
    expect_error(false, 2, "[redis]\nmode = sentinel\nsentinels = a:26379\n", "needs 'master_name'");
    expect_error(true, 2, "[redis]\nmode = sentinel\nmaster_name = m\n", "needs 'sentinels'");
    expect_error(true, 2, "[redis]\nsentinels = a:1 b:2\n", "'sentinels' must be a list");
}
END_TEST

START_TEST(test_cli_check_modes)
{
    char args[1024], *out, *err;
    const char *path = write_conf("cl-warn.ini", "[redis]\nmode = cluster\nnodes = 127.0.0.1:7000\nhost = r1\n"
                                  "port = 6379\nsentinels =\n");
    int rc;

    snprintf(args, sizeof(args), "-t -c '%s'", path);
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, ":4: [redis] host is for mode = standalone; ignored in mode = cluster"),
                  "no warning about host: %s", err);
    /* Keys left at their defaults, as the example file has them, are fine. */
    ck_assert_msg(!strstr(err, "port is for") && !strstr(err, "sentinels is for"), "warned about defaults: %s", err);
    free(out);
    free(err);
    /* The shipped example (standalone) starts without a mode warning. */
    snprintf(args, sizeof(args), "-t -c '%s'", src_path("conf/cachasided.ini"));
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 0 && !strstr(err, "ignored in mode"), "exit %d: %s", rc, err);
    free(out);
    free(err);
    path = write_conf("cl-bad.ini", "[redis]\nmode = sentinel\nsentinels = 127.0.0.1:26379\n");
    snprintf(args, sizeof(args), "-t -c '%s'", path);
    rc = run_daemon(args, &out, &err);
    ck_assert_msg(rc == 1 && strstr(err, ":2: mode = sentinel needs 'master_name'"), "exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

/* ---- log.c's rate limit (linked here with the config module) ---- */

/* Runs FN with stderr captured; returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
    char path[512];
    int saved = dup(2), fd;
    char *out;

    snprintf(path, sizeof(path), "%s/stderr-%d.log", tmpdir, (int)getpid());
    fflush(stderr);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    out = slurp(path);
    unlink(path);
    return out;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void flood(void)
{
    for (int i = 0; i < 1000; i++) {
        log_limited(LOG_ERROR, "flood A %d", i);
        if (i % 10 == 0)
            log_limited(LOG_WARNING, "flood B %d", i);
    }
    log_repeat_flush();         /* within the window: nothing yet */
}

static void flood_after_window(void)
{
    log_repeat_flush();
}

/* One line per kind of message within the window, whatever its arguments;
 * once the window is over, the number held back and the last of them. */
START_TEST(test_log_limited)
{
    char *out = capture_stderr(flood);

    ck_assert_msg(count_lines(out, "flood A") == 1 && strstr(out, "error flood A 0\n"), "%s", out);
    ck_assert_msg(count_lines(out, "flood B") == 1 && strstr(out, "warning flood B 0\n"), "%s", out);
    free(out);
    sleep(LOG_REPEAT_MS / 1000 + 1);
    out = capture_stderr(flood_after_window);
    ck_assert_msg(strstr(out, "error flood A 999 (repeated 999 times in "), "%s", out);
    ck_assert_msg(strstr(out, "warning flood B 990 (repeated 99 times in "), "%s", out);
    ck_assert_msg(count_lines(out, "\n") == 2, "%s", out);
    free(out);
    /* a new window starts with a line of its own */
    out = capture_stderr(flood);
    ck_assert_msg(count_lines(out, "flood A") == 1, "%s", out);
    free(out);
}
END_TEST

/* ---- main ---- */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("load");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_example_loads);
    tcase_add_test(tc, test_example_upstream_parsed);
    tcase_add_test(tc, test_all_keys_set);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_cache_after_namespace);
    tcase_add_test(tc, test_syntax_accepted);
    tcase_add_test(tc, test_ref_unref);
    tcase_add_test(tc, test_warn_restart);
    tcase_add_test(tc, test_keep_restart);
    tcase_add_test(tc, test_log_limited);
    tcase_add_test(tc, test_parse_addr);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_err_unknown_section);
    tcase_add_test(tc, test_err_key_outside_section);
    tcase_add_test(tc, test_err_unknown_key);
    tcase_add_test(tc, test_err_bad_integer);
    tcase_add_test(tc, test_err_out_of_range);
    tcase_add_test(tc, test_early_refresh_and_breaker_keys);
    tcase_add_test(tc, test_err_bad_enum);
    tcase_add_test(tc, test_err_bad_address);
    tcase_add_test(tc, test_err_value_mistakes);
    tcase_add_test(tc, test_err_did_you_mean);
    tcase_add_test(tc, test_cluster_announce);
    tcase_add_test(tc, test_err_duplicate_key);
    tcase_add_test(tc, test_err_negative_ttl_cache);
    tcase_add_test(tc, test_err_negative_ttl_cache_ttl_only);
    tcase_add_test(tc, test_err_negative_ttl_namespace);
    tcase_add_test(tc, test_err_negative_ttl_namespace_ttl_only);
    tcase_add_test(tc, test_err_negative_ttl_namespace_mixed);
    tcase_add_test(tc, test_err_lock_ttl);
    tcase_add_test(tc, test_err_lock_ttl_timeout_only);
    tcase_add_test(tc, test_err_no_upstream);
    tcase_add_test(tc, test_err_bad_namespace_name);
    tcase_add_test(tc, test_err_bad_upstream);
    tcase_add_test(tc, test_https_namespace);
    tcase_add_test(tc, test_err_bad_upstream_reported_once);
    tcase_add_test(tc, test_err_long_line);
    tcase_add_test(tc, test_err_continuation_line);
    tcase_add_test(tc, test_err_syntax);
    tcase_add_test(tc, test_err_all_reported);
    tcase_add_test(tc, test_err_missing_file);
    tcase_add_test(tc, test_err_file_level);
    tcase_add_test(tc, test_err_number_words);
    tcase_add_test(tc, test_err_junk_lines);
    tcase_add_test(tc, test_err_bad_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("docs");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_key_list_complete);
    tcase_add_test(tc, test_keys_documented);
    tcase_add_test(tc, test_doc_matchers);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cli_check_good);
    tcase_add_test(tc, test_cli_check_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis modes");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_redis_modes_ok);
    tcase_add_test(tc, test_redis_modes_bad);
    tcase_add_test(tc, test_cli_check_modes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    SRunner *sr;
    int failed;

    snprintf(tmpdir, sizeof(tmpdir), "%s/cachasided-unit-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (!getenv("CACHASIDED_KEEP_TMP"))
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
