/* drivers/influx/influx.h — InfluxDB output: line protocol over HTTP(S).
 *
 * Batches are encoded as line protocol (ns timestamps), optionally gzipped,
 * and POSTed through one libcurl easy handle (connection reuse) to
 *   v1: URL/write?db=DATABASE&precision=ns[&rp=RP]   (user + password_file: basic auth)
 *   v2: URL/api/v2/write?org=ORG&bucket=BUCKET&precision=ns, token from token_file
 * A 2xx answer is delivered; anything else is not (see hub/output.h):
 * 429/5xx/transport errors are HUB_OUT_RETRY (Retry-After honoured), other
 * 4xx are HUB_OUT_REJECT with the server's reason. docs/outputs-influxdb.md.
 *
 * libcurl: the descriptor's global_init (drv_influx_global_init) runs once at
 * start, before any thread, and its global_cleanup (curl_global_cleanup) at
 * exit; the driver's init never does. */
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
    char database[128]; /* v1 */
    char retention_policy[128];
    char username[128];
    char password_file[256];
    char org[128]; /* v2 */
    char bucket[128];
    char token_file[256];
    char ca_file[256];         /* https: CAs that sign the server ("" = the system's) */
    char cert_file[256];       /* https: client certificate (PEM, optional) */
    char key_file[256];        /* https: its private key */
    bool insecure_skip_verify; /* https: do not verify the server (warned) */
    bool gzip;
    int64_t timeout_ns;
    int64_t connect_timeout_ns; /* at most timeout_ns */
    bool uint_support;          /* write uint fields with 'u' (InfluxDB >= 1.8/2.x); else 'i' */
};

/* Request body (line protocol before gzip) of one flush: at most the
 * output's max_batch_bytes (this when 0), never more than BODY_MAX. A batch
 * that encodes beyond it is sent in parts (hub_out_answer.done). */
#define DRV_INFLUX_BODY_DEFAULT ((size_t)1 << 20)
#define DRV_INFLUX_BODY_MAX ((size_t)64 << 20)

extern const struct hub_cfg_key drv_influx_keys[];
extern const struct drv_ops drv_influx_ops;

/* Check an output's config as init would refuse it: url (http or https, a
 * host, no credentials, query or fragment), v1 or v2 keys complete and not
 * mixed, the TLS keys only with https:// (cert_file with key_file), and
 * each secret, CA or certificate file named present as a regular file (its contents
 * are not read: `cityhub check` may run as a user who cannot). Returns 0, or
 * -1 with a message in err and in *key the name of the config key at fault
 * (NULL when no one key is). For `cityhub check` (firmware/config.c). */
int drv_influx_check(const struct drv_influx_cfg *cfg, const char **key, char *err, size_t errlen);

/* Append one reading as a line of line protocol (with the trailing '\n') to
 * out. Escapes per the InfluxDB spec: measurement `,` and space; tag keys,
 * tag values and field keys `,`, `=` and space; string field values `"` and
 * `\`. Newlines in names or values cannot be written in line protocol and
 * are replaced by a space (there is no escape for them). InfluxDB has no
 * escape for a backslash in names either: one that ends a name or stands
 * before `,`, `=` or space is written `/`; others are written as is. A
 * measurement starting with `#` (a comment line) is written `\#...`. Tags
 * with an empty value are left out. Integers get `i`, uints `u` (or `i` when
 * !uint_support and the value fits int64), floats are printed
 * round-trippable (the first of %.15g, %.16g, %.17g that reads back to the
 * same bits), bools `true`/`false`, the timestamp in decimal ns.
 * Returns HUB_OK; HUB_EINVAL if the reading has no field or a non-finite
 * float (nothing appended); or HUB_EFULL/HUB_ENOMEM from the buffer (out is
 * left as it was). */
int drv_influx_encode(const hub_reading_t *r, bool uint_support, struct hub_buf *out);

/* curl_global_init(CURL_GLOBAL_DEFAULT), once per process however often it
 * is called (pthread_once). Returns 0, or -1 if libcurl failed to start. */
int drv_influx_global_init(void);

/* gzip (RFC 1952) in into out. Returns HUB_OK or an error. */
int drv_influx_gzip(const uint8_t *in, size_t n, struct hub_buf *out);

/* The reason in an InfluxDB error answer: the "error" string of its JSON
 * body ({"error":"..."}, 1.x) or the "message" string (2.x), or else the body itself, as one
 * printable line of at most max bytes (dst holds max + 1). body is outside bytes: any content and
 * length is safe. */
void drv_influx_server_reason(const char *body, size_t len, char *dst, size_t max);

#endif
