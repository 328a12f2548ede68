/* drivers/modbus/cmd_common.h — what the Modbus commissioning commands
 * (cmd_scan.c, cmd_read.c, cmd_poll.c) share: their command-line flags
 * (the line to talk on, durations, lists and ranges), and one request and
 * its reply on a line opened from those flags.
 *
 * The line is the poller's own link (link.c, struct mb_link): a TCP
 * connection of the hub's, or a serial line opened and driven by libmodbus;
 * a request and its whole reply within the timeout, cut by the reply's own
 * header, then checked against the request (drv_mb_reply_check:
 * transaction id, protocol id, length, CRC, unit id, function, byte count)
 * before anything is taken from it. */
#ifndef DRV_MODBUS_CMD_COMMON_H
#define DRV_MODBUS_CMD_COMMON_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <modbus.h>

#include "drivers/driver.h"
#include "drivers/modbus/adu.h"
#include "drivers/modbus/bus_priv.h"
#include "drivers/modbus/modbus_priv.h"

#define CMD_EXIT_OK 0
#define CMD_EXIT_FAIL 1
#define CMD_EXIT_USAGE 2

#define CMD_MAX_BAUDS 16
#define CMD_MAX_UNIT 247

/* The commands, for drv_modbus_commands[] (modbus_drv.c). */
int drv_modbus_cmd_scan(int argc, char **argv, const struct drv_cmd_env *env);
int drv_modbus_cmd_read(int argc, char **argv, const struct drv_cmd_env *env);
int drv_modbus_cmd_poll(int argc, char **argv, const struct drv_cmd_env *env);
int drv_modbus_cmd_plan(int argc, char **argv, const struct drv_cmd_env *env);

/* getopt_long values of the line flags (long options only). */
enum {
    CMD_OPT_RTU = 0x100,
    CMD_OPT_TCP,
    CMD_OPT_BAUD,
    CMD_OPT_PARITY,
    CMD_OPT_DATA_BITS,
    CMD_OPT_STOP_BITS,
    CMD_OPT_TIMEOUT,
    CMD_OPT_FIRST_FREE, /* a command's own long options from here */
};

/* The entries of struct option for the line flags (put them first). */
#define CMD_LINE_OPTIONS                                                                           \
    {"rtu", required_argument, NULL, CMD_OPT_RTU}, {"tcp", required_argument, NULL, CMD_OPT_TCP},  \
        {"baud", required_argument, NULL, CMD_OPT_BAUD},                                           \
        {"parity", required_argument, NULL, CMD_OPT_PARITY},                                       \
        {"data-bits", required_argument, NULL, CMD_OPT_DATA_BITS},                                 \
        {"stop-bits", required_argument, NULL, CMD_OPT_STOP_BITS},                                 \
    {                                                                                              \
        "timeout", required_argument, NULL, CMD_OPT_TIMEOUT                                        \
    }

/* The line as the flags say: --rtu DEVICE with its serial settings (scan
 * takes lists of rates and parities, read one of each), or --tcp
 * HOST[:PORT]. */
struct cmd_line {
    int rtu;          /* 1 --rtu, 0 --tcp, -1 neither yet */
    char host[256];   /* tcp */
    char port[8];     /* tcp, "502" unless given */
    char device[128]; /* rtu */
    long baud[CMD_MAX_BAUDS];
    size_t nbaud;
    char parity[3]; /* 'N', 'E', 'O' */
    size_t nparity;
    long data_bits, stop_bits;
    int64_t timeout_ns;
    const char *serial_flag; /* a serial flag that was given (an error with --tcp) */
};

/* Set l to nothing given, with the command's default timeout. */
void cmd_line_init(struct cmd_line *l, int64_t timeout_ns);
/* Take one line flag: 0 taken, CMD_EXIT_USAGE (message printed) bad value,
 * -1 not a line flag. multi: lists allowed for --baud and --parity. */
int cmd_line_option(const char *cmd, struct cmd_line *l, int opt, const char *arg, int multi);
/* After the flags: exactly one of --rtu and --tcp, serial flags only with
 * --rtu, defaults (9600, N, 8, 1) for those not given. 0, or CMD_EXIT_USAGE
 * with the message printed. */
int cmd_line_finish(const char *cmd, struct cmd_line *l);

