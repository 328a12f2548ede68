/* tests/fuzz/fuzz_journal.c — journal recovery and reading over arbitrary
 * segment bytes.
 *
 * Input: one mode byte, then the bytes of the newest segment file.
 *   mode bit 0: prefix the bytes with a valid segment header (else raw)
 *   mode bit 1: first split off an older, sealed segment (base 0, valid
 *               header) of data[1] % len bytes; the newest then gets base
 *               1 + (mode >> 4)
 *   mode bit 2: the first up to 40 bytes also become cursors/out
 *   mode bit 3: the headers written are of version 2 (series dictionary
 *               records) instead of 1 (plain records only)
 * Then: open (recovery), check the newest file is now header + valid frames
 * exactly to EOF (with only passed-over damage between them, as counted),
 * read everything, append two records of one series key (a DEFINE and a
 * REF in a version 2 segment), reopen, read again and find them last. Any
 * violation aborts. A version 2 segment's records are checked against a
 * model of its dictionary: a DEFINE carries a new id (ids passed over
 * belong to DEFINEs lost to damage), a REF a defined one; any other is
 * damage. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/crc32c.h"
#include "hub/journal.h"
#include "hub/log.h"

static char fz_dir[128];

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_journal: check failed at line %d: %s\n", __LINE__, #c);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, "cursors") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void remove_dir(void)
{
    char c[160];
    snprintf(c, sizeof(c), "%s/cursors", fz_dir);
    clean_dir(c);
    clean_dir(fz_dir);
    rmdir(c);
    rmdir(fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_set_level(getenv("FZ_LOG") ? HUB_LOG_DEBUG : HUB_LOG_ERROR);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof(fz_dir), "%s/fuzz_journal.%d", base, (int)getpid());
    mkdir(fz_dir, 0755);
    char c[160];
    snprintf(c, sizeof(c), "%s/cursors", fz_dir);
    mkdir(c, 0755);
    atexit(remove_dir);
    return 0;
}

static uint8_t fz_version = 1; /* of the headers put_header writes */

static void put_header(uint8_t *h, uint64_t base)
{
    memcpy(h, "CHJ1", 4);
    h[4] = fz_version;
    h[5] = h[6] = h[7] = 0;
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(base >> (8 * i));
}

static void write_seg(uint64_t base, bool header, const uint8_t *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", fz_dir, base);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (header) {
        uint8_t h[16];
        put_header(h, base);
        CHECK(write(fd, h, sizeof(h)) == (ssize_t)sizeof(h));
    }
    if (n)
        CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The newest segment file left in the directory (recovery may have set the
 * fuzzed one aside as foreign). Returns its base; aborts when there is none. */
static uint64_t newest_segment(void)
{
    DIR *d = opendir(fz_dir);
    CHECK(d);
    struct dirent *e;
    uint64_t best = 0;
    bool any = false;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 24 || strcmp(e->d_name + 20, ".seg") != 0)
            continue;
        uint64_t b = strtoull(e->d_name, NULL, 10);
        if (!any || b > best)
            best = b;
        any = true;
    }
    closedir(d);
    CHECK(any);
    return best;
}

/* The model of a version 2 segment's dictionary: which ids are defined,
 * the next id, the key bytes so far. */
#define FZ_MAX_KEYS 4096
#define FZ_MAX_KEY_BYTES (1u << 20)
struct model {
    bool v2;
    uint32_t next;
    uint64_t bytes;
    bool defined[FZ_MAX_KEYS];
};

/* A minimal varint of at most 32 bits at p[*at..n). */
static bool varint32(const uint8_t *p, size_t n, size_t *at, uint32_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 5 && *at < n; i++) {
        uint8_t c = p[(*at)++];
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            if ((c == 0 && i > 0) || x > UINT32_MAX)
                return false;
            *v = (uint32_t)x;
            return true;
        }
    }
    return false;
}

/* A frame for seq at off whose length and CRC are good (its length in
 * *len, its type in *type: 0 in a version 1 segment)? */
