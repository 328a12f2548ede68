/* hub/output.h — the delivery loop of one output: batches from the journal,
 * handed to the output driver, cursor advanced only on success.
 *
 * hub_output_run() reads records from the output's cursor, decodes them into
 * readings and calls flush() with up to batch_size of them, when the batch is
 * full or flush_interval has passed since its first reading. The driver
 * answers:
 *   HUB_OUT_OK        delivered: the cursor moves past the batch and is persisted;
 *   HUB_OUT_RETRY     not delivered (429, 5xx, timeout, connection): the same
 *                     readings are tried again after a capped exponential
 *                     backoff with jitter (or the server's Retry-After);
 *   HUB_OUT_REJECT    the server refused the data itself (400, 422): the batch
 *                     is bisected to find the readings it refuses; the others
 *                     are delivered, each refused one goes to the dead-letter
 *                     file with the server's reason and is counted;
 *   HUB_OUT_TOO_LARGE the request was too large (413): the batch is split in
 *                     halves and each sent on its own; one reading alone too
 *                     large goes to the dead-letter file;
 *   HUB_OUT_ALARM     refused for who we are or where we write (401, 403, 404):
 *                     the output stops sending and raises an alarm (log, stats);
 *                     readings stay in the journal; it tries again every
 *                     alarm_retry (or after a restart or reload).
 *
 * Pipelining (struct hub_out_async, for outputs whose requests cost
 * encoding, e.g. line protocol + gzip): the loop encodes the next batch
 * (prepare) while the current one is on its way (start ... finish); a
 * thread of the output's own persists the cursor meanwhile, at most every
 * 100 ms while batches flow and at once when the output goes idle. The
 * cursor only ever moves to the end of a batch the server acknowledged,
 * all earlier ones acknowledged too; after a crash the batch that was on
 * its way and those acknowledged since the last cursor write are sent
 * again, which replay tolerates. At most two batches are held: the one on
 * its way and the next.
 *
 * Backlog: when the journal holds two batches or more not yet delivered
 * (after an outage or a restart), full batches go back to back and the
 * last, partial one goes at once, without waiting flush_interval; in
 * steady state a batch that does not fill waits flush_interval.
 *
 * No answer but OK counts a reading as delivered. Each kind of failure
 * (hub_out_answer.kind) is logged the first time it happens, whatever came
 * before it. A record that fails to decode is skipped and counted (corrupt),
 * never sent. */
#ifndef HUB_OUTPUT_H
#define HUB_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/journal.h"
#include "hub/reading.h"

enum hub_out_result {
    HUB_OUT_OK = 0,
    HUB_OUT_RETRY = 1,
    HUB_OUT_REJECT = 2,
    HUB_OUT_TOO_LARGE = 3,
    HUB_OUT_ALARM = 4,
};

struct hub_out_answer {
    /* HUB_OUT_OK only: how many readings, from the first, were delivered
     * when the driver sent a prefix of the batch (its request size limit,
     * max_batch_bytes, was reached); 0 means all n. The rest is offered
     * again at once: not a failure. */
    size_t done;
    int64_t retry_after_ns; /* server's hint, 0 if none */
    /* The server's status code when it answered (HTTP: 100..599), 0 when
     * there was no answer (timeout, connection) or the protocol has none:
     * counted by class in cityhub_output_responses_total. */
    int status;
    /* The kind of failure, short and stable ("HTTP 500", "HTTP 401",
     * "timeout", "connection refused"): each kind gets its own log line the
     * first time it happens. "" = the result's name. */
    char kind[40];
    char why[256]; /* reason of a failure, for the log and the dead-letter file */
};

typedef enum hub_out_result (*hub_out_flush_fn)(void *ctx, hub_reading_t *const *readings, size_t n,
                                                struct hub_out_answer *ans);
/* One reading as the output writes it (a line of line protocol), for the
 * dead-letter file. Returns HUB_OK or an error. */
typedef int (*hub_out_format_fn)(const hub_reading_t *r, struct hub_buf *out);

/* The requests of an output in two steps, so that the next one is encoded
 * while the current one is on its way. Request slots are 0 and 1: the loop
 * prepares into one while the other is being sent, never the slot that is
 * on its way.
 *   prepare: encode readings[0..n) into slot. HUB_OUT_OK with ans->done =
 *            how many, from the first, the request holds (its size limit;
 *            0 = all n; the rest goes in the next request), or what flush
 *            would answer without sending (HUB_OUT_TOO_LARGE: the first
 *            reading alone is too large; HUB_OUT_RETRY: a local failure).
 *   start:   send the request slot holds; returns once it is on its way
 *            (a failure to send is finish's answer).
 *   finish:  wait for the answer of the request start sent, answered as
 *            flush answers (ans->done: a prefix of what prepare took).
 * A request is started again (a retry) without a new prepare. */
