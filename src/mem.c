/* mem.c - size-class free lists for libevent (see mem.h).
 *
 * Each batch of replies a client is sent lives in a libevent buffer chain
 * (1 KB and up, by powers of two) that is freed when the batch is written
 * and made again for the next one. From glibc that is a large-bin
 * allocation each time, which also consolidates every small block freed
 * since; in the -P 16 hit profile malloc was about 5 % of the daemon.
 * Here a freed block waits on its size's list for the next one.
 *
 * A block is [class][pad][data]: free() needs its size and libevent's
 * free function is given only the pointer. Sizes past the largest class
 * go straight to malloc. Each list keeps at most MEM_KEEP_BYTES, so what
 * a burst used goes back to malloc. Under AddressSanitizer the lists are
 * off: a block reused at once would hide a use after free. */
#include "core.h"
#include "mem.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define MEM_HDR 16                  /* keeps data 16-byte aligned, as malloc's */
#define MEM_MIN_SHIFT 6             /* 64 bytes */
#define MEM_NCLASS 9                /* 64 B .. 16 KB */
#define MEM_BIG 0xff
#define MEM_KEEP_BYTES (256 * 1024) /* per class */

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

static int mem_class(size_t n)
{
    int c = 0;

    while (c < MEM_NCLASS && ((size_t)1 << (MEM_MIN_SHIFT + c)) < n)
        c++;
    return c < MEM_NCLASS ? c : MEM_BIG;
}

static size_t mem_class_size(int c)
{
    return (size_t)1 << (MEM_MIN_SHIFT + c);
}

void *mem_alloc(size_t n)
{
    int c = mem_class(n);
    unsigned char *b;

    if (c != MEM_BIG && mem_lists[c]) {
        struct mem_free *f = mem_lists[c];
        mem_lists[c] = f->next;
        mem_kept[c]--;
        b = (unsigned char *)f - MEM_HDR;
    } else {
        b = malloc(MEM_HDR + (c == MEM_BIG ? n : mem_class_size(c)));
        if (!b)
            return NULL;
        b[0] = (unsigned char)c;
    }
    return b + MEM_HDR;
}

void mem_release(void *p)
{
    unsigned char *b;
    int c;

    if (!p)
        return;
    b = (unsigned char *)p - MEM_HDR;
    c = b[0];
    if (c != MEM_BIG && mem_kept[c] < mem_max[c] && !cs_exiting) {
        struct mem_free *f = p;
        f->next = mem_lists[c];
        mem_lists[c] = f;
        mem_kept[c]++;
        return;
    }
    free(b);
}

void *mem_realloc(void *p, size_t n)
{
    unsigned char *b;
    size_t have;
    void *q;

    if (!p)
        return mem_alloc(n);
    b = (unsigned char *)p - MEM_HDR;
    if (b[0] == MEM_BIG) {
        if (mem_class(n) == MEM_BIG) {
            b = realloc(b, MEM_HDR + n);
            return b ? b + MEM_HDR : NULL;
        }
        have = n;               /* shrinking into a class: n is what is kept */
    } else {
        have = mem_class_size(b[0]);
        if (n <= have)
            return p;
    }
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
        mem_max[c] = MEM_KEEP_BYTES / mem_class_size(c);
    event_set_mem_functions(mem_alloc, mem_realloc, mem_release);
}

void mem_free_spares(void)
{
    for (int c = 0; c < MEM_NCLASS; c++) {
        struct mem_free *f;
        while ((f = mem_lists[c]) != NULL) {
            mem_lists[c] = f->next;
            free((unsigned char *)f - MEM_HDR);
        }
        mem_kept[c] = 0;
    }
}
