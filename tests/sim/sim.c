/* tests/sim/sim.c — cityhub-sim, simulated Modbus TCP and RTU slaves for the
 * demo, the integration tests and the benchmarks (docs/simulator.md).
 *
 *   cityhub-sim --listen HOST:PORT [--endpoints N] [--backlog N]
 *             | --rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits N] [--stop-bits N]
 *               [--profile demo|test|load|types] [--seed N] [--log FILE] [--quiet]
 *               [--ident-unit N:VENDOR:PRODUCT:VERSION] [--no-ident-unit N]
 *               [--dead-unit N] [--exception-unit N[:CODE]] [--short-unit N]
 *               [--garbage-unit N] [--bad-crc-unit N] [--wrong-unit-reply N]
 *               [--bad-protocol-unit N] [--drip-unit N[:MS]] [--close-unit N]
 *               [--busy-unit N[:K]] [--slow-unit N:MS] [--fault-every K] [--delay-ms N]
 *
 * This file is the command line; server.c the event loops, reply.c the
 * replies and the fault switches, profiles.c the units.
 *
 * A request for a unit that does not exist is answered over TCP with
 * exception 0x0B (gateway target device failed to respond), as a Modbus
 * gateway would; over RTU it gets no answer, as on a real line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "tests/sim/sim_priv.h"

volatile sig_atomic_t sim_stop;

static void on_signal(int sig)
{
    (void)sig;
    sim_stop = 1;
}

/* ---- usage ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: cityhub-sim --listen HOST:PORT [--endpoints N] [--backlog N] [options]\n"
          "       cityhub-sim --rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits N]\n"
          "                   [--stop-bits N] [options]\n"
          "  --listen HOST:PORT     address to serve Modbus TCP on; IPv6 as [::1]:1502;\n"
          "                         port 0 picks a free one (printed on stdout)\n"
          "  --endpoints N          listen on N consecutive IPv4 addresses from HOST up\n"
          "                         (127.0.0.1, 127.0.0.2, ...), same port, same units\n"
          "                         (default 1)\n"
          "  --backlog N            listen() backlog of each endpoint (default 128)\n"
          "  --rtu DEVICE           serve Modbus RTU on the serial device (a tty, e.g. one\n"
          "                         end of a socat pty pair) instead; --baud (default\n"
          "                         9600), --parity N|E|O (N), --data-bits 7|8 (8),\n"
          "                         --stop-bits 1|2 (1). Absent units stay silent.\n"
          "  --profile demo|test|load|types  register map (default demo), see\n"
          "                         docs/simulator.md\n"
          "  --seed N               random seed of the demo values (default: time)\n"
          "  --log FILE             log requests and faults to FILE (default stderr);\n"
          "                         --log /dev/null formats nothing\n"
          "  --quiet                log only faults, errors, start and stop: no line per\n"
          "                         answered request or connection\n"
          "device identification (function 0x2B / MEI 0x0E, basic objects 0-2):\n"
          "  --ident-unit N:VENDOR:PRODUCT:VERSION  unit N's strings (default\n"
          "                         cityhub-sim, the profile name, 1.0; 80 chars at most)\n"
          "  --no-ident-unit N      answer unit N's 0x2B with exception 1 (illegal function)\n"
          "fault switches (combine freely; unit switches may repeat):\n"
          "  --dead-unit N          never answer unit N (the client times out)\n"
          "  --exception-unit N[:CODE]  answer unit N with exception CODE (default 2)\n"
          "  --busy-unit N[:K]      answer unit N with exception 6 (busy) K times (default\n"
          "                         2), then normally once, and so on\n"
          "  --short-unit N         answer unit N one register short (byte count and MBAP\n"
          "                         length consistent, so the frame is whole but short)\n"
          "  --garbage-unit N       answer unit N with a wrong function code, then a wrong\n"
          "                         byte count, alternately\n"
          "  --bad-crc-unit N       rtu: answer unit N with a reply whose CRC is wrong\n"
          "  --wrong-unit-reply N   the reply to unit N carries unit id N+1 (mod 248)\n"
          "  --bad-protocol-unit N  tcp: the reply to unit N has MBAP protocol id 1\n"
          "  --slow-unit N:MS       send unit N's replies MS ms late (others at once)\n"
          "  --drip-unit N[:MS]     send unit N's replies a byte at a time, MS ms apart\n"
          "                         (default 300)\n"
          "  --close-unit N         tcp: send the first half of unit N's reply, then close\n"
          "                         the connection\n"
          "  --fault-every K        damage every K-th request to any unit (short, wrong\n"
          "                         function, wrong byte count in turn)\n"
          "  --delay-ms N           send every reply N ms late (other clients are served\n"
          "                         meanwhile)\n"
          "unknown units get exception 11 (gateway target failed to respond) over TCP,\n"
          "no answer at all over RTU.\n"
          "\n"
          "profile demo (floats IEEE-754 single; order as in docs/simulator.md):\n"
          "  unit 1 traffic  input 0 vehicles_total uint16 (wraps), 1 speed_avg km/h*10,\n"
          "                  2-3 occupancy % float32 ABCD; discrete 0 vehicle_present\n"
          "  unit 2 air      input 0 pm2_5 ug/m3*10, 1 pm10 ug/m3*10, 2 no2 ppb (uint16);\n"
          "                  holding 10-11 temperature degC float32 CDAB,\n"
          "                  12 humidity %*10, 13 pressure hPa*10 (uint16);\n"
          "                  discrete 0 pm2_5 > 50, 1 no2 > 40\n"
          "  unit 3 energy   holding 0-1 voltage V float32 ABCD, 2-3 current A float32 ABCD,\n"
          "                  4-5 active_power W int32 ABCD, 6-7 energy_total Wh uint32 CDAB,\n"
          "                  8-9 frequency Hz float32 DCBA; discrete 0 exporting, 1 grid_ok\n"
          "  every demo unit: coils 0-7 (0, writable) and discrete inputs 0-7\n"
          "profile test (units 1 to 8 alike):\n"
          "  holding 0 0x1234; 1 int16 -2; 2-3 uint32 0x89ABCDEF ABCD; 4-5 int32 -123456 ABCD;\n"
          "  6-7 / 8-9 / 10-11 / 12-13 float32 3.14159274 in ABCD / CDAB / BADC / DCBA;\n"
          "  20 uint16 235; input 0 request counter of the unit (uint16, wraps);\n"
          "  coils 0-15 = bits of 0xC3A5, discrete inputs 0-15 = bits of 0x5A3C\n"
          "profile load (units 1 to 247 alike, for benchmarks):\n"
          "  holding 0-31 uint16, after the unit's n-th request: register 0 = n,\n"
          "  register k = n*k + 100*unit + k (mod 65536); coil k = bit 1 and discrete\n"
          "  input k = bit 0 of register k (k = 0..31)\n"
          "profile types (units 1 and 2 alike, fixed values, holding = input 0-999):\n"
          "  int16 100-103, uint16 110-113, int32 200-207, uint32 210-217,\n"
          "  float32 220-227, int64 300-315, uint64 320-335, float64 340-355,\n"
          "  string CITYHUB-SIM-0001 400-431, string CITYHUB 440-471 (each in ABCD, CDAB,\n"
          "  BADC, DCBA), extremes 500-527, 900 = 0xA5C3, 901 = 0x8001;\n"
          "  coils 0-15 = bits of 0xC3A5, discrete inputs 0-15 = bits of 0x5A3C\n",
          f);
}

/* ---- options --------------------------------------------------------------- */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT" into host and port. Returns 0 or -1. */
static int split_listen(const char *arg, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (!close || close[1] != ':')
            return -1;
        if ((size_t)(close - arg - 1) >= hostlen)
            return -1;
        memcpy(host, arg + 1, (size_t)(close - arg - 1));
        host[close - arg - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(arg, ':');
        if (!colon || (size_t)(colon - arg) >= hostlen)
            return -1;
        memcpy(host, arg, (size_t)(colon - arg));
        host[colon - arg] = '\0';
    }
    long p;
    if (parse_int(colon + 1, 0, 65535, &p) != 0)
        return -1;
    snprintf(port, portlen, "%ld", p);
    return host[0] ? 0 : -1;
}

