/* drivers/mqtt/format_priv.h — what the payload parsers of the MQTT input
 * (format.c, senml.c, json.c, lineproto.c, chirpstack.c) share. Not for
 * use outside them. */
#ifndef DRV_MQTT_FORMAT_PRIV_H
#define DRV_MQTT_FORMAT_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "drivers/mqtt/format.h"

/* Write a reason into why (whylen bytes; either may be 0/NULL). */
void drv_mq_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote outside text for a reason: at most 32 bytes of s[0..n), between
 * double quotes, bytes outside printable ASCII (and '"', '\') as \xNN, and
 * "..." after the quotes when cut. dst holds DRV_MQ_QUOTE_MAX bytes. */
#define DRV_MQ_QUOTE_MAX 160
const char *drv_mq_quote(char *dst, const char *s, size_t n);

/* Append r to out, taking it (freed on failure). HUB_OK, or HUB_EINVAL
 * with a reason when out already holds DRV_MQ_MAX_READINGS. */
int drv_mq_push(struct drv_mq_out *out, hub_reading_t *r, char *why, size_t whylen);

/* Free out->r[from..n) and set n = from. */
void drv_mq_truncate(struct drv_mq_out *out, size_t from);

/* A new reading, or NULL with a reason (bad measurement, out of memory:
 * *rc says which). */
hub_reading_t *drv_mq_reading(const char *measurement, int64_t time_ns, int *rc, char *why,
                              size_t whylen);

/* Add a JSON scalar (number -> float, bool, string) as field key of r.
 * null and containers are the caller's business (HUB_EINVAL here). ctx
 * prefixes the reason ("element 2: " or ""). Returns HUB_OK, HUB_EINVAL
 * or HUB_ENOMEM with a reason. */
int drv_mq_add_json_field(hub_reading_t *r, const char *key, json_t *v, const char *ctx, char *why,
                          size_t whylen);

/* Add tag key=value to r unless value is empty. Returns HUB_OK, or an
 * error with a reason naming the tag. */
int drv_mq_add_tag(hub_reading_t *r, const char *key, const char *value, char *why, size_t whylen);

/* A JSON time: a number (unit by precision, AUTO by magnitude) or an RFC
 * 3339 string. Returns 0 and *ns, or -1 with a reason naming what (e.g.
 * "time"). */
int drv_mq_json_time(json_t *v, enum drv_mq_precision precision, const char *what, int64_t *ns,
                     char *why, size_t whylen);

/* Seconds (may be negative, fractional) to ns. Returns 0 or -1 (out of
 * int64 range). */
int drv_mq_secs_to_ns(double s, int64_t *ns);

/* The formats on a parsed JSON document (depth already checked). Each
 * appends to out and leaves its cleanup on failure to drv_mq_parse. */
int drv_mq_parse_senml(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen);
int drv_mq_parse_json(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                      struct drv_mq_out *out, char *why, size_t whylen);
int drv_mq_parse_chirpstack(const struct drv_mq_parse_opts *o, json_t *root, int64_t now_ns,
                            struct drv_mq_out *out, char *why, size_t whylen);
/* Format value on the raw payload (no NUL bytes). */
int drv_mq_parse_value(const struct drv_mq_parse_opts *o, const char *s, size_t len, int64_t now_ns,
                       struct drv_mq_out *out, char *why, size_t whylen);

#endif
