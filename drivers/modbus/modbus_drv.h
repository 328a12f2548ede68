/* drivers/modbus/modbus_drv.h — the Modbus input's configuration and
 * helpers, for the driver's own files, its tests and fuzz harness (the
 * program knows the driver only as drv_modbus_ops, through drivers/driver.h).
 *
 * One driver serves TCP and RTU: the transport is the bus key `type`, chosen
 * when the bus's libmodbus context is built. One runner (thread) per bus
 * polls every device on it from one scheduler.
 *
 * Each device is polled every `interval`. Its registers are grouped into as
 * few read requests as possible (drv_modbus_plan). A poll succeeds only if
 * every request does; it then emits one reading (measurement, tag `device`
 * plus the device's tags, one field per register, timestamp taken when the
 * last reply arrived). A failed poll (timeout, exception, short or wrong
 * reply, connection lost) emits no data fields: it bumps the device's
 * counters and emits a status point `cityhub_device` with fields
 * ok=false, error="...", polls, errors, timeouts, exceptions; a poll that
 * succeeds after failures emits a status point with ok=true. A device that
 * keeps failing is backed off (up to 16 intervals) so it never stalls the
 * others on the bus (modbus_priv.h). On TCP a timeout or a malformed reply
 * closes the connection (the next request reconnects at once), so a late
 * reply is never read as the answer to a later request. */
#ifndef DRV_MODBUS_DRV_H
#define DRV_MODBUS_DRV_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "hub/config_map.h"
#include "hub/reading.h"

/* The four Modbus tables: registers (16-bit words) and bits. */
enum drv_modbus_table {
    DRV_MB_HOLDING = 0, /* function 3 */
    DRV_MB_INPUT = 1,   /* function 4 */
    DRV_MB_COIL = 2,    /* function 1 */
    DRV_MB_DISCRETE = 3 /* function 2: discrete inputs */
};
/* A field's type on the wire. bool: a coil or discrete input, or bit N
 * (key `bit`) of a holding or input register. string: `length` registers of
 * ASCII, two characters per register, trailing NULs and spaces cut. */
enum drv_modbus_type {
    DRV_MB_UINT16 = 0,
    DRV_MB_INT16,
    DRV_MB_UINT32,
    DRV_MB_INT32,
    DRV_MB_FLOAT32,
    DRV_MB_UINT64,
    DRV_MB_INT64,
    DRV_MB_FLOAT64,
    DRV_MB_BOOL,
    DRV_MB_STRING,
};
/* Byte order of a multi-register value, A the most significant byte, read
 * for every width (2 or 4 registers) as: ABCD big-endian (Modbus default:
 * registers most significant first, high byte first in each), CDAB
 * word-swapped (registers least significant first), BADC byte-swapped (the
 * two bytes of each register swapped), DCBA little-endian (both). A 16-bit
 * value takes only the byte swap; a string takes only the byte swap. */
enum drv_modbus_order { DRV_MB_ABCD = 0, DRV_MB_CDAB, DRV_MB_BADC, DRV_MB_DCBA };
/* The field's type in the store, fixed by the map so that the store never
 * sees a field change type: auto is float for float32/float64 or when scale
 * or offset is set, int for signed integers, uint for unsigned, bool and
 * string for those. float, int and uint force it (an int or uint after a
 * scale is rounded to nearest; a value out of its range is no value). */
enum drv_modbus_store {
    DRV_MB_STORE_AUTO = 0,
    DRV_MB_STORE_FLOAT,
    DRV_MB_STORE_INT,
    DRV_MB_STORE_UINT
};

#define DRV_MB_MAX_REGS_PER_READ 125  /* MODBUS_MAX_READ_REGISTERS */
#define DRV_MB_MAX_BITS_PER_READ 2000 /* MODBUS_MAX_READ_BITS */
#define DRV_MB_MAX_REGISTERS 64       /* fields per device (HUB_READING_MAX_FIELDS) */
#define DRV_MB_MAX_DEVICES 248        /* per bus: unit ids 0..247 */
#define DRV_MB_MAX_BUSES 4096         /* section buses */
#define DRV_MB_MAX_ALL_DEVICES 8192   /* section devices */
#define DRV_MB_MAX_STRING_REGS 64     /* a string field: 128 characters */

