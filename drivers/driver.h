/* drivers/driver.h — what every protocol adapter offers the program.
 *
 * A driver is a const table of operations plus an opaque context per
 * configured instance (after libmodbus's backends and Fluent Bit's plugins).
 * Inputs produce readings into a sink; outputs consume batches and answer
 * ok / retry / reject. The registry (drivers/registry.c) lists them all; adding
 * a protocol is adding a driver and one line there. */
#ifndef DRV_DRIVER_H
#define DRV_DRIVER_H

#include <stddef.h>

#include "hub/config_map.h"
#include "hub/output.h"
#include "hub/reading.h"

/* Where an input puts its readings. emit takes ownership of r (it frees it),
 * adds the gateway-wide tags, and appends it to the journal. It returns
 * HUB_OK once the reading is accepted, or an error (the reading was counted
 * as dropped). */
struct drv_sink {
    int (*emit)(void *ctx, hub_reading_t *r);
    void *ctx;
};

struct drv_input_ops {
    const char *type; /* bus type(s) handled, e.g. "tcp" */
    /* cfg is the driver's own config struct (see its header). Returns 0, or
     * -1 with a message in err. */
    int (*init)(const void *cfg, const struct drv_sink *sink, void **ctx, char *err, size_t errlen);
    void (*run)(void *ctx);  /* polls until stop; runs in its own thread */
    void (*stop)(void *ctx); /* from another thread: run() returns soon */
    void (*exit)(void *ctx);
};

struct drv_output_ops {
    const char *type;                     /* "influxdb" */
    const struct hub_cfg_key *config_map; /* keys of one output of this type */
    size_t config_size;                   /* sizeof its config struct */
    int (*init)(const void *cfg, void **ctx, char *err, size_t errlen);
    hub_out_flush_fn flush;
    /* From another thread, at shutdown: make a flush in progress give up
     * soon (answering RETRY) and every later one at once. May be NULL. */
    void (*cancel)(void *ctx);
    void (*exit)(void *ctx);
};

/* Common head of every output config struct: the loader fills these. */
#define DRV_NAME_MAX 64
struct drv_output_common {
    char name[DRV_NAME_MAX];
    char type[32];
    int64_t batch_size;
    int64_t flush_interval_ns;
};

/* The registry (drivers/registry.c). NULL if no driver has that type. */
const struct drv_output_ops *drv_output_find(const char *type);
const struct drv_input_ops *drv_input_find(const char *type);
/* Names of the output types in this build, for error messages. */
size_t drv_output_types(const char **names, size_t max);

#endif
