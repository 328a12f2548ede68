/* firmware/main.c — the cityhub program: subcommands, wiring config -> drivers
 * -> hub, signals and the daemon's main loop.
 *
 * Threads: one per bus (its input driver polls every device on it), one per
 * output (hub_output_run), and the main thread, which waits for signals and
 * does the journal's group commit every sync_interval and the gateway's
 * health point every status_interval. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <modbus.h>

#include "drivers/driver.h"
#include "drivers/influx/influx.h"
#include "firmware/config.h"
#include "hub/clock.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/output.h"
#include "hub/reading.h"

#ifndef CITYHUB_BOARD
#define CITYHUB_BOARD "unknown"
#endif

#define EXIT_USAGE 2
#define STOP_DEADLINE_NS (4000LL * HUB_NS_PER_MS) /* SIGTERM to exit, worst case */
#define STOP_CANCEL_NS (2500LL * HUB_NS_PER_MS)   /* then outputs' transfers are aborted */
#define STOP_INPUTS_NS (1500LL * HUB_NS_PER_MS)   /* longest wait for the bus threads */

/* ---- the sink: readings from inputs into the journal --------------------- */

struct ch_sink {
    hub_journal_t *journal;
    const struct ch_hub_cfg *hub;
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t refused; /* invalid reading, or journal full (drop_newest) */
    struct hub_log_limit limit;
    pthread_mutex_t limit_lock;
};

/* Add the gateway-wide tags unless the device set them already. */
static int sink_add_common_tags(const struct ch_hub_cfg *hub, hub_reading_t *r)
{
    int rc = HUB_OK;
    if (!hub_reading_tag_value(r, "gateway"))
        rc = hub_reading_add_tag(r, "gateway", hub->name);
    for (size_t i = 0; rc == HUB_OK && i < hub->tags.n; i++)
        if (!hub_reading_tag_value(r, hub->tags.tag[i].key))
            rc = hub_reading_add_tag(r, hub->tags.tag[i].key, hub->tags.tag[i].value);
    return rc;
}

static int sink_emit(void *ctx, hub_reading_t *r)
{
    struct ch_sink *s = ctx;
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    int rc = sink_add_common_tags(s->hub, r);
    if (rc == HUB_OK)
        rc = hub_reading_encode(r, &b);
    if (rc == HUB_OK)
        rc = hub_journal_append(s->journal, b.data, b.len, NULL);
    if (rc == HUB_OK) {
        atomic_fetch_add(&s->accepted, 1);
    } else {
        atomic_fetch_add(&s->refused, 1);
        uint64_t held = 0;
        pthread_mutex_lock(&s->limit_lock);
        int say = hub_log_limit_pass(&s->limit, hub_mono_ns(), &held);
        pthread_mutex_unlock(&s->limit_lock);
        if (say)
            hub_err("journal", "reading %s not accepted: %s (%" PRIu64 " more since last report)",
                    hub_reading_measurement(r), hub_strerror(rc), held);
    }
    hub_buf_free(&b);
    hub_reading_free(r);
    return rc;
}

/* ---- threads ------------------------------------------------------------- */

/* A worker thread that the main thread joins with a deadline. */
struct ch_thread {
    pthread_t id;
    int started;
    atomic_int done;
};

struct ch_input {
    const struct drv_input_ops *ops;
    void *ctx;
    struct drv_modbus_input_cfg cfg;
    struct ch_thread th;
};

struct ch_output {
    const struct drv_output_ops *ops;
    const struct drv_output_common *common;
    void *ctx;
    hub_output_t *loop;
    struct ch_thread th;
};

static void *input_main(void *arg)
{
    struct ch_input *in = arg;
    in->ops->run(in->ctx);
    atomic_store(&in->th.done, 1);
    return NULL;
}

static void *output_main(void *arg)
{
    struct ch_output *out = arg;
    hub_output_run(out->loop);
    atomic_store(&out->th.done, 1);
    return NULL;
}

