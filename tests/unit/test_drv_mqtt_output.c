/* tests/unit/test_drv_mqtt_output.c — the pure parts of the live MQTT
 * output (drivers/mqtt/live.h): topic templates (checked, and expanded
 * with missing tags, wildcards and odd bytes in values), RFC 3339 times,
 * and the JSON and SenML payloads byte for byte. The broker side is
 * tests/integration/test_mqtt_live.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/driver.h"
#include "drivers/mqtt/live.h"
#include "hub/buf.h"
#include "hub/reading.h"

/* 2026-12-03T07:00:00.123456789Z */
#define T0 1796281200123456789LL

/* ---- helpers ------------------------------------------------------------- */

static const char *topic_of(const char *tmpl, const char *gateway, const hub_reading_t *r)
{
    static struct hub_buf b;
    static int init;
    if (!init) {
        hub_buf_init(&b, DRV_MQ_LIVE_TOPIC_CAP);
        init = 1;
    }
    assert_int_equal(drv_mq_live_topic(tmpl, gateway, r, &b), HUB_OK);
    assert_non_null(b.data);
    assert_int_equal(strlen((const char *)b.data), b.len);
    return (const char *)b.data;
}

static void check_tmpl(const char *tmpl, int want)
{
    char err[256] = "";
    int got = drv_mq_live_check_template(tmpl, err, sizeof(err));
    if (got != want)
        fail_msg("template \"%s\": check %d, want %d (%s)", tmpl, got, want, err);
    if (want != 0)
        assert_true(err[0] != 0);
}

/* energy at T0 from meter-7 in district north: one field of each type */
static hub_reading_t *energy(void)
{
    hub_reading_t *r = hub_reading_new("energy", T0);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "site", "depot"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "device", "meter-7"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "district", "north"), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "voltage", 230.1), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "n", -5), HUB_OK);
    assert_int_equal(hub_reading_add_uint(r, "count", 18446744073709551615ULL), HUB_OK);
    assert_int_equal(hub_reading_add_bool(r, "on", true), HUB_OK);
    assert_int_equal(hub_reading_add_string(r, "s", "x \"q\" \\ \n\t\x01 é"), HUB_OK);
    return r;
}

static const char *test_unit_of(const struct drv_env *env, const char *measurement,
                                const char *field)
{
    (void)env;
    if (strcmp(measurement, "energy") != 0)
        return NULL;
    if (!strcmp(field, "voltage"))
        return "V";
    if (!strcmp(field, "count"))
        return "Wh";
    if (!strcmp(field, "on"))
        return ""; /* empty: no unit */
    return NULL;
}

static const struct drv_env units_env = {.gateway = "gw-1", .unit_of = test_unit_of};
static const struct drv_env no_units_env = {.gateway = "gw-1"};

typedef int (*payload_fn)(const hub_reading_t *r, const struct drv_env *env, struct hub_buf *out);

static char *payload(payload_fn fn, const hub_reading_t *r, const struct drv_env *env)
{
    struct hub_buf b;
    hub_buf_init(&b, 1 << 20);
    assert_int_equal(fn(r, env, &b), HUB_OK);
    assert_non_null(b.data);
    /* always valid JSON, whatever the bytes */
    json_error_t jerr;
    json_t *j = json_loadb((const char *)b.data, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, (const char *)b.data);
    json_decref(j);
    return (char *)b.data;
}

static void expect_payload(payload_fn fn, const hub_reading_t *r, const struct drv_env *env,
                           const char *want)
{
    char *got = payload(fn, r, env);
    assert_string_equal(got, want);
    free(got);
}

/* ---- topic templates ----------------------------------------------------- */

