/* drivers/mqtt/format.c — one MQTT message to readings: the dispatch of
 * drv_mq_parse, format `value`, RFC 3339 times and the pieces the format
 * parsers share (reasons, adding fields and tags, JSON times).
 *
 * drv_mq_parse checks what every format needs before its parser sees a
 * byte: a payload that is not empty and holds no NUL byte, and, for the
 * JSON formats, a nesting no deeper than DRV_MQ_MAX_DEPTH (counted on the
 * raw text, so that a hostile message never reaches the JSON parser's
 * recursion). After the format's parser, the message's tagset is added to
 * every reading (a reading's own tag of the same key wins). Any failure
 * frees what the message had made: out is left as it was.
 *
 * `value`: the payload, trimmed of ASCII white space, is `true`, `false`
 * or a finite number (strtod, every byte consumed); anything else is
 * refused with the first bytes quoted. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/format_priv.h"

const char *const drv_mq_format_names[] = {"senml", "json", "influx", "value", "chirpstack", NULL};
const char *const drv_mq_precision_names[] = {"auto", "ns", "us", "ms", "s", NULL};

#define NS_PER_S 1000000000LL

void drv_mq_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

const char *drv_mq_quote(char *dst, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0, show = n > 32 ? 32 : n;
    dst[k++] = '"';
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            dst[k++] = (char)c;
        } else {
            dst[k++] = '\\';
            dst[k++] = 'x';
            dst[k++] = hex[c >> 4];
            dst[k++] = hex[c & 15];
        }
    }
    dst[k++] = '"';
    if (show < n) {
        memcpy(dst + k, "...", 3);
        k += 3;
    }
    dst[k] = '\0'; /* at most 1 + 32 * 4 + 1 + 3 + 1 = 134 bytes */
    return dst;
}

void drv_mq_truncate(struct drv_mq_out *out, size_t from)
{
    while (out->n > from)
        hub_reading_free(out->r[--out->n]);
}

void drv_mq_out_clear(struct drv_mq_out *out)
{
    if (out)
        drv_mq_truncate(out, 0);
}

int drv_mq_push(struct drv_mq_out *out, hub_reading_t *r, char *why, size_t whylen)
{
    if (out->n >= DRV_MQ_MAX_READINGS) {
        hub_reading_free(r);
        drv_mq_why(why, whylen, "more than %d readings in one message", DRV_MQ_MAX_READINGS);
        return HUB_EINVAL;
    }
    out->r[out->n++] = r;
    return HUB_OK;
}

hub_reading_t *drv_mq_reading(const char *measurement, int64_t time_ns, int *rc, char *why,
                              size_t whylen)
{
    size_t n = strnlen(measurement, HUB_READING_MAX_NAME + 1);
    if (n == 0 || n > HUB_READING_MAX_NAME) {
        drv_mq_why(why, whylen, "measurement name %s", n ? "longer than 255 bytes" : "empty");
        *rc = HUB_EINVAL;
        return NULL;
    }
    hub_reading_t *r = hub_reading_new(measurement, time_ns);
    if (!r) {
        drv_mq_why(why, whylen, "out of memory");
        *rc = HUB_ENOMEM;
    }
    return r;
}

/* The reason for rc from an add of field key (whose name and value were
 * checked, so that HUB_EINVAL means a duplicate). */
static int field_rc(const hub_reading_t *r, int rc, const char *key, const char *ctx, char *why,
                    size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    if (rc == HUB_EINVAL)
        drv_mq_why(why, whylen, "%sduplicate field %s", ctx, drv_mq_quote(q, key, strlen(key)));
    else if (rc == HUB_EFULL && hub_reading_field_count(r) >= HUB_READING_MAX_FIELDS)
        drv_mq_why(why, whylen, "%smore than %d fields", ctx, HUB_READING_MAX_FIELDS);
    else if (rc == HUB_EFULL)
        drv_mq_why(why, whylen, "%sreading larger than %d bytes", ctx, HUB_READING_MAX_ENCODED);
    else if (rc != HUB_OK)
        drv_mq_why(why, whylen, "out of memory");
    return rc == HUB_EFULL ? HUB_EINVAL : rc;
}

