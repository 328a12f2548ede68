/* tests/unit/test_hub_journal.c — the journal: framing, recovery at every torn
 * offset, rotation, cursors, deletion, the full policies, a full file system
 * (a small tmpfs, or the journal's fault hook where mounting is not
 * permitted), committed end and concurrent appends. Each test works in its
 * own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/crc32c.h"
#include "hub/journal.h"
#include "hub/journal_priv.h" /* the fault hook */
#include "hub/log.h"

/* ---- fixtures ------------------------------------------------------------ */

struct fx {
    char dir[64];
    bool mounted; /* a small tmpfs on dir (test_disk_full_*) */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hubj-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Log lines go to a file while a test counts them (capture_begin/_end). */
struct capture {
    int saved;
    char path[64];
};
static struct capture *capturing; /* restored by teardown after a failure */
static int sync_fail_n;           /* test_failed_fsync_rewrites */
static const char *sync_garble_path;
static void capture_begin(struct capture *c);
static int capture_end(struct capture *c, const char *needle);

static int teardown(void **state)
{
    struct fx *f = *state;
    if (capturing)
        capture_end(capturing, "");
    hub_journal_fault_hook = NULL;
    hub_journal_sync_hook = NULL;
    sync_fail_n = 0;
    sync_garble_path = NULL;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (f->mounted) {
        if (umount(f->dir) != 0 && umount2(f->dir, MNT_DETACH) != 0) /* busy after a failure */
            fprintf(stderr, "umount %s: %s\n", f->dir, strerror(errno));
        rmdir(f->dir);
    }
    free(f);
    return 0;
}

static hub_journal_t *jopen(const char *dir, uint64_t seg, uint64_t max, int on_full)
{
    struct hub_journal_opts o = {.dir = dir,
                                 .segment_size = seg,
                                 .max_size = max,
                                 .on_full = (enum hub_journal_on_full)on_full};
    hub_journal_t *j = NULL;
    char err[256] = "";
    int rc = hub_journal_open(&o, &j, err, sizeof(err));
    if (rc != HUB_OK)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, HUB_OK);
    assert_non_null(j);
    return j;
}

/* Payload i: length 1 + (i*7 % 60), bytes derived from i. */
static size_t mkpayload(uint64_t i, uint8_t *p)
{
    size_t n = 1 + (size_t)(i * 7 % 60);
    for (size_t k = 0; k < n; k++)
        p[k] = (uint8_t)(i * 31 + k * 7 + 1);
    return n;
}

static void append_n(hub_journal_t *j, uint64_t from, uint64_t n)
{
    uint8_t p[128];
    for (uint64_t i = from; i < from + n; i++) {
        uint64_t s = UINT64_MAX;
        size_t len = mkpayload(i, p);
        assert_int_equal(hub_journal_append(j, p, len, &s), HUB_OK);
        assert_int_equal(s, i);
    }
}

/* Read everything from `from`, checking each record is gen(seq) and seqs
 * are consecutive from `expect_first`. Returns the count; *skipped gets the
 * reported gap. */
static uint64_t read_gen(hub_journal_t *j, uint64_t from, uint64_t expect_first,
                         size_t (*gen)(uint64_t, uint8_t *), uint64_t *skipped_out)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf b;
    uint8_t want[128];
    uint64_t n = 0, skipped = 0, seq;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_new(j, from, &rd), HUB_OK);
    int rc;
    while ((rc = hub_journal_reader_next(rd, &b, &seq, &skipped)) == HUB_OK) {
        assert_int_equal(seq, expect_first + n);
        size_t len = gen(seq, want);
        assert_int_equal(b.len, len);
        assert_memory_equal(b.data, want, len);
        n++;
    }
    assert_int_equal(rc, HUB_EEMPTY);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    if (skipped_out)
        *skipped_out = skipped;
    return n;
}

/* read_gen of the payloads of append_n. */
static uint64_t read_check(hub_journal_t *j, uint64_t from, uint64_t expect_first,
                           uint64_t *skipped_out)
{
    return read_gen(j, from, expect_first, mkpayload, skipped_out);
}

static void seg_file(const char *dir, uint64_t base, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".seg", dir, base);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

static int count_segs(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0)
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void patch_file(const char *path, uint64_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static uint8_t read_byte(const char *path, uint64_t off)
{
    uint8_t c = 0;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    close(fd);
    return c;
}

/* A valid frame for seq with payload p into out; returns its size. */
static size_t mkframe(uint8_t *out, uint64_t seq, const void *p, uint32_t n)
{
    memset(out, 0, 16);
    for (int i = 0; i < 4; i++)
        out[4 + i] = (uint8_t)(n >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(seq >> (8 * i));
    memcpy(out + 16, p, n);
    uint32_t crc = hub_crc32c_mask(hub_crc32c(0, out + 4, 12 + n));
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(crc >> (8 * i));
    return 16 + n;
}

/* ---- tests --------------------------------------------------------------- */

static void test_append_reopen_read(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 0);
    assert_int_equal(st.first_seq, 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.bytes, HUB_JOURNAL_HEADER_SIZE);

    append_n(j, 0, 100);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 100);
    assert_int_equal(st.appends, 100);
    uint64_t payload_bytes = 0;
    uint8_t p[128];
    for (uint64_t i = 0; i < 100; i++)
        payload_bytes += mkpayload(i, p);
    assert_int_equal(st.append_bytes, payload_bytes + 100 * HUB_JOURNAL_FRAME_SIZE);
    assert_int_equal(st.bytes, HUB_JOURNAL_HEADER_SIZE + st.append_bytes);
    assert_int_equal(read_check(j, 0, 0, NULL), 100);
    assert_int_equal(read_check(j, 37, 37, NULL), 63);
    assert_int_equal(read_check(j, 100, 100, NULL), 0);
    hub_journal_close(j);

    /* The file holds exactly header + frames. */
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    assert_int_equal(file_size(path), HUB_JOURNAL_HEADER_SIZE + st.append_bytes);
    assert_int_equal(read_byte(path, 0), 'C');
    assert_int_equal(read_byte(path, 3), '1');

    j = jopen(f->dir, 0, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 100);
    assert_int_equal(st.recovered_cut, 0);
    assert_int_equal(read_check(j, 0, 0, NULL), 100);
    append_n(j, 100, 5);
    assert_int_equal(read_check(j, 0, 0, NULL), 105);
    hub_journal_close(j);
}

static void test_frame_layout(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 2);
    hub_journal_close(j);
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t b[256];
    ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    uint8_t p[128];
    size_t l0 = mkpayload(0, p), l1 = mkpayload(1, p);
    assert_int_equal(n, 16 + 16 + l0 + 16 + l1);
    assert_memory_equal(b, "CHJ1\2\0\0\0\0\0\0\0\0\0\0\0", 16);
    /* Second record: crc | len | seq=1 | payload, CRC over len..payload. */
    uint8_t *r = b + 16 + 16 + l0;
    uint32_t len =
        (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
    assert_int_equal(len, l1);
    assert_int_equal(r[8], 1);
    for (int i = 9; i < 16; i++)
        assert_int_equal(r[i], 0);
    uint32_t crc =
        (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
    assert_int_equal(hub_crc32c_unmask(crc), hub_crc32c(0, r + 4, 12 + l1));
}

static void test_invalid_appends(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    uint8_t x = 1;
    assert_int_equal(hub_journal_append(j, &x, 0, NULL), HUB_EINVAL);
    uint8_t *big = calloc(1, HUB_JOURNAL_MAX_RECORD + 1);
    assert_non_null(big);
    assert_int_equal(hub_journal_append(j, big, HUB_JOURNAL_MAX_RECORD + 1, NULL), HUB_EINVAL);
    /* The largest record goes through and reads back. */
    big[0] = 7;
    big[HUB_JOURNAL_MAX_RECORD - 1] = 9;
    uint64_t s = 99;
    assert_int_equal(hub_journal_append(j, big, HUB_JOURNAL_MAX_RECORD, &s), HUB_OK);
    assert_int_equal(s, 0);
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    uint64_t skipped = 0, seq = 5;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(b.len, HUB_JOURNAL_MAX_RECORD);
    assert_memory_equal(b.data, big, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    free(big);
    hub_journal_close(j);
}

/* Cut the last record at every byte offset: the records before it survive,
 * it is gone, next_seq is its seq, and a new append reads back. */
static void test_torn_tail_every_offset(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));

    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 3);
    hub_journal_close(j);
    uint64_t end = file_size(path);
    uint8_t p[128];
    uint64_t start = end - HUB_JOURNAL_FRAME_SIZE - mkpayload(2, p);
    uint8_t *orig = malloc(end);
    assert_non_null(orig);
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, orig, end), (ssize_t)end);
    close(fd);

    for (uint64_t cut = start; cut < end; cut++) {
        write_file(path, orig, cut);
        j = jopen(f->dir, 0, 0, 0);
        struct hub_journal_stats st;
        hub_journal_stats(j, &st);
        assert_int_equal(st.next_seq, 2);
        assert_int_equal(st.recovered_cut, cut - start);
        assert_int_equal(file_size(path), start);
        assert_int_equal(read_check(j, 0, 0, NULL), 2);
        append_n(j, 2, 1); /* the same payload as the lost one */
        assert_int_equal(read_check(j, 0, 0, NULL), 3);
        hub_journal_close(j);
        assert_int_equal(file_size(path), end);
        j = jopen(f->dir, 0, 0, 0);
        assert_int_equal(read_check(j, 0, 0, NULL), 3);
        hub_journal_close(j);
    }
    free(orig);
}

/* A power cut can leave the file longer, filled with zeros. */
static void test_zero_filled_tail(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 4);
    hub_journal_close(j);
    uint64_t end = file_size(path);
    uint8_t zeros[4096] = {0};
    patch_file(path, end, zeros, sizeof(zeros));
    j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 4);
    assert_int_equal(st.recovered_cut, sizeof(zeros));
    assert_int_equal(file_size(path), end);
    assert_int_equal(read_check(j, 0, 0, NULL), 4);
    hub_journal_close(j);
}

/* A flipped byte anywhere in the last record (header or payload) cuts it. */
static void test_flipped_byte_cuts(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    uint8_t p[128];
    uint64_t last_len = HUB_JOURNAL_FRAME_SIZE + mkpayload(4, p);

    for (uint64_t k = 0; k < last_len; k++) {
        unlink(path);
        hub_journal_t *j = jopen(f->dir, 0, 0, 0);
        append_n(j, 0, 5);
        hub_journal_close(j);
        uint64_t end = file_size(path);
        uint64_t start = end - last_len;
        uint8_t c = read_byte(path, start + k) ^ 0x10;
        patch_file(path, start + k, &c, 1);

        j = jopen(f->dir, 0, 0, 0);
        struct hub_journal_stats st;
        hub_journal_stats(j, &st);
        assert_int_equal(st.next_seq, 4);
        assert_int_equal(st.recovered_cut, last_len);
        assert_int_equal(file_size(path), start);
        assert_int_equal(read_check(j, 0, 0, NULL), 4);
        hub_journal_close(j);
    }
}

