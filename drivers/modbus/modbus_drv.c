/* drivers/modbus/modbus_drv.c — the Modbus input's descriptor: the sections
 * it owns (buses, devices), and one runner per bus that has devices.
 *
 * init groups the devices by bus and builds each bus (bus.c) with its
 * transport chosen by the bus's type: modbus_new_tcp_pi or modbus_new_rtu.
 * A bus without devices is not polled (logged). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "drivers/modbus/bus_priv.h"
#include "drivers/modbus/cmd_common.h"
#include "drivers/modbus/modbus_priv.h"
#include "drivers/modbus/profile.h"
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/log.h"

/* The pool: buses not being served wait in a min-heap by due time. One
 * worker (the timer) sleeps until the earliest is due; the others sleep
 * until there is work. A worker takes the due bus out of the heap, serves
 * it (one device's poll), and puts it back with its new due time. */
struct mb_driver {
    struct mb_ctx **bus; /* every polled bus */
    size_t nbus;
    size_t workers;

    pthread_mutex_t lock;
    pthread_cond_t timer_cv; /* the timer waits here, until the top is due */
    pthread_cond_t idle_cv;  /* the others */
    bool timer_taken;
    int64_t timer_until;
    struct mb_ctx **heap;
    size_t nheap;
    atomic_int stopping;
};

static bool before(const struct mb_ctx *a, const struct mb_ctx *b)
{
    return a->due < b->due;
}

static void heap_set(struct mb_driver *m, size_t i, struct mb_ctx *c)
{
    m->heap[i] = c;
    c->heap_at = i;
}

static void heap_up(struct mb_driver *m, size_t i)
{
    struct mb_ctx *c = m->heap[i];
    while (i > 0 && before(c, m->heap[(i - 1) / 2])) {
        heap_set(m, i, m->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(m, i, c);
}

static void heap_down(struct mb_driver *m, size_t i)
{
    struct mb_ctx *c = m->heap[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= m->nheap)
            break;
        if (k + 1 < m->nheap && before(m->heap[k + 1], m->heap[k]))
            k++;
        if (!before(m->heap[k], c))
            break;
        heap_set(m, i, m->heap[k]);
        i = k;
    }
    heap_set(m, i, c);
}

static void heap_push(struct mb_driver *m, struct mb_ctx *c)
{
    c->due = drv_mb_bus_due(c); /* fixed while queued: only serving changes it */
    heap_set(m, m->nheap++, c);
    heap_up(m, m->nheap - 1);
}

static struct mb_ctx *heap_pop(struct mb_driver *m)
{
    struct mb_ctx *top = m->heap[0];
    if (--m->nheap > 0) {
        heap_set(m, 0, m->heap[m->nheap]);
        heap_down(m, 0);
    }
    return top;
}

static void mb_exit(void *ctx)
{
    struct mb_driver *m = ctx;
    if (!m)
        return;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_free(m->bus[i]);
    free(m->bus);
    free(m->heap);
    pthread_cond_destroy(&m->idle_cv);
    hub_cond_destroy(&m->lock, &m->timer_cv);
    free(m);
}

/* First polls spread evenly over each device's interval, across every bus,
 * on a grid of DRV_MB_SPREAD_TICK_NS: a thousand endpoints do not all
 * connect in the same millisecond (a server's listen backlog would refuse
 * some), the load is even, and the buses due on one tick are served one
 * after the other by one worker, without a thread switch per poll. */
static void spread_first_polls(struct mb_driver *m)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < m->nbus; i++)
        total += m->bus[i]->ndevs;
    int64_t start = hub_mono_ns();
    for (size_t i = 0; i < m->nbus; i++)
        for (size_t j = 0; j < m->bus[i]->ndevs; j++, k++) {
            struct mb_dev *d = &m->bus[i]->devs[j];
            int64_t off = (int64_t)((double)d->cfg.interval_ns * (double)k / (double)total);
            d->next_due = start + off / DRV_MB_SPREAD_TICK_NS * DRV_MB_SPREAD_TICK_NS;
        }
}

