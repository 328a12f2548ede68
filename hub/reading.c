/* hub/reading.c — the reading model and its compact binary form.
 *
 * Memory: a reading is one heap block: the struct, then room for a few tags
 * and fields (the arrays) and a text area from which every string the
 * reading owns (measurement, keys, tag values, string field values) is
 * carved, NUL-terminated. hub_reading_new sizes the block for a typical
 * poll (INLINE_TAGS, INLINE_FIELDS, INLINE_TEXT); hub_reading_decode sizes
 * it exactly. When an array outgrows the block it moves to a heap array of
 * the maximum size; when the text area is used up, more text comes from
 * chunks of CHUNK_MIN bytes (or the string's size) chained to the reading.
 * A tag value that replaces another is a malloc of its own (bit in
 * tag_heap), so replacing a tag again and again does not grow the reading.
 * One malloc and one free for a reading of 20 fields, instead of one per
 * string. hub_reading_decode_into decodes into the block of a reading that
 * is no longer wanted, when it is large enough and not much too large (new
 * blocks for it are rounded up to REUSE_ROUND, so that the next record of
 * much the same size fits).
 *
 * Duplicate field keys are found with a small open-addressing hash table
 * (slot: field index + 1) that is never more than half full, so an add costs
 * O(1) key comparisons instead of one per field already there; decode uses
 * the same table. Key lengths are kept (they are at most 255: one byte), so
 * comparisons and the encoder need no strlen.
 *
 * The reading also tracks its exact encoded size, so an add that would make
 * the reading larger than HUB_READING_MAX_ENCODED is refused (HUB_EFULL) and
 * every reading that exists can be encoded.
 *
 * Binary form, version 2 (all integers little-endian): first the series
 * KEY, everything that repeats from one reading of a series to the next,
 * then its VALUES:
 *
 *     KEY     version      1 byte, = 2
 *             measurement  varint len, bytes
 *             ntags        varint; then per tag: varint klen, key, varint vlen, value
 *             nfields      varint; then per field: varint klen, key, type (1 byte)
 *     VALUES  time_ns      8 bytes, two's complement
 *             per field, in the order of KEY:
 *                    INT    zigzag varint
 *                    UINT   varint
 *                    FLOAT  8 bytes IEEE-754 binary64
 *                    BOOL   1 byte, 0 or 1
 *                    STRING varint len, bytes
 *
 * Version 3 is version 2 with the reading's time on the monotonic clock of
 * one boot of the board (hub_reading_set_boottime): KEY has the 16 bytes of
 * that boot's id right after the version byte (= 3), and time_ns counts
 * CLOCK_BOOTTIME of that boot. Only such readings are written as version 3;
 * re-stamping one (hub_reading_set_time) makes it version 2 again.
 *
 * hub_reading_encode_keyed reports where KEY ends, so that the journal can
 * store a series' KEY once per segment (hub/journal.h). Version 1, which
 * journals written before version 2 still hold, has the same parts
 * interleaved: version (= 1), measurement, time_ns, tags, then per field
 * klen, key, type, value. Decode reads both; encode writes version 2 only.
 * Both versions of a reading have the same length.
 *
 * Varints are LEB128 and must be minimal (no trailing 0x80..0x00 padding), so
 * every reading has exactly one encoding: decode(b) succeeding for a
 * version 2 b implies encode(decode(b)) == b.
 *
 * Decode checks everything the adds check (lengths against the input and the
 * limits, names, NUL bytes, types, finite floats, sorted unique tags, unique
 * field keys): journal records can be corrupt on disk, and a reading that
 * decodes is one that could have been built. */
#include "hub/reading.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define READING_VERSION 2
#define READING_VERSION_1 1    /* the interleaved layout: decoded, never written */
#define READING_VERSION_BOOT 3 /* version 2 with a boot id: time on that boot's clock */

#define INLINE_TAGS 8     /* tags in the block of hub_reading_new */
#define INLINE_FIELDS 24  /* fields in the block of hub_reading_new */
#define INLINE_TEXT 512   /* text bytes in the block of hub_reading_new */
#define CHUNK_MIN 1024    /* smallest text chunk after the block's */
#define SLOTS 128         /* field-key hash table: >= 2 * HUB_READING_MAX_FIELDS, power of 2 */
#define ENCODE_STACK 1024 /* hub_reading_encode: readings up to this encode via the stack */
#define REUSE_ROUND 256   /* hub_reading_decode_into: new blocks rounded up to this */
#define REUSE_SLACK 1024  /* ... and a spare is used if at most 2x + this too large */