int drv_mq_add_json_field(hub_reading_t *r, const char *key, json_t *v, const char *ctx, char *why,
                          size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    size_t klen = strlen(key);
    if (klen == 0 || klen > HUB_READING_MAX_NAME) {
        drv_mq_why(why, whylen, "%sfield name %s%s", ctx,
                   klen ? "longer than 255 bytes: " : "empty",
                   klen ? drv_mq_quote(q, key, klen) : "");
        return HUB_EINVAL;
    }
    int rc;
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!isfinite(d)) {
            drv_mq_why(why, whylen, "%sfield %s: number out of range", ctx,
                       drv_mq_quote(q, key, klen));
            return HUB_EINVAL;
        }
        rc = hub_reading_add_float(r, key, d);
    } else if (json_is_boolean(v)) {
        rc = hub_reading_add_bool(r, key, json_is_true(v));
    } else if (json_is_string(v)) {
        if (json_string_length(v) > HUB_READING_MAX_STRING) {
            drv_mq_why(why, whylen, "%sfield %s: string longer than %d bytes", ctx,
                       drv_mq_quote(q, key, klen), HUB_READING_MAX_STRING);
            return HUB_EINVAL;
        }
        rc = hub_reading_add_string(r, key, json_string_value(v));
    } else {
        drv_mq_why(why, whylen, "%sfield %s: not a number, bool or string", ctx,
                   drv_mq_quote(q, key, klen));
        return HUB_EINVAL;
    }
    return field_rc(r, rc, key, ctx, why, whylen);
}

int drv_mq_add_tag(hub_reading_t *r, const char *key, const char *value, char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    size_t klen = strlen(key), vlen = strnlen(value, HUB_READING_MAX_NAME + 1);
    if (vlen == 0)
        return HUB_OK;
    if (klen == 0 || klen > HUB_READING_MAX_NAME) {
        drv_mq_why(why, whylen, "tag name %s%s", klen ? "longer than 255 bytes: " : "empty",
                   klen ? drv_mq_quote(q, key, klen) : "");
        return HUB_EINVAL;
    }
    if (vlen > HUB_READING_MAX_NAME) {
        drv_mq_why(why, whylen, "tag %s: value longer than %d bytes", drv_mq_quote(q, key, klen),
                   HUB_READING_MAX_NAME);
        return HUB_EINVAL;
    }
    int rc = hub_reading_add_tag(r, key, value);
    if (rc == HUB_EFULL && hub_reading_tag_count(r) >= HUB_READING_MAX_TAGS)
        drv_mq_why(why, whylen, "more than %d tags", HUB_READING_MAX_TAGS);
    else if (rc == HUB_EFULL)
        drv_mq_why(why, whylen, "reading larger than %d bytes", HUB_READING_MAX_ENCODED);
    else if (rc != HUB_OK)
        drv_mq_why(why, whylen, "out of memory");
    return rc == HUB_EFULL ? HUB_EINVAL : rc;
}

int drv_mq_secs_to_ns(double s, int64_t *ns)
{
    if (!(s > -9.2e9 && s < 9.2e9))
        return -1; /* also NaN; 9.2e9 s is just inside int64 ns */
    double ip = floor(s);
    *ns = (int64_t)ip * NS_PER_S + llround((s - ip) * 1e9);
    return 0;
}

/* ns per unit of a numeric time; AUTO by magnitude. */
static int64_t unit_ns(enum drv_mq_precision p, double magnitude)
{
    switch (p) {
    case DRV_MQ_S:
        return NS_PER_S;
    case DRV_MQ_MS:
        return 1000000;
    case DRV_MQ_US:
        return 1000;
    case DRV_MQ_NS:
        return 1;
    case DRV_MQ_AUTO:
    default:
        break;
    }
    if (magnitude < 1e11)
        return NS_PER_S;
    if (magnitude < 1e14)
        return 1000000;
    if (magnitude < 1e17)
        return 1000;
    return 1;
}

