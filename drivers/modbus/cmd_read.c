/* drivers/modbus/cmd_read.c — `cityhub read`: raw registers (or bits) of one
 * unit, straight from the flags, with every 2- and 4-register window decoded
 * in all four byte orders side by side, so that a technician sees which
 * type and order give a sensible value before writing the register into the
 * configuration.
 *
 * Orders, for a value of n registers (2 or 4) with A the most significant
 * byte, as the driver decodes them (modbus_drv.h): ABCD the registers most
 * significant first, high byte first in each; CDAB the registers in reverse
 * (least significant first); BADC the two bytes of each register swapped;
 * DCBA both. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/cmd_common.h"
#include "hub/clock.h"

#define CMD "read"
#define MS 1000000LL

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub read (--rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits 8]\n"
               "                     [--stop-bits 1] | --tcp HOST[:PORT])\n"
               "                    --unit N --table holding|input|coil|discrete\n"
               "                    --address A --count C [--timeout 1s]\n"
               "\n"
               "Read C registers (or bits) from address A of one unit and print them raw:\n"
               "address, hex, unsigned and signed 16-bit value. For registers, every window\n"
               "of 2 registers (at each address) is also shown as uint32, int32 and float32,\n"
               "and every window of 4 as uint64, int64 and float64, in the four byte orders\n"
               "side by side (ABCD big-endian, the Modbus default; CDAB word-swapped; BADC\n"
               "byte-swapped; DCBA little-endian): the column with a sensible value is the\n"
               "`type` and `order` to write in the configuration. The registers as text\n"
               "close the output. Coils and discrete inputs print 0 or 1 per address.\n"
               "Needs no configuration file.\n"
               "\n"
               "  --rtu DEVICE        serial device, e.g. /dev/ttyUSB0; --baud (default 9600),\n"
               "                      --parity (N), --data-bits (8), --stop-bits (1)\n"
               "  --tcp HOST[:PORT]   Modbus TCP gateway or device (port 502 by default)\n"
               "  --unit N            unit id (slave id): 1-247 on a serial line, 0-247 over TCP\n"
               "  --table T           holding (function 3), input (4), coil (1), discrete (2)\n"
               "  --address A         first address, 0-based as on the wire (a manual's 40001\n"
               "                      is holding 0, 30001 input 0)\n"
               "  --count C           registers (1-125) or bits (1-2000)\n"
               "  --timeout T         how long to wait for the answer (default 1s)\n"
               "\n"
               "exit status: 0 read, 1 no answer or an error answer (printed), 2 bad usage\n");
}

static const char *const table_names[] = {"holding", "input", "coil", "discrete", NULL};
static const char *const order_names[4] = {"ABCD", "CDAB", "BADC", "DCBA"};

/* n registers (2 or 4) in an order, as one unsigned value. */
static uint64_t value_of(const uint16_t *regs, unsigned n, int order)
{
    if (n == 2)
        return drv_modbus_u32(regs, order);
    int reverse = order == DRV_MB_CDAB || order == DRV_MB_DCBA;
    int swap = order == DRV_MB_BADC || order == DRV_MB_DCBA;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = regs[reverse ? n - 1 - i : i];
        if (swap)
            w = (uint16_t)(w >> 8 | w << 8);
        v = v << 16 | w;
    }
    return v;
}

static void print_windows(const uint16_t *regs, unsigned count, uint16_t address, unsigned n)
{
    if (count < n)
        return;
    if (n == 2)
        printf("\n32-bit values, registers A and A+1, in each byte order:\n");
    else
        printf("\n64-bit values, registers A to A+3, in each byte order:\n");
    int col = n == 2 ? 16 : 24; /* the widest value: "-1.17549435e-38", a float64 */
    printf("%7s  %-8s", "A", "as");
    for (int o = 0; o < 4; o++)
        printf(" %-*s", o < 3 ? col : 0, order_names[o]);
    printf("\n");
    static const char *const rows[4] = {"hex", "uint", "int", "float"};
    for (unsigned a = 0; a + n <= count; a++) {
        uint64_t v[4];
        for (int o = 0; o < 4; o++)
            v[o] = value_of(regs + a, n, o);
        for (int r = 0; r < 4; r++) {
            char as[16];
            snprintf(as, sizeof(as), "%s%s", rows[r], r == 0 ? "" : n == 2 ? "32" : "64");
            if (r == 0)
                printf("%7u  %-8s", (unsigned)(address + a), as);
            else
                printf("%7s  %-8s", "", as);
            for (int o = 0; o < 4; o++) {
                char cell[40];
                switch (r) {
                case 0:
                    snprintf(cell, sizeof(cell), n == 2 ? "0x%08" PRIX64 : "0x%016" PRIX64, v[o]);
                    break;
                case 1:
                    snprintf(cell, sizeof(cell), "%" PRIu64, v[o]);
                    break;
                case 2:
                    if (n == 2)
                        snprintf(cell, sizeof(cell), "%" PRId32, (int32_t)(uint32_t)v[o]);
                    else
                        snprintf(cell, sizeof(cell), "%" PRId64, (int64_t)v[o]);
                    break;
                default:
                    if (n == 2) {
                        uint32_t u = (uint32_t)v[o];
                        float f;
                        memcpy(&f, &u, sizeof(f));
                        cmd_float_name((double)f, 1, cell, sizeof(cell));
                    } else {
                        double d;
                        memcpy(&d, &v[o], sizeof(d));
                        cmd_float_name(d, 0, cell, sizeof(cell));
                    }
                    break;
                }
                printf(" %-*s", o < 3 ? col : 0, cell);
            }
            printf("\n");
        }
    }
}

