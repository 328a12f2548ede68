/* tests/unit/test_hub_clocktrust.c — the trust rule, boot-time readings and
 * their re-stamping, the state file, step text. The clock source is the test
 * build's fake one (CITYHUB_TEST_CLOCK: "OFFSET_NS SYNCED [BOOT_ID]"). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/buf.h"
#include "hub/clock.h"
#include "hub/clocktrust.h"
#include "hub/journal.h"
#include "hub/output.h"
#include "hub/reading.h"

/* The tests that move the clock need the test build's fake clock
 * (CITYHUB_TEST_HOOKS, make MODE=asan); a release build (a board's tests
 * under emulation) runs the others. */

#define BOOT_A "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define BOOT_B "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define S HUB_NS_PER_S

#ifdef CITYHUB_TEST_HOOKS
static char dir[64], clock_path[96], state_path[96];

static void set_clock(long long offset, int synced, const char *boot)
{
    FILE *f = fopen(clock_path, "w");
    assert_non_null(f);
    fprintf(f, "%lld %d %s\n", offset, synced, boot ? boot : "");
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-clocktrust.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(clock_path, sizeof(clock_path), "%s/clock", dir);
    snprintf(state_path, sizeof(state_path), "%s/state", dir);
    setenv("CITYHUB_TEST_CLOCK", clock_path, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hub_clock_stop();
    unlink(clock_path);
    unlink(state_path);
    rmdir(dir);
    atomic_store(&hub_clock_fake_offset_ns, 0);
    return 0;
}

static void start(enum hub_clock_policy p)
{
    char err[128];
    struct hub_clock_opts o = {.require_sync = p, .state_path = state_path};
    assert_int_equal(hub_clock_start(&o, err, sizeof(err)), HUB_OK);
}

/* The hub's clock at 1970-01-01T00:01:40Z. */
static long long at_1970(void)
{
    atomic_store(&hub_clock_fake_offset_ns, 0);
    return 100 * S - hub_time_ns();
}

static const char *field_string(const hub_reading_t *r, const char *key)
{
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *f = hub_reading_field(r, i);
        if (!strcmp(f->key, key) && f->type == HUB_FIELD_STRING)
            return f->v.s;
    }
    return NULL;
}

