/* drivers/modbus/bus.c — one Modbus bus (a serial line, or one TCP
 * endpoint): its scheduler, a poll of one device, and the link's recovery.
 * The bus is served by the driver's worker pool (modbus_drv.c), one worker
 * at a time, so requests never overlap on a line.
 *
 * Each device keeps a next-due time (monotonic clock); serving the bus polls
 * its most overdue device. One poll is one request per block of the
 * device's plan; each request costs at most one timeout (link.c), and a
 * device that keeps failing is backed off (modbus_priv.h), so a dead slave
 * costs the others at most its own timeout per backoff step.
 *
 * Link recovery: a connect that fails closes the link and spaces the next
 * try with hub_backoff (1 s doubling, capped at DRV_MB_RECONNECT_MAX_NS,
 * jittered); meanwhile due polls fail at once with "connection lost". A
 * timeout or bad reply on TCP closes the connection so that no late byte is
 * read as a later answer, and the next request reconnects at once. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#include "drivers/modbus/modbus_priv.h"
#include "hub/backoff.h"
#include "hub/beat.h"
#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/log.h"
#include "hub/metrics.h"

#include "drivers/modbus/bus_priv.h"

/* ---- helpers ------------------------------------------------------------- */

void drv_mb_timeout_split(int64_t ns, uint32_t *sec, uint32_t *usec)
{
    if (ns < 1000)
        ns = 1000;
    *sec = (uint32_t)(ns / HUB_NS_PER_S);
    *usec = (uint32_t)((ns % HUB_NS_PER_S) / 1000);
}

static void emit(struct mb_ctx *c, struct mb_dev *d, hub_reading_t *r)
{
    int rc = c->sink.emit(c->sink.ctx, r);
    if (rc != HUB_OK) {
        uint64_t held;
        if (hub_log_limit_pass(&c->emit_limit, hub_time_ns(), &held))
            hub_warn(d->who, "reading not accepted: %s (%" PRIu64 " more not logged)",
                     hub_strerror(rc), held);
    }
}

/* Emit the device's status point `cityhub_device`. */
static void emit_status(struct mb_ctx *c, struct mb_dev *d, bool ok)
{
    hub_reading_t *r = hub_reading_new("cityhub_device", hub_time_ns());
    if (!r) {
        hub_err(d->who, "status point: out of memory");
        return;
    }
    int rc = hub_reading_add_tag(r, "device", d->cfg.name);
    if (rc == HUB_OK)
        rc = hub_reading_add_tag(r, "bus", c->bus.name);
    if (rc == HUB_OK)
        rc = hub_reading_add_bool(r, "ok", ok);
    if (rc == HUB_OK)
        rc = hub_reading_add_uint(r, "polls", d->polls);
    if (rc == HUB_OK)
        rc = hub_reading_add_uint(r, "errors", d->errors);
    if (rc == HUB_OK)
        rc = hub_reading_add_uint(r, "timeouts", d->timeouts);
    if (rc == HUB_OK)
        rc = hub_reading_add_uint(r, "exceptions", d->exceptions);
    if (rc == HUB_OK)
        rc = hub_reading_add_uint(r, "bad_replies", d->bad_replies);
    if (rc == HUB_OK && !ok)
        rc = hub_reading_add_string(r, "error", d->last_error[0] ? d->last_error : "unknown");
    if (rc == HUB_OK && d->have_latency)
        rc = hub_reading_add_float(r, "latency_ms", d->latency_ms);
    if (rc == HUB_OK && d->polls)
        rc = hub_reading_add_float(r, "skew_ms", (double)d->skew_ns / (double)HUB_NS_PER_MS);
    if (rc == HUB_OK && d->polls)
        rc =
            hub_reading_add_float(r, "skew_max_ms", (double)d->skew_max_ns / (double)HUB_NS_PER_MS);
    if (rc != HUB_OK) {
        hub_err(d->who, "status point: %s", hub_strerror(rc));
        hub_reading_free(r);
        return;
    }
    d->last_status = hub_mono_ns();
    emit(c, d, r);
}

