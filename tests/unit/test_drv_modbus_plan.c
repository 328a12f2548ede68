/* tests/unit/test_drv_modbus_plan.c — the read planner (plan.c) against a
 * brute-force optimum on random register maps: fewest requests such that
 * every field lies wholly inside one request, each request within the limit
 * and reading through no run of more than max_gap registers that no field
 * maps; on maps over every table, each field is read from exactly one
 * request, the one the poller looks it up in. Overlapping fields wider
 * than one request together, and the device checks of max_registers and
 * max_gap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/modbus/modbus_priv.h"

#define NF 10

struct map {
    struct drv_modbus_device dev;
    struct drv_modbus_register regs[NF];
};

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Is [a, b) a valid request over the fields of one table: within the limit,
 * and no run of more than gap registers that no field maps? */
static int valid_frame(const int64_t *lo, const int64_t *hi, size_t n, int64_t a, int64_t b,
                       int64_t limit, int64_t gap)
{
    if (b - a > limit)
        return 0;
    char used[256] = {0};
    for (size_t i = 0; i < n; i++)
        for (int64_t x = lo[i]; x < hi[i]; x++)
            if (x >= a && x < b)
                used[x - a] = 1;
    int64_t run = 0;
    for (int64_t x = 0; x < b - a; x++) {
        run = used[x] ? 0 : run + 1;
        if (run > gap)
            return 0;
    }
    return used[0] && used[b - a - 1];
}

/* Fewest valid requests covering every field (one table): breadth-first
 * search over the set of fields covered, candidates [lo_i, hi_j). */
static int brute(const int64_t *lo, const int64_t *hi, size_t n, int64_t limit, int64_t gap)
{
    unsigned cover[NF * NF];
    size_t nc = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (hi[j] > lo[i] && valid_frame(lo, hi, n, lo[i], hi[j], limit, gap)) {
                unsigned m = 0;
                for (size_t k = 0; k < n; k++)
                    if (lo[k] >= lo[i] && hi[k] <= hi[j])
                        m |= 1u << k;
                cover[nc++] = m;
            }
    unsigned full = (1u << n) - 1;
    static signed char dist[1 << NF];
    memset(dist, -1, sizeof(dist));
    unsigned queue[1 << NF];
    size_t qh = 0, qt = 0;
    dist[0] = 0;
    queue[qt++] = 0;
    while (qh < qt) {
        unsigned s = queue[qh++];
        if (s == full)
            return dist[s];
        for (size_t c = 0; c < nc; c++) {
            unsigned t = s | cover[c];
            if (dist[t] < 0) {
                dist[t] = (signed char)(dist[s] + 1);
                queue[qt++] = t;
            }
        }
    }
    return -1; /* not coverable */
}

static void test_plan_is_optimal(void **state)
{
    (void)state;
    static const int widths[] = {1, 1, 1, 2, 2, 4, 3};
    int compared = 0;
    for (int round = 0; round < 3000; round++) {
        struct map m;
        memset(&m, 0, sizeof(m));
        m.dev.regs = m.regs;
        size_t n = 1 + rnd(NF);
        m.dev.nregs = n;
        int64_t gap = rnd(4), limit = 3 + rnd(12);
        m.dev.max_registers = limit;
        int64_t lo[NF], hi[NF];
        for (size_t i = 0; i < n; i++) {
            struct drv_modbus_register *r = &m.regs[i];
            r->field[0] = (char)('a' + i);
            r->table = DRV_MB_HOLDING;
            r->scale = 1;
            r->bit = -1;
            int w = widths[rnd(7)];
            r->type = w == 1   ? DRV_MB_UINT16
                      : w == 2 ? DRV_MB_UINT32
                      : w == 4 ? DRV_MB_UINT64
                               : DRV_MB_STRING;
            r->length = w;
            r->address = rnd(40);
            lo[i] = r->address;
            hi[i] = r->address + drv_modbus_reg_width(r);
        }
        struct drv_modbus_block b[NF];
        int got = drv_modbus_plan(&m.dev, (unsigned)gap, b, NF);
        int want = brute(lo, hi, n, limit, gap);
        if (want < 0) {
            assert_int_equal(got, -1); /* overlapping fields wider than the limit */
            continue;
        }
        if (got != want)
            fail_msg("round %d: plan %d requests, optimum %d (gap %lld, limit %lld)", round, got,
                     want, (long long)gap, (long long)limit);
        /* every field inside exactly the blocks the plan made, each valid */
        for (int k = 0; k < got; k++)
            assert_true(
                valid_frame(lo, hi, n, b[k].address, b[k].address + b[k].count, limit, gap));
        for (size_t i = 0; i < n; i++) {
            int in = 0;
            for (int k = 0; k < got; k++)
                in += lo[i] >= b[k].address && hi[i] <= b[k].address + b[k].count;
            assert_true(in >= 1);
        }
        compared++;
    }
    assert_true(compared > 2000);
}

