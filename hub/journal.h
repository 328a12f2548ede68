/* hub/journal.h — the crash-safe write-ahead journal of readings.
 *
 * A journal is a directory of segment files, each named by the sequence
 * number of its first record (00000000000000000000.seg). Every record is framed
 * as
 *
 *     crc32c (4, masked, LE) | length (4, LE) | seq (8, LE) | payload (length)
 *
 * where the CRC covers length, seq and payload. Segments start with a 16-byte
 * header: "CHJ1", version (u32 LE), base seq (u64 LE).
 *
 * Series dictionary (segment version 2): a payload appended with
 * hub_journal_append_keyed starts with a key of key_len bytes that repeats
 * from record to record (a reading's series: hub_reading_encode_keyed). The
 * first record of a key in a segment stores it (a DEFINE: a new small id,
 * then the whole payload), later ones store only the id and the bytes after
 * the key (a REF). The record type is in the top byte of the length field,
 * under the CRC. Each segment starts an empty dictionary, of at most 4096
 * keys and 1 MiB of key bytes (past that, records are stored whole), so a
 * segment is readable on its own. Readers give back every payload exactly
 * as appended; a REF whose DEFINE is lost to corruption is a corrupt
 * record. Segments of version 1 (whole records only) are still read, and
 * one that is the newest at open is appended to whole until it is full.
 *
 * A reading is *accepted* once hub_journal_append() returns HUB_OK: its bytes
 * are in the file (the kernel's page cache), so a crash or kill -9 of the
 * process loses nothing accepted. Group commit: hub_journal_sync() makes all
 * accepted records durable with one fsync; the daemon calls it every
 * sync_interval, so a power cut loses at most that window. A failed fsync
 * is not retried on the same file (the kernel may have dropped the pages
 * it could not write): the records since the last good sync are read back,
 * checked, and written into a new segment file, which is fsynced instead
 * (stats sync_failed, sync_lost).
 *
 * On open, recovery scans the newest segment and cuts a torn tail: the
 * bytes from the first record whose frame is torn or whose CRC fails, when
 * no valid record follows (truncate + fsync), as LevelDB's log reader and
 * Kafka's segment recovery do. A bad record with valid ones after it is
 * damage, not a tail: it is passed over (logged, counted in
 * damaged_records) and the records after it are kept. Older segments were
 * sealed by a successful fsync at rotation and are checked as they are
 * read, the same way. Files named like segments whose header does not
 * match (another program's, another journal's, a number no journal
 * reaches) are renamed NAME.foreign and never used. Files and directories
 * are created 0600 / 0700: readings may be private.
 *
 * Each output has a named cursor: the seq of the next record it has not yet
 * delivered, persisted in cursors/NAME (write temp, fsync, rename, fsync dir).
 * Segments wholly below every cursor are deleted. When the journal would pass
 * max_size the on_full policy decides: drop_oldest deletes the oldest segment
 * (its undelivered records are counted as dropped), drop_newest refuses the
 * append with HUB_EFULL (counted as dropped by the caller).
 *
 * A full file system (ENOSPC or EDQUOT while appending, rotating or creating
 * a segment) is a full journal, whatever max_size says: segments every
 * cursor has passed go first (an active segment wholly delivered is replaced
 * by a new one), then on_full decides as above, and the append is tried
 * again; when nothing more can be freed it is refused with HUB_EFULL
 * (stats.disk_full). Appends work again as soon as there is space, without
 * a reopen; a journal opens on a full file system even when its next
 * segment cannot be created yet (the first append that finds room does).
 * Repeating I/O errors are logged once per HUB_LOG_REPEAT_NS with a count.
 *
 * All functions are thread-safe: inputs append from their threads while each
 * output reads through its own reader. Readers must be freed before the
 * journal is closed.
 *
 * Details callers rely on:
 * - segment_size is clamped to [64 B, max_size / 2]; a segment holds whole
 *   records, rotated before an append that would pass segment_size;
 * - a stored cursor past next_seq (after a power cut undid appends) is
 *   clamped to next_seq with a warning, and the clamp is persisted at once
 *   (the seqs past it go to new records); a corrupt cursor file falls back to
 *   the oldest stored seq with a warning;
 * - a reader passes over a segment file deleted under it (by the hub, while
 *   a read-only journal reads) as dropped, counted in *skipped;
 * - deleting segments is not followed by a directory fsync: a power cut may
 *   bring a delivered segment back, and its records are sent again, which
 *   replay tolerates;
 * - a commit whose cursor file cannot be written (HUB_EIO) still moves the
 *   in-memory cursor and deletes what every cursor has passed; after a
 *   restart the older file may point into deleted segments, and the cursor
 *   starts at the first stored record (those delivered records are
 *   reported as dropped, as for records deleted by on_full);
 * - a reader holding a deleted segment's file open keeps its space taken:
 *   it lets go at its next hub_journal_reader_next, and deleting segments
 *   ends every hub_journal_wait early so that it gets there. */
