/* tests/unit/test_drv_modbus.c — the Modbus input: decoding of every type and
 * byte order, read planning, device checks, errno classification, key
 * tables, and the poller itself against a real libmodbus server on
 * loopback (a thread of this test). */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <modbus.h>

#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/modbus_priv.h"
#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/config_map.h"
#include "hub/log.h"
#include "hub/reading.h"

/* ---- helpers ------------------------------------------------------------ */

static struct drv_modbus_register mkreg(const char *field, int table, int64_t addr, int type,
                                        int order, double scale)
{
    struct drv_modbus_register r;
    memset(&r, 0, sizeof(r));
    r.bit = -1; /* none */
    snprintf(r.field, sizeof(r.field), "%s", field);
    r.table = table;
    r.address = addr;
    r.type = type;
    r.order = order;
    r.scale = scale;
    return r;
}

/* Decode one register into a fresh reading; returns the rc and the field (a
 * copy of its value) in *f when rc is HUB_OK. */
static int decode1(int type, int order, double scale, uint16_t w0, uint16_t w1, struct hub_field *f)
{
    struct drv_modbus_register reg = mkreg("v", DRV_MB_HOLDING, 0, type, order, scale);
    uint16_t words[2] = {w0, w1};
    hub_reading_t *r = hub_reading_new("m", 1);
    assert_non_null(r);
    int rc = drv_modbus_decode(&reg, words, r);
    if (rc == HUB_OK) {
        assert_int_equal(hub_reading_field_count(r), 1);
        *f = *hub_reading_field(r, 0);
        f->key = NULL; /* freed with r */
    } else {
        assert_int_equal(hub_reading_field_count(r), 0);
    }
    hub_reading_free(r);
    return rc;
}

/* The four wire layouts of the 32-bit value 0xAABBCCDD (bytes A B C D). */
static void layout32(uint32_t v, int order, uint16_t *w0, uint16_t *w1)
{
    uint8_t a = (uint8_t)(v >> 24), b = (uint8_t)(v >> 16), c = (uint8_t)(v >> 8), d = (uint8_t)v;
    switch (order) {
    case DRV_MB_ABCD:
        *w0 = (uint16_t)(a << 8 | b);
        *w1 = (uint16_t)(c << 8 | d);
        break;
    case DRV_MB_CDAB:
        *w0 = (uint16_t)(c << 8 | d);
        *w1 = (uint16_t)(a << 8 | b);
        break;
    case DRV_MB_BADC:
        *w0 = (uint16_t)(b << 8 | a);
        *w1 = (uint16_t)(d << 8 | c);
        break;
    default:
        *w0 = (uint16_t)(d << 8 | c);
        *w1 = (uint16_t)(b << 8 | a);
        break;
    }
}

/* ---- decode ------------------------------------------------------------- */

static void test_width(void **state)
{
    (void)state;
    assert_int_equal(drv_modbus_type_width(DRV_MB_UINT16), 1);
    assert_int_equal(drv_modbus_type_width(DRV_MB_INT16), 1);
    assert_int_equal(drv_modbus_type_width(DRV_MB_UINT32), 2);
    assert_int_equal(drv_modbus_type_width(DRV_MB_INT32), 2);
    assert_int_equal(drv_modbus_type_width(DRV_MB_FLOAT32), 2);
}

static void test_decode_float_pi_every_order(void **state)
{
    (void)state;
    /* 0x40490FDB = 3.14159274101257324 as an IEEE-754 single */
    const uint16_t wire[4][2] = {
        {0x4049, 0x0FDB}, /* ABCD */
        {0x0FDB, 0x4049}, /* CDAB */
        {0x4940, 0xDB0F}, /* BADC */
        {0xDB0F, 0x4940}, /* DCBA */
    };
    for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
        struct hub_field f;
        assert_int_equal(decode1(DRV_MB_FLOAT32, o, 1.0, wire[o][0], wire[o][1], &f), HUB_OK);
        assert_int_equal(f.type, HUB_FIELD_FLOAT);
        assert_true(f.v.f == 3.1415927); /* the float32's shortest decimal */
    }
}