/* ---- the link ------------------------------------------------------------- */

/* The link failed to come up or broke: close it and space the next connect
 * (hub_backoff: 1 s doubling, capped at DRV_MB_RECONNECT_MAX_NS, jittered). */
static void link_down(struct mb_ctx *c, const char *why)
{
    mb_link_close(&c->link);
    int64_t delay = hub_backoff_fail(&c->reconnect, 0);
    c->reconnect_at = hub_mono_ns() + delay;
    uint64_t held;
    if (hub_log_limit_pass(&c->link_limit, hub_time_ns(), &held))
        hub_warn(c->who, "%s; reconnecting in %lld ms (%" PRIu64 " more not logged)", why,
                 (long long)(delay / HUB_NS_PER_MS), held);
}

/* Connect if needed and allowed now. Returns 0 when connected, or -1 with
 * the reason in msg. Costs at most one timeout. */
static int link_up(struct mb_ctx *c, char *msg, size_t msglen)
{
    if (c->link.up)
        return 0;
    int64_t now = hub_mono_ns();
    if (c->reconnect_at > now) {
        snprintf(msg, msglen, "connection lost (reconnect in %lld ms)",
                 (long long)((c->reconnect_at - now) / HUB_NS_PER_MS));
        return -1;
    }
    char why[512];
    if (mb_link_open(&c->link, c->bus.timeout_ns, why, sizeof(why)) != 0) {
        snprintf(msg, msglen, "connection lost: %.140s", why);
        link_down(c, why);
        return -1;
    }
    if (c->reconnect.failures > 0)
        hub_info(c->who, "connected after %u failed attempts", c->reconnect.failures);
    else
        hub_debug(c->who, "connected");
    hub_backoff_ok(&c->reconnect);
    c->reconnect_at = 0;
    return 0;
}

/* After a timeout or a bad reply on TCP the stream may still carry bytes
 * that answer no request of ours any more (a late reply, the rest of a
 * dripping one): the next request, maybe to another device, would read
 * them. So close the connection; the next request reconnects at once (no
 * backoff: the server is there), and whatever was in flight dies with the
 * old socket. A serial line is flushed before each request instead. */
static void link_resync(struct mb_ctx *c)
{
    if (c->link.rtu || !c->link.up)
        return;
    mb_link_close(&c->link);
    hub_debug(c->who, "closed the connection to drop a late or stray reply");
}

/* ---- one poll ------------------------------------------------------------ */

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ns / HUB_NS_PER_S),
                          .tv_nsec = (long)(ns % HUB_NS_PER_S)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* RTU: keep the line silent for `pause` between the end of one exchange and
 * the next request. */
static void line_rest(struct mb_ctx *c)
{
    if (c->link.rtu)
        c->free_at = hub_mono_ns() + c->bus.pause_ns;
}

static void line_wait(struct mb_ctx *c)
{
    if (c->link.rtu)
        sleep_ns(c->free_at - hub_mono_ns());
}

static bool stopping(const struct mb_ctx *c)
{
    return c->stopping && atomic_load(c->stopping);
}

