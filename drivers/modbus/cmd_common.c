/* drivers/modbus/cmd_common.c — flags, the line and one request/reply for
 * the commissioning commands (cmd_common.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers/modbus/cmd_common.h"
#include "hub/clock.h"
#include "hub/config_map.h"

#define MS 1000000LL

/* ---- values on the command line ------------------------------------------- */

int cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cityhub %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(cityhub %s --help for usage)\n", cmd);
    return CMD_EXIT_USAGE;
}

int cmd_bad_option(const char *cmd, int ch, char **argv)
{
    /* optind is past the option getopt_long stopped at */
    const char *what = optind > 0 ? argv[optind - 1] : "?";
    if (ch == ':')
        return cmd_usage_error(cmd, "option %s needs a value", what);
    if (optopt && optopt < 0x100 && what[0] == '-' && what[1] != '-')
        return cmd_usage_error(cmd, "unknown option -%c", optopt);
    return cmd_usage_error(cmd, "unknown option %s", what);
}

int cmd_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cmd_parse_duration(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (hub_cfg_parse_duration(s, &v) != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* One unit id at *p within lo..hi; *p moved past it. 0 or -1. */
static int unit_at(const char **p, long lo, long hi, long *out)
{
    const char *s = skip_space(*p);
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || v < lo || v > hi)
        return -2;
    *out = v;
    *p = skip_space(end);
    return 0;
}

int cmd_parse_units(const char *s, long lo, long hi, unsigned char set[CMD_MAX_UNIT + 1], size_t *n,
                    char *err, size_t errlen)
{
    memset(set, 0, CMD_MAX_UNIT + 1);
    *n = 0;
    const char *p = s;
    for (;;) {
        long a, b;
        const char *item = p;
        int rc = unit_at(&p, lo, hi, &a);
        if (rc == 0 && *p == '-') {
            p++;
            rc = unit_at(&p, lo, hi, &b);
        } else {
            b = a;
        }
        if (rc == -2) {
            snprintf(err, errlen, "unit ids are %ld-%ld here: \"%s\"", lo, hi, s);
            return -1;
        }
        if (rc != 0 || (*p != ',' && *p != '\0') || b < a) {
            size_t l = strcspn(item, ",");
            snprintf(err, errlen, "bad unit list \"%.*s\" in \"%s\": use e.g. 1-247 or 1,2,5-7",
                     (int)l, item, s);
            return -1;
        }
        for (long u = a; u <= b; u++) {
            if (!set[u])
                (*n)++;
            set[u] = 1;
        }
        if (*p == '\0')
            break;
        p++;
    }
    return 0;
}

void cmd_units_name(const unsigned char set[CMD_MAX_UNIT + 1], char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int u = 0; u <= CMD_MAX_UNIT && off < len; u++) {
        if (!set[u])
            continue;
        int e = u;
        while (e < CMD_MAX_UNIT && set[e + 1])
            e++;
        int w;
        if (e == u)
            w = snprintf(buf + off, len - off, "%s%d", off ? "," : "", u);
        else
            w = snprintf(buf + off, len - off, "%s%d-%d", off ? "," : "", u, e);
        if (w < 0)
            break;
        off += (size_t)w;
        u = e;
    }
}

void cmd_duration_name(int64_t ns, char *buf, size_t len)
{
    if (ns < 1000 * MS) {
        long long ms = (long long)((ns + MS / 2) / MS);
        if (ms == 0 && ns > 0)
            snprintf(buf, len, "%lldus", (long long)(ns / 1000));
        else
            snprintf(buf, len, "%lldms", ms);
    } else if (ns < 60 * 1000 * MS) {
        long long ds = (long long)((ns + 50 * MS) / (100 * MS)); /* tenths of a second */
        if (ds % 10 == 0)
            snprintf(buf, len, "%llds", ds / 10);
        else
            snprintf(buf, len, "%lld.%llds", ds / 10, ds % 10);
    } else {
        long long s = (long long)((ns + 500 * MS) / (1000 * MS));
        if (s < 3600)
            snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
        else
            snprintf(buf, len, "%lldh%02lldm", s / 3600, (s / 60) % 60);
    }
}

