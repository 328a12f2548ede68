/* tests/unit/test_hub_output.c — the delivery loop against a real journal in a
 * temporary directory, with a scripted stand-in for the output driver. */
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/deadletter.h"
#include "hub/journal.h"
#include "hub/log.h"
#include "hub/metrics.h"
#include "hub/output.h"
#include "hub/reading.h"

#define MS HUB_NS_PER_MS
#define MAX_CALLS 512
#define MAX_VALS 20000

/* ---- the driver stand-in -------------------------------------------------- */

struct call {
    size_t n;
    size_t off;               /* first value in fake.vals */
    uint64_t cursor_at_call;  /* hub_output_stats().cursor during the call */
    uint64_t peek_at_call;    /* the persisted cursor during the call */
    int64_t at_ns;            /* monotonic time of the call */
    hub_reading_t *first_ptr; /* identity of the first reading */
};

struct fake {
    pthread_mutex_t mu;
    hub_journal_t *j;
    hub_output_t *o;
    const char *name;
    const enum hub_out_result *script; /* answers for the first calls */
    size_t script_len;
    enum hub_out_result dflt; /* answer after the script */
    int64_t retry_after_ns;
    void (*hook)(struct fake *f, size_t call); /* run inside a call */
    size_t partial; /* > 0: an OK delivers at most this many (ans->done) */
    /* The server's view of the data: a batch holding a value v with
     * refuse[v] is refused (REJECT); one of more than max_n readings is
     * TOO_LARGE (0: no limit). Checked before the script. */
    bool refuse[64];
    size_t max_n;
    const char *kind;         /* ans->kind of a failure */
    const char *const *kinds; /* or per call, for the first script_len calls */
    struct call calls[MAX_CALLS];
    size_t ncalls;
    int64_t vals[MAX_VALS];
    size_t nvals;
    int bad; /* a reading that did not look like what was appended */
    /* The two-step driver (struct hub_out_async): what each slot holds,
     * which slot was started, and the order of the steps as letters: P
     * prepare, S start, F finish, each followed by the first value of the
     * slot's range. prepare_max > 0: a request holds at most that many. */
    hub_reading_t *slot_rs[2][MAX_VALS / 16];
    size_t slot_n[2];
    int started; /* -1: none */
    size_t prepares, prepare_max;
    char steps[4096];
    size_t nsteps;
};

static enum hub_out_result fake_flush(void *ctx, hub_reading_t *const *readings, size_t n,
                                      struct hub_out_answer *ans)
{
    struct fake *f = ctx;
    struct hub_output_stats st;
    uint64_t peek = 0; /* no persisted cursor yet: it starts at 0 */
    hub_output_stats(f->o, &st);
    if (hub_journal_cursor_peek(f->j, f->name, &peek) != HUB_OK)
        peek = 0;
    pthread_mutex_lock(&f->mu);
    size_t k = f->ncalls;
    if (k < MAX_CALLS) {
        struct call *c = &f->calls[k];
        c->n = n;
        c->off = f->nvals;
        c->cursor_at_call = st.cursor;
        c->peek_at_call = peek;
        c->at_ns = hub_mono_ns();
        c->first_ptr = n ? readings[0] : NULL;
        for (size_t i = 0; i < n && f->nvals < MAX_VALS; i++) {
            const hub_reading_t *r = readings[i];
            const struct hub_field *fl = hub_reading_field(r, 0);
            if (!fl || fl->type != HUB_FIELD_INT || strcmp(hub_reading_measurement(r), "m") ||
                hub_reading_time(r) != 1000 + fl->v.i ||
                strcmp(hub_reading_tag_value(r, "dev") ? hub_reading_tag_value(r, "dev") : "",
                       "d1"))
                f->bad++;
            f->vals[f->nvals++] = fl ? fl->v.i : -1;
        }
        f->ncalls++;
    }
    enum hub_out_result res = k < f->script_len ? f->script[k] : f->dflt;
    if (res == HUB_OUT_OK && f->max_n && n > f->max_n)
        res = HUB_OUT_TOO_LARGE;
    for (size_t i = 0; i < n && res == HUB_OUT_OK; i++) {
        const struct hub_field *fl = hub_reading_field(readings[i], 0);
        if (fl && fl->v.i >= 0 && fl->v.i < 64 && f->refuse[fl->v.i])
            res = HUB_OUT_REJECT;
    }
    if (k < MAX_CALLS && res == HUB_OUT_OK && f->partial && n > f->partial) {
        ans->done = f->partial;
        f->nvals = f->calls[k].off + f->partial; /* what was not taken comes again */
    }
    void (*hook)(struct fake *, size_t) = f->hook;
    pthread_mutex_unlock(&f->mu);
    if (hook)
        hook(f, k);
    if (res != HUB_OUT_OK) {
        ans->retry_after_ns = f->retry_after_ns;
        snprintf(ans->why, sizeof(ans->why), "scripted answer %d on call %zu", (int)res, k);
        const char *kind = f->kinds && k < f->script_len ? f->kinds[k] : f->kind;
        if (kind)
            snprintf(ans->kind, sizeof(ans->kind), "%s", kind);
    }
    return res;
}

/* ---- the two-step driver stand-in: the same answers as fake_flush ------ */

static void step(struct fake *f, char what, hub_reading_t *const *rs, size_t n)
{
    const struct hub_field *fl = n ? hub_reading_field(rs[0], 0) : NULL;
    pthread_mutex_lock(&f->mu);
    int k = snprintf(f->steps + f->nsteps, sizeof(f->steps) - f->nsteps, "%c%" PRId64 " ", what,
                     fl ? fl->v.i : (int64_t)-1);
    if (k > 0 && (size_t)k < sizeof(f->steps) - f->nsteps)
        f->nsteps += (size_t)k;
    pthread_mutex_unlock(&f->mu);
}

