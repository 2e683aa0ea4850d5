/*
 * cachasided-example-upstream: a small HTTP/1.1 backend for tests and demos.
 *
 * Serves records at GET /<prefix...>/<ID> and exposes control endpoints
 * under /_ so integration tests can change records, force statuses, add
 * latency and read request counters. Single-threaded on libevent's evhttp.
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
#include <event2/event.h>
#include <event2/http.h>
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
};

struct eu_state {
	struct event_base *base;
	struct evhttp *http;
	json_t *records;		/* id -> JSON string holding the raw body */
	json_t *status;			/* id -> integer status override */
	json_t *counts;			/* id -> integer data requests */
	unsigned long long requests;	/* data requests since start or /_reset */
	long latency_ms;
	int quiet;
	struct eu_pending *pending;
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

static void eu_data_reply(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	json_t *v;

	if ((v = json_object_get(st->status, id)) != NULL) {
		int code = (int)json_integer_value(v);
		char msg[32];

		snprintf(msg, sizeof(msg), "status %d", code);
		eu_error(st, req, code, msg);
	} else if ((v = json_object_get(st->records, id)) != NULL) {
		eu_reply(st, req, 200, eu_json, json_string_value(v), json_string_length(v));
	} else {
		eu_error(st, req, 404, "not found");
	}
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
	free(p->id);
	free(p);
}

static void eu_pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct eu_pending *p = arg;

	(void)fd;
	(void)what;
	eu_pending_unlink(p->st, p);
	eu_data_reply(p->st, p->req, p->id);
	eu_pending_free(p);
}

/* On shutdown every waiting request still gets an answer, so none leaks. */
static void eu_pending_flush(struct eu_state *st)
{
	while (st->pending != NULL) {
		struct eu_pending *p = st->pending;

		eu_pending_unlink(st, p);
		eu_error(st, p->req, 503, "shutting down");
		eu_pending_free(p);
	}
}

static void eu_data(struct eu_state *st, struct evhttp_request *req, const char *path)
{
	const char *seg = strrchr(path, '/');
	struct eu_pending *p;
	struct timeval tv;
	json_t *c;
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
	st->requests++;
	if ((c = json_object_get(st->counts, id)) != NULL)
		json_integer_set(c, json_integer_value(c) + 1);
	else
		eu_set(st->counts, id, json_integer(1));

	if (st->latency_ms == 0) {
		eu_data_reply(st, req, id);
		free(id);
		return;
	}
	p = eu_check(calloc(1, sizeof(*p)));
	p->st = st;
	p->req = req;
	p->id = id;
	p->timer = eu_check(evtimer_new(st->base, eu_pending_fire, p));
	p->next = st->pending;
	if (st->pending != NULL)
		st->pending->prev = p;
	st->pending = p;
	tv.tv_sec = st->latency_ms / 1000;
	tv.tv_usec = (st->latency_ms % 1000) * 1000;
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
	char body[128];
	int len = snprintf(body, sizeof(body), "{\"requests\":%llu,\"latency_ms\":%ld,\"records\":%zu}",
			   st->requests, st->latency_ms, json_object_size(st->records));

	(void)id;
	eu_reply(st, req, 200, eu_json, body, (size_t)len);
}

static void eu_ctl_reset(struct eu_state *st, struct evhttp_request *req, const char *id)
{
	(void)id;
	st->requests = 0;
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
	      "       [-f FILE] [-g N] [-s ID=STATUS ...] [-q]\n", f);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *portfile = NULL, *file = NULL;
	struct event *sig_term = NULL, *sig_int = NULL;
	struct evhttp_bound_socket *bs;
	struct eu_state st;
	long port = 8080, gen = 0;
	int c, rc = 1, bound, v6;

	memset(&st, 0, sizeof(st));
	st.records = eu_check(json_object());
	st.status = eu_check(json_object());
	st.counts = eu_check(json_object());

	while ((c = getopt(argc, argv, "b:p:P:l:f:g:s:qh")) != -1) {
		int bad = 0;

		switch (c) {
		case 'b': addr = optarg; break;
		case 'p': bad = eu_parse_long(optarg, 0, 65535, &port); break;
		case 'P': portfile = optarg; break;
		case 'l': bad = eu_parse_long(optarg, 0, EU_MAX_LATENCY_MS, &st.latency_ms); break;
		case 'f': file = optarg; break;
		case 'g': bad = eu_parse_long(optarg, 0, EU_MAX_GENERATE, &gen); break;
		case 's': bad = eu_opt_status(&st, optarg); break;
		case 'q': st.quiet = 1; break;
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
	if (portfile != NULL && eu_write_portfile(portfile, bound) != 0)
		goto out;

	if (event_base_dispatch(st.base) == 0)
		rc = 0;
out:
	eu_pending_flush(&st);
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
	libevent_global_shutdown();
	return rc;
}
