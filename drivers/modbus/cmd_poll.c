/* drivers/modbus/cmd_poll.c — `cityhub poll -c FILE --device NAME --once`:
 * poll one configured device once, now, as the daemon would (its profile
 * applied, the same requests, the same decoding), and print its fields with
 * their units, or the error the daemon would log. The last step of
 * commissioning before `cityhub run`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "drivers/modbus/cmd_common.h"
#include "hub/clock.h"

#define CMD "poll"

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub poll -c FILE --device NAME --once\n"
               "\n"
               "Poll the device NAME of the configuration FILE once, now, on its bus, as\n"
               "`cityhub run` would (profile applied, same requests and decoding), and print\n"
               "each field with its unit, one per line (\"voltage = 230.1 V\"), or the error\n"
               "the daemon would log. FILE is checked first, as `cityhub check` does.\n"
               "\n"
               "  -c, --config FILE   configuration (YAML)\n"
               "  --device NAME       a device of FILE (devices[].name)\n"
               "  --once              poll once and exit. Required: continuous polling is\n"
               "                      the daemon's job (cityhub run -c FILE), with its\n"
               "                      schedule, backoff, journal and outputs; this command\n"
               "                      only checks that the device reads as configured.\n"
               "\n"
               "Do not run it against a serial line the daemon is polling at the same time:\n"
               "two masters on one RS-485 line garble each other's frames.\n"
               "\n"
               "exit status: 0 read, 1 the poll failed (printed), 2 bad usage or an invalid\n"
               "FILE\n");
}

static const struct drv_modbus_register *reg_of(const struct drv_modbus_device *d,
                                                const char *field)
{
    for (size_t i = 0; i < d->nregs; i++)
        if (!strcmp(d->regs[i].field, field))
            return &d->regs[i];
    return NULL;
}

/* A float32 read as it is (no scale, no offset) is shown as the single it
 * was on the wire ("228.94186", not 228.94186401367188); any other float in
 * full. */
static void print_field(const struct hub_field *f, const struct drv_modbus_register *reg)
{
    const char *unit = reg ? reg->unit : "";
    int single = reg && reg->type == DRV_MB_FLOAT32 && reg->scale == 1 && reg->offset == 0;
    char v[64];
    switch (f->type) {
    case HUB_FIELD_INT:
        snprintf(v, sizeof(v), "%" PRId64, f->v.i);
        break;
    case HUB_FIELD_UINT:
        snprintf(v, sizeof(v), "%" PRIu64, f->v.u);
        break;
    case HUB_FIELD_FLOAT:
        cmd_float_name(f->v.f, single, v, sizeof(v));
        break;
    case HUB_FIELD_BOOL:
        snprintf(v, sizeof(v), "%s", f->v.b ? "true" : "false");
        break;
    case HUB_FIELD_STRING:
        printf("%s = \"%s\"%s%s\n", f->key, f->v.s, unit[0] ? " " : "", unit);
        return;
    default:
        snprintf(v, sizeof(v), "?");
        break;
    }
    printf("%s = %s%s%s\n", f->key, v, unit[0] ? " " : "", unit);
}

int drv_modbus_cmd_poll(int argc, char **argv, const struct drv_cmd_env *env)
{
    enum { OPT_DEVICE = CMD_OPT_FIRST_FREE, OPT_ONCE };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"once", no_argument, NULL, OPT_ONCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *name = NULL;
    int once = 0, ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        case 'c':
            config = optarg;
            break;
        case OPT_DEVICE:
            name = optarg;
            break;
        case OPT_ONCE:
            once = 1;
            break;
        default:
            return cmd_bad_option(CMD, ch, argv);
        }
    }
    if (optind < argc)
        return cmd_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    if (!config)
        return cmd_usage_error(CMD, "-c FILE is required");
    if (!name)
        return cmd_usage_error(CMD, "--device NAME is required");
    if (!once)
        return cmd_usage_error(CMD, "--once is required: this command polls a device once, to "
                                    "check it; continuous polling is the daemon's job (cityhub "
                                    "run -c FILE)");

    const struct drv_config *cfg = env->load(env, config);
    if (!cfg)
        return CMD_EXIT_USAGE; /* the loader printed why */
    const struct hub_cfg_list *buses = &cfg->sect[DRV_MB_SECT_BUSES];
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    const struct drv_modbus_device *dev = NULL;
    for (size_t i = 0; i < devs->n && !dev; i++)
        if (!strcmp(HUB_CFG_ITEM(devs, i, struct drv_modbus_device)->name, name))
            dev = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
    if (!dev) {
        char names[512];
        size_t off = 0;
        names[0] = '\0';
        for (size_t i = 0; i < devs->n && off < sizeof(names); i++)
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
                                    HUB_CFG_ITEM(devs, i, struct drv_modbus_device)->name);
        if (off >= sizeof(names))
            snprintf(names + sizeof(names) - 5, 5, "...");
        if (devs->n)
            return cmd_usage_error(CMD, "%s has no device \"%s\" (devices: %s)", config, name,
                                   names);
        return cmd_usage_error(CMD, "%s has no Modbus devices", config);
    }
    const struct drv_modbus_bus *bus = NULL;
    for (size_t i = 0; i < buses->n && !bus; i++)
        if (!strcmp(HUB_CFG_ITEM(buses, i, struct drv_modbus_bus)->name, dev->bus))
            bus = HUB_CFG_ITEM(buses, i, struct drv_modbus_bus);
    if (!bus) { /* check refuses this; kept for safety */
        fprintf(stderr, "cityhub poll: device %s: unknown bus \"%s\"\n", dev->name, dev->bus);
        return CMD_EXIT_USAGE;
    }

    struct drv_modbus_device res;
    char err[512];
    if (drv_modbus_device_resolve(dev, &res, err, sizeof(err)) != 0) {
        fprintf(stderr, "cityhub poll: %s\n", err);
        return CMD_EXIT_USAGE;
    }
    char where[300];
    if (bus->type == DRV_MB_BUS_RTU)
        snprintf(where, sizeof(where), "rtu %s %" PRId64 " %" PRId64 "%c%" PRId64, bus->device,
                 bus->baud, bus->data_bits, "NEO"[bus->parity % 3], bus -> stop_bits);
    else if (strchr(bus->host, ':'))
        snprintf(where, sizeof(where), "tcp [%s]:%" PRId64, bus->host, bus->port);
    else
        snprintf(where, sizeof(where), "tcp %s:%" PRId64, bus->host, bus->port);

    hub_reading_t *r = NULL;
    int64_t t0 = hub_mono_ns();
    int rc = drv_modbus_poll_once(bus, &res, &r, err, sizeof(err));
    char took[32];
    cmd_duration_name(hub_mono_ns() - t0, took, sizeof(took));
    if (rc != 0) {
        fprintf(stderr, "cityhub poll: device %s (unit %" PRId64 " on bus %s, %s): %s\n", res.name,
                res.unit, bus->name, where, err);
        drv_modbus_device_release(&res);
        return CMD_EXIT_FAIL;
    }
    size_t n = hub_reading_field_count(r);
    fprintf(stderr,
            "cityhub poll: device %s (unit %" PRId64 " on bus %s, %s): measurement %s, %zu "
            "field%s in %s\n",
            res.name, res.unit, bus->name, where, hub_reading_measurement(r), n, n == 1 ? "" : "s",
            took);
    for (size_t i = 0; i < n; i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        print_field(f, reg_of(&res, f->key));
    }
    hub_reading_free(r);
    drv_modbus_device_release(&res);
    return CMD_EXIT_OK;
}
