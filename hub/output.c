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
#include "hub/beat.h"
#include "hub/clock.h"
#include "hub/clocktrust.h"
#include "hub/deadletter.h"
#include "hub/log.h"
#include "hub/metrics.h"

#define OUT_MAX_BATCH 1000000                  /* sanity bound on batch_size */
#define OUT_IDLE_WAIT_NS (200 * HUB_NS_PER_MS) /* longest journal wait: bounds a missed wake */
#define OUT_READ_RETRY_NS (1 * HUB_NS_PER_S)   /* pause after a reader I/O error */
#define OUT_MAX_WAIT_NS (3600 * HUB_NS_PER_S)  /* longest single condvar wait */
#define OUT_SPARE_MIN 64                       /* spare readings kept whatever the batch */
#define OUT_MAX_DEPTH 48                       /* halvings: 2^48 readings is no batch */
#define OUT_KINDS 8                            /* failure kinds with a log limit each */
#define OUT_DEFAULT_ALARM_RETRY_NS (300 * HUB_NS_PER_S)
#define OUT_TICK_NS (1 * HUB_NS_PER_S)          /* backlog and rate refreshed */
#define OUT_PROGRESS_LOG_NS (30 * HUB_NS_PER_S) /* a backlog's progress line */

struct out_kind {
    char name[40]; /* hub_out_answer.kind; "" = free */
    struct hub_log_limit lim;
};

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
    bool no_grace;   /* hub_output_stop_now: no flush after the one in flight */
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
    hub_reading_t *held; /* read at seq held_seq, waiting for a trusted clock */
    uint64_t held_seq;
    uint64_t committed; /* cursor: first seq not yet delivered */
    uint64_t next;      /* next seq to read */
    int64_t first_ns;   /* when the batch's first reading arrived (monotonic) */
    bool sealed;        /* a flush of this batch failed: retry it unchanged */
    unsigned attempts;  /* failed flushes in a row */
    /* The batch's readings [lo, n) are still to be delivered, as the ranges
     * [lo, ends[depth-1]), [ends[depth-1], ends[depth-2]), ... [ends[0], n):
     * the first is offered next. A refused range is halved (a new end is
     * pushed); a refused single reading goes to the dead-letter file. */
    size_t lo;
    size_t ends[OUT_MAX_DEPTH];
    unsigned depth;
    bool draining;
    int64_t deadline_ns; /* end of the stop grace (monotonic) */
    int64_t alarm_retry_ns;
    struct hub_deadletter *dl;
    hub_out_format_fn format;
    struct hub_buf line; /* one refused reading, formatted */
    struct out_kind kinds[OUT_KINDS];
    struct hub_metric *m_delivered, *m_rejected, *m_retries, *m_splits, *m_backlog, *m_alarm;
    struct hub_metric *m_responses[6]; /* by status class: none, 1xx..5xx */
    /* progress: backlog and delivery rate, refreshed every OUT_TICK_NS */
    int64_t tick_ns;
    uint64_t tick_delivered;
    int64_t logged_ns;     /* last progress line; 0 = not in a backlog */
    int64_t backlog_ns;    /* when the backlog began to be logged */
    uint64_t backlog_from; /* delivered then */
    struct hub_log_limit lim_corrupt, lim_read, lim_commit, lim_refused;
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
        opts->backoff_base_ns < 0 || opts->backoff_max_ns < 0 || opts->stop_grace_ns < 0 ||
        opts->alarm_retry_ns < 0)
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
    o->alarm_retry_ns = opts->alarm_retry_ns ? opts->alarm_retry_ns : OUT_DEFAULT_ALARM_RETRY_NS;
    o->dl = opts->deadletter;
    o->format = opts->format;
    if (opts->metrics) {
        struct hub_metrics *m = opts->metrics;
        o->m_delivered = hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_output_delivered_total",
                                         "output", o->name, "readings the store accepted");
        o->m_rejected =
            hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_output_rejected_total", "output",
                            o->name, "readings the store refused (kept in the dead-letter file)");
        o->m_retries = hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_output_retries_total",
                                       "output", o->name, "requests that failed and were retried");
        o->m_splits = hub_metrics_add(m, HUB_METRIC_COUNTER, "cityhub_output_splits_total",
                                      "output", o->name, "batches halved after a 400, 422 or 413");
        o->m_backlog = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_output_backlog", "output",
                                       o->name, "readings stored but not yet delivered");
        o->m_alarm = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_output_alarm", "output", o->name,
                                     "1 while the store refuses the credentials or the target");
        static const char *const classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
        for (int k = 0; k < 6; k++)
            o->m_responses[k] = hub_metrics_add2(
                m, HUB_METRIC_COUNTER, "cityhub_output_responses_total", "output", o->name, "class",
                classes[k], "requests by the class of the server's answer (none: no answer)");
    }
    hub_buf_init(&o->line, HUB_JOURNAL_MAX_RECORD * 4); /* line protocol of one reading */
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
        if (hub_beat_wait_until(&o->cond, &o->mu, end) == ETIMEDOUT)
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
    o->lo = 0;
    o->depth = 0;
    o->sealed = false;
}

