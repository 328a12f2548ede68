/* tests/unit/test_hub_reading.c — the reading model and its binary form. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hub/buf.h"
#include "hub/reading.h"

/* ---- helpers ------------------------------------------------------------ */

static bool fields_equal(const struct hub_field *a, const struct hub_field *b)
{
    if (strcmp(a->key, b->key) != 0 || a->type != b->type)
        return false;
    switch (a->type) {
    case HUB_FIELD_INT:
        return a->v.i == b->v.i;
    case HUB_FIELD_UINT:
        return a->v.u == b->v.u;
    case HUB_FIELD_FLOAT:
        return memcmp(&a->v.f, &b->v.f, sizeof(double)) == 0;
    case HUB_FIELD_BOOL:
        return a->v.b == b->v.b;
    case HUB_FIELD_STRING:
        return strcmp(a->v.s, b->v.s) == 0;
    }
    return false;
}

static void assert_readings_equal(const hub_reading_t *a, const hub_reading_t *b)
{
    assert_string_equal(hub_reading_measurement(a), hub_reading_measurement(b));
    assert_true(hub_reading_time(a) == hub_reading_time(b));
    assert_int_equal(hub_reading_tag_count(a), hub_reading_tag_count(b));
    for (size_t i = 0; i < hub_reading_tag_count(a); i++) {
        assert_string_equal(hub_reading_tag(a, i)->key, hub_reading_tag(b, i)->key);
        assert_string_equal(hub_reading_tag(a, i)->value, hub_reading_tag(b, i)->value);
    }
    assert_int_equal(hub_reading_field_count(a), hub_reading_field_count(b));
    for (size_t i = 0; i < hub_reading_field_count(a); i++)
        assert_true(fields_equal(hub_reading_field(a, i), hub_reading_field(b, i)));
}

/* Encode r into a fresh buffer (caller frees). */
static void encode(const hub_reading_t *r, struct hub_buf *b)
{
    hub_buf_init(b, HUB_READING_MAX_ENCODED);
    assert_int_equal(hub_reading_encode(r, b), HUB_OK);
}

/* decode(encode(r)) equals r, and re-encoding gives the same bytes. */
static void assert_round_trip(const hub_reading_t *r)
{
    struct hub_buf b, b2;
    encode(r, &b);
    hub_reading_t *d = NULL;
    assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
    assert_non_null(d);
    assert_readings_equal(r, d);
    encode(d, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    hub_reading_free(d);
    hub_buf_free(&b);
    hub_buf_free(&b2);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* A reading with every field type, a few tags and awkward bytes. */
static hub_reading_t *sample(void)
{
    hub_reading_t *r = hub_reading_new("air_quality", 1764464523456789012LL);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "site", "quang-trung crossing, \"north\""), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "district", "đồng hới"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "device", "aq-1"), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "pm2_5", 12.5), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "delta", -42), HUB_OK);
    assert_int_equal(hub_reading_add_uint(r, "count", 300), HUB_OK);
    assert_int_equal(hub_reading_add_bool(r, "ok", true), HUB_OK);
    assert_int_equal(hub_reading_add_string(r, "note", "line1\nline2, a=b"), HUB_OK);
    return r;
}

