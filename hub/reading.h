/* hub/reading.h — one reading: measurement, sorted tags, typed fields and the
 * acquisition timestamp (ns since the Unix epoch, UTC), fixed at acquisition.
 *
 * A reading owns copies of every string given to it. Tags are kept sorted by
 * key (byte order), as the line protocol and the store's series keys want; a
 * second tag with the same key replaces the first. Fields keep the order they
 * were added in; a second field with the same key is an error. */
#ifndef HUB_READING_H
#define HUB_READING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/buf.h"

#define HUB_READING_MAX_TAGS 32
#define HUB_READING_MAX_FIELDS 64
#define HUB_READING_MAX_NAME 255      /* measurement, tag and field keys, tag values */
#define HUB_READING_MAX_STRING 4096   /* a string field's value */
#define HUB_READING_MAX_ENCODED 65536 /* hub_reading_encode's largest output */
#define HUB_READING_BOOT_ID 16        /* bytes of a boot id (hub_reading_set_boottime) */

enum hub_field_type {
    HUB_FIELD_INT = 1,
    HUB_FIELD_UINT = 2,
    HUB_FIELD_FLOAT = 3,
    HUB_FIELD_BOOL = 4,
    HUB_FIELD_STRING = 5,
};

struct hub_tag {
    const char *key;
    const char *value;
};

struct hub_field {
    const char *key;
    enum hub_field_type type;
    union {
        int64_t i;
        uint64_t u;
        double f;
        bool b;
        const char *s;
    } v;
};

typedef struct hub_reading hub_reading_t;

/* Returns NULL if out of memory or if measurement is empty or too long. */
hub_reading_t *hub_reading_new(const char *measurement, int64_t time_ns);
void hub_reading_free(hub_reading_t *r);

/* Each returns HUB_OK, HUB_EINVAL (empty/too-long key or value, NaN or
 * infinite float, duplicate field) or HUB_EFULL (too many tags/fields). */
int hub_reading_add_tag(hub_reading_t *r, const char *key, const char *value);
int hub_reading_add_int(hub_reading_t *r, const char *key, int64_t v);
int hub_reading_add_uint(hub_reading_t *r, const char *key, uint64_t v);
int hub_reading_add_float(hub_reading_t *r, const char *key, double v);
int hub_reading_add_bool(hub_reading_t *r, const char *key, bool v);
int hub_reading_add_string(hub_reading_t *r, const char *key, const char *v);

const char *hub_reading_measurement(const hub_reading_t *r);
int64_t hub_reading_time(const hub_reading_t *r);

/* A reading taken while the wall clock was not trusted (hub/clocktrust.h)
 * has its time on the monotonic clock of one boot of the board: boot_ns of
 * CLOCK_BOOTTIME, and boot, the HUB_READING_BOOT_ID bytes of that boot's id.
 * hub_reading_set_boottime marks r so (its binary form grows by
 * HUB_READING_BOOT_ID bytes; HUB_EFULL, r unchanged, when that would make it
 * larger than HUB_READING_MAX_ENCODED; else HUB_OK); hub_reading_boottime says whether r is so
 * marked and copies the boot id to boot (if not NULL); hub_reading_set_time sets a wall-clock time
 * and clears the mark (re-stamping). */
int hub_reading_set_boottime(hub_reading_t *r, int64_t boot_ns, const uint8_t *boot);
bool hub_reading_boottime(const hub_reading_t *r, uint8_t *boot);
void hub_reading_set_time(hub_reading_t *r, int64_t time_ns);

size_t hub_reading_tag_count(const hub_reading_t *r);
const struct hub_tag *hub_reading_tag(const hub_reading_t *r, size_t i);
/* The value of tag key, or NULL. */
const char *hub_reading_tag_value(const hub_reading_t *r, const char *key);
size_t hub_reading_field_count(const hub_reading_t *r);
const struct hub_field *hub_reading_field(const hub_reading_t *r, size_t i);

/* Append the reading's compact binary form (the journal's record payload) to
 * out. Returns HUB_OK or HUB_EFULL/HUB_ENOMEM from the buffer (out is then
 * left as it was). */
int hub_reading_encode(const hub_reading_t *r, struct hub_buf *out);

/* The exact length of the reading's binary form (at most
 * HUB_READING_MAX_ENCODED). */
size_t hub_reading_encoded_size(const hub_reading_t *r);

/* Write the binary form to dst, which has room for cap bytes. Returns its
 * length, hub_reading_encoded_size(r); or 0, writing nothing, when cap is
 * less than that. */
size_t hub_reading_encode_to(const hub_reading_t *r, uint8_t *dst, size_t cap);

/* hub_reading_encode_to, also setting *key_len (if not NULL) to the length
 * of the series key the binary form starts with: everything but the
 * timestamp and the field values (measurement, tags, field keys and types).
 * Two readings of one series have the same key bytes; the journal stores
 * them once per segment (hub_journal_append_keyed). */
size_t hub_reading_encode_keyed(const hub_reading_t *r, uint8_t *dst, size_t cap, size_t *key_len);

/* Parse bytes made by hub_reading_encode (or by a cityhub before the
 * binary form's version 2: journals keep them). Returns HUB_OK and a new reading in
 * *out, or HUB_EINVAL for any malformed input (never reads past n). */
int hub_reading_decode(const uint8_t *p, size_t n, hub_reading_t **out);

/* hub_reading_decode, reusing the memory of spare: a reading no longer
 * wanted (or NULL), which this takes whatever the outcome: it becomes *out
 * when its memory suits the record, else it is freed. For a loop that frees
 * readings and decodes others (hub/output.c): fewer mallocs, and memory that
 * stays in use rather than going back to the system and faulting in again
 * with every batch. */
int hub_reading_decode_into(hub_reading_t *spare, const uint8_t *p, size_t n, hub_reading_t **out);

#endif
