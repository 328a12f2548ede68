/* firmware/status.c — the status HTTP server (firmware/status.h) on
 * libmicrohttpd: one internal thread polls every connection, so requests
 * are answered one at a time and nothing here needs a lock of its own.
 *
 *   GET /             the live page (firmware/status/index.html, built in)
 *   GET /health       JSON; 200 while ok or degraded, 503 when failing
 *   GET /metrics      Prometheus text format 0.0.4
 *   GET /api/values   the value rings (?points=0: the last values only)
 *
 * Only GET and HEAD are served (405 otherwise); an unknown path is 404;
 * libmicrohttpd answers what it cannot parse (400, 431/413 for headers over
 * the connection's memory) itself. With a password_file every path asks for
 * HTTP basic authentication (401 without it). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "firmware/reload.h"
#include "firmware/status_priv.h"
#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/clocktrust.h"
#include "hub/log.h"
#include "hub/secret.h"

#define WHO "status"
#define METRICS_MAX ((size_t)4 << 20) /* the exposition's bound */
#define PASSWORD_MAX 256
#define REASONS_MAX 20         /* reasons listed in /health; then "and N more" */
#define JOURNAL_FULL_PCT 90    /* degraded from this use of max_size on */
#define CONN_MEMORY (16 << 10) /* per connection: request line and headers */

#ifdef CH_STATUS_EMBEDDED_PAGE
extern const char ch_status_page[];
extern const size_t ch_status_page_len;
#else
static const char ch_status_page[] = "<!doctype html><title>cityhub</title>"
                                     "<p>The live page is not built into this program. "
                                     "See <a href=\"/health\">/health</a>.";
static const size_t ch_status_page_len = sizeof(ch_status_page) - 1;
#endif

struct ch_status {
    pthread_mutex_t mu; /* held by a request, or by a reload (ch_status_hold) */
    bool enabled;       /* hub.status.enabled, as started */
    struct ch_status_env env;
    struct MHD_Daemon *mhd;
    struct ch_values *values;
    char password[PASSWORD_MAX]; /* "" = no authentication */
    char listen[CH_STATUS_LISTEN_MAX];
    /* refreshed before each exposition */
    struct hub_metric *m_rss, *m_uptime, *m_jbytes, *m_jmax, *m_jsegs, *m_jfsyncs, *m_jdropped,
        *m_jdiskfull, *m_jappends, *m_oldest, *m_vdropped, *m_vbytes, *m_health;
    struct hub_metric *m_lag[HUB_JOURNAL_MAX_CURSORS];
};

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* "2024-05-01T10:00:00.123Z", or JSON null for 0. */
static json_t *time_json(int64_t ns)
{
    if (ns <= 0)
        return json_null();
    time_t s = (time_t)(ns / HUB_NS_PER_S);
    struct tm tm;
    char buf[40];
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)((ns % HUB_NS_PER_S) / HUB_NS_PER_MS));
    return json_string(buf);
}

static json_t *age_json(int64_t now, int64_t ns)
{
    return ns > 0 ? json_real((double)(now - ns) / HUB_NS_PER_S) : json_null();
}

double ch_status_reading_age_s(hub_journal_t *j, uint64_t seq)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf payload;
    hub_reading_t *r = NULL;
    double age = 0;
    uint64_t at;
    hub_buf_init(&payload, HUB_JOURNAL_MAX_RECORD);
    if (hub_journal_reader_new(j, seq, &rd) == HUB_OK &&
        hub_journal_reader_next(rd, &payload, &at, NULL) == HUB_OK &&
        hub_reading_decode(payload.data, payload.len, &r) == HUB_OK) {
        int64_t ns = hub_clock_age_ns(r);
        age = ns > 0 ? (double)ns / HUB_NS_PER_S : 0;
    }
    hub_reading_free(r);
    hub_journal_reader_free(rd);
    hub_buf_free(&payload);
    return age;
}

/* ---- /health ---------------------------------------------------------------- */

/* {"synced","reason","synced_at","readings_on_boot_time","restamped","estimated",
 *  "steps","last_step","last_step_at"} */