static void test_template_check(void **state)
{
    (void)state;
    check_tmpl("cityhub/{gateway}/{measurement}/{device}", 0);
    check_tmpl("city/{district}/{site}/{measurement}/{device}", 0);
    check_tmpl("plain/topic", 0);
    check_tmpl("a//b/", 0);
    check_tmpl("città/{sito}", 0);
    check_tmpl("", -1);
    check_tmpl("a/{device", -1);
    check_tmpl("a/device}", -1);
    check_tmpl("a/{dev{ice}}", -1);
    check_tmpl("a/{}/b", -1);
    check_tmpl("a/+/b", -1);
    check_tmpl("a/#", -1);
    check_tmpl("a/{x+}", -1);
    check_tmpl("$SYS/{device}", -1);
    check_tmpl("a/\x01/b", -1);
    check_tmpl("a/\x7f", -1);
    check_tmpl("a/\xc2\x85", -1); /* U+0085, a C1 control */
    check_tmpl("a/\xff/b", -1);
    check_tmpl("a/\xc3", -1);         /* cut short */
    check_tmpl("a/\xed\xa0\x80", -1); /* a surrogate */
    check_tmpl("a/\xc0\xaf", -1);     /* overlong '/' */
}

static void test_topic_expand(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("energy", T0);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "device", "meter-7"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "site", "a/b+c#d"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "gateway", "from-tag"), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "v", 1), HUB_OK);

    assert_string_equal(topic_of("cityhub/{gateway}/{measurement}/{device}", "gw-1", r),
                        "cityhub/gw-1/energy/meter-7");
    /* a tag the reading lacks is "_" */
    assert_string_equal(topic_of("city/{district}/{site}/{measurement}/{device}", "gw-1", r),
                        "city/_/a_b_c_d/energy/meter-7");
    /* without the hub's name, the reading's own gateway tag */
    assert_string_equal(topic_of("{gateway}/x", NULL, r), "from-tag/x");
    /* text around and between placeholders, repeated ones */
    assert_string_equal(topic_of("pre-{device}-{device}/post", "gw", r),
                        "pre-meter-7-meter-7/post");
    assert_string_equal(topic_of("fixed", "gw", r), "fixed");
    hub_reading_free(r);

    /* a measurement with wildcards and a leading '$' */
    r = hub_reading_new("$SYS/#", T0);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_float(r, "v", 1), HUB_OK);
    assert_string_equal(topic_of("{measurement}/{device}", "gw", r), "_SYS__/_");
    assert_string_equal(topic_of("m/{measurement}", "gw", r), "m/$SYS__");
    hub_reading_free(r);

    /* bytes a topic may not hold: control characters, broken UTF-8 */
    r = hub_reading_new("m", T0);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "device",
                                         "a\x01"
                                         "b\xff"
                                         "c\xc3"
                                         "d\xc2\x85"
                                         "é"),
                     HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "v", 1), HUB_OK);
    assert_string_equal(topic_of("x/{device}", "gw/+", r), "x/a_b_c_d_é");
    assert_string_equal(topic_of("{gateway}/{device}", "gw/+", r), "gw__/a_b_c_d_é");
    hub_reading_free(r);
}

/* ---- times ------------------------------------------------------------------ */

