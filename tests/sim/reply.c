/* tests/sim/reply.c — cityhub-sim: answer one request and apply the fault
 * switches to the reply (docs/simulator.md, "Fault switches").
 *
 * Replies are made by libmodbus (modbus_reply / modbus_reply_exception)
 * into a socketpair, so the fault switches can hold them back or damage
 * them before they go out on the client's socket. Read Device
 * Identification (function 0x2B, MEI type 0x0E), which libmodbus's server
 * does not implement, is built here. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tests/sim/sim_priv.h"

#define FC_MEI 0x2B
#define MEI_DEVICE_ID 0x0E

/* Take back what libmodbus wrote into the socketpair (one send of at most
 * one ADU). Returns its length. A recv on a stream socketpair returns all that
 * is queued up to its size, so a second recv (EAGAIN) is only made when the
 * first filled the buffer. */
static size_t drain_pair(struct sim *s, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        uint8_t tmp[2 * REPLY_MAX];
        ssize_t n = recv(s->pair[1], tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n <= 0)
            break;
        if (len + (size_t)n <= cap) {
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
        }
        if ((size_t)n < sizeof(tmp))
            break;
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
uint16_t sim_crc16(const uint8_t *p, size_t n)
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
        uint16_t crc = sim_crc16(adu, body);
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

/* Damage a reply. Read replies (functions 1 to 4) get a real damage, with
 * lengths and CRC consistent with it; others (exceptions, writes, device
 * identification) just lose their last byte. F_BAD_CRC (RTU) flips the CRC
 * of any reply. */
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
    int fc = adu[h];
    int is_read = body >= h + 2 && fc >= 1 && fc <= 4 && adu[h + 1] + h + 2 == body;
    if (!is_read) {
        if (*len > h + 1)
            (*len)--;
        if (!s->rtu)
            seal(s, adu, *len);
        return;
    }
    unsigned item = fc <= 2 ? 1 : 2; /* a byte of bits, or a register */
    switch (f) {
    case F_SHORT: /* one register (one byte of bits) less, counts consistent */
        if (adu[h + 1] >= item) {
            adu[h + 1] = (uint8_t)(adu[h + 1] - item);
            body -= item;
        }
        break;
    case F_WRONG_FC: /* holding <-> input, coils <-> discrete inputs */
        adu[h] = (uint8_t)(fc == 1 ? 2 : fc == 2 ? 1 : fc == 3 ? 4 : 3);
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

/* Read Device Identification, basic objects (0 VendorName, 1 ProductCode,
 * 2 MajorMinorRevision), conformity level 0x01. Codes 1-3 stream the basic
 * objects from the one asked (from 0 when it is past 2), code 4 gives the one
 * object asked. Returns the reply's length, or 0 after an exception reply was
 * made into adu (its code in *exc). */
static size_t ident_reply(struct sim *s, const struct sim_unit *u, const uint8_t *req,
                          size_t req_len, uint8_t *adu, int *exc)
{
    size_t h = hdr_len(s);
    *exc = 0;
    if (req_len < h + 4 + tail_len(s)) {
        *exc = MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    }
    if (req[h + 1] != MEI_DEVICE_ID) {
        *exc = MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
        return 0;
    }
    unsigned code = req[h + 2], obj = req[h + 3];
    if (code < 1 || code > 4) {
        *exc = MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return 0;
    }
    const char *objs[3] = {u->vendor, u->product, u->version};
    unsigned first, last;
    if (code == 4) {
        if (obj > 2) {
            *exc = MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
            return 0;
        }
        first = last = obj;
    } else {
        first = obj > 2 ? 0 : obj;
        last = 2;
    }
    size_t n = 0;
    if (s->rtu) {
        adu[n++] = req[0];
    } else {
        memcpy(adu, req, 4); /* transaction id, protocol id */
        n = 6;
        adu[n++] = req[6];
    }
    adu[n++] = FC_MEI;
    adu[n++] = MEI_DEVICE_ID;
    adu[n++] = (uint8_t)code;
    adu[n++] = 0x01; /* conformity level: basic, stream access */
    adu[n++] = 0x00; /* more follows: no */
    adu[n++] = 0x00; /* next object id */
    adu[n++] = (uint8_t)(last - first + 1);
    for (unsigned i = first; i <= last; i++) {
        size_t l = strlen(objs[i]);
        adu[n++] = (uint8_t)i;
        adu[n++] = (uint8_t)l;
        memcpy(adu + n, objs[i], l);
        n += l;
    }
    return seal(s, adu, n);
}

/* "unit 1 fc 3 addr 0 count 2", or for device identification "unit 1 fc 43
 * mei 14 code 1 object 0". */
static const char *describe(const struct sim *s, const uint8_t *req, size_t req_len, char *buf,
                            size_t cap)
{
    size_t h = hdr_len(s), t = tail_len(s);
    int unit = req[h - 1], fc = req[h];
    if (fc == FC_MEI && req_len >= h + 4 + t) {
        snprintf(buf, cap, "unit %d fc %d mei %u code %u object %u", unit, fc, req[h + 1],
                 req[h + 2], req[h + 3]);
        return buf;
    }
    int full = req_len >= h + 5 + t;
    unsigned addr = full ? (unsigned)(req[h + 1] << 8 | req[h + 2]) : 0;
    unsigned count = full ? (unsigned)(req[h + 3] << 8 | req[h + 4]) : 0;
    snprintf(buf, cap, "unit %d fc %d addr %u count %u", unit, fc, addr, count);
    return buf;
}

#define LOG_REQ(fmt, ...)                                                                          \
    do {                                                                                           \
        if (!s->log_off) {                                                                         \
            char d_[80];                                                                           \
            sim_log(s, "%s -> " fmt, describe(s, req, (size_t)req_len, d_, sizeof(d_)),            \
                    __VA_ARGS__);                                                                  \
        }                                                                                          \
    } while (0)

/* Answer one request (a whole ADU, TCP or RTU) that arrived on c. */
void sim_handle(struct sim *s, struct client *c, const uint8_t *req, int req_len)
{
    uint8_t adu[REPLY_MAX];
    size_t len = 0, h = hdr_len(s);
    int unit = req[h - 1], fc = req[h];
    struct sim_unit *u = unit <= SIM_MAX_UNIT ? s->units[unit] : NULL;
    enum fault f = F_NONE;
    char what[96] = "", notes[160] = "";
    int switched = 0; /* an exception of a switch: never damaged */

    s->requests++;
    modbus_set_socket(s->ctx, s->pair[0]);
    if (!u && s->rtu) {
        /* on a serial line an absent slave is silent */
        LOG_REQ("%s", "no answer (no such unit)");
        return;
    }
    if (!u) {
        modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_GATEWAY_TARGET);
        len = drain_pair(s, adu, sizeof(adu) - 2);
        LOG_REQ("%s", "exception 11 (no such unit)");
        if (len > 0)
            sim_queue_reply(s, c, unit, adu, len, s->delay_ns, 0, 0);
        return;
    }
    u->requests++;
    if (u->dead) {
        LOG_REQ("%s", "no answer (dead unit)");
        return;
    }
    if (u->update) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
        u->update(u, &s->rng, now);
        u->last_s = now;
    }
    int busy = 0;
    if (!u->exception && u->busy)
        busy = (u->busy_seq++ % (u->busy + 1)) < u->busy;
    if (u->exception || busy) {
        int code = u->exception ? u->exception : MODBUS_EXCEPTION_SLAVE_OR_SERVER_BUSY;
        modbus_reply_exception(s->ctx, req, (unsigned)code);
        len = drain_pair(s, adu, sizeof(adu) - 2);
        if (busy)
            snprintf(what, sizeof(what), "exception 6 (busy, %u of every %u)", u->busy,
                     u->busy + 1);
        else
            snprintf(what, sizeof(what), "exception %d (switch)", code);
        switched = 1;
    } else if (fc == FC_MEI && u->no_ident) {
        modbus_reply_exception(s->ctx, req, MODBUS_EXCEPTION_ILLEGAL_FUNCTION);
        len = drain_pair(s, adu, sizeof(adu) - 2);
        snprintf(what, sizeof(what), "exception 1 (no device identification)");
        switched = 1;
    } else if (fc == FC_MEI) {
        int exc;
        len = ident_reply(s, u, req, (size_t)req_len, adu, &exc);
        if (exc) {
            modbus_reply_exception(s->ctx, req, (unsigned)exc);
            len = drain_pair(s, adu, sizeof(adu) - 2);
        }
    } else {
        modbus_reply(s->ctx, req, req_len, u->map);
        len = drain_pair(s, adu, sizeof(adu) - 2);
    }
    if (len == 0) {
        LOG_REQ("%s", "no reply made");
        return;
    }
    if (!switched) {
        snprintf(what, sizeof(what), "%s", len > h && (adu[h] & 0x80) ? "exception" : "ok");
        if (u->shorten)
            f = F_SHORT;
        else if (u->garbage)
            f = (u->requests % 2) ? F_WRONG_FC : F_WRONG_COUNT;
        else if (u->bad_crc)
            f = F_BAD_CRC;
        else if (s->fault_every && s->requests % s->fault_every == 0)
            f = (enum fault)(F_SHORT + (s->requests / s->fault_every) % 3);
    }

    size_t nl = 0;
#define NOTE(...)                                                                                  \
    do {                                                                                           \
        if (nl < sizeof(notes))                                                                    \
            nl += (size_t)snprintf(notes + nl, sizeof(notes) - nl, __VA_ARGS__);                   \
    } while (0)
    if (u->wrong_unit) {
        int other = (unit + 1) % 248;
        adu[h - 1] = (uint8_t)other;
        if (s->rtu)
            seal(s, adu, len - 2);
        NOTE(" (wrong unit id %d)", other);
    }
    if (u->bad_protocol && !s->rtu) {
        adu[2] = 0x00;
        adu[3] = 0x01;
        NOTE(" (protocol id 1)");
    }
    if (f != F_NONE) {
        damage(s, adu, &len, f);
        NOTE("%s", f == F_SHORT      ? " (damaged: short)"
                   : f == F_WRONG_FC ? " (damaged: wrong function)"
                   : f == F_BAD_CRC  ? " (damaged: bad CRC)"
                                     : " (damaged: wrong byte count)");
    }
    if (u->slow_ns > 0)
        NOTE(" (slow: %lld ms)", (long long)(u->slow_ns / 1000000));
    if (u->drip_ns > 0)
        NOTE(" (drip: a byte every %lld ms)", (long long)(u->drip_ns / 1000000));
    if (u->close_half && !s->rtu)
        NOTE(" (close after %zu of %zu bytes)", len / 2, len);
#undef NOTE
    if (notes[0] || f != F_NONE || switched || sim_log_routine(s))
        LOG_REQ("%s%s", what, notes);
    sim_queue_reply(s, c, unit, adu, len, s->delay_ns + u->slow_ns, u->drip_ns,
                    u->close_half && !s->rtu);
}