/* Bounds of a device's interval and a bus's timeout and pause: the
 * scheduler's arithmetic stays far from overflow, libmodbus takes the
 * timeout in 32-bit seconds, and stop() waits at most one timeout (or one
 * pause) for a request in progress. */
#define DRV_MB_INTERVAL_MAX_NS (24LL * 3600 * 1000000000LL)
#define DRV_MB_TIMEOUT_MAX_NS (60LL * 1000000000LL)
#define DRV_MB_PAUSE_MAX_NS (1000000000LL)

struct drv_modbus_register {
    char field[64];
    int table;             /* enum drv_modbus_table */
    int64_t address;       /* 0..65535 */
    int type;              /* enum drv_modbus_type */
    int order;             /* enum drv_modbus_order */
    double scale;          /* 1 = none */
    char unit[32];         /* UCUM/SenML unit, for the data dictionary */
    int64_t bit;           /* bool from a register: bit 0..15 (0 = least significant); -1 = none */
    int64_t length;        /* string: registers (1..DRV_MB_MAX_STRING_REGS) */
    double offset;         /* value = raw * scale + offset; 0 = none */
    int store;             /* enum drv_modbus_store */
    char description[128]; /* for the data dictionary */
};

struct drv_modbus_device {
    char name[64];
    char bus[64];
    int64_t unit; /* slave id 0..247 */
    int64_t interval_ns;
    char measurement[64];
    char profile[64]; /* register map from the profile library */
    struct hub_cfg_tags tags;
    int64_t max_gap;       /* unused registers a request may read through to merge */
    int64_t max_registers; /* per request (1..125), for slaves that accept less */
    union {                /* the list the loader fills (key registers), seen as typed */
        struct hub_cfg_list registers;
        struct {
            struct drv_modbus_register *regs;
            size_t nregs;
        };
    };
};

enum drv_modbus_bus_type { DRV_MB_BUS_TCP = 0, DRV_MB_BUS_RTU };

struct drv_modbus_bus {
    char name[64];
    int type;           /* enum drv_modbus_bus_type */
    char host[256];     /* tcp: name, IPv4 or IPv6 literal */
    int64_t port;       /* tcp */
    int64_t timeout_ns; /* per request */
    char device[128];   /* rtu: serial device */
    int64_t baud;
    int parity; /* rtu: index into N, E, O */
    int64_t data_bits;
    int64_t stop_bits;
    int64_t pause_ns; /* rtu: silence between frames */
    int64_t retries;  /* a request that timed out or got a bad reply is sent again */
    int rs485;        /* rtu: 0 off, 1 on (the kernel's RS-485 mode) */
    int debug;        /* enum drv_modbus_debug */
};

enum drv_modbus_debug { DRV_MB_DEBUG_OFF = 0, DRV_MB_DEBUG_FRAMES };

/* One bus and its devices: what a bus's scheduler is built from. */
struct drv_modbus_input_cfg {
    const struct drv_modbus_bus *bus;
    const struct drv_modbus_device *devices[DRV_MB_MAX_DEVICES];
    size_t ndevices;
};

/* The driver's sections, in drv_modbus_ops.sections order. */
enum { DRV_MB_SECT_BUSES = 0, DRV_MB_SECT_DEVICES = 1 };

/* Names of enum drv_modbus_bus_type as written in the config ("tcp", "rtu"),
 * NULL-terminated. */
extern const char *const drv_modbus_bus_types[];
extern const struct hub_cfg_key drv_modbus_bus_keys[];
extern const struct hub_cfg_key drv_modbus_device_keys[];
extern const struct hub_cfg_key drv_modbus_register_keys[];
extern const struct drv_section drv_modbus_sections[];
extern const struct drv_ops drv_modbus_ops;

/* drv_modbus_ops.check: buses complete for their transport, every device on
 * a defined bus (at most DRV_MB_MAX_DEVICES per bus), its registers valid
 * (drv_modbus_check_device), its readings' tag count within
 * HUB_READING_MAX_TAGS, unit 0 only on TCP. cfg is a struct drv_config. */
void drv_modbus_check(const void *cfg, struct drv_check *ck);

