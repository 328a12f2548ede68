/* tests/unit/test_drv_modbus_profile.c — Modbus device profiles: every
 * shipped profile reads without error and passes the device checks; a
 * device's own registers override the profile's; unknown and broken
 * profiles are errors with their position; a site directory
 * ($CITYHUB_PROFILES) replaces a shipped profile; the data dictionary of a
 * device with a profile. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/modbus_priv.h"
#include "drivers/modbus/profile.h"
#include "firmware/config.h"
#include "hub/config_map.h"
#include "hub/log.h"

static const char *const shipped[] = {
    "eastron-sdm120",          "eastron-sdm630",      "generic-air-quality",
    "generic-traffic-counter", "generic-water-level", "generic-weather",
};
#define NSHIPPED (sizeof(shipped) / sizeof(shipped[0]))

static char site_dir[256]; /* $CITYHUB_PROFILES of this process */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A device as the loader makes it: every default applied. */
static void device_init(struct drv_modbus_device *d, const char *name, const char *profile)
{
    memset(d, 0, sizeof(*d));
    hub_cfg_defaults(drv_modbus_device_keys, d);
    snprintf(d->name, sizeof(d->name), "%s", name);
    snprintf(d->bus, sizeof(d->bus), "lan");
    snprintf(d->profile, sizeof(d->profile), "%s", profile);
    d->max_gap = -1; /* "not set", whether or not this build has the key */
    d->max_registers = -1;
}

static struct drv_modbus_register reg_init(const char *field, int table, int64_t address, int type)
{
    struct drv_modbus_register r;
    memset(&r, 0, sizeof(r));
    hub_cfg_defaults(drv_modbus_register_keys, &r);
    snprintf(r.field, sizeof(r.field), "%s", field);
    r.table = table;
    r.address = address;
    r.type = type;
    return r;
}

static const struct drv_modbus_register *find_reg(const struct drv_modbus_device *d,
                                                  const char *field, size_t *at)
{
    for (size_t i = 0; i < d->nregs; i++)
        if (!strcmp(d->regs[i].field, field)) {
            if (at)
                *at = i;
            return &d->regs[i];
        }
    return NULL;
}

/* ---- the shipped profiles --------------------------------------------------- */

static void test_shipped_profiles_load(void **state)
{
    (void)state;
    struct drv_mb_profiles *lib = drv_mb_profiles_load(NULL);
    assert_non_null(lib);
    assert_int_equal(lib->n, NSHIPPED);
    for (size_t i = 0; i < NSHIPPED; i++) {
        const struct drv_mb_profile *p = drv_mb_profile_find(lib, shipped[i]);
        assert_non_null(p);
        if (p->nerrors)
            fprintf(stderr, "%s", p->errors);
        assert_int_equal(p->nerrors, 0);
        assert_null(p->errors);
        assert_int_equal(p->site, 0);
        assert_string_equal(p->name, shipped[i]);
        assert_true(p->description[0] && p->vendor[0] && p->model[0] && p->measurement[0]);
        assert_true(p->nregs > 0 && p->nregs <= DRV_MB_MAX_REGISTERS);
        assert_true(p->max_gap >= 0);
        for (size_t r = 0; r < p->nregs; r++) {
            /* documented: every field has a unit and a description */
            assert_true(p->regs[r].unit[0] != '\0');
            assert_true(p->regs[r].description[0] != '\0');
            assert_int_equal(p->regs[r].bit, -1);
        }

        /* a device that names it passes the checks every device passes */
        struct drv_modbus_device d, res;
        char err[512] = "";
        device_init(&d, "dev", shipped[i]);
        size_t origin[DRV_MB_MAX_REGISTERS];
        assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, origin, err, sizeof(err)), 0);
        assert_int_equal(res.nregs, p->nregs);
        assert_string_equal(res.measurement, p->measurement);
        assert_int_equal(res.max_gap, p->max_gap);
        for (size_t r = 0; r < res.nregs; r++)
            assert_true(origin[r] == SIZE_MAX);
        if (drv_modbus_check_device(&res, err, sizeof(err)) != 0)
            fprintf(stderr, "%s: %s\n", shipped[i], err);
        assert_int_equal(drv_modbus_check_device(&res, err, sizeof(err)), 0);
        struct drv_modbus_block blocks[DRV_MB_MAX_REGISTERS];
        int nb = drv_modbus_plan(&res, (unsigned)res.max_gap, blocks, DRV_MB_MAX_REGISTERS);
        assert_true(nb > 0);
        for (int b = 0; b < nb; b++)
            assert_true(blocks[b].count <= res.max_registers);
        if (!strcmp(shipped[i], "eastron-sdm120"))
            assert_int_equal(nb, 2); /* 0x0000-0x004F, 0x0156-0x0159 */
        if (!strcmp(shipped[i], "eastron-sdm630"))
            assert_int_equal(nb, 3); /* 0x0000-0x004F, 0x00C8-0x00E1, 0x0156-0x0159 */
        if (!strncmp(shipped[i], "generic-", 8) && strcmp(shipped[i], "generic-air-quality"))
            assert_int_equal(nb, 1);
        drv_modbus_device_release(&res);
    }
    drv_mb_profiles_free(lib);
}

