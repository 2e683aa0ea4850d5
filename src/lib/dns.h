/* SPDX-License-Identifier: BSD-3-Clause */
/* dns.h - one asynchronous resolver for the whole daemon (libevent's evdns),
 * so that neither Redis nor upstream host names block the event loop. */
#ifndef CS_DNS_H
#define CS_DNS_H

#include "core.h"

struct evdns_base;

/* The daemon's resolver, made on first use from /etc/resolv.conf (or the
 * file named by $CACHASIDED_RESOLV_CONF, which the tests use to point it at
 * a resolver of their own) with a bounded timeout. */
struct evdns_base *dns_base(void);
void dns_free(void);

#endif
