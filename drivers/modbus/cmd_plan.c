/* drivers/modbus/cmd_plan.c — `cityhub plan -c FILE [--device NAME]`: each
 * configured Modbus device's read requests, as the poller will send them
 * (drv_modbus_plan_fields over the device as resolved, its profile
 * applied), and the fields each request reads; then requests per poll
 * against one request per field. No bus is touched.
 *
 * On a serial bus it also says how long one poll keeps the line busy, from
 * the bus's own settings: per request, the request (8 bytes) and the reply
 * (5 bytes plus 2 per register, or 1 per 8 bits), each character 1 start +
 * data_bits + parity + stop_bits bits long, the 3.5-character silence
 * before the reply (fixed at 1.75 ms above 19200 baud, as the standard
 * says), and the bus's `pause` after it. The slave's own turnaround comes
 * on top. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/adu.h"
#include "drivers/modbus/cmd_common.h"
#include "drivers/modbus/modbus_priv.h"

#define CMD "plan"
#define LINE_WIDTH 100 /* field lists wrap here */

/* The line time of one poll of these requests on a serial bus: its
 * character length (start, data, parity, stop bits), the 3.5-character
 * silence the standard requires (1.75 ms above 19200 baud), and the bus's
 * pause after each exchange. */
static double bus_line_ms(const struct drv_modbus_bus *bus, const struct drv_modbus_block *b,
                          size_t n)
{
    double baud = bus->baud > 0 ? (double)bus->baud : 9600.0;
    double bits = 1.0 + (double)bus->data_bits + (bus->parity ? 1.0 : 0.0) + (double)bus->stop_bits;
    double ch = bits / baud * 1000.0;
    double t35 = baud > 19200 ? 1.75 : 3.5 * ch;
    double ms = 0;
    for (size_t i = 0; i < n; i++) {
        int bit_table = b[i].table == DRV_MB_COIL || b[i].table == DRV_MB_DISCRETE;
        double reply = 5.0 + (bit_table ? (b[i].count + 7) / 8 : 2.0 * b[i].count);
        ms += (8.0 + reply) * ch + t35 + (double)bus->pause_ns / 1e6;
    }
    return ms;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub plan -c FILE [--device NAME]\n"
               "\n"
               "Print the read requests the hub sends to each Modbus device of the\n"
               "configuration FILE at every poll, as `cityhub run` plans them (the device's\n"
               "profile applied, its max_gap and max_registers): table, function code, first\n"
               "address, count, and the fields each request reads. Then the requests per poll\n"
               "against one request per field and, on a serial bus, how long one poll keeps\n"
               "the line busy at the bus's settings (the slave's own turnaround comes on top).\n"
               "No bus is touched. FILE is checked first, as `cityhub check` does.\n"
               "\n"
               "  -c, --config FILE   configuration (YAML)\n"
               "  --device NAME       only this device (devices[].name)\n"
               "\n"
               "exit status: 0 done, 2 bad usage or an invalid FILE\n");
}

static void bus_name(const struct drv_modbus_bus *bus, char *buf, size_t len)
{
    if (!bus)
        snprintf(buf, len, "?");
    else if (bus->type == DRV_MB_BUS_RTU)
        snprintf(buf, len, "rtu %s %" PRId64 " %" PRId64 "%c%" PRId64, bus->device, bus->baud,
                 bus->data_bits, "NEO"[bus->parity % 3], bus -> stop_bits);
    else if (strchr(bus->host, ':'))
        snprintf(buf, len, "tcp [%s]:%" PRId64, bus->host, bus->port);
    else
        snprintf(buf, len, "tcp %s:%" PRId64, bus->host, bus->port);
}

struct totals {
    size_t devices, requests, fields;
};

