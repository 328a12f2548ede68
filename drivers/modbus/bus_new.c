/* drivers/modbus/bus_new.c — building one bus (its devices' plans, its
 * libmodbus context with the transport its type names: modbus_new_tcp_pi
 * or modbus_new_rtu), stopping it, freeing it, and its stats. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/modbus/bus_priv.h"
#include "hub/clock.h"

/* ---- the bus's life ------------------------------------------------------ */

/* Register maps shared between devices: a thousand meters of one type have
 * one map between them, not a thousand copies. Each distinct map is kept
 * once, counted, and freed with its last device. */
struct shared_map {
    struct shared_map *next;
    uint64_t hash;
    size_t n, refs;
    struct drv_modbus_register regs[];
};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_map *maps;

static uint64_t map_hash(const struct drv_modbus_register *r, size_t n)
{
    const unsigned char *p = (const unsigned char *)r;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof(*r); i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* d's registers (its own copy) become a shared map. Returns 0 or -1. */
static int share_map(struct drv_modbus_device *d)
{
    uint64_t h = map_hash(d->regs, d->nregs);
    size_t bytes = d->nregs * sizeof(*d->regs);
    pthread_mutex_lock(&maps_lock);
    struct shared_map *m = maps;
    while (m && !(m->hash == h && m->n == d->nregs && memcmp(m->regs, d->regs, bytes) == 0))
        m = m->next;
    if (!m && (m = malloc(sizeof(*m) + bytes))) {
        m->hash = h;
        m->n = d->nregs;
        m->refs = 0;
        memcpy(m->regs, d->regs, bytes);
        m->next = maps;
        maps = m;
    }
    if (m)
        m->refs++;
    pthread_mutex_unlock(&maps_lock);
    if (!m)
        return -1;
    drv_modbus_device_release(d);
    d->regs = m->regs;
    d->nregs = m->n;
    return 0;
}

static void unshare_map(struct drv_modbus_device *d)
{
    if (!d->regs)
        return;
    pthread_mutex_lock(&maps_lock);
    for (struct shared_map **pp = &maps; *pp; pp = &(*pp)->next) {
        struct shared_map *m = *pp;
        if (m->regs != d->regs)
            continue;
        if (--m->refs == 0) {
            *pp = m->next;
            free(m);
        }
        break;
    }
    pthread_mutex_unlock(&maps_lock);
    d->regs = NULL;
    d->nregs = 0;
}

/* The device's tags as our own (the config's may go once bus_new returns). */
static int copy_tags(struct hub_cfg_tags *t, char *err, size_t errlen)
{
    struct hub_cfg_tags src = *t;
    t->n = 0;
    t->tag = NULL;
    for (size_t i = 0; i < src.n; i++)
        if (hub_cfg_tags_add(t, src.tag[i].key, src.tag[i].value, err, errlen) != 0)
            return -1;
    return 0;
}

/* Where each block of d's plan keeps its values: registers in words, bits
 * in bits, block after block. */
static int plan_buffers(struct mb_dev *d)
{
    size_t nw = 0, nb = 0;
    d->slot = calloc((size_t)d->nblocks, sizeof(*d->slot));
    if (!d->slot)
        return -1;
    for (int b = 0; b < d->nblocks; b++) {
        int bits = d->plan[b].table == DRV_MB_COIL || d->plan[b].table == DRV_MB_DISCRETE;
        d->slot[b] = bits ? nb : nw;
        *(bits ? &nb : &nw) += d->plan[b].count;
    }
    d->words = calloc(nw ? nw : 1, sizeof(*d->words));
    d->bits = calloc(nb ? nb : 1, sizeof(*d->bits));
    return d->words && d->bits ? 0 : -1;
}

int drv_modbus_bus_new(const struct drv_modbus_input_cfg *cfg, const struct drv_env *env,
                       void **out, char *err, size_t errlen)
{
    struct mb_ctx *c = NULL;
    *out = NULL;

    if (!cfg || !cfg->bus || !env || !env->sink || !env->sink->emit) {
        snprintf(err, errlen, "modbus: no bus or sink");
        return -1;
    }
    if (cfg->bus->timeout_ns < HUB_NS_PER_MS || cfg->bus->timeout_ns > DRV_MB_TIMEOUT_MAX_NS ||
        cfg->bus->pause_ns < 0 || cfg->bus->pause_ns > DRV_MB_PAUSE_MAX_NS) {
        snprintf(err, errlen, "bus %s: timeout is not 1ms..60s or pause not 0..1s", cfg->bus->name);
        return -1;
    }
    if (cfg->ndevices == 0 || cfg->ndevices > DRV_MB_MAX_DEVICES) {
        snprintf(err, errlen, "bus %s: %zu devices (1..%d)", cfg->bus->name, cfg->ndevices,
                 DRV_MB_MAX_DEVICES);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto nomem;
    if (hub_cond_init(&c->solo_lock, &c->solo_wake) != 0) {
        free(c);
        c = NULL;
        goto nomem;
    }
    atomic_init(&c->failing, 0);
    atomic_init(&c->solo_stop, 0);
    pthread_mutex_init(&c->st_mu, NULL);

    c->bus = *cfg->bus;
    c->sink = *env->sink;
    c->status_every_ns =
        env->status_interval_ns > 0 ? env->status_interval_ns : DRV_MB_STATUS_EVERY_NS;
    snprintf(c->who, sizeof(c->who), "modbus:%s", c->bus.name);
    hub_backoff_init(&c->reconnect, DRV_MB_RECONNECT_BASE_NS, DRV_MB_RECONNECT_MAX_NS,
                     (uint64_t)hub_mono_ns() ^ (uint64_t)(uintptr_t)c);

    c->devs = calloc(cfg->ndevices, sizeof(*c->devs));
    if (!c->devs)
        goto nomem;
    c->ndevs = cfg->ndevices;
    int64_t start = hub_mono_ns();
    for (size_t i = 0; i < c->ndevs; i++) {
        struct mb_dev *d = &c->devs[i];
        if (!cfg->devices[i]) {
            snprintf(err, errlen, "bus %s: device %zu missing", c->bus.name, i + 1);
            goto fail;
        }
        if (drv_modbus_device_resolve(cfg->devices[i], &d->cfg, err, errlen) != 0) {
            d->cfg.tags = (struct hub_cfg_tags){0}; /* still the config's */
            goto fail;
        }
        if (copy_tags(&d->cfg.tags, err, errlen) != 0)
            goto fail;
        if (d->cfg.nregs && share_map(&d->cfg) != 0)
            goto nomem;
        d->shared_map = true;
        if (drv_modbus_check_device(&d->cfg, err, errlen) != 0)
            goto fail;
        if (d->cfg.interval_ns < 10 * HUB_NS_PER_MS ||
            d->cfg.interval_ns > DRV_MB_INTERVAL_MAX_NS) {
            snprintf(err, errlen, "device %s: interval is not 10ms..24h", d->cfg.name);
            goto fail;
        }
        if (d->cfg.unit < 0 || d->cfg.unit > 247) {
            snprintf(err, errlen, "device %s: unit %" PRId64 " is not 0..247", d->cfg.name,
                     d->cfg.unit);
            goto fail;
        }
        if (d->cfg.unit == 0 && c->bus.type == DRV_MB_BUS_RTU) {
            /* On a serial line 0 is the broadcast address: no slave answers a
             * read, and libmodbus would take any slave's reply as the answer. */
            snprintf(err, errlen, "device %s: unit 0 is the broadcast address on a serial bus",
                     d->cfg.name);
            goto fail;
        }
        d->nblocks = drv_modbus_plan(&d->cfg, d->cfg.max_gap >= 0 ? (unsigned)d->cfg.max_gap : 0u,
                                     d->plan, DRV_MB_MAX_REGISTERS);
        if (d->nblocks <= 0) {
            snprintf(err, errlen, "device %s: registers cannot be planned", d->cfg.name);
            goto fail;
        }
        snprintf(d->who, sizeof(d->who), "modbus:%s", d->cfg.name);
        snprintf(d->what, sizeof(d->what), "device %s", d->cfg.name);
        d->next_due = start; /* the pool spreads the first polls (modbus_drv.c) */
        if (plan_buffers(d) != 0)
            goto nomem;
        d->m_skew = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER,
                                    "cityhub_modbus_poll_skew_seconds_total", "device", d->cfg.name,
                                    "sum over polls of how late each started after its due time");
        hub_metric_set_divisor(d->m_skew, 1000000); /* counted in microseconds */
        d->m_polls = hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_modbus_polls_total",
                                     "device", d->cfg.name, "polls of a Modbus device");
        d->m_errors =
            hub_metrics_add(env->metrics, HUB_METRIC_COUNTER, "cityhub_modbus_poll_errors_total",
                            "device", d->cfg.name, "failed polls of a Modbus device");
        static const char *const kinds[] = {"other", "timeout", "exception", "bad_reply",
                                            "connection"};
        for (int k = 0; k <= DRV_MB_FAIL_CONNECTION; k++)
            d->m_fail[k] = hub_metrics_add2(
                env->metrics, HUB_METRIC_COUNTER, "cityhub_modbus_poll_failures_total", "device",
                d->cfg.name, "kind", kinds[k],
                "failed polls by device and kind (timeout, exception, bad_reply, connection, "
                "other)");
    }
    c->link.fd = -1;
    c->link.who = c->who;
    c->link.debug = c->bus.debug != DRV_MB_DEBUG_OFF;
    switch (c->bus.type) {
    case DRV_MB_BUS_TCP:
        if (c->bus.host[0] == '\0') {
            snprintf(err, errlen, "bus %s: host is required for type tcp", c->bus.name);
            goto fail;
        }
        snprintf(c->link.host, sizeof(c->link.host), "%s", c->bus.host);
        c->link.port = c->bus.port;
        break;
    case DRV_MB_BUS_RTU:
        if (c->bus.device[0] == '\0') {
            snprintf(err, errlen, "bus %s: device is required for type rtu", c->bus.name);
            goto fail;
        }
        c->link.rtu = true;
        c->link.device = c->bus.device;
        c->link.mb = modbus_new_rtu(c->bus.device, (int)c->bus.baud, "NEO"[c->bus.parity % 3],
                                    (int)c -> bus.data_bits, (int)c->bus.stop_bits);
        if (!c->link.mb) {
            snprintf(err, errlen, "bus %s: %s", c->bus.name, modbus_strerror(errno));
            goto fail;
        }
        c->link.rs485 = c->bus.rs485 != 0;
        break;
    default:
        snprintf(err, errlen, "bus %s: unknown type %d", c->bus.name, c->bus.type);
        goto fail;
    }
    *out = c;
    return 0;

nomem:
    snprintf(err, errlen, "modbus: out of memory");
fail:
    if (c)
        drv_modbus_bus_free(c);
    return -1;
}

