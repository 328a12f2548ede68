/* tests/unit/test_drv_influx_line.c — the line protocol encoder against the
 * one it replaced (drivers/influx/line.c before the fast paths, kept here
 * verbatim as the oracle): floats (drv_influx_format_float) on edge cases and
 * millions of random doubles, and whole lines of random readings with every
 * awkward byte.
 *
 * CITYHUB_FLOAT_CASES=N sets how many random doubles of each kind are tried
 * (default 300000). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drivers/influx/influx.h"
#include "drivers/influx/line.h"
#include "hub/buf.h"
#include "hub/journal.h"
#include "hub/reading.h"
#include "tests/bench/bench_common.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the oracle: line.c as it was -------------------------------------- */

enum old_lp_kind {
    old_LP_MEASUREMENT,
    old_LP_KEY, /* tag key, tag value, field key */
};

/* A byte that the name escaper turns into a backslash pair (after newline
 * mapping). */
static int old_lp_special(enum old_lp_kind kind, char c)
{
    if (c == ',' || c == ' ' || c == '\n')
        return 1;
    return kind == old_LP_KEY && c == '=';
}

static int old_lp_name(struct hub_buf *out, const char *s, enum old_lp_kind kind)
{
    int rc = HUB_OK;
    for (size_t i = 0; s[i] && rc == HUB_OK; i++) {
        char c = s[i];
        if (c == '\n')
            c = ' ';
        if (c == '\\') {
            char next = s[i + 1];
            /* `=` after a backslash is unescaped by 1.x even in a
             * measurement, so it counts as a delimiter here too. */
            if (next == '\0' || old_lp_special(old_LP_KEY, next))
                rc = hub_buf_addc(out, '/');
            else
                rc = hub_buf_addc(out, '\\');
        } else if (old_lp_special(kind, c) || (kind == old_LP_MEASUREMENT && i == 0 && c == '#')) {
            char pair[2] = {'\\', c};
            rc = hub_buf_add(out, pair, 2);
        } else {
            rc = hub_buf_addc(out, (uint8_t)c);
        }
    }
    return rc;
}

static int old_lp_string(struct hub_buf *out, const char *s)
{
    int rc = hub_buf_addc(out, '"');
    for (size_t i = 0; s[i] && rc == HUB_OK; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            char pair[2] = {'\\', c};
            rc = hub_buf_add(out, pair, 2);
        } else {
            rc = hub_buf_addc(out, c == '\n' ? ' ' : (uint8_t)c);
        }
    }
    if (rc == HUB_OK)
        rc = hub_buf_addc(out, '"');
    return rc;
}

/* The shortest of %.15g, %.16g, %.17g that reads back to the same bits.
 * %.17g always does for a finite double. */
static int old_lp_float(struct hub_buf *out, double v)
{
    char tmp[40];
    if (!isfinite(v))
        return HUB_EINVAL;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        double back = strtod(tmp, NULL);
        if (memcmp(&back, &v, sizeof(v)) == 0)
            break;
    }
    return hub_buf_adds(out, tmp);
}

static int old_lp_field(struct hub_buf *out, const struct hub_field *f, bool uint_support)
{
    int rc = old_lp_name(out, f->key, old_LP_KEY);
    if (rc == HUB_OK)
        rc = hub_buf_addc(out, '=');
    if (rc != HUB_OK)
        return rc;
    switch (f->type) {
    case HUB_FIELD_INT:
        return hub_buf_printf(out, "%" PRId64 "i", f->v.i);
    case HUB_FIELD_UINT:
        /* Without uint support a value above INT64_MAX is still written
         * with `u`: the server refuses that line (400) and it goes to the
         * dead letters with the reason, rather than being changed. */
        if (!uint_support && f->v.u <= (uint64_t)INT64_MAX)
            return hub_buf_printf(out, "%" PRIu64 "i", f->v.u);
        return hub_buf_printf(out, "%" PRIu64 "u", f->v.u);
    case HUB_FIELD_FLOAT:
        return old_lp_float(out, f->v.f);
    case HUB_FIELD_BOOL:
        return hub_buf_adds(out, f->v.b ? "true" : "false");
    case HUB_FIELD_STRING:
        return old_lp_string(out, f->v.s ? f->v.s : "");
    }
    return HUB_EINVAL;
}

