/* drivers/modbus/cmd_plan.c — `cityhub plan -c FILE [--device NAME]`: each
 * configured Modbus device's read requests, as the poller will send them
 * (drv_modbus_plan over the device as resolved, its profile applied),
 * without touching a bus; and what a poll costs on a serial line.
 *
 * The line time of one request at B baud, 11-bit characters (start, 8
 * data, parity or a second stop bit, stop): 8 request bytes, then the reply
 * (5 bytes plus 2 per register, or one per 8 bits), each frame followed by
 * the 3.5-character silence the standard requires (fixed at 1.75 ms above
 * 19200 baud). The slave's own turnaround comes on top. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/cmd_common.h"
#include "drivers/modbus/modbus_priv.h"

double drv_modbus_line_ms(const struct drv_modbus_block *b, int nblocks, double baud)
{
    double ch = 11.0 / baud * 1000.0;
    double t35 = baud > 19200 ? 1.75 : 3.5 * ch;
    double ms = 0;
    for (int i = 0; i < nblocks; i++) {
        int bits = b[i].table == DRV_MB_COIL || b[i].table == DRV_MB_DISCRETE;
        double reply = 5.0 + (bits ? (b[i].count + 7) / 8 : 2.0 * b[i].count);
        ms += (8.0 + reply) * ch + 2 * t35;
    }
    return ms;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub plan -c FILE [--device NAME]\n"
               "\n"
               "Print each Modbus device's read requests as the hub will send them: table,\n"
               "function code, start address, count and the fields each covers; then the\n"
               "requests per poll against one per field, and the line time of one poll at\n"
               "9600 and 115200 baud (11-bit characters, 3.5-character silences). No bus is\n"
               "touched.\n");
}

static void print_device(const struct drv_modbus_device *d, const struct drv_modbus_block *b,
                         int nb)
{
    printf("device %s (bus %s, unit %lld%s%s): %zu fields, max_gap %lld, max_registers %lld\n",
           d->name, d->bus, (long long)d->unit, d->profile[0] ? ", profile " : "", d->profile,
           d->nregs, (long long)d->max_gap, (long long)d->max_registers);
    for (int k = 0; k < nb; k++) {
        printf("  %-8s fc %d  %5u +%-4u", drv_mb_table_name(b[k].table),
               drv_mb_table_fc(b[k].table), b[k].address, b[k].count);
        const char *sep = " ";
        for (size_t i = 0; i < d->nregs; i++) {
            const struct drv_modbus_register *r = &d->regs[i];
            if (r->table == b[k].table && r->address >= b[k].address &&
                r->address + drv_modbus_reg_width(r) <= (int64_t)b[k].address + b[k].count) {
                printf("%s%s", sep, r->field);
                sep = ", ";
            }
        }
        printf("\n");
    }
    struct drv_modbus_block each[DRV_MB_MAX_REGISTERS];
    for (size_t i = 0; i < d->nregs && i < DRV_MB_MAX_REGISTERS; i++)
        each[i] = (struct drv_modbus_block){d->regs[i].table, (uint16_t)d->regs[i].address,
                                            (uint16_t)drv_modbus_reg_width(&d->regs[i])};
    int ne = (int)d->nregs;
    printf("  %d request%s per poll: %.1f ms on the line at 9600 baud, %.1f ms at 115200; one "
           "request per field: %d, %.1f ms and %.1f ms\n",
           nb, nb == 1 ? "" : "s", drv_modbus_line_ms(b, nb, 9600),
           drv_modbus_line_ms(b, nb, 115200), ne, drv_modbus_line_ms(each, ne, 9600),
           drv_modbus_line_ms(each, ne, 115200));
}

int drv_modbus_cmd_plan(int argc, char **argv, const struct drv_cmd_env *env)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *only = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:d:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'd':
            only = optarg;
            break;
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        default:
            usage(stderr);
            return CMD_EXIT_USAGE;
        }
    }
    if (!path || optind < argc) {
        fprintf(stderr, "cityhub plan: %s\n\n", path ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    const struct drv_config *cfg = env->load(env, path);
    if (!cfg)
        return CMD_EXIT_USAGE;
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    size_t shown = 0;
    int rc = CMD_EXIT_OK;
    for (size_t i = 0; i < devs->n; i++) {
        const struct drv_modbus_device *in = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
        if (only && strcmp(only, in->name) != 0)
            continue;
        struct drv_modbus_device d;
        char err[256];
        struct drv_modbus_block b[DRV_MB_MAX_REGISTERS];
        if (drv_modbus_device_resolve(in, &d, err, sizeof(err)) != 0) {
            fprintf(stderr, "cityhub plan: %s\n", err);
            rc = CMD_EXIT_FAIL;
            continue;
        }
        int nb = drv_modbus_plan(&d, d.max_gap >= 0 ? (unsigned)d.max_gap : 0u, b,
                                 DRV_MB_MAX_REGISTERS);
        if (nb < 0) {
            fprintf(stderr, "cityhub plan: device %s: its fields cannot be planned\n", d.name);
            rc = CMD_EXIT_FAIL;
        } else {
            print_device(&d, b, nb);
        }
        drv_modbus_device_release(&d);
        shown++;
    }
    if (only && shown == 0) {
        fprintf(stderr, "cityhub plan: no device \"%s\" in %s\n", only, path);
        return CMD_EXIT_USAGE;
    }
    return rc;
}
