/* tests/unit/test_drv_influx_live.c — the influxdb output against a real
 * InfluxDB 1.x: a batch with tricky names goes through init/flush/exit and
 * is read back with /query to check exactly what the store holds.
 *
 * Needs INFLUX_URL (e.g. http://127.0.0.1:8086) and INFLUX_DB (an existing
 * database); without them every test is skipped. It is run for real by
 * tests/integration/test_influx_roundtrip.sh, which starts influxd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers/influx/influx.h"
#include "hub/config_map.h"

#define T1 1700000000000000001LL
#define T2 1700000000000000002LL

static const char *influx_url;
static const char *influx_db;

static void need_server(void)
{
    if (!influx_url || !*influx_url || !influx_db || !*influx_db)
        skip();
}

static void cfg_for(struct drv_influx_cfg *cfg, const char *url, const char *db)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(hub_cfg_defaults(drv_influx_keys, cfg), 0);
    snprintf(cfg->common.name, sizeof(cfg->common.name), "live");
    snprintf(cfg->common.type, sizeof(cfg->common.type), "influxdb");
    if (hub_cfg_set(hub_cfg_find(drv_influx_keys, "url"), cfg, url, err, sizeof(err)) != 0 ||
        hub_cfg_set(hub_cfg_find(drv_influx_keys, "database"), cfg, db, err, sizeof(err)) != 0 ||
        hub_cfg_set(hub_cfg_find(drv_influx_keys, "timeout"), cfg, "5s", err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
}

static size_t collect(char *p, size_t size, size_t nmemb, void *ud)
{
    hub_buf_add(ud, p, size * nmemb);
    return size * nmemb;
}

/* Run an InfluxQL query; returns the JSON answer (caller frees). */
static char *query(const char *q)
{
    CURL *h = curl_easy_init();
    struct hub_buf b;
    char url[2048];
    long status = 0;
    assert_non_null(h);
    char *eq = curl_easy_escape(h, q, 0);
    char *edb = curl_easy_escape(h, influx_db, 0);
    snprintf(url, sizeof(url), "%s/query?db=%s&epoch=ns&q=%s", influx_url, edb, eq);
    curl_free(eq);
    curl_free(edb);
    hub_buf_init(&b, 1 << 20);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_easy_cleanup(h);
    assert_non_null(b.data);
    /* InfluxDB ends its JSON with a newline */
    while (b.len > 0 && b.data[b.len - 1] == '\n')
        b.data[--b.len] = 0;
    return (char *)b.data;
}

static void expect_query(const char *q, const char *want)
{
    char *got = query(q);
    if (strcmp(got, want) != 0)
        fail_msg("query %s\n got: %s\nwant: %s", q, got, want);
    free(got);
}