static void test_decode_u32_every_order(void **state)
{
    (void)state;
    for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
        uint16_t w0, w1;
        struct hub_field f;
        layout32(0x89ABCDEFu, o, &w0, &w1);
        assert_int_equal(decode1(DRV_MB_UINT32, o, 1.0, w0, w1, &f), HUB_OK);
        assert_int_equal(f.type, HUB_FIELD_UINT);
        assert_int_equal(f.v.u, 0x89ABCDEFu);

        layout32(0x89ABCDEFu, o, &w0, &w1);
        assert_int_equal(decode1(DRV_MB_INT32, o, 1.0, w0, w1, &f), HUB_OK);
        assert_int_equal(f.type, HUB_FIELD_INT);
        assert_int_equal(f.v.i, (int64_t)(int32_t)0x89ABCDEFu); /* -1985229329 */
        assert_int_equal(f.v.i, -1985229329);

        layout32((uint32_t)-123456, o, &w0, &w1);
        assert_int_equal(decode1(DRV_MB_INT32, o, 1.0, w0, w1, &f), HUB_OK);
        assert_int_equal(f.v.i, -123456);
    }
    /* exact layouts, written out once */
    struct hub_field f;
    assert_int_equal(decode1(DRV_MB_UINT32, DRV_MB_CDAB, 1.0, 0xCDEF, 0x89AB, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x89ABCDEFu);
    assert_int_equal(decode1(DRV_MB_UINT32, DRV_MB_BADC, 1.0, 0xAB89, 0xEFCD, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x89ABCDEFu);
    assert_int_equal(decode1(DRV_MB_UINT32, DRV_MB_DCBA, 1.0, 0xEFCD, 0xAB89, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x89ABCDEFu);
}

static void test_decode_limits(void **state)
{
    (void)state;
    struct hub_field f;
    assert_int_equal(decode1(DRV_MB_INT32, DRV_MB_ABCD, 1.0, 0x8000, 0x0000, &f), HUB_OK);
    assert_int_equal(f.v.i, INT32_MIN);
    assert_int_equal(decode1(DRV_MB_INT32, DRV_MB_ABCD, 1.0, 0x7FFF, 0xFFFF, &f), HUB_OK);
    assert_int_equal(f.v.i, INT32_MAX);
    assert_int_equal(decode1(DRV_MB_UINT32, DRV_MB_ABCD, 1.0, 0xFFFF, 0xFFFF, &f), HUB_OK);
    assert_int_equal(f.v.u, UINT32_MAX);
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_ABCD, 1.0, 0xFFFF, 0, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_UINT);
    assert_int_equal(f.v.u, 65535);
}

/* 16-bit values: ABCD and CDAB take the register as is, BADC and DCBA swap
 * its bytes. */
static void test_decode_16bit_orders(void **state)
{
    (void)state;
    struct hub_field f;
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_ABCD, 1.0, 0x1234, 0, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x1234);
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_CDAB, 1.0, 0x1234, 0, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x1234);
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_BADC, 1.0, 0x1234, 0, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x3412);
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_DCBA, 1.0, 0x1234, 0, &f), HUB_OK);
    assert_int_equal(f.v.u, 0x3412);

    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_ABCD, 1.0, 0xFFFF, 0, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_INT);
    assert_int_equal(f.v.i, -1);
    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_ABCD, 1.0, 0xFFFE, 0, &f), HUB_OK);
    assert_int_equal(f.v.i, -2);
    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_CDAB, 1.0, 0x8000, 0, &f), HUB_OK);
    assert_int_equal(f.v.i, -32768);
    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_BADC, 1.0, 0xFEFF, 0, &f), HUB_OK);
    assert_int_equal(f.v.i, -2); /* 0xFEFF swapped = 0xFFFE */
    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_DCBA, 1.0, 0x0080, 0, &f), HUB_OK);
    assert_int_equal(f.v.i, -32768);
}

static void test_decode_scale(void **state)
{
    (void)state;
    struct hub_field f;
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_ABCD, 0.1, 235, 0, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_FLOAT);
    assert_true(f.v.f == 23.5);
    /* 1/N scales divide: the nearest double to the decimal the sensor meant */
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_ABCD, 0.1, 479, 0, &f), HUB_OK);
    assert_true(f.v.f == 47.9);
    assert_true(479 * 0.1 != 47.9); /* what plain multiplication would give */
    assert_int_equal(decode1(DRV_MB_UINT16, DRV_MB_ABCD, 0.001, 1234, 0, &f), HUB_OK);
    assert_true(f.v.f == 1.234);
    assert_int_equal(decode1(DRV_MB_INT16, DRV_MB_ABCD, 0.01, 0xFFFE, 0, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_FLOAT);
    assert_true(f.v.f == -0.02);
    assert_int_equal(decode1(DRV_MB_UINT32, DRV_MB_CDAB, 10.0, 0x0001, 0x0000, &f), HUB_OK);
    assert_true(f.v.f == 10.0);
    assert_int_equal(decode1(DRV_MB_INT32, DRV_MB_ABCD, 0.5, 0xFFFF, 0xFFFF, &f), HUB_OK);
    assert_true(f.v.f == -0.5);
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_ABCD, 2.0, 0x4049, 0x0FDB, &f), HUB_OK);
    assert_true(f.v.f == 2.0 * 3.1415927); /* its shortest decimal, scaled */
}

static void test_decode_refuses_nan_and_inf(void **state)
{
    (void)state;
    struct hub_field f;
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_ABCD, 1.0, 0x7FC0, 0x0000, &f), HUB_EINVAL);
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_ABCD, 1.0, 0xFFFF, 0xFFFF, &f), HUB_EINVAL);
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_CDAB, 1.0, 0x0000, 0x7F80, &f), HUB_EINVAL);
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_DCBA, 1.0, 0x0000, 0x80FF, &f), HUB_EINVAL);
    /* FLT_MAX * 1e300 is infinite: refused, not written */
    assert_int_equal(decode1(DRV_MB_FLOAT32, DRV_MB_ABCD, 1e300, 0x7F7F, 0xFFFF, &f), HUB_EINVAL);
    /* bad type / order */
    assert_int_equal(decode1(42, DRV_MB_ABCD, 1.0, 0, 0, &f), HUB_EINVAL);
    assert_int_equal(decode1(DRV_MB_UINT16, 9, 1.0, 0, 0, &f), HUB_EINVAL);
}

/* ---- plan --------------------------------------------------------------- */

/* A device and room for its registers in one block: free(d) frees both. */
struct dev_block {
    struct drv_modbus_device d;
    struct drv_modbus_register regs[DRV_MB_MAX_REGISTERS];
};

/* What a bus gets from the program: a sink, and the status interval. */
#define ENV(s) (&(struct drv_env){.sink = (s), .status_interval_ns = 60 * HUB_NS_PER_S})

static struct drv_modbus_device *mkdev(void)
{
    struct dev_block *blk = calloc(1, sizeof(*blk));
    assert_non_null(blk);
    struct drv_modbus_device *d = &blk->d;
    d->regs = blk->regs;
    snprintf(d->name, sizeof(d->name), "dev");
    snprintf(d->measurement, sizeof(d->measurement), "modbus");
    d->unit = 1;
    d->interval_ns = HUB_NS_PER_S;
    d->max_gap = -1; /* not set, as the loader leaves them */
    d->max_registers = -1;
    return d;
}

static void add(struct drv_modbus_device *d, const char *field, int table, int64_t addr, int type)
{
    d->regs[d->nregs++] = mkreg(field, table, addr, type, DRV_MB_ABCD, 1.0);
}