static enum hub_out_result fake_prepare(void *ctx, unsigned slot, hub_reading_t *const *readings,
                                        size_t n, struct hub_out_answer *ans)
{
    struct fake *f = ctx;
    assert_true(slot < 2);
    assert_true(f->started != (int)slot); /* never the slot on its way */
    if (f->prepare_max && n > f->prepare_max) {
        ans->done = f->prepare_max;
        n = f->prepare_max;
    }
    assert_true(n <= MAX_VALS / 16);
    memcpy(f->slot_rs[slot], readings, n * sizeof(*readings));
    f->slot_n[slot] = n;
    f->prepares++;
    step(f, 'P', readings, n);
    return HUB_OUT_OK;
}

static void fake_start(void *ctx, unsigned slot)
{
    struct fake *f = ctx;
    assert_true(f->started == -1);
    f->started = (int)slot;
    step(f, 'S', f->slot_rs[slot], f->slot_n[slot]);
}

static enum hub_out_result fake_finish(void *ctx, unsigned slot, struct hub_out_answer *ans)
{
    struct fake *f = ctx;
    assert_int_equal(f->started, (int)slot);
    step(f, 'F', f->slot_rs[slot], f->slot_n[slot]);
    enum hub_out_result res = fake_flush(ctx, f->slot_rs[slot], f->slot_n[slot], ans);
    f->started = -1;
    return res;
}

static const struct hub_out_async fake_async = {fake_prepare, fake_start, fake_finish};

static size_t ncalls(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->ncalls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Wait until the fake has seen at least k calls; false after timeout_ms. */
static bool wait_calls(struct fake *f, size_t k, int timeout_ms)
{
    int64_t end = hub_mono_ns() + timeout_ms * MS;
    while (ncalls(f) < k) {
        if (hub_mono_ns() > end)
            return false;
        usleep(500);
    }
    return true;
}

/* ---- fixture -------------------------------------------------------------- */

struct fx {
    char dir[64];
    hub_journal_t *j;
    struct fake f;
    hub_output_t *o;
    pthread_t thread;
    bool running;
    int run_rc;
    int64_t run_ended_ns;
};

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void open_journal(struct fx *x)
{
    struct hub_journal_opts jo = {.dir = x->dir};
    char err[256] = "";
    int rc = hub_journal_open(&jo, &x->j, err, sizeof(err));
    if (rc)
        fprintf(stderr, "journal: %s\n", err);
    assert_int_equal(rc, HUB_OK);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    strcpy(x->dir, "/tmp/test_hub_output.XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    open_journal(x);
    pthread_mutex_init(&x->f.mu, NULL);
    x->f.j = x->j;
    x->f.name = "ioc";
    x->f.dflt = HUB_OUT_OK;
    x->f.started = -1;
    *state = x;
    return 0;
}

static void *run_thread(void *arg)
{
    struct fx *x = arg;
    x->run_rc = hub_output_run(x->o);
    x->run_ended_ns = hub_mono_ns();
    return NULL;
}

static void start(struct fx *x, const struct hub_output_opts *opts)
{
    assert_int_equal(hub_output_new(x->j, opts, fake_flush, &x->f, &x->o), HUB_OK);
    x->f.o = x->o;
    x->f.name = opts->name;
    x->run_rc = -999;
    assert_int_equal(pthread_create(&x->thread, NULL, run_thread, x), 0);
    x->running = true;
}

/* Stop the loop, wait for run() to return; returns how long that took. */
static int64_t stop(struct fx *x)
{
    int64_t t0 = hub_mono_ns();
    hub_output_stop(x->o);
    pthread_join(x->thread, NULL);
    x->running = false;
    assert_int_equal(x->run_rc, HUB_OK);
    return x->run_ended_ns - t0;
}

static void reset_fake(struct fx *x)
{
    pthread_mutex_lock(&x->f.mu);
    x->f.ncalls = 0;
    x->f.nvals = 0;
    x->f.script = NULL;
    x->f.script_len = 0;
    x->f.dflt = HUB_OUT_OK;
    x->f.hook = NULL;
    x->f.bad = 0;
    x->f.retry_after_ns = 0;
    memset(x->f.refuse, 0, sizeof(x->f.refuse));
    x->f.max_n = 0;
    x->f.kind = NULL;
    x->f.kinds = NULL;
    pthread_mutex_unlock(&x->f.mu);
}

static int teardown(void **state)
{
    struct fx *x = *state;
    if (x->running)
        stop(x);
    hub_output_free(x->o);
    if (x->j)
        hub_journal_close(x->j);
    pthread_mutex_destroy(&x->f.mu);
    nftw(x->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(x);
    return 0;
}

/* Append readings with values [from, from + k): measurement m, tag dev=d1,
 * field i = value, time 1000 + value. */
static void append_readings(hub_journal_t *j, int64_t from, int64_t k)
{
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    for (int64_t v = from; v < from + k; v++) {
        hub_reading_t *r = hub_reading_new("m", 1000 + v);
        assert_int_equal(hub_reading_add_tag(r, "dev", "d1"), HUB_OK);
        assert_int_equal(hub_reading_add_int(r, "i", v), HUB_OK);
        hub_buf_reset(&b);
        assert_int_equal(hub_reading_encode(r, &b), HUB_OK);
        assert_int_equal(hub_journal_append(j, b.data, b.len, NULL), HUB_OK);
        hub_reading_free(r);
    }
    hub_buf_free(&b);
}

/* The persisted cursor of name; UINT64_MAX if none was ever committed. */
static uint64_t peek(struct fx *x, const char *name)
{
    uint64_t seq = 0;
    int rc = hub_journal_cursor_peek(x->j, name, &seq);
    if (rc == HUB_EEMPTY)
        return UINT64_MAX;
    assert_int_equal(rc, HUB_OK);
    return seq;
}

static struct hub_output_opts opts_of(size_t batch, int64_t interval_ns)
{
    struct hub_output_opts o = {
        .name = "ioc",
        .batch_size = batch,
        .flush_interval_ns = interval_ns,
        .backoff_base_ns = 1 * MS,
        .backoff_max_ns = 10 * MS,
        .stop_grace_ns = 200 * MS,
    };
    return o;
}

/* The values the fake saw in call k are exactly [from, from + n). */
static void assert_call(struct fake *f, size_t k, int64_t from, size_t n)
{
    assert_true(k < f->ncalls);
    assert_int_equal(f->calls[k].n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->vals[f->calls[k].off + i], from + (int64_t)i);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_new_rejects_bad_options(void **state)
{
    struct fx *x = *state;
    hub_output_t *o = (hub_output_t *)0x1;
    struct hub_output_opts op = opts_of(10, 0);
    op.batch_size = 0;
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    assert_null(o);
    op = opts_of(10, 0);
    op.name = "";
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    op.name = NULL;
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    op.name = "bad/name";
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    op.name = "ioc";
    op.flush_interval_ns = -1;
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    op = opts_of(10, 0);
    assert_int_equal(hub_output_new(x->j, &op, NULL, &x->f, &o), HUB_EINVAL);
    assert_int_equal(hub_output_new(NULL, &op, fake_flush, &x->f, &o), HUB_EINVAL);
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &o), HUB_OK);
    struct hub_output_stats st;
    hub_output_stats(o, &st);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.cursor, 0);
    hub_output_free(o);
    hub_output_free(NULL);
}

/* A driver that sends only a prefix (its request size limit): the rest is
 * offered again at once, in order, the cursor following what went. */
static void test_partial_delivery(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 10);
    x->f.partial = 3;
    struct hub_output_opts op = opts_of(10, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 4, 5000));
    usleep(100 * 1000);
    assert_int_equal(ncalls(&x->f), 4);
    assert_int_equal(x->f.calls[0].n, 10);
    assert_int_equal(x->f.calls[1].n, 7);
    assert_int_equal(x->f.calls[2].n, 4);
    assert_int_equal(x->f.calls[3].n, 1);
    assert_int_equal(x->f.calls[1].cursor_at_call, 3);
    assert_int_equal(x->f.calls[3].cursor_at_call, 9);
    assert_int_equal(x->f.nvals, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(x->f.vals[i], (int64_t)i);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 10);
    assert_int_equal(st.cursor, 10);
    assert_int_equal(st.retries, 0);
    assert_int_equal(x->f.bad, 0);
}