static int mb_init(const void *cfgp, const struct drv_env *env, void **out, char *err,
                   size_t errlen)
{
    const struct drv_config *cfg = cfgp;
    const struct hub_cfg_list *buses = &cfg->sect[DRV_MB_SECT_BUSES];
    const struct hub_cfg_list *devs = &cfg->sect[DRV_MB_SECT_DEVICES];
    struct drv_modbus_input_cfg *in = NULL;
    struct mb_driver *m = calloc(1, sizeof(*m));
    size_t *count = NULL, **members = NULL;

    *out = NULL;
    pthread_condattr_t ca;
    if (!m || hub_cond_init(&m->lock, &m->timer_cv) != 0) {
        free(m);
        snprintf(err, errlen, "modbus: out of memory");
        return -1;
    }
    /* the idle workers' waits count on the monotonic clock too */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&m->stopping, 0);
    if ((buses->n && (!(m->bus = calloc(buses->n, sizeof(*m->bus))) ||
                      !(m->heap = calloc(buses->n, sizeof(*m->heap))) ||
                      !(count = calloc(buses->n, sizeof(*count))) ||
                      !(members = calloc(buses->n, sizeof(*members))))) ||
        !(in = malloc(sizeof(*in)))) {
        snprintf(err, errlen, "modbus: out of memory");
        goto fail;
    }
    /* devices by bus, in one pass over each (thousands of both) */
    for (size_t d = 0; d < devs->n; d++) {
        const struct drv_modbus_device *dev = HUB_CFG_ITEM(devs, d, struct drv_modbus_device);
        size_t b = 0;
        while (b < buses->n &&
               strcmp(dev->bus, HUB_CFG_ITEM(buses, b, struct drv_modbus_bus)->name))
            b++;
        if (b == buses->n) {
            snprintf(err, errlen, "device %s: unknown bus %s", dev->name, dev->bus);
            goto fail;
        }
        if (count[b] == DRV_MB_MAX_DEVICES) {
            snprintf(err, errlen, "bus %s: more than %d devices", dev->bus, DRV_MB_MAX_DEVICES);
            goto fail;
        }
        if (!members[b] && !(members[b] = malloc(DRV_MB_MAX_DEVICES * sizeof(**members)))) {
            snprintf(err, errlen, "modbus: out of memory");
            goto fail;
        }
        members[b][count[b]++] = d;
    }
    size_t nrtu = 0;
    for (size_t b = 0; b < buses->n; b++) {
        const struct drv_modbus_bus *bus = HUB_CFG_ITEM(buses, b, struct drv_modbus_bus);
        if (count[b] == 0) {
            hub_warn("modbus", "bus %s has no devices; not polling it", bus->name);
            continue;
        }
        memset(in, 0, sizeof(*in));
        in->bus = bus;
        for (size_t k = 0; k < count[b]; k++)
            in->devices[in->ndevices++] =
                HUB_CFG_ITEM(devs, members[b][k], struct drv_modbus_device);
        void *bctx = NULL;
        if (drv_modbus_bus_new(in, env, &bctx, err, errlen) != 0)
            goto fail;
        struct mb_ctx *c = bctx;
        c->stopping = &m->stopping;
        m->bus[m->nbus++] = c;
        if (bus->type == DRV_MB_BUS_RTU)
            nrtu++;
    }
    m->workers = nrtu + DRV_MB_POOL_TCP_WORKERS;
    if (m->workers > m->nbus)
        m->workers = m->nbus;
    spread_first_polls(m);
    for (size_t i = 0; i < m->nbus; i++)
        heap_push(m, m->bus[i]);
    if (m->nbus)
        hub_info("modbus", "%zu bus(es), %zu device(s), served by %zu worker(s)", m->nbus,
                 (size_t)devs->n, m->workers);
    for (size_t b = 0; b < buses->n; b++)
        free(members[b]);
    free(members);
    free(count);
    free(in);
    *out = m;
    return 0;
fail:
    for (size_t b = 0; members && b < buses->n; b++)
        free(members[b]);
    free(members);
    free(count);
    free(in);
    mb_exit(m);
    return -1;
}

static size_t mb_runners(void *ctx)
{
    return ((struct mb_driver *)ctx)->workers;
}

