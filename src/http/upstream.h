/* SPDX-License-Identifier: BSD-3-Clause */
/* upstream.h - the HTTP client: URL template, keep-alive pools, deadlines. */
#ifndef CS_UPSTREAM_H
#define CS_UPSTREAM_H

#include "core.h"

/* UP_BAD: a response that cannot be framed unambiguously (interim 1xx,
 * conflicting lengths, bytes after the end); UP_HEADERS: a response head
 * over the size or line limit; UP_BUSY: no slot within the wait bound
 * (max_upstream_fetches or the host's pool), nothing was sent. */
enum up_kind { UP_OK, UP_NOTFOUND, UP_STATUS, UP_TIMEOUT, UP_UNREACHABLE, UP_TOOBIG, UP_BAD, UP_HEADERS, UP_BUSY };

struct up_reply {
    enum up_kind kind;
    int status;
    const char *body;           /* valid during the callback only */
    size_t len;
    size_t bytes;               /* body bytes received, whatever the status */
    uint64_t us;                /* since the fetch was asked for, queueing included */
};

/* Called exactly once, always from the event loop (never inside fetch). */
typedef void (*upstream_cb)(void *arg, const struct up_reply *r);

/* Pool sizes and per-namespace shares follow the running configuration:
 * at start-up and after each reload. */
void upstream_reconfigure(const struct cs_config *c);
/* What the configuration's https:// namespaces need that config_load does
 * not check: their CA, certificate and key files load (CS_ERR, why in err). */
int upstream_check(const struct cs_config *c, char *err, size_t errsz) CS_WUR;
void upstream_free(void);
/* Per host: connections open, busy, fetches queued. */
struct stats_sink;
void upstream_report(struct stats_sink *s);
/* Readiness (docs/admin.md): a host cannot serve when its last
 * UPSTREAM_DOWN_AFTER fetches in a row failed to connect, timed out or got a
 * 5xx, the last of them less than UPSTREAM_DOWN_FOR_MS ago (past that,
 * unknown again: a daemon taken out of rotation gets no reads to learn
 * from). False, with why, when no host of the running configuration can. */
#define UPSTREAM_DOWN_AFTER 3
#define UPSTREAM_DOWN_FOR_MS 30000
bool upstream_can_serve(char *why, size_t len);
/* /metrics: one of those figures, a sample per host (label host). */
struct prom;
enum up_metric { UPM_CONNECTIONS, UPM_BUSY, UPM_QUEUED };
void upstream_prom(struct prom *p, enum up_metric m);
void upstream_fetch(const struct cs_ns *ns, const char *id, size_t idlen, upstream_cb cb, void *arg);
/* The request target for id: the template's path with id percent-encoded
 * ('/' kept as it is with id_slashes). */
char *upstream_target(const struct cs_ns *ns, const char *id, size_t idlen);
/* NULL when id's fetch stays within the template's path; else why not (a
 * dot-segment, a '/' or '\', also once percent-decoded). */
const char *upstream_id_check(const struct cs_ns *ns, const char *id, size_t idlen);

#endif