static void test_tables_and_bits(void **state)
{
    (void)state;
    struct map m;
    memset(&m, 0, sizeof(m));
    m.dev.regs = m.regs;
    m.dev.max_registers = -1;
    const struct {
        int table;
        int64_t address;
    } f[] = {{DRV_MB_COIL, 0},     {DRV_MB_COIL, 1999}, {DRV_MB_COIL, 2000},
             {DRV_MB_DISCRETE, 5}, {DRV_MB_HOLDING, 0}, {DRV_MB_INPUT, 0}};
    for (size_t i = 0; i < 6; i++) {
        m.regs[i].field[0] = (char)('a' + i);
        m.regs[i].table = f[i].table;
        m.regs[i].address = f[i].address;
        m.regs[i].type = DRV_MB_BOOL;
        m.regs[i].bit = f[i].table == DRV_MB_HOLDING || f[i].table == DRV_MB_INPUT ? 0 : -1;
        m.regs[i].scale = 1;
    }
    m.dev.nregs = 6;
    struct drv_modbus_block b[8];
    /* coils 0..1999 in one request of 2000 bits, 2000 in the next */
    assert_int_equal(drv_modbus_plan(&m.dev, 2000, b, 8), 5);
    assert_int_equal(b[0].table, DRV_MB_HOLDING);
    assert_int_equal(b[1].table, DRV_MB_INPUT);
    assert_int_equal(b[2].table, DRV_MB_COIL);
    assert_int_equal(b[2].count, 2000);
    assert_int_equal(b[3].address, 2000);
    assert_int_equal(b[4].table, DRV_MB_DISCRETE);
}

/* Where the poller looks a field up (bus.c, locate): the first request of
 * its table that holds all of it. Written out again here, on purpose. */
static int locate(const struct drv_modbus_block *b, size_t nb, const struct drv_modbus_register *r)
{
    int64_t lo = r->address, hi = lo + drv_modbus_reg_width(r);
    for (size_t k = 0; k < nb; k++)
        if (b[k].table == r->table && lo >= b[k].address && hi <= b[k].address + b[k].count)
            return (int)k;
    return -1;
}

/* Random maps over two register tables and two bit tables, up to 10
 * fields: the plan is the sum of the per-table optima, comes out by table
 * then address, and says for every field the one request it is read from,
 * the one the poller finds. */
