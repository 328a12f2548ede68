/* drivers/influx/line.c — readings to InfluxDB line protocol, and gzip.
 *
 * Escaping follows the line protocol reference and what InfluxDB 1.x's
 * parser (models/points.go) really does; each rule below was checked against
 * influxd 1.6:
 *   measurement          `,` and space escaped; `=` written as is
 *   tag key, tag value,  `,` `=` and space escaped
 *   field key
 *   string field value   `"` and `\` escaped, inside double quotes
 * The parser has no escape for a backslash in names: `\\` is stored as two
 * backslashes, and a backslash right before a delimiter (or at the end of a
 * name) swallows it. So a backslash in a name is written as is, except when
 * it is the last byte of the name or comes right before `,`, `=` or space:
 * then it is written as `/` (there is no way to store it). A measurement
 * that starts with `#` would make the line a comment (silently dropped), so
 * the `#` is written `\#` and the store keeps the name as `\#...`. A newline
 * cannot be written anywhere in a line; it becomes a space (and then is
 * escaped like one).
 *
 * Numbers are printed with the C locale's conventions: the program never
 * calls setlocale(LC_NUMERIC, ...) to anything but "C".
 *
 * Speed (this runs for every reading an output delivers): a line is written
 * into one scratch buffer sized from a bound (hub_reading_encoded_size: no
 * string grows more than twice in escaping, no number takes more than 24
 * bytes) and appended to out at once; names are copied a byte at a time
 * with a table of the bytes that need care; integers are converted by hand.
 * Floats keep their rule (the first of %.15g, %.16g, %.17g that reads back
 * to the same bits) but are computed exactly in integer arithmetic
 * (lp_float_fast) when the value allows it (|v| from about 1e-6 to 1e17, and
 * 0), which is what sensors give; others go through snprintf and strtod as
 * the rule is written (lp_float_slow). tests/unit/test_drv_influx_line.c
 * checks both against each other and the old encoder. */
#include "drivers/influx/line.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "drivers/influx/influx.h"

#define LINE_STACK 4096 /* lines whose bound fits are built on the stack */

/* Bytes a name or string copier stops at: NUL (the end) and those that are
 * escaped or changed. */
static const uint8_t key_stop[256] = {
    [0] = 1, ['\n'] = 1, [' '] = 1, [','] = 1, ['='] = 1, ['\\'] = 1,
};
static const uint8_t meas_stop[256] = {
    [0] = 1, ['\n'] = 1, [' '] = 1, [','] = 1, ['\\'] = 1,
};
static const uint8_t str_stop[256] = {
    [0] = 1,
    ['\n'] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

/* A measurement (meas) or a tag key, tag value or field key. */
static char *lp_name(char *p, const char *s, bool meas)
{
    const uint8_t *stop = meas ? meas_stop : key_stop;
    size_t i = 0;
    if (meas && s[0] == '#') { /* would make the line a comment */
        *p++ = '\\';
        *p++ = '#';
        i = 1;
    }
    for (;; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!stop[c]) {
            *p++ = (char)c;
            continue;
        }
        if (c == 0)
            return p;
        if (c == '\\') {
            /* `=` after a backslash is unescaped by 1.x even in a
             * measurement, so it counts as a delimiter here too. */
            char next = s[i + 1];
            int delim = next == '\0' || next == ',' || next == ' ' || next == '\n' || next == '=';
            *p++ = delim ? '/' : '\\';
        } else { /* `,` space newline, and `=` in keys */
            *p++ = '\\';
            *p++ = c == '\n' ? ' ' : (char)c;
        }
    }
}

