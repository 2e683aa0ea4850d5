/* SPDX-License-Identifier: BSD-3-Clause */
/* test_util.c - unit tests of the core helpers (util.c): FNV-1a against
 * its published vectors, and CS_ASSERT / cs_panic, which must abort with
 * a line that names the file, the line and why. */
#include "core.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- FNV-1a ---- */

START_TEST(test_fnv_vectors)
{
    /* The reference vectors of 64-bit FNV-1a (offset basis, "a", "foobar"). */
    ck_assert_uint_eq(cs_hash("", 0), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(cs_hash("a", 1), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(cs_hash("foobar", 6), 0x85944171f73967e8ULL);
    /* Bytes above 0x7f and NUL count as bytes, not as signed chars or ends. */
    ck_assert_uint_eq(cs_hash("\xff\0cache:", 8), 0x141668be3b118976ULL);
}
END_TEST

START_TEST(test_fnv_continues)
{
    uint64_t h = cs_fnv1a(CS_FNV_BASIS, "foo", 3);

    ck_assert_uint_eq(cs_fnv1a(h, "bar", 3), cs_hash("foobar", 6));
    ck_assert_uint_eq(cs_fnv1a(CS_FNV_BASIS, "foobar", 6), cs_hash("foobar", 6));
    ck_assert_uint_ne(cs_fnv1a(CS_FNV_BASIS ^ 1, "foobar", 6), cs_hash("foobar", 6));
}
END_TEST

/* ---- CS_ASSERT and cs_panic ---- */

static void no_core(void)
{
    struct rlimit rl = { 0, 0 };

    setrlimit(RLIMIT_CORE, &rl);
}

static void trip_assert(volatile int x)
{
    CS_ASSERT(x == 2);
}
enum { TRIP_ASSERT_LINE = __LINE__ - 2 };

static void trip_panic(int x)
{
    cs_panic("x is %d", x);
}
enum { TRIP_PANIC_LINE = __LINE__ - 2 };

/* Runs fn(x) in a child with stderr into a pipe: what it wrote goes into
 * out; returns the child's wait status. */
static int run_child(void (*fn)(int), int x, char *out, size_t size)
{
    int fds[2], status;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        no_core();
        close(fds[0]);
        dup2(fds[1], 2);
        fn(x);
        _exit(0);
    }
    close(fds[1]);
    while (got < size - 1 && (n = read(fds[0], out + got, size - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void call_assert(int x)
{
    trip_assert(x);
}

START_TEST(test_assert_holds)
{
    char out[2048];
    int status = run_child(call_assert, 2, out, sizeof(out));

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a true CS_ASSERT stopped the program");
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_assert_message)
{
    char out[2048], want[256];
    int status = run_child(call_assert, 1, out, sizeof(out));

    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, not SIGABRT", status);
    snprintf(want, sizeof(want), "error BUG at test_util.c:%d: assertion failed: x == 2\n", (int)TRIP_ASSERT_LINE);
    ck_assert_msg(strstr(out, want) != NULL, "stderr was '%s', not '%s'", out, want);
}
END_TEST

START_TEST(test_panic_message)
{
    char out[2048], want[256];
    int status = run_child(trip_panic, 7, out, sizeof(out));

    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, not SIGABRT", status);
    snprintf(want, sizeof(want), "error BUG at test_util.c:%d: x is 7\n", (int)TRIP_PANIC_LINE);
    ck_assert_msg(strstr(out, want) != NULL, "stderr was '%s', not '%s'", out, want);
}
END_TEST

/* The same through Check's own signal check: the test process itself. */
START_TEST(test_assert_raises)
{
    no_core();
    trip_assert(3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("fnv");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_fnv_vectors);
    tcase_add_test(tc, test_fnv_continues);
    suite_add_tcase(s, tc);
    tc = tcase_create("assert");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_assert_holds);
    tcase_add_test(tc, test_assert_message);
    tcase_add_test(tc, test_panic_message);
    tcase_add_test_raise_signal(tc, test_assert_raises, SIGABRT);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