#ifndef HUB_JOURNAL_H
#define HUB_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/buf.h"

#define HUB_JOURNAL_HEADER_SIZE 16     /* segment file header */
#define HUB_JOURNAL_FRAME_SIZE 16      /* per-record frame header */
#define HUB_JOURNAL_MAX_RECORD 1048576 /* largest payload accepted */
#define HUB_JOURNAL_MAX_CURSORS 16
#define HUB_JOURNAL_MAX_NAME 64 /* cursor name */

enum hub_journal_on_full {
    HUB_JOURNAL_DROP_OLDEST = 0,
    HUB_JOURNAL_DROP_NEWEST = 1,
};

struct hub_journal_opts {
    const char *dir;       /* created (with parents) if missing */
    uint64_t segment_size; /* rotate after this many bytes; 0 = 8 MiB */
    uint64_t max_size;     /* bound on all segments; 0 = 256 MiB */
    enum hub_journal_on_full on_full;
    bool read_only; /* inspect: no recovery cut, no appends */
    /* fdatasync every append before it returns (sync_interval 0): a power
     * cut loses nothing accepted, at one flash write per reading */
    bool sync_each;
};

struct hub_journal_stats {
    uint64_t first_seq; /* oldest record still stored */
    uint64_t next_seq;  /* seq the next append gets = records ever accepted */
    uint64_t segments;
    uint64_t bytes;         /* all segment files */
    uint64_t appends;       /* since open */
    uint64_t append_bytes;  /* frame + payload bytes written since open */
    uint64_t fsyncs;        /* since open, every fsync the journal made */
    uint64_t dropped;       /* records deleted undelivered (drop_oldest) since open */
    uint64_t disk_full;     /* appends refused (HUB_EFULL) as the file system was full */
    uint64_t recovered_cut; /* bytes cut from a torn tail at open */
    /* At open, in the newest segment: records lost to damage in the middle
     * (passed over; the records after them are kept) and their bytes. */
    uint64_t damaged_records;
    uint64_t damaged_bytes;
    uint64_t set_aside;   /* files named like segments that were not this journal's */
    uint64_t sync_failed; /* fsyncs of the active segment that failed (since open) */
    uint64_t sync_lost;   /* records lost to them: unreadable when written again */
};

typedef struct hub_journal hub_journal_t;
typedef struct hub_journal_reader hub_journal_reader_t;

/* Open (and recover) the journal. Returns HUB_OK, or an error with a message
 * naming the path in err. */
int hub_journal_open(const struct hub_journal_opts *opts, hub_journal_t **out, char *err,
                     size_t errlen);
/* Sync what is pending, persist nothing else, free everything. */
void hub_journal_close(hub_journal_t *j);

/* Append one record. Returns HUB_OK (accepted; *seq set if seq is non-NULL),
 * HUB_EINVAL (empty, larger than HUB_JOURNAL_MAX_RECORD, or a read-only
 * journal), HUB_EFULL (drop_newest and full, a full file system with nothing
 * left to free, or a record larger than the whole journal) or HUB_EIO. */
