/* SPDX-License-Identifier: BSD-3-Clause */
/* test_record.c - unit tests of records (src/cache/record.c): an upstream JSON
 * object flattened into hash fields as docs/design.md section 6 says, raw bodies, the
 * not-found record, and records read back from a Redis HGETALL reply.
 *
 * What the user sees: HGETALL/HGET answer exactly these field values, so the
 * flattening is checked byte for byte. */
#include "core.h"
#include "config.h"
#include "record.h"
#include "upstream.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ---- */

/* The value of FIELD in a record, or NULL when absent; fails the test when
 * the field appears twice. */
static const struct cs_str *rec_get(const struct record *r, const char *field)
{
    const struct cs_str *found = NULL;
    size_t fl = strlen(field);

    for (int i = 0; i < r->n; i++) {
        if (r->f[i].len == fl && memcmp(r->f[i].p, field, fl) == 0) {
            ck_assert_msg(found == NULL, "field '%s' appears twice", field);
            found = &r->v[i];
        }
    }
    return found;
}

#define assert_field(r, field, lit) assert_field_len(r, field, lit, sizeof(lit) - 1)

static void assert_field_len(const struct record *r, const char *field, const char *want, size_t len)
{
    const struct cs_str *v = rec_get(r, field);

    ck_assert_msg(v != NULL, "field '%s' missing", field);
    ck_assert_msg(v->len == len && memcmp(v->p, want, len) == 0, "field '%s' is '%.*s' (%zu bytes), want '%.*s'",
                  field, (int)v->len, v->p, v->len, (int)len, want);
    /* values are NUL-terminated views, so they can be logged as C strings */
    ck_assert_int_eq(v->p[v->len], '\0');
}

/* Flattens a JSON body that must be accepted. */
static void from_json_ok(struct record *r, const char *body, size_t len)
{
    char err[256] = "";
    char *copy = malloc(len ? len : 1);     /* exact size: overreads show under ASan */

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, body, len);
    ck_assert_msg(record_from_json(r, copy, len, err, sizeof(err)) == CS_OK, "body '%.*s' rejected: %s", (int)len,
                  body, err);
    /* the record owns its bytes: the body buffer may go */
    memset(copy, '#', len);
    free(copy);
    ck_assert(!r->nf);
    ck_assert(!r->has_body);
}

/* A body that must be refused with a message. */
static void from_json_bad(const char *body, size_t len, const char *what)
{
    struct record r;
    char err[256] = "";
    char *copy = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, body, len);
    ck_assert_msg(record_from_json(&r, copy, len, err, sizeof(err)) == CS_ERR, "%s: body '%.*s' accepted", what,
                  (int)len, body);
    ck_assert_msg(err[0] != '\0', "%s: refused without a message", what);
    free(copy);
}

/* ---- JSON flattening ---- */

/* String values are stored as they are: unescaped, no quotes. */
START_TEST(test_json_strings)
{
    struct record r;

    from_json_ok(&r, S("{\"name\":\"Widget\",\"empty\":\"\",\"quoted\":\"say \\\"hi\\\"\","
                       "\"path\":\"C:\\\\dir\\/x\",\"lines\":\"a\\nb\\tc\\r\",\"json\":\"{\\\"a\\\":1}\"}"));
    ck_assert_int_eq(r.n, 6);
    assert_field(&r, "name", "Widget");
    assert_field(&r, "empty", "");
    assert_field(&r, "quoted", "say \"hi\"");
    assert_field(&r, "path", "C:\\dir/x");
    assert_field(&r, "lines", "a\nb\tc\r");
    assert_field(&r, "json", "{\"a\":1}");
    record_free(&r);
}
END_TEST

/* Unicode in values and field names arrives as UTF-8, whether written raw or
 * as \u escapes (including surrogate pairs). */
