/* tests/fuzz/fuzz_mqtt.h — what every MQTT payload harness checks of a
 * drv_mq_parse answer (included by the fuzz_mqtt_*.c harnesses only).
 *
 * A message is all or nothing: HUB_OK with 1 to DRV_MQ_MAX_READINGS
 * readings, each of which encodes (so the journal takes it), with a
 * time from 1970 on, at least one field, finite floats and the message's
 * tags where the reading had none of that key; or HUB_EINVAL/HUB_ENOMEM,
 * no reading, and a reason that is one printable line. */
#ifndef FUZZ_MQTT_H
#define FUZZ_MQTT_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/mqtt/format.h"
#include "hub/buf.h"
#include "hub/reading.h"

#define FUZZ_NOW 1700000000123456789LL

static struct drv_mq_out fuzz_out; /* 32 KiB: not on the stack */

/* The tags of every message: one a payload may also set, one it may not. */
static const struct drv_mq_tagset fuzz_tags = {
    .n = 3,
    .tag = {{"device", "from-topic"}, {"zz_topic", "t1"}, {"empty", ""}},
};

static inline void fuzz_check_reason(const char *why, size_t whylen)
{
    size_t n = strnlen(why, whylen);
    if (n == 0 || n >= whylen)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)why[i] < 0x20 || (unsigned char)why[i] >= 0x7f)
            abort();
}

static inline void fuzz_check_reading(const hub_reading_t *r, const struct drv_mq_tagset *tags)
{
    if (hub_reading_time(r) < 0 || hub_reading_field_count(r) == 0 ||
        hub_reading_encoded_size(r) > HUB_READING_MAX_ENCODED)
        abort();
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        if (f->type == HUB_FIELD_FLOAT && !isfinite(f->v.f))
            abort();
    }
    for (size_t i = 0; tags && i < tags->n; i++)
        if (tags->tag[i].value[0] != '\0' && !hub_reading_tag_value(r, tags->tag[i].key))
            abort();
    for (size_t i = 0; i < hub_reading_tag_count(r); i++)
        if (hub_reading_tag(r, i)->value[0] == '\0')
            abort(); /* an empty tag value is left out */
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    hub_reading_t *back = NULL;
    if (hub_reading_encode(r, &b) != HUB_OK || hub_reading_decode(b.data, b.len, &back) != HUB_OK)
        abort();
    hub_reading_free(back);
    hub_buf_free(&b);
}

/* Check the answer of drv_mq_parse (rc, fuzz_out, why). */
static inline void fuzz_check_answer(int rc, const struct drv_mq_tagset *tags, const char *why,
                                     size_t whylen)
{
    if (rc == HUB_OK) {
        if (fuzz_out.n == 0 || fuzz_out.n > DRV_MQ_MAX_READINGS)
            abort();
        for (size_t i = 0; i < fuzz_out.n; i++)
            fuzz_check_reading(fuzz_out.r[i], tags);
    } else {
        if ((rc != HUB_EINVAL && rc != HUB_ENOMEM) || fuzz_out.n != 0)
            abort();
        fuzz_check_reason(why, whylen);
    }
}

/* drv_mq_parse on data with o and the fuzz tags, checked. */
static inline int fuzz_parse(const struct drv_mq_parse_opts *o, const uint8_t *data, size_t size)
{
    char why[200];
    memset(why, 'x', sizeof(why));
    int rc = drv_mq_parse(o, &fuzz_tags, data, size, FUZZ_NOW, &fuzz_out, why, sizeof(why));
    fuzz_check_answer(rc, &fuzz_tags, why, sizeof(why));
    if (rc == HUB_OK && o->format != DRV_MQ_INFLUX && o->format != DRV_MQ_VALUE &&
        drv_mq_json_depth((const char *)data, size, DRV_MQ_MAX_DEPTH) > DRV_MQ_MAX_DEPTH)
        abort(); /* too deep, yet parsed */
    return rc;
}

#endif