/* The published maps: a few registers checked against the manuals. */
static void test_shipped_registers(void **state)
{
    (void)state;
    struct drv_mb_profiles *lib = drv_mb_profiles_load(NULL);
    const struct drv_mb_profile *p = drv_mb_profile_find(lib, "eastron-sdm120");
    assert_non_null(p);
    assert_string_equal(p->measurement, "energy");
    assert_int_equal(p->max_registers, 80); /* 40 values per request */
    static const struct {
        const char *field;
        int64_t address;
    } sdm120[] = {{"voltage", 0x0000},        {"current", 0x0006},        {"active_power", 0x000C},
                  {"apparent_power", 0x0012}, {"reactive_power", 0x0018}, {"power_factor", 0x001E},
                  {"frequency", 0x0046},      {"energy_import", 0x0048},  {"energy_export", 0x004A},
                  {"energy_total", 0x0156}};
    struct drv_modbus_device view = {0};
    view.regs = p->regs;
    view.nregs = p->nregs;
    for (size_t i = 0; i < sizeof(sdm120) / sizeof(sdm120[0]); i++) {
        const struct drv_modbus_register *r = find_reg(&view, sdm120[i].field, NULL);
        assert_non_null(r);
        assert_int_equal(r->address, sdm120[i].address);
        assert_int_equal(r->table, DRV_MB_INPUT);
        assert_int_equal(r->type, DRV_MB_FLOAT32);
        assert_int_equal(r->order, DRV_MB_ABCD);
    }
    assert_true(find_reg(&view, "energy_total", NULL)->scale == 1000.0); /* kWh -> Wh */
    assert_string_equal(find_reg(&view, "energy_total", NULL)->unit, "Wh");
    assert_string_equal(drv_mb_store_type(find_reg(&view, "energy_total", NULL)), "float");

    p = drv_mb_profile_find(lib, "eastron-sdm630");
    view.regs = p->regs;
    view.nregs = p->nregs;
    static const struct {
        const char *field;
        int64_t address;
    } sdm630[] = {
        {"voltage_l1", 0x0000},      {"voltage_l2", 0x0002},      {"voltage_l3", 0x0004},
        {"current_l1", 0x0006},      {"current_l2", 0x0008},      {"current_l3", 0x000A},
        {"active_power_l1", 0x000C}, {"active_power_l3", 0x0010}, {"active_power", 0x0034},
        {"frequency", 0x0046},       {"energy_import", 0x0048},   {"energy_export", 0x004A}};
    for (size_t i = 0; i < sizeof(sdm630) / sizeof(sdm630[0]); i++) {
        const struct drv_modbus_register *r = find_reg(&view, sdm630[i].field, NULL);
        assert_non_null(r);
        assert_int_equal(r->address, sdm630[i].address);
        assert_int_equal(r->table, DRV_MB_INPUT);
        assert_int_equal(r->type, DRV_MB_FLOAT32);
    }

    p = drv_mb_profile_find(lib, "generic-traffic-counter");
    view.regs = p->regs;
    view.nregs = p->nregs;
    for (int lane = 1; lane <= 4; lane++) {
        char f[32];
        snprintf(f, sizeof(f), "vehicles_lane%d", lane);
        const struct drv_modbus_register *r = find_reg(&view, f, NULL);
        assert_non_null(r);
        assert_int_equal(r->type, DRV_MB_UINT32);
        assert_string_equal(drv_mb_store_type(r), "unsigned");
    }
    drv_mb_profiles_free(lib);
}