START_TEST(test_json_unicode)
{
    struct record r;

    from_json_ok(&r, S("{\"name\":\"Gr\xc3\xbc\xc3\x9f" "e\",\"esc\":\"\\u00e9\\u65e5\\ud83d\\ude00\","
                       "\"pr\xc3\xa9" "nom\":\"\xe6\x97\xa5\xe6\x9c\xac\"}"));
    ck_assert_int_eq(r.n, 3);
    assert_field(&r, "name", "Gr\xc3\xbc\xc3\x9f" "e");
    assert_field(&r, "esc", "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    assert_field(&r, "pr\xc3\xa9" "nom", "\xe6\x97\xa5\xe6\x9c\xac");
    record_free(&r);
}
END_TEST

/* Integers become their decimal text. */
START_TEST(test_json_integers)
{
    struct record r;

    from_json_ok(&r, S("{\"zero\":0,\"neg\":-5,\"qty\":42,\"max\":9223372036854775807,"
                       "\"min\":-9223372036854775808}"));
    ck_assert_int_eq(r.n, 5);
    assert_field(&r, "zero", "0");
    assert_field(&r, "neg", "-5");
    assert_field(&r, "qty", "42");
    assert_field(&r, "max", "9223372036854775807");
    assert_field(&r, "min", "-9223372036854775808");
    record_free(&r);
}
END_TEST

/* docs/protocol.md: "an integer outside signed 64-bit makes the body bad"
 * (jansson reads integers as 64-bit). */
START_TEST(test_json_big_integer)
{
    from_json_bad(S("{\"id\":18446744073709551615,\"n\":1}"), "integer over 2^63-1");
    from_json_bad(S("{\"id\":-9223372036854775809}"), "integer under -2^63");
}
END_TEST

/* Floats: the shortest text that reads back as the same double, and still a
 * JSON real (3.0 stays "3.0", not "3"). */
START_TEST(test_json_floats)
{
    struct record r;

    from_json_ok(&r, S("{\"a\":0.1,\"b\":1.1,\"c\":-2.25,\"d\":1e300,\"e\":3.0,\"f\":0.30000000000000004,"
                       "\"g\":9.5,\"h\":-0.0,\"i\":5e-324,\"j\":1.7976931348623157e308,\"k\":123456.0,"
                       "\"l\":2.5E-3}"));
    ck_assert_int_eq(r.n, 12);
    assert_field(&r, "a", "0.1");
    assert_field(&r, "b", "1.1");
    assert_field(&r, "c", "-2.25");
    assert_field(&r, "d", "1e+300");
    assert_field(&r, "e", "3.0");
    assert_field(&r, "f", "0.30000000000000004");
    assert_field(&r, "g", "9.5");
    assert_field(&r, "h", "-0.0");
    assert_field(&r, "i", "5e-324");
    assert_field(&r, "j", "1.7976931348623157e+308");
    assert_field(&r, "k", "123456.0");
    assert_field(&r, "l", "0.0025");
    record_free(&r);
}
END_TEST

/* docs/protocol.md: a real becomes "the shortest text that reads back to
 * the same double". For a whole-number price 150.0 that is "150.0" (5
 * bytes), not "1.5e+02" (7 bytes). */
START_TEST(test_json_floats_shortest_text)
{
    struct record r;

    from_json_ok(&r, S("{\"price\":150.0,\"k\":2500.0,\"t\":12000.5}"));
    assert_field(&r, "price", "150.0");
    assert_field(&r, "k", "2500.0");
    assert_field(&r, "t", "12000.5");
    record_free(&r);
}
END_TEST

/* Whatever double comes in, its text reads back as exactly that double and is
 * no longer than 17 significant digits need. */
START_TEST(test_json_floats_round_trip)
{
    unsigned long long x = 0x9E3779B97F4A7C15ULL;

    for (int i = 0; i < 2000; i++) {
        struct record r;
        char body[128];
        double d;
        const struct cs_str *v;
        char *end;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(&d, &x, sizeof(d));
        if (!isfinite(d))
            continue;
        snprintf(body, sizeof(body), "{\"v\":%.17e}", d);
        from_json_ok(&r, body, strlen(body));
        v = rec_get(&r, "v");
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(strtod(v->p, &end) == d && end == v->p + v->len, "%s -> '%s' does not read back", body, v->p);
        ck_assert_msg(v->len <= 24, "%s -> '%s' is longer than needed", body, v->p);
        ck_assert_msg(strpbrk(v->p, ".e"), "%s -> '%s' is not a JSON real", body, v->p);
        record_free(&r);
    }
}
END_TEST

/* true and false become their JSON text; null fields are left out. */
START_TEST(test_json_bool_null)
{
    struct record r;

    from_json_ok(&r, S("{\"on\":true,\"off\":false,\"gone\":null,\"name\":\"x\"}"));
    ck_assert_int_eq(r.n, 3);
    assert_field(&r, "on", "true");
    assert_field(&r, "off", "false");
    ck_assert_ptr_null(rec_get(&r, "gone"));
    assert_field(&r, "name", "x");
    record_free(&r);

    /* an object of nulls only is an empty record, not an error */
    from_json_ok(&r, S("{\"a\":null}"));
    ck_assert_int_eq(r.n, 0);
    record_free(&r);
}
END_TEST

/* Nested objects and arrays are stored as compact JSON text, keys in the
 * order the upstream sent them. */
START_TEST(test_json_nested)
{
    struct record r;

    from_json_ok(&r, S("{ \"tags\" : [ \"a\", \"b\" ] ,\n \"dims\": {\"w\": 10, \"h\": 2.5, \"u\": \"cm\"},"
                       "\"empty\":{},\"none\":[],\"deep\":{\"z\":[1,{\"y\":null,\"x\":true}],\"a\":false},"
                       "\"s\":[\"q\\\"uote\",\"\\u00e9\",\"/\"]}"));
    ck_assert_int_eq(r.n, 6);
    assert_field(&r, "tags", "[\"a\",\"b\"]");
    assert_field(&r, "dims", "{\"w\":10,\"h\":2.5,\"u\":\"cm\"}");
    assert_field(&r, "empty", "{}");
    assert_field(&r, "none", "[]");
    /* null inside a nested value is kept: it is part of that JSON text */
    assert_field(&r, "deep", "{\"z\":[1,{\"y\":null,\"x\":true}],\"a\":false}");
    assert_field(&r, "s", "[\"q\\\"uote\",\"\xc3\xa9\",\"/\"]");
    record_free(&r);
}
END_TEST

/* A float inside a nested value is written the same way as a top-level one:
 * [0.1] stays [0.1], not [0.10000000000000001]. */
START_TEST(test_json_nested_floats)
{
    struct record r;

    from_json_ok(&r, S("{\"p\":[0.1,1.1],\"o\":{\"x\":0.3}}"));
    assert_field(&r, "p", "[0.1,1.1]");
    assert_field(&r, "o", "{\"x\":0.3}");
    record_free(&r);
}
END_TEST

/* Field names beginning with "__" are the daemon's bookkeeping and are
 * dropped from upstream bodies; a single "_" is an ordinary name. */
START_TEST(test_json_reserved_dropped)
{
    struct record r;

    from_json_ok(&r, S("{\"__exp\":\"1\",\"__nf\":1,\"__body\":\"x\",\"__\":2,\"__custom\":{\"a\":1},"
                       "\"_id\":\"k\",\"a__b\":3,\"name\":\"W\"}"));
    ck_assert_int_eq(r.n, 3);
    assert_field(&r, "_id", "k");
    assert_field(&r, "a__b", "3");
    assert_field(&r, "name", "W");
    ck_assert(!r.nf);
    ck_assert(!r.has_body);
    ck_assert_int_eq(r.exp_ms, 0);
    for (int i = 0; i < r.n; i++)
        ck_assert(!record_field_reserved(r.f[i].p, r.f[i].len));
    record_free(&r);
}
END_TEST

START_TEST(test_field_reserved)
{
    ck_assert(record_field_reserved(S("__")));
    ck_assert(record_field_reserved(S("__exp")));
    ck_assert(!record_field_reserved(S("_")));
    ck_assert(!record_field_reserved(S("_a")));
    ck_assert(!record_field_reserved(S("")));
    ck_assert(!record_field_reserved(S("a__")));
    ck_assert(!record_field_reserved("__x", 1));
}
END_TEST

/* An empty object is a record with no fields (HGETALL replies an empty
 * array); whitespace around the object is fine. */
START_TEST(test_json_empty_object)
{
    struct record r;

    from_json_ok(&r, S(" \n{ }\r\n"));
    ck_assert_int_eq(r.n, 0);
    record_free(&r);
}
END_TEST

/* Many fields and long values all survive. */
START_TEST(test_json_many_fields)
{
    size_t cap = 200000, off = 0;
    char *body = malloc(cap);
    struct record r;

    ck_assert_ptr_nonnull(body);
    off += (size_t)snprintf(body + off, cap - off, "{");
    for (int i = 0; i < 2000; i++)
        off += (size_t)snprintf(body + off, cap - off, "%s\"f%d\":\"v%d-%0*d\"", i ? "," : "", i, i, i % 50, 0);
    off += (size_t)snprintf(body + off, cap - off, "}");
    ck_assert_uint_lt(off, cap);
    from_json_ok(&r, body, off);
    ck_assert_int_eq(r.n, 2000);
    for (int i = 0; i < 2000; i += 97) {
        char f[16], v[80];
        snprintf(f, sizeof(f), "f%d", i);
        snprintf(v, sizeof(v), "v%d-%0*d", i, i % 50, 0);
        assert_field_len(&r, f, v, strlen(v));
    }
    record_free(&r);
    free(body);
}
END_TEST

/* A string holding U+0000 is valid JSON; Redis hash values are binary-safe,
 * so the value keeps its NUL byte. */
START_TEST(test_json_nul_in_string)
{
    struct record r;

    from_json_ok(&r, S("{\"bin\":\"a\\u0000b\"}"));
    assert_field(&r, "bin", "a\0b");
    record_free(&r);
}
END_TEST

/* Anything but a JSON object is refused with a reason (the reply is
 * "-UPSTREAM bad body" and nothing is cached). */
START_TEST(test_json_not_object)
{
    from_json_bad(S("[1,2,3]"), "array");
    from_json_bad(S("[{\"a\":1}]"), "array of objects");
    from_json_bad(S("\"text\""), "string");
    from_json_bad(S("42"), "number");
    from_json_bad(S("4.5"), "real");
    from_json_bad(S("null"), "null");
    from_json_bad(S("true"), "true");
}
END_TEST

START_TEST(test_json_invalid)
{
    from_json_bad(S(""), "empty body");
    from_json_bad(S("   \r\n"), "whitespace only");
    from_json_bad(S("{"), "unterminated object");
    from_json_bad(S("{\"a\":}"), "missing value");
    from_json_bad(S("{'a':1}"), "single quotes");
    from_json_bad(S("{\"a\":1,}"), "trailing comma");
    from_json_bad(S("{\"a\":1} x"), "trailing garbage");
    from_json_bad(S("{\"a\":1}{\"b\":2}"), "two objects");
    from_json_bad(S("{\"a\":NaN}"), "NaN");
    from_json_bad(S("{\"a\":\"\xff\"}"), "invalid UTF-8");
    from_json_bad(S("<html>502 Bad Gateway</html>"), "HTML error page");
    from_json_bad("{\"a\":1}\0", 8, "NUL after the object");
}
END_TEST

/* The reason names where the JSON broke. */
START_TEST(test_json_error_message)
{
    struct record r;
    char err[256] = "";

    ck_assert_int_eq(record_from_json(&r, S("{\n\"a\": tru}"), err, sizeof(err)), CS_ERR);
    ck_assert_msg(strstr(err, "line 2"), "message '%s' has no line", err);
    ck_assert_int_eq(record_from_json(&r, S("[1]"), err, sizeof(err)), CS_ERR);
    ck_assert_msg(strstr(err, "object"), "message '%s' does not say an object was expected", err);
    /* a small buffer truncates, never overflows */
    ck_assert_int_eq(record_from_json(&r, S("[1]"), err, 8), CS_ERR);
    ck_assert_uint_lt(strlen(err), 8);
}
END_TEST

/* ---- raw and not-found records ---- */

/* A raw body is kept byte for byte (binary, NULs) in a copy the record owns. */
START_TEST(test_raw_body)
{
    char body[] = "<html>\0\xff\r\n</html>";
    size_t len = sizeof(body) - 1;
    struct record r;

    record_from_raw(&r, body, len);
    memset(body, 'x', len);
    ck_assert(r.has_body);
    ck_assert(!r.nf);
    ck_assert_int_eq(r.n, 0);
    ck_assert_uint_eq(r.body.len, len);
    ck_assert_mem_eq(r.body.p, "<html>\0\xff\r\n</html>", len);
    record_free(&r);
    ck_assert(!r.has_body);
    ck_assert_ptr_null(r.mem);

    record_from_raw(&r, "", 0);
    ck_assert(r.has_body);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_ptr_nonnull(r.body.p);
    record_free(&r);
}
END_TEST

/* A raw body that happens to be JSON is still just bytes. */
START_TEST(test_raw_body_json_text)
{
    struct record r;

    record_from_raw(&r, S("{\"__nf\":1}"));
    ck_assert(r.has_body);
    ck_assert(!r.nf);
    ck_assert_int_eq(r.n, 0);
    ck_assert_mem_eq(r.body.p, "{\"__nf\":1}", r.body.len);
    record_free(&r);
}
END_TEST

START_TEST(test_not_found)
{
    struct record r;

    memset(&r, 0, sizeof(r));      /* a not-found record, as the fill builds one */
    r.nf = true;
    record_free(&r);
    ck_assert(!r.nf);
    record_free(&r);        /* freeing a freed record is harmless */
}
END_TEST

/* ---- from a Redis HGETALL reply ---- */

/* A real hiredis reply object, built by feeding RESP bytes to its reader. */
static redisReply *reply_from(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, resp, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(rd);
    return reply;
}

/* User fields are copied; __exp sets the logical expiry, __nf the not-found
 * flag, __body the raw body; other "__" fields never reach the user. */
START_TEST(test_reply_fields)
{
    redisReply *rep = reply_from(S("*12\r\n$4\r\nname\r\n$6\r\nWidget\r\n$5\r\nprice\r\n$3\r\n9.5\r\n"
                                   "$5\r\n__exp\r\n$13\r\n1700000000123\r\n$7\r\n__other\r\n$1\r\nx\r\n"
                                   "$3\r\nbin\r\n$4\r\na\0\r\n\r\n$0\r\n\r\n$0\r\n\r\n"));
    struct record r;

    record_from_reply(&r, rep);
    freeReplyObject(rep);       /* the record keeps its own copy */
    ck_assert_int_eq(r.n, 4);
    assert_field(&r, "name", "Widget");
    assert_field(&r, "price", "9.5");
    assert_field(&r, "bin", "a\0\r\n");
    assert_field(&r, "", "");
    ck_assert_ptr_null(rec_get(&r, "__exp"));
    ck_assert_ptr_null(rec_get(&r, "__other"));
    ck_assert_int_eq(r.exp_ms, 1700000000123LL);
    ck_assert(!r.nf);
    ck_assert(!r.has_body);
    record_free(&r);
}
END_TEST

START_TEST(test_reply_not_found)
{
    redisReply *rep = reply_from(S("*4\r\n$4\r\n__nf\r\n$1\r\n1\r\n$5\r\n__exp\r\n$3\r\n500\r\n"));
    struct record r;

    record_from_reply(&r, rep);
    freeReplyObject(rep);
    ck_assert(r.nf);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(r.exp_ms, 500);
    record_free(&r);
}
END_TEST

START_TEST(test_reply_raw_body)
{
    redisReply *rep = reply_from(S("*2\r\n$6\r\n__body\r\n$7\r\n<p>\0\xff</p>\r\n"));
    struct record r;

    record_from_reply(&r, rep);
    freeReplyObject(rep);
    ck_assert(r.has_body);
    ck_assert(!r.nf);
    ck_assert_int_eq(r.n, 0);
    ck_assert_uint_eq(r.body.len, 7);
    ck_assert_mem_eq(r.body.p, "<p>\0\xff</p>", 7);
    record_free(&r);
}
END_TEST

/* An empty HGETALL (the key is gone) is an empty record; elements that are
 * not strings and a dangling last field are ignored, never read out of
 * bounds. */
START_TEST(test_reply_odd_shapes)
{
    redisReply *rep = reply_from(S("*0\r\n"));
    struct record r;

    record_from_reply(&r, rep);
    freeReplyObject(rep);
    ck_assert_int_eq(r.n, 0);
    ck_assert(!r.nf);
    ck_assert(!r.has_body);
    record_free(&r);

    rep = reply_from(S("*5\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n"));
    record_from_reply(&r, rep);
    freeReplyObject(rep);
    ck_assert_int_eq(r.n, 1);
    assert_field(&r, "b", "2");
    ck_assert_ptr_null(rec_get(&r, "a"));
    ck_assert_ptr_null(rec_get(&r, "c"));
    record_free(&r);
}
END_TEST

/* A reply built by hand (struct redisReply), as hiredis's async callbacks
 * hand it over. */
START_TEST(test_reply_by_hand)
{
    redisReply f1 = { .type = REDIS_REPLY_STRING, .len = 3, .str = (char *)"qty" };
    redisReply v1 = { .type = REDIS_REPLY_STRING, .len = 2, .str = (char *)"42" };
    redisReply f2 = { .type = REDIS_REPLY_STRING, .len = 5, .str = (char *)"__exp" };
    redisReply v2 = { .type = REDIS_REPLY_STRING, .len = 2, .str = (char *)"77" };
    redisReply *el[] = { &f1, &v1, &f2, &v2 };
    redisReply arr = { .type = REDIS_REPLY_ARRAY, .elements = 4, .element = el };
    struct record r;

    record_from_reply(&r, &arr);
    ck_assert_int_eq(r.n, 1);
    assert_field(&r, "qty", "42");
    ck_assert_int_eq(r.exp_ms, 77);
    record_free(&r);
}
END_TEST

/* A JSON record stored as a hash and read back gives the same fields: the
 * round trip HGETALL sees after a fill. */
START_TEST(test_json_to_hash_and_back)
{
    struct record a, b;
    char resp[4096];
    size_t off;
    redisReply *rep;

    from_json_ok(&a, S("{\"name\":\"Gr\xc3\xbc\xc3\x9f" "e\",\"n\":3,\"x\":0.5,\"t\":[1,2],\"nil\":null}"));
    off = (size_t)snprintf(resp, sizeof(resp), "*%d\r\n", 2 * a.n + 2);
    for (int i = 0; i < a.n; i++) {
        off += (size_t)snprintf(resp + off, sizeof(resp) - off, "$%zu\r\n%s\r\n$%zu\r\n%s\r\n", a.f[i].len,
                                a.f[i].p, a.v[i].len, a.v[i].p);
    }
    off += (size_t)snprintf(resp + off, sizeof(resp) - off, "$5\r\n__exp\r\n$2\r\n10\r\n");
    rep = reply_from(resp, off);
    record_from_reply(&b, rep);
    freeReplyObject(rep);
    ck_assert_int_eq(b.n, a.n);
    for (int i = 0; i < a.n; i++) {
        char f[64];
        snprintf(f, sizeof(f), "%.*s", (int)a.f[i].len, a.f[i].p);
        assert_field_len(&b, f, a.v[i].p, a.v[i].len);
    }
    ck_assert_int_eq(b.exp_ms, 10);
    record_free(&a);
    record_free(&b);
}
END_TEST

/* ---- the upstream URL template (docs/design.md section 4) ---- */

static char *target_ns(char **parts, int nparts, const char *id, size_t idlen, bool slashes)
{
    struct cs_ns ns;

    memset(&ns, 0, sizeof(ns));
    ns.name = (char *)"t";
    ns.namelen = 1;
    ns.parts = parts;
    ns.nparts = nparts;
    ns.id_slashes = slashes;
    return upstream_target(&ns, id, idlen);
}

static char *target(char **parts, int nparts, const char *id, size_t idlen)
{
    return target_ns(parts, nparts, id, idlen, false);
}

#define assert_target(parts, id, want) do { \
        char *t_ = target(parts, (int)CS_ARRAY_LEN(parts), id, sizeof(id) - 1); \
        ck_assert_str_eq(t_, want); \
        free(t_); \
    } while (0)

