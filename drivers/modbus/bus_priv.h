/* drivers/modbus/bus_priv.h — one bus's state, shared by bus.c (the
 * scheduler and a poll) and bus_new.c (building and freeing a bus). */
#ifndef DRV_MODBUS_BUS_PRIV_H
#define DRV_MODBUS_BUS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/modbus_priv.h"
#include "hub/backoff.h"
#include "hub/log.h"
#include "hub/metrics.h"

#define WHO_MAX (8 + 64)
#define ERR_MAX 160

/* A bus's connection (link.c). */
struct mb_link {
    bool rtu;
    bool up;
    int fd;
    int debug; /* log every frame */
    const char *who;
    char host[256]; /* tcp */
    int64_t port;
    const char *device; /* rtu */
    bool rs485;         /* rtu: the kernel's RS-485 mode (TIOCSRS485) */
    modbus_t *mb;       /* rtu: libmodbus opens the line and sends */
};

int mb_link_open(struct mb_link *l, int64_t timeout_ns, char *msg, size_t msglen);
void mb_link_close(struct mb_link *l);
/* Send q and read one whole reply frame into buf (DRV_MB_ADU_MAX bytes) by
 * the monotonic deadline. Returns 0 with *len, or a DRV_MB_FAIL_* kind with
 * msg (TIMEOUT, BAD_REPLY for a frame that cannot be one or is cut by a
 * close, CONNECTION). The frame is not checked: drv_mb_reply_check. */
int mb_link_transact(struct mb_link *l, const struct drv_mb_req *q, uint8_t *buf, size_t *len,
                     int64_t deadline, char *msg, size_t msglen);

struct mb_dev {
    struct drv_modbus_device cfg; /* regs: a map shared with like devices (bus_new.c) */
    bool shared_map;
    struct drv_modbus_block plan[DRV_MB_MAX_REGISTERS];
    int nblocks;
    size_t *slot;       /* per block: its first value in words (registers) or bits */
    uint16_t *words;    /* the registers of the last poll, block after block */
    uint8_t *bits;      /* the bits (coils, discrete inputs) of the last poll */
    char who[WHO_MAX];  /* "modbus:NAME" */
    char what[WHO_MAX]; /* "device NAME", for the watchdog */

    int64_t next_due; /* monotonic ns */
    /* Written by the bus's worker under the bus's st_mu (read there without
     * it), read by drv_modbus_bus_sources under it. */
    unsigned failures;                 /* consecutive failed polls */
    int64_t last_ok_ns, last_error_ns; /* wall clock, 0 = never */
    uint64_t polls, errors, timeouts, exceptions, bad_replies;
    int64_t skew_ns, skew_max_ns; /* last poll's start after its due time (st_mu); the largest */
    double latency_ms;            /* of the last successful poll */
    bool have_latency;
    int64_t last_status;      /* monotonic ns of the last status point, 0 = never */
    char last_error[ERR_MAX]; /* st_mu */
    uint64_t nan_logged;      /* bit i: register i's "no value" was logged */
    struct hub_log_limit fail_limit;
    bool fail_logged; /* this run of failures was announced: announce its end */
    struct hub_metric *m_polls, *m_errors, *m_skew;
    struct hub_metric *m_fail[DRV_MB_FAIL_CONNECTION + 1]; /* by kind, 0 = other */
};

struct mb_ctx {
    struct drv_modbus_bus bus;
    struct drv_sink sink;
    int64_t status_every_ns; /* hub.status_interval */
    char who[WHO_MAX];       /* "modbus:BUS" */

    struct mb_link link;
    uint16_t tid;         /* tcp: the last transaction id */
    int64_t reconnect_at; /* monotonic ns; 0 = try at once */
    int64_t free_at;      /* rtu: the line's silence after the last frame ends here */
    size_t heap_at;       /* place in the pool's queue */
    int64_t due;          /* drv_mb_bus_due when queued */
    int64_t cost_ns;      /* how long its last serving took */
    struct hub_backoff reconnect;
    struct hub_log_limit link_limit;
    struct hub_log_limit emit_limit;

    struct mb_dev *devs;
    size_t ndevs;
    pthread_mutex_t st_mu; /* the devices' state the status server reads */
    atomic_size_t failing; /* devices whose last poll failed */

    atomic_int *stopping; /* the pool's (or solo_stop) */
    /* drv_modbus_bus_run: the bus on a thread of its own */
    atomic_int solo_stop;
    pthread_mutex_t solo_lock;
    pthread_cond_t solo_wake;
};

/* When the bus is next to be served: its most overdue device's due time,
 * not before free_at. */
int64_t drv_mb_bus_due(const struct mb_ctx *c);
/* Poll the bus's most overdue device (the caller made sure one is due). */
void drv_mb_bus_serve(struct mb_ctx *c);
void drv_mb_bus_close(struct mb_ctx *c);

/* A timeout in ns as libmodbus takes it (at least 1 us). */
void drv_mb_timeout_split(int64_t ns, uint32_t *sec, uint32_t *usec);

#endif
