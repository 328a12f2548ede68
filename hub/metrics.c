/* hub/metrics.c — a bounded registry of atomic counters (hub/metrics.h).
 *
 * Entries live in one array allocated at creation and never move, so a
 * handle stays valid for the registry's life. Registration takes the lock;
 * readers walk the first `n` entries, published with a release store after
 * each entry is complete, without it. */
#include "hub/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hub_metric {
    atomic_uint_fast64_t value;
    const char *name;
    const char *help;
    const char *label_key;
    enum hub_metric_kind kind;
    char label_value[HUB_METRIC_LABEL_MAX];
};

struct hub_metrics {
    pthread_mutex_t mu;
    struct hub_metric *v;
    size_t max;
    atomic_size_t n;
    atomic_uint_fast64_t missed;
};

hub_metrics_t *hub_metrics_new(size_t max)
{
    hub_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->v = calloc(max ? max : 1, sizeof(*m->v));
    if (!m->v || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m->v);
        free(m);
        return NULL;
    }
    m->max = max;
    return m;
}

void hub_metrics_free(hub_metrics_t *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->v);
    free(m);
}

static bool name_ok(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

struct hub_metric *hub_metrics_add(hub_metrics_t *m, enum hub_metric_kind kind, const char *name,
                                   const char *label_key, const char *label_value, const char *help)
{
    if (!m || !name_ok(name) || (label_key && !name_ok(label_key)))
        return NULL;
    char value[HUB_METRIC_LABEL_MAX];
    snprintf(value, sizeof(value), "%s", label_key && label_value ? label_value : "");
    struct hub_metric *found = NULL;
    pthread_mutex_lock(&m->mu);
    size_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    for (size_t i = 0; i < n && !found; i++) {
        struct hub_metric *e = &m->v[i];
        if (strcmp(e->name, name) == 0 && strcmp(e->label_value, value) == 0 &&
            (e->label_key == label_key ||
             (e->label_key && label_key && strcmp(e->label_key, label_key) == 0)))
            found = e;
    }
    if (!found && n < m->max) {
        found = &m->v[n];
        atomic_init(&found->value, 0);
        found->name = name;
        found->help = help ? help : "";
        found->label_key = label_key;
        found->kind = kind;
        memcpy(found->label_value, value, sizeof(value));
        atomic_store_explicit(&m->n, n + 1, memory_order_release);
    } else if (!found) {
        atomic_fetch_add_explicit(&m->missed, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

void hub_metric_inc(struct hub_metric *mt, uint64_t n)
{
    if (mt)
        atomic_fetch_add_explicit(&mt->value, n, memory_order_relaxed);
}

void hub_metric_set(struct hub_metric *mt, uint64_t v)
{
    if (mt)
        atomic_store_explicit(&mt->value, v, memory_order_relaxed);
}

uint64_t hub_metric_get(const struct hub_metric *mt)
{
    return mt ? atomic_load_explicit(&((struct hub_metric *)mt)->value, memory_order_relaxed) : 0;
}

uint64_t hub_metrics_sum(hub_metrics_t *m, const char *name)
{
    uint64_t sum = 0;
    size_t n = m ? atomic_load_explicit(&m->n, memory_order_acquire) : 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            sum += hub_metric_get(&m->v[i]);
    return sum;
}

uint64_t hub_metrics_missed(hub_metrics_t *m)
{
    return m ? atomic_load_explicit(&m->missed, memory_order_relaxed) : 0;
}

void hub_metrics_each(hub_metrics_t *m, void (*fn)(void *arg, const struct hub_metric_info *mi),
                      void *arg)
{
    size_t n = m ? atomic_load_explicit(&m->n, memory_order_acquire) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct hub_metric *e = &m->v[i];
        struct hub_metric_info mi = {
            .name = e->name,
            .help = e->help,
            .kind = e->kind,
            .label_key = e->label_key,
            .label_value = e->label_value,
            .value = hub_metric_get(e),
        };
        fn(arg, &mi);
    }
}
