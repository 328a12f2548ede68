/* hub/journal.c — the crash-safe write-ahead journal (see hub/journal.h).
 *
 * Layout on disk:
 *   DIR/00000000000000000000.seg   segments, named by the seq of their first
 *   DIR/00000000000000000042.seg   record; the last one is the active one
 *   DIR/cursors/NAME               "SEQ\ncrc32c XXXXXXXX\n" (CRC of "SEQ\n")
 *
 * In memory the journal keeps the list of segments (base seq, sealed size),
 * the active segment's fd and committed end (the byte after the last complete
 * append), next_seq, and the registered cursors. One mutex guards all of it;
 * an append is one pwritev() of frame header + payload at the committed end,
 * made under that mutex, so a record is either wholly in the page cache or
 * (after a failed write is truncated away) not at all. Readers pread() their
 * own fd outside the mutex, up to the committed end they saw under it.
 *
 * Durability: appends never fsync. hub_journal_sync() fdatasyncs a dup of the
 * active fd outside the mutex (group commit). Rotation fsyncs the full
 * segment (it is then "sealed"), creates the next one with its header, fsyncs
 * it and the directory. Cursors are written to a temp file, fsynced, renamed
 * and the directory fsynced (PostgreSQL's durable_rename). */
#include "hub/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hub/crc32c.h"
#include "hub/log.h"

#define J_WHO "journal"
#define J_MAGIC "CHJ1"
#define J_VERSION 1u
#define J_DEFAULT_SEGMENT (8ull << 20)
#define J_DEFAULT_MAX (256ull << 20)
#define J_MIN_SEGMENT 64ull
#define J_IOBUF 65536 /* read buffer of a reader / of recovery */
#define J_PATH_MAX 4096
#define J_SEG_NAME_LEN 24 /* 20 digits + ".seg" */
#define J_CURSOR_FILE_MAX 64

struct j_seg {
    uint64_t base; /* seq of its first record (from its name) */
    uint64_t size; /* file size; for the active segment see j->active_size */
};

struct j_cursor {
    char name[HUB_JOURNAL_MAX_NAME];
    uint64_t seq;       /* next seq the output has not delivered */
    uint64_t persisted; /* last value durably written */
    bool used;
};

struct hub_journal {
    char *dir;
    uint64_t segment_size;
    uint64_t max_size;
    enum hub_journal_on_full on_full;
    bool read_only;

    pthread_mutex_t mu;
    pthread_cond_t cond;       /* signalled on every append and by wake */
    pthread_mutex_t cursor_mu; /* serialises cursor file writes */
    uint64_t wake_gen;

    int dirfd;
    int cursor_dirfd;
    struct j_seg *segs; /* sorted by base; the last is the active segment */
    size_t nsegs;
    size_t segs_alloc;
    int active_fd;        /* -1 when read_only */
    uint64_t active_size; /* committed end of the active segment */
    uint64_t total_bytes; /* all segment files */
    uint64_t next_seq;
    bool dirty;     /* appended since the last fsync */
    bool tail_junk; /* a failed write left bytes past active_size */

    struct j_cursor cursors[HUB_JOURNAL_MAX_CURSORS];
    struct hub_journal_stats st;
};

/* A window of a segment file read with pread, shared by readers and
 * recovery. */
struct j_in {
    int fd;
    uint8_t *buf;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf */
};

struct hub_journal_reader {
    hub_journal_t *j;
    struct j_in in;
    uint64_t seg_base; /* segment open in in.fd (valid when in.fd >= 0) */
    uint64_t off;      /* next frame offset in that segment */
    uint64_t pos_seq;  /* seq the frame at off must carry */
    uint64_t want;     /* next seq to return */
};

/* ---- little helpers ------------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void seg_path(const hub_journal_t *j, uint64_t base, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%020" PRIu64 ".seg", j->dir, base);
}

static void make_header(uint8_t *h, uint64_t base)
{
    memcpy(h, J_MAGIC, 4);
    put_le32(h + 4, J_VERSION);
    put_le64(h + 8, base);
}

static bool header_ok(const uint8_t *h, uint64_t base)
{
    return memcmp(h, J_MAGIC, 4) == 0 && get_le32(h + 4) == J_VERSION && get_le64(h + 8) == base;
}

/* Write all of buf at off. Returns 0, or -1 with errno set. */
static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Read up to n bytes at off; returns bytes read (short only at EOF) or -1. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* fsync and count it; caller holds j->mu (or owns j exclusively). */
static int j_fsync(hub_journal_t *j, int fd)
{
    j->st.fsyncs++;
    return fsync(fd);
}

