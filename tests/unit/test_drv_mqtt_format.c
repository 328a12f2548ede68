/* tests/unit/test_drv_mqtt_format.c — payload formats of the MQTT input
 * (drivers/mqtt/format.c, senml.c, json.c, lineproto.c, chirpstack.c):
 * every format with exact values, field types, tags and times; SenML base
 * values and grouping; JSON Pointer and RFC 3339 corner cases; every line
 * protocol error; the depth limit; and that any bad part of a message
 * refuses all of it with a clear reason and no reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "drivers/mqtt/format.h"

#define NOW 1700000000123456789LL /* the arrival time of every message */
#define S 1000000000LL

static struct drv_mq_out out; /* 32 KiB: not on the stack */
static char why[256];

static struct drv_mq_parse_opts opts(enum drv_mq_format f)
{
    struct drv_mq_parse_opts o;
    memset(&o, 0, sizeof(o));
    o.format = f;
    return o;
}

static int parse_tags(const struct drv_mq_parse_opts *o, const struct drv_mq_tagset *ts,
                      const char *payload)
{
    drv_mq_out_clear(&out);
    memset(why, 'x', sizeof(why) - 1);
    why[sizeof(why) - 1] = '\0';
    int rc =
        drv_mq_parse(o, ts, (const uint8_t *)payload, strlen(payload), NOW, &out, why, sizeof(why));
    if (rc == HUB_OK) {
        assert_true(out.n >= 1);
    } else {
        assert_int_equal(out.n, 0);
        assert_true(why[0] != '\0' && strlen(why) < sizeof(why) - 1);
        size_t n = strlen(why); /* no full stop (a cut quote's "..." is no full stop) */
        assert_true(why[n - 1] != '.' || (n > 4 && strcmp(why + n - 4, "\"...") == 0));
    }
    return rc;
}

static int parse(const struct drv_mq_parse_opts *o, const char *payload)
{
    return parse_tags(o, NULL, payload);
}

/* The payload is refused with exactly this reason. */
static void refused(const struct drv_mq_parse_opts *o, const char *payload, const char *reason)
{
    int rc = parse(o, payload);
    if (rc != HUB_EINVAL || strcmp(why, reason) != 0)
        fail_msg("payload %s: rc %d, reason \"%s\", want \"%s\"", payload, rc, rc ? why : "",
                 reason);
}

/* The payload is refused with a reason starting with prefix. */
static void refused_prefix(const struct drv_mq_parse_opts *o, const char *payload,
                           const char *prefix)
{
    int rc = parse(o, payload);
    if (rc != HUB_EINVAL || strncmp(why, prefix, strlen(prefix)) != 0)
        fail_msg("payload %s: rc %d, reason \"%s\", want \"%s...\"", payload, rc, rc ? why : "",
                 prefix);
}

static const struct hub_field *field(const hub_reading_t *r, const char *key)
{
    for (size_t i = 0; i < hub_reading_field_count(r); i++)
        if (strcmp(hub_reading_field(r, i)->key, key) == 0)
            return hub_reading_field(r, i);
    fail_msg("no field %s", key);
    return NULL;
}

static void has_float(const hub_reading_t *r, const char *key, double v)
{
    const struct hub_field *f = field(r, key);
    assert_int_equal(f->type, HUB_FIELD_FLOAT);
    if (f->v.f != v)
        fail_msg("field %s: %.17g, want %.17g", key, f->v.f, v);
}

static void has_int(const hub_reading_t *r, const char *key, int64_t v)
{
    const struct hub_field *f = field(r, key);
    assert_int_equal(f->type, HUB_FIELD_INT);
    assert_true(f->v.i == v);
}

static void has_uint(const hub_reading_t *r, const char *key, uint64_t v)
{
    const struct hub_field *f = field(r, key);
    assert_int_equal(f->type, HUB_FIELD_UINT);
    assert_true(f->v.u == v);
}

static void has_bool(const hub_reading_t *r, const char *key, bool v)
{
    const struct hub_field *f = field(r, key);
    assert_int_equal(f->type, HUB_FIELD_BOOL);
    assert_int_equal(f->v.b, v);
}

static void has_string(const hub_reading_t *r, const char *key, const char *v)
{
    const struct hub_field *f = field(r, key);
    assert_int_equal(f->type, HUB_FIELD_STRING);
    assert_string_equal(f->v.s, v);
}

static void has_tag(const hub_reading_t *r, const char *key, const char *v)
{
    const char *got = hub_reading_tag_value(r, key);
    if (!got || strcmp(got, v) != 0)
        fail_msg("tag %s: %s, want %s", key, got ? got : "(none)", v);
}

static void has_time(const hub_reading_t *r, int64_t t)
{
    if (hub_reading_time(r) != t)
        fail_msg("time %lld, want %lld", (long long)hub_reading_time(r), (long long)t);
}

static void teardown_out(void)
{
    drv_mq_out_clear(&out);
}

/* ---- names and dispatch --------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(drv_mq_format_names[DRV_MQ_SENML], "senml");
    assert_string_equal(drv_mq_format_names[DRV_MQ_JSON], "json");
    assert_string_equal(drv_mq_format_names[DRV_MQ_INFLUX], "influx");
    assert_string_equal(drv_mq_format_names[DRV_MQ_VALUE], "value");
    assert_string_equal(drv_mq_format_names[DRV_MQ_CHIRPSTACK], "chirpstack");
    assert_null(drv_mq_format_names[5]);
    assert_string_equal(drv_mq_precision_names[DRV_MQ_AUTO], "auto");
    assert_string_equal(drv_mq_precision_names[DRV_MQ_NS], "ns");
    assert_string_equal(drv_mq_precision_names[DRV_MQ_US], "us");
    assert_string_equal(drv_mq_precision_names[DRV_MQ_MS], "ms");
    assert_string_equal(drv_mq_precision_names[DRV_MQ_S], "s");
    assert_null(drv_mq_precision_names[5]);
}

static void test_dispatch_checks(void **state)
{
    (void)state;
    for (int f = DRV_MQ_SENML; f <= DRV_MQ_CHIRPSTACK; f++) {
        struct drv_mq_parse_opts o = opts((enum drv_mq_format)f);
        refused(&o, "", "empty payload");
        drv_mq_out_clear(&out);
        assert_int_equal(
            drv_mq_parse(&o, NULL, (const uint8_t *)"1\0002", 3, NOW, &out, why, sizeof(why)),
            HUB_EINVAL);
        assert_string_equal(why, "NUL byte in payload");
        assert_int_equal(out.n, 0);
    }
    struct drv_mq_parse_opts o = opts((enum drv_mq_format)99);
    refused(&o, "1", "unknown format 99");
    /* why may be absent */
    o = opts(DRV_MQ_VALUE);
    assert_int_equal(drv_mq_parse(&o, NULL, (const uint8_t *)"x", 1, NOW, &out, NULL, 0),
                     HUB_EINVAL);
    assert_int_equal(out.n, 0);
}

/* ---- value ---------------------------------------------------------------- */

