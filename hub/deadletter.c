/* hub/deadletter.c — the bounded, rotated file of refused data (see
 * deadletter.h). Each entry is built in memory and written with one
 * write(2) on an O_APPEND descriptor, so entries never interleave.
 *
 * Each append holds flock(LOCK_EX) on the file, and `cityhub deadletter
 * retry` rewrites it (PATH.tmp renamed over PATH) under the same lock. Once
 * the lock is held the descriptor is checked against the path (fstat vs
 * stat): when the file was replaced or renamed away meanwhile, it is
 * reopened, so an entry never goes to a file no one will read. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/buf.h"
#include "hub/deadletter.h"

struct hub_deadletter {
    pthread_mutex_t mu;
    char *path;
    int fd;
    uint64_t max_bytes;
    uint64_t size;
    uint64_t count;
};

static int open_file(struct hub_deadletter *d)
{
    d->fd = open(d->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (d->fd < 0)
        return -1;
    struct stat st;
    d->size = fstat(d->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static int lock_fd(int fd, int op)
{
    int rc;
    while ((rc = flock(fd, op)) != 0 && errno == EINTR)
        ;
    return rc;
}

int hub_deadletter_lock(const char *path, int *fd, int flags, int op, struct stat *st)
{
    for (int tries = 0; tries < 100; tries++) {
        if (*fd < 0 && (*fd = open(path, flags | O_CLOEXEC, 0600)) < 0)
            return -1;
        struct stat sp, sf;
        if (lock_fd(*fd, op) != 0 || fstat(*fd, &sf) != 0)
            return -1;
        if (stat(path, &sp) == 0 && sp.st_dev == sf.st_dev && sp.st_ino == sf.st_ino) {
            if (st)
                *st = sf;
            return 0;
        }
        close(*fd); /* and its lock: the path names another file now */
        *fd = -1;
    }
    errno = EAGAIN;
    return -1;
}

void hub_deadletter_unlock(int fd)
{
    lock_fd(fd, LOCK_UN);
}

/* Lock the file at d->path for one append: d->fd is then that file, locked,
 * and d->size its size. Returns 0, or -1 (errno set; d->fd may be -1). */
static int lock_current(struct hub_deadletter *d)
{
    struct stat st;
    if (hub_deadletter_lock(d->path, &d->fd, O_WRONLY | O_CREAT | O_APPEND, LOCK_EX, &st) != 0)
        return -1;
    d->size = (uint64_t)st.st_size;
    return 0;
}

int hub_deadletter_open(const char *path, uint64_t max_bytes, hub_deadletter_t **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    struct hub_deadletter *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = strdup(path))) {
        free(d);
        snprintf(err, errlen, "out of memory");
        return HUB_ENOMEM;
    }
    d->max_bytes = max_bytes ? max_bytes : 16u << 20;
    if (open_file(d) != 0) {
        snprintf(err, errlen, "dead-letter file %s: %s", path, strerror(errno));
        free(d->path);
        free(d);
        return HUB_EIO;
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return HUB_OK;
}

static void put_string(struct hub_buf *b, const char *s, size_t n)
{
    hub_buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            hub_buf_addc(b, '\\');
            hub_buf_addc(b, c);
        } else if (c == '\n') {
            hub_buf_adds(b, "\\n");
        } else if (c == '\t') {
            hub_buf_adds(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            hub_buf_printf(b, "\\u%04x", c);
        } else {
            hub_buf_addc(b, c); /* UTF-8 passes through */
        }
    }
    hub_buf_addc(b, '"');
}

static int printable(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r') || p[i] >= 0x7f)
            return 0;
    return 1;
}

static void put_base64(struct hub_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    hub_buf_addc(b, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        hub_buf_add(b, q, 4);
    }
    hub_buf_addc(b, '"');
}

int hub_deadletter_write(hub_deadletter_t *d, int64_t time_ns, const char *source,
                         const char *where_key, const char *where, const char *reason,
                         const void *data, size_t len)
{
    struct hub_buf b;
    hub_buf_init(&b, 64 + 6 * (len + 1024)); /* room for the worst escaping */
    time_t secs = (time_t)(time_ns / 1000000000);
    struct tm tm;
    char ts[40];
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    hub_buf_printf(&b, "{\"time\":\"%s.%03dZ\",\"source\":", ts, (int)(time_ns / 1000000 % 1000));
    put_string(&b, source ? source : "", source ? strlen(source) : 0);
    hub_buf_addc(&b, ',');
    put_string(&b, where_key ? where_key : "where", strlen(where_key ? where_key : "where"));
    hub_buf_addc(&b, ':');
    put_string(&b, where ? where : "", where ? strlen(where) : 0);
    hub_buf_adds(&b, ",\"reason\":");
    put_string(&b, reason ? reason : "", reason ? strlen(reason) : 0);
    if (printable(data, len)) {
        hub_buf_adds(&b, ",\"payload\":");
        put_string(&b, data, len);
    } else {
        hub_buf_adds(&b, ",\"payload_base64\":");
        put_base64(&b, data, len);
    }
    int rc = hub_buf_adds(&b, "}\n");
    if (rc != HUB_OK) {
        hub_buf_free(&b);
        errno = ENOMEM;
        return HUB_EIO;
    }
    pthread_mutex_lock(&d->mu);
    rc = HUB_EIO;
    int locked = lock_current(d) == 0;
    if (locked && d->size > 0 && d->size + b.len > d->max_bytes) {
        /* rotate: PATH becomes PATH.1 and a new PATH is begun, the old
         * file's lock held until the new one exists */
        char old[4096];
        snprintf(old, sizeof(old), "%s.1", d->path);
        int fd = d->fd;
        if (rename(d->path, old) == 0) {
            d->fd = -1;
            locked = lock_current(d) == 0;
            close(fd);
        } /* else: kept on the file as it is, past max_bytes */
    }
    if (locked) {
        ssize_t w = write(d->fd, b.data, b.len);
        int saved = errno;
        if (w == (ssize_t)b.len) {
            d->size += b.len;
            d->count++;
            rc = HUB_OK;
        }
        hub_deadletter_unlock(d->fd);
        errno = saved;
    }
    pthread_mutex_unlock(&d->mu);
    hub_buf_free(&b);
    return rc;
}

uint64_t hub_deadletter_count(hub_deadletter_t *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->count;
    pthread_mutex_unlock(&d->mu);
    return n;
}

void hub_deadletter_close(hub_deadletter_t *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    pthread_mutex_destroy(&d->mu);
    free(d->path);
    free(d);
}
