/* tests/unit/test_drv_modbus_types.c — decoding of every type in every
 * byte order (drv_modbus_decode_field), against values whose register words
 * the test builds itself: the value's big-endian bytes, cut into 16-bit
 * words, then reversed (CDAB, DCBA) and/or byte-swapped (BADC, DCBA) as the
 * order says; and against the literal words of docs/simulator.md's `types`
 * profile. float32 stored as its shortest decimal, bits (coils, discrete
 * inputs, bit N of a register), strings, scale / offset / store, NaN and
 * infinity refused, integers out of the store's range refused, and the
 * device checks of those keys. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/modbus_priv.h"
#include "hub/reading.h"

/* ---- helpers ------------------------------------------------------------- */

static struct drv_modbus_register reg_of(int type, int order)
{
    struct drv_modbus_register r;
    memset(&r, 0, sizeof(r));
    snprintf(r.field, sizeof(r.field), "v");
    r.table = DRV_MB_HOLDING;
    r.type = type;
    r.order = order;
    r.scale = 1.0;
    r.bit = -1;
    return r;
}

/* The words of n registers holding the big-endian bytes be[0..2n) in an
 * order. */
static void words_of(const uint8_t *be, unsigned n, int order, uint16_t *w)
{
    int reverse = order == DRV_MB_CDAB || order == DRV_MB_DCBA;
    int swap = order == DRV_MB_BADC || order == DRV_MB_DCBA;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = reverse ? n - 1 - i : i;
        uint8_t hi = be[2 * k], lo = be[2 * k + 1];
        w[i] = swap ? (uint16_t)(lo << 8 | hi) : (uint16_t)(hi << 8 | lo);
    }
}

/* The big-endian bytes of the low 2n bytes of v. */
static void be_of(uint64_t v, unsigned n, uint8_t *be)
{
    for (unsigned i = 0; i < 2 * n; i++)
        be[i] = (uint8_t)(v >> (8 * (2 * n - 1 - i)));
}

/* Decode reg from words (or bits) into a fresh reading. Returns the rc and,
 * when HUB_OK, the one field in *f (a string's value copied into sbuf). */
static int decode(const struct drv_modbus_register *reg, const uint16_t *w, const uint8_t *bits,
                  struct hub_field *f, char *sbuf, size_t slen)
{
    hub_reading_t *r = hub_reading_new("m", 1);
    assert_non_null(r);
    int rc = drv_modbus_decode_field(reg, w, bits, r);
    if (rc == HUB_OK) {
        assert_int_equal(hub_reading_field_count(r), 1);
        *f = *hub_reading_field(r, 0);
        f->key = NULL;
        if (f->type == HUB_FIELD_STRING) {
            assert_non_null(sbuf);
            snprintf(sbuf, slen, "%s", f->v.s);
            f->v.s = sbuf;
        }
    } else {
        assert_int_equal(hub_reading_field_count(r), 0);
    }
    hub_reading_free(r);
    return rc;
}

/* Decode a value of type (its raw bits in the low bytes of raw) built in
 * order. */
static int decode_raw(int type, int order, uint64_t raw, struct hub_field *f)
{
    struct drv_modbus_register reg = reg_of(type, order);
    unsigned n = drv_modbus_reg_width(&reg);
    uint8_t be[8];
    uint16_t w[4];
    be_of(raw, n, be);
    words_of(be, n, order, w);
    return decode(&reg, w, NULL, f, NULL, 0);
}

static uint64_t f32_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static uint64_t f64_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static const char *const order_name[] = {"ABCD", "CDAB", "BADC", "DCBA"};

/* ---- every type, every order ------------------------------------------------ */

static void test_widths(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1, 2, 2, 2, 4, 4, 4, 1};
    for (int t = DRV_MB_UINT16; t <= DRV_MB_BOOL; t++) {
        struct drv_modbus_register r = reg_of(t, DRV_MB_ABCD);
        assert_int_equal(drv_modbus_type_width((enum drv_modbus_type)t), w[t]);
        assert_int_equal(drv_modbus_reg_width(&r), w[t]);
        r.table = DRV_MB_COIL; /* one bit, whatever the type says */
        assert_int_equal(drv_modbus_reg_width(&r), 1);
    }
    struct drv_modbus_register s = reg_of(DRV_MB_STRING, DRV_MB_ABCD);
    s.length = 8;
    assert_int_equal(drv_modbus_reg_width(&s), 8);
    s.length = DRV_MB_MAX_STRING_REGS;
    assert_int_equal(drv_modbus_reg_width(&s), DRV_MB_MAX_STRING_REGS);
}

