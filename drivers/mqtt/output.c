/* drivers/mqtt/output.c — the live output (`type: mqtt`): every reading
 * published, retained, on a topic built from its tags, for the screens of
 * the operations center; a late subscriber gets the last value of every
 * series at once.
 *
 * Topics and payloads are live.h's: the topic template
 * (cityhub/{gateway}/{measurement}/{device} by default), JSON or SenML.
 * The hub's own health point (measurement cityhub) goes, as JSON and
 * retained, to health_topic instead.
 *
 * The gateway's presence is on status_topic: the connection's Last Will is
 * "offline" (retained, QoS 1), so the broker says it when the hub vanishes
 * (power cut, kill -9: within 1.5 x keepalive); every connect publishes
 * "online" over it, and a clean stop publishes "offline" itself (a
 * DISCONNECT discards the Will) before it disconnects.
 *
 * A flush publishes its readings in windows of at most LIVE_WINDOW messages
 * (and max_batch_bytes of payload), each window waited for until the
 * broker has acknowledged it (QoS 1/2) or the socket has it (QoS 0):
 *   all acknowledged                 HUB_OUT_OK
 *   a window failed after others     HUB_OUT_OK for the acknowledged
 *                                    prefix (done), the rest again
 *   not connected (after waiting up  HUB_OUT_RETRY, with the
 *   to publish_timeout), refused,    connection's last error
 *   timed out, cancelled
 * Re-sending is harmless: the values are retained, the last one wins. The
 * journal keeps everything this output has not delivered, so after a
 * broker outage it catches up on its own cursor without holding back any
 * other output. A reading that cannot be written (a value JSON cannot hold,
 * a payload above max_batch_bytes) is skipped, counted
 * (cityhub_mqtt_live_skipped_total) and logged, never left to block the
 * rest. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/influx/line.h"
#include "drivers/mqtt/live.h"
#include "drivers/mqtt/mqtt_priv.h"
#include "hub/clock.h"
#include "hub/log.h"

#define LIVE_WINDOW 64 /* messages published before waiting for their acks (Paho buffers 100) */
#define LIVE_CONNECT_WAIT_MAX (10 * HUB_NS_PER_S) /* a flush waits this long for a connection */
#define LIVE_EXIT_NS (1500 * HUB_NS_PER_MS)       /* a clean stop waits this long for "offline" */
#define HEALTH_MEASUREMENT "cityhub"

const char *const drv_mq_live_payload_names[] = {"json", "senml", NULL};

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length (1..4) of the well-formed UTF-8 sequence at s, its code point in
 * *cp; 0 when the bytes there are not one (overlong, surrogate, above
 * U+10FFFF, cut short). s is NUL-terminated: a NUL is never a
 * continuation byte, so nothing past it is read. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        *cp = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        *cp = c & 0x07;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char k = s[i];
        if (i == 1 ? (k < lo || k > hi) : (k & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (k & 0x3f);
    }
    return n;
}

/* A code point a topic may hold: no control characters (C0, DEL, C1) and
 * no non-characters, which strict brokers refuse. */
static bool topic_char_ok(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
        return false;
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
        return false;
    return true;
}

/* ---- topic templates --------------------------------------------------------- */

int drv_mq_live_check_template(const char *tmpl, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)tmpl;
    const unsigned char *open = NULL;
    if (!*s) {
        snprintf(err, errlen, "an empty topic");
        return -1;
    }
    if (*s == '$') {
        snprintf(err, errlen, "\"%s\": a topic starting with '$' is the broker's", tmpl);
        return -1;
    }
    for (size_t i = 0; s[i];) {
        uint32_t cp;
        size_t n = utf8_seq(s + i, &cp);
        if (n == 0) {
            snprintf(err, errlen, "byte %zu is not UTF-8", i + 1);
            return -1;
        }
        if (!topic_char_ok(cp)) {
            snprintf(err, errlen, "\"%s\": a control character (byte %zu) in a topic", tmpl, i + 1);
            return -1;
        }
        if (cp == '+' || cp == '#') {
            snprintf(err, errlen,
                     "\"%s\": no wildcards ('%c') in a topic to publish to; a tag's value goes "
                     "in as {KEY}",
                     tmpl, (char)cp);
            return -1;
        }
        if (cp == '{') {
            if (open) {
                snprintf(err, errlen, "\"%s\": '{' inside a placeholder (byte %zu)", tmpl, i + 1);
                return -1;
            }
            open = s + i;
        } else if (cp == '}') {
            if (!open) {
                snprintf(err, errlen, "\"%s\": '}' without '{' (byte %zu)", tmpl, i + 1);
                return -1;
            }
            if (s + i == open + 1) {
                snprintf(err, errlen,
                         "\"%s\": an empty placeholder {} (write {measurement}, {gateway} or "
                         "{TAG})",
                         tmpl);
                return -1;
            }
            open = NULL;
        }
        i += n;
    }
    if (open) {
        snprintf(err, errlen, "\"%s\": '{' without '}'", tmpl);
        return -1;
    }
    return 0;
}