struct chunk {
    struct chunk *next; /* its text bytes follow */
};

struct hub_reading {
    char *measurement;
    int64_t time_ns;
    size_t enc_size; /* exact length of hub_reading_encode's output */
    size_t ntags, tag_cap;
    size_t nfields, field_cap;
    struct hub_tag *tags;     /* sorted by key, unique keys */
    struct hub_field *fields; /* insertion order, unique keys */
    char *text, *text_end;    /* the free part of the current text area */
    struct chunk *chunks;     /* text areas allocated after the block's */
    uint32_t tag_heap;        /* bit i: tags[i].value is a malloc of its own */
    bool tags_heap;           /* tags is a malloc of its own (else in the block) */
    bool fields_heap;         /* fields likewise */
    uint8_t mlen;
    bool boottime;                     /* time_ns is CLOCK_BOOTTIME of boot */
    uint8_t boot[HUB_READING_BOOT_ID]; /* when boottime */
    size_t area;                       /* bytes of the block after the struct */
    uint8_t tag_klen[HUB_READING_MAX_TAGS];
    uint8_t tag_vlen[HUB_READING_MAX_TAGS];
    uint8_t field_klen[HUB_READING_MAX_FIELDS];
    uint8_t slot[SLOTS]; /* field index + 1 at the key's hash (linear probing), 0 free */
    /* the block's tags, fields and text follow */
};

_Static_assert(HUB_READING_MAX_NAME <= UINT8_MAX, "name lengths are kept in one byte");
_Static_assert(HUB_READING_MAX_TAGS <= 32, "tag_heap has a bit per tag");
_Static_assert(SLOTS >= 2 * HUB_READING_MAX_FIELDS && (SLOTS & (SLOTS - 1)) == 0,
               "the hash table stays at most half full");
_Static_assert(HUB_READING_MAX_FIELDS < 255, "slots hold index + 1 in a byte");

/* ---- helpers ------------------------------------------------------------ */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* Bytes a string of len takes in the encoding: varint length + bytes. */
static size_t str_enc(size_t len)
{
    return varint_len(len) + len;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static bool name_ok(size_t len)
{
    return len >= 1 && len <= HUB_READING_MAX_NAME;
}

static size_t field_value_enc(const struct hub_field *f, size_t slen)
{
    switch (f->type) {
    case HUB_FIELD_INT:
        return varint_len(zigzag(f->v.i));
    case HUB_FIELD_UINT:
        return varint_len(f->v.u);
    case HUB_FIELD_FLOAT:
        return 8;
    case HUB_FIELD_BOOL:
        return 1;
    case HUB_FIELD_STRING:
        return str_enc(slen);
    }
    return 0;
}

/* Byte-order comparison of two keys of known lengths. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

/* A hash of a key of n >= 1 bytes: whole words, then the (overlapping) tail.
 * Only spreads keys over the slots; equal hashes are compared in full. */
static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = (uint64_t)n * 0x9e3779b97f4a7c15ULL;
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8)
            h = mix(h ^ load64(k + i));
        if (i < n)
            h = mix(h ^ load64(k + n - 8));
    } else if (n >= 4) {
        h = mix(h ^ ((uint64_t)load32(k) << 32 | load32(k + n - 4)));
    } else {
        h = mix(h ^ ((uint64_t)(uint8_t)k[0] << 16 | (uint64_t)(uint8_t)k[n / 2] << 8 |
                     (uint8_t)k[n - 1]));
    }
    return h;
}

/* Look key up in a field table (slot, keys of fields[], their lengths).
 * Returns true if it is there; else *free_slot is where it goes. */
static bool slot_find(const uint8_t *slot, const struct hub_field *fields, const uint8_t *klen,
                      const char *k, size_t n, size_t *free_slot)
{
    size_t i = (size_t)key_hash(k, n) & (SLOTS - 1);
    for (; slot[i]; i = (i + 1) & (SLOTS - 1)) {
        size_t j = slot[i] - 1u;
        if (klen[j] == n && memcmp(fields[j].key, k, n) == 0)
            return true;
    }
    *free_slot = i;
    return false;
}

