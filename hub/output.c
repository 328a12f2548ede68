/* hub/output.c — the delivery loop of one output.
 *
 * One run() per output, in a thread its caller owns. The loop keeps the
 * readings decoded from the journal in order, in rs[0..n) (records that
 * failed to decode, or that the reader passed over, are skipped):
 *   [0, bn)        the batch being delivered (bisected by lo/ends/depth);
 *   [bn, bn + pn)  the next batch, already encoded into the other request
 *                  slot (outputs with struct hub_out_async only);
 *   [bn + pn, n)   read, in no batch yet ("open"), the first since open_ns.
 * The open readings become a batch when there are batch_size of them, when
 * the first has waited flush_interval, at a stop, or at once as the tail of
 * a backlog. On HUB_OUT_OK the delivered position (acked) moves past the
 * batch; otherwise the very same readings are offered again after a
 * backoff.
 *
 * Pipelining: with struct hub_out_async the batch's request is started,
 * and while it is on its way the loop persists the cursor at acked (the
 * batch before), reads on, and prepares the next batch into the other
 * slot; then it waits for the answer. A retry resends the slot as it is; a
 * split or bisection encodes its parts into the batch's own slot, so the
 * batch prepared ahead (the readings after it) stays valid whatever the
 * answer. The cursor is persisted by a thread of its own (the committer),
 * at most every OUT_COMMIT_GAP_NS while batches flow and at once when the
 * loop goes idle, waits or stops: it trails acked by the batches delivered
 * since its last write and never passes a reading not delivered.
 *
 * Stop: hub_output_stop() sets a flag, signals the condvar a backoff waits on
 * and wakes journal waits. run() then stops waiting for new records, keeps
 * reading what is already stored and flushing it for up to stop_grace_ns,
 * and returns with the cursor at the end of what was delivered.
 *
 * Memory: the loop holds at most cap readings (batch_size, twice that with
 * pipelining). Readings done with (delivered) are kept as spares and the
 * next records are decoded into them (hub_reading_decode_into), up to twice
 * the last batch given back (at least OUT_SPARE_MIN) and never beyond cap
 * together with those held: a steady flow decodes without malloc, and what
 * a backlog's large batches left goes back with the first small batch. */
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
#define OUT_PROGRESS_LOG_NS (10 * HUB_NS_PER_S) /* a backlog's progress line */
#define OUT_COMMIT_GAP_NS (100 * HUB_NS_PER_MS) /* least time between cursor writes in a flow */
#define OUT_COMMITTER_STACK ((size_t)256 << 10) /* the committer's thread: a cursor write */

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
    const struct hub_out_async *async; /* NULL: flush alone */
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
    /* Readings read, in order (see the top of the file): the batch [0, bn),
     * the batch prepared ahead [bn, bn + pn), open readings up to n; cap
     * slots. seqs: the journal seq of each. */
    hub_reading_t **rs;
    uint64_t *seqs;
    size_t cap, n, bn, pn;
    int64_t open_ns;     /* when the first open reading arrived (monotonic) */
    hub_reading_t *held; /* read at seq held_seq, waiting for a trusted clock */
    uint64_t held_seq;
    hub_reading_t **spare; /* readings done with, to decode into (cap slots) */
    size_t nspare;
    uint64_t acked; /* delivered up to here: first seq not yet delivered */
    /* The persisted cursor; with pipelining it trails acked, written by a
     * thread of its own (the committer: a slow flash write never holds back
     * the next request), which persists up to cwant, the latest acked it
     * was told (curgent: without waiting out the gap between writes), and
     * is stopped by cquit. committed, cwant and curgent under cmu. */
    uint64_t committed;
    uint64_t cwant;
    bool cquit, curgent, cthread_on;
    pthread_t cthread;
    pthread_mutex_t cmu;
    pthread_cond_t ccond; /* cwant or cquit changed; committed moved */
    uint64_t next;        /* next seq to read */
    unsigned attempts;    /* failed flushes in a row */
    /* Request slots (async): the batch's, and whether it holds exactly the
     * range [slot_lo, slot_hi) of the batch; the batch prepared ahead is in
     * the other. */
    unsigned slot;
    bool slot_ok;
    size_t slot_lo, slot_hi;
    /* The batch's readings [lo, bn) are still to be delivered, as the ranges
     * [lo, ends[depth-1]), [ends[depth-1], ends[depth-2]), ... [ends[0], bn):
     * the first is offered next. A refused range is halved (a new end is
     * pushed); a refused single reading goes to the dead-letter file. A
     * request that holds only a prefix of its range pushes its end too. */
    size_t lo;
    size_t ends[OUT_MAX_DEPTH];
    unsigned depth;
    bool backlog;        /* a batch or more was stored beyond those read: no waiting */
    bool stopping;       /* stop asked: flush what is stored until the deadline */
    int64_t deadline_ns; /* end of the stop grace (monotonic) */
    int64_t alarm_retry_ns;
    struct hub_deadletter *dl;
    hub_out_format_fn format;
    struct hub_buf line; /* one refused reading, formatted */
    struct out_kind kinds[OUT_KINDS];
    struct hub_metric *m_delivered, *m_rejected, *m_retries, *m_splits, *m_backlog, *m_alarm;
    struct hub_metric *m_rate, *m_eta;
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
    bool async = opts->async && opts->async->prepare && opts->async->start && opts->async->finish;
    o->cap = opts->batch_size * (async ? 2 : 1);
    o->rs = calloc(o->cap, sizeof(*o->rs));
    o->seqs = calloc(o->cap, sizeof(*o->seqs));
    o->spare = calloc(o->cap, sizeof(*o->spare));
    if (!o->rs || !o->seqs || !o->spare || hub_cond_init(&o->mu, &o->cond) != 0) {
        free(o->rs);
        free(o->seqs);
        free(o->spare);
        free(o);
        return HUB_ENOMEM;
    }
    if (hub_cond_init(&o->cmu, &o->ccond) != 0) {
        hub_cond_destroy(&o->mu, &o->cond);
        free(o->rs);
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
    o->async = async ? opts->async : NULL;
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
        o->m_rate = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_output_rate", "output", o->name,
                                    "readings delivered per second, recent average");
        o->m_eta = hub_metrics_add(m, HUB_METRIC_GAUGE, "cityhub_output_drain_eta_seconds",
                                   "output", o->name,
                                   "time left to deliver the backlog at the recent rate (0: no "
                                   "backlog, or none delivered now)");
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