void cmd_float_name(double v, int single, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, len, v < 0 ? "-inf" : "inf");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            return;
    }
}

/* ---- the line flags ---------------------------------------------------------- */

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

void cmd_line_init(struct cmd_line *l, int64_t timeout_ns)
{
    memset(l, 0, sizeof(*l));
    l->rtu = -1;
    l->data_bits = 8;
    l->stop_bits = 1;
    l->timeout_ns = timeout_ns;
    snprintf(l->port, sizeof(l->port), "502");
}

/* "HOST", "HOST:PORT", "[V6]", "[V6]:PORT", or a bare IPv6 literal. */
static int parse_host(const char *cmd, struct cmd_line *l, const char *arg)
{
    const char *host = arg, *port = NULL;
    size_t hl;
    if (arg[0] == '[') {
        const char *close = strchr(arg, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return cmd_usage_error(cmd, "bad --tcp \"%s\": use HOST, HOST:PORT or [IPv6]:PORT",
                                   arg);
        host = arg + 1;
        hl = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = strchr(arg, ':');
        if (colon && strchr(colon + 1, ':')) { /* a bare IPv6 literal */
            hl = strlen(arg);
        } else {
            hl = colon ? (size_t)(colon - arg) : strlen(arg);
            if (colon)
                port = colon + 1;
        }
    }
    if (hl == 0 || hl >= sizeof(l->host))
        return cmd_usage_error(cmd, "bad --tcp \"%s\": no host (or longer than %zu)", arg,
                               sizeof(l->host) - 1);
    memcpy(l->host, host, hl);
    l->host[hl] = '\0';
    if (port) {
        long p;
        if (cmd_parse_long(port, 1, 65535, &p) != 0)
            return cmd_usage_error(cmd, "bad port in --tcp \"%s\": 1-65535", arg);
        snprintf(l->port, sizeof(l->port), "%ld", p);
    }
    return 0;
}

static int parse_bauds(const char *cmd, struct cmd_line *l, const char *arg, int multi)
{
    const char *p = arg;
    l->nbaud = 0;
    for (;;) {
        char item[32];
        size_t n = strcspn(p, ",");
        long b;
        if (n >= sizeof(item))
            n = sizeof(item) - 1;
        memcpy(item, p, n);
        item[n] = '\0';
        if (cmd_parse_long(item, 1, 4000000, &b) != 0 || !known_baud(b))
            return cmd_usage_error(cmd,
                                   "bad --baud \"%s\": a standard rate (1200, 2400, 4800, 9600, "
                                   "19200, 38400, 57600, 115200, ...)%s",
                                   item, multi ? ", or a list: 9600,19200" : "");
        for (size_t i = 0; i < l->nbaud; i++)
            if (l->baud[i] == b)
                return cmd_usage_error(cmd, "--baud lists %ld twice", b);
        if (l->nbaud == CMD_MAX_BAUDS)
            return cmd_usage_error(cmd, "--baud: at most %d rates", CMD_MAX_BAUDS);
        l->baud[l->nbaud++] = b;
        p += strcspn(p, ",");
        if (*p == '\0')
            break;
        p++;
    }
    if (!multi && l->nbaud > 1)
        return cmd_usage_error(cmd, "--baud takes one rate here (scan takes a list)");
    return 0;
}

static int parse_parities(const char *cmd, struct cmd_line *l, const char *arg, int multi)
{
    const char *p = arg;
    l->nparity = 0;
    for (;;) {
        size_t n = strcspn(p, ",");
        char c = n == 1 ? p[0] : 0;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != 'N' && c != 'E' && c != 'O')
            return cmd_usage_error(cmd, "bad --parity \"%.*s\": N (none), E (even) or O (odd)%s",
                                   (int)n, p, multi ? ", or a list: N,E" : "");
        for (size_t i = 0; i < l->nparity; i++)
            if (l->parity[i] == c)
                return cmd_usage_error(cmd, "--parity lists %c twice", c);
        l->parity[l->nparity++] = c;
        p += n;
        if (*p == '\0')
            break;
        p++;
    }
    if (!multi && l->nparity > 1)
        return cmd_usage_error(cmd, "--parity takes one here (scan takes a list)");
    return 0;
}

