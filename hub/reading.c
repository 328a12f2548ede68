/* hub/reading.c — the reading model and its compact binary form.
 *
 * A reading owns one heap copy of every string (per-string allocation), and
 * two arrays that grow by doubling up to HUB_READING_MAX_TAGS/FIELDS. It also
 * tracks its exact encoded size, so an add that would make the reading larger
 * than HUB_READING_MAX_ENCODED is refused (HUB_EFULL) and every reading that
 * exists can be encoded.
 *
 * Binary form, version 1 (all integers little-endian):
 *
 *     version      1 byte, = 1
 *     measurement  varint len, bytes
 *     time_ns      8 bytes, two's complement
 *     ntags        varint; then per tag: varint klen, key, varint vlen, value
 *     nfields      varint; then per field: varint klen, key, type (1 byte), value
 *                    INT    zigzag varint
 *                    UINT   varint
 *                    FLOAT  8 bytes IEEE-754 binary64
 *                    BOOL   1 byte, 0 or 1
 *                    STRING varint len, bytes
 *
 * Varints are LEB128 and must be minimal (no trailing 0x80..0x00 padding), so
 * every reading has exactly one encoding: decode(b) succeeding implies
 * encode(decode(b)) == b. */
#include "hub/reading.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define READING_VERSION 1

struct hub_reading {
    char *measurement;
    int64_t time_ns;
    size_t enc_size; /* exact length of hub_reading_encode's output */
    size_t ntags, tag_cap;
    size_t nfields, field_cap;
    struct hub_tag *tags;     /* sorted by key, unique keys */
    struct hub_field *fields; /* insertion order, unique keys */
};

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

/* ---- construction ------------------------------------------------------- */

static hub_reading_t *reading_new_n(const char *m, size_t mlen, int64_t time_ns)
{
    if (!m || !name_ok(mlen))
        return NULL;
    hub_reading_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->measurement = dup_n(m, mlen);
    if (!r->measurement) {
        free(r);
        return NULL;
    }
    r->time_ns = time_ns;
    /* version + measurement + time + ntags (1 byte: <= 32) + nfields (1 byte: <= 64) */
    r->enc_size = 1 + str_enc(mlen) + 8 + 1 + 1;
    return r;
}

hub_reading_t *hub_reading_new(const char *measurement, int64_t time_ns)
{
    if (!measurement)
        return NULL;
    return reading_new_n(measurement, strnlen(measurement, HUB_READING_MAX_NAME + 1), time_ns);
}

void hub_reading_free(hub_reading_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ntags; i++) {
        free((char *)r->tags[i].key);
        free((char *)r->tags[i].value);
    }
    for (size_t i = 0; i < r->nfields; i++) {
        free((char *)r->fields[i].key);
        if (r->fields[i].type == HUB_FIELD_STRING)
            free((char *)r->fields[i].v.s);
    }
    free(r->tags);
    free(r->fields);
    free(r->measurement);
    free(r);
}

/* Grow an array of elem-sized items to hold one more, doubling up to max. */
static int grow(void **arr, size_t *cap, size_t count, size_t elem, size_t max, size_t first)
{
    if (count < *cap)
        return HUB_OK;
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap > max)
        ncap = max;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return HUB_ENOMEM;
    *arr = p;
    *cap = ncap;
    return HUB_OK;
}

/* Byte-order comparison of a key of klen bytes with a NUL-terminated one. */
static int key_cmp(const char *k, size_t klen, const char *other)
{
    size_t olen = strlen(other);
    int c = memcmp(k, other, klen < olen ? klen : olen);
    if (c)
        return c;
    return klen < olen ? -1 : klen > olen ? 1 : 0;
}