/* {id} becomes the percent-encoded ID: RFC 3986 unreserved characters stay,
 * every other byte is %XX (upper-case hex). */
START_TEST(test_target_encoding)
{
    char *one[] = { (char *)"/products/", (char *)"" };

    assert_target(one, "p-001", "/products/p-001");
    assert_target(one, "AZaz09-._~", "/products/AZaz09-._~");
    assert_target(one, "a b/c?d%e#f&g=h+i", "/products/a%20b%2Fc%3Fd%25e%23f%26g%3Dh%2Bi");
    assert_target(one, "..", "/products/..");
    assert_target(one, "\xc3\xa9", "/products/%C3%A9");
    assert_target(one, "a\0b\x7f\xff", "/products/a%00b%7F%FF");
    assert_target(one, "{id}", "/products/%7Bid%7D");
    assert_target(one, "", "/products/");
}
END_TEST

/* Every {id} of the template is replaced; text around them is kept. */
START_TEST(test_target_several_ids)
{
    char *three[] = { (char *)"/a/", (char *)"/b/", (char *)"?lang=en&x=1" };
    char *query[] = { (char *)"/get?id=", (char *)"" };

    assert_target(three, "k 1", "/a/k%201/b/k%201?lang=en&x=1");
    assert_target(query, "x&y", "/get?id=x%26y");
}
END_TEST

