/* tests/fuzz/fuzz_config.c — ch_config_load_buffer on arbitrary bytes.
 *
 * Never crash, never leak, and keep the loader's promises: a config comes
 * back exactly when no error was counted, at most CH_MAX_ERRORS + 1 errors
 * are counted, and an accepted config is consistent (every device names a
 * defined bus and has registers, counts within their limits). The input is
 * also fed, as one string, to the duration and size parsers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/modbus_drv.h"
#include "firmware/config.h"
#include "hub/config_map.h"

static FILE *devnull;

static void check_config(const struct ch_config *c)
{
    const struct hub_cfg_list *buses = ch_config_section(c, "buses");
    const struct hub_cfg_list *devs = ch_config_section(c, "devices");
    if (!buses || !devs || buses->n > DRV_MB_MAX_BUSES || devs->n > DRV_MB_MAX_ALL_DEVICES ||
        c->noutputs > CH_MAX_OUTPUTS)
        abort();
    if (c->hub.name[0] == '\0')
        abort();
    for (size_t i = 0; i < devs->n; i++) {
        const struct drv_modbus_device *d = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
        size_t found = 0;
        for (size_t b = 0; b < buses->n; b++)
            found += strcmp(HUB_CFG_ITEM(buses, b, struct drv_modbus_bus)->name, d->bus) == 0;
        if (found != 1 || d->nregs == 0 || d->nregs > DRV_MB_MAX_REGISTERS || !d->regs)
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(HUB_CFG_ITEM(devs, j, struct drv_modbus_device)->name, d->name) == 0)
                abort();
    }
    for (size_t i = 0; i < c->noutputs; i++)
        if (!c->outputs[i].ops || !c->outputs[i].cfg)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull)
        devnull = fopen("/dev/null", "w");

    unsigned nerr = 12345;
    struct ch_config *c =
        ch_config_load_buffer("fuzz.yaml", (const char *)data, size, devnull, &nerr);
    if ((c == NULL) != (nerr > 0) || nerr > 101)
        abort();
    if (c)
        check_config(c);
    ch_config_free(c);

    if (size <= 64) {
        char s[65];
        int64_t ns;
        uint64_t bytes;
        memcpy(s, data, size);
        s[size] = '\0';
        if (hub_cfg_parse_duration(s, &ns) == 0 && ns < 0)
            abort();
        (void)hub_cfg_parse_size(s, &bytes);
    }
    return 0;
}
