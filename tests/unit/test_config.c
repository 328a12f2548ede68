/* tests/unit/test_config.c — the YAML configuration loader: one full valid
 * config with every value checked, then one test per class of error, each
 * asserting the exact "FILE:LINE:COL: message" lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers/influx/influx.h"
#include "drivers/modbus/modbus_drv.h"
#include "firmware/config.h"
#include "firmware/config_priv.h"
#include "hub/journal.h"
#include "hub/log.h"

extern const struct hub_cfg_key ch_top_keys[];
extern const struct hub_cfg_key ch_hub_keys[];
extern const struct hub_cfg_key ch_journal_keys[];

#define MS 1000000LL
#define S 1000000000LL

static const char full_yaml[] =
    "hub:\n"
    "  name: gw-donghoi-01\n"
    "  tags: {district: dong-hoi, site: quang-trung-crossing}\n"
    "  journal: {path: /tmp/journal, max_size: 64MiB, segment_size: 4MiB,\n"
    "            sync_interval: 250ms, on_full: drop_newest}\n"
    "  log_level: debug\n"
    "  status_interval: 30s\n"
    "\n"
    "buses:\n"
    "  - {name: lan, type: tcp, host: 127.0.0.1, port: 1502, timeout: 1.5s}\n"
    "  - {name: v6, type: tcp, host: \"::1\"}\n"
    "\n"
    "devices:\n"
    "  - name: aq-1\n"
    "    bus: lan\n"
    "    unit: 3\n"
    "    interval: 5s\n"
    "    measurement: air_quality\n"
    "    tags: {feeder: f3}\n"
    "    registers:\n"
    "      - {field: pm2_5, table: input, address: 0, type: uint16, scale: 0.1, unit: ug/m3}\n"
    "      - {field: temperature, table: holding, address: 10, type: float32, order: CDAB}\n"
    "  - name: meter-1\n"
    "    bus: v6\n"
    "    registers:\n"
    "      - field: energy\n"
    "        address: 0x30\n"
    "        type: int32\n"
    "\n"
    "outputs:\n"
    "  - name: ioc\n"
    "    type: influxdb\n"
    "    url: http://127.0.0.1:8086\n"
    "    database: city\n"
    "    batch_size: 2000\n"
    "    flush_interval: 2s\n"
    "    gzip: false\n";

/* The Modbus sections of a loaded config. */
#define NBUSES(c) (ch_config_section((c), "buses")->n)
#define NDEVICES(c) (ch_config_section((c), "devices")->n)
#define BUS(c, i) HUB_CFG_ITEM(ch_config_section((c), "buses"), (i), struct drv_modbus_bus)
#define DEV(c, i) HUB_CFG_ITEM(ch_config_section((c), "devices"), (i), struct drv_modbus_device)

/* Load text as "test.yaml"; returns the config and puts everything written
 * to errs in *out (caller frees). */
static struct ch_config *load(const char *text, char **out, unsigned *nerr)
{
    size_t len = 0;
    FILE *errs = open_memstream(out, &len);
    assert_non_null(errs);
    struct ch_config *c = ch_config_load_buffer("test.yaml", text, strlen(text), errs, nerr);
    fclose(errs);
    return c;
}

/* text must fail to load with exactly these error lines. */
static void expect_errors(const char *text, const char *want, unsigned want_n)
{
    char *got = NULL;
    unsigned n = 0;
    struct ch_config *c = load(text, &got, &n);
    if (c || strcmp(got, want) != 0)
        fprintf(stderr, "--- want:\n%s--- got:\n%s---\n", want, got);
    assert_null(c);
    assert_string_equal(got, want);
    assert_int_equal(n, want_n);
    free(got);
}

/* A valid head to put the part under test after: hub, a bus, a device. */
#define HEAD                                                                                       \
    "hub: {name: gw}\n"                                                                            \
    "buses:\n"                                                                                     \
    "  - {name: lan, type: tcp, host: 127.0.0.1}\n"

