/* tests/fuzz/fuzz_modbus_reply.c — what a Modbus slave sends us, decoded
 * into fields; and the read planner over maps made of the same bytes.
 *
 * Input layout:
 *   byte 0   type = b % 10 (uint16 int16 uint32 int32 float32 uint64 int64
 *            float64 bool string), order = (b / 10) % 4
 *   byte 1   scale = scales[b & 7], offset = offsets[(b >> 3) & 3],
 *            store = (b >> 5) & 3 (auto, float, int, uint)
 *   byte 2   bit 0: also feed the rest as a Modbus TCP reply ADU, through
 *            the poller's own checks (adu.c) and through libmodbus's client;
 *            bit 1: the second table of its kind (input, discrete);
 *            bits 2..: count - 1 (registers; for bits, times 31)
 *   byte 3   table = b & 3 (holding, input, coil, discrete); bit = (b >> 2)
 *            & 15, none when b >> 6 is 3; the planner's max_gap = b >> 4
 *   byte 4   string length = 1 + b % 64; the planner's max_registers =
 *            1 + b % 125
 *   rest     register words (big-endian pairs), decoded field after field
 *            into one reading (on a bit table each byte is one bit); with
 *            byte 2 bit 0, the raw reply bytes. Each word is also one field
 *            of a map for the planner: table w & 3, address (w >> 2) & 255,
 *            type (w >> 10) % 10, string length 1 + (w >> 14).
 * Checks: no crash, no sanitizer report; a field's type is the one its
 * register says (drv_modbus_store_of); floats finite; strings printable
 * with no trailing space; a float32 read as it is (scale 1, offset 0) reads
 * back as the same single; only what may be no value is refused (a float
 * NaN or infinite, a string not printable, a value out of the store's
 * range or overflowing its scale, a register the checks refuse); every
 * field of a planned map is read from exactly one request of its table, the
 * first that holds it, within max_registers and max_gap. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/modbus_priv.h"
#include "hub/buf.h"
#include "hub/log.h"
#include "hub/reading.h"

static const double scales[8] = {1, 0.1, 0.01, 10, -1, 1e-6, 1e30, 0.5};
static const double offsets[4] = {0, -40, 0.5, 1e300};

static int bit_table(int table)
{
    return table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
}

/* The register is one the checks accept (as a device of its own). */
static int valid(const struct drv_modbus_register *reg)
{
    struct drv_modbus_device dev;
    char err[256];
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "fuzz");
    snprintf(dev.measurement, sizeof(dev.measurement), "fuzz");
    dev.max_gap = -1;
    dev.max_registers = -1;
    dev.regs = (struct drv_modbus_register *)reg;
    dev.nregs = 1;
    return drv_modbus_check_device(&dev, err, sizeof(err)) == 0;
}

/* The float32 in w[0..2) by order, worked out apart from decode.c. */
static float single_of(const uint16_t *w, int order)
{
    uint16_t a = w[0], b = w[1];
    if (order == DRV_MB_CDAB || order == DRV_MB_DCBA) {
        a = w[1];
        b = w[0];
    }
    if (order == DRV_MB_BADC || order == DRV_MB_DCBA) {
        a = (uint16_t)(a >> 8 | a << 8);
        b = (uint16_t)(b >> 8 | b << 8);
    }
    uint32_t u = (uint32_t)a << 16 | b;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* What a refusal may mean for this register: 1 if it may be no value. */
static int may_refuse(const struct drv_modbus_register *reg)
{
    if (!valid(reg))
        return 1;
    if (bit_table(reg->table) || reg->type == DRV_MB_BOOL)
        return 0;
    if (reg->type == DRV_MB_STRING || reg->type == DRV_MB_FLOAT32 || reg->type == DRV_MB_FLOAT64)
        return 1;
    if (reg->scale != 1.0 || reg->offset != 0.0)
        return 1; /* overflow, or rounded out of an int store's range */
    return reg->store == DRV_MB_STORE_INT || reg->store == DRV_MB_STORE_UINT; /* signedness */
}

static void check_field(const struct hub_field *f, const struct drv_modbus_register *reg,
                        const uint16_t *w)
{
    if (bit_table(reg->table) || reg->type == DRV_MB_BOOL) {
        if (f->type != HUB_FIELD_BOOL)
            abort();
        return;
    }
    if (reg->type == DRV_MB_STRING) {
        if (f->type != HUB_FIELD_STRING)
            abort();
        size_t n = strlen(f->v.s);
        if (n > 2 * (size_t)reg->length || (n && f->v.s[n - 1] == ' '))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)f->v.s[i] < 0x20 || (unsigned char)f->v.s[i] > 0x7E)
                abort();
        return;
    }
    switch (drv_modbus_store_of(reg)) {
    case DRV_MB_STORE_FLOAT:
        if (f->type != HUB_FIELD_FLOAT || !isfinite(f->v.f))
            abort();
        if (reg->type == DRV_MB_FLOAT32 && reg->scale == 1.0 && reg->offset == 0.0 &&
            (float)f->v.f != single_of(w, reg->order))
            abort(); /* the shortest decimal is still the single that came */
        break;
    case DRV_MB_STORE_INT:
        if (f->type != HUB_FIELD_INT)
            abort();
        break;
    case DRV_MB_STORE_UINT:
        if (f->type != HUB_FIELD_UINT)
            abort();
        break;
    default:
        abort();
    }
}

