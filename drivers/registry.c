/* drivers/registry.c — every driver in this build, one line each.
 * No dlopen on a gateway: adding a protocol is adding its ops here. */
#include <string.h>

#include "drivers/driver.h"
#include "drivers/influx/influx.h"
#include "drivers/modbus/modbus_drv.h"

static const struct drv_output_ops *const outputs[] = {
    &drv_influx_ops,
};

static const struct drv_input_ops *const inputs[] = {
    &drv_modbus_input_ops,
};

const struct drv_output_ops *drv_output_find(const char *type)
{
    for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
        if (strcmp(outputs[i]->type, type) == 0)
            return outputs[i];
    return NULL;
}

const struct drv_input_ops *drv_input_find(const char *type)
{
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        if (strcmp(inputs[i]->type, type) == 0)
            return inputs[i];
    return NULL;
}

size_t drv_output_types(const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]) && n < max; i++)
        names[n++] = outputs[i]->type;
    return n;
}