static void test_integers_every_order(void **state)
{
    (void)state;
    const struct {
        int type;
        uint64_t raw; /* the value's bits */
        int kind;
        int64_t i;
        uint64_t u;
    } cases[] = {
        {DRV_MB_UINT16, 54321, HUB_FIELD_UINT, 0, 54321},
        {DRV_MB_UINT16, 0xFFFF, HUB_FIELD_UINT, 0, 65535},
        {DRV_MB_UINT16, 0x1234, HUB_FIELD_UINT, 0, 0x1234},
        {DRV_MB_INT16, (uint16_t)-12345, HUB_FIELD_INT, -12345, 0},
        {DRV_MB_INT16, 0x8000, HUB_FIELD_INT, -32768, 0},
        {DRV_MB_INT16, 0x7FFF, HUB_FIELD_INT, 32767, 0},
        {DRV_MB_UINT32, 3000000000u, HUB_FIELD_UINT, 0, 3000000000u},
        {DRV_MB_UINT32, 0xFFFFFFFFu, HUB_FIELD_UINT, 0, UINT32_MAX},
        {DRV_MB_INT32, (uint32_t)-123456789, HUB_FIELD_INT, -123456789, 0},
        {DRV_MB_INT32, 0x80000000u, HUB_FIELD_INT, INT32_MIN, 0},
        {DRV_MB_UINT64, 12345678901234567890ull, HUB_FIELD_UINT, 0, 12345678901234567890ull},
        {DRV_MB_UINT64, UINT64_MAX, HUB_FIELD_UINT, 0, UINT64_MAX},
        {DRV_MB_INT64, (uint64_t)-1234567890123456789ll, HUB_FIELD_INT, -1234567890123456789ll, 0},
        {DRV_MB_INT64, 0x8000000000000000ull, HUB_FIELD_INT, INT64_MIN, 0},
        {DRV_MB_INT64, 0x0102030405060708ull, HUB_FIELD_INT, 0x0102030405060708ll, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
            struct hub_field f;
            if (decode_raw(cases[c].type, o, cases[c].raw, &f) != HUB_OK)
                fail_msg("case %zu %s: refused", c, order_name[o]);
            assert_int_equal(f.type, cases[c].kind);
            if (f.type == HUB_FIELD_INT)
                assert_true(f.v.i == cases[c].i);
            else
                assert_true(f.v.u == cases[c].u);
        }
    }
}

static void test_floats_every_order(void **state)
{
    (void)state;
    const struct {
        int type;
        uint64_t raw;
        double want; /* what is stored */
    } cases[] = {
        {DRV_MB_FLOAT32, 0x4364F11E, 228.94186}, /* exactly 228.941864013671875 */
        {DRV_MB_FLOAT32, 0x40490FDB, 3.1415927}, /* pi as a single */
        {DRV_MB_FLOAT32, 0xBFC00000, -1.5},
        {DRV_MB_FLOAT32, 0x3DCCCCCD, 0.1},
        {DRV_MB_FLOAT32, 0x00000000, 0.0},
        {DRV_MB_FLOAT64, 0x400921FB54442D18ull, 3.141592653589793},
        {DRV_MB_FLOAT64, 0xBFB999999999999Aull, -0.1},
        {DRV_MB_FLOAT64, 0x3FB5555555555555ull, 1.0 / 12.0}, /* not rounded to fewer digits */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
            struct hub_field f;
            assert_int_equal(decode_raw(cases[c].type, o, cases[c].raw, &f), HUB_OK);
            assert_int_equal(f.type, HUB_FIELD_FLOAT);
            if (f.v.f != cases[c].want)
                fail_msg("case %zu %s: %.17g, want %.17g", c, order_name[o], f.v.f, cases[c].want);
        }
    }
}

/* The literal words of docs/simulator.md (profile `types`), in address
 * order, written out independently of the helpers above. */
