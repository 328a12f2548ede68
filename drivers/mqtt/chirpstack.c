/* drivers/mqtt/chirpstack.c — format `chirpstack`: a ChirpStack v4 uplink
 * event (the JSON of application/APP/device/EUI/event/up).
 *
 * Reading 1 (measurement opts->measurement, default "lorawan"): the fields
 * of the decoded `object`, nested objects flattened with '_' ("gps":
 * {"lat": 1} is gps_lat) and arrays with their index (a_0, a_1), null
 * members skipped; tags dev_eui (deviceInfo.devEui), device
 * (deviceInfo.deviceName, else the devEui), application
 * (deviceInfo.applicationName) and every pair of deviceInfo.tags (the named
 * three win over a pair of the same key); the time from `time` (RFC 3339),
 * else the arrival. No `object`, or one without a value, means no codec
 * decodes the device's bytes: the message is refused, unless radio
 * readings are on.
 *
 * With opts->radio, reading 2 (opts->radio_measurement, default
 * "lorawan_radio"), same tags and time, tag gateway_id and fields rssi and
 * snr of the rxInfo entry with the highest RSSI, gateways (how many
 * entries), f_cnt, dr and frequency (txInfo.frequency), each when present;
 * all floats. */
#include <stdio.h>
#include <string.h>

#include "drivers/mqtt/format_priv.h"

/* Add the scalars under v as fields named name (nlen bytes; the buffer
 * holds HUB_READING_MAX_NAME + 1). */
static int flatten(hub_reading_t *r, char *name, size_t nlen, json_t *v, char *why, size_t whylen)
{
    char q[DRV_MQ_QUOTE_MAX];
    if (json_is_null(v))
        return HUB_OK;
    if (json_is_object(v) || json_is_array(v)) {
        const char *key;
        json_t *m;
        size_t i;
        int rc = HUB_OK;
        char idx[24];
        void *it = json_is_object(v) ? json_object_iter(v) : NULL;
        size_t count = json_is_array(v) ? json_array_size(v) : 0;
        for (i = 0; it || i < count; i++) {
            if (json_is_object(v)) {
                key = json_object_iter_key(it);
                m = json_object_iter_value(it);
                it = json_object_iter_next(v, it);
            } else {
                snprintf(idx, sizeof(idx), "%zu", i);
                key = idx;
                m = json_array_get(v, i);
            }
            size_t klen = strlen(key), sep = nlen > 0;
            if (nlen + sep + klen > HUB_READING_MAX_NAME) {
                name[nlen] = '\0';
                drv_mq_why(why, whylen, "object: field name longer than %d bytes: %s",
                           HUB_READING_MAX_NAME, drv_mq_quote(q, name, nlen));
                return HUB_EINVAL;
            }
            if (sep)
                name[nlen] = '_';
            memcpy(name + nlen + sep, key, klen + 1);
            rc = flatten(r, name, nlen + sep + klen, m, why, whylen);
            if (rc != HUB_OK)
                return rc;
        }
        name[nlen] = '\0';
        return HUB_OK;
    }
    return drv_mq_add_json_field(r, name, v, "object: ", why, whylen);
}

/* A string member of o, or NULL. */
static const char *str_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The device's tags on r. */
static int device_tags(hub_reading_t *r, json_t *di, char *why, size_t whylen)
{
    json_t *tags = json_object_get(di, "tags");
    const char *key;
    json_t *v;
    int rc = HUB_OK;
    json_object_foreach(tags, key, v)
    {
        if (!json_is_string(v))
            continue;
        if ((rc = drv_mq_add_tag(r, key, json_string_value(v), why, whylen)) != HUB_OK)
            return rc;
    }
    const char *eui = str_of(di, "devEui"), *name = str_of(di, "deviceName");
    const char *app = str_of(di, "applicationName");
    if (eui && (rc = drv_mq_add_tag(r, "dev_eui", eui, why, whylen)) != HUB_OK)
        return rc;
    if (name && *name)
        rc = drv_mq_add_tag(r, "device", name, why, whylen);
    else if (eui)
        rc = drv_mq_add_tag(r, "device", eui, why, whylen);
    if (rc == HUB_OK && app)
        rc = drv_mq_add_tag(r, "application", app, why, whylen);
    return rc;
}

/* Add number v as float field key when it is one. */
static int radio_field(hub_reading_t *r, const char *key, json_t *v, char *why, size_t whylen)
{
    if (!json_is_number(v))
        return HUB_OK;
    return drv_mq_add_json_field(r, key, v, "radio: ", why, whylen);
}

