/* firmware/run.c — `cityhub run`: the daemon's life cycle, generic over the
 * drivers of the registry (drivers/driver.h).
 *
 * Threads: each input driver asks for a number of runners (the Modbus
 * driver one per bus), each output has its delivery loop (hub_output_run),
 * every thread with the stack its driver names; the main thread waits for
 * signals and does the journal's group commit every sync_interval and the
 * gateway's health point every status_interval. Readings go from the
 * inputs through the hub's accept path (hub/accept.h) into the journal. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"
#include "firmware/notify.h"
#include "firmware/privilege.h"
#include "firmware/reload.h"
#include "firmware/status.h"
#include "firmware/units.h"
#include "hub/accept.h"
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/clocktrust.h"
#include "hub/deadletter.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/metrics.h"
#include "hub/output.h"
#include "hub/reading.h"

#define STOP_DEADLINE_NS (4000LL * HUB_NS_PER_MS) /* SIGTERM to exit, worst case */
#define STOP_CANCEL_NS (2500LL * HUB_NS_PER_MS)   /* then outputs' transfers are aborted */
#define STOP_INPUTS_NS (1500LL * HUB_NS_PER_MS)   /* longest wait for the input runners */
/* A reload waits longer: a poll in progress ends within its reply timeout. */
#define RELOAD_INPUTS_NS (30LL * HUB_NS_PER_S)
#define CH_METRICS_MAX 16384 /* registry bound: ~100 B each */
#define CH_MAX_RUNNERS 1024

/* Sanitizers put redzones on the stack: give their builds room. */
#if defined(__SANITIZE_ADDRESS__)
#define STACK_FACTOR 8
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STACK_FACTOR 8
#endif
#endif
#ifndef STACK_FACTOR
#define STACK_FACTOR 1
#endif

/* A worker thread that the main thread joins with a deadline. */
struct ch_thread {
    pthread_t id;
    int started;
    atomic_int done;
};

struct ch_in {
    const struct drv_ops *ops;
    void *ctx;
};

struct ch_runner {
    struct ch_in *in;
    size_t index;
    struct ch_thread th;
    struct hub_beat *beat; /* its heartbeat, for the watchdog (NULL: none) */
};

struct ch_out {
    const struct drv_ops *ops;
    const struct drv_output_common *common;
    void *ctx;
    hub_output_t *loop;
    hub_deadletter_t *dl; /* readings its server refused */
    struct ch_thread th;
    struct hub_beat *beat;
};

struct ch_daemon {
    struct ch_config *c;
    hub_journal_t *journal;
    hub_metrics_t *metrics;
    hub_accept_t *accept;
    struct ch_in ins[CH_MAX_INPUT_DRIVERS];
    size_t nins;
    struct ch_runner *runners;
    size_t nrunners;
    struct ch_out outs[CH_MAX_OUTPUTS];
    size_t nouts;
    struct ch_units *units; /* for the outputs' drv_env.unit_of */
    struct drv_env *env;    /* what the drivers were given; a reload updates it */
    ch_reload_t *reload;
    int64_t started_ns;
    /* the status HTTP server (hub.status); set once inputs may already emit */
    _Atomic(ch_status_t *) status;
    struct ch_status_input status_ins[CH_MAX_INPUT_DRIVERS];
    struct ch_status_output status_outs[CH_MAX_OUTPUTS];
    struct ch_notify_env notify; /* what systemd's STATUS= and watchdog read */
};

static int sink_emit(void *ctx, hub_reading_t *r)
{
    struct ch_daemon *d = ctx;
    ch_status_observe(atomic_load_explicit(&d->status, memory_order_acquire), r);
    return hub_accept_reading(d->accept, r);
}

static void *runner_main(void *arg)
{
    struct ch_runner *rn = arg;
    hub_beat_attach(rn->beat);
    rn->in->ops->run(rn->in->ctx, rn->index);
    hub_beat_detach();
    atomic_store(&rn->th.done, 1);
    return NULL;
}

static void *output_main(void *arg)
{
    struct ch_out *out = arg;
    hub_beat_attach(out->beat);
    hub_output_run(out->loop);
    hub_beat_detach();
    atomic_store(&out->th.done, 1);
    return NULL;
}

