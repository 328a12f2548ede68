/* hub/journal_cursor.c — named cursors: the one name rule, cursor files
 * ("SEQ\ncrc32c XXXXXXXX\n", replaced durably: temp file, fsync, rename,
 * fsync dir), registering, committing and peeking (hub/journal.h).
 *
 * A commit moves the in-memory cursor and deletes the segments every cursor
 * has passed even when the cursor file cannot be written (a full file
 * system, an I/O error): what was delivered stays delivered, and the space
 * is what a full file system needs back. When the write failed for lack of
 * space and segments were deleted, it is tried once more at once. After a
 * restart a cursor file left behind may point into deleted segments: the
 * cursor then starts at the first stored record, and the records in between,
 * which were delivered, are reported as dropped (hub_journal_cursor_open's
 * warning; an output counts them). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hub/crc32c.h"
#include "hub/journal_priv.h"

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
    ssize_t n = journal_pread_full(fd, buf, sizeof(buf), 0);
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
 * Caller holds j->cursor_mu (not j->mu). Returns HUB_OK, J_EDISKFULL or
 * HUB_EIO (logged, rate-limited). */
static int cursor_store(hub_journal_t *j, const char *name, uint64_t seq)
{
    char buf[J_CURSOR_FILE_MAX], tmp[HUB_JOURNAL_MAX_NAME + 8], path[J_PATH_MAX];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", seq);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "crc32c %08" PRIx32 "\n",
                  hub_crc32c(0, buf, (size_t)n));
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    snprintf(path, sizeof(path), "%s/cursors/%s", j->dir, tmp);
    int fsyncs = 0, rc = HUB_EIO;

    int fd = openat(j->cursor_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
#ifdef CITYHUB_TEST_HOOKS
    if (journal_test_crash_due("cursor"))
        journal_test_crash(fd, 0, buf, (size_t)n, NULL, 0);
#endif
    if (journal_pwrite_all(fd, path, buf, (size_t)n, 0) < 0)
        goto out;
    fsyncs++;
    if (journal_io_sync(fd, false) < 0)
        goto out;
    if (journal_io_renameat(j->cursor_dirfd, tmp, name) < 0)
        goto out;
    fsyncs++;
    if (journal_io_sync(j->cursor_dirfd, false) < 0)
        goto out;
    rc = HUB_OK;
out:
    if (rc != HUB_OK) {
        int e = errno;
        journal_log(j, J_LIM_CURSOR, HUB_LOG_ERROR, "%s/cursors/%s: write: %s", j->dir, name,
                    strerror(e));
        unlinkat(j->cursor_dirfd, tmp, 0);
        if (journal_is_disk_full(e))
            rc = J_EDISKFULL;
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

/* Record that cursors/NAME now holds seq. Caller holds j->cursor_mu. */
static void cursor_persisted(hub_journal_t *j, const char *name, uint64_t seq)
{
    pthread_mutex_lock(&j->mu);
    struct j_cursor *c = cursor_find(j, name);
    if (c)
        c->persisted = seq;
    pthread_mutex_unlock(&j->mu);
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
    if (clamped && !j->read_only && cursor_store(j, name, v) == HUB_OK)
        cursor_persisted(j, name, v);
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
    if (!same)
        rc = cursor_store(j, name, seq);
    /* The in-memory cursor moves and delivered segments go, written or not. */
    pthread_mutex_lock(&j->mu);
    c = cursor_find(j, name);
    if (c) {
        c->seq = seq;
        if (rc == HUB_OK)
            c->persisted = seq;
    }
    size_t freed = journal_delete_delivered(j);
    pthread_mutex_unlock(&j->mu);
    if (rc == J_EDISKFULL && freed) {
        rc = cursor_store(j, name, seq); /* into the space just freed */
        if (rc == HUB_OK)
            cursor_persisted(j, name, seq);
    }
    if (rc == J_EDISKFULL)
        rc = HUB_EIO;
out:
    pthread_mutex_unlock(&j->cursor_mu);
    return rc;
}

int hub_journal_cursor_close(hub_journal_t *j, const char *name)
{
    if (!j || !cursor_name_ok(name))
        return HUB_EINVAL;
    pthread_mutex_lock(&j->cursor_mu);
    pthread_mutex_lock(&j->mu);
    struct j_cursor *c = cursor_find(j, name);
    if (c) {
        c->used = false;
        if (!j->read_only)
            journal_delete_delivered(j);
    }
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_unlock(&j->cursor_mu);
    return c ? HUB_OK : HUB_EEMPTY;
}

int hub_journal_cursor_peek(hub_journal_t *j, const char *name, uint64_t *seq)
{
    if (!j || !cursor_name_ok(name))
        return HUB_EINVAL;
    return cursor_load(j, name, seq);
}