/* With id_slashes '/' is sent as it is (nested path segments); every other
 * byte is encoded as without. */
START_TEST(test_target_slashes)
{
    char *one[] = { (char *)"/docs/", (char *)"" };
    char *t = target_ns(one, 2, "en/a b/c%2F", 11, true);

    ck_assert_str_eq(t, "/docs/en/a%20b/c%252F");
    free(t);
    t = target_ns(one, 2, "en/about", 8, false);
    ck_assert_str_eq(t, "/docs/en%2Fabout");
    free(t);
}
END_TEST

static const char *id_check(const char *id, bool slashes)
{
    struct cs_ns ns;

    memset(&ns, 0, sizeof(ns));
    ns.id_slashes = slashes;
    return upstream_id_check(&ns, id, strlen(id));
}

#define DOT "id may not be a path segment '.' or '..'"
#define DOTS "id may not have a path segment '.' or '..'"
#define EMPTY "id may not have an empty path segment"
#define SLASH "id may not contain '/'"
#define BACKSLASH "id may not contain '\\'"
#define ENCODED "id may not contain an encoded '/' or '\\' (%2F, %5C)"

/* The rule of docs/protocol.md (Keys): no '/' (unless id_slashes) or '\',
 * not even percent-encoded once; no segment that is '.' or '..' as it is
 * or after one round of decoding, up to a ';' or a NUL. */
