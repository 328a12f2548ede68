/* hub/journal_space.c — rotation, deleting segments, and the two ways a
 * journal fills up: max_size (make_room) and a full file system
 * (free_space). See hub/journal_priv.h.
 *
 * Rotation fsyncs the full segment (it is then "sealed"), creates the next
 * one and fsyncs the directory; the new segment's header is written just
 * before the first record goes into it (journal_seg_ready), so that a full
 * file system never leaves the journal without an active segment: a segment
 * without its header is what a crash right after its creation leaves too,
 * and recovery writes the header. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/journal_priv.h"

uint64_t journal_min_cursor(const hub_journal_t *j)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < HUB_JOURNAL_MAX_CURSORS; i++)
        if (j->cursors[i].used && j->cursors[i].seq < m)
            m = j->cursors[i].seq;
    return m;
}

uint64_t journal_drop_first(hub_journal_t *j)
{
    char path[J_PATH_MAX];
    struct j_seg *s = &j->segs[0];
    uint64_t end = j->segs[1].base;
    uint64_t m = journal_min_cursor(j);
    uint64_t from = m == UINT64_MAX ? s->base : (m > s->base ? m : s->base);
    uint64_t undelivered = end > from ? end - from : 0;

    journal_seg_path(j, s->base, path, sizeof(path));
    if (journal_io_unlink(path) < 0 && errno != ENOENT)
        journal_log(j, J_LIM_DELETE, HUB_LOG_ERROR, "%s: delete: %s", path, strerror(errno));
    j->total_bytes -= s->size;
    memmove(&j->segs[0], &j->segs[1], (j->nsegs - 1) * sizeof(*j->segs));
    j->nsegs--;
    /* A reader with the file open keeps its space taken: let waiting readers
     * look again (and close it). */
    j->del_gen++;
    pthread_cond_broadcast(&j->cond);
    return undelivered;
}

size_t journal_delete_delivered(hub_journal_t *j)
{
    uint64_t m = journal_min_cursor(j);
    size_t n = 0;
    if (m == UINT64_MAX)
        return 0;
    while (j->nsegs > 1 && j->segs[1].base <= m) {
        journal_drop_first(j);
        n++;
    }
    return n;
}

/* Does the active segment hold records? */
static bool active_has_records(const hub_journal_t *j)
{
    return j->segs[j->nsegs - 1].base < j->next_seq;
}

/* Create the (empty) file of segment base and fsync the directory. Returns
 * the fd (O_RDWR) or -1 with errno (logged). Caller holds j->mu. */
static int seg_file_create(hub_journal_t *j, uint64_t base)
{
    char path[J_PATH_MAX];
    journal_seg_path(j, base, path, sizeof(path));
    int fd = journal_io_open(AT_FDCWD, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && journal_fsync(j, j->dirfd) < 0) {
        int e = errno;
        close(fd);
        journal_io_unlink(path);
        errno = e;
        fd = -1;
    }
    if (fd < 0)
        journal_log(j, J_LIM_CREATE, HUB_LOG_ERROR, "%s: create: %s", path, strerror(errno));
    return fd;
}

static int io_fail(int e)
{
    errno = e;
    return journal_is_disk_full(e) ? J_EDISKFULL : HUB_EIO;
}

