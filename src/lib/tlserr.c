/* SPDX-License-Identifier: BSD-3-Clause */
/* tlserr.c - TLS failures by reason (see tlserr.h).
 *
 * A peer that fails every handshake fails it again at every reconnect or
 * fetch; one line per peer and reason every TLSERR_LOG_MS says as much
 * as a thousand. The last times are kept for a fixed set of peers: a
 * new peer takes the place of the one logged longest ago, so a flood of
 * distinct peers costs at most one line each, never memory. */
#include "core.h"
#include "tlserr.h"

#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <string.h>

#define TLSERR_SLOTS 32

const char *const tlserr_peer_names[TLSERR_NPEERS] = { "redis", "upstream" };
const char *const tlserr_reason_names[TLSERR_NREASONS] = {
    "expired", "name_mismatch", "unknown_ca", "handshake_timeout", "protocol", "other",
};

struct tlserr_slot {
    enum tlserr_peer peer;
    enum tlserr_reason reason;
    char who[96];
    int64_t logged_ms;          /* 0: unused */
    unsigned held;
};

static uint64_t tlserr_counts[TLSERR_NPEERS][TLSERR_NREASONS];
static struct tlserr_slot tlserr_slots[TLSERR_SLOTS];

/* OpenSSL's reason texts when the peer's first bytes are not a TLS
 * record (a plaintext server answering a ClientHello). */
static const char *const tlserr_plaintext[] = { "wrong version number", "packet length too long",
                                                "record layer failure" };

enum tlserr_reason tlserr_classify(long verify, const char *what)
{
    switch (verify) {
    case X509_V_OK:
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return TLSERR_EXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return TLSERR_NAME;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        return TLSERR_UNKNOWN_CA;
    default:
        return TLSERR_OTHER;
    }
    for (size_t i = 0; what && i < CS_ARRAY_LEN(tlserr_plaintext); i++)
        if (strstr(what, tlserr_plaintext[i]))
            return TLSERR_PROTOCOL;
    return TLSERR_OTHER;
}

bool tlserr_note(enum tlserr_peer peer, const char *who, enum tlserr_reason reason, unsigned *held)
{
    int64_t now = cs_mono_ms();
    struct tlserr_slot *s = NULL, *oldest = &tlserr_slots[0];

    tlserr_counts[peer][reason]++;
    for (size_t i = 0; i < TLSERR_SLOTS; i++) {
        struct tlserr_slot *x = &tlserr_slots[i];
        if (x->logged_ms && x->peer == peer && x->reason == reason && strcmp(x->who, who) == 0) {
            s = x;
            break;
        }
        if (x->logged_ms < oldest->logged_ms)
            oldest = x;
    }
    if (s && now - s->logged_ms < TLSERR_LOG_MS) {
        s->held++;
        return false;
    }
    if (!s) {
        s = oldest;
        s->peer = peer;
        s->reason = reason;
        snprintf(s->who, sizeof(s->who), "%s", who);
        s->held = 0;
    }
    *held = s->held;
    s->held = 0;
    s->logged_ms = now ? now : 1;
    return true;
}

uint64_t tlserr_count(enum tlserr_peer peer, enum tlserr_reason reason)
{
    return tlserr_counts[peer][reason];
}