static int radio_reading(const struct drv_mq_parse_opts *o, json_t *root, int64_t t,
                         hub_reading_t **out, char *why, size_t whylen)
{
    int rc;
    const char *meas =
        o->radio_measurement && *o->radio_measurement ? o->radio_measurement : "lorawan_radio";
    hub_reading_t *r = drv_mq_reading(meas, t, &rc, why, whylen);
    if (!r)
        return rc;
    rc = device_tags(r, json_object_get(root, "deviceInfo"), why, whylen);
    json_t *rx = json_object_get(root, "rxInfo"), *best = NULL, *e;
    size_t i;
    json_array_foreach(rx, i, e)
    {
        json_t *rssi = json_object_get(e, "rssi");
        if (json_is_number(rssi) &&
            (!best || json_number_value(rssi) > json_number_value(json_object_get(best, "rssi"))))
            best = e;
    }
    if (rc == HUB_OK && best) {
        const char *gw = str_of(best, "gatewayId");
        if (gw)
            rc = drv_mq_add_tag(r, "gateway_id", gw, why, whylen);
        if (rc == HUB_OK)
            rc = radio_field(r, "rssi", json_object_get(best, "rssi"), why, whylen);
        if (rc == HUB_OK)
            rc = radio_field(r, "snr", json_object_get(best, "snr"), why, whylen);
    }
    if (rc == HUB_OK && json_is_array(rx)) {
        json_t *count = json_real((double)json_array_size(rx));
        rc = count ? radio_field(r, "gateways", count, why, whylen) : HUB_ENOMEM;
        json_decref(count);
    }
    if (rc == HUB_OK)
        rc = radio_field(r, "f_cnt", json_object_get(root, "fCnt"), why, whylen);
    if (rc == HUB_OK)
        rc = radio_field(r, "dr", json_object_get(root, "dr"), why, whylen);
    if (rc == HUB_OK)
        rc =
            radio_field(r, "frequency",
                        json_object_get(json_object_get(root, "txInfo"), "frequency"), why, whylen);
    if (rc != HUB_OK || hub_reading_field_count(r) == 0) {
        hub_reading_free(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

int drv_mq_parse_chirpstack(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                            struct drv_mq_out *out, char *why, size_t whylen)
{
    if (!json_is_object(root)) {
        drv_mq_why(why, whylen, "ChirpStack event is not a JSON object");
        return HUB_EINVAL;
    }
    json_t *di = json_object_get(root, "deviceInfo");
    if (di && !json_is_object(di)) {
        drv_mq_why(why, whylen, "deviceInfo is not an object");
        return HUB_EINVAL;
    }
    int64_t t = now_ns;
    json_t *tv = json_object_get(root, "time");
    if (tv && !json_is_null(tv)) {
        if (!json_is_string(tv)) {
            drv_mq_why(why, whylen, "time: not an RFC 3339 string");
            return HUB_EINVAL;
        }
        if (drv_mq_json_time(tv, DRV_MQ_AUTO, "time", &t, why, whylen) != 0)
            return HUB_EINVAL;
    }
    int rc;
    hub_reading_t *r = drv_mq_reading(
        o->measurement && *o->measurement ? o->measurement : "lorawan", t, &rc, why, whylen);
    if (!r)
        return rc;
    rc = device_tags(r, di, why, whylen);
    json_t *obj = json_object_get(root, "object");
    if (rc == HUB_OK && obj && !json_is_null(obj)) {
        if (!json_is_object(obj)) {
            drv_mq_why(why, whylen, "object is not a JSON object");
            rc = HUB_EINVAL;
        } else {
            char name[HUB_READING_MAX_NAME + 1] = "";
            rc = flatten(r, name, 0, obj, why, whylen);
        }
    }
    if (rc != HUB_OK || hub_reading_field_count(r) == 0) {
        hub_reading_free(r);
        r = NULL;
    }
    if (rc != HUB_OK)
        return rc;
    hub_reading_t *radio = NULL;
    if (o->radio && (rc = radio_reading(o, root, t, &radio, why, whylen)) != HUB_OK) {
        hub_reading_free(r);
        return rc;
    }
    if (!r && !radio) {
        drv_mq_why(why, whylen, "no decoded object (configure a codec in ChirpStack)%s",
                   o->radio ? " and no radio data" : "");
        return HUB_EINVAL;
    }
    if (r && (rc = drv_mq_push(out, r, why, whylen)) != HUB_OK) {
        hub_reading_free(radio);
        return rc;
    }
    if (radio && (rc = drv_mq_push(out, radio, why, whylen)) != HUB_OK)
        return rc;
    return HUB_OK;
}