int cmd_line_option(const char *cmd, struct cmd_line *l, int opt, const char *arg, int multi)
{
    switch (opt) {
    case CMD_OPT_RTU:
    case CMD_OPT_TCP:
        if (l->rtu != -1)
            return cmd_usage_error(cmd, "give one line: --rtu DEVICE or --tcp HOST[:PORT]");
        l->rtu = opt == CMD_OPT_RTU;
        if (opt == CMD_OPT_TCP)
            return parse_host(cmd, l, arg);
        if (arg[0] == '\0' || strlen(arg) >= sizeof(l->device))
            return cmd_usage_error(cmd, "bad --rtu \"%s\": a serial device, e.g. /dev/ttyUSB0",
                                   arg);
        snprintf(l->device, sizeof(l->device), "%s", arg);
        return 0;
    case CMD_OPT_BAUD:
        l->serial_flag = "--baud";
        return parse_bauds(cmd, l, arg, multi);
    case CMD_OPT_PARITY:
        l->serial_flag = "--parity";
        return parse_parities(cmd, l, arg, multi);
    case CMD_OPT_DATA_BITS:
        l->serial_flag = "--data-bits";
        if (cmd_parse_long(arg, 7, 8, &l->data_bits) != 0)
            return cmd_usage_error(cmd, "bad --data-bits \"%s\": 8 (Modbus RTU) or 7", arg);
        return 0;
    case CMD_OPT_STOP_BITS:
        l->serial_flag = "--stop-bits";
        if (cmd_parse_long(arg, 1, 2, &l->stop_bits) != 0)
            return cmd_usage_error(cmd, "bad --stop-bits \"%s\": 1 or 2", arg);
        return 0;
    case CMD_OPT_TIMEOUT:
        if (cmd_parse_duration(arg, 1 * MS, DRV_MB_TIMEOUT_MAX_NS, &l->timeout_ns) != 0)
            return cmd_usage_error(cmd,
                                   "bad --timeout \"%s\": a duration from 1ms to 60s, e.g. "
                                   "200ms or 1s",
                                   arg);
        return 0;
    default:
        return -1;
    }
}

int cmd_line_finish(const char *cmd, struct cmd_line *l)
{
    if (l->rtu == -1)
        return cmd_usage_error(cmd, "which line? --rtu DEVICE or --tcp HOST[:PORT]");
    if (!l->rtu && l->serial_flag)
        return cmd_usage_error(cmd, "%s is for a serial line (--rtu), not --tcp", l->serial_flag);
    if (l->nbaud == 0)
        l->baud[l->nbaud++] = 9600;
    if (l->nparity == 0)
        l->parity[l->nparity++] = 'N';
    return 0;
}

void cmd_line_name(const struct cmd_line *l, char *buf, size_t len)
{
    if (l->rtu)
        snprintf(buf, len, "rtu %s", l->device);
    else if (strchr(l->host, ':'))
        snprintf(buf, len, "tcp [%s]:%s", l->host, l->port);
    else
        snprintf(buf, len, "tcp %s:%s", l->host, l->port);
}

void cmd_setting_name(const struct cmd_line *l, size_t baud_i, size_t parity_i, char *buf,
                      size_t len)
{
    snprintf(buf, len, "%ld %ld%c%ld", l->baud[baud_i], l->data_bits, l->parity[parity_i],
             l->stop_bits);
}

