/* SPDX-License-Identifier: BSD-3-Clause */
/* scripts.c - the cache's Lua scripts, one row each: its name, its source
 * (lua/<name>.lua, embedded by lua/lua2c.sh) and who undoes it when its
 * reply comes after the command's deadline. The Redis layer loads them
 * and runs them by the handle it gave; it knows nothing of what they do. */
#include "core.h"
#include "scripts.h"
#include "fill.h"
#include "lua_scripts.h"

static const struct {
    const char *name;
    const char *src;
    rstore_late_cb late;
} scripts_tab[SCRIPT_COUNT] = {
    [SCRIPT_LOCK] = { "lock", LUA_LOCK, fill_lock_late },
    [SCRIPT_FILL] = { "fill", LUA_FILL, NULL },
    [SCRIPT_RELEASE] = { "release", LUA_RELEASE, NULL },
    [SCRIPT_HSET] = { "hset", LUA_HSET, NULL },
    [SCRIPT_DEL] = { "del", LUA_DEL, NULL },
    [SCRIPT_TTL] = { "ttl", LUA_TTL, NULL },
    [SCRIPT_BREAKER] = { "breaker", LUA_BREAKER, NULL },
};

static int scripts_handle[SCRIPT_COUNT];

int scripts_init(void)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        scripts_handle[i] = rstore_script_add(scripts_tab[i].name, scripts_tab[i].src, scripts_tab[i].late);
        if (scripts_handle[i] < 0)
            return CS_ERR;
    }
    return CS_OK;
}

int scripts_eval(enum script s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                 const size_t *lens)
{
    return rstore_eval(scripts_handle[s], cb, priv, nkeys, argc, argv, lens);
}

int scripts_eval_each(enum script s, rstore_cb cb, void *priv, int nkeys, int argc, const char **argv,
                      const size_t *lens)
{
    return rstore_eval_each(scripts_handle[s], cb, priv, nkeys, argc, argv, lens);
}
