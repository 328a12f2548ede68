/* hub/output.h — the delivery loop of one output: batches from the journal,
 * handed to the output driver, cursor advanced only on success.
 *
 * hub_output_run() reads records from the output's cursor, decodes them into
 * readings and calls flush() with up to batch_size of them, when the batch is
 * full or flush_interval has passed since its first reading. The driver
 * answers:
 *   HUB_OUT_OK      delivered: the cursor moves past the batch and is persisted;
 *   HUB_OUT_RETRY   not delivered: the same batch is tried again after a capped
 *                   exponential backoff with jitter (or the server's Retry-After);
 *   HUB_OUT_REJECT  the server refused the data itself: treated as RETRY here
 *                   (never counted as delivered) and logged with the reason.
 * A record that fails to decode is skipped and counted (corrupt), never sent. */
#ifndef HUB_OUTPUT_H
#define HUB_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "hub/journal.h"
#include "hub/reading.h"

enum hub_out_result {
    HUB_OUT_OK = 0,
    HUB_OUT_RETRY = 1,
    HUB_OUT_REJECT = 2,
};

struct hub_out_answer {
    /* HUB_OUT_OK only: how many readings, from the first, were delivered
     * when the driver sent a prefix of the batch (its request size limit,
     * max_batch_bytes, was reached); 0 means all n. The rest is offered
     * again at once, as the start of the next batch: not a failure. */
    size_t done;
    int64_t retry_after_ns; /* server's hint, 0 if none */
    char why[256];          /* reason for RETRY/REJECT, for the log */
};

typedef enum hub_out_result (*hub_out_flush_fn)(void *ctx, hub_reading_t *const *readings, size_t n,
                                                struct hub_out_answer *ans);

struct hub_output_opts {
    const char *name;          /* cursor name and log name */
    const char *type;          /* driver type for log lines "[TYPE:NAME]"; NULL = "output" */
    size_t batch_size;         /* readings per flush, >= 1 */
    int64_t flush_interval_ns; /* longest a reading waits for its batch to fill */
    int64_t backoff_base_ns;   /* 0 = 1 s */
    int64_t backoff_max_ns;    /* 0 = 60 s */
    int64_t stop_grace_ns;     /* on stop, how long to keep trying the last flush; 0 = 2 s */
};

struct hub_output_stats {
    uint64_t delivered; /* readings answered 2xx */
    uint64_t batches;
    uint64_t retries; /* failed flush attempts */
    uint64_t corrupt; /* records skipped: undecodable or lost to a bad segment */
    uint64_t dropped; /* records dropped by the journal's on_full before delivery */
    uint64_t cursor;  /* next seq to deliver */
};

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
void hub_output_stats(hub_output_t *o, struct hub_output_stats *st);
void hub_output_free(hub_output_t *o);

#endif
