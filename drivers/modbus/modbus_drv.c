/* drivers/modbus/modbus_drv.c — the Modbus input's descriptor: the sections
 * it owns (buses, devices), and one runner per bus that has devices.
 *
 * init groups the devices by bus and builds each bus (bus.c) with its
 * transport chosen by the bus's type: modbus_new_tcp_pi or modbus_new_rtu.
 * A bus without devices is not polled (logged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "drivers/modbus/modbus_priv.h"
#include "hub/log.h"

struct mb_driver {
    void **bus; /* one per polled bus */
    size_t nbus;
};

static void mb_exit(void *ctx)
{
    struct mb_driver *m = ctx;
    if (!m)
        return;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_free(m->bus[i]);
    free(m->bus);
    free(m);
}

static int mb_init(const void *cfgp, const struct drv_env *env, void **out, char *err,
                   size_t errlen)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *buses = &cfg->sect[DRV_MB_SECT_BUSES];
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    struct drv_modbus_input_cfg *in = NULL;
    struct mb_driver *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m || (buses->n && !(m->bus = calloc(buses->n, sizeof(*m->bus)))) ||
        !(in = malloc(sizeof(*in)))) {
        snprintf(err, errlen, "modbus: out of memory");
        goto fail;
    }
    for (size_t b = 0; b < buses->n; b++) {
        const struct drv_modbus_bus *bus = HUB_CFG_ITEM(buses, b, struct drv_modbus_bus);
        memset(in, 0, sizeof(*in));
        in->bus = bus;
        for (size_t d = 0; d < devs->n; d++) {
            const struct drv_modbus_device *dev = HUB_CFG_ITEM(devs, d, struct drv_modbus_device);
            if (strcmp(dev->bus, bus->name) != 0)
                continue;
            if (in->ndevices == DRV_MB_MAX_DEVICES) {
                snprintf(err, errlen, "bus %s: more than %d devices", bus->name,
                         DRV_MB_MAX_DEVICES);
                goto fail;
            }
            in->devices[in->ndevices++] = dev;
        }
        if (in->ndevices == 0) {
            hub_warn("modbus", "bus %s has no devices; not polling it", bus->name);
            continue;
        }
        if (drv_modbus_bus_new(in, env, &m->bus[m->nbus], err, errlen) != 0)
            goto fail;
        m->nbus++;
    }
    free(in);
    *out = m;
    return 0;
fail:
    free(in);
    mb_exit(m);
    return -1;
}

static size_t mb_runners(void *ctx)
{
    return ((struct mb_driver *)ctx)->nbus;
}

static void mb_run(void *ctx, size_t i)
{
    struct mb_driver *m = ctx;
    if (i < m->nbus)
        drv_modbus_bus_run(m->bus[i]);
}

static void mb_stop(void *ctx)
{
    struct mb_driver *m = ctx;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_stop(m->bus[i]);
}

static void mb_stats(void *ctx, struct drv_stats *st)
{
    struct mb_driver *m = ctx;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_stats(m->bus[i], st);
}

static void mb_version(char *buf, size_t len)
{
    snprintf(buf, len, "libmodbus %s", LIBMODBUS_VERSION_STRING);
}

const struct drv_ops drv_modbus_ops = {
    .name = "modbus",
    .kind = DRV_INPUT,
    .help = "Modbus TCP and RTU (RS-485) devices, polled by one scheduler per bus",
    /* A poll keeps up to 64 blocks x 125 registers (16 KiB) on the stack,
     * plus libmodbus's frames: 128 KiB leave ample room. */
    .stack_size = (size_t)128 << 10,
    .version = mb_version,
    .sections = drv_modbus_sections,
    .check = drv_modbus_check,
    .init = mb_init,
    .runners = mb_runners,
    .run = mb_run,
    .stop = mb_stop,
    .stats = mb_stats,
    .exit = mb_exit,
};
