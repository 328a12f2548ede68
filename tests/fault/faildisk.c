/* tests/fault/faildisk.c — a failing disk. Through the test build's I/O
 * hooks (hub/journal_priv.h) the k-th call of one kind — write, fsync,
 * rename, open, ftruncate, unlink — fails with EIO or ENOSPC, for every k
 * until a run no longer reaches k: one-shot (only the k-th call fails) and
 * persistent (every call from the k-th fails, FAULT_SPAN calls in all,
 * then the disk recovers). A failed fsync of a segment may also lose the
 * pages it could not write (the unsynced bytes read back as zeros), as a
 * kernel may after a writeback error.
 *
 * The run is what the daemon does, against the journal API: appends, group
 * commit, cursor commits (which delete delivered segments), a close and a
 * reopen (recovery) in the middle, all while the disk fails. Checked:
 *   - nothing crashes or aborts (ASan, UBSan), every call returns;
 *   - an append returns HUB_OK or an error, and a failed one leaves
 *     next_seq where it was: a cursor cannot be committed past it;
 *   - after a failed fsync of a segment the journal reads the file back
 *     through a new descriptor before it reports a sync done, and counts
 *     the failure (sync_failed); records it could not read back are
 *     counted (sync_lost), never delivered wrong;
 *   - once the disk has recovered: every record acknowledged durable (a
 *     sync returned HUB_OK after its append) reads back, every record read
 *     is the one appended as that seq, in order; a record accepted but not
 *     acknowledged is missing only if a fsync failed after it; the cursor
 *     is one that was committed; the next append works.
 * FAULT_SHAPES runs (default 2: group commit, then sync_interval 0; more
 * get random segment sizes and lengths) from FAULT_SEED. */
#include "hub/journal_priv.h"
#include "tests/fault/fault.h"

#define MAXSEQ 2048

enum kind { K_WRITE, K_SYNC, K_RENAME, K_OPEN, K_FTRUNCATE, K_UNLINK, K_N };
static const char *const kind_name[K_N] = {"write", "fsync",     "rename",
                                           "open",  "ftruncate", "unlink"};

static struct {
    int kind, err;
    unsigned long k, span;
    bool persistent, active, paused;
    unsigned long calls[K_N], hits;
    bool seg_sync_failed; /* a segment's fsync failed in this run */
    bool reread_due;      /* ... since the last sync reported done */
    bool reread_seen;     /* a segment opened since that failure */
    unsigned long fail_in_handle;
    unsigned long pages_lost;
} inj;

struct synced {
    ino_t ino;
    uint64_t len;
};
static struct synced synced[256];
static size_t nsynced;

static struct synced *synced_of(ino_t ino)
{
    for (size_t i = 0; i < nsynced; i++)
        if (synced[i].ino == ino)
            return &synced[i];
    if (nsynced == 256)
        nsynced = 0; /* a run holds far fewer files */
    synced[nsynced].ino = ino;
    synced[nsynced].len = 0;
    return &synced[nsynced++];
}

static int fail_now(int kind)
{
    if (inj.paused)
        return 0;
    unsigned long c = ++inj.calls[kind];
    if (!inj.active || kind != inj.kind)
        return 0;
    if (c == inj.k || (inj.persistent && c > inj.k && c < inj.k + inj.span)) {
        inj.hits++;
        return inj.err;
    }
    return 0;
}

static bool is_seg(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".seg") == 0;
}

static int on_write(const char *path, size_t bytes)
{
    (void)path;
    (void)bytes;
    int e = fail_now(K_WRITE);
    /* ftruncate is called after a failed write only: in its sweep, writes
     * fail now and then (without counting as the failure looked for). */
    if (!e && inj.active && inj.kind == K_FTRUNCATE && inj.calls[K_WRITE] % 4 == 0)
        e = EIO;
    return e;
}

