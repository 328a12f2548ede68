/* hub/output.c — the delivery loop of one output.
 *
 * One run() per output, in a thread its caller owns. The loop keeps one batch:
 * the readings decoded from the records [committed, next) of the journal
 * (records that failed to decode, or that the reader passed over, are in that
 * range too but not in the batch). When the batch is full, or its first
 * reading has waited flush_interval, it goes to flush(). On HUB_OUT_OK the
 * cursor is committed to next; otherwise the batch is sealed (nothing more is
 * added to it) and the very same readings are offered again after a backoff.
 *
 * Stop: hub_output_stop() sets a flag, signals the condvar a backoff waits on
 * and wakes journal waits. run() then stops waiting for new records, keeps
 * reading what is already stored and flushing it for up to stop_grace_ns,
 * and returns with the cursor at the end of what was delivered.
 *
 * Memory: readings done with (delivered) are kept as spares and the next
 * records are decoded into them (hub_reading_decode_into), up to twice the
 * last batch given back (at least OUT_SPARE_MIN): a steady flow decodes
 * without malloc, and a batch's memory is not handed back to the system only
 * to fault in again with the next; what a backlog's large batches left goes
 * back with the first small batch. */
#include "hub/output.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub/backoff.h"
#include "hub/clock.h"
#include "hub/log.h"

#define OUT_MAX_BATCH 1000000                  /* sanity bound on batch_size */
#define OUT_IDLE_WAIT_NS (200 * HUB_NS_PER_MS) /* longest journal wait: bounds a missed wake */
#define OUT_READ_RETRY_NS (1 * HUB_NS_PER_S)   /* pause after a reader I/O error */
#define OUT_MAX_WAIT_NS (3600 * HUB_NS_PER_S)  /* longest single condvar wait */
#define OUT_SPARE_MIN 64                       /* spare readings kept whatever the batch */

struct hub_output {
    hub_journal_t *j;
    char name[HUB_JOURNAL_MAX_NAME + 1];
    char who[HUB_JOURNAL_MAX_NAME + 40]; /* "TYPE:NAME" for log lines */
    size_t batch_size;
    int64_t flush_interval_ns;
    int64_t stop_grace_ns;
    hub_out_flush_fn flush;
    void *ctx;

    pthread_mutex_t mu;  /* guards stop and st */
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled by stop */
    bool stop;
    int64_t stop_ns; /* when stop was asked (monotonic): the grace counts from it */
    struct hub_output_stats st;

    /* The rest belongs to the thread in run(). */
    struct hub_backoff backoff;
    hub_journal_reader_t *rd; /* NULL after a reader error, reopened at next */
    struct hub_buf payload;
    hub_reading_t **batch; /* batch_size slots */
    uint64_t *seqs;        /* the journal seq of each reading in batch */
    size_t n;
    hub_reading_t **spare; /* readings done with, to decode into (batch_size slots) */
    size_t nspare;
    uint64_t committed; /* cursor: first seq not yet delivered */
    uint64_t next;      /* next seq to read */
    int64_t first_ns;   /* when the batch's first reading arrived (monotonic) */
    bool sealed;        /* a flush of this batch failed: retry it unchanged */
    unsigned attempts;  /* failed flushes of the current batch */
    int64_t retry_ns;   /* delay before the next attempt */
    bool draining;
    int64_t deadline_ns; /* end of the stop grace (monotonic) */
    struct hub_log_limit lim_flush, lim_corrupt, lim_read, lim_commit;
};

static bool name_ok(const char *s)
{
    return hub_journal_check_name(s, NULL, 0) == 0;
}

