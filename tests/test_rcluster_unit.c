/* SPDX-License-Identifier: BSD-3-Clause */
/* test_rcluster_unit.c - unit tests of Redis Cluster routing without a
 * cluster: the hash slot of a key (src/redis/rslot.c, as CLUSTER KEYSLOT
 * computes it) and the router (src/redis/rcluster.c) over links in memory
 * (fake_rlink.c): the slot map read from a CLUSTER SLOTS reply, a key's
 * command sent to its slot's primary, MOVED moving the slot, ASK followed
 * once after ASKING. */
#include "core.h"
#include "rlink.h"
#include "rslot.h"
#include "rtopo.h"
#include "fake_reply.h"
#include "fake_rlink.h"

#include <check.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rslot.c ---- */

/* CLUSTER KEYSLOT's answers (Redis's cluster specification's examples and
 * redis-cli): the whole key, or only its first non-empty {hash tag}. */
START_TEST(test_keyslot)
{
    ck_assert_uint_eq(rslot_crc16("123456789", 9), 0x31C3);
    ck_assert_uint_eq(rslot_of("foo", 3), 12182);
    ck_assert_uint_eq(rslot_of("bar", 3), 5061);
    ck_assert_uint_eq(rslot_of("{foo}.x", 7), 12182);
    ck_assert_uint_eq(rslot_of("x{foo}y{bar}", 12), 12182);    /* the first tag */
    ck_assert_uint_eq(rslot_of("foo{}{bar}", 10), rslot_crc16("foo{}{bar}", 10) % RC_SLOTS); /* empty: whole key */
    ck_assert_uint_eq(rslot_of("foo{{bar}}zap", 13), rslot_of("{bar", 4));
    ck_assert_uint_eq(rslot_of("{bar", 4), rslot_crc16("{bar", 4) % RC_SLOTS);         /* no closing brace */
    ck_assert_uint_eq(rslot_of("cache:product:{p1}", 18), rslot_of("cache:fills:product:{p1}", 24));
}
END_TEST

/* ---- rcluster.c ---- */

#define HOST "127.0.0.1"
#define SLOT_FOO 12182          /* on 7001 in the map below */
#define SLOT_BAR 5061           /* on 7000 */

static struct cs_addr seeds[1] = { { HOST, 7000 } };
static struct rstore_conf rconf;

/* What a command's caller heard. */
struct heard {
    int calls;
    int type;
    char str[64];
};

static void heard_cb(void *priv, const redisReply *r)
{
    struct heard *h = priv;

    h->calls++;
    h->type = r ? r->type : -1;
    if (r && r->str)
        snprintf(h->str, sizeof(h->str), "%s", r->str);
}

static int send_hget(const char *key, struct heard *h)
{
    const char *argv[3] = { "HGET", key, "f" };
    size_t lens[3] = { 4, strlen(key), 1 };

    return rcluster_topo.cmd(heard_cb, h, 3, argv, lens);
}

/* CLUSTER SLOTS: 0-8191 on the node that answered (an empty address),
 * 8192-16383 on 7001. */
static redisReply *slots_reply(void)
{
    return fake_arr(2,
                    fake_arr(3, fake_int(0), fake_int(8191), fake_arr(3, fake_str(""), fake_int(7000), fake_str("a"))),
                    fake_arr(3, fake_int(8192), fake_int(16383),
                             fake_arr(3, fake_str(HOST), fake_int(7001), fake_str("b"))));
}

static struct rlink *node(int port)
{
    struct rlink *n = fake_rlink_find(HOST, port, 0);

    ck_assert_msg(n != NULL, "no link to %d", port);
    return n;
}

static void setup(void)
{
    struct rlink *seed;

    cs_base = event_base_new();
    fake_rlink_autoup = false;
    memset(&rconf, 0, sizeof(rconf));
    rconf.mode = "cluster";
    rconf.nodes = seeds;
    rconf.nnodes = 1;
    rconf.cluster_refresh_s = 60;
    rconf.command_timeout_ms = 500;
    rconf.channel = "cache:fills";
    rcluster_topo.init(&rconf);
    seed = fake_rlink_find(HOST, 7000, 0);
    ck_assert_ptr_nonnull(seed);
    fake_rlink_set_up(seed, true);
    ck_assert_str_eq(fake_rlink_next(seed), "CLUSTER SLOTS");
    fake_rlink_autoup = true;
    fake_rlink_answer(seed, slots_reply());
}

static void teardown(void)
{
    rcluster_topo.free();
    ck_assert_int_eq(fake_rlink_alive(), 0);
    event_base_free(cs_base);
    cs_base = NULL;
}

/* The map names both primaries, each with a command link and a
 * subscriber; every slot is covered, each key's on its node. */
START_TEST(test_map)
{
    ck_assert_ptr_nonnull(fake_rlink_find(HOST, 7001, 0));
    ck_assert_ptr_nonnull(fake_rlink_find(HOST, 7000, RLINK_SUBSCRIBER));
    ck_assert_ptr_nonnull(fake_rlink_find(HOST, 7001, RLINK_SUBSCRIBER));
    ck_assert(rcluster_topo.ready());
    ck_assert(rcluster_topo.ready_for("foo", 3));
    fake_rlink_set_up(node(7001), false);
    ck_assert(!rcluster_topo.ready_for("foo", 3));      /* 7001's slots are degraded */
    ck_assert(rcluster_topo.ready_for("bar", 3));
    ck_assert_int_eq(rcluster_topo.servers(NULL, 0), 2);
}
END_TEST