/* Mark a failed poll: counters, status point, log, device backoff. */
static void poll_failed(struct mb_ctx *c, struct mb_dev *d, int kind, const char *msg,
                        int64_t started)
{
    d->errors++;
    if (kind == DRV_MB_FAIL_TIMEOUT)
        d->timeouts++;
    else if (kind == DRV_MB_FAIL_EXCEPTION)
        d->exceptions++;
    else if (kind == DRV_MB_FAIL_BAD_REPLY)
        d->bad_replies++;
    hub_metric_inc(d->m_errors, 1);
    hub_metric_inc(d->m_fail[kind >= 1 && kind <= DRV_MB_FAIL_CONNECTION ? kind : 0], 1);
    if (d->failures == 0)
        atomic_fetch_add(&c->failing, 1);
    pthread_mutex_lock(&c->st_mu);
    snprintf(d->last_error, sizeof(d->last_error), "%s", msg);
    d->last_error_ns = hub_time_ns();
    if (d->failures < UINT_MAX)
        d->failures++;
    pthread_mutex_unlock(&c->st_mu);

    int64_t now = hub_mono_ns();
    int64_t next = d->next_due + d->cfg.interval_ns;
    if (next <= now)
        next = now + d->cfg.interval_ns;
    if (kind == DRV_MB_FAIL_CONNECTION) {
        /* The link is down: not the device's fault, and the bus's reconnect
         * backoff already spaces the tries. Poll again when the link is to
         * be tried again (or at the next interval, if later), so that every
         * device is read as soon as the link is back. */
        if (next < c->reconnect_at)
            next = c->reconnect_at;
    } else if (d->failures >= 2) {
        int64_t base = (now - started) * DRV_MB_DEV_BACKOFF_COST;
        if (base < d->cfg.interval_ns)
            base = d->cfg.interval_ns;
        int64_t cap = d->cfg.interval_ns > DRV_MB_DEV_BACKOFF_CAP_NS ? d->cfg.interval_ns
                                                                     : DRV_MB_DEV_BACKOFF_CAP_NS;
        int64_t delay = base;
        for (unsigned k = 2; k < d->failures && delay < cap; k++)
            delay = delay > cap / 2 ? cap : delay * 2;
        next = now + (delay < cap ? delay : cap);
    }
    d->next_due = next > now ? next : now;

    uint64_t held;
    if (hub_log_limit_pass(&d->fail_limit, hub_time_ns(), &held)) {
        hub_warn(d->who,
                 "poll failed: %s (unit %" PRId64 ", %u in a row, %" PRIu64 " similar not logged)",
                 msg, d->cfg.unit, d->failures, held);
        d->fail_logged = true;
    } else {
        hub_debug(d->who, "poll failed: %s", msg);
    }
    emit_status(c, d, false);
}

/* One request of a plan, with the bus's retries (timeouts, bad replies) and
 * up to DRV_MB_BUSY_RETRIES retries of "slave device busy" after a pause.
 * Returns 0 with the values stored in d's words or bits, or a
 * DRV_MB_FAIL_* kind with msg. */
static int read_block(struct mb_ctx *c, struct mb_dev *d, int b, char *msg, size_t msglen)
{
    const struct drv_modbus_block *blk = &d->plan[b];
    uint8_t buf[DRV_MB_ADU_MAX];
    unsigned tries = 0, busy = 0;
    for (;;) {
        if (link_up(c, msg, msglen) != 0)
            return DRV_MB_FAIL_CONNECTION;
        struct drv_mb_req q;
        c->tid++;
        if (drv_mb_req_read(&q, c->link.rtu, c->tid, (uint8_t)d->cfg.unit, blk->table, blk->address,
                            blk->count) != 0) {
            snprintf(msg, msglen, "request %s %u+%u cannot be made", drv_mb_table_name(blk->table),
                     blk->address, blk->count);
            return DRV_MB_FAIL_BAD_REPLY;
        }
        line_wait(c);
        size_t len = 0;
        int64_t deadline = hub_mono_ns() + c->bus.timeout_ns;
        int kind = mb_link_transact(&c->link, &q, buf, &len, deadline, msg, msglen);
        hub_beat(); /* an answer or a timeout: the loop is alive */
        struct drv_mb_reply rep;
        if (kind == 0)
            kind = drv_mb_reply_check(&q, buf, len, &rep, msg, msglen);
        line_rest(c);
        if (kind == 0) {
            if (blk->table == DRV_MB_COIL || blk->table == DRV_MB_DISCRETE)
                drv_mb_unpack_bits(rep.data, blk->count, d->bits + d->slot[b]);
            else
                drv_mb_unpack_regs(rep.data, blk->count, d->words + d->slot[b]);
            return 0;
        }
        if (kind == DRV_MB_FAIL_CONNECTION) {
            char why[512];
            snprintf(why, sizeof(why), "%s (device %s)", msg, d->cfg.name);
            link_down(c, why);
            return kind;
        }
        if (kind == DRV_MB_FAIL_TIMEOUT || kind == DRV_MB_FAIL_BAD_REPLY)
            link_resync(c);
        if (stopping(c))
            return kind;
        if (kind == DRV_MB_FAIL_EXCEPTION && rep.exception == 6 && busy < DRV_MB_BUSY_RETRIES) {
            busy++;
            sleep_ns(c->bus.pause_ns > DRV_MB_BUSY_PAUSE_NS ? c->bus.pause_ns
                                                            : DRV_MB_BUSY_PAUSE_NS);
            continue;
        }
        if (kind != DRV_MB_FAIL_EXCEPTION && tries < (unsigned)c->bus.retries) {
            tries++;
            continue;
        }
        return kind;
    }
}