static void test_simulator_words(void **state)
{
    (void)state;
    const struct {
        int type, order;
        uint16_t w[4];
        const char *want; /* the stored value, printed */
    } cases[] = {
        {DRV_MB_INT16, DRV_MB_BADC, {0xC7CF}, "-12345"},
        {DRV_MB_UINT16, DRV_MB_DCBA, {0x31D4}, "54321"},
        {DRV_MB_INT32, DRV_MB_CDAB, {0x32EB, 0xF8A4}, "-123456789"},
        {DRV_MB_INT32, DRV_MB_BADC, {0xA4F8, 0xEB32}, "-123456789"},
        {DRV_MB_UINT32, DRV_MB_DCBA, {0x005E, 0xD0B2}, "3000000000"},
        {DRV_MB_FLOAT32, DRV_MB_ABCD, {0x4364, 0xF11E}, "228.94186"},
        {DRV_MB_FLOAT32, DRV_MB_CDAB, {0xF11E, 0x4364}, "228.94186"},
        {DRV_MB_FLOAT32, DRV_MB_BADC, {0x6443, 0x1EF1}, "228.94186"},
        {DRV_MB_FLOAT32, DRV_MB_DCBA, {0x1EF1, 0x6443}, "228.94186"},
        {DRV_MB_INT64, DRV_MB_ABCD, {0xEEDD, 0xEF0B, 0x8216, 0x7EEB}, "-1234567890123456789"},
        {DRV_MB_INT64, DRV_MB_CDAB, {0x7EEB, 0x8216, 0xEF0B, 0xEEDD}, "-1234567890123456789"},
        {DRV_MB_INT64, DRV_MB_BADC, {0xDDEE, 0x0BEF, 0x1682, 0xEB7E}, "-1234567890123456789"},
        {DRV_MB_INT64, DRV_MB_DCBA, {0xEB7E, 0x1682, 0x0BEF, 0xDDEE}, "-1234567890123456789"},
        {DRV_MB_UINT64, DRV_MB_CDAB, {0x0AD2, 0xEB1F, 0xA98C, 0xAB54}, "12345678901234567890"},
        {DRV_MB_UINT64, DRV_MB_BADC, {0x54AB, 0x8CA9, 0x1FEB, 0xD20A}, "12345678901234567890"},
        {DRV_MB_FLOAT64, DRV_MB_ABCD, {0x4009, 0x21FB, 0x5444, 0x2D18}, "3.141592653589793"},
        {DRV_MB_FLOAT64, DRV_MB_DCBA, {0x182D, 0x4454, 0xFB21, 0x0940}, "3.141592653589793"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct drv_modbus_register reg = reg_of(cases[c].type, cases[c].order);
        struct hub_field f;
        char got[64];
        assert_int_equal(decode(&reg, cases[c].w, NULL, &f, NULL, 0), HUB_OK);
        if (f.type == HUB_FIELD_INT)
            snprintf(got, sizeof(got), "%lld", (long long)f.v.i);
        else if (f.type == HUB_FIELD_UINT)
            snprintf(got, sizeof(got), "%llu", (unsigned long long)f.v.u);
        else /* the shortest that reads back */
            for (int p = 1; p <= 17; p++) {
                snprintf(got, sizeof(got), "%.*g", p, f.v.f);
                if (strtod(got, NULL) == f.v.f)
                    break;
            }
        if (strcmp(got, cases[c].want) != 0)
            fail_msg("case %zu: %s, want %s", c, got, cases[c].want);
    }
}

/* ---- float32: the shortest decimal -------------------------------------------- */

static void test_float32_shortest(void **state)
{
    (void)state;
    const struct {
        float f;
        double want;
    } cases[] = {
        {228.94186401367188f, 228.94186},
        {3.14159274101257324f, 3.1415927},
        {0.1f, 0.1},
        {123456.7f, 123456.7},
        {16777216.0f, 16777216.0},
        {1e38f, 1e38},
        {FLT_MAX, 3.4028235e38},
        {FLT_MIN, 1.1754944e-38},
        {1.4e-45f, 1e-45}, /* the smallest subnormal */
        {-2.5f, -2.5},
        {100.0f, 100.0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double v = drv_modbus_float32_value(cases[c].f);
        if (v != cases[c].want)
            fail_msg("%.9g: %.17g, want %.17g", (double)cases[c].f, v, cases[c].want);
    }
    assert_true(signbit(drv_modbus_float32_value(-0.0f)));
    /* on many floats: reads back as the same float32, with no more digits
     * than it needs */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t u = (uint32_t)x;
        float f;
        memcpy(&f, &u, sizeof(f));
        if (!isfinite(f))
            continue;
        double v = drv_modbus_float32_value(f);
        if ((float)v != f)
            fail_msg("0x%08x: %.17g does not read back as %.9g", u, v, (double)f);
        char buf[32];
        int digits = 0;
        for (int p = 1; p <= 9; p++) {
            snprintf(buf, sizeof(buf), "%.*g", p, v);
            if (strtod(buf, NULL) == v) {
                digits = p;
                break;
            }
        }
        if (digits == 0)
            fail_msg("0x%08x: %.17g has more than 9 digits", u, v);
        if (digits > 1) { /* one digit fewer does not read back as f */
            snprintf(buf, sizeof(buf), "%.*g", digits - 1, (double)f);
            if (strtof(buf, NULL) == f)
                fail_msg("0x%08x: %.17g, but %s is shorter", u, v, buf);
        }
    }
}

/* ---- bits ------------------------------------------------------------------------ */

static void test_bits(void **state)
{
    (void)state;
    struct hub_field f;
    /* coils and discrete inputs: one byte per bit, as the poll unpacks them */
    const int tables[] = {DRV_MB_COIL, DRV_MB_DISCRETE};
    for (int t = 0; t < 2; t++) {
        const int types[] = {DRV_MB_BOOL, DRV_MB_UINT16}; /* given, or left at the default */
        for (int k = 0; k < 2; k++) {
            struct drv_modbus_register reg = reg_of(types[k], DRV_MB_ABCD);
            reg.table = tables[t];
            const uint8_t bits[3] = {0, 1, 0xFF};
            assert_int_equal(decode(&reg, NULL, &bits[0], &f, NULL, 0), HUB_OK);
            assert_int_equal(f.type, HUB_FIELD_BOOL);
            assert_false(f.v.b);
            assert_int_equal(decode(&reg, NULL, &bits[1], &f, NULL, 0), HUB_OK);
            assert_true(f.v.b);
            assert_int_equal(decode(&reg, NULL, &bits[2], &f, NULL, 0), HUB_OK);
            assert_true(f.v.b);
            assert_int_equal(decode(&reg, NULL, NULL, &f, NULL, 0), HUB_EINVAL);
            assert_int_equal(drv_modbus_store_of(&reg), DRV_MB_STORE_AUTO);
        }
    }
    /* bit N of a register: 0xA5C3 has bits 0, 1, 6, 7, 8, 10, 13, 15 */
    for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
        int swap = o == DRV_MB_BADC || o == DRV_MB_DCBA;
        uint16_t w = swap ? 0xC3A5 : 0xA5C3; /* as the order puts it on the wire */
        for (int n = 0; n < 16; n++) {
            struct drv_modbus_register reg = reg_of(DRV_MB_BOOL, o);
            reg.table = n % 2 ? DRV_MB_INPUT : DRV_MB_HOLDING;
            reg.bit = n;
            assert_int_equal(decode(&reg, &w, NULL, &f, NULL, 0), HUB_OK);
            assert_int_equal(f.type, HUB_FIELD_BOOL);
            assert_int_equal(f.v.b, (0xA5C3 >> n) & 1);
        }
    }
    struct drv_modbus_register reg = reg_of(DRV_MB_BOOL, DRV_MB_ABCD);
    uint16_t w = 0xFFFF;
    assert_int_equal(decode(&reg, &w, NULL, &f, NULL, 0), HUB_EINVAL); /* no bit */
    reg.bit = 16;
    assert_int_equal(decode(&reg, &w, NULL, &f, NULL, 0), HUB_EINVAL);
    reg.bit = 15;
    assert_int_equal(decode(&reg, NULL, NULL, &f, NULL, 0), HUB_EINVAL); /* no words */
}

