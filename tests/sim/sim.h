/* tests/sim/sim.h — cityhub-sim: simulated Modbus TCP/RTU slaves (the register
 * maps are in docs/simulator.md). sim.c is the command line, server.c the
 * event loops (epoll over TCP, poll on a tty), reply.c answers one request
 * and applies the fault switches; profiles.c makes the units and their
 * values. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdint.h>

#include <modbus.h>

#define SIM_MAX_UNIT 247
#define SIM_IDENT_MAX 80 /* longest device identification string */

struct sim_rng {
    uint64_t s;
};
uint64_t sim_rand(struct sim_rng *r);
double sim_uniform(struct sim_rng *r); /* [0, 1) */
double sim_gauss(struct sim_rng *r);   /* mean 0, sd 1 */

struct sim_unit;
typedef void (*sim_update_fn)(struct sim_unit *u, struct sim_rng *rng, double now_s);

/* One simulated slave. */
struct sim_unit {
    int id;
    modbus_mapping_t *map;
    sim_update_fn update; /* called before each reply (may be NULL) */
    double last_s;        /* wall time of the last update, 0 = never */
    double state[16];     /* the profile's own variables */
    uint64_t requests;    /* requests addressed to this unit */

    /* Read Device Identification (0x2B / 0x0E), basic objects 0-2 */
    char vendor[SIM_IDENT_MAX + 1];
    char product[SIM_IDENT_MAX + 1];
    char version[SIM_IDENT_MAX + 1];
    int no_ident; /* answer 0x2B with exception 1 (illegal function) */

    /* fault switches */
    int dead;          /* never answer */
    int exception;     /* 0, or the exception code to answer with */
    int shorten;       /* answer one register short */
    int garbage;       /* answer a wrong function code / byte count */
    int bad_crc;       /* rtu: answer with a wrong CRC */
    int wrong_unit;    /* the reply carries unit id + 1 (mod 248) */
    int bad_protocol;  /* tcp: the reply's MBAP protocol id is 1 */
    int close_half;    /* tcp: send half the reply, then close */
    int64_t drip_ns;   /* 0, or send the reply a byte at a time, this far apart */
    int64_t slow_ns;   /* extra delay of this unit's replies */
    unsigned busy;     /* 0, or answer exception 6 to busy requests, then one normally */
    uint64_t busy_seq; /* requests seen by the busy switch */
};

/* Build the units of a profile ("demo", "test", "load" or "types") into
 * units[0..247] (NULL where no unit); each unit identifies itself as vendor
 * "cityhub-sim", product = the profile's name, version "1.0". Returns 0, or
 * -1 (unknown profile or no memory). */
int sim_profile_build(const char *name, struct sim_unit *units[SIM_MAX_UNIT + 1],
                      struct sim_rng *rng);
void sim_profile_free(struct sim_unit *units[SIM_MAX_UNIT + 1]);

/* Store a value into registers in the given order ("ABCD", "CDAB", "BADC",
 * "DCBA"); A is the most significant byte. For n registers: ABCD = registers
 * most significant first, each high byte first; CDAB = the registers in
 * reverse order, bytes as they are; BADC = registers in order, the two bytes
 * of each swapped; DCBA = registers reversed and bytes swapped (little-endian).
 * For one register, ABCD = CDAB (as is) and BADC = DCBA (bytes swapped). */
void sim_put16(uint16_t *regs, uint16_t v, const char *order);
void sim_put32(uint16_t *regs, uint32_t v, const char *order);
void sim_put64(uint16_t *regs, uint64_t v, const char *order);
void sim_put_float(uint16_t *regs, float f, const char *order);
void sim_put_double(uint16_t *regs, double d, const char *order);
/* A string into nregs registers, two characters per register, NUL padded:
 * first character in the high byte (ABCD, CDAB) or the low byte (BADC, DCBA);
 * the registers always in order. */
void sim_put_string(uint16_t *regs, unsigned nregs, const char *str, const char *order);

#endif