/* Read every block of d's plan. Returns 0, a DRV_MB_FAIL_* kind with msg,
 * or -2 when stop() came between two requests (the poll is abandoned: no
 * reading, no status point). */
static int read_blocks(struct mb_ctx *c, struct mb_dev *d, char *msg, size_t msglen)
{
    for (int b = 0; b < d->nblocks; b++) {
        if (b > 0 && stopping(c))
            return -2; /* each request may cost a timeout: stop within one */
        char what[ERR_MAX];
        int kind = read_block(c, d, b, what, sizeof(what));
        if (kind == 0)
            continue;
        const struct drv_modbus_block *blk = &d->plan[b];
        if (kind == DRV_MB_FAIL_CONNECTION)
            snprintf(msg, msglen, "%s", what);
        else
            snprintf(msg, msglen, "%.110s reading %s %u..%u", what, drv_mb_table_name(blk->table),
                     blk->address, blk->address + blk->count - 1u);
        return kind;
    }
    return 0;
}

/* Where register reg's value is in the data read for d's plan: words or
 * bits (the other NULL). Returns false if no block covers it. */
static bool locate(const struct mb_dev *d, const struct drv_modbus_register *reg,
                   const uint16_t **words, const uint8_t **bits)
{
    int bit_table = reg->table == DRV_MB_COIL || reg->table == DRV_MB_DISCRETE;
    unsigned w = drv_modbus_reg_width(reg);
    *words = NULL;
    *bits = NULL;
    for (int b = 0; b < d->nblocks; b++) {
        const struct drv_modbus_block *blk = &d->plan[b];
        if (blk->table == reg->table && reg->address >= blk->address &&
            reg->address + w <= (int64_t)blk->address + blk->count) {
            size_t at = d->slot[b] + (size_t)(reg->address - blk->address);
            if (bit_table)
                *bits = d->bits + at;
            else
                *words = d->words + at;
            return true;
        }
    }
    return false;
}

/* The reading of d's last poll (its data read into d's words and bits).
 * Returns it, or NULL with a message; fields without a value (NaN, out of
 * range) are left out, and logged once while it lasts. */