int hub_journal_append(hub_journal_t *j, const void *payload, size_t len, uint64_t *seq);

/* hub_journal_append for a payload whose first key_len bytes are its series
 * key (0: none, as hub_journal_append): stored once per segment, see the
 * series dictionary above. HUB_EINVAL also for key_len > len. */
int hub_journal_append_keyed(hub_journal_t *j, const void *payload, size_t len, size_t key_len,
                             uint64_t *seq);

/* fsync the active segment if anything was appended since the last sync.
 * Returns HUB_OK or HUB_EIO. */
int hub_journal_sync(hub_journal_t *j);

/* Wait until a record with seq >= after exists or timeout_ms passes
 * (0: check once; negative: no timeout). Returns true if one exists.
 * hub_journal_wake() ends every wait early; so does deleting segments. */
bool hub_journal_wait(hub_journal_t *j, uint64_t after, int timeout_ms);
void hub_journal_wake(hub_journal_t *j);

void hub_journal_stats(hub_journal_t *j, struct hub_journal_stats *st);

/* Cursors. hub_journal_cursor_open registers name and returns its persisted
 * seq (the first stored seq for a new cursor, or when the stored one was
 * dropped). hub_journal_cursor_commit persists seq durably and deletes
 * segments no cursor needs; it returns HUB_EINVAL for a seq past next_seq,
 * or HUB_EIO when the file could not be written (the cursor moved in memory
 * and the segments were deleted even so).
 * hub_journal_cursor_peek returns HUB_EEMPTY when there is no cursor file and
 * HUB_ECORRUPT when it fails its check. Names are [A-Za-z0-9_.-]+. */
int hub_journal_cursor_open(hub_journal_t *j, const char *name, uint64_t *seq);
int hub_journal_cursor_commit(hub_journal_t *j, const char *name, uint64_t seq);
/* Unregister name (an output the configuration no longer has): it holds
 * no segment from then on, as a cursor file no running output opened at
 * start; its file stays, so that the output, configured again, resumes
 * where it was (or at the oldest stored record if that was dropped).
 * Segments every remaining cursor has passed are deleted. Returns HUB_OK,
 * HUB_EEMPTY (not registered) or HUB_EINVAL. */
int hub_journal_cursor_close(hub_journal_t *j, const char *name);
/* The one name rule of cursors (and so of outputs, whose cursor carries
 * their name): 1 to HUB_JOURNAL_MAX_NAME - 1 characters of [A-Za-z0-9_.-],
 * not starting with ".". Returns 0, or -1 with a message in err (if not
 * NULL). */
int hub_journal_check_name(const char *name, char *err, size_t errlen);
/* Read a persisted cursor without registering it (inspection). */
int hub_journal_cursor_peek(hub_journal_t *j, const char *name, uint64_t *seq);

/* Readers walk records from a seq onwards, across segments. */
int hub_journal_reader_new(hub_journal_t *j, uint64_t from_seq, hub_journal_reader_t **out);
void hub_journal_reader_free(hub_journal_reader_t *rd);
/* Read the next record into payload (reset first; give it a cap of
 * HUB_JOURNAL_MAX_RECORD, a smaller one gets HUB_EFULL and the reader does
 * not advance). *skipped is added to, not set; it may be NULL.
 * Returns HUB_OK with *seq,
 * HUB_EEMPTY when caught up, HUB_ECORRUPT when a segment has a bad record
 * (the reader then moves on to the next valid record of the segment, or to
 * the next segment when there is none; *skipped tells how many seqs were
 * passed over; logged), or HUB_EIO. If records the reader wanted were
 * dropped, it moves to the first stored one and adds the gap to *skipped;
 * records missing between segments (a file deleted from outside) are
 * passed over the same way, and logged. */
int hub_journal_reader_next(hub_journal_reader_t *rd, struct hub_buf *payload, uint64_t *seq,
                            uint64_t *skipped);

#endif