/* A JSON number as a time. Returns 0 or -1 (negative or out of range). */
static int number_ns(json_t *v, enum drv_mq_precision p, int64_t *ns)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -1;
        int64_t u = unit_ns(p, (double)i);
        if (i > INT64_MAX / u)
            return -1;
        *ns = (int64_t)i * u;
        return 0;
    }
    double d = json_real_value(v);
    if (!(d >= 0) || !isfinite(d))
        return -1;
    int64_t u = unit_ns(p, d);
    double ip = floor(d);
    if (ip >= 9.2e18 / (double)u)
        return -1;
    int64_t whole = (int64_t)ip * u;
    int64_t frac = llround((d - ip) * (double)u);
    if (whole > INT64_MAX - frac)
        return -1;
    *ns = whole + frac;
    return 0;
}

int drv_mq_json_time(json_t *v, enum drv_mq_precision precision, const char *what, int64_t *ns,
                     char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    if (json_is_number(v)) {
        if (number_ns(v, precision, ns) == 0)
            return 0;
        drv_mq_why(why, whylen, "%s: %.17g is out of range (1970 to 2262)", what,
                   json_number_value(v));
        return -1;
    }
    if (json_is_string(v)) {
        if (drv_mq_parse_rfc3339(json_string_value(v), ns) == 0)
            return 0;
        drv_mq_why(why, whylen, "%s: not an RFC 3339 time from 1970 to 2262: %s", what,
                   drv_mq_quote(q, json_string_value(v), json_string_length(v)));
        return -1;
    }
    drv_mq_why(why, whylen, "%s: not a number or an RFC 3339 string", what);
    return -1;
}

/* ---- RFC 3339 ------------------------------------------------------------- */

/* n decimal digits at s into *v; -1 if any is not a digit (stops at NUL). */
static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int drv_mq_parse_rfc3339(const char *s, int64_t *ns)
{
    int y, mo, d, h, mi, sec;
    if (!s || !ns)
        return -1;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        int64_t scale = 100000000;
        for (; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale; /* digits past the ninth are cut */
            scale /= 10;
        }
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (secs < 0 || secs > (INT64_MAX - frac) / NS_PER_S)
        return -1;
    *ns = secs * NS_PER_S + frac;
    return 0;
}

/* ---- format value --------------------------------------------------------- */

static int ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int drv_mq_parse_value(const struct drv_mq_parse_opts *o, const char *s, size_t len, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    size_t a = 0, b = len;
    while (a < b && ascii_space(s[a]))
        a++;
    while (b > a && ascii_space(s[b - 1]))
        b--;
    const char *t = s + a;
    size_t n = b - a;
    if (n == 0) {
        drv_mq_why(why, whylen, "blank payload: no value");
        return HUB_EINVAL;
    }
    const char *field = o->field && *o->field ? o->field : "value";
    size_t flen = strlen(field);
    if (flen > HUB_READING_MAX_NAME) {
        drv_mq_why(why, whylen, "field name longer than 255 bytes");
        return HUB_EINVAL;
    }
    int rc;
    hub_reading_t *r = drv_mq_reading(o->measurement && *o->measurement ? o->measurement : "value",
                                      now_ns, &rc, why, whylen);
    if (!r)
        return rc;
    if (n == 4 && memcmp(t, "true", 4) == 0) {
        rc = hub_reading_add_bool(r, field, true);
    } else if (n == 5 && memcmp(t, "false", 5) == 0) {
        rc = hub_reading_add_bool(r, field, false);
    } else {
        char *copy = malloc(n + 1);
        if (!copy) {
            hub_reading_free(r);
            drv_mq_why(why, whylen, "out of memory");
            return HUB_ENOMEM;
        }
        memcpy(copy, t, n);
        copy[n] = '\0';
        char *end;
        errno = 0;
        double d = strtod(copy, &end);
        int ok = end == copy + n && isfinite(d);
        free(copy);
        if (!ok) {
            hub_reading_free(r);
            drv_mq_why(why, whylen, "not a number or bool: %s", drv_mq_quote(q, t, n));
            return HUB_EINVAL;
        }
        rc = hub_reading_add_float(r, field, d);
    }
    if (rc != HUB_OK) {
        field_rc(r, rc, field, "", why, whylen);
        hub_reading_free(r);
        return rc;
    }
    return drv_mq_push(out, r, why, whylen);
}

