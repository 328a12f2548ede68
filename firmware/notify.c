/* firmware/notify.c — sd_notify: readiness, status, stop, reload and a
 * watchdog that pings only while the daemon's loops make progress
 * (firmware/notify.h). */
#include "firmware/notify.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "hub/clock.h"
#include "hub/log.h"
#include "hub/output.h"

static struct {
    pthread_once_t once;
    bool on;         /* NOTIFY_SOCKET is set */
    int64_t wdog_ns; /* WATCHDOG_USEC, 0 = none */
    hub_beats_t *beats;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    pthread_mutex_t envmu; /* env: NULL while a reload swaps what it points to */
    const struct ch_notify_env *env;
    bool stalled; /* the last check found a stalled loop */
    char stalled_who[HUB_BEAT_WHO_MAX];
} nt = {.once = PTHREAD_ONCE_INIT, .envmu = PTHREAD_MUTEX_INITIALIZER};

static void notify_init(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    nt.on = s && *s;
    if (!nt.on)
        return;
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        nt.wdog_ns = (int64_t)usec * 1000;
}

static bool notify_on(void)
{
    pthread_once(&nt.once, notify_init);
    return nt.on;
}

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        hub_debug("systemd", "sd_notify \"%.40s\": %s", state, strerror(-rc));
}

hub_beats_t *ch_notify_beats(void)
{
    if (!notify_on() || !nt.wdog_ns)
        return NULL;
    if (!nt.beats)
        nt.beats = hub_beats_new();
    return nt.beats;
}

int64_t ch_notify_watchdog_ns(void)
{
    return notify_on() ? nt.wdog_ns : 0;
}

/* ---- the summary --------------------------------------------------------- */

struct kinds {
    uint64_t dev_ok, dev_bad, sub_ok, sub_bad;
};

static void count_source(void *arg, const struct drv_source *s)
{
    struct kinds *k = arg;
    bool dev = strcmp(s->kind, "subscription") != 0;
    if (s->ok)
        dev ? k->dev_ok++ : k->sub_ok++;
    else
        dev ? k->dev_bad++ : k->sub_bad++;
}

static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
{
    if (at >= len)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + at, len - at, fmt, ap);
    va_end(ap);
    return n < 0 ? at : at + (size_t)n;
}

static size_t put_kind(char *buf, size_t len, size_t at, const char *what, uint64_t ok,
                       uint64_t bad)
{
    if (!ok && !bad)
        return at;
    at = put(buf, len, at, "%s%" PRIu64 " %s%s ok", at ? ", " : "", ok, what,
             ok + bad == 1 ? "" : "s");
    if (bad)
        at = put(buf, len, at, ", %" PRIu64 " failing", bad);
    return at;
}

void ch_notify_summary(const struct ch_notify_env *env, char *buf, size_t len)
{
    struct kinds k = {0};
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < env->nins; i++)
        if (env->ins[i].ops->sources)
            env->ins[i].ops->sources(env->ins[i].ctx, count_source, &k);
    at = put_kind(buf, len, at, "device", k.dev_ok, k.dev_bad);
    at = put_kind(buf, len, at, "subscription", k.sub_ok, k.sub_bad);
    if (!at)
        at = put(buf, len, at, "no inputs");
    struct hub_journal_stats js;
    hub_journal_stats(env->journal, &js);
    uint64_t lag = 0;
    size_t bad = 0;
    for (size_t i = 0; i < env->nouts; i++) {
        struct hub_output_stats os;
        hub_output_stats(env->outs[i].loop, &os);
        if (js.next_seq > os.cursor && js.next_seq - os.cursor > lag)
            lag = js.next_seq - os.cursor;
        bad += os.state != HUB_OUT_STATE_OK;
    }
    at = put(buf, len, at, "; journal %.1f MiB, lag %" PRIu64 "; ",
             (double)js.bytes / (1024.0 * 1024.0), lag);
    if (!env->nouts)
        at = put(buf, len, at, "no outputs");
    else if (!bad)
        at = put(buf, len, at, "outputs ok");
    else
        for (size_t i = 0, n = 0; i < env->nouts; i++) {
            struct hub_output_stats os;
            hub_output_stats(env->outs[i].loop, &os);
            if (os.state != HUB_OUT_STATE_OK)
                at = put(buf, len, at, "%s%s %s", n++ ? ", " : "output ", env->outs[i].name,
                         hub_out_state_name(os.state));
        }
}

/* ---- the watchdog and status thread -------------------------------------- */

static void on_stall(void *arg, const struct hub_beat_stall *s)
{
    (void)arg;
    if (!nt.stalled_who[0])
        snprintf(nt.stalled_who, sizeof(nt.stalled_who), "%s", s->doing ? s->doing : s->who);
    if (!s->first)
        return;
    char what[2 * HUB_BEAT_WHO_MAX];
    if (s->doing)
        snprintf(what, sizeof(what), " (%s%s%s)", s->who, s->detail ? ", " : "",
                 s->detail ? s->detail : "");
    else
        what[0] = 0;
    hub_err(s->doing ? s->doing : s->who,
            "no progress for %.1f s%s: watchdog pings stop, so that the service manager "
            "restarts the hub",
            (double)s->quiet_ns / HUB_NS_PER_S, what);
}

