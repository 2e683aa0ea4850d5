/* SPDX-License-Identifier: BSD-3-Clause */
/* xfetch.c - probabilistic early refresh (XFetch: Vattani, Chierichetti and
 * Lowenstein, VLDB 2015; docs/design.md section 14).
 *
 * A hit refreshes its record early when
 *     now - delta * beta * ln(u) >= expiry,   u uniform in (0, 1],
 * delta being how long the record's last fetch took. -ln(u) is an
 * exponential draw: each read has a chance that grows as expiry nears and
 * with the fetch's cost, so under steady reads one of them starts the
 * refresh a little before the end, and no read has to wait for it. With
 * few reads nothing happens early and the record expires as before. The
 * draw needs no coordination: the fill lock (lock.lua with the __exp the
 * read saw) lets one refresh run across daemons. */
#include "core.h"
#include "xfetch.h"

#include <math.h>
#include <stdlib.h>

bool xfetch_due(const struct cs_ns *ns, int64_t now, int64_t exp, int64_t delta_ms)
{
    long long beta = ns->c.v[CK_BETA];  /* thousandths */
    double u;

    if (beta <= 0 || delta_ms <= 0)
        return false;
    u = ((double)random() + 1.0) / 2147483648.0;
    return (double)now - (double)delta_ms * ((double)beta / 1000.0) * log(u) >= (double)exp;
}
