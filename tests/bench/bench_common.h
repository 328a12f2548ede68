/* tests/bench/bench_common.h — shared bits of the benchmarks. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <sys/resource.h>

#include "hub/clock.h"
#include "hub/reading.h"

/* CPU seconds (user + system) this process used so far. */
static inline double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* A typical reading: an energy meter with five fields and the usual tags. */
static inline hub_reading_t *bench_reading(uint64_t i, int64_t t0)
{
    hub_reading_t *r = hub_reading_new("energy", t0 + (int64_t)i * 1000000);
    hub_reading_add_tag(r, "gateway", "gw-donghoi-01");
    hub_reading_add_tag(r, "device", "meter-1");
    hub_reading_add_tag(r, "district", "dong-hoi");
    hub_reading_add_tag(r, "site", "quang-trung-crossing");
    hub_reading_add_tag(r, "feeder", "f3");
    hub_reading_add_float(r, "voltage", 230.0 + (double)(i % 70) / 10.0);
    hub_reading_add_float(r, "current", 12.5 + (double)(i % 13) / 7.0);
    hub_reading_add_int(r, "active_power", 2875 + (int64_t)(i % 500) - 250);
    hub_reading_add_uint(r, "energy_total", 1234567 + i);
    hub_reading_add_float(r, "frequency", 50.0 + (double)(i % 11 - 5) / 100.0);
    return r;
}

#endif
