/* tests/unit/test_hub_log.c — where log lines go (stderr, a file reopened
 * after logrotate, journald's priority prefixes) and debug of chosen
 * sources only. */
#include <fcntl.h>
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

#include "hub/log.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/hublog-XXXXXX");
    assert_non_null(mkdtemp(dir));
    hub_log_set_level(HUB_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hub_log_close();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("JOURNAL_STREAM");
    return 0;
}

/* The whole of a file, NUL-terminated (static buffer). */
static const char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_file_and_reopen(void **state)
{
    (void)state;
    char path[128], moved[128], err[256];
    snprintf(path, sizeof(path), "%s/cityhub.log", dir);
    snprintf(moved, sizeof(moved), "%s/cityhub.log.1", dir);
    assert_int_equal(hub_log_open(path, err, sizeof(err)), 0);
    hub_warn("modbus:meter-1", "read failed: %s", "timeout");
    hub_debug("modbus:meter-1", "not shown at info");
    const char *t = slurp(path);
    assert_non_null(strstr(t, "Z warn  [modbus:meter-1] read failed: timeout\n"));
    assert_null(strstr(t, "not shown"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    /* logrotate renames it, then SIGHUP: a new file, the old one complete */
    assert_int_equal(rename(path, moved), 0);
    hub_info("cityhub", "still to the moved file");
    assert_int_equal(hub_log_reopen(), 0);
    hub_info("cityhub", "into the new file");
    assert_non_null(strstr(slurp(moved), "still to the moved file"));
    t = slurp(path);
    assert_non_null(strstr(t, "into the new file"));
    assert_null(strstr(t, "still to the moved file"));

    snprintf(path, sizeof(path), "%s/no/such/dir/x.log", dir);
    assert_int_equal(hub_log_open(path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file or directory"));
}

/* Under systemd stderr is journald's: priority prefix, no timestamp. */
static void test_journald_prefix(void **state)
{
    (void)state;
    char path[128], js[64];
    snprintf(path, sizeof(path), "%s/stderr", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    struct stat st;
    assert_int_equal(fstat(2, &st), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    assert_int_equal(hub_log_open(NULL, NULL, 0), 0);
    hub_err("influxdb:ioc", "ALARM: %s", "refused");
    hub_info("cityhub", "started");
    fflush(stderr);
    setenv("JOURNAL_STREAM", "1:2", 1); /* another stream: timestamps again */
    assert_int_equal(hub_log_open(NULL, NULL, 0), 0);
    hub_warn("journal", "plain");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    const char *t = slurp(path);
    assert_non_null(strstr(t, "<3>error [influxdb:ioc] ALARM: refused\n"));
    assert_non_null(strstr(t, "<6>info  [cityhub] started\n"));
    assert_non_null(strstr(t, "Z warn  [journal] plain\n"));
    assert_null(strstr(t, "<4>warn  [journal]"));
}

/* --debug WHO: debug lines of those sources only. */
static void test_debug_selected(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/d.log", dir);
    assert_int_equal(hub_log_open(path, err, sizeof(err)), 0);
    assert_int_equal(hub_log_debug_add("modbus:meter-1"), 0);
    assert_int_equal(hub_log_debug_add("mqtt"), 0);
    hub_debug("modbus:meter-1", "frame 01 03 00 00");
    hub_debug("modbus:meter-2", "not this one");
    hub_debug("mqtt:lorawan", "any mqtt");
    hub_debug("mqttx:y", "not a prefix match");
    hub_debug("influxdb:ioc", "not influx");
    const char *t = slurp(path);
    assert_non_null(strstr(t, "[modbus:meter-1] frame 01 03 00 00"));
    assert_non_null(strstr(t, "[mqtt:lorawan] any mqtt"));
    assert_null(strstr(t, "not this one"));
    assert_null(strstr(t, "not a prefix"));
    assert_null(strstr(t, "not influx"));
    for (int i = 2; i < 16; i++)
        assert_int_equal(hub_log_debug_add("x"), 0);
    assert_int_equal(hub_log_debug_add("one too many"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journald_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_selected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
