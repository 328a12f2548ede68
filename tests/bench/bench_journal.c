/* tests/bench/bench_journal.c DIR [N] — journal append + group commit.
 *
 * Appends N typical readings (encoded as the daemon does) while a second
 * thread syncs every 100 ms (the default sync_interval), then, for
 * comparison, appends N/50 readings with an fsync after each. Prints
 * readings/s, CPU per reading, fsyncs/s and journal bytes per reading. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
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

    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    int64_t t0 = hub_time_ns();
    double c0 = bench_cpu_s();
    int64_t m0 = hub_mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        hub_reading_t *r = bench_reading(i, t0);
        hub_buf_reset(&b);
        hub_reading_encode(r, &b);
        if (hub_journal_append(j, b.data, b.len, NULL) != HUB_OK) {
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
    hub_buf_free(&b);
    hub_journal_close(j);
    return 0;
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
    return 0;
}