/* A record whose CRC is right but whose seq is not the next one is cut. */
static void test_seq_gap_cuts(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 2);
    hub_journal_close(j);
    uint64_t end = file_size(path);
    uint8_t fr[16 + 3] = {0};
    fr[4] = 3; /* length 3 */
    fr[8] = 5; /* seq 5 instead of 2 */
    memcpy(fr + 16, "abc", 3);
    uint32_t crc = hub_crc32c_mask(hub_crc32c(0, fr + 4, 15));
    for (int i = 0; i < 4; i++)
        fr[i] = (uint8_t)(crc >> (8 * i));
    patch_file(path, end, fr, sizeof(fr));
    j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 2);
    assert_int_equal(st.recovered_cut, sizeof(fr));
    hub_journal_close(j);
}

static void test_read_only_does_not_cut(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 3);
    hub_journal_close(j);
    uint64_t end = file_size(path);
    assert_int_equal(truncate(path, (off_t)(end - 3)), 0);

    struct hub_journal_opts o = {.dir = f->dir, .read_only = true};
    hub_journal_t *r = NULL;
    char err[256];
    assert_int_equal(hub_journal_open(&o, &r, err, sizeof(err)), HUB_OK);
    struct hub_journal_stats st;
    hub_journal_stats(r, &st);
    assert_int_equal(st.next_seq, 2);
    assert_int_equal(st.recovered_cut, 0);
    assert_int_equal(read_check(r, 0, 0, NULL), 2);
    uint8_t x = 1;
    assert_int_equal(hub_journal_append(r, &x, 1, NULL), HUB_EINVAL);
    hub_journal_close(r);
    assert_int_equal(file_size(path), end - 3);

    /* A read-only open of a missing journal fails and creates nothing. */
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    o.dir = missing;
    assert_int_not_equal(hub_journal_open(&o, &r, err, sizeof(err)), HUB_OK);
    assert_non_null(strstr(err, missing));
    assert_int_equal(access(missing, F_OK), -1);
}

static void test_rotation_and_read_across(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 60);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_true(st.segments >= 5);
    assert_int_equal(count_segs(f->dir), (int)st.segments);
    assert_int_equal(st.next_seq, 60);
    /* Each rotation fsyncs the sealed file, the new file and the dir. */
    assert_int_equal(st.fsyncs, 3 + 3 * (st.segments - 1));
    assert_int_equal(read_check(j, 0, 0, NULL), 60);
    assert_int_equal(read_check(j, 45, 45, NULL), 15);

    /* A reader that catches up keeps following across rotations. */
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0, got = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK)
        assert_int_equal(seq, got++);
    assert_int_equal(got, 60);
    append_n(j, 60, 40);
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK)
        assert_int_equal(seq, got++);
    assert_int_equal(got, 100);
    assert_int_equal(skipped, 0);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);

    /* Every segment is at most segment_size and named by its first seq. */
    j = jopen(f->dir, 256, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 100);
    assert_int_equal(read_check(j, 0, 0, NULL), 100);
    hub_journal_close(j);
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    assert_true(file_size(path) <= 256);
}

static void test_sync_counts(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    /* A fresh journal: cursors/ entry, the first segment, its dir entry. */
    uint64_t base = st.fsyncs;
    assert_int_equal(base, 3);
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    hub_journal_stats(j, &st);
    assert_int_equal(st.fsyncs, base);
    append_n(j, 0, 10);
    hub_journal_stats(j, &st);
    assert_int_equal(st.fsyncs, base); /* appends never fsync */
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    hub_journal_stats(j, &st);
    assert_int_equal(st.fsyncs, base + 1);
    hub_journal_close(j);
}

static void test_cursor_commit_reopen(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 10);
    uint64_t c = 99;
    assert_int_equal(hub_journal_cursor_peek(j, "influx", &c), HUB_EEMPTY);
    assert_int_equal(hub_journal_cursor_open(j, "influx", &c), HUB_OK);
    assert_int_equal(c, 0);
    assert_int_equal(hub_journal_cursor_open(j, "bad/name", &c), HUB_EINVAL);
    assert_int_equal(hub_journal_cursor_open(j, "..", &c), HUB_EINVAL);
    assert_int_equal(hub_journal_cursor_open(j, "", &c), HUB_EINVAL);
    assert_int_equal(hub_journal_cursor_commit(j, "influx", 11), HUB_EINVAL); /* past end */
    struct hub_journal_stats st0, st1;
    hub_journal_stats(j, &st0);
    assert_int_equal(hub_journal_cursor_commit(j, "influx", 7), HUB_OK);
    hub_journal_stats(j, &st1);
    assert_int_equal(st1.fsyncs, st0.fsyncs + 2); /* temp file + directory */
    assert_int_equal(hub_journal_cursor_commit(j, "influx", 7), HUB_OK);
    hub_journal_stats(j, &st0);
    assert_int_equal(st0.fsyncs, st1.fsyncs); /* unchanged: nothing written */
    assert_int_equal(hub_journal_cursor_peek(j, "influx", &c), HUB_OK);
    assert_int_equal(c, 7);
    hub_journal_close(j);

    char path[160], buf[64] = {0};
    snprintf(path, sizeof(path), "%s/cursors/influx", f->dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    char expect[64];
    snprintf(expect, sizeof(expect), "7\ncrc32c %08" PRIx32 "\n", hub_crc32c(0, "7\n", 2));
    assert_string_equal(buf, expect);

    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(hub_journal_cursor_open(j, "influx", &c), HUB_OK);
    assert_int_equal(c, 7);
    assert_int_equal(hub_journal_cursor_open(j, "live", &c), HUB_OK);
    assert_int_equal(c, 0);
    hub_journal_close(j);
}

static void test_too_many_cursors(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    char name[16];
    uint64_t c;
    for (int i = 0; i < HUB_JOURNAL_MAX_CURSORS; i++) {
        snprintf(name, sizeof(name), "out%d", i);
        assert_int_equal(hub_journal_cursor_open(j, name, &c), HUB_OK);
    }
    assert_int_equal(hub_journal_cursor_open(j, "out0", &c), HUB_OK); /* again: fine */
    assert_int_equal(hub_journal_cursor_open(j, "one-more", &c), HUB_EFULL);
    hub_journal_close(j);
}

static void test_corrupt_cursor_falls_back(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 40);
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "a", &c), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "a", 20), HUB_OK);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t first = st.first_seq;
    assert_true(first > 0 && first <= 20);
    hub_journal_close(j);

    char path[160];
    snprintf(path, sizeof(path), "%s/cursors/a", f->dir);
    const char *bad[] = {
        "garbage",
        "",
        "25\ncrc32c 00000000\n", /* wrong CRC */
        "25\n",                  /* no CRC line */
        "2x\ncrc32c 00000000\n",
        "99999999999999999999999\ncrc32c 00000000\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, bad[i], strlen(bad[i]));
        j = jopen(f->dir, 256, 0, 0);
        assert_int_equal(hub_journal_cursor_peek(j, "a", &c), HUB_ECORRUPT);
        c = 12345;
        assert_int_equal(hub_journal_cursor_open(j, "a", &c), HUB_OK);
        assert_int_equal(c, first);
        hub_journal_close(j);
    }
    /* A correct file with one digit changed is caught by the CRC. */
    char good[64];
    snprintf(good, sizeof(good), "25\ncrc32c %08" PRIx32 "\n", hub_crc32c(0, "25\n", 3));
    write_file(path, good, strlen(good));
    j = jopen(f->dir, 256, 0, 0);
    assert_int_equal(hub_journal_cursor_peek(j, "a", &c), HUB_OK);
    assert_int_equal(c, 25);
    hub_journal_close(j);
    good[1] = '6';
    write_file(path, good, strlen(good));
    j = jopen(f->dir, 256, 0, 0);
    assert_int_equal(hub_journal_cursor_peek(j, "a", &c), HUB_ECORRUPT);
    hub_journal_close(j);
}

static void test_cursor_deletes_segments(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 60);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t segs = st.segments;
    assert_true(segs >= 5);
    uint64_t a, b;
    assert_int_equal(hub_journal_cursor_open(j, "a", &a), HUB_OK);
    assert_int_equal(hub_journal_cursor_open(j, "b", &b), HUB_OK);
    /* a passes everything, b holds at 0: nothing deleted. */
    assert_int_equal(hub_journal_cursor_commit(j, "a", 60), HUB_OK);
    hub_journal_stats(j, &st);
    assert_int_equal(st.segments, segs);
    assert_int_equal(st.first_seq, 0);
    /* b passes the middle: segments wholly below it go. */
    assert_int_equal(hub_journal_cursor_commit(j, "b", 30), HUB_OK);
    hub_journal_stats(j, &st);
    assert_true(st.segments < segs);
    assert_true(st.first_seq > 0 && st.first_seq <= 30);
    assert_int_equal(count_segs(f->dir), (int)st.segments);
    assert_int_equal(read_check(j, 30, 30, NULL), 30);
    uint64_t skipped = 0;
    assert_int_equal(read_check(j, 0, st.first_seq, &skipped), 60 - st.first_seq);
    assert_int_equal(skipped, st.first_seq);
    assert_int_equal(st.dropped, 0);
    /* Both at the end: only the active segment is left. */
    assert_int_equal(hub_journal_cursor_commit(j, "b", 60), HUB_OK);
    hub_journal_stats(j, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(count_segs(f->dir), 1);
    assert_int_equal(st.next_seq, 60);
    assert_int_equal(st.dropped, 0);
    hub_journal_close(j);
}

/* A cursor closed (its output removed by a reload) holds nothing: what the
 * others passed goes at once; its file stays, and opened again it resumes
 * where it was, or at the oldest stored record once that was dropped. */
static void test_cursor_close_releases(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 60);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t segs = st.segments, a, b;
    assert_int_equal(hub_journal_cursor_open(j, "a", &a), HUB_OK);
    assert_int_equal(hub_journal_cursor_open(j, "b", &b), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "b", 5), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "a", 60), HUB_OK);
    hub_journal_stats(j, &st);
    assert_true(st.first_seq <= 5);
    assert_int_equal(hub_journal_cursor_close(j, "b"), HUB_OK);
    assert_int_equal(hub_journal_cursor_close(j, "b"), HUB_EEMPTY);
    assert_int_equal(hub_journal_cursor_close(j, "bad/name"), HUB_EINVAL);
    hub_journal_stats(j, &st);
    assert_true(st.segments < segs);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(hub_journal_cursor_peek(j, "b", &b), HUB_OK); /* the file stays */
    assert_int_equal(b, 5);
    /* b again: its records were dropped meanwhile, it starts at the oldest */
    assert_int_equal(hub_journal_cursor_open(j, "b", &b), HUB_OK);
    assert_int_equal(b, st.first_seq);
    /* closed before anything was dropped, it resumes where it was */
    assert_int_equal(hub_journal_cursor_commit(j, "b", 58), HUB_OK);
    assert_int_equal(hub_journal_cursor_close(j, "b"), HUB_OK);
    assert_int_equal(hub_journal_cursor_open(j, "b", &b), HUB_OK);
    assert_int_equal(b, 58);
    /* every cursor closed: nothing is deleted for want of a holder */
    assert_int_equal(hub_journal_cursor_close(j, "a"), HUB_OK);
    assert_int_equal(hub_journal_cursor_close(j, "b"), HUB_OK);
    append_n(j, 60, 20);
    hub_journal_stats(j, &st);
    assert_int_equal(read_check(j, st.first_seq, st.first_seq, NULL), 80 - st.first_seq);
    assert_true(st.first_seq <= 58);
    hub_journal_close(j);
}