/* The type and value of f are acceptable (slen: a string value's length). */
static bool field_value_ok(const struct hub_field *f, size_t slen)
{
    switch (f->type) {
    case HUB_FIELD_INT:
    case HUB_FIELD_UINT:
    case HUB_FIELD_BOOL:
        return true;
    case HUB_FIELD_FLOAT:
        return isfinite(f->v.f);
    case HUB_FIELD_STRING:
        return f->v.s && slen <= HUB_READING_MAX_STRING;
    }
    return false;
}

/* ---- memory ------------------------------------------------------------- */

/* Lay out an empty reading in r's block (r->area bytes after the struct):
 * tcap tags, fcap fields, the rest text. The measurement is not yet set. */
static void block_init(hub_reading_t *r, size_t tcap, size_t fcap)
{
    r->measurement = NULL;
    r->time_ns = 0;
    r->boottime = false;
    r->enc_size = 0;
    r->ntags = r->nfields = 0;
    r->tag_cap = tcap;
    r->field_cap = fcap;
    r->tags = (struct hub_tag *)(r + 1);
    r->fields = (struct hub_field *)(r->tags + tcap);
    r->text = (char *)(r->fields + fcap);
    r->text_end = (char *)(r + 1) + r->area;
    r->chunks = NULL;
    r->tag_heap = 0;
    r->tags_heap = r->fields_heap = false;
    r->mlen = 0;
    memset(r->slot, 0, sizeof(r->slot));
}

static size_t arrays_size(size_t tcap, size_t fcap)
{
    return tcap * sizeof(struct hub_tag) + fcap * sizeof(struct hub_field);
}

/* A new reading in one block of area bytes after the struct, laid out for
 * tcap tags and fcap fields. */
static hub_reading_t *block_new(size_t area, size_t tcap, size_t fcap)
{
    hub_reading_t *r = malloc(sizeof(*r) + area);
    if (!r)
        return NULL;
    r->area = area;
    block_init(r, tcap, fcap);
    return r;
}

