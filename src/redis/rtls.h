/* SPDX-License-Identifier: BSD-3-Clause */
/* rtls.h - TLS to Redis: one OpenSSL context for every link, built at
 * start from the files the layer is told (rstore_conf); a session per
 * connection, checked against the name of the host dialled; and why a
 * handshake or a record failed, in words an operator can act on. The
 * reads and writes themselves are rio.c's. */
#ifndef CS_RTLS_H
#define CS_RTLS_H

#include "core.h"

#include <openssl/ssl.h>

/* CA_FILE empty: the system's store. CERT and KEY: a client certificate
 * (both or neither). NAME, when not empty, is checked in every server's
 * certificate instead of the host dialled. CS_ERR: ERR says which file
 * and OpenSSL's reason. */
int rtls_init(const char *ca_file, const char *cert, const char *key, const char *name, char *err,
              size_t errsize) CS_WUR;
void rtls_free(void);
/* The CA, certificate and key files read again (SIGHUP): new connections
 * use them, those up keep their sessions. CS_ERR: the running ones are
 * kept, ERR says which file and OpenSSL's reason. CS_OK when TLS is off. */
int rtls_reload(char *err, size_t errsize) CS_WUR;
/* TLS is on: TCP links speak it. */
bool rtls_on(void);
/* A client session on FD (connected), checking HOST (a name or an
 * address) in the server's certificate. NULL: ERR says why. */
SSL *rtls_new(int fd, const char *host, char *err, size_t errsize);
/* Why an SSL_connect, SSL_read or SSL_write that returned RC failed,
 * into WHY; OpenSSL's error queue is emptied. IN_HANDSHAKE: the session
 * was not yet up (a plaintext peer shows there); UNANSWERED: up, but
 * nothing read on it yet (a refused client certificate shows there).
 * Returns its kind, an enum tlserr_reason, or -1 when TLS did not fail
 * (the server closed or reset a session that was up). */
int rtls_why(SSL *ssl, int rc, bool in_handshake, bool unanswered, char *why, size_t n);
/* An orderly close: close_notify sent once when the session is up, not
 * waiting for the server's. */
void rtls_close_notify(SSL *ssl);

#endif
