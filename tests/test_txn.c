/* SPDX-License-Identifier: BSD-3-Clause */
/* test_txn.c - unit tests of the transaction state machine (src/client/multi.c):
 * its decisions and the replies it writes, every error path, without a
 * daemon (tests/test_multi.c drives the same through a real one).
 *
 * multi.c is linked alone with resp.c; what it calls below it is faked
 * here: the requests and their reply order (req.c) are an arena whose
 * replies all go to one buffer, the wire, in the order they are made;
 * command_run answers a command with its first argument; the key checks
 * (keys.c) accept "product:<id>" and the glob "product:*".
 * The helpers dispatch and refuse do what command_dispatch and its
 * cmd_refuse do with multi.c's answers (src/client/command.c). */
#include "core.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "keys.h"
#include "multi.h"
#include "req.h"
#include "resp.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fake below multi.c ---- */

#define NREQ 200
#define MAXARG 6

/* What happened to one request. */
struct fact {
    int done;           /* req_done calls */
    bool aside;         /* req_set_aside */
    int rejoined;       /* req_rejoin calls */
    int discarded;      /* req_discard calls */
    int ran;            /* command_run: its rank among the commands run, 0 = never */
};

static struct req reqs[NREQ];
static struct cs_str args[NREQ][MAXARG];
static struct fact F[NREQ];
static int nreq, nran;
static struct evbuffer *wire;
static struct conn conn;
static struct cs_config conf;

#define FACT(r) (&F[(r) - reqs])

static struct req *fake_req(void)
{
    struct req *r;

    ck_assert_int_lt(nreq, NREQ);
    r = &reqs[nreq++];
    r->conn = &conn;
    r->conf = &conf;
    r->argv = args[r - reqs];
    return r;
}

struct evbuffer *req_out(struct req *r)
{
    struct fact *f = FACT(r);

    ck_assert_msg(!f->aside || f->rejoined, "a queued command wrote a reply");
    ck_assert_int_eq(f->done, 0);
    return wire;
}

void req_done(struct req *r)
{
    FACT(r)->done++;
}

/* It leaves the reply order; its place answers status (+QUEUED). */
void req_set_aside(struct req *r, const char *status)
{
    ck_assert(!FACT(r)->aside);
    FACT(r)->aside = true;
    resp_simple(wire, status);
}

void req_rejoin(struct req *r, int64_t t0_us)
{
    ck_assert(FACT(r)->aside);
    FACT(r)->rejoined++;
}

void req_discard(struct req *r)
{
    ck_assert(FACT(r)->aside);
    FACT(r)->discarded++;
}

void command_run(struct req *r)
{
    FACT(r)->ran = ++nran;
    r->cmd->proc(r);
}

static int key_checks;

static int fake_key(struct cs_str key, const char *what, char *err, size_t errsz)
{
    key_checks++;
    if (key.len > 8 && memcmp(key.p, "product:", 8) == 0)
        return CS_OK;
    snprintf(err, errsz, "ERR bad %s '%.*s'", what, (int)key.len, key.p);
    return CS_ERR;
}

int keys_parse(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *id, char *err,
               size_t errsz)
{
    return fake_key(key, "key", err, errsz);
}

int keys_parse_glob(const struct cs_config *c, struct cs_str key, const struct cs_ns **ns, struct cs_str *glob,
                    char *err, size_t errsz)
{
    return fake_key(key, "pattern", err, errsz);
}

/* A command's reply: a bulk of its first argument. */
static void cmd_echo(struct req *r)
{
    resp_bulk(req_out(r), r->argv[1].p, r->argv[1].len);
    req_done(r);
}

static void cmd_quit(struct req *r)
{
    resp_simple(req_out(r), "OK");
    req_done(r);
}

/* The rows of src/client/command.c that matter here: their flags and keys. */
#define ROW(n, a, f, p) { .name = n, .arity = a, .flags = f, .proc = p }
#define KEYED(n, a, f, fk, lk) \
    { .name = n, .arity = a, .flags = f, .proc = cmd_echo, .first = fk, .last = lk, .step = 1 }