int journal_seg_ready(hub_journal_t *j)
{
    if (j->active_fd >= 0 && j->active_size >= HUB_JOURNAL_HEADER_SIZE)
        return HUB_OK;
    uint64_t base = j->segs[j->nsegs - 1].base;
    if (j->active_fd < 0) {
        int fd = seg_file_create(j, base);
        if (fd < 0)
            return io_fail(errno);
        j->active_fd = fd;
    }
    char path[J_PATH_MAX];
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    journal_seg_path(j, base, path, sizeof(path));
    journal_make_header(h, base);
    if (journal_pwrite_all(j->active_fd, path, h, sizeof(h), 0) < 0 ||
        journal_fsync(j, j->active_fd) < 0) {
        int e = errno;
        journal_log(j, J_LIM_CREATE, HUB_LOG_ERROR, "%s: create: write header: %s", path,
                    strerror(e));
        if (journal_io_ftruncate(j->active_fd, 0) < 0) /* no half header left behind */
            j->tail_junk = true;
        return io_fail(e);
    }
    j->total_bytes += HUB_JOURNAL_HEADER_SIZE - j->active_size;
    j->active_size = HUB_JOURNAL_HEADER_SIZE;
    /* A new segment: its series dictionary starts empty. */
    journal_dict_reset(&j->dict);
    j->dict_on = true;
    j->synced_size = HUB_JOURNAL_HEADER_SIZE;
    j->synced_seq = base;
    j->tail_junk = false;
    return HUB_OK;
}

/* Seal the active segment (fsync) and make a new, empty one at next_seq the
 * active one (its header follows in journal_seg_ready). Caller holds j->mu.
 * Returns HUB_OK, J_EDISKFULL or HUB_EIO (the old segment stays active).
 * After a failed fsync the records are written again first; when some of
 * them are lost that already begins the new segment (HUB_OK). */
static int rotate(hub_journal_t *j)
{
    char path[J_PATH_MAX];
    if (j->untrusted && journal_redo_unsynced(j) != HUB_OK)
        return HUB_EIO;
    if (!active_has_records(j))
        return HUB_OK; /* the redo lost records and began a new segment: nothing to seal */
    if (journal_fsync(j, j->active_fd) < 0) {
        int e = errno;
        journal_seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
        journal_sync_failed(j, e, path, "fsync before rotation");
        return io_fail(e); /* the next try writes the unsynced records again */
    }
    j->dirty = false;
    /* Grow first so nothing can fail after the new file exists. */
    if (journal_segs_reserve(j) != HUB_OK)
        return HUB_EIO;
    int fd = seg_file_create(j, j->next_seq);
    if (fd < 0)
        return io_fail(errno);
#ifdef CITYHUB_TEST_HOOKS
    if (journal_test_crash_due("rotate")) { /* sealed, next created: half its header */
        uint8_t h[HUB_JOURNAL_HEADER_SIZE];
        journal_make_header(h, j->next_seq);
        journal_test_crash(fd, 0, h, sizeof(h), NULL, 0);
    }
#endif
    close(j->active_fd);
    j->active_fd = fd;
    j->segs[j->nsegs - 1].size = j->active_size;
    journal_segs_push(j, j->next_seq, 0);
    j->active_size = 0;
    j->synced_size = 0;
    j->synced_seq = j->next_seq;
    j->tail_junk = false;
    return HUB_OK;
}

/* Copy the records of [from, to) of the file in_fd (seqs from seq) that
 * still check into out_fd after a header for base; lost gets those that do
 * not. Returns the bytes written, or 0 with errno on a failed write. */
