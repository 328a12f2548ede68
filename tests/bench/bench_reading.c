/* tests/bench/bench_reading.c [N] — the CPU of one reading on the path a
 * Modbus poll takes, done the way the hub does it:
 *   build          hub_reading_new, 3 tags, 20 fields as the Modbus driver
 *                  adds them (then freed: timed alone, as a reference)
 *   encode         as hub/accept.c: build, encode to the journal record,
 *                  append (here: a copy), free; "encode" is this minus build
 *   decode         as hub/output.c: a batch of records decoded into the
 *                  readings the previous batch left (hub_reading_decode_into)
 *   line protocol  as the InfluxDB driver: each reading of the batch to a
 *                  line (gzip is left out); the readings are then kept as
 *                  spares, as hub/output.c does
 * Batches of 1000 readings, each stage over the whole batch in turn. Prints
 * per stage and in total: ns per reading, ns per field and, where the kernel
 * lets a process count its own user-space instructions (perf_event_open),
 * instructions per reading. Elsewhere, callgrind gives them (stages are
 * functions that are never inlined):
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out bench_reading 20000
 *   callgrind_annotate --inclusive=yes cg.out | grep stage_
 *
 * Built with -DBENCH_OLD_API it uses only the API from before
 * hub_reading_encode_to and hub_reading_decode_into (a fresh hub_buf per
 * record, hub_reading_decode and hub_reading_free), as hub/accept.c and
 * hub/output.c did: to measure the old code with the same loop. */
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench_common.h"
#include "drivers/influx/influx.h"

#define BATCH 1000
#define NFIELDS 20

enum { S_BUILD, S_ACCEPT, S_DECODE, S_LINE, S_COUNT };
static const char *const stage_name[S_COUNT] = {"build", "encode", "decode", "line protocol"};

static const char *const field_key[NFIELDS] = {
    "voltage_l1",   "voltage_l2",    "voltage_l3",    "current_l1",   "current_l2",
    "current_l3",   "power_factor",  "frequency",     "active_power", "reactive_power",
    "apparent_pwr", "energy_import", "energy_export", "run_hours",    "alarm_word",
    "status_word",  "temperature",   "pressure_bar",  "flow_m3h",     "humidity_pct",
};

static int perf_fd = -1;

static void perf_open(void)
{
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof(pe));
    pe.type = PERF_TYPE_HARDWARE;
    pe.size = sizeof(pe);
    pe.config = PERF_COUNT_HW_INSTRUCTIONS;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    perf_fd = (int)syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
    if (perf_fd >= 0)
        ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0);
}