/* A tiny writer of hand-made encodings for the rejection tests. */
struct w {
    uint8_t b[1024];
    size_t n;
};
static void w_byte(struct w *w, uint8_t c)
{
    w->b[w->n++] = c;
}
static void w_varint(struct w *w, uint64_t v)
{
    while (v >= 0x80) {
        w_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_byte(w, (uint8_t)v);
}
static void w_str(struct w *w, const char *s)
{
    w_varint(w, strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}
static void w_u64(struct w *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w_byte(w, (uint8_t)(v >> (8 * i)));
}
/* Header: version 1 (the interleaved layout, which decode still reads and
 * which shares its checks with version 2), measurement "m", time 5. */
static void w_head(struct w *w)
{
    w->n = 0;
    w_byte(w, 1);
    w_str(w, "m");
    w_u64(w, 5);
}

static int decode_w(const struct w *w)
{
    hub_reading_t *r = (hub_reading_t *)0x1;
    int rc = hub_reading_decode(w->b, w->n, &r);
    if (rc == HUB_OK)
        hub_reading_free(r);
    else
        assert_null(r);
    return rc;
}

/* ---- model -------------------------------------------------------------- */

static void test_new_and_measurement(void **state)
{
    (void)state;
    assert_null(hub_reading_new("", 0));
    assert_null(hub_reading_new(NULL, 0));
    char *m255 = repeat('m', 255), *m256 = repeat('m', 256);
    hub_reading_t *r = hub_reading_new(m255, INT64_MIN);
    assert_non_null(r);
    assert_string_equal(hub_reading_measurement(r), m255);
    assert_true(hub_reading_time(r) == INT64_MIN);
    assert_int_equal(hub_reading_tag_count(r), 0);
    assert_int_equal(hub_reading_field_count(r), 0);
    assert_null(hub_reading_tag(r, 0));
    assert_null(hub_reading_field(r, 0));
    hub_reading_free(r);
    assert_null(hub_reading_new(m256, 0));
    free(m255);
    free(m256);
    hub_reading_free(NULL);

    /* The reading keeps its own copy. */
    char m[] = "traffic";
    r = hub_reading_new(m, 7);
    m[0] = 'X';
    assert_string_equal(hub_reading_measurement(r), "traffic");
    hub_reading_free(r);
}

/* Insert keys in every order of a 6-element set: always the same sorted list. */
static void test_tags_sorted_every_order(void **state)
{
    (void)state;
    /* byte order: uppercase < lowercase, prefix first, UTF-8 after ASCII */
    static const char *const sorted[] = {"Zone", "a", "ab", "b", "site", "\xc3\xa9t\xc3\xa9"};
    enum { K = 6 };
    int idx[K];
    for (int i = 0; i < K; i++)
        idx[i] = i;
    int perms = 0;
    for (;;) {
        hub_reading_t *r = hub_reading_new("m", 0);
        for (int i = 0; i < K; i++) {
            char val[16];
            snprintf(val, sizeof(val), "v%d", idx[i]);
            assert_int_equal(hub_reading_add_tag(r, sorted[idx[i]], val), HUB_OK);
        }
        assert_int_equal(hub_reading_tag_count(r), K);
        for (int i = 0; i < K; i++) {
            char val[16];
            snprintf(val, sizeof(val), "v%d", i);
            assert_string_equal(hub_reading_tag(r, (size_t)i)->key, sorted[i]);
            assert_string_equal(hub_reading_tag(r, (size_t)i)->value, val);
            assert_string_equal(hub_reading_tag_value(r, sorted[i]), val);
        }
        assert_null(hub_reading_tag_value(r, "A"));
        assert_null(hub_reading_tag_value(r, "zz"));
        assert_null(hub_reading_tag_value(r, ""));
        hub_reading_free(r);
        perms++;
        /* next permutation */
        int i = K - 2;
        while (i >= 0 && idx[i] > idx[i + 1])
            i--;
        if (i < 0)
            break;
        int j = K - 1;
        while (idx[j] < idx[i])
            j--;
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        for (int a = i + 1, b = K - 1; a < b; a++, b--) {
            t = idx[a];
            idx[a] = idx[b];
            idx[b] = t;
        }
    }
    assert_int_equal(perms, 720);
}

static void test_tags_many_descending(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("m", 0);
    for (int i = HUB_READING_MAX_TAGS - 1; i >= 0; i--) {
        char k[16];
        snprintf(k, sizeof(k), "k%02d", i);
        assert_int_equal(hub_reading_add_tag(r, k, k), HUB_OK);
    }
    assert_int_equal(hub_reading_tag_count(r), HUB_READING_MAX_TAGS);
    for (size_t i = 0; i < HUB_READING_MAX_TAGS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%02zu", i);
        assert_string_equal(hub_reading_tag(r, i)->key, k);
    }
    /* full: a new key is refused, an existing one can still be replaced */
    assert_int_equal(hub_reading_add_tag(r, "k99", "x"), HUB_EFULL);
    assert_int_equal(hub_reading_add_tag(r, "k05", "five"), HUB_OK);
    assert_string_equal(hub_reading_tag_value(r, "k05"), "five");
    assert_int_equal(hub_reading_tag_count(r), HUB_READING_MAX_TAGS);
    assert_round_trip(r);
    hub_reading_free(r);
}

static void test_tag_replace(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("m", 0);
    assert_int_equal(hub_reading_add_tag(r, "b", "1"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "a", "1"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "c", "1"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "b", "a much longer value than before"), HUB_OK);
    assert_int_equal(hub_reading_tag_count(r), 3);
    assert_string_equal(hub_reading_tag(r, 0)->key, "a");
    assert_string_equal(hub_reading_tag(r, 1)->key, "b");
    assert_string_equal(hub_reading_tag(r, 1)->value, "a much longer value than before");
    assert_string_equal(hub_reading_tag(r, 2)->key, "c");
    /* a failed replace keeps the old value */
    assert_int_equal(hub_reading_add_tag(r, "b", ""), HUB_EINVAL);
    assert_string_equal(hub_reading_tag_value(r, "b"), "a much longer value than before");
    assert_int_equal(hub_reading_add_tag(r, "b", "2"), HUB_OK);
    assert_string_equal(hub_reading_tag_value(r, "b"), "2");
    assert_round_trip(r);
    hub_reading_free(r);
}

static void test_fields_and_accessors(void **state)
{
    (void)state;
    hub_reading_t *r = sample();
    assert_string_equal(hub_reading_measurement(r), "air_quality");
    assert_true(hub_reading_time(r) == 1764464523456789012LL);
    assert_int_equal(hub_reading_tag_count(r), 3);
    assert_string_equal(hub_reading_tag(r, 0)->key, "device");
    assert_string_equal(hub_reading_tag(r, 1)->key, "district");
    assert_string_equal(hub_reading_tag(r, 2)->key, "site");
    assert_string_equal(hub_reading_tag_value(r, "district"), "đồng hới");
    assert_null(hub_reading_tag_value(r, NULL));

    assert_int_equal(hub_reading_field_count(r), 5);
    const struct hub_field *f = hub_reading_field(r, 0); /* insertion order */
    assert_string_equal(f->key, "pm2_5");
    assert_int_equal(f->type, HUB_FIELD_FLOAT);
    assert_true(f->v.f == 12.5);
    f = hub_reading_field(r, 1);
    assert_string_equal(f->key, "delta");
    assert_int_equal(f->type, HUB_FIELD_INT);
    assert_true(f->v.i == -42);
    f = hub_reading_field(r, 2);
    assert_string_equal(f->key, "count");
    assert_int_equal(f->type, HUB_FIELD_UINT);
    assert_true(f->v.u == 300);
    f = hub_reading_field(r, 3);
    assert_string_equal(f->key, "ok");
    assert_int_equal(f->type, HUB_FIELD_BOOL);
    assert_true(f->v.b);
    f = hub_reading_field(r, 4);
    assert_string_equal(f->key, "note");
    assert_int_equal(f->type, HUB_FIELD_STRING);
    assert_string_equal(f->v.s, "line1\nline2, a=b");
    assert_null(hub_reading_field(r, 5));
    assert_null(hub_reading_tag(r, 3));

    /* strings are copies */
    char key[] = "k", val[] = "v";
    assert_int_equal(hub_reading_add_string(r, key, val), HUB_OK);
    key[0] = 'X';
    val[0] = 'Y';
    assert_string_equal(hub_reading_field(r, 5)->key, "k");
    assert_string_equal(hub_reading_field(r, 5)->v.s, "v");
    hub_reading_free(r);
}

static void test_errors(void **state)
{
    (void)state;
    char *n255 = repeat('k', 255), *n256 = repeat('k', 256);
    char *s4096 = repeat('s', 4096), *s4097 = repeat('s', 4097);
    hub_reading_t *r = hub_reading_new("m", 0);

    /* tags */
    assert_int_equal(hub_reading_add_tag(r, "", "v"), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(r, "k", ""), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(r, NULL, "v"), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(r, "k", NULL), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(r, n256, "v"), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(r, "k", n256), HUB_EINVAL);
    assert_int_equal(hub_reading_add_tag(NULL, "k", "v"), HUB_EINVAL);
    assert_int_equal(hub_reading_tag_count(r), 0);
    assert_int_equal(hub_reading_add_tag(r, n255, n255), HUB_OK);
    /* any bytes but NUL are accepted */
    assert_int_equal(hub_reading_add_tag(r, "a b,c=\"d\"\n", "\t\\ \xff\x01"), HUB_OK);
    assert_int_equal(hub_reading_tag_count(r), 2);

    /* fields: names */
    assert_int_equal(hub_reading_add_int(r, "", 1), HUB_EINVAL);
    assert_int_equal(hub_reading_add_uint(r, NULL, 1), HUB_EINVAL);
    assert_int_equal(hub_reading_add_float(r, n256, 1.0), HUB_EINVAL);
    assert_int_equal(hub_reading_add_bool(r, "", true), HUB_EINVAL);
    assert_int_equal(hub_reading_add_string(r, n256, "x"), HUB_EINVAL);
    assert_int_equal(hub_reading_add_int(NULL, "k", 1), HUB_EINVAL);
    /* floats */
    assert_int_equal(hub_reading_add_float(r, "f", NAN), HUB_EINVAL);
    assert_int_equal(hub_reading_add_float(r, "f", -NAN), HUB_EINVAL);
    assert_int_equal(hub_reading_add_float(r, "f", INFINITY), HUB_EINVAL);
    assert_int_equal(hub_reading_add_float(r, "f", -INFINITY), HUB_EINVAL);
    /* strings */
    assert_int_equal(hub_reading_add_string(r, "s", NULL), HUB_EINVAL);
    assert_int_equal(hub_reading_add_string(r, "s", s4097), HUB_EINVAL);
    assert_int_equal(hub_reading_field_count(r), 0);
    assert_int_equal(hub_reading_add_string(r, "s", s4096), HUB_OK);
    assert_int_equal(hub_reading_add_string(r, "e", ""), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, n255, 1), HUB_OK);
    /* duplicate field keys, whatever the type */
    assert_int_equal(hub_reading_add_int(r, "s", 1), HUB_EINVAL);
    assert_int_equal(hub_reading_add_uint(r, "e", 1), HUB_EINVAL);
    assert_int_equal(hub_reading_add_float(r, "s", 1.0), HUB_EINVAL);
    assert_int_equal(hub_reading_add_bool(r, n255, false), HUB_EINVAL);
    assert_int_equal(hub_reading_add_string(r, "e", "x"), HUB_EINVAL);
    assert_int_equal(hub_reading_field_count(r), 3);
    /* a tag and a field may share a key */
    assert_int_equal(hub_reading_add_int(r, "a b,c=\"d\"\n", 1), HUB_OK);
    assert_round_trip(r);
    hub_reading_free(r);

    /* too many fields */
    r = hub_reading_new("m", 0);
    for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "f%d", i);
        assert_int_equal(hub_reading_add_bool(r, k, i & 1), HUB_OK);
    }
    assert_int_equal(hub_reading_add_bool(r, "one-more", true), HUB_EFULL);
    assert_int_equal(hub_reading_add_bool(r, "f0", true), HUB_EINVAL);
    assert_int_equal(hub_reading_field_count(r), HUB_READING_MAX_FIELDS);
    assert_round_trip(r);
    hub_reading_free(r);

    /* a reading never grows past HUB_READING_MAX_ENCODED */
    r = hub_reading_new("m", 0);
    int added = 0;
    for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%02d", i);
        int rc = hub_reading_add_string(r, k, s4096);
        if (rc == HUB_EFULL)
            break;
        assert_int_equal(rc, HUB_OK);
        added++;
    }
    /* header 1+2+8+1+1 = 13; each field 4 (key) + 1 (type) + 2 + 4096 = 4103 */
    assert_int_equal(added, (HUB_READING_MAX_ENCODED - 13) / 4103);
    assert_int_equal(hub_reading_field_count(r), (size_t)added);
    struct hub_buf b;
    encode(r, &b);
    assert_true(b.len <= HUB_READING_MAX_ENCODED);
    assert_int_equal(b.len, 13 + (size_t)added * 4103);
    hub_buf_free(&b);
    assert_round_trip(r);
    hub_reading_free(r);

    free(n255);
    free(n256);
    free(s4096);
    free(s4097);
}

