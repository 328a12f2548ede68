/* tests/fault/corrupt.c — torn and corrupt journal data. A journal of known
 * records is damaged on disk, then opened as the daemon opens it (writable,
 * with recovery) and read back:
 *   - truncated at every byte offset of its last records;
 *   - random bits flipped anywhere in a segment, sealed or active (header
 *     included);
 *   - tails of zeros or 0xFF, appended or overwriting the last records;
 *   - segment headers truncated (the active segment's, a sealed one's).
 * Always: the open succeeds, no wrong record is ever returned (each record
 * read decodes and is byte for byte what was appended as that seq), every
 * record before the damage is kept, and the next append works and reads back.
 *
 * And after a damaged record in a segment, the records after it in the
 * same segment are still read (the reader and recovery resynchronise on
 * the next valid record instead of cutting or skipping the rest of the
 * segment). Those checks are counted and printed as "resync";
 * FAULT_EXPECT_RESYNC=0 reports their misses without failing the run. */
#include "tests/fault/fault.h"

#define N 60
#define SEG 512

struct frame {
    uint64_t off, len; /* len: frame + payload */
};

struct seg_copy {
    uint64_t base;
    uint8_t *data;
    size_t size;
    struct frame fr[N];
    size_t nfr;
};

static struct seg_copy segs[64];
static size_t nsegs;
static const char *base_dir;
static unsigned long resync_checks, resync_misses;
static bool expect_resync;

/* Parse the frames of a pristine segment. */
static void parse_frames(struct seg_copy *s)
{
    uint64_t off = HUB_JOURNAL_HEADER_SIZE;
    s->nfr = 0;
    while (off + HUB_JOURNAL_FRAME_SIZE <= s->size && s->nfr < N) {
        const uint8_t *p = s->data + off + 4;
        uint64_t len =
            (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
        s->fr[s->nfr].off = off;
        s->fr[s->nfr].len = HUB_JOURNAL_FRAME_SIZE + len;
        s->nfr++;
        off += HUB_JOURNAL_FRAME_SIZE + len;
    }
}

static void load_file(const char *path, uint8_t **data, size_t *size)
{
    *size = (size_t)file_size(path);
    *data = malloc(*size + 1);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, *data, *size) != (ssize_t)*size) {
        perror(path);
        exit(2);
    }
    close(fd);
}

/* Build the pristine journal once: N records in segments of SEG bytes. */
static void build(void)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir), base_dir, "pristine");
    hub_journal_t *j = jopen(dir, SEG, 1 << 20);
    if (!j)
        exit(2);
    for (uint64_t s = 0; s < N; s++)
        append_rec(j, s, 0);
    hub_journal_close(j);
    nsegs = 0;
    for (uint64_t b = 0; b < N; b++) {
        char p[300];
        seg_path(dir, b, p, sizeof(p));
        if (access(p, F_OK) != 0)
            continue;
        struct seg_copy *s = &segs[nsegs++];
        s->base = b;
        load_file(p, &s->data, &s->size);
        parse_frames(s);
    }
    if (nsegs < 3) {
        printf("expected several segments, got %zu\n", nsegs);
        exit(2);
    }
}

static void write_file(const char *path, const uint8_t *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, d, n) != (ssize_t)n) {
        perror(path);
        exit(2);
    }
    close(fd);
}

/* Write the pristine journal into a fresh directory, segment k's bytes
 * replaced by (d, n) when d is not NULL. */
static void restore(char *dir, size_t dlen, size_t k, const uint8_t *d, size_t n)
{
    fresh_dir(dir, dlen, base_dir, "j");
    mkdir(dir, 0700);
    for (size_t i = 0; i < nsegs; i++) {
        char p[300];
        seg_path(dir, segs[i].base, p, sizeof(p));
        if (d && i == k)
            write_file(p, d, n);
        else
            write_file(p, segs[i].data, segs[i].size);
    }
}

/* Open as the daemon does, read everything, append one record. keep[s]:
 * must be read; resync[s]: should be read (the intended behaviour). */