static int on_sync(int fd, bool data)
{
    (void)data;
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return 0; /* no such file: the real call says so */
    int e = fail_now(K_SYNC);
    if (!S_ISREG(sb.st_mode))
        return e ? e : -1;
    struct synced *s = synced_of(sb.st_ino);
    if (!e) {
        s->len = (uint64_t)sb.st_size;
        return -1; /* the model is the disk: the real fsync is not needed */
    }
    char link[64], path[512];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = 0;
    if (is_seg(path) && (uint64_t)sb.st_size > HUB_JOURNAL_HEADER_SIZE) {
        inj.seg_sync_failed = inj.reread_due = true;
        inj.reread_seen = false;
        inj.fail_in_handle++;
        /* Half the time the pages not written are gone: they read back as
         * zeros from a random point of the unsynced part on. */
        uint64_t from = s->len > HUB_JOURNAL_HEADER_SIZE ? s->len : HUB_JOURNAL_HEADER_SIZE;
        if ((uint64_t)sb.st_size > from && rnd_below(2)) {
            uint64_t at = from + rnd_below((uint64_t)sb.st_size - from);
            size_t z = (size_t)((uint64_t)sb.st_size - at);
            uint8_t *zeros = calloc(1, z);
            int wfd = open(link, O_WRONLY | O_CLOEXEC);
            if (wfd >= 0 && pwrite(wfd, zeros, z, (off_t)at) == (ssize_t)z)
                inj.pages_lost++;
            if (wfd >= 0)
                close(wfd);
            free(zeros);
        }
    }
    return e;
}

static int on_rename(int dirfd, const char *from, const char *to)
{
    (void)dirfd;
    (void)from;
    (void)to;
    return fail_now(K_RENAME);
}

static int on_open(const char *path, int flags)
{
    int e = fail_now(K_OPEN);
    if (!e && is_seg(path) && !(flags & O_CREAT))
        inj.reread_seen = true;
    return e;
}

static int on_ftruncate(int fd, uint64_t len)
{
    (void)fd;
    (void)len;
    return fail_now(K_FTRUNCATE);
}

static int on_unlink(const char *path)
{
    (void)path;
    return fail_now(K_UNLINK);
}

struct shape {
    unsigned nrec, sync_every, commit_every;
    uint64_t seg;
    bool sync_each;
};

struct run {
    uint32_t gen[MAXSEQ], g;
    bool ok[MAXSEQ];    /* appended with HUB_OK (in generation gen) */
    bool acked[MAXSEQ]; /* and acknowledged durable */
    uint64_t committed; /* last cursor commit that returned HUB_OK */
    uint64_t tried[64]; /* commits tried since (a failed one may have landed) */
    size_t ntried;
    unsigned long lost, unsynced_lost;
    char what[200];
};

static unsigned long runs, k_reached, opens_failed, appends_failed, syncs_failed_seen,
    commits_failed;
static unsigned long total_lost, total_unsynced_lost, total_pages_lost;

static hub_journal_t *open_retry(const char *dir, const struct shape *sh, struct run *r)
{
    struct hub_journal_opts o = {
        .dir = dir, .segment_size = sh->seg, .max_size = 1 << 20, .sync_each = sh->sync_each};
    for (unsigned t = 0; t < inj.span + 8; t++) {
        hub_journal_t *j = NULL;
        char err[512] = "";
        int rc = hub_journal_open(&o, &j, err, sizeof(err));
        if (rc == HUB_OK) {
            inj.fail_in_handle = 0;
            return j;
        }
        opens_failed++;
        CHECK(err[0] != 0, "%s: open failed (%s) without saying why", r->what, hub_strerror(rc));
    }
    CHECK(0, "%s: the journal did not open once the disk worked again", r->what);
    return NULL;
}

/* The records the last call lost (stats.sync_lost went up by d): the last d
 * accepted before next_seq, the appended record (seq) among them unless it
 * reads back. */
static void mark_lost(hub_journal_t *j, struct run *r, uint64_t d, uint64_t next, long seq)
{
    if (d == 0)
        return;
    uint64_t end = next;
    if (seq >= 0) {
        inj.paused = true;
        hub_journal_reader_t *rd = NULL;
        struct hub_buf p;
        hub_buf_init(&p, HUB_JOURNAL_MAX_RECORD);
        hub_journal_reader_new(j, (uint64_t)seq, &rd);
        uint64_t rs = 0;
        int rc = hub_journal_reader_next(rd, &p, &rs, NULL);
        if (rc == HUB_OK && rs == (uint64_t)seq)
            end = (uint64_t)seq;
        hub_journal_reader_free(rd);
        hub_buf_free(&p);
        inj.paused = false;
    }
    for (uint64_t q = end - d; q < end; q++) {
        CHECK(!r->acked[q], "%s: record %" PRIu64 " acknowledged durable, then lost", r->what, q);
        r->ok[q] = false;
    }
    r->lost += d;
}

