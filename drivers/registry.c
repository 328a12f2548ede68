/* drivers/registry.c — every driver in this build, one line each.
 * No dlopen on a gateway: adding a protocol is adding its descriptor here. */
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"

extern const struct drv_ops drv_modbus_ops;
extern const struct drv_ops drv_influx_ops;
extern const struct drv_ops drv_mqtt_ops;
extern const struct drv_ops drv_mqtt_live_ops;

static const struct drv_ops *const registry[] = {
    &drv_modbus_ops,    /* input: buses, devices (Modbus TCP and RTU) */
    &drv_mqtt_ops,      /* input: mqtt_inputs (subscriptions; SenML, JSON, line protocol...) */
    &drv_influx_ops,    /* output: type influxdb (line protocol over HTTP) */
    &drv_mqtt_live_ops, /* output: type mqtt (live values, retained) */
};

const struct drv_ops *const *drv_all(size_t *n)
{
    *n = sizeof(registry) / sizeof(registry[0]);
    return registry;
}

const struct drv_ops *drv_find(enum drv_kind kind, const char *name)
{
    for (size_t i = 0; name && i < sizeof(registry) / sizeof(registry[0]); i++)
        if (registry[i]->kind == kind && strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

void drv_names(enum drv_kind kind, char *buf, size_t len)
{
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]) && off < len; i++)
        if (registry[i]->kind == kind)
            off +=
                (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", registry[i]->name);
}
