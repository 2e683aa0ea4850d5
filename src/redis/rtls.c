/* SPDX-License-Identifier: BSD-3-Clause */
/* rtls.c - TLS to Redis (see rtls.h).
 *
 * Verification is always on: the server's chain must lead to the CA
 * file's certificates (or the system's), and its certificate must name
 * the host dialled, by DNS name or by IP address (subjectAltName), or
 * tls_server_name when it is set (a managed Redis reached by address, a
 * cluster whose nodes announce addresses but share a name). TLS 1.2 at
 * least. hiredis 0.14 has no TLS, and the link's reads and writes are
 * ours anyway (rio.c), so this is OpenSSL's API only. */
#include "core.h"
#include "rtls.h"
#include "tlserr.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static SSL_CTX *rtls_ctx;
static char *rtls_name;          /* tls_server_name, or NULL */
/* The files, read again by rtls_reload: the paths are the start's, as
 * every [redis] key; their contents may be renewed. */
static char *rtls_files[3];     /* CA, certificate, key; "" when unset */

/* OpenSSL's reason for the last failure, emptying its queue. */
static const char *rtls_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (r)
        snprintf(buf, n, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "unknown error");
    ERR_clear_error();
    return buf;
}

/* A context from the files, or NULL with the file and OpenSSL's reason. */
static SSL_CTX *rtls_ctx_new(const char *ca_file, const char *cert, const char *key, char *err, size_t errsize)
{
    char r[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        snprintf(err, errsize, "TLS: cannot create a context: %s", rtls_reason(r, sizeof(r)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* rio.c's output buffer may move and grow between a short write and
     * its retry; a write may take part of what it is given. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                   : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errsize, "tls_ca_file '%s': %s", ca_file[0] ? ca_file : "(the system's store)",
                 rtls_reason(r, sizeof(r)));
        goto fail;
    }
    if (cert[0] && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errsize, "tls_cert_file '%s': %s", cert, rtls_reason(r, sizeof(r)));
        goto fail;
    }
    if (key[0] && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errsize, "tls_key_file '%s': %s", key, rtls_reason(r, sizeof(r)));
        goto fail;
    }
    if (cert[0] && SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errsize, "tls_key_file '%s' is not the key of tls_cert_file '%s': %s", key, cert,
                 rtls_reason(r, sizeof(r)));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int rtls_init(const char *ca_file, const char *cert, const char *key, const char *name, char *err, size_t errsize)
{
    const char *files[3] = { ca_file ? ca_file : "", cert ? cert : "", key ? key : "" };
    SSL_CTX *ctx;

    rtls_free();
    if (!(ctx = rtls_ctx_new(files[0], files[1], files[2], err, errsize)))
        return CS_ERR;
    rtls_ctx = ctx;
    rtls_name = name && name[0] ? cs_strndup(name, strlen(name)) : NULL;
    for (int i = 0; i < 3; i++)
        rtls_files[i] = cs_strdup(files[i]);
    return CS_OK;
}

int rtls_reload(char *err, size_t errsize)
{
    SSL_CTX *ctx;

    if (!rtls_ctx)
        return CS_OK;
    if (!(ctx = rtls_ctx_new(rtls_files[0], rtls_files[1], rtls_files[2], err, errsize)))
        return CS_ERR;
    /* A session holds its own reference: links up now keep theirs. */
    SSL_CTX_free(rtls_ctx);
    rtls_ctx = ctx;
    return CS_OK;
}

void rtls_free(void)
{
    SSL_CTX_free(rtls_ctx);
    rtls_ctx = NULL;
    free(rtls_name);
    rtls_name = NULL;
    for (int i = 0; i < 3; i++) {
        free(rtls_files[i]);
        rtls_files[i] = NULL;
    }
}

bool rtls_on(void)
{
    return rtls_ctx != NULL;
}

static bool rtls_is_addr(const char *host)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *rtls_new(int fd, const char *host, char *err, size_t errsize)
{
    const char *name = rtls_name ? rtls_name : host;
    char r[200];
    SSL *ssl = SSL_new(rtls_ctx);
    X509_VERIFY_PARAM *vp;
    int ok;

    if (!ssl) {
        snprintf(err, errsize, "TLS: %s", rtls_reason(r, sizeof(r)));
        return NULL;
    }
    vp = SSL_get0_param(ssl);
    if (rtls_is_addr(name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1;
    } else {
        /* SNI for a name (never for an address): a proxy in front of
         * several servers picks its certificate by it. */
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    }
    if (!ok || SSL_set_fd(ssl, fd) != 1) {
        snprintf(err, errsize, "TLS: cannot check the name '%s': %s", name, rtls_reason(r, sizeof(r)));
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* TLS 1.3: Redis checks the client's certificate after the handshake,
 * and answers its first command with an alert, or, when the close beats
 * the alert, with a reset. */
#define RTLS_CLIENT_CERT " (tls-auth-clients: set tls_cert_file and tls_key_file)"

int rtls_why(SSL *ssl, int rc, bool in_handshake, bool unanswered, char *why, size_t n)
{
    int e = SSL_get_error(ssl, rc);
    long v = SSL_get_verify_result(ssl);
    const char *what = in_handshake ? "TLS handshake failed" : "TLS";
    char r[200];

    if (in_handshake && v != X509_V_OK) {
        ERR_clear_error();
        snprintf(why, n, "%s: certificate verify failed: %s", what, X509_verify_cert_error_string(v));
        return (int)tlserr_classify(v, NULL);
    }
    if (e == SSL_ERROR_SSL) {
        rtls_reason(r, sizeof(r));
        /* A plaintext server answers a ClientHello with an error line,
         * which is no TLS record. */
        snprintf(why, n, "%s: %s%s", what, r,
                 in_handshake && (strstr(r, "wrong version") || strstr(r, "packet length") || strstr(r, "record"))
                     ? " (is the port plaintext? tls = yes needs Redis's tls-port)"
                 : strstr(r, "certificate required") ? RTLS_CLIENT_CERT : "");
        return (int)tlserr_classify(X509_V_OK, r);
    }
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && (rc == 0 || errno == 0 || errno == ECONNRESET)))
        snprintf(why, n, "%s: the server closed the connection%s", what,
                 in_handshake ? " (a client certificate needed? a plaintext port?)"
                 : unanswered ? " before any reply" RTLS_CLIENT_CERT : "");
    else if (e == SSL_ERROR_SYSCALL)
        snprintf(why, n, "%s: %s", what, strerror(errno));
    else
        snprintf(why, n, "%s: error %d", what, e);
    /* A close or a reset once the session is up is the connection's end,
     * not a failure of TLS. */
    return in_handshake ? TLSERR_OTHER : -1;
}

void rtls_close_notify(SSL *ssl)
{
    if (!ssl || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        return;
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
}