static void mb_run(void *ctx, size_t i)
{
    struct mb_driver *m = ctx;
    (void)i;
    pthread_mutex_lock(&m->lock);
    while (!atomic_load(&m->stopping)) {
        hub_beat(); /* every wait below beats too (a watchdog's heartbeat) */
        if (m->nheap == 0) {
            hub_beat_wait_until(&m->idle_cv, &m->lock, INT64_MAX);
            continue;
        }
        int64_t now = hub_mono_ns();
        int64_t due = m->heap[0]->due;
        if (due > now) {
            if (m->timer_taken) {
                hub_beat_wait_until(&m->idle_cv, &m->lock, INT64_MAX);
                continue;
            }
            m->timer_taken = true;
            m->timer_until = due;
            hub_beat_wait_until(&m->timer_cv, &m->lock, due);
            m->timer_taken = false;
            continue;
        }
        struct mb_ctx *c = heap_pop(m);
        /* While c is served, another worker watches the clock if c may
         * take long (its last serving's cost is unknown or slow: a
         * timeout), or if the next bus would be more than DRV_MB_LATE_NS
         * late by the time c is done (more work than one worker keeps up
         * with). Otherwise this worker comes back and takes the next bus
         * itself: no thread switch per poll. */
        bool unsure = c->cost_ns == 0 || c->cost_ns > DRV_MB_SLOW_NS;
        if (m->nheap > 0 && !m->timer_taken &&
            (unsure || m->heap[0]->due + DRV_MB_LATE_NS < now + c->cost_ns))
            pthread_cond_signal(&m->idle_cv);
        pthread_mutex_unlock(&m->lock);

        int64_t t0 = hub_mono_ns();
        drv_mb_bus_serve(c);
        hub_beat_doing(NULL, NULL);
        c->cost_ns = hub_mono_ns() - t0;
        if (c->cost_ns == 0)
            c->cost_ns = 1;

        pthread_mutex_lock(&m->lock);
        heap_push(m, c);
        if (m->timer_taken && c->heap_at == 0 && c->due < m->timer_until)
            pthread_cond_signal(&m->timer_cv); /* the clock's watcher waits too long */
        /* the loop goes on: this worker watches the clock if no one does */
    }
    pthread_mutex_unlock(&m->lock);
}

static void mb_stop(void *ctx)
{
    struct mb_driver *m = ctx;
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->stopping, 1);
    pthread_cond_broadcast(&m->timer_cv);
    pthread_cond_broadcast(&m->idle_cv);
    pthread_mutex_unlock(&m->lock);
}

static void mb_sources(void *ctx, drv_source_fn fn, void *arg)
{
    struct mb_driver *m = ctx;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_sources(m->bus[i], fn, arg);
}

static void mb_stats(void *ctx, struct drv_stats *st)
{
    struct mb_driver *m = ctx;
    for (size_t i = 0; i < m->nbus; i++)
        drv_modbus_bus_stats(m->bus[i], st);
}

/* One line per command; each command lives in its own file. */
const struct drv_command drv_modbus_commands[] = {
    {"profiles", "[NAME]  Modbus device profiles: the list, or one's registers",
     drv_modbus_cmd_profiles},
    {"scan", "--rtu DEV|--tcp HOST  find the unit ids that answer, and what they are",
     drv_modbus_cmd_scan},
    {"read", "--rtu DEV|--tcp HOST --unit N ...  raw registers, decoded in every byte order",
     drv_modbus_cmd_read},
    {"poll", "-c FILE --device NAME --once  poll one configured device once, print its fields",
     drv_modbus_cmd_poll},
    {"plan", "-c FILE [--device NAME]  each Modbus device's read requests (no bus is touched)",
     drv_modbus_cmd_plan},
    {NULL, NULL, NULL},
};

static void mb_version(char *buf, size_t len)
{
    snprintf(buf, len, "libmodbus %s", LIBMODBUS_VERSION_STRING);
}

const struct drv_ops drv_modbus_ops = {
    .name = "modbus",
    .kind = DRV_INPUT,
    .help = "Modbus TCP and RTU (RS-485) devices, polled by one scheduler per bus",
    /* A poll keeps up to 64 blocks x 125 registers (16 KiB) on the stack,
     * plus libmodbus's frames: 128 KiB leave ample room. */
    .stack_size = (size_t)128 << 10,
    .version = mb_version,
    .sections = drv_modbus_sections,
    .check = drv_modbus_check,
    .init = mb_init,
    .runners = mb_runners,
    .run = mb_run,
    .stop = mb_stop,
    .stats = mb_stats,
    .sources = mb_sources,
    .commands = drv_modbus_commands,
    .schema = drv_modbus_schema,
    .exit = mb_exit,
};
