/* drivers/mqtt/senml.c — format `senml`: SenML JSON (RFC 8428), a pack of
 * records resolved against the base values, grouped into readings.
 *
 * Records are read in order. Base values (bn, bt, bv; bu, bver and bs are
 * read past) apply to the record they are in and to every one after it,
 * until a record gives a new one. A record has one value: v (a number, plus
 * bv), vs (a string) or vb (a bool); vd (data) is refused. A record with no
 * value is skipped when it only carries base values or a sum (s, which is
 * not stored), and refused otherwise. Its time is bt + t seconds: from
 * 2^28 on an absolute time, below that relative to the arrival (t = 0 and
 * no bt is "now"). Fields whose name ends in '_' must be understood
 * (RFC 8428, 4.4): the message is refused.
 *
 * Readings: the device is the base name with one trailing ':' '/' '.' or
 * '-' cut (the tag "device"), the field is n (or opts->field, "value" by
 * default, for a record named by bn alone). Without a base name the whole
 * name is the field and there is no device tag. Records of the same device
 * and time are one reading (found through a small hash table, so a pack of
 * many records costs no search through every reading made); a field name
 * twice in one reading refuses the message. Units are not stored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/format_priv.h"

#define SLOTS 8192                /* a power of two, more than twice DRV_MQ_MAX_READINGS */
#define ABSOLUTE_FROM 268435456.0 /* 2^28 s: RFC 8428's first absolute time */

/* Readings made from this pack, found by (device, time). */
struct groups {
    struct drv_mq_out *out;
    size_t start;   /* out->r[start..] are this pack's */
    uint16_t *slot; /* index - start + 1; 0 empty */
};

static size_t group_hash(const char *dev, int64_t t)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = dev ? dev : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h ^= (uint64_t)t;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) & (SLOTS - 1);
}

static int group_is(const hub_reading_t *r, const char *dev, int64_t t)
{
    if (hub_reading_time(r) != t)
        return 0;
    const char *d = hub_reading_tag_value(r, "device");
    return dev ? d && strcmp(d, dev) == 0 : d == NULL;
}

/* The reading of (dev, t), or NULL with *at the slot where it goes. */
static hub_reading_t *group_find(const struct groups *g, const char *dev, int64_t t, size_t *at)
{
    size_t i = group_hash(dev, t);
    for (; g->slot[i]; i = (i + 1) & (SLOTS - 1)) {
        hub_reading_t *r = g->out->r[g->start + g->slot[i] - 1];
        if (group_is(r, dev, t))
            return r;
    }
    *at = i;
    return NULL;
}

/* Base values in force. */
struct base {
    const char *bn;
    double bt, bv;
};

/* Read the base members of rec into b. */
static int read_base(json_t *rec, struct base *b, const char *ctx, char *why, size_t whylen)
{
    json_t *v;
    if ((v = json_object_get(rec, "bn"))) {
        if (!json_is_string(v)) {
            drv_mq_why(why, whylen, "%sbn is not a string", ctx);
            return -1;
        }
        if (json_string_length(v) > HUB_READING_MAX_NAME) {
            drv_mq_why(why, whylen, "%sbn longer than %d bytes", ctx, HUB_READING_MAX_NAME);
            return -1;
        }
        b->bn = json_string_value(v);
    }
    if ((v = json_object_get(rec, "bt"))) {
        if (!json_is_number(v)) {
            drv_mq_why(why, whylen, "%sbt is not a number", ctx);
            return -1;
        }
        b->bt = json_number_value(v);
    }
    if ((v = json_object_get(rec, "bv"))) {
        if (!json_is_number(v)) {
            drv_mq_why(why, whylen, "%sbv is not a number", ctx);
            return -1;
        }
        b->bv = json_number_value(v);
    }
    return 0;
}