static uint64_t perf_read(void)
{
    uint64_t v = 0;
    if (perf_fd < 0 || read(perf_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        return 0;
    return v;
}

/* One poll of a power meter: registers as the Modbus driver stores them:
 * unscaled registers as uint/int, scaled ones as raw / 10^k, float32
 * registers widened to double. */
static hub_reading_t *build(uint64_t i, int64_t t)
{
    hub_reading_t *r = hub_reading_new("power_meter", t);
    hub_reading_add_tag(r, "device", "meter-017");
    hub_reading_add_tag(r, "site", "quang-trung-crossing");
    hub_reading_add_tag(r, "gateway", "gw-donghoi-01");
    uint64_t x = i * 2654435761u;
    for (int k = 0; k < NFIELDS; k++) {
        uint64_t raw = (x >> (k % 16)) & 0xffff;
        switch (k % 5) {
        case 0: /* scale 0.1 */
            hub_reading_add_float(r, field_key[k], (double)(2200 + raw % 300) / 10.0);
            break;
        case 1: /* scale 0.01 */
            hub_reading_add_float(r, field_key[k], (double)(raw % 10000) / 100.0);
            break;
        case 2: /* float32 register */
            hub_reading_add_float(r, field_key[k], (double)((float)raw * 0.37f + 1.5f));
            break;
        case 3:
            hub_reading_add_uint(r, field_key[k], raw * 1000 + i);
            break;
        case 4:
            hub_reading_add_int(r, field_key[k], (int64_t)raw - 30000);
            break;
        }
    }
    return r;
}

static hub_reading_t *rs[BATCH];
#ifndef BENCH_OLD_API
static hub_reading_t *spare[BATCH];
#endif
static uint8_t store[BATCH][1024];
static size_t lens[BATCH];
static struct hub_buf lp;

/* One function per stage, never inlined, for callgrind. */
__attribute__((noinline)) static void stage_build(uint64_t base, int64_t t0)
{
    for (size_t i = 0; i < BATCH; i++)
        hub_reading_free(build(base + i, t0 + (int64_t)(base + i) * 1000000));
}

/* as hub/accept.c: build, encode, append (here: copy), free */
__attribute__((noinline)) static int stage_accept(uint64_t base, int64_t t0)
{
    for (size_t i = 0; i < BATCH; i++) {
        hub_reading_t *r = build(base + i, t0 + (int64_t)(base + i) * 1000000);
#ifdef BENCH_OLD_API
        struct hub_buf b;
        hub_buf_init(&b, HUB_READING_MAX_ENCODED);
        if (hub_reading_encode(r, &b) != HUB_OK || b.len > sizeof(store[i]))
            return -1;
        memcpy(store[i], b.data, b.len);
        lens[i] = b.len;
        hub_buf_free(&b);
#else
        uint8_t rec[2048];
        size_t n = hub_reading_encode_to(r, rec, sizeof(rec));
        if (n == 0 || n > sizeof(store[i]))
            return -1;
        memcpy(store[i], rec, n);
        lens[i] = n;
#endif
        hub_reading_free(r);
    }
    return 0;
}

/* as hub/output.c: the batch's records, decoded */
__attribute__((noinline)) static int stage_decode(void)
{
    for (size_t i = 0; i < BATCH; i++) {
#ifdef BENCH_OLD_API
        if (hub_reading_decode(store[i], lens[i], &rs[i]) != HUB_OK)
            return -1;
#else
        if (hub_reading_decode_into(spare[i], store[i], lens[i], &rs[i]) != HUB_OK)
            return -1;
        spare[i] = NULL;
#endif
    }
    return 0;
}

/* as the InfluxDB driver's flush, then hub/output.c once it is delivered */
__attribute__((noinline)) static int stage_line(void)
{
    hub_buf_reset(&lp);
    for (size_t i = 0; i < BATCH; i++)
        if (drv_influx_encode(rs[i], false, &lp) != HUB_OK)
            return -1;
    for (size_t i = 0; i < BATCH; i++) {
#ifdef BENCH_OLD_API
        hub_reading_free(rs[i]);
#else
        spare[i] = rs[i];
#endif
        rs[i] = NULL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    n = (n + BATCH - 1) / BATCH * BATCH;
    hub_buf_init(&lp, 64u << 20);
    int64_t t0 = hub_time_ns();
    int64_t ns[S_COUNT] = {0};
    uint64_t ins[S_COUNT] = {0};
    uint64_t lp_bytes = 0;

    perf_open();
    for (uint64_t base = 0; base < n; base += BATCH) {
        int64_t m = hub_mono_ns();
        uint64_t c = perf_read();
#define LAP(s)                                                                                     \
    do {                                                                                           \
        int64_t m2 = hub_mono_ns();                                                                \
        uint64_t c2 = perf_read();                                                                 \
        ns[s] += m2 - m;                                                                           \
        ins[s] += c2 - c;                                                                          \
        m = m2;                                                                                    \
        c = c2;                                                                                    \
    } while (0)
        stage_build(base, t0);
        LAP(S_BUILD);
        if (stage_accept(base, t0))
            return 1;
        LAP(S_ACCEPT);
        if (stage_decode())
            return 1;
        LAP(S_DECODE);
        if (stage_line())
            return 1;
        LAP(S_LINE);
        lp_bytes += lp.len;
    }
    /* the accept stage built each reading too: encode is the difference */
    ns[S_ACCEPT] -= ns[S_BUILD];
    ins[S_ACCEPT] -= ins[S_BUILD];
    int64_t tot_ns = 0;
    uint64_t tot_ins = 0;
    printf("reading of 3 tags + %d fields, %llu readings%s:\n", NFIELDS, (unsigned long long)n,
#ifdef BENCH_OLD_API
           " (old API)"
#else
           ""
#endif
    );
    for (int s = 0; s < S_COUNT; s++) {
        tot_ns += ns[s];
        tot_ins += ins[s];
        printf("  %-14s %8.1f ns/reading %6.1f ns/field", stage_name[s], (double)ns[s] / (double)n,
               (double)ns[s] / (double)n / NFIELDS);
        if (perf_fd >= 0)
            printf(" %8.0f instructions/reading", (double)ins[s] / (double)n);
        printf("\n");
    }
    printf("  %-14s %8.1f ns/reading %6.1f ns/field", "total", (double)tot_ns / (double)n,
           (double)tot_ns / (double)n / NFIELDS);
    if (perf_fd >= 0)
        printf(" %8.0f instructions/reading", (double)tot_ins / (double)n);
    printf("\n  line protocol %.1f bytes/reading\n", (double)lp_bytes / (double)n);
#ifndef BENCH_OLD_API
    for (size_t i = 0; i < BATCH; i++)
        hub_reading_free(spare[i]);
#endif
    hub_buf_free(&lp);
    return 0;
}
