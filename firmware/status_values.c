/* firmware/status_values.c — recent values per field for the live page: a
 * ring of CH_STATUS_POINTS floats per field, one per CH_STATUS_STEP_S slot
 * of arrival time (the last value read in the slot; NaN where none was),
 * so that a sparkline has a time axis and a gap shows as a gap, never as 0.
 * Rows (series) are keyed by the reading's "device" tag, or its measurement
 * when it has none; status points (measurements cityhub*) are not kept.
 * Everything is allocated on first sight and bounded (firmware/status.h). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/status_priv.h"
#include "hub/clock.h"

#define KEY_MAX 96
#define FIELD_NAME_MAX 64
#define HASH_SLOTS 1024 /* > 2 * CH_STATUS_MAX_SERIES */
#define STEP_NS ((int64_t)CH_STATUS_STEP_S * HUB_NS_PER_S)

_Static_assert(HASH_SLOTS >= 2 * CH_STATUS_MAX_SERIES, "hash table load stays below 1/2");

struct vfield {
    char name[FIELD_NAME_MAX];
    const char *unit; /* the data dictionary's (lives as long as the program's units) */
    double last;
    int64_t slot;  /* slot of ring[head] */
    unsigned head; /* newest point */
    float ring[CH_STATUS_POINTS];
};

struct vseries {
    char key[KEY_MAX];
    char measurement[FIELD_NAME_MAX];
    int64_t last_ns; /* acquisition time of the newest reading */
    size_t nfields;
    struct vfield *f[CH_STATUS_MAX_FIELDS];
};

struct ch_values {
    pthread_mutex_t mu;
    const struct drv_env *env;
    struct vseries *s[CH_STATUS_MAX_SERIES];
    size_t ns, ncells;
    int16_t hash[HASH_SLOTS]; /* index into s, -1 = free */
    uint64_t dropped;
    size_t bytes;
};

struct ch_values *ch_values_new(const struct drv_env *env)
{
    struct ch_values *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    pthread_mutex_init(&v->mu, NULL);
    v->env = env;
    for (size_t i = 0; i < HASH_SLOTS; i++)
        v->hash[i] = -1;
    v->bytes = sizeof(*v);
    return v;
}

void ch_values_free(struct ch_values *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->ns; i++) {
        for (size_t k = 0; k < v->s[i]->nfields; k++)
            free(v->s[i]->f[k]);
        free(v->s[i]);
    }
    pthread_mutex_destroy(&v->mu);
    free(v);
}

void ch_values_rebind(struct ch_values *v, const struct drv_env *env)
{
    pthread_mutex_lock(&v->mu);
    v->env = env;
    for (size_t i = 0; i < v->ns; i++)
        for (size_t k = 0; k < v->s[i]->nfields; k++)
            v->s[i]->f[k]->unit = env && env->unit_of
                                      ? env->unit_of(env, v->s[i]->measurement, v->s[i]->f[k]->name)
                                      : NULL;
    pthread_mutex_unlock(&v->mu);
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The row of key, made if new; NULL when a bound is reached. */
static struct vseries *series_of(struct ch_values *v, const char *key, const char *measurement)
{
    if (strlen(key) >= KEY_MAX)
        return NULL;
    uint32_t h = fnv1a(key) % HASH_SLOTS;
    while (v->hash[h] >= 0) {
        struct vseries *s = v->s[v->hash[h]];
        if (strcmp(s->key, key) == 0)
            return s;
        h = (h + 1) % HASH_SLOTS;
    }
    if (v->ns == CH_STATUS_MAX_SERIES)
        return NULL;
    struct vseries *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    memcpy(s->key, key, strlen(key) + 1);
    snprintf(s->measurement, sizeof(s->measurement), "%s", measurement);
    v->hash[h] = (int16_t)v->ns;
    v->s[v->ns++] = s;
    v->bytes += sizeof(*s);
    return s;
}

static struct vfield *field_of(struct ch_values *v, struct vseries *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->f[i]->name, name) == 0)
            return s->f[i];
    if (strlen(name) >= FIELD_NAME_MAX || s->nfields == CH_STATUS_MAX_FIELDS ||
        v->ncells == CH_STATUS_MAX_CELLS)
        return NULL;
    struct vfield *f = malloc(sizeof(*f));
    if (!f)
        return NULL;
    memset(f, 0, sizeof(*f));
    memcpy(f->name, name, strlen(name) + 1);
    for (size_t i = 0; i < CH_STATUS_POINTS; i++)
        f->ring[i] = NAN;
    f->slot = INT64_MIN;
    if (v->env && v->env->unit_of)
        f->unit = v->env->unit_of(v->env, s->measurement, name);
    s->f[s->nfields++] = f;
    v->ncells++;
    v->bytes += sizeof(*f);
    return f;
}

