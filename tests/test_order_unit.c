/* SPDX-License-Identifier: BSD-3-Clause */
/* test_order_unit.c - unit tests of one connection's ordering of commands
 * on keys (src/client/order.c) alone: requests of a connection admitted as
 * command_dispatch admits them, answered in the order a test picks, and
 * what has started checked after each step (docs/design.md, "Order").
 *
 * What a client sees: pipelined reads of one key run together; a write
 * waits for every earlier command on its key, and later ones wait for it;
 * INVALIDATE ns:glob is ordered against every command of its namespace;
 * other keys and namespaces are never held up. */
#include "core.h"
#include "command.h"
#include "conn.h"
#include "order.h"
#include "req.h"

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void t_proc(struct req *r);

static const struct cmd_def d_hget = { "hget", 3, CMD_READ, t_proc, NULL, CACHE_HGET, 1, 1, 1 };
static const struct cmd_def d_mget = { "mget", -2, CMD_READ, t_proc, NULL, CACHE_MGET, 1, -1, 1 };
static const struct cmd_def d_hset = { "hset", -4, CMD_WRITE, t_proc, NULL, CACHE_NONE, 1, 1, 1 };
static const struct cmd_def d_del = { "del", -2, CMD_WRITE, t_proc, NULL, CACHE_NONE, 1, -1, 1 };
static const struct cmd_def d_ttl = { "ttl", 2, 0, t_proc, NULL, CACHE_NONE, 1, 1, 1 };
static const struct cmd_def d_inval = { "invalidate", 2, CMD_WRITE | CMD_PATTERN, t_proc, NULL, CACHE_NONE, 1, 1, 1 };

#define T_MAX 32
static struct conn *c;
static struct req *t_req[T_MAX];
static bool t_started[T_MAX];
static int t_n;

static int t_index(const struct req *r)
{
    for (int i = 0; i < t_n; i++)
        if (t_req[i] == r)
            return i;
    ck_abort_msg("a request the test did not send");
    return -1;
}

/* The command's proc: it has started (once). */
static void t_proc(struct req *r)
{
    int i = t_index(r);

    ck_assert_msg(!t_started[i], "request %d started twice", i);
    t_started[i] = true;
}

/* Sends D with its arguments (after the name, NULL-ended) as dispatch
 * does: queued on the connection, run at once if order admits it. */
static int t_send(const struct cmd_def *d, ...)
{
    struct req *r = cs_calloc(1, sizeof(*r));
    va_list ap;
    const char *a;
    int i = t_n;

    r->conn = c;
    r->cmd = d;
    r->argv = cs_calloc(8, sizeof(*r->argv));
    r->argv[r->argc++] = (struct cs_str){ d->name, strlen(d->name) };
    va_start(ap, d);
    while ((a = va_arg(ap, const char *)) != NULL)
        r->argv[r->argc++] = (struct cs_str){ a, strlen(a) };
    va_end(ap);
    ck_assert_int_lt(t_n, T_MAX);
    t_req[t_n++] = r;
    TAILQ_INSERT_TAIL(&c->reqs, r, q);
    if (order_admit(r))
        r->cmd->proc(r);
    return i;
}

/* Request I is answered (it must have started). */
static void t_answer(int i)
{
    struct req *r = t_req[i];

    ck_assert_msg(t_started[i], "request %d answered before it started", i);
    TAILQ_REMOVE(&c->reqs, r, q);
    order_done(r);
    free(r->argv);
    free(r);
    t_req[i] = NULL;
}

#define RUNS(i) ck_assert_msg(t_started[i], "request " #i " does not run")
#define WAITS(i) ck_assert_msg(!t_started[i], "request " #i " runs before its turn")

static void setup(void)
{
    c = cs_calloc(1, sizeof(*c));
    TAILQ_INIT(&c->reqs);
    t_n = 0;
    memset(t_started, 0, sizeof(t_started));
}