/* ---- strings --------------------------------------------------------------------- */

/* A string field of n registers holding text (padded with pad bytes) in an
 * order: its stored value, or NULL when refused. */
static const char *string_of(const char *text, size_t tlen, unsigned n, int order, char pad,
                             char *out, size_t outlen)
{
    uint8_t be[2 * DRV_MB_MAX_STRING_REGS];
    uint16_t w[DRV_MB_MAX_STRING_REGS];
    memset(be, (unsigned char)pad, sizeof(be));
    memcpy(be, text, tlen);
    /* registers stay in address order: only the byte swap applies */
    int swap = order == DRV_MB_BADC || order == DRV_MB_DCBA;
    for (unsigned i = 0; i < n; i++)
        w[i] = swap ? (uint16_t)(be[2 * i + 1] << 8 | be[2 * i])
                    : (uint16_t)(be[2 * i] << 8 | be[2 * i + 1]);
    struct drv_modbus_register reg = reg_of(DRV_MB_STRING, order);
    reg.length = n;
    struct hub_field f;
    if (decode(&reg, w, NULL, &f, out, outlen) != HUB_OK)
        return NULL;
    assert_int_equal(f.type, HUB_FIELD_STRING);
    return out;
}

static void test_strings(void **state)
{
    (void)state;
    char s[200];
    for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++) {
        assert_string_equal(string_of("CITYHUB-SIM-0001", 16, 8, o, 0, s, sizeof(s)),
                            "CITYHUB-SIM-0001");
        assert_string_equal(string_of("CITYHUB", 7, 8, o, 0, s, sizeof(s)), "CITYHUB");
        assert_string_equal(string_of("SN 42", 5, 4, o, ' ', s, sizeof(s)), "SN 42");
        assert_string_equal(string_of("  A  B", 6, 4, o, ' ', s, sizeof(s)), "  A  B");
        assert_string_equal(string_of("", 0, 3, o, 0, s, sizeof(s)), "");   /* all NUL */
        assert_string_equal(string_of("", 0, 3, o, ' ', s, sizeof(s)), ""); /* all spaces */
        /* cut at the first NUL: what follows it does not count */
        assert_string_equal(string_of("AB\0\xff\x01", 5, 3, o, 0, s, sizeof(s)), "AB");
        assert_string_equal(string_of("AB \0CD", 6, 3, o, 0, s, sizeof(s)), "AB");
        /* a byte outside printable ASCII: no value */
        assert_null(string_of("A\x01", 2, 1, o, 0, s, sizeof(s)));
        assert_null(string_of("\xff\xff", 2, 1, o, 0, s, sizeof(s)));
        assert_null(string_of("caf\xc3\xa9", 5, 3, o, 0, s, sizeof(s)));
        assert_null(string_of("A\tB", 3, 2, o, 0, s, sizeof(s)));
    }
    /* the literal words of docs/simulator.md */
    const uint16_t badc[8] = {0x4943, 0x5954, 0x5548, 0x2D42, 0x4953, 0x2D4D, 0x3030, 0x3130};
    struct drv_modbus_register reg = reg_of(DRV_MB_STRING, DRV_MB_BADC);
    reg.length = 8;
    struct hub_field f;
    assert_int_equal(decode(&reg, badc, NULL, &f, s, sizeof(s)), HUB_OK);
    assert_string_equal(f.v.s, "CITYHUB-SIM-0001");
    /* the longest: 64 registers, 128 characters */
    char text[129];
    for (int i = 0; i < 128; i++)
        text[i] = (char)('!' + i % 90);
    text[128] = '\0';
    assert_string_equal(string_of(text, 128, DRV_MB_MAX_STRING_REGS, DRV_MB_ABCD, 0, s, sizeof(s)),
                        text);
}