/* ---- encoding ----------------------------------------------------------- */

/* The documented layout, byte by byte. */
static void test_encode_golden(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("env", -1);
    assert_int_equal(hub_reading_add_tag(r, "id", "7"), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "i", -65), HUB_OK);
    assert_int_equal(hub_reading_add_uint(r, "u", 300), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "f", 1.0), HUB_OK);
    assert_int_equal(hub_reading_add_bool(r, "b", true), HUB_OK);
    assert_int_equal(hub_reading_add_string(r, "s", "hi"), HUB_OK);
    static const uint8_t want[] = {
        0x02,                              /* version */
        0x03, 'e',  'n',  'v',             /* measurement */
        0x01, 0x02, 'i',  'd',  0x01, '7', /* 1 tag */
        0x05,                              /* 5 fields: keys and types */
        0x01, 'i',  0x01, 0x01, 'u',  0x02, 0x01, 'f',
        0x03, 0x01, 'b',  0x04, 0x01, 's',  0x05,       /* end of the series key */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* time -1 */
        0x81, 0x01,                                     /* int -65: zigzag 129 */
        0xac, 0x02,                                     /* uint 300 */
        0,    0,    0,    0,    0,    0,    0xf0, 0x3f, /* 1.0 */
        0x01,                                           /* true */
        0x02, 'h',  'i',                                /* "hi" */
    };
    enum { KEY_LEN = 27 };
    /* The same reading as a cityhub before version 2 wrote it: still read. */
    static const uint8_t v1[] = {
        0x01,                                                          /* version */
        0x03, 'e',  'n',  'v',                                         /* measurement */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,                /* time -1 */
        0x01, 0x02, 'i',  'd',  0x01, '7',                             /* 1 tag */
        0x05,                                                          /* 5 fields */
        0x01, 'i',  0x01, 0x81, 0x01,                                  /* int -65: zigzag 129 */
        0x01, 'u',  0x02, 0xac, 0x02,                                  /* uint 300 */
        0x01, 'f',  0x03, 0,    0,    0,    0,    0,    0, 0xf0, 0x3f, /* 1.0 */
        0x01, 'b',  0x04, 0x01,                                        /* true */
        0x01, 's',  0x05, 0x02, 'h',  'i',                             /* "hi" */
    };
    _Static_assert(sizeof(v1) == sizeof(want), "both versions have the same length");
    uint8_t dst[sizeof(want)];
    size_t key_len = 0;
    assert_int_equal(hub_reading_encode_keyed(r, dst, sizeof(dst), &key_len), sizeof(want));
    assert_int_equal(key_len, KEY_LEN);
    assert_memory_equal(dst, want, sizeof(want));
    hub_reading_t *d1 = NULL;
    assert_int_equal(hub_reading_decode(v1, sizeof(v1), &d1), HUB_OK);
    assert_readings_equal(r, d1);
    assert_int_equal(hub_reading_encoded_size(d1), sizeof(want));
    hub_reading_free(d1);
    struct hub_buf b;
    hub_buf_init(&b, 1024);
    assert_int_equal(hub_buf_adds(&b, "prefix"), HUB_OK);
    assert_int_equal(hub_reading_encode(r, &b), HUB_OK); /* appends */
    assert_int_equal(b.len, 6 + sizeof(want));
    assert_memory_equal(b.data, "prefix", 6);
    assert_memory_equal(b.data + 6, want, sizeof(want));

    /* a buffer too small: HUB_EFULL and nothing changed */
    struct hub_buf small;
    hub_buf_init(&small, sizeof(want) - 1);
    assert_int_equal(hub_buf_adds(&small, "x"), HUB_OK);
    assert_int_equal(hub_reading_encode(r, &small), HUB_EFULL);
    assert_int_equal(small.len, 1);
    assert_string_equal((char *)small.data, "x");
    hub_buf_free(&small);
    hub_buf_init(&small, sizeof(want));
    assert_int_equal(hub_reading_encode(r, &small), HUB_OK);
    assert_int_equal(small.len, sizeof(want));
    hub_buf_free(&small);

    hub_reading_t *d = NULL;
    assert_int_equal(hub_reading_decode(want, sizeof(want), &d), HUB_OK);
    assert_readings_equal(r, d);
    hub_reading_free(d);
    hub_reading_free(r);
    hub_buf_free(&b);
}

