/* tests/fault/powercut.c — power cuts. The journal's syncs go through the
 * test build's I/O hooks (hub_journal_test_io, hub/journal_priv.h), where
 * this program keeps a model of the disk: for each file (by inode) the
 * content it had at its last fsync, for each of the journal's two
 * directories the entries it held at its last fsync. A cut abandons the
 * journal (no final sync, as a dead board) and rewrites the directories as
 * the disk would hold them after the power came back:
 *   - every file keeps what was synced; of what was not, a random part
 *     survives or not, and the unsynced tail may hold garbage (random
 *     bytes, zeros, sectors written out of order);
 *   - an entry created, renamed or unlinked since its directory's last
 *     fsync is undone: a new file vanishes, a deleted segment comes back,
 *     a renamed file has its old content under its name.
 * Then the journal is opened as the daemon opens it and checked: every
 * record synced is read back; each record read is one that was appended as
 * that seq, in order, never twice; at most the records appended since the
 * last sync are lost; a committed cursor reads back as committed (pulled
 * back only to the journal's end, or to its first stored record); the next
 * append works and reads back. Half the cuts come between two calls, half
 * inside one, just before one of its fsyncs (mid-rotation, mid-cursor
 * write, mid-redo): what that call then reports does not count. Several
 * cuts per iteration, random segment
 * sizes, bounds, sync_interval 0 or group commit. FAULT_ITERS iterations
 * (default 300) from FAULT_SEED. */
#include "hub/journal_priv.h"
#include "tests/fault/fault.h"

#include <dirent.h>

#define MAXSEQ 4096
#define NAME_MAX_ 256

struct node {
    ino_t ino;
    int fd; /* held open: the inode stays (and its number is not reused) */
    uint8_t *dur;
    size_t dlen;
};

struct dent {
    char name[NAME_MAX_];
    ino_t ino;
};

struct dirm {
    char path[300];
    ino_t ino;
    struct dent *e;
    size_t n;
};

static struct node *nodes;
static size_t nnodes, nodes_cap;
static struct dirm dirs[2]; /* the journal's directory, its cursors/ */
static unsigned long n_syncs, n_dir_syncs;

static uint8_t *read_fd(int fd, size_t *len)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        *len = 0;
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *p = malloc(n + 1);
    ssize_t r = n ? pread(fd, p, n, 0) : 0;
    *len = r > 0 ? (size_t)r : 0;
    return p;
}

/* The node of inode ino, opened through fd (a file descriptor or a name in
 * dirfd) when new. */
static struct node *node_get(ino_t ino, int dirfd, const char *name, int fd)
{
    for (size_t i = 0; i < nnodes; i++)
        if (nodes[i].ino == ino)
            return &nodes[i];
    if (nnodes == nodes_cap) {
        nodes_cap = nodes_cap ? 2 * nodes_cap : 64;
        nodes = realloc(nodes, nodes_cap * sizeof(*nodes));
    }
    struct node *n = &nodes[nnodes++];
    memset(n, 0, sizeof(*n));
    n->ino = ino;
    if (name) {
        n->fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    } else {
        char p[64];
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        n->fd = open(p, O_RDONLY | O_CLOEXEC);
    }
    if (n->fd < 0) {
        printf("powercut: cannot hold inode %lu open: %s\n", (unsigned long)ino, strerror(errno));
        exit(2);
    }
    return n;
}

static void node_snapshot(struct node *n)
{
    free(n->dur);
    n->dur = read_fd(n->fd, &n->dlen);
}

/* The entries of directory d as they are now; each file gets a node (its
 * content snapshot too when snap). */
static void dir_snapshot(struct dirm *d, bool snap)
{
    int dfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dh = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!dh) {
        printf("powercut: %s: %s\n", d->path, strerror(errno));
        exit(2);
    }
    free(d->e);
    d->e = NULL;
    d->n = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        struct stat sb;
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        if (d->n == cap) {
            cap = cap ? 2 * cap : 16;
            d->e = realloc(d->e, cap * sizeof(*d->e));
        }
        snprintf(d->e[d->n].name, NAME_MAX_, "%s", de->d_name);
        d->e[d->n].ino = sb.st_ino;
        d->n++;
        struct node *n = node_get(sb.st_ino, dfd, de->d_name, -1);
        if (snap)
            node_snapshot(n);
    }
    closedir(dh);
}

