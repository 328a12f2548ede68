/* hub/clocktrust.h — whether the wall clock can be trusted, and readings
 * taken while it cannot.
 *
 * A board without a battery-backed clock boots at 1970 (or at the time
 * fake-hwclock saved last) and has the right time only once NTP has set it.
 * The clock is trusted when it is not older than the build date of this
 * program and, when the policy asks for it, the kernel reports it
 * synchronised (adjtimex: STA_UNSYNC clear, no TIME_ERROR). Once trusted it
 * stays trusted for the rest of the boot, a restart of the program
 * included (the state file says so): a kernel that loses its NTP server
 * later keeps counting from a right time.
 *
 * While the clock is not trusted, hub_clock_reading_new and hub_clock_apply
 * put a reading's time on CLOCK_BOOTTIME with the boot id of the board
 * (hub_reading_set_boottime): the journal keeps it like any other. When the
 * clock becomes trusted, the offset realtime - boottime of that moment is
 * the wall time of this boot's start; it is kept in a small state file (one
 * line per boot) so that a restart within the same boot re-stamps with the
 * same offset, and a replayed reading gets the same time again.
 * hub_clock_restamp, which outputs call on each reading they read, turns a
 * boot-time reading into a wall-clock one:
 *
 *   - this boot, clock trusted: time = boot_ns + offset, field
 *     clock="restamped";
 *   - an earlier boot whose offset the state file has: the same;
 *   - an earlier boot that never had a trusted clock: estimated as if that
 *     boot had ended right before this one began (the state file has the
 *     boot time of its last check, written every HUB_CLOCK_SAVE_NS while
 *     untrusted), field clock="estimated"; a boot the state file does not
 *     know is taken as HUB_CLOCK_UNKNOWN_SPAN_NS long, ending before the
 *     oldest boot it knows began;
 *   - otherwise (clock not trusted yet) HUB_EEMPTY: the output holds the
 *     reading back, and nothing leaves with a boot-time timestamp.
 *
 * hub_clock_check (every second from a thread of its own between
 * hub_clock_start and hub_clock_stop) also compares realtime - boottime
 * with the previous check: a change larger than step_ns is a clock step
 * (NTP set the time, somebody ran date), logged once with its size and
 * counted.
 *
 * Before hub_clock_start (tools, unit tests of other modules), the clock is
 * taken as trusted and nothing is stamped on boot time (a boot-time reading
 * read from a journal then is held: HUB_EEMPTY). */
#ifndef HUB_CLOCKTRUST_H
#define HUB_CLOCKTRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/metrics.h"
#include "hub/reading.h"

#define HUB_CLOCK_CHECK_NS (1000LL * 1000000LL) /* how often the clock is looked at */
#define HUB_CLOCK_SAVE_NS (10LL * 1000000000LL) /* state file refresh while untrusted */
#define HUB_CLOCK_UNKNOWN_SPAN_NS (7LL * 86400 * 1000000000LL)
#define HUB_CLOCK_STATE_BOOTS 8  /* boots the state file remembers */
#define HUB_CLOCK_STATE_MAX 4096 /* largest state file read */

enum hub_clock_policy {
    HUB_CLOCK_SYNC_AUTO = 0, /* the kernel's word is needed when the board booted
                                before the build date or runs fake-hwclock */
    HUB_CLOCK_SYNC_YES = 1,  /* always needed */
    HUB_CLOCK_SYNC_NO = 2,   /* never: the build date alone */
};

struct hub_clock_opts {
    enum hub_clock_policy require_sync;
    const char *state_path; /* the state file; NULL: none (offsets kept in memory) */
    int64_t step_ns;        /* a larger change of realtime - boottime is a step; 0: 1 s */
    hub_metrics_t *metrics; /* may be NULL */
};

/* What the status server and the health point show. */
struct hub_clock_status {
    bool active;                /* hub_clock_start was called */
    bool trusted;               /* clock_synced */
    const char *reason;         /* why not: "adjtimex unsynchronised", "time before build date" */
    int64_t trusted_at_ns;      /* wall time it became trusted; 0: trusted from the start */
    uint64_t boottime_readings; /* readings stamped on boot time by this process */
    uint64_t restamped, estimated;
    uint64_t steps;
    int64_t last_step_ns;    /* size and sign of the last step */
    int64_t last_step_at_ns; /* wall time of it */
};

/* A point of time taken for a reading: the wall clock's, or while the
 * wall clock is not trusted, the boot time. */
