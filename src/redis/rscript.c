/* SPDX-License-Identifier: BSD-3-Clause */
/* rscript.c - the scripts the Redis layer's owners register: their
 * sources, the SHA1 Redis gave each at SCRIPT LOAD (links load them at
 * set-up and again after NOSCRIPT), and who hears a script's late reply.
 * The layer knows nothing of what a script does: a reply that comes after
 * its command's deadline (its callback already ran with NULL) goes to the
 * late callback its owner registered, with the KEYS and ARGV it was sent
 * with, so the owner can undo what the script did after all. */
#include "core.h"
#include "rscript.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define RSCRIPT_MAX 16
#define RSCRIPT_LATE_ARGS 16    /* the late callback sees this many KEYS + ARGV at most */

struct rscript {
    char *name;
    char *src;
    rstore_late_cb late;
    char sha[41];
};

static struct rscript rscript_tab[RSCRIPT_MAX];
static int rscript_n;

int rstore_script_add(const char *name, const char *src, rstore_late_cb late)
{
    struct rscript *s;

    if (rscript_n == RSCRIPT_MAX || !name || !src)
        return CS_ERR;
    s = &rscript_tab[rscript_n];
    s->name = cs_strndup(name, strlen(name));
    s->src = cs_strndup(src, strlen(src));
    s->late = late;
    s->sha[0] = '\0';
    return rscript_n++;
}

int rscript_count(void)
{
    return rscript_n;
}

const char *rscript_name(int s)
{
    return rscript_tab[s].name;
}

const char *rscript_source(int s)
{
    return rscript_tab[s].src;
}

const char *rscript_sha(int s)
{
    return rscript_tab[s].sha;
}

void rscript_loaded(int s, const char *sha, size_t len)
{
    if (s >= 0 && s < rscript_n && len == 40) {
        memcpy(rscript_tab[s].sha, sha, 40);
        rscript_tab[s].sha[40] = '\0';
    }
}

/* The bulk strings of a RESP command we formatted, from the N-th on, into
 * OUT (at most MAX); returns how many. */
static int rscript_args(const char *fmt, size_t len, int from, struct cs_str *out, int max)
{
    const char *p = memchr(fmt, '\n', len), *end = fmt + len;
    int n = 0, i = 0;

    while (p && ++p < end && *p == '$' && n < max) {
        size_t blen = strtoul(p + 1, NULL, 10);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || (size_t)(end - nl - 1) < blen)
            break;
        if (i++ >= from) {
            out[n].p = nl + 1;
            out[n++].len = blen;
        }
        p = nl + 1 + blen + 1;      /* past the bulk and its \r\n */
    }
    return n;
}

void rscript_late(int s, const char *fmt, size_t len, const struct redisReply *reply)
{
    struct cs_str args[RSCRIPT_LATE_ARGS];
    int n;

    if (s < 0 || s >= rscript_n || !rscript_tab[s].late || !fmt || !reply)
        return;
    /* EVALSHA sha numkeys KEYS... ARGV... */
    n = rscript_args(fmt, len, 3, args, RSCRIPT_LATE_ARGS);
    rscript_tab[s].late(reply, n, args);
}

void rscript_free(void)
{
    for (int i = 0; i < rscript_n; i++) {
        free(rscript_tab[i].name);
        free(rscript_tab[i].src);
    }
    rscript_n = 0;
}
