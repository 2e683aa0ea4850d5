/* SPDX-License-Identifier: BSD-3-Clause */
/* mem.c - free lists for libevent's large blocks (see mem.h).
 *
 * Each batch of replies a client is sent lives in a libevent buffer chain
 * (1 KB and up, by powers of two) that is freed when the batch is written
 * and made again for the next one. From glibc that is a large-bin
 * allocation each time, which also consolidates every small block freed
 * since; in the -P 16 hit profile malloc was about 5 % of the daemon.
 * Here a freed block of 1 KB or more waits on the list of its size for
 * the next one.
 *
 * No header: a block's list is found from malloc_usable_size, so the small
 * allocations (an event, a buffer, libevent's per-descriptor entries, which
 * every idle client has) stay plain malloc, and cost no more memory. Large
 * requests are rounded up to a power of two so that blocks fit each other.
 * Each list keeps at most MEM_KEEP_BYTES, so what a burst used goes back
 * to malloc. Under AddressSanitizer the lists are off: a block reused at
 * once would hide a use after free. */
#include "core.h"
#include "mem.h"

#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MIN_SHIFT 10            /* 1 KB: smaller goes to malloc as it is */
#define MEM_NCLASS 5                /* 1 KB .. 16 KB */
#define MEM_KEEP_BYTES (256 * 1024) /* per list */

#if defined(__SANITIZE_ADDRESS__)
#define MEM_POOLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_POOLED 0
#endif
#endif
#ifndef MEM_POOLED
#define MEM_POOLED 1
#endif

struct mem_free {
    struct mem_free *next;
};

static struct mem_free *mem_lists[MEM_NCLASS];
static size_t mem_kept[MEM_NCLASS], mem_max[MEM_NCLASS];

/* The smallest list whose blocks hold n bytes; -1: not a listed size. */
static int mem_class_for(size_t n)
{
    int c = 0;

    if (n < ((size_t)1 << MEM_MIN_SHIFT))
        return -1;
    while (c < MEM_NCLASS && ((size_t)1 << (MEM_MIN_SHIFT + c)) < n)
        c++;
    return c < MEM_NCLASS ? c : -1;
}

/* The list a block of usable size u goes on (the largest whose requests
 * it holds); -1: none, smaller than the first, or twice the last and more. */
static int mem_class_of(size_t u)
{
    int c = -1;

    if (u >= ((size_t)2 << (MEM_MIN_SHIFT + MEM_NCLASS - 1)))
        return -1;

    while (c + 1 < MEM_NCLASS && ((size_t)1 << (MEM_MIN_SHIFT + c + 1)) <= u)
        c++;
    return c;
}

void *mem_alloc(size_t n)
{
    int c = mem_class_for(n);

    if (c < 0)
        return malloc(n);
    if (mem_lists[c]) {
        struct mem_free *f = mem_lists[c];
        mem_lists[c] = f->next;
        mem_kept[c]--;
        return f;
    }
    return malloc((size_t)1 << (MEM_MIN_SHIFT + c));
}

void mem_release(void *p)
{
    int c;

    if (!p)
        return;
    c = mem_max[0] ? mem_class_of(malloc_usable_size(p)) : -1;
    if (c >= 0 && mem_kept[c] < mem_max[c] && !cs_exiting) {
        struct mem_free *f = p;
        f->next = mem_lists[c];
        mem_lists[c] = f;
        mem_kept[c]++;
        return;
    }
    free(p);
}

void *mem_realloc(void *p, size_t n)
{
    size_t have;
    void *q;

    if (!p)
        return mem_alloc(n);
    if (n == 0)
        n = 1;                  /* a block, as from malloc(0): never freed behind the caller */
    have = malloc_usable_size(p);
    if (n <= have && (n >= have / 2 || have < ((size_t)1 << MEM_MIN_SHIFT)))
        return p;               /* fits, and not much too big */
    if (mem_class_for(n) < 0 && mem_class_of(have) < 0)
        return realloc(p, n);   /* small to small, or past the lists */
    q = mem_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, have < n ? have : n);
    mem_release(p);
    return q;
}

void mem_init(void)
{
    if (!MEM_POOLED)
        return;
    for (int c = 0; c < MEM_NCLASS; c++)
        mem_max[c] = MEM_KEEP_BYTES >> (MEM_MIN_SHIFT + c);
    event_set_mem_functions(mem_alloc, mem_realloc, mem_release);
}

void mem_free_spares(void)
{
    for (int c = 0; c < MEM_NCLASS; c++) {
        struct mem_free *f;
        while ((f = mem_lists[c]) != NULL) {
            mem_lists[c] = f->next;
            free(f);
        }
        mem_kept[c] = 0;
    }
}
