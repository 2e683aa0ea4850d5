/* SPDX-License-Identifier: BSD-3-Clause */
/* uptls.c - TLS for https:// upstreams, on libevent's OpenSSL bufferevents.
 *
 * evhttp speaks HTTP over whatever bufferevent it is given, so an https
 * pool differs from an http one only in how a connection's bufferevent is
 * made: an SSL object per connection from the pool's context, the handshake
 * started as the socket connects. The fetch's own deadline already bounds
 * connect, handshake and answer together. What a failed handshake says
 * (expired, wrong name, unknown CA) is kept on the bufferevent until the
 * fetch's callback asks for it. */
#include "core.h"
#include "uptls.h"
#include "tlserr.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct uptls {
    SSL_CTX *ctx;
};

/* OpenSSL's reason for the last error of its queue, then the queue emptied. */
static void uptls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    ERR_clear_error();
}

struct uptls *uptls_new(const char *ca_file, const char *cert_file, const char *key_file, char *err, size_t errsz)
{
    struct uptls *t = cs_calloc(1, sizeof(*t));
    char why[160];

    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        uptls_reason(why, sizeof(why));
        snprintf(err, errsz, "cannot make a TLS context: %s", why);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (*ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1
                 : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        uptls_reason(why, sizeof(why));
        snprintf(err, errsz, "cannot load the CA certificates of %s: %s", *ca_file ? ca_file : "the system store", why);
        goto fail;
    }
    if (*cert_file && SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
        uptls_reason(why, sizeof(why));
        snprintf(err, errsz, "cannot load the client certificate %s: %s", cert_file, why);
        goto fail;
    }
    if (*key_file && SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        uptls_reason(why, sizeof(why));
        snprintf(err, errsz, "cannot load the client key %s: %s", key_file, why);
        goto fail;
    }
    if (*key_file && SSL_CTX_check_private_key(t->ctx) != 1) {
        uptls_reason(why, sizeof(why));
        snprintf(err, errsz, "the client key %s does not match the certificate %s: %s", key_file, cert_file, why);
        goto fail;
    }
    return t;
fail:
    uptls_free(t);
    return NULL;
}

void uptls_free(struct uptls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

struct bufferevent *uptls_bev(struct uptls *t, struct event_base *base, const char *host)
{
    unsigned char addr[16];
    bool literal = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    SSL *ssl = SSL_new(t->ctx);
    struct bufferevent *bev;

    if (!ssl)
        return NULL;
    /* An address is checked against the certificate's IP entries and sent
     * no SNI (RFC 6066 allows host names only). */
    if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
                : SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    /* Takes ssl: freed with the bufferevent (and its socket). */
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        SSL_free(ssl);
    return bev;
}

const char *uptls_error(struct bufferevent *bev, char *buf, size_t len, enum tlserr_reason *reason)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long e, first = 0;
    const char *what;
    long v;

    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (!first)
            first = e;
    }
    if (!ssl)
        return NULL;
    v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        *reason = tlserr_classify(v, NULL);
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return buf;
    }
    if (!first)
        return NULL;
    what = ERR_reason_error_string(first);
    *reason = tlserr_classify(X509_V_OK, what);
    snprintf(buf, len, "%s", what ? what : "TLS error");
    return buf;
}

bool uptls_handshaking(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    /* Past TLS_ST_BEFORE: the ClientHello went out, the TCP connect is done. */
    return ssl && SSL_in_init(ssl) && SSL_get_state(ssl) != TLS_ST_BEFORE;
}

void uptls_close_notify(struct bufferevent *bev, bool answer)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    /* Once, without waiting for the server's: the socket is closed next.
     * Never after a fatal error (OpenSSL forbids it) nor mid-handshake;
     * an answer only to the server's own close_notify (a bare close is
     * such an error). */
    if (!ssl || bufferevent_getfd(bev) < 0 || !SSL_is_init_finished(ssl) ||
        (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) || (answer && !(SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)))
        return;
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
}