/* next_seq survives a restart when everything delivered was deleted. */
static void test_next_seq_survives(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 50);
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "out", 50), HUB_OK);
    hub_journal_close(j);

    j = jopen(f->dir, 256, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 50);
    assert_int_equal(st.segments, 1);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, 50);
    uint64_t s;
    assert_int_equal(hub_journal_append(j, "x", 1, &s), HUB_OK);
    assert_int_equal(s, 50);
    hub_journal_close(j);
}

/* An empty segment names the next seq; a torn header is rewritten. */
static void test_empty_and_torn_header_segment(void **state)
{
    struct fx *f = *state;
    char path[128];
    uint8_t h[16] = {'C', 'H', 'J', '1', 1, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
    seg_file(f->dir, 42, path, sizeof(path));
    write_file(path, h, sizeof(h));
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 42);
    assert_int_equal(st.first_seq, 42);
    uint64_t s, c;
    assert_int_equal(hub_journal_cursor_open(j, "x", &c), HUB_OK);
    assert_int_equal(c, 42);
    hub_journal_close(j);

    for (size_t torn = 0; torn < sizeof(h); torn++) {
        write_file(path, h, torn);
        j = jopen(f->dir, 0, 0, 0);
        hub_journal_stats(j, &st);
        assert_int_equal(st.next_seq, 42);
        assert_int_equal(st.recovered_cut, torn);
        assert_int_equal(file_size(path), 16);
        assert_int_equal(hub_journal_append(j, "y", 1, &s), HUB_OK);
        assert_int_equal(s, 42);
        hub_journal_close(j);
        j = jopen(f->dir, 0, 0, 0);
        hub_journal_stats(j, &st);
        assert_int_equal(st.next_seq, 43);
        hub_journal_close(j);
    }
}

static void test_drop_oldest(void **state)
{
    struct fx *f = *state;
    /* Frames are 17..76 bytes; 4 KiB max, 512 B segments. */
    hub_journal_t *j = jopen(f->dir, 512, 4096, HUB_JOURNAL_DROP_OLDEST);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);

    append_n(j, 0, 5);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, 0);
    append_n(j, 5, 400);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_true(st.bytes <= 4096);
    assert_true(st.first_seq > 1);
    assert_int_equal(st.next_seq, 405);
    /* No cursor registered: every deleted record was undelivered. */
    assert_int_equal(st.dropped, st.first_seq);
    assert_int_equal(count_segs(f->dir), (int)st.segments);

    /* The reader wanted 1: it lands on first_seq and reports the gap. */
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, st.first_seq);
    assert_int_equal(skipped, st.first_seq - 1);
    uint8_t want[128];
    size_t len = mkpayload(seq, want);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, want, len);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    assert_int_equal(read_check(j, st.first_seq, st.first_seq, NULL), 405 - st.first_seq);

    /* With a cursor, only records it had not passed count as dropped. */
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, st.first_seq);
    uint64_t deliv = st.first_seq + 10;
    assert_int_equal(hub_journal_cursor_commit(j, "out", deliv), HUB_OK);
    struct hub_journal_stats st1;
    hub_journal_stats(j, &st1);
    uint64_t dropped0 = st1.dropped, first0 = st1.first_seq;
    append_n(j, 405, 200);
    hub_journal_stats(j, &st1);
    assert_true(st1.first_seq > deliv);
    assert_int_equal(st1.dropped - dropped0, st1.first_seq - (deliv > first0 ? deliv : first0));
    /* The cursor was overtaken: reopening it lands on first_seq. */
    hub_journal_close(j);
    j = jopen(f->dir, 512, 4096, HUB_JOURNAL_DROP_OLDEST);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, st1.first_seq);
    hub_journal_close(j);
}

static void test_drop_newest(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 512, 4096, HUB_JOURNAL_DROP_NEWEST);
    uint8_t p[128];
    uint64_t i = 0, s;
    int rc;
    while ((rc = hub_journal_append(j, p, mkpayload(i, p), &s)) == HUB_OK) {
        assert_int_equal(s, i);
        i++;
        assert_true(i < 1000);
    }
    assert_int_equal(rc, HUB_EFULL);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, i);
    assert_int_equal(st.first_seq, 0);
    assert_int_equal(st.dropped, 0);
    assert_true(st.bytes <= 4096);
    assert_true(st.bytes > 4096 - 512 - 100);
    assert_int_equal(hub_journal_append(j, p, mkpayload(i, p), &s), HUB_EFULL);
    /* Everything still readable. */
    assert_int_equal(read_check(j, 0, 0, NULL), i);
    /* Delivering frees space: appends go through again. */
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "out", i), HUB_OK);
    assert_int_equal(hub_journal_append(j, p, mkpayload(i, p), &s), HUB_OK);
    assert_int_equal(s, i);
    hub_journal_close(j);
}

/* Bytes past the committed end (a write in flight, or junk) are never read,
 * even when they form a valid record. */
static void test_reader_stops_at_committed_end(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 3);
    uint64_t end = file_size(path);
    uint8_t fr[16 + 2] = {0};
    fr[4] = 2;
    fr[8] = 3;
    fr[16] = 'h';
    fr[17] = 'i';
    uint32_t crc = hub_crc32c_mask(hub_crc32c(0, fr + 4, 14));
    for (int i = 0; i < 4; i++)
        fr[i] = (uint8_t)(crc >> (8 * i));
    patch_file(path, end, fr, sizeof(fr));

    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
        assert_int_equal(seq, i);
    }
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    /* A real append overwrites the stray bytes and becomes visible. */
    append_n(j, 3, 1);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, 3);
    uint8_t want[128];
    size_t len = mkpayload(3, want);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, want, len);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    assert_int_equal(skipped, 0);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* A bad record in a sealed segment: HUB_ECORRUPT, skip to the next one. */
static void test_sealed_segment_corrupt(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 30);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_true(st.segments >= 3);
    hub_journal_close(j);

    /* Find the second segment's base: the first file after 0. */
    uint64_t second = 0;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 24)
            continue;
        uint64_t b = strtoull(e->d_name, NULL, 10);
        if (b > 0 && (second == 0 || b < second))
            second = b;
    }
    closedir(d);
    assert_true(second > 2);
    /* Flip a payload byte of record 1 (in segment 0). */
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    uint8_t p[128];
    uint64_t off = 16 + 16 + mkpayload(0, p) + 16;
    uint8_t c = read_byte(path, off) ^ 1;
    patch_file(path, off, &c, 1);

    j = jopen(f->dir, 256, 0, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, 0);
    /* record 1 alone is lost: the reader reads on at record 2 */
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_ECORRUPT);
    assert_int_equal(skipped, 1);
    uint64_t n = 0;
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK) {
        assert_int_equal(seq, 2 + n++);
        size_t len = mkpayload(seq, p);
        assert_memory_equal(b.data, p, len);
    }
    assert_int_equal(2 + n, 30);
    assert_int_equal(skipped, 1);
    hub_journal_reader_free(rd);

    /* The last record of the segment damaged: nothing to read on at in it,
     * the reader goes on with the next segment. */
    uint64_t last_off = 16, k;
    for (k = 0; k + 1 < second; k++)
        last_off += 16 + mkpayload(k, p);
    c = read_byte(path, last_off + 16) ^ 1;
    patch_file(path, last_off + 16, &c, 1);
    skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 2, &rd), HUB_OK);
    for (k = 2; k + 1 < second; k++) {
        assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
        assert_int_equal(seq, k);
    }
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_ECORRUPT);
    assert_int_equal(skipped, 1);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
    assert_int_equal(seq, second);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* One damaged record in the middle of the newest segment (a flipped bit in
 * its payload, or in its length) costs that record only: recovery passes
 * over it and keeps the records after it, appends go on, and a reader
 * reports the one record as corrupt. */
static void test_active_damage_resyncs(void **state)
{
    struct fx *f = *state;
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    uint8_t p[128];
    uint64_t off7 = 16;
    for (uint64_t k = 0; k < 7; k++)
        off7 += 16 + mkpayload(k, p);
    uint64_t len7 = 16 + mkpayload(7, p);
    /* a payload byte, a length byte (record too long), a seq byte */
    const uint64_t at[] = {off7 + 16, off7 + 4, off7 + 9};
    for (size_t t = 0; t < sizeof(at) / sizeof(at[0]); t++) {
        unlink(path);
        hub_journal_t *j = jopen(f->dir, 0, 0, 0);
        append_n(j, 0, 20);
        hub_journal_close(j);
        uint64_t size = file_size(path);
        uint8_t c = read_byte(path, at[t]) ^ 0x40;
        patch_file(path, at[t], &c, 1);

        j = jopen(f->dir, 0, 0, 0);
        struct hub_journal_stats st;
        hub_journal_stats(j, &st);
        assert_int_equal(st.next_seq, 20);
        assert_int_equal(st.recovered_cut, 0);
        assert_int_equal(st.damaged_records, 1);
        assert_int_equal(st.damaged_bytes, len7);
        assert_int_equal(file_size(path), size);
        append_n(j, 20, 5);

        hub_journal_reader_t *rd;
        struct hub_buf b;
        hub_buf_init(&b, 4096);
        uint64_t seq, skipped = 0, want = 0;
        int rc;
        assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
        while ((rc = hub_journal_reader_next(rd, &b, &seq, &skipped)) != HUB_EEMPTY) {
            if (rc == HUB_ECORRUPT) {
                assert_int_equal(want, 7);
                assert_int_equal(skipped, 1);
                want = 8;
                continue;
            }
            assert_int_equal(rc, HUB_OK);
            assert_int_equal(seq, want);
            size_t len = mkpayload(seq, p);
            assert_int_equal(b.len, len);
            assert_memory_equal(b.data, p, len);
            want++;
        }
        assert_int_equal(want, 25);
        assert_int_equal(skipped, 1);
        hub_journal_reader_free(rd);
        hub_buf_free(&b);
        hub_journal_close(j);
    }
}

/* Files named like segments that are not this journal's are set aside,
 * never trusted for numbering: junk with the highest number, a file in the
 * middle whose header names another seq, a header-less file that is not
 * the newest. */
static void test_foreign_segments_set_aside(void **state)
{
    struct fx *f = *state;
    char path[128], junk[128];
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 30);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t nsegs = st.segments;
    assert_true(nsegs >= 3);
    hub_journal_close(j);
    snprintf(junk, sizeof(junk), "%s/09999999999999999999.seg", f->dir);
    write_file(junk, "this is not a journal segment at all", 36);
    uint8_t h[16];
    journal_make_header(h, 7); /* a good header, for another base */
    seg_file(f->dir, 3, path, sizeof(path));
    write_file(path, h, sizeof(h));
    seg_file(f->dir, 1, path, sizeof(path));
    write_file(path, "CHJ", 3);

    struct capture cap;
    capture_begin(&cap);
    j = jopen(f->dir, 256, 0, 0);
    assert_int_equal(capture_end(&cap, "set aside as"), 3);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 30);
    assert_int_equal(st.set_aside, 3);
    assert_int_equal(st.segments, nsegs);
    assert_int_equal(read_check(j, 0, 0, NULL), 30);
    append_n(j, 30, 1);
    hub_journal_close(j);
    struct stat sb;
    assert_int_not_equal(stat(junk, &sb), 0);
    char moved[160];
    snprintf(moved, sizeof(moved), "%s.foreign", junk);
    assert_int_equal(stat(moved, &sb), 0);
    assert_int_equal(count_segs(f->dir), (int)nsegs);
    /* reopened: nothing more to set aside, the numbering holds */
    j = jopen(f->dir, 256, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 31);
    assert_int_equal(st.set_aside, 0);
    hub_journal_close(j);
}