/* ---- resolving a device ---------------------------------------------------- */

static void test_override(void **state)
{
    (void)state;
    struct drv_mb_profiles *lib = drv_mb_profiles_load(NULL);
    const struct drv_mb_profile *p = drv_mb_profile_find(lib, "eastron-sdm630");
    struct drv_modbus_device d, res;
    struct drv_modbus_register own[3];
    size_t origin[DRV_MB_MAX_REGISTERS];
    char err[512];

    device_init(&d, "meter-7", "eastron-sdm630");
    own[0] = reg_init("extra", DRV_MB_HOLDING, 0x0200, DRV_MB_UINT16);
    own[1] = reg_init("voltage_l1", DRV_MB_HOLDING, 100, DRV_MB_INT16); /* replaces it whole */
    own[1].scale = 0.1;
    own[2] = reg_init("frequency", DRV_MB_INPUT, 0x0046, DRV_MB_FLOAT32);
    snprintf(own[2].unit, sizeof(own[2].unit), "mHz");
    d.regs = own;
    d.nregs = 3;
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, origin, err, sizeof(err)), 0);
    assert_int_equal(res.nregs, p->nregs + 1);
    size_t at = 0;
    /* the profile's order, overridden in place; new ones after */
    const struct drv_modbus_register *r = find_reg(&res, "voltage_l1", &at);
    assert_int_equal(at, 0);
    assert_int_equal(r->table, DRV_MB_HOLDING);
    assert_int_equal(r->address, 100);
    assert_int_equal(r->type, DRV_MB_INT16);
    assert_true(r->scale == 0.1);
    assert_string_equal(r->unit, "");        /* whole register replaced: no unit */
    assert_string_equal(r->description, ""); /* nor description */
    assert_int_equal(origin[0], 1);
    r = find_reg(&res, "frequency", &at);
    assert_string_equal(r->unit, "mHz");
    assert_int_equal(origin[at], 2);
    r = find_reg(&res, "extra", &at);
    assert_int_equal(at, p->nregs);
    assert_int_equal(origin[at], 0);
    assert_true(origin[1] == SIZE_MAX);
    r = find_reg(&res, "voltage_l2", &at);
    assert_string_equal(r->unit, "V");
    /* measurement, max_gap and max_registers from the profile */
    assert_string_equal(res.measurement, "energy");
    assert_int_equal(res.max_gap, 80);
    assert_int_equal(res.max_registers, 80);
    assert_int_equal(drv_modbus_check_device(&res, err, sizeof(err)), 0);
    drv_modbus_device_release(&res);
    assert_null(res.regs);

    /* the device's own measurement wins; so do its max_gap / max_registers
     * when its key table lets it set them */
    snprintf(d.measurement, sizeof(d.measurement), "substation");
    d.max_gap = 3;
    d.max_registers = 20;
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, NULL, err, sizeof(err)), 0);
    assert_string_equal(res.measurement, "substation");
    if (hub_cfg_find(drv_modbus_device_keys, "max_gap"))
        assert_int_equal(res.max_gap, 3);
    if (hub_cfg_find(drv_modbus_device_keys, "max_registers"))
        assert_int_equal(res.max_registers, 20);
    drv_modbus_device_release(&res);

    /* the same field twice in the device: its own duplicate, reported */
    own[0] = reg_init("voltage_l1", DRV_MB_HOLDING, 300, DRV_MB_UINT16);
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, NULL, err, sizeof(err)), 0);
    assert_int_equal(res.nregs, p->nregs + 1);
    assert_int_equal(drv_modbus_check_device(&res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "voltage_l1 is defined twice"));
    drv_modbus_device_release(&res);

    /* no profile: the device as it is, defaults resolved */
    device_init(&d, "plain", "");
    d.regs = own;
    d.nregs = 1;
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, NULL, err, sizeof(err)), 0);
    assert_int_equal(res.nregs, 1);
    assert_string_equal(res.measurement, "modbus");
    assert_int_equal(res.max_gap, 0);
    assert_int_equal(res.max_registers, DRV_MB_MAX_REGS_PER_READ);
    drv_modbus_device_release(&res);
    drv_mb_profiles_free(lib);
}

