/* tests/unit/test_drv_influx.c — line protocol encoding, gzip, config keys,
 * and the HTTP exchange against a small local responder (v1 and v2 URLs,
 * auth headers, gzip bodies, 204 / 503 + Retry-After / 400 / 404 / 429,
 * IPv4 and IPv6, a closed port). The real InfluxDB is in
 * test_drv_influx_live.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "drivers/influx/influx.h"
#include "hub/config_map.h"

#define T0 1700000000123456789LL

/* ---- helpers ----------------------------------------------------------- */

static char *encode_one(const hub_reading_t *r, bool uint_support)
{
    struct hub_buf b;
    hub_buf_init(&b, 1 << 20);
    assert_int_equal(drv_influx_encode(r, uint_support, &b), HUB_OK);
    assert_non_null(b.data);
    return (char *)b.data; /* caller frees */
}

static void expect_line(const hub_reading_t *r, bool uint_support, const char *want)
{
    char *got = encode_one(r, uint_support);
    assert_string_equal(got, want);
    free(got);
}

/* One reading "m" (or measurement), at T0, with a single float field f=1 unless
 * a field is added by the caller. */
static hub_reading_t *rd(const char *measurement)
{
    hub_reading_t *r = hub_reading_new(measurement, T0);
    assert_non_null(r);
    return r;
}

static void inflate_all(const uint8_t *in, size_t n, struct hub_buf *out)
{
    z_stream zs;
    uint8_t chunk[4096];
    int zrc;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    do {
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zrc = inflate(&zs, Z_NO_FLUSH);
        assert_true(zrc == Z_OK || zrc == Z_STREAM_END);
        assert_int_equal(hub_buf_add(out, chunk, sizeof(chunk) - zs.avail_out), HUB_OK);
    } while (zrc != Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0);
    inflateEnd(&zs);
}

/* ---- escaping table ---------------------------------------------------- */

struct esc_case {
    const char *in;
    const char *out;
};