/* A segment deleted from outside is a gap: the reader passes over its
 * records, counts them and logs it. */
static void test_missing_segment_logged(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 30);
    hub_journal_close(j);
    uint64_t bases[64];
    size_t nb = 0;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nb < 64)
        if (strlen(e->d_name) == 24)
            bases[nb++] = strtoull(e->d_name, NULL, 10);
    closedir(d);
    assert_true(nb >= 3);
    uint64_t b1 = UINT64_MAX, b2 = UINT64_MAX; /* second and third lowest */
    for (size_t i = 0; i < nb; i++)
        if (bases[i] > 0 && bases[i] < b1)
            b1 = bases[i];
    for (size_t i = 0; i < nb; i++)
        if (bases[i] > b1 && bases[i] < b2)
            b2 = bases[i];
    char path[128];
    seg_file(f->dir, b1, path, sizeof(path));
    assert_int_equal(unlink(path), 0);

    j = jopen(f->dir, 256, 0, 0);
    struct capture cap;
    capture_begin(&cap);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0, n = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK)
        n++;
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    assert_int_equal(capture_end(&cap, "records missing"), 1);
    assert_int_equal(skipped, b2 - b1);
    assert_int_equal(n, 30 - (b2 - b1));
    hub_journal_close(j);
}

/* fsync failures, on cue: the next sync_fail_n fsyncs fail with EIO (-1:
 * all); with sync_fail_garble, the first failure also overwrites the bytes
 * past sync_garble_off of the active segment, as a disk that dropped the
 * pages it could not write returns them. */
static uint64_t sync_garble_off;
static int sync_hook(int fd)
{
    (void)fd;
    if (sync_fail_n == 0)
        return 0;
    if (sync_fail_n > 0)
        sync_fail_n--;
    if (sync_garble_path) {
        uint64_t size = file_size(sync_garble_path);
        uint8_t junk[64];
        memset(junk, 0xA5, sizeof(junk));
        for (uint64_t o = sync_garble_off; o < size; o += sizeof(junk))
            patch_file(sync_garble_path, o, junk,
                       size - o < sizeof(junk) ? size - o : sizeof(junk));
        sync_garble_path = NULL;
    }
    return EIO;
}

/* A failed fsync is not retried on the same pages: the records since the
 * last good sync are read back, checked and written into a new segment
 * file that is synced instead; every record stays readable, and after a
 * reopen too. */
static void test_failed_fsync_rewrites(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 10);
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    append_n(j, 10, 10);
    hub_journal_sync_hook = sync_hook;
    sync_fail_n = 1;
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.sync_failed, 1);
    assert_int_equal(st.sync_lost, 0);
    assert_int_equal(st.segments, 2); /* the records from seq 10 in a new file */
    char path[128];
    seg_file(f->dir, 10, path, sizeof(path));
    assert_true(file_size(path) > 16);
    append_n(j, 20, 5);
    assert_int_equal(read_check(j, 0, 0, NULL), 25);

    /* Every fsync failing: sync says so, appends go on, nothing is lost;
     * once the disk works again the next sync writes them again. */
    sync_fail_n = -1;
    append_n(j, 25, 5);
    assert_int_equal(hub_journal_sync(j), HUB_EIO);
    assert_int_equal(hub_journal_sync(j), HUB_EIO);
    append_n(j, 30, 5);
    sync_fail_n = 0;
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    assert_int_equal(read_check(j, 0, 0, NULL), 35);
    hub_journal_close(j);
    hub_journal_sync_hook = NULL;
    j = jopen(f->dir, 0, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 35);
    assert_int_equal(read_check(j, 0, 0, NULL), 35);
    hub_journal_close(j);

    /* Nothing of the segment synced yet, and the pages the disk dropped
     * come back as garbage: the file is replaced, the garbled records are
     * counted as lost and never read back as records. */
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(f->dir, 0700);
    j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 8);
    seg_file(f->dir, 0, path, sizeof(path));
    uint8_t p[128];
    uint64_t off5 = 16;
    for (uint64_t k = 0; k < 5; k++)
        off5 += 16 + mkpayload(k, p);
    hub_journal_sync_hook = sync_hook;
    sync_fail_n = 1;
    sync_garble_path = path;
    sync_garble_off = off5;
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    hub_journal_stats(j, &st);
    assert_int_equal(st.sync_lost, 3);
    assert_int_equal(st.segments, 2); /* the next append begins a segment at 8 */
    uint64_t skipped = 0;
    assert_int_equal(read_check(j, 0, 0, &skipped), 5);
    append_n(j, 8, 2);
    hub_journal_close(j);
    hub_journal_sync_hook = NULL;
    j = jopen(f->dir, 0, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 10);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, n = 0;
    int rc;
    skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    while ((rc = hub_journal_reader_next(rd, &b, &seq, &skipped)) != HUB_EEMPTY) {
        if (rc == HUB_ECORRUPT)
            continue;
        assert_int_equal(rc, HUB_OK);
        size_t len = mkpayload(seq, p);
        assert_int_equal(b.len, len);
        assert_memory_equal(b.data, p, len);
        n++;
    }
    assert_int_equal(n, 7);
    assert_int_equal(skipped, 3);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* sync_each (sync_interval 0): every append is synced before it returns;
 * a failed fsync there is handled as in hub_journal_sync. */
static void test_sync_each(void **state)
{
    struct fx *f = *state;
    struct hub_journal_opts o = {.dir = f->dir, .sync_each = true};
    hub_journal_t *j = NULL;
    char err[256];
    assert_int_equal(hub_journal_open(&o, &j, err, sizeof(err)), HUB_OK);
    struct hub_journal_stats a, b;
    hub_journal_stats(j, &a);
    append_n(j, 0, 5);
    hub_journal_stats(j, &b);
    assert_int_equal(b.fsyncs - a.fsyncs, 5);
    hub_journal_sync_hook = sync_hook;
    sync_fail_n = 1;
    append_n(j, 5, 1);
    hub_journal_stats(j, &b);
    assert_int_equal(b.sync_failed, 1);
    append_n(j, 6, 2);
    hub_journal_sync_hook = NULL;
    assert_int_equal(read_check(j, 0, 0, NULL), 8);
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(read_check(j, 0, 0, NULL), 8);
    hub_journal_close(j);
}

/* Readings may be private: the journal's directories are 0700, its files
 * 0600, whatever the umask lets through. */
static void test_private_modes(void **state)
{
    struct fx *f = *state;
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "%s/state/journal", f->dir);
    mode_t old = umask(0);
    hub_journal_t *j = jopen(dir, 0, 0, 0);
    umask(old);
    uint64_t seq;
    append_n(j, 0, 3);
    assert_int_equal(hub_journal_cursor_open(j, "ioc", &seq), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "ioc", 2), HUB_OK);
    hub_journal_close(j);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/state", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/cursors", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/cursors/ioc", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    seg_file(dir, 0, path, sizeof(path));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

/* An older segment holding seqs the next one starts with (never written by
 * the journal, but possible on a damaged card): the newer segment wins. */
static void test_overlapping_segments(void **state)
{
    struct fx *f = *state;
    char path[128];
    uint8_t buf[1024];
    size_t n = 0;
    uint8_t h0[16] = {'C', 'H', 'J', '1', 1};
    memcpy(buf, h0, 16);
    n = 16;
    for (uint64_t i = 0; i < 6; i++)
        n += mkframe(buf + n, i, "old", 3);
    seg_file(f->dir, 0, path, sizeof(path));
    write_file(path, buf, n);
    uint8_t h3[16] = {'C', 'H', 'J', '1', 1, 0, 0, 0, 3};
    memcpy(buf, h3, 16);
    n = 16;
    for (uint64_t i = 3; i < 5; i++)
        n += mkframe(buf + n, i, "new", 3);
    seg_file(f->dir, 3, path, sizeof(path));
    write_file(path, buf, n);

    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 5);
    assert_int_equal(st.first_seq, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    uint64_t seq, skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    for (uint64_t i = 0; i < 5; i++) {
        assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
        assert_int_equal(seq, i);
        assert_string_equal((const char *)b.data, i < 3 ? "old" : "new");
    }
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    assert_int_equal(skipped, 0);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* The journal creates its directory with parents. */
static void test_creates_nested_dir(void **state)
{
    struct fx *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/var/lib/journal", f->dir);
    hub_journal_t *j = jopen(dir, 0, 0, 0);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.fsyncs, 4); /* + the parent of the new directory */
    append_n(j, 0, 3);
    hub_journal_close(j);
    j = jopen(dir, 0, 0, 0);
    assert_int_equal(read_check(j, 0, 0, NULL), 3);
    hub_journal_close(j);
}

static void test_wait_and_wake(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    assert_false(hub_journal_wait(j, 0, 0));
    assert_false(hub_journal_wait(j, 0, 20));
    append_n(j, 0, 1);
    assert_true(hub_journal_wait(j, 0, 1000));
    assert_false(hub_journal_wait(j, 1, 10));
    hub_journal_close(j);
}

struct waker {
    hub_journal_t *j;
    int mode; /* 0 wake, 1 append */
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    if (w->mode == 0)
        hub_journal_wake(w->j);
    else
        hub_journal_append(w->j, "z", 1, NULL);
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_wait_woken_by_thread(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    for (int mode = 0; mode < 2; mode++) {
        struct waker w = {j, mode};
        pthread_t t;
        int64_t t0 = now_ms();
        assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
        bool have = hub_journal_wait(j, 0, 10000);
        int64_t dt = now_ms() - t0;
        pthread_join(t, NULL);
        assert_true(dt < 5000);
        assert_int_equal(have, mode == 1);
    }
    hub_journal_close(j);
}

/* ---- concurrency --------------------------------------------------------- */

#define W_THREADS 2
#define W_PER 4000

struct writer {
    hub_journal_t *j;
    int id;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char p[32];
    for (int i = 0; i < W_PER; i++) {
        int n = snprintf(p, sizeof(p), "w%d-%06d", w->id, i);
        if (hub_journal_append(w->j, p, (size_t)n, NULL) != HUB_OK)
            abort();
    }
    return NULL;
}

static void test_concurrent_appends_and_reader(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 16384, 0, 0);
    pthread_t t[W_THREADS];
    struct writer w[W_THREADS];
    for (int i = 0; i < W_THREADS; i++) {
        w[i] = (struct writer){j, i};
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    }
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, 4096);
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    int nextof[W_THREADS] = {0};
    uint64_t got = 0, seq, skipped = 0;
    int64_t deadline = now_ms() + 60000;
    while (got < (uint64_t)W_THREADS * W_PER && now_ms() < deadline) {
        int rc = hub_journal_reader_next(rd, &b, &seq, &skipped);
        if (rc == HUB_EEMPTY) {
            hub_journal_wait(j, got, 100);
            continue;
        }
        assert_int_equal(rc, HUB_OK);
        assert_int_equal(seq, got);
        int id, i;
        assert_int_equal(sscanf((const char *)b.data, "w%d-%d", &id, &i), 2);
        assert_true(id >= 0 && id < W_THREADS);
        assert_int_equal(i, nextof[id]);
        nextof[id]++;
        got++;
    }
    for (int i = 0; i < W_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(got, (uint64_t)W_THREADS * W_PER);
    assert_int_equal(skipped, 0);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, (uint64_t)W_THREADS * W_PER);
    assert_true(st.segments > 2);
    hub_journal_close(j);
}