static void test_rfc3339(void **state)
{
    (void)state;
    char buf[DRV_MQ_LIVE_TIME_MAX];
    struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {T0, "2026-12-03T07:00:00.123456789Z"},
        {0, "1970-01-01T00:00:00.000000000Z"},
        {1, "1970-01-01T00:00:00.000000001Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
        {951782400LL * 1000000000LL, "2000-02-29T00:00:00.000000000Z"},
        {4107542399LL * 1000000000LL + 500000000, "2100-02-28T23:59:59.500000000Z"},
        {INT64_MAX, "2262-04-11T23:47:16.854775807Z"},
        {INT64_MIN, "1677-09-21T00:12:43.145224192Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = drv_mq_live_rfc3339(cases[i].ns, buf);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
}

/* ---- payloads ------------------------------------------------------------------ */

static void test_json(void **state)
{
    (void)state;
    hub_reading_t *r = energy();
    expect_payload(drv_mq_live_json, r, &units_env,
                   "{\"measurement\":\"energy\",\"time\":\"2026-12-03T07:00:00.123456789Z\","
                   "\"ts\":1796281200123456789,"
                   "\"tags\":{\"device\":\"meter-7\",\"district\":\"north\",\"site\":\"depot\"},"
                   "\"fields\":{\"voltage\":230.1,\"n\":-5,\"count\":18446744073709551615,"
                   "\"on\":true,\"s\":\"x \\\"q\\\" \\\\ \\n\\t\\u0001 é\"},"
                   "\"units\":{\"voltage\":\"V\",\"count\":\"Wh\"}}");
    /* no unit known: no "units" */
    expect_payload(drv_mq_live_json, r, &no_units_env,
                   "{\"measurement\":\"energy\",\"time\":\"2026-12-03T07:00:00.123456789Z\","
                   "\"ts\":1796281200123456789,"
                   "\"tags\":{\"device\":\"meter-7\",\"district\":\"north\",\"site\":\"depot\"},"
                   "\"fields\":{\"voltage\":230.1,\"n\":-5,\"count\":18446744073709551615,"
                   "\"on\":true,\"s\":\"x \\\"q\\\" \\\\ \\n\\t\\u0001 é\"}}");
    char *a = payload(drv_mq_live_json, r, NULL);
    char *b = payload(drv_mq_live_json, r, &no_units_env);
    assert_string_equal(a, b);
    free(a);
    free(b);
    hub_reading_free(r);

    /* no tags, floats at their shortest, a negative time */
    r = hub_reading_new("m", -1500000000LL);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_float(r, "a", 0.1), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "b", 41), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "c", 1e-7), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "d", -2.5e300), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "e", 0.30000000000000004), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "f", INT64_MIN), HUB_OK);
    expect_payload(drv_mq_live_json, r, NULL,
                   "{\"measurement\":\"m\",\"time\":\"1969-12-31T23:59:58.500000000Z\","
                   "\"ts\":-1500000000,\"tags\":{},"
                   "\"fields\":{\"a\":0.1,\"b\":41,\"c\":1e-07,\"d\":-2.5e+300,"
                   "\"e\":0.30000000000000004,\"f\":-9223372036854775808}}");
    hub_reading_free(r);

    /* names and values with quotes and bytes that are not UTF-8 */
    r = hub_reading_new("m\"x", T0);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "k\\", "v\xff"), HUB_OK);
    assert_int_equal(hub_reading_add_string(r, "s", "a\xc3(b\xe2\x82\xac\x7f"), HUB_OK);
    expect_payload(drv_mq_live_json, r, NULL,
                   "{\"measurement\":\"m\\\"x\",\"time\":\"2026-12-03T07:00:00.123456789Z\","
                   "\"ts\":1796281200123456789,\"tags\":{\"k\\\\\":\"v\\ufffd\"},"
                   "\"fields\":{\"s\":\"a\\ufffd(b\xe2\x82\xac\x7f\"}}");
    hub_reading_free(r);
}

