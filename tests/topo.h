/* SPDX-License-Identifier: BSD-3-Clause */
/* topo.h - helpers the Sentinel and Cluster tests share: raw commands to a
 * Redis (or a sentinel, or the daemon) and reading STATS. Static: each
 * test program includes it once. */
#ifndef CACHASIDED_TESTS_TOPO_H
#define CACHASIDED_TESTS_TOPO_H

#include "harness.h"

#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One command (NULL-terminated words) on a fresh connection to PORT; its
 * raw reply (caller frees), NULL when there is none in TIMEOUT_MS. */
static char *t_cmd(int port, int timeout_ms, ...)
{
    const char *argv[64];
    int argc = 0, fd;
    const char *a;
    char *raw = NULL;
    va_list ap;

    va_start(ap, timeout_ms);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 64)
        argv[argc++] = a;
    va_end(ap);
    fd = h_try_connect(port, 2000);
    if (fd < 0)
        return NULL;
    if (h_send_cmd(fd, argc, argv) == 0)
        raw = h_read_reply(fd, timeout_ms);
    h_close(fd);
    return raw;
}

/* The integer reply of a command, or -1. */
static long long t_int(int port, ...)
{
    const char *argv[16];
    int argc = 0, fd;
    const char *a;
    char *raw = NULL;
    long long v = -1;
    va_list ap;

    va_start(ap, port);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 16)
        argv[argc++] = a;
    va_end(ap);
    fd = h_try_connect(port, 2000);
    if (fd < 0)
        return -1;
    if (h_send_cmd(fd, argc, argv) == 0)
        raw = h_read_reply(fd, H_DEFAULT);
    h_close(fd);
    if (raw && raw[0] == ':')
        v = strtoll(raw + 1, NULL, 10);
    free(raw);
    return v;
}

/* Keys on the server at PORT, leaving out the hash in which every daemon
 * writes its heartbeat every 2 s (cache:daemons, docs/admin.md): a count of
 * what the cache holds. SCAN MATCH looks at this node's own keys only, so
 * it works on every node of a cluster. -1 when PORT does not answer. */
static long long t_dbsize(int port)
{
    long long n = t_int(port, "DBSIZE", NULL);
    char *raw = t_cmd(port, 5000, "SCAN", "0", "MATCH", "cache:daemons", "COUNT", "1000000000", NULL);

    if (n >= 0 && raw && strstr(raw, "\r\ncache:daemons\r\n"))
        n--;
    free(raw);
    return n;
}

/* The value of "name:value" in a STATS (or INFO) text, copied into out;
 * false when absent. */
static bool t_field(const char *text, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t len = strcspn(p + nl + 1, "\r\n");
            snprintf(out, outsz, "%.*s", (int)len, p + nl + 1);
            return true;
        }
    }
    return false;
}

/* A field of the daemon's STATS (or a Redis's INFO SECTION when section
 * is not NULL); "" when absent or unreachable. */
static const char *t_stat(int port, const char *section, const char *name)
{
    static char val[4][1024];
    static int turn;
    char *raw = section ? t_cmd(port, H_DEFAULT, "INFO", section, NULL) : t_cmd(port, H_DEFAULT, "STATS", NULL);
    char *v = val[turn++ % 4];

    v[0] = '\0';
    if (raw)
        t_field(raw, name, v, sizeof(val[0]));
    free(raw);
    return v;
}

static long long t_stat_int(int port, const char *name)
{
    const char *v = t_stat(port, NULL, name);

    ck_assert_msg(v[0], "no '%s' in STATS of the daemon on %d", name, port);
    return strtoll(v, NULL, 10);
}

/* HGETALL of product p-<i> through a daemon: the reply holds its id. */
static void t_expect_product(int port, int i)
{
    char key[32], id[16], *raw;

    snprintf(key, sizeof(key), "product:p-%03d", i);
    snprintf(id, sizeof(id), "p-%03d", i);
    raw = t_cmd(port, H_DEFAULT, "HGETALL", key, NULL);
    ck_assert_msg(raw && raw[0] == '*' && strstr(raw, id), "%s: got %s", key, h_repr(raw));
    free(raw);
}

/* GET /metrics from an admin port passes `promtool check metrics` (when
 * promtool is installed); the text is returned for more checks (static). */
static const char *t_promtool(int admin_port)
{
    static char body[1 << 18];
    char path[PATH_MAX], cmd[PATH_MAX + 128];
    const char *argv[4] = { "sh", "-c", cmd, NULL };
    int code = h_http(admin_port, "GET", "/metrics", NULL, 0, body, sizeof(body)), st = 0;
    pid_t pid;
    char log[PATH_MAX];

    ck_assert_msg(code == 200, "/metrics: %d", code);
    snprintf(path, sizeof(path), "%s", h_path("metrics.txt"));
    h_write_file(path, body, strlen(body));
    snprintf(log, sizeof(log), "%s", h_path("promtool.log"));
    snprintf(cmd, sizeof(cmd), "command -v promtool >/dev/null || exit 0; promtool check metrics < '%s'", path);
    pid = h_spawn(argv, log);
    ck_assert_msg(h_wait_exit(pid, 20000, &st) == 0 && h_exit_code(st) == 0, "promtool: %s\n%s",
                  h_log_tail(log), body);
    return body;
}

#endif
