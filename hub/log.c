/* hub/log.c — "2026-11-30T01:02:03.456Z warn [modbus:meter-1] message" on stderr. */
#include "hub/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum hub_log_level hub_log_threshold = HUB_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void hub_log_set_level(enum hub_log_level lvl)
{
    hub_log_threshold = lvl;
}

int hub_log_parse_level(const char *s, enum hub_log_level *out)
{
    for (int i = 0; i <= HUB_LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum hub_log_level)i;
            return 0;
        }
    }
    return -1;
}

void hub_log_write(enum hub_log_level lvl, const char *who, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000L,
            level_names[lvl < 0 || lvl > HUB_LOG_DEBUG ? 0 : lvl], who ? who : "cityhub", msg);
    pthread_mutex_unlock(&log_lock);
}

int hub_log_limit_pass(struct hub_log_limit *l, int64_t now_ns, uint64_t *suppressed)
{
    if (l->last_ns == 0 || now_ns - l->last_ns >= HUB_LOG_REPEAT_NS) {
        *suppressed = l->held;
        l->held = 0;
        l->last_ns = now_ns;
        return 1;
    }
    l->held++;
    return 0;
}