/* Give back what r holds besides its block. */
static void release_extras(hub_reading_t *r)
{
    for (uint32_t m = r->tag_heap; m; m &= m - 1)
        free((char *)r->tags[__builtin_ctz(m)].value);
    if (r->tags_heap)
        free(r->tags);
    if (r->fields_heap)
        free(r->fields);
    for (struct chunk *c = r->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

/* n bytes of text owned by r, or NULL if out of memory. */
static char *text_alloc(hub_reading_t *r, size_t n)
{
    if ((size_t)(r->text_end - r->text) < n) {
        size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
        struct chunk *c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = r->chunks;
        r->chunks = c;
        r->text = (char *)(c + 1);
        r->text_end = r->text + size;
    }
    char *p = r->text;
    r->text += n;
    return p;
}

static char *text_dup(hub_reading_t *r, const char *s, size_t n)
{
    char *p = text_alloc(r, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Make room for one more tag / field: past the block's room, the array moves
 * to a heap array of the maximum size (it never moves again). */
static int tags_room(hub_reading_t *r)
{
    if (r->ntags < r->tag_cap)
        return HUB_OK;
    struct hub_tag *t = malloc(HUB_READING_MAX_TAGS * sizeof(*t));
    if (!t)
        return HUB_ENOMEM;
    if (r->ntags)
        memcpy(t, r->tags, r->ntags * sizeof(*t));
    if (r->tags_heap)
        free(r->tags);
    r->tags = t;
    r->tag_cap = HUB_READING_MAX_TAGS;
    r->tags_heap = true;
    return HUB_OK;
}

static int fields_room(hub_reading_t *r)
{
    if (r->nfields < r->field_cap)
        return HUB_OK;
    struct hub_field *f = malloc(HUB_READING_MAX_FIELDS * sizeof(*f));
    if (!f)
        return HUB_ENOMEM;
    if (r->nfields)
        memcpy(f, r->fields, r->nfields * sizeof(*f));
    if (r->fields_heap)
        free(r->fields);
    r->fields = f;
    r->field_cap = HUB_READING_MAX_FIELDS;
    r->fields_heap = true;
    return HUB_OK;
}

/* ---- construction ------------------------------------------------------- */

hub_reading_t *hub_reading_new(const char *measurement, int64_t time_ns)
{
    if (!measurement)
        return NULL;
    size_t mlen = strnlen(measurement, HUB_READING_MAX_NAME + 1);
    if (!name_ok(mlen))
        return NULL;
    hub_reading_t *r = block_new(arrays_size(INLINE_TAGS, INLINE_FIELDS) + INLINE_TEXT, INLINE_TAGS,
                                 INLINE_FIELDS);
    if (!r)
        return NULL;
    r->measurement = text_dup(r, measurement, mlen); /* fits: INLINE_TEXT > 256 */
    r->mlen = (uint8_t)mlen;
    r->time_ns = time_ns;
    /* version + measurement + time + ntags (1 byte: <= 32) + nfields (1 byte: <= 64) */
    r->enc_size = 1 + str_enc(mlen) + 8 + 1 + 1;
    return r;
}

void hub_reading_free(hub_reading_t *r)
{
    if (!r)
        return;
    release_extras(r);
    free(r);
}

static int add_tag_n(hub_reading_t *r, const char *k, size_t klen, const char *v, size_t vlen)
{
    if (!r || !k || !v || !name_ok(klen) || !name_ok(vlen))
        return HUB_EINVAL;
    /* Find the insertion point (first key >= k); the array is sorted. */
    size_t pos = 0;
    int c = 1;
    while (pos < r->ntags && (c = key_cmp(k, klen, r->tags[pos].key, r->tag_klen[pos])) > 0)
        pos++;
    if (pos < r->ntags && c == 0) { /* same key: replace the value */
        size_t size = r->enc_size - str_enc(r->tag_vlen[pos]) + str_enc(vlen);
        if (size > HUB_READING_MAX_ENCODED)
            return HUB_EFULL;
        char *nv = dup_n(v, vlen);
        if (!nv)
            return HUB_ENOMEM;
        if (r->tag_heap & (1u << pos))
            free((char *)r->tags[pos].value);
        r->tag_heap |= 1u << pos;
        r->tags[pos].value = nv;
        r->tag_vlen[pos] = (uint8_t)vlen;
        r->enc_size = size;
        return HUB_OK;
    }
    size_t size = r->enc_size + str_enc(klen) + str_enc(vlen);
    if (r->ntags >= HUB_READING_MAX_TAGS || size > HUB_READING_MAX_ENCODED)
        return HUB_EFULL;
    if (tags_room(r))
        return HUB_ENOMEM;
    char *nk = text_dup(r, k, klen);
    char *nv = nk ? text_dup(r, v, vlen) : NULL;
    if (!nv)
        return HUB_ENOMEM; /* what text was taken stays with r, unused */
    size_t after = r->ntags - pos;
    memmove(&r->tags[pos + 1], &r->tags[pos], after * sizeof(*r->tags));
    memmove(&r->tag_klen[pos + 1], &r->tag_klen[pos], after);
    memmove(&r->tag_vlen[pos + 1], &r->tag_vlen[pos], after);
    uint32_t low = (1u << pos) - 1; /* pos < 32 */
    r->tag_heap = (r->tag_heap & low) | ((r->tag_heap & ~low) << 1);
    r->tags[pos].key = nk;
    r->tags[pos].value = nv;
    r->tag_klen[pos] = (uint8_t)klen;
    r->tag_vlen[pos] = (uint8_t)vlen;
    r->ntags++;
    r->enc_size = size;
    return HUB_OK;
}

int hub_reading_add_tag(hub_reading_t *r, const char *key, const char *value)
{
    if (!key || !value)
        return HUB_EINVAL;
    return add_tag_n(r, key, strnlen(key, HUB_READING_MAX_NAME + 1), value,
                     strnlen(value, HUB_READING_MAX_NAME + 1));
}

/* Add field f (key and string value not yet owned: klen/slen bytes at f->key
 * and f->v.s). Validates everything the header promises. */
static int add_field_n(hub_reading_t *r, struct hub_field f, size_t klen, size_t slen)
{
    if (!r || !f.key || !name_ok(klen) || !field_value_ok(&f, slen))
        return HUB_EINVAL;
    size_t at;
    if (slot_find(r->slot, r->fields, r->field_klen, f.key, klen, &at))
        return HUB_EINVAL; /* duplicate */
    size_t size = r->enc_size + str_enc(klen) + 1 + field_value_enc(&f, slen);
    if (r->nfields >= HUB_READING_MAX_FIELDS || size > HUB_READING_MAX_ENCODED)
        return HUB_EFULL;
    if (fields_room(r))
        return HUB_ENOMEM;
    const char *nk = text_dup(r, f.key, klen);
    if (!nk)
        return HUB_ENOMEM;
    if (f.type == HUB_FIELD_STRING) {
        const char *ns = text_dup(r, f.v.s, slen);
        if (!ns)
            return HUB_ENOMEM;
        f.v.s = ns;
    }
    f.key = nk;
    r->slot[at] = (uint8_t)(r->nfields + 1);
    r->field_klen[r->nfields] = (uint8_t)klen;
    r->fields[r->nfields++] = f;
    r->enc_size = size;
    return HUB_OK;
}

static size_t key_len(const char *key)
{
    return key ? strnlen(key, HUB_READING_MAX_NAME + 1) : 0;
}

int hub_reading_add_int(hub_reading_t *r, const char *key, int64_t v)
{
    struct hub_field f = {.key = key, .type = HUB_FIELD_INT, .v.i = v};
    return add_field_n(r, f, key_len(key), 0);
}

int hub_reading_add_uint(hub_reading_t *r, const char *key, uint64_t v)
{
    struct hub_field f = {.key = key, .type = HUB_FIELD_UINT, .v.u = v};
    return add_field_n(r, f, key_len(key), 0);
}

int hub_reading_add_float(hub_reading_t *r, const char *key, double v)
{
    struct hub_field f = {.key = key, .type = HUB_FIELD_FLOAT, .v.f = v};
    return add_field_n(r, f, key_len(key), 0);
}

int hub_reading_add_bool(hub_reading_t *r, const char *key, bool v)
{
    struct hub_field f = {.key = key, .type = HUB_FIELD_BOOL, .v.b = v};
    return add_field_n(r, f, key_len(key), 0);
}

int hub_reading_add_string(hub_reading_t *r, const char *key, const char *v)
{
    if (!v)
        return HUB_EINVAL;
    struct hub_field f = {.key = key, .type = HUB_FIELD_STRING, .v.s = v};
    return add_field_n(r, f, key_len(key), strnlen(v, HUB_READING_MAX_STRING + 1));
}

/* ---- accessors ---------------------------------------------------------- */

const char *hub_reading_measurement(const hub_reading_t *r)
{
    return r->measurement;
}

int64_t hub_reading_time(const hub_reading_t *r)
{
    return r->time_ns;
}

int hub_reading_set_boottime(hub_reading_t *r, int64_t boot_ns, const uint8_t *boot)
{
    if (!r->boottime) {
        if (r->enc_size > HUB_READING_MAX_ENCODED - HUB_READING_BOOT_ID)
            return HUB_EFULL;
        r->enc_size += HUB_READING_BOOT_ID;
    }
    r->boottime = true;
    memcpy(r->boot, boot, HUB_READING_BOOT_ID);
    r->time_ns = boot_ns;
    return HUB_OK;
}

bool hub_reading_boottime(const hub_reading_t *r, uint8_t *boot)
{
    if (r->boottime && boot)
        memcpy(boot, r->boot, HUB_READING_BOOT_ID);
    return r->boottime;
}

void hub_reading_set_time(hub_reading_t *r, int64_t time_ns)
{
    if (r->boottime)
        r->enc_size -= HUB_READING_BOOT_ID;
    r->boottime = false;
    r->time_ns = time_ns;
}

size_t hub_reading_tag_count(const hub_reading_t *r)
{
    return r->ntags;
}

const struct hub_tag *hub_reading_tag(const hub_reading_t *r, size_t i)
{
    return i < r->ntags ? &r->tags[i] : NULL;
}

const char *hub_reading_tag_value(const hub_reading_t *r, const char *key)
{
    if (!key)
        return NULL;
    size_t lo = 0, hi = r->ntags;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, r->tags[mid].key);
        if (c == 0)
            return r->tags[mid].value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t hub_reading_field_count(const hub_reading_t *r)
{
    return r->nfields;
}

const struct hub_field *hub_reading_field(const hub_reading_t *r, size_t i)
{
    return i < r->nfields ? &r->fields[i] : NULL;
}

/* ---- encode ------------------------------------------------------------- */

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_u64le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, sizeof(v));
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
    return p + 8;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

size_t hub_reading_encoded_size(const hub_reading_t *r)
{
    return r->enc_size;
}

size_t hub_reading_encode_keyed(const hub_reading_t *r, uint8_t *dst, size_t cap, size_t *key_len)
{
    if (cap < r->enc_size)
        return 0;
    uint8_t *p = dst;
    *p++ = r->boottime ? READING_VERSION_BOOT : READING_VERSION;
    if (r->boottime) {
        memcpy(p, r->boot, HUB_READING_BOOT_ID);
        p += HUB_READING_BOOT_ID;
    }
    p = put_str(p, r->measurement, r->mlen);
    *p++ = (uint8_t)r->ntags; /* < 0x80: one varint byte */
    for (size_t i = 0; i < r->ntags; i++) {
        p = put_str(p, r->tags[i].key, r->tag_klen[i]);
        p = put_str(p, r->tags[i].value, r->tag_vlen[i]);
    }
    *p++ = (uint8_t)r->nfields; /* < 0x80 */
    for (size_t i = 0; i < r->nfields; i++) {
        p = put_str(p, r->fields[i].key, r->field_klen[i]);
        *p++ = (uint8_t)r->fields[i].type;
    }
    if (key_len)
        *key_len = (size_t)(p - dst);
    p = put_u64le(p, (uint64_t)r->time_ns);
    for (size_t i = 0; i < r->nfields; i++) {
        const struct hub_field *f = &r->fields[i];
        switch (f->type) {
        case HUB_FIELD_INT:
            p = put_varint(p, zigzag(f->v.i));
            break;
        case HUB_FIELD_UINT:
            p = put_varint(p, f->v.u);
            break;
        case HUB_FIELD_FLOAT: {
            uint64_t bits;
            memcpy(&bits, &f->v.f, sizeof(bits));
            p = put_u64le(p, bits);
            break;
        }
        case HUB_FIELD_BOOL:
            *p++ = f->v.b ? 1 : 0;
            break;
        case HUB_FIELD_STRING:
            p = put_str(p, f->v.s, strlen(f->v.s));
            break;
        }
    }
    return (size_t)(p - dst); /* == r->enc_size */
}

size_t hub_reading_encode_to(const hub_reading_t *r, uint8_t *dst, size_t cap)
{
    return hub_reading_encode_keyed(r, dst, cap, NULL);
}

int hub_reading_encode(const hub_reading_t *r, struct hub_buf *out)
{
    size_t n = r->enc_size;
    /* Fail early, before writing anything, when the whole cannot fit. */
    if (n > out->cap || out->len > out->cap - n)
        return HUB_EFULL;
    uint8_t small[ENCODE_STACK];
    uint8_t *tmp = n <= sizeof(small) ? small : malloc(n);
    if (!tmp)
        return HUB_ENOMEM;
    int rc = hub_buf_add(out, tmp, hub_reading_encode_to(r, tmp, n)); /* all or nothing */
    if (tmp != small)
        free(tmp);
    return rc;
}

/* ---- decode ------------------------------------------------------------- */

struct rd {
    const uint8_t *p;
    size_t n, off;
};

/* Minimal LEB128 of at most 64 bits. */
static int get_varint(struct rd *d, uint64_t *v)
{
    if (d->off < d->n && d->p[d->off] < 0x80) { /* the common one-byte case */
        *v = d->p[d->off++];
        return HUB_OK;
    }
    uint64_t x = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (d->off >= d->n)
            return HUB_EINVAL;
        uint8_t b = d->p[d->off++];
        if (i == 9 && b > 1) /* the 10th byte holds only bit 63 */
            return HUB_EINVAL;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0) /* non-minimal: trailing zero group */
                return HUB_EINVAL;
            *v = x;
            return HUB_OK;
        }
    }
    return HUB_EINVAL;
}