int hub_output_new(hub_journal_t *j, const struct hub_output_opts *opts, hub_out_flush_fn flush,
                   void *ctx, hub_output_t **out)
{
    *out = NULL;
    if (!j || !opts || !flush || !name_ok(opts->name) || opts->batch_size < 1 ||
        opts->batch_size > OUT_MAX_BATCH || opts->flush_interval_ns < 0 ||
        opts->backoff_base_ns < 0 || opts->backoff_max_ns < 0 || opts->stop_grace_ns < 0)
        return HUB_EINVAL;
    hub_output_t *o = calloc(1, sizeof(*o));
    if (!o)
        return HUB_ENOMEM;
    o->batch = calloc(opts->batch_size, sizeof(*o->batch));
    o->seqs = calloc(opts->batch_size, sizeof(*o->seqs));
    o->spare = calloc(opts->batch_size, sizeof(*o->spare));
    if (!o->batch || !o->seqs || !o->spare || hub_cond_init(&o->mu, &o->cond) != 0) {
        free(o->batch);
        free(o->seqs);
        free(o->spare);
        free(o);
        return HUB_ENOMEM;
    }
    o->j = j;
    strcpy(o->name, opts->name);
    snprintf(o->who, sizeof(o->who), "%.32s:%s", opts->type ? opts->type : "output", opts->name);
    o->batch_size = opts->batch_size;
    o->flush_interval_ns = opts->flush_interval_ns;
    o->stop_grace_ns = opts->stop_grace_ns ? opts->stop_grace_ns : 2 * HUB_NS_PER_S;
    o->flush = flush;
    o->ctx = ctx;
    int64_t base = opts->backoff_base_ns ? opts->backoff_base_ns : 1 * HUB_NS_PER_S;
    int64_t max = opts->backoff_max_ns ? opts->backoff_max_ns : 60 * HUB_NS_PER_S;
    hub_backoff_init(&o->backoff, base, max,
                     (uint64_t)hub_mono_ns() ^ (uint64_t)(uintptr_t)o ^ 0x5bd1e995u);
    hub_buf_init(&o->payload, HUB_JOURNAL_MAX_RECORD);
    /* Register the cursor now, not in run(): the journal deletes segments
     * below every registered cursor, so an output that delivers first must
     * not delete what another output, created but not yet running, needs. */
    uint64_t seq;
    int rc = hub_journal_cursor_open(j, o->name, &seq);
    if (rc != HUB_OK) {
        hub_err(o->who, "cannot open cursor: %s", hub_strerror(rc));
        hub_output_free(o);
        return rc;
    }
    *out = o;
    return HUB_OK;
}

/* " (N similar suppressed)" when a rate limit held messages back, else "". */
static const char *held_note(char *buf, size_t len, uint64_t held)
{
    if (!held)
        return "";
    snprintf(buf, len, " (%" PRIu64 " similar suppressed)", held);
    return buf;
}

static bool stop_requested(hub_output_t *o)
{
    pthread_mutex_lock(&o->mu);
    bool s = o->stop;
    pthread_mutex_unlock(&o->mu);
    return s;
}

/* Sleep ns on the condvar; with interruptible, hub_output_stop ends it early. */
static void wait_ns(hub_output_t *o, int64_t ns, bool interruptible)
{
    if (ns <= 0)
        return;
    if (ns > OUT_MAX_WAIT_NS) /* callers loop; keeps the deadline arithmetic small */
        ns = OUT_MAX_WAIT_NS;
    int64_t end = hub_mono_ns() + ns;
    pthread_mutex_lock(&o->mu);
    while (!(interruptible && o->stop))
        if (hub_cond_wait_until(&o->cond, &o->mu, end) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&o->mu);
}

/* Persist the cursor at seq. A failed commit is logged; the in-memory cursor
 * still moves (what was delivered stays delivered; the next commit retries
 * persisting it, and a replay after a crash is harmless). */
static void commit_to(hub_output_t *o, uint64_t seq)
{
    int rc = hub_journal_cursor_commit(o->j, o->name, seq);
    if (rc) {
        uint64_t held;
        char note[48];
        if (hub_log_limit_pass(&o->lim_commit, hub_mono_ns(), &held))
            hub_err(o->who, "cannot persist cursor at seq %" PRIu64 ": %s%s", seq, hub_strerror(rc),
                    held_note(note, sizeof(note), held));
    }
    o->committed = seq;
    pthread_mutex_lock(&o->mu);
    o->st.cursor = seq;
    pthread_mutex_unlock(&o->mu);
}

