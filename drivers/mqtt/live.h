/* drivers/mqtt/live.h — the pure parts of the live output
 * (drivers/mqtt/output.c): topic templates and the payloads, exposed for
 * tests/unit/test_drv_mqtt_output.c.
 *
 * Topic templates. Text between braces is a placeholder: {measurement} is
 * the reading's measurement, {gateway} the hub's name, and any other
 * {KEY} the value of the reading's tag KEY, "_" when it has none. A
 * substituted value never adds a level or a wildcard: '/', '+', '#', a
 * control character or a byte that is not UTF-8 becomes '_' (a broker
 * drops a client that publishes a topic it finds malformed), and so does a
 * '$' that would start the topic.
 *
 * Payloads, one reading each:
 *   json   {"measurement":"energy","time":"2026-12-03T07:00:00.123456789Z",
 *          "ts":1796281200123456789,"tags":{...},"fields":{...},
 *          "units":{...}}: tags sorted by key, fields in the reading's
 *          order, "units" only for fields whose unit is known (omitted when
 *          none is); integers exact, floats the shortest text that reads
 *          back to the same double.
 *   senml  RFC 8428: [{"bn":"<device or measurement>:","bt":<seconds>,
 *          "n":"voltage","u":"V","v":230.1},{"n":"on","vb":true},...]: one
 *          record per field, bt exact to the nanosecond.
 * Strings are JSON-escaped; bytes that are not UTF-8 become U+FFFD, so the
 * payload is always valid JSON. */
#ifndef DRV_MQTT_LIVE_H
#define DRV_MQTT_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "hub/buf.h"
#include "hub/reading.h"

#define DRV_MQ_LIVE_TOPIC_CAP 65535 /* longest topic MQTT allows, in bytes */
#define DRV_MQ_LIVE_TIME_MAX 40     /* room for drv_mq_live_rfc3339's text */

enum drv_mq_live_payload { DRV_MQ_LIVE_JSON = 0, DRV_MQ_LIVE_SENML = 1 };
/* "json", "senml", NULL: the `payload` key's choices, in enum order. */
extern const char *const drv_mq_live_payload_names[];

/* Check a topic template: not empty, no '+' or '#' (a topic to publish to
 * has no wildcards), no leading '$', valid UTF-8 without control
 * characters, braces balanced and not nested, no empty "{}". Returns 0, or
 * -1 with a message in err. */
int drv_mq_live_check_template(const char *tmpl, char *err, size_t errlen);

/* The value of placeholder name (len bytes, not NUL-terminated), or NULL
 * for "_". */
typedef const char *(*drv_mq_live_lookup_fn)(void *arg, const char *name, size_t len);

/* Expand a template (checked by drv_mq_live_check_template) into out, as
 * a NUL-terminated topic (out is reset first). Returns HUB_OK, or
 * HUB_EFULL / HUB_ENOMEM from the buffer. */
int drv_mq_live_expand(const char *tmpl, drv_mq_live_lookup_fn lookup, void *arg,
                       struct hub_buf *out);

/* The topic of reading r: drv_mq_live_expand with {measurement},
 * {gateway} (gateway may be NULL: "_") and the reading's tags. */
int drv_mq_live_topic(const char *tmpl, const char *gateway, const hub_reading_t *r,
                      struct hub_buf *out);

/* RFC 3339 in UTC with nanoseconds, "2026-12-03T07:00:00.123456789Z",
 * into dst (DRV_MQ_LIVE_TIME_MAX bytes). Returns the length. */
size_t drv_mq_live_rfc3339(int64_t ns, char *dst);

/* Append the payload of r to out (out is not reset). Units come from
 * env->unit_of(env, measurement, field) when env and unit_of are not NULL.
 * Returns HUB_OK; HUB_EINVAL for a reading that cannot be written (a float
 * that is not finite; senml: no field); HUB_EFULL / HUB_ENOMEM from the
 * buffer. On error out holds what it held before. */
int drv_mq_live_json(const hub_reading_t *r, const struct drv_env *env, struct hub_buf *out);
int drv_mq_live_senml(const hub_reading_t *r, const struct drv_env *env, struct hub_buf *out);

#endif