static void open_check(const char *dir, const bool *keep, const bool *resync, const char *what)
{
    hub_journal_t *j = jopen(dir, SEG, 1 << 20);
    if (!j)
        return;
    uint32_t gen[N + 2] = {0};
    bool got[N + 2] = {0};
    uint64_t wrong = 0;
    read_all(j, 0, gen, got, N, &wrong);
    CHECK(wrong == 0, "%s: %" PRIu64 " wrong records", what, wrong);
    for (uint64_t s = 0; s < N; s++) {
        if (keep[s])
            CHECK(got[s], "%s: good record %" PRIu64 " before the damage lost", what, s);
        if (resync && resync[s] && !keep[s]) {
            resync_checks++;
            if (!got[s]) {
                resync_misses++;
                if (expect_resync)
                    CHECK(got[s], "%s: good record %" PRIu64 " after the damage lost (resync)",
                          what, s);
            }
        }
    }
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    uint64_t s = st.next_seq;
    CHECK(s <= N, "%s: next_seq %" PRIu64 " past what was appended", what, s);
    /* The next append works and reads back (generation 1: a new record). */
    uint8_t buf[512];
    size_t n = make_record(s, 1, buf, sizeof(buf));
    uint64_t as = 0;
    int rc = hub_journal_append(j, buf, n, &as);
    CHECK(rc == HUB_OK && as == s, "%s: append after the damage: %s", what, hub_strerror(rc));
    if (rc == HUB_OK)
        check_reads_back(j, s, 1, what);
    hub_journal_close(j);
}

/* The seq of frame f of segment k. */
static uint64_t seq_of(size_t k, size_t f)
{
    return segs[k].base + f;
}

static void mark_other_segments(size_t k, bool *keep)
{
    for (size_t i = 0; i < nsegs; i++)
        if (i != k)
            for (size_t f = 0; f < segs[i].nfr; f++)
                keep[seq_of(i, f)] = true;
}

/* Records of segment k wholly before byte from are kept; those wholly
 * after byte to should be (resync). */
static void mark_around(size_t k, uint64_t from, uint64_t to, bool *keep, bool *resync)
{
    for (size_t f = 0; f < segs[k].nfr; f++) {
        const struct frame *fr = &segs[k].fr[f];
        if (fr->off + fr->len <= from)
            keep[seq_of(k, f)] = true;
        else if (fr->off >= to && resync)
            resync[seq_of(k, f)] = true;
    }
}

static void torn_every_offset(void)
{
    size_t k = nsegs - 1;
    struct seg_copy *s = &segs[k];
    size_t start = s->nfr >= 3 ? s->fr[s->nfr - 3].off : HUB_JOURNAL_HEADER_SIZE;
    unsigned cases = 0;
    for (size_t o = start; o <= s->size; o++, cases++) {
        char dir[256], what[160];
        bool keep[N] = {0};
        restore(dir, sizeof(dir), k, s->data, o);
        mark_other_segments(k, keep);
        mark_around(k, o, o, keep, NULL);
        snprintf(what, sizeof(what), "torn at byte %zu of the active segment", o);
        open_check(dir, keep, NULL, what);
    }
    printf("torn tail: %u offsets\n", cases);
}