static void ack_all(struct run *r, uint64_t next)
{
    for (uint64_t q = 0; q < next; q++)
        if (r->ok[q])
            r->acked[q] = true;
}

/* A sync reported done: check the journal read back what a failed fsync
 * left untrusted. */
static void sync_done(hub_journal_t *j, struct run *r)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    CHECK(!inj.reread_due || inj.reread_seen,
          "%s: a segment's fsync failed and a later sync was reported done without reading it "
          "back",
          r->what);
    CHECK(inj.fail_in_handle == 0 || st.sync_failed > 0, "%s: a failed fsync was not counted",
          r->what);
    inj.reread_due = false;
    ack_all(r, st.next_seq);
}

static void after_reopen(hub_journal_t *j, struct run *r, uint64_t next_before)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    for (uint64_t q = st.next_seq; q < next_before; q++) {
        CHECK(!r->acked[q], "%s: record %" PRIu64 " acknowledged durable, lost at reopen", r->what,
              q);
        if (r->ok[q])
            r->unsynced_lost++;
        r->ok[q] = false;
    }
    CHECK(!r->unsynced_lost || inj.seg_sync_failed,
          "%s: records accepted lost at reopen without a failed fsync", r->what);
    r->g++;
    inj.reread_due = false; /* open read the segment anew */
}

static void commit(hub_journal_t *j, struct run *r, uint64_t to)
{
    int rc = hub_journal_cursor_commit(j, "out", to);
    if (rc == HUB_OK) {
        r->committed = to;
        r->ntried = 0;
        return;
    }
    commits_failed++;
    CHECK(rc == HUB_EIO, "%s: cursor commit: %s", r->what, hub_strerror(rc));
    if (r->ntried < 64)
        r->tried[r->ntried++] = to;
}

/* The final checks, on a healthy disk. */
static void verify(const char *dir, const struct shape *sh, struct run *r)
{
    hub_journal_t *j = open_retry(dir, sh, r);
    if (!j)
        return;
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    static bool got[MAXSEQ];
    memset(got, 0, sizeof(got));
    uint64_t wrong = 0;
    read_all(j, 0, r->gen, got, MAXSEQ, &wrong);
    CHECK(wrong == 0, "%s: %" PRIu64 " records read back wrong", r->what, wrong);
    uint64_t c = UINT64_MAX;
    hub_journal_cursor_open(j, "out", &c);
    bool known = c == r->committed || c == st.next_seq || c == st.first_seq;
    for (size_t i = 0; i < r->ntried; i++)
        known |= c == r->tried[i];
    CHECK(known && c <= st.next_seq,
          "%s: cursor at %" PRIu64 ", committed %" PRIu64 " (next_seq %" PRIu64 ")", r->what, c,
          r->committed, st.next_seq);
    CHECK(st.first_seq <= c, "%s: records before the cursor %" PRIu64 " deleted from %" PRIu64,
          r->what, c, st.first_seq);
    /* Below the cursor records were delivered: deleting them is right. */
    for (uint64_t q = st.first_seq > c ? st.first_seq : c; q < MAXSEQ; q++) {
        if (r->acked[q])
            CHECK(got[q], "%s: record %" PRIu64 " acknowledged durable, not read back", r->what, q);
        else if (r->ok[q] && !got[q]) {
            r->unsynced_lost++;
            CHECK(inj.seg_sync_failed,
                  "%s: record %" PRIu64 " accepted, not read back, and no fsync failed", r->what,
                  q);
        }
    }
    r->g++;
    r->gen[st.next_seq] = r->g;
    int rc = append_rec(j, st.next_seq, r->g);
    CHECK(rc == HUB_OK, "%s: append once the disk recovered: %s", r->what, hub_strerror(rc));
    if (rc == HUB_OK)
        check_reads_back(j, st.next_seq, r->g, r->what);
    hub_journal_close(j);
}

