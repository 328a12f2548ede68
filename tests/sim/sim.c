/* tests/sim/sim.c — cityhub-sim, simulated Modbus TCP and RTU slaves for the
 * demo, the integration tests and the benchmarks (docs/simulator.md).
 *
 *   cityhub-sim --listen HOST:PORT | --rtu DEVICE [--baud N] [--parity N|E|O]
 *               [--data-bits N] [--stop-bits N]
 *               [--profile demo|test|load] [--seed N] [--log FILE]
 *               [--dead-unit N] [--exception-unit N[:CODE]] [--short-unit N]
 *               [--garbage-unit N] [--bad-crc-unit N] [--fault-every K]
 *               [--delay-ms N]
 *
 * One libmodbus TCP context serves every client from a select loop (after
 * libmodbus's tests/bandwidth-server-many-up.c). The unit id of a request
 * (byte 6 of the MBAP header) picks the unit and its own modbus_mapping_t; a
 * request for a unit that does not exist is answered with exception 0x0B
 * (gateway target device failed to respond), as a Modbus gateway would.
 *
 * Replies are made by libmodbus (modbus_reply / modbus_reply_exception)
 * into a socketpair, so the fault switches can hold them back (--delay-ms)
 * or damage them before they go out on the client's socket.
 *
 * --rtu serves the same units on a serial line (a tty, e.g. one end of a
 * socat pty pair) with a libmodbus RTU context: libmodbus opens and sets up
 * the tty (modbus_connect) and builds every reply with its CRC. The frames
 * are cut here, not by modbus_receive: libmodbus's RTU server takes one slave
 * id per context, returns 0 for a frame addressed to any other id and then
 * swallows the *next* frame as that slave's answer — right on a multi-drop
 * line with other slaves, wrong here where one process is every slave and an
 * absent slave answers nothing. So a request ends when it has the length its
 * function code implies, or at a silence of 3.5 characters; a frame with a bad
 * CRC is ignored; unit 0 (broadcast) and unit ids the profile lacks get no
 * answer, as on a real line. One request at a time, in order. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tests/sim/sim.h"

#define MAX_CLIENTS 128
#define MAX_PENDING 1024
#define REPLY_MAX (MODBUS_TCP_MAX_ADU_LENGTH + 8)
#define RTU_BUF (2 * MODBUS_RTU_MAX_ADU_LENGTH + 16)

struct pending {
    int fd;
    int64_t due_ns; /* monotonic */
    size_t len;
    uint8_t data[REPLY_MAX];
};

