/* drivers/modbus/modbus_priv.h — what the Modbus driver's own files (and its
 * unit tests and fuzz harness) share; not part of the driver's contract. */
#ifndef DRV_MODBUS_PRIV_H
#define DRV_MODBUS_PRIV_H

#include <stddef.h>

#include "drivers/modbus/modbus_drv.h"

/* Largest gap (unused registers) the poller reads through to merge two
 * requests. 0: only contiguous or overlapping registers share a request,
 * because many devices answer "illegal data address" for a read that
 * touches an unmapped register, and the config has no way to say which
 * gaps are safe. */
#define DRV_MB_POLL_MAX_GAP 0u

/* Backoff of a failing device, so that it cannot take the bus from the
 * others. One failed poll is retried at the next interval (a blip costs
 * nothing). From the second consecutive failure on, the next poll waits
 * base * 2^(failures - 2), where base is the larger of the interval and
 * DRV_MB_DEV_BACKOFF_COST times what the failed poll cost (a timeout), so a
 * dead slave takes at most 1/DRV_MB_DEV_BACKOFF_COST of the bus at first and
 * less each time; the wait is capped at the larger of DRV_MB_DEV_BACKOFF_MAX
 * intervals and DRV_MB_DEV_BACKOFF_CAP_NS. A poll that failed because the
 * link is down does not grow this backoff: the device is polled again when
 * the bus next tries to reconnect (or at its next interval, if later). */
#define DRV_MB_DEV_BACKOFF_COST 10
#define DRV_MB_DEV_BACKOFF_MAX 16
#define DRV_MB_DEV_BACKOFF_CAP_NS (30LL * 1000000000LL)

/* Reconnect backoff of a TCP bus (hub_backoff). */
#define DRV_MB_RECONNECT_BASE_NS (1000LL * 1000000LL)
#define DRV_MB_RECONNECT_MAX_NS (30000LL * 1000000LL)

/* A status point `cityhub_device` is emitted at least every
 * hub.status_interval (drv_env.status_interval_ns); this when none is given. */
#define DRV_MB_STATUS_EVERY_NS (60LL * 1000000000LL)

/* Longest slice the scheduler sleeps before looking at the stop flag. */
#define DRV_MB_SLEEP_SLICE_NS (100LL * 1000000LL)

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
/* The raw 16-bit value of one register: as received for ABCD and CDAB, its
 * two bytes swapped for BADC and DCBA. */
uint16_t drv_modbus_u16(uint16_t reg, int order);

/* One bus (bus.c): built from its config (the registers are copied: cfg may
 * go once this returns), run by one thread until stop, then freed. new
 * returns 0, or -1 with a message. */
int drv_modbus_bus_new(const struct drv_modbus_input_cfg *cfg, const struct drv_env *env,
                       void **out, char *err, size_t errlen);
void drv_modbus_bus_run(void *bus);
void drv_modbus_bus_stop(void *bus);
void drv_modbus_bus_free(void *bus);
/* Adds the bus's devices and failing devices to st. */
void drv_modbus_bus_stats(void *bus, struct drv_stats *st);
const char *drv_modbus_bus_name(void *bus);

/* `debug: frames` (debug.c). libmodbus prints its frame dump with printf on
 * stdout; setup makes stdout a pipe once per process, begin/end bracket the
 * libmodbus calls of a bus whose debug is on (one bus at a time) and log
 * what was printed as lines "[modbus:BUS] frames: ..." on stderr. begin and
 * end do nothing for a bus whose debug is off. */
int drv_mb_debug_setup(char *err, size_t errlen);
void drv_mb_debug_begin(int debug);
void drv_mb_debug_end(int debug, const char *who);

#endif
