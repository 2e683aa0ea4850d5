/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cachasided-example-upstream: a small HTTP/1.1 backend for tests and demos.
 *
 * Serves records at GET /<prefix...>/<ID> and exposes control endpoints
 * under /_ so integration tests can change records, force statuses, add
 * latency and read request counters. Single-threaded on libevent's evhttp.
 *
 * With -R PORTFILE it also serves the same records on a second port through
 * a small hand-written HTTP/1.1 server, which can misbehave on purpose for
 * chosen IDs (PUT /_trick/ID on the main port): interim responses, bytes
 * after the response, two Content-Lengths, endless or many headers. evhttp's
 * server cannot be made to send such responses, hence the second listener.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#define EU_NAME "cachasided-example-upstream"
#define EU_MAX_LATENCY_MS 86400000L
#define EU_MAX_GENERATE 10000000L

struct eu_state;

/* A data response waiting for its latency timer. */
struct eu_pending {
	struct eu_pending *prev, *next;
	struct eu_state *st;
	struct evhttp_request *req;
	struct event *timer;
	char *id;
	json_t *snap;			/* -A: the answer as it was on arrival */
};

/* One connection of the hand-written (-R) listener. */
struct eu_raw {
	struct eu_raw *prev, *next;
	struct eu_state *st;
	struct bufferevent *bev;
	long filler;			/* endless headers: lines sent, -1 = off */
};

struct eu_state {
	struct event_base *base;
	struct evhttp *http;
	json_t *records;		/* id -> JSON string holding the raw body */
	json_t *status;			/* id -> integer status override */
	json_t *counts;			/* id -> integer data requests */
	json_t *delays;			/* id -> integer latency override (ms) */
	json_t *tricks;			/* id -> trick name, for the -R listener */
	unsigned long long requests;	/* data requests since start or /_reset */
	long latency_ms;
	int inflight, max_inflight;	/* data requests not yet answered */
	unsigned long raw_accepted;	/* connections the -R listener took */
	int quiet;
	int at_arrival;			/* -A: answer what the record was on arrival */
	struct eu_pending *pending;
	struct evconnlistener *raw_listener;
	struct eu_raw *raws;
};

static const char eu_json[] = "application/json";

static void *eu_check(void *p)
{
	if (p == NULL) {
		fputs(EU_NAME ": out of memory\n", stderr);
		abort();
	}
	return p;
}

/* Keys are raw decoded IDs, so skip jansson's UTF-8 check on them. */
static void eu_set(json_t *obj, const char *key, json_t *val)
{
	if (val == NULL || json_object_set_new_nocheck(obj, key, val) != 0)
		eu_check(NULL);
}

/* Bodies are arbitrary bytes (tests serve garbage), hence the length API. */
static void eu_put_record(struct eu_state *st, const char *id, const char *body, size_t len)
{
	eu_set(st->records, id, json_stringn_nocheck(len ? body : "", len));
}

/* Decimal in [min, max]; trailing whitespace allowed so `echo 503 | curl -T-` works. */
static int eu_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno != 0)
		return -1;
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (*end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int eu_body_long(struct evhttp_request *req, long min, long max, long *out)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char buf[32];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	evbuffer_copyout(in, buf, n);
	buf[n] = '\0';
	if (strlen(buf) != n)
		return -1;
	return eu_parse_long(buf, min, max, out);
}

/* Percent-decode one raw path segment ('+' stays '+'); NULL if it holds a NUL byte. */
static char *eu_decode(const char *seg)
{
	size_t n;
	char *id = eu_check(evhttp_uridecode(seg, 0, &n));

	if (strlen(id) != n) {
		free(id);
		return NULL;
	}
	return id;
}

static const char *eu_method(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_HEAD: return "HEAD";
	default: return "OTHER";
	}
}

/*
 * Log and send. A request whose client went away while it waited has no
 * connection any more; evhttp_send_reply then just frees it, which is what
 * we want, so it needs no special path here.
 */