static uint64_t copy_checked(hub_journal_t *j, int in_fd, uint64_t from, uint64_t to, uint64_t seq,
                             int out_fd, const char *out_path, uint64_t base, uint64_t *lost)
{
    struct j_in in = {.fd = in_fd, .buf = malloc(J_IOBUF)};
    /* The records are written whole (plain), their series keys taken from
     * the segment's dictionary, rebuilt from its header: a REF copied as it
     * is could lose its DEFINE, which may lie before from. */
    struct j_dict dict;
    struct j_dict *d = j->dict_on ? &dict : NULL;
    journal_dict_init(&dict, false);
    if (d && in.buf) {
        uint64_t o = HUB_JOURNAL_HEADER_SIZE, s = j->segs[j->nsegs - 1].base;
        uint32_t l;
        const char *w;
        while (o < from && journal_record_read(&in, d, o, from, s, NULL, &l, &w) == HUB_OK) {
            o += HUB_JOURNAL_FRAME_SIZE + l;
            s++;
        }
    }
    struct hub_buf rec;
    uint8_t fh[HUB_JOURNAL_FRAME_SIZE], h[HUB_JOURNAL_HEADER_SIZE];
    uint64_t w = HUB_JOURNAL_HEADER_SIZE, off = from;
    hub_buf_init(&rec, HUB_JOURNAL_MAX_RECORD);
    journal_make_header(h, base);
    if (!in.buf || journal_pwrite_all(out_fd, out_path, h, sizeof(h), 0) < 0) {
        w = 0;
        goto out;
    }
    while (off < to && seq < j->next_seq) {
        uint32_t len = 0;
        const char *why = NULL;
        hub_buf_reset(&rec);
        int rc = journal_record_read(&in, d, off, to, seq, &rec, &len, &why);
        if (rc == HUB_OK) {
            journal_frame_header(fh, seq, rec.data, (uint32_t)rec.len);
            if (journal_pwrite_all(out_fd, out_path, fh, sizeof(fh), w) < 0 ||
                journal_pwrite_all(out_fd, out_path, rec.data, rec.len, w + sizeof(fh)) < 0) {
                w = 0;
                goto out;
            }
            w += sizeof(fh) + rec.len;
            off += sizeof(fh) + len;
            seq++;
            continue;
        }
        *lost = j->next_seq - seq; /* this one and the rest: see journal_redo_unsynced */
        break;
    }
out:
    journal_dict_free(&dict);
    hub_buf_free(&rec);
    free(in.buf);
    return w;
}

void journal_sync_failed(hub_journal_t *j, int e, const char *where, const char *what)
{
    j->st.sync_failed++;
    j->untrusted = true;
    journal_log(j, J_LIM_SYNC, HUB_LOG_ERROR,
                "%s: %s: %s: writing the records since the last good sync again", where, what,
                strerror(e));
}