/* Wait for a started thread until deadline (monotonic ns): a bus thread may
 * sit in one request for its whole reply timeout, an output in one HTTP
 * transfer. Returns 0 if it ended (or never started) and was joined. */
static int thread_join_by(struct ch_thread *t, int64_t deadline)
{
    if (!t->started)
        return 0;
    while (!atomic_load(&t->done)) {
        if (hub_mono_ns() >= deadline)
            return -1;
        struct timespec ts = {0, 10 * HUB_NS_PER_MS};
        nanosleep(&ts, NULL);
    }
    pthread_join(t->id, NULL);
    t->started = 0;
    return 0;
}

/* ---- health point -------------------------------------------------------- */

static void emit_health(struct ch_sink *sink, struct ch_output *outs, size_t nouts,
                        int64_t started_ns)
{
    struct hub_journal_stats js;
    hub_journal_stats(sink->journal, &js);
    hub_reading_t *r = hub_reading_new("cityhub", hub_time_ns());
    if (!r)
        return;
    hub_reading_add_uint(r, "uptime_s", (uint64_t)((hub_mono_ns() - started_ns) / HUB_NS_PER_S));
    hub_reading_add_uint(r, "accepted", atomic_load(&sink->accepted));
    hub_reading_add_uint(r, "refused", atomic_load(&sink->refused));
    hub_reading_add_uint(r, "journal_bytes", js.bytes);
    hub_reading_add_uint(r, "journal_segments", js.segments);
    hub_reading_add_uint(r, "journal_dropped", js.dropped);
    hub_reading_add_uint(r, "journal_fsyncs", js.fsyncs);
    uint64_t lag = 0, retries = 0, delivered = 0;
    for (size_t i = 0; i < nouts; i++) {
        struct hub_output_stats os;
        hub_output_stats(outs[i].loop, &os);
        if (js.next_seq > os.cursor && js.next_seq - os.cursor > lag)
            lag = js.next_seq - os.cursor;
        retries += os.retries;
        delivered += os.delivered;
    }
    hub_reading_add_uint(r, "output_lag", lag);
    hub_reading_add_uint(r, "output_retries", retries);
    hub_reading_add_uint(r, "output_delivered", delivered);
    hub_reading_add_string(r, "version", CITYHUB_VERSION);
    sink_emit(sink, r);
}

/* ---- cityhub run ----------------------------------------------------------- */

