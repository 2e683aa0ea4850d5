/* SPDX-License-Identifier: BSD-3-Clause */
/* rslot.h - Redis Cluster hash slots (rslot.c). */
#ifndef CS_RSLOT_H
#define CS_RSLOT_H

#include "core.h"

#define RC_SLOTS 16384

/* CRC16-XMODEM of the key's hash tag (or of the whole key) mod 16384, as
 * CLUSTER KEYSLOT computes it. */
unsigned rslot_of(const char *key, size_t len);
uint16_t rslot_crc16(const char *p, size_t len);

#endif