/* 25 stored readings, batch_size 10, a long flush_interval: a backlog (two
 * batches or more stored), so two full batches go at once and the tail of 5
 * right after them, without waiting for the interval. From then on, steady
 * state: readings that do not fill a batch wait (the interval, or the
 * stop); a batch that fills goes at once. */
static void test_batch_size_respected(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 25);
    struct hub_output_opts op = opts_of(10, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 3, 5000));
    struct hub_output_stats st;
    for (int i = 0; i < 1000; i++) {
        hub_output_stats(x->o, &st);
        if (st.cursor == 25)
            break;
        usleep(1000);
    }
    assert_int_equal(st.delivered, 25);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.cursor, 25);
    assert_int_equal(peek(x, "ioc"), 25);
    /* Steady state: 7 arrive and wait for the interval. */
    append_readings(x->j, 25, 7);
    usleep(150 * 1000);
    assert_int_equal(ncalls(&x->f), 3);
    /* 7 + 5 = 12 fills a batch of 10, 2 left waiting. */
    append_readings(x->j, 32, 5);
    assert_true(wait_calls(&x->f, 4, 5000));
    usleep(50 * 1000);
    assert_int_equal(ncalls(&x->f), 4);
    /* The stop flushes the rest. */
    stop(x);
    assert_int_equal(ncalls(&x->f), 5);
    assert_call(&x->f, 0, 0, 10);
    assert_call(&x->f, 1, 10, 10);
    assert_call(&x->f, 2, 20, 5);
    assert_call(&x->f, 3, 25, 10);
    assert_call(&x->f, 4, 35, 2);
    assert_int_equal(x->f.bad, 0);
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 37);
    assert_int_equal(st.batches, 5);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.cursor, 37);
    assert_int_equal(peek(x, "ioc"), 37);
}

/* 15 stored readings (less than two batches: no backlog): one full batch
 * goes at once, the 5 left wait for the interval as in steady state. */
static void test_short_backlog_waits(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 15);
    struct hub_output_opts op = opts_of(10, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    usleep(150 * 1000);
    assert_int_equal(ncalls(&x->f), 1);
    stop(x);
    assert_int_equal(ncalls(&x->f), 2);
    assert_call(&x->f, 0, 0, 10);
    assert_call(&x->f, 1, 10, 5);
    assert_int_equal(peek(x, "ioc"), 15);
}

/* A batch that does not fill goes after flush_interval, not before; readings
 * that arrive meanwhile join it. */
static void test_flush_interval_respected(void **state)
{
    struct fx *x = *state;
    struct hub_output_opts op = opts_of(100, 80 * MS);
    start(x, &op);
    usleep(30 * 1000); /* the loop is idle, waiting */
    assert_int_equal(ncalls(&x->f), 0);
    int64_t t0 = hub_mono_ns();
    append_readings(x->j, 0, 2);
    usleep(20 * 1000);
    append_readings(x->j, 2, 1);
    assert_true(wait_calls(&x->f, 1, 5000));
    int64_t waited = x->f.calls[0].at_ns - t0;
    assert_true(waited >= 80 * MS);
    assert_true(waited < 80 * MS + 400 * MS);
    assert_call(&x->f, 0, 0, 3);

    /* the next batch has its own interval, counted from its first reading */
    int64_t t1 = hub_mono_ns();
    append_readings(x->j, 3, 1);
    assert_true(wait_calls(&x->f, 2, 5000));
    waited = x->f.calls[1].at_ns - t1;
    assert_true(waited >= 80 * MS);
    assert_true(waited < 80 * MS + 400 * MS);
    assert_call(&x->f, 1, 3, 1);
    stop(x);
    assert_int_equal(ncalls(&x->f), 2);
    assert_int_equal(peek(x, "ioc"), 4);
}

/* Append 3 more records from inside the first (failing) flush: the retries
 * must carry exactly the first batch, not a grown one. */
static void hook_append_on_first(struct fake *f, size_t call)
{
    if (call == 0)
        append_readings(f->j, 5, 3);
}