/* The offset the state file holds for boot id text. */
static int64_t state_offset(const char *boot)
{
    char buf[HUB_CLOCK_STATE_MAX];
    FILE *f = fopen(state_path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    struct hub_clock_boot e[HUB_CLOCK_STATE_BOOTS];
    int count = hub_clock_state_parse(buf, n, e);
    assert_true(count > 0);
    uint8_t id[HUB_READING_BOOT_ID];
    assert_int_equal(hub_clock_parse_boot_id(boot, strlen(boot), id), 0);
    for (int k = 0; k < count; k++)
        if (!memcmp(e[k].id, id, sizeof(id))) {
            assert_true(e[k].has_offset);
            return e[k].offset_ns;
        }
    fail_msg("boot %s not in the state file", boot);
    return 0;
}

#endif /* CITYHUB_TEST_HOOKS */

/* ---- the rule ----------------------------------------------------------- */

static void test_judge(void **state)
{
    (void)state;
    int64_t build = 1000 * S;
    /* before the build date: never trusted, whatever the kernel says */
    for (int p = 0; p < 3; p++) {
        assert_string_equal(hub_clock_judge(p, false, build, build - 1, true),
                            "time before build date");
        assert_string_equal(hub_clock_judge(p, true, build, 0, true), "time before build date");
    }
    /* after it: the kernel's word counts for yes, for auto when strict */
    assert_null(hub_clock_judge(HUB_CLOCK_SYNC_NO, true, build, build, false));
    assert_null(hub_clock_judge(HUB_CLOCK_SYNC_AUTO, false, build, build, false));
    assert_string_equal(hub_clock_judge(HUB_CLOCK_SYNC_AUTO, true, build, build, false),
                        "adjtimex unsynchronised");
    assert_null(hub_clock_judge(HUB_CLOCK_SYNC_AUTO, true, build, build, true));
    assert_string_equal(hub_clock_judge(HUB_CLOCK_SYNC_YES, false, build, build, false),
                        "adjtimex unsynchronised");
    assert_null(hub_clock_judge(HUB_CLOCK_SYNC_YES, false, build, build, true));
    assert_true(hub_clock_build_ns() > 1577836800LL * S); /* the Makefile passed a date */
}

static void test_step_text(void **state)
{
    (void)state;
    char b[48];
    assert_string_equal(hub_clock_step_text(3 * 3600 * S + 12 * 60 * S + 4 * S, b, sizeof(b)),
                        "+3h12m04s");
    assert_string_equal(hub_clock_step_text(-(3 * 3600 * S) + 1, b, sizeof(b)), "-3h00m00s");
    assert_string_equal(hub_clock_step_text(90 * S, b, sizeof(b)), "+1m30s");
    assert_string_equal(hub_clock_step_text(1500 * HUB_NS_PER_MS, b, sizeof(b)), "+1.500s");
    assert_string_equal(hub_clock_step_text(-250 * HUB_NS_PER_MS, b, sizeof(b)), "-250ms");
    assert_string_equal(hub_clock_step_text(2 * 86400 * S + 5 * S, b, sizeof(b)), "+2d00h00m05s");
    assert_non_null(hub_clock_step_text(INT64_MIN, b, sizeof(b)));
}

/* ---- the state file and boot ids ----------------------------------------- */

static void test_state_roundtrip(void **state)
{
    (void)state;
    struct hub_clock_boot e[2] = {{.has_offset = false, .last_ns = 12345},
                                  {.has_offset = true, .offset_ns = -7, .last_ns = 0}};
    memset(e[0].id, 0xaa, sizeof(e[0].id));
    memset(e[1].id, 0x01, sizeof(e[1].id));
    char buf[HUB_CLOCK_STATE_MAX];
    size_t n = hub_clock_state_format(e, 2, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "cityhub-clock 1\n"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - 12345\n"
                             "01010101010101010101010101010101 -7 0\n");
    struct hub_clock_boot d[HUB_CLOCK_STATE_BOOTS];
    assert_int_equal(hub_clock_state_parse(buf, n, d), 2);
    assert_memory_equal(d[0].id, e[0].id, sizeof(e[0].id));
    assert_false(d[0].has_offset);
    assert_int_equal(d[0].last_ns, 12345);
    assert_true(d[1].has_offset);
    assert_int_equal(d[1].offset_ns, -7);
    assert_int_equal(hub_clock_state_format(e, 2, buf, 40), 0); /* does not fit */
}

static void test_state_malformed(void **state)
{
    (void)state;
    struct hub_clock_boot d[HUB_CLOCK_STATE_BOOTS];
    const char *bad[] = {
        "",
        "cityhub-clock 2\n",
        "cityhub-clock 1\naaaa - 1\n",
        "cityhub-clock 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - 1",    /* no newline */
        "cityhub-clock 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa x 1\n",  /* offset */
        "cityhub-clock 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 -1\n", /* negative boot time */
        "cityhub-clock 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 99999999999999999999 1\n",
        "cityhub-clock 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - 1\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - "
        "2\n",
        "cityhub-clock 1\ngaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - 1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hub_clock_state_parse(bad[i], strlen(bad[i]), d), -1);
    assert_int_equal(hub_clock_state_parse("cityhub-clock 1\n", 16, d), 0);
    uint8_t id[HUB_READING_BOOT_ID];
    assert_int_equal(hub_clock_parse_boot_id(BOOT_A "\n", strlen(BOOT_A) + 1, id), 0);
    assert_int_equal(id[0], 0xaa);
    assert_int_equal(hub_clock_parse_boot_id(BOOT_A, strlen(BOOT_A) - 1, id), -1);
    assert_int_equal(hub_clock_parse_boot_id("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 36, id), -1);
}

/* ---- the reading's boot-time form ----------------------------------------- */

static void test_reading_boottime_form(void **state)
{
    (void)state;
    uint8_t boot[HUB_READING_BOOT_ID], got[HUB_READING_BOOT_ID];
    memset(boot, 0x5c, sizeof(boot));
    hub_reading_t *plain = hub_reading_new("lab", 1000);
    hub_reading_t *r = hub_reading_new("lab", 0);
    assert_int_equal(hub_reading_set_boottime(r, 42 * S, boot), HUB_OK);
    for (hub_reading_t **p = (hub_reading_t *[]){plain, r, NULL}; *p; p++) {
        assert_int_equal(hub_reading_add_tag(*p, "device", "d1"), HUB_OK);
        assert_int_equal(hub_reading_add_uint(*p, "counter", 7), HUB_OK);
    }
    assert_int_equal(hub_reading_encoded_size(r),
                     hub_reading_encoded_size(plain) + HUB_READING_BOOT_ID);
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    assert_int_equal(hub_reading_encode(r, &b), HUB_OK);
    assert_int_equal(b.len, hub_reading_encoded_size(r));
    assert_int_equal(b.data[0], 3);
    hub_reading_t *d = NULL;
    assert_int_equal(hub_reading_decode(b.data, b.len, &d), HUB_OK);
    assert_true(hub_reading_boottime(d, got));
    assert_memory_equal(got, boot, sizeof(boot));
    assert_int_equal(hub_reading_time(d), 42 * S);
    /* the key covers the boot id: a boot-time series is another key */
    size_t klen = 0, kplain = 0;
    uint8_t tmp[256], tmp2[256];
    hub_reading_encode_keyed(d, tmp, sizeof(tmp), &klen);
    hub_reading_encode_keyed(plain, tmp2, sizeof(tmp2), &kplain);
    assert_int_equal(klen, kplain + HUB_READING_BOOT_ID);
    /* truncated in the boot id */
    hub_reading_t *bad = NULL;
    assert_int_equal(hub_reading_decode(b.data, 10, &bad), HUB_EINVAL);
    /* re-stamped: exactly the version 2 form of the same reading */
    hub_reading_set_time(d, 1000);
    assert_false(hub_reading_boottime(d, NULL));
    hub_buf_reset(&b);
    assert_int_equal(hub_reading_encode(d, &b), HUB_OK);
    struct hub_buf b2;
    hub_buf_init(&b2, HUB_READING_MAX_ENCODED);
    assert_int_equal(hub_reading_encode(plain, &b2), HUB_OK);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    hub_buf_free(&b);
    hub_buf_free(&b2);
    hub_reading_free(d);
    hub_reading_free(r);
    hub_reading_free(plain);
}

/* ---- trust, stamps, re-stamping --------------------------------------------- */

#ifdef CITYHUB_TEST_HOOKS
static void test_untrusted_then_synced(void **state)
{
    (void)state;
    set_clock(at_1970(), 0, BOOT_A);
    start(HUB_CLOCK_SYNC_AUTO);
    struct hub_clock_status cs;
    hub_clock_status(&cs);
    assert_true(cs.active);
    assert_false(cs.trusted);
    assert_string_equal(cs.reason, "time before build date");

    int64_t b0 = hub_boot_ns();
    hub_reading_t *r = hub_clock_reading_new("lab");
    int64_t b1 = hub_boot_ns();
    assert_true(hub_reading_boottime(r, NULL));
    assert_true(hub_reading_time(r) >= b0 && hub_reading_time(r) <= b1);
    assert_int_equal(hub_clock_restamp(r), HUB_EEMPTY); /* held back */
    assert_true(hub_reading_boottime(r, NULL));

    /* a payload's own time is the sensor's: it stays; one relative to now
     * (SenML's t < 2^28) is on boot time too */
    struct hub_stamp st;
    hub_clock_stamp(&st);
    assert_true(st.boottime);
    assert_true(st.ns >= b1);
    hub_reading_t *own = hub_reading_new("lab", 1700000000LL * S);
    hub_clock_apply(own, &st);
    assert_false(hub_reading_boottime(own, NULL));
    assert_int_equal(hub_reading_time(own), 1700000000LL * S);
    hub_reading_t *rel = hub_reading_new("lab", st.ns - 5 * S);
    hub_clock_apply(rel, &st);
    assert_true(hub_reading_boottime(rel, NULL));
    assert_int_equal(hub_reading_time(rel), st.ns - 5 * S);
    hub_reading_free(rel);

    /* right time, kernel unsynchronised: auto is strict (booted before the build) */
    set_clock(0, 0, NULL);
    hub_clock_check();
    hub_clock_status(&cs);
    assert_false(cs.trusted);
    assert_string_equal(cs.reason, "adjtimex unsynchronised");
    assert_int_equal(cs.steps, 1); /* 1970 -> now */
    assert_true(cs.last_step_ns > 50LL * 365 * 86400 * S);

    set_clock(0, 1, NULL);
    hub_clock_check();
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    assert_null(cs.reason);
    assert_true(cs.trusted_at_ns > 0);
    assert_int_equal(cs.boottime_readings, 2);

    /* wall = boot time + the offset of the moment of trust (in the state file) */
    int64_t t = hub_reading_time(r);
    int64_t off = state_offset(BOOT_A);
    assert_int_equal(hub_clock_restamp(r), HUB_OK);
    assert_false(hub_reading_boottime(r, NULL));
    assert_int_equal(hub_reading_time(r), t + off);
    assert_string_equal(field_string(r, "clock"), "restamped");
    int64_t now = hub_time_ns();
    assert_true(hub_reading_time(r) <= now && hub_reading_time(r) > now - 60 * S);
    hub_clock_status(&cs);
    assert_int_equal(cs.restamped, 1);

    /* trusted now: new readings on the wall clock, restamp leaves them */
    hub_reading_t *w = hub_clock_reading_new("lab");
    assert_false(hub_reading_boottime(w, NULL));
    int64_t wt = hub_reading_time(w);
    assert_int_equal(hub_clock_restamp(w), HUB_OK);
    assert_int_equal(hub_reading_time(w), wt);
    assert_null(field_string(w, "clock"));
    /* losing the kernel's sync later does not untrust the clock */
    set_clock(0, 0, NULL);
    hub_clock_check();
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    hub_reading_free(w);
    hub_reading_free(own);
    hub_reading_free(r);
}

/* A restart within the same boot keeps the offset of the first trust. */
static void test_same_boot_restart(void **state)
{
    (void)state;
    set_clock(at_1970(), 0, BOOT_A);
    start(HUB_CLOCK_SYNC_AUTO);
    hub_reading_t *r = hub_clock_reading_new("lab");
    set_clock(0, 1, BOOT_A);
    hub_clock_check();
    int64_t off = state_offset(BOOT_A);
    hub_clock_stop();

    /* NTP moved the clock by 5 s meanwhile: the readings of before keep the old offset */
    set_clock(5 * S, 1, BOOT_A);
    start(HUB_CLOCK_SYNC_AUTO);
    int64_t t = hub_reading_time(r);
    assert_int_equal(hub_clock_restamp(r), HUB_OK);
    assert_int_equal(hub_reading_time(r), t + off);
    hub_reading_free(r);
}

/* Readings of an earlier boot that never had a trusted clock: estimated. */
static void test_earlier_boot_estimated(void **state)
{
    (void)state;
    set_clock(at_1970(), 0, BOOT_A);
    start(HUB_CLOCK_SYNC_AUTO);
    hub_reading_t *r1 = hub_clock_reading_new("lab");
    hub_reading_t *r2 = hub_clock_reading_new("lab");
    hub_clock_stop(); /* the state file has boot A's last boot time */
    hub_reading_t *unknown = hub_reading_new("lab", 0);
    uint8_t other[HUB_READING_BOOT_ID];
    memset(other, 0x77, sizeof(other));
    assert_int_equal(hub_reading_set_boottime(unknown, 5 * S, other), HUB_OK);

    set_clock(0, 1, BOOT_B);
    start(HUB_CLOCK_SYNC_AUTO);
    int64_t off_b = state_offset(BOOT_B);
    int64_t t1 = hub_reading_time(r1), t2 = hub_reading_time(r2);
    assert_int_equal(hub_clock_restamp(r1), HUB_OK);
    assert_int_equal(hub_clock_restamp(r2), HUB_OK);
    assert_int_equal(hub_clock_restamp(unknown), HUB_OK);
    assert_string_equal(field_string(r1, "clock"), "estimated");
    /* before boot B began, spacing kept */
    assert_true(hub_reading_time(r2) < off_b);
    assert_int_equal(hub_reading_time(r2) - hub_reading_time(r1), t2 - t1);
    assert_true(hub_reading_time(r2) > off_b - HUB_CLOCK_SAVE_NS - 60 * S);
    /* a boot the state file does not know comes before the oldest it knows */
    assert_true(hub_reading_time(unknown) < hub_reading_time(r1));
    assert_string_equal(field_string(unknown, "clock"), "estimated");
    struct hub_clock_status cs;
    hub_clock_status(&cs);
    assert_int_equal(cs.estimated, 3);
    assert_int_equal(cs.restamped, 0);
    hub_reading_free(unknown);
    hub_reading_free(r2);
    hub_reading_free(r1);
}

static void test_policy_no_and_yes(void **state)
{
    (void)state;
    struct hub_clock_status cs;
    set_clock(0, 0, BOOT_A);
    start(HUB_CLOCK_SYNC_NO);
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    assert_int_equal(cs.trusted_at_ns, 0); /* from the start */
    hub_reading_t *r = hub_clock_reading_new("lab");
    assert_false(hub_reading_boottime(r, NULL));
    hub_reading_free(r);
    hub_clock_stop();

    set_clock(0, 0, BOOT_B); /* a boot not yet trusted */
    start(HUB_CLOCK_SYNC_YES);
    hub_clock_status(&cs);
    assert_false(cs.trusted);
    assert_string_equal(cs.reason, "adjtimex unsynchronised");
    hub_clock_configure(HUB_CLOCK_SYNC_NO, 0); /* a reload: from the next check on */
    hub_clock_check();
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    hub_clock_stop();
    /* boot A was trusted: a restart within it is trusted, kernel sync or not */
    set_clock(0, 0, BOOT_A);
    start(HUB_CLOCK_SYNC_YES);
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    hub_clock_stop();

    /* auto on a clock after the build date (a lab PC, a container): as now */
    start(HUB_CLOCK_SYNC_AUTO);
    hub_clock_status(&cs);
    assert_true(cs.trusted);
    /* a step of 2 s is logged and counted; one below the threshold is not */
    set_clock(2 * S, 0, NULL);
    hub_clock_check();
    set_clock(2 * S + 300 * HUB_NS_PER_MS, 0, NULL);
    hub_clock_check();
    hub_clock_status(&cs);
    assert_int_equal(cs.steps, 1);
    assert_true(cs.last_step_ns > 1900 * HUB_NS_PER_MS && cs.last_step_ns < 2100 * HUB_NS_PER_MS);
}

/* ---- the output holds boot-time readings back ------------------------------- */

struct sink {
    pthread_mutex_t mu;
    size_t n;
    int64_t t[8];
    int64_t v[8];
    char mark[8][16];
};

static enum hub_out_result sink_flush(void *ctx, hub_reading_t *const *rs, size_t n,
                                      struct hub_out_answer *ans)
{
    (void)ans;
    struct sink *k = ctx;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < n && k->n < 8; i++) {
        k->t[k->n] = hub_reading_time(rs[i]);
        k->v[k->n] = hub_reading_field(rs[i], 0)->v.i;
        const char *m = field_string(rs[i], "clock");
        snprintf(k->mark[k->n], sizeof(k->mark[0]), "%s", m ? m : "");
        k->n++;
    }
    pthread_mutex_unlock(&k->mu);
    return HUB_OUT_OK;
}

static size_t sink_count(struct sink *k)
{
    pthread_mutex_lock(&k->mu);
    size_t n = k->n;
    pthread_mutex_unlock(&k->mu);
    return n;
}

static void *run_output(void *arg)
{
    hub_output_run(arg);
    return NULL;
}

static void append(hub_journal_t *j, hub_reading_t *r, int64_t v)
{
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    assert_int_equal(hub_reading_add_int(r, "v", v), HUB_OK);
    assert_int_equal(hub_reading_encode(r, &b), HUB_OK);
    assert_int_equal(hub_journal_append(j, b.data, b.len, NULL), HUB_OK);
    hub_buf_free(&b);
    hub_reading_free(r);
}

static void wait_count(struct sink *k, size_t n)
{
    for (int i = 0; i < 500 && sink_count(k) < n; i++)
        usleep(10000);
}

static void test_output_holds_back(void **state)
{
    (void)state;
    char jdir[128];
    snprintf(jdir, sizeof(jdir), "%s/journal", dir);
    set_clock(at_1970(), 0, BOOT_A);
    start(HUB_CLOCK_SYNC_AUTO);
    struct hub_journal_opts jo = {.dir = jdir, .segment_size = 1 << 20, .max_size = 8 << 20};
    hub_journal_t *j = NULL;
    char err[256];
    assert_int_equal(hub_journal_open(&jo, &j, err, sizeof(err)), HUB_OK);
    append(j, hub_reading_new("m", 1700000000LL * S), 1); /* a sensor's own time */
    append(j, hub_clock_reading_new("m"), 2);             /* on boot time */
    append(j, hub_reading_new("m", 1700000001LL * S), 3);
    struct sink k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct hub_output_opts oo = {
        .name = "o", .batch_size = 10, .flush_interval_ns = 10 * HUB_NS_PER_MS};
    hub_output_t *o = NULL;
    assert_int_equal(hub_output_new(j, &oo, sink_flush, &k, &o), HUB_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_output, o), 0);
    wait_count(&k, 1);
    usleep(300000);
    assert_int_equal(sink_count(&k), 1); /* the boot-time reading and all after it wait */
    set_clock(0, 1, NULL);
    hub_clock_check();
    wait_count(&k, 3);
    hub_output_stop(o);
    pthread_join(th, NULL);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.v[0], 1);
    assert_int_equal(k.v[1], 2);
    assert_int_equal(k.v[2], 3);
    assert_string_equal(k.mark[1], "restamped");
    assert_string_equal(k.mark[2], "");
    int64_t now = hub_time_ns();
    assert_true(k.t[1] <= now && k.t[1] > now - 60 * S);
    hub_output_free(o);
    hub_journal_close(j);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", jdir);
    assert_int_equal(system(cmd), 0);
}

#endif /* CITYHUB_TEST_HOOKS */

static void test_inactive(void **state)
{
    (void)state;
    /* before hub_clock_start: trusted, wall clock, and a boot-time reading is held */
    struct hub_clock_status cs;
    hub_clock_status(&cs);
    assert_false(cs.active);
    assert_true(cs.trusted);
    hub_reading_t *r = hub_clock_reading_new("lab");
    assert_false(hub_reading_boottime(r, NULL));
    uint8_t boot[HUB_READING_BOOT_ID] = {0};
    assert_int_equal(hub_reading_set_boottime(r, 1, boot), HUB_OK);
    assert_int_equal(hub_clock_restamp(r), HUB_EEMPTY);
    hub_reading_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_step_text),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_malformed),
        cmocka_unit_test(test_reading_boottime_form),
#ifdef CITYHUB_TEST_HOOKS
        cmocka_unit_test_setup_teardown(test_untrusted_then_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_boot_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_earlier_boot_estimated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_no_and_yes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_holds_back, setup, teardown),
#endif
        cmocka_unit_test(test_inactive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