struct hub_stamp {
    int64_t ns;    /* what a reading is made with: hub_time_ns(), or boot time */
    bool boottime; /* the clock is not trusted: ns is CLOCK_BOOTTIME of boot */
    uint8_t boot[HUB_READING_BOOT_ID];
};

/* Times below this (2^28 s after the epoch, 1978: SenML's line between
 * relative and absolute times) made from a boot-time stamp are boot times;
 * a time a payload carried of its own is later than that. */
#define HUB_CLOCK_RELATIVE_NS (268435456LL * 1000000000LL)

/* Start watching the clock (one check now, then every HUB_CLOCK_CHECK_NS
 * in a thread). Returns HUB_OK, or HUB_EINVAL/HUB_ENOMEM with a message in
 * err. */
int hub_clock_start(const struct hub_clock_opts *o, char *err, size_t errlen);
void hub_clock_stop(void);
/* A new policy and step threshold (a configuration reload), from the next
 * check on; nothing when not started. */
void hub_clock_configure(enum hub_clock_policy require_sync, int64_t step_ns);
/* One check now (the thread's; for tests). */
void hub_clock_check(void);

/* The time for a reading taken now. */
void hub_clock_stamp(struct hub_stamp *st);
/* A new reading (hub_reading_new) stamped now; NULL as hub_reading_new. */
hub_reading_t *hub_clock_reading_new(const char *measurement);
/* Mark r as on boot time when st is and r's time was made from st->ns
 * (st->ns itself, or st->ns plus a relative time a payload gave: below
 * HUB_CLOCK_RELATIVE_NS). A timestamp a payload carried is the sensor's
 * and stays as it is. */
void hub_clock_apply(hub_reading_t *r, const struct hub_stamp *st);

/* Re-stamp a reading read from the journal (see above). Returns HUB_OK
 * (r has a wall-clock time: it had, or was re-stamped) or HUB_EEMPTY (not
 * yet: hold r back and ask again later). */
int hub_clock_restamp(hub_reading_t *r);

void hub_clock_status(struct hub_clock_status *out);

/* The fields the hub's status point (measurement cityhub) carries:
 * clock_synced (bool), clock_restamped, clock_estimated, clock_steps. */
void hub_clock_add_fields(hub_reading_t *r);

/* How long ago r was taken, in ns: on the wall clock, or on this boot's
 * boot time; 0 for a reading of an earlier boot's boot time. */
int64_t hub_clock_age_ns(const hub_reading_t *r);

/* The trust rule alone: NULL when a clock reading real_ns, with the
 * kernel's synchronised flag kernel_synced, is trusted under policy p
 * (strict: AUTO asks for the kernel's word), else the reason. */
const char *hub_clock_judge(enum hub_clock_policy p, bool strict, int64_t build_ns, int64_t real_ns,
                            bool kernel_synced);
/* The build date (ns since the epoch) the clock is compared with. */
int64_t hub_clock_build_ns(void);

/* "+3h12m04s", "-250ms", "+20454d03h12m04s": a step of ns, in buf. */
const char *hub_clock_step_text(int64_t ns, char *buf, size_t len);

/* The state file: at most HUB_CLOCK_STATE_BOOTS lines
 *     BOOTID OFFSET LAST
 * BOOTID 32 hex digits, OFFSET the boot's realtime - boottime in ns or "-"
 * (never trusted), LAST the boottime ns of its last check, after a first
 * line "cityhub-clock 1". hub_clock_state_parse reads n bytes into e (room
 * for HUB_CLOCK_STATE_BOOTS), returns the count or -1 for a malformed
 * file; hub_clock_state_format writes them to buf (returns the length, or
 * 0 if it does not fit). */
struct hub_clock_boot {
    uint8_t id[HUB_READING_BOOT_ID];
    bool has_offset;
    int64_t offset_ns;
    int64_t last_ns;
};
int hub_clock_state_parse(const char *p, size_t n, struct hub_clock_boot *e);
size_t hub_clock_state_format(const struct hub_clock_boot *e, size_t count, char *buf, size_t len);

/* Parse a boot id as the kernel writes it (8-4-4-4-12 hex digits, newline
 * optional) into id. Returns 0 or -1. */
int hub_clock_parse_boot_id(const char *s, size_t n, uint8_t *id);
/* id as 32 hex digits (and a NUL) in buf, which is returned. */
#define HUB_CLOCK_BOOT_TEXT (2 * HUB_READING_BOOT_ID + 1)
char *hub_clock_boot_text(const uint8_t *id, char *buf);

#endif
