/* hub/journal_priv.h — the journal's layout, shared by its source files
 * (journal.c: open, append, sync; journal_recover.c: listing and recovery
 * at open; journal_space.c: rotation and
 * freeing space; journal_cursor.c; journal_reader.c; journal_util.c: framing
 * and file helpers). Nothing outside hub/journal*.c includes it but the
 * journal's unit test and the fault suite's programs (tests/fault/).
 *
 * Layout on disk:
 *   DIR/00000000000000000000.seg   segments, named by the seq of their first
 *   DIR/00000000000000000042.seg   record; the last one is the active one
 *   DIR/cursors/NAME               "SEQ\ncrc32c XXXXXXXX\n" (CRC of "SEQ\n")
 *
 * In memory the journal keeps the list of segments (base seq, sealed size),
 * the active segment's fd and committed end (the byte after the last complete
 * append), next_seq, and the registered cursors. One mutex guards all of it;
 * an append is one pwritev() of frame header + payload at the committed end,
 * made under that mutex, so a record is either wholly in the page cache or
 * (after a failed write is truncated away) not at all. Readers pread() their
 * own fd outside the mutex, up to the committed end they saw under it.
 *
 * A writable journal always lists at least one segment, the last being the
 * active one. When the file system is full the active segment may lack its
 * header (active_size 0: a rotation or recovery could not write it) or even
 * its file (active_fd -1: a fresh journal could not create it); it then
 * holds no record (its base is next_seq) and the next append completes it.
 *
 * Lock order: cursor_mu, then mu, then log_mu (a leaf). */
#ifndef HUB_JOURNAL_PRIV_H
#define HUB_JOURNAL_PRIV_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hub/journal.h"
#include "hub/log.h"

#define J_WHO "journal"
#define J_MAGIC "CHJ1"
#define J_VERSION 2u       /* segments written now: plain and dictionary records */
#define J_VERSION_PLAIN 1u /* segments of an older cityhub: plain records only */
#define J_DEFAULT_SEGMENT (8ull << 20)
#define J_DEFAULT_MAX (256ull << 20)
#define J_MIN_SEGMENT 64ull
#define J_IOBUF 65536 /* read buffer of a reader / of recovery */
#define J_PATH_MAX 4096
#define J_SEG_NAME_LEN 24 /* 20 digits + ".seg" */
#define J_CURSOR_FILE_MAX 64
/* No journal gets near this (a million readings a second for 146,000
 * years): a segment named past it does not belong. */
#define J_MAX_SEQ (1ull << 62)

/* The frame's 32-bit length field: the stored length in the low 24 bits
 * (HUB_JOURNAL_MAX_RECORD needs 21), the record type in the top 8 (0 in a
 * version 1 segment). The CRC covers the whole field. */
#define J_LEN_MASK 0x00ffffffu
#define J_TYPE_SHIFT 24
enum j_rec_type {
    J_REC_PLAIN = 0,  /* stored: the payload */
    J_REC_DEFINE = 1, /* stored: varint id, varint key_len, the payload */
    J_REC_REF = 2,    /* stored: varint id, the payload after its key */
};
/* A segment's series dictionary stays under both bounds; past them the
 * writer writes plain records. */
#define J_DICT_MAX_KEYS 4096u
#define J_DICT_MAX_BYTES (1u << 20)
#define J_DICT_HDR_MAX 10 /* a DEFINE's id and key_len varints: 2 + 3 bytes, rounded up */

/* Internal outcome, never returned by a public function: the file system is
 * full (ENOSPC or EDQUOT). The append path answers it like a full journal. */
#define J_EDISKFULL (-100)

/* The repeating messages, each with its own rate limit. */
enum j_lim {
    J_LIM_CREATE, /* creating a segment or writing its header */
    J_LIM_WRITE,  /* appending a record */
    J_LIM_SYNC,   /* fsync / fdatasync */
    J_LIM_CURSOR, /* writing a cursor file */
    J_LIM_DELETE, /* deleting a segment */
    J_LIM_DROP,   /* journal full (max_size): undelivered records dropped */
    J_LIM_FULL,   /* file system full: records dropped, or appends refused */
    J_LIM_N
};

