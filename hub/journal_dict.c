/* hub/journal_dict.c — the per-segment series dictionary (hub/journal.h,
 * hub/journal_priv.h) and reading a record through it.
 *
 * A payload appended with a key length (hub_journal_append_keyed) starts
 * with its series key. The first time a key comes in a segment, the record
 * is a DEFINE: the next id, the key's length and the whole payload; after
 * that a REF: the id and the payload after the key. Ids count from 0 in
 * each segment, in the order of its DEFINEs, so a reader rebuilds the
 * dictionary by reading the segment from its header, and every segment is
 * readable on its own. A DEFINE lost to damage costs the REFs of its
 * series in that segment (each a corrupt record, passed over on its own)
 * and nothing else: the DEFINEs after it carry their ids, the lost ids
 * stay unknown. The writer's dictionary has a hash index (linear probing,
 * never more than half full); a reader's needs none. */
#include <stdlib.h>
#include <string.h>

#include "hub/crc32c.h"
#include "hub/journal_priv.h"

void journal_dict_init(struct j_dict *d, bool indexed)
{
    memset(d, 0, sizeof(*d));
    d->indexed = indexed;
    hub_buf_init(&d->rec, HUB_JOURNAL_MAX_RECORD);
}

void journal_dict_free(struct j_dict *d)
{
    free(d->bytes);
    free(d->keys);
    free(d->slots);
    hub_buf_free(&d->rec);
    bool indexed = d->indexed;
    memset(d, 0, sizeof(*d));
    d->indexed = indexed;
}

void journal_dict_reset(struct j_dict *d)
{
    d->n = 0;
    d->used = 0;
    if (d->slots)
        memset(d->slots, 0, d->nslots * sizeof(*d->slots));
}

uint32_t journal_dict_hash(const void *key, size_t len)
{
    return hub_crc32c(0, key, len);
}

long journal_dict_find(const struct j_dict *d, const void *key, size_t len, uint32_t hash)
{
    if (!d->nslots)
        return -1;
    uint32_t mask = d->nslots - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t s = d->slots[i];
        if (s == 0)
            return -1;
        const struct j_key *k = &d->keys[s - 1];
        if (k->hash == hash && k->len == len && memcmp(d->bytes + k->off, key, len) == 0)
            return (long)(s - 1);
    }
}

bool journal_dict_fits(const struct j_dict *d, size_t len)
{
    return d->n < J_DICT_MAX_KEYS && len <= J_DICT_MAX_BYTES - d->used;
}

static void slot_put(uint32_t *slots, uint32_t nslots, uint32_t hash, uint32_t id)
{
    uint32_t mask = nslots - 1, i = hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = id + 1;
}

/* Room for nkeys more keys, len bytes in all. */
static int reserve(struct j_dict *d, size_t nkeys, size_t len)
{
    if (journal_grow((void **)&d->bytes, &d->cap, d->used, len, 1, 4096) != HUB_OK ||
        journal_grow((void **)&d->keys, &d->keys_cap, d->n, nkeys, sizeof(*d->keys), 64) != HUB_OK)
        return HUB_ENOMEM;
    if (d->indexed && 2 * (d->n + nkeys) > d->nslots) {
        uint32_t ns = d->nslots ? d->nslots : 128;
        while (ns < 2 * (d->n + nkeys))
            ns *= 2;
        uint32_t *s = calloc(ns, sizeof(*s));
        if (!s)
            return HUB_ENOMEM;
        for (uint32_t i = 0; i < d->n; i++)
            if (d->keys[i].len) /* not a lost one */
                slot_put(s, ns, d->keys[i].hash, i);
        free(d->slots);
        d->slots = s;
        d->nslots = ns;
    }
    return HUB_OK;
}

int journal_dict_reserve(struct j_dict *d, size_t len)
{
    return reserve(d, 1, len);
}

