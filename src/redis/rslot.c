/* SPDX-License-Identifier: BSD-3-Clause */
/* rslot.c - the hash slot of a key, as Redis Cluster computes it: CRC16
 * (polynomial 0x1021, initial value 0, no reflection: XMODEM) of the key,
 * or of its hash tag - the bytes between the first '{' and the first '}'
 * after it, when there are any - modulo 16384. cachasided's keys carry
 * {<id>} so a record and its lock always share a slot. */
#include "core.h"
#include "rslot.h"

#include <string.h>

static uint16_t rslot_table[256];

static void rslot_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        rslot_table[i] = c;
    }
}

uint16_t rslot_crc16(const char *p, size_t len)
{
    uint16_t crc = 0;

    if (!rslot_table[1])        /* 0x1021 once filled */
        rslot_init();
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ rslot_table[((crc >> 8) ^ (unsigned char)p[i]) & 0xff]);
    return crc;
}

unsigned rslot_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close = NULL;

    if (open)
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
    /* Only a non-empty {tag} counts: "{}" hashes the whole key. */
    if (open && close && close > open + 1)
        return rslot_crc16(open + 1, (size_t)(close - open - 1)) & (RC_SLOTS - 1);
    return rslot_crc16(key, len) & (RC_SLOTS - 1);
}
