/* SPDX-License-Identifier: BSD-3-Clause */
/* fake_upstream.c - upstream_fetch and upstream_id_check in memory
 * (fake_upstream.h): no socket, no DNS. */
#include "core.h"
#include "fake_upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fake_fetch *fake_fhead;

void upstream_fetch(const struct cs_ns *ns, const char *id, size_t idlen, upstream_cb cb, void *arg)
{
    struct fake_fetch *f = cs_calloc(1, sizeof(*f)), **p = &fake_fhead;

    f->ns = ns;
    snprintf(f->id, sizeof(f->id), "%.*s", (int)idlen, id);
    f->cb = cb;
    f->arg = arg;
    while (*p)
        p = &(*p)->next;
    *p = f;
}

/* The tests' ids are plain: every one stays within the path. */
const char *upstream_id_check(const struct cs_ns *ns, const char *id, size_t idlen)
{
    CS_UNUSED(ns);
    CS_UNUSED(id);
    CS_UNUSED(idlen);
    return NULL;
}

int fake_fetches(void)
{
    int n = 0;

    for (struct fake_fetch *f = fake_fhead; f; f = f->next)
        n++;
    return n;
}

struct fake_fetch *fake_fetch_find(const char *id)
{
    for (struct fake_fetch *f = fake_fhead; f; f = f->next)
        if (!id || strcmp(f->id, id) == 0)
            return f;
    return NULL;
}

void fake_fetch_answer(struct fake_fetch *f, enum up_kind kind, int status, const char *body)
{
    struct up_reply up = { kind, status, body, body ? strlen(body) : 0, body ? strlen(body) : 0, 1000 };
    struct fake_fetch **p = &fake_fhead;

    while (*p != f)
        p = &(*p)->next;
    *p = f->next;
    f->cb(f->arg, &up);
    free(f);
}

void fake_fetch_reset(void)
{
    struct fake_fetch *f;

    while ((f = fake_fhead) != NULL) {
        fake_fhead = f->next;
        free(f);
    }
}
