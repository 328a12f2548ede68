/* tests/unit/test_notify.c — the messages firmware/notify.c sends to the
 * service manager, read from a real datagram socket named by NOTIFY_SOCKET:
 * RELOADING=1 with MONOTONIC_USEC, READY=1, STATUS=. And no watchdog (no
 * heartbeats) without WATCHDOG_USEC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "firmware/notify.h"

static int sock = -1;
static char path[108];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/cityhub-notify-test.%ld", (long)getpid());
    unlink(path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    sock = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sock < 0 || bind(sock, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    struct timeval tv = {2, 0}; /* a message that does not come fails the test */
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("NOTIFY_SOCKET", path, 1);
    unsetenv("WATCHDOG_USEC");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(sock);
    unlink(path);
    return 0;
}

static void next_message(char *buf, size_t len)
{
    ssize_t n = recv(sock, buf, len - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
}

static void test_reload(void **state)
{
    (void)state;
    char m[512];
    int64_t before = hub_mono_ns() / 1000;
    ch_notify_reloading();
    next_message(m, sizeof(m));
    long long usec = 0;
    assert_int_equal(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%lld\n", &usec), 1);
    assert_true(usec >= before && usec <= hub_mono_ns() / 1000);
    assert_non_null(strstr(m, "\nSTATUS=reloading"));
    ch_notify_reloaded(NULL); /* NULL: no summary */
    next_message(m, sizeof(m));
    assert_string_equal(m, "READY=1");
}

static void test_status(void **state)
{
    (void)state;
    char m[512];
    ch_notify_status("starting: journal recovery");
    next_message(m, sizeof(m));
    assert_string_equal(m, "STATUS=starting: journal recovery");
}

static void test_no_watchdog_no_beats(void **state)
{
    (void)state;
    assert_int_equal(ch_notify_watchdog_ns(), 0);
    assert_null(ch_notify_beats());
    ch_notify_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_no_watchdog_no_beats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
