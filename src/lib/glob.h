/* SPDX-License-Identifier: BSD-3-Clause */
/* glob.h - Redis's glob patterns (SCAN MATCH, KEYS): a matcher with the same
 * semantics, a validator for client patterns, and escaping of literal text. */
#ifndef CS_GLOB_H
#define CS_GLOB_H

#include "core.h"

/* Does s match pat as Redis would match it ('*', '?', '[...]', '[^...]',
 * ranges, '\' escapes)? Case-sensitive. */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen);
/* NULL when pat is a well-formed pattern, else why not: an unclosed '[' or
 * a trailing lone '\' (Redis reads those in ways nobody means). */
const char *glob_check(const char *pat, size_t plen);
/* Copies src into dst with every glob character escaped; returns the length
 * written (dst needs 2 * len + 1 bytes; it is NUL-terminated). */
size_t glob_escape(char *dst, const char *src, size_t len);

#endif
