/* SPDX-License-Identifier: BSD-3-Clause */
/* record.c - JSON object to hash fields (jansson), and hash replies back to
 * records. Strings stay as they are, numbers and booleans become their JSON
 * text, null fields are left out, nested values become compact JSON. */
#include "core.h"
#include "record.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields are gathered as offsets into one growing buffer and turned into
 * pointers at the end, so a record is two allocations however big. */
struct rbuild {
    char *mem;
    size_t len, cap;
    size_t *off;                /* pairs: field offset, value offset */
    size_t *lens;
    int n, ncap;
};

static size_t rb_add(struct rbuild *b, const char *p, size_t len)
{
    size_t at = b->len;

    if (b->len + len + 1 > b->cap) {
        while (b->len + len + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->mem = cs_realloc(b->mem, b->cap);
    }
    memcpy(b->mem + b->len, p, len);
    b->mem[b->len + len] = '\0';
    b->len += len + 1;
    return at;
}

static void rb_pair(struct rbuild *b, const char *f, size_t fl, const char *v, size_t vl)
{
    if (b->n == b->ncap) {
        b->ncap = b->ncap ? b->ncap * 2 : 16;
        b->off = cs_realloc(b->off, sizeof(size_t) * 2 * (size_t)b->ncap);
        b->lens = cs_realloc(b->lens, sizeof(size_t) * 2 * (size_t)b->ncap);
    }
    b->off[2 * b->n] = rb_add(b, f, fl);
    b->lens[2 * b->n] = fl;
    b->off[2 * b->n + 1] = rb_add(b, v, vl);
    b->lens[2 * b->n + 1] = vl;
    b->n++;
}

static void rb_finish(struct rbuild *b, struct record *rec)
{
    rec->n = b->n;
    rec->mem = b->mem;
    rec->f = cs_malloc(sizeof(struct cs_str) * 2 * (size_t)(b->n ? b->n : 1));
    rec->v = rec->f + b->n;
    for (int i = 0; i < b->n; i++) {
        rec->f[i].p = b->mem + b->off[2 * i];
        rec->f[i].len = b->lens[2 * i];
        rec->v[i].p = b->mem + b->off[2 * i + 1];
        rec->v[i].len = b->lens[2 * i + 1];
    }
    free(b->off);
    free(b->lens);
}

/* The shortest text that reads back as d, kept a JSON real: "0.1" (not
 * 0.10000000000000001 as 17 fixed digits give), "150.0", "1e+300". %g alone picks the fewest digits, which can be longer text
 * (1.5e+02), so plain notation competes where it can be short. */
static int record_real(double d, char *buf, size_t sz)
{
    char alt[64];
    int n = 0, m;

    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, sz, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (strchr(buf, 'e') && (d < 0 ? -d : d) >= 1e-5 && (d < 0 ? -d : d) < 1e17) {
        for (int prec = 0; prec <= 17; prec++) {
            m = snprintf(alt, sizeof(alt), "%.*f", prec, d);
            if (strtod(alt, NULL) == d) {
                if (m + (prec == 0 ? 2 : 0) < n && (size_t)m < sz) {
                    memcpy(buf, alt, (size_t)m + 1);
                    n = m;
                }
                break;
            }
        }
    }
    /* Keep it a JSON real: 1e+20 is fine, but 3 would read as an integer. */
    if (!strpbrk(buf, ".eEn") && (size_t)n + 2 < sz) {
        strcat(buf, ".0");
        n += 2;
    }
    return n;
}

/* Compact JSON of a nested value, reals in the same shortest form as
 * top-level ones (jansson would print them with 17 digits). */
static int record_dump(FILE *out, json_t *v)
{
    const char *key;
    json_t *e;
    size_t i;
    char num[64];
    int rc = 0;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        fputc('{', out);
        i = 0;
        json_object_foreach(v, key, e) {
            json_t *k = json_string(key);
            if (i++)
                fputc(',', out);
            rc |= k ? json_dumpf(k, out, JSON_ENCODE_ANY) : -1;
            json_decref(k);
            fputc(':', out);
            rc |= record_dump(out, e);
        }
        fputc('}', out);
        return rc;
    case JSON_ARRAY:
        fputc('[', out);
        json_array_foreach(v, i, e) {
            if (i)
                fputc(',', out);
            rc |= record_dump(out, e);
        }
        fputc(']', out);
        return rc;
    case JSON_REAL:
        record_real(json_real_value(v), num, sizeof(num));
        fputs(num, out);
        return 0;
    default:
        return json_dumpf(v, out, JSON_ENCODE_ANY | JSON_COMPACT);
    }
}

