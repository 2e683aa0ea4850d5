/* SPDX-License-Identifier: BSD-3-Clause */
/* confhdr.c - upstream_header lines and the files the upstream keys name.
 *
 * A header reaches the upstream byte for byte, so what would split the
 * request (CR, LF), cut it short (NUL) or fight the client's own framing
 * and connection handling (hop-by-hop headers, Host, Content-Length) is
 * refused when the file is read, not found in the upstream's logs. A
 * secret (a token) is better kept out of the configuration file: @path
 * reads it from a file only its owner and group may read, at start and on
 * each reload. */
#include "core.h"
#include "confhdr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header value read from a file: a token, not a document. */
#define CONFHDR_FILE_MAX 8192

/* Managed by the HTTP client or meaningful for one hop only (RFC 9110
 * section 7.6.1); "Proxy-" covers every Proxy-* header. */
static const char *const confhdr_refused[] = {
    "Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Host", "Content-Length",
};

/* RFC 9110 tchar. */
static bool confhdr_tchar(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *confhdr_name_problem(const char *name)
{
    if (!*name)
        return "has no header name before ':' (write 'upstream_header = Name: value')";
    for (const char *s = name; *s; s++)
        if (!confhdr_tchar((unsigned char)*s))
            return "has a header name that is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    if (strncasecmp(name, "Proxy-", 6) == 0)
        return "names a Proxy-* header, which is for one hop only";
    for (size_t i = 0; i < CS_ARRAY_LEN(confhdr_refused); i++)
        if (strcasecmp(name, confhdr_refused[i]) == 0)
            return "names a header the HTTP client manages itself (Connection, Keep-Alive, Transfer-Encoding, "
                   "TE, Trailer, Upgrade, Proxy-*, Host, Content-Length)";
    return NULL;
}

static const char *confhdr_value_problem(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\r' || ch == '\n')
            return "has a CR or LF in its value";
        if (ch == '\0')
            return "has a NUL byte in its value";
        if ((ch < ' ' && ch != '\t') || ch == 0x7f)
            return "has a control character in its value";
    }
    return NULL;
}

/* Opens PATH for reading after the checks of confhdr_file_check; -1 with
 * why in err. */
static int confhdr_open(const char *path, bool secret, char *err, size_t errsz)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        snprintf(err, errsz, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (secret && (st.st_mode & (S_IROTH | S_IWOTH))) {
        snprintf(err, errsz, "%s may be read or written by others (mode %04o): it holds a secret; "
                 "chmod o-rw it", path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
    return fd;
}

int confhdr_file_check(const char *path, bool secret, char *err, size_t errsz)
{
    int fd = confhdr_open(path, secret, err, errsz);

    if (fd < 0)
        return CS_ERR;
    close(fd);
    return CS_OK;
}

/* The contents of the file at path, without one final "\n" or "\r\n". */
static char *confhdr_read(const char *path, char *err, size_t errsz, size_t *len)
{
    char *buf = cs_malloc(CONFHDR_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r;
    int fd = confhdr_open(path, true, err, errsz);

    if (fd < 0) {
        free(buf);
        return NULL;
    }
    while ((r = read(fd, buf + n, CONFHDR_FILE_MAX + 1 - n)) > 0 && n + (size_t)r <= CONFHDR_FILE_MAX)
        n += (size_t)r;
    close(fd);
    if (r < 0 || r > 0) {
        if (r < 0)
            snprintf(err, errsz, "cannot read %s: %s", path, strerror(errno));
        else
            snprintf(err, errsz, "%s is over %d bytes: a header value is expected", path, CONFHDR_FILE_MAX);
        free(buf);
        return NULL;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

int confhdr_parse(const char *v, struct cs_hdr *out, char *err, size_t errsz)
{
    const char *colon = strchr(v, ':'), *val, *bad;
    char *name, *value, why[300];
    size_t nl, len;

    if (!colon) {
        snprintf(err, errsz, "'upstream_header' must be 'Name: value' or 'Name: @/path/to/file', got '%s'", v);
        return CS_ERR;
    }
    nl = (size_t)(colon - v);
    name = cs_strndup(v, nl);
    if ((bad = confhdr_name_problem(name)) != NULL) {
        snprintf(err, errsz, "'upstream_header' %s, got '%.*s'", bad, (int)nl, v);
        free(name);
        return CS_ERR;
    }
    val = colon + 1 + strspn(colon + 1, " \t");
    if (*val == '@') {
        if (val[1] != '/') {
            snprintf(err, errsz, "'upstream_header' %s: @ takes an absolute path, got '%s'", name, val);
            free(name);
            return CS_ERR;
        }
        if (!(value = confhdr_read(val + 1, why, sizeof(why), &len))) {
            snprintf(err, errsz, "'upstream_header' %s: %s", name, why);
            free(name);
            return CS_ERR;
        }
    } else {
        value = cs_strdup(val);
        len = strlen(value);
    }
    if ((bad = confhdr_value_problem(value, len)) != NULL) {
        snprintf(err, errsz, "'upstream_header' %s %s%s%s", name, bad, *val == '@' ? " (read from " : "",
                 *val == '@' ? val + 1 : "");
        if (*val == '@')
            strncat(err, ")", errsz - strlen(err) - 1);
        free(name);
        free(value);
        return CS_ERR;
    }
    out->name = name;
    out->value = value;
    return CS_OK;
}

void confhdr_free(struct cs_hdr *h, int n)
{
    for (int i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}
