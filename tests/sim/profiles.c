/* tests/sim/profiles.c — the simulated units and how their values move.
 *
 * demo: a traffic counter, an air-quality station and an energy meter whose
 * values follow the local time of day (rush hours, sun, evening load) plus
 * bounded random walks, updated before every reply.
 * test: fixed values for exact assertions, plus a request counter.
 * load: units 1 to 247 with 32 holding registers that change at every
 * request, by a formula (for benchmarks; exact values can still be checked).
 * docs/simulator.md is the exact register map; keep the two in step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/sim/sim.h"

/* ---- random numbers ------------------------------------------------------- */

uint64_t sim_rand(struct sim_rng *r)
{
    /* xorshift64* */
    uint64_t x = r->s ? r->s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double sim_uniform(struct sim_rng *r)
{
    return (double)(sim_rand(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sim_gauss(struct sim_rng *r)
{
    double u1 = sim_uniform(r), u2 = sim_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- register layouts ----------------------------------------------------- */

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

void sim_put32(uint16_t *regs, uint32_t v, const char *order)
{
    uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)v;
    if (strcmp(order, "CDAB") == 0) {
        regs[0] = lo;
        regs[1] = hi;
    } else if (strcmp(order, "BADC") == 0) {
        regs[0] = swap16(hi);
        regs[1] = swap16(lo);
    } else if (strcmp(order, "DCBA") == 0) {
        regs[0] = swap16(lo);
        regs[1] = swap16(hi);
    } else { /* ABCD */
        regs[0] = hi;
        regs[1] = lo;
    }
}

void sim_put_float(uint16_t *regs, float f, const char *order)
{
    uint32_t v;
    memcpy(&v, &f, sizeof(v));
    sim_put32(regs, v, order);
}

/* ---- helpers for plausible values ----------------------------------------- */

/* Local hour of day as a fraction, 0 <= h < 24. */
static double local_hour(double now_s)
{
    time_t t = (time_t)now_s;
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_hour + tm.tm_min / 60.0 + tm.tm_sec / 3600.0;
}

/* A value that drifts to target with time constant tau seconds, plus noise
 * of sd per tau, kept within [lo, hi]. */
static double walk(double x, double target, double tau, double sd, double dt, double lo, double hi,
                   struct sim_rng *rng)
{
    if (dt > 0) {
        double k = 1.0 - exp(-dt / tau);
        double span = dt < tau ? dt / tau : 1.0;
        x += (target - x) * k + sd * sqrt(span) * sim_gauss(rng);
    }
    if (x < lo)
        x = lo;
    if (x > hi)
        x = hi;
    return x;
}

static uint16_t u16_round(double v)
{
    if (v < 0)
        return 0;
    if (v > 65535)
        return 65535;
    return (uint16_t)lround(v);
}

/* Vehicles per hour through the counted crossing, by local hour: quiet
 * nights, a morning rush 7-9 and an evening rush 16-19. */
static double traffic_rate(double h)
{
    static const double per_hour[25] = {60,   40,   30,  30,  50,  150, 600, 1400, 1500,
                                        1000, 800,  850, 900, 850, 800, 900, 1200, 1550,
                                        1450, 1000, 700, 500, 300, 150, 60};
    int i = (int)h;
    if (i < 0)
        i = 0;
    if (i > 23)
        i = 23;
    double f = h - i;
    return per_hour[i] * (1 - f) + per_hour[i + 1] * f;
}

/* ---- demo: unit 1, traffic counter ---------------------------------------- */

enum { T_TOTAL, T_SPEED, T_OCC };

static void traffic_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    double dt = u->last_s > 0 ? now - u->last_s : 0;
    double h = local_hour(now);
    double rate = traffic_rate(h);
    double load = rate / 1550.0; /* 0..1 */
    if (dt > 0) {
        double expect = rate * dt / 3600.0;
        double n = expect + sqrt(expect) * sim_gauss(rng);
        if (n > 0)
            u->state[T_TOTAL] += n;
    }
    u->state[T_SPEED] = walk(u->state[T_SPEED], 60.0 - 35.0 * load, 60, 3.0, dt, 5, 90, rng);
    u->state[T_OCC] = walk(u->state[T_OCC], 2.0 + 33.0 * load, 60, 2.0, dt, 0, 100, rng);

    uint16_t *in = u->map->tab_input_registers;
    in[0] = (uint16_t)((uint64_t)u->state[T_TOTAL] & 0xFFFF);
    in[1] = u16_round(u->state[T_SPEED] * 10);
    sim_put_float(&in[2], (float)u->state[T_OCC], "ABCD");
}

/* ---- demo: unit 2, air-quality station ------------------------------------ */

enum { A_PM25, A_PM10, A_NO2, A_TEMP, A_HUM, A_PRES, A_DRIFT };

static void air_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    double dt = u->last_s > 0 ? now - u->last_s : 0;
    double h = local_hour(now);
    double load = traffic_rate(h) / 1550.0;
    double temp_t = 28.0 + 4.0 * sin(2 * M_PI * (h - 9.0) / 24.0); /* 24 at 3h, 32 at 15h */
    u->state[A_TEMP] = walk(u->state[A_TEMP], temp_t, 300, 0.15, dt, 15, 42, rng);
    double hum_t = 95.0 - (u->state[A_TEMP] - 24.0) * 4.0;
    u->state[A_HUM] = walk(u->state[A_HUM], hum_t, 300, 0.8, dt, 35, 99, rng);
    u->state[A_DRIFT] = walk(u->state[A_DRIFT], 0, 3600, 0.4, dt, -4, 4, rng);
    double pres_t = 1009.0 + 1.5 * sin(2 * M_PI * (h - 10.0) / 12.0) + u->state[A_DRIFT];
    u->state[A_PRES] = walk(u->state[A_PRES], pres_t, 600, 0.05, dt, 995, 1025, rng);
    u->state[A_PM25] = walk(u->state[A_PM25], 22.0 + 30.0 * load, 120, 2.0, dt, 3, 250, rng);
    u->state[A_PM10] =
        walk(u->state[A_PM10], u->state[A_PM25] * 1.7 + 5.0, 120, 3.0, dt, 5, 400, rng);
    u->state[A_NO2] = walk(u->state[A_NO2], 12.0 + 40.0 * load, 120, 1.5, dt, 2, 200, rng);

    uint16_t *in = u->map->tab_input_registers;
    in[0] = u16_round(u->state[A_PM25] * 10);
    in[1] = u16_round(u->state[A_PM10] * 10);
    in[2] = u16_round(u->state[A_NO2]);
    uint16_t *hr = u->map->tab_registers; /* starts at address 10 */
    sim_put_float(&hr[0], (float)u->state[A_TEMP], "CDAB");
    hr[2] = u16_round(u->state[A_HUM] * 10);
    hr[3] = u16_round(u->state[A_PRES] * 10);
}

/* ---- demo: unit 3, energy meter ------------------------------------------- */

enum { E_VOLT, E_FREQ, E_LOAD, E_CLOUD, E_ENERGY, E_POWER };

static void energy_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    double dt = u->last_s > 0 ? now - u->last_s : 0;
    double h = local_hour(now);
    u->state[E_VOLT] = walk(u->state[E_VOLT], 230.0, 30, 0.6, dt, 227, 233, rng);
    u->state[E_FREQ] = walk(u->state[E_FREQ], 50.0, 20, 0.012, dt, 49.95, 50.05, rng);
    double load_t = 600.0 + 2200.0 * exp(-(h - 19.5) * (h - 19.5) / (2 * 1.5 * 1.5)) +
                    900.0 * exp(-(h - 7.0) * (h - 7.0) / 2.0);
    u->state[E_LOAD] = walk(u->state[E_LOAD], load_t, 60, 80, dt, 150, 6000, rng);
    u->state[E_CLOUD] = walk(u->state[E_CLOUD], 0.85, 600, 0.08, dt, 0.3, 1.0, rng);
    double solar = 0;
    if (h > 6.0 && h < 18.0)
        solar = 4200.0 * pow(sin(M_PI * (h - 6.0) / 12.0), 1.5) * u->state[E_CLOUD];
    double power = u->state[E_LOAD] - solar; /* W, negative = export */
    if (dt > 0 && u->state[E_POWER] > 0)
        u->state[E_ENERGY] += u->state[E_POWER] * dt / 3600.0; /* imported Wh */
    u->state[E_POWER] = power;
    double current = fabs(power) / (u->state[E_VOLT] * 0.95);

    uint16_t *hr = u->map->tab_registers;
    sim_put_float(&hr[0], (float)u->state[E_VOLT], "ABCD");
    sim_put_float(&hr[2], (float)current, "ABCD");
    sim_put32(&hr[4], (uint32_t)(int32_t)lround(power), "ABCD");
    sim_put32(&hr[6], (uint32_t)fmod(u->state[E_ENERGY], 4294967296.0), "CDAB");
    sim_put_float(&hr[8], (float)u->state[E_FREQ], "DCBA");
}

/* ---- test: units 1 to 8 ---------------------------------------------------- */

static void test_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    (void)rng;
    (void)now;
    u->map->tab_input_registers[0] = (uint16_t)u->requests; /* wraps */
}