static char *lp_string(char *p, const char *s)
{
    *p++ = '"';
    for (size_t i = 0;; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!str_stop[c]) {
            *p++ = (char)c;
            continue;
        }
        if (c == 0)
            break;
        if (c == '\n') {
            *p++ = ' ';
        } else {
            *p++ = '\\';
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

static const char digits2[201] = "00010203040506070809"
                                 "10111213141516171819"
                                 "20212223242526272829"
                                 "30313233343536373839"
                                 "40414243444546474849"
                                 "50515253545556575859"
                                 "60616263646566676869"
                                 "70717273747576777879"
                                 "80818283848586878889"
                                 "90919293949596979899";

static char *lp_u64(char *p, uint64_t v)
{
    char tmp[20];
    char *end = tmp + sizeof(tmp), *q = end;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, digits2 + 2 * d, 2);
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, digits2 + 2 * v, 2);
    } else {
        *--q = (char)('0' + v);
    }
    memcpy(p, q, (size_t)(end - q));
    return p + (end - q);
}

static char *lp_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return lp_u64(p, 0 - (uint64_t)v);
    }
    return lp_u64(p, (uint64_t)v);
}

/* ---- floats ------------------------------------------------------------- */

/* The rule as written: the shortest of %.15g, %.16g, %.17g that reads back
 * to the same bits (%.17g always does for a finite double). */
static size_t lp_float_slow(double v, char *dst)
{
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        double back = strtod(tmp, NULL);
        if (memcmp(&back, &v, sizeof(v)) == 0)
            break;
    }
    size_t n = strlen(tmp);
    memcpy(dst, tmp, n);
    return n;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

static const uint64_t pow10_u64[20] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL};

static u128 pow10_128(int q) /* 0 <= q <= 38 */
{
    return q <= 19 ? (u128)pow10_u64[q] : (u128)pow10_u64[19] * pow10_u64[q - 19];
}

/* |v| = m * 2^e (2^52 <= m < 2^53, a normal double) rounded to prec
 * significant digits as printf rounds (to nearest, ties to even):
 * *digits in [10^(prec-1), 10^prec), the value being
 * *digits * 10^(*exp10 - prec + 1). *log10v is an estimate of
 * floor(log10(v)), off by a few at most, and is made exact. Returns 1 if that decimal reads back
 * (strtod: to nearest, ties to even) as v, 0 if it does not, -1 if v is out
 * of the range where the arithmetic below is exact in 128 bits. */
static int fp_round(uint64_t m, int e, int prec, int *log10v, uint64_t *digits, int *exp10)
{
    int e10 = *log10v;      /* an estimate of floor(log10(v)); corrected here */
    int s = e < 0 ? -e : 0; /* X / 2^s is v * 10^q */
    int g = e > 0 ? e : 0;
    if (s > 110 || g > 8)
        return -1;
    for (int tries = 0; tries < 4; tries++) {
        int q = prec - 1 - e10;
        if (q < 0 || q > 22) /* m * 10^22 * 2^8 < 2^128 */
            return -1;
        u128 tq = pow10_128(q);
        u128 x = ((u128)m * tq) << g;
        u128 t = x >> s;
        if (t < pow10_u64[prec - 1]) {
            e10--;
            continue;
        }
        if (t >= pow10_u64[prec]) {
            e10++;
            continue;
        }
        *log10v = e10; /* exact now: for the next precision */
        uint64_t d = (uint64_t)t;
        if (s > 0) {
            u128 rem = x & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
            if (rem > half || (rem == half && (d & 1)))
                d++;
        }
        /* Reads back as v when the decimal lies within half the spacing of
         * doubles around v (a quarter below a power of two, where the
         * spacing below halves); exactly halfway goes to the even one. In
         * units of 2^-s the spacing is 10^q * 2^g. */
        u128 dx = (u128)d << s;
        u128 err = dx >= x ? dx - x : x - dx;
        u128 ulp = tq << g;
        int ok;
        if (dx < x && m == (1ULL << 52))
            ok = 4 * err <= ulp;
        else
            ok = (m & 1) ? 2 * err < ulp : 2 * err <= ulp;
        if (d == pow10_u64[prec]) { /* 9.99.. rounded up to 10.0.. */
            d = pow10_u64[prec - 1];
            e10++;
        }
        *digits = d;
        *exp10 = e10;
        return ok;
    }
    return -1;
}