/* ---- review fixes -------------------------------------------------------- */

/* A stored cursor past the end (a power cut undid appends it had passed) is
 * clamped, and the clamp is persisted: records appended afterwards must not
 * hide behind the stale file after the next restart. */
static void test_cursor_past_end_clamp_persisted(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_n(j, 0, 10);
    hub_journal_close(j);
    char path[160], good[64];
    snprintf(path, sizeof(path), "%s/cursors/out", f->dir);
    snprintf(good, sizeof(good), "100\ncrc32c %08" PRIx32 "\n", hub_crc32c(0, "100\n", 4));
    write_file(path, good, strlen(good));

    j = jopen(f->dir, 0, 0, 0);
    uint64_t c = 0;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, 10);
    assert_int_equal(hub_journal_cursor_peek(j, "out", &c), HUB_OK);
    assert_int_equal(c, 10);
    /* new readings arrive; the output delivers nothing before the next crash */
    append_n(j, 10, 150);
    hub_journal_close(j);

    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, 10);
    uint64_t skipped = 0;
    assert_int_equal(read_check(j, c, 10, &skipped), 150);
    assert_int_equal(skipped, 0);
    hub_journal_close(j);
}

/* `cityhub journal` opens read-only while the hub deletes delivered segments:
 * a reader of the read-only journal must pass over a segment that vanished
 * (counting it as skipped) instead of looking for it forever. */
static void test_read_only_segment_deleted_meanwhile(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 100);
    struct hub_journal_opts ro = {.dir = f->dir, .read_only = true};
    hub_journal_t *r = NULL;
    char err[256] = "";
    assert_int_equal(hub_journal_open(&ro, &r, err, sizeof(err)), HUB_OK);
    struct hub_journal_stats st;
    hub_journal_stats(r, &st);
    assert_int_equal(st.first_seq, 0);
    assert_true(st.segments > 3);

    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "out", 100), HUB_OK);
    hub_journal_stats(j, &st);
    uint64_t first = st.first_seq;
    assert_true(first > 0 && first < 100);
    assert_int_equal(count_segs(f->dir), 1);

    alarm(20); /* before the fix this looped for ever */
    uint64_t skipped = 0;
    assert_int_equal(read_check(r, 0, first, &skipped), 100 - first);
    assert_int_equal(skipped, first);
    alarm(0);
    hub_journal_close(r);
    hub_journal_close(j);
}

/* Appenders, the group-commit syncer, a reader that commits its cursor
 * (deleting segments) and drop_oldest, all at once; run under TSan too. The
 * reader sees every record in order or counts it as skipped. */
#define S_WRITERS 3
#define S_PER 3000

struct stress {
    hub_journal_t *j;
    int id;
    volatile int *done;
};

static void *stress_writer(void *arg)
{
    struct stress *w = arg;
    uint8_t p[128];
    for (int i = 0; i < S_PER; i++) {
        uint64_t s;
        size_t n = mkpayload((uint64_t)i, p);
        p[0] = (uint8_t)w->id;
        if (hub_journal_append(w->j, p, n, &s) != HUB_OK)
            abort();
    }
    return NULL;
}

static void *stress_syncer(void *arg)
{
    struct stress *w = arg;
    while (!__atomic_load_n(w->done, __ATOMIC_ACQUIRE)) {
        if (hub_journal_sync(w->j) != HUB_OK)
            abort();
        struct hub_journal_stats st;
        hub_journal_stats(w->j, &st);
        usleep(200);
    }
    return NULL;
}

static void test_stress_append_sync_read_commit_drop(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 2048, 16384, HUB_JOURNAL_DROP_OLDEST);
    volatile int done = 0;
    pthread_t wt[S_WRITERS], st_thread;
    struct stress w[S_WRITERS], sy = {j, -1, &done};
    uint64_t c = 0;
    assert_int_equal(hub_journal_cursor_open(j, "rd", &c), HUB_OK);
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (struct stress){j, i, &done};
        assert_int_equal(pthread_create(&wt[i], NULL, stress_writer, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&st_thread, NULL, stress_syncer, &sy), 0);

    hub_journal_reader_t *rd = NULL;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    uint64_t got = 0, skipped = 0, expect = 0, seq;
    const uint64_t total = (uint64_t)S_WRITERS * S_PER;
    int64_t deadline = now_ms() + 60000;
    while (got + skipped < total && now_ms() < deadline) {
        uint64_t before = skipped;
        int rc = hub_journal_reader_next(rd, &b, &seq, &skipped);
        expect += skipped - before;
        if (rc == HUB_EEMPTY) {
            hub_journal_wait(j, expect, 20);
            continue;
        }
        assert_int_equal(rc, HUB_OK);
        assert_int_equal(seq, expect);
        assert_true(b.len >= 1 && b.data[0] < S_WRITERS);
        expect = seq + 1;
        got++;
        if (got % 97 == 0)
            assert_int_equal(hub_journal_cursor_commit(j, "rd", expect), HUB_OK);
    }
    for (int i = 0; i < S_WRITERS; i++)
        pthread_join(wt[i], NULL);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    pthread_join(st_thread, NULL);
    assert_int_equal(got + skipped, total);
    struct hub_journal_stats jst;
    hub_journal_stats(j, &jst);
    assert_int_equal(jst.next_seq, total);
    assert_true(jst.bytes <= 16384);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* ---- a full file system -------------------------------------------------- */

/* ENOSPC for real: a tmpfs of a few pages mounted on the test's directory
 * (needs root, which CI has). Where mounting is not permitted (EPERM, or
 * HUBJ_FAULT_HOOK=1 in the environment), the journal's fault hook plays a
 * file system of that size instead: a write that would take the files under
 * the directory past it, counted in 4 KiB pages like tmpfs, fails with
 * ENOSPC (unlike tmpfs, an open file's space is freed at unlink). Any other
 * mount failure fails the test. */
static char small_dir[64];
static uint64_t small_cap;
static bool small_mounted;
static uint64_t tree_used;
static const char *cursor_fail_dir; /* fail cursor writes under it with EIO */

static int sum_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p;
    (void)ftw;
    if (flag == FTW_F)
        tree_used += ((uint64_t)sb->st_size + 4095) / 4096 * 4096;
    return 0;
}

static uint64_t small_used(void)
{
    tree_used = 0;
    nftw(small_dir, sum_one, 16, FTW_PHYS);
    return tree_used;
}

static int fault_hook(const char *path, size_t bytes)
{
    if (cursor_fail_dir && strstr(path, "/cursors/") &&
        strncmp(path, cursor_fail_dir, strlen(cursor_fail_dir)) == 0)
        return EIO;
    if (small_mounted || !small_dir[0] || strncmp(path, small_dir, strlen(small_dir)) != 0)
        return 0;
    /* The journal writes at the end of a file: new pages for size + bytes. */
    struct stat sb;
    uint64_t size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    uint64_t more = (size + bytes + 4095) / 4096 * 4096 - (size + 4095) / 4096 * 4096;
    return small_used() + more > small_cap ? ENOSPC : 0;
}

static void small_fs(struct fx *f, uint64_t bytes)
{
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%" PRIu64, bytes);
    snprintf(small_dir, sizeof(small_dir), "%s", f->dir);
    small_cap = bytes;
    const char *force = getenv("HUBJ_FAULT_HOOK");
    if (force && strcmp(force, "1") == 0) {
        small_mounted = false;
    } else if (mount("tmpfs", f->dir, "tmpfs", 0, opts) == 0) {
        small_mounted = true;
    } else if (errno == EPERM) {
        fprintf(stderr, "# mount tmpfs: %s: ENOSPC from the journal's fault hook\n",
                strerror(errno));
        small_mounted = false;
    } else {
        fail_msg("mount tmpfs on %s: %s", f->dir, strerror(errno));
    }
    f->mounted = small_mounted;
    hub_journal_fault_hook = fault_hook;
}

/* Take every byte left on the small file system with the file NAME. */
static void fill_up(struct fx *f, const char *name)
{
    char path[128];
    static uint8_t zero[4096];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    if (small_mounted) {
        while (write(fd, zero, sizeof(zero)) > 0)
            ;
        while (write(fd, zero, 1) > 0) /* the last bytes of a page */
            ;
    } else {
        uint64_t used = small_used();
        for (uint64_t left = used < small_cap ? small_cap - used : 0; left;) {
            size_t n = left > sizeof(zero) ? sizeof(zero) : (size_t)left;
            assert_int_equal(write(fd, zero, n), (ssize_t)n);
            left -= n;
        }
    }
    close(fd);
}

/* Payload i of n bytes (n <= 256), bytes derived from i. */
static size_t bigpayload(uint64_t i, uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (uint8_t)(i * 13 + k * 5 + 3);
    return n;
}

/* Read every record from seq from (bigpayload(seq, 200)); checks they are
 * consecutive. Returns the count; *first_out the first seq read, *skipped
 * the gap reported. */
static uint64_t read_big(hub_journal_t *j, uint64_t from, uint64_t *first_out, uint64_t *skipped)
{
    hub_journal_reader_t *rd = NULL;
    struct hub_buf b;
    uint8_t want[256];
    uint64_t n = 0, seq, first = UINT64_MAX;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_new(j, from, &rd), HUB_OK);
    int rc;
    while ((rc = hub_journal_reader_next(rd, &b, &seq, skipped)) == HUB_OK) {
        if (first == UINT64_MAX)
            first = seq;
        assert_int_equal(seq, first + n);
        assert_int_equal(b.len, bigpayload(seq, want, 200));
        assert_memory_equal(b.data, want, 200);
        n++;
    }
    assert_int_equal(rc, HUB_EEMPTY);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    if (first_out)
        *first_out = first;
    return n;
}

static int append_big(hub_journal_t *j, uint64_t i, uint64_t *seq)
{
    uint8_t p[256];
    return hub_journal_append(j, p, bigpayload(i, p, 200), seq);
}