static void test_unknown_and_too_many(void **state)
{
    (void)state;
    struct drv_mb_profiles *lib = drv_mb_profiles_load(NULL);
    struct drv_modbus_device d, res;
    char err[1024];

    device_init(&d, "m1", "eastron-sdm999");
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, NULL, err, sizeof(err)), -1);
    assert_null(res.regs);
    assert_string_equal(err, "device m1: unknown profile \"eastron-sdm999\" (available: "
                             "eastron-sdm120, eastron-sdm630, generic-air-quality, "
                             "generic-traffic-counter, generic-water-level, generic-weather)");

    /* 41 fields of the SDM630 and 30 of the device's own: past 64 */
    struct drv_modbus_register own[30];
    for (int i = 0; i < 30; i++) {
        char f[16];
        snprintf(f, sizeof(f), "x%d", i);
        own[i] = reg_init(f, DRV_MB_HOLDING, 1000 + i, DRV_MB_UINT16);
    }
    device_init(&d, "m2", "eastron-sdm630");
    d.regs = own;
    d.nregs = 30;
    assert_int_equal(drv_mb_device_resolve_in(lib, &d, &res, NULL, err, sizeof(err)), -1);
    assert_null(res.regs);
    assert_non_null(strstr(err, "device m2: profile \"eastron-sdm630\" has 41 fields and the "
                                "device adds 30: 71 in all, at most 64"));
    drv_mb_profiles_free(lib);
}

/* ---- reading profiles: errors with their position --------------------------- */

/* got matches want line by line; a want line ending in "..." matches any
 * line it starts (lists of keys and choices grow with the data model). */
static int lines_match(const char *got, const char *want)
{
    while (*want) {
        const char *we = strchr(want, '\n'), *ge = strchr(got, '\n');
        if (!we || !ge)
            return 0;
        size_t wl = (size_t)(we - want), gl = (size_t)(ge - got);
        if (wl >= 3 && !strncmp(we - 3, "...", 3)) {
            if (gl < wl - 3 || strncmp(got, want, wl - 3) != 0)
                return 0;
        } else if (wl != gl || strncmp(got, want, wl) != 0) {
            return 0;
        }
        want = we + 1;
        got = ge + 1;
    }
    return *got == '\0';
}