/* What %.{prec}g prints for the digits and exponent of fp_round. */
static size_t fmt_g(char *dst, bool neg, uint64_t d, int x, int prec)
{
    /* %g drops trailing zeros: drop them from d first (nd digits left),
     * then write its digits. */
    int nd = prec;
    while (d % 100 == 0) { /* d >= 10^14: never all zeros */
        d /= 100;
        nd -= 2;
    }
    if (d % 10 == 0) {
        d /= 10;
        nd--;
    }
    char dig[20];
    int i = nd;
    for (; i >= 2; i -= 2) {
        unsigned pair = (unsigned)(d % 100);
        d /= 100;
        memcpy(dig + i - 2, digits2 + 2 * pair, 2);
    }
    if (i)
        dig[0] = (char)('0' + d);
    char *p = dst;
    if (neg)
        *p++ = '-';
    if (x < -4 || x >= prec) {
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, dig + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax >= 100) {
            *p++ = (char)('0' + ax / 100);
            ax %= 100;
        }
        *p++ = (char)('0' + ax / 10);
        *p++ = (char)('0' + ax % 10);
    } else if (x >= 0) {
        if (nd <= x + 1) { /* a whole number: digits, then zeros */
            memcpy(p, dig, (size_t)nd);
            p += nd;
            for (int z = nd; z < x + 1; z++)
                *p++ = '0';
        } else {
            memcpy(p, dig, (size_t)x + 1);
            p += x + 1;
            *p++ = '.';
            memcpy(p, dig + x + 1, (size_t)(nd - x - 1));
            p += nd - x - 1;
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (int z = 0; z < -x - 1; z++)
            *p++ = '0';
        memcpy(p, dig, (size_t)nd);
        p += nd;
    }
    return (size_t)(p - dst);
}

/* lp_float_slow's answer computed exactly, or 0 when v is out of range. */
static size_t lp_float_fast(double v, char *dst)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    bool neg = bits >> 63;
    unsigned be = (unsigned)(bits >> 52) & 0x7ff;
    uint64_t frac = bits & ((1ULL << 52) - 1);
    if (be == 0 && frac == 0) { /* %g prints 0 and -0 that way, and they read back */
        char *p = dst;
        if (neg)
            *p++ = '-';
        *p++ = '0';
        return (size_t)(p - dst);
    }
    if (be == 0 || be == 0x7ff)
        return 0; /* subnormal (far out of range), or not finite */
    uint64_t m = frac | (1ULL << 52);
    int e = (int)be - 1075;
    /* floor(log10(v)) from floor(log2(v)) = e + 52, maybe one too small */
    int l2 = e + 52;
    int log10v = l2 >= 0 ? l2 * 1233 / 4096 : -((-l2 * 1233 + 4095) / 4096);
    for (int prec = 15; prec <= 17; prec++) {
        uint64_t d;
        int x;
        int rc = fp_round(m, e, prec, &log10v, &d, &x);
        if (rc < 0)
            return 0;
        if (rc > 0)
            return fmt_g(dst, neg, d, x, prec);
    }
    return 0; /* %.17g always reads back: not reached */
}
#else
static size_t lp_float_fast(double v, char *dst)
{
    (void)v;
    (void)dst;
    return 0;
}
#endif

size_t drv_influx_format_float(double v, char *dst)
{
    if (!isfinite(v))
        return 0;
    size_t n = lp_float_fast(v, dst);
    if (n == 0)
        n = lp_float_slow(v, dst);
    dst[n] = 0;
    return n;
}

/* ---- lines -------------------------------------------------------------- */

/* Returns the end of what was written, or NULL for a value that cannot be
 * written (a float that is not finite, an unknown type). */