int old_drv_influx_encode(const hub_reading_t *r, bool uint_support, struct hub_buf *out)
{
    size_t start = out->len;
    size_t nf = hub_reading_field_count(r);
    int rc = HUB_OK;
    const char *m = hub_reading_measurement(r);

    if (nf == 0 || !m || !*m)
        return HUB_EINVAL; /* a line needs a measurement and a field */
    rc = old_lp_name(out, m, old_LP_MEASUREMENT);
    for (size_t i = 0; rc == HUB_OK && i < hub_reading_tag_count(r); i++) {
        const struct hub_tag *t = hub_reading_tag(r, i);
        if (!t->value || !*t->value || !t->key || !*t->key)
            continue; /* InfluxDB refuses empty tag values: leave the tag out */
        rc = hub_buf_addc(out, ',');
        if (rc == HUB_OK)
            rc = old_lp_name(out, t->key, old_LP_KEY);
        if (rc == HUB_OK)
            rc = hub_buf_addc(out, '=');
        if (rc == HUB_OK)
            rc = old_lp_name(out, t->value, old_LP_KEY);
    }
    for (size_t i = 0; rc == HUB_OK && i < nf; i++) {
        rc = hub_buf_addc(out, i == 0 ? ' ' : ',');
        if (rc == HUB_OK)
            rc = old_lp_field(out, hub_reading_field(r, i), uint_support);
    }
    if (rc == HUB_OK)
        rc = hub_buf_printf(out, " %" PRId64 "\n", hub_reading_time(r));
    if (rc != HUB_OK) {
        out->len = start; /* all or nothing */
        if (out->data)
            out->data[start] = 0;
    }
    return rc;
}

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

static size_t float_cases(void)
{
    const char *s = getenv("CITYHUB_FLOAT_CASES");
    return s && *s ? (size_t)strtoull(s, NULL, 10) : 300000;
}

static unsigned long long checked;

/* The new formatter prints exactly what the old one did. */
static void check_float(double v)
{
    if (!isfinite(v))
        return; /* a neighbour of DBL_MAX */
    struct hub_buf b;
    hub_buf_init(&b, 64);
    assert_int_equal(old_lp_float(&b, v), HUB_OK);
    char got[40];
    size_t n = drv_influx_format_float(v, got);
    if (n != b.len || memcmp(got, b.data, n) != 0) {
        uint64_t bits;
        memcpy(&bits, &v, sizeof(bits));
        fail_msg("%.17g (0x%016" PRIx64 "): got \"%s\", want \"%s\"", v, bits, got,
                 (const char *)b.data);
    }
    assert_int_equal(got[n], 0);
    hub_buf_free(&b);
    checked++;
}

/* ---- floats ------------------------------------------------------------- */