static void expect_parse(const char *text, const char *want)
{
    struct drv_mb_profile p;
    int rc = drv_mb_profile_parse("dir/t.yaml", text, strlen(text), &p);
    if (!want) {
        if (rc != 0)
            fprintf(stderr, "%s", p.errors);
        assert_int_equal(rc, 0);
    } else {
        if (!p.errors || !lines_match(p.errors, want))
            fprintf(stderr, "--- want:\n%s--- got:\n%s---\n", want, p.errors ? p.errors : "");
        assert_int_equal(rc, -1);
        assert_non_null(p.errors);
        assert_true(lines_match(p.errors, want));
    }
    assert_string_equal(p.name, "t");
    drv_mb_profile_clear(&p);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse("name: t\nregisters:\n  - {field: a, address: 0}\n", NULL);
    expect_parse("name: t\n"
                 "registers:\n"
                 "  - {field: a, address: 0}\n"
                 "  - {field: b, adress: 1}\n",
                 "dir/t.yaml:4:16: unknown key \"adress\" in registers[1] (keys: field, table, "
                 "address, type, ...\n"
                 "dir/t.yaml:4:5: missing required key \"address\" in registers[1]\n");
    expect_parse("name: t\n"
                 "registers:\n"
                 "  - {field: a, address: 0, type: float33}\n",
                 "dir/t.yaml:3:34: bad value \"float33\" for type: use one of uint16, int16, "
                 "...\n");
    expect_parse("name: other\nregisters:\n  - {field: a, address: 0}\n",
                 "dir/t.yaml:1:7: name \"other\" differs from the file's name (t.yaml): name the "
                 "file after the profile\n");
    expect_parse("name: t\n"
                 "description: x\n"
                 "registers:\n"
                 "  - {field: a, address: 0}\n"
                 "  - {field: a, address: 2}\n",
                 "dir/t.yaml:5:13: profile t: field a is defined twice (registers 1 and 2)\n");
    expect_parse("name: t\nregisters: [\n", "dir/t.yaml:3:1: did not find expected node content "
                                            "(while parsing a flow node at line 3)\n");
    expect_parse("name: t\nmax_gap: 500\n",
                 "dir/t.yaml:2:10: max_gap 500 is out of range (0..125)\n"
                 "dir/t.yaml:1:1: missing required key \"registers\" at the top level\n");
    expect_parse("", "dir/t.yaml:1:1: the file is empty; a profile is a mapping with name and "
                     "registers\n");
    expect_parse("name: t\nvendor:\nregisters: []\ncolour: red\n",
                 "dir/t.yaml:2:8: expected a string for vendor, got nothing\n"
                 "dir/t.yaml:3:12: registers is empty; list at least one\n"
                 "dir/t.yaml:4:1: unknown key \"colour\" at the top level (keys: name, "
                 "description, vendor, model, measurement, max_gap, max_registers, registers)\n");
}

/* ---- the site directory ------------------------------------------------------ */

static void test_site_dir(void **state)
{
    (void)state;
    const struct drv_mb_profiles *lib = drv_mb_profiles();
    assert_string_equal(lib->dir, site_dir);
    assert_int_equal(lib->dir_found, 1);
    assert_int_equal(lib->n, NSHIPPED + 2); /* + broken, + site-meter */

    const struct drv_mb_profile *p = drv_mb_profile_find(lib, "eastron-sdm120");
    assert_non_null(p);
    assert_int_equal(p->site, 1);
    assert_int_equal(p->replaces, 1);
    assert_int_equal(p->nerrors, 0);
    assert_string_equal(p->description, "site copy");
    assert_int_equal(p->nregs, 1);
    char want[600];
    snprintf(want, sizeof(want), "%s/eastron-sdm120.yaml", site_dir);
    assert_string_equal(p->file, want);

    p = drv_mb_profile_find(lib, "site-meter");
    assert_non_null(p);
    assert_int_equal(p->site, 1);
    assert_int_equal(p->replaces, 0);
    assert_int_equal(p->nerrors, 0);

    p = drv_mb_profile_find(lib, "eastron-sdm630");
    assert_int_equal(p->site, 0);

    p = drv_mb_profile_find(lib, "broken");
    assert_non_null(p);
    assert_int_equal(p->nerrors, 1);
    snprintf(want, sizeof(want), "%s/broken.yaml:4:25: bad integer \"0x1G\" for address\n",
             site_dir);
    assert_string_equal(p->errors, want);

    /* a device naming it is refused, with the error's position */
    struct drv_modbus_device d, res;
    char err[1024];
    device_init(&d, "b1", "broken");
    assert_int_equal(drv_modbus_device_resolve(&d, &res, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "device b1: profile \"broken\" has an error: %s/broken.yaml:4:25: bad integer "
             "\"0x1G\" for address",
             site_dir);
    assert_string_equal(err, want);

    /* the process's library is one, from any thread */
    assert_ptr_equal(drv_mb_profiles(), lib);
}

static void *get_lib(void *arg)
{
    (void)arg;
    return (void *)drv_mb_profiles();
}

static void test_library_once(void **state)
{
    (void)state;
    pthread_t t[4];
    void *got[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, get_lib, NULL), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &got[i]);
        assert_ptr_equal(got[i], drv_mb_profiles());
    }
}

