/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz.h - what the libFuzzer targets in fuzz/ share: an invariant check
 * that stops the run with a message, and a quiet stderr for code that logs.
 *
 * Each target calls only the public functions of the module it exercises,
 * so a change of that module's API touches one small function here. */
#ifndef CS_FUZZ_H
#define CS_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant is a finding: print it and abort, so libFuzzer saves
 * the input as a crash artifact. */
#define FUZZ_CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(fuzz_stderr(), "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(fuzz_stderr(), __VA_ARGS__); \
            fputc('\n', fuzz_stderr()); \
            abort(); \
        } \
    } while (0)

/* The daemon's log writes to stderr (the FILE); a target that runs millions
 * of inputs points it at /dev/null while the module runs. The sanitizers and
 * libFuzzer write to descriptor 2 or their own copy, so reports still show. */
static inline FILE *fuzz_stderr(void)
{
    static FILE *real;

    if (!real)
        real = stderr;
    return real;
}

static inline void fuzz_quiet(int on)
{
    static FILE *null;

    (void)fuzz_stderr();
    if (!null && !(null = fopen("/dev/null", "w")))
        return;
    stderr = on ? null : fuzz_stderr();
}

/* What one parse of a stream produced, serialised, so that the whole
 * stream and its split can be compared byte for byte. */
struct fuzz_log {
    char *buf;
    size_t len, cap;
};

static inline void fuzz_log_add(struct fuzz_log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        while (l->len + n > l->cap)
            l->cap = l->cap ? l->cap * 2 : 256;
        l->buf = realloc(l->buf, l->cap);
        FUZZ_CHECK(l->buf != NULL, "out of memory");
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

static inline bool fuzz_log_same(const struct fuzz_log *a, const struct fuzz_log *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

#endif