static void test_escape_measurement(void **state)
{
    (void)state;
    static const struct esc_case cases[] = {
        {"a b", "a\\ b"},
        {"a,b", "a\\,b"},
        {"a=b", "a=b"},
        {"a\"b", "a\"b"},
        {"a\\b", "a\\b"},
        {"a\nb", "a\\ b"},
        {"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi", "\xC4\x90\xE1\xBB\x93ng\\ H\xE1\xBB\x9Bi"},
        {"#m", "\\#m"},
        {"m#", "m#"},
        {"a\\", "a/"},
        {"a\\ b", "a/\\ b"},
        {"a\\=b", "a/=b"},
        {"a\\,b", "a/\\,b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hub_reading_t *r = rd(cases[i].in);
        char want[256];
        assert_int_equal(hub_reading_add_float(r, "f", 1.0), HUB_OK);
        snprintf(want, sizeof(want), "%s f=1 %lld\n", cases[i].out, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
}

/* Tag keys, tag values and field keys share one rule. */
static const struct esc_case key_cases[] = {
    {"a b", "a\\ b"},
    {"a,b", "a\\,b"},
    {"a=b", "a\\=b"},
    {"a\"b", "a\"b"},
    {"a\\b", "a\\b"},
    {"a\nb", "a\\ b"},
    {"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi", "\xC4\x90\xE1\xBB\x93ng\\ H\xE1\xBB\x9Bi"},
    {"\xC2\xB5g/m\xC2\xB3", "\xC2\xB5g/m\xC2\xB3"},
    {"#t", "#t"},
    {"a\\", "a/"},
    {"a\\,b", "a/\\,b"},
    {"a\\=b", "a/\\=b"},
    {"a\\ b", "a/\\ b"},
};
#define N_KEY_CASES (sizeof(key_cases) / sizeof(key_cases[0]))

static void test_escape_tag_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KEY_CASES; i++) {
        hub_reading_t *r = rd("m");
        char want[256];
        assert_int_equal(hub_reading_add_tag(r, key_cases[i].in, "v"), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "f", 1.0), HUB_OK);
        snprintf(want, sizeof(want), "m,%s=v f=1 %lld\n", key_cases[i].out, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
}

static void test_escape_tag_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KEY_CASES; i++) {
        hub_reading_t *r = rd("m");
        char want[256];
        assert_int_equal(hub_reading_add_tag(r, "t", key_cases[i].in), HUB_OK);
        assert_int_equal(hub_reading_add_float(r, "f", 1.0), HUB_OK);
        snprintf(want, sizeof(want), "m,t=%s f=1 %lld\n", key_cases[i].out, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
}

static void test_escape_field_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_KEY_CASES; i++) {
        hub_reading_t *r = rd("m");
        char want[256];
        assert_int_equal(hub_reading_add_int(r, key_cases[i].in, 5), HUB_OK);
        snprintf(want, sizeof(want), "m %s=5i %lld\n", key_cases[i].out, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
}

static void test_escape_string_value(void **state)
{
    (void)state;
    static const struct esc_case cases[] = {
        {"a b", "\"a b\""},
        {"a,b", "\"a,b\""},
        {"a=b", "\"a=b\""},
        {"a\"b", "\"a\\\"b\""},
        {"a\\b", "\"a\\\\b\""},
        {"\\", "\"\\\\\""},
        {"\\\"", "\"\\\\\\\"\""},
        {"a\nb", "\"a b\""},
        {"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi", "\"\xC4\x90\xE1\xBB\x93ng H\xE1\xBB\x9Bi\""},
        {"\xC2\xB5g/m\xC2\xB3", "\"\xC2\xB5g/m\xC2\xB3\""},
        {"", "\"\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hub_reading_t *r = rd("m");
        char want[256];
        assert_int_equal(hub_reading_add_string(r, "s", cases[i].in), HUB_OK);
        snprintf(want, sizeof(want), "m s=%s %lld\n", cases[i].out, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
}

/* ---- types ------------------------------------------------------------- */

static void test_types(void **state)
{
    (void)state;
    hub_reading_t *r = rd("energy");
    assert_int_equal(hub_reading_add_int(r, "i", -42), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "imin", INT64_MIN), HUB_OK);
    assert_int_equal(hub_reading_add_uint(r, "u", 42), HUB_OK);
    assert_int_equal(hub_reading_add_uint(r, "umax", UINT64_MAX), HUB_OK);
    assert_int_equal(hub_reading_add_bool(r, "on", true), HUB_OK);
    assert_int_equal(hub_reading_add_bool(r, "off", false), HUB_OK);
    /* without uint support: 'i' when it fits, 'u' (refused by old servers) when not */
    expect_line(r, false,
                "energy i=-42i,imin=-9223372036854775808i,u=42i,umax=18446744073709551615u,"
                "on=true,off=false 1700000000123456789\n");
    expect_line(r, true,
                "energy i=-42i,imin=-9223372036854775808i,u=42u,umax=18446744073709551615u,"
                "on=true,off=false 1700000000123456789\n");
    hub_reading_free(r);
}

static void test_floats(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0.1, "0.1"},    {1e-300, "1e-300"},
        {-0.0, "-0"},    {123456789.123, "123456789.123"},
        {1.0, "1"},      {0.30000000000000004, "0.30000000000000004"},
        {1e21, "1e+21"}, {DBL_MAX, "1.7976931348623157e+308"},
        {-2.5, "-2.5"},  {9007199254740993.0, "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hub_reading_t *r = rd("m");
        char want[128];
        assert_int_equal(hub_reading_add_float(r, "f", cases[i].v), HUB_OK);
        snprintf(want, sizeof(want), "m f=%s %lld\n", cases[i].s, T0);
        expect_line(r, false, want);
        hub_reading_free(r);
    }
    /* smallest denormal: whatever is printed must read back to the same bits */
    hub_reading_t *r = rd("m");
    double tiny = 4.9406564584124654e-324;
    assert_int_equal(hub_reading_add_float(r, "f", tiny), HUB_OK);
    char *line = encode_one(r, false);
    double back = strtod(line + 4, NULL);
    assert_memory_equal(&back, &tiny, sizeof(tiny));
    free(line);
    hub_reading_free(r);
}

static void test_order_time_and_tags(void **state)
{
    (void)state;
    hub_reading_t *r = hub_reading_new("air_quality", 0);
    assert_non_null(r);
    /* added unsorted: the reading sorts tags; fields keep their order */
    assert_int_equal(hub_reading_add_tag(r, "site", "quang-trung"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "device", "aq-1"), HUB_OK);
    assert_int_equal(hub_reading_add_tag(r, "district", "dong-hoi"), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "pm2_5", 12.5), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "temperature", 31.25), HUB_OK);
    assert_int_equal(hub_reading_add_int(r, "aqi", 51), HUB_OK);
    expect_line(r, false,
                "air_quality,device=aq-1,district=dong-hoi,site=quang-trung "
                "pm2_5=12.5,temperature=31.25,aqi=51i 0\n");
    hub_reading_free(r);

    r = hub_reading_new("m", -1);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_bool(r, "b", true), HUB_OK);
    expect_line(r, false, "m b=true -1\n");
    hub_reading_free(r);
}