static void eu_reply(struct eu_state *st, struct evhttp_request *req, int code,
		     const char *ctype, const void *body, size_t len)
{
	struct evbuffer *buf = NULL;

	if (!st->quiet)
		fprintf(stderr, "%s %s -> %d%s\n", eu_method(req), evhttp_request_get_uri(req),
			code, evhttp_request_get_connection(req) ? "" : " (client gone)");
	if (ctype != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	if (len > 0) {
		buf = eu_check(evbuffer_new());
		if (evbuffer_add(buf, body, len) != 0)
			eu_check(NULL);
	}
	evhttp_send_reply(req, code, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void eu_error(struct eu_state *st, struct evhttp_request *req, int code, const char *msg)
{
	char body[64];
	int len = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);

	eu_reply(st, req, code, eu_json, body, (size_t)len);
}

/* ---- data endpoint ---- */

static void eu_count_arrival(struct eu_state *st, const char *id)
{
	json_t *c;

	st->requests++;
	if ((c = json_object_get(st->counts, id)) != NULL)
		json_integer_set(c, json_integer_value(c) + 1);
	else
		eu_set(st->counts, id, json_integer(1));
	if (++st->inflight > st->max_inflight)
		st->max_inflight = st->inflight;
}

/* What a request for id is answered now: {"status": n} or {"body": s},
 * a new reference. */
static json_t *eu_answer_now(struct eu_state *st, const char *id)
{
	json_t *v;

	if ((v = json_object_get(st->status, id)) != NULL)
		return eu_check(json_pack("{sI}", "status", json_integer_value(v)));
	if ((v = json_object_get(st->records, id)) != NULL)
		return eu_check(json_pack("{sO}", "body", v));
	return eu_check(json_pack("{si}", "status", 404));
}

static void eu_data_reply(struct eu_state *st, struct evhttp_request *req, const char *id, json_t *snap)
{
	json_t *a = snap ? snap : eu_answer_now(st, id), *v;

	st->inflight--;
	if ((v = json_object_get(a, "body")) != NULL) {
		eu_reply(st, req, 200, eu_json, json_string_value(v), json_string_length(v));
	} else {
		int code = (int)json_integer_value(json_object_get(a, "status"));
		char msg[32];

		snprintf(msg, sizeof(msg), code == 404 ? "not found" : "status %d", code);
		eu_error(st, req, code, msg);
	}
	if (!snap)
		json_decref(a);
}

static void eu_pending_unlink(struct eu_state *st, struct eu_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		st->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
}

static void eu_pending_free(struct eu_pending *p)
{
	event_free(p->timer);
	json_decref(p->snap);
	free(p->id);
	free(p);
}

static void eu_pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct eu_pending *p = arg;

	(void)fd;
	(void)what;
	eu_pending_unlink(p->st, p);
	eu_data_reply(p->st, p->req, p->id, p->snap);
	eu_pending_free(p);
}

/* On shutdown every waiting request still gets an answer, so none leaks. */
static void eu_pending_flush(struct eu_state *st)
{
	while (st->pending != NULL) {
		struct eu_pending *p = st->pending;

		eu_pending_unlink(st, p);
		st->inflight--;
		eu_error(st, p->req, 503, "shutting down");
		eu_pending_free(p);
	}
}

static void eu_data(struct eu_state *st, struct evhttp_request *req, const char *path)
{
	const char *seg = strrchr(path, '/');
	struct eu_pending *p;
	struct timeval tv;
	long latency;
	json_t *d;
	char *id;

	/* Data paths are /<prefix...>/<ID>: at least two segments, last non-empty. */
	if (seg == NULL || seg == path || seg[1] == '\0') {
		eu_error(st, req, 404, "not found");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		eu_error(st, req, 405, "method not allowed");
		return;
	}
	if ((id = eu_decode(seg + 1)) == NULL) {
		eu_error(st, req, 400, "bad request");
		return;
	}
	/* Counted on arrival, before the latency, so tests can see in-flight requests. */
	eu_count_arrival(st, id);
	d = json_object_get(st->delays, id);
	latency = d ? (long)json_integer_value(d) : st->latency_ms;
	if (latency == 0) {
		eu_data_reply(st, req, id, NULL);
		free(id);
		return;
	}
	p = eu_check(calloc(1, sizeof(*p)));
	p->st = st;
	p->req = req;
	p->id = id;
	if (st->at_arrival)
		p->snap = eu_answer_now(st, id);
	p->timer = eu_check(evtimer_new(st->base, eu_pending_fire, p));
	p->next = st->pending;
	if (st->pending != NULL)
		st->pending->prev = p;
	st->pending = p;
	tv.tv_sec = latency / 1000;
	tv.tv_usec = (latency % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

/* ---- control endpoints ---- */

typedef void eu_ctl_fn(struct eu_state *st, struct evhttp_request *req, const char *id);

static void eu_ctl_count(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	unsigned long long n = st->requests;
	char body[32];
	int len;

	if (id != NULL) {
		json_t *c = json_object_get(st->counts, id);

		n = c ? (unsigned long long)json_integer_value(c) : 0;
	}
	len = snprintf(body, sizeof(body), "%llu", n);	/* no trailing newline */
	eu_reply(st, req, 200, "text/plain", body, (size_t)len);
}

static void eu_ctl_stats(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	char body[192];
	int len = snprintf(body, sizeof(body), "{\"requests\":%llu,\"latency_ms\":%ld,\"records\":%zu,"
			   "\"inflight\":%d,\"max_inflight\":%d,\"raw_accepted\":%lu}",
			   st->requests, st->latency_ms, json_object_size(st->records),
			   st->inflight, st->max_inflight, st->raw_accepted);

	(void)id;
	eu_reply(st, req, 200, eu_json, body, (size_t)len);
}

static void eu_ctl_reset(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	(void)id;
	st->requests = 0;
	st->max_inflight = st->inflight;
	json_object_clear(st->counts);
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_latency(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	long ms;

	(void)id;
	if (eu_body_long(req, 0, EU_MAX_LATENCY_MS, &ms) != 0) {
		eu_error(st, req, 400, "bad latency");
		return;
	}
	st->latency_ms = ms;
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_record_put(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);

	eu_put_record(st, id, (const char *)evbuffer_pullup(in, -1), len);
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_record_del(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	if (json_object_del(st->records, id) != 0)
		eu_error(st, req, 404, "not found");
	else
		eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_status_put(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	long code;

	if (eu_body_long(req, 200, 599, &code) != 0) {
		eu_error(st, req, 400, "bad status");
		return;
	}
	eu_set(st->status, id, json_integer(code));
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_status_del(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	json_object_del(st->status, id);
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_delay_put(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	long ms;

	if (eu_body_long(req, 0, EU_MAX_LATENCY_MS, &ms) != 0) {
		eu_error(st, req, 400, "bad latency");
		return;
	}
	eu_set(st->delays, id, json_integer(ms));
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static void eu_ctl_delay_del(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	json_object_del(st->delays, id);
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static const char *const eu_trick_names[] = {
	"early-hints", "continue", "surplus", "two-lengths", "endless-headers", "many-headers",
};

static void eu_ctl_trick_put(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in), i;
	char name[32];

	if (n > 0 && n < sizeof(name)) {
		evbuffer_copyout(in, name, n);
		name[n] = '\0';
		name[strcspn(name, " \t\r\n")] = '\0';
		for (i = 0; i < sizeof(eu_trick_names) / sizeof(eu_trick_names[0]); i++) {
			if (strcmp(name, eu_trick_names[i]) == 0) {
				eu_set(st->tricks, id, json_string(name));
				eu_reply(st, req, 204, NULL, NULL, 0);
				return;
			}
		}
	}
	eu_error(st, req, 400, "bad trick");
}

static void eu_ctl_trick_del(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	json_object_del(st->tricks, id);
	eu_reply(st, req, 204, NULL, NULL, 0);
}

static const struct eu_route {
	const char *path;	/* ends in '/' when it takes one ID segment */
	enum evhttp_cmd_type cmd;
	eu_ctl_fn *fn;
} eu_routes[] = {
	{ "/_count", EVHTTP_REQ_GET, eu_ctl_count },
	{ "/_count/", EVHTTP_REQ_GET, eu_ctl_count },
	{ "/_stats", EVHTTP_REQ_GET, eu_ctl_stats },
	{ "/_reset", EVHTTP_REQ_POST, eu_ctl_reset },
	{ "/_latency", EVHTTP_REQ_PUT, eu_ctl_latency },
	{ "/_records/", EVHTTP_REQ_PUT, eu_ctl_record_put },
	{ "/_records/", EVHTTP_REQ_DELETE, eu_ctl_record_del },
	{ "/_status/", EVHTTP_REQ_PUT, eu_ctl_status_put },
	{ "/_status/", EVHTTP_REQ_DELETE, eu_ctl_status_del },
	{ "/_delay/", EVHTTP_REQ_PUT, eu_ctl_delay_put },
	{ "/_delay/", EVHTTP_REQ_DELETE, eu_ctl_delay_del },
	{ "/_trick/", EVHTTP_REQ_PUT, eu_ctl_trick_put },
	{ "/_trick/", EVHTTP_REQ_DELETE, eu_ctl_trick_del },
};

static void eu_control(struct eu_state *st, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int known = 0;
	size_t i;

	for (i = 0; i < sizeof(eu_routes) / sizeof(eu_routes[0]); i++) {
		const struct eu_route *r = &eu_routes[i];
		size_t n = strlen(r->path);
		const char *seg = NULL;
		char *id = NULL;

		if (r->path[n - 1] == '/') {
			if (strncmp(path, r->path, n) != 0 || path[n] == '\0' || strchr(path + n, '/'))
				continue;
			seg = path + n;
		} else if (strcmp(path, r->path) != 0) {
			continue;
		}
		known = 1;
		if (cmd != r->cmd)
			continue;
		if (seg != NULL && (id = eu_decode(seg)) == NULL) {
			eu_error(st, req, 400, "bad request");
			return;
		}
		r->fn(st, req, id);
		free(id);
		return;
	}
	if (known)
		eu_error(st, req, 405, "method not allowed");
	else
		eu_error(st, req, 404, "not found");
}

static void eu_handle(struct evhttp_request *req, void *arg)
{
	struct eu_state *st = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	if (path == NULL || *path == '\0')
		path = "/";
	if (strncmp(path, "/_", 2) == 0)
		eu_control(st, req, path);
	else
		eu_data(st, req, path);
}

/* ---- the hand-written listener (-R): same records, chosen misbehaviour ---- */

#define EU_RAW_MAX_HEAD 65536
#define EU_SMUGGLED "{\"id\":\"smuggled\",\"name\":\"not the record asked for\"}"

static void eu_raw_free(struct eu_raw *rc)
{
	struct eu_state *st = rc->st;

	if (rc->filler >= 0)
		st->inflight--;
	if (rc->prev != NULL)
		rc->prev->next = rc->next;
	else
		st->raws = rc->next;
	if (rc->next != NULL)
		rc->next->prev = rc->prev;
	bufferevent_free(rc->bev);
	free(rc);
}

static void eu_raw_head(struct evbuffer *out, int code, size_t len)
{
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n", code, code == 200 ? "OK" : "Other", len);
}

/* The answer the evhttp port would give, as bytes. */
static void eu_raw_normal(struct eu_state *st, struct evbuffer *out, const char *id)
{
	json_t *v;
	char body[64];
	int len;

	if ((v = json_object_get(st->status, id)) != NULL) {
		int code = (int)json_integer_value(v);

		len = snprintf(body, sizeof(body), "{\"error\":\"status %d\"}", code);
		eu_raw_head(out, code, (size_t)len);
		evbuffer_add(out, body, (size_t)len);
	} else if ((v = json_object_get(st->records, id)) != NULL) {
		eu_raw_head(out, 200, json_string_length(v));
		evbuffer_add(out, json_string_value(v), json_string_length(v));
	} else {
		len = snprintf(body, sizeof(body), "{\"error\":\"not found\"}");
		eu_raw_head(out, 404, (size_t)len);
		evbuffer_add(out, body, (size_t)len);
	}
}

/* Endless headers: another 16 KB each time the client has read the last. */
static void eu_raw_fill(struct eu_raw *rc)
{
	struct evbuffer *out = bufferevent_get_output(rc->bev);

	while (evbuffer_get_length(out) < 16384)
		evbuffer_add_printf(out, "X-Filler-%ld: %s\r\n", rc->filler++,
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
}

static void eu_raw_answer(struct eu_raw *rc, const char *id)
{
	struct eu_state *st = rc->st;
	struct evbuffer *out = bufferevent_get_output(rc->bev);
	json_t *t = json_object_get(st->tricks, id);
	const char *trick = t ? json_string_value(t) : "";
	size_t slen = strlen(EU_SMUGGLED);
	char smuggled[256];
	int n;

	n = snprintf(smuggled, sizeof(smuggled), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s", slen, EU_SMUGGLED);
	if (!st->quiet)
		fprintf(stderr, "raw GET %s%s%s\n", id, *trick ? " trick " : "", trick);
	if (strcmp(trick, "endless-headers") == 0) {
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n");
		rc->filler = 0;		/* in flight until the client gives up */
		eu_raw_fill(rc);
		return;
	}
	if (strcmp(trick, "early-hints") == 0)
		evbuffer_add_printf(out, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
	else if (strcmp(trick, "continue") == 0)
		evbuffer_add_printf(out, "HTTP/1.1 100 Continue\r\n\r\n");
	if (strcmp(trick, "two-lengths") == 0) {
		/* The first length frames "{}", the second takes in a whole response. */
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				    "Content-Length: 2\r\nContent-Length: %d\r\n\r\n{}", 2 + n);
		evbuffer_add(out, smuggled, (size_t)n);
	} else if (strcmp(trick, "many-headers") == 0) {
		json_t *v = json_object_get(st->records, id);
		const char *body = v ? json_string_value(v) : "{}";
		size_t len = v ? json_string_length(v) : 2;
		int i;

		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n", len);
		for (i = 0; i < 1000; i++)
			evbuffer_add_printf(out, "X-H%d: v\r\n", i);
		evbuffer_add_printf(out, "\r\n");
		evbuffer_add(out, body, len);
	} else {
		eu_raw_normal(st, out, id);
		if (strcmp(trick, "surplus") == 0)
			evbuffer_add(out, smuggled, (size_t)n);
	}
	st->inflight--;
}

static void eu_raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct eu_raw *rc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	char *head, *path, *sp, *seg, *id;
	size_t n;

	while (rc->filler < 0) {
		end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0) {
			if (evbuffer_get_length(in) > EU_RAW_MAX_HEAD)
				eu_raw_free(rc);
			return;
		}
		n = (size_t)end.pos + 4;
		head = eu_check(malloc(n + 1));
		evbuffer_remove(in, head, n);
		head[n] = '\0';
		/* "GET /path HTTP/1.1": the ID is the last path segment. */
		path = strchr(head, ' ');
		sp = path ? strchr(path + 1, ' ') : NULL;
		if (sp == NULL || strncmp(head, "GET ", 4) != 0) {
			free(head);
			eu_raw_free(rc);
			return;
		}
		*sp = '\0';
		path[strcspn(path, "?")] = '\0';
		seg = strrchr(path, '/');
		id = seg ? eu_decode(seg + 1) : NULL;
		if (id == NULL || *id == '\0') {
			free(id);
			free(head);
			eu_raw_free(rc);
			return;
		}
		eu_count_arrival(rc->st, id);
		eu_raw_answer(rc, id);
		free(id);
		free(head);
	}
	evbuffer_drain(in, evbuffer_get_length(in));	/* endless: ignore the client */
}

static void eu_raw_write_cb(struct bufferevent *bev, void *arg)
{
	struct eu_raw *rc = arg;

	(void)bev;
	if (rc->filler >= 0)
		eu_raw_fill(rc);
}

static void eu_raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		eu_raw_free(arg);
}

static void eu_raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct eu_state *st = arg;
	struct eu_raw *rc = eu_check(calloc(1, sizeof(*rc)));

	(void)l;
	(void)sa;
	(void)salen;
	rc->st = st;
	rc->filler = -1;
	st->raw_accepted++;
	rc->bev = eu_check(bufferevent_socket_new(st->base, fd, BEV_OPT_CLOSE_ON_FREE));
	bufferevent_setcb(rc->bev, eu_raw_read_cb, eu_raw_write_cb, eu_raw_event_cb, rc);
	bufferevent_enable(rc->bev, EV_READ | EV_WRITE);
	rc->next = st->raws;
	if (st->raws != NULL)
		st->raws->prev = rc;
	st->raws = rc;
}

/* ---- start-up ---- */

static int eu_load_file(struct eu_state *st, const char *path)
{
	json_error_t err;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	const char *id;
	json_t *v;

	if (root == NULL) {
		fprintf(stderr, EU_NAME ": %s:%d:%d: %s\n", path, err.line, err.column, err.text);
		return -1;
	}
	if (!json_is_object(root)) {
		fprintf(stderr, EU_NAME ": %s: top level must be an object\n", path);
		json_decref(root);
		return -1;
	}
	json_object_foreach(root, id, v) {
		/* A string is served verbatim, so the file can hold non-JSON bodies. */
		if (json_is_string(v)) {
			eu_put_record(st, id, json_string_value(v), json_string_length(v));
		} else {
			char *text = eu_check(json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
							 JSON_REAL_PRECISION(17)));

			eu_put_record(st, id, text, strlen(text));
			free(text);
		}
	}
	json_decref(root);
	return 0;
}

static void eu_generate(struct eu_state *st, long n)
{
	char id[32], body[192];
	int width = 3, len;
	long i, m;

	for (m = n; m >= 1000 && width < 8; m /= 10)
		width++;	/* the bound lets gcc see that id[] cannot overflow */
	for (i = 1; i <= n; i++) {
		snprintf(id, sizeof(id), "p-%0*ld", width, i);
		if (json_object_get(st->records, id))
			continue;	/* a record from -f wins over a generated one */
		len = snprintf(body, sizeof(body),
			       "{\"id\":\"%s\",\"name\":\"Product %ld\",\"price\":\"%ld.99\","
			       "\"stock\":%ld,\"tags\":[\"demo\"]}", id, i, i, (i * 7) % 100);
		eu_put_record(st, id, body, (size_t)len);
	}
}

/* -s ID=STATUS; split at the last '=' so IDs may contain '='. */
static int eu_opt_status(struct eu_state *st, const char *arg)
{
	const char *eq = strrchr(arg, '=');
	long code;
	char *id;

	if (eq == NULL || eq == arg || eu_parse_long(eq + 1, 200, 599, &code) != 0)
		return -1;
	id = eu_check(strndup(arg, (size_t)(eq - arg)));
	eu_set(st->status, id, json_integer(code));
	free(id);
	return 0;
}

static int eu_bound_port(struct evhttp_bound_socket *bs)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Write then rename, so a test polling for the file never reads half of it. */
static int eu_write_portfile(const char *path, int port)
{
	size_t n = strlen(path) + sizeof(".tmp");
	char *tmp = eu_check(malloc(n));
	int rc = -1, bad;
	FILE *f;

	snprintf(tmp, n, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) != NULL) {
		bad = fprintf(f, "%d\n", port) < 0;
		if (fclose(f) == 0 && !bad && rename(tmp, path) == 0)
			rc = 0;
	}
	if (rc != 0) {
		fprintf(stderr, EU_NAME ": %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

static int eu_raw_listen(struct eu_state *st, const char *addr, const char *portfile)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, (int *)&len) != 0) {
		fprintf(stderr, EU_NAME ": -R: bad address %s\n", addr);
		return -1;
	}
	st->raw_listener = evconnlistener_new_bind(st->base, eu_raw_accept, st,
						   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
						   (struct sockaddr *)&ss, (int)len);
	len = sizeof(ss);
	if (st->raw_listener == NULL ||
	    getsockname(evconnlistener_get_fd(st->raw_listener), (struct sockaddr *)&ss, &len) != 0) {
		fprintf(stderr, EU_NAME ": -R: cannot listen on %s\n", addr);
		return -1;
	}
	port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	fprintf(stderr, "raw listener on %s port %d\n", addr, port);
	return eu_write_portfile(portfile, port);
}

static void eu_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct eu_state *st = arg;

	(void)sig;
	(void)what;
	event_base_loopbreak(st->base);
}

static void eu_usage(FILE *f)
{
	fputs("usage: " EU_NAME " [-b ADDR] [-p PORT] [-P PORTFILE] [-l LATENCY_MS]\n"
	      "       [-f FILE] [-g N] [-s ID=STATUS ...] [-R RAW_PORTFILE] [-q] [-A]\n"
	      "  -A  answer each request with the record as it was when the request\n"
	      "      arrived (a database read at arrival), not when the latency ends\n", f);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *portfile = NULL, *file = NULL, *rawfile = NULL;
	struct event *sig_term = NULL, *sig_int = NULL;
	struct evhttp_bound_socket *bs;
	struct eu_state st;
	long port = 8080, gen = 0;
	int c, rc = 1, bound, v6;

	memset(&st, 0, sizeof(st));
	st.records = eu_check(json_object());
	st.status = eu_check(json_object());
	st.counts = eu_check(json_object());
	st.delays = eu_check(json_object());
	st.tricks = eu_check(json_object());

	while ((c = getopt(argc, argv, "b:p:P:l:f:g:s:R:qAh")) != -1) {
		int bad = 0;

		switch (c) {
		case 'b': addr = optarg; break;
		case 'p': bad = eu_parse_long(optarg, 0, 65535, &port); break;
		case 'P': portfile = optarg; break;
		case 'l': bad = eu_parse_long(optarg, 0, EU_MAX_LATENCY_MS, &st.latency_ms); break;
		case 'f': file = optarg; break;
		case 'g': bad = eu_parse_long(optarg, 0, EU_MAX_GENERATE, &gen); break;
		case 's': bad = eu_opt_status(&st, optarg); break;
		case 'R': rawfile = optarg; break;
		case 'q': st.quiet = 1; break;
		case 'A': st.at_arrival = 1; break;
		case 'h': eu_usage(stdout); rc = 0; goto out;
		default: eu_usage(stderr); rc = 2; goto out;
		}
		if (bad) {
			fprintf(stderr, EU_NAME ": invalid -%c argument '%s'\n", c, optarg);
			eu_usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != argc) {
		fprintf(stderr, EU_NAME ": unexpected argument '%s'\n", argv[optind]);
		eu_usage(stderr);
		rc = 2;
		goto out;
	}
	if (file != NULL && eu_load_file(&st, file) != 0)
		goto out;
	eu_generate(&st, gen);

	/* A client that hangs up mid-reply must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	st.base = eu_check(event_base_new());
	st.http = eu_check(evhttp_new(st.base));
	evhttp_set_gencb(st.http, eu_handle, &st);

	/* Armed before the port is announced: a test may signal us right after. */
	sig_term = eu_check(evsignal_new(st.base, SIGTERM, eu_on_signal, &st));
	sig_int = eu_check(evsignal_new(st.base, SIGINT, eu_on_signal, &st));
	if (event_add(sig_term, NULL) != 0 || event_add(sig_int, NULL) != 0)
		goto out;

	bs = evhttp_bind_socket_with_handle(st.http, addr, (ev_uint16_t)port);
	if (bs == NULL || (bound = eu_bound_port(bs)) < 0) {
		fprintf(stderr, EU_NAME ": cannot listen on %s port %ld\n", addr, port);
		goto out;
	}
	v6 = strchr(addr, ':') != NULL;
	fprintf(stderr, "listening on %s%s%s:%d\n", v6 ? "[" : "", addr, v6 ? "]" : "", bound);
	/* Before the main port is announced: a test waits on that one. */
	if (rawfile != NULL && eu_raw_listen(&st, v6 ? "[::1]" : "127.0.0.1", rawfile) != 0)
		goto out;
	if (portfile != NULL && eu_write_portfile(portfile, bound) != 0)
		goto out;

	if (event_base_dispatch(st.base) == 0)
		rc = 0;
out:
	eu_pending_flush(&st);
	while (st.raws != NULL)
		eu_raw_free(st.raws);
	if (st.raw_listener != NULL)
		evconnlistener_free(st.raw_listener);
	if (st.http != NULL)
		evhttp_free(st.http);
	if (sig_term != NULL)
		event_free(sig_term);
	if (sig_int != NULL)
		event_free(sig_int);
	if (st.base != NULL)
		event_base_free(st.base);
	json_decref(st.records);
	json_decref(st.status);
	json_decref(st.counts);
	json_decref(st.delays);
	json_decref(st.tricks);
	libevent_global_shutdown();
	return rc;
}