/* One run with the failure set in inj. Returns whether it was reached. */
static bool one_run(const char *base, const struct shape *sh)
{
    char dir[256];
    static struct run r;
    memset(&r, 0, sizeof(r));
    snprintf(r.what, sizeof(r.what), "%s #%lu %s %s (%u records, segment %" PRIu64 "%s)",
             kind_name[inj.kind], inj.k, inj.err == EIO ? "EIO" : "ENOSPC",
             inj.persistent ? "persistent" : "one-shot", sh->nrec, sh->seg,
             sh->sync_each ? ", sync each" : "");
    fresh_dir(dir, sizeof(dir), base, "j");
    memset(inj.calls, 0, sizeof(inj.calls));
    inj.hits = 0;
    inj.seg_sync_failed = inj.reread_due = inj.reread_seen = false;
    inj.pages_lost = 0;
    nsynced = 0;
    inj.active = true;
    runs++;

    hub_journal_t *j = open_retry(dir, sh, &r);
    uint64_t c = 0;
    if (j)
        hub_journal_cursor_open(j, "out", &c);
    r.committed = c;
    for (unsigned i = 0; j && i < sh->nrec; i++) {
        struct hub_journal_stats a, b;
        hub_journal_stats(j, &a);
        if (a.next_seq >= MAXSEQ - 2)
            break;
        r.gen[a.next_seq] = r.g;
        int rc = append_rec(j, a.next_seq, r.g);
        hub_journal_stats(j, &b);
        if (rc == HUB_OK) {
            r.ok[a.next_seq] = true;
            CHECK(b.next_seq == a.next_seq + 1,
                  "%s: next_seq %" PRIu64 " after an append as %" PRIu64, r.what, b.next_seq,
                  a.next_seq);
            mark_lost(j, &r, b.sync_lost - a.sync_lost, b.next_seq, (long)a.next_seq);
            /* sync_interval 0: the append synced its record, unless an
             * fsync failed and the records have not been written again
             * since (the append then returns HUB_OK all the same: a later
             * sync tells) */
            if (sh->sync_each && b.sync_lost == a.sync_lost && b.sync_failed == a.sync_failed &&
                !inj.reread_due)
                sync_done(j, &r);
        } else {
            appends_failed++;
            CHECK(rc == HUB_EIO || rc == HUB_EFULL, "%s: append: %s", r.what, hub_strerror(rc));
            CHECK(b.next_seq == a.next_seq,
                  "%s: a failed append moved next_seq %" PRIu64 " -> %" PRIu64, r.what, a.next_seq,
                  b.next_seq);
            mark_lost(j, &r, b.sync_lost - a.sync_lost, b.next_seq, -1);
            CHECK(hub_journal_cursor_commit(j, "out", b.next_seq + 1) == HUB_EINVAL,
                  "%s: a cursor committed past the journal's end", r.what);
        }
        if (i % sh->sync_every == sh->sync_every - 1) {
            hub_journal_stats(j, &a);
            rc = hub_journal_sync(j);
            hub_journal_stats(j, &b);
            mark_lost(j, &r, b.sync_lost - a.sync_lost, b.next_seq, -1);
            if (rc == HUB_OK)
                sync_done(j, &r);
            else {
                syncs_failed_seen++;
                CHECK(rc == HUB_EIO, "%s: sync: %s", r.what, hub_strerror(rc));
            }
        }
        if (i % sh->commit_every == sh->commit_every - 1) {
            uint64_t to = b.next_seq > 2 ? b.next_seq - 2 : 0;
            if (to >= r.committed)
                commit(j, &r, to);
        }
        if (i == sh->nrec / 2) { /* a restart while the disk fails */
            hub_journal_stats(j, &a);
            hub_journal_close(j);
            j = open_retry(dir, sh, &r);
            if (j) {
                after_reopen(j, &r, a.next_seq);
                hub_journal_cursor_open(j, "out", &c);
            }
        }
    }
    bool reached = inj.hits > 0;
    /* The disk recovers: the daemon's next sync, then a restart. */
    inj.active = false;
    if (j) {
        struct hub_journal_stats a, b;
        hub_journal_stats(j, &a);
        int rc = hub_journal_sync(j);
        hub_journal_stats(j, &b);
        CHECK(rc == HUB_OK, "%s: sync once the disk recovered: %s", r.what, hub_strerror(rc));
        mark_lost(j, &r, b.sync_lost - a.sync_lost, b.next_seq, -1);
        if (rc == HUB_OK)
            sync_done(j, &r);
        hub_journal_close(j);
    }
    verify(dir, sh, &r);
    total_lost += r.lost;
    total_unsynced_lost += r.unsynced_lost;
    total_pages_lost += inj.pages_lost;
    return reached;
}