static void test_plan_contiguous(void **state)
{
    (void)state;
    struct drv_modbus_device *d = mkdev();
    struct drv_modbus_block b[8];
    add(d, "c", DRV_MB_HOLDING, 3, DRV_MB_FLOAT32); /* 3-4 */
    add(d, "a", DRV_MB_HOLDING, 0, DRV_MB_UINT16);  /* 0 */
    add(d, "b", DRV_MB_HOLDING, 1, DRV_MB_UINT32);  /* 1-2 */
    add(d, "o", DRV_MB_HOLDING, 4, DRV_MB_UINT16);  /* overlaps c */
    assert_int_equal(drv_modbus_plan(d, 0, b, 8), 1);
    assert_int_equal(b[0].table, DRV_MB_HOLDING);
    assert_int_equal(b[0].address, 0);
    assert_int_equal(b[0].count, 5);
    free(d);
}

static void test_plan_gap(void **state)
{
    (void)state;
    struct drv_modbus_device *d = mkdev();
    struct drv_modbus_block b[8];
    add(d, "a", DRV_MB_HOLDING, 10, DRV_MB_UINT16);
    add(d, "b", DRV_MB_HOLDING, 14, DRV_MB_UINT32); /* gap of 3: 11, 12, 13 */
    assert_int_equal(drv_modbus_plan(d, 3, b, 8), 1);
    assert_int_equal(b[0].address, 10);
    assert_int_equal(b[0].count, 6);
    assert_int_equal(drv_modbus_plan(d, 2, b, 8), 2);
    assert_int_equal(b[0].address, 10);
    assert_int_equal(b[0].count, 1);
    assert_int_equal(b[1].address, 14);
    assert_int_equal(b[1].count, 2);
    free(d);
}

static void test_plan_tables(void **state)
{
    (void)state;
    struct drv_modbus_device *d = mkdev();
    struct drv_modbus_block b[8];
    add(d, "h1", DRV_MB_HOLDING, 1, DRV_MB_UINT16);
    add(d, "i0", DRV_MB_INPUT, 0, DRV_MB_UINT16);
    add(d, "h0", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    add(d, "i1", DRV_MB_INPUT, 1, DRV_MB_FLOAT32);
    assert_int_equal(drv_modbus_plan(d, 10, b, 8), 2);
    assert_int_equal(b[0].table, DRV_MB_HOLDING);
    assert_int_equal(b[0].address, 0);
    assert_int_equal(b[0].count, 2);
    assert_int_equal(b[1].table, DRV_MB_INPUT);
    assert_int_equal(b[1].address, 0);
    assert_int_equal(b[1].count, 3);
    free(d);
}

static void test_plan_split_125(void **state)
{
    (void)state;
    struct drv_modbus_device *d = mkdev();
    struct drv_modbus_block b[8];
    add(d, "first", DRV_MB_INPUT, 100, DRV_MB_UINT16);
    add(d, "last_in", DRV_MB_INPUT, 223, DRV_MB_UINT32); /* 223-224: ends at 125 regs */
    add(d, "next", DRV_MB_INPUT, 225, DRV_MB_UINT16);    /* 126th: new request */
    assert_int_equal(drv_modbus_plan(d, 200, b, 8), 2);
    assert_int_equal(b[0].address, 100);
    assert_int_equal(b[0].count, 125);
    assert_int_equal(b[1].address, 225);
    assert_int_equal(b[1].count, 1);
    /* a 32-bit value that would straddle the limit starts a new request */
    d->regs[1].address = 224; /* 224-225 would make 126 */
    assert_int_equal(drv_modbus_plan(d, 200, b, 8), 2);
    assert_int_equal(b[0].count, 1);
    assert_int_equal(b[1].address, 224);
    assert_int_equal(b[1].count, 2);
    free(d);
}

static void test_plan_overflow(void **state)
{
    (void)state;
    struct drv_modbus_device *d = mkdev();
    struct drv_modbus_block b[8];
    add(d, "ok", DRV_MB_HOLDING, 65535, DRV_MB_UINT16);
    assert_int_equal(drv_modbus_plan(d, 0, b, 8), 1);
    assert_int_equal(b[0].address, 65535);
    assert_int_equal(b[0].count, 1);
    add(d, "bad", DRV_MB_HOLDING, 65535, DRV_MB_FLOAT32);
    assert_int_equal(drv_modbus_plan(d, 0, b, 8), -1);
    /* more blocks than room */
    d->nregs = 0;
    add(d, "a", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    add(d, "b", DRV_MB_HOLDING, 10, DRV_MB_UINT16);
    assert_int_equal(drv_modbus_plan(d, 0, b, 1), -1);
    free(d);
}

/* ---- checks, errors, keys ----------------------------------------------- */

static void test_check_device(void **state)
{
    (void)state;
    char err[256];
    struct drv_modbus_device *d = mkdev();
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no registers"));
    add(d, "ok", DRV_MB_HOLDING, 0, DRV_MB_UINT16);    /* allowed: other measurement */
    add(d, "error", DRV_MB_HOLDING, 1, DRV_MB_UINT16); /* allowed */
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), 0);
    add(d, "ok", DRV_MB_INPUT, 5, DRV_MB_UINT16);
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), -1);
    assert_string_equal(err, "device dev: field ok is defined twice (registers 1 and 3)");
    d->nregs = 2;
    add(d, "far", DRV_MB_HOLDING, 65535, DRV_MB_INT32);
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), -1);
    assert_string_equal(err, "device dev: field far: address 65535 + 2 registers is past 65535");
    d->regs[2].address = 65534;
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), 0);
    char terr[128];
    assert_int_equal(hub_cfg_tags_add(&d->tags, "device", "x", terr, sizeof(terr)), 0);
    assert_int_equal(drv_modbus_check_device(d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "reserved"));
    hub_cfg_tags_free(&d->tags);
    free(d);
}