/* mkdir -p. Returns 0 or -1 with errno. */
static int mkdir_p(const char *path)
{
    char tmp[J_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* fsync the directory holding path, so that a directory just created there
 * survives a power cut. Failure is only logged: the journal works on. */
static void fsync_parent(hub_journal_t *j, const char *path)
{
    char tmp[J_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = 0;
    char *slash = strrchr(tmp, '/');
    const char *parent = ".";
    if (slash == tmp)
        parent = "/";
    else if (slash) {
        *slash = 0;
        parent = tmp;
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || j_fsync(j, fd) < 0)
        hub_warn(J_WHO, "%s: fsync: %s", parent, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* "00000000000000000042.seg" -> 42. Returns true for a segment name. */
static bool parse_seg_name(const char *name, uint64_t *base)
{
    if (strlen(name) != J_SEG_NAME_LEN || strcmp(name + 20, ".seg") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *base = v;
    return true;
}

/* Make room in j->segs for one more segment. Returns HUB_OK or HUB_ENOMEM. */
static int segs_reserve(hub_journal_t *j)
{
    if (j->nsegs < j->segs_alloc)
        return HUB_OK;
    size_t na = j->segs_alloc ? j->segs_alloc * 2 : 16;
    struct j_seg *p = realloc(j->segs, na * sizeof(*p));
    if (!p)
        return HUB_ENOMEM;
    j->segs = p;
    j->segs_alloc = na;
    return HUB_OK;
}

static int segs_push(hub_journal_t *j, uint64_t base, uint64_t size)
{
    if (segs_reserve(j) != HUB_OK)
        return HUB_ENOMEM;
    j->segs[j->nsegs].base = base;
    j->segs[j->nsegs].size = size;
    j->nsegs++;
    return HUB_OK;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct j_seg *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* ---- frame reading (readers and recovery) ------------------------------- */

/* Make bytes [off, off+n) of the file available in in->buf, reading no further
 * than limit. n <= J_IOBUF. Returns a pointer to them, or NULL with *rc set
 * (HUB_EIO, or HUB_ECORRUPT when the file is shorter than limit). */
static const uint8_t *in_get(struct j_in *in, uint64_t off, size_t n, uint64_t limit, int *rc)
{
    if (off >= in->off && off + n <= in->off + in->len)
        return in->buf + (off - in->off);
    uint64_t want = limit - off;
    if (want > J_IOBUF)
        want = J_IOBUF;
    ssize_t r = pread_full(in->fd, in->buf, (size_t)want, off);
    if (r < 0) {
        in->len = 0;
        *rc = HUB_EIO;
        return NULL;
    }
    in->off = off;
    in->len = (size_t)r;
    if ((size_t)r < n) {
        *rc = HUB_ECORRUPT;
        return NULL;
    }
    return in->buf;
}

/* Check the frame at off (which must lie below limit) and, if out is not
 * NULL, append its payload to out. expect is the seq it must carry.
 * Returns HUB_OK with *len (payload length), HUB_ECORRUPT with *why, HUB_EIO,
 * or out's HUB_EFULL / HUB_ENOMEM. */
static int frame_read(struct j_in *in, uint64_t off, uint64_t limit, uint64_t expect,
                      struct hub_buf *out, uint32_t *len, const char **why)
{
    int rc = HUB_OK;
    if (limit - off < HUB_JOURNAL_FRAME_SIZE) {
        *why = "torn frame header";
        return HUB_ECORRUPT;
    }
    const uint8_t *h = in_get(in, off, HUB_JOURNAL_FRAME_SIZE, limit, &rc);
    if (!h) {
        *why = "short read";
        return rc;
    }
    uint8_t fh[HUB_JOURNAL_FRAME_SIZE];
    memcpy(fh, h, sizeof(fh));
    uint32_t stored = get_le32(fh);
    uint32_t n = get_le32(fh + 4);
    uint64_t seq = get_le64(fh + 8);
    if (stored == 0 && n == 0 && seq == 0) {
        *why = "zero-filled frame";
        return HUB_ECORRUPT;
    }
    if (n == 0 || n > HUB_JOURNAL_MAX_RECORD) {
        *why = "bad record length";
        return HUB_ECORRUPT;
    }
    if ((uint64_t)n > limit - off - HUB_JOURNAL_FRAME_SIZE) {
        *why = "record runs past the end";
        return HUB_ECORRUPT;
    }
    if (seq != expect) {
        *why = "seq out of order";
        return HUB_ECORRUPT;
    }
    uint32_t crc = hub_crc32c(0, fh + 4, 12);
    uint64_t p = off + HUB_JOURNAL_FRAME_SIZE;
    uint32_t left = n;
    size_t out_start = out ? out->len : 0;
    while (left) {
        size_t chunk = left > J_IOBUF ? J_IOBUF : left;
        const uint8_t *d = in_get(in, p, chunk, limit, &rc);
        if (!d) {
            *why = "short read";
            goto fail;
        }
        crc = hub_crc32c(crc, d, chunk);
        if (out && (rc = hub_buf_add(out, d, chunk)) != HUB_OK) {
            *why = "payload buffer";
            goto fail;
        }
        p += chunk;
        left -= (uint32_t)chunk;
    }
    if (hub_crc32c_unmask(stored) != crc) {
        *why = "CRC mismatch";
        rc = HUB_ECORRUPT;
        goto fail;
    }
    *len = n;
    return HUB_OK;
fail:
    if (out) {
        out->len = out_start;
        if (out->data)
            out->data[out->len] = 0;
    }
    return rc;
}

/* ---- open and recovery --------------------------------------------------- */

/* Create segment base with its header, fsync it and the directory. Returns
 * the fd (O_RDWR) or -1 with errno. Caller holds j->mu or owns j. */
static int seg_create(hub_journal_t *j, uint64_t base)
{
    char path[J_PATH_MAX];
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    seg_path(j, base, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    make_header(h, base);
    if (pwrite_all(fd, h, sizeof(h), 0) < 0 || j_fsync(j, fd) < 0 || j_fsync(j, j->dirfd) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return -1;
    }
    return fd;
}

/* Recover the newest segment: check (or rewrite) its header, scan its frames
 * and cut the file at the first bad one. Sets active_fd, active_size,
 * next_seq. Returns HUB_OK or an error described in err. */
static int recover_active(hub_journal_t *j, char *err, size_t errlen)
{
    struct j_seg *s = &j->segs[j->nsegs - 1];
    char path[J_PATH_MAX];
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    struct j_in in = {.fd = -1};
    int rc = HUB_EIO;

    seg_path(j, s->base, path, sizeof(path));
    in.fd = open(path, (j->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (in.fd < 0) {
        snprintf(err, errlen, "%s: open: %s", path, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(in.fd, &sb) < 0) {
        snprintf(err, errlen, "%s: stat: %s", path, strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    ssize_t r = pread_full(in.fd, h, sizeof(h), 0);
    if (r < 0) {
        snprintf(err, errlen, "%s: read header: %s", path, strerror(errno));
        goto out;
    }
    if ((size_t)r < sizeof(h) || !header_ok(h, s->base)) {
        if (j->read_only) {
            /* Nothing can be read from it; report it as empty. */
            hub_warn(J_WHO, "%s: bad segment header (%zd bytes), read-only: treated as empty", path,
                     r);
            s->size = size;
            j->active_size = size;
            j->next_seq = s->base;
            rc = HUB_OK;
            goto out;
        }
        hub_warn(J_WHO, "%s: torn or bad segment header (%" PRIu64 " bytes), rewriting it", path,
                 size);
        if (size < HUB_JOURNAL_HEADER_SIZE) {
            j->st.recovered_cut += size;
            size = HUB_JOURNAL_HEADER_SIZE;
        }
        make_header(h, s->base);
        if (pwrite_all(in.fd, h, sizeof(h), 0) < 0 || j_fsync(j, in.fd) < 0) {
            snprintf(err, errlen, "%s: rewrite header: %s", path, strerror(errno));
            goto out;
        }
    }

    in.buf = malloc(J_IOBUF);
    if (!in.buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = HUB_ENOMEM;
        goto out;
    }
    uint64_t off = HUB_JOURNAL_HEADER_SIZE, seq = s->base;
    const char *why = NULL;
    while (off < size) {
        uint32_t len;
        rc = frame_read(&in, off, size, seq, NULL, &len, &why);
        if (rc == HUB_EIO) {
            snprintf(err, errlen, "%s: read at byte %" PRIu64 ": %s", path, off, strerror(errno));
            goto out;
        }
        if (rc != HUB_OK)
            break;
        off += HUB_JOURNAL_FRAME_SIZE + len;
        seq++;
    }
    if (off < size) {
        if (j->read_only) {
            hub_warn(J_WHO,
                     "%s: bad record at byte %" PRIu64 " (%s), read-only: %" PRIu64
                     " bytes after it ignored",
                     path, off, why, size - off);
        } else {
            hub_warn(J_WHO, "%s: bad record at byte %" PRIu64 " (%s): cutting %" PRIu64 " bytes",
                     path, off, why, size - off);
            if (ftruncate(in.fd, (off_t)off) < 0 || j_fsync(j, in.fd) < 0) {
                snprintf(err, errlen, "%s: truncate to %" PRIu64 ": %s", path, off,
                         strerror(errno));
                rc = HUB_EIO;
                goto out;
            }
            j->st.recovered_cut += size - off;
            size = off;
        }
    }
    s->size = j->read_only ? size : off;
    j->active_size = off;
    j->next_seq = seq;
    if (!j->read_only) {
        j->active_fd = in.fd;
        in.fd = -1;
    }
    rc = HUB_OK;
out:
    if (in.fd >= 0)
        close(in.fd);
    free(in.buf);
    return rc;
}

/* List the segment files of j->dir into j->segs, sorted. */
static int list_segments(hub_journal_t *j, char *err, size_t errlen)
{
    DIR *d = opendir(j->dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", j->dir, strerror(errno));
        return HUB_EIO;
    }
    int rc = HUB_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        if (!parse_seg_name(e->d_name, &base))
            continue;
        struct stat sb;
        uint64_t size = 0;
        if (fstatat(j->dirfd, e->d_name, &sb, 0) == 0)
            size = (uint64_t)sb.st_size;
        if ((rc = segs_push(j, base, size)) != HUB_OK) {
            snprintf(err, errlen, "%s: out of memory", j->dir);
            break;
        }
    }
    closedir(d);
    if (j->nsegs > 1)
        qsort(j->segs, j->nsegs, sizeof(*j->segs), seg_cmp);
    return rc;
}

int hub_journal_open(const struct hub_journal_opts *opts, hub_journal_t **out, char *err,
                     size_t errlen)
{
    char path[J_PATH_MAX];
    int rc = HUB_EIO;
    *out = NULL;
    if (!opts || !opts->dir || !opts->dir[0] || strlen(opts->dir) > J_PATH_MAX - 64) {
        snprintf(err, errlen, "journal: no directory or path too long");
        return HUB_EINVAL;
    }
    hub_journal_t *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, errlen, "%s: out of memory", opts->dir);
        return HUB_ENOMEM;
    }
    j->dirfd = j->cursor_dirfd = j->active_fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->cursor_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);

    j->dir = strdup(opts->dir);
    if (!j->dir) {
        snprintf(err, errlen, "%s: out of memory", opts->dir);
        rc = HUB_ENOMEM;
        goto fail;
    }
    j->max_size = opts->max_size ? opts->max_size : J_DEFAULT_MAX;
    j->segment_size = opts->segment_size ? opts->segment_size : J_DEFAULT_SEGMENT;
    if (j->segment_size > j->max_size / 2)
        j->segment_size = j->max_size / 2;
    if (j->segment_size < J_MIN_SEGMENT)
        j->segment_size = J_MIN_SEGMENT;
    j->on_full = opts->on_full;
    j->read_only = opts->read_only;

    struct stat sb;
    bool dir_existed = stat(j->dir, &sb) == 0;
    if (!j->read_only && mkdir_p(j->dir) < 0) {
        snprintf(err, errlen, "%s: create: %s", j->dir, strerror(errno));
        goto fail;
    }
    if (!j->read_only && !dir_existed)
        fsync_parent(j, j->dir);
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        snprintf(err, errlen, "%s: %s", j->dir, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/cursors", j->dir);
    if (!j->read_only) {
        if (mkdir(path, 0755) == 0) {
            j_fsync(j, j->dirfd); /* make the new entry durable */
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "%s: create: %s", path, strerror(errno));
            goto fail;
        }
    }
    j->cursor_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->cursor_dirfd < 0 && !j->read_only) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }

    if ((rc = list_segments(j, err, errlen)) != HUB_OK)
        goto fail;
    if (j->nsegs == 0) {
        if (!j->read_only) {
            /* A fresh journal. */
            j->active_fd = seg_create(j, 0);
            if (j->active_fd < 0) {
                seg_path(j, 0, path, sizeof(path));
                snprintf(err, errlen, "%s: create: %s", path, strerror(errno));
                rc = HUB_EIO;
                goto fail;
            }
            if ((rc = segs_push(j, 0, HUB_JOURNAL_HEADER_SIZE)) != HUB_OK) {
                snprintf(err, errlen, "%s: out of memory", j->dir);
                goto fail;
            }
            j->active_size = HUB_JOURNAL_HEADER_SIZE;
        }
    } else if ((rc = recover_active(j, err, errlen)) != HUB_OK) {
        goto fail;
    }
    for (size_t i = 0; i + 1 < j->nsegs; i++)
        j->total_bytes += j->segs[i].size;
    if (j->nsegs)
        j->total_bytes += j->segs[j->nsegs - 1].size;
    *out = j;
    return HUB_OK;
fail:
    hub_journal_close(j);
    return rc;
}

void hub_journal_close(hub_journal_t *j)
{
    if (!j)
        return;
    if (j->active_fd >= 0) {
        if (j->dirty && fdatasync(j->active_fd) < 0)
            hub_err(J_WHO, "%s: final sync: %s", j->dir ? j->dir : "?", strerror(errno));
        close(j->active_fd);
    }
    if (j->dirfd >= 0)
        close(j->dirfd);
    if (j->cursor_dirfd >= 0)
        close(j->cursor_dirfd);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->mu);
    pthread_mutex_destroy(&j->cursor_mu);
    free(j->segs);
    free(j->dir);
    free(j);
}

/* ---- appending ----------------------------------------------------------- */

/* Lowest seq a registered cursor still needs, or UINT64_MAX with none. */
static uint64_t min_cursor(const hub_journal_t *j)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < HUB_JOURNAL_MAX_CURSORS; i++)
        if (j->cursors[i].used && j->cursors[i].seq < m)
            m = j->cursors[i].seq;
    return m;
}

/* Delete the oldest segment (never the active one). Caller holds j->mu.
 * Returns how many records in it no registered cursor had passed. */
static uint64_t drop_first_segment(hub_journal_t *j)
{
    char path[J_PATH_MAX];
    struct j_seg *s = &j->segs[0];
    uint64_t end = j->segs[1].base;
    uint64_t m = min_cursor(j);
    uint64_t from = m == UINT64_MAX ? s->base : (m > s->base ? m : s->base);
    uint64_t undelivered = end > from ? end - from : 0;

    seg_path(j, s->base, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        hub_err(J_WHO, "%s: delete: %s", path, strerror(errno));
    j->total_bytes -= s->size;
    memmove(&j->segs[0], &j->segs[1], (j->nsegs - 1) * sizeof(*j->segs));
    j->nsegs--;
    return undelivered;
}

/* Seal the active segment (fsync) and start the next one at next_seq.
 * Caller holds j->mu. Returns HUB_OK or HUB_EIO (the old segment stays
 * active). */
static int rotate(hub_journal_t *j)
{
    char path[J_PATH_MAX];
    if (j_fsync(j, j->active_fd) < 0) {
        seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
        hub_err(J_WHO, "%s: fsync before rotation: %s", path, strerror(errno));
        return HUB_EIO;
    }
    j->dirty = false;
    /* Grow first so nothing can fail after the new file exists. */
    if (segs_reserve(j) != HUB_OK)
        return HUB_EIO;
    int fd = seg_create(j, j->next_seq);
    if (fd < 0) {
        seg_path(j, j->next_seq, path, sizeof(path));
        hub_err(J_WHO, "%s: create: %s", path, strerror(errno));
        return HUB_EIO;
    }
    close(j->active_fd);
    j->active_fd = fd;
    j->segs[j->nsegs - 1].size = j->active_size;
    segs_push(j, j->next_seq, HUB_JOURNAL_HEADER_SIZE);
    j->active_size = HUB_JOURNAL_HEADER_SIZE;
    j->total_bytes += HUB_JOURNAL_HEADER_SIZE;
    j->tail_junk = false;
    return HUB_OK;
}

/* Make room for a record of n bytes (frame included): rotate when the active
 * segment would pass segment_size, apply on_full when the journal would pass
 * max_size. Caller holds j->mu. */
static int make_room(hub_journal_t *j, uint64_t n)
{
    for (;;) {
        bool has_records = j->active_size > HUB_JOURNAL_HEADER_SIZE;
        bool want_rotate = has_records && j->active_size + n > j->segment_size;
        uint64_t need = n + (want_rotate ? HUB_JOURNAL_HEADER_SIZE : 0);
        if (j->total_bytes + need <= j->max_size)
            return want_rotate ? rotate(j) : HUB_OK;
        if (j->on_full == HUB_JOURNAL_DROP_NEWEST)
            return HUB_EFULL;
        if (j->nsegs > 1) {
            uint64_t lost = drop_first_segment(j);
            j->st.dropped += lost;
            if (lost)
                hub_warn(J_WHO,
                         "%s: journal full (max %" PRIu64 " bytes): dropped %" PRIu64
                         " undelivered records, oldest now %" PRIu64,
                         j->dir, j->max_size, lost, j->segs[0].base);
        } else if (has_records) {
            int rc = rotate(j); /* so that the records become droppable */
            if (rc != HUB_OK)
                return rc;
        } else {
            return HUB_EFULL; /* one record larger than the whole journal */
        }
    }
}

int hub_journal_append(hub_journal_t *j, const void *payload, size_t len, uint64_t *seq)
{
    if (!j || !payload || len == 0 || len > HUB_JOURNAL_MAX_RECORD)
        return HUB_EINVAL;
    if (j->read_only)
        return HUB_EINVAL;

    uint8_t fh[HUB_JOURNAL_FRAME_SIZE];
    uint64_t n = HUB_JOURNAL_FRAME_SIZE + (uint64_t)len;
    int rc;

    pthread_mutex_lock(&j->mu);
    if (j->tail_junk) {
        if (ftruncate(j->active_fd, (off_t)j->active_size) < 0) {
            rc = HUB_EIO;
            goto out;
        }
        j->tail_junk = false;
    }
    if ((rc = make_room(j, n)) != HUB_OK)
        goto out;

    uint64_t s = j->next_seq;
    put_le32(fh + 4, (uint32_t)len);
    put_le64(fh + 8, s);
    uint32_t crc = hub_crc32c(0, fh + 4, 12);
    crc = hub_crc32c(crc, payload, len);
    put_le32(fh, hub_crc32c_mask(crc));

    struct iovec iov[2] = {{fh, sizeof(fh)}, {(void *)(uintptr_t)payload, len}};
    ssize_t w;
    do {
        w = pwritev(j->active_fd, iov, 2, (off_t)j->active_size);
    } while (w < 0 && errno == EINTR);
    if (w != (ssize_t)n) {
        int e = w < 0 ? errno : ENOSPC;
        char path[J_PATH_MAX];
        seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
        hub_err(J_WHO, "%s: append at byte %" PRIu64 ": %s", path, j->active_size,
                w < 0 ? strerror(e) : "short write");
        /* Never leave half a record: cut back to the record's start. */
        if (w != 0 && ftruncate(j->active_fd, (off_t)j->active_size) < 0)
            j->tail_junk = true;
        errno = e;
        rc = HUB_EIO;
        goto out;
    }
    j->active_size += n;
    j->total_bytes += n;
    j->next_seq = s + 1;
    j->dirty = true;
    j->st.appends++;
    j->st.append_bytes += n;
    if (seq)
        *seq = s;
    pthread_cond_broadcast(&j->cond);
    rc = HUB_OK;
out:
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int hub_journal_sync(hub_journal_t *j)
{
    if (!j || j->read_only)
        return HUB_OK;
    pthread_mutex_lock(&j->mu);
    if (!j->dirty) {
        pthread_mutex_unlock(&j->mu);
        return HUB_OK;
    }
    /* fsync a dup outside the lock so appends go on meanwhile; the dup keeps
     * the file open even if a rotation closes active_fd. */
    int fd = fcntl(j->active_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        pthread_mutex_unlock(&j->mu);
        return HUB_EIO;
    }
    j->dirty = false;
    j->st.fsyncs++;
    pthread_mutex_unlock(&j->mu);

    int r = fdatasync(fd);
    int e = errno;
    close(fd);
    if (r < 0) {
        pthread_mutex_lock(&j->mu);
        j->dirty = true;
        pthread_mutex_unlock(&j->mu);
        hub_err(J_WHO, "%s: fdatasync: %s", j->dir, strerror(e));
        errno = e;
        return HUB_EIO;
    }
    return HUB_OK;
}

bool hub_journal_wait(hub_journal_t *j, uint64_t after, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&j->mu);
    uint64_t gen = j->wake_gen;
    while (j->next_seq <= after && j->wake_gen == gen && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&j->cond, &j->mu);
        else if (pthread_cond_timedwait(&j->cond, &j->mu, &dl) == ETIMEDOUT)
            break;
    }
    bool have = j->next_seq > after;
    pthread_mutex_unlock(&j->mu);
    return have;
}

void hub_journal_wake(hub_journal_t *j)
{
    pthread_mutex_lock(&j->mu);
    j->wake_gen++;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

void hub_journal_stats(hub_journal_t *j, struct hub_journal_stats *st)
{
    pthread_mutex_lock(&j->mu);
    *st = j->st;
    st->first_seq = j->nsegs ? j->segs[0].base : j->next_seq;
    st->next_seq = j->next_seq;
    st->segments = j->nsegs;
    st->bytes = j->total_bytes;
    pthread_mutex_unlock(&j->mu);
}

/* ---- cursors ------------------------------------------------------------- */

int hub_journal_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= HUB_JOURNAL_MAX_NAME) {
        if (err)
            snprintf(err, errlen, "\"%.80s\" must be 1 to %d characters long", name ? name : "",
                     HUB_JOURNAL_MAX_NAME - 1);
        return -1;
    }
    if (name[0] == '.') {
        if (err)
            snprintf(err, errlen, "\"%.80s\" must not start with \".\"", name);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            if (err)
                snprintf(err, errlen,
                         "\"%.80s\" may hold only letters, digits, \"_\", \".\" and \"-\" "
                         "(it names a file)",
                         name);
            return -1;
        }
    }
    return 0;
}

static bool cursor_name_ok(const char *name)
{
    return hub_journal_check_name(name, NULL, 0) == 0;
}

/* Read cursors/NAME. Returns HUB_OK, HUB_EEMPTY (no file), HUB_ECORRUPT or
 * HUB_EIO. */
static int cursor_load(hub_journal_t *j, const char *name, uint64_t *seq)
{
    char buf[J_CURSOR_FILE_MAX + 1];
    if (j->cursor_dirfd < 0)
        return HUB_EEMPTY;
    int fd = openat(j->cursor_dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? HUB_EEMPTY : HUB_EIO;
    ssize_t n = pread_full(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n < 0)
        return HUB_EIO;
    if (n >= (ssize_t)sizeof(buf))
        return HUB_ECORRUPT;
    buf[n] = 0;

    /* "SEQ\ncrc32c XXXXXXXX\n" exactly. */
    size_t i = 0;
    uint64_t v = 0;
    while (buf[i] >= '0' && buf[i] <= '9' && i < 20) {
        uint64_t d = (uint64_t)(buf[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return HUB_ECORRUPT;
        v = v * 10 + d;
        i++;
    }
    if (i == 0 || buf[i] != '\n')
        return HUB_ECORRUPT;
    size_t line = i + 1;
    if ((size_t)n != line + 16 || memcmp(buf + line, "crc32c ", 7) != 0 || buf[n - 1] != '\n')
        return HUB_ECORRUPT;
    uint32_t stored = 0;
    for (size_t k = line + 7; k < line + 15; k++) {
        char c = buf[k];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else
            return HUB_ECORRUPT;
        stored = stored << 4 | d;
    }
    if (stored != hub_crc32c(0, buf, line))
        return HUB_ECORRUPT;
    *seq = v;
    return HUB_OK;
}

/* Durably write cursors/NAME = seq: temp file, fsync, rename, fsync dir.
 * Caller holds j->cursor_mu (not j->mu). Returns HUB_OK or HUB_EIO. */
static int cursor_store(hub_journal_t *j, const char *name, uint64_t seq)
{
    char buf[J_CURSOR_FILE_MAX], tmp[HUB_JOURNAL_MAX_NAME + 8];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", seq);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "crc32c %08" PRIx32 "\n",
                  hub_crc32c(0, buf, (size_t)n));
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    int fsyncs = 0, rc = HUB_EIO;

    int fd = openat(j->cursor_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto out;
    if (pwrite_all(fd, buf, (size_t)n, 0) < 0)
        goto out;
    fsyncs++;
    if (fsync(fd) < 0)
        goto out;
    if (renameat(j->cursor_dirfd, tmp, j->cursor_dirfd, name) < 0)
        goto out;
    fsyncs++;
    if (fsync(j->cursor_dirfd) < 0)
        goto out;
    rc = HUB_OK;
out:
    if (rc != HUB_OK) {
        int e = errno;
        hub_err(J_WHO, "%s/cursors/%s: write: %s", j->dir, name, strerror(e));
        unlinkat(j->cursor_dirfd, tmp, 0);
        errno = e;
    }
    if (fd >= 0)
        close(fd);
    pthread_mutex_lock(&j->mu);
    j->st.fsyncs += (uint64_t)fsyncs;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static struct j_cursor *cursor_find(hub_journal_t *j, const char *name)
{
    for (int i = 0; i < HUB_JOURNAL_MAX_CURSORS; i++)
        if (j->cursors[i].used && strcmp(j->cursors[i].name, name) == 0)
            return &j->cursors[i];
    return NULL;
}

/* Delete segments that every registered cursor has passed. Caller holds
 * j->mu. */
static void delete_delivered(hub_journal_t *j)
{
    uint64_t m = min_cursor(j);
    if (m == UINT64_MAX)
        return;
    while (j->nsegs > 1 && j->segs[1].base <= m)
        drop_first_segment(j);
}

int hub_journal_cursor_open(hub_journal_t *j, const char *name, uint64_t *seq)
{
    if (!j || !cursor_name_ok(name))
        return HUB_EINVAL;
    uint64_t v = 0;
    int lrc = cursor_load(j, name, &v);
    uint64_t loaded = v;
    if (lrc == HUB_ECORRUPT || lrc == HUB_EIO)
        hub_warn(J_WHO,
                 "%s/cursors/%s: unreadable or corrupt cursor (%s): starting at the "
                 "oldest stored record",
                 j->dir, name, hub_strerror(lrc));

    /* cursor_mu first (the lock order of commit): a clamp is persisted below. */
    pthread_mutex_lock(&j->cursor_mu);
    pthread_mutex_lock(&j->mu);
    bool clamped = false;
    uint64_t first = j->nsegs ? j->segs[0].base : j->next_seq;
    if (lrc != HUB_OK) {
        v = first;
    } else if (v < first) {
        hub_warn(J_WHO,
                 "%s: cursor %s at %" PRIu64 " but records before %" PRIu64
                 " were dropped: starting at %" PRIu64,
                 j->dir, name, v, first, first);
        v = first;
    } else if (v > j->next_seq) {
        hub_warn(J_WHO,
                 "%s: cursor %s at %" PRIu64 " is past the journal's end %" PRIu64
                 ": starting at the end",
                 j->dir, name, v, j->next_seq);
        v = j->next_seq;
        clamped = true;
    }
    struct j_cursor *c = cursor_find(j, name);
    int rc = HUB_OK;
    if (!c) {
        for (int i = 0; i < HUB_JOURNAL_MAX_CURSORS && !c; i++)
            if (!j->cursors[i].used)
                c = &j->cursors[i];
        if (!c) {
            rc = HUB_EFULL;
            goto out;
        }
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", name);
        c->used = true;
        c->persisted = lrc == HUB_OK && v == loaded ? v : UINT64_MAX;
    }
    c->seq = v;
    *seq = v;
    pthread_mutex_unlock(&j->mu);
    /* Persist the clamp now: seqs past the end are given to new records, and
     * the stale file would make them look delivered after the next restart. */
    if (clamped && !j->read_only && cursor_store(j, name, v) == HUB_OK) {
        pthread_mutex_lock(&j->mu);
        if ((c = cursor_find(j, name)) != NULL)
            c->persisted = v;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&j->cursor_mu);
    return rc;
out:
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_unlock(&j->cursor_mu);
    return rc;
}

int hub_journal_cursor_commit(hub_journal_t *j, const char *name, uint64_t seq)
{
    if (!j || !cursor_name_ok(name) || j->read_only)
        return HUB_EINVAL;
    pthread_mutex_lock(&j->cursor_mu);
    pthread_mutex_lock(&j->mu);
    struct j_cursor *c = cursor_find(j, name);
    bool same = c && c->persisted == seq;
    bool bad = seq > j->next_seq;
    pthread_mutex_unlock(&j->mu);

    int rc = HUB_OK;
    if (bad) {
        rc = HUB_EINVAL;
        goto out;
    }
    if (!same && (rc = cursor_store(j, name, seq)) != HUB_OK)
        goto out;
    pthread_mutex_lock(&j->mu);
    c = cursor_find(j, name);
    if (c) {
        c->seq = seq;
        c->persisted = seq;
    }
    delete_delivered(j);
    pthread_mutex_unlock(&j->mu);
out:
    pthread_mutex_unlock(&j->cursor_mu);
    return rc;
}

int hub_journal_cursor_peek(hub_journal_t *j, const char *name, uint64_t *seq)
{
    if (!j || !cursor_name_ok(name))
        return HUB_EINVAL;
    return cursor_load(j, name, seq);
}

/* ---- readers ------------------------------------------------------------- */

int hub_journal_reader_new(hub_journal_t *j, uint64_t from_seq, hub_journal_reader_t **out)
{
    *out = NULL;
    if (!j)
        return HUB_EINVAL;
    hub_journal_reader_t *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return HUB_ENOMEM;
    rd->in.buf = malloc(J_IOBUF);
    if (!rd->in.buf) {
        free(rd);
        return HUB_ENOMEM;
    }
    rd->j = j;
    rd->in.fd = -1;
    rd->want = from_seq;
    *out = rd;
    return HUB_OK;
}

void hub_journal_reader_free(hub_journal_reader_t *rd)
{
    if (!rd)
        return;
    if (rd->in.fd >= 0)
        close(rd->in.fd);
    free(rd->in.buf);
    free(rd);
}

static void reader_close_seg(hub_journal_reader_t *rd)
{
    if (rd->in.fd >= 0)
        close(rd->in.fd);
    rd->in.fd = -1;
    rd->in.len = 0;
}

/* Index of the segment with base b, or -1. */
static long seg_index(const hub_journal_t *j, uint64_t b)
{
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].base == b)
            return (long)i;
    return -1;
}

int hub_journal_reader_next(hub_journal_reader_t *rd, struct hub_buf *payload, uint64_t *seq,
                            uint64_t *skipped)
{
    hub_journal_t *j = rd->j;
    char path[J_PATH_MAX];
    uint64_t gap = 0;
    int rc;

    for (;;) {
        /* Under the lock: where the reader stands and how far it may read. */
        pthread_mutex_lock(&j->mu);
        uint64_t first = j->nsegs ? j->segs[0].base : j->next_seq;
        if (rd->want < first) {
            gap += first - rd->want;
            rd->want = first;
        }
        if (rd->want >= j->next_seq || j->nsegs == 0) {
            pthread_mutex_unlock(&j->mu);
            rc = HUB_EEMPTY;
            goto out;
        }
        long i = rd->in.fd >= 0 ? seg_index(j, rd->seg_base) : -1;
        bool need_open = i < 0;
        if (need_open) {
            /* The last segment whose base is <= want. */
            i = 0;
            while ((size_t)i + 1 < j->nsegs && j->segs[i + 1].base <= rd->want)
                i++;
        }
        bool last = (size_t)i + 1 == j->nsegs;
        uint64_t base = j->segs[i].base;
        uint64_t limit = last ? j->active_size : j->segs[i].size;
        uint64_t next_base = last ? j->next_seq : j->segs[i + 1].base;
        pthread_mutex_unlock(&j->mu);

        if (need_open) {
            reader_close_seg(rd);
            seg_path(j, base, path, sizeof(path));
            rd->in.fd = open(path, O_RDONLY | O_CLOEXEC);
            if (rd->in.fd < 0) {
                if (errno != ENOENT || (last && !j->read_only)) {
                    rc = HUB_EIO;
                    goto out;
                }
                /* Deleted meanwhile. The index of a writable journal no longer
                 * lists it (looking again finds the first stored record); a
                 * read-only one, or a file removed from outside, still does:
                 * pass over its records as dropped instead of looking for it
                 * again and again. */
                pthread_mutex_lock(&j->mu);
                bool listed = seg_index(j, base) >= 0;
                pthread_mutex_unlock(&j->mu);
                if (listed && next_base > rd->want) {
                    gap += next_base - rd->want;
                    rd->want = next_base;
                }
                continue;
            }
            rd->seg_base = base;
            rd->off = HUB_JOURNAL_HEADER_SIZE;
            rd->pos_seq = base;
            uint8_t h[HUB_JOURNAL_HEADER_SIZE];
            ssize_t r = pread_full(rd->in.fd, h, sizeof(h), 0);
            if (r < 0) {
                rc = HUB_EIO;
                goto out;
            }
            if ((size_t)r < sizeof(h) || !header_ok(h, base)) {
                hub_warn(J_WHO, "%s: bad segment header: skipping the segment", path);
                rd->off = limit;
                rd->pos_seq = next_base;
                if (next_base > rd->want) {
                    gap += next_base - rd->want;
                    rd->want = next_base;
                }
                rc = HUB_ECORRUPT;
                goto out;
            }
        }
        /* A segment holds [base, next base): records past that in a sealed
         * segment are shadowed by the next segment. */
        if (rd->off >= limit || (!last && rd->pos_seq >= next_base)) {
            if (last) {
                /* Records the index promised are not in the file. */
                rc = HUB_EEMPTY;
                goto out;
            }
            /* End of a sealed segment: on to the next one. */
            if (next_base > rd->want) {
                gap += next_base - rd->want;
                rd->want = next_base;
            }
            reader_close_seg(rd);
            continue;
        }

        uint32_t len = 0;
        const char *why = NULL;
        bool passing = rd->pos_seq < rd->want; /* positioning: no copy */
        if (payload && !passing)
            hub_buf_reset(payload);
        rc = frame_read(&rd->in, rd->off, limit, rd->pos_seq, passing ? NULL : payload, &len, &why);
        if (rc == HUB_ECORRUPT) {
            seg_path(j, base, path, sizeof(path));
            hub_warn(J_WHO, "%s: bad record at byte %" PRIu64 " (%s): skipping %" PRIu64 " records",
                     path, rd->off, why, next_base > rd->want ? next_base - rd->want : 0);
            /* Skip the rest of this segment. */
            if (next_base > rd->want) {
                gap += next_base - rd->want;
                rd->want = next_base;
            }
            rd->off = limit;
            rd->pos_seq = next_base;
            if (!last)
                reader_close_seg(rd);
            goto out;
        }
        if (rc != HUB_OK)
            goto out;
        uint64_t s = rd->pos_seq;
        rd->off += HUB_JOURNAL_FRAME_SIZE + len;
        rd->pos_seq++;
        if (s < rd->want)
            continue; /* positioning: pass over records before want */
        rd->want = s + 1;
        if (seq)
            *seq = s;
        rc = HUB_OK;
        goto out;
    }
out:
    if (skipped)
        *skipped += gap;
    return rc;
}