static void capture_begin(struct capture *c)
{
    capturing = c;
    fflush(stderr);
    snprintf(c->path, sizeof(c->path), "/tmp/hubj-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
    hub_log_set_level(HUB_LOG_WARN);
}

/* Stop capturing; echo what was logged; return the lines holding needle. */
static int capture_end(struct capture *c, const char *needle)
{
    capturing = NULL;
    hub_log_set_level(HUB_LOG_ERROR);
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    char line[1024];
    int n = 0, all = 0;
    while (fgets(line, sizeof(line), fp)) {
        if (++all <= 20)
            fprintf(stderr, "# %s", line);
        if (strstr(line, needle))
            n++;
    }
    if (all > 20)
        fprintf(stderr, "# ... %d lines in all\n", all);
    fclose(fp);
    unlink(c->path);
    return n;
}

#define SMALL_FS (64 * 1024)
#define NO_MAX (64ull << 20) /* max_size far above the file system's size */

/* drop_oldest on a full file system keeps accepting: the oldest segments
 * go, their undelivered records counted as dropped; the ENOSPC is logged a
 * bounded number of times. */
static void test_disk_full_drop_oldest(void **state)
{
    struct fx *f = *state;
    small_fs(f, SMALL_FS);
    hub_journal_t *j = jopen(f->dir, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    uint64_t c = 99, s;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, 0);
    struct capture cap;
    capture_begin(&cap);
    int bad = 0;
    for (uint64_t i = 0; i < 2000 && !bad; i++)
        bad = append_big(j, i, &s) != HUB_OK || s != i;
    int lines = capture_end(&cap, "No space left on device");
    assert_false(bad);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 2000);
    assert_true(st.dropped > 0);
    assert_int_equal(st.disk_full, 0);
    assert_true(st.bytes < SMALL_FS);
    assert_int_equal(st.first_seq, st.dropped); /* the cursor was at 0 */
    uint64_t first, skipped = 0;
    uint64_t n = read_big(j, 0, &first, &skipped);
    assert_int_equal(first, st.first_seq);
    assert_int_equal(skipped, st.dropped);
    assert_int_equal(n + skipped, 2000);
    assert_true(n >= 100); /* most of the small file system holds records */
    fprintf(stderr,
            "# 2000 appends on %d KiB: %" PRIu64 " dropped, %" PRIu64
            " stored; %d ENOSPC log lines\n",
            SMALL_FS / 1024, st.dropped, n, lines);
    assert_true(lines >= 1 && lines <= 3);
    hub_journal_close(j);
}

/* drop_newest on a full file system refuses with HUB_EFULL (counted);
 * once the records are delivered the commit frees their segments even
 * though the cursor file first had no room, and appends work again. */
static void test_disk_full_drop_newest_space_comes_back(void **state)
{
    struct fx *f = *state;
    small_fs(f, SMALL_FS);
    hub_journal_t *j = jopen(f->dir, 4096, NO_MAX, HUB_JOURNAL_DROP_NEWEST);
    uint64_t c, s, k = 0;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    int rc;
    while ((rc = append_big(j, k, &s)) == HUB_OK && k < 10000)
        k++;
    assert_int_equal(rc, HUB_EFULL);
    assert_true(k >= 100);
    struct capture cap;
    capture_begin(&cap);
    int refused = 0;
    for (int i = 0; i < 3000; i++)
        refused += append_big(j, k, &s) == HUB_EFULL;
    int lines = capture_end(&cap, "No space left on device");
    assert_int_equal(refused, 3000);
    fprintf(stderr, "# %" PRIu64 " accepted, then 3001 refused: %d ENOSPC log lines\n", k, lines);
    assert_true(lines <= 3);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, k);
    assert_int_equal(st.disk_full, 3001);
    assert_int_equal(st.dropped, 0);
    int segs = count_segs(f->dir);

    uint64_t first, skipped = 0;
    assert_int_equal(read_big(j, 0, &first, &skipped), k);
    assert_int_equal(skipped, 0);
    /* No room for the cursor file, until the delivered segments are gone. */
    assert_int_equal(hub_journal_cursor_commit(j, "out", k), HUB_OK);
    assert_true(count_segs(f->dir) < segs);
    assert_int_equal(hub_journal_cursor_peek(j, "out", &c), HUB_OK);
    assert_int_equal(c, k);
    assert_int_equal(append_big(j, k, &s), HUB_OK);
    assert_int_equal(s, k);
    /* And it fills and empties again. */
    uint64_t k2 = k + 1;
    while ((rc = append_big(j, k2, &s)) == HUB_OK && k2 < 20000)
        k2++;
    assert_int_equal(rc, HUB_EFULL);
    assert_true(k2 - k >= 100);
    assert_int_equal(read_big(j, k, &first, &skipped), k2 - k);
    assert_int_equal(hub_journal_cursor_commit(j, "out", k2), HUB_OK);
    assert_int_equal(append_big(j, k2, &s), HUB_OK);
    hub_journal_close(j);

    j = jopen(f->dir, 4096, NO_MAX, HUB_JOURNAL_DROP_NEWEST);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, k2 + 1);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, k2);
    hub_journal_close(j);
}

/* One segment larger than the file system: once all of it is delivered,
 * the next append replaces it (nothing dropped). A reader caught up on the
 * replaced file lets go of it, so its space comes back. */
static void test_disk_full_single_segment_replaced(void **state)
{
    struct fx *f = *state;
    small_fs(f, SMALL_FS);
    hub_journal_t *j = jopen(f->dir, 1 << 20, NO_MAX, HUB_JOURNAL_DROP_NEWEST);
    uint64_t c, s, k = 0;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    int rc;
    while ((rc = append_big(j, k, &s)) == HUB_OK && k < 10000)
        k++;
    assert_int_equal(rc, HUB_EFULL);
    assert_int_equal(count_segs(f->dir), 1);

    /* A reader reads it all and stays open (caught up, on the file). */
    hub_journal_reader_t *rd = NULL;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    uint64_t n = 0, seq;
    while (hub_journal_reader_next(rd, &b, &seq, NULL) == HUB_OK)
        n++;
    assert_int_equal(n, k);
    /* Nothing to free for the cursor file: its write fails, the in-memory
     * cursor moves on. */
    assert_int_equal(hub_journal_cursor_commit(j, "out", k), HUB_EIO);
    assert_int_equal(hub_journal_cursor_peek(j, "out", &c), HUB_EEMPTY);

    rc = append_big(j, k, &s);
    if (small_mounted) {
        /* Replaced, but the reader's open file still holds the space. */
        assert_int_equal(rc, HUB_EFULL);
        assert_int_equal(hub_journal_reader_next(rd, &b, &seq, NULL), HUB_EEMPTY);
        rc = append_big(j, k, &s); /* the reader let go of it */
    }
    assert_int_equal(rc, HUB_OK);
    assert_int_equal(s, k);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, NULL), HUB_OK);
    assert_int_equal(seq, k);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.first_seq, k);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(hub_journal_cursor_commit(j, "out", k + 1), HUB_OK);
    assert_int_equal(hub_journal_cursor_peek(j, "out", &c), HUB_OK);
    assert_int_equal(c, k + 1);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* A restart on a full file system: an existing journal opens and appends
 * (drop_oldest frees); a fresh journal opens although its first segment
 * cannot be created yet; a segment created just before a crash, without
 * its header, opens too. */
static void test_disk_full_reopen(void **state)
{
    struct fx *f = *state;
    small_fs(f, SMALL_FS);
    char a[96], b[96], path[160];
    snprintf(a, sizeof(a), "%s/a", f->dir);
    snprintf(b, sizeof(b), "%s/b", f->dir);
    hub_journal_t *j = jopen(a, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    uint64_t s, c;
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(append_big(j, i, &s), HUB_OK);
    hub_journal_close(j);
    fill_up(f, "filler");

    j = jopen(a, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, 0);
    /* (The last page of the active segment may still take a few.) */
    struct hub_journal_stats st;
    uint64_t next = 100;
    do {
        assert_int_equal(append_big(j, next, &s), HUB_OK);
        assert_int_equal(s, next);
        next++;
        hub_journal_stats(j, &st);
    } while (st.dropped == 0 && next < 200);
    assert_true(st.dropped > 0);
    assert_int_equal(st.first_seq, st.dropped);
    hub_journal_close(j);

    /* A fresh journal on a full file system. */
    fill_up(f, "filler");
    j = jopen(b, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 0);
    assert_int_equal(append_big(j, 0, &s), HUB_EFULL); /* nothing of its own to free */
    hub_journal_stats(j, &st);
    assert_int_equal(st.disk_full, 1);
    snprintf(path, sizeof(path), "%s/filler", f->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(append_big(j, 0, &s), HUB_OK);
    assert_int_equal(s, 0);
    hub_journal_close(j);
    j = jopen(b, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    uint64_t first, skipped = 0;
    assert_int_equal(read_big(j, 0, &first, &skipped), 1);
    hub_journal_close(j);

    /* A crash right after a rotation created the next segment, then a
     * restart on a full file system: the header cannot be written yet. */
    seg_file(a, next, path, sizeof(path));
    write_file(path, "", 0);
    fill_up(f, "filler");
    j = jopen(a, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, next);
    assert_int_equal(file_size(path), 0);
    assert_int_equal(append_big(j, next, &s), HUB_OK);
    assert_int_equal(s, next);
    assert_true(file_size(path) > HUB_JOURNAL_HEADER_SIZE);
    hub_journal_close(j);
    j = jopen(a, 4096, NO_MAX, HUB_JOURNAL_DROP_OLDEST);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, next + 1);
    skipped = 0;
    uint64_t n = read_big(j, 0, &first, &skipped);
    assert_int_equal(first + n, next + 1);
    hub_journal_close(j);
}

/* A cursor file that cannot be written does not keep delivered segments:
 * the in-memory cursor moves and they are deleted. After a restart the
 * stale file points into them: the cursor starts at the first stored
 * record. */
static void test_cursor_write_fails_segments_freed(void **state)
{
    struct fx *f = *state;
    hub_journal_fault_hook = fault_hook;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 100);
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(hub_journal_cursor_commit(j, "out", 10), HUB_OK);
    int segs = count_segs(f->dir);
    cursor_fail_dir = f->dir;
    struct capture cap;
    capture_begin(&cap);
    int failed = 0;
    for (uint64_t i = 60; i <= 80; i++)
        failed += hub_journal_cursor_commit(j, "out", i) == HUB_EIO;
    int lines = capture_end(&cap, "cursors/out: write");
    cursor_fail_dir = NULL;
    assert_int_equal(failed, 21);
    assert_int_equal(lines, 1);
    assert_true(count_segs(f->dir) < segs);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_true(st.first_seq > 10 && st.first_seq <= 80);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(hub_journal_cursor_peek(j, "out", &c), HUB_OK);
    assert_int_equal(c, 10);
    hub_journal_close(j);

    j = jopen(f->dir, 256, 0, 0);
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    assert_int_equal(c, st.first_seq);
    hub_journal_close(j);
}

struct del_waiter {
    hub_journal_t *j;
    uint64_t after;
    int64_t took_ms;
};

static void *del_waiter_main(void *arg)
{
    struct del_waiter *w = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hub_journal_wait(w->j, w->after, 10000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->took_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    return NULL;
}

/* Deleting segments ends waits early, so that a caught-up reader can let go
 * of a deleted file (an open file keeps its space taken). */
static void test_wait_ends_on_delete(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 256, 0, 0);
    append_n(j, 0, 40);
    uint64_t c;
    assert_int_equal(hub_journal_cursor_open(j, "out", &c), HUB_OK);
    struct del_waiter w = {.j = j, .after = 40};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, del_waiter_main, &w), 0);
    /* Segments go one by one while it waits (it may start late). */
    struct timespec ts = {0, 50 * 1000000L};
    for (uint64_t seq = 5; seq <= 40; seq += 5) {
        nanosleep(&ts, NULL);
        assert_int_equal(hub_journal_cursor_commit(j, "out", seq), HUB_OK);
    }
    pthread_join(t, NULL);
    assert_true(w.took_ms < 5000);
    hub_journal_close(j);
}