static int get_u64le(struct rd *d, uint64_t *v)
{
    if (d->n - d->off < 8)
        return HUB_EINVAL;
    uint64_t x = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&x, d->p + d->off, sizeof(x));
#else
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)d->p[d->off + (size_t)i] << (8 * i);
#endif
    d->off += 8;
    *v = x;
    return HUB_OK;
}

/* A string of at most max bytes, no NUL inside; *s points into the input. */
static int get_str(struct rd *d, size_t max, const char **s, size_t *len)
{
    uint64_t n;
    if (get_varint(d, &n) || n > max || n > d->n - d->off)
        return HUB_EINVAL;
    const char *p = (const char *)d->p + d->off;
    if (memchr(p, 0, (size_t)n))
        return HUB_EINVAL;
    *s = p;
    *len = (size_t)n;
    d->off += (size_t)n;
    return HUB_OK;
}

/* A name: 1..HUB_READING_MAX_NAME bytes. */
static int get_name(struct rd *d, const char **s, size_t *len)
{
    return get_str(d, HUB_READING_MAX_NAME, s, len) || *len == 0 ? HUB_EINVAL : HUB_OK;
}

/* What decode parsed, pointing into the input, before it is copied. */
struct parsed {
    const char *m;
    size_t mlen;
    int64_t time_ns;
    const uint8_t *boot; /* version 3: the boot id; else NULL */
    size_t ntags, nfields;
    size_t text; /* bytes of all strings, NULs included */
    struct hub_tag tags[HUB_READING_MAX_TAGS];
    uint8_t tag_klen[HUB_READING_MAX_TAGS], tag_vlen[HUB_READING_MAX_TAGS];
    struct hub_field fields[HUB_READING_MAX_FIELDS];
    uint8_t field_klen[HUB_READING_MAX_FIELDS];
    uint16_t slen[HUB_READING_MAX_FIELDS]; /* a string value's length */
    uint8_t slot[SLOTS];
};