/* Append a substituted value: '/', '+', '#', what a topic may not hold and
 * a '$' that would start the topic become '_'; nothing (or NULL) is "_". */
static int add_value(struct hub_buf *out, const char *v)
{
    const unsigned char *s = (const unsigned char *)(v ? v : "");
    if (!*s)
        return hub_buf_addc(out, '_');
    int rc = HUB_OK;
    for (size_t i = 0; s[i] && rc == HUB_OK;) {
        uint32_t cp;
        size_t n = utf8_seq(s + i, &cp);
        if (n == 0) {
            rc = hub_buf_addc(out, '_'); /* one for each stray byte */
            i++;
            continue;
        }
        if (!topic_char_ok(cp) || cp == '/' || cp == '+' || cp == '#' ||
            (cp == '$' && out->len == 0))
            rc = hub_buf_addc(out, '_');
        else
            rc = hub_buf_add(out, s + i, n);
        i += n;
    }
    return rc;
}

int drv_mq_live_expand(const char *tmpl, drv_mq_live_lookup_fn lookup, void *arg,
                       struct hub_buf *out)
{
    int rc = HUB_OK;
    const char *p = tmpl;
    hub_buf_reset(out);
    while (*p && rc == HUB_OK) {
        const char *close = *p == '{' ? strchr(p + 1, '}') : NULL;
        if (close) {
            rc = add_value(out, lookup(arg, p + 1, (size_t)(close - p - 1)));
            p = close + 1;
        } else {
            size_t run = 1 + strcspn(p + 1, "{"); /* an unmatched '{' is text */
            rc = hub_buf_add(out, p, run);
            p += run;
        }
    }
    if (rc == HUB_OK && !out->data)
        rc = hub_buf_add(out, "", 0);
    return rc;
}

struct reading_names {
    const char *gateway;
    const hub_reading_t *r;
};

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && !memcmp(name, want, len);
}

static const char *reading_lookup(void *arg, const char *name, size_t len)
{
    const struct reading_names *rn = arg;
    char key[HUB_READING_MAX_NAME + 1];
    if (name_is(name, len, "measurement"))
        return hub_reading_measurement(rn->r);
    if (name_is(name, len, "gateway") && rn->gateway)
        return rn->gateway;
    if (len >= sizeof(key))
        return NULL;
    memcpy(key, name, len);
    key[len] = 0;
    return hub_reading_tag_value(rn->r, key);
}

int drv_mq_live_topic(const char *tmpl, const char *gateway, const hub_reading_t *r,
                      struct hub_buf *out)
{
    struct reading_names rn = {.gateway = gateway, .r = r};
    return drv_mq_live_expand(tmpl, reading_lookup, &rn, out);
}

/* ---- payloads -------------------------------------------------------------------- */

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), in 64 bits:
 * a 32-bit time_t would end in 2038. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ns as whole seconds (floor) and the nanoseconds past them (0..1e9-1). */
static void split_ns(int64_t ns, int64_t *sec, int64_t *frac)
{
    *sec = ns / HUB_NS_PER_S;
    *frac = ns % HUB_NS_PER_S;
    if (*frac < 0) {
        *frac += HUB_NS_PER_S;
        (*sec)--;
    }
}

