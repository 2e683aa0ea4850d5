/* SPDX-License-Identifier: BSD-3-Clause */
/* uptls.h - TLS for https:// upstreams: one client context per pool. */
#ifndef CS_UPTLS_H
#define CS_UPTLS_H

#include "core.h"
#include "tlserr.h"

struct bufferevent;
struct event_base;
struct uptls;

/* A client context: TLS 1.2 at least, the peer's certificate checked
 * against CA_FILE (or the system store when it is empty), and CERT_FILE
 * with KEY_FILE offered when the server asks for a client certificate
 * (both empty: none). NULL with why in err when a file is refused. */
struct uptls *uptls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err, size_t errsz);
void uptls_free(struct uptls *t);
/* A bufferevent that starts a handshake once connected, with HOST as the
 * server name (SNI, unless an address) and the name its certificate must
 * hold. Owns its socket and its SSL; NULL when out of memory. */
struct bufferevent *uptls_bev(struct uptls *t, struct event_base *base, const char *host);
/* Why TLS failed on BEV, in OpenSSL's words (the certificate check's
 * verdict first, then the error queue), its kind in REASON, or NULL when
 * it did not: a failure that is not TLS's (refused, reset, timed out).
 * Clears the queue. */
const char *uptls_error(struct bufferevent *bev, char *buf, size_t len, enum tlserr_reason *reason);
/* BEV is connected and its handshake under way (not finished). */
bool uptls_handshaking(struct bufferevent *bev);
/* An orderly close: the close_notify alert sent, once, when BEV's session
 * is up and sound; nothing is waited for. ANSWER: only when the server
 * sent its own (it closed an idle connection in order). */
void uptls_close_notify(struct bufferevent *bev, bool answer);

#endif
