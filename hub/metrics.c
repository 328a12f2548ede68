/* hub/metrics.c — a bounded registry of atomic counters (hub/metrics.h).
 *
 * Entries live in one array allocated at creation and never move, so a
 * handle stays valid for the registry's life. Registration takes the lock;
 * readers walk the first `n` entries, published with a release store after
 * each entry is complete, without it. */
#include "hub/metrics.h"
#include "hub/buf.h"

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
    const char *label2_key;
    enum hub_metric_kind kind;
    uint32_t divisor; /* exposed as value / divisor; 0 = 1 */
    char label_value[HUB_METRIC_LABEL_MAX];
    char label2_value[HUB_METRIC_LABEL_MAX];
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

static bool same_key(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

struct hub_metric *hub_metrics_add(hub_metrics_t *m, enum hub_metric_kind kind, const char *name,
                                   const char *label_key, const char *label_value, const char *help)
{
    return hub_metrics_add2(m, kind, name, label_key, label_value, NULL, NULL, help);
}

struct hub_metric *hub_metrics_add2(hub_metrics_t *m, enum hub_metric_kind kind, const char *name,
                                    const char *label_key, const char *label_value,
                                    const char *label2_key, const char *label2_value,
                                    const char *help)
{
    if (!m || !name_ok(name) || (label_key && !name_ok(label_key)) ||
        (label2_key && (!label_key || !name_ok(label2_key) || strcmp(label_key, label2_key) == 0)))
        return NULL;
    char value[HUB_METRIC_LABEL_MAX], value2[HUB_METRIC_LABEL_MAX];
    snprintf(value, sizeof(value), "%s", label_key && label_value ? label_value : "");
    snprintf(value2, sizeof(value2), "%s", label2_key && label2_value ? label2_value : "");
    struct hub_metric *found = NULL;
    pthread_mutex_lock(&m->mu);
    size_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    for (size_t i = 0; i < n && !found; i++) {
        struct hub_metric *e = &m->v[i];
        if (strcmp(e->name, name) == 0 && strcmp(e->label_value, value) == 0 &&
            strcmp(e->label2_value, value2) == 0 && same_key(e->label_key, label_key) &&
            same_key(e->label2_key, label2_key))
            found = e;
    }
    if (!found && n < m->max) {
        found = &m->v[n];
        atomic_init(&found->value, 0);
        found->name = name;
        found->help = help ? help : "";
        found->label_key = label_key;
        found->label2_key = label2_key;
        found->kind = kind;
        memcpy(found->label_value, value, sizeof(value));
        memcpy(found->label2_value, value2, sizeof(value2));
        atomic_store_explicit(&m->n, n + 1, memory_order_release);
    } else if (!found) {
        atomic_fetch_add_explicit(&m->missed, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

void hub_metric_set_divisor(struct hub_metric *mt, uint32_t divisor)
{
    if (mt)
        mt->divisor = divisor;
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
            .label2_key = e->label2_key,
            .label2_value = e->label2_value,
            .value = hub_metric_get(e),
        };
        fn(arg, &mi);
    }
}

/* ---- Prometheus text exposition ------------------------------------------ */

/* s with the escapes of the format: \\ and \n, and \" inside label values. */
static int add_escaped(struct hub_buf *out, const char *s, bool quote)
{
    int rc = HUB_OK;
    for (; *s && rc == HUB_OK; s++) {
        if (*s == '\\')
            rc = hub_buf_adds(out, "\\\\");
        else if (*s == '\n')
            rc = hub_buf_adds(out, "\\n");
        else if (*s == '"' && quote)
            rc = hub_buf_adds(out, "\\\"");
        else
            rc = hub_buf_addc(out, (uint8_t)*s);
    }
    return rc;
}

static int add_label(struct hub_buf *out, const char *key, const char *value)
{
    int rc = hub_buf_adds(out, key);
    if (rc == HUB_OK)
        rc = hub_buf_adds(out, "=\"");
    if (rc == HUB_OK)
        rc = add_escaped(out, value, true);
    if (rc == HUB_OK)
        rc = hub_buf_addc(out, '"');
    return rc;
}

/* Digits of the fraction for a divisor: 1000000 -> 6 (a power of ten is
 * exact; others round up to the next). */
static int digits(uint32_t divisor)
{
    int n = 0;
    for (uint64_t p = 1; p < divisor; p *= 10)
        n++;
    return n;
}

static int write_sample(struct hub_buf *out, const struct hub_metric *e)
{
    int rc = hub_buf_adds(out, e->name);
    if (rc == HUB_OK && e->label_key) {
        rc = hub_buf_addc(out, '{');
        if (rc == HUB_OK)
            rc = add_label(out, e->label_key, e->label_value);
        if (rc == HUB_OK && e->label2_key)
            rc = hub_buf_addc(out, ',');
        if (rc == HUB_OK && e->label2_key)
            rc = add_label(out, e->label2_key, e->label2_value);
        if (rc == HUB_OK)
            rc = hub_buf_addc(out, '}');
    }
    uint64_t v = hub_metric_get(e);
    if (rc == HUB_OK && e->divisor > 1)
        rc = hub_buf_printf(out, " %llu.%0*llu\n", (unsigned long long)(v / e->divisor),
                            digits(e->divisor), (unsigned long long)(v % e->divisor));
    else if (rc == HUB_OK)
        rc = hub_buf_printf(out, " %llu\n", (unsigned long long)v);
    return rc;
}

/* By name, then by registration order: a stable grouping. */
static int by_name(const void *a, const void *b, void *arg)
{
    const struct hub_metric *v = arg;
    size_t i = *(const size_t *)a, k = *(const size_t *)b;
    int c = strcmp(v[i].name, v[k].name);
    if (c != 0)
        return c;
    return i < k ? -1 : i > k;
}

int hub_metrics_write_prometheus(hub_metrics_t *m, struct hub_buf *out)
{
    size_t n = m ? atomic_load_explicit(&m->n, memory_order_acquire) : 0;
    if (n == 0)
        return HUB_OK;
    size_t *idx = malloc(n * sizeof(*idx));
    if (!idx)
        return HUB_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), by_name, m->v);
    int rc = HUB_OK;
    for (size_t i = 0; i < n && rc == HUB_OK; i++) {
        const struct hub_metric *e = &m->v[idx[i]];
        if (i == 0 || strcmp(e->name, m->v[idx[i - 1]].name) != 0) {
            rc = hub_buf_printf(out, "# HELP %s ", e->name);
            if (rc == HUB_OK)
                rc = add_escaped(out, e->help, false);
            if (rc == HUB_OK)
                rc = hub_buf_printf(out, "\n# TYPE %s %s\n", e->name,
                                    e->kind == HUB_METRIC_COUNTER ? "counter" : "gauge");
        }
        if (rc == HUB_OK)
            rc = write_sample(out, e);
    }
    free(idx);
    return rc;
}