static void test_retry_then_ok_same_batch(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_RETRY, HUB_OUT_RETRY, HUB_OUT_OK};
    x->f.script = script;
    x->f.script_len = 3;
    x->f.hook = hook_append_on_first;
    append_readings(x->j, 0, 5);
    struct hub_output_opts op = opts_of(10, 0); /* flush whatever is there */
    start(x, &op);
    assert_true(wait_calls(&x->f, 4, 5000));
    stop(x);
    assert_int_equal(ncalls(&x->f), 4);
    for (size_t k = 0; k < 3; k++) {
        assert_call(&x->f, k, 0, 5);
        /* the same reading objects, the cursor not moved before the OK */
        assert_ptr_equal(x->f.calls[k].first_ptr, x->f.calls[0].first_ptr);
        assert_int_equal(x->f.calls[k].cursor_at_call, 0);
        assert_int_equal(x->f.calls[k].peek_at_call, 0);
    }
    assert_call(&x->f, 3, 5, 3);
    assert_int_equal(x->f.calls[3].cursor_at_call, 5);
    assert_int_equal(x->f.calls[3].peek_at_call, 5);
    assert_int_equal(x->f.bad, 0);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 8);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.cursor, 8);
    assert_int_equal(peek(x, "ioc"), 8);
}

/* A server's Retry-After (capped at backoff_max) decides the delay. */
static void test_retry_after_honoured(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_RETRY, HUB_OUT_OK};
    x->f.script = script;
    x->f.script_len = 2;
    x->f.retry_after_ns = 60 * MS;
    append_readings(x->j, 0, 1);
    struct hub_output_opts op = opts_of(10, 0);
    op.backoff_max_ns = 100 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 2, 5000));
    int64_t gap = x->f.calls[1].at_ns - x->f.calls[0].at_ns;
    assert_true(gap >= 60 * MS);
    assert_true(gap < 60 * MS + 300 * MS);
    stop(x);
    assert_int_equal(peek(x, "ioc"), 1);
}

/* A new loop on the same cursor, the server accepting: one flush of
 * [from, from + n), the cursor committed past it. */
static void rerun_sends(struct fx *x, const struct hub_output_opts *op, int64_t from, size_t n)
{
    hub_output_free(x->o);
    x->o = NULL;
    reset_fake(x);
    start(x, op);
    assert_true(wait_calls(&x->f, 1, 5000));
    stop(x);
    assert_int_equal(ncalls(&x->f), 1);
    assert_call(&x->f, 0, from, n);
    assert_int_equal(peek(x, "ioc"), (uint64_t)from + n);
}

/* A retryable failure never advances: the same readings come again, the
 * cursor stays. */
static void test_retry_never_advances(void **state)
{
    struct fx *x = *state;
    x->f.dflt = HUB_OUT_RETRY;
    append_readings(x->j, 0, 4);
    struct hub_output_opts op = opts_of(10, 0);
    op.stop_grace_ns = 50 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 5, 5000));
    int64_t took = stop(x);
    assert_true(took >= 50 * MS); /* kept trying for the grace */
    assert_true(took < 50 * MS + 500 * MS);
    size_t n = ncalls(&x->f);
    assert_true(n >= 6);
    for (size_t k = 0; k < n; k++) {
        assert_call(&x->f, k, 0, 4);
        assert_int_equal(x->f.calls[k].peek_at_call, 0);
    }
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.batches, 0);
    assert_int_equal(st.retries, n);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.cursor, 0);
    assert_int_equal(st.state, HUB_OUT_STATE_RETRYING);
    assert_true(st.retrying_since_ns > 0);
    assert_true(peek(x, "ioc") == UINT64_MAX); /* never committed */

    /* The server accepts again: a new loop sends the same readings. */
    rerun_sends(x, &op, 0, 4);
    hub_output_stats(x->o, &st);
    assert_int_equal(st.state, HUB_OUT_STATE_OK);
    assert_int_equal(st.retrying_since_ns, 0);
}

/* hub_output_stop_now (a reload): no grace of retries; what was delivered
 * is committed, the rest waits for the next loop, which sends it once. */
static void test_stop_now_skips_the_grace(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 4);
    struct hub_output_opts op = opts_of(4, 0);
    op.stop_grace_ns = 5000 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    pthread_mutex_lock(&x->f.mu);
    x->f.dflt = HUB_OUT_RETRY;
    pthread_mutex_unlock(&x->f.mu);
    append_readings(x->j, 4, 4);
    assert_true(wait_calls(&x->f, 3, 5000));
    int64_t t0 = hub_mono_ns();
    hub_output_stop_now(x->o);
    pthread_join(x->thread, NULL);
    x->running = false;
    assert_int_equal(x->run_rc, HUB_OK);
    assert_true(x->run_ended_ns - t0 < 1000 * MS); /* not the 5 s grace */
    assert_int_equal(peek(x, "ioc"), 4);
    rerun_sends(x, &op, 4, 4);
}

static size_t count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!needle || strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* Wait until the persisted cursor reaches seq. */
static bool wait_peek(struct fx *x, const char *name, uint64_t seq, int timeout_ms)
{
    int64_t end = hub_mono_ns() + timeout_ms * MS;
    while (peek(x, name) == UINT64_MAX || peek(x, name) < seq) {
        if (hub_mono_ns() > end)
            return false;
        usleep(1000);
    }
    return true;
}

static int fmt_value(const hub_reading_t *r, struct hub_buf *out)
{
    return hub_buf_printf(out, "m i=%" PRId64 "i\n", hub_reading_field(r, 0)->v.i);
}

/* One reading the server refuses does not block the rest: the batch is
 * bisected, every other reading is delivered in order, the refused one goes
 * to the dead-letter file with the server's reason, and later readings flow
 * on. */