/* ---- scale, offset, store ---------------------------------------------------------- */

/* Decode one register (16-bit types) or two (32-bit) holding v, with scale,
 * offset and store. */
static int decode_with(int type, uint64_t raw, double scale, double offset, int store,
                       struct hub_field *f)
{
    struct drv_modbus_register reg = reg_of(type, DRV_MB_ABCD);
    reg.scale = scale;
    reg.offset = offset;
    reg.store = store;
    unsigned n = drv_modbus_reg_width(&reg);
    uint8_t be[8];
    uint16_t w[4];
    be_of(raw, n, be);
    words_of(be, n, DRV_MB_ABCD, w);
    return decode(&reg, w, NULL, f, NULL, 0);
}

static void test_scale_offset_store(void **state)
{
    (void)state;
    struct hub_field f;
    const int AUTO = DRV_MB_STORE_AUTO, FLOAT = DRV_MB_STORE_FLOAT, INT = DRV_MB_STORE_INT,
              UINT = DRV_MB_STORE_UINT;
    /* auto: integers stay integers, anything scaled or offset is a float */
    assert_int_equal(decode_with(DRV_MB_UINT16, 235, 0.1, 0, AUTO, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_FLOAT);
    assert_true(f.v.f == 23.5);
    assert_int_equal(decode_with(DRV_MB_UINT16, 479, 0.1, 0, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 47.9); /* 479 / 10, not 479 * 0.1 */
    assert_int_equal(decode_with(DRV_MB_UINT16, 54321, 0.01, -100, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 443.21); /* (54321 - 10000) / 100 */
    assert_int_equal(decode_with(DRV_MB_INT16, (uint16_t)-400, 0.1, 40, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 0.0);
    assert_int_equal(decode_with(DRV_MB_UINT16, 1000, 1, -273.15, AUTO, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_FLOAT);
    assert_true(f.v.f == 1000.0 + -273.15);
    assert_int_equal(decode_with(DRV_MB_UINT32, 7, 1000, 0, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 7000.0);
    assert_int_equal(decode_with(DRV_MB_INT32, (uint32_t)-3, 1, 0, AUTO, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_INT);
    assert_true(f.v.i == -3);
    assert_int_equal(decode_with(DRV_MB_UINT32, 7, 1, 0, AUTO, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_UINT);
    /* a float32 is scaled from its shortest decimal */
    assert_int_equal(decode_with(DRV_MB_FLOAT32, 0x4364F11E, 1000, 0, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 228.94186 * 1000);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, 0x4364F11E, 1, 1.5, AUTO, &f), HUB_OK);
    assert_true(f.v.f == 228.94186 + 1.5);

    /* store float */
    assert_int_equal(decode_with(DRV_MB_UINT16, 100, 1, 0, FLOAT, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_FLOAT);
    assert_true(f.v.f == 100.0);
    assert_int_equal(decode_with(DRV_MB_INT16, (uint16_t)-5, 1, 0, FLOAT, &f), HUB_OK);
    assert_true(f.v.f == -5.0);

    /* store int / uint: exact without scale, rounded (ties to even) with */
    assert_int_equal(decode_with(DRV_MB_UINT16, 65535, 1, 0, INT, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_INT);
    assert_true(f.v.i == 65535);
    assert_int_equal(decode_with(DRV_MB_INT16, 5, 1, 0, UINT, &f), HUB_OK);
    assert_int_equal(f.type, HUB_FIELD_UINT);
    assert_true(f.v.u == 5);
    assert_int_equal(decode_with(DRV_MB_INT16, (uint16_t)-1, 1, 0, UINT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_UINT64, UINT64_MAX, 1, 0, INT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_UINT64, INT64_MAX, 1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == INT64_MAX);
    assert_int_equal(decode_with(DRV_MB_INT64, (uint64_t)INT64_MIN, 1, 0, UINT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_INT64, (uint64_t)INT64_MIN, 1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == INT64_MIN);
    assert_int_equal(decode_with(DRV_MB_UINT16, 479, 0.1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == 48);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(2.5f), 1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == 2);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(3.5f), 1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == 4);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(-2.5f), 1, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == -2);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(-0.4f), 1, 0, UINT, &f), HUB_OK);
    assert_true(f.v.u == 0);
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(-1.0f), 1, 0, UINT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_FLOAT64, f64_bits(1e19), 1, 0, INT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_FLOAT64, f64_bits(1e19), 1, 0, UINT, &f), HUB_OK);
    assert_true(f.v.u == 10000000000000000000ull);
    assert_int_equal(decode_with(DRV_MB_FLOAT64, f64_bits(1.9e19), 1, 0, UINT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_UINT32, 4000000000u, 1e10, 0, INT, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_UINT32, 4000000000u, 3, 0, INT, &f), HUB_OK);
    assert_true(f.v.i == 12000000000ll);

    /* the store type, as the data dictionary says it */
    struct drv_modbus_register r = reg_of(DRV_MB_UINT64, DRV_MB_ABCD);
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_UINT);
    r.type = DRV_MB_INT16;
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_INT);
    r.offset = 1;
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_FLOAT);
    r.store = DRV_MB_STORE_INT;
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_INT);
    r = reg_of(DRV_MB_FLOAT64, DRV_MB_ABCD);
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_FLOAT);
    r.type = DRV_MB_STRING;
    assert_int_equal(drv_modbus_store_of(&r), DRV_MB_STORE_AUTO);
}