static void test_no_field_and_cap(void **state)
{
    (void)state;
    struct hub_buf b;
    hub_reading_t *r = rd("m");
    hub_buf_init(&b, 32);
    assert_int_equal(hub_buf_adds(&b, "x\n"), HUB_OK);
    assert_int_equal(drv_influx_encode(r, false, &b), HUB_EINVAL);
    assert_int_equal(b.len, 2);
    assert_int_equal(hub_reading_add_string(r, "s", "a value longer than the cap"), HUB_OK);
    assert_int_equal(drv_influx_encode(r, false, &b), HUB_EFULL);
    assert_int_equal(b.len, 2); /* all or nothing */
    assert_string_equal((char *)b.data, "x\n");
    hub_buf_free(&b);
    hub_reading_free(r);
}

static void test_gzip(void **state)
{
    (void)state;
    struct hub_buf in, gz, back;
    hub_buf_init(&in, 1 << 22);
    hub_buf_init(&gz, 1 << 22);
    hub_buf_init(&back, 1 << 22);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(
            hub_buf_printf(&in, "traffic,device=cam-%d count=%di %d\n", i % 7, i * 31 % 977, i),
            HUB_OK);
    assert_int_equal(drv_influx_gzip(in.data, in.len, &gz), HUB_OK);
    assert_true(gz.len > 18 && gz.len < in.len / 4);
    assert_int_equal(gz.data[0], 0x1f); /* gzip magic */
    assert_int_equal(gz.data[1], 0x8b);
    inflate_all(gz.data, gz.len, &back);
    assert_int_equal(back.len, in.len);
    assert_memory_equal(back.data, in.data, in.len);

    /* empty input is a valid empty gzip member */
    hub_buf_reset(&gz);
    hub_buf_reset(&back);
    assert_int_equal(drv_influx_gzip((const uint8_t *)"", 0, &gz), HUB_OK);
    inflate_all(gz.data, gz.len, &back);
    assert_int_equal(back.len, 0);

    /* a cap too small: EFULL, out unchanged */
    struct hub_buf small;
    hub_buf_init(&small, 64);
    assert_int_equal(drv_influx_gzip(in.data, in.len, &small), HUB_EFULL);
    assert_int_equal(small.len, 0);
    hub_buf_free(&small);
    hub_buf_free(&in);
    hub_buf_free(&gz);
    hub_buf_free(&back);
}

/* ---- config ------------------------------------------------------------ */

static void cfg_base(struct drv_influx_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(hub_cfg_defaults(drv_output_common_keys, cfg), 0);
    assert_int_equal(hub_cfg_defaults(drv_influx_keys, cfg), 0);
    snprintf(cfg->common.name, sizeof(cfg->common.name), "ioc");
    snprintf(cfg->common.type, sizeof(cfg->common.type), "influxdb");
}

static void set_key(struct drv_influx_cfg *cfg, const char *key, const char *text)
{
    char err[256];
    const struct hub_cfg_key *k = hub_cfg_find(drv_influx_keys, key);
    if (!k)
        k = hub_cfg_find(drv_output_common_keys, key);
    assert_non_null(k);
    if (hub_cfg_set(k, cfg, text, err, sizeof(err)) != 0)
        fail_msg("set %s=%s: %s", key, text, err);
}

static void test_keys(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    char err[256];
    cfg_base(&cfg);
    assert_int_equal(cfg.common.batch_size, 5000);
    assert_int_equal(cfg.common.flush_interval_ns, 1000000000LL);
    assert_true(cfg.gzip);
    assert_false(cfg.uint_support);
    assert_int_equal(cfg.timeout_ns, 10000000000LL);
    assert_string_equal(cfg.url, "");
    assert_null(hub_cfg_find(drv_influx_keys, "name"));
    assert_null(hub_cfg_find(drv_influx_keys, "type"));
    assert_true(hub_cfg_find(drv_influx_keys, "url")->required);
    assert_ptr_equal(drv_influx_ops.config_map, drv_influx_keys);
    assert_int_equal(drv_influx_ops.config_size, sizeof(struct drv_influx_cfg));
    assert_string_equal(drv_influx_ops.name, "influxdb");
    assert_int_equal(drv_influx_ops.kind, DRV_OUTPUT);

    set_key(&cfg, "batch_size", "100000");
    assert_int_equal(cfg.common.batch_size, 100000);
    assert_int_not_equal(hub_cfg_set(hub_cfg_find(drv_output_common_keys, "batch_size"), &cfg, "0",
                                     err, sizeof(err)),
                         0);
    assert_int_not_equal(hub_cfg_set(hub_cfg_find(drv_output_common_keys, "batch_size"), &cfg,
                                     "100001", err, sizeof(err)),
                         0);
    set_key(&cfg, "timeout", "250ms");
    assert_int_equal(cfg.timeout_ns, 250000000LL);
    set_key(&cfg, "flush_interval", "5s");
    assert_int_equal(cfg.common.flush_interval_ns, 5000000000LL);
    set_key(&cfg, "gzip", "false");
    assert_false(cfg.gzip);
    set_key(&cfg, "uint_support", "true");
    assert_true(cfg.uint_support);
}