/* ---- in a configuration ---------------------------------------------------- */

static struct ch_config *load(const char *text, char **out, unsigned *nerr)
{
    size_t len = 0;
    FILE *errs = open_memstream(out, &len);
    assert_non_null(errs);
    struct ch_config *c = ch_config_load_buffer("test.yaml", text, strlen(text), errs, nerr);
    fclose(errs);
    return c;
}

#define HEAD                                                                                       \
    "hub: {name: gw}\n"                                                                            \
    "buses:\n"                                                                                     \
    "  - {name: lan, type: tcp, host: 127.0.0.1}\n"                                                \
    "devices:\n"

static void expect_config_errors(const char *text, const char *want)
{
    char *got = NULL;
    unsigned n = 0;
    struct ch_config *c = load(text, &got, &n);
    if (c || strcmp(got, want) != 0)
        fprintf(stderr, "--- want:\n%s--- got:\n%s---\n", want, got);
    assert_null(c);
    assert_string_equal(got, want);
    free(got);
}

static void test_config_check(void **state)
{
    (void)state;
    expect_config_errors(HEAD "  - name: w1\n"
                              "    bus: lan\n"
                              "    profile: generic-wether\n",
                         "test.yaml:7:14: device w1: unknown profile \"generic-wether\" "
                         "(available: broken, eastron-sdm120, eastron-sdm630, "
                         "generic-air-quality, generic-traffic-counter, generic-water-level, "
                         "generic-weather, site-meter)\n");
    /* a device's own register at fault is named at its line */
    expect_config_errors(HEAD "  - name: w1\n"
                              "    bus: lan\n"
                              "    profile: generic-weather\n"
                              "    registers:\n"
                              "      - {field: extra, address: 1, scale: 0}\n",
                         "test.yaml:9:43: device w1: field extra: scale 0 would hide every "
                         "value\n");
    expect_config_errors(HEAD "  - name: w1\n"
                              "    bus: lan\n"
                              "    profile: generic-weather\n"
                              "    registers:\n"
                              "      - {field: extra, address: 1}\n"
                              "      - {field: extra, address: 2}\n",
                         "test.yaml:10:17: device w1: field extra is defined twice (registers 10 "
                         "and 11)\n");
    /* a broken profile: at the key, with the profile's own position */
    char want[1024];
    snprintf(want, sizeof(want),
             "test.yaml:7:14: device b: profile \"broken\" has an error: %s/broken.yaml:4:25: "
             "bad integer \"0x1G\" for address\n",
             site_dir);
    expect_config_errors(HEAD "  - name: b\n"
                              "    bus: lan\n"
                              "    profile: broken\n",
                         want);
    /* the other rules still apply to a device with a profile */
    expect_config_errors("hub: {name: gw}\n"
                         "buses:\n"
                         "  - {name: line, type: rtu, device: /dev/null}\n"
                         "devices:\n"
                         "  - {name: r, bus: line, unit: 0, profile: eastron-sdm630}\n",
                         "test.yaml:5:32: device \"r\": unit 0 is the broadcast address on a "
                         "serial bus; use 1..247\n");
    /* neither profile nor registers: as ever */
    expect_config_errors(HEAD "  - name: x\n    bus: lan\n",
                         "test.yaml:5:5: missing required key \"registers\" in devices[0]\n");
}

struct collected {
    char line[128][300];
    size_t n;
};

