/* firmware/units.c — the unit of every field the configured inputs write,
 * from their data dictionary (drv_ops.schema), for outputs that show units
 * (drv_env.unit_of). Built once at start: a sorted array searched by
 * (measurement, field). */
#include <stdlib.h>
#include <string.h>

#include "firmware/units.h"

struct ch_unit {
    char *measurement, *field, *unit;
};

struct ch_units {
    struct ch_unit *u;
    size_t n, cap;
    int oom;
};

static void add(void *arg, const struct drv_schema_field *f)
{
    struct ch_units *t = arg;
    if (t->oom || !f->unit || !f->unit[0])
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct ch_unit *u = realloc(t->u, cap * sizeof(*u));
        if (!u) {
            t->oom = 1;
            return;
        }
        t->u = u;
        t->cap = cap;
    }
    struct ch_unit *e = &t->u[t->n];
    e->measurement = strdup(f->measurement);
    e->field = strdup(f->field);
    e->unit = strdup(f->unit);
    if (!e->measurement || !e->field || !e->unit) {
        free(e->measurement), free(e->field), free(e->unit);
        t->oom = 1;
        return;
    }
    t->n++;
}

static int cmp(const void *a, const void *b)
{
    const struct ch_unit *x = a, *y = b;
    int c = strcmp(x->measurement, y->measurement);
    return c ? c : strcmp(x->field, y->field);
}

struct ch_units *ch_units_build(const struct ch_config *c)
{
    struct ch_units *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    for (size_t i = 0; i < c->ninputs; i++)
        if (c->inputs[i].elements && c->inputs[i].ops->schema)
            c->inputs[i].ops->schema(&c->inputs[i].cfg, add, t);
    if (t->n)
        qsort(t->u, t->n, sizeof(*t->u), cmp);
    return t; /* out of memory part way: the units read so far */
}

const char *ch_unit_of(const struct drv_env *env, const char *measurement, const char *field)
{
    const struct ch_units *t = env ? env->units : NULL;
    if (!t || !t->n)
        return NULL;
    struct ch_unit key = {.measurement = (char *)measurement, .field = (char *)field};
    const struct ch_unit *e = bsearch(&key, t->u, t->n, sizeof(*t->u), cmp);
    return e ? e->unit : NULL;
}

void ch_units_free(struct ch_units *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->u[i].measurement), free(t->u[i].field), free(t->u[i].unit);
    free(t->u);
    free(t);
}
