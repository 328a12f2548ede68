/* drivers/mqtt/lineproto.c — format `influx`: InfluxDB line protocol,
 * validated line by line and kept as written.
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * Lines end in '\n' (or "\r\n"); blank lines and lines whose first
 * non-blank byte is '#' are skipped. In names (measurement, tag keys and
 * values, field keys) a backslash before ',', ' ' or '=' makes it part of
 * the name; before any other byte the backslash is kept, and the pair is
 * still one unit (so "a\\,b" is the name `a\\` then a comma), as InfluxDB
 * reads it. Field values: a double-quoted string (`\"` and `\\` escaped,
 * any other backslash kept), t/T/true/True/TRUE and f/F/false/False/FALSE,
 * an integer with suffix i (int64) or u (uint64), or a float. The
 * timestamp is an integer in the given precision (AUTO: ns), converted to
 * ns; no timestamp is the arrival time. Times before 1970 are refused.
 *
 * Every error is "line N: " and what is wrong there; the message is
 * refused whole. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/format_priv.h"

/* One line being read: s[0..n), at i. */
struct lp {
    const char *s;
    size_t n, i;
    size_t line;
    char *why;
    size_t whylen;
};

__attribute__((format(printf, 2, 3))) static int lp_err(struct lp *l, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    drv_mq_why(l->why, l->whylen, "line %zu: %s", l->line, msg);
    return HUB_EINVAL;
}

/* Read a name up to an unescaped byte of stop into dst (unescaped, at
 * most HUB_READING_MAX_NAME bytes). Returns its length, or -1 if too long. */
static long lp_name(struct lp *l, const char *stop, char *dst)
{
    size_t k = 0;
    while (l->i < l->n && !strchr(stop, l->s[l->i])) {
        char c = l->s[l->i];
        char out1 = c, out2 = 0;
        if (c == '\\' && l->i + 1 < l->n) {
            char e = l->s[l->i + 1];
            if (e == ',' || e == ' ' || e == '=') {
                out1 = e;
            } else {
                out2 = e;
            }
            l->i += 2;
        } else {
            l->i++;
        }
        if (k + 1 + (out2 != 0) > HUB_READING_MAX_NAME)
            return -1;
        dst[k++] = out1;
        if (out2)
            dst[k++] = out2;
    }
    dst[k] = '\0';
    return (long)k;
}

static void lp_skip_spaces(struct lp *l)
{
    while (l->i < l->n && (l->s[l->i] == ' ' || l->s[l->i] == '\t'))
        l->i++;
}

/* A field value's token: up to an unescaped ',' or ' '. */
static size_t lp_token(struct lp *l)
{
    size_t start = l->i;
    while (l->i < l->n && l->s[l->i] != ',' && l->s[l->i] != ' ' && l->s[l->i] != '\t')
        l->i++;
    return l->i - start;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The token is a float as line protocol writes one: [-+]digits[.digits]
 * [e[-+]digits], or with the digits before or after the point left out. */
static int float_syntax(const char *t, size_t n)
{
    size_t i = 0, d = 0;
    if (i < n && (t[i] == '-' || t[i] == '+'))
        i++;
    for (; i < n && is_digit(t[i]); i++)
        d++;
    if (i < n && t[i] == '.')
        for (i++; i < n && is_digit(t[i]); i++)
            d++;
    if (d == 0)
        return 0;
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '-' || t[i] == '+'))
            i++;
        size_t e = 0;
        for (; i < n && is_digit(t[i]); i++)
            e++;
        if (e == 0)
            return 0;
    }
    return i == n;
}

/* Digits t[0..n) as a uint64: 0, -1 if empty or not digits, -2 if more
 * than UINT64_MAX. */
static int parse_u64(const char *t, size_t n, uint64_t *v)
{
    if (n == 0)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(t[i]))
            return -1;
        unsigned d = (unsigned)(t[i] - '0');
        if (*v > (UINT64_MAX - d) / 10) {
            for (; i < n; i++)
                if (!is_digit(t[i]))
                    return -1;
            return -2;
        }
        *v = *v * 10 + d;
    }
    return 0;
}

static int is_word(const char *t, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(t, *words, n) == 0)
            return 1;
    return 0;
}