/* Start fn(arg) on a thread with the driver's stack size. */
static int thread_start(struct ch_thread *t, const struct drv_ops *ops, void *(*fn)(void *),
                        void *arg)
{
    pthread_attr_t attr;
    size_t stack = (ops->stack_size ? ops->stack_size : DRV_STACK_DEFAULT) * STACK_FACTOR;
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = (size_t)PTHREAD_STACK_MIN;
    pthread_attr_init(&attr);
    int e = pthread_attr_setstacksize(&attr, stack);
    if (e == 0)
        e = pthread_create(&t->id, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (e == 0)
        t->started = 1;
    return e;
}

/* Wait for a started thread until deadline (monotonic ns): an input may sit
 * in one request for its whole reply timeout, an output in one HTTP
 * transfer. Returns 0 if it ended (or never started) and was joined. */
static int thread_join_by(struct ch_thread *t, int64_t deadline)
{
    if (!t->started)
        return 0;
    while (!atomic_load(&t->done)) {
        if (hub_mono_ns() >= deadline)
            return -1;
        hub_beat(); /* a bounded wait: the waiting loop is alive */
        struct timespec ts = {0, 10 * HUB_NS_PER_MS};
        nanosleep(&ts, NULL);
    }
    pthread_join(t->id, NULL);
    t->started = 0;
    return 0;
}

/* ---- health point -------------------------------------------------------- */

static void emit_health(struct ch_daemon *d)
{
    struct hub_journal_stats js;
    hub_journal_stats(d->journal, &js);
    hub_reading_t *r = hub_clock_reading_new("cityhub");
    if (!r)
        return;
    hub_reading_add_uint(r, "uptime_s", (uint64_t)((hub_mono_ns() - d->started_ns) / HUB_NS_PER_S));
    hub_reading_add_uint(r, "accepted", hub_accept_accepted(d->accept));
    hub_reading_add_uint(r, "refused", hub_accept_refused(d->accept));
    hub_reading_add_uint(r, "journal_bytes", js.bytes);
    hub_reading_add_uint(r, "journal_segments", js.segments);
    hub_reading_add_uint(r, "journal_dropped", js.dropped);
    hub_reading_add_uint(r, "journal_fsyncs", js.fsyncs);
    hub_reading_add_uint(r, "journal_disk_full", js.disk_full);
    hub_reading_add_uint(r, "journal_damaged", js.damaged_records);
    struct drv_stats in = {0}, out = {0};
    for (size_t i = 0; i < d->nins; i++)
        if (d->ins[i].ops->stats)
            d->ins[i].ops->stats(d->ins[i].ctx, &in);
    uint64_t lag = 0, retries = 0, delivered = 0;
    for (size_t i = 0; i < d->nouts; i++) {
        struct hub_output_stats os;
        hub_output_stats(d->outs[i].loop, &os);
        if (js.next_seq > os.cursor && js.next_seq - os.cursor > lag)
            lag = js.next_seq - os.cursor;
        retries += os.retries;
        delivered += os.delivered;
        if (d->outs[i].ops->stats)
            d->outs[i].ops->stats(d->outs[i].ctx, &out);
    }
    hub_reading_add_uint(r, "sources", in.sources);
    hub_reading_add_uint(r, "sources_failing", in.failing);
    hub_reading_add_uint(r, "outputs_failing", out.failing);
    hub_reading_add_uint(r, "output_lag", lag);
    if (lag)
        hub_reading_add_float(r, "oldest_unsent_s",
                              ch_status_reading_age_s(d->journal, js.next_seq - lag));
    hub_reading_add_uint(r, "output_retries", retries);
    hub_reading_add_uint(r, "output_delivered", delivered);
    hub_reading_add_string(r, "version", CITYHUB_VERSION);
    hub_clock_add_fields(r);
    hub_accept_reading(d->accept, r);
}

/* One cityhub_output point per output: its state, what it delivered and
 * refused, and the backlog it has to drain (with an estimate of the time). */
static void emit_output_status(struct ch_daemon *d)
{
    for (size_t i = 0; i < d->nouts; i++) {
        struct hub_output_stats os;
        hub_output_stats(d->outs[i].loop, &os);
        hub_reading_t *r = hub_clock_reading_new("cityhub_output");
        if (!r)
            return;
        hub_reading_add_tag(r, "output", d->outs[i].common->name);
        hub_reading_add_tag(r, "type", d->outs[i].ops->name);
        hub_reading_add_string(r, "state", hub_out_state_name(os.state));
        if (os.alarm[0])
            hub_reading_add_string(r, "alarm", os.alarm);
        if (os.retrying_since_ns) {
            int64_t s_ = (hub_time_ns() - os.retrying_since_ns) / HUB_NS_PER_S;
            hub_reading_add_uint(r, "failing_for_s", s_ > 0 ? (uint64_t)s_ : 0);
        }
        hub_reading_add_uint(r, "delivered", os.delivered);
        hub_reading_add_uint(r, "requests", os.batches);
        hub_reading_add_uint(r, "retries", os.retries);
        hub_reading_add_uint(r, "rejected", os.rejected);
        hub_reading_add_uint(r, "deadletter_errors", os.deadletter_errors);
        hub_reading_add_uint(r, "splits", os.splits);
        hub_reading_add_uint(r, "dropped", os.dropped);
        hub_reading_add_uint(r, "corrupt", os.corrupt);
        hub_reading_add_uint(r, "backlog", os.backlog);
        hub_reading_add_float(r, "rate", os.rate);
        if (os.backlog && os.rate >= 1)
            hub_reading_add_float(r, "eta_s", (double)os.backlog / os.rate);
        hub_accept_reading(d->accept, r);
    }
}

/* ---- start and stop ------------------------------------------------------ */

/* The output's dead-letter file: its dead_letter key, or
 * deadletter/NAME.jsonl in the directory that holds the journal's (created
 * 0700: refused readings may be private). Returns 0 or -1 with err. */
static int open_deadletter(const struct ch_config *c, struct ch_out *o, char *err, size_t errlen)
{
    char path[512];
    if (o->common->dead_letter[0]) {
        snprintf(path, sizeof(path), "%s", o->common->dead_letter);
    } else {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s", c->hub.journal.path);
        snprintf(path, sizeof(path), "%s/deadletter", dirname(dir));
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "dead-letter directory %.300s: %s", path, strerror(errno));
            return -1;
        }
        size_t k = strlen(path);
        snprintf(path + k, sizeof(path) - k, "/%s.jsonl", o->common->name);
    }
    if (hub_deadletter_open(path, o->common->dead_letter_max, &o->dl, err, errlen) != HUB_OK)
        return -1;
    hub_debug("cityhub", "output %s: refused readings go to %s", o->common->name, path);
    return 0;
}