static void expect_init_error(const struct drv_influx_cfg *cfg, const char *needle)
{
    char err[256] = "";
    void *ctx = (void *)1;
    assert_int_equal(drv_influx_ops.init(cfg, NULL, &ctx, err, sizeof(err)), -1);
    assert_null(ctx);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not say \"%s\"", err, needle);
}

static void test_init_checks(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    cfg_base(&cfg);
    expect_init_error(&cfg, "url is required");
    set_key(&cfg, "url", "ftp://127.0.0.1:8086");
    set_key(&cfg, "database", "city");
    expect_init_error(&cfg, "http:// or https://");
    set_key(&cfg, "url", "127.0.0.1:8086");
    expect_init_error(&cfg, "url");
    set_key(&cfg, "url", "http://u:secret@127.0.0.1:8086");
    expect_init_error(&cfg, "password_file");
    set_key(&cfg, "url", "http://127.0.0.1:8086/?db=x");
    expect_init_error(&cfg, "query");
    set_key(&cfg, "url", "http://127.0.0.1:8086");
    set_key(&cfg, "org", "city");
    expect_init_error(&cfg, "cannot be mixed");
    cfg.database[0] = 0;
    expect_init_error(&cfg, "missing bucket");
    set_key(&cfg, "bucket", "b");
    expect_init_error(&cfg, "missing token_file");
    set_key(&cfg, "token_file", "/nonexistent/cityhub-token");
    expect_init_error(&cfg, "token_file /nonexistent/cityhub-token: No such file");
    cfg_base(&cfg);
    set_key(&cfg, "url", "http://127.0.0.1:8086");
    expect_init_error(&cfg, "database is required");
    set_key(&cfg, "database", "city");
    set_key(&cfg, "username", "hub");
    expect_init_error(&cfg, "username and password_file go together");
}

/* ---- a local HTTP responder -------------------------------------------- */

#define RESP_MAX_REQ 8

struct http_req {
    char head[4096]; /* request line and headers */
    struct hub_buf body;
};

struct responder {
    int fd;
    int port;
    const char *answers[RESP_MAX_REQ]; /* whole HTTP responses, in order */
    size_t n_answers;
    struct http_req req[RESP_MAX_REQ];
    size_t n_req;
    size_t n_conn; /* connections accepted */
    pthread_t th;
};

static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 5000) == 1 ? 0 : -1;
}

/* Serve one connection until it closes or the script ends. */
static void serve_conn(struct responder *rs, int c)
{
    char buf[65536];
    size_t have = 0;
    while (rs->n_req < rs->n_answers) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof(buf) || wait_readable(c) != 0)
                return;
            ssize_t k = read(c, buf + have, sizeof(buf) - have);
            if (k <= 0)
                return;
            have += (size_t)k;
        }
        struct http_req *q = &rs->req[rs->n_req];
        size_t hlen = (size_t)(end - buf) + 4;
        size_t clen = 0;
        snprintf(q->head, sizeof(q->head), "%.*s", (int)hlen, buf);
        const char *cl = strcasestr(q->head, "\r\nContent-Length:");
        if (cl)
            clen = strtoul(cl + 17, NULL, 10);
        hub_buf_init(&q->body, 1 << 24);
        size_t from_buf = have - hlen < clen ? have - hlen : clen;
        hub_buf_add(&q->body, buf + hlen, from_buf);
        memmove(buf, buf + hlen + from_buf, have - hlen - from_buf);
        have -= hlen + from_buf;
        while (q->body.len < clen) {
            if (wait_readable(c) != 0)
                return;
            ssize_t k =
                read(c, buf, sizeof(buf) < clen - q->body.len ? sizeof(buf) : clen - q->body.len);
            if (k <= 0)
                return;
            hub_buf_add(&q->body, buf, (size_t)k);
        }
        const char *a = rs->answers[rs->n_req++];
        if (write(c, a, strlen(a)) < 0)
            return;
        if (strstr(a, "Connection: close"))
            return;
    }
}

static void *responder_main(void *p)
{
    struct responder *rs = p;
    while (rs->n_req < rs->n_answers) {
        if (wait_readable(rs->fd) != 0)
            break;
        int c = accept(rs->fd, NULL, NULL);
        if (c < 0)
            break;
        rs->n_conn++;
        serve_conn(rs, c);
        close(c);
    }
    return NULL;
}

/* Listen on 127.0.0.1 or ::1, port 0. Returns 0, or -1 if the family is not
 * available here. */