static char printable(unsigned c)
{
    return (c >= 0x20 && c < 0x7F) ? (char)c : '.';
}

static void print_text(const uint16_t *regs, unsigned count)
{
    char hi[2 * DRV_MB_MAX_REGS_PER_READ + 1], lo[2 * DRV_MB_MAX_REGS_PER_READ + 1];
    for (unsigned i = 0; i < count; i++) {
        hi[2 * i] = printable(regs[i] >> 8);
        hi[2 * i + 1] = printable(regs[i] & 0xFF);
        lo[2 * i] = printable(regs[i] & 0xFF);
        lo[2 * i + 1] = printable(regs[i] >> 8);
    }
    hi[2 * count] = lo[2 * count] = '\0';
    printf("\nas text, 2 characters per register ('.' not printable):\n");
    printf("  high byte first (ABCD, CDAB): \"%s\"\n", hi);
    printf("  low byte first (BADC, DCBA):  \"%s\"\n", lo);
}

static void hint(int kind, int exception, int rtu, const char *timeout)
{
    if (kind == DRV_MB_FAIL_TIMEOUT)
        fprintf(stderr,
                "  no answer within %s: check the unit id, %s, and that the device is powered%s\n",
                timeout,
                rtu ? "the serial settings (cityhub scan finds them), the wiring (A/B)"
                    : "host and port",
                rtu ? "" : " and reachable");
    else if (kind == DRV_MB_FAIL_EXCEPTION && exception == 2)
        fprintf(stderr, "  the device has no register at (some of) these addresses: check the "
                        "address (0-based on the wire: a manual's 40001 is holding 0) and the "
                        "count\n");
    else if (kind == DRV_MB_FAIL_EXCEPTION && exception == 1)
        fprintf(stderr, "  the device does not serve this table: try --table input or holding\n");
    else if (kind == DRV_MB_FAIL_EXCEPTION && (exception == 10 || exception == 11))
        fprintf(stderr, "  the gateway got no answer from this unit id behind it (wrong unit id, "
                        "or the device is off)\n");
    else if (kind == DRV_MB_FAIL_BAD_REPLY)
        fprintf(stderr, "  the reply did not check out: noise on the line, a wrong baud rate or "
                        "parity, or two masters on the line\n");
}