/* ---- series dictionary ----------------------------------------------------- */

/* Keyed payload i of series i % nseries: a key of 24 + s % 40 bytes that
 * depends on the series only, then i % 13 bytes of values (none for some).
 * Returns the length, *key_len the key's. */
static size_t mkkeyed(uint64_t i, unsigned nseries, uint8_t *p, size_t *key_len)
{
    unsigned s = (unsigned)(i % nseries);
    size_t k = (size_t)snprintf((char *)p, 64, "series-%05u-", s);
    size_t klen = 24 + s % 40;
    for (; k < klen; k++)
        p[k] = (uint8_t)('a' + (s + k) % 26);
    size_t vlen = (size_t)(i % 13);
    for (size_t v = 0; v < vlen; v++)
        p[klen + v] = (uint8_t)(i * 13 + v);
    *key_len = klen;
    return klen + vlen;
}

static void append_keyed_n(hub_journal_t *j, uint64_t from, uint64_t n, unsigned nseries)
{
    uint8_t p[128];
    for (uint64_t i = from; i < from + n; i++) {
        size_t klen, len = mkkeyed(i, nseries, p, &klen);
        uint64_t s = UINT64_MAX;
        assert_int_equal(hub_journal_append_keyed(j, p, len, klen, &s), HUB_OK);
        assert_int_equal(s, i);
    }
}

static unsigned keyed_series; /* read_keyed's nseries, for keyed_payload */

static size_t keyed_payload(uint64_t i, uint8_t *p)
{
    size_t klen;
    return mkkeyed(i, keyed_series, p, &klen);
}

/* Read from `from` to the end: every record is mkkeyed(seq), seqs
 * consecutive, nothing skipped. Returns the count. */
static uint64_t read_keyed(hub_journal_t *j, uint64_t from, unsigned nseries)
{
    uint64_t skipped = 0;
    keyed_series = nseries;
    uint64_t n = read_gen(j, from, from, keyed_payload, &skipped);
    assert_int_equal(skipped, 0);
    return n;
}

/* Many series across rotations and a reopen: every payload comes back as
 * appended, from the start and from readers starting in the middle of
 * segments; the journal stores far fewer bytes than the payloads. */
static void test_dict_round_trip(void **state)
{
    struct fx *f = *state;
    enum { S = 20, N = 3000 };
    hub_journal_t *j = jopen(f->dir, 8192, 0, 0);
    append_keyed_n(j, 0, N, S);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_true(st.segments >= 4);
    uint64_t payload_bytes = 0;
    uint8_t p[128];
    for (uint64_t i = 0; i < N; i++) {
        size_t klen;
        payload_bytes += mkkeyed(i, S, p, &klen);
    }
    /* Stored whole, the frames would take payload + 16 each; with the
     * dictionary a record is some 16 + 1 + its values once its series is
     * defined in the segment. */
    assert_true(st.append_bytes < (payload_bytes + 16 * N) * 6 / 10);
    for (uint64_t from = 0; from <= N; from += 37)
        assert_int_equal(read_keyed(j, from, S), N - from);
    hub_journal_close(j);

    j = jopen(f->dir, 8192, 0, 0);
    for (uint64_t from = 0; from <= N; from += 101)
        assert_int_equal(read_keyed(j, from, S), N - from);
    append_keyed_n(j, N, 500, S);
    hub_journal_close(j);
    j = jopen(f->dir, 8192, 0, 0);
    assert_int_equal(read_keyed(j, 0, S), N + 500);
    assert_int_equal(read_keyed(j, N - 3, S), 503);
    hub_journal_close(j);
}

/* After a reopen, a series already defined in the active segment is stored
 * as a reference: recovery rebuilt the writer's dictionary. */
static void test_dict_reopen_appends_refs(void **state)
{
    struct fx *f = *state;
    enum { S = 5 };
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_keyed_n(j, 0, S, S); /* five DEFINEs */
    hub_journal_close(j);

    j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st0, st1;
    hub_journal_stats(j, &st0);
    uint8_t p[128];
    size_t klen, len = mkkeyed(S, S, p, &klen); /* series 0 again */
    append_keyed_n(j, S, 1, S);
    hub_journal_stats(j, &st1);
    /* frame + one id byte + the values */
    assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + 1 + (len - klen));
    /* a series not seen yet: a DEFINE, with id 5 and the whole payload */
    len = mkkeyed(S + 1, 100, p, &klen);
    assert_int_equal(hub_journal_append_keyed(j, p, len, klen, NULL), HUB_OK);
    hub_journal_stats(j, &st0);
    assert_int_equal(st0.append_bytes - st1.append_bytes, 16 + 2 + len);
    hub_journal_close(j);

    j = jopen(f->dir, 0, 0, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    uint64_t seq;
    assert_int_equal(hub_journal_reader_new(j, S + 1, &rd), HUB_OK);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, NULL), HUB_OK);
    assert_int_equal(seq, S + 1);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, p, len);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    /* key_len past the payload */
    assert_int_equal(hub_journal_append_keyed(j, p, len, len + 1, NULL), HUB_EINVAL);
    /* a payload that is all key (of a new series): a DEFINE, then a REF of
     * the id alone */
    p[0] = 'X';
    hub_journal_stats(j, &st0);
    assert_int_equal(hub_journal_append_keyed(j, p, klen, klen, NULL), HUB_OK);
    assert_int_equal(hub_journal_append_keyed(j, p, klen, klen, &seq), HUB_OK);
    hub_journal_stats(j, &st1);
    assert_int_equal(st1.append_bytes - st0.append_bytes, (16 + 2 + klen) + (16 + 1));
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(hub_journal_reader_new(j, seq, &rd), HUB_OK);
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, NULL), HUB_OK);
    assert_int_equal(b.len, klen);
    assert_memory_equal(b.data, p, klen);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* Past J_DICT_MAX_KEYS keys, or J_DICT_MAX_BYTES of key bytes, in a
 * segment, records are stored whole; those defined before stay references;
 * everything reads back. */
static void test_dict_bound(void **state)
{
    struct fx *f = *state;
    hub_journal_t *j = jopen(f->dir, 64ull << 20, 256ull << 20, 0);
    struct hub_journal_stats st0, st1;
    char p[32];
    /* the key count: keys "k0000000".."k0004105", each with 3 value bytes */
    for (unsigned i = 0; i < J_DICT_MAX_KEYS + 10; i++) {
        snprintf(p, sizeof(p), "k%07uvvv", i);
        hub_journal_stats(j, &st0);
        assert_int_equal(hub_journal_append_keyed(j, p, 11, 8, NULL), HUB_OK);
        hub_journal_stats(j, &st1);
        uint64_t id_len = i < 128 ? 1 : 2;
        if (i < J_DICT_MAX_KEYS)
            assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + id_len + 1 + 11);
        else
            assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + 11); /* plain */
    }
    snprintf(p, sizeof(p), "k%07uvvv", 3u);
    hub_journal_stats(j, &st0);
    assert_int_equal(hub_journal_append_keyed(j, p, 11, 8, NULL), HUB_OK);
    hub_journal_stats(j, &st1);
    assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + 1 + 3); /* REF */
    hub_journal_close(j);

    j = jopen(f->dir, 64ull << 20, 256ull << 20, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    uint64_t seq, skipped = 0, n = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    while (hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_OK) {
        snprintf(p, sizeof(p), "k%07uvvv", seq == J_DICT_MAX_KEYS + 10 ? 3u : (unsigned)seq);
        assert_int_equal(b.len, 11);
        assert_memory_equal(b.data, p, 11);
        n++;
    }
    assert_int_equal(n, J_DICT_MAX_KEYS + 11);
    assert_int_equal(skipped, 0);
    hub_journal_reader_free(rd);

    hub_journal_close(j);

    /* the byte bound, in another journal: keys of 64 KiB */
    char dir2[96];
    snprintf(dir2, sizeof(dir2), "%s/big", f->dir);
    j = jopen(dir2, 64ull << 20, 256ull << 20, 0);
    enum { BIG = 64 * 1024 };
    assert_int_equal(J_DICT_MAX_BYTES % BIG, 0);
    uint8_t *big = malloc(BIG + 4);
    assert_non_null(big);
    uint64_t first = 0;
    for (unsigned i = 0; i <= J_DICT_MAX_BYTES / BIG; i++) {
        memset(big, 'a' + (int)i, BIG + 4);
        hub_journal_stats(j, &st0);
        assert_int_equal(hub_journal_append_keyed(j, big, BIG + 4, BIG, &seq), HUB_OK);
        hub_journal_stats(j, &st1);
        if (i == 0)
            first = seq;
        if (i < J_DICT_MAX_BYTES / BIG)
            assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + 1 + 3 + BIG + 4);
        else if (i == J_DICT_MAX_BYTES / BIG)
            assert_int_equal(st1.append_bytes - st0.append_bytes, 16 + BIG + 4); /* plain */
    }
    assert_int_equal(hub_journal_reader_new(j, first, &rd), HUB_OK);
    for (unsigned i = 0; i <= J_DICT_MAX_BYTES / BIG; i++) {
        memset(big, 'a' + (int)i, BIG + 4);
        assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_OK);
        assert_int_equal(b.len, BIG + 4);
        assert_memory_equal(b.data, big, BIG + 4);
    }
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    hub_journal_reader_free(rd);
    free(big);
    hub_buf_free(&b);
    hub_journal_close(j);
}

static void put_header(uint8_t *h, uint32_t version, uint64_t base)
{
    memcpy(h, "CHJ1", 4);
    for (int i = 0; i < 4; i++)
        h[4 + i] = (uint8_t)(version >> (8 * i));
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(base >> (8 * i));
}

/* test_dict_v1_segment_read's records: 10 plain ones, then keyed ones. */
static size_t v1_mixed_payload(uint64_t i, uint8_t *p)
{
    size_t klen;
    return i < 10 ? mkpayload(i, p) : mkkeyed(i, 3, p, &klen);
}

/* A segment of version 1, as an older cityhub wrote it: read; appended to
 * with whole records while it is the active one (it stays a valid version 1
 * segment), and the segment after it is of version 2. A record type in a
 * version 1 segment is a bad record. */
