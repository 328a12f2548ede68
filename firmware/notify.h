/* firmware/notify.h — telling the service manager (systemd, sd_notify) how
 * the daemon is: READY=1 once it runs, STATUS= a one-line summary every few
 * seconds, STOPPING=1 at a stop signal, RELOADING=1 / READY=1 around a
 * reload, and WATCHDOG=1 pings while every watched loop makes progress.
 *
 * Process-wide: the service manager's variables (NOTIFY_SOCKET,
 * WATCHDOG_USEC) are read once. Without NOTIFY_SOCKET every call is a
 * no-op; without a watchdog interval there are no heartbeats either
 * (ch_notify_beats gives NULL, and hub/beat.h costs nothing then).
 *
 * The watchdog pings every interval/2, and only if no loop registered in
 * ch_notify_beats() has been quiet for longer than the interval (hub/beat.h);
 * otherwise it skips the pings, so that the service manager restarts the
 * daemon, and logs once which loop stalled and what it was working on. */
#ifndef CH_NOTIFY_H
#define CH_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "firmware/status.h"
#include "hub/beat.h"
#include "hub/journal.h"

/* Longest time between two STATUS= lines. */
#define CH_NOTIFY_STATUS_NS (5 * HUB_NS_PER_S)
/* Least time a loop may be quiet before it counts as stalled, whatever the
 * watchdog interval (the loops' waits beat every HUB_BEAT_WAIT_NS). */
#define CH_NOTIFY_MIN_STALL_NS (4 * HUB_BEAT_WAIT_NS)

/* What the summary and the watchdog read while the daemon runs. */
struct ch_notify_env {
    hub_journal_t *journal;
    const struct ch_status_input *ins;
    size_t nins;
    const struct ch_status_output *outs;
    size_t nouts;
};

/* The registry of heartbeats the watchdog checks: NULL when there is no
 * watchdog (no NOTIFY_SOCKET or no WATCHDOG_USEC). Made on the first call. */
hub_beats_t *ch_notify_beats(void);
/* The watchdog interval in ns, 0 = none. */
int64_t ch_notify_watchdog_ns(void);

/* READY=1 with the first STATUS=, and the thread that refreshes STATUS= and
 * pings the watchdog. env must stay valid until ch_notify_stopping. */
void ch_notify_ready(const struct ch_notify_env *env);
/* STOPPING=1; the thread ends (no more pings or summaries). */
void ch_notify_stopping(void);
/* Around a configuration reload: RELOADING=1 (with MONOTONIC_USEC; the
 * summary reads nothing until ch_notify_reloaded), then READY=1 once the new
 * configuration runs, with env describing it (valid until the next call). */
void ch_notify_reloading(void);
void ch_notify_reloaded(const struct ch_notify_env *env);
/* STATUS= with this text now (e.g. why start-up failed). */
void ch_notify_status(const char *text);
/* Free the heartbeats once no loop runs any more. */
void ch_notify_free(void);

/* The summary line: "12 devices ok, 1 failing; journal 3.1 MiB, lag 0;
 * outputs ok". For STATUS= and tests. */
void ch_notify_summary(const struct ch_notify_env *env, char *buf, size_t len);

#endif