struct sim {
    modbus_t *ctx;
    int rtu;        /* serving Modbus RTU on tty, not TCP */
    int tty;        /* rtu: the serial line (owned by ctx) */
    int64_t gap_ns; /* rtu: the silence that ends a frame (3.5 characters) */
    int listen_fd;
    int clients[MAX_CLIENTS];
    size_t nclients;
    int pair[2]; /* replies are written to pair[0] and read back from pair[1] */
    struct sim_unit *units[SIM_MAX_UNIT + 1];
    struct sim_rng rng;
    FILE *log;
    uint64_t requests; /* every request, any unit */
    uint64_t fault_every;
    int64_t delay_ns;
    struct pending *pending; /* FIFO ring */
    size_t pend_head, pend_len;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void logf_(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct sim *s, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%H:%M:%S", &tm);
    fprintf(s->log, "%s.%03ld sim: ", when, ts.tv_nsec / 1000000L);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
    fflush(s->log);
}

/* ---- usage ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: cityhub-sim --listen HOST:PORT [options]\n"
          "       cityhub-sim --rtu DEVICE [--baud N] [--parity N|E|O] [--data-bits N]\n"
          "                   [--stop-bits N] [options]\n"
          "  --listen HOST:PORT     address to serve Modbus TCP on; IPv6 as [::1]:1502;\n"
          "                         port 0 picks a free one (printed on stdout)\n"
          "  --rtu DEVICE           serve Modbus RTU on the serial device (a tty, e.g. one\n"
          "                         end of a socat pty pair) instead; --baud (default\n"
          "                         9600), --parity N|E|O (N), --data-bits 7|8 (8),\n"
          "                         --stop-bits 1|2 (1). Absent units stay silent.\n"
          "  --profile demo|test|load  register map (default demo), see docs/simulator.md\n"
          "  --seed N               random seed of the demo values (default: time)\n"
          "  --log FILE             log requests and faults to FILE (default stderr)\n"
          "fault switches (combine freely; unit switches may repeat):\n"
          "  --dead-unit N          never answer unit N (the client times out)\n"
          "  --exception-unit N[:CODE]  answer unit N with exception CODE (default 2)\n"
          "  --short-unit N         answer unit N one register short (byte count and MBAP\n"
          "                         length consistent, so the frame is whole but short)\n"
          "  --garbage-unit N       answer unit N with a wrong function code, then a wrong\n"
          "                         byte count, alternately\n"
          "  --bad-crc-unit N       rtu: answer unit N with a reply whose CRC is wrong\n"
          "  --fault-every K        damage every K-th request to any unit (short, wrong\n"
          "                         function, wrong byte count in turn)\n"
          "  --delay-ms N           send every reply N ms late (other clients are served\n"
          "                         meanwhile)\n"
          "unknown units get exception 11 (gateway target failed to respond) over TCP,\n"
          "no answer at all over RTU.\n"
          "\n"
          "profile demo (floats IEEE-754 single; order as in docs/simulator.md):\n"
          "  unit 1 traffic  input 0 vehicles_total uint16 (wraps), 1 speed_avg km/h*10,\n"
          "                  2-3 occupancy %% float32 ABCD\n"
          "  unit 2 air      input 0 pm2_5 ug/m3*10, 1 pm10 ug/m3*10, 2 no2 ppb (uint16);\n"
          "                  holding 10-11 temperature degC float32 CDAB,\n"
          "                  12 humidity %%*10, 13 pressure hPa*10 (uint16)\n"
          "  unit 3 energy   holding 0-1 voltage V float32 ABCD, 2-3 current A float32 ABCD,\n"
          "                  4-5 active_power W int32 ABCD, 6-7 energy_total Wh uint32 CDAB,\n"
          "                  8-9 frequency Hz float32 DCBA\n"
          "profile test (units 1 to 8 alike):\n"
          "  holding 0 0x1234; 1 int16 -2; 2-3 uint32 0x89ABCDEF ABCD; 4-5 int32 -123456 ABCD;\n"
          "  6-7 / 8-9 / 10-11 / 12-13 float32 3.14159274 in ABCD / CDAB / BADC / DCBA;\n"
          "  20 uint16 235; input 0 request counter of the unit (uint16, wraps)\n"
          "profile load (units 1 to 247 alike, for benchmarks):\n"
          "  holding 0-31 uint16, after the unit's n-th request: register 0 = n,\n"
          "  register k = n*k + 100*unit + k (mod 65536)\n",
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

/* ---- replies ----------------------------------------------------------------- */

/* Take back what libmodbus wrote into the socketpair. Returns its length. */
static size_t drain_pair(struct sim *s, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        uint8_t tmp[REPLY_MAX];
        ssize_t n = recv(s->pair[1], tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n <= 0)
            break;
        if (len + (size_t)n <= cap) {
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
        }
    }
    return len;
}

/* The ADU's frame: TCP has a 7-byte MBAP header (unit id last) and no
 * checksum; RTU has the unit id alone in front and a CRC-16 behind. */
static size_t hdr_len(const struct sim *s)
{
    return s->rtu ? 1 : 7;
}

static size_t tail_len(const struct sim *s)
{
    return s->rtu ? 2 : 0;
}

/* Modbus CRC-16 (polynomial 0xA001 reflected, init 0xFFFF); on the wire the
 * low byte goes first. */
static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

/* Make the frame's own length or check fields agree with its body of
 * body bytes (header included, CRC excluded); returns the new total. */