/* ---- dispatch ------------------------------------------------------------- */

/* jansson's message, printable. */
static void clean_text(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static int parse_json_doc(const struct drv_mq_parse_opts *o, const uint8_t *p, size_t len,
                          int64_t now_ns, struct drv_mq_out *out, char *why, size_t whylen)
{
    if (drv_mq_json_depth((const char *)p, len, DRV_MQ_MAX_DEPTH) > DRV_MQ_MAX_DEPTH) {
        drv_mq_why(why, whylen, "JSON nested deeper than %d", DRV_MQ_MAX_DEPTH);
        return HUB_EINVAL;
    }
    json_error_t err;
    json_t *root = json_loadb((const char *)p, len, 0, &err);
    if (!root) {
        clean_text(err.text);
        drv_mq_why(why, whylen, "invalid JSON at line %d column %d: %s", err.line, err.column,
                   err.text);
        return HUB_EINVAL;
    }
    int rc;
    switch (o->format) {
    case DRV_MQ_SENML:
        rc = drv_mq_parse_senml(o, root, now_ns, out, why, whylen);
        break;
    case DRV_MQ_JSON:
        rc = drv_mq_parse_json(o, root, now_ns, out, why, whylen);
        break;
    default:
        rc = drv_mq_parse_chirpstack(o, root, now_ns, out, why, whylen);
        break;
    }
    json_decref(root);
    return rc;
}

/* The message's tags on r, where r has no tag of that key. */
static int add_tagset(hub_reading_t *r, const struct drv_mq_tagset *tags, char *why, size_t whylen)
{
    size_t n = tags->n < HUB_READING_MAX_TAGS ? tags->n : HUB_READING_MAX_TAGS;
    for (size_t i = 0; i < n; i++) {
        const struct hub_tag *t = &tags->tag[i];
        if (!t->key || !t->value || hub_reading_tag_value(r, t->key))
            continue;
        int rc = drv_mq_add_tag(r, t->key, t->value, why, whylen);
        if (rc != HUB_OK)
            return rc;
    }
    return HUB_OK;
}

int drv_mq_parse(const struct drv_mq_parse_opts *o, const struct drv_mq_tagset *tags,
                 const uint8_t *payload, size_t len, int64_t now_ns, struct drv_mq_out *out,
                 char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!o || !out || (!payload && len)) {
        drv_mq_why(why, whylen, "bad arguments");
        return HUB_EINVAL;
    }
    size_t start = out->n;
    int rc;
    if (len == 0) {
        drv_mq_why(why, whylen, "empty payload");
        return HUB_EINVAL;
    }
    if (memchr(payload, 0, len)) {
        drv_mq_why(why, whylen, "NUL byte in payload");
        return HUB_EINVAL;
    }
    switch (o->format) {
    case DRV_MQ_SENML:
    case DRV_MQ_JSON:
    case DRV_MQ_CHIRPSTACK:
        rc = parse_json_doc(o, payload, len, now_ns, out, why, whylen);
        break;
    case DRV_MQ_INFLUX:
        rc = drv_mq_parse_lines((const char *)payload, len, o->precision, now_ns, out, why, whylen);
        break;
    case DRV_MQ_VALUE:
        rc = drv_mq_parse_value(o, (const char *)payload, len, now_ns, out, why, whylen);
        break;
    default:
        drv_mq_why(why, whylen, "unknown format %d", (int)o->format);
        rc = HUB_EINVAL;
        break;
    }
    if (rc == HUB_OK && out->n == start) {
        drv_mq_why(why, whylen, "no reading in message");
        rc = HUB_EINVAL;
    }
    for (size_t i = start; rc == HUB_OK && tags && i < out->n; i++)
        rc = add_tagset(out->r[i], tags, why, whylen);
    if (rc != HUB_OK) {
        if (rc != HUB_ENOMEM)
            rc = HUB_EINVAL; /* a message too big for the limits is a bad message */
        drv_mq_truncate(out, start);
        if (why && whylen && why[0] == '\0')
            drv_mq_why(why, whylen, "%s", rc == HUB_ENOMEM ? "out of memory" : "bad message");
    }
    return rc;
}
