/* tests/fuzz/reading_cmp.h — two readings equal in every part (measurement,
 * time, sorted unique tags, typed fields), for harnesses that check a
 * round trip. Returns 0 when equal. */
#ifndef FUZZ_READING_CMP_H
#define FUZZ_READING_CMP_H

#include <string.h>

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

#endif