/* ---- the line ------------------------------------------------------------------ */

/* The silence that ends an RTU frame: 3.5 characters of a start bit, the
 * data bits, a parity bit and the stop bits; 1.75 ms above 19200 baud (the
 * Modbus serial line spec), never under 2 ms. */
static int64_t rtu_gap_ns(long baud, char parity, long data_bits, long stop_bits)
{
    int64_t bits = 1 + data_bits + (parity != 'N') + stop_bits;
    int64_t gap = baud > 19200 ? 1750000 : (int64_t)(3.5 * (double)bits * 1e9 / (double)baud);
    return gap < 2 * MS ? 2 * MS : gap;
}

int cmd_conn_open(struct cmd_conn *c, const struct cmd_line *l, size_t baud_i, size_t parity_i,
                  char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->rtu = l->rtu;
    c->timeout_ns = l->timeout_ns;
    c->link.fd = -1;
    cmd_line_name(l, c->name, sizeof(c->name));
    c->link.who = c->name;
    if (l->rtu) {
        char set[32];
        cmd_setting_name(l, baud_i, parity_i, set, sizeof(set));
        size_t n = strlen(c->name);
        snprintf(c->name + n, sizeof(c->name) - n, " %s", set);
        c->link.rtu = true;
        c->link.device = l->device;
        c->link.mb = modbus_new_rtu(l->device, (int)l->baud[baud_i], l->parity[parity_i],
                                    (int)l->data_bits, (int)l->stop_bits);
        if (!c->link.mb) {
            snprintf(err, errlen, "%s: %s", c->name, modbus_strerror(errno));
            return -1;
        }
        c->gap_ns = rtu_gap_ns(l->baud[baud_i], l->parity[parity_i], l->data_bits, l->stop_bits);
    } else {
        snprintf(c->link.host, sizeof(c->link.host), "%s", l->host);
        c->link.port = strtol(l->port, NULL, 10);
    }
    char why[512];
    if (mb_link_open(&c->link, c->timeout_ns, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%.200s: cannot %s: %.200s", c->name, l->rtu ? "open" : "connect",
                 why);
        cmd_conn_close(c);
        return -1;
    }
    c->last_ns = hub_mono_ns() - c->gap_ns; /* the line is quiet: send at once */
    return 0;
}

void cmd_conn_close(struct cmd_conn *c)
{
    mb_link_close(&c->link);
    if (c->link.mb)
        modbus_free(c->link.mb);
    c->link.mb = NULL;
}