/* The resolved time of a record: bt + t seconds, absolute or relative. */
static int record_time(const struct base *b, json_t *tv, int64_t now_ns, int64_t *ns,
                       const char *ctx, char *why, size_t whylen)
{
    double t = 0;
    if (tv) {
        if (!json_is_number(tv)) {
            drv_mq_why(why, whylen, "%st is not a number", ctx);
            return -1;
        }
        t = json_number_value(tv);
    }
    int64_t bt_ns, t_ns, sum;
    if (drv_mq_secs_to_ns(b->bt, &bt_ns) || drv_mq_secs_to_ns(t, &t_ns) ||
        __builtin_add_overflow(bt_ns, t_ns, &sum) ||
        (b->bt + t < ABSOLUTE_FROM && __builtin_add_overflow(sum, now_ns, &sum))) {
        drv_mq_why(why, whylen, "%stime out of range", ctx);
        return -1;
    }
    if (sum < 0) {
        drv_mq_why(why, whylen, "%stime before 1970", ctx);
        return -1;
    }
    *ns = sum;
    return 0;
}

/* Add the record's value to r as field. */
static int add_value(hub_reading_t *r, const char *field, json_t *v, json_t *vs, json_t *vb,
                     const struct base *b, const char *ctx, char *why, size_t whylen)
{
    if (v) {
        if (!json_is_number(v)) {
            drv_mq_why(why, whylen, "%sv is not a number", ctx);
            return HUB_EINVAL;
        }
        double d = json_number_value(v) + b->bv;
        if (!isfinite(d)) {
            drv_mq_why(why, whylen, "%sv + bv out of range", ctx);
            return HUB_EINVAL;
        }
        json_t *sum = json_real(d);
        if (!sum) {
            drv_mq_why(why, whylen, "out of memory");
            return HUB_ENOMEM;
        }
        int rc = drv_mq_add_json_field(r, field, sum, ctx, why, whylen);
        json_decref(sum);
        return rc;
    }
    if (vs && !json_is_string(vs)) {
        drv_mq_why(why, whylen, "%svs is not a string", ctx);
        return HUB_EINVAL;
    }
    if (vb && !json_is_boolean(vb)) {
        drv_mq_why(why, whylen, "%svb is not a bool", ctx);
        return HUB_EINVAL;
    }
    return drv_mq_add_json_field(r, field, vs ? vs : vb, ctx, why, whylen);
}

