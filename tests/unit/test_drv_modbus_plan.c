/* tests/unit/test_drv_modbus_plan.c — the read planner (drv_modbus_plan)
 * against a brute-force optimum on random register maps: fewest requests
 * such that every field lies wholly inside one request, each request within
 * the limit and reading through no run of more than max_gap registers that
 * no field maps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/modbus/modbus_priv.h"

#define NF 9

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
            r->type = w == 1 ? DRV_MB_UINT16 : w == 2 ? DRV_MB_UINT32 : w == 4 ? DRV_MB_UINT64
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
            assert_true(valid_frame(lo, hi, n, b[k].address, b[k].address + b[k].count, limit,
                                    gap));
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
    } f[] = {{DRV_MB_COIL, 0}, {DRV_MB_COIL, 1999}, {DRV_MB_COIL, 2000}, {DRV_MB_DISCRETE, 5},
             {DRV_MB_HOLDING, 0}, {DRV_MB_INPUT, 0}};
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_is_optimal),
        cmocka_unit_test(test_tables_and_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