static size_t seal(const struct sim *s, uint8_t *adu, size_t body)
{
    if (s->rtu) {
        uint16_t crc = crc16(adu, body);
        adu[body] = (uint8_t)crc;
        adu[body + 1] = (uint8_t)(crc >> 8);
        return body + 2;
    }
    size_t l = body - 6;
    adu[4] = (uint8_t)(l >> 8);
    adu[5] = (uint8_t)l;
    return body;
}

enum fault { F_NONE, F_SHORT, F_WRONG_FC, F_WRONG_COUNT, F_BAD_CRC };

/* Damage a reply. Read replies (function 3/4) get a real damage, with
 * lengths and CRC consistent with it; others (exceptions, writes) just lose
 * their last byte. F_BAD_CRC (RTU) flips the CRC of any reply. */
static void damage(const struct sim *s, uint8_t *adu, size_t *len, enum fault f)
{
    size_t h = hdr_len(s), t = tail_len(s);
    if (*len < h + 1 + t)
        return;
    if (f == F_BAD_CRC) {
        if (s->rtu)
            adu[*len - 1] ^= 0xFF;
        return;
    }
    size_t body = *len - t;
    int is_read = body >= h + 2 && (adu[h] == 3 || adu[h] == 4) && adu[h + 1] + h + 2 == body;
    if (!is_read) {
        if (*len > h + 1)
            (*len)--;
        if (!s->rtu)
            seal(s, adu, *len);
        return;
    }
    switch (f) {
    case F_SHORT: /* one register less, counts consistent */
        if (adu[h + 1] >= 2) {
            adu[h + 1] = (uint8_t)(adu[h + 1] - 2);
            body -= 2;
        }
        break;
    case F_WRONG_FC: /* holding <-> input */
        adu[h] = adu[h] == 3 ? 4 : 3;
        break;
    case F_WRONG_COUNT: /* two stray bytes, counted */
        adu[h + 1] = (uint8_t)(adu[h + 1] + 2);
        adu[body++] = 0xDE;
        adu[body++] = 0xAD;
        break;
    default:
        break;
    }
    *len = seal(s, adu, body);
}

static void send_now(struct sim *s, int fd, const uint8_t *p, size_t len)
{
    ssize_t n = s->rtu ? write(fd, p, len) : send(fd, p, len, MSG_NOSIGNAL);
    if (n != (ssize_t)len)
        logf_(s, "fd %d: send: %s", fd, n < 0 ? strerror(errno) : "short write");
}

static void queue_reply(struct sim *s, int fd, const uint8_t *p, size_t len)
{
    if (s->delay_ns <= 0 || s->pend_len == MAX_PENDING) {
        if (s->delay_ns > 0)
            logf_(s, "fd %d: %d replies pending, sending at once", fd, MAX_PENDING);
        send_now(s, fd, p, len);
        return;
    }
    struct pending *q = &s->pending[(s->pend_head + s->pend_len) % MAX_PENDING];
    q->fd = fd;
    q->due_ns = mono_ns() + s->delay_ns;
    q->len = len;
    memcpy(q->data, p, len);
    s->pend_len++;
}

/* Send the delayed replies that are due; returns ns until the next one, or
 * -1 if none is left. The delay is the same for all, so the ring is in due
 * order. */
static int64_t flush_pending(struct sim *s)
{
    int64_t now = mono_ns();
    while (s->pend_len > 0) {
        struct pending *q = &s->pending[s->pend_head];
        if (q->due_ns > now)
            return q->due_ns - now;
        if (q->fd >= 0)
            send_now(s, q->fd, q->data, q->len);
        s->pend_head = (s->pend_head + 1) % MAX_PENDING;
        s->pend_len--;
    }
    return -1;
}

static void forget_fd(struct sim *s, int fd)
{
    for (size_t i = 0; i < s->pend_len; i++) {
        struct pending *q = &s->pending[(s->pend_head + i) % MAX_PENDING];
        if (q->fd == fd)
            q->fd = -1;
    }
}