static json_t *clock_json(const struct hub_clock_status *cs)
{
    json_t *o = json_object();
    char step[48];
    json_object_set_new(o, "synced", json_boolean(cs->trusted));
    json_object_set_new(o, "reason", cs->reason ? json_string(cs->reason) : json_null());
    json_object_set_new(o, "synced_at", time_json(cs->trusted_at_ns));
    json_object_set_new(o, "readings_on_boot_time",
                        json_integer((json_int_t)cs->boottime_readings));
    json_object_set_new(o, "restamped", json_integer((json_int_t)cs->restamped));
    json_object_set_new(o, "estimated", json_integer((json_int_t)cs->estimated));
    json_object_set_new(o, "steps", json_integer((json_int_t)cs->steps));
    json_object_set_new(o, "last_step",
                        cs->steps
                            ? json_string(hub_clock_step_text(cs->last_step_ns, step, sizeof(step)))
                            : json_null());
    json_object_set_new(o, "last_step_at", time_json(cs->last_step_at_ns));
    return o;
}

enum level { LVL_OK = 0, LVL_DEGRADED = 1, LVL_FAILING = 2 };
static const char *const level_names[] = {"ok", "degraded", "failing"};

struct health {
    enum level level;
    json_t *reasons;
    size_t nreasons, more;
    json_t *devices, *subs;
    size_t sources, failing;
    int64_t now;
};