static void send_status(void)
{
    char line[512];
    size_t n = (size_t)snprintf(line, sizeof(line), "STATUS=");
    pthread_mutex_lock(&nt.envmu);
    if (nt.env)
        ch_notify_summary(nt.env, line + n, sizeof(line) - n);
    else
        snprintf(line + n, sizeof(line) - n, "reloading");
    pthread_mutex_unlock(&nt.envmu);
    if (nt.stalled) {
        n = strlen(line);
        snprintf(line + n, sizeof(line) - n, "; stalled: %s", nt.stalled_who);
    }
    send_state(line);
}

static void watchdog_check(int64_t now)
{
    int64_t limit = nt.wdog_ns > CH_NOTIFY_MIN_STALL_NS ? nt.wdog_ns : CH_NOTIFY_MIN_STALL_NS;
    bool was = nt.stalled;
    nt.stalled_who[0] = 0;
    nt.stalled = hub_beats_check(nt.beats, now, limit, on_stall, NULL) > 0;
    if (!nt.stalled) {
        if (was)
            hub_info("systemd", "every loop makes progress again: watchdog pings resume");
        send_state("WATCHDOG=1");
    } else if (!was) {
        send_status();
    }
}

static void *notify_main(void *arg)
{
    (void)arg;
    int64_t now = hub_mono_ns();
    int64_t every = nt.wdog_ns ? nt.wdog_ns / 2 : 0;
    int64_t next_wd = every ? now : INT64_MAX;
    int64_t next_status = now + CH_NOTIFY_STATUS_NS;
    pthread_mutex_lock(&nt.mu);
    while (!nt.stop) {
        now = hub_mono_ns();
        if (now < next_wd && now < next_status) {
            hub_cond_wait_until(&nt.cv, &nt.mu, next_wd < next_status ? next_wd : next_status);
            continue;
        }
        pthread_mutex_unlock(&nt.mu);
        if (now >= next_wd) {
            watchdog_check(now);
            next_wd += every;
            if (next_wd <= now) /* this thread was late: keep the pace from now */
                next_wd = now + every;
        }
        if (now >= next_status) {
            send_status();
            next_status = now + CH_NOTIFY_STATUS_NS;
        }
        pthread_mutex_lock(&nt.mu);
    }
    pthread_mutex_unlock(&nt.mu);
    return NULL;
}

void ch_notify_ready(const struct ch_notify_env *env)
{
    if (!notify_on())
        return;
    pthread_mutex_lock(&nt.envmu);
    nt.env = env;
    pthread_mutex_unlock(&nt.envmu);
    char line[520];
    int n = snprintf(line, sizeof(line), "READY=1\nSTATUS=");
    ch_notify_summary(env, line + n, sizeof(line) - (size_t)n);
    send_state(line);
    if (hub_cond_init(&nt.mu, &nt.cv) != 0) {
        hub_err("systemd", "out of memory: no status updates or watchdog pings");
        return;
    }
    nt.stop = false;
    if (pthread_create(&nt.thread, NULL, notify_main, NULL) != 0) {
        hub_err("systemd", "cannot start the watchdog thread: no status updates or pings");
        hub_cond_destroy(&nt.mu, &nt.cv);
        return;
    }
    nt.running = true;
    if (nt.wdog_ns)
        hub_info("systemd", "watchdog: a ping every %.1f s while every loop makes progress",
                 (double)nt.wdog_ns / 2 / HUB_NS_PER_S);
}

void ch_notify_stopping(void)
{
    if (!notify_on())
        return;
    send_state("STOPPING=1\nSTATUS=stopping: polling stops, pending readings are flushed");
    if (!nt.running)
        return;
    pthread_mutex_lock(&nt.mu);
    nt.stop = true;
    pthread_cond_signal(&nt.cv);
    pthread_mutex_unlock(&nt.mu);
    pthread_join(nt.thread, NULL);
    hub_cond_destroy(&nt.mu, &nt.cv);
    nt.running = false;
}

void ch_notify_reloading(void)
{
    if (!notify_on())
        return;
    pthread_mutex_lock(&nt.envmu); /* a summary being made ends first */
    nt.env = NULL;
    pthread_mutex_unlock(&nt.envmu);
    char line[96];
    snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%" PRId64 "\nSTATUS=reloading",
             hub_mono_ns() / 1000);
    send_state(line);
}

void ch_notify_reloaded(const struct ch_notify_env *env)
{
    if (!notify_on())
        return;
    char line[520];
    int n = snprintf(line, sizeof(line), "READY=1");
    pthread_mutex_lock(&nt.envmu);
    nt.env = env;
    if (env) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\nSTATUS=");
        ch_notify_summary(env, line + n, sizeof(line) - (size_t)n);
    }
    pthread_mutex_unlock(&nt.envmu);
    send_state(line);
}

void ch_notify_status(const char *text)
{
    if (!notify_on())
        return;
    char line[512];
    snprintf(line, sizeof(line), "STATUS=%s", text);
    send_state(line);
}

void ch_notify_free(void)
{
    hub_beat_attach(NULL); /* the main loop's */
    hub_beats_free(nt.beats);
    nt.beats = NULL;
}
