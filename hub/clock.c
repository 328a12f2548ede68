/* hub/clock.c */
#include "hub/clock.h"

#include <time.h>

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * HUB_NS_PER_S + ts.tv_nsec;
}

int64_t hub_time_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int64_t hub_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}