static void reason(struct health *h, enum level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reason(struct health *h, enum level lvl, const char *fmt, ...)
{
    if (lvl > h->level)
        h->level = lvl;
    if (h->nreasons == REASONS_MAX) {
        h->more++;
        return;
    }
    char buf[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(h->reasons, json_string(buf));
    h->nreasons++;
}

static void on_source(void *arg, const struct drv_source *s)
{
    struct health *h = arg;
    json_t *o = json_object();
    h->sources++;
    if (!s->ok)
        h->failing++;
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "ok", json_boolean(s->ok));
    json_object_set_new(o, "last_success", time_json(s->last_ok_ns));
    json_object_set_new(o, "last_success_age_s", age_json(h->now, s->last_ok_ns));
    json_object_set_new(o, "last_error",
                        s->last_error[0] ? json_string(s->last_error) : json_null());
    json_object_set_new(o, "last_error_at", time_json(s->last_error_ns));
    if (strcmp(s->kind, "subscription") == 0) {
        json_object_set_new(o, "input", json_string(s->group));
        json_object_set_new(o, "connected", json_boolean(s->connected == 1));
        json_object_set_new(o, "messages", json_integer((json_int_t)s->messages));
        json_object_set_new(o, "rejected", json_integer((json_int_t)s->rejected));
        json_array_append_new(h->subs, o);
        if (!s->ok)
            reason(h, LVL_DEGRADED, "subscription %s: not connected%s%s", s->name,
                   s->last_error[0] ? ": " : "", s->last_error);
        return;
    }
    json_object_set_new(o, "bus", json_string(s->group));
    json_object_set_new(o, "consecutive_failures", json_integer((json_int_t)s->failures));
    json_object_set_new(o, "poll_skew_ms",
                        s->skew_ns >= 0 ? json_real((double)s->skew_ns / HUB_NS_PER_MS)
                                        : json_null());
    json_object_set_new(o, "interval_s", json_real((double)s->interval_ns / HUB_NS_PER_S));
    json_array_append_new(h->devices, o);
    if (!s->ok)
        reason(h, LVL_DEGRADED, "device %s: %" PRIu64 " failed poll%s in a row: %s", s->name,
               s->failures, s->failures == 1 ? "" : "s", s->last_error);
}

/* The reloads so far; a rejected last one degrades: the file on disk is not
 * what runs, and a restart would not start. */
static json_t *reload_json(const struct ch_reload *r, struct health *h)
{
    struct ch_reload_info ri;
    ch_reload_info(r, &ri);
    json_t *o = json_object();
    json_object_set_new(o, "applied", json_integer((json_int_t)ri.applied));
    json_object_set_new(o, "rejected", json_integer((json_int_t)ri.rejected));
    json_object_set_new(o, "last",
                        json_string(ri.last == CH_RELOAD_APPLIED    ? "applied"
                                    : ri.last == CH_RELOAD_REJECTED ? "rejected"
                                                                    : "none"));
    json_object_set_new(o, "last_at", time_json(ri.last_ns));
    json_object_set_new(o, "last_error",
                        ri.last_error[0] ? json_string(ri.last_error) : json_null());
    if (ri.last == CH_RELOAD_REJECTED)
        reason(h, LVL_DEGRADED,
               "last reload rejected, the running configuration is older than %s: %s", ri.path,
               ri.last_error);
    return o;
}

static json_t *health_json(struct ch_status *st, enum level *out_level)
{
    const struct ch_status_env *e = &st->env;
    struct health h = {.reasons = json_array(),
                       .devices = json_array(),
                       .subs = json_array(),
                       .now = hub_time_ns()};
    json_t *root = json_object(), *outs = json_array(), *jj = json_object();

    struct hub_journal_stats js;
    hub_journal_stats(e->journal, &js);
    uint64_t oldest_seq = js.next_seq;
    for (size_t i = 0; i < e->nouts; i++) {
        struct hub_output_stats os;
        hub_output_stats(e->outs[i].loop, &os);
        uint64_t lag = js.next_seq > os.cursor ? js.next_seq - os.cursor : 0;
        if (os.cursor < oldest_seq)
            oldest_seq = os.cursor;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(e->outs[i].name));
        json_object_set_new(o, "type", json_string(e->outs[i].type));
        json_object_set_new(o, "state", json_string(hub_out_state_name(os.state)));
        json_object_set_new(o, "retrying_since", time_json(os.retrying_since_ns));
        json_object_set_new(o, "failing_for_s", age_json(h.now, os.retrying_since_ns));
        json_object_set_new(o, "alarm", os.alarm[0] ? json_string(os.alarm) : json_null());
        json_object_set_new(o, "lag", json_integer((json_int_t)lag));
        json_object_set_new(o, "delivered", json_integer((json_int_t)os.delivered));
        json_object_set_new(o, "retries", json_integer((json_int_t)os.retries));
        json_object_set_new(o, "rejected", json_integer((json_int_t)os.rejected));
        json_object_set_new(o, "rate", json_real(os.rate));
        json_object_set_new(o, "draining", json_boolean(os.draining));
        json_object_set_new(o, "eta_s", os.eta_s > 0 ? json_real(os.eta_s) : json_null());
        json_array_append_new(outs, o);
        if (os.state == HUB_OUT_STATE_ALARM)
            reason(&h, LVL_FAILING, "output %s: alarm: %s", e->outs[i].name, os.alarm);
        else if (os.state == HUB_OUT_STATE_RETRYING)
            reason(&h, LVL_DEGRADED, "output %s: retrying for %.0f s", e->outs[i].name,
                   (double)(h.now - os.retrying_since_ns) / HUB_NS_PER_S);
    }
    double oldest = oldest_seq < js.next_seq ? ch_status_reading_age_s(e->journal, oldest_seq) : 0;
    for (size_t i = 0; i < e->nins; i++)
        if (e->ins[i].ops->sources)
            e->ins[i].ops->sources(e->ins[i].ctx, on_source, &h);
    if (h.sources > 0 && h.failing == h.sources)
        reason(&h, LVL_FAILING, "no input source is working (%zu failing)", h.failing);
    uint64_t pct = e->journal_max_size ? js.bytes * 100 / e->journal_max_size : 0;
    if (pct >= JOURNAL_FULL_PCT)
        reason(&h, LVL_DEGRADED, "journal %" PRIu64 "%% full (%" PRIu64 " readings dropped)", pct,
               js.dropped);
    struct hub_clock_status cs;
    hub_clock_status(&cs);
    if (!cs.trusted)
        reason(&h, LVL_DEGRADED,
               "clock not trusted: %s (%" PRIu64 " readings on boot time, held back until it is)",
               cs.reason ? cs.reason : "not checked yet", cs.boottime_readings);
    json_t *jr = e->reload ? reload_json(e->reload, &h) : json_null();
    if (h.more)
        json_array_append_new(h.reasons, json_sprintf("and %zu more", h.more));

    json_object_set_new(jj, "bytes", json_integer((json_int_t)js.bytes));
    json_object_set_new(jj, "max_bytes", json_integer((json_int_t)e->journal_max_size));
    json_object_set_new(jj, "segments", json_integer((json_int_t)js.segments));
    json_object_set_new(jj, "first_seq", json_integer((json_int_t)js.first_seq));
    json_object_set_new(jj, "next_seq", json_integer((json_int_t)js.next_seq));
    json_object_set_new(jj, "dropped", json_integer((json_int_t)js.dropped));
    json_object_set_new(jj, "fsyncs", json_integer((json_int_t)js.fsyncs));
    json_object_set_new(jj, "disk_full", json_integer((json_int_t)js.disk_full));
    json_object_set_new(jj, "oldest_unsent_s", json_real(oldest));

    json_object_set_new(root, "status", json_string(level_names[h.level]));
    json_object_set_new(root, "reasons", h.reasons);
    json_object_set_new(root, "gateway", json_string(e->gateway));
    json_object_set_new(root, "version", json_string(e->version));
    json_object_set_new(root, "time", time_json(h.now));
    json_object_set_new(root, "uptime_s",
                        json_integer((json_int_t)((hub_mono_ns() - e->started_ns) / HUB_NS_PER_S)));
    json_object_set_new(root, "readings_accepted",
                        json_integer((json_int_t)hub_accept_accepted(e->accept)));
    json_object_set_new(root, "readings_refused",
                        json_integer((json_int_t)hub_accept_refused(e->accept)));
    json_object_set_new(root, "clock", clock_json(&cs));
    json_object_set_new(root, "journal", jj);
    json_object_set_new(root, "outputs", outs);
    json_object_set_new(root, "devices", h.devices);
    json_object_set_new(root, "subscriptions", h.subs);
    json_object_set_new(root, "reload", jr);
    *out_level = h.level;
    hub_metric_set(st->m_health, (uint64_t)h.level);
    hub_metric_set(st->m_oldest, (uint64_t)oldest);
    return root;
}