/* The hook: fsync and fdatasync of the journal. The model takes what the
 * call makes durable; the real call is skipped (-1: reported done). */
static void image_take(void);
static long cut_countdown = -1; /* syncs to go before a cut inside a call; -1: none */

static int on_sync(int fd, bool data)
{
    (void)data;
    if (cut_countdown > 0 && --cut_countdown == 0)
        image_take(); /* the power fails before this sync */
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -1;
    if (S_ISDIR(sb.st_mode)) {
        for (int i = 0; i < 2; i++)
            if (dirs[i].ino == sb.st_ino) {
                dir_snapshot(&dirs[i], false);
                n_dir_syncs++;
            }
        return -1;
    }
    node_snapshot(node_get(sb.st_ino, -1, NULL, fd));
    n_syncs++;
    return -1;
}

static void model_reset(void)
{
    for (size_t i = 0; i < nnodes; i++) {
        close(nodes[i].fd);
        free(nodes[i].dur);
    }
    nnodes = 0;
    for (int i = 0; i < 2; i++) {
        free(dirs[i].e);
        dirs[i].e = NULL;
        dirs[i].n = 0;
    }
}

/* What is on disk now is durable: the state after a cut, or a fresh start. */
static void model_baseline(void)
{
    model_reset();
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        stat(dirs[i].path, &sb);
        dirs[i].ino = sb.st_ino;
        dir_snapshot(&dirs[i], true);
    }
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static unsigned long tails_garbage, tails_partial, tails_dropped, tails_sectors;

/* What a file holds after the cut: its synced content, then some of what
 * was written after (cur, clen), maybe garbage. Returns a malloc'd buffer. */
static uint8_t *after_cut(const struct node *n, size_t *len)
{
    size_t clen = 0;
    uint8_t *cur = read_fd(n->fd, &clen);
    size_t dlen = n->dlen, cap = (clen > dlen ? clen : dlen) + 1024;
    uint8_t *out = malloc(cap);
    if (dlen)
        memcpy(out, n->dur, dlen);
    *len = dlen;
    if (clen > dlen) {
        size_t u = clen - dlen, keep;
        switch (rnd_below(6)) {
        case 0: /* nothing of it reached the disk */
            tails_dropped++;
            break;
        case 1: /* all of it did */
            memcpy(out + dlen, cur + dlen, u);
            *len = clen;
            break;
        case 2: /* a part, cut anywhere */
            keep = (size_t)rnd_below(u + 1);
            memcpy(out + dlen, cur + dlen, keep);
            *len = dlen + keep;
            tails_partial++;
            break;
        case 3: /* a part, then random bytes */
        case 4: /* a part, then zeros (the size grew before the data was written) */
            keep = (size_t)rnd_below(u + 1);
            memcpy(out + dlen, cur + dlen, keep);
            size_t g = 1 + (size_t)rnd_below(cap - dlen - keep);
            if (g > cap - dlen - keep)
                g = cap - dlen - keep;
            if (rnd_below(2))
                fill_random(out + dlen + keep, g);
            else
                memset(out + dlen + keep, 0, g);
            *len = dlen + keep + g;
            tails_garbage++;
            break;
        default: /* sectors written back out of order: each kept, zeroed or garbage */
            for (size_t o = dlen; o < clen; o += 512) {
                size_t s = clen - o < 512 ? clen - o : 512;
                uint64_t r = rnd_below(4);
                if (r < 2)
                    memcpy(out + o, cur + o, s);
                else if (r == 2)
                    memset(out + o, 0, s);
                else
                    fill_random(out + o, s);
            }
            *len = clen;
            tails_sectors++;
            break;
        }
    }
    free(cur);
    return out;
}

static void write_file_at(const char *dir, const char *name, const uint8_t *d, size_t n)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (n && write(fd, d, n) != (ssize_t)n)) {
        printf("powercut: %s: %s\n", p, strerror(errno));
        exit(2);
    }
    close(fd);
}