static void test_value(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_VALUE);
    assert_int_equal(parse(&o, "21.5"), HUB_OK);
    assert_int_equal(out.n, 1);
    assert_string_equal(hub_reading_measurement(out.r[0]), "value");
    assert_int_equal(hub_reading_field_count(out.r[0]), 1);
    has_float(out.r[0], "value", 21.5);
    has_time(out.r[0], NOW);
    assert_int_equal(hub_reading_tag_count(out.r[0]), 0);

    assert_int_equal(parse(&o, " 7 \n"), HUB_OK);
    has_float(out.r[0], "value", 7);
    assert_int_equal(parse(&o, "\t-1.25e3\r\n"), HUB_OK);
    has_float(out.r[0], "value", -1250);
    assert_int_equal(parse(&o, "true"), HUB_OK);
    has_bool(out.r[0], "value", true);
    assert_int_equal(parse(&o, " false\n"), HUB_OK);
    has_bool(out.r[0], "value", false);

    o.measurement = "boiler";
    o.field = "temp";
    assert_int_equal(parse(&o, "65"), HUB_OK);
    assert_string_equal(hub_reading_measurement(out.r[0]), "boiler");
    has_float(out.r[0], "temp", 65);

    refused(&o, "abc", "not a number or bool: \"abc\"");
    refused(&o, "TRUE", "not a number or bool: \"TRUE\"");
    refused(&o, "1 2", "not a number or bool: \"1 2\"");
    refused(&o, "21.5C", "not a number or bool: \"21.5C\"");
    refused(&o, "nan", "not a number or bool: \"nan\"");
    refused(&o, "inf", "not a number or bool: \"inf\"");
    refused(&o, "1e999", "not a number or bool: \"1e999\"");
    refused(&o, " \r\n\t", "blank payload: no value");
    refused(&o, "{\"v\":\"x\"}", "not a number or bool: \"{\\x22v\\x22:\\x22x\\x22}\"");
    /* at most 32 bytes shown, non-printable as \xNN */
    refused(&o, "\x01\xff 0123456789012345678901234567890123456789",
            "not a number or bool: \"\\x01\\xff 01234567890123456789012345678\"...");
}

