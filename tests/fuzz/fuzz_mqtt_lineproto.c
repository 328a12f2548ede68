/* tests/fuzz/fuzz_mqtt_lineproto.c — InfluxDB line protocol
 * (drivers/mqtt/lineproto.c) from an MQTT message: outside bytes.
 *
 * Input: byte 0: precision = b % 5; the rest is the payload. Checks: those
 * of fuzz_mqtt.h; drv_mq_parse_lines on its own gives the same answer
 * (but for the message's tags) and, on a payload with NUL bytes, a reason
 * too; and a round trip: what parsed, written out again by the InfluxDB
 * output's encoder (drivers/influx), parses back to equal readings, unless
 * a name holds a backslash the encoder has to change (one that ends the
 * name or stands before ',', '=' or a space). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/influx/influx.h"
#include "fuzz_mqtt.h"
#include "reading_cmp.h"

static struct drv_mq_out again;

/* A backslash that line protocol cannot carry as it is. */
static int awkward(const char *s)
{
    for (size_t i = 0; s[i]; i++)
        if (s[i] == '\\' &&
            (s[i + 1] == '\0' || s[i + 1] == ',' || s[i + 1] == '=' || s[i + 1] == ' '))
            return 1;
    return 0;
}

static int awkward_reading(const hub_reading_t *r)
{
    if (awkward(hub_reading_measurement(r)))
        return 1;
    for (size_t i = 0; i < hub_reading_tag_count(r); i++)
        if (awkward(hub_reading_tag(r, i)->key) || awkward(hub_reading_tag(r, i)->value))
            return 1;
    for (size_t i = 0; i < hub_reading_field_count(r); i++)
        if (awkward(hub_reading_field(r, i)->key))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum drv_mq_precision p = (enum drv_mq_precision)(data[0] % 5);
    data++;
    size--;
    struct drv_mq_parse_opts o;
    memset(&o, 0, sizeof(o));
    o.format = DRV_MQ_INFLUX;
    o.precision = p;
    int rc = fuzz_parse(&o, data, size);
    drv_mq_out_clear(&fuzz_out);

    char why[200];
    memset(why, 'x', sizeof(why));
    int rc2 =
        drv_mq_parse_lines((const char *)data, size, p, FUZZ_NOW, &fuzz_out, why, sizeof(why));
    fuzz_check_answer(rc2, NULL, why, sizeof(why));
    if (size > 0 && !memchr(data, 0, size) && rc2 != rc)
        abort(); /* the tags may refuse a reading full of tags: never here */
    if (rc2 != HUB_OK)
        return 0;

    struct hub_buf b;
    hub_buf_init(&b, 1u << 26);
    int skip = 0;
    for (size_t i = 0; i < fuzz_out.n; i++) {
        skip |= awkward_reading(fuzz_out.r[i]);
        if (drv_influx_encode(fuzz_out.r[i], true, &b) != HUB_OK)
            abort();
    }
    if (!skip) {
        char why2[200];
        if (drv_mq_parse_lines((const char *)b.data, b.len, DRV_MQ_NS, FUZZ_NOW, &again, why2,
                               sizeof(why2)) != HUB_OK ||
            again.n != fuzz_out.n)
            abort();
        for (size_t i = 0; i < again.n; i++)
            if (reading_cmp(fuzz_out.r[i], again.r[i]))
                abort();
        drv_mq_out_clear(&again);
    }
    hub_buf_free(&b);
    drv_mq_out_clear(&fuzz_out);
    return 0;
}
