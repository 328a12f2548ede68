/* tests/sim/sim.h — cityhub-sim: simulated Modbus TCP/RTU slaves (the register
 * maps are in docs/simulator.md). sim.c is the server (libmodbus, select
 * loop, fault switches); profiles.c makes the units and their values. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdint.h>

#include <modbus.h>

#define SIM_MAX_UNIT 247

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

    /* fault switches */
    int dead;      /* never answer */
    int exception; /* 0, or the exception code to answer with */
    int shorten;   /* answer one register short */
    int garbage;   /* answer a wrong function code / byte count */
    int bad_crc;   /* rtu: answer with a wrong CRC */
};

/* Build the units of a profile ("demo", "test" or "load") into units[0..247]
 * (NULL where no unit). Returns 0, or -1 (unknown profile or no memory). */
int sim_profile_build(const char *name, struct sim_unit *units[SIM_MAX_UNIT + 1],
                      struct sim_rng *rng);
void sim_profile_free(struct sim_unit *units[SIM_MAX_UNIT + 1]);

/* Store v into two registers in the given order ("ABCD", "CDAB", "BADC",
 * "DCBA"); A is the most significant byte. */
void sim_put32(uint16_t *regs, uint32_t v, const char *order);
void sim_put_float(uint16_t *regs, float f, const char *order);

#endif
