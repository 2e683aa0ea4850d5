/* SPDX-License-Identifier: BSD-3-Clause */
/* fuzz_record.c - an upstream body flattened into hash fields (src/cache/record.c
 * record_from_json), stored and read back as HGETALL returns it
 * (record_from_reply), and the raw-format record (record_from_raw).
 *
 * Invariants: no crash or leak; a refused body always says why; an accepted
 * one is a JSON object whose fields are unique, each one of its keys whose
 * value is not null, none named "__..." (those names are reserved for the
 * hash's bookkeeping and record.c drops them from upstream bodies); values
 * are NUL-terminated views into the record's own memory; the hash written
 * with the daemon's bookkeeping field "__exp" reads back as the same fields
 * and the same expiry. */
#include "core.h"
#include "record.h"
#include "fuzz.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <string.h>

/* Views are NUL-terminated (handy for logging); reading that byte also has
 * ASan check that the end of the view lies in memory the record owns. */
static bool fz_nul_ended(const struct cs_str *s)
{
    return s->p != NULL && s->p[s->len] == '\0';
}

/* The fill writes "__exp" and the fields (fill.c's store script call);
 * HGETALL hands them back as an array of strings, here built by hand as
 * hiredis builds it. */
static void fz_round_trip(const struct record *a)
{
    int n = 2 * a->n + 2;
    redisReply *items = cs_calloc((size_t)n, sizeof(*items));
    redisReply **el = cs_calloc((size_t)n, sizeof(*el));
    redisReply arr = { .type = REDIS_REPLY_ARRAY, .elements = (size_t)n, .element = el };
    struct record b;

    for (int i = 0; i < a->n; i++) {
        items[2 * i] = (redisReply){ .type = REDIS_REPLY_STRING, .len = a->f[i].len, .str = (char *)a->f[i].p };
        items[2 * i + 1] = (redisReply){ .type = REDIS_REPLY_STRING, .len = a->v[i].len, .str = (char *)a->v[i].p };
    }
    items[n - 2] = (redisReply){ .type = REDIS_REPLY_STRING, .len = 5, .str = (char *)"__exp" };
    items[n - 1] = (redisReply){ .type = REDIS_REPLY_STRING, .len = 13, .str = (char *)"1700000000123" };
    for (int i = 0; i < n; i++)
        el[i] = &items[i];
    record_from_reply(&b, &arr);
    FUZZ_CHECK(b.n == a->n, "%d fields stored, %d read back", a->n, b.n);
    FUZZ_CHECK(b.exp_ms == 1700000000123LL && !b.nf && !b.has_body, "bookkeeping read back wrong");
    for (int i = 0; i < b.n; i++) {
        FUZZ_CHECK(b.f[i].len == a->f[i].len && memcmp(b.f[i].p, a->f[i].p, b.f[i].len) == 0 &&
                   b.v[i].len == a->v[i].len && memcmp(b.v[i].p, a->v[i].p, b.v[i].len) == 0,
                   "field %d changed on the way through the hash", i);
        FUZZ_CHECK(fz_nul_ended(&b.f[i]) && fz_nul_ended(&b.v[i]), "field %d not NUL-terminated", i);
    }
    record_free(&b);
    free(el);
    free(items);
}

static void fz_check_record(const struct record *r, const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);

    FUZZ_CHECK(root && json_is_object(root), "accepted a body that is not a JSON object");
    FUZZ_CHECK(!r->nf && !r->has_body && r->n >= 0, "a JSON record marked not-found or raw");
    FUZZ_CHECK(r->n == 0 || (r->f && r->v), "fields without storage");
    for (int i = 0; i < r->n; i++) {
        json_t *v;
        FUZZ_CHECK(!record_field_reserved(r->f[i].p, r->f[i].len), "reserved field '%.*s' kept", (int)r->f[i].len,
                   r->f[i].p);
        FUZZ_CHECK(fz_nul_ended(&r->f[i]) && fz_nul_ended(&r->v[i]), "field %d not NUL-terminated", i);
        FUZZ_CHECK(strlen(r->f[i].p) == r->f[i].len, "field %d's name holds a NUL", i);
        v = json_object_get(root, r->f[i].p);
        FUZZ_CHECK(v != NULL && !json_is_null(v), "field '%s' is not a non-null key of the body", r->f[i].p);
        if (json_is_string(v))
            FUZZ_CHECK(r->v[i].len == json_string_length(v) && memcmp(r->v[i].p, json_string_value(v), r->v[i].len) == 0,
                       "string field '%s' not stored as it is", r->f[i].p);
        else if (json_is_object(v) || json_is_array(v) || json_is_number(v)) {
            /* Compact JSON text (or a number's text) that reads back as JSON. */
            json_t *back = json_loadb(r->v[i].p, r->v[i].len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            FUZZ_CHECK(back != NULL, "field '%s' value '%s' is not JSON", r->f[i].p, r->v[i].p);
            FUZZ_CHECK(json_typeof(back) == json_typeof(v), "field '%s' changed JSON type", r->f[i].p);
            json_decref(back);
        }
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(r->f[j].len != r->f[i].len || memcmp(r->f[j].p, r->f[i].p, r->f[i].len) != 0,
                       "field '%s' twice", r->f[i].p);
    }
    /* Every non-null, non-reserved key became a field. */
    {
        const char *key;
        json_t *v;
        int want = 0;
        json_object_foreach(root, key, v)
            want += !json_is_null(v) && !record_field_reserved(key, strlen(key));
        FUZZ_CHECK(want == r->n, "%d fields expected, %d made", want, r->n);
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct record r;
    char err[256];
    char *body = cs_malloc(size);  /* exact size: an overread shows under ASan */
    int rc;

    memcpy(body, data, size);
    err[0] = '\0';
    fuzz_quiet(1);
    rc = record_from_json(&r, body, size, err, sizeof(err));
    fuzz_quiet(0);
    if (rc == CS_OK) {
        fz_check_record(&r, data, size);
        fz_round_trip(&r);
        record_free(&r);
    } else {
        FUZZ_CHECK(rc == CS_ERR && err[0], "refused without a message");
    }
    record_from_raw(&r, body, size);
    FUZZ_CHECK(r.has_body && r.body.len == size && memcmp(r.body.p, data, size) == 0, "raw body not kept as it is");
    record_free(&r);
    free(body);
    return 0;
}