/* One device: its requests and their fields. Returns 0, or -1 (printed). */
static int print_device(const struct drv_modbus_device *d, const struct drv_modbus_bus *bus,
                        struct totals *tot)
{
    struct drv_modbus_read_plan p;
    unsigned gap = d->max_gap >= 0 ? (unsigned)d->max_gap : 0u;
    if (drv_modbus_plan_fields(d, gap, &p) < 0) {
        fprintf(stderr, "cityhub plan: device %s: its fields cannot be planned\n", d->name);
        return -1;
    }
    char where[300];
    bus_name(bus, where, sizeof(where));
    printf("device %s: unit %" PRId64 " on bus %s (%s)", d->name, d->unit, d->bus, where);
    if (d->profile[0])
        printf(", profile %s", d->profile);
    printf("; max_gap %" PRId64 ", max_registers %" PRId64 "\n", d->max_gap, d->max_registers);
    for (size_t b = 0; b < p.nblocks; b++) {
        const struct drv_modbus_block *blk = &p.block[b];
        int col = printf("  %-8s fc %d  address %5u  count %4u  ", drv_mb_table_name(blk->table),
                         drv_mb_table_fc(blk->table), blk->address, blk->count);
        int indent = col, first = 1;
        for (size_t i = 0; i < d->nregs; i++) {
            if (!(p.fields[b] & (1ull << i)))
                continue;
            int len = (int)strlen(d->regs[i].field);
            if (!first && col + 2 + len > LINE_WIDTH) {
                printf(",\n%*s", indent, "");
                col = indent;
            } else if (!first) {
                col += printf(", ");
            }
            col += printf("%s", d->regs[i].field);
            first = 0;
        }
        printf("\n");
    }
    printf("  %zu request%s per poll for %zu field%s (one request per field: %zu)", p.nblocks,
           p.nblocks == 1 ? "" : "s", d->nregs, d->nregs == 1 ? "" : "s", d->nregs);
    if (bus && bus->type == DRV_MB_BUS_RTU) {
        struct drv_modbus_block each[DRV_MB_MAX_REGISTERS];
        for (size_t i = 0; i < d->nregs; i++)
            each[i] = (struct drv_modbus_block){d->regs[i].table, (uint16_t)d->regs[i].address,
                                                (uint16_t)drv_modbus_reg_width(&d->regs[i])};
        printf("\n  one poll keeps the line busy %.1f ms (one request per field: %.1f ms)",
               bus_line_ms(bus, p.block, p.nblocks), bus_line_ms(bus, each, d->nregs));
    }
    printf("\n");
    tot->devices++;
    tot->requests += p.nblocks;
    tot->fields += d->nregs;
    return 0;
}

int drv_modbus_cmd_plan(int argc, char **argv, const struct drv_cmd_env *env)
{
    enum { OPT_DEVICE = CMD_OPT_FIRST_FREE };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *only = NULL;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        case 'c':
            path = optarg;
            break;
        case OPT_DEVICE:
            only = optarg;
            break;
        default:
            return cmd_bad_option(CMD, ch, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    if (!path)
        return cmd_usage_error(CMD, "-c FILE is required");

    const struct drv_config *cfg = env->load(env, path);
    if (!cfg)
        return CMD_EXIT_USAGE; /* the loader printed why */
    const struct hub_cfg_list *buses = &cfg->sect[DRV_MB_SECT_BUSES];
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    struct totals tot = {0, 0, 0};
    int rc = CMD_EXIT_OK, found = 0;
    for (size_t i = 0; i < devs->n; i++) {
        const struct drv_modbus_device *in = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
        if (only && strcmp(only, in->name) != 0)
            continue;
        found = 1;
        const struct drv_modbus_bus *bus = NULL;
        for (size_t k = 0; k < buses->n && !bus; k++)
            if (!strcmp(HUB_CFG_ITEM(buses, k, struct drv_modbus_bus)->name, in->bus))
                bus = HUB_CFG_ITEM(buses, k, struct drv_modbus_bus);
        struct drv_modbus_device d;
        char err[512];
        if (drv_modbus_device_resolve(in, &d, err, sizeof(err)) != 0) {
            fprintf(stderr, "cityhub plan: %s\n", err);
            rc = CMD_EXIT_USAGE;
            continue;
        }
        if (print_device(&d, bus, &tot) != 0)
            rc = CMD_EXIT_USAGE;
        drv_modbus_device_release(&d);
    }
    if (only && !found) {
        char names[512];
        size_t off = 0;
        names[0] = '\0';
        for (size_t i = 0; i < devs->n && off < sizeof(names); i++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
                                    HUB_CFG_ITEM(devs, i, struct drv_modbus_device)->name);
        if (off >= sizeof(names))
            snprintf(names + sizeof(names) - 5, 5, "...");
        if (devs->n)
            return cmd_usage_error(CMD, "%s has no device \"%s\" (devices: %s)", path, only, names);
        return cmd_usage_error(CMD, "%s has no Modbus devices", path);
    }
    if (!only)
        printf("total: %zu request%s per poll for %zu device%s and %zu field%s (one request per "
               "field: %zu)\n",
               tot.requests, tot.requests == 1 ? "" : "s", tot.devices, tot.devices == 1 ? "" : "s",
               tot.fields, tot.fields == 1 ? "" : "s", tot.fields);
    return rc;
}