static void test_reject_isolates_bad_reading(void **state)
{
    struct fx *x = *state;
    char dlpath[300];
    char err[256];
    struct hub_deadletter *dl = NULL;
    snprintf(dlpath, sizeof(dlpath), "%s/dead.jsonl", x->dir);
    assert_int_equal(hub_deadletter_open(dlpath, 0, &dl, err, sizeof(err)), HUB_OK);
    x->f.refuse[11] = true;
    x->f.kind = "HTTP 400";
    append_readings(x->j, 0, 32);
    struct hub_output_opts op = opts_of(32, 0);
    hub_metrics_t *m = hub_metrics_new(16);
    op.deadletter = dl;
    op.format = fmt_value;
    op.metrics = m;
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 32, 5000));
    append_readings(x->j, 32, 8); /* later readings flow on */
    assert_true(wait_peek(x, "ioc", 40, 5000));
    stop(x);

    /* every value but 11, each delivered once, in order */
    assert_int_equal(x->f.bad, 0);
    int64_t want = 0;
    size_t got = 0;
    for (size_t k = 0; k < ncalls(&x->f); k++) {
        struct call *c = &x->f.calls[k];
        bool refused = false;
        for (size_t i = 0; i < c->n; i++)
            refused |= x->f.vals[c->off + i] == 11;
        if (refused)
            continue; /* that request was not delivered */
        for (size_t i = 0; i < c->n; i++) {
            if (want == 11)
                want++;
            assert_int_equal(x->f.vals[c->off + i], want);
            want++;
            got++;
        }
    }
    assert_int_equal(got, 39);
    /* bisecting 32 down to one costs 2 requests per halving, not one per
     * reading: the first batch and 5 halvings */
    size_t first_batch_calls = 0;
    for (size_t k = 0; k < ncalls(&x->f); k++)
        first_batch_calls += x->f.calls[k].n && x->f.vals[x->f.calls[k].off] < 32;
    assert_int_equal(first_batch_calls, 1 + 2 * 5);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 39);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.deadletter_errors, 0);
    assert_int_equal(st.splits, 5);
    assert_int_equal(st.cursor, 40);
    assert_int_equal(st.state, HUB_OUT_STATE_OK);
    assert_int_equal(hub_metrics_sum(m, "cityhub_output_delivered_total"), 39);
    assert_int_equal(hub_metrics_sum(m, "cityhub_output_rejected_total"), 1);
    assert_int_equal(hub_metrics_sum(m, "cityhub_output_splits_total"), 5);
    assert_int_equal(hub_metrics_sum(m, "cityhub_output_alarm"), 0);
    hub_output_free(x->o); /* before the registry its handles point into */
    x->o = NULL;
    hub_metrics_free(m);
    hub_deadletter_close(dl);
    assert_int_equal(count_lines(dlpath, NULL), 1);
    assert_int_equal(count_lines(dlpath, "\"source\":\"output:ioc\",\"seq\":\"11\","), 1);
    assert_int_equal(count_lines(dlpath, "\"reason\":\"scripted answer 2 on call"), 1);
    assert_int_equal(count_lines(dlpath, "\"payload\":\"m i=11i\"}"), 1);
}

/* A batch where every reading is refused: each ends in the dead-letter file
 * (without one, each is logged and counted), the cursor moves on. */
static void test_reject_all(void **state)
{
    struct fx *x = *state;
    for (int v = 0; v < 6; v++)
        x->f.refuse[v] = true;
    append_readings(x->j, 0, 6);
    append_readings(x->j, 6, 2);
    struct hub_output_opts op = opts_of(8, 0);
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 8, 5000));
    stop(x);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.rejected, 6);
    assert_int_equal(st.deadletter_errors, 6); /* no file to keep them in */
    assert_int_equal(st.delivered, 2);
    assert_int_equal(st.cursor, 8);
}

/* 413: halves until each part fits; nothing is refused or dead-lettered. */
static void test_too_large_splits(void **state)
{
    struct fx *x = *state;
    x->f.max_n = 5;
    append_readings(x->j, 0, 24);
    struct hub_output_opts op = opts_of(24, 0);
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 24, 5000));
    stop(x);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 24);
    assert_int_equal(st.rejected, 0);
    /* 24 -> 12 -> 6 -> 3: delivered in eight parts of 3, in order */
    int64_t want = 0;
    for (size_t k = 0; k < ncalls(&x->f); k++) {
        struct call *c = &x->f.calls[k];
        if (c->n > 5)
            continue;
        assert_int_equal(c->n, 3);
        for (size_t i = 0; i < c->n; i++)
            assert_int_equal(x->f.vals[c->off + i], want++);
    }
    assert_int_equal(want, 24);
}

/* 401/403/404: the output stops and raises an alarm; readings stay in the
 * journal; it tries again only every alarm_retry, and clears the alarm when
 * the server accepts. */
static void test_alarm_waits_and_clears(void **state)
{
    struct fx *x = *state;
    x->f.dflt = HUB_OUT_ALARM;
    x->f.kind = "HTTP 401";
    append_readings(x->j, 0, 3);
    struct hub_output_opts op = opts_of(3, 0);
    op.alarm_retry_ns = 300 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 2, 5000));
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.state, HUB_OUT_STATE_ALARM);
    assert_true(!strncmp(st.alarm, "scripted answer 4 on call ", 26));
    assert_int_equal(st.cursor, 0);
    assert_int_equal(st.rejected, 0);
    assert_true(x->f.calls[1].at_ns - x->f.calls[0].at_ns >= 300 * MS);
    pthread_mutex_lock(&x->f.mu);
    x->f.dflt = HUB_OUT_OK;
    pthread_mutex_unlock(&x->f.mu);
    assert_true(wait_peek(x, "ioc", 3, 5000));
    stop(x);
    hub_output_stats(x->o, &st);
    assert_int_equal(st.state, HUB_OUT_STATE_OK);
    assert_string_equal(st.alarm, "");
    assert_int_equal(st.delivered, 3);
}

/* Each kind of failure is logged the first time it happens, even right
 * after another kind was. */
