/* upstream.h - the HTTP client: URL template, keep-alive pools, deadlines. */
#ifndef CS_UPSTREAM_H
#define CS_UPSTREAM_H

#include "core.h"

enum up_kind { UP_OK, UP_NOTFOUND, UP_STATUS, UP_TIMEOUT, UP_UNREACHABLE, UP_TOOBIG };

struct up_reply {
    enum up_kind kind;
    int status;
    const char *body;           /* valid during the callback only */
    size_t len;
};

/* Called exactly once, always from the event loop (never inside fetch). */
typedef void (*upstream_cb)(void *arg, const struct up_reply *r);

void upstream_init(void);
void upstream_reconfigure(void);
void upstream_free(void);
void upstream_fetch(const struct cs_ns *ns, const char *id, size_t idlen, upstream_cb cb, void *arg);
/* The request target for id: the template's path with id percent-encoded. */
char *upstream_target(const struct cs_ns *ns, const char *id, size_t idlen);

#endif