static int add_tag_n(hub_reading_t *r, const char *k, size_t klen, const char *v, size_t vlen)
{
    if (!r || !k || !v || !name_ok(klen) || !name_ok(vlen))
        return HUB_EINVAL;
    /* Find the insertion point (first key >= k); the array is sorted. */
    size_t pos = 0;
    int c = 1;
    while (pos < r->ntags && (c = key_cmp(k, klen, r->tags[pos].key)) > 0)
        pos++;
    if (pos < r->ntags && c == 0) { /* same key: replace the value */
        size_t old = strlen(r->tags[pos].value);
        size_t size = r->enc_size - str_enc(old) + str_enc(vlen);
        if (size > HUB_READING_MAX_ENCODED)
            return HUB_EFULL;
        char *nv = dup_n(v, vlen);
        if (!nv)
            return HUB_ENOMEM;
        free((char *)r->tags[pos].value);
        r->tags[pos].value = nv;
        r->enc_size = size;
        return HUB_OK;
    }
    size_t size = r->enc_size + str_enc(klen) + str_enc(vlen);
    if (r->ntags >= HUB_READING_MAX_TAGS || size > HUB_READING_MAX_ENCODED)
        return HUB_EFULL;
    if (grow((void **)&r->tags, &r->tag_cap, r->ntags, sizeof(*r->tags), HUB_READING_MAX_TAGS, 4))
        return HUB_ENOMEM;
    char *nk = dup_n(k, klen);
    char *nv = dup_n(v, vlen);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return HUB_ENOMEM;
    }
    memmove(&r->tags[pos + 1], &r->tags[pos], (r->ntags - pos) * sizeof(*r->tags));
    r->tags[pos].key = nk;
    r->tags[pos].value = nv;
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
    if (!r || !f.key || !name_ok(klen))
        return HUB_EINVAL;
    switch (f.type) {
    case HUB_FIELD_INT:
    case HUB_FIELD_UINT:
    case HUB_FIELD_BOOL:
        break;
    case HUB_FIELD_FLOAT:
        if (!isfinite(f.v.f))
            return HUB_EINVAL;
        break;
    case HUB_FIELD_STRING:
        if (!f.v.s || slen > HUB_READING_MAX_STRING)
            return HUB_EINVAL;
        break;
    default:
        return HUB_EINVAL;
    }
    for (size_t i = 0; i < r->nfields; i++)
        if (key_cmp(f.key, klen, r->fields[i].key) == 0)
            return HUB_EINVAL;
    size_t size = r->enc_size + str_enc(klen) + 1 + field_value_enc(&f, slen);
    if (r->nfields >= HUB_READING_MAX_FIELDS || size > HUB_READING_MAX_ENCODED)
        return HUB_EFULL;
    if (grow((void **)&r->fields, &r->field_cap, r->nfields, sizeof(*r->fields),
             HUB_READING_MAX_FIELDS, 8))
        return HUB_ENOMEM;
    char *nk = dup_n(f.key, klen);
    char *ns = NULL;
    if (nk && f.type == HUB_FIELD_STRING)
        ns = dup_n(f.v.s, slen);
    if (!nk || (f.type == HUB_FIELD_STRING && !ns)) {
        free(nk);
        free(ns);
        return HUB_ENOMEM;
    }
    f.key = nk;
    if (f.type == HUB_FIELD_STRING)
        f.v.s = ns;
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

static int add_varint(struct hub_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return hub_buf_add(b, tmp, n);
}

static int add_u64le(struct hub_buf *b, uint64_t v)
{
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return hub_buf_add(b, tmp, sizeof(tmp));
}

static int add_str(struct hub_buf *b, const char *s)
{
    size_t n = strlen(s);
    int rc = add_varint(b, n);
    return rc ? rc : hub_buf_add(b, s, n);
}

static int add_field(struct hub_buf *b, const struct hub_field *f)
{
    int rc = add_str(b, f->key);
    if (!rc)
        rc = hub_buf_addc(b, (uint8_t)f->type);
    if (rc)
        return rc;
    switch (f->type) {
    case HUB_FIELD_INT:
        return add_varint(b, zigzag(f->v.i));
    case HUB_FIELD_UINT:
        return add_varint(b, f->v.u);
    case HUB_FIELD_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &f->v.f, sizeof(bits));
        return add_u64le(b, bits);
    }
    case HUB_FIELD_BOOL:
        return hub_buf_addc(b, f->v.b ? 1 : 0);
    case HUB_FIELD_STRING:
        return add_str(b, f->v.s);
    }
    return HUB_EINVAL;
}