int cmd_conn_reconnect(struct cmd_conn *c, char *err, size_t errlen)
{
    if (c->rtu)
        return 0;
    mb_link_close(&c->link);
    char why[512];
    if (mb_link_open(&c->link, c->timeout_ns, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%.200s: cannot connect again: %.200s", c->name, why);
        return -1;
    }
    return 0;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One exchange on the poller's own link (link.c: the whole reply within the
 * timeout, cut by its header), then the reply checked against q. */
int cmd_transact(struct cmd_conn *c, const struct drv_mb_req *q, uint8_t *buf,
                 struct drv_mb_reply *rep, char *msg, size_t msglen)
{
    memset(rep, 0, sizeof(*rep));
    if (!c->link.up) {
        snprintf(msg, msglen, "connection lost: not connected");
        return DRV_MB_FAIL_CONNECTION;
    }
    if (c->rtu) {
        int64_t since = hub_mono_ns() - c->last_ns;
        if (since < c->gap_ns)
            sleep_ns(c->gap_ns - since);
    }
    size_t len = 0;
    int kind = mb_link_transact(&c->link, q, buf, &len, hub_mono_ns() + c->timeout_ns, msg, msglen);
    c->last_ns = hub_mono_ns();
    if (kind == 0)
        kind = drv_mb_reply_check(q, buf, len, rep, msg, msglen);
    if (!c->rtu && kind != 0 && kind != DRV_MB_FAIL_EXCEPTION) {
        /* the stream may hold the rest of this reply, or a late one */
        char e[600];
        if (cmd_conn_reconnect(c, e, sizeof(e)) != 0 && kind != DRV_MB_FAIL_CONNECTION) {
            snprintf(msg, msglen, "connection lost: %.200s", e);
            kind = DRV_MB_FAIL_CONNECTION;
        }
    }
    return kind;
}

/* ---- Read Device Identification ---------------------------------------------- */

int cmd_ident_parse(const uint8_t *pdu, size_t n, struct cmd_ident *id, char *err, size_t errlen)
{
    /* fc mei code conformity more next nobj, then (id len bytes)* */
    if (n < 7) {
        snprintf(err, errlen, "bad reply: identification of %zu bytes, at least 7", n);
        return -1;
    }
    if (pdu[0] != 0x2B || pdu[1] != 0x0E) {
        snprintf(err, errlen, "bad reply: function %02X MEI type %02X, asked 2B 0E", pdu[0],
                 pdu[1]);
        return -1;
    }
    if (pdu[2] != 1) {
        snprintf(err, errlen, "bad reply: read device id code %u, asked 1", pdu[2]);
        return -1;
    }
    if (pdu[4] != 0x00 && pdu[4] != 0xFF) {
        snprintf(err, errlen, "bad reply: \"more follows\" is %02X, not 00 or FF", pdu[4]);
        return -1;
    }
    id->conformity = pdu[3];
    id->more = pdu[4] == 0xFF;
    id->next_obj = pdu[5];
    size_t off = 7;
    for (unsigned i = 0; i < pdu[6]; i++) {
        if (off + 2 > n) {
            snprintf(err, errlen, "bad reply: object %u of %u missing", i + 1, pdu[6]);
            return -1;
        }
        unsigned obj = pdu[off], len = pdu[off + 1];
        if (off + 2 + len > n) {
            snprintf(err, errlen, "bad reply: object %u says %u bytes, %zu left", obj, len,
                     n - off - 2);
            return -1;
        }
        if (obj < CMD_IDENT_MAX) {
            char *v = id->value[obj];
            for (unsigned k = 0; k < len; k++) {
                uint8_t ch = pdu[off + 2 + k];
                v[k] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
            }
            v[len] = '\0';
            id->have[obj] = 1;
        }
        off += 2 + len;
    }
    if (off != n) {
        snprintf(err, errlen, "bad reply: %zu bytes after the %u objects", n - off, pdu[6]);
        return -1;
    }
    return 0;
}

int cmd_identify(struct cmd_conn *c, uint8_t unit, struct cmd_ident *id, int *exception, char *msg,
                 size_t msglen)
{
    uint8_t obj = 0;
    memset(id, 0, sizeof(*id));
    *exception = 0;
    for (int round = 0; round < CMD_IDENT_MAX; round++) {
        uint8_t pdu[4] = {0x2B, 0x0E, 0x01, obj};
        struct drv_mb_req q;
        struct drv_mb_reply rep;
        uint8_t buf[DRV_MB_ADU_MAX];
        drv_mb_req_pdu(&q, c->rtu, 0, unit, pdu, sizeof(pdu));
        int kind = cmd_transact(c, &q, buf, &rep, msg, msglen);
        if (kind == DRV_MB_FAIL_EXCEPTION)
            *exception = rep.exception;
        if (kind != 0)
            return round == 0 ? kind : 0; /* a later round: keep what came */
        if (cmd_ident_parse(rep.pdu, rep.pdu_len, id, msg, msglen) != 0)
            return DRV_MB_FAIL_BAD_REPLY;
        /* more follows: ask from the next object, if it is one we want */
        if (!id->more || id->next_obj <= obj || id->next_obj >= CMD_IDENT_MAX)
            break;
        obj = (uint8_t)id->next_obj;
    }
    return 0;
}
