/* tests/unit/test_hub_crc32c.c — CRC-32C against published vectors
 * (RFC 3720 B.4 and the "123456789" check value), split == one-shot, mask. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hub/crc32c.h"

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(hub_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(hub_crc32c(0, "", 0), 0u);
    assert_int_equal(hub_crc32c(0, "a", 1), 0xC1D04330u);
}

static void test_rfc3720_vectors(void **state)
{
    (void)state;
    uint8_t b[32];

    memset(b, 0, sizeof(b));
    assert_int_equal(hub_crc32c(0, b, sizeof(b)), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(hub_crc32c(0, b, sizeof(b)), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(hub_crc32c(0, b, sizeof(b)), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(hub_crc32c(0, b, sizeof(b)), 0x113FDB5Cu);
}

/* Bit-at-a-time reference, to check the sliced loop on every length and
 * alignment. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_split_equals_oneshot(void **state)
{
    (void)state;
    uint8_t b[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(b); i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof(b); n += 7) {
            uint32_t whole = hub_crc32c(0, b + off, n);
            assert_int_equal(whole, crc_ref(b + off, n));
            for (size_t cut = 0; cut <= n; cut += 5) {
                uint32_t c = hub_crc32c(0, b + off, cut);
                c = hub_crc32c(c, b + off + cut, n - cut);
                assert_int_equal(c, whole);
            }
        }
    }
}

static void test_mask_roundtrip(void **state)
{
    (void)state;
    uint32_t vals[] = {0, 1, 0xE3069283u, 0xffffffffu, 0x80000000u, 0xa282ead8u};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint32_t m = hub_crc32c_mask(vals[i]);
        assert_int_equal(hub_crc32c_unmask(m), vals[i]);
    }
    /* The mask changes the value (LevelDB's crc32c::Mask). */
    assert_int_not_equal(hub_crc32c_mask(0xE3069283u), 0xE3069283u);
    assert_int_equal(hub_crc32c_mask(0), 0xa282ead8u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_split_equals_oneshot),
        cmocka_unit_test(test_mask_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