static void test_full_config(void **state)
{
    (void)state;
    char *errs = NULL;
    unsigned n = 99;
    struct ch_config *c = load(full_yaml, &errs, &n);
    if (!c)
        fprintf(stderr, "%s", errs);
    assert_non_null(c);
    assert_int_equal(n, 0);
    assert_string_equal(errs, "");
    free(errs);

    assert_string_equal(c->path, "test.yaml");
    assert_string_equal(c->hub.name, "gw-donghoi-01");
    assert_int_equal(c->hub.tags.n, 2);
    assert_string_equal(c->hub.tags.tag[0].key, "district");
    assert_string_equal(c->hub.tags.tag[0].value, "dong-hoi");
    assert_string_equal(c->hub.tags.tag[1].key, "site");
    assert_string_equal(c->hub.tags.tag[1].value, "quang-trung-crossing");
    assert_string_equal(c->hub.journal.path, "/tmp/journal");
    assert_int_equal(c->hub.journal.max_size, 64ULL << 20);
    assert_int_equal(c->hub.journal.segment_size, 4ULL << 20);
    assert_int_equal(c->hub.journal.sync_interval_ns, 250 * MS);
    assert_int_equal(c->hub.journal.on_full, HUB_JOURNAL_DROP_NEWEST);
    assert_int_equal(c->hub.log_level, HUB_LOG_DEBUG);
    assert_int_equal(c->hub.status_interval_ns, 30 * S);

    assert_int_equal(NBUSES(c), 2);
    assert_string_equal(BUS(c, 0)->name, "lan");
    assert_int_equal(BUS(c, 0)->type, DRV_MB_BUS_TCP);
    assert_string_equal(BUS(c, 0)->host, "127.0.0.1");
    assert_int_equal(BUS(c, 0)->port, 1502);
    assert_int_equal(BUS(c, 0)->timeout_ns, 1500 * MS);
    assert_string_equal(BUS(c, 1)->name, "v6");
    assert_string_equal(BUS(c, 1)->host, "::1");
    assert_int_equal(BUS(c, 1)->port, 502);         /* default */
    assert_int_equal(BUS(c, 1)->timeout_ns, 1 * S); /* default */

    assert_int_equal(NDEVICES(c), 2);
    const struct drv_modbus_device *d = DEV(c, 0);
    assert_string_equal(d->name, "aq-1");
    assert_string_equal(d->bus, "lan");
    assert_int_equal(d->unit, 3);
    assert_int_equal(d->interval_ns, 5 * S);
    assert_string_equal(d->measurement, "air_quality");
    assert_int_equal(d->tags.n, 1);
    assert_string_equal(d->tags.tag[0].key, "feeder");
    assert_string_equal(d->tags.tag[0].value, "f3");
    assert_int_equal(d->nregs, 2);
    assert_string_equal(d->regs[0].field, "pm2_5");
    assert_int_equal(d->regs[0].table, DRV_MB_INPUT);
    assert_int_equal(d->regs[0].address, 0);
    assert_int_equal(d->regs[0].type, DRV_MB_UINT16);
    assert_int_equal(d->regs[0].order, DRV_MB_ABCD);
    assert_true(d->regs[0].scale == 0.1);
    assert_string_equal(d->regs[0].unit, "ug/m3");
    assert_string_equal(d->regs[1].field, "temperature");
    assert_int_equal(d->regs[1].table, DRV_MB_HOLDING);
    assert_int_equal(d->regs[1].address, 10);
    assert_int_equal(d->regs[1].type, DRV_MB_FLOAT32);
    assert_int_equal(d->regs[1].order, DRV_MB_CDAB);
    assert_true(d->regs[1].scale == 1.0);
    assert_string_equal(d->regs[1].unit, "");

    d = DEV(c, 1);
    assert_string_equal(d->name, "meter-1");
    assert_string_equal(d->bus, "v6");
    assert_int_equal(d->unit, 1);             /* default */
    assert_int_equal(d->interval_ns, 10 * S); /* default */
    assert_string_equal(d->measurement, "modbus");
    assert_int_equal(d->tags.n, 0);
    assert_int_equal(d->nregs, 1);
    assert_string_equal(d->regs[0].field, "energy");
    assert_int_equal(d->regs[0].address, 0x30);
    assert_int_equal(d->regs[0].type, DRV_MB_INT32);

    assert_int_equal(c->noutputs, 1);
    assert_ptr_equal(c->outputs[0].ops, &drv_influx_ops);
    const struct drv_influx_cfg *o = c->outputs[0].cfg;
    assert_string_equal(o->common.name, "ioc");
    assert_string_equal(o->common.type, "influxdb");
    assert_int_equal(o->common.batch_size, 2000);
    assert_int_equal(o->common.flush_interval_ns, 2 * S);
    assert_string_equal(o->url, "http://127.0.0.1:8086");
    assert_string_equal(o->database, "city");
    assert_false(o->gzip);
    assert_int_equal(o->timeout_ns, 10 * S); /* default */
    ch_config_free(c);
}

/* text, which must load without an error */
static struct ch_config *load_ok(const char *text)
{
    char *errs = NULL;
    unsigned n = 0;
    struct ch_config *c = load(text, &errs, &n);
    if (!c)
        fprintf(stderr, "%s", errs);
    assert_non_null(c);
    free(errs);
    return c;
}

static void test_defaults(void **state)
{
    (void)state;
    struct ch_config *c = load_ok("hub: {name: gw}\n");
    assert_string_equal(c->hub.journal.path, "/var/lib/cityhub/journal");
    assert_int_equal(c->hub.journal.max_size, 256ULL << 20);
    assert_int_equal(c->hub.journal.segment_size, 8ULL << 20);
    assert_int_equal(c->hub.journal.sync_interval_ns, 100 * MS);
    assert_int_equal(c->hub.journal.on_full, HUB_JOURNAL_DROP_OLDEST);
    assert_int_equal(c->hub.log_level, HUB_LOG_INFO);
    assert_int_equal(c->hub.status_interval_ns, 60 * S);
    assert_string_equal(c->hub.user, "cityhub");
    assert_int_equal(c->hub.tags.n, 0);
    assert_int_equal(NBUSES(c), 0);
    assert_int_equal(NDEVICES(c), 0);
    assert_int_equal(c->noutputs, 0);
    ch_config_free(c);
}

/* Every default in every table parses: a typo there would be silent. */
static void check_table(const struct hub_cfg_key *t)
{
    char base[8192] __attribute__((aligned(16)));
    char err[256];
    for (; t->name; t++) {
        assert_non_null(t->help);
        if (t->child)
            check_table(t->child);
        if (t->type == HUB_CFG_LIST) /* nested lists are data: child, size, bound */
            assert_true(t->child && t->elem_size > 0 && t->max_count > 0);
        if (!t->def)
            continue;
        memset(base, 0, sizeof(base));
        assert_true(t->offset + 8 <= sizeof(base));
        if (hub_cfg_set(t, base, t->def, err, sizeof(err)) != 0)
            fprintf(stderr, "default of %s: %s\n", t->name, err);
        assert_int_equal(hub_cfg_set(t, base, t->def, err, sizeof(err)), 0);
    }
}