static const struct cmd_def C_MULTI = ROW("multi", 1, CMD_NOQUEUE, multi_cmd_multi);
static const struct cmd_def C_EXEC = ROW("exec", 1, CMD_NOQUEUE | CMD_EXEC, multi_cmd_exec);
static const struct cmd_def C_DISCARD = ROW("discard", 1, CMD_NOQUEUE, multi_cmd_discard);
static const struct cmd_def C_WATCH = ROW("watch", -2, CMD_NOQUEUE, multi_cmd_watch);
static const struct cmd_def C_UNWATCH = ROW("unwatch", 1, 0, multi_cmd_unwatch);
static const struct cmd_def C_QUIT = ROW("quit", -1, CMD_NOAUTH | CMD_NOQUEUE, cmd_quit);
static const struct cmd_def C_ECHO = ROW("echo", 2, 0, cmd_echo);
static const struct cmd_def C_HGET = KEYED("hget", 3, CMD_READ, 1, 1);
static const struct cmd_def C_MGET = KEYED("mget", -2, CMD_READ, 1, -1);
static const struct cmd_def C_INVAL = KEYED("invalidate", 2, CMD_WRITE | CMD_PATTERN, 1, 1);

/* A request of d (NULL: an unknown command) with the given arguments
 * after the name, NULL-ended. */
static struct req *mk(const struct cmd_def *d, ...)
{
    struct req *r = fake_req();
    const char *a;
    va_list ap;

    r->cmd = d;
    r->argv[r->argc].p = d ? d->name : "frobnicate";
    r->argv[r->argc].len = strlen(r->argv[0].p);
    r->bytes = 64;
    va_start(ap, d);
    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(++r->argc, MAXARG);
        r->argv[r->argc].p = a;
        r->argv[r->argc].len = strlen(a);
    }
    va_end(ap);
    r->argc++;
    return r;
}

/* command_dispatch once its checks have passed. */
static struct req *dispatch(struct req *r)
{
    if (!(r->conn && r->conn->multi && multi_queue(r)))
        command_run(r);
    return r;
}

/* command_dispatch's cmd_refuse: a command refused before it ran. */
static struct req *refuse(struct req *r, const char *msg)
{
    if (r->conn && r->conn->multi && multi_refused(r, msg))
        return r;
    resp_error(req_out(r), msg);
    req_done(r);
    return r;
}

#define SEND(...) dispatch(mk(__VA_ARGS__, NULL))

/* The wire holds exactly want; it is emptied. */
static void wire_is(const char *want)
{
    size_t n = evbuffer_get_length(wire);
    char *got = malloc(n + 1);

    ck_assert_ptr_nonnull(got);
    evbuffer_remove(wire, got, n);
    got[n] = '\0';
    ck_assert_str_eq(got, want);
    free(got);
}

static void setup(void)
{
    memset(reqs, 0, sizeof(reqs));
    memset(args, 0, sizeof(args));
    memset(F, 0, sizeof(F));
    memset(&conn, 0, sizeof(conn));
    memset(&conf, 0, sizeof(conf));
    conf.max_inflight_per_client = 100;
    conf.max_request_bytes = 1000;
    nreq = nran = key_checks = 0;
    wire = evbuffer_new();
}

static void teardown(void)
{
    multi_close(&conn);
    evbuffer_free(wire);
}

/* Every request was answered once, or was queued and then either run
 * (and answered) or discarded. */
static void all_accounted(void)
{
    for (int i = 0; i < nreq; i++) {
        const struct fact *f = &F[i];
        if (f->aside)
            ck_assert_msg((f->rejoined == 1 && f->ran && f->done == 1 && !f->discarded) ||
                          (f->discarded == 1 && !f->rejoined && !f->ran && !f->done),
                          "queued request %d: rejoined %d ran %d done %d discarded %d",
                          i, f->rejoined, f->ran, f->done, f->discarded);
        else
            ck_assert_msg(f->done == 1, "request %d answered %d times", i, f->done);
    }
}

static const char execabort[] = "-EXECABORT Transaction discarded because of previous errors.\r\n";

/* ---- tests ---- */

/* Queued commands answer +QUEUED and wait out of the reply order; EXEC
 * writes the array's header, and they run after it, in order, each its
 * element; the transaction ends with the last. */
