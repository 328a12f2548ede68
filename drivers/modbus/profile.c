/* drivers/modbus/profile.c — a device's effective register map. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/modbus_priv.h"

int drv_modbus_device_resolve(const struct drv_modbus_device *in, struct drv_modbus_device *out,
                              char *err, size_t errlen)
{
    *out = *in;
    out->regs = NULL;
    out->nregs = 0;
    if (in->profile[0]) {
        snprintf(err, errlen, "device %s: profile \"%s\" not found", in->name, in->profile);
        return -1;
    }
    if (in->nregs) {
        out->regs = malloc(in->nregs * sizeof(*out->regs));
        if (!out->regs) {
            snprintf(err, errlen, "device %s: out of memory", in->name);
            return -1;
        }
        memcpy(out->regs, in->regs, in->nregs * sizeof(*out->regs));
        out->nregs = in->nregs;
    }
    return 0;
}

void drv_modbus_device_release(struct drv_modbus_device *d)
{
    free(d->regs);
    d->regs = NULL;
    d->nregs = 0;
}