static void test_round_trip_extremes(void **state)
{
    (void)state;
    static const int64_t times[] = {0, 1, -1, INT64_MIN, INT64_MAX, 1764464523456789012LL};
    for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
        hub_reading_t *r = hub_reading_new("m", times[t]);
        assert_int_equal(hub_reading_add_int(r, "imin", INT64_MIN), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "imax", INT64_MAX), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "i0", 0), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "im1", -1), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "i63", 63), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "i64", -64), HUB_OK);
        assert_int_equal(hub_reading_add_uint(r, "umax", UINT64_MAX), HUB_OK);
        assert_int_equal(hub_reading_add_uint(r, "u0", 0), HUB_OK);
        assert_int_equal(hub_reading_add_uint(r, "u127", 127), HUB_OK);
        assert_int_equal(hub_reading_add_uint(r, "u128", 128), HUB_OK);
        assert_int_equal(hub_reading_add_uint(r, "u2^63", 1ULL << 63), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fz", 0.0), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fnz", -0.0), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fmax", DBL_MAX), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fmin", -DBL_MAX), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fnorm", DBL_MIN), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fden", 4.9406564584124654e-324), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fden2", -DBL_MIN / 3), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "fpi", 3.141592653589793), HUB_OK);
        assert_int_equal(hub_reading_add_bool(r, "bt", true), HUB_OK);
        assert_int_equal(hub_reading_add_bool(r, "bf", false), HUB_OK);
        assert_int_equal(hub_reading_add_string(r, "sempty", ""), HUB_OK);
        assert_int_equal(hub_reading_add_string(r, "suni", "Đồng Hới — 25 °C ✓ 😀"), HUB_OK);
        char *big = repeat('x', HUB_READING_MAX_STRING);
        assert_int_equal(hub_reading_add_string(r, "slong", big), HUB_OK);
        free(big);
        assert_int_equal(hub_reading_add_string(r, "sbytes", "\x01\x7f\x80\xff \",=\\\n"), HUB_OK);
        assert_int_equal(hub_reading_add_tag(r, "ü", "ﬁ ligature"), HUB_OK);
        assert_round_trip(r);

        /* -0.0 keeps its sign through the journal */
        struct hub_buf b;
        encode(r, &b);
        hub_reading_t *d = NULL;
        assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
        assert_true(signbit(hub_reading_field(d, 12)->v.f));
        assert_true(hub_reading_field(d, 12)->v.f == 0.0);
        assert_true(hub_reading_field(d, 0)->v.i == INT64_MIN);
        assert_true(hub_reading_field(d, 6)->v.u == UINT64_MAX);
        assert_true(hub_reading_time(d) == times[t]);
        hub_reading_free(d);
        hub_buf_free(&b);
        hub_reading_free(r);
    }
    /* no tags, no fields (a reading can be built that way) */
    hub_reading_t *r = hub_reading_new("status", 3);
    assert_round_trip(r);
    hub_reading_free(r);
    r = sample();
    assert_round_trip(r);
    hub_reading_free(r);
}

static void test_decode_rejects_truncations(void **state)
{
    (void)state;
    hub_reading_t *r = sample();
    struct hub_buf b;
    encode(r, &b);
    for (size_t n = 0; n < b.len; n++) {
        /* copy to an exact-size heap block so ASan catches any over-read */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.data, n);
        hub_reading_t *d = (hub_reading_t *)0x1;
        assert_int_equal(hub_reading_decode(p, n, &d), HUB_EINVAL);
        assert_null(d);
        free(p);
    }
    /* the whole is fine; one more byte is not */
    hub_reading_t *d = NULL;
    assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
    hub_reading_free(d);
    assert_int_equal(hub_buf_addc(&b, 0), HUB_OK);
    assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_EINVAL);
    assert_null(d);
    hub_buf_free(&b);
    hub_reading_free(r);
}

/* Every single-byte change either is rejected or decodes to a reading whose
 * encoding is exactly the changed bytes (the encoding is canonical). */