static void test_roundtrip(void **state)
{
    (void)state;
    need_server();
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char err[256] = "";
    void *ctx = NULL;

    hub_reading_t *a = hub_reading_new("air quality,x", T1);
    assert_non_null(a);
    assert_int_equal(hub_reading_add_tag(a, "district", "\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi"),
                     HUB_OK);
    assert_int_equal(hub_reading_add_tag(a, "site name", "a,b=c d"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(a, "path", "C:\\dir\\f"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(a, "q", "say \"hi\""), HUB_OK);
    assert_int_equal(hub_reading_add_tag(a, "nl", "two\nlines"), HUB_OK);
    assert_int_equal(hub_reading_add_float(a, "pm2,5=x y", 12.5), HUB_OK);
    assert_int_equal(hub_reading_add_float(a, "\xC2\xB5g/m\xC2\xB3", 0.1), HUB_OK);
    assert_int_equal(hub_reading_add_float(a, "tiny", 1e-300), HUB_OK);
    assert_int_equal(hub_reading_add_float(a, "neg0", -0.0), HUB_OK);
    assert_int_equal(hub_reading_add_float(a, "whole", 1.0), HUB_OK);
    assert_int_equal(hub_reading_add_int(a, "count", -3), HUB_OK);
    assert_int_equal(hub_reading_add_uint(a, "big", 42), HUB_OK);
    assert_int_equal(hub_reading_add_bool(a, "ok", true), HUB_OK);
    assert_int_equal(hub_reading_add_string(a, "note", "he said \"hi\" \\ done"), HUB_OK);

    hub_reading_t *b = hub_reading_new("#hash", T2);
    assert_non_null(b);
    assert_int_equal(hub_reading_add_tag(b, "t", "end\\"), HUB_OK);
    assert_int_equal(hub_reading_add_int(b, "v", 7), HUB_OK);

    hub_reading_t *batch[2] = {a, b};
    cfg_for(&cfg, influx_url, influx_db);
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, batch, 2, &ans), HUB_OUT_OK);
    /* the same batch again: replay overwrites, the store still holds one point */
    assert_int_equal(drv_influx_ops.flush(ctx, batch, 2, &ans), HUB_OUT_OK);
    drv_influx_ops.exit(ctx);
    hub_reading_free(a);
    hub_reading_free(b);

    /* Columns come sorted; Go's JSON escapes `"` and `\` only. */
    expect_query("SELECT * FROM \"air quality,x\"",
                 "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"air quality,x\","
                 "\"columns\":[\"time\",\"big\",\"count\",\"district\",\"neg0\",\"nl\",\"note\","
                 "\"ok\",\"path\",\"pm2,5=x y\",\"q\",\"site name\",\"tiny\",\"whole\","
                 "\"\xC2\xB5g/m\xC2\xB3\"],"
                 "\"values\":[[1700000000000000001,42,-3,\"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi\","
                 "-0,\"two lines\",\"he said \\\"hi\\\" \\\\ done\",true,\"C:\\\\dir\\\\f\","
                 "12.5,\"say \\\"hi\\\"\",\"a,b=c d\",1e-300,1,0.1]]}]}]}");
    expect_query("SHOW FIELD KEYS FROM \"air quality,x\"",
                 "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"air quality,x\","
                 "\"columns\":[\"fieldKey\",\"fieldType\"],\"values\":[[\"big\",\"integer\"],"
                 "[\"count\",\"integer\"],[\"neg0\",\"float\"],[\"note\",\"string\"],"
                 "[\"ok\",\"boolean\"],[\"pm2,5=x y\",\"float\"],[\"tiny\",\"float\"],"
                 "[\"whole\",\"float\"],[\"\xC2\xB5g/m\xC2\xB3\",\"float\"]]}]}]}");
    expect_query("SHOW TAG VALUES FROM \"air quality,x\" WITH KEY = \"district\"",
                 "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"air quality,x\","
                 "\"columns\":[\"key\",\"value\"],\"values\":[[\"district\","
                 "\"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi\"]]}]}]}");
    /* what the documented lossy cases become in the store */
    expect_query("SELECT * FROM \"\\\\#hash\"",
                 "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"\\\\#hash\","
                 "\"columns\":[\"time\",\"t\",\"v\"],"
                 "\"values\":[[1700000000000000002,\"end/\",7]]}]}]}");
}

static void test_missing_database_rejected(void **state)
{
    (void)state;
    need_server();
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r = hub_reading_new("m", T1);
    assert_int_equal(hub_reading_add_float(r, "f", 1.5), HUB_OK);

    cfg_for(&cfg, influx_url, "cityhub_no_such_db");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, &r, 1, &ans), HUB_OUT_ALARM);
    assert_string_equal(ans.why, "HTTP 404: database not found: \"cityhub_no_such_db\"");
    assert_int_equal(ans.retry_after_ns, 0);

    /* a field whose type conflicts with the stored one: 400, REJECT with reason */
    hub_reading_t *c = hub_reading_new("air quality,x", T1);
    assert_int_equal(hub_reading_add_string(c, "count", "three"), HUB_OK);
    drv_influx_ops.exit(ctx);
    cfg_for(&cfg, influx_url, influx_db);
    assert_int_equal(drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)), 0);
    assert_int_equal(drv_influx_ops.flush(ctx, &c, 1, &ans), HUB_OUT_REJECT);
    if (strncmp(ans.why, "HTTP 400: partial write: field type conflict", 44) != 0)
        fail_msg("why: %s", ans.why);
    drv_influx_ops.exit(ctx);
    hub_reading_free(c);
    hub_reading_free(r);
}

static void test_closed_port_retry(void **state)
{
    (void)state;
    need_server();
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char err[256] = "", url[64];
    void *ctx = NULL;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));

    hub_reading_t *r = hub_reading_new("m", T1);
    assert_int_equal(hub_reading_add_float(r, "f", 1.5), HUB_OK);
    cfg_for(&cfg, url, influx_db);
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, &r, 1, &ans), HUB_OUT_RETRY);
    assert_non_null(strstr(ans.why, "transport: Couldn't connect to server"));
    drv_influx_ops.exit(ctx);
    hub_reading_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_missing_database_rejected),
        cmocka_unit_test(test_closed_port_retry),
    };
    influx_url = getenv("INFLUX_URL");
    influx_db = getenv("INFLUX_DB");
    if (drv_influx_global_init() != 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