static void test_each_failure_kind_logged(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_RETRY, HUB_OUT_RETRY, HUB_OUT_RETRY,
                                                 HUB_OUT_RETRY};
    static const char *const kinds[] = {"HTTP 500", "HTTP 500", "timeout", "HTTP 429"};
    char logpath[300];
    snprintf(logpath, sizeof(logpath), "%s/log", x->dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *lf = fopen(logpath, "w");
    assert_non_null(lf);
    dup2(fileno(lf), 2);
    enum hub_log_level was = hub_log_threshold;
    hub_log_set_level(HUB_LOG_INFO);
    x->f.script = script;
    x->f.script_len = 4;
    x->f.kinds = kinds;
    append_readings(x->j, 0, 2);
    struct hub_output_opts op = opts_of(2, 0);
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 2, 5000));
    stop(x);
    fflush(stderr);
    hub_log_set_level(was);
    dup2(saved, 2);
    close(saved);
    fclose(lf);
    assert_int_equal(count_lines(logpath, "not delivered: scripted answer"), 3);
    assert_int_equal(count_lines(logpath, "call 0"), 1);
    assert_int_equal(count_lines(logpath, "call 1"), 0); /* a second 500 within the minute */
    assert_int_equal(count_lines(logpath, "call 2"), 1);
    assert_int_equal(count_lines(logpath, "call 3"), 1);
    assert_int_equal(count_lines(logpath, "delivering again after 4 failed attempts"), 1);
}

/* The cursor survives closing the journal; a second loop resumes after it
 * and another output's cursor is independent. */
static void test_cursor_persisted_and_resumed(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 7);
    struct hub_output_opts op = opts_of(7, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    stop(x);
    assert_call(&x->f, 0, 0, 7);
    hub_output_free(x->o);
    x->o = NULL;
    hub_journal_close(x->j);
    x->j = NULL;

    open_journal(x);
    x->f.j = x->j;
    assert_int_equal(peek(x, "ioc"), 7);
    append_readings(x->j, 7, 3);
    reset_fake(x);
    op = opts_of(3, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    stop(x);
    assert_int_equal(ncalls(&x->f), 1);
    assert_call(&x->f, 0, 7, 3);
    assert_int_equal(x->f.calls[0].cursor_at_call, 7);
    assert_int_equal(peek(x, "ioc"), 10);
    hub_output_free(x->o);
    x->o = NULL;

    /* a second output starts from the beginning */
    reset_fake(x);
    op = opts_of(100, 60 * HUB_NS_PER_S);
    op.name = "live";
    start(x, &op);
    stop(x);
    assert_int_equal(ncalls(&x->f), 1);
    assert_call(&x->f, 0, 0, 10);
    assert_int_equal(peek(x, "live"), 10);
    assert_int_equal(peek(x, "ioc"), 10);
}

/* Stop asked before run(): everything stored is sent (in batches), no
 * waiting for flush_interval, and run() returns. */
static void test_stop_drains_pending(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 25);
    struct hub_output_opts op = opts_of(10, 60 * HUB_NS_PER_S);
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &x->o), HUB_OK);
    x->f.o = x->o;
    hub_output_stop(x->o);
    int64_t t0 = hub_mono_ns();
    assert_int_equal(hub_output_run(x->o), HUB_OK);
    assert_true(hub_mono_ns() - t0 < 200 * MS);
    assert_int_equal(ncalls(&x->f), 3);
    assert_call(&x->f, 0, 0, 10);
    assert_call(&x->f, 1, 10, 10);
    assert_call(&x->f, 2, 20, 5);
    assert_int_equal(peek(x, "ioc"), 25);
}

/* Stop while the server keeps failing: the loop retries (with its backoff)
 * for the grace, then returns; the cursor stays at what was delivered. */
static void test_stop_gives_up_after_grace(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_OK};
    x->f.script = script;
    x->f.script_len = 1;
    x->f.dflt = HUB_OUT_RETRY;
    append_readings(x->j, 0, 15);
    struct hub_output_opts op = opts_of(10, 0);
    op.stop_grace_ns = 100 * MS;
    op.backoff_base_ns = 30 * MS;
    op.backoff_max_ns = 30 * MS; /* each wait in [15, 30] ms */
    start(x, &op);
    assert_true(wait_calls(&x->f, 2, 5000));
    int64_t took = stop(x);
    assert_true(took >= 100 * MS);
    assert_true(took < 100 * MS + 400 * MS);
    size_t n = ncalls(&x->f);
    /* roughly grace / backoff attempts, not a busy loop */
    assert_true(n >= 3);
    assert_true(n <= 2 + 100 / 15 + 2);
    assert_call(&x->f, 0, 0, 10);
    for (size_t k = 1; k < n; k++)
        assert_call(&x->f, k, 10, 5);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 10);
    assert_int_equal(st.retries, n - 1);
    assert_int_equal(st.cursor, 10);
    assert_int_equal(peek(x, "ioc"), 10);
}

/* A stop while waiting out a long backoff ends the wait at once. */
static void test_stop_interrupts_backoff(void **state)
{
    struct fx *x = *state;
    x->f.dflt = HUB_OUT_RETRY;
    append_readings(x->j, 0, 1);
    struct hub_output_opts op = opts_of(10, 0);
    op.backoff_base_ns = 10 * HUB_NS_PER_S;
    op.backoff_max_ns = 10 * HUB_NS_PER_S;
    op.stop_grace_ns = 20 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    usleep(20 * 1000);
    int64_t took = stop(x);
    /* one more attempt right at the stop, then the grace runs out
     * waiting for the (long) backoff */
    assert_true(took < 500 * MS);
    assert_int_equal(ncalls(&x->f), 2);
    assert_true(peek(x, "ioc") == UINT64_MAX); /* never committed */
}

/* An idle loop (waiting on the journal) ends promptly on stop. */
static void test_stop_when_idle_is_prompt(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 1);
    struct hub_output_opts op = opts_of(10, 0);
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    usleep(30 * 1000); /* now waiting for records */
    int64_t took = stop(x);
    assert_true(took < 100 * MS); /* woken, not timed out */
    assert_int_equal(ncalls(&x->f), 1);
    assert_int_equal(peek(x, "ioc"), 1);
}

/* Records that do not decode are skipped, counted, never sent, and the
 * cursor passes them with the batch around them. */