/* Decode n words (or, on a bit table, n bits) as consecutive fields of
 * reg's kind. */
static void decode_all(struct drv_modbus_register *reg, const uint16_t *w, const uint8_t *bits,
                       size_t n)
{
    hub_reading_t *r = hub_reading_new("fuzz", 1);
    if (!r)
        return;
    unsigned width = drv_modbus_reg_width(reg);
    if (width == 0)
        abort();
    int refusable = may_refuse(reg);
    for (size_t i = 0, k = 0; i + width <= n && k < HUB_READING_MAX_FIELDS; i += width, k++) {
        snprintf(reg->field, sizeof(reg->field), "f%zu", k);
        size_t before = hub_reading_field_count(r);
        int rc = bit_table(reg->table) ? drv_modbus_decode_field(reg, NULL, &bits[i], r)
                                       : drv_modbus_decode_field(reg, &w[i], NULL, r);
        if (rc == HUB_OK) {
            if (hub_reading_field_count(r) != before + 1)
                abort();
            check_field(hub_reading_field(r, before), reg, bit_table(reg->table) ? NULL : &w[i]);
        } else if (rc != HUB_EINVAL || !refusable || hub_reading_field_count(r) != before) {
            abort();
        }
    }
    hub_reading_free(r);
}

/* The bytes as the reply to "read count at 0" from unit 1, through the
 * poller's own checks (adu.c) and unpacking. */
static void feed_poller(struct drv_modbus_register *reg, int table, unsigned count,
                        const uint8_t *p, size_t n)
{
    struct drv_mb_req q;
    if (drv_mb_req_read(&q, 0, 1, 1, table, 0, (uint16_t)count) != 0)
        abort();
    struct drv_mb_reply rep;
    char msg[160];
    if (drv_mb_reply_check(&q, p, n, &rep, msg, sizeof(msg)) != 0) {
        if (msg[0] == '\0')
            abort();
        return;
    }
    static uint16_t words[DRV_MB_MAX_REGS_PER_READ];
    static uint8_t bits[DRV_MB_MAX_BITS_PER_READ];
    if (bit_table(table)) {
        drv_mb_unpack_bits(rep.data, count, bits);
        for (unsigned i = 0; i < count; i++)
            if (bits[i] > 1)
                abort();
    } else {
        drv_mb_unpack_regs(rep.data, count, words);
    }
    decode_all(reg, words, bits, count);
}

/* The same bytes to libmodbus's own client, whose errors the commands
 * classify. */
static void feed_libmodbus(struct drv_modbus_register *reg, int table, unsigned count,
                           const uint8_t *p, size_t n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    modbus_t *mb = modbus_new_tcp("127.0.0.1", 502);
    if (!mb)
        goto out;
    modbus_set_socket(mb, sv[0]);
    modbus_set_response_timeout(mb, 0, 2000);
    modbus_set_byte_timeout(mb, 0, 2000);
    modbus_set_slave(mb, 1);
    if (n > 0 && write(sv[1], p, n) != (ssize_t)n)
        goto out;
    shutdown(sv[1], SHUT_WR); /* end of reply: no waiting for more */
    static uint16_t regs[DRV_MB_MAX_REGS_PER_READ];
    static uint8_t bits[DRV_MB_MAX_BITS_PER_READ];
    int got;
    switch (table) {
    case DRV_MB_HOLDING:
        got = modbus_read_registers(mb, 0, (int)count, regs);
        break;
    case DRV_MB_INPUT:
        got = modbus_read_input_registers(mb, 0, (int)count, regs);
        break;
    case DRV_MB_COIL:
        got = modbus_read_bits(mb, 0, (int)count, bits);
        break;
    default:
        got = modbus_read_input_bits(mb, 0, (int)count, bits);
        break;
    }
    if (got >= 0) {
        if (got != (int)count)
            abort(); /* libmodbus promises the count asked for */
        decode_all(reg, regs, bits, count);
    } else {
        char msg[128];
        int kind = drv_modbus_classify(errno, msg, sizeof(msg));
        if (kind < DRV_MB_FAIL_TIMEOUT || kind > DRV_MB_FAIL_CONNECTION || msg[0] == '\0')
            abort();
    }
out:
    if (mb)
        modbus_free(mb);
    close(sv[0]);
    close(sv[1]);
}