static void test_decode_corruptions(void **state)
{
    (void)state;
    hub_reading_t *r = sample();
    struct hub_buf b;
    encode(r, &b);
    uint8_t *p = malloc(b.len);
    size_t accepted = 0, rejected = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (unsigned x = 1; x < 256; x++) {
            memcpy(p, b.data, b.len);
            p[i] ^= (uint8_t)x;
            hub_reading_t *d = NULL;
            int rc = hub_reading_decode(p, b.len, &d);
            if (rc == HUB_OK) {
                struct hub_buf e;
                encode(d, &e);
                assert_int_equal(e.len, b.len);
                assert_memory_equal(e.data, p, b.len);
                hub_buf_free(&e);
                hub_reading_free(d);
                accepted++;
            } else {
                assert_int_equal(rc, HUB_EINVAL);
                assert_null(d);
                rejected++;
            }
        }
    }
    assert_int_equal(accepted + rejected, b.len * 255);
    assert_true(rejected > 0 && accepted > 0);
    /* the version byte is checked */
    memcpy(p, b.data, b.len);
    for (unsigned v = 0; v < 256; v++) {
        p[0] = (uint8_t)v;
        hub_reading_t *d = NULL;
        assert_int_equal(hub_reading_decode(p, b.len, &d), v == 2 ? HUB_OK : HUB_EINVAL);
        hub_reading_free(d);
    }
    free(p);
    hub_buf_free(&b);
    hub_reading_free(r);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    struct w w;

    /* baseline: valid */
    w_head(&w);
    w_varint(&w, 2);
    w_str(&w, "a"), w_str(&w, "1");
    w_str(&w, "b"), w_str(&w, "2");
    w_varint(&w, 1);
    w_str(&w, "f"), w_byte(&w, HUB_FIELD_BOOL), w_byte(&w, 1);
    assert_int_equal(decode_w(&w), HUB_OK);

    /* NULL / empty / oversize input */
    hub_reading_t *d = NULL;
    assert_int_equal(hub_reading_decode(NULL, 0, &d), HUB_EINVAL);
    assert_int_equal(hub_reading_decode(w.b, 0, &d), HUB_EINVAL);
    uint8_t *huge = calloc(1, HUB_READING_MAX_ENCODED + 1);
    huge[0] = 1;
    assert_int_equal(hub_reading_decode(huge, HUB_READING_MAX_ENCODED + 1, &d), HUB_EINVAL);
    free(huge);

    /* empty measurement */
    w.n = 0;
    w_byte(&w, 1), w_str(&w, ""), w_u64(&w, 0), w_varint(&w, 0), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    /* measurement of 256 bytes */
    w.n = 0;
    w_byte(&w, 1), w_varint(&w, 256);
    memset(w.b + w.n, 'm', 256), w.n += 256;
    w_u64(&w, 0), w_varint(&w, 0), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w.b[1] = 0xff, w.b[2] = 0x01; /* 255: fine */
    memmove(w.b + 3, w.b + 4, w.n - 4), w.n--;
    assert_int_equal(decode_w(&w), HUB_OK);

    /* non-minimal varint (count 0 as 0x80 0x00) */
    w_head(&w);
    w_byte(&w, 0x80), w_byte(&w, 0x00), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    /* varint overflow: 11 bytes, and 10th byte > 1 */
    w_head(&w);
    for (int i = 0; i < 10; i++)
        w_byte(&w, 0xff);
    w_byte(&w, 0x01);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "u"), w_byte(&w, HUB_FIELD_UINT);
    for (int i = 0; i < 9; i++)
        w_byte(&w, 0xff);
    w_byte(&w, 0x02);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w.b[w.n - 1] = 0x01; /* UINT64_MAX: fine */
    assert_int_equal(decode_w(&w), HUB_OK);

    /* tag count above the maximum, and above what's there */
    w_head(&w);
    w_varint(&w, HUB_READING_MAX_TAGS + 1);
    for (int i = 0; i < HUB_READING_MAX_TAGS + 1; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%02d", i);
        w_str(&w, k), w_str(&w, "v");
    }
    w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w_head(&w);
    w_varint(&w, 3), w_str(&w, "a"), w_str(&w, "1"), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);

    /* unsorted tags, duplicate tags, empty tag value */
    w_head(&w);
    w_varint(&w, 2), w_str(&w, "b"), w_str(&w, "1"), w_str(&w, "a"), w_str(&w, "2");
    w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w_head(&w);
    w_varint(&w, 2), w_str(&w, "a"), w_str(&w, "1"), w_str(&w, "a"), w_str(&w, "2");
    w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w_head(&w);
    w_varint(&w, 2), w_str(&w, "a"), w_str(&w, "1"), w_str(&w, "ab"), w_str(&w, "2");
    w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_OK); /* prefix sorts first */
    w_head(&w);
    w_varint(&w, 1), w_str(&w, "a"), w_str(&w, ""), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);

    /* NUL inside a string */
    w_head(&w);
    w_varint(&w, 1), w_str(&w, "a"), w_varint(&w, 3), w_byte(&w, 'x'), w_byte(&w, 0);
    w_byte(&w, 'y'), w_varint(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);

    /* field count too large */
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, HUB_READING_MAX_FIELDS + 1);
    assert_int_equal(decode_w(&w), HUB_EINVAL);

    /* unknown types */
    for (unsigned t = 0; t < 256; t++) {
        if (t >= HUB_FIELD_INT && t <= HUB_FIELD_STRING)
            continue;
        w_head(&w);
        w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "f"), w_byte(&w, (uint8_t)t);
        w_byte(&w, 0);
        assert_int_equal(decode_w(&w), HUB_EINVAL);
    }
    /* bool must be 0 or 1 */
    for (unsigned v = 0; v < 256; v++) {
        w_head(&w);
        w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "f"), w_byte(&w, HUB_FIELD_BOOL);
        w_byte(&w, (uint8_t)v);
        assert_int_equal(decode_w(&w), v <= 1 ? HUB_OK : HUB_EINVAL);
    }
    /* NaN and infinities */
    static const uint64_t bad_floats[] = {0x7ff0000000000000ULL, 0xfff0000000000000ULL,
                                          0x7ff8000000000000ULL, 0x7ff0000000000001ULL,
                                          0xffffffffffffffffULL};
    for (size_t i = 0; i < sizeof(bad_floats) / sizeof(bad_floats[0]); i++) {
        w_head(&w);
        w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "f"), w_byte(&w, HUB_FIELD_FLOAT);
        w_u64(&w, bad_floats[i]);
        assert_int_equal(decode_w(&w), HUB_EINVAL);
    }
    /* duplicate field, empty field key */
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 2);
    w_str(&w, "f"), w_byte(&w, HUB_FIELD_INT), w_varint(&w, 2);
    w_str(&w, "f"), w_byte(&w, HUB_FIELD_UINT), w_varint(&w, 2);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 1);
    w_str(&w, ""), w_byte(&w, HUB_FIELD_INT), w_varint(&w, 2);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    /* string field longer than the maximum */
    {
        static uint8_t big[HUB_READING_MAX_STRING + 64];
        size_t n = 0;
        big[n++] = 1, big[n++] = 1, big[n++] = 'm';
        for (int i = 0; i < 8; i++)
            big[n++] = 0;
        big[n++] = 0, big[n++] = 1, big[n++] = 1, big[n++] = 's', big[n++] = HUB_FIELD_STRING;
        size_t len = HUB_READING_MAX_STRING + 1;
        big[n++] = (uint8_t)(len | 0x80), big[n++] = (uint8_t)(len >> 7);
        memset(big + n, 'x', len);
        n += len;
        assert_int_equal(hub_reading_decode(big, n, &d), HUB_EINVAL);
        /* and exactly the maximum is fine */
        len--;
        big[n - len - 3] = (uint8_t)(len | 0x80), big[n - len - 2] = (uint8_t)(len >> 7);
        memmove(big + n - len - 1, big + n - len, len);
        assert_int_equal(hub_reading_decode(big, n - 1, &d), HUB_OK);
        assert_int_equal(strlen(hub_reading_field(d, 0)->v.s), HUB_READING_MAX_STRING);
        hub_reading_free(d);
    }
    /* string length past the end */
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "s"), w_byte(&w, HUB_FIELD_STRING);
    w_varint(&w, 5), w_byte(&w, 'a');
    assert_int_equal(decode_w(&w), HUB_EINVAL);
    /* trailing byte */
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 0), w_byte(&w, 0);
    assert_int_equal(decode_w(&w), HUB_EINVAL);
}