START_TEST(test_id_check)
{
    static const struct {
        const char *id;
        bool slashes;
        const char *why;        /* NULL: accepted */
    } cases[] = {
        { "p-001", false, NULL }, { "en/about", true, NULL }, { "a.b", false, NULL }, { "...", false, NULL },
        { "..a", false, NULL }, { "a..", false, NULL }, { ".a", false, NULL }, { ";", false, NULL },
        { ";..", false, NULL }, { "%252e%252e", false, NULL }, { "%2", false, NULL }, { "%", false, NULL },
        { "%2e%", false, NULL }, { "%zz", false, NULL }, { "%2e%2e%2e", false, NULL }, { "a%2e", false, NULL },
        { "%252F", false, NULL }, { "%5", false, NULL }, { "x/.../y", true, NULL }, { "x/.a/y", true, NULL },
        { ".", false, DOT }, { "..", false, DOT }, { "%2e", false, DOT }, { "%2E%2e", false, DOT },
        { ".%2E", false, DOT }, { "%2e.", false, DOT }, { "..;", false, DOT }, { "..;jsessionid=x", false, DOT },
        { ".%3b", false, DOT }, { "%2e%2e%3Bx", false, DOT }, { "..%00", false, DOT }, { ".%00x", false, DOT },
        { "..", true, DOTS }, { "a/..", true, DOTS }, { "../a", true, DOTS }, { "a/./b", true, DOTS },
        { "a/%2e%2e/b", true, DOTS }, { "a/..;x/b", true, DOTS },
        { "/a", true, EMPTY }, { "a/", true, EMPTY }, { "a//b", true, EMPTY }, { "/", true, EMPTY },
        { "a/b", false, SLASH }, { "/", false, SLASH }, { "../x", false, SLASH },
        { "a\\b", false, BACKSLASH }, { "a\\b", true, BACKSLASH }, { "..\\", false, BACKSLASH },
        { "%2F", false, ENCODED }, { "a%2fb", false, ENCODED }, { "%5C", false, ENCODED }, { "%5c..", false, ENCODED },
        { "a%2Fb", true, ENCODED }, { "..%2F", false, ENCODED },
    };

    for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
        const char *got = id_check(cases[i].id, cases[i].slashes);
        if (!cases[i].why)
            ck_assert_msg(got == NULL, "'%s' (id_slashes %d): refused: %s", cases[i].id, cases[i].slashes, got);
        else
            ck_assert_msg(got && strcmp(got, cases[i].why) == 0, "'%s' (id_slashes %d): got %s, want %s",
                          cases[i].id, cases[i].slashes, got ? got : "accepted", cases[i].why);
    }
}
END_TEST

