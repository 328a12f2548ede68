/* drivers/modbus/schema.c — the Modbus input's data dictionary
 * (drv_modbus_ops.schema): for every configured device, as it runs (its
 * profile applied), one entry per register: the device, its measurement,
 * the field, its type in the store (the register's `store` rule), unit and
 * description, and the tags of its readings (device, then the device's
 * own). The status points (cityhub_device) are the same for every device
 * and are documented once, in docs/data.md. */
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/modbus_priv.h"
#include "drivers/modbus/profile.h"
#include "hub/log.h"

void drv_modbus_schema(const void *cfgp, drv_schema_fn emit, void *arg)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    char err[512];

    for (size_t i = 0; i < devs->n; i++) {
        const struct drv_modbus_device *in = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
        struct drv_modbus_device d;
        if (drv_modbus_device_resolve(in, &d, err, sizeof(err)) != 0) {
            hub_warn("modbus", "%s", err); /* a checked config resolves */
            continue;
        }
        /* as stable as the source's name: the config's, or the profile's */
        const char *measurement = in->measurement;
        const struct drv_mb_profile *p =
            in->profile[0] ? drv_mb_profile_find(drv_mb_profiles(), in->profile) : NULL;
        if (strcmp(d.measurement, in->measurement) != 0)
            measurement = p && !strcmp(d.measurement, p->measurement) ? p->measurement : "modbus";
        const char *tags[HUB_CFG_TAGS_MAX + 2];
        size_t nt = 0;
        tags[nt++] = "device";
        for (size_t t = 0; t < d.tags.n && t < HUB_CFG_TAGS_MAX; t++)
            tags[nt++] = d.tags.tag[t].key;
        tags[nt] = NULL;
        for (size_t r = 0; r < d.nregs; r++) {
            const struct drv_modbus_register *reg = &d.regs[r];
            struct drv_schema_field f = {
                .source = in->name, /* the config's: the caller may keep it */
                .measurement = measurement,
                .field = reg->field,
                .type = drv_mb_store_type(reg),
                .unit = reg->unit,
                .description = reg->description,
                .tags = tags,
            };
            emit(arg, &f);
        }
        drv_modbus_device_release(&d);
    }
}