static void bit_flips(unsigned long iters)
{
    uint8_t *d = malloc(8192);
    unsigned long sealed = 0, active = 0;
    for (unsigned long it = 0; it < iters; it++) {
        /* Half in the active segment, half in a sealed one. */
        size_t k = rnd_below(2) ? nsegs - 1 : (size_t)rnd_below(nsegs - 1);
        struct seg_copy *s = &segs[k];
        memcpy(d, s->data, s->size);
        int nflips = 1 + (int)rnd_below(3);
        uint64_t lo = UINT64_MAX, hi = 0, bits[3];
        for (int i = 0; i < nflips; i++) {
            uint64_t b;
            bool dup;
            do { /* distinct bits: two flips of one bit would undo each other */
                b = rnd_below(4) == 0 ? rnd_below(HUB_JOURNAL_HEADER_SIZE * 8)
                                      : rnd_below(s->size * 8);
                dup = false;
                for (int q = 0; q < i; q++)
                    dup |= bits[q] == b;
            } while (dup);
            bits[i] = b;
            d[b / 8] ^= (uint8_t)(1u << (b % 8));
            if (b / 8 < lo)
                lo = b / 8;
            if (b / 8 + 1 > hi)
                hi = b / 8 + 1;
        }
        char dir[256], what[160];
        bool keep[N] = {0}, resync[N] = {0};
        restore(dir, sizeof(dir), k, d, s->size);
        mark_other_segments(k, keep);
        if (lo >= HUB_JOURNAL_HEADER_SIZE) /* header damage: the segment is unreadable */
            mark_around(k, lo, hi, keep, resync);
        k + 1 == nsegs ? active++ : sealed++;
        snprintf(what, sizeof(what),
                 "%d bit(s) flipped in %s segment %zu at bytes %" PRIu64 "..%" PRIu64, nflips,
                 k + 1 == nsegs ? "the active" : "sealed", k, lo, hi - 1);
        open_check(dir, keep, resync, what);
    }
    free(d);
    printf("bit flips: %lu (%lu in sealed segments, %lu in the active one)\n", iters, sealed,
           active);
}

static void tails(unsigned long iters)
{
    size_t k = nsegs - 1;
    struct seg_copy *s = &segs[k];
    uint8_t *d = malloc(s->size + 4096);
    for (unsigned long it = 0; it < iters; it++) {
        uint8_t fill = rnd_below(2) ? 0xFF : 0x00;
        bool overwrite = rnd_below(2);
        size_t n = 1 + (size_t)rnd_below(overwrite ? s->size - HUB_JOURNAL_HEADER_SIZE : 4000);
        memcpy(d, s->data, s->size);
        size_t total = s->size, from = s->size;
        if (overwrite) {
            from = s->size - n;
            memset(d + from, fill, n);
        } else {
            memset(d + s->size, fill, n);
            total += n;
        }
        char dir[256], what[160];
        bool keep[N] = {0};
        restore(dir, sizeof(dir), k, d, total);
        mark_other_segments(k, keep);
        mark_around(k, from, from, keep, NULL);
        snprintf(what, sizeof(what), "%zu bytes of 0x%02X %s the active segment", n, fill,
                 overwrite ? "over the end of" : "after");
        open_check(dir, keep, NULL, what);
    }
    free(d);
    printf("zero / 0xFF tails: %lu\n", iters);
}

static void torn_headers(void)
{
    for (int which = 0; which < 2; which++) {
        size_t k = which == 0 ? nsegs - 1 : 0; /* the active one, then a sealed one */
        for (size_t h = 0; h < HUB_JOURNAL_HEADER_SIZE; h++) {
            char dir[256], what[160];
            bool keep[N] = {0};
            restore(dir, sizeof(dir), k, segs[k].data, h);
            mark_other_segments(k, keep);
            snprintf(what, sizeof(what), "%s segment cut to %zu header bytes",
                     which == 0 ? "the active" : "a sealed", h);
            open_check(dir, keep, NULL, what);
        }
    }
    printf("torn headers: %d\n", 2 * HUB_JOURNAL_HEADER_SIZE);
}

int main(void)
{
    unsigned long iters = fault_init("corrupt", 300);
    expect_resync = !getenv("FAULT_EXPECT_RESYNC") || atoi(getenv("FAULT_EXPECT_RESYNC"));
    base_dir = scratch_base("corrupt");
    build();
    torn_every_offset();
    torn_headers();
    bit_flips(iters);
    tails(iters / 3 + 1);
    printf("resync (records after a damaged one in its segment): %lu of %lu read%s\n",
           resync_checks - resync_misses, resync_checks,
           resync_misses ? (expect_resync ? " — FAILED" : " — missed (FAULT_EXPECT_RESYNC=0)")
                         : "");
    rm_rf(base_dir);
    for (size_t i = 0; i < nsegs; i++)
        free(segs[i].data);
    return fault_done("corrupt");
}
