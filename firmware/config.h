/* firmware/config.h — loading and checking the YAML configuration (v1).
 *
 * The file is parsed with libyaml into a node tree, then walked against key
 * tables: the hub's own (hub:, outputs: and the keys every output has) and
 * those of each driver in the registry (drivers/driver.h): the sections an
 * input driver owns, the keys of an output type. Lists and mappings nested
 * in them are described by their key tables too, so this file knows no
 * protocol. When every key is valid on its own, each driver's check runs.
 * Every problem is reported as "FILE:LINE:COL: message" (1-based line and
 * column of the offending key or value), all of them, not just the first. */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drivers/driver.h"
#include "firmware/status.h"
#include "hub/config_map.h"
#include "hub/journal.h"

#define CH_MAX_OUTPUTS HUB_JOURNAL_MAX_CURSORS /* each output has a cursor */
#define CH_MAX_INPUT_DRIVERS 8

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
    struct ch_status_cfg status;
    int log_level;              /* enum hub_log_level */
    char log_file[256];         /* "" = stderr (journald under systemd) */
    int64_t status_interval_ns; /* how often status points are written */
    char user[33];              /* started as root, run as this user ("root": stay root) */
};

/* One input driver of the registry and the sections of it the file has. */
struct ch_input_cfg {
    const struct drv_ops *ops;
    struct drv_config cfg;
    size_t elements; /* over all its sections: 0 = not configured */
};

struct ch_output_cfg {
    const struct drv_ops *ops;
    void *cfg; /* ops->config_size bytes, starting with struct drv_output_common */
};

struct ch_config {
    char path[256];
    struct ch_hub_cfg hub;
    struct ch_input_cfg inputs[CH_MAX_INPUT_DRIVERS]; /* every input driver, registry order */
    size_t ninputs;
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

/* The elements of section `key` of the input driver that owns it, or NULL
 * (no driver owns it). For summaries and tests. */
const struct hub_cfg_list *ch_config_section(const struct ch_config *c, const char *key);

#endif
