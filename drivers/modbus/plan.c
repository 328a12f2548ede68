/* drivers/modbus/plan.c — a device's read plan: its fields grouped into the
 * fewest read requests (drv_modbus_plan), and which request each field is
 * read from (drv_modbus_plan_fields, drv_modbus_plan_find). No I/O here.
 *
 * The problem. On one table, each field is an interval [a, e) of registers
 * (or bits, on coil and discrete tables). A request reads an interval
 * [s, t) of at most L registers (the device's max_registers; 2000 bits on a
 * bit table), and may read through at most G unused registers in a row
 * (max_gap): a register is unused when no field of the device on that
 * table holds it. A field is read by a request that holds all of it. The
 * plan is a set of requests holding every field, as few as possible.
 *
 * The greedy below is optimal. Take the uncovered field f that starts
 * first (s = a_f). Any plan has a request R holding f; R may be taken to
 * start at s (every field still to be read starts at s or later, and
 * cutting R's front shortens it and only shortens its unused runs, since
 * register s is used). A request [s, t) is valid iff t - s <= L and no
 * unused run in it is longer than G; if [s, t) is valid so is [s, t') for
 * every t' < t that ends a field (such a t' - 1 is used, so the runs of
 * [s, t') are runs of [s, t), or parts of them). So the greedy request
 * [s, t*), t* the furthest valid end of a field still to be read, holds
 * every field R holds that is still to be read; what is left for the rest
 * of the plan is a subset of what is left beside R, and by induction the
 * greedy needs no more requests than any plan. Overlapping fields need no
 * special case: they are just intervals. t* is found in one pass: the
 * used registers reachable from s without crossing a run of more than G
 * unused ones end at some `reach`, and the valid ends are those <= min(s +
 * L, reach). tests/unit/test_drv_modbus_plan.c checks the result against a
 * brute-force minimum on thousands of random maps.
 *
 * Requests come out by table (holding, input, coil, discrete), then by
 * address; each starts where a field starts and ends where one ends, and
 * none lies inside another. A field held by two requests (overlapping ones)
 * is read from the first of them, as drv_modbus_plan_find and the poller
 * (bus.c, locate) look it up. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/modbus_drv.h"

static int bit_table(int table)
{
    return table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
}

int64_t drv_modbus_plan_limit(const struct drv_modbus_device *dev, int table)
{
    if (bit_table(table))
        return DRV_MB_MAX_BITS_PER_READ;
    if (dev->max_registers >= 1 && dev->max_registers <= DRV_MB_MAX_REGS_PER_READ)
        return dev->max_registers;
    return DRV_MB_MAX_REGS_PER_READ;
}

/* One field on the table being planned: [lo, hi). */
struct piece {
    int64_t lo, hi;
};

static int piece_cmp(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return (x->hi > y->hi) - (x->hi < y->hi);
}

int drv_modbus_plan_find(const struct drv_modbus_block *blocks, size_t nblocks,
                         const struct drv_modbus_register *reg)
{
    int64_t lo = reg->address, hi = lo + drv_modbus_reg_width(reg);
    for (size_t b = 0; b < nblocks; b++)
        if (blocks[b].table == reg->table && lo >= blocks[b].address &&
            hi <= (int64_t)blocks[b].address + blocks[b].count)
            return (int)b;
    return -1;
}

/* Plan the fields of one table: append its requests to out[*nb..max_out).
 * Returns 0, or -1 if one does not fit or out is full. */
static int plan_table(const struct drv_modbus_device *dev, int table, unsigned max_gap,
                      struct drv_modbus_block *out, size_t *nb, size_t max_out)
{
    struct piece p[DRV_MB_MAX_REGISTERS];
    unsigned char covered[DRV_MB_MAX_REGISTERS];
    size_t m = 0;
    int64_t limit = drv_modbus_plan_limit(dev, table), gap = max_gap;

    for (size_t i = 0; i < dev->nregs; i++) {
        const struct drv_modbus_register *reg = &dev->regs[i];
        if (reg->table != table)
            continue;
        unsigned w = drv_modbus_reg_width(reg);
        if (w == 0 || reg->address < 0 || reg->address + w > 65536 || w > limit)
            return -1;
        p[m].lo = reg->address;
        p[m].hi = reg->address + w;
        m++;
    }
    if (m == 0)
        return 0;
    qsort(p, m, sizeof(p[0]), piece_cmp);
    memset(covered, 0, m);

    for (size_t i = 0; i < m; i++) {
        if (covered[i])
            continue;
        int64_t s = p[i].lo, end = s + limit, reach = s;
        /* the used registers reachable from s through runs of <= gap unused */
        for (size_t k = 0; k < m && p[k].lo < end; k++) {
            if (p[k].hi <= reach)
                continue;
            if (p[k].lo > reach + gap)
                break;
            reach = p[k].hi;
        }
        if (reach < end)
            end = reach;
        int64_t t = p[i].hi; /* <= end: p[i] is reached, and no wider than limit */
        for (size_t k = i + 1; k < m; k++)
            if (!covered[k] && p[k].hi <= end && p[k].hi > t)
                t = p[k].hi;
        for (size_t k = i; k < m; k++)
            if (p[k].hi <= t) /* every field from i on starts at s or later */
                covered[k] = 1;
        if (*nb == max_out)
            return -1;
        out[*nb].table = table;
        out[*nb].address = (uint16_t)s;
        out[*nb].count = (uint16_t)(t - s);
        (*nb)++;
    }
    return 0;
}

int drv_modbus_plan(const struct drv_modbus_device *dev, unsigned max_gap,
                    struct drv_modbus_block *out, size_t max_out)
{
    if (!dev || dev->nregs > DRV_MB_MAX_REGISTERS || (dev->nregs && !dev->regs))
        return -1;
    for (size_t i = 0; i < dev->nregs; i++)
        if (dev->regs[i].table < DRV_MB_HOLDING || dev->regs[i].table > DRV_MB_DISCRETE)
            return -1;
    size_t nb = 0;
    for (int table = DRV_MB_HOLDING; table <= DRV_MB_DISCRETE; table++)
        if (plan_table(dev, table, max_gap, out, &nb, max_out) != 0)
            return -1;
    return (int)nb;
}

int drv_modbus_plan_fields(const struct drv_modbus_device *dev, unsigned max_gap,
                           struct drv_modbus_read_plan *p)
{
    memset(p, 0, sizeof(*p));
    int nb = drv_modbus_plan(dev, max_gap, p->block, DRV_MB_MAX_REGISTERS);
    if (nb < 0)
        return -1;
    p->nblocks = (size_t)nb;
    for (size_t i = 0; i < dev->nregs; i++) {
        int b = drv_modbus_plan_find(p->block, p->nblocks, &dev->regs[i]);
        if (b < 0)
            return -1; /* cannot be: every field has its request */
        p->fields[b] |= 1ull << i;
    }
    return nb;
}