static void test_tables(void **state)
{
    (void)state;
    check_table(ch_hub_keys);
    check_table(drv_output_common_keys);
    /* every driver of the registry: its sections' tables or its own */
    size_t n = 0, sections = 0;
    const struct drv_ops *const *all = drv_all(&n);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(all[i]->name);
        assert_non_null(all[i]->init);
        assert_non_null(all[i]->exit);
        if (all[i]->kind == DRV_INPUT) {
            assert_non_null(all[i]->sections);
            assert_non_null(all[i]->run);
            assert_non_null(all[i]->runners);
            assert_non_null(all[i]->stop);
            for (const struct drv_section *sec = all[i]->sections; sec->key; sec++, sections++) {
                assert_true(sec->config_size > 0 && sec->max_count > 0);
                check_table(sec->config_map);
            }
        } else {
            assert_int_equal(all[i]->kind, DRV_OUTPUT);
            assert_non_null(all[i]->flush);
            assert_true(all[i]->config_size >= sizeof(struct drv_output_common));
            check_table(all[i]->config_map);
        }
        assert_ptr_equal(drv_find(all[i]->kind, all[i]->name), all[i]);
    }
    assert_true(sections >= 2);
}

static void test_anchors_allowed(void **state)
{
    (void)state;
    char *errs = NULL;
    unsigned n = 0;
    struct ch_config *c =
        load(HEAD "devices:\n"
                  "  - {name: a, bus: lan, registers: &regs [{field: x, address: 1}]}\n"
                  "  - {name: b, bus: lan, registers: *regs}\n",
             &errs, &n);
    if (!c)
        fprintf(stderr, "%s", errs);
    assert_non_null(c);
    free(errs);
    assert_int_equal(NDEVICES(c), 2);
    assert_string_equal(DEV(c, 1)->regs[0].field, "x");
    assert_int_equal(DEV(c, 1)->regs[0].address, 1);
    ch_config_free(c);
}

static void test_hub_user(void **state)
{
    (void)state;
    struct ch_config *c = load_ok("hub: {name: gw, user: nobody}\n");
    assert_string_equal(c->hub.user, "nobody");
    ch_config_free(c);
    expect_errors("hub: {name: gw, user: \"a b\"}\n",
                  "test.yaml:1:23: user \"a b\": a user name has letters, digits, '_', '-', '.'\n",
                  1);
    expect_errors("hub: {name: gw, user: 1x}\n",
                  "test.yaml:1:23: user \"1x\": a user name starts with a letter or '_'\n", 1);
    expect_errors("hub: {name: gw, user: \"\"}\n",
                  "test.yaml:1:23: user \"\": a user name has 1 to 32 characters\n", 1);
}

static void test_unknown_key_top(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\nfoo: 1\n",
                  "test.yaml:2:1: unknown key \"foo\" at the top level\n", 1);
    expect_errors("hub: {name: gw}\ndevice:\n  - {}\n",
                  "test.yaml:2:1: unknown key \"device\" at the top level (did you mean "
                  "\"devices\"?)\n",
                  1);
}

static void test_unknown_key_device(void **state)
{
    (void)state;
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    intervall: 5s\n"
                       "    registers: [{field: x, address: 1}]\n",
                  "test.yaml:7:5: unknown key \"intervall\" in devices[0] (did you mean "
                  "\"interval\"?)\n",
                  1);
}

static void test_unknown_key_register(void **state)
{
    (void)state;
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers:\n"
                       "      - {field: x, address: 1}\n"
                       "      - {field: y, address: 2, colour: red}\n",
                  "test.yaml:9:32: unknown key \"colour\" in devices[0].registers[1]\n", 1);
}

static void test_unknown_key_output(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\n"
                  "outputs:\n"
                  "  - name: ioc\n"
                  "    type: influxdb\n"
                  "    url: http://127.0.0.1:8086\n"
                  "    bach_size: 10\n",
                  "test.yaml:6:5: unknown key \"bach_size\" in outputs[0] (did you mean "
                  "\"batch_size\"?)\n",
                  1);
}

static void test_unknown_key_hub_journal(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: gw\n  journal:\n    size: 1GiB\n",
                  "test.yaml:4:5: unknown key \"size\" in hub.journal\n", 1);
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: {first: gw}\n",
                  "test.yaml:2:9: expected a string for name, got a mapping\n", 1);
    expect_errors("hub:\n  name: gw\n  tags: [a, b]\n",
                  "test.yaml:3:9: expected a mapping for tags, got a list\n", 1);
    expect_errors("hub: {name: gw}\nbuses: {name: lan}\n",
                  "test.yaml:2:8: expected a list for buses, got a mapping\n", 1);
    expect_errors("hub: {name: gw}\ndevices:\n  - aq-1\n",
                  "test.yaml:3:5: expected a mapping for devices[0], got \"aq-1\"\n", 1);
    expect_errors("hub:\n  name:\n", "test.yaml:2:8: expected a string for name, got nothing\n", 1);
    expect_errors("hub:\n  name: \"\"\n", "test.yaml:2:9: name must not be empty\n", 1);
    expect_errors("- hub\n",
                  "test.yaml:1:1: expected a mapping at the top level (hub:, buses:, devices:, "
                  "outputs:), got a list\n",
                  1);
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_errors(
        HEAD "devices:\n"
             "  - {name: aq-1, bus: lan, interval: 10x, registers: [{field: x, address: 1}]}\n",
        "test.yaml:5:38: bad duration \"10x\" for interval: use a number and a unit, "
        "e.g. 250ms, 10s, 5m\n",
        1);
    expect_errors("hub:\n  name: gw\n  journal: {sync_interval: 500us}\n",
                  "test.yaml:3:28: sync_interval 500us is too short (at least 1ms)\n", 1);
    /* 0 is allowed: sync every reading */
    char *got = NULL;
    unsigned n = 0;
    struct ch_config *c = load("hub:\n  name: gw\n  journal: {sync_interval: 0s}\n", &got, &n);
    assert_non_null(c);
    assert_int_equal(c->hub.journal.sync_interval_ns, 0);
    ch_config_free(c);
    free(got);
}

