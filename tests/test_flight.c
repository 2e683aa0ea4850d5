/* SPDX-License-Identifier: BSD-3-Clause */
/* test_flight.c - unit tests of the single-flight table (src/cache/flight.c) and
 * the outcome its waiters share (src/cache/outcome.c).
 *
 * What the user sees (docs/design.md section 6): every request coalesced on one fill
 * gets the same outcome, once; a detached flight keeps its own waiters while
 * later requests start a new one; nothing leaks or is freed twice (the
 * sanitizer build runs this too). */
#include "core.h"
#include "flight.h"
#include "outcome.h"
#include "record.h"
#include "resp.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ---- */

/* What one waiter saw: how often it was called and with what. */
struct seen {
    int calls;
    struct outcome *o;          /* a reference the waiter keeps */
};

static void seen_cb(void *ctx, struct outcome *o)
{
    struct seen *s = ctx;

    s->calls++;
    o->refcnt++;
    s->o = o;
}

static void seen_release(struct seen *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i].o)
            outcome_unref(s[i].o);
}

/* The fill's hooks, counted. */
static int hook_finish, hook_free;

static void count_finish(struct flight *f)
{
    CS_UNUSED(f);
    hook_finish++;
}

static void count_free(struct flight *f)
{
    CS_UNUSED(f);
    hook_free++;
}

static struct flight *mk(const char *key, const char *id)
{
    struct flight *f = flight_create(NULL, NULL, key, strlen(key), id, strlen(id));

    f->on_finish = count_finish;
    f->on_free = count_free;
    return f;
}

static void setup(void)
{
    hook_finish = hook_free = 0;
}

static void teardown(void)
{
    flight_free_all();
}

/* A record of one field a=b, as a fill would have built it. */
static struct outcome *rec_outcome(void)
{
    struct outcome *o = outcome_new(OC_RECORD);

    record_from_raw(&o->rec, S("body"));
    return o;
}

static void assert_blob(struct blob *b, const char *want)
{
    ck_assert_msg(b->len == strlen(want) && memcmp(b->data, want, b->len) == 0, "blob is '%.*s', want '%s'",
                  (int)b->len, b->data, want);
}

/* ---- tests ---- */

START_TEST(every_waiter_sees_the_same_outcome_once)
{
    struct seen s[3] = { { 0, NULL } };
    struct flight *f = mk("k1", "1");
    struct outcome *o = rec_outcome();

    ck_assert_ptr_eq(flight_find(S("k1")), f);
    for (int i = 0; i < 3; i++)
        flight_add_waiter(f, seen_cb, &s[i]);
    ck_assert_int_eq(flight_in_progress(), 1);
    ck_assert_int_eq(flight_finish(f, o), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(s[i].calls, 1);
        ck_assert_ptr_eq(s[i].o, o);
    }
    /* The flight gave up its reference; the three waiters hold theirs. */
    ck_assert_int_eq(o->refcnt, 3);
    ck_assert_int_eq(hook_finish, 1);
    ck_assert_ptr_null(flight_find(S("k1")));
    ck_assert_int_eq(flight_in_progress(), 0);
    /* A second answer (e.g. shutdown after the fill) reaches nobody. */
    ck_assert_int_eq(flight_finish(f, outcome_error("ERR late")), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s[i].calls, 1);
    ck_assert_int_eq(hook_free, 0);
    flight_put(f);
    ck_assert_int_eq(hook_free, 1);
    ck_assert_int_eq(hook_finish, 1);
    seen_release(s, 3);
}
END_TEST

START_TEST(pending_operations_keep_a_finished_flight)
{
    struct seen s = { 0, NULL };
    struct flight *f = mk("k2", "2");

    flight_add_waiter(f, seen_cb, &s);
    f->ops = 1;                 /* a Redis reply still to come */
    flight_finish(f, outcome_new(OC_NOTFOUND));
    flight_put(f);
    ck_assert_int_eq(hook_free, 0);
    f->ops--;
    flight_put(f);
    ck_assert_int_eq(hook_free, 1);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.o->kind, OC_NOTFOUND);
    ck_assert_int_eq(s.o->refcnt, 1);
    seen_release(&s, 1);
}
END_TEST

START_TEST(detached_flight_keeps_its_waiters)
{
    struct seen old = { 0, NULL }, young = { 0, NULL };
    struct flight *a = mk("k3", "3"), *b;

    flight_add_waiter(a, seen_cb, &old);
    flight_detach(S("k3"));
    ck_assert_ptr_null(flight_find(S("k3")));
    ck_assert_int_eq(flight_in_progress(), 1);      /* detached, still under way */
    b = mk("k3", "3");
    ck_assert_ptr_eq(flight_find(S("k3")), b);
    flight_add_waiter(b, seen_cb, &young);
    ck_assert_int_eq(flight_finish(a, outcome_error("ERR old")), 1);
    ck_assert_int_eq(old.calls, 1);
    ck_assert_int_eq(young.calls, 0);
    ck_assert_ptr_eq(flight_find(S("k3")), b);      /* finishing a leaves b in the table */
    ck_assert_int_eq(flight_finish(b, rec_outcome()), 1);
    ck_assert_int_eq(young.calls, 1);
    ck_assert_int_eq(old.o->kind, OC_ERROR);
    ck_assert_int_eq(young.o->kind, OC_RECORD);
    flight_put(a);
    flight_put(b);
    ck_assert_int_eq(hook_free, 2);
    seen_release(&old, 1);
    seen_release(&young, 1);
}
END_TEST

static bool match_id(const struct flight *f, const void *ctx)
{
    return f->idlen == strlen(ctx) && memcmp(f->id, ctx, f->idlen) == 0;
}