static void count(hub_output_t *o, uint64_t corrupt, uint64_t dropped)
{
    if (!corrupt && !dropped)
        return;
    pthread_mutex_lock(&o->mu);
    o->st.corrupt += corrupt;
    o->st.dropped += dropped;
    pthread_mutex_unlock(&o->mu);
}

/* Done with the n readings at rs: keep them as spares, up to twice n (at
 * least OUT_SPARE_MIN, at most batch_size); free the rest and any spares
 * beyond that. */
static void recycle(hub_output_t *o, hub_reading_t **rs, size_t n)
{
    size_t keep = 2 * n > OUT_SPARE_MIN ? 2 * n : OUT_SPARE_MIN;
    if (keep > o->batch_size)
        keep = o->batch_size;
    for (size_t i = 0; i < n; i++) {
        if (o->nspare < keep)
            o->spare[o->nspare++] = rs[i];
        else
            hub_reading_free(rs[i]);
        rs[i] = NULL;
    }
    while (o->nspare > keep)
        hub_reading_free(o->spare[--o->nspare]);
}

static void free_spares(hub_output_t *o)
{
    while (o->nspare > 0)
        hub_reading_free(o->spare[--o->nspare]);
}

static void free_batch(hub_output_t *o)
{
    recycle(o, o->batch, o->n);
    o->n = 0;
    o->sealed = false;
}

/* Read stored records into the batch until it is full or the reader has
 * caught up (*caught_up). Returns HUB_OK, or the reader's error (the reader
 * is then closed, to be reopened at next). */
static int read_some(hub_output_t *o, bool *caught_up)
{
    *caught_up = false;
    if (!o->rd) {
        int rc = hub_journal_reader_new(o->j, o->next, &o->rd);
        if (rc) {
            o->rd = NULL;
            uint64_t held;
            char note[48];
            if (hub_log_limit_pass(&o->lim_read, hub_mono_ns(), &held))
                hub_err(o->who, "cannot read the journal from seq %" PRIu64 ": %s%s", o->next,
                        hub_strerror(rc), held_note(note, sizeof(note), held));
            return rc;
        }
    }
    while (o->n < o->batch_size) {
        uint64_t seq = 0, skipped = 0;
        int rc = hub_journal_reader_next(o->rd, &o->payload, &seq, &skipped);
        if (rc == HUB_OK) {
            /* a gap before this record: dropped by the journal's on_full */
            count(o, 0, skipped);
            o->next = seq + 1;
            hub_reading_t *r = NULL;
            hub_reading_t *spare = o->nspare > 0 ? o->spare[--o->nspare] : NULL;
            int drc = hub_reading_decode_into(spare, o->payload.data, o->payload.len, &r);
            if (drc) {
                count(o, 1, 0);
                uint64_t held;
                char note[48];
                if (hub_log_limit_pass(&o->lim_corrupt, hub_mono_ns(), &held))
                    hub_warn(o->who,
                             "record seq %" PRIu64 " (%zu bytes) does not decode: %s;"
                             " skipped%s",
                             seq, o->payload.len, hub_strerror(drc),
                             held_note(note, sizeof(note), held));
                continue;
            }
            if (o->n == 0)
                o->first_ns = hub_mono_ns();
            o->seqs[o->n] = seq;
            o->batch[o->n++] = r;
        } else if (rc == HUB_EEMPTY) {
            count(o, 0, skipped);
            o->next += skipped;
            *caught_up = true;
            return HUB_OK;
        } else if (rc == HUB_ECORRUPT) {
            /* the reader moved on to the next segment */
            count(o, skipped, 0);
            o->next += skipped;
            uint64_t held;
            char note[48];
            if (hub_log_limit_pass(&o->lim_corrupt, hub_mono_ns(), &held))
                hub_warn(o->who,
                         "bad record in a sealed segment near seq %" PRIu64 ": %" PRIu64
                         " records skipped%s",
                         o->next, skipped, held_note(note, sizeof(note), held));
        } else {
            uint64_t held;
            char note[48];
            if (hub_log_limit_pass(&o->lim_read, hub_mono_ns(), &held))
                hub_err(o->who, "reading the journal at seq %" PRIu64 ": %s%s", o->next,
                        hub_strerror(rc), held_note(note, sizeof(note), held));
            hub_journal_reader_free(o->rd);
            o->rd = NULL;
            return rc;
        }
    }
    return HUB_OK;
}

