/* hub/accept.h — the accept path: a reading from an input becomes a journal
 * record.
 *
 * hub_accept_reading() adds the gateway-wide tags (tag "gateway" and the
 * hub's tags, each unless the reading has it already), encodes the reading
 * and appends it to the journal. Once it returns HUB_OK the reading is
 * accepted: nothing after that loses it. Every outcome is counted in the
 * metrics registry (cityhub_readings_accepted_total, and
 * cityhub_readings_refused_total{reason=invalid|full|io|nomem}); refusals
 * are logged once per HUB_LOG_REPEAT_NS with the count held back. A full
 * journal (drop_newest, or a full disk) refuses with HUB_EFULL: the reading
 * is counted as dropped, never silently lost. Safe from any thread. */
#ifndef HUB_ACCEPT_H
#define HUB_ACCEPT_H

#include <stddef.h>

#include "hub/config_map.h"
#include "hub/journal.h"
#include "hub/metrics.h"
#include "hub/reading.h"

typedef struct hub_accept hub_accept_t;

struct hub_accept_opts {
    hub_journal_t *journal;
    const char *gateway; /* tag "gateway" */
    const struct hub_cfg_tags
        *tags; /* the hub's tags, kept by reference (they outlive the accept); may be NULL */
    hub_metrics_t *metrics; /* may be NULL: nothing counted */
};

/* Returns HUB_OK, HUB_EINVAL (no journal or gateway) or HUB_ENOMEM. The
 * strings and tags are copied. */
int hub_accept_new(const struct hub_accept_opts *opts, hub_accept_t **out);
void hub_accept_free(hub_accept_t *a);
/* New gateway name and tags (a reload): the readings accepted after it
 * carry them. Not safe while inputs emit: the caller stops them first.
 * Returns HUB_OK or HUB_EINVAL (gateway missing or too long). */
int hub_accept_retag(hub_accept_t *a, const char *gateway, const struct hub_cfg_tags *tags);

/* Take r (always freed, whatever the outcome) and append it. Returns
 * HUB_OK, or the error that refused it (HUB_EINVAL, HUB_EFULL, HUB_EIO,
 * HUB_ENOMEM). */
int hub_accept_reading(hub_accept_t *a, hub_reading_t *r);

/* Readings accepted and refused so far. */
uint64_t hub_accept_accepted(const hub_accept_t *a);
uint64_t hub_accept_refused(const hub_accept_t *a);

/* How many tags a reading carries once accepted, when its source sets the
 * tags `own` plus `extra` more of its own (e.g. "device"): own + extra +
 * "gateway" + each hub tag whose key `own` does not have. For checks at
 * load time against HUB_READING_MAX_TAGS. */
size_t hub_accept_tag_count(const struct hub_cfg_tags *hub, const struct hub_cfg_tags *own,
                            size_t extra);

#endif
