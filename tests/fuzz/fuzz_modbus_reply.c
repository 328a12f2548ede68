/* tests/fuzz/fuzz_modbus_reply.c — what a Modbus slave sends us.
 *
 * Input layout:
 *   byte 0   register config: type = b % 5, order = (b / 5) % 4
 *   byte 1   scale index (1, 0.1, 0.01, 10, -1, 1e-6, 1e30, 0.5)
 *   byte 2   bit 0: also feed the rest as a Modbus TCP reply ADU to a
 *            libmodbus client (bit 1: input registers, bits 2..: count-1)
 *   rest     register words (big-endian pairs), decoded field by field
 *            into one reading; and, with bit 0, the raw reply bytes.
 * Checks: no crash, no sanitizer report, every float field finite, an
 * integer field only when scale is 1 and the type is an integer. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/modbus_priv.h"
#include "hub/buf.h"
#include "hub/log.h"
#include "hub/reading.h"

static const double scales[8] = {1, 0.1, 0.01, 10, -1, 1e-6, 1e30, 0.5};

static void check_reading(const hub_reading_t *r, const struct drv_modbus_register *reg)
{
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        if (f->type == HUB_FIELD_FLOAT && !isfinite(f->v.f))
            abort();
        int integer = reg->scale == 1.0 && reg->type != DRV_MB_FLOAT32;
        if (integer != (f->type != HUB_FIELD_FLOAT))
            abort();
    }
}

/* Decode n words as consecutive registers of reg's type. */
static void decode_words(struct drv_modbus_register *reg, const uint16_t *w, size_t n)
{
    hub_reading_t *r = hub_reading_new("fuzz", 1);
    if (!r)
        return;
    unsigned width = drv_modbus_type_width(reg->type);
    for (size_t i = 0, k = 0; i + width <= n && k < HUB_READING_MAX_FIELDS; i += width, k++) {
        snprintf(reg->field, sizeof(reg->field), "f%zu", k);
        int rc = drv_modbus_decode(reg, &w[i], r);
        if (rc != HUB_OK && rc != HUB_EINVAL)
            abort();
        if (rc == HUB_EINVAL && reg->type != DRV_MB_FLOAT32 && reg->scale < 1e20)
            abort(); /* only floats (or overflowing scales) may be refused */
    }
    check_reading(r, reg);
    hub_reading_free(r);
}

/* The bytes as a reply to "read count registers at 0" from unit 1, through
 * libmodbus's own client code. */
static void feed_adu(struct drv_modbus_register *reg, int input, int count, const uint8_t *p,
                     size_t n)
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
    uint16_t regs[DRV_MB_MAX_REGS_PER_READ];
    int got = input ? modbus_read_input_registers(mb, 0, count, regs)
                    : modbus_read_registers(mb, 0, count, regs);
    if (got >= 0) {
        if (got != count)
            abort(); /* libmodbus promises the count asked for */
        decode_words(reg, regs, (size_t)got);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_log_set_level(HUB_LOG_ERROR);
    if (size < 3)
        return 0;
    struct drv_modbus_register reg;
    memset(&reg, 0, sizeof(reg));
    reg.type = data[0] % 5;
    reg.order = (data[0] / 5) % 4;
    reg.scale = scales[data[1] % 8];
    int mode = data[2];
    data += 3;
    size -= 3;

    uint16_t words[256];
    size_t n = 0;
    for (size_t i = 0; i + 1 < size && n < 256; i += 2)
        words[n++] = (uint16_t)(data[i] << 8 | data[i + 1]);
    decode_words(&reg, words, n);

    if ((mode & 1) && size <= 1024)
        feed_adu(&reg, (mode >> 1) & 1, 1 + (mode >> 2) % DRV_MB_MAX_REGS_PER_READ, data, size);
    return 0;
}