static int cmd_run(const char *path, int debug_modbus, const char *log_level)
{
    unsigned nerr = 0;
    int exit_code = 1;

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

    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c) {
        fprintf(stderr, "cityhub: %u error%s in %s; not starting\n", nerr, nerr == 1 ? "" : "s",
                path);
        return EXIT_USAGE;
    }
    hub_log_set_level((enum hub_log_level)c->hub.log_level);
    if (log_level) {
        enum hub_log_level lvl;
        if (hub_log_parse_level(log_level, &lvl) != 0) {
            fprintf(stderr, "cityhub: bad --log-level \"%s\" (error, warn, info, debug)\n",
                    log_level);
            ch_config_free(c);
            return EXIT_USAGE;
        }
        hub_log_set_level(lvl);
    }

    struct ch_input inputs[CH_MAX_BUSES];
    struct ch_output outputs[CH_MAX_OUTPUTS];
    size_t ninputs = 0, noutputs = 0;
    memset(inputs, 0, sizeof(inputs));
    memset(outputs, 0, sizeof(outputs));
    struct ch_sink sink = {.hub = &c->hub};
    pthread_mutex_init(&sink.limit_lock, NULL);
    char err[512];

    struct hub_journal_opts jo = {
        .dir = c->hub.journal.path,
        .segment_size = c->hub.journal.segment_size,
        .max_size = c->hub.journal.max_size,
        .on_full = (enum hub_journal_on_full)c->hub.journal.on_full,
    };
    if (hub_journal_open(&jo, &sink.journal, err, sizeof(err)) != HUB_OK) {
        hub_err("journal", "%s", err);
        goto out;
    }
    struct hub_journal_stats js;
    hub_journal_stats(sink.journal, &js);
    hub_info("cityhub",
             "%s %s starting: gateway %s, journal %s (%" PRIu64 " segments, next seq %" PRIu64
             "%s)",
             "cityhub", CITYHUB_VERSION, c->hub.name, c->hub.journal.path, js.segments, js.next_seq,
             js.recovered_cut ? ", torn tail cut" : "");

    for (size_t i = 0; i < c->noutputs; i++) {
        struct ch_output *o = &outputs[noutputs];
        o->ops = c->outputs[i].ops;
        o->common = c->outputs[i].cfg;
        if (o->ops->init(c->outputs[i].cfg, &o->ctx, err, sizeof(err)) != 0) {
            hub_err("cityhub", "output %s: %s", o->common->name, err);
            goto out;
        }
        noutputs++;
        struct hub_output_opts oo = {
            .name = o->common->name,
            .type = o->ops->type,
            .batch_size = (size_t)o->common->batch_size,
            .flush_interval_ns = o->common->flush_interval_ns,
            .stop_grace_ns = 2 * HUB_NS_PER_S,
        };
        if (hub_output_new(sink.journal, &oo, o->ops->flush, o->ctx, &o->loop) != HUB_OK) {
            hub_err("cityhub", "output %s: cannot start its delivery loop", o->common->name);
            goto out;
        }
    }

    struct drv_sink dsink = {.emit = sink_emit, .ctx = &sink};
    for (size_t b = 0; b < c->nbuses; b++) {
        struct ch_input *in = &inputs[ninputs];
        in->cfg.bus = &c->buses[b];
        in->cfg.debug = debug_modbus;
        for (size_t d = 0; d < c->ndevices && in->cfg.ndevices < DRV_MB_MAX_DEVICES; d++)
            if (strcmp(c->devices[d].bus, c->buses[b].name) == 0)
                in->cfg.devices[in->cfg.ndevices++] = &c->devices[d];
        if (in->cfg.ndevices == 0) {
            hub_warn("cityhub", "bus %s has no devices; not polling it", c->buses[b].name);
            continue;
        }
        in->ops = &drv_modbus_input_ops;
        if (!in->ops) {
            hub_err("cityhub", "bus %s: type %s is not supported by this build", c->buses[b].name,
                    drv_modbus_bus_types[c->buses[b].type]);
            goto out;
        }
        if (in->ops->init(&in->cfg, &dsink, &in->ctx, err, sizeof(err)) != 0) {
            hub_err("cityhub", "bus %s: %s", c->buses[b].name, err);
            goto out;
        }
        ninputs++;
    }

    for (size_t i = 0; i < noutputs; i++) {
        int e = pthread_create(&outputs[i].th.id, NULL, output_main, &outputs[i]);
        if (e != 0) {
            hub_err("cityhub", "output %s: cannot start its thread: %s", outputs[i].common->name,
                    strerror(e));
            goto out;
        }
        outputs[i].th.started = 1;
    }
    for (size_t i = 0; i < ninputs; i++) {
        int e = pthread_create(&inputs[i].th.id, NULL, input_main, &inputs[i]);
        if (e != 0) {
            hub_err("cityhub", "bus %s: cannot start its thread: %s", inputs[i].cfg.bus->name,
                    strerror(e));
            goto out;
        }
        inputs[i].th.started = 1;
    }
    hub_info("cityhub", "running: %zu bus%s, %zu device%s, %zu output%s", ninputs,
             ninputs == 1 ? "" : "es", c->ndevices, c->ndevices == 1 ? "" : "s", noutputs,
             noutputs == 1 ? "" : "s");

    /* Main loop: group commit every sync_interval, health every status_interval;
     * it wakes for whichever is due first. */
    int64_t started = hub_mono_ns();
    int64_t next_health = started + c->hub.status_interval_ns;
    int64_t sync_ns = c->hub.journal.sync_interval_ns;
    int64_t next_sync = started + sync_ns;
    int sig = 0;
    for (;;) {
        int64_t wait = (next_sync < next_health ? next_sync : next_health) - hub_mono_ns();
        if (wait < HUB_NS_PER_MS)
            wait = HUB_NS_PER_MS;
        struct timespec ts = {(time_t)(wait / HUB_NS_PER_S), (long)(wait % HUB_NS_PER_S)};
        siginfo_t si;
        sig = sigtimedwait(&sigs, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig == SIGHUP)
            hub_info("cityhub",
                     "SIGHUP: reload is not supported yet; restart to apply a new config");
        int64_t now = hub_mono_ns();
        if (now >= next_sync) {
            if (hub_journal_sync(sink.journal) != HUB_OK)
                hub_err("journal", "fsync failed: %s", strerror(errno));
            next_sync = now + sync_ns;
        }
        if (now >= next_health) {
            emit_health(&sink, outputs, noutputs, started);
            next_health = now + c->hub.status_interval_ns;
        }
    }
    hub_info("cityhub", "%s: stopping (polling stops, pending readings are flushed)",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    exit_code = 0;

out:;
    int64_t stop_began = hub_mono_ns();
    int64_t deadline = stop_began + STOP_DEADLINE_NS;
    for (size_t i = 0; i < ninputs; i++)
        if (inputs[i].th.started)
            inputs[i].ops->stop(inputs[i].ctx);
    int stuck = 0;
    for (size_t i = 0; i < ninputs; i++) {
        if (thread_join_by(&inputs[i].th, stop_began + STOP_INPUTS_NS) != 0) {
            hub_warn("cityhub",
                     "bus %s still busy in a request at the stop deadline; not waiting for it",
                     inputs[i].cfg.bus->name);
            stuck = 1;
        }
    }
    if (sink.journal && hub_journal_sync(sink.journal) != HUB_OK)
        hub_err("journal", "final fsync failed: %s", strerror(errno));
    for (size_t i = 0; i < noutputs; i++)
        if (outputs[i].th.started)
            hub_output_stop(outputs[i].loop);
    for (size_t i = 0; i < noutputs; i++) {
        struct ch_output *o = &outputs[i];
        /* Past the cancel time, a transfer still in progress is aborted. */
        if (thread_join_by(&o->th, stop_began + STOP_CANCEL_NS) != 0 && o->ops->cancel)
            o->ops->cancel(o->ctx);
        if (thread_join_by(&o->th, deadline) != 0) {
            hub_warn("cityhub",
                     "output %s still busy at the stop deadline; its last batch will "
                     "be sent again after restart",
                     outputs[i].common->name);
            stuck = 1;
        }
    }
    if (stuck) {
        /* Everything accepted is in the journal (synced, but for what a stuck
         * bus thread may still append); a thread still runs, so nothing it
         * uses is freed: leave now. */
        fflush(NULL);
        _exit(exit_code);
    }
    for (size_t i = 0; i < noutputs; i++) {
        struct hub_output_stats os;
        if (!outputs[i].loop)
            continue;
        hub_output_stats(outputs[i].loop, &os);
        hub_info("cityhub", "output %s: %" PRIu64 " delivered, cursor at %" PRIu64,
                 outputs[i].common->name, os.delivered, os.cursor);
        hub_output_free(outputs[i].loop);
    }
    for (size_t i = 0; i < noutputs; i++)
        outputs[i].ops->exit(outputs[i].ctx);
    for (size_t i = 0; i < ninputs; i++)
        inputs[i].ops->exit(inputs[i].ctx);
    if (sink.journal)
        hub_journal_close(sink.journal);
    pthread_mutex_destroy(&sink.limit_lock);
    ch_config_free(c);
    return exit_code;
}

