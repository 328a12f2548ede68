/* firmware/reload.h — SIGHUP: the configuration file read again.
 *
 * The file is loaded and checked by the loader `cityhub check` uses, so a
 * rejected reload logs exactly the lines the check prints for that file
 * ("FILE:LINE:COL: message", then "FILE: N errors"), then "reload
 * rejected; running configuration unchanged". A valid file that changes
 * what cannot change while running (the journal's path, segment_size,
 * max_size, on_full, or sync_interval to or from 0) is rejected the same
 * way, naming the key and saying that a restart applies it. The daemon
 * (firmware/run.c) applies the others: inputs and outputs are stopped and
 * started again from the new file, the journal stays open. Outcomes are
 * counted in cityhub_reloads_total{result="applied"|"rejected"} and the
 * gauge cityhub_config_last_reload_successful, and shown in /health. */
#ifndef CH_RELOAD_H
#define CH_RELOAD_H

#include <stdint.h>

#include "firmware/config.h"
#include "hub/metrics.h"

enum ch_reload_result { CH_RELOAD_NONE = 0, CH_RELOAD_APPLIED, CH_RELOAD_REJECTED };

struct ch_reload_info {
    uint64_t applied, rejected;
    enum ch_reload_result last;
    int64_t last_ns;      /* wall clock of the last reload, 0 = none */
    char path[256];       /* the configuration file */
    char last_error[256]; /* the first error of the last rejected reload */
};

typedef struct ch_reload ch_reload_t;

/* path: the file `cityhub run -c` read; log_level: the --log-level
 * override (NULL: hub.log_level decides, at every reload too). NULL when
 * out of memory. */
ch_reload_t *ch_reload_new(const char *path, const char *log_level, hub_metrics_t *m);
void ch_reload_free(ch_reload_t *r);

/* Read and check the file again and hold it against running. Returns the
 * configuration to apply (the caller's, free with ch_config_free), or NULL
 * when it is rejected (every error logged, counted). */
struct ch_config *ch_reload_load(ch_reload_t *r, const struct ch_config *running);

/* 1 if c has an output called name, else 0. */
int ch_reload_has_output(const struct ch_config *c, const char *name);
/* 1 if hub.status is the same in a and b (the server can stay), else 0. */
int ch_reload_status_same(const struct ch_config *a, const struct ch_config *b);

/* Logging as to says (hub.log_level unless --log-level was given,
 * hub.log_file opened if it differs from from's), before to starts. */
void ch_reload_logging(ch_reload_t *r, const struct ch_config *from, const struct ch_config *to);
/* now runs instead of old, after inputs paused for paused_ns: log the
 * summary ("reload applied in 25 ms: devices +1, -0, 1 changed; ...") and
 * count it. */
void ch_reload_applied(ch_reload_t *r, const struct ch_config *old, const struct ch_config *now,
                       int64_t paused_ns);
/* The new configuration could not start (why) and the old one runs again:
 * logged and counted as rejected. */
void ch_reload_failed(ch_reload_t *r, const char *why);

/* The outcomes so far (safe from any thread). */
void ch_reload_info(const ch_reload_t *r, struct ch_reload_info *out);

#endif