static unsigned long came_back, vanished, mid_call;

/* The disk as it would be if the power failed now: each directory's
 * entries of its last fsync, each file's content as after_cut makes it. */
struct image_file {
    int dir;
    char name[NAME_MAX_];
    uint8_t *data;
    size_t len;
};
static struct image_file *img;
static size_t nimg, img_cap;
static bool img_taken;

static void image_take(void)
{
    nimg = 0;
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < dirs[i].n; k++) {
            if (nimg == img_cap) {
                img_cap = img_cap ? 2 * img_cap : 64;
                img = realloc(img, img_cap * sizeof(*img));
            }
            struct image_file *f = &img[nimg++];
            f->dir = i;
            snprintf(f->name, sizeof(f->name), "%s", dirs[i].e[k].name);
            f->data = after_cut(node_get(dirs[i].e[k].ino, -1, NULL, -1), &f->len);
        }
    img_taken = true;
}

/* The power comes back: the directories hold the image, nothing else. */
static void power_cut(void)
{
    if (!img_taken)
        image_take();
    for (int i = 0; i < 2; i++) {
        DIR *dh = opendir(dirs[i].path);
        struct dirent *de;
        while (dh && (de = readdir(dh)) != NULL) {
            char p[400];
            struct stat sb;
            snprintf(p, sizeof(p), "%s/%s", dirs[i].path, de->d_name);
            if (lstat(p, &sb) < 0 || !S_ISREG(sb.st_mode))
                continue;
            bool kept = false;
            for (size_t k = 0; k < nimg; k++)
                kept |= img[k].dir == i && strcmp(img[k].name, de->d_name) == 0;
            vanished += !kept;
            unlink(p);
        }
        if (dh)
            closedir(dh);
    }
    for (size_t k = 0; k < nimg; k++) {
        write_file_at(dirs[img[k].dir].path, img[k].name, img[k].data, img[k].len);
        free(img[k].data);
    }
    nimg = 0;
    img_taken = false;
    model_baseline();
}

/* Count the entries of dir that an undone unlink brought back: compare the
 * listing before the cut (names) with the one after. */
static size_t list_names(const char *dir, char names[][NAME_MAX_], size_t max)
{
    size_t n = 0;
    DIR *dh = opendir(dir);
    struct dirent *de;
    while (dh && (de = readdir(dh)) != NULL && n < max)
        if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
            snprintf(names[n++], NAME_MAX_, "%s", de->d_name);
    if (dh)
        closedir(dh);
    return n;
}

struct state {
    uint32_t gen[MAXSEQ]; /* generation each seq was last appended in */
    uint64_t appended;    /* next_seq as the writer saw it */
    uint64_t durable;     /* every seq below it was synced, or kept by recovery */
    bool must[MAXSEQ];    /* that record is durable: it must be read back */
    uint64_t committed;   /* cursor "out" as last committed with HUB_OK */
    uint64_t tried;       /* a commit the cut interrupted (UINT64_MAX: none) */
    bool have_cursor;
    uint32_t g;
};

static hub_journal_t *open_j(const char *dir, const struct hub_journal_opts *base)
{
    struct hub_journal_opts o = *base;
    o.dir = dir;
    hub_journal_t *j = NULL;
    char err[512];
    int rc = hub_journal_open(&o, &j, err, sizeof(err));
    CHECK(rc == HUB_OK, "open after a power cut: %s", err);
    return rc == HUB_OK ? j : NULL;
}

static int append_gen(hub_journal_t *j, struct state *s)
{
    if (s->appended >= MAXSEQ - 1)
        return HUB_EFULL;
    s->gen[s->appended] = s->g;
    int rc = append_rec(j, s->appended, s->g);
    if (rc == HUB_OK)
        s->appended++;
    return rc;
}

