/* drivers/modbus/keys.c — the config keys of a Modbus bus, device and
 * register (DESIGN.md, configuration contract v1). The loader in firmware/
 * walks these tables; enum choices follow the enums of modbus_drv.h. */
#include <stddef.h>

#include "drivers/modbus/modbus_drv.h"

const char *const drv_modbus_bus_types[] = {"tcp", "rtu", NULL}; /* drv_modbus_bus_type */
static const char *const parities[] = {"N", "E", "O", NULL};     /* drv_modbus_bus.parity */
static const char *const tables[] = {"holding", "input", NULL};  /* drv_modbus_table */
static const char *const types[] = {"uint16", "int16",   "uint32",
                                    "int32",  "float32", NULL};             /* drv_modbus_type */
static const char *const orders[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL}; /* drv_modbus_order */

#define MS 1000000LL

#define BUS(m) offsetof(struct drv_modbus_bus, m)
const struct hub_cfg_key drv_modbus_bus_keys[] = {
    {"name", HUB_CFG_STRING, NULL, true, BUS(name), sizeof(((struct drv_modbus_bus *)0)->name), 0,
     0, NULL, "name of the bus, referred to by devices"},
    {"type", HUB_CFG_ENUM, NULL, true, BUS(type), 0, 0, 0, drv_modbus_bus_types,
     "tcp (Modbus TCP) or rtu (serial RS-485)"},
    {"host", HUB_CFG_STRING, NULL, false, BUS(host), sizeof(((struct drv_modbus_bus *)0)->host), 0,
     0, NULL, "tcp: host name, IPv4 or IPv6 address of the slave or gateway"},
    {"port", HUB_CFG_INT, "502", false, BUS(port), 0, 1, 65535, NULL, "tcp: port"},
    {"timeout", HUB_CFG_DURATION, "1s", false, BUS(timeout_ns), 0, 1 * MS, DRV_MB_TIMEOUT_MAX_NS,
     NULL, "how long to wait for a reply to one request"},
    {"device", HUB_CFG_STRING, NULL, false, BUS(device),
     sizeof(((struct drv_modbus_bus *)0)->device), 0, 0, NULL,
     "rtu: serial device, e.g. /dev/ttyUSB0"},
    {"baud", HUB_CFG_INT, "9600", false, BUS(baud), 0, 50, 4000000, NULL, "rtu: bits per second"},
    {"parity", HUB_CFG_ENUM, "N", false, BUS(parity), 0, 0, 0, parities,
     "rtu: N (none), E (even) or O (odd)"},
    {"data_bits", HUB_CFG_INT, "8", false, BUS(data_bits), 0, 7, 8, NULL, "rtu: 7 or 8"},
    {"stop_bits", HUB_CFG_INT, "1", false, BUS(stop_bits), 0, 1, 2, NULL, "rtu: 1 or 2"},
    {"pause", HUB_CFG_DURATION, "5ms", false, BUS(pause_ns), 0, 0, DRV_MB_PAUSE_MAX_NS, NULL,
     "rtu: silence kept on the line between two requests"},
    {NULL, 0, NULL, false, 0, 0, 0, 0, NULL, NULL},
};

#define DEV(m) offsetof(struct drv_modbus_device, m)
const struct hub_cfg_key drv_modbus_device_keys[] = {
    {"name", HUB_CFG_STRING, NULL, true, DEV(name), sizeof(((struct drv_modbus_device *)0)->name),
     0, 0, NULL, "name of the device; becomes tag \"device\""},
    {"bus", HUB_CFG_STRING, NULL, true, DEV(bus), sizeof(((struct drv_modbus_device *)0)->bus), 0,
     0, NULL, "name of the bus the device is on"},
    {"unit", HUB_CFG_INT, "1", false, DEV(unit), 0, 0, 247, NULL, "Modbus slave id (unit id)"},
    {"interval", HUB_CFG_DURATION, "10s", false, DEV(interval_ns), 0, 10 * MS,
     DRV_MB_INTERVAL_MAX_NS, NULL, "time between two polls"},
    {"measurement", HUB_CFG_STRING, "modbus", false, DEV(measurement),
     sizeof(((struct drv_modbus_device *)0)->measurement), 0, 0, NULL,
     "measurement of the device's readings, e.g. energy"},
    {"tags", HUB_CFG_TAGS, NULL, false, DEV(tags), 0, 0, 0, NULL,
     "tags added to every reading of the device"},
    /* No member holds a profile yet: the loader rejects the key with a clear
     * message before storing anything (size 0). */
    {"profile", HUB_CFG_STRING, NULL, false, 0, 0, 0, 0, NULL,
     "register map from the profile library (not supported yet)"},
    {"registers", HUB_CFG_LIST, NULL, false, DEV(regs), 0, 0, 0, NULL,
     "the registers to read, one field each (see register keys)"},
    {NULL, 0, NULL, false, 0, 0, 0, 0, NULL, NULL},
};

#define REG(m) offsetof(struct drv_modbus_register, m)
const struct hub_cfg_key drv_modbus_register_keys[] = {
    {"field", HUB_CFG_STRING, NULL, true, REG(field),
     sizeof(((struct drv_modbus_register *)0)->field), 0, 0, NULL, "field name in the reading"},
    {"table", HUB_CFG_ENUM, "holding", false, REG(table), 0, 0, 0, tables,
     "holding (function 3) or input (function 4) registers"},
    {"address", HUB_CFG_INT, NULL, true, REG(address), 0, 0, 65535, NULL,
     "register address, 0-based as on the wire"},
    {"type", HUB_CFG_ENUM, "uint16", false, REG(type), 0, 0, 0, types,
     "uint16, int16 (1 register), uint32, int32, float32 (2 registers)"},
    {"order", HUB_CFG_ENUM, "ABCD", false, REG(order), 0, 0, 0, orders,
     "byte order: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian"},
    {"scale", HUB_CFG_DOUBLE, "1", false, REG(scale), 0, 0, 0, NULL,
     "value = raw * scale; a scale other than 1 makes the field a float"},
    {"unit", HUB_CFG_STRING, NULL, false, REG(unit),
     sizeof(((struct drv_modbus_register *)0)->unit), 0, 0, NULL,
     "unit of measure, for documentation (e.g. degC)"},
    {NULL, 0, NULL, false, 0, 0, 0, 0, NULL, NULL},
};
