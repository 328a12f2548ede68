/* drivers/modbus/adu.c — Modbus frames on the wire: requests built, replies
 * cut out of a byte stream and checked against the request they answer. No
 * I/O here: a slave's bytes are outside input, so all of it is unit-tested
 * and fuzzed (tests/fuzz/fuzz_modbus_adu.c).
 *
 *   TCP  MBAP header: transaction id (2), protocol id (2, always 0),
 *        length (2: the bytes that follow, unit id included), unit id (1);
 *        then the PDU. No checksum.
 *   RTU  unit id (1), PDU, CRC-16 (2, low byte first).
 *
 * A reply is accepted only if every one of these holds: the transaction id
 * is the request's (TCP), the protocol id is 0 (TCP), the MBAP length
 * matches the bytes received (TCP), the CRC is right (RTU), the unit id is
 * the request's, the function code is the request's (or it with bit 7 set:
 * an exception, whose code is then reported), and the byte count is exactly
 * what the request asked for. Anything else is a bad reply and no value is
 * taken from it. */
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/modbus_priv.h"

uint16_t drv_mb_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

int drv_mb_table_fc(int table)
{
    switch (table) {
    case DRV_MB_COIL:
        return 1;
    case DRV_MB_DISCRETE:
        return 2;
    case DRV_MB_INPUT:
        return 4;
    case DRV_MB_HOLDING:
    default:
        return 3;
    }
}

const char *drv_mb_table_name(int table)
{
    switch (table) {
    case DRV_MB_COIL:
        return "coil";
    case DRV_MB_DISCRETE:
        return "discrete";
    case DRV_MB_INPUT:
        return "input";
    case DRV_MB_HOLDING:
    default:
        return "holding";
    }
}

int drv_mb_req_pdu(struct drv_mb_req *q, int rtu, uint16_t tid, uint8_t unit, const uint8_t *pdu,
                   size_t n)
{
    if (n < 1 || n > DRV_MB_PDU_MAX)
        return -1;
    memset(q, 0, sizeof(*q));
    q->rtu = rtu;
    q->tid = tid;
    q->unit = unit;
    q->fc = pdu[0];
    if (rtu) {
        q->adu[0] = unit;
        memcpy(q->adu + 1, pdu, n);
        uint16_t crc = drv_mb_crc16(q->adu, n + 1);
        q->adu[n + 1] = (uint8_t)crc;
        q->adu[n + 2] = (uint8_t)(crc >> 8);
        q->len = n + 3;
    } else {
        q->adu[0] = (uint8_t)(tid >> 8);
        q->adu[1] = (uint8_t)tid;
        q->adu[2] = 0;
        q->adu[3] = 0;
        q->adu[4] = (uint8_t)((n + 1) >> 8);
        q->adu[5] = (uint8_t)(n + 1);
        q->adu[6] = unit;
        memcpy(q->adu + 7, pdu, n);
        q->len = n + 7;
    }
    return 0;
}

int drv_mb_req_read(struct drv_mb_req *q, int rtu, uint16_t tid, uint8_t unit, int table,
                    uint16_t address, uint16_t count)
{
    int bits = table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
    if (count < 1 || count > (bits ? DRV_MB_MAX_BITS_PER_READ : DRV_MB_MAX_REGS_PER_READ) ||
        (uint32_t)address + count > 65536u)
        return -1;
    uint8_t pdu[5] = {(uint8_t)drv_mb_table_fc(table), (uint8_t)(address >> 8), (uint8_t)address,
                      (uint8_t)(count >> 8), (uint8_t)count};
    if (drv_mb_req_pdu(q, rtu, tid, unit, pdu, sizeof(pdu)) != 0)
        return -1;
    q->count = count;
    q->address = address;
    q->expect_bytes = bits ? (count + 7u) / 8u : 2u * count;
    return 0;
}

/* RTU: the length of a Read Device Identification reply (function 0x2B, MEI
 * 0x0E) from its object list, as far as it can be known from have bytes. */
static long rtu_ident_len(const uint8_t *b, size_t have)
{
    /* unit fc mei code conformity more next nobj, then (id len data)* */
    if (have < 8)
        return 0;
    size_t off = 8;
    for (unsigned i = 0; i < b[7]; i++) {
        if (have < off + 2)
            return 0;
        off += 2u + b[off + 1];
        if (off + 2 > DRV_MB_ADU_MAX)
            return -1;
    }
    return (long)(off + 2);
}