/* A key's command goes to the primary of its slot, and its reply back. */
START_TEST(test_route)
{
    struct heard a = { 0 }, b = { 0 };

    ck_assert_int_eq(send_hget("foo", &a), CS_OK);
    ck_assert_int_eq(send_hget("bar", &b), CS_OK);
    ck_assert_str_eq(fake_rlink_next(node(7001)), "HGET foo f");
    ck_assert_str_eq(fake_rlink_next(node(7000)), "HGET bar f");
    ck_assert_int_eq(fake_rlink_pending(node(7001)), 1);
    fake_rlink_answer(node(7001), fake_str("v"));
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "v");
    ck_assert_int_eq(b.calls, 0);
    fake_rlink_answer(node(7000), fake_nil());
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.type, REDIS_REPLY_NIL);
}
END_TEST

/* A slot whose primary is down fails at once: nothing sent. */
START_TEST(test_route_down)
{
    struct heard a = { 0 };

    fake_rlink_set_up(node(7001), false);
    ck_assert_int_eq(send_hget("foo", &a), CS_ERR);
    ck_assert_int_eq(fake_rlink_pending(node(7000)), 0);
    ck_assert_int_eq(a.calls, 0);
}
END_TEST

/* MOVED: the command is sent again to the node named, the caller hears
 * only that answer, and the slot's next command goes there first. */
START_TEST(test_moved)
{
    struct heard a = { 0 }, b = { 0 }, c = { 0 };
    char other_key[8] = "", other_cmd[32];

    for (int i = 0; i < 100 && !*other_key; i++) {
        snprintf(other_key, sizeof(other_key), "k%d", i);
        if (rslot_of(other_key, strlen(other_key)) < 8192 || rslot_of(other_key, strlen(other_key)) == SLOT_FOO)
            other_key[0] = '\0';
    }
    snprintf(other_cmd, sizeof(other_cmd), "HGET %s f", other_key);

    ck_assert_int_eq(send_hget("foo", &a), CS_OK);
    fake_rlink_answer(node(7001), fake_err("MOVED 12182 " HOST ":7002"));
    ck_assert_int_eq(a.calls, 0);
    ck_assert_str_eq(fake_rlink_next(node(7002)), "HGET foo f");
    fake_rlink_answer(node(7002), fake_str("moved"));
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "moved");
    ck_assert_int_eq(send_hget("foo", &b), CS_OK);
    ck_assert_int_eq(fake_rlink_pending(node(7001)), 0);
    ck_assert_str_eq(fake_rlink_next(node(7002)), "HGET foo f");
    fake_rlink_answer(node(7002), fake_str("again"));
    ck_assert_int_eq(b.calls, 1);
    /* Another slot of 7001 stays there. */
    ck_assert_int_eq(send_hget(other_key, &c), CS_OK);
    ck_assert_str_eq(fake_rlink_next(node(7001)), other_cmd);
    fake_rlink_answer(node(7001), fake_str("stays"));
    ck_assert_str_eq(c.str, "stays");
}
END_TEST

/* ASK: sent once to the node named, after ASKING; the map is not changed,
 * so the slot's next command goes to its primary again. */
START_TEST(test_ask)
{
    struct heard a = { 0 }, b = { 0 };

    ck_assert_int_eq(send_hget("foo", &a), CS_OK);
    fake_rlink_answer(node(7001), fake_err("ASK 12182 " HOST ":7002"));
    ck_assert_int_eq(fake_rlink_pending(node(7002)), 2);
    ck_assert_str_eq(fake_rlink_next(node(7002)), "ASKING");
    fake_rlink_answer(node(7002), fake_str("OK"));
    ck_assert_int_eq(a.calls, 0);                       /* ASKING's answer is not the command's */
    ck_assert_str_eq(fake_rlink_next(node(7002)), "HGET foo f");
    fake_rlink_answer(node(7002), fake_str("asked"));
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.str, "asked");
    ck_assert_int_eq(send_hget("foo", &b), CS_OK);
    ck_assert_int_eq(fake_rlink_pending(node(7002)), 0);
    ck_assert_str_eq(fake_rlink_next(node(7001)), "HGET foo f");
    fake_rlink_answer(node(7001), fake_str("home"));
    ck_assert_str_eq(b.str, "home");
}
END_TEST

static Suite *rcluster_suite(void)
{
    Suite *s = suite_create("rcluster_unit");
    TCase *slot = tcase_create("slot"), *tc = tcase_create("router");

    tcase_add_test(slot, test_keyslot);
    suite_add_tcase(s, slot);
    /* Each test in its own process: rcluster.c's counters start at 0. */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_map);
    tcase_add_test(tc, test_route);
    tcase_add_test(tc, test_route_down);
    tcase_add_test(tc, test_moved);
    tcase_add_test(tc, test_ask);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rcluster_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
