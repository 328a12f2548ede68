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
 * calls setlocale(LC_NUMERIC, ...) to anything but "C". */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "drivers/influx/influx.h"

enum lp_kind {
    LP_MEASUREMENT,
    LP_KEY, /* tag key, tag value, field key */
};

/* A byte that the name escaper turns into a backslash pair (after newline
 * mapping). */
static int lp_special(enum lp_kind kind, char c)
{
    if (c == ',' || c == ' ' || c == '\n')
        return 1;
    return kind == LP_KEY && c == '=';
}

static int lp_name(struct hub_buf *out, const char *s, enum lp_kind kind)
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
            if (next == '\0' || lp_special(LP_KEY, next))
                rc = hub_buf_addc(out, '/');
            else
                rc = hub_buf_addc(out, '\\');
        } else if (lp_special(kind, c) || (kind == LP_MEASUREMENT && i == 0 && c == '#')) {
            char pair[2] = {'\\', c};
            rc = hub_buf_add(out, pair, 2);
        } else {
            rc = hub_buf_addc(out, (uint8_t)c);
        }
    }
    return rc;
}

static int lp_string(struct hub_buf *out, const char *s)
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
static int lp_float(struct hub_buf *out, double v)
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

static int lp_field(struct hub_buf *out, const struct hub_field *f, bool uint_support)
{
    int rc = lp_name(out, f->key, LP_KEY);
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
        return lp_float(out, f->v.f);
    case HUB_FIELD_BOOL:
        return hub_buf_adds(out, f->v.b ? "true" : "false");
    case HUB_FIELD_STRING:
        return lp_string(out, f->v.s ? f->v.s : "");
    }
    return HUB_EINVAL;
}

int drv_influx_encode(const hub_reading_t *r, bool uint_support, struct hub_buf *out)
{
    size_t start = out->len;
    size_t nf = hub_reading_field_count(r);
    int rc = HUB_OK;
    const char *m = hub_reading_measurement(r);

    if (nf == 0 || !m || !*m)
        return HUB_EINVAL; /* a line needs a measurement and a field */
    rc = lp_name(out, m, LP_MEASUREMENT);
    for (size_t i = 0; rc == HUB_OK && i < hub_reading_tag_count(r); i++) {
        const struct hub_tag *t = hub_reading_tag(r, i);
        if (!t->value || !*t->value || !t->key || !*t->key)
            continue; /* InfluxDB refuses empty tag values: leave the tag out */
        rc = hub_buf_addc(out, ',');
        if (rc == HUB_OK)
            rc = lp_name(out, t->key, LP_KEY);
        if (rc == HUB_OK)
            rc = hub_buf_addc(out, '=');
        if (rc == HUB_OK)
            rc = lp_name(out, t->value, LP_KEY);
    }
    for (size_t i = 0; rc == HUB_OK && i < nf; i++) {
        rc = hub_buf_addc(out, i == 0 ? ' ' : ',');
        if (rc == HUB_OK)
            rc = lp_field(out, hub_reading_field(r, i), uint_support);
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