struct j_seg {
    uint64_t base; /* seq of its first record (from its name) */
    uint64_t size; /* file size; for the active segment see j->active_size */
};

/* The series dictionary of one segment: id -> key bytes, in the order the
 * DEFINE records came (the writer's also has a hash index, key -> id). */
struct j_key {
    uint32_t off, len; /* in bytes */
    uint32_t hash;
};

struct j_dict {
    uint8_t *bytes; /* the keys, one after the other */
    size_t used, cap;
    struct j_key *keys;
    uint32_t n;
    size_t keys_cap;
    uint32_t *slots; /* writer only: id + 1 at the key's hash (linear probing), 0 free */
    uint32_t nslots; /* a power of 2, at least 2 * keys_cap; 0 for a reader's */
    bool indexed;
    struct hub_buf rec; /* the stored bytes of a dictionary record being read */
};

struct j_cursor {
    char name[HUB_JOURNAL_MAX_NAME];
    uint64_t seq;       /* next seq the output has not delivered */
    uint64_t persisted; /* last value durably written */
    bool used;
};

struct hub_journal {
    char *dir;
    uint64_t segment_size;
    uint64_t max_size;
    enum hub_journal_on_full on_full;
    bool read_only;
    bool sync_each;

    pthread_mutex_t mu;
    pthread_cond_t cond;       /* signalled on every append, deletion and wake */
    pthread_mutex_t cursor_mu; /* serialises cursor file writes */
    pthread_mutex_t log_mu;    /* guards lim */
    uint64_t wake_gen;
    uint64_t wake_at; /* an append that makes next_seq pass this wakes the waiters */
    uint64_t del_gen; /* segments deleted: readers may let go of their files */

    int dirfd;
    int cursor_dirfd;
    struct j_seg *segs; /* sorted by base; the last is the active segment */
    size_t nsegs;
    size_t segs_alloc;
    int active_fd;        /* -1 when read_only, or no file yet (see above) */
    uint64_t active_size; /* committed end of the active segment; 0: no header yet */
    uint64_t total_bytes; /* all segment files */
    uint64_t next_seq;
    bool dict_on;       /* the active segment is of J_VERSION: dictionary records */
    struct j_dict dict; /* the active segment's series */
    bool dirty;         /* appended since the last fsync */
    bool tail_junk;     /* a failed write left bytes past active_size */
    /* What of the active segment is known durable: its first synced_size
     * bytes, records below synced_seq. After a failed fsync (untrusted) the
     * rest is written again into a new file before anything else is
     * trusted to be on disk (journal_redo_unsynced). */
    uint64_t synced_size;
    uint64_t synced_seq;
    bool untrusted;

    struct j_cursor cursors[HUB_JOURNAL_MAX_CURSORS];
    struct hub_journal_stats st;
    struct hub_log_limit lim[J_LIM_N];
};

/* A window of a segment file read with pread, shared by readers and
 * recovery. */
struct j_in {
    int fd;
    uint8_t *buf;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf */
};

struct hub_journal_reader {
    hub_journal_t *j;
    struct j_in in;
    uint64_t seg_base;  /* segment open in in.fd (valid when in.fd >= 0) */
    uint64_t off;       /* next frame offset in that segment */
    uint64_t pos_seq;   /* seq the frame at off must carry */
    uint64_t want;      /* next seq to return */
    bool dict_on;       /* that segment is of J_VERSION */
    struct j_dict dict; /* its series, from the DEFINE records read so far */
};

/* Tests only; NULL in the program. When set, it is asked before each write
 * that can run out of space (a record, a segment header, a cursor file) with
 * the file's path and the bytes to be written; a non-zero answer is taken as
 * that write failing with that errno. */