static void batch_add(hub_output_t *o, hub_reading_t *r, uint64_t seq)
{
    if (o->n == 0)
        o->first_ns = hub_mono_ns();
    o->seqs[o->n] = seq;
    o->batch[o->n++] = r;
}

/* Read stored records into the batch until it is full or the reader has
 * caught up (*caught_up). Returns HUB_OK, or the reader's error (the reader
 * is then closed, to be reopened at next). */
static int read_some(hub_output_t *o, bool *caught_up)
{
    *caught_up = false;
    if (!o->rd) {
        hub_reading_free(o->held); /* read again from o->next == held_seq */
        o->held = NULL;
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
        if (o->held) {
            if (hub_clock_restamp(o->held) != HUB_OK) {
                *caught_up = true;
                return HUB_OK;
            }
            o->next = o->held_seq + 1;
            batch_add(o, o->held, o->held_seq);
            o->held = NULL;
            continue;
        }
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
            if (hub_clock_restamp(r) != HUB_OK) {
                /* On boot time and the clock not yet trusted: never sent so. */
                o->held = r;
                o->held_seq = seq;
                o->next = seq;
                *caught_up = true;
                return HUB_OK;
            }
            batch_add(o, r, seq);
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

/* The log limit of a kind of failure: each kind is logged the first time it
 * happens, then at most once a minute, whatever other kinds do meanwhile. */
static struct hub_log_limit *kind_limit(hub_output_t *o, const char *kind)
{
    struct out_kind *oldest = &o->kinds[0];
    for (size_t i = 0; i < OUT_KINDS; i++) {
        struct out_kind *k = &o->kinds[i];
        if (k->name[0] && !strcmp(k->name, kind))
            return &k->lim;
        if (!k->name[0] || (oldest->name[0] && k->lim.last_ns < oldest->lim.last_ns))
            oldest = k;
    }
    snprintf(oldest->name, sizeof(oldest->name), "%s", kind);
    memset(&oldest->lim, 0, sizeof(oldest->lim));
    return &oldest->lim;
}

static void set_state(hub_output_t *o, enum hub_out_state state, const char *alarm)
{
    hub_metric_set(o->m_alarm, state == HUB_OUT_STATE_ALARM);
    pthread_mutex_lock(&o->mu);
    if (state == HUB_OUT_STATE_OK)
        o->st.retrying_since_ns = 0;
    else if (!o->st.retrying_since_ns)
        o->st.retrying_since_ns = hub_time_ns();
    o->st.state = state;
    snprintf(o->st.alarm, sizeof(o->st.alarm), "%.*s", (int)sizeof(o->st.alarm) - 1,
             alarm ? alarm : "");
    pthread_mutex_unlock(&o->mu);
}

/* k readings of the batch were delivered in one request: count them. */
static void delivered(hub_output_t *o, size_t k)
{
    hub_metric_inc(o->m_delivered, k);
    pthread_mutex_lock(&o->mu);
    o->st.delivered += k;
    o->st.batches++;
    pthread_mutex_unlock(&o->mu);
}

/* The reading at lo was refused for itself: into the dead-letter file with
 * the server's reason, counted, and passed. */
static void refuse_one(hub_output_t *o, const struct hub_out_answer *ans)
{
    const hub_reading_t *r = o->batch[o->lo];
    uint64_t seq = o->seqs[o->lo];
    char where[24];
    bool written = false;
    snprintf(where, sizeof(where), "%" PRIu64, seq);
    if (o->dl) {
        const void *data = NULL;
        size_t len = 0;
        hub_buf_reset(&o->line);
        if (o->format && o->format(r, &o->line) == HUB_OK) {
            data = o->line.data;
            len = o->line.len;
            while (len > 0 && ((const char *)data)[len - 1] == '\n')
                len--;
        }
        written = hub_deadletter_write(o->dl, hub_time_ns(), o->who, "seq", where,
                                       ans->why[0] ? ans->why : hub_out_result_name(HUB_OUT_REJECT),
                                       data ? data : "", len) == HUB_OK;
    }
    hub_metric_inc(o->m_rejected, 1);
    pthread_mutex_lock(&o->mu);
    o->st.rejected++;
    o->st.deadletter_errors += written ? 0 : 1;
    pthread_mutex_unlock(&o->mu);
    uint64_t held;
    char note[48];
    if (hub_log_limit_pass(&o->lim_refused, hub_mono_ns(), &held))
        hub_warn(o->who, "reading seq %s (%s) refused by the server: %s; %s%s", where,
                 hub_reading_measurement(r), ans->why[0] ? ans->why : "no reason given",
                 written ? "kept in the dead-letter file"
                 : o->dl ? "the dead-letter file cannot be written: it is lost"
                         : "no dead-letter file: it is dropped",
                 held_note(note, sizeof(note), held));
    o->lo++;
}

/* After lo moved: drop the ranges it passed; commit the cursor up to lo. */
static void advance(hub_output_t *o)
{
    while (o->depth > 0 && o->ends[o->depth - 1] <= o->lo)
        o->depth--;
    if (o->lo >= o->n) {
        free_batch(o);
        commit_to(o, o->next);
    } else {
        commit_to(o, o->seqs[o->lo]);
    }
}

static void log_failure(hub_output_t *o, enum hub_out_result res, size_t len,
                        const struct hub_out_answer *ans, const char *then)
{
    uint64_t held;
    char note[48];
    const char *kind = ans->kind[0] ? ans->kind : hub_out_result_name(res);
    if (!hub_log_limit_pass(kind_limit(o, kind), hub_mono_ns(), &held))
        return;
    const char *what = res == HUB_OUT_REJECT      ? "refused"
                       : res == HUB_OUT_TOO_LARGE ? "too large"
                       : res == HUB_OUT_ALARM     ? "refused"
                                                  : "not delivered";
    if (res == HUB_OUT_ALARM)
        hub_err(o->who, "ALARM: batch of %zu %s: %s — %s%s", len, what,
                ans->why[0] ? ans->why : "no reason given", then,
                held_note(note, sizeof(note), held));
    else
        hub_warn(o->who, "batch of %zu %s: %s — %s%s", len, what,
                 ans->why[0] ? ans->why : "no reason given", then,
                 held_note(note, sizeof(note), held));
}

/* Offer the next range of the batch once. Returns how long to wait before
 * the next offer: 0 when something was delivered or the range was split. */
static int64_t offer(hub_output_t *o)
{
    struct hub_out_answer ans;
    size_t hi = o->depth ? o->ends[o->depth - 1] : o->n;
    size_t len = hi - o->lo;
    char then[96];

    memset(&ans, 0, sizeof(ans));
    enum hub_out_result res = o->flush(o->ctx, o->batch + o->lo, len, &ans);
    ans.why[sizeof(ans.why) - 1] = 0;
    ans.kind[sizeof(ans.kind) - 1] = 0;
    hub_metric_inc(o->m_responses[ans.status >= 100 && ans.status <= 599 ? ans.status / 100 : 0],
                   1);

    if (res == HUB_OUT_OK) {
        size_t k = ans.done > 0 && ans.done < len ? ans.done : len;
        enum hub_out_state was = o->st.state; /* only this thread writes it */
        if (was == HUB_OUT_STATE_ALARM)
            hub_info(o->who, "alarm cleared: the server accepts the data again");
        else if (o->attempts)
            hub_info(o->who, "delivering again after %u failed attempts", o->attempts);
        o->attempts = 0;
        hub_backoff_ok(&o->backoff);
        set_state(o, HUB_OUT_STATE_OK, NULL);
        if (k < len && o->depth == 0 && o->lo == 0) {
            /* A prefix went (the driver's request limit): keep the rest as
             * the start of the next batch, unsealed so that it fills up. */
            recycle(o, o->batch, k);
            memmove(o->batch, o->batch + k, (o->n - k) * sizeof(*o->batch));
            memmove(o->seqs, o->seqs + k, (o->n - k) * sizeof(*o->seqs));
            o->n -= k;
            o->sealed = false;
            o->first_ns = hub_mono_ns() - o->flush_interval_ns; /* the rest is due now */
            delivered(o, k);
            commit_to(o, o->seqs[0]);
            return 0;
        }
        delivered(o, k);
        o->lo += k;
        advance(o);
        return 0;
    }

    o->sealed = true; /* nothing is added to a batch in trouble */
    if ((res == HUB_OUT_REJECT || res == HUB_OUT_TOO_LARGE) && len > 1 &&
        o->depth < OUT_MAX_DEPTH) {
        /* Halve: the first half is offered next, then the second. */
        o->ends[o->depth++] = o->lo + len / 2;
        hub_metric_inc(o->m_splits, 1);
        pthread_mutex_lock(&o->mu);
        o->st.splits++;
        pthread_mutex_unlock(&o->mu);
        log_failure(o, res, len, &ans,
                    res == HUB_OUT_TOO_LARGE
                        ? "sending it in halves"
                        : "halving it to find the readings the server refuses; the others go on");
        return 0;
    }
    if (res == HUB_OUT_REJECT || res == HUB_OUT_TOO_LARGE) {
        refuse_one(o, &ans);
        hub_backoff_ok(&o->backoff);
        advance(o);
        return 0;
    }

    o->attempts++;
    hub_metric_inc(o->m_retries, 1);
    pthread_mutex_lock(&o->mu);
    o->st.retries++;
    pthread_mutex_unlock(&o->mu);
    int64_t wait;
    if (res == HUB_OUT_ALARM) {
        wait = o->alarm_retry_ns;
        set_state(o, HUB_OUT_STATE_ALARM, ans.why[0] ? ans.why : "refused");
        snprintf(then, sizeof(then),
                 "output stopped, readings kept in the journal; trying again in %" PRId64 " s",
                 (int64_t)((wait + HUB_NS_PER_S - 1) / HUB_NS_PER_S));
    } else {
        wait = hub_backoff_fail(&o->backoff, ans.retry_after_ns);
        set_state(o, HUB_OUT_STATE_RETRYING, NULL);
        snprintf(then, sizeof(then), "retrying in %" PRId64 " ms%s",
                 (int64_t)((wait + HUB_NS_PER_MS - 1) / HUB_NS_PER_MS),
                 ans.retry_after_ns ? " (as the server asked)" : "");
    }
    log_failure(o, res, len, &ans, then);
    return wait;
}

/* Once a second: the backlog (readings stored, not yet delivered) and the
 * delivery rate (a moving average). A backlog of more than a few batches
 * (after an outage) gets a progress line every OUT_PROGRESS_LOG_NS, and a
 * last one when it is delivered. */
static void progress(hub_output_t *o, int64_t now)
{
    if (o->tick_ns && now - o->tick_ns < OUT_TICK_NS)
        return;
    struct hub_journal_stats js;
    hub_journal_stats(o->j, &js);
    uint64_t backlog = js.next_seq > o->committed ? js.next_seq - o->committed : 0;
    pthread_mutex_lock(&o->mu);
    uint64_t delivered_now = o->st.delivered;
    double rate = o->st.rate;
    if (o->tick_ns) {
        double dt = (double)(now - o->tick_ns) / HUB_NS_PER_S;
        double inst = (double)(delivered_now - o->tick_delivered) / dt;
        rate = rate == 0 ? inst : 0.6 * rate + 0.4 * inst;
    }
    o->st.rate = rate;
    hub_metric_set(o->m_backlog, backlog);
    pthread_mutex_unlock(&o->mu);
    o->tick_ns = now;
    o->tick_delivered = delivered_now;

    bool big = backlog > 4 * (uint64_t)o->batch_size;
    if (big && (!o->logged_ns || now - o->logged_ns >= OUT_PROGRESS_LOG_NS)) {
        if (!o->logged_ns) {
            o->backlog_ns = now;
            o->backlog_from = delivered_now;
        }
        o->logged_ns = now;
        if (rate >= 1)
            hub_info(o->who, "backlog: %" PRIu64 " readings to deliver, %.0f/s, about %.0f s to go",
                     backlog, rate, (double)backlog / rate);
        else
            hub_info(o->who, "backlog: %" PRIu64 " readings to deliver%s", backlog,
                     o->st.state == HUB_OUT_STATE_OK ? "" : ", none delivered now");
    } else if (!big && o->logged_ns && backlog <= (uint64_t)o->batch_size) {
        double took = (double)(now - o->backlog_ns) / HUB_NS_PER_S;
        uint64_t n = delivered_now - o->backlog_from;
        hub_info(o->who, "backlog delivered: %" PRIu64 " readings in %.0f s (%.0f/s)", n, took,
                 took > 0 ? (double)n / took : 0.0);
        o->logged_ns = 0;
    }
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
        hub_beat(); /* the watchdog's heartbeat (hub/beat.h); waits beat too */
        int64_t now = hub_mono_ns();
        progress(o, now);
        if (!o->draining && stop_requested(o)) {
            /* The grace counts from the stop request, not from when this loop
             * noticed it (a flush may have been in progress). */
            pthread_mutex_lock(&o->mu);
            int64_t asked = o->stop_ns, grace = o->no_grace ? 0 : o->stop_grace_ns;
            pthread_mutex_unlock(&o->mu);
            o->draining = true;
            o->deadline_ns = grace > INT64_MAX - asked ? INT64_MAX : asked + grace;
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
            int64_t d = offer(o);
            if (d > 0) {
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
        if (o->held) { /* the journal has more; what is wanted is the clock */
            wait_ns(o, t, true);
            continue;
        }
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
                 o->n - o->lo, o->attempts, o->committed);
    free_batch(o);
    free_spares(o);
    hub_reading_free(o->held);
    o->held = NULL;
    if (o->rd) {
        hub_journal_reader_free(o->rd);
        o->rd = NULL;
    }
    return HUB_OK;
}

static void stop_asked(hub_output_t *o, bool no_grace)
{
    pthread_mutex_lock(&o->mu);
    if (!o->stop)
        o->stop_ns = hub_mono_ns();
    o->stop = true;
    o->no_grace = o->no_grace || no_grace;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
    hub_journal_wake(o->j);
}

void hub_output_stop(hub_output_t *o)
{
    stop_asked(o, false);
}

void hub_output_stop_now(hub_output_t *o)
{
    stop_asked(o, true);
}

void hub_output_stats(hub_output_t *o, struct hub_output_stats *st)
{
    struct hub_journal_stats js;
    hub_journal_stats(o->j, &js); /* not under o->mu: the journal's lock is its own */
    pthread_mutex_lock(&o->mu);
    *st = o->st;
    pthread_mutex_unlock(&o->mu);
    st->backlog = js.next_seq > st->cursor ? js.next_seq - st->cursor : 0;
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
    hub_buf_free(&o->line);
    free(o->batch);
    free(o->seqs);
    free(o->spare);
    hub_cond_destroy(&o->mu, &o->cond);
    free(o);
}

const char *hub_out_state_name(enum hub_out_state s)
{
    switch (s) {
    case HUB_OUT_STATE_OK:
        return "ok";
    case HUB_OUT_STATE_RETRYING:
        return "retrying";
    case HUB_OUT_STATE_ALARM:
        return "alarm";
    }
    return "unknown";
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