static void test_bad_size(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: gw\n  journal:\n    max_size: 64MB5\n",
                  "test.yaml:4:15: bad size \"64MB5\" for max_size: use a number and a unit, e.g. "
                  "4096, 512KiB, 64MiB, 1GiB\n",
                  1);
    expect_errors("hub:\n  name: gw\n  journal:\n    max_size: 16MiB\n    segment_size: 16MiB\n",
                  "test.yaml:5:19: journal segment_size (16777216 bytes) must be at most half of "
                  "max_size (16777216 bytes)\n",
                  1);
}

static void test_bad_enum(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: gw\n  log_level: verbose\n",
                  "test.yaml:3:14: bad value \"verbose\" for log_level: use one of error, warn, "
                  "info, debug\n",
                  1);
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers: [{field: x, address: 1, type: float128}]\n",
                  "test.yaml:7:46: bad value \"float128\" for type: use one of uint16, int16, "
                  "uint32, int32, float32, uint64, int64, float64, bool, string\n",
                  1);
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\nbuses:\n  - {name: lan, type: tcp, host: h, port: 70000}\n",
                  "test.yaml:3:43: port 70000 is out of range (1..65535)\n", 1);
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    unit: 248\n"
                       "    registers: [{field: x, address: 65536}]\n",
                  "test.yaml:7:11: unit 248 is out of range (0..247)\n"
                  "test.yaml:8:37: address 65536 is out of range (0..65535)\n",
                  2);
}

static void test_unknown_bus(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\n"
                  "buses:\n"
                  "  - {name: lan, type: tcp, host: h}\n"
                  "  - {name: lan2, type: tcp, host: h}\n"
                  "devices:\n"
                  "  - {name: aq-1, bus: rs485-1, registers: [{field: x, address: 1}]}\n",
                  "test.yaml:6:23: unknown bus \"rs485-1\" (defined: lan, lan2)\n", 1);
    expect_errors("hub: {name: gw}\n"
                  "devices:\n"
                  "  - {name: aq-1, bus: lan, registers: [{field: x, address: 1}]}\n",
                  "test.yaml:3:23: unknown bus \"lan\" (no buses are defined)\n", 1);
}

static void test_duplicate_device(void **state)
{
    (void)state;
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers: [{field: x, address: 1}]\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers: [{field: x, address: 1}]\n",
                  "test.yaml:8:11: duplicate device name \"aq-1\" (first at line 5)\n", 1);
}

static void test_duplicate_bus(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\n"
                  "buses:\n"
                  "  - {name: lan, type: tcp, host: a}\n"
                  "  - {name: lan, type: tcp, host: b}\n",
                  "test.yaml:4:12: duplicate bus name \"lan\" (first at line 3)\n", 1);
}

static void test_duplicate_output_and_key(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\n"
                  "outputs:\n"
                  "  - {name: ioc, type: influxdb, url: http://a, database: c}\n"
                  "  - {name: ioc, type: influxdb, url: http://b, database: c}\n",
                  "test.yaml:4:12: duplicate output name \"ioc\" (first at line 3)\n", 1);
    expect_errors("hub:\n  name: gw\n  name: gw2\n",
                  "test.yaml:3:3: duplicate key \"name\" in hub (first at line 2)\n", 1);
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_errors(HEAD "devices:\n"
                       "  - {name: aq-1, registers: [{field: x, address: 1}]}\n",
                  "test.yaml:5:5: missing required key \"bus\" in devices[0]\n", 1);
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n",
                  "test.yaml:5:5: missing required key \"registers\" in devices[0]\n", 1);
    expect_errors("buses: []\n", "test.yaml:1:1: missing required key \"hub\" at the top level\n",
                  1);
    expect_errors("hub:\n  log_level: info\n",
                  "test.yaml:2:3: missing required key \"name\" in hub\n", 1);
    expect_errors("hub: {name: gw}\noutputs:\n  - {name: ioc, url: http://a}\n",
                  "test.yaml:3:5: missing required key \"type\" in outputs[0]\n", 1);
    expect_errors("hub: {name: gw}\noutputs:\n  - {name: ioc, type: influxdb}\n",
                  "test.yaml:3:5: missing required key \"url\" in outputs[0]\n", 1);
}

