/* SPDX-License-Identifier: BSD-3-Clause */
/* keys.c - the client's key syntax: NAMESPACE:ID split at the first ':',
 * checked before anything is sent (docs/protocol.md, "Keys"), and the
 * Redis keys made of it. Reads, writes and MULTI's queue-time checks all
 * parse keys here, so a key is refused with the same words everywhere. */
#include "core.h"
#include "keys.h"
#include "config.h"
#include "glob.h"
#include "upstream.h"

#include <stdio.h>
#include <string.h>

/* NAMESPACE:<rest>, the rules keys and globs share. */
static int keys_parse_ns(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *id,
                         char *err, size_t errsz)
{
    const char *colon = memchr(key.p, ':', key.len);
    int shown = key.len > 80 ? 80 : (int)key.len;

    if (!colon || colon == key.p) {
        snprintf(err, errsz, "ERR bad key '%.*s%s': expected NAMESPACE:ID", shown, key.p, key.len > 80 ? "..." : "");
        return CS_ERR;
    }
    id->p = colon + 1;
    id->len = key.len - (size_t)(id->p - key.p);
    if (id->len == 0) {
        snprintf(err, errsz, "ERR bad key '%.*s': empty id", shown, key.p);
        return CS_ERR;
    }
    if (id->len > KEYS_ID_MAX) {
        snprintf(err, errsz, "ERR bad key '%.*s...': id longer than %d bytes", shown, key.p, KEYS_ID_MAX);
        return CS_ERR;
    }
    for (size_t i = 0; i < id->len; i++) {
        unsigned char ch = (unsigned char)id->p[i];
        if (ch <= ' ' || ch == 0x7f) {
            snprintf(err, errsz, "ERR bad key: id has whitespace or control characters");
            return CS_ERR;
        }
    }
    /* The id goes inside a {hash tag}: one that starts with '}' would make
     * the tag empty, and Redis Cluster would hash the record and its lock
     * to different slots. */
    if (id->p[0] == '}') {
        snprintf(err, errsz, "ERR bad key '%.*s': id may not start with '}'", shown, key.p);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                *p = '?';
        return CS_ERR;
    }
    *ns = config_ns_find(c, key.p, (size_t)(colon - key.p));
    if (!*ns) {
        int nl = (int)(colon - key.p) > 80 ? 80 : (int)(colon - key.p);
        snprintf(err, errsz, "ERR unknown namespace '%.*s'", nl, key.p);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                *p = '?';
        return CS_ERR;
    }
    return CS_OK;
}

/* The id's own rule comes last, as it depends on the namespace (id_slashes):
 * checked before anything is sent, so a refused id reaches neither Redis
 * nor the upstream, and an entry an older daemon cached under it is never
 * served. */
int keys_parse(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *id, char *err,
               size_t errsz)
{
    const char *why;

    if (keys_parse_ns(c, key, ns, id, err, errsz) != CS_OK)
        return CS_ERR;
    if ((why = upstream_id_check(*ns, id->p, id->len)) != NULL) {
        /* The id has no whitespace or control bytes: it may be shown. */
        int shown = key.len > 80 ? 80 : (int)key.len;
        snprintf(err, errsz, "ERR bad key '%.*s%s': %s", shown, key.p, key.len > 80 ? "..." : "", why);
        return CS_ERR;
    }
    return CS_OK;
}

size_t keys_build(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str id)
{
    /* Called for every read: copies, not snprintf. The parts are bounded by
     * config (prefix, namespace) and KEYS_ID_MAX, within KEYS_KEY_MAX. */
    size_t pl = strlen(c->key_prefix), nl = ns->namelen, n = 0;

    if (pl + nl + id.len + 5 > KEYS_KEY_MAX)
        return (size_t)snprintf(buf, KEYS_KEY_MAX, "%s%s:{%.*s}", c->key_prefix, ns->name, (int)id.len, id.p);
    memcpy(buf, c->key_prefix, pl);
    n = pl;
    memcpy(buf + n, ns->name, nl);
    n += nl;
    buf[n++] = ':';
    buf[n++] = '{';
    memcpy(buf + n, id.p, id.len);
    n += id.len;
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

int keys_parse_glob(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *glob,
                    char *err, size_t errsz)
{
    const char *why;

    if (keys_parse_ns(c, key, ns, glob, err, errsz) != CS_OK)
        return CS_ERR;
    if ((why = glob_check(glob->p, glob->len)) != NULL) {
        int shown = key.len > 80 ? 80 : (int)key.len;
        snprintf(err, errsz, "ERR bad key '%.*s': %s", shown, key.p, why);
        return CS_ERR;
    }
    return CS_OK;
}

void keys_pattern(char *buf, const struct cs_config *c, const struct cs_ns *ns, struct cs_str glob)
{
    size_t n = glob_escape(buf, c->key_prefix, strlen(c->key_prefix));

    n += glob_escape(buf + n, ns->name, ns->namelen);
    snprintf(buf + n, KEYS_KEY_MAX - n, ":{%.*s}", (int)glob.len, glob.p);
}