static char *lp_field(char *p, const struct hub_field *f, bool uint_support)
{
    p = lp_name(p, f->key, false);
    *p++ = '=';
    switch (f->type) {
    case HUB_FIELD_INT:
        p = lp_i64(p, f->v.i);
        *p++ = 'i';
        break;
    case HUB_FIELD_UINT:
        /* Without uint support a value above INT64_MAX is still written
         * with `u`: the server refuses that line (400) and it goes to the
         * dead letters with the reason, rather than being changed. */
        p = lp_u64(p, f->v.u);
        *p++ = !uint_support && f->v.u <= (uint64_t)INT64_MAX ? 'i' : 'u';
        break;
    case HUB_FIELD_FLOAT: {
        size_t n = drv_influx_format_float(f->v.f, p);
        if (n == 0)
            return NULL;
        p += n;
        break;
    }
    case HUB_FIELD_BOOL:
        memcpy(p, f->v.b ? "true" : "false", f->v.b ? 4 : 5);
        p += f->v.b ? 4 : 5;
        break;
    case HUB_FIELD_STRING:
        p = lp_string(p, f->v.s ? f->v.s : "");
        break;
    default:
        return NULL;
    }
    return p;
}

int drv_influx_encode(const hub_reading_t *r, bool uint_support, struct hub_buf *out)
{
    size_t nf = hub_reading_field_count(r);
    size_t nt = hub_reading_tag_count(r);
    const char *m = hub_reading_measurement(r);

    if (nf == 0 || !m || !*m)
        return HUB_EINVAL; /* a line needs a measurement and a field */
    /* Every string is in the encoded size and at most doubles; per tag two
     * separators; per field a separator, `=` and a value of at most 24 bytes
     * (or the quotes of a string); the timestamp 22 bytes. */
    size_t bound = 2 * hub_reading_encoded_size(r) + 4 * nt + 32 * nf + 64;
    char small[LINE_STACK];
    char *buf = bound <= sizeof(small) ? small : malloc(bound);
    if (!buf)
        return HUB_ENOMEM;
    char *p = lp_name(buf, m, true);
    for (size_t i = 0; i < nt; i++) {
        const struct hub_tag *t = hub_reading_tag(r, i);
        if (!t->value || !*t->value || !t->key || !*t->key)
            continue; /* InfluxDB refuses empty tag values: leave the tag out */
        *p++ = ',';
        p = lp_name(p, t->key, false);
        *p++ = '=';
        p = lp_name(p, t->value, false);
    }
    for (size_t i = 0; p && i < nf; i++) {
        *p++ = i == 0 ? ' ' : ',';
        p = lp_field(p, hub_reading_field(r, i), uint_support);
    }
    int rc = HUB_EINVAL; /* a value line protocol cannot hold: nothing appended */
    if (p) {
        *p++ = ' ';
        p = lp_i64(p, hub_reading_time(r));
        *p++ = '\n';
        rc = hub_buf_add(out, buf, (size_t)(p - buf)); /* all or nothing */
    }
    if (buf != small)
        free(buf);
    return rc;
}

int drv_influx_gzip(const uint8_t *in, size_t n, struct hub_buf *out)
{
    z_stream zs;
    uint8_t chunk[16384];
    size_t start = out->len;
    int rc = HUB_OK;
    int zrc;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return HUB_ENOMEM;
    zs.next_in = (Bytef *)(uintptr_t)in;
    do {
        /* avail_in is a uInt: feed large inputs in pieces. */
        if (zs.avail_in == 0 && n > 0) {
            size_t piece = n > (1u << 30) ? (1u << 30) : n;
            zs.avail_in = (uInt)piece;
            n -= piece;
        }
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zrc = deflate(&zs, n == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (zrc == Z_STREAM_ERROR) {
            rc = HUB_EINVAL;
            goto out;
        }
        rc = hub_buf_add(out, chunk, sizeof(chunk) - zs.avail_out);
        if (rc != HUB_OK)
            goto out;
    } while (zrc != Z_STREAM_END);
out:
    deflateEnd(&zs);
    if (rc != HUB_OK) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
    }
    return rc;
}