static void test_classify(void **state)
{
    (void)state;
    char m[128];
    assert_int_equal(drv_modbus_classify(ETIMEDOUT, m, sizeof(m)), DRV_MB_FAIL_TIMEOUT);
    assert_string_equal(m, "timeout");
    assert_int_equal(drv_modbus_classify(EMBXILADD, m, sizeof(m)), DRV_MB_FAIL_EXCEPTION);
    assert_string_equal(m, "exception 2 (illegal data address)");
    assert_int_equal(drv_modbus_classify(EMBXGTAR, m, sizeof(m)), DRV_MB_FAIL_EXCEPTION);
    assert_string_equal(m, "exception 11 (gateway target failed to respond)");
    assert_int_equal(drv_modbus_classify(EMBXILFUN, m, sizeof(m)), DRV_MB_FAIL_EXCEPTION);
    assert_string_equal(m, "exception 1 (illegal function)");
    int bad[] = {EMBBADDATA, EMBBADCRC, EMBMDATA, EMBBADEXC, EMBUNKEXC, EMBBADSLAVE};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(drv_modbus_classify(bad[i], m, sizeof(m)), DRV_MB_FAIL_BAD_REPLY);
        assert_memory_equal(m, "bad reply", 9);
    }
    assert_int_equal(drv_modbus_classify(ECONNRESET, m, sizeof(m)), DRV_MB_FAIL_CONNECTION);
    assert_memory_equal(m, "connection lost: ", 17);
    assert_int_equal(drv_modbus_classify(EPIPE, m, sizeof(m)), DRV_MB_FAIL_CONNECTION);
}

static void test_keys(void **state)
{
    (void)state;
    struct drv_modbus_bus bus;
    struct drv_modbus_device *dev = mkdev();
    struct drv_modbus_register reg;
    memset(&bus, 0, sizeof(bus));
    memset(dev, 0, sizeof(*dev));
    memset(&reg, 0, sizeof(reg));
    assert_int_equal(hub_cfg_defaults(drv_modbus_bus_keys, &bus), 0);
    assert_int_equal(bus.port, 502);
    assert_int_equal(bus.timeout_ns, HUB_NS_PER_S);
    assert_int_equal(bus.baud, 9600);
    assert_int_equal(bus.parity, 0);
    assert_int_equal(bus.data_bits, 8);
    assert_int_equal(bus.stop_bits, 1);
    assert_int_equal(bus.pause_ns, 5 * HUB_NS_PER_MS);
    assert_int_equal(hub_cfg_defaults(drv_modbus_device_keys, dev), 0);
    assert_int_equal(dev->unit, 1);
    assert_int_equal(dev->interval_ns, 10 * HUB_NS_PER_S);
    assert_string_equal(dev->measurement, "modbus");
    reg.scale = 0;
    assert_int_equal(hub_cfg_defaults(drv_modbus_register_keys, &reg), 0);
    assert_true(reg.scale == 1.0);
    assert_int_equal(reg.table, DRV_MB_HOLDING);
    assert_int_equal(reg.type, DRV_MB_UINT16);
    assert_int_equal(reg.order, DRV_MB_ABCD);

    /* enum choices follow the header's enums */
    char err[256];
    const struct hub_cfg_key *k = hub_cfg_find(drv_modbus_register_keys, "type");
    assert_non_null(k);
    assert_int_equal(hub_cfg_set(k, &reg, "float32", err, sizeof(err)), 0);
    assert_int_equal(reg.type, DRV_MB_FLOAT32);
    assert_int_equal(hub_cfg_set(k, &reg, "int16", err, sizeof(err)), 0);
    assert_int_equal(reg.type, DRV_MB_INT16);
    k = hub_cfg_find(drv_modbus_register_keys, "order");
    assert_int_equal(hub_cfg_set(k, &reg, "BADC", err, sizeof(err)), 0);
    assert_int_equal(reg.order, DRV_MB_BADC);
    k = hub_cfg_find(drv_modbus_register_keys, "table");
    assert_int_equal(hub_cfg_set(k, &reg, "input", err, sizeof(err)), 0);
    assert_int_equal(reg.table, DRV_MB_INPUT);
    k = hub_cfg_find(drv_modbus_register_keys, "address");
    assert_int_equal(hub_cfg_set(k, &reg, "65536", err, sizeof(err)), -1);
    assert_int_equal(hub_cfg_set(k, &reg, "65535", err, sizeof(err)), 0);
    assert_int_equal(reg.address, 65535);
    k = hub_cfg_find(drv_modbus_bus_keys, "type");
    assert_int_equal(hub_cfg_set(k, &bus, "rtu", err, sizeof(err)), 0);
    assert_int_equal(bus.type, DRV_MB_BUS_RTU);
    k = hub_cfg_find(drv_modbus_bus_keys, "parity");
    assert_int_equal(hub_cfg_set(k, &bus, "O", err, sizeof(err)), 0);
    assert_int_equal(bus.parity, 2);
    k = hub_cfg_find(drv_modbus_device_keys, "unit");
    assert_int_equal(hub_cfg_set(k, dev, "248", err, sizeof(err)), -1);
    k = hub_cfg_find(drv_modbus_device_keys, "interval");
    assert_int_equal(hub_cfg_set(k, dev, "5ms", err, sizeof(err)), -1);
    assert_non_null(hub_cfg_find(drv_modbus_device_keys, "profile"));
    assert_non_null(hub_cfg_find(drv_modbus_device_keys, "registers"));
    assert_non_null(hub_cfg_find(drv_modbus_device_keys, "tags"));
    assert_null(hub_cfg_find(drv_modbus_device_keys, "nope"));
    free(dev);
}

/* ---- the poller against a real server ------------------------------------ */