/* The silence that ends an RTU frame: 3.5 characters of 1 start bit, the
 * data bits, a parity bit and the stop bits; 1.75 ms above 19200 baud (the
 * Modbus serial line spec), and never under 2 ms here, which a busy machine
 * or a pty would break. */
static int64_t rtu_gap_ns(long baud, int parity, long data_bits, long stop_bits)
{
    int64_t bits = 1 + data_bits + (parity != 'N') + stop_bits;
    int64_t gap = baud > 19200 ? 1750000 : (int64_t)(3.5 * (double)bits * 1e9 / (double)baud);
    return gap < 2000000 ? 2000000 : gap;
}

static int known_baud(long b)
{
    static const long rates[] = {
        50,     75,     110,     134,     150,     200,     300,     600,     1200,    1800,
        2400,   4800,   9600,    19200,   38400,   57600,   115200,  230400,  460800,  500000,
        576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
        if (rates[i] == b)
            return 1;
    return 0;
}

/* The soft limit of open files up to the hard one: a client or an endpoint
 * each take a descriptor. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    for (rlim_t v = 1u << 20; v > 1024; v /= 2) { /* an infinite hard limit */
        rl.rlim_cur = v;
        if (v <= want && setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return;
    }
}

/* Is path the null device? Then the log formats nothing. */
static int is_dev_null(const char *path)
{
    struct stat a, b;
    return stat(path, &a) == 0 && stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode) &&
           a.st_rdev == b.st_rdev;
}