/* ---- no value ------------------------------------------------------------------------- */

static void test_nan_and_infinity_refused(void **state)
{
    (void)state;
    const struct {
        int type;
        uint64_t raw;
    } cases[] = {
        {DRV_MB_FLOAT32, 0x7FC00000},
        {DRV_MB_FLOAT32, 0xFFC00001},
        {DRV_MB_FLOAT32, 0x7F800000},
        {DRV_MB_FLOAT32, 0xFF800000},
        {DRV_MB_FLOAT32, 0xFFFFFFFF},
        {DRV_MB_FLOAT64, 0x7FF8000000000000ull},
        {DRV_MB_FLOAT64, 0x7FF0000000000000ull},
        {DRV_MB_FLOAT64, 0xFFF0000000000000ull},
        {DRV_MB_FLOAT64, 0xFFFFFFFFFFFFFFFFull},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int o = DRV_MB_ABCD; o <= DRV_MB_DCBA; o++)
            for (int store = DRV_MB_STORE_AUTO; store <= DRV_MB_STORE_UINT; store++) {
                struct drv_modbus_register reg = reg_of(cases[c].type, o);
                reg.store = store;
                unsigned n = drv_modbus_reg_width(&reg);
                uint8_t be[8];
                uint16_t w[4];
                struct hub_field f;
                be_of(cases[c].raw, n, be);
                words_of(be, n, o, w);
                if (decode(&reg, w, NULL, &f, NULL, 0) != HUB_EINVAL)
                    fail_msg("case %zu %s store %d: not refused", c, order_name[o], store);
            }
    /* finite, but infinite once scaled or offset */
    struct hub_field f;
    assert_int_equal(decode_with(DRV_MB_FLOAT32, f32_bits(FLT_MAX), 1e300, 0, 0, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_FLOAT64, f64_bits(DBL_MAX), 1, DBL_MAX, 0, &f), HUB_EINVAL);
    assert_int_equal(decode_with(DRV_MB_FLOAT64, f64_bits(1e300), 1e10, 0, 0, &f), HUB_EINVAL);
    /* a register that is not one: bad type, order, table, store */
    struct drv_modbus_register reg = reg_of(DRV_MB_UINT16, DRV_MB_ABCD);
    uint16_t w[4] = {0};
    reg.type = 42;
    assert_int_equal(decode(&reg, w, NULL, &f, NULL, 0), HUB_EINVAL);
    reg = reg_of(DRV_MB_UINT16, 9);
    assert_int_equal(decode(&reg, w, NULL, &f, NULL, 0), HUB_EINVAL);
    reg = reg_of(DRV_MB_UINT16, DRV_MB_ABCD);
    reg.table = 4;
    assert_int_equal(decode(&reg, w, NULL, &f, NULL, 0), HUB_EINVAL);
    reg = reg_of(DRV_MB_UINT16, DRV_MB_ABCD);
    reg.store = 4;
    assert_int_equal(decode(&reg, w, NULL, &f, NULL, 0), HUB_EINVAL);
    reg = reg_of(DRV_MB_UINT16, DRV_MB_ABCD);
    reg.offset = NAN;
    assert_int_equal(decode(&reg, w, NULL, &f, NULL, 0), HUB_EINVAL);
}