/* ---- /metrics ---------------------------------------------------------------- */

static void refresh_metrics(struct ch_status *st)
{
    const struct ch_status_env *e = &st->env;
    struct hub_journal_stats js;
    hub_journal_stats(e->journal, &js);
    hub_metric_set(st->m_rss, rss_bytes());
    hub_metric_set(st->m_uptime, (uint64_t)((hub_mono_ns() - e->started_ns) / HUB_NS_PER_S));
    hub_metric_set(st->m_jbytes, js.bytes);
    hub_metric_set(st->m_jmax, e->journal_max_size);
    hub_metric_set(st->m_jsegs, js.segments);
    hub_metric_set(st->m_jfsyncs, js.fsyncs);
    hub_metric_set(st->m_jdropped, js.dropped);
    hub_metric_set(st->m_jdiskfull, js.disk_full);
    hub_metric_set(st->m_jappends, js.append_bytes);
    hub_metric_set(st->m_vdropped, ch_values_dropped(st->values));
    hub_metric_set(st->m_vbytes, ch_values_bytes(st->values));
    uint64_t oldest_seq = js.next_seq;
    for (size_t i = 0; i < e->nouts && i < HUB_JOURNAL_MAX_CURSORS; i++) {
        struct hub_output_stats os;
        hub_output_stats(e->outs[i].loop, &os);
        hub_metric_set(st->m_lag[i], js.next_seq > os.cursor ? js.next_seq - os.cursor : 0);
        if (os.cursor < oldest_seq)
            oldest_seq = os.cursor;
    }
    hub_metric_set(st->m_oldest, oldest_seq < js.next_seq
                                     ? (uint64_t)ch_status_reading_age_s(e->journal, oldest_seq)
                                     : 0);
}