_Static_assert(HUB_READING_MAX_STRING <= UINT16_MAX, "string lengths are kept in two bytes");

/* The value of field f, of type f->type (checked by the caller). */
static int parse_value(struct rd *d, struct parsed *ps, size_t i)
{
    struct hub_field *f = &ps->fields[i];
    uint64_t u;
    size_t slen = 0;
    switch (f->type) {
    case HUB_FIELD_INT:
        if (get_varint(d, &u))
            return HUB_EINVAL;
        f->v.i = unzigzag(u);
        break;
    case HUB_FIELD_UINT:
        if (get_varint(d, &f->v.u))
            return HUB_EINVAL;
        break;
    case HUB_FIELD_FLOAT:
        if (get_u64le(d, &u))
            return HUB_EINVAL;
        memcpy(&f->v.f, &u, sizeof(u));
        if (!isfinite(f->v.f))
            return HUB_EINVAL;
        break;
    case HUB_FIELD_BOOL:
        if (d->off >= d->n || d->p[d->off] > 1)
            return HUB_EINVAL;
        f->v.b = d->p[d->off++] == 1;
        break;
    case HUB_FIELD_STRING:
        if (get_str(d, HUB_READING_MAX_STRING, &f->v.s, &slen))
            return HUB_EINVAL;
        ps->text += slen + 1;
        break;
    }
    ps->slen[i] = (uint16_t)slen;
    return HUB_OK;
}