/* Offer the batch once. Returns true if it was delivered; otherwise sets
 * o->retry_ns and seals the batch. */
static bool deliver_once(hub_output_t *o)
{
    struct hub_out_answer ans;
    memset(&ans, 0, sizeof(ans));
    enum hub_out_result res = o->flush(o->ctx, o->batch, o->n, &ans);
    ans.why[sizeof(ans.why) - 1] = 0;
    if (res == HUB_OUT_OK && ans.done > 0 && ans.done < o->n) {
        /* A prefix went (the driver's request limit): keep the rest as the
         * start of the next batch, unsealed so that it fills up again. */
        size_t k = ans.done;
        recycle(o, o->batch, k);
        uint64_t first_left = o->seqs[k];
        memmove(o->batch, o->batch + k, (o->n - k) * sizeof(*o->batch));
        memmove(o->seqs, o->seqs + k, (o->n - k) * sizeof(*o->seqs));
        o->n -= k;
        o->sealed = false;
        o->first_ns = hub_mono_ns() - o->flush_interval_ns; /* the rest is due now */
        commit_to(o, first_left);
        pthread_mutex_lock(&o->mu);
        o->st.delivered += k;
        o->st.batches++;
        pthread_mutex_unlock(&o->mu);
        o->attempts = 0;
        hub_backoff_ok(&o->backoff);
        return true;
    }
    if (res == HUB_OUT_OK) {
        size_t n = o->n;
        free_batch(o);
        commit_to(o, o->next);
        pthread_mutex_lock(&o->mu);
        o->st.delivered += n;
        o->st.batches++;
        pthread_mutex_unlock(&o->mu);
        if (o->attempts)
            hub_info(o->who, "batch of %zu delivered after %u failed attempts", n, o->attempts);
        o->attempts = 0;
        hub_backoff_ok(&o->backoff);
        return true;
    }
    o->sealed = true;
    o->attempts++;
    pthread_mutex_lock(&o->mu);
    o->st.retries++;
    pthread_mutex_unlock(&o->mu);
    o->retry_ns = hub_backoff_fail(&o->backoff, ans.retry_after_ns);
    uint64_t held;
    char note[48];
    if (hub_log_limit_pass(&o->lim_flush, hub_mono_ns(), &held)) {
        const char *what = res == HUB_OUT_REJECT  ? "rejected"
                           : res == HUB_OUT_RETRY ? "not delivered"
                                                  : "not delivered (unknown answer)";
        hub_warn(o->who, "batch of %zu %s: %s — retrying in %" PRId64 " ms%s", o->n, what,
                 ans.why[0] ? ans.why : "no reason given",
                 (int64_t)((o->retry_ns + HUB_NS_PER_MS - 1) / HUB_NS_PER_MS),
                 held_note(note, sizeof(note), held));
    }
    return false;
}