int hub_reading_encode(const hub_reading_t *r, struct hub_buf *out)
{
    size_t start = out->len;
    /* Fail early, before writing anything, when the whole cannot fit. */
    if (r->enc_size > out->cap || start > out->cap - r->enc_size)
        return HUB_EFULL;
    int rc = hub_buf_addc(out, READING_VERSION);
    if (!rc)
        rc = add_str(out, r->measurement);
    if (!rc)
        rc = add_u64le(out, (uint64_t)r->time_ns);
    if (!rc)
        rc = add_varint(out, r->ntags);
    for (size_t i = 0; !rc && i < r->ntags; i++) {
        rc = add_str(out, r->tags[i].key);
        if (!rc)
            rc = add_str(out, r->tags[i].value);
    }
    if (!rc)
        rc = add_varint(out, r->nfields);
    for (size_t i = 0; !rc && i < r->nfields; i++)
        rc = add_field(out, &r->fields[i]);
    if (rc) { /* leave out as it was */
        out->len = start;
        if (out->data)
            out->data[start] = 0;
    }
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
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)d->p[d->off + (size_t)i] << (8 * i);
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

static int decode_fields(struct rd *d, hub_reading_t *r)
{
    uint64_t count;
    if (get_varint(d, &count) || count > HUB_READING_MAX_FIELDS)
        return HUB_EINVAL;
    for (uint64_t i = 0; i < count; i++) {
        struct hub_field f = {0};
        size_t klen, slen = 0;
        uint64_t u;
        if (get_str(d, HUB_READING_MAX_NAME, &f.key, &klen) || d->off >= d->n)
            return HUB_EINVAL;
        uint8_t type = d->p[d->off++];
        switch (type) {
        case HUB_FIELD_INT:
            if (get_varint(d, &u))
                return HUB_EINVAL;
            f.v.i = unzigzag(u);
            break;
        case HUB_FIELD_UINT:
            if (get_varint(d, &f.v.u))
                return HUB_EINVAL;
            break;
        case HUB_FIELD_FLOAT:
            if (get_u64le(d, &u))
                return HUB_EINVAL;
            memcpy(&f.v.f, &u, sizeof(u));
            break;
        case HUB_FIELD_BOOL:
            if (d->off >= d->n || d->p[d->off] > 1)
                return HUB_EINVAL;
            f.v.b = d->p[d->off++] == 1;
            break;
        case HUB_FIELD_STRING:
            if (get_str(d, HUB_READING_MAX_STRING, &f.v.s, &slen))
                return HUB_EINVAL;
            break;
        default:
            return HUB_EINVAL;
        }
        f.type = (enum hub_field_type)type;
        /* add_field_n checks the name, finiteness and duplicates. */
        int rc = add_field_n(r, f, klen, slen);
        if (rc)
            return rc == HUB_ENOMEM ? HUB_ENOMEM : HUB_EINVAL;
    }
    return HUB_OK;
}

int hub_reading_decode(const uint8_t *p, size_t n, hub_reading_t **out)
{
    *out = NULL;
    if (!p || n < 1 || n > HUB_READING_MAX_ENCODED || p[0] != READING_VERSION)
        return HUB_EINVAL;
    struct rd d = {.p = p, .n = n, .off = 1};
    hub_reading_t *r = NULL;
    const char *s, *v;
    size_t slen, vlen;
    uint64_t u, count;
    int rc = HUB_EINVAL;

    if (get_str(&d, HUB_READING_MAX_NAME, &s, &slen) || slen == 0 || get_u64le(&d, &u))
        goto fail;
    r = reading_new_n(s, slen, (int64_t)u);
    if (!r) {
        rc = HUB_ENOMEM;
        goto fail;
    }
    if (get_varint(&d, &count) || count > HUB_READING_MAX_TAGS)
        goto fail;
    for (uint64_t i = 0; i < count; i++) {
        if (get_str(&d, HUB_READING_MAX_NAME, &s, &slen) ||
            get_str(&d, HUB_READING_MAX_NAME, &v, &vlen))
            goto fail;
        /* Strictly ascending keys: sorted and unique, so the add appends. */
        if (r->ntags > 0 && key_cmp(s, slen, r->tags[r->ntags - 1].key) <= 0)
            goto fail;
        int arc = add_tag_n(r, s, slen, v, vlen);
        if (arc) {
            rc = arc == HUB_ENOMEM ? HUB_ENOMEM : HUB_EINVAL;
            goto fail;
        }
    }
    rc = decode_fields(&d, r);
    if (rc)
        goto fail;
    rc = HUB_EINVAL;
    if (d.off != n || r->enc_size != n) /* trailing bytes */
        goto fail;
    *out = r;
    return HUB_OK;
fail:
    hub_reading_free(r);
    return rc;
}