/* The fields: count, then per field key and type, and (version 1) its
 * value right after them, or (version 2) the time and then the values. */
static int parse_fields(struct rd *d, struct parsed *ps, bool v1)
{
    uint64_t count, u;
    if (get_varint(d, &count) || count > HUB_READING_MAX_FIELDS)
        return HUB_EINVAL;
    memset(ps->slot, 0, sizeof(ps->slot));
    for (size_t i = 0; i < count; i++) {
        struct hub_field *f = &ps->fields[i];
        size_t klen;
        if (get_name(d, &f->key, &klen) || d->off >= d->n)
            return HUB_EINVAL;
        uint8_t type = d->p[d->off++];
        if (type < HUB_FIELD_INT || type > HUB_FIELD_STRING)
            return HUB_EINVAL;
        f->type = (enum hub_field_type)type;
        if (v1 && parse_value(d, ps, i))
            return HUB_EINVAL;
        size_t at;
        if (slot_find(ps->slot, ps->fields, ps->field_klen, f->key, klen, &at))
            return HUB_EINVAL; /* duplicate key */
        ps->slot[at] = (uint8_t)(i + 1);
        ps->field_klen[i] = (uint8_t)klen;
        ps->text += klen + 1;
        ps->nfields = i + 1;
    }
    if (v1)
        return HUB_OK;
    if (get_u64le(d, &u))
        return HUB_EINVAL;
    ps->time_ns = (int64_t)u;
    for (size_t i = 0; i < ps->nfields; i++)
        if (parse_value(d, ps, i))
            return HUB_EINVAL;
    return HUB_OK;
}