static int responder_start(struct responder *rs, int family)
{
    memset(rs, 0, sizeof(*rs));
    rs->fd = socket(family, SOCK_STREAM, 0);
    if (rs->fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*a);
    }
    if (bind(rs->fd, (struct sockaddr *)&ss, sl) != 0 || listen(rs->fd, 4) != 0) {
        close(rs->fd);
        return -1;
    }
    sl = sizeof(ss);
    getsockname(rs->fd, (struct sockaddr *)&ss, &sl);
    rs->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void responder_go(struct responder *rs)
{
    assert_int_equal(pthread_create(&rs->th, NULL, responder_main, rs), 0);
}

static void responder_stop(struct responder *rs)
{
    pthread_join(rs->th, NULL);
    close(rs->fd);
}

static void responder_free(struct responder *rs)
{
    for (size_t i = 0; i < rs->n_req; i++)
        hub_buf_free(&rs->req[i].body);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static hub_reading_t *sample(int64_t t, double v)
{
    hub_reading_t *r = hub_reading_new("noise", t);
    assert_non_null(r);
    assert_int_equal(hub_reading_add_tag(r, "device", "mic 1"), HUB_OK);
    assert_int_equal(hub_reading_add_float(r, "laeq", v), HUB_OK);
    return r;
}

/* A whole HTTP response with its Content-Length. */
static void answer(char *dst, size_t size, const char *status, const char *headers,
                   const char *body)
{
    snprintf(dst, size, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status, headers,
             strlen(body), body);
}

#define A204 "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

static void test_http_v2(void **state)
{
    (void)state;
    struct responder rs;
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char url[128], tokpath[] = "/tmp/cityhub-token-XXXXXX", err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r[2] = {sample(1000, 55.5), sample(2000, 61.25)};

    int tfd = mkstemp(tokpath);
    assert_true(tfd >= 0);
    close(tfd);
    write_file(tokpath, "tok-Abc123==\n");

    assert_int_equal(responder_start(&rs, AF_INET), 0);
    rs.answers[0] = A204;
    rs.answers[1] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                    "Content-Length: 0\r\n\r\n";
    char a400[512], a404[256];
    answer(a400, sizeof(a400), "400 Bad Request", "Content-Type: application/json\r\n",
           "{\"code\":\"invalid\",\"message\":\"x\",\"error\":\"unable to parse 'noise x': "
           "bad \\\"field\\\"\"}");
    answer(a404, sizeof(a404), "404 Not Found", "Connection: close\r\n",
           "{\"error\":\"bucket not found\"}");
    rs.answers[2] = a400;
    rs.answers[3] = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n";
    rs.answers[4] = a404;
    rs.n_answers = 5;
    responder_go(&rs);

    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", rs.port);
    set_key(&cfg, "url", url);
    set_key(&cfg, "org", "city org");
    set_key(&cfg, "bucket", "sensors/raw");
    set_key(&cfg, "token_file", tokpath);
    set_key(&cfg, "timeout", "3s");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);

    memset(&ans, 0x55, sizeof(ans));
    assert_int_equal(drv_influx_ops.flush(ctx, r, 2, &ans), HUB_OUT_OK);
    assert_int_equal(ans.retry_after_ns, 0);

    assert_int_equal(drv_influx_ops.flush(ctx, r, 2, &ans), HUB_OUT_RETRY);
    assert_int_equal(ans.retry_after_ns, 7000000000LL);
    assert_string_equal(ans.why, "HTTP 503");

    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_REJECT);
    assert_int_equal(ans.retry_after_ns, 0);
    assert_string_equal(ans.why, "HTTP 400: unable to parse 'noise x': bad \"field\"");
    assert_string_equal(ans.kind, "HTTP 400");

    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_RETRY);
    assert_int_equal(ans.retry_after_ns, 0);
    assert_string_equal(ans.why, "HTTP 429");

    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_ALARM);
    assert_string_equal(ans.why, "HTTP 404: bucket not found");
    assert_string_equal(ans.kind, "HTTP 404");

    drv_influx_ops.exit(ctx);
    responder_stop(&rs);
    assert_int_equal(rs.n_req, 5);

    /* the first request, in full */
    const struct http_req *q = &rs.req[0];
    assert_non_null(strstr(q->head, "POST /api/v2/write?org=city%20org&bucket=sensors%2Fraw"
                                    "&precision=ns HTTP/1.1\r\n"));
    assert_non_null(strstr(q->head, "\r\nAuthorization: Token tok-Abc123==\r\n"));
    assert_non_null(strstr(q->head, "\r\nContent-Encoding: gzip\r\n"));
    assert_non_null(strstr(q->head, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    assert_null(strstr(q->head, "Expect:"));
    struct hub_buf plain;
    hub_buf_init(&plain, 1 << 20);
    inflate_all(q->body.data, q->body.len, &plain);
    assert_string_equal((char *)plain.data, "noise,device=mic\\ 1 laeq=55.5 1000\n"
                                            "noise,device=mic\\ 1 laeq=61.25 2000\n");
    hub_buf_free(&plain);
    responder_free(&rs);
    unlink(tokpath);
    hub_reading_free(r[0]);
    hub_reading_free(r[1]);
}

static void test_http_v1_basic_auth_plain(void **state)
{
    (void)state;
    struct responder rs;
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char url[128], pwpath[] = "/tmp/cityhub-pw-XXXXXX", err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r[1] = {sample(5, 1.5)};

    int pfd = mkstemp(pwpath);
    assert_true(pfd >= 0);
    close(pfd);
    write_file(pwpath, "s3cret\r\n");

    assert_int_equal(responder_start(&rs, AF_INET), 0);
    rs.answers[0] = A204;
    rs.n_answers = 1;
    responder_go(&rs);

    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/influx", rs.port);
    set_key(&cfg, "url", url);
    set_key(&cfg, "database", "city db");
    set_key(&cfg, "retention_policy", "one_year");
    set_key(&cfg, "username", "hub");
    set_key(&cfg, "password_file", pwpath);
    set_key(&cfg, "gzip", "false");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_OK);
    drv_influx_ops.exit(ctx);
    responder_stop(&rs);

    assert_int_equal(rs.n_req, 1);
    const struct http_req *q = &rs.req[0];
    assert_non_null(
        strstr(q->head, "POST /influx/write?db=city%20db&rp=one_year&precision=ns HTTP/1.1\r\n"));
    /* base64("hub:s3cret") */
    assert_non_null(strstr(q->head, "\r\nAuthorization: Basic aHViOnMzY3JldA==\r\n"));
    assert_null(strstr(q->head, "Content-Encoding"));
    assert_string_equal((char *)q->body.data, "noise,device=mic\\ 1 laeq=1.5 5\n");
    responder_free(&rs);
    unlink(pwpath);
    hub_reading_free(r[0]);
}

