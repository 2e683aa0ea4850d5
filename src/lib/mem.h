/* SPDX-License-Identifier: BSD-3-Clause */
/* mem.h - libevent's allocations (buffer chains above all) from free lists
 * of a few sizes, instead of malloc and free once per written batch. */
#ifndef CS_MEM_H
#define CS_MEM_H

#include "core.h"

/* Before anything of libevent's is made: event_set_mem_functions. */
void mem_init(void);
/* What libevent is given: malloc, realloc and free. */
void *mem_alloc(size_t n);
void *mem_realloc(void *p, size_t n);
void mem_release(void *p);
/* At exit: the spare blocks go back to malloc. */
void mem_free_spares(void);

#endif
