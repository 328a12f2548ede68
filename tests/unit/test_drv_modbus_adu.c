/* tests/unit/test_drv_modbus_adu.c — Modbus frames (drivers/modbus/adu.c):
 * requests byte for byte, frame lengths from partial input, and every way a
 * reply can be wrong refused with its own message and no value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/modbus_priv.h"

static void test_tcp_read_request(void **state)
{
    (void)state;
    struct drv_mb_req q;
    assert_int_equal(drv_mb_req_read(&q, 0, 0x1234, 17, DRV_MB_HOLDING, 0x0102, 10), 0);
    const uint8_t want[] = {0x12, 0x34, 0, 0, 0, 6, 17, 3, 0x01, 0x02, 0, 10};
    assert_int_equal(q.len, sizeof(want));
    assert_memory_equal(q.adu, want, sizeof(want));
    assert_int_equal(q.expect_bytes, 20);
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_COIL, 0, 2000), 0);
    assert_int_equal(q.adu[7], 1);
    assert_int_equal(q.expect_bytes, 250);
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_DISCRETE, 0, 9), 0);
    assert_int_equal(q.adu[7], 2);
    assert_int_equal(q.expect_bytes, 2);
    /* limits */
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_HOLDING, 0, 126), -1);
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_COIL, 0, 2001), -1);
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_INPUT, 65535, 2), -1);
    assert_int_equal(drv_mb_req_read(&q, 0, 1, 1, DRV_MB_INPUT, 0, 0), -1);
}

static void test_rtu_read_request(void **state)
{
    (void)state;
    struct drv_mb_req q;
    /* the classic example: unit 1, read holding 0, 10 registers: CRC C5CD */
    assert_int_equal(drv_mb_req_read(&q, 1, 0, 1, DRV_MB_HOLDING, 0, 10), 0);
    const uint8_t want[] = {1, 3, 0, 0, 0, 10, 0xC5, 0xCD};
    assert_int_equal(q.len, sizeof(want));
    assert_memory_equal(q.adu, want, sizeof(want));
}

static void test_frame_len(void **state)
{
    (void)state;
    const uint8_t tcp[] = {0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2};
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(drv_mb_frame_len(0, tcp, i), 0);
    assert_int_equal(drv_mb_frame_len(0, tcp, 7), 13);
    const uint8_t tcp_bad[] = {0, 1, 0, 0, 0xFF, 0xFF, 1};
    assert_int_equal(drv_mb_frame_len(0, tcp_bad, 7), -1);
    const uint8_t tcp_zero[] = {0, 1, 0, 0, 0, 1, 1};
    assert_int_equal(drv_mb_frame_len(0, tcp_zero, 7), -1);

    const uint8_t rtu[] = {1, 3, 4, 0, 1, 0, 2, 0, 0};
    assert_int_equal(drv_mb_frame_len(1, rtu, 1), 0);
    assert_int_equal(drv_mb_frame_len(1, rtu, 2), 0);
    assert_int_equal(drv_mb_frame_len(1, rtu, 3), 9);
    const uint8_t rtu_exc[] = {1, 0x83, 2};
    assert_int_equal(drv_mb_frame_len(1, rtu_exc, 2), 5);
    const uint8_t rtu_unknown[] = {1, 0x42};
    assert_int_equal(drv_mb_frame_len(1, rtu_unknown, 2), -1);
    /* device identification: 2 objects "ab" and "c" */
    const uint8_t ident[] = {1, 0x2B, 0x0E, 1, 1, 0, 0, 2, 0, 2, 'a', 'b', 1, 1, 'c', 0, 0};
    assert_int_equal(drv_mb_frame_len(1, ident, 8), 0);
    assert_int_equal(drv_mb_frame_len(1, ident, 12), 0);
    assert_int_equal(drv_mb_frame_len(1, ident, 14), 17);
}

/* A good TCP reply to q with count registers 0x0101, 0x0202, ... */
static size_t tcp_reply(const struct drv_mb_req *q, uint8_t *a)
{
    size_t n = 2u * q->count;
    a[0] = (uint8_t)(q->tid >> 8);
    a[1] = (uint8_t)q->tid;
    a[2] = a[3] = 0;
    a[4] = (uint8_t)((n + 3) >> 8);
    a[5] = (uint8_t)(n + 3);
    a[6] = q->unit;
    a[7] = q->fc;
    a[8] = (uint8_t)n;
    for (size_t i = 0; i < q->count; i++)
        a[9 + 2 * i] = a[10 + 2 * i] = (uint8_t)(i + 1);
    return 9 + n;
}

static int check(const struct drv_mb_req *q, const uint8_t *a, size_t len, char *msg)
{
    struct drv_mb_reply rep;
    return drv_mb_reply_check(q, a, len, &rep, msg, 160);
}