static void test_http_ipv6(void **state)
{
    (void)state;
    struct responder rs;
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char url[128], err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r[1] = {sample(7, 2.0)};

    if (responder_start(&rs, AF_INET6) != 0) {
        hub_reading_free(r[0]);
        skip(); /* no ::1 on this machine */
    }
    rs.answers[0] = A204;
    rs.n_answers = 1;
    responder_go(&rs);
    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://[::1]:%d", rs.port);
    set_key(&cfg, "url", url);
    set_key(&cfg, "database", "city");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_OK);
    drv_influx_ops.exit(ctx);
    responder_stop(&rs);
    assert_int_equal(rs.n_req, 1);
    assert_non_null(strstr(rs.req[0].head, "POST /write?db=city&precision=ns HTTP/1.1\r\n"));
    char hostline[64];
    snprintf(hostline, sizeof(hostline), "\r\nHost: [::1]:%d\r\n", rs.port);
    assert_non_null(strstr(rs.req[0].head, hostline));
    struct hub_buf plain;
    hub_buf_init(&plain, 1 << 20);
    inflate_all(rs.req[0].body.data, rs.req[0].body.len, &plain);
    assert_string_equal((char *)plain.data, "noise,device=mic\\ 1 laeq=2 7\n");
    hub_buf_free(&plain);
    responder_free(&rs);
    hub_reading_free(r[0]);
}

static void test_http_closed_port_and_limits(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char url[128], err[256] = "";
    void *ctx = NULL;

    /* a port that was just free and is closed now */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);

    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    set_key(&cfg, "url", url);
    set_key(&cfg, "database", "city");
    set_key(&cfg, "timeout", "2s");
    cfg.common.max_batch_bytes = 16384; /* below the key's minimum: one big reading passes it */
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);

    hub_reading_t *r[1] = {sample(1, 1.0)};
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_RETRY);
    assert_int_equal(ans.retry_after_ns, 0);
    if (strncmp(ans.why, "transport: Couldn't connect to server", 37) != 0)
        fail_msg("why: %s", ans.why);

    /* no readings, or only readings without fields: nothing to send, OK */
    hub_reading_t *empty = hub_reading_new("m", 1);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 0, &ans), HUB_OUT_OK);
    assert_int_equal(drv_influx_ops.flush(ctx, &empty, 1, &ans), HUB_OUT_OK);

    /* one reading beyond the body bound (max_batch_bytes): TOO_LARGE, before
     * any network (a batch beyond it is sent in parts: tested live) */
    hub_reading_t *big = hub_reading_new("m", 1);
    char s[HUB_READING_MAX_STRING + 1];
    memset(s, 'x', HUB_READING_MAX_STRING);
    s[HUB_READING_MAX_STRING] = 0;
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof(key), "s%d", i);
        assert_int_equal(hub_reading_add_string(big, key, s), HUB_OK);
    }
    hub_reading_t *many[2] = {big, big};
    assert_int_equal(drv_influx_ops.flush(ctx, many, 2, &ans), HUB_OUT_TOO_LARGE);
    if (!strstr(ans.why, "larger than max_batch_bytes"))
        fail_msg("why: %s", ans.why);
    hub_reading_free(big);
    hub_reading_free(empty);
    hub_reading_free(r[0]);
    drv_influx_ops.exit(ctx);
}