static void test_fill(struct sim_unit *u)
{
    uint16_t *hr = u->map->tab_registers;
    hr[0] = 0x1234;
    hr[1] = 0xFFFE; /* int16 -2 */
    sim_put32(&hr[2], 0x89ABCDEFu, "ABCD");
    sim_put32(&hr[4], (uint32_t)(int32_t)-123456, "ABCD");
    sim_put32(&hr[6], 0x40490FDBu, "ABCD"); /* 3.14159274 */
    sim_put32(&hr[8], 0x40490FDBu, "CDAB");
    sim_put32(&hr[10], 0x40490FDBu, "BADC");
    sim_put32(&hr[12], 0x40490FDBu, "DCBA");
    hr[20] = 235;
}

/* ---- load: units 1 to 247 -------------------------------------------------- */

#define LOAD_REGS 32

/* After the unit's n-th request: register 0 = n, register k = n*k + 100*unit
 * + k, all mod 65536. */
static void load_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    (void)rng;
    (void)now;
    uint16_t *hr = u->map->tab_registers;
    uint64_t n = u->requests;
    hr[0] = (uint16_t)n;
    for (unsigned k = 1; k < LOAD_REGS; k++)
        hr[k] = (uint16_t)(n * k + 100u * (unsigned)u->id + k);
}