static void test_tcp_reply_checks(void **state)
{
    (void)state;
    struct drv_mb_req q;
    uint8_t a[DRV_MB_ADU_MAX];
    char msg[160];
    struct drv_mb_reply rep;
    assert_int_equal(drv_mb_req_read(&q, 0, 77, 17, DRV_MB_HOLDING, 100, 2), 0);
    size_t len = tcp_reply(&q, a);
    assert_int_equal(drv_mb_reply_check(&q, a, len, &rep, msg, sizeof(msg)), 0);
    uint16_t w[2];
    drv_mb_unpack_regs(rep.data, 2, w);
    assert_int_equal(w[0], 0x0101);
    assert_int_equal(w[1], 0x0202);

    /* the reply of another unit (17 asked, 9 answered) is no value */
    a[6] = 9;
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_string_equal(msg, "bad reply: from unit 9, asked unit 17");
    a[6] = 17;
    a[3] = 1; /* protocol id 1 */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "protocol id 1"));
    a[3] = 0;
    a[2] = 1; /* protocol id 0x0100: libmodbus 3.1.6 let this through */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    a[2] = 0;
    a[1] = 78; /* transaction id */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "transaction id 78"));
    a[1] = 77;
    a[7] = 4; /* function */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "function 4"));
    a[7] = 3;
    a[8] = 2; /* byte count disagrees with the frame */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "byte count"));
    a[8] = 4;
    a[5]++; /* MBAP length disagrees */
    assert_int_equal(check(&q, a, len, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "MBAP length"));
    a[5]--;
    assert_int_equal(check(&q, a, len, msg), 0);
    /* one register short, consistent in itself */
    a[5] -= 2;
    a[8] = 2;
    assert_int_equal(check(&q, a, len - 2, msg), DRV_MB_FAIL_BAD_REPLY);
    assert_non_null(strstr(msg, "asked 4"));
    /* too short to be a frame at all */
    assert_int_equal(check(&q, a, 7, msg), DRV_MB_FAIL_BAD_REPLY);
}

static void test_exceptions(void **state)
{
    (void)state;
    struct drv_mb_req q;
    char msg[160];
    struct drv_mb_reply rep;
    assert_int_equal(drv_mb_req_read(&q, 0, 5, 3, DRV_MB_INPUT, 0, 1), 0);
    uint8_t a[] = {0, 5, 0, 0, 0, 3, 3, 0x84, 6};
    assert_int_equal(drv_mb_reply_check(&q, a, sizeof(a), &rep, msg, sizeof(msg)),
                     DRV_MB_FAIL_EXCEPTION);
    assert_int_equal(rep.exception, 6);
    assert_string_equal(msg, "exception 6 (slave device busy)");
    a[8] = 11;
    assert_int_equal(drv_mb_reply_check(&q, a, sizeof(a), &rep, msg, sizeof(msg)),
                     DRV_MB_FAIL_EXCEPTION);
    assert_string_equal(msg, "exception 11 (gateway target failed to respond)");
    /* an exception to another function is a bad reply */
    a[7] = 0x83;
    assert_int_equal(drv_mb_reply_check(&q, a, sizeof(a), &rep, msg, sizeof(msg)),
                     DRV_MB_FAIL_BAD_REPLY);
}

static void test_rtu_reply_checks(void **state)
{
    (void)state;
    struct drv_mb_req q;
    char msg[160];
    struct drv_mb_reply rep;
    assert_int_equal(drv_mb_req_read(&q, 1, 0, 4, DRV_MB_COIL, 0, 10), 0);
    uint8_t a[7] = {4, 1, 2, 0xA5, 0x02};
    uint16_t crc = drv_mb_crc16(a, 5);
    a[5] = (uint8_t)crc;
    a[6] = (uint8_t)(crc >> 8);
    assert_int_equal(drv_mb_frame_len(1, a, 3), 7);
    assert_int_equal(drv_mb_reply_check(&q, a, 7, &rep, msg, sizeof(msg)), 0);
    uint8_t bits[10];
    drv_mb_unpack_bits(rep.data, 10, bits);
    const uint8_t want[10] = {1, 0, 1, 0, 0, 1, 0, 1, 0, 1};
    assert_memory_equal(bits, want, 10);
    a[6] ^= 1;
    assert_int_equal(drv_mb_reply_check(&q, a, 7, &rep, msg, sizeof(msg)), DRV_MB_FAIL_BAD_REPLY);
    assert_string_equal(msg, "bad reply: bad CRC");
}

static void test_hex(void **state)
{
    (void)state;
    char out[16];
    const uint8_t p[] = {0x01, 0xAB, 0x00, 0xFF, 0x10};
    drv_mb_hex(p, sizeof(p), out, sizeof(out));
    assert_string_equal(out, "01 ab 00 ff 10");
    drv_mb_hex(p, sizeof(p), out, 8);
    assert_string_equal(out, "01 ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_read_request),
        cmocka_unit_test(test_rtu_read_request),
        cmocka_unit_test(test_frame_len),
        cmocka_unit_test(test_tcp_reply_checks),
        cmocka_unit_test(test_exceptions),
        cmocka_unit_test(test_rtu_reply_checks),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
