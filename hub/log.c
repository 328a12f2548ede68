/* hub/log.c — "2026-11-30T01:02:03.456Z warn [modbus:meter-1] message" on
 * stderr or in a file; "<4>warn [modbus:meter-1] message" to journald. */
#include "hub/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum hub_log_level hub_log_threshold = HUB_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char syslog_prio[] = {'3', '4', '6', '7'}; /* err, warning, info, debug */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;         /* NULL: stderr */
static char *log_path;       /* of log_fp */
static int log_journal = -1; /* stderr is journald's stream: -1 not known yet */

#define LOG_DEBUG_MAX 16
int hub_log_debug_n;
static char *log_debug[LOG_DEBUG_MAX];

/* systemd sets JOURNAL_STREAM=DEV:INODE of the stream it connected. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static FILE *open_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    FILE *fp = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (!fp) {
        if (err)
            snprintf(err, errlen, "log file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    setvbuf(fp, NULL, _IOLBF, 0);
    return fp;
}

int hub_log_open(const char *path, char *err, size_t errlen)
{
    FILE *fp = NULL;
    char *copy = NULL;
    if (path && path[0]) {
        if (!(copy = strdup(path)) || !(fp = open_append(path, err, errlen))) {
            if (!copy && err)
                snprintf(err, errlen, "out of memory");
            free(copy);
            return -1;
        }
    }
    pthread_mutex_lock(&log_lock);
    if (log_fp)
        fclose(log_fp);
    free(log_path);
    log_fp = fp;
    log_path = copy;
    log_journal = -1; /* looked at again at the next line */
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int hub_log_reopen(void)
{
    pthread_mutex_lock(&log_lock);
    int rc = 0;
    if (log_path) {
        char err[256];
        FILE *fp = open_append(log_path, err, sizeof(err));
        if (fp) {
            fclose(log_fp);
            log_fp = fp;
        } else {
            fprintf(log_fp, "cannot reopen: %s\n", err); /* keep writing to the old one */
            rc = -1;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void hub_log_close(void)
{
    hub_log_open(NULL, NULL, 0);
    for (int i = 0; i < hub_log_debug_n; i++)
        free(log_debug[i]);
    hub_log_debug_n = 0;
}

int hub_log_debug_add(const char *who)
{
    if (hub_log_debug_n >= LOG_DEBUG_MAX || !who || !who[0])
        return -1;
    char *c = strdup(who);
    if (!c)
        return -1;
    log_debug[hub_log_debug_n++] = c;
    return 0;
}

/* who is "type:name" (or "cityhub", "journal"); a selector matches it
 * whole, or its type before the ':'. */
int hub_log_debug_match(const char *who)
{
    if (!who)
        who = "cityhub";
    const char *colon = strchr(who, ':');
    size_t type_len = colon ? (size_t)(colon - who) : strlen(who);
    for (int i = 0; i < hub_log_debug_n; i++) {
        const char *d = log_debug[i];
        if (strcmp(d, who) == 0 || (strlen(d) == type_len && strncmp(d, who, type_len) == 0))
            return 1;
    }
    return 0;
}

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

    int l = lvl < 0 || lvl > HUB_LOG_DEBUG ? 0 : (int)lvl;
    pthread_mutex_lock(&log_lock);
    if (log_journal < 0)
        log_journal = stderr_is_journal();
    if (!log_fp && log_journal)
        fprintf(stderr, "<%c>%-5s [%s] %s\n", syslog_prio[l], level_names[l], who ? who : "cityhub",
                msg);
    else
        fprintf(log_fp ? log_fp : stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000L,
                level_names[l], who ? who : "cityhub", msg);
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