static bool frame_ok(const struct model *m, const uint8_t *b, size_t size, size_t off, uint64_t seq,
                     uint32_t *len, unsigned *type)
{
    if (size - off < 16)
        return false;
    uint32_t n = le32(b + off + 4);
    unsigned t = m->v2 ? n >> 24 : 0;
    if (m->v2)
        n &= 0xffffff;
    uint64_t s = (uint64_t)le32(b + off + 8) | (uint64_t)le32(b + off + 12) << 32;
    if (n == 0 || n > HUB_JOURNAL_MAX_RECORD || n > size - off - 16 || s != seq || t > 2)
        return false;
    if (hub_crc32c_unmask(le32(b + off)) != hub_crc32c(0, b + off + 4, 12 + n))
        return false;
    *len = n;
    *type = t;
    return true;
}

/* frame_ok, and a record the dictionary takes (with apply, a DEFINE is
 * added to it). */
static bool record_ok(struct model *m, const uint8_t *b, size_t size, size_t off, uint64_t seq,
                      uint32_t *len, bool apply)
{
    unsigned t;
    if (!frame_ok(m, b, size, off, seq, len, &t))
        return false;
    if (t == 0)
        return true;
    const uint8_t *p = b + off + 16;
    size_t at = 0;
    uint32_t id, klen;
    if (!varint32(p, *len, &at, &id))
        return false;
    if (t == 2)
        return id < m->next && m->defined[id];
    if (!varint32(p, *len, &at, &klen) || klen == 0 || klen > *len - at || id < m->next ||
        id >= FZ_MAX_KEYS || m->bytes + klen > FZ_MAX_KEY_BYTES)
        return false;
    if (!apply)
        return true;
    m->defined[id] = true;
    m->next = id + 1;
    m->bytes += klen;
    return true;
}

/* The recovered newest segment must be a valid header followed by valid
 * records with rising seqs that end exactly at EOF; between them only
 * damaged stretches that recovery passed over (a frame with a later seq
 * after them, no more seqs lost than the damaged bytes could hold), whose
 * lost seqs add up to *lost. Returns the seq after the last frame. */
static uint64_t verify_segment(uint64_t base, uint64_t *lost)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", fz_dir, base);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0);
    size_t size = (size_t)sb.st_size;
    CHECK(size >= 16);
    uint8_t *b = malloc(size);
    CHECK(b);
    CHECK(pread(fd, b, size, 0) == (ssize_t)size);
    close(fd);
    /* a header of version 1 or 2 (recovery rewrites a bad one as 2) */
    CHECK(b[4] == 1 || b[4] == 2);
    uint8_t saved = fz_version, h[16];
    fz_version = b[4];
    put_header(h, base);
    fz_version = saved;
    CHECK(memcmp(b, h, 16) == 0);
    static struct model m;
    memset(&m, 0, sizeof(m));
    m.v2 = b[4] == 2;
    size_t off = 16;
    uint64_t seq = base;
    *lost = 0;
    while (off < size) {
        uint32_t len;
        if (record_ok(&m, b, size, off, seq, &len, true)) {
            off += 16 + len;
            seq++;
            continue;
        }
        /* damage: the next offset holding a good record with a later seq */
        size_t p = off;
        uint64_t s = 0;
        for (; p + 16 < size; p++) {
            s = (uint64_t)le32(b + p + 8) | (uint64_t)le32(b + p + 12) << 32;
            if (s > seq && s - seq <= (p - off) / 17 && record_ok(&m, b, size, p, s, &len, false))
                break;
        }
        CHECK(p + 16 < size); /* else it was a tail, and should have been cut */
        *lost += s - seq;
        seq = s;
        off = p;
    }
    free(b);
    return seq;
}

/* Read everything; seqs must rise and stay below next_seq. Returns the last
 * seq read (UINT64_MAX if none) and its payload in last. */
