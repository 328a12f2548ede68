/* tests/unit/test_drv_influx_url.c — the write URL the influxdb output
 * builds from `url` for the stores of docs/outputs-influxdb.md "Scaling the
 * store": the path of `url` is kept (trailing '/' dropped) and /write or
 * /api/v2/write appended, so a VictoriaMetrics cluster's vminsert
 * (/insert/<accountID>/influx), a load balancer's prefix and a plain
 * server all get the path they serve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/influx/influx_priv.h"

/* The URL drv_influx_write_url builds for url + v1 database or v2 org/bucket. */
static void expect_url(const char *url, const char *database, const char *org, const char *bucket,
                       const char *want)
{
    struct drv_influx_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.url, sizeof(cfg.url), "%s", url);
    bool v2 = org != NULL;
    if (v2) {
        snprintf(cfg.org, sizeof(cfg.org), "%s", org);
        snprintf(cfg.bucket, sizeof(cfg.bucket), "%s", bucket);
    } else {
        snprintf(cfg.database, sizeof(cfg.database), "%s", database);
    }
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char *got = drv_influx_write_url(&cfg, h, v2);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    curl_easy_cleanup(h);
}

static void test_vminsert_v1(void **state)
{
    (void)state;
    expect_url("http://vminsert:8480/insert/0/influx", "city", NULL, NULL,
               "http://vminsert:8480/insert/0/influx/write?db=city&precision=ns");
    expect_url("http://vminsert:8480/insert/42/influx/", "city", NULL, NULL,
               "http://vminsert:8480/insert/42/influx/write?db=city&precision=ns");
}

static void test_vminsert_v2(void **state)
{
    (void)state;
    expect_url("http://vminsert:8480/insert/0/influx", NULL, "city", "sensors",
               "http://vminsert:8480/insert/0/influx/api/v2/write?org=city&bucket=sensors"
               "&precision=ns");
}

static void test_plain_and_balancer(void **state)
{
    (void)state;
    expect_url("http://127.0.0.1:8428", "city", NULL, NULL,
               "http://127.0.0.1:8428/write?db=city&precision=ns");
    expect_url("https://store.city.example/ioc//", "city", NULL, NULL,
               "https://store.city.example/ioc/write?db=city&precision=ns");
    expect_url("https://[2001:db8::10]:8086", NULL, "city org", "raw/1",
               "https://[2001:db8::10]:8086"
               "/api/v2/write?org=city%20org&bucket=raw%2F1&precision=ns");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vminsert_v1),
        cmocka_unit_test(test_vminsert_v2),
        cmocka_unit_test(test_plain_and_balancer),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
