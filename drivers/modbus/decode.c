/* drivers/modbus/decode.c — register values to fields, read planning and the
 * device checks of the Modbus driver. No I/O here: all of it is unit-tested
 * and fuzzed without a bus.
 *
 * Byte order. A register arrives as a 16-bit word, high byte first on the
 * wire; libmodbus hands it over as a host uint16_t. For a 32-bit value over
 * two registers, with A the most significant byte:
 *   ABCD  reg[0] = A B, reg[1] = C D   (Modbus default, big-endian)
 *   CDAB  reg[0] = C D, reg[1] = A B   (word-swapped)
 *   BADC  reg[0] = B A, reg[1] = D C   (byte-swapped)
 *   DCBA  reg[0] = D C, reg[1] = B A   (little-endian)
 * For a 16-bit value the word order has no meaning; only the byte swap does:
 * ABCD and CDAB take the register as it is, BADC and DCBA swap its two
 * bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <modbus.h>

#include "drivers/modbus/modbus_priv.h"
#include "hub/buf.h"

unsigned drv_modbus_type_width(enum drv_modbus_type t)
{
    switch (t) {
    case DRV_MB_UINT32:
    case DRV_MB_INT32:
    case DRV_MB_FLOAT32:
        return 2;
    case DRV_MB_UINT16:
    case DRV_MB_INT16:
    default:
        return 1;
    }
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

uint16_t drv_modbus_u16(uint16_t reg, int order)
{
    return (order == DRV_MB_BADC || order == DRV_MB_DCBA) ? swap16(reg) : reg;
}

uint32_t drv_modbus_u32(const uint16_t *regs, int order)
{
    uint16_t hi, lo;
    switch (order) {
    case DRV_MB_CDAB:
        hi = regs[1];
        lo = regs[0];
        break;
    case DRV_MB_BADC:
        hi = swap16(regs[0]);
        lo = swap16(regs[1]);
        break;
    case DRV_MB_DCBA:
        hi = swap16(regs[1]);
        lo = swap16(regs[0]);
        break;
    case DRV_MB_ABCD:
    default:
        hi = regs[0];
        lo = regs[1];
        break;
    }
    return ((uint32_t)hi << 16) | lo;
}

static int valid_register(const struct drv_modbus_register *reg)
{
    return reg->type >= DRV_MB_UINT16 && reg->type <= DRV_MB_FLOAT32 && reg->order >= DRV_MB_ABCD &&
           reg->order <= DRV_MB_DCBA && reg->table >= DRV_MB_HOLDING &&
           reg->table <= DRV_MB_INPUT && isfinite(reg->scale);
}

/* raw * scale, except that a scale of 1/N for a whole N (0.1, 0.01, 0.001,
 * ...) divides by N: 479 * 0.1 is 47.900000000000006 but 479 / 10.0 is the
 * double nearest 47.9, which is what the sensor meant. */
static double scale_value(double raw, double scale)
{
    double inv = 1.0 / scale;
    double n = nearbyint(inv);
    if (fabs(scale) < 1.0 && n != 0.0 && fabs(inv - n) < 1e-9 * fabs(n))
        return raw / n;
    return raw * scale;
}