/* ---- memory layout and the new encoder entry points ----------------------- */

/* hub_reading_encoded_size and hub_reading_encode_to agree with
 * hub_reading_encode; a short destination gets nothing. */
static void test_encode_to(void **state)
{
    (void)state;
    hub_reading_t *rs[3] = {sample(), hub_reading_new("status", 3), hub_reading_new("m", -5)};
    char *big = repeat('x', HUB_READING_MAX_STRING);
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%d", i);
        assert_int_equal(hub_reading_add_string(rs[2], k, big), HUB_OK);
    }
    free(big);
    for (size_t i = 0; i < 3; i++) {
        struct hub_buf b;
        encode(rs[i], &b);
        size_t n = hub_reading_encoded_size(rs[i]);
        assert_int_equal(n, b.len);
        uint8_t *dst = malloc(n + 1);
        memset(dst, 0xa5, n + 1);
        assert_int_equal(hub_reading_encode_to(rs[i], dst, n - 1), 0);
        for (size_t j = 0; j <= n; j++)
            assert_int_equal(dst[j], 0xa5); /* nothing written */
        assert_int_equal(hub_reading_encode_to(rs[i], dst, n), n);
        assert_memory_equal(dst, b.data, n);
        assert_int_equal(dst[n], 0xa5); /* not past the end */
        assert_int_equal(hub_reading_encode_to(rs[i], dst, n + 1), n);
        free(dst);
        hub_buf_free(&b);
        hub_reading_free(rs[i]);
    }
}

/* Every field key is found as a duplicate, whatever collides in the hash
 * table: keys of every length, keys alike but for one byte anywhere. */
static void test_duplicates_many_keys(void **state)
{
    (void)state;
    char k[HUB_READING_MAX_NAME + 1];
    /* lengths 1..64 of the same byte: every key a prefix of the next */
    hub_reading_t *r = hub_reading_new("m", 0);
    for (size_t n = 1; n <= HUB_READING_MAX_FIELDS; n++) {
        memset(k, 'a', n);
        k[n] = 0;
        assert_int_equal(hub_reading_add_bool(r, k, true), HUB_OK);
    }
    for (size_t n = 1; n <= HUB_READING_MAX_FIELDS; n++) {
        memset(k, 'a', n);
        k[n] = 0;
        assert_int_equal(hub_reading_add_int(r, k, 1), HUB_EINVAL);
    }
    assert_round_trip(r);
    hub_reading_free(r);
    /* 255-byte keys that differ in one byte, at every place */
    for (size_t place = 0; place < HUB_READING_MAX_NAME; place += 37) {
        r = hub_reading_new("m", 0);
        memset(k, 'k', HUB_READING_MAX_NAME);
        k[HUB_READING_MAX_NAME] = 0;
        for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
            k[place] = (char)(' ' + i);
            assert_int_equal(hub_reading_add_uint(r, k, (uint64_t)i), HUB_OK);
        }
        for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
            k[place] = (char)(' ' + i);
            assert_int_equal(hub_reading_add_float(r, k, 1.0), HUB_EINVAL);
            assert_string_equal(hub_reading_field(r, (size_t)i)->key, k);
        }
        k[place] = 'k';
        assert_int_equal(hub_reading_add_bool(r, k, true), HUB_EFULL); /* new: full */
        assert_round_trip(r);
        hub_reading_free(r);
    }
    /* decode finds duplicates anywhere in a full record */
    for (int dup = 1; dup < HUB_READING_MAX_FIELDS; dup += 7) {
        struct w w;
        w_head(&w);
        w_varint(&w, 0), w_varint(&w, HUB_READING_MAX_FIELDS);
        for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
            snprintf(k, sizeof(k), "field_%d", i == dup ? dup / 2 : i);
            w_str(&w, k), w_byte(&w, HUB_FIELD_BOOL), w_byte(&w, 1);
        }
        assert_int_equal(decode_w(&w), HUB_EINVAL);
    }
}

/* A reference reading: plain arrays, checked against the real one. */
struct model {
    char tk[HUB_READING_MAX_TAGS][HUB_READING_MAX_NAME + 1];
    char tv[HUB_READING_MAX_TAGS][HUB_READING_MAX_NAME + 1];
    size_t nt;
    char fk[HUB_READING_MAX_FIELDS][HUB_READING_MAX_NAME + 1];
    struct hub_field f[HUB_READING_MAX_FIELDS];
    char *fs[HUB_READING_MAX_FIELDS];
    size_t nf;
    size_t enc;
};

static uint64_t rng = 0x853c49e6748fea9bULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A key from a small set (so that tags get replaced and fields repeat),
 * now and then a long one. */
static void rnd_key(char *k)
{
    uint64_t r = rnd();
    if (r % 16 == 0) {
        size_t n = 1 + (r >> 8) % HUB_READING_MAX_NAME;
        memset(k, 'a' + (int)((r >> 20) % 3), n);
        k[n] = 0;
    } else {
        snprintf(k, HUB_READING_MAX_NAME + 1, "%c%u", 'a' + (int)((r >> 8) % 5),
                 (unsigned)((r >> 16) % 12));
    }
}

static void model_check(const struct model *m, const hub_reading_t *r)
{
    assert_int_equal(hub_reading_tag_count(r), m->nt);
    for (size_t i = 0; i < m->nt; i++) {
        assert_string_equal(hub_reading_tag(r, i)->key, m->tk[i]);
        assert_string_equal(hub_reading_tag(r, i)->value, m->tv[i]);
        assert_string_equal(hub_reading_tag_value(r, m->tk[i]), m->tv[i]);
    }
    assert_int_equal(hub_reading_field_count(r), m->nf);
    for (size_t i = 0; i < m->nf; i++)
        assert_true(fields_equal(hub_reading_field(r, i), &m->f[i]));
    assert_int_equal(hub_reading_encoded_size(r), m->enc);
}