static void test_unknown_output_type(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\noutputs:\n  - {name: k, type: kafka}\n",
                  "test.yaml:3:21: unknown output type \"kafka\" (known: influxdb, mqtt)\n", 1);
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: gw\n   bad: x\n",
                  "test.yaml:3:7: mapping values are not allowed in this context\n", 1);
    expect_errors("hub: {name: gw\n",
                  "test.yaml:2:1: did not find expected ',' or '}' (while parsing a flow mapping "
                  "at line 1)\n",
                  1);
    expect_errors("hub: {name: *nope}\n", "test.yaml:1:13: found undefined alias\n", 1);
    expect_errors("hub: {name: \"g\xff\"}\n",
                  "test.yaml:1:15: invalid leading UTF-8 octet (#FF at byte 14)\n", 1);
    expect_errors("hub: {name: gw}\n---\nhub: {name: gw2}\n",
                  "test.yaml:3:1: only one YAML document is allowed in a configuration (remove "
                  "this one or the \"---\" before it)\n",
                  1);
}

static void test_empty(void **state)
{
    (void)state;
    expect_errors("", "test.yaml:1:1: empty configuration\n", 1);
    expect_errors("# only a comment\n\n", "test.yaml:1:1: empty configuration\n", 1);
}

static void test_unsupported(void **state)
{
    (void)state;
    /* an rtu bus needs its serial device (a check of the Modbus driver) */
    expect_errors("hub: {name: gw}\n"
                  "buses:\n"
                  "  - {name: rs485-1, type: rtu, baud: 9600}\n"
                  "devices:\n"
                  "  - {name: m, bus: rs485-1, unit: 0, registers: [{field: x, address: 1}]}\n",
                  "test.yaml:3:5: missing required key \"device\" in buses[0] (an rtu bus needs "
                  "one, e.g. /dev/ttyUSB0)\n"
                  "test.yaml:5:35: device \"m\": unit 0 is the broadcast address on a serial bus; "
                  "use 1..247\n",
                  2);
    expect_errors("hub: {name: gw}\n"
                  "buses:\n"
                  "  - {name: lan, type: tcp, host: h}\n"
                  "devices:\n"
                  "  - name: meter-1\n"
                  "    bus: lan\n"
                  "    profile: eastron-sdm999\n",
                  "test.yaml:7:14: device meter-1: unknown profile \"eastron-sdm999\" (available: "
                  "eastron-sdm120, eastron-sdm630, generic-air-quality, generic-traffic-counter, "
                  "generic-water-level, generic-weather)\n",
                  1);
    /* the status listener: loopback unless a password guards it */
    expect_errors("hub:\n  name: gw\n  status: {listen: 0.0.0.0:8780}\n",
                  "test.yaml:3:20: hub.status.listen 0.0.0.0:8780 is not a loopback address: set "
                  "password_file (HTTP basic authentication), or allow_unauthenticated: true on a "
                  "trusted network\n",
                  1);
    expect_errors("hub:\n  name: gw\n  status: {listen: \"[::1:8780\", max_connections: 0}\n",
                  "test.yaml:3:20: listen \"[::1:8780\": write an IPv6 address as [ADDRESS]:PORT\n"
                  "test.yaml:3:50: max_connections 0 is out of range (1..256)\n",
                  2);
    /* an MQTT input needs a broker and something to subscribe to */
    expect_errors("hub: {name: gw}\nmqtt_inputs:\n  - name: lorawan\n",
                  "test.yaml:3:5: missing required key \"url\" in mqtt_inputs[0]\n"
                  "test.yaml:3:5: missing required key \"subscribe\" in mqtt_inputs[0]\n",
                  2);
}

/* Nested lists are data (a LIST key with a child table): every error inside
 * a device's registers names its line and column and its place. */
static void test_nested_list_errors(void **state)
{
    (void)state;
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers:\n"
                       "      - {field: pm2_5, address: 0, type: uint16}\n"
                       "      - {field: t, adress: 10}\n"
                       "      - {field: rh, address: 11, order: XYZW}\n"
                       "      - 42\n"
                       "      - {field: pm2_5, address: 12}\n",
                  "test.yaml:9:9: missing required key \"address\" in devices[0].registers[1]\n"
                  "test.yaml:9:20: unknown key \"adress\" in devices[0].registers[1] (did you mean "
                  "\"address\"?)\n"
                  "test.yaml:10:41: bad value \"XYZW\" for order: use one of ABCD, CDAB, BADC, "
                  "DCBA\n"
                  "test.yaml:11:9: expected a mapping for devices[0].registers[3], got \"42\"\n",
                  4);
    /* a rule across registers, reported at the register at fault */
    expect_errors(HEAD "devices:\n"
                       "  - name: aq-1\n"
                       "    bus: lan\n"
                       "    registers:\n"
                       "      - {field: pm2_5, address: 0}\n"
                       "      - {field: pm2_5, address: 12}\n",
                  "test.yaml:9:17: device aq-1: field pm2_5 is defined twice (registers 1 and 2)\n",
                  1);
}

/* An output's name names its cursor file: the one rule is checked when the
 * file is read, so `check` refuses what `run` would. */
static void test_output_name_rule(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\n"
                  "outputs:\n"
                  "  - {name: \"my ioc\", type: influxdb, url: \"http://a\", database: city}\n"
                  "  - {name: .hidden, type: influxdb, url: \"http://a\", database: city}\n",
                  "test.yaml:3:12: name \"my ioc\" may hold only letters, digits, \"_\", \".\" and "
                  "\"-\" (it names a file)\n"
                  "test.yaml:4:12: name \".hidden\" must not start with \".\"\n",
                  2);
}