static void test_dict_v1_segment_read(void **state)
{
    struct fx *f = *state;
    uint8_t seg[4096], p[128];
    size_t off = 16;
    put_header(seg, 1, 0);
    for (uint64_t i = 0; i < 10; i++)
        off += mkframe(seg + off, i, p, (uint32_t)mkpayload(i, p));
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    write_file(path, seg, off);

    hub_journal_t *j = jopen(f->dir, 1024, 0, 0);
    assert_int_equal(read_check(j, 0, 0, NULL), 10);
    assert_int_equal(read_check(j, 4, 4, NULL), 6);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 10);
    assert_int_equal(st.recovered_cut, 0);
    /* keyed appends go in whole while segment 0 is the active one */
    uint64_t before = file_size(path);
    uint8_t k[128];
    size_t klen, len = mkkeyed(10, 3, k, &klen);
    assert_int_equal(hub_journal_append_keyed(j, k, len, klen, NULL), HUB_OK);
    assert_int_equal(file_size(path), before + 16 + len);
    hub_journal_close(j);
    assert_int_equal(read_byte(path, 4), 1);          /* still version 1 */
    assert_int_equal(read_byte(path, before + 7), 0); /* record type 0 */

    j = jopen(f->dir, 1024, 0, 0);
    append_keyed_n(j, 11, 200, 3);
    hub_journal_stats(j, &st);
    assert_true(st.segments >= 2);
    hub_journal_close(j);
    /* the segment after it is of version 2 */
    uint64_t next = 1;
    char p1[128];
    for (seg_file(f->dir, next, p1, sizeof(p1)); access(p1, F_OK) != 0;
         seg_file(f->dir, ++next, p1, sizeof(p1)))
        assert_true(next < 211);
    assert_int_equal(read_byte(p1, 4), 2);
    assert_int_equal(read_byte(path, 4), 1);
    j = jopen(f->dir, 1024, 0, 0);
    uint64_t skipped = 0;
    assert_int_equal(read_gen(j, 0, 0, v1_mixed_payload, &skipped), 211);
    assert_int_equal(skipped, 0);
    hub_journal_close(j);

    /* a typed frame in a version 1 segment: cut by recovery */
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(f->dir, 0700);
    off = 16;
    for (uint64_t i = 0; i < 3; i++)
        off += mkframe(seg + off, i, p, (uint32_t)mkpayload(i, p));
    size_t at = off;
    uint8_t ref[4] = {0, 'x', 'y', 'z'};
    off += mkframe(seg + off, 3, ref, 4);
    seg[at + 7] = J_REC_REF; /* type in the top byte ... */
    uint32_t crc = hub_crc32c_mask(hub_crc32c(0, seg + at + 4, 12 + 4));
    for (int i = 0; i < 4; i++) /* ... under a valid CRC */
        seg[at + (size_t)i] = (uint8_t)(crc >> (8 * i));
    write_file(path, seg, off);
    j = jopen(f->dir, 1024, 0, 0);
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 3);
    assert_int_equal(st.recovered_cut, 16 + 4);
    hub_journal_close(j);
}

/* A frame of type t (in a version 2 segment) into out; returns its size. */
static size_t mktyped(uint8_t *out, uint64_t seq, enum j_rec_type t, const void *p, uint32_t n)
{
    size_t sz = mkframe(out, seq, p, n);
    out[7] = (uint8_t)t;
    uint32_t crc = hub_crc32c_mask(hub_crc32c(0, out + 4, 12 + n));
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(crc >> (8 * i));
    return sz;
}

/* Read the next record: HUB_OK with seq want_seq and payload want. */
static void next_is(hub_journal_reader_t *rd, struct hub_buf *b, uint64_t want_seq,
                    const char *want, uint64_t *skipped)
{
    uint64_t seq = UINT64_MAX;
    assert_int_equal(hub_journal_reader_next(rd, b, &seq, skipped), HUB_OK);
    assert_int_equal(seq, want_seq);
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, strlen(want));
}

/* Hand-made version 2 segments: DEFINE and REF records read back whole; a
 * REF whose id was never defined (or whose DEFINE was lost) is a corrupt
 * record, never a payload, and costs itself only: the DEFINEs after a lost
 * one carry their ids. Recovery of the newest segment passes over such a
 * record as damage and rebuilds the writer's dictionary. */
static void test_dict_unknown_id_corrupt(void **state)
{
    struct fx *f = *state;
    uint8_t seg[1024];
    size_t off = 16;
    put_header(seg, 2, 0);
    static const uint8_t def0[] = {0, 3, 'K', 'E', 'Y', '1', '2'}; /* id 0, key "KEY", "12" */
    static const uint8_t ref0[] = {0, '3', '4'};                   /* id 0, then "34" */
    static const uint8_t ref5[] = {5, '5', '6'};                   /* id 5: never defined */
    static const uint8_t def2[] = {2, 2, 'Z', 'Z', '9'};           /* id 2 (1 lost): "ZZ", "9" */
    static const uint8_t ref1[] = {1, '0'};                        /* id 1: lost */
    static const uint8_t ref2[] = {2, '8'};
    off += mktyped(seg + off, 0, J_REC_DEFINE, def0, sizeof(def0));
    off += mktyped(seg + off, 1, J_REC_REF, ref0, sizeof(ref0));
    off += mktyped(seg + off, 2, J_REC_REF, ref5, sizeof(ref5));
    off += mktyped(seg + off, 3, J_REC_DEFINE, def2, sizeof(def2));
    off += mktyped(seg + off, 4, J_REC_REF, ref1, sizeof(ref1));
    off += mktyped(seg + off, 5, J_REC_REF, ref2, sizeof(ref2));
    off += mktyped(seg + off, 6, J_REC_REF, ref0, sizeof(ref0));
    char path[128];
    seg_file(f->dir, 0, path, sizeof(path));
    write_file(path, seg, off);
    /* the next, newest segment: a plain record */
    uint8_t seg2[64];
    put_header(seg2, 2, 7);
    size_t off2 = 16 + mkframe(seg2 + 16, 7, "plain", 5);
    char path2[128];
    seg_file(f->dir, 7, path2, sizeof(path2));
    write_file(path2, seg2, off2);

    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    hub_journal_reader_t *rd;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    uint64_t seq, skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 0, &rd), HUB_OK);
    next_is(rd, &b, 0, "KEY12", &skipped);
    next_is(rd, &b, 1, "KEY34", &skipped);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_ECORRUPT);
    assert_int_equal(skipped, 1);
    next_is(rd, &b, 3, "ZZ9", &skipped);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_ECORRUPT);
    assert_int_equal(skipped, 2);
    next_is(rd, &b, 5, "ZZ8", &skipped);
    next_is(rd, &b, 6, "KEY34", &skipped);
    next_is(rd, &b, 7, "plain", &skipped);
    assert_int_equal(hub_journal_reader_next(rd, &b, &seq, &skipped), HUB_EEMPTY);
    assert_int_equal(skipped, 2);
    hub_journal_reader_free(rd);
    /* a reader starting after the bad ones takes in the DEFINEs on its way */
    skipped = 0;
    assert_int_equal(hub_journal_reader_new(j, 5, &rd), HUB_OK);
    next_is(rd, &b, 5, "ZZ8", &skipped);
    next_is(rd, &b, 6, "KEY34", &skipped);
    assert_int_equal(skipped, 0);
    hub_journal_reader_free(rd);
    hub_journal_close(j);

    /* as the newest segment: recovery passes over the two as damage */
    unlink(path2);
    j = jopen(f->dir, 0, 0, 0);
    struct hub_journal_stats st, st1;
    hub_journal_stats(j, &st);
    assert_int_equal(st.next_seq, 7);
    assert_int_equal(st.recovered_cut, 0);
    assert_int_equal(st.damaged_records, 2);
    /* appends go on with the dictionary recovery rebuilt: REFs of ids 2, 0 */
    assert_int_equal(hub_journal_append_keyed(j, "ZZ7", 3, 2, NULL), HUB_OK);
    assert_int_equal(hub_journal_append_keyed(j, "KEY78", 5, 3, NULL), HUB_OK);
    hub_journal_stats(j, &st1);
    assert_int_equal(st1.append_bytes - st.append_bytes, (16 + 1 + 1) + (16 + 1 + 2));
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(hub_journal_reader_new(j, 7, &rd), HUB_OK);
    next_is(rd, &b, 7, "ZZ7", &skipped);
    next_is(rd, &b, 8, "KEY78", &skipped);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    hub_journal_close(j);
}

/* A failed fsync with series dictionary records: the records written
 * again into a new file after the last good sync are REFs whose DEFINEs lie
 * before it; they are written whole, and everything reads back, appends
 * after them included, and after a reopen. Also when the whole segment is
 * written again (nothing synced yet). */
static void test_dict_failed_fsync_rewrites(void **state)
{
    struct fx *f = *state;
    enum { S = 4 };
    hub_journal_t *j = jopen(f->dir, 0, 0, 0);
    append_keyed_n(j, 0, 10, S); /* four DEFINEs, then REFs */
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    append_keyed_n(j, 10, 10, S); /* REFs only */
    hub_journal_sync_hook = sync_hook;
    sync_fail_n = 1;
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    assert_int_equal(st.sync_failed, 1);
    assert_int_equal(st.sync_lost, 0);
    assert_int_equal(st.segments, 2);
    append_keyed_n(j, 20, 10, S); /* DEFINEs again in the new file, then REFs */
    assert_int_equal(read_keyed(j, 0, S), 30);
    assert_int_equal(read_keyed(j, 12, S), 18);
    hub_journal_sync_hook = NULL;
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    append_keyed_n(j, 30, 5, S);
    assert_int_equal(read_keyed(j, 0, S), 35);
    hub_journal_close(j);

    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(f->dir, 0700);
    j = jopen(f->dir, 0, 0, 0);
    append_keyed_n(j, 0, 12, S);
    hub_journal_sync_hook = sync_hook;
    sync_fail_n = 1;
    assert_int_equal(hub_journal_sync(j), HUB_OK);
    hub_journal_sync_hook = NULL;
    append_keyed_n(j, 12, 8, S);
    assert_int_equal(read_keyed(j, 0, S), 20);
    hub_journal_close(j);
    j = jopen(f->dir, 0, 0, 0);
    assert_int_equal(read_keyed(j, 0, S), 20);
    hub_journal_close(j);
}

int main(void)
{
    hub_log_set_level(HUB_LOG_ERROR); /* recovery warnings are expected here */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_reopen_read),
        T(test_frame_layout),
        T(test_invalid_appends),
        T(test_torn_tail_every_offset),
        T(test_zero_filled_tail),
        T(test_flipped_byte_cuts),
        T(test_seq_gap_cuts),
        T(test_read_only_does_not_cut),
        T(test_rotation_and_read_across),
        T(test_sync_counts),
        T(test_cursor_commit_reopen),
        T(test_cursor_close_releases),
        T(test_too_many_cursors),
        T(test_corrupt_cursor_falls_back),
        T(test_cursor_deletes_segments),
        T(test_next_seq_survives),
        T(test_empty_and_torn_header_segment),
        T(test_drop_oldest),
        T(test_drop_newest),
        T(test_reader_stops_at_committed_end),
        T(test_sealed_segment_corrupt),
        T(test_active_damage_resyncs),
        T(test_foreign_segments_set_aside),
        T(test_missing_segment_logged),
        T(test_private_modes),
        T(test_failed_fsync_rewrites),
        T(test_sync_each),
        T(test_overlapping_segments),
        T(test_creates_nested_dir),
        T(test_wait_and_wake),
        T(test_wait_woken_by_thread),
        T(test_concurrent_appends_and_reader),
        T(test_cursor_past_end_clamp_persisted),
        T(test_read_only_segment_deleted_meanwhile),
        T(test_stress_append_sync_read_commit_drop),
        T(test_disk_full_drop_oldest),
        T(test_disk_full_drop_newest_space_comes_back),
        T(test_disk_full_single_segment_replaced),
        T(test_disk_full_reopen),
        T(test_cursor_write_fails_segments_freed),
        T(test_wait_ends_on_delete),
        T(test_dict_round_trip),
        T(test_dict_reopen_appends_refs),
        T(test_dict_bound),
        T(test_dict_v1_segment_read),
        T(test_dict_unknown_id_corrupt),
        T(test_dict_failed_fsync_rewrites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