/* A map of up to 64 fields from the words; plan it and check the plan. */
static void plan_map(const uint16_t *w, size_t n, unsigned gap, int64_t max_registers)
{
    static struct drv_modbus_register regs[DRV_MB_MAX_REGISTERS];
    struct drv_modbus_device dev;
    memset(&dev, 0, sizeof(dev));
    dev.regs = regs;
    dev.nregs = n < DRV_MB_MAX_REGISTERS ? n : DRV_MB_MAX_REGISTERS;
    dev.max_registers = max_registers;
    int fits = 1;
    for (size_t i = 0; i < dev.nregs; i++) {
        struct drv_modbus_register *r = &regs[i];
        memset(r, 0, sizeof(*r));
        snprintf(r->field, sizeof(r->field), "f%zu", i);
        r->table = w[i] & 3;
        r->address = (w[i] >> 2) & 255;
        r->type = (w[i] >> 10) % 10;
        r->length = 1 + (w[i] >> 14);
        r->scale = 1;
        r->bit = r->type == DRV_MB_BOOL && !bit_table(r->table) ? 0 : -1;
        if ((int64_t)drv_modbus_reg_width(r) > drv_modbus_plan_limit(&dev, r->table))
            fits = 0;
    }
    struct drv_modbus_read_plan p;
    int nb = drv_modbus_plan_fields(&dev, gap, &p);
    if (nb < 0) {
        if (fits)
            abort(); /* every field fits in a request: there is a plan */
        return;
    }
    if (!fits || (size_t)nb != p.nblocks || p.nblocks > dev.nregs)
        abort();
    uint64_t seen = 0;
    for (size_t b = 0; b < p.nblocks; b++) {
        const struct drv_modbus_block *blk = &p.block[b];
        if (blk->count == 0 || blk->count > drv_modbus_plan_limit(&dev, blk->table) ||
            p.fields[b] == 0 || (seen & p.fields[b]))
            abort();
        seen |= p.fields[b];
        /* no run of more than gap unused registers inside the request */
        unsigned char used[2 * DRV_MB_MAX_BITS_PER_READ] = {0};
        for (size_t i = 0; i < dev.nregs; i++)
            if (regs[i].table == blk->table)
                for (int64_t a = regs[i].address;
                     a < regs[i].address + (int64_t)drv_modbus_reg_width(&regs[i]); a++)
                    if (a >= blk->address && a < blk->address + blk->count)
                        used[a - blk->address] = 1;
        unsigned run = 0;
        for (unsigned a = 0; a < blk->count; a++) {
            run = used[a] ? 0 : run + 1;
            if (run > gap)
                abort();
        }
        if (!used[0] || !used[blk->count - 1])
            abort();
    }
    if (seen != (dev.nregs == 64 ? ~0ull : (1ull << dev.nregs) - 1))
        abort();
    for (size_t i = 0; i < dev.nregs; i++) {
        int b = drv_modbus_plan_find(p.block, p.nblocks, &regs[i]);
        if (b < 0 || !(p.fields[b] & (1ull << i)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_log_set_level(HUB_LOG_ERROR);
    if (size < 5)
        return 0;
    struct drv_modbus_register reg;
    memset(&reg, 0, sizeof(reg));
    reg.type = data[0] % 10;
    reg.order = (data[0] / 10) % 4;
    reg.scale = scales[data[1] & 7];
    reg.offset = offsets[(data[1] >> 3) & 3];
    reg.store = (data[1] >> 5) & 3;
    int mode = data[2];
    reg.table = data[3] & 3;
    reg.bit = (data[3] >> 6) == 3 ? -1 : (data[3] >> 2) & 15;
    reg.length = 1 + data[4] % DRV_MB_MAX_STRING_REGS;
    unsigned gap = data[3] >> 4;
    int64_t max_registers = 1 + data[4] % DRV_MB_MAX_REGS_PER_READ;
    data += 5;
    size -= 5;

    static uint16_t words[DRV_MB_MAX_BITS_PER_READ];
    static uint8_t bits[DRV_MB_MAX_BITS_PER_READ];
    size_t n = 0;
    for (size_t i = 0; i + 1 < size && n < DRV_MB_MAX_BITS_PER_READ; i += 2)
        words[n++] = (uint16_t)(data[i] << 8 | data[i + 1]);
    size_t nbits = size < DRV_MB_MAX_BITS_PER_READ ? size : DRV_MB_MAX_BITS_PER_READ;
    memcpy(bits, data, nbits);
    decode_all(&reg, words, bits, bit_table(reg.table) ? nbits : n);
    plan_map(words, n, gap, max_registers);

    if ((mode & 1) && size <= 1024) {
        /* the table of the register's kind: holding/input, coil/discrete */
        int table = bit_table(reg.table) ? DRV_MB_COIL + ((mode >> 1) & 1) : (mode >> 1) & 1;
        reg.table = table;
        unsigned count = bit_table(table) ? 1 + (unsigned)(mode >> 2) * 31
                                          : 1 + (unsigned)(mode >> 2) % DRV_MB_MAX_REGS_PER_READ;
        feed_poller(&reg, table, count, data, size);
        feed_libmodbus(&reg, table, count, data, size);
    }
    return 0;
}