static void test_too_long_string(void **state)
{
    (void)state;
    expect_errors(
        "hub:\n  name: gw-0123456789012345678901234567890123456789012345678901234567890\n",
        "test.yaml:2:9: name is too long (64 bytes; at most 63)\n", 1);
}

static void test_tags_errors(void **state)
{
    (void)state;
    expect_errors("hub:\n  name: gw\n  tags: {gateway: x, site: \"\", a: [1]}\n",
                  "test.yaml:3:10: tag \"gateway\" is set by the hub (from the gateway's name); "
                  "remove it from tags\n"
                  "test.yaml:3:22: empty value for tag \"site\"\n"
                  "test.yaml:3:35: expected a string for a, got a list\n",
                  3);
}

static void test_limits(void **state)
{
    (void)state;
    size_t cap = 1024 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t off = (size_t)sprintf(text, "hub: {name: gw}\nbuses:\n");
    for (int i = 0; i <= DRV_MB_MAX_BUSES; i++)
        off += (size_t)sprintf(text + off, "  - {name: b%d, type: tcp, host: h}\n", i);
    expect_errors(text, "test.yaml:4099:5: too many buses (4097; at most 4096)\n", 1);
    /* a device on a bus past the limit is not told the bus is unknown */
    off += (size_t)sprintf(text + off, "devices:\n  - {name: d, bus: b4096, registers: [{field: x, "
                                       "address: 0}]}\n");
    expect_errors(text,
                  "test.yaml:4099:5: too many buses (4097; at most 4096)\n"
                  "test.yaml:4101:20: unknown bus \"b4096\" (only the first 4096 buses are read: "
                  "at most 4096 in buses)\n",
                  2);

    /* 1,100 Modbus TCP endpoints, one device each, load fine */
    off = (size_t)sprintf(text, "hub: {name: gw}\nbuses:\n");
    for (int i = 0; i < 1100; i++)
        off += (size_t)sprintf(text + off, "  - {name: b%d, type: tcp, host: 127.0.%d.%d}\n", i,
                               (i + 1) / 256, (i + 1) % 256);
    off += (size_t)sprintf(text + off, "devices:\n");
    for (int i = 0; i < 1100; i++)
        off += (size_t)sprintf(
            text + off, "  - {name: d%d, bus: b%d, registers: [{field: x, address: 0}]}\n", i, i);
    unsigned nerr = 0;
    struct ch_config *c = ch_config_load_buffer("test.yaml", text, off, stderr, &nerr);
    assert_non_null(c);
    assert_int_equal(ch_config_section(c, "buses")->n, 1100);
    assert_int_equal(ch_config_section(c, "devices")->n, 1100);
    ch_config_free(c);

    off = (size_t)sprintf(text, HEAD "devices:\n");
    for (int i = 0; i <= DRV_MB_MAX_DEVICES; i++)
        off += (size_t)sprintf(text + off,
                               "  - {name: d%d, bus: lan, unit: %d, registers: [{field: x, "
                               "address: 0}]}\n",
                               i, i % 248);
    char want[256];
    snprintf(want, sizeof(want),
             "test.yaml:%d:23: too many devices on bus \"lan\" (at most 248 devices per bus, one "
             "per unit id)\n",
             5 + DRV_MB_MAX_DEVICES);
    expect_errors(text, want, 1);

    off = (size_t)sprintf(text, HEAD "devices:\n  - name: d\n    bus: lan\n    registers:\n");
    for (int i = 0; i <= DRV_MB_MAX_REGISTERS; i++)
        off += (size_t)sprintf(text + off, "      - {field: f%d, address: %d}\n", i, i);
    expect_errors(text, "test.yaml:72:9: too many devices[0].registers (65; at most 64)\n", 1);
    free(text);
}

static void test_multiple_errors(void **state)
{
    (void)state;
    expect_errors("hub:\n"
                  "  name: gw\n"
                  "  colour: red\n"
                  "  journal: {max_size: 10XB, on_full: drop_all}\n"
                  "buses:\n"
                  "  - {name: lan, type: tcp, host: h, port: 0}\n"
                  "devices:\n"
                  "  - name: aq-1\n"
                  "    bus: nowhere\n"
                  "    registers: [{field: x, address: -1}]\n"
                  "outputs:\n"
                  "  - {name: ioc, type: influxdb, url: http://a, gzip: maybe}\n",
                  "test.yaml:3:3: unknown key \"colour\" in hub\n"
                  "test.yaml:4:23: bad size \"10XB\" for max_size: use a number and a unit, e.g. "
                  "4096, 512KiB, 64MiB, 1GiB\n"
                  "test.yaml:4:38: bad value \"drop_all\" for on_full: use one of drop_oldest, "
                  "drop_newest\n"
                  "test.yaml:6:43: port 0 is out of range (1..65535)\n"
                  "test.yaml:9:10: unknown bus \"nowhere\" (defined: lan)\n"
                  "test.yaml:10:37: address -1 is out of range (0..65535)\n"
                  "test.yaml:12:54: bad boolean \"maybe\" for gzip: use true or false\n",
                  7);
}

