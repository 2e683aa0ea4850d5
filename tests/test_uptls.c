/* SPDX-License-Identifier: BSD-3-Clause */
/* test_uptls.c - unit tests of the upstream client's TLS set-up
 * (src/http/upstream.c with uptls.c): a pool whose CA file does not load
 * when a fetch needs a connection. What the caller (and so the client)
 * sees is a fetch that fails as unreachable, once, from the loop; the
 * daemon goes on. */
#include "core.h"
#include "config.h"
#include "upstream.h"

#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    int calls;
    enum up_kind kind;
} res;

static void fetched_cb(void *arg, const struct up_reply *r)
{
    CS_UNUSED(arg);
    res.calls++;
    res.kind = r->kind;
    event_base_loopbreak(cs_base);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* The configuration check passes (a regular file is there); its contents
 * are no certificate, as after a rotation gone wrong: the pool has no
 * context, and the first miss needs one. */
START_TEST(test_unloadable_ca_at_first_use)
{
    char dir[] = "/tmp/cachasided-uptls-XXXXXX", ca[64], ini[64], text[256];
    struct config_errors errs;
    struct cs_config *c;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(ini, sizeof(ini), "%s/c.ini", dir);
    write_file(ca, "not a certificate\n");
    snprintf(text, sizeof(text), "[namespace:p]\nupstream = https://127.0.0.1:1/{id}\nupstream_ca_file = %s\n", ca);
    write_file(ini, text);
    cs_base = event_base_new();
    c = config_load(ini, &errs);
    config_errors_free(&errs);
    ck_assert_ptr_nonnull(c);
    upstream_reconfigure(c);
    for (int i = 0; i < 2; i++) {
        memset(&res, 0, sizeof(res));
        upstream_fetch(c->ns[0], "p-1", 3, fetched_cb, NULL);
        ck_assert_int_eq(res.calls, 0);         /* never inside the call */
        event_base_dispatch(cs_base);
        ck_assert_int_eq(res.calls, 1);
        ck_assert_int_eq(res.kind, UP_UNREACHABLE);
    }
    upstream_free();
    config_unref(c);
    event_base_free(cs_base);
    cs_base = NULL;
    unlink(ca);
    unlink(ini);
    rmdir(dir);
}
END_TEST

static Suite *uptls_suite(void)
{
    Suite *s = suite_create("uptls");
    TCase *tc = tcase_create("files");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_unloadable_ca_at_first_use);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uptls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