static void test_plan_fields_every_table(void **state)
{
    (void)state;
    static const int tables[] = {DRV_MB_HOLDING, DRV_MB_INPUT, DRV_MB_COIL, DRV_MB_DISCRETE};
    static const int widths[] = {1, 1, 2, 4, 3, 5};
    for (int round = 0; round < 2000; round++) {
        struct drv_modbus_device dev;
        struct drv_modbus_register regs[10];
        memset(&dev, 0, sizeof(dev));
        memset(regs, 0, sizeof(regs));
        dev.regs = regs;
        dev.nregs = 1 + rnd(10);
        int64_t gap = rnd(5), limit = 5 + rnd(8);
        dev.max_registers = limit;
        dev.max_gap = -1;
        for (size_t i = 0; i < dev.nregs; i++) {
            struct drv_modbus_register *r = &regs[i];
            snprintf(r->field, sizeof(r->field), "f%zu", i);
            r->table = tables[rnd(4)];
            r->address = rnd(30);
            r->scale = 1;
            r->bit = -1;
            int w = widths[rnd(6)];
            if (r->table == DRV_MB_COIL || r->table == DRV_MB_DISCRETE)
                r->type = DRV_MB_BOOL; /* one bit */
            else if (w == 1 && rnd(2)) {
                r->type = DRV_MB_BOOL; /* a bit of a register */
                r->bit = 3;
            } else if (w == 1) {
                r->type = DRV_MB_UINT16;
            } else if (w == 2) {
                r->type = DRV_MB_FLOAT32;
            } else if (w == 4) {
                r->type = DRV_MB_INT64;
            } else {
                r->type = DRV_MB_STRING;
                r->length = w;
            }
        }
        int want = 0;
        for (int t = 0; t < 4; t++) {
            int64_t lo[10], hi[10];
            size_t n = 0;
            for (size_t i = 0; i < dev.nregs; i++)
                if (regs[i].table == tables[t]) {
                    lo[n] = regs[i].address;
                    hi[n++] = regs[i].address + drv_modbus_reg_width(&regs[i]);
                }
            int64_t lim = t >= 2 ? DRV_MB_MAX_BITS_PER_READ : limit;
            if (n)
                want += brute(lo, hi, n, lim, gap);
        }
        struct drv_modbus_read_plan p;
        int got = drv_modbus_plan_fields(&dev, (unsigned)gap, &p);
        if (got != want)
            fail_msg("round %d: plan %d requests, optimum %d (gap %lld, limit %lld)", round, got,
                     want, (long long)gap, (long long)limit);
        assert_int_equal(p.nblocks, (size_t)got);
        for (size_t k = 1; k < p.nblocks; k++)
            assert_true(p.block[k - 1].table < p.block[k].table ||
                        (p.block[k - 1].table == p.block[k].table &&
                         p.block[k - 1].address < p.block[k].address));
        uint64_t seen = 0;
        for (size_t k = 0; k < p.nblocks; k++) {
            assert_true(p.block[k].count >= 1);
            assert_true(p.block[k].count <= drv_modbus_plan_limit(&dev, p.block[k].table));
            assert_true(p.fields[k] != 0); /* no request reads nothing */
            assert_int_equal(seen & p.fields[k], 0);
            seen |= p.fields[k];
        }
        assert_true(seen == (1ull << dev.nregs) - 1);
        for (size_t i = 0; i < dev.nregs; i++) {
            int k = locate(p.block, p.nblocks, &regs[i]);
            assert_true(k >= 0);
            assert_int_equal(drv_modbus_plan_find(p.block, p.nblocks, &regs[i]), k);
            assert_true(p.fields[k] & (1ull << i));
        }
    }
}

/* Two strings sharing 32 registers, together wider than a request: two
 * requests; the one they share is read from the first. */