size_t drv_mq_live_rfc3339(int64_t ns, char *dst)
{
    int64_t sec, frac, y;
    unsigned mo, d;
    split_ns(ns, &sec, &frac);
    int64_t days = sec / 86400, sod = sec % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    civil_from_days(days, &y, &mo, &d);
    int n = snprintf(dst, DRV_MQ_LIVE_TIME_MAX, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%09uZ", y,
                     mo, d, (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
                     (unsigned)frac);
    return n > 0 ? (size_t)n : 0;
}

/* A JSON writer over a hub_buf: the first error sticks, later calls do
 * nothing. */
struct jw {
    struct hub_buf *b;
    int rc;
};

static void jw_raw(struct jw *w, const void *p, size_t n)
{
    if (w->rc == HUB_OK)
        w->rc = hub_buf_add(w->b, p, n);
}

static void jw_lit(struct jw *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

/* s as a JSON string: '"' and '\\' escaped, control characters as \n, \t
 * ... or \u00XX, bytes that are not UTF-8 as U+FFFD. */
static void jw_str(struct jw *w, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    jw_raw(w, "\"", 1);
    size_t i = 0;
    while (s[i] && w->rc == HUB_OK) {
        size_t run = 0;
        while (s[i + run] >= 0x20 && s[i + run] < 0x80 && s[i + run] != '"' && s[i + run] != '\\')
            run++;
        if (run) {
            jw_raw(w, s + i, run);
            i += run;
            continue;
        }
        unsigned char c = s[i];
        if (!c)
            break;
        uint32_t cp;
        size_t n;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            jw_raw(w, esc, 2);
            i++;
            break;
        case '\b':
        case '\f':
        case '\n':
        case '\r':
        case '\t':
            esc[1] = c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            jw_raw(w, esc, 2);
            i++;
            break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                jw_raw(w, esc, 6);
                i++;
            } else if ((n = utf8_seq(s + i, &cp)) != 0) {
                jw_raw(w, s + i, n);
                i += n;
            } else {
                jw_lit(w, "\\ufffd");
                i++;
            }
        }
    }
    jw_raw(w, "\"", 1);
}

/* A field's value as a JSON literal: number, true/false or string. */
static void jw_value(struct jw *w, const struct hub_field *f)
{
    char num[40];
    size_t n;
    switch (f->type) {
    case HUB_FIELD_INT:
        n = (size_t)snprintf(num, sizeof(num), "%" PRId64, f->v.i);
        jw_raw(w, num, n);
        break;
    case HUB_FIELD_UINT:
        n = (size_t)snprintf(num, sizeof(num), "%" PRIu64, f->v.u);
        jw_raw(w, num, n);
        break;
    case HUB_FIELD_FLOAT:
        n = drv_influx_format_float(f->v.f, num);
        if (n == 0 && w->rc == HUB_OK)
            w->rc = HUB_EINVAL; /* not finite: JSON has no such number */
        jw_raw(w, num, n);
        break;
    case HUB_FIELD_BOOL:
        jw_lit(w, f->v.b ? "true" : "false");
        break;
    case HUB_FIELD_STRING:
        jw_str(w, f->v.s);
        break;
    default:
        if (w->rc == HUB_OK)
            w->rc = HUB_EINVAL;
    }
}

static const char *unit_of(const struct drv_env *env, const char *measurement, const char *field)
{
    const char *u = env && env->unit_of ? env->unit_of(env, measurement, field) : NULL;
    return u && *u ? u : NULL;
}

/* Undo a failed payload: out as it was at start. */
static int jw_end(struct jw *w, size_t start)
{
    if (w->rc != HUB_OK) {
        w->b->len = start;
        if (w->b->data)
            w->b->data[start] = 0;
    }
    return w->rc;
}

int drv_mq_live_json(const hub_reading_t *r, const struct drv_env *env, struct hub_buf *out)
{
    struct jw w = {.b = out, .rc = HUB_OK};
    size_t start = out->len;
    const char *m = hub_reading_measurement(r);
    char buf[DRV_MQ_LIVE_TIME_MAX + 32];
    size_t n;

    jw_lit(&w, "{\"measurement\":");
    jw_str(&w, m);
    jw_lit(&w, ",\"time\":\"");
    n = drv_mq_live_rfc3339(hub_reading_time(r), buf);
    jw_raw(&w, buf, n);
    n = (size_t)snprintf(buf, sizeof(buf), "\",\"ts\":%" PRId64, hub_reading_time(r));
    jw_raw(&w, buf, n);
    jw_lit(&w, ",\"tags\":{");
    for (size_t i = 0; i < hub_reading_tag_count(r); i++) {
        const struct hub_tag *t = hub_reading_tag(r, i);
        if (i)
            jw_raw(&w, ",", 1);
        jw_str(&w, t->key);
        jw_raw(&w, ":", 1);
        jw_str(&w, t->value);
    }
    jw_lit(&w, "},\"fields\":{");
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        if (i)
            jw_raw(&w, ",", 1);
        jw_str(&w, f->key);
        jw_raw(&w, ":", 1);
        jw_value(&w, f);
    }
    jw_raw(&w, "}", 1);
    size_t units = 0;
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        const char *u = unit_of(env, m, f->key);
        if (!u)
            continue;
        jw_lit(&w, units++ ? "," : ",\"units\":{");
        jw_str(&w, f->key);
        jw_raw(&w, ":", 1);
        jw_str(&w, u);
    }
    if (units)
        jw_raw(&w, "}", 1);
    jw_raw(&w, "}", 1);
    return jw_end(&w, start);
}

