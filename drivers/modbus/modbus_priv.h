/* drivers/modbus/modbus_priv.h — what the Modbus driver's own files (and its
 * unit tests and fuzz harness) share; not part of the driver's contract. */
#ifndef DRV_MODBUS_PRIV_H
#define DRV_MODBUS_PRIV_H

#include <stddef.h>

#include "drivers/modbus/modbus_drv.h"

/* A device's max_gap defaults to 0: only contiguous or overlapping fields
 * share a request, because many devices answer "illegal data address" for a
 * read that touches an unmapped register. A profile whose map is known to
 * be readable across its gaps sets a larger one. */

/* Backoff of a failing device, so that it cannot take the bus from the
 * others. One failed poll is retried at the next interval (a blip costs
 * nothing). From the second consecutive failure on, the next poll waits
 * base * 2^(failures - 2), where base is the larger of the interval and
 * DRV_MB_DEV_BACKOFF_COST times what the failed poll cost (a timeout), so a
 * dead slave takes at most 1/DRV_MB_DEV_BACKOFF_COST of the bus at first and
 * less each time; the wait is capped at the larger of one interval and
 * DRV_MB_DEV_BACKOFF_CAP_NS, so a slave that comes back is read again within
 * 5 s (a dead one then costs the line one timeout per 5 s). A poll that failed because the
 * link is down does not grow this backoff: the device is polled again when
 * the bus next tries to reconnect (or at its next interval, if later). */
#define DRV_MB_DEV_BACKOFF_COST 10
#define DRV_MB_DEV_BACKOFF_CAP_NS (5LL * 1000000000LL)

/* Reconnect backoff of a bus (hub_backoff): capped at 5 s, so that a slave
 * that comes back is polled again within 5 s (or its interval, if longer). */
#define DRV_MB_RECONNECT_BASE_NS (1000LL * 1000000LL)
#define DRV_MB_RECONNECT_MAX_NS (5000LL * 1000000LL)

/* "Slave device busy" (exception 6) is asked again, up to this many times,
 * after the bus's pause (at least DRV_MB_BUSY_PAUSE_NS). */
#define DRV_MB_BUSY_RETRIES 3
#define DRV_MB_BUSY_PAUSE_NS (20LL * 1000000LL)

/* The worker pool: at most this many threads serve the TCP buses, plus one
 * per serial line; never more than there are buses. */
#define DRV_MB_POOL_TCP_WORKERS 16
/* A bus whose last serving took longer than this (a timeout, a slow line)
 * is slow: while a worker serves it, another always watches the clock. */
#define DRV_MB_SLOW_NS (20LL * 1000000LL)
/* A bus may wait this long past its due time for a busy worker to come
 * back; later, another worker is woken to take it. */
#define DRV_MB_LATE_NS (10LL * 1000000LL)
/* One idle worker (the standby) looks at the clock this often, in case the
 * worker that took a bus it deemed quick is held up by it for longer (a
 * device that was fast goes mute, or a call hangs): no bus waits for
 * another bus's poll for longer than this. */
#define DRV_MB_STANDBY_NS (100LL * 1000000LL)
/* The grid the first polls are spread on. */
#define DRV_MB_SPREAD_TICK_NS (20LL * 1000000LL)

/* A status point `cityhub_device` is emitted at least every
 * hub.status_interval (drv_env.status_interval_ns); this when none is given. */
#define DRV_MB_STATUS_EVERY_NS (60LL * 1000000000LL)

/* What went wrong with a request, from libmodbus's errno. */
enum drv_mb_fail {
    DRV_MB_FAIL_TIMEOUT = 1, /* ETIMEDOUT: no (complete) answer in time */
    DRV_MB_FAIL_EXCEPTION,   /* EMBXILFUN..EMBXGTAR: the slave said no */
    DRV_MB_FAIL_BAD_REPLY,   /* EMBBADDATA, EMBBADCRC, EMBMDATA, EMBBADEXC,
                                EMBUNKEXC, EMBBADSLAVE */
    DRV_MB_FAIL_CONNECTION,  /* anything else: the link is gone */
};

/* Classify err (an errno left by a libmodbus call) and write a short
 * message ("timeout", "exception 2 (illegal data address)", "bad reply:
 * ...", "connection lost: ...") into msg. Returns an enum drv_mb_fail. */
int drv_modbus_classify(int err, char *msg, size_t msglen);

/* Name of a Modbus exception code ("illegal data address"), or "unknown". */
const char *drv_modbus_exception_name(int code);

/* The raw 32-bit value of two registers in the given order (ABCD: reg[0] is
 * A B, reg[1] is C D). */
uint32_t drv_modbus_u32(const uint16_t *regs, int order);
/* The same for four registers: ABCD most significant register first, CDAB
 * least significant first, BADC/DCBA also swap each register's bytes. */
uint64_t drv_modbus_u64(const uint16_t *regs, int order);
/* The raw 16-bit value of one register: as received for ABCD and CDAB, its
 * two bytes swapped for BADC and DCBA. */
uint16_t drv_modbus_u16(uint16_t reg, int order);

/* A device's effective configuration (profile.c): in with its profile
 * (if any) applied — the profile's registers, then the device's own
 * registers overriding those of the same field and adding the others; the
 * profile's measurement, max_gap and max_registers unless the device sets
 * them. out->regs is the caller's (drv_modbus_device_release). Returns 0, or
 * -1 with a message naming the device (unknown profile, too many fields). */
int drv_modbus_device_resolve(const struct drv_modbus_device *in, struct drv_modbus_device *out,
                              char *err, size_t errlen);
void drv_modbus_device_release(struct drv_modbus_device *d);

/* Poll one device once, now, on its own connection to its bus (for `cityhub
 * poll`): dev as resolved (drv_modbus_device_resolve). Returns 0 with the
 * reading in *out (the caller frees it), or -1 with the error in err, as the
 * daemon would log it ("timeout reading holding 0..9", "exception 2
 * (illegal data address) ..."). */
int drv_modbus_poll_once(const struct drv_modbus_bus *bus, const struct drv_modbus_device *dev,
                         hub_reading_t **out, char *err, size_t errlen);

/* The driver's commands (drv_modbus_ops.commands), each in its own file. */
extern const struct drv_command drv_modbus_commands[];

/* One bus (bus.c): built from its config (the registers are copied: cfg may
 * go once this returns), served by the driver's pool (or, for tests, by
 * drv_modbus_bus_run on a thread of its own until drv_modbus_bus_stop),
 * then freed. new returns 0, or -1 with a message. */
int drv_modbus_bus_new(const struct drv_modbus_input_cfg *cfg, const struct drv_env *env,
                       void **out, char *err, size_t errlen);
void drv_modbus_bus_run(void *bus);
void drv_modbus_bus_stop(void *bus);
void drv_modbus_bus_free(void *bus);
/* Adds the bus's devices and failing devices to st. */
void drv_modbus_bus_stats(void *bus, struct drv_stats *st);
/* Each of the bus's devices as a source for the status server (drv_ops.sources). */
void drv_modbus_bus_sources(void *bus, drv_source_fn fn, void *arg);
const char *drv_modbus_bus_name(void *bus);

#endif