static size_t vlen(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static void model_op(struct model *m, hub_reading_t *r)
{
    char k[HUB_READING_MAX_NAME + 1], v[HUB_READING_MAX_NAME + 1];
    uint64_t op = rnd();
    rnd_key(k);
    size_t kl = strlen(k);
    if (op % 3 == 0) { /* a tag */
        rnd_key(v);
        size_t vl = strlen(v);
        int rc = hub_reading_add_tag(r, k, v);
        size_t pos = 0;
        while (pos < m->nt && strcmp(m->tk[pos], k) < 0)
            pos++;
        if (pos < m->nt && strcmp(m->tk[pos], k) == 0) {
            assert_int_equal(rc, HUB_OK);
            m->enc += vlen(vl) + vl - vlen(strlen(m->tv[pos])) - strlen(m->tv[pos]);
            strcpy(m->tv[pos], v);
        } else if (m->nt == HUB_READING_MAX_TAGS) {
            assert_int_equal(rc, HUB_EFULL);
        } else {
            assert_int_equal(rc, HUB_OK);
            memmove(m->tk[pos + 1], m->tk[pos], (m->nt - pos) * sizeof(m->tk[0]));
            memmove(m->tv[pos + 1], m->tv[pos], (m->nt - pos) * sizeof(m->tv[0]));
            strcpy(m->tk[pos], k);
            strcpy(m->tv[pos], v);
            m->nt++;
            m->enc += vlen(kl) + kl + vlen(vl) + vl;
        }
        return;
    }
    bool dup = false;
    for (size_t i = 0; i < m->nf; i++)
        dup = dup || strcmp(m->fk[i], k) == 0;
    struct hub_field f = {.type = (enum hub_field_type)(1 + (op >> 8) % 5)};
    size_t venc = 0;
    char *sv = NULL;
    int rc = 0;
    switch (f.type) {
    case HUB_FIELD_INT:
        f.v.i = (int64_t)rnd() >> (rnd() % 64);
        rc = hub_reading_add_int(r, k, f.v.i);
        venc = vlen(((uint64_t)f.v.i << 1) ^ (uint64_t)(f.v.i >> 63));
        break;
    case HUB_FIELD_UINT:
        f.v.u = rnd() >> (rnd() % 64);
        rc = hub_reading_add_uint(r, k, f.v.u);
        venc = vlen(f.v.u);
        break;
    case HUB_FIELD_FLOAT:
        f.v.f = (double)(int64_t)rnd() / 1e6;
        rc = hub_reading_add_float(r, k, f.v.f);
        venc = 8;
        break;
    case HUB_FIELD_BOOL:
        f.v.b = rnd() & 1;
        rc = hub_reading_add_bool(r, k, f.v.b);
        venc = 1;
        break;
    case HUB_FIELD_STRING: {
        size_t n = rnd() % 8 == 0 ? rnd() % (HUB_READING_MAX_STRING + 1) : rnd() % 20;
        sv = repeat((char)('A' + rnd() % 26), n);
        f.v.s = sv;
        rc = hub_reading_add_string(r, k, sv);
        venc = vlen(n) + n;
        break;
    }
    }
    size_t size = m->enc + vlen(kl) + kl + 1 + venc;
    if (dup) {
        assert_int_equal(rc, HUB_EINVAL);
        free(sv);
    } else if (m->nf == HUB_READING_MAX_FIELDS || size > HUB_READING_MAX_ENCODED) {
        assert_int_equal(rc, HUB_EFULL);
        free(sv);
    } else {
        assert_int_equal(rc, HUB_OK);
        strcpy(m->fk[m->nf], k);
        f.key = m->fk[m->nf];
        m->fs[m->nf] = sv;
        m->f[m->nf++] = f;
        m->enc = size;
    }
}

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->nf; i++)
        free(m->fs[i]);
}

/* Random adds against the reference, on built readings and on decoded ones
 * (whose block is exactly sized, so every add grows them), with round trips
 * along the way. ASan checks the memory: replaced tag values, arrays moved
 * out of the block, text chunks. */
static void test_model_random(void **state)
{
    (void)state;
    static struct model m;
    for (int round = 0; round < 300; round++) {
        memset(&m, 0, sizeof(m));
        m.enc = 1 + 2 + 8 + 1 + 1;
        hub_reading_t *r = hub_reading_new("m", round);
        int ops = (int)(rnd() % 200);
        for (int i = 0; i < ops; i++) {
            model_op(&m, r);
            if (rnd() % 32 == 0) {
                /* continue on the decoded copy */
                struct hub_buf b;
                encode(r, &b);
                hub_reading_t *d = NULL;
                assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
                hub_buf_free(&b);
                hub_reading_free(r);
                r = d;
            }
        }
        model_check(&m, r);
        assert_round_trip(r);
        hub_reading_free(r);
        model_free(&m);
    }
}

/* A decoded reading takes more tags, replaced tags and fields (its arrays
 * leave the exact-size block); a tag replaced and then moved by inserts
 * keeps its value. */
static void test_decoded_grows(void **state)
{
    (void)state;
    hub_reading_t *r = sample(), *d = NULL;
    struct hub_buf b;
    encode(r, &b);
    assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
    hub_buf_free(&b);
    assert_int_equal(hub_reading_add_tag(d, "site", "replaced once"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(d, "site", "replaced twice, longer than before"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(d, "a", "first"), HUB_OK);   /* moves "site" */
    assert_int_equal(hub_reading_add_tag(d, "zz", "last"), HUB_OK);   /* after it */
    assert_int_equal(hub_reading_add_tag(d, "dz", "middle"), HUB_OK); /* moves it again */
    assert_string_equal(hub_reading_tag_value(d, "site"), "replaced twice, longer than before");
    assert_int_equal(hub_reading_add_tag(d, "a", "first, replaced"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(d, "device", "aq-2"), HUB_OK);
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof(k), "x%d", i);
        assert_int_equal(hub_reading_add_uint(d, k, (uint64_t)i), HUB_OK);
    }
    assert_int_equal(hub_reading_add_int(d, "delta", 1), HUB_EINVAL); /* from the record */
    assert_int_equal(hub_reading_add_int(d, "x7", 1), HUB_EINVAL);    /* added since */
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof(k), "t%02d", i);
        size_t before = hub_reading_tag_count(d);
        assert_int_equal(hub_reading_add_tag(d, k, "v"),
                         before < HUB_READING_MAX_TAGS ? HUB_OK : HUB_EFULL);
    }
    assert_int_equal(hub_reading_tag_count(d), HUB_READING_MAX_TAGS);
    assert_string_equal(hub_reading_tag_value(d, "site"), "replaced twice, longer than before");
    assert_string_equal(hub_reading_tag_value(d, "a"), "first, replaced");
    assert_string_equal(hub_reading_tag_value(d, "device"), "aq-2");
    assert_string_equal(hub_reading_tag_value(d, "district"), "đồng hới");
    assert_int_equal(hub_reading_field_count(d), 45);
    assert_round_trip(d);
    hub_reading_free(d);
    hub_reading_free(r);
}