static void put(struct vfield *f, double x, int64_t slot)
{
    if (f->slot == INT64_MIN) {
        f->slot = slot;
    } else if (slot > f->slot) {
        int64_t steps = slot - f->slot;
        for (int64_t i = 0; i < steps && i < CH_STATUS_POINTS; i++) {
            f->head = (f->head + 1) % CH_STATUS_POINTS;
            f->ring[f->head] = NAN;
        }
        f->slot = slot;
    } /* an earlier slot (the clock stepped back): the newest point takes it */
    f->ring[f->head] = (float)x;
    f->last = x;
}

void ch_values_observe(struct ch_values *v, const hub_reading_t *r, int64_t now_ns)
{
    const char *m = hub_reading_measurement(r);
    if (!v || strncmp(m, "cityhub", 7) == 0)
        return;
    const char *dev = hub_reading_tag_value(r, "device");
    int64_t slot = now_ns / STEP_NS;
    pthread_mutex_lock(&v->mu);
    struct vseries *s = series_of(v, dev ? dev : m, m);
    if (!s) {
        v->dropped++;
        goto out;
    }
    s->last_ns = hub_reading_time(r);
    for (size_t i = 0; i < hub_reading_field_count(r); i++) {
        const struct hub_field *fd = hub_reading_field(r, i);
        double x;
        switch (fd->type) {
        case HUB_FIELD_INT:
            x = (double)fd->v.i;
            break;
        case HUB_FIELD_UINT:
            x = (double)fd->v.u;
            break;
        case HUB_FIELD_FLOAT:
            x = fd->v.f;
            break;
        case HUB_FIELD_BOOL:
            x = fd->v.b ? 1 : 0;
            break;
        default:
            continue; /* strings are not plotted */
        }
        struct vfield *f = field_of(v, s, fd->key);
        if (!f) {
            v->dropped++;
            continue;
        }
        put(f, x, slot);
    }
out:
    pthread_mutex_unlock(&v->mu);
}

static json_t *points_json(const struct vfield *f, int64_t now_slot)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && i < CH_STATUS_POINTS; i++) {
        int64_t s = now_slot - (CH_STATUS_POINTS - 1 - i);
        int64_t back = f->slot - s;
        float x = NAN;
        if (back >= 0 && back < CH_STATUS_POINTS)
            x = f->ring[(f->head + CH_STATUS_POINTS - (unsigned)back) % CH_STATUS_POINTS];
        json_array_append_new(a, isfinite(x) ? json_real((double)x) : json_null());
    }
    return a;
}

json_t *ch_values_json(struct ch_values *v, int with_points, int64_t now_ns)
{
    json_t *root = json_object(), *series = json_array();
    if (!root || !series) {
        json_decref(root);
        json_decref(series);
        return NULL;
    }
    json_object_set_new(root, "step_s", json_integer(CH_STATUS_STEP_S));
    json_object_set_new(root, "points", json_integer(CH_STATUS_POINTS));
    int64_t now_slot = now_ns / STEP_NS;
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->ns; i++) {
        const struct vseries *s = v->s[i];
        json_t *js = json_object(), *fields = json_array();
        json_object_set_new(js, "key", json_string(s->key));
        json_object_set_new(js, "measurement", json_string(s->measurement));
        json_object_set_new(js, "last_ms", json_integer(s->last_ns / HUB_NS_PER_MS));
        for (size_t k = 0; k < s->nfields; k++) {
            const struct vfield *f = s->f[k];
            json_t *jf = json_object();
            json_object_set_new(jf, "name", json_string(f->name));
            json_object_set_new(jf, "unit", json_string(f->unit ? f->unit : ""));
            json_object_set_new(jf, "value", json_real(f->last));
            if (with_points)
                json_object_set_new(jf, "points", points_json(f, now_slot));
            json_array_append_new(fields, jf);
        }
        json_object_set_new(js, "fields", fields);
        json_array_append_new(series, js);
    }
    pthread_mutex_unlock(&v->mu);
    json_object_set_new(root, "series", series);
    return root;
}

uint64_t ch_values_dropped(struct ch_values *v)
{
    pthread_mutex_lock(&v->mu);
    uint64_t n = v->dropped;
    pthread_mutex_unlock(&v->mu);
    return n;
}

size_t ch_values_bytes(struct ch_values *v)
{
    pthread_mutex_lock(&v->mu);
    size_t n = v->bytes;
    pthread_mutex_unlock(&v->mu);
    return n;
}