static void test_float_edges(void **state)
{
    (void)state;
    static const double edges[] = {
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.2,
        0.3,
        1.0 / 3,
        2.0 / 3,
        0.5,
        1.5,
        2.5,
        12.5,
        230.7,
        3.141592653589793,
        2.718281828459045,
        DBL_MAX,
        -DBL_MAX,
        DBL_MIN,
        -DBL_MIN,
        DBL_MIN / 3,
        4.9406564584124654e-324,
        DBL_EPSILON,
        1 - DBL_EPSILON / 2,
        1 + DBL_EPSILON,
        /* around the %g switch to exponents and the fast path's range */
        1e-4,
        9.9999999999999991e-5,
        1e-5,
        1.0000000000000001e-5,
        1e-6,
        1e-7,
        1e-8,
        1e-9,
        0.0001,
        0.00012345678901234567,
        0.000099999999999999991,
        1e14,
        1e15,
        1e16,
        1e17,
        1e18,
        1e19,
        1e20,
        1e21,
        1e22,
        1e23,
        999999999999999.0,
        9999999999999998.0,
        99999999999999984.0,
        123456789012345678.0,
        9007199254740992.0,
        9007199254740993.0,
        9007199254740991.0,
        4503599627370496.0,
        4503599627370497.5,
        18014398509481984.0,
        /* ties at 15 and 16 digits: exact integers ending in 5 */
        1234567890123455.0,
        1000000000000005.0,
        9999999999999995.0,
        1000000000000025.0,
        1234567890123445.0,
        12345678901234565.0,
        10000000000000005.0,
        99999999999999995.0,
        /* rounding up to a power of ten */
        999999999999999.9,
        9.9999999999999995,
        0.99999999999999989,
        99.999999999999986,
        /* float32 registers widened */
        (double)230.7f,
        (double)0.1f,
        (double)1e-5f,
        (double)3.4028235e38f,
        (double)1.17549435e-38f,
        (double)16777217.0f,
        (double)-273.15f,
        /* sensor-like */
        230.70000000000002,
        2307 * 0.1,
        0.1 + 0.2,
        50.01,
        49.99,
        -40.0,
        1e3,
        65535.0,
        4294967295.0,
    };
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        check_float(edges[i]);
        check_float(-edges[i]);
        check_float(nextafter(edges[i], INFINITY));
        check_float(nextafter(edges[i], -INFINITY));
    }
    /* every power of two and of ten, and their neighbours */
    for (int e = -1074; e <= 1023; e++) {
        double v = ldexp(1.0, e);
        check_float(v);
        check_float(nextafter(v, 0));
        check_float(nextafter(v, INFINITY));
    }
    for (int e = -323; e <= 308; e++) {
        char s[32];
        snprintf(s, sizeof(s), "1e%d", e);
        double v = strtod(s, NULL);
        check_float(v);
        check_float(nextafter(v, 0));
        check_float(nextafter(v, INFINITY));
    }
    /* not finite: nothing */
    char buf[40] = "x";
    assert_int_equal(drv_influx_format_float(NAN, buf), 0);
    assert_int_equal(drv_influx_format_float(INFINITY, buf), 0);
    assert_int_equal(drv_influx_format_float(-INFINITY, buf), 0);
}

/* Random bit patterns: every exponent, mostly outside the fast range. */
static void test_float_random_bits(void **state)
{
    (void)state;
    size_t n = float_cases();
    for (size_t i = 0; i < n; i++) {
        double v = from_bits(rnd());
        if (isfinite(v))
            check_float(v);
    }
}

/* Random doubles where sensors live: uniform exponents from 1e-9 to 1e18,
 * few decimals (raw / 10^k), float32 values, integers, ties. */
static void test_float_random_sensor(void **state)
{
    (void)state;
    size_t n = float_cases();
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        double v;
        switch (i % 6) {
        case 0: /* any mantissa, exponent in [2^-30, 2^60) */
            v = ldexp(1.0 + (double)(r >> 12) / 4503599627370496.0, (int)(r % 90) - 30);
            break;
        case 1: { /* raw / 10^k */
            static const double p10[] = {1, 10, 100, 1000, 1e4, 1e5, 1e6};
            v = (double)(int64_t)(r >> 40) / p10[(r >> 8) % 7];
            if (r & 1)
                v = -v;
            break;
        }
        case 2: { /* raw * scale, the other way round */
            static const double sc[] = {0.1, 0.01, 0.001, 0.05, 0.25, 1e-4};
            v = (double)(r >> 44) * sc[(r >> 8) % 6];
            break;
        }
        case 3: { /* a float32 register */
            float f;
            uint32_t b = (uint32_t)r;
            memcpy(&f, &b, sizeof(f));
            if (!isfinite(f))
                continue;
            v = (double)f;
            break;
        }
        case 4: /* integers with 14..18 digits, many of them ties at 15/16 */
            v = (double)(r % 1000000000000000000ULL);
            if (r & 2)
                v = (double)((r % 100000000000000000ULL) / 10 * 10 + 5);
            break;
        default: /* a decimal of 15..17 digits, read in */
        {
            char s[40];
            snprintf(s, sizeof(s), "%" PRIu64 "e%d", (uint64_t)(r % 100000000000000000ULL),
                     (int)((r >> 57) % 40) - 30);
            v = strtod(s, NULL);
            break;
        }
        }
        check_float(v);
    }
    print_message("%llu floats compared\n", checked);
}

/* ---- whole lines -------------------------------------------------------- */

static const char alphabet[] = "abcXYZ019_-.:/#\"\\, =\n\t\x01\x7f\xc3\xa9";

static void random_name(char *s, size_t max)
{
    size_t n = 1 + rnd() % max;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        /* mostly plain, sometimes a special byte, now and then at the ends */
        s[i] = r % 4 ? (char)('a' + r % 26) : alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
    }
    s[n] = 0;
}

