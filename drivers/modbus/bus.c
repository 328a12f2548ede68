/* drivers/modbus/bus.c — one Modbus bus: its libmodbus context (TCP or RTU,
 * chosen when it is built) and the scheduler that polls every device on it
 * from the bus's runner thread (modbus_drv.h, modbus_priv.h).
 *
 * The scheduler keeps a next-due time per device (monotonic clock), polls the
 * most overdue one, and otherwise sleeps on a condition variable until the
 * next due time (at most DRV_MB_SLEEP_SLICE_NS at a time) so stop() is seen at
 * once. One poll is one modbus_read_(input_)registers per block of the
 * device's plan; it costs at most one timeout per block, and a device that
 * keeps failing is backed off (modbus_priv.h), so a dead slave never stalls
 * the others for more than one timeout per poll.
 *
 * Link recovery is ours, not libmodbus's: MODBUS_ERROR_RECOVERY_LINK makes
 * libmodbus retry a failed send for ever (close, sleep, connect, send...),
 * which would block the bus thread and stop() while a TCP server is down.
 * We set no libmodbus recovery (PROTOCOL would sleep a response timeout after
 * each bad reply) and flush the link before each request instead; on a
 * connection error close the link and reconnect with hub_backoff
 * (1 s doubling to 30 s, jittered); meanwhile due polls fail at once with
 * "connection lost". */
#include <errno.h>
#include <inttypes.h>
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

/* Sleep until the monotonic time `until` or until stop(), whichever comes
 * first, in slices of at most DRV_MB_SLEEP_SLICE_NS. */
static void sleep_until(struct mb_ctx *c, int64_t until)
{
    pthread_mutex_lock(&c->lock);
    while (!atomic_load(&c->stopping)) {
        int64_t now = hub_mono_ns();
        if (now >= until)
            break;
        int64_t t = until - now;
        if (t > DRV_MB_SLEEP_SLICE_NS)
            t = DRV_MB_SLEEP_SLICE_NS;
        hub_cond_wait_until(&c->wake, &c->lock, now + t);
    }
    pthread_mutex_unlock(&c->lock);
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
    if (rc != HUB_OK) {
        hub_err(d->who, "status point: %s", hub_strerror(rc));
        hub_reading_free(r);
        return;
    }
    d->last_status = hub_mono_ns();
    emit(c, d, r);
}

/* ---- the link ------------------------------------------------------------- */

static void link_down(struct mb_ctx *c, const char *why)
{
    if (c->connected)
        modbus_close(c->mb);
    c->connected = false;
    int64_t delay = hub_backoff_fail(&c->reconnect, 0);
    c->reconnect_at = hub_mono_ns() + delay;
    uint64_t held;
    if (hub_log_limit_pass(&c->link_limit, hub_time_ns(), &held))
        hub_warn(c->who, "%s; reconnecting in %lld ms (%" PRIu64 " more not logged)", why,
                 (long long)(delay / HUB_NS_PER_MS), held);
}

/* Connect if needed and allowed now. Returns 0 when connected, or -1 with
 * the reason in msg. Costs at most one timeout (libmodbus's connect waits
 * at most the response timeout). */
static int link_up(struct mb_ctx *c, char *msg, size_t msglen)
{
    if (c->connected)
        return 0;
    int64_t now = hub_mono_ns();
    if (c->reconnect_at > now) {
        snprintf(msg, msglen, "connection lost (reconnect in %lld ms)",
                 (long long)((c->reconnect_at - now) / HUB_NS_PER_MS));
        return -1;
    }
    if (modbus_connect(c->mb) == -1) {
        int e = errno;
        snprintf(msg, msglen, "connection lost: connect: %s", modbus_strerror(e));
        char why[512];
        if (c->bus.type == DRV_MB_BUS_TCP)
            snprintf(why, sizeof(why), "connect to [%s]:%" PRId64 " failed: %s", c->bus.host,
                     c->bus.port, modbus_strerror(e));
        else
            snprintf(why, sizeof(why), "open %s failed: %s", c->bus.device, modbus_strerror(e));
        c->connected = false;
        link_down(c, why);
        return -1;
    }
    c->connected = true;
    if (c->reconnect.failures > 0)
        hub_info(c->who, "connected after %u failed attempts", c->reconnect.failures);
    else
        hub_debug(c->who, "connected");
    hub_backoff_ok(&c->reconnect);
    return 0;
}

/* After a timeout or a bad reply on TCP the stream may still carry an answer
 * that belongs to no request of ours any more (a late reply, or the real one
 * behind a stray): the next request, maybe to another device, would read it
 * and fail as "bad reply" (or, with a reused transaction id, take it). A
 * flush cannot help: the late bytes may come after it. So close the
 * connection; the next request reconnects at once (no backoff: the server is
 * there), and whatever was in flight dies with the old socket. */