/* ---- building ------------------------------------------------------------- */

static struct sim_unit *unit_new(int id, int start_hr, int nb_hr, int start_in, int nb_in,
                                 sim_update_fn update)
{
    struct sim_unit *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->id = id;
    u->update = update;
    u->map = modbus_mapping_new_start_address(0, 0, 0, 0, (unsigned)start_hr, (unsigned)nb_hr,
                                              (unsigned)start_in, (unsigned)nb_in);
    if (!u->map) {
        free(u);
        return NULL;
    }
    return u;
}

int sim_profile_build(const char *name, struct sim_unit *units[SIM_MAX_UNIT + 1],
                      struct sim_rng *rng)
{
    memset(units, 0, sizeof(units[0]) * (SIM_MAX_UNIT + 1));
    if (strcmp(name, "test") == 0) {
        for (int id = 1; id <= 8; id++) {
            units[id] = unit_new(id, 0, 21, 0, 1, test_update);
            if (!units[id])
                goto fail;
            test_fill(units[id]);
        }
        return 0;
    }
    if (strcmp(name, "load") == 0) {
        for (int id = 1; id <= SIM_MAX_UNIT; id++) {
            units[id] = unit_new(id, 0, LOAD_REGS, 0, 0, load_update);
            if (!units[id])
                goto fail;
            load_update(units[id], rng, 0);
        }
        return 0;
    }
    if (strcmp(name, "demo") != 0)
        return -1;

    struct sim_unit *u = units[1] = unit_new(1, 0, 0, 0, 4, traffic_update);
    if (!u)
        goto fail;
    u->state[T_TOTAL] = 20000.0 + (double)(sim_rand(rng) % 20000);
    u->state[T_SPEED] = 45;
    u->state[T_OCC] = 10;

    u = units[2] = unit_new(2, 10, 4, 0, 3, air_update);
    if (!u)
        goto fail;
    u->state[A_PM25] = 30;
    u->state[A_PM10] = 55;
    u->state[A_NO2] = 25;
    u->state[A_TEMP] = 28;
    u->state[A_HUM] = 78;
    u->state[A_PRES] = 1009;

    u = units[3] = unit_new(3, 0, 10, 0, 0, energy_update);
    if (!u)
        goto fail;
    u->state[E_VOLT] = 230;
    u->state[E_FREQ] = 50;
    u->state[E_LOAD] = 900;
    u->state[E_CLOUD] = 0.85;
    u->state[E_ENERGY] = 4000000.0 + (double)(sim_rand(rng) % 1000000);
    u->state[E_POWER] = 0;

    /* first values right away, so a first poll reads something real */
    double now = (double)time(NULL);
    for (int id = 1; id <= 3; id++) {
        units[id]->update(units[id], rng, now);
        units[id]->last_s = now;
    }
    return 0;

fail:
    sim_profile_free(units);
    return -1;
}

void sim_profile_free(struct sim_unit *units[SIM_MAX_UNIT + 1])
{
    for (int i = 0; i <= SIM_MAX_UNIT; i++) {
        if (!units[i])
            continue;
        modbus_mapping_free(units[i]->map);
        free(units[i]);
        units[i] = NULL;
    }
}
