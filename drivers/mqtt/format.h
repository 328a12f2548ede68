/* drivers/mqtt/format.h — payload formats of the MQTT input: the bytes of
 * one message become readings, or one clear reason why not.
 *
 * Every parser here is pure (no network, no clock, no global state) and
 * takes outside bytes: each has a libFuzzer harness in tests/fuzz/.
 *
 * A message is all or nothing: drv_mq_parse() builds every reading the
 * payload holds into `out` and returns HUB_OK, or returns HUB_EINVAL with
 * the reason in why and `out` left empty. A payload with one bad record is
 * rejected whole, so that a half-understood message never reads as a
 * complete one.
 *
 * Formats:
 *   senml       SenML JSON (RFC 8428): a pack of records resolved against
 *               base values (bn, bt, bu, bv, bver); n, v, vs, vb, t, u.
 *               Records with the same resolved device and time become one
 *               reading: the base name (bn, its trailing ':' '/' '.' or '-'
 *               cut) is the tag "device", n the field. Without bn, the
 *               whole name is the field; a record named by bn alone is
 *               field `field` ("value"). t below 2^28 is relative to now.
 *   json        one JSON object (or an array of them); fields picked by
 *               JSON Pointer (RFC 6901), or, with no field map, every
 *               top-level number, bool and string; time by JSON Pointer.
 *   influx      InfluxDB line protocol, validated line by line and kept
 *               as written (measurement, tags, typed fields, timestamp in
 *               `precision`); no timestamp means arrival time.
 *   value       the whole payload is one number or bool (surrounding
 *               white space allowed).
 *   chirpstack  a ChirpStack v4 uplink event: the decoded `object` becomes
 *               fields (nested objects flattened with '_'),
 *               deviceInfo.devEui/deviceName/applicationName/tags become
 *               tags, `time` the timestamp; with `radio`, a second reading
 *               of the best gateway's RSSI and SNR.
 *
 * JSON numbers are stored as float (a sensor sending 21 then 21.5 must not
 * change the field's type in the store); line protocol keeps its types.
 * JSON nested deeper than DRV_MQ_MAX_DEPTH is refused before it is
 * parsed. */
#ifndef DRV_MQTT_FORMAT_H
#define DRV_MQTT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "hub/config_map.h"
#include "hub/reading.h"

#define DRV_MQ_MAX_DEPTH 32
#define DRV_MQ_MAX_READINGS 4096 /* readings one message may hold */

enum drv_mq_format {
    DRV_MQ_SENML = 0,
    DRV_MQ_JSON,
    DRV_MQ_INFLUX,
    DRV_MQ_VALUE,
    DRV_MQ_CHIRPSTACK,
};
/* Names in enum order, NULL-terminated (the config's `format` choices). */
extern const char *const drv_mq_format_names[];

/* Unit of numeric times. AUTO: for json, by magnitude (below 1e11
 * seconds, 1e14 ms, 1e17 us, else ns); for line protocol, ns (its own
 * default). */
enum drv_mq_precision { DRV_MQ_AUTO = 0, DRV_MQ_NS, DRV_MQ_US, DRV_MQ_MS, DRV_MQ_S };
extern const char *const drv_mq_precision_names[]; /* "auto", "ns", "us", "ms", "s" */

/* How one subscription reads its messages (from its config). Every
 * pointer may be NULL / every map empty. */
struct drv_mq_parse_opts {
    enum drv_mq_format format;
    const char *measurement; /* json, value, senml: required for json and value;
                                senml default "senml"; chirpstack default "lorawan";
                                influx: ignored (each line names its own) */
    const char *field;       /* value: the field's name (default "value");
                                senml: the field of a record named by bn alone */
    /* json: field name -> JSON Pointer ("/t", "/sensors/0/temp"); n = 0
     * means every top-level scalar member */
    const struct hub_cfg_tags *fields;
    const char *time_pointer; /* json: where the time is (NULL: arrival) */
    /* Unit of numeric times in the payload (json `time`, influx
     * timestamps); RFC 3339 strings are read as such whatever this is.
     * SenML times are seconds, as RFC 8428 says. */
    enum drv_mq_precision precision;
    int radio;                     /* chirpstack: also emit radio_measurement */
    const char *radio_measurement; /* default "lorawan_radio" */
};

/* Tags to add to every reading of a message (from topic levels and the
 * subscription's `tags`); a reading's own tag of the same key wins. */
struct drv_mq_tagset {
    size_t n;
    struct hub_tag tag[HUB_READING_MAX_TAGS];
};

/* The readings of one message. */
struct drv_mq_out {
    size_t n;
    hub_reading_t *r[DRV_MQ_MAX_READINGS];
};
/* Free the readings still in out (n becomes 0). */
void drv_mq_out_clear(struct drv_mq_out *out);

/* Parse one message. now_ns is the arrival time (ns since the epoch, UTC).
 * The readings are appended to out (readings already there are left
 * alone). Returns HUB_OK with at least one reading added; HUB_EINVAL with
 * a reason in why (e.g. "record 3: no name (n or bn)", "line 2: field
 * \"temp\": bad number \"1.2.3\"") and nothing added; or HUB_ENOMEM
 * (nothing added). why may be NULL (whylen 0). */
int drv_mq_parse(const struct drv_mq_parse_opts *o, const struct drv_mq_tagset *tags,
                 const uint8_t *payload, size_t len, int64_t now_ns, struct drv_mq_out *out,
                 char *why, size_t whylen);

/* Pieces exposed for tests and fuzzing. */

/* Depth of the deepest nesting of [ and { in a JSON text (outside strings),
 * scanning at most len bytes; stops counting past limit + 1. */
int drv_mq_json_depth(const char *s, size_t len, int limit);

/* RFC 6901: resolve pointer in root (a json_t *). Returns the value or
 * NULL (absent, or a malformed pointer: "~" not followed by 0 or 1). "" is
 * the root itself. */
struct json_t;
struct json_t *drv_mq_json_pointer(struct json_t *root, const char *pointer);

/* Parse an RFC 3339 timestamp ("2026-12-03T07:15:00.123456789Z", offsets
 * allowed) into ns since the epoch. Returns 0 or -1. */
int drv_mq_parse_rfc3339(const char *s, int64_t *ns);

/* Parse line protocol (one or more lines, '\n' separated, '#' comments
 * and blank lines skipped) into out, as drv_mq_parse does for format
 * influx. */
int drv_mq_parse_lines(const char *s, size_t len, enum drv_mq_precision precision, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen);

#endif