static void test_overlap_wider_than_a_request(void **state)
{
    (void)state;
    struct drv_modbus_device dev;
    struct drv_modbus_register regs[3];
    memset(&dev, 0, sizeof(dev));
    memset(regs, 0, sizeof(regs));
    dev.regs = regs;
    dev.nregs = 3;
    dev.max_registers = 80;
    for (int i = 0; i < 3; i++) {
        snprintf(regs[i].field, sizeof(regs[i].field), "s%d", i);
        regs[i].type = DRV_MB_STRING;
        regs[i].scale = 1;
        regs[i].bit = -1;
    }
    regs[0].address = 0, regs[0].length = 64;  /* 0..63 */
    regs[1].address = 32, regs[1].length = 64; /* 32..95 */
    regs[2].address = 40, regs[2].length = 8;  /* inside both */
    struct drv_modbus_read_plan p;
    assert_int_equal(drv_modbus_plan_fields(&dev, 0, &p), 2);
    assert_int_equal(p.block[0].address, 0);
    assert_int_equal(p.block[0].count, 64);
    assert_int_equal(p.block[1].address, 32);
    assert_int_equal(p.block[1].count, 64);
    assert_true(p.fields[0] == (1u | 4u));
    assert_true(p.fields[1] == 2u);
    char err[256];
    dev.measurement[0] = 'm';
    snprintf(dev.name, sizeof(dev.name), "d");
    assert_int_equal(drv_modbus_check_device(&dev, err, sizeof(err)), 0);
    /* a field wider than max_registers: refused by the check, and the plan */
    dev.max_registers = 60;
    size_t at = 0;
    const char *key = NULL;
    assert_int_equal(drv_modbus_check_device_at(&dev, &at, &key, err, sizeof(err)), -1);
    assert_string_equal(err, "device d: field s0: 64 registers wide, more than max_registers (60)");
    assert_int_equal(at, 0);
    assert_string_equal(key, "length");
    assert_int_equal(drv_modbus_plan_fields(&dev, 0, &p), -1);
}

/* max_registers and max_gap out of range, as a struct built in code or a
 * profile could hold them, are reported at the device's key. */
static void test_check_limits(void **state)
{
    (void)state;
    struct drv_modbus_device dev;
    struct drv_modbus_register reg;
    memset(&dev, 0, sizeof(dev));
    memset(&reg, 0, sizeof(reg));
    snprintf(dev.name, sizeof(dev.name), "d");
    snprintf(dev.measurement, sizeof(dev.measurement), "m");
    snprintf(reg.field, sizeof(reg.field), "x");
    reg.scale = 1;
    reg.bit = -1;
    reg.type = DRV_MB_FLOAT64;
    dev.regs = &reg;
    dev.nregs = 1;
    char err[256];
    size_t at = 0;
    const char *key = NULL;
    const struct {
        int64_t max_registers, max_gap;
        const char *key, *msg;
    } bad[] = {
        {0, -1, "max_registers", "device d: max_registers 0 is not 1..125"},
        {126, -1, "max_registers", "device d: max_registers 126 is not 1..125"},
        {-2, -1, "max_registers", "device d: max_registers -2 is not 1..125"},
        {-1, 126, "max_gap", "device d: max_gap 126 is not 0..125"},
        {-1, -5, "max_gap", "device d: max_gap -5 is not 0..125"},
        {3, 0, "type", "device d: field x: 4 registers wide, more than max_registers (3)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dev.max_registers = bad[i].max_registers;
        dev.max_gap = bad[i].max_gap;
        assert_int_equal(drv_modbus_check_device_at(&dev, &at, &key, err, sizeof(err)), -1);
        assert_string_equal(err, bad[i].msg);
        assert_string_equal(key, bad[i].key);
        assert_int_equal(at, strcmp(bad[i].key, "type") ? 1 : 0); /* the device, or the field */
    }
    dev.max_registers = 4;
    dev.max_gap = 125;
    assert_int_equal(drv_modbus_check_device(&dev, err, sizeof(err)), 0);
    dev.max_registers = -1; /* not set: 125 */
    assert_int_equal(drv_modbus_plan_limit(&dev, DRV_MB_HOLDING), 125);
    assert_int_equal(drv_modbus_plan_limit(&dev, DRV_MB_COIL), 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_is_optimal),
        cmocka_unit_test(test_tables_and_bits),
        cmocka_unit_test(test_plan_fields_every_table),
        cmocka_unit_test(test_overlap_wider_than_a_request),
        cmocka_unit_test(test_check_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