static int one_record(json_t *rec, struct base *b, const char *meas, const char *bare_field,
                      int64_t now_ns, struct groups *g, const char *ctx, char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    if (!json_is_object(rec)) {
        drv_mq_why(why, whylen, "%snot an object", ctx);
        return HUB_EINVAL;
    }
    const char *key;
    json_t *m;
    json_object_foreach(rec, key, m)
    {
        size_t kl = strlen(key);
        if (kl > 0 && key[kl - 1] == '_') {
            drv_mq_why(why, whylen, "%sunsupported field %s (must be understood)", ctx,
                       drv_mq_quote(q, key, kl));
            return HUB_EINVAL;
        }
    }
    if (read_base(rec, b, ctx, why, whylen))
        return HUB_EINVAL;
    json_t *n = json_object_get(rec, "n");
    json_t *v = json_object_get(rec, "v"), *vs = json_object_get(rec, "vs");
    json_t *vb = json_object_get(rec, "vb");
    if (n && !json_is_string(n)) {
        drv_mq_why(why, whylen, "%sn is not a string", ctx);
        return HUB_EINVAL;
    }
    if (json_object_get(rec, "vd")) {
        drv_mq_why(why, whylen, "%svd (data values) is not supported", ctx);
        return HUB_EINVAL;
    }
    int nvalues = !!v + !!vs + !!vb;
    if (nvalues > 1) {
        drv_mq_why(why, whylen, "%smore than one value (v, vs, vb)", ctx);
        return HUB_EINVAL;
    }
    if (nvalues == 0) {
        static const char *const quiet[] = {"s", "bn", "bt", "bu", "bv", "bver", "bs"};
        for (size_t i = 0; !n && i < sizeof(quiet) / sizeof(quiet[0]); i++)
            if (json_object_get(rec, quiet[i]))
                return HUB_OK; /* base values only */
        if (json_object_get(rec, "s"))
            return HUB_OK; /* a sum alone: not stored */
        drv_mq_why(why, whylen, "%sno value (v, vs or vb)", ctx);
        return HUB_EINVAL;
    }
    const char *name = n ? json_string_value(n) : "";
    size_t nlen = n ? json_string_length(n) : 0, bnlen = strlen(b->bn);
    if (nlen + bnlen == 0) {
        drv_mq_why(why, whylen, "%sno name (n or bn)", ctx);
        return HUB_EINVAL;
    }
    int64_t t;
    if (record_time(b, json_object_get(rec, "t"), now_ns, &t, ctx, why, whylen))
        return HUB_EINVAL;

    /* device and field */
    char dev[HUB_READING_MAX_NAME + 1], full[2 * HUB_READING_MAX_NAME + 1];
    size_t dlen = bnlen;
    memcpy(dev, b->bn, bnlen);
    if (dlen > 0 && strchr(":/.-", dev[dlen - 1]))
        dlen--;
    dev[dlen] = '\0';
    const char *field = name;
    if (dlen == 0) {
        if (bnlen + nlen > HUB_READING_MAX_NAME) {
            drv_mq_why(why, whylen, "%sname longer than %d bytes", ctx, HUB_READING_MAX_NAME);
            return HUB_EINVAL;
        }
        memcpy(full, b->bn, bnlen);
        memcpy(full + bnlen, name, nlen + 1);
        field = full;
    } else if (nlen == 0) {
        field = bare_field;
    }

    size_t at = 0;
    const char *device = dlen ? dev : NULL;
    hub_reading_t *r = group_find(g, device, t, &at);
    if (!r) {
        int rc;
        r = drv_mq_reading(meas, t, &rc, why, whylen);
        if (!r)
            return rc;
        if (device && (rc = drv_mq_add_tag(r, "device", device, why, whylen)) != HUB_OK) {
            hub_reading_free(r);
            return rc;
        }
        if ((rc = drv_mq_push(g->out, r, why, whylen)) != HUB_OK)
            return rc;
        g->slot[at] = (uint16_t)(g->out->n - g->start);
    }
    for (size_t i = 0; i < hub_reading_field_count(r); i++)
        if (strcmp(hub_reading_field(r, i)->key, field) == 0) {
            drv_mq_why(why, whylen, "%sduplicate field %s (same device and time as before)", ctx,
                       drv_mq_quote(q, field, strlen(field)));
            return HUB_EINVAL;
        }
    return add_value(r, field, v, vs, vb, b, ctx, why, whylen);
}

int drv_mq_parse_senml(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen)
{
    if (!json_is_array(root)) {
        drv_mq_why(why, whylen, "SenML payload is not an array of records");
        return HUB_EINVAL;
    }
    if (json_array_size(root) == 0) {
        drv_mq_why(why, whylen, "empty SenML pack");
        return HUB_EINVAL;
    }
    struct groups g = {.out = out, .start = out->n, .slot = calloc(SLOTS, sizeof(uint16_t))};
    if (!g.slot) {
        drv_mq_why(why, whylen, "out of memory");
        return HUB_ENOMEM;
    }
    const char *meas = o->measurement && *o->measurement ? o->measurement : "senml";
    const char *bare = o->field && *o->field ? o->field : "value";
    struct base b = {.bn = ""};
    int rc = HUB_OK;
    size_t i;
    json_t *rec;
    json_array_foreach(root, i, rec)
    {
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "record %zu: ", i + 1);
        rc = one_record(rec, &b, meas, bare, now_ns, &g, ctx, why, whylen);
        if (rc != HUB_OK)
            break;
    }
    free(g.slot);
    if (rc == HUB_OK && out->n == g.start) {
        drv_mq_why(why, whylen, "SenML pack holds no value");
        rc = HUB_EINVAL;
    }
    return rc;
}
