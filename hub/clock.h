/* hub/clock.h — the two clocks: wall time for timestamps, monotonic for timers. */
#ifndef HUB_CLOCK_H
#define HUB_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#define HUB_NS_PER_MS 1000000LL
#define HUB_NS_PER_S 1000000000LL

/* Nanoseconds since the Unix epoch, UTC (CLOCK_REALTIME). */
int64_t hub_time_ns(void);
/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t hub_mono_ns(void);
/* Nanoseconds on CLOCK_BOOTTIME (monotonic, counting suspend too). */
int64_t hub_boot_ns(void);

#ifdef CITYHUB_TEST_HOOKS
/* Test build: added to CLOCK_REALTIME by hub_time_ns (hub/clocktrust.c sets
 * it from the file named by CITYHUB_TEST_CLOCK). */
extern _Atomic int64_t hub_clock_fake_offset_ns;
#endif

/* A mutex and a condition variable whose timed waits count on
 * CLOCK_MONOTONIC (so a wall-clock step never stretches a wait). Returns 0,
 * or -1 with nothing left initialised. */
int hub_cond_init(pthread_mutex_t *mu, pthread_cond_t *cond);
void hub_cond_destroy(pthread_mutex_t *mu, pthread_cond_t *cond);
/* Wait on cond (mu held) until the monotonic time deadline_ns at the latest.
 * Returns as pthread_cond_timedwait. */
int hub_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ns);

#endif
