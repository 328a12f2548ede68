/* hub/journal.c — the crash-safe write-ahead journal (see hub/journal.h):
 * open and recovery, append, sync, wait, stats. The layout and the locking
 * are described in hub/journal_priv.h.
 *
 * Durability: appends never fsync. hub_journal_sync() fdatasyncs a dup of the
 * active fd outside the mutex (group commit). Rotation (journal_space.c)
 * fsyncs the full segment before the next one is created. Cursors
 * (journal_cursor.c) are written to a temp file, fsynced, renamed and the
 * directory fsynced (PostgreSQL's durable_rename).
 *
 * A full file system (ENOSPC, EDQUOT) while appending, rotating or creating
 * a segment is answered like a full journal: journal_free_space() applies
 * on_full and the append is tried again, or refused with HUB_EFULL. */
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
#include <unistd.h>

#include "hub/clock.h"
#include "hub/crc32c.h"
#include "hub/journal_priv.h"
#include "hub/log.h"

/* ---- open and recovery --------------------------------------------------- */

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
    if (fd < 0 || journal_fsync(j, fd) < 0)
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

static int seg_cmp(const void *a, const void *b)
{
    const struct j_seg *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* Recover the newest segment: check (or rewrite) its header, scan its frames
 * and cut the file at the first bad one. Sets active_fd, active_size,
 * next_seq. A header that cannot be written because the file system is full
 * is left for the first append (journal_seg_ready). Returns HUB_OK or an
 * error described in err. */
static int recover_active(hub_journal_t *j, char *err, size_t errlen)
{
    struct j_seg *s = &j->segs[j->nsegs - 1];
    char path[J_PATH_MAX];
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    struct j_in in = {.fd = -1};
    int rc = HUB_EIO;

    journal_seg_path(j, s->base, path, sizeof(path));
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
    ssize_t r = journal_pread_full(in.fd, h, sizeof(h), 0);
    if (r < 0) {
        snprintf(err, errlen, "%s: read header: %s", path, strerror(errno));
        goto out;
    }
    if ((size_t)r < sizeof(h) || !journal_header_ok(h, s->base)) {
        if (j->read_only) {
            /* Nothing can be read from it; report it as empty. An empty file
             * is a segment just created (its header follows with its first
             * record). */
            if (size == 0)
                hub_debug(J_WHO, "%s: empty segment, no header yet", path);
            else
                hub_warn(J_WHO, "%s: bad segment header (%zd bytes), read-only: treated as empty",
                         path, r);
            s->size = size;
            j->active_size = size;
            j->next_seq = s->base;
            rc = HUB_OK;
            goto out;
        }
        hub_warn(J_WHO, "%s: torn or bad segment header (%" PRIu64 " bytes), rewriting it", path,
                 size);
        bool torn = size < HUB_JOURNAL_HEADER_SIZE;
        if (torn) {
            j->st.recovered_cut += size;
            size = HUB_JOURNAL_HEADER_SIZE;
        }
        journal_make_header(h, s->base);
        if (journal_pwrite_all(in.fd, path, h, sizeof(h), 0) < 0 || journal_fsync(j, in.fd) < 0) {
            int e = errno;
            if (torn && journal_is_disk_full(e) && ftruncate(in.fd, 0) == 0) {
                /* No record in it: the first append writes the header. */
                hub_warn(J_WHO, "%s: rewrite header: %s: left for the first reading that fits",
                         path, strerror(e));
                s->size = 0;
                j->active_size = 0;
                j->next_seq = s->base;
                j->active_fd = in.fd;
                in.fd = -1;
                rc = HUB_OK;
                goto out;
            }
            snprintf(err, errlen, "%s: rewrite header: %s", path, strerror(e));
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
        rc = journal_frame_read(&in, off, size, seq, NULL, &len, &why);
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
            if (ftruncate(in.fd, (off_t)off) < 0 || journal_fsync(j, in.fd) < 0) {
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
        if ((rc = journal_segs_push(j, base, size)) != HUB_OK) {
            snprintf(err, errlen, "%s: out of memory", j->dir);
            break;
        }
    }
    closedir(d);
    if (j->nsegs > 1)
        qsort(j->segs, j->nsegs, sizeof(*j->segs), seg_cmp);
    return rc;
}

/* A fresh journal: segment 0, created now or, when the file system is full,
 * by the first append that finds space. */
static int start_fresh(hub_journal_t *j, char *err, size_t errlen)
{
    if (journal_segs_push(j, 0, 0) != HUB_OK) {
        snprintf(err, errlen, "%s: out of memory", j->dir);
        return HUB_ENOMEM;
    }
    j->active_size = 0;
    int rc = journal_seg_ready(j);
    if (rc == J_EDISKFULL) {
        hub_warn(J_WHO,
                 "%s: file system full (%s): the first segment is created when space comes back",
                 j->dir, strerror(errno));
        return HUB_OK;
    }
    if (rc != HUB_OK) {
        char path[J_PATH_MAX];
        journal_seg_path(j, 0, path, sizeof(path));
        snprintf(err, errlen, "%s: create: %s", path, strerror(errno));
        return HUB_EIO;
    }
    return HUB_OK;
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
    if (!j || hub_cond_init(&j->mu, &j->cond) != 0) {
        snprintf(err, errlen, "%s: out of memory", opts->dir);
        free(j);
        return HUB_ENOMEM;
    }
    j->dirfd = j->cursor_dirfd = j->active_fd = -1;
    pthread_mutex_init(&j->cursor_mu, NULL);
    pthread_mutex_init(&j->log_mu, NULL);

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
            journal_fsync(j, j->dirfd); /* make the new entry durable */
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
        if (!j->read_only && (rc = start_fresh(j, err, errlen)) != HUB_OK)
            goto fail;
    } else if ((rc = recover_active(j, err, errlen)) != HUB_OK) {
        goto fail;
    }
    for (size_t i = 0; i < j->nsegs; i++)
        j->total_bytes += j->segs[i].size;
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
        if (j->dirty && journal_io_sync(j->active_fd, true) < 0)
            hub_err(J_WHO, "%s: final sync: %s", j->dir ? j->dir : "?", strerror(errno));
        close(j->active_fd);
    }
    if (j->dirfd >= 0)
        close(j->dirfd);
    if (j->cursor_dirfd >= 0)
        close(j->cursor_dirfd);
    hub_cond_destroy(&j->mu, &j->cond);
    pthread_mutex_destroy(&j->cursor_mu);
    pthread_mutex_destroy(&j->log_mu);
    free(j->segs);
    free(j->dir);
    free(j);
}

#ifdef CITYHUB_TEST_HOOKS
void hub_journal_abandon(hub_journal_t *j)
{
    if (j)
        j->dirty = false;
    hub_journal_close(j);
}
#endif

/* ---- appending ----------------------------------------------------------- */

/* Write the framed record (fh + payload, n bytes) at the committed end of
 * the active segment. Caller holds j->mu. Returns HUB_OK, J_EDISKFULL or
 * HUB_EIO; a failed write leaves nothing of the record. */
static int write_record(hub_journal_t *j, const uint8_t *fh, const void *payload, size_t len,
                        uint64_t n)
{
    char path[J_PATH_MAX];
    struct iovec iov[2] = {{(void *)(uintptr_t)fh, HUB_JOURNAL_FRAME_SIZE},
                           {(void *)(uintptr_t)payload, len}};
    ssize_t w;
    int e = 0;
    journal_seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
#ifdef CITYHUB_TEST_HOOKS
    if (journal_test_crash_due("append"))
        journal_test_crash(j->active_fd, j->active_size, fh, HUB_JOURNAL_FRAME_SIZE, payload, len);
#endif
    if (hub_journal_fault_hook && (e = hub_journal_fault_hook(path, (size_t)n)) != 0) {
        w = -1;
    } else {
        do {
            w = pwritev(j->active_fd, iov, 2, (off_t)j->active_size);
        } while (w < 0 && errno == EINTR);
        e = w < 0 ? errno : ENOSPC; /* a short write: the file system filled up */
    }
    if (w == (ssize_t)n)
        return HUB_OK;
    journal_log(j, J_LIM_WRITE, HUB_LOG_ERROR, "%s: append at byte %" PRIu64 ": %s", path,
                j->active_size, w < 0 ? strerror(e) : "short write (No space left on device)");
    /* Never leave half a record: cut back to the record's start. */
    if (w != 0 && ftruncate(j->active_fd, (off_t)j->active_size) < 0)
        j->tail_junk = true;
    errno = e;
    return journal_is_disk_full(e) ? J_EDISKFULL : HUB_EIO;
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
    for (;;) {
        if (j->tail_junk) {
            if (ftruncate(j->active_fd, (off_t)j->active_size) < 0) {
                rc = HUB_EIO;
                goto out;
            }
            j->tail_junk = false;
        }
        rc = journal_make_room(j, n);
        if (rc == HUB_OK)
            rc = journal_seg_ready(j);
        if (rc == HUB_OK) {
            uint64_t s = j->next_seq;
            journal_put_le32(fh + 4, (uint32_t)len);
            journal_put_le64(fh + 8, s);
            uint32_t crc = hub_crc32c(0, fh + 4, 12);
            crc = hub_crc32c(crc, payload, len);
            journal_put_le32(fh, hub_crc32c_mask(crc));
            rc = write_record(j, fh, payload, len, n);
        }
        if (rc != J_EDISKFULL)
            break;
        /* The file system is full: as a full journal, by on_full. */
        if ((rc = journal_free_space(j)) != HUB_OK) {
            j->st.disk_full++;
            journal_log(j, J_LIM_FULL, HUB_LOG_ERROR,
                        "%s: file system full and nothing more to free (on_full: %s): readings "
                        "refused until space comes back (%" PRIu64 " refused since start)",
                        j->dir,
                        j->on_full == HUB_JOURNAL_DROP_NEWEST ? "drop_newest" : "drop_oldest",
                        j->st.disk_full);
            goto out;
        }
    }
    if (rc != HUB_OK)
        goto out;
    uint64_t s = j->next_seq;
    j->active_size += n;
    j->total_bytes += n;
    j->next_seq = s + 1;
    j->dirty = true;
    j->st.appends++;
    j->st.append_bytes += n;
    if (seq)
        *seq = s;
    if (j->next_seq > j->wake_at) { /* a waiter wants this one: not every append wakes */
        j->wake_at = UINT64_MAX;
        pthread_cond_broadcast(&j->cond);
    }
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

    int r = journal_io_sync(fd, true);
    int e = errno;
    close(fd);
    if (r < 0) {
        pthread_mutex_lock(&j->mu);
        j->dirty = true;
        pthread_mutex_unlock(&j->mu);
        journal_log(j, J_LIM_SYNC, HUB_LOG_ERROR, "%s: fdatasync: %s", j->dir, strerror(e));
        errno = e;
        return HUB_EIO;
    }
    return HUB_OK;
}

bool hub_journal_wait(hub_journal_t *j, uint64_t after, int timeout_ms)
{
    int64_t deadline = hub_mono_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * HUB_NS_PER_MS;
    pthread_mutex_lock(&j->mu);
    uint64_t gen = j->wake_gen, del = j->del_gen;
    while (j->next_seq <= after && j->wake_gen == gen && j->del_gen == del && timeout_ms != 0) {
        if (after < j->wake_at)
            j->wake_at = after; /* the earliest any waiter needs */
        if (timeout_ms < 0)
            pthread_cond_wait(&j->cond, &j->mu);
        else if (hub_cond_wait_until(&j->cond, &j->mu, deadline) == ETIMEDOUT)
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
