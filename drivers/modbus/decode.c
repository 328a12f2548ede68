/* drivers/modbus/decode.c — register values to fields, and the device
 * checks of the Modbus driver (the read planner is plan.c). No I/O here: all
 * of it is unit-tested and fuzzed without a bus.
 *
 * Byte order. A register arrives as a 16-bit word, high byte first on the
 * wire; libmodbus hands it over as a host uint16_t. For a value of n
 * registers (2 or 4), its big-endian bytes A B C D ... (A the most
 * significant) taken two at a time are the words W1 .. Wn, and
 *   ABCD  reg[0..n) = W1 .. Wn          (Modbus default, big-endian)
 *   CDAB  reg[0..n) = Wn .. W1          (word-swapped: registers reversed)
 *   BADC  W1 .. Wn, each byte-swapped   (B A, D C, ...)
 *   DCBA  Wn .. W1, each byte-swapped   (little-endian)
 * So for 2 registers CDAB is reg[0] = C D, reg[1] = A B; for 4, CDAB
 * reverses all four registers. For a 16-bit value (and a bool from a bit
 * of a register) the word order has no meaning; only the byte swap does:
 * ABCD and CDAB take the register as it is, BADC and DCBA swap its two
 * bytes. A string keeps its registers in address order; BADC and DCBA swap
 * the two characters of each.
 *
 * Choices made here (docs/modbus-registers.md):
 *  - coils and discrete inputs are bools; their type is bool or left out
 *    (the default, uint16, is taken as bool there: it cannot be told from
 *    one left out);
 *  - a string is cut at its first NUL and its trailing spaces; one with a
 *    byte outside printable ASCII (0x20..0x7E) left is no value;
 *  - a float32 is first taken as its shortest round-tripping decimal
 *    (228.94186, not 228.94186401367188), then scaled and offset in
 *    double precision (a scale of 1/N divides by N);
 *  - store int / uint round to nearest, ties to even; out of range is no
 *    value. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    case DRV_MB_UINT64:
    case DRV_MB_INT64:
    case DRV_MB_FLOAT64:
        return 4;
    case DRV_MB_UINT16:
    case DRV_MB_INT16:
    case DRV_MB_BOOL:
    case DRV_MB_STRING:
    default:
        return 1;
    }
}

static int bit_table(int table)
{
    return table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
}

unsigned drv_modbus_reg_width(const struct drv_modbus_register *reg)
{
    if (bit_table(reg->table))
        return 1;
    if (reg->type == DRV_MB_STRING)
        return reg->length >= 1 ? (unsigned)reg->length : 1u;
    return drv_modbus_type_width((enum drv_modbus_type)reg->type);
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

uint16_t drv_modbus_u16(uint16_t reg, int order)
{
    return (order == DRV_MB_BADC || order == DRV_MB_DCBA) ? swap16(reg) : reg;
}

/* The raw value of n registers (2 or 4) in the given order: ABCD most
 * significant register first, CDAB least significant first; BADC and DCBA
 * also swap the bytes of each register. */
static uint64_t raw_n(const uint16_t *regs, unsigned n, int order)
{
    int reversed = order == DRV_MB_CDAB || order == DRV_MB_DCBA;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 16) | drv_modbus_u16(regs[reversed ? n - 1 - i : i], order);
    return v;
}

uint32_t drv_modbus_u32(const uint16_t *regs, int order)
{
    return (uint32_t)raw_n(regs, 2, order);
}

uint64_t drv_modbus_u64(const uint16_t *regs, int order)
{
    return raw_n(regs, 4, order);
}

static int valid_register(const struct drv_modbus_register *reg)
{
    return reg->type >= DRV_MB_UINT16 && reg->type <= DRV_MB_STRING && reg->order >= DRV_MB_ABCD &&
           reg->order <= DRV_MB_DCBA && reg->table >= DRV_MB_HOLDING &&
           reg->table <= DRV_MB_DISCRETE && reg->store >= DRV_MB_STORE_AUTO &&
           reg->store <= DRV_MB_STORE_UINT && isfinite(reg->scale) && isfinite(reg->offset);
}