void journal_dict_add(struct j_dict *d, const void *key, size_t len, uint32_t hash)
{
    struct j_key *k = &d->keys[d->n];
    k->off = (uint32_t)d->used;
    k->len = (uint32_t)len;
    k->hash = hash;
    memcpy(d->bytes + d->used, key, len);
    d->used += len;
    if (d->indexed)
        slot_put(d->slots, d->nslots, hash, d->n);
    d->n++;
}

/* A minimal LEB128 varint of at most 32 bits from p[*at..n). */
static bool get_varint32(const uint8_t *p, size_t n, size_t *at, uint32_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 5 && *at < n; i++) {
        uint8_t b = p[(*at)++];
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if ((b == 0 && i > 0) || x > UINT32_MAX)
                return false;
            *v = (uint32_t)x;
            return true;
        }
    }
    return false;
}

/* What a dictionary record (type t, stored bytes p[0..n)) says, checked
 * against d: its id, and for a DEFINE where its payload starts (*pay) and
 * its key's length. NULL, or why it is corrupt. */
static const char *dict_check(const struct j_dict *d, enum j_rec_type t, const uint8_t *p, size_t n,
                              uint32_t *id, size_t *pay, uint32_t *klen)
{
    size_t at = 0;
    if (!get_varint32(p, n, &at, id))
        return "bad series id";
    *pay = at;
    if (t == J_REC_REF)
        return *id >= d->n || d->keys[*id].len == 0 ? "unknown series id (its definition is lost)"
                                                    : NULL;
    /* A DEFINE: the next id, the key's length, the payload. An id past the
     * next one follows DEFINEs lost to damage (passed over by a resync):
     * those ids stay unknown. */
    if (!get_varint32(p, n, &at, klen) || *klen == 0 || *klen > n - at)
        return "bad series definition";
    *pay = at;
    if (*id < d->n)
        return "series id defined twice";
    if (*id >= J_DICT_MAX_KEYS || *klen > J_DICT_MAX_BYTES - d->used)
        return "series dictionary over its bound";
    return NULL;
}

bool journal_dict_record_ok(struct j_dict *d, enum j_rec_type t)
{
    uint32_t id, klen;
    size_t pay;
    return t == J_REC_PLAIN || !dict_check(d, t, d->rec.data, d->rec.len, &id, &pay, &klen);
}

int journal_record_read(struct j_in *in, struct j_dict *d, uint64_t off, uint64_t limit,
                        uint64_t expect, struct hub_buf *out, uint32_t *len, const char **why)
{
    if (!d)
        return journal_frame_read(in, off, limit, expect, out, len, why);
    enum j_rec_type t;
    int rc = journal_frame_read_typed(in, off, limit, expect, true, out, &d->rec, &t, len, why);
    if (rc != HUB_OK || t == J_REC_PLAIN)
        return rc;
    const uint8_t *p = d->rec.data;
    size_t n = d->rec.len, at;
    uint32_t id, klen;
    const char *bad = dict_check(d, t, p, n, &id, &at, &klen);
    if (bad) {
        *why = bad;
        return HUB_ECORRUPT;
    }
    size_t start = out ? out->len : 0;
    if (t == J_REC_REF) {
        if (out) {
            const struct j_key *k = &d->keys[id];
            if ((rc = hub_buf_add(out, d->bytes + k->off, k->len)) != HUB_OK ||
                (rc = hub_buf_add(out, p + at, n - at)) != HUB_OK)
                goto undo;
        }
        return HUB_OK;
    }
    if ((rc = reserve(d, id - d->n + 1, klen)) != HUB_OK) {
        *why = "out of memory";
        return rc;
    }
    if (out && (rc = hub_buf_add(out, p + at, n - at)) != HUB_OK)
        goto undo;
    while (d->n < id) /* lost ones: no key */
        d->keys[d->n++] = (struct j_key){.off = (uint32_t)d->used};
    journal_dict_add(d, p + at, klen, d->indexed ? journal_dict_hash(p + at, klen) : 0);
    return HUB_OK;
undo:
    out->len = start;
    if (out->data)
        out->data[out->len] = 0;
    *why = "payload buffer";
    return rc;
}