extern int (*hub_journal_fault_hook)(const char *path, size_t bytes);
/* Tests only; NULL in the program. Asked before each fsync/fdatasync the
 * journal makes, with the fd; a non-zero answer is taken as that fsync
 * failing with that errno. */
extern int (*hub_journal_sync_hook)(int fd);

/* The journal's syncs, renames, unlinks, opens of its files and truncations
 * go through these (journal_util.c): in the program they are fsync /
 * fdatasync (data), renameat, unlink, openat and ftruncate; in a build with
 * -DCITYHUB_TEST_HOOKS the tests below can watch and fail them. */
int journal_io_sync(int fd, bool data);
int journal_io_renameat(int dirfd, const char *from, const char *to);
int journal_io_unlink(const char *path);
/* openat(dirfd, path, flags, mode): returns the fd, or -1 with errno. */
int journal_io_open(int dirfd, const char *path, int flags, mode_t mode);
int journal_io_ftruncate(int fd, uint64_t len);

#ifdef CITYHUB_TEST_HOOKS
/* Test build only (MODE=asan): the power-cut and failing-disk tests
 * (tests/fault/). Every member may be NULL. */
struct hub_journal_test_io {
    /* Before an fsync (data false) or fdatasync (data true) of fd, a file or
     * a directory: 0 goes on; an errno fails the call with it; -1 skips it
     * and reports success (after a simulated power cut nothing is durable). */
    int (*sync)(int fd, bool data);
    /* After a sync that succeeded. */
    void (*synced)(int fd);
    /* Before renameat / unlink / openat of a segment, cursor or redo file
     * (path as given: absolute, or a name in dirfd) / ftruncate: 0 goes
     * on, an errno fails the call. */
    int (*rename)(int dirfd, const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*open)(const char *path, int flags);
    int (*ftruncate)(int fd, uint64_t len);
};
extern struct hub_journal_test_io hub_journal_test_io;

/* Close without the final sync and without writing anything: what a power
 * cut leaves of the process (tests/fault/powercut.c). */
void hub_journal_abandon(hub_journal_t *j);

/* CITYHUB_TEST_CRASH_AT=KIND:N (KIND append, rotate or cursor): true at the
 * N-th call for KIND in this process (N from 1). The caller then writes part
 * of its data with journal_test_crash, which kills the process (SIGKILL). */
bool journal_test_crash_due(const char *kind);
/* Write the first half of a then b (as one buffer) at off of fd, then
 * SIGKILL the process. */
__attribute__((noreturn)) void journal_test_crash(int fd, uint64_t off, const void *a, size_t alen,
                                                  const void *b, size_t blen);
#endif

static inline void journal_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void journal_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t journal_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t journal_get_le64(const uint8_t *p)
{
    return (uint64_t)journal_get_le32(p) | (uint64_t)journal_get_le32(p + 4) << 32;
}

