/* SPDX-License-Identifier: BSD-3-Clause */
/* test_keys.c - unit tests of the key syntax (src/cache/keys.c): every bad key
 * form docs/protocol.md ("Keys") names is refused with the error it shows,
 * good keys split at the first ':', and the Redis keys and SCAN patterns
 * built from them. The shipped conf/cachasided.ini gives the namespaces:
 * product (hash) and page (raw, id_slashes = yes). */
#include "core.h"
#include "config.h"
#include "keys.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cs_config *conf;

static void setup(void)
{
    const char *dir = getenv("CACHASIDED_SRCDIR");
    char path[1024];
    struct config_errors e;

    if (!dir || !*dir)
        dir = getenv("srcdir");
    snprintf(path, sizeof(path), "%s/conf/cachasided.ini", dir && *dir ? dir : "..");
    conf = config_load(path, &e);
    ck_assert_msg(conf != NULL && e.n == 0, "%s does not load", path);
    config_errors_free(&e);
}

static void teardown(void)
{
    config_unref(conf);
}

static struct cs_str str(const char *s)
{
    struct cs_str v = { s, strlen(s) };
    return v;
}

/* key must be refused with exactly want. */
static void bad(const char *key, const char *want)
{
    const struct cs_ns *ns = NULL;
    struct cs_str id;
    char err[200] = "";

    ck_assert_msg(keys_parse(conf, str(key), &ns, &id, err, sizeof(err)) == CS_ERR, "'%s' was accepted", key);
    ck_assert_msg(strcmp(err, want) == 0, "'%s': got '%s', want '%s'", key, err, want);
}

/* The table of docs/protocol.md, "Keys", row by row. */
START_TEST(test_bad_forms)
{
    char id[600], key[700], want[200];

    bad("product", "ERR bad key 'product': expected NAMESPACE:ID");
    bad(":1", "ERR bad key ':1': expected NAMESPACE:ID");
    bad("product:", "ERR bad key 'product:': empty id");
    memset(id, 'a', 513);
    id[513] = '\0';
    snprintf(key, sizeof(key), "product:%s", id);
    snprintf(want, sizeof(want), "ERR bad key '%.80s...': id longer than 512 bytes", key);
    bad(key, want);
    bad("product:a b", "ERR bad key: id has whitespace or control characters");
    bad("product:a\tb", "ERR bad key: id has whitespace or control characters");
    bad("product:a\x01", "ERR bad key: id has whitespace or control characters");
    bad("product:a\x7f", "ERR bad key: id has whitespace or control characters");
    bad("product:}x", "ERR bad key 'product:}x': id may not start with '}'");
    bad("nosuch:1", "ERR unknown namespace 'nosuch'");
    bad("product:..", "ERR bad key 'product:..': id may not be a path segment '.' or '..'");
    bad("product:%2e%2E", "ERR bad key 'product:%2e%2E': id may not be a path segment '.' or '..'");
    bad("product:..;x", "ERR bad key 'product:..;x': id may not be a path segment '.' or '..'");
    bad("product:a/b", "ERR bad key 'product:a/b': id may not contain '/'");
    bad("product:a\\b", "ERR bad key 'product:a\\b': id may not contain '\\'");
    bad("product:a%2Fb", "ERR bad key 'product:a%2Fb': id may not contain an encoded '/' or '\\' (%2F, %5C)");
    bad("product:a%5c", "ERR bad key 'product:a%5c': id may not contain an encoded '/' or '\\' (%2F, %5C)");
    bad("page:en/../x", "ERR bad key 'page:en/../x': id may not have a path segment '.' or '..'");
    bad("page:/x", "ERR bad key 'page:/x': id may not have an empty path segment");
    bad("page:x/", "ERR bad key 'page:x/': id may not have an empty path segment");
    bad("page:a//b", "ERR bad key 'page:a//b': id may not have an empty path segment");
}
END_TEST

/* A key with a control byte is never echoed into the error; an unknown
 * namespace with one is shown with '?' for it. */
START_TEST(test_no_control_echoed)
{
    bad("no\x01such:1", "ERR unknown namespace 'no?such'");
}
END_TEST

START_TEST(test_good_keys)
{
    const struct cs_ns *ns;
    struct cs_str id;
    char err[200], buf[KEYS_KEY_MAX], want[KEYS_KEY_MAX];
    size_t n;

    ck_assert_int_eq(keys_parse(conf, str("product:a:b"), &ns, &id, err, sizeof(err)), CS_OK);
    ck_assert_str_eq(ns->name, "product");
    ck_assert_msg(id.len == 3 && memcmp(id.p, "a:b", 3) == 0, "split at the first ':'");
    n = keys_build(buf, conf, ns, id);
    snprintf(want, sizeof(want), "%sproduct:{a:b}", conf->key_prefix);
    ck_assert_str_eq(buf, want);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_int_eq(keys_parse(conf, str("page:en/about"), &ns, &id, err, sizeof(err)), CS_OK);
    ck_assert_str_eq(ns->name, "page");
}
END_TEST

/* INVALIDATE's NAMESPACE:GLOB: no path rule, but no glob Redis misreads. */
START_TEST(test_globs)
{
    const struct cs_ns *ns;
    struct cs_str glob;
    char err[200], buf[KEYS_KEY_MAX], want[KEYS_KEY_MAX];

    ck_assert_int_eq(keys_parse_glob(conf, str("product:a/*"), &ns, &glob, err, sizeof(err)), CS_OK);
    ck_assert_int_eq(keys_parse_glob(conf, str("product:abc["), &ns, &glob, err, sizeof(err)), CS_ERR);
    ck_assert_str_eq(err, "ERR bad key 'product:abc[': glob has an unclosed '['");
    ck_assert_int_eq(keys_parse_glob(conf, str("nosuch:*"), &ns, &glob, err, sizeof(err)), CS_ERR);
    ck_assert_str_eq(err, "ERR unknown namespace 'nosuch'");
    ck_assert_int_eq(keys_parse_glob(conf, str("product:p-*"), &ns, &glob, err, sizeof(err)), CS_OK);
    keys_pattern(buf, conf, ns, glob);
    /* The prefix and namespace are literal: their glob bytes escaped. */
    snprintf(want, sizeof(want), "%sproduct:{p-*}", conf->key_prefix);
    ck_assert_str_eq(buf, want);
}
END_TEST

static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bad_forms);
    tcase_add_test(tc, test_no_control_echoed);
    tcase_add_test(tc, test_good_keys);
    tcase_add_test(tc, test_globs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keys_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