/* A libmodbus TCP server thread on 127.0.0.1: unit 1 answers from a mapping,
 * unit 9 never answers, unit 7 answers a float NaN at holding 0-1, unit 8
 * answers from the mapping after late_ms (while it waits it serves no one),
 * unit 6 answers every other request with exception 6 (busy). */
struct server {
    modbus_t *ctx;
    modbus_mapping_t *map, *nanmap;
    int listen_fd;
    int port;
    atomic_int stop;
    atomic_int requests;
    atomic_int late_ms;
    atomic_int flap; /* requests to unit 6: every other one gets exception 4 (busy, 6, would be
                        asked again) */
    pthread_t thread;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    int client = -1;
    while (!atomic_load(&s->stop)) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(s->listen_fd, &rd);
        int maxfd = s->listen_fd;
        if (client >= 0) {
            FD_SET(client, &rd);
            if (client > maxfd)
                maxfd = client;
        }
        struct timeval tv = {0, 20000};
        if (select(maxfd + 1, &rd, NULL, NULL, &tv) <= 0)
            continue;
        if (FD_ISSET(s->listen_fd, &rd)) {
            int fd = accept(s->listen_fd, NULL, NULL);
            if (fd >= 0) {
                if (client >= 0)
                    close(client);
                client = fd;
            }
            continue;
        }
        if (client >= 0 && FD_ISSET(client, &rd)) {
            modbus_set_socket(s->ctx, client);
            int n = modbus_receive(s->ctx, q);
            if (n < 0) {
                close(client);
                client = -1;
                continue;
            }
            if (n == 0)
                continue;
            atomic_fetch_add(&s->requests, 1);
            int unit = q[6];
            if (unit == 9)
                continue;
            if (unit == 6 && atomic_fetch_add(&s->flap, 1) % 2 == 0) {
                modbus_reply_exception(s->ctx, q, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
                continue;
            }
            if (unit == 8) {
                int ms = atomic_load(&s->late_ms);
                struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            modbus_reply(s->ctx, q, n, unit == 7 ? s->nanmap : s->map);
        }
    }
    if (client >= 0)
        close(client);
    return NULL;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    s->ctx = modbus_new_tcp("127.0.0.1", 0);
    assert_non_null(s->ctx);
    s->map = modbus_mapping_new(0, 0, 30, 4);
    s->nanmap = modbus_mapping_new(0, 0, 4, 0);
    assert_non_null(s->map);
    assert_non_null(s->nanmap);
    uint16_t *h = s->map->tab_registers;
    h[0] = 0x1234;
    h[1] = 0xFFFE;
    h[2] = 0x89AB, h[3] = 0xCDEF;
    h[6] = 0x4049, h[7] = 0x0FDB;
    h[8] = 0x0FDB, h[9] = 0x4049;
    h[20] = 235;
    s->map->tab_input_registers[0] = 77;
    s->nanmap->tab_registers[0] = 0x7FC0; /* NaN */
    s->nanmap->tab_registers[2] = 42;
    s->listen_fd = modbus_tcp_listen(s->ctx, 4);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    modbus_mapping_free(s->map);
    modbus_mapping_free(s->nanmap);
    modbus_free(s->ctx);
}

/* A sink that keeps what it is given. */
#define SINK_MAX 256
struct collect {
    pthread_mutex_t lock;
    hub_reading_t *r[SINK_MAX];
    size_t n;
};

static int collect_emit(void *ctx, hub_reading_t *r)
{
    struct collect *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (c->n < SINK_MAX) {
        c->r[c->n++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    hub_reading_free(r);
    return r ? HUB_EFULL : HUB_OK;
}

static size_t collect_count(struct collect *c, const char *measurement)
{
    size_t k = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(hub_reading_measurement(c->r[i]), measurement) == 0)
            k++;
    pthread_mutex_unlock(&c->lock);
    return k;
}

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        hub_reading_free(c->r[i]);
    c->n = 0;
}

static const struct hub_field *field(const hub_reading_t *r, const char *key)
{
    for (size_t i = 0; i < hub_reading_field_count(r); i++)
        if (strcmp(hub_reading_field(r, i)->key, key) == 0)
            return hub_reading_field(r, i);
    return NULL;
}

struct runner {
    void *ctx;
    pthread_t thread;
};

static void *run_main(void *arg)
{
    struct runner *rn = arg;
    drv_modbus_bus_run(rn->ctx);
    return NULL;
}

/* Run the input until want readings of measurement m arrived (or 10 s). */
static void run_until(void *ctx, struct collect *col, const char *m, size_t want)
{
    struct runner rn = {ctx, 0};
    assert_int_equal(pthread_create(&rn.thread, NULL, run_main, &rn), 0);
    int64_t deadline = hub_mono_ns() + 10 * HUB_NS_PER_S;
    while (collect_count(col, m) < want && hub_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int64_t t0 = hub_mono_ns();
    drv_modbus_bus_stop(ctx);
    pthread_join(rn.thread, NULL);
    /* stop is seen within a timeout at worst */
    assert_true(hub_mono_ns() - t0 < 2 * HUB_NS_PER_S);
    assert_true(collect_count(col, m) >= want);
}

static void setup_bus(struct drv_modbus_bus *bus, int port, int64_t timeout_ns)
{
    memset(bus, 0, sizeof(*bus));
    hub_cfg_defaults(drv_modbus_bus_keys, bus);
    snprintf(bus->name, sizeof(bus->name), "lan");
    bus->type = DRV_MB_BUS_TCP;
    snprintf(bus->host, sizeof(bus->host), "127.0.0.1");
    bus->port = port;
    bus->timeout_ns = timeout_ns;
}

static void test_poll_ok(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    struct drv_modbus_bus bus;
    setup_bus(&bus, srv.port, 500 * HUB_NS_PER_MS);
    struct drv_modbus_device *d = mkdev();
    snprintf(d->name, sizeof(d->name), "sim-1");
    snprintf(d->measurement, sizeof(d->measurement), "lab");
    d->interval_ns = 50 * HUB_NS_PER_MS;
    char terr[128];
    assert_int_equal(hub_cfg_tags_add(&d->tags, "room", "b12", terr, sizeof(terr)), 0);
    d->regs[d->nregs++] = mkreg("u16", DRV_MB_HOLDING, 0, DRV_MB_UINT16, DRV_MB_ABCD, 1);
    d->regs[d->nregs++] = mkreg("i16", DRV_MB_HOLDING, 1, DRV_MB_INT16, DRV_MB_ABCD, 1);
    d->regs[d->nregs++] = mkreg("u32", DRV_MB_HOLDING, 2, DRV_MB_UINT32, DRV_MB_ABCD, 1);
    d->regs[d->nregs++] = mkreg("pi", DRV_MB_HOLDING, 6, DRV_MB_FLOAT32, DRV_MB_ABCD, 1);
    d->regs[d->nregs++] = mkreg("pi_cdab", DRV_MB_HOLDING, 8, DRV_MB_FLOAT32, DRV_MB_CDAB, 1);
    d->regs[d->nregs++] = mkreg("temp", DRV_MB_HOLDING, 20, DRV_MB_UINT16, DRV_MB_ABCD, 0.1);
    d->regs[d->nregs++] = mkreg("count", DRV_MB_INPUT, 0, DRV_MB_UINT16, DRV_MB_ABCD, 1);

    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    char err[256];
    int64_t before = hub_time_ns();
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    hub_cfg_tags_free(&d->tags);
    free(d); /* init copied it */
    run_until(ctx, &col, "lab", 3);
    drv_modbus_bus_free(ctx);
    server_stop(&srv);

    hub_reading_t *r = NULL, *st = NULL;
    for (size_t i = 0; i < col.n; i++) {
        if (!r && strcmp(hub_reading_measurement(col.r[i]), "lab") == 0)
            r = col.r[i];
        if (!st && strcmp(hub_reading_measurement(col.r[i]), "cityhub_device") == 0)
            st = col.r[i];
    }
    assert_non_null(r);
    assert_true(hub_reading_time(r) >= before);
    assert_int_equal(hub_reading_tag_count(r), 2);
    assert_string_equal(hub_reading_tag_value(r, "device"), "sim-1");
    assert_string_equal(hub_reading_tag_value(r, "room"), "b12");
    assert_int_equal(hub_reading_field_count(r), 7);
    assert_int_equal(field(r, "u16")->v.u, 0x1234);
    assert_int_equal(field(r, "i16")->v.i, -2);
    assert_int_equal(field(r, "u32")->v.u, 0x89ABCDEFu);
    assert_true(field(r, "pi")->v.f == 3.1415927);
    assert_true(field(r, "pi_cdab")->v.f == 3.1415927);
    assert_true(field(r, "temp")->v.f == 235 * 0.1);
    assert_int_equal(field(r, "count")->v.u, 77);

    /* the first good poll announces the device: ok, no error field */
    assert_non_null(st);
    assert_string_equal(hub_reading_tag_value(st, "device"), "sim-1");
    assert_string_equal(hub_reading_tag_value(st, "bus"), "lan");
    assert_int_equal(field(st, "ok")->type, HUB_FIELD_BOOL);
    assert_true(field(st, "ok")->v.b);
    assert_int_equal(field(st, "polls")->v.u, 1);
    assert_int_equal(field(st, "errors")->v.u, 0);
    assert_null(field(st, "error"));
    assert_non_null(field(st, "latency_ms"));
    /* one status point only: no failures, not 60 s yet */
    assert_int_equal(collect_count(&col, "cityhub_device"), 1);
    collect_free(&col);
}

/* A dead unit times out, a NaN-only device fails with "no valid values",
 * a bad address gets exception 2; a good device on the same bus keeps its
 * schedule. */
static void test_poll_failures(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    struct drv_modbus_bus bus;
    setup_bus(&bus, srv.port, 100 * HUB_NS_PER_MS);
    struct drv_modbus_device *dead = mkdev(), *nan = mkdev(), *exc = mkdev(), *good = mkdev();
    snprintf(dead->name, sizeof(dead->name), "dead");
    dead->unit = 9;
    dead->interval_ns = 50 * HUB_NS_PER_MS;
    add(dead, "x", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    snprintf(nan->name, sizeof(nan->name), "nan");
    nan->unit = 7;
    nan->interval_ns = 50 * HUB_NS_PER_MS;
    nan->regs[nan->nregs++] = mkreg("f", DRV_MB_HOLDING, 0, DRV_MB_FLOAT32, DRV_MB_ABCD, 1);
    snprintf(exc->name, sizeof(exc->name), "exc");
    exc->interval_ns = 50 * HUB_NS_PER_MS;
    add(exc, "far", DRV_MB_HOLDING, 100, DRV_MB_UINT16);
    snprintf(good->name, sizeof(good->name), "good");
    snprintf(good->measurement, sizeof(good->measurement), "lab");
    good->interval_ns = 50 * HUB_NS_PER_MS;
    add(good, "u16", DRV_MB_HOLDING, 0, DRV_MB_UINT16);

    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {
        .bus = &bus, .devices = {dead, nan, exc, good}, .ndevices = 4};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    free(dead);
    free(nan);
    free(exc);
    free(good);
    run_until(ctx, &col, "lab", 5);
    drv_modbus_bus_free(ctx);
    server_stop(&srv);

    int seen_timeout = 0, seen_nan = 0, seen_exc = 0;
    for (size_t i = 0; i < col.n; i++) {
        hub_reading_t *r = col.r[i];
        const char *m = hub_reading_measurement(r);
        const char *dev = hub_reading_tag_value(r, "device");
        if (strcmp(m, "lab") == 0) {
            assert_string_equal(dev, "good");
            assert_int_equal(field(r, "u16")->v.u, 0x1234);
            continue;
        }
        /* no data reading from a failing device */
        assert_string_equal(m, "cityhub_device");
        if (strcmp(dev, "good") == 0)
            continue;
        assert_false(field(r, "ok")->v.b);
        assert_int_equal(field(r, "errors")->v.u, field(r, "polls")->v.u);
        const char *e = field(r, "error")->v.s;
        if (strcmp(dev, "dead") == 0) {
            assert_string_equal(e, "timeout reading holding 0..0");
            assert_int_equal(field(r, "timeouts")->v.u, field(r, "errors")->v.u);
            seen_timeout++;
        } else if (strcmp(dev, "nan") == 0) {
            assert_string_equal(e, "no valid values");
            assert_int_equal(field(r, "timeouts")->v.u, 0);
            seen_nan++;
        } else {
            assert_string_equal(dev, "exc");
            assert_string_equal(e, "exception 2 (illegal data address) reading holding 100..100");
            assert_int_equal(field(r, "exceptions")->v.u, field(r, "errors")->v.u);
            seen_exc++;
        }
    }
    assert_true(seen_timeout >= 1);
    assert_true(seen_nan >= 1);
    assert_true(seen_exc >= 1);
    collect_free(&col);
}

/* Nobody listens: every poll fails with "connection lost", the bus backs
 * off its reconnects, and stop is still quick. */
static void test_poll_no_server(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    close(fd); /* a port with nobody behind it */

    struct drv_modbus_bus bus;
    setup_bus(&bus, port, 200 * HUB_NS_PER_MS);
    struct drv_modbus_device *d = mkdev();
    d->interval_ns = 20 * HUB_NS_PER_MS;
    add(d, "x", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    free(d);
    run_until(ctx, &col, "cityhub_device", 2);
    drv_modbus_bus_free(ctx);
    for (size_t i = 0; i < col.n; i++) {
        const struct hub_field *e = field(col.r[i], "error");
        assert_non_null(e);
        assert_memory_equal(e->v.s, "connection lost", 15);
        assert_false(field(col.r[i], "ok")->v.b);
        /* the device waits for the link's next try, not its own backoff:
         * it never finds the link still waiting */
        if (strstr(e->v.s, "reconnect in"))
            fail_msg("polled while the link waits: %s", e->v.s);
    }
    collect_free(&col);
}

static void test_init_errors(void **state)
{
    (void)state;
    struct drv_modbus_bus bus;
    setup_bus(&bus, 502, HUB_NS_PER_S);
    bus.host[0] = '\0';
    struct drv_modbus_device *d = mkdev();
    add(d, "x", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "bus lan: host is required for type tcp");
    assert_null(ctx);
    snprintf(bus.host, sizeof(bus.host), "::1"); /* IPv6 literal is fine */
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    drv_modbus_bus_free(ctx);
    add(d, "x", DRV_MB_INPUT, 1, DRV_MB_UINT16);
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "device dev: field x is defined twice (registers 1 and 2)");
    free(d);
}

/* A unit that answers after the timeout: its late reply must not be read as
 * the answer to the next request on the bus (another device's), which would
 * then fail as a "bad reply" (or, worse, take it). */
static void test_poll_late_reply(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    atomic_store(&srv.late_ms, 130);
    struct drv_modbus_bus bus;
    setup_bus(&bus, srv.port, 100 * HUB_NS_PER_MS);
    struct drv_modbus_device *late = mkdev(), *good = mkdev();
    snprintf(late->name, sizeof(late->name), "late");
    late->unit = 8;
    late->interval_ns = 50 * HUB_NS_PER_MS;
    add(late, "x", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    snprintf(good->name, sizeof(good->name), "good");
    snprintf(good->measurement, sizeof(good->measurement), "lab");
    good->interval_ns = 50 * HUB_NS_PER_MS;
    add(good, "u16", DRV_MB_HOLDING, 2, DRV_MB_UINT16);

    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {late, good}, .ndevices = 2};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    free(late);
    free(good);
    run_until(ctx, &col, "lab", 8);
    drv_modbus_bus_free(ctx);
    server_stop(&srv);

    int late_fails = 0;
    for (size_t i = 0; i < col.n; i++) {
        hub_reading_t *r = col.r[i];
        const char *dev = hub_reading_tag_value(r, "device");
        if (strcmp(hub_reading_measurement(r), "lab") == 0) {
            assert_string_equal(dev, "good");
            assert_int_equal(field(r, "u16")->v.u, 0x89AB);
            continue;
        }
        if (strcmp(dev, "good") == 0) {
            if (!field(r, "ok")->v.b)
                fail_msg("good device failed: %s", field(r, "error")->v.s);
            continue;
        }
        assert_string_equal(field(r, "error")->v.s, "timeout reading holding 0..0");
        late_fails++;
    }
    assert_true(late_fails >= 1);
    collect_free(&col);
}

/* stop() while a device's poll has several slow requests to go: run()
 * returns after the request in progress, not after all of them. */
static void test_stop_between_requests(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    atomic_store(&srv.late_ms, 300);
    struct drv_modbus_bus bus;
    setup_bus(&bus, srv.port, HUB_NS_PER_S);
    struct drv_modbus_device *d = mkdev();
    d->unit = 8;
    d->interval_ns = 10 * HUB_NS_PER_S;
    for (int a = 0; a < 12; a += 2) /* six requests: no merging across gaps */
        add(d, (char[]){(char)('a' + a), 0}, DRV_MB_HOLDING, a, DRV_MB_UINT16);
    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    free(d);
    struct runner rn = {ctx, 0};
    assert_int_equal(pthread_create(&rn.thread, NULL, run_main, &rn), 0);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    int64_t t0 = hub_mono_ns();
    drv_modbus_bus_stop(ctx);
    pthread_join(rn.thread, NULL);
    int64_t took = hub_mono_ns() - t0;
    if (took > 700 * HUB_NS_PER_MS)
        fail_msg("stop took %lld ms", (long long)(took / HUB_NS_PER_MS));
    drv_modbus_bus_free(ctx);
    server_stop(&srv);
    assert_int_equal(col.n, 0); /* an abandoned poll emits nothing */
    collect_free(&col);
}

/* Durations are bounded so that the scheduler cannot overflow and stop()
 * waits at most one timeout; a serial bus has no unit 0 to read from. */
static void test_bounds(void **state)
{
    (void)state;
    char err[256];
    struct drv_modbus_bus bus;
    struct drv_modbus_device *d = mkdev();
    const struct hub_cfg_key *k = hub_cfg_find(drv_modbus_device_keys, "interval");
    assert_int_equal(hub_cfg_set(k, d, "24h", err, sizeof(err)), 0);
    assert_int_equal(hub_cfg_set(k, d, "25h", err, sizeof(err)), -1);
    assert_string_equal(err, "interval 25h is too long (at most 24h)");
    assert_int_equal(hub_cfg_set(k, d, "2562047h", err, sizeof(err)), -1);
    k = hub_cfg_find(drv_modbus_bus_keys, "timeout");
    assert_int_equal(hub_cfg_set(k, &bus, "60s", err, sizeof(err)), 0);
    assert_int_equal(hub_cfg_set(k, &bus, "4295s", err, sizeof(err)), -1);
    k = hub_cfg_find(drv_modbus_bus_keys, "pause");
    assert_int_equal(hub_cfg_set(k, &bus, "1s", err, sizeof(err)), 0);
    assert_int_equal(hub_cfg_set(k, &bus, "1h", err, sizeof(err)), -1);

    /* init refuses the same, whoever built the structs */
    setup_bus(&bus, 502, HUB_NS_PER_S);
    add(d, "x", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    d->interval_ns = 3000000LL * HUB_NS_PER_S * 1000;
    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "device dev: interval is not 10ms..24h");
    d->interval_ns = HUB_NS_PER_S;
    bus.timeout_ns = 5000LL * HUB_NS_PER_S;
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "bus lan: timeout is not 1ms..60s or pause not 0..1s");
    bus.timeout_ns = HUB_NS_PER_S;
    bus.type = DRV_MB_BUS_RTU;
    snprintf(bus.device, sizeof(bus.device), "/dev/null");
    d->unit = 0;
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "device dev: unit 0 is the broadcast address on a serial bus");
    d->unit = 1;
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    drv_modbus_bus_free(ctx);
    free(d);
}

/* A device that fails every other poll: its failures stay rate-limited (one
 * warning, then nothing for a minute), and so does the news of recovery. */
static void test_flapping_log_limited(void **state)
{
    (void)state;
    struct server srv;
    server_start(&srv);
    struct drv_modbus_bus bus;
    setup_bus(&bus, srv.port, 500 * HUB_NS_PER_MS);
    struct drv_modbus_device *d = mkdev();
    snprintf(d->name, sizeof(d->name), "flap");
    snprintf(d->measurement, sizeof(d->measurement), "lab");
    d->unit = 6;
    d->interval_ns = 20 * HUB_NS_PER_MS;
    add(d, "u16", DRV_MB_HOLDING, 0, DRV_MB_UINT16);
    struct collect col = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct drv_sink sink = {collect_emit, &col};
    struct drv_modbus_input_cfg cfg = {.bus = &bus, .devices = {d}, .ndevices = 1};
    void *ctx = NULL;
    char err[256];
    assert_int_equal(drv_modbus_bus_new(&cfg, ENV(&sink), &ctx, err, sizeof(err)), 0);
    free(d);

    char path[] = "/tmp/cityhub-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    hub_log_set_level(HUB_LOG_INFO);
    run_until(ctx, &col, "lab", 8);
    hub_log_set_level(HUB_LOG_ERROR);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    drv_modbus_bus_free(ctx);
    server_stop(&srv);

    char log[16384];
    ssize_t n = pread(fd, log, sizeof(log) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    log[n] = 0;
    int fails = 0, recovered = 0;
    for (const char *p = log; (p = strstr(p, "[modbus:flap] poll failed")); p++)
        fails++;
    for (const char *p = log; (p = strstr(p, "[modbus:flap] recovered")); p++)
        recovered++;
    size_t bad = 0;
    for (size_t i = 0; i < col.n; i++)
        if (strcmp(hub_reading_measurement(col.r[i]), "cityhub_device") == 0 &&
            !field(col.r[i], "ok")->v.b)
            bad++;
    assert_true(bad >= 7); /* it did fail every other poll */
    if (fails != 1 || recovered != 1)
        fail_msg("%d failure and %d recovery lines:\n%s", fails, recovered, log);
    collect_free(&col);
}

int main(void)
{
    hub_log_set_level(HUB_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* the server may answer a client that left */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_decode_float_pi_every_order),
        cmocka_unit_test(test_decode_u32_every_order),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_decode_16bit_orders),
        cmocka_unit_test(test_decode_scale),
        cmocka_unit_test(test_decode_refuses_nan_and_inf),
        cmocka_unit_test(test_plan_contiguous),
        cmocka_unit_test(test_plan_gap),
        cmocka_unit_test(test_plan_tables),
        cmocka_unit_test(test_plan_split_125),
        cmocka_unit_test(test_plan_overflow),
        cmocka_unit_test(test_check_device),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_poll_ok),
        cmocka_unit_test(test_poll_failures),
        cmocka_unit_test(test_poll_no_server),
        cmocka_unit_test(test_poll_late_reply),
        cmocka_unit_test(test_stop_between_requests),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_flapping_log_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