/* ENOSPC or EDQUOT: the file system (or the user's quota) is full. */
static inline bool journal_is_disk_full(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* ---- journal_util.c ---------------------------------------------------- */

void journal_seg_path(const hub_journal_t *j, uint64_t base, char *out, size_t outlen);
void journal_make_header(uint8_t *h, uint64_t base);
/* The version of a good header of segment base (J_VERSION or
 * J_VERSION_PLAIN), or 0. */
unsigned journal_header_version(const uint8_t *h, uint64_t base);
bool journal_header_ok(const uint8_t *h, uint64_t base);
/* Write all of buf at off into the file path (for the fault hook). Returns
 * 0, or -1 with errno set (a short write is ENOSPC). */
int journal_pwrite_all(int fd, const char *path, const void *buf, size_t n, uint64_t off);
/* Read up to n bytes at off; returns bytes read (short only at EOF) or -1. */
ssize_t journal_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* fsync and count it; caller holds j->mu (or owns j exclusively). */
int journal_fsync(hub_journal_t *j, int fd);
/* Make room in the array *arr of *alloc elements of elem bytes, used of
 * them in use, for need more (doubling; first when empty). HUB_OK or
 * HUB_ENOMEM (*arr unchanged). */
int journal_grow(void **arr, size_t *alloc, size_t used, size_t need, size_t elem, size_t first);
/* fdatasync, through the test hook; counts nothing (callers do). */
int journal_datasync(int fd);
/* Make room in j->segs for one more segment / add one. HUB_OK or HUB_ENOMEM. */
int journal_segs_reserve(hub_journal_t *j);
int journal_segs_push(hub_journal_t *j, uint64_t base, uint64_t size);
/* Check the frame at off (which must lie below limit) and, if out is not
 * NULL, append its payload to out. expect is the seq it must carry.
 * Returns HUB_OK with *len (payload length), HUB_ECORRUPT with *why, HUB_EIO,
 * or out's HUB_EFULL / HUB_ENOMEM. */
int journal_frame_read(struct j_in *in, uint64_t off, uint64_t limit, uint64_t expect,
                       struct hub_buf *out, uint32_t *len, const char **why);
/* journal_frame_read, in a segment of J_VERSION when typed_ok: a plain
 * record's stored bytes go to out (if not NULL), a dictionary record's to
 * typed (reset first; if not NULL). *type is set. Without typed_ok a record
 * type other than plain is corrupt. */
int journal_frame_read_typed(struct j_in *in, uint64_t off, uint64_t limit, uint64_t expect,
                             bool typed_ok, struct hub_buf *out, struct hub_buf *typed,
                             enum j_rec_type *type, uint32_t *len, const char **why);
/* How many records a damaged stretch of bytes can have held: each took at
 * least a frame and one byte. It depends on those bytes only, not on how far
 * the file goes on, so recovery decides the same at every open. */
static inline uint64_t journal_resync_max_lost(uint64_t bytes)
{
    return bytes / (HUB_JOURNAL_FRAME_SIZE + 1);
}

/* The frame header of a plain record: crc32c (masked), length, seq. */
void journal_frame_header(uint8_t *fh, uint64_t seq, const void *payload, uint32_t len);
/* After a bad record at off (which should have carried seq expect): the
 * first offset from it, below limit, where a valid record starts whose seq
 * is past expect by no more than journal_resync_max_lost of the bytes
 * passed over. d is the segment's dictionary (NULL: a segment of
 * J_VERSION_PLAIN, whose frames carry no record type): a dictionary record
 * is valid when d takes it (a REF of a known id, a DEFINE of a new one); d
 * is not changed. Returns HUB_OK with *at and *seq, HUB_EEMPTY when there
 * is none (the rest is a torn or garbage tail), or HUB_EIO. As LevelDB's
 * log reader resynchronises on the next block, but record by record: one
 * bad record costs itself only. */
int journal_resync(struct j_in *in, struct j_dict *d, uint64_t off, uint64_t limit, uint64_t expect,
                   uint64_t *at, uint64_t *seq);
/* Log a message of kind k at most once per HUB_LOG_REPEAT_NS, with the count
 * of those held back since. Keeps errno. Any lock may be held. */
void journal_log(hub_journal_t *j, enum j_lim k, enum hub_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- journal_dict.c ---------------------------------------------------- */

void journal_dict_init(struct j_dict *d, bool indexed);
void journal_dict_free(struct j_dict *d);
/* Forget every key (a new segment); the memory stays. */
void journal_dict_reset(struct j_dict *d);
uint32_t journal_dict_hash(const void *key, size_t len);
/* The id of key (hash from journal_dict_hash) in an indexed dictionary, or
 * -1. */
long journal_dict_find(const struct j_dict *d, const void *key, size_t len, uint32_t hash);
/* Can a key of len bytes be added under the bounds (J_DICT_MAX_*)? */
bool journal_dict_fits(const struct j_dict *d, size_t len);
/* Make room for one more key of len bytes (which fits): HUB_OK or
 * HUB_ENOMEM. journal_dict_add then cannot fail. */
int journal_dict_reserve(struct j_dict *d, size_t len);
/* Add key as id d->n (room reserved). */
void journal_dict_add(struct j_dict *d, const void *key, size_t len, uint32_t hash);
/* Read the record at off as journal_frame_read does, in a segment whose
 * dictionary is d (NULL: a segment of J_VERSION_PLAIN), and append the
 * payload as it was appended (a dictionary record's key and values) to out
 * if out is not NULL. A DEFINE is added to d whether or not out is given
 * (readers passing over records, recovery); a REF of an id d does not hold
 * is HUB_ECORRUPT. *len is the stored length (the frame takes
 * HUB_JOURNAL_FRAME_SIZE + *len bytes). On an error d and out are as they
 * were. */
int journal_record_read(struct j_in *in, struct j_dict *d, uint64_t off, uint64_t limit,
                        uint64_t expect, struct hub_buf *out, uint32_t *len, const char **why);
/* Would d take the dictionary record of type t whose stored bytes are in
 * d->rec (journal_frame_read_typed)? Always true for a plain one. */
bool journal_dict_record_ok(struct j_dict *d, enum j_rec_type t);

/* ---- journal_recover.c ------------------------------------------------- */

/* List the segment files of j->dir into j->segs, sorted; set aside those
 * that are not this journal's. HUB_OK, or an error described in err. */
int journal_list_segments(hub_journal_t *j, char *err, size_t errlen);
/* Recover the newest segment (see journal_recover.c). Sets active_fd,
 * active_size, next_seq. HUB_OK, or an error described in err. */
int journal_recover_active(hub_journal_t *j, char *err, size_t errlen);

/* ---- journal_space.c --------------------------------------------------- */

/* Lowest seq a registered cursor still needs, or UINT64_MAX with none. */
uint64_t journal_min_cursor(const hub_journal_t *j);
/* Delete the oldest segment (never the active one; nsegs > 1). Caller holds
 * j->mu. Returns how many records in it no registered cursor had passed. */
uint64_t journal_drop_first(hub_journal_t *j);
/* Delete the segments every registered cursor has passed. Caller holds
 * j->mu. Returns how many were deleted. */
size_t journal_delete_delivered(hub_journal_t *j);
/* Create the active segment's file if it has none and write its header if
 * it has none. Caller holds j->mu (or owns j). Returns HUB_OK, J_EDISKFULL
 * or HUB_EIO (errno set; logged). */
int journal_seg_ready(hub_journal_t *j);
/* Make room for a record of n bytes (frame included) under max_size and
 * segment_size. Caller holds j->mu. Returns HUB_OK, HUB_EFULL, J_EDISKFULL
 * or HUB_EIO. */
int journal_make_room(hub_journal_t *j, uint64_t n);
/* The file system is full: free space as a full journal does. Caller holds
 * j->mu. Returns HUB_OK when a segment was deleted (try again) or HUB_EFULL
 * when nothing more can be freed under the on_full policy. */
int journal_free_space(hub_journal_t *j);
/* An fsync of the active segment failed with errno e: count it, log it
 * (where: the file or directory, what: the call), and stop trusting the
 * page cache (untrusted: journal_redo_unsynced runs before anything is
 * trusted to be on disk). Caller holds j->mu. */
void journal_sync_failed(hub_journal_t *j, int e, const char *where, const char *what);
/* An fsync of the active segment failed: the kernel may have dropped the
 * pages it could not write, and a later fsync that succeeds proves nothing
 * (PostgreSQL's lesson). Read the records not known durable back through a
 * new descriptor, check each, write the good ones into a new segment file
 * and fsync that; it becomes the active segment (the old file's unsynced
 * tail is shadowed by it, or replaced when nothing of it was synced).
 * From the first record that no longer checks, the rest of them is lost:
 * logged and counted, and the next append begins a new segment (readers
 * see the gap between segments, and log it). Caller holds
 * j->mu. Returns HUB_OK or HUB_EIO (still untrusted: tried again at the
 * next sync). */
int journal_redo_unsynced(hub_journal_t *j);

#endif
