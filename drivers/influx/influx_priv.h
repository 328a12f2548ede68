/* drivers/influx/influx_priv.h — what the InfluxDB driver's files share. */
#ifndef DRV_INFLUX_PRIV_H
#define DRV_INFLUX_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "drivers/influx/influx.h"

#define INFLUX_SECRET_MAX 4096 /* longest password or token file */

/* Overwrite a secret before its memory is given back. */
void drv_influx_wipe(void *p, size_t n);
/* Read a secret file into buf (NUL-terminated, trailing whitespace cut).
 * Returns 0, or -1 with a message naming the file (never its contents). */
int drv_influx_read_secret(const char *what, const char *path, char *buf, size_t size, char *err,
                           size_t errlen);
/* The write URL of cfg (v1 or v2), escaped with h; NULL when out of memory. */
char *drv_influx_write_url(const struct drv_influx_cfg *cfg, CURL *h, bool v2);
/* The rules of drv_influx_check; *v2 tells which API the keys select. */
int drv_influx_check_cfg(const struct drv_influx_cfg *cfg, bool *v2, const char **key, char *err,
                         size_t errlen);

#endif