static hub_reading_t *make_reading(struct mb_ctx *c, struct mb_dev *d, int64_t when, char *msg,
                                   size_t msglen)
{
    (void)c;
    hub_reading_t *r = hub_reading_new(d->cfg.measurement, when);
    if (!r) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    int rc = HUB_OK;
    for (size_t i = 0; i < d->cfg.tags.n && rc == HUB_OK; i++)
        rc = hub_reading_add_tag(r, d->cfg.tags.tag[i].key, d->cfg.tags.tag[i].value);
    if (rc == HUB_OK)
        rc = hub_reading_add_tag(r, "device", d->cfg.name);
    if (rc != HUB_OK) {
        hub_reading_free(r);
        snprintf(msg, msglen, "tags: %s", hub_strerror(rc));
        return NULL;
    }
    for (size_t i = 0; i < d->cfg.nregs; i++) {
        const struct drv_modbus_register *reg = &d->cfg.regs[i];
        const uint16_t *words;
        const uint8_t *bits;
        uint64_t bit = i < 64 ? 1ull << i : 0;
        rc = locate(d, reg, &words, &bits) ? drv_modbus_decode_field(reg, words, bits, r)
                                           : HUB_EINVAL;
        if (rc == HUB_OK) {
            d->nan_logged &= ~bit;
            continue;
        }
        if (!(d->nan_logged & bit)) {
            d->nan_logged |= bit;
            hub_info(d->who,
                     "field %s: no value (%s %" PRId64 " holds NaN/infinity or "
                     "is out of range); the field is left out while it lasts",
                     reg->field, drv_mb_table_name(reg->table), reg->address);
        }
    }
    if (hub_reading_field_count(r) == 0) {
        hub_reading_free(r);
        snprintf(msg, msglen, "no valid values");
        return NULL;
    }
    return r;
}

#ifdef CITYHUB_TEST_HOOKS
/* CITYHUB_TEST_STALL=DEVICE[:N] (test build only): the N-th poll (default
 * the first) of DEVICE never returns, as a poll stuck in a driver would;
 * the watchdog's test stalls a runner with it. */
static void test_stall(const struct mb_dev *d)
{
    const char *v = getenv("CITYHUB_TEST_STALL");
    if (!v)
        return;
    size_t n = strcspn(v, ":");
    if (strlen(d->cfg.name) != n || strncmp(v, d->cfg.name, n) != 0)
        return;
    unsigned long at = v[n] == ':' ? strtoul(v + n + 1, NULL, 10) : 1;
    if (d->polls != at)
        return;
    hub_warn(d->who, "CITYHUB_TEST_STALL: poll %lu stalls for ever", at);
    for (;;)
        sleep_ns(HUB_NS_PER_S);
}
#endif

static void poll_device(struct mb_ctx *c, struct mb_dev *d)
{
    char msg[ERR_MAX];
    int64_t started = hub_mono_ns();

    pthread_mutex_lock(&c->st_mu);
    d->skew_ns = started > d->next_due ? started - d->next_due : 0;
    pthread_mutex_unlock(&c->st_mu);
    if (d->skew_ns > d->skew_max_ns)
        d->skew_max_ns = d->skew_ns;
    hub_metric_inc(d->m_skew, (uint64_t)(d->skew_ns / 1000));
    d->polls++;
    hub_metric_inc(d->m_polls, 1);
#ifdef CITYHUB_TEST_HOOKS
    test_stall(d);
#endif
    hub_debug(d->who, "poll unit %" PRId64 ": %d request(s)", d->cfg.unit, d->nblocks);
    int kind = read_blocks(c, d, msg, sizeof(msg));
    if (kind == -2) {
        d->polls--; /* not a poll: stop() cut it short */
        return;
    }
    if (kind != 0) {
        poll_failed(c, d, kind, msg, started);
        return;
    }
    int64_t done = hub_mono_ns();
    hub_reading_t *r = make_reading(c, d, hub_time_ns(), msg, sizeof(msg));
    if (!r) {
        poll_failed(c, d, 0, msg, started);
        return;
    }

    bool recovered = d->failures > 0;
    /* The failure log keeps its rate limit across recoveries (a device that
     * fails every other poll is not logged every other poll); the end of a
     * run of failures is logged when its start was. */
    if (recovered && d->fail_logged)
        hub_info(d->who, "recovered after %u failed polls", d->failures);
    d->fail_logged = false;
    if (d->failures > 0)
        atomic_fetch_sub(&c->failing, 1);
    pthread_mutex_lock(&c->st_mu);
    d->failures = 0;
    d->last_ok_ns = hub_time_ns();
    pthread_mutex_unlock(&c->st_mu);
    d->latency_ms = (double)(done - started) / (double)HUB_NS_PER_MS;
    d->have_latency = true;
    hub_debug(d->who, "poll ok: %zu fields in %.1f ms", hub_reading_field_count(r), d->latency_ms);
    emit(c, d, r);

    d->next_due += d->cfg.interval_ns;
    int64_t now = hub_mono_ns();
    if (d->next_due <= now) /* overran: skip the missed slots, keep going */
        d->next_due = now + d->cfg.interval_ns;
    if (recovered || d->last_status == 0 || now - d->last_status >= c->status_every_ns)
        emit_status(c, d, true);
}

