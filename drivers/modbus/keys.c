/* drivers/modbus/keys.c — the config of the Modbus input as data: the keys
 * of a bus, a device and a register, the two sections the driver owns
 * (buses, devices), and the rules that span keys (drv_modbus_check). The
 * loader in firmware/ walks these tables; enum choices follow the enums of
 * modbus_drv.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/modbus_drv.h"
#include "drivers/modbus/profile.h"
#include "hub/accept.h"

const char *const drv_modbus_bus_types[] = {"tcp", "rtu", NULL}; /* drv_modbus_bus_type */
static const char *const parities[] = {"N", "E", "O", NULL};     /* drv_modbus_bus.parity */
static const char *const tables[] = {"holding", "input", "coil", "discrete",
                                     NULL}; /* drv_modbus_table */
static const char *const types[] = {
    "uint16", "int16",   "uint32", "int32",  "float32", "uint64",
    "int64",  "float64", "bool",   "string", NULL};                         /* drv_modbus_type */
static const char *const orders[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL}; /* drv_modbus_order */
static const char *const stores[] = {"auto", "float", "int", "uint", NULL}; /* drv_modbus_store */
static const char *const on_off[] = {"off", "on", NULL};
static const char *const debugs[] = {"off", "frames", NULL}; /* drv_modbus_debug */

#define MS 1000000LL

#define BUS(m) offsetof(struct drv_modbus_bus, m)
const struct hub_cfg_key drv_modbus_bus_keys[] = {
    HUB_CFG_KEY("name", HUB_CFG_STRING, NULL, true, BUS(name),
                sizeof(((struct drv_modbus_bus *)0)->name), 0, 0, NULL,
                "name of the bus, referred to by devices"),
    HUB_CFG_KEY("type", HUB_CFG_ENUM, NULL, true, BUS(type), 0, 0, 0, drv_modbus_bus_types,
                "tcp (Modbus TCP) or rtu (serial RS-485)"),
    HUB_CFG_KEY("host", HUB_CFG_STRING, NULL, false, BUS(host),
                sizeof(((struct drv_modbus_bus *)0)->host), 0, 0, NULL,
                "tcp: host name, IPv4 or IPv6 address of the slave or gateway"),
    HUB_CFG_KEY("port", HUB_CFG_INT, "502", false, BUS(port), 0, 1, 65535, NULL, "tcp: port"),
    HUB_CFG_KEY("timeout", HUB_CFG_DURATION, "1s", false, BUS(timeout_ns), 0, 1 * MS,
                DRV_MB_TIMEOUT_MAX_NS, NULL, "how long to wait for a reply to one request"),
    HUB_CFG_KEY("device", HUB_CFG_STRING, NULL, false, BUS(device),
                sizeof(((struct drv_modbus_bus *)0)->device), 0, 0, NULL,
                "rtu: serial device, e.g. /dev/ttyUSB0"),
    HUB_CFG_KEY("baud", HUB_CFG_INT, "9600", false, BUS(baud), 0, 50, 4000000, NULL,
                "rtu: bits per second"),
    HUB_CFG_KEY("parity", HUB_CFG_ENUM, "N", false, BUS(parity), 0, 0, 0, parities,
                "rtu: N (none), E (even) or O (odd)"),
    HUB_CFG_KEY("data_bits", HUB_CFG_INT, "8", false, BUS(data_bits), 0, 7, 8, NULL, "rtu: 7 or 8"),
    HUB_CFG_KEY("stop_bits", HUB_CFG_INT, "1", false, BUS(stop_bits), 0, 1, 2, NULL, "rtu: 1 or 2"),
    HUB_CFG_KEY("pause", HUB_CFG_DURATION, "5ms", false, BUS(pause_ns), 0, 0, DRV_MB_PAUSE_MAX_NS,
                NULL, "rtu: silence kept on the line between two requests"),
    HUB_CFG_KEY("retries", HUB_CFG_INT, "0", false, BUS(retries), 0, 0, 5, NULL,
                "times a request that timed out or got a bad reply is sent again at once"),
    HUB_CFG_KEY("rs485", HUB_CFG_ENUM, "off", false, BUS(rs485), 0, 0, 0, on_off,
                "rtu: on switches the serial port to the kernel's RS-485 mode (TIOCSRS485), "
                "for boards whose transceiver direction is driven by the UART"),
    HUB_CFG_KEY(
        "debug", HUB_CFG_ENUM, "off", false, BUS(debug), 0, 0, 0, debugs,
        "frames: log every request and reply on this bus in hex (stderr), for commissioning"),
    HUB_CFG_END,
};