static const char *const true_words[] = {"t", "T", "true", "True", "TRUE", NULL};
static const char *const false_words[] = {"f", "F", "false", "False", "FALSE", NULL};

/* key followed by '=', quoted: what a reason says stands before a missing
 * value. */
static const char *quote_eq(char *dst, const char *key)
{
    char ke[HUB_READING_MAX_NAME + 2];
    size_t n = strlen(key);
    memcpy(ke, key, n);
    ke[n] = '=';
    return drv_mq_quote(dst, ke, n + 1);
}

/* lp_value's answer when the line's syntax is wrong (the reason is set). */
#define LP_SYNTAX 1

/* The adds, which do nothing on the first pass (r NULL: syntax only). */
static int put_string(hub_reading_t *r, const char *key, const char *v)
{
    return r ? hub_reading_add_string(r, key, v) : HUB_OK;
}
static int put_bool(hub_reading_t *r, const char *key, bool v)
{
    return r ? hub_reading_add_bool(r, key, v) : HUB_OK;
}
static int put_int(hub_reading_t *r, const char *key, int64_t v)
{
    return r ? hub_reading_add_int(r, key, v) : HUB_OK;
}
static int put_uint(hub_reading_t *r, const char *key, uint64_t v)
{
    return r ? hub_reading_add_uint(r, key, v) : HUB_OK;
}
static int put_float(hub_reading_t *r, const char *key, double v)
{
    return r ? hub_reading_add_float(r, key, v) : HUB_OK;
}

/* A quoted string value at l->i (on the '"'). */
static int lp_string(struct lp *l, hub_reading_t *r, const char *qk, const char *key, char *buf)
{
    size_t k = 0;
    l->i++;
    for (;;) {
        if (l->i >= l->n) {
            lp_err(l, "unterminated string in field %s", qk);
            return LP_SYNTAX;
        }
        char c = l->s[l->i];
        if (c == '"') {
            l->i++;
            break;
        }
        char out1 = c, out2 = 0;
        if (c == '\\' && l->i + 1 < l->n) {
            char e = l->s[l->i + 1];
            if (e == '"' || e == '\\')
                out1 = e;
            else
                out2 = e;
            l->i += 2;
        } else {
            l->i++;
        }
        if (k + 1 + (out2 != 0) > HUB_READING_MAX_STRING) {
            lp_err(l, "field %s: string longer than %d bytes", qk, HUB_READING_MAX_STRING);
            return LP_SYNTAX;
        }
        buf[k++] = out1;
        if (out2)
            buf[k++] = out2;
    }
    buf[k] = '\0';
    return put_string(r, key, buf);
}

/* One field value at l->i for key (qk: key quoted for reasons). Returns
 * LP_SYNTAX, or what the add returned. */
static int lp_value(struct lp *l, hub_reading_t *r, const char *qk, const char *key, char *buf)
{
    char q[DRV_MQ_QUOTE_MAX];
    if (l->i < l->n && l->s[l->i] == '"')
        return lp_string(l, r, qk, key, buf);
    const char *t = l->s + l->i;
    size_t n = lp_token(l);
    if (n == 0) {
        lp_err(l, "missing field value after %s", quote_eq(q, key));
        return LP_SYNTAX;
    }
    if (is_word(t, n, true_words))
        return put_bool(r, key, true);
    if (is_word(t, n, false_words))
        return put_bool(r, key, false);
    char last = t[n - 1];
    if (last == 'i' || last == 'u') {
        size_t neg = t[0] == '-';
        uint64_t u;
        int bad = parse_u64(t + neg, n - 1 - neg, &u);
        if (bad == -1 || (neg && last == 'u')) {
            lp_err(l, "field %s: bad %s %s", qk, last == 'i' ? "integer" : "unsigned integer",
                   drv_mq_quote(q, t, n));
            return LP_SYNTAX;
        }
        if (bad == 0 && last == 'u')
            return put_uint(r, key, u);
        if (bad || u > (uint64_t)INT64_MAX + neg) {
            lp_err(l, "field %s: %s out of range %s", qk,
                   last == 'i' ? "integer" : "unsigned integer", drv_mq_quote(q, t, n));
            return LP_SYNTAX;
        }
        return put_int(r, key, neg ? (int64_t)(0 - u) : (int64_t)u);
    }
    if (!float_syntax(t, n)) {
        lp_err(l, "field %s: bad number %s", qk, drv_mq_quote(q, t, n));
        return LP_SYNTAX;
    }
    if (n > HUB_READING_MAX_STRING) {
        lp_err(l, "field %s: number longer than %d bytes", qk, HUB_READING_MAX_STRING);
        return LP_SYNTAX;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d)) {
        lp_err(l, "field %s: number out of range %s", qk, drv_mq_quote(q, t, n));
        return LP_SYNTAX;
    }
    return put_float(r, key, d);
}

