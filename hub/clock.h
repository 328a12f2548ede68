/* hub/clock.h — the two clocks: wall time for timestamps, monotonic for timers. */
#ifndef HUB_CLOCK_H
#define HUB_CLOCK_H

#include <stdint.h>

#define HUB_NS_PER_MS 1000000LL
#define HUB_NS_PER_S 1000000000LL

/* Nanoseconds since the Unix epoch, UTC (CLOCK_REALTIME). */
int64_t hub_time_ns(void);
/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t hub_mono_ns(void);

#endif