int hub_output_run(hub_output_t *o)
{
    uint64_t seq = 0, persisted = 0;
    bool had = hub_journal_cursor_peek(o->j, o->name, &persisted) == HUB_OK;
    int rc = hub_journal_cursor_open(o->j, o->name, &seq);
    if (rc) {
        hub_err(o->who, "cannot open cursor: %s", hub_strerror(rc));
        return rc;
    }
    /* records the cursor wanted but the journal dropped while we were away */
    if (had && seq > persisted)
        count(o, 0, seq - persisted);
    o->committed = o->next = seq;
    pthread_mutex_lock(&o->mu);
    o->st.cursor = seq;
    pthread_mutex_unlock(&o->mu);
    o->draining = false;
    o->attempts = 0;

    for (;;) {
        int64_t now = hub_mono_ns();
        if (!o->draining && stop_requested(o)) {
            /* The grace counts from the stop request, not from when this loop
             * noticed it (a flush may have been in progress). */
            pthread_mutex_lock(&o->mu);
            int64_t asked = o->stop_ns;
            pthread_mutex_unlock(&o->mu);
            o->draining = true;
            o->deadline_ns =
                o->stop_grace_ns > INT64_MAX - asked ? INT64_MAX : asked + o->stop_grace_ns;
        }
        if (o->draining && now >= o->deadline_ns)
            break;

        bool caught_up = true;
        int rrc = HUB_OK;
        if (!o->sealed)
            rrc = read_some(o, &caught_up);

        now = hub_mono_ns();
        bool due = o->n > 0 && (o->sealed || o->n >= o->batch_size || o->draining ||
                                now - o->first_ns >= o->flush_interval_ns);
        if (due) {
            if (!deliver_once(o)) {
                int64_t d = o->retry_ns;
                if (o->draining) { /* stop already asked: wait, but not past the grace */
                    int64_t left = o->deadline_ns - hub_mono_ns();
                    wait_ns(o, d < left ? d : left, false);
                } else {
                    wait_ns(o, d, true);
                }
            }
            continue;
        }
        /* Nothing to send. Move the cursor past records that were skipped. */
        if (o->n == 0 && o->next > o->committed)
            commit_to(o, o->next);
        if (o->draining)
            break; /* empty batch and nothing more readable */
        if (rrc != HUB_OK) {
            wait_ns(o, OUT_READ_RETRY_NS, true);
            continue;
        }
        if (!caught_up)
            continue;
        int64_t t = OUT_IDLE_WAIT_NS;
        if (o->n > 0 && o->flush_interval_ns - (now - o->first_ns) < t)
            t = o->flush_interval_ns - (now - o->first_ns);
        if (stop_requested(o))
            continue;
        /* With a batch started, wake when it is full or its flush interval
         * is up, not at every append: a thousand readings a second cost the
         * output a thread switch per batch, not per reading. */
        uint64_t want = o->next;
        if (o->n > 0 && o->n < o->batch_size)
            want = o->next + (uint64_t)(o->batch_size - o->n) - 1;
        hub_journal_wait(o->j, want, (int)((t + HUB_NS_PER_MS - 1) / HUB_NS_PER_MS));
    }

    if (o->n == 0 && o->next > o->committed) /* a tail of skipped records */
        commit_to(o, o->next);
    if (o->n > 0)
        hub_warn(o->who,
                 "stopping with a batch of %zu undelivered after %u attempts; it stays"
                 " in the journal from seq %" PRIu64,
                 o->n, o->attempts, o->committed);
    free_batch(o);
    free_spares(o);
    if (o->rd) {
        hub_journal_reader_free(o->rd);
        o->rd = NULL;
    }
    return HUB_OK;
}

void hub_output_stop(hub_output_t *o)
{
    pthread_mutex_lock(&o->mu);
    if (!o->stop)
        o->stop_ns = hub_mono_ns();
    o->stop = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
    hub_journal_wake(o->j);
}

void hub_output_stats(hub_output_t *o, struct hub_output_stats *st)
{
    pthread_mutex_lock(&o->mu);
    *st = o->st;
    pthread_mutex_unlock(&o->mu);
}

void hub_output_free(hub_output_t *o)
{
    if (!o)
        return;
    free_batch(o);
    free_spares(o);
    if (o->rd)
        hub_journal_reader_free(o->rd);
    hub_buf_free(&o->payload);
    free(o->batch);
    free(o->seqs);
    free(o->spare);
    hub_cond_destroy(&o->mu, &o->cond);
    free(o);
}

const char *hub_out_result_name(enum hub_out_result r)
{
    switch (r) {
    case HUB_OUT_OK:
        return "ok";
    case HUB_OUT_RETRY:
        return "retry";
    case HUB_OUT_REJECT:
        return "rejected";
    case HUB_OUT_TOO_LARGE:
        return "too large";
    case HUB_OUT_ALARM:
        return "alarm";
    }
    return "unknown";
}