int record_from_json(struct record *rec, const char *body, size_t len, char *err, size_t errsz)
{
    struct rbuild b = { 0 };
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    char num[64];

    memset(rec, 0, sizeof(*rec));
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        snprintf(err, errsz, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return CS_ERR;
    }
    if (!json_is_object(root)) {
        snprintf(err, errsz, "JSON body is not an object");
        json_decref(root);
        return CS_ERR;
    }
    json_object_foreach(root, key, v) {
        size_t kl = strlen(key);
        char *dump;
        size_t dlen;
        FILE *out;
        bool bad = false;
        int n;

        if (record_field_reserved(key, kl)) {
            log_debug("upstream field '%s' dropped: names starting with __ are reserved", key);
            continue;
        }
        switch (json_typeof(v)) {
        case JSON_STRING:
            rb_pair(&b, key, kl, json_string_value(v), json_string_length(v));
            break;
        case JSON_INTEGER:
            n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            rb_pair(&b, key, kl, num, (size_t)n);
            break;
        case JSON_REAL:
            n = record_real(json_real_value(v), num, sizeof(num));
            rb_pair(&b, key, kl, num, (size_t)n);
            break;
        case JSON_TRUE:
            rb_pair(&b, key, kl, "true", 4);
            break;
        case JSON_FALSE:
            rb_pair(&b, key, kl, "false", 5);
            break;
        case JSON_NULL:
            break;
        case JSON_OBJECT:
        case JSON_ARRAY:
            dump = NULL;
            if ((out = open_memstream(&dump, &dlen)) != NULL) {
                bad = record_dump(out, v) != 0;
                bad |= fclose(out) != 0;
            }
            if (!dump || bad) {
                free(dump);
                snprintf(err, errsz, "cannot encode field '%s'", key);
                json_decref(root);
                free(b.mem);
                free(b.off);
                free(b.lens);
                return CS_ERR;
            }
            rb_pair(&b, key, kl, dump, dlen);
            free(dump);
            break;
        }
    }
    json_decref(root);
    rb_finish(&b, rec);
    return CS_OK;
}

void record_from_raw(struct record *rec, const char *body, size_t len)
{
    memset(rec, 0, sizeof(*rec));
    rec->mem = cs_strndup(body, len);
    rec->f = NULL;
    rec->has_body = true;
    rec->body.p = rec->mem;
    rec->body.len = len;
}

void record_from_reply(struct record *rec, const redisReply *r)
{
    struct rbuild b = { 0 };
    size_t body_off = 0, body_len = 0;
    bool body = false;

    memset(rec, 0, sizeof(*rec));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!record_field_reserved(f->str, (size_t)f->len)) {
            rb_pair(&b, f->str, (size_t)f->len, v->str, (size_t)v->len);
        } else if (strcmp(f->str, "__exp") == 0) {
            rec->exp_ms = strtoll(v->str, NULL, 10);
        } else if (strcmp(f->str, "__nf") == 0) {
            rec->nf = true;
        } else if (strcmp(f->str, "__body") == 0) {
            body = true;
            body_off = rb_add(&b, v->str, (size_t)v->len);
            body_len = (size_t)v->len;
        }
    }
    rb_finish(&b, rec);
    if (body) {
        rec->has_body = true;
        rec->body.p = rec->mem + body_off;
        rec->body.len = body_len;
    }
}

void record_free(struct record *rec)
{
    free(rec->f);
    free(rec->mem);
    memset(rec, 0, sizeof(*rec));
}

bool record_exp_parse(const char *p, size_t len, int64_t *exp)
{
    int64_t v = 0;

    if (len == 0 || len > 18)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *exp = v;
    return true;
}

bool record_reply_meta(const redisReply *rep, struct record_meta *m)
{
    bool valid = false;

    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len < 4 || k->str[0] != '_' ||
            k->str[1] != '_')
            continue;           /* a field of the record: most of them */
        if (k->len == 5 && memcmp(k->str, "__exp", 5) == 0) {
            valid = record_exp_parse(v->str, (size_t)v->len, &m->exp);
        } else if (k->len == 4 && memcmp(k->str, "__nf", 4) == 0) {
            m->nf = true;
        } else if (k->len == 6 && memcmp(k->str, "__body", 6) == 0) {
            m->body = true;
        } else if (k->len == 7 && memcmp(k->str, "__delta", 7) == 0) {
            if (!record_exp_parse(v->str, (size_t)v->len, &m->delta))
                m->delta = 0;
        } else if (k->len == 6 && memcmp(k->str, "__lock", 6) == 0) {
            m->lock.p = v->str;
            m->lock.len = (size_t)v->len;
        }
    }
    return valid;
}
