/* SPDX-License-Identifier: BSD-3-Clause */
/* dns.c - the shared evdns resolver. */
#include "core.h"
#include "dns.h"
#include "log.h"

#include <event2/dns.h>
#include <stdlib.h>

#define DNS_TIMEOUT "1"     /* seconds per try: a resolver that does not answer */
#define DNS_ATTEMPTS "2"    /* costs a lookup about two seconds, never the loop */

static struct evdns_base *dns;

struct evdns_base *dns_base(void)
{
    const char *path = getenv("CACHASIDED_RESOLV_CONF");
    int rc;

    if (dns)
        return dns;
    dns = evdns_base_new(cs_base, 0);
    if (!dns) {
        log_error("dns: cannot create a resolver");
        abort();
    }
    rc = evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, path && *path ? path : "/etc/resolv.conf");
    if (rc != 0)
        log_warn("dns: cannot read %s (error %d); names resolve from /etc/hosts only",
                 path && *path ? path : "/etc/resolv.conf", rc);
    evdns_base_set_option(dns, "timeout:", DNS_TIMEOUT);
    evdns_base_set_option(dns, "attempts:", DNS_ATTEMPTS);
    return dns;
}

void dns_free(void)
{
    if (dns)
        evdns_base_free(dns, 1);
    dns = NULL;
}