int drv_mq_live_senml(const hub_reading_t *r, const struct drv_env *env, struct hub_buf *out)
{
    struct jw w = {.b = out, .rc = HUB_OK};
    size_t start = out->len;
    const char *m = hub_reading_measurement(r);
    const char *device = hub_reading_tag_value(r, "device");
    size_t nf = hub_reading_field_count(r);
    char buf[64];

    if (nf == 0)
        return HUB_EINVAL; /* a SenML record needs a value */
    /* bt exact to the nanosecond: seconds, then the fraction without its
     * trailing zeros */
    int64_t ns = hub_reading_time(r);
    uint64_t mag = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    uint64_t frac = mag % (uint64_t)HUB_NS_PER_S;
    int digits = 9;
    while (frac && frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    size_t n;
    if (frac)
        n = (size_t)snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%0*" PRIu64, ns < 0 ? "-" : "",
                             mag / (uint64_t)HUB_NS_PER_S, digits, frac);
    else
        n = (size_t)snprintf(buf, sizeof(buf), "%s%" PRIu64, ns < 0 ? "-" : "",
                             mag / (uint64_t)HUB_NS_PER_S);

    jw_raw(&w, "[", 1);
    for (size_t i = 0; i < nf; i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        const char *u = unit_of(env, m, f->key);
        if (i == 0) {
            char bn[HUB_READING_MAX_NAME + 2];
            snprintf(bn, sizeof(bn), "%.*s:", HUB_READING_MAX_NAME, device ? device : m);
            jw_lit(&w, "{\"bn\":");
            jw_str(&w, bn);
            jw_lit(&w, ",\"bt\":");
            jw_raw(&w, buf, n);
            jw_lit(&w, ",\"n\":");
        } else {
            jw_lit(&w, ",{\"n\":");
        }
        jw_str(&w, f->key);
        if (u) {
            jw_lit(&w, ",\"u\":");
            jw_str(&w, u);
        }
        jw_lit(&w, f->type == HUB_FIELD_BOOL     ? ",\"vb\":"
                   : f->type == HUB_FIELD_STRING ? ",\"vs\":"
                                                 : ",\"v\":");
        jw_value(&w, f);
        jw_raw(&w, "}", 1);
    }
    jw_raw(&w, "]", 1);
    return jw_end(&w, start);
}

/* ---- configuration ------------------------------------------------------------ */

#define OUT(m) offsetof(struct drv_mq_output_cfg, m)
#define OUT_SZ(m) sizeof(((struct drv_mq_output_cfg *)0)->m)

static const struct hub_cfg_key live_keys[] = {
    DRV_MQ_CONN_KEYS(struct drv_mq_output_cfg, conn),
    HUB_CFG_KEY("clean_session", HUB_CFG_BOOL, "true", false, OUT(conn.clean_session), 0, 0, 0,
                NULL, "start each connection afresh (the output keeps its place in the journal)"),
    HUB_CFG_KEY("topic", HUB_CFG_STRING, "cityhub/{gateway}/{measurement}/{device}", false,
                OUT(topic), OUT_SZ(topic), 0, 0, NULL,
                "topic template: {measurement}, {gateway} and {KEY} for any tag (\"_\" when the "
                "reading has none); '/', '+' and '#' in a value become '_'"),
    HUB_CFG_KEY("payload", HUB_CFG_ENUM, "json", false, OUT(payload), 0, 0, 0,
                drv_mq_live_payload_names,
                "json ({measurement, time, ts, tags, fields, units}) or senml (RFC 8428)"),
    HUB_CFG_KEY("qos", HUB_CFG_INT, "1", false, OUT(qos), 0, 0, 2, NULL, "0, 1 or 2"),
    HUB_CFG_KEY("retain", HUB_CFG_BOOL, "true", false, OUT(retain), 0, 0, 0, NULL,
                "retained: a new subscriber gets the last value of every series at once"),
    HUB_CFG_KEY("status_topic", HUB_CFG_STRING, "cityhub/{gateway}/status", false,
                OUT(status_topic), OUT_SZ(status_topic), 0, 0, NULL,
                "\"online\" while connected, \"offline\" (the Last Will) when gone; retained. "
                "{gateway} and hub.tags keys"),
    HUB_CFG_KEY("health_topic", HUB_CFG_STRING, "cityhub/{gateway}/health", false,
                OUT(health_topic), OUT_SZ(health_topic), 0, 0, NULL,
                "the hub's own health point (measurement cityhub), retained JSON. {gateway} and "
                "hub.tags keys"),
    HUB_CFG_KEY("publish_timeout", HUB_CFG_DURATION, "10s", false, OUT(publish_timeout_ns), 0,
                1000000, 0, NULL,
                "longest wait for the broker to acknowledge a window of messages, or for a "
                "connection"),
    HUB_CFG_END,
};

