/* firmware/status_priv.h — what the status server's files share. */
#ifndef CH_STATUS_PRIV_H
#define CH_STATUS_PRIV_H

#include <jansson.h>

#include "firmware/status.h"

/* The bounded store of recent values (status_values.c); locked inside. */
struct ch_values;
/* env may be NULL (no units). NULL when out of memory. */
struct ch_values *ch_values_new(const struct drv_env *env);
void ch_values_free(struct ch_values *v);
/* Units from env from now on, looked up again for every field kept. */
void ch_values_rebind(struct ch_values *v, const struct drv_env *env);
/* Numeric fields of r into the rings (at now_ns, wall clock, for the slot). */
void ch_values_observe(struct ch_values *v, const hub_reading_t *r, int64_t now_ns);
/* {"step_s":5,"series":[{"key","measurement","last_ms","fields":[{"name","unit",
 * "value","points":[...]}]}]}; points (oldest first, null where nothing was
 * read) only when with_points. NULL when out of memory. */
json_t *ch_values_json(struct ch_values *v, int with_points, int64_t now_ns);
/* Series and fields left out because a bound was reached. */
uint64_t ch_values_dropped(struct ch_values *v);
/* Bytes the store holds now. */
size_t ch_values_bytes(struct ch_values *v);

#endif