static Suite *record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc;

    tc = tcase_create("json");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_json_strings);
    tcase_add_test(tc, test_json_unicode);
    tcase_add_test(tc, test_json_integers);
    tcase_add_test(tc, test_json_big_integer);
    tcase_add_test(tc, test_json_floats);
    tcase_add_test(tc, test_json_floats_shortest_text);
    tcase_add_test(tc, test_json_floats_round_trip);
    tcase_add_test(tc, test_json_bool_null);
    tcase_add_test(tc, test_json_nested);
    tcase_add_test(tc, test_json_nested_floats);
    tcase_add_test(tc, test_json_reserved_dropped);
    tcase_add_test(tc, test_field_reserved);
    tcase_add_test(tc, test_json_empty_object);
    tcase_add_test(tc, test_json_many_fields);
    tcase_add_test(tc, test_json_nul_in_string);
    tcase_add_test(tc, test_json_not_object);
    tcase_add_test(tc, test_json_invalid);
    tcase_add_test(tc, test_json_error_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("raw");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_raw_body);
    tcase_add_test(tc, test_raw_body_json_text);
    tcase_add_test(tc, test_not_found);
    suite_add_tcase(s, tc);

    tc = tcase_create("reply");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reply_fields);
    tcase_add_test(tc, test_reply_not_found);
    tcase_add_test(tc, test_reply_raw_body);
    tcase_add_test(tc, test_reply_odd_shapes);
    tcase_add_test(tc, test_reply_by_hand);
    tcase_add_test(tc, test_json_to_hash_and_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("url");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_target_encoding);
    tcase_add_test(tc, test_target_several_ids);
    tcase_add_test(tc, test_target_slashes);
    tcase_add_test(tc, test_id_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(record_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
