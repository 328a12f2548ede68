/* tests/unit/test_hub_deadletter.c — the file of refused data: one JSON
 * line per entry, escaping, base64 for binary payloads, 0600, rotation;
 * the writer's flock and its reopening of a file replaced under it (as
 * `cityhub deadletter retry` replaces it). */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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

static int count_lines(const char *path)
{
    char *s = slurp(path);
    int n = 0;
    for (char *p = s; p && *p; p++)
        n += *p == '\n';
    free(s);
    return s ? n : -1;
}

/* Replace path by a new file holding text, as the retry tool does. */
static void replace_file(const char *path, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void test_reopen_replaced(void **state)
{
    (void)state;
    char path[128], moved[140], err[256];
    snprintf(path, sizeof(path), "%s/re.jsonl", dir);
    snprintf(moved, sizeof(moved), "%s.moved", path);
    hub_deadletter_t *d;
    assert_int_equal(hub_deadletter_open(path, 0, &d, err, sizeof(err)), HUB_OK);
    assert_int_equal(hub_deadletter_write(d, 0, "s", "seq", "1", "r", "a", 1), HUB_OK);
    /* the file is rewritten under the writer: the next entry goes to the new one */
    replace_file(path, "{\"kept\":1}\n");
    assert_int_equal(hub_deadletter_write(d, 0, "s", "seq", "2", "r", "b", 1), HUB_OK);
    char *s = slurp(path);
    assert_non_null(s);
    assert_non_null(strstr(s, "{\"kept\":1}\n{\"time\""));
    assert_non_null(strstr(s, "\"seq\":\"2\""));
    assert_null(strstr(s, "\"seq\":\"1\""));
    free(s);
    /* renamed away (no file at the path): a new file is begun */
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(hub_deadletter_write(d, 0, "s", "seq", "3", "r", "c", 1), HUB_OK);
    assert_int_equal(count_lines(moved), 2);
    assert_int_equal(count_lines(path), 1);
    s = slurp(path);
    assert_non_null(strstr(s, "\"seq\":\"3\""));
    free(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(hub_deadletter_count(d), 3);
    hub_deadletter_close(d);
}

struct writer {
    hub_deadletter_t *d;
    int rc;
    int done;
    pthread_mutex_t mu;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int rc = hub_deadletter_write(w->d, 0, "s", "seq", "9", "r", "late", 4);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int writer_done(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    int done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

/* An append waits while another holds flock(LOCK_EX) on the file; when that
 * one replaced the file before unlocking, the entry goes to the new file. */
static void test_waits_for_lock(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/lock.jsonl", dir);
    hub_deadletter_t *d;
    assert_int_equal(hub_deadletter_open(path, 0, &d, err, sizeof(err)), HUB_OK);
    assert_int_equal(hub_deadletter_write(d, 0, "s", "seq", "1", "r", "a", 1), HUB_OK);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    struct writer w = {.d = d};
    pthread_mutex_init(&w.mu, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    assert_false(writer_done(&w)); /* blocked on the lock */
    assert_int_equal(count_lines(path), 1);
    replace_file(path, "");
    assert_int_equal(flock(fd, LOCK_UN), 0);
    close(fd);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(writer_done(&w));
    assert_int_equal(w.rc, HUB_OK);
    char *s = slurp(path);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"payload\":\"late\""));
    assert_int_equal(count_lines(path), 1);
    free(s);
    pthread_mutex_destroy(&w.mu);
    hub_deadletter_close(d);
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
        cmocka_unit_test(test_entries),         cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_reopen_replaced), cmocka_unit_test(test_waits_for_lock),
        cmocka_unit_test(test_open_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