/* hub_reading_decode_into: the same reading as hub_reading_decode, in the
 * spare's memory when it suits; the spare is never leaked (ASan). */
static void test_decode_into(void **state)
{
    (void)state;
    hub_reading_t *r = sample(), *d = NULL, *want = NULL;
    struct hub_buf b;
    encode(r, &b);
    assert_int_equal(hub_reading_decode(b.data, b.len, &want), HUB_OK);

    /* no spare: a new reading */
    assert_int_equal(hub_reading_decode_into(NULL, b.data, b.len, &d), HUB_OK);
    assert_readings_equal(want, d);
    /* the same record again, into the reading it gave: reused */
    hub_reading_t *spare = d;
    assert_int_equal(hub_reading_decode_into(spare, b.data, b.len, &d), HUB_OK);
    assert_ptr_equal(d, spare);
    assert_readings_equal(want, d);
    assert_round_trip(d);

    /* a spare that grew (replaced tag, fields past the block, text chunks) */
    assert_int_equal(hub_reading_add_tag(d, "site", "another"), HUB_OK);
    char *big = repeat('s', 3000);
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof(k), "g%d", i);
        assert_int_equal(hub_reading_add_string(d, k, i < 3 ? big : "x"), HUB_OK);
    }
    free(big);
    spare = d;
    assert_int_equal(hub_reading_decode_into(spare, b.data, b.len, &d), HUB_OK);
    assert_ptr_equal(d, spare);
    assert_readings_equal(want, d);
    /* and the reused reading takes adds like any other */
    assert_int_equal(hub_reading_add_int(d, "delta", 1), HUB_EINVAL);
    assert_int_equal(hub_reading_add_int(d, "new", 1), HUB_OK);
    assert_int_equal(hub_reading_add_tag(d, "a", "b"), HUB_OK);
    assert_round_trip(d);
    hub_reading_free(d);

    /* too small: a record with long strings needs a new block */
    hub_reading_t *large = hub_reading_new("m", 1);
    big = repeat('L', 2000);
    assert_int_equal(hub_reading_add_string(large, "s", big), HUB_OK);
    assert_int_equal(hub_reading_add_tag(large, "t", "v"), HUB_OK);
    struct hub_buf lb;
    encode(large, &lb);
    hub_reading_t *tiny_spare = NULL;
    struct w w;
    w_head(&w);
    w_varint(&w, 0), w_varint(&w, 1), w_str(&w, "f"), w_byte(&w, HUB_FIELD_BOOL), w_byte(&w, 1);
    assert_int_equal(hub_reading_decode(w.b, w.n, &tiny_spare), HUB_OK);
    assert_int_equal(hub_reading_decode_into(tiny_spare, lb.data, lb.len, &d), HUB_OK);
    assert_readings_equal(large, d);
    /* too large: not kept for a tiny record (it would hold memory) */
    hub_reading_t *big_spare = d;
    assert_int_equal(hub_reading_decode_into(big_spare, w.b, w.n, &d), HUB_OK);
    assert_ptr_not_equal(d, big_spare); /* freed, a new one */
    assert_int_equal(hub_reading_field_count(d), 1);
    assert_round_trip(d);
    /* a built reading serves as a spare */
    hub_reading_t *built = hub_reading_new("x", 0);
    hub_reading_free(d);
    assert_int_equal(hub_reading_decode_into(built, b.data, b.len, &d), HUB_OK);
    assert_ptr_equal(d, built);
    assert_readings_equal(want, d);

    /* malformed: HUB_EINVAL, nothing out, the spare freed */
    spare = d;
    d = (hub_reading_t *)0x1;
    assert_int_equal(hub_reading_decode_into(spare, b.data, b.len - 1, &d), HUB_EINVAL);
    assert_null(d);
    assert_int_equal(hub_reading_decode_into(NULL, NULL, 0, &d), HUB_EINVAL);
    assert_null(d);

    free(big);
    hub_buf_free(&lb);
    hub_reading_free(large);
    hub_reading_free(want);
    hub_buf_free(&b);
    hub_reading_free(r);
}

/* A chain of random records, each decoded into the reading before it,
 * gives what a plain decode gives. */
static void test_decode_into_chain(void **state)
{
    (void)state;
    static struct model m;
    hub_reading_t *prev = NULL;
    for (int round = 0; round < 400; round++) {
        memset(&m, 0, sizeof(m));
        m.enc = 1 + 2 + 8 + 1 + 1;
        hub_reading_t *r = hub_reading_new("m", round);
        int ops = (int)(rnd() % 120);
        for (int i = 0; i < ops; i++)
            model_op(&m, r);
        struct hub_buf b;
        encode(r, &b);
        hub_reading_t *d = NULL, *want = NULL;
        assert_int_equal(hub_reading_decode(b.data, b.len, &want), HUB_OK);
        assert_int_equal(hub_reading_decode_into(prev, b.data, b.len, &d), HUB_OK);
        assert_readings_equal(want, d);
        model_check(&m, d);
        if (rnd() % 4 == 0) /* now and then grow it before it is reused */
            model_op(&m, d);
        prev = d;
        hub_reading_free(want);
        hub_buf_free(&b);
        hub_reading_free(r);
        model_free(&m);
    }
    hub_reading_free(prev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_measurement),
        cmocka_unit_test(test_tags_sorted_every_order),
        cmocka_unit_test(test_tags_many_descending),
        cmocka_unit_test(test_tag_replace),
        cmocka_unit_test(test_fields_and_accessors),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_encode_golden),
        cmocka_unit_test(test_round_trip_extremes),
        cmocka_unit_test(test_decode_rejects_truncations),
        cmocka_unit_test(test_decode_corruptions),
        cmocka_unit_test(test_decode_rejects_malformed),
        cmocka_unit_test(test_encode_to),
        cmocka_unit_test(test_duplicates_many_keys),
        cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_decoded_grows),
        cmocka_unit_test(test_decode_into),
        cmocka_unit_test(test_decode_into_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
