/* firmware/config.h — loading and checking the YAML configuration (v1).
 *
 * The file is parsed with libyaml into a node tree, then walked against the
 * key tables of the hub (ch_hub_keys, ch_journal_keys, ...) and of each driver
 * (drivers/modbus, drivers/influx). Every problem is reported as
 * "FILE:LINE:COL: message" (1-based line and column of the offending key or
 * value), all of them, not just the first. */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drivers/driver.h"
#include "drivers/influx/influx.h"
#include "drivers/modbus/modbus_drv.h"
#include "hub/config_map.h"

#define CH_MAX_BUSES 16
#define CH_MAX_DEVICES 256
#define CH_MAX_OUTPUTS 8

struct ch_journal_cfg {
    char path[256];
    uint64_t max_size;
    uint64_t segment_size;
    int64_t sync_interval_ns;
    int on_full; /* enum hub_journal_on_full */
};

struct ch_hub_cfg {
    char name[64]; /* tag "gateway" */
    struct hub_cfg_tags tags;
    struct ch_journal_cfg journal;
    int log_level;              /* enum hub_log_level */
    int64_t status_interval_ns; /* how often device status points are written */
};

struct ch_output_cfg {
    const struct drv_output_ops *ops;
    void *cfg; /* ops->config_size bytes, starting with struct drv_output_common */
};

struct ch_config {
    char path[256];
    struct ch_hub_cfg hub;
    struct drv_modbus_bus buses[CH_MAX_BUSES];
    size_t nbuses;
    struct drv_modbus_device *devices; /* CH_MAX_DEVICES entries allocated */
    size_t ndevices;
    struct ch_output_cfg outputs[CH_MAX_OUTPUTS];
    size_t noutputs;
};

/* Load and check path. Returns a config (free with ch_config_free) or NULL
 * after writing one "FILE:LINE:COL: message" line per error to errs; *nerr
 * gets the number of errors. */
struct ch_config *ch_config_load(const char *path, FILE *errs, unsigned *nerr);
/* Same, from a buffer; name is used in messages (fuzzing, tests). */
struct ch_config *ch_config_load_buffer(const char *name, const char *text, size_t len, FILE *errs,
                                        unsigned *nerr);
void ch_config_free(struct ch_config *c);

#endif