static hub_reading_t *random_reading(void)
{
    char m[40], k[40], v[300];
    random_name(m, 12);
    hub_reading_t *r = hub_reading_new(m, (int64_t)rnd());
    assert_non_null(r);
    size_t nt = rnd() % 6, nf = rnd() % 25;
    for (size_t i = 0; i < nt; i++) {
        random_name(k, 10);
        random_name(v, 20);
        assert_true(hub_reading_add_tag(r, k, v) == HUB_OK);
    }
    for (size_t i = 0; i < nf; i++) {
        random_name(k, 12);
        uint64_t x = rnd();
        switch (x % 6) {
        case 0:
            hub_reading_add_int(r, k, (int64_t)rnd() >> (x >> 58));
            break;
        case 1:
            hub_reading_add_uint(r, k, rnd() >> (x >> 58));
            break;
        case 2: {
            double f = from_bits(rnd());
            hub_reading_add_float(r, k, isfinite(f) ? f : 1.5);
            break;
        }
        case 3:
            hub_reading_add_float(r, k, (double)(int)(x >> 40) / 10.0);
            break;
        case 4:
            hub_reading_add_bool(r, k, x & 1);
            break;
        default:
            random_name(v, x & 64 ? 250 : 10);
            hub_reading_add_string(r, k, v);
            break;
        }
    }
    return r;
}

static void check_line(const hub_reading_t *r, bool uint_support, size_t cap)
{
    struct hub_buf a, b;
    hub_buf_init(&a, cap);
    hub_buf_init(&b, cap);
    /* a prefix: lines are appended */
    hub_buf_adds(&a, "p\n");
    hub_buf_adds(&b, "p\n");
    int rca = old_drv_influx_encode(r, uint_support, &a);
    int rcb = drv_influx_encode(r, uint_support, &b);
    assert_int_equal(rcb, rca);
    assert_int_equal(b.len, a.len);
    if (a.len)
        assert_memory_equal(b.data, a.data, a.len);
    hub_buf_free(&a);
    hub_buf_free(&b);
}

static void test_lines_random(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        hub_reading_t *r = random_reading();
        check_line(r, i & 1, 1 << 20);
        /* and with a buffer that is too small: same error, out unchanged */
        check_line(r, true, 2 + rnd() % 200);
        hub_reading_free(r);
    }
}

static void test_lines_fixed(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("#m,x y=z\\", -1);
    hub_reading_add_tag(r, "k\\", "v\\,w");
    hub_reading_add_tag(r, "a=b", "c d\ne\\=");
    hub_reading_add_tag(r, "\\", "\\\\");
    hub_reading_add_int(r, "i", INT64_MIN);
    hub_reading_add_int(r, "j", INT64_MAX);
    hub_reading_add_uint(r, "u", UINT64_MAX);
    hub_reading_add_uint(r, "w", (uint64_t)INT64_MAX);
    hub_reading_add_uint(r, "z", 0);
    hub_reading_add_float(r, "f", -DBL_MAX);
    hub_reading_add_float(r, "g", 4.9406564584124654e-324);
    hub_reading_add_float(r, "h", -0.0);
    hub_reading_add_bool(r, "t", true);
    hub_reading_add_bool(r, "n", false);
    hub_reading_add_string(r, "s", "q\"b\\n\nx");
    hub_reading_add_string(r, "e", "");
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    assert_int_equal(drv_influx_encode(r, false, &b), HUB_OK);
    assert_string_equal((char *)b.data, "\\#m\\,x\\ y=z/,/=\\/,a\\=b=c\\ d\\ e/\\=,k/=v/\\,w "
                                        "i=-9223372036854775808i,j=9223372036854775807i,"
                                        "u=18446744073709551615u,w=9223372036854775807i,z=0i,"
                                        "f=-1.7976931348623157e+308,g=4.94065645841247e-324,h=-0,"
                                        "t=true,n=false,s=\"q\\\"b\\\\n x\",e=\"\" -1\n");
    check_line(r, false, 4096);
    check_line(r, true, 4096);
    hub_buf_free(&b);
    hub_reading_free(r);

    /* the largest lines: 64 long string fields full of bytes that escape
     * (a line built in a heap scratch, not on the stack) */
    r = hub_reading_new("m", 0);
    char big[1001];
    memset(big, '"', 1000);
    big[1000] = 0;
    char name[256];
    memset(name, ',', 255);
    name[255] = 0;
    for (int i = 0; i < 32; i++) {
        name[0] = (char)('A' + i);
        assert_int_equal(hub_reading_add_tag(r, name, name), HUB_OK);
    }
    for (int i = 0; i < HUB_READING_MAX_FIELDS; i++) {
        name[0] = (char)('A' + i);
        int rc = hub_reading_add_string(r, name, big);
        assert_true(rc == HUB_OK || rc == HUB_EFULL);
    }
    check_line(r, true, 1 << 20);
    check_line(r, true, 5000);
    hub_reading_free(r);

    /* no field: nothing */
    r = hub_reading_new("m", 0);
    hub_buf_reset(&b);
    assert_int_equal(drv_influx_encode(r, true, &b), HUB_EINVAL);
    assert_int_equal(b.len, 0);
    hub_buf_free(&b);
    hub_reading_free(r);
}

