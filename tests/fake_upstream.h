/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_upstream.h - the HTTP floor's fetch in memory, for unit tests of
 * the cache floor: each upstream_fetch is queued and the test completes
 * it with the response it chooses (fake_upstream.c). */
#ifndef CS_FAKE_UPSTREAM_H
#define CS_FAKE_UPSTREAM_H

#include "core.h"
#include "upstream.h"

struct fake_fetch {
    const struct cs_ns *ns;
    char id[256];
    upstream_cb cb;
    void *arg;
    struct fake_fetch *next;
};

/* Fetches asked for and not yet completed. */
int fake_fetches(void);
/* The oldest fetch of ID (NULL: of any), or NULL. */
struct fake_fetch *fake_fetch_find(const char *id);
/* Completes F with KIND (and STATUS, BODY: NULL for none); frees F. */
void fake_fetch_answer(struct fake_fetch *f, enum up_kind kind, int status, const char *body);
/* Frees what is still queued, without calling back. */
void fake_fetch_reset(void);

#endif