static void test_too_many_errors(void **state)
{
    (void)state;
    char *text = malloc(16 * 1024);
    char *errs = NULL;
    unsigned n = 0;
    assert_non_null(text);
    size_t off = (size_t)sprintf(text, "hub:\n  name: gw\n");
    for (int i = 0; i < 150; i++)
        off += (size_t)sprintf(text + off, "  k%d: 1\n", i);
    assert_null(load(text, &errs, &n));
    assert_int_equal(n, 101);
    /* 101 lines: the first 100 errors in order, then the notice. */
    size_t lines = 0;
    for (char *p = errs; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 101);
    assert_non_null(strstr(errs, "test.yaml:3:3: unknown key \"k0\" in hub\n"));
    assert_non_null(strstr(errs, "test.yaml:102:3: unknown key \"k99\" in hub\n"));
    assert_null(strstr(errs, "\"k100\""));
    assert_non_null(strstr(errs, "test.yaml:103:3: too many errors; stopping after 100\n"));
    free(errs);
    free(text);
}

/* 4,000 devices, each aliasing the same 64 registers of 8 keys: ~4.4
 * million nodes to walk, past the cap. */
static void test_alias_bomb(void **state)
{
    (void)state;
    char *text = malloc(1024 * 1024);
    char *errs = NULL;
    unsigned n = 0;
    assert_non_null(text);
    size_t off = (size_t)sprintf(text, "hub: {name: gw}\nbuses:\n");
    for (int b = 0; b < 17; b++)
        off += (size_t)sprintf(text + off, "  - {name: b%d, type: tcp, host: h}\n", b);
    off += (size_t)sprintf(text + off, "regs: &r\n");
    for (int i = 0; i < 64; i++)
        off += (size_t)sprintf(text + off,
                               "  - {field: f%d, address: %d, type: uint16, table: input, order: "
                               "ABCD, scale: 1, unit: V, bit: -1}\n",
                               i, i);
    off += (size_t)sprintf(text + off, "devices:\n");
    for (int d = 0; d < 4000; d++)
        off += (size_t)sprintf(text + off, "  - {name: d%d, bus: b%d, unit: %d, registers: *r}\n",
                               d, d / 240, d % 240 + 1);
    assert_null(load(text, &errs, &n));
    /* "regs" is an unknown key (reported), then the walk stops at the cap. */
    assert_int_equal(n, 2);
    assert_non_null(strstr(errs, "test.yaml:20:1: unknown key \"regs\" at the top level\n"));
    assert_non_null(
        strstr(errs, ": more than 4000000 YAML nodes to read (is an alias repeated too often?)\n"));
    free(errs);
    free(text);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, full_yaml, strlen(full_yaml)), (ssize_t)strlen(full_yaml));
    close(fd);
    unsigned n = 9;
    struct ch_config *c = ch_config_load(path, stderr, &n);
    assert_non_null(c);
    assert_int_equal(n, 0);
    assert_string_equal(c->path, path);
    assert_int_equal(NDEVICES(c), 2);
    ch_config_free(c);
    unlink(path);

    char *errs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&errs, &len);
    assert_null(ch_config_load("/nonexistent/cityhub.yaml", f, &n));
    fclose(f);
    assert_int_equal(n, 1);
    assert_string_equal(errs,
                        "/nonexistent/cityhub.yaml: cannot open: No such file or directory\n");
    free(errs);
}

/* What `cityhub check` accepts, the program must start with: these were
 * accepted by the loader and then refused at run time (an empty tcp host,
 * an influxdb output that its driver's init refuses, a device whose
 * readings would carry more tags than a reading holds). */
static void test_check_as_strict_as_run(void **state)
{
    (void)state;
    expect_errors("hub: {name: gw}\nbuses:\n  - {name: lan, type: tcp, host: \"\"}\n",
                  "test.yaml:3:34: host must not be empty (a tcp bus needs one)\n", 1);
    expect_errors("hub: {name: gw}\n"
                  "outputs:\n"
                  "  - {name: a, type: influxdb, url: \"ftp://x\"}\n"
                  "  - {name: b, type: influxdb, url: \"http://x\"}\n"
                  "  - {name: c, type: influxdb, url: \"http://x\", org: o, bucket: b, "
                  "token_file: /nonexistent/t}\n"
                  "  - {name: d, type: influxdb, url: \"http://x\", database: d, username: u}\n",
                  "test.yaml:3:36: url \"ftp://x\": must start with http:// or https://\n"
                  "test.yaml:4:5: database is required (v1 API), or org + bucket + token_file "
                  "(v2)\n"
                  "test.yaml:5:79: token_file /nonexistent/t: No such file or directory\n"
                  "test.yaml:6:71: username and password_file go together\n",
                  4);

    /* a secret written inline: refused, naming the key and the file key to
     * use instead, never the value */
    expect_errors("hub: {name: gw}\noutputs:\n"
                  "  - {name: a, type: influxdb, url: \"http://x\", database: d, username: u, "
                  "password: hunter2}\n"
                  "  - {name: b, type: influxdb, url: \"http://x\", org: o, bucket: b, token: "
                  "s3cr3t}\n",
                  "test.yaml:3:74: \"password\" in outputs[0]: a secret is never written in the "
                  "configuration: put it in a file only the cityhub user can read (chmod 600) "
                  "and name that file in password_file\n"
                  "test.yaml:4:67: \"token\" in outputs[1]: a secret is never written in the "
                  "configuration: put it in a file only the cityhub user can read (chmod 600) "
                  "and name that file in token_file\n",
                  2);

    /* InfluxDB answers 400 "invalid tag key" to any point with it */
    expect_errors("hub:\n  name: gw\n  tags: {time: noon}\n",
                  "test.yaml:3:10: tag \"time\" would make the store refuse every reading (time "
                  "is the timestamp); rename it\n",
                  1);

    char *text = malloc(8192);
    assert_non_null(text);
    size_t off = (size_t)sprintf(text, "hub:\n  name: gw\n  tags: {");
    for (int i = 0; i < HUB_CFG_TAGS_MAX; i++)
        off += (size_t)sprintf(text + off, "%sh%d: x", i ? ", " : "", i);
    off += (size_t)sprintf(text + off, "}\nbuses:\n  - {name: lan, type: tcp, host: h}\n"
                                       "devices:\n  - name: d\n    bus: lan\n    tags: {");
    size_t tail = 0;
    for (int i = 0; i < 15; i++) {
        tail = off;
        off += (size_t)sprintf(text + off, "%sd%d: y", i ? ", " : "", i);
    }
    sprintf(text + off, "}\n    registers: [{field: f, address: 0}]\n");
    expect_errors(text,
                  "test.yaml:9:11: device \"d\": its readings would have 33 tags (15 of the "
                  "device, 16 of the hub, device and gateway); at most 32\n",
                  1);
    /* a device tag that overrides a hub tag takes no second place: d14
     * becomes h0, 15 + 15 + 2 = 32 */
    sprintf(text + tail, ", h0: z}\n    registers: [{field: f, address: 0}]\n");
    char *errs = NULL;
    unsigned n = 0;
    struct ch_config *c = load(text, &errs, &n);
    if (!c)
        fail_msg("%s", errs);
    assert_int_equal(DEV(c, 0)->tags.n, 15);
    ch_config_free(c);
    free(errs);
    free(text);
}