/* "rtu /dev/ttyUSB0" / "tcp 10.0.0.5:502" ([v6]:502 for IPv6). */
void cmd_line_name(const struct cmd_line *l, char *buf, size_t len);
/* "9600 8N1" for setting (baud index, parity index). */
void cmd_setting_name(const struct cmd_line *l, size_t baud_i, size_t parity_i, char *buf,
                      size_t len);

/* ---- values on the command line ------------------------------------------- */

/* A usage error: "cityhub CMD: message" and a pointer to --help on stderr.
 * Returns CMD_EXIT_USAGE. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long's '?' / ':' for the option it stopped at, as a usage error. */
int cmd_bad_option(const char *cmd, int ch, char **argv);

/* A decimal integer in lo..hi: 0, or -1. */
int cmd_parse_long(const char *s, long lo, long hi, long *out);
/* A duration ("200ms", "1s") in min..max ns: 0, or -1. */
int cmd_parse_duration(const char *s, int64_t min, int64_t max, int64_t *out);
/* A set of unit ids "1-247", "1,2,5-7" within lo..hi into set[0..247]
 * (1 = in); *n gets how many. 0, or -1 with a message in err. */
int cmd_parse_units(const char *s, long lo, long hi, unsigned char set[CMD_MAX_UNIT + 1], size_t *n,
                    char *err, size_t errlen);
/* "1-5, 7" for the set. */
void cmd_units_name(const unsigned char set[CMD_MAX_UNIT + 1], char *buf, size_t len);
/* A duration for people: "200ms", "1.5s", "3m20s". */
void cmd_duration_name(int64_t ns, char *buf, size_t len);
/* The shortest decimal that reads back as v ("228.94186", "-0.1"). */
void cmd_float_name(double v, int single, char *buf, size_t len);

/* ---- one line, one request at a time ---------------------------------------- */

struct cmd_conn {
    struct mb_link link; /* the poller's connection (link.c) */
    int rtu;
    int64_t timeout_ns;
    int64_t gap_ns;  /* rtu: the silence kept between frames (3.5 characters, at least 2 ms) */
    int64_t last_ns; /* rtu: when the line was last busy (monotonic) */
    char name[300];  /* "rtu /dev/ttyUSB0 9600 8N1", "tcp 10.0.0.5:502" */
};

/* Open the line: setting (baud_i, parity_i) of l over RTU (ignored over
 * TCP). 0, or -1 with a message in err. */
int cmd_conn_open(struct cmd_conn *c, const struct cmd_line *l, size_t baud_i, size_t parity_i,
                  char *err, size_t errlen);
void cmd_conn_close(struct cmd_conn *c);
/* Over TCP: close and connect again (after a timeout, so that a late reply
 * is never read as the answer to the next request). 0, or -1 with err. */
int cmd_conn_reconnect(struct cmd_conn *c, char *err, size_t errlen);

/* Send q and read its reply into buf (DRV_MB_ADU_MAX bytes), checked against
 * q. Returns 0 with rep (pointing into buf), or a DRV_MB_FAIL_* kind with a
 * message in msg ("timeout", "exception 2 (illegal data address)", "bad
 * reply: ...", "connection lost: ...") and, for an exception, its code in
 * rep->exception. */
int cmd_transact(struct cmd_conn *c, const struct drv_mb_req *q, uint8_t *buf,
                 struct drv_mb_reply *rep, char *msg, size_t msglen);

/* ---- Read Device Identification (function 0x2B, MEI type 0x0E) -------------- */

#define CMD_IDENT_MAX 3 /* the basic objects: VendorName, ProductCode, MajorMinorRevision */

struct cmd_ident {
    int have[CMD_IDENT_MAX];
    char value[CMD_IDENT_MAX][256]; /* printable ASCII; anything else as '?' */
    int conformity;
    int more;     /* "more follows" was 0xFF */
    int next_obj; /* with more: the object to ask for next */
};

/* Parse the PDU of a Read Device Identification reply (function code
 * first) into id, adding to what is there. Every length is checked against
 * n; the objects must fill the PDU exactly. 0, or -1 with a message. */
int cmd_ident_parse(const uint8_t *pdu, size_t n, struct cmd_ident *id, char *err, size_t errlen);

/* Ask unit for its basic identification (read code 1 from object 0, and
 * on while the device says more follows). Returns 0 with id, or a
 * DRV_MB_FAIL_* kind with msg (for an exception its code in *exception). */
int cmd_identify(struct cmd_conn *c, uint8_t unit, struct cmd_ident *id, int *exception, char *msg,
                 size_t msglen);

#endif