/* ---- journal bytes against line protocol ---------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Reading i of a workload: kind 0, the benchmarks' energy meter (5 tags,
 * 5 fields); kind 1, a Modbus device of 100 with 20 uint16 registers. */
static hub_reading_t *workload(int kind, uint64_t i)
{
    int64_t t = 1796397817000000000LL + (int64_t)i * 10000000;
    char dev[32];
    hub_reading_t *r;
    if (kind == 0)
        return bench_reading(i, t); /* the benchmarks' energy meter */
    r = hub_reading_new("bench", t);
    snprintf(dev, sizeof(dev), "dev-%u", (unsigned)(i % 100));
    hub_reading_add_tag(r, "device", dev);
    hub_reading_add_tag(r, "gateway", "gw-bench");
    for (int k = 0; k < 20; k++) {
        char key[16];
        snprintf(key, sizeof(key), "r%d", k);
        hub_reading_add_uint(r, key, (i * 2654435761u + (uint64_t)k * 40503u) % 65536);
    }
    return r;
}

/* The goal of the journal's series dictionary: for repetitive readings the
 * journal writes at most half the bytes of their line protocol (frames,
 * segment headers and per-segment definitions included). */
static void test_journal_half_of_line_protocol(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        char dir[64];
        snprintf(dir, sizeof(dir), "/tmp/influx-line-j-XXXXXX");
        assert_non_null(mkdtemp(dir));
        struct hub_journal_opts o = {.dir = dir, .segment_size = 1 << 20, .max_size = 1 << 26};
        hub_journal_t *j = NULL;
        char err[256];
        assert_int_equal(hub_journal_open(&o, &j, err, sizeof(err)), HUB_OK);
        struct hub_buf lp;
        hub_buf_init(&lp, 1 << 20);
        static uint8_t rec[HUB_READING_MAX_ENCODED];
        uint64_t lp_bytes = 0;
        enum { N = 20000 };
        for (uint64_t i = 0; i < N; i++) {
            hub_reading_t *r = workload(kind, i);
            size_t key_len = 0, len = hub_reading_encode_keyed(r, rec, sizeof(rec), &key_len);
            assert_true(key_len > 0 && key_len < len);
            assert_int_equal(hub_journal_append_keyed(j, rec, len, key_len, NULL), HUB_OK);
            hub_buf_reset(&lp);
            assert_int_equal(drv_influx_encode(r, false, &lp), HUB_OK);
            lp_bytes += lp.len;
            hub_reading_free(r);
        }
        struct hub_journal_stats st;
        hub_journal_stats(j, &st);
        assert_true(st.segments >= 2); /* definitions repeated per segment are counted */
        printf("# workload %d: journal %.1f B/reading (files), line protocol %.1f\n", kind,
               (double)st.bytes / N, (double)lp_bytes / N);
        assert_true(st.bytes * 2 <= lp_bytes);
        hub_journal_close(j);
        hub_buf_free(&lp);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_edges),
        cmocka_unit_test(test_float_random_bits),
        cmocka_unit_test(test_float_random_sensor),
        cmocka_unit_test(test_lines_fixed),
        cmocka_unit_test(test_lines_random),
        cmocka_unit_test(test_journal_half_of_line_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