/* FAULT_ONLY=KIND:K:EIO|ENOSPC:one-shot|persistent runs that one failure
 * (of each shape), to replay what a sweep reported. */
static bool only(const char *base, const struct shape *sh)
{
    const char *o = getenv("FAULT_ONLY");
    char kind[16], err[16], mode[16];
    unsigned long k;
    if (!o || sscanf(o, "%15[^:]:%lu:%15[^:]:%15s", kind, &k, err, mode) != 4)
        return false;
    for (int i = 0; i < K_N; i++)
        if (strcmp(kind, kind_name[i]) == 0)
            inj.kind = i;
    inj.k = k;
    inj.err = strcmp(err, "ENOSPC") == 0 ? ENOSPC : EIO;
    inj.persistent = strcmp(mode, "persistent") == 0;
    printf("  %s: %s\n", o, one_run(base, sh) ? "reached" : "not reached");
    return true;
}

static void sweep(const char *base, const struct shape *sh)
{
    if (only(base, sh))
        return;
    for (int kind = 0; kind < K_N && fault_failures < 20; kind++)
        for (int e = 0; e < 2; e++)
            for (int p = 0; p < 2; p++) {
                unsigned long k;
                for (k = 1; fault_failures < 20; k++) {
                    inj.kind = kind;
                    inj.err = e ? ENOSPC : EIO;
                    inj.persistent = p;
                    inj.k = k;
                    if (!one_run(base, sh))
                        break;
                    k_reached++;
                }
                printf("  %-9s %-6s %-10s: calls 1..%lu failed in turn\n", kind_name[kind],
                       e ? "ENOSPC" : "EIO", p ? "persistent" : "one-shot", k - 1);
            }
}

int main(void)
{
    fault_init("faildisk", 0);
    const char *sh_env = getenv("FAULT_SHAPES"), *span = getenv("FAULT_SPAN");
    unsigned long shapes = sh_env && *sh_env ? strtoul(sh_env, NULL, 10) : 2;
    inj.span = span && *span ? strtoul(span, NULL, 10) : 12;
    printf("faildisk: FAULT_SHAPES=%lu FAULT_SPAN=%lu\n", shapes, inj.span);
    const char *base = scratch_base("faildisk");
    hub_journal_fault_hook = on_write;
    hub_journal_test_io.sync = on_sync;
    hub_journal_test_io.rename = on_rename;
    hub_journal_test_io.open = on_open;
    hub_journal_test_io.ftruncate = on_ftruncate;
    hub_journal_test_io.unlink = on_unlink;
    static const uint64_t segs[] = {256, 512, 2048};
    for (unsigned long s = 0; s < shapes && fault_failures < 20; s++) {
        struct shape sh = {
            .nrec = 40, .sync_every = 5, .commit_every = 7, .seg = 256, .sync_each = s == 1};
        if (s >= 2) {
            sh.nrec = 20 + (unsigned)rnd_below(100);
            sh.sync_every = 1 + (unsigned)rnd_below(10);
            sh.commit_every = 1 + (unsigned)rnd_below(15);
            sh.seg = segs[rnd_below(3)];
            sh.sync_each = rnd_below(3) == 0;
        }
        printf("shape %lu: %u records, segment %" PRIu64 ", sync every %u%s, commit every %u, "
               "persistent failures last %lu calls\n",
               s + 1, sh.nrec, sh.seg, sh.sync_every, sh.sync_each ? " (and each append)" : "",
               sh.commit_every, inj.span);
        sweep(base, &sh);
    }
    memset(&hub_journal_test_io, 0, sizeof(hub_journal_test_io));
    hub_journal_fault_hook = NULL;
    printf("runs %lu (%lu reached their failure): opens failed %lu, appends refused %lu, syncs "
           "failed %lu, cursor commits failed %lu; segment pages lost %lu, records lost to them "
           "%lu counted + %lu unsynced\n",
           runs, k_reached, opens_failed, appends_failed, syncs_failed_seen, commits_failed,
           total_pages_lost, total_lost, total_unsynced_lost);
    rm_rf(base);
    return fault_done("faildisk");
}
