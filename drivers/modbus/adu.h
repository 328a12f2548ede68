/* drivers/modbus/adu.h — Modbus TCP and RTU frames: requests built, replies
 * cut from a stream and checked (adu.c). Shared by the poller, the
 * commissioning commands, the unit tests and the fuzz harness. */
#ifndef DRV_MODBUS_ADU_H
#define DRV_MODBUS_ADU_H

#include <stddef.h>
#include <stdint.h>

#define DRV_MB_PDU_MAX 253
#define DRV_MB_ADU_MAX 260 /* TCP: 7 + 253; RTU: 1 + 253 + 2 */

struct drv_mb_req {
    int rtu;
    uint16_t tid; /* tcp */
    uint8_t unit;
    uint8_t fc;
    uint16_t address, count;
    unsigned expect_bytes; /* reads: the byte count the reply must carry; 0 = not a read */
    size_t len;
    uint8_t adu[DRV_MB_ADU_MAX];
};

/* A reply that passed drv_mb_reply_check: pdu/pdu_len the whole PDU
 * (function code first); for reads data/ndata the values. */
struct drv_mb_reply {
    int exception; /* with DRV_MB_FAIL_EXCEPTION: the slave's code */
    const uint8_t *pdu;
    size_t pdu_len;
    const uint8_t *data;
    size_t ndata;
};

uint16_t drv_mb_crc16(const uint8_t *p, size_t n);
/* Function code that reads a table (enum drv_modbus_table), and its name. */
int drv_mb_table_fc(int table);
const char *drv_mb_table_name(int table);

/* A request with PDU pdu (function code first, n bytes) to unit, framed for
 * TCP (transaction id tid) or RTU (CRC). Returns 0, or -1 if n is 0 or
 * more than DRV_MB_PDU_MAX. */
int drv_mb_req_pdu(struct drv_mb_req *q, int rtu, uint16_t tid, uint8_t unit, const uint8_t *pdu,
                   size_t n);
/* A read of count registers (or bits, for coil and discrete) of table from
 * address. Returns 0, or -1 if count is 0, above the protocol's limit (125
 * registers, 2000 bits) or runs past 65535. */
int drv_mb_req_read(struct drv_mb_req *q, int rtu, uint16_t tid, uint8_t unit, int table,
                    uint16_t address, uint16_t count);

/* The length of the reply frame that starts at b, from the have bytes
 * received so far: > 0 the whole frame's length (it may be more than have:
 * read on), 0 more bytes are needed to know it, -1 these bytes cannot start
 * a reply (an impossible length, an unknown function on RTU). */
long drv_mb_frame_len(int rtu, const uint8_t *b, size_t have);

/* Check the reply a[0..len) against q (see adu.c). Returns 0 with out set,
 * DRV_MB_FAIL_EXCEPTION with out->exception, or DRV_MB_FAIL_BAD_REPLY; msg
 * says which ("bad reply: from unit 9, asked unit 17"). */
int drv_mb_reply_check(const struct drv_mb_req *q, const uint8_t *a, size_t len,
                       struct drv_mb_reply *out, char *msg, size_t msglen);

/* A read reply's data as registers (big-endian pairs) or bits (LSB first,
 * one byte 0/1 per bit). */
void drv_mb_unpack_regs(const uint8_t *data, size_t count, uint16_t *words);
void drv_mb_unpack_bits(const uint8_t *data, size_t count, uint8_t *bits);

/* "01 03 00 0a": bytes in hex, as much as fits in cap (NUL included).
 * Returns the length written. */
size_t drv_mb_hex(const uint8_t *p, size_t n, char *out, size_t cap);

#endif
