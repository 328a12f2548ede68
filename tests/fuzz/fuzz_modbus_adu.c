/* tests/fuzz/fuzz_modbus_adu.c — a Modbus reply frame as a slave (or
 * anything on the line) sends it: cut from the stream and checked against
 * the request (drivers/modbus/adu.c).
 *
 * Input layout:
 *   byte 0   bit 0: RTU (else TCP); bits 1-2: table; bits 3-7: unit id
 *   byte 1   the request's count: registers b % 125 + 1, bits 7 b + 1
 *   rest     the bytes received
 * Checks: frame_len never asks for less than it has seen nor more than a
 * frame can hold; a reply accepted carries exactly the bytes asked for,
 * inside the frame, from the unit and function asked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/modbus_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int rtu = data[0] & 1;
    int table = (data[0] >> 1) & 3;
    uint8_t unit = (uint8_t)(data[0] >> 3);
    int bit_table = table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
    uint16_t count = (uint16_t)(bit_table ? data[1] * 7u + 1u : data[1] % 125u + 1u);
    struct drv_mb_req q;
    if (drv_mb_req_read(&q, rtu, 0x0001, unit, table, 0, count) != 0)
        abort();
    const uint8_t *b = data + 2;
    size_t n = size - 2;
    if (n > DRV_MB_ADU_MAX)
        n = DRV_MB_ADU_MAX;

    /* the receive loop: grow until the frame's length is known and met */
    size_t have = 0;
    long want = 0;
    while (have < n) {
        want = drv_mb_frame_len(rtu, b, have);
        if (want < 0)
            return 0;
        if (want > 0 && (size_t)want <= have)
            break;
        if (want > DRV_MB_ADU_MAX)
            abort();
        have++;
    }
    want = drv_mb_frame_len(rtu, b, have);
    if (want <= 0 || (size_t)want > have)
        return 0; /* incomplete: the poller times out */
    struct drv_mb_reply rep;
    char msg[160];
    int rc = drv_mb_reply_check(&q, b, (size_t)want, &rep, msg, sizeof(msg));
    if (rc == 0) {
        if (rep.ndata != q.expect_bytes || rep.data < b || rep.data + rep.ndata > b + want)
            abort();
        if (b[rtu ? 0 : 6] != unit || b[rtu ? 1 : 7] != q.fc)
            abort();
        uint16_t words[DRV_MB_MAX_REGS_PER_READ];
        uint8_t bits[DRV_MB_MAX_BITS_PER_READ];
        if (bit_table)
            drv_mb_unpack_bits(rep.data, count, bits);
        else
            drv_mb_unpack_regs(rep.data, count, words);
    } else if (rc != DRV_MB_FAIL_BAD_REPLY && rc != DRV_MB_FAIL_EXCEPTION) {
        abort();
    } else if (msg[0] == '\0') {
        abort(); /* every refusal says why */
    }
    return 0;
}