/* Inline credentials are refused without being echoed; a secret "file" that
 * is a device or a FIFO is refused before it is opened (it could block). */
static void test_init_secrets_not_shown(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    char err[256] = "";
    void *ctx = NULL;
    const char *urls[] = {"ftp://hub:s3cret@127.0.0.1/", "http://hub:s3cret@127.0.0.1:99999/",
                          "http://hub:s3cret@/x", "http://hub:s3cret@127.0.0.1/?db=x"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        cfg_base(&cfg);
        set_key(&cfg, "url", urls[i]);
        set_key(&cfg, "database", "city");
        assert_int_equal(drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)), -1);
        if (strstr(err, "s3cret"))
            fail_msg("the password is in the message: %s", err);
    }
    cfg_base(&cfg);
    set_key(&cfg, "url", "ftp://hub:s3cret@127.0.0.1/");
    set_key(&cfg, "database", "city");
    expect_init_error(&cfg, "url \"ftp://***@127.0.0.1/\": must start with http:// or https://");

    cfg_base(&cfg);
    set_key(&cfg, "url", "http://127.0.0.1:8086");
    set_key(&cfg, "org", "o");
    set_key(&cfg, "bucket", "b");
    set_key(&cfg, "token_file", "/dev/null");
    expect_init_error(&cfg, "token_file /dev/null: not a regular file");

    /* the same checks for `cityhub check`, naming the key at fault */
    const char *key = "x";
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "token_file");
    assert_string_equal(err, "token_file /dev/null: not a regular file");
    set_key(&cfg, "token_file", "/nonexistent/tok");
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "token_file");
    assert_string_equal(err, "token_file /nonexistent/tok: No such file or directory");
    /* a secret file others may read is refused, naming its mode */
    char tok[] = "/tmp/influx-token-XXXXXX";
    int fd = mkstemp(tok); /* 0600 */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "t0k\n", 4), 4);
    close(fd);
    set_key(&cfg, "token_file", tok);
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), 0);
    assert_null(key);
    chmod(tok, 0644);
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "token_file");
    if (!strstr(err, "readable by others (mode 0644)") || !strstr(err, "chmod 600"))
        fail_msg("%s", err);
    chmod(tok, 0640);
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "(mode 0640)"));
    expect_init_error(&cfg, "(mode 0640)"); /* init refuses it too */
    unlink(tok);
    set_key(&cfg, "url", "gopher://x");
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_string_equal(key, "url");
    set_key(&cfg, "url", "http://x");
    set_key(&cfg, "database", "city");
    assert_int_equal(drv_influx_check(&cfg, &key, err, sizeof(err)), -1);
    assert_null(key);
    assert_non_null(strstr(err, "cannot be mixed"));
}

/* The TLS keys: only with https://, cert_file with key_file, no
 * insecure_skip_verify beside a ca_file, each file present; every error
 * names its key. */
static void expect_cfg_check(struct drv_influx_cfg *cfg, const char *want_key, const char *want)
{
    const char *key = "x";
    char err[512];
    if (!want) {
        assert_int_equal(drv_influx_check(cfg, &key, err, sizeof(err)), 0);
        assert_null(key);
        return;
    }
    assert_int_equal(drv_influx_check(cfg, &key, err, sizeof(err)), -1);
    assert_non_null(key);
    assert_string_equal(key, want_key);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    expect_init_error(cfg, want); /* init refuses it the same way */
}

static void test_tls_checks(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    cfg_base(&cfg);
    set_key(&cfg, "url", "http://127.0.0.1:8086");
    set_key(&cfg, "database", "city");
    set_key(&cfg, "ca_file", "/etc/hostname");
    expect_cfg_check(&cfg, "ca_file", "only for https:// URLs");
    cfg.ca_file[0] = 0;
    set_key(&cfg, "insecure_skip_verify", "true");
    expect_cfg_check(&cfg, "insecure_skip_verify", "only for https:// URLs");
    set_key(&cfg, "url", "HTTPS://127.0.0.1:8086");
    expect_cfg_check(&cfg, NULL, NULL);
    set_key(&cfg, "ca_file", "/etc/hostname");
    expect_cfg_check(&cfg, "insecure_skip_verify", "drop one of them");
    set_key(&cfg, "insecure_skip_verify", "false");
    expect_cfg_check(&cfg, NULL, NULL);
    set_key(&cfg, "ca_file", "/nonexistent/ca.pem");
    expect_cfg_check(&cfg, "ca_file", "ca_file /nonexistent/ca.pem: No such file or directory");
    cfg.ca_file[0] = 0;
    set_key(&cfg, "cert_file", "/etc/hostname");
    expect_cfg_check(&cfg, "key_file", "cert_file and key_file go together");
    cfg.cert_file[0] = 0;
    set_key(&cfg, "key_file", "/etc/hostname");
    expect_cfg_check(&cfg, "cert_file", "cert_file and key_file go together");
    set_key(&cfg, "cert_file", "/etc/hostname");
    set_key(&cfg, "key_file", "/tmp");
    expect_cfg_check(&cfg, "key_file", "key_file /tmp: not a regular file");
}