/* Number of registers a type spans: 1 (16-bit types, bool), 2 (32-bit), 4
 * (64-bit); 1 for string, whose field spans its length (reg_width). */
unsigned drv_modbus_type_width(enum drv_modbus_type t);
/* Registers (or bits, on coil and discrete tables: 1) a field spans; a
 * string its length. */
unsigned drv_modbus_reg_width(const struct drv_modbus_register *reg);

/* Decode a field and add it to r. regs: its registers as received
 * (drv_modbus_reg_width of them); bits: for coil and discrete tables, its
 * bit (one byte, 0 or 1). The stored type follows drv_modbus_store_of:
 * integers with neither scale nor offset stay exact; value = raw * scale +
 * offset otherwise; float32 as its shortest decimal (228.94186). A NaN or
 * infinite float, an integer out of the store's range, or a string that is
 * not printable ASCII is no value (HUB_EINVAL): no field is added. Returns
 * HUB_OK or an error from hub_reading. */
int drv_modbus_decode_field(const struct drv_modbus_register *reg, const uint16_t *regs,
                            const uint8_t *bits, hub_reading_t *r);
/* The same for register tables (bits NULL). */
int drv_modbus_decode(const struct drv_modbus_register *reg, const uint16_t *regs,
                      hub_reading_t *r);
/* The store type of a field: DRV_MB_STORE_FLOAT, _INT or _UINT, or
 * DRV_MB_STORE_AUTO for bool and string (stored as such). */
int drv_modbus_store_of(const struct drv_modbus_register *reg);
/* A float32 as the double nearest its shortest round-tripping decimal. */
double drv_modbus_float32_value(float f);

/* One read request of a plan. */
struct drv_modbus_block {
    int table;
    uint16_t address;
    uint16_t count;
};

/* Group a device's fields into the fewest read requests (plan.c): same
 * table, reading through at most max_gap unused registers (or bits) in a row
 * (callers pass the device's max_gap as resolved, 0 when not set), at most
 * drv_modbus_plan_limit per request; overlapping fields share a request when
 * they fit in one. Requests come by table (holding, input, coil, discrete),
 * then address. Returns the number of blocks written to out (at most
 * max_out), or -1 if a field cannot be read (past 65535, wider than one
 * request, bad table or type) or out is too small. */
int drv_modbus_plan(const struct drv_modbus_device *dev, unsigned max_gap,
                    struct drv_modbus_block *out, size_t max_out);

/* A device's plan with, for each request, the fields read from it (for
 * `cityhub plan`): bit i of fields[b] is dev->regs[i]. A field two requests
 * hold is read from the first (drv_modbus_plan_find), as the poller does. */
struct drv_modbus_read_plan {
    size_t nblocks;
    struct drv_modbus_block block[DRV_MB_MAX_REGISTERS];
    uint64_t fields[DRV_MB_MAX_REGISTERS];
};
/* drv_modbus_plan into p. Returns p->nblocks, or -1. */
int drv_modbus_plan_fields(const struct drv_modbus_device *dev, unsigned max_gap,
                           struct drv_modbus_read_plan *p);
/* The first of blocks[0..n) that holds all of reg, or -1. */
int drv_modbus_plan_find(const struct drv_modbus_block *blocks, size_t n,
                         const struct drv_modbus_register *reg);
/* Most registers (or bits) one request of dev may read on table: its
 * max_registers (125 when not 1..125) for registers, 2000 for bits. */
int64_t drv_modbus_plan_limit(const struct drv_modbus_device *dev, int table);

/* Check a device's own rules: its registers (at least one, at most 64, one
 * per field name), each valid for its table and type (a coil or discrete
 * input is a bool; a bool from a register has a bit; a string a length;
 * scale, offset and store only on numbers; within 65535 and within
 * max_registers), max_registers and max_gap in range (-1: not set). Returns
 * 0 or -1 with a message naming the device and the field in err. */
int drv_modbus_check_device(const struct drv_modbus_device *dev, char *err, size_t errlen);
/* The same, and on failure the index of the register at fault in *reg
 * (nregs when the device itself is) and the key at fault in *key (or NULL).
 * reg and key may be NULL. */
int drv_modbus_check_device_at(const struct drv_modbus_device *dev, size_t *reg, const char **key,
                               char *err, size_t errlen);

#endif