/* Appends, syncs and cursor commits between two cuts. */
static void work(hub_journal_t *j, struct state *s, bool sync_each)
{
    unsigned n = (unsigned)rnd_below(160);
    unsigned every = 1 + (unsigned)rnd_below(30);
    /* Once the power has failed inside a call (img_taken), what that call
     * reports no longer counts, and nothing more is done. */
    for (unsigned i = 0; i < n && !img_taken; i++) {
        int rc = append_gen(j, s);
        CHECK(rc == HUB_OK || rc == HUB_EFULL, "append: %s", hub_strerror(rc));
        bool synced = rc == HUB_OK && sync_each;
        if (!img_taken && rnd_below(every) == 0) {
            rc = hub_journal_sync(j);
            CHECK(rc == HUB_OK, "sync: %s", hub_strerror(rc));
            synced |= rc == HUB_OK;
        }
        for (; synced && !img_taken && s->durable < s->appended; s->durable++)
            s->must[s->durable] = true;
        if (!img_taken && s->have_cursor && rnd_below(25) == 0) {
            uint64_t to = s->committed + rnd_below(s->appended - s->committed + 1);
            rc = hub_journal_cursor_commit(j, "out", to);
            CHECK(rc == HUB_OK, "cursor commit to %" PRIu64 ": %s", to, hub_strerror(rc));
            if (rc == HUB_OK && !img_taken)
                s->committed = to;
            else if (img_taken)
                s->tried = to;
        }
    }
}

static unsigned long cuts, lost_records, max_lost, resurrected;

/* After a cut and the reopen: the checks. */
static void verify(hub_journal_t *j, struct state *s, uint64_t first_before, const char *what)
{
    struct hub_journal_stats st;
    hub_journal_stats(j, &st);
    CHECK(st.next_seq >= s->durable,
          "%s: synced records lost: next_seq %" PRIu64 " below %" PRIu64 " synced", what,
          st.next_seq, s->durable);
    CHECK(st.next_seq <= s->appended,
          "%s: next_seq %" PRIu64 " past the %" PRIu64 " records appended", what, st.next_seq,
          s->appended);
    CHECK(st.first_seq <= first_before || st.first_seq == st.next_seq,
          "%s: stored records lost: the first stored seq went from %" PRIu64 " to %" PRIu64, what,
          first_before, st.first_seq);
    if (st.first_seq < first_before)
        resurrected++;

    static bool got[MAXSEQ];
    memset(got, 0, sizeof(got));
    uint64_t wrong = 0;
    read_all(j, 0, s->gen, got, MAXSEQ, &wrong);
    CHECK(wrong == 0, "%s: %" PRIu64 " records read back wrong", what, wrong);
    uint64_t from = st.first_seq;
    for (uint64_t q = from; q < s->durable; q++)
        CHECK(got[q] || !s->must[q],
              "%s: synced record %" PRIu64 " not read back (stored from %" PRIu64 ")", what, q,
              from);
    uint64_t lost = 0;
    for (uint64_t q = s->durable; q < s->appended; q++)
        lost += !got[q];
    lost_records += lost;
    if (lost > max_lost)
        max_lost = lost;

    /* The cursor. */
    if (s->have_cursor) {
        uint64_t c = UINT64_MAX;
        int rc = hub_journal_cursor_open(j, "out", &c);
        uint64_t want = s->committed;
        if (want > st.next_seq)
            want = st.next_seq;
        else if (want < st.first_seq)
            want = st.first_seq;
        uint64_t alt = s->tried > st.next_seq ? st.next_seq : s->tried;
        if (rc == HUB_OK && c == alt)
            want = alt; /* the interrupted commit made it */
        CHECK(rc == HUB_OK && c == want,
              "%s: cursor reads back as %" PRIu64 " (%s), committed %" PRIu64 ", expected %" PRIu64,
              what, c, hub_strerror(rc), s->committed, want);
        s->committed = c == UINT64_MAX ? 0 : c;
        s->tried = UINT64_MAX;
    }
    /* From here on: what recovery kept is durable (it syncs it), what it
     * lost in the unsynced window stays lost; the seqs past it are given
     * to new records. */
    for (uint64_t q = 0; q < MAXSEQ; q++)
        s->must[q] = q < st.next_seq && got[q];
    s->appended = st.next_seq;
    s->durable = st.next_seq;
    s->g++;
    uint64_t seq = s->appended;
    int rc = append_gen(j, s);
    CHECK(rc == HUB_OK || rc == HUB_EFULL, "%s: the next append: %s", what, hub_strerror(rc));
    if (rc == HUB_OK)
        check_reads_back(j, seq, s->g, what);
}