/* Answer one request (a whole ADU, TCP or RTU) that arrived on fd. */
static void handle(struct sim *s, int fd, const uint8_t *req, int req_len)
{
    uint8_t adu[REPLY_MAX];
    size_t len, h = hdr_len(s);
    int unit = req[h - 1], fc = req[h];
    int full = (size_t)req_len >= h + 5 + tail_len(s);
    unsigned addr = full ? (unsigned)(req[h + 1] << 8 | req[h + 2]) : 0;
    unsigned count = full ? (unsigned)(req[h + 3] << 8 | req[h + 4]) : 0;
    struct sim_unit *u = unit <= SIM_MAX_UNIT ? s->units[unit] : NULL;
    enum fault f = F_NONE;

    s->requests++;
    modbus_set_socket(s->ctx, s->pair[0]);
    if (!u && s->rtu) {
        /* on a serial line an absent slave is silent */
        logf_(s, "unit %d fc %d addr %u count %u -> no answer (no such unit)", unit, fc, addr,
              count);
        return;
    }
    if (!u) {
        modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET);
        len = drain_pair(s, adu, sizeof(adu) - 2);
        logf_(s, "unit %d fc %d addr %u count %u -> exception 11 (no such unit)", unit, fc, addr,
              count);
        goto out;
    }
    u->requests++;
    if (u->dead) {
        logf_(s, "unit %d fc %d addr %u count %u -> no answer (dead unit)", unit, fc, addr, count);
        return;
    }
    if (u->update) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
        u->update(u, &s->rng, now);
        u->last_s = now;
    }
    if (u->exception) {
        modbus_reply_exception(s->ctx, req, (unsigned)u->exception);
        len = drain_pair(s, adu, sizeof(adu) - 2);
        logf_(s, "unit %d fc %d addr %u count %u -> exception %d (switch)", unit, fc, addr, count,
              u->exception);
        goto out;
    }
    modbus_reply(s->ctx, req, req_len, u->map);
    len = drain_pair(s, adu, sizeof(adu) - 2);
    if (u->shorten)
        f = F_SHORT;
    else if (u->garbage)
        f = (u->requests % 2) ? F_WRONG_FC : F_WRONG_COUNT;
    else if (u->bad_crc)
        f = F_BAD_CRC;
    else if (s->fault_every && s->requests % s->fault_every == 0)
        f = (enum fault)(F_SHORT + (s->requests / s->fault_every) % 3);
    if (f != F_NONE && len > 0)
        damage(s, adu, &len, f);
    logf_(s, "unit %d fc %d addr %u count %u -> %s%s", unit, fc, addr, count,
          len > h && (adu[h] & 0x80) ? "exception" : "ok",
          f == F_NONE       ? ""
          : f == F_SHORT    ? " (damaged: short)"
          : f == F_WRONG_FC ? " (damaged: wrong function)"
          : f == F_BAD_CRC  ? " (damaged: bad CRC)"
                            : " (damaged: wrong byte count)");
out:
    if (len > 0)
        queue_reply(s, fd, adu, len);
}

/* ---- the loop ------------------------------------------------------------------ */

static void drop_client(struct sim *s, size_t i)
{
    logf_(s, "fd %d: client gone", s->clients[i]);
    forget_fd(s, s->clients[i]);
    close(s->clients[i]);
    s->clients[i] = s->clients[--s->nclients];
}

static int serve(struct sim *s)
{
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);

    while (!g_stop) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(s->listen_fd, &rd);
        int maxfd = s->listen_fd;
        for (size_t i = 0; i < s->nclients; i++) {
            FD_SET(s->clients[i], &rd);
            if (s->clients[i] > maxfd)
                maxfd = s->clients[i];
        }
        int64_t wait = flush_pending(s);
        struct timespec ts = {1, 0};
        if (wait >= 0 && wait < 1000000000LL) {
            ts.tv_sec = 0;
            ts.tv_nsec = (long)wait;
        }
        int n = pselect(maxfd + 1, &rd, NULL, NULL, &ts, &orig);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            logf_(s, "select: %s", strerror(errno));
            return -1;
        }
        if (n == 0)
            continue;
        if (FD_ISSET(s->listen_fd, &rd)) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            int fd = accept(s->listen_fd, (struct sockaddr *)&ss, &sl);
            if (fd >= 0 && (s->nclients == MAX_CLIENTS || fd >= FD_SETSIZE)) {
                logf_(s, "fd %d: refused, %d clients already", fd, MAX_CLIENTS);
                close(fd);
            } else if (fd >= 0) {
                s->clients[s->nclients++] = fd;
                logf_(s, "fd %d: new client", fd);
            }
        }
        for (size_t i = 0; i < s->nclients;) {
            int fd = s->clients[i];
            if (!FD_ISSET(fd, &rd)) {
                i++;
                continue;
            }
            modbus_set_socket(s->ctx, fd);
            int rc = modbus_receive(s->ctx, req);
            if (rc < 0) {
                drop_client(s, i); /* closed, or not Modbus: hang up */
                continue;
            }
            if (rc >= 8)
                handle(s, fd, req, rc);
            i++;
        }
    }
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return 0;
}

