/* tests/unit/test_hub_deadletter.c — the file of refused data: one JSON
 * line per entry, escaping, base64 for binary payloads, 0600, rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/buf.h"
#include "hub/deadletter.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cityhub-dl.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_entries(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/dl.jsonl", dir);
    hub_deadletter_t *d;
    assert_int_equal(hub_deadletter_open(path, 0, &d, err, sizeof(err)), HUB_OK);
    /* 2026-12-03T07:15:00.123Z */
    int64_t t = 1796282100123000000LL;
    assert_int_equal(
        hub_deadletter_write(d, t, "mqtt:in", "topic", "a/b", "bad \"x\"\n", "{\"v\":1}\n", 8),
        HUB_OK);
    const unsigned char bin[] = {0x00, 0xff, 0x10};
    assert_int_equal(hub_deadletter_write(d, t, "mqtt:in", "topic", "a/c", "NUL", bin, 3), HUB_OK);
    assert_int_equal(hub_deadletter_count(d), 2);
    hub_deadletter_close(d);

    char *s = slurp(path);
    assert_non_null(s);
    assert_string_equal(s, "{\"time\":\"2026-12-03T07:15:00.123Z\",\"source\":\"mqtt:in\","
                           "\"topic\":\"a/b\",\"reason\":\"bad \\\"x\\\"\\n\",\"payload\":"
                           "\"{\\\"v\\\":1}\\n\"}\n"
                           "{\"time\":\"2026-12-03T07:15:00.123Z\",\"source\":\"mqtt:in\","
                           "\"topic\":\"a/c\",\"reason\":\"NUL\",\"payload_base64\":\"AP8Q\"}\n");
    free(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_rotation(void **state)
{
    (void)state;
    char path[128], old[140], err[256];
    snprintf(path, sizeof(path), "%s/rot.jsonl", dir);
    snprintf(old, sizeof(old), "%s.1", path);
    hub_deadletter_t *d;
    assert_int_equal(hub_deadletter_open(path, 300, &d, err, sizeof(err)), HUB_OK);
    char payload[100];
    memset(payload, 'x', sizeof(payload));
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            hub_deadletter_write(d, 0, "s", "topic", "t", "r", payload, sizeof(payload)), HUB_OK);
    hub_deadletter_close(d);
    struct stat a, b;
    assert_int_equal(stat(path, &a), 0);
    assert_int_equal(stat(old, &b), 0);
    assert_true(a.st_size <= 300);
    assert_true(b.st_size <= 300);
    assert_true(a.st_size > 0 && b.st_size > 0);
}

static void test_open_fails(void **state)
{
    (void)state;
    char err[256];
    hub_deadletter_t *d = NULL;
    assert_int_equal(hub_deadletter_open("/nonexistent-dir/x/dl", 0, &d, err, sizeof(err)),
                     HUB_EIO);
    assert_null(d);
    assert_non_null(strstr(err, "/nonexistent-dir/x/dl"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_open_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