static void link_resync(struct mb_ctx *c)
{
    if (c->bus.type != DRV_MB_BUS_TCP || !c->connected)
        return;
    modbus_close(c->mb);
    c->connected = false;
    hub_debug(c->who, "closed the connection to drop a late or stray reply");
}

/* ---- one poll ------------------------------------------------------------ */

static void pause_line(struct mb_ctx *c)
{
    if (c->bus.type != DRV_MB_BUS_RTU || c->bus.pause_ns <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(c->bus.pause_ns / HUB_NS_PER_S),
                          .tv_nsec = (long)(c->bus.pause_ns % HUB_NS_PER_S)};
    nanosleep(&ts, NULL);
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
    snprintf(d->last_error, sizeof(d->last_error), "%s", msg);
    hub_metric_inc(d->m_errors, 1);
    hub_metric_inc(c->m_fail[kind >= 1 && kind <= DRV_MB_FAIL_CONNECTION ? kind : 0], 1);
    if (d->failures == 0)
        atomic_fetch_add(&c->failing, 1);
    if (d->failures < 64)
        d->failures++;

    int64_t now = hub_mono_ns();
    int64_t next = started + d->cfg.interval_ns;
    if (kind == DRV_MB_FAIL_CONNECTION) {
        /* The link is down: not the device's fault, and the bus's reconnect
         * backoff already spaces the tries. Poll again when the link is to
         * be tried again (or at the next interval, if later), so that every
         * device is read as soon as the link is back, not after a backoff
         * of its own of up to 16 intervals. */
        if (next < c->reconnect_at)
            next = c->reconnect_at;
    } else if (d->failures >= 2) {
        int64_t base = (now - started) * DRV_MB_DEV_BACKOFF_COST;
        if (base < d->cfg.interval_ns)
            base = d->cfg.interval_ns;
        int64_t cap = d->cfg.interval_ns * DRV_MB_DEV_BACKOFF_MAX;
        if (cap < DRV_MB_DEV_BACKOFF_CAP_NS)
            cap = DRV_MB_DEV_BACKOFF_CAP_NS;
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

/* Read every block of d's plan into regs (indexed by address relative to
 * each block, stored per block at offsets). Returns 0, -1 with kind/msg, or
 * -2 when stop() came between two requests (the poll is abandoned: no
 * reading, no status point). */
static int read_blocks_locked(struct mb_ctx *c, struct mb_dev *d,
                              uint16_t data[][DRV_MB_MAX_REGS_PER_READ], int *kind, char *msg,
                              size_t msglen);

/* With `debug: frames`, libmodbus's frame dump of this poll is taken from
 * its stdout and logged under the bus's name (debug.c). */
static int read_blocks(struct mb_ctx *c, struct mb_dev *d,
                       uint16_t data[][DRV_MB_MAX_REGS_PER_READ], int *kind, char *msg,
                       size_t msglen)
{
    drv_mb_debug_begin(c->bus.debug);
    int rc = read_blocks_locked(c, d, data, kind, msg, msglen);
    drv_mb_debug_end(c->bus.debug, c->who);
    return rc;
}

static int read_blocks_locked(struct mb_ctx *c, struct mb_dev *d,
                              uint16_t data[][DRV_MB_MAX_REGS_PER_READ], int *kind, char *msg,
                              size_t msglen)
{
    if (link_up(c, msg, msglen) != 0) {
        *kind = DRV_MB_FAIL_CONNECTION;
        return -1;
    }
    if (modbus_set_slave(c->mb, (int)d->cfg.unit) == -1) {
        *kind = DRV_MB_FAIL_CONNECTION; /* cannot happen for 0..247 */
        snprintf(msg, msglen, "bad unit %" PRId64, d->cfg.unit);
        return -1;
    }
    for (int b = 0; b < d->nblocks; b++) {
        const struct drv_modbus_block *blk = &d->plan[b];
        if (b > 0 && atomic_load(&c->stopping))
            return -2;       /* each request may cost a timeout: stop within one */
        modbus_flush(c->mb); /* a late or broken reply to an earlier request */
        int n;
        if (blk->table == DRV_MB_INPUT)
            n = modbus_read_input_registers(c->mb, blk->address, blk->count, data[b]);
        else
            n = modbus_read_registers(c->mb, blk->address, blk->count, data[b]);
        int e = errno;
        pause_line(c);
        if (n == blk->count)
            continue;
        if (n >= 0)
            e = EMBBADDATA;
        char what[ERR_MAX];
        *kind = drv_modbus_classify(e, what, sizeof(what));
        snprintf(msg, msglen, "%.100s reading %s %u..%u", what,
                 blk->table == DRV_MB_INPUT ? "input" : "holding", blk->address,
                 blk->address + blk->count - 1u);
        if (*kind == DRV_MB_FAIL_CONNECTION) {
            char why[512];
            snprintf(why, sizeof(why), "%s (device %s)", what, d->cfg.name);
            link_down(c, why);
        } else if (*kind == DRV_MB_FAIL_TIMEOUT || *kind == DRV_MB_FAIL_BAD_REPLY) {
            link_resync(c);
        }
        return -1;
    }
    return 0;
}

/* Where register reg's words are in the data read for d's plan. */
static const uint16_t *locate(const struct mb_dev *d, uint16_t data[][DRV_MB_MAX_REGS_PER_READ],
                              const struct drv_modbus_register *reg)
{
    unsigned w = drv_modbus_type_width(reg->type);
    for (int b = 0; b < d->nblocks; b++) {
        const struct drv_modbus_block *blk = &d->plan[b];
        if (blk->table == reg->table && reg->address >= blk->address &&
            reg->address + w <= (int64_t)blk->address + blk->count)
            return &data[b][reg->address - blk->address];
    }
    return NULL;
}

static void poll_device(struct mb_ctx *c, struct mb_dev *d)
{
    uint16_t data[DRV_MB_MAX_REGISTERS][DRV_MB_MAX_REGS_PER_READ];
    char msg[ERR_MAX];
    int kind = 0;
    int64_t started = hub_mono_ns();

    d->polls++;
    hub_metric_inc(d->m_polls, 1);
    hub_debug(d->who, "poll unit %" PRId64 ": %d request(s)", d->cfg.unit, d->nblocks);
    int rb = read_blocks(c, d, data, &kind, msg, sizeof(msg));
    if (rb == -2) {
        d->polls--; /* not a poll: stop() cut it short */
        return;
    }
    if (rb != 0) {
        poll_failed(c, d, kind, msg, started);
        return;
    }
    int64_t when = hub_time_ns(); /* after the last reply */
    int64_t done = hub_mono_ns();

    hub_reading_t *r = hub_reading_new(d->cfg.measurement, when);
    if (!r) {
        poll_failed(c, d, 0, "out of memory", started);
        return;
    }
    int rc = HUB_OK;
    for (size_t i = 0; i < d->cfg.tags.n && rc == HUB_OK; i++)
        rc = hub_reading_add_tag(r, d->cfg.tags.tag[i].key, d->cfg.tags.tag[i].value);
    if (rc == HUB_OK)
        rc = hub_reading_add_tag(r, "device", d->cfg.name);
    if (rc != HUB_OK) {
        hub_reading_free(r);
        snprintf(msg, sizeof(msg), "tags: %s", hub_strerror(rc));
        poll_failed(c, d, 0, msg, started);
        return;
    }
    for (size_t i = 0; i < d->cfg.nregs; i++) {
        const struct drv_modbus_register *reg = &d->cfg.regs[i];
        const uint16_t *words = locate(d, data, reg);
        uint64_t bit = 1ull << i;
        rc = words ? drv_modbus_decode(reg, words, r) : HUB_EINVAL;
        if (rc == HUB_OK) {
            d->nan_logged &= ~bit;
            continue;
        }
        if (!(d->nan_logged & bit)) {
            d->nan_logged |= bit;
            hub_info(d->who,
                     "field %s: no value (%s %" PRId64 " holds NaN/infinity or "
                     "is out of range); the field is left out while it lasts",
                     reg->field, reg->table == DRV_MB_INPUT ? "input" : "holding", reg->address);
        }
    }
    if (hub_reading_field_count(r) == 0) {
        hub_reading_free(r);
        poll_failed(c, d, 0, "no valid values", started);
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
    d->failures = 0;
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

void drv_modbus_bus_run(void *ctx)
{
    struct mb_ctx *c = ctx;
    hub_info(c->who, "polling %zu device(s)", c->ndevs);
    while (!atomic_load(&c->stopping)) {
        struct mb_dev *next = &c->devs[0];
        for (size_t i = 1; i < c->ndevs; i++)
            if (c->devs[i].next_due < next->next_due)
                next = &c->devs[i];
        if (hub_mono_ns() < next->next_due) {
            sleep_until(c, next->next_due);
            continue; /* re-check stop and who is due */
        }
        poll_device(c, next);
    }
    if (c->connected) {
        modbus_close(c->mb);
        c->connected = false;
    }
    hub_debug(c->who, "stopped");
}

void drv_modbus_bus_stop(void *ctx)
{
    struct mb_ctx *c = ctx;
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->stopping, 1);
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
}