enum {
    OPT_LISTEN = 256,
    OPT_RTU,
    OPT_BAUD,
    OPT_PARITY,
    OPT_DATA_BITS,
    OPT_STOP_BITS,
    OPT_PROFILE,
    OPT_SEED,
    OPT_LOG,
    OPT_QUIET,
    OPT_ENDPOINTS,
    OPT_BACKLOG,
    OPT_DEAD,
    OPT_EXC,
    OPT_SHORT,
    OPT_GARBAGE,
    OPT_BAD_CRC,
    OPT_WRONG_UNIT,
    OPT_BAD_PROTOCOL,
    OPT_DRIP,
    OPT_CLOSE,
    OPT_BUSY,
    OPT_SLOW,
    OPT_IDENT,
    OPT_NO_IDENT,
    OPT_EVERY,
    OPT_DELAY,
    OPT_HELP
};

struct unit_switch {
    int kind;
    int unit;
    long arg;
    char *ident; /* --ident-unit: "VENDOR\0PRODUCT\0VERSION" */
    char *product, *version;
};

/* "N", "N:ARG" or "N:VENDOR:PRODUCT:VERSION" for a switch of kind. Returns 0,
 * or -1 after a message. */
static int parse_unit_switch(int kind, const char *optarg_, struct unit_switch *sw)
{
    const char *colon = strchr(optarg_, ':');
    char unit[16];
    size_t ul = colon ? (size_t)(colon - optarg_) : strlen(optarg_);
    long v;
    memset(sw, 0, sizeof(*sw));
    sw->kind = kind;
    if (ul < sizeof(unit)) {
        memcpy(unit, optarg_, ul);
        unit[ul] = '\0';
    }
    if (ul >= sizeof(unit) || parse_int(unit, 0, SIM_MAX_UNIT, &v) != 0) {
        fprintf(stderr, "cityhub-sim: bad unit %s (0..%d)\n", optarg_, SIM_MAX_UNIT);
        return -1;
    }
    sw->unit = (int)v;
    const char *rest = colon ? colon + 1 : NULL;
    long lo = 0, hi = 0, def = 0;
    switch (kind) {
    case OPT_EXC:
        lo = 1, hi = MODBUS_EXCEPTION_MAX - 1, def = 2;
        break;
    case OPT_DRIP:
        lo = 1, hi = 60000, def = 300;
        break;
    case OPT_BUSY:
        lo = 1, hi = 1000000, def = 2;
        break;
    case OPT_SLOW:
        lo = 0, hi = 600000, def = -1; /* required */
        break;
    case OPT_IDENT: {
        const char *p2 = rest ? strchr(rest, ':') : NULL;
        const char *p3 = p2 ? strchr(p2 + 1, ':') : NULL;
        if (!p3 || (size_t)(p2 - rest) > SIM_IDENT_MAX || (size_t)(p3 - p2 - 1) > SIM_IDENT_MAX ||
            strlen(p3 + 1) > SIM_IDENT_MAX) {
            fprintf(stderr,
                    "cityhub-sim: bad --ident-unit %s (N:VENDOR:PRODUCT:VERSION, each at "
                    "most %d characters)\n",
                    optarg_, SIM_IDENT_MAX);
            return -1;
        }
        sw->ident = strdup(rest);
        if (!sw->ident)
            return -1;
        sw->product = sw->ident + (p2 - rest);
        sw->version = sw->ident + (p3 - rest);
        *sw->product++ = '\0';
        *sw->version++ = '\0';
        return 0;
    }
    default: /* no argument */
        if (rest) {
            fprintf(stderr, "cityhub-sim: bad unit switch %s\n", optarg_);
            return -1;
        }
        return 0;
    }
    if (!rest) {
        if (def < 0) {
            fprintf(stderr, "cityhub-sim: bad unit switch %s (N:MS)\n", optarg_);
            return -1;
        }
        sw->arg = def;
        return 0;
    }
    if (parse_int(rest, lo, hi, &sw->arg) != 0) {
        fprintf(stderr, "cityhub-sim: bad unit switch %s (%ld..%ld after the colon)\n", optarg_, lo,
                hi);
        return -1;
    }
    return 0;
}