static void test_corrupt_records_skipped(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 1);
    assert_int_equal(hub_journal_append(x->j, "garbage", 7, NULL), HUB_OK);
    append_readings(x->j, 1, 1);
    static const uint8_t bad_version[] = {3, 1, 'm', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(hub_journal_append(x->j, bad_version, sizeof(bad_version), NULL), HUB_OK);
    append_readings(x->j, 2, 1);
    struct hub_output_opts op = opts_of(3, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 1, 5000));
    assert_call(&x->f, 0, 0, 3);
    /* seqs 0..4 are passed: 3 delivered, 2 corrupt */
    struct hub_output_stats st;
    for (int i = 0; i < 1000; i++) {
        hub_output_stats(x->o, &st);
        if (st.cursor == 5)
            break;
        usleep(1000);
    }
    assert_int_equal(st.cursor, 5);
    assert_int_equal(st.delivered, 3);
    assert_int_equal(st.corrupt, 2);
    assert_int_equal(peek(x, "ioc"), 5);

    /* Only corrupt records: nothing to send, but the cursor moves past them. */
    assert_int_equal(hub_journal_append(x->j, "\x01", 1, NULL), HUB_OK);
    assert_int_equal(hub_journal_append(x->j, "\x01\x01", 2, NULL), HUB_OK);
    for (int i = 0; i < 2000; i++) {
        hub_output_stats(x->o, &st);
        if (st.cursor == 7)
            break;
        usleep(1000);
    }
    assert_int_equal(st.cursor, 7);
    assert_int_equal(st.corrupt, 4);
    assert_int_equal(peek(x, "ioc"), 7);
    stop(x);
    assert_int_equal(ncalls(&x->f), 1);
    assert_int_equal(x->f.bad, 0);
}

/* With a small journal and drop_oldest, records dropped before the output
 * reads them are counted as dropped; the rest arrive in order. */
static void test_dropped_counted(void **state)
{
    struct fx *x = *state;
    hub_journal_close(x->j);
    struct hub_journal_opts jo = {
        .dir = x->dir, .segment_size = 4096, .max_size = 16384, .on_full = HUB_JOURNAL_DROP_OLDEST};
    char err[256] = "";
    assert_int_equal(hub_journal_open(&jo, &x->j, err, sizeof(err)), HUB_OK);
    x->f.j = x->j;
    uint64_t seq = 99;
    assert_int_equal(hub_journal_cursor_open(x->j, "ioc", &seq), HUB_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(hub_journal_cursor_commit(x->j, "ioc", 0), HUB_OK);
    append_readings(x->j, 0, 1000);
    struct hub_journal_stats js;
    hub_journal_stats(x->j, &js);
    assert_true(js.first_seq > 0); /* the journal did drop */

    struct hub_output_opts op = opts_of(5000, 60 * HUB_NS_PER_S);
    assert_int_equal(hub_output_new(x->j, &op, fake_flush, &x->f, &x->o), HUB_OK);
    x->f.o = x->o;
    hub_output_stop(x->o); /* drain what is there and return */
    assert_int_equal(hub_output_run(x->o), HUB_OK);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.dropped, js.first_seq);
    assert_int_equal(st.delivered, 1000 - js.first_seq);
    assert_int_equal(st.cursor, 1000);
    assert_int_equal(ncalls(&x->f), 1);
    assert_call(&x->f, 0, (int64_t)js.first_seq, (size_t)(1000 - js.first_seq));
}

/* Two outputs on one journal, as the daemon sets them up: both are created,
 * then their threads start one after the other. The first to deliver must not
 * delete segments the other has not delivered yet, even before the other's
 * run() has begun. */
struct second {
    struct fake f;
    hub_output_t *o;
    int rc;
};

static void *run_second(void *arg)
{
    struct second *b = arg;
    b->rc = hub_output_run(b->o);
    return NULL;
}

static void test_second_output_keeps_its_records(void **state)
{
    struct fx *x = *state;
    hub_journal_close(x->j);
    struct hub_journal_opts jo = {.dir = x->dir, .segment_size = 256};
    char err[256] = "";
    assert_int_equal(hub_journal_open(&jo, &x->j, err, sizeof(err)), HUB_OK);
    x->f.j = x->j;
    append_readings(x->j, 0, 60);

    struct second b;
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.f.mu, NULL);
    b.f.j = x->j;
    b.f.name = "live";
    b.f.dflt = HUB_OUT_OK;
    struct hub_output_opts ob = opts_of(100, 0);
    ob.name = "live";
    assert_int_equal(hub_output_new(x->j, &ob, fake_flush, &b.f, &b.o), HUB_OK);
    b.f.o = b.o;

    struct hub_output_opts oa = opts_of(100, 0);
    start(x, &oa);
    for (int i = 0; i < 500 && peek(x, "ioc") != 60; i++)
        usleep(10 * 1000);
    stop(x);
    assert_int_equal(peek(x, "ioc"), 60);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_second, &b), 0);
    assert_true(wait_calls(&b.f, 1, 5000));
    hub_output_stop(b.o);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, HUB_OK);
    struct hub_output_stats st;
    hub_output_stats(b.o, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.delivered, 60);
    assert_int_equal(b.f.ncalls, 1);
    assert_call(&b.f, 0, 0, 60);
    assert_int_equal(peek(x, "live"), 60);
    hub_output_free(b.o);
    pthread_mutex_destroy(&b.f.mu);
}

/* ---- pipelining (struct hub_out_async) --------------------------------------- */

static struct hub_output_opts async_opts(size_t batch, int64_t interval_ns)
{
    struct hub_output_opts o = opts_of(batch, interval_ns);
    o.async = &fake_async;
    return o;
}

/* A backlog of 25, batches of 10: each batch is prepared while the one
 * before is on its way (P10 between S0 and F0), sent in order, the tail at
 * once; the cursor is persisted at the end. */
static void test_async_prepares_ahead(void **state)
{
    struct fx *x = *state;
    append_readings(x->j, 0, 25);
    struct hub_output_opts op = async_opts(10, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 3, 5000));
    assert_true(wait_peek(x, "ioc", 25, 5000));
    stop(x);
    assert_string_equal(x->f.steps, "P0 S0 P10 F0 S10 P20 F10 S20 F20 ");
    assert_int_equal(ncalls(&x->f), 3);
    assert_call(&x->f, 0, 0, 10);
    assert_call(&x->f, 1, 10, 10);
    assert_call(&x->f, 2, 20, 5);
    assert_int_equal(x->f.bad, 0);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 25);
    assert_int_equal(st.cursor, 25);
    /* the persisted cursor never passes what was acknowledged */
    for (size_t k = 0; k < 3; k++)
        assert_true(x->f.calls[k].peek_at_call <= x->f.calls[k].cursor_at_call);
}

