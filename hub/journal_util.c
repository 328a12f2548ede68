/* hub/journal_util.c — the journal's framing, file helpers and rate-limited
 * log (hub/journal_priv.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/clock.h"
#include "hub/crc32c.h"
#include "hub/journal_priv.h"

int (*hub_journal_fault_hook)(const char *path, size_t bytes);

void journal_seg_path(const hub_journal_t *j, uint64_t base, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%020" PRIu64 ".seg", j->dir, base);
}

void journal_make_header(uint8_t *h, uint64_t base)
{
    memcpy(h, J_MAGIC, 4);
    journal_put_le32(h + 4, J_VERSION);
    journal_put_le64(h + 8, base);
}

unsigned journal_header_version(const uint8_t *h, uint64_t base)
{
    uint32_t v = journal_get_le32(h + 4);
    if (memcmp(h, J_MAGIC, 4) != 0 || journal_get_le64(h + 8) != base ||
        (v != J_VERSION && v != J_VERSION_PLAIN))
        return 0;
    return v;
}

bool journal_header_ok(const uint8_t *h, uint64_t base)
{
    return journal_header_version(h, base) != 0;
}

int journal_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off)
{
    int e;
    if (hub_journal_fault_hook && (e = hub_journal_fault_hook(path, n)) != 0) {
        errno = e;
        return -1;
    }
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

ssize_t journal_pread_full(int fd, void *buf, size_t n, uint64_t off)
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

int (*hub_journal_sync_hook)(int fd);

static int sync_hooked(int fd)
{
    int e = hub_journal_sync_hook ? hub_journal_sync_hook(fd) : 0;
    if (e)
        errno = e;
    return e ? -1 : 0;
}

int journal_fsync(hub_journal_t *j, int fd)
{
    j->st.fsyncs++;
    return sync_hooked(fd) < 0 ? -1 : journal_io_sync(fd, false);
}

int journal_datasync(int fd)
{
    return sync_hooked(fd) < 0 ? -1 : journal_io_sync(fd, true);
}

int journal_grow(void **arr, size_t *alloc, size_t used, size_t need, size_t elem, size_t first)
{
    if (used + need <= *alloc)
        return HUB_OK;
    size_t na = *alloc ? *alloc : first;
    while (na < used + need)
        na *= 2;
    void *p = realloc(*arr, na * elem);
    if (!p)
        return HUB_ENOMEM;
    *arr = p;
    *alloc = na;
    return HUB_OK;
}

#ifdef CITYHUB_TEST_HOOKS
struct hub_journal_test_io hub_journal_test_io;

int journal_io_sync(int fd, bool data)
{
    int e = hub_journal_test_io.sync ? hub_journal_test_io.sync(fd, data) : 0;
    if (e == -1)
        return 0;
    if (e) {
        errno = e;
        return -1;
    }
    int r = data ? fdatasync(fd) : fsync(fd);
    if (r == 0 && hub_journal_test_io.synced)
        hub_journal_test_io.synced(fd);
    return r;
}

int journal_io_renameat(int dirfd, const char *from, const char *to)
{
    int e = hub_journal_test_io.rename ? hub_journal_test_io.rename(dirfd, from, to) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return renameat(dirfd, from, dirfd, to);
}

int journal_io_unlink(const char *path)
{
    int e = hub_journal_test_io.unlink ? hub_journal_test_io.unlink(path) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return unlink(path);
}

int journal_io_open(int dirfd, const char *path, int flags, mode_t mode)
{
    int e = hub_journal_test_io.open ? hub_journal_test_io.open(path, flags) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return openat(dirfd, path, flags, mode);
}

int journal_io_ftruncate(int fd, uint64_t len)
{
    int e = hub_journal_test_io.ftruncate ? hub_journal_test_io.ftruncate(fd, len) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return ftruncate(fd, (off_t)len);
}

static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static char crash_kind[16];
static unsigned long crash_n;
static unsigned long crash_count;
static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;

static void crash_parse(void)
{
    const char *v = getenv("CITYHUB_TEST_CRASH_AT");
    const char *colon = v ? strchr(v, ':') : NULL;
    if (!colon || (size_t)(colon - v) >= sizeof(crash_kind))
        return;
    memcpy(crash_kind, v, (size_t)(colon - v));
    crash_n = strtoul(colon + 1, NULL, 10);
}

bool journal_test_crash_due(const char *kind)
{
    pthread_once(&crash_once, crash_parse);
    if (crash_n == 0 || strcmp(kind, crash_kind) != 0)
        return false;
    pthread_mutex_lock(&crash_mu);
    bool due = ++crash_count == crash_n;
    pthread_mutex_unlock(&crash_mu);
    return due;
}

void journal_test_crash(int fd, uint64_t off, const void *a, size_t alen, const void *b,
                        size_t blen)
{
    uint8_t buf[4096];
    size_t n = 0;
    for (size_t i = 0; i < alen && n < sizeof(buf); i++)
        buf[n++] = ((const uint8_t *)a)[i];
    for (size_t i = 0; i < blen && n < sizeof(buf); i++)
        buf[n++] = ((const uint8_t *)b)[i];
    fprintf(stderr, "journal: CITYHUB_TEST_CRASH_AT=%s:%lu: writing %zu of %zu bytes and dying\n",
            crash_kind, crash_n, n / 2, alen + blen);
    if (pwrite(fd, buf, n / 2, (off_t)off) < 0)
        fprintf(stderr, "journal: test crash: pwrite: %s\n", strerror(errno));
    raise(SIGKILL);
    _exit(137);
}
#else
int journal_io_sync(int fd, bool data)
{
    return data ? fdatasync(fd) : fsync(fd);
}

int journal_io_renameat(int dirfd, const char *from, const char *to)
{
    return renameat(dirfd, from, dirfd, to);
}

int journal_io_unlink(const char *path)
{
    return unlink(path);
}

int journal_io_open(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

int journal_io_ftruncate(int fd, uint64_t len)
{
    return ftruncate(fd, (off_t)len);
}
#endif

int journal_segs_reserve(hub_journal_t *j)
{
    return journal_grow((void **)&j->segs, &j->segs_alloc, j->nsegs, 1, sizeof(*j->segs), 16);
}

int journal_segs_push(hub_journal_t *j, uint64_t base, uint64_t size)
{
    if (journal_segs_reserve(j) != HUB_OK)
        return HUB_ENOMEM;
    j->segs[j->nsegs].base = base;
    j->segs[j->nsegs].size = size;
    j->nsegs++;
    return HUB_OK;
}

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
    ssize_t r = journal_pread_full(in->fd, in->buf, (size_t)want, off);
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

int journal_frame_read_typed(struct j_in *in, uint64_t off, uint64_t limit, uint64_t expect,
                             bool typed_ok, struct hub_buf *out, struct hub_buf *typed,
                             enum j_rec_type *type, uint32_t *len, const char **why)
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
    uint32_t stored = journal_get_le32(fh);
    uint32_t field = journal_get_le32(fh + 4);
    uint64_t seq = journal_get_le64(fh + 8);
    if (stored == 0 && field == 0 && seq == 0) {
        *why = "zero-filled frame";
        return HUB_ECORRUPT;
    }
    uint32_t t = typed_ok ? field >> J_TYPE_SHIFT : 0;
    uint32_t n = typed_ok ? field & J_LEN_MASK : field;
    if (n == 0 || n > HUB_JOURNAL_MAX_RECORD) {
        *why = "bad record length";
        return HUB_ECORRUPT;
    }
    if (t != J_REC_PLAIN && t != J_REC_DEFINE && t != J_REC_REF) {
        *why = "bad record type";
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
    struct hub_buf *dst = t == J_REC_PLAIN ? out : typed;
    if (t != J_REC_PLAIN && typed)
        hub_buf_reset(typed);
    uint32_t crc = hub_crc32c(0, fh + 4, 12);
    uint64_t p = off + HUB_JOURNAL_FRAME_SIZE;
    uint32_t left = n;
    size_t out_start = dst ? dst->len : 0;
    while (left) {
        size_t chunk = left > J_IOBUF ? J_IOBUF : left;
        const uint8_t *d = in_get(in, p, chunk, limit, &rc);
        if (!d) {
            *why = "short read";
            goto fail;
        }
        crc = hub_crc32c(crc, d, chunk);
        if (dst && (rc = hub_buf_add(dst, d, chunk)) != HUB_OK) {
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
    *type = (enum j_rec_type)t;
    return HUB_OK;
fail:
    if (dst) {
        dst->len = out_start;
        if (dst->data)
            dst->data[dst->len] = 0;
    }
    return rc;
}

int journal_frame_read(struct j_in *in, uint64_t off, uint64_t limit, uint64_t expect,
                       struct hub_buf *out, uint32_t *len, const char **why)
{
    enum j_rec_type t;
    return journal_frame_read_typed(in, off, limit, expect, false, out, NULL, &t, len, why);
}

void journal_frame_header(uint8_t *fh, uint64_t seq, const void *payload, uint32_t len)
{
    journal_put_le32(fh + 4, len);
    journal_put_le64(fh + 8, seq);
    uint32_t crc = hub_crc32c(0, fh + 4, 12);
    crc = hub_crc32c(crc, payload, len);
    journal_put_le32(fh, hub_crc32c_mask(crc));
}

int journal_resync(struct j_in *in, struct j_dict *d, uint64_t off, uint64_t limit, uint64_t expect,
                   uint64_t *at, uint64_t *seq)
{
    for (uint64_t p = off; p + HUB_JOURNAL_FRAME_SIZE < limit; p++) {
        int rc = HUB_OK;
        const uint8_t *h = in_get(in, p, HUB_JOURNAL_FRAME_SIZE, limit, &rc);
        if (!h)
            return rc == HUB_EIO ? HUB_EIO : HUB_EEMPTY;
        uint32_t n = journal_get_le32(h + 4);
        if (d)
            n &= J_LEN_MASK; /* the type is checked with the CRC below */
        uint64_t s = journal_get_le64(h + 8);
        if (s <= expect || s - expect > journal_resync_max_lost(p - off) || n == 0 ||
            n > HUB_JOURNAL_MAX_RECORD || (uint64_t)n > limit - p - HUB_JOURNAL_FRAME_SIZE)
            continue; /* cheap tests first: most offsets end here */
        uint32_t len;
        const char *why;
        enum j_rec_type t;
        rc = journal_frame_read_typed(in, p, limit, s, d != NULL, NULL, d ? &d->rec : NULL, &t,
                                      &len, &why);
        if (rc == HUB_EIO)
            return rc;
        if (rc == HUB_OK && d && !journal_dict_record_ok(d, t))
            continue; /* a good frame the dictionary does not take */
        if (rc == HUB_OK) {
            *at = p;
            *seq = s;
            return HUB_OK;
        }
    }
    return HUB_EEMPTY;
}

void journal_log(hub_journal_t *j, enum j_lim k, enum hub_log_level lvl, const char *fmt, ...)
{
    if (lvl > hub_log_threshold)
        return;
    int e = errno;
    uint64_t held = 0;
    pthread_mutex_lock(&j->log_mu);
    int say = hub_log_limit_pass(&j->lim[k], hub_mono_ns(), &held);
    pthread_mutex_unlock(&j->log_mu);
    if (say) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (held)
            hub_log_write(lvl, J_WHO, "%s (%" PRIu64 " more since last report)", msg, held);
        else
            hub_log_write(lvl, J_WHO, "%s", msg);
    }
    errno = e;
}