void drv_modbus_bus_free(void *ctx)
{
    struct mb_ctx *c = ctx;
    if (!c)
        return;
    mb_link_close(&c->link);
    if (c->link.mb)
        modbus_free(c->link.mb);
    for (size_t i = 0; c->devs && i < c->ndevs; i++) {
        hub_cfg_tags_free(&c->devs[i].cfg.tags);
        if (c->devs[i].shared_map)
            unshare_map(&c->devs[i].cfg);
        else
            drv_modbus_device_release(&c->devs[i].cfg);
        free(c->devs[i].slot);
        free(c->devs[i].words);
        free(c->devs[i].bits);
    }
    free(c->devs);
    pthread_mutex_destroy(&c->st_mu);
    hub_cond_destroy(&c->solo_lock, &c->solo_wake);
    free(c);
}

void drv_modbus_bus_stats(void *ctx, struct drv_stats *st)
{
    struct mb_ctx *c = ctx;
    st->sources += c->ndevs;
    st->failing += atomic_load(&c->failing);
}

void drv_modbus_bus_sources(void *ctx, drv_source_fn fn, void *arg)
{
    struct mb_ctx *c = ctx;
    for (size_t i = 0; i < c->ndevs; i++) {
        struct mb_dev *d = &c->devs[i];
        char err[ERR_MAX];
        struct drv_source s = {
            .kind = "device",
            .name = d->cfg.name,
            .group = c->bus.name,
            .last_error = err,
            .interval_ns = d->cfg.interval_ns,
            .connected = -1,
        };
        pthread_mutex_lock(&c->st_mu);
        s.failures = d->failures;
        s.last_ok_ns = d->last_ok_ns;
        s.last_error_ns = d->last_error_ns;
        s.skew_ns = d->last_ok_ns || d->last_error_ns ? d->skew_ns : -1;
        memcpy(err, d->last_error, sizeof(err));
        pthread_mutex_unlock(&c->st_mu);
        s.ok = s.failures == 0;
        fn(arg, &s);
    }
}

const char *drv_modbus_bus_name(void *ctx)
{
    return ((struct mb_ctx *)ctx)->bus.name;
}