static void register_metrics(struct ch_status *st)
{
    hub_metrics_t *m = st->env.metrics;
#define G(name, help) hub_metrics_add(m, HUB_METRIC_GAUGE, name, NULL, NULL, help)
#define C(name, help) hub_metrics_add(m, HUB_METRIC_COUNTER, name, NULL, NULL, help)
    st->m_rss = G("process_resident_memory_bytes", "resident set size of the cityhub process");
    st->m_uptime = G("cityhub_uptime_seconds", "seconds since cityhub started");
    st->m_jbytes = G("cityhub_journal_bytes", "bytes of the journal's segment files");
    st->m_jmax = G("cityhub_journal_max_bytes", "the journal's max_size");
    st->m_jsegs = G("cityhub_journal_segments", "segment files of the journal");
    st->m_jfsyncs = C("cityhub_journal_fsyncs_total", "fsyncs the journal made since start");
    st->m_jdropped =
        C("cityhub_journal_dropped_total", "readings dropped undelivered because the journal was "
                                           "full (on_full) since start");
    st->m_jdiskfull = C("cityhub_journal_disk_full_total",
                        "appends refused because the file system was full, since start");
    st->m_jappends = C("cityhub_journal_written_bytes_total", "bytes appended to the journal");
    st->m_oldest = G("cityhub_journal_oldest_unsent_seconds",
                     "age of the oldest reading an output has yet to deliver (0: none)");
    st->m_vdropped = C("cityhub_status_values_dropped_total",
                       "series or fields the live page leaves out (bounds reached)");
    st->m_vbytes = G("cityhub_status_values_bytes", "memory of the live page's value rings");
    st->m_health = G("cityhub_health", "overall health as /health last said: 0 ok, 1 degraded, "
                                       "2 failing");
#undef G
#undef C
    for (size_t i = 0; i < st->env.nouts && i < HUB_JOURNAL_MAX_CURSORS; i++)
        st->m_lag[i] = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_output_lag", "output",
                                       st->env.outs[i].name,
                                       "readings in the journal the output has yet to deliver");
}

/* ---- requests ------------------------------------------------------------------- */

static void count_answer(struct ch_status *st, unsigned code)
{
    char c[8];
    snprintf(c, sizeof(c), "%u", code);
    hub_metric_inc(hub_metrics_add(st->env.metrics, HUB_METRIC_COUNTER,
                                   "cityhub_status_responses_total", "code", c,
                                   "answers of the status server by HTTP status"),
                   1);
}

static enum MHD_Result reply(struct ch_status *st, struct MHD_Connection *conn, unsigned code,
                             const char *type, void *body, size_t len,
                             enum MHD_ResponseMemoryMode mm)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mm);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                            "script-src 'self' 'unsafe-inline'; img-src 'self' data:");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    count_answer(st, code);
    return ret;
}