/* ---- the checks of these keys ----------------------------------------------------------- */

static void test_checks(void **state)
{
    (void)state;
    struct drv_modbus_device dev;
    struct drv_modbus_register regs[2];
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "d");
    snprintf(dev.measurement, sizeof(dev.measurement), "m");
    dev.max_gap = -1;
    dev.max_registers = -1;
    dev.regs = regs;
    dev.nregs = 2;
    regs[0] = reg_of(DRV_MB_UINT16, DRV_MB_ABCD);
    snprintf(regs[0].field, sizeof(regs[0].field), "ok");
    const struct {
        int table, type;
        int64_t bit, length, address;
        double scale, offset;
        int store;
        const char *key, *msg;
    } bad[] = {
        {DRV_MB_COIL, DRV_MB_INT32, -1, 0, 0, 1, 0, 0, "type",
         "device d: field x: a coil holds bits: type is bool"},
        {DRV_MB_DISCRETE, DRV_MB_FLOAT32, -1, 0, 0, 1, 0, 0, "type",
         "device d: field x: a discrete input holds bits: type is bool"},
        {DRV_MB_HOLDING, DRV_MB_BOOL, -1, 0, 0, 1, 0, 0, "bit",
         "device d: field x: a bool from a register needs bit (0..15)"},
        {DRV_MB_INPUT, DRV_MB_UINT16, 3, 0, 0, 1, 0, 0, "bit",
         "device d: field x: bit is for type bool on a register"},
        {DRV_MB_COIL, DRV_MB_BOOL, 3, 0, 0, 1, 0, 0, "bit",
         "device d: field x: bit is for type bool on a register"},
        {DRV_MB_HOLDING, DRV_MB_STRING, -1, 0, 0, 1, 0, 0, "length",
         "device d: field x: a string needs length (1..64 registers)"},
        {DRV_MB_HOLDING, DRV_MB_STRING, -1, 65, 0, 1, 0, 0, "length",
         "device d: field x: a string needs length (1..64 registers)"},
        {DRV_MB_HOLDING, DRV_MB_BOOL, 0, 0, 0, 10, 0, 0, "scale",
         "device d: field x: scale, offset and store are for numbers"},
        {DRV_MB_HOLDING, DRV_MB_STRING, -1, 2, 0, 1, 5, 0, "offset",
         "device d: field x: scale, offset and store are for numbers"},
        {DRV_MB_COIL, DRV_MB_BOOL, -1, 0, 0, 1, 0, DRV_MB_STORE_INT, "store",
         "device d: field x: scale, offset and store are for numbers"},
        {DRV_MB_HOLDING, DRV_MB_FLOAT64, -1, 0, 65533, 1, 0, 0, "address",
         "device d: field x: address 65533 + 4 registers is past 65535"},
        {DRV_MB_HOLDING, DRV_MB_STRING, -1, 10, 65530, 1, 0, 0, "address",
         "device d: field x: address 65530 + 10 registers is past 65535"},
        {DRV_MB_HOLDING, DRV_MB_UINT16, -1, 0, 0, 0, 0, 0, "scale",
         "device d: field x: scale 0 would hide every value"},
        {7, DRV_MB_UINT16, -1, 0, 0, 1, 0, 0, "table", "device d: field x: bad table"},
        {DRV_MB_HOLDING, 10, -1, 0, 0, 1, 0, 0, "type", "device d: field x: bad type"},
        {DRV_MB_HOLDING, DRV_MB_UINT16, -1, 0, 0, 1, 0, 9, "store", "device d: field x: bad store"},
        {DRV_MB_HOLDING, DRV_MB_UINT16, -1, 0, 0, INFINITY, 0, 0, "scale",
         "device d: field x: bad scale"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        regs[1] = reg_of(bad[i].type, DRV_MB_ABCD);
        snprintf(regs[1].field, sizeof(regs[1].field), "x");
        regs[1].table = bad[i].table;
        regs[1].bit = bad[i].bit;
        regs[1].length = bad[i].length;
        regs[1].address = bad[i].address;
        regs[1].scale = bad[i].scale;
        regs[1].offset = bad[i].offset;
        regs[1].store = bad[i].store;
        size_t at = 99;
        const char *key = NULL;
        if (drv_modbus_check_device_at(&dev, &at, &key, err, sizeof(err)) != -1)
            fail_msg("case %zu: accepted", i);
        assert_string_equal(err, bad[i].msg);
        assert_int_equal(at, 1);
        assert_non_null(key);
        assert_string_equal(key, bad[i].key);
    }
    /* and what is fine */
    const struct {
        int table, type;
        int64_t bit, length;
        int store;
    } good[] = {
        {DRV_MB_COIL, DRV_MB_BOOL, -1, 0, 0},     {DRV_MB_COIL, DRV_MB_UINT16, -1, 0, 0},
        {DRV_MB_DISCRETE, DRV_MB_BOOL, -1, 0, 0}, {DRV_MB_HOLDING, DRV_MB_BOOL, 15, 0, 0},
        {DRV_MB_INPUT, DRV_MB_STRING, -1, 64, 0}, {DRV_MB_INPUT, DRV_MB_FLOAT64, -1, 0, 3},
        {DRV_MB_HOLDING, DRV_MB_INT64, -1, 0, 1},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        regs[1] = reg_of(good[i].type, DRV_MB_ABCD);
        snprintf(regs[1].field, sizeof(regs[1].field), "x");
        regs[1].table = good[i].table;
        regs[1].bit = good[i].bit;
        regs[1].length = good[i].length;
        regs[1].store = good[i].store;
        if (drv_modbus_check_device(&dev, err, sizeof(err)) != 0)
            fail_msg("case %zu: %s", i, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widths),
        cmocka_unit_test(test_integers_every_order),
        cmocka_unit_test(test_floats_every_order),
        cmocka_unit_test(test_simulator_words),
        cmocka_unit_test(test_float32_shortest),
        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_scale_offset_store),
        cmocka_unit_test(test_nan_and_infinity_refused),
        cmocka_unit_test(test_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