START_TEST(detach_if_takes_only_the_matching_flights)
{
    struct flight *a = mk("ka", "a");
    struct flight *b = mk("kb", "b");

    flight_detach_if(match_id, "a");
    ck_assert_ptr_null(flight_find(S("ka")));
    ck_assert_ptr_eq(flight_find(S("kb")), b);
    ck_assert_int_eq(flight_in_progress(), 2);
    CS_UNUSED(a);
}
END_TEST

START_TEST(free_all_answers_every_flight_with_an_error)
{
    struct seen s[2] = { { 0, NULL } };
    /* Enough flights to grow the table past its first size. */
    char key[32];

    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        mk(key, key);
    }
    ck_assert_ptr_nonnull(flight_find(S("key299")));
    flight_add_waiter(flight_find(S("key7")), seen_cb, &s[0]);
    flight_add_waiter(flight_find(S("key250")), seen_cb, &s[1]);
    ck_assert_int_eq(flight_in_progress(), 300);
    flight_free_all();
    ck_assert_int_eq(hook_finish, 300);
    ck_assert_int_eq(hook_free, 300);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(s[i].calls, 1);
        ck_assert_int_eq(s[i].o->kind, OC_ERROR);
        ck_assert_str_eq(s[i].o->err, "ERR shutting down");
    }
    ck_assert_ptr_null(flight_find(S("key7")));
    seen_release(s, 2);
}
END_TEST

START_TEST(outcome_encodings_are_shared)
{
    struct outcome *o = outcome_new(OC_RECORD), *e = outcome_error("UPSTREAM timeout");
    struct outcome *nf = outcome_new(OC_NOTFOUND), *raw = rec_outcome();
    struct evbuffer *dst = evbuffer_new();
    struct blob *b;

    record_from_raw(&o->rec, S("x"));
    o->rec.has_body = false;    /* a hash record of no user fields */
    assert_blob(outcome_pairs(o), "");
    ck_assert_int_eq(outcome_npairs(o), 0);
    assert_blob(outcome_body(raw), "$4\r\nbody\r\n");
    ck_assert_ptr_null(outcome_body(nf));     /* the waiter writes its protocol's null */
    assert_blob(outcome_pairs(nf), "");
    ck_assert_int_eq(outcome_npairs(nf), 0);
    assert_blob(outcome_err(e), "-UPSTREAM timeout\r\n");
    ck_assert_ptr_null(outcome_body(e));
    /* Encoded once: the second waiter gets the same bytes by reference. */
    b = outcome_body(raw);
    ck_assert_ptr_eq(outcome_body(raw), b);
    blob_append(dst, b);
    blob_append(dst, b);
    ck_assert_int_eq(b->refcnt, 3);
    ck_assert_int_eq(evbuffer_get_length(dst), 2 * b->len);
    outcome_unref(raw);         /* the blob outlives the outcome while queued */
    ck_assert_int_eq(b->refcnt, 2);
    ck_assert_int_eq(memcmp(evbuffer_pullup(dst, -1), "$4\r\nbody\r\n$4\r\nbody\r\n", 20), 0);
    evbuffer_free(dst);
    outcome_unref(o);
    outcome_unref(e);
    outcome_unref(nf);
}
END_TEST

/* HGETALL's shared pairs follow the header of the waiter's protocol: a
 * RESP3 map of n pairs, or a RESP2 array of 2n bulks (src/cache/cache.c). */
START_TEST(outcome_pairs_follow_either_header)
{
    struct outcome *o = outcome_new(OC_RECORD);
    struct evbuffer *dst = evbuffer_new();
    char err[128];
    static const char pairs[] = "$4\r\nname\r\n$6\r\nWidget\r\n$5\r\nprice\r\n$3\r\n9.5\r\n";
    size_t n3 = 4 + sizeof(pairs) - 1;

    ck_assert_int_eq(record_from_json(&o->rec, S("{\"name\":\"Widget\",\"price\":\"9.5\"}"), err, sizeof(err)),
                     CS_OK);
    ck_assert_int_eq(outcome_npairs(o), 2);
    assert_blob(outcome_pairs(o), pairs);
    resp_map(dst, outcome_npairs(o), true);
    blob_append(dst, outcome_pairs(o));
    resp_map(dst, outcome_npairs(o), false);
    blob_append(dst, outcome_pairs(o));
    ck_assert_uint_eq(evbuffer_get_length(dst), 2 * n3);
    ck_assert_int_eq(memcmp(evbuffer_pullup(dst, -1), "%2\r\n", 4), 0);
    ck_assert_int_eq(memcmp(evbuffer_pullup(dst, -1) + 4, pairs, n3 - 4), 0);
    ck_assert_int_eq(memcmp(evbuffer_pullup(dst, -1) + n3, "*4\r\n", 4), 0);
    ck_assert_int_eq(memcmp(evbuffer_pullup(dst, -1) + n3 + 4, pairs, n3 - 4), 0);
    evbuffer_free(dst);
    outcome_unref(o);
}
END_TEST

static Suite *flight_suite(void)
{
    Suite *s = suite_create("flight");
    TCase *tc = tcase_create("flight");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_waiter_sees_the_same_outcome_once);
    tcase_add_test(tc, pending_operations_keep_a_finished_flight);
    tcase_add_test(tc, detached_flight_keeps_its_waiters);
    tcase_add_test(tc, detach_if_takes_only_the_matching_flights);
    tcase_add_test(tc, free_all_answers_every_flight_with_an_error);
    tcase_add_test(tc, outcome_encodings_are_shared);
    tcase_add_test(tc, outcome_pairs_follow_either_header);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(flight_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
