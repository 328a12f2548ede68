/* hub/metrics.h — the hub's counters and gauges: what drivers, the journal
 * and the outputs count, and what health points (and the status server) read.
 *
 * A metric is a name, at most two labels (key and value, e.g. device="aq-1"),
 * a kind and one line of help. Drivers register theirs at init and keep the
 * handle; updates are one relaxed atomic operation, safe from any thread.
 * The registry is bounded: it holds at most the `max` given to
 * hub_metrics_new, and a registration past that returns NULL (updates
 * through NULL do nothing) and is counted in hub_metrics_missed. Names
 * follow Prometheus' rules: [a-z_][a-z0-9_]*, counters end in "_total". */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum hub_metric_kind { HUB_METRIC_COUNTER = 0, HUB_METRIC_GAUGE = 1 };

#define HUB_METRIC_LABEL_MAX 64 /* a label value longer than this is cut */

typedef struct hub_metrics hub_metrics_t;
struct hub_metric; /* one registered metric */

/* What hub_metrics_each shows of each metric. */
struct hub_metric_info {
    const char *name;
    const char *help;
    enum hub_metric_kind kind;
    const char *label_key;    /* NULL: no label */
    const char *label_value;  /* "" when no label */
    const char *label2_key;   /* NULL: no second label */
    const char *label2_value; /* "" when none */
    uint64_t value;
};

/* Returns NULL when out of memory. max: most metrics ever registered. */
hub_metrics_t *hub_metrics_new(size_t max);
void hub_metrics_free(hub_metrics_t *m);

/* Register name{label_key=label_value} and return its handle; the same name
 * and label twice return the same handle. name, help and label_key must
 * outlive the registry (string literals); label_value is copied. Returns
 * NULL if m is NULL, the name is not valid, or the registry is full. */
struct hub_metric *hub_metrics_add(hub_metrics_t *m, enum hub_metric_kind kind, const char *name,
                                   const char *label_key, const char *label_value,
                                   const char *help);

/* The same with a second label (key2, value2), e.g. output="ioc",
 * class="5xx". key2 NULL: as hub_metrics_add. */
struct hub_metric *hub_metrics_add2(hub_metrics_t *m, enum hub_metric_kind kind, const char *name,
                                    const char *label_key, const char *label_value,
                                    const char *label2_key, const char *label2_value,
                                    const char *help);

/* Expose mt's value divided by divisor (e.g. 1000000: it counts
 * microseconds of a metric named in seconds, as Prometheus wants base
 * units). Updates and hub_metric_get stay in the stored unit. */
void hub_metric_set_divisor(struct hub_metric *mt, uint32_t divisor);

void hub_metric_inc(struct hub_metric *mt, uint64_t n); /* counters (and gauges) */
void hub_metric_set(struct hub_metric *mt, uint64_t v); /* gauges */
uint64_t hub_metric_get(const struct hub_metric *mt);   /* 0 for NULL */

/* Sum of every metric called name, whatever its label. */
uint64_t hub_metrics_sum(hub_metrics_t *m, const char *name);
/* Registrations refused because the registry was full. */
uint64_t hub_metrics_missed(hub_metrics_t *m);
/* Call fn for each metric, in registration order. */
void hub_metrics_each(hub_metrics_t *m, void (*fn)(void *arg, const struct hub_metric_info *mi),
                      void *arg);

/* The registry in the Prometheus text exposition format (version 0.0.4),
 * appended to out: one "# HELP" and "# TYPE" per name, then every sample
 * of that name (names sorted, samples of a name in registration order),
 * label values and help escaped (backslash, newline; quote in values).
 * Returns HUB_OK, or HUB_EFULL / HUB_ENOMEM when out cannot hold it. */
struct hub_buf;
int hub_metrics_write_prometheus(hub_metrics_t *m, struct hub_buf *out);

#endif
