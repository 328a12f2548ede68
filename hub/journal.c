/* hub/journal.c — the crash-safe write-ahead journal (see hub/journal.h):
 * open (recovery: journal_recover.c), append, sync, wait, stats. The layout and the locking
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
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
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
    journal_dict_init(&j->dict, true);
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
    j->sync_each = opts->sync_each;

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
        if (mkdir(path, 0700) == 0) {
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

    if ((rc = journal_list_segments(j, err, errlen)) != HUB_OK)
        goto fail;
    if (j->nsegs == 0) {
        if (!j->read_only && (rc = start_fresh(j, err, errlen)) != HUB_OK)
            goto fail;
    } else if ((rc = journal_recover_active(j, err, errlen)) != HUB_OK) {
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
    /* A failed final sync is not trusted either: written again, as at any
     * sync (journal_redo_unsynced logs what fails). */
    if (j->active_fd >= 0 && j->dirty && !j->untrusted && journal_datasync(j->active_fd) < 0)
        journal_sync_failed(j, errno, j->dir, "final fdatasync");
    if (j->active_fd >= 0 && j->untrusted)
        journal_redo_unsynced(j);
    if (j->active_fd >= 0)
        close(j->active_fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    if (j->cursor_dirfd >= 0)
        close(j->cursor_dirfd);
    hub_cond_destroy(&j->mu, &j->cond);
    pthread_mutex_destroy(&j->cursor_mu);
    pthread_mutex_destroy(&j->log_mu);
    journal_dict_free(&j->dict);
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

/* How a payload is stored: plain, or through the active segment's series
 * dictionary (hub/journal_dict.c). */
struct rec_form {
    enum j_rec_type type;
    uint8_t hdr[J_DICT_HDR_MAX]; /* a dictionary record's id (and key_len) */
    size_t hdr_len;
    const uint8_t *data; /* the stored part of the payload */
    size_t data_len;
    uint64_t n; /* frame + hdr + data */
};

static size_t put_varint(uint8_t *p, uint32_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/* Decide the form of payload (len bytes, its key the first key_len, whose
 * hash is hash) in the active segment. Caller holds j->mu. */
static void rec_form(hub_journal_t *j, const uint8_t *payload, size_t len, size_t key_len,
                     uint32_t hash, struct rec_form *f)
{
    f->type = J_REC_PLAIN;
    f->hdr_len = 0;
    f->data = payload;
    f->data_len = len;
    if (j->dict_on && key_len > 0) {
        long id = journal_dict_find(&j->dict, payload, key_len, hash);
        if (id >= 0) {
            f->type = J_REC_REF;
            f->hdr_len = put_varint(f->hdr, (uint32_t)id);
            f->data = payload + key_len;
            f->data_len = len - key_len;
        } else if (len + J_DICT_HDR_MAX <= HUB_JOURNAL_MAX_RECORD &&
                   journal_dict_fits(&j->dict, key_len) &&
                   journal_dict_reserve(&j->dict, key_len) == HUB_OK) {
            f->type = J_REC_DEFINE;
            f->hdr_len = put_varint(f->hdr, j->dict.n);
            f->hdr_len += put_varint(f->hdr + f->hdr_len, (uint32_t)key_len);
        }
        /* else plain: the dictionary is at its bound (or out of memory) */
    }
    f->n = HUB_JOURNAL_FRAME_SIZE + f->hdr_len + f->data_len;
}

/* Write the framed record (fh, then f's bytes, f->n in all) at the
 * committed end of the active segment. Caller holds j->mu. Returns HUB_OK,
 * J_EDISKFULL or HUB_EIO; a failed write leaves nothing of the record. */
static int write_record(hub_journal_t *j, const uint8_t *fh, const struct rec_form *f)
{
    char path[J_PATH_MAX];
    struct iovec iov[3] = {{(void *)(uintptr_t)fh, HUB_JOURNAL_FRAME_SIZE},
                           {(void *)(uintptr_t)f->hdr, f->hdr_len},
                           {(void *)(uintptr_t)f->data, f->data_len}};
    uint64_t n = f->n;
    ssize_t w;
    int e = 0;
    journal_seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
#ifdef CITYHUB_TEST_HOOKS
    if (journal_test_crash_due("append"))
        journal_test_crash(j->active_fd, j->active_size, fh, HUB_JOURNAL_FRAME_SIZE, f->data,
                           f->data_len);
#endif
    if (hub_journal_fault_hook && (e = hub_journal_fault_hook(path, (size_t)n)) != 0) {
        w = -1;
    } else {
        do {
            w = pwritev(j->active_fd, iov, 3, (off_t)j->active_size);
        } while (w < 0 && errno == EINTR);
        e = w < 0 ? errno : ENOSPC; /* a short write: the file system filled up */
    }
    if (w == (ssize_t)n)
        return HUB_OK;
    journal_log(j, J_LIM_WRITE, HUB_LOG_ERROR, "%s: append at byte %" PRIu64 ": %s", path,
                j->active_size, w < 0 ? strerror(e) : "short write (No space left on device)");
    /* Never leave half a record: cut back to the record's start. */
    if (w != 0 && journal_io_ftruncate(j->active_fd, j->active_size) < 0)
        j->tail_junk = true;
    errno = e;
    return journal_is_disk_full(e) ? J_EDISKFULL : HUB_EIO;
}

int hub_journal_append(hub_journal_t *j, const void *payload, size_t len, uint64_t *seq)
{
    return hub_journal_append_keyed(j, payload, len, 0, seq);
}

int hub_journal_append_keyed(hub_journal_t *j, const void *payload, size_t len, size_t key_len,
                             uint64_t *seq)
{
    if (!j || !payload || len == 0 || len > HUB_JOURNAL_MAX_RECORD || key_len > len)
        return HUB_EINVAL;
    if (j->read_only)
        return HUB_EINVAL;

    uint8_t fh[HUB_JOURNAL_FRAME_SIZE];
    uint32_t hash = key_len ? journal_dict_hash(payload, key_len) : 0; /* outside the lock */
    struct rec_form f;
    int rc;

    pthread_mutex_lock(&j->mu);
    /* Room is made for the form the record has in the active segment now;
     * a rotation on the way empties the dictionary (a REF becomes a
     * DEFINE), and then room is made again for the larger record. */
    rec_form(j, payload, len, key_len, hash, &f);
    uint64_t n = f.n;
    for (;;) {
        if (j->tail_junk) {
            if (journal_io_ftruncate(j->active_fd, j->active_size) < 0) {
                rc = HUB_EIO;
                goto out;
            }
            j->tail_junk = false;
        }
        rc = journal_make_room(j, n);
        if (rc == HUB_OK)
            rc = journal_seg_ready(j);
        if (rc == HUB_OK) {
            rec_form(j, payload, len, key_len, hash, &f);
            if (f.n > n) {
                n = f.n;
                continue;
            }
            uint64_t s = j->next_seq;
            uint32_t field = (uint32_t)(f.hdr_len + f.data_len) | (uint32_t)f.type << J_TYPE_SHIFT;
            journal_put_le32(fh + 4, field);
            journal_put_le64(fh + 8, s);
            uint32_t crc = hub_crc32c(0, fh + 4, 12);
            crc = hub_crc32c(crc, f.hdr, f.hdr_len);
            crc = hub_crc32c(crc, f.data, f.data_len);
            journal_put_le32(fh, hub_crc32c_mask(crc));
            rc = write_record(j, fh, &f);
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
    if (f.type == J_REC_DEFINE) /* room reserved by rec_form */
        journal_dict_add(&j->dict, payload, key_len, hash);
    n = f.n;
    uint64_t s = j->next_seq;
    j->active_size += n;
    j->total_bytes += n;
    j->next_seq = s + 1;
    j->dirty = true;
    j->st.appends++;
    j->st.append_bytes += n;
    if (j->sync_each) {
        /* durable before it is accepted; a failed fsync is handled as in
         * hub_journal_sync (written again; if that fails too, the record
         * stays accepted in the page cache and the next append tries again) */
        j->st.fsyncs++;
        if (j->untrusted || journal_datasync(j->active_fd) < 0) {
            if (!j->untrusted)
                journal_sync_failed(j, errno, j->dir, "fdatasync");
            journal_redo_unsynced(j);
        } else {
            j->dirty = false;
            j->synced_size = j->active_size;
            j->synced_seq = j->next_seq;
        }
    }
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
    if (j->untrusted) { /* an earlier fsync failed: never trust a later one */
        int rc = journal_redo_unsynced(j);
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
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
    uint64_t base = j->segs[j->nsegs - 1].base, size = j->active_size, next = j->next_seq;
    j->dirty = false;
    j->st.fsyncs++;
    pthread_mutex_unlock(&j->mu);

    int r = journal_datasync(fd);
    int e = errno;
    close(fd);
    pthread_mutex_lock(&j->mu);
    int rc = HUB_OK;
    if (r < 0) {
        j->dirty = true;
        journal_sync_failed(j, e, j->dir, "fdatasync");
        rc = journal_redo_unsynced(j);
    } else if (j->nsegs && j->segs[j->nsegs - 1].base == base && size > j->synced_size) {
        j->synced_size = size;
        j->synced_seq = next;
    }
    pthread_mutex_unlock(&j->mu);
    errno = e;
    return rc;
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