/* Two flushes share one connection; 408 is a timeout (RETRY, Retry-After
 * honoured), not a verdict on the data; after cancel nothing is sent and the
 * answer is RETRY. */
static void test_http_reuse_408_cancel(void **state)
{
    (void)state;
    struct responder rs;
    struct drv_influx_cfg cfg;
    struct hub_out_answer ans;
    char url[128], err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r[1] = {sample(1000, 1.5)};

    assert_int_equal(responder_start(&rs, AF_INET), 0);
    rs.answers[0] = A204;
    rs.answers[1] = A204;
    rs.answers[2] = "HTTP/1.1 408 Request Timeout\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n";
    rs.n_answers = 3; /* a fourth request would find the connection closed */
    responder_go(&rs);
    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", rs.port);
    set_key(&cfg, "url", url);
    set_key(&cfg, "database", "city");
    set_key(&cfg, "timeout", "3s");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_OK);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_OK);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_RETRY);
    assert_string_equal(ans.why, "HTTP 408");
    assert_int_equal(ans.retry_after_ns, 3 * 1000000000LL);
    drv_influx_ops.cancel(ctx);
    assert_int_equal(drv_influx_ops.flush(ctx, r, 1, &ans), HUB_OUT_RETRY);
    assert_string_equal(ans.why, "cancelled: the program is stopping");
    drv_influx_ops.exit(ctx);
    responder_stop(&rs);
    assert_int_equal(rs.n_req, 3);
    assert_int_equal(rs.n_conn, 1);
    responder_free(&rs);
    hub_reading_free(r[0]);
}

struct flush_job {
    void *ctx;
    hub_reading_t **r;
    struct hub_out_answer ans;
    enum hub_out_result res;
};

static void *flush_main(void *p)
{
    struct flush_job *j = p;
    j->res = drv_influx_ops.flush(j->ctx, j->r, 1, &j->ans);
    return NULL;
}

/* A store that takes the request and never answers: cancel makes the flush
 * in progress give up soon, as RETRY. */
static void test_http_cancel_in_flight(void **state)
{
    (void)state;
    struct drv_influx_cfg cfg;
    char url[128], err[256] = "";
    void *ctx = NULL;
    hub_reading_t *r[1] = {sample(1000, 1.5)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0); /* the kernel accepts; nobody answers */
    getsockname(fd, (struct sockaddr *)&a, &sl);
    cfg_base(&cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    set_key(&cfg, "url", url);
    set_key(&cfg, "database", "city");
    set_key(&cfg, "timeout", "20s");
    if (drv_influx_ops.init(&cfg, NULL, &ctx, err, sizeof(err)) != 0)
        fail_msg("init: %s", err);
    struct flush_job job = {.ctx = ctx, .r = r};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flush_main, &job), 0);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    drv_influx_ops.cancel(ctx);
    pthread_join(th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (took > 2.5)
        fail_msg("cancel took %.1f s", took);
    assert_int_equal(job.res, HUB_OUT_RETRY);
    assert_string_equal(job.ans.why, "cancelled: the program is stopping");
    drv_influx_ops.exit(ctx);
    close(fd);
    hub_reading_free(r[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_measurement),
        cmocka_unit_test(test_escape_tag_key),
        cmocka_unit_test(test_escape_tag_value),
        cmocka_unit_test(test_escape_field_key),
        cmocka_unit_test(test_escape_string_value),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_order_time_and_tags),
        cmocka_unit_test(test_no_field_and_cap),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_init_checks),
        cmocka_unit_test(test_http_v2),
        cmocka_unit_test(test_http_v1_basic_auth_plain),
        cmocka_unit_test(test_http_ipv6),
        cmocka_unit_test(test_http_closed_port_and_limits),
        cmocka_unit_test(test_init_secrets_not_shown),
        cmocka_unit_test(test_tls_checks),
        cmocka_unit_test(test_http_reuse_408_cancel),
        cmocka_unit_test(test_http_cancel_in_flight),
    };
    if (drv_influx_global_init() != 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