#define DEV(m) offsetof(struct drv_modbus_device, m)
const struct hub_cfg_key drv_modbus_device_keys[] = {
    HUB_CFG_KEY("name", HUB_CFG_STRING, NULL, true, DEV(name),
                sizeof(((struct drv_modbus_device *)0)->name), 0, 0, NULL,
                "name of the device; becomes tag \"device\""),
    HUB_CFG_KEY("bus", HUB_CFG_STRING, NULL, true, DEV(bus),
                sizeof(((struct drv_modbus_device *)0)->bus), 0, 0, NULL,
                "name of the bus the device is on"),
    HUB_CFG_KEY("unit", HUB_CFG_INT, "1", false, DEV(unit), 0, 0, 247, NULL,
                "Modbus slave id (unit id)"),
    HUB_CFG_KEY("interval", HUB_CFG_DURATION, "10s", false, DEV(interval_ns), 0, 10 * MS,
                DRV_MB_INTERVAL_MAX_NS, NULL, "time between two polls"),
    HUB_CFG_KEY("measurement", HUB_CFG_STRING, "modbus", false, DEV(measurement),
                sizeof(((struct drv_modbus_device *)0)->measurement), 0, 0, NULL,
                "measurement of the device's readings, e.g. energy; with a profile, the "
                "profile's unless the device names another"),
    HUB_CFG_KEY("tags", HUB_CFG_TAGS, NULL, false, DEV(tags), 0, 0, 0, NULL,
                "tags added to every reading of the device"),
    HUB_CFG_KEY("max_gap", HUB_CFG_INT, "-1", false, DEV(max_gap), 0, -1, DRV_MB_MAX_REGS_PER_READ,
                NULL,
                "unused registers a request may read through to merge two fields into one "
                "request; -1: the profile's, else 0 (only adjacent fields share a request)"),
    HUB_CFG_KEY("max_registers", HUB_CFG_INT, "-1", false, DEV(max_registers), 0, -1,
                DRV_MB_MAX_REGS_PER_READ, NULL,
                "most registers one request reads (for slaves that refuse 125); -1: the "
                "profile's, else 125"),
    HUB_CFG_KEY("profile", HUB_CFG_STRING, NULL, false, DEV(profile),
                sizeof(((struct drv_modbus_device *)0)->profile), 0, 0, NULL,
                "register map from the profile library (cityhub profiles lists them); the "
                "device's registers replace the profile's of the same field and add others"),
    /* required unless a profile is named: drv_modbus_check */
    {.name = "registers",
     .type = HUB_CFG_LIST,
     .offset = DEV(registers),
     .child = drv_modbus_register_keys,
     .elem_size = sizeof(struct drv_modbus_register),
     .max_count = DRV_MB_MAX_REGISTERS,
     .help = "the registers to read, one field each (see register keys)"},
    HUB_CFG_END,
};

