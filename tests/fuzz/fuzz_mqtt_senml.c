/* tests/fuzz/fuzz_mqtt_senml.c — SenML packs (drivers/mqtt/senml.c) from
 * an MQTT message: outside bytes.
 *
 * Input: byte 0 picks the options (bit 0: a measurement, bit 1: a field
 * name for records named by bn alone, bit 2: no message tags); the rest is
 * the payload. Checks: those of fuzz_mqtt.h (all or nothing, readings that
 * encode, a printable reason); every reading is of the measurement asked
 * for; no two readings share device and time; and a payload refused stays
 * refused, the same way, when parsed again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_mqtt.h"

/* Same device (or none) and time: records that make one reading. */
static int same_group(const hub_reading_t *a, const hub_reading_t *b)
{
    const char *da = hub_reading_tag_value(a, "device"), *db = hub_reading_tag_value(b, "device");
    return hub_reading_time(a) == hub_reading_time(b) &&
           (da && db ? strcmp(da, db) == 0 : da == db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct drv_mq_parse_opts o;
    memset(&o, 0, sizeof(o));
    o.format = DRV_MQ_SENML;
    o.measurement = data[0] & 1 ? "pack" : NULL;
    o.field = data[0] & 2 ? "reading" : NULL;
    const struct drv_mq_tagset *tags = data[0] & 4 ? NULL : &fuzz_tags;
    char why[200], why2[200];
    int rc = drv_mq_parse(&o, tags, data + 1, size - 1, FUZZ_NOW, &fuzz_out, why, sizeof(why));
    fuzz_check_answer(rc, tags, why, sizeof(why));
    if (rc == HUB_OK) {
        if (drv_mq_json_depth((const char *)data + 1, size - 1, DRV_MQ_MAX_DEPTH) >
            DRV_MQ_MAX_DEPTH)
            abort();
        for (size_t i = 0; i < fuzz_out.n; i++) {
            if (strcmp(hub_reading_measurement(fuzz_out.r[i]), o.measurement ? "pack" : "senml"))
                abort();
            /* without the message's tags, "device" is the pack's own */
            for (size_t j = 0; !tags && fuzz_out.n <= 64 && j < i; j++)
                if (same_group(fuzz_out.r[i], fuzz_out.r[j]))
                    abort(); /* one group, two readings */
        }
    } else {
        int rc2 =
            drv_mq_parse(&o, tags, data + 1, size - 1, FUZZ_NOW, &fuzz_out, why2, sizeof(why2));
        if (rc2 != rc || strcmp(why, why2) != 0 || fuzz_out.n != 0)
            abort();
    }
    drv_mq_out_clear(&fuzz_out);
    return 0;
}
