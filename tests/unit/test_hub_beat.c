/* tests/unit/test_hub_beat.c — heartbeats: a slot that moves is alive, one
 * quiet for longer than the limit is stalled (reported first once, with
 * what it was doing), a wait beats while it waits, no slot costs nothing. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hub/beat.h"

struct seen {
    int calls, first;
    char who[HUB_BEAT_WHO_MAX];
    const char *doing, *detail;
};

static void on_stall(void *arg, const struct hub_beat_stall *s)
{
    struct seen *w = arg;
    w->calls++;
    w->first += s->first;
    strcpy(w->who, s->who);
    w->doing = s->doing;
    w->detail = s->detail;
}

static void test_stall_reported_once(void **state)
{
    (void)state;
    hub_beats_t *bs = hub_beats_new();
    struct hub_beat *a = hub_beats_add(bs, "modbus runner 0");
    struct hub_beat *b = hub_beats_add(bs, "influxdb:ioc");
    assert_non_null(a);
    assert_non_null(b);
    int64_t t = hub_mono_ns(), lim = 2 * HUB_NS_PER_S;
    struct seen w = {0};

    hub_beat_attach(a);
    hub_beat_doing("modbus:rtu-1", "device meter-1");
    hub_beat_attach(b);
    hub_beat();
    assert_int_equal(hub_beats_check(bs, t, lim, on_stall, &w), 0);
    /* b moves, a does not: a is stalled past the limit, reported first once */
    hub_beat();
    assert_int_equal(hub_beats_check(bs, t + lim, lim, on_stall, &w), 0);
    hub_beat();
    assert_int_equal(hub_beats_check(bs, t + lim + 1, lim, on_stall, &w), 1);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.first, 1);
    assert_string_equal(w.who, "modbus runner 0");
    assert_string_equal(w.doing, "modbus:rtu-1");
    assert_string_equal(w.detail, "device meter-1");
    assert_int_equal(hub_beats_check(bs, t + 3 * lim, lim, on_stall, &w), 2);
    assert_int_equal(w.calls, 3);
    assert_int_equal(w.first, 2); /* a again (not first), b for the first time */
    /* a moves again: alive, and a later stall is a new one */
    hub_beat_attach(a);
    hub_beat();
    hub_beat_attach(NULL);
    assert_int_equal(hub_beats_check(bs, t + 4 * lim, lim, NULL, NULL), 1);
    hub_beats_free(bs);
}

/* A loop whose thread ended (a stop, or a reload that starts new threads)
 * detaches: its quiet slot is never reported, the others still are. */
static void test_detached_slot_not_watched(void **state)
{
    (void)state;
    hub_beats_t *bs = hub_beats_new();
    struct hub_beat *old = hub_beats_add(bs, "modbus runner 0");
    struct hub_beat *cur = hub_beats_add(bs, "modbus runner 0");
    int64_t t = hub_mono_ns(), lim = HUB_NS_PER_S;
    hub_beat_attach(old);
    hub_beat();
    hub_beat_detach();
    hub_beat(); /* no slot any more: counts nowhere */
    assert_int_equal(hub_beats_check(bs, t + 2 * lim, lim, NULL, NULL), 1); /* cur only */
    hub_beat_attach(cur);
    hub_beat();
    hub_beat_attach(NULL);
    assert_int_equal(hub_beats_check(bs, t + 3 * lim, lim, NULL, NULL), 0);
    hub_beats_free(bs);
}

static void test_no_slot_is_a_noop(void **state)
{
    (void)state;
    hub_beat_attach(NULL);
    hub_beat();
    hub_beat_doing("x", NULL);
    assert_null(hub_beats_add(NULL, "x"));
    assert_int_equal(hub_beats_check(NULL, 0, 0, NULL, NULL), 0);
}

static void test_wait_beats(void **state)
{
    (void)state;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    assert_int_equal(hub_cond_init(&mu, &cv), 0);
    hub_beats_t *bs = hub_beats_new();
    struct hub_beat *a = hub_beats_add(bs, "waiter");
    hub_beat_attach(a);
    int64_t t0 = hub_mono_ns();
    hub_beat();
    assert_int_equal(hub_beats_check(bs, t0, 0, NULL, NULL), 0); /* it moved */
    pthread_mutex_lock(&mu);
    int64_t wait = 3 * HUB_BEAT_WAIT_NS + HUB_BEAT_WAIT_NS / 2;
    assert_int_equal(hub_beat_wait_until(&cv, &mu, t0 + wait), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    assert_true(hub_mono_ns() >= t0 + wait);
    /* it beat while it waited: not stalled even with a zero limit */
    assert_int_equal(hub_beats_check(bs, hub_mono_ns(), 0, NULL, NULL), 0);
    hub_beat_attach(NULL);
    hub_beats_free(bs);
    hub_cond_destroy(&mu, &cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stall_reported_once),
        cmocka_unit_test(test_detached_slot_not_watched),
        cmocka_unit_test(test_no_slot_is_a_noop),
        cmocka_unit_test(test_wait_beats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
