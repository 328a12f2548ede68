/* tests/bench/bench_encode.c [N] — journal records -> line protocol -> gzip,
 * as the InfluxDB output does for each batch of 5000. Prints readings/s, CPU
 * per reading, and bytes per reading: the reading's binary form (its series
 * key and its values: the journal stores the key once per segment, see
 * bench_journal for the bytes it writes), line protocol, gzip. */
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "drivers/influx/influx.h"

#define BATCH 5000

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 500000;
    n = (n + BATCH - 1) / BATCH * BATCH;
    hub_reading_t **batch = calloc(BATCH, sizeof(*batch));
    static uint8_t rec[HUB_READING_MAX_ENCODED];
    struct hub_buf lp, gz;
    hub_buf_init(&lp, 64u << 20);
    hub_buf_init(&gz, 64u << 20);
    uint64_t rec_bytes = 0, key_bytes = 0, lp_bytes = 0, gz_bytes = 0;
    int64_t t0 = hub_time_ns();

    /* Journal records, decoded per batch as the output loop does. */
    uint8_t **recs = calloc(BATCH, sizeof(*recs));
    size_t *lens = calloc(BATCH, sizeof(*lens));
    double cpu = 0, wall = 0;
    for (uint64_t base = 0; base < n; base += BATCH) {
        for (size_t i = 0; i < BATCH; i++) {
            hub_reading_t *r = bench_reading(base + i, t0);
            size_t key_len = 0;
            size_t len = hub_reading_encode_keyed(r, rec, sizeof(rec), &key_len);
            rec_bytes += len;
            key_bytes += key_len;
            free(recs[i]);
            recs[i] = malloc(len);
            memcpy(recs[i], rec, len);
            lens[i] = len;
            hub_reading_free(r);
        }
        double c0 = bench_cpu_s();
        int64_t m0 = hub_mono_ns();
        hub_buf_reset(&lp);
        for (size_t i = 0; i < BATCH; i++) {
            if (hub_reading_decode(recs[i], lens[i], &batch[i]) != HUB_OK)
                return 1;
            drv_influx_encode(batch[i], false, &lp);
        }
        hub_buf_reset(&gz);
        if (drv_influx_gzip(lp.data, lp.len, &gz) != HUB_OK)
            return 1;
        for (size_t i = 0; i < BATCH; i++)
            hub_reading_free(batch[i]);
        wall += (double)(hub_mono_ns() - m0) / 1e9;
        cpu += bench_cpu_s() - c0;
        lp_bytes += lp.len;
        gz_bytes += gz.len;
    }
    printf("encode (decode + line protocol + gzip, batches of %d): %10.0f readings/s  %6.2f us "
           "CPU/reading\n",
           BATCH, (double)n / wall, cpu * 1e6 / (double)n);
    printf("bytes per reading: binary form %.1f (series key %.1f + values %.1f) | line protocol "
           "%.1f | gzip %.1f\n",
           (double)rec_bytes / (double)n, (double)key_bytes / (double)n,
           (double)(rec_bytes - key_bytes) / (double)n, (double)lp_bytes / (double)n,
           (double)gz_bytes / (double)n);
    for (size_t i = 0; i < BATCH; i++)
        free(recs[i]);
    free(recs);
    free(lens);
    free(batch);
    hub_buf_free(&lp);
    hub_buf_free(&gz);
    return 0;
}