static void collect(void *arg, const struct drv_schema_field *f)
{
    struct collected *c = arg;
    char tags[128] = "";
    size_t off = 0;
    for (size_t i = 0; f->tags && f->tags[i]; i++)
        off += (size_t)snprintf(tags + off, sizeof(tags) - off, "%s%s", i ? "," : "", f->tags[i]);
    if (c->n < 128)
        snprintf(c->line[c->n++], sizeof(c->line[0]), "%s %s %s %s %s [%s] %s", f->source,
                 f->measurement, f->field, f->type, f->unit[0] ? f->unit : "-", tags,
                 f->description);
}

static void test_schema(void **state)
{
    (void)state;
    static const char text[] = HEAD "  - name: rain-1\n"
                                    "    bus: lan\n"
                                    "    profile: generic-weather\n"
                                    "    tags: {site: park, roof: north}\n"
                                    "    registers:\n"
                                    "      - {field: wind_direction, address: 4, type: int16, "
                                    "unit: deg}\n"
                                    "      - {field: battery, address: 20, scale: 0.01, unit: V}\n"
                                    "  - name: plain\n"
                                    "    bus: lan\n"
                                    "    registers: [{field: count, address: 0, type: uint32}]\n";
    char *errs = NULL;
    unsigned n = 0;
    struct ch_config *c = load(text, &errs, &n);
    if (!c)
        fprintf(stderr, "%s", errs);
    assert_non_null(c);
    free(errs);
    assert_ptr_equal(drv_modbus_ops.schema, drv_modbus_schema);
    struct collected *col = calloc(1, sizeof(*col));
    assert_non_null(col);
    for (size_t i = 0; i < c->ninputs; i++)
        if (c->inputs[i].ops == &drv_modbus_ops)
            drv_modbus_ops.schema(&c->inputs[i].cfg, collect, col);
    assert_int_equal(col->n, 9 + 1 + 1);
    assert_string_equal(col->line[0],
                        "rain-1 weather temperature float Cel [device,site,roof] air temperature");
    assert_string_equal(col->line[4],
                        "rain-1 weather wind_direction integer deg [device,site,roof] ");
    assert_string_equal(col->line[6], "rain-1 weather rain_total float mm [device,site,roof] "
                                      "precipitation since the counter was reset, cumulative");
    assert_string_equal(col->line[9], "rain-1 weather battery float V [device,site,roof] ");
    assert_string_equal(col->line[10], "plain modbus count unsigned - [device] ");
    free(col);
    ch_config_free(c);
}

int main(void)
{
    hub_log_set_level(HUB_LOG_ERROR);
    snprintf(site_dir, sizeof(site_dir), "/tmp/cityhub-profiles-test.XXXXXX");
    if (!mkdtemp(site_dir)) {
        perror("mkdtemp");
        return 1;
    }
    write_file(site_dir, "eastron-sdm120.yaml",
               "name: eastron-sdm120\n"
               "description: site copy\n"
               "measurement: energy\n"
               "registers:\n"
               "  - {field: voltage, table: input, address: 0, type: float32, unit: V}\n");
    write_file(site_dir, "site-meter.yaml",
               "name: site-meter\n"
               "registers:\n"
               "  - {field: v, address: 0}\n");
    write_file(site_dir, "broken.yaml",
               "name: broken\n"
               "registers:\n"
               "  - {field: a, address: 0}\n"
               "  - {field: b, address: 0x1G}\n");
    write_file(site_dir, "README", "not a profile: ignored\n");
    write_file(site_dir, ".hidden.yaml", "ignored\n");
    setenv(DRV_MB_PROFILE_ENV, site_dir, 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_profiles_load),
        cmocka_unit_test(test_shipped_registers),
        cmocka_unit_test(test_override),
        cmocka_unit_test(test_unknown_and_too_many),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_site_dir),
        cmocka_unit_test(test_library_once),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_schema),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    static const char *const files[] = {"eastron-sdm120.yaml", "site-meter.yaml", "broken.yaml",
                                        "README", ".hidden.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", site_dir, files[i]);
        unlink(path);
    }
    rmdir(site_dir);
    return rc;
}
