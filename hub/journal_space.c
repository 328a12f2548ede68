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
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && journal_fsync(j, j->dirfd) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
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
        if (ftruncate(j->active_fd, 0) < 0) /* no half header left behind */
            j->tail_junk = true;
        return io_fail(e);
    }
    j->total_bytes += HUB_JOURNAL_HEADER_SIZE - j->active_size;
    j->active_size = HUB_JOURNAL_HEADER_SIZE;
    j->tail_junk = false;
    return HUB_OK;
}

/* Seal the active segment (fsync) and make a new, empty one at next_seq the
 * active one (its header follows in journal_seg_ready). Caller holds j->mu.
 * Returns HUB_OK, J_EDISKFULL or HUB_EIO (the old segment stays active). */
static int rotate(hub_journal_t *j)
{
    char path[J_PATH_MAX];
    if (journal_fsync(j, j->active_fd) < 0) {
        int e = errno;
        journal_seg_path(j, j->segs[j->nsegs - 1].base, path, sizeof(path));
        journal_log(j, J_LIM_SYNC, HUB_LOG_ERROR, "%s: fsync before rotation: %s", path,
                    strerror(e));
        return io_fail(e);
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
    j->tail_junk = false;
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
