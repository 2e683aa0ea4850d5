/* SPDX-License-Identifier: BSD-3-Clause */
/* confhdr.h - upstream_header lines and the files the upstream keys name. */
#ifndef CS_CONFHDR_H
#define CS_CONFHDR_H

#include "core.h"

/* One request header sent to a namespace's upstream. */
struct cs_hdr {
    char *name;
    char *value;
    int line;                   /* where it was set */
};

/* "Name: value" or "Name: @/path" (the value is the file's contents,
 * without its final newline). CS_ERR with why in err: a name that is not
 * an HTTP token or is a header the client itself manages (hop-by-hop,
 * Host, Content-Length), a CR, LF, NUL or other control byte, a file that
 * cannot be read or that others may read. */
int confhdr_parse(const char *v, struct cs_hdr *out, char *err, size_t errsz) CS_WUR;
void confhdr_free(struct cs_hdr *h, int n);
/* PATH is a regular file this process can read; with secret, also one that
 * others may neither read nor write. CS_ERR with why in err. */
int confhdr_file_check(const char *path, bool secret, char *err, size_t errsz) CS_WUR;

#endif
