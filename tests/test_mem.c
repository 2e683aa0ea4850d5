/* SPDX-License-Identifier: BSD-3-Clause */
/* test_mem.c - unit tests of libevent's block lists (mem.c): every size
 * gets room for what was asked, realloc keeps the bytes, and a freed large
 * block is what the next allocation of its size gets. */
#include "core.h"
#include "mem.h"

#include "suite.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOLED 0                /* mem.c is plain malloc under ASan */
#else
#define POOLED 1
#endif

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static void expect(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(p[i] == (unsigned char)(seed + i * 7), "byte %zu of %zu changed", i, n);
}

static const size_t sizes[] = { 0, 1, 15, 16, 63, 64, 65, 1000, 1024, 1025, 2048, 4097, 16384, 16385, 100000 };

START_TEST(every_size)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(sizes); i++) {
        unsigned char *p = mem_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        fill(p, sizes[i], (unsigned)i);
        expect(p, sizes[i], (unsigned)i);
        mem_release(p);
    }
    mem_release(NULL);
}
END_TEST

START_TEST(realloc_keeps_bytes)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(sizes); i++) {
        for (size_t j = 0; j < CS_ARRAY_LEN(sizes); j++) {
            size_t a = sizes[i], b = sizes[j];
            unsigned char *p = mem_alloc(a), *q;
            fill(p, a, 3);
            q = mem_realloc(p, b);
            ck_assert_ptr_nonnull(q);
            expect(q, a < b ? a : b, 3);
            fill(q, b, 5);
            expect(q, b, 5);
            mem_release(q);
        }
    }
    /* realloc(NULL) is malloc */
    unsigned char *p = mem_realloc(NULL, 100);
    fill(p, 100, 1);
    mem_release(p);
}
END_TEST

START_TEST(freed_block_reused)
{
    unsigned char *a = mem_alloc(1500), *b;

    mem_release(a);
    b = mem_alloc(2000);        /* the same 2 KB class */
    if (POOLED)
        ck_assert_ptr_eq(a, b);
    fill(b, 2000, 9);
    /* Growing inside the block keeps it; past it moves, bytes and all. */
    if (POOLED)
        ck_assert_ptr_eq(mem_realloc(b, 2048), b);
    b = mem_realloc(b, 5000);
    expect(b, 2000, 9);
    mem_release(b);
    /* A huge block is not kept for the 16 KB list: it goes back. */
    a = mem_alloc(1 << 20);
    mem_release(a);
    b = mem_alloc(16384);
    ck_assert_ptr_ne(a, b);
    mem_release(b);
    mem_free_spares();
}
END_TEST

int main(void)
{
    const struct su_case cases[] = {
        { "every_size", every_size, 30, 0 },
        { "realloc_keeps_bytes", realloc_keeps_bytes, 30, 0 },
        { "freed_block_reused", freed_block_reused, 30, 0 },
    };
    int rc;

    mem_init();
    rc = SU_RUN("mem", cases, CK_NORMAL);
    mem_free_spares();
    return rc;
}