static int parse(const uint8_t *p, size_t n, struct parsed *ps)
{
    struct rd d = {.p = p, .n = n, .off = 1};
    bool v1 = p[0] == READING_VERSION_1;
    uint64_t u, count;
    ps->boot = NULL;
    if (p[0] == READING_VERSION_BOOT) {
        if (n - d.off < HUB_READING_BOOT_ID)
            return HUB_EINVAL;
        ps->boot = p + d.off;
        d.off += HUB_READING_BOOT_ID;
    }
    if (get_name(&d, &ps->m, &ps->mlen))
        return HUB_EINVAL;
    if (v1) {
        if (get_u64le(&d, &u))
            return HUB_EINVAL;
        ps->time_ns = (int64_t)u;
    }
    ps->text = ps->mlen + 1;
    ps->ntags = ps->nfields = 0;
    if (get_varint(&d, &count) || count > HUB_READING_MAX_TAGS)
        return HUB_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const char *k, *v;
        size_t klen, vlen;
        if (get_name(&d, &k, &klen) || get_name(&d, &v, &vlen))
            return HUB_EINVAL;
        /* Strictly ascending keys: sorted and unique. */
        if (i > 0 && key_cmp(k, klen, ps->tags[i - 1].key, ps->tag_klen[i - 1]) <= 0)
            return HUB_EINVAL;
        ps->tags[i].key = k;
        ps->tags[i].value = v;
        ps->tag_klen[i] = (uint8_t)klen;
        ps->tag_vlen[i] = (uint8_t)vlen;
        ps->text += klen + 1 + vlen + 1;
        ps->ntags = i + 1;
    }
    if (parse_fields(&d, ps, v1))
        return HUB_EINVAL;
    if (d.off != n) /* trailing bytes */
        return HUB_EINVAL;
    return HUB_OK;
}

/* Decode into spare's block when it suits (or a new block: exact size, or
 * with room to spare for the next records when reuse is asked for). */
static int decode(hub_reading_t *spare, bool reuse, const uint8_t *p, size_t n, hub_reading_t **out)
{
    *out = NULL;
    struct parsed ps;
    if (!p || n < 1 || n > HUB_READING_MAX_ENCODED ||
        (p[0] != READING_VERSION && p[0] != READING_VERSION_1 && p[0] != READING_VERSION_BOOT) ||
        parse(p, n, &ps)) {
        hub_reading_free(spare);
        return HUB_EINVAL;
    }
    size_t need = arrays_size(ps.ntags, ps.nfields) + ps.text;
    hub_reading_t *r;
    if (spare && spare->area >= need && spare->area <= 2 * need + REUSE_SLACK) {
        release_extras(spare);
        r = spare;
        block_init(r, ps.ntags, ps.nfields);
    } else {
        hub_reading_free(spare);
        size_t area = reuse ? (need + REUSE_ROUND - 1) / REUSE_ROUND * REUSE_ROUND : need;
        r = block_new(area, ps.ntags, ps.nfields);
        if (!r)
            return HUB_ENOMEM;
    }
    /* Strings come from the block's text area, which has room for them all. */
    r->measurement = text_dup(r, ps.m, ps.mlen);
    r->mlen = (uint8_t)ps.mlen;
    r->time_ns = ps.time_ns;
    r->boottime = ps.boot != NULL;
    if (ps.boot)
        memcpy(r->boot, ps.boot, HUB_READING_BOOT_ID);
    for (size_t i = 0; i < ps.ntags; i++) {
        r->tags[i].key = text_dup(r, ps.tags[i].key, ps.tag_klen[i]);
        r->tags[i].value = text_dup(r, ps.tags[i].value, ps.tag_vlen[i]);
    }
    memcpy(r->tag_klen, ps.tag_klen, ps.ntags);
    memcpy(r->tag_vlen, ps.tag_vlen, ps.ntags);
    r->ntags = ps.ntags;
    for (size_t i = 0; i < ps.nfields; i++) {
        struct hub_field f = ps.fields[i];
        f.key = text_dup(r, f.key, ps.field_klen[i]);
        if (f.type == HUB_FIELD_STRING)
            f.v.s = text_dup(r, f.v.s, ps.slen[i]);
        r->fields[i] = f;
    }
    memcpy(r->field_klen, ps.field_klen, ps.nfields);
    memcpy(r->slot, ps.slot, sizeof(r->slot));
    r->nfields = ps.nfields;
    /* The encoding is canonical (minimal varints, counts < 0x80), so the
     * reading's encoded size is exactly what was read (version 1 has the
     * same parts, in another order). */
    r->enc_size = n;
    *out = r;
    return HUB_OK;
}

int hub_reading_decode(const uint8_t *p, size_t n, hub_reading_t **out)
{
    return decode(NULL, false, p, n, out);
}

int hub_reading_decode_into(hub_reading_t *spare, const uint8_t *p, size_t n, hub_reading_t **out)
{
    return decode(spare, true, p, n, out);
}
