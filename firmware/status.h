/* firmware/status.h — the status HTTP server (hub.status): /health (JSON),
 * /metrics (Prometheus text format), / (the live page for technicians) and
 * /api/values (what the page shows), served by libmicrohttpd on one thread.
 *
 * The daemon hands the server what it needs to read (journal, metrics,
 * outputs' loops, inputs' sources) at start, and every reading that comes
 * from an input (ch_status_observe), of which the server keeps a bounded
 * ring of recent values per field for the page. Nothing it serves ever
 * holds a secret: the password is read from password_file at start, kept
 * for the comparison only, and wiped at stop. */
#ifndef CH_STATUS_H
#define CH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "hub/accept.h"
#include "hub/journal.h"
#include "hub/metrics.h"
#include "hub/output.h"
#include "hub/reading.h"

/* The value ring: one point per CH_STATUS_STEP_S seconds (the last value
 * read in that slot), CH_STATUS_POINTS of them per field (5 minutes), as
 * floats; at most CH_STATUS_MAX_SERIES rows (a device, or a measurement
 * without a device tag) of at most CH_STATUS_MAX_FIELDS numeric fields each,
 * CH_STATUS_MAX_CELLS fields in all: some 210 bytes per field, 440 per
 * row; worst case about 1.1 MiB, 100 devices of 20 fields 460 KiB. Series or fields past a bound
 * are not shown (counted in cityhub_status_values_dropped_total). */
#define CH_STATUS_STEP_S 10
#define CH_STATUS_POINTS 30
#define CH_STATUS_MAX_SERIES 512
#define CH_STATUS_MAX_FIELDS 32
#define CH_STATUS_MAX_CELLS 4096

#define CH_STATUS_LISTEN_MAX 160
#define CH_STATUS_USER_MAX 64

/* hub.status as configured (firmware/config_keys.c). */
struct ch_status_cfg {
    bool enabled;
    char listen[CH_STATUS_LISTEN_MAX]; /* HOST:PORT, [IPV6]:PORT */
    char user[CH_STATUS_USER_MAX];
    char password_file[256];    /* "" = no authentication */
    bool allow_unauthenticated; /* a non-loopback listen without password_file */
    int64_t max_connections;    /* at once */
    int64_t connection_timeout_ns;
};

/* Split a listen address: "127.0.0.1:8780", "[::1]:8780", "localhost:8780".
 * host gets the host without brackets, *port 1..65535. Returns 0, or -1 with
 * a message about text in err. */
int ch_status_parse_listen(const char *text, char *host, size_t hostlen, int *port, char *err,
                           size_t errlen);
/* 1 if host (as parse_listen gives it) is a loopback address or
 * "localhost", 0 otherwise (other names count as not loopback). */
int ch_status_host_is_loopback(const char *host);

/* One input driver instance and one output, as the daemon holds them. */
struct ch_status_input {
    const struct drv_ops *ops;
    void *ctx;
};
struct ch_status_output {
    const char *name;
    const char *type;
    hub_output_t *loop;
    const struct drv_ops *ops;
    void *ctx;
};

struct ch_status_env {
    const struct ch_status_cfg *cfg;
    const char *gateway;
    const char *version;
    hub_journal_t *journal;
    uint64_t journal_max_size;
    hub_metrics_t *metrics; /* where the server adds its own counters and gauges */
    hub_accept_t *accept;
    const struct ch_status_input *ins;
    size_t nins;
    const struct ch_status_output *outs;
    size_t nouts;
    const struct drv_env *drv_env; /* for unit_of: the units the page shows */
    int64_t started_ns;            /* monotonic */
    size_t stack_size;             /* of the server's thread */
    /* outcomes of SIGHUP reloads, shown in /health (NULL: none) */
    const struct ch_reload *reload;
};

typedef struct ch_status ch_status_t;
struct ch_reload;

/* Build the server and its value store (readings may be observed from then
 * on) and start listening when cfg->enabled. The arrays in env are the
 * caller's and must outlive the server. Returns 0 with *out, or -1 with a
 * message in err: bad address, unreadable password file, or the address
 * cannot be bound (the caller decides whether to run without it: *out is
 * then still a server that observes and serves nothing). */
int ch_status_start(const struct ch_status_env *env, ch_status_t **out, char *err, size_t errlen);
/* A reload keeps a server whose hub.status is unchanged: ch_status_hold
 * makes requests wait (the one in progress finishes first) while the
 * inputs and outputs it reads are replaced; ch_status_rebind points it at
 * env's (the listening address and options stay those it started with,
 * the password file is read again, the value rings are kept and their
 * units looked up again) and lets requests go on. NULL st does nothing. */
void ch_status_hold(ch_status_t *st);
/* 1 if st listens as configured (or is configured not to), 0 if it could
 * not (a reload then starts it again) or st is NULL. */
int ch_status_serving(const ch_status_t *st);
void ch_status_rebind(ch_status_t *st, const struct ch_status_env *env);
/* Stop listening (in-flight answers finish), free everything. NULL is fine. */
void ch_status_stop(ch_status_t *st);
/* A reading from an input, before it is accepted: its numeric fields go
 * into the value rings. Safe from any thread; NULL st does nothing. */
void ch_status_observe(ch_status_t *st, const hub_reading_t *r);

/* Age in seconds of the reading at seq (the oldest one an output has yet to
 * deliver), from its acquisition time; 0 when unknown. */
double ch_status_reading_age_s(hub_journal_t *j, uint64_t seq);

#endif
