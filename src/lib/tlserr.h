/* SPDX-License-Identifier: BSD-3-Clause */
/* tlserr.h - TLS failures an operator can act on: sorted by reason,
 * counted per peer for /metrics, and logged at most once per
 * TLSERR_LOG_MS per peer and reason with a count of the ones held back. */
#ifndef CS_TLSERR_H
#define CS_TLSERR_H

#include "core.h"

enum tlserr_peer { TLSERR_REDIS, TLSERR_UPSTREAM, TLSERR_NPEERS };
enum tlserr_reason {
    TLSERR_EXPIRED,             /* the server's certificate is out of date */
    TLSERR_NAME,                /* it does not name the host (or address) dialled */
    TLSERR_UNKNOWN_CA,          /* its chain leads to no CA we trust */
    TLSERR_TIMEOUT,             /* the handshake did not finish in time */
    TLSERR_PROTOCOL,            /* no TLS spoken there: a plaintext peer */
    TLSERR_OTHER,
    TLSERR_NREASONS
};

#define TLSERR_LOG_MS 10000

extern const char *const tlserr_peer_names[TLSERR_NPEERS];
extern const char *const tlserr_reason_names[TLSERR_NREASONS];

/* The reason for a handshake that failed with VERIFY (the certificate
 * check's verdict, X509_V_OK when it passed) and WHAT (OpenSSL's reason
 * text, or NULL). */
enum tlserr_reason tlserr_classify(long verify, const char *what);
/* Counts a failure of PEER (WHO: its host:port) for REASON. True when it
 * should be logged now; *HELD is then how many of that peer and reason
 * were not logged since the last that was. */
bool tlserr_note(enum tlserr_peer peer, const char *who, enum tlserr_reason reason, unsigned *held);
uint64_t tlserr_count(enum tlserr_peer peer, enum tlserr_reason reason);

#endif