int journal_redo_unsynced(hub_journal_t *j)
{
    char path[J_PATH_MAX], npath[J_PATH_MAX + 8];
    struct j_seg *a = &j->segs[j->nsegs - 1];
    uint64_t base = a->base, from = j->synced_size, to = j->active_size;
    if (from < HUB_JOURNAL_HEADER_SIZE)
        from = HUB_JOURNAL_HEADER_SIZE;
    /* Nothing of the segment's records known durable: replace its file;
     * else a new segment from the first record not known durable. */
    bool replace = j->synced_seq <= base;
    uint64_t nbase = replace ? base : j->synced_seq;
    journal_seg_path(j, base, path, sizeof(path));
    if (replace)
        snprintf(npath, sizeof(npath), "%s.redo", path);
    else
        journal_seg_path(j, nbase, npath, sizeof(npath));
    if (!replace && journal_segs_reserve(j) != HUB_OK)
        return HUB_EIO;
    a = &j->segs[j->nsegs - 1];

    uint64_t lost = 0, n = 0;
    /* a new descriptor: what the kernel has now */
    int rfd = journal_io_open(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    int wfd = rfd < 0
                  ? -1
                  : journal_io_open(AT_FDCWD, npath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (wfd >= 0)
        n = copy_checked(j, rfd, from, to, j->synced_seq, wfd, npath, nbase, &lost);
    if (n == 0 || journal_fsync(j, wfd) < 0 ||
        (replace && journal_io_renameat(j->dirfd, npath + strlen(j->dir) + 1,
                                        path + strlen(j->dir) + 1) < 0) ||
        journal_fsync(j, j->dirfd) < 0) {
        journal_log(j, J_LIM_SYNC, HUB_LOG_ERROR,
                    "%s: writing the records not known durable again: %s (tried again at the "
                    "next sync)",
                    npath, strerror(errno));
        if (wfd >= 0) {
            close(wfd);
            journal_io_unlink(npath);
        }
        if (rfd >= 0)
            close(rfd);
        return HUB_EIO;
    }
    close(rfd);
    close(j->active_fd);
    j->active_fd = wfd;
    if (replace) {
        j->total_bytes = j->total_bytes - to + n;
    } else {
        a->size = to; /* sealed: its records from nbase on are shadowed */
        journal_segs_push(j, nbase, 0);
        j->total_bytes += n;
    }
    j->active_size = n;
    j->synced_size = n;
    j->synced_seq = j->next_seq;
    if (lost) {
        /* the records kept end before next_seq: seal them, and let the next
         * append begin a segment at next_seq (reserved above or now) */
        if (journal_segs_reserve(j) == HUB_OK) {
            j->segs[j->nsegs - 1].size = n;
            journal_segs_push(j, j->next_seq, 0);
            close(j->active_fd);
            j->active_fd = -1;
            j->active_size = 0;
            j->synced_size = 0;
        }
    }
    /* The new file holds whole records under a header of J_VERSION: its
     * dictionary starts empty. */
    journal_dict_reset(&j->dict);
    j->dict_on = true;
    j->untrusted = false;
    j->dirty = false;
    j->tail_junk = false;
    j->st.sync_lost += lost;
    if (lost)
        hub_err(J_WHO,
                "%s: after a failed fsync, %" PRIu64
                " records no longer read back right: lost (%" PRIu64 " lost so far)",
                path, lost, j->st.sync_lost);
    hub_warn(J_WHO,
             "%s: after a failed fsync, the records from seq %" PRIu64
             " were written again into %s and synced",
             path, j->synced_seq > lost ? nbase : nbase, npath);
    return HUB_OK;
}

int journal_make_room(hub_journal_t *j, uint64_t n)
{
    for (;;) {
        bool has_records = active_has_records(j);
        bool want_rotate = has_records && j->active_size + n > j->segment_size;
        uint64_t need = n;
        if (want_rotate || j->active_size < HUB_JOURNAL_HEADER_SIZE)
            need += HUB_JOURNAL_HEADER_SIZE;
        if (j->total_bytes + need <= j->max_size)
            return want_rotate ? rotate(j) : HUB_OK;
        if (j->on_full == HUB_JOURNAL_DROP_NEWEST)
            return HUB_EFULL;
        if (j->nsegs > 1) {
            uint64_t lost = journal_drop_first(j);
            j->st.dropped += lost;
            if (lost)
                journal_log(j, J_LIM_DROP, HUB_LOG_WARN,
                            "%s: journal full (max %" PRIu64 " bytes): dropped %" PRIu64
                            " undelivered records, oldest now %" PRIu64 " (%" PRIu64
                            " dropped since start)",
                            j->dir, j->max_size, lost, j->segs[0].base, j->st.dropped);
        } else if (has_records) {
            int rc = rotate(j); /* so that the records become droppable */
            if (rc != HUB_OK)
                return rc;
        } else {
            return HUB_EFULL; /* one record larger than the whole journal */
        }
    }
}

int journal_free_space(hub_journal_t *j)
{
    /* What every cursor has passed goes first, and costs nothing. */
    if (journal_delete_delivered(j) > 0)
        return HUB_OK;
    uint64_t m = journal_min_cursor(j);
    bool has_records = active_has_records(j);
    if (has_records && m != UINT64_MAX && m >= j->next_seq && rotate(j) == HUB_OK &&
        journal_delete_delivered(j) > 0)
        return HUB_OK; /* the active segment was all delivered: replaced */
    if (j->on_full == HUB_JOURNAL_DROP_NEWEST)
        return HUB_EFULL;
    if (j->nsegs == 1 && (!has_records || rotate(j) != HUB_OK))
        return HUB_EFULL; /* nothing stored, or no new segment possible */
    uint64_t lost = journal_drop_first(j);
    j->st.dropped += lost;
    journal_log(j, J_LIM_FULL, HUB_LOG_WARN,
                "%s: file system full: dropped %" PRIu64 " undelivered records, oldest now %" PRIu64
                " (%" PRIu64 " dropped since start)",
                j->dir, lost, j->segs[0].base, j->st.dropped);
    return HUB_OK;
}