/* YAML that is legal but not what the loader takes, and numbers in the forms
 * people write them: each one accepted exactly or refused where it stands. */
static void test_weird_yaml(void **state)
{
    (void)state;
    /* a reader error's column counts characters, as libyaml's columns do */
    expect_errors("hub: {name: \"g\xc3\xa9\xff\"}\n",
                  "test.yaml:1:16: invalid leading UTF-8 octet (#FF at byte 16)\n", 1);
    expect_errors("hub: {name: gw}\n"
                  "buses:\n"
                  "  - &b {name: lan, type: tcp, host: h}\n"
                  "  - {<<: *b, name: lan2}\n",
                  "test.yaml:4:5: missing required key \"type\" in buses[1]\n"
                  "test.yaml:4:5: missing required key \"host\" in buses[1] (a tcp bus needs "
                  "one)\n"
                  "test.yaml:4:6: merge keys (<<) are not supported in buses[1]; write the keys "
                  "out (an alias of a whole mapping, e.g. registers: *common, works)\n",
                  3);
    expect_errors("hub: {name: gw}\n"
                  "buses:\n  - {name: lan, type: tcp, host: h, port: -1, timeout: 0s}\n"
                  "devices:\n  - {name: d, bus: lan, unit: 248, interval: 0s,\n"
                  "     registers: [{field: x, address: 1e3}]}\n",
                  "test.yaml:3:43: port -1 is out of range (1..65535)\n"
                  "test.yaml:3:56: timeout 0s is too short (at least 1ms)\n"
                  "test.yaml:5:31: unit 248 is out of range (0..247)\n"
                  "test.yaml:5:46: interval 0s is too short (at least 10ms)\n"
                  "test.yaml:6:38: bad integer \"1e3\" for address\n",
                  5);
    char *errs = NULL;
    unsigned n = 0;
    struct ch_config *c =
        load("hub: {name: gw, journal: {max_size: 1.5MiB, segment_size: 512KiB}}\n"
             "buses:\n  - {name: lan, type: tcp, host: h, port: 0x10, timeout: 1.5s}\n"
             "devices:\n  - {name: !!str d, bus: lan, unit: !!int 0x10, interval: 1.5h,\n"
             "     registers: [{field: !!int 5, address: \"7\", scale: .5},\n"
             "                 {field: y, address: 8, scale: 1e3}]}\n",
             &errs, &n);
    if (!c)
        fail_msg("%s", errs);
    assert_int_equal(c->hub.journal.max_size, 1572864);
    assert_int_equal(BUS(c, 0)->port, 16);
    assert_int_equal(BUS(c, 0)->timeout_ns, 1500 * MS);
    assert_int_equal(DEV(c, 0)->unit, 16);
    assert_int_equal(DEV(c, 0)->interval_ns, 5400 * S);
    assert_string_equal(DEV(c, 0)->regs[0].field, "5");
    assert_int_equal(DEV(c, 0)->regs[0].address, 7);
    assert_true(DEV(c, 0)->regs[0].scale == 0.5);
    assert_true(DEV(c, 0)->regs[1].scale == 1000.0);
    ch_config_free(c);
    free(errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_anchors_allowed),
        cmocka_unit_test(test_hub_user),
        cmocka_unit_test(test_unknown_key_top),
        cmocka_unit_test(test_unknown_key_device),
        cmocka_unit_test(test_unknown_key_register),
        cmocka_unit_test(test_unknown_key_output),
        cmocka_unit_test(test_unknown_key_hub_journal),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_size),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_unknown_bus),
        cmocka_unit_test(test_duplicate_device),
        cmocka_unit_test(test_duplicate_bus),
        cmocka_unit_test(test_duplicate_output_and_key),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_unknown_output_type),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_nested_list_errors),
        cmocka_unit_test(test_output_name_rule),
        cmocka_unit_test(test_too_long_string),
        cmocka_unit_test(test_tags_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_check_as_strict_as_run),
        cmocka_unit_test(test_weird_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