/* ---- the serial line ------------------------------------------------------------ */

/* The length of the RTU request starting at b (n bytes so far) as its
 * function code implies: > 0 when known, 0 when more bytes are needed to
 * know it, -1 for a function whose length we do not know (the frame then
 * ends at the silence). */
static long rtu_request_len(const uint8_t *b, size_t n)
{
    if (n < 2)
        return 0;
    switch (b[1]) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6: /* address, count/value */
        return 8;
    case 7:
    case 11:
    case 12:
    case 17: /* no data */
        return 4;
    case 15:
    case 16: /* address, count, byte count, data */
        return n < 7 ? 0 : 9 + (long)b[6];
    case 22: /* mask write */
        return 10;
    case 23: /* read/write multiple */
        return n < 11 ? 0 : 13 + (long)b[10];
    default:
        return -1;
    }
}

/* One whole frame from the line: check it as a slave does and answer. */
static void rtu_frame(struct sim *s, const uint8_t *f, size_t n)
{
    if (n < 4) {
        logf_(s, "rtu: %zu stray byte(s) ignored", n);
        return;
    }
    uint16_t crc = crc16(f, n - 2);
    if (f[n - 2] != (uint8_t)crc || f[n - 1] != (uint8_t)(crc >> 8)) {
        logf_(s, "rtu: frame of %zu bytes (unit %d fc %d) with a bad CRC ignored", n, f[0], f[1]);
        return;
    }
    if (f[0] == MODBUS_BROADCAST_ADDRESS) {
        logf_(s, "unit 0 fc %d -> no answer (broadcast, ignored)", f[1]);
        return;
    }
    handle(s, s->tty, f, (int)n);
}

static int serve_rtu(struct sim *s)
{
    uint8_t buf[RTU_BUF];
    size_t len = 0;
    int64_t last = 0; /* monotonic ns of the last byte received */
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);

    int rc = 0;
    while (!g_stop) {
        int64_t wait = flush_pending(s);
        if (len > 0) { /* a frame is open: it ends at the silence */
            int64_t left = last + s->gap_ns - mono_ns();
            if (left <= 0) {
                rtu_frame(s, buf, len);
                len = 0;
                continue;
            }
            if (wait < 0 || left < wait)
                wait = left;
        }
        struct timespec ts = {1, 0};
        if (wait >= 0 && wait < 1000000000LL) {
            ts.tv_sec = 0;
            ts.tv_nsec = (long)wait;
        }
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(s->tty, &rd);
        int n = pselect(s->tty + 1, &rd, NULL, NULL, &ts, &orig);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            logf_(s, "select: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0)
            continue;
        ssize_t r = read(s->tty, buf + len, sizeof(buf) - len);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) { /* EIO: the other end of a pty is gone; 0: hung up */
            logf_(s, "rtu: read: %s", r < 0 ? strerror(errno) : "hung up");
            rc = -1;
            break;
        }
        len += (size_t)r;
        last = mono_ns();
        /* answer the whole requests at the front at once, not a silence later */
        for (;;) {
            long want = rtu_request_len(buf, len);
            if (want <= 0 || (size_t)want > len)
                break;
            rtu_frame(s, buf, (size_t)want);
            memmove(buf, buf + want, len - (size_t)want);
            len -= (size_t)want;
        }
        if (len == sizeof(buf)) {
            logf_(s, "rtu: %zu bytes without a silence, dropped", len);
            len = 0;
        }
    }
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return rc;
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

