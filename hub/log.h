/* hub/log.h — log lines that say who: "[modbus:meter-1] read failed: ...".
 *
 * The level is checked before anything is formatted. A message that repeats
 * is printed the first time and then once per HUB_LOG_REPEAT_NS with a count
 * of what was suppressed (struct hub_log_limit). */
#ifndef HUB_LOG_H
#define HUB_LOG_H

#include <stddef.h>
#include <stdint.h>

enum hub_log_level { HUB_LOG_ERROR = 0, HUB_LOG_WARN, HUB_LOG_INFO, HUB_LOG_DEBUG };

#define HUB_LOG_REPEAT_NS (60LL * 1000000000LL)

extern enum hub_log_level hub_log_threshold;

void hub_log_set_level(enum hub_log_level lvl);
/* Parse "error", "warn", "info", "debug". Returns 0 or -1. */
int hub_log_parse_level(const char *s, enum hub_log_level *out);
void hub_log_write(enum hub_log_level lvl, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Where lines go: path NULL or "" = stderr. A file is opened for append,
 * created 0640; hub_log_reopen opens it again (after logrotate moved it:
 * SIGHUP). On stderr under systemd (JOURNAL_STREAM names stderr) lines
 * carry a syslog priority prefix ("<4>") and no timestamp: journald adds
 * its own. Returns 0, or -1 with a message in err (the old target stays). */
int hub_log_open(const char *path, char *err, size_t errlen);
int hub_log_reopen(void);
void hub_log_close(void);

/* Debug lines of some sources only, whatever the level: who ("modbus" for
 * every Modbus bus and device, "modbus:meter-1" for one). At most 16.
 * Returns 0 or -1 (too many). */
int hub_log_debug_add(const char *who);
extern int hub_log_debug_n;
int hub_log_debug_match(const char *who);

#define hub_log(lvl, who, ...)                                                                     \
    do {                                                                                           \
        if ((lvl) <= hub_log_threshold ||                                                          \
            ((lvl) == HUB_LOG_DEBUG && hub_log_debug_n && hub_log_debug_match(who)))               \
            hub_log_write((lvl), (who), __VA_ARGS__);                                              \
    } while (0)
#define hub_err(who, ...) hub_log(HUB_LOG_ERROR, who, __VA_ARGS__)
#define hub_warn(who, ...) hub_log(HUB_LOG_WARN, who, __VA_ARGS__)
#define hub_info(who, ...) hub_log(HUB_LOG_INFO, who, __VA_ARGS__)
#define hub_debug(who, ...) hub_log(HUB_LOG_DEBUG, who, __VA_ARGS__)

/* Rate limit for one repeating message. hub_log_limit_pass returns 1 when the
 * message should be printed now and sets *suppressed to how many were held
 * back since the last print. */
struct hub_log_limit {
    int64_t last_ns;
    uint64_t held;
};
int hub_log_limit_pass(struct hub_log_limit *l, int64_t now_ns, uint64_t *suppressed);

#endif