int drv_modbus_cmd_read(int argc, char **argv, const struct drv_cmd_env *env)
{
    (void)env;
    enum { OPT_UNIT = CMD_OPT_FIRST_FREE, OPT_TABLE, OPT_ADDRESS, OPT_COUNT };
    static const struct option opts[] = {
        CMD_LINE_OPTIONS,
        {"unit", required_argument, NULL, OPT_UNIT},
        {"table", required_argument, NULL, OPT_TABLE},
        {"address", required_argument, NULL, OPT_ADDRESS},
        {"count", required_argument, NULL, OPT_COUNT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cmd_line l;
    cmd_line_init(&l, 1000 * MS);
    long unit = -1, address = -1, count = -1;
    int table = -1, ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        case OPT_UNIT:
            if (cmd_parse_long(optarg, 0, CMD_MAX_UNIT, &unit) != 0)
                return cmd_usage_error(CMD, "bad --unit \"%s\": 1-247 (0-247 over TCP)", optarg);
            break;
        case OPT_TABLE:
            table = -1;
            for (int t = 0; table_names[t]; t++)
                if (!strcmp(optarg, table_names[t]))
                    table = t;
            if (table < 0)
                return cmd_usage_error(CMD, "bad --table \"%s\": holding, input, coil or discrete",
                                       optarg);
            break;
        case OPT_ADDRESS:
            if (cmd_parse_long(optarg, 0, 65535, &address) != 0)
                return cmd_usage_error(CMD, "bad --address \"%s\": 0-65535, 0-based as on the wire",
                                       optarg);
            break;
        case OPT_COUNT:
            if (cmd_parse_long(optarg, 1, DRV_MB_MAX_BITS_PER_READ, &count) != 0)
                return cmd_usage_error(CMD, "bad --count \"%s\": 1-125 registers or 1-2000 bits",
                                       optarg);
            break;
        case '?':
        case ':':
            return cmd_bad_option(CMD, ch, argv);
        default: {
            int r = cmd_line_option(CMD, &l, ch, optarg, 0);
            if (r != 0)
                return r > 0 ? r : cmd_usage_error(CMD, "unexpected option");
        }
        }
    }
    if (optind < argc)
        return cmd_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    int rc = cmd_line_finish(CMD, &l);
    if (rc != 0)
        return rc;
    if (unit < 0)
        return cmd_usage_error(CMD, "--unit N is required");
    if (table < 0)
        return cmd_usage_error(CMD, "--table holding|input|coil|discrete is required");
    if (address < 0)
        return cmd_usage_error(CMD, "--address A is required");
    if (count < 0)
        return cmd_usage_error(CMD, "--count C is required");
    if (l.rtu && unit == 0)
        return cmd_usage_error(CMD, "unit 0 is the broadcast address on a serial line: no unit "
                                    "answers it; use 1-247");
    int bits = table == DRV_MB_COIL || table == DRV_MB_DISCRETE;
    if (!bits && count > DRV_MB_MAX_REGS_PER_READ)
        return cmd_usage_error(CMD, "--count %ld: at most %d registers in one read", count,
                               DRV_MB_MAX_REGS_PER_READ);
    if (address + count > 65536)
        return cmd_usage_error(CMD, "--address %ld --count %ld runs past 65535", address, count);

    struct cmd_conn c;
    char err[512], msg[300], tmo[32];
    cmd_duration_name(l.timeout_ns, tmo, sizeof(tmo));
    if (cmd_conn_open(&c, &l, 0, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "cityhub read: %s\n", err);
        return CMD_EXIT_FAIL;
    }
    struct drv_mb_req q;
    struct drv_mb_reply rep;
    uint8_t buf[DRV_MB_ADU_MAX];
    drv_mb_req_read(&q, l.rtu, 0, (uint8_t)unit, table, (uint16_t)address, (uint16_t)count);
    int64_t t0 = hub_mono_ns();
    int kind = cmd_transact(&c, &q, buf, &rep, msg, sizeof(msg));
    int64_t took = hub_mono_ns() - t0;
    static const char *const what_of[4][2] = {{"holding register", "holding registers"},
                                              {"input register", "input registers"},
                                              {"coil", "coils"},
                                              {"discrete input", "discrete inputs"}};
    const char *what = what_of[table][count > 1];
    char range[32];
    if (count == 1)
        snprintf(range, sizeof(range), "%ld", address);
    else
        snprintf(range, sizeof(range), "%ld-%ld", address, address + count - 1);
    if (kind != 0) {
        fprintf(stderr, "cityhub read: unit %ld on %s: %s %s: %s\n", unit, c.name, what, range,
                msg);
        hint(kind, rep.exception, l.rtu, tmo);
        cmd_conn_close(&c);
        return CMD_EXIT_FAIL;
    }
    char ms[32];
    cmd_duration_name(took, ms, sizeof(ms));
    printf("unit %ld on %s: %s %s (%ld), answered in %s\n", unit, c.name, what, range, count, ms);
    if (bits) {
        uint8_t v[DRV_MB_MAX_BITS_PER_READ];
        drv_mb_unpack_bits(rep.data, (size_t)count, v);
        printf("%7s  %s\n", "address", "value");
        for (long i = 0; i < count; i++)
            printf("%7ld  %u\n", address + i, v[i]);
    } else {
        uint16_t regs[DRV_MB_MAX_REGS_PER_READ];
        drv_mb_unpack_regs(rep.data, (size_t)count, regs);
        printf("%7s  %-6s  %8s  %6s\n", "address", "hex", "unsigned", "signed");
        for (long i = 0; i < count; i++)
            printf("%7ld  0x%04X  %8u  %6d\n", address + i, regs[i], regs[i], (int16_t)regs[i]);
        print_windows(regs, (unsigned)count, (uint16_t)address, 2);
        print_windows(regs, (unsigned)count, (uint16_t)address, 4);
        print_text(regs, (unsigned)count);
    }
    cmd_conn_close(&c);
    return CMD_EXIT_OK;
}