static uint64_t read_all(hub_journal_t *j, struct hub_buf *last)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    hub_journal_reader_t *rd = NULL;
    struct hub_buf b;
    hub_buf_init(&b, HUB_JOURNAL_MAX_RECORD);
    CHECK(hub_journal_reader_new(j, 0, &rd) == HUB_OK);
    uint64_t prev = UINT64_MAX, seq = 0, skipped = 0;
    for (int guard = 0; guard < 100000; guard++) {
        int rc = hub_journal_reader_next(rd, &b, &seq, &skipped);
        if (rc == HUB_EEMPTY)
            break;
        if (rc == HUB_ECORRUPT)
            continue;
        CHECK(rc == HUB_OK);
        CHECK(prev == UINT64_MAX || seq > prev);
        CHECK(seq < st.next_seq && seq >= st.first_seq);
        CHECK(b.len > 0);
        prev = seq;
        hub_buf_reset(last);
        CHECK(hub_buf_add(last, b.data, b.len) == HUB_OK);
    }
    CHECK(hub_journal_reader_next(rd, &b, &seq, &skipped) == HUB_EEMPTY);
    hub_journal_reader_free(rd);
    hub_buf_free(&b);
    return prev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    char cdir[160];
    snprintf(cdir, sizeof(cdir), "%s/cursors", fz_dir);
    clean_dir(fz_dir);
    clean_dir(cdir);

    fz_version = mode & 8 ? 2 : 1;
    uint64_t base = 0;
    if ((mode & 2) && size >= 2) {
        size_t split = data[0] % size;
        write_seg(0, true, data + 1, split ? split - 1 : 0);
        data += split;
        size -= split;
        base = 1 + (mode >> 4);
    }
    if (mode & 4) {
        char p[200];
        snprintf(p, sizeof(p), "%s/out", cdir);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        size_t n = size < 40 ? size : 40;
        if (n)
            CHECK(write(fd, data, n) == (ssize_t)n);
        close(fd);
    }
    write_seg(base, mode & 1, data, size);

    struct hub_journal_opts o = {.dir = fz_dir, .segment_size = 4096, .max_size = 1 << 22};
    hub_journal_t *j = NULL;
    char err[256];
    int rc = hub_journal_open(&o, &j, err, sizeof(err));
    if (rc != HUB_OK) {
        fprintf(stderr, "open: %s\n", err);
        abort();
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t lost = 0;
    CHECK(verify_segment(newest_segment(), &lost) == st.next_seq);
    CHECK(lost == st.damaged_records);
    (void)base;

    uint64_t c = UINT64_MAX;
    CHECK(hub_journal_cursor_open(j, "out", &c) == HUB_OK);
    CHECK(c >= st.first_seq && c <= st.next_seq);

    struct hub_buf last;
    hub_buf_init(&last, HUB_JOURNAL_MAX_RECORD);
    read_all(j, &last);

    /* one series key, "fuzz-": a DEFINE, then a REF (version 2) */
    static const char rec[] = "fuzz-append", rec2[] = "fuzz-again";
    uint64_t s = 0;
    CHECK(hub_journal_append_keyed(j, rec, sizeof(rec) - 1, 5, &s) == HUB_OK);
    CHECK(s == st.next_seq);
    CHECK(hub_journal_append_keyed(j, rec2, sizeof(rec2) - 1, 5, &s) == HUB_OK);
    CHECK(s == st.next_seq + 1);
    CHECK(hub_journal_cursor_commit(j, "out", c) == HUB_OK);
    hub_journal_close(j);

    CHECK(hub_journal_open(&o, &j, err, sizeof(err)) == HUB_OK);
    struct hub_journal_stats st2;
    hub_journal_stats(j, &st2);
    CHECK(st2.next_seq == s + 1);
    CHECK(st2.recovered_cut == 0);
    uint64_t c2 = UINT64_MAX;
    CHECK(hub_journal_cursor_peek(j, "out", &c2) == HUB_OK);
    CHECK(c2 == c);
    CHECK(read_all(j, &last) == s);
    CHECK(last.len == sizeof(rec2) - 1 && memcmp(last.data, rec2, last.len) == 0);
    hub_journal_reader_t *rd = NULL;
    uint64_t seq = 0;
    CHECK(hub_journal_reader_new(j, s - 1, &rd) == HUB_OK);
    CHECK(hub_journal_reader_next(rd, &last, &seq, NULL) == HUB_OK && seq == s - 1);
    CHECK(last.len == sizeof(rec) - 1 && memcmp(last.data, rec, last.len) == 0);
    hub_journal_reader_free(rd);
    hub_journal_close(j);
    hub_buf_free(&last);
    return 0;
}