#define REG(m) offsetof(struct drv_modbus_register, m)
const struct hub_cfg_key drv_modbus_register_keys[] = {
    HUB_CFG_KEY("field", HUB_CFG_STRING, NULL, true, REG(field),
                sizeof(((struct drv_modbus_register *)0)->field), 0, 0, NULL,
                "field name in the reading"),
    HUB_CFG_KEY("table", HUB_CFG_ENUM, "holding", false, REG(table), 0, 0, 0, tables,
                "holding (function 3) or input (function 4) registers, coil (1) or discrete "
                "(2: discrete inputs) bits"),
    HUB_CFG_KEY("address", HUB_CFG_INT, NULL, true, REG(address), 0, 0, 65535, NULL,
                "register address, 0-based as on the wire"),
    HUB_CFG_KEY("type", HUB_CFG_ENUM, "uint16", false, REG(type), 0, 0, 0, types,
                "uint16, int16 (1 register), uint32, int32, float32 (2), uint64, int64, float64 "
                "(4), bool (a coil or discrete input, or `bit` of a register), string (`length` "
                "registers)"),
    HUB_CFG_KEY(
        "order", HUB_CFG_ENUM, "ABCD", false, REG(order), 0, 0, 0, orders,
        "byte order: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian"),
    HUB_CFG_KEY("scale", HUB_CFG_DOUBLE, "1", false, REG(scale), 0, 0, 0, NULL,
                "value = raw * scale; a scale other than 1 makes the field a float"),
    HUB_CFG_KEY("unit", HUB_CFG_STRING, NULL, false, REG(unit),
                sizeof(((struct drv_modbus_register *)0)->unit), 0, 0, NULL,
                "unit of measure, for documentation (e.g. degC)"),
    HUB_CFG_KEY("bit", HUB_CFG_INT, "-1", false, REG(bit), 0, -1, 15, NULL,
                "type bool on a holding or input register: its bit 0..15 (0 = least significant)"),
    HUB_CFG_KEY("length", HUB_CFG_INT, "0", false, REG(length), 0, 0, DRV_MB_MAX_STRING_REGS, NULL,
                "type string: its registers (two characters each)"),
    HUB_CFG_KEY("offset", HUB_CFG_DOUBLE, "0", false, REG(offset), 0, 0, 0, NULL,
                "value = raw * scale + offset"),
    HUB_CFG_KEY("store", HUB_CFG_ENUM, "auto", false, REG(store), 0, 0, 0, stores,
                "the field's type in the store: auto (float when scaled or a float, else the "
                "integer's own), float, int or uint (rounded)"),
    HUB_CFG_KEY("description", HUB_CFG_STRING, NULL, false, REG(description),
                sizeof(((struct drv_modbus_register *)0)->description), 0, 0, NULL,
                "what the field is, for the data dictionary"),
    HUB_CFG_END,
};