/* Placeholders of status_topic and health_topic: {gateway} and hub.tags. */
struct hub_names {
    const char *gateway;
    const struct hub_cfg_tags *tags;
    char unknown[HUB_CFG_TAG_KEY_MAX + 8]; /* the first name that is neither */
};

static const char *hub_lookup(void *arg, const char *name, size_t len)
{
    struct hub_names *hn = arg;
    if (name_is(name, len, "gateway"))
        return hn->gateway;
    for (size_t i = 0; hn->tags && i < hn->tags->n; i++)
        if (name_is(name, len, hn->tags->tag[i].key))
            return hn->tags->tag[i].value;
    if (!hn->unknown[0])
        snprintf(hn->unknown, sizeof(hn->unknown), "%.*s", len > 64 ? 64 : (int)len, name);
    return NULL;
}

static void check_hub_topic(const struct drv_mq_output_cfg *cfg, struct drv_check *ck,
                            const char *key, const char *tmpl)
{
    char e[512];
    if (drv_mq_live_check_template(tmpl, e, sizeof(e)) != 0) {
        drv_check_error(ck, cfg, key, "%s", e);
        return;
    }
    struct hub_names hn = {.gateway = "gw", .tags = ck->hub_tags};
    struct hub_buf b;
    hub_buf_init(&b, DRV_MQ_LIVE_TOPIC_CAP);
    drv_mq_live_expand(tmpl, hub_lookup, &hn, &b);
    hub_buf_free(&b);
    if (hn.unknown[0])
        drv_check_error(ck, cfg, key,
                        "\"%s\": {%s} is neither {gateway} nor a key of hub.tags (the gateway's "
                        "topics have no reading to take it from)",
                        tmpl, hn.unknown);
}

static void live_check(const void *cfgp, struct drv_check *ck)
{
    const struct drv_mq_output_cfg *cfg = cfgp;
    const char *key = NULL;
    char e[512];
    if (drv_mq_conn_validate(&cfg->conn, &key, e, sizeof(e)) != 0)
        drv_check_error(ck, cfg, key, "%s", e);
    if (drv_mq_live_check_template(cfg->topic, e, sizeof(e)) != 0)
        drv_check_error(ck, cfg, "topic", "%s", e);
    check_hub_topic(cfg, ck, "status_topic", cfg->status_topic);
    check_hub_topic(cfg, ck, "health_topic", cfg->health_topic);
    if (!strcmp(cfg->status_topic, cfg->health_topic))
        drv_check_error(ck, cfg, "health_topic",
                        "status_topic and health_topic are the same: the health point would "
                        "overwrite \"online\"");
    if (cfg->qos < 0 || cfg->qos > 2)
        drv_check_error(ck, cfg, "qos", "qos is 0, 1 or 2, not %" PRId64, cfg->qos);
    if (cfg->payload != DRV_MQ_LIVE_JSON && cfg->payload != DRV_MQ_LIVE_SENML)
        drv_check_error(ck, cfg, "payload", "payload is json or senml");
}

/* ---- the driver ------------------------------------------------------------------- */

