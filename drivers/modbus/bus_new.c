/* drivers/modbus/bus_new.c — building one bus (its devices' plans, its
 * libmodbus context with the transport its type names: modbus_new_tcp_pi
 * or modbus_new_rtu), stopping it, freeing it, and its stats. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/bus_priv.h"
#include "hub/clock.h"

/* ---- the bus's life ------------------------------------------------------ */

int drv_modbus_bus_new(const struct drv_modbus_input_cfg *cfg, const struct drv_env *env,
                       void **out, char *err, size_t errlen)
{
    struct mb_ctx *c = NULL;
    *out = NULL;

    if (!cfg || !cfg->bus || !env || !env->sink || !env->sink->emit) {
        snprintf(err, errlen, "modbus: no bus or sink");
        return -1;
    }
    if (cfg->bus->timeout_ns < HUB_NS_PER_MS || cfg->bus->timeout_ns > DRV_MB_TIMEOUT_MAX_NS ||
        cfg->bus->pause_ns < 0 || cfg->bus->pause_ns > DRV_MB_PAUSE_MAX_NS) {
        snprintf(err, errlen, "bus %s: timeout is not 1ms..60s or pause not 0..1s", cfg->bus->name);
        return -1;
    }
    if (cfg->ndevices == 0 || cfg->ndevices > DRV_MB_MAX_DEVICES) {
        snprintf(err, errlen, "bus %s: %zu devices (1..%d)", cfg->bus->name, cfg->ndevices,
                 DRV_MB_MAX_DEVICES);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto nomem;
    if (hub_cond_init(&c->lock, &c->wake) != 0) {
        free(c);
        c = NULL;
        goto nomem;
    }
    atomic_init(&c->stopping, 0);
    atomic_init(&c->failing, 0);

    c->bus = *cfg->bus;
    c->sink = *env->sink;
    c->status_every_ns =
        env->status_interval_ns > 0 ? env->status_interval_ns : DRV_MB_STATUS_EVERY_NS;
    snprintf(c->who, sizeof(c->who), "modbus:%s", c->bus.name);
    hub_backoff_init(&c->reconnect, DRV_MB_RECONNECT_BASE_NS, DRV_MB_RECONNECT_MAX_NS,
                     (uint64_t)hub_mono_ns() ^ (uint64_t)(uintptr_t)c);
    static const char *const kinds[] = {"other", "timeout", "exception", "bad_reply", "connection"};
    for (int k = 0; k <= DRV_MB_FAIL_CONNECTION; k++)
        c->m_fail[k] = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER,
                                       "cityhub_modbus_poll_failures_total", "kind", kinds[k],
                                       "failed polls by kind (timeout, exception, bad_reply, ...)");

    c->devs = calloc(cfg->ndevices, sizeof(*c->devs));
    if (!c->devs)
        goto nomem;
    c->ndevs = cfg->ndevices;
    int64_t start = hub_mono_ns();
    for (size_t i = 0; i < c->ndevs; i++) {
        struct mb_dev *d = &c->devs[i];
        if (!cfg->devices[i]) {
            snprintf(err, errlen, "bus %s: device %zu missing", c->bus.name, i + 1);
            goto fail;
        }
        d->cfg = *cfg->devices[i];
        d->cfg.regs = NULL;
        d->cfg.nregs = 0;
        if (drv_modbus_check_device(cfg->devices[i], err, errlen) != 0)
            goto fail;
        d->cfg.regs = malloc(cfg->devices[i]->nregs * sizeof(*d->cfg.regs));
        if (!d->cfg.regs)
            goto nomem;
        memcpy(d->cfg.regs, cfg->devices[i]->regs, cfg->devices[i]->nregs * sizeof(*d->cfg.regs));
        d->cfg.nregs = cfg->devices[i]->nregs;
        if (d->cfg.interval_ns < 10 * HUB_NS_PER_MS ||
            d->cfg.interval_ns > DRV_MB_INTERVAL_MAX_NS) {
            snprintf(err, errlen, "device %s: interval is not 10ms..24h", d->cfg.name);
            goto fail;
        }
        if (d->cfg.unit < 0 || d->cfg.unit > 247) {
            snprintf(err, errlen, "device %s: unit %" PRId64 " is not 0..247", d->cfg.name,
                     d->cfg.unit);
            goto fail;
        }
        if (d->cfg.unit == 0 && c->bus.type == DRV_MB_BUS_RTU) {
            /* On a serial line 0 is the broadcast address: no slave answers a
             * read, and libmodbus would take any slave's reply as the answer. */
            snprintf(err, errlen, "device %s: unit 0 is the broadcast address on a serial bus",
                     d->cfg.name);
            goto fail;
        }
        d->nblocks = drv_modbus_plan(&d->cfg, DRV_MB_POLL_MAX_GAP, d->plan, DRV_MB_MAX_REGISTERS);
        if (d->nblocks <= 0) {
            snprintf(err, errlen, "device %s: registers cannot be planned", d->cfg.name);
            goto fail;
        }
        snprintf(d->who, sizeof(d->who), "modbus:%s", d->cfg.name);
        d->next_due = start; /* the scheduler takes them in order */
        d->m_polls = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_modbus_polls_total",
                                     "device", d->cfg.name, "polls of a Modbus device");
        d->m_errors =
            hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_modbus_poll_errors_total",
                            "device", d->cfg.name, "failed polls of a Modbus device");
    }
    if (c->bus.debug != DRV_MB_DEBUG_OFF && drv_mb_debug_setup(err, errlen) != 0)
        goto fail;

    char port[16];
    switch (c->bus.type) {
    case DRV_MB_BUS_TCP:
        if (c->bus.host[0] == '\0') {
            snprintf(err, errlen, "bus %s: host is required for type tcp", c->bus.name);
            goto fail;
        }
        snprintf(port, sizeof(port), "%" PRId64, c->bus.port);
        c->mb = modbus_new_tcp_pi(c->bus.host, port);
        break;
    case DRV_MB_BUS_RTU:
        if (c->bus.device[0] == '\0') {
            snprintf(err, errlen, "bus %s: device is required for type rtu", c->bus.name);
            goto fail;
        }
        c->mb = modbus_new_rtu(c->bus.device, (int)c->bus.baud, "NEO"[c->bus.parity % 3],
                               (int)c -> bus.data_bits, (int)c->bus.stop_bits);
        break;
    default:
        snprintf(err, errlen, "bus %s: unknown type %d", c->bus.name, c->bus.type);
        goto fail;
    }
    if (!c->mb) {
        snprintf(err, errlen, "bus %s: %s", c->bus.name, modbus_strerror(errno));
        goto fail;
    }
    uint32_t s, us;
    drv_mb_timeout_split(c->bus.timeout_ns, &s, &us);
    modbus_set_response_timeout(c->mb, s, us);
    int64_t bt = c->bus.timeout_ns < 500 * HUB_NS_PER_MS ? c->bus.timeout_ns : 500 * HUB_NS_PER_MS;
    drv_mb_timeout_split(bt, &s, &us);
    modbus_set_byte_timeout(c->mb, s, us);
    /* No libmodbus recovery: PROTOCOL would sleep a whole response timeout
     * after every bad reply, holding the bus; we flush before each request. */
    modbus_set_error_recovery(c->mb, MODBUS_ERROR_RECOVERY_NONE);
    if (c->bus.debug != DRV_MB_DEBUG_OFF)
        modbus_set_debug(c->mb, 1);
    *out = c;
    return 0;

nomem:
    snprintf(err, errlen, "modbus: out of memory");
fail:
    if (c)
        drv_modbus_bus_free(c);
    return -1;
}

void drv_modbus_bus_free(void *ctx)
{
    struct mb_ctx *c = ctx;
    if (!c)
        return;
    if (c->mb) {
        if (c->connected)
            modbus_close(c->mb);
        modbus_free(c->mb);
    }
    for (size_t i = 0; c->devs && i < c->ndevs; i++)
        free(c->devs[i].cfg.regs);
    free(c->devs);
    hub_cond_destroy(&c->lock, &c->wake);
    free(c);
}

void drv_modbus_bus_stats(void *ctx, struct drv_stats *st)
{
    struct mb_ctx *c = ctx;
    st->sources += c->ndevs;
    st->failing += atomic_load(&c->failing);
}

const char *drv_modbus_bus_name(void *ctx)
{
    return ((struct mb_ctx *)ctx)->bus.name;
}
