/* tests/bench/bench_journal.c DIR [N] — journal append + group commit.
 *
 * Appends N typical readings (encoded and appended as the daemon does:
 * keyed, so that each series is stored once per segment) while a second
 * thread syncs every 100 ms (the default sync_interval), then, for
 * comparison, appends N/50 readings with an fsync after each. Prints
 * readings/s, CPU per reading, fsyncs/s and journal bytes per reading
 * (frames included); then the journal bytes written per reading against
 * the line protocol of the same readings, and the ratio. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "drivers/influx/influx.h"
#include "hub/journal.h"

static atomic_int stop_sync;

static void *sync_main(void *arg)
{
    hub_journal_t *j = arg;
    while (!atomic_load(&stop_sync)) {
        struct timespec ts = {0, 100 * HUB_NS_PER_MS};
        nanosleep(&ts, NULL);
        hub_journal_sync(j);
    }
    return NULL;
}

/* Journal bytes per reading of the last group-commit run. */
static double journal_per_reading;

static int run(const char *dir, uint64_t n, int per_record_sync)
{
    char err[256];
    struct hub_journal_opts o = {.dir = dir, .max_size = 1ull << 32};
    hub_journal_t *j;
    if (hub_journal_open(&o, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    struct hub_journal_stats st0, st1;
    hub_journal_stats(j, &st0);
    pthread_t th;
    atomic_store(&stop_sync, 0);
    if (!per_record_sync)
        pthread_create(&th, NULL, sync_main, j);

    static uint8_t rec[HUB_READING_MAX_ENCODED];
    int64_t t0 = hub_time_ns();
    double c0 = bench_cpu_s();
    int64_t m0 = hub_mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        hub_reading_t *r = bench_reading(i, t0);
        size_t key_len = 0;
        size_t len = hub_reading_encode_keyed(r, rec, sizeof(rec), &key_len);
        if (hub_journal_append_keyed(j, rec, len, key_len, NULL) != HUB_OK) {
            fprintf(stderr, "bench: append failed\n");
            return 1;
        }
        if (per_record_sync)
            hub_journal_sync(j);
        hub_reading_free(r);
    }
    hub_journal_sync(j);
    int64_t m1 = hub_mono_ns();
    double c1 = bench_cpu_s();
    if (!per_record_sync) {
        atomic_store(&stop_sync, 1);
        pthread_join(th, NULL);
    }
    hub_journal_stats(j, &st1);
    double secs = (double)(m1 - m0) / 1e9;
    uint64_t fsyncs = st1.fsyncs - st0.fsyncs;
    printf("journal %-26s %10.0f readings/s  %6.2f us CPU/reading  %8.1f fsyncs/s  "
           "%5.1f bytes/reading\n",
           per_record_sync ? "(fsync per reading):" : "(group commit, 100 ms):", (double)n / secs,
           (c1 - c0) * 1e6 / (double)n, (double)fsyncs / secs,
           (double)st1.append_bytes / (double)n);
    if (!per_record_sync)
        journal_per_reading = (double)st1.append_bytes / (double)n;
    hub_journal_close(j);
    return 0;
}

/* Line protocol bytes per reading of the same readings (a sample of them:
 * they differ only in their values). */
static double line_protocol_per_reading(uint64_t n)
{
    struct hub_buf lp;
    hub_buf_init(&lp, 1u << 20);
    int64_t t0 = hub_time_ns();
    uint64_t bytes = 0, m = n < 100000 ? n : 100000;
    for (uint64_t i = 0; i < m; i++) {
        hub_reading_t *r = bench_reading(i, t0);
        hub_buf_reset(&lp);
        drv_influx_encode(r, false, &lp);
        bytes += lp.len;
        hub_reading_free(r);
    }
    hub_buf_free(&lp);
    return (double)bytes / (double)m;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_journal DIR [N]\n");
        return 2;
    }
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 500000;
    char d1[512], d2[512];
    snprintf(d1, sizeof(d1), "%s/group", argv[1]);
    snprintf(d2, sizeof(d2), "%s/each", argv[1]);
    if (run(d1, n, 0) || run(d2, n / 50, 1))
        return 1;
    double lp = line_protocol_per_reading(n);
    printf("journal bytes written per reading (frames included): %.1f | line protocol %.1f | "
           "ratio %.3f\n",
           journal_per_reading, lp, journal_per_reading / lp);
    return 0;
}
