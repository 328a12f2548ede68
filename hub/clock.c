/* hub/clock.c */
#include "hub/clock.h"

#include <stdatomic.h>
#include <time.h>

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * HUB_NS_PER_S + ts.tv_nsec;
}

#ifdef CITYHUB_TEST_HOOKS
_Atomic int64_t hub_clock_fake_offset_ns;

int64_t hub_time_ns(void)
{
    return clock_ns(CLOCK_REALTIME) +
           atomic_load_explicit(&hub_clock_fake_offset_ns, memory_order_relaxed);
}
#else
int64_t hub_time_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}
#endif

int64_t hub_boot_ns(void)
{
    return clock_ns(CLOCK_BOOTTIME);
}

int64_t hub_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int hub_cond_init(pthread_mutex_t *mu, pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_mutex_init(mu, NULL);
    if (rc == 0 && pthread_cond_init(cond, &ca) != 0) {
        pthread_mutex_destroy(mu);
        rc = -1;
    }
    pthread_condattr_destroy(&ca);
    return rc == 0 ? 0 : -1;
}

void hub_cond_destroy(pthread_mutex_t *mu, pthread_cond_t *cond)
{
    pthread_cond_destroy(cond);
    pthread_mutex_destroy(mu);
}

int hub_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (deadline_ns < 0)
        deadline_ns = 0;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / HUB_NS_PER_S),
                          .tv_nsec = (long)(deadline_ns % HUB_NS_PER_S)};
    return pthread_cond_timedwait(cond, mu, &ts);
}