static int start_outputs(struct ch_daemon *d, const struct drv_env *env)
{
    char err[512];
    for (size_t i = 0; i < d->c->noutputs; i++) {
        struct ch_out *o = &d->outs[d->nouts];
        o->ops = d->c->outputs[i].ops;
        o->common = d->c->outputs[i].cfg;
        if (o->ops->init(d->c->outputs[i].cfg, env, &o->ctx, err, sizeof(err)) != 0) {
            hub_err("cityhub", "output %s: %s", o->common->name, err);
            return -1;
        }
        d->nouts++;
        if (open_deadletter(d->c, o, err, sizeof(err)) != 0) {
            hub_err("cityhub", "output %s: %s", o->common->name, err);
            return -1;
        }
        struct hub_output_opts oo = {
            .name = o->common->name,
            .type = o->ops->name,
            .batch_size = (size_t)o->common->batch_size,
            .flush_interval_ns = o->common->flush_interval_ns,
            .stop_grace_ns = 2 * HUB_NS_PER_S,
            .alarm_retry_ns = o->common->alarm_retry_ns,
            .deadletter = o->dl,
            .format = o->ops->format,
            .metrics = d->metrics,
            .async = o->ops->async,
        };
        int rc = hub_output_new(d->journal, &oo, o->ops->flush, o->ctx, &o->loop);
        if (rc != HUB_OK) {
            hub_err("cityhub", "output %s: cannot start its delivery loop: %s", o->common->name,
                    hub_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static int start_inputs(struct ch_daemon *d, const struct drv_env *env)
{
    char err[512];
    size_t total = 0;
    for (size_t i = 0; i < d->c->ninputs; i++) {
        const struct ch_input_cfg *ic = &d->c->inputs[i];
        if (!ic->elements)
            continue;
        struct ch_in *in = &d->ins[d->nins];
        in->ops = ic->ops;
        if (in->ops->init(&ic->cfg, env, &in->ctx, err, sizeof(err)) != 0) {
            hub_err("cityhub", "%s: %s", in->ops->name, err);
            return -1;
        }
        d->nins++;
        total += in->ops->runners(in->ctx);
    }
    if (total > CH_MAX_RUNNERS) {
        hub_err("cityhub", "%zu input threads asked for; at most %d", total, CH_MAX_RUNNERS);
        return -1;
    }
    d->runners = calloc(total ? total : 1, sizeof(*d->runners));
    if (!d->runners) {
        hub_err("cityhub", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < d->nins; i++)
        for (size_t k = 0; k < d->ins[i].ops->runners(d->ins[i].ctx); k++)
            d->runners[d->nrunners++] = (struct ch_runner){.in = &d->ins[i], .index = k};
    return 0;
}

static int start_threads(struct ch_daemon *d)
{
    hub_beats_t *beats = ch_notify_beats();
    for (size_t i = 0; i < d->nouts; i++) {
        char who[HUB_BEAT_WHO_MAX];
        snprintf(who, sizeof(who), "%s:%s", d->outs[i].ops->name, d->outs[i].common->name);
        d->outs[i].beat = hub_beats_add(beats, who);
        int e = thread_start(&d->outs[i].th, d->outs[i].ops, output_main, &d->outs[i]);
        if (e != 0) {
            hub_err("cityhub", "output %s: cannot start its thread: %s", d->outs[i].common->name,
                    strerror(e));
            return -1;
        }
    }
    for (size_t i = 0; i < d->nrunners; i++) {
        struct ch_runner *rn = &d->runners[i];
        char who[HUB_BEAT_WHO_MAX];
        snprintf(who, sizeof(who), "%s runner %zu", rn->in->ops->name, rn->index);
        rn->beat = hub_beats_add(beats, who);
        int e = thread_start(&rn->th, rn->in->ops, runner_main, rn);
        if (e != 0) {
            hub_err("cityhub", "%s: cannot start runner %zu: %s", rn->in->ops->name, rn->index,
                    strerror(e));
            return -1;
        }
    }
    return 0;
}

/* Stop everything: the inputs within inputs_ns, the outputs by
 * STOP_DEADLINE_NS from the start (SIGTERM: inputs_ns is STOP_INPUTS_NS,
 * and each output flushes what the inputs accepted until then) or, for a
 * reload (longer for the inputs), at once, each output after the request it
 * has in flight, by STOP_DEADLINE_NS from when the inputs ended. Returns 1
 * if a thread is still busy (nothing it uses may be freed), else 0. */
static int stop_within(struct ch_daemon *d, int64_t inputs_ns)
{
    int64_t stop_began = hub_mono_ns();
    int stuck = 0;
    for (size_t i = 0; i < d->nins; i++)
        d->ins[i].ops->stop(d->ins[i].ctx);
    for (size_t i = 0; inputs_ns > STOP_INPUTS_NS && i < d->nouts; i++)
        if (d->outs[i].th.started)
            hub_output_stop_now(d->outs[i].loop);
    for (size_t i = 0; i < d->nrunners; i++) {
        if (thread_join_by(&d->runners[i].th, stop_began + inputs_ns) != 0) {
            hub_warn("cityhub",
                     "%s runner %zu still busy in a request at the stop deadline; not waiting "
                     "for it",
                     d->runners[i].in->ops->name, d->runners[i].index);
            stuck = 1;
        }
    }
    if (inputs_ns > STOP_INPUTS_NS)
        stop_began = hub_mono_ns();
    if (d->journal && hub_journal_sync(d->journal) != HUB_OK)
        hub_err("journal", "final fsync failed: %s", strerror(errno));
    for (size_t i = 0; i < d->nouts; i++)
        if (d->outs[i].th.started)
            hub_output_stop(d->outs[i].loop);
    for (size_t i = 0; i < d->nouts; i++) {
        struct ch_out *o = &d->outs[i];
        /* Past the cancel time, a transfer still in progress is aborted. */
        if (thread_join_by(&o->th, stop_began + STOP_CANCEL_NS) != 0 && o->ops->cancel)
            o->ops->cancel(o->ctx);
        if (thread_join_by(&o->th, stop_began + STOP_DEADLINE_NS) != 0) {
            hub_warn("cityhub",
                     "output %s still busy at the stop deadline; its last batch will "
                     "be sent again after restart",
                     o->common->name);
            stuck = 1;
        }
    }
    return stuck;
}

/* Stop everything within STOP_DEADLINE_NS (SIGTERM). */
static int stop_all(struct ch_daemon *d)
{
    return stop_within(d, STOP_INPUTS_NS);
}

/* The status server: it reads the journal, the outputs' loops and the
 * inputs' sources, so it starts once they exist and stops before they go.
 * It failing to listen is logged; the hub runs on without it. */
static void status_env(struct ch_daemon *d, const struct drv_env *env, struct ch_status_env *se)
{
    const struct ch_hub_cfg *h = &d->c->hub;
    for (size_t i = 0; i < d->nins; i++)
        d->status_ins[i] = (struct ch_status_input){d->ins[i].ops, d->ins[i].ctx};
    for (size_t i = 0; i < d->nouts; i++)
        d->status_outs[i] =
            (struct ch_status_output){d->outs[i].common->name, d->outs[i].ops->name,
                                      d->outs[i].loop, d->outs[i].ops, d->outs[i].ctx};
    *se = (struct ch_status_env){
        .cfg = &h->status,
        .gateway = h->name,
        .version = CITYHUB_VERSION,
        .journal = d->journal,
        .journal_max_size = h->journal.max_size,
        .metrics = d->metrics,
        .accept = d->accept,
        .ins = d->status_ins,
        .nins = d->nins,
        .outs = d->status_outs,
        .nouts = d->nouts,
        .drv_env = env,
        .started_ns = d->started_ns,
        .stack_size = ((size_t)128 << 10) * STACK_FACTOR,
        .reload = d->reload,
    };
}

static void start_status(struct ch_daemon *d, const struct drv_env *env)
{
    struct ch_status_env se;
    char err[512];
    status_env(d, env, &se);
    ch_status_t *st = NULL;
    if (ch_status_start(&se, &st, err, sizeof(err)) != 0)
        hub_err("status", "%s; running without the status server", err);
    atomic_store_explicit(&d->status, st, memory_order_release);
}

/* Free the inputs and outputs, stopped; the journal, the metrics, the
 * accept path and the status server stay. */
static void free_io(struct ch_daemon *d)
{
    for (size_t i = 0; i < d->nouts; i++) {
        struct hub_output_stats os;
        if (!d->outs[i].loop)
            continue;
        hub_output_stats(d->outs[i].loop, &os);
        hub_info("cityhub",
                 "output %s: %" PRIu64 " delivered, cursor at %" PRIu64 "; %" PRIu64
                 " dropped undelivered, %" PRIu64 " corrupt, %" PRIu64 " rejected",
                 d->outs[i].common->name, os.delivered, os.cursor, os.dropped, os.corrupt,
                 os.rejected);
        hub_output_free(d->outs[i].loop);
    }
    for (size_t i = 0; i < d->nouts; i++) {
        d->outs[i].ops->exit(d->outs[i].ctx);
        hub_deadletter_close(d->outs[i].dl);
    }
    for (size_t i = 0; i < d->nins; i++)
        d->ins[i].ops->exit(d->ins[i].ctx);
    free(d->runners);
    d->runners = NULL;
    d->nrunners = d->nins = d->nouts = 0;
    memset(d->ins, 0, sizeof(d->ins));
    memset(d->outs, 0, sizeof(d->outs));
}

static void free_all(struct ch_daemon *d)
{
    ch_status_stop(atomic_load(&d->status));
    free_io(d);
    ch_reload_free(d->reload);
    if (d->journal && d->accept) {
        struct hub_journal_stats js;
        hub_journal_stats(d->journal, &js);
        hub_info("cityhub",
                 "stopped: %" PRIu64 " readings accepted, %" PRIu64
                 " refused; journal: next seq %" PRIu64 ", %" PRIu64
                 " dropped undelivered, %" PRIu64 " appends refused on a full disk",
                 hub_accept_accepted(d->accept), hub_accept_refused(d->accept), js.next_seq,
                 js.dropped, js.disk_full);
    }
    hub_accept_free(d->accept);
    if (d->journal)
        hub_journal_close(d->journal);
    hub_metrics_free(d->metrics);
    ch_units_free(d->units);
    ch_config_free(d->c);
}

/* What systemd's STATUS= and watchdog read: the inputs and outputs running
 * now (the status server's lists); valid until they are freed. */
static const struct ch_notify_env *notify_env(struct ch_daemon *d)
{
    d->notify =
        (struct ch_notify_env){d->journal, d->status_ins, d->nins, d->status_outs, d->nouts};
    return &d->notify;
}

/* ---- reload (SIGHUP) ----------------------------------------------------------- */

/* Run c's inputs and outputs (d has none): the drivers' env and the accept
 * path get its hub keys, the status server its new inputs and outputs
 * (kept: it is held and is let go here; else started on c's hub.status).
 * Returns 0, -1 when they did not start (stopped and freed again), or -2
 * when a thread of theirs did not stop (the daemon must exit). */
static int run_config(struct ch_daemon *d, struct ch_config *c, int keep_status)
{
    d->c = c;
    d->units = ch_units_build(c);
    d->env->status_interval_ns = c->hub.status_interval_ns;
    hub_clock_configure((enum hub_clock_policy)c->hub.clock.require_sync, c->hub.clock.step_ns);
    d->env->gateway = c->hub.name;
    d->env->hub_tags = &c->hub.tags;
    d->env->units = d->units;
    if (hub_accept_retag(d->accept, c->hub.name, &c->hub.tags) != HUB_OK ||
        start_outputs(d, d->env) != 0 || start_inputs(d, d->env) != 0 || start_threads(d) != 0) {
        int stuck = stop_all(d);
        if (stuck)
            return -2;
        free_io(d);
        ch_units_free(d->units);
        d->units = NULL;
        d->env->units = NULL;
        return -1;
    }
    if (keep_status) {
        struct ch_status_env se;
        status_env(d, d->env, &se);
        ch_status_rebind(atomic_load(&d->status), &se);
    } else {
        start_status(d, d->env);
    }
    return 0;
}

/* SIGHUP: the file read again; a valid one replaces the running
 * configuration. Inputs stop (a poll in progress finishes), outputs finish
 * the request in flight and persist their cursors, the journal stays open;
 * then both start from the new file, each output from its cursor (a new
 * one from the oldest stored reading), so no accepted reading is lost or
 * delivered twice. A status server that serves the same hub.status stays.
 * Returns 0, or -1 when a thread did not stop in time: the daemon exits
 * (everything accepted is in the journal). */
static int reload(struct ch_daemon *d)
{
    struct ch_config *old = d->c, *now = ch_reload_load(d->reload, old);
    if (!now)
        return 0;
    ch_notify_reloading();
    int keep_status = ch_reload_status_same(old, now) && ch_status_serving(atomic_load(&d->status));
    int64_t paused = hub_mono_ns();
    if (stop_within(d, RELOAD_INPUTS_NS)) {
        ch_config_free(now);
        return -1;
    }
    ch_status_t *st = atomic_load(&d->status);
    if (keep_status) {
        ch_status_hold(st);
    } else {
        atomic_store(&d->status, NULL);
        ch_status_stop(st);
    }
    free_io(d);
    struct ch_units *old_units = d->units;
    /* an output the file no longer has: its cursor holds nothing from now on */
    for (size_t i = 0; i < old->noutputs; i++) {
        const char *name = ((const struct drv_output_common *)old->outputs[i].cfg)->name;
        if (!ch_reload_has_output(now, name) &&
            hub_journal_cursor_close(d->journal, name) == HUB_OK)
            hub_info("cityhub",
                     "output %s removed: its cursor stays in the journal's cursors/, "
                     "holding nothing",
                     name);
    }
    ch_reload_logging(d->reload, old, now);
    int rc = run_config(d, now, keep_status);
    if (rc == 0) {
        ch_reload_applied(d->reload, old, now, hub_mono_ns() - paused);
    } else if (rc == -1) {
        ch_reload_failed(d->reload, "see the errors above");
        ch_reload_logging(d->reload, now, old);
        ch_config_free(now);
        now = old;
        rc = run_config(d, old, keep_status);
    }
    if (rc != 0 && keep_status) {
        /* let the held server go, on what is left, for the exit */
        struct ch_status_env se;
        status_env(d, d->env, &se);
        ch_status_rebind(st, &se);
    }
    ch_units_free(old_units);
    if (now != old)
        ch_config_free(old);
    if (rc == 0)
        ch_notify_reloaded(notify_env(d));
    return rc == 0 ? 0 : -1;
}

/* ---- cityhub run ----------------------------------------------------------- */

/* Main loop: group commit every sync_interval, health every status_interval;
 * it wakes for whichever is due first. Returns the signal that ended it. */
static int main_loop(struct ch_daemon *d, const sigset_t *sigs)
{
    const struct ch_hub_cfg *h = &d->c->hub; /* a reload replaces it */
    struct hub_log_limit sync_limit = {0};
    int64_t next_health = d->started_ns + h->status_interval_ns;
    /* sync_interval 0: the journal syncs each append itself */
    int64_t sync_every = h->journal.sync_interval_ns ? h->journal.sync_interval_ns : INT64_MAX / 2;
    int64_t next_sync = d->started_ns + sync_every;
    /* The journal's group commit is a watched loop too: it beats each turn. */
    hub_beat_attach(hub_beats_add(ch_notify_beats(), "main loop"));
    hub_beat_doing("journal", "group commit");
    int64_t most = ch_notify_watchdog_ns() ? HUB_BEAT_WAIT_NS : INT64_MAX;
    for (;;) {
        hub_beat();
        int64_t wait = (next_sync < next_health ? next_sync : next_health) - hub_mono_ns();
        if (wait < HUB_NS_PER_MS)
            wait = HUB_NS_PER_MS;
        if (wait > most)
            wait = most;
        struct timespec ts = {(time_t)(wait / HUB_NS_PER_S), (long)(wait % HUB_NS_PER_S)};
        siginfo_t si;
        int sig = sigtimedwait(sigs, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            return sig;
        if (sig == SIGHUP) {
            hub_log_reopen(); /* logrotate moved the log file */
            if (reload(d) != 0)
                return SIGHUP;
            h = &d->c->hub;
            sync_every = h->journal.sync_interval_ns ? h->journal.sync_interval_ns : INT64_MAX / 2;
            next_sync = hub_mono_ns() + sync_every;
            if (next_health > hub_mono_ns() + h->status_interval_ns)
                next_health = hub_mono_ns() + h->status_interval_ns;
        }
        int64_t now = hub_mono_ns();
        if (now >= next_sync) {
            uint64_t held = 0;
            if (hub_journal_sync(d->journal) != HUB_OK &&
                hub_log_limit_pass(&sync_limit, now, &held))
                hub_err("journal", "fsync failed: %s (%" PRIu64 " more since last report)",
                        strerror(errno), held);
            next_sync = now + sync_every;
        }
        if (now >= next_health) {
            emit_health(d);
            emit_output_status(d);
            next_health = now + h->status_interval_ns;
        }
    }
}

/* A gateway holds one connection per Modbus TCP endpoint (a thousand or
 * more) besides its outputs' and journal's files: the soft limit on open
 * files (1024 by default) is raised to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        hub_warn("cityhub", "open-file limit stays at its soft limit: %s", strerror(errno));
}

int ch_cmd_run(const char *path, const char *log_level)
{
    unsigned nerr = 0;
    int exit_code = 1;
    char err[512];

    /* Signals are taken by the main thread only, with sigtimedwait; blocked
     * before anything else so that a SIGTERM during start-up is kept pending
     * and answered by a clean stop. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* One malloc arena per thread costs pages for little gain here: the
     * threads mostly wait on the network. Two arenas bound it. */
    mallopt(M_ARENA_MAX, 2);
    /* A fixed threshold: large buffers (a scrape's answer) go back to the
     * system when freed instead of raising it and staying in the heap. */
    mallopt(M_MMAP_THRESHOLD, 128 << 10);

    struct ch_daemon d;
    memset(&d, 0, sizeof(d));
    d.c = ch_config_load(path, stderr, &nerr);
    if (!d.c) {
        fprintf(stderr, "cityhub: %u error%s in %s; not starting\n", nerr, nerr == 1 ? "" : "s",
                path);
        return EXIT_USAGE;
    }
    const struct ch_hub_cfg *h = &d.c->hub;
    hub_log_set_level((enum hub_log_level)h->log_level);
    if (log_level) {
        enum hub_log_level lvl;
        if (hub_log_parse_level(log_level, &lvl) != 0) {
            fprintf(stderr, "cityhub: bad --log-level \"%s\" (error, warn, info, debug)\n",
                    log_level);
            ch_config_free(d.c);
            return EXIT_USAGE;
        }
        hub_log_set_level(lvl);
    }
    if (hub_log_open(h->log_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "cityhub: %s; not starting\n", err);
        ch_config_free(d.c);
        return 1;
    }
    raise_fd_limit();
    /* Started as root: hub.user is looked up (a missing one stops here) and
     * the journal's directories are made its own; dropped once the status
     * port is bound, before the threads start. */
    struct ch_priv priv;
    if (ch_priv_prepare(d.c, &priv, err, sizeof(err)) != 0) {
        hub_err("cityhub", "%s; not starting", err);
        ch_config_free(d.c);
        hub_log_close();
        return EXIT_USAGE;
    }
    if (ch_drivers_global_init() != 0) {
        ch_config_free(d.c);
        return 1;
    }

    struct hub_journal_opts jo = {
        .dir = h->journal.path,
        .segment_size = h->journal.segment_size,
        .max_size = h->journal.max_size,
        .on_full = (enum hub_journal_on_full)h->journal.on_full,
        .sync_each = h->journal.sync_interval_ns == 0,
    };
    d.metrics = hub_metrics_new(CH_METRICS_MAX);
    if (!d.metrics) {
        hub_err("cityhub", "out of memory");
        goto out;
    }
    if (hub_journal_open(&jo, &d.journal, err, sizeof(err)) != HUB_OK) {
        hub_err("journal", "%s", err);
        goto out;
    }
    char clock_state[sizeof(h->journal.path) + 8];
    snprintf(clock_state, sizeof(clock_state), "%s/clock", h->journal.path);
    struct hub_clock_opts co = {.require_sync = (enum hub_clock_policy)h->clock.require_sync,
                                .state_path = clock_state,
                                .step_ns = h->clock.step_ns,
                                .metrics = d.metrics};
    if (hub_clock_start(&co, err, sizeof(err)) != HUB_OK) {
        hub_err("clock", "%s", err);
        goto out;
    }
    struct hub_accept_opts ao = {
        .journal = d.journal, .gateway = h->name, .tags = &h->tags, .metrics = d.metrics};
    if (hub_accept_new(&ao, &d.accept) != HUB_OK) {
        hub_err("cityhub", "out of memory");
        goto out;
    }
    struct hub_journal_stats js;
    hub_journal_stats(d.journal, &js);
    char damage[160] = "";
    if (js.damaged_records || js.set_aside)
        snprintf(damage, sizeof(damage),
                 "; %" PRIu64 " damaged records passed over, %" PRIu64 " foreign files set aside",
                 js.damaged_records, js.set_aside);
    hub_info("cityhub",
             "cityhub %s starting: gateway %s, journal %s (%" PRIu64 " segments, next seq %" PRIu64
             "%s%s)",
             CITYHUB_VERSION, h->name, h->journal.path, js.segments, js.next_seq,
             js.recovered_cut ? ", torn tail cut" : "", damage);

    struct drv_sink sink = {.emit = sink_emit, .ctx = &d};
    struct drv_env env = {
        .sink = &sink,
        .metrics = d.metrics,
        .status_interval_ns = h->status_interval_ns,
        .gateway = h->name,
        .hub_tags = &h->tags,
        .unit_of = ch_unit_of,
        .beats = ch_notify_beats(),
    };
    d.units = ch_units_build(d.c);
    env.units = d.units;
    d.env = &env;
    d.reload = ch_reload_new(path, log_level, d.metrics);
    if (!d.reload) {
        hub_err("cityhub", "out of memory");
        goto out;
    }
    d.started_ns = hub_mono_ns();
    if (start_outputs(&d, &env) != 0 || start_inputs(&d, &env) != 0)
        goto out;
    start_status(&d, &env);
    if (ch_priv_drop(&priv, err, sizeof(err)) != 0) {
        hub_err("cityhub", "%s; not starting", err);
        goto out;
    }
    if (start_threads(&d) != 0)
        goto out;
    /* Reading the config built and dropped a YAML tree as large as the
     * file: give those pages back rather than keep them for the years the
     * hub runs. */
    malloc_trim(0);
    hub_info("cityhub", "running: %zu input driver%s (%zu thread%s), %zu output%s", d.nins,
             d.nins == 1 ? "" : "s", d.nrunners, d.nrunners == 1 ? "" : "s", d.nouts,
             d.nouts == 1 ? "" : "s");
    ch_notify_ready(notify_env(&d));

    int sig = main_loop(&d, &sigs);
    if (sig == SIGHUP) {
        hub_err("cityhub", "reload: a thread did not stop in time; exiting (everything accepted "
                           "is in the journal) for a restart to apply the file");
        goto out;
    }
    ch_notify_stopping();
    hub_info("cityhub", "%s: stopping (polling stops, pending readings are flushed)",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    exit_code = 0;

out:
    if (stop_all(&d)) {
        /* Everything accepted is in the journal (synced, but for what a stuck
         * input may still append); a thread still runs, so nothing it uses is
         * freed: leave now. */
        fflush(NULL);
        _exit(exit_code);
    }
    hub_clock_stop();
    free_all(&d);
    ch_notify_free();
    ch_drivers_global_cleanup();
    hub_log_close();
    return exit_code;
}