static void test_senml(void **state)
{
    (void)state;
    hub_reading_t *r = energy();
    expect_payload(drv_mq_live_senml, r, &units_env,
                   "[{\"bn\":\"meter-7:\",\"bt\":1796281200.123456789,\"n\":\"voltage\","
                   "\"u\":\"V\",\"v\":230.1},{\"n\":\"n\",\"v\":-5},"
                   "{\"n\":\"count\",\"u\":\"Wh\",\"v\":18446744073709551615},"
                   "{\"n\":\"on\",\"vb\":true},"
                   "{\"n\":\"s\",\"vs\":\"x \\\"q\\\" \\\\ \\n\\t\\u0001 é\"}]");
    expect_payload(drv_mq_live_senml, r, NULL,
                   "[{\"bn\":\"meter-7:\",\"bt\":1796281200.123456789,\"n\":\"voltage\","
                   "\"v\":230.1},{\"n\":\"n\",\"v\":-5},"
                   "{\"n\":\"count\",\"v\":18446744073709551615},"
                   "{\"n\":\"on\",\"vb\":true},"
                   "{\"n\":\"s\",\"vs\":\"x \\\"q\\\" \\\\ \\n\\t\\u0001 é\"}]");
    hub_reading_free(r);

    /* no device: the measurement names the pack; bt trimmed or whole */
    struct {
        int64_t ns;
        const char *bt;
    } times[] = {
        {1796281200000000000LL, "1796281200"},
        {1796281200500000000LL, "1796281200.5"},
        {1796281200000000001LL, "1796281200.000000001"},
        {-1500000000LL, "-1.5"},
        {0, "0"},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char want[256];
        r = hub_reading_new("air", times[i].ns);
        assert_non_null(r);
        assert_int_equal(hub_reading_add_tag(r, "site", "s1"), HUB_OK);
        assert_int_equal(hub_reading_add_bool(r, "alarm", false), HUB_OK);
        snprintf(want, sizeof(want), "[{\"bn\":\"air:\",\"bt\":%s,\"n\":\"alarm\",\"vb\":false}]",
                 times[i].bt);
        expect_payload(drv_mq_live_senml, r, NULL, want);
        hub_reading_free(r);
    }

    /* a reading without a field has no SenML record: refused, out intact */
    r = hub_reading_new("air", T0);
    assert_non_null(r);
    struct hub_buf b;
    hub_buf_init(&b, 1024);
    assert_int_equal(hub_buf_adds(&b, "keep"), HUB_OK);
    assert_int_equal(drv_mq_live_senml(r, NULL, &b), HUB_EINVAL);
    assert_string_equal((const char *)b.data, "keep");
    hub_buf_free(&b);
    hub_reading_free(r);
}

/* A payload that does not fit leaves the buffer as it was. */
static void test_payload_full(void **state)
{
    (void)state;
    hub_reading_t *r = energy();
    struct hub_buf b;
    hub_buf_init(&b, 64);
    assert_int_equal(hub_buf_adds(&b, "keep"), HUB_OK);
    assert_int_equal(drv_mq_live_json(r, NULL, &b), HUB_EFULL);
    assert_int_equal(b.len, 4);
    assert_string_equal((const char *)b.data, "keep");
    assert_int_equal(drv_mq_live_senml(r, NULL, &b), HUB_EFULL);
    assert_string_equal((const char *)b.data, "keep");
    hub_buf_free(&b);

    /* a topic above MQTT's 64 KiB */
    hub_buf_init(&b, DRV_MQ_LIVE_TOPIC_CAP);
    char tmpl[DRV_MQ_LIVE_TOPIC_CAP / 300 * 10 + 1] = "";
    for (size_t i = 0; i + 10 < sizeof(tmpl); i += 10)
        strcat(tmpl, "{device}/x");
    hub_reading_t *big = hub_reading_new("m", T0);
    char v[256];
    memset(v, 'a', 255);
    v[255] = 0;
    assert_int_equal(hub_reading_add_tag(big, "device", v), HUB_OK);
    assert_int_equal(drv_mq_live_topic(tmpl, "gw", big, &b), HUB_OK); /* 218 x 257 fits */
    char tmpl2[sizeof(tmpl) * 2];
    snprintf(tmpl2, sizeof(tmpl2), "%s%s", tmpl, tmpl);
    assert_int_equal(drv_mq_live_topic(tmpl2, "gw", big, &b), HUB_EFULL);
    hub_buf_free(&b);
    hub_reading_free(big);
    hub_reading_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_check), cmocka_unit_test(test_topic_expand),
        cmocka_unit_test(test_rfc3339),        cmocka_unit_test(test_json),
        cmocka_unit_test(test_senml),          cmocka_unit_test(test_payload_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