long drv_mb_frame_len(int rtu, const uint8_t *b, size_t have)
{
    if (!rtu) {
        if (have < 7)
            return 0;
        unsigned l = (unsigned)b[4] << 8 | b[5];
        if (l < 2 || 6u + l > DRV_MB_ADU_MAX)
            return -1;
        return (long)(6u + l);
    }
    if (have < 2)
        return 0;
    uint8_t fc = b[1];
    if (fc & 0x80)
        return 5; /* unit fc code crc crc */
    switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
        if (have < 3)
            return 0;
        return 3L + b[2] + 2L;
    case 5:
    case 6:
    case 15:
    case 16:
        return 8; /* unit fc address value/count crc */
    case 0x2B:
        return rtu_ident_len(b, have);
    default:
        return -1;
    }
}

int drv_mb_reply_check(const struct drv_mb_req *q, const uint8_t *a, size_t len,
                       struct drv_mb_reply *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    size_t h = q->rtu ? 1 : 7;
    size_t tail = q->rtu ? 2 : 0;
    if (len < h + 2 + tail) {
        snprintf(msg, msglen, "bad reply: %zu bytes, too short for a Modbus frame", len);
        return DRV_MB_FAIL_BAD_REPLY;
    }
    if (q->rtu) {
        uint16_t crc = drv_mb_crc16(a, len - 2);
        if (a[len - 2] != (uint8_t)crc || a[len - 1] != (uint8_t)(crc >> 8)) {
            snprintf(msg, msglen, "bad reply: bad CRC");
            return DRV_MB_FAIL_BAD_REPLY;
        }
    } else {
        uint16_t tid = (uint16_t)(a[0] << 8 | a[1]);
        uint16_t proto = (uint16_t)(a[2] << 8 | a[3]);
        size_t l = (size_t)(a[4] << 8 | a[5]);
        if (tid != q->tid) {
            snprintf(msg, msglen, "bad reply: transaction id %u, asked %u", tid, q->tid);
            return DRV_MB_FAIL_BAD_REPLY;
        }
        if (proto != 0) {
            snprintf(msg, msglen, "bad reply: MBAP protocol id %u, not 0 (not Modbus)", proto);
            return DRV_MB_FAIL_BAD_REPLY;
        }
        if (l + 6 != len) {
            snprintf(msg, msglen, "bad reply: MBAP length %zu for %zu bytes", l, len - 6);
            return DRV_MB_FAIL_BAD_REPLY;
        }
    }
    uint8_t unit = a[h - 1], fc = a[h];
    if (unit != q->unit) {
        snprintf(msg, msglen, "bad reply: from unit %u, asked unit %u", unit, q->unit);
        return DRV_MB_FAIL_BAD_REPLY;
    }
    size_t pdu_len = len - h - tail; /* fc included */
    if (fc == (q->fc | 0x80)) {
        if (pdu_len != 2) {
            snprintf(msg, msglen, "bad reply: malformed exception");
            return DRV_MB_FAIL_BAD_REPLY;
        }
        out->exception = a[h + 1];
        snprintf(msg, msglen, "exception %d (%s)", out->exception,
                 drv_modbus_exception_name(out->exception));
        return DRV_MB_FAIL_EXCEPTION;
    }
    if (fc != q->fc) {
        snprintf(msg, msglen, "bad reply: function %u, asked %u", fc, q->fc);
        return DRV_MB_FAIL_BAD_REPLY;
    }
    out->pdu = a + h;
    out->pdu_len = pdu_len;
    if (q->expect_bytes == 0)
        return 0; /* not a read: the caller parses the PDU */
    size_t n = a[h + 1];
    if (n + 2 != pdu_len) {
        snprintf(msg, msglen, "bad reply: byte count %zu for %zu bytes", n, pdu_len - 2);
        return DRV_MB_FAIL_BAD_REPLY;
    }
    if (n != q->expect_bytes) {
        snprintf(msg, msglen, "bad reply: %zu data bytes, asked %u", n, q->expect_bytes);
        return DRV_MB_FAIL_BAD_REPLY;
    }
    out->data = a + h + 2;
    out->ndata = n;
    return 0;
}

void drv_mb_unpack_regs(const uint8_t *data, size_t count, uint16_t *words)
{
    for (size_t i = 0; i < count; i++)
        words[i] = (uint16_t)(data[2 * i] << 8 | data[2 * i + 1]);
}

void drv_mb_unpack_bits(const uint8_t *data, size_t count, uint8_t *bits)
{
    for (size_t i = 0; i < count; i++)
        bits[i] = (uint8_t)((data[i / 8] >> (i % 8)) & 1);
}

size_t drv_mb_hex(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n && o + 4 <= cap; i++) {
        if (i)
            out[o++] = ' ';
        out[o++] = hex[p[i] >> 4];
        out[o++] = hex[p[i] & 15];
    }
    out[o] = '\0';
    return o;
}
