/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * harness.h - test-support library for cachasided integration tests (Check).
 *
 * Plain POSIX C: sockets, fork/exec, poll.  No libevent, no hiredis.
 * All helpers are prefixed h_.
 *
 * ERROR POLICY
 *   Functions documented "aborts" call ck_abort_msg() with a clear message
 *   (often including the tail of a process log) and do not return on
 *   failure.  Functions documented "returns" report failure through their
 *   return value and never abort.  Misuse (NULL struct, bad arguments) always
 *   aborts.  Failures are reported at the TEST's file:line (see the macros
 *   at the end of this header), with a message naming the h_ function.
 *   Summary - abort: tmpdir/path/write_file, free_port, spawn*, *_start*,
 *   redis_restart, upstream control helpers, daemon_init/rewrite_conf,
 *   connect/connect_unix, read_reply(_len), cmd, inline (protocol errors only),
 *   parse_reply*, reply_int.  Return: everything else (wait_*, stop*, kill,
 *   send*, http, is_closed, log_*, try_connect, daemon_try_start...).
 *
 * TIMEOUTS
 *   Nothing blocks without a deadline.  Every read is a poll() with a
 *   deadline; every write is non-blocking + poll().
 *     H_TIMEOUT_MS (5000)        default for replies, HTTP, connect, send,
 *                                process startup (redis, upstream, daemon)
 *     H_STOP_TIMEOUT_MS (5000)   SIGTERM grace in *_stop before SIGKILL
 *   Functions taking timeout_ms accept H_DEFAULT (-1) meaning H_TIMEOUT_MS.
 *
 * FINDING THE BINARIES (tests run from the build's tests/ dir under automake)
 *   cachasided:        $CACHASIDED_BIN, else H_DEFAULT_DAEMON_BIN
 *                      (default "../src/cachasided")
 *   example upstream:  $CACHASIDED_UPSTREAM_BIN, else H_DEFAULT_UPSTREAM_BIN
 *                      (default "./cachasided-example-upstream")
 *   redis-server:      $REDIS_SERVER_BIN, else $REDIS_SERVER (configure's
 *                      variable), else "redis-server" (via PATH)
 *   The compile-time defaults can be overridden with -DH_DEFAULT_DAEMON_BIN=...
 *   Relative paths are resolved against the cwd at spawn time.
 *
 * SCRATCH FILES
 *   h_tmpdir() makes /tmp/cachasided-test-XXXXXX once per process tree and
 *   removes it recursively at exit of the process that created it.  Call
 *   h_tmpdir() in main() BEFORE srunner_run_all() so the Check runner (the
 *   parent) owns it: CK_FORK children then share it, and it is removed even
 *   when a test fails (a failing CK_FORK child _exit()s without running
 *   atexit handlers).  Set CACHASIDED_KEEP_TMP=1 to keep it for debugging;
 *   logs of redis/upstream/daemon live there.
 *
 * CLEANUP - how test files must use the harness
 *     TCase *tc = tcase_create("x");
 *     tcase_add_checked_fixture(tc, NULL, h_cleanup);
 *     tcase_set_timeout(tc, 30);  // Check's default is only 4 s per test,
 *                                 // less than one 5 s startup timeout
 *   and in main():  h_tmpdir();  before srunner_run_all().
 *   h_cleanup() terminates (SIGTERM, then SIGKILL after 2 s) and reaps every
 *   process spawned by THIS process through the harness, closes every fd
 *   the harness has a read buffer for (h_connect*, or any fd passed to
 *   h_read_reply/h_is_closed), and frees those buffers.  It is also run by atexit
 *   in every process that used the harness.  Processes spawned by a parent
 *   (e.g. from an unchecked fixture) are never touched by a child's cleanup.
 *   When a test fails in CK_FORK mode Check _exit()s the test child and
 *   SIGKILLs its process group; spawned processes stay in that group (the
 *   harness never calls setpgid), so they die too.
 *
 * SIGNALS: the harness ignores SIGPIPE in the test process (first use);
 *   spawned children get SIG_DFL back, a clean signal mask, stdin=/dev/null,
 *   and no inherited fds besides 0-2 (all harness fds are also CLOEXEC).
 */
#ifndef CACHASIDED_TESTS_HARNESS_H
#define CACHASIDED_TESTS_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define H_TIMEOUT_MS 5000
#define H_STOP_TIMEOUT_MS 5000
#define H_DEFAULT (-1)

#ifndef H_DEFAULT_DAEMON_BIN
#define H_DEFAULT_DAEMON_BIN "../src/cachasided"
#endif
#ifndef H_DEFAULT_UPSTREAM_BIN
#define H_DEFAULT_UPSTREAM_BIN "./cachasided-example-upstream"
#endif

#if defined(__GNUC__)
#define H_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define H_SENTINEL __attribute__((sentinel))
#else
#define H_PRINTF(a, b)
#define H_SENTINEL
#endif

/* ---------------------------------------------------------------- time -- */
void h_msleep(int ms);          /* sleeps the full time despite EINTR */
long long h_now_ms(void);       /* CLOCK_MONOTONIC, milliseconds */

/* ------------------------------------------------------- files and dirs -- */
/* Per-process-tree scratch dir (see SCRATCH FILES).  Aborts on failure. */
const char *h_tmpdir(void);
/* "<tmpdir>/<name>" in one of 8 static rotating buffers: valid until the 8th
 * following call; copy it (strdup/snprintf) to keep it longer.  Aborts if
 * the result would not fit PATH_MAX. */
char *h_path(const char *name);
/* Writes (truncates) a file atomically (tmp file + rename).  Aborts. */
void h_write_file(const char *path, const char *data, size_t len);
/* 1 if the file contains needle, else 0 (also 0 if it does not exist). */
int h_log_contains(const char *logpath, const char *needle);
/* Current size of a file in bytes, 0 if missing.  Use as an offset for
 * h_wait_log_after() to ignore lines logged before some action. */
long h_log_size(const char *logpath);
/* Polls the file until needle appears: 0 found, -1 timeout.  Returns. */
int h_wait_log(const char *logpath, const char *needle, int timeout_ms);
int h_wait_log_after(const char *logpath, long offset, const char *needle,
                     int timeout_ms);
/* Last ~1500 bytes of a file, in a static buffer (for messages). */
const char *h_log_tail(const char *logpath);

/* ------------------------------------------------------------- dns ---- */
/* A resolver for the daemon (nameserver in its CACHASIDED_RESOLV_CONF):
 * answers the queries waiting on the UDP socket fd for ms milliseconds, an
 * A with 127.0.0.1, anything else with an empty NOERROR. */
void h_dns_serve(int fd, int ms);

/* ------------------------------------------------- ports and processes -- */
/* Binds 127.0.0.1:0, returns the kernel-chosen port, closes.  Aborts. */
int h_free_port(void);
/* fork+exec argv (PATH is searched) with stdout+stderr appended to logpath
 * (created 0644; NULL = /dev/null).  The pid is registered for h_cleanup.
 * Aborts if fork fails or exec fails (the exec error is reported back to the
 * parent, so a missing binary is a clear failure, not a silent 127). */
pid_t h_spawn(const char *const argv[], const char *logpath);
/* Same, with "NAME=VALUE" strings (NULL-terminated list, may be NULL) added
 * to (overriding) the inherited environment of the child only. */
pid_t h_spawn_env(const char *const argv[], const char *const envp_extra[],
                  const char *logpath);
/* 0 once 127.0.0.1:port accepts a TCP connection, -1 on timeout. Returns. */
int h_wait_port(int port, int timeout_ms);
/* waitpid with a deadline: 0 reaped (raw wait status in *status if not
 * NULL; pid unregistered), -1 timeout or not our child.  Returns. */
int h_wait_exit(pid_t pid, int timeout_ms, int *status);
/* kill(), ignoring ESRCH and pid <= 0.  Returns nothing, never aborts. */
void h_kill(pid_t pid, int sig);
/* SIGTERM, wait timeout_ms, SIGKILL if still alive, reap.  Returns the exit
 * status: WEXITSTATUS, or 128+signal if killed by a signal (137 when the
 * SIGKILL was needed), or -1 if pid is not an unreaped child of this
 * process (it is then never signalled: safe to call twice).  Returns. */
int h_stop(pid_t pid, int timeout_ms);
/* Encodes a raw wait status like h_stop does. */
int h_exit_code(int wait_status);
/* See CLEANUP above.  Safe to call any number of times. */
void h_cleanup(void);

/* ------------------------------------------------------------ redis ---- */
#define H_REDIS_MAX_EXTRA 16
struct h_redis {
    int port;            /* 0 before start = pick a free one */
    pid_t pid;           /* 0 when not running */
    char log[PATH_MAX];  /* redis-server stdout/stderr; set by start */
    /* internal: extra args remembered for h_redis_restart */
    int nextra;
    char extra[H_REDIS_MAX_EXTRA][256];
};
/* Runs redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
 * --daemonize no --dir <tmpdir> [extra...] and waits for PING -> PONG.
 * If r->port is 0 a free port is picked (retried on "address in use").
 * Zero the struct (or set port) before the first start.  Aborts with the log
 * tail if it is not up within H_TIMEOUT_MS. */
void h_redis_start(struct h_redis *r);
/* extra_args: NULL-terminated, e.g. {"--unixsocket", path, NULL}.
 * Copied, so h_path() buffers are fine.  Aborts. */
void h_redis_start_opts(struct h_redis *r, const char *const extra_args[]);
/* SIGTERM + wait (SIGKILL after H_STOP_TIMEOUT_MS).  No-op if not running.
 * Keeps port/log/extra args so the same struct can be restarted. */
void h_redis_stop(struct h_redis *r);
/* Stop, then start again on the same port with the same extra args; all
 * data is lost (no persistence).  Aborts. */
void h_redis_restart(struct h_redis *r);

/* --------------------------------------------------------- upstream ---- */
struct h_upstream {
    int port;                /* set by start */
    pid_t pid;
    char log[PATH_MAX];
    char portfile[PATH_MAX];
};
const char *h_upstream_bin(void);
/* Runs `<bin> -b 127.0.0.1 -p 0 -P <portfile> [-l latency] [-g n]` (each
 * option only if > 0), reads the port from the portfile, waits for it.
 * Aborts with the log tail after H_TIMEOUT_MS or if it exits early. */
void h_upstream_start(struct h_upstream *u, int latency_ms, int generate_n);
/* Same plus extra args (NULL-terminated), e.g. {"-s", "7=503", NULL}. */
void h_upstream_start_args(struct h_upstream *u, int latency_ms,
                           int generate_n, const char *const extra[]);
/* Returns the exit status like h_stop; -1 if it was not running. */
int h_upstream_stop(struct h_upstream *u);

/* Blocking HTTP/1.1 client, Connection: close, Content-Length sent when
 * body != NULL.  Reads until close or until Content-Length bytes (chunked
 * bodies are decoded), deadline H_TIMEOUT_MS.  Copies the body,
 * NUL-terminated and truncated to outsz-1, into out (may be NULL).
 * Returns the status code, or -1 on connect/IO/parse failure or timeout. */
int h_http(int port, const char *method, const char *path, const char *body,
           size_t bodylen, char *out, size_t outsz);
/* Control helpers: IDs are percent-encoded (all but A-Za-z0-9-._~).  They
 * abort on any transport failure or unexpected status (2xx expected; 404 is
 * also accepted for the DELETE forms). */
long h_upstream_count(struct h_upstream *u);              /* GET /_count */
long h_upstream_count_id(struct h_upstream *u, const char *id);
void h_upstream_reset(struct h_upstream *u);              /* POST /_reset */
void h_upstream_set_latency(struct h_upstream *u, int ms);
void h_upstream_set_status(struct h_upstream *u, const char *id, int status);
void h_upstream_set_body(struct h_upstream *u, const char *id,
                         const char *body);               /* NULL = delete */
/* Percent-encodes s into out (truncated to outsz-1).  Returns out. */
char *h_urlencode(const char *s, char *out, size_t outsz);

/* ------------------------------------------------------- the daemon ---- */
struct h_daemon {
    int port;             /* the port the config listens on; set by caller */
    pid_t pid;
    char conf[PATH_MAX];  /* fresh file in tmpdir unless already set */
    char log[PATH_MAX];   /* stderr+stdout; fresh unless already set */
};
const char *h_daemon_bin(void);
/* Zeroes *d and sets d->port = h_free_port().  Typical use:
 *   struct h_daemon d; h_daemon_init(&d);
 *   h_daemon_start(&d, "[server]\nlisten = 127.0.0.1:%d\n...", d.port, ...);
 * Tests that set d->port themselves need not call it (zero d though). */
void h_daemon_init(struct h_daemon *d);
/* Formats the config (printf-style), writes it to d->conf, spawns
 * `cachasided -c d->conf` logging to d->log, and waits until d->port
 * accepts connections.  Aborts (with the log tail) if d->port <= 0, if the
 * daemon exits during startup, or if it is not listening in H_TIMEOUT_MS.
 * Reusing a stopped struct reuses conf/log paths (log is appended: use
 * h_log_size() + h_wait_log_after() to skip old lines). */
void h_daemon_start(struct h_daemon *d, const char *conf_fmt, ...) H_PRINTF(2, 3);
/* Same with extra "NAME=VALUE" env strings (e.g. NOTIFY_SOCKET=...). */
void h_daemon_start_env(struct h_daemon *d, const char *const envp_extra[],
                        const char *conf_fmt, ...) H_PRINTF(3, 4);
/* Non-aborting variant for tests expecting a startup failure: returns 0
 * when listening (d->pid set), else -1 with the process reaped, d->pid = 0
 * and *exit_status (if not NULL) = its exit code (h_stop encoding), or -1
 * if it was killed because it neither listened nor exited in timeout_ms. */
int h_daemon_try_start(struct h_daemon *d, int timeout_ms, int *exit_status,
                       const char *conf_fmt, ...) H_PRINTF(4, 5);
/* SIGTERM, wait H_STOP_TIMEOUT_MS, SIGKILL.  Returns the exit status like
 * h_stop (expect 0), -1 if not running.  Never aborts. */
int h_daemon_stop(struct h_daemon *d);
/* Atomically rewrites d->conf (then e.g. h_kill(d->pid, SIGHUP)).  Aborts. */
void h_daemon_rewrite_conf(struct h_daemon *d, const char *fmt, ...) H_PRINTF(2, 3);

/* -------------------------------------------------------- RESP client -- */
/* Connects to 127.0.0.1:port (TCP_NODELAY) or a unix socket, with a
 * deadline.  The fd is O_NONBLOCK|CLOEXEC: use the h_send and h_read_reply
 * functions on it.
 * Aborts on failure.  Close with h_close() (drops its read buffer). */
int h_connect(int port);
int h_connect_unix(const char *path);
/* Like h_connect but returns -1 instead of aborting. */
int h_try_connect(int port, int timeout_ms);
void h_close(int fd);

/* Sends raw bytes / printf-formatted raw bytes / a RESP array of bulk
 * strings.  Return 0, or -1 (errno set) when the peer closed, on error or
 * after H_TIMEOUT_MS without progress.  Never abort; ignoring the result is
 * fine (the following read then fails). */
int h_send(int fd, const char *data, size_t len);
int h_sendf(int fd, const char *fmt, ...) H_PRINTF(2, 3);
int h_send_cmd(int fd, int argc, const char *argv[]);
/* argvlen may be NULL (strlen is used) - binary-safe otherwise. */
int h_send_cmd_len(int fd, int argc, const char *argv[], const size_t argvlen[]);
int h_send_cmdv(int fd, const char *cmd, ...) H_SENTINEL; /* NULL-terminated */

/* Reads exactly one complete reply (RESP2: + - : $ * incl. $-1, *-1 and
 * nesting; RESP3 types are framed too) and returns its raw bytes, malloc'd
 * and NUL-terminated (caller frees).  Bytes after the reply stay buffered
 * for the next call (pipelining).  Returns NULL on timeout or EOF.  ABORTS
 * on a protocol violation (showing the offending bytes). */
char *h_read_reply(int fd, int timeout_ms);
/* Same, also storing the raw length (replies may contain NUL bytes). */
char *h_read_reply_len(int fd, int timeout_ms, size_t *len);
/* Sends cmd + args (NULL-terminated) as RESP, reads one reply with the
 * default timeout.  Returns like h_read_reply (NULL on send error too). */
char *h_cmd(int fd, const char *cmd, ...) H_SENTINEL;
/* Sends line + "\r\n" (inline command), reads one reply. */
char *h_inline(int fd, const char *line);
/* 1 if the peer closed (EOF/ECONNRESET) within timeout_ms, after draining
 * and discarding pending data (buffered too); 0 if still open.  Returns. */
int h_is_closed(int fd, int timeout_ms);

/* --------------------------------------------------- reply decoding ---- */
enum h_reply_type {
    H_REPLY_STATUS = '+',
    H_REPLY_ERROR = '-',
    H_REPLY_INTEGER = ':',
    H_REPLY_BULK = '$',
    H_REPLY_ARRAY = '*',
    H_REPLY_NIL = '_',      /* $-1, *-1 and RESP3 _ (see .prefix) */
    /* RESP3 */
    H_REPLY_DOUBLE = ',',   /* str */
    H_REPLY_BOOL = '#',     /* integer 0/1 */
    H_REPLY_BIGNUM = '(',   /* str */
    H_REPLY_VERBATIM = '=', /* str including the "txt:" prefix */
    H_REPLY_BLOBERR = '!',  /* str */
    H_REPLY_MAP = '%',      /* elements = 2*n, flattened k0,v0,k1,v1... */
    H_REPLY_SET = '~',
    H_REPLY_PUSH = '>'
};
struct h_reply {
    enum h_reply_type type;
    char prefix;               /* the raw type byte, e.g. '$' for $-1 */
    long long integer;         /* INTEGER, BOOL */
    char *str;                 /* STATUS/ERROR/BULK/...: NUL-terminated */
    size_t len;                /* length of str (binary-safe) */
    size_t elements;           /* ARRAY/MAP/SET/PUSH */
    struct h_reply **element;
};
/* Parses one raw reply (as returned by h_read_reply).  ABORTS on NULL input
 * (i.e. a timed-out read) or malformed input.  Free with h_reply_free. */
struct h_reply *h_parse_reply(const char *raw);
struct h_reply *h_parse_reply_len(const char *raw, size_t len);
void h_reply_free(struct h_reply *r);
/* Value of ":N\r\n".  ABORTS if raw is NULL or not an integer reply. */
long long h_reply_int(const char *raw);
/* Printable form of raw bytes (\r \n and non-printables escaped) in one of
 * 4 static rotating buffers, truncated at ~1000 chars; NULL -> "(null)".
 * For assertion messages. */
const char *h_repr(const char *raw);

/* ------------------------------------------------- failure locations -- */
/* Every function that can abort is wrapped by a macro that records the
 * caller's __FILE__/__LINE__ first, so a Check failure points at the test
 * line, not into harness.c.  (Take a function's address with (h_cmd) etc.) */
void h_at(const char *file, int line);
#ifndef H_INTERNAL
#define H_AT_(call) (h_at(__FILE__, __LINE__), call)
#define h_tmpdir(...) H_AT_(h_tmpdir(__VA_ARGS__))
#define h_path(...) H_AT_(h_path(__VA_ARGS__))
#define h_write_file(...) H_AT_(h_write_file(__VA_ARGS__))
#define h_free_port(...) H_AT_(h_free_port(__VA_ARGS__))
#define h_spawn(...) H_AT_(h_spawn(__VA_ARGS__))
#define h_spawn_env(...) H_AT_(h_spawn_env(__VA_ARGS__))
#define h_redis_start(...) H_AT_(h_redis_start(__VA_ARGS__))
#define h_redis_start_opts(...) H_AT_(h_redis_start_opts(__VA_ARGS__))
#define h_redis_restart(...) H_AT_(h_redis_restart(__VA_ARGS__))
#define h_upstream_start(...) H_AT_(h_upstream_start(__VA_ARGS__))
#define h_upstream_start_args(...) H_AT_(h_upstream_start_args(__VA_ARGS__))
#define h_upstream_count(...) H_AT_(h_upstream_count(__VA_ARGS__))
#define h_upstream_count_id(...) H_AT_(h_upstream_count_id(__VA_ARGS__))
#define h_upstream_reset(...) H_AT_(h_upstream_reset(__VA_ARGS__))
#define h_upstream_set_latency(...) H_AT_(h_upstream_set_latency(__VA_ARGS__))
#define h_upstream_set_status(...) H_AT_(h_upstream_set_status(__VA_ARGS__))
#define h_upstream_set_body(...) H_AT_(h_upstream_set_body(__VA_ARGS__))
#define h_daemon_init(...) H_AT_(h_daemon_init(__VA_ARGS__))
#define h_daemon_start(...) H_AT_(h_daemon_start(__VA_ARGS__))
#define h_daemon_start_env(...) H_AT_(h_daemon_start_env(__VA_ARGS__))
#define h_daemon_try_start(...) H_AT_(h_daemon_try_start(__VA_ARGS__))
#define h_daemon_rewrite_conf(...) H_AT_(h_daemon_rewrite_conf(__VA_ARGS__))
#define h_connect(...) H_AT_(h_connect(__VA_ARGS__))
#define h_connect_unix(...) H_AT_(h_connect_unix(__VA_ARGS__))
#define h_read_reply(...) H_AT_(h_read_reply(__VA_ARGS__))
#define h_read_reply_len(...) H_AT_(h_read_reply_len(__VA_ARGS__))
#define h_cmd(...) H_AT_(h_cmd(__VA_ARGS__))
#define h_inline(...) H_AT_(h_inline(__VA_ARGS__))
#define h_is_closed(...) H_AT_(h_is_closed(__VA_ARGS__))
#define h_parse_reply(...) H_AT_(h_parse_reply(__VA_ARGS__))
#define h_parse_reply_len(...) H_AT_(h_parse_reply_len(__VA_ARGS__))
#define h_reply_int(...) H_AT_(h_reply_int(__VA_ARGS__))
#define h_sendf(...) H_AT_(h_sendf(__VA_ARGS__))
#endif

#endif