struct live_ctx {
    char who[sizeof("mqtt:") + DRV_NAME_MAX];
    const struct drv_mq_output_cfg *cfg;
    struct drv_env env; /* a copy: gateway, hub tags, unit_of */
    struct drv_mq_conn_cfg conn;
    drv_mq_client_t *cl;
    char *status_topic, *health_topic; /* expanded */
    struct hub_buf topic, payload;
    int64_t publish_timeout_ns;
    size_t window_bytes; /* payload bytes published before waiting for acks */
    struct hub_log_limit skip_limit;
    struct hub_log_limit online_limit;
    struct hub_metric *m_skipped;
    atomic_int cancel;       /* set by live_cancel: every flush gives up */
    atomic_int failing;      /* the last flush was not delivered */
    atomic_int offline_sent; /* "offline" published (or queued) by a stop */
};

/* The client's connect callback, on Paho's thread: say "online" over the
 * Last Will (published without waiting: never drain here). */
static void on_connected(void *arg, bool session_present)
{
    struct live_ctx *c = arg;
    char err[256];
    (void)session_present;
    if (drv_mq_client_publish(c->cl, c->status_topic, "online", 6, 1, true, 0, err, sizeof(err)) !=
        0) {
        uint64_t held = 0;
        if (hub_log_limit_pass(&c->online_limit, hub_mono_ns(), &held))
            hub_warn(c->who, "cannot publish \"online\" on %s: %s", c->status_topic, err);
    } else {
        hub_debug(c->who, "online on %s", c->status_topic);
    }
}

static void live_exit(void *ctxp)
{
    struct live_ctx *c = ctxp;
    if (!c)
        return;
    if (c->cl) {
        char err[256];
        /* The disconnect's wait for messages in flight: "offline" queued by
         * cancel (the stopped client publishes nothing more) goes out in
         * it; after a publish that was acknowledged, or that timed out,
         * there is nothing left worth waiting for. */
        int64_t linger = LIVE_EXIT_NS / 2;
        /* A clean DISCONNECT discards the Will: say offline first. */
        if (!atomic_exchange(&c->offline_sent, 1)) {
            struct drv_mq_client_stats st;
            drv_mq_client_stats(c->cl, &st);
            linger = 0;
            if (st.connected && drv_mq_client_publish(c->cl, c->status_topic, "offline", 7, 1, true,
                                                      LIVE_EXIT_NS, err, sizeof(err)) != 0)
                hub_warn(c->who, "could not say \"offline\" on %s: %s", c->status_topic, err);
        }
        drv_mq_client_free(c->cl, linger);
    }
    free(c->status_topic);
    free(c->health_topic);
    hub_buf_free(&c->topic);
    hub_buf_free(&c->payload);
    free(c);
}