START_TEST(t_exec_runs_queue_in_order)
{
    struct req *a, *b, *c;

    ck_assert_int_eq(multi_queued(conn.multi), -1);
    SEND(&C_MULTI);
    wire_is("+OK\r\n");
    ck_assert_ptr_nonnull(conn.multi);
    ck_assert_int_eq(multi_queued(conn.multi), 0);
    a = SEND(&C_HGET, "product:1", "name");
    b = SEND(&C_MGET, "product:2", "product:3");
    c = SEND(&C_ECHO, "hello");
    wire_is("+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    ck_assert_int_eq(multi_queued(conn.multi), 3);
    ck_assert(FACT(a)->aside && FACT(b)->aside && FACT(c)->aside);
    ck_assert_int_eq(nran, 1);          /* MULTI only */
    ck_assert(!multi_pending(conn.multi));

    SEND(&C_EXEC);
    wire_is("*3\r\n");
    ck_assert_int_eq(nran, 2);          /* MULTI, EXEC: its commands wait for conn.c */
    ck_assert(multi_pending(conn.multi));
    ck_assert_int_eq(multi_queued(conn.multi), -1);
    multi_start_next(&conn);
    multi_start_next(&conn);
    ck_assert_ptr_nonnull(conn.multi);
    multi_start_next(&conn);
    ck_assert_ptr_null(conn.multi);
    wire_is("$9\r\nproduct:1\r\n$9\r\nproduct:2\r\n$5\r\nhello\r\n");
    ck_assert_int_lt(FACT(a)->ran, FACT(b)->ran);
    ck_assert_int_lt(FACT(b)->ran, FACT(c)->ran);

    SEND(&C_EXEC);
    wire_is("-ERR EXEC without MULTI\r\n");
    all_accounted();
}
END_TEST

/* An empty transaction: an empty array, and it is over at once. */
START_TEST(t_exec_empty)
{
    SEND(&C_MULTI);
    SEND(&C_EXEC);
    wire_is("+OK\r\n*0\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

START_TEST(t_without_multi)
{
    SEND(&C_EXEC);
    SEND(&C_DISCARD);
    wire_is("-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n");
    ck_assert_ptr_null(conn.multi);
    SEND(&C_HGET, "product:1", "name");     /* runs at once */
    wire_is("$9\r\nproduct:1\r\n");
    all_accounted();
}
END_TEST

/* DISCARD frees what was queued, which never runs, and ends it. */
START_TEST(t_discard)
{
    struct req *a, *b;

    SEND(&C_MULTI);
    a = SEND(&C_HGET, "product:1", "name");
    b = SEND(&C_ECHO, "x");
    SEND(&C_DISCARD);
    wire_is("+OK\r\n+QUEUED\r\n+QUEUED\r\n+OK\r\n");
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(FACT(a)->discarded, 1);
    ck_assert_int_eq(FACT(b)->discarded, 1);
    SEND(&C_DISCARD);
    SEND(&C_EXEC);
    wire_is("-ERR DISCARD without MULTI\r\n-ERR EXEC without MULTI\r\n");
    ck_assert_int_eq(nran, 4);          /* MULTI, DISCARD twice, EXEC: not a, b */
    all_accounted();
}
END_TEST

/* A nested MULTI is an error that does not doom the transaction (Redis). */
START_TEST(t_nested_multi)
{
    SEND(&C_MULTI);
    SEND(&C_ECHO, "a");
    SEND(&C_MULTI);
    SEND(&C_ECHO, "b");
    wire_is("+OK\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n");
    ck_assert_int_eq(multi_queued(conn.multi), 2);
    SEND(&C_EXEC);
    multi_start_next(&conn);
    multi_start_next(&conn);
    wire_is("*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* WATCH is refused outside MULTI (and starts nothing), refused inside
 * without dooming it; UNWATCH is +OK, and queued inside as in Redis. */
START_TEST(t_watch)
{
    SEND(&C_WATCH, "product:1");
    wire_is("-ERR WATCH is not supported: cachasided cannot promise optimistic locking over a cache "
            "(see docs/protocol.md)\r\n");
    ck_assert_ptr_null(conn.multi);
    SEND(&C_UNWATCH);
    wire_is("+OK\r\n");
    SEND(&C_MULTI);
    SEND(&C_WATCH, "product:1");
    SEND(&C_UNWATCH);
    wire_is("+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n+QUEUED\r\n");
    SEND(&C_EXEC);
    multi_start_next(&conn);
    wire_is("*1\r\n+OK\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* A command that is never queued (QUIT) runs at once inside MULTI and
 * leaves the queue as it was. */
START_TEST(t_noqueue_runs_now)
{
    struct req *q;

    SEND(&C_MULTI);
    SEND(&C_ECHO, "a");
    q = mk(&C_QUIT, NULL);
    ck_assert(!multi_queue(q));
    ck_assert_int_eq(FACT(q)->done, 0);
    command_run(q);
    wire_is("+OK\r\n+QUEUED\r\n+OK\r\n");
    ck_assert_int_eq(multi_queued(conn.multi), 1);
    SEND(&C_DISCARD);
    wire_is("+OK\r\n");
    all_accounted();
}
END_TEST

/* What command_dispatch refuses before a command runs, inside MULTI: the
 * error is the command's answer, what was queued is dropped, later
 * commands answer +QUEUED and are dropped too, and EXEC answers
 * EXECABORT and ends the transaction. */
static const struct {
    const struct cmd_def *d;
    const char *arg;
    const char *msg;
} refusals[] = {
    { NULL, "x", "ERR unknown command 'frobnicate'" },
    { &C_HGET, "product:1", "ERR wrong number of arguments for 'hget' command" },
    { &C_ECHO, "x", "NOAUTH Authentication required." },
};

START_TEST(t_refused_dooms)
{
    struct req *a, *later;
    char want[200];

    SEND(&C_MULTI);
    a = SEND(&C_ECHO, "a");
    refuse(mk(refusals[_i].d, refusals[_i].arg, NULL), refusals[_i].msg);
    snprintf(want, sizeof(want), "+OK\r\n+QUEUED\r\n-%s\r\n", refusals[_i].msg);
    wire_is(want);
    ck_assert_int_eq(FACT(a)->discarded, 1);
    ck_assert_int_eq(multi_queued(conn.multi), 0);
    later = SEND(&C_HGET, "product:2", "name");
    wire_is("+QUEUED\r\n");
    ck_assert(!FACT(later)->aside);     /* answered and dropped: nothing held */
    ck_assert_int_eq(multi_queued(conn.multi), 0);
    SEND(&C_EXEC);
    wire_is(execabort);
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(nran, 2);          /* MULTI and EXEC */
    all_accounted();
}
END_TEST

/* Outside MULTI a refusal is only the command's error. */
START_TEST(t_refused_outside)
{
    refuse(mk(NULL, "x", NULL), "ERR unknown command 'frobnicate'");
    wire_is("-ERR unknown command 'frobnicate'\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* A bad key is refused at queue time with the key check's error and
 * dooms the transaction; only key arguments are checked: argv[1] of a
 * one-key command, every argument of MGET, the glob of INVALIDATE. */
START_TEST(t_bad_key_dooms)
{
    static const char *const bad[][3] = {
        { "hget", "item:1", "-ERR bad key 'item:1'\r\n" },
        { "mget", "item:2", "-ERR bad key 'item:2'\r\n" },
        { "invalidate", "item:*", "-ERR bad pattern 'item:*'\r\n" },
    };
    struct req *a;

    SEND(&C_MULTI);
    a = SEND(&C_HGET, "product:1", "not-a-key");
    SEND(&C_MGET, "product:1", "product:2", "product:3");
    SEND(&C_INVAL, "product:*");
    ck_assert_int_eq(key_checks, 5);
    wire_is("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    if (_i == 0)
        SEND(&C_HGET, bad[_i][1], "name");
    else if (_i == 1)
        SEND(&C_MGET, "product:1", bad[_i][1], "product:3");
    else
        SEND(&C_INVAL, bad[_i][1]);
    wire_is(bad[_i][2]);
    ck_assert_int_eq(FACT(a)->discarded, 1);
    SEND(&C_ECHO, "later");
    SEND(&C_EXEC);
    wire_is("+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* EXEC itself refused (its arity, NOAUTH) ends the transaction with the
 * reason, as Redis does; nothing queued runs. */
START_TEST(t_exec_refused)
{
    struct req *a;

    SEND(&C_MULTI);
    a = SEND(&C_ECHO, "a");
    refuse(mk(&C_EXEC, "extra", NULL), "ERR wrong number of arguments for 'exec' command");
    wire_is("+OK\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of: "
            "wrong number of arguments for 'exec' command\r\n");
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(FACT(a)->discarded, 1);
    SEND(&C_MULTI);
    refuse(mk(&C_EXEC, NULL), "NOAUTH Authentication required.");
    wire_is("+OK\r\n-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n");
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* max_inflight_per_client commands queue; one more is refused and dooms
 * the transaction, dropping the rest. */
START_TEST(t_too_many)
{
    conf.max_inflight_per_client = 3;
    SEND(&C_MULTI);
    for (int i = 0; i < 3; i++)
        SEND(&C_ECHO, "x");
    wire_is("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
    ck_assert_int_eq(multi_queued(conn.multi), 3);
    SEND(&C_ECHO, "x");
    wire_is("-ERR transaction too long (over max_inflight_per_client commands)\r\n");
    ck_assert_int_eq(multi_queued(conn.multi), 0);
    for (int i = 0; i < 5; i++)
        SEND(&C_ECHO, "x");
    SEND(&C_EXEC);
    wire_is("+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n");
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(nran, 2);
    all_accounted();
}
END_TEST

/* The queue holds at most 64 x max_request_bytes of requests: exactly
 * that fits, a byte more dooms the transaction. */
START_TEST(t_too_large)
{
    struct req *r;

    conf.max_request_bytes = 100;       /* 6400 bytes queued at most */
    SEND(&C_MULTI);
    r = mk(&C_ECHO, "x", NULL);
    r->bytes = 3000;
    dispatch(r);
    r = mk(&C_ECHO, "y", NULL);
    r->bytes = 3400;
    dispatch(r);
    wire_is("+OK\r\n+QUEUED\r\n+QUEUED\r\n");
    SEND(&C_DISCARD);
    SEND(&C_MULTI);
    r = mk(&C_ECHO, "x", NULL);
    r->bytes = 3000;
    dispatch(r);
    r = mk(&C_ECHO, "y", NULL);
    r->bytes = 3401;
    dispatch(r);
    wire_is("+OK\r\n+OK\r\n+QUEUED\r\n"
            "-ERR transaction too large (over 64 x max_request_bytes of commands)\r\n");
    SEND(&C_EXEC);
    wire_is(execabort);
    ck_assert_ptr_null(conn.multi);
    all_accounted();
}
END_TEST

/* A doomed transaction holds nothing, so it cannot be refused for its
 * size again: a bad key after the bound is still refused by its key. */
START_TEST(t_doomed_holds_nothing)
{
    conf.max_inflight_per_client = 1;
    SEND(&C_MULTI);
    SEND(&C_ECHO, "x");
    SEND(&C_ECHO, "y");
    SEND(&C_ECHO, "z");
    SEND(&C_HGET, "item:1", "name");
    wire_is("+OK\r\n+QUEUED\r\n"
            "-ERR transaction too long (over max_inflight_per_client commands)\r\n"
            "+QUEUED\r\n-ERR bad key 'item:1'\r\n");
    SEND(&C_EXEC);
    wire_is(execabort);
    all_accounted();
}
END_TEST

/* The client leaves inside MULTI, or while EXEC's commands start: what
 * is queued is freed and never runs. */
START_TEST(t_close)
{
    struct req *a, *b, *c;

    SEND(&C_MULTI);
    a = SEND(&C_ECHO, "a");
    multi_close(&conn);
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(FACT(a)->discarded, 1);
    SEND(&C_MULTI);
    b = SEND(&C_ECHO, "b");
    c = SEND(&C_ECHO, "c");
    SEND(&C_EXEC);
    multi_start_next(&conn);
    multi_close(&conn);
    ck_assert_ptr_null(conn.multi);
    ck_assert_int_eq(FACT(b)->ran, 4);
    ck_assert_int_eq(FACT(c)->discarded, 1);
    wire_is("+OK\r\n+QUEUED\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$1\r\nb\r\n");
    all_accounted();
}
END_TEST

static Suite *txn_suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("multi");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_exec_runs_queue_in_order);
    tcase_add_test(tc, t_exec_empty);
    tcase_add_test(tc, t_without_multi);
    tcase_add_test(tc, t_discard);
    tcase_add_test(tc, t_nested_multi);
    tcase_add_test(tc, t_watch);
    tcase_add_test(tc, t_noqueue_runs_now);
    tcase_add_loop_test(tc, t_refused_dooms, 0, (int)CS_ARRAY_LEN(refusals));
    tcase_add_test(tc, t_refused_outside);
    tcase_add_loop_test(tc, t_bad_key_dooms, 0, 3);
    tcase_add_test(tc, t_exec_refused);
    tcase_add_test(tc, t_too_many);
    tcase_add_test(tc, t_too_large);
    tcase_add_test(tc, t_doomed_holds_nothing);
    tcase_add_test(tc, t_close);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(txn_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
