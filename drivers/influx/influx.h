/* drivers/influx/influx.h — InfluxDB output: line protocol over HTTP(S).
 *
 * Batches are encoded as line protocol (ns timestamps), optionally gzipped,
 * and POSTed through one libcurl easy handle (connection reuse) to
 *   v1: URL/write?db=DATABASE&precision=ns[&rp=RP]   (user + password_file: basic auth)
 *   v2: URL/api/v2/write?org=ORG&bucket=BUCKET&precision=ns, token from token_file
 * A 2xx answer is delivered; anything else is not (see hub/output.h). */
#ifndef DRV_INFLUX_H
#define DRV_INFLUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "hub/buf.h"
#include "hub/reading.h"

struct drv_influx_cfg {
    struct drv_output_common common; /* must be first */
    char url[512];
    char database[128];        /* v1 */
    char retention_policy[128];
    char username[128];
    char password_file[256];
    char org[128];             /* v2 */
    char bucket[128];
    char token_file[256];
    bool gzip;
    int64_t timeout_ns;
    bool uint_support;         /* write uint fields with 'u' (InfluxDB >= 1.8/2.x); else 'i' */
};

extern const struct hub_cfg_key drv_influx_keys[];
extern const struct drv_output_ops drv_influx_ops;

/* Append one reading as a line of line protocol (with the trailing '\n') to
 * out. Escapes per the InfluxDB spec: measurement `, ` and space; tag keys,
 * tag values and field keys `,`, `=` and space; string field values `"` and
 * `\`. Newlines in names or values cannot be written in line protocol and
 * are replaced by a space (there is no escape for them). Integers get `i`,
 * uints `u` (or `i` when !uint_support and the value fits int64), floats are
 * printed round-trippable (%.17g, shortest form), bools `true`/`false`.
 * Returns HUB_OK or a buffer error. */
int drv_influx_encode(const hub_reading_t *r, bool uint_support, struct hub_buf *out);

/* gzip (RFC 1952) in into out. Returns HUB_OK or an error. */
int drv_influx_gzip(const uint8_t *in, size_t n, struct hub_buf *out);

#endif
