/* SPDX-License-Identifier: BSD-3-Clause */
/* glob.c - Redis's glob patterns, as SCAN MATCH and KEYS read them.
 *
 * INVALIDATE hands a client's pattern to SCAN and also uses it to decide
 * which of this daemon's fills the invalidation overtakes, so both must read
 * it the same way: the rules below follow Redis's own matcher (a class with
 * '^' negates, "a-z" is a range in either order, '\' escapes the next byte,
 * "[]" is an empty class). A '*' is matched with one backtracking point, not
 * by recursion, so a pattern full of stars costs O(pattern * string).
 *
 * Patterns with an unclosed '[' or a trailing lone '\' are refused before
 * they get here (glob_check): Redis reads the rest of the pattern as part of
 * the class there, which swallows the '}' that closes our hash tag. */
#include "core.h"
#include "glob.h"

#include <string.h>

/* Does the one-byte token at pat[*p] match c? Advances *p past it. */
static bool glob_one(const char *pat, size_t plen, size_t *p, char c)
{
    size_t i = *p;
    bool neg, hit = false;

    if (pat[i] == '?') {
        *p = i + 1;
        return true;
    }
    if (pat[i] == '\\' && i + 1 < plen) {
        *p = i + 2;
        return pat[i + 1] == c;
    }
    if (pat[i] != '[') {
        *p = i + 1;
        return pat[i] == c;
    }
    i++;
    neg = i < plen && pat[i] == '^';
    if (neg)
        i++;
    while (i < plen) {
        if (pat[i] == '\\' && i + 1 < plen) {
            hit |= pat[i + 1] == c;
            i += 2;
        } else if (pat[i] == ']') {
            break;
        } else if (i + 2 < plen && pat[i + 1] == '-') {
            /* Plain char comparisons, as Redis makes them. */
            char lo = pat[i], hi = pat[i + 2];
            if (lo > hi) {
                char t = lo;
                lo = hi;
                hi = t;
            }
            hit |= c >= lo && c <= hi;
            i += 3;
        } else {
            hit |= pat[i] == c;
            i++;
        }
    }
    *p = i < plen ? i + 1 : plen;       /* past the ']' */
    return neg ? !hit : hit;
}

bool glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    size_t p = 0, i = 0, star_p = 0, star_i = 0;
    bool star = false;

    while (i < slen) {
        if (p < plen && pat[p] == '*') {
            while (p < plen && pat[p] == '*')
                p++;
            if (p == plen)
                return true;
            star = true;
            star_p = p;
            star_i = i;
            continue;
        }
        if (p < plen) {
            size_t np = p;
            if (glob_one(pat, plen, &np, s[i])) {
                p = np;
                i++;
                continue;
            }
        }
        if (!star)
            return false;
        /* Let the last '*' take one more byte and try again from there. */
        p = star_p;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

const char *glob_check(const char *pat, size_t plen)
{
    for (size_t i = 0; i < plen; i++) {
        if (pat[i] == '\\') {
            if (i + 1 == plen)
                return "glob ends with a lone '\\'";
            i++;
        } else if (pat[i] == '[') {
            bool closed = false;
            i++;
            if (i < plen && pat[i] == '^')
                i++;
            while (i < plen && !closed) {
                if (pat[i] == '\\' && i + 1 < plen)
                    i += 2;
                else if (pat[i] == ']')
                    closed = true;
                else if (i + 2 < plen && pat[i + 1] == '-')
                    i += 3;
                else
                    i++;
            }
            if (!closed)
                return "glob has an unclosed '['";
        }
    }
    return NULL;
}

size_t glob_escape(char *dst, const char *src, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (strchr("*?[]\\", src[i]) && src[i])
            dst[n++] = '\\';
        dst[n++] = src[i];
    }
    dst[n] = '\0';
    return n;
}
