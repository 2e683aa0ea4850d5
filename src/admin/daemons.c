/* SPDX-License-Identifier: BSD-3-Clause */
/* daemons.c - GET /daemons, the admin endpoint's one answer that waits on
 * Redis: the heartbeats are other daemons' figures, in Redis only, read
 * when asked (a dashboard polls it every 2 s) and never kept here. */
#include "core.h"
#include "daemons.h"
#include "config.h"
#include "heartbeat.h"
#include "rstore.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>

struct daemons_req {
    struct evhttp_request *req;     /* NULL once the browser went away */
};

static void daemons_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    struct daemons_req *d = arg;

    CS_UNUSED(evcon);
    d->req = NULL;
}

/* Sends BODY (a reference taken) to REQ with CODE. */
static void daemons_reply(struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *b = evbuffer_new();
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    if (!s)
        code = 500;
    evbuffer_add_printf(b, "%s\n", s ? s : "{\"error\":\"out of memory\"}");
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code == 200 ? "OK" : code == 503 ? "Service Unavailable" : "Internal Server Error", b);
    evbuffer_free(b);
    free(s);
    json_decref(body);
}

static void daemons_answer(void *priv, json_t *list, const char *err)
{
    struct daemons_req *d = priv;

    if (d->req) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(d->req), NULL, NULL);
        if (list)
            daemons_reply(d->req, 200,
                          json_pack("{s:s,s:s+,s:i,s:i,s:O}", "self", heartbeat_id(), "key", cs_conf->key_prefix,
                                    "daemons", "every_ms", HEARTBEAT_EVERY_MS, "expire_ms",
                                    HEARTBEAT_EXPIRE_MS, "daemons", list));
        else
            daemons_reply(d->req, 503, json_pack("{s:s+}", "error", "redis: ", err));
    }
    free(d);
}

void daemons_handle(struct evhttp_request *req, const char *arg)
{
    struct daemons_req *d = cs_calloc(1, sizeof(*d));
    const char *why = rstore_status();

    CS_UNUSED(arg);
    d->req = req;
    if (why || heartbeat_list(daemons_answer, d) != CS_OK) {
        daemons_reply(req, 503, json_pack("{s:s+}", "error", "redis: ", why ? why : "not connected"));
        free(d);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), daemons_closed_cb, d);
}
