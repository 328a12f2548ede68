/* tests/fuzz/fuzz_reading.c — hub_reading_decode on arbitrary bytes.
 *
 * Whatever decodes must survive a round trip: encode gives back exactly the
 * input (the encoding is canonical), and decoding that again gives an equal
 * reading. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/buf.h"
#include "hub/reading.h"

static int field_cmp(const struct hub_field *a, const struct hub_field *b)
{
    if (strcmp(a->key, b->key) != 0 || a->type != b->type)
        return 1;
    switch (a->type) {
    case HUB_FIELD_INT:
        return a->v.i != b->v.i;
    case HUB_FIELD_UINT:
        return a->v.u != b->v.u;
    case HUB_FIELD_FLOAT:
        return memcmp(&a->v.f, &b->v.f, sizeof(double)) != 0;
    case HUB_FIELD_BOOL:
        return a->v.b != b->v.b;
    case HUB_FIELD_STRING:
        return strcmp(a->v.s, b->v.s) != 0;
    }
    return 1;
}

static int reading_cmp(const hub_reading_t *a, const hub_reading_t *b)
{
    if (strcmp(hub_reading_measurement(a), hub_reading_measurement(b)) != 0 ||
        hub_reading_time(a) != hub_reading_time(b) ||
        hub_reading_tag_count(a) != hub_reading_tag_count(b) ||
        hub_reading_field_count(a) != hub_reading_field_count(b))
        return 1;
    for (size_t i = 0; i < hub_reading_tag_count(a); i++) {
        const struct hub_tag *x = hub_reading_tag(a, i), *y = hub_reading_tag(b, i);
        if (strcmp(x->key, y->key) != 0 || strcmp(x->value, y->value) != 0)
            return 1;
        if (i > 0 && strcmp(hub_reading_tag(a, i - 1)->key, x->key) >= 0)
            return 1; /* sorted and unique */
    }
    for (size_t i = 0; i < hub_reading_field_count(a); i++)
        if (field_cmp(hub_reading_field(a, i), hub_reading_field(b, i)))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_reading_t *r = NULL, *r2 = NULL;
    if (hub_reading_decode(data, size, &r) != HUB_OK) {
        if (r)
            abort(); /* a failed decode hands out nothing */
        return 0;
    }
    struct hub_buf b;
    hub_buf_init(&b, HUB_READING_MAX_ENCODED);
    if (hub_reading_encode(r, &b) != HUB_OK)
        abort();
    if (b.len != size || memcmp(b.data, data, size) != 0)
        abort(); /* not canonical */
    if (hub_reading_decode(b.data, b.len, &r2) != HUB_OK)
        abort();
    if (reading_cmp(r, r2))
        abort();
    hub_reading_free(r2);
    hub_reading_free(r);
    hub_buf_free(&b);
    return 0;
}
