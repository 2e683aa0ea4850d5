/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz_config.c - the configuration reader (src/lib/config.c config_load) on
 * arbitrary files.
 *
 * config_load takes a path: the input is written to one memfd made at start
 * and read through /proc/self/fd/N, so a run touches no disk.
 *
 * Invariants: no crash or leak; a refused file has at least one message and
 * every message is "PATH:LINE: text" with LINE inside the file (1 to its
 * number of lines); an accepted file has no message and its values obey the
 * rules the reader enforces (namespaces have an upstream with {id},
 * negative_ttl_s < ttl_s, lock_ttl_ms > upstream_timeout_ms). */
#define _GNU_SOURCE
#include "core.h"
#include "config.h"
#include "fuzz.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fz_fd = -1;
static char fz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    CS_UNUSED(argc);
    CS_UNUSED(argv);
    fz_fd = memfd_create("fuzz_config.ini", 0);
    if (fz_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(fz_path, sizeof(fz_path), "/proc/self/fd/%d", fz_fd);
    return 0;
}

/* Lines as the reader counts them: a last line without '\n' counts too. */
static int fz_lines(const uint8_t *data, size_t size)
{
    int n = 0;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n + (size && data[size - 1] != '\n');
}

static void fz_check_message(const char *msg, int lines)
{
    size_t pl = strlen(fz_path);
    const char *p = msg + pl;
    char *end;
    long line;

    FUZZ_CHECK(strncmp(msg, fz_path, pl) == 0 && *p == ':', "message without the file name: '%s'", msg);
    line = strtol(p + 1, &end, 10);
    FUZZ_CHECK(end > p + 1 && end[0] == ':' && end[1] == ' ' && end[2], "message not FILE:LINE: text: '%s'", msg);
    /* Line 0 is the whole file (unreadable, empty, no section). */
    FUZZ_CHECK(line >= 0 && line <= (lines > 0 ? lines : 1), "line %ld outside a file of %d lines: '%s'", line, lines,
               msg);
}

static void fz_check_config(const struct cs_config *c)
{
    const struct cs_cache_conf *cc = &c->cache;

    FUZZ_CHECK(cc->v[CK_NEG_TTL] < cc->v[CK_TTL] && cc->v[CK_LOCK_TTL] > cc->v[CK_UP_TIMEOUT],
               "[cache] accepted with a broken rule");
    for (int i = 0; i < c->nns; i++) {
        const struct cs_ns *ns = c->ns[i];
        FUZZ_CHECK(ns->name && ns->namelen == strlen(ns->name) && ns->namelen > 0, "namespace without a name");
        FUZZ_CHECK(ns->upstream && ns->host && ns->host[0] && ns->port > 0 && ns->port < 65536,
                   "namespace '%s' accepted without a usable upstream", ns->name);
        FUZZ_CHECK(ns->nparts >= 2, "namespace '%s': upstream without {id}", ns->name);
        FUZZ_CHECK(ns->c.v[CK_NEG_TTL] < ns->c.v[CK_TTL] && ns->c.v[CK_LOCK_TTL] > ns->c.v[CK_UP_TIMEOUT],
                   "namespace '%s' accepted with a broken rule", ns->name);
        FUZZ_CHECK(config_ns_find(c, ns->name, ns->namelen) == ns, "namespace '%s' not found by name", ns->name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_errors errs;
    struct cs_config *c;

    if (ftruncate(fz_fd, 0) != 0 || pwrite(fz_fd, data, size, 0) != (ssize_t)size) {
        perror("writing the memfd");
        abort();
    }
    fuzz_quiet(1);
    c = config_load(fz_path, &errs);
    fuzz_quiet(0);
    if (c) {
        FUZZ_CHECK(errs.n == 0, "accepted with %d messages", errs.n);
        fz_check_config(c);
        config_unref(c);
    } else {
        int lines = fz_lines(data, size);
        FUZZ_CHECK(errs.n > 0, "refused without a message");
        for (int i = 0; i < errs.n; i++)
            fz_check_message(errs.msg[i], lines);
    }
    config_errors_free(&errs);
    return 0;
}