static enum MHD_Result send_text(struct ch_status *st, struct MHD_Connection *conn, unsigned code,
                                 const char *text)
{
    return reply(st, conn, code, "text/plain; charset=utf-8", (void *)text, strlen(text),
                 MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result send_json(struct ch_status *st, struct MHD_Connection *conn, unsigned code,
                                 json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(j);
    if (!s)
        return send_text(st, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return reply(st, conn, code, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
}

/* Compare without an early exit: the time taken says nothing of where
 * the first difference is. */
static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static int authorized(struct ch_status *st, struct MHD_Connection *conn)
{
    if (!st->password[0])
        return 1;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &pass);
    int ok =
        user && pass && same_secret(user, st->env.cfg->user) && same_secret(pass, st->password);
    if (pass) {
        hub_secret_wipe(pass, strlen(pass));
        MHD_free(pass);
    }
    if (user)
        MHD_free(user);
    return ok;
}

static enum MHD_Result answer_locked(struct ch_status *st, struct MHD_Connection *conn,
                                     const char *url, const char *method);

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct ch_status *st = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    pthread_mutex_lock(&st->mu);
    enum MHD_Result ret = answer_locked(st, conn, url, method);
    pthread_mutex_unlock(&st->mu);
    return ret;
}

static enum MHD_Result answer_locked(struct ch_status *st, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(st, conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
    if (!authorized(st, conn)) {
        static const char denied[] = "authentication required\n";
        struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(denied) - 1, (void *)denied,
                                                                 MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        enum MHD_Result ret = MHD_queue_basic_auth_fail_response(conn, "cityhub", r);
        MHD_destroy_response(r);
        count_answer(st, MHD_HTTP_UNAUTHORIZED);
        return ret;
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return reply(st, conn, MHD_HTTP_OK, "text/html; charset=utf-8", (void *)ch_status_page,
                     ch_status_page_len, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/health") == 0) {
        enum level lvl = LVL_OK;
        json_t *j = health_json(st, &lvl);
        return send_json(st, conn, lvl == LVL_FAILING ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                         j);
    }
    if (strcmp(url, "/metrics") == 0) {
        struct hub_buf b;
        hub_buf_init(&b, METRICS_MAX);
        refresh_metrics(st);
        if (hub_metrics_write_prometheus(st->env.metrics, &b) != HUB_OK) {
            hub_buf_free(&b);
            return send_text(st, conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "the metrics do not fit in their buffer\n");
        }
        /* the buffer's bytes go to the response, which frees them */
        return reply(st, conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                     b.data ? (void *)b.data : (void *)strdup(""), b.len, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/api/values") == 0) {
        const char *p = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "points");
        int with_points = !(p && strcmp(p, "0") == 0);
        return send_json(st, conn, MHD_HTTP_OK,
                         ch_values_json(st->values, with_points, hub_time_ns()));
    }
    return send_text(st, conn, MHD_HTTP_NOT_FOUND,
                     "not found: the status server has /, /health, /metrics and /api/values\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[256];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    hub_debug(WHO, "%s", buf);
}

/* ---- start and stop ---------------------------------------------------------- */

static int listen_on(struct ch_status *st, char *err, size_t errlen)
{
    const struct ch_status_cfg *cfg = st->env.cfg;
    char host[CH_STATUS_LISTEN_MAX], portstr[8];
    int port;
    char why[256];
    if (ch_status_parse_listen(cfg->listen, host, sizeof(host), &port, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "listen %s", why);
        return -1;
    }
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, portstr, &hints, &ai);
    if (g != 0) {
        snprintf(err, errlen, "listen %s: %s", cfg->listen, gai_strerror(g));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    st->mhd = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, answer, st, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)((cfg->connection_timeout_ns + HUB_NS_PER_S - 1) / HUB_NS_PER_S),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY, MHD_OPTION_THREAD_STACK_SIZE,
        st->env.stack_size, MHD_OPTION_END);
    int e = errno;
    freeaddrinfo(ai);
    if (!st->mhd) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen,
                 e ? strerror(e) : "libmicrohttpd refused");
        return -1;
    }
    return 0;
}

int ch_status_start(const struct ch_status_env *env, ch_status_t **out, char *err, size_t errlen)
{
    struct ch_status *st = calloc(1, sizeof(*st));
    *out = NULL;
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->env = *env;
    st->values = ch_values_new(env->drv_env);
    if (!st->values) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        ch_values_free(st->values);
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = st;
    st->enabled = env->cfg->enabled;
    if (!st->enabled)
        return 0;
    register_metrics(st);
    if (env->cfg->password_file[0] &&
        hub_secret_read("hub.status.password_file", env->cfg->password_file, st->password,
                        sizeof(st->password), err, errlen) != 0)
        return -1;
    if (listen_on(st, err, errlen) != 0)
        return -1;
    hub_info(WHO, "serving /health, /metrics and the live page on http://%s/%s", env->cfg->listen,
             st->password[0] ? " (basic authentication)" : "");
    return 0;
}

void ch_status_stop(ch_status_t *st)
{
    if (!st)
        return;
    if (st->mhd)
        MHD_stop_daemon(st->mhd);
    hub_secret_wipe(st->password, sizeof(st->password));
    ch_values_free(st->values);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int ch_status_serving(const ch_status_t *st)
{
    return st && (st->mhd || !st->enabled);
}

void ch_status_hold(ch_status_t *st)
{
    if (st)
        pthread_mutex_lock(&st->mu);
}

void ch_status_rebind(ch_status_t *st, const struct ch_status_env *env)
{
    char err[256];
    if (!st)
        return;
    /* the lag of an output gone stays at 0, not at its last value */
    for (size_t i = 0; i < st->env.nouts && i < HUB_JOURNAL_MAX_CURSORS; i++)
        hub_metric_set(st->m_lag[i], 0);
    size_t stack_size = st->env.stack_size;
    st->env = *env; /* env->cfg equals the one it started with */
    st->env.stack_size = stack_size;
    ch_values_rebind(st->values, env->drv_env);
    if (st->enabled) {
        register_metrics(st);
        char pw[PASSWORD_MAX] = "";
        if (st->env.cfg->password_file[0] &&
            hub_secret_read("hub.status.password_file", st->env.cfg->password_file, pw, sizeof(pw),
                            err, sizeof(err)) == 0)
            memcpy(st->password, pw, sizeof(pw));
        else if (st->env.cfg->password_file[0])
            hub_warn(WHO, "%s; the password read before stays", err);
        hub_secret_wipe(pw, sizeof(pw));
    }
    pthread_mutex_unlock(&st->mu);
}

void ch_status_observe(ch_status_t *st, const hub_reading_t *r)
{
    if (st && st->enabled)
        ch_values_observe(st->values, r, hub_time_ns());
}