/* raw * scale + offset as the sensor meant it. A scale of 1/N for a whole
 * N (0.1, 0.01, ...) divides by N: 479 * 0.1 is 47.900000000000006 but
 * 479 / 10.0 is the double nearest 47.9; and an offset of whole 1/N steps
 * is added before dividing, so that 54321 at 0.01 minus 100 is the double
 * nearest 443.21, not 443.21000000000004. */
static double scale_offset(double raw, double scale, double offset)
{
    double inv = 1.0 / scale;
    double n = nearbyint(inv);
    if (fabs(scale) < 1.0 && n != 0.0 && fabs(inv - n) < 1e-9 * fabs(n)) {
        double steps = offset * n;
        if (steps == nearbyint(steps) && fabs(steps) < 9007199254740992.0 &&
            fabs(raw) < 9007199254740992.0)
            return (raw + steps) / n;
        return raw / n + offset;
    }
    return raw * scale + offset;
}

/* A float32 as the double nearest its shortest decimal form, so that the
 * store shows 228.94186, not 228.94186401367188: the sensor sent a float32
 * and has no more digits than that. */
double drv_modbus_float32_value(float f)
{
    char buf[32];
    /* a normal float32 has a round-tripping decimal of 6 digits or fewer
     * iff %.6g is one (FLT_DIG): begin there; a subnormal may need fewer */
    for (int prec = fabsf(f) < FLT_MIN ? 1 : 6; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return (double)f;
}

/* The field's type in the store (enum drv_modbus_store, resolved). */
int drv_modbus_store_of(const struct drv_modbus_register *reg)
{
    if (bit_table(reg->table))
        return DRV_MB_STORE_AUTO; /* boolean */
    if (reg->store != DRV_MB_STORE_AUTO)
        return reg->store;
    switch (reg->type) {
    case DRV_MB_FLOAT32:
    case DRV_MB_FLOAT64:
        return DRV_MB_STORE_FLOAT;
    case DRV_MB_BOOL:
    case DRV_MB_STRING:
        return DRV_MB_STORE_AUTO; /* boolean, string */
    default:
        break;
    }
    if (reg->scale != 1.0 || reg->offset != 0.0)
        return DRV_MB_STORE_FLOAT;
    return (reg->type == DRV_MB_INT16 || reg->type == DRV_MB_INT32 || reg->type == DRV_MB_INT64)
               ? DRV_MB_STORE_INT
               : DRV_MB_STORE_UINT;
}

static int decode_string(const struct drv_modbus_register *reg, const uint16_t *regs,
                         hub_reading_t *r)
{
    char s[2 * DRV_MB_MAX_STRING_REGS + 1];
    size_t n = 0;
    unsigned len = drv_modbus_reg_width(reg);
    for (unsigned i = 0; i < len && i < DRV_MB_MAX_STRING_REGS; i++) {
        uint16_t w = drv_modbus_u16(regs[i], reg->order);
        s[n++] = (char)(w >> 8);
        s[n++] = (char)(w & 0xFF);
    }
    s[n] = '\0';
    n = strnlen(s, n); /* up to the first NUL */
    while (n > 0 && s[n - 1] == ' ')
        n--;
    s[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return HUB_EINVAL; /* not text: no value */
    return hub_reading_add_string(r, reg->field, s);
}

int drv_modbus_decode_field(const struct drv_modbus_register *reg, const uint16_t *regs,
                            const uint8_t *bits, hub_reading_t *r)
{
    if (!reg || !r || !valid_register(reg))
        return HUB_EINVAL;
    if (bit_table(reg->table)) {
        if (!bits)
            return HUB_EINVAL;
        return hub_reading_add_bool(r, reg->field, bits[0] != 0);
    }
    if (!regs)
        return HUB_EINVAL;

    double v;
    int64_t iv = 0;
    uint64_t uv = 0;
    int is_signed = 0, is_float = 0;
    switch (reg->type) {
    case DRV_MB_BOOL:
        if (reg->bit < 0 || reg->bit > 15)
            return HUB_EINVAL;
        return hub_reading_add_bool(r, reg->field,
                                    (drv_modbus_u16(regs[0], reg->order) >> reg->bit) & 1);
    case DRV_MB_STRING:
        return decode_string(reg, regs, r);
    case DRV_MB_UINT16:
        uv = drv_modbus_u16(regs[0], reg->order);
        break;
    case DRV_MB_INT16:
        iv = (int16_t)drv_modbus_u16(regs[0], reg->order);
        is_signed = 1;
        break;
    case DRV_MB_UINT32:
        uv = drv_modbus_u32(regs, reg->order);
        break;
    case DRV_MB_INT32:
        iv = (int32_t)drv_modbus_u32(regs, reg->order);
        is_signed = 1;
        break;
    case DRV_MB_UINT64:
        uv = drv_modbus_u64(regs, reg->order);
        break;
    case DRV_MB_INT64:
        iv = (int64_t)drv_modbus_u64(regs, reg->order);
        is_signed = 1;
        break;
    case DRV_MB_FLOAT32: {
        uint32_t u = drv_modbus_u32(regs, reg->order);
        float f;
        memcpy(&f, &u, sizeof(f));
        if (!isfinite(f))
            return HUB_EINVAL; /* the sensor has no value */
        v = drv_modbus_float32_value(f);
        is_float = 1;
        break;
    }
    case DRV_MB_FLOAT64:
    default: {
        uint64_t u = drv_modbus_u64(regs, reg->order);
        memcpy(&v, &u, sizeof(v));
        if (!isfinite(v))
            return HUB_EINVAL;
        is_float = 1;
        break;
    }
    }
    int store = drv_modbus_store_of(reg);
    int scaled = reg->scale != 1.0 || reg->offset != 0.0;
    if (!scaled && !is_float) { /* integers stay exact */
        if (store == DRV_MB_STORE_INT) {
            if (!is_signed && uv > (uint64_t)INT64_MAX)
                return HUB_EINVAL;
            return hub_reading_add_int(r, reg->field, is_signed ? iv : (int64_t)uv);
        }
        if (store == DRV_MB_STORE_UINT) {
            if (is_signed && iv < 0)
                return HUB_EINVAL;
            return hub_reading_add_uint(r, reg->field, is_signed ? (uint64_t)iv : uv);
        }
        v = is_signed ? (double)iv : (double)uv;
    } else if (!is_float) {
        v = is_signed ? (double)iv : (double)uv;
    }
    if (scaled)
        v = scale_offset(v, reg->scale, reg->offset);
    if (!isfinite(v))
        return HUB_EINVAL; /* a huge float times a scale */
    if (store == DRV_MB_STORE_INT) {
        double rv = nearbyint(v);
        if (!(rv >= -9223372036854775808.0 && rv < 9223372036854775808.0))
            return HUB_EINVAL;
        return hub_reading_add_int(r, reg->field, (int64_t)rv);
    }
    if (store == DRV_MB_STORE_UINT) {
        double rv = nearbyint(v);
        if (!(rv >= 0.0 && rv < 18446744073709551616.0))
            return HUB_EINVAL;
        return hub_reading_add_uint(r, reg->field, (uint64_t)rv);
    }
    return hub_reading_add_float(r, reg->field, v);
}

int drv_modbus_decode(const struct drv_modbus_register *reg, const uint16_t *regs, hub_reading_t *r)
{
    return drv_modbus_decode_field(reg, regs, NULL, r);
}

/* ---- checks (the read planner is plan.c) ------------------------------- */

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
    /* -1: not set (the profile's, else the default) */
    if (dev->max_registers < -1 || dev->max_registers == 0 ||
        dev->max_registers > DRV_MB_MAX_REGS_PER_READ) {
        snprintf(err, errlen, "device %s: max_registers %lld is not 1..%d", dev->name,
                 (long long)dev->max_registers, DRV_MB_MAX_REGS_PER_READ);
        AT(dev->nregs, "max_registers");
        return -1;
    }
    if (dev->max_gap < -1 || dev->max_gap > DRV_MB_MAX_REGS_PER_READ) {
        snprintf(err, errlen, "device %s: max_gap %lld is not 0..%d", dev->name,
                 (long long)dev->max_gap, DRV_MB_MAX_REGS_PER_READ);
        AT(dev->nregs, "max_gap");
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
            /* values no loader makes: a struct built in code */
            const char *key = reg->table < DRV_MB_HOLDING || reg->table > DRV_MB_DISCRETE ? "table"
                              : reg->type < DRV_MB_UINT16 || reg->type > DRV_MB_STRING    ? "type"
                              : reg->order < DRV_MB_ABCD || reg->order > DRV_MB_DCBA      ? "order"
                              : reg->store < DRV_MB_STORE_AUTO || reg->store > DRV_MB_STORE_UINT
                                  ? "store"
                              : !isfinite(reg->scale) ? "scale"
                                                      : "offset";
            snprintf(err, errlen, "device %s: field %s: bad %s", dev->name, reg->field, key);
            AT(i, key);
            return -1;
        }
        if (bit_table(reg->table) && reg->type != DRV_MB_BOOL && reg->type != DRV_MB_UINT16) {
            snprintf(err, errlen, "device %s: field %s: a %s holds bits: type is bool", dev->name,
                     reg->field, reg->table == DRV_MB_COIL ? "coil" : "discrete input");
            AT(i, "type");
            return -1;
        }
        if (!bit_table(reg->table) && reg->type == DRV_MB_BOOL && reg->bit < 0) {
            snprintf(err, errlen, "device %s: field %s: a bool from a register needs bit (0..15)",
                     dev->name, reg->field);
            AT(i, "bit");
            return -1;
        }
        if (reg->bit >= 0 && (reg->type != DRV_MB_BOOL || bit_table(reg->table))) {
            snprintf(err, errlen, "device %s: field %s: bit is for type bool on a register",
                     dev->name, reg->field);
            AT(i, "bit");
            return -1;
        }
        if (reg->type == DRV_MB_STRING &&
            (reg->length < 1 || reg->length > DRV_MB_MAX_STRING_REGS)) {
            snprintf(err, errlen, "device %s: field %s: a string needs length (1..%d registers)",
                     dev->name, reg->field, DRV_MB_MAX_STRING_REGS);
            AT(i, "length");
            return -1;
        }
        if ((reg->type == DRV_MB_BOOL || reg->type == DRV_MB_STRING || bit_table(reg->table)) &&
            (reg->scale != 1.0 || reg->offset != 0.0 || reg->store != DRV_MB_STORE_AUTO)) {
            snprintf(err, errlen, "device %s: field %s: scale, offset and store are for numbers",
                     dev->name, reg->field);
            AT(i, reg->scale != 1.0 ? "scale" : reg->offset != 0.0 ? "offset" : "store");
            return -1;
        }
        if (reg->address < 0 || reg->address + drv_modbus_reg_width(reg) > 65536) {
            snprintf(err, errlen, "device %s: field %s: address %lld + %u registers is past 65535",
                     dev->name, reg->field, (long long)reg->address, drv_modbus_reg_width(reg));
            AT(i, "address");
            return -1;
        }
        if (!bit_table(reg->table) && dev->max_registers >= 1 &&
            drv_modbus_reg_width(reg) > (unsigned)dev->max_registers) {
            snprintf(err, errlen,
                     "device %s: field %s: %u registers wide, more than max_registers (%lld)",
                     dev->name, reg->field, drv_modbus_reg_width(reg),
                     (long long)dev->max_registers);
            AT(i, reg->type == DRV_MB_STRING ? "length" : "type");
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
