/* report.c - gathers the figures of stats and of the modules that keep
 * state of their own (Redis links, flights, upstream pools) into one report,
 * written through whichever sink the caller chose. */
#include "core.h"
#include "report.h"
#include "flight.h"
#include "rstore.h"
#include "stats.h"
#include "upstream.h"

#include "autoconf.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <time.h>

static int64_t report_reload_ms;        /* wall clock; 0 = never */
static bool report_reload_ok;

void report_reload(bool ok)
{
    report_reload_ms = cs_now_ms();
    report_reload_ok = ok;
}

void report_all(struct stats_sink *s)
{
    char when[32];

    s->str(s, "build_version", "cachasided version", PACKAGE_VERSION);
    stats_report(s);
    s->num(s, SK_GAUGE, "flights_in_progress", "Fills under way in this daemon", NULL, flight_in_progress());
    rstore_report(s);
    upstream_report(s);
    s->num(s, SK_GAUGE, "last_reload_unix_s", "When the last SIGHUP reload happened (0: never)", NULL,
           (double)(report_reload_ms / 1000));
    snprintf(when, sizeof(when), "%s", !report_reload_ms ? "none" : report_reload_ok ? "ok" : "refused");
    s->str(s, "last_reload_result", "Whether the last reload's file was taken", when);
}

void report_text(struct evbuffer *b)
{
    struct stats_sink s;

    stats_sink_text(&s, b);
    report_all(&s);
}

void report_json(struct evbuffer *b)
{
    struct stats_sink s;

    stats_sink_json(&s, b);
    report_all(&s);
    stats_json_end(&s);
}

void report_prometheus(struct evbuffer *b)
{
    struct stats_sink s;

    stats_sink_prometheus(&s, b);
    report_all(&s);
}
