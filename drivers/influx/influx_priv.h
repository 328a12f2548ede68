/* drivers/influx/influx_priv.h — what the InfluxDB driver's files share. */
#ifndef DRV_INFLUX_PRIV_H
#define DRV_INFLUX_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "drivers/influx/influx.h"

#define INFLUX_SECRET_MAX 4096 /* longest password or token file */

/* The write URL of cfg (v1 or v2), escaped with h; NULL when out of memory. */
char *drv_influx_write_url(const struct drv_influx_cfg *cfg, CURL *h, bool v2);
/* drv_influx_check, telling which API the keys select (init uses it: a
 * missing CA or key file is refused at start, not at the first request). */
int drv_influx_check_all(const struct drv_influx_cfg *cfg, bool *v2, const char **key, char *err,
                         size_t errlen);
/* The url is https:// (the TLS keys apply). */
bool drv_influx_https(const struct drv_influx_cfg *cfg);

#endif
