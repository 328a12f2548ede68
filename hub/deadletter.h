/* hub/deadletter.h — a file of what was refused, kept for a person to look
 * at: a rejected MQTT message, a line the store refused. One JSON object
 * per line:
 *
 *   {"time":"2026-12-03T07:15:00.123Z","source":"mqtt:lorawan",
 *    "topic":"city/s1/noise/a","reason":"record 1: no name","payload":"[{}]"}
 *
 * (the key of the place, "topic" here, is the writer's: where_key).
 *
 * A payload that is not printable ASCII text is written as
 * "payload_base64" instead. The file is bounded: past max_bytes it is
 * renamed to PATH.1 (replacing the older one) and a new one is begun, so at
 * most about twice max_bytes is kept. Created 0600 (refused data may be
 * private). Safe from any thread.
 *
 * Each append (and rotation) holds flock(LOCK_EX) on the file; a tool that
 * rewrites it (`cityhub deadletter retry`: PATH.tmp renamed over PATH) holds
 * the same lock, and the writer reopens PATH when the file it has open is
 * no longer the one at PATH, so no entry is lost to a rewrite. */
#ifndef HUB_DEADLETTER_H
#define HUB_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

struct stat;

typedef struct hub_deadletter hub_deadletter_t;

/* Returns HUB_OK, or HUB_EIO / HUB_ENOMEM with a message in err. */
int hub_deadletter_open(const char *path, uint64_t max_bytes, hub_deadletter_t **out, char *err,
                        size_t errlen);
/* Append one entry; returns HUB_OK or HUB_EIO (errno set). */
int hub_deadletter_write(hub_deadletter_t *d, int64_t time_ns, const char *source,
                         const char *where_key, const char *where, const char *reason,
                         const void *data, size_t len);
/* The file at path, opened (with flags, O_CLOEXEC added; created 0600 with
 * O_CREAT) unless *fd already is, and locked with flock(op), op LOCK_SH or
 * LOCK_EX. When, once locked, the path no longer names that file (renamed
 * over, renamed away) it is closed and the one at path opened and locked
 * instead. Returns 0 with *fd locked (and its fstat in st, if not NULL),
 * or -1 with errno (*fd may then be -1). hub_deadletter_unlock(*fd) or
 * close(*fd) releases the lock. For the writer and for tools that read or
 * rewrite the file. */
int hub_deadletter_lock(const char *path, int *fd, int flags, int op, struct stat *st);
void hub_deadletter_unlock(int fd);

/* Entries written since open. */
uint64_t hub_deadletter_count(hub_deadletter_t *d);
void hub_deadletter_close(hub_deadletter_t *d);

#endif