static void teardown(void)
{
    for (int i = 0; i < t_n; i++)
        if (t_req[i] && t_started[i])
            t_answer(i);
    for (int i = 0; i < t_n; i++) {
        if (t_req[i]) {
            ck_assert(order_drop(t_req[i]));
            TAILQ_REMOVE(&c->reqs, t_req[i], q);
            free(t_req[i]->argv);
            free(t_req[i]);
        }
    }
    order_close(&c->ord);
    free(c);
}

/* Reads of one key run side by side, a repeated key in MGET too. */
START_TEST(test_reads_together)
{
    int a = t_send(&d_hget, "product:1", "name", NULL);
    int b = t_send(&d_hget, "product:1", "price", NULL);
    int m = t_send(&d_mget, "product:1", "product:1", NULL);

    RUNS(a);
    RUNS(b);
    RUNS(m);
}
END_TEST

/* A write waits for every earlier read of its key; it runs when the last
 * is answered. */
START_TEST(test_write_waits_reads)
{
    int a = t_send(&d_hget, "product:1", "name", NULL);
    int b = t_send(&d_hget, "product:1", "name", NULL);
    int w = t_send(&d_hset, "product:1", "name", "Cup", NULL);

    RUNS(a);
    RUNS(b);
    WAITS(w);
    t_answer(a);
    WAITS(w);
    t_answer(b);
    RUNS(w);
}
END_TEST

/* Commands after a write of their key wait for it, and a read after them
 * waits for the TTL (which takes the key alone) in turn. */
START_TEST(test_later_wait_for_write)
{
    int w = t_send(&d_del, "product:1", NULL);
    int r = t_send(&d_hget, "product:1", "name", NULL);
    int s = t_send(&d_hget, "product:1", "price", NULL);
    int t = t_send(&d_ttl, "product:1", NULL);
    int u = t_send(&d_hget, "product:1", "name", NULL);

    RUNS(w);
    WAITS(r);
    WAITS(s);
    t_answer(w);
    RUNS(r);
    RUNS(s);            /* the two reads let through together */
    WAITS(t);
    t_answer(r);
    t_answer(s);
    RUNS(t);
    WAITS(u);
    t_answer(t);
    RUNS(u);
}
END_TEST

/* Other keys run concurrently with a key's queue. */
START_TEST(test_other_keys_run)
{
    int a = t_send(&d_hget, "product:1", "name", NULL);
    int w = t_send(&d_hset, "product:1", "name", "Cup", NULL);
    int b = t_send(&d_hset, "product:2", "name", "Pen", NULL);
    int c2 = t_send(&d_hget, "product:3", "name", NULL);
    int d = t_send(&d_del, "product:2", "product:4", NULL);
    int e = t_send(&d_hget, "product:4", "name", NULL);

    RUNS(a);
    WAITS(w);
    RUNS(b);
    RUNS(c2);
    WAITS(d);           /* product:2 is b's */
    WAITS(e);           /* product:4 waits behind d */
    t_answer(b);
    RUNS(d);
    WAITS(w);
    t_answer(d);
    RUNS(e);
}
END_TEST

/* INVALIDATE ns:glob waits for every earlier command of its namespace,
 * later ones of the namespace wait for it; another namespace runs on. */
START_TEST(test_invalidate_namespace)
{
    int a = t_send(&d_hget, "product:1", "name", NULL);
    int p = t_send(&d_hget, "page:1", "name", NULL);
    int i = t_send(&d_inval, "product:*", NULL);
    int b = t_send(&d_hget, "product:2", "name", NULL);
    int q = t_send(&d_hget, "page:2", "name", NULL);

    RUNS(a);
    RUNS(p);
    WAITS(i);
    WAITS(b);
    RUNS(q);
    t_answer(a);
    RUNS(i);
    WAITS(b);
    t_answer(i);
    RUNS(b);
}
END_TEST

static Suite *order_suite(void)
{
    Suite *s = suite_create("order_unit");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reads_together);
    tcase_add_test(tc, test_write_waits_reads);
    tcase_add_test(tc, test_later_wait_for_write);
    tcase_add_test(tc, test_other_keys_run);
    tcase_add_test(tc, test_invalidate_namespace);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(order_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