/* ---- RFC 3339 ------------------------------------------------------------- */

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ns = -1;
    assert_int_equal(drv_mq_parse_rfc3339("1970-01-01T00:00:00Z", &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03T07:15:00.123456789Z", &ns), 0);
    assert_true(ns == 1796282100123456789LL);
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03T07:00:00.123456Z", &ns), 0);
    assert_true(ns == 1796281200123456000LL);
    /* offsets: the same instant three ways */
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03T07:00:00.5+01:00", &ns), 0);
    assert_true(ns == 1796277600500000000LL);
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03T00:30:00.5-05:30", &ns), 0);
    assert_true(ns == 1796277600500000000LL);
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03t06:00:00.5z", &ns), 0);
    assert_true(ns == 1796277600500000000LL);
    assert_int_equal(drv_mq_parse_rfc3339("2026-12-03 06:00:00.500Z", &ns), 0);
    assert_true(ns == 1796277600500000000LL);
    /* digits past the ninth are cut */
    assert_int_equal(drv_mq_parse_rfc3339("1970-01-01T00:00:01.0000000019Z", &ns), 0);
    assert_true(ns == 1000000001LL);
    assert_int_equal(drv_mq_parse_rfc3339("2024-02-29T12:00:00Z", &ns), 0);
    assert_true(ns == 1709208000000000000LL);
    assert_int_equal(drv_mq_parse_rfc3339("2262-04-11T23:47:16Z", &ns), 0);
    assert_true(ns == 9223372036000000000LL);
    /* a leap second reads as the next second's start */
    assert_int_equal(drv_mq_parse_rfc3339("2016-12-31T23:59:60Z", &ns), 0);
    assert_true(ns == 1483228800LL * S);

    static const char *const bad[] = {
        "",
        "2026-12-03",
        "2026-12-03T07:00:00",      /* no zone */
        "2026-12-03T07:00:00+0100", /* offset without colon */
        "2026-12-03T07:00:00Z ",    /* trailing */
        " 2026-12-03T07:00:00Z",    /* leading */
        "2026-12-03T07:00:00.Z",    /* point without digits */
        "2026-13-03T07:00:00Z",     /* month */
        "2026-00-03T07:00:00Z",
        "2026-02-29T07:00:00Z", /* not a leap year */
        "2026-04-31T07:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-12-03T07:60:00Z",
        "2026-12-03T07:00:61Z",
        "2026-12-03T07:00:00+24:00",
        "2026-12-03X07:00:00Z",
        "26-12-03T07:00:00Z",
        "1969-12-31T23:59:59Z",      /* before 1970 */
        "1970-01-01T00:30:00+01:00", /* before 1970 once offset */
        "2262-04-11T23:47:17Z",      /* past int64 ns */
        "9999-12-31T23:59:59Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (drv_mq_parse_rfc3339(bad[i], &ns) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(drv_mq_parse_rfc3339(NULL, &ns), -1);
}

/* ---- JSON pieces ---------------------------------------------------------- */

static void test_json_pointer(void **state)
{
    (void)state;
    /* the example of RFC 6901, section 5 */
    const char *doc = "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3,"
                      " \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8,"
                      " \"deep\": {\"x\": [[10, {\"y\": 11}]]}}";
    json_t *root = json_loads(doc, 0, NULL);
    assert_non_null(root);
    assert_ptr_equal(drv_mq_json_pointer(root, ""), root);
    assert_ptr_equal(drv_mq_json_pointer(root, "/foo"), json_object_get(root, "foo"));
    assert_string_equal(json_string_value(drv_mq_json_pointer(root, "/foo/0")), "bar");
    assert_string_equal(json_string_value(drv_mq_json_pointer(root, "/foo/1")), "baz");
    static const struct {
        const char *p;
        int v;
    } ints[] = {{"/", 0},     {"/a~1b", 1},        {"/c%d", 2},          {"/e^f", 3},
                {"/g|h", 4},  {"/i\\j", 5},        {"/k\"l", 6},         {"/ ", 7},
                {"/m~0n", 8}, {"/deep/x/0/0", 10}, {"/deep/x/0/1/y", 11}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *v = drv_mq_json_pointer(root, ints[i].p);
        if (!json_is_integer(v) || json_integer_value(v) != ints[i].v)
            fail_msg("pointer %s", ints[i].p);
    }
    static const char *const none[] = {
        "foo",                            /* no leading slash */
        "/m~2n",                          /* ~ must be ~0 or ~1 */
        "/m~",      "/~",       "/foo/2", /* past the end */
        "/foo/-",   "/foo/01",            /* leading zero */
        "/foo/-1",  "/foo/1e0", "/foo/",
        "/foo/0/x", /* into a string */
        "/nope",    "//",       "/foo/99999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        if (drv_mq_json_pointer(root, none[i]) != NULL)
            fail_msg("pointer %s found something", none[i]);
    /* a pointer longer than the stack buffer */
    char key[400], ptr[402];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    json_object_set_new(root, key, json_integer(42));
    snprintf(ptr, sizeof(ptr), "/%s", key);
    assert_int_equal(json_integer_value(drv_mq_json_pointer(root, ptr)), 42);
    assert_null(drv_mq_json_pointer(NULL, ""));
    assert_null(drv_mq_json_pointer(root, NULL));
    json_decref(root);
}

static void test_json_depth(void **state)
{
    (void)state;
    char s[200];
    for (int d = 0; d <= 40; d++) {
        memset(s, '[', (size_t)d);
        memset(s + d, ']', (size_t)d);
        int want = d > 33 ? 33 : d;
        assert_int_equal(drv_mq_json_depth(s, 2 * (size_t)d, DRV_MQ_MAX_DEPTH), want);
    }
    const char *t = "{\"a\": \"[[[{{\", \"b\\\"[\": [1, {\"c\": \"\\\\\"}], \"d\": {}}";
    assert_int_equal(drv_mq_json_depth(t, strlen(t), 32), 3);
    assert_int_equal(drv_mq_json_depth("[[]][[[]]]", 10, 32), 3);
    assert_int_equal(drv_mq_json_depth("]]]][", 5, 32), 1);
    assert_int_equal(drv_mq_json_depth("[[[[", 2, 32), 2); /* no further than len */
    assert_int_equal(drv_mq_json_depth("\"\\", 2, 32), 0); /* escape at the end */
    assert_int_equal(drv_mq_json_depth(NULL, 5, 32), 0);
}

/* {"x":1,"a":<depth-1 levels of []>}: depth levels in all. */
static char *nested_doc(int depth)
{
    char *s = malloc(64 + 2 * (size_t)depth);
    int n = sprintf(s, "{\"x\":1,\"a\":");
    for (int i = 1; i < depth; i++)
        s[n++] = '[';
    for (int i = 1; i < depth; i++)
        s[n++] = ']';
    strcpy(s + n, "}");
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_JSON);
    char *ok = nested_doc(32), *deep = nested_doc(33);
    assert_int_equal(parse(&o, ok), HUB_OK);
    has_float(out.r[0], "x", 1);
    assert_int_equal(hub_reading_field_count(out.r[0]), 1);
    refused(&o, deep, "JSON nested deeper than 32");
    o = opts(DRV_MQ_CHIRPSTACK);
    refused(&o, deep, "JSON nested deeper than 32");
    o = opts(DRV_MQ_SENML);
    refused(&o, deep, "JSON nested deeper than 32");
    free(ok);
    free(deep);
}

/* ---- SenML ---------------------------------------------------------------- */

static void test_senml_base_name(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_SENML);
    /* RFC 8428 5.1.2, no times: one reading of the device, now */
    assert_int_equal(parse(&o,
                           "[{\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"n\":\"voltage\","
                           "\"u\":\"V\",\"v\":120.1},{\"n\":\"current\",\"u\":\"A\",\"v\":1.2}]"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    assert_string_equal(hub_reading_measurement(out.r[0]), "senml");
    assert_int_equal(hub_reading_tag_count(out.r[0]), 1);
    has_tag(out.r[0], "device", "urn:dev:ow:10e2073a01080063");
    assert_int_equal(hub_reading_field_count(out.r[0]), 2);
    assert_string_equal(hub_reading_field(out.r[0], 0)->key, "voltage");
    has_float(out.r[0], "voltage", 120.1);
    has_float(out.r[0], "current", 1.2);
    has_time(out.r[0], NOW);

    /* each trailing separator, cut once; none to cut */
    static const char *const bns[] = {"dev/", "dev.", "dev-", "dev", "dev::"};
    static const char *const devs[] = {"dev", "dev", "dev", "dev", "dev:"};
    for (size_t i = 0; i < 5; i++) {
        char p[128];
        snprintf(p, sizeof(p), "[{\"bn\":\"%s\",\"n\":\"t\",\"v\":1}]", bns[i]);
        assert_int_equal(parse(&o, p), HUB_OK);
        has_tag(out.r[0], "device", devs[i]);
        has_float(out.r[0], "t", 1);
    }
    /* no base name: the whole name is the field, no device */
    assert_int_equal(parse(&o, "[{\"n\":\"urn:dev:mac:0024befffe804ff1:temp\",\"v\":23.5}]"),
                     HUB_OK);
    assert_int_equal(hub_reading_tag_count(out.r[0]), 0);
    has_float(out.r[0], "urn:dev:mac:0024befffe804ff1:temp", 23.5);
    /* a record named by bn alone: the field is "value" (or opts->field) */
    assert_int_equal(parse(&o, "[{\"bn\":\"boiler:\",\"v\":65}]"), HUB_OK);
    has_tag(out.r[0], "device", "boiler");
    has_float(out.r[0], "value", 65);
    o.field = "temp";
    o.measurement = "heating";
    assert_int_equal(parse(&o, "[{\"bn\":\"boiler:\",\"v\":65}]"), HUB_OK);
    assert_string_equal(hub_reading_measurement(out.r[0]), "heating");
    has_float(out.r[0], "temp", 65);
    /* a later bn applies from its record on */
    o = opts(DRV_MQ_SENML);
    assert_int_equal(parse(&o, "[{\"bn\":\"a:\",\"n\":\"t\",\"v\":1},{\"bn\":\"b:\",\"n\":\"t\","
                               "\"v\":2},{\"n\":\"h\",\"v\":3}]"),
                     HUB_OK);
    assert_int_equal(out.n, 2);
    has_tag(out.r[0], "device", "a");
    has_float(out.r[0], "t", 1);
    has_tag(out.r[1], "device", "b");
    has_float(out.r[1], "t", 2);
    has_float(out.r[1], "h", 3);
}

static void test_senml_values_and_times(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_SENML);
    /* bt absolute, t relative to it; same time merges, another splits */
    assert_int_equal(parse(&o, "[{\"bn\":\"dev1/\",\"bt\":1700000000,\"bu\":\"Cel\",\"bver\":10,"
                               "\"n\":\"temp\",\"v\":21.5},"
                               "{\"n\":\"hum\",\"u\":\"%RH\",\"v\":40},"
                               "{\"n\":\"temp\",\"t\":10,\"v\":22},"
                               "{\"n\":\"hum\",\"t\":10,\"v\":41},"
                               "{\"n\":\"temp\",\"t\":-0.5,\"v\":21}]"),
                     HUB_OK);
    assert_int_equal(out.n, 3);
    has_time(out.r[0], 1700000000 * S);
    has_float(out.r[0], "temp", 21.5);
    has_float(out.r[0], "hum", 40);
    assert_int_equal(hub_reading_field_count(out.r[0]), 2);
    has_time(out.r[1], 1700000010 * S);
    has_float(out.r[1], "temp", 22);
    has_float(out.r[1], "hum", 41);
    has_time(out.r[2], 1699999999 * S + S / 2);
    has_float(out.r[2], "temp", 21);
    for (size_t i = 0; i < 3; i++)
        has_tag(out.r[i], "device", "dev1");

    /* t alone: absolute from 2^28 s on, else relative to now */
    assert_int_equal(parse(&o, "[{\"n\":\"a\",\"t\":1700000000.25,\"v\":1},"
                               "{\"n\":\"b\",\"t\":-5,\"v\":2},{\"n\":\"c\",\"v\":3},"
                               "{\"n\":\"d\",\"t\":268435456,\"v\":4},"
                               "{\"n\":\"e\",\"t\":268435455,\"v\":5}]"),
                     HUB_OK);
    assert_int_equal(out.n, 5);
    has_time(out.r[0], 1700000000 * S + S / 4);
    has_time(out.r[1], NOW - 5 * S);
    has_time(out.r[2], NOW);
    has_time(out.r[3], 268435456 * S);
    has_time(out.r[4], NOW + 268435455 * S);
    /* bt relative too: bt + t below 2^28 */
    assert_int_equal(parse(&o, "[{\"bt\":-60,\"n\":\"a\",\"v\":1},{\"n\":\"b\",\"t\":30,\"v\":2}]"),
                     HUB_OK);
    assert_int_equal(out.n, 2);
    has_time(out.r[0], NOW - 60 * S);
    has_time(out.r[1], NOW - 30 * S);

    /* bv adds to v (not to vs/vb); vs, vb */
    assert_int_equal(parse(&o, "[{\"bn\":\"m-\",\"bv\":100,\"n\":\"a\",\"v\":1.5},"
                               "{\"n\":\"b\",\"v\":-1},{\"n\":\"s\",\"vs\":\"on\"},"
                               "{\"n\":\"ok\",\"vb\":false},{\"bv\":0,\"n\":\"c\",\"v\":7}]"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    has_float(out.r[0], "a", 101.5);
    has_float(out.r[0], "b", 99);
    has_string(out.r[0], "s", "on");
    has_bool(out.r[0], "ok", false);
    has_float(out.r[0], "c", 7);

    /* base-only records and sums are read past */
    assert_int_equal(parse(&o, "[{\"bn\":\"d:\",\"bt\":1700000000,\"bver\":5},"
                               "{\"n\":\"energy\",\"s\":12.5},{\"n\":\"p\",\"v\":2}]"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    assert_int_equal(hub_reading_field_count(out.r[0]), 1);
    has_float(out.r[0], "p", 2);
    has_time(out.r[0], 1700000000 * S);
}

static void test_senml_errors(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_SENML);
    refused(&o, "{\"n\":\"a\",\"v\":1}", "SenML payload is not an array of records");
    refused(&o, "[]", "empty SenML pack");
    refused(&o, "[{\"n\":\"a\",\"v\":1},{\"v\":2}]", "record 2: no name (n or bn)");
    refused(&o, "[{\"n\":\"a\",\"v\":1},7]", "record 2: not an object");
    refused(&o, "[{\"n\":\"a\",\"vd\":\"aGk=\"}]", "record 1: vd (data values) is not supported");
    refused(&o, "[{\"n\":\"a\",\"v\":\"21\"}]", "record 1: v is not a number");
    refused(&o, "[{\"n\":\"a\",\"vs\":1}]", "record 1: vs is not a string");
    refused(&o, "[{\"n\":\"a\",\"vb\":\"true\"}]", "record 1: vb is not a bool");
    refused(&o, "[{\"n\":\"a\",\"v\":1,\"vs\":\"x\"}]",
            "record 1: more than one value (v, vs, vb)");
    refused(&o, "[{\"n\":\"a\"}]", "record 1: no value (v, vs or vb)");
    refused(&o, "[{\"u\":\"V\"}]", "record 1: no value (v, vs or vb)");
    refused(&o, "[{\"n\":5,\"v\":1}]", "record 1: n is not a string");
    refused(&o, "[{\"bn\":5,\"n\":\"a\",\"v\":1}]", "record 1: bn is not a string");
    refused(&o, "[{\"bt\":\"now\",\"n\":\"a\",\"v\":1}]", "record 1: bt is not a number");
    refused(&o, "[{\"bv\":null,\"n\":\"a\",\"v\":1}]", "record 1: bv is not a number");
    refused(&o, "[{\"n\":\"a\",\"t\":\"x\",\"v\":1}]", "record 1: t is not a number");
    refused(&o, "[{\"n\":\"a\",\"t\":1e300,\"v\":1}]", "record 1: time out of range");
    refused(&o, "[{\"n\":\"a\",\"t\":-2e9,\"v\":1}]", "record 1: time before 1970");
    refused(&o, "[{\"bv\":1e308,\"n\":\"a\",\"v\":1e308}]", "record 1: v + bv out of range");
    refused(&o, "[{\"n\":\"a\",\"v\":1,\"foo_\":1}]",
            "record 1: unsupported field \"foo_\" (must be understood)");
    refused(&o, "[{\"bn\":\"d:\",\"n\":\"t\",\"v\":1},{\"n\":\"h\",\"v\":2},{\"n\":\"t\",\"v\":3}]",
            "record 3: duplicate field \"t\" (same device and time as before)");
    refused(&o, "[{\"n\":\"\",\"v\":1}]", "record 1: no name (n or bn)");
    refused_prefix(&o, "[{\"n\":\"a\",\"v\":1}", "invalid JSON at line 1 column ");
    refused_prefix(&o, "[{\"n\":\"a\",\"v\":1}] x", "invalid JSON at line 1 column ");
    /* one bad record refuses the records before it too */
    refused(&o,
            "[{\"bn\":\"a:\",\"n\":\"t\",\"v\":1},{\"bn\":\"b:\",\"n\":\"t\",\"v\":2},"
            "{\"n\":\"x\",\"v\":\"bad\"}]",
            "record 3: v is not a number");
    /* a name too long for a field or a tag */
    char p[700], name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(p, sizeof(p), "[{\"n\":\"%s\",\"v\":1}]", name);
    refused(&o, p, "record 1: name longer than 255 bytes");
    snprintf(p, sizeof(p), "[{\"bn\":\"%s\",\"n\":\"a\",\"v\":1}]", name);
    refused(&o, p, "record 1: bn longer than 255 bytes");
    snprintf(p, sizeof(p), "[{\"bn\":\"d:\",\"n\":\"%s\",\"v\":1}]", name);
    refused_prefix(&o, p, "record 1: field name longer than 255 bytes: \"nnnn");
}

static void test_senml_many(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_SENML);
    /* 4096 times: 4096 readings; 4097: too many */
    size_t cap = 4200 * 40;
    char *p = malloc(cap);
    for (int total = 4096; total <= 4097; total++) {
        size_t n = 0;
        n += (size_t)snprintf(p + n, cap - n, "[{\"bn\":\"d:\",\"bt\":1700000000}");
        for (int i = 0; i < total; i++)
            n += (size_t)snprintf(p + n, cap - n, ",{\"n\":\"v\",\"t\":%d,\"v\":%d}", i, i);
        snprintf(p + n, cap - n, "]");
        if (total == 4096) {
            assert_int_equal(parse(&o, p), HUB_OK);
            assert_int_equal(out.n, 4096);
            has_time(out.r[4095], (1700000000LL + 4095) * S);
            has_float(out.r[4095], "v", 4095);
        } else {
            refused(&o, p, "more than 4096 readings in one message");
        }
    }
    /* 64 fields in one reading; 65 too many */
    size_t n = (size_t)snprintf(p, cap, "[{\"bn\":\"d:\",\"n\":\"f0\",\"v\":0}");
    for (int i = 1; i < 64; i++)
        n += (size_t)snprintf(p + n, cap - n, ",{\"n\":\"f%d\",\"v\":%d}", i, i);
    snprintf(p + n, cap - n, "]");
    assert_int_equal(parse(&o, p), HUB_OK);
    assert_int_equal(hub_reading_field_count(out.r[0]), 64);
    snprintf(p + n, cap - n, ",{\"n\":\"f64\",\"v\":1}]");
    refused(&o, p, "record 65: more than 64 fields");
    free(p);
}

/* ---- json ----------------------------------------------------------------- */

static void test_json_members(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_JSON);
    assert_int_equal(parse(&o, "{\"temp\":21.5,\"hum\":40,\"ok\":true,\"id\":\"abc\","
                               "\"nested\":{\"x\":1},\"arr\":[1,2],\"gone\":null}"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    hub_reading_t *r = out.r[0];
    assert_string_equal(hub_reading_measurement(r), "json");
    has_time(r, NOW);
    assert_int_equal(hub_reading_field_count(r), 4);
    assert_string_equal(hub_reading_field(r, 0)->key, "temp"); /* in payload order */
    has_float(r, "temp", 21.5);
    has_float(r, "hum", 40); /* an integer is a float too */
    has_bool(r, "ok", true);
    has_string(r, "id", "abc");

    o.measurement = "room";
    o.time_pointer = "/ts";
    assert_int_equal(parse(&o, "{\"ts\":1700000000,\"t\":1}"), HUB_OK);
    assert_string_equal(hub_reading_measurement(out.r[0]), "room");
    assert_int_equal(hub_reading_field_count(out.r[0]), 1); /* ts is no field */
    has_time(out.r[0], 1700000000 * S);
    /* AUTO by magnitude */
    static const struct {
        const char *ts;
        int64_t ns;
    } autos[] = {
        {"1700000000", 1700000000 * S},
        {"1700000000.5", 1700000000 * S + S / 2},
        {"1700000000123", 1700000000123000000LL},
        {"1700000000123.5", 1700000000123500000LL},
        {"1700000000123456", 1700000000123456000LL},
        {"1700000000123456789", 1700000000123456789LL},
        {"0", 0},
        {"\"2026-12-03T07:15:00.123456789Z\"", 1796282100123456789LL},
        {"\"2026-12-03T07:00:00.5+01:00\"", 1796277600500000000LL},
    };
    for (size_t i = 0; i < sizeof(autos) / sizeof(autos[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "{\"v\":1,\"ts\":%s}", autos[i].ts);
        assert_int_equal(parse(&o, p), HUB_OK);
        has_time(out.r[0], autos[i].ns);
    }
    /* a given precision */
    o.precision = DRV_MQ_MS;
    assert_int_equal(parse(&o, "{\"v\":1,\"ts\":1700000000}"), HUB_OK);
    has_time(out.r[0], 1700000000LL * 1000000);
    o.precision = DRV_MQ_US;
    assert_int_equal(parse(&o, "{\"v\":1,\"ts\":1700000000123456}"), HUB_OK);
    has_time(out.r[0], 1700000000123456000LL);
    o.precision = DRV_MQ_NS;
    assert_int_equal(parse(&o, "{\"v\":1,\"ts\":1700000000}"), HUB_OK);
    has_time(out.r[0], 1700000000);
    o.precision = DRV_MQ_S;
    assert_int_equal(parse(&o, "{\"v\":1,\"ts\":1700000000123}"), HUB_EINVAL);
    assert_string_equal(why, "time \"/ts\": 1700000000123 is out of range (1970 to 2262)");
    o.precision = DRV_MQ_AUTO;
    /* missing or null time: arrival */
    assert_int_equal(parse(&o, "{\"v\":1}"), HUB_OK);
    has_time(out.r[0], NOW);
    assert_int_equal(parse(&o, "{\"v\":1,\"ts\":null}"), HUB_OK);
    has_time(out.r[0], NOW);
    /* a nested time pointer */
    o.time_pointer = "/meta/time";
    assert_int_equal(parse(&o, "{\"v\":1,\"meta\":{\"time\":\"1970-01-01T00:00:01Z\"}}"), HUB_OK);
    has_time(out.r[0], S);
    o.time_pointer = "/ts";
    refused(&o, "{\"v\":1,\"ts\":-1}", "time \"/ts\": -1 is out of range (1970 to 2262)");
    refused(&o, "{\"v\":1,\"ts\":true}", "time \"/ts\": not a number or an RFC 3339 string");
    refused(&o, "{\"v\":1,\"ts\":\"yesterday\"}",
            "time \"/ts\": not an RFC 3339 time from 1970 to 2262: \"yesterday\"");
    refused(&o, "{\"ts\":1700000000}", "no field found");
    refused(&o, "{\"a\":{\"b\":1}}", "no field found");
}

static void test_json_field_map(void **state)
{
    (void)state;
    struct hub_cfg_tag pairs[] = {
        {"temp", "/sensors/0/temp"}, {"hum", "/sensors/0/hum"}, {"missing", "/nope"},
        {"state", "/state"},         {"label", "/meta/label"},  {"gone", "/null"},
    };
    struct hub_cfg_tags map = {.n = 6, .tag = pairs};
    struct drv_mq_parse_opts o = opts(DRV_MQ_JSON);
    o.measurement = "env";
    o.fields = &map;
    assert_int_equal(parse(&o, "{\"sensors\":[{\"temp\":20.5,\"hum\":50}],\"state\":false,"
                               "\"meta\":{\"label\":\"north\"},\"null\":null,\"other\":1}"),
                     HUB_OK);
    hub_reading_t *r = out.r[0];
    assert_int_equal(hub_reading_field_count(r), 4);
    assert_string_equal(hub_reading_field(r, 0)->key, "temp"); /* in map order */
    has_float(r, "temp", 20.5);
    has_float(r, "hum", 50);
    has_bool(r, "state", false);
    has_string(r, "label", "north");
    refused(&o, "{\"sensors\":[{\"temp\":20.5}],\"state\":{\"on\":1}}",
            "field \"state\": \"/state\" is an object, not a value");
    refused(&o, "{\"sensors\":[{\"temp\":20.5}],\"meta\":{\"label\":[1]}}",
            "field \"label\": \"/meta/label\" is an array, not a value");
    refused(&o, "{\"other\":1}", "no field found");
    /* arrays: one reading per object */
    assert_int_equal(parse(&o, "[{\"state\":true},{\"state\":false,\"sensors\":[{\"hum\":1}]}]"),
                     HUB_OK);
    assert_int_equal(out.n, 2);
    has_bool(out.r[0], "state", true);
    has_bool(out.r[1], "state", false);
    has_float(out.r[1], "hum", 1);
    refused(&o, "[{\"state\":true},{\"other\":2}]", "element 2: no field found");
}

static void test_json_errors(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_JSON);
    refused(&o, "{\"a\":}", "invalid JSON at line 1 column 6: unexpected token near '}'");
    refused_prefix(&o, "{\"a\":1} x", "invalid JSON at line 1 column ");
    refused_prefix(&o, "21.5", "invalid JSON at line 1 column ");
    refused_prefix(&o, "{\"a\":\"\\u0000\"}", "invalid JSON at line 1 column ");
    refused(&o, "[]", "empty JSON array");
    refused(&o, "[1]", "element 1: not an object");
    refused(&o, "[{\"a\":1},\"b\"]", "element 2: not an object");
    refused(&o, "[{\"a\":1},{\"b\":{}}]", "element 2: no field found");
    refused(&o, "{\"\":1}", "field name empty");
    /* a string too long for a field */
    char *p = malloc(5000);
    strcpy(p, "{\"s\":\"");
    memset(p + 6, 'a', 4097);
    strcpy(p + 6 + 4097, "\"}");
    refused(&o, p, "field \"s\": string longer than 4096 bytes");
    strcpy(p + 6 + 4096, "\"}");
    assert_int_equal(parse(&o, p), HUB_OK);
    assert_int_equal(strlen(field(out.r[0], "s")->v.s), 4096);
    free(p);
    /* 65 members: too many fields */
    char big[2048];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"f0\":0");
    for (int i = 1; i < 65; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, ",\"f%d\":%d", i, i);
    snprintf(big + n, sizeof(big) - n, "}");
    refused(&o, big, "more than 64 fields");
}

/* ---- line protocol -------------------------------------------------------- */

static void test_influx_lines(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_INFLUX);
    assert_int_equal(parse(&o, "weather,station=a\\ b,city=x\\,y\\=z temp=21.5,hum=40i,"
                               "count=7u,ok=t,neg=-3i,name=\"he said \\\"hi\\\"\","
                               "path=\"c:\\\\dir\\n\" 1700000000000000001"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    hub_reading_t *r = out.r[0];
    assert_string_equal(hub_reading_measurement(r), "weather");
    assert_int_equal(hub_reading_tag_count(r), 2);
    has_tag(r, "station", "a b");
    has_tag(r, "city", "x,y=z");
    assert_int_equal(hub_reading_field_count(r), 7);
    has_float(r, "temp", 21.5);
    has_int(r, "hum", 40);
    has_uint(r, "count", 7);
    has_bool(r, "ok", true);
    has_int(r, "neg", -3);
    has_string(r, "name", "he said \"hi\"");
    has_string(r, "path", "c:\\dir\\n"); /* \n is no escape: kept */
    has_time(r, 1700000000000000001LL);

    /* escapes in names; other backslashes kept; one space or many */
    assert_int_equal(parse(&o, "my\\ meas\\,x,a\\b=c\\d f\\=k\\ 1=1   5"), HUB_OK);
    r = out.r[0];
    assert_string_equal(hub_reading_measurement(r), "my meas,x");
    has_tag(r, "a\\b", "c\\d");
    has_float(r, "f=k 1", 1);
    has_time(r, 5);
    /* a backslash pair is one unit: "a\\" then the delimiter */
    assert_int_equal(parse(&o, "m,t=a\\\\ v=1"), HUB_OK);
    has_tag(out.r[0], "t", "a\\\\");

    /* every bool spelling, the float forms, the integer limits */
    assert_int_equal(parse(&o, "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE,"
                               "k=-1.5e3,l=.5,m=1.,n=+2,o=1E+2,p=-9223372036854775808i,"
                               "q=9223372036854775807i,r=18446744073709551615u,s=0u,t=\"\""),
                     HUB_OK);
    r = out.r[0];
    has_bool(r, "a", true);
    has_bool(r, "b", true);
    has_bool(r, "c", true);
    has_bool(r, "d", true);
    has_bool(r, "e", true);
    has_bool(r, "f", false);
    has_bool(r, "g", false);
    has_bool(r, "h", false);
    has_bool(r, "i", false);
    has_bool(r, "j", false);
    has_float(r, "k", -1500);
    has_float(r, "l", 0.5);
    has_float(r, "m", 1);
    has_float(r, "n", 2);
    has_float(r, "o", 100);
    has_int(r, "p", INT64_MIN);
    has_int(r, "q", INT64_MAX);
    has_uint(r, "r", UINT64_MAX);
    has_uint(r, "s", 0);
    has_string(r, "t", "");
    has_time(r, NOW);

    /* several lines, CRLF, comments and blank lines */
    assert_int_equal(parse(&o, "# header\r\n\r\ncpu,host=a usage=1 10\r\n  \n"
                               "  # indented comment\ncpu,host=b usage=2 20\n"),
                     HUB_OK);
    assert_int_equal(out.n, 2);
    has_tag(out.r[0], "host", "a");
    has_time(out.r[0], 10);
    has_tag(out.r[1], "host", "b");
    has_float(out.r[1], "usage", 2);
    has_time(out.r[1], 20);

    /* precision */
    static const struct {
        enum drv_mq_precision p;
        int64_t ns;
    } prec[] = {{DRV_MQ_AUTO, 1700000000},
                {DRV_MQ_NS, 1700000000},
                {DRV_MQ_US, 1700000000000LL},
                {DRV_MQ_MS, 1700000000000000LL},
                {DRV_MQ_S, 1700000000 * S}};
    for (size_t i = 0; i < 5; i++) {
        o.precision = prec[i].p;
        assert_int_equal(parse(&o, "m v=1 1700000000"), HUB_OK);
        has_time(out.r[0], prec[i].ns);
    }
    o.precision = DRV_MQ_S;
    refused(&o, "m v=1 9223372037", "line 1: timestamp out of range \"9223372037\"");
    /* the tagset: the line's own tag wins */
    o.precision = DRV_MQ_AUTO;
    struct drv_mq_tagset ts = {.n = 2, .tag = {{"host", "topic"}, {"site", "north"}}};
    assert_int_equal(parse_tags(&o, &ts, "m,host=a v=1\nm v=2"), HUB_OK);
    has_tag(out.r[0], "host", "a");
    has_tag(out.r[0], "site", "north");
    has_tag(out.r[1], "host", "topic");
    has_tag(out.r[1], "site", "north");
}

static void test_influx_errors(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_INFLUX);
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"temp", "line 1: no fields (a space, then field=value)"},
        {"temp,host=a", "line 1: no fields (a space, then field=value)"},
        {"temp ", "line 1: no fields after the space"},
        {"m temp=", "line 1: missing field value after \"temp=\""},
        {"m a=1,temp= 5", "line 1: missing field value after \"temp=\""},
        {"m temp=1.2.3", "line 1: field \"temp\": bad number \"1.2.3\""},
        {"m temp=1x", "line 1: field \"temp\": bad number \"1x\""},
        {"m temp=1e", "line 1: field \"temp\": bad number \"1e\""},
        {"m temp=yes", "line 1: field \"temp\": bad number \"yes\""},
        {"m temp=1e999", "line 1: field \"temp\": number out of range \"1e999\""},
        {"m n=1.5i", "line 1: field \"n\": bad integer \"1.5i\""},
        {"m n=i", "line 1: field \"n\": bad integer \"i\""},
        {"m n=-1u", "line 1: field \"n\": bad unsigned integer \"-1u\""},
        {"m n=9223372036854775808i", "line 1: field \"n\": integer out of range "
                                     "\"9223372036854775808i\""},
        {"m n=18446744073709551616u", "line 1: field \"n\": unsigned integer out of range "
                                      "\"18446744073709551616u\""},
        {"m,host v=1", "line 1: missing \"=\" after tag key \"host\""},
        {"m,host= v=1", "line 1: missing tag value after \"host=\""},
        {"m,=a v=1", "line 1: empty tag key"},
        {"m,a=1,a=2 v=1", "line 1: duplicate tag \"a\""},
        {"m =1", "line 1: empty field key"},
        {"m v", "line 1: missing \"=\" after field key \"v\""},
        {"m v,w=1", "line 1: missing \"=\" after field key \"v\""},
        {"m v=1,", "line 1: empty field key"},
        {"m v=1,v=2", "line 1: duplicate field \"v\""},
        {"m v=\"abc", "line 1: unterminated string in field \"v\""},
        {"m v=\"a\"b", "line 1: field \"v\": unexpected \"b\" after the value"},
        {"m v=1 abc", "line 1: bad timestamp \"abc\""},
        {"m v=1 1.5", "line 1: bad timestamp \"1.5\""},
        {"m v=1 -5", "line 1: timestamp before 1970 \"-5\""},
        {"m v=1 99999999999999999999", "line 1: timestamp out of range "
                                       "\"99999999999999999999\""},
        {"m v=1 123 456", "line 1: unexpected \"456\" after the timestamp"},
        {",a=1 v=1", "line 1: missing measurement"},
        {"# only\n\n", "no data lines (only blank lines and comments)"},
        /* the line number counts every line; earlier good lines are dropped too */
        {"m v=1\n# c\n\nm v=", "line 4: missing field value after \"v=\""},
        {"m v=1\r\nm v=2\r\nm,x v=3\r\n", "line 3: missing \"=\" after tag key \"x\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        refused(&o, cases[i].in, cases[i].why);

    /* limits */
    char p[8192];
    size_t n = (size_t)snprintf(p, sizeof(p), "m");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(p + n, sizeof(p) - n, ",t%02d=v", i);
    snprintf(p + n, sizeof(p) - n, " v=1");
    refused(&o, p, "line 1: more than 32 tags");
    n = (size_t)snprintf(p, sizeof(p), "m f0=0");
    for (int i = 1; i < 65; i++)
        n += (size_t)snprintf(p + n, sizeof(p) - n, ",f%d=%d", i, i);
    refused(&o, p, "line 1: more than 64 fields");
    memset(p, 'm', 256);
    snprintf(p + 256, sizeof(p) - 256, " v=1");
    refused(&o, p, "line 1: measurement longer than 255 bytes");
    snprintf(p, sizeof(p), "m v=\"");
    memset(p + 5, 's', 4097);
    snprintf(p + 5 + 4097, sizeof(p) - 5 - 4097, "\"");
    refused(&o, p, "line 1: field \"v\": string longer than 4096 bytes");

    /* NUL: drv_mq_parse says so for the payload, parse_lines per line */
    drv_mq_out_clear(&out);
    assert_int_equal(
        drv_mq_parse_lines("m v=1\nm v=\0", 11, DRV_MQ_AUTO, NOW, &out, why, sizeof(why)),
        HUB_EINVAL);
    assert_string_equal(why, "line 2: NUL byte");
    assert_int_equal(out.n, 0);
    /* parse_lines alone: 2 readings */
    assert_int_equal(
        drv_mq_parse_lines("a v=1\nb v=2", 11, DRV_MQ_AUTO, NOW, &out, why, sizeof(why)), HUB_OK);
    assert_int_equal(out.n, 2);
    assert_string_equal(hub_reading_measurement(out.r[1]), "b");
    drv_mq_out_clear(&out);
    assert_int_equal(out.n, 0);
}

/* ---- chirpstack ----------------------------------------------------------- */

static const char *const uplink =
    "{\"deduplicationId\":\"3ac7e3c4-4401-4b8d-9386-a5c902f9202d\","
    "\"time\":\"2026-12-03T07:00:00.123456Z\","
    "\"deviceInfo\":{\"tenantId\":\"52f14cd4-c6f1-4fbd-8f87-4025e1d49242\","
    "\"tenantName\":\"City\",\"applicationId\":\"17c82e96-be03-4f38-aef3-f83d48582d97\","
    "\"applicationName\":\"air-quality\",\"deviceProfileName\":\"ERS CO2\","
    "\"deviceName\":\"ers-12\",\"devEui\":\"0102030405060708\","
    "\"tags\":{\"floor\":\"3\",\"room\":\"\",\"weird\":5}},"
    "\"devAddr\":\"00189440\",\"adr\":true,\"dr\":5,\"fCnt\":12,\"fPort\":1,\"confirmed\":false,"
    "\"data\":\"AQDXAj8=\","
    "\"object\":{\"temperature\":21.5,\"humidity\":40,\"gps\":{\"lat\":52.1,\"lon\":4.3,"
    "\"fix\":{\"ok\":true}},\"flags\":[1,0],\"status\":\"ok\",\"nothing\":null,\"empty\":{}},"
    "\"rxInfo\":[{\"gatewayId\":\"0016c001f153a14c\",\"uplinkId\":4217106255,\"rssi\":-80,"
    "\"snr\":3.2,\"channel\":2,\"location\":{},\"context\":\"EFwMtA==\"},"
    "{\"gatewayId\":\"0016c001f1500812\",\"rssi\":-57,\"snr\":9.5,\"channel\":2},"
    "{\"gatewayId\":\"0016c001f1500813\",\"snr\":12}],"
    "\"txInfo\":{\"frequency\":868100000,\"modulation\":{\"lora\":{\"bandwidth\":125000,"
    "\"spreadingFactor\":7,\"codeRate\":\"CR_4_5\"}}}}";

static void dev_tags(const hub_reading_t *r)
{
    has_tag(r, "dev_eui", "0102030405060708");
    has_tag(r, "device", "ers-12");
    has_tag(r, "application", "air-quality");
    has_tag(r, "floor", "3");
    assert_null(hub_reading_tag_value(r, "room"));  /* empty: skipped */
    assert_null(hub_reading_tag_value(r, "weird")); /* not a string */
}

static void test_chirpstack_uplink(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_CHIRPSTACK);
    assert_int_equal(parse(&o, uplink), HUB_OK);
    assert_int_equal(out.n, 1);
    hub_reading_t *r = out.r[0];
    assert_string_equal(hub_reading_measurement(r), "lorawan");
    has_time(r, 1796281200123456000LL);
    assert_int_equal(hub_reading_tag_count(r), 4);
    dev_tags(r);
    assert_int_equal(hub_reading_field_count(r), 8);
    has_float(r, "temperature", 21.5);
    has_float(r, "humidity", 40);
    has_float(r, "gps_lat", 52.1);
    has_float(r, "gps_lon", 4.3);
    has_bool(r, "gps_fix_ok", true);
    has_float(r, "flags_0", 1);
    has_float(r, "flags_1", 0);
    has_string(r, "status", "ok");

    /* radio: the strongest gateway */
    o.radio = 1;
    struct drv_mq_tagset ts = {.n = 2, .tag = {{"device", "from-topic"}, {"site", "north"}}};
    assert_int_equal(parse_tags(&o, &ts, uplink), HUB_OK);
    assert_int_equal(out.n, 2);
    r = out.r[1];
    assert_string_equal(hub_reading_measurement(r), "lorawan_radio");
    has_time(r, 1796281200123456000LL);
    dev_tags(r);
    has_tag(r, "gateway_id", "0016c001f1500812");
    has_tag(r, "site", "north");
    has_tag(out.r[0], "site", "north");
    assert_int_equal(hub_reading_field_count(r), 6);
    has_float(r, "rssi", -57);
    has_float(r, "snr", 9.5);
    has_float(r, "gateways", 3);
    has_float(r, "f_cnt", 12);
    has_float(r, "dr", 5);
    has_float(r, "frequency", 868100000);

    o.measurement = "air";
    o.radio_measurement = "air_radio";
    assert_int_equal(parse(&o, uplink), HUB_OK);
    assert_string_equal(hub_reading_measurement(out.r[0]), "air");
    assert_string_equal(hub_reading_measurement(out.r[1]), "air_radio");
}

static void test_chirpstack_cases(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_CHIRPSTACK);
    /* no deviceName: the devEui names the device; no time: arrival */
    assert_int_equal(parse(&o, "{\"deviceInfo\":{\"devEui\":\"a1b2\"},\"object\":{\"t\":1}}"),
                     HUB_OK);
    has_tag(out.r[0], "device", "a1b2");
    has_tag(out.r[0], "dev_eui", "a1b2");
    assert_int_equal(hub_reading_tag_count(out.r[0]), 2);
    has_time(out.r[0], NOW);
    /* no deviceInfo at all */
    assert_int_equal(parse(&o, "{\"object\":{\"t\":1},\"time\":null}"), HUB_OK);
    assert_int_equal(hub_reading_tag_count(out.r[0]), 0);
    has_time(out.r[0], NOW);

    const char *no_codec = "no decoded object (configure a codec in ChirpStack)";
    refused(&o, "{\"deviceInfo\":{\"devEui\":\"a1b2\"},\"fCnt\":3}", no_codec);
    refused(&o, "{\"deviceInfo\":{\"devEui\":\"a1b2\"},\"object\":{}}", no_codec);
    refused(&o, "{\"object\":{\"a\":null,\"b\":{}}}", no_codec);
    /* radio on: the radio reading alone */
    o.radio = 1;
    assert_int_equal(parse(&o, "{\"deviceInfo\":{\"devEui\":\"a1b2\"},\"fCnt\":3,"
                               "\"rxInfo\":[{\"gatewayId\":\"g1\",\"rssi\":-100,\"snr\":-7.5}]}"),
                     HUB_OK);
    assert_int_equal(out.n, 1);
    assert_string_equal(hub_reading_measurement(out.r[0]), "lorawan_radio");
    has_tag(out.r[0], "gateway_id", "g1");
    has_float(out.r[0], "rssi", -100);
    has_float(out.r[0], "snr", -7.5);
    has_float(out.r[0], "gateways", 1);
    has_float(out.r[0], "f_cnt", 3);
    assert_int_equal(hub_reading_field_count(out.r[0]), 4);
    refused(&o, "{\"deviceInfo\":{\"devEui\":\"a1b2\"}}",
            "no decoded object (configure a codec in ChirpStack) and no radio data");
    o.radio = 0;

    refused(&o, "[1]", "ChirpStack event is not a JSON object");
    refused(&o, "{\"deviceInfo\":3,\"object\":{\"t\":1}}", "deviceInfo is not an object");
    refused(&o, "{\"object\":[1]}", "object is not a JSON object");
    refused(&o, "{\"object\":{\"t\":1},\"time\":12}", "time: not an RFC 3339 string");
    refused(&o, "{\"object\":{\"t\":1},\"time\":\"2026-12-03\"}",
            "time: not an RFC 3339 time from 1970 to 2262: \"2026-12-03\"");
    refused(&o, "{\"object\":{\"\":1}}", "object: field name empty");
    /* an array flattened beyond the field limit */
    char p[1024];
    size_t n = (size_t)snprintf(p, sizeof(p), "{\"object\":{\"a\":[0");
    for (int i = 1; i < 65; i++)
        n += (size_t)snprintf(p + n, sizeof(p) - n, ",%d", i);
    snprintf(p + n, sizeof(p) - n, "]}}");
    refused(&o, p, "object: more than 64 fields");
    /* a flattened name too long */
    char key[200];
    memset(key, 'k', 150);
    key[150] = '\0';
    snprintf(p, sizeof(p), "{\"object\":{\"%s\":{\"%s\":1}}}", key, key);
    refused_prefix(&o, p, "object: field name longer than 255 bytes: \"kkkk");
    /* a device name too long for a tag */
    char name[300];
    memset(name, 'd', 256);
    name[256] = '\0';
    snprintf(p, sizeof(p), "{\"deviceInfo\":{\"deviceName\":\"%s\"},\"object\":{\"t\":1}}", name);
    refused(&o, p, "tag \"device\": value longer than 255 bytes");
    /* gps_lat written twice: once flat, once nested */
    refused(&o, "{\"object\":{\"gps_lat\":1,\"gps\":{\"lat\":2}}}",
            "object: duplicate field \"gps_lat\"");
}

/* ---- tagset and all-or-nothing ------------------------------------------- */

static void test_tagset(void **state)
{
    (void)state;
    struct drv_mq_parse_opts o = opts(DRV_MQ_SENML);
    struct drv_mq_tagset ts = {.n = 3, .tag = {{"device", "topic-dev"}, {"site", "a"}, {"e", ""}}};
    assert_int_equal(parse_tags(&o, &ts,
                                "[{\"bn\":\"own:\",\"n\":\"t\",\"v\":1},"
                                "{\"n\":\"nobase\",\"v\":2,\"bn\":\"\"}]"),
                     HUB_OK);
    assert_int_equal(out.n, 2);
    has_tag(out.r[0], "device", "own"); /* the reading's own tag wins */
    has_tag(out.r[0], "site", "a");
    assert_null(hub_reading_tag_value(out.r[0], "e")); /* empty: skipped */
    has_tag(out.r[1], "device", "topic-dev");
    has_float(out.r[1], "nobase", 2);

    char longv[300];
    memset(longv, 'v', 256);
    longv[256] = '\0';
    ts.n = 1;
    ts.tag[0].key = "site";
    ts.tag[0].value = longv;
    o = opts(DRV_MQ_VALUE);
    int rc = parse_tags(&o, &ts, "1");
    assert_int_equal(rc, HUB_EINVAL);
    assert_string_equal(why, "tag \"site\": value longer than 255 bytes");
}

static void test_all_or_nothing(void **state)
{
    (void)state;
    /* readings already in out stay; the message's own are dropped */
    struct drv_mq_parse_opts o = opts(DRV_MQ_JSON);
    drv_mq_out_clear(&out);
    hub_reading_t *keep = hub_reading_new("keep", 1);
    out.r[out.n++] = keep;
    const char *p = "[{\"a\":1},{\"a\":2},{\"a\":[1]}]";
    assert_int_equal(
        drv_mq_parse(&o, NULL, (const uint8_t *)p, strlen(p), NOW, &out, why, sizeof(why)),
        HUB_EINVAL);
    assert_string_equal(why, "element 3: no field found");
    assert_int_equal(out.n, 1);
    assert_ptr_equal(out.r[0], keep);
    drv_mq_out_clear(&out);

    /* 4097 objects: too many readings, none kept */
    size_t cap = 4097 * 8 + 8, n = 0;
    char *big = malloc(cap);
    big[n++] = '[';
    for (int i = 0; i < 4097; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s{\"a\":1}", i ? "," : "");
    snprintf(big + n, cap - n, "]");
    refused(&o, big, "more than 4096 readings in one message");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_dispatch_checks),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_json_pointer),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_senml_base_name),
        cmocka_unit_test(test_senml_values_and_times),
        cmocka_unit_test(test_senml_errors),
        cmocka_unit_test(test_senml_many),
        cmocka_unit_test(test_json_members),
        cmocka_unit_test(test_json_field_map),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_influx_lines),
        cmocka_unit_test(test_influx_errors),
        cmocka_unit_test(test_chirpstack_uplink),
        cmocka_unit_test(test_chirpstack_cases),
        cmocka_unit_test(test_tagset),
        cmocka_unit_test(test_all_or_nothing),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    teardown_out();
    return rc;
}
