/* drivers/modbus/bus_priv.h — one bus's state, shared by bus.c (the
 * scheduler and a poll) and bus_new.c (building and freeing a bus). */
#ifndef DRV_MODBUS_BUS_PRIV_H
#define DRV_MODBUS_BUS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

#include "drivers/modbus/modbus_priv.h"
#include "hub/backoff.h"
#include "hub/log.h"
#include "hub/metrics.h"

#define WHO_MAX (8 + 64)
#define ERR_MAX 160

struct mb_dev {
    struct drv_modbus_device cfg; /* regs: our own copy */
    struct drv_modbus_block plan[DRV_MB_MAX_REGISTERS];
    int nblocks;
    char who[WHO_MAX]; /* "modbus:NAME" */

    int64_t next_due;  /* monotonic ns */
    unsigned failures; /* consecutive failed polls */
    uint64_t polls, errors, timeouts, exceptions, bad_replies;
    double latency_ms; /* of the last successful poll */
    bool have_latency;
    int64_t last_status; /* monotonic ns of the last status point, 0 = never */
    char last_error[ERR_MAX];
    uint64_t nan_logged; /* bit i: register i's "no value" was logged */
    struct hub_log_limit fail_limit;
    bool fail_logged; /* this run of failures was announced: announce its end */
    struct hub_metric *m_polls, *m_errors;
};

struct mb_ctx {
    struct drv_modbus_bus bus;
    struct drv_sink sink;
    int64_t status_every_ns; /* hub.status_interval */
    char who[WHO_MAX];       /* "modbus:BUS" */

    modbus_t *mb;
    bool connected;
    int64_t reconnect_at; /* monotonic ns; 0 = try at once */
    struct hub_backoff reconnect;
    struct hub_log_limit link_limit;
    struct hub_log_limit emit_limit;

    struct mb_dev *devs;
    size_t ndevs;
    atomic_size_t failing;                                 /* devices whose last poll failed */
    struct hub_metric *m_fail[DRV_MB_FAIL_CONNECTION + 1]; /* by kind */

    atomic_int stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* A timeout in ns as libmodbus takes it (at least 1 us). */
void drv_mb_timeout_split(int64_t ns, uint32_t *sec, uint32_t *usec);

#endif