static void apply_switch(struct sim_unit *u, const struct unit_switch *sw)
{
    switch (sw->kind) {
    case OPT_DEAD:
        u->dead = 1;
        break;
    case OPT_EXC:
        u->exception = (int)sw->arg;
        break;
    case OPT_SHORT:
        u->shorten = 1;
        break;
    case OPT_GARBAGE:
        u->garbage = 1;
        break;
    case OPT_BAD_CRC:
        u->bad_crc = 1;
        break;
    case OPT_WRONG_UNIT:
        u->wrong_unit = 1;
        break;
    case OPT_BAD_PROTOCOL:
        u->bad_protocol = 1;
        break;
    case OPT_DRIP:
        u->drip_ns = sw->arg * 1000000LL;
        break;
    case OPT_CLOSE:
        u->close_half = 1;
        break;
    case OPT_BUSY:
        u->busy = (unsigned)sw->arg;
        break;
    case OPT_SLOW:
        u->slow_ns = sw->arg * 1000000LL;
        break;
    case OPT_IDENT:
        snprintf(u->vendor, sizeof(u->vendor), "%s", sw->ident);
        snprintf(u->product, sizeof(u->product), "%s", sw->product);
        snprintf(u->version, sizeof(u->version), "%s", sw->version);
        break;
    case OPT_NO_IDENT:
        u->no_ident = 1;
        break;
    default:
        break;
    }
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"rtu", required_argument, NULL, OPT_RTU},
        {"baud", required_argument, NULL, OPT_BAUD},
        {"parity", required_argument, NULL, OPT_PARITY},
        {"data-bits", required_argument, NULL, OPT_DATA_BITS},
        {"stop-bits", required_argument, NULL, OPT_STOP_BITS},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"log", required_argument, NULL, OPT_LOG},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"dead-unit", required_argument, NULL, OPT_DEAD},
        {"exception-unit", required_argument, NULL, OPT_EXC},
        {"short-unit", required_argument, NULL, OPT_SHORT},
        {"garbage-unit", required_argument, NULL, OPT_GARBAGE},
        {"bad-crc-unit", required_argument, NULL, OPT_BAD_CRC},
        {"wrong-unit-reply", required_argument, NULL, OPT_WRONG_UNIT},
        {"bad-protocol-unit", required_argument, NULL, OPT_BAD_PROTOCOL},
        {"drip-unit", required_argument, NULL, OPT_DRIP},
        {"close-unit", required_argument, NULL, OPT_CLOSE},
        {"busy-unit", required_argument, NULL, OPT_BUSY},
        {"slow-unit", required_argument, NULL, OPT_SLOW},
        {"ident-unit", required_argument, NULL, OPT_IDENT},
        {"no-ident-unit", required_argument, NULL, OPT_NO_IDENT},
        {"fault-every", required_argument, NULL, OPT_EVERY},
        {"delay-ms", required_argument, NULL, OPT_DELAY},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct sim s;
    struct unit_switch *sw = NULL;
    size_t nsw = 0;
    const char *listen_arg = NULL, *rtu_dev = NULL, *profile = "demo", *log_path = NULL;
    long baud = 9600, data_bits = 8, stop_bits = 1, endpoints = 1;
    int parity = 'N', serial_opts = 0, crc_switch = 0, tcp_opts = 0, tcp_switch = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int rc = 2;
    long v;

    memset(&s, 0, sizeof(s));
    s.tty = -1;
    s.epfd = -1;
    s.spare_fd = -1;
    s.backlog = 128;
    s.pair[0] = s.pair[1] = -1;
    s.log = stderr;

    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            listen_arg = optarg;
            break;
        case OPT_RTU:
            rtu_dev = optarg;
            break;
        case OPT_BAUD:
            if (parse_int(optarg, 50, 4000000L, &baud) != 0 || !known_baud(baud)) {
                fprintf(stderr, "cityhub-sim: bad --baud %s (a standard rate, e.g. 9600)\n",
                        optarg);
                goto out;
            }
            serial_opts = 1;
            break;
        case OPT_PARITY:
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0])) {
                fprintf(stderr, "cityhub-sim: bad --parity %s (N, E or O)\n", optarg);
                goto out;
            }
            parity = optarg[0];
            serial_opts = 1;
            break;
        case OPT_DATA_BITS:
            if (parse_int(optarg, 7, 8, &data_bits) != 0) {
                fprintf(stderr, "cityhub-sim: bad --data-bits %s (7 or 8)\n", optarg);
                goto out;
            }
            serial_opts = 1;
            break;
        case OPT_STOP_BITS:
            if (parse_int(optarg, 1, 2, &stop_bits) != 0) {
                fprintf(stderr, "cityhub-sim: bad --stop-bits %s (1 or 2)\n", optarg);
                goto out;
            }
            serial_opts = 1;
            break;
        case OPT_PROFILE:
            profile = optarg;
            break;
        case OPT_LOG:
            log_path = optarg;
            break;
        case OPT_QUIET:
            s.quiet = 1;
            break;
        case OPT_ENDPOINTS:
            if (parse_int(optarg, 1, 100000, &endpoints) != 0) {
                fprintf(stderr, "cityhub-sim: bad --endpoints %s (1..100000)\n", optarg);
                goto out;
            }
            tcp_opts = 1;
            break;
        case OPT_BACKLOG:
            if (parse_int(optarg, 1, 65535, &v) != 0) {
                fprintf(stderr, "cityhub-sim: bad --backlog %s (1..65535)\n", optarg);
                goto out;
            }
            s.backlog = (int)v;
            tcp_opts = 1;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) {
                fprintf(stderr, "cityhub-sim: bad --seed %s\n", optarg);
                goto out;
            }
            break;
        }
        case OPT_DEAD:
        case OPT_EXC:
        case OPT_SHORT:
        case OPT_GARBAGE:
        case OPT_BAD_CRC:
        case OPT_WRONG_UNIT:
        case OPT_BAD_PROTOCOL:
        case OPT_DRIP:
        case OPT_CLOSE:
        case OPT_BUSY:
        case OPT_SLOW:
        case OPT_IDENT:
        case OPT_NO_IDENT: {
            struct unit_switch *n = realloc(sw, (nsw + 1) * sizeof(*sw));
            if (!n) {
                fprintf(stderr, "cityhub-sim: %s\n", strerror(errno));
                goto out;
            }
            sw = n;
            if (parse_unit_switch(c, optarg, &sw[nsw]) != 0)
                goto out;
            nsw++;
            if (c == OPT_BAD_CRC)
                crc_switch = 1;
            if (c == OPT_BAD_PROTOCOL || c == OPT_CLOSE)
                tcp_switch = 1;
            break;
        }
        case OPT_EVERY:
            if (parse_int(optarg, 1, 1000000000L, &v) != 0) {
                fprintf(stderr, "cityhub-sim: bad --fault-every %s\n", optarg);
                goto out;
            }
            s.fault_every = (uint64_t)v;
            break;
        case OPT_DELAY:
            if (parse_int(optarg, 0, 600000L, &v) != 0) {
                fprintf(stderr, "cityhub-sim: bad --delay-ms %s\n", optarg);
                goto out;
            }
            s.delay_ns = v * 1000000LL;
            break;
        case OPT_HELP:
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (!listen_arg == !rtu_dev || optind != argc) {
        if (listen_arg && rtu_dev)
            fprintf(stderr, "cityhub-sim: --listen or --rtu, not both\n");
        usage(stderr);
        goto out;
    }
    if (!rtu_dev && (serial_opts || crc_switch)) {
        fprintf(stderr, "cityhub-sim: --baud, --parity, --data-bits, --stop-bits and "
                        "--bad-crc-unit need --rtu\n");
        goto out;
    }
    if (rtu_dev && (tcp_opts || tcp_switch)) {
        fprintf(stderr, "cityhub-sim: --endpoints, --backlog, --bad-protocol-unit and "
                        "--close-unit need --listen\n");
        goto out;
    }
    char host[256], port[16];
    if (listen_arg && split_listen(listen_arg, host, sizeof(host), port, sizeof(port)) != 0) {
        fprintf(stderr, "cityhub-sim: bad --listen %s: use HOST:PORT or [V6]:PORT\n", listen_arg);
        goto out;
    }
    if (listen_arg && endpoints > 1) {
        struct in_addr a;
        if (inet_pton(AF_INET, host, &a) != 1) {
            fprintf(stderr, "cityhub-sim: --endpoints %ld needs an IPv4 address, not %s\n",
                    endpoints, host);
            goto out;
        }
        if ((uint64_t)ntohl(a.s_addr) + (uint64_t)endpoints - 1 > 0xFFFFFFFFu) {
            fprintf(stderr, "cityhub-sim: --endpoints %ld from %s runs past 255.255.255.255\n",
                    endpoints, host);
            goto out;
        }
    }
    s.rtu = rtu_dev != NULL;
    s.rng.s = seed ? seed : 1;
    if (sim_profile_build(profile, s.units, &s.rng) != 0) {
        fprintf(stderr, "cityhub-sim: unknown profile %s (demo, test, load or types)\n", profile);
        goto out;
    }
    for (size_t i = 0; i < nsw; i++) {
        struct sim_unit *u = s.units[sw[i].unit];
        if (!u) {
            fprintf(stderr, "cityhub-sim: profile %s has no unit %d\n", profile, sw[i].unit);
            goto out;
        }
        apply_switch(u, &sw[i]);
    }
    rc = 1;
    if (log_path) {
        s.log = fopen(log_path, "a");
        if (!s.log) {
            fprintf(stderr, "cityhub-sim: %s: %s\n", log_path, strerror(errno));
            s.log = stderr;
            goto out;
        }
        s.log_off = is_dev_null(log_path);
    }
    setvbuf(s.log, NULL, _IOFBF, 1 << 16); /* flushed when the loop sleeps */
    raise_nofile();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.pair) != 0) {
        fprintf(stderr, "cityhub-sim: %s\n", strerror(errno));
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (s.rtu) {
        s.ctx = modbus_new_rtu(rtu_dev, (int)baud, (char)parity, (int)data_bits, (int)stop_bits);
        if (!s.ctx) {
            fprintf(stderr, "cityhub-sim: %s: %s\n", rtu_dev, modbus_strerror(errno));
            goto out;
        }
        if (modbus_connect(s.ctx) != 0) { /* opens the tty and sets its line */
            fprintf(stderr, "cityhub-sim: open %s: %s\n", rtu_dev, modbus_strerror(errno));
            goto out;
        }
        s.tty = modbus_get_socket(s.ctx);
        s.gap_ns = rtu_gap_ns(baud, parity, data_bits, stop_bits);
        printf("listening on %s (rtu %ld %ld%c%ld)\n", rtu_dev, baud, data_bits, parity, stop_bits);
        fflush(stdout);
        sim_log(&s,
                "profile %s, seed %" PRIu64 ", serving rtu on %s, %ld %ld%c%ld, frame gap %.2f ms",
                profile, seed, rtu_dev, baud, data_bits, parity, stop_bits, s.gap_ns / 1e6);
        rc = sim_serve_rtu(&s) == 0 ? 0 : 1;
        sim_log(&s, "stopping after %" PRIu64 " requests", s.requests);
        goto out;
    }

    /* libmodbus builds the replies (MBAP header included) into s.pair; its
     * own listen and receive are not used */
    s.ctx = modbus_new_tcp_pi(host, port);
    if (!s.ctx) {
        fprintf(stderr, "cityhub-sim: %s\n", modbus_strerror(errno));
        goto out;
    }
    int bound = 0;
    if (sim_listen(&s, host, port, endpoints, &bound) != 0)
        goto out;
    if (strchr(host, ':'))
        printf("listening on [%s]:%d\n", host, bound);
    else
        printf("listening on %s:%d\n", host, bound);
    fflush(stdout);
    if (endpoints > 1)
        sim_log(&s, "profile %s, seed %" PRIu64 ", listening on %zu endpoints %s to %s, backlog %d",
                profile, seed, s.neps, s.eps[0].name, s.eps[s.neps - 1].name, s.backlog);
    else
        sim_log(&s, "profile %s, seed %" PRIu64 ", listening on %s port %d", profile, seed, host,
                bound);

    rc = sim_serve_tcp(&s) == 0 ? 0 : 1;
    sim_log(&s, "stopping after %" PRIu64 " requests", s.requests);

out:
    sim_close_all(&s);
    if (s.ctx) {
        if (s.tty >= 0) { /* restores the line's settings and closes it */
            modbus_set_socket(s.ctx, s.tty);
            modbus_close(s.ctx);
        } else {
            modbus_set_socket(s.ctx, -1);
        }
        modbus_free(s.ctx);
    }
    for (int i = 0; i < 2; i++)
        if (s.pair[i] >= 0)
            close(s.pair[i]);
    sim_profile_free(s.units);
    for (size_t i = 0; i < nsw; i++)
        free(sw[i].ident);
    free(sw);
    if (s.log && s.log != stderr)
        fclose(s.log);
    else
        fflush(stderr);
    return rc;
}