static int64_t precision_ns(enum drv_mq_precision p)
{
    switch (p) {
    case DRV_MQ_S:
        return 1000000000;
    case DRV_MQ_MS:
        return 1000000;
    case DRV_MQ_US:
        return 1000;
    default:
        return 1; /* ns, and AUTO: line protocol's own default */
    }
}

/* The timestamp token ts[0..n) to ns. */
static int lp_time(struct lp *l, const char *ts, size_t n, enum drv_mq_precision precision,
                   int64_t *t)
{
    char q[DRV_MQ_QUOTE_MAX];
    uint64_t u;
    int64_t unit = precision_ns(precision);
    if (n > 1 && ts[0] == '-' && parse_u64(ts + 1, n - 1, &u) != -1)
        return lp_err(l, "timestamp before 1970 %s", drv_mq_quote(q, ts, n));
    int bad = parse_u64(ts, n, &u);
    if (bad == -1)
        return lp_err(l, "bad timestamp %s", drv_mq_quote(q, ts, n));
    if (bad || u > (uint64_t)INT64_MAX / (uint64_t)unit)
        return lp_err(l, "timestamp out of range %s", drv_mq_quote(q, ts, n));
    *t = (int64_t)u * unit;
    return HUB_OK;
}

/* Tags, fields and timestamp of a line, from l->i (after the measurement).
 * With r NULL, the syntax only, and the time into *t; else the tags and
 * fields into r. */
static int lp_rest(struct lp *l, hub_reading_t *r, enum drv_mq_precision precision, int64_t *t,
                   char *buf)
{
    char q[DRV_MQ_QUOTE_MAX];
    char key[HUB_READING_MAX_NAME + 1], val[HUB_READING_MAX_NAME + 1];
    while (l->i < l->n && l->s[l->i] == ',') {
        l->i++;
        long k = lp_name(l, ",= \t", key);
        if (k < 0)
            return lp_err(l, "tag key longer than %d bytes", HUB_READING_MAX_NAME);
        if (k == 0)
            return lp_err(l, "empty tag key");
        const char *qk = drv_mq_quote(q, key, (size_t)k);
        if (l->i >= l->n || l->s[l->i] != '=')
            return lp_err(l, "missing \"=\" after tag key %s", qk);
        l->i++;
        long v = lp_name(l, ", \t", val);
        if (v < 0)
            return lp_err(l, "tag %s: value longer than %d bytes", qk, HUB_READING_MAX_NAME);
        if (v == 0)
            return lp_err(l, "missing tag value after %s", quote_eq(q, key));
        if (!r)
            continue;
        if (hub_reading_tag_value(r, key))
            return lp_err(l, "duplicate tag %s", qk);
        int rc = hub_reading_add_tag(r, key, val);
        if (rc == HUB_EFULL)
            return lp_err(l, "more than %d tags", HUB_READING_MAX_TAGS);
        if (rc != HUB_OK)
            return rc;
    }
    if (l->i >= l->n)
        return lp_err(l, "no fields (a space, then field=value)");
    lp_skip_spaces(l);
    if (l->i >= l->n)
        return lp_err(l, "no fields after the space");
    for (;;) {
        long k = lp_name(l, ",= \t", key);
        if (k < 0)
            return lp_err(l, "field key longer than %d bytes", HUB_READING_MAX_NAME);
        if (k == 0)
            return lp_err(l, "empty field key");
        const char *qk = drv_mq_quote(q, key, (size_t)k);
        if (l->i >= l->n || l->s[l->i] != '=')
            return lp_err(l, "missing \"=\" after field key %s", qk);
        l->i++;
        int rc = lp_value(l, r, qk, key, buf);
        if (rc == LP_SYNTAX)
            return HUB_EINVAL;
        if (rc == HUB_EINVAL) /* the value was checked */
            return lp_err(l, "duplicate field %s", qk);
        if (rc == HUB_EFULL)
            return lp_err(l, hub_reading_field_count(r) >= HUB_READING_MAX_FIELDS
                                 ? "more than 64 fields"
                                 : "line too large for one reading");
        if (rc != HUB_OK)
            return rc;
        if (l->i < l->n && l->s[l->i] == ',') {
            l->i++;
            continue;
        }
        if (l->i < l->n && l->s[l->i] != ' ' && l->s[l->i] != '\t') {
            char q2[DRV_MQ_QUOTE_MAX];
            return lp_err(l, "field %s: unexpected %s after the value", qk,
                          drv_mq_quote(q2, l->s + l->i, 1));
        }
        break;
    }
    lp_skip_spaces(l);
    if (l->i >= l->n || r)
        return HUB_OK;
    const char *ts = l->s + l->i;
    size_t n = lp_token(l);
    lp_skip_spaces(l);
    if (l->i < l->n)
        return lp_err(l, "unexpected %s after the timestamp",
                      drv_mq_quote(q, l->s + l->i, l->n - l->i));
    return lp_time(l, ts, n, precision, t);
}

