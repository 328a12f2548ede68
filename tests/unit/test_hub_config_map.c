/* tests/unit/test_hub_config_map.c — typed values from text: durations,
 * sizes, integers with bounds, booleans, enums, strings, tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hub/config_map.h"

struct sample {
    char name[8];
    int64_t n;
    double x;
    bool flag;
    int64_t every;
    uint64_t size;
    int mode;
    struct hub_cfg_tags tags;
};

static const char *const modes[] = {"fast", "slow", "off", NULL};

static const struct hub_cfg_key keys[] = {
    HUB_CFG_KEY("name", HUB_CFG_STRING, "dflt", true, offsetof(struct sample, name), 8, 0, 0, NULL,
                "n"),
    HUB_CFG_KEY("port", HUB_CFG_INT, "502", false, offsetof(struct sample, n), 0, 1, 65535, NULL,
                "p"),
    HUB_CFG_KEY("scale", HUB_CFG_DOUBLE, "1", false, offsetof(struct sample, x), 0, 0, 0, NULL,
                "s"),
    HUB_CFG_KEY("gzip", HUB_CFG_BOOL, "true", false, offsetof(struct sample, flag), 0, 0, 0, NULL,
                "g"),
    HUB_CFG_KEY("interval", HUB_CFG_DURATION, "10s", false, offsetof(struct sample, every), 0,
                1000000, 0, NULL, "i"),
    HUB_CFG_KEY("max_size", HUB_CFG_SIZE, "64MiB", false, offsetof(struct sample, size), 0, 0, 0,
                NULL, "m"),
    HUB_CFG_KEY("mode", HUB_CFG_ENUM, "slow", false, offsetof(struct sample, mode), 0, 0, 0, modes,
                "e"),
    HUB_CFG_KEY("tags", HUB_CFG_TAGS, NULL, false, offsetof(struct sample, tags), 0, 0, 0, NULL,
                "t"),
    HUB_CFG_END,
};

static const struct hub_cfg_key any_int =
    HUB_CFG_KEY("offset", HUB_CFG_INT, NULL, false, offsetof(struct sample, n), 0, 0, 0, NULL, "o");
static const struct hub_cfg_key min_only =
    HUB_CFG_KEY("count", HUB_CFG_INT, NULL, false, offsetof(struct sample, n), 0, 1, 0, NULL, "c");

static void test_duration(void **state)
{
    (void)state;
    int64_t ns = 0;
    assert_int_equal(hub_cfg_parse_duration("250ms", &ns), 0);
    assert_int_equal(ns, 250000000LL);
    assert_int_equal(hub_cfg_parse_duration("1.5s", &ns), 0);
    assert_int_equal(ns, 1500000000LL);
    assert_int_equal(hub_cfg_parse_duration("10s", &ns), 0);
    assert_int_equal(ns, 10000000000LL);
    assert_int_equal(hub_cfg_parse_duration("5m", &ns), 0);
    assert_int_equal(ns, 300000000000LL);
    assert_int_equal(hub_cfg_parse_duration("2h", &ns), 0);
    assert_int_equal(ns, 7200000000000LL);
    assert_int_equal(hub_cfg_parse_duration("100us", &ns), 0);
    assert_int_equal(ns, 100000LL);
    assert_int_equal(hub_cfg_parse_duration("7ns", &ns), 0);
    assert_int_equal(ns, 7);
    assert_int_equal(hub_cfg_parse_duration("0.001ms", &ns), 0);
    assert_int_equal(ns, 1000);
    assert_int_equal(hub_cfg_parse_duration("0.25 h", &ns), 0);
    assert_int_equal(ns, 900000000000LL);
    assert_int_equal(hub_cfg_parse_duration("0s", &ns), 0);
    assert_int_equal(ns, 0);
    /* The largest that fits: 9223372036854775807 ns. */
    assert_int_equal(hub_cfg_parse_duration("9223372036854775807ns", &ns), 0);
    assert_int_equal(ns, INT64_MAX);

    ns = 42;
    assert_int_equal(hub_cfg_parse_duration("9223372036854775808ns", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("2562048h", &ns), -1); /* > INT64_MAX ns */
    assert_int_equal(hub_cfg_parse_duration("99999999999999999999999s", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("10", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("10x", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("-5s", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("s", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration(".5s", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("1.s", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration("1sec", &ns), -1);
    assert_int_equal(hub_cfg_parse_duration(" 1s", &ns), -1);
    assert_int_equal(ns, 42); /* untouched on error */
}

static void test_size(void **state)
{
    (void)state;
    uint64_t b = 0;
    assert_int_equal(hub_cfg_parse_size("64MiB", &b), 0);
    assert_int_equal(b, 67108864ULL);
    assert_int_equal(hub_cfg_parse_size("512KiB", &b), 0);
    assert_int_equal(b, 524288ULL);
    assert_int_equal(hub_cfg_parse_size("1GiB", &b), 0);
    assert_int_equal(b, 1073741824ULL);
    assert_int_equal(hub_cfg_parse_size("10MB", &b), 0);
    assert_int_equal(b, 10000000ULL);
    assert_int_equal(hub_cfg_parse_size("4096", &b), 0);
    assert_int_equal(b, 4096);
    assert_int_equal(hub_cfg_parse_size("4096B", &b), 0);
    assert_int_equal(b, 4096);
    assert_int_equal(hub_cfg_parse_size("1.5KiB", &b), 0);
    assert_int_equal(b, 1536);
    assert_int_equal(hub_cfg_parse_size("18446744073709551615", &b), 0);
    assert_int_equal(b, UINT64_MAX);

    b = 7;
    assert_int_equal(hub_cfg_parse_size("18446744073709551616", &b), -1);
    assert_int_equal(hub_cfg_parse_size("17179869184GiB", &b), -1);
    assert_int_equal(hub_cfg_parse_size("10XB", &b), -1);
    assert_int_equal(hub_cfg_parse_size("-1", &b), -1);
    assert_int_equal(hub_cfg_parse_size("", &b), -1);
    assert_int_equal(hub_cfg_parse_size("MiB", &b), -1);
    assert_int_equal(hub_cfg_parse_size("64mib", &b), -1);
    assert_int_equal(b, 7);
}

static void test_defaults_and_find(void **state)
{
    (void)state;
    struct sample s;
    memset(&s, 0xAA, sizeof(s));
    s.tags.n = 0;
    assert_int_equal(hub_cfg_defaults(keys, &s), 0);
    assert_string_equal(s.name, "dflt");
    assert_int_equal(s.n, 502);
    assert_true(s.x == 1.0);
    assert_true(s.flag);
    assert_int_equal(s.every, 10000000000LL);
    assert_int_equal(s.size, 64ULL << 20);
    assert_int_equal(s.mode, 1);

    assert_ptr_equal(hub_cfg_find(keys, "mode"), &keys[6]);
    assert_null(hub_cfg_find(keys, "nope"));
    assert_null(hub_cfg_find(keys, ""));
}

static const struct hub_cfg_key *key(const char *name)
{
    const struct hub_cfg_key *k = hub_cfg_find(keys, name);
    assert_non_null(k);
    return k;
}

/* hub_cfg_set(name, text) must fail with exactly msg. */
static void expect_err(const struct hub_cfg_key *k, const char *text, const char *msg)
{
    struct sample s;
    char err[256];
    memset(&s, 0, sizeof(s));
    assert_int_equal(hub_cfg_set(k, &s, text, err, sizeof(err)), -1);
    assert_string_equal(err, msg);
}

static void test_set_values(void **state)
{
    (void)state;
    struct sample s;
    char err[256];
    memset(&s, 0, sizeof(s));

    assert_int_equal(hub_cfg_set(key("name"), &s, "abcdefg", err, sizeof(err)), 0);
    assert_string_equal(s.name, "abcdefg");
    assert_int_equal(hub_cfg_set(key("port"), &s, "65535", err, sizeof(err)), 0);
    assert_int_equal(s.n, 65535);
    assert_int_equal(hub_cfg_set(key("port"), &s, "0x1F6", err, sizeof(err)), 0);
    assert_int_equal(s.n, 502);
    assert_int_equal(hub_cfg_set(&any_int, &s, "-9223372036854775808", err, sizeof(err)), 0);
    assert_int_equal(s.n, INT64_MIN);
    assert_int_equal(hub_cfg_set(&min_only, &s, "1000000", err, sizeof(err)), 0);
    assert_int_equal(s.n, 1000000);
    assert_int_equal(hub_cfg_set(key("scale"), &s, "0.1", err, sizeof(err)), 0);
    assert_true(s.x == 0.1);
    assert_int_equal(hub_cfg_set(key("scale"), &s, "-2e3", err, sizeof(err)), 0);
    assert_true(s.x == -2000.0);
    assert_int_equal(hub_cfg_set(key("interval"), &s, "1.5s", err, sizeof(err)), 0);
    assert_int_equal(s.every, 1500000000LL);
    assert_int_equal(hub_cfg_set(key("max_size"), &s, "512KiB", err, sizeof(err)), 0);
    assert_int_equal(s.size, 524288);
    assert_int_equal(hub_cfg_set(key("mode"), &s, "off", err, sizeof(err)), 0);
    assert_int_equal(s.mode, 2);

    static const char *const yes[] = {"true", "yes", "on", "True", "YES"};
    static const char *const no[] = {"false", "no", "off", "False", "OFF"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(hub_cfg_set(key("gzip"), &s, yes[i], err, sizeof(err)), 0);
        assert_true(s.flag);
        assert_int_equal(hub_cfg_set(key("gzip"), &s, no[i], err, sizeof(err)), 0);
        assert_false(s.flag);
    }
}

static void test_set_errors(void **state)
{
    (void)state;
    expect_err(key("interval"), "10x",
               "bad duration \"10x\" for interval: use a number and a unit, e.g. 250ms, 10s, 5m");
    expect_err(key("interval"), "10",
               "bad duration \"10\" for interval: use a number and a unit, e.g. 250ms, 10s, 5m");
    expect_err(key("interval"), "-5s",
               "bad duration \"-5s\" for interval: durations cannot be negative");
    expect_err(key("interval"), "9999999999h",
               "duration \"9999999999h\" for interval is too large");
    expect_err(key("interval"), "500us", "interval 500us is too short (at least 1ms)");
    expect_err(key("max_size"), "10XB",
               "bad size \"10XB\" for max_size: use a number and a unit, e.g. 4096, 512KiB, "
               "64MiB, 1GiB");
    expect_err(key("max_size"), "99999999999GiB",
               "size \"99999999999GiB\" for max_size is too large");
    expect_err(key("port"), "70000", "port 70000 is out of range (1..65535)");
    expect_err(key("port"), "0", "port 0 is out of range (1..65535)");
    expect_err(key("port"), "-1", "port -1 is out of range (1..65535)");
    expect_err(key("port"), "12a", "bad integer \"12a\" for port");
    expect_err(key("port"), "", "bad integer \"\" for port");
    expect_err(key("port"), "1.0", "bad integer \"1.0\" for port");
    expect_err(key("port"), "0x0x5", "bad integer \"0x0x5\" for port");
    expect_err(key("port"), " 5", "bad integer \" 5\" for port");
    expect_err(key("port"), "99999999999999999999",
               "integer \"99999999999999999999\" for port is too large");
    expect_err(&min_only, "0", "count 0 is out of range (at least 1)");
    expect_err(key("scale"), "abc", "bad number \"abc\" for scale");
    expect_err(key("scale"), "1.5x", "bad number \"1.5x\" for scale");
    expect_err(key("scale"), "nan", "scale must be a finite number, not \"nan\"");
    expect_err(key("scale"), "1e999", "scale must be a finite number, not \"1e999\"");
    expect_err(key("gzip"), "maybe", "bad boolean \"maybe\" for gzip: use true or false");
    expect_err(key("mode"), "medium", "bad value \"medium\" for mode: use one of fast, slow, off");
    expect_err(key("name"), "abcdefgh", "name is too long (8 bytes; at most 7)");
}

static void test_unit_value_untouched_on_error(void **state)
{
    (void)state;
    struct sample s;
    char err[256];
    memset(&s, 0, sizeof(s));
    s.n = 77;
    assert_int_equal(hub_cfg_set(key("port"), &s, "70000", err, sizeof(err)), -1);
    assert_int_equal(s.n, 77);
    strcpy(s.name, "keep");
    assert_int_equal(hub_cfg_set(key("name"), &s, "far too long", err, sizeof(err)), -1);
    assert_string_equal(s.name, "keep");
}

static void test_tags(void **state)
{
    (void)state;
    struct hub_cfg_tags t;
    char err[256], k[80], v[200];
    memset(&t, 0, sizeof(t));

    assert_int_equal(hub_cfg_tags_add(&t, "district", "dong-hoi", err, sizeof(err)), 0);
    assert_int_equal(hub_cfg_tags_add(&t, "site", "crossing", err, sizeof(err)), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.tag[0].key, "district");
    assert_string_equal(t.tag[1].value, "crossing");

    assert_int_equal(hub_cfg_tags_add(&t, "site", "other", err, sizeof(err)), -1);
    assert_string_equal(err, "duplicate tag \"site\"");
    assert_int_equal(hub_cfg_tags_add(&t, "", "x", err, sizeof(err)), -1);
    assert_string_equal(err, "empty tag name");
    assert_int_equal(hub_cfg_tags_add(&t, "a", "", err, sizeof(err)), -1);
    assert_string_equal(err, "empty value for tag \"a\"");
    memset(k, 'k', 64);
    k[64] = '\0';
    assert_int_equal(hub_cfg_tags_add(&t, k, "x", err, sizeof(err)), -1);
    assert_string_equal(err,
                        "tag name \"kkkkkkkkkkkkkkkkkkkk...\" is too long (64 bytes; at most 63)");
    k[63] = '\0';
    assert_int_equal(hub_cfg_tags_add(&t, k, "x", err, sizeof(err)), 0);
    memset(v, 'v', 128);
    v[128] = '\0';
    assert_int_equal(hub_cfg_tags_add(&t, "b", v, err, sizeof(err)), -1);
    assert_string_equal(err, "value of tag \"b\" is too long (128 bytes; at most 127)");
    assert_int_equal(t.n, 3);

    for (int i = 3; i < HUB_CFG_TAGS_MAX; i++) {
        snprintf(k, sizeof(k), "t%d", i);
        assert_int_equal(hub_cfg_tags_add(&t, k, "v", err, sizeof(err)), 0);
    }
    assert_int_equal(hub_cfg_tags_add(&t, "one-more", "v", err, sizeof(err)), -1);
    assert_string_equal(err, "too many tags (at most 16)");
    assert_int_equal(t.n, HUB_CFG_TAGS_MAX);
    assert_string_equal(t.tag[HUB_CFG_TAGS_MAX - 1].key, "t15");
    hub_cfg_tags_free(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.tag);
}

static void test_tags_and_lists_are_not_scalars(void **state)
{
    (void)state;
    expect_err(key("tags"), "x", "tags takes a mapping of names to values, not \"x\"");
}

/* hub_cfg_equal: every key counts, nested tables too; other members do not. */
struct outer {
    struct sample one;        /* OBJECT */
    struct hub_cfg_list many; /* LIST of samples */
    int scratch;              /* no key */
};

static const struct hub_cfg_key outer_keys[] = {
    {.name = "one", .type = HUB_CFG_OBJECT, .offset = offsetof(struct outer, one), .child = keys},
    {.name = "many",
     .type = HUB_CFG_LIST,
     .offset = offsetof(struct outer, many),
     .child = keys,
     .elem_size = sizeof(struct sample),
     .max_count = 4},
    HUB_CFG_END,
};

static void test_equal(void **state)
{
    (void)state;
    struct sample a, b;
    char err[256];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    hub_cfg_defaults(keys, &a);
    hub_cfg_defaults(keys, &b);
    assert_true(hub_cfg_equal(keys, &a, &b));
    const char *const change[][2] = {{"name", "other"}, {"port", "503"},    {"scale", "0.5"},
                                     {"gzip", "false"}, {"interval", "5s"}, {"max_size", "1MiB"},
                                     {"mode", "fast"}};
    for (size_t i = 0; i < sizeof(change) / sizeof(change[0]); i++) {
        struct sample c = b;
        assert_int_equal(
            hub_cfg_set(hub_cfg_find(keys, change[i][0]), &c, change[i][1], err, sizeof(err)), 0);
        assert_false(hub_cfg_equal(keys, &a, &c));
    }
    assert_int_equal(hub_cfg_tags_add(&a.tags, "site", "x", err, sizeof(err)), 0);
    assert_false(hub_cfg_equal(keys, &a, &b));
    assert_int_equal(hub_cfg_tags_add(&b.tags, "site", "y", err, sizeof(err)), 0);
    assert_false(hub_cfg_equal(keys, &a, &b));
    hub_cfg_tags_free(&b.tags);
    assert_int_equal(hub_cfg_tags_add(&b.tags, "site", "x", err, sizeof(err)), 0);
    assert_true(hub_cfg_equal(keys, &a, &b));

    struct outer x = {.one = a, .scratch = 1}, y = {.one = b, .scratch = 2};
    struct sample items[2][2];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            memset(&items[k][i], 0, sizeof(items[k][i]));
            hub_cfg_defaults(keys, &items[k][i]);
        }
    x.many = (struct hub_cfg_list){items[0], 2};
    y.many = (struct hub_cfg_list){items[1], 2};
    assert_true(hub_cfg_equal(outer_keys, &x, &y)); /* scratch has no key */
    items[1][1].n = 9;
    assert_false(hub_cfg_equal(outer_keys, &x, &y));
    items[1][1].n = items[0][1].n;
    y.many.n = 1;
    assert_false(hub_cfg_equal(outer_keys, &x, &y));
    y.many.n = 2;
    y.one.flag = !y.one.flag;
    assert_false(hub_cfg_equal(outer_keys, &x, &y));
    hub_cfg_tags_free(&a.tags);
    hub_cfg_tags_free(&b.tags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_defaults_and_find),
        cmocka_unit_test(test_set_values),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_unit_value_untouched_on_error),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_tags_and_lists_are_not_scalars),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