/* Expand a status or health topic; NULL when out of memory. */
static char *hub_topic(const char *tmpl, const struct drv_env *env)
{
    struct hub_names hn = {.gateway = env->gateway, .tags = env->hub_tags};
    struct hub_buf b;
    hub_buf_init(&b, DRV_MQ_LIVE_TOPIC_CAP);
    if (drv_mq_live_expand(tmpl, hub_lookup, &hn, &b) != HUB_OK) {
        hub_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

static int live_init(const void *cfgp, const struct drv_env *env, void **out, char *err,
                     size_t errlen)
{
    const struct drv_mq_output_cfg *cfg = cfgp;
    const char *key = NULL;
    char e[512];
    *out = NULL;
    if (drv_mq_live_check_template(cfg->topic, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "topic: %s", e);
        return -1;
    }
    if (drv_mq_live_check_template(cfg->status_topic, e, sizeof(e)) != 0 ||
        drv_mq_live_check_template(cfg->health_topic, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "status_topic/health_topic: %s", e);
        return -1;
    }
    if (drv_mq_conn_validate(&cfg->conn, &key, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "%s: %s", key ? key : "url", e);
        return -1;
    }
    struct live_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(c->who, sizeof(c->who), "mqtt:%s", cfg->common.name);
    c->cfg = cfg;
    c->env = *env;
    c->conn = cfg->conn;
    /* "-live": an input of the same name must not share the client id
     * (the broker would drop one whenever the other connects) */
    char idname[DRV_NAME_MAX + 8];
    snprintf(idname, sizeof(idname), "%s-live", cfg->common.name);
    drv_mq_default_client_id(&c->conn, env->gateway, idname);
    c->publish_timeout_ns =
        cfg->publish_timeout_ns > 0 ? cfg->publish_timeout_ns : 10 * HUB_NS_PER_S;
    size_t cap =
        cfg->common.max_batch_bytes ? (size_t)cfg->common.max_batch_bytes : (size_t)1 << 20;
    c->window_bytes = cap;
    hub_buf_init(&c->topic, DRV_MQ_LIVE_TOPIC_CAP);
    hub_buf_init(&c->payload, cap);
    c->status_topic = hub_topic(cfg->status_topic, env);
    c->health_topic = hub_topic(cfg->health_topic, env);
    if (!c->status_topic || !c->health_topic) {
        snprintf(err, errlen, "out of memory");
        live_exit(c);
        return -1;
    }
    c->m_skipped = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER,
                                   "cityhub_mqtt_live_skipped_total", "output", cfg->common.name,
                                   "readings the live MQTT output could not write (skipped)");

    struct drv_mq_client_cb cb = {.connected = on_connected, .arg = c};
    struct drv_mq_will will = {
        .topic = c->status_topic, .payload = "offline", .qos = 1, .retained = true};
    if (drv_mq_client_new(&c->conn, c->who, &cb, &will, &c->cl, err, errlen) != 0) {
        live_exit(c);
        return -1;
    }
    if (drv_mq_client_start(c->cl, env->beats) != 0) {
        snprintf(err, errlen, "cannot start the MQTT client's thread");
        live_exit(c);
        return -1;
    }
    hub_info(c->who, "live values to %s as %s on %s (%s, QoS %d%s); status on %s, health on %s",
             c->conn.url, c->conn.client_id, cfg->topic, drv_mq_live_payload_names[cfg->payload],
             (int)cfg->qos, cfg->retain ? ", retained" : "", c->status_topic, c->health_topic);
    *out = c;
    return 0;
}

static void live_cancel(void *ctxp)
{
    struct live_ctx *c = ctxp;
    char err[256];
    atomic_store(&c->cancel, 1);
    /* Stopped, the client publishes nothing more: queue "offline" now; the
     * disconnect at exit waits for it to go out. */
    if (!atomic_exchange(&c->offline_sent, 1))
        drv_mq_client_publish(c->cl, c->status_topic, "offline", 7, 1, true, 0, err, sizeof(err));
    drv_mq_client_stop(c->cl);
}

/* Topic and payload of r into c->topic and c->payload. */
static int build(struct live_ctx *c, const hub_reading_t *r, bool *health)
{
    *health = !strcmp(hub_reading_measurement(r), HEALTH_MEASUREMENT);
    hub_buf_reset(&c->payload);
    int rc;
    if (*health) {
        hub_buf_reset(&c->topic);
        rc = hub_buf_adds(&c->topic, c->health_topic);
    } else {
        rc = drv_mq_live_topic(c->cfg->topic, c->env.gateway, r, &c->topic);
    }
    if (rc != HUB_OK)
        return rc;
    if (*health || c->cfg->payload == DRV_MQ_LIVE_JSON)
        return drv_mq_live_json(r, &c->env, &c->payload);
    return drv_mq_live_senml(r, &c->env, &c->payload);
}

static enum hub_out_result not_connected(struct live_ctx *c, struct hub_out_answer *ans)
{
    struct drv_mq_client_stats st;
    drv_mq_client_stats(c->cl, &st);
    snprintf(ans->why, sizeof(ans->why), "not connected to %.80s: %.150s", c->conn.url,
             st.last_error[0] ? st.last_error : "connecting");
    atomic_store(&c->failing, 1);
    return HUB_OUT_RETRY;
}

static const char *skip_reason(int rc)
{
    switch (rc) {
    case HUB_EFULL:
        return "its topic or payload is too large (max_batch_bytes)";
    case HUB_EINVAL:
        return "a value JSON cannot hold, or no field";
    default:
        return hub_strerror(rc);
    }
}

static enum hub_out_result live_flush(void *ctxp, hub_reading_t *const *readings, size_t n,
                                      struct hub_out_answer *ans)
{
    struct live_ctx *c = ctxp;
    const struct drv_mq_output_cfg *cfg = c->cfg;
    size_t skipped = 0, skipped_acked = 0, acked = 0, window = 0, bytes = 0;
    int first_skip_rc = HUB_OK;
    char err[256];
    bool failed = false;

    ans->retry_after_ns = 0;
    ans->why[0] = 0;
    ans->done = 0;
    if (atomic_load(&c->cancel)) {
        snprintf(ans->why, sizeof(ans->why), "cancelled: the program is stopping");
        return HUB_OUT_RETRY;
    }
    /* Down: wait for the connection a while (the client reconnects on its
     * own), so that a broker back up is caught up with at once. */
    int64_t wait_ns = c->publish_timeout_ns < LIVE_CONNECT_WAIT_MAX ? c->publish_timeout_ns
                                                                    : LIVE_CONNECT_WAIT_MAX;
    if (!drv_mq_client_wait_connected(c->cl, wait_ns)) {
        if (!atomic_load(&c->cancel))
            return not_connected(c, ans);
        snprintf(ans->why, sizeof(ans->why), "cancelled: the program is stopping");
        return HUB_OUT_RETRY;
    }

    for (size_t i = 0; i < n && !failed; i++) {
        bool health;
        int rc = build(c, readings[i], &health);
        if (rc != HUB_OK) {
            if (!skipped++)
                first_skip_rc = rc;
        } else if (drv_mq_client_publish(c->cl, (const char *)c->topic.data, c->payload.data,
                                         c->payload.len, (int)cfg->qos, health || cfg->retain, 0,
                                         err, sizeof(err)) != 0) {
            snprintf(ans->why, sizeof(ans->why), "%s", err);
            failed = true;
            break;
        } else {
            window++;
            bytes += c->payload.len;
        }
        bool last = i + 1 == n;
        if (window && (window >= LIVE_WINDOW || bytes >= c->window_bytes || last)) {
            if (drv_mq_client_drain(c->cl, c->publish_timeout_ns, err, sizeof(err)) != 0) {
                snprintf(ans->why, sizeof(ans->why), "%s", err);
                failed = true;
                break;
            }
            window = 0;
            bytes = 0;
        }
        if (!window) {
            acked = i + 1; /* everything up to here is with the broker (or skipped) */
            skipped_acked = skipped;
        }
        if (!last && atomic_load(&c->cancel)) {
            snprintf(ans->why, sizeof(ans->why), "cancelled: the program is stopping");
            failed = true;
        }
    }
    if (failed && window) {
        /* what the failed window published is not known to have arrived;
         * forget its acks so that the next drain starts afresh */
        drv_mq_client_drain(c->cl, 0, err, sizeof(err));
    }
    /* skipped for good: those before the point delivered up to (the rest
     * come again, and are counted then) */
    if (failed)
        skipped = skipped_acked;
    if (skipped) {
        uint64_t held = 0;
        hub_metric_inc(c->m_skipped, skipped);
        if (hub_log_limit_pass(&c->skip_limit, hub_mono_ns(), &held))
            hub_warn(c->who, "%zu of %zu readings not published: %s%s", skipped, n,
                     skip_reason(first_skip_rc), held ? " (more held back)" : "");
    }
    atomic_store(&c->failing, failed);
    if (!failed)
        return HUB_OUT_OK;
    if (acked > 0) {
        hub_debug(c->who, "%zu of %zu readings acknowledged, then: %s", acked, n, ans->why);
        ans->done = acked; /* keep what went; the rest comes again */
        ans->why[0] = 0;
        return HUB_OUT_OK;
    }
    return HUB_OUT_RETRY;
}

/* For `cityhub journal --dump`: the JSON payload as one line (JSON has
 * no raw newline inside). */
static int live_format(const hub_reading_t *r, struct hub_buf *out)
{
    size_t start = out->len;
    int rc = drv_mq_live_json(r, NULL, out);
    if (rc == HUB_OK && (rc = hub_buf_addc(out, '\n')) != HUB_OK) {
        out->len = start;
        out->data[start] = 0;
    }
    return rc;
}

static void live_stats(void *ctxp, struct drv_stats *st)
{
    struct live_ctx *c = ctxp;
    struct drv_mq_client_stats cs;
    drv_mq_client_stats(c->cl, &cs);
    st->sources += 1;
    st->failing += !cs.connected || atomic_load(&c->failing) ? 1 : 0;
}

const struct drv_ops drv_mqtt_live_ops = {
    .name = "mqtt",
    .kind = DRV_OUTPUT,
    .help = "live values over MQTT for the operations center (retained, JSON or SenML)",
    .global_init = drv_mq_global_init,
    .version = drv_mq_version,
    .config_map = live_keys,
    .config_size = sizeof(struct drv_mq_output_cfg),
    .check = live_check,
    .init = live_init,
    .flush = live_flush,
    .cancel = live_cancel,
    .format = live_format,
    .stats = live_stats,
    .exit = live_exit,
};