/* ---- cityhub check --------------------------------------------------------- */

static int cmd_check(const char *path)
{
    unsigned nerr = 0;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c) {
        fprintf(stderr, "%s: %u error%s\n", path, nerr, nerr == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    size_t nregs = 0;
    for (size_t i = 0; i < c->ndevices; i++)
        nregs += c->devices[i].nregs;
    printf("%s: ok — gateway %s, %zu bus%s, %zu device%s (%zu registers), %zu output%s, "
           "journal %s\n",
           path, c->hub.name, c->nbuses, c->nbuses == 1 ? "" : "es", c->ndevices,
           c->ndevices == 1 ? "" : "s", nregs, c->noutputs, c->noutputs == 1 ? "" : "s",
           c->hub.journal.path);
    ch_config_free(c);
    return 0;
}

/* ---- cityhub journal ------------------------------------------------------- */

static int cmd_journal(const char *path, int dump, uint64_t from, int from_set)
{
    unsigned nerr = 0;
    int rc = 1;
    struct ch_config *c = ch_config_load(path, stderr, &nerr);
    if (!c)
        return EXIT_USAGE;
    struct hub_journal_opts jo = {.dir = c->hub.journal.path, .read_only = true};
    hub_journal_t *j = NULL;
    hub_journal_reader_t *rd = NULL;
    struct hub_buf payload, line;
    hub_buf_init(&payload, HUB_JOURNAL_MAX_RECORD);
    hub_buf_init(&line, 1 << 20);
    char err[512];
    if (hub_journal_open(&jo, &j, err, sizeof(err)) != HUB_OK) {
        fprintf(stderr, "cityhub: %s\n", err);
        goto out;
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    if (!dump) {
        printf("journal %s\n", c->hub.journal.path);
        printf("next_seq %" PRIu64 "\n", st.next_seq);
        printf("first_seq %" PRIu64 "\n", st.first_seq);
        printf("stored %" PRIu64 "\n", st.next_seq - st.first_seq);
        printf("segments %" PRIu64 "\n", st.segments);
        printf("bytes %" PRIu64 "\n", st.bytes);
        for (size_t i = 0; i < c->noutputs; i++) {
            const struct drv_output_common *oc = c->outputs[i].cfg;
            uint64_t seq = 0;
            if (hub_journal_cursor_peek(j, oc->name, &seq) == HUB_OK)
                printf("cursor %s %" PRIu64 " lag %" PRIu64 "\n", oc->name, seq,
                       st.next_seq > seq ? st.next_seq - seq : 0);
            else
                printf("cursor %s none\n", oc->name);
        }
        rc = 0;
        goto out;
    }
    if (hub_journal_reader_new(j, from_set ? from : st.first_seq, &rd) != HUB_OK)
        goto out;
    for (;;) {
        uint64_t seq = 0, skipped = 0;
        int r = hub_journal_reader_next(rd, &payload, &seq, &skipped);
        if (skipped)
            fprintf(stderr, "# %" PRIu64 " records skipped (dropped or corrupt)\n", skipped);
        if (r == HUB_EEMPTY)
            break;
        if (r == HUB_ECORRUPT)
            continue;
        if (r != HUB_OK) {
            fprintf(stderr, "cityhub: reading the journal: %s\n", hub_strerror(r));
            goto out;
        }
        hub_reading_t *reading = NULL;
        if (hub_reading_decode(payload.data, payload.len, &reading) != HUB_OK) {
            printf("# seq %" PRIu64 ": undecodable record of %zu bytes\n", seq, payload.len);
            continue;
        }
        hub_buf_reset(&line);
        drv_influx_encode(reading, true, &line);
        printf("%" PRIu64 " %s", seq, (const char *)line.data);
        hub_reading_free(reading);
    }
    rc = 0;
out:
    if (rd)
        hub_journal_reader_free(rd);
    if (j)
        hub_journal_close(j);
    hub_buf_free(&payload);
    hub_buf_free(&line);
    ch_config_free(c);
    return rc;
}

/* ---- CLI ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: cityhub COMMAND [OPTIONS]\n"
               "\n"
               "cityhub polls Modbus sensors, keeps every reading in a crash-safe journal\n"
               "and forwards them to InfluxDB.\n"
               "\n"
               "commands:\n"
               "  run -c FILE       run the hub with the configuration FILE\n"
               "  check -c FILE     check FILE; print FILE:LINE:COL: message per error\n"
               "  journal -c FILE   show the journal (records, segments, cursors);\n"
               "                    --dump prints stored readings as line protocol\n"
               "\n"
               "  cityhub COMMAND --help    help for one command\n"
               "  cityhub --version         version, board and library versions\n"
               "\n"
               "docs: /usr/share/doc/cityhub or docs/ in the source tree\n");
}

static void usage_run(FILE *f)
{
    fprintf(f, "usage: cityhub run -c FILE [--log-level LEVEL] [--debug-modbus]\n"
               "\n"
               "Run the hub. Stops on SIGTERM or SIGINT: polling stops, pending readings are\n"
               "flushed to the outputs for up to 2 s, cursors are persisted, exit status 0.\n"
               "Readings not yet delivered stay in the journal and are sent after restart.\n"
               "\n"
               "  -c, --config FILE    configuration (YAML, see docs/configuration.md)\n"
               "  -l, --log-level L    error, warn, info or debug (overrides hub.log_level)\n"
               "  -d, --debug-modbus   hex dump every Modbus frame to stderr\n"
               "\n"
               "exit status: 0 stopped by signal, 1 runtime failure, 2 bad configuration\n");
}

static void usage_check(FILE *f)
{
    fprintf(f, "usage: cityhub check -c FILE\n"
               "\n"
               "Check a configuration without starting anything. Every error is printed as\n"
               "FILE:LINE:COL: message.\n"
               "\n"
               "exit status: 0 valid, 2 invalid (or unreadable)\n");
}

static void usage_journal(FILE *f)
{
    fprintf(f, "usage: cityhub journal -c FILE [--dump [--from SEQ]]\n"
               "\n"
               "Inspect the journal named in FILE (read-only, safe while the hub runs).\n"
               "Without --dump: next_seq (readings ever accepted), stored records, segments,\n"
               "bytes, and each output's cursor and lag. With --dump: every stored reading as\n"
               "\"SEQ line-protocol\".\n");
}

static void print_version(void)
{
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("cityhub %s (board %s)\n", CITYHUB_VERSION, CITYHUB_BOARD);
    printf("libmodbus %s, libcurl %s\n", LIBMODBUS_VERSION_STRING, cv ? cv->version : "?");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        print_version();
        return 0;
    }
    void (*cmd_usage)(FILE *) = NULL;
    if (!strcmp(cmd, "run"))
        cmd_usage = usage_run;
    else if (!strcmp(cmd, "check"))
        cmd_usage = usage_check;
    else if (!strcmp(cmd, "journal"))
        cmd_usage = usage_journal;
    else {
        fprintf(stderr, "cityhub: unknown command \"%s\"\n\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"debug-modbus", no_argument, NULL, 'd'},
        {"dump", no_argument, NULL, 'D'},
        {"from", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *log_level = NULL;
    int debug_modbus = 0, dump = 0, from_set = 0;
    uint64_t from = 0;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "c:l:dh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            log_level = optarg;
            break;
        case 'd':
            debug_modbus = 1;
            break;
        case 'D':
            dump = 1;
            break;
        case 'f': {
            char *end;
            errno = 0;
            from = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "cityhub: bad --from \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            from_set = 1;
            break;
        }
        case 'h':
            cmd_usage(stdout);
            return 0;
        default:
            cmd_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cityhub %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return EXIT_USAGE;
    }
    if (!config) {
        fprintf(stderr, "cityhub %s: -c FILE is required\n\n", cmd);
        cmd_usage(stderr);
        return EXIT_USAGE;
    }

    if (!strcmp(cmd, "check"))
        return cmd_check(config);
    if (!strcmp(cmd, "journal"))
        return cmd_journal(config, dump, from, from_set);

    if (drv_influx_global_init() != 0) {
        fprintf(stderr, "cityhub: libcurl failed to initialise\n");
        return 1;
    }
    int rc = cmd_run(config, debug_modbus, log_level);
    curl_global_cleanup();
    return rc;
}