/* ---- main ---------------------------------------------------------------------- */

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
    OPT_DEAD,
    OPT_EXC,
    OPT_SHORT,
    OPT_GARBAGE,
    OPT_BAD_CRC,
    OPT_EVERY,
    OPT_DELAY,
    OPT_HELP
};

struct unit_switch {
    int kind;
    int unit;
    int code;
};

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
        {"dead-unit", required_argument, NULL, OPT_DEAD},
        {"exception-unit", required_argument, NULL, OPT_EXC},
        {"short-unit", required_argument, NULL, OPT_SHORT},
        {"garbage-unit", required_argument, NULL, OPT_GARBAGE},
        {"bad-crc-unit", required_argument, NULL, OPT_BAD_CRC},
        {"fault-every", required_argument, NULL, OPT_EVERY},
        {"delay-ms", required_argument, NULL, OPT_DELAY},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct sim s;
    struct unit_switch sw[64];
    size_t nsw = 0;
    const char *listen_arg = NULL, *rtu_dev = NULL, *profile = "demo", *log_path = NULL;
    long baud = 9600, data_bits = 8, stop_bits = 1;
    int parity = 'N', serial_opts = 0, crc_switch = 0;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int rc = 1;
    long v;

    memset(&s, 0, sizeof(s));
    s.listen_fd = -1;
    s.tty = -1;
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
                return 2;
            }
            serial_opts = 1;
            break;
        case OPT_PARITY:
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0])) {
                fprintf(stderr, "cityhub-sim: bad --parity %s (N, E or O)\n", optarg);
                return 2;
            }
            parity = optarg[0];
            serial_opts = 1;
            break;
        case OPT_DATA_BITS:
            if (parse_int(optarg, 7, 8, &data_bits) != 0) {
                fprintf(stderr, "cityhub-sim: bad --data-bits %s (7 or 8)\n", optarg);
                return 2;
            }
            serial_opts = 1;
            break;
        case OPT_STOP_BITS:
            if (parse_int(optarg, 1, 2, &stop_bits) != 0) {
                fprintf(stderr, "cityhub-sim: bad --stop-bits %s (1 or 2)\n", optarg);
                return 2;
            }
            serial_opts = 1;
            break;
        case OPT_PROFILE:
            profile = optarg;
            break;
        case OPT_LOG:
            log_path = optarg;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) {
                fprintf(stderr, "cityhub-sim: bad --seed %s\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_DEAD:
        case OPT_EXC:
        case OPT_SHORT:
        case OPT_GARBAGE:
        case OPT_BAD_CRC: {
            char arg[32];
            snprintf(arg, sizeof(arg), "%s", optarg);
            char *colon = strchr(arg, ':');
            long code = 2;
            if (colon) {
                *colon = '\0';
                if (c != OPT_EXC || parse_int(colon + 1, 1, MODBUS_EXCEPTION_MAX - 1, &code) != 0) {
                    fprintf(stderr, "cityhub-sim: bad unit switch %s\n", optarg);
                    return 2;
                }
            }
            if (parse_int(arg, 0, SIM_MAX_UNIT, &v) != 0 || nsw == sizeof(sw) / sizeof(sw[0])) {
                fprintf(stderr, "cityhub-sim: bad unit %s (0..%d)\n", optarg, SIM_MAX_UNIT);
                return 2;
            }
            if (c == OPT_BAD_CRC)
                crc_switch = 1;
            sw[nsw++] = (struct unit_switch){c, (int)v, (int)code};
            break;
        }
        case OPT_EVERY:
            if (parse_int(optarg, 1, 1000000000L, &v) != 0) {
                fprintf(stderr, "cityhub-sim: bad --fault-every %s\n", optarg);
                return 2;
            }
            s.fault_every = (uint64_t)v;
            break;
        case OPT_DELAY:
            if (parse_int(optarg, 0, 600000L, &v) != 0) {
                fprintf(stderr, "cityhub-sim: bad --delay-ms %s\n", optarg);
                return 2;
            }
            s.delay_ns = v * 1000000LL;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!listen_arg == !rtu_dev || optind != argc) {
        if (listen_arg && rtu_dev)
            fprintf(stderr, "cityhub-sim: --listen or --rtu, not both\n");
        usage(stderr);
        return 2;
    }
    if (!rtu_dev && (serial_opts || crc_switch)) {
        fprintf(stderr, "cityhub-sim: --baud, --parity, --data-bits, --stop-bits and "
                        "--bad-crc-unit need --rtu\n");
        return 2;
    }
    char host[256], port[16];
    if (listen_arg && split_listen(listen_arg, host, sizeof(host), port, sizeof(port)) != 0) {
        fprintf(stderr, "cityhub-sim: bad --listen %s: use HOST:PORT or [V6]:PORT\n", listen_arg);
        return 2;
    }
    s.rtu = rtu_dev != NULL;
    s.rng.s = seed ? seed : 1;
    if (sim_profile_build(profile, s.units, &s.rng) != 0) {
        fprintf(stderr, "cityhub-sim: unknown profile %s (demo, test or load)\n", profile);
        return 2;
    }
    for (size_t i = 0; i < nsw; i++) {
        struct sim_unit *u = s.units[sw[i].unit];
        if (!u) {
            fprintf(stderr, "cityhub-sim: profile %s has no unit %d\n", profile, sw[i].unit);
            rc = 2;
            goto out;
        }
        if (sw[i].kind == OPT_DEAD)
            u->dead = 1;
        else if (sw[i].kind == OPT_EXC)
            u->exception = sw[i].code;
        else if (sw[i].kind == OPT_SHORT)
            u->shorten = 1;
        else if (sw[i].kind == OPT_BAD_CRC)
            u->bad_crc = 1;
        else
            u->garbage = 1;
    }
    if (log_path) {
        s.log = fopen(log_path, "a");
        if (!s.log) {
            fprintf(stderr, "cityhub-sim: %s: %s\n", log_path, strerror(errno));
            s.log = stderr;
            goto out;
        }
    }
    s.pending = calloc(MAX_PENDING, sizeof(*s.pending));
    if (!s.pending || socketpair(AF_UNIX, SOCK_STREAM, 0, s.pair) != 0) {
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
        logf_(&s,
              "profile %s, seed %" PRIu64 ", serving rtu on %s, %ld %ld%c%ld, frame gap %.2f ms",
              profile, seed, rtu_dev, baud, data_bits, parity, stop_bits, s.gap_ns / 1e6);
        rc = serve_rtu(&s) == 0 ? 0 : 1;
        logf_(&s, "stopping after %" PRIu64 " requests", s.requests);
        goto out;
    }

    s.ctx = modbus_new_tcp_pi(host, port);
    if (!s.ctx) {
        fprintf(stderr, "cityhub-sim: %s\n", modbus_strerror(errno));
        goto out;
    }
    s.listen_fd = modbus_tcp_pi_listen(s.ctx, 16);
    if (s.listen_fd < 0) {
        fprintf(stderr, "cityhub-sim: listen on %s: %s\n", listen_arg, modbus_strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int bound = 0;
    if (getsockname(s.listen_fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (strchr(host, ':'))
        printf("listening on [%s]:%d\n", host, bound);
    else
        printf("listening on %s:%d\n", host, bound);
    fflush(stdout);
    logf_(&s, "profile %s, seed %" PRIu64 ", listening on %s port %d", profile, seed, host, bound);

    rc = serve(&s) == 0 ? 0 : 1;
    logf_(&s, "stopping after %" PRIu64 " requests", s.requests);

out:
    while (s.nclients > 0)
        drop_client(&s, s.nclients - 1);
    if (s.listen_fd >= 0)
        close(s.listen_fd);
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
    free(s.pending);
    sim_profile_free(s.units);
    if (s.log && s.log != stderr)
        fclose(s.log);
    return rc;
}
