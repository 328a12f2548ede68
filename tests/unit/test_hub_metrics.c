/* tests/unit/test_hub_metrics.c — the metrics registry: handles, labels,
 * bounds and the Prometheus text exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hub/buf.h"
#include "hub/metrics.h"

static void test_handles_and_bounds(void **state)
{
    (void)state;
    hub_metrics_t *m = hub_metrics_new(4);
    assert_non_null(m);
    struct hub_metric *a = hub_metrics_add(m, HUB_METRIC_COUNTER, "x_total", "device", "a", "x");
    struct hub_metric *a2 = hub_metrics_add(m, HUB_METRIC_COUNTER, "x_total", "device", "a", "x");
    assert_ptr_equal(a, a2);
    struct hub_metric *b =
        hub_metrics_add2(m, HUB_METRIC_COUNTER, "x_total", "device", "a", "kind", "t", "x");
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_null(hub_metrics_add(m, HUB_METRIC_GAUGE, "Bad-Name", NULL, NULL, "x"));
    assert_null(hub_metrics_add2(m, HUB_METRIC_GAUGE, "y", NULL, NULL, "k", "v", "x"));
    assert_null(hub_metrics_add2(m, HUB_METRIC_GAUGE, "y", "k", "v", "k", "v", "x"));
    hub_metric_inc(a, 2);
    hub_metric_inc(b, 3);
    assert_int_equal(hub_metrics_sum(m, "x_total"), 5);
    assert_non_null(hub_metrics_add(m, HUB_METRIC_GAUGE, "g1", NULL, NULL, "g"));
    assert_non_null(hub_metrics_add(m, HUB_METRIC_GAUGE, "g2", NULL, NULL, "g"));
    assert_null(hub_metrics_add(m, HUB_METRIC_GAUGE, "g3", NULL, NULL, "g"));
    assert_int_equal(hub_metrics_missed(m), 1);
    hub_metric_inc(NULL, 1); /* a refused registration's handle does nothing */
    hub_metrics_free(m);
}

static void test_exposition(void **state)
{
    (void)state;
    hub_metrics_t *m = hub_metrics_new(16);
    /* interleaved registration: the families must come out grouped */
    hub_metric_inc(
        hub_metrics_add(m, HUB_METRIC_COUNTER, "b_total", "device", "d1", "polls\nof a \\ device"),
        7);
    hub_metric_set(hub_metrics_add(m, HUB_METRIC_GAUGE, "a_bytes", NULL, NULL, "bytes"), 42);
    hub_metric_inc(hub_metrics_add(m, HUB_METRIC_COUNTER, "b_total", "device", "q\"x\\y\nz", "p"),
                   1);
    hub_metrics_add2(m, HUB_METRIC_COUNTER, "c_total", "output", "ioc", "class", "2xx", "r");
    struct hub_metric *us =
        hub_metrics_add(m, HUB_METRIC_COUNTER, "d_seconds_total", NULL, NULL, "s");
    hub_metric_set_divisor(us, 1000000);
    hub_metric_inc(us, 2000123);
    struct hub_buf out;
    hub_buf_init(&out, 1 << 16);
    assert_int_equal(hub_metrics_write_prometheus(m, &out), HUB_OK);
    const char *want = "# HELP a_bytes bytes\n"
                       "# TYPE a_bytes gauge\n"
                       "a_bytes 42\n"
                       "# HELP b_total polls\\nof a \\\\ device\n"
                       "# TYPE b_total counter\n"
                       "b_total{device=\"d1\"} 7\n"
                       "b_total{device=\"q\\\"x\\\\y\\nz\"} 1\n"
                       "# HELP c_total r\n"
                       "# TYPE c_total counter\n"
                       "c_total{output=\"ioc\",class=\"2xx\"} 0\n"
                       "# HELP d_seconds_total s\n"
                       "# TYPE d_seconds_total counter\n"
                       "d_seconds_total 2.000123\n";
    assert_string_equal((const char *)out.data, want);
    /* a buffer too small fails cleanly */
    struct hub_buf small;
    hub_buf_init(&small, 16);
    assert_int_equal(hub_metrics_write_prometheus(m, &small), HUB_EFULL);
    hub_buf_free(&small);
    hub_buf_free(&out);
    hub_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handles_and_bounds),
        cmocka_unit_test(test_exposition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