int drv_modbus_decode(const struct drv_modbus_register *reg, const uint16_t *regs, hub_reading_t *r)
{
    if (!reg || !regs || !r || !valid_register(reg))
        return HUB_EINVAL;

    int scaled = reg->scale != 1.0;
    uint32_t u32;
    float f;
    double v;

    switch (reg->type) {
    case DRV_MB_UINT16: {
        uint16_t u = drv_modbus_u16(regs[0], reg->order);
        if (!scaled)
            return hub_reading_add_uint(r, reg->field, u);
        v = (double)u;
        break;
    }
    case DRV_MB_INT16: {
        int16_t i = (int16_t)drv_modbus_u16(regs[0], reg->order);
        if (!scaled)
            return hub_reading_add_int(r, reg->field, i);
        v = (double)i;
        break;
    }
    case DRV_MB_UINT32:
        u32 = drv_modbus_u32(regs, reg->order);
        if (!scaled)
            return hub_reading_add_uint(r, reg->field, u32);
        v = (double)u32;
        break;
    case DRV_MB_INT32: {
        int32_t i = (int32_t)drv_modbus_u32(regs, reg->order);
        if (!scaled)
            return hub_reading_add_int(r, reg->field, i);
        v = (double)i;
        break;
    }
    case DRV_MB_FLOAT32:
    default:
        u32 = drv_modbus_u32(regs, reg->order);
        memcpy(&f, &u32, sizeof(f));
        if (!isfinite(f))
            return HUB_EINVAL; /* the sensor has no value */
        v = (double)f;
        break;
    }
    if (scaled)
        v = scale_value(v, reg->scale);
    if (!isfinite(v))
        return HUB_EINVAL; /* a huge float times a scale */
    return hub_reading_add_float(r, reg->field, v);
}

/* ---- planning ----------------------------------------------------------- */

int drv_modbus_plan(const struct drv_modbus_device *dev, unsigned max_gap,
                    struct drv_modbus_block *out, size_t max_out)
{
    size_t n = dev->nregs;
    size_t idx[DRV_MB_MAX_REGISTERS];
    if (n > DRV_MB_MAX_REGISTERS)
        return -1;

    for (size_t i = 0; i < n; i++) {
        const struct drv_modbus_register *reg = &dev->regs[i];
        if (reg->address < 0 || reg->address + drv_modbus_type_width(reg->type) > 65536)
            return -1;
        if (reg->table != DRV_MB_HOLDING && reg->table != DRV_MB_INPUT)
            return -1;
        idx[i] = i;
    }
    /* insertion sort by (table, address): at most 64 entries */
    for (size_t i = 1; i < n; i++) {
        size_t k = idx[i];
        size_t j = i;
        while (j > 0) {
            const struct drv_modbus_register *a = &dev->regs[idx[j - 1]], *b = &dev->regs[k];
            if (a->table < b->table || (a->table == b->table && a->address <= b->address))
                break;
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = k;
    }

    size_t nb = 0;
    int64_t start = 0, end = 0; /* current block: [start, end) */
    int table = -1;
    for (size_t i = 0; i < n; i++) {
        const struct drv_modbus_register *reg = &dev->regs[idx[i]];
        int64_t a = reg->address, e = a + drv_modbus_type_width(reg->type);
        if (table == reg->table && a <= end + (int64_t)max_gap &&
            (e > end ? e : end) - start <= DRV_MB_MAX_REGS_PER_READ) {
            if (e > end)
                end = e;
            out[nb - 1].count = (uint16_t)(end - start);
            continue;
        }
        if (nb == max_out)
            return -1;
        table = reg->table;
        start = a;
        end = e;
        out[nb].table = table;
        out[nb].address = (uint16_t)start;
        out[nb].count = (uint16_t)(end - start);
        nb++;
    }
    return (int)nb;
}

int drv_modbus_check_device_at(const struct drv_modbus_device *dev, size_t *at_reg,
                               const char **at_key, char *err, size_t errlen)
{
#define AT(i, k)                                                                                   \
    do {                                                                                           \
        if (at_reg)                                                                                \
            *at_reg = (i);                                                                         \
        if (at_key)                                                                                \
            *at_key = (k);                                                                         \
    } while (0)
    AT(dev->nregs, NULL);
    if (dev->nregs == 0) {
        snprintf(err, errlen, "device %s: no registers", dev->name);
        return -1;
    }
    if (dev->nregs > DRV_MB_MAX_REGISTERS) {
        snprintf(err, errlen, "device %s: %zu registers, at most %d", dev->name, dev->nregs,
                 DRV_MB_MAX_REGISTERS);
        return -1;
    }
    if (dev->measurement[0] == '\0') {
        snprintf(err, errlen, "device %s: empty measurement", dev->name);
        return -1;
    }
    for (size_t i = 0; i < dev->tags.n; i++) {
        if (strcmp(dev->tags.tag[i].key, "device") == 0) {
            snprintf(err, errlen, "device %s: tag \"device\" is reserved (it is the device name)",
                     dev->name);
            return -1;
        }
    }
    for (size_t i = 0; i < dev->nregs; i++) {
        const struct drv_modbus_register *reg = &dev->regs[i];
        if (reg->field[0] == '\0') {
            snprintf(err, errlen, "device %s: register %zu has no field name", dev->name, i + 1);
            AT(i, "field");
            return -1;
        }
        if (!valid_register(reg)) {
            snprintf(err, errlen, "device %s: field %s: bad table, type, order or scale", dev->name,
                     reg->field);
            AT(i, NULL);
            return -1;
        }
        if (reg->address < 0 || reg->address + drv_modbus_type_width(reg->type) > 65536) {
            snprintf(err, errlen, "device %s: field %s: address %lld + %u registers is past 65535",
                     dev->name, reg->field, (long long)reg->address,
                     drv_modbus_type_width(reg->type));
            AT(i, "address");
            return -1;
        }
        if (reg->scale == 0.0) {
            snprintf(err, errlen, "device %s: field %s: scale 0 would hide every value", dev->name,
                     reg->field);
            AT(i, "scale");
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(dev->regs[j].field, reg->field) == 0) {
                snprintf(err, errlen,
                         "device %s: field %s is defined twice (registers %zu and %zu)", dev->name,
                         reg->field, j + 1, i + 1);
                AT(i, "field");
                return -1;
            }
        }
    }
    return 0;
#undef AT
}

