/* tests/sim/profiles.c — the simulated units and how their values move.
 *
 * demo: a traffic counter, an air-quality station and an energy meter whose
 * values follow the local time of day (rush hours, sun, evening load) plus
 * bounded random walks, updated before every reply.
 * test: fixed values for exact assertions, plus a request counter.
 * load: units 1 to 247 with 32 holding registers that change at every
 * request, by a formula (for benchmarks; exact values can still be checked).
 * types: units 1 and 2 with every integer, float and string type in every
 * byte order at fixed addresses, for decoding tests.
 * docs/simulator.md is the exact register map; keep the two in step. */
#include <math.h>
#include <stdio.h>
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

/* words[0..n-1], most significant first, into regs in the order. */
static void put_words(uint16_t *regs, const uint16_t *words, unsigned n, const char *order)
{
    int reverse = strcmp(order, "CDAB") == 0 || strcmp(order, "DCBA") == 0;
    int swap = strcmp(order, "BADC") == 0 || strcmp(order, "DCBA") == 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = words[reverse ? n - 1 - i : i];
        regs[i] = swap ? swap16(w) : w;
    }
}

void sim_put16(uint16_t *regs, uint16_t v, const char *order)
{
    put_words(regs, &v, 1, order);
}

void sim_put32(uint16_t *regs, uint32_t v, const char *order)
{
    uint16_t w[2] = {(uint16_t)(v >> 16), (uint16_t)v};
    put_words(regs, w, 2, order);
}

void sim_put64(uint16_t *regs, uint64_t v, const char *order)
{
    uint16_t w[4] = {(uint16_t)(v >> 48), (uint16_t)(v >> 32), (uint16_t)(v >> 16), (uint16_t)v};
    put_words(regs, w, 4, order);
}

void sim_put_float(uint16_t *regs, float f, const char *order)
{
    uint32_t v;
    memcpy(&v, &f, sizeof(v));
    sim_put32(regs, v, order);
}

void sim_put_double(uint16_t *regs, double d, const char *order)
{
    uint64_t v;
    memcpy(&v, &d, sizeof(v));
    sim_put64(regs, v, order);
}

void sim_put_string(uint16_t *regs, unsigned nregs, const char *str, const char *order)
{
    int swap = strcmp(order, "BADC") == 0 || strcmp(order, "DCBA") == 0;
    size_t len = strlen(str);
    for (unsigned i = 0; i < nregs; i++) {
        uint8_t first = 2 * i < len ? (uint8_t)str[2 * i] : 0;
        uint8_t second = 2 * i + 1 < len ? (uint8_t)str[2 * i + 1] : 0;
        regs[i] = swap ? (uint16_t)(second << 8 | first) : (uint16_t)(first << 8 | second);
    }
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
    u->map->tab_input_bits[0] = sim_uniform(rng) * 100.0 < u->state[T_OCC]; /* vehicle_present */
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
    u->map->tab_input_bits[0] = u->state[A_PM25] > 50.0; /* pm2_5_alarm */
    u->map->tab_input_bits[1] = u->state[A_NO2] > 40.0;  /* no2_alarm */
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
    u->map->tab_input_bits[0] = power < 0; /* exporting */
    u->map->tab_input_bits[1] = 1;         /* grid_ok */
}

/* ---- bit patterns ---------------------------------------------------------- */

/* Coil / discrete input k = bit k of the pattern (test and types profiles). */
#define COIL_PATTERN 0xC3A5u
#define DISCRETE_PATTERN 0x5A3Cu

static void put_bits(uint8_t *bits, unsigned n, unsigned pattern)
{
    for (unsigned k = 0; k < n; k++)
        bits[k] = (uint8_t)((pattern >> (k % 16)) & 1);
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
    put_bits(u->map->tab_bits, 16, COIL_PATTERN);
    put_bits(u->map->tab_input_bits, 16, DISCRETE_PATTERN);
}

/* ---- load: units 1 to 247 -------------------------------------------------- */

#define LOAD_REGS 32

/* After the unit's n-th request: register 0 = n, register k = n*k + 100*unit
 * + k, all mod 65536; discrete input k = bit 0 of register k, coil k = bit 1
 * of register k. */
static void load_update(struct sim_unit *u, struct sim_rng *rng, double now)
{
    (void)rng;
    (void)now;
    uint16_t *hr = u->map->tab_registers;
    uint64_t n = u->requests;
    hr[0] = (uint16_t)n;
    for (unsigned k = 1; k < LOAD_REGS; k++)
        hr[k] = (uint16_t)(n * k + 100u * (unsigned)u->id + k);
    for (unsigned k = 0; k < LOAD_REGS; k++) {
        u->map->tab_input_bits[k] = (uint8_t)(hr[k] & 1);
        u->map->tab_bits[k] = (uint8_t)((hr[k] >> 1) & 1);
    }
}

/* ---- types: units 1 and 2, every type in every byte order ----------------- */

#define TYPES_REGS 1000

static const char *const orders[4] = {"ABCD", "CDAB", "BADC", "DCBA"};

/* The same layout in holding and input registers; docs/simulator.md has the
 * table (address, type, order, value, raw registers). */