struct hub_out_async {
    enum hub_out_result (*prepare)(void *ctx, unsigned slot, hub_reading_t *const *readings,
                                   size_t n, struct hub_out_answer *ans);
    void (*start)(void *ctx, unsigned slot);
    enum hub_out_result (*finish)(void *ctx, unsigned slot, struct hub_out_answer *ans);
};

struct hub_deadletter;

struct hub_output_opts {
    const char *name;          /* cursor name and log name */
    const char *type;          /* driver type for log lines "[TYPE:NAME]"; NULL = "output" */
    size_t batch_size;         /* readings per flush, >= 1 */
    int64_t flush_interval_ns; /* longest a reading waits for its batch to fill */
    int64_t backoff_base_ns;   /* 0 = 1 s */
    int64_t backoff_max_ns;    /* 0 = 60 s */
    int64_t stop_grace_ns;     /* on stop, how long to keep trying the last flush; 0 = 2 s */
    int64_t alarm_retry_ns;    /* after HUB_OUT_ALARM, wait this long; 0 = 5 min */
    /* Where refused readings go (the caller's; may be NULL: they are then
     * only logged and counted), and how they are written there (NULL: the
     * journal record's text is not available, the entry has the reason only). */
    struct hub_deadletter *deadletter;
    hub_out_format_fn format;
    /* Where the loop's counters go, labelled output="NAME" (may be NULL):
     * cityhub_output_{delivered,rejected,retries,splits}_total,
     * cityhub_output_responses_total{class="2xx".."5xx" or "none"} and the
     * gauges cityhub_output_backlog, cityhub_output_rate (readings/s),
     * cityhub_output_drain_eta_seconds (time left to deliver the backlog, 0
     * when none or unknown) and cityhub_output_alarm (1 while in alarm). */
    struct hub_metrics *metrics;
    /* The output's requests in two steps (may be NULL: flush alone, one
     * request after the other). With it, flush is not called. */
    const struct hub_out_async *async;
};

enum hub_out_state {
    HUB_OUT_STATE_OK = 0,   /* the last flush was delivered (or none yet) */
    HUB_OUT_STATE_RETRYING, /* failing, retrying since retrying_since_ns */
    HUB_OUT_STATE_ALARM,    /* stopped: credentials or target refused */
};

struct hub_output_stats {
    uint64_t delivered; /* readings answered 2xx */
    uint64_t batches;
    uint64_t retries;           /* failed flush attempts */
    uint64_t corrupt;           /* records skipped: undecodable or lost to a bad segment */
    uint64_t dropped;           /* records dropped by the journal's on_full before delivery */
    uint64_t cursor;            /* next seq to deliver */
    uint64_t rejected;          /* readings the server refused (dead-lettered) */
    uint64_t deadletter_errors; /* of them, not written to the dead-letter file */
    uint64_t splits;            /* batches split for 413 or bisected for 400/422 */
    enum hub_out_state state;
    int64_t retrying_since_ns; /* wall clock of the first failure in a row, 0 if ok */
    char alarm[128];           /* the alarm's reason while state is ALARM */
    uint64_t backlog;          /* readings stored but not yet delivered (as of the call) */
    double rate;               /* readings delivered per second, recent average */
    bool draining;             /* catching up on a backlog: batches back to back */
    double eta_s;              /* time left to deliver the backlog at rate; 0 = unknown */
};

/* Name of a state, for status points: "ok", "retrying", "alarm". */
const char *hub_out_state_name(enum hub_out_state s);
/* Name of a result, for messages: "ok", "retry", "rejected", "too large", "alarm". */
const char *hub_out_result_name(enum hub_out_result r);

typedef struct hub_output hub_output_t;

/* Returns HUB_OK, HUB_EINVAL for bad options, HUB_ENOMEM, or the journal's
 * error when it cannot register the output's cursor (HUB_EFULL: too many).
 * The cursor is registered here, before run(): from then on the journal keeps
 * every segment this output has not delivered. */
int hub_output_new(hub_journal_t *j, const struct hub_output_opts *opts, hub_out_flush_fn flush,
                   void *ctx, hub_output_t **out);
/* Run until hub_output_stop(); then try to flush what is pending for up to
 * stop_grace_ns, persist the cursor and return HUB_OK. */
int hub_output_run(hub_output_t *o);
/* Ask run() to finish; safe from any thread. */
void hub_output_stop(hub_output_t *o);
/* The same without the stop grace: run() returns once the flush in flight
 * (if any) has its answer, the cursor persisted at what was delivered; the
 * rest waits in the journal for the next run (a reload). */
void hub_output_stop_now(hub_output_t *o);
void hub_output_stats(hub_output_t *o, struct hub_output_stats *st);
void hub_output_free(hub_output_t *o);

#endif