/* Persist the cursor at seq. A failed commit is logged; what was
 * delivered stays delivered (the next commit retries persisting it, and a
 * replay after a crash is harmless). */
static void persist(hub_output_t *o, uint64_t seq)
{
    int rc = hub_journal_cursor_commit(o->j, o->name, seq);
    if (rc) {
        uint64_t held;
        char note[48];
        if (hub_log_limit_pass(&o->lim_commit, hub_mono_ns(), &held))
            hub_err(o->who, "cannot persist cursor at seq %" PRIu64 ": %s%s", seq, hub_strerror(rc),
                    held_note(note, sizeof(note), held));
    }
    pthread_mutex_lock(&o->cmu);
    o->committed = seq;
    pthread_cond_broadcast(&o->ccond);
    pthread_mutex_unlock(&o->cmu);
}

/* The committer: persists the latest position it was told, one write for
 * as many acknowledgements as came during the last; the one pending when
 * it is told to quit is written before it returns. */
static void *committer_main(void *arg)
{
    hub_output_t *o = arg;
    pthread_mutex_lock(&o->cmu);
    for (;;) {
        while (!o->cquit && o->cwant == o->committed)
            pthread_cond_wait(&o->ccond, &o->cmu);
        if (o->cwant == o->committed)
            break; /* quit, nothing pending */
        uint64_t seq = o->cwant;
        o->curgent = false;
        pthread_mutex_unlock(&o->cmu);
        persist(o, seq);
        pthread_mutex_lock(&o->cmu);
        /* While batches flow, at most one write per OUT_COMMIT_GAP_NS: a
         * drain does not spend the flash (and its fsyncs) on every batch.
         * The loop going idle, or stopping, ends the gap. */
        int64_t until = hub_mono_ns() + OUT_COMMIT_GAP_NS;
        while (!o->cquit && !o->curgent &&
               hub_cond_wait_until(&o->ccond, &o->cmu, until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&o->cmu);
    return NULL;
}

/* With pipelining, start the committer (without it, commits are made by
 * the loop itself, as they are without pipelining). */
static void committer_start(hub_output_t *o)
{
    pthread_attr_t attr;
    o->cquit = false;
    o->cwant = o->committed;
    o->cthread_on = false;
    if (!o->async || pthread_attr_init(&attr) != 0)
        return;
    pthread_attr_setstacksize(&attr, OUT_COMMITTER_STACK);
    o->cthread_on = pthread_create(&o->cthread, &attr, committer_main, o) == 0;
    pthread_attr_destroy(&attr);
    if (!o->cthread_on)
        hub_warn(o->who, "cannot start a thread to persist the cursor; persisting it between "
                         "requests");
}

/* Persist what is pending and stop the committer. */
static void committer_stop(hub_output_t *o)
{
    if (!o->cthread_on)
        return;
    pthread_mutex_lock(&o->cmu);
    o->cquit = true;
    pthread_cond_broadcast(&o->ccond);
    pthread_mutex_unlock(&o->cmu);
    pthread_join(o->cthread, NULL);
    o->cthread_on = false;
}

/* Persist the cursor at acked, if it moved: told to the committer (at
 * once when idle: no waiting out the gap between writes), or written at
 * once without it. */
static void commit_acked(hub_output_t *o, bool idle)
{
    pthread_mutex_lock(&o->cmu);
    bool moved = o->acked != o->committed && o->acked != o->cwant;
    if (o->cthread_on && (moved || (idle && o->cwant != o->committed))) {
        o->cwant = o->acked;
        o->curgent = o->curgent || idle;
        pthread_cond_broadcast(&o->ccond);
    }
    bool now = moved && !o->cthread_on;
    if (now)
        o->cwant = o->acked;
    pthread_mutex_unlock(&o->cmu);
    if (now)
        persist(o, o->acked);
}

/* Delivered (or passed) up to seq: the cursor in memory moves; it is
 * persisted by commit_acked, at once without pipelining, else while the
 * next request is on its way. */
static void ack_to(hub_output_t *o, uint64_t seq)
{
    o->acked = seq;
    if (!o->cthread_on)
        commit_acked(o, true);
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

/* Done with the k readings at rs: keep them as spares, up to twice k (at
 * least OUT_SPARE_MIN, at most batch_size, and no more than cap with the
 * readings held); free the rest and any spares beyond that. */
static void recycle(hub_output_t *o, hub_reading_t **rs, size_t k)
{
    size_t keep = 2 * k > OUT_SPARE_MIN ? 2 * k : OUT_SPARE_MIN;
    if (keep > o->batch_size)
        keep = o->batch_size;
    size_t held = o->n - k; /* those that stay */
    if (keep > o->cap - held)
        keep = o->cap - held;
    for (size_t i = 0; i < k; i++) {
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

/* The batch is delivered (or refused): its readings go; the batch prepared
 * ahead, if any, is the batch now. */
static void pop_batch(hub_output_t *o)
{
    size_t k = o->bn;
    recycle(o, o->rs, k);
    memmove(o->rs, o->rs + k, (o->n - k) * sizeof(*o->rs));
    memmove(o->seqs, o->seqs + k, (o->n - k) * sizeof(*o->seqs));
    o->n -= k;
    o->bn = o->pn;
    o->pn = 0;
    o->lo = 0;
    o->depth = 0;
    o->slot_ok = o->bn > 0;
    o->slot = o->bn > 0 ? 1 - o->slot : o->slot;
    o->slot_lo = 0;
    o->slot_hi = o->bn;
}

static void free_all_readings(hub_output_t *o)
{
    o->bn = o->n;
    o->pn = 0;
    pop_batch(o);
}

/* A backlog: two batches or more stored and not delivered (after an
 * outage, a restart). Noted until its tail is taken (due). */
static void note_backlog(hub_output_t *o)
{
    if (o->backlog)
        return;
    struct hub_journal_stats js;
    hub_journal_stats(o->j, &js);
    o->backlog = js.next_seq >= o->acked + 2 * (uint64_t)o->batch_size;
}

/* Read stored records into rs until cap readings are held or the reader
 * has caught up (*caught_up), noting a backlog. Returns HUB_OK, or the reader's error
 * (the reader is then closed, to be reopened at next). */
static void add_read(hub_output_t *o, hub_reading_t *r, uint64_t seq)
{
    if (o->n == o->bn + o->pn)
        o->open_ns = hub_mono_ns();
    o->seqs[o->n] = seq;
    o->rs[o->n++] = r;
}

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
    while (o->n < o->cap) {
        if (o->held) {
            if (hub_clock_restamp(o->held) != HUB_OK) {
                *caught_up = true;
                return HUB_OK;
            }
            o->next = o->held_seq + 1;
            add_read(o, o->held, o->held_seq);
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
            add_read(o, r, seq);
        } else if (rc == HUB_EEMPTY) {
            count(o, 0, skipped);
            o->next += skipped;
            *caught_up = true;
            note_backlog(o);
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
    note_backlog(o);
    return HUB_OK;
}

/* How many open readings form the next batch now: 0 while they wait for
 * more (a batch that does not fill, in steady state, until flush_interval
 * has passed since the first); the tail of a backlog goes at once. */
static size_t due(hub_output_t *o, bool caught_up, int64_t now)
{
    size_t open = o->n - o->bn - o->pn;
    if (open == 0)
        return 0;
    if (open >= o->batch_size)
        return o->batch_size;
    if (caught_up && o->backlog) {
        o->backlog = false; /* the backlog's tail: steady state from here */
        return open;
    }
    if (o->stopping || now - o->open_ns >= o->flush_interval_ns)
        return open;
    return 0;
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
    const hub_reading_t *r = o->rs[o->lo];
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

/* After lo moved: drop the ranges it passed; the delivered position moves
 * up to lo, or past the batch when it is done. */
static void advance(hub_output_t *o)
{
    while (o->depth > 0 && o->ends[o->depth - 1] <= o->lo)
        o->depth--;
    if (o->lo < o->bn) {
        ack_to(o, o->seqs[o->lo]);
        return;
    }
    uint64_t to = o->n > o->bn ? o->seqs[o->bn] : o->next;
    pop_batch(o);
    ack_to(o, to);
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

/* Take the open readings as the next batch when they are due: as the
 * batch (bn == 0), or prepared ahead into the other slot while the batch's
 * request is on its way (async). A prepare that holds fewer cuts the batch
 * there; the rest stays open. A prepare that fails leaves them open: they
 * are prepared again, and the failure answered, when they are the batch. */
static void take(hub_output_t *o, bool caught_up, int64_t now)
{
    if (o->pn > 0 || (o->bn > 0 && !o->async))
        return;
    size_t k = due(o, caught_up, now);
    if (k == 0)
        return;
    if (o->bn == 0) {
        o->bn = k;
        o->lo = 0;
        o->depth = 0;
        o->slot_ok = false;
        return;
    }
    struct hub_out_answer ans;
    memset(&ans, 0, sizeof(ans));
    unsigned slot = 1 - o->slot;
    if (o->async->prepare(o->ctx, slot, o->rs + o->bn, k, &ans) != HUB_OUT_OK)
        return;
    o->pn = ans.done > 0 && ans.done < k ? ans.done : k;
}

/* Work done while the batch's request is on its way: persist the cursor of
 * the batch before, read on, prepare the next batch. */
static void meanwhile(hub_output_t *o)
{
    bool caught_up = true;
    commit_acked(o, false);
    if (read_some(o, &caught_up) != HUB_OK)
        caught_up = false;
    take(o, caught_up, hub_mono_ns());
}

/* Send [lo, lo + len) of the batch: through the slot (encoded first unless
 * it holds that range already; a request holding a prefix only pushes its
 * end, so that the range goes in parts), or through flush. */
static enum hub_out_result request(hub_output_t *o, size_t len, struct hub_out_answer *ans,
                                   bool *sent)
{
    *sent = false;
    if (!o->async)
        return *sent = true, o->flush(o->ctx, o->rs + o->lo, len, ans);
    if (!o->slot_ok || o->slot_lo != o->lo || o->slot_hi != o->lo + len) {
        o->slot_ok = false;
        enum hub_out_result res = o->async->prepare(o->ctx, o->slot, o->rs + o->lo, len, ans);
        if (res != HUB_OUT_OK)
            return res;
        size_t k = ans->done > 0 && ans->done < len ? ans->done : len;
        if (k < len && o->depth < OUT_MAX_DEPTH) {
            if (o->lo == 0 && o->depth == 0 && o->pn == 0) {
                o->bn = k; /* a new batch: the rest stays open, to fill up */
                if (o->n > k && o->pn == 0)
                    o->open_ns = hub_mono_ns() - o->flush_interval_ns; /* due now */
            } else {
                o->ends[o->depth++] = o->lo + k;
            }
            len = k;
        }
        o->slot_ok = true;
        o->slot_lo = o->lo;
        o->slot_hi = o->lo + len;
    }
    memset(ans, 0, sizeof(*ans));
    o->async->start(o->ctx, o->slot);
    *sent = true;
    meanwhile(o);
    return o->async->finish(o->ctx, o->slot, ans);
}

/* Offer the next range of the batch once. Returns how long to wait before
 * the next offer: 0 when something was delivered or the range was split. */
static int64_t offer(hub_output_t *o)
{
    struct hub_out_answer ans;
    char then[96];
    bool sent;

    memset(&ans, 0, sizeof(ans));
    size_t hi = o->depth ? o->ends[o->depth - 1] : o->bn;
    enum hub_out_result res = request(o, hi - o->lo, &ans, &sent);
    hi = o->depth ? o->ends[o->depth - 1] : o->bn; /* a prefix cut it */
    size_t len = hi - o->lo;
    ans.why[sizeof(ans.why) - 1] = 0;
    ans.kind[sizeof(ans.kind) - 1] = 0;
    if (sent)
        hub_metric_inc(
            o->m_responses[ans.status >= 100 && ans.status <= 599 ? ans.status / 100 : 0], 1);

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
        delivered(o, k);
        o->lo += k;
        advance(o);
        return 0;
    }

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

/* "812,344": n with thousands separators, for progress lines. */
static const char *grouped(char *buf, size_t len, uint64_t n)
{
    char digits[24];
    int d = snprintf(digits, sizeof(digits), "%" PRIu64, n);
    size_t k = 0;
    for (int i = 0; i < d && k + 2 < len; i++) {
        if (i > 0 && (d - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = 0;
    return buf;
}

/* Once a second: the backlog (readings stored, not yet delivered), the
 * delivery rate (a moving average) and the time left at that rate. A
 * backlog of more than a few batches (after an outage) is draining: a
 * progress line every OUT_PROGRESS_LOG_NS, and a last one when it is
 * delivered. */
static void progress(hub_output_t *o, int64_t now)
{
    if (o->tick_ns && now - o->tick_ns < OUT_TICK_NS)
        return;
    struct hub_journal_stats js;
    hub_journal_stats(o->j, &js);
    uint64_t backlog = js.next_seq > o->acked ? js.next_seq - o->acked : 0;
    bool big = backlog > 4 * (uint64_t)o->batch_size;
    pthread_mutex_lock(&o->mu);
    uint64_t delivered_now = o->st.delivered;
    double rate = o->st.rate;
    if (o->tick_ns) {
        double dt = (double)(now - o->tick_ns) / HUB_NS_PER_S;
        double inst = (double)(delivered_now - o->tick_delivered) / dt;
        rate = rate == 0 ? inst : 0.6 * rate + 0.4 * inst;
    }
    double eta = backlog && rate >= 1 ? (double)backlog / rate : 0;
    bool ok = o->st.state == HUB_OUT_STATE_OK;
    o->st.rate = rate;
    o->st.draining = big || (o->logged_ns && backlog > (uint64_t)o->batch_size);
    o->st.eta_s = eta;
    pthread_mutex_unlock(&o->mu);
    hub_metric_set(o->m_backlog, backlog);
    hub_metric_set(o->m_rate, (uint64_t)(rate + 0.5));
    hub_metric_set(o->m_eta, (uint64_t)(eta + 0.999));
    o->tick_ns = now;
    o->tick_delivered = delivered_now;

    char nb[32];
    if (big && (!o->logged_ns || now - o->logged_ns >= OUT_PROGRESS_LOG_NS)) {
        if (!o->logged_ns) {
            o->backlog_ns = now;
            o->backlog_from = delivered_now;
        }
        o->logged_ns = now;
        if (rate >= 1 && ok)
            hub_info(o->who, "backlog %s readings, draining %.0f/s, ~%.0f s left",
                     grouped(nb, sizeof(nb), backlog), rate, eta < 1 ? 1.0 : eta);
        else
            hub_info(o->who, "backlog %s readings%s", grouped(nb, sizeof(nb), backlog),
                     ok ? "" : ", none delivered now");
    } else if (!big && o->logged_ns && backlog <= (uint64_t)o->batch_size) {
        double took = (double)(now - o->backlog_ns) / HUB_NS_PER_S;
        uint64_t n = delivered_now - o->backlog_from;
        hub_info(o->who, "backlog delivered: %s readings in %.0f s (%.0f/s)",
                 grouped(nb, sizeof(nb), n), took, took > 0 ? (double)n / took : 0.0);
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
    o->acked = o->committed = o->next = seq;
    pthread_mutex_lock(&o->mu);
    o->st.cursor = seq;
    pthread_mutex_unlock(&o->mu);
    o->stopping = false;
    o->backlog = false;
    o->attempts = 0;
    committer_start(o);

    for (;;) {
        hub_beat(); /* the watchdog's heartbeat (hub/beat.h); waits beat too */
        int64_t now = hub_mono_ns();
        progress(o, now);
        if (!o->stopping && stop_requested(o)) {
            /* The grace counts from the stop request, not from when this loop
             * noticed it (a flush may have been in progress). */
            pthread_mutex_lock(&o->mu);
            int64_t asked = o->stop_ns, grace = o->no_grace ? 0 : o->stop_grace_ns;
            pthread_mutex_unlock(&o->mu);
            o->stopping = true;
            o->deadline_ns = grace > INT64_MAX - asked ? INT64_MAX : asked + grace;
        }
        if (o->stopping && now >= o->deadline_ns)
            break;

        bool caught_up = true;
        int rrc = HUB_OK;
        if (!o->async || o->bn == 0) /* else it reads while the batch is on its way */
            rrc = read_some(o, &caught_up);
        now = hub_mono_ns();
        if (o->bn == 0)
            take(o, caught_up, now);
        if (o->bn > 0) {
            int64_t d = offer(o);
            if (d > 0) {
                commit_acked(o, true);
                if (o->stopping) { /* stop already asked: wait, but not past the grace */
                    int64_t left = o->deadline_ns - hub_mono_ns();
                    wait_ns(o, d < left ? d : left, false);
                } else {
                    wait_ns(o, d, true);
                }
            }
            continue;
        }
        /* Nothing to send. Move the cursor past records that were skipped. */
        if (o->n == 0 && o->next > o->acked)
            ack_to(o, o->next);
        commit_acked(o, true);
        if (o->stopping)
            break; /* nothing due and nothing more readable */
        if (rrc != HUB_OK) {
            wait_ns(o, OUT_READ_RETRY_NS, true);
            continue;
        }
        if (!caught_up)
            continue;
        int64_t t = OUT_IDLE_WAIT_NS;
        if (o->n > 0 && o->flush_interval_ns - (now - o->open_ns) < t)
            t = o->flush_interval_ns - (now - o->open_ns);
        if (stop_requested(o))
            continue;
        if (o->held) { /* the journal has more; what is wanted is the clock */
            wait_ns(o, t, true);
            continue;
        }
        /* With readings waiting, wake when a batch is full or its flush
         * interval is up, not at every append: a thousand readings a second
         * cost the output a thread switch per batch, not per reading. */
        uint64_t want = o->next;
        if (o->n > 0 && o->n < o->batch_size)
            want = o->next + (uint64_t)(o->batch_size - o->n) - 1;
        hub_journal_wait(o->j, want, (int)((t + HUB_NS_PER_MS - 1) / HUB_NS_PER_MS));
    }

    if (o->n == 0 && o->next > o->acked) /* a tail of skipped records */
        ack_to(o, o->next);
    commit_acked(o, true);
    committer_stop(o);
    if (o->n > 0)
        hub_warn(o->who,
                 "stopping with a batch of %zu undelivered after %u attempts; it stays"
                 " in the journal from seq %" PRIu64,
                 o->n - o->lo, o->attempts, o->committed);
    free_all_readings(o);
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
    free_all_readings(o);
    free_spares(o);
    hub_reading_free(o->held);
    if (o->rd)
        hub_journal_reader_free(o->rd);
    hub_buf_free(&o->payload);
    hub_buf_free(&o->line);
    free(o->rs);
    free(o->seqs);
    free(o->spare);
    hub_cond_destroy(&o->mu, &o->cond);
    hub_cond_destroy(&o->cmu, &o->ccond);
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