static void types_fill_regs(uint16_t *r)
{
    for (int o = 0; o < 4; o++) {
        const char *ord = orders[o];
        sim_put16(&r[100 + o], (uint16_t)(int16_t)-12345, ord);
        sim_put16(&r[110 + o], 54321, ord);
        sim_put32(&r[200 + 2 * o], (uint32_t)(int32_t)-123456789, ord);
        sim_put32(&r[210 + 2 * o], 3000000000u, ord);
        sim_put_float(&r[220 + 2 * o], 228.94186f, ord);
        sim_put64(&r[300 + 4 * o], (uint64_t)(int64_t)-1234567890123456789LL, ord);
        sim_put64(&r[320 + 4 * o], 12345678901234567890ULL, ord);
        sim_put_double(&r[340 + 4 * o], 3.141592653589793, ord);
        sim_put_string(&r[400 + 8 * o], 8, "CITYHUB-SIM-0001", ord);
        sim_put_string(&r[440 + 8 * o], 8, "CITYHUB", ord);
    }
    /* extremes, ABCD only */
    sim_put16(&r[500], 0x8000, "ABCD");                /* int16 -32768 */
    sim_put16(&r[501], 0xFFFF, "ABCD");                /* uint16 65535 */
    sim_put32(&r[502], 0x80000000u, "ABCD");           /* int32 min */
    sim_put32(&r[504], 0xFFFFFFFFu, "ABCD");           /* uint32 max */
    sim_put64(&r[506], 0x8000000000000000ULL, "ABCD"); /* int64 min */
    sim_put64(&r[510], 0xFFFFFFFFFFFFFFFFULL, "ABCD"); /* uint64 max */
    sim_put_float(&r[514], -1.5f, "ABCD");             /* float32 -1.5 */
    sim_put_double(&r[516], -0.1, "ABCD");             /* float64 -0.1 */
    sim_put32(&r[520], 0x7FC00000u, "ABCD");           /* float32 NaN */
    sim_put32(&r[522], 0x7F800000u, "ABCD");           /* float32 +inf */
    sim_put64(&r[524], 0x7FF8000000000000ULL, "ABCD"); /* float64 NaN */
    /* bits of a register */
    r[900] = 0xA5C3;
    r[901] = 0x8001;
}

static void types_fill(struct sim_unit *u)
{
    types_fill_regs(u->map->tab_registers);
    types_fill_regs(u->map->tab_input_registers);
    put_bits(u->map->tab_bits, 16, COIL_PATTERN);
    put_bits(u->map->tab_input_bits, 16, DISCRETE_PATTERN);
}

/* ---- building ------------------------------------------------------------- */

static struct sim_unit *unit_new(int id, int nb_coils, int nb_discrete, int start_hr, int nb_hr,
                                 int start_in, int nb_in, sim_update_fn update)
{
    struct sim_unit *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->id = id;
    u->update = update;
    u->map = modbus_mapping_new_start_address(0, (unsigned)nb_coils, 0, (unsigned)nb_discrete,
                                              (unsigned)start_hr, (unsigned)nb_hr,
                                              (unsigned)start_in, (unsigned)nb_in);
    if (!u->map) {
        free(u);
        return NULL;
    }
    return u;
}

static void set_ident(struct sim_unit *units[SIM_MAX_UNIT + 1], const char *profile)
{
    for (int id = 0; id <= SIM_MAX_UNIT; id++) {
        struct sim_unit *u = units[id];
        if (!u)
            continue;
        snprintf(u->vendor, sizeof(u->vendor), "cityhub-sim");
        snprintf(u->product, sizeof(u->product), "%s", profile);
        snprintf(u->version, sizeof(u->version), "1.0");
    }
}

static int build(const char *name, struct sim_unit *units[SIM_MAX_UNIT + 1], struct sim_rng *rng)
{
    if (strcmp(name, "test") == 0) {
        for (int id = 1; id <= 8; id++) {
            units[id] = unit_new(id, 16, 16, 0, 21, 0, 1, test_update);
            if (!units[id])
                return -1;
            test_fill(units[id]);
        }
        return 0;
    }
    if (strcmp(name, "types") == 0) {
        for (int id = 1; id <= 2; id++) {
            units[id] = unit_new(id, 16, 16, 0, TYPES_REGS, 0, TYPES_REGS, NULL);
            if (!units[id])
                return -1;
            types_fill(units[id]);
        }
        return 0;
    }
    if (strcmp(name, "load") == 0) {
        for (int id = 1; id <= SIM_MAX_UNIT; id++) {
            units[id] = unit_new(id, LOAD_REGS, LOAD_REGS, 0, LOAD_REGS, 0, 0, load_update);
            if (!units[id])
                return -1;
            load_update(units[id], rng, 0);
        }
        return 0;
    }
    if (strcmp(name, "demo") != 0)
        return -1;

    struct sim_unit *u = units[1] = unit_new(1, 8, 8, 0, 0, 0, 4, traffic_update);
    if (!u)
        return -1;
    u->state[T_TOTAL] = 20000.0 + (double)(sim_rand(rng) % 20000);
    u->state[T_SPEED] = 45;
    u->state[T_OCC] = 10;

    u = units[2] = unit_new(2, 8, 8, 10, 4, 0, 3, air_update);
    if (!u)
        return -1;
    u->state[A_PM25] = 30;
    u->state[A_PM10] = 55;
    u->state[A_NO2] = 25;
    u->state[A_TEMP] = 28;
    u->state[A_HUM] = 78;
    u->state[A_PRES] = 1009;

    u = units[3] = unit_new(3, 8, 8, 0, 10, 0, 0, energy_update);
    if (!u)
        return -1;
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
}

int sim_profile_build(const char *name, struct sim_unit *units[SIM_MAX_UNIT + 1],
                      struct sim_rng *rng)
{
    memset(units, 0, sizeof(units[0]) * (SIM_MAX_UNIT + 1));
    if (build(name, units, rng) != 0) {
        sim_profile_free(units);
        return -1;
    }
    set_ident(units, name);
    return 0;
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
