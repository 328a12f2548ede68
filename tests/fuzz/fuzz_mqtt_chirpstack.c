/* tests/fuzz/fuzz_mqtt_chirpstack.c — ChirpStack v4 uplink events
 * (drivers/mqtt/chirpstack.c) from an MQTT message: outside bytes.
 *
 * Input: byte 0 bit 0: radio readings on; bit 1: measurements named;
 * the rest is the payload. Checks: those of fuzz_mqtt.h; one reading, or
 * with radio on two at most (the radio one last, with only float fields
 * of the names it may have); measurements as asked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_mqtt.h"

static int radio_field(const char *key)
{
    static const char *const names[] = {"rssi", "snr", "gateways", "f_cnt", "dr", "frequency"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(key, names[i]) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct drv_mq_parse_opts o;
    memset(&o, 0, sizeof(o));
    o.format = DRV_MQ_CHIRPSTACK;
    o.radio = data[0] & 1;
    if (data[0] & 2) {
        o.measurement = "up";
        o.radio_measurement = "up_radio";
    }
    const char *meas = o.measurement ? "up" : "lorawan";
    const char *rmeas = o.radio_measurement ? "up_radio" : "lorawan_radio";
    int rc = fuzz_parse(&o, data + 1, size - 1);
    if (rc == HUB_OK) {
        if (fuzz_out.n > (o.radio ? 2u : 1u))
            abort();
        for (size_t i = 0; i < fuzz_out.n; i++) {
            const hub_reading_t *r = fuzz_out.r[i];
            int radio = strcmp(hub_reading_measurement(r), rmeas) == 0;
            if (!radio && (strcmp(hub_reading_measurement(r), meas) != 0 || i > 0))
                abort();
            if (radio && (!o.radio || i + 1 != fuzz_out.n))
                abort();
            for (size_t k = 0; radio && k < hub_reading_field_count(r); k++) {
                const struct hub_field *f = hub_reading_field(r, k);
                if (f->type != HUB_FIELD_FLOAT || !radio_field(f->key))
                    abort();
            }
        }
        if (fuzz_out.n == 2 && hub_reading_time(fuzz_out.r[0]) != hub_reading_time(fuzz_out.r[1]))
            abort();
    }
    drv_mq_out_clear(&fuzz_out);
    return 0;
}
