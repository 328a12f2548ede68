/* hub/journal_recover.c — what open finds on disk (see hub/journal.h):
 * the segment files listed and sorted, files that are not this journal's
 * segments set aside, and the newest segment recovered: a torn tail cut,
 * damage in the middle passed over (resynchronising on the next valid
 * record), the writer's series dictionary rebuilt. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "hub/crc32c.h"
#include "hub/journal_priv.h"
#include "hub/log.h"

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
int journal_recover_active(hub_journal_t *j, char *err, size_t errlen)
{
    struct j_seg *s = &j->segs[j->nsegs - 1];
    char path[J_PATH_MAX];
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    struct j_in in = {.fd = -1};
    int rc = HUB_EIO;

    journal_seg_path(j, s->base, path, sizeof(path));
    in.fd = journal_io_open(AT_FDCWD, path, (j->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
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
    unsigned version = (size_t)r < sizeof(h) ? 0 : journal_header_version(h, s->base);
    if (version == 0) {
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
            if (torn && journal_is_disk_full(e) && journal_io_ftruncate(in.fd, 0) == 0) {
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
        version = J_VERSION;
    }
    /* The writer's dictionary is rebuilt from the segment's DEFINEs; a
     * segment of an older cityhub takes plain records until it is full. */
    journal_dict_reset(&j->dict);
    j->dict_on = version == J_VERSION;

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
        rc = journal_record_read(&in, j->dict_on ? &j->dict : NULL, off, size, seq, NULL, &len,
                                 &why);
        if (rc == HUB_OK) {
            off += HUB_JOURNAL_FRAME_SIZE + len;
            seq++;
            continue;
        }
        if (rc == HUB_ENOMEM) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto out;
        }
        /* A bad record with good ones after it is damage (a flipped bit, a
         * bad sector), not a torn tail: pass over it, keep the rest. */
        uint64_t at = 0, next = 0;
        if (rc != HUB_EIO)
            rc = journal_resync(&in, j->dict_on ? &j->dict : NULL, off, size, seq, &at, &next);
        if (rc == HUB_EIO) {
            snprintf(err, errlen, "%s: read at byte %" PRIu64 ": %s", path, off, strerror(errno));
            goto out;
        }
        if (rc != HUB_OK)
            break; /* nothing valid after it: a torn tail, cut below */
        hub_warn(J_WHO,
                 "%s: damaged record%s at bytes %" PRIu64 "..%" PRIu64 " (%s): %" PRIu64
                 " record%s lost (seq %" PRIu64 "..%" PRIu64 "), the records after them kept",
                 path, next - seq == 1 ? "" : "s", off, at - 1, why, next - seq,
                 next - seq == 1 ? "" : "s", seq, next - 1);
        j->st.damaged_records += next - seq;
        j->st.damaged_bytes += at - off;
        off = at;
        seq = next;
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
            if (journal_io_ftruncate(in.fd, off) < 0 || journal_fsync(j, in.fd) < 0) {
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
        /* what a crash left in the page cache: durable from here on */
        if (journal_fsync(j, in.fd) < 0) {
            snprintf(err, errlen, "%s: fsync: %s", path, strerror(errno));
            rc = HUB_EIO;
            goto out;
        }
        j->synced_size = off;
        j->synced_seq = seq;
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

/* Why the segment file name (numbered base, size bytes) cannot be one of
 * this journal's, or NULL when it can. A file shorter than a header is a
 * segment whose creation was cut short: only the newest can be that. */
static const char *not_a_segment(hub_journal_t *j, const char *name, uint64_t base, uint64_t size,
                                 bool newest)
{
    if (base > J_MAX_SEQ)
        return "impossible sequence number in its name";
    if (size < HUB_JOURNAL_HEADER_SIZE)
        return newest ? NULL : "shorter than a segment header";
    uint8_t h[HUB_JOURNAL_HEADER_SIZE];
    int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
    ssize_t r = fd >= 0 ? journal_pread_full(fd, h, sizeof(h), 0) : -1;
    if (fd >= 0)
        close(fd);
    if (r < 0)
        return NULL; /* unreadable now: the readers will say so */
    if (memcmp(h, J_MAGIC, 4) != 0)
        return "not a journal segment (no CHJ1 header)";
    uint32_t v = journal_get_le32(h + 4);
    if (v != J_VERSION && v != J_VERSION_PLAIN)
        return "a segment format this version does not know";
    if (journal_get_le64(h + 8) != base)
        return "its header names another sequence number than its file name";
    return NULL;
}

/* Rename a file that does not belong to NAME.foreign (or .foreign.N), out of
 * the segments' way but kept for a person to look at. */
static void set_aside(hub_journal_t *j, const char *name, const char *why)
{
    char to[J_SEG_NAME_LEN + 32];
    snprintf(to, sizeof(to), "%s.foreign", name);
    struct stat sb;
    for (int i = 1; i < 1000 && fstatat(j->dirfd, to, &sb, AT_SYMLINK_NOFOLLOW) == 0; i++)
        snprintf(to, sizeof(to), "%s.foreign.%d", name, i);
    j->st.set_aside++;
    if (j->read_only) {
        hub_warn(J_WHO, "%s/%s: %s: not used", j->dir, name, why);
        return;
    }
    if (journal_io_renameat(j->dirfd, name, to) != 0) {
        hub_err(J_WHO, "%s/%s: %s: cannot set it aside: %s", j->dir, name, why, strerror(errno));
        return;
    }
    journal_fsync(j, j->dirfd);
    hub_warn(J_WHO, "%s/%s: %s: set aside as %s, not used", j->dir, name, why, to);
}

/* List the segment files of j->dir into j->segs, sorted; files with a
 * segment's name that are not this journal's segments are set aside, never
 * trusted for numbering. */
int journal_list_segments(hub_journal_t *j, char *err, size_t errlen)
{
    DIR *d = opendir(j->dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", j->dir, strerror(errno));
        return HUB_EIO;
    }
    int rc = HUB_OK;
    struct dirent *e;
    /* readdir returns NULL at the end and on an error alike: only errno tells
     * them apart, and a listing cut short must not pass for a short journal. */
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
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
    if (rc == HUB_OK && errno != 0) {
        snprintf(err, errlen, "%s: reading the directory: %s", j->dir, strerror(errno));
        rc = HUB_EIO;
    }
    closedir(d);
    if (j->nsegs > 1)
        qsort(j->segs, j->nsegs, sizeof(*j->segs), seg_cmp);
    /* From the newest down: each one set aside makes the one before it the
     * newest. */
    for (size_t i = j->nsegs; rc == HUB_OK && i-- > 0;) {
        char name[J_SEG_NAME_LEN + 1];
        snprintf(name, sizeof(name), "%020" PRIu64 ".seg", j->segs[i].base);
        const char *why =
            not_a_segment(j, name, j->segs[i].base, j->segs[i].size, i + 1 == j->nsegs);
        if (!why)
            continue;
        set_aside(j, name, why);
        memmove(&j->segs[i], &j->segs[i + 1], (j->nsegs - i - 1) * sizeof(*j->segs));
        j->nsegs--;
    }
    return rc;
}