int drv_modbus_check_device(const struct drv_modbus_device *dev, char *err, size_t errlen)
{
    return drv_modbus_check_device_at(dev, NULL, NULL, err, errlen);
}

/* ---- errors --------------------------------------------------------------- */

const char *drv_modbus_exception_name(int code)
{
    switch (code) {
    case 1:
        return "illegal function";
    case 2:
        return "illegal data address";
    case 3:
        return "illegal data value";
    case 4:
        return "slave device failure";
    case 5:
        return "acknowledge";
    case 6:
        return "slave device busy";
    case 7:
        return "negative acknowledge";
    case 8:
        return "memory parity error";
    case 10:
        return "gateway path unavailable";
    case 11:
        return "gateway target failed to respond";
    default:
        return "unknown";
    }
}

int drv_modbus_classify(int err, char *msg, size_t msglen)
{
    if (err == ETIMEDOUT) {
        snprintf(msg, msglen, "timeout");
        return DRV_MB_FAIL_TIMEOUT;
    }
    if (err > MODBUS_ENOBASE && err <= EMBXGTAR) {
        int code = err - MODBUS_ENOBASE;
        snprintf(msg, msglen, "exception %d (%s)", code, drv_modbus_exception_name(code));
        return DRV_MB_FAIL_EXCEPTION;
    }
    switch (err) {
    case EMBBADCRC:
        snprintf(msg, msglen, "bad reply: bad CRC");
        return DRV_MB_FAIL_BAD_REPLY;
    case EMBBADDATA:
        snprintf(msg, msglen, "bad reply: wrong length, function, count or transaction id");
        return DRV_MB_FAIL_BAD_REPLY;
    case EMBBADEXC:
    case EMBUNKEXC:
        snprintf(msg, msglen, "bad reply: malformed exception");
        return DRV_MB_FAIL_BAD_REPLY;
    case EMBMDATA:
        snprintf(msg, msglen, "bad reply: too many data");
        return DRV_MB_FAIL_BAD_REPLY;
    case EMBBADSLAVE:
        snprintf(msg, msglen, "bad reply: from another unit");
        return DRV_MB_FAIL_BAD_REPLY;
    default:
        break;
    }
    snprintf(msg, msglen, "connection lost: %s", err ? strerror(err) : "closed");
    return DRV_MB_FAIL_CONNECTION;
}
