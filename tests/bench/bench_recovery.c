/* tests/bench/bench_recovery.c DIR [MiB] — recovery of a full journal.
 *
 * Fills a journal of MiB (default 256) with typical readings (8 MiB
 * segments), closes it, then times: opening it again (recovery: the newest
 * segment scanned, every other one's header checked), with the page cache
 * warm and, when this process may drop it (root), cold; and reading every
 * record back with CRC checks (what `cityhub journal verify` and an output
 * draining the whole backlog do). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "hub/journal.h"

static int drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return -1;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok ? 0 : -1;
}

static int reopen(const char *dir, uint64_t max, const char *label)
{
    char err[256];
    struct hub_journal_opts o = {.dir = dir, .max_size = max};
    hub_journal_t *j;
    int64_t t0 = hub_mono_ns();
    if (hub_journal_open(&o, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    int64_t t1 = hub_mono_ns();
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    printf("journal recovery (%s): open of %.1f MiB, %" PRIu64 " segments, %" PRIu64
           " records: %.1f ms\n",
           label, (double)st.bytes / (1 << 20), st.segments, st.next_seq - st.first_seq,
           (double)(t1 - t0) / 1e6);
    hub_journal_close(j);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_recovery DIR [MiB]\n");
        return 2;
    }
    uint64_t max = (argc > 2 ? strtoull(argv[2], NULL, 10) : 256) << 20;
    char err[256];
    struct hub_journal_opts o = {.dir = argv[1], .max_size = max};
    hub_journal_t *j;
    if (hub_journal_open(&o, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    int64_t t0 = hub_time_ns();
    struct hub_journal_stats st;
    /* fill to just under max_size, so that nothing is dropped */
    for (uint64_t i = 0;; i++) {
        if ((i & 1023) == 0) {
            hub_journal_stats(j, &st);
            if (st.bytes + (16u << 20) > max)
                break;
        }
        hub_reading_t *r = bench_reading(i, t0);
        hub_buf_reset(&b);
        hub_reading_encode(r, &b);
        hub_reading_free(r);
        if (hub_journal_append(j, b.data, b.len, NULL) != HUB_OK) {
            fprintf(stderr, "bench: append failed\n");
            return 1;
        }
    }
    hub_journal_close(j);

    if (reopen(argv[1], max, "page cache warm"))
        return 1;
    if (drop_caches() == 0) {
        if (reopen(argv[1], max, "page cache dropped"))
            return 1;
    } else {
        printf("journal recovery (page cache dropped): not measured (needs root)\n");
    }

    if (hub_journal_open(&o, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    hub_journal_stats(j, &st);
    drop_caches();
    hub_journal_reader_t *rd;
    uint64_t seq, skipped = 0, n = 0;
    int64_t m0 = hub_mono_ns();
    if (hub_journal_reader_new(j, st.first_seq, &rd) != HUB_OK)
        return 1;
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK)
        n++;
    int64_t m1 = hub_mono_ns();
    printf("journal full read with CRC checks: %" PRIu64 " records (%.1f MiB) in %.2f s, "
           "%.0f MiB/s, %" PRIu64 " skipped\n",
           n, (double)st.bytes / (1 << 20), (double)(m1 - m0) / 1e9,
           (double)st.bytes / (1 << 20) / ((double)(m1 - m0) / 1e9), skipped);
    hub_journal_reader_free(rd);
    hub_journal_close(j);
    hub_buf_free(&b);
    return 0;
}