const struct drv_section drv_modbus_sections[] = {
    [DRV_MB_SECT_BUSES] = {"buses", "bus", drv_modbus_bus_keys, sizeof(struct drv_modbus_bus),
                           DRV_MB_MAX_BUSES,
                           "Modbus buses: tcp (host, port) or rtu (serial device, baud, parity)"},
    [DRV_MB_SECT_DEVICES] = {"devices", "device", drv_modbus_device_keys,
                             sizeof(struct drv_modbus_device), DRV_MB_MAX_ALL_DEVICES,
                             "Modbus devices, each on a bus, polled at its interval"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

/* A key the transport needs: "missing required key" when absent, "must not
 * be empty" when given empty, as the loader says for keys always required. */
static void need(struct drv_check *ck, const void *elem, const char *key, const char *sect,
                 size_t index, const char *why)
{
    if (ck->given && ck->given(ck, elem, key))
        drv_check_error(ck, elem, key, "%s must not be empty (%s)", key, why);
    else
        drv_check_error(ck, elem, key, "missing required key \"%s\" in %s[%zu] (%s)", key, sect,
                        index, why);
}

static void check_bus(const struct drv_modbus_bus *b, size_t index, struct drv_check *ck)
{
    if (b->type == DRV_MB_BUS_TCP && b->host[0] == '\0')
        need(ck, b, "host", "buses", index, "a tcp bus needs one");
    if (b->type == DRV_MB_BUS_RTU && b->device[0] == '\0')
        need(ck, b, "device", "buses", index, "an rtu bus needs one, e.g. /dev/ttyUSB0");
}

static void check_device(const struct drv_modbus_device *d, size_t index,
                         const struct drv_modbus_bus *b, struct drv_check *ck)
{
    char err[512];
    if (d->profile[0]) {
        /* the device as it will run (its profile applied), checked by the
         * rules below; reports go to the device's own register or key at
         * fault, or to its key "profile" for a register of the profile */
        struct drv_mb_profile_check pc;
        if (drv_mb_profile_check_begin(&pc, d, ck, err, sizeof(err)) != 0)
            drv_check_error(ck, d, "profile", "%s", err);
        else
            check_device(&pc.res, index, b, &pc.ck);
        drv_mb_profile_check_end(&pc);
        return;
    }
    if (d->nregs == 0) {
        if (!ck->given || !ck->given(ck, d, "registers")) /* else: the loader said "empty" */
            drv_check_error(ck, d, NULL, "missing required key \"registers\" in devices[%zu]",
                            index);
        return;
    }
    size_t reg = 0;
    const char *key = NULL;
    if (drv_modbus_check_device_at(d, &reg, &key, err, sizeof(err)) != 0)
        drv_check_error(ck, reg < d->nregs ? (const void *)&d->regs[reg] : d, key, "%s", err);
    if (b && b->type == DRV_MB_BUS_RTU && d->unit == 0)
        drv_check_error(
            ck, d, "unit",
            "device \"%s\": unit 0 is the broadcast address on a serial bus; use 1..247", d->name);
    size_t ntags = hub_accept_tag_count(ck->hub_tags, &d->tags, 1);
    if (ntags > HUB_READING_MAX_TAGS)
        drv_check_error(
            ck, d, d->tags.n ? "tags" : NULL,
            "device \"%s\": its readings would have %zu tags (%zu of the device, %zu of "
            "the hub, device and gateway); at most %d",
            d->name, ntags, d->tags.n, ntags - 2 - d->tags.n, HUB_READING_MAX_TAGS);
}

void drv_modbus_check(const void *cfgp, struct drv_check *ck)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *buses = &cfg->sect[DRV_MB_SECT_BUSES];
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    char names[256];

    for (size_t i = 0; i < buses->n; i++)
        check_bus(HUB_CFG_ITEM(buses, i, struct drv_modbus_bus), i, ck);
    size_t off = 0;
    names[0] = '\0';
    for (size_t i = 0; i < buses->n && off < sizeof(names); i++)
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
                                HUB_CFG_ITEM(buses, i, struct drv_modbus_bus)->name);
    if (off >= sizeof(names))
        snprintf(names + sizeof(names) - 5, 5, "...");

    /* devices per bus, counted as they come: the one past the limit is named */
    unsigned short *per_bus = buses->n ? calloc(buses->n, sizeof(*per_bus)) : NULL;
    for (size_t i = 0; i < devs->n; i++) {
        const struct drv_modbus_device *d = HUB_CFG_ITEM(devs, i, struct drv_modbus_device);
        const struct drv_modbus_bus *b = NULL;
        size_t bi = 0;
        for (; bi < buses->n && !b; bi++)
            if (strcmp(HUB_CFG_ITEM(buses, bi, struct drv_modbus_bus)->name, d->bus) == 0)
                b = HUB_CFG_ITEM(buses, bi, struct drv_modbus_bus);
        if (!b && buses->n >= DRV_MB_MAX_BUSES)
            drv_check_error(ck, d, "bus",
                            "unknown bus \"%s\" (only the first %d buses are read: at most %d "
                            "in buses)",
                            d->bus, DRV_MB_MAX_BUSES, DRV_MB_MAX_BUSES);
        else if (!b && buses->n)
            drv_check_error(ck, d, "bus", "unknown bus \"%s\" (defined: %s)", d->bus, names);
        else if (!b)
            drv_check_error(ck, d, "bus", "unknown bus \"%s\" (no buses are defined)", d->bus);
        else if (per_bus && ++per_bus[bi - 1] > DRV_MB_MAX_DEVICES)
            drv_check_error(ck, d, "bus",
                            "too many devices on bus \"%s\" (at most %d devices per bus, one "
                            "per unit id)",
                            d->bus, DRV_MB_MAX_DEVICES);
        check_device(d, i, b, ck);
    }
    free(per_bus);
}