/* A retry sends the slot again as it is (no new prepare); the batch
 * prepared ahead goes after it. */
static void test_async_retry_resends_slot(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_RETRY, HUB_OUT_RETRY, HUB_OUT_OK};
    x->f.script = script;
    x->f.script_len = 3;
    append_readings(x->j, 0, 20);
    struct hub_output_opts op = async_opts(10, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_calls(&x->f, 4, 5000));
    assert_true(wait_peek(x, "ioc", 20, 5000));
    stop(x);
    assert_string_equal(x->f.steps, "P0 S0 P10 F0 S0 F0 S0 F0 S10 F10 ");
    assert_int_equal(x->f.prepares, 2);
    for (size_t k = 0; k < 3; k++) {
        assert_call(&x->f, k, 0, 10);
        assert_int_equal(x->f.calls[k].cursor_at_call, 0);
    }
    assert_call(&x->f, 3, 10, 10);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.delivered, 20);
}

/* A refused reading in the batch on its way: the batch is bisected in its
 * own slot while the next batch waits, prepared, in the other; every other
 * reading is delivered once, in order, the refused one dead-lettered. */
static void test_async_bisect_keeps_prepared(void **state)
{
    struct fx *x = *state;
    x->f.refuse[3] = true;
    append_readings(x->j, 0, 16);
    struct hub_output_opts op = async_opts(8, 60 * HUB_NS_PER_S);
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 16, 5000));
    stop(x);
    /* 0-7 refused; halves 0-3 (refused: 0-1 ok, 2-3 refused: 2 ok, 3
     * refused alone), 4-7 ok; then 8-15, prepared while 0-7 was on its way */
    assert_string_equal(x->f.steps,
                        "P0 S0 P8 F0 P0 S0 F0 P0 S0 F0 P2 S2 F2 P2 S2 F2 P3 S3 F3 P4 S4 F4 S8 F8 ");
    int64_t want = 0;
    for (size_t k = 0; k < ncalls(&x->f); k++) {
        struct call *c = &x->f.calls[k];
        bool refused = false;
        for (size_t i = 0; i < c->n; i++)
            refused |= x->f.vals[c->off + i] == 3;
        for (size_t i = 0; i < c->n && !refused; i++) {
            want += want == 3;
            assert_int_equal(x->f.vals[c->off + i], want++);
        }
    }
    assert_int_equal(want, 16);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 15);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.cursor, 16);
}

/* A request that holds fewer readings than offered (its size limit): the
 * batch is cut there, the rest goes in the next requests, in order. */
static void test_async_prefix_cut(void **state)
{
    struct fx *x = *state;
    x->f.prepare_max = 4;
    append_readings(x->j, 0, 10);
    struct hub_output_opts op = async_opts(10, 0);
    start(x, &op);
    assert_true(wait_peek(x, "ioc", 10, 5000));
    stop(x);
    assert_int_equal(ncalls(&x->f), 3);
    assert_call(&x->f, 0, 0, 4);
    assert_call(&x->f, 1, 4, 4);
    assert_call(&x->f, 2, 8, 2);
    assert_int_equal(x->f.bad, 0);
}

/* The store acknowledges the first batch, then fails: the persisted cursor
 * reaches the end of the first batch (written by the committer, at the
 * latest at the stop) and never passes it; the batch prepared ahead is
 * what is retried. */
static void test_async_cursor_stops_at_acked(void **state)
{
    struct fx *x = *state;
    static const enum hub_out_result script[] = {HUB_OUT_OK};
    x->f.script = script;
    x->f.script_len = 1;
    x->f.dflt = HUB_OUT_RETRY;
    append_readings(x->j, 0, 20);
    struct hub_output_opts op = async_opts(10, 60 * HUB_NS_PER_S);
    op.stop_grace_ns = 50 * MS;
    start(x, &op);
    assert_true(wait_calls(&x->f, 3, 5000));
    stop(x);
    size_t n = ncalls(&x->f);
    assert_call(&x->f, 0, 0, 10);
    for (size_t k = 1; k < n; k++) {
        assert_call(&x->f, k, 10, 10);
        assert_true(x->f.calls[k].peek_at_call <= 10);
    }
    assert_int_equal(x->f.prepares, 2); /* the retries resend the slot */
    assert_int_equal(peek(x, "ioc"), 10);
    struct hub_output_stats st;
    hub_output_stats(x->o, &st);
    assert_int_equal(st.delivered, 10);
    assert_int_equal(st.cursor, 10);
}

/* Steady state with pipelining: a batch that does not fill still waits
 * for flush_interval. */
static void test_async_steady_waits(void **state)
{
    struct fx *x = *state;
    struct hub_output_opts op = async_opts(100, 80 * MS);
    start(x, &op);
    int64_t t0 = hub_mono_ns();
    append_readings(x->j, 0, 3);
    assert_true(wait_calls(&x->f, 1, 5000));
    assert_true(x->f.calls[0].at_ns - t0 >= 80 * MS);
    assert_call(&x->f, 0, 0, 3);
    assert_true(wait_peek(x, "ioc", 3, 5000));
    stop(x);
}

int main(void)
{
    hub_log_set_level(getenv("TEST_VERBOSE") ? HUB_LOG_DEBUG : HUB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_rejects_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_size_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_backlog_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_prepares_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_retry_resends_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_bisect_keeps_prepared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_prefix_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_cursor_stops_at_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_steady_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_interval_respected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_ok_same_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_never_advances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_now_skips_the_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_isolates_bad_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_splits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alarm_waits_and_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_failure_kind_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_persisted_and_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_gives_up_after_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_interrupts_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_when_idle_is_prompt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_output_keeps_its_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