static struct mb_dev *most_due(const struct mb_ctx *c)
{
    struct mb_dev *next = &c->devs[0];
    for (size_t i = 1; i < c->ndevs; i++)
        if (c->devs[i].next_due < next->next_due)
            next = &c->devs[i];
    return next;
}

int64_t drv_mb_bus_due(const struct mb_ctx *c)
{
    int64_t due = most_due(c)->next_due;
    return due > c->free_at ? due : c->free_at;
}

void drv_mb_bus_serve(struct mb_ctx *c)
{
    struct mb_dev *d = most_due(c);
    hub_beat_doing(c->who, d->what);
    poll_device(c, d);
}

void drv_mb_bus_close(struct mb_ctx *c)
{
    mb_link_close(&c->link);
}

/* One bus on its own thread, without the pool (tests, and the pool's
 * semantics for one bus): serve it whenever it is due, until stop. */
void drv_modbus_bus_run(void *ctx)
{
    struct mb_ctx *c = ctx;
    pthread_mutex_lock(&c->solo_lock);
    c->stopping = &c->solo_stop;
    while (!atomic_load(&c->solo_stop)) {
        int64_t due = drv_mb_bus_due(c);
        if (due > hub_mono_ns()) {
            hub_beat_wait_until(&c->solo_wake, &c->solo_lock, due);
            continue;
        }
        pthread_mutex_unlock(&c->solo_lock);
        drv_mb_bus_serve(c);
        pthread_mutex_lock(&c->solo_lock);
    }
    pthread_mutex_unlock(&c->solo_lock);
    drv_mb_bus_close(c);
}

void drv_modbus_bus_stop(void *ctx)
{
    struct mb_ctx *c = ctx;
    pthread_mutex_lock(&c->solo_lock);
    atomic_store(&c->solo_stop, 1);
    pthread_cond_broadcast(&c->solo_wake);
    pthread_mutex_unlock(&c->solo_lock);
}

static int discard_reading(void *ctx, hub_reading_t *r)
{
    (void)ctx;
    hub_reading_free(r);
    return HUB_OK;
}

int drv_modbus_poll_once(const struct drv_modbus_bus *bus, const struct drv_modbus_device *dev,
                         hub_reading_t **out, char *err, size_t errlen)
{
    struct drv_modbus_input_cfg in = {.bus = bus, .ndevices = 1};
    struct drv_sink discard = {.emit = discard_reading};
    struct drv_env env = {.sink = &discard};
    void *ctx = NULL;
    *out = NULL;
    in.devices[0] = dev;
    if (drv_modbus_bus_new(&in, &env, &ctx, err, errlen) != 0)
        return -1;
    struct mb_ctx *c = ctx;
    struct mb_dev *d = &c->devs[0];
    char msg[ERR_MAX];
    int kind = read_blocks(c, d, msg, sizeof(msg));
    if (kind == 0)
        *out = make_reading(c, d, hub_time_ns(), msg, sizeof(msg));
    if (!*out)
        snprintf(err, errlen, "%s", msg);
    drv_modbus_bus_free(ctx);
    return *out ? 0 : -1;
}