static void iteration(const char *base, unsigned long it)
{
    char dir[256];
    fresh_dir(dir, sizeof(dir), base, "j");
    mkdir(dir, 0700);
    snprintf(dirs[0].path, sizeof(dirs[0].path), "%s", dir);
    snprintf(dirs[1].path, sizeof(dirs[1].path), "%s/cursors", dir);
    mkdir(dirs[1].path, 0700);
    model_baseline();

    static const uint64_t segs[] = {256, 512, 1024, 4096};
    static const uint64_t maxes[] = {4096, 8192, 1 << 20};
    struct hub_journal_opts o = {
        .segment_size = segs[rnd_below(4)],
        .max_size = maxes[rnd_below(3)],
        .on_full = rnd_below(5) == 0 ? HUB_JOURNAL_DROP_NEWEST : HUB_JOURNAL_DROP_OLDEST,
        .sync_each = rnd_below(4) == 0,
    };
    static struct state s;
    memset(&s, 0, sizeof(s));
    s.have_cursor = rnd_below(4) != 0;
    hub_journal_t *j = open_j(dir, &o);
    if (!j)
        return;
    if (s.have_cursor) {
        uint64_t c;
        hub_journal_cursor_open(j, "out", &c);
    }
    unsigned ncuts = 1 + (unsigned)rnd_below(4);
    s.tried = UINT64_MAX;
    for (unsigned c = 0; c < ncuts && j; c++) {
        /* Half the cuts come inside a call: before its n-th sync. */
        cut_countdown = rnd_below(2) ? 1 + (long)rnd_below(80) : -1;
        work(j, &s, o.sync_each);
        cut_countdown = -1;
        mid_call += img_taken;
        struct hub_journal_stats st;
        hub_journal_stats(j, &st);
        char names[128][NAME_MAX_];
        size_t before = list_names(dir, names, 128);
        hub_journal_abandon(j);
        power_cut();
        cuts++;
        char after_names[128][NAME_MAX_];
        size_t after = list_names(dir, after_names, 128);
        for (size_t a = 0; a < after; a++) {
            bool seen = false;
            for (size_t b = 0; b < before; b++)
                seen |= strcmp(after_names[a], names[b]) == 0;
            came_back += !seen;
        }
        j = open_j(dir, &o);
        if (!j)
            break;
        char what[200];
        snprintf(what, sizeof(what),
                 "iteration %lu, cut %u (segment_size %" PRIu64 ", max_size %" PRIu64 ", %s, %s)",
                 it, c + 1, o.segment_size, o.max_size, o.sync_each ? "sync each" : "group commit",
                 o.on_full == HUB_JOURNAL_DROP_NEWEST ? "drop_newest" : "drop_oldest");
        verify(j, &s, st.first_seq, what);
    }
    if (j)
        hub_journal_close(j);
}

int main(void)
{
    unsigned long iters = fault_init("powercut", 300);
    const char *base = scratch_base("powercut");
    hub_journal_test_io.sync = on_sync;
    for (unsigned long it = 0; it < iters && fault_failures < 20; it++)
        iteration(base, it);
    hub_journal_test_io.sync = NULL;
    model_reset();
    free(nodes);
    free(img);
    printf("power cuts: %lu in %lu iterations (%lu inside a call: before one of its syncs); file "
           "syncs %lu, directory syncs %lu\n",
           cuts, iters, mid_call, n_syncs, n_dir_syncs);
    printf("unsynced tails: %lu dropped, %lu cut short, %lu with garbage, %lu sectors out of "
           "order; files vanished %lu, came back %lu; first stored seq moved back %lu times\n",
           tails_dropped, tails_partial, tails_garbage, tails_sectors, vanished, came_back,
           resurrected);
    printf("records lost (appended after the last sync): %lu in all, at most %lu at one cut\n",
           lost_records, max_lost);
    rm_rf(base);
    return fault_done("powercut");
}
