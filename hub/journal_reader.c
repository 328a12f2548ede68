/* hub/journal_reader.c — readers walk records from a seq onwards, across
 * segments (hub/journal.h). A reader preads its own fd outside the journal's
 * mutex, up to the committed end it saw under it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "hub/journal_priv.h"

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
    journal_dict_init(&rd->dict, false);
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
    journal_dict_free(&rd->dict);
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

/* Move the reader on to seq `to` if it stands before it, adding the records
 * it passes over (dropped, deleted or corrupt) to *gap. Returns how many. */
static uint64_t pass_to(hub_journal_reader_t *rd, uint64_t to, uint64_t *gap)
{
    if (to <= rd->want)
        return 0;
    uint64_t n = to - rd->want;
    *gap += n;
    rd->want = to;
    return n;
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
        pass_to(rd, j->nsegs ? j->segs[0].base : j->next_seq, &gap);
        long i = rd->in.fd >= 0 ? seg_index(j, rd->seg_base) : -1;
        bool need_open = i < 0;
        if (rd->want >= j->next_seq || j->nsegs == 0) {
            pthread_mutex_unlock(&j->mu);
            /* Caught up. If its segment was deleted, let go of the file now:
             * while it is open, its space stays taken. */
            if (need_open)
                reader_close_seg(rd);
            rc = HUB_EEMPTY;
            goto out;
        }
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
            journal_seg_path(j, base, path, sizeof(path));
            rd->in.fd = journal_io_open(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
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
                if (listed) {
                    uint64_t n = pass_to(rd, next_base, &gap);
                    if (n)
                        hub_warn(J_WHO, "%s: segment file gone: %" PRIu64 " records missing", path,
                                 n);
                }
                continue;
            }
            rd->seg_base = base;
            rd->off = HUB_JOURNAL_HEADER_SIZE;
            rd->pos_seq = base;
            uint8_t h[HUB_JOURNAL_HEADER_SIZE];
            ssize_t r = journal_pread_full(rd->in.fd, h, sizeof(h), 0);
            if (r < 0) {
                rc = HUB_EIO;
                goto out;
            }
            unsigned version = (size_t)r < sizeof(h) ? 0 : journal_header_version(h, base);
            /* The segment's dictionary is rebuilt from its header on: a
             * reader that starts in the middle passes over the records
             * before its start below, taking in their DEFINEs. */
            journal_dict_reset(&rd->dict);
            rd->dict_on = version == J_VERSION;
            if (version == 0) {
                hub_warn(J_WHO, "%s: bad segment header: skipping the segment", path);
                rd->off = limit;
                rd->pos_seq = next_base;
                pass_to(rd, next_base, &gap);
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
            /* End of a sealed segment: on to the next one. Records between
             * its last and the next one's first are missing: a segment
             * file deleted or cut from outside. */
            uint64_t missing_from = rd->pos_seq;
            uint64_t n = pass_to(rd, next_base, &gap);
            if (n && missing_from < next_base) {
                journal_seg_path(j, base, path, sizeof(path));
                hub_warn(J_WHO,
                         "%s: ends at seq %" PRIu64 ", the next segment starts at %" PRIu64
                         ": %" PRIu64 " records missing (a segment file deleted or truncated?)",
                         path, missing_from, next_base, n);
            }
            reader_close_seg(rd);
            continue;
        }

        uint32_t len = 0;
        const char *why = NULL;
        bool passing = rd->pos_seq < rd->want; /* positioning: no copy */
        if (payload && !passing)
            hub_buf_reset(payload);
        rc = journal_record_read(&rd->in, rd->dict_on ? &rd->dict : NULL, rd->off, limit,
                                 rd->pos_seq, passing ? NULL : payload, &len, &why);
        if (rc == HUB_ECORRUPT) {
            /* Resynchronise on the next valid record of the segment; with
             * none, skip the rest of it. */
            uint64_t at = limit, to = next_base;
            rc = journal_resync(&rd->in, rd->dict_on ? &rd->dict : NULL, rd->off, limit,
                                rd->pos_seq, &at, &to);
            if (rc == HUB_EIO)
                goto out;
            /* (a sealed segment's records end where the next one begins) */
            if (rc != HUB_OK || (!last && to >= next_base)) {
                at = limit;
                to = next_base;
            }
            uint64_t n = pass_to(rd, to, &gap);
            journal_seg_path(j, base, path, sizeof(path));
            if (n && at < limit)
                hub_warn(J_WHO,
                         "%s: bad record at byte %" PRIu64 " (%s): %" PRIu64
                         " records skipped, reading on at byte %" PRIu64 " (seq %" PRIu64 ")",
                         path, rd->off, why, n, at, to);
            else if (n)
                hub_warn(J_WHO,
                         "%s: bad record at byte %" PRIu64 " (%s): skipping the %" PRIu64
                         " records left in the segment",
                         path, rd->off, why, n);
            rd->off = at;
            rd->pos_seq = to;
            if (!n)
                continue; /* positioning past it: nothing this reader wanted */
            if (at >= limit && !last)
                reader_close_seg(rd);
            rc = HUB_ECORRUPT;
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