/* One line (without its '\n'): read twice, for the time first (a reading
 * is made with its time), then into the reading. */
static int lp_line(struct lp *l, enum drv_mq_precision precision, int64_t now_ns,
                   struct drv_mq_out *out, char *buf)
{
    char meas[HUB_READING_MAX_NAME + 1];
    long m = lp_name(l, ", \t", meas);
    if (m < 0)
        return lp_err(l, "measurement longer than %d bytes", HUB_READING_MAX_NAME);
    if (m == 0)
        return lp_err(l, "missing measurement");
    size_t after = l->i;
    int64_t t = now_ns;
    int rc = lp_rest(l, NULL, precision, &t, buf);
    if (rc != HUB_OK)
        return rc;
    hub_reading_t *r = hub_reading_new(meas, t);
    if (!r) {
        drv_mq_why(l->why, l->whylen, "out of memory");
        return HUB_ENOMEM;
    }
    l->i = after;
    rc = lp_rest(l, r, precision, &t, buf);
    if (rc != HUB_OK) {
        if (rc == HUB_ENOMEM)
            drv_mq_why(l->why, l->whylen, "out of memory");
        hub_reading_free(r);
        return rc;
    }
    return drv_mq_push(out, r, l->why, l->whylen);
}

int drv_mq_parse_lines(const char *s, size_t len, enum drv_mq_precision precision, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!out || (!s && len)) {
        drv_mq_why(why, whylen, "bad arguments");
        return HUB_EINVAL;
    }
    size_t start = out->n;
    char *buf = malloc(HUB_READING_MAX_STRING + 1); /* a string value, unescaped */
    if (!buf) {
        drv_mq_why(why, whylen, "out of memory");
        return HUB_ENOMEM;
    }
    struct lp l = {.why = why, .whylen = whylen};
    int rc = HUB_OK;
    for (size_t pos = 0; rc == HUB_OK && pos < len;) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - s) : len;
        l.s = s + pos;
        l.n = end - pos;
        l.i = 0;
        l.line++;
        pos = end + 1;
        if (l.n > 0 && l.s[l.n - 1] == '\r')
            l.n--;
        if (memchr(l.s, '\0', l.n)) {
            rc = lp_err(&l, "NUL byte");
            break;
        }
        lp_skip_spaces(&l);
        if (l.i == l.n || l.s[l.i] == '#')
            continue; /* blank or comment */
        l.s += l.i;
        l.n -= l.i;
        l.i = 0;
        rc = lp_line(&l, precision, now_ns, out, buf);
    }
    free(buf);
    if (rc == HUB_OK && out->n == start) {
        drv_mq_why(why, whylen, "no data lines (only blank lines and comments)");
        rc = HUB_EINVAL;
    }
    if (rc != HUB_OK)
        drv_mq_truncate(out, start);
    return rc;
}
